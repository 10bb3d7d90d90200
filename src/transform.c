/*
** The transformation: RudderStack's Kustomer destination, reproduced.
**
** An event (a parsed RudderStack/Segment message) becomes a Kustomer
** request: identify -> the customer body for POST/PUT /v1/customers,
** track/page/screen -> the {identity, event} body for
** POST /v1/tracking/identityEvent.  Everything is written straight into an
** sqlite3_str in the reference's key order; no output tree is built.
**
** Section numbers refer to docs/rudderstack-kustomer-behaviour.md; "Dn" to
** the deliberate differences listed in conformance/DEVIATIONS.md.
*/
#include <stdarg.h>
#include <string.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

void kustomer_error_clear(KError *pErr){
  sqlite3_free(pErr->zMsg);
  pErr->zMsg = 0;
  pErr->status = 0;
}

/* Record a per-event failure.  Returns KUSTOMER_EVENT_ERROR. */
static int event_error(KError *pErr, const char *zFmt, ...){
  va_list ap;
  va_start(ap, zFmt);
  sqlite3_free(pErr->zMsg);
  pErr->zMsg = sqlite3_vmprintf(zFmt, ap);
  pErr->status = 400;
  va_end(ap);
  return pErr->zMsg ? KUSTOMER_EVENT_ERROR : SQLITE_NOMEM;
}

/*
** Append the text built in a temporary string as a JSON string literal and
** free the temporary.  Returns the temporary's error code (NOMEM, TOOBIG).
*/
static int append_json_string(sqlite3_str *p, sqlite3_str *pTmp){
  int rc = sqlite3_str_errcode(pTmp);
  int n = sqlite3_str_length(pTmp);
  char *z = sqlite3_str_finish(pTmp);
  if( rc==SQLITE_OK ) kustomer_json_string(p, z ? z : "", (size_t)n);
  sqlite3_free(z);
  return rc;
}

/* ---- Path lookup (3.1, 3.2) -------------------------------------------- */

static int is_container(const cJSON *p){
  return p && (cJSON_IsObject(p) || cJSON_IsArray(p));
}

/* Member of an object by a key of n bytes (last duplicate wins, as after
** JSON.parse), or element of an array by a canonical index. */
static const cJSON *member_n(const cJSON *p, const char *z, size_t n){
  const cJSON *pC, *pFound = 0;
  if( cJSON_IsObject(p) ){
    /* Inline, not strncmp(): most keys differ from the one sought in
    ** their first byte.  z has no NUL in its n bytes, so a shorter key
    ** stops at its own. */
    for(pC=p->child; pC; pC=pC->next){
      const char *zKey = pC->string;
      size_t i;
      for(i=0; i<n && zKey[i]==z[i]; i++){}
      if( i==n && zKey[n]==0 ) pFound = pC;
    }
  }else if( cJSON_IsArray(p) ){
    size_t i;
    long iIdx = 0;
    if( n==0 || n>9 || (z[0]=='0' && n>1) ) return 0;
    for(i=0; i<n; i++){
      if( z[i]<'0' || z[i]>'9' ) return 0;
      iIdx = iIdx*10 + (z[i]-'0');
    }
    for(pC=p->child; pC && iIdx>0; pC=pC->next) iIdx--;
    pFound = pC;
  }
  return pFound;
}

/*
** The value at a dotted path, as the get-value library finds it: the whole
** path as one key first, then segment by segment; a segment that is missing
** is retried joined with the following ones ("a.b" found by path a.b.c).
** NULL means undefined.
*/
static const cJSON *path_walk(const cJSON*, const char*);
static const cJSON *path_get(const cJSON *pRoot, const char *zPath){
  const cJSON *pFound;
  if( !is_container(pRoot) ) return 0;
  pFound = member_n(pRoot, zPath, strlen(zPath));
  if( pFound ) return pFound;
  return path_walk(pRoot, zPath);
}

/* The segment by segment part of path_get(), from the container p. */
static const cJSON *path_walk(const cJSON *p, const char *z){
  const cJSON *pFound;
  while( 1 ){
    const char *zEnd = strchr(z, '.');
    if( zEnd==0 ) zEnd = z + strlen(z);
    pFound = member_n(p, z, (size_t)(zEnd-z));
    while( pFound==0 && *zEnd=='.' ){
      zEnd = strchr(zEnd+1, '.');
      if( zEnd==0 ) zEnd = z + strlen(z);
      pFound = member_n(p, z, (size_t)(zEnd-z));
    }
    if( pFound==0 ) return 0;
    if( *zEnd==0 ) return pFound;
    p = pFound;
    z = zEnd+1;
    if( !is_container(p) ) return 0;
  }
}

/*
** An event and where most of its paths start: traits, context,
** context.traits and properties, each looked up once per event.  When no
** key of the event or of its context has a dot, path_get()'s whole-path
** and joined-segment lookups cannot match there, and a path under one of
** these is the plain walk from it.
*/
typedef struct EventPaths EventPaths;
struct EventPaths {
  const cJSON *pRoot;
  int bPlain;               /* no dotted key in the event or its context */
  const cJSON *pTraits;
  const cJSON *pContext;
  const cJSON *pCtxTraits;
  const cJSON *pProps;
};

static int has_dotted_key(const cJSON *pObj){
  const cJSON *pC;
  if( !cJSON_IsObject(pObj) ) return 0;
  for(pC=pObj->child; pC; pC=pC->next){
    if( strchr(pC->string, '.') ) return 1;
  }
  return 0;
}

static void event_paths_init(EventPaths *pE, const cJSON *pRoot){
  memset(pE, 0, sizeof(*pE));
  pE->pRoot = pRoot;
  if( !cJSON_IsObject(pRoot) || has_dotted_key(pRoot) ) return;
  pE->pTraits = kustomer_json_member(pRoot, "traits");
  pE->pContext = kustomer_json_member(pRoot, "context");
  pE->pProps = kustomer_json_member(pRoot, "properties");
  if( has_dotted_key(pE->pContext) ) return;
  pE->pCtxTraits = member_n(pE->pContext, "traits", 6);
  pE->bPlain = 1;
}

/* path_get() from the container p, which a path prefix led to. */
static const cJSON *path_from(const cJSON *p, const char *zRest){
  return is_container(p) ? path_walk(p, zRest) : 0;
}

/* path_get() on an event, by the shortest way it allows. */
static const cJSON *event_path(const EventPaths *pE, const char *zPath){
  if( pE->bPlain ){
    switch( zPath[0] ){
      case 't':
        if( strncmp(zPath, "traits.", 7)==0 ){
          return path_from(pE->pTraits, &zPath[7]);
        }
        break;
      case 'p':
        if( strncmp(zPath, "properties.", 11)==0 ){
          return path_from(pE->pProps, &zPath[11]);
        }
        break;
      case 'c':
        if( strncmp(zPath, "context.traits.", 15)==0 ){
          return path_from(pE->pCtxTraits, &zPath[15]);
        }
        if( strncmp(zPath, "context.", 8)==0 ){
          return path_from(pE->pContext, &zPath[8]);
        }
        break;
    }
  }
  return path_get(pE->pRoot, zPath);
}

/* First acceptable value along a NULL-terminated list of paths (3.2). */
static const cJSON *first_acceptable(const EventPaths *pE,
                                     const char *const *azPath){
  for(; *azPath; azPath++){
    const cJSON *p = event_path(pE, *azPath);
    if( kustomer_acceptable(p) ) return p;
  }
  return 0;
}

/* Generic map entries (3.3).  The e-mail list ends without the
** reference's context.externalId.0.id (D6). */
static const char *const azUserId[] = {
  "userId", "traits.userId", "traits.id", "context.traits.userId",
  "context.traits.id", "anonymousId", 0
};
static const char *const azEmail[] = {
  "traits.email", "context.traits.email", "properties.email", 0
};
static const char *const azPhone[] = {
  "traits.phone", "context.traits.phone", "properties.phone", 0
};
static const char *const azFirstName[] = {
  "traits.firstName", "traits.firstname", "traits.first_name",
  "context.traits.firstName", "context.traits.firstname",
  "context.traits.first_name", 0
};
static const char *const azLastName[] = {
  "traits.lastName", "traits.lastname", "traits.last_name",
  "context.traits.lastName", "context.traits.lastname",
  "context.traits.last_name", 0
};
static const char *const azWebsite[] = {
  "traits.website", "context.traits.website", "properties.website", 0
};
static const char *const azAddress[] = {
  "traits.address", "context.traits.address", 0
};

