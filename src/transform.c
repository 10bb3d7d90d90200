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
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>
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
** context the second (and integrations, which check.c reads, and the
** three timestamps, which timestampMeta reads: short strings, kept even
** when it is off, as the parse does not know the settings).  The rest of
** an event (context.app, context.page, ...) is most of its bytes and is
** left out of the parse.  A path added here must keep this list complete.
*/
static const KJsonKeep aContextKeep[] = {
  { "traits", 0, 0 }, { "sessionId", 0, 0 }, { "externalId", 0, 0 },
  { "locale", 0, 0 }, { 0, 0, 0 }
};
static const KJsonKeep aEventKeep[] = {
  { "type", 0, 0 }, { "event", 0, 0 }, { "name", 0, 0 }, { "userId", 0, 0 },
  { "anonymousId", 0, 0 }, { "traits", 0, 0 }, { "properties", 0, 0 },
  { "context", aContextKeep, 0 }, { "integrations", 0, 0 },
  { "timestamp", 0, 0 }, { "originalTimestamp", 0, 0 }, { "sentAt", 0, 0 },
  { 0, 0, 0 }
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
  { "properties", aPropsKeep, KKEEP_RAW },
  { "context", aTrackContextKeep, 0 },
  { "timestamp", 0, 0 }, { "originalTimestamp", 0, 0 }, { "sentAt", 0, 0 },
  { 0, 0, 0 }
};
/* Most identify events say so first: they read much more of traits, so
** they are parsed as such at once (any event may take that parse). */
static int text_says_identify(const char *z, int n){
  static const char zIdentify[] = "{\"type\":\"identify\"";
  return n>=(int)sizeof(zIdentify)-1
      && memcmp(z, zIdentify, sizeof(zIdentify)-1)==0;
}

/* Whether a parse is of an identify event (which another parse took for
** one of the tracking types). */
static int tree_is_identify(const cJSON *p){
  const cJSON *pType = kustomer_json_member(p, "type");
  return cJSON_IsString(pType)
      && sqlite3_stricmp(pType->valuestring, "identify")==0;
}

/* kustomer_check reads of a property only its kind and, for a string, its
** text (the meta rules), and in full those a path names: the other nested
** values of properties are made empty.  The advanced plan of a track
** event's meta reads into arrays: with it, the event is parsed as for any
** transformation.  Of a track, page or screen event the check reads of
** traits only the ids. */
static const KJsonKeep aCheckKeep[] = {
  { "type", 0, 0 }, { "event", 0, 0 }, { "name", 0, 0 }, { "userId", 0, 0 },
  { "anonymousId", 0, 0 }, { "traits", 0, 0 },
  { "properties", aPropsKeep, KKEEP_SHALLOW },
  { "context", aContextKeep, 0 }, { "integrations", 0, 0 },
  { 0, 0, 0 }
};
static const KJsonKeep aCheckTrackKeep[] = {
  { "type", 0, 0 }, { "event", 0, 0 }, { "name", 0, 0 }, { "userId", 0, 0 },
  { "anonymousId", 0, 0 }, { "traits", aTrackTraitsKeep, 0 },
  { "properties", aPropsKeep, KKEEP_SHALLOW },
  { "context", aTrackContextKeep, 0 }, { "integrations", 0, 0 },
  { 0, 0, 0 }
};

cJSON *kustomer_event_parse_check(const char *z, int n, int bAdvanced,
                                  KJsonRoom *pRoom, char **pzErr){
  cJSON *p;
  if( bAdvanced ) return kustomer_event_parse(z, n, pRoom, pzErr);
  if( text_says_identify(z, n) ){
    return kustomer_json_parse_some(z, n, aCheckKeep, 0, pRoom, pzErr);
  }
  p = kustomer_json_parse_some(z, n, aCheckTrackKeep, 0, pRoom, pzErr);
  if( p && tree_is_identify(p) ){
    kustomer_json_delete(p);
    p = kustomer_json_parse_some(z, n, aCheckKeep, 0, pRoom, pzErr);
  }
  return p;
}

static const KJsonKeep aTrackKeepProps[] = {   /* properties parsed whole */
  { "type", 0, 0 }, { "event", 0, 0 }, { "name", 0, 0 }, { "userId", 0, 0 },
  { "anonymousId", 0, 0 }, { "traits", aTrackTraitsKeep, 0 },
  { "properties", 0, 0 },
  { "context", aTrackContextKeep, 0 },
  { "timestamp", 0, 0 }, { "originalTimestamp", 0, 0 }, { "sentAt", 0, 0 },
  { 0, 0, 0 }
};

static int meta_text_ok(KMetaText *pText, int bAdvanced);

