/*
** The sync's tables: Kustomer's JSON:API records as rows of ordinary
** tables, named and shaped as Fivetran's Kustomer connector has them
** (customer, customer_email, conversation_tag, ...), for kustomer_sync
** (sync.c) and kustomer_pull (pull.c).
**
** Column rules, in order, for every record (docs/sync-design.md, 3):
**   - id from data.id;
**   - relationships: createdBy, modifiedBy, deletedBy, endedBy, redactedBy
**     as created_by ..., org as org_id, any other to-one <rel> as
**     <snake(rel)>_id; to-many ones as a link table where one is defined,
**     else as a JSON column of their ids;
**   - scalar attributes as snake(name); objects flattened with '_' (two
**     levels below the attribute; deeper ones, and those Fivetran keeps
**     whole, as JSON text); arrays as the child tables defined below, else
**     as JSON text;
**   - custom.<name> as custom_<snake(name)>;
**   - timestamps (an "At" key with an ISO-8601 value) as
**     YYYY-MM-DDTHH:MM:SS.sssZ, so that text order is time order;
**     booleans as 0/1;
**   - _record (the whole record, compact), _synced_at, _deleted.
** New attributes become new columns (ALTER TABLE ADD COLUMN), never
** dropped or retyped; <sync>_columns says where each column comes from.
** A row is written only when its record is as new as the stored one or
** newer, so a page read again (a lookback, a killed pull) never moves a
** row back in time.  Child rows of a record replace the ones stored:
** those that vanished are marked _deleted=1 and revive when they return.
*/
#include <string.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

/* ---- What becomes a child table ------------------------------------------ */

#define CHILD_LINK   1      /* ids: (parent_id, <col>) */
#define CHILD_ITEMS  2      /* objects: (parent_id, "index", their fields) */
#define CHILD_VALUES 3      /* scalars: (parent_id, "index", <col>) */

typedef struct ChildDef ChildDef;
struct ChildDef {
  const char *zParent;      /* the parent table (without prefix) */
  const char *zPath;        /* the attribute (or relationship) path */
  const char *zTable;       /* the child table */
  int eKind;
  const char *zCol;         /* LINK and VALUES: the value's column */
};

static const ChildDef aChildDef[] = {
  { "customer", "emails", "customer_email", CHILD_ITEMS, 0 },
  { "customer", "sharedEmails", "customer_shared_email", CHILD_ITEMS, 0 },
  { "customer", "phones", "customer_phone", CHILD_ITEMS, 0 },
  { "customer", "sharedPhones", "customer_shared_phone", CHILD_ITEMS, 0 },
  { "customer", "whatsapps", "customer_whatsapp", CHILD_ITEMS, 0 },
  { "customer", "sharedWhatsapps", "customer_shared_whatsapp", CHILD_ITEMS,
    0 },
  { "customer", "socials", "customer_social", CHILD_ITEMS, 0 },
  { "customer", "sharedSocials", "customer_shared_social", CHILD_ITEMS, 0 },
  { "customer", "urls", "customer_url", CHILD_ITEMS, 0 },
  { "customer", "locations", "customer_location", CHILD_ITEMS, 0 },
  { "customer", "externalIds", "customer_external_link", CHILD_ITEMS, 0 },
  { "customer", "sharedExternalIds", "customer_shared_external_link",
    CHILD_ITEMS, 0 },
  { "customer", "tags", "customer_tag", CHILD_LINK, "tag_id" },
  { "customer", "lastConversation.tags", "customer_last_conversation_tag",
    CHILD_LINK, "tag_id" },
  { "customer", "watchers", "customer_watcher", CHILD_LINK, "user_id" },
  { "customer", "activeUsers", "customer_active_user", CHILD_LINK,
    "user_id" },
  { "company", "emails", "company_email", CHILD_ITEMS, 0 },
  { "company", "phones", "company_phone", CHILD_ITEMS, 0 },
  { "company", "socials", "company_social", CHILD_ITEMS, 0 },
  { "company", "urls", "company_url", CHILD_ITEMS, 0 },
  { "company", "locations", "company_location", CHILD_ITEMS, 0 },
  { "company", "tags", "company_tag", CHILD_LINK, "tag_id" },
  { "conversation", "tags", "conversation_tag", CHILD_LINK, "tag_id" },
  { "conversation", "suggestedTags", "conversation_suggested_tag",
    CHILD_LINK, "tag_id" },
  { "conversation", "assignedUsers", "conversation_assigned_user",
    CHILD_LINK, "user_id" },
  { "conversation", "assignedTeams", "conversation_assigned_team",
    CHILD_LINK, "team_id" },
  { "conversation", "channels", "conversation_channel", CHILD_VALUES,
    "name" },
  { "message", "assignedUsers", "message_assigned_user", CHILD_LINK,
    "user_id" },
  { "message", "assignedTeams", "message_assigned_team", CHILD_LINK,
    "team_id" },
  { "message", "createdByTeams", "message_created_by_team", CHILD_LINK,
    "team_id" },
  { "message", "shortcuts", "message_shortcut", CHILD_LINK, "shortcut_id" },
  { "message", "attachments", "message_attachment", CHILD_ITEMS, 0 },
  { "note", "userMentions", "note_user_mention", CHILD_LINK, "user_id" },
  { "note", "teamMentions", "note_team_mention", CHILD_LINK, "team_id" },
  { "kobject", "tags", "kobject_tag", CHILD_LINK, "tag_id" },
  { "work_session", "channels", "work_session_channel", CHILD_VALUES,
    "name" },
  { "work_session", "capacity", "work_session_capacity", CHILD_ITEMS, 0 },
  { "user", "roles", "user_role", CHILD_VALUES, "role" },
  { "team", "members", "team_member", CHILD_LINK, "user_id" },
  { "shortcut", "tags", "shortcut_tag", CHILD_LINK, "tag_id" },
  { "shortcut", "assignedUsers", "shortcut_assigned_user", CHILD_LINK,
    "user_id" },
  { "shortcut", "assignedTeams", "shortcut_assigned_team", CHILD_LINK,
    "team_id" },
  { "sla_version", "metrics", "sla_metric", CHILD_ITEMS, 0 },
  { "sla_version", "criteria", "sla_criteria", CHILD_ITEMS, 0 },
  { "business_schedule", "holidays", "business_holiday", CHILD_ITEMS, 0 },
  { 0, 0, 0, 0, 0 }
};

/* Objects Fivetran keeps as one JSON column. */
static const char *const azWhole[] = { "firstDone", "lastDone", 0 };

/* Relationships named without "_id", as Fivetran names them. */
static const char *const azRelPlain[] = {
  "createdBy", "modifiedBy", "deletedBy", "endedBy", "redactedBy", 0
};

/* ---- Names ---------------------------------------------------------------- */

static int is_upper(char c){ return c>='A' && c<='Z'; }
static int is_lower(char c){ return c>='a' && c<='z'; }
static int is_digit(char c){ return c>='0' && c<='9'; }

void kustomer_snake(sqlite3_str *p, const char *z, int n){
  char aTmp[256];
  char *zA;
  int i, k = 0, j;
  if( n==0 ){
    /* an attribute named "": a name all the same (an empty str would
    ** read as out of memory) */
    sqlite3_str_appendchar(p, 1, '_');
    return;
  }
  zA = n*2+1<=(int)sizeof(aTmp) ? aTmp : sqlite3_malloc(n*2+1);
  if( zA==0 ){
    sqlite3_str_append(p, z, n);    /* the caller sees the str's NOMEM */
    return;
  }
  /* (.)([A-Z][a-z]+) -> \1_\2, left to right, as tap-kustomer's first
  ** regex (which reproduces Fivetran's names) */
  for(i=0; i<n; ){
    zA[k++] = z[i];
    if( i+2<n && is_upper(z[i+1]) && is_lower(z[i+2]) ){
      zA[k++] = '_';
      zA[k++] = z[i+1];
      for(j=i+2; j<n && is_lower(z[j]); j++) zA[k++] = z[j];
      i = j;
    }else{
      i++;
    }
  }
  /* then ([a-z0-9])([A-Z]) -> \1_\2, and lower case; anything but a
  ** letter, a digit or '_' becomes '_' (klass names such as ecomm-order) */
  for(i=0; i<k; i++){
    char c = zA[i];
    if( (is_lower(c) || is_digit(c)) && i+1<k && is_upper(zA[i+1]) ){
      sqlite3_str_appendchar(p, 1, c);
      sqlite3_str_appendchar(p, 1, '_');
      sqlite3_str_appendchar(p, 1, (char)(zA[i+1]+32));
      i++;
      continue;
    }
    if( is_upper(c) ) c = (char)(c+32);
    else if( !is_lower(c) && !is_digit(c) && c!='_' ) c = '_';
    sqlite3_str_appendchar(p, 1, c);
  }
  if( zA!=aTmp ) sqlite3_free(zA);
}

/* ---- Values of a row ------------------------------------------------------ */

typedef struct Val Val;
struct Val {
  int eType;                /* SQLITE_NULL, _INTEGER, _FLOAT, _TEXT */
  sqlite3_int64 i;
  double r;
  char *z;                  /* TEXT: from sqlite3_malloc */
};

static void val_clear(Val *v){
  sqlite3_free(v->z);
  memset(v, 0, sizeof(*v));
  v->eType = SQLITE_NULL;
}

static void val_bind(const Val *v, sqlite3_stmt *p, int i){
  switch( v->eType ){
    case SQLITE_INTEGER: sqlite3_bind_int64(p, i, v->i); break;
    case SQLITE_FLOAT:   sqlite3_bind_double(p, i, v->r); break;
    case SQLITE_TEXT:    sqlite3_bind_text(p, i, v->z, -1, SQLITE_STATIC);
                         break;
    default:             sqlite3_bind_null(p, i); break;
  }
}

/* Whether a key names a time: ends in "At" after a lower-case letter. */
static int key_is_time(const char *zKey){
  size_t n = strlen(zKey);
  return n>=3 && zKey[n-2]=='A' && zKey[n-1]=='t' && !is_upper(zKey[n-3]);
}

/* The value of v for a column; its type hint in *pzType. */
static int val_of(const cJSON *v, const char *zKey, Val *pOut,
                  const char **pzType){
  memset(pOut, 0, sizeof(*pOut));
  pOut->eType = SQLITE_NULL;
  *pzType = "TEXT";
  switch( v->type & 0xff ){
    case cJSON_True: case cJSON_False:
      pOut->eType = SQLITE_INTEGER;
      pOut->i = cJSON_IsTrue(v);
      *pzType = "INTEGER";
      return SQLITE_OK;
    case cJSON_Number:
      *pzType = "NUMERIC";
      /* the range first: casting a double out of range is undefined */
      if( v->valuedouble>-9e15 && v->valuedouble<9e15
       && v->valuedouble==(double)(sqlite3_int64)v->valuedouble ){
        pOut->eType = SQLITE_INTEGER;
        pOut->i = (sqlite3_int64)v->valuedouble;
      }else{
        pOut->eType = SQLITE_FLOAT;
        pOut->r = v->valuedouble;
      }
      return SQLITE_OK;
    case cJSON_String: {
      sqlite3_int64 ms;
      const char *z = v->valuestring;
      if( zKey && key_is_time(zKey) && kustomer_iso_ms(z, (int)strlen(z), &ms) ){
        pOut->z = sqlite3_malloc(KUSTOMER_ISO_LEN);
        if( pOut->z==0 ) return SQLITE_NOMEM;
        kustomer_iso_format(ms, pOut->z);
      }else{
        pOut->z = sqlite3_mprintf("%s", z);
        if( pOut->z==0 ) return SQLITE_NOMEM;
      }
      pOut->eType = SQLITE_TEXT;
      return SQLITE_OK;
    }
    case cJSON_Array: case cJSON_Object: {
      sqlite3_str *p = sqlite3_str_new(0);
      kustomer_json_value(p, v);
      pOut->z = sqlite3_str_finish(p);
      if( pOut->z==0 ) return SQLITE_NOMEM;
      pOut->eType = SQLITE_TEXT;
      return SQLITE_OK;
    }
    default:
      return SQLITE_OK;
  }
}

