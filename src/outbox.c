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
** arguments), plus <name>_sends (when recent requests were sent, so the
** rate limit holds across flushes and processes).  An INSERT only
** transforms and stores: nothing is sent inside INSERT or COMMIT, because
** a POST cannot be rolled back.  The API key is never stored: settings must
** name it with apiKeyEnv, and the stored request has no Authorization
** header; kustomer_flush() adds it when it sends.
*/
#include <stdarg.h>
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

/* Shadow table schema; <name>_data's columns follow the vtab's order. */
#define OUTBOX_DATA_SCHEMA \
  "id INTEGER PRIMARY KEY, event TEXT NOT NULL, request TEXT, " \
  "status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, " \
  "http_status INTEGER, error TEXT, kustomer_id TEXT, " \
  "enqueued_at TEXT NOT NULL, sent_at TEXT, next_at REAL NOT NULL DEFAULT 0"

typedef struct Outbox Outbox;
struct Outbox {
  sqlite3_vtab base;
  sqlite3 *db;
  char *zDb;                /* schema holding the table */
  char *zName;              /* the table's name */
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

void kustomer_outbox_config_clear(KOutboxConfig *p){
  sqlite3_free(p->zSettings);
  memset(p, 0, sizeof(*p));
}

/* ---- Arguments, in the manner of csv.c ---------------------------------- */

/* The value of "key=value" with SQL-style quotes removed, or NULL if the
** argument is not for this key.  *pzErr on a malformed argument. */
static char *arg_value(const char *zArg, const char *zKey){
  size_t n = strlen(zKey);
  const char *z;
  char q;
  char *zOut;
  size_t i, j;
  while( *zArg==' ' ) zArg++;
  if( sqlite3_strnicmp(zArg, zKey, (int)n)!=0 ) return 0;
  z = zArg + n;
  while( *z==' ' ) z++;
  if( *z!='=' ) return 0;
  z++;
  while( *z==' ' ) z++;
  n = strlen(z);
  while( n>0 && z[n-1]==' ' ) n--;
  q = z[0];
  if( n>=2 && (q=='\'' || q=='"') && z[n-1]==q ){
    zOut = sqlite3_malloc64(n);
    if( zOut==0 ) return 0;
    for(i=1, j=0; i<n-1; i++){
      zOut[j++] = z[i];
      if( z[i]==q && z[i+1]==q ) i++;
    }
    zOut[j] = 0;
    return zOut;
  }
  return sqlite3_mprintf("%.*s", (int)n, z);
}

static const char *const azArgKey[] = {
  "settings", "rate_limit", "budget", "max_attempts", "rate_window",
  "concurrency", "progress", 0
};

/* Check a configuration and fill in defaults; an error message or NULL. */
static char *config_check(KOutboxConfig *p){
  KSettings *pSet = 0;
  char *zErr = 0;
  int rc;
  if( p->zSettings==0 ){
    return sqlite3_mprintf("settings='{...}' is required (at least "
                           "apiKeyEnv, the variable holding the API key)");
  }
  rc = kustomer_settings_parse(p->zSettings, (int)strlen(p->zSettings),
                               &pSet, &zErr);
  if( rc==SQLITE_OK ){
    cJSON *pRoot = cJSON_Parse(p->zSettings);
    if( kustomer_json_member(pRoot, "apiKey") ){
      zErr = sqlite3_mprintf("settings must not hold apiKey: it would be "
                             "stored in the database file; name an "
                             "environment variable with apiKeyEnv");
    }else if( pSet->zKeyEnv==0 ){
      zErr = sqlite3_mprintf("settings need apiKeyEnv, the environment "
                             "variable holding the API key");
    }
    cJSON_Delete(pRoot);
    kustomer_settings_free(pSet);
    if( zErr ) return zErr;
  }else{
    char *zMsg = sqlite3_mprintf("settings %s", zErr ? zErr : "out of memory");
    sqlite3_free(zErr);
    return zMsg;
  }
  if( p->rateLimit<1 || p->rateLimit>1000000 ){
    return sqlite3_mprintf("rate_limit must be between 1 and 1000000 "
                           "requests per window");
  }
  if( !(p->budget>0.0 && p->budget<=1.0) ){
    return sqlite3_mprintf("budget must be more than 0 and at most 1");
  }
  if( p->maxAttempts<1 || p->maxAttempts>100 ){
    return sqlite3_mprintf("max_attempts must be between 1 and 100");
  }
  if( !(p->rateWindow>=0.1 && p->rateWindow<=3600) ){
    return sqlite3_mprintf("rate_window must be between 0.1 and 3600 "
                           "seconds");
  }
  if( p->concurrency<1 || p->concurrency>64 ){
    return sqlite3_mprintf("concurrency must be between 1 and 64");
  }
  return 0;
}

static void config_defaults(KOutboxConfig *p){
  p->rateLimit = 300;       /* the smallest Kustomer plan */
  p->budget = 0.8;
  p->maxAttempts = 8;
  p->rateWindow = 60;
  p->concurrency = 4;
  p->progress = 0;
}

/* Parse a number argument; non-zero if it is not one. */
static int arg_number(const char *z, double *pr){
  char *zEnd = 0;
  if( z==0 || *z==0 ) return 1;
  *pr = strtod(z, &zEnd);
  return *zEnd!=0;
}

static char *config_from_args(int argc, const char *const *argv,
                              KOutboxConfig *p){
  int i, k;
  int aSeen[7] = {0, 0, 0, 0, 0, 0, 0};
  memset(p, 0, sizeof(*p));
  config_defaults(p);
  for(i=3; i<argc; i++){
    char *zVal = 0;
    double r = 0;
    for(k=0; azArgKey[k]; k++){
      zVal = arg_value(argv[i], azArgKey[k]);
      if( zVal ) break;
    }
    if( zVal==0 ){
      return sqlite3_mprintf("unknown argument %Q (known: settings, "
                             "rate_limit, budget, max_attempts, rate_window, "
                             "concurrency, progress)", argv[i]);
    }
    if( aSeen[k]++ ){
      sqlite3_free(zVal);
      return sqlite3_mprintf("argument %s given twice", azArgKey[k]);
    }
    if( k==0 ){
      p->zSettings = zVal;
      continue;
    }
    if( arg_number(zVal, &r) ){
      char *zErr = sqlite3_mprintf("%s must be a number, not %Q",
                                   azArgKey[k], zVal);
      sqlite3_free(zVal);
      return zErr;
    }
    sqlite3_free(zVal);
    switch( k ){
      case 1: p->rateLimit = r; break;
      case 2: p->budget = r; break;
      case 3: p->maxAttempts = (int)r; break;
      case 4: p->rateWindow = r; break;
      case 5: p->concurrency = (int)r; break;
      default: p->progress = r!=0; break;
    }
  }
  return config_check(p);
}

int kustomer_outbox_config_read(sqlite3 *db, const char *zDb,
                                const char *zName, KOutboxConfig *p,
                                char **pzErr){
  sqlite3_stmt *pStmt = 0;
  char *zSql;
  int rc;
  memset(p, 0, sizeof(*p));
  config_defaults(p);
  *pzErr = 0;
  zSql = sqlite3_mprintf("SELECT k, v FROM \"%w\".\"%w_config\"", zDb, zName);
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(db, zSql, -1, &pStmt, 0);
  sqlite3_free(zSql);
  if( rc!=SQLITE_OK ){
    *pzErr = sqlite3_mprintf("%s is not a kustomer_outbox table", zName);
    return SQLITE_ERROR;
  }
  while( sqlite3_step(pStmt)==SQLITE_ROW ){
    const char *zK = (const char*)sqlite3_column_text(pStmt, 0);
    if( zK==0 ) continue;
    if( strcmp(zK, "settings")==0 ){
      sqlite3_free(p->zSettings);
      p->zSettings = sqlite3_mprintf("%s", sqlite3_column_text(pStmt, 1));
    }else if( strcmp(zK, "rate_limit")==0 ){
      p->rateLimit = sqlite3_column_double(pStmt, 1);
    }else if( strcmp(zK, "budget")==0 ){
      p->budget = sqlite3_column_double(pStmt, 1);
    }else if( strcmp(zK, "max_attempts")==0 ){
      p->maxAttempts = sqlite3_column_int(pStmt, 1);
    }else if( strcmp(zK, "rate_window")==0 ){
      p->rateWindow = sqlite3_column_double(pStmt, 1);
    }else if( strcmp(zK, "concurrency")==0 ){
      p->concurrency = sqlite3_column_int(pStmt, 1);
    }else if( strcmp(zK, "progress")==0 ){
      p->progress = sqlite3_column_int(pStmt, 1);
    }
  }
  rc = sqlite3_finalize(pStmt);
  if( rc==SQLITE_OK ){
    *pzErr = config_check(p);
    if( *pzErr ) rc = SQLITE_ERROR;
  }
  return rc;
}

/* ---- Create, connect, destroy, rename ---------------------------------- */

static int outbox_exec(sqlite3 *db, char **pzErr, const char *zFmt, ...){
  va_list ap;
  char *zSql;
  int rc;
  va_start(ap, zFmt);
  zSql = sqlite3_vmprintf(zFmt, ap);
  va_end(ap);
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_exec(db, zSql, 0, 0, pzErr);
  sqlite3_free(zSql);
  return rc;
}

static int outbox_init(sqlite3 *db, int argc, const char *const *argv,
                       sqlite3_vtab **ppVtab, char **pzErr, int bCreate){
  Outbox *p = 0;
  KOutboxConfig cfg;
  char *zErr = 0;
  int rc = SQLITE_OK;

  memset(&cfg, 0, sizeof(cfg));
  *ppVtab = 0;
  if( bCreate ){
    zErr = config_from_args(argc, argv, &cfg);
  }else{
    if( kustomer_outbox_config_read(db, argv[1], argv[2], &cfg, &zErr) ){
      if( zErr==0 ) rc = SQLITE_NOMEM;
    }
  }
  if( zErr ){
    *pzErr = sqlite3_mprintf("kustomer_outbox: %s", zErr);
    sqlite3_free(zErr);
    rc = SQLITE_ERROR;
    goto fail;
  }
  if( rc ) goto fail;

  if( bCreate ){
    /* The index's name must not follow the table's: ALTER TABLE RENAME
    ** keeps index names, and an index cannot be dropped during it. */
    unsigned char aRand[8];
    char zIdx[40];
    int i;
    sqlite3_randomness(sizeof(aRand), aRand);
    memcpy(zIdx, "kustomer_outbox_", 16);
    for(i=0; i<8; i++){
      zIdx[16+2*i] = "0123456789abcdef"[aRand[i]>>4];
      zIdx[17+2*i] = "0123456789abcdef"[aRand[i]&15];
    }
    zIdx[32] = 0;
    rc = outbox_exec(db, pzErr,
        "CREATE TABLE \"%w\".\"%w_data\"(" OUTBOX_DATA_SCHEMA ");"
        "CREATE INDEX \"%w\".\"%s_due\" ON \"%w_data\"(status, next_at);"
        "CREATE TABLE \"%w\".\"%w_config\"(k TEXT PRIMARY KEY, v);"
        "CREATE TABLE \"%w\".\"%w_sends\"(t REAL NOT NULL);"
        "INSERT INTO \"%w\".\"%w_config\"(k, v) VALUES"
        "('version', 1), ('settings', %Q), ('rate_limit', %.17g),"
        "('budget', %.17g), ('max_attempts', %d), ('rate_window', %.17g),"
        "('concurrency', %d), ('progress', %d);",
        argv[1], argv[2], argv[1], zIdx, argv[2],
        argv[1], argv[2], argv[1], argv[2], argv[1], argv[2],
        cfg.zSettings, cfg.rateLimit, cfg.budget, cfg.maxAttempts,
        cfg.rateWindow, cfg.concurrency, cfg.progress);
    if( rc ) goto fail;
  }

  {
    char *zSchema = sqlite3_mprintf(
        "CREATE TABLE x(id INTEGER, event TEXT, request TEXT, status TEXT,"
        " attempts INTEGER, http_status INTEGER, error TEXT,"
        " kustomer_id TEXT, enqueued_at TEXT, sent_at TEXT,"
        " next_attempt_at REAL, \"%w\" HIDDEN)", argv[2]);
    if( zSchema==0 ){
      rc = SQLITE_NOMEM;
      goto fail;
    }
    rc = sqlite3_declare_vtab(db, zSchema);
    sqlite3_free(zSchema);
    if( rc ) goto fail;
  }
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);

