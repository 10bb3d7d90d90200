/*
** The outbox: a virtual table that durably queues events for Kustomer.
**
**   CREATE VIRTUAL TABLE out USING kustomer_outbox(
**     settings='{"orgName":"acme","apiKeyEnv":"KUSTOMER_API_KEY"}',
**     rate_limit=1000, budget=0.8, max_attempts=8);
**   INSERT INTO out(event) SELECT payload FROM events;
**   SELECT kustomer_flush('out');            -- see flush.c
**   SELECT status, count(*) FROM out GROUP BY status;
**   INSERT INTO out(out) VALUES('retry');    -- failed rows back to pending
**
** Rows live in shadow tables in the same database, in the manner of FTS5:
** <name>_data (one row per event) and <name>_config (the table's
** arguments and its storage version).  This file owns them: every
** statement on them is prepared here, for the table and for
** kustomer_flush().  When requests were sent is kept in the file's
** request ledger, main.kustomer_requests, which the sync shares (kapi.c),
** so that the rate limit holds across flushes, pulls and processes.
**
** An INSERT only transforms and stores what the flush needs: the request,
** its kind (create, update or track: decided once, here) and the customer
** it is for.  Nothing is sent inside INSERT or COMMIT, because a POST
** cannot be rolled back.  The API key is never stored: settings must name
** it with apiKeyEnv, and the stored request has no Authorization header;
** kustomer_flush() adds it when it sends.
*/
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

/* Columns of the virtual table. */
#define OUT_ID          0
#define OUT_EVENT       1
#define OUT_REQUEST     2
#define OUT_STATUS      3
#define OUT_ATTEMPTS    4
#define OUT_HTTP_STATUS 5
#define OUT_ERROR       6
#define OUT_KUSTOMER_ID 7
#define OUT_ENQUEUED_AT 8
#define OUT_SENT_AT     9
#define OUT_NEXT_AT     10
#define OUT_COMMAND     11  /* HIDDEN, named after the table, as in FTS5 */

/*
** Storage versions, in <name>_config's 'version' row:
**   1  the first: no kind or customer_key, next_at
**   2  kind and customer_key written at INSERT; next_attempt_at
**   3  <name>_sends no longer used: its starts moved to
**      main.kustomer_requests (the emptied table stays: DROP TABLE is
**      refused while the statement that upgrades is running)
**   4  bulk_job: the Kustomer bulk job a customer creation was sent in,
**      kept until the job's result is applied (a flush killed or stopped
**      while the job ran polls it next time instead of creating again);
**      kind 'lookup': a creation Kustomer said exists, to be looked up
**   5  message_id, unique where not NULL: one row per messageId (the first
**      of each kept its id on upgrade), unless dedupe=0
** A table of an older version is upgraded by its first write (INSERT or
** flush); reads work on any.  A newer one is refused.
*/
#define OUTBOX_VERSION 5

/* <name>_data's columns: the vtab's, in its order, then what only the
** flush reads. */
#define OUTBOX_DATA_SCHEMA \
  "id INTEGER PRIMARY KEY, event TEXT NOT NULL, request TEXT, " \
  "status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, " \
  "http_status INTEGER, error TEXT, kustomer_id TEXT, " \
  "enqueued_at TEXT NOT NULL, sent_at TEXT, " \
  "next_attempt_at REAL NOT NULL DEFAULT 0, kind TEXT, customer_key TEXT, " \
  "bulk_job TEXT, message_id TEXT"

typedef struct Outbox Outbox;
struct Outbox {
  sqlite3_vtab base;
  KOutboxStore store;       /* db, schema, name and statements */
  KOutboxConfig cfg;
  KSettings *pSet;          /* parsed cfg.zSettings, for INSERT */
};

typedef struct OutboxCursor OutboxCursor;
struct OutboxCursor {
  sqlite3_vtab_cursor base;
  sqlite3_stmt *pStmt;
  int bEof;
};

static int outbox_error(Outbox *p, char *zMsg){
  return kustomer_vtab_error(&p->base, zMsg);
}

/* ---- Arguments ---------------------------------------------------------- */

static const KArgSpec aOutboxArg[] = {
  { "settings", KARG_TEXT, offsetof(KOutboxConfig, zSettings),
    0, 0, 0, 0, 0 },
  { "rate_limit", KARG_REAL, offsetof(KOutboxConfig, rateLimit),
    300 /* the smallest Kustomer plan */, 1, 1000000, 0,
    "must be between 1 and 1000000 requests per window" },
  { "budget", KARG_REAL, offsetof(KOutboxConfig, budget),
    0.8, 0, 1, 1, "must be more than 0 and at most 1" },
  { "max_attempts", KARG_INT, offsetof(KOutboxConfig, maxAttempts),
    8, 1, 100, 0, "must be between 1 and 100" },
  { "rate_window", KARG_REAL, offsetof(KOutboxConfig, rateWindow),
    60, 0.1, 3600, 0, "must be between 0.1 and 3600 seconds" },
  { "concurrency", KARG_INT, offsetof(KOutboxConfig, concurrency),
    4, 1, 64, 0, "must be between 1 and 64" },
  { "progress", KARG_BOOL, offsetof(KOutboxConfig, progress),
    0, 0, 0, 0, 0 },
  { "dedupe", KARG_BOOL, offsetof(KOutboxConfig, dedupe),
    1, 0, 0, 0, 0 },
  { "integrations", KARG_TEXT, offsetof(KOutboxConfig, zIntegrations),
    0, 0, 0, 0, 0 },
  { 0, 0, 0, 0, 0, 0, 0, 0 }
};

void kustomer_outbox_config_clear(KOutboxConfig *p){
  kustomer_args_free(aOutboxArg, p);
  memset(p, 0, sizeof(*p));
}

/* ---- Statements on the shadow tables ------------------------------------ */

