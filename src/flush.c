/*
** kustomer_flush(outbox [, seconds [, options]]): deliver an outbox's
** pending rows to Kustomer and return a JSON summary
**
**   {"sent":..,"failed":..,"invalid":..,"pending":..,"requests":..,
**    "seconds":..}
**
** (sent and failed: by this flush; invalid and pending: left in the table).
**
** Delivery rules:
** - never more than rate_limit*budget requests start in any rate_window
**   (the window's requests are recorded in <name>_sends, so the limit holds
**   across flushes and processes); x-ratelimit-remaining/reset are obeyed
**   and a 429 waits for the reset without using up an attempt;
** - 5xx, 408, timeouts and dropped connections are retried with
**   exponential backoff and jitter, up to max_attempts, then 'failed';
** - other 4xx are 'failed' at once with Kustomer's message;
** - 401/403 stop the flush with an SQL error; the rows stay pending;
** - new customers are created 100 at a time through POST
**   /v1/customers/bulk (_clientRef = row id), the job is polled to
**   completion and each item's result is written to its row; an item
**   Kustomer refuses because the customer exists is looked up (cached for
**   the flush) and updated with a PUT instead;
** - tracking events go one per request, several in flight at once on
**   kept-alive connections.
**
** Crash safety: a row is committed as 'sending' before its request starts
** and committed with its outcome after; a flush that was killed leaves
** 'sending' rows, which the next flush puts back to pending.  So a row can
** be sent twice only if it was in flight at the kill.  The flush refuses to
** run inside a transaction: what is sent cannot be rolled back.
*/
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

#define MAX_INFLIGHT 64
#define BULK_SIZE    100

/* What a request in flight is for. */
typedef struct InFlight InFlight;
struct InFlight {
  sqlite3_int64 iRow;       /* its row; 0 for a free slot */
  int bIdentify;            /* a customer request: the reply has its id */
};

typedef struct Flush Flush;
struct Flush {
  sqlite3 *db;
  const char *zName;
  KOutboxConfig cfg;
  KSettings *pSet;
  char *zAuth;              /* "Bearer <key>", wiped when done */
  KHttp *pHttp;             /* for the bulk flow's requests */
  KHttpMulti *pMulti;
  double tStart, tDeadline;
  double tPause;            /* no request starts before this time */
  double tWindow;           /* the rate window, with a margin for the
                            ** time requests take to reach Kustomer */
  /* rate limiter: start times of the requests in the current window */
  double *aSent;
  int nSent, nSentAlloc;
  int nAllowed;
  /* statements on <name>_data and <name>_sends */
  sqlite3_stmt *pDue, *pDueCreate, *pSending, *pSendLog, *pSent, *pRetry,
               *pFailed, *pRequest, *pEvent;
  /* requests in flight, by multi tag = slot index */
  InFlight aFly[MAX_INFLIGHT];
  /* due rows fetched but not started */
  sqlite3_int64 aQueue[256];
  int nQueue, iQueue;
  /* lookup results of this flush: "email=x" -> id ("" = not found) */
  char **azCacheKey, **azCacheVal;
  int nCache, nCacheAlloc;
  /* summary */
  int nDelivered, nFailed, nRequests;
  int bProgress;
  int nTotal;               /* pending rows when the flush started */
  char *zFatal;             /* stops the flush: an SQL error */
  int rc;                   /* first SQLite error */
  int nTxn;                 /* depth of flush_begin() */
  int bTxnOpen;             /* its BEGIN succeeded */
  int nConnects;            /* connections opened so far */
  int nEasyConnects;        /* the same for flush_request() */
};

static double now_seconds(void){
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec/1e9;
}

static void flush_fatal(Flush *f, char *zMsg){
  if( f->zFatal==0 ){
    f->zFatal = zMsg ? zMsg : sqlite3_mprintf("out of memory");
  }else{
    sqlite3_free(zMsg);
  }
}

/* Run SQL on the connection; the first failure is kept. */
static int flush_exec(Flush *f, const char *zSql){
  int rc;
  if( f->rc ) return f->rc;
  rc = sqlite3_exec(f->db, zSql, 0, 0, 0);
  if( rc ){
    f->rc = rc;
    flush_fatal(f, sqlite3_mprintf("kustomer_flush(): %s",
                                   sqlite3_errmsg(f->db)));
  }
  return rc;
}

/* Transactions nest: the bulk flow writes its results in one while it
** looks customers up.  The outermost one is BEGIN IMMEDIATE (the flush
** refuses to run inside a transaction): it takes the write lock at once,
** waiting in the busy handler, where a deferred one that read first could
** only fail (SQLITE_BUSY, no wait) on meeting another writer. */
static void flush_begin(Flush *f){
  if( f->nTxn++==0 ){
    int rc = sqlite3_exec(f->db, "BEGIN IMMEDIATE", 0, 0, 0);
    f->bTxnOpen = rc==SQLITE_OK;
    if( rc && f->rc==SQLITE_OK ){
      f->rc = rc;
      flush_fatal(f, sqlite3_mprintf("kustomer_flush(): %s",
                                     sqlite3_errmsg(f->db)));
    }
  }
}

static void flush_commit(Flush *f){
  int rc;
  if( f->nTxn==0 || --f->nTxn>0 || !f->bTxnOpen ) return;
  f->bTxnOpen = 0;
  rc = sqlite3_exec(f->db, "COMMIT", 0, 0, 0);
  if( rc ){
    /* Not committed (the disk is full, say): the flush stops, and its
    ** rows stay as the last commit left them, to be sent again. */
    if( f->rc==SQLITE_OK ){
      f->rc = rc;
      flush_fatal(f, sqlite3_mprintf("kustomer_flush(): %s",
                                     sqlite3_errmsg(f->db)));
    }
    if( !sqlite3_get_autocommit(f->db) ){
      sqlite3_exec(f->db, "ROLLBACK", 0, 0, 0);
    }
  }
}

/* Commit an open transaction, whatever its depth (each row's writes stand
** alone), so that no wait or request holds the database's write lock;
** returns the depth for flush_resume() to open it again at. */
static int flush_suspend(Flush *f){
  int nTxn = f->nTxn;
  if( nTxn>0 ){
    f->nTxn = 1;
    flush_commit(f);
  }
  return nTxn;
}

static void flush_resume(Flush *f, int nTxn){
  if( nTxn>0 ){
    flush_begin(f);
    f->nTxn = nTxn;
  }
}

static int flush_step(Flush *f, sqlite3_stmt *p){
  int rc = sqlite3_step(p);
  sqlite3_reset(p);
  if( rc!=SQLITE_DONE && rc!=SQLITE_ROW && f->rc==SQLITE_OK ){
    f->rc = rc;
    flush_fatal(f, sqlite3_mprintf("kustomer_flush(): %s",
                                   sqlite3_errmsg(f->db)));
  }
  return rc;
}

static int flush_prepare(Flush *f, sqlite3_stmt **pp, const char *zFmt){
  char *zSql = sqlite3_mprintf(zFmt, f->zName, f->zName);
  int rc;
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v3(f->db, zSql, -1, SQLITE_PREPARE_PERSISTENT, pp, 0);
  sqlite3_free(zSql);
  return rc;
}

/* ---- Rate limiting ------------------------------------------------------ */

/* Forget starts that left the window. */
static void limiter_prune(Flush *f, double t){
  int i, j;
  for(i=0, j=0; i<f->nSent; i++){
    if( f->aSent[i] > t - f->tWindow ) f->aSent[j++] = f->aSent[i];
  }
  f->nSent = j;
}

/* How many requests may start now.  Each request in flight may yet turn
** into two (libcurl resends once when a kept-alive connection died, see
** pipeline_collect), so each holds a second place until it is done. */
static int limiter_available(Flush *f, double t){
  int n;
  limiter_prune(f, t);
  if( t < f->tPause ) return 0;
  n = f->nAllowed - f->nSent - kustomer_multi_running(f->pMulti);
  return n>0 ? n : 0;
}

