/*
** Kustomer's HTTP conventions, in one place, over http.c's transport:
**
**   - the key: settings.apiKey, or the variable settings.apiKeyEnv names,
**     as "Bearer <key>", wiped when freed, and redacted from any error
**     text that a server could have echoed it into;
**   - Kustomer's message from an error body;
**   - what a response means (ok, retry after a backoff, wait for the rate
**     window, the host is down, the key is refused, fatal) and the one
**     backoff policy;
**   - the rate-limit headers (digits only) and the limiter that keeps a
**     caller within its share of the organisation's budget;
**   - the clocks: monotonic for deadlines, the wall for what other
**     processes read (ledgers, x-ratelimit-reset).
**
** kustomer_fetch, kustomer_send/kustomer_process, the outbox's flush and
** the sync all go through these; none of them decides any of this itself.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

/* ---- Clocks ------------------------------------------------------------- */

double kustomer_clock(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec/1e9;
}

double kustomer_wall(void){
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec/1e9;
}

/* ---- The key ------------------------------------------------------------ */

int kustomer_api_auth(const KSettings *pSet, int bRequired, char **pzAuth,
                      char **pzErr){
  *pzAuth = 0;
  *pzErr = 0;
  if( pSet->zKeyEnv && pSet->zAuth==0 ){
    const char *zKey = getenv(pSet->zKeyEnv);
    if( zKey==0 || zKey[0]==0 ){
      *pzErr = sqlite3_mprintf("the environment variable %s named by "
                               "apiKeyEnv is not set", pSet->zKeyEnv);
      return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
    }
    *pzAuth = sqlite3_mprintf("Bearer %s", zKey);
  }else if( !pSet->bHasKey && bRequired ){
    *pzErr = sqlite3_mprintf("settings must give apiKey or apiKeyEnv");
    return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }else{
    *pzAuth = sqlite3_mprintf("%s", pSet->zAuth);
  }
  return *pzAuth ? SQLITE_OK : SQLITE_NOMEM;
}

void kustomer_api_auth_free(char *zAuth){
  if( zAuth ){
    /* The key was in this buffer: do not leave it in freed memory. */
    memset(zAuth, 0, strlen(zAuth));
    sqlite3_free(zAuth);
  }
}

void kustomer_api_request(KHttpReq *pReq, const char *zMethod,
                          const char *zUrl, const char *zAuth,
                          const KSettings *pSet){
  memset(pReq, 0, sizeof(*pReq));
  pReq->zMethod = zMethod;
  pReq->zUrl = zUrl;
  pReq->zAuth = zAuth;
  pReq->timeoutMs = pSet ? pSet->timeoutMs : KUSTOMER_TIMEOUT_MS;
}

char *kustomer_api_redact(char *zMsg, const char *zAuth){
  const char *zKey = zAuth;
  sqlite3_str *p;
  const char *z, *zHit;
  size_t nKey;
  if( zMsg==0 || zKey==0 ) return zMsg;
  if( strncmp(zKey, "Bearer ", 7)==0 ) zKey += 7;
  nKey = strlen(zKey);
  /* A key of a few bytes would match ordinary words. */
  if( nKey<4 || strstr(zMsg, zKey)==0 ) return zMsg;
  p = sqlite3_str_new(0);
  z = zMsg;
  while( (zHit = strstr(z, zKey))!=0 ){
    sqlite3_str_append(p, z, (int)(zHit - z));
    sqlite3_str_appendall(p, "<redacted>");
    z = zHit + nKey;
  }
  sqlite3_str_appendall(p, z);
  sqlite3_free(zMsg);
  return sqlite3_str_finish(p);
}

/* ---- Kustomer's message -------------------------------------------------- */

