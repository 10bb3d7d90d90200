/*
** The sync: a virtual table that keeps Kustomer's own records as ordinary
** tables of the database, as Fivetran's Kustomer connector keeps them in a
** warehouse.
**
**   CREATE VIRTUAL TABLE ks USING kustomer_sync(
**     settings='{"orgName":"acme","apiKeyEnv":"KUSTOMER_API_KEY"}',
**     streams='customer,conversation,message', budget=0.9);
**   SELECT kustomer_pull('ks');                  -- see pull.c
**   SELECT stream, phase, cursor, rows, error FROM ks;
**   INSERT INTO ks(ks, arg) VALUES('resync', 'customer');
**   INSERT INTO ks(ks) VALUES('rebuild');        -- from _record, no request
**
** The table itself holds configuration and state, in shadow tables in the
** manner of FTS5: <name>_config (the arguments, the storage version and
** the pid of a pull at work), <name>_state (one row per stream: where its
** reading stands) and <name>_columns (where every column of the data
** tables comes from; syncmap.c writes it).  The data tables (customer,
** conversation_tag, ...) are ordinary tables, created here at CREATE and
** written by kustomer_pull(); DROP TABLE of the sync drops its state, not
** the data.  Nothing is fetched here: what is fetched cannot be part of
** the caller's transaction.
*/
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

/* Storage version, in <name>_config's 'version' row. */
#define SYNC_VERSION 1

/* Columns of the virtual table: the state, then the commands. */
#define SYNC_COLUMNS \
  "stream, phase, cursor, \"rows\", deleted, pages, requests, last_ok_at," \
  " error, tie_at, tie_page, pass_started_at, next_due_at"
#define SYNC_N_STATE 13
#define SYNC_COMMAND 13     /* HIDDEN, named after the table, as in FTS5 */
#define SYNC_ARG     14     /* HIDDEN */

const KSyncStream kustomer_sync_stream[] = {
  { "customer",     KSYNC_SEARCH,  "customer", 0 },
  { "conversation", KSYNC_SEARCH,  "conversation", 0 },
  { "message",      KSYNC_SEARCH,  "message", 0 },
  { "note",         KSYNC_SEARCH,  "note", 0 },
  { "company",      KSYNC_SEARCH,  "company", 0 },
  { "kobject",      KSYNC_KLASSES, "/v1/klasses", 0 },
  { "work_session", KSYNC_LIST,    "/v1/routing/work-sessions", 0 },
  { "audit_log",    KSYNC_AUDIT,   "/v1/audit-logs", 0 },
  { "user",         KSYNC_REF,     "/v1/users", 1 },
  { "team",         KSYNC_REF,     "/v1/teams", 1 },
  { "tag",          KSYNC_REF,     "/v1/tags", 1 },
  { "brand",        KSYNC_REF,     "/v1/brands", 1 },
  { "shortcut",     KSYNC_REF,     "/v1/shortcuts", 1 },
  { "queue",        KSYNC_REF,     "/v1/routing/queues", 1 },
  { "sla",          KSYNC_REF,     "/v1/slas?versions=all", 1 },
  { "business_schedule", KSYNC_REF, "/v1/schedules", 1 },
  { "custom_attribute_metadata", KSYNC_REF, "/v1/metadata", 1 },
  { 0, 0, 0, 0 }
};

int kustomer_sync_stream_find(const char *zName){
  int i;
  size_t n = strlen(zName);
  if( strncmp(zName, "kobject:", 8)==0 ) n = 7;
  for(i=0; kustomer_sync_stream[i].zName; i++){
    if( strlen(kustomer_sync_stream[i].zName)==n
     && strncmp(kustomer_sync_stream[i].zName, zName, n)==0 ) return i;
  }
  return -1;
}

typedef struct Sync Sync;
struct Sync {
  sqlite3_vtab base;
  sqlite3 *db;
  char *zDb;                /* schema of the sync and its tables */
  char *zName;
  KSyncConfig cfg;
};

typedef struct SyncCursor SyncCursor;
struct SyncCursor {
  sqlite3_vtab_cursor base;
  sqlite3_stmt *pStmt;
  int bEof;
};

/* ---- Arguments ---------------------------------------------------------- */

static const KArgSpec aSyncArg[] = {
  { "settings", KARG_TEXT, offsetof(KSyncConfig, zSettings), 0, 0, 0, 0, 0 },
  { "streams", KARG_TEXT, offsetof(KSyncConfig, zStreams), 0, 0, 0, 0, 0 },
  { "exclude", KARG_TEXT, offsetof(KSyncConfig, zExclude), 0, 0, 0, 0, 0 },
  { "start_date", KARG_TEXT, offsetof(KSyncConfig, zStartDate),
    0, 0, 0, 0, 0 },
  { "budget", KARG_REAL, offsetof(KSyncConfig, budget), 0.9, 0.25, 0.9, 0,
    "must be between 0.25 and 0.9 (the share of the organisation's limit)" },
  { "rate_limit", KARG_REAL, offsetof(KSyncConfig, rateLimit), 0, 0, 1000000,
    0, "must be 0 (learn it from x-ratelimit-limit) or up to 1000000" },
  { "rate_window", KARG_REAL, offsetof(KSyncConfig, rateWindow), 60, 1, 3600,
    0, "must be between 1 and 3600 seconds" },
  { "search_limit", KARG_REAL, offsetof(KSyncConfig, searchLimit), 100, 1,
    1000000, 0, "must be between 1 and 1000000 searches per window" },
  { "lookback_seconds", KARG_REAL, offsetof(KSyncConfig, lookback), 300, 0,
    86400, 0, "must be between 0 and 86400" },
  { "page_size", KARG_INT, offsetof(KSyncConfig, pageSize), 500, 1, 500, 0,
    "must be between 1 and 500 (Kustomer's largest search page)" },
  { "list_page_size", KARG_INT, offsetof(KSyncConfig, listPageSize), 100, 1,
    100, 0, "must be between 1 and 100" },
  { "turn_pages", KARG_INT, offsetof(KSyncConfig, turnPages), 20, 1, 100000,
    0, "must be between 1 and 100000" },
  { "reimport_hours", KARG_REAL, offsetof(KSyncConfig, reimportHours), 24,
    0, 8760, 0, "must be between 0 and 8760 hours" },
  { "prefix", KARG_TEXT, offsetof(KSyncConfig, zPrefix), 0, 0, 0, 0, 0 },
  { "hash", KARG_TEXT, offsetof(KSyncConfig, zHash), 0, 0, 0, 0, 0 },
  { "block", KARG_TEXT, offsetof(KSyncConfig, zBlock), 0, 0, 0, 0, 0 },
  { "history", KARG_TEXT, offsetof(KSyncConfig, zHistory), 0, 0, 0, 0, 0 },
  { "custom", KARG_TEXT, offsetof(KSyncConfig, zCustom), 0, 0, 0, 0, 0 },
  { "system_columns", KARG_TEXT, offsetof(KSyncConfig, zSystem), 0, 0, 0, 0,
    0 },
  { "backfill", KARG_TEXT, offsetof(KSyncConfig, zBackfill), 0, 0, 0, 0, 0 },
  { "record", KARG_BOOL, offsetof(KSyncConfig, bRecord), 1, 0, 0, 0, 0 },
  { "progress", KARG_BOOL, offsetof(KSyncConfig, progress), 0, 0, 0, 0, 0 },
  { 0, 0, 0, 0, 0, 0, 0, 0 }
};