/* Each statement's SQL, with the schema and the table's name as its two
** %w. */
static const char *const azStmt[KOB_N] = {
  /* KOB_DUE: due rows that the pipeline sends one per request */
  "SELECT id FROM \"%w\".\"%w_data\" WHERE status='pending'"
  " AND next_attempt_at<=?1 AND kind NOT IN ('create','update','lookup')"
  " ORDER BY id LIMIT 256",
  /* KOB_DUE_BULK: due customer creations (?2 'create') or updates
  ** ('update'), for bulk (not those of a job still to be polled) */
  "SELECT id, request, customer_key, kustomer_id FROM \"%w\".\"%w_data\""
  " WHERE status='pending' AND next_attempt_at<=?1 AND kind=?2"
  " AND bulk_job IS NULL ORDER BY id LIMIT 200",
  /* KOB_SENDING */
  "UPDATE \"%w\".\"%w_data\" SET status='sending', attempts=attempts+1"
  " WHERE id=?1",
  /* KOB_SENT */
  "UPDATE \"%w\".\"%w_data\" SET status='sent', http_status=?1,"
  " kustomer_id=coalesce(?2, kustomer_id), error=NULL, bulk_job=NULL,"
  " sent_at=strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ','now') WHERE id=?3",
  /* KOB_RETRY */
  "UPDATE \"%w\".\"%w_data\" SET status='pending', next_attempt_at=?1,"
  " attempts=attempts-?2, http_status=?3, error=?4, bulk_job=NULL"
  " WHERE id=?5",
  /* KOB_FAILED */
  "UPDATE \"%w\".\"%w_data\" SET status='failed', http_status=?1, error=?2,"
  " bulk_job=NULL WHERE id=?3",
  /* KOB_ROW */
  "SELECT request, attempts, event, kind, customer_key FROM \"%w\".\"%w_data\""
  " WHERE id=?1",
  /* KOB_TO_UPDATE: a create found to exist, to be sent as an update */
  "UPDATE \"%w\".\"%w_data\" SET request=?1, kustomer_id=?2, kind='update',"
  " status='pending', next_attempt_at=0, bulk_job=NULL WHERE id=?3",
  /* KOB_INSERT */
  "INSERT INTO \"%w\".\"%w_data\"(id, event, request, status, error,"
  " enqueued_at, kind, customer_key, message_id) VALUES(?1, ?2, ?3, ?4, ?5,"
  " strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ','now'), ?6, ?7, ?8)",
  /* KOB_DELETE */
  "DELETE FROM \"%w\".\"%w_data\" WHERE id=?1",
  /* KOB_RETRY_FAILED: the 'retry' command */
  "UPDATE \"%w\".\"%w_data\" SET status='pending', attempts=0, error=NULL,"
  " http_status=NULL, next_attempt_at=0 WHERE status='failed'",
  /* KOB_COUNT */
  "SELECT count(*) FROM \"%w\".\"%w_data\" WHERE status=?1",
  /* KOB_NEXT_DUE */
  "SELECT min(next_attempt_at) FROM \"%w\".\"%w_data\""
  " WHERE status='pending' AND bulk_job IS NULL",
  /* KOB_RECOVER: a killed flush's rows in flight go back to pending */
  "UPDATE \"%w\".\"%w_data\" SET status='pending' WHERE status='sending'",
  /* KOB_BULK_SET: the rows of a bulk job Kustomer accepted (?1 NULL: of
  ** none) */
  "UPDATE \"%w\".\"%w_data\" SET bulk_job=?1 WHERE id=?2",
  /* KOB_BULK_JOBS: jobs whose result is still to be applied */
  "SELECT DISTINCT bulk_job FROM \"%w\".\"%w_data\" WHERE bulk_job IS NOT"
  " NULL AND status IN ('pending','sending')",
  /* KOB_BULK_ROWS: a job's rows */
  "SELECT id, customer_key, kind, kustomer_id FROM \"%w\".\"%w_data\""
  " WHERE bulk_job=?1"
  " AND status IN ('pending','sending') ORDER BY id",
  /* KOB_TO_LOOKUP: a creation Kustomer says exists, to be looked up */
  "UPDATE \"%w\".\"%w_data\" SET kind='lookup', status='pending',"
  " next_attempt_at=0, attempts=attempts-1, error=?1, bulk_job=NULL"
  " WHERE id=?2",
  /* KOB_DUE_LOOKUP */
  "SELECT id, error FROM \"%w\".\"%w_data\" WHERE status='pending'"
  " AND next_attempt_at<=?1 AND kind='lookup' ORDER BY id LIMIT 1",
  /* KOB_JOB_WAIT: a job unfinished when the flush stops: its rows wait
  ** for the next flush to poll it (the attempt not used up) */
  "UPDATE \"%w\".\"%w_data\" SET status='pending', attempts=max(attempts-1,"
  " 0), error=?1 WHERE bulk_job=?2 AND status='sending'",
  /* KOB_BY_MESSAGE: the row that holds a messageId */
  "SELECT id FROM \"%w\".\"%w_data\" WHERE message_id=?1",
  /* KOB_TO_CREATE: an update of a customer Kustomer no longer has, to be
  ** created again */
  "UPDATE \"%w\".\"%w_data\" SET request=?1, kustomer_id=NULL, kind='create',"
  " status='pending', next_attempt_at=0, attempts=max(attempts-1, 0),"
  " error=?2, bulk_job=NULL WHERE id=?3",
  /* KOB_CONFIG_GET */
  "SELECT v FROM \"%w\".\"%w_config\" WHERE k=?1",
  /* KOB_CONFIG_PUT */
  "INSERT OR REPLACE INTO \"%w\".\"%w_config\"(k, v) VALUES(?1, ?2)",
  /* KOB_CONFIG_DEL */
  "DELETE FROM \"%w\".\"%w_config\" WHERE k=?1",
};

int kustomer_outbox_stmt(KOutboxStore *p, int eStmt, sqlite3_stmt **ppStmt){
  int rc = SQLITE_OK;
  if( p->aStmt[eStmt]==0 ){
    char *zSql = sqlite3_mprintf(azStmt[eStmt], p->zDb, p->zName);
    if( zSql==0 ) return SQLITE_NOMEM;
    rc = sqlite3_prepare_v3(p->db, zSql, -1, SQLITE_PREPARE_PERSISTENT,
                            &p->aStmt[eStmt], 0);
    sqlite3_free(zSql);
  }else{
    sqlite3_reset(p->aStmt[eStmt]);
    sqlite3_clear_bindings(p->aStmt[eStmt]);
  }
  *ppStmt = p->aStmt[eStmt];
  return rc;
}

