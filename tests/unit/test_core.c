/*
** Unit tests of the core and of kapi.c, built against libsqlite3 with
** SQLITE_CORE (as sqlite-vec's test-unit.c is).  The source files are
** included, so that their static tables can be checked:
**
**   - every path transform.c reads is kept by the lean parses' keep-lists
**     (a path added without its member would read nothing);
**   - json.c's facts about raw members (keys, kinds, one-scalar arrays);
**   - kapi.c: backoff bounds, rate-limit headers (digits only), the
**     message of an error body (cut on a character boundary), redaction,
**     the classes of responses, the limiter's window.
**
**   make unit && build/test_core
**
** Prints "ok <name>" / "FAIL <name>: <detail>"; exits non-zero on failure.
*/
#include "../../src/jsnum.c"
#include "../../src/json.c"
#include "../../src/settings.c"
#include "../../src/transform.c"
#include "../../src/kapi.c"

#include <stdio.h>

static int nFail = 0;

static void check(const char *zName, int bOk, const char *zDetail){
  if( bOk ){
    printf("ok %s\n", zName);
  }else{
    printf("FAIL %s: %s\n", zName, zDetail ? zDetail : "");
    nFail++;
  }
}

/* ---- Keep-lists ---------------------------------------------------------- */

static const KJsonKeep *keep_find(const KJsonKeep *a, const char *z,
                                  size_t n){
  for(; a && a->zKey; a++){
    if( strlen(a->zKey)==n && memcmp(a->zKey, z, n)==0 ) return a;
  }
  return 0;
}

/* Whether a dotted path is kept by aKeep, segment by segment as far as the
** keep-lists go (a member kept whole keeps all below it). */
static int keep_has(const KJsonKeep *aKeep, const char *zPath){
  const KJsonKeep *a = aKeep;
  while( a ){
    const char *zDot = strchr(zPath, '.');
    size_t n = zDot ? (size_t)(zDot-zPath) : strlen(zPath);
    const KJsonKeep *pK = keep_find(a, zPath, n);
    if( pK==0 ) return 0;
    if( pK->aSub==0 || zDot==0 ) return 1;
    a = pK->aSub;
    zPath = zDot+1;
  }
  return 1;
}

static void keep_check_list(const char *zName, const KJsonKeep *aKeep,
                            const char *const *azPath){
  char zMsg[200];
  int bOk = 1;
  zMsg[0] = 0;
  for(; *azPath; azPath++){
    if( !keep_has(aKeep, *azPath) ){
      snprintf(zMsg, sizeof(zMsg), "%s is not kept", *azPath);
      bOk = 0;
      break;
    }
  }
  check(zName, bOk, zMsg);
}

static void test_keep_lists(void){
  static const char *const azOther[] = {
    "context.externalId", "properties", "traits", "context.traits",
    "context.locale", 0
  };
  static const char *const azTrackOther[] = {
    /* the name of a track event, and the type, read as members */
    "event", "type", 0
  };
  int i, bOk = 1;
  char zMsg[200];
  /* The full event parse serves everything. */
  keep_check_list("keep: user ids (event)", aEventKeep, azUserId);
  keep_check_list("keep: e-mail (event)", aEventKeep, azEmail);
  keep_check_list("keep: phone (event)", aEventKeep, azPhone);
  keep_check_list("keep: first names (event)", aEventKeep, azFirstName);
  keep_check_list("keep: last names (event)", aEventKeep, azLastName);
  keep_check_list("keep: website (event)", aEventKeep, azWebsite);
  keep_check_list("keep: address (event)", aEventKeep, azAddress);
  keep_check_list("keep: page names (event)", aEventKeep, azPageName);
  keep_check_list("keep: session ids (event)", aEventKeep, azSessionId);
  keep_check_list("keep: tracking ids (event)", aEventKeep, azTrackingId);
  keep_check_list("keep: lookups (event)", aEventKeep, azUserIdOnly);
  keep_check_list("keep: others (event)", aEventKeep, azOther);
  zMsg[0] = 0;
  for(i=0; i<N_IDENTIFY_MAP && bOk; i++){
    int k;
    for(k=0; k<5 && aIdentifyMap[i].azPath[k]; k++){
      if( !keep_has(aEventKeep, aIdentifyMap[i].azPath[k]) ){
        snprintf(zMsg, sizeof(zMsg), "%s (for %s) is not kept",
                 aIdentifyMap[i].azPath[k], aIdentifyMap[i].zKey);
        bOk = 0;
        break;
      }
    }
  }
  check("keep: identify's map (event)", bOk, zMsg);
  /* The lean parse of tracking events serves what a tracking body reads;
  ** properties.* only for the lookups (meta comes from the text). */
  keep_check_list("keep: user ids (track)", aTrackKeep, azUserId);
  keep_check_list("keep: e-mail (track)", aTrackKeep, azEmail);
  keep_check_list("keep: page names (track)", aTrackKeep, azPageName);
  keep_check_list("keep: session ids (track)", aTrackKeep, azSessionId);
  keep_check_list("keep: tracking ids (track)", aTrackKeep, azTrackingId);
  keep_check_list("keep: others (track)", aTrackKeep, azTrackOther);
  keep_check_list("keep: user ids (track, properties whole)",
                  aTrackKeepProps, azUserId);
  keep_check_list("keep: e-mail (track, properties whole)",
                  aTrackKeepProps, azEmail);
  /* the excluded keys are read by the session and tracking paths */
  for(i=0; azExcluded[i]; i++){
    char zPath[64];
    snprintf(zPath, sizeof(zPath), "properties.%s", azExcluded[i]);
    if( !keep_has(aTrackKeep, zPath) ) break;
  }
  check("keep: excluded keys are kept for sessionId/trackingId",
        azExcluded[i]==0, azExcluded[i]);
}

