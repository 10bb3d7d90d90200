/*
** The file's map of Kustomer customer ids, main.kustomer_customers:
**
**   key          'externalId=<id>' or 'email=<address>', as the lookup
**                URLs spell them (kustomer_path_segment_value())
**   customer_id  Kustomer's id of the customer
**   source       who learnt it: 'bulk' (a bulk create or update), 'lookup',
**                'update' (a PUT answered), 'sync' (the customer table)
**   updated_at   when, ISO-8601
**
** Filled by kustomer_flush() and by the sync's customer records, read by
** the flush: an identify event for a customer the map knows is an update
** (sent in bulk), with no lookup.  A customer Kustomer no longer has, or
** one the sync sees deleted, is forgotten.  Like the request ledger it is
** per database file, so that every outbox and sync in the file share it.
*/
#include <string.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

#define IDM_GET    0
#define IDM_PUT    1
#define IDM_FORGET 2
#define IDM_N      3

static const char *const azIdmSql[IDM_N] = {
  "SELECT customer_id FROM main.kustomer_customers WHERE key=?1",
  "INSERT INTO main.kustomer_customers(key, customer_id, source, updated_at)"
  " VALUES(?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ','now'))"
  " ON CONFLICT(key) DO UPDATE SET customer_id=excluded.customer_id,"
  " source=excluded.source, updated_at=excluded.updated_at"
  " WHERE customer_id<>excluded.customer_id",
  "DELETE FROM main.kustomer_customers WHERE customer_id=?1",
};

struct KIdMap {
  sqlite3 *db;
  sqlite3_stmt *aStmt[IDM_N];
  int bReady;               /* the table exists */
};

int kustomer_idmap_open(sqlite3 *db, KIdMap **ppOut){
  KIdMap *p = sqlite3_malloc(sizeof(*p));
  *ppOut = 0;
  if( p==0 ) return SQLITE_NOMEM;
  memset(p, 0, sizeof(*p));
  p->db = db;
  *ppOut = p;
  return SQLITE_OK;
}

void kustomer_idmap_close(KIdMap *p){
  int i;
  if( p==0 ) return;
  for(i=0; i<IDM_N; i++) sqlite3_finalize(p->aStmt[i]);
  sqlite3_free(p);
}

/* The table, made on first use (inside the caller's transaction, if any:
** a rollback takes it away, and the next use makes it again). */
static int idmap_stmt(KIdMap *p, int e, sqlite3_stmt **ppStmt){
  int rc;
  *ppStmt = 0;
  if( !p->bReady ){
    rc = sqlite3_exec(p->db,
        "CREATE TABLE IF NOT EXISTS main.kustomer_customers("
        "key TEXT PRIMARY KEY, customer_id TEXT NOT NULL,"
        " source TEXT NOT NULL, updated_at TEXT NOT NULL) WITHOUT ROWID;"
        "CREATE INDEX IF NOT EXISTS main.kustomer_customers_id"
        " ON kustomer_customers(customer_id);", 0, 0, 0);
    if( rc ) return rc;
    p->bReady = 1;
  }
  if( p->aStmt[e]==0 ){
    rc = sqlite3_prepare_v2(p->db, azIdmSql[e], -1, &p->aStmt[e], 0);
    if( rc ) return rc;
  }
  *ppStmt = p->aStmt[e];
  return SQLITE_OK;
}

static int idmap_done(sqlite3_stmt *pStmt, int rc){
  int rc2 = sqlite3_reset(pStmt);
  sqlite3_clear_bindings(pStmt);
  if( rc==SQLITE_DONE || rc==SQLITE_ROW ) rc = rc2;
  return rc;
}

void kustomer_idmap_reset(KIdMap *p){
  int i;
  for(i=0; i<IDM_N; i++){
    sqlite3_finalize(p->aStmt[i]);
    p->aStmt[i] = 0;
  }
  p->bReady = 0;
}

/* Run statement e with up to three text parameters; *pzOut (if given)
** the first column of its row.  A table gone since the statement was
** prepared (a rollback took it, a user dropped it) is made again, once. */
static int idmap_run(KIdMap *p, int e, const char *z1, const char *z2,
                     const char *z3, char **pzOut){
  int nTry, rc = SQLITE_OK;
  for(nTry=0; nTry<2; nTry++){
    sqlite3_stmt *pStmt;
    rc = idmap_stmt(p, e, &pStmt);
    if( rc==SQLITE_OK ){
      sqlite3_bind_text(pStmt, 1, z1, -1, SQLITE_STATIC);
      if( z2 ) sqlite3_bind_text(pStmt, 2, z2, -1, SQLITE_STATIC);
      if( z3 ) sqlite3_bind_text(pStmt, 3, z3, -1, SQLITE_STATIC);
      rc = sqlite3_step(pStmt);
      if( rc==SQLITE_ROW && pzOut ){
        const char *z = (const char*)sqlite3_column_text(pStmt, 0);
        *pzOut = sqlite3_mprintf("%s", z ? z : "");
        if( *pzOut==0 ) rc = SQLITE_NOMEM;
      }
      rc = idmap_done(pStmt, rc);
    }
    if( rc!=SQLITE_ERROR ) break;
    kustomer_idmap_reset(p);
  }
  return rc;
}

int kustomer_idmap_get(KIdMap *p, const char *zKey, char **pzId){
  *pzId = 0;
  return idmap_run(p, IDM_GET, zKey, 0, 0, pzId);
}

int kustomer_idmap_put(KIdMap *p, const char *zKey, const char *zId,
                       const char *zSource){
  if( zKey==0 || zId==0 || zId[0]==0 ) return SQLITE_OK;
  return idmap_run(p, IDM_PUT, zKey, zId, zSource, 0);
}

int kustomer_idmap_forget(KIdMap *p, const char *zId){
  if( zId==0 ) return SQLITE_OK;
  return idmap_run(p, IDM_FORGET, zId, 0, 0, 0);
}

/* The key of a lookup: zPrefix ("email=", "externalId=") and the value as
** the lookup's path segment.  NULL for a value that is not truthy. */
char *kustomer_idmap_key(const char *zPrefix, const cJSON *pVal){
  sqlite3_str *p;
  if( !kustomer_js_truthy(pVal) ) return 0;
  p = sqlite3_str_new(0);
  sqlite3_str_appendall(p, zPrefix);
  kustomer_path_segment_value(p, pVal);
  return sqlite3_str_finish(p);
}

/* What a customer record of the sync says: its externalId and e-mail
** addresses lead to its id; a deleted one is forgotten. */
int kustomer_idmap_record(KIdMap *p, const char *zId, const cJSON *pAttr,
                          int bDeleted){
  const cJSON *pEmails, *pE;
  char *zKey;
  int rc;
  if( bDeleted ) return kustomer_idmap_forget(p, zId);
  zKey = kustomer_idmap_key("externalId=",
                            kustomer_json_member(pAttr, "externalId"));
  rc = kustomer_idmap_put(p, zKey, zId, "sync");
  sqlite3_free(zKey);
  pEmails = kustomer_json_member(pAttr, "emails");
  for(pE = cJSON_IsArray(pEmails) ? pEmails->child : 0; pE && rc==SQLITE_OK;
      pE=pE->next){
    zKey = kustomer_idmap_key("email=", kustomer_json_member(pE, "email"));
    rc = kustomer_idmap_put(p, zKey, zId, "sync");
    sqlite3_free(zKey);
  }
  return rc;
}