/*
** The members of an event that anything here or in check.c reads: the
** first segment of every path and member lookup in this file, and of
** context the second (and integrations, which check.c reads).  The rest of
** an event (context.app, context.page, timestamps, ...) is most of its
** bytes and is left out of the parse.  A path added here must keep this list complete.
*/
static const KJsonKeep aContextKeep[] = {
  { "traits", 0, 0 }, { "sessionId", 0, 0 }, { "externalId", 0, 0 },
  { "locale", 0, 0 }, { 0, 0, 0 }
};
static const KJsonKeep aEventKeep[] = {
  { "type", 0, 0 }, { "event", 0, 0 }, { "name", 0, 0 }, { "userId", 0, 0 },
  { "anonymousId", 0, 0 }, { "traits", 0, 0 }, { "properties", 0, 0 },
  { "context", aContextKeep, 0 }, { "integrations", 0, 0 }, { 0, 0, 0 }
};

cJSON *kustomer_event_parse(const char *z, int n, KJsonRoom *pRoom,
                            char **pzErr){
  return kustomer_json_parse_some(z, n, aEventKeep, 0, pRoom, pzErr);
}

/* The same for a track, page or screen event: of properties and traits
** only the members a path for them names.  Meta is then written from the
** text of properties (kustomer_meta_write_raw()). */
static const KJsonKeep aTrackTraitsKeep[] = {
  { "email", 0, 0 }, { "userId", 0, 0 }, { "id", 0, 0 }, { 0, 0, 0 }
};
static const KJsonKeep aTrackContextKeep[] = {
  { "traits", aTrackTraitsKeep, 0 }, { "sessionId", 0, 0 }, { 0, 0, 0 }
};
static const KJsonKeep aPropsKeep[] = {
  { "email", 0, 0 }, { "phone", 0, 0 }, { "website", 0, 0 },
  { "event", 0, 0 }, { "name", 0, 0 },
  { "kustomerSessionId", 0, 0 }, { "kustomer_session_id", 0, 0 },
  { "kustomerTrackingId", 0, 0 }, { "kustomer_tracking_id", 0, 0 },
  { 0, 0, 0 }
};
static const KJsonKeep aTrackKeep[] = {
  { "type", 0, 0 }, { "event", 0, 0 }, { "name", 0, 0 }, { "userId", 0, 0 },
  { "anonymousId", 0, 0 }, { "traits", aTrackTraitsKeep, 0 },
  { "properties", aPropsKeep, 1 },
  { "context", aTrackContextKeep, 0 }, { 0, 0, 0 }
};
static const KJsonKeep aTrackKeepProps[] = {   /* properties parsed whole */
  { "type", 0, 0 }, { "event", 0, 0 }, { "name", 0, 0 }, { "userId", 0, 0 },
  { "anonymousId", 0, 0 }, { "traits", aTrackTraitsKeep, 0 },
  { "properties", 0, 0 },
  { "context", aTrackContextKeep, 0 }, { 0, 0, 0 }
};

static int meta_text_ok(KMetaText *pText, int bAdvanced);

cJSON *kustomer_event_parse_lean(const char *z, int n, int bAdvanced,
                                 KMetaText *pProps, KJsonRoom *pRoom,
                                 char **pzErr){
  static const char zIdentify[] = "{\"type\":\"identify\"";
  KJsonRaw *pRaw = pProps ? &pProps->raw : 0;
  cJSON *p;
  const cJSON *pType;
  int bAgain = 0;
  if( pRaw ){
    pRaw->eState = KRAW_NONE;
    pRaw->z = 0;
  }
  /* Most identify events say so first: they read much more of traits, so
  ** parse them as such at once.  (Any event may take that parse.) */
  if( n>=(int)sizeof(zIdentify)-1
   && memcmp(z, zIdentify, sizeof(zIdentify)-1)==0 ){
    return kustomer_event_parse(z, n, pRoom, pzErr);
  }
  p = kustomer_json_parse_some(z, n, pRaw ? aTrackKeep : aTrackKeepProps,
                               pRaw, pRoom, pzErr);
  if( p==0 ) return 0;
  if( pProps && !meta_text_ok(pProps, bAdvanced) ) bAgain = 1;
  /* An identify reads much more of traits. */
  pType = kustomer_json_member(p, "type");
  if( cJSON_IsString(pType)
   && sqlite3_stricmp(pType->valuestring, "identify")==0 ){
    bAgain = 1;
  }
  if( bAgain ){
    kustomer_json_delete(p);
    if( pRaw ){
      pRaw->eState = KRAW_NONE;
      pRaw->z = 0;
    }
    p = kustomer_event_parse(z, n, pRoom, pzErr);
  }
  return p;
}

/* ---- JavaScript whitespace (the \s class and String.prototype.trim) ---- */

/* Byte length of the whitespace character at z, or 0. */
static int js_space(const unsigned char *z, size_t n){
  unsigned c = z[0];
  if( c<0x80 ) return (c==' ' || (c>=0x09 && c<=0x0d)) ? 1 : 0;
  if( c==0xC2 ) return (n>=2 && z[1]==0xA0) ? 2 : 0;
  if( n<3 ) return 0;
  if( c==0xE1 ) return (z[1]==0x9A && z[2]==0x80) ? 3 : 0;
  if( c==0xE2 ){
    if( z[1]==0x80 ){
      return (z[2]<=0x8A || z[2]==0xA8 || z[2]==0xA9 || z[2]==0xAF) ? 3 : 0;
    }
    return (z[1]==0x81 && z[2]==0x9F) ? 3 : 0;
  }
  if( c==0xE3 ) return (z[1]==0x80 && z[2]==0x80) ? 3 : 0;
  if( c==0xEF ) return (z[1]==0xBB && z[2]==0xBF) ? 3 : 0;
  return 0;
}

/* Byte length of the UTF-8 character at z (input is valid UTF-8). */
static int char_len(const unsigned char *z){
  if( z[0]<0xC0 ) return 1;
  if( z[0]<0xE0 ) return 2;
  if( z[0]<0xF0 ) return 3;
  return 4;
}

/* Append z trimmed of whitespace, each inner run replaced by '-' (the
** advanced transformation's rule for names and keys, section 6). */
static void js_dashify(sqlite3_str *p, const char *zIn, size_t n){
  const unsigned char *z = (const unsigned char*)zIn;
  size_t i = 0, iRun = 0;
  int bPending = 0, bAny = 0;
  while( i<n ){
    int k = js_space(&z[i], n-i);
    if( k ){
      if( i>iRun ) sqlite3_str_append(p, (const char*)&z[iRun], (int)(i-iRun));
      if( bAny ) bPending = 1;
      i += k;
      iRun = i;
      continue;
    }
    if( bPending ){
      sqlite3_str_appendchar(p, 1, '-');
      bPending = 0;
    }
    bAny = 1;
    i += char_len(&z[i]);
  }
  if( i>iRun ) sqlite3_str_append(p, (const char*)&z[iRun], (int)(n-iRun));
}

int kustomer_has_space(const char *zIn, size_t n){
  const unsigned char *z = (const unsigned char*)zIn;
  size_t i = 0;
  while( i<n ){
    if( z[i]>' ' && z[i]<0x80 ){   /* most of any key or name */
      i++;
      continue;
    }
    if( js_space(&z[i], n-i) ) return 1;
    i += char_len(&z[i]);
  }
  return 0;
}

/* Length of z without trailing whitespace. */
static size_t js_trim_end(const char *zIn, size_t n){
  const unsigned char *z = (const unsigned char*)zIn;
  size_t i = 0, iEnd = 0;
  while( i<n ){
    int k = js_space(&z[i], n-i);
    if( k ){
      i += k;
    }else{
      i += char_len(&z[i]);
      iEnd = i;
    }
  }
  return iEnd;
}

/* ---- ISO-8601 test (6.4) ---------------------------------------------- */

static int digits(const char *z, size_t n, size_t i, int k){
  int j;
  if( i+(size_t)k>n ) return 0;
  for(j=0; j<k; j++){
    if( z[i+j]<'0' || z[i+j]>'9' ) return 0;
  }
  return 1;
}