void kustomer_sync_config_clear(KSyncConfig *p){
  kustomer_args_free(aSyncArg, p);
  sqlite3_free(p->zSalt);
  memset(p, 0, sizeof(*p));
}

/* The streams of a list ("customer, note", "core"): bits into *pm, or an
** error.  Groups: core (the incremental streams), reference, all. */
static char *streams_parse(const char *zArg, const char *zList,
                           unsigned *pm){
  const char *z = zList;
  *pm = 0;
  while( *z ){
    const char *zEnd;
    int i, n, eGroup = -1;
    while( *z==' ' || *z==',' ) z++;
    if( *z==0 ) break;
    for(zEnd=z; *zEnd && *zEnd!=','; zEnd++){}
    n = (int)(zEnd - z);
    while( n>0 && z[n-1]==' ' ) n--;
    if( n==4 && strncmp(z, "core", 4)==0 ) eGroup = 0;
    if( n==9 && strncmp(z, "reference", 9)==0 ) eGroup = 1;
    if( n==3 && strncmp(z, "all", 3)==0 ) eGroup = 2;
    if( eGroup>=0 ){
      for(i=0; kustomer_sync_stream[i].zName; i++){
        if( eGroup==2 || kustomer_sync_stream[i].bReference==eGroup ){
          *pm |= 1u<<i;
        }
      }
    }else{
      for(i=0; kustomer_sync_stream[i].zName; i++){
        if( (int)strlen(kustomer_sync_stream[i].zName)==n
         && strncmp(kustomer_sync_stream[i].zName, z, n)==0 ) break;
      }
      if( kustomer_sync_stream[i].zName==0 ){
        sqlite3_str *pKnown = sqlite3_str_new(0);
        for(i=0; kustomer_sync_stream[i].zName; i++){
          sqlite3_str_appendf(pKnown, "%s, ", kustomer_sync_stream[i].zName);
        }
        sqlite3_str_appendall(pKnown, "or the groups core, reference, all");
        return sqlite3_mprintf("%s: unknown stream '%.*s' (known: %z)", zArg,
                               n, z, sqlite3_str_finish(pKnown));
      }
      *pm |= 1u<<i;
    }
    z = zEnd;
  }
  return 0;
}

/* Each item of a hash= or block= list: a table the sync makes, a column
** that is not a key; for block a whole table too.  NULL or an error. */
static char *privacy_check(const char *zArg, const char *zList, int bBlock){
  const char *z = zList;
  while( z && *z ){
    const char *zEnd, *zDot, *zParent = 0;
    char zT[128];
    int n, nT, eKind;
    while( *z==' ' || *z==',' ) z++;
    if( *z==0 ) break;
    for(zEnd=z; *zEnd && *zEnd!=','; zEnd++){}
    n = (int)(zEnd - z);
    while( n>0 && z[n-1]==' ' ) n--;
    for(zDot=z; zDot<z+n && *zDot!='.'; zDot++){}
    if( zDot==z+n ) zDot = 0;
    nT = zDot ? (int)(zDot - z) : n;
    if( nT<=0 || nT>=(int)sizeof(zT) || (zDot && zDot+1==z+n) ){
      return sqlite3_mprintf("%s: '%.*s' is not table.column%s", zArg, n, z,
                             bBlock ? " or table" : "");
    }
    memcpy(zT, z, (size_t)nT);
    zT[nT] = 0;
    eKind = kustomer_syncmap_table_kind(zT, &zParent);
    if( eKind==0 ){
      return sqlite3_mprintf("%s: '%s' is not a table a sync makes", zArg,
                             zT);
    }
    if( zDot==0 ){
      if( !bBlock ){
        return sqlite3_mprintf("%s: '%.*s' names no column (table.column)",
                               zArg, n, z);
      }
      if( strcmp(zT, "sla_version")==0 ){
        return sqlite3_mprintf("%s: sla_version comes with sla: block sla",
                               zArg);
      }
    }else{
      char *zCol = sqlite3_mprintf("%.*s", n - nT - 1, zDot+1);
      int bKey;
      if( zCol==0 ) return 0;
      bKey = kustomer_syncmap_is_key(zT, zCol);
      sqlite3_free(zCol);
      if( bKey ){
        return sqlite3_mprintf("%s: %.*s is a key (an id, updated_at, a "
                               "relationship or a system column) and cannot"
                               " be %s", zArg, n, z,
                               bBlock ? "blocked" : "hashed");
      }
    }
    z = zEnd;
  }
  return 0;
}