/* Seconds until another request may start (0: now). */
static double limiter_wait(Flush *f, double t){
  limiter_prune(f, t);
  if( t < f->tPause ) return f->tPause - t;
  if( f->nSent < f->nAllowed ) return 0;
  return f->aSent[0] + f->tWindow - t;
}

/* Record the start of a request (in memory and in <name>_sends). */
static void limiter_record(Flush *f, double t){
  if( f->nSent==f->nSentAlloc ){
    /* cannot happen: a window never holds more than nAllowed starts plus
    ** the resends counted after them; keep the newest if it did */
    memmove(f->aSent, &f->aSent[1], sizeof(double)*(f->nSent-1));
    f->nSent--;
  }
  f->aSent[f->nSent++] = t;
  sqlite3_bind_double(f->pSendLog, 1, t);
  flush_step(f, f->pSendLog);
  f->nRequests++;
}

/* Wait until a request may start, within the deadline.  0: go ahead. */
static int limiter_acquire(Flush *f){
  for(;;){
    double t = now_seconds();
    double w = limiter_wait(f, t);
    if( t>=f->tDeadline ) return 1;
    if( w<=0 ) return 0;
    if( t + w > f->tDeadline ) return 1;
    kustomer_sleep(w < 0.25 ? w : 0.25);
  }
}

/* Obey the x-ratelimit and Retry-After headers and 429s of a response. */
static void limiter_observe(Flush *f, const KHttpResp *pResp){
  cJSON *pHdr;
  const cJSON *pRemaining, *pReset, *pRetry;
  double t = now_seconds(), tReset = 0, rRetry;
  if( pResp->eNet || pResp->zHeaders==0 ) return;
  pHdr = cJSON_Parse(pResp->zHeaders);
  pRemaining = kustomer_json_member(pHdr, "x-ratelimit-remaining");
  pReset = kustomer_json_member(pHdr, "x-ratelimit-reset");
  pRetry = kustomer_json_member(pHdr, "retry-after");
  rRetry = kustomer_http_retry_after(cJSON_IsString(pRetry)
                                     ? pRetry->valuestring : 0);
  if( cJSON_IsString(pReset) ){
    double r = atof(pReset->valuestring);
    /* Epoch seconds or seconds from now: both are seen (kustomer-api 6). */
    tReset = r>1e9 ? r : t + r;
  }
  if( pResp->status==429
   || (cJSON_IsString(pRemaining) && atof(pRemaining->valuestring)<=0) ){
    /* what the server asks for comes first */
    double tUntil = rRetry>=0 ? t + rRetry
                  : tReset>t ? tReset : t + f->cfg.rateWindow;
    if( tUntil > t + f->cfg.rateWindow*2 ) tUntil = t + f->cfg.rateWindow*2;
    if( tUntil > f->tPause ) f->tPause = tUntil;
  }
  cJSON_Delete(pHdr);
}

/* ---- Row outcomes -------------------------------------------------------- */

/* Kustomer's message in an error body: errors[0].detail/title/message. */
static char *kustomer_message(const KHttpResp *pResp){
  char *zErr = 0;
  cJSON *pDoc = kustomer_json_parse(pResp->zBody, pResp->nBody, &zErr);
  char *zOut = 0;
  sqlite3_free(zErr);
  if( pDoc ){
    const cJSON *pErrs = kustomer_json_member(pDoc, "errors");
    const cJSON *pE = cJSON_IsArray(pErrs) ? pErrs->child : 0;
    const char *azKey[] = { "detail", "title", "message" };
    int i;
    for(i=0; i<3 && pE && zOut==0; i++){
      const cJSON *pM = kustomer_json_member(pE, azKey[i]);
      if( cJSON_IsString(pM) && pM->valuestring[0] ){
        zOut = sqlite3_mprintf("%s", pM->valuestring);
      }
    }
    cJSON_Delete(pDoc);
  }
  if( zOut==0 ){
    zOut = sqlite3_mprintf("%.*s", pResp->nBody>500 ? 500 : pResp->nBody,
                           pResp->zBody ? pResp->zBody : "");
  }
  return zOut;
}

/* data.id of a JSON response body, or NULL. */
static char *response_id(const KHttpResp *pResp){
  char *zErr = 0, *zId = 0;
  cJSON *pDoc = kustomer_json_parse(pResp->zBody, pResp->nBody, &zErr);
  const cJSON *pId;
  sqlite3_free(zErr);
  pId = kustomer_json_member(kustomer_json_member(pDoc, "data"), "id");
  if( cJSON_IsString(pId) ) zId = sqlite3_mprintf("%s", pId->valuestring);
  cJSON_Delete(pDoc);
  return zId;
}

static void row_sent(Flush *f, sqlite3_int64 iRow, int status,
                     const char *zKustomerId){
  sqlite3_bind_int(f->pSent, 1, status);
  if( zKustomerId ){
    sqlite3_bind_text(f->pSent, 2, zKustomerId, -1, SQLITE_TRANSIENT);
  }else{
    sqlite3_bind_null(f->pSent, 2);
  }
  sqlite3_bind_int64(f->pSent, 3, iRow);
  flush_step(f, f->pSent);
  f->nDelivered++;
}