  p = sqlite3_malloc(sizeof(*p));
  if( p==0 ){
    rc = SQLITE_NOMEM;
    goto fail;
  }
  memset(p, 0, sizeof(*p));
  p->db = db;
  p->zDb = sqlite3_mprintf("%s", argv[1]);
  p->zName = sqlite3_mprintf("%s", argv[2]);
  p->cfg = cfg;
  memset(&cfg, 0, sizeof(cfg));
  if( p->zDb==0 || p->zName==0 ){
    rc = SQLITE_NOMEM;
    goto fail;
  }
  rc = kustomer_settings_parse(p->cfg.zSettings,
                               (int)strlen(p->cfg.zSettings), &p->pSet, &zErr);
  if( rc ){
    sqlite3_free(zErr);
    goto fail;
  }
  *ppVtab = &p->base;
  return SQLITE_OK;

fail:
  kustomer_outbox_config_clear(&cfg);
  if( p ){
    sqlite3_free(p->zDb);
    sqlite3_free(p->zName);
    kustomer_outbox_config_clear(&p->cfg);
    kustomer_settings_free(p->pSet);
    sqlite3_free(p);
  }
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
  Outbox *p = (Outbox*)pVtab;
  sqlite3_free(p->zDb);
  sqlite3_free(p->zName);
  kustomer_outbox_config_clear(&p->cfg);
  kustomer_settings_free(p->pSet);
  sqlite3_free(p);
  return SQLITE_OK;
}