cJSON *kustomer_event_parse_lean(const char *z, int n, int bAdvanced,
                                 KMetaText *pProps, KJsonRoom *pRoom,
                                 char **pzErr){
  KJsonRaw *pRaw = pProps ? &pProps->raw : 0;
  cJSON *p;
  int bAgain = 0;
  if( pRaw ){
    pRaw->eState = KRAW_NONE;
    pRaw->z = 0;
  }
  if( text_says_identify(z, n) ){
    return kustomer_event_parse(z, n, pRoom, pzErr);
  }
  p = kustomer_json_parse_some(z, n, pRaw ? aTrackKeep : aTrackKeepProps,
                               pRaw, pRoom, pzErr);
  if( p==0 ) return 0;
  if( pProps && !meta_text_ok(pProps, bAdvanced) ) bAgain = 1;
  if( tree_is_identify(p) ) bAgain = 1;   /* it reads much more of traits */
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
    int k;
    if( z[i]>' ' && z[i]<0x80 ){   /* most of any name */
      if( bPending ){
        sqlite3_str_appendchar(p, 1, '-');
        bPending = 0;
      }
      bAny = 1;
      i++;
      continue;
    }
    k = js_space(&z[i], n-i);
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

/* ---- ISO-8601 text of epoch milliseconds ------------------------------ */

/* The date of a day count from 1970-01-01 (H. Hinnant's
** civil_from_days). */
static void civil_from_days(sqlite3_int64 z, int *pY, int *pM, int *pD){
  sqlite3_int64 era, doe, yoe, y, doy, mp;
  z += 719468;
  era = (z>=0 ? z : z-146096)/146097;
  doe = z - era*146097;
  yoe = (doe - doe/1460 + doe/36524 - doe/146096)/365;
  y = yoe + era*400;
  doy = doe - (365*yoe + yoe/4 - yoe/100);
  mp = (5*doy + 2)/153;
  *pD = (int)(doy - (153*mp + 2)/5 + 1);
  *pM = (int)(mp<10 ? mp+3 : mp-9);
  *pY = (int)(y + (*pM<=2));
}

void kustomer_iso_format(sqlite3_int64 ms, char *zOut){
  sqlite3_int64 days = ms/86400000, rem = ms%86400000;
  int y, mo, d;
  if( rem<0 ){
    rem += 86400000;
    days--;
  }
  civil_from_days(days, &y, &mo, &d);
  sqlite3_snprintf(25, zOut, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, mo, d,
                   (int)(rem/3600000), (int)(rem/60000%60),
                   (int)(rem/1000%60), (int)(rem%1000));
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
  char aKey[128];
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
    /* a key without escapes: its text is its JSON; with its comma, quotes
    ** and suffix, one append */
    if( nKey<=(int)sizeof(aKey)-8 ){
      int k = 0;
      if( !bFirst ) aKey[k++] = ',';
      aKey[k++] = '"';
      memcpy(&aKey[k], zKey, (size_t)nKey);
      k += nKey;
      if( eAdv & ADV_NUM ){ memcpy(&aKey[k], "Num", 3); k += 3; }
      if( eAdv & ADV_AT ){ memcpy(&aKey[k], "At", 2); k += 2; }
      aKey[k++] = '"';
      aKey[k++] = ':';
      sqlite3_str_append(p, aKey, k);
    }else{
      if( !bFirst ) sqlite3_str_appendchar(p, 1, ',');
      sqlite3_str_appendchar(p, 1, '"');
      sqlite3_str_append(p, zKey, nKey);
      if( eAdv & ADV_NUM ) sqlite3_str_append(p, "Num", 3);
      if( eAdv & ADV_AT ) sqlite3_str_append(p, "At", 2);
      sqlite3_str_append(p, "\":", 2);
    }
    bFirst = 0;
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

static int epoch_iso(const cJSON *pVal, char *zOut);

/* timestampMeta: the event's own time, from timestamp, else
** originalTimestamp, else sentAt; an ISO 8601 date-time is kept as it is,
** epoch seconds or milliseconds become one.  NULL when none reads as a
** time; else zBuf (at least 32 bytes) or the event's own text. */
static const char *event_time(const cJSON *pEvent, char *zBuf){
  static const char *const az[] = { "timestamp", "originalTimestamp",
                                    "sentAt" };
  int i;
  for(i=0; i<3; i++){
    const cJSON *pT = kustomer_json_member(pEvent, az[i]);
    if( cJSON_IsString(pT) ){
      const char *z = pT->valuestring;
      size_t n = strlen(z);
      if( n>10 && kustomer_is_iso_date(z, n) ) return z;
    }
    if( cJSON_IsNumber(pT) && epoch_iso(pT, zBuf) ) return zBuf;
  }
  return 0;
}

/* Meta with the event's time added under zKey.  zMeta is the meta that
** would be sent (NULL: none); a property of that name wins, and a meta that
** is not an object (properties given as an array, say) is sent as it is. */
static void meta_with_time(sqlite3_str *p, const char *zMeta, int nMeta,
                           const char *zKey, const char *zTime){
  if( zMeta && (nMeta<2 || zMeta[0]!='{' || zMeta[nMeta-1]!='}') ){
    sqlite3_str_append(p, zMeta, nMeta);
    return;
  }
  if( zMeta ){
    size_t nKey = strlen(zKey);
    const char *zHit = 0;
    int i;
    /* a cheap test first: the key's text anywhere */
    for(i=1; i+(int)nKey+2<=nMeta; i++){
      if( zMeta[i-1]=='"' && memcmp(zMeta+i, zKey, nKey)==0
       && zMeta[i+nKey]=='"' ){
        zHit = zMeta+i;
        break;
      }
    }
    if( zHit ){
      cJSON *pM = cJSON_ParseWithLength(zMeta, (size_t)nMeta);
      int bHas = pM && cJSON_GetObjectItemCaseSensitive(pM, zKey)!=0;
      cJSON_Delete(pM);
      if( bHas ){
        sqlite3_str_append(p, zMeta, nMeta);
        return;
      }
    }
    sqlite3_str_append(p, zMeta, nMeta-1);
    if( nMeta>2 ) sqlite3_str_appendchar(p, 1, ',');
  }else{
    sqlite3_str_appendchar(p, 1, '{');
  }
  kustomer_json_string(p, zKey, strlen(zKey));
  sqlite3_str_appendchar(p, 1, ':');
  kustomer_json_string(p, zTime, strlen(zTime));
  sqlite3_str_appendchar(p, 1, '}');
}

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
  const char *zTime;
  char zTimeBuf[32];
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
  if( pSet->zTimeMeta && (zTime = event_time(pEvent, zTimeBuf))!=0 ){
    /* meta is written aside, then given the time */
    sqlite3_str *pM = sqlite3_str_new(0);
    int bMeta = 1;
    if( pPropsRaw ){
      rc = kustomer_meta_write_raw(pM, pPropsRaw, pSet->bAdvanced,
                                   bDropEmail);
    }else if( kustomer_meta_present(&meta) ){
      rc = kustomer_meta_write(pM, &meta);
    }else{
      bMeta = 0;
    }
    if( rc==SQLITE_OK ) rc = sqlite3_str_errcode(pM);
    if( rc==SQLITE_OK ){
      sqlite3_str_appendall(p, ",\"meta\":");
      meta_with_time(p, bMeta ? sqlite3_str_value(pM) : 0,
                     bMeta ? sqlite3_str_length(pM) : 0,
                     pSet->zTimeMeta, zTime);
    }
    sqlite3_free(sqlite3_str_finish(pM));
  }else if( pPropsRaw ){
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

/* What Kustomer's customer schema takes for a key (kustomer-api.md 3):
** what normalizeTraits repairs. */
#define KC_OTHER   0
#define KC_STRING  1        /* a string: numbers become their text */
#define KC_DATE    2        /* ISO 8601: epoch seconds or ms become one */
#define KC_GENDER  3        /* "m" or "f": words become one */
#define KC_TAGS    4        /* string[]: a string becomes [string] */
#define KC_ITEMS   5        /* objects whose zItem member is a string */

/* KustomerIdentify.json: destination key and source paths, in order, and
** where Segment's identify spec traits (traitMapping "segment") differ. */
static const struct IdentifyMap {
  const char *zKey;
  int eClass;
  const char *zItem;
  const char *azPath[5];
  const char *azSegment[3];
} aIdentifyMap[] = {
  { "name", KC_STRING, 0, { "traits.name", "context.traits.name" }, { 0 } },
  { "externalId", KC_STRING, 0, { 0 }, { 0 } },   /* generic userId, required */
  { "username", KC_STRING, 0, { "traits.userName", "context.traits.userName" },
                              { "traits.username", "context.traits.username" } },
  { "company", KC_STRING, 0, { "traits.company.name",
                               "context.traits.company.name",
                               "traits.company", "context.traits.company" },
                             { 0 } },
  { "signedUpAt", KC_DATE, 0, { "traits.createdAt",
                                "context.traits.createdAt" }, { 0 } },
  { "lastActivityAt", KC_DATE, 0, { "traits.lastActivityAt",
                                    "context.traits.lastActivityAt" }, { 0 } },
  { "lastCustomerActivityAt", KC_DATE, 0,
    { "traits.lastCustomerActivityAt",
      "context.traits.lastCustomerActivityAt" }, { 0 } },
  { "lastSeenAt", KC_DATE, 0, { "traits.lastSeenAt",
                                "context.traits.lastSeenAt" }, { 0 } },
  { "importedAt", KC_DATE, 0, { "traits.importedAt",
                                "context.traits.importedAt" }, { 0 } },
  { "avatarUrl", KC_STRING, 0, { "traits.avatar", "context.traits.avatar" },
                               { 0 } },
  { "gender", KC_GENDER, 0, { "traits.gender", "context.traits.gender" },
                            { 0 } },
  { "tags", KC_TAGS, 0, { "traits.tags", "context.traits.tags" }, { 0 } },
  { "locale", KC_STRING, 0, { "context.locale" }, { 0 } },
  { "emails", KC_ITEMS, "email", { "traits.emails", "context.traits.emails" },
                                 { 0 } },
  { "phones", KC_ITEMS, "phone", { "traits.phones", "context.traits.phones" },
                                 { 0 } },
  { "socials", KC_OTHER, 0, { "traits.socials", "context.traits.socials" },
                            { 0 } },
  { "birthdayAt", KC_DATE, 0, { "traits.dob", "context.traits.dob",
                                "traits.birthday", "context.traits.birthday" },
                              { "traits.birthday", "context.traits.birthday" } },
  { "custom", KC_OTHER, 0, { "traits.customObject",
                             "context.traits.customObject" }, { 0 } },
  { "sentiment", KC_OTHER, 0, { "traits.sentiment",
                                "context.traits.sentiment" }, { 0 } },
  { "whatsapps", KC_ITEMS, "phone", { "traits.whatsapps",
                                      "context.traits.whatsapps" }, { 0 } },
  { "facebookIds", KC_OTHER, 0, { "traits.facebookIds",
                                  "context.traits.facebookIds" }, { 0 } },
  { "instagramIds", KC_OTHER, 0, { "traits.instagramIds",
                                   "context.traits.instagramIds" }, { 0 } },
  { "timeZone", KC_STRING, 0, { "traits.timeZone",
                                "context.traits.timeZone" }, { 0 } },
  { "defaultLang", KC_STRING, 0, { "traits.defaultLanguage",
                                   "context.traits.defaultLanguage" }, { 0 } },
  { "rev", KC_OTHER, 0, { "traits.rev", "context.traits.rev" }, { 0 } },
};
#define N_IDENTIFY_MAP (int)(sizeof(aIdentifyMap)/sizeof(aIdentifyMap[0]))
#define IDMAP_NAME    0
#define IDMAP_EXTID   1
#define IDMAP_COMPANY 3
#define IDMAP_GENDER  10
#define IDMAP_EMAILS  13
#define IDMAP_PHONES  14

static const char *const azAddressPart[] = {
  "street", "city", "state", "postalCode", "country"
};
/* Segment's address parts and Kustomer's location keys for them. */
static const char *const azLocationKey[] = {
  "address", "cityName", "regionName", "zipCode", "countryName"
};

/* first_acceptable(), with the path it was found at; Segment's company is
** a name, never an object passed through. */
static const cJSON *first_acceptable_at(const EventPaths *pE,
                                        const char *const *azPath,
                                        int bNameOnly, const char **pzPath){
  for(; *azPath; azPath++){
    const cJSON *p = event_path(pE, *azPath);
    if( kustomer_acceptable(p) && !(bNameOnly && is_container(p)) ){
      *pzPath = *azPath;
      return p;
    }
  }
  return 0;
}

static int plan_add(KIdPlan *pPlan, const char *zKey, int eForm,
                    const char *zPath, const cJSON *pVal){
  KIdField *pF = &pPlan->aField[pPlan->nField];
  memset(pF, 0, sizeof(*pF));
  pF->zKey = zKey;
  pF->eForm = eForm;
  pF->zPath = zPath;
  pF->pVal = pVal;
  return pPlan->nField++;
}

/* normalizeTraits' reading of a gender: "m", "f" or NULL. */
static const char *gender_word(const cJSON *pVal){
  static const char *const azF[] = { "f", "female", "woman", "feminine", 0 };
  static const char *const azM[] = { "m", "male", "man", "masculine", 0 };
  const char *z;
  int i, n;
  if( !cJSON_IsString(pVal) ) return 0;
  z = pVal->valuestring;
  while( *z==' ' ) z++;
  n = (int)strlen(z);
  while( n>0 && z[n-1]==' ' ) n--;
  for(i=0; azF[i]; i++){
    if( (int)strlen(azF[i])==n && sqlite3_strnicmp(z, azF[i], n)==0 ){
      return "f";
    }
  }
  for(i=0; azM[i]; i++){
    if( (int)strlen(azM[i])==n && sqlite3_strnicmp(z, azM[i], n)==0 ){
      return "m";
    }
  }
  return 0;
}

int kustomer_identify_plan(const cJSON *pEvent, const KSettings *pSet,
                           KIdPlan *pPlan, KError *pErr){
  int aAt[N_IDENTIFY_MAP];
  const char *zFirst = 0, *zLast = 0, *zPath = 0;
  const cJSON *pFirst = 0, *pLast = 0, *pWebsite, *pAddr;
  EventPaths ev;
  int i, k;

  memset(pPlan, 0, offsetof(KIdPlan, aField));
  pPlan->bSegment = pSet->bSegmentTraits;
  pPlan->bNormalize = pSet->bNormalize;
  event_paths_init(&ev, pEvent);
  for(i=0; i<N_IDENTIFY_MAP; i++){
    const struct IdentifyMap *pM = &aIdentifyMap[i];
    const char *const *az = (pPlan->bSegment && pM->azSegment[0]) ?
                            pM->azSegment : pM->azPath;
    const cJSON *pVal;
    aAt[i] = -1;
    if( i==IDMAP_EXTID ){
      pVal = first_acceptable_at(&ev, azUserId, 0, &zPath);
      if( pVal==0 ){
        return event_error(pErr, "Missing required value from \"userId\"");
      }
    }else if( az[1]==0 ){
      /* A single path: the raw value, kept only when acceptable. */
      zPath = az[0];
      pVal = event_path(&ev, zPath);
      if( !kustomer_acceptable(pVal) ) pVal = 0;
    }else{
      pVal = first_acceptable_at(&ev, az,
                                 pPlan->bSegment && i==IDMAP_COMPANY, &zPath);
    }
    if( pVal ) aAt[i] = plan_add(pPlan, pM->zKey, KID_COPY, zPath, pVal);
  }

  /* name = firstName + " " + lastName when no truthy name was mapped
  ** (Segment: either alone will do). */
  if( aAt[IDMAP_NAME]<0
   || !kustomer_js_truthy(pPlan->aField[aAt[IDMAP_NAME]].pVal) ){
    pFirst = first_acceptable_at(&ev, azFirstName, 0, &zFirst);
    pLast = first_acceptable_at(&ev, azLastName, 0, &zLast);
    if( !kustomer_js_truthy(pFirst) ) pFirst = 0;
    if( !kustomer_js_truthy(pLast) ) pLast = 0;
    if( (pFirst && pLast) || (pPlan->bSegment && (pFirst || pLast)) ){
      KIdField *pF;
      if( aAt[IDMAP_NAME]<0 ){
        aAt[IDMAP_NAME] = plan_add(pPlan, "name", KID_NAME, 0, 0);
      }
      pF = &pPlan->aField[aAt[IDMAP_NAME]];
      pF->eForm = KID_NAME;
      pF->zPath = pFirst ? zFirst : zLast;
      pF->pVal = pFirst ? pFirst : pLast;
      pF->zPath2 = pFirst ? zLast : 0;
      pF->pVal2 = pFirst ? pLast : 0;
    }
  }
  /* A single email or phone when no list of them was mapped.  A key not
  ** mapped is appended after all mapped ones (JS insertion order), name
  ** first, as plan_add() does here. */
  for(k=0; k<2; k++){
    int iMap = k==0 ? IDMAP_EMAILS : IDMAP_PHONES;
    const cJSON *pOne = first_acceptable_at(&ev, k==0 ? azEmail : azPhone, 0,
                                            &zPath);
    KIdField *pF;
    if( !kustomer_js_truthy(pOne) ) continue;
    if( aAt[iMap]>=0 && kustomer_js_truthy(pPlan->aField[aAt[iMap]].pVal) ){
      continue;
    }
    if( aAt[iMap]<0 ){
      aAt[iMap] = plan_add(pPlan, aIdentifyMap[iMap].zKey, KID_HOME, 0, 0);
    }
    pF = &pPlan->aField[aAt[iMap]];
    pF->eForm = KID_HOME;
    pF->zItem = k==0 ? "email" : "phone";
    pF->zPath = zPath;
    pF->pVal = pOne;
  }
  pWebsite = first_acceptable_at(&ev, azWebsite, 0, &zPath);
  if( kustomer_js_truthy(pWebsite) ){
    plan_add(pPlan, "urls", KID_URL, zPath, pWebsite);
  }
  pAddr = first_acceptable_at(&ev, azAddress, 0, &zPath);
  if( kustomer_js_truthy(pAddr) ){
    int nPart = pPlan->bSegment ? 5 : 4, bAny = cJSON_IsString(pAddr);
    for(i=0; i<nPart && !bAny && cJSON_IsObject(pAddr); i++){
      bAny = kustomer_js_truthy(kustomer_json_member(pAddr, azAddressPart[i]));
    }
    if( bAny ){
      plan_add(pPlan, "locations",
               (pPlan->bSegment && !cJSON_IsString(pAddr)) ? KID_LOCATION
                                                          : KID_ADDRESS,
               zPath, pAddr);
    }
  }

  if( pPlan->bNormalize && aAt[IDMAP_GENDER]>=0 ){
    KIdField *pF = &pPlan->aField[aAt[IDMAP_GENDER]];
    const cJSON *pG = pF->pVal;
    if( !(cJSON_IsString(pG) && (strcmp(pG->valuestring, "m")==0
                                 || strcmp(pG->valuestring, "f")==0)) ){
      pF->zAs = gender_word(pG);
      if( pF->zAs==0 ) pF->eForm = KID_DROPPED;
    }
  }
  return SQLITE_OK;
}

/* Append the JavaScript string conversion of a value, JSON-escaped, with
** no quotes. */
static int js_string_body(sqlite3_str *p, const cJSON *pVal){
  char aBuf[KUSTOMER_NUMBUF];
  sqlite3_str *pTmp;
  if( cJSON_IsString(pVal) ){
    kustomer_json_string_body(p, pVal->valuestring,
                              strlen(pVal->valuestring));
    return SQLITE_OK;
  }
  if( cJSON_IsNumber(pVal) ){
    sqlite3_str_append(p, aBuf, kustomer_fmt_number(pVal->valuedouble, aBuf));
    return SQLITE_OK;
  }
  pTmp = sqlite3_str_new(0);
  kustomer_js_string(pTmp, pVal);
  if( sqlite3_str_errcode(pTmp)==SQLITE_OK ){
    kustomer_json_string_body(p, sqlite3_str_value(pTmp),
                              (size_t)sqlite3_str_length(pTmp));
  }
  {
    int rc = sqlite3_str_errcode(pTmp);
    sqlite3_free(sqlite3_str_finish(pTmp));
    return rc;
  }
}

/* The value, or under normalizeTraits a number as its text. */
static void string_value(sqlite3_str *p, const cJSON *pVal, int bNormalize){
  if( bNormalize && cJSON_IsNumber(pVal) ){
    sqlite3_str_appendchar(p, 1, '"');
    js_string_body(p, pVal);
    sqlite3_str_appendchar(p, 1, '"');
  }else{
    kustomer_json_value(p, pVal);
  }
}

/* normalizeTraits: epoch seconds (below 1e11) or milliseconds, as a number
** or a text of digits, to ISO 8601; 0 when pVal is neither. */
static int epoch_iso(const cJSON *pVal, char *zOut){
  double r;
  if( cJSON_IsNumber(pVal) ){
    r = pVal->valuedouble;
  }else if( cJSON_IsString(pVal) ){
    const char *z = pVal->valuestring;
    int i = z[0]=='-';
    if( z[i]==0 ) return 0;
    for(; z[i]; i++){
      if( z[i]<'0' || z[i]>'9' || i>15 ) return 0;
    }
    r = strtod(z, 0);
  }else{
    return 0;
  }
  if( fabs(r)<1e11 ) r *= 1000.0;
  /* years 1 to 9999 */
  if( !(r>=-62135596800000.0 && r<=253402300799999.0) ) return 0;
  kustomer_iso_format((sqlite3_int64)floor(r+0.5), zOut);
  return 1;
}

/* An array whose items' zItem member numbers become their text.  Keys keep
** kustomer_json_value()'s order: a duplicate's first place, its last
** value. */
static void items_value(sqlite3_str *p, const cJSON *pVal, const char *zItem){
  const cJSON *pI, *pM, *pK;
  sqlite3_str_appendchar(p, 1, '[');
  for(pI=pVal->child; pI; pI=pI->next){
    if( pI!=pVal->child ) sqlite3_str_appendchar(p, 1, ',');
    if( !cJSON_IsObject(pI) ){
      kustomer_json_value(p, pI);
      continue;
    }
    sqlite3_str_appendchar(p, 1, '{');
    for(pM=pI->child; pM; pM=pM->next){
      for(pK=pI->child; pK!=pM && strcmp(pK->string, pM->string); pK=pK->next){}
      if( pK!=pM ) continue;
      kustomer_json_key(p, pM!=pI->child, pM->string, strlen(pM->string));
      string_value(p, kustomer_json_member(pI, pM->string),
                   strcmp(pM->string, zItem)==0);
    }
    sqlite3_str_appendchar(p, 1, '}');
  }
  sqlite3_str_appendchar(p, 1, ']');
}

/* A copied value, repaired under normalizeTraits as its key's schema
** asks. */
static void copy_value(sqlite3_str *p, const KIdPlan *pPlan,
                       const KIdField *pF){
  const struct IdentifyMap *pM = 0;
  const cJSON *pVal = pF->pVal;
  char zIso[KUSTOMER_ISO_LEN];
  int i;
  if( pF->zAs ){
    kustomer_json_string(p, pF->zAs, strlen(pF->zAs));
    return;
  }
  if( pPlan->bNormalize ){
    for(i=0; i<N_IDENTIFY_MAP && pM==0; i++){
      if( strcmp(aIdentifyMap[i].zKey, pF->zKey)==0 ) pM = &aIdentifyMap[i];
    }
  }
  switch( pM ? pM->eClass : KC_OTHER ){
    case KC_STRING:
      string_value(p, pVal, 1);
      return;
    case KC_DATE:
      if( epoch_iso(pVal, zIso) ){
        kustomer_json_string(p, zIso, strlen(zIso));
        return;
      }
      break;
    case KC_TAGS:
      if( cJSON_IsString(pVal) ){
        /* One tag: a comma may be part of a tag's name. */
        sqlite3_str_appendchar(p, 1, '[');
        kustomer_json_value(p, pVal);
        sqlite3_str_appendchar(p, 1, ']');
        return;
      }
      break;
    case KC_ITEMS:
      if( cJSON_IsArray(pVal) ){
        items_value(p, pVal, pM->zItem);
        return;
      }
      break;
  }
  kustomer_json_value(p, pVal);
}

/* The address text of locations (4.3 step 5): the string, or street, city,
** state and postalCode joined by single spaces, a falsy part empty. */
static int address_value(sqlite3_str *p, const cJSON *pAddr){
  int i, rc = SQLITE_OK;
  sqlite3_str_appendchar(p, 1, '"');
  if( cJSON_IsString(pAddr) ){
    rc = js_string_body(p, pAddr);
  }else{
    for(i=0; i<4 && rc==SQLITE_OK; i++){
      const cJSON *pPart = kustomer_json_member(pAddr, azAddressPart[i]);
      if( i>0 ) sqlite3_str_appendchar(p, 1, ' ');
      if( kustomer_js_truthy(pPart) ) rc = js_string_body(p, pPart);
    }
  }
  sqlite3_str_appendchar(p, 1, '"');
  return rc;
}

static int ascii_alpha(char c){
  return (c>='a' && c<='z') || (c>='A' && c<='Z');
}

/* Segment's address object as one Kustomer location: each truthy part as
** text; a two-letter country is a code. */
static int location_value(sqlite3_str *p, const cJSON *pAddr){
  int i, rc = SQLITE_OK;
  sqlite3_str_appendall(p, "{\"type\":\"home\"");
  for(i=0; i<5 && rc==SQLITE_OK; i++){
    const cJSON *pPart = kustomer_json_member(pAddr, azAddressPart[i]);
    const char *zKey = azLocationKey[i];
    if( !kustomer_js_truthy(pPart) ) continue;
    if( i==4 && cJSON_IsString(pPart) && strlen(pPart->valuestring)==2
     && ascii_alpha(pPart->valuestring[0])
     && ascii_alpha(pPart->valuestring[1]) ){
      zKey = "countryCode";
    }
    kustomer_json_key(p, 1, zKey, strlen(zKey));
    sqlite3_str_appendchar(p, 1, '"');
    rc = js_string_body(p, pPart);
    sqlite3_str_appendchar(p, 1, '"');
  }
  sqlite3_str_appendchar(p, 1, '}');
  return rc;
}

int kustomer_identify_value(sqlite3_str *p, const KIdPlan *pPlan,
                            const KIdField *pF){
  int rc = SQLITE_OK;
  switch( pF->eForm ){
    case KID_COPY:
      copy_value(p, pPlan, pF);
      break;
    case KID_NAME:
      sqlite3_str_appendchar(p, 1, '"');
      rc = js_string_body(p, pF->pVal);
      if( pF->pVal2 && rc==SQLITE_OK ){
        sqlite3_str_appendchar(p, 1, ' ');
        rc = js_string_body(p, pF->pVal2);
      }
      sqlite3_str_appendchar(p, 1, '"');
      break;
    case KID_HOME:
      sqlite3_str_appendall(p, "[{\"type\":\"home\"");
      kustomer_json_key(p, 1, pF->zItem, strlen(pF->zItem));
      string_value(p, pF->pVal, pPlan->bNormalize);
      sqlite3_str_append(p, "}]", 2);
      break;
    case KID_URL:
      sqlite3_str_appendall(p, "[{\"url\":");
      string_value(p, pF->pVal, pPlan->bNormalize);
      sqlite3_str_append(p, "}]", 2);
      break;
    case KID_ADDRESS:
      sqlite3_str_appendall(p, "[{\"type\":\"home\",\"address\":");
      rc = address_value(p, pF->pVal);
      sqlite3_str_append(p, "}]", 2);
      break;
    case KID_LOCATION:
      sqlite3_str_appendchar(p, 1, '[');
      rc = location_value(p, pF->pVal);
      sqlite3_str_appendchar(p, 1, ']');
      break;
  }
  return rc;
}

int kustomer_identify_write(sqlite3_str *p, const cJSON *pEvent,
                            const KSettings *pSet, KError *pErr){
  KIdPlan plan;
  int i, bFirst = 1, rc;
  rc = kustomer_identify_plan(pEvent, pSet, &plan, pErr);
  if( rc ) return rc;
  sqlite3_str_appendchar(p, 1, '{');
  for(i=0; i<plan.nField && rc==SQLITE_OK; i++){
    const KIdField *pF = &plan.aField[i];
    if( pF->eForm==KID_DROPPED ) continue;
    kustomer_json_key(p, !bFirst, pF->zKey, strlen(pF->zKey));
    bFirst = 0;
    rc = kustomer_identify_value(p, &plan, pF);
  }
  sqlite3_str_appendchar(p, 1, '}');
  return rc;
}

/* ---- What identify leaves out (for kustomer_check) --------------------- */

/*
** The traits each mapping reads: for every path of the mapping, or of the
** generic lists it reads, that starts at (context.)traits., each of its
** dot-prefixes after that ("company", "company.name"), sorted and without
** repeats, pointing into the paths.  Built once (the lists are constant),
** as kustomer_check asks for every trait of every identify event.
*/
#define TRAIT_MAX 256
typedef struct TraitName TraitName;
struct TraitName {
  const char *z;
  size_t n;
};
static struct TraitSet {
  int nName;
  TraitName aName[TRAIT_MAX];
} aTraitSet[2];             /* [bSegment] */
static once_flag traitSetOnce = ONCE_FLAG_INIT;

static int trait_name_cmp(const void *pA, const void *pB){
  const TraitName *a = pA, *b = pB;
  int c = memcmp(a->z, b->z, a->n<b->n ? a->n : b->n);
  return c ? c : (a->n<b->n ? -1 : a->n>b->n);
}

static void trait_set_add(struct TraitSet *pSet, const char *zPath){
  const char *z = zPath;
  size_t i;
  if( strncmp(z, "context.", 8)==0 ) z += 8;
  if( strncmp(z, "traits.", 7)!=0 ) return;
  z += 7;
  for(i=1; ; i++){
    if( z[i]=='.' || z[i]==0 ){
      TraitName t;
      int j;
      t.z = z;
      t.n = i;
      for(j=0; j<pSet->nName && trait_name_cmp(&pSet->aName[j], &t); j++){}
      /* (the lists name about 60 traits: TRAIT_MAX is never reached) */
      if( j==pSet->nName && j<TRAIT_MAX ) pSet->aName[pSet->nName++] = t;
      if( z[i]==0 ) break;
    }
  }
}

static void trait_sets_build(void){
  static const char *const *const aazGeneric[] = {
    azUserId, azEmail, azPhone, azFirstName, azLastName, azWebsite, azAddress
  };
  int k, i, j;
  for(k=0; k<2; k++){
    struct TraitSet *pSet = &aTraitSet[k];
    for(i=0; i<N_IDENTIFY_MAP; i++){
      const struct IdentifyMap *pM = &aIdentifyMap[i];
      const char *const *az = (k && pM->azSegment[0]) ? pM->azSegment
                                                      : pM->azPath;
      for(j=0; az[j]; j++) trait_set_add(pSet, az[j]);
    }
    for(i=0; i<(int)(sizeof(aazGeneric)/sizeof(aazGeneric[0])); i++){
      for(j=0; aazGeneric[i][j]; j++) trait_set_add(pSet, aazGeneric[i][j]);
    }
    qsort(pSet->aName, (size_t)pSet->nName, sizeof(TraitName),
          trait_name_cmp);
  }
}

/* Whether any path of the mapping in use, or of the generic lists it
** reads, starts at the trait zKey. */
static int trait_is_read(const KIdPlan *pPlan, const char *zKey){
  const struct TraitSet *pSet;
  TraitName key;
  call_once(&traitSetOnce, trait_sets_build);
  pSet = &aTraitSet[pPlan->bSegment!=0];
  key.z = zKey;
  key.n = strlen(zKey);
  return bsearch(&key, pSet->aName, (size_t)pSet->nName, sizeof(TraitName),
                 trait_name_cmp)!=0;
}

/* Whether the plan sends the trait pVal (or, for a company, its name). */
static const KIdField *trait_sent(const KIdPlan *pPlan, const cJSON *pVal){
  const cJSON *pName = cJSON_IsObject(pVal) ?
                       kustomer_json_member(pVal, "name") : 0;
  int i;
  for(i=0; i<pPlan->nField; i++){
    const KIdField *pF = &pPlan->aField[i];
    if( pF->pVal==pVal || pF->pVal2==pVal || (pName && pF->pVal==pName) ){
      return pF;
    }
  }
  return 0;
}

/* The JSON path of a member, keys quoted as json_each() quotes them. */
static char *trait_path(const char *zParent, const char *zKey){
  const char *z = zKey;
  int bPlain = (*z!=0 && !(*z>='0' && *z<='9'));
  for(; *z && bPlain; z++){
    bPlain = ascii_alpha(*z) || (*z>='0' && *z<='9') || *z=='_';
  }
  if( bPlain ) return sqlite3_mprintf("%s.%s", zParent, zKey);
  {
    sqlite3_str *p = sqlite3_str_new(0);
    sqlite3_str_appendf(p, "%s.", zParent);
    kustomer_json_string(p, zKey, strlen(zKey));
    return sqlite3_str_finish(p);
  }
}

/* The members of an address or company object that are not sent. */
static void parts_dropped(const cJSON *pObj, const char *zPath,
                          const char *zTrait,
                          const char *const *azKept, int nKept,
                          const char *zWhy,
                          void (*xDrop)(void*, char*, char*), void *pArg){
  const cJSON *pC;
  int i;
  for(pC=pObj->child; pC; pC=pC->next){
    if( !kustomer_acceptable(pC) ) continue;
    for(i=0; i<nKept && strcmp(pC->string, azKept[i]); i++){}
    if( i<nKept ) continue;
    xDrop(pArg, trait_path(zPath, pC->string),
          sqlite3_mprintf("%s.%s is not sent: %s", zTrait, pC->string,
                          zWhy));
  }
}

int kustomer_identify_dropped(const cJSON *pEvent, const KIdPlan *pPlan,
                              void (*xDrop)(void*, char*, char*), void *pArg){
  static const char *const azName[] = { "name" };
  EventPaths ev;
  int i, k;
  event_paths_init(&ev, pEvent);
  for(i=0; i<pPlan->nField; i++){
    const KIdField *pF = &pPlan->aField[i];
    if( pF->eForm!=KID_DROPPED ) continue;
    {
      sqlite3_str *pMsg = sqlite3_str_new(0);
      sqlite3_str_appendall(pMsg, "gender ");
      kustomer_json_value(pMsg, pF->pVal);
      sqlite3_str_appendall(pMsg, " is not sent: Kustomer takes only \"m\" "
                            "or \"f\" and normalizeTraits reads no other "
                            "word as one of them");
      xDrop(pArg, sqlite3_mprintf("$.%s", pF->zPath), sqlite3_str_finish(pMsg));
    }
  }
  for(k=0; k<2; k++){
    const cJSON *pTraits = k==0 ? ev.pTraits : ev.pCtxTraits;
    const char *zBase = k==0 ? "$.traits" : "$.context.traits";
    const cJSON *pC;
    if( !ev.bPlain || !cJSON_IsObject(pTraits) ) continue;
    for(pC=pTraits->child; pC; pC=pC->next){
      const KIdField *pF;
      char *zPath;
      if( cJSON_IsNull(pC) || kustomer_json_member(pTraits, pC->string)!=pC ){
        continue;     /* nothing to lose, or a duplicate key's loser */
      }
      if( !trait_is_read(pPlan, pC->string) ){
        xDrop(pArg, trait_path(zBase, pC->string),
              sqlite3_mprintf("%s is not sent: no field of Kustomer's "
                              "customer is mapped from it (custom attributes "
                              "go in customObject)", pC->string));
        continue;
      }
      pF = trait_sent(pPlan, pC);
      zPath = trait_path(zBase, pC->string);
      if( zPath==0 ) return SQLITE_NOMEM;
      if( pF && pF->eForm==KID_ADDRESS && cJSON_IsObject(pC) ){
        parts_dropped(pC, zPath, pC->string, azAddressPart, 4, "the address is sent as "
                      "one text of street, city, state and postalCode",
                      xDrop, pArg);
      }else if( pF && pF->eForm==KID_LOCATION ){
        parts_dropped(pC, zPath, pC->string, azAddressPart, 5, "Kustomer's location "
                      "takes street, city, state, postalCode and country",
                      xDrop, pArg);
      }else if( pF && pF->pVal!=pC && strcmp(pF->zKey, "company")==0 ){
        parts_dropped(pC, zPath, pC->string, azName, 1, "only the company's name is",
                      xDrop, pArg);
      }else if( pF==0 && kustomer_js_truthy(pC)
             && !(k==1 && kustomer_acceptable(
                      kustomer_json_member(ev.pTraits, pC->string))) ){
        /* Read, yet sent nowhere, and not because the same trait at the
        ** top level wins. */
        const char *zWhy = "it is read only for the customer lookups";
        const char *zKey = pC->string;
        if( sqlite3_stricmp(zKey, "firstName")==0
         || strcmp(zKey, "first_name")==0 || sqlite3_stricmp(zKey, "lastName")==0
         || strcmp(zKey, "last_name")==0 ){
          zWhy = "name is made of firstName and lastName only when both are "
                 "given (traitMapping \"segment\" takes either alone)";
        }else if( strcmp(zKey, "email")==0 ){
          zWhy = "emails is given, and email is added only when it is not";
        }else if( strcmp(zKey, "phone")==0 ){
          zWhy = "phones is given, and phone is added only when it is not";
        }else if( strcmp(zKey, "address")==0 ){
          zWhy = pPlan->bSegment ?
                 "none of street, city, state, postalCode and country is set" :
                 "none of street, city, state and postalCode is set";
        }else if( strcmp(zKey, "company")==0 ){
          zWhy = "Segment's company is sent by its name, and this one has "
                 "none";
        }else if( strcmp(zKey, "name")==0 ){
          zWhy = "a name made of firstName and lastName is sent instead";
        }else if( strcmp(zKey, "userId")==0 || strcmp(zKey, "id")==0 ){
          zWhy = 0;   /* an identity: read for the lookups */
        }else{
          zWhy = "another trait for the same field wins";
        }
        if( zWhy ){
          xDrop(pArg, zPath, sqlite3_mprintf("%s is not sent: %s", zKey,
                                             zWhy));
          zPath = 0;
        }
      }
      sqlite3_free(zPath);
    }
  }
  return SQLITE_OK;
}

/* ---- Kustomer's dates (kustomer-api.md 3) ------------------------------ */

static int num2(const char *z){ return (z[0]-'0')*10 + (z[1]-'0'); }

int kustomer_is_calendar_date(const char *z, size_t n){
  static const int aDays[] = { 31,29,31,30,31,30,31,31,30,31,30,31 };
  int y, mo = 1, d = 1;
  size_t i;
  if( !kustomer_is_iso_date(z, n) ) return 0;
  y = num2(z)*100 + num2(z+2);
  if( y<1 ) return 0;
  if( n>=7 ){
    mo = num2(z+5);
    if( mo<1 || mo>12 ) return 0;
  }
  if( n>=10 ){
    d = num2(z+8);
    if( d<1 || d>aDays[mo-1] ) return 0;
    if( mo==2 && d==29 && !((y%4==0 && y%100!=0) || y%400==0) ) return 0;
  }
  if( n>10 ){
    if( num2(z+11)>23 || num2(z+14)>59 ) return 0;
    i = 16;
    if( i<n && z[i]==':' ){
      if( num2(z+17)>59 ) return 0;
      i += 3;
    }
    if( i<n && z[i]=='.' ){
      for(i++; i<n && z[i]>='0' && z[i]<='9'; i++){}
    }
    if( i<n && (z[i]=='+' || z[i]=='-') ){
      if( num2(z+i+1)>23 || num2(z+i+4)>59 ) return 0;
    }
  }
  return 1;
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

int kustomer_hex_digit(char c){
  if( c>='0' && c<='9' ) return c - '0';
  if( c>='a' && c<='f' ) return c - 'a' + 10;
  if( c>='A' && c<='F' ) return c - 'A' + 10;
  return -1;
}

char *kustomer_path_segment_decode(const char *z, size_t n){
  char *zOut = sqlite3_malloc64(n+1);
  size_t i, j = 0;
  if( zOut==0 ) return 0;
  for(i=0; i<n; i++){
    int h1, h2;
    if( z[i]=='%' && i+2<n && (h1 = kustomer_hex_digit(z[i+1]))>=0
     && (h2 = kustomer_hex_digit(z[i+2]))>=0 ){
      zOut[j++] = (char)(h1*16 + h2);
      i += 2;
    }else{
      zOut[j++] = z[i];
    }
  }
  zOut[j] = 0;
  if( j==0 || memchr(zOut, 0, j) ){
    sqlite3_free(zOut);
    return 0;
  }
  return zOut;
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