/* Each item of history=: a main table a sync makes. */
static char *history_check(const char *zList){
  const char *z = zList;
  while( *z ){
    const char *zEnd, *zParent = 0;
    char zT[128];
    int n;
    while( *z==' ' || *z==',' ) z++;
    if( *z==0 ) break;
    for(zEnd=z; *zEnd && *zEnd!=','; zEnd++){}
    n = (int)(zEnd - z);
    while( n>0 && z[n-1]==' ' ) n--;
    if( n>=(int)sizeof(zT) ) n = (int)sizeof(zT)-1;
    memcpy(zT, z, (size_t)n);
    zT[n] = 0;
    if( kustomer_syncmap_table_kind(zT, &zParent)!=1 ){
      return sqlite3_mprintf("history: '%s' is not a main table a sync makes"
                             "%s%s%s", zT, zParent ? " (it is a child of " : "",
                             zParent ? zParent : "", zParent ? ": name that)"
                             : "");
    }
    z = zEnd;
  }
  return 0;
}

int kustomer_sync_blocked(const KSyncConfig *p, const char *zTable){
  const char *z = p->zBlock;
  size_t nTable = strlen(zTable);
  while( z && *z ){
    const char *zEnd;
    size_t n;
    while( *z==' ' || *z==',' ) z++;
    for(zEnd=z; *zEnd && *zEnd!=','; zEnd++){}
    n = (size_t)(zEnd - z);
    while( n>0 && z[n-1]==' ' ) n--;
    if( n==nTable && strncmp(z, zTable, n)==0 ) return 1;
    z = zEnd;
  }
  return 0;
}

/* Whether the settings name the variable that holds the hash salt. */
static int salt_from_env(const KSyncConfig *p){
  cJSON *pSet = kustomer_json_parse(p->zSettings, (int)strlen(p->zSettings),
                                    0);
  int b = cJSON_IsString(kustomer_json_member(pSet, "hashSaltEnv"));
  cJSON_Delete(pSet);
  return b;
}

int kustomer_sync_map_setup(const KSyncConfig *p, KSyncMap *pMap,
                            int bHash, char **pzErr){
  unsigned char aSalt[256];
  int nSalt = 0, rc;
  *pzErr = 0;
  kustomer_syncmap_custom_json(pMap, p->zCustom && strcmp(p->zCustom,
                                                          "json")==0);
  kustomer_syncmap_fivetran(pMap, p->zSystem && strcmp(p->zSystem,
                                                       "fivetran")==0);
  rc = kustomer_syncmap_history(pMap, p->zHistory);
  if( rc ) return rc;
  if( !bHash ) return kustomer_syncmap_privacy(pMap, 0, p->zBlock, 0, 0);
  if( p->zHash ){
    cJSON *pSet = kustomer_json_parse(p->zSettings,
                                      (int)strlen(p->zSettings), 0);
    const cJSON *pEnv = kustomer_json_member(pSet, "hashSaltEnv");
    if( cJSON_IsString(pEnv) ){
      const char *zV = getenv(pEnv->valuestring);
      if( zV==0 || zV[0]==0 ){
        *pzErr = sqlite3_mprintf("settings.hashSaltEnv names %s, which is "
                                 "not set (hash= needs the salt)",
                                 pEnv->valuestring);
        cJSON_Delete(pSet);
        return SQLITE_ERROR;
      }
      nSalt = (int)strlen(zV);
      if( nSalt>(int)sizeof(aSalt) ) nSalt = (int)sizeof(aSalt);
      memcpy(aSalt, zV, (size_t)nSalt);
    }else{
      const char *z = p->zSalt;
      while( z && kustomer_hex_digit(z[0])>=0 && kustomer_hex_digit(z[1])>=0
          && nSalt<(int)sizeof(aSalt) ){
        aSalt[nSalt++] = (unsigned char)(kustomer_hex_digit(z[0])*16
                                         + kustomer_hex_digit(z[1]));
        z += 2;
      }
      if( nSalt==0 ){
        *pzErr = sqlite3_mprintf("hash= needs a salt: the one made at CREATE"
                                 " is missing from the configuration");
        cJSON_Delete(pSet);
        return SQLITE_ERROR;
      }
    }
    cJSON_Delete(pSet);
  }
  rc = kustomer_syncmap_privacy(pMap, p->zHash, p->zBlock, aSalt, nSalt);
  memset(aSalt, 0, sizeof(aSalt));
  return rc;
}