int kustomer_is_iso_date(const char *z, size_t n){
  size_t i;
  if( !digits(z, n, 0, 4) ) return 0;
  i = 4;
  if( i==n ) return 1;
  if( z[i]!='-' || !digits(z, n, i+1, 2) ) return 0;
  i += 3;
  if( i==n ) return 1;
  if( z[i]!='-' || !digits(z, n, i+1, 2) ) return 0;
  i += 3;
  if( i==n ) return 1;
  if( (z[i]!='T' && z[i]!='t') || !digits(z, n, i+1, 2)
   || i+3>=n || z[i+3]!=':' || !digits(z, n, i+4, 2) ) return 0;
  i += 6;
  if( i<n && z[i]==':' ){
    if( !digits(z, n, i+1, 2) ) return 0;
    i += 3;
  }
  if( i<n && z[i]=='.' ){
    if( !digits(z, n, i+1, 1) ) return 0;
    i += 2;
    while( i<n && z[i]>='0' && z[i]<='9' ) i++;
  }
  if( i<n && (z[i]=='Z' || z[i]=='z') ){
    i++;
  }else if( i<n && (z[i]=='+' || z[i]=='-') ){
    if( !digits(z, n, i+1, 2) || i+3>=n || z[i+3]!=':'
     || !digits(z, n, i+4, 2) ) return 0;
    i += 6;
  }
  return i==n;
}

/* ---- Event type (section 2) ------------------------------------------- */

int kustomer_event_type(const cJSON *pEvent, KError *pErr){
  static const struct { const char *zName; int eType; } aType[] = {
    { "identify", KTYPE_IDENTIFY }, { "track", KTYPE_TRACK },
    { "page", KTYPE_PAGE },         { "screen", KTYPE_SCREEN },
  };
  const cJSON *pType;
  size_t i;
  if( !cJSON_IsObject(pEvent) ){
    return event_error(pErr, "Event must be a JSON object");
  }
  pType = kustomer_json_member(pEvent, "type");
  if( !kustomer_js_truthy(pType) ){
    return event_error(pErr, "Event type is required");
  }
  if( !cJSON_IsString(pType) ){
    /* The reference crashes in toLowerCase() here (D5). */
    return event_error(pErr, "Event type must be a string");
  }
  for(i=0; i<sizeof(aType)/sizeof(aType[0]); i++){
    if( sqlite3_stricmp(pType->valuestring, aType[i].zName)==0 ){
      return aType[i].eType;
    }
  }
  return event_error(pErr, "Event type %s is not supported",
                     pType->valuestring);
}

/* ---- Meta (sections 5.1 and 6) ----------------------------------------- */

/*
** The rules that turn a properties object into meta, written once for the
** two ways meta is made: from a parse (kustomer_meta_plan(), for
** kustomer_meta, kustomer_check and properties the text cannot decide) and
** from the text of properties (kustomer_meta_write_raw(), the fast way,
** with json.c's record of the members).
*/

/* The session and tracking keys: sent as sessionId/trackingId, not in
** meta. */
static const char *const azExcluded[] = {
  "kustomerSessionId", "kustomer_session_id",
  "kustomerTrackingId", "kustomer_tracking_id", 0
};

static int is_excluded(const char *z, size_t n){
  const char *const *az;
  /* all four start with 'k' and are 17 to 20 bytes long */
  if( n<17 || n>20 || z[0]!='k' ) return 0;
  for(az=azExcluded; *az; az++){
    if( strlen(*az)==n && memcmp(z, *az, n)==0 ) return 1;
  }
  return 0;
}

/* Whether a key as sent (n bytes) is the e-mail that
** disableEmailAsTrackingProperty removes. */
static int is_dropped_email(const char *z, size_t n, int bDropEmail){
  return bDropEmail && n==5 && memcmp(z, "email", 5)==0;
}

static int ends_with(const char *z, size_t n, const char *zSuffix){
  size_t k = strlen(zSuffix);
  return n>=k && memcmp(&z[n-k], zSuffix, k)==0;
}

/* The advanced transformation of one member (6.2): the suffix its key
** takes (NULL: none; never doubled: not when the key already ends in it)
** and the conversion of its value (*peConv), from the value's kind
** (KRAWV_*) and whether its JavaScript string looks like an ISO date. */
static const char *advanced_rule(int eKind, int bDate, const char *zKey,
                                 size_t nKey, int *peConv){
  const char *zSuffix = 0;
  *peConv = KCONV_NONE;
  if( eKind==KRAWV_NUMBER ){
    zSuffix = "Num";
  }else if( bDate ){
    zSuffix = "At";
  }else if( eKind==KRAWV_TRUE || eKind==KRAWV_FALSE ){
    *peConv = KCONV_BOOLSTR;
  }else if( eKind==KRAWV_ARRAY ){
    *peConv = KCONV_ARRJOIN;
  }else if( eKind==KRAWV_OBJECT ){
    *peConv = KCONV_OBJJSON;
  }
  if( zSuffix && ends_with(zKey, nKey, zSuffix) ) zSuffix = 0;
  return zSuffix;
}

/* ---- Meta from a parse -------------------------------------------------- */

/* The kind of a parsed value, as KRAWV_*. */
static int value_kind(const cJSON *v){
  switch( v->type & 0xff ){
    case cJSON_String: return KRAWV_STRING;
    case cJSON_Number: return KRAWV_NUMBER;
    case cJSON_True:   return KRAWV_TRUE;
    case cJSON_False:  return KRAWV_FALSE;
    case cJSON_Array:  return KRAWV_ARRAY;
    case cJSON_Object: return KRAWV_OBJECT;
    default:           return KRAWV_NULL;
  }
}

/* Whether the JavaScript string of an array may start with a digit, as a
** date does: its first element that is not an array decides. */
static int array_may_be_date(const cJSON *v){
  const cJSON *p = v->child;
  while( p && cJSON_IsArray(p) ) p = p->child;
  if( p==0 ) return 0;
  if( cJSON_IsNumber(p) ) return 1;
  return cJSON_IsString(p) && p->valuestring[0]>='0'
      && p->valuestring[0]<='9';
}

/* Whether the JavaScript string conversion of v looks like an ISO date. */
static int value_is_date(const cJSON *v){
  if( cJSON_IsString(v) ){
    return kustomer_is_iso_date(v->valuestring, strlen(v->valuestring));
  }
  if( cJSON_IsArray(v) && array_may_be_date(v) ){
    sqlite3_str *p = sqlite3_str_new(0);
    int bDate;
    kustomer_js_string(p, v);
    bDate = sqlite3_str_errcode(p)==SQLITE_OK
         && kustomer_is_iso_date(sqlite3_str_value(p),
                                 (size_t)sqlite3_str_length(p));
    sqlite3_free(sqlite3_str_finish(p));
    return bDate;
  }
  return 0;
}

/* Set the advanced transformation's key and conversion for one item. */
static int meta_advanced_key(KMetaItem *pItem){
  const cJSON *v = pItem->pSrc;
  const char *zSrc = v->string, *zSuffix;
  size_t nSrc = strlen(zSrc);
  sqlite3_str *p;
  int n, eConv;
  char *z;

  /* Most keys have no whitespace to change, so the key is the source key,
  ** or the source key and a suffix. */
  if( !kustomer_has_space(zSrc, nSrc) ){
    size_t k;
    zSuffix = advanced_rule(value_kind(v), value_is_date(v), zSrc, nSrc,
                            &eConv);
    pItem->eConv = eConv;
    if( zSuffix==0 ){
      pItem->zKey = zSrc;
      return SQLITE_OK;
    }
    k = strlen(zSuffix);
    z = sqlite3_malloc64(nSrc+k+1);
    if( z==0 ) return SQLITE_NOMEM;
    memcpy(z, zSrc, nSrc);
    memcpy(&z[nSrc], zSuffix, k+1);
    pItem->zKey = z;
    pItem->bOwnKey = 1;
    return SQLITE_OK;
  }

  p = sqlite3_str_new(0);
  js_dashify(p, zSrc, nSrc);
  n = sqlite3_str_length(p);
  zSuffix = advanced_rule(value_kind(v), value_is_date(v),
                          sqlite3_str_value(p) ? sqlite3_str_value(p) : "",
                          (size_t)n, &eConv);
  pItem->eConv = eConv;
  if( zSuffix ) sqlite3_str_appendall(p, zSuffix);
  n = sqlite3_str_length(p);
  z = sqlite3_str_finish(p);
  if( z==0 ){
    /* An empty key is an empty string, not an allocation failure. */
    if( n!=0 ) return SQLITE_NOMEM;
    z = sqlite3_mprintf("");
    if( z==0 ) return SQLITE_NOMEM;
  }
  pItem->zKey = z;
  pItem->bOwnKey = 1;
  return SQLITE_OK;
}

void kustomer_meta_free(KMeta *pMeta){
  int i;
  for(i=0; i<pMeta->nItem; i++){
    if( pMeta->aItem[i].bOwnKey ) sqlite3_free((char*)pMeta->aItem[i].zKey);
  }
  if( pMeta->aItem!=pMeta->aStatic ) sqlite3_free(pMeta->aItem);
  pMeta->aItem = 0;
  pMeta->nItem = 0;
}