/* ---- Tables ---------------------------------------------------------------- */

typedef struct MapCol MapCol;
struct MapCol {
  char *zName;
  char *zPath;
};

typedef struct MapTable MapTable;
struct MapTable {
  char *zName;              /* the table's name as given (no prefix) */
  char *zFull;              /* with the prefix */
  const ChildDef *pChild;   /* a child table: what it holds */
  char *zParentCol;         /* a child table: its parent's key column */
  MapCol *aCol;             /* the columns records fill, in order */
  int nCol, nAlloc;
  sqlite3_stmt *pUpsert;    /* for these columns (NULL: to prepare) */
  sqlite3_stmt *pMark;      /* a child table: mark a parent's rows */
  int bHist;                /* kept in history mode: <table>_history */
  int nHistCol;             /* aCol entries the history table has */
  MapTable *pNext;
  /* the row being built: a value per column */
  Val *aVal;
  int nValAlloc;
};

struct KSyncMap {
  sqlite3 *db;
  char *zDb;                /* schema of the sync and its tables */
  char *zSync;              /* the sync's name: <sync>_columns */
  char *zPrefix;
  int bRecord;              /* keep _record */
  char zNow[KUSTOMER_ISO_LEN];  /* _synced_at of this page */
  MapTable *pTables;
  sqlite3_stmt *pColIns;    /* INSERT INTO <sync>_columns */
  char *zErr;               /* the last error's message */
  /* hash= and block=: "table.column" (or "table", block only) */
  char **azHash, **azBlock;
  int nHash, nBlock;
  unsigned char *aSalt;
  int nSalt;
  char **azHist;            /* history=: main tables kept in history mode */
  int nHist;
  int bCustomJson;          /* custom='json': one custom column */
  int bFivetran;            /* system_columns='fivetran' */
  KIdMap *pIds;             /* the file's customer ids (idmap.c) */
};

static int hist_wanted(const KSyncMap *p, const MapTable *t);
static int hist_create(KSyncMap *p, MapTable *t);

static void map_error(KSyncMap *p, char *zMsg){
  sqlite3_free(p->zErr);
  p->zErr = zMsg;
}

const char *kustomer_syncmap_errmsg(KSyncMap *p){
  return p->zErr ? p->zErr : sqlite3_errmsg(p->db);
}

static int map_exec(KSyncMap *p, char *zSql){
  int rc;
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_exec(p->db, zSql, 0, 0, 0);
  if( rc && rc!=SQLITE_NOMEM ){
    map_error(p, sqlite3_mprintf("%s", sqlite3_errmsg(p->db)));
  }
  sqlite3_free(zSql);
  return rc;
}

static MapTable *table_find(KSyncMap *p, const char *zName){
  MapTable *t;
  for(t=p->pTables; t; t=t->pNext){
    if( strcmp(t->zName, zName)==0 ) return t;
  }
  return 0;
}

/* The columns no record path fills. */
static int is_fixed_column(const MapTable *t, const char *zName){
  if( strcmp(zName, "_record")==0 || strcmp(zName, "_synced_at")==0
   || strcmp(zName, "_deleted")==0
   || strncmp(zName, "_fivetran_", 10)==0 ) return 1;
  if( t->pChild==0 ) return strcmp(zName, "id")==0;
  if( strcmp(zName, t->zParentCol)==0 ) return 1;
  if( t->pChild->eKind==CHILD_LINK ) return strcmp(zName, t->pChild->zCol)==0;
  if( strcmp(zName, "index")==0 ) return 1;
  return t->pChild->eKind==CHILD_VALUES && strcmp(zName, t->pChild->zCol)==0;
}

static int table_add_col(MapTable *t, const char *zName, const char *zPath){
  if( t->nCol==t->nAlloc ){
    int n = t->nAlloc ? t->nAlloc*2 : 16;
    MapCol *a = sqlite3_realloc64(t->aCol, sizeof(MapCol)*n);
    Val *aV;
    if( a==0 ) return SQLITE_NOMEM;
    t->aCol = a;
    t->nAlloc = n;
    aV = sqlite3_realloc64(t->aVal, sizeof(Val)*n);
    if( aV==0 ) return SQLITE_NOMEM;
    t->aVal = aV;
  }
  t->aCol[t->nCol].zName = sqlite3_mprintf("%s", zName);
  t->aCol[t->nCol].zPath = sqlite3_mprintf("%s", zPath);
  if( t->aCol[t->nCol].zName==0 || t->aCol[t->nCol].zPath==0 ){
    sqlite3_free(t->aCol[t->nCol].zName);
    sqlite3_free(t->aCol[t->nCol].zPath);
    return SQLITE_NOMEM;
  }
  memset(&t->aVal[t->nCol], 0, sizeof(Val));
  t->aVal[t->nCol].eType = SQLITE_NULL;
  t->nCol++;
  sqlite3_finalize(t->pUpsert);
  t->pUpsert = 0;
  return SQLITE_OK;
}

static void table_free(MapTable *t){
  int i;
  for(i=0; i<t->nCol; i++){
    sqlite3_free(t->aCol[i].zName);
    sqlite3_free(t->aCol[i].zPath);
    val_clear(&t->aVal[i]);
  }
  sqlite3_free(t->aCol);
  sqlite3_free(t->aVal);
  sqlite3_finalize(t->pUpsert);
  sqlite3_finalize(t->pMark);
  sqlite3_free(t->zName);
  sqlite3_free(t->zFull);
  sqlite3_free(t->zParentCol);
  sqlite3_free(t);
}

/* Record a column in <sync>_columns. */
static int columns_put(KSyncMap *p, const char *zTable, const char *zCol,
                       const char *zPath, const char *zType,
                       const char *zOrigin){
  int rc = SQLITE_OK;
  if( p->pColIns==0 ){
    char *zSql = sqlite3_mprintf("INSERT OR IGNORE INTO \"%w\".\"%w_columns\""
                                 "(table_name, column_name, path, type, origin)"
                                 " VALUES(?1, ?2, ?3, ?4, ?5)",
                                 p->zDb, p->zSync);
    if( zSql==0 ) return SQLITE_NOMEM;
    rc = sqlite3_prepare_v3(p->db, zSql, -1, SQLITE_PREPARE_PERSISTENT,
                            &p->pColIns, 0);
    sqlite3_free(zSql);
    if( rc ) return rc;
  }
  sqlite3_bind_text(p->pColIns, 1, zTable, -1, SQLITE_STATIC);
  sqlite3_bind_text(p->pColIns, 2, zCol, -1, SQLITE_STATIC);
  sqlite3_bind_text(p->pColIns, 3, zPath, -1, SQLITE_STATIC);
  sqlite3_bind_text(p->pColIns, 4, zType, -1, SQLITE_STATIC);
  sqlite3_bind_text(p->pColIns, 5, zOrigin, -1, SQLITE_STATIC);
  sqlite3_step(p->pColIns);
  return sqlite3_reset(p->pColIns);
}

/* Whether a table of this name is in the schema; whether it is the
** sync's (recorded in <sync>_columns). */
static int table_state(KSyncMap *p, const char *zFull, int *pbOurs){
  sqlite3_stmt *pStmt = 0;
  char *zSql = sqlite3_mprintf(
      "SELECT (SELECT count(*) FROM \"%w\".sqlite_schema WHERE type='table'"
      " AND name=?1), (SELECT count(*) FROM \"%w\".\"%w_columns\""
      " WHERE table_name=?1)", p->zDb, p->zDb, p->zSync);
  int bExists = 0;
  *pbOurs = 0;
  if( zSql && sqlite3_prepare_v2(p->db, zSql, -1, &pStmt, 0)==SQLITE_OK ){
    sqlite3_bind_text(pStmt, 1, zFull, -1, SQLITE_STATIC);
    if( sqlite3_step(pStmt)==SQLITE_ROW ){
      bExists = sqlite3_column_int(pStmt, 0)>0;
      *pbOurs = sqlite3_column_int(pStmt, 1)>0;
    }
  }
  sqlite3_finalize(pStmt);
  sqlite3_free(zSql);
  return bExists;
}

/* Create a table (and record its fixed columns), unless the sync made it
** before; a foreign table of the name is an error. */
/* system_columns='fivetran': Fivetran's names for the system columns, as
** generated columns (virtual: nothing is stored twice), so that SQL
** written for a Fivetran warehouse runs unchanged.  Made with the table:
** an ALTER TABLE inside CREATE VIRTUAL TABLE would free its arguments.
** ePart: 1 _synced_at and _deleted, 2 the history columns, 3 both. */
static const char *const azFivetran[] = {
  "_fivetran_synced", "_synced_at", "_fivetran_deleted", "_deleted",
  "_fivetran_start", "_start", "_fivetran_end", "_end",
  "_fivetran_active", "_active", 0
};

static char *fivetran_clause(const KSyncMap *p, int ePart){
  sqlite3_str *s;
  int i;
  if( !p->bFivetran ) return sqlite3_mprintf("");
  s = sqlite3_str_new(0);
  for(i=0; azFivetran[i]; i+=2){
    if( (i<4 && !(ePart & 1)) || (i>=4 && !(ePart & 2)) ) continue;
    sqlite3_str_appendf(s, ", \"%w\" GENERATED ALWAYS AS (\"%w\") VIRTUAL",
                        azFivetran[i], azFivetran[i+1]);
  }
  return sqlite3_str_finish(s);
}

static int fivetran_record(KSyncMap *p, const char *zFull, int ePart){
  int i, rc = SQLITE_OK;
  for(i=0; p->bFivetran && rc==SQLITE_OK && azFivetran[i]; i+=2){
    if( (i<4 && !(ePart & 1)) || (i>=4 && !(ePart & 2)) ) continue;
    rc = columns_put(p, zFull, azFivetran[i], azFivetran[i+1], "",
                     "system");
  }
  return rc;
}