/* ---- json.c's raw members ------------------------------------------------ */

/* The raw record of an object's text. */
static int raw_of(const char *z, KJsonRaw *pRaw){
  memset(pRaw, 0, sizeof(*pRaw));
  pRaw->z = z;
  pRaw->n = (int)strlen(z);
  pRaw->eState = KRAW_TEXT;
  return kustomer_json_raw_ok(pRaw);
}

static void test_raw(void){
  static const struct { const char *zArr; int bOne; int eKind; } aArr[] = {
    { "[\"2020\"]", 1, KRAWV_STRING },
    { "[[[5]]]", 1, KRAWV_NUMBER },
    { "[ [ \"a\" ] ]", 1, KRAWV_STRING },
    { "[1,2]", 0, 0 },
    { "[[1],[2]]", 0, 0 },
    { "[]", 0, 0 },
    { "[[]]", 0, 0 },
    { "[true]", 0, 0 },
    { "[{\"a\":1}]", 0, 0 },
    { "[null]", 0, 0 },
    { "[-5]", 1, KRAWV_NUMBER },
  };
  KJsonRaw raw;
  const char *z;
  int n, i, bOk, bHigh;
  char zBuf[256];
  sqlite3_str *pStr;

  bOk = raw_of("{\"a\":1,\"b\\\"c\":\"x\",\"d\":true,\"e\":null,"
               "\"f\":[1],\"g\":{},\"h\":false}", &raw);
  check("raw: record", bOk && raw.nMember==7, 0);
  kustomer_json_raw_key(&raw, 0, &z, &n);
  check("raw: a plain key", kustomer_json_raw_key_plain(&raw, 0, &bHigh)
        && !bHigh && n==1 && z[0]=='a', 0);
  kustomer_json_raw_key(&raw, 1, &z, &n);
  check("raw: a key with an escape",
        !kustomer_json_raw_key_plain(&raw, 1, &bHigh) && n==4, 0);
  check("raw: kinds",
        kustomer_json_raw_kind(&raw, 0)==KRAWV_NUMBER
        && kustomer_json_raw_kind(&raw, 1)==KRAWV_STRING
        && kustomer_json_raw_kind(&raw, 2)==KRAWV_TRUE
        && kustomer_json_raw_kind(&raw, 3)==KRAWV_NULL
        && kustomer_json_raw_kind(&raw, 4)==KRAWV_ARRAY
        && kustomer_json_raw_kind(&raw, 5)==KRAWV_OBJECT
        && kustomer_json_raw_kind(&raw, 6)==KRAWV_FALSE, 0);
  kustomer_json_raw_string(&raw, 1, &z, &n);
  check("raw: a string's text", n==1 && z[0]=='x', 0);
  bOk = raw_of("{\"k\":\"a\",\"k\\\"q\":1,\"k \":2,\"\xc3\xa9\":3}", &raw);
  check("raw: keys beyond ASCII, with an escape, with a space", bOk
        && kustomer_json_raw_key_plain(&raw, 0, &bHigh) && !bHigh
        && !kustomer_json_raw_key_plain(&raw, 1, &bHigh)
        && !kustomer_json_raw_key_plain(&raw, 2, &bHigh)
        && kustomer_json_raw_key_plain(&raw, 3, &bHigh) && bHigh, 0);
  pStr = sqlite3_str_new(0);
  kustomer_json_string_of_json(pStr, "{\"a\":\"\\n\"}", 10);
  z = sqlite3_str_value(pStr);
  check("raw: JSON text as a string",
        z && strcmp(z, "\"{\\\"a\\\":\\\"\\\\n\\\"}\"")==0, z);
  sqlite3_free(sqlite3_str_finish(pStr));
  for(i=0; i<(int)(sizeof(aArr)/sizeof(aArr[0])); i++){
    int eKind = -1, bOne;
    char zName[80];
    snprintf(zBuf, sizeof(zBuf), "{\"k\":%s}", aArr[i].zArr);
    raw_of(zBuf, &raw);
    bOne = kustomer_json_raw_array_scalar(&raw, 0, &eKind, &z);
    snprintf(zName, sizeof(zName), "raw: one-scalar array %s",
             aArr[i].zArr);
    check(zName, bOne==aArr[i].bOne && (!bOne || eKind==aArr[i].eKind), 0);
  }
}