/* Scratch space of a plan: azKey, and aFirst/aLast/aOrder of n each. */
typedef struct PlanWork PlanWork;
struct PlanWork {
  int aSmall[3*16];
  const char *azSmall[16];
  const char **azKey;
  int *aFirst, *aLast, *aOrder;
  void *pAlloc;
};

/* The plan's items (one per member) and its scratch space. */
static int plan_alloc(const cJSON *pProps, KMeta *pMeta, PlanWork *w){
  const cJSON *pC;
  int n = 0, i;
  w->azKey = w->azSmall;
  w->aFirst = w->aSmall;
  w->pAlloc = 0;
  for(pC=pProps->child; pC; pC=pC->next) n++;
  if( n>16 ){
    pMeta->aItem = sqlite3_malloc64(sizeof(KMetaItem)*(sqlite3_uint64)n);
    w->pAlloc = sqlite3_malloc64((sizeof(int)*3+sizeof(char*))
                                 *(sqlite3_uint64)n);
    if( pMeta->aItem==0 || w->pAlloc==0 ){
      sqlite3_free(w->pAlloc);
      w->pAlloc = 0;
      if( pMeta->aItem==0 ) pMeta->aItem = pMeta->aStatic;
      return SQLITE_NOMEM;
    }
    w->azKey = (const char**)w->pAlloc;    /* pointers first: alignment */
    w->aFirst = (int*)&w->azKey[n];
  }
  w->aLast = &w->aFirst[n];
  w->aOrder = &w->aFirst[2*n];
  memset(pMeta->aItem, 0, sizeof(KMetaItem)*(size_t)n);
  pMeta->nItem = n;
  for(i=0, pC=pProps->child; pC; pC=pC->next, i++){
    pMeta->aItem[i].pSrc = pC;
    pMeta->aItem[i].iNext = -1;
    w->azKey[i] = pC->string;
  }
  return SQLITE_OK;
}

/* The fate and key of each member: a repeated key keeps the last value at
** the first place (JSON.parse); session/tracking keys are excluded.
** Leaves in aOrder[first place] the item sent from there (-1: none). */
static int plan_keys(KMeta *pMeta, PlanWork *w){
  int i, n = pMeta->nItem;
  int rc = kustomer_first_same(n, w->azKey, w->aFirst);
  if( rc ) return rc;
  for(i=0; i<n; i++) w->aLast[w->aFirst[i]] = i;
  for(i=0; i<n; i++) w->aOrder[i] = -1;
  for(i=0; i<n; i++){
    KMetaItem *pItem = &pMeta->aItem[i];
    const char *zKey = pItem->pSrc->string;
    if( w->aLast[w->aFirst[i]]!=i ){
      pItem->eFate = KFATE_DUPLICATE;
    }else if( is_excluded(zKey, strlen(zKey)) ){
      pItem->eFate = KFATE_EXCLUDED;
    }else{
      if( pMeta->bAdvanced ){
        rc = meta_advanced_key(pItem);
        if( rc ) return rc;
      }else{
        pItem->zKey = zKey;
      }
      w->aOrder[w->aFirst[i]] = i;
    }
  }
  return SQLITE_OK;
}

/* The sent items in output order, and collisions between their keys: the
** later value wins, at the first key's place (6.3).  Then the e-mail
** drop, and the links of the items sent. */
static int plan_order(KMeta *pMeta, PlanWork *w, int bDropEmail){
  int i, m, rc, iPrev = -1;
  int n = pMeta->nItem;
  int *aFirst = w->aFirst, *aLast = w->aLast, *aOrder = w->aOrder;
  for(i=0, m=0; i<n; i++){
    if( aOrder[i]>=0 ){
      aOrder[m] = aOrder[i];
      w->azKey[m] = pMeta->aItem[aOrder[m]].zKey;
      m++;
    }
  }
  if( pMeta->bAdvanced ){
    rc = kustomer_first_same(m, w->azKey, aFirst);
    if( rc ) return rc;
  }else{
    /* Keys sent as they are, once each after plan_keys(): no two of them
    ** can collide. */
    for(i=0; i<m; i++) aFirst[i] = i;
  }
  for(i=0; i<m; i++) aLast[aFirst[i]] = i;
  for(i=0; i<m; i++){
    KMetaItem *pItem = &pMeta->aItem[aOrder[i]];
    if( aLast[aFirst[i]]!=i ){
      pItem->eFate = KFATE_COLLISION;
      continue;
    }
    pItem->iPos = aFirst[i];
    if( is_dropped_email(pItem->zKey, strlen(pItem->zKey), bDropEmail) ){
      pItem->eFate = KFATE_EMAIL;
    }
  }
  /* Link the winners in the order of their key's first place. */
  for(i=0; i<m; i++){
    int iWin;
    if( aFirst[i]!=i ) continue;
    iWin = aOrder[aLast[i]];
    if( pMeta->aItem[iWin].eFate!=KFATE_SENT ) continue;
    if( iPrev<0 ){
      pMeta->iFirst = iWin;
    }else{
      pMeta->aItem[iPrev].iNext = iWin;
    }
    iPrev = iWin;
  }
  return SQLITE_OK;
}

int kustomer_meta_plan(const cJSON *pProps, int bAdvanced, int bDropEmail,
                       KMeta *pMeta){
  PlanWork w;
  int rc;
  memset(pMeta, 0, sizeof(*pMeta));
  pMeta->pProps = pProps;
  pMeta->bAdvanced = bAdvanced;
  pMeta->iFirst = -1;
  pMeta->aItem = pMeta->aStatic;
  if( !cJSON_IsObject(pProps) ) return SQLITE_OK;
  rc = plan_alloc(pProps, pMeta, &w);
  if( rc==SQLITE_OK ) rc = plan_keys(pMeta, &w);
  if( rc==SQLITE_OK ) rc = plan_order(pMeta, &w, bDropEmail);
  sqlite3_free(w.pAlloc);
  return rc;
}

int kustomer_meta_present(const KMeta *pMeta){
  return pMeta->bAdvanced || kustomer_acceptable(pMeta->pProps);
}

int kustomer_meta_write_value(sqlite3_str *p, const KMetaItem *pItem){
  const cJSON *v = pItem->pSrc;
  sqlite3_str *pTmp;
  const cJSON *pC;
  switch( pItem->eConv ){
    case KCONV_BOOLSTR:
      sqlite3_str_appendall(p, cJSON_IsTrue(v) ? "\"true\"" : "\"false\"");
      return SQLITE_OK;
    case KCONV_OBJJSON:
      pTmp = sqlite3_str_new(0);
      kustomer_json_value(pTmp, v);
      return append_json_string(p, pTmp);
    case KCONV_ARRJOIN:
      pTmp = sqlite3_str_new(0);
      for(pC=v->child; pC; pC=pC->next){
        if( pC!=v->child ) sqlite3_str_appendchar(pTmp, 1, ',');
        kustomer_json_value(pTmp, pC);
      }
      return append_json_string(p, pTmp);
    default:
      kustomer_json_value(p, v);
      return SQLITE_OK;
  }
}

int kustomer_meta_write(sqlite3_str *p, const KMeta *pMeta){
  int i, rc = SQLITE_OK;
  if( !cJSON_IsObject(pMeta->pProps) ){
    if( pMeta->bAdvanced || pMeta->pProps==0 ){
      sqlite3_str_append(p, "{}", 2);
    }else{
      kustomer_json_value(p, pMeta->pProps);
    }
    return SQLITE_OK;
  }
  sqlite3_str_appendchar(p, 1, '{');
  for(i=pMeta->iFirst; i>=0; i=pMeta->aItem[i].iNext){
    const KMetaItem *pItem = &pMeta->aItem[i];
    kustomer_json_key(p, i!=pMeta->iFirst, pItem->zKey, strlen(pItem->zKey));
    rc = kustomer_meta_write_value(p, pItem);
    if( rc ) break;
  }
  sqlite3_str_appendchar(p, 1, '}');
  return rc;
}

/* ---- Meta from the text of properties ---------------------------------- */

/* What the advanced plan says of one member, in KMetaText.aAdv. */
#define ADV_CONV  0x03      /* mask: the value's KCONV_* */
#define ADV_NUM   0x04      /* the key takes "Num" */
#define ADV_AT    0x08      /* the key takes "At" */
#define ADV_SKIP  0x10      /* a session/tracking key: not in meta */

