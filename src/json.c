/*
** JSON in and out.
**
** Input is parsed by cJSON, after a pre-scan that rejects what cJSON would
** accept silently or lose (what RFC 8259 refuses, invalid UTF-8, a \u0000
** escape, which cJSON truncates at, and nesting deep enough to matter).  Events are first
** scanned, and only the members that are read are parsed, into the nodes
** cJSON would make (kustomer_json_parse_some); an object that would
** be written back as it came (properties, mostly) can be validated in that
** scan and later copied from the text, never parsed.  Output never goes
** through cJSON's printer, whose numbers lose precision: it is written into
** an sqlite3_str with JavaScript's number and string rules, so that the
** bytes match what RudderStack's JavaScript transformer emits.
*/
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#define JSON_SSE2 1
#endif
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

/* Length of a valid UTF-8 sequence starting at z (n bytes left), else 0. */
static int utf8_len(const unsigned char *z, size_t n){
  unsigned c = z[0];
  if( c<0xC2 ) return 0;
  if( c<0xE0 ){
    return (n>=2 && (z[1]&0xC0)==0x80) ? 2 : 0;
  }
  if( c<0xF0 ){
    if( n<3 || (z[1]&0xC0)!=0x80 || (z[2]&0xC0)!=0x80 ) return 0;
    if( c==0xE0 && z[1]<0xA0 ) return 0;          /* overlong */
    if( c==0xED && z[1]>=0xA0 ) return 0;         /* UTF-16 surrogate */
    return 3;
  }
  if( c<0xF5 ){
    if( n<4 || (z[1]&0xC0)!=0x80 || (z[2]&0xC0)!=0x80
     || (z[3]&0xC0)!=0x80 ) return 0;
    if( c==0xF0 && z[1]<0x90 ) return 0;          /* overlong */
    if( c==0xF4 && z[1]>=0x90 ) return 0;         /* above U+10FFFF */
    return 4;
  }
  return 0;
}

/*
** What a byte is, for the scans below and for writing strings.  Inside a
** string only bytes of a class other than JB_PLAIN need a closer look, so
** runs of plain text are skipped one table lookup per byte.  Written out,
** bytes of class JB_QUOTE and above are escaped.
*/
#define JB_PLAIN  0   /* printable ASCII other than '"' and '\\' */
#define JB_HIGH   1   /* 0x80 and above: part of a UTF-8 sequence */
#define JB_QUOTE  2   /* '"' */
#define JB_BSLASH 3   /* '\\' */
#define JB_CTRL   4   /* below 0x20, NUL included */
static const unsigned char aJsonByte[256] = {
  4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
  4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
  0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/*
** The first byte at or after z that is not JB_PLAIN.  Strings are most of
** an event's bytes (user agents, URLs, ids): they are skipped 16 bytes at a
** time where SSE2 is there (all x86-64), then byte by byte, which stops at
** the NUL that ends every text here.  Loads stay before zEnd.
*/
static const unsigned char *skip_plain(const unsigned char *z,
                                       const unsigned char *zEnd){
#ifdef JSON_SSE2
  const __m128i vQuote = _mm_set1_epi8('"');
  const __m128i vSlash = _mm_set1_epi8('\\');
  const __m128i vSpace = _mm_set1_epi8(' ');
  while( zEnd-z>=16 ){
    __m128i v = _mm_loadu_si128((const __m128i*)z);
    /* signed: below ' ' is a control byte or one of 0x80 and above */
    __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, vQuote),
                                          _mm_cmpeq_epi8(v, vSlash)),
                             _mm_cmplt_epi8(v, vSpace));
    int mask = _mm_movemask_epi8(m);
    if( mask ) return z + __builtin_ctz((unsigned)mask);
    z += 16;
  }
#else
  (void)zEnd;
#endif
  while( aJsonByte[*z]==JB_PLAIN ) z++;
  return z;
}

/* The value of four hex digits at z, or 0x10000 if they are not. */
static unsigned scan_hex4(const unsigned char *z){
  unsigned v = 0;
  int k;
  for(k=0; k<4; k++){
    unsigned c = z[k];
    if( c>='0' && c<='9' ) v = v*16 + (c-'0');
    else if( c>='a' && c<='f' ) v = v*16 + (c-'a'+10);
    else if( c>='A' && c<='F' ) v = v*16 + (c-'A'+10);
    else return 0x10000;
  }
  return v;
}

static int is_digit(unsigned c){ return c>='0' && c<='9'; }

/* The length of the escape at z (its backslash): 2, 6, or 12 for a
** surrogate pair; else one of these problems.  Reads stop at the text's
** terminating NUL. */
#define JESC_BAD  (-1)    /* not one of JSON's escapes */
#define JESC_HEX  (-2)    /* \u without four hex digits */
#define JESC_NUL  (-3)    /* \u0000 */
#define JESC_LONE (-4)    /* a surrogate escape without its pair */
static int escape_len(const unsigned char *z){
  unsigned u, v;
  switch( z[1] ){
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r':
    case 't':
      return 2;
    case 'u':
      break;
    default:
      return JESC_BAD;
  }
  u = scan_hex4(&z[2]);
  if( u==0x10000 ) return JESC_HEX;
  if( u==0 ) return JESC_NUL;
  if( u>=0xdc00 && u<=0xdfff ) return JESC_LONE;
  if( u<0xd800 || u>0xdbff ) return 6;
  if( z[6]!='\\' || z[7]!='u' ) return JESC_LONE;
  v = scan_hex4(&z[8]);
  return v>=0xdc00 && v<=0xdfff ? 12 : JESC_LONE;
}

/* The pre-scan's message for escape_len()'s problem e at offset i. */
static char *escape_error(int e, size_t i){
  const char *zFmt =
      e==JESC_NUL ? "contains \\u0000 at offset %lld, which is not supported"
    : e==JESC_HEX ? "is not valid JSON (bad \\u escape at offset %lld)"
    : e==JESC_LONE ? "is not valid JSON (unpaired surrogate escape at offset "
                     "%lld)"
    : "is not valid JSON (bad escape at offset %lld)";
  return sqlite3_mprintf(zFmt, (sqlite3_int64)i);
}

/* Past the JSON number at z (a '-' or a digit), or NULL when the run of
** number characters there is not exactly one (01, 1., 1.5.2, -, 1e).  The
** text ends in a NUL, as kustomer_json_parse() requires. */
static const unsigned char *number_end(const unsigned char *z){
  if( *z=='-' ) z++;
  if( *z=='0' ){
    z++;
  }else if( is_digit(*z) ){
    while( is_digit(*z) ) z++;
  }else{
    return 0;
  }
  if( *z=='.' ){
    if( !is_digit(*++z) ) return 0;
    while( is_digit(*z) ) z++;
  }
  if( *z=='e' || *z=='E' ){
    if( *++z=='+' || *z=='-' ) z++;
    if( !is_digit(*z) ) return 0;
    while( is_digit(*z) ) z++;
  }
  if( is_digit(*z) || *z=='.' || *z=='e' || *z=='E' || *z=='+' || *z=='-' ){
    return 0;
  }
  return z;
}
/*
** The checks cJSON does not make.  Returns NULL or an error message.
** cJSON is lenient where RFC 8259 (and SQLite's json()) is not: it reads
** 01 and 1. as numbers, any byte below 0x20 as whitespace, control
** characters inside strings, and a \u escape with bad hex digits as U+0000,
** which cuts the string short.  Those, a \u0000 escape, an unpaired
** surrogate escape, invalid UTF-8 and deep nesting are refused here.
** Strings are tracked by their quotes and escapes only, whatever the
** syntax around them: the first problem in text order is reported even in
** a document that cJSON would then reject for another reason.
*/
static char *json_prescan(const unsigned char *z, size_t n){
  size_t i = 0;
  int depth = 0;
  while( i<n ){
    unsigned c = z[i];
    if( c=='"' ){
      for(i++; i<n; i++){
        c = z[i];
        if( aJsonByte[c]==JB_PLAIN ) continue;
        if( c=='"' ) break;
        if( c=='\\' ){
          int k;
          if( i+1>=n ) continue;    /* unterminated: cJSON says so */
          k = escape_len(&z[i]);
          if( k<0 ) return escape_error(k, i);
          i += k-1;
        }else if( c==0 ){
          break;    /* reported below */
        }else if( c<0x20 ){
          return sqlite3_mprintf("is not valid JSON (control character "
                                 "0x%02x in a string at offset %lld)", c,
                                 (sqlite3_int64)i);
        }else if( c>=0x80 ){
          int k = utf8_len(&z[i], n-i);
          if( k==0 ) break;
          i += k-1;
        }
      }
      if( i>=n ) break;
      if( c=='"' ){
        i++;
        continue;
      }
    }
    if( c==0 ){
      return sqlite3_mprintf("contains a NUL byte at offset %lld",
                             (sqlite3_int64)i);
    }
    if( c>=0x80 ){
      int k = utf8_len(&z[i], n-i);
      if( k==0 ){
        return sqlite3_mprintf("is not valid UTF-8 (byte 0x%02x at offset "
                               "%lld)", c, (sqlite3_int64)i);
      }
      i += k;
    }else if( c<0x20 && c!='\t' && c!='\n' && c!='\r' ){
      return sqlite3_mprintf("is not valid JSON (control character 0x%02x "
                             "at offset %lld)", c, (sqlite3_int64)i);
    }else if( c=='-' || is_digit(c) ){
      const unsigned char *zEnd = number_end(&z[i]);
      if( zEnd==0 ){
        return sqlite3_mprintf("is not valid JSON (bad number at offset "
                               "%lld)", (sqlite3_int64)i);
      }
      i = (size_t)(zEnd-z);
    }else{
      if( c=='[' || c=='{' ){
        if( ++depth>KUSTOMER_MAX_DEPTH ){
          return sqlite3_mprintf("is nested deeper than %d levels",
                                 KUSTOMER_MAX_DEPTH);
        }
      }else if( c==']' || c=='}' ){
        depth--;
      }
      i++;
    }
  }
  return 0;
}

