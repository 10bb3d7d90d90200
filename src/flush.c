/*
** kustomer_flush(outbox [, seconds [, options]]): deliver an outbox's
** pending rows to Kustomer and return a JSON summary
**
**   {"sent":..,"failed":..,"invalid":..,"skipped":..,"pending":..,
**    "requests":..,"resends":..,"seconds":..[,"next_request_in":..]}
**
** (sent and failed: by this flush; invalid, skipped and pending: left in
** the table;
** requests: every request sent, each of libcurl's own resends included,
** as the server counts them; resends: those).
**
** Delivery rules:
** - never more than rate_limit*budget requests start in any rate_window
**   (the window's requests are recorded in the file's ledger,
**   main.kustomer_requests, with the sync's, so the limit holds across
**   flushes, pulls and processes); x-ratelimit-remaining/reset are obeyed
**   and a 429 waits for the reset without using up an attempt;
** - 5xx, 408, timeouts and dropped connections are retried with
**   exponential backoff and jitter, up to max_attempts, then 'failed';
** - other 4xx are 'failed' at once with Kustomer's message;
** - 401/403 stop the flush with an SQL error; the rows stay pending;
** - customers are created 100 at a time through POST /v1/customers/bulk
**   (_clientRef = row id), and those whose id the file's map
**   (main.kustomer_customers, idmap.c) knows are updated 100 at a time
**   through PUT /v1/customers/bulk; a job's batches are read as they
**   complete and each item's result is written to its row; an item
**   Kustomer refuses because the customer exists is looked up and updated
**   instead, an update of a customer Kustomer no longer has is created
**   again;
** - tracking events go one per request, several in flight at once on
**   kept-alive connections.
**
** Crash safety: a row is committed as 'sending' before its request starts
** and committed with its outcome after; a flush that was killed leaves
** 'sending' rows, which the next flush puts back to pending.  So a row can
** be sent twice only if it was in flight at the kill.  The flush refuses to
** run inside a transaction: what is sent cannot be rolled back.
**
** The flush runs in four steps (flush_func): open (arguments, the
** outbox's configuration, the key), claim (the outbox for this process,
** the rows a killed flush left, the rate window so far), run (the delivery
** loop) and the summary, from one exit.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

#define MAX_INFLIGHT 64
#define BULK_SIZE    100
#define QUEUE_SIZE   256

typedef struct Flush Flush;

/* What a request in flight is for. */
typedef struct InFlight InFlight;
struct InFlight {
  sqlite3_int64 iRow;       /* its row; 0 for a free slot */
  int bCustomer;            /* a customer request: the reply has its id */
  Flush *pFlush;
  sqlite3_int64 iLedger;    /* its start in the ledger */
  double tStarted;          /* and when that was recorded */
};

/* One bulk job: its rows, their customer keys, what became of them. */
typedef struct Bulk Bulk;
struct Bulk {
  sqlite3_int64 aRow[BULK_SIZE];
  char *azKey[BULK_SIZE];   /* their customer keys */
  char *azId[BULK_SIZE];    /* an update's customer id, else NULL */
  int abHandled[BULK_SIZE];
  int nRow;
  sqlite3_str *pBody;       /* the JSON array of items */
};


/* A bulk job: up to BULK_SIZE customer creations sent together, then
** polled alongside the pipeline's requests. */
#define JOB_POST    0       /* to be sent (its rows are 'sending') */
#define JOB_POLL    1       /* Kustomer has it: GET /v1/bulk/{id}/batches,
                            ** until every batch has come */
#define MAX_JOBS    8
#define JOB_TAG     1000    /* the tag of job i's request: JOB_TAG + i */
typedef struct Job Job;
struct Job {
  int bUsed;
  int bPut;                 /* updates (PUT), else creations */
  int ePhase;               /* JOB_* */
  int nBatches;             /* batches Kustomer made of it (0: unknown) */
  Bulk b;                   /* its rows */
  int bRows;                /* b holds them (a job an earlier flush left
                            ** reads them when its results come) */
  char *zId;                /* Kustomer's id, once it has the job */
  double tNext;             /* kustomer_clock() of its next request */
  double tPoll;             /* the wait between polls, growing */
  double tGiveUp;
  int nTries;               /* batches requests that failed */
  int bFlying;              /* its request is out */
  InFlight fly;
};

/* Lookup results of one flush: "email=x" -> customer id ("": not found). */
typedef struct Cache Cache;
struct Cache {
  char **azKey, **azVal;
  int n, nAlloc;
};

struct Flush {
  sqlite3 *db;
  const char *zName;
  KOutboxStore store;
  KOutboxConfig cfg;
  KSettings *pSet;
  char *zAuth;              /* "Bearer <key>", wiped when done */
  KHttp *pHttp;             /* for the bulk flow's requests */
  KHttpMulti *pMulti;       /* for the pipeline's */
  KLedger *pLedger;         /* the file's request ledger */
  KLimiter lim;
  double tStart, tDeadline; /* kustomer_clock() */
  InFlight aFly[MAX_INFLIGHT];
  sqlite3_int64 aQueue[QUEUE_SIZE];   /* due rows fetched, not started */
  int nQueue, iQueue;
  Cache cache;
  KIdMap *pIds;             /* the file's customer ids */
  Job aJob[MAX_JOBS];
  int bPutFirst;            /* the next job tries updates first */
  double tCollect;          /* kustomer_clock() before which job_new() does
                            ** not look for rows again: it found none */
  /* summary */
  int nDelivered, nFailed, nRequests;
  int bProgress;
  int nTotal;               /* pending rows when the flush started */
  char *zFatal;             /* stops the flush: an SQL error */
  int rc;                   /* first SQLite error */
  int nTxn;                 /* depth of flush_begin() */
  int bTxnOpen;             /* its BEGIN succeeded */
  int bClaimed;             /* the outbox holds this process's id */
  int nResends;             /* requests libcurl sent again by itself */
};

/* ---- Errors and transactions -------------------------------------------- */

/* Stop the flush with an SQL error (zMsg from sqlite3_mprintf, owned; the
** key redacted).  The first one wins. */
static void flush_fatal(Flush *f, char *zMsg){
  if( f->zFatal==0 ){
    f->zFatal = kustomer_api_redact(zMsg, f->zAuth);
    if( f->zFatal==0 ) f->rc = SQLITE_NOMEM;
  }else{
    sqlite3_free(zMsg);
  }
}