/* Whether the text of member i is enough to tell whether its JavaScript
** string looks like a date (*pbDate): for a string, it is the date test
** on its text (an escape cannot be part of a date); for an array, only
** one that prints without a ',' and starts with a digit might be one, and
** then the parse decides. */
static int raw_date(const KJsonRaw *pRaw, int i, int eKind, int *pbDate){
  const char *z;
  int n, eScalar;
  *pbDate = 0;
  if( eKind==KRAWV_STRING ){
    kustomer_json_raw_string(pRaw, i, &z, &n);
    *pbDate = kustomer_is_iso_date(z, (size_t)n);
  }else if( eKind==KRAWV_ARRAY
         && kustomer_json_raw_array_scalar(pRaw, i, &eScalar, &z) ){
    if( eScalar==KRAWV_NUMBER ) return 0;
    if( eScalar==KRAWV_STRING && z[1]>='0' && z[1]<='9' ) return 0;
  }
  return 1;
}

/* The advanced plan of member i from its text, as ADV_* bits; -1 when the
** text cannot tell: a key with an escape or whitespace (rewritten), an
** array that may print as a date. */
static int raw_advanced_member(const KJsonRaw *pRaw, int i){
  const char *zKey, *zSuffix;
  int nKey, eKind, bDate, eConv, bHigh;
  kustomer_json_raw_key(pRaw, i, &zKey, &nKey);
  if( !kustomer_json_raw_key_plain(pRaw, i, &bHigh)
   || (bHigh && kustomer_has_space(zKey, (size_t)nKey)) ){
    return -1;
  }
  eKind = kustomer_json_raw_kind(pRaw, i);
  if( !raw_date(pRaw, i, eKind, &bDate) ) return -1;
  zSuffix = advanced_rule(eKind, bDate, zKey, (size_t)nKey, &eConv);
  return eConv | (zSuffix==0 ? 0 : zSuffix[0]=='N' ? ADV_NUM : ADV_AT);
}

/* Bytes the suffix of ADV_* bits adds to a key. */
static int raw_suffix_len(int eAdv){
  return (eAdv & ADV_NUM) ? 3 : (eAdv & ADV_AT) ? 2 : 0;
}

/* Whether members i and j, with their suffixes, have one key. */
static int raw_key_same(const KMetaText *pText, int i, int j){
  const KJsonRaw *pRaw = &pText->raw;
  const char *zA, *zB;
  int eA = pText->aAdv[i], eB = pText->aAdv[j];
  int nA, nB, n, k;
  const char *zSufA = (eA & ADV_NUM) ? "Num" : "At";
  const char *zSufB = (eB & ADV_NUM) ? "Num" : "At";
  kustomer_json_raw_key(pRaw, i, &zA, &nA);
  kustomer_json_raw_key(pRaw, j, &zB, &nB);
  n = nA + raw_suffix_len(eA);
  if( n!=nB + raw_suffix_len(eB) ) return 0;
  for(k=0; k<n; k++){
    char a = k<nA ? zA[k] : zSufA[k-nA];
    char b = k<nB ? zB[k] : zSufB[k-nB];
    if( a!=b ) return 0;
  }
  return 1;
}

/* Whether the advanced transformation of the properties can be written
** from their text (which passed kustomer_json_raw_ok()): no key to
** rewrite, no two members mapped to one key, no array that may be a
** date.  Fills pText->aAdv. */
static int meta_text_advanced_ok(KMetaText *pText){
  const KJsonRaw *pRaw = &pText->raw;
  int i, j, nSuffixed = 0;
  for(i=0; i<pRaw->nMember; i++){
    const char *zKey;
    int nKey, eAdv;
    kustomer_json_raw_key(pRaw, i, &zKey, &nKey);
    if( is_excluded(zKey, (size_t)nKey) ){
      pText->aAdv[i] = ADV_SKIP;
      continue;
    }
    eAdv = raw_advanced_member(pRaw, i);
    if( eAdv<0 ) return 0;
    pText->aAdv[i] = (unsigned char)eAdv;
    if( raw_suffix_len(eAdv) ) nSuffixed++;
  }
  /* Two members mapped to one key: the parse resolves it.  The keys in
  ** the text differ, and so do two that end in different suffixes: only a
  ** key with a suffix can meet one without. */
  for(i=0; nSuffixed>0 && i<pRaw->nMember; i++){
    int eAdv = pText->aAdv[i];
    if( (eAdv & ADV_SKIP) || raw_suffix_len(eAdv)==0 ) continue;
    nSuffixed--;
    for(j=0; j<pRaw->nMember; j++){
      if( (pText->aAdv[j] & (ADV_SKIP|ADV_NUM|ADV_AT))==0
       && raw_key_same(pText, i, j) ){
        return 0;
      }
    }
  }
  return 1;
}

/* Whether meta can be written from the text the lean parse recorded: the
** text is canonical (kustomer_json_raw_ok()) and, with bAdvanced, the
** advanced plan can be decided from it (filling aAdv).  Properties that
** are absent or not an object (KRAW_NONE) take no text. */
static int meta_text_ok(KMetaText *pText, int bAdvanced){
  KJsonRaw *pRaw = &pText->raw;
  if( pRaw->eState!=KRAW_TEXT ) return pRaw->eState==KRAW_NONE;
  if( !pRaw->bChecked && !kustomer_json_raw_ok(pRaw) ) return 0;
  return !bAdvanced || meta_text_advanced_ok(pText);
}

/* Whether plain meta leaves out the member with the key z (n bytes). */
static int meta_text_skip(const char *z, size_t n, void *pArg){
  return is_excluded(z, n) || is_dropped_email(z, n, *(int*)pArg);
}

/* The advanced transformation's meta from the text of properties that
** passed meta_text_advanced_ok(). */
static int meta_write_text_advanced(sqlite3_str *p, const KMetaText *pText,
                                    int bDropEmail){
  const KJsonRaw *pRaw = &pText->raw;
  sqlite3_str *pTmp = 0;
  int i, bFirst = 1, rc = SQLITE_OK;
  sqlite3_str_appendchar(p, 1, '{');
  for(i=0; i<pRaw->nMember; i++){
    int eAdv = pText->aAdv[i], eConv = eAdv & ADV_CONV;
    const char *zKey, *z;
    int nKey, n;
    if( eAdv & ADV_SKIP ) continue;
    kustomer_json_raw_key(pRaw, i, &zKey, &nKey);
    if( raw_suffix_len(eAdv)==0
     && is_dropped_email(zKey, (size_t)nKey, bDropEmail) ){
      continue;
    }
    if( !bFirst ) sqlite3_str_appendchar(p, 1, ',');
    bFirst = 0;
    /* a key without escapes: its text is its JSON */
    sqlite3_str_appendchar(p, 1, '"');
    sqlite3_str_append(p, zKey, nKey);
    if( eAdv & ADV_NUM ) sqlite3_str_append(p, "Num", 3);
    if( eAdv & ADV_AT ) sqlite3_str_append(p, "At", 2);
    sqlite3_str_append(p, "\":", 2);
    if( eConv==KCONV_BOOLSTR ){
      sqlite3_str_appendall(p, kustomer_json_raw_kind(pRaw, i)==KRAWV_TRUE
                               ? "\"true\"" : "\"false\"");
    }else if( eConv==KCONV_OBJJSON || eConv==KCONV_ARRJOIN ){
      /* The compact text as a string; an array's elements joined by ','
      ** are its text inside the brackets.  Text with nothing to rewrite
      ** is its compact text already. */
      if( pRaw->bRewrite ){
        if( pTmp==0 && (pTmp = sqlite3_str_new(0))==0 ) return SQLITE_NOMEM;
        sqlite3_str_reset(pTmp);
        kustomer_json_raw_value(pTmp, pRaw, i);
        if( sqlite3_str_errcode(pTmp) ){
          rc = sqlite3_str_errcode(pTmp);
          break;
        }
        z = sqlite3_str_value(pTmp);
        n = sqlite3_str_length(pTmp);
      }else{
        z = pRaw->aMember[i].zVal;
        n = pRaw->aMember[i].nVal;
      }
      if( eConv==KCONV_ARRJOIN ){
        z++;
        n -= 2;
      }
      kustomer_json_string_of_json(p, z, n);
    }else{
      kustomer_json_raw_value(p, pRaw, i);
    }
  }
  sqlite3_str_appendchar(p, 1, '}');
  sqlite3_free(sqlite3_str_finish(pTmp));
  return rc;
}

int kustomer_meta_write_raw(sqlite3_str *p, const KMetaText *pText,
                            int bAdvanced, int bDropEmail){
  if( bAdvanced ) return meta_write_text_advanced(p, pText, bDropEmail);
  kustomer_json_raw_object(p, &pText->raw, meta_text_skip, &bDropEmail);
  return SQLITE_OK;
}

/* ---- Meta rules: what Kustomer accepts (kustomer-api.md section 4) ----- */

