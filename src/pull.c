/*
** kustomer_pull(sync [, seconds [, options]]): bring the tables of a
** kustomer_sync up to date with Kustomer and return a JSON summary
**
**   {"streams":{"customer":{"rows":..,"deleted":..,"pages":..,
**    "requests":..,"caught_up":true,"error":null},..},"requests":..,
**    "searches":..,"waited":..,"seconds":..,"errors":[..]}
**
** Reading rules (docs/sync-design.md, 2.3):
** - search streams read by keyset on <ctx>_updated_at, never by page
**   number across a changing set: page 1 of "gte cursor, lte the run's
**   start", sorted ascending, includeDeleted; the cursor moves to the
**   page's greatest updatedAt.  A full page all at the cursor is a tie:
**   its records are read by page number within "gte T, lte T" (restarted
**   when meta.total changes), then the cursor moves past T;
** - a stream starts in the archive (POST /v1/customers/archive/search,
**   records older than two years), then the standard search; each run's
**   first turn re-reads lookback_seconds before the cursor (the index
**   lags behind writes);
** - work sessions: every run re-reads the active ones, then pages newest
**   first until a page holds only ended sessions already stored; those
**   stored as active that are no longer listed are read by id;
** - klasses (GET /v1/klasses) give a stream kobject:<klass> each, written
**   to kobject and kobject_<klass>;
** - reference streams (users, teams, tags, ...) make a full pass of their
**   lists every reimport_hours, resumed at its page; a complete pass marks
**   deleted what it did not see;
** - the audit log's deletes (entries after the last one read) mark rows
**   of the other streams deleted; a 403 disables that stream alone;
** - streams take turns of turn_pages pages, so that one large backfill
**   does not keep the others stale.
**
** Durability: each page is written with its rows, their child rows and
** the stream's new state in one BEGIN IMMEDIATE ... COMMIT, after the
** response came back: no write lock is held while a request is out, and a
** kill loses at most the page in flight.  Rows are written only when
** their record is as new as the stored one (syncmap.c), so pages read
** again change nothing.
**
** Limits: every request start goes into the file's ledger with the
** outbox's (kapi.c), within floor(rate_limit*budget) requests and
** floor(search_limit*budget) searches per window; x-ratelimit-remaining
** down to (1-budget) of the limit pauses until the reset; 429s wait.
** 401/403 (but the audit log's 403) and a missing key stop the pull with
** an SQL error; other persistent failures end one stream's run with its
** error set.  No request starts once the seconds are up.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

#define PULL_MAX_TRIES   5
#define PULL_TIE_PAGES   100      /* Kustomer's search page cap */
#define PULL_MAX_STREAMS 256      /* core streams and klasses */
#define PULL_NO_DEADLINE 1e300
#define PULL_BUSY_SECONDS 30      /* waits for another writer */

/* Where a stream stands: its <name>_state row, as read and as written. */
typedef struct Stream Stream;
struct Stream {
  char *zName;              /* customer, kobject:order, ... */
  int iDef;                 /* in kustomer_sync_stream[] */
  char *zTable;             /* the table written (kobject_order) */
  char *zKlass;             /* kobject streams: the klass */
  char *zContext;           /* search: queryContext */
  char *zKey;               /* search: the cursor's attribute */
  char *zPhase;
  char *zCursor;            /* greatest updatedAt read (ISO, ms) */
  char *zTieAt;             /* tie mode: the updatedAt tied */
  int iPage;                /* tie mode, lists: the next page */
  sqlite3_int64 nTieTotal;  /* tie mode: meta.total of its first page */
  char *zPassStarted;       /* a resync pass: when it started */
  char *zBack;              /* reference pass: "<part> <path>" to read next */
  char *zNextDue;           /* reference streams: the next pass is due */
  char *zRecentFrom;        /* recent_first: the last day's start */
  /* this run */
  int nRows, nDeleted, nPages, nRequests;
  int nPendingRequests;     /* requests not yet written to the state */
  int bFirst;               /* the run's first turn is still to come */
  int bDone, bCaughtUp;
  int bTriedKey;            /* the other form of zKey was tried */
  char *zError;
  sqlite3_int64 nTotal;     /* meta.total of the last page: the ETA */
};

typedef struct Pull Pull;
struct Pull {
  sqlite3 *db;
  char *zDb, *zName;
  KSyncConfig cfg;
  KSettings *pSet;
  char *zAuth;              /* "Bearer <key>", wiped when done */
  KHttp *pHttp;
  KLedger *pLedger;
  KLimiter lim;
  KSyncMap *pMap;
  double tStart, tDeadline; /* kustomer_clock() */
  char zUntil[KUSTOMER_ISO_LEN];  /* the run's start: the keyset's end */
  Stream *aStream;
  int nStream;
  unsigned mOnly;           /* options.streams (0: every stream) */
  Stream *pCur;             /* the stream whose request is out */
  int bCurSearch;           /* and it is a search */
  int nRequests, nSearches;
  double waited;
  int bProgress;
  int bClaimed;
  int bTxn;                 /* a transaction of the pull's own is open */
  char *zFatal;             /* stops the pull: an SQL error */
  int rc;                   /* first SQLite error */
  double tDraw;             /* last progress line */
};

/* ---- Errors, transactions, state --------------------------------------- */

static void pull_fatal(Pull *p, char *zMsg){
  if( p->zFatal==0 ){
    p->zFatal = kustomer_api_redact(zMsg, p->zAuth);
    if( p->zFatal==0 ) p->rc = SQLITE_NOMEM;
  }else{
    sqlite3_free(zMsg);
  }
}

static void pull_sql_error(Pull *p, int rc){
  if( p->rc==SQLITE_OK && rc!=SQLITE_OK ){
    p->rc = rc;
    if( rc!=SQLITE_NOMEM ){
      const char *zMsg = p->pMap ? kustomer_syncmap_errmsg(p->pMap)
                                 : sqlite3_errmsg(p->db);
      pull_fatal(p, sqlite3_mprintf("kustomer_pull(): %s", zMsg));
    }
  }
}

static int pull_exec(Pull *p, char *zSql){
  int rc;
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_exec(p->db, zSql, 0, 0, 0);
  sqlite3_free(zSql);
  return rc;
}

/* BEGIN IMMEDIATE: the write lock at once, waiting in the busy handler
** (a deferred transaction that read first could only fail on meeting
** another writer). */
static int pull_begin(Pull *p){
  int rc, nTry;
  /* Another connection's short write (a refused pull's claim, an INSERT
  ** into an outbox) must not end a long pull, even on a connection
  ** without a busy timeout: wait for it, up to PULL_BUSY_SECONDS. */
  for(nTry=0; ; nTry++){
    rc = sqlite3_exec(p->db, "BEGIN IMMEDIATE", 0, 0, 0);
    if( (rc&0xff)!=SQLITE_BUSY || nTry*0.02>=PULL_BUSY_SECONDS ) break;
    kustomer_sleep(0.02);
  }
  p->bTxn = rc==SQLITE_OK;
  pull_sql_error(p, rc);
  return rc;
}

/* Commit, or roll back after a failure (rc): what the tables look like
** is then what syncmap.c must read again. */
static int pull_end(Pull *p, int rc){
  if( rc==SQLITE_OK ) rc = sqlite3_exec(p->db, "COMMIT", 0, 0, 0);
  if( rc ){
    pull_sql_error(p, rc);
    if( !sqlite3_get_autocommit(p->db) ){
      sqlite3_exec(p->db, "ROLLBACK", 0, 0, 0);
    }
    if( p->pMap ) kustomer_syncmap_forget(p->pMap);
  }
  p->bTxn = 0;
  return rc;
}

static void str_set(char **pz, const char *z){
  sqlite3_free(*pz);
  *pz = z ? sqlite3_mprintf("%s", z) : 0;
}

