/*
** Numbers as JavaScript writes them.
**
** kustomer_fmt_number() produces the text of ECMAScript Number::toString
** (radix 10), which is also what JSON.stringify writes for a finite number:
** the fewest significant digits that read back as the same double (the
** closest such digits when there is a choice), plain notation for decimal
** exponents in [-6, 21) and exponent notation otherwise.
**
** Three ways to the digits, cheapest first:
**
**   1. An exact integer below 2^53 is printed as an integer.  No shorter
**      decimal reads back to it, so its digits are the answer.
**   2. A value that some decimal of at most 15 digits represents is found
**      with one multiplication by an exact power of ten and verified with
**      one correctly rounded division (or multiplication).
**   3. Otherwise snprintf("%.*e") (correctly rounded in glibc) gives 17
**      digits; the 15 and 16 digit roundings of them are checked first by
**      reading them back with strtod.
**
** Nothing here allocates, and nothing depends on LC_NUMERIC: the digits are
** taken from snprintf's output whatever its radix character is, and the
** text handed to strtod has no radix character at all ("1234e-7").
*/
#include "kustomer.h"

#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Powers of ten that are exact doubles. */
static const double aPow10[23] = {
  1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

static const char aDigitPair[] =
  "00010203040506070809101112131415161718192021222324252627282930313233343536"
  "37383940414243444546474849505152535455565758596061626364656667686970717273"
  "74757677787980818283848586878889909192939495969798990";

/*
** Write the decimal digits of v (no terminator) to z and return how many.
** Two digits per division: this is the path most numbers take.
*/
static int u64_digits(uint64_t v, char *z){
  char aTmp[20];
  int i = 20;
  int n;
  while( v>=100 ){
    unsigned d = (unsigned)(v % 100);
    v /= 100;
    aTmp[--i] = aDigitPair[2*d+1];
    aTmp[--i] = aDigitPair[2*d];
  }
  if( v>=10 ){
    aTmp[--i] = aDigitPair[2*v+1];
    aTmp[--i] = aDigitPair[2*v];
  }else{
    aTmp[--i] = (char)('0' + v);
  }
  n = 20 - i;
  memcpy(z, &aTmp[i], n);
  return n;
}

/*
** Lay out nDig significant digits (no trailing zero, nDig>=1) whose value
** is 0.DIGITS times 10^n the way Number::toString does, with a leading '-'
** if bNeg.  Returns the length written; z is NUL-terminated.
*/
static int js_layout(char *z, int bNeg, const char *zDig, int nDig, int n){
  int i = 0;
  if( bNeg ) z[i++] = '-';
  if( nDig<=n && n<=21 ){
    /* An integer: the digits, then zeros up to the decimal point. */
    memcpy(&z[i], zDig, nDig);
    i += nDig;
    memset(&z[i], '0', n-nDig);
    i += n-nDig;
  }else if( 0<n && n<=21 ){
    memcpy(&z[i], zDig, n);
    i += n;
    z[i++] = '.';
    memcpy(&z[i], &zDig[n], nDig-n);
    i += nDig-n;
  }else if( -6<n && n<=0 ){
    z[i++] = '0';
    z[i++] = '.';
    memset(&z[i], '0', -n);
    i += -n;
    memcpy(&z[i], zDig, nDig);
    i += nDig;
  }else{
    int e = n-1;
    z[i++] = zDig[0];
    if( nDig>1 ){
      z[i++] = '.';
      memcpy(&z[i], &zDig[1], nDig-1);
      i += nDig-1;
    }
    z[i++] = 'e';
    if( e<0 ){
      z[i++] = '-';
      e = -e;
    }else{
      z[i++] = '+';
    }
    i += u64_digits((uint64_t)e, &z[i]);
  }
  z[i] = 0;
  return i;
}

/*
** Path 2.  For a normal a>0, look for the decimal m*10^-k (m an integer
** of at most 15 digits) that reads back as a.  Reading back a decimal of
** this kind is one IEEE operation on exact operands (m/10^k or m*10^-k,
** both below 2^53 and 10^22), and a correctly rounded operation is what
** strtod does, so the check is exact.  Two decimals of 15 significant
** digits are further apart than any double's rounding interval is wide,
** so the one found is the only one of <=15 digits: the shortest once its
** trailing zeros go.
**
** Returns 1 with *pM and *pK set if found, 0 if not found but no decimal
** of 15 or fewer digits exists, or -1 if this path cannot tell.
*/
static int fast_decimal(double a, uint64_t a64, uint64_t *pM, int *pK){
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD==0
  int b = (int)(a64>>52) - 1023;  /* 2^b <= a < 2^(b+1) */
  int e10;                        /* floor(log10(a)) or one less */
  int k;
  double x;
  uint64_t m;
  int d;

  /* floor(b*log10(2)); 78913/2^18 is close enough for |b|<=1023.  Written
  ** without shifting a negative number, whose result C leaves open. */
  e10 = b>=0 ? (b*78913)>>18 : -((-b*78913 + 262143)>>18);
  k = 14 - e10;
  for(;;){
    if( k<-22 || k>22 ) return -1;
    x = k>=0 ? a*aPow10[k] : a/aPow10[-k];
    if( x<1e15 ) break;
    k--;    /* e10 was one too small; happens once at most */
  }
  /* The computed x is within 1/16 of the exact a*10^k (its ulp is at
  ** most 1/8), so the correctly rounded 15 digits are m-1, m or m+1. */
  m = (uint64_t)(x + 0.5);
  for(d=0; d<3; d++){
    uint64_t mTry = d==0 ? m : d==1 ? m-1 : m+1;
    double y;
    if( mTry>1000000000000000ULL ) continue;  /* 16 digits: not ours */
    y = k>=0 ? (double)mTry/aPow10[k] : (double)mTry*aPow10[-k];
    if( y==a ){
      *pM = mTry;
      *pK = k;
      return 1;
    }
  }
  /* The correctly rounded 15 digits, the closest 15-digit decimal to a,
  ** do not read back; as no two 15-digit decimals fit in one rounding
  ** interval, neither does any other of 15 digits or fewer.  This needs
  ** x to have had 15 digits, with room for m+1. */
  if( x>=1e14+1 && x<1e15-2 ) return 0;
  return -1;
#else
  /* With excess precision (x87) the checks above are not single roundings
  ** to double, so they prove nothing. */
  (void)a; (void)a64; (void)pM; (void)pK;
  return -1;
#endif
}

/*
** The correctly rounded p significant digits of a>0, from snprintf.  The
** digits go to zDig (p of them, no terminator); returns the decimal
** exponent of the first digit.  Whatever bytes stand between the first
** digit and the 'e' other than digits are the locale's radix character,
** which may be ',' or a multi-byte character, and are skipped.
*/
static int sci_digits(double a, int p, char *zDig){
  char zBuf[64];
  const char *z;
  int j = 0;
  int e = 0;
  int bNegExp = 0;
  snprintf(zBuf, sizeof(zBuf), "%.*e", p-1, a);
  for(z=zBuf; *z && *z!='e'; z++){
    if( *z>='0' && *z<='9' && j<p ) zDig[j++] = *z;
  }
  if( *z=='e' ) z++;
  if( *z=='-' ){ bNegExp = 1; z++; }
  else if( *z=='+' ){ z++; }
  while( *z>='0' && *z<='9' ){ e = e*10 + (*z - '0'); z++; }
  return bNegExp ? -e : e;
}

/*
** Read back the p digits zDig with the first digit's exponent e10.  The
** text is written as an integer times a power of ten so that strtod needs
** no radix character, which would depend on LC_NUMERIC.
*/
static double read_back(const char *zDig, int p, int e10){
  char zNum[48];
  int i = p;
  int e = e10 - (p-1);
  memcpy(zNum, zDig, p);
  zNum[i++] = 'e';
  if( e<0 ){ zNum[i++] = '-'; e = -e; }
  i += u64_digits((uint64_t)e, &zNum[i]);
  zNum[i] = 0;
  return strtod(zNum, 0);
}

/*
** Add one unit in the last place to the p digits zDig.  Returns 1 if that
** carried out of the first digit (the digits became 100..0 and the
** exponent must grow by one).
*/
static int digits_inc(char *zDig, int p){
  int i = p-1;
  while( i>=0 && zDig[i]=='9' ){ zDig[i] = '0'; i--; }
  if( i<0 ){
    zDig[0] = '1';
    return 1;
  }
  zDig[i]++;
  return 0;
}

/*
** The correctly rounded p digits of a (p<17), taken from its correctly
** rounded 17 digits z17 (exponent e17) when that is safe, from snprintf
** otherwise.  Rounding twice goes wrong only when the dropped digits are
** exactly 5 or 50: a 17-digit tie that the exact value may lie on either
** side of.  Writes p digits to zDig and returns their exponent.
*/
static int round_digits(double a, const char *z17, int e17, int p,
                        char *zDig){
  int iCut = z17[p]-'0';
  int bTie = iCut==5;
  int i;
  for(i=p+1; bTie && i<17; i++){
    if( z17[i]!='0' ) bTie = 0;
  }
  if( bTie ) return sci_digits(a, p, zDig);
  memcpy(zDig, z17, p);
  if( iCut>=5 && digits_inc(zDig, p) ) return e17+1;
  return e17;
}

/*
** Path 3: the shortest digits of a finite a>0 with snprintf and strtod.
** Writes them to zDig and returns the exponent of the first digit;
** *pnDig gets the count (trailing zeros are stripped by the caller).
** bSkip15 says path 2 proved that 15 digits do not suffice.
*/
static int slow_digits(double a, uint64_t a64, int bSkip15,
                       char *zDig, int *pnDig){
  char z17[20];
  int e17;
  int e10;
  int p;
  if( (a64>>52)==0 ){
    /* Subnormal: few significant bits, so 15-digit decimals are not
    ** unique and far fewer digits may do.  The rounding interval is
    ** symmetric here, so if p correctly rounded digits read back, so do
    ** p+1 (they are at least as close): search for the least p. */
    char zTry[20];
    int lo = 1, hi = 17;
    e10 = sci_digits(a, 17, zDig);
    p = 17;
    while( lo<hi ){
      int mid = (lo+hi)/2;
      int eTry = sci_digits(a, mid, zTry);
      if( read_back(zTry, mid, eTry)==a ){
        hi = mid;
        memcpy(zDig, zTry, mid);
        e10 = eTry;
        p = mid;
      }else{
        lo = mid+1;
      }
    }
    *pnDig = p;
    return e10;
  }

  /* A normal double.  One snprintf gives 17 digits, which always read
  ** back; 15 and 16 digits are mostly derived from them. */
  e17 = sci_digits(a, 17, z17);

  /* If any decimal of 15 or fewer digits reads back, the correctly
  ** rounded 15 digits are that decimal (see fast_decimal). */
  if( !bSkip15 ){
    e10 = round_digits(a, z17, e17, 15, zDig);
    if( read_back(zDig, 15, e10)==a ){
      *pnDig = 15;
      return e10;
    }
  }

  /* Sixteen digits: the correctly rounded ones are the closest, and win
  ** if they read back.  If they do not, another 16-digit decimal still
  ** can when a is a power of two: the interval below a is half as wide as
  ** the one above, so the closest decimal may lie just outside below while
  ** the next one up lies inside above.  ECMAScript wants those 16 digits,
  ** not 17. */
  e10 = round_digits(a, z17, e17, 16, zDig);
  {
    double y = read_back(zDig, 16, e10);
    if( y==a ){
      *pnDig = 16;
      return e10;
    }
    if( y<a && (a64 & 0x000fffffffffffffULL)==0 && (a64>>52)>1 ){
      char zUp[16];
      int eUp = e10;
      memcpy(zUp, zDig, 16);
      if( digits_inc(zUp, 16) ) eUp++;
      if( read_back(zUp, 16, eUp)==a ){
        memcpy(zDig, zUp, 16);
        *pnDig = 16;
        return eUp;
      }
    }
  }

  /* Seventeen correctly rounded digits always read back. */
  memcpy(zDig, z17, 17);
  *pnDig = 17;
  return e17;
}

int kustomer_fmt_number(double r, char *zBuf){
  uint64_t r64;
  uint64_t a64;
  double a;
  int bNeg;
  char zDig[24];
  int nDig;
  int e10;
  int rc;
  uint64_t m;
  int k;

  if( r!=r ){
    memcpy(zBuf, "NaN", 4);
    return 3;
  }

  /* Exact integers below 2^53, -0 included.  No shorter decimal reads
  ** back to such an integer, so its own digits are the shortest. */
  if( r>-9007199254740992.0 && r<9007199254740992.0 ){
    int64_t i = (int64_t)r;
    if( (double)i==r ){
      int n = 0;
      uint64_t u = (uint64_t)i;
      if( i<0 ){
        zBuf[n++] = '-';
        u = (uint64_t)0 - u;
      }
      n += u64_digits(u, &zBuf[n]);
      zBuf[n] = 0;
      return n;
    }
  }

  memcpy(&r64, &r, sizeof(r64));
  bNeg = (int)(r64>>63);
  a64 = r64 & 0x7fffffffffffffffULL;
  memcpy(&a, &a64, sizeof(a));
  if( (a64>>52)==0x7ff ){
    if( bNeg ){
      memcpy(zBuf, "-Infinity", 10);
      return 9;
    }
    memcpy(zBuf, "Infinity", 9);
    return 8;
  }

  rc = (a64>>52)!=0 ? fast_decimal(a, a64, &m, &k) : -1;
  if( rc==1 ){
    nDig = u64_digits(m, zDig);
    e10 = nDig - 1 - k;
  }else{
    e10 = slow_digits(a, a64, rc==0, zDig, &nDig);
  }
  while( nDig>1 && zDig[nDig-1]=='0' ) nDig--;
  return js_layout(zBuf, bNeg, zDig, nDig, e10+1);
}
