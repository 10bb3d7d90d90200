/*
** kustomer_check(event [, settings]): one row per reason Kustomer would
** reject or misread an event.  No rows means the event is clean.
**
**   SELECT rule, count(*) FROM events, kustomer_check(events.payload)
**   GROUP BY rule;
**
** Columns: path (a JSON path into the event), rule, severity ('error':
** Kustomer rejects it; 'warning': accepted but misread or lost), message.
** With advancedTransform in the settings, the transformed payload is
** checked, so the rows show what is left after RudderStack's fixes.
*/
#include <string.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

/* ---- Rows --------------------------------------------------------------- */

typedef struct CheckRow CheckRow;
struct CheckRow {
  char *zPath;
  const char *zRule;
  const char *zSeverity;
  char *zMessage;
};

typedef struct CheckCursor CheckCursor;
struct CheckCursor {
  sqlite3_vtab_cursor base;
  int nRow, nAlloc;
  int iRow;
  CheckRow *aRow;
  int rc;                   /* first allocation failure while adding rows */
  KSettings *pSet;          /* the last call's settings, parsed once for */
  char *zSet;               /* ... this text (NULL: no settings argument) */
  int nSet;
};

static void check_reset(CheckCursor *pCur){
  int i;
  for(i=0; i<pCur->nRow; i++){
    sqlite3_free(pCur->aRow[i].zPath);
    sqlite3_free(pCur->aRow[i].zMessage);
  }
  sqlite3_free(pCur->aRow);
  pCur->aRow = 0;
  pCur->nRow = pCur->nAlloc = 0;
  pCur->iRow = 0;
  pCur->rc = SQLITE_OK;
}

/* Add a row; zPath and zMessage come from sqlite3_mprintf (owned). */
static void check_add(CheckCursor *pCur, char *zPath, const char *zRule,
                      const char *zSeverity, char *zMessage){
  if( pCur->rc==SQLITE_OK && (zPath==0 || zMessage==0) ){
    pCur->rc = SQLITE_NOMEM;
  }
  if( pCur->rc==SQLITE_OK && pCur->nRow==pCur->nAlloc ){
    int nNew = pCur->nAlloc ? pCur->nAlloc*2 : 8;
    CheckRow *aNew = sqlite3_realloc64(pCur->aRow, sizeof(CheckRow)*nNew);
    if( aNew==0 ){
      pCur->rc = SQLITE_NOMEM;
    }else{
      pCur->aRow = aNew;
      pCur->nAlloc = nNew;
    }
  }
  if( pCur->rc!=SQLITE_OK ){
    sqlite3_free(zPath);
    sqlite3_free(zMessage);
    return;
  }
  pCur->aRow[pCur->nRow].zPath = zPath;
  pCur->aRow[pCur->nRow].zRule = zRule;
  pCur->aRow[pCur->nRow].zSeverity = zSeverity;
  pCur->aRow[pCur->nRow].zMessage = zMessage;
  pCur->nRow++;
}

/* The JSON path of a member, quoting keys that are not plain names as
** SQLite's json_each() does. */
static char *member_path(const char *zParent, const char *zKey){
  const char *z = zKey;
  int bPlain = (*z!=0 && !(*z>='0' && *z<='9'));
  for(; *z && bPlain; z++){
    char c = *z;
    bPlain = (c>='a' && c<='z') || (c>='A' && c<='Z') || (c>='0' && c<='9')
          || c=='_';
  }
  if( bPlain ) return sqlite3_mprintf("%s.%s", zParent, zKey);
  {
    sqlite3_str *p = sqlite3_str_new(0);
    sqlite3_str_appendf(p, "%s.", zParent);
    kustomer_json_string(p, zKey, strlen(zKey));
    return sqlite3_str_finish(p);
  }
}