/* Write a stream's state and what this page added to its counts. */
static int state_write(Pull *p, Stream *s, int nRows, int nDeleted,
                       int nPages){
  sqlite3_stmt *pStmt = 0;
  char *zSql = sqlite3_mprintf(
      "INSERT INTO \"%w\".\"%w_state\"(stream, phase) VALUES(?13, ?1)"
      " ON CONFLICT(stream) DO UPDATE SET phase=?1, cursor=?2, tie_at=?3,"
      " tie_page=?4, tie_total=?5, pass_started_at=?6,"
      " \"rows\"=\"rows\"+?7, deleted=deleted+?8, pages=pages+?9,"
      " requests=requests+?10, last_ok_at=coalesce(?11, last_ok_at),"
      " error=?12, search_key=?14, back_cursor=?15, next_due_at=?16",
      p->zDb, p->zName);
  int rc;
  char zNow[KUSTOMER_ISO_LEN];
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(p->db, zSql, -1, &pStmt, 0);
  sqlite3_free(zSql);
  if( rc ) return rc;
  kustomer_iso_format((sqlite3_int64)(kustomer_wall()*1000), zNow);
  sqlite3_bind_text(pStmt, 1, s->zPhase, -1, SQLITE_STATIC);
  sqlite3_bind_text(pStmt, 2, s->zCursor, -1, SQLITE_STATIC);
  sqlite3_bind_text(pStmt, 3, s->zTieAt, -1, SQLITE_STATIC);
  if( s->iPage>0 ) sqlite3_bind_int(pStmt, 4, s->iPage);
  if( s->zTieAt ) sqlite3_bind_int64(pStmt, 5, s->nTieTotal);
  sqlite3_bind_text(pStmt, 6, s->zPassStarted, -1, SQLITE_STATIC);
  sqlite3_bind_int(pStmt, 7, nRows);
  sqlite3_bind_int(pStmt, 8, nDeleted);
  sqlite3_bind_int(pStmt, 9, nPages);
  sqlite3_bind_int(pStmt, 10, s->nPendingRequests);
  if( s->zError==0 ) sqlite3_bind_text(pStmt, 11, zNow, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(pStmt, 12, s->zError, -1, SQLITE_STATIC);
  sqlite3_bind_text(pStmt, 13, s->zName, -1, SQLITE_STATIC);
  sqlite3_bind_text(pStmt, 14, s->zContext ? s->zKey : 0, -1, SQLITE_STATIC);
  sqlite3_bind_text(pStmt, 15, s->zBack, -1, SQLITE_STATIC);
  sqlite3_bind_text(pStmt, 16, s->zNextDue, -1, SQLITE_STATIC);
  sqlite3_step(pStmt);
  rc = sqlite3_finalize(pStmt);
  if( rc==SQLITE_OK ) s->nPendingRequests = 0;
  return rc;
}

/* End a stream's run with an error (zMsg owned), kept in its state. */
static void stream_error(Pull *p, Stream *s, char *zMsg){
  int rc;
  sqlite3_free(s->zError);
  s->zError = kustomer_api_redact(zMsg, p->zAuth);
  s->bDone = 1;
  if( pull_begin(p) ) return;
  rc = state_write(p, s, 0, 0, 0);
  pull_end(p, rc);
}

/* ---- Requests ------------------------------------------------------------ */

/* The start of every attempt: into the ledger, counted. */
static int pull_on_start(void *pArg){
  Pull *p = (Pull*)pArg;
  int bSearch = p->bCurSearch;
  int rc, nTry;
  for(nTry=0; ; nTry++){
    rc = kustomer_limiter_add(&p->lim, bSearch);
    if( (rc&0xff)!=SQLITE_BUSY || nTry*0.02>=PULL_BUSY_SECONDS ) break;
    kustomer_sleep(0.02);
  }
  if( rc ){
    pull_sql_error(p, rc);
    return 1;
  }
  p->nRequests++;
  if( bSearch ) p->nSearches++;
  if( p->pCur ){
    p->pCur->nRequests++;
    p->pCur->nPendingRequests++;
  }
  return 0;
}

static void pull_sleep(void *pArg, double s){
  Pull *p = (Pull*)pArg;
  if( s>0 ) p->waited += s;
#ifdef PULL_SLEEP_MAX
  /* the fuzz target's build: waits cut short */
  if( s>PULL_SLEEP_MAX ) s = PULL_SLEEP_MAX;
#endif
  kustomer_sleep(s);
}

/* What a request came to. */
#define REQ_OK      0       /* a 2xx in *pResp */
#define REQ_STATUS  1       /* another status in *pResp (not 401/403) */
#define REQ_STOP    2       /* the seconds are up, or the pull stops */

/*
** One request (a search when s->zContext and the path is a search).  A
** refused key stops the pull (SQL error); a failure after the attempts
** allowed is REQ_STATUS with the response, or sets the stream's error.
*/
static int pull_request(Pull *p, Stream *s, const char *zMethod,
                        const char *zPath, const char *zBody, int bSearch,
                        KHttpResp *pResp){
  char *zUrl = sqlite3_mprintf("%s%s", p->pSet->zBase, zPath);
  KApiCall call;
  KHttpReq req;
  int rc;
  memset(pResp, 0, sizeof(*pResp));
  if( zUrl==0 ){
    p->rc = SQLITE_NOMEM;
    return REQ_STOP;
  }
  if( kustomer_clock()>=p->tDeadline ){
    /* the seconds are up: whatever loop asks, no more requests */
    sqlite3_free(zUrl);
    return REQ_STOP;
  }
  kustomer_api_request(&req, zMethod, zUrl, p->zAuth, p->pSet);
  if( zBody ){
    req.zBody = zBody;
    req.nBody = (int)strlen(zBody);
  }
  memset(&call, 0, sizeof(call));
  call.pHttp = p->pHttp;
  call.pLim = &p->lim;
  call.bSearch = bSearch;
  call.nMaxTries = PULL_MAX_TRIES;
  call.tDeadline = p->tDeadline;
  call.maxWait = p->cfg.rateWindow*2 + 5;
  call.backoffBase = 0.5;
  call.backoffCap = 16.0;
  call.xStart = pull_on_start;
  call.pStartArg = p;
  call.xSleep = pull_sleep;
  p->pCur = s;
  p->bCurSearch = bSearch;
  rc = kustomer_api_call(&call, &req, pResp);
  p->pCur = 0;
  sqlite3_free(zUrl);
  if( rc ){
    p->rc = rc;
    return REQ_STOP;
  }
  if( p->rc || p->zFatal ) return REQ_STOP;
  switch( call.eEnd ){
    case KCALL_OK:
      return REQ_OK;
    case KCALL_STOPPED:
    case KCALL_DEADLINE:
      kustomer_http_resp_clear(pResp);
      return REQ_STOP;
    case KCALL_WAIT: {
      stream_error(p, s, sqlite3_mprintf("%s %s: HTTP 429: Kustomer asks to "
                   "wait %.0f s", zMethod, zPath, call.wait));
      kustomer_http_resp_clear(pResp);
      return REQ_STOP;
    }
    case KCALL_NET: {
      stream_error(p, s, sqlite3_mprintf("%s %s: %s (after %d attempts)",
                   zMethod, zPath, pResp->zErr ? pResp->zErr
                   : "no response", call.nTry));
      kustomer_http_resp_clear(pResp);
      return REQ_STOP;
    }
    default:
      break;
  }
  if( kustomer_api_class(pResp)==KAPI_AUTH
   && !(pResp->status==403 && kustomer_sync_stream[s->iDef].eKind==KSYNC_AUDIT) ){
    char *zMsg = kustomer_api_message(pResp, 300);
    pull_fatal(p, sqlite3_mprintf("kustomer_pull(): Kustomer refused the API "
               "key (HTTP %ld on %s %s)%s%s", pResp->status, zMethod, zPath,
               zMsg ? ": " : "", zMsg ? zMsg : ""));
    sqlite3_free(zMsg);
    kustomer_http_resp_clear(pResp);
    return REQ_STOP;
  }
  return REQ_STATUS;
}

/* The stream's error for a response that is not a 2xx. */
static void stream_status_error(Pull *p, Stream *s, const char *zMethod,
                                const char *zPath, KHttpResp *pResp){
  char *zMsg = kustomer_api_message(pResp, 300);
  stream_error(p, s, sqlite3_mprintf("%s %s: HTTP %ld%s%s", zMethod, zPath,
               pResp->status, zMsg ? ": " : "", zMsg ? zMsg : ""));
  sqlite3_free(zMsg);
}

/* The body of a 2xx as JSON with a data array, or the stream's error. */
static cJSON *page_parse(Pull *p, Stream *s, const char *zPath,
                         const KHttpResp *pResp, const cJSON **ppData){
  char *zErr = 0;
  cJSON *pDoc = kustomer_json_parse(pResp->zBody ? pResp->zBody : "",
                                    pResp->nBody, &zErr);
  const cJSON *pData = pDoc ? kustomer_json_member(pDoc, "data") : 0;
  if( pDoc==0 && zErr==0 ){
    p->rc = SQLITE_NOMEM;
    return 0;
  }
  if( pDoc==0 || !cJSON_IsArray(pData) ){
    stream_error(p, s, sqlite3_mprintf("%s: the response is not a page of "
                 "records (%s)", zPath, zErr ? zErr : "no data array"));
    sqlite3_free(zErr);
    cJSON_Delete(pDoc);
    return 0;
  }
  *ppData = pData;
  return pDoc;
}

/* ---- Pages --------------------------------------------------------------- */

/* A record's updatedAt as ISO ms text into zOut; 0 when it has none. */
static int record_updated_at(const cJSON *pRec, char *zOut){
  const cJSON *pAt = kustomer_json_member(kustomer_json_member(pRec,
                                          "attributes"), "updatedAt");
  sqlite3_int64 ms;
  if( !cJSON_IsString(pAt)
   || !kustomer_iso_ms(pAt->valuestring, (int)strlen(pAt->valuestring), &ms) ){
    return 0;
  }
  kustomer_iso_format(ms, zOut);
  return 1;
}

/*
** Write a page's records (within the caller's transaction): into the
** stream's table, and for a kobject into kobject too.  *pzMax: the
** greatest updatedAt (zMax, KUSTOMER_ISO_LEN bytes; "" for none).
*/
static int page_write(Pull *p, Stream *s, const cJSON *pData, char *zMax,
                      int *pnRows, int *pnDeleted){
  const cJSON *pRec;
  int rc = SQLITE_OK;
  zMax[0] = 0;
  *pnRows = *pnDeleted = 0;
  kustomer_syncmap_now(p->pMap);
  for(pRec=pData->child; rc==SQLITE_OK && pRec; pRec=pRec->next){
    char zAt[KUSTOMER_ISO_LEN];
    const cJSON *pId = kustomer_json_member(pRec, "id");
    int bDeleted = 0;
    /* what is no record is skipped, not fatal: the page's others count */
    if( !cJSON_IsObject(pRec) || !(cJSON_IsString(pId) || cJSON_IsNumber(pId)) ){
      continue;
    }
    if( s->zKlass ){
      rc = kustomer_syncmap_record(p->pMap, "kobject", 0, s->zKlass, pRec,
                                   &bDeleted);
      if( rc==SQLITE_OK ){
        rc = kustomer_syncmap_record(p->pMap, s->zTable, "kobject", 0, pRec,
                                     &bDeleted);
      }
    }else{
      rc = kustomer_syncmap_record(p->pMap, s->zTable, 0, 0, pRec, &bDeleted);
    }
    (*pnRows)++;
    if( bDeleted ) (*pnDeleted)++;
    if( record_updated_at(pRec, zAt) && strcmp(zAt, zMax)>0 ){
      memcpy(zMax, zAt, KUSTOMER_ISO_LEN);
    }
  }
  return rc;
}

/* Commit a page: its records and the stream's state as it now stands. */
static int page_commit(Pull *p, Stream *s, const cJSON *pData, char *zMax,
                       int (*xAfter)(Pull*, Stream*, const char*, int)){
  int nRows = 0, nDeleted = 0, rc;
  if( pull_begin(p) ) return p->rc;
  rc = page_write(p, s, pData, zMax, &nRows, &nDeleted);
  if( rc==SQLITE_OK && xAfter ) rc = xAfter(p, s, zMax, nRows);
  if( rc==SQLITE_OK ) rc = state_write(p, s, nRows, nDeleted, 1);
  rc = pull_end(p, rc);
  if( rc==SQLITE_OK ){
    s->nRows += nRows;
    s->nDeleted += nDeleted;
    s->nPages++;
  }
  return rc;
}

/* ---- Search streams --------------------------------------------------- */

/* ms of an ISO text (the cursor), 0 when absent. */
static sqlite3_int64 iso_ms(const char *z){
  sqlite3_int64 ms = 0;
  if( z ) kustomer_iso_ms(z, (int)strlen(z), &ms);
  return ms;
}

/* The search body: keyset "gte zFrom, lte zTo", ascending.  The context
** and key hold a klass's name, which may hold any character: escaped. */
static char *search_body(Stream *s, const char *zFrom, const char *zTo){
  sqlite3_str *p = sqlite3_str_new(0);
  size_t nKey = strlen(s->zKey);
  sqlite3_str_appendall(p, "{\"queryContext\":\"");
  kustomer_json_string_body(p, s->zContext, strlen(s->zContext));
  sqlite3_str_appendall(p, "\",\"and\":[{\"");
  kustomer_json_string_body(p, s->zKey, nKey);
  sqlite3_str_appendf(p, "\":{\"gte\":\"%s\"}},{\"", zFrom);
  kustomer_json_string_body(p, s->zKey, nKey);
  sqlite3_str_appendf(p, "\":{\"lte\":\"%s\"}}],\"sort\":[{\"", zTo);
  kustomer_json_string_body(p, s->zKey, nKey);
  sqlite3_str_appendall(p, "\":\"asc\"}],\"includeDeleted\":true}");
  return sqlite3_str_finish(p);
}

/* The next state of a keyset stream after a page (inside the page's
** transaction: a resync's sweep goes with it). */
static int search_after(Pull *p, Stream *s, const char *zMax, int nRows){
  int rc = SQLITE_OK;
  if( s->zTieAt ){
    /* tie mode: page iPage of the records at T was read */
    if( nRows<p->cfg.pageSize || (s->nTieTotal>=0
        && (sqlite3_int64)s->iPage*p->cfg.pageSize>=s->nTieTotal) ){
      char zNext[KUSTOMER_ISO_LEN];
      kustomer_iso_format(iso_ms(s->zTieAt)+1, zNext);
      str_set(&s->zCursor, zNext);
      str_set(&s->zTieAt, 0);
      s->iPage = 0;
    }else{
      s->iPage++;
    }
    return SQLITE_OK;
  }
  if( nRows<p->cfg.pageSize ){
    if( zMax[0] ) str_set(&s->zCursor, zMax);
    if( strcmp(s->zPhase, "recent")==0 ){
      /* the last day is read: now the history, up to where it ends (the
      ** last day is read again: it is one day) */
      str_set(&s->zBack, s->zCursor ? s->zCursor : s->zRecentFrom);
      str_set(&s->zCursor, 0);
      str_set(&s->zPhase, "archive");
    }else if( strcmp(s->zPhase, "archive")==0 ){
      str_set(&s->zPhase, "backfill");
    }else{
      if( s->zBack && (s->zCursor==0 || strcmp(s->zBack, s->zCursor)>0) ){
        /* recent_first: the history is read; on from the last day's end */
        str_set(&s->zCursor, s->zBack);
      }
      str_set(&s->zBack, 0);
      str_set(&s->zPhase, "incremental");
      s->bDone = s->bCaughtUp = 1;
      if( s->zPassStarted && p->cfg.zStartDate==0 ){
        /* a resync pass is complete: what it did not see is gone */
        int nSwept = 0;
        rc = kustomer_syncmap_sweep(p->pMap, s->zTable, s->zPassStarted,
                                    &nSwept);
        s->nDeleted += nSwept;
      }
      str_set(&s->zPassStarted, 0);
    }
  }else if( zMax[0] && (s->zCursor==0 || strcmp(zMax, s->zCursor)>0) ){
    str_set(&s->zCursor, zMax);
  }else{
    /* a full page, every record at the cursor: read them by page, from
    ** page 1 of their own search, whose meta.total says how many */
    str_set(&s->zTieAt, zMax[0] ? zMax : s->zCursor);
    s->iPage = 1;
    s->nTieTotal = -1;
  }
  return rc;
}

/* The other form of a kobject stream's cursor attribute (Kustomer's
** documentation shows both). */
static int search_key_other(Stream *s){
  char *zKey;
  if( s->zKlass==0 || s->bTriedKey ) return 0;
  s->bTriedKey = 1;
  if( strcmp(s->zKey, "kobject_updated_at")==0 ){
    zKey = sqlite3_mprintf("%s_updated_at", s->zContext);
  }else{
    zKey = sqlite3_mprintf("kobject_updated_at");
  }
  if( zKey==0 ) return 0;
  sqlite3_free(s->zKey);
  s->zKey = zKey;
  return 1;
}

/* meta.total as an integer (a huge or negative one clamped: casting a
** double out of range is undefined). */
static sqlite3_int64 total_of(const cJSON *pTotal){
  double r = pTotal->valuedouble;
  if( !(r>=0) ) return 0;
  if( r>9e15 ) return (sqlite3_int64)9e15;
  return (sqlite3_int64)r;
}

/* One page of a search stream. */
static void search_page(Pull *p, Stream *s){
  char zFrom[KUSTOMER_ISO_LEN], zMax[KUSTOMER_ISO_LEN];
  const char *zTo = p->zUntil;
  int bArchive = strcmp(s->zPhase, "archive")==0;
  int iPage = s->zTieAt ? s->iPage : 1;
  char *zPath, *zBody;
  const cJSON *pData = 0, *pTotal;
  KHttpResp resp;
  cJSON *pDoc;
  int e;

  if( s->zTieAt ){
    if( iPage>PULL_TIE_PAGES ){
      stream_error(p, s, sqlite3_mprintf("more than %d records share "
                   "updatedAt %s: Kustomer's search cannot page past %d "
                   "pages of them", PULL_TIE_PAGES*p->cfg.pageSize,
                   s->zTieAt, PULL_TIE_PAGES));
      return;
    }
    memcpy(zFrom, s->zTieAt, KUSTOMER_ISO_LEN);
    zTo = s->zTieAt;
  }else{
    sqlite3_int64 ms = s->zCursor ? iso_ms(s->zCursor)
                     : p->cfg.zStartDate ? iso_ms(p->cfg.zStartDate) : 0;
    if( s->bFirst && s->zCursor ) ms -= (sqlite3_int64)(p->cfg.lookback*1000);
    if( s->zCursor==0 && strcmp(s->zPhase, "recent")==0 ){
      /* recent_first: the last day first (not before start_date) */
      sqlite3_int64 msDay = (sqlite3_int64)(kustomer_wall()*1000) - 86400000;
      if( msDay>ms ) ms = msDay;
    }
    if( ms<0 ) ms = 0;
    kustomer_iso_format(ms, zFrom);
    if( strcmp(s->zPhase, "recent")==0 ) str_set(&s->zRecentFrom, zFrom);
    if( s->zBack && strcmp(s->zPhase, "recent")!=0 ){
      /* recent_first's history ends where the last day's reading did */
      zTo = s->zBack;
    }
  }
  s->bFirst = 0;
  zPath = sqlite3_mprintf("/v1/customers/%ssearch?page=%d&pageSize=%d",
                          bArchive ? "archive/" : "", iPage, p->cfg.pageSize);
  zBody = search_body(s, zFrom, zTo);
  if( zPath==0 || zBody==0 ){
    sqlite3_free(zPath);
    sqlite3_free(zBody);
    p->rc = SQLITE_NOMEM;
    return;
  }
  e = pull_request(p, s, "POST", zPath, zBody, 1, &resp);
  if( e==REQ_STATUS ){
    if( bArchive && (resp.status==400 || resp.status==403
                     || resp.status==404) && s->zTieAt==0 ){
      /* no archive for this key or context: the standard search has the
      ** last two years */
      str_set(&s->zPhase, "backfill");
    }else if( resp.status==400 && search_key_other(s) ){
      /* tried again with the other attribute at the next page */
    }else{
      stream_status_error(p, s, "POST", zPath, &resp);
    }
    kustomer_http_resp_clear(&resp);
  }else if( e==REQ_OK ){
    pDoc = page_parse(p, s, zPath, &resp, &pData);
    kustomer_http_resp_clear(&resp);
    if( pDoc ){
      pTotal = kustomer_json_member(kustomer_json_member(pDoc, "meta"),
                                    "total");
      if( cJSON_IsNumber(pTotal) ) s->nTotal = total_of(pTotal);
      if( s->zTieAt && s->iPage>1 && cJSON_IsNumber(pTotal)
       && total_of(pTotal)!=s->nTieTotal ){
        /* the tied set changed between pages: read it again from page 1 */
        s->nTieTotal = total_of(pTotal);
        s->iPage = 1;
        page_commit(p, s, pData, zMax, 0);
      }else{
        if( s->zTieAt && s->iPage==1 ){
          s->nTieTotal = cJSON_IsNumber(pTotal) ? total_of(pTotal) : -1;
        }
        page_commit(p, s, pData, zMax, search_after);
      }
      cJSON_Delete(pDoc);
    }
  }else{
    s->bDone = 1;
  }
  sqlite3_free(zPath);
  sqlite3_free(zBody);
}

/* ---- Lists: klasses and work sessions ------------------------------------ */

/* links.next of a list page zCur, as a path on the API host, or NULL (and
** NULL when it is zCur itself: a list that names itself as its next page
** would be read forever). */
static char *list_next(Pull *p, const cJSON *pDoc, const char *zCur){
  const cJSON *pNext = kustomer_json_member(kustomer_json_member(pDoc,
                                            "links"), "next");
  const char *z;
  size_t nBase = strlen(p->pSet->zBase);
  if( !cJSON_IsString(pNext) ) return 0;
  z = pNext->valuestring;
  if( strncmp(z, p->pSet->zBase, nBase)==0 ) z += nBase;
  /* the key goes with the request: never to another host */
  if( z[0]!='/' || z[1]=='/' || strchr(z, '\\') ) return 0;
  if( zCur && strcmp(z, zCur)==0 ) return 0;
  return sqlite3_mprintf("%s", z);
}

/* The klasses: a stream kobject:<klass> for each, its tables created. */
static int klass_stream_add(Pull *p, const char *zKlass);

static void klasses_read(Pull *p, Stream *s){
  char *zPath = sqlite3_mprintf("/v1/klasses?pageSize=%d",
                                p->cfg.listPageSize);
  int nKlass = 0, nSkipped = 0;
  while( zPath && p->rc==SQLITE_OK && p->zFatal==0 && !s->bDone ){
    KHttpResp resp;
    const cJSON *pData = 0, *pK;
    cJSON *pDoc;
    int e = pull_request(p, s, "GET", zPath, 0, 0, &resp);
    if( e==REQ_STATUS ){
      stream_status_error(p, s, "GET", zPath, &resp);
      kustomer_http_resp_clear(&resp);
      break;
    }
    if( e!=REQ_OK ){
      s->bDone = 1;
      break;
    }
    pDoc = page_parse(p, s, zPath, &resp, &pData);
    kustomer_http_resp_clear(&resp);
    if( pDoc==0 ) break;
    for(pK=pData->child; pK && p->rc==SQLITE_OK; pK=pK->next){
      const cJSON *pName = kustomer_json_member(kustomer_json_member(pK,
                                                "attributes"), "name");
      if( cJSON_IsString(pName) && pName->valuestring[0] ){
        int rc = klass_stream_add(p, pName->valuestring);
        if( rc==SQLITE_FULL ) nSkipped++;
        else pull_sql_error(p, rc);
        nKlass++;
      }
    }
    {
      char *zNext = list_next(p, pDoc, zPath);
      sqlite3_free(zPath);
      zPath = zNext;
    }
    cJSON_Delete(pDoc);
    if( zPath==0 ){
      /* every klass is known */
      int rc;
      s->bDone = s->bCaughtUp = 1;
      str_set(&s->zPhase, "incremental");
      if( pull_begin(p)==SQLITE_OK ){
        rc = pull_exec(p, sqlite3_mprintf("UPDATE \"%w\".\"%w_state\" SET"
                       " \"rows\"=%d WHERE stream=%Q", p->zDb, p->zName,
                       nKlass, s->zName));
        if( rc==SQLITE_OK ) rc = state_write(p, s, 0, 0, 1);
        pull_end(p, rc);
      }
      s->nRows = nKlass;
      s->nPages++;
      if( nSkipped>0 ){
        stream_error(p, s, sqlite3_mprintf("%d of %d klasses are not read: "
                     "a sync reads at most %d streams", nSkipped, nKlass,
                     PULL_MAX_STREAMS));
        s->bCaughtUp = 0;
      }
    }
  }
  sqlite3_free(zPath);
  s->bDone = 1;
}

/* Whether every record of a work-session page is stored as it is, and
** ended. */
static int sessions_known(Pull *p, const cJSON *pData){
  const cJSON *pRec;
  for(pRec=pData->child; pRec; pRec=pRec->next){
    const cJSON *pId = kustomer_json_member(pRec, "id");
    const cJSON *pOut = kustomer_json_member(kustomer_json_member(pRec,
                                             "attributes"), "signedOutAt");
    char zAt[KUSTOMER_ISO_LEN];
    if( !cJSON_IsString(pId) || !cJSON_IsString(pOut)
     || !record_updated_at(pRec, zAt)
     || !kustomer_syncmap_stored(p->pMap, "work_session", pId->valuestring,
                                 zAt) ){
      return 0;
    }
  }
  return 1;
}

/* One page of the work-session list at zPath; *pzNext its next page. */
static int sessions_page(Pull *p, Stream *s, const char *zPath,
                         int bStopWhenKnown, int bPaged, char **pzNext){
  KHttpResp resp;
  const cJSON *pData = 0;
  char zMax[KUSTOMER_ISO_LEN];
  cJSON *pDoc;
  int bKnown, e = pull_request(p, s, "GET", zPath, 0, 0, &resp);
  *pzNext = 0;
  if( e==REQ_STATUS ){
    stream_status_error(p, s, "GET", zPath, &resp);
    kustomer_http_resp_clear(&resp);
    return 0;
  }
  if( e!=REQ_OK ){
    s->bDone = 1;
    return 0;
  }
  pDoc = page_parse(p, s, zPath, &resp, &pData);
  kustomer_http_resp_clear(&resp);
  if( pDoc==0 ) return 0;
  bKnown = bStopWhenKnown && sessions_known(p, pData);
  *pzNext = list_next(p, pDoc, zPath);
  if( bKnown ){
    sqlite3_free(*pzNext);
    *pzNext = 0;
  }
  if( bPaged ){
    /* the backfill's place, committed with its page */
    if( *pzNext ){
      s->iPage = (s->iPage>0 ? s->iPage : 1) + 1;
    }else{
      str_set(&s->zPhase, "incremental");
      s->iPage = 0;
    }
  }
  page_commit(p, s, pData, zMax, 0);
  cJSON_Delete(pDoc);
  return 1;
}

/* Sessions stored as active that the active list no longer holds: each
** read by id (it ended, or is gone). */
static void sessions_ended(Pull *p, Stream *s, const char *zBefore){
  sqlite3_stmt *pStmt = 0;
  char *zSql = sqlite3_mprintf("SELECT id FROM \"%w\".\"%wwork_session\""
                               " WHERE signed_out_at IS NULL AND _deleted=0"
                               " AND _synced_at<?1 ORDER BY id", p->zDb,
                               p->cfg.zPrefix ? p->cfg.zPrefix : "");
  char **azId = 0;
  int nId = 0, i;
  if( zSql && sqlite3_prepare_v2(p->db, zSql, -1, &pStmt, 0)==SQLITE_OK ){
    sqlite3_bind_text(pStmt, 1, zBefore, -1, SQLITE_STATIC);
    while( sqlite3_step(pStmt)==SQLITE_ROW ){
      char **a = sqlite3_realloc64(azId, sizeof(char*)*(nId+1));
      if( a==0 ) break;
      azId = a;
      azId[nId] = sqlite3_mprintf("%s", sqlite3_column_text(pStmt, 0));
      if( azId[nId] ) nId++;
    }
  }
  sqlite3_finalize(pStmt);
  sqlite3_free(zSql);
  for(i=0; i<nId; i++){
    char *zPath = 0;
    KHttpResp resp;
    int e;
    if( p->rc || p->zFatal || s->bDone ) break;
    zPath = sqlite3_mprintf("/v1/routing/work-sessions/%s", azId[i]);
    if( zPath==0 ) break;
    e = pull_request(p, s, "GET", zPath, 0, 0, &resp);
    if( e==REQ_OK ){
      char *zErr = 0;
      cJSON *pDoc = kustomer_json_parse(resp.zBody ? resp.zBody : "",
                                        resp.nBody, &zErr);
      const cJSON *pRec = kustomer_json_member(pDoc, "data");
      if( cJSON_IsObject(pRec) ){
        cJSON *pArr = cJSON_CreateArray();
        char zMax[KUSTOMER_ISO_LEN];
        if( pArr ){
          cJSON_AddItemReferenceToArray(pArr, (cJSON*)pRec);
          page_commit(p, s, pArr, zMax, 0);
          cJSON_Delete(pArr);
        }
      }
      sqlite3_free(zErr);
      cJSON_Delete(pDoc);
    }else if( e==REQ_STATUS && resp.status==404 ){
      /* gone: kept, marked */
      if( pull_begin(p)==SQLITE_OK ){
        int rc = pull_exec(p, sqlite3_mprintf("UPDATE \"%w\".\"%wwork_session\""
                           " SET _deleted=1 WHERE id=%Q", p->zDb,
                           p->cfg.zPrefix ? p->cfg.zPrefix : "", azId[i]));
        pull_end(p, rc);
      }
    }else if( e==REQ_STATUS ){
      stream_status_error(p, s, "GET", zPath, &resp);
    }
    kustomer_http_resp_clear(&resp);
    sqlite3_free(zPath);
  }
  for(i=0; i<nId; i++) sqlite3_free(azId[i]);
  sqlite3_free(azId);
}

/* A turn of the work-session stream: its whole run (lists are small next
** to searches, and their pages are not keyset). */
static void sessions_turn(Pull *p, Stream *s){
  char zStart[KUSTOMER_ISO_LEN];
  char *zPath, *zNext = 0;
  int bBackfill;
  kustomer_iso_format((sqlite3_int64)(kustomer_wall()*1000), zStart);
  /* the active ones, every run */
  zPath = sqlite3_mprintf("/v1/routing/work-sessions?active=true&pageSize=%d",
                          p->cfg.listPageSize);
  while( zPath && !s->bDone && p->rc==SQLITE_OK && p->zFatal==0 ){
    if( !sessions_page(p, s, zPath, 0, 0, &zNext) ) break;
    sqlite3_free(zPath);
    zPath = zNext;
  }
  sqlite3_free(zPath);
  if( s->bDone || p->rc || p->zFatal ) return;
  sessions_ended(p, s, zStart);
  /* then newest first: the backfill resumes at its page (new sessions
  ** only push the others down: some are read twice, none missed); later
  ** runs stop at a page of known ended sessions */
  bBackfill = strcmp(s->zPhase, "backfill")==0;
  zPath = sqlite3_mprintf("/v1/routing/work-sessions?page=%d&pageSize=%d",
                          bBackfill && s->iPage>0 ? s->iPage : 1,
                          p->cfg.listPageSize);
  while( zPath && !s->bDone && p->rc==SQLITE_OK && p->zFatal==0 ){
    if( !sessions_page(p, s, zPath, !bBackfill, bBackfill, &zNext) ) break;
    sqlite3_free(zPath);
    zPath = zNext;
  }
  sqlite3_free(zPath);
  if( !s->bDone && p->rc==SQLITE_OK && p->zFatal==0 ){
    s->bDone = s->bCaughtUp = 1;
  }
  s->bDone = 1;
}

/* ---- Reference streams ---------------------------------------------------- */

static void progress_draw(Pull *p, Stream *s, int bLast);

/* The resources whose custom attributes Kustomer describes, before the
** klasses'. */
static const char *const azMetaResource[] = {
  "customer", "company", "conversation", "message", "note", "user", 0
};

/* The first page of part i of a reference stream's pass (to free), or
** NULL past the last part: users are read twice (the deleted ones are a
** list of their own), metadata once per resource and per klass. */
static char *ref_part(Pull *p, Stream *s, int i){
  const char *zPath = kustomer_sync_stream[s->iDef].zContext;
  int n = p->cfg.listPageSize, j, k;
  if( strcmp(s->zName, "user")==0 ){
    if( i>1 ) return 0;
    return sqlite3_mprintf("/v1/users?%spageSize=%d",
                           i ? "deleted=true&" : "", n);
  }
  if( strcmp(s->zName, "custom_attribute_metadata")==0 ){
    sqlite3_str *pPath;
    for(k=0; azMetaResource[k]; k++){
      if( k==i ) return sqlite3_mprintf("/v1/metadata/%s?pageSize=%d",
                                        azMetaResource[k], n);
    }
    for(j=0; j<p->nStream; j++){
      if( p->aStream[j].zKlass && k++==i ) break;
    }
    if( j==p->nStream ) return 0;
    pPath = sqlite3_str_new(0);
    sqlite3_str_appendall(pPath, "/v1/metadata/");
    kustomer_path_segment(pPath, "kobject_", 8);
    kustomer_path_segment(pPath, p->aStream[j].zKlass,
                          strlen(p->aStream[j].zKlass));
    sqlite3_str_appendf(pPath, "?pageSize=%d", n);
    return sqlite3_str_finish(pPath);
  }
  if( i>0 ) return 0;
  return sqlite3_mprintf("%s%cpageSize=%d", zPath,
                         strchr(zPath, '?') ? '&' : '?', n);
}

/* Where the pass reads next, "<part> <path>" (NULL: the pass is over). */
static void ref_set_back(Stream *s, int iPart, const char *zPath){
  sqlite3_free(s->zBack);
  s->zBack = zPath ? sqlite3_mprintf("%d %s", iPart, zPath) : 0;
}

/* The end of a complete pass (in its last page's transaction): what it
** did not see is gone; the next pass is due reimport_hours on. */
static int ref_pass_end(Pull *p, Stream *s){
  char zDue[KUSTOMER_ISO_LEN];
  int rc = SQLITE_OK, nSwept = 0, nMore = 0;
  double tNow = kustomer_wall();
  if( s->zPassStarted ){
    rc = kustomer_syncmap_sweep(p->pMap, s->zTable, s->zPassStarted,
                                &nSwept);
    if( rc==SQLITE_OK && strcmp(s->zName, "sla")==0 ){
      rc = kustomer_syncmap_sweep(p->pMap, "sla_version", s->zPassStarted,
                                  &nMore);
    }
  }
  s->nDeleted += nSwept + nMore;
  str_set(&s->zCursor, s->zPassStarted);
  str_set(&s->zPassStarted, 0);
  kustomer_iso_format((sqlite3_int64)((tNow + p->cfg.reimportHours*3600)
                                      *1000), zDue);
  str_set(&s->zNextDue, zDue);
  s->bDone = s->bCaughtUp = 1;
  return rc;
}

/* Commit one page of a pass: its records (an sla page's versions, in
** "included", too), where the pass goes on, and its state. */
static int ref_commit(Pull *p, Stream *s, const cJSON *pDoc,
                      const cJSON *pData, int iPart, const char *zNext){
  const cJSON *pInc = kustomer_json_member(pDoc, "included");
  char zMax[KUSTOMER_ISO_LEN];
  int nRows = 0, nDeleted = 0, rc;
  if( pull_begin(p) ) return p->rc;
  rc = page_write(p, s, pData, zMax, &nRows, &nDeleted);
  if( rc==SQLITE_OK && cJSON_IsArray(pInc) && strcmp(s->zName, "sla")==0 ){
    const cJSON *pRec;
    for(pRec=pInc->child; rc==SQLITE_OK && pRec; pRec=pRec->next){
      const cJSON *pT = kustomer_json_member(pRec, "type");
      int bDel = 0;
      if( !cJSON_IsString(pT) || strcmp(pT->valuestring, "sla_version")!=0
       || !cJSON_IsString(kustomer_json_member(pRec, "id")) ){
        continue;
      }
      rc = kustomer_syncmap_record(p->pMap, "sla_version", 0, 0, pRec, &bDel);
    }
  }
  if( zNext ){
    ref_set_back(s, iPart, zNext);
  }else{
    char *zPart = ref_part(p, s, iPart+1);
    ref_set_back(s, iPart+1, zPart);
    sqlite3_free(zPart);
    if( s->zBack==0 && rc==SQLITE_OK ) rc = ref_pass_end(p, s);
  }
  if( rc==SQLITE_OK ) rc = state_write(p, s, nRows, nDeleted, 1);
  rc = pull_end(p, rc);
  if( rc==SQLITE_OK ){
    s->nRows += nRows;
    s->nDeleted += nDeleted;
    s->nPages++;
  }
  return rc;
}

/*
** A turn of a reference stream: when a pass is due (or one is under way,
** or a resync asked for one), up to turn_pages of its pages.  A pass runs
** to the last page of every part before it sweeps; a killed pull resumes
** at the page it was on, and a pass that fails sweeps nothing (its error
** is kept, the next pull goes on from where it stopped).
*/
static void ref_turn(Pull *p, Stream *s){
  char zNow[KUSTOMER_ISO_LEN];
  int i;
  kustomer_iso_format((sqlite3_int64)(kustomer_wall()*1000), zNow);
  if( s->zPassStarted==0 && s->zBack==0 ){
    if( s->zNextDue && strcmp(zNow, s->zNextDue)<0 ){
      s->bDone = s->bCaughtUp = 1;        /* not due: no request */
      return;
    }
    str_set(&s->zPassStarted, zNow);
  }
  if( s->zBack==0 ){
    char *zPart = ref_part(p, s, 0);
    ref_set_back(s, 0, zPart);
    sqlite3_free(zPart);
    if( s->zBack==0 ){
      p->rc = SQLITE_NOMEM;
      return;
    }
  }
  for(i=0; i<p->cfg.turnPages && !s->bDone; i++){
    KHttpResp resp;
    const cJSON *pData = 0;
    cJSON *pDoc;
    char *zPath, *zNext;
    int iPart = atoi(s->zBack), e;
    if( p->rc || p->zFatal || kustomer_clock()>=p->tDeadline ) break;
    zPath = strchr(s->zBack, ' ');
    zPath = zPath ? sqlite3_mprintf("%s", zPath+1) : 0;
    if( zPath==0 ){
      p->rc = SQLITE_NOMEM;
      break;
    }
    e = pull_request(p, s, "GET", zPath, 0, 0, &resp);
    if( e==REQ_STATUS && resp.status==404 && iPart>0
     && strcmp(s->zName, "custom_attribute_metadata")==0 ){
      /* a resource (a klass) without metadata: nothing to read there */
      cJSON *pEmpty = cJSON_CreateArray();
      kustomer_http_resp_clear(&resp);
      if( pEmpty==0 ){
        p->rc = SQLITE_NOMEM;
      }else{
        ref_commit(p, s, 0, pEmpty, iPart, 0);
        cJSON_Delete(pEmpty);
      }
      sqlite3_free(zPath);
      continue;
    }
    if( e==REQ_STATUS ){
      stream_status_error(p, s, "GET", zPath, &resp);
      kustomer_http_resp_clear(&resp);
      sqlite3_free(zPath);
      break;
    }
    if( e!=REQ_OK ){
      s->bDone = 1;
      sqlite3_free(zPath);
      break;
    }
    pDoc = page_parse(p, s, zPath, &resp, &pData);
    kustomer_http_resp_clear(&resp);
    zNext = pDoc ? list_next(p, pDoc, zPath) : 0;
    sqlite3_free(zPath);
    if( pDoc==0 ) break;
    ref_commit(p, s, pDoc, pData, iPart, zNext);
    sqlite3_free(zNext);
    cJSON_Delete(pDoc);
    progress_draw(p, s, 0);
  }
}

/* ---- Deletes from the audit log ------------------------------------------- */

#define AUDIT_COUNT 1000          /* entries per page, Kustomer's largest */

/* The object types whose deletes the audit log is read for, and the
** table of each. */
static const char *const azAuditType[] = {
  "customer", "conversation", "message", "note", "company", "kobject", 0
};

/* One page of entries: the deletes marked in their tables (a kobject in
** kobject and in its klass's table), the cursor moved to the last entry
** (its createdAt, and its id for "after"), all in one transaction. */
static int audit_commit(Pull *p, Stream *s, const cJSON *pData,
                        int *pnEntries){
  const cJSON *pE;
  int rc, nRows = 0, nDeleted = 0;
  *pnEntries = 0;
  if( pull_begin(p) ) return p->rc;
  rc = SQLITE_OK;
  kustomer_syncmap_now(p->pMap);
  for(pE=pData->child; rc==SQLITE_OK && pE; pE=pE->next){
    const cJSON *pA = kustomer_json_member(pE, "attributes");
    const cJSON *pId = kustomer_json_member(pE, "id");
    const cJSON *pVerb = kustomer_json_member(pA, "eventVerb");
    const cJSON *pType = kustomer_json_member(pA, "objectType");
    const cJSON *pObj = kustomer_json_member(pA, "objectId");
    const cJSON *pAt = kustomer_json_member(pA, "createdAt");
    sqlite3_int64 ms;
    (*pnEntries)++;
    if( !cJSON_IsString(pId) || !cJSON_IsString(pAt)
     || !kustomer_iso_ms(pAt->valuestring, (int)strlen(pAt->valuestring), &ms) ){
      continue;             /* not an entry the cursor can follow */
    }
    nRows++;
    {
      char zAt[KUSTOMER_ISO_LEN];
      kustomer_iso_format(ms, zAt);
      str_set(&s->zCursor, zAt);
      str_set(&s->zBack, pId->valuestring);
    }
    if( cJSON_IsString(pVerb) && strcmp(pVerb->valuestring, "delete")==0
     && cJSON_IsString(pType) && cJSON_IsString(pObj) ){
      int k, n = 0, j;
      for(k=0; azAuditType[k]; k++){
        if( strcmp(azAuditType[k], pType->valuestring)==0 ) break;
      }
      if( azAuditType[k]==0 ) continue;
      rc = kustomer_syncmap_mark_deleted(p->pMap, azAuditType[k],
                                         pObj->valuestring, &n);
      nDeleted += n;
      for(j=0; rc==SQLITE_OK && k==5 && j<p->nStream; j++){
        if( p->aStream[j].zKlass ){
          rc = kustomer_syncmap_mark_deleted(p->pMap, p->aStream[j].zTable,
                                             pObj->valuestring, &n);
        }
      }
    }
  }
  if( rc==SQLITE_OK ) rc = state_write(p, s, nRows, nDeleted, 1);
  rc = pull_end(p, rc);
  if( rc==SQLITE_OK ){
    s->nRows += nRows;
    s->nDeleted += nDeleted;
    s->nPages++;
  }
  return rc;
}

/*
** A turn of the audit-log stream: entries from the cursor on (after the
** last one read), up to turn_pages pages.  A 403 (the key lacks the role)
** disables this stream alone, with its error, until a resync of it.
*/
static void audit_turn(Pull *p, Stream *s){
  int i;
  if( strcmp(s->zPhase, "disabled")==0 ){
    s->bDone = 1;
    return;
  }
  for(i=0; i<p->cfg.turnPages && !s->bDone; i++){
    const char *zStart = s->zCursor ? s->zCursor : p->cfg.zStartDate;
    sqlite3_str *pPath;
    KHttpResp resp;
    const cJSON *pData = 0;
    cJSON *pDoc;
    char *zPath;
    int e, k, nEntries = 0;
    if( p->rc || p->zFatal || kustomer_clock()>=p->tDeadline ) break;
    pPath = sqlite3_str_new(0);
    sqlite3_str_appendall(pPath, "/v1/audit-logs?filter%5BobjectType%5D=");
    for(k=0; azAuditType[k]; k++){
      sqlite3_str_appendf(pPath, "%s%s", k ? "%2C" : "", azAuditType[k]);
    }
    sqlite3_str_appendf(pPath, "&count=%d", AUDIT_COUNT);
    if( zStart ){
      sqlite3_str_appendall(pPath, "&filter%5Bstart%5D=");
      kustomer_path_segment(pPath, zStart, strlen(zStart));
    }
    if( s->zBack ){
      sqlite3_str_appendall(pPath, "&after=");
      kustomer_path_segment(pPath, s->zBack, strlen(s->zBack));
    }
    zPath = sqlite3_str_finish(pPath);
    if( zPath==0 ){
      p->rc = SQLITE_NOMEM;
      break;
    }
    e = pull_request(p, s, "GET", zPath, 0, 0, &resp);
    if( e==REQ_STATUS && resp.status==403 ){
      str_set(&s->zPhase, "disabled");
      stream_status_error(p, s, "GET", "/v1/audit-logs", &resp);
      kustomer_http_resp_clear(&resp);
      sqlite3_free(zPath);
      break;
    }
    if( e==REQ_STATUS && resp.status==400 && s->zBack ){
      /* the entry to read after is no longer known: from its time on
      ** (entries of that millisecond are read again, which is harmless) */
      str_set(&s->zBack, 0);
      kustomer_http_resp_clear(&resp);
      sqlite3_free(zPath);
      continue;
    }
    if( e==REQ_STATUS ){
      stream_status_error(p, s, "GET", "/v1/audit-logs", &resp);
      kustomer_http_resp_clear(&resp);
      sqlite3_free(zPath);
      break;
    }
    if( e!=REQ_OK ){
      s->bDone = 1;
      sqlite3_free(zPath);
      break;
    }
    pDoc = page_parse(p, s, zPath, &resp, &pData);
    kustomer_http_resp_clear(&resp);
    sqlite3_free(zPath);
    if( pDoc==0 ) break;
    if( cJSON_GetArraySize(pData)<AUDIT_COUNT ){
      str_set(&s->zPhase, "incremental");
      s->bDone = s->bCaughtUp = 1;
    }
    audit_commit(p, s, pData, &nEntries);
    cJSON_Delete(pDoc);
    progress_draw(p, s, 0);
  }
}

/* ---- Streams ------------------------------------------------------------- */

static void stream_clear(Stream *s){
  sqlite3_free(s->zName);
  sqlite3_free(s->zTable);
  sqlite3_free(s->zKlass);
  sqlite3_free(s->zContext);
  sqlite3_free(s->zKey);
  sqlite3_free(s->zPhase);
  sqlite3_free(s->zCursor);
  sqlite3_free(s->zTieAt);
  sqlite3_free(s->zPassStarted);
  sqlite3_free(s->zBack);
  sqlite3_free(s->zNextDue);
  sqlite3_free(s->zRecentFrom);
  sqlite3_free(s->zError);
  memset(s, 0, sizeof(*s));
}

/* Whether this run reads stream iDef. */
static int stream_wanted(Pull *p, int iDef){
  unsigned m = 1u<<iDef;
  return (p->cfg.mStreams & m) && (p->mOnly==0 || (p->mOnly & m));
}

/* A stream from its state row (the statement's current row). */
static int stream_load(Pull *p, sqlite3_stmt *pRow){
  const char *zName = (const char*)sqlite3_column_text(pRow, 0);
  int iDef = zName ? kustomer_sync_stream_find(zName) : -1;
  const KSyncStream *d;
  Stream *s;
  sqlite3_str *pT;
  if( iDef<0 || !stream_wanted(p, iDef) ) return SQLITE_OK;
  if( p->nStream>=PULL_MAX_STREAMS ) return SQLITE_OK;
  d = &kustomer_sync_stream[iDef];
  s = &p->aStream[p->nStream];
  memset(s, 0, sizeof(*s));
  s->iDef = iDef;
  s->bFirst = 1;
  s->zName = sqlite3_mprintf("%s", zName);
  s->zPhase = sqlite3_mprintf("%s", sqlite3_column_text(pRow, 1));
  str_set(&s->zCursor, (const char*)sqlite3_column_text(pRow, 2));
  str_set(&s->zTieAt, (const char*)sqlite3_column_text(pRow, 3));
  s->iPage = sqlite3_column_int(pRow, 4);
  s->nTieTotal = sqlite3_column_int64(pRow, 5);
  str_set(&s->zPassStarted, (const char*)sqlite3_column_text(pRow, 6));
  str_set(&s->zBack, (const char*)sqlite3_column_text(pRow, 8));
  str_set(&s->zNextDue, (const char*)sqlite3_column_text(pRow, 9));
  pT = sqlite3_str_new(0);
  if( strncmp(zName, "kobject:", 8)==0 ){
    s->zKlass = sqlite3_mprintf("%s", zName+8);
    sqlite3_str_appendall(pT, "kobject_");
    kustomer_snake(pT, zName+8, (int)strlen(zName+8));
    s->zContext = sqlite3_mprintf("kobject_%s", zName+8);
    if( sqlite3_column_type(pRow, 7)==SQLITE_TEXT ){
      s->zKey = sqlite3_mprintf("%s", sqlite3_column_text(pRow, 7));
    }else{
      s->zKey = sqlite3_mprintf("kobject_%s_updated_at", zName+8);
    }
  }else{
    sqlite3_str_appendall(pT, d->zName);
    if( d->eKind==KSYNC_SEARCH ){
      s->zContext = sqlite3_mprintf("%s", d->zContext);
      s->zKey = sqlite3_mprintf("%s_updated_at", d->zContext);
    }
  }
  s->zTable = sqlite3_str_finish(pT);
  p->nStream++;
  if( s->zName==0 || s->zPhase==0 || s->zTable==0
   || (d->eKind==KSYNC_SEARCH && (s->zContext==0 || s->zKey==0)) ){
    return SQLITE_NOMEM;
  }
  if( d->eKind==KSYNC_KLASSES && s->zKlass==0 ){
    /* the klass list comes first: its streams join this run */
    Stream t = *s;
    memmove(&p->aStream[1], &p->aStream[0], sizeof(Stream)*(p->nStream-1));
    p->aStream[0] = t;
  }
  return SQLITE_OK;
}

static int streams_load(Pull *p, const char *zOnly){
  sqlite3_stmt *pStmt = 0;
  char *zSql = sqlite3_mprintf("SELECT stream, phase, cursor, tie_at,"
                               " tie_page, tie_total, pass_started_at,"
                               " search_key, back_cursor, next_due_at"
                               " FROM \"%w\".\"%w_state\"%s"
                               " ORDER BY rowid", p->zDb, p->zName,
                               zOnly ? " WHERE stream=?1" : "");
  int rc;
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(p->db, zSql, -1, &pStmt, 0);
  sqlite3_free(zSql);
  if( rc ) return rc;
  if( zOnly ) sqlite3_bind_text(pStmt, 1, zOnly, -1, SQLITE_STATIC);
  while( rc==SQLITE_OK && sqlite3_step(pStmt)==SQLITE_ROW ){
    rc = stream_load(p, pStmt);
  }
  sqlite3_finalize(pStmt);
  return rc;
}

static int klass_stream_add(Pull *p, const char *zKlass){
  char *zName = sqlite3_mprintf("kobject:%s", zKlass);
  sqlite3_str *pT = sqlite3_str_new(0);
  char *zTable;
  int i, rc;
  sqlite3_str_appendall(pT, "kobject_");
  kustomer_snake(pT, zKlass, (int)strlen(zKlass));
  zTable = sqlite3_str_finish(pT);
  if( zName==0 || zTable==0 ){
    sqlite3_free(zName);
    sqlite3_free(zTable);
    return SQLITE_NOMEM;
  }
  for(i=0; i<p->nStream; i++){
    if( strcmp(p->aStream[i].zName, zName)==0 ) break;
  }
  rc = SQLITE_OK;
  if( i==p->nStream && kustomer_sync_blocked(&p->cfg, zTable) ){
    /* a blocked klass is never fetched */
    sqlite3_free(zName);
    sqlite3_free(zTable);
    return SQLITE_OK;
  }
  if( i==p->nStream && p->nStream>=PULL_MAX_STREAMS ){
    rc = SQLITE_FULL;       /* the caller says so in the stream's error */
  }else if( i==p->nStream ){
    rc = pull_begin(p);
    if( rc==SQLITE_OK ){
      rc = pull_exec(p, sqlite3_mprintf("INSERT OR IGNORE INTO"
                     " \"%w\".\"%w_state\"(stream, phase) VALUES(%Q, %Q)",
                     p->zDb, p->zName, zName,
                     kustomer_sync_search_start(&p->cfg)));
      if( rc==SQLITE_OK ) rc = kustomer_syncmap_table(p->pMap, zTable);
      rc = pull_end(p, rc);
    }
    if( rc==SQLITE_OK ) rc = streams_load(p, zName);
  }
  sqlite3_free(zName);
  sqlite3_free(zTable);
  return rc;
}

/* ---- Progress ------------------------------------------------------------ */

static void progress_draw(Pull *p, Stream *s, int bLast){
  double t = kustomer_clock() - p->tStart;
  int i, nRows = 0;
  if( !p->bProgress ) return;
  if( !bLast && t - p->tDraw < 0.2 ) return;
  p->tDraw = t;
  for(i=0; i<p->nStream; i++) nRows += p->aStream[i].nRows;
  fprintf(stderr, "\r%-24.24s %9d rows  %7.0f rows/s  %5d requests",
          s ? s->zName : "", nRows, t>0 ? nRows/t : 0.0, p->nRequests);
  if( s && s->nTotal>s->nRows && s->nRows>0 && t>0 ){
    double rate = nRows/t;
    fprintf(stderr, "  ETA %5.0fs", rate>0 ? (s->nTotal-s->nRows)/rate : 0);
  }else{
    fprintf(stderr, "             ");
  }
  if( bLast ) fputc('\n', stderr);
  fflush(stderr);
}

/* ---- The steps of a pull ------------------------------------------------- */

/* Whether the connection can pull now. */
static int pull_may_run(Pull *p){
  char *zErr = kustomer_may_commit(p->db, "kustomer_pull",
                                   "each page is committed as it is read");
  if( zErr ) pull_fatal(p, zErr);
  return zErr==0;
}

/* The options argument: {"progress":bool,"streams":["customer",..]}. */
static int pull_options(Pull *p, sqlite3_value *pArg){
  char *zErr = 0;
  cJSON *pOpt = 0;
  const cJSON *pM;
  int rc = kustomer_options_arg("kustomer_pull", 3, pArg, &pOpt, &zErr);
  if( rc ){
    if( zErr ) pull_fatal(p, zErr);
    else p->rc = rc;
    return rc;
  }
  for(pM=pOpt ? pOpt->child : 0; pM && p->zFatal==0; pM=pM->next){
    if( strcmp(pM->string, "progress")==0 ){
      p->cfg.progress = kustomer_js_truthy(pM);
    }else if( strcmp(pM->string, "streams")==0 && cJSON_IsArray(pM) ){
      const cJSON *pS;
      for(pS=pM->child; pS && p->zFatal==0; pS=pS->next){
        int i = cJSON_IsString(pS) ? kustomer_sync_stream_find(pS->valuestring)
                                   : -1;
        if( i<0 || strchr(pS->valuestring, ':') ){
          pull_fatal(p, sqlite3_mprintf("kustomer_pull(): argument 3 "
                     "(options): streams holds an unknown stream%s%s",
                     cJSON_IsString(pS) ? " " : "",
                     cJSON_IsString(pS) ? pS->valuestring : ""));
        }else if( (p->cfg.mStreams & (1u<<i))==0 ){
          pull_fatal(p, sqlite3_mprintf("kustomer_pull(): argument 3 "
                     "(options): %s does not sync %s", p->zName,
                     pS->valuestring));
        }else{
          p->mOnly |= 1u<<i;
        }
      }
    }else{
      pull_fatal(p, sqlite3_mprintf("kustomer_pull(): argument 3 (options) "
                 "has an unknown option %Q (known: progress, streams as an "
                 "array of names)", pM->string));
    }
  }
  cJSON_Delete(pOpt);
  return p->zFatal ? SQLITE_ERROR : SQLITE_OK;
}

/* Step 1: the arguments, the sync's configuration, the key, the limiter. */
static int pull_open(Pull *p, sqlite3_context *ctx, int argc,
                     sqlite3_value **argv){
  const char *zArg, *zDot;
  double tLimit = -1;
  char *zErr = 0;
  int rc;
  p->db = sqlite3_context_db_handle(ctx);
  if( sqlite3_value_type(argv[0])!=SQLITE_TEXT ){
    pull_fatal(p, sqlite3_mprintf("kustomer_pull(): argument 1 (sync) must "
               "be the name of a kustomer_sync table"));
    return SQLITE_ERROR;
  }
  zArg = (const char*)sqlite3_value_text(argv[0]);
  zDot = strchr(zArg, '.');
  /* 'aux.ks': a sync in an attached database */
  p->zDb = zDot ? sqlite3_mprintf("%.*s", (int)(zDot-zArg), zArg)
                : sqlite3_mprintf("main");
  p->zName = sqlite3_mprintf("%s", zDot ? zDot+1 : zArg);
  if( p->zDb==0 || p->zName==0 ){
    p->rc = SQLITE_NOMEM;
    return SQLITE_NOMEM;
  }
  if( argc>1 && sqlite3_value_type(argv[1])!=SQLITE_NULL ){
    tLimit = sqlite3_value_double(argv[1]);
    if( !(tLimit>0) ){
      pull_fatal(p, sqlite3_mprintf("kustomer_pull(): argument 2 (seconds) "
                                    "must be a positive number"));
      return SQLITE_ERROR;
    }
  }
  if( !pull_may_run(p) ) return SQLITE_ERROR;
  rc = kustomer_sync_config_read(p->db, p->zDb, p->zName, &p->cfg, &zErr);
  if( rc==SQLITE_OK && argc>2 ) rc = pull_options(p, argv[2]);
  if( rc==SQLITE_OK ){
    rc = kustomer_settings_parse(p->cfg.zSettings,
                                 (int)strlen(p->cfg.zSettings), &p->pSet,
                                 &zErr);
  }
  if( rc==SQLITE_OK ){
    rc = kustomer_api_auth(p->pSet, 1, &p->zAuth, &zErr);
  }
  if( rc ){
    if( zErr ) pull_fatal(p, sqlite3_mprintf("kustomer_pull(): %s", zErr));
    else if( p->zFatal==0 ) p->rc = rc;
    sqlite3_free(zErr);
    return rc;
  }
  p->bProgress = p->cfg.progress && isatty(2);
  /* Without rate_limit: Kustomer's smallest plan until a response says. */
  kustomer_limiter_init(&p->lim, p->cfg.rateLimit>0 ? p->cfg.rateLimit : 300,
                        p->cfg.budget, p->cfg.rateWindow);
  p->lim.bLearn = p->cfg.rateLimit<=0;
  kustomer_limiter_searches(&p->lim, p->cfg.searchLimit);
  rc = kustomer_http_new(&p->pHttp);
  if( rc ){
    p->rc = rc;
    return rc;
  }
  p->tStart = kustomer_clock();
  p->tDeadline = tLimit>0 ? p->tStart + tLimit : PULL_NO_DEADLINE;
  kustomer_iso_format((sqlite3_int64)(kustomer_wall()*1000), p->zUntil);
  return SQLITE_OK;
}

/* Step 2: claim the sync for this process (the pid of a live other one in
** <name>_config refuses; a killed pull leaves a dead one), open the
** ledger and the tables, and load the streams' state. */
static int pull_live_pid(Pull *p){
  sqlite3_stmt *pStmt = 0;
  char *zSql = sqlite3_mprintf("SELECT v FROM \"%w\".\"%w_config\" WHERE"
                               " k='pulling'", p->zDb, p->zName);
  int pid = 0;
  if( zSql && sqlite3_prepare_v2(p->db, zSql, -1, &pStmt, 0)==SQLITE_OK
   && sqlite3_step(pStmt)==SQLITE_ROW ){
    pid = sqlite3_column_int(pStmt, 0);
    if( !kustomer_pid_live(pid) ) pid = 0;
  }
  sqlite3_finalize(pStmt);
  sqlite3_free(zSql);
  return pid;
}

static int pull_claim(Pull *p){
  int rc, pid;
  /* refused without taking the write lock from the live pull */
  if( (pid = pull_live_pid(p))!=0 ){
    pull_fatal(p, sqlite3_mprintf("kustomer_pull(): %s is being pulled by "
               "process %d", p->zName, pid));
    return SQLITE_ERROR;
  }
  if( pull_begin(p) ) return p->rc;
  /* again under the lock: the claim is decided here */
  rc = SQLITE_OK;
  if( (pid = pull_live_pid(p))!=0 ){
    pull_fatal(p, sqlite3_mprintf("kustomer_pull(): %s is being pulled by "
               "process %d", p->zName, pid));
  }
  if( rc==SQLITE_OK && p->zFatal==0 ) rc = kustomer_ledger_create(p->db);
  if( rc==SQLITE_OK && p->zFatal==0 ){
    rc = pull_exec(p, sqlite3_mprintf("INSERT OR REPLACE INTO"
                   " \"%w\".\"%w_config\"(k, v) VALUES('pulling', %d)",
                   p->zDb, p->zName, (int)getpid()));
    p->bClaimed = rc==SQLITE_OK;
  }
  if( rc==SQLITE_OK && p->zFatal==0 ){
    rc = kustomer_ledger_open(p->db, &p->pLedger);
    p->lim.pLedger = p->pLedger;
    /* old starts leave every window (the longest is an hour) */
    if( rc==SQLITE_OK ) rc = kustomer_ledger_prune(p->pLedger,
                                                   kustomer_wall() - 3700);
  }
  if( rc==SQLITE_OK && p->zFatal==0 ){
    rc = kustomer_syncmap_open(p->db, p->zDb, p->zName, p->cfg.zPrefix,
                               p->cfg.bRecord, &p->pMap);
  }
  if( rc==SQLITE_OK && p->zFatal==0 ){
    char *zErr = 0;
    rc = kustomer_sync_map_setup(&p->cfg, p->pMap, 1, &zErr);
    if( zErr ) pull_fatal(p, sqlite3_mprintf("kustomer_pull(): %z", zErr));
  }
  if( p->zFatal && rc==SQLITE_OK ) rc = SQLITE_ERROR;
  if( pull_end(p, rc) ) return SQLITE_ERROR;
  p->aStream = sqlite3_malloc64(sizeof(Stream)*PULL_MAX_STREAMS);
  if( p->aStream==0 ){
    p->rc = SQLITE_NOMEM;
    return SQLITE_NOMEM;
  }
  pull_sql_error(p, streams_load(p, 0));
  return p->rc;
}

/* A turn of one stream: up to turn_pages pages. */
static void stream_turn(Pull *p, Stream *s){
  const KSyncStream *d = &kustomer_sync_stream[s->iDef];
  int i;
  if( s->zKlass==0 && d->eKind==KSYNC_KLASSES ){
    klasses_read(p, s);
    return;
  }
  if( d->eKind==KSYNC_LIST ){
    sessions_turn(p, s);
    return;
  }
  if( d->eKind==KSYNC_REF ){
    ref_turn(p, s);
    return;
  }
  if( d->eKind==KSYNC_AUDIT ){
    audit_turn(p, s);
    return;
  }
  for(i=0; i<p->cfg.turnPages && !s->bDone; i++){
    if( p->rc || p->zFatal || kustomer_clock()>=p->tDeadline ) break;
    search_page(p, s);
    progress_draw(p, s, 0);
  }
}

/* Step 3: streams take turns until each is caught up or stopped, or the
** seconds are up. */
static void pull_run(Pull *p){
  int bLeft = 1;
  while( bLeft && p->rc==SQLITE_OK && p->zFatal==0 ){
    int i;
    bLeft = 0;
    for(i=0; i<p->nStream && p->rc==SQLITE_OK && p->zFatal==0; i++){
      Stream *s = &p->aStream[i];
      if( s->bDone ) continue;
      if( kustomer_clock()>=p->tDeadline ){
        bLeft = 0;
        break;
      }
      stream_turn(p, s);
      if( !s->bDone ) bLeft = 1;
    }
  }
}

/* Give the sync back, whatever happened. */
static void pull_release(Pull *p){
  int i;
  /* requests of an unfinished page still count in the state */
  for(i=0; i<p->nStream && p->rc==SQLITE_OK; i++){
    Stream *s = &p->aStream[i];
    if( s->nPendingRequests>0 && pull_begin(p)==SQLITE_OK ){
      pull_end(p, pull_exec(p, sqlite3_mprintf("UPDATE \"%w\".\"%w_state\""
               " SET requests=requests+%d WHERE stream=%Q", p->zDb,
               p->zName, s->nPendingRequests, s->zName)));
    }
  }
  /* only a transaction of the pull's own: a refused pull leaves the
  ** caller's as it was */
  if( p->bTxn && !sqlite3_get_autocommit(p->db) ){
    sqlite3_exec(p->db, "ROLLBACK", 0, 0, 0);
  }
  p->bTxn = 0;
  if( p->bClaimed ){
    pull_exec(p, sqlite3_mprintf("DELETE FROM \"%w\".\"%w_config\" WHERE"
              " k='pulling'", p->zDb, p->zName));
  }
  if( p->nStream ) progress_draw(p, 0, 1);
}

/* Step 4: the result: an SQL error, or the summary. */
static void pull_summary(Pull *p, sqlite3_context *ctx){
  sqlite3_str *pOut;
  int i, nErr = 0;
  if( p->zFatal ){
    sqlite3_result_error(ctx, p->zFatal, -1);
    return;
  }
  if( p->rc ){
    kustomer_result_code(ctx, p->rc);
    return;
  }
  pOut = sqlite3_str_new(0);
  sqlite3_str_appendall(pOut, "{\"streams\":{");
  for(i=0; i<p->nStream; i++){
    Stream *s = &p->aStream[i];
    sqlite3_str_appendall(pOut, i ? ",\"" : "\"");
    kustomer_json_string_body(pOut, s->zName, strlen(s->zName));
    sqlite3_str_appendf(pOut, "\":{\"rows\":%d,\"deleted\":%d,"
                        "\"pages\":%d,\"requests\":%d,\"caught_up\":%s,"
                        "\"error\":", s->nRows, s->nDeleted,
                        s->nPages, s->nRequests,
                        s->bCaughtUp ? "true" : "false");
    if( s->zError ){
      sqlite3_str_appendchar(pOut, 1, '"');
      kustomer_json_string_body(pOut, s->zError, strlen(s->zError));
      sqlite3_str_appendchar(pOut, 1, '"');
    }else{
      sqlite3_str_appendall(pOut, "null");
    }
    sqlite3_str_appendchar(pOut, 1, '}');
  }
  sqlite3_str_appendf(pOut, "},\"requests\":%d,\"searches\":%d,"
                      "\"waited\":%.3f,\"seconds\":%.3f,\"errors\":[",
                      p->nRequests, p->nSearches, p->waited,
                      kustomer_clock() - p->tStart);
  for(i=0; i<p->nStream; i++){
    Stream *s = &p->aStream[i];
    if( s->zError==0 ) continue;
    sqlite3_str_appendall(pOut, nErr++ ? ",\"" : "\"");
    kustomer_json_string_body(pOut, s->zName, strlen(s->zName));
    sqlite3_str_appendall(pOut, ": ");
    kustomer_json_string_body(pOut, s->zError, strlen(s->zError));
    sqlite3_str_appendchar(pOut, 1, '"');
  }
  sqlite3_str_appendall(pOut, "]}");
  kustomer_result_str(ctx, pOut, 1);
}

static void pull_free(Pull *p){
  int i;
  for(i=0; i<p->nStream; i++) stream_clear(&p->aStream[i]);
  sqlite3_free(p->aStream);
  kustomer_syncmap_close(p->pMap);
  if( p->pHttp ) kustomer_http_unref(p->pHttp);
  kustomer_api_auth_free(p->zAuth);
  kustomer_limiter_free(&p->lim);
  kustomer_ledger_close(p->pLedger);
  kustomer_settings_free(p->pSet);
  kustomer_sync_config_clear(&p->cfg);
  sqlite3_free(p->zDb);
  sqlite3_free(p->zName);
  sqlite3_free(p->zFatal);
}

static void pull_func(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  Pull p;
  memset(&p, 0, sizeof(p));
  if( pull_open(&p, ctx, argc, argv)==SQLITE_OK
   && pull_claim(&p)==SQLITE_OK ){
    pull_run(&p);
  }
  pull_release(&p);
  pull_summary(&p, ctx);
  pull_free(&p);
}

int kustomer_register_pull(sqlite3 *db){
  int nArg, rc = SQLITE_OK;
  for(nArg=1; nArg<=3 && rc==SQLITE_OK; nArg++){
    rc = sqlite3_create_function(db, "kustomer_pull", nArg,
             SQLITE_UTF8 | SQLITE_DIRECTONLY | SQLITE_RESULT_SUBTYPE, 0,
             pull_func, 0, 0);
  }
  return rc;
}