static cJSON *json_parse(const char *z, int n, char **pzErr){
  const char *zEnd = 0;
  cJSON *p;
  *pzErr = 0;
  if( n>KUSTOMER_MAX_JSON ){
    *pzErr = sqlite3_mprintf("is larger than the %d byte limit",
                             KUSTOMER_MAX_JSON);
    return 0;
  }
  *pzErr = json_prescan((const unsigned char*)z, (size_t)n);
  if( *pzErr ) return 0;
  /* n+1: the terminator is part of the buffer, which is how cJSON's
  ** require_null_terminated mode turns trailing text into an error. */
  p = cJSON_ParseWithLengthOpts(z, (size_t)n+1, &zEnd, 1);
  if( p==0 ){
    sqlite3_int64 iOff = (zEnd && zEnd>=z && zEnd<=z+n) ? zEnd-z : 0;
    if( iOff>=n ){
      *pzErr = sqlite3_mprintf("is not valid JSON (unexpected end)");
    }else{
      *pzErr = sqlite3_mprintf("is not valid JSON (error at offset %lld)",
                               iOff);
    }
  }
  return p;
}

cJSON *kustomer_json_parse(const char *z, int n, char **pzErr){
  char *zErr = 0;
  cJSON *p = json_parse(z, n, pzErr ? pzErr : &zErr);
  sqlite3_free(zErr);
  return p;
}

/* ---- Parsing only the members that are read ----------------------------
**
** An event is mostly members the transformation never reads (context.app,
** context.page, timestamps, integrations, ...), and cJSON's cost is one
** allocation per value and per string, then as many frees.  So the text is
** first scanned once, which both makes the pre-scan's checks and proves it
** valid JSON, and the members that are read are copied into a shorter
** document, whose tree is then built in one block (tree_build() below).
**
** The scan is only ever a shortcut.  It says yes only to text that cJSON and
** the pre-scan accept, and whose values cJSON reads the same in the copy:
** strict RFC 8259 syntax, whitespace limited to the four JSON characters,
** valid UTF-8, no control characters in strings, numbers of at most 63
** characters (some cJSON versions read no more), no \u0000 and no unpaired
** surrogate escape, nesting within KUSTOMER_MAX_DEPTH.  Anything else,
** errors included, goes to kustomer_json_parse(), which is then the whole
** story.  Values of members that are kept are read from the same bytes in
** both documents, into the same nodes, so they come out the same.
*/

/*
** The scan functions take the position of a construct and return the
** position just past it, or NULL when it is not one that the shortcut may
** take.  They rely on the NUL after the text (kustomer_json_parse() needs
** it too): it is not whitespace, not part of any token and of class
** JB_CTRL, so every loop stops there without comparing against the end.  A
** NUL inside the text stops them the same way, and fails the scan.
*/
typedef const unsigned char *ScanPos;

static ScanPos skip_ws(ScanPos z){
  while( *z<=' ' && (*z==' ' || *z=='\n' || *z=='\r' || *z=='\t') ) z++;
  return z;
}

/* The rest of a string from z, which is past its opening quote and at a
** byte that is not JB_PLAIN.  zEnd is the end of the text. */
static ScanPos scan_string_rest(ScanPos z, ScanPos zEnd){
  while( 1 ){
    unsigned c;
    z = skip_plain(z, zEnd);
    c = *z;
    if( c=='"' ) return z+1;
    if( c>=0x80 ){
      int k = utf8_len(z, (size_t)(zEnd-z));
      if( k==0 ) return 0;
      z += k;
    }else if( c!='\\' ){
      return 0;       /* a control character, or the end */
    }else{
      int k = escape_len(z);
      if( k<0 ) return 0;
      z += k;
    }
  }
}

/* A string at z (its opening quote).  Most strings are plain ASCII: they
** are done here without a call. */
static ScanPos scan_string(ScanPos z, ScanPos zEnd){
  z = skip_plain(z+1, zEnd);
  return *z=='"' ? z+1 : scan_string_rest(z, zEnd);
}

static ScanPos scan_number(ScanPos z){
  ScanPos zEnd = number_end(z);
  if( zEnd && zEnd-z>63 ) return 0;   /* some cJSON versions read only 63 */
  return zEnd;
}

static ScanPos scan_word(ScanPos z, ScanPos zEnd, const char *zWord,
                         size_t nWord){
  if( (size_t)(zEnd-z)<nWord || memcmp(z, zWord, nWord)!=0 ) return 0;
  return z + nWord;
}

static ScanPos scan_object(ScanPos, ScanPos, int);
static ScanPos scan_array(ScanPos, ScanPos, int);

/* A value inside a container at depth iDepth (the root is at depth 0).
** Callers scan strings, the commonest values, themselves: no call. */
static ScanPos scan_value(ScanPos z, ScanPos zEnd, int iDepth){
  switch( *z ){
    case '"': return scan_string(z, zEnd);
    case '{': return scan_object(z, zEnd, iDepth+1);
    case '[': return scan_array(z, zEnd, iDepth+1);
    case 't': return scan_word(z, zEnd, "true", 4);
    case 'f': return scan_word(z, zEnd, "false", 5);
    case 'n': return scan_word(z, zEnd, "null", 4);
    default:  return scan_number(z);
  }
}

/* An array at depth iDepth. */
static ScanPos scan_array(ScanPos z, ScanPos zEnd, int iDepth){
  if( iDepth>KUSTOMER_MAX_DEPTH ) return 0;
  z = skip_ws(z+1);
  if( *z==']' ) return z+1;
  while( 1 ){
    z = *z=='"' ? scan_string(z, zEnd) : scan_value(z, zEnd, iDepth);
    if( z==0 ) return 0;
    z = skip_ws(z);
    if( *z==']' ) return z+1;
    if( *z!=',' ) return 0;
    z = skip_ws(z+1);
  }
}

/* An object at depth iDepth. */
static ScanPos scan_object(ScanPos z, ScanPos zEnd, int iDepth){
  if( iDepth>KUSTOMER_MAX_DEPTH ) return 0;
  z = skip_ws(z+1);
  if( *z=='}' ) return z+1;
  while( 1 ){
    if( *z!='"' ) return 0;
    z = scan_string(z, zEnd);
    if( z==0 ) return 0;
    z = skip_ws(z);
    if( *z!=':' ) return 0;
    z = skip_ws(z+1);
    z = *z=='"' ? scan_string(z, zEnd) : scan_value(z, zEnd, iDepth);
    if( z==0 ) return 0;
    z = skip_ws(z);
    if( *z=='}' ) return z+1;
    if( *z!=',' ) return 0;
    z = skip_ws(z+1);
  }
}

const char *kustomer_json_scan(const char *z, const char *zEnd){
  ScanPos p = skip_ws((ScanPos)z);
  if( p>=(ScanPos)zEnd ) return 0;
  p = *p=='"' ? scan_string(p, (ScanPos)zEnd) : scan_value(p, (ScanPos)zEnd, 0);
  return (p && p<=(ScanPos)zEnd) ? (const char*)p : 0;
}