/* Make z valid UTF-8 in place: a byte that starts no valid sequence
** becomes '?' (a server's bytes go into error messages and rows). */
static void utf8_repair(char *z){
  unsigned char *u = (unsigned char*)z;
  while( *u ){
    unsigned c = *u;
    int k, j;
    if( c<0x80 ){ u++; continue; }
    if( c>=0xC2 && c<0xE0 ) k = 1;
    else if( c>=0xE0 && c<0xF0 ) k = 2;
    else if( c>=0xF0 && c<0xF5 ) k = 3;
    else k = -1;
    for(j=1; k>0 && j<=k; j++){
      if( (u[j] & 0xC0)!=0x80 ) k = -1;
    }
    if( k>0 && ((c==0xE0 && u[1]<0xA0) || (c==0xED && u[1]>=0xA0)
             || (c==0xF0 && u[1]<0x90) || (c==0xF4 && u[1]>=0x90)) ){
      k = -1;               /* overlong, a surrogate, beyond U+10FFFF */
    }
    if( k<0 ){
      *u++ = '?';
    }else{
      u += k+1;
    }
  }
}

char *kustomer_api_message(const KHttpResp *pResp, int nMax){
  char *zErr = 0, *zOut = 0;
  cJSON *pDoc = 0;
  int i, n;
  if( pResp->nBody>0 ){
    pDoc = kustomer_json_parse(pResp->zBody, pResp->nBody, &zErr);
    sqlite3_free(zErr);
  }
  if( pDoc ){
    /* {"errors":[{detail|title|message}]} or JSON:API's error objects,
    ** else a top-level message (kustomer-api.md 7). */
    static const char *const azKey[] = { "detail", "title", "message" };
    const cJSON *pErrs = kustomer_json_member(pDoc, "errors");
    const cJSON *pE = cJSON_IsArray(pErrs) ? pErrs->child : 0;
    const cJSON *pM = 0;
    for(i=0; i<3 && pE && pM==0; i++){
      pM = kustomer_json_member(pE, azKey[i]);
      if( !cJSON_IsString(pM) || pM->valuestring[0]==0 ) pM = 0;
    }
    if( pM==0 ){
      pM = kustomer_json_member(pDoc, "message");
      if( !cJSON_IsString(pM) || pM->valuestring[0]==0 ) pM = 0;
    }
    if( pM ) zOut = sqlite3_mprintf("%s", pM->valuestring);
    cJSON_Delete(pDoc);
    if( zOut ) return zOut;
  }
  /* Not Kustomer's shape: the start of the body, cut on a character
  ** boundary, control characters blanked so the message stays one line,
  ** bytes that are not UTF-8 as '?'. */
  n = pResp->nBody>nMax ? nMax : pResp->nBody;
  while( n>0 && n<pResp->nBody && (pResp->zBody[n] & 0xC0)==0x80 ) n--;
  if( n==0 ) return 0;
  zOut = sqlite3_mprintf("%.*s%s", n, pResp->zBody,
                         n<pResp->nBody ? "..." : "");
  for(i=0; zOut && zOut[i]; i++){
    if( (unsigned char)zOut[i]<0x20 ) zOut[i] = ' ';
  }
  if( zOut ) utf8_repair(zOut);
  return zOut;
}

char *kustomer_api_data_id(const KHttpResp *pResp){
  char *zErr = 0, *zId = 0;
  cJSON *pDoc = kustomer_json_parse(pResp->zBody, pResp->nBody, &zErr);
  const cJSON *pId;
  sqlite3_free(zErr);
  pId = kustomer_json_member(kustomer_json_member(pDoc, "data"), "id");
  if( cJSON_IsString(pId) ) zId = sqlite3_mprintf("%s", pId->valuestring);
  cJSON_Delete(pDoc);
  return zId;
}

/* ---- What a response means ---------------------------------------------- */

int kustomer_api_class(const KHttpResp *pResp){
  if( pResp->bNotSent ) return KAPI_WAIT;
  switch( pResp->eNet ){
    case 0:
      break;
    case KNET_RESET: case KNET_TIMEDOUT: case KNET_PIPE:
      return KAPI_RETRY;
    case KNET_REFUSED_URL:
      return KAPI_FATAL;
    default:
      return KAPI_DOWN;
  }
  if( pResp->status>=200 && pResp->status<300 ) return KAPI_OK;
  if( pResp->status==429 ) return KAPI_WAIT;
  if( pResp->status==401 || pResp->status==403 ) return KAPI_AUTH;
  if( pResp->status>=500 || pResp->status==408 ) return KAPI_RETRY;
  return KAPI_FATAL;
}