int kustomer_outbox_store_init(KOutboxStore *p, sqlite3 *db,
                               const char *zDb, const char *zName){
  memset(p, 0, sizeof(*p));
  p->db = db;
  p->zDb = sqlite3_mprintf("%s", zDb);
  p->zName = sqlite3_mprintf("%s", zName);
  return (p->zDb && p->zName) ? SQLITE_OK : SQLITE_NOMEM;
}

void kustomer_outbox_store_close(KOutboxStore *p){
  int i;
  for(i=0; i<KOB_N; i++) sqlite3_finalize(p->aStmt[i]);
  sqlite3_free(p->zDb);
  sqlite3_free(p->zName);
  memset(p, 0, sizeof(*p));
}

/* Drop the statements (the tables were renamed): prepared again as
** needed. */
static void store_forget(KOutboxStore *p){
  int i;
  for(i=0; i<KOB_N; i++){
    sqlite3_finalize(p->aStmt[i]);
    p->aStmt[i] = 0;
  }
}

/* Run statements, each with the schema and the table's name as its two %w
** (sqlite3_mprintf has no positional arguments), until one fails. */
static int store_exec(KOutboxStore *p, char **pzErr,
                      const char *const *azSql, int nSql){
  int i, rc = SQLITE_OK;
  for(i=0; i<nSql && rc==SQLITE_OK; i++){
    char *zSql = sqlite3_mprintf(azSql[i], p->zDb, p->zName);
    rc = zSql ? sqlite3_exec(p->db, zSql, 0, 0, pzErr) : SQLITE_NOMEM;
    sqlite3_free(zSql);
  }
  return rc;
}

/* ---- Configuration and version ------------------------------------------- */

/* integrations= is 'honor' (the default) or 'ignore'. */
static char *integrations_check(const KOutboxConfig *p){
  if( p->zIntegrations && strcmp(p->zIntegrations, "honor")!=0
   && strcmp(p->zIntegrations, "ignore")!=0 ){
    return sqlite3_mprintf("integrations must be 'honor' (messages whose "
                           "integrations turn Kustomer off are skipped) or "
                           "'ignore' (sent anyway): %Q", p->zIntegrations);
  }
  return 0;
}