/* The first bytes of a keep list's keys, as a 256-bit set: made once per
** object walked, it lets most members skip the list. */
typedef struct KeepFirst KeepFirst;
struct KeepFirst {
  sqlite3_uint64 a[4];
};

static void keep_first(const KJsonKeep *aKeep, KeepFirst *p){
  memset(p, 0, sizeof(*p));
  for(; aKeep && aKeep->zKey; aKeep++){
    unsigned char c = (unsigned char)aKeep->zKey[0];
    p->a[c>>6] |= (sqlite3_uint64)1 << (c & 63);
  }
}

/* Whether the n bytes at z hold a '.' or a '\\'; zEnd bounds the loads. */
static int key_is_odd(ScanPos z, size_t n, ScanPos zEnd){
  size_t i = 0;
#ifdef JSON_SSE2
  const __m128i vDot = _mm_set1_epi8('.');
  const __m128i vSlash = _mm_set1_epi8('\\');
  for(; i<n && zEnd-(z+i)>=16; i+=16){
    __m128i v = _mm_loadu_si128((const __m128i*)(z+i));
    unsigned m = (unsigned)_mm_movemask_epi8(
        _mm_or_si128(_mm_cmpeq_epi8(v, vDot), _mm_cmpeq_epi8(v, vSlash)));
    if( n-i<16 ) m &= (1u<<(n-i)) - 1;
    if( m ) return 1;
  }
#else
  (void)zEnd;
#endif
  for(; i<n; i++){
    if( z[i]=='.' || z[i]=='\\' ) return 1;
  }
  return 0;
}

/*
** Whether the member with the n-byte raw key z (as written, between its
** quotes) is kept, and in *ppKeep its entry in aKeep (NULL: kept whole).
** pFirst is keep_first() of aKeep.  A key with an escape or a dot is kept
** whole: the first may spell a listed key, and a dotted path may name the
** second as one segment.
*/
static int scan_keep(const KJsonKeep *aKeep, const KeepFirst *pFirst,
                     ScanPos z, size_t n, ScanPos zEnd,
                     const KJsonKeep **ppKeep){
  const unsigned char c0 = n ? z[0] : 0;
  size_t i;
  *ppKeep = 0;
  if( (pFirst->a[c0>>6] >> (c0 & 63)) & 1 ){
    for(; aKeep->zKey; aKeep++){
      /* Inline, not strncmp().  A key in the text has no NUL, so a
      ** shorter zKey stops at its own. */
      const char *zKey = aKeep->zKey;
      if( zKey[0]!=(char)c0 ) continue;
      for(i=1; i<n && zKey[i]==(char)z[i]; i++){}
      if( i>=n && zKey[n]==0 ){
        *ppKeep = aKeep;
        return 1;
      }
    }
  }
  return key_is_odd(z, n, zEnd);
}

/* The copy of the members that are kept: never longer than the text. */
typedef struct ScanOut ScanOut;
struct ScanOut {
  char *z;
  size_t n;
  ScanPos zRaw;             /* the KKEEP_RAW member's value */
  size_t nRaw;
  int nRawSeen;             /* its occurrences */
  int bRawOdd;              /* a key kept for its escape or '.' beside it */
  KJsonRaw *pRaw;           /* the caller's, or NULL */
  int bRawChecked;          /* raw_top() took the bRaw member */
};

static void scan_out(ScanOut *pOut, const void *z, size_t n){
  memcpy(&pOut->z[pOut->n], z, n);
  pOut->n += n;
}

/* ---- Writing a value from its text -------------------------------------
**
** Most properties objects are written back exactly as they came: a parse
** and a re-serialisation of them only copies their tokens.  The raw_*
** functions below check text for that while they validate it as strictly
** as the scan above, so that the scan can take a properties object in the
** same single pass (scan_raw_member()), and cJSON never sees it.  Like the
** scan, they return NULL for anything unusual: the caller then takes the
** ordinary way.
*/

/* Keys of the objects open during a raw walk, innermost last. */
#define RAW_MAX_KEYS 256
typedef struct RawKeys RawKeys;
struct RawKeys {
  ScanPos az[RAW_MAX_KEYS];
  size_t an[RAW_MAX_KEYS];
  int n;
  int bRewrite;             /* whitespace, or a number to rewrite */
  KJsonRaw *pRec;           /* records the members of the next object */
  ScanPos zEnd;             /* end of the text */
};

static int raw_is_ws(unsigned c){
  return c==' ' || c=='\n' || c=='\r' || c=='\t';
}

static ScanPos raw_skip_ws(ScanPos z, RawKeys *pK){
  if( raw_is_ws(*z) ){
    pK->bRewrite = 1;
    z = skip_ws(z);
  }
  return z;
}

/* Past a valid string at z whose escapes are those JSON.stringify
** writes. */
static ScanPos raw_string(ScanPos z, ScanPos zEnd){
  z++;
  while( 1 ){
    unsigned c;
    z = skip_plain(z, zEnd);
    c = *z;
    if( c=='"' ) return z+1;
    if( c>=0x80 ){
      int k = utf8_len(z, (size_t)(zEnd-z));
      if( k==0 ) return 0;
      z += k;
      continue;
    }
    if( c!='\\' ) return 0;       /* a control character, or the end */
    c = z[1];
    if( c!='"' && c!='\\' && c!='b' && c!='f' && c!='n' && c!='r'
     && c!='t' ) return 0;
    z += 2;
  }
}

/* The double cJSON reads from the number at z (at most 63 characters, as
** the scans allow): strtod() of its characters, with the locale's decimal
** point for '.'.  *pn is the length read. */
static double number_value(ScanPos z, size_t *pn){
  /* Exact powers of ten: a mantissa below 2^53 divided by one of them is
  ** one correctly rounded operation, which is strtod()'s result. */
  static const double aExact10[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
    1e13, 1e14, 1e15
  };
  char zNum[64];
  char *zAfter = 0;
  double r;
  int i, nDigit = 0, nFrac = -1;
  sqlite3_uint64 m = 0;
  /* The common case, at most 15 digits and no exponent, without strtod() */
  for(i = z[0]=='-'; i<17; i++){
    unsigned c = z[i];
    if( is_digit(c) ){
      m = m*10 + (c-'0');
      nDigit++;
      if( nFrac>=0 ) nFrac++;
    }else if( c=='.' && nFrac<0 ){
      nFrac = 0;
    }else{
      break;
    }
  }
  if( nDigit>0 && nDigit<=15 && nFrac!=0 && z[i]!='e' && z[i]!='E'
   && !is_digit(z[i]) ){
    r = nFrac>0 ? (double)m / aExact10[nFrac] : (double)m;
    *pn = (size_t)i;
    return z[0]=='-' ? -r : r;
  }
  for(i=0; i<63; i++){
    unsigned c = z[i];
    if( is_digit(c) || c=='-' || c=='+' || c=='e' || c=='E' ){
      zNum[i] = (char)c;
    }else if( c=='.' ){
      zNum[i] = localeconv()->decimal_point[0];
    }else{
      break;
    }
  }
  zNum[i] = 0;
  r = strtod(zNum, &zAfter);
  *pn = (size_t)(zAfter-zNum);
  return r;
}

/*
** A valid number at z, as JavaScript would print the double it reads as:
** its sign, integer digits and fraction digits (trailing zeros dropped:
** 389.0 is 389).  Up to 15 significant digits a decimal reads as a double
** that no other such decimal reads as, so JavaScript's shortest round trip
** gives back these digits.  A number JavaScript prints otherwise (an
** exponent, more digits, below 1e-6) is marked bFmt: it is then written
** as the parse writes it, the double formatted (kustomer_json_number()).
** Returns the end of the number's text, or NULL if it is not one or is
** longer than the scans take.  *pbRewrite is set if the text may differ
** from the printed form.
*/
typedef struct RawNum RawNum;
struct RawNum {
  int bNeg;                 /* print a '-' */
  int bFmt;                 /* print the double: zInt is all of the text */
  ScanPos zInt, zFrac;      /* integer digits, fraction digits */
  size_t nInt, nFrac;
};