/* ---- kapi.c -------------------------------------------------------------- */

static void resp_of(KHttpResp *r, long status, const char *zHeaders,
                    const char *zBody){
  memset(r, 0, sizeof(*r));
  r->status = status;
  r->zHeaders = (char*)zHeaders;
  r->zBody = (char*)zBody;
  r->nBody = zBody ? (int)strlen(zBody) : 0;
}

static void test_kapi(void){
  KHttpResp r;
  KApiRate rate;
  KLimiter lim;
  char *z;
  double w, lo = 1e9, hi = 0;
  int i, bOk;

  for(i=0; i<2000; i++){
    w = kustomer_api_backoff(3, 0.25, 8.0);
    if( w<lo ) lo = w;
    if( w>hi ) hi = w;
  }
  check("kapi: backoff is base*2^(n-1) +-25%", lo>=0.75 && hi<=1.25
        && hi-lo>0.3, 0);
  w = kustomer_api_backoff(30, 1.0, 60.0);
  check("kapi: backoff is capped", w>=45 && w<=75, 0);

  resp_of(&r, 200, "{\"x-ratelimit-limit\":\"1000\","
          "\"x-ratelimit-remaining\":\"0\",\"x-ratelimit-reset\":\"12\","
          "\"retry-after\":\"3\"}", "");
  kustomer_api_rate(&r, &rate);
  check("kapi: rate headers", rate.limit==1000 && rate.remaining==0
        && rate.reset==12 && rate.retryAfter==3, 0);
  check("kapi: Retry-After comes first", kustomer_api_rate_wait(&rate)==3, 0);
  resp_of(&r, 200, "{\"x-ratelimit-remaining\":\"1e3\","
          "\"x-ratelimit-reset\":\"-1\",\"x-ratelimit-limit\":\" 7 \"}", "");
  kustomer_api_rate(&r, &rate);
  check("kapi: rate headers are digits only", rate.remaining==-1
        && rate.reset==-1 && rate.limit==7, 0);
  resp_of(&r, 200, "{\"x-ratelimit-reset\":\"4102444800\"}", "");
  kustomer_api_rate(&r, &rate);
  check("kapi: an epoch reset is seconds from now",
        rate.reset>1e8 && rate.reset<4102444800.0-kustomer_wall()+1, 0);

  resp_of(&r, 400, "{}", "{\"errors\":[{\"title\":\"T\",\"detail\":\"D\"}]}");
  z = kustomer_api_message(&r, 200);
  check("kapi: message: errors[0].detail first", z && strcmp(z, "D")==0, z);
  sqlite3_free(z);
  resp_of(&r, 400, "{}", "{\"message\":\"M\"}");
  z = kustomer_api_message(&r, 200);
  check("kapi: message: a top-level message", z && strcmp(z, "M")==0, z);
  sqlite3_free(z);
  /* 'aé' repeated: a cut at 4 bytes would split the second é */
  resp_of(&r, 500, "{}", "a\xc3\xa9" "a\xc3\xa9" "a\xc3\xa9\n");
  z = kustomer_api_message(&r, 5);
  check("kapi: message: cut on a character boundary",
        z && strcmp(z, "a\xc3\xa9" "a...")==0, z);
  sqlite3_free(z);
  resp_of(&r, 500, "{}", "line one\nline two");
  z = kustomer_api_message(&r, 200);
  check("kapi: message: one line", z && strcmp(z, "line one line two")==0, z);
  sqlite3_free(z);

  z = kustomer_api_redact(sqlite3_mprintf("key k3y-5ecret and k3y-5ecret"),
                          "Bearer k3y-5ecret");
  check("kapi: redact every occurrence",
        z && strcmp(z, "key <redacted> and <redacted>")==0, z);
  sqlite3_free(z);
  z = kustomer_api_redact(sqlite3_mprintf("a b c"), "Bearer b");
  check("kapi: a key of a few bytes is not redacted",
        z && strcmp(z, "a b c")==0, z);
  sqlite3_free(z);

  bOk = 1;
  resp_of(&r, 204, 0, 0); bOk &= kustomer_api_class(&r)==KAPI_OK;
  resp_of(&r, 429, 0, 0); bOk &= kustomer_api_class(&r)==KAPI_WAIT;
  resp_of(&r, 401, 0, 0); bOk &= kustomer_api_class(&r)==KAPI_AUTH;
  resp_of(&r, 403, 0, 0); bOk &= kustomer_api_class(&r)==KAPI_AUTH;
  resp_of(&r, 503, 0, 0); bOk &= kustomer_api_class(&r)==KAPI_RETRY;
  resp_of(&r, 408, 0, 0); bOk &= kustomer_api_class(&r)==KAPI_RETRY;
  resp_of(&r, 404, 0, 0); bOk &= kustomer_api_class(&r)==KAPI_FATAL;
  resp_of(&r, 0, 0, 0); r.eNet = KNET_RESET;
  bOk &= kustomer_api_class(&r)==KAPI_RETRY;
  r.eNet = KNET_REFUSED; bOk &= kustomer_api_class(&r)==KAPI_DOWN;
  r.eNet = KNET_REFUSED_URL; bOk &= kustomer_api_class(&r)==KAPI_FATAL;
  check("kapi: classes", bOk, 0);

  {
    sqlite3 *db = 0;
    KLedger *pLedger = 0;
    sqlite3_open(":memory:", &db);
    kustomer_ledger_create(db);
    kustomer_ledger_open(db, &pLedger);
    kustomer_limiter_init(&lim, 10, 0.5, 60);
    lim.pLedger = pLedger;
    kustomer_limiter_searches(&lim, 4);
    for(i=0; i<5; i++) kustomer_limiter_add(&lim, i<2);
    check("kapi: limiter: floor(limit*budget) per window, in the ledger",
          lim.nAllowed==5 && kustomer_limiter_available(&lim, 0, 0)==0
          && kustomer_limiter_wait(&lim, 0)>59, 0);
    sqlite3_exec(db, "UPDATE kustomer_requests SET t=t-61", 0, 0, 0);
    kustomer_ledger_add(pLedger, kustomer_wall(), 1);
    check("kapi: limiter: starts leave the window",
          kustomer_limiter_available(&lim, 1, 0)==3
          && kustomer_limiter_available(&lim, 0, 1)==1, 0);
    kustomer_ledger_add(pLedger, kustomer_wall(), 1);
    check("kapi: limiter: searches are counted apart",
          kustomer_limiter_available(&lim, 0, 1)==0
          && kustomer_limiter_available(&lim, 0, 0)==3
          && kustomer_limiter_wait(&lim, 1)>59
          && kustomer_limiter_wait(&lim, 0)==0, 0);
    resp_of(&r, 429, "{\"retry-after\":\"7\"}", "");
    w = kustomer_limiter_observe(&lim, &r);
    check("kapi: limiter: a 429 pauses for Retry-After",
          w==7 && kustomer_limiter_wait(&lim, 0)>6.5
          && kustomer_limiter_available(&lim, 0, 0)==0, 0);
    kustomer_limiter_init(&lim, 10, 0.5, 60);
    lim.pLedger = pLedger;
    check("kapi: limiter: the pause is kept for every user of the file",
          kustomer_limiter_wait(&lim, 0)>6.5, 0);
    sqlite3_exec(db, "DELETE FROM kustomer_ratelimit", 0, 0, 0);
    resp_of(&r, 200, "{\"x-ratelimit-limit\":\"100\","
            "\"x-ratelimit-remaining\":\"50\",\"x-ratelimit-reset\":\"9\"}",
            "");
    w = kustomer_limiter_observe(&lim, &r);
    check("kapi: limiter: remaining down to the share left to others "
          "pauses until the reset", w==9, 0);
    kustomer_limiter_free(&lim);
    kustomer_ledger_close(pLedger);
    sqlite3_close(db);
  }
}

int main(void){
  test_keep_lists();
  test_raw();
  test_kapi();
  return nFail ? 1 : 0;
}