double kustomer_api_backoff(int nTry, double base, double cap){
  unsigned int r;
  double s = base;
  while( --nTry>0 && s<cap ) s *= 2;
  if( s>cap ) s = cap;
  /* jitter: spread retries so that they do not arrive together */
  sqlite3_randomness(sizeof(r), &r);
  return s*(0.75 + 0.5*(r/4294967296.0));
}

/* ---- Rate-limit headers ------------------------------------------------- */

/* A header's value as digits (a '.' fraction allowed), -1 when absent or
** anything else: "1e3", "-1", "soon" and HTTP-dates are not numbers. */
static double header_digits(const cJSON *pHdr, const char *zName){
  const cJSON *pV = kustomer_json_member(pHdr, zName);
  const char *z;
  double r = 0, f = 1;
  int nDigit = 0;
  if( !cJSON_IsString(pV) ) return -1;
  z = pV->valuestring;
  while( *z==' ' || *z=='\t' ) z++;
  for(; *z>='0' && *z<='9'; z++, nDigit++) r = r*10 + (*z-'0');
  if( *z=='.' ){
    for(z++; *z>='0' && *z<='9'; z++, nDigit++){
      f /= 10;
      r += f*(*z-'0');
    }
  }
  while( *z==' ' || *z=='\t' ) z++;
  return (nDigit>0 && *z==0) ? r : -1;
}

void kustomer_api_rate(const KHttpResp *pResp, KApiRate *pRate){
  cJSON *pHdr = 0;
  const cJSON *pRetry;
  char *zErr = 0;
  pRate->limit = pRate->remaining = pRate->reset = pRate->retryAfter = -1;
  if( pResp->eNet || pResp->zHeaders==0 ) return;
  pHdr = kustomer_json_parse(pResp->zHeaders, (int)strlen(pResp->zHeaders),
                             &zErr);
  sqlite3_free(zErr);
  if( pHdr==0 ) return;
  pRate->limit = header_digits(pHdr, "x-ratelimit-limit");
  pRate->remaining = header_digits(pHdr, "x-ratelimit-remaining");
  pRate->reset = header_digits(pHdr, "x-ratelimit-reset");
  if( pRate->reset>1e9 ){
    /* Epoch seconds or seconds from now: both are seen (kustomer-api 6). */
    pRate->reset -= kustomer_wall();
    if( pRate->reset<0 ) pRate->reset = 0;
  }
  pRetry = kustomer_json_member(pHdr, "retry-after");
  pRate->retryAfter = kustomer_http_retry_after(cJSON_IsString(pRetry)
                                                ? pRetry->valuestring : 0);
  cJSON_Delete(pHdr);
}

double kustomer_api_rate_wait(const KApiRate *pRate){
  /* what the server asks for comes first */
  if( pRate->retryAfter>=0 ) return pRate->retryAfter;
  return pRate->reset;
}

/* ---- The ledger: requests started, per database file -------------------- */

/* The statements on the ledger. */
#define LG_COUNT        0
#define LG_COUNT_SEARCH 1
#define LG_NTH          2
#define LG_NTH_SEARCH   3
#define LG_ADD          4
#define LG_PRUNE        5
#define LG_PAUSE_GET    6
#define LG_PAUSE_PUT    7
#define LG_SET_T        8
#define LG_N            9
static const char *const azLedgerSql[LG_N] = {
  "SELECT count(*) FROM main.kustomer_requests WHERE t>?1",
  "SELECT count(*) FROM main.kustomer_requests WHERE t>?1 AND kind='search'",
  "SELECT t FROM main.kustomer_requests WHERE t>?1 ORDER BY t LIMIT 1 OFFSET ?2",
  "SELECT t FROM main.kustomer_requests WHERE t>?1 AND kind='search'"
  " ORDER BY t LIMIT 1 OFFSET ?2",
  "INSERT INTO main.kustomer_requests(t, kind) VALUES(?1, ?2)",
  "DELETE FROM main.kustomer_requests WHERE t<?1",
  "SELECT v FROM main.kustomer_ratelimit WHERE k='pause_until'",
  "INSERT INTO main.kustomer_ratelimit(k, v) VALUES('pause_until', ?1)"
  " ON CONFLICT(k) DO UPDATE SET v=max(v, excluded.v)",
  "UPDATE main.kustomer_requests SET t=?1 WHERE rowid=?2",
};