static const KProblem aMetaProblem[] = {
#define P_NUM_KEY    0
  { "number_key_without_num", "error",
    "number value: Kustomer requires its key to end in Num" },
#define P_STR_NUM    1
  { "num_key_with_string", "error",
    "string value under a key ending in Num: Kustomer expects a number" },
#define P_DATE_KEY   2
  { "date_key_without_at", "warning",
    "date-time value: its key should end in At to be stored as a date" },
#define P_AT_NONDATE 3
  { "at_key_without_date", "warning",
    "key ends in At but the value is not an ISO-8601 date-time" },
#define P_NESTED     4
  { "nested_value", "error",
    "nested object or array: meta values must be flat" },
#define P_BOOL       5
  { "boolean_value", "error",
    "boolean value: meta accepts numbers, strings and date-times" },
#define P_DUPLICATE  6
  { "duplicate_key", "warning",
    "the key appears again later in the object; only the last value is sent" },
#define P_COLLISION  7
  { "key_collision", "warning",
    "a later property maps to the same Kustomer key and replaces this value" },
};

/* Whether a NUL-terminated key ends in zSuffix. */
static int key_ends(const char *z, const char *zSuffix){
  return ends_with(z, strlen(z), zSuffix);
}

const KProblem *kustomer_meta_item_problem(const KMetaItem *pItem){
  const cJSON *v = pItem->pSrc;
  const char *zKey = pItem->zKey;
  switch( pItem->eFate ){
    case KFATE_DUPLICATE: return &aMetaProblem[P_DUPLICATE];
    case KFATE_COLLISION: return &aMetaProblem[P_COLLISION];
    case KFATE_SENT:      break;
    default:              return 0;
  }
  if( pItem->eConv!=KCONV_NONE ){
    /* Sent as a string of JSON or "true"/"false": never a date. */
    if( key_ends(zKey, "Num") ) return &aMetaProblem[P_STR_NUM];
    if( key_ends(zKey, "At") ) return &aMetaProblem[P_AT_NONDATE];
    return 0;
  }
  if( cJSON_IsNumber(v) ){
    return key_ends(zKey, "Num") ? 0 : &aMetaProblem[P_NUM_KEY];
  }
  if( cJSON_IsString(v) ){
    int bDate = kustomer_is_iso_date(v->valuestring, strlen(v->valuestring));
    if( key_ends(zKey, "Num") ) return &aMetaProblem[P_STR_NUM];
    if( bDate && !key_ends(zKey, "At") ) return &aMetaProblem[P_DATE_KEY];
    if( !bDate && key_ends(zKey, "At") ) return &aMetaProblem[P_AT_NONDATE];
    return 0;
  }
  if( cJSON_IsBool(v) ) return &aMetaProblem[P_BOOL];
  if( cJSON_IsArray(v) || cJSON_IsObject(v) ) return &aMetaProblem[P_NESTED];
  return 0;
}

/* ---- Event name (5.1, 3.5, 6.1) ---------------------------------------- */

static const char *const azPageName[] = {
  "event", "properties.event", "name", "properties.name", 0
};

/*
** The event name of a track/page/screen event.  A track event's name that
** is sent as given (a string without the advanced transformation, or a
** value of another type unless the advanced transformation needs a string)
** is set in *ppRaw and nothing is appended to p.  Otherwise the name's text
** is appended to p.
*/
static int event_name(sqlite3_str *p, const EventPaths *pE, int eType,
                      const KSettings *pSet, const cJSON **ppRaw,
                      KError *pErr){
  sqlite3_str *pTmp;
  const char *zPrefix;
  const cJSON *pName;
  int n;

  *ppRaw = 0;
  if( eType==KTYPE_TRACK ){
    pName = kustomer_json_member(pE->pRoot, "event");
    if( !kustomer_acceptable(pName) ){
      return event_error(pErr, "Missing required value from \"event\"");
    }
    if( !cJSON_IsString(pName) ){
      if( pSet->bAdvanced ){
        /* The reference crashes in trim() here (D5). */
        return event_error(pErr, "Event name must be a string when "
                           "advancedTransform is on, got %s",
                           kustomer_json_type(pName));
      }
      *ppRaw = pName;
      return SQLITE_OK;
    }
    if( pSet->bAdvanced ){
      js_dashify(p, pName->valuestring, strlen(pName->valuestring));
    }else{
      *ppRaw = pName;
    }
    return SQLITE_OK;
  }

  zPrefix = eType==KTYPE_PAGE ? "Web-Page-Viewed" : "Screen-Viewed";
  if( (eType==KTYPE_PAGE && pSet->bGenericPage)
   || (eType==KTYPE_SCREEN && pSet->bGenericScreen) ){
    sqlite3_str_appendall(p, zPrefix);
    return SQLITE_OK;
  }
  pName = first_acceptable(pE, azPageName);
  if( pName==0 ){
    sqlite3_str_appendall(p, zPrefix);
    return SQLITE_OK;
  }
  /* The template "<prefix>-{{value}}", trimmed; not HTML-escaped (D2). */
  pTmp = sqlite3_str_new(0);
  sqlite3_str_appendall(pTmp, zPrefix);
  sqlite3_str_appendchar(pTmp, 1, '-');
  kustomer_js_string(pTmp, pName);
  if( sqlite3_str_errcode(pTmp) ){
    int rc = sqlite3_str_errcode(pTmp);
    sqlite3_free(sqlite3_str_finish(pTmp));
    return rc;
  }
  n = sqlite3_str_length(pTmp);
  if( pSet->bAdvanced ){
    js_dashify(p, sqlite3_str_value(pTmp), (size_t)n);
  }else{
    sqlite3_str_append(p, sqlite3_str_value(pTmp),
                       (int)js_trim_end(sqlite3_str_value(pTmp), (size_t)n));
  }
  sqlite3_free(sqlite3_str_finish(pTmp));
  return SQLITE_OK;
}

int kustomer_event_name_write(sqlite3_str *p, const cJSON *pEvent, int eType,
                              const KSettings *pSet, KError *pErr){
  const cJSON *pRaw;
  EventPaths ev;
  int rc;
  event_paths_init(&ev, pEvent);
  rc = event_name(p, &ev, eType, pSet, &pRaw, pErr);
  if( rc==SQLITE_OK && pRaw ){
    if( cJSON_IsString(pRaw) ){
      sqlite3_str_appendall(p, pRaw->valuestring);
    }else{
      kustomer_json_value(p, pRaw);
    }
  }
  return rc;
}

int kustomer_integration_off(const cJSON *pEvent){
  const cJSON *pInt = kustomer_json_member(pEvent, "integrations");
  const cJSON *pM, *pAll = 0, *pOwn = 0;
  if( !cJSON_IsObject(pInt) ) return 0;
  for(pM=pInt->child; pM; pM=pM->next){
    /* the destination's name as the SDKs write it: Kustomer, KUSTOMER */
    if( sqlite3_stricmp(pM->string, "Kustomer")==0 ) pOwn = pM;
    else if( strcmp(pM->string, "All")==0 ) pAll = pM;
  }
  if( pOwn ) return cJSON_IsFalse(pOwn) ? 1 : 0;
  return pAll && cJSON_IsFalse(pAll) ? 2 : 0;
}

const cJSON *kustomer_user_id(const cJSON *pEvent){
  EventPaths ev;
  event_paths_init(&ev, pEvent);
  return first_acceptable(&ev, azUserId);
}

/* ---- Track, page, screen (5) ------------------------------------------- */

static const char *const azSessionId[] = {
  "properties.kustomerSessionId", "properties.kustomer_session_id",
  "context.sessionId", 0
};
static const char *const azTrackingId[] = {
  "properties.kustomerTrackingId", "properties.kustomer_tracking_id", 0
};

static void write_value_or_null(sqlite3_str *p, const cJSON *pVal){
  if( pVal ){
    kustomer_json_value(p, pVal);
  }else{
    sqlite3_str_append(p, "null", 4);
  }
}