/* Check what the range checks of aSyncArg cannot, and derive mStreams. */
static char *config_check(KSyncConfig *p){
  unsigned mExclude = 0;
  char *zErr = kustomer_settings_check_stored(p->zSettings);
  if( zErr==0 ) zErr = kustomer_args_check(aSyncArg, p);
  if( zErr==0 && p->zPrefix ){
    const char *z;
    for(z=p->zPrefix; *z; z++){
      if( !((*z>='a' && *z<='z') || (*z>='A' && *z<='Z')
            || (*z>='0' && *z<='9') || *z=='_') ){
        zErr = sqlite3_mprintf("prefix may hold only letters, digits and "
                               "'_': %Q", p->zPrefix);
        break;
      }
    }
  }
  if( zErr==0 && p->zStartDate ){
    sqlite3_int64 ms;
    if( !kustomer_iso_ms(p->zStartDate, (int)strlen(p->zStartDate), &ms) ){
      zErr = sqlite3_mprintf("start_date must be an ISO-8601 date-time "
                             "(2024-01-31T00:00:00Z): %Q", p->zStartDate);
    }
  }
  if( zErr==0 ){
    if( p->zStreams ){
      zErr = streams_parse("streams", p->zStreams, &p->mStreams);
    }else{
      zErr = streams_parse("streams", "core", &p->mStreams);
    }
  }
  if( zErr==0 && p->zExclude ){
    zErr = streams_parse("exclude", p->zExclude, &mExclude);
    p->mStreams &= ~mExclude;
  }
  if( zErr==0 && p->zHash ) zErr = privacy_check("hash", p->zHash, 0);
  if( zErr==0 && p->zBlock ) zErr = privacy_check("block", p->zBlock, 1);
  if( zErr==0 && p->zHistory ) zErr = history_check(p->zHistory);
  if( zErr==0 && p->zCustom && strcmp(p->zCustom, "columns")!=0
   && strcmp(p->zCustom, "json")!=0 ){
    zErr = sqlite3_mprintf("custom must be 'columns' (a custom_<name> column"
                           " per attribute) or 'json' (one custom column): "
                           "%Q", p->zCustom);
  }
  if( zErr==0 && p->zBackfill && strcmp(p->zBackfill, "oldest_first")!=0
   && strcmp(p->zBackfill, "recent_first")!=0 ){
    zErr = sqlite3_mprintf("backfill must be 'oldest_first' or "
                           "'recent_first' (the last day, then the rest): %Q",
                           p->zBackfill);
  }
  if( zErr==0 && p->zSystem && strcmp(p->zSystem, "short")!=0
   && strcmp(p->zSystem, "fivetran")!=0 ){
    zErr = sqlite3_mprintf("system_columns must be 'short' (_synced_at, "
                           "_deleted, ...) or 'fivetran' (_fivetran_synced, "
                           "_fivetran_deleted, ... as well): %Q", p->zSystem);
  }
  if( zErr==0 && p->zBlock ){
    /* a blocked table is never fetched: its stream is not synced */
    int i;
    for(i=0; kustomer_sync_stream[i].zName; i++){
      if( kustomer_sync_blocked(p, kustomer_sync_stream[i].zName) ){
        p->mStreams &= ~(1u<<i);
      }
    }
  }
  if( zErr==0 && p->mStreams==0 ){
    zErr = sqlite3_mprintf("no stream is left to sync");
  }
  return zErr;
}