struct KLedger {
  sqlite3 *db;
  sqlite3_stmt *aStmt[LG_N];
};

int kustomer_ledger_create(sqlite3 *db){
  return sqlite3_exec(db,
      "CREATE TABLE IF NOT EXISTS main.kustomer_requests("
      "t REAL NOT NULL, kind TEXT NOT NULL);"
      "CREATE INDEX IF NOT EXISTS main.kustomer_requests_t"
      " ON kustomer_requests(t);"
      "CREATE TABLE IF NOT EXISTS main.kustomer_ratelimit("
      "k TEXT PRIMARY KEY, v);", 0, 0, 0);
}

int kustomer_ledger_open(sqlite3 *db, KLedger **ppOut){
  KLedger *p = sqlite3_malloc(sizeof(*p));
  *ppOut = 0;
  if( p==0 ) return SQLITE_NOMEM;
  memset(p, 0, sizeof(*p));
  p->db = db;
  *ppOut = p;
  return SQLITE_OK;
}

void kustomer_ledger_close(KLedger *p){
  int i;
  if( p==0 ) return;
  for(i=0; i<LG_N; i++) sqlite3_finalize(p->aStmt[i]);
  sqlite3_free(p);
}

/* The statement e, reset; NULL when it cannot be prepared (the tables
** are missing: kustomer_ledger_create() was not run). */
static sqlite3_stmt *ledger_stmt(KLedger *p, int e){
  if( p->aStmt[e]==0 ){
    if( sqlite3_prepare_v3(p->db, azLedgerSql[e], -1,
                           SQLITE_PREPARE_PERSISTENT, &p->aStmt[e], 0) ){
      return 0;
    }
  }else{
    sqlite3_reset(p->aStmt[e]);
  }
  return p->aStmt[e];
}

/* Starts after tSince (of searches only, with bSearch). */
static int ledger_count(KLedger *p, double tSince, int bSearch){
  sqlite3_stmt *pStmt = ledger_stmt(p, bSearch ? LG_COUNT_SEARCH : LG_COUNT);
  int n = 0;
  if( pStmt==0 ) return 0;
  sqlite3_bind_double(pStmt, 1, tSince);
  if( sqlite3_step(pStmt)==SQLITE_ROW ) n = sqlite3_column_int(pStmt, 0);
  sqlite3_reset(pStmt);
  return n;
}

/* The time of the k-th (0-based) start after tSince, or 0. */
static double ledger_nth(KLedger *p, double tSince, int k, int bSearch){
  sqlite3_stmt *pStmt = ledger_stmt(p, bSearch ? LG_NTH_SEARCH : LG_NTH);
  double t = 0;
  if( pStmt==0 ) return 0;
  sqlite3_bind_double(pStmt, 1, tSince);
  sqlite3_bind_int(pStmt, 2, k);
  if( sqlite3_step(pStmt)==SQLITE_ROW ) t = sqlite3_column_double(pStmt, 0);
  sqlite3_reset(pStmt);
  return t;
}

int kustomer_ledger_add(KLedger *p, double t, int bSearch){
  sqlite3_stmt *pStmt = ledger_stmt(p, LG_ADD);
  if( pStmt==0 ) return sqlite3_errcode(p->db);
  sqlite3_bind_double(pStmt, 1, t);
  sqlite3_bind_text(pStmt, 2, bSearch ? "search" : "api", -1, SQLITE_STATIC);
  sqlite3_step(pStmt);
  return sqlite3_reset(pStmt);
}