static int outbox_destroy(sqlite3_vtab *pVtab){
  Outbox *p = (Outbox*)pVtab;
  int rc = outbox_exec(p->db, 0,
      "DROP TABLE IF EXISTS \"%w\".\"%w_data\";"
      "DROP TABLE IF EXISTS \"%w\".\"%w_config\";"
      "DROP TABLE IF EXISTS \"%w\".\"%w_sends\";",
      p->zDb, p->zName, p->zDb, p->zName, p->zDb, p->zName);
  if( rc==SQLITE_OK ) outbox_disconnect(pVtab);
  return rc;
}

static int outbox_rename(sqlite3_vtab *pVtab, const char *zNew){
  Outbox *p = (Outbox*)pVtab;
  char *zName;
  int rc = outbox_exec(p->db, 0,
      "ALTER TABLE \"%w\".\"%w_data\" RENAME TO \"%w_data\";"
      "ALTER TABLE \"%w\".\"%w_config\" RENAME TO \"%w_config\";"
      "ALTER TABLE \"%w\".\"%w_sends\" RENAME TO \"%w_sends\";",
      p->zDb, p->zName, zNew,
      p->zDb, p->zName, zNew,
      p->zDb, p->zName, zNew);
  if( rc ) return rc;
  zName = sqlite3_mprintf("%s", zNew);
  if( zName==0 ) return SQLITE_NOMEM;
  sqlite3_free(p->zName);
  p->zName = zName;
  return SQLITE_OK;
}

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
  zSql = sqlite3_mprintf("SELECT id, event, request, status, attempts,"
                         " http_status, error, kustomer_id, enqueued_at,"
                         " sent_at, next_at FROM \"%w\".\"%w_data\"%s"
                         " ORDER BY id", p->zDb, p->zName, zWhere);
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(p->db, zSql, -1, &pCur->pStmt, 0);
  sqlite3_free(zSql);
  if( rc ) return outbox_error(p, sqlite3_mprintf("%s", sqlite3_errmsg(p->db)));
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