int kustomer_sync_config_read(sqlite3 *db, const char *zDb, const char *zName,
                              KSyncConfig *p, char **pzErr){
  sqlite3_stmt *pStmt = 0;
  int rc, iVersion = -1;
  char *zSql = sqlite3_mprintf("SELECT k, v FROM \"%w\".\"%w_config\"",
                               zDb, zName);
  *pzErr = 0;
  memset(p, 0, sizeof(*p));
  kustomer_args_defaults(aSyncArg, p);
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(db, zSql, -1, &pStmt, 0);
  sqlite3_free(zSql);
  if( rc ){
    *pzErr = sqlite3_mprintf("%s is not a kustomer_sync table (%s)", zName,
                             sqlite3_errmsg(db));
    return SQLITE_ERROR;
  }
  while( rc==SQLITE_OK && sqlite3_step(pStmt)==SQLITE_ROW ){
    const char *zKey = (const char*)sqlite3_column_text(pStmt, 0);
    if( zKey==0 ) continue;
    if( strcmp(zKey, "version")==0 ){
      iVersion = sqlite3_column_int(pStmt, 1);
    }else if( strcmp(zKey, "hash_salt")==0 ){
      sqlite3_free(p->zSalt);
      p->zSalt = sqlite3_mprintf("%s", sqlite3_column_text(pStmt, 1));
    }else if( sqlite3_column_type(pStmt, 1)!=SQLITE_NULL ){
      rc = kustomer_args_load(aSyncArg, p, zKey, sqlite3_column_value(pStmt, 1));
    }
  }
  rc = sqlite3_finalize(pStmt) ? sqlite3_errcode(db) : rc;
  if( rc ) return rc;
  if( iVersion!=SYNC_VERSION ){
    *pzErr = iVersion<0 ?
        sqlite3_mprintf("%s is not a kustomer_sync table (no version row "
                        "in %s_config)", zName, zName) :
        sqlite3_mprintf("%s has storage version %d, which this extension "
                        "(%s) does not know (it knows %d)", zName, iVersion,
                        KUSTOMER_VERSION, SYNC_VERSION);
    return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  *pzErr = config_check(p);
  return *pzErr ? SQLITE_ERROR : SQLITE_OK;
}

/* ---- Creating --------------------------------------------------------- */

static int sync_error(Sync *p, char *zMsg){
  return kustomer_vtab_error(&p->base, zMsg);
}

static int sync_exec(sqlite3 *db, char *zSql, char **pzErr){
  int rc;
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_exec(db, zSql, 0, 0, pzErr);
  sqlite3_free(zSql);
  return rc;
}

const char *kustomer_sync_search_start(const KSyncConfig *p){
  return p->zBackfill && strcmp(p->zBackfill, "recent_first")==0
         ? "recent" : "archive";
}

/* A hash salt: 32 random bytes, as hex, into <name>_config. */
static int salt_make(sqlite3 *db, const char *zDb, const char *zName){
  unsigned char aRand[32];
  char zHex[65];
  int k;
  sqlite3_randomness(sizeof(aRand), aRand);
  for(k=0; k<32; k++){
    zHex[2*k] = "0123456789abcdef"[aRand[k]>>4];
    zHex[2*k+1] = "0123456789abcdef"[aRand[k]&15];
  }
  zHex[64] = 0;
  return sync_exec(db, sqlite3_mprintf("INSERT OR REPLACE INTO"
                   " \"%w\".\"%w_config\"(k, v) VALUES('hash_salt', %Q)",
                   zDb, zName, zHex), 0);
}

/* The phase a stream starts in (and starts again in on resync). */
static const char *stream_first_phase(const KSyncConfig *p, int iStream){
  switch( kustomer_sync_stream[iStream].eKind ){
    case KSYNC_SEARCH:  return kustomer_sync_search_start(p);
    case KSYNC_KLASSES: return "klasses";
    case KSYNC_REF:     return "reimport";
    case KSYNC_AUDIT:   return "incremental";
    default:            return "backfill";
  }
}

/* The shadow tables, the arguments, a state row per stream, and the data
** tables of the streams (their klasses' come with the first pull). */
static int sync_create_tables(Sync *p, char **pzErr){
  sqlite3_stmt *pPut = 0;
  const KArgSpec *a;
  KSyncMap *pMap = 0;
  char *zSql;
  int i, rc;
  rc = sync_exec(p->db, sqlite3_mprintf(
      "CREATE TABLE \"%w\".\"%w_config\"(k TEXT PRIMARY KEY, v);"
      "INSERT INTO \"%w\".\"%w_config\"(k, v) VALUES('version', %d);"
      "CREATE TABLE \"%w\".\"%w_state\"(stream TEXT PRIMARY KEY,"
      " phase TEXT NOT NULL, cursor TEXT, tie_at TEXT, tie_page INTEGER,"
      " tie_total INTEGER, back_cursor TEXT, pass_started_at TEXT,"
      " next_due_at TEXT, \"rows\" INTEGER NOT NULL DEFAULT 0,"
      " deleted INTEGER NOT NULL DEFAULT 0, pages INTEGER NOT NULL DEFAULT 0,"
      " requests INTEGER NOT NULL DEFAULT 0, last_ok_at TEXT, error TEXT,"
      " search_key TEXT);"
      "CREATE TABLE \"%w\".\"%w_columns\"(table_name TEXT NOT NULL,"
      " column_name TEXT NOT NULL, path TEXT, type TEXT, origin TEXT,"
      " PRIMARY KEY(table_name, column_name));",
      p->zDb, p->zName, p->zDb, p->zName, SYNC_VERSION, p->zDb, p->zName,
      p->zDb, p->zName), pzErr);
  if( rc==SQLITE_OK ) rc = kustomer_ledger_create(p->db);
  if( rc==SQLITE_OK ){
    zSql = sqlite3_mprintf("INSERT INTO \"%w\".\"%w_config\"(k, v)"
                           " VALUES(?1, ?2)", p->zDb, p->zName);
    rc = zSql ? sqlite3_prepare_v2(p->db, zSql, -1, &pPut, 0) : SQLITE_NOMEM;
    sqlite3_free(zSql);
  }
  for(a=aSyncArg; rc==SQLITE_OK && a->zKey; a++){
    sqlite3_bind_text(pPut, 1, a->zKey, -1, SQLITE_STATIC);
    kustomer_args_bind(a, &p->cfg, pPut, 2);
    sqlite3_step(pPut);
    rc = sqlite3_reset(pPut);
  }
  if( rc==SQLITE_OK && p->cfg.zHash && !salt_from_env(&p->cfg) ){
    /* 32 random bytes, unless the settings name a variable holding it */
    rc = salt_make(p->db, p->zDb, p->zName);
  }
  sqlite3_finalize(pPut);
  for(i=0; rc==SQLITE_OK && kustomer_sync_stream[i].zName; i++){
    if( (p->cfg.mStreams & (1u<<i))==0 ) continue;
    rc = sync_exec(p->db, sqlite3_mprintf(
        "INSERT INTO \"%w\".\"%w_state\"(stream, phase) VALUES(%Q, %Q)",
        p->zDb, p->zName, kustomer_sync_stream[i].zName,
        stream_first_phase(&p->cfg, i)), pzErr);
  }
  if( rc==SQLITE_OK ){
    rc = kustomer_syncmap_open(p->db, p->zDb, p->zName, p->cfg.zPrefix,
                               p->cfg.bRecord, &pMap);
  }
  /* blocked child tables are not made, history tables are (no salt is
  ** needed for that) */
  if( rc==SQLITE_OK ){
    char *zErr = 0;
    rc = kustomer_sync_map_setup(&p->cfg, pMap, 0, &zErr);
    sqlite3_free(zErr);
  }
  for(i=0; rc==SQLITE_OK && kustomer_sync_stream[i].zName; i++){
    if( (p->cfg.mStreams & (1u<<i))==0 ) continue;
    /* the audit log's deletes are marked in the other streams' tables */
    if( kustomer_sync_stream[i].eKind==KSYNC_AUDIT ) continue;
    rc = kustomer_syncmap_table(pMap, kustomer_sync_stream[i].zName);
    if( rc==SQLITE_OK && strcmp(kustomer_sync_stream[i].zName, "sla")==0 ){
      /* the versions come with the slas' pages */
      rc = kustomer_syncmap_table(pMap, "sla_version");
    }
    if( rc && rc!=SQLITE_NOMEM ){
      *pzErr = sqlite3_mprintf("%s", kustomer_syncmap_errmsg(pMap));
    }
  }
  kustomer_syncmap_close(pMap);
  return rc;
}

static void sync_free(Sync *p){
  if( p==0 ) return;
  kustomer_sync_config_clear(&p->cfg);
  sqlite3_free(p->zDb);
  sqlite3_free(p->zName);
  sqlite3_free(p);
}

static int sync_init(sqlite3 *db, int argc, const char *const *argv,
                     sqlite3_vtab **ppVtab, char **pzErr, int bCreate){
  Sync *p;
  char *zErr = 0, *zSchema;
  int rc = SQLITE_OK;

  *ppVtab = 0;
  p = sqlite3_malloc(sizeof(*p));
  if( p==0 ) return SQLITE_NOMEM;
  memset(p, 0, sizeof(*p));
  p->db = db;
  p->zDb = sqlite3_mprintf("%s", argv[1]);
  p->zName = sqlite3_mprintf("%s", argv[2]);
  if( p->zDb==0 || p->zName==0 ) rc = SQLITE_NOMEM;
  if( rc==SQLITE_OK && bCreate ){
    rc = kustomer_args_parse(aSyncArg, argc, argv, &p->cfg, &zErr);
    if( rc==SQLITE_OK ){
      zErr = config_check(&p->cfg);
      if( zErr ) rc = SQLITE_ERROR;
    }
    if( rc==SQLITE_OK ) rc = sync_create_tables(p, &zErr);
  }else if( rc==SQLITE_OK ){
    rc = kustomer_sync_config_read(db, p->zDb, p->zName, &p->cfg, &zErr);
  }
  if( zErr ){
    *pzErr = sqlite3_mprintf("kustomer_sync: %s", zErr);
    sqlite3_free(zErr);
  }
  if( rc ) goto fail;
  zSchema = sqlite3_mprintf("CREATE TABLE x(stream TEXT, phase TEXT,"
                            " cursor TEXT, \"rows\" INTEGER, deleted INTEGER,"
                            " pages INTEGER, requests INTEGER,"
                            " last_ok_at TEXT, error TEXT, tie_at TEXT,"
                            " tie_page INTEGER, pass_started_at TEXT,"
                            " next_due_at TEXT, \"%w\" HIDDEN, arg HIDDEN)",
                            p->zName);
  rc = zSchema ? sqlite3_declare_vtab(db, zSchema) : SQLITE_NOMEM;
  sqlite3_free(zSchema);
  if( rc ) goto fail;
  /* A hostile schema must not be able to reset a sync (csv.c's reason). */
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  *ppVtab = &p->base;
  return SQLITE_OK;

fail:
  sync_free(p);
  return rc;
}

static int sync_create(sqlite3 *db, void *pAux, int argc,
                       const char *const *argv, sqlite3_vtab **ppVtab,
                       char **pzErr){
  (void)pAux;
  return sync_init(db, argc, argv, ppVtab, pzErr, 1);
}

static int sync_connect(sqlite3 *db, void *pAux, int argc,
                        const char *const *argv, sqlite3_vtab **ppVtab,
                        char **pzErr){
  (void)pAux;
  return sync_init(db, argc, argv, ppVtab, pzErr, 0);
}

static int sync_disconnect(sqlite3_vtab *pVtab){
  sync_free((Sync*)pVtab);
  return SQLITE_OK;
}

/* The data tables stay: they are the user's now. */
static int sync_destroy(sqlite3_vtab *pVtab){
  Sync *p = (Sync*)pVtab;
  int rc = sync_exec(p->db, sqlite3_mprintf(
      "DROP TABLE IF EXISTS \"%w\".\"%w_config\";"
      "DROP TABLE IF EXISTS \"%w\".\"%w_state\";"
      "DROP TABLE IF EXISTS \"%w\".\"%w_columns\";",
      p->zDb, p->zName, p->zDb, p->zName, p->zDb, p->zName), 0);
  if( rc==SQLITE_OK ) sync_disconnect(pVtab);
  return rc;
}

static int sync_rename(sqlite3_vtab *pVtab, const char *zNew){
  Sync *p = (Sync*)pVtab;
  char *zName;
  int rc = sync_exec(p->db, sqlite3_mprintf(
      "ALTER TABLE \"%w\".\"%w_config\" RENAME TO \"%w_config\";"
      "ALTER TABLE \"%w\".\"%w_state\" RENAME TO \"%w_state\";"
      "ALTER TABLE \"%w\".\"%w_columns\" RENAME TO \"%w_columns\";",
      p->zDb, p->zName, zNew, p->zDb, p->zName, zNew, p->zDb, p->zName,
      zNew), 0);
  if( rc ) return rc;
  zName = sqlite3_mprintf("%s", zNew);
  if( zName==0 ) return SQLITE_NOMEM;
  sqlite3_free(p->zName);
  p->zName = zName;
  return SQLITE_OK;
}

static int sync_shadow_name(const char *zSuffix){
  return sqlite3_stricmp(zSuffix, "config")==0
      || sqlite3_stricmp(zSuffix, "state")==0
      || sqlite3_stricmp(zSuffix, "columns")==0;
}

/* ---- Reading: the state, one row per stream --------------------------- */

static int sync_best_index(sqlite3_vtab *pVtab, sqlite3_index_info *pInfo){
  (void)pVtab;
  pInfo->estimatedCost = 100;
  pInfo->estimatedRows = 20;
  if( pInfo->nOrderBy==1 && pInfo->aOrderBy[0].iColumn==0
   && !pInfo->aOrderBy[0].desc ){
    pInfo->orderByConsumed = 1;
  }
  return SQLITE_OK;
}

static int sync_open(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCur){
  SyncCursor *pCur = sqlite3_malloc(sizeof(*pCur));
  (void)pVtab;
  if( pCur==0 ) return SQLITE_NOMEM;
  memset(pCur, 0, sizeof(*pCur));
  *ppCur = &pCur->base;
  return SQLITE_OK;
}

static int sync_close(sqlite3_vtab_cursor *cur){
  SyncCursor *pCur = (SyncCursor*)cur;
  sqlite3_finalize(pCur->pStmt);
  sqlite3_free(pCur);
  return SQLITE_OK;
}

static int sync_next(sqlite3_vtab_cursor *cur){
  SyncCursor *pCur = (SyncCursor*)cur;
  int rc = sqlite3_step(pCur->pStmt);
  if( rc==SQLITE_ROW ) return SQLITE_OK;
  pCur->bEof = 1;
  return rc==SQLITE_DONE ? SQLITE_OK : rc;
}

static int sync_filter(sqlite3_vtab_cursor *cur, int idxNum,
                       const char *idxStr, int argc, sqlite3_value **argv){
  SyncCursor *pCur = (SyncCursor*)cur;
  Sync *p = (Sync*)cur->pVtab;
  char *zSql;
  int rc;
  (void)idxNum; (void)idxStr; (void)argc; (void)argv;
  sqlite3_finalize(pCur->pStmt);
  pCur->pStmt = 0;
  pCur->bEof = 0;
  zSql = sqlite3_mprintf("SELECT " SYNC_COLUMNS ", rowid FROM"
                         " \"%w\".\"%w_state\" ORDER BY stream",
                         p->zDb, p->zName);
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(p->db, zSql, -1, &pCur->pStmt, 0);
  sqlite3_free(zSql);
  if( rc ) return sync_error(p, sqlite3_mprintf("%s", sqlite3_errmsg(p->db)));
  return sync_next(cur);
}

static int sync_eof(sqlite3_vtab_cursor *cur){
  return ((SyncCursor*)cur)->bEof;
}

static int sync_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx,
                       int iCol){
  SyncCursor *pCur = (SyncCursor*)cur;
  if( iCol<SYNC_N_STATE ){
    sqlite3_result_value(ctx, sqlite3_column_value(pCur->pStmt, iCol));
  }
  return SQLITE_OK;
}