int kustomer_ledger_prune(KLedger *p, double tBefore){
  sqlite3_stmt *pStmt = ledger_stmt(p, LG_PRUNE);
  if( pStmt==0 ) return sqlite3_errcode(p->db);
  sqlite3_bind_double(pStmt, 1, tBefore);
  sqlite3_step(pStmt);
  return sqlite3_reset(pStmt);
}

/* The pause every user of the file obeys (wall time), 0 for none. */
static double ledger_pause(KLedger *p){
  sqlite3_stmt *pStmt = ledger_stmt(p, LG_PAUSE_GET);
  double t = 0;
  if( pStmt && sqlite3_step(pStmt)==SQLITE_ROW ){
    t = sqlite3_column_double(pStmt, 0);
  }
  if( pStmt ) sqlite3_reset(pStmt);
  return t;
}

static void ledger_pause_put(KLedger *p, double tUntil){
  sqlite3_stmt *pStmt = ledger_stmt(p, LG_PAUSE_PUT);
  if( pStmt==0 ) return;
  sqlite3_bind_double(pStmt, 1, tUntil);
  sqlite3_step(pStmt);
  sqlite3_reset(pStmt);
}

/* ---- The limiter -------------------------------------------------------- */

int kustomer_limiter_init(KLimiter *p, double rateLimit, double budget,
                          double rateWindow){
  memset(p, 0, sizeof(*p));
  p->rateWindow = rateWindow;
  /* Requests reach Kustomer a little after they start, not all equally
  ** late: the window is widened by half a second (under 1% of Kustomer's
  ** minute, less than a request's worst delay on a busy network). */
  p->tWindow = rateWindow + 0.5;
  p->budget = budget;
  p->maxPause = 2*rateWindow;
  if( rateLimit>0 ){
    p->nAllowed = (int)floor(rateLimit*budget);
    if( p->nAllowed<1 ) p->nAllowed = 1;
  }
  return SQLITE_OK;
}

void kustomer_limiter_free(KLimiter *p){
  p->pLedger = 0;
}

void kustomer_limiter_searches(KLimiter *p, double searchLimit){
  p->nSearchAllowed = (int)floor(searchLimit*p->budget);
  if( p->nSearchAllowed<1 ) p->nSearchAllowed = 1;
}

/* The pause in force: this limiter's, or the one another user of the
** file recorded. */
static double limiter_pause_until(KLimiter *p){
  double t = p->tPause;
  if( p->pLedger ){
    double tShared = ledger_pause(p->pLedger);
    if( tShared>t ) t = tShared;
  }
  return t;
}

int kustomer_limiter_add(KLimiter *p, int bSearch){
  int rc;
  p->iLastRow = 0;
  if( p->pLedger==0 ) return SQLITE_OK;
  rc = kustomer_ledger_add(p->pLedger, kustomer_wall(), bSearch);
  if( rc==SQLITE_OK ) p->iLastRow = sqlite3_last_insert_rowid(p->pLedger->db);
  return rc;
}

/* Requests going out later than this after their start move their start
** (a connection that waited for the server's accept, say). */
#define LIMITER_LATE 0.05

int kustomer_limiter_sent(KLimiter *p, sqlite3_int64 iRow, double tStarted,
                          int bSearch){
  double t = kustomer_wall(), tSince;
  int n, k;
  sqlite3_stmt *pStmt;
  if( p->pLedger==0 || iRow<=0 || t - tStarted < LIMITER_LATE ) return 0;
  tSince = t - p->tWindow;
  /* the window at its new start, without its old one */
  for(k=0; k<=(bSearch && p->nSearchAllowed>0); k++){
    int nAllowed = k ? p->nSearchAllowed : p->nAllowed;
    if( nAllowed<=0 ) continue;
    n = ledger_count(p->pLedger, tSince, k) - (tStarted>tSince ? 1 : 0);
    if( n>=nAllowed ) return 1;
  }
  pStmt = ledger_stmt(p->pLedger, LG_SET_T);
  if( pStmt==0 ) return 1;
  sqlite3_bind_double(pStmt, 1, t);
  sqlite3_bind_int64(pStmt, 2, iRow);
  sqlite3_step(pStmt);
  /* not moved, it would be counted too early: kept back */
  return sqlite3_reset(pStmt)!=SQLITE_OK;
}

