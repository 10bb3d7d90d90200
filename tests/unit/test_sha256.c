/*
** src/sha256.c against the FIPS 180-4 examples (NIST's "SHA256.pdf" and
** the long-message vector of FIPS 180-2 appendix B), and the salt as a
** prefix of the message.  Prints ok/FAIL lines; exit 1 on failure.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kustomer.h"

static int nFail = 0;

static void check(const char *zName, const char *zGot, const char *zWant){
  if( strcmp(zGot, zWant)==0 ){
    printf("ok sha256: %s\n", zName);
  }else{
    printf("FAIL sha256: %s: got %s, want %s\n", zName, zGot, zWant);
    nFail++;
  }
}

int main(void){
  char zOut[65];
  char *zMillion = malloc(1000000);
  static const char z448[] =
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  static const char z896[] =
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
    "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
  kustomer_sha256_hex(0, 0, "abc", 3, zOut);
  check("\"abc\"", zOut,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  kustomer_sha256_hex(0, 0, "", 0, zOut);
  check("the empty message", zOut,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  kustomer_sha256_hex(0, 0, z448, strlen(z448), zOut);
  check("the 448-bit message", zOut,
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  kustomer_sha256_hex(0, 0, z896, strlen(z896), zOut);
  check("the 896-bit message", zOut,
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  if( zMillion ){
    memset(zMillion, 'a', 1000000);
    kustomer_sha256_hex(0, 0, zMillion, 1000000, zOut);
    check("one million 'a'", zOut,
          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(zMillion);
  }
  /* the salt is hashed first: salt "ab" + "c" is the hash of "abc" */
  kustomer_sha256_hex((const unsigned char*)"ab", 2, "c", 1, zOut);
  check("salt || message", zOut,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  return nFail ? 1 : 0;
}