static int sync_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *pRowid){
  *pRowid = sqlite3_column_int64(((SyncCursor*)cur)->pStmt, SYNC_N_STATE);
  return SQLITE_OK;
}

/* ---- Commands ------------------------------------------------------------ */

/* resync [stream]: read the stream (every one without an argument) again
** from its start; the pull that completes the pass marks deleted the rows
** the pass did not see (pass_started_at). */
static int sync_resync(Sync *p, sqlite3_value *pArg){
  const char *zStream = (const char*)sqlite3_value_text(pArg);
  char zNow[KUSTOMER_ISO_LEN];
  int i, rc = SQLITE_OK, nChanged = 0;
  kustomer_iso_format((sqlite3_int64)(kustomer_wall()*1000), zNow);
  if( zStream && kustomer_sync_stream_find(zStream)<0 ){
    return sync_error(p, sqlite3_mprintf("kustomer_sync: resync: unknown "
                      "stream %Q (see SELECT stream FROM %s)", zStream,
                      p->zName));
  }
  for(i=0; rc==SQLITE_OK && kustomer_sync_stream[i].zName; i++){
    const char *zName = kustomer_sync_stream[i].zName;
    int bKlass = kustomer_sync_stream[i].eKind==KSYNC_KLASSES;
    if( zStream && kustomer_sync_stream_find(zStream)!=i ) continue;
    /* kobject: every klass's stream; kobject:<klass>: that one */
    rc = sync_exec(p->db, sqlite3_mprintf(
        "UPDATE \"%w\".\"%w_state\" SET phase=CASE WHEN stream GLOB"
        " 'kobject:*' THEN %Q ELSE %Q END, cursor=NULL,"
        " tie_at=NULL, tie_page=NULL, tie_total=NULL, back_cursor=NULL,"
        " pass_started_at=%Q, error=NULL WHERE %z",
        p->zDb, p->zName, kustomer_sync_search_start(&p->cfg),
        stream_first_phase(&p->cfg, i), zNow,
        zStream && strchr(zStream, ':') ? sqlite3_mprintf("stream=%Q", zStream)
        : bKlass ? sqlite3_mprintf("(stream='kobject' OR stream GLOB"
                                   " 'kobject:*')")
                 : sqlite3_mprintf("stream=%Q", zName)), 0);
    nChanged += sqlite3_changes(p->db);
  }
  if( rc==SQLITE_OK && zStream && nChanged==0 ){
    return sync_error(p, sqlite3_mprintf("kustomer_sync: resync: %s does not"
                      " sync %Q", p->zName, zStream));
  }
  return rc;
}