int kustomer_limiter_available(KLimiter *p, int nInFlight, int bSearch){
  double t = kustomer_wall();
  int n, nSearch;
  if( t < limiter_pause_until(p) ) return 0;
  if( p->nAllowed==0 || p->pLedger==0 ) return 1000000;
  n = p->nAllowed - ledger_count(p->pLedger, t - p->tWindow, 0) - nInFlight;
  if( bSearch && p->nSearchAllowed>0 ){
    nSearch = p->nSearchAllowed - ledger_count(p->pLedger, t - p->tWindow, 1);
    if( nSearch<n ) n = nSearch;
  }
  return n>0 ? n : 0;
}

/* Seconds until the window of one kind has room. */
static double window_wait(KLimiter *p, double t, int nAllowed, int bSearch){
  double tSince = t - p->tWindow;
  int n = ledger_count(p->pLedger, tSince, bSearch);
  double tOld;
  if( n<nAllowed ) return 0;
  /* the start that must leave the window first */
  tOld = ledger_nth(p->pLedger, tSince, n - nAllowed, bSearch);
  return tOld>0 ? tOld + p->tWindow - t : 0;
}

double kustomer_limiter_wait(KLimiter *p, int bSearch){
  double t = kustomer_wall();
  double w = limiter_pause_until(p) - t;
  if( p->nAllowed>0 && p->pLedger ){
    double wWin = window_wait(p, t, p->nAllowed, 0);
    if( wWin>w ) w = wWin;
    if( bSearch && p->nSearchAllowed>0 ){
      wWin = window_wait(p, t, p->nSearchAllowed, 1);
      if( wWin>w ) w = wWin;
    }
  }
  return w>0 ? w : 0;
}

/* Pause every start until w seconds from now (capped at maxPause), for
** every user of the ledger. */
static void limiter_pause(KLimiter *p, double w){
  double t = kustomer_wall();
  if( p->maxPause>0 && w>p->maxPause ) w = p->maxPause;
  if( t + w > p->tPause ){
    p->tPause = t + w;
    if( p->pLedger ) ledger_pause_put(p->pLedger, p->tPause);
  }
}

double kustomer_limiter_observe(KLimiter *p, const KHttpResp *pResp){
  KApiRate rate;
  double w;
  if( pResp->eNet ) return 0;
  kustomer_api_rate(pResp, &rate);
  if( p->bLearn && rate.limit>=1 ){
    /* the organisation's limit, as Kustomer reports it */
    int n = (int)floor(rate.limit*p->budget);
    p->nAllowed = n>0 ? n : 1;
  }
  w = kustomer_api_rate_wait(&rate);
  if( pResp->status==429 ){
    if( w<0 ){
      /* Nothing says when: back off from a second, doubling, up to a
      ** window (Kustomer answers 429 until its window resets). */
      w = kustomer_api_backoff(++p->n429, 1.0, p->rateWindow);
    }
    /* a reset rounded to the second may already be past */
    if( w<0.05 ) w = 0.05;
    limiter_pause(p, w);
    return w;
  }
  p->n429 = 0;
  if( rate.remaining>=0 && w>0
   && (rate.remaining<1
       || (rate.limit>=1 && p->budget<1
           && rate.remaining <= rate.limit*(1.0 - p->budget))) ){
    /* The budget is used up, or what is left of the window is the share
    ** this caller leaves to everyone else: wait for the reset rather than
    ** spend it (or a request on a 429). */
    limiter_pause(p, w);
    return w;
  }
  return 0;
}