static int table_create(KSyncMap *p, MapTable *t){
  const ChildDef *c = t->pChild;
  int bOurs, rc;
  char *zSql, *zFt;
  if( table_state(p, t->zFull, &bOurs) ){
    if( bOurs ) return SQLITE_OK;
    map_error(p, sqlite3_mprintf("table %s exists and is not this sync's: "
                                 "name the sync's tables apart with "
                                 "prefix='...'", t->zFull));
    return SQLITE_ERROR;
  }
  zFt = fivetran_clause(p, 1);
  if( zFt==0 ) return SQLITE_NOMEM;
  if( c==0 ){
    zSql = sqlite3_mprintf("CREATE TABLE \"%w\".\"%w\"(id TEXT PRIMARY KEY,"
                           " updated_at TEXT, _record TEXT, _synced_at TEXT,"
                           " _deleted INTEGER NOT NULL DEFAULT 0%s)",
                           p->zDb, t->zFull, zFt);
  }else if( c->eKind==CHILD_LINK ){
    zSql = sqlite3_mprintf("CREATE TABLE \"%w\".\"%w\"(\"%w\" TEXT NOT NULL,"
                           " \"%w\" TEXT NOT NULL, _synced_at TEXT,"
                           " _deleted INTEGER NOT NULL DEFAULT 0%s,"
                           " PRIMARY KEY(\"%w\", \"%w\"))", p->zDb, t->zFull,
                           t->zParentCol, c->zCol, zFt, t->zParentCol,
                           c->zCol);
  }else{
    zSql = sqlite3_mprintf("CREATE TABLE \"%w\".\"%w\"(\"%w\" TEXT NOT NULL,"
                           " \"index\" INTEGER NOT NULL,%s%s%s _synced_at TEXT,"
                           " _deleted INTEGER NOT NULL DEFAULT 0%s,"
                           " PRIMARY KEY(\"%w\", \"index\"))", p->zDb,
                           t->zFull, t->zParentCol,
                           c->eKind==CHILD_VALUES ? " \"" : "",
                           c->eKind==CHILD_VALUES ? c->zCol : "",
                           c->eKind==CHILD_VALUES ? "\"," : "", zFt,
                           t->zParentCol);
  }
  sqlite3_free(zFt);
  rc = map_exec(p, zSql);
  if( rc ) return rc;
  if( c==0 ){
    rc = columns_put(p, t->zFull, "id", "id", "TEXT", "key");
    if( rc==SQLITE_OK ){
      rc = columns_put(p, t->zFull, "updated_at", "attributes.updatedAt",
                       "TEXT", "attribute");
    }
    if( rc==SQLITE_OK ) rc = table_add_col(t, "updated_at",
                                           "attributes.updatedAt");
  }else{
    rc = columns_put(p, t->zFull, t->zParentCol, "id", "TEXT", "key");
    if( rc==SQLITE_OK ){
      rc = columns_put(p, t->zFull, c->eKind==CHILD_LINK ? c->zCol : "index",
                       c->zPath, c->eKind==CHILD_LINK ? "TEXT" : "INTEGER",
                       c->eKind==CHILD_LINK ? "key" : "index");
    }
    if( rc==SQLITE_OK && c->eKind==CHILD_VALUES ){
      rc = columns_put(p, t->zFull, c->zCol, c->zPath, "TEXT", "attribute");
    }
  }
  if( rc==SQLITE_OK ){
    rc = columns_put(p, t->zFull, "_synced_at", "", "TEXT", "system");
  }
  if( rc==SQLITE_OK ){
    rc = columns_put(p, t->zFull, "_deleted", "attributes.deleted",
                     "INTEGER", "system");
  }
  if( rc==SQLITE_OK && c==0 ){
    rc = columns_put(p, t->zFull, "_record", "", "TEXT", "system");
  }
  if( rc==SQLITE_OK ) rc = fivetran_record(p, t->zFull, 1);
  return rc;
}

/* Load a table's columns from <sync>_columns. */
static int table_load(KSyncMap *p, MapTable *t){
  sqlite3_stmt *pStmt = 0;
  char *zSql = sqlite3_mprintf("SELECT column_name, path FROM"
                               " \"%w\".\"%w_columns\" WHERE table_name=?1"
                               " ORDER BY rowid", p->zDb, p->zSync);
  int rc;
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(p->db, zSql, -1, &pStmt, 0);
  sqlite3_free(zSql);
  if( rc ) return rc;
  sqlite3_bind_text(pStmt, 1, t->zFull, -1, SQLITE_STATIC);
  while( rc==SQLITE_OK && sqlite3_step(pStmt)==SQLITE_ROW ){
    const char *zName = (const char*)sqlite3_column_text(pStmt, 0);
    const char *zPath = (const char*)sqlite3_column_text(pStmt, 1);
    if( zName && zPath && !is_fixed_column(t, zName) ){
      rc = table_add_col(t, zName, zPath);
    }
  }
  sqlite3_finalize(pStmt);
  return rc;
}

/* The table zName (a child table when pChild), created and loaded on
** first use. */
static int table_get(KSyncMap *p, const char *zName, const ChildDef *pChild,
                     const char *zParent, MapTable **ppOut){
  MapTable *t = table_find(p, zName);
  int rc;
  *ppOut = t;
  if( t ) return SQLITE_OK;
  t = sqlite3_malloc(sizeof(*t));
  if( t==0 ) return SQLITE_NOMEM;
  memset(t, 0, sizeof(*t));
  t->zName = sqlite3_mprintf("%s", zName);
  t->zFull = sqlite3_mprintf("%s%s", p->zPrefix, zName);
  t->pChild = pChild;
  if( pChild ) t->zParentCol = sqlite3_mprintf("%s_id", zParent);
  if( t->zName==0 || t->zFull==0 || (pChild && t->zParentCol==0) ){
    table_free(t);
    return SQLITE_NOMEM;
  }
  rc = table_create(p, t);
  if( rc==SQLITE_OK && t->nCol==0 ) rc = table_load(p, t);
  if( rc==SQLITE_OK && p->nHist && hist_wanted(p, t) ){
    t->bHist = 1;
    rc = hist_create(p, t);
  }
  if( rc ){
    table_free(t);
    return rc;
  }
  t->pNext = p->pTables;
  p->pTables = t;
  *ppOut = t;
  return SQLITE_OK;
}

/* The index of the column for zPath, adding it (as zWant, or zWant_2, ...
** when another path has that name) with type zType when new. */
static int table_column(KSyncMap *p, MapTable *t, const char *zPath,
                        const char *zWant, const char *zType,
                        const char *zOrigin, int *piCol){
  char *zName;
  int i, k, rc;
  for(i=0; i<t->nCol; i++){
    if( strcmp(t->aCol[i].zPath, zPath)==0 ){
      *piCol = i;
      return SQLITE_OK;
    }
  }
  zName = sqlite3_mprintf("%s", zWant[0] ? zWant : "value");
  for(k=2; zName; k++){
    int bTaken = is_fixed_column(t, zName);
    for(i=0; i<t->nCol && !bTaken; i++){
      bTaken = sqlite3_stricmp(t->aCol[i].zName, zName)==0;
    }
    if( !bTaken ) break;
    sqlite3_free(zName);
    zName = sqlite3_mprintf("%s_%d", zWant[0] ? zWant : "value", k);
  }
  if( zName==0 ) return SQLITE_NOMEM;
  rc = map_exec(p, sqlite3_mprintf("ALTER TABLE \"%w\".\"%w\" ADD COLUMN"
                                   " \"%w\" %s", p->zDb, t->zFull, zName,
                                   zType));
  if( rc==SQLITE_OK ){
    rc = columns_put(p, t->zFull, zName, zPath, zType, zOrigin);
  }
  if( rc==SQLITE_OK ) rc = table_add_col(t, zName, zPath);
  sqlite3_free(zName);
  *piCol = t->nCol-1;
  return rc;
}

/* ---- Rows ------------------------------------------------------------------ */

/* Set a value of the row being built: column for zPath, named from the
** snake names of zName parts. */
/* The column type a custom attribute's suffix says (Kustomer's naming:
** tierStr, ordersNum, lastOrderAt, vipBool, ...), or NULL. */
static const char *custom_type(const char *zKey){
  static const struct { const char *zSuffix, *zType; } aSuffix[] = {
    { "Str", "TEXT" }, { "Txt", "TEXT" }, { "Url", "TEXT" }, { "Id", "TEXT" },
    { "At", "TEXT" }, { "Tree", "TEXT" }, { "Num", "NUMERIC" },
    { "Bool", "INTEGER" },
  };
  size_t n = zKey ? strlen(zKey) : 0, i;
  for(i=0; i<sizeof(aSuffix)/sizeof(aSuffix[0]); i++){
    size_t k = strlen(aSuffix[i].zSuffix);
    if( n>k && strcmp(zKey+n-k, aSuffix[i].zSuffix)==0
     && !is_upper(zKey[n-k-1]) ){
      return aSuffix[i].zType;
    }
  }
  return 0;
}

static int row_set(KSyncMap *p, MapTable *t, const char *zPath,
                   const char *zCol, const cJSON *v, const char *zKey,
                   const char *zOrigin){
  Val val;
  const char *zType;
  int iCol, rc = val_of(v, zKey, &val, &zType);
  if( strcmp(zOrigin, "custom")==0 ){
    /* typed by the name's suffix, whatever the first value seen */
    const char *zSuffixType = custom_type(zKey);
    if( zSuffixType && (v->type & 0xff)!=cJSON_Array
     && (v->type & 0xff)!=cJSON_Object ){
      zType = zSuffixType;
    }
  }
  if( rc==SQLITE_OK ){
    rc = table_column(p, t, zPath, zCol, zType, zOrigin, &iCol);
  }
  if( rc ){
    val_clear(&val);
    return rc;
  }
  val_clear(&t->aVal[iCol]);
  t->aVal[iCol] = val;
  return SQLITE_OK;
}

static void row_reset(MapTable *t){
  int i;
  for(i=0; i<t->nCol; i++) val_clear(&t->aVal[i]);
}

/* Prepare the table's upsert for its columns as they are now. */
static int table_upsert(KSyncMap *p, MapTable *t){
  sqlite3_str *s;
  const ChildDef *c = t->pChild;
  int i, nFixed, rc;
  char *zSql;
  if( t->pUpsert ) return SQLITE_OK;
  s = sqlite3_str_new(0);
  sqlite3_str_appendf(s, "INSERT INTO \"%w\".\"%w\"(", p->zDb, t->zFull);
  if( c==0 ){
    sqlite3_str_appendall(s, "id, _record, _synced_at, _deleted");
    nFixed = 4;
  }else{
    sqlite3_str_appendf(s, "\"%w\", \"%w\", _synced_at, _deleted",
                        t->zParentCol,
                        c->eKind==CHILD_LINK ? c->zCol : "index");
    nFixed = 4;
    if( c->eKind==CHILD_VALUES ){
      sqlite3_str_appendf(s, ", \"%w\"", c->zCol);
      nFixed = 5;
    }
  }
  for(i=0; i<t->nCol; i++) sqlite3_str_appendf(s, ", \"%w\"", t->aCol[i].zName);
  sqlite3_str_appendall(s, ") VALUES(");
  for(i=0; i<nFixed+t->nCol; i++) sqlite3_str_appendf(s, "%s?", i ? "," : "");
  if( c==0 ){
    sqlite3_str_appendall(s, ") ON CONFLICT(id) DO UPDATE SET"
                             " _record=excluded._record,"
                             " _synced_at=excluded._synced_at,"
                             " _deleted=excluded._deleted");
  }else{
    sqlite3_str_appendf(s, ") ON CONFLICT(\"%w\", \"%w\") DO UPDATE SET"
                        " _synced_at=excluded._synced_at, _deleted=0",
                        t->zParentCol,
                        c->eKind==CHILD_LINK ? c->zCol : "index");
    if( c->eKind==CHILD_VALUES ){
      sqlite3_str_appendf(s, ", \"%w\"=excluded.\"%w\"", c->zCol, c->zCol);
    }
  }
  for(i=0; i<t->nCol; i++){
    sqlite3_str_appendf(s, ", \"%w\"=excluded.\"%w\"", t->aCol[i].zName,
                        t->aCol[i].zName);
  }
  if( c==0 ){
    /* never back in time: a record read again older than the row */
    sqlite3_str_appendf(s, " WHERE excluded.updated_at IS NULL"
                        " OR \"%w\".updated_at IS NULL"
                        " OR excluded.updated_at>=\"%w\".updated_at",
                        t->zFull, t->zFull);
  }
  zSql = sqlite3_str_finish(s);
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v3(p->db, zSql, -1, SQLITE_PREPARE_PERSISTENT,
                          &t->pUpsert, 0);
  sqlite3_free(zSql);
  return rc;
}