/*
** The request stored for an event: the envelope without Authorization, or
** the reason it cannot be made.  *pzRequest or *pzError is set.
*/
int kustomer_outbox_request(const KSettings *pSet, const char *zEvent,
                            int nEvent, char **pzRequest, char **pzError){
  KSettings set = *pSet;
  KError err = {0, 0};
  sqlite3_str *pOut;
  char *zErr = 0;
  cJSON *pDoc;
  int rc;

  *pzRequest = *pzError = 0;
  set.zAuth = 0;
  pDoc = kustomer_json_parse(zEvent, nEvent, &zErr);
  if( pDoc==0 ){
    if( zErr==0 ) return SQLITE_NOMEM;
    *pzError = sqlite3_mprintf("Event %s", zErr);
    sqlite3_free(zErr);
    return *pzError ? SQLITE_OK : SQLITE_NOMEM;
  }
  pOut = sqlite3_str_new(0);
  rc = kustomer_request_write(pOut, pDoc, &set, 0, 0, &err);
  cJSON_Delete(pDoc);
  if( rc==KUSTOMER_EVENT_ERROR ){
    sqlite3_free(sqlite3_str_finish(pOut));
    *pzError = err.zMsg;
    return SQLITE_OK;
  }
  kustomer_error_clear(&err);
  if( rc==SQLITE_OK ) rc = sqlite3_str_errcode(pOut);
  *pzRequest = sqlite3_str_finish(pOut);
  if( rc ){
    sqlite3_free(*pzRequest);
    *pzRequest = 0;
  }
  return rc;
}

/* The 'retry' command: failed rows go back to pending, attempts reset. */
static int outbox_command(Outbox *p, sqlite3_value *pCmd){
  const char *z = (const char*)sqlite3_value_text(pCmd);
  if( z && sqlite3_stricmp(z, "retry")==0 ){
    return outbox_exec(p->db, &p->base.zErrMsg,
        "UPDATE \"%w\".\"%w_data\" SET status='pending', attempts=0,"
        " error=NULL, http_status=NULL, next_at=0 WHERE status='failed'",
        p->zDb, p->zName);
  }
  return outbox_error(p, sqlite3_mprintf("kustomer_outbox: unknown command "
                      "%Q (known: 'retry')", z ? z : ""));
}