/* raw_number() for a number whose digits are not what JavaScript prints. */
static ScanPos raw_number_fmt(ScanPos zStart, RawNum *pNum, int *pbRewrite){
  ScanPos zEnd = number_end(zStart);
  if( zEnd==0 || zEnd-zStart>63 ) return 0;   /* as scan_number() */
  pNum->bFmt = 1;
  pNum->zInt = zStart;
  pNum->nInt = (size_t)(zEnd-zStart);
  *pbRewrite = 1;
  return zEnd;
}

static ScanPos raw_number(ScanPos z, RawNum *pNum, int *pbRewrite){
  int nSig, nLead = 0, bNegText = *z=='-';
  size_t nFracText;
  ScanPos zStart = z, zEnd;
  pNum->bNeg = bNegText;
  pNum->bFmt = 0;
  if( bNegText ) z++;
  pNum->zInt = z;
  while( is_digit(*z) ) z++;
  pNum->nInt = (size_t)(z-pNum->zInt);
  if( pNum->nInt==0 || (pNum->zInt[0]=='0' && pNum->nInt>1) ) return 0;
  pNum->zFrac = z;
  pNum->nFrac = 0;
  if( *z=='.' ){
    pNum->zFrac = ++z;
    while( is_digit(*z) ) z++;
    pNum->nFrac = (size_t)(z-pNum->zFrac);
    if( pNum->nFrac==0 ) return 0;
  }
  if( *z=='e' || *z=='E' ) return raw_number_fmt(zStart, pNum, pbRewrite);
  zEnd = z;
  if( zEnd-zStart>63 ) return 0;    /* as scan_number() */
  nFracText = pNum->nFrac;
  while( pNum->nFrac>0 && pNum->zFrac[pNum->nFrac-1]=='0' ) pNum->nFrac--;
  if( pNum->zInt[0]=='0' ){
    while( (size_t)nLead<pNum->nFrac && pNum->zFrac[nLead]=='0' ) nLead++;
    if( nLead>5 ){                  /* below 1e-6: JavaScript writes 1e-7 */
      return raw_number_fmt(zStart, pNum, pbRewrite);
    }
    nSig = (int)pNum->nFrac - nLead;
    if( nSig==0 ) pNum->bNeg = 0;   /* -0 is written 0 */
  }else{
    nSig = (int)(pNum->nInt + pNum->nFrac);
  }
  if( nSig>15 ) return raw_number_fmt(zStart, pNum, pbRewrite);
  if( pNum->bNeg!=bNegText || pNum->nFrac!=nFracText ) *pbRewrite = 1;
  return zEnd;
}

static void raw_number_write(sqlite3_str *p, const RawNum *pNum){
  if( pNum->bFmt ){
    size_t n;
    kustomer_json_number(p, number_value(pNum->zInt, &n));
    return;
  }
  if( pNum->bNeg ) sqlite3_str_appendchar(p, 1, '-');
  sqlite3_str_append(p, (const char*)pNum->zInt, (int)pNum->nInt);
  if( pNum->nFrac ){
    sqlite3_str_appendchar(p, 1, '.');
    sqlite3_str_append(p, (const char*)pNum->zFrac, (int)pNum->nFrac);
  }
}

static ScanPos raw_value(ScanPos z, RawKeys *pK, int iDepth);

/* An object at depth iDepth; its members are recorded in pK->pRec if
** that is set. */
static ScanPos raw_object(ScanPos z, RawKeys *pK, int iDepth){
  int iFirst = pK->n, i;
  KJsonRaw *pRec = pK->pRec;
  pK->pRec = 0;
  if( iDepth>KUSTOMER_MAX_DEPTH ) return 0;
  z = raw_skip_ws(z+1, pK);
  if( *z=='}' ) return z+1;
  while( 1 ){
    ScanPos zKey = z, zVal;
    size_t nKey;
    if( *z!='"' ) return 0;
    z = raw_string(z, pK->zEnd);
    if( z==0 ) return 0;
    nKey = (size_t)(z-zKey);
    /* Written as JSON.stringify writes it, a key has one spelling. */
    for(i=iFirst; i<pK->n; i++){
      if( pK->an[i]==nKey && memcmp(pK->az[i], zKey, nKey)==0 ) return 0;
    }
    if( pK->n>=RAW_MAX_KEYS ) return 0;
    pK->az[pK->n] = zKey;
    pK->an[pK->n] = nKey;
    pK->n++;
    z = raw_skip_ws(z, pK);
    if( *z!=':' ) return 0;
    zVal = raw_skip_ws(z+1, pK);
    z = raw_value(zVal, pK, iDepth);
    if( z==0 ) return 0;
    if( pRec ){
      if( pRec->nMember>=KRAW_MEMBERS ) return 0;
      pRec->aMember[pRec->nMember].zKey = (const char*)zKey;
      pRec->aMember[pRec->nMember].nKey = (int)nKey;
      pRec->aMember[pRec->nMember].zVal = (const char*)zVal;
      pRec->aMember[pRec->nMember].nVal = (int)(z-zVal);
      pRec->nMember++;
    }
    z = raw_skip_ws(z, pK);
    if( *z=='}' ) break;
    if( *z!=',' ) return 0;
    z = raw_skip_ws(z+1, pK);
  }
  pK->n = iFirst;
  return z+1;
}

/* A value inside a container at depth iDepth, as scan_value(). */
static ScanPos raw_value(ScanPos z, RawKeys *pK, int iDepth){
  RawNum num;
  switch( *z ){
    case '"': return raw_string(z, pK->zEnd);
    case 't': return scan_word(z, pK->zEnd, "true", 4);
    case 'f': return scan_word(z, pK->zEnd, "false", 5);
    case 'n': return scan_word(z, pK->zEnd, "null", 4);
    case '{': return raw_object(z, pK, iDepth+1);
    case '[':
      if( iDepth+1>KUSTOMER_MAX_DEPTH ) return 0;
      z = raw_skip_ws(z+1, pK);
      if( *z==']' ) return z+1;
      while( 1 ){
        z = raw_value(z, pK, iDepth+1);
        if( z==0 ) return 0;
        z = raw_skip_ws(z, pK);
        if( *z==']' ) return z+1;
        if( *z!=',' ) return 0;
        z = raw_skip_ws(z+1, pK);
      }
    default:  return raw_number(z, &num, &pK->bRewrite);
  }
}

/* raw_object() on pRaw's text, recording its members in pRaw.  The end,
** or NULL. */
static ScanPos raw_top(ScanPos z, ScanPos zEnd, int iDepth, KJsonRaw *pRaw){
  RawKeys k;
  k.n = 0;
  k.bRewrite = 0;
  k.pRec = pRaw;
  k.zEnd = zEnd;
  pRaw->nMember = 0;
  z = raw_object(z, &k, iDepth);
  pRaw->bRewrite = k.bRewrite;
  return z;
}

int kustomer_json_raw_ok(KJsonRaw *pRaw){
  ScanPos z = (ScanPos)pRaw->z, zEnd = z+pRaw->n;
  if( pRaw->eState!=KRAW_TEXT || *z!='{' ) return 0;
  return raw_top(z, zEnd, 1, pRaw)==zEnd;
}

/* Stands in for scan_object_keep() below for the object at z, at depth
** iDepth, of a KKEEP_RAW member: raw_top() validates it, checks that it
** can be written from its text and records its members in pOut->pRaw, in
** one pass; the members aSub lists are then copied from the record. */
static ScanPos scan_raw_member(ScanPos z, ScanPos zEnd, int iDepth,
                               const KJsonKeep *aSub, ScanOut *pOut){
  KJsonRaw *pRaw = pOut->pRaw;
  ScanPos zAfter = raw_top(z, zEnd, iDepth, pRaw);
  KeepFirst first;
  int i, bFirst = 1;
  if( zAfter==0 ){
    pRaw->nMember = 0;
    pRaw->bRewrite = 0;
    return 0;
  }
  keep_first(aSub, &first);
  scan_out(pOut, "{", 1);
  for(i=0; i<pRaw->nMember; i++){
    const struct KJsonRawMember *pM = &pRaw->aMember[i];
    const KJsonKeep *pSub;
    if( !scan_keep(aSub, &first, (ScanPos)pM->zKey+1, (size_t)pM->nKey-2,
                   zEnd, &pSub) ){
      continue;
    }
    if( !bFirst ) scan_out(pOut, ",", 1);
    bFirst = 0;
    scan_out(pOut, pM->zKey, (size_t)pM->nKey);
    scan_out(pOut, ":", 1);
    scan_out(pOut, pM->zVal, (size_t)pM->nVal);
  }
  scan_out(pOut, "}", 1);
  pOut->bRawChecked = 1;
  return zAfter;
}