/* Write the row built for table t.  *pbApplied: it was written (not older
** than the stored one). */
static int row_write(KSyncMap *p, MapTable *t, const char *zKey,
                     sqlite3_int64 iKey, const char *zValue,
                     const char *zRecord, int bDeleted, int *pbApplied){
  sqlite3_stmt *s;
  int i, j = 1, rc = table_upsert(p, t);
  if( rc ) return rc;
  s = t->pUpsert;
  if( t->pChild==0 ){
    sqlite3_bind_text(s, j++, zKey, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, j++, zRecord, -1, SQLITE_STATIC);
  }else{
    sqlite3_bind_text(s, j++, zKey, -1, SQLITE_STATIC);
    if( t->pChild->eKind==CHILD_LINK ){
      sqlite3_bind_text(s, j++, zValue, -1, SQLITE_STATIC);
    }else{
      sqlite3_bind_int64(s, j++, iKey);
    }
  }
  sqlite3_bind_text(s, j++, p->zNow, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, j++, bDeleted);
  if( t->pChild && t->pChild->eKind==CHILD_VALUES ){
    sqlite3_bind_text(s, j++, zValue, -1, SQLITE_STATIC);
  }
  for(i=0; i<t->nCol; i++) val_bind(&t->aVal[i], s, j++);
  sqlite3_step(s);
  rc = sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if( pbApplied ) *pbApplied = rc==SQLITE_OK && sqlite3_changes(p->db)>0;
  row_reset(t);
  return rc;
}

/* ---- A record ------------------------------------------------------------- */

static const ChildDef *child_def(const char *zParent, const char *zPath){
  const ChildDef *c;
  for(c=aChildDef; c->zParent; c++){
    if( strcmp(c->zParent, zParent)==0 && strcmp(c->zPath, zPath)==0 ){
      return c;
    }
  }
  return 0;
}

static int str_in(const char *z, const char *const *az){
  for(; *az; az++){
    if( strcmp(z, *az)==0 ) return 1;
  }
  return 0;
}

/* The child rows of one parent for one child definition: the stored ones
** marked, the current ones (pArr, may be NULL) written. */
static int record_children(KSyncMap *p, const char *zParent,
                           const ChildDef *c, const char *zId,
                           const cJSON *pArr, int bDeleted){
  MapTable *t;
  const cJSON *pItem;
  sqlite3_int64 iIdx = 0;
  int rc = table_get(p, c->zTable, c, zParent, &t);
  if( rc ) return rc;
  if( t->pMark==0 ){
    char *zSql = sqlite3_mprintf("UPDATE \"%w\".\"%w\" SET _deleted=1,"
                                 " _synced_at=?1 WHERE \"%w\"=?2"
                                 " AND _deleted=0", p->zDb, t->zFull,
                                 t->zParentCol);
    if( zSql==0 ) return SQLITE_NOMEM;
    rc = sqlite3_prepare_v3(p->db, zSql, -1, SQLITE_PREPARE_PERSISTENT,
                            &t->pMark, 0);
    sqlite3_free(zSql);
    if( rc ) return rc;
  }
  sqlite3_bind_text(t->pMark, 1, p->zNow, -1, SQLITE_STATIC);
  sqlite3_bind_text(t->pMark, 2, zId, -1, SQLITE_STATIC);
  sqlite3_step(t->pMark);
  rc = sqlite3_reset(t->pMark);
  /* a deleted parent's rows stay marked */
  if( bDeleted || !cJSON_IsArray(pArr) ) return rc;
  for(pItem=pArr->child; rc==SQLITE_OK && pItem; pItem=pItem->next, iIdx++){
    char *zValue = 0;
    const cJSON *pId = cJSON_IsObject(pItem)
                     ? kustomer_json_member(pItem, "id") : pItem;
    if( c->eKind!=CHILD_ITEMS ){
      sqlite3_str *s = sqlite3_str_new(0);
      if( pId ) kustomer_js_string(s, pId);
      zValue = sqlite3_str_finish(s);
      if( zValue==0 && c->eKind==CHILD_LINK ) continue;  /* no id */
    }else if( cJSON_IsObject(pItem) ){
      const cJSON *pF;
      for(pF=pItem->child; rc==SQLITE_OK && pF; pF=pF->next){
        sqlite3_str *s = sqlite3_str_new(0);
        char *zCol, *zPath;
        kustomer_snake(s, pF->string, (int)strlen(pF->string));
        zCol = sqlite3_str_finish(s);
        zPath = sqlite3_mprintf("%s[].%s", c->zPath, pF->string);
        rc = (zCol && zPath) ? row_set(p, t, zPath, zCol, pF, pF->string,
                                       "attribute") : SQLITE_NOMEM;
        sqlite3_free(zCol);
        sqlite3_free(zPath);
      }
    }else{
      char *zPath = sqlite3_mprintf("%s[]", c->zPath);
      rc = zPath ? row_set(p, t, zPath, "value", pItem, 0, "attribute")
                 : SQLITE_NOMEM;
      sqlite3_free(zPath);
    }
    if( rc==SQLITE_OK ){
      rc = row_write(p, t, zId, iIdx, zValue, 0, 0, 0);
    }else{
      row_reset(t);
    }
    sqlite3_free(zValue);
  }
  return rc;
}

/* Custom attributes as custom_<snake(name)>. */
static int record_custom(KSyncMap *p, MapTable *t, const cJSON *pCustom){
  const cJSON *v;
  int rc = SQLITE_OK;
  for(v=pCustom->child; rc==SQLITE_OK && v; v=v->next){
    sqlite3_str *s = sqlite3_str_new(0);
    char *zName, *zPath;
    sqlite3_str_appendall(s, "custom_");
    kustomer_snake(s, v->string, (int)strlen(v->string));
    zName = sqlite3_str_finish(s);
    zPath = sqlite3_mprintf("attributes.custom.%s", v->string);
    rc = (zName && zPath) ? row_set(p, t, zPath, zName, v, v->string,
                                    "custom") : SQLITE_NOMEM;
    sqlite3_free(zName);
    sqlite3_free(zPath);
  }
  return rc;
}

/* A member at a dotted path of an object (NULL when absent). */
static const cJSON *json_path(const cJSON *p, const char *zPath){
  while( p && zPath ){
    const char *zDot = strchr(zPath, '.');
    char zKey[64];
    size_t n = zDot ? (size_t)(zDot-zPath) : strlen(zPath);
    if( n>=sizeof(zKey) ) return 0;
    memcpy(zKey, zPath, n);
    zKey[n] = 0;
    p = kustomer_json_member(p, zKey);
    zPath = zDot ? zDot+1 : 0;
  }
  return p;
}

/* The columns of an object's members: zPath its dotted path below
** attributes, zCol the column prefix, iDepth levels below the attribute.
** Paths that are child tables are left to record_children(). */
static int record_object(KSyncMap *p, MapTable *t, const char *zTable,
                         const cJSON *pObj, const char *zPath,
                         const char *zCol, int iDepth){
  const cJSON *v;
  int rc = SQLITE_OK;
  for(v=pObj->child; rc==SQLITE_OK && v; v=v->next){
    sqlite3_str *s = sqlite3_str_new(0);
    char *zSub, *zName;
    if( zCol[0] ) sqlite3_str_appendf(s, "%s_", zCol);
    kustomer_snake(s, v->string, (int)strlen(v->string));
    zName = sqlite3_str_finish(s);
    zSub = zPath[0] ? sqlite3_mprintf("%s.%s", zPath, v->string)
                    : sqlite3_mprintf("%s", v->string);
    if( zName==0 || zSub==0 ){
      rc = SQLITE_NOMEM;
    }else if( iDepth==0 && strcmp(v->string, "custom")==0
           && cJSON_IsObject(v) && p->bCustomJson ){
      /* one JSON column: no schema change when attributes come and go */
      rc = row_set(p, t, "attributes.custom", "custom", v, 0, "custom");
    }else if( iDepth==0 && strcmp(v->string, "custom")==0
           && cJSON_IsObject(v) ){
      rc = record_custom(p, t, v);
    }else if( child_def(zTable, zSub) ){
      /* a child table */
    }else if( cJSON_IsObject(v) && iDepth<2 && v->child
           && !str_in(v->string, azWhole) ){
      rc = record_object(p, t, zTable, v, zSub, zName, iDepth+1);
    }else{
      char *zFull = sqlite3_mprintf("attributes.%s", zSub);
      rc = zFull ? row_set(p, t, zFull, zName, v, v->string, "attribute")
                 : SQLITE_NOMEM;
      sqlite3_free(zFull);
    }
    sqlite3_free(zSub);
    sqlite3_free(zName);
  }
  return rc;
}

/* Relationships as columns: a to-one as its id, a to-many that is no
** link table as a JSON array of its ids. */
static int record_relationships(KSyncMap *p, MapTable *t, const char *zTable,
                                const cJSON *pRels){
  const cJSON *pRel;
  int rc = SQLITE_OK;
  for(pRel=pRels->child; rc==SQLITE_OK && pRel; pRel=pRel->next){
    const cJSON *pData = kustomer_json_member(pRel, "data");
    sqlite3_str *s;
    char *zName, *zPath;
    if( pData==0 || cJSON_IsNull(pData) ) continue;
    if( cJSON_IsArray(pData) && child_def(zTable, pRel->string) ) continue;
    s = sqlite3_str_new(0);
    kustomer_snake(s, pRel->string, (int)strlen(pRel->string));
    if( cJSON_IsArray(pData) ){
      sqlite3_str_appendall(s, "_ids");
    }else if( strcmp(pRel->string, "org")==0
           || !str_in(pRel->string, azRelPlain) ){
      sqlite3_str_appendall(s, "_id");
    }
    zName = sqlite3_str_finish(s);
    zPath = sqlite3_mprintf("relationships.%s", pRel->string);
    if( zName==0 || zPath==0 ){
      rc = SQLITE_NOMEM;
    }else if( cJSON_IsArray(pData) ){
      cJSON *pIds = cJSON_CreateArray();
      const cJSON *pItem;
      for(pItem=pData->child; pIds && pItem; pItem=pItem->next){
        const cJSON *pI = kustomer_json_member(pItem, "id");
        if( pI ) cJSON_AddItemToArray(pIds, cJSON_Duplicate(pI, 1));
      }
      rc = pIds ? row_set(p, t, zPath, zName, pIds, 0, "relationship")
                : SQLITE_NOMEM;
      cJSON_Delete(pIds);
    }else{
      const cJSON *pI = kustomer_json_member(pData, "id");
      if( pI ) rc = row_set(p, t, zPath, zName, pI, 0, "relationship");
    }
    sqlite3_free(zName);
    sqlite3_free(zPath);
  }
  return rc;
}

/* ---- Hashing and blocking -------------------------------------------------- */

static void specs_free(char **az, int n){
  int i;
  for(i=0; i<n; i++) sqlite3_free(az[i]);
  sqlite3_free(az);
}