int kustomer_outbox_config_read(KOutboxStore *pStore, KOutboxConfig *p,
                                char **pzErr){
  sqlite3_stmt *pStmt = 0;
  char *zSql;
  int rc, iVersion = -1;
  memset(p, 0, sizeof(*p));
  kustomer_args_defaults(aOutboxArg, p);
  *pzErr = 0;
  zSql = sqlite3_mprintf("SELECT k, v FROM \"%w\".\"%w_config\"",
                         pStore->zDb, pStore->zName);
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(pStore->db, zSql, -1, &pStmt, 0);
  sqlite3_free(zSql);
  if( rc!=SQLITE_OK ){
    *pzErr = sqlite3_mprintf("%s is not a kustomer_outbox table",
                             pStore->zName);
    return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  while( rc==SQLITE_OK && sqlite3_step(pStmt)==SQLITE_ROW ){
    const char *zK = (const char*)sqlite3_column_text(pStmt, 0);
    if( zK && strcmp(zK, "version")==0 ){
      iVersion = sqlite3_column_type(pStmt, 1)==SQLITE_INTEGER
               ? sqlite3_column_int(pStmt, 1) : 0;
    }else if( zK ){
      rc = kustomer_args_load(aOutboxArg, p, zK, sqlite3_column_value(pStmt,1));
    }
  }
  if( rc==SQLITE_OK ) rc = sqlite3_finalize(pStmt);
  else sqlite3_finalize(pStmt);
  if( rc ) return rc;
  if( iVersion<1 || iVersion>OUTBOX_VERSION ){
    /* As FTS5 refuses a format it does not know: reading it as another
    ** would lose rows. */
    *pzErr = iVersion<0 ?
        sqlite3_mprintf("%s is not a kustomer_outbox table (no version "
                        "row in %s_config)", pStore->zName, pStore->zName) :
        sqlite3_mprintf("%s has storage version %d, which this extension "
                        "(%s) does not know (it knows 1 to %d)",
                        pStore->zName, iVersion, KUSTOMER_VERSION,
                        OUTBOX_VERSION);
    return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  pStore->iVersion = iVersion;
  *pzErr = kustomer_settings_check_stored(p->zSettings);
  if( *pzErr==0 ) *pzErr = kustomer_args_check(aOutboxArg, p);
  if( *pzErr==0 ) *pzErr = integrations_check(p);
  return *pzErr ? SQLITE_ERROR : SQLITE_OK;
}

/* The customer key of an event: the lookup that finds its customer by
** externalId ("externalId=<id as a path segment>"), NULL when none. */
static char *customer_key_of(const cJSON *pEvent){
  const cJSON *pId = kustomer_user_id(pEvent);
  sqlite3_str *p;
  if( pId==0 ) return 0;
  p = sqlite3_str_new(0);
  sqlite3_str_appendall(p, kustomer_aLookupPrefix[1]);
  kustomer_path_segment_value(p, pId);
  return sqlite3_str_finish(p);
}

/* Version 1 to 2: the kind of each stored request, from the request as it
** stands (a create rewritten as an update is an update), and the customer
** key of each identify, from its event. */
/* Version 4 to 5: message_id, unique where not NULL; of rows already
** there with the same messageId, the first keeps it.  The index's name is
** random, as at CREATE (ALTER TABLE RENAME keeps index names). */
static int upgrade_4_to_5(KOutboxStore *p, char **pzErr){
  static const char *const azSql[] = {
    "ALTER TABLE \"%w\".\"%w_data\" ADD COLUMN message_id TEXT",
    "UPDATE \"%w\".\"%w_data\" SET message_id=json_extract(event,"
    " '$.messageId') WHERE id IN (SELECT min(id) FROM \"%w_data\""
    " WHERE json_valid(event) AND json_type(event, '$.messageId')='text'"
    " GROUP BY json_extract(event, '$.messageId'))",
  };
  unsigned char aRand[8];
  char zIdx[40];
  char *zSql;
  int i, rc;
  for(i=0; i<2; i++){
    zSql = sqlite3_mprintf(azSql[i], p->zDb, p->zName, p->zName);
    rc = zSql ? sqlite3_exec(p->db, zSql, 0, 0, pzErr) : SQLITE_NOMEM;
    sqlite3_free(zSql);
    if( rc ) return rc;
  }
  sqlite3_randomness(sizeof(aRand), aRand);
  memcpy(zIdx, "kustomer_outbox_", 16);
  for(i=0; i<8; i++){
    zIdx[16+2*i] = "0123456789abcdef"[aRand[i]>>4];
    zIdx[17+2*i] = "0123456789abcdef"[aRand[i]&15];
  }
  zIdx[32] = 0;
  zSql = sqlite3_mprintf("CREATE UNIQUE INDEX \"%w\".\"%s_msg\" ON"
                         " \"%w_data\"(message_id) WHERE message_id IS NOT"
                         " NULL", p->zDb, zIdx, p->zName);
  rc = zSql ? sqlite3_exec(p->db, zSql, 0, 0, pzErr) : SQLITE_NOMEM;
  sqlite3_free(zSql);
  return rc;
}

/* Version 3 to 4: bulk_job. */
static int upgrade_3_to_4(KOutboxStore *p, char **pzErr){
  static const char *const azSql[] = {
    "ALTER TABLE \"%w\".\"%w_data\" ADD COLUMN bulk_job TEXT",
  };
  return store_exec(p, pzErr, azSql, 1);
}

/* Version 2 to 3: the starts of <name>_sends into the file's ledger. */
static int upgrade_2_to_3(KOutboxStore *p, char **pzErr){
  char *zSql;
  int rc = kustomer_ledger_create(p->db);
  if( rc ) return rc;
  zSql = sqlite3_mprintf(
      "INSERT INTO main.kustomer_requests(t, kind)"
      " SELECT t, 'api' FROM \"%w\".\"%w_sends\";"
      "DELETE FROM \"%w\".\"%w_sends\";",
      p->zDb, p->zName, p->zDb, p->zName);
  rc = zSql ? sqlite3_exec(p->db, zSql, 0, 0, pzErr) : SQLITE_NOMEM;
  sqlite3_free(zSql);
  return rc;
}

static int upgrade_1_to_2(KOutboxStore *p, char **pzErr){
  static const char *const azSql[] = {
    "ALTER TABLE \"%w\".\"%w_data\" RENAME COLUMN next_at"
    " TO next_attempt_at",
    "ALTER TABLE \"%w\".\"%w_data\" ADD COLUMN kind TEXT",
    "ALTER TABLE \"%w\".\"%w_data\" ADD COLUMN customer_key TEXT",
    "UPDATE \"%w\".\"%w_data\" SET kind=CASE"
    " WHEN request IS NULL THEN NULL"
    " WHEN json_extract(request,'$.endpoint') LIKE '%%/v1/tracking/%%'"
    "  THEN 'track'"
    " WHEN json_extract(request,'$.method')='POST' THEN 'create'"
    " ELSE 'update' END",
  };
  sqlite3_stmt *pSel = 0, *pUpd = 0;
  char *zSql;
  int rc = store_exec(p, pzErr, azSql, 4);
  if( rc ) return rc;
  zSql = sqlite3_mprintf("SELECT id, event FROM \"%w\".\"%w_data\""
                         " WHERE kind IN ('create','update')",
                         p->zDb, p->zName);
  if( zSql ) rc = sqlite3_prepare_v2(p->db, zSql, -1, &pSel, 0);
  else rc = SQLITE_NOMEM;
  sqlite3_free(zSql);
  zSql = sqlite3_mprintf("UPDATE \"%w\".\"%w_data\" SET customer_key=?1"
                         " WHERE id=?2", p->zDb, p->zName);
  if( rc==SQLITE_OK && zSql ) rc = sqlite3_prepare_v2(p->db, zSql, -1,
                                                      &pUpd, 0);
  else if( rc==SQLITE_OK ) rc = SQLITE_NOMEM;
  sqlite3_free(zSql);
  while( rc==SQLITE_OK && sqlite3_step(pSel)==SQLITE_ROW ){
    const char *zEvent = (const char*)sqlite3_column_text(pSel, 1);
    cJSON *pEvent = zEvent ? kustomer_json_parse(zEvent,
                                   sqlite3_column_bytes(pSel, 1), 0) : 0;
    char *zKey = customer_key_of(pEvent);
    cJSON_Delete(pEvent);
    sqlite3_bind_text(pUpd, 1, zKey, -1, sqlite3_free);
    sqlite3_bind_int64(pUpd, 2, sqlite3_column_int64(pSel, 0));
    sqlite3_step(pUpd);
    rc = sqlite3_reset(pUpd);
  }
  if( rc==SQLITE_OK ) rc = sqlite3_finalize(pSel);
  else sqlite3_finalize(pSel);
  sqlite3_finalize(pUpd);
  return rc;
}

int kustomer_outbox_upgrade(KOutboxStore *p, char **pzErr){
  int rc = SQLITE_OK;
  *pzErr = 0;
  if( p->iVersion>=OUTBOX_VERSION ) return SQLITE_OK;
  store_forget(p);
  if( p->iVersion==1 ) rc = upgrade_1_to_2(p, pzErr);
  if( rc==SQLITE_OK && p->iVersion<=2 ) rc = upgrade_2_to_3(p, pzErr);
  if( rc==SQLITE_OK && p->iVersion<=3 ) rc = upgrade_3_to_4(p, pzErr);
  if( rc==SQLITE_OK && p->iVersion<=4 ) rc = upgrade_4_to_5(p, pzErr);
  if( rc==SQLITE_OK ){
    char *zSql = sqlite3_mprintf("UPDATE \"%w\".\"%w_config\" SET v=%d"
                                 " WHERE k='version'", p->zDb, p->zName,
                                 OUTBOX_VERSION);
    rc = zSql ? sqlite3_exec(p->db, zSql, 0, 0, pzErr) : SQLITE_NOMEM;
    sqlite3_free(zSql);
  }
  if( rc==SQLITE_OK ) p->iVersion = OUTBOX_VERSION;
  return rc;
}

/* ---- Create, connect, destroy, rename ---------------------------------- */

/* Create the shadow tables and store the arguments. */
static int outbox_create_tables(KOutboxStore *p, const KOutboxConfig *pCfg,
                                char **pzErr){
  /* The index's name must not follow the table's: ALTER TABLE RENAME
  ** keeps index names, and an index cannot be dropped during it. */
  unsigned char aRand[8];
  sqlite3_stmt *pPut = 0;
  char zIdx[40];
  char *zSql;
  const KArgSpec *a;
  int i, rc;
  sqlite3_randomness(sizeof(aRand), aRand);
  memcpy(zIdx, "kustomer_outbox_", 16);
  for(i=0; i<8; i++){
    zIdx[16+2*i] = "0123456789abcdef"[aRand[i]>>4];
    zIdx[17+2*i] = "0123456789abcdef"[aRand[i]&15];
  }
  zIdx[32] = 0;
  zSql = sqlite3_mprintf(
      "CREATE TABLE \"%w\".\"%w_data\"(" OUTBOX_DATA_SCHEMA ");"
      "CREATE INDEX \"%w\".\"%s_due\" ON \"%w_data\"(status,"
      " next_attempt_at);"
      "CREATE UNIQUE INDEX \"%w\".\"%s_msg\" ON \"%w_data\"(message_id)"
      " WHERE message_id IS NOT NULL;"
      "CREATE TABLE \"%w\".\"%w_config\"(k TEXT PRIMARY KEY, v);"
      "INSERT INTO \"%w\".\"%w_config\"(k, v) VALUES('version', %d);",
      p->zDb, p->zName, p->zDb, zIdx, p->zName, p->zDb, zIdx, p->zName,
      p->zDb, p->zName, p->zDb, p->zName, OUTBOX_VERSION);
  rc = zSql ? sqlite3_exec(p->db, zSql, 0, 0, pzErr) : SQLITE_NOMEM;
  sqlite3_free(zSql);
  if( rc==SQLITE_OK ) rc = kustomer_ledger_create(p->db);
  if( rc==SQLITE_OK ) rc = kustomer_outbox_stmt(p, KOB_CONFIG_PUT, &pPut);
  for(a=aOutboxArg; rc==SQLITE_OK && a->zKey; a++){
    sqlite3_bind_text(pPut, 1, a->zKey, -1, SQLITE_STATIC);
    kustomer_args_bind(a, pCfg, pPut, 2);
    sqlite3_step(pPut);
    rc = sqlite3_reset(pPut);
  }
  p->iVersion = OUTBOX_VERSION;
  return rc;
}

static void outbox_free(Outbox *p){
  if( p==0 ) return;
  kustomer_outbox_store_close(&p->store);
  kustomer_outbox_config_clear(&p->cfg);
  kustomer_settings_free(p->pSet);
  sqlite3_free(p);
}

static int outbox_init(sqlite3 *db, int argc, const char *const *argv,
                       sqlite3_vtab **ppVtab, char **pzErr, int bCreate){
  Outbox *p;
  char *zErr = 0, *zSchema;
  int rc;

  *ppVtab = 0;
  p = sqlite3_malloc(sizeof(*p));
  if( p==0 ) return SQLITE_NOMEM;
  memset(p, 0, sizeof(*p));
  rc = kustomer_outbox_store_init(&p->store, db, argv[1], argv[2]);
  if( rc==SQLITE_OK && bCreate ){
    rc = kustomer_args_parse(aOutboxArg, argc, argv, &p->cfg, &zErr);
    if( rc==SQLITE_OK ){
      zErr = kustomer_settings_check_stored(p->cfg.zSettings);
      if( zErr==0 ) zErr = integrations_check(&p->cfg);
      if( zErr ) rc = SQLITE_ERROR;
    }
    if( rc==SQLITE_OK ) rc = outbox_create_tables(&p->store, &p->cfg, pzErr);
  }else if( rc==SQLITE_OK ){
    rc = kustomer_outbox_config_read(&p->store, &p->cfg, &zErr);
  }
  if( zErr ){
    *pzErr = sqlite3_mprintf("kustomer_outbox: %s", zErr);
    sqlite3_free(zErr);
  }
  if( rc ) goto fail;

  zSchema = sqlite3_mprintf(
      "CREATE TABLE x(id INTEGER, event TEXT, request TEXT, status TEXT,"
      " attempts INTEGER, http_status INTEGER, error TEXT,"
      " kustomer_id TEXT, enqueued_at TEXT, sent_at TEXT,"
      " next_attempt_at REAL, \"%w\" HIDDEN)", argv[2]);
  rc = zSchema ? sqlite3_declare_vtab(db, zSchema) : SQLITE_NOMEM;
  sqlite3_free(zSchema);
  if( rc ) goto fail;
  /* A hostile schema must not be able to queue (csv.c's reason). */
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  rc = kustomer_settings_parse(p->cfg.zSettings,
                               (int)strlen(p->cfg.zSettings), &p->pSet, &zErr);
  sqlite3_free(zErr);
  if( rc ) goto fail;
  *ppVtab = &p->base;
  return SQLITE_OK;

fail:
  outbox_free(p);
  return rc;
}

static int outbox_create(sqlite3 *db, void *pAux, int argc,
                         const char *const *argv, sqlite3_vtab **ppVtab,
                         char **pzErr){
  (void)pAux;
  return outbox_init(db, argc, argv, ppVtab, pzErr, 1);
}

static int outbox_connect(sqlite3 *db, void *pAux, int argc,
                          const char *const *argv, sqlite3_vtab **ppVtab,
                          char **pzErr){
  (void)pAux;
  return outbox_init(db, argc, argv, ppVtab, pzErr, 0);
}

static int outbox_disconnect(sqlite3_vtab *pVtab){
  outbox_free((Outbox*)pVtab);
  return SQLITE_OK;
}

static int outbox_destroy(sqlite3_vtab *pVtab){
  static const char *const azSql[] = {
    "DROP TABLE IF EXISTS \"%w\".\"%w_data\"",
    "DROP TABLE IF EXISTS \"%w\".\"%w_config\"",
    "DROP TABLE IF EXISTS \"%w\".\"%w_sends\"",
  };
  Outbox *p = (Outbox*)pVtab;
  int rc;
  store_forget(&p->store);
  rc = store_exec(&p->store, 0, azSql, 3);
  if( rc==SQLITE_OK ) outbox_disconnect(pVtab);
  return rc;
}

/* Whether <name>_sends exists (tables made before version 3). */
static int store_has_sends(KOutboxStore *p){
  char *zSql = sqlite3_mprintf("SELECT 1 FROM \"%w\".sqlite_schema"
                               " WHERE type='table' AND name='%q_sends'",
                               p->zDb, p->zName);
  sqlite3_stmt *pStmt = 0;
  int bHas = 0;
  if( zSql && sqlite3_prepare_v2(p->db, zSql, -1, &pStmt, 0)==SQLITE_OK ){
    bHas = sqlite3_step(pStmt)==SQLITE_ROW;
  }
  sqlite3_finalize(pStmt);
  sqlite3_free(zSql);
  return bHas;
}

static int outbox_rename(sqlite3_vtab *pVtab, const char *zNew){
  Outbox *p = (Outbox*)pVtab;
  char *zSql, *zName;
  int rc;
  store_forget(&p->store);
  zSql = sqlite3_mprintf(
      "ALTER TABLE \"%w\".\"%w_data\" RENAME TO \"%w_data\";"
      "ALTER TABLE \"%w\".\"%w_config\" RENAME TO \"%w_config\";",
      p->store.zDb, p->store.zName, zNew, p->store.zDb, p->store.zName, zNew);
  if( zSql && store_has_sends(&p->store) ){
    /* made before version 3: <name>_sends is there too */
    char *zMore = sqlite3_mprintf("%zALTER TABLE \"%w\".\"%w_sends\""
                                  " RENAME TO \"%w_sends\";", zSql,
                                  p->store.zDb, p->store.zName, zNew);
    zSql = zMore;
  }
  rc = zSql ? sqlite3_exec(p->store.db, zSql, 0, 0, 0) : SQLITE_NOMEM;
  sqlite3_free(zSql);
  if( rc ) return rc;
  zName = sqlite3_mprintf("%s", zNew);
  if( zName==0 ) return SQLITE_NOMEM;
  sqlite3_free(p->store.zName);
  p->store.zName = zName;
  return SQLITE_OK;
}

/* "sends": the third shadow table until storage version 3. */
static int outbox_shadow_name(const char *zSuffix){
  return sqlite3_stricmp(zSuffix, "data")==0
      || sqlite3_stricmp(zSuffix, "config")==0
      || sqlite3_stricmp(zSuffix, "sends")==0;
}

/* ---- Reading ------------------------------------------------------------ */

#define PLAN_SCAN   0
#define PLAN_ROWID  1
#define PLAN_STATUS 2

static int outbox_best_index(sqlite3_vtab *pVtab, sqlite3_index_info *pInfo){
  int i, iRowid = -1, iStatus = -1;
  (void)pVtab;
  for(i=0; i<pInfo->nConstraint; i++){
    const struct sqlite3_index_constraint *pC = &pInfo->aConstraint[i];
    if( !pC->usable || pC->op!=SQLITE_INDEX_CONSTRAINT_EQ ) continue;
    if( pC->iColumn==-1 || pC->iColumn==OUT_ID ) iRowid = i;
    if( pC->iColumn==OUT_STATUS ) iStatus = i;
  }
  if( iRowid>=0 ){
    pInfo->idxNum = PLAN_ROWID;
    pInfo->aConstraintUsage[iRowid].argvIndex = 1;
    pInfo->aConstraintUsage[iRowid].omit = 1;
    pInfo->estimatedCost = 1;
    pInfo->estimatedRows = 1;
    pInfo->idxFlags = SQLITE_INDEX_SCAN_UNIQUE;
  }else if( iStatus>=0 ){
    pInfo->idxNum = PLAN_STATUS;
    pInfo->aConstraintUsage[iStatus].argvIndex = 1;
    pInfo->aConstraintUsage[iStatus].omit = 1;
    pInfo->estimatedCost = 1000;
    pInfo->estimatedRows = 1000;
  }else{
    pInfo->idxNum = PLAN_SCAN;
    pInfo->estimatedCost = 100000;
    pInfo->estimatedRows = 100000;
  }
  if( pInfo->nOrderBy==1 && pInfo->aOrderBy[0].iColumn<=OUT_ID
   && !pInfo->aOrderBy[0].desc && pInfo->idxNum!=PLAN_STATUS ){
    pInfo->orderByConsumed = 1;
  }
  return SQLITE_OK;
}

static int outbox_open(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCur){
  OutboxCursor *pCur = sqlite3_malloc(sizeof(*pCur));
  (void)pVtab;
  if( pCur==0 ) return SQLITE_NOMEM;
  memset(pCur, 0, sizeof(*pCur));
  *ppCur = &pCur->base;
  return SQLITE_OK;
}

static int outbox_close(sqlite3_vtab_cursor *cur){
  OutboxCursor *pCur = (OutboxCursor*)cur;
  sqlite3_finalize(pCur->pStmt);
  sqlite3_free(pCur);
  return SQLITE_OK;
}

static int outbox_next(sqlite3_vtab_cursor *cur){
  OutboxCursor *pCur = (OutboxCursor*)cur;
  int rc = sqlite3_step(pCur->pStmt);
  if( rc==SQLITE_ROW ) return SQLITE_OK;
  pCur->bEof = 1;
  return rc==SQLITE_DONE ? SQLITE_OK : rc;
}

static int outbox_filter(sqlite3_vtab_cursor *cur, int idxNum,
                         const char *idxStr, int argc, sqlite3_value **argv){
  OutboxCursor *pCur = (OutboxCursor*)cur;
  Outbox *p = (Outbox*)cur->pVtab;
  const char *zWhere = idxNum==PLAN_ROWID ? " WHERE id=?" :
                       idxNum==PLAN_STATUS ? " WHERE status=?" : "";
  char *zSql;
  int rc;
  (void)idxStr;
  sqlite3_finalize(pCur->pStmt);
  pCur->pStmt = 0;
  pCur->bEof = 0;
  /* Each cursor has a statement of its own: a self-join reads two rows at
  ** once. */
  zSql = sqlite3_mprintf("SELECT id, event, request, status, attempts,"
                         " http_status, error, kustomer_id, enqueued_at,"
                         " sent_at, %s FROM \"%w\".\"%w_data\"%s"
                         " ORDER BY id",
                         p->store.iVersion<2 ? "next_at" : "next_attempt_at",
                         p->store.zDb, p->store.zName, zWhere);
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(p->store.db, zSql, -1, &pCur->pStmt, 0);
  sqlite3_free(zSql);
  if( rc ){
    return outbox_error(p, sqlite3_mprintf("%s",
                                           sqlite3_errmsg(p->store.db)));
  }
  if( argc>0 ) sqlite3_bind_value(pCur->pStmt, 1, argv[0]);
  return outbox_next(cur);
}

static int outbox_eof(sqlite3_vtab_cursor *cur){
  return ((OutboxCursor*)cur)->bEof;
}

static int outbox_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx,
                         int iCol){
  OutboxCursor *pCur = (OutboxCursor*)cur;
  if( iCol<OUT_COMMAND ){
    sqlite3_result_value(ctx, sqlite3_column_value(pCur->pStmt, iCol));
    if( iCol==OUT_REQUEST
     && sqlite3_column_type(pCur->pStmt, iCol)==SQLITE_TEXT ){
      sqlite3_result_subtype(ctx, KUSTOMER_JSON_SUBTYPE);
    }
  }
  return SQLITE_OK;
}

static int outbox_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *pRowid){
  *pRowid = sqlite3_column_int64(((OutboxCursor*)cur)->pStmt, 0);
  return SQLITE_OK;
}