/* A member's key at z (its opening quote), checked with the ':' after it:
** returns where its value starts, with the key's length (quotes included)
** in *pnKey, or NULL. */
static ScanPos scan_member_head(ScanPos z, ScanPos zEnd, size_t *pnKey){
  ScanPos zKey = z;
  if( *z!='"' ) return 0;
  z = scan_string(z, zEnd);
  if( z==0 ) return 0;
  *pnKey = (size_t)(z-zKey);
  z = skip_ws(z);
  if( *z!=':' ) return 0;
  return skip_ws(z+1);
}

/*
** An object at depth iDepth (z at its '{') of a KKEEP_SHALLOW member,
** written to pOut with every member, those aKeep does not list having an
** object or array value written as {} or [] (after it is validated).
*/
static ScanPos scan_object_shallow(ScanPos z, ScanPos zEnd, int iDepth,
                                   const KJsonKeep *aKeep, ScanOut *pOut){
  KeepFirst first;
  int bFirst = 1;
  if( iDepth>KUSTOMER_MAX_DEPTH ) return 0;
  keep_first(aKeep, &first);
  scan_out(pOut, "{", 1);
  z = skip_ws(z+1);
  if( *z!='}' ){
    while( 1 ){
      ScanPos zKey = z, zVal;
      const KJsonKeep *pKeep;
      size_t nKey;
      zVal = scan_member_head(z, zEnd, &nKey);
      if( zVal==0 ) return 0;
      if( !bFirst ) scan_out(pOut, ",", 1);
      bFirst = 0;
      scan_out(pOut, zKey, nKey);
      scan_out(pOut, ":", 1);
      z = scan_value(zVal, zEnd, iDepth);
      if( z==0 ) return 0;
      if( (*zVal=='{' || *zVal=='[')
       && !scan_keep(aKeep, &first, zKey+1, nKey-2, zEnd, &pKeep) ){
        scan_out(pOut, *zVal=='{' ? "{}" : "[]", 2);
      }else{
        scan_out(pOut, zVal, (size_t)(z-zVal));
      }
      z = skip_ws(z);
      if( *z=='}' ) break;
      if( *z!=',' ) return 0;
      z = skip_ws(z+1);
    }
  }
  scan_out(pOut, "}", 1);
  return z+1;
}

/*
** An object at depth iDepth (z at its '{'), also written to pOut with only
** the members aKeep lists, in their order in the text.
*/
static ScanPos scan_object_keep(ScanPos z, ScanPos zEnd, int iDepth,
                                const KJsonKeep *aKeep, ScanOut *pOut){
  KeepFirst first;
  int bFirst = 1, bOdd = 0, bHasRaw = 0;
  if( iDepth>KUSTOMER_MAX_DEPTH ) return 0;
  keep_first(aKeep, &first);
  scan_out(pOut, "{", 1);
  z = skip_ws(z+1);
  if( *z!='}' ){
    while( 1 ){
      ScanPos zKey = z, zVal;
      const KJsonKeep *pKeep;
      size_t nKey;
      int bKeep;
      zVal = z = scan_member_head(z, zEnd, &nKey);
      if( z==0 ) return 0;
      bKeep = scan_keep(aKeep, &first, zKey+1, nKey-2, zEnd, &pKeep);
      if( bKeep && pKeep==0 ) bOdd = 1;
      if( pKeep && pKeep->eHow==KKEEP_RAW ){
        bHasRaw = 1;
        pOut->nRawSeen++;
        pOut->zRaw = zVal;
      }
      if( bKeep ){
        if( !bFirst ) scan_out(pOut, ",", 1);
        bFirst = 0;
        scan_out(pOut, zKey, (size_t)(zVal-zKey));
        ScanPos zRawEnd = 0;
        if( pKeep && pKeep->eHow==KKEEP_RAW && pOut->pRaw && *zVal=='{' ){
          zRawEnd = scan_raw_member(z, zEnd, iDepth+1, pKeep->aSub, pOut);
        }
        if( zRawEnd ){
          z = zRawEnd;
          pOut->nRaw = (size_t)(z-zVal);
        }else if( pKeep && pKeep->eHow==KKEEP_SHALLOW && *zVal=='{' ){
          z = scan_object_shallow(z, zEnd, iDepth+1, pKeep->aSub, pOut);
          if( z==0 ) return 0;
        }else if( pKeep && pKeep->aSub && *zVal=='{' ){
          z = scan_object_keep(z, zEnd, iDepth+1, pKeep->aSub, pOut);
          if( z==0 ) return 0;
          if( pKeep->eHow==KKEEP_RAW ) pOut->nRaw = (size_t)(z-zVal);
        }else{
          z = scan_value(z, zEnd, iDepth);
          if( z==0 ) return 0;
          scan_out(pOut, zVal, (size_t)(z-zVal));
        }
      }else{
        z = scan_value(z, zEnd, iDepth);
        if( z==0 ) return 0;
      }
      z = skip_ws(z);
      if( *z=='}' ) break;
      if( *z!=',' ) return 0;
      z = skip_ws(z+1);
    }
  }
  if( bHasRaw && bOdd ) pOut->bRawOdd = 1;
  scan_out(pOut, "}", 1);
  return z+1;
}

/* ---- The tree of the copy, in one allocation ----------------------------
**
** cJSON spends two allocations on most values (the node and its string)
** and as many frees.  The copy the scan made is valid JSON of the strict
** kind the scan accepts, so it is built here instead, with the same nodes
** cJSON would make (types, strings, numbers, links), into one block: the
** room the caller lends (KJsonRoom, on its stack), else one allocation.
** kustomer_json_delete() tells such a tree from one of cJSON's by
** KJSON_ARENA on its root.
*/
typedef struct TreeBuild TreeBuild;
struct TreeBuild {
  cJSON *aNode;             /* the next node to hand out */
  size_t nLeft;             /* nodes left after it */
  cJSON spare;              /* handed out when none are left */
  int bShort;               /* it was */
  char *zStr;               /* where the next string goes */
  ScanPos zEnd;             /* the end of the copy */
};

/* The string at z (its opening quote), unescaped into pB->zStr as cJSON
** does; returns it and sets *pz past the closing quote. */
static char *tree_string(TreeBuild *pB, ScanPos *pz){
  ScanPos z = *pz + 1;
  char *zOut = pB->zStr, *zRet = zOut;
  while( *z!='"' ){
    ScanPos zRun = z;
    size_t k;
    /* to the next quote or backslash: the scan let no control byte in */
    while( *(z = skip_plain(z, pB->zEnd))>=0x80 ) z++;
    k = (size_t)(z-zRun);
    memcpy(zOut, zRun, k);
    zOut += k;
    if( *z=='\\' ){
      unsigned c = z[1];
      z += 2;
      switch( c ){
        case 'b': *zOut++ = '\b'; break;
        case 'f': *zOut++ = '\f'; break;
        case 'n': *zOut++ = '\n'; break;
        case 'r': *zOut++ = '\r'; break;
        case 't': *zOut++ = '\t'; break;
        case 'u': {
          /* the scan let through only valid escapes and pairs */
          unsigned u = scan_hex4(z);
          z += 4;
          if( u>=0xd800 && u<=0xdbff ){
            u = 0x10000 + (((u & 0x3ff)<<10) | (scan_hex4(z+2) & 0x3ff));
            z += 6;
          }
          if( u<0x80 ){
            *zOut++ = (char)u;
          }else if( u<0x800 ){
            *zOut++ = (char)(0xC0 | (u>>6));
            *zOut++ = (char)(0x80 | (u & 0x3f));
          }else if( u<0x10000 ){
            *zOut++ = (char)(0xE0 | (u>>12));
            *zOut++ = (char)(0x80 | ((u>>6) & 0x3f));
            *zOut++ = (char)(0x80 | (u & 0x3f));
          }else{
            *zOut++ = (char)(0xF0 | (u>>18));
            *zOut++ = (char)(0x80 | ((u>>12) & 0x3f));
            *zOut++ = (char)(0x80 | ((u>>6) & 0x3f));
            *zOut++ = (char)(0x80 | (u & 0x3f));
          }
          break;
        }
        default:  *zOut++ = (char)c; break;   /* '"', '\\' or '/' */
      }
    }
  }
  *zOut++ = 0;
  pB->zStr = zOut;
  *pz = z+1;
  return zRet;
}