/* A comma-separated list into an array of its trimmed items. */
static int specs_parse(const char *zList, char ***pazOut, int *pnOut){
  char **az = 0;
  int n = 0;
  const char *z = zList;
  *pazOut = 0;
  *pnOut = 0;
  while( z && *z ){
    const char *zEnd;
    int k;
    while( *z==' ' || *z==',' ) z++;
    if( *z==0 ) break;
    for(zEnd=z; *zEnd && *zEnd!=','; zEnd++){}
    k = (int)(zEnd - z);
    while( k>0 && z[k-1]==' ' ) k--;
    {
      char **a = sqlite3_realloc64(az, sizeof(char*)*(n+1));
      if( a==0 ){
        specs_free(az, n);
        return SQLITE_NOMEM;
      }
      az = a;
      az[n] = sqlite3_mprintf("%.*s", k, z);
      if( az[n]==0 ){
        specs_free(az, n);
        return SQLITE_NOMEM;
      }
      n++;
    }
    z = zEnd;
  }
  *pazOut = az;
  *pnOut = n;
  return SQLITE_OK;
}

/* Whether block= names zTable whole. */
static int map_blocked(const KSyncMap *p, const char *zTable){
  int i;
  for(i=0; i<p->nBlock; i++){
    if( strcmp(p->azBlock[i], zTable)==0 ) return 1;
  }
  return 0;
}

int kustomer_syncmap_privacy(KSyncMap *p, const char *zHash,
                             const char *zBlock, const unsigned char *aSalt,
                             int nSalt){
  int rc = specs_parse(zHash, &p->azHash, &p->nHash);
  if( rc==SQLITE_OK ) rc = specs_parse(zBlock, &p->azBlock, &p->nBlock);
  if( rc==SQLITE_OK && nSalt>0 ){
    p->aSalt = sqlite3_malloc(nSalt);
    if( p->aSalt==0 ) return SQLITE_NOMEM;
    memcpy(p->aSalt, aSalt, (size_t)nSalt);
    p->nSalt = nSalt;
  }
  return rc;
}

int kustomer_syncmap_table_kind(const char *zTable, const char **pzParent){
  const ChildDef *c;
  *pzParent = 0;
  for(c=aChildDef; c->zParent; c++){
    if( strcmp(c->zTable, zTable)==0 ){
      *pzParent = c->zParent;
      return 2;
    }
  }
  if( strcmp(zTable, "sla_version")==0 || strcmp(zTable, "kobject")==0
   || (strncmp(zTable, "kobject_", 8)==0 && zTable[8]) ){
    return 1;
  }
  return kustomer_sync_stream_find(zTable)>=0
      && strcmp(zTable, "audit_log")!=0 ? 1 : 0;
}

int kustomer_syncmap_is_key(const char *zTable, const char *zCol){
  static const char *const azSystem[] = {
    "id", "updated_at", "_record", "_synced_at", "_deleted", "index",
    "created_by", "modified_by", "deleted_by", "ended_by", "redacted_by", 0
  };
  const ChildDef *c;
  size_t n = strlen(zCol);
  if( str_in(zCol, azSystem) ) return 1;
  /* relationships (and the child tables' parent keys) end in _id */
  if( n>3 && strcmp(zCol+n-3, "_id")==0 && strcmp(zCol, "external_id")!=0 ){
    return 1;
  }
  for(c=aChildDef; c->zParent; c++){
    if( strcmp(c->zTable, zTable)==0 && c->eKind==CHILD_LINK
     && strcmp(c->zCol, zCol)==0 ){
      return 1;
    }
  }
  return 0;
}

/* Whether the marker list zKind of a record ("hashed", "blocked") holds
** zSpec: what a pass (or a rebuild) applied before is not applied again. */
static int mark_has(const cJSON *pMark, const char *zKind, const char *zSpec){
  const cJSON *pArr = kustomer_json_member(pMark, zKind);
  const cJSON *v;
  for(v = cJSON_IsArray(pArr) ? pArr->child : 0; v; v=v->next){
    if( cJSON_IsString(v) && strcmp(v->valuestring, zSpec)==0 ) return 1;
  }
  return 0;
}

static int mark_add(cJSON *pRec, const char *zKind, const char *zSpec){
  cJSON *pMark = cJSON_GetObjectItemCaseSensitive(pRec, "_sync");
  cJSON *pArr, *pS;
  if( !cJSON_IsObject(pMark) ){
    cJSON_DeleteItemFromObjectCaseSensitive(pRec, "_sync");
    pMark = cJSON_AddObjectToObject(pRec, "_sync");
    if( pMark==0 ) return SQLITE_NOMEM;
  }
  pArr = cJSON_GetObjectItemCaseSensitive(pMark, zKind);
  if( !cJSON_IsArray(pArr) ){
    cJSON_DeleteItemFromObjectCaseSensitive(pMark, zKind);
    pArr = cJSON_AddArrayToObject(pMark, zKind);
    if( pArr==0 ) return SQLITE_NOMEM;
  }
  pS = cJSON_CreateString(zSpec);
  if( pS==0 || !cJSON_AddItemToArray(pArr, pS) ){
    cJSON_Delete(pS);
    return SQLITE_NOMEM;
  }
  return SQLITE_OK;
}

/* Hash (bBlock 0) or remove (1) the member or item v of pParent. */
static int leaf_apply(KSyncMap *p, cJSON *pParent, cJSON *v, int bBlock){
  sqlite3_str *s;
  char *zText, zHex[65];
  cJSON *pNew;
  if( bBlock ){
    cJSON_Delete(cJSON_DetachItemViaPointer(pParent, v));
    return SQLITE_OK;
  }
  if( cJSON_IsNull(v) ) return SQLITE_OK;       /* NULL stays NULL */
  s = sqlite3_str_new(0);
  if( cJSON_IsString(v) ){
    sqlite3_str_appendall(s, v->valuestring);
  }else if( cJSON_IsArray(v) || cJSON_IsObject(v) ){
    kustomer_json_value(s, v);
  }else{
    kustomer_js_string(s, v);
  }
  if( sqlite3_str_errcode(s) ){
    sqlite3_free(sqlite3_str_finish(s));
    return SQLITE_NOMEM;
  }
  {
    int nText = sqlite3_str_length(s);
    zText = sqlite3_str_finish(s);
    if( kustomer_sha256_hex(p->aSalt, (size_t)p->nSalt, zText ? zText : "",
                            (size_t)nText, zHex) ){
      sqlite3_free(zText);
      map_error(p, sqlite3_mprintf("SHA-256 failed (libcrypto)"));
      return SQLITE_ERROR;
    }
    if( zText ){
      memset(zText, 0, (size_t)nText);
      sqlite3_free(zText);
    }
  }
  pNew = cJSON_CreateString(zHex);
  if( pNew==0 ) return SQLITE_NOMEM;
  /* an object's member keeps its name: it moves to the new item */
  pNew->string = v->string;
  pNew->type |= v->type & cJSON_StringIsConst;
  v->string = 0;
  if( !cJSON_ReplaceItemViaPointer(pParent, v, pNew) ){
    cJSON_Delete(pNew);
    return SQLITE_NOMEM;
  }
  return SQLITE_OK;
}

/* Apply a column spec zCol to the attributes object pObj of a main table
** zTable, naming its members as record_object() names columns. */
static int scrub_object(KSyncMap *p, const char *zTable, cJSON *pObj,
                        const char *zPath, const char *zPrefix, int iDepth,
                        const char *zCol, int bBlock){
  cJSON *v, *pNext;
  int rc = SQLITE_OK;
  for(v=pObj->child; rc==SQLITE_OK && v; v=pNext){
    sqlite3_str *s = sqlite3_str_new(0);
    char *zName, *zSub;
    pNext = v->next;
    if( zPrefix[0] ) sqlite3_str_appendf(s, "%s_", zPrefix);
    if( iDepth==0 && strcmp(v->string, "custom")==0 && cJSON_IsObject(v) ){
      sqlite3_free(sqlite3_str_finish(s));
      rc = scrub_object(p, zTable, v, "custom", "custom", 2, zCol, bBlock);
      continue;
    }
    kustomer_snake(s, v->string, (int)strlen(v->string));
    zName = sqlite3_str_finish(s);
    zSub = zPath[0] ? sqlite3_mprintf("%s.%s", zPath, v->string)
                    : sqlite3_mprintf("%s", v->string);
    if( zName==0 || zSub==0 ){
      rc = SQLITE_NOMEM;
    }else if( iDepth<=2 && child_def(zTable, zSub) ){
      /* a child table's: a spec of its own */
    }else if( strcmp(zName, zCol)==0 ){
      rc = leaf_apply(p, pObj, v, bBlock);
    }else if( cJSON_IsObject(v) && iDepth<2 && v->child
           && !str_in(v->string, azWhole)
           && strncmp(zCol, zName, strlen(zName))==0
           && zCol[strlen(zName)]=='_' ){
      rc = scrub_object(p, zTable, v, zSub, zName, iDepth+1, zCol, bBlock);
    }
    sqlite3_free(zName);
    sqlite3_free(zSub);
  }
  return rc;
}

/* The array of child table c in a record (attributes, else relationships'
** data), with the object holding it in *ppParent. */
static cJSON *child_array(cJSON *pRec, const ChildDef *c, cJSON **ppParent){
  cJSON *pAt = cJSON_GetObjectItemCaseSensitive(pRec, "attributes");
  const char *zPath = c->zPath;
  cJSON *pArr;
  while( pAt && strchr(zPath, '.') ){
    const char *zDot = strchr(zPath, '.');
    char zKey[64];
    size_t n = (size_t)(zDot - zPath);
    if( n>=sizeof(zKey) ) return 0;
    memcpy(zKey, zPath, n);
    zKey[n] = 0;
    pAt = cJSON_GetObjectItemCaseSensitive(pAt, zKey);
    zPath = zDot+1;
  }
  pArr = pAt ? cJSON_GetObjectItemCaseSensitive(pAt, zPath) : 0;
  if( pArr ){
    *ppParent = pAt;
    return pArr;
  }
  pAt = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
            pRec, "relationships"), c->zPath);
  pArr = cJSON_GetObjectItemCaseSensitive(pAt, "data");
  *ppParent = pAt;
  return pArr;
}

/* Apply spec zSpec ("table.column" or "table") to a record of zTable. */
static int scrub_one(KSyncMap *p, const char *zTable, cJSON *pRec,
                     const char *zSpec, int bBlock){
  const char *zDot = strchr(zSpec, '.');
  size_t nT = zDot ? (size_t)(zDot - zSpec) : strlen(zSpec);
  const char *zCol = zDot ? zDot+1 : 0;
  const ChildDef *c;
  cJSON *pAttr;
  if( strlen(zTable)==nT && strncmp(zTable, zSpec, nT)==0 ){
    pAttr = cJSON_GetObjectItemCaseSensitive(pRec, "attributes");
    if( zCol==0 || !cJSON_IsObject(pAttr) ) return SQLITE_OK;
    return scrub_object(p, zTable, pAttr, "", "", 0, zCol, bBlock);
  }
  for(c=aChildDef; c->zParent; c++){
    cJSON *pParent = 0, *pArr, *v, *pNext;
    int rc = SQLITE_OK;
    if( strcmp(c->zParent, zTable)!=0 || strlen(c->zTable)!=nT
     || strncmp(c->zTable, zSpec, nT)!=0 ){
      continue;
    }
    pArr = child_array(pRec, c, &pParent);
    if( pArr==0 ) return SQLITE_OK;
    if( zCol==0 || (c->eKind==CHILD_VALUES && bBlock) ){
      /* the whole child table */
      cJSON_Delete(cJSON_DetachItemViaPointer(pParent, pArr));
      return SQLITE_OK;
    }
    if( !cJSON_IsArray(pArr) ) return SQLITE_OK;
    for(v=pArr->child; rc==SQLITE_OK && v; v=pNext){
      pNext = v->next;
      if( c->eKind==CHILD_VALUES ){
        if( strcmp(c->zCol, zCol)==0 ) rc = leaf_apply(p, pArr, v, bBlock);
      }else if( c->eKind==CHILD_ITEMS && cJSON_IsObject(v) ){
        cJSON *f, *fNext;
        for(f=v->child; rc==SQLITE_OK && f; f=fNext){
          sqlite3_str *s = sqlite3_str_new(0);
          char *zName;
          fNext = f->next;
          kustomer_snake(s, f->string, (int)strlen(f->string));
          zName = sqlite3_str_finish(s);
          if( zName==0 ) rc = SQLITE_NOMEM;
          else if( strcmp(zName, zCol)==0 ) rc = leaf_apply(p, v, f, bBlock);
          sqlite3_free(zName);
        }
      }
    }
    return rc;
  }
  return SQLITE_OK;
}

