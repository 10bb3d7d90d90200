/*
** libFuzzer target: kustomer_fmt_number() (src/jsnum.c).  The first 8 input
** bytes are a double; its text must read back (strtod) as the same bits,
** -0 as 0, NaN as "NaN", infinities as "Infinity"/"-Infinity", and the
** returned length must be below KUSTOMER_NUMBUF and equal strlen().
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kustomer.h"

static void fail(const char *zWhy, double r, const char *z){
  uint64_t u;
  memcpy(&u, &r, 8);
  fprintf(stderr, "fuzz_jsnum: %s: bits 0x%016llx (%.17g) -> \"%s\"\n",
          zWhy, (unsigned long long)u, r, z);
  abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size){
  char zBuf[KUSTOMER_NUMBUF + 16];
  double r, back;
  int n;
  char *zEnd;
  if( size<8 ) return 0;
  memcpy(&r, data, 8);
  memset(zBuf, 'x', sizeof(zBuf));
  n = kustomer_fmt_number(r, zBuf);
  if( memchr(zBuf, 0, sizeof(zBuf))==0 ) fail("no terminator", r, "");
  if( n<0 || n>=KUSTOMER_NUMBUF ) fail("length out of range", r, zBuf);
  if( (size_t)n!=strlen(zBuf) ) fail("length != strlen", r, zBuf);
  if( isnan(r) ){
    if( strcmp(zBuf, "NaN")!=0 ) fail("NaN text", r, zBuf);
    return 0;
  }
  if( isinf(r) ){
    if( strcmp(zBuf, r>0 ? "Infinity" : "-Infinity")!=0 ){
      fail("Infinity text", r, zBuf);
    }
    return 0;
  }
  if( r==0.0 ){
    if( strcmp(zBuf, "0")!=0 ) fail("zero text", r, zBuf);
    return 0;
  }
  if( strspn(zBuf, "-0123456789.e+")!=(size_t)n ) fail("bad character", r, zBuf);
  back = strtod(zBuf, &zEnd);
  if( *zEnd!=0 ) fail("strtod stopped early", r, zBuf);
  if( memcmp(&back, &r, 8)!=0 ) fail("does not round-trip", r, zBuf);
  return 0;
}