/* ---- Writing ------------------------------------------------------------ */

void kustomer_outbox_item_clear(KOutboxItem *p){
  sqlite3_free(p->zRequest);
  sqlite3_free(p->zError);
  sqlite3_free(p->zMessageId);
  sqlite3_free(p->zCustomerKey);
  memset(p, 0, sizeof(*p));
}

int kustomer_outbox_request(const KSettings *pSet, const char *zEvent,
                            int nEvent, const char *zCustomerId,
                            KOutboxItem *pItem){
  KSettings set = *pSet;
  KError err = {0, 0};
  sqlite3_str *pOut;
  char *zErr = 0;
  cJSON *pDoc;
  int rc, eType;

  memset(pItem, 0, sizeof(*pItem));
  set.zAuth = 0;
  pDoc = kustomer_json_parse(zEvent, nEvent, &zErr);
  if( pDoc==0 ){
    if( zErr==0 ) return SQLITE_NOMEM;
    pItem->zError = sqlite3_mprintf("Event %s", zErr);
    sqlite3_free(zErr);
    return pItem->zError ? SQLITE_OK : SQLITE_NOMEM;
  }
  pOut = sqlite3_str_new(0);
  rc = kustomer_request_write(pOut, pDoc, &set, zCustomerId, 0, &err);
  if( rc==KUSTOMER_EVENT_ERROR ){
    sqlite3_free(sqlite3_str_finish(pOut));
    cJSON_Delete(pDoc);
    pItem->zError = err.zMsg;
    return SQLITE_OK;
  }
  kustomer_error_clear(&err);
  if( rc==SQLITE_OK ) rc = sqlite3_str_errcode(pOut);
  pItem->zRequest = sqlite3_str_finish(pOut);
  pItem->eIntegrationOff = kustomer_integration_off(pDoc);
  {
    const cJSON *pMsg = kustomer_json_member(pDoc, "messageId");
    if( cJSON_IsString(pMsg) && pMsg->valuestring[0] ){
      pItem->zMessageId = sqlite3_mprintf("%s", pMsg->valuestring);
      if( pItem->zMessageId==0 ) rc = SQLITE_NOMEM;
    }
  }
  eType = kustomer_event_type(pDoc, &err);
  kustomer_error_clear(&err);
  if( eType!=KTYPE_IDENTIFY ){
    pItem->zKind = "track";
  }else{
    /* The choice kustomer_request_write() made, read off the envelope's
    ** fixed start. */
    static const char zPost[] =
        "{\"version\":\"1\",\"type\":\"REST\",\"method\":\"POST\"";
    pItem->zKind = (pItem->zRequest && strncmp(pItem->zRequest, zPost,
                                               sizeof(zPost)-1)==0)
                 ? "create" : "update";
    pItem->zCustomerKey = customer_key_of(pDoc);
    if( pItem->zCustomerKey==0 && kustomer_user_id(pDoc) ) rc = SQLITE_NOMEM;
  }
  cJSON_Delete(pDoc);
  if( rc ) kustomer_outbox_item_clear(pItem);
  return rc;
}