static int outbox_update(sqlite3_vtab *pVtab, int argc, sqlite3_value **argv,
                         sqlite3_int64 *pRowid){
  Outbox *p = (Outbox*)pVtab;
  sqlite3_stmt *pStmt = 0;
  char *zRequest = 0, *zError = 0, *zSql;
  const char *zEvent;
  int rc, i;

  if( argc==1 ){
    zSql = sqlite3_mprintf("DELETE FROM \"%w\".\"%w_data\" WHERE id=?",
                           p->zDb, p->zName);
    if( zSql==0 ) return SQLITE_NOMEM;
    rc = sqlite3_prepare_v2(p->db, zSql, -1, &pStmt, 0);
    sqlite3_free(zSql);
    if( rc ) return rc;
    sqlite3_bind_value(pStmt, 1, argv[0]);
    sqlite3_step(pStmt);
    return sqlite3_finalize(pStmt);
  }
  if( sqlite3_value_type(argv[0])!=SQLITE_NULL ){
    return outbox_error(p, sqlite3_mprintf("kustomer_outbox: rows cannot be "
                        "updated (delete them, insert again, or use "
                        "INSERT INTO %s(%s) VALUES('retry'))",
                        p->zName, p->zName));
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
  if( sqlite3_value_type(argv[2+OUT_EVENT])!=SQLITE_TEXT ){
    return outbox_error(p, sqlite3_mprintf("kustomer_outbox: event must be "
                        "JSON text, got %s",
                        sqlite3_value_type(argv[2+OUT_EVENT])==SQLITE_NULL ?
                        "NULL" : "another type"));
  }
  zEvent = (const char*)sqlite3_value_text(argv[2+OUT_EVENT]);
  if( zEvent==0 ) return SQLITE_NOMEM;
  rc = kustomer_outbox_request(p->pSet, zEvent,
                               sqlite3_value_bytes(argv[2+OUT_EVENT]),
                               &zRequest, &zError);
  if( rc ) return rc;

  zSql = sqlite3_mprintf("INSERT INTO \"%w\".\"%w_data\"(id, event, request,"
                         " status, error, enqueued_at) VALUES(?, ?, ?, ?, ?,"
                         " strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ','now'))",
                         p->zDb, p->zName);
  if( zSql==0 ){
    rc = SQLITE_NOMEM;
    goto done;
  }
  rc = sqlite3_prepare_v2(p->db, zSql, -1, &pStmt, 0);
  sqlite3_free(zSql);
  if( rc ) goto done;
  if( sqlite3_value_type(argv[1])!=SQLITE_NULL ){
    sqlite3_bind_value(pStmt, 1, argv[1]);
  }else{
    sqlite3_bind_value(pStmt, 1, argv[2+OUT_ID]);
  }
  sqlite3_bind_value(pStmt, 2, argv[2+OUT_EVENT]);
  if( zRequest ) sqlite3_bind_text(pStmt, 3, zRequest, -1, SQLITE_STATIC);
  sqlite3_bind_text(pStmt, 4, zError ? "invalid" : "pending", -1,
                    SQLITE_STATIC);
  if( zError ) sqlite3_bind_text(pStmt, 5, zError, -1, SQLITE_STATIC);
  sqlite3_step(pStmt);
  rc = sqlite3_finalize(pStmt);
  if( rc ){
    outbox_error(p, sqlite3_mprintf("kustomer_outbox: %s",
                                    sqlite3_errmsg(p->db)));
  }else{
    *pRowid = sqlite3_last_insert_rowid(p->db);
  }

done:
  sqlite3_free(zRequest);
  sqlite3_free(zError);
  return rc;
}

static sqlite3_module outboxModule = {
  3,                        /* iVersion: xShadowName */
  outbox_create,
  outbox_connect,
  outbox_best_index,
  outbox_disconnect,
  outbox_destroy,
  outbox_open,
  outbox_close,
  outbox_filter,
  outbox_next,
  outbox_eof,
  outbox_column,
  outbox_rowid,
  outbox_update,
  0, 0, 0, 0,               /* xBegin, xSync, xCommit, xRollback */
  0,                        /* xFindFunction */
  outbox_rename,
  0, 0, 0,                  /* xSavepoint, xRelease, xRollbackTo */
  outbox_shadow_name
};

int kustomer_register_outbox(sqlite3 *db){
  return sqlite3_create_module(db, "kustomer_outbox", &outboxModule, 0);
}