int kustomer_tracking_write(sqlite3_str *p, const cJSON *pEvent, int eType,
                            const KSettings *pSet, const KMetaText *pPropsRaw,
                            KError *pErr){
  const cJSON *pRaw, *pVal;
  const cJSON *pProps = kustomer_json_member(pEvent, "properties");
  int bDropEmail = pSet->bIdentityEmail && pSet->bDisableEmail;
  KMeta meta;
  EventPaths ev;
  int rc;
  sqlite3_str *pName = sqlite3_str_new(0);

  /* The lean parse holds only some of an object's members: its text is
  ** written instead. */
  if( pPropsRaw && pPropsRaw->raw.eState==KRAW_TEXT ){
    pProps = 0;
  }else{
    pPropsRaw = 0;
  }

  event_paths_init(&ev, pEvent);
  rc = event_name(pName, &ev, eType, pSet, &pRaw, pErr);
  if( rc==SQLITE_OK ) rc = sqlite3_str_errcode(pName);
  if( rc!=SQLITE_OK ){
    sqlite3_free(sqlite3_str_finish(pName));
    return rc;
  }
  rc = kustomer_meta_plan(pProps, pSet->bAdvanced, bDropEmail, &meta);
  if( rc!=SQLITE_OK ){
    sqlite3_free(sqlite3_str_finish(pName));
    kustomer_meta_free(&meta);
    return rc;
  }

  sqlite3_str_appendall(p, "{\"identity\":{\"externalId\":");
  write_value_or_null(p, first_acceptable(&ev, azUserId));
  if( pSet->bIdentityEmail ){
    sqlite3_str_appendall(p, ",\"email\":");
    write_value_or_null(p, first_acceptable(&ev, azEmail));
  }
  sqlite3_str_appendall(p, "},\"event\":{\"name\":");
  if( pRaw ){
    kustomer_json_value(p, pRaw);
    sqlite3_free(sqlite3_str_finish(pName));
  }else{
    append_json_string(p, pName);
  }
  if( (pVal = first_acceptable(&ev, azSessionId))!=0 ){
    sqlite3_str_appendall(p, ",\"sessionId\":");
    kustomer_json_value(p, pVal);
  }
  if( (pVal = first_acceptable(&ev, azTrackingId))!=0 ){
    sqlite3_str_appendall(p, ",\"trackingId\":");
    kustomer_json_value(p, pVal);
  }
  if( pPropsRaw ){
    sqlite3_str_appendall(p, ",\"meta\":");
    rc = kustomer_meta_write_raw(p, pPropsRaw, pSet->bAdvanced, bDropEmail);
  }else if( kustomer_meta_present(&meta) ){
    sqlite3_str_appendall(p, ",\"meta\":");
    rc = kustomer_meta_write(p, &meta);
  }
  sqlite3_str_appendall(p, "}}");
  kustomer_meta_free(&meta);
  return rc;
}

/* ---- Identify (4.3) ---------------------------------------------------- */

/* KustomerIdentify.json: destination key and source paths, in order. */
static const struct IdentifyMap {
  const char *zKey;
  const char *azPath[5];
} aIdentifyMap[] = {
  { "name",          { "traits.name", "context.traits.name" } },
  { "externalId",    { 0 } },      /* generic userId, required */
  { "username",      { "traits.userName", "context.traits.userName" } },
  { "company",       { "traits.company.name", "context.traits.company.name",
                       "traits.company", "context.traits.company" } },
  { "signedUpAt",    { "traits.createdAt", "context.traits.createdAt" } },
  { "lastActivityAt", { "traits.lastActivityAt",
                        "context.traits.lastActivityAt" } },
  { "lastCustomerActivityAt", { "traits.lastCustomerActivityAt",
                                "context.traits.lastCustomerActivityAt" } },
  { "lastSeenAt",    { "traits.lastSeenAt", "context.traits.lastSeenAt" } },
  { "importedAt",    { "traits.importedAt", "context.traits.importedAt" } },
  { "avatarUrl",     { "traits.avatar", "context.traits.avatar" } },
  { "gender",        { "traits.gender", "context.traits.gender" } },
  { "tags",          { "traits.tags", "context.traits.tags" } },
  { "locale",        { "context.locale" } },
  { "emails",        { "traits.emails", "context.traits.emails" } },
  { "phones",        { "traits.phones", "context.traits.phones" } },
  { "socials",       { "traits.socials", "context.traits.socials" } },
  { "birthdayAt",    { "traits.dob", "context.traits.dob",
                       "traits.birthday", "context.traits.birthday" } },
  { "custom",        { "traits.customObject", "context.traits.customObject" } },
  { "sentiment",     { "traits.sentiment", "context.traits.sentiment" } },
  { "whatsapps",     { "traits.whatsapps", "context.traits.whatsapps" } },
  { "facebookIds",   { "traits.facebookIds", "context.traits.facebookIds" } },
  { "instagramIds",  { "traits.instagramIds",
                       "context.traits.instagramIds" } },
  { "timeZone",      { "traits.timeZone", "context.traits.timeZone" } },
  { "defaultLang",   { "traits.defaultLanguage",
                       "context.traits.defaultLanguage" } },
  { "rev",           { "traits.rev", "context.traits.rev" } },
};
#define N_IDENTIFY_MAP (int)(sizeof(aIdentifyMap)/sizeof(aIdentifyMap[0]))
#define IDMAP_NAME   0
#define IDMAP_EXTID  1
#define IDMAP_EMAILS 13
#define IDMAP_PHONES 14

/* A value synthesised after the mapping (name, emails, phones). */
typedef struct Derived Derived;
struct Derived {
  const char *zType;        /* "email" or "phone" for the [{type,..}] form */
  const cJSON *pVal;        /* the value inside it */
  const char *zText;        /* or a composed string (name) */
  int nText;
};

static void write_derived(sqlite3_str *p, const Derived *pD){
  if( pD->zText ){
    kustomer_json_string(p, pD->zText, (size_t)pD->nText);
  }else{
    sqlite3_str_appendall(p, "[{\"type\":\"home\"");
    kustomer_json_key(p, 1, pD->zType, strlen(pD->zType));
    kustomer_json_value(p, pD->pVal);
    sqlite3_str_append(p, "}]", 2);
  }
}

/* The address text of locations (4.3 step 5), appended to p; returns
** whether there is one. */
static int address_text(sqlite3_str *p, const EventPaths *pE){
  static const char *const azPart[] = { "street", "city", "state",
                                        "postalCode" };
  const cJSON *pAddr = first_acceptable(pE, azAddress);
  const cJSON *apPart[4];
  int i, bAny = 0;
  if( !kustomer_js_truthy(pAddr) ) return 0;
  if( cJSON_IsString(pAddr) ){
    sqlite3_str_appendall(p, pAddr->valuestring);
    return 1;
  }
  for(i=0; i<4; i++){
    apPart[i] = cJSON_IsObject(pAddr) ?
                kustomer_json_member(pAddr, azPart[i]) : 0;
    if( kustomer_js_truthy(apPart[i]) ) bAny = 1;
  }
  if( !bAny ) return 0;
  for(i=0; i<4; i++){
    if( i>0 ) sqlite3_str_appendchar(p, 1, ' ');
    if( kustomer_js_truthy(apPart[i]) ) kustomer_js_string(p, apPart[i]);
  }
  return 1;
}