/* ---- One request, with Kustomer's retry rules ---------------------------- */

/* libcurl is about to send the request: the first time, late, its start
** moves to now if the window has room there; again by itself, it is
** counted as a start, if the limiter has room.  Else the attempt fails
** (kept back, or as a dropped connection), and the call's own retry,
** which waits for room, goes on. */
static int api_send(void *pArg, int iAttempt){
  KApiCall *pCall = (KApiCall*)pArg;
  if( iAttempt==0 ){
    return pCall->pLim ? kustomer_limiter_sent(pCall->pLim, pCall->iRow,
                                               pCall->tStarted,
                                               pCall->bSearch) : 0;
  }
  if( pCall->pLim
   && kustomer_limiter_available(pCall->pLim, 0, pCall->bSearch)<=0 ){
    return 1;
  }
  if( pCall->xStart && pCall->xStart(pCall->pStartArg) ) return 1;
  pCall->nResend++;
  return 0;
}

static void api_sleep(KApiCall *pCall, double s){
  if( pCall->xSleep ) pCall->xSleep(pCall->pStartArg, s);
  else kustomer_sleep(s);
}

int kustomer_api_call(KApiCall *pCall, const KHttpReq *pReqIn,
                      KHttpResp *pResp){
  KLimiter *pLim = pCall->pLim;
  int rc = SQLITE_OK;
  KHttpReq req = *pReqIn;
  const KHttpReq *pReq = &req;

  req.xSend = api_send;
  req.pSendArg = pCall;
  memset(pResp, 0, sizeof(*pResp));
  pCall->nTry = 0;
  pCall->nResend = 0;
  pCall->eEnd = KCALL_OK;
  pCall->wait = 0;
  while( 1 ){
    double wait = pLim ? kustomer_limiter_wait(pLim, pCall->bSearch) : 0;
    int eClass;
    if( wait>0 ){
      if( kustomer_clock()+wait > pCall->tDeadline ){
        pCall->eEnd = KCALL_STOPPED;
        pCall->wait = wait;
        break;
      }
      api_sleep(pCall, wait);
      continue;       /* the window may have moved meanwhile */
    }
    if( pCall->xStart && pCall->xStart(pCall->pStartArg) ){
      pCall->eEnd = KCALL_STOPPED;
      break;
    }
    pCall->iRow = pLim ? pLim->iLastRow : 0;
    pCall->tStarted = kustomer_wall();
    kustomer_http_resp_clear(pResp);
    pCall->nTry++;
    rc = kustomer_http_do(pCall->pHttp, pReq, pResp);
    if( rc ) break;
    eClass = kustomer_api_class(pResp);
    wait = pLim ? kustomer_limiter_observe(pLim, pResp) : 0;
    if( eClass==KAPI_OK ){
      /* A pause beyond what this call may wait is left to the 429 that
      ** follows, whose error says so. */
      if( pLim && wait>pCall->maxWait ) pLim->tPause = 0;
      break;
    }
    if( eClass==KAPI_WAIT ){
      /* Does not use up an attempt: the request was not at fault. */
      pCall->nTry--;
      pCall->n429++;
      pCall->wait = wait;
      if( wait>pCall->maxWait ){
        pCall->eEnd = KCALL_WAIT;
        break;
      }
      if( kustomer_clock()+wait>pCall->tDeadline ){
        pCall->eEnd = KCALL_DEADLINE;
        break;
      }
      continue;
    }
    if( eClass==KAPI_RETRY || (eClass==KAPI_DOWN && pCall->bRetryDown) ){
      wait = kustomer_api_backoff(pCall->nTry, pCall->backoffBase,
                                  pCall->backoffCap);
      if( pCall->nTry<pCall->nMaxTries
       && kustomer_clock()+wait<=pCall->tDeadline ){
        api_sleep(pCall, wait);
        continue;
      }
    }
    pCall->eEnd = pResp->eNet ? KCALL_NET : KCALL_STATUS;
    break;
  }
  if( rc ) kustomer_http_resp_clear(pResp);
  return rc;
}