/* Hash and block what the specs name in a record of zTable (and of its
** child tables), once: the record's "_sync" member says what was. */
static int record_scrub(KSyncMap *p, const char *zTable, cJSON *pRec){
  int i, k, rc = SQLITE_OK;
  for(k=0; k<2 && rc==SQLITE_OK; k++){
    char **az = k ? p->azBlock : p->azHash;
    int n = k ? p->nBlock : p->nHash;
    const char *zKind = k ? "blocked" : "hashed";
    for(i=0; i<n && rc==SQLITE_OK; i++){
      const char *zParent = 0;
      const char *zDot = strchr(az[i], '.');
      size_t nT = zDot ? (size_t)(zDot - az[i]) : strlen(az[i]);
      char zT[128];
      if( nT>=sizeof(zT) ) continue;
      memcpy(zT, az[i], nT);
      zT[nT] = 0;
      if( strcmp(zT, zTable)!=0
       && (kustomer_syncmap_table_kind(zT, &zParent)!=2
           || strcmp(zParent, zTable)!=0) ){
        continue;
      }
      if( mark_has(cJSON_GetObjectItemCaseSensitive(pRec, "_sync"), zKind,
                   az[i]) ){
        continue;
      }
      rc = scrub_one(p, zTable, pRec, az[i], k);
      if( rc==SQLITE_OK ) rc = mark_add(pRec, zKind, az[i]);
    }
  }
  return rc;
}

/* ---- History mode ----------------------------------------------------------- */

#define HIST_END "9999-12-31T23:59:59.999Z"

/* Whether history= names zTable, or (a link or value child table) its
** parent. */
static int hist_wanted(const KSyncMap *p, const MapTable *t){
  int i;
  const char *zMain = t->zName;
  if( t->pChild ){
    if( t->pChild->eKind==CHILD_ITEMS ) return 0;
    zMain = t->pChild->zParent;
  }
  for(i=0; i<p->nHist; i++){
    if( strcmp(p->azHist[i], zMain)==0 ) return 1;
  }
  return 0;
}

/* The history table of t, with t's columns (but _record) and _start,
** _end, _active; keyed (id, _start), or (parent, member, _start). */
static int hist_create(KSyncMap *p, MapTable *t){
  int bOurs, rc;
  char *zFt;
  char *zH = sqlite3_mprintf("%s_history", t->zFull);
  if( zH==0 ) return SQLITE_NOMEM;
  if( table_state(p, zH, &bOurs) ){
    if( !bOurs ){
      map_error(p, sqlite3_mprintf("table %s exists and is not this sync's: "
                                   "name the sync's tables apart with "
                                   "prefix='...'", zH));
      sqlite3_free(zH);
      return SQLITE_ERROR;
    }
    sqlite3_free(zH);
    return SQLITE_OK;
  }
  zFt = fivetran_clause(p, t->pChild ? 2 : 3);
  if( zFt==0 ){
    sqlite3_free(zH);
    return SQLITE_NOMEM;
  }
  if( t->pChild==0 ){
    rc = map_exec(p, sqlite3_mprintf("CREATE TABLE \"%w\".\"%w\"(id TEXT NOT"
                  " NULL, updated_at TEXT, _synced_at TEXT, _deleted INTEGER"
                  " NOT NULL DEFAULT 0, _start TEXT NOT NULL, _end TEXT NOT"
                  " NULL, _active INTEGER NOT NULL%s, PRIMARY KEY(id, _start))",
                  p->zDb, zH, zFt));
  }else{
    rc = map_exec(p, sqlite3_mprintf("CREATE TABLE \"%w\".\"%w\"(\"%w\" TEXT"
                  " NOT NULL, \"%w\" TEXT NOT NULL, _start TEXT NOT NULL,"
                  " _end TEXT NOT NULL, _active INTEGER NOT NULL%s,"
                  " PRIMARY KEY(\"%w\", \"%w\", _start))", p->zDb, zH,
                  t->zParentCol, t->pChild->zCol, zFt, t->zParentCol,
                  t->pChild->zCol));
  }
  sqlite3_free(zFt);
  if( rc==SQLITE_OK ){
    rc = columns_put(p, zH, "_start", "", "TEXT", "system");
  }
  if( rc==SQLITE_OK ){
    rc = columns_put(p, zH, "_end", "", "TEXT", "system");
  }
  if( rc==SQLITE_OK ){
    rc = columns_put(p, zH, "_active", "", "INTEGER", "system");
  }
  if( rc==SQLITE_OK ) rc = fivetran_record(p, zH, t->pChild ? 2 : 3);
  sqlite3_free(zH);
  return rc;
}