/* set 'key=value': change one argument, checked as CREATE checks it.
** What decides the tables already made (streams, exclude, prefix,
** system_columns) cannot change: a new sync, or resync, does that. */
static int sync_set(Sync *p, sqlite3_value *pArg){
  static const char *const azFixed[] = {
    "streams", "exclude", "prefix", "system_columns", "settings", 0
  };
  const char *zArg = (const char*)sqlite3_value_text(pArg);
  const char *argv[4];
  const KArgSpec *a;
  KSyncConfig tmp, cfg;
  char *zErr = 0, *zKey;
  size_t nKey;
  int i, rc;
  if( zArg==0 || strchr(zArg, '=')==0 ){
    return sync_error(p, sqlite3_mprintf("kustomer_sync: set takes "
                      "'key=value' (as in CREATE): %Q", zArg ? zArg : ""));
  }
  for(nKey=0; zArg[nKey] && zArg[nKey]!='=' && zArg[nKey]!=' '; nKey++){}
  zKey = sqlite3_mprintf("%.*s", (int)nKey, zArg);
  if( zKey==0 ) return SQLITE_NOMEM;
  for(i=0; azFixed[i] && strcmp(azFixed[i], zKey)!=0; i++){}
  if( azFixed[i] ){
    rc = sync_error(p, sqlite3_mprintf("kustomer_sync: set: %s cannot change"
                    " (it decides the tables made): create another sync",
                    zKey));
    sqlite3_free(zKey);
    return rc;
  }
  sqlite3_free(zKey);
  argv[0] = argv[1] = argv[2] = "";
  argv[3] = zArg;
  memset(&tmp, 0, sizeof(tmp));
  rc = kustomer_args_parse(aSyncArg, 4, argv, &tmp, &zErr);
  if( rc==SQLITE_OK ){
    rc = kustomer_sync_config_read(p->db, p->zDb, p->zName, &cfg, &zErr);
  }else{
    memset(&cfg, 0, sizeof(cfg));
  }
  for(a=aSyncArg; rc==SQLITE_OK && a->zKey; a++){
    if( strncmp(zArg, a->zKey, strlen(a->zKey))==0
     && (zArg[strlen(a->zKey)]=='=' || zArg[strlen(a->zKey)]==' ') ){
      break;
    }
  }
  if( rc==SQLITE_OK && a->zKey ){
    /* the one field, from the parsed value into the stored configuration */
    char *pDst = (char*)&cfg + a->iOff, *pSrc = (char*)&tmp + a->iOff;
    size_t nField = a->eType==KARG_TEXT ? sizeof(char*)
                  : a->eType==KARG_REAL ? sizeof(double) : sizeof(int);
    char aSwap[sizeof(double)];
    memcpy(aSwap, pDst, nField);
    memcpy(pDst, pSrc, nField);
    memcpy(pSrc, aSwap, nField);
    zErr = config_check(&cfg);
    if( zErr ) rc = SQLITE_ERROR;
  }
  if( rc==SQLITE_OK && a->zKey ){
    sqlite3_stmt *pPut = 0;
    char *zSql = sqlite3_mprintf("INSERT OR REPLACE INTO \"%w\".\"%w_config\""
                                 "(k, v) VALUES(?1, ?2)", p->zDb, p->zName);
    rc = zSql ? sqlite3_prepare_v2(p->db, zSql, -1, &pPut, 0) : SQLITE_NOMEM;
    sqlite3_free(zSql);
    if( rc==SQLITE_OK ){
      sqlite3_bind_text(pPut, 1, a->zKey, -1, SQLITE_STATIC);
      kustomer_args_bind(a, &cfg, pPut, 2);
      sqlite3_step(pPut);
      rc = sqlite3_finalize(pPut);
    }
    if( rc==SQLITE_OK && cfg.zHash && cfg.zSalt==0 && !salt_from_env(&cfg) ){
      rc = salt_make(p->db, p->zDb, p->zName);
    }
  }
  kustomer_sync_config_clear(&tmp);
  if( rc==SQLITE_OK ){
    kustomer_sync_config_clear(&p->cfg);
    p->cfg = cfg;
    rc = kustomer_sync_config_read(p->db, p->zDb, p->zName, &cfg, &zErr);
    if( rc==SQLITE_OK ){
      kustomer_sync_config_clear(&p->cfg);
      p->cfg = cfg;
    }
  }else{
    kustomer_sync_config_clear(&cfg);
  }
  if( zErr ){
    rc = sync_error(p, sqlite3_mprintf("kustomer_sync: set: %z", zErr));
  }
  return rc;
}