int kustomer_identify_write(sqlite3_str *p, const cJSON *pEvent,
                            const KSettings *pSet, KError *pErr){
  const cJSON *apVal[N_IDENTIFY_MAP];
  const cJSON *pEmail, *pPhone, *pWebsite;
  Derived aDer[3];          /* name, emails, phones */
  Derived *apOver[N_IDENTIFY_MAP];
  sqlite3_str *pName = 0, *pAddr;
  EventPaths ev;
  int i, bFirst = 1, rc = SQLITE_OK;
  (void)pSet;

  event_paths_init(&ev, pEvent);
  memset(aDer, 0, sizeof(aDer));
  memset(apOver, 0, sizeof(apOver));
  for(i=0; i<N_IDENTIFY_MAP; i++){
    if( i==IDMAP_EXTID ){
      apVal[i] = first_acceptable(&ev, azUserId);
    }else if( aIdentifyMap[i].azPath[1]==0 ){
      /* A single path: the raw value, kept only when acceptable. */
      apVal[i] = event_path(&ev, aIdentifyMap[i].azPath[0]);
      if( !kustomer_acceptable(apVal[i]) ) apVal[i] = 0;
    }else{
      apVal[i] = first_acceptable(&ev, aIdentifyMap[i].azPath);
    }
  }
  if( apVal[IDMAP_EXTID]==0 ){
    return event_error(pErr, "Missing required value from \"userId\"");
  }

  /* name = firstName + " " + lastName when no truthy name was mapped. */
  if( !kustomer_js_truthy(apVal[IDMAP_NAME]) ){
    const cJSON *pFirst = first_acceptable(&ev, azFirstName);
    const cJSON *pLast = first_acceptable(&ev, azLastName);
    if( kustomer_js_truthy(pFirst) && kustomer_js_truthy(pLast) ){
      pName = sqlite3_str_new(0);
      kustomer_js_string(pName, pFirst);
      sqlite3_str_appendchar(pName, 1, ' ');
      kustomer_js_string(pName, pLast);
      rc = sqlite3_str_errcode(pName);
      if( rc ) goto done;
      aDer[0].zText = sqlite3_str_value(pName);
      aDer[0].nText = sqlite3_str_length(pName);
      apOver[IDMAP_NAME] = &aDer[0];
    }
  }
  pEmail = first_acceptable(&ev, azEmail);
  if( !kustomer_js_truthy(apVal[IDMAP_EMAILS]) && kustomer_js_truthy(pEmail) ){
    aDer[1].zType = "email";
    aDer[1].pVal = pEmail;
    apOver[IDMAP_EMAILS] = &aDer[1];
  }
  pPhone = first_acceptable(&ev, azPhone);
  if( !kustomer_js_truthy(apVal[IDMAP_PHONES]) && kustomer_js_truthy(pPhone) ){
    aDer[2].zType = "phone";
    aDer[2].pVal = pPhone;
    apOver[IDMAP_PHONES] = &aDer[2];
  }

  /* Mapped keys in order; a derived value replaces a mapped one in place,
  ** or is appended after all mapped keys (JS insertion order). */
  sqlite3_str_appendchar(p, 1, '{');
  for(i=0; i<N_IDENTIFY_MAP; i++){
    if( apVal[i]==0 ) continue;
    kustomer_json_key(p, !bFirst, aIdentifyMap[i].zKey,
                      strlen(aIdentifyMap[i].zKey));
    bFirst = 0;
    if( apOver[i] ){
      write_derived(p, apOver[i]);
      apOver[i] = 0;
    }else{
      kustomer_json_value(p, apVal[i]);
    }
  }
  for(i=0; i<N_IDENTIFY_MAP; i++){
    if( apOver[i] ){
      kustomer_json_key(p, 1, aIdentifyMap[i].zKey,
                        strlen(aIdentifyMap[i].zKey));
      write_derived(p, apOver[i]);
    }
  }
  pWebsite = first_acceptable(&ev, azWebsite);
  if( kustomer_js_truthy(pWebsite) ){
    sqlite3_str_appendall(p, ",\"urls\":[{\"url\":");
    kustomer_json_value(p, pWebsite);
    sqlite3_str_append(p, "}]", 2);
  }
  pAddr = sqlite3_str_new(0);
  if( address_text(pAddr, &ev) ){
    sqlite3_str_appendall(p, ",\"locations\":[{\"type\":\"home\",\"address\":");
    rc = append_json_string(p, pAddr);
    sqlite3_str_append(p, "}]", 2);
  }else{
    sqlite3_free(sqlite3_str_finish(pAddr));
  }
  sqlite3_str_appendchar(p, 1, '}');

done:
  if( pName ) sqlite3_free(sqlite3_str_finish(pName));
  return rc;
}

/* ---- The request envelope (7) ------------------------------------------ */

/* Append z as an RFC 3986 path segment (D4): unreserved characters,
** sub-delims, ':' and '@' are kept, every other byte is %XX. */
void kustomer_path_segment(sqlite3_str *p, const char *z, size_t n){
  static const char hex[] = "0123456789ABCDEF";
  size_t i;
  for(i=0; i<n; i++){
    unsigned char c = (unsigned char)z[i];
    if( (c>='a' && c<='z') || (c>='A' && c<='Z') || (c>='0' && c<='9')
     || strchr("-._~!$&'()*+,;=:@", c)!=0 ){
      if( c ) sqlite3_str_appendchar(p, 1, (char)c);
    }else{
      char aBuf[3];
      aBuf[0] = '%';
      aBuf[1] = hex[c>>4];
      aBuf[2] = hex[c&15];
      sqlite3_str_append(p, aBuf, 3);
    }
  }
}

int kustomer_path_segment_value(sqlite3_str *p, const cJSON *pVal){
  sqlite3_str *pTmp = sqlite3_str_new(0);
  int rc;
  kustomer_js_string(pTmp, pVal);
  rc = sqlite3_str_errcode(pTmp);
  if( rc==SQLITE_OK ){
    kustomer_path_segment(p, sqlite3_str_value(pTmp) ?
                          sqlite3_str_value(pTmp) : "",
                          (size_t)sqlite3_str_length(pTmp));
  }
  sqlite3_free(sqlite3_str_finish(pTmp));
  return rc;
}

/* The path prefixes of identify's lookups, in kustomer_identify_lookups()'s
** order. */
const char *const kustomer_aLookupPrefix[3] = {
  "email=", "externalId=", "externalId="
};

/* The id of the first context.externalId entry of type kustomerId (3.7). */
static const cJSON *customer_id_of(const cJSON *pEvent){
  const cJSON *pList = path_get(pEvent, "context.externalId");
  const cJSON *pC;
  if( !cJSON_IsArray(pList) ) return 0;
  for(pC=pList->child; pC; pC=pC->next){
    const cJSON *pType = kustomer_json_member(pC, "type");
    if( cJSON_IsString(pType) && strcmp(pType->valuestring, "kustomerId")==0 ){
      return kustomer_json_member(pC, "id");
    }
  }
  return 0;
}

int kustomer_request_write(sqlite3_str *p, const cJSON *pEvent,
                           const KSettings *pSet, const char *zCustomerId,
                           const KMetaText *pPropsRaw, KError *pErr){
  int eType = kustomer_event_type(pEvent, pErr);
  int rc = SQLITE_OK;
  const cJSON *pKid;

  if( eType<0 ) return eType;
  /* Everything goes straight into p, the body too: on an error the caller
  ** discards p.  The endpoint's path parts need no JSON escaping. */
  pKid = 0;
  if( eType!=KTYPE_IDENTIFY ){
    zCustomerId = 0;
  }else{
    pKid = customer_id_of(pEvent);
    if( !kustomer_js_truthy(pKid) ) pKid = 0;
    if( pKid || (zCustomerId && zCustomerId[0]==0) ) zCustomerId = 0;
  }
  if( pKid || zCustomerId ){
    sqlite3_str_appendall(p, "{\"version\":\"1\",\"type\":\"REST\","
                             "\"method\":\"PUT\",\"endpoint\":\"");
  }else{
    sqlite3_str_appendall(p, "{\"version\":\"1\",\"type\":\"REST\","
                             "\"method\":\"POST\",\"endpoint\":\"");
  }
  kustomer_json_string_body(p, pSet->zBase, strlen(pSet->zBase));
  if( eType!=KTYPE_IDENTIFY ){
    sqlite3_str_appendall(p, "/v1/tracking/identityEvent");
  }else if( pKid ){
    sqlite3_str_appendall(p, "/v1/customers/");
    rc = kustomer_path_segment_value(p, pKid);
    sqlite3_str_appendall(p, "?replace=false");
  }else if( zCustomerId ){
    sqlite3_str_appendall(p, "/v1/customers/");
    kustomer_path_segment(p, zCustomerId, strlen(zCustomerId));
    sqlite3_str_appendall(p, "?replace=false");
  }else{
    sqlite3_str_appendall(p, "/v1/customers");
  }
  sqlite3_str_appendall(p, "\",\"headers\":{\"Content-Type\":"
                           "\"application/json\"");
  if( pSet->zAuth ){
    sqlite3_str_appendall(p, ",\"Authorization\":");
    kustomer_json_string(p, pSet->zAuth, strlen(pSet->zAuth));
  }
  sqlite3_str_appendall(p, "},\"params\":{},\"body\":{\"JSON\":");
  if( rc!=SQLITE_OK ) return rc;
  if( eType==KTYPE_IDENTIFY ){
    rc = kustomer_identify_write(p, pEvent, pSet, pErr);
  }else{
    rc = kustomer_tracking_write(p, pEvent, eType, pSet, pPropsRaw, pErr);
  }
  sqlite3_str_appendall(p, ",\"JSON_ARRAY\":{},\"XML\":{},\"FORM\":{}},"
                           "\"files\":{},\"userId\":\"\"}");
  return rc;
}

/* ---- Identify lookups (4.1), for the HTTP side ------------------------ */

static const char *const azUserIdOnly[] = {
  "userId", "traits.userId", "traits.id", "context.traits.userId",
  "context.traits.id", 0
};

int kustomer_identify_lookups(const cJSON *pEvent, const cJSON *apVal[3]){
  const cJSON *pAnon = kustomer_json_member(pEvent, "anonymousId");
  EventPaths ev;
  event_paths_init(&ev, pEvent);
  apVal[0] = first_acceptable(&ev, azEmail);
  apVal[1] = first_acceptable(&ev, azUserIdOnly);
  apVal[2] = pAnon;
  return kustomer_js_truthy(customer_id_of(pEvent));
}