static void check_event(CheckCursor *pCur, const cJSON *pEvent,
                        const KSettings *pSet){
  KError err = {0, 0};
  int eType = kustomer_event_type(pEvent, &err);
  const cJSON *pProps;
  KMeta meta;
  int i, rc, eOff = kustomer_integration_off(pEvent);

  if( eOff ){
    check_add(pCur, sqlite3_mprintf("$.integrations"), "integration_disabled",
              "warning", sqlite3_mprintf("%s: RudderStack and Segment never "
              "give this message to the Kustomer destination",
              eOff==1 ? "integrations.Kustomer is false"
                      : "integrations.All is false and Kustomer is not "
                        "turned on"));
  }
  if( eType<0 ){
    const char *zRule = "unsupported_type";
    const char *zPath = "$.type";
    if( eType==SQLITE_NOMEM ){ pCur->rc = SQLITE_NOMEM; return; }
    if( !cJSON_IsObject(pEvent) ){
      zRule = "not_an_object";
      zPath = "$";
    }else if( !kustomer_js_truthy(kustomer_json_member(pEvent, "type")) ){
      zRule = "missing_type";
    }
    check_add(pCur, sqlite3_mprintf("%s", zPath), zRule, "error",
              sqlite3_mprintf("%s", err.zMsg));
    kustomer_error_clear(&err);
    return;
  }
  if( kustomer_user_id(pEvent)==0 ){
    check_add(pCur, sqlite3_mprintf("$.userId"), "missing_user_id", "error",
              sqlite3_mprintf("no userId or anonymousId: %s",
                  eType==KTYPE_IDENTIFY ?
                  "the customer cannot be created (Missing required value "
                  "from \"userId\")" :
                  "the event is sent with a null externalId"));
  }
  if( eType==KTYPE_IDENTIFY ) return;

  /* The event name as it would be sent. */
  {
    sqlite3_str *pName = sqlite3_str_new(0);
    const char *zNamePath = eType==KTYPE_TRACK ? "$.event" : "$.name";
    rc = kustomer_event_name_write(pName, pEvent, eType, pSet, &err);
    if( rc==KUSTOMER_EVENT_ERROR ){
      const cJSON *pEv = kustomer_json_member(pEvent, "event");
      check_add(pCur, sqlite3_mprintf("%s", zNamePath),
                kustomer_acceptable(pEv) ? "event_name_not_string"
                                         : "missing_event_name",
                "error", sqlite3_mprintf("%s", err.zMsg));
      kustomer_error_clear(&err);
    }else if( rc!=SQLITE_OK || sqlite3_str_errcode(pName) ){
      pCur->rc = SQLITE_NOMEM;
    }else{
      const char *zName = sqlite3_str_value(pName);
      const cJSON *pEv = kustomer_json_member(pEvent, "event");
      if( eType==KTYPE_TRACK && !cJSON_IsString(pEv) ){
        check_add(pCur, sqlite3_mprintf("%s", zNamePath),
                  "event_name_not_string", "error",
                  sqlite3_mprintf("event name is a %s, not a string",
                                  kustomer_json_type(pEv)));
      }else if( zName && kustomer_has_space(zName, strlen(zName)) ){
        check_add(pCur, sqlite3_mprintf("%s", zNamePath),
                  "event_name_spaces", "error",
                  sqlite3_mprintf("event name %Q contains whitespace, which "
                                  "Kustomer rejects", zName));
      }
    }
    sqlite3_free(sqlite3_str_finish(pName));
  }

  pProps = kustomer_json_member(pEvent, "properties");
  if( kustomer_acceptable(pProps) && !cJSON_IsObject(pProps) ){
    check_add(pCur, sqlite3_mprintf("$.properties"), "properties_not_object",
              pSet->bAdvanced ? "warning" : "error",
              sqlite3_mprintf(pSet->bAdvanced ?
                  "properties is not an object (%s): meta is sent empty" :
                  "properties is not an object (%s): Kustomer's meta must "
                  "be an object", kustomer_json_type(pProps)));
  }
  rc = kustomer_meta_plan(pProps, pSet->bAdvanced,
                          pSet->bIdentityEmail && pSet->bDisableEmail, &meta);
  if( rc!=SQLITE_OK ){
    pCur->rc = rc;
    kustomer_meta_free(&meta);
    return;
  }
  for(i=0; i<meta.nItem; i++){
    const KMetaItem *pItem = &meta.aItem[i];
    const KProblem *pP = kustomer_meta_item_problem(pItem);
    if( pP==0 ) continue;
    if( pItem->eFate==KFATE_SENT && pItem->zKey!=pItem->pSrc->string
     && strcmp(pItem->zKey, pItem->pSrc->string)!=0 ){
      check_add(pCur, member_path("$.properties", pItem->pSrc->string),
                pP->zRule, pP->zSeverity,
                sqlite3_mprintf("%s (sent as %Q)", pP->zMessage,
                                pItem->zKey));
    }else{
      check_add(pCur, member_path("$.properties", pItem->pSrc->string),
                pP->zRule, pP->zSeverity,
                sqlite3_mprintf("%s", pP->zMessage));
    }
  }
  kustomer_meta_free(&meta);
}

