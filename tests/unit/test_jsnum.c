/*
** Unit test of kustomer_fmt_number() (src/jsnum.c) against a corpus of
** doubles and the text node's String(x) gives for them, written by
** tests/unit/gen_doubles.js.  Links only src/jsnum.c:
**
**   gcc -std=c11 -O2 -Isrc -o test_jsnum tests/unit/test_jsnum.c \
**       src/jsnum.c -lm
**   ./test_jsnum tests/unit/doubles.txt
**
** Prints "ok <group>" or "FAIL <group>: <detail>" per group (at most ten
** details per group, then a count) and exits non-zero on any failure.
*/
#include "kustomer.h"

#include <locale.h>
#include <stdarg.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Entry Entry;
struct Entry {
  uint64_t bits;
  double r;
  char zWant[KUSTOMER_NUMBUF];
};

static Entry *aEntry = 0;
static int nEntry = 0;
static int nGroupFail = 0;   /* groups that failed */

/* State of the group being checked. */
static const char *zGroup = 0;
static int nFail = 0;

static void group_begin(const char *z){
  zGroup = z;
  nFail = 0;
}
static void group_fail(const char *zFmt, ...)
  __attribute__((format(printf, 1, 2)));
static void group_fail(const char *zFmt, ...){
  if( nFail<10 ){
    va_list ap;
    printf("FAIL %s: ", zGroup);
    va_start(ap, zFmt);
    vprintf(zFmt, ap);
    va_end(ap);
    printf("\n");
  }
  nFail++;
}
static void group_end(void){
  if( nFail==0 ){
    printf("ok %s\n", zGroup);
  }else{
    if( nFail>10 ) printf("FAIL %s: %d failures in all\n", zGroup, nFail);
    nGroupFail++;
  }
  fflush(stdout);
}

static double from_bits(uint64_t b){
  double r;
  memcpy(&r, &b, sizeof(r));
  return r;
}
static uint64_t to_bits(double r){
  uint64_t b;
  memcpy(&b, &r, sizeof(b));
  return b;
}

/* Load the corpus; returns 0 on success. */
static int load_corpus(const char *zPath){
  FILE *in = fopen(zPath, "rb");
  char zLine[256];
  int nAlloc = 0;
  int iLine = 0;
  if( in==0 ){
    printf("FAIL jsnum: corpus: cannot open %s\n", zPath);
    return 1;
  }
  while( fgets(zLine, sizeof(zLine), in) ){
    char *zTab;
    char *zEnd;
    size_t n;
    iLine++;
    n = strlen(zLine);
    while( n>0 && (zLine[n-1]=='\n' || zLine[n-1]=='\r') ) zLine[--n] = 0;
    if( n==0 ) continue;
    zTab = strchr(zLine, '\t');
    if( zTab==0 || zTab-zLine!=16 || strlen(zTab+1)>=KUSTOMER_NUMBUF ){
      printf("FAIL jsnum: corpus: bad line %d\n", iLine);
      fclose(in);
      return 1;
    }
    if( nEntry>=nAlloc ){
      nAlloc = nAlloc ? nAlloc*2 : 1024;
      aEntry = realloc(aEntry, nAlloc*sizeof(Entry));
      if( aEntry==0 ){ fclose(in); return 1; }
    }
    *zTab = 0;
    aEntry[nEntry].bits = strtoull(zLine, &zEnd, 16);
    if( *zEnd ){
      printf("FAIL jsnum: corpus: bad hex on line %d\n", iLine);
      fclose(in);
      return 1;
    }
    aEntry[nEntry].r = from_bits(aEntry[nEntry].bits);
    strcpy(aEntry[nEntry].zWant, zTab+1);
    nEntry++;
  }
  fclose(in);
  return 0;
}

/*
** Format r into a buffer guarded on both sides, and check the returned
** length, the terminator and that nothing was written out of bounds.
** Returns a pointer to a static copy of the text, or 0 after reporting.
*/
static const char *fmt_checked(double r){
  static char zOut[KUSTOMER_NUMBUF];
  char aGuard[KUSTOMER_NUMBUF+32];
  char *z = &aGuard[16];
  int n, i;
  memset(aGuard, 0x5a, sizeof(aGuard));
  n = kustomer_fmt_number(r, z);
  for(i=0; i<16; i++){
    if( aGuard[i]!=0x5a || z[KUSTOMER_NUMBUF+i]!=0x5a ){
      group_fail("%016llx: wrote outside the buffer",
                 (unsigned long long)to_bits(r));
      return 0;
    }
  }
  if( n<0 || n>=KUSTOMER_NUMBUF || z[n]!=0 || (int)strlen(z)!=n ){
    group_fail("%016llx: bad length %d", (unsigned long long)to_bits(r), n);
    return 0;
  }
  memcpy(zOut, z, n+1);
  return zOut;
}