/* Give the history table every attribute column t has now. */
static int hist_columns(KSyncMap *p, MapTable *t){
  sqlite3_stmt *pStmt = 0;
  char *zSql;
  int i, rc;
  if( t->pChild || t->nHistCol==t->nCol ) return SQLITE_OK;
  zSql = sqlite3_mprintf("SELECT name FROM pragma_table_info(?1, ?2)");
  rc = zSql ? sqlite3_prepare_v2(p->db, zSql, -1, &pStmt, 0) : SQLITE_NOMEM;
  sqlite3_free(zSql);
  for(i=0; rc==SQLITE_OK && i<t->nCol; i++){
    char *zH = sqlite3_mprintf("%s_history", t->zFull);
    int bHas = 0;
    if( zH==0 ){
      rc = SQLITE_NOMEM;
      break;
    }
    sqlite3_bind_text(pStmt, 1, zH, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(pStmt, 2, p->zDb, -1, SQLITE_STATIC);
    while( sqlite3_step(pStmt)==SQLITE_ROW ){
      const char *z = (const char*)sqlite3_column_text(pStmt, 0);
      if( z && sqlite3_stricmp(z, t->aCol[i].zName)==0 ) bHas = 1;
    }
    sqlite3_reset(pStmt);
    if( !bHas ){
      rc = map_exec(p, sqlite3_mprintf("ALTER TABLE \"%w\".\"%w\" ADD COLUMN"
                                       " \"%w\"", p->zDb, zH,
                                       t->aCol[i].zName));
    }
    sqlite3_free(zH);
  }
  sqlite3_finalize(pStmt);
  if( rc==SQLITE_OK ) t->nHistCol = t->nCol;
  return rc;
}

/* The instant 1 ms before zAt (ISO ms text), into zOut. */
static void hist_before(const char *zAt, char *zOut){
  sqlite3_int64 ms = 0;
  kustomer_iso_ms(zAt, (int)strlen(zAt), &ms);
  kustomer_iso_format(ms-1, zOut);
}

/*
** After row zId of main table t was written: a new version when its
** updated_at differs from the active version's _start (that one ends 1 ms
** before); a deleted row closes the active version at zClose and opens
** none.
*/
static int hist_record(KSyncMap *p, MapTable *t, const char *zId,
                       int bDeleted, const char *zClose, char *zStart){
  sqlite3_stmt *pStmt = 0;
  char zEnd[KUSTOMER_ISO_LEN];
  char *zSql, *zActive = 0;
  sqlite3_str *pCols;
  int i, rc = hist_columns(p, t);
  zStart[0] = 0;
  if( rc ) return rc;
  zSql = sqlite3_mprintf("SELECT coalesce(updated_at, ?2), (SELECT _start"
                         " FROM \"%w\".\"%w_history\" WHERE id=?1 AND"
                         " _active=1) FROM \"%w\".\"%w\" WHERE id=?1",
                         p->zDb, t->zFull, p->zDb, t->zFull);
  rc = zSql ? sqlite3_prepare_v2(p->db, zSql, -1, &pStmt, 0) : SQLITE_NOMEM;
  sqlite3_free(zSql);
  if( rc ) return rc;
  sqlite3_bind_text(pStmt, 1, zId, -1, SQLITE_STATIC);
  sqlite3_bind_text(pStmt, 2, p->zNow, -1, SQLITE_STATIC);
  if( sqlite3_step(pStmt)==SQLITE_ROW ){
    const char *z = (const char*)sqlite3_column_text(pStmt, 0);
    if( z && strlen(z)<KUSTOMER_ISO_LEN ) memcpy(zStart, z, strlen(z)+1);
    if( sqlite3_column_type(pStmt, 1)==SQLITE_TEXT ){
      zActive = sqlite3_mprintf("%s", sqlite3_column_text(pStmt, 1));
    }
  }
  rc = sqlite3_finalize(pStmt);
  if( rc || zStart[0]==0 || (!bDeleted && zActive
                             && strcmp(zActive, zStart)==0) ){
    sqlite3_free(zActive);
    if( bDeleted ) zStart[0] = 0;
    return rc;
  }
  if( zActive ){
    if( bDeleted ) memcpy(zEnd, zClose, KUSTOMER_ISO_LEN);
    else hist_before(zStart, zEnd);
    if( strcmp(zEnd, zActive)<0 ) memcpy(zEnd, zActive, KUSTOMER_ISO_LEN);
    rc = map_exec(p, sqlite3_mprintf("UPDATE \"%w\".\"%w_history\" SET"
                  " _end=%Q, _active=0 WHERE id=%Q AND _active=1", p->zDb,
                  t->zFull, zEnd, zId));
  }
  sqlite3_free(zActive);
  if( rc || bDeleted ){
    zStart[0] = 0;
    return rc;
  }
  pCols = sqlite3_str_new(0);
  sqlite3_str_appendall(pCols, "id, updated_at, _synced_at, _deleted");
  for(i=0; i<t->nCol; i++){
    if( strcmp(t->aCol[i].zName, "updated_at")==0 ) continue;
    sqlite3_str_appendf(pCols, ", \"%w\"", t->aCol[i].zName);
  }
  zSql = sqlite3_str_finish(pCols);
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = map_exec(p, sqlite3_mprintf("INSERT OR REPLACE INTO \"%w\".\"%w_history\""
                "(%s, _start, _end, _active) SELECT %s, %Q, '" HIST_END "', 1"
                " FROM \"%w\".\"%w\" WHERE id=%Q", p->zDb, t->zFull, zSql,
                zSql, zStart, p->zDb, t->zFull, zId));
  sqlite3_free(zSql);
  return rc;
}

/* After the child rows of parent zId were replaced: members that left
** end at zClose, members that joined start at zStart. */
static int hist_children(KSyncMap *p, MapTable *c, const char *zId,
                         const char *zStart, const char *zClose){
  const char *zK = c->pChild->zCol, *zP = c->zParentCol;
  int rc = map_exec(p, sqlite3_mprintf("UPDATE \"%w\".\"%w_history\" SET"
                " _end=%Q, _active=0 WHERE \"%w\"=%Q AND _active=1 AND NOT"
                " EXISTS (SELECT 1 FROM \"%w\".\"%w\" AS c WHERE c.\"%w\"=%Q"
                " AND c.\"%w\"=\"%w_history\".\"%w\" AND c._deleted=0)",
                p->zDb, c->zFull, zClose, zP, zId, p->zDb, c->zFull, zP, zId,
                zK, c->zFull, zK));
  if( rc==SQLITE_OK && zStart && zStart[0] ){
    rc = map_exec(p, sqlite3_mprintf("INSERT OR IGNORE INTO"
                  " \"%w\".\"%w_history\"(\"%w\", \"%w\", _start, _end,"
                  " _active) SELECT DISTINCT \"%w\", \"%w\", %Q, '" HIST_END
                  "', 1 FROM \"%w\".\"%w\" AS c WHERE c.\"%w\"=%Q AND"
                  " c._deleted=0 AND c.\"%w\" IS NOT NULL AND NOT EXISTS"
                  " (SELECT 1 FROM \"%w\".\"%w_history\" AS h WHERE"
                  " h.\"%w\"=%Q AND h.\"%w\"=c.\"%w\" AND h._active=1)",
                  p->zDb, c->zFull, zP, zK, zP, zK, zStart, p->zDb, c->zFull,
                  zP, zId, zK, p->zDb, c->zFull, zP, zId, zK, zK));
  }
  return rc;
}

/* Close the active versions of deleted rows (a sweep, the audit log):
** zWhere selects the main table's ids. */
static int hist_close_deleted(KSyncMap *p, MapTable *t, const char *zIn){
  const ChildDef *c;
  int rc;
  if( !t->bHist ) return SQLITE_OK;
  rc = map_exec(p, sqlite3_mprintf("UPDATE \"%w\".\"%w_history\" SET _end=%Q,"
                " _active=0 WHERE _active=1 AND id IN (%s)", p->zDb, t->zFull,
                p->zNow, zIn));
  for(c=aChildDef; rc==SQLITE_OK && c->zParent; c++){
    MapTable *pC;
    if( strcmp(c->zParent, t->zName)!=0 || c->eKind==CHILD_ITEMS ) continue;
    if( map_blocked(p, c->zTable) ) continue;
    rc = table_get(p, c->zTable, c, t->zName, &pC);
    if( rc==SQLITE_OK && pC->bHist ){
      rc = map_exec(p, sqlite3_mprintf("UPDATE \"%w\".\"%w_history\" SET"
                    " _end=%Q, _active=0 WHERE _active=1 AND \"%w\" IN (%s)",
                    p->zDb, pC->zFull, p->zNow, pC->zParentCol, zIn));
    }
  }
  return rc;
}

int kustomer_syncmap_history(KSyncMap *p, const char *zList){
  return specs_parse(zList, &p->azHist, &p->nHist);
}

void kustomer_syncmap_custom_json(KSyncMap *p, int bJson){
  p->bCustomJson = bJson;
}

void kustomer_syncmap_fivetran(KSyncMap *p, int bFivetran){
  p->bFivetran = bFivetran;
}

int kustomer_syncmap_record(KSyncMap *p, const char *zTable,
                            const char *zParent, const char *zKlass,
                            const cJSON *pRec, int *pbDeleted){
  const cJSON *pId = kustomer_json_member(pRec, "id");
  const cJSON *pAttr = kustomer_json_member(pRec, "attributes");
  const cJSON *pRels = kustomer_json_member(pRec, "relationships");
  char *zId = 0, *zRecord = 0;
  MapTable *t;
  const ChildDef *c;
  int rc, bApplied = 0;
  int bDeleted = kustomer_js_truthy(kustomer_json_member(pAttr, "deleted"));
  char zStart[KUSTOMER_ISO_LEN], zClose[KUSTOMER_ISO_LEN];
  zStart[0] = 0;
  memcpy(zClose, p->zNow, KUSTOMER_ISO_LEN);
  sqlite3_str *s;

  *pbDeleted = bDeleted;
  if( !cJSON_IsString(pId) && !cJSON_IsNumber(pId) ){
    map_error(p, sqlite3_mprintf("a %s record has no id", zTable));
    return SQLITE_ERROR;
  }
  if( zParent==0 ) zParent = zTable;
  if( p->nHash || p->nBlock ){
    /* before anything is written: no cleartext reaches a column, a child
    ** row or _record, of this table or the others the record goes to */
    cJSON *pMut = (cJSON*)pRec;
    rc = record_scrub(p, zTable, pMut);
    if( rc==SQLITE_OK && zParent!=zTable ) rc = record_scrub(p, zParent, pMut);
    if( rc==SQLITE_OK && zKlass ){
      sqlite3_str *pK = sqlite3_str_new(0);
      char *zK;
      sqlite3_str_appendall(pK, "kobject_");
      kustomer_snake(pK, zKlass, (int)strlen(zKlass));
      zK = sqlite3_str_finish(pK);
      rc = zK ? record_scrub(p, zK, pMut) : SQLITE_NOMEM;
      sqlite3_free(zK);
    }
    if( rc ) return rc;
    pAttr = kustomer_json_member(pRec, "attributes");
    pRels = kustomer_json_member(pRec, "relationships");
  }
  rc = table_get(p, zTable, 0, 0, &t);
  if( rc ) return rc;
  s = sqlite3_str_new(0);
  kustomer_js_string(s, pId);
  zId = sqlite3_str_finish(s);
  if( zId==0 ) return SQLITE_NOMEM;
  if( p->bRecord ){
    s = sqlite3_str_new(0);
    kustomer_json_value(s, pRec);
    zRecord = sqlite3_str_finish(s);
    if( zRecord==0 ) rc = SQLITE_NOMEM;
  }
  if( rc==SQLITE_OK && zKlass ){
    cJSON *pK = cJSON_CreateString(zKlass);
    rc = pK ? row_set(p, t, "klass", "klass_name", pK, 0, "klass")
            : SQLITE_NOMEM;
    cJSON_Delete(pK);
  }
  if( rc==SQLITE_OK && cJSON_IsObject(pAttr) ){
    rc = record_object(p, t, zParent, pAttr, "", "", 0);
  }
  if( rc==SQLITE_OK && cJSON_IsObject(pRels) ){
    rc = record_relationships(p, t, zParent, pRels);
  }
  /* the main row first; its child rows only if it was written */
  if( rc==SQLITE_OK ){
    rc = row_write(p, t, zId, 0, 0, zRecord, bDeleted, &bApplied);
  }else{
    row_reset(t);
  }
  if( rc==SQLITE_OK && bApplied && t->bHist ){
    /* a delete closes the active version at deletedAt (else now) */
    const cJSON *pDelAt = kustomer_json_member(pAttr, "deletedAt");
    sqlite3_int64 ms;
    memcpy(zClose, p->zNow, KUSTOMER_ISO_LEN);
    if( cJSON_IsString(pDelAt)
     && kustomer_iso_ms(pDelAt->valuestring, (int)strlen(pDelAt->valuestring),
                        &ms) ){
      kustomer_iso_format(ms, zClose);
    }
    rc = hist_record(p, t, zId, bDeleted, zClose, zStart);
    if( rc==SQLITE_OK && !bDeleted && zStart[0] ){
      hist_before(zStart, zClose);
    }
  }
  if( rc==SQLITE_OK && bApplied && strcmp(zTable, "customer")==0 ){
    /* the outbox updates these customers without looking them up */
    rc = kustomer_idmap_record(p->pIds, zId, pAttr, bDeleted);
  }
  for(c=aChildDef; rc==SQLITE_OK && bApplied && c->zParent; c++){
    const cJSON *pArr;
    if( strcmp(c->zParent, zParent)!=0 || zTable!=zParent ) continue;
    if( p->nBlock && map_blocked(p, c->zTable) ) continue;
    pArr = json_path(pAttr, c->zPath);
    if( pArr==0 ){
      pArr = kustomer_json_member(kustomer_json_member(pRels, c->zPath),
                                  "data");
    }
    rc = record_children(p, zParent, c, zId, pArr, bDeleted);
    if( rc==SQLITE_OK && t->bHist ){
      MapTable *pC = table_find(p, c->zTable);
      if( pC && pC->bHist ){
        rc = hist_children(p, pC, zId, bDeleted ? 0 : zStart, zClose);
      }
    }
  }
  sqlite3_free(zId);
  sqlite3_free(zRecord);
  return rc;
}

/* ---- Opening, pages, sweeps ------------------------------------------------ */

int kustomer_syncmap_open(sqlite3 *db, const char *zDb, const char *zSync,
                          const char *zPrefix, int bRecord, KSyncMap **ppOut){
  KSyncMap *p = sqlite3_malloc(sizeof(*p));
  *ppOut = 0;
  if( p==0 ) return SQLITE_NOMEM;
  memset(p, 0, sizeof(*p));
  p->db = db;
  p->bRecord = bRecord;
  p->zDb = sqlite3_mprintf("%s", zDb);
  p->zSync = sqlite3_mprintf("%s", zSync);
  p->zPrefix = sqlite3_mprintf("%s", zPrefix ? zPrefix : "");
  if( p->zDb==0 || p->zSync==0 || p->zPrefix==0 ){
    kustomer_syncmap_close(p);
    return SQLITE_NOMEM;
  }
  if( kustomer_idmap_open(db, &p->pIds) ){
    kustomer_syncmap_close(p);
    return SQLITE_NOMEM;
  }
  kustomer_syncmap_now(p);
  *ppOut = p;
  return SQLITE_OK;
}

void kustomer_syncmap_close(KSyncMap *p){
  if( p==0 ) return;
  while( p->pTables ){
    MapTable *t = p->pTables;
    p->pTables = t->pNext;
    table_free(t);
  }
  sqlite3_finalize(p->pColIns);
  kustomer_idmap_close(p->pIds);
  specs_free(p->azHash, p->nHash);
  specs_free(p->azBlock, p->nBlock);
  specs_free(p->azHist, p->nHist);
  if( p->aSalt ){
    memset(p->aSalt, 0, (size_t)p->nSalt);
    sqlite3_free(p->aSalt);
  }
  sqlite3_free(p->zDb);
  sqlite3_free(p->zSync);
  sqlite3_free(p->zPrefix);
  sqlite3_free(p->zErr);
  sqlite3_free(p);
}

void kustomer_syncmap_forget(KSyncMap *p){
  /* after a rollback: what was added may not exist; read it again */
  kustomer_idmap_reset(p->pIds);
  while( p->pTables ){
    MapTable *t = p->pTables;
    p->pTables = t->pNext;
    table_free(t);
  }
}

const char *kustomer_syncmap_now(KSyncMap *p){
  kustomer_iso_format((sqlite3_int64)(kustomer_wall()*1000), p->zNow);
  return p->zNow;
}

int kustomer_syncmap_table(KSyncMap *p, const char *zTable){
  MapTable *t;
  const ChildDef *c;
  int rc = table_get(p, zTable, 0, 0, &t);
  /* and its child tables, so that joins over them work before any row */
  for(c=aChildDef; rc==SQLITE_OK && c->zParent; c++){
    MapTable *pC;
    if( strcmp(c->zParent, zTable)==0 && !map_blocked(p, c->zTable) ){
      rc = table_get(p, c->zTable, c, zTable, &pC);
    }
  }
  return rc;
}

/* Mark the child rows of zTable's rows that zParentIn selects (SQL: a
** list or a subquery of parent ids) as deleted. */
static int children_mark(KSyncMap *p, const char *zTable,
                         const char *zParentIn){
  const ChildDef *c;
  int rc = SQLITE_OK;
  for(c=aChildDef; rc==SQLITE_OK && c->zParent; c++){
    MapTable *pC;
    int bOurs;
    char *zFull;
    if( strcmp(c->zParent, zTable)!=0 ) continue;
    zFull = sqlite3_mprintf("%s%s", p->zPrefix, c->zTable);
    if( zFull==0 ) return SQLITE_NOMEM;
    if( table_state(p, zFull, &bOurs) && bOurs ){
      rc = table_get(p, c->zTable, c, zTable, &pC);
      if( rc==SQLITE_OK ){
        rc = map_exec(p, sqlite3_mprintf("UPDATE \"%w\".\"%w\" SET"
                      " _deleted=1, _synced_at=%Q WHERE _deleted=0 AND \"%w\""
                      " IN (%s)", p->zDb, pC->zFull, p->zNow, pC->zParentCol,
                      zParentIn));
      }
    }
    sqlite3_free(zFull);
  }
  return rc;
}

int kustomer_syncmap_sweep(KSyncMap *p, const char *zTable,
                           const char *zSince, int *pnSwept){
  MapTable *t;
  char *zIn;
  int rc = table_get(p, zTable, 0, 0, &t);
  *pnSwept = 0;
  if( rc ) return rc;
  rc = map_exec(p, sqlite3_mprintf("UPDATE \"%w\".\"%w\" SET _deleted=1,"
                                   " _synced_at=%Q WHERE _deleted=0 AND"
                                   " (_synced_at IS NULL OR _synced_at<%Q)",
                                   p->zDb, t->zFull, p->zNow, zSince));
  if( rc ) return rc;
  *pnSwept = sqlite3_changes(p->db);
  /* the children of the rows swept */
  zIn = sqlite3_mprintf("SELECT id FROM \"%w\".\"%w\" WHERE _deleted=1",
                        p->zDb, t->zFull);
  rc = zIn ? children_mark(p, zTable, zIn) : SQLITE_NOMEM;
  if( rc==SQLITE_OK && zIn ) rc = hist_close_deleted(p, t, zIn);
  sqlite3_free(zIn);
  return rc;
}

int kustomer_syncmap_mark_deleted(KSyncMap *p, const char *zTable,
                                  const char *zId, int *pnMarked){
  MapTable *t;
  char *zFull, *zIn;
  int bOurs, rc;
  *pnMarked = 0;
  zFull = sqlite3_mprintf("%s%s", p->zPrefix, zTable);
  if( zFull==0 ) return SQLITE_NOMEM;
  bOurs = 0;
  if( !table_state(p, zFull, &bOurs) || !bOurs ){
    sqlite3_free(zFull);
    return SQLITE_OK;       /* a table this sync does not keep */
  }
  sqlite3_free(zFull);
  rc = table_get(p, zTable, 0, 0, &t);
  if( rc ) return rc;
  rc = map_exec(p, sqlite3_mprintf("UPDATE \"%w\".\"%w\" SET _deleted=1,"
                                   " _synced_at=%Q WHERE id=%Q AND _deleted=0",
                                   p->zDb, t->zFull, p->zNow, zId));
  if( rc ) return rc;
  *pnMarked = sqlite3_changes(p->db);
  if( strcmp(zTable, "customer")==0 ){
    rc = kustomer_idmap_forget(p->pIds, zId);
    if( rc ) return rc;
  }
  zIn = sqlite3_mprintf("%Q", zId);
  rc = zIn ? children_mark(p, zTable, zIn) : SQLITE_NOMEM;
  if( rc==SQLITE_OK && zIn && *pnMarked ) rc = hist_close_deleted(p, t, zIn);
  sqlite3_free(zIn);
  return rc;
}

/* One row of a table being rebuilt. */
typedef struct RebuildRow RebuildRow;
struct RebuildRow {
  char *zId, *zRecord, *zSynced, *zKlass;
  int bDeleted;
};

#define REBUILD_BATCH 256

/* Rebuild the rows of one main table (zTable, without the prefix) from
** their _record, REBUILD_BATCH at a time in id order (no statement reads
** the table while it is written). */
static int rebuild_table(KSyncMap *p, const char *zTable, int *pnRows){
  const char *zParent = strncmp(zTable, "kobject_", 8)==0 ? "kobject" : 0;
  int bKobject = strcmp(zTable, "kobject")==0;
  RebuildRow aRow[REBUILD_BATCH];
  char *zLast = 0;
  int rc = SQLITE_OK, n, i;
  do{
    sqlite3_stmt *pSel = 0;
    char *zSql = sqlite3_mprintf("SELECT id, _record, _synced_at, _deleted%s"
                                 " FROM \"%w\".\"%w%w\" WHERE ?1 IS NULL OR"
                                 " id>?1 ORDER BY id LIMIT %d",
                                 bKobject ? ", klass_name" : "", p->zDb,
                                 p->zPrefix, zTable, REBUILD_BATCH);
    n = 0;
    rc = zSql ? sqlite3_prepare_v2(p->db, zSql, -1, &pSel, 0) : SQLITE_NOMEM;
    sqlite3_free(zSql);
    if( rc==SQLITE_OK ){
      sqlite3_bind_text(pSel, 1, zLast, -1, SQLITE_STATIC);
      while( n<REBUILD_BATCH && sqlite3_step(pSel)==SQLITE_ROW ){
        RebuildRow *r = &aRow[n++];
        memset(r, 0, sizeof(*r));
        r->zId = sqlite3_mprintf("%s", sqlite3_column_text(pSel, 0));
        if( sqlite3_column_type(pSel, 1)==SQLITE_TEXT ){
          r->zRecord = sqlite3_mprintf("%s", sqlite3_column_text(pSel, 1));
        }
        if( sqlite3_column_type(pSel, 2)==SQLITE_TEXT ){
          r->zSynced = sqlite3_mprintf("%s", sqlite3_column_text(pSel, 2));
        }
        r->bDeleted = sqlite3_column_int(pSel, 3);
        if( bKobject && sqlite3_column_type(pSel, 4)==SQLITE_TEXT ){
          r->zKlass = sqlite3_mprintf("%s", sqlite3_column_text(pSel, 4));
        }
        if( r->zId==0 ) rc = SQLITE_NOMEM;
      }
      if( rc==SQLITE_OK ) rc = sqlite3_finalize(pSel);
      else sqlite3_finalize(pSel);
    }
    for(i=0; i<n; i++){
      RebuildRow *r = &aRow[i];
      cJSON *pRec = 0;
      int bDel = 0, nMarked = 0;
      if( rc==SQLITE_OK && r->zRecord ){
        char *zErr = 0;
        pRec = kustomer_json_parse(r->zRecord, (int)strlen(r->zRecord), &zErr);
        if( pRec==0 ){
          map_error(p, sqlite3_mprintf("%s%s row %s: _record %s", p->zPrefix,
                                       zTable, r->zId, zErr ? zErr
                                       : "is not JSON"));
          rc = zErr ? SQLITE_ERROR : SQLITE_NOMEM;
          sqlite3_free(zErr);
        }
      }
      if( rc==SQLITE_OK && pRec ){
        /* the row keeps when it was synced (a pass's sweep reads it) and
        ** whether a sweep or the audit log found it deleted */
        if( r->zSynced && strlen(r->zSynced)==KUSTOMER_ISO_LEN-1 ){
          memcpy(p->zNow, r->zSynced, KUSTOMER_ISO_LEN);
        }else{
          kustomer_syncmap_now(p);
        }
        rc = kustomer_syncmap_record(p, zTable, zParent, r->zKlass, pRec,
                                     &bDel);
        if( rc==SQLITE_OK && r->bDeleted && !bDel ){
          rc = kustomer_syncmap_mark_deleted(p, zTable, r->zId, &nMarked);
        }
        if( rc==SQLITE_OK ) (*pnRows)++;
      }
      cJSON_Delete(pRec);
      if( i==n-1 && rc==SQLITE_OK ){
        sqlite3_free(zLast);
        zLast = r->zId;
        r->zId = 0;
      }
      sqlite3_free(r->zId);
      sqlite3_free(r->zRecord);
      sqlite3_free(r->zSynced);
      sqlite3_free(r->zKlass);
    }
  }while( rc==SQLITE_OK && n==REBUILD_BATCH );
  sqlite3_free(zLast);
  kustomer_syncmap_now(p);
  return rc;
}

int kustomer_syncmap_rebuild(KSyncMap *p, int *pnRows){
  sqlite3_stmt *pStmt = 0;
  char **azTable = 0;
  int nTable = 0, i, rc;
  char *zSql = sqlite3_mprintf("SELECT table_name FROM \"%w\".\"%w_columns\""
                               " WHERE column_name='_record'"
                               " ORDER BY table_name", p->zDb, p->zSync);
  size_t nPrefix = strlen(p->zPrefix);
  *pnRows = 0;
  rc = zSql ? sqlite3_prepare_v2(p->db, zSql, -1, &pStmt, 0) : SQLITE_NOMEM;
  sqlite3_free(zSql);
  while( rc==SQLITE_OK && sqlite3_step(pStmt)==SQLITE_ROW ){
    const char *z = (const char*)sqlite3_column_text(pStmt, 0);
    char **a;
    if( z==0 || strncmp(z, p->zPrefix, nPrefix)!=0 ) continue;
    a = sqlite3_realloc64(azTable, sizeof(char*)*(nTable+1));
    if( a==0 ){
      rc = SQLITE_NOMEM;
      break;
    }
    azTable = a;
    azTable[nTable] = sqlite3_mprintf("%s", z + nPrefix);
    if( azTable[nTable]==0 ) rc = SQLITE_NOMEM;
    else nTable++;
  }
  sqlite3_finalize(pStmt);
  for(i=0; i<nTable; i++){
    /* kobject before the klasses' tables, which it names */
    if( rc==SQLITE_OK ) rc = rebuild_table(p, azTable[i], pnRows);
    sqlite3_free(azTable[i]);
  }
  sqlite3_free(azTable);
  return rc;
}

int kustomer_syncmap_stored(KSyncMap *p, const char *zTable, const char *zId,
                            const char *zUpdatedAt){
  MapTable *t;
  sqlite3_stmt *pStmt = 0;
  char *zSql;
  int bSame = 0;
  if( table_get(p, zTable, 0, 0, &t) ) return 0;
  zSql = sqlite3_mprintf("SELECT updated_at IS ?2 FROM \"%w\".\"%w\""
                         " WHERE id=?1", p->zDb, t->zFull);
  if( zSql && sqlite3_prepare_v2(p->db, zSql, -1, &pStmt, 0)==SQLITE_OK ){
    sqlite3_bind_text(pStmt, 1, zId, -1, SQLITE_STATIC);
    sqlite3_bind_text(pStmt, 2, zUpdatedAt, -1, SQLITE_STATIC);
    if( sqlite3_step(pStmt)==SQLITE_ROW ) bSame = sqlite3_column_int(pStmt, 0);
  }
  sqlite3_finalize(pStmt);
  sqlite3_free(zSql);
  return bSame;
}

int kustomer_syncmap_child_tables(const char *zParent, const char **azOut,
                                  int nMax){
  const ChildDef *c;
  int n = 0;
  for(c=aChildDef; c->zParent; c++){
    if( strcmp(c->zParent, zParent)==0 && n<nMax ) azOut[n++] = c->zTable;
  }
  return n;
}