/* ---- The virtual table -------------------------------------------------- */

#define CHECK_PATH     0
#define CHECK_RULE     1
#define CHECK_SEVERITY 2
#define CHECK_MESSAGE  3
#define CHECK_EVENT    4   /* HIDDEN: argument 1 */
#define CHECK_SETTINGS 5   /* HIDDEN: argument 2 */

static int check_connect(sqlite3 *db, void *pAux, int argc,
                         const char *const *argv, sqlite3_vtab **ppVtab,
                         char **pzErr){
  (void)pAux; (void)argc; (void)argv; (void)pzErr;
  return kustomer_tvf_connect_pure(db,
      "CREATE TABLE x(path TEXT, rule TEXT, severity TEXT, message TEXT,"
      " event HIDDEN, settings HIDDEN)", ppVtab);
}

static int check_best_index(sqlite3_vtab *pVtab, sqlite3_index_info *pInfo){
  static const char *const azArg[] = { "event", "settings" };
  return kustomer_tvf_best_index(pVtab, pInfo, CHECK_EVENT, 2, 1, "kustomer_check",
                                 azArg, 10.0);
}

static int check_open(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCur){
  CheckCursor *pCur = sqlite3_malloc(sizeof(*pCur));
  (void)pVtab;
  if( pCur==0 ) return SQLITE_NOMEM;
  memset(pCur, 0, sizeof(*pCur));
  *ppCur = &pCur->base;
  return SQLITE_OK;
}

/* The settings of a call: those of the last call when they are the same
** text (a join calls once per row with one settings string). */
static int check_settings(CheckCursor *pCur, sqlite3_value *pVal,
                          KSettings **ppSet){
  const char *z = 0;
  int n = 0, rc;
  if( pVal && sqlite3_value_type(pVal)==SQLITE_NULL ) pVal = 0;
  if( pVal && sqlite3_value_type(pVal)==SQLITE_TEXT ){
    z = (const char*)sqlite3_value_text(pVal);
    if( z==0 ) return SQLITE_NOMEM;
    n = sqlite3_value_bytes(pVal);
  }
  if( pCur->pSet && ((pVal==0 && pCur->zSet==0)
                  || (z && pCur->zSet && pCur->nSet==n
                      && memcmp(pCur->zSet, z, (size_t)n)==0)) ){
    *ppSet = pCur->pSet;
    return SQLITE_OK;
  }
  rc = kustomer_vtab_settings(pCur->base.pVtab, "kustomer_check", 2, pVal,
                              ppSet);
  if( rc ) return rc;
  kustomer_settings_free(pCur->pSet);
  sqlite3_free(pCur->zSet);
  pCur->pSet = *ppSet;
  pCur->zSet = 0;
  pCur->nSet = 0;
  if( z ){
    pCur->zSet = sqlite3_malloc(n+1);
    if( pCur->zSet==0 ){
      pCur->pSet = 0;       /* not cached: the caller frees it */
      return SQLITE_OK;
    }
    memcpy(pCur->zSet, z, n);
    pCur->nSet = n;
  }
  return SQLITE_OK;
}