/* Keep the first SQLite failure, with the connection's message. */
static void flush_sql_error(Flush *f, int rc){
  if( f->rc==SQLITE_OK && rc!=SQLITE_OK ){
    f->rc = rc;
    if( rc!=SQLITE_NOMEM ){
      flush_fatal(f, sqlite3_mprintf("kustomer_flush(): %s",
                                     sqlite3_errmsg(f->db)));
    }
  }
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
    flush_sql_error(f, rc);
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
    flush_sql_error(f, rc);
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

/* The outbox's statement eStmt, or NULL after a failure (kept in f). */
static sqlite3_stmt *flush_stmt(Flush *f, int eStmt){
  sqlite3_stmt *p = 0;
  int rc = kustomer_outbox_stmt(&f->store, eStmt, &p);
  if( rc ){
    flush_sql_error(f, rc);
    return 0;
  }
  return p;
}

/* Step a statement that writes, once; failures are kept in f. */
static void flush_step(Flush *f, sqlite3_stmt *p){
  int rc;
  if( p==0 ) return;
  rc = sqlite3_step(p);
  if( rc!=SQLITE_DONE && rc!=SQLITE_ROW ) flush_sql_error(f, rc);
  sqlite3_reset(p);
}

/* ---- The rate limit ----------------------------------------------------- */

/* Record the start of n requests now in the file's ledger, so that the
** next flush or pull, in any process, counts them too. */
static void limiter_start(Flush *f, int n){
  int i;
  for(i=0; i<n; i++){
    flush_sql_error(f, kustomer_limiter_add(&f->lim, 0));
    f->nRequests++;
  }
}

/* libcurl is about to send a request.  The first time, late (its
** connection took time to come up), its start moves to now if the window
** has room there.  Again by itself (its kept-alive connection died before
** a reply), it is a start like any other, if the window has room.  Else
** it is kept back, and the row's own retry (which waits for room) takes
** over. */
static int flush_send(void *pArg, int iAttempt){
  InFlight *pF = (InFlight*)pArg;
  Flush *f = pF->pFlush;
  int bRefuse, nTxn;
  if( f->rc ) return 1;
  /* what it writes goes in a transaction of the flush's own, as all else */
  nTxn = f->nTxn;
  if( nTxn==0 ) flush_begin(f);
  if( iAttempt==0 ){
    bRefuse = kustomer_limiter_sent(&f->lim, pF->iLedger, pF->tStarted, 0);
  }else{
    bRefuse = kustomer_limiter_available(&f->lim, 0, 0)<=0;
    if( !bRefuse ){
      limiter_start(f, 1);
      f->nResends++;
    }
  }
  if( nTxn==0 ) flush_commit(f);
  return bRefuse || f->rc;
}

/* Wait until a request may start, within the deadline.  0: go ahead. */
static int limiter_acquire(Flush *f){
  for(;;){
    double t = kustomer_clock();
    double w = kustomer_limiter_wait(&f->lim, 0);
    if( t>=f->tDeadline ) return 1;
    if( w<=0 ) return 0;
    if( t + w > f->tDeadline ) return 1;
    kustomer_sleep(w < 0.25 ? w : 0.25);
  }
}

/* ---- Row outcomes -------------------------------------------------------- */

static void row_sent(Flush *f, sqlite3_int64 iRow, int status,
                     const char *zKustomerId){
  sqlite3_stmt *p = flush_stmt(f, KOB_SENT);
  if( p==0 ) return;
  sqlite3_bind_int(p, 1, status);
  sqlite3_bind_text(p, 2, zKustomerId, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(p, 3, iRow);
  flush_step(f, p);
  f->nDelivered++;
}

static void row_failed(Flush *f, sqlite3_int64 iRow, int status,
                       const char *zError){
  sqlite3_stmt *p = flush_stmt(f, KOB_FAILED);
  if( p==0 ) return;
  if( status ) sqlite3_bind_int(p, 1, status);
  sqlite3_bind_text(p, 2, zError, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(p, 3, iRow);
  flush_step(f, p);
  f->nFailed++;
}

/*
** Put a row back to pending.  bCounted: the attempt counts (not for 429,
** nor for a flush stopped before the reply), and the row waits for the
** backoff of its attempts.  Past max_attempts the row is failed instead,
** with zError.
*/
static void row_retry(Flush *f, sqlite3_int64 iRow, int nAttempts,
                      int bCounted, int status, const char *zError){
  double base = f->cfg.rateWindow/60.0, wait = 0;
  sqlite3_stmt *p;
  if( bCounted && nAttempts>=f->cfg.maxAttempts ){
    char *zMsg = sqlite3_mprintf("%s (after %d attempts)", zError, nAttempts);
    row_failed(f, iRow, status, zMsg ? zMsg : zError);
    sqlite3_free(zMsg);
    return;
  }
  if( base<0.01 ) base = 0.01;
  if( bCounted ){
    wait = kustomer_api_backoff(nAttempts>0 ? nAttempts : 1, base,
                                f->cfg.rateWindow);
  }
  p = flush_stmt(f, KOB_RETRY);
  if( p==0 ) return;
  sqlite3_bind_double(p, 1, kustomer_wall() + wait);
  sqlite3_bind_int(p, 2, bCounted ? 0 : 1);
  if( status ) sqlite3_bind_int(p, 3, status);
  sqlite3_bind_text(p, 4, zError, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(p, 5, iRow);
  flush_step(f, p);
}

/* What the flush reads of a row. */
typedef struct Row Row;
struct Row {
  char *zRequest;
  int nAttempts;
  char *zEvent;
  int bCustomer;            /* kind create or update */
  char *zCustomerKey;
};

static void row_clear(Row *r){
  sqlite3_free(r->zRequest);
  sqlite3_free(r->zEvent);
  sqlite3_free(r->zCustomerKey);
  memset(r, 0, sizeof(*r));
}

/* Read a row (bEvent: its event too).  0 when it is not there. */
static int row_read(Flush *f, sqlite3_int64 iRow, int bEvent, Row *r){
  sqlite3_stmt *p = flush_stmt(f, KOB_ROW);
  int bFound = 0;
  memset(r, 0, sizeof(*r));
  if( p==0 ) return 0;
  sqlite3_bind_int64(p, 1, iRow);
  if( sqlite3_step(p)==SQLITE_ROW ){
    const char *zKind = (const char*)sqlite3_column_text(p, 3);
    bFound = 1;
    if( sqlite3_column_type(p, 0)==SQLITE_TEXT ){
      r->zRequest = sqlite3_mprintf("%s", sqlite3_column_text(p, 0));
    }
    r->nAttempts = sqlite3_column_int(p, 1);
    if( bEvent ) r->zEvent = sqlite3_mprintf("%s", sqlite3_column_text(p, 2));
    r->bCustomer = zKind && strcmp(zKind, "track")!=0;
    if( sqlite3_column_type(p, 4)==SQLITE_TEXT ){
      r->zCustomerKey = sqlite3_mprintf("%s", sqlite3_column_text(p, 4));
    }
  }
  sqlite3_reset(p);
  return bFound;
}

static int row_attempts(Flush *f, sqlite3_int64 iRow){
  Row r;
  int n;
  row_read(f, iRow, 0, &r);
  n = r.nAttempts;
  row_clear(&r);
  return n;
}

/* Kustomer's message in a response, the key redacted. */
static char *flush_message(Flush *f, const KHttpResp *pResp){
  return kustomer_api_redact(kustomer_api_message(pResp, 500), f->zAuth);
}

/*
** Decide a row's fate from the response to its request.  A refused key
** also stops the flush (f->zFatal).
*/
static void row_outcome(Flush *f, sqlite3_int64 iRow, const KHttpResp *r,
                        int bCustomer){
  int nAttempts = row_attempts(f, iRow);
  char *zMsg = 0;
  kustomer_limiter_observe(&f->lim, r);
  switch( kustomer_api_class(r) ){
    case KAPI_OK: {
      char *zId = bCustomer ? kustomer_api_data_id(r) : 0;
      row_sent(f, iRow, (int)r->status, zId);
      sqlite3_free(zId);
      break;
    }
    case KAPI_WAIT:
      if( r->bNotSent ){
        row_retry(f, iRow, nAttempts, 0, 0, r->zErr);
      }else{
        row_retry(f, iRow, nAttempts, 0, 429, "rate limited (429)");
      }
      break;
    case KAPI_AUTH:
      zMsg = flush_message(f, r);
      row_retry(f, iRow, nAttempts, 0, (int)r->status, zMsg ? zMsg : "");
      flush_fatal(f, sqlite3_mprintf("kustomer_flush(): Kustomer refused the "
                  "API key (HTTP %d: %s); the rows stay pending",
                  (int)r->status, zMsg ? zMsg : ""));
      break;
    case KAPI_RETRY:
    case KAPI_DOWN:
      /* the outbox keeps trying a server that is not there: a row is
      ** failed only after max_attempts */
      zMsg = r->eNet ? sqlite3_mprintf("%s", r->zErr)
                     : sqlite3_mprintf("HTTP %d", (int)r->status);
      row_retry(f, iRow, nAttempts, 1, (int)r->status, zMsg ? zMsg : "");
      break;
    default:
      zMsg = r->eNet ? sqlite3_mprintf("%s", r->zErr) : flush_message(f, r);
      row_failed(f, iRow, (int)r->status, zMsg ? zMsg : "");
      break;
  }
  sqlite3_free(zMsg);
}

/* ---- Envelopes ---------------------------------------------------------- */

typedef struct Envelope Envelope;
struct Envelope {
  char *zMethod;
  char *zUrl;
  char *zBody;              /* compact JSON of body.JSON, or NULL */
  int nBody;
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
  cJSON_Delete(pDoc);
  if( e->zMethod==0 || e->zUrl==0 || (pJson && e->zBody==0) ){
    envelope_clear(e);
    return sqlite3_mprintf("out of memory");
  }
  return 0;
}

/* ---- The pipeline: one request per row, several in flight --------------- */

/* Fill the queue with due rows that are not customer creations or
** updates (those go in bulk jobs). */
static void queue_refill(Flush *f){
  sqlite3_stmt *p = flush_stmt(f, KOB_DUE);
  f->nQueue = f->iQueue = 0;
  if( p==0 ) return;
  sqlite3_bind_double(p, 1, kustomer_wall());
  while( f->nQueue<QUEUE_SIZE && sqlite3_step(p)==SQLITE_ROW ){
    sqlite3_int64 iRow = sqlite3_column_int64(p, 0);
    int i, bFlying = 0;
    for(i=0; i<MAX_INFLIGHT; i++){
      if( f->aFly[i].iRow==iRow ) bFlying = 1;
    }
    if( !bFlying ) f->aQueue[f->nQueue++] = iRow;
  }
  sqlite3_reset(p);
}

/* Take up to n queued rows that can be sent into aRow/aEnv/abCustomer;
** rows whose request cannot be read are failed.  Returns how many. */
static int pipeline_take(Flush *f, int n, sqlite3_int64 *aRow,
                         Envelope *aEnv, int *abCustomer){
  int nTaken = 0;
  while( nTaken<n ){
    Row r;
    char *zErr;
    if( f->iQueue>=f->nQueue ){
      /* Refill only between batches: rows of this batch are not yet
      ** marked 'sending' and would be fetched again. */
      if( nTaken>0 ) break;
      queue_refill(f);
      if( f->nQueue==0 ) break;
    }
    aRow[nTaken] = f->aQueue[f->iQueue++];
    row_read(f, aRow[nTaken], 0, &r);
    zErr = envelope_parse(r.zRequest, &aEnv[nTaken]);
    abCustomer[nTaken] = r.bCustomer;
    row_clear(&r);
    if( zErr ){
      row_failed(f, aRow[nTaken], 0, zErr);
      sqlite3_free(zErr);
      continue;
    }
    nTaken++;
  }
  return nTaken;
}

/* Start as many queued rows as the limits allow.  Returns how many. */
static int pipeline_start(Flush *f){
  sqlite3_int64 aRow[MAX_INFLIGHT], aLedger[MAX_INFLIGHT];
  double tStarted;
  Envelope aEnv[MAX_INFLIGHT];
  int abCustomer[MAX_INFLIGHT];
  int nRunning = kustomer_multi_running(f->pMulti);
  int nFree = f->cfg.concurrency - nRunning;
  int nAvail, n, i;

  if( f->zFatal || f->rc || kustomer_clock()>=f->tDeadline ) return 0;
  /* the requests in flight are in the ledger; a resend of one is counted
  ** when libcurl makes it (flush_resend) */
  nAvail = kustomer_limiter_available(&f->lim, 0, 0);
  if( nFree > nAvail ) nFree = nAvail;
  n = pipeline_take(f, nFree, aRow, aEnv, abCustomer);
  if( n==0 ) return 0;
  /* Committed as 'sending' before the requests can reach Kustomer. */
  flush_begin(f);
  for(i=0; i<n; i++){
    sqlite3_stmt *p = flush_stmt(f, KOB_SENDING);
    if( p ){
      sqlite3_bind_int64(p, 1, aRow[i]);
      flush_step(f, p);
    }
  }
  for(i=0; i<n; i++){
    limiter_start(f, 1);
    aLedger[i] = f->lim.iLastRow;
  }
  tStarted = kustomer_wall();
  flush_commit(f);
  for(i=0; i<n; i++){
    KHttpReq req;
    KHttpResp refused;
    int iSlot, rc;
    for(iSlot=0; iSlot<MAX_INFLIGHT && f->aFly[iSlot].iRow; iSlot++){}
    kustomer_api_request(&req, aEnv[i].zMethod, aEnv[i].zUrl, f->zAuth,
                         f->pSet);
    req.zBody = aEnv[i].zBody;
    req.nBody = aEnv[i].nBody;
    req.xSend = flush_send;
    req.pSendArg = &f->aFly[iSlot];
    f->aFly[iSlot].pFlush = f;
    f->aFly[iSlot].iLedger = aLedger[i];
    f->aFly[iSlot].tStarted = tStarted;
    rc = (f->rc || f->zFatal) ? SQLITE_ABORT
       : kustomer_multi_start(f->pMulti, &req, iSlot, &refused);
    if( rc==SQLITE_OK ){
      f->aFly[iSlot].iRow = aRow[i];
      f->aFly[iSlot].bCustomer = abCustomer[i];
    }else{
      if( rc==SQLITE_DONE ){
        flush_fatal(f, sqlite3_mprintf("kustomer_flush(): %s", refused.zErr));
        kustomer_http_resp_clear(&refused);
      }else if( rc!=SQLITE_ABORT ){
        flush_sql_error(f, rc);
      }
      row_retry(f, aRow[i], 0, 0, 0, "not sent: the flush stopped");
    }
    envelope_clear(&aEnv[i]);
  }
  return n;
}

static void job_outcome(Flush *f, Job *j, const KHttpResp *r);

/* Collect finished requests (waiting up to msWait for the first): rows'
** and jobs'. */
static void pipeline_collect(Flush *f, int msWait){
  int nDone = 0;
  for(;;){
    sqlite3_int64 iTag, iRow;
    KHttpResp resp;
    int rc = kustomer_multi_next(f->pMulti, nDone ? 0 : msWait, &iTag, &resp);
    if( rc<0 ){
      flush_sql_error(f, -rc);
      break;
    }
    if( rc==0 ) break;
    if( nDone==0 ) flush_begin(f);
    nDone++;
    if( iTag>=JOB_TAG ){
      job_outcome(f, &f->aJob[iTag-JOB_TAG], &resp);
    }else{
      iRow = f->aFly[iTag].iRow;
      f->aFly[iTag].iRow = 0;
      row_outcome(f, iRow, &resp, f->aFly[iTag].bCustomer);
    }
    kustomer_http_resp_clear(&resp);
  }
  if( nDone ) flush_commit(f);
}

/* ---- Requests outside the pipeline -------------------------------------- */

/* flush_request() once no transaction is open. */
static int flush_request_now(Flush *f, const char *zMethod,
                             const char *zUrl, const char *zBody, int nBody,
                             KHttpResp *pResp){
  KHttpReq req;
  int rc;
  memset(pResp, 0, sizeof(*pResp));
  InFlight one;
  memset(&one, 0, sizeof(one));
  if( limiter_acquire(f) ) return SQLITE_BUSY;
  flush_begin(f);
  limiter_start(f, 1);
  one.pFlush = f;
  one.iLedger = f->lim.iLastRow;
  one.tStarted = kustomer_wall();
  flush_commit(f);
  if( f->rc ) return f->rc;
  kustomer_api_request(&req, zMethod, zUrl, f->zAuth, f->pSet);
  req.zBody = zBody;
  req.nBody = nBody;
  req.xSend = flush_send;
  req.pSendArg = &one;
  rc = kustomer_http_do(f->pHttp, &req, pResp);
  if( rc==SQLITE_OK ) kustomer_limiter_observe(&f->lim, pResp);
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


/* ---- Customers: ids and lookups ------------------------------------------ */

/* What this flush knows of keys ("email=x" -> id, "" where a lookup found
** nothing); the file's map is read through it. */
static const char *cache_get(Cache *p, const char *zKey){
  int i;
  for(i=0; i<p->n; i++){
    if( strcmp(p->azKey[i], zKey)==0 ) return p->azVal[i];
  }
  return 0;
}

static void cache_put(Cache *p, const char *zKey, const char *zVal){
  char *zNew;
  int i;
  for(i=0; i<p->n && strcmp(p->azKey[i], zKey)!=0; i++){}
  if( i<p->n ){
    if( strcmp(p->azVal[i], zVal)==0 ) return;
    zNew = sqlite3_mprintf("%s", zVal);
    if( zNew==0 ) return;
    sqlite3_free(p->azVal[i]);
    p->azVal[i] = zNew;
    return;
  }
  if( p->n==p->nAlloc ){
    int n = p->nAlloc ? p->nAlloc*2 : 64;
    char **aK = sqlite3_realloc64(p->azKey, sizeof(char*)*n);
    char **aV;
    if( aK==0 ) return;
    p->azKey = aK;
    aV = sqlite3_realloc64(p->azVal, sizeof(char*)*n);
    if( aV==0 ) return;
    p->azVal = aV;
    p->nAlloc = n;
  }
  p->azKey[p->n] = sqlite3_mprintf("%s", zKey);
  p->azVal[p->n] = sqlite3_mprintf("%s", zVal);
  if( p->azKey[p->n] && p->azVal[p->n] ){
    p->n++;
  }else{
    sqlite3_free(p->azKey[p->n]);
    sqlite3_free(p->azVal[p->n]);
  }
}

/* A customer id learnt (zSource: 'bulk', 'lookup'), for this flush and in
** the file's map for the next ones. */
static void id_learn(Flush *f, const char *zKey, const char *zId,
                     const char *zSource){
  int rc;
  if( zKey==0 || zId==0 || zId[0]==0 ) return;
  cache_put(&f->cache, zKey, zId);
  rc = kustomer_idmap_put(f->pIds, zKey, zId, zSource);
  if( rc ) flush_sql_error(f, rc);
}

/* A customer Kustomer no longer has: forgotten here and in the map. */
static void id_forget(Flush *f, const char *zId){
  int i, rc;
  for(i=0; i<f->cache.n; i++){
    if( strcmp(f->cache.azVal[i], zId)==0 ) f->cache.azVal[i][0] = 0;
  }
  rc = kustomer_idmap_forget(f->pIds, zId);
  if( rc ) flush_sql_error(f, rc);
}

/* The id of a key known to this flush or to the map (to free); NULL when
** unknown, *pbNone set when a lookup of this flush found nothing. */
static char *id_known(Flush *f, const char *zKey, int *pbNone){
  const char *zHit = cache_get(&f->cache, zKey);
  char *zId = 0;
  int rc;
  *pbNone = 0;
  if( zHit ){
    if( zHit[0] ) return sqlite3_mprintf("%s", zHit);
    *pbNone = 1;
    return 0;
  }
  rc = kustomer_idmap_get(f->pIds, zKey, &zId);
  if( rc ){
    flush_sql_error(f, rc);
    return 0;
  }
  if( zId && zId[0] ) cache_put(&f->cache, zKey, zId);
  return zId;
}

/* The lookup keys of a row's identify event, in the reference's order
** (email, externalId=userId, externalId=anonymousId; NULL where the event
** has none).  Returns 0 when the event cannot be read. */
static int row_keys(Flush *f, sqlite3_int64 iRow, char *azKey[3]){
  const cJSON *apVal[3];
  cJSON *pEvent;
  Row r;
  int i;
  memset(azKey, 0, sizeof(char*)*3);
  row_read(f, iRow, 1, &r);
  pEvent = r.zEvent ? kustomer_json_parse(r.zEvent, (int)strlen(r.zEvent), 0)
                    : 0;
  row_clear(&r);
  if( pEvent==0 ) return 0;
  kustomer_identify_lookups(pEvent, apVal);
  for(i=0; i<3; i++){
    azKey[i] = kustomer_idmap_key(kustomer_aLookupPrefix[i], apVal[i]);
  }
  cJSON_Delete(pEvent);
  return 1;
}

static void keys_free(char *azKey[3]){
  int i;
  for(i=0; i<3; i++) sqlite3_free(azKey[i]);
}

/* The id a row's customer has in the map or this flush, by the externalId
** it is created with (zKey) alone (to free), or NULL.  Not by its e-mail:
** customers with different externalIds may share an address, and the
** creation would then update another customer. */
static char *row_known(Flush *f, const char *zKey){
  int bNone;
  return zKey ? id_known(f, zKey, &bNone) : 0;
}

/* A row's customer is zId: its e-mail and the externalId it was sent with
** (zKey, the row's customer key) lead there from now on. */
static void row_learn(Flush *f, sqlite3_int64 iRow, const char *zKey,
                      const char *zId, const char *zSource){
  char *azKey[3];
  if( zKey ) id_learn(f, zKey, zId, zSource);
  if( row_keys(f, iRow, azKey) ){
    if( azKey[0] ) id_learn(f, azKey[0], zId, zSource);
    keys_free(azKey);
  }
}

static void cache_free(Cache *p){
  int i;
  for(i=0; i<p->n; i++){
    sqlite3_free(p->azKey[i]);
    sqlite3_free(p->azVal[i]);
  }
  sqlite3_free(p->azKey);
  sqlite3_free(p->azVal);
  memset(p, 0, sizeof(*p));
}

/* Look up one key ("email=x", ...) through what is known.  Returns the id
** found (to free), or NULL: then *pbFailed is 1 when the lookup failed
** (5xx, dropped, ...), 2 when it could not be sent before the deadline. */
static char *lookup_one(Flush *f, const char *zKey, int *pbFailed){
  char *zUrl, *zFound;
  KHttpResp resp;
  int rc, bNone;
  zFound = id_known(f, zKey, &bNone);
  if( zFound || bNone ) return zFound;
  zUrl = sqlite3_mprintf("%s/v1/customers/%s", f->pSet->zBase, zKey);
  rc = zUrl ? flush_request(f, "GET", zUrl, 0, 0, &resp) : SQLITE_NOMEM;
  sqlite3_free(zUrl);
  if( rc ){
    *pbFailed = rc==SQLITE_BUSY ? 2 : 1;
    return 0;
  }
  if( resp.eNet==0 && resp.status==200 ){
    zFound = kustomer_api_data_id(&resp);
    if( zFound ) id_learn(f, zKey, zFound, "lookup");
  }else if( resp.eNet==0 && resp.status==404 ){
    cache_put(&f->cache, zKey, "");
  }else{
    *pbFailed = 1;
  }
  kustomer_http_resp_clear(&resp);
  return zFound;
}

/* The id of an existing customer for an identify event, by the
** reference's lookups; NULL if none, and then *pbFailed says whether a
** lookup failed (1) or could not be sent before the deadline (2) rather
** than found nothing. */
static char *customer_lookup(Flush *f, sqlite3_int64 iRow, int *pbFailed){
  char *azKey[3], *zFound = 0;
  int i;
  *pbFailed = 0;
  if( !row_keys(f, iRow, azKey) ) return 0;
  for(i=0; i<3 && zFound==0 && !*pbFailed; i++){
    if( azKey[i] ) zFound = lookup_one(f, azKey[i], pbFailed);
  }
  keys_free(azKey);
  return zFound;
}

/* Rewrite a row's request as an update of customer zId, to be sent by an
** update job. */
static void row_to_update(Flush *f, sqlite3_int64 iRow, const char *zId){
  KOutboxItem item;
  sqlite3_stmt *p;
  Row r;
  int rc;
  row_read(f, iRow, 1, &r);
  rc = r.zEvent ? kustomer_outbox_request(f->pSet, r.zEvent,
                                          (int)strlen(r.zEvent), zId, &item)
                : SQLITE_NOMEM;
  row_clear(&r);
  if( rc ){
    flush_sql_error(f, rc);
    return;
  }
  p = item.zRequest ? flush_stmt(f, KOB_TO_UPDATE) : 0;
  f->tCollect = 0;
  if( p ){
    sqlite3_bind_text(p, 1, item.zRequest, -1, SQLITE_STATIC);
    sqlite3_bind_text(p, 2, zId, -1, SQLITE_STATIC);
    sqlite3_bind_int64(p, 3, iRow);
    flush_step(f, p);
  }
  kustomer_outbox_item_clear(&item);
}

/* An update of a customer Kustomer says it does not have (zMsg): the id
** is forgotten and the row is created again, unless its event names the
** customer itself (context.externalId of type kustomerId), which fails. */
static void row_to_create(Flush *f, sqlite3_int64 iRow, const char *zId,
                          const char *zMsg){
  KOutboxItem item;
  sqlite3_stmt *p;
  Row r;
  int rc;
  id_forget(f, zId);
  row_read(f, iRow, 1, &r);
  rc = r.zEvent ? kustomer_outbox_request(f->pSet, r.zEvent,
                                          (int)strlen(r.zEvent), 0, &item)
                : SQLITE_NOMEM;
  row_clear(&r);
  if( rc ){
    flush_sql_error(f, rc);
    return;
  }
  if( item.zRequest==0 || item.zKind==0 || strcmp(item.zKind, "create")!=0 ){
    row_failed(f, iRow, 404, zMsg);
  }else if( (p = flush_stmt(f, KOB_TO_CREATE))!=0 ){
    char *zWhy = sqlite3_mprintf("%s: created again", zMsg);
    f->tCollect = 0;
    sqlite3_bind_text(p, 1, item.zRequest, -1, SQLITE_STATIC);
    sqlite3_bind_text(p, 2, zWhy ? zWhy : zMsg, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(p, 3, iRow);
    flush_step(f, p);
    sqlite3_free(zWhy);
  }
  kustomer_outbox_item_clear(&item);
}

/* Whether z holds one of the words of az (ASCII case ignored). */
static int has_word(const char *z, const char *const *az){
  char *zLower = sqlite3_mprintf("%s", z ? z : "");
  int i, bHit = 0;
  if( zLower==0 ) return 0;
  for(i=0; zLower[i]; i++){
    if( zLower[i]>='A' && zLower[i]<='Z' ) zLower[i] += 'a'-'A';
  }
  for(i=0; az[i] && !bHit; i++) bHit = strstr(zLower, az[i])!=0;
  sqlite3_free(zLower);
  return bHit;
}

/* Whether a bulk item's error says the customer already exists. */
static int is_conflict(const char *z){
  static const char *const azWord[] = { "exist", "duplicate", "conflict",
                                        "409", 0 };
  return has_word(z, azWord);
}

/* Whether a bulk update's error says the customer is not there. */
static int is_missing(const char *z){
  static const char *const azWord[] = { "not found", "unknown", "404",
                                        "does not exist", 0 };
  return has_word(z, azWord);
}

/* ---- Customers: bulk jobs ------------------------------------------------ */

static void bulk_clear(Bulk *b){
  int i;
  for(i=0; i<b->nRow; i++){
    sqlite3_free(b->azKey[i]);
    sqlite3_free(b->azId[i]);
  }
  sqlite3_free(sqlite3_str_finish(b->pBody));
  memset(b, 0, sizeof(*b));
}

/* The index of a row in the job, or -1. */
static int bulk_index(const Bulk *b, sqlite3_int64 iRow){
  int i;
  for(i=0; i<b->nRow && b->aRow[i]!=iRow; i++){}
  return i<b->nRow ? i : -1;
}

/* Add one due row to the job, or deal with it otherwise: a creation for a
** customer whose id is known becomes an update (for an update job), and
** a second row for a customer of this job waits for the next. */
static void bulk_add(Flush *f, Bulk *b, sqlite3_int64 iRow,
                     const char *zReq, const char *zKey, const char *zId){
  Envelope e;
  char *zErr;
  int i;
  if( zId==0 ){
    char *zKnown = row_known(f, zKey);
    if( zKnown ){
      row_to_update(f, iRow, zKnown);
      sqlite3_free(zKnown);
      return;
    }
  }
  for(i=0; i<b->nRow; i++){
    if( zKey && b->azKey[i] && strcmp(b->azKey[i], zKey)==0 ) return;
    if( zId && b->azId[i] && strcmp(b->azId[i], zId)==0 ) return;
  }
  zErr = envelope_parse(zReq, &e);
  if( zErr ){
    row_failed(f, iRow, 0, zErr);
    sqlite3_free(zErr);
    return;
  }
  sqlite3_str_appendchar(b->pBody, 1, b->nRow ? ',' : '[');
  /* The body is compact JSON written by kustomer_json_value(): an object
  ** ends in its '}', where the id and _clientRef go. */
  if( e.zBody && e.nBody>=2 && e.zBody[0]=='{' ){
    sqlite3_str_append(b->pBody, e.zBody, e.nBody-1);
    if( e.nBody>2 ) sqlite3_str_appendchar(b->pBody, 1, ',');
  }else{
    sqlite3_str_appendchar(b->pBody, 1, '{');
  }
  if( zId ){
    sqlite3_str_appendall(b->pBody, "\"id\":");
    kustomer_json_string(b->pBody, zId, strlen(zId));
    sqlite3_str_appendchar(b->pBody, 1, ',');
  }
  sqlite3_str_appendf(b->pBody, "\"_clientRef\":\"%lld\"}", iRow);
  envelope_clear(&e);
  b->azKey[b->nRow] = zKey ? sqlite3_mprintf("%s", zKey) : 0;
  b->azId[b->nRow] = zId ? sqlite3_mprintf("%s", zId) : 0;
  b->aRow[b->nRow] = iRow;
  b->abHandled[b->nRow] = 0;
  b->nRow++;
}

/* The customer id at the end of a stored update's endpoint
** (.../v1/customers/<id>, percent-decoded; to free), or NULL. */
static char *endpoint_id(const char *zReq){
  Envelope e;
  char *zErr = envelope_parse(zReq, &e), *zOut = 0, *zQuery;
  const char *z;
  if( zErr ){
    sqlite3_free(zErr);
    return 0;
  }
  if( (zQuery = strchr(e.zUrl, '?'))!=0 ) *zQuery = 0;
  z = strrchr(e.zUrl, '/');
  if( z ) zOut = kustomer_path_segment_decode(z+1, strlen(z+1));
  envelope_clear(&e);
  return zOut;
}

/* Take up to BULK_SIZE due customer creations (bPut: updates) into a job
** and commit them as 'sending'.  Returns how many. */
static int bulk_collect(Flush *f, Bulk *b, int bPut){
  sqlite3_stmt *p = flush_stmt(f, KOB_DUE_BULK);
  int i;
  memset(b, 0, sizeof(*b));
  b->pBody = sqlite3_str_new(0);
  if( p==0 ) return 0;
  sqlite3_bind_double(p, 1, kustomer_wall());
  sqlite3_bind_text(p, 2, bPut ? "update" : "create", -1, SQLITE_STATIC);
  flush_begin(f);
  while( b->nRow<BULK_SIZE && f->rc==SQLITE_OK
      && sqlite3_step(p)==SQLITE_ROW ){
    const char *zReq = (const char*)sqlite3_column_text(p, 1);
    const char *zId = (const char*)sqlite3_column_text(p, 3);
    char *zFromUrl = 0;
    if( bPut && (zId==0 || zId[0]==0) ){
      /* an update made at INSERT (the event names its customer): the id
      ** is the last segment of its endpoint */
      zId = zFromUrl = endpoint_id(zReq);
      if( zId==0 ){
        row_failed(f, sqlite3_column_int64(p, 0), 0,
                   "an update without a customer id");
        continue;
      }
    }
    bulk_add(f, b, sqlite3_column_int64(p, 0), zReq,
             (const char*)sqlite3_column_text(p, 2), bPut ? zId : 0);
    sqlite3_free(zFromUrl);
  }
  sqlite3_reset(p);
  for(i=0; i<b->nRow; i++){
    sqlite3_stmt *pSending = flush_stmt(f, KOB_SENDING);
    if( pSending==0 ) break;
    sqlite3_bind_int64(pSending, 1, b->aRow[i]);
    flush_step(f, pSending);
  }
  flush_commit(f);
  sqlite3_str_appendchar(b->pBody, 1, ']');
  if( sqlite3_str_errcode(b->pBody) ) flush_sql_error(f, SQLITE_NOMEM);
  return b->nRow;
}

/* A job's document: its status (0 running, 1 over) and how many batches
** Kustomer made of it (0 when it does not say). */
static int bulk_doc(const KHttpResp *pResp, int *pnBatches){
  cJSON *pDoc = kustomer_json_parse(pResp->zBody, pResp->nBody, 0);
  const cJSON *pData = kustomer_json_member(pDoc, "data");
  const cJSON *pAttr = kustomer_json_member(pData, "attributes");
  const cJSON *pStatus = kustomer_json_member(pAttr, "status");
  const cJSON *pTotal = kustomer_json_member(
      kustomer_json_member(pAttr ? pAttr : pData, "batches"), "total");
  int bDone;
  if( pStatus==0 ) pStatus = kustomer_json_member(pData, "status");
  bDone = cJSON_IsString(pStatus)
       && (strcmp(pStatus->valuestring, "complete")==0
           || strcmp(pStatus->valuestring, "completed")==0
           || strcmp(pStatus->valuestring, "failed")==0);
  *pnBatches = (cJSON_IsNumber(pTotal) && pTotal->valuedouble>=1
                && pTotal->valuedouble<=1e6) ? (int)pTotal->valuedouble : 0;
  cJSON_Delete(pDoc);
  return bDone;
}

/* A failed bulk item: a creation Kustomer says exists is looked up (by
** lookup_round(), when no request is out) and updated; an update of a
** customer it does not have is created again; anything else fails the
** row. */
static void bulk_item_failed(Flush *f, Bulk *b, int i, const cJSON *pErr){
  sqlite3_int64 iRow = b->aRow[i];
  sqlite3_str *p = sqlite3_str_new(0);
  char *zMsg;
  if( cJSON_IsString(pErr) ){
    sqlite3_str_appendall(p, pErr->valuestring);
  }else if( pErr ){
    kustomer_json_value(p, pErr);
  }else{
    sqlite3_str_appendall(p, "bulk item failed");
  }
  zMsg = kustomer_api_redact(sqlite3_str_finish(p), f->zAuth);
  if( b->azId[i] && is_missing(zMsg) ){
    row_to_create(f, iRow, b->azId[i], zMsg ? zMsg : "customer not found");
  }else if( is_conflict(zMsg) ){
    sqlite3_stmt *pS = flush_stmt(f, KOB_TO_LOOKUP);
    if( pS ){
      sqlite3_bind_text(pS, 1, zMsg ? zMsg : "", -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(pS, 2, iRow);
      flush_step(f, pS);
    }
  }else{
    row_failed(f, iRow, 400, zMsg ? zMsg : "bulk item failed");
  }
  sqlite3_free(zMsg);
}

/* Apply one bulk result item to its row. */
static void bulk_item(Flush *f, Bulk *b, const cJSON *pItem){
  const cJSON *pRef = kustomer_json_member(pItem, "_clientRef");
  const cJSON *pStatus = kustomer_json_member(pItem, "status");
  const cJSON *pId = kustomer_json_member(pItem, "objectId");
  int i;
  if( !cJSON_IsString(pRef) ) return;
  i = bulk_index(b, atoll(pRef->valuestring));
  if( i<0 || b->abHandled[i] ) return;
  b->abHandled[i] = 1;
  if( cJSON_IsString(pStatus) && strcmp(pStatus->valuestring, "error")!=0
   && cJSON_IsString(pId) ){
    row_sent(f, b->aRow[i],
             strcmp(pStatus->valuestring, "created")==0 ? 201 : 200,
             pId->valuestring);
    row_learn(f, b->aRow[i], b->azKey[i], pId->valuestring, "bulk");
  }else{
    bulk_item_failed(f, b, i, kustomer_json_member(pItem, "error"));
  }
}

/* Apply a job's batches to its rows: {"data":[batch...]} with each batch's
** results in its attributes or in itself, or a bare array of batches (as
** Kustomer's reference also shows it).  Returns how many batches. */
static int bulk_apply(Flush *f, Bulk *b, const cJSON *pBatches){
  const cJSON *pData = cJSON_IsArray(pBatches) ? pBatches
                     : kustomer_json_member(pBatches, "data");
  const cJSON *pB;
  int n = 0;
  for(pB = cJSON_IsArray(pData) ? pData->child : 0; pB; pB=pB->next){
    const cJSON *pAttr = kustomer_json_member(pB, "attributes");
    const cJSON *pRes = kustomer_json_member(pAttr ? pAttr : pB, "results");
    const cJSON *pItem;
    n++;
    for(pItem = cJSON_IsArray(pRes) ? pRes->child : 0; pItem;
        pItem=pItem->next){
      bulk_item(f, b, pItem);
    }
  }
  return n;
}

/* Whether every row of a job has its result. */
static int bulk_all_handled(const Bulk *b){
  int i;
  for(i=0; i<b->nRow && b->abHandled[i]; i++){}
  return i==b->nRow;
}

/* ---- Customers: bulk jobs, alongside the pipeline ------------------------- */

/* Load a job's rows (one from an earlier flush) into its Bulk. */
static void job_rows(Flush *f, Job *j){
  sqlite3_stmt *p;
  if( j->bRows ) return;
  j->bRows = 1;
  p = flush_stmt(f, KOB_BULK_ROWS);
  if( p==0 ) return;
  sqlite3_bind_text(p, 1, j->zId, -1, SQLITE_STATIC);
  while( j->b.nRow<BULK_SIZE && sqlite3_step(p)==SQLITE_ROW ){
    const char *zKey = (const char*)sqlite3_column_text(p, 1);
    const char *zKind = (const char*)sqlite3_column_text(p, 2);
    const char *zId = (const char*)sqlite3_column_text(p, 3);
    j->b.aRow[j->b.nRow] = sqlite3_column_int64(p, 0);
    j->b.azKey[j->b.nRow] = zKey ? sqlite3_mprintf("%s", zKey) : 0;
    j->b.azId[j->b.nRow] = (zKind && strcmp(zKind, "update")==0 && zId)
                         ? sqlite3_mprintf("%s", zId) : 0;
    j->b.abHandled[j->b.nRow] = 0;
    j->b.nRow++;
  }
  sqlite3_reset(p);
}

static void job_free(Job *j){
  bulk_clear(&j->b);
  sqlite3_free(j->zId);
  memset(j, 0, sizeof(*j));
}

/* The rows of a job not yet handled go back to pending: bCounted, the
** attempt is used up (and past max_attempts the row fails). */
static void job_rows_retry(Flush *f, Job *j, int bCounted, const char *zWhy){
  int i;
  job_rows(f, j);
  for(i=0; i<j->b.nRow; i++){
    if( j->b.abHandled[i] ) continue;
    row_retry(f, j->b.aRow[i], bCounted ? row_attempts(f, j->b.aRow[i]) : 0,
              bCounted, 0, zWhy);
  }
}

/* Whether a job for zId is in hand already. */
static int job_known(Flush *f, const char *zId){
  int i;
  for(i=0; i<MAX_JOBS; i++){
    if( f->aJob[i].bUsed && f->aJob[i].zId && strcmp(f->aJob[i].zId, zId)==0 ){
      return 1;
    }
  }
  return 0;
}

/* Fill a free job slot: first a job an earlier flush left (it is polled,
** not sent again), else up to BULK_SIZE due customer updates or
** creations, the two taking turns.  Returns 1 if a job was added. */
static int job_new(Flush *f){
  Job *j = 0;
  sqlite3_stmt *p;
  double tPoll = f->cfg.rateWindow/120.0;
  int i;
  if( tPoll<0.02 ) tPoll = 0.02;
  if( tPoll>2 ) tPoll = 2;
  for(i=0; i<MAX_JOBS && f->aJob[i].bUsed; i++){}
  if( i==MAX_JOBS || f->zFatal || f->rc ) return 0;
  /* each look scans the due rows: not on every turn of the loop when the
  ** last found none (a row made a creation or an update asks again) */
  if( kustomer_clock()<f->tCollect ) return 0;
  j = &f->aJob[i];
  p = flush_stmt(f, KOB_BULK_JOBS);
  while( p && sqlite3_step(p)==SQLITE_ROW ){
    const char *zId = (const char*)sqlite3_column_text(p, 0);
    if( zId && !job_known(f, zId) ){
      memset(j, 0, sizeof(*j));
      j->bUsed = 1;
      j->ePhase = JOB_POLL;
      j->zId = sqlite3_mprintf("%s", zId);
      break;
    }
  }
  if( p ) sqlite3_reset(p);
  if( !j->bUsed ){
    Bulk b;
    int k, bPut = 0;
    for(k=0; k<2; k++){
      bPut = (k==0) == f->bPutFirst;
      if( bulk_collect(f, &b, bPut)>0 || f->rc ) break;
      bulk_clear(&b);
    }
    if( k==2 || f->rc ){
      if( k<2 ) bulk_clear(&b);
      if( k==2 ) f->tCollect = kustomer_clock() + 0.2;
      return 0;
    }
    f->bPutFirst = !bPut;
    memset(j, 0, sizeof(*j));
    j->bUsed = 1;
    j->bPut = bPut;
    j->ePhase = JOB_POST;
    j->b = b;
    j->bRows = 1;
  }
  j->tPoll = tPoll;
  j->tNext = kustomer_clock();
  j->tGiveUp = j->tNext + f->cfg.rateWindow*10;
  j->fly.pFlush = f;
  if( j->ePhase==JOB_POLL && j->zId==0 ){
    flush_sql_error(f, SQLITE_NOMEM);
    job_free(j);
    return 0;
  }
  return 1;
}

/* Start the due requests of the jobs (they share the concurrency and the
** rate window with the pipeline, before it). */
static void jobs_start(Flush *f){
  int i;
  for(i=0; i<MAX_JOBS && f->zFatal==0 && f->rc==SQLITE_OK; i++){
    Job *j = &f->aJob[i];
    const char *zMethod = j->ePhase!=JOB_POST ? "GET" : j->bPut ? "PUT"
                                                                : "POST";
    KHttpReq req;
    KHttpResp refused;
    char *zUrl;
    int rc;
    if( !j->bUsed || j->bFlying || j->tNext>kustomer_clock() ) continue;
    if( kustomer_multi_running(f->pMulti)>=f->cfg.concurrency ) break;
    if( kustomer_limiter_available(&f->lim, 0, 0)<=0 ) break;
    if( j->ePhase==JOB_POST ){
      zUrl = sqlite3_mprintf("%s/v1/customers/bulk", f->pSet->zBase);
    }else{
      zUrl = sqlite3_mprintf("%s/v1/bulk/%s/batches", f->pSet->zBase, j->zId);
    }
    if( zUrl==0 ){
      flush_sql_error(f, SQLITE_NOMEM);
      break;
    }
    flush_begin(f);
    limiter_start(f, 1);
    j->fly.iLedger = f->lim.iLastRow;
    j->fly.tStarted = kustomer_wall();
    flush_commit(f);
    kustomer_api_request(&req, zMethod, zUrl, f->zAuth, f->pSet);
    if( j->ePhase==JOB_POST ){
      req.zBody = sqlite3_str_value(j->b.pBody);
      req.nBody = sqlite3_str_length(j->b.pBody);
    }
    req.xSend = flush_send;
    req.pSendArg = &j->fly;
    rc = f->rc ? SQLITE_ABORT
       : kustomer_multi_start(f->pMulti, &req, JOB_TAG + i, &refused);
    sqlite3_free(zUrl);
    if( rc==SQLITE_OK ){
      j->bFlying = 1;
    }else if( rc==SQLITE_DONE ){
      flush_fatal(f, sqlite3_mprintf("kustomer_flush(): %s", refused.zErr));
      kustomer_http_resp_clear(&refused);
    }else if( rc!=SQLITE_ABORT ){
      flush_sql_error(f, rc);
    }
  }
}

/* What the response to a job's request means for the job and its rows
** (in pipeline_collect()'s transaction).  A job is read from its batches
** alone: each batch's results are applied as it completes, and the job is
** over when every row has its result or every batch has come, so a job
** that Kustomer runs at once costs two requests. */
static void job_outcome(Flush *f, Job *j, const KHttpResp *r){
  double t = kustomer_clock();
  int eClass = kustomer_api_class(r);
  j->bFlying = 0;
  if( j->ePhase==JOB_POST ){
    char *zId;
    int i;
    if( eClass!=KAPI_OK ){
      /* the whole request failed: each row takes the outcome, so the same
      ** retry, backoff and failure rules apply as for single requests */
      for(i=0; i<j->b.nRow; i++) row_outcome(f, j->b.aRow[i], r, 1);
      job_free(j);
      return;
    }
    kustomer_limiter_observe(&f->lim, r);
    zId = kustomer_api_data_id(r);
    if( zId==0 ){
      job_rows_retry(f, j, 1, "bulk response had no job id");
      job_free(j);
      return;
    }
    /* kept with the rows before the job is polled: a flush killed or
    ** stopped now polls it next time instead of sending them again */
    for(i=0; i<j->b.nRow; i++){
      sqlite3_stmt *p = flush_stmt(f, KOB_BULK_SET);
      if( p==0 ) break;
      sqlite3_bind_text(p, 1, zId, -1, SQLITE_STATIC);
      sqlite3_bind_int64(p, 2, j->b.aRow[i]);
      flush_step(f, p);
    }
    j->zId = zId;
    j->ePhase = JOB_POLL;
    /* a job Kustomer says is complete already is read at once */
    j->tNext = bulk_doc(r, &j->nBatches) ? t : t + j->tPoll;
    j->tGiveUp = t + f->cfg.rateWindow*10;
    return;
  }
  kustomer_limiter_observe(&f->lim, r);
  if( eClass==KAPI_AUTH ){
    flush_fatal(f, sqlite3_mprintf("kustomer_flush(): Kustomer refused the "
                "API key (HTTP %d)", (int)r->status));
    return;
  }
  /* JOB_POLL: the batches done so far */
  if( r->eNet==0 && r->status==200 ){
    cJSON *pBatches = kustomer_json_parse(r->zBody, r->nBody, 0);
    if( pBatches ){
      int nDone;
      job_rows(f, j);
      nDone = bulk_apply(f, &j->b, pBatches);
      cJSON_Delete(pBatches);
      j->nTries = 0;
      if( bulk_all_handled(&j->b) || (j->nBatches && nDone>=j->nBatches) ){
        job_rows_retry(f, j, 1, "bulk job gave no result for this row");
        job_free(j);
        return;
      }
    }else if( ++j->nTries>=f->cfg.maxAttempts ){
      job_rows_retry(f, j, 1, "bulk job results could not be read");
      job_free(j);
      return;
    }
  }else if( r->eNet==0 && r->status==404 ){
    /* Kustomer does not know the job (any more): sent again, those it had
    ** created are found to exist and updated */
    job_rows_retry(f, j, 1, "bulk job unknown to Kustomer (HTTP 404)");
    job_free(j);
    return;
  }
  if( t>=j->tGiveUp ){
    job_rows_retry(f, j, 1, "bulk job gave no result for this row");
    job_free(j);
    return;
  }
  /* running, 5xx, 429, dropped: read again */
  j->tNext = t + j->tPoll;
  if( j->tPoll < f->cfg.rateWindow/10.0 ) j->tPoll *= 1.5;
}

/* One customer that Kustomer says exists, looked up (the reference's
** lookups, cached for the flush) and turned into an update; run when no
** request is out, since its requests are made one at a time.  Returns 1
** if a row was taken. */
static int lookup_round(Flush *f){
  sqlite3_stmt *p = flush_stmt(f, KOB_DUE_LOOKUP);
  sqlite3_int64 iRow;
  char *zWhy, *zFound;
  int bFailed = 0;
  if( p==0 ) return 0;
  sqlite3_bind_double(p, 1, kustomer_wall());
  if( sqlite3_step(p)!=SQLITE_ROW ){
    sqlite3_reset(p);
    return 0;
  }
  iRow = sqlite3_column_int64(p, 0);
  zWhy = sqlite3_mprintf("%s", sqlite3_column_type(p, 1)==SQLITE_TEXT
                         ? (const char*)sqlite3_column_text(p, 1) : "");
  sqlite3_reset(p);
  flush_begin(f);
  {
    sqlite3_stmt *pS = flush_stmt(f, KOB_SENDING);
    if( pS ){
      sqlite3_bind_int64(pS, 1, iRow);
      flush_step(f, pS);
    }
  }
  flush_commit(f);
  zFound = customer_lookup(f, iRow, &bFailed);
  flush_begin(f);
  if( zFound ){
    row_to_update(f, iRow, zFound);
  }else if( bFailed ){
    row_retry(f, iRow, row_attempts(f, iRow), bFailed==1, 0,
              bFailed==1 ? "the customer exists but its lookup failed"
                         : "not sent: the flush stopped");
  }else{
    char *zMsg = sqlite3_mprintf("%s (and no lookup found the customer)",
                                 zWhy ? zWhy : "");
    row_failed(f, iRow, 400, zMsg ? zMsg : "bulk item failed");
    sqlite3_free(zMsg);
  }
  flush_commit(f);
  sqlite3_free(zFound);
  sqlite3_free(zWhy);
  return 1;
}

/* Whether a job is in hand; *ptNext the soonest of their next requests
** (kustomer_clock()). */
static int jobs_active(Flush *f, double *ptNext){
  int i, bAny = 0;
  for(i=0; i<MAX_JOBS; i++){
    if( !f->aJob[i].bUsed ) continue;
    if( !bAny || f->aJob[i].tNext<*ptNext ) *ptNext = f->aJob[i].tNext;
    bAny = 1;
  }
  return bAny;
}

/* The flush stops: a job not sent puts its rows back; a job Kustomer has
** leaves them to the next flush, which polls it. */
static void jobs_stop(Flush *f){
  int i;
  for(i=0; i<MAX_JOBS; i++){
    Job *j = &f->aJob[i];
    if( !j->bUsed ) continue;
    flush_begin(f);
    if( j->ePhase==JOB_POST ){
      job_rows_retry(f, j, 0, "not sent: the flush stopped");
    }else{
      sqlite3_stmt *p = flush_stmt(f, KOB_JOB_WAIT);
      if( p ){
        sqlite3_bind_text(p, 1, "bulk job unfinished when the flush stopped:"
                          " the next flush polls it", -1, SQLITE_STATIC);
        sqlite3_bind_text(p, 2, j->zId, -1, SQLITE_STATIC);
        flush_step(f, p);
      }
    }
    flush_commit(f);
    job_free(j);
  }
}

/* ---- Progress ------------------------------------------------------- */

static void progress_draw(Flush *f, int bLast){
  double t = kustomer_clock() - f->tStart;
  int nDone = f->nDelivered + f->nFailed;
  int nWidth = 30, nFill, i;
  char aBar[64];
  double rate = t>0 ? f->nRequests/t : 0;
  double eta = (nDone>0 && f->nTotal>nDone) ? t*(f->nTotal-nDone)/nDone : 0;
  if( f->lim.nAllowed>0 && f->nTotal>nDone ){
    /* never sooner than the budget allows: a burst at the start of a
    ** window is no rate to go by */
    double etaBudget = (f->nTotal-nDone)*f->lim.rateWindow/f->lim.nAllowed;
    if( etaBudget>eta ) eta = etaBudget;
  }
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

/* ---- The steps of a flush ---------------------------------------------- */

static int count_status(Flush *f, const char *zStatus){
  sqlite3_stmt *p = flush_stmt(f, KOB_COUNT);
  int n = 0;
  if( p==0 ) return 0;
  sqlite3_bind_text(p, 1, zStatus, -1, SQLITE_STATIC);
  if( sqlite3_step(p)==SQLITE_ROW ) n = sqlite3_column_int(p, 0);
  sqlite3_reset(p);
  return n;
}

/* Whether due or waiting work remains; sets *ptNext to the next due time
** (wall clock). */
static int work_left(Flush *f, double *ptNext){
  sqlite3_stmt *p = flush_stmt(f, KOB_NEXT_DUE);
  int bLeft = 0;
  if( p && sqlite3_step(p)==SQLITE_ROW
   && sqlite3_column_type(p, 0)!=SQLITE_NULL ){
    bLeft = 1;
    *ptNext = sqlite3_column_double(p, 0);
  }
  if( p ) sqlite3_reset(p);
  return bLeft;
}

/* The options argument: a JSON object of {"progress":bool}. */
static int flush_options(Flush *f, sqlite3_value *pArg){
  char *zErr = 0;
  cJSON *pOpt = 0;
  const cJSON *pM;
  int rc = kustomer_options_arg("kustomer_flush", 3, pArg, &pOpt, &zErr);
  if( rc ){
    if( zErr ) flush_fatal(f, zErr);
    else f->rc = rc;
    return rc;
  }
  for(pM=pOpt ? pOpt->child : 0; pM && f->zFatal==0; pM=pM->next){
    if( strcmp(pM->string, "progress")==0 ){
      f->cfg.progress = kustomer_js_truthy(pM);
    }else{
      flush_fatal(f, sqlite3_mprintf("kustomer_flush(): argument 3 "
                  "(options) has an unknown option %Q (known: progress)",
                  pM->string));
    }
  }
  cJSON_Delete(pOpt);
  return f->zFatal ? SQLITE_ERROR : SQLITE_OK;
}

/* Whether the connection can flush now. */
static int flush_may_run(Flush *f){
  char *zErr = kustomer_may_commit(f->db, "kustomer_flush",
                                   "what is sent cannot be rolled back");
  if( zErr ) flush_fatal(f, zErr);
  return zErr==0;
}

/* Step 1: the arguments, the outbox's configuration, the key, the HTTP
** handles and the limiter. */
static int flush_open(Flush *f, sqlite3_context *ctx, int argc,
                      sqlite3_value **argv){
  double tLimit = -1;
  char *zErr = 0;
  int rc;
  f->db = sqlite3_context_db_handle(ctx);
  if( sqlite3_value_type(argv[0])!=SQLITE_TEXT ){
    flush_fatal(f, sqlite3_mprintf("kustomer_flush(): argument 1 (outbox) "
                "must be the name of a kustomer_outbox table"));
    return SQLITE_ERROR;
  }
  f->zName = (const char*)sqlite3_value_text(argv[0]);
  if( argc>1 && sqlite3_value_type(argv[1])!=SQLITE_NULL ){
    tLimit = sqlite3_value_double(argv[1]);
    if( !(tLimit>0) ){
      flush_fatal(f, sqlite3_mprintf("kustomer_flush(): argument 2 (seconds) "
                                     "must be a positive number"));
      return SQLITE_ERROR;
    }
  }
  if( !flush_may_run(f) ) return SQLITE_ERROR;
  rc = kustomer_outbox_store_init(&f->store, f->db, "main", f->zName);
  if( rc==SQLITE_OK ){
    rc = kustomer_outbox_config_read(&f->store, &f->cfg, &zErr);
  }
  if( rc==SQLITE_OK && argc>2 ) rc = flush_options(f, argv[2]);
  if( rc==SQLITE_OK ){
    rc = kustomer_settings_parse(f->cfg.zSettings,
                                 (int)strlen(f->cfg.zSettings), &f->pSet,
                                 &zErr);
  }
  if( rc==SQLITE_OK ){
    sqlite3_free(zErr);
    zErr = 0;
    rc = kustomer_api_auth(f->pSet, 1, &f->zAuth, &zErr);
  }
  if( rc ){
    if( zErr ) flush_fatal(f, sqlite3_mprintf("kustomer_flush(): %s", zErr));
    else if( f->zFatal==0 ) f->rc = rc;
    sqlite3_free(zErr);
    return rc;
  }
  f->bProgress = f->cfg.progress && isatty(2);
  kustomer_limiter_init(&f->lim, f->cfg.rateLimit, f->cfg.budget,
                        f->cfg.rateWindow);
  rc = kustomer_multi_new(&f->pMulti, f->cfg.concurrency);
  if( rc==SQLITE_OK ) rc = kustomer_http_new(&f->pHttp);
  if( rc==SQLITE_OK ) rc = kustomer_idmap_open(f->db, &f->pIds);
  if( rc ){
    f->rc = rc;
    return rc;
  }
  f->tStart = kustomer_clock();
  f->tDeadline = tLimit>0 ? f->tStart + tLimit : 1e300;
  return SQLITE_OK;
}

/* Step 2: claim the outbox for this process (another live one's 'sending'
** rows are in flight: one flush at a time; its process id is kept in
** <name>_config while it runs, and a killed flush leaves a dead one
** behind), upgrade older storage, put a killed flush's 'sending' rows
** back to pending (their requests may or may not have arrived), and open
** the file's request ledger, where earlier starts are counted. */
static int flush_claim(Flush *f){
  sqlite3_stmt *p;
  char *zErr = 0;
  int rc;
  flush_begin(f);
  p = flush_stmt(f, KOB_CONFIG_GET);
  if( p ){
    sqlite3_bind_text(p, 1, "flushing", -1, SQLITE_STATIC);
    if( sqlite3_step(p)==SQLITE_ROW ){
      int pid = sqlite3_column_int(p, 0);
      if( kustomer_pid_live(pid) ){
        flush_fatal(f, sqlite3_mprintf("kustomer_flush(): %s is being "
                    "flushed by process %d", f->zName, pid));
      }
    }
    sqlite3_reset(p);
  }
  if( f->zFatal==0 && f->rc==SQLITE_OK ){
    flush_sql_error(f, kustomer_ledger_create(f->db));
  }
  if( f->zFatal==0 && f->rc==SQLITE_OK ){
    rc = kustomer_outbox_upgrade(&f->store, &zErr);
    if( rc ){
      flush_fatal(f, sqlite3_mprintf("kustomer_flush(): cannot upgrade %s: "
                  "%s", f->zName, zErr ? zErr : sqlite3_errmsg(f->db)));
      sqlite3_free(zErr);
    }
  }
  if( f->zFatal==0 && (p = flush_stmt(f, KOB_CONFIG_PUT))!=0 ){
    sqlite3_bind_text(p, 1, "flushing", -1, SQLITE_STATIC);
    sqlite3_bind_int(p, 2, (int)getpid());
    flush_step(f, p);
    f->bClaimed = f->rc==SQLITE_OK;
    flush_step(f, flush_stmt(f, KOB_RECOVER));
  }
  if( f->zFatal==0 && f->rc==SQLITE_OK ){
    flush_sql_error(f, kustomer_ledger_open(f->db, &f->pLedger));
    f->lim.pLedger = f->pLedger;
    /* Old starts leave every window (the longest is an hour). */
    if( f->pLedger ){
      flush_sql_error(f, kustomer_ledger_prune(f->pLedger,
                                               kustomer_wall() - 3700));
    }
  }
  flush_commit(f);
  if( f->zFatal || f->rc ) return SQLITE_ERROR;
  f->nTotal = count_status(f, "pending");
  return f->rc;
}

/* Step 3: deliver until nothing is left, the seconds are up, or something
** stops the flush.  Bulk jobs (posted, polled, their results applied) and
** the pipeline's requests go out side by side, jobs first; lookups of
** customers that exist go one at a time when nothing else is out. */
static void flush_run(Flush *f){
  while( f->zFatal==0 && f->rc==SQLITE_OK ){
    double t = kustomer_clock(), tNext = 0, tJob = 0, w, tWake;
    int nRunning = kustomer_multi_running(f->pMulti), bJobs, bRows;
    if( t>=f->tDeadline && nRunning==0 ) break;
    if( t<f->tDeadline ){
      if( nRunning==0 && kustomer_limiter_wait(&f->lim, 0)<=0
       && lookup_round(f) ){
        progress_draw(f, 0);
        continue;
      }
      if( kustomer_limiter_wait(&f->lim, 0)<=0 ) job_new(f);
      jobs_start(f);
    }
    pipeline_start(f);
    if( kustomer_multi_running(f->pMulti) ){
      pipeline_collect(f, 50);
      progress_draw(f, 0);
      continue;
    }
    /* Nothing in flight: wait for the limiter, a job's next poll or rows
    ** due later, or stop when nothing is left. */
    bJobs = jobs_active(f, &tJob);
    bRows = work_left(f, &tNext);
    if( !bRows && !bJobs ) break;
    w = kustomer_limiter_wait(&f->lim, 0);
    tWake = 1e300;
    if( bRows ){
      double d = tNext - kustomer_wall();   /* seconds from now */
      tWake = t + (d > w ? d : w);
    }
    if( bJobs ){
      double tJ = tJob > t + w ? tJob : t + w;
      if( tJ < tWake ) tWake = tJ;
    }
    if( tWake >= f->tDeadline ) break;
    /* at least a little: due rows may wait for a job slot to free */
    kustomer_sleep(tWake - t > 0.25 ? 0.25 : tWake - t < 0.01 ? 0.01
                   : tWake - t);
  }
}

/* Wait for the requests in flight, close any transaction, and give the
** outbox back. */
static void flush_release(Flush *f){
  while( f->pMulti && kustomer_multi_running(f->pMulti) && f->rc==SQLITE_OK ){
    pipeline_collect(f, 100);
  }
  jobs_stop(f);
  /* Never leave the caller's connection inside a transaction. */
  while( f->nTxn>0 ) flush_commit(f);
  if( f->bClaimed ){
    sqlite3_stmt *p;
    int rc = f->rc;
    f->rc = SQLITE_OK;      /* the release is tried whatever happened */
    flush_begin(f);
    if( (p = flush_stmt(f, KOB_CONFIG_DEL))!=0 ){
      sqlite3_bind_text(p, 1, "flushing", -1, SQLITE_STATIC);
      sqlite3_step(p);
      sqlite3_reset(p);
    }
    flush_commit(f);
    if( rc ) f->rc = rc;
  }
  progress_draw(f, 1);
}

/* Step 4: the result: an SQL error, or the summary. */
static void flush_summary(Flush *f, sqlite3_context *ctx){
  sqlite3_str *pOut;
  int nInvalid, nPending;
  if( f->zFatal ){
    sqlite3_result_error(ctx, f->zFatal, -1);
    return;
  }
  if( f->rc ){
    kustomer_result_code(ctx, f->rc);
    return;
  }
  nInvalid = count_status(f, "invalid");
  nPending = count_status(f, "pending");
  pOut = sqlite3_str_new(0);
  sqlite3_str_appendf(pOut, "{\"sent\":%d,\"failed\":%d,\"invalid\":%d,"
                      "\"skipped\":%d,\"pending\":%d,\"requests\":%d,"
                      "\"resends\":%d,\"seconds\":%.3f",
                      f->nDelivered, f->nFailed, nInvalid,
                      count_status(f, "skipped"), nPending,
                      f->nRequests, f->nResends, kustomer_clock() - f->tStart);
  if( nPending>0 ){
    /* rows are left: when the rate window (or a 429's pause) next lets a
    ** request start, so that a short flush says why it stopped */
    sqlite3_str_appendf(pOut, ",\"next_request_in\":%.3f",
                        kustomer_limiter_wait(&f->lim, 0));
  }
  sqlite3_str_appendchar(pOut, 1, '}');
  kustomer_result_str(ctx, pOut, 1);
}

static void flush_free(Flush *f){
  int i;
  for(i=0; i<MAX_JOBS; i++) job_free(&f->aJob[i]);
  kustomer_outbox_store_close(&f->store);
  kustomer_multi_free(f->pMulti);
  if( f->pHttp ) kustomer_http_unref(f->pHttp);
  kustomer_api_auth_free(f->zAuth);
  cache_free(&f->cache);
  kustomer_limiter_free(&f->lim);
  kustomer_ledger_close(f->pLedger);
  kustomer_idmap_close(f->pIds);
  kustomer_settings_free(f->pSet);
  kustomer_outbox_config_clear(&f->cfg);
  sqlite3_free(f->zFatal);
}

static void flush_func(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  Flush f;
  memset(&f, 0, sizeof(f));
  if( flush_open(&f, ctx, argc, argv)==SQLITE_OK
   && flush_claim(&f)==SQLITE_OK ){
    flush_run(&f);
  }
  flush_release(&f);
  flush_summary(&f, ctx);
  flush_free(&f);
}

int kustomer_register_flush(sqlite3 *db){
  int nArg, rc = SQLITE_OK;
  for(nArg=1; nArg<=3 && rc==SQLITE_OK; nArg++){
    rc = sqlite3_create_function(db, "kustomer_flush", nArg,
             SQLITE_UTF8 | SQLITE_DIRECTONLY | SQLITE_RESULT_SUBTYPE, 0,
             flush_func, 0, 0);
  }
  return rc;
}