/* The 'retry' command: failed rows go back to pending, attempts reset. */
static int outbox_command(Outbox *p, sqlite3_value *pCmd){
  const char *z = (const char*)sqlite3_value_text(pCmd);
  sqlite3_stmt *pStmt;
  int rc;
  if( z==0 || sqlite3_stricmp(z, "retry")!=0 ){
    return outbox_error(p, sqlite3_mprintf("kustomer_outbox: unknown command "
                        "%Q (known: 'retry')", z ? z : ""));
  }
  rc = kustomer_outbox_stmt(&p->store, KOB_RETRY_FAILED, &pStmt);
  if( rc==SQLITE_OK ){
    sqlite3_step(pStmt);
    rc = sqlite3_reset(pStmt);
  }
  return rc;
}

/* INSERT of an event: stored with its request, or as invalid with the
** reason it cannot be sent. */
static int outbox_insert(Outbox *p, sqlite3_value **argv,
                         sqlite3_int64 *pRowid){
  sqlite3_value *pEvent = argv[2+OUT_EVENT];
  sqlite3_stmt *pStmt;
  KOutboxItem item;
  KJsonText text;
  char *zErr = 0;
  int rc;

  rc = kustomer_json_text(p->store.db, pEvent, "kustomer_outbox", 0, "event",
                          &text, &zErr);
  if( rc ) return rc==SQLITE_ERROR ? outbox_error(p, zErr) : rc;
  rc = kustomer_outbox_request(p->pSet, text.z, text.n, 0, &item);
  if( rc ){
    kustomer_json_text_done(&text);
    return rc;
  }
  if( p->cfg.dedupe && item.zMessageId ){
    /* a message the outbox holds already (an archive loaded twice,
    ** overlapping ones) is not stored again; the INSERT succeeds */
    rc = kustomer_outbox_stmt(&p->store, KOB_BY_MESSAGE, &pStmt);
    if( rc==SQLITE_OK ){
      sqlite3_bind_text(pStmt, 1, item.zMessageId, -1, SQLITE_STATIC);
      if( sqlite3_step(pStmt)==SQLITE_ROW ){
        *pRowid = sqlite3_column_int64(pStmt, 0);
        sqlite3_reset(pStmt);
        kustomer_outbox_item_clear(&item);
        kustomer_json_text_done(&text);
        return SQLITE_OK;
      }
      rc = sqlite3_reset(pStmt);
    }
    if( rc ){
      kustomer_outbox_item_clear(&item);
      kustomer_json_text_done(&text);
      return rc;
    }
  }
  rc = kustomer_outbox_stmt(&p->store, KOB_INSERT, &pStmt);
  if( rc==SQLITE_OK ){
    sqlite3_bind_value(pStmt, 1, sqlite3_value_type(argv[1])!=SQLITE_NULL ?
                                 argv[1] : argv[2+OUT_ID]);
    /* JSONB is stored as its text: the event column is always text */
    sqlite3_bind_text(pStmt, 2, text.z, text.n, SQLITE_STATIC);
    sqlite3_bind_text(pStmt, 3, item.zRequest, -1, SQLITE_STATIC);
    int bSkip = item.zError==0 && item.eIntegrationOff
             && !(p->cfg.zIntegrations
                  && strcmp(p->cfg.zIntegrations, "ignore")==0);
    sqlite3_bind_text(pStmt, 4, item.zError ? "invalid" : bSkip ? "skipped"
                      : "pending", -1, SQLITE_STATIC);
    if( bSkip ){
      /* as RudderStack and Segment would: never given to Kustomer */
      sqlite3_bind_text(pStmt, 5, item.eIntegrationOff==1
                        ? "integrations.Kustomer is false"
                        : "integrations.All is false and Kustomer is not "
                          "turned on", -1, SQLITE_STATIC);
    }else{
      sqlite3_bind_text(pStmt, 5, item.zError, -1, SQLITE_STATIC);
    }
    sqlite3_bind_text(pStmt, 6, item.zKind, -1, SQLITE_STATIC);
    sqlite3_bind_text(pStmt, 7, item.zCustomerKey, -1, SQLITE_STATIC);
    sqlite3_bind_text(pStmt, 8, p->cfg.dedupe ? item.zMessageId : 0, -1,
                      SQLITE_STATIC);
    sqlite3_step(pStmt);
    rc = sqlite3_reset(pStmt);
    sqlite3_clear_bindings(pStmt);
  }
  if( rc ){
    outbox_error(p, sqlite3_mprintf("kustomer_outbox: %s",
                                    sqlite3_errmsg(p->store.db)));
  }else{
    *pRowid = sqlite3_last_insert_rowid(p->store.db);
  }
  kustomer_outbox_item_clear(&item);
  kustomer_json_text_done(&text);
  return rc;
}