static int check_close(sqlite3_vtab_cursor *cur){
  CheckCursor *pCur = (CheckCursor*)cur;
  check_reset(pCur);
  kustomer_settings_free(pCur->pSet);
  sqlite3_free(pCur->zSet);
  sqlite3_free(pCur);
  return SQLITE_OK;
}

static int check_filter(sqlite3_vtab_cursor *cur, int idxNum,
                        const char *idxStr, int argc, sqlite3_value **argv){
  CheckCursor *pCur = (CheckCursor*)cur;
  sqlite3_vtab *pVtab = cur->pVtab;
  KSettings *pSet = 0;
  KJsonRoom room;
  cJSON *pDoc = 0;
  char *zErr = 0;
  const char *z;
  int rc = SQLITE_OK;
  (void)idxNum; (void)idxStr;

  check_reset(pCur);
  if( argc<1 || sqlite3_value_type(argv[0])==SQLITE_NULL ) return SQLITE_OK;
  if( sqlite3_value_type(argv[0])!=SQLITE_TEXT ){
    return kustomer_vtab_error(pVtab, kustomer_not_text("kustomer_check", 1,
                                                        "event", argv[0]));
  }
  rc = check_settings(pCur, argc>1 ? argv[1] : 0, &pSet);
  if( rc ) return rc;

  z = (const char*)sqlite3_value_text(argv[0]);
  if( z==0 ){
    if( pSet!=pCur->pSet ) kustomer_settings_free(pSet);
    return SQLITE_NOMEM;
  }
  pDoc = kustomer_event_parse(z, sqlite3_value_bytes(argv[0]), &room, &zErr);
  if( pDoc==0 ){
    if( zErr==0 ){
      rc = SQLITE_NOMEM;
    }else{
      /* A malformed event is a finding, not an SQL error. */
      check_add(pCur, sqlite3_mprintf("$"), "malformed_json", "error",
                sqlite3_mprintf("Event %s", zErr));
      sqlite3_free(zErr);
    }
  }else{
    check_event(pCur, pDoc, pSet);
    kustomer_json_delete(pDoc);
  }
  if( pSet!=pCur->pSet ) kustomer_settings_free(pSet);
  if( rc==SQLITE_OK ) rc = pCur->rc;
  return rc;
}

static int check_next(sqlite3_vtab_cursor *cur){
  ((CheckCursor*)cur)->iRow++;
  return SQLITE_OK;
}

static int check_eof(sqlite3_vtab_cursor *cur){
  CheckCursor *pCur = (CheckCursor*)cur;
  return pCur->iRow>=pCur->nRow;
}

static int check_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx,
                        int iCol){
  CheckCursor *pCur = (CheckCursor*)cur;
  const CheckRow *pRow = &pCur->aRow[pCur->iRow];
  switch( iCol ){
    case CHECK_PATH:
      sqlite3_result_text(ctx, pRow->zPath, -1, SQLITE_TRANSIENT); break;
    case CHECK_RULE:
      sqlite3_result_text(ctx, pRow->zRule, -1, SQLITE_STATIC); break;
    case CHECK_SEVERITY:
      sqlite3_result_text(ctx, pRow->zSeverity, -1, SQLITE_STATIC); break;
    case CHECK_MESSAGE:
      sqlite3_result_text(ctx, pRow->zMessage, -1, SQLITE_TRANSIENT); break;
    default:
      break;   /* hidden arguments read back as NULL */
  }
  return SQLITE_OK;
}

static int check_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *pRowid){
  *pRowid = ((CheckCursor*)cur)->iRow + 1;
  return SQLITE_OK;
}

static sqlite3_module checkModule = {
  /* eponymous only: no xCreate */
  .xConnect = check_connect,
  .xBestIndex = check_best_index,
  .xDisconnect = kustomer_tvf_disconnect,
  .xOpen = check_open,
  .xClose = check_close,
  .xFilter = check_filter,
  .xNext = check_next,
  .xEof = check_eof,
  .xColumn = check_column,
  .xRowid = check_rowid,
};

int kustomer_register_check(sqlite3 *db){
  return sqlite3_create_module(db, "kustomer_check", &checkModule, 0);
}