/* A number as cJSON reads it: strtod() of its characters, with the
** locale's decimal point for '.' (the scan allows at most 63). */
static ScanPos tree_number(cJSON *pNode, ScanPos z){
  size_t n;
  double r = number_value(z, &n);
  pNode->type = cJSON_Number;
  pNode->valuedouble = r;
  if( r>=INT_MAX ){
    pNode->valueint = INT_MAX;
  }else if( r<=(double)INT_MIN ){
    pNode->valueint = INT_MIN;
  }else{
    pNode->valueint = (int)r;
  }
  return z + n;
}

/* The value at z into a new node; returns the position past it. */
static ScanPos tree_value(TreeBuild *pB, ScanPos z, cJSON **ppNode){
  cJSON *pNode = &pB->spare;
  if( pB->nLeft ){
    pNode = pB->aNode++;
    pB->nLeft--;
  }else{
    pB->bShort = 1;
  }
  memset(pNode, 0, sizeof(*pNode));
  *ppNode = pNode;
  switch( *z ){
    case '"':
      pNode->type = cJSON_String;
      pNode->valuestring = tree_string(pB, &z);
      return z;
    case 't':
      pNode->type = cJSON_True;
      pNode->valueint = 1;
      return z+4;
    case 'f':
      pNode->type = cJSON_False;
      return z+5;
    case 'n':
      pNode->type = cJSON_NULL;
      return z+4;
    case '{': case '[': {
      int bObject = *z=='{';
      char cClose = bObject ? '}' : ']';
      cJSON *pLast = 0;
      pNode->type = bObject ? cJSON_Object : cJSON_Array;
      z = skip_ws(z+1);
      while( *z!=cClose ){
        char *zKey = 0;
        cJSON *pItem;
        if( bObject ){
          zKey = tree_string(pB, &z);
          z = skip_ws(skip_ws(z)+1);      /* past the ':' */
        }
        z = tree_value(pB, z, &pItem);
        pItem->string = zKey;
        /* linked as cJSON links them: the first one's prev is the last */
        if( pLast ){
          pLast->next = pItem;
          pItem->prev = pLast;
        }else{
          pNode->child = pItem;
        }
        pLast = pItem;
        z = skip_ws(z);
        if( *z==',' ) z = skip_ws(z+1);
      }
      /* (a short build may have reused pNode: it is thrown away) */
      if( pLast && !pB->bShort ) pNode->child->prev = pLast;
      return z+1;
    }
    default:
      return tree_number(pNode, z);
  }
}

/* The tree of n bytes of text that the scan accepted, or NULL for out of
** memory. */
static cJSON *tree_build(const char *z, size_t n, KJsonRoom *pRoom){
  /* Strings need no more than their text (a terminator for two quotes).
  ** Events make a node for about every 15 bytes of what is kept: as many
  ** nodes as the room holds, or a guess, come first; should they run
  ** short, every value but the first takes at least two bytes. */
  size_t nNode = n/8 + 8;
  int bLent = 0;
  if( pRoom && n+8*sizeof(cJSON)<=sizeof(*pRoom) ){
    nNode = (sizeof(*pRoom)-n)/sizeof(cJSON);
    bLent = 1;
  }
  while( 1 ){
    TreeBuild b;
    cJSON *pRoot;
    void *pBlock = bLent ? (void*)pRoom
                         : sqlite3_malloc64(nNode*sizeof(cJSON) + n);
    if( pBlock==0 ) return 0;
    b.aNode = (cJSON*)pBlock;
    b.nLeft = nNode;
    b.bShort = 0;
    b.zStr = (char*)&b.aNode[nNode];
    b.zEnd = (ScanPos)z + n;
    tree_value(&b, skip_ws((ScanPos)z), &pRoot);
    if( !b.bShort ){
      pRoot->type |= bLent ? KJSON_ARENA|KJSON_LENT : KJSON_ARENA;
      return pRoot;
    }
    if( !bLent ){
      sqlite3_free(pBlock);
      if( nNode>=n/2+1 ) return 0;   /* cannot happen */
    }
    bLent = 0;
    nNode = n/2+1;
  }
}

void kustomer_json_delete(cJSON *p){
  if( p && (p->type & KJSON_ARENA) ){
    if( (p->type & KJSON_LENT)==0 ) sqlite3_free(p);
  }else{
    cJSON_Delete(p);
  }
}

cJSON *kustomer_json_parse_some(const char *z, int n, const KJsonKeep *aKeep,
                                KJsonRaw *pRaw, KJsonRoom *pRoom,
                                char **pzErr){
  char aSpace[4096];
  ScanPos zText = (ScanPos)z;
  ScanPos zEnd = zText + n;
  ScanPos zPos;
  ScanOut out;
  cJSON *p = 0;
  memset(&out, 0, sizeof(out));
  if( pRaw ){
    pRaw->z = 0;
    pRaw->n = 0;
    pRaw->eState = KRAW_NONE;
    pRaw->bRewrite = 0;
    pRaw->bChecked = 0;
    pRaw->nMember = 0;
  }
  out.pRaw = pRaw;
  if( n>0 && n<=KUSTOMER_MAX_JSON ){
    out.z = n<=(int)sizeof(aSpace) ? aSpace : sqlite3_malloc(n);
  }
  if( out.z ){
    zPos = skip_ws(zText);
    if( *zPos=='{' ){
      zPos = scan_object_keep(zPos, zEnd, 1, aKeep, &out);
      if( zPos && skip_ws(zPos)==zEnd ){
        p = tree_build(out.z, out.n, pRoom);
      }
    }
  }
  if( out.z!=aSpace ) sqlite3_free(out.z);
  if( p ){
    if( pzErr ) *pzErr = 0;
    if( pRaw && out.nRawSeen>0 ){
      if( out.nRawSeen>1 || out.bRawOdd ){
        pRaw->eState = KRAW_REPARSE;
      }else if( out.nRaw>0 ){
        pRaw->eState = KRAW_TEXT;
        pRaw->z = (const char*)out.zRaw;
        pRaw->n = (int)out.nRaw;
        pRaw->bChecked = out.bRawChecked;
      }
    }
    return p;
  }
  /* Not for the shortcut, or out of memory: the whole text, as always. */
  return kustomer_json_parse(z, n, pzErr);
}

/* Append n bytes of text that passed raw_ok, without whitespace between
** tokens and with numbers as JavaScript prints them. */
static void raw_write(sqlite3_str *p, ScanPos z, size_t n, int bRewrite){
  ScanPos zEnd = z+n, zRun = z;
  if( !bRewrite ){
    sqlite3_str_append(p, (const char*)z, (int)n);
    return;
  }
  while( z<zEnd ){
    unsigned c = *z;
    if( c=='"' ){
      z = raw_string(z, zEnd);
    }else if( c=='-' || is_digit(c) ){
      RawNum num;
      int bNum = 0;
      ScanPos zNum = z;
      z = raw_number(z, &num, &bNum);
      if( bNum ){
        if( zNum>zRun ){
          sqlite3_str_append(p, (const char*)zRun, (int)(zNum-zRun));
        }
        raw_number_write(p, &num);
        zRun = z;
      }
    }else if( raw_is_ws(c) ){
      if( z>zRun ) sqlite3_str_append(p, (const char*)zRun, (int)(z-zRun));
      z = skip_ws(z);
      zRun = z;
    }else{
      z++;
    }
  }
  if( zEnd>zRun ) sqlite3_str_append(p, (const char*)zRun, (int)(zEnd-zRun));
}

int kustomer_json_raw_key_plain(const KJsonRaw *pRaw, int i, int *pbHigh){
  const struct KJsonRawMember *pM = &pRaw->aMember[i];
  const unsigned char *z = (const unsigned char*)pM->zKey+1;
  int k = 0, n = pM->nKey-2;
  *pbHigh = 0;
#ifdef JSON_SSE2
  if( pRaw->z ){
    /* most keys are short and plain ASCII: one load says so (signed: a
    ** byte of 0x80 or more is below '!' too); the loads stay inside the
    ** object's text */
    const unsigned char *zEnd = (const unsigned char*)pRaw->z + pRaw->n;
    const __m128i vBang = _mm_set1_epi8('!');
    const __m128i vSlash = _mm_set1_epi8('\\');
    for(; k<n && zEnd-(z+k)>=16; k+=16){
      __m128i v = _mm_loadu_si128((const __m128i*)(z+k));
      unsigned m = (unsigned)_mm_movemask_epi8(
          _mm_or_si128(_mm_cmplt_epi8(v, vBang), _mm_cmpeq_epi8(v, vSlash)));
      if( n-k<16 ) m &= (1u<<(n-k)) - 1;
      if( m ) break;              /* the bytes from k on decide */
    }
  }
#endif
  for(; k<n; k++){
    if( z[k]<=' ' || z[k]=='\\' ) return 0;
    if( z[k]>=0x80 ){
      *pbHigh = 1;
      return memchr(&z[k], '\\', (size_t)(n-k))==0;
    }
  }
  return 1;
}