/* Every corpus value formats to node's text. */
static void check_corpus(const char *zName){
  int i;
  group_begin(zName);
  for(i=0; i<nEntry; i++){
    const char *z = fmt_checked(aEntry[i].r);
    if( z && strcmp(z, aEntry[i].zWant)!=0 ){
      group_fail("%016llx: got \"%s\", want \"%s\"",
                 (unsigned long long)aEntry[i].bits, z, aEntry[i].zWant);
    }
  }
  group_end();
}

/*
** The output reads back as the same double.  strtod wants the locale's
** radix character, so this runs in the "C" locale only.
*/
static void check_round_trip(void){
  int i;
  group_begin("jsnum: round trip");
  for(i=0; i<nEntry; i++){
    double r = aEntry[i].r;
    const char *z;
    char *zEnd;
    double y;
    if( isnan(r) || isinf(r) ) continue;
    z = fmt_checked(r);
    if( z==0 ) continue;
    y = strtod(z, &zEnd);
    if( *zEnd ){
      group_fail("%016llx: \"%s\" not fully read",
                 (unsigned long long)aEntry[i].bits, z);
    }else if( r==0.0 ? y!=0.0 || signbit(y) : to_bits(y)!=aEntry[i].bits ){
      group_fail("%016llx: \"%s\" reads back as %016llx",
                 (unsigned long long)aEntry[i].bits, z,
                 (unsigned long long)to_bits(y));
    }
  }
  group_end();
}

/* Values that do not need the corpus, including ones it cannot hold. */
static void check_special(void){
  static const struct { double r; const char *zWant; } aCase[] = {
    { 0.0, "0" }, { -0.0, "0" }, { 1.0, "1" }, { -1.0, "-1" },
    { 1.5, "1.5" }, { 123.0, "123" }, { 0.000001, "0.000001" },
    { 1.5e-7, "1.5e-7" }, { 1e21, "1e+21" }, { -1.2345e100, "-1.2345e+100" },
    { 5e-324, "5e-324" }, { 123456789012345680000.0, "123456789012345680000" },
    { 0.1, "0.1" }, { 1e-7, "1e-7" }, { 1e-6, "0.000001" },
    { -2.2250738585072014e-308, "-2.2250738585072014e-308" },
    { -1.7976931348623157e308, "-1.7976931348623157e+308" },
    { -0.000001234567890123456, "-0.000001234567890123456" },
    { 9007199254740993.0, "9007199254740992" },
  };
  int i;
  const char *z;
  group_begin("jsnum: special values");
  for(i=0; i<(int)(sizeof(aCase)/sizeof(aCase[0])); i++){
    z = fmt_checked(aCase[i].r);
    if( z && strcmp(z, aCase[i].zWant)!=0 ){
      group_fail("%.17g: got \"%s\", want \"%s\"", aCase[i].r, z,
                 aCase[i].zWant);
    }
  }
  z = fmt_checked(NAN);
  if( z && strcmp(z, "NaN")!=0 ) group_fail("NaN: got \"%s\"", z);
  z = fmt_checked(-NAN);
  if( z && strcmp(z, "NaN")!=0 ) group_fail("-NaN: got \"%s\"", z);
  z = fmt_checked(from_bits(0x7ff0000000000001ULL));
  if( z && strcmp(z, "NaN")!=0 ) group_fail("sNaN: got \"%s\"", z);
  z = fmt_checked(INFINITY);
  if( z && strcmp(z, "Infinity")!=0 ) group_fail("Infinity: got \"%s\"", z);
  z = fmt_checked(-INFINITY);
  if( z && strcmp(z, "-Infinity")!=0 ) group_fail("-Infinity: got \"%s\"", z);
  group_end();
}

/*
** The corpus again with a locale whose radix character is not '.'.
** de_DE has ','; ps_AF has U+066B, two bytes in UTF-8.
*/
static void check_locales(void){
  static const char *azLocale[] = { "de_DE.UTF-8", "ps_AF.UTF-8" };
  int i;
  int nRun = 0;
  for(i=0; i<(int)(sizeof(azLocale)/sizeof(azLocale[0])); i++){
    char zName[100];
    char zProbe[32];
    if( setlocale(LC_NUMERIC, azLocale[i])==0 ) continue;
    snprintf(zProbe, sizeof(zProbe), "%.1f", 1.5);
    snprintf(zName, sizeof(zName), "jsnum: locale independence (%s, %s)",
             azLocale[i], zProbe);
    check_corpus(zName);
    setlocale(LC_NUMERIC, "C");
    nRun++;
  }
  if( nRun==0 ){
    printf("ok jsnum: locale independence # skipped, de_DE.UTF-8 not"
           " installed\n");
  }
}

int main(int argc, char **argv){
  char zName[64];
  if( argc!=2 ){
    fprintf(stderr, "usage: %s doubles.txt\n", argv[0]);
    return 2;
  }
  if( load_corpus(argv[1]) ) return 1;
  snprintf(zName, sizeof(zName), "jsnum: corpus (%d values)", nEntry);
  check_corpus(zName);
  check_round_trip();
  check_special();
  check_locales();
  free(aEntry);
  return nGroupFail ? 1 : 0;
}
