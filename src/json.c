/*
** JSON in and out.
**
** Input is parsed by cJSON, after a pre-scan that rejects what cJSON would
** accept silently or lose (invalid UTF-8, a \u0000 escape, which cJSON
** truncates at, and nesting deep enough to matter).  Output never goes
** through cJSON's printer, whose numbers lose precision: it is written into
** an sqlite3_str with JavaScript's number and string rules, so that the
** bytes match what RudderStack's JavaScript transformer emits.
*/
#include <math.h>
#include <string.h>
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

/* The checks cJSON does not make.  Returns NULL or an error message. */
static char *json_prescan(const unsigned char *z, size_t n){
  size_t i = 0;
  int depth = 0;
  int inStr = 0;
  while( i<n ){
    unsigned c = z[i];
    if( c<0x80 ){
      if( c==0 ){
        return sqlite3_mprintf("contains a NUL byte at offset %lld",
                               (sqlite3_int64)i);
      }
      if( inStr ){
        if( c=='"' ){
          inStr = 0;
        }else if( c=='\\' && i+1<n ){
          i++;
          if( z[i]=='u' && i+4<n && memcmp(&z[i+1], "0000", 4)==0 ){
            return sqlite3_mprintf("contains \\u0000 at offset %lld, "
                                   "which is not supported",
                                   (sqlite3_int64)(i-1));
          }
        }
      }else if( c=='"' ){
        inStr = 1;
      }else if( c=='[' || c=='{' ){
        if( ++depth>KUSTOMER_MAX_DEPTH ){
          return sqlite3_mprintf("is nested deeper than %d levels",
                                 KUSTOMER_MAX_DEPTH);
        }
      }else if( c==']' || c=='}' ){
        depth--;
      }
      i++;
    }else{
      int k = utf8_len(&z[i], n-i);
      if( k==0 ){
        return sqlite3_mprintf("is not valid UTF-8 (byte 0x%02x at offset "
                               "%lld)", c, (sqlite3_int64)i);
      }
      i += k;
    }
  }
  return 0;
}

cJSON *kustomer_json_parse(const char *z, int n, char **pzErr){
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

void kustomer_json_string(sqlite3_str *p, const char *z, size_t n){
  static const char hex[] = "0123456789abcdef";
  size_t i, iStart = 0;
  sqlite3_str_appendchar(p, 1, '"');
  for(i=0; i<n; i++){
    unsigned char c = (unsigned char)z[i];
    const char *zEsc;
    char aBuf[6];
    if( c>=0x20 && c!='"' && c!='\\' ) continue;
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
    sqlite3_str_appendall(p, zEsc);
  }
  if( n>iStart ) sqlite3_str_append(p, &z[iStart], (int)(n-iStart));
  sqlite3_str_appendchar(p, 1, '"');
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
    if( pChild->string && strcmp(pChild->string, zKey)==0 ) pFound = pChild;
  }
  return pFound;
}

/* Objects this small are checked for duplicate keys pairwise. */
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
        if( aFirst[j]==j && strcmp(azKey[i], azKey[j])==0 ){
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
  if( !bFirst ) sqlite3_str_appendchar(p, 1, ',');
  kustomer_json_string(p, pKey->string, strlen(pKey->string));
  sqlite3_str_appendchar(p, 1, ':');
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
    for(pD=pObj->child; pD!=pC; pD=pD->next){
      if( strcmp(pD->string, pC->string)==0 ) break;
    }
    if( pD!=pC ) continue;
    for(pD=pC->next; pD; pD=pD->next){
      if( strcmp(pD->string, pC->string)==0 ) pLast = pD;
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
    case cJSON_Number: return pVal->valuedouble!=0.0 && !isnan(pVal->valuedouble);
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