void kustomer_json_string_of_json(sqlite3_str *p, const char *z, int n){
  /* Quotes come every few bytes in JSON: the text is copied 16 bytes at a
  ** time into a local buffer up to the next quote or backslash, which is
  ** escaped there, and the buffer appended in chunks. */
  const char *zEnd = z + n;
  char aBuf[512];
  size_t k = 1;
  aBuf[0] = '"';
#ifdef JSON_SSE2
  {
    const __m128i vQuote = _mm_set1_epi8('"');
    const __m128i vSlash = _mm_set1_epi8('\\');
    while( zEnd-z>=16 ){
      __m128i v = _mm_loadu_si128((const __m128i*)z);
      unsigned m = (unsigned)_mm_movemask_epi8(
          _mm_or_si128(_mm_cmpeq_epi8(v, vQuote), _mm_cmpeq_epi8(v, vSlash)));
      if( k>sizeof(aBuf)-18 ){
        sqlite3_str_append(p, aBuf, (int)k);
        k = 0;
      }
      _mm_storeu_si128((__m128i*)&aBuf[k], v);   /* the bytes up to it */
      if( m==0 ){
        k += 16;
        z += 16;
      }else{
        int i = __builtin_ctz(m);
        k += (size_t)i;
        aBuf[k++] = '\\';
        aBuf[k++] = z[i];
        z += i+1;
      }
    }
  }
#endif
  for(; z<zEnd; z++){
    if( k>sizeof(aBuf)-3 ){
      sqlite3_str_append(p, aBuf, (int)k);
      k = 0;
    }
    if( *z=='"' || *z=='\\' ) aBuf[k++] = '\\';
    aBuf[k++] = *z;
  }
  aBuf[k++] = '"';
  sqlite3_str_append(p, aBuf, (int)k);
}

int kustomer_json_raw_array_scalar(const KJsonRaw *pRaw, int i, int *peKind,
                                   const char **pz){
  const struct KJsonRawMember *pM = &pRaw->aMember[i];
  ScanPos z = (ScanPos)pM->zVal, zEnd = z + pM->nVal;
  *pz = 0;
  *peKind = KRAWV_NULL;
  while( *(z = skip_ws(z))=='[' ) z++;
  *pz = (const char*)z;
  switch( *z ){
    case '"':
      *peKind = KRAWV_STRING;
      z = raw_string(z, zEnd);
      break;
    case 't': case 'f': case 'n': case '{': case ']':
      return 0;
    default: {
      RawNum num;
      int bRewrite = 0;
      *peKind = KRAWV_NUMBER;
      z = raw_number(z, &num, &bRewrite);
      break;
    }
  }
  if( z==0 ) return 0;
  /* nothing but the closing brackets after it: no ',' at any depth */
  while( z<zEnd && *(z = skip_ws(z))==']' ) z++;
  return z>=zEnd;
}

void kustomer_json_raw_value(sqlite3_str *p, const KJsonRaw *pRaw, int i){
  const struct KJsonRawMember *pM = &pRaw->aMember[i];
  raw_write(p, (ScanPos)pM->zVal, (size_t)pM->nVal, pRaw->bRewrite);
}

void kustomer_json_raw_object(sqlite3_str *p, const KJsonRaw *pRaw,
                              int (*xSkip)(const char*, size_t, void*),
                              void *pArg){
  int bFirst = 1, i;
  sqlite3_str_appendchar(p, 1, '{');
  for(i=0; i<pRaw->nMember; i++){
    const struct KJsonRawMember *pM = &pRaw->aMember[i];
    if( xSkip(pM->zKey+1, (size_t)pM->nKey-2, pArg) ) continue;
    if( !bFirst ) sqlite3_str_appendchar(p, 1, ',');
    bFirst = 0;
    sqlite3_str_append(p, pM->zKey, pM->nKey);
    sqlite3_str_appendchar(p, 1, ':');
    raw_write(p, (ScanPos)pM->zVal, (size_t)pM->nVal, pRaw->bRewrite);
  }
  sqlite3_str_appendchar(p, 1, '}');
}

void kustomer_json_string_body(sqlite3_str *p, const char *z, size_t n){
  static const char hex[] = "0123456789abcdef";
  size_t i, iStart = 0;
  for(i=0; i<n; i++){
    unsigned char c = (unsigned char)z[i];
    const char *zEsc;
    char aBuf[6];
    if( aJsonByte[c]<JB_QUOTE ) continue;
    if( i>iStart ) sqlite3_str_append(p, &z[iStart], (int)(i-iStart));
    iStart = i+1;
    switch( c ){
      case '"':  zEsc = "\\\""; break;
      case '\\': zEsc = "\\\\"; break;
      case '\b': zEsc = "\\b"; break;
      case '\f': zEsc = "\\f"; break;
      case '\n': zEsc = "\\n"; break;
      case '\r': zEsc = "\\r"; break;
      case '\t': zEsc = "\\t"; break;
      default:
        memcpy(aBuf, "\\u00", 4);
        aBuf[4] = hex[c>>4];
        aBuf[5] = hex[c&15];
        sqlite3_str_append(p, aBuf, 6);
        continue;
    }
    sqlite3_str_append(p, zEsc, 2);
  }
  if( n>iStart ) sqlite3_str_append(p, &z[iStart], (int)(n-iStart));
}

/*
** Append zPre, the string literal of the n bytes z, then zPost (each of
** zPre and zPost at most one byte).  Most strings are short and need no
** escape: they go in one append, not three.
*/
static void json_string_between(sqlite3_str *p, const char *zPre,
                                const char *z, size_t n, const char *zPost){
  char aBuf[128];
  size_t nPre = strlen(zPre), nPost = strlen(zPost), i;
  if( n+nPre+nPost+2<=sizeof(aBuf) ){
    char *zOut = &aBuf[nPre+1];
    for(i=0; i<n && aJsonByte[(unsigned char)z[i]]<JB_QUOTE; i++){
      zOut[i] = z[i];
    }
    if( i==n ){
      memcpy(aBuf, zPre, nPre);
      aBuf[nPre] = '"';
      zOut[n] = '"';
      memcpy(&zOut[n+1], zPost, nPost);
      sqlite3_str_append(p, aBuf, (int)(nPre+n+nPost+2));
      return;
    }
  }
  sqlite3_str_append(p, zPre, (int)nPre);
  sqlite3_str_appendchar(p, 1, '"');
  kustomer_json_string_body(p, z, n);
  sqlite3_str_appendchar(p, 1, '"');
  sqlite3_str_append(p, zPost, (int)nPost);
}

void kustomer_json_string(sqlite3_str *p, const char *z, size_t n){
  json_string_between(p, "", z, n, "");
}

void kustomer_json_string_lossy(sqlite3_str *p, const char *z, size_t n){
  const unsigned char *u = (const unsigned char*)z;
  size_t i = 0, iStart = 0;
  sqlite3_str_appendchar(p, 1, '"');
  while( i<n ){
    int k = u[i]<0x80 ? u[i]!=0 : utf8_len(&u[i], n-i);
    if( k ){
      i += (size_t)k;
      continue;
    }
    kustomer_json_string_body(p, &z[iStart], i-iStart);
    sqlite3_str_append(p, "\xEF\xBF\xBD", 3);
    iStart = ++i;
  }
  kustomer_json_string_body(p, &z[iStart], n-iStart);
  sqlite3_str_appendchar(p, 1, '"');
}

void kustomer_json_key(sqlite3_str *p, int bComma, const char *z, size_t n){
  json_string_between(p, bComma ? "," : "", z, n, ":");
}

void kustomer_json_number(sqlite3_str *p, double r){
  char aBuf[KUSTOMER_NUMBUF];
  if( !isfinite(r) ){
    sqlite3_str_append(p, "null", 4);
    return;
  }
  sqlite3_str_append(p, aBuf, kustomer_fmt_number(r, aBuf));
}