static int outbox_update(sqlite3_vtab *pVtab, int argc, sqlite3_value **argv,
                         sqlite3_int64 *pRowid){
  Outbox *p = (Outbox*)pVtab;
  sqlite3_stmt *pStmt;
  char *zErr = 0;
  int rc, i;

  /* The first write of a table of an older version upgrades it, inside
  ** the caller's transaction. */
  rc = kustomer_outbox_upgrade(&p->store, &zErr);
  if( rc ){
    return outbox_error(p, sqlite3_mprintf("kustomer_outbox: cannot upgrade "
                        "%s to storage version %d: %s", p->store.zName,
                        OUTBOX_VERSION, zErr ? zErr :
                        sqlite3_errmsg(p->store.db)));
  }
  if( argc==1 ){
    rc = kustomer_outbox_stmt(&p->store, KOB_DELETE, &pStmt);
    if( rc ) return rc;
    sqlite3_bind_value(pStmt, 1, argv[0]);
    sqlite3_step(pStmt);
    return sqlite3_reset(pStmt);
  }
  if( sqlite3_value_type(argv[0])!=SQLITE_NULL ){
    return outbox_error(p, sqlite3_mprintf("kustomer_outbox: rows cannot be "
                        "updated (delete them, insert again, or use "
                        "INSERT INTO %s(%s) VALUES('retry'))",
                        p->store.zName, p->store.zName));
  }
  if( sqlite3_value_type(argv[2+OUT_COMMAND])!=SQLITE_NULL ){
    return outbox_command(p, argv[2+OUT_COMMAND]);
  }
  for(i=0; i<OUT_COMMAND; i++){
    if( i==OUT_ID || i==OUT_EVENT ) continue;
    if( sqlite3_value_type(argv[2+i])!=SQLITE_NULL ){
      return outbox_error(p, sqlite3_mprintf("kustomer_outbox: only id and "
                          "event can be inserted"));
    }
  }
  return outbox_insert(p, argv, pRowid);
}

static sqlite3_module outboxModule = {
  .iVersion = 3,            /* xShadowName */
  .xCreate = outbox_create,
  .xConnect = outbox_connect,
  .xBestIndex = outbox_best_index,
  .xDisconnect = outbox_disconnect,
  .xDestroy = outbox_destroy,
  .xOpen = outbox_open,
  .xClose = outbox_close,
  .xFilter = outbox_filter,
  .xNext = outbox_next,
  .xEof = outbox_eof,
  .xColumn = outbox_column,
  .xRowid = outbox_rowid,
  .xUpdate = outbox_update,
  .xRename = outbox_rename,
  .xShadowName = outbox_shadow_name,
};

int kustomer_register_outbox(sqlite3 *db){
  return sqlite3_create_module(db, "kustomer_outbox", &outboxModule, 0);
}
