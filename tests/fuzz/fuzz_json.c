/*
** libFuzzer target: kustomer_json_parse() and kustomer_json_value().
** For any input that parses: the compact output must parse again and
** serialise to the same bytes (idempotence).  And
** kustomer_json_parse_some() must accept and reject exactly what
** kustomer_json_parse() does, with the same error, and keep the kept members
** as they are.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kustomer.h"
#include "fuzz_common.h"
SQLITE_EXTENSION_INIT3

static char *serialise(const cJSON *p, int *pn){
  sqlite3_str *s = sqlite3_str_new(0);
  char *z;
  kustomer_json_value(s, p);
  *pn = sqlite3_str_length(s);
  z = sqlite3_str_finish(s);
  if( z==0 ){ fprintf(stderr, "fuzz_json: out of memory\n"); abort(); }
  return z;
}

static void fail(const char *zWhy, const char *zIn, int nIn,
                 const char *zA, const char *zB){
  fprintf(stderr, "fuzz_json: %s\n  input (%d bytes): %.*s\n  a: %s\n  b: %s\n",
          zWhy, nIn, nIn > 2000 ? 2000 : nIn, zIn, zA ? zA : "(null)",
          zB ? zB : "(null)");
  abort();
}

static const KJsonKeep aTraits[] = { {"email", 0}, {"name", 0}, {0, 0} };
static const KJsonKeep aKeep[] = {
  {"type", 0}, {"properties", 0}, {"context", aTraits}, {"userId", 0},
  {0, 0}
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv){
  (void)argc; (void)argv;
  (void)fuzz_open_db();   /* sets sqlite3_api; the db stays open */
  return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size){
  char *zIn, *zErr = 0, *zErr2 = 0, *zOut, *zOut2, *zCopy;
  cJSON *p, *q, *r;
  int nOut, nOut2, n = (int)size;
  if( size > 1<<20 ) return 0;
  /* Exactly n+1 bytes: ASan sees any read past the terminator. */
  zIn = malloc(size + 1);
  memcpy(zIn, data, size);
  zIn[size] = 0;

  p = kustomer_json_parse(zIn, n, &zErr);
  q = kustomer_json_parse_some(zIn, n, aKeep, &zErr2);
  if( (p==0)!=(q==0) ){
    fail("parse and parse_some disagree on validity", zIn, n, zErr, zErr2);
  }
  if( (zErr==0)!=(zErr2==0) || (zErr && strcmp(zErr, zErr2)!=0) ){
    fail("parse and parse_some give different errors", zIn, n, zErr, zErr2);
  }
  if( p ){
    static const char *azKey[] = {"type", "properties", "userId", 0};
    int k;
    zOut = serialise(p, &nOut);
    if( (size_t)nOut!=strlen(zOut) ) fail("NUL in output", zIn, n, zOut, 0);
    zCopy = malloc((size_t)nOut + 1);
    memcpy(zCopy, zOut, (size_t)nOut + 1);
    r = kustomer_json_parse(zCopy, nOut, &zErr2 /* reused */);
    if( r==0 ) fail("output does not parse", zIn, n, zOut, zErr2);
    zOut2 = serialise(r, &nOut2);
    if( nOut!=nOut2 || memcmp(zOut, zOut2, (size_t)nOut)!=0 ){
      fail("serialisation is not idempotent", zIn, n, zOut, zOut2);
    }
    sqlite3_free(zOut2);
    cJSON_Delete(r);
    free(zCopy);
    sqlite3_free(zOut);

    /* Kept members are the same in both parses. */
    if( cJSON_IsObject(p) ){
      for(k=0; azKey[k]; k++){
        const cJSON *a = kustomer_json_member(p, azKey[k]);
        const cJSON *b = kustomer_json_member(q, azKey[k]);
        if( (a==0)!=(b==0) ){
          fail("parse_some lost or added a kept member", zIn, n, azKey[k], 0);
        }
        if( a ){
          zOut = serialise(a, &nOut);
          zOut2 = serialise(b, &nOut2);
          if( nOut!=nOut2 || memcmp(zOut, zOut2, (size_t)nOut)!=0 ){
            fail("parse_some changed a kept member", zIn, n, zOut, zOut2);
          }
          sqlite3_free(zOut);
          sqlite3_free(zOut2);
        }
      }
    }
  }
  sqlite3_free(zErr);
  sqlite3_free(zErr2);
  cJSON_Delete(p);
  cJSON_Delete(q);
  free(zIn);
  return 0;
}