static void row_failed(Flush *f, sqlite3_int64 iRow, int status,
                       const char *zError){
  if( status ){
    sqlite3_bind_int(f->pFailed, 1, status);
  }else{
    sqlite3_bind_null(f->pFailed, 1);
  }
  sqlite3_bind_text(f->pFailed, 2, zError, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(f->pFailed, 3, iRow);
  flush_step(f, f->pFailed);
  f->nFailed++;
}

/*
** Put a row back to pending.  bCounted: the attempt counts (not for 429,
** nor for a flush stopped before the reply).  Past max_attempts the row
** is failed instead, with zError.
*/
static void row_retry(Flush *f, sqlite3_int64 iRow, int nAttempts,
                      int bCounted, int status, const char *zError){
  double base = f->cfg.rateWindow/60.0, wait;
  if( bCounted && nAttempts>=f->cfg.maxAttempts ){
    char *zMsg = sqlite3_mprintf("%s (after %d attempts)", zError, nAttempts);
    row_failed(f, iRow, status, zMsg ? zMsg : zError);
    sqlite3_free(zMsg);
    return;
  }
  if( base<0.01 ) base = 0.01;
  wait = bCounted ? base*pow(2.0, nAttempts>0 ? nAttempts-1 : 0) : 0;
  if( wait > f->cfg.rateWindow ) wait = f->cfg.rateWindow;
  /* jitter: spread retries so they do not arrive together */
  wait *= 0.5 + (double)(rand() % 1000)/1000.0;
  sqlite3_bind_double(f->pRetry, 1, now_seconds() + wait);
  sqlite3_bind_int(f->pRetry, 2, bCounted ? 0 : 1);
  if( status ){
    sqlite3_bind_int(f->pRetry, 3, status);
  }else{
    sqlite3_bind_null(f->pRetry, 3);
  }
  sqlite3_bind_text(f->pRetry, 4, zError, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(f->pRetry, 5, iRow);
  flush_step(f, f->pRetry);
}

/* The attempts a row has used (after being marked sending). */
static int row_attempts(Flush *f, sqlite3_int64 iRow){
  int n = 0;
  sqlite3_bind_int64(f->pRequest, 1, iRow);
  if( sqlite3_step(f->pRequest)==SQLITE_ROW ){
    n = sqlite3_column_int(f->pRequest, 1);
  }
  sqlite3_reset(f->pRequest);
  return n;
}

/*
** Decide a row's fate from the response to its request.  A refused key
** also stops the flush (f->zFatal).
*/
static void row_outcome(Flush *f, sqlite3_int64 iRow, const KHttpResp *r,
                        int bIdentify){
  int nAttempts = row_attempts(f, iRow);
  limiter_observe(f, r);
  if( r->eNet==KNET_REFUSED_URL ){
    row_failed(f, iRow, 0, r->zErr);
  }else if( r->eNet ){
    row_retry(f, iRow, nAttempts, 1, 0, r->zErr);
  }else if( r->status>=200 && r->status<300 ){
    char *zId = bIdentify ? response_id(r) : 0;
    row_sent(f, iRow, (int)r->status, zId);
    sqlite3_free(zId);
  }else if( r->status==429 ){
    row_retry(f, iRow, nAttempts, 0, 429, "rate limited (429)");
  }else if( r->status==401 || r->status==403 ){
    char *zMsg = kustomer_message(r);
    row_retry(f, iRow, nAttempts, 0, (int)r->status, zMsg);
    flush_fatal(f, sqlite3_mprintf("kustomer_flush(): Kustomer refused the "
                "API key (HTTP %d: %s); the rows stay pending",
                (int)r->status, zMsg ? zMsg : ""));
    sqlite3_free(zMsg);
  }else if( r->status>=500 || r->status==408 ){
    char *zMsg = sqlite3_mprintf("HTTP %d", (int)r->status);
    row_retry(f, iRow, nAttempts, 1, (int)r->status, zMsg ? zMsg : "");
    sqlite3_free(zMsg);
  }else{
    char *zMsg = kustomer_message(r);
    row_failed(f, iRow, (int)r->status, zMsg ? zMsg : "");
    sqlite3_free(zMsg);
  }
}

/* ---- Envelopes ---------------------------------------------------------- */

typedef struct Envelope Envelope;
struct Envelope {
  char *zMethod;
  char *zUrl;
  char *zBody;              /* compact JSON of body.JSON, or NULL */
  int nBody;
  int bIdentify;            /* a customer request */
  int bCreate;              /* POST /v1/customers */
};

static void envelope_clear(Envelope *e){
  sqlite3_free(e->zMethod);
  sqlite3_free(e->zUrl);
  sqlite3_free(e->zBody);
  memset(e, 0, sizeof(*e));
}

/* Parse a stored request envelope.  Returns an error message or NULL. */
static char *envelope_parse(const char *zReq, Envelope *e){
  char *zErr = 0;
  cJSON *pDoc;
  const cJSON *pMethod, *pUrl, *pJson;
  size_t n;
  memset(e, 0, sizeof(*e));
  if( zReq==0 ) return sqlite3_mprintf("no request stored");
  pDoc = kustomer_json_parse(zReq, (int)strlen(zReq), &zErr);
  if( pDoc==0 ){
    char *zMsg = sqlite3_mprintf("stored request %s", zErr ? zErr : "");
    sqlite3_free(zErr);
    return zMsg;
  }
  pMethod = kustomer_json_member(pDoc, "method");
  pUrl = kustomer_json_member(pDoc, "endpoint");
  pJson = kustomer_json_member(kustomer_json_member(pDoc, "body"), "JSON");
  if( !cJSON_IsString(pMethod) || !cJSON_IsString(pUrl) ){
    cJSON_Delete(pDoc);
    return sqlite3_mprintf("stored request has no method and endpoint");
  }
  e->zMethod = sqlite3_mprintf("%s", pMethod->valuestring);
  e->zUrl = sqlite3_mprintf("%s", pUrl->valuestring);
  if( pJson ){
    sqlite3_str *p = sqlite3_str_new(0);
    kustomer_json_value(p, pJson);
    e->nBody = sqlite3_str_length(p);
    e->zBody = sqlite3_str_finish(p);
  }
  n = strlen(pUrl->valuestring);
  e->bIdentify = strstr(pUrl->valuestring, "/v1/customers")!=0;
  e->bCreate = strcmp(pMethod->valuestring, "POST")==0 && n>=13
            && strcmp(&pUrl->valuestring[n-13], "/v1/customers")==0;
  cJSON_Delete(pDoc);
  if( e->zMethod==0 || e->zUrl==0 || (pJson && e->zBody==0) ){
    envelope_clear(e);
    return sqlite3_mprintf("out of memory");
  }
  return 0;
}

static char *row_request(Flush *f, sqlite3_int64 iRow){
  char *z = 0;
  sqlite3_bind_int64(f->pRequest, 1, iRow);
  if( sqlite3_step(f->pRequest)==SQLITE_ROW ){
    z = sqlite3_mprintf("%s", sqlite3_column_text(f->pRequest, 0));
  }
  sqlite3_reset(f->pRequest);
  return z;
}

/* ---- The pipeline: one request per row, several in flight --------------- */

/* Fill the queue with due rows that are not customer creations. */
static void queue_refill(Flush *f){
  f->nQueue = f->iQueue = 0;
  sqlite3_bind_double(f->pDue, 1, now_seconds());
  while( f->nQueue<(int)(sizeof(f->aQueue)/sizeof(f->aQueue[0]))
      && sqlite3_step(f->pDue)==SQLITE_ROW ){
    sqlite3_int64 iRow = sqlite3_column_int64(f->pDue, 0);
    int i, bFlying = 0;
    for(i=0; i<MAX_INFLIGHT; i++){
      if( f->aFly[i].iRow==iRow ) bFlying = 1;
    }
    if( !bFlying ) f->aQueue[f->nQueue++] = iRow;
  }
  sqlite3_reset(f->pDue);
}

/* Start as many queued rows as the limits allow.  Returns how many. */
static int pipeline_start(Flush *f){
  sqlite3_int64 aRow[MAX_INFLIGHT];
  Envelope aEnv[MAX_INFLIGHT];
  double t = now_seconds();
  int nFree = f->cfg.concurrency - kustomer_multi_running(f->pMulti);
  int nAvail, n = 0, i;

  if( f->zFatal || f->rc || t>=f->tDeadline ) return 0;
  nAvail = limiter_available(f, t);
  if( nFree > nAvail ) nFree = nAvail;
  while( n<nFree ){
    char *zReq, *zErr;
    if( f->iQueue>=f->nQueue ){
      /* Refill only between batches: rows of this batch are not yet
      ** marked 'sending' and would be fetched again. */
      if( n>0 ) break;
      queue_refill(f);
      if( f->nQueue==0 ) break;
    }
    aRow[n] = f->aQueue[f->iQueue++];
    zReq = row_request(f, aRow[n]);
    zErr = envelope_parse(zReq, &aEnv[n]);
    sqlite3_free(zReq);
    if( zErr ){
      row_failed(f, aRow[n], 0, zErr);
      sqlite3_free(zErr);
      continue;
    }
    n++;
  }
  if( n==0 ) return 0;
  /* Committed as 'sending' before the requests can reach Kustomer. */
  flush_begin(f);
  for(i=0; i<n; i++){
    sqlite3_bind_int64(f->pSending, 1, aRow[i]);
    flush_step(f, f->pSending);
    limiter_record(f, t);
  }
  flush_commit(f);
  for(i=0; i<n; i++){
    KHttpReq req;
    KHttpResp refused;
    int iSlot, rc;
    for(iSlot=0; iSlot<MAX_INFLIGHT && f->aFly[iSlot].iRow; iSlot++){}
    memset(&req, 0, sizeof(req));
    req.zMethod = aEnv[i].zMethod;
    req.zUrl = aEnv[i].zUrl;
    req.zBody = aEnv[i].zBody;
    req.nBody = aEnv[i].nBody;
    req.zAuth = f->zAuth;
    req.timeoutMs = f->pSet->timeoutMs;
    rc = (f->rc || f->zFatal) ? SQLITE_ABORT
       : kustomer_multi_start(f->pMulti, &req, iSlot, &refused);
    if( rc==SQLITE_OK ){
      f->aFly[iSlot].iRow = aRow[i];
      f->aFly[iSlot].bIdentify = aEnv[i].bIdentify;
    }else{
      if( rc==SQLITE_DONE ){
        flush_fatal(f, sqlite3_mprintf("kustomer_flush(): %s", refused.zErr));
        kustomer_http_resp_clear(&refused);
      }else if( rc!=SQLITE_ABORT ){
        f->rc = rc;
      }
      row_retry(f, aRow[i], 0, 0, 0, "not sent: the flush stopped");
    }
    envelope_clear(&aEnv[i]);
  }
  return n;
}

/* Collect finished requests (waiting up to msWait for the first). */
static void pipeline_collect(Flush *f, int msWait){
  int nDone = 0;
  for(;;){
    sqlite3_int64 iTag, iRow;
    KHttpResp resp;
    int rc = kustomer_multi_next(f->pMulti, nDone ? 0 : msWait, &iTag, &resp);
    if( rc<0 ){
      f->rc = -rc;
      break;
    }
    if( rc==0 ) break;
    if( nDone==0 ) flush_begin(f);
    nDone++;
    /* A transfer that opened a connection after the first may have been
    ** sent again on it by libcurl (its kept-alive one had died): count it
    ** twice.  That over-counts the few new connections that were not
    ** resends, which only errs on the safe side of the budget. */
    if( resp.nConnects>0 && f->nConnects>0 ){
      limiter_record(f, now_seconds());
    }
    f->nConnects += resp.nConnects;
    iRow = f->aFly[iTag].iRow;
    f->aFly[iTag].iRow = 0;
    row_outcome(f, iRow, &resp, f->aFly[iTag].bIdentify);
    kustomer_http_resp_clear(&resp);
  }
  if( nDone ) flush_commit(f);
}

/* ---- Customers: bulk creation ------------------------------------------- */

static const char *cache_get(Flush *f, const char *zKey){
  int i;
  for(i=0; i<f->nCache; i++){
    if( strcmp(f->azCacheKey[i], zKey)==0 ) return f->azCacheVal[i];
  }
  return 0;
}

static void cache_put(Flush *f, const char *zKey, const char *zVal){
  if( cache_get(f, zKey) ) return;
  if( f->nCache==f->nCacheAlloc ){
    int n = f->nCacheAlloc ? f->nCacheAlloc*2 : 64;
    char **aK = sqlite3_realloc64(f->azCacheKey, sizeof(char*)*n);
    char **aV;
    if( aK==0 ) return;
    f->azCacheKey = aK;
    aV = sqlite3_realloc64(f->azCacheVal, sizeof(char*)*n);
    if( aV==0 ) return;
    f->azCacheVal = aV;
    f->nCacheAlloc = n;
  }
  f->azCacheKey[f->nCache] = sqlite3_mprintf("%s", zKey);
  f->azCacheVal[f->nCache] = sqlite3_mprintf("%s", zVal);
  if( f->azCacheKey[f->nCache] && f->azCacheVal[f->nCache] ){
    f->nCache++;
  }else{
    sqlite3_free(f->azCacheKey[f->nCache]);
    sqlite3_free(f->azCacheVal[f->nCache]);
  }
}

/* flush_request() once no transaction is open. */
static int flush_request_now(Flush *f, const char *zMethod,
                             const char *zUrl, const char *zBody, int nBody,
                             KHttpResp *pResp){
  KHttpReq req;
  int rc;
  memset(pResp, 0, sizeof(*pResp));
  if( limiter_acquire(f) ) return SQLITE_BUSY;
  flush_begin(f);
  limiter_record(f, now_seconds());
  flush_commit(f);
  if( f->rc ) return f->rc;
  memset(&req, 0, sizeof(req));
  req.zMethod = zMethod;
  req.zUrl = zUrl;
  req.zBody = zBody;
  req.nBody = nBody;
  req.zAuth = f->zAuth;
  req.timeoutMs = f->pSet->timeoutMs;
  rc = kustomer_http_do(f->pHttp, &req, pResp);
  if( rc==SQLITE_OK ){
    limiter_observe(f, pResp);
    if( pResp->nConnects>0 && f->nEasyConnects++>0 ){
      /* as in pipeline_collect(): maybe sent twice by libcurl */
      flush_begin(f);
      limiter_record(f, now_seconds());
      flush_commit(f);
    }
  }
  return rc;
}

/* One request outside the pipeline, within the rate limit.  SQLITE_BUSY:
** not sent, the flush's seconds are up or would be before the limiter (a
** 429's reset, say) lets it start.  Lookups come while bulk results are
** written: their transaction is committed first and goes on after. */
static int flush_request(Flush *f, const char *zMethod, const char *zUrl,
                         const char *zBody, int nBody, KHttpResp *pResp){
  int nTxn = flush_suspend(f);
  int rc = flush_request_now(f, zMethod, zUrl, zBody, nBody, pResp);
  flush_resume(f, nTxn);
  return rc;
}

/* The id of an existing customer for an identify event, by the
** reference's lookups (cached for the flush); NULL if none, and then
** *pbFailed says whether a lookup failed (5xx, dropped, ...: 1) or could
** not be sent before the deadline (2) rather than found nothing. */
static char *customer_lookup(Flush *f, sqlite3_int64 iRow, int *pbFailed){
  const cJSON *apVal[3];
  char *zEvent = 0, *zErr = 0, *zFound = 0;
  cJSON *pEvent;
  int i, rc;
  *pbFailed = 0;
  sqlite3_bind_int64(f->pEvent, 1, iRow);
  if( sqlite3_step(f->pEvent)==SQLITE_ROW ){
    zEvent = sqlite3_mprintf("%s", sqlite3_column_text(f->pEvent, 0));
  }
  sqlite3_reset(f->pEvent);
  if( zEvent==0 ) return 0;
  pEvent = kustomer_json_parse(zEvent, (int)strlen(zEvent), &zErr);
  sqlite3_free(zErr);
  sqlite3_free(zEvent);
  if( pEvent==0 ) return 0;
  kustomer_identify_lookups(pEvent, apVal);
  for(i=0; i<3 && zFound==0 && !*pbFailed; i++){
    sqlite3_str *pKey;
    char *zKey, *zUrl;
    const char *zHit;
    KHttpResp resp;
    if( !kustomer_js_truthy(apVal[i]) ) continue;
    pKey = sqlite3_str_new(0);
    sqlite3_str_appendall(pKey, kustomer_aLookupPrefix[i]);
    kustomer_path_segment_value(pKey, apVal[i]);
    zKey = sqlite3_str_finish(pKey);
    if( zKey==0 ) break;
    zHit = cache_get(f, zKey);
    if( zHit ){
      if( zHit[0] ) zFound = sqlite3_mprintf("%s", zHit);
      sqlite3_free(zKey);
      continue;
    }
    zUrl = sqlite3_mprintf("%s/v1/customers/%s", f->pSet->zBase, zKey);
    rc = zUrl ? flush_request(f, "GET", zUrl, 0, 0, &resp) : SQLITE_NOMEM;
    if( rc==SQLITE_OK ){
      if( resp.eNet==0 && resp.status==200 ){
        zFound = response_id(&resp);
        if( zFound ) cache_put(f, zKey, zFound);
      }else if( resp.eNet==0 && resp.status==404 ){
        cache_put(f, zKey, "");
      }else{
        *pbFailed = 1;
      }
      kustomer_http_resp_clear(&resp);
    }else{
      *pbFailed = rc==SQLITE_BUSY ? 2 : 1;
    }
    sqlite3_free(zUrl);
    sqlite3_free(zKey);
  }
  cJSON_Delete(pEvent);
  return zFound;
}

/* Rewrite a row's request as an update of customer zId, to be sent by the
** pipeline. */
static void row_to_update(Flush *f, sqlite3_int64 iRow, const char *zId){
  sqlite3_stmt *pUpd = 0;
  char *zEvent = 0, *zReq = 0, *zErr = 0, *zSql;
  KSettings set = *f->pSet;
  KError err = {0, 0};
  cJSON *pEvent;
  sqlite3_str *p;
  sqlite3_bind_int64(f->pEvent, 1, iRow);
  if( sqlite3_step(f->pEvent)==SQLITE_ROW ){
    zEvent = sqlite3_mprintf("%s", sqlite3_column_text(f->pEvent, 0));
  }
  sqlite3_reset(f->pEvent);
  pEvent = zEvent ? kustomer_json_parse(zEvent, (int)strlen(zEvent), &zErr)
                  : 0;
  sqlite3_free(zErr);
  sqlite3_free(zEvent);
  if( pEvent==0 ) return;
  set.zAuth = 0;
  p = sqlite3_str_new(0);
  if( kustomer_request_write(p, pEvent, &set, zId, 0, &err)==SQLITE_OK ){
    zReq = sqlite3_str_finish(p);
  }else{
    sqlite3_free(sqlite3_str_finish(p));
  }
  kustomer_error_clear(&err);
  cJSON_Delete(pEvent);
  zSql = sqlite3_mprintf("UPDATE \"%w_data\" SET request=?, kustomer_id=?,"
                         " status='pending', next_at=0 WHERE id=?", f->zName);
  if( zReq && zSql
   && sqlite3_prepare_v2(f->db, zSql, -1, &pUpd, 0)==SQLITE_OK ){
    sqlite3_bind_text(pUpd, 1, zReq, -1, SQLITE_STATIC);
    sqlite3_bind_text(pUpd, 2, zId, -1, SQLITE_STATIC);
    sqlite3_bind_int64(pUpd, 3, iRow);
    flush_step(f, pUpd);
  }
  sqlite3_finalize(pUpd);
  sqlite3_free(zSql);
  sqlite3_free(zReq);
}

/* Whether a bulk item's error says the customer already exists. */
static int is_conflict(const char *z){
  static const char *const azWord[] = { "exist", "duplicate", "conflict",
                                        "409", 0 };
  int i;
  char *zLower = sqlite3_mprintf("%s", z ? z : "");
  int bHit = 0;
  if( zLower==0 ) return 0;
  for(i=0; zLower[i]; i++){
    if( zLower[i]>='A' && zLower[i]<='Z' ) zLower[i] += 'a'-'A';
  }
  for(i=0; azWord[i] && !bHit; i++) bHit = strstr(zLower, azWord[i])!=0;
  sqlite3_free(zLower);
  return bHit;
}

/* Sleep s seconds, or less so as to wake by the deadline. */
static void sleep_until_deadline(Flush *f, double s){
  double tLeft = f->tDeadline - now_seconds();
  kustomer_sleep(s < tLeft ? s : tLeft);
}

/* Poll a bulk job until it completes; its batches response, or NULL,
** and then *pbStopped says whether the flush's seconds ran out first. */
static cJSON *bulk_wait(Flush *f, const char *zJob, int *pbStopped){
  char *zUrl = sqlite3_mprintf("%s/v1/bulk/%s", f->pSet->zBase, zJob);
  double tPoll = f->cfg.rateWindow/120.0;
  double tGiveUp = now_seconds() + f->cfg.rateWindow*10;
  cJSON *pOut = 0;
  int bDone = 0, bClipped = tGiveUp > f->tDeadline;
  *pbStopped = 0;
  if( tPoll<0.02 ) tPoll = 0.02;
  if( tPoll>2 ) tPoll = 2;
  if( bClipped ) tGiveUp = f->tDeadline;
  while( zUrl && now_seconds()<tGiveUp && f->zFatal==0 ){
    KHttpResp resp;
    cJSON *pDoc = 0;
    const cJSON *pStatus;
    char *zErr = 0;
    if( flush_request(f, "GET", zUrl, 0, 0, &resp) ){
      *pbStopped = 1;
      break;
    }
    /* 5xx, 429 and dropped connections: poll again. */
    if( resp.eNet==0 && resp.status==200 ){
      pDoc = kustomer_json_parse(resp.zBody, resp.nBody, &zErr);
      sqlite3_free(zErr);
      pStatus = kustomer_json_member(kustomer_json_member(
                    kustomer_json_member(pDoc, "data"), "attributes"),
                    "status");
      if( pStatus==0 ){
        pStatus = kustomer_json_member(kustomer_json_member(pDoc, "data"),
                                       "status");
      }
      bDone = cJSON_IsString(pStatus)
           && (strcmp(pStatus->valuestring, "complete")==0
               || strcmp(pStatus->valuestring, "completed")==0
               || strcmp(pStatus->valuestring, "failed")==0);
      cJSON_Delete(pDoc);
    }else if( resp.eNet==0 && (resp.status==401 || resp.status==403) ){
      flush_fatal(f, sqlite3_mprintf("kustomer_flush(): Kustomer refused "
                  "the API key (HTTP %d)", (int)resp.status));
    }
    kustomer_http_resp_clear(&resp);
    if( bDone ){
      char *zBatches = sqlite3_mprintf("%s/batches", zUrl);
      int nTry;
      for(nTry=0; zBatches && pOut==0 && nTry<f->cfg.maxAttempts
                  && f->zFatal==0; nTry++){
        if( flush_request(f, "GET", zBatches, 0, 0, &resp) ){
          *pbStopped = 1;
          break;
        }
        if( resp.eNet==0 && resp.status==200 ){
          pOut = kustomer_json_parse(resp.zBody, resp.nBody, &zErr);
          sqlite3_free(zErr);
        }
        kustomer_http_resp_clear(&resp);
        if( pOut==0 ) sleep_until_deadline(f, tPoll);
      }
      sqlite3_free(zBatches);
      break;
    }
    sleep_until_deadline(f, tPoll);
    if( tPoll < f->cfg.rateWindow/10.0 ) tPoll *= 1.5;
  }
  if( !bDone && bClipped && f->zFatal==0 && now_seconds()>=tGiveUp ){
    *pbStopped = 1;
  }
  sqlite3_free(zUrl);
  return pOut;
}

/* Apply one bulk result item to its row. */
static void bulk_item(Flush *f, const cJSON *pItem, int *pbHandled,
                      sqlite3_int64 *aRow, int nRow){
  const cJSON *pRef = kustomer_json_member(pItem, "_clientRef");
  const cJSON *pStatus = kustomer_json_member(pItem, "status");
  const cJSON *pId = kustomer_json_member(pItem, "objectId");
  const cJSON *pErr = kustomer_json_member(pItem, "error");
  sqlite3_int64 iRow;
  int i;
  if( !cJSON_IsString(pRef) ) return;
  iRow = atoll(pRef->valuestring);
  for(i=0; i<nRow && aRow[i]!=iRow; i++){}
  if( i>=nRow || pbHandled[i] ) return;
  pbHandled[i] = 1;
  if( cJSON_IsString(pStatus) && strcmp(pStatus->valuestring, "error")!=0
   && cJSON_IsString(pId) ){
    row_sent(f, iRow, strcmp(pStatus->valuestring, "created")==0 ? 201 : 200,
             pId->valuestring);
    return;
  }else{
    sqlite3_str *p = sqlite3_str_new(0);
    char *zMsg, *zFound = 0;
    int bFailed = 0;
    if( cJSON_IsString(pErr) ){
      sqlite3_str_appendall(p, pErr->valuestring);
    }else if( pErr ){
      kustomer_json_value(p, pErr);
    }else{
      sqlite3_str_appendall(p, "bulk item failed");
    }
    zMsg = sqlite3_str_finish(p);
    if( is_conflict(zMsg) ) zFound = customer_lookup(f, iRow, &bFailed);
    if( zFound ){
      row_to_update(f, iRow, zFound);
    }else if( bFailed ){
      row_retry(f, iRow, row_attempts(f, iRow), bFailed==1, 0,
                bFailed==1 ? "the customer exists but its lookup failed"
                           : "not sent: the flush stopped");
    }else{
      row_failed(f, iRow, 400, zMsg ? zMsg : "bulk item failed");
    }
    sqlite3_free(zFound);
    sqlite3_free(zMsg);
  }
}

/*
** Create up to BULK_SIZE due customers with one bulk request.  Returns the
** number of rows taken (0: none were due).
*/
static int bulk_round(Flush *f){
  sqlite3_int64 aRow[BULK_SIZE];
  int abHandled[BULK_SIZE];
  char *azExt[BULK_SIZE];
  sqlite3_str *pBody;
  char *zBody = 0, *zUrl = 0;
  int nRow = 0, nBody, i;
  KHttpResp resp;

  /* The limiter's wait (a 429's reset, say) is the main loop's to make,
  ** within the deadline. */
  if( limiter_wait(f, now_seconds())>0 ) return 0;
  memset(azExt, 0, sizeof(azExt));
  pBody = sqlite3_str_new(0);
  sqlite3_str_appendchar(pBody, 1, '[');
  sqlite3_bind_double(f->pDueCreate, 1, now_seconds());
  flush_begin(f);
  while( nRow<BULK_SIZE && f->rc==SQLITE_OK
      && sqlite3_step(f->pDueCreate)==SQLITE_ROW ){
    sqlite3_int64 iRow = sqlite3_column_int64(f->pDueCreate, 0);
    const char *zReq = (const char*)sqlite3_column_text(f->pDueCreate, 1);
    Envelope e;
    char *zErr = envelope_parse(zReq, &e);
    char *zExt = 0;
    const char *zKnown = 0;
    cJSON *pCust;
    if( zErr ){
      row_failed(f, iRow, 0, zErr);
      sqlite3_free(zErr);
      continue;
    }
    pCust = cJSON_Parse(e.zBody ? e.zBody : "{}");
    {
      const cJSON *pExt = kustomer_json_member(pCust, "externalId");
      if( pExt ){
        sqlite3_str *pK = sqlite3_str_new(0);
        sqlite3_str_appendall(pK, "externalId=");
        kustomer_path_segment_value(pK, pExt);
        zExt = sqlite3_str_finish(pK);
      }
    }
    cJSON_Delete(pCust);
    if( zExt ) zKnown = cache_get(f, zExt);
    if( zKnown && zKnown[0] ){
      /* Created earlier in this flush: update it instead. */
      row_to_update(f, iRow, zKnown);
      sqlite3_free(zExt);
      envelope_clear(&e);
      continue;
    }
    for(i=0; zExt && i<nRow; i++){
      if( azExt[i] && strcmp(azExt[i], zExt)==0 ) break;
    }
    if( zExt && i<nRow ){
      /* Same customer twice in one job: the later waits for the next. */
      sqlite3_free(zExt);
      envelope_clear(&e);
      continue;
    }
    if( nRow ) sqlite3_str_appendchar(pBody, 1, ',');
    if( e.zBody && e.nBody>=2 && e.zBody[0]=='{' ){
      sqlite3_str_append(pBody, e.zBody, e.nBody-1);
      sqlite3_str_appendf(pBody, "%s\"_clientRef\":\"%lld\"}",
                          e.nBody>2 ? "," : "", iRow);
    }else{
      sqlite3_str_appendf(pBody, "{\"_clientRef\":\"%lld\"}", iRow);
    }
    azExt[nRow] = zExt;
    aRow[nRow] = iRow;
    abHandled[nRow] = 0;
    nRow++;
    envelope_clear(&e);
  }
  sqlite3_reset(f->pDueCreate);
  for(i=0; i<nRow; i++){
    sqlite3_bind_int64(f->pSending, 1, aRow[i]);
    flush_step(f, f->pSending);
  }
  flush_commit(f);
  sqlite3_str_appendchar(pBody, 1, ']');
  nBody = sqlite3_str_length(pBody);
  zBody = sqlite3_str_finish(pBody);
  if( nRow==0 || zBody==0 || f->rc ) goto done;

  zUrl = sqlite3_mprintf("%s/v1/customers/bulk", f->pSet->zBase);
  if( zUrl==0 || flush_request(f, "POST", zUrl, zBody, nBody, &resp) ){
    flush_begin(f);
    for(i=0; i<nRow; i++){
      row_retry(f, aRow[i], 0, 0, 0, "not sent: the flush stopped");
    }
    flush_commit(f);
    goto done;
  }
  flush_begin(f);
  if( resp.eNet==0 && resp.status>=200 && resp.status<300 ){
    char *zJob = response_id(&resp);
    cJSON *pBatches;
    int bStopped = 0;
    flush_commit(f);
    pBatches = zJob ? bulk_wait(f, zJob, &bStopped) : 0;
    flush_begin(f);
    if( pBatches ){
      const cJSON *pData = kustomer_json_member(pBatches, "data");
      const cJSON *pB;
      for(pB = cJSON_IsArray(pData) ? pData->child : 0; pB; pB=pB->next){
        const cJSON *pAttr = kustomer_json_member(pB, "attributes");
        const cJSON *pRes = kustomer_json_member(pAttr ? pAttr : pB,
                                                 "results");
        const cJSON *pItem;
        for(pItem = cJSON_IsArray(pRes) ? pRes->child : 0; pItem;
            pItem=pItem->next){
          bulk_item(f, pItem, abHandled, aRow, nRow);
          if( cJSON_IsString(kustomer_json_member(pItem, "objectId")) ){
            for(i=0; i<nRow; i++){
              const cJSON *pRef = kustomer_json_member(pItem, "_clientRef");
              if( azExt[i] && cJSON_IsString(pRef)
               && atoll(pRef->valuestring)==aRow[i] ){
                cache_put(f, azExt[i], kustomer_json_member(pItem,
                          "objectId")->valuestring);
              }
            }
          }
        }
      }
      cJSON_Delete(pBatches);
    }
    for(i=0; i<nRow; i++){
      if( abHandled[i] ){
        /* done */
      }else if( bStopped ){
        /* Kustomer may yet create it: sent again, it is then found as
        ** existing and updated. */
        row_retry(f, aRow[i], row_attempts(f, aRow[i]), 0, 0,
                  "bulk job unfinished when the flush stopped");
      }else{
        row_retry(f, aRow[i], row_attempts(f, aRow[i]), 1, 0,
                  zJob ? "bulk job gave no result for this row"
                       : "bulk response had no job id");
      }
    }
    sqlite3_free(zJob);
  }else{
    /* The whole request failed: each row takes the outcome, so the same
    ** retry, backoff and failure rules apply as for single requests. */
    for(i=0; i<nRow; i++) row_outcome(f, aRow[i], &resp, 1);
  }
  flush_commit(f);
  kustomer_http_resp_clear(&resp);

done:
  for(i=0; i<nRow; i++) sqlite3_free(azExt[i]);
  sqlite3_free(zBody);
  sqlite3_free(zUrl);
  return nRow;
}

/* ---- Progress ------------------------------------------------------- */

static void progress_draw(Flush *f, int bLast){
  double t = now_seconds() - f->tStart;
  int nDone = f->nDelivered + f->nFailed;
  int nWidth = 30, nFill, i;
  char aBar[64];
  double rate = t>0 ? f->nRequests/t : 0;
  double eta = (nDone>0 && f->nTotal>nDone) ? t*(f->nTotal-nDone)/nDone : 0;
  if( !f->bProgress ) return;
  nFill = f->nTotal>0 ? (int)((double)nWidth*nDone/f->nTotal) : nWidth;
  if( nFill>nWidth ) nFill = nWidth;
  for(i=0; i<nWidth; i++) aBar[i] = i<nFill ? '#' : '.';
  aBar[nWidth] = 0;
  fprintf(stderr, "\r[%s] %d/%d  %d sent  %d failed  %.1f req/s  ETA %ds ",
          aBar, nDone, f->nTotal, f->nDelivered, f->nFailed, rate, (int)eta);
  if( bLast ) fputc('\n', stderr);
  fflush(stderr);
}

/* ---- The SQL function ------------------------------------------------ */

static int count_status(Flush *f, const char *zStatus){
  sqlite3_stmt *p = 0;
  char *zSql = sqlite3_mprintf("SELECT count(*) FROM \"%w_data\" WHERE "
                               "status=%Q", f->zName, zStatus);
  int n = 0;
  if( zSql && sqlite3_prepare_v2(f->db, zSql, -1, &p, 0)==SQLITE_OK
   && sqlite3_step(p)==SQLITE_ROW ){
    n = sqlite3_column_int(p, 0);
  }
  sqlite3_finalize(p);
  sqlite3_free(zSql);
  return n;
}

static int flush_statements(Flush *f){
  int rc;
  rc = flush_prepare(f, &f->pDue,
      "SELECT id FROM \"%w_data\" WHERE status='pending' AND next_at<=?1"
      " AND NOT (json_extract(request,'$.method')='POST'"
      "      AND json_extract(request,'$.endpoint') LIKE '%%/v1/customers')"
      " ORDER BY id LIMIT 256");
  if( rc==SQLITE_OK ) rc = flush_prepare(f, &f->pDueCreate,
      "SELECT id, request FROM \"%w_data\" WHERE status='pending'"
      " AND next_at<=?1 AND json_extract(request,'$.method')='POST'"
      " AND json_extract(request,'$.endpoint') LIKE '%%/v1/customers'"
      " ORDER BY id LIMIT 200");
  if( rc==SQLITE_OK ) rc = flush_prepare(f, &f->pSending,
      "UPDATE \"%w_data\" SET status='sending', attempts=attempts+1"
      " WHERE id=?1");
  if( rc==SQLITE_OK ) rc = flush_prepare(f, &f->pSendLog,
      "INSERT INTO \"%w_sends\"(t) VALUES(?1)");
  if( rc==SQLITE_OK ) rc = flush_prepare(f, &f->pSent,
      "UPDATE \"%w_data\" SET status='sent', http_status=?1,"
      " kustomer_id=coalesce(?2, kustomer_id), error=NULL,"
      " sent_at=strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ','now') WHERE id=?3");
  if( rc==SQLITE_OK ) rc = flush_prepare(f, &f->pRetry,
      "UPDATE \"%w_data\" SET status='pending', next_at=?1,"
      " attempts=attempts-?2, http_status=?3, error=?4 WHERE id=?5");
  if( rc==SQLITE_OK ) rc = flush_prepare(f, &f->pFailed,
      "UPDATE \"%w_data\" SET status='failed', http_status=?1, error=?2"
      " WHERE id=?3");
  if( rc==SQLITE_OK ) rc = flush_prepare(f, &f->pRequest,
      "SELECT request, attempts FROM \"%w_data\" WHERE id=?1");
  if( rc==SQLITE_OK ) rc = flush_prepare(f, &f->pEvent,
      "SELECT event FROM \"%w_data\" WHERE id=?1");
  return rc;
}

static void flush_free(Flush *f){
  int i;
  sqlite3_finalize(f->pDue);
  sqlite3_finalize(f->pDueCreate);
  sqlite3_finalize(f->pSending);
  sqlite3_finalize(f->pSendLog);
  sqlite3_finalize(f->pSent);
  sqlite3_finalize(f->pRetry);
  sqlite3_finalize(f->pFailed);
  sqlite3_finalize(f->pRequest);
  sqlite3_finalize(f->pEvent);
  kustomer_multi_free(f->pMulti);
  if( f->pHttp ) kustomer_http_unref(f->pHttp);
  if( f->zAuth ){
    memset(f->zAuth, 0, strlen(f->zAuth));
    sqlite3_free(f->zAuth);
  }
  for(i=0; i<f->nCache; i++){
    sqlite3_free(f->azCacheKey[i]);
    sqlite3_free(f->azCacheVal[i]);
  }
  sqlite3_free(f->azCacheKey);
  sqlite3_free(f->azCacheVal);
  sqlite3_free(f->aSent);
  kustomer_settings_free(f->pSet);
  kustomer_outbox_config_clear(&f->cfg);
  sqlite3_free(f->zFatal);
}

/* Whether due or waiting work remains; sets *ptNext to the next due time. */
static int work_left(Flush *f, double *ptNext){
  sqlite3_stmt *p = 0;
  char *zSql = sqlite3_mprintf("SELECT min(next_at) FROM \"%w_data\""
                               " WHERE status='pending'", f->zName);
  int bLeft = 0;
  if( zSql && sqlite3_prepare_v2(f->db, zSql, -1, &p, 0)==SQLITE_OK
   && sqlite3_step(p)==SQLITE_ROW
   && sqlite3_column_type(p, 0)!=SQLITE_NULL ){
    bLeft = 1;
    *ptNext = sqlite3_column_double(p, 0);
  }
  sqlite3_finalize(p);
  sqlite3_free(zSql);
  return bLeft;
}

static void flush_func(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  Flush f;
  char *zErr = 0, *zSql;
  const char *zKey;
  double tLimit = -1;
  sqlite3_str *pOut;
  int rc, bOther = 0;

  memset(&f, 0, sizeof(f));
  f.db = sqlite3_context_db_handle(ctx);
  if( sqlite3_value_type(argv[0])!=SQLITE_TEXT ){
    sqlite3_result_error(ctx, "kustomer_flush(): argument 1 must be the "
                         "name of a kustomer_outbox table", -1);
    return;
  }
  f.zName = (const char*)sqlite3_value_text(argv[0]);
  if( argc>1 && sqlite3_value_type(argv[1])!=SQLITE_NULL ){
    tLimit = sqlite3_value_double(argv[1]);
    if( !(tLimit>0) ){
      sqlite3_result_error(ctx, "kustomer_flush(): argument 2 (seconds) "
                           "must be a positive number", -1);
      return;
    }
  }
  if( !sqlite3_get_autocommit(f.db) ){
    sqlite3_result_error(ctx, "kustomer_flush(): cannot run inside a "
                         "transaction: what is sent cannot be rolled back",
                         -1);
    return;
  }
  {
    /* A statement that writes (INSERT ... SELECT kustomer_flush(...)) holds
    ** its transaction open until it ends: nothing could be committed. */
    sqlite3_stmt *pStmt = 0;
    while( (pStmt = sqlite3_next_stmt(f.db, pStmt))!=0 ){
      if( sqlite3_stmt_busy(pStmt) && !sqlite3_stmt_readonly(pStmt) ){
        sqlite3_result_error(ctx, "kustomer_flush(): cannot run inside a "
                             "statement that writes: call it from a SELECT "
                             "of its own", -1);
        return;
      }
    }
  }
  rc = kustomer_outbox_config_read(f.db, "main", f.zName, &f.cfg, &zErr);
  if( rc ){
    if( zErr ){
      char *zMsg = sqlite3_mprintf("kustomer_flush(): %s", zErr);
      sqlite3_result_error(ctx, zMsg ? zMsg : "out of memory", -1);
      sqlite3_free(zMsg);
      sqlite3_free(zErr);
    }else{
      sqlite3_result_error_nomem(ctx);
    }
    flush_free(&f);
    return;
  }
  if( argc>2 && sqlite3_value_type(argv[2])==SQLITE_TEXT ){
    cJSON *pOpt = cJSON_Parse((const char*)sqlite3_value_text(argv[2]));
    const cJSON *pProgress = kustomer_json_member(pOpt, "progress");
    if( pProgress ) f.cfg.progress = kustomer_js_truthy(pProgress);
    cJSON_Delete(pOpt);
  }
  f.bProgress = f.cfg.progress && isatty(2);
  rc = kustomer_settings_parse(f.cfg.zSettings, (int)strlen(f.cfg.zSettings),
                               &f.pSet, &zErr);
  if( rc ){
    sqlite3_free(zErr);
    sqlite3_result_error_code(ctx, rc);
    flush_free(&f);
    return;
  }
  zKey = getenv(f.pSet->zKeyEnv);
  if( zKey==0 || zKey[0]==0 ){
    char *zMsg = sqlite3_mprintf("kustomer_flush(): the environment variable "
                                 "%s named by apiKeyEnv is not set",
                                 f.pSet->zKeyEnv);
    sqlite3_result_error(ctx, zMsg ? zMsg : "out of memory", -1);
    sqlite3_free(zMsg);
    flush_free(&f);
    return;
  }
  f.zAuth = sqlite3_mprintf("Bearer %s", zKey);
  /* Requests reach Kustomer a little after they start, not all equally
  ** late: the window is widened by half a second (under 1% of Kustomer's
  ** minute, less than a request's worst delay on a busy network). */
  f.tWindow = f.cfg.rateWindow + 0.5;
  f.nAllowed = (int)floor(f.cfg.rateLimit*f.cfg.budget);
  if( f.nAllowed<1 ) f.nAllowed = 1;
  f.nSentAlloc = f.nAllowed + 2*MAX_INFLIGHT;
  f.aSent = sqlite3_malloc64(sizeof(double)*(sqlite3_uint64)f.nSentAlloc);
  if( f.zAuth==0 || f.aSent==0
   || kustomer_multi_new(&f.pMulti, f.cfg.concurrency)
   || kustomer_http_new(&f.pHttp)
   || flush_statements(&f) ){
    if( f.rc==SQLITE_OK && sqlite3_errcode(f.db)!=SQLITE_OK
     && sqlite3_errcode(f.db)!=SQLITE_NOMEM ){
      char *zMsg = sqlite3_mprintf("kustomer_flush(): %s",
                                   sqlite3_errmsg(f.db));
      sqlite3_result_error(ctx, zMsg ? zMsg : "out of memory", -1);
      sqlite3_free(zMsg);
    }else{
      sqlite3_result_error_nomem(ctx);
    }
    flush_free(&f);
    return;
  }
  f.tStart = now_seconds();
  f.tDeadline = tLimit>0 ? f.tStart + tLimit : 1e300;
  /* Through an integer: milliseconds since 1970 overflow an unsigned,
  ** and converting an out-of-range double to one is undefined. */
  srand((unsigned)(sqlite3_int64)(f.tStart*1000));

  /* One flush at a time: another one's 'sending' rows are in flight.  Its
  ** process id is kept in <name>_config while it runs; a killed flush
  ** leaves a dead one behind. */
  flush_begin(&f);
  {
    sqlite3_stmt *p = 0;
    zSql = sqlite3_mprintf("SELECT v FROM \"%w_config\" WHERE k='flushing'",
                           f.zName);
    if( zSql && sqlite3_prepare_v2(f.db, zSql, -1, &p, 0)==SQLITE_OK
     && sqlite3_step(p)==SQLITE_ROW ){
      int pid = sqlite3_column_int(p, 0);
      if( pid>0 && pid!=(int)getpid() && kill((pid_t)pid, 0)==0 ){
        flush_fatal(&f, sqlite3_mprintf("kustomer_flush(): %s is being "
                    "flushed by process %d", f.zName, pid));
        bOther = 1;
      }
    }
    sqlite3_finalize(p);
    sqlite3_free(zSql);
  }
  if( f.zFatal==0 ){
    /* A killed flush left 'sending' rows: they go back to pending (their
    ** requests may or may not have arrived).  Old sends leave the window. */
    zSql = sqlite3_mprintf(
        "INSERT OR REPLACE INTO \"%w_config\"(k, v) VALUES('flushing', %d);"
        "UPDATE \"%w_data\" SET status='pending' WHERE status='sending';"
        "DELETE FROM \"%w_sends\" WHERE t < %.17g;",
        f.zName, (int)getpid(), f.zName, f.zName,
        f.tStart - f.cfg.rateWindow);
    if( zSql ) flush_exec(&f, zSql);
    sqlite3_free(zSql);
  }
  flush_commit(&f);
  {
    sqlite3_stmt *p = 0;
    zSql = sqlite3_mprintf("SELECT t FROM \"%w_sends\" ORDER BY t",
                           f.zName);
    if( zSql && sqlite3_prepare_v2(f.db, zSql, -1, &p, 0)==SQLITE_OK ){
      while( sqlite3_step(p)==SQLITE_ROW ){
        double t = sqlite3_column_double(p, 0);
        if( f.nSent<f.nSentAlloc ){
          f.aSent[f.nSent++] = t;
        }else{
          memmove(f.aSent, &f.aSent[1], sizeof(double)*(f.nSentAlloc-1));
          f.aSent[f.nSentAlloc-1] = t;
        }
      }
    }
    sqlite3_finalize(p);
    sqlite3_free(zSql);
  }
  f.nTotal = count_status(&f, "pending");

  /* The delivery loop. */
  while( f.zFatal==0 && f.rc==SQLITE_OK ){
    double t = now_seconds(), tNext = 0;
    int nRunning = kustomer_multi_running(f.pMulti);
    if( t>=f.tDeadline && nRunning==0 ) break;
    if( nRunning==0 && t<f.tDeadline && bulk_round(&f)>0 ){
      progress_draw(&f, 0);
      continue;
    }
    pipeline_start(&f);
    nRunning = kustomer_multi_running(f.pMulti);
    if( nRunning ){
      pipeline_collect(&f, 50);
      progress_draw(&f, 0);
      continue;
    }
    /* Nothing in flight: wait for the limiter or for retries that are due
    ** later, or stop when nothing is left. */
    if( !work_left(&f, &tNext) ) break;
    {
      double w = limiter_wait(&f, t);
      double tWake = tNext > t + w ? tNext : t + w;
      if( tWake >= f.tDeadline ) break;
      kustomer_sleep(tWake - t > 0.25 ? 0.25 : tWake - t);
    }
  }
  /* Requests in flight when the flush stops are waited for. */
  while( kustomer_multi_running(f.pMulti) && f.rc==SQLITE_OK ){
    pipeline_collect(&f, 100);
  }
  /* Never leave the caller's connection inside a transaction. */
  while( f.nTxn>0 ) flush_commit(&f);
  if( !bOther ){
    zSql = sqlite3_mprintf("DELETE FROM \"%w_config\" WHERE k='flushing'",
                           f.zName);
    flush_begin(&f);
    if( zSql ) sqlite3_exec(f.db, zSql, 0, 0, 0);
    flush_commit(&f);
    sqlite3_free(zSql);
  }
  progress_draw(&f, 1);

  if( f.zFatal ){
    sqlite3_result_error(ctx, f.zFatal, -1);
  }else if( f.rc ){
    sqlite3_result_error_code(ctx, f.rc);
  }else{
    pOut = sqlite3_str_new(0);
    sqlite3_str_appendf(pOut, "{\"sent\":%d,\"failed\":%d,\"invalid\":%d,"
                        "\"pending\":%d,\"requests\":%d,\"seconds\":%.3f}",
                        f.nDelivered, f.nFailed, count_status(&f, "invalid"),
                        count_status(&f, "pending"), f.nRequests,
                        now_seconds() - f.tStart);
    {
      int n = sqlite3_str_length(pOut);
      char *z = sqlite3_str_finish(pOut);
      if( z ){
        sqlite3_result_text(ctx, z, n, sqlite3_free);
        sqlite3_result_subtype(ctx, KUSTOMER_JSON_SUBTYPE);
      }else{
        sqlite3_result_error_nomem(ctx);
      }
    }
  }
  flush_free(&f);
}

int kustomer_register_flush(sqlite3 *db){
  int rc = sqlite3_create_function(db, "kustomer_flush", 1,
               SQLITE_UTF8 | SQLITE_DIRECTONLY | SQLITE_RESULT_SUBTYPE, 0,
               flush_func, 0, 0);
  if( rc==SQLITE_OK ){
    rc = sqlite3_create_function(db, "kustomer_flush", 2,
             SQLITE_UTF8 | SQLITE_DIRECTONLY | SQLITE_RESULT_SUBTYPE, 0,
             flush_func, 0, 0);
  }
  if( rc==SQLITE_OK ){
    rc = sqlite3_create_function(db, "kustomer_flush", 3,
             SQLITE_UTF8 | SQLITE_DIRECTONLY | SQLITE_RESULT_SUBTYPE, 0,
             flush_func, 0, 0);
  }
  return rc;
}