const cJSON *kustomer_json_member(const cJSON *pObj, const char *zKey){
  const cJSON *pFound = 0;
  const cJSON *pChild;
  if( !cJSON_IsObject(pObj) ) return 0;
  for(pChild=pObj->child; pChild; pChild=pChild->next){
    if( pChild->string && pChild->string[0]==zKey[0]
     && strcmp(pChild->string, zKey)==0 ) pFound = pChild;
  }
  return pFound;
}

/* Objects this small are checked for duplicate keys pairwise (first bytes
** compared before whole keys: duplicates are rare). */
#define SMALL_OBJECT 16

/*
** For each of the n keys, the index of the first key equal to it.  Used to
** give a duplicated key JSON.parse's meaning (first position, last value)
** without quadratic work on large objects.  Returns SQLITE_NOMEM or OK.
*/
int kustomer_first_same(int n, const char *const *azKey, int *aFirst){
  int i;
  if( n<=SMALL_OBJECT ){
    for(i=0; i<n; i++){
      int j;
      aFirst[i] = i;
      for(j=0; j<i; j++){
        if( aFirst[j]==j && azKey[i][0]==azKey[j][0]
         && strcmp(azKey[i], azKey[j])==0 ){
          aFirst[i] = j;
          break;
        }
      }
    }
  }else{
    int nSlot = 64;
    int *aSlot;
    while( nSlot < n*2 ) nSlot *= 2;
    aSlot = sqlite3_malloc64(sizeof(int)*(sqlite3_uint64)nSlot);
    if( aSlot==0 ) return SQLITE_NOMEM;
    memset(aSlot, 0xff, sizeof(int)*(size_t)nSlot);
    for(i=0; i<n; i++){
      unsigned h = 2166136261u;
      const unsigned char *z = (const unsigned char*)azKey[i];
      int iSlot;
      while( *z ){ h = (h ^ *z++) * 16777619u; }
      iSlot = (int)(h & (unsigned)(nSlot-1));
      aFirst[i] = i;
      while( aSlot[iSlot]>=0 ){
        if( strcmp(azKey[aSlot[iSlot]], azKey[i])==0 ){
          aFirst[i] = aSlot[iSlot];
          break;
        }
        iSlot = (iSlot+1) & (nSlot-1);
      }
      if( aFirst[i]==i ) aSlot[iSlot] = i;
    }
    sqlite3_free(aSlot);
  }
  return SQLITE_OK;
}

static void json_member_write(sqlite3_str *p, int bFirst, const cJSON *pKey,
                              const cJSON *pVal){
  kustomer_json_key(p, !bFirst, pKey->string, strlen(pKey->string));
  kustomer_json_value(p, pVal);
}

/* Duplicate keys found by walking the list: used for small objects, and
** for large ones when memory for the hash is not available. */
static void json_object_write_small(sqlite3_str *p, const cJSON *pObj){
  const cJSON *pC, *pD;
  int bFirst = 1;
  sqlite3_str_appendchar(p, 1, '{');
  for(pC=pObj->child; pC; pC=pC->next){
    const cJSON *pLast = pC;
    const char c0 = pC->string[0];
    for(pD=pObj->child; pD!=pC; pD=pD->next){
      if( pD->string[0]==c0 && strcmp(pD->string, pC->string)==0 ) break;
    }
    if( pD!=pC ) continue;
    for(pD=pC->next; pD; pD=pD->next){
      if( pD->string[0]==c0 && strcmp(pD->string, pC->string)==0 ) pLast = pD;
    }
    json_member_write(p, bFirst, pC, pLast);
    bFirst = 0;
  }
  sqlite3_str_appendchar(p, 1, '}');
}

static void json_object_write(sqlite3_str *p, const cJSON *pObj){
  const cJSON *pC;
  const cJSON **apChild;
  const char **azKey;
  int *aFirst;
  int n = 0, i, bFirst = 1;

  for(pC=pObj->child; pC; pC=pC->next) n++;
  if( n<=SMALL_OBJECT ){
    json_object_write_small(p, pObj);
    return;
  }
  apChild = sqlite3_malloc64((sizeof(void*)*2+sizeof(int))*(sqlite3_uint64)n);
  if( apChild==0 ){
    json_object_write_small(p, pObj);
    return;
  }
  azKey = (const char**)&apChild[n];
  aFirst = (int*)&azKey[n];
  for(i=0, pC=pObj->child; pC; pC=pC->next, i++){
    apChild[i] = pC;
    azKey[i] = pC->string;
  }
  if( kustomer_first_same(n, azKey, aFirst)!=SQLITE_OK ){
    sqlite3_free(apChild);
    json_object_write_small(p, pObj);
    return;
  }
  /* The first occurrence's slot takes the last occurrence's value. */
  for(i=0; i<n; i++){
    if( aFirst[i]!=i ) apChild[aFirst[i]] = apChild[i];
  }
  sqlite3_str_appendchar(p, 1, '{');
  for(i=0, pC=pObj->child; pC; pC=pC->next, i++){
    if( aFirst[i]!=i ) continue;
    json_member_write(p, bFirst, pC, apChild[i]);
    bFirst = 0;
  }
  sqlite3_str_appendchar(p, 1, '}');
  sqlite3_free(apChild);
}

void kustomer_json_value(sqlite3_str *p, const cJSON *pVal){
  switch( pVal->type & 0xff ){
    case cJSON_NULL:   sqlite3_str_append(p, "null", 4); break;
    case cJSON_True:   sqlite3_str_append(p, "true", 4); break;
    case cJSON_False:  sqlite3_str_append(p, "false", 5); break;
    case cJSON_Number: kustomer_json_number(p, pVal->valuedouble); break;
    case cJSON_String:
      kustomer_json_string(p, pVal->valuestring, strlen(pVal->valuestring));
      break;
    case cJSON_Array: {
      const cJSON *pC;
      sqlite3_str_appendchar(p, 1, '[');
      for(pC=pVal->child; pC; pC=pC->next){
        if( pC!=pVal->child ) sqlite3_str_appendchar(p, 1, ',');
        kustomer_json_value(p, pC);
      }
      sqlite3_str_appendchar(p, 1, ']');
      break;
    }
    case cJSON_Object:
      json_object_write(p, pVal);
      break;
    default:
      sqlite3_str_append(p, "null", 4);
      break;
  }
}

void kustomer_js_string(sqlite3_str *p, const cJSON *pVal){
  char aBuf[KUSTOMER_NUMBUF];
  switch( pVal->type & 0xff ){
    case cJSON_NULL:   sqlite3_str_append(p, "null", 4); break;
    case cJSON_True:   sqlite3_str_append(p, "true", 4); break;
    case cJSON_False:  sqlite3_str_append(p, "false", 5); break;
    case cJSON_Number:
      sqlite3_str_append(p, aBuf, kustomer_fmt_number(pVal->valuedouble,aBuf));
      break;
    case cJSON_String: sqlite3_str_appendall(p, pVal->valuestring); break;
    case cJSON_Array: {
      /* Array.prototype.join: null elements become empty strings. */
      const cJSON *pC;
      for(pC=pVal->child; pC; pC=pC->next){
        if( pC!=pVal->child ) sqlite3_str_appendchar(p, 1, ',');
        if( !cJSON_IsNull(pC) ) kustomer_js_string(p, pC);
      }
      break;
    }
    default:
      kustomer_json_value(p, pVal);
      break;
  }
}

int kustomer_js_truthy(const cJSON *pVal){
  if( pVal==0 ) return 0;
  switch( pVal->type & 0xff ){
    case cJSON_NULL:
    case cJSON_False:  return 0;
    case cJSON_Number:
      return pVal->valuedouble!=0.0 && !isnan(pVal->valuedouble);
    case cJSON_String: return pVal->valuestring[0]!=0;
    default:           return 1;
  }
}

int kustomer_acceptable(const cJSON *pVal){
  if( pVal==0 || cJSON_IsNull(pVal) ) return 0;
  if( cJSON_IsString(pVal) ) return pVal->valuestring[0]!=0;
  return 1;
}

const char *kustomer_json_type(const cJSON *pVal){
  switch( pVal->type & 0xff ){
    case cJSON_NULL:   return "null";
    case cJSON_True:   return "true";
    case cJSON_False:  return "false";
    case cJSON_Number: {
      double r = pVal->valuedouble;
      return (r==floor(r) && fabs(r)<9.2e18) ? "integer" : "real";
    }
    case cJSON_String: return "text";
    case cJSON_Array:  return "array";
    default:           return "object";
  }
}