/* rebuild: every column and child table again from _record, in the
** caller's transaction, with no request. */
static int sync_rebuild(Sync *p){
  KSyncMap *pMap = 0;
  int rc, nRows = 0;
  if( !p->cfg.bRecord ){
    return sync_error(p, sqlite3_mprintf("kustomer_sync: rebuild: %s keeps "
                      "no _record (record=0): resync instead", p->zName));
  }
  char *zErr = 0;
  rc = kustomer_syncmap_open(p->db, p->zDb, p->zName, p->cfg.zPrefix, 1,
                             &pMap);
  if( rc==SQLITE_OK ) rc = kustomer_sync_map_setup(&p->cfg, pMap, 1, &zErr);
  if( zErr ){
    kustomer_syncmap_close(pMap);
    return sync_error(p, sqlite3_mprintf("kustomer_sync: rebuild: %z", zErr));
  }
  if( rc==SQLITE_OK ) rc = kustomer_syncmap_rebuild(pMap, &nRows);
  if( rc && rc!=SQLITE_NOMEM ){
    rc = sync_error(p, sqlite3_mprintf("kustomer_sync: rebuild: %s",
                    kustomer_syncmap_errmsg(pMap)));
  }
  kustomer_syncmap_close(pMap);
  return rc;
}

static int sync_update(sqlite3_vtab *pVtab, int argc, sqlite3_value **argv,
                       sqlite3_int64 *pRowid){
  Sync *p = (Sync*)pVtab;
  const char *zCmd;
  (void)pRowid;
  if( argc==1 || sqlite3_value_type(argv[0])!=SQLITE_NULL
   || sqlite3_value_type(argv[2+SYNC_COMMAND])==SQLITE_NULL ){
    return sync_error(p, sqlite3_mprintf("kustomer_sync: %s shows the state "
                      "of the sync and is changed only by commands: INSERT"
                      " INTO %s(%s[, arg]) VALUES('resync'[, 'stream']),"
                      " VALUES('rebuild') or VALUES('set', 'key=value')",
                      p->zName, p->zName, p->zName));
  }
  zCmd = (const char*)sqlite3_value_text(argv[2+SYNC_COMMAND]);
  if( zCmd && strcmp(zCmd, "resync")==0 ){
    sqlite3_value *pArg = argv[2+SYNC_ARG];
    return sync_resync(p, pArg);
  }
  if( zCmd && strcmp(zCmd, "set")==0 ){
    return sync_set(p, argv[2+SYNC_ARG]);
  }
  if( zCmd && strcmp(zCmd, "rebuild")==0 ){
    if( sqlite3_value_type(argv[2+SYNC_ARG])!=SQLITE_NULL ){
      return sync_error(p, sqlite3_mprintf("kustomer_sync: rebuild takes no "
                        "argument (it rebuilds every table)"));
    }
    return sync_rebuild(p);
  }
  return sync_error(p, sqlite3_mprintf("kustomer_sync: unknown command %Q "
                    "(known: resync, rebuild, set)", zCmd ? zCmd : ""));
}

/* ---- Registration ------------------------------------------------------ */

static sqlite3_module syncModule = {
  .iVersion = 3,
  .xCreate = sync_create,
  .xConnect = sync_connect,
  .xBestIndex = sync_best_index,
  .xDisconnect = sync_disconnect,
  .xDestroy = sync_destroy,
  .xOpen = sync_open,
  .xClose = sync_close,
  .xFilter = sync_filter,
  .xNext = sync_next,
  .xEof = sync_eof,
  .xColumn = sync_column,
  .xRowid = sync_rowid,
  .xUpdate = sync_update,
  .xRename = sync_rename,
  .xShadowName = sync_shadow_name,
};

int kustomer_register_sync(sqlite3 *db){
  return sqlite3_create_module(db, "kustomer_sync", &syncModule, 0);
}
