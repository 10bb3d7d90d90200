/*
** kustomer_meta_each(properties [, settings]): one row per property, with
** what Kustomer receives for it.
**
**   SELECT key, kustomer_key, problem
**     FROM kustomer_meta_each('{"total":12.5}', '{"advancedTransform":true}');
**   -- total | totalNum | NULL
**
** Columns: key, value (as json_each gives it), type (json_type's names),
** kustomer_key and kustomer_value (NULL when the property is not sent:
** session/tracking keys, which become sessionId/trackingId, repeated or
** colliding keys, the e-mail removed by disableEmailAsTrackingProperty),
** problem (NULL when Kustomer accepts the property as sent), sent (the
** value as sent, as JSON text: 'true', 'null', '"x"'; NULL only when the
** property is not sent; kustomer_value shows it as json_each would, where
** true is 1 and a null sent is NULL).
*/
#include <string.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

#define EACH_KEY       0
#define EACH_VALUE     1
#define EACH_TYPE      2
#define EACH_KKEY      3
#define EACH_KVALUE    4
#define EACH_PROBLEM   5
#define EACH_SENT      6   /* the value as sent, JSON text */
#define EACH_PROPS     7   /* HIDDEN: argument 1 */
#define EACH_SETTINGS  8   /* HIDDEN: argument 2 */

typedef struct EachCursor EachCursor;
struct EachCursor {
  sqlite3_vtab_cursor base;
  cJSON *pDoc;
  KMeta meta;
  int iRow;
};

static int each_connect(sqlite3 *db, void *pAux, int argc,
                        const char *const *argv, sqlite3_vtab **ppVtab,
                        char **pzErr){
  (void)pAux; (void)argc; (void)argv; (void)pzErr;
  return kustomer_tvf_connect_pure(db,
      "CREATE TABLE x(key TEXT, value, type TEXT, kustomer_key TEXT,"
      " kustomer_value, problem TEXT, sent TEXT, properties HIDDEN,"
      " settings HIDDEN)",
      ppVtab);
}

static int each_best_index(sqlite3_vtab *pVtab, sqlite3_index_info *pInfo){
  static const char *const azArg[] = { "properties", "settings" };
  return kustomer_tvf_best_index(pVtab, pInfo, EACH_PROPS, 2, 1, "kustomer_meta_each",
                                 azArg, 10.0);
}

static void each_reset(EachCursor *pCur){
  kustomer_meta_free(&pCur->meta);
  memset(&pCur->meta, 0, sizeof(pCur->meta));
  cJSON_Delete(pCur->pDoc);
  pCur->pDoc = 0;
  pCur->iRow = 0;
}

static int each_open(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCur){
  EachCursor *pCur = sqlite3_malloc(sizeof(*pCur));
  (void)pVtab;
  if( pCur==0 ) return SQLITE_NOMEM;
  memset(pCur, 0, sizeof(*pCur));
  pCur->meta.aItem = pCur->meta.aStatic;
  *ppCur = &pCur->base;
  return SQLITE_OK;
}

static int each_close(sqlite3_vtab_cursor *cur){
  EachCursor *pCur = (EachCursor*)cur;
  each_reset(pCur);
  sqlite3_free(pCur);
  return SQLITE_OK;
}

static int each_filter(sqlite3_vtab_cursor *cur, int idxNum,
                       const char *idxStr, int argc, sqlite3_value **argv){
  EachCursor *pCur = (EachCursor*)cur;
  sqlite3_vtab *pVtab = cur->pVtab;
  KSettings *pSet = 0;
  KJsonText text;
  char *zErr = 0;
  int rc;
  (void)idxNum; (void)idxStr;

  each_reset(pCur);
  pCur->meta.aItem = pCur->meta.aStatic;
  if( argc<1 || sqlite3_value_type(argv[0])==SQLITE_NULL ) return SQLITE_OK;
  rc = kustomer_json_text(((KTvf*)pVtab)->db, argv[0], "kustomer_meta_each",
                          1, "properties", &text, &zErr);
  if( rc ) return rc==SQLITE_ERROR ? kustomer_vtab_error(pVtab, zErr) : rc;
  rc = kustomer_vtab_settings(pVtab, "kustomer_meta_each", 2,
                              argc>1 ? argv[1] : 0, &pSet);
  if( rc ){
    kustomer_json_text_done(&text);
    return rc;
  }
  pCur->pDoc = kustomer_json_parse(text.z, text.n, &zErr);
  kustomer_json_text_done(&text);   /* the tree holds its own copies */
  if( pCur->pDoc==0 ){
    kustomer_settings_free(pSet);
    if( zErr==0 ) return SQLITE_NOMEM;
    rc = kustomer_vtab_error(pVtab, sqlite3_mprintf("kustomer_meta_each(): "
                             "argument 1 (properties) %s", zErr));
    sqlite3_free(zErr);
    return rc;
  }
  rc = kustomer_meta_plan(pCur->pDoc, pSet->bAdvanced,
                          pSet->bIdentityEmail && pSet->bDisableEmail,
                          &pCur->meta);
  kustomer_settings_free(pSet);
  return rc;
}

static int each_next(sqlite3_vtab_cursor *cur){
  ((EachCursor*)cur)->iRow++;
  return SQLITE_OK;
}

static int each_eof(sqlite3_vtab_cursor *cur){
  EachCursor *pCur = (EachCursor*)cur;
  return pCur->iRow>=pCur->meta.nItem;
}

/* A value as json_each() reports it: SQL atoms for JSON atoms, JSON text
** (with the JSON subtype) for arrays and objects. */
static void each_result_value(sqlite3_context *ctx, const cJSON *v){
  sqlite3_str *p;
  int rc, n;
  char *z;
  switch( v->type & 0xff ){
    case cJSON_NULL:   sqlite3_result_null(ctx); return;
    case cJSON_True:   sqlite3_result_int(ctx, 1); return;
    case cJSON_False:  sqlite3_result_int(ctx, 0); return;
    case cJSON_String:
      sqlite3_result_text(ctx, v->valuestring, -1, SQLITE_TRANSIENT);
      return;
    case cJSON_Number:
      if( kustomer_json_type(v)[0]=='i' ){
        sqlite3_result_int64(ctx, (sqlite3_int64)v->valuedouble);
      }else{
        sqlite3_result_double(ctx, v->valuedouble);
      }
      return;
    default:
      p = sqlite3_str_new(0);
      kustomer_json_value(p, v);
      rc = sqlite3_str_errcode(p);
      n = sqlite3_str_length(p);
      z = sqlite3_str_finish(p);
      if( rc ){
        sqlite3_free(z);
        sqlite3_result_error_code(ctx, rc);
        return;
      }
      sqlite3_result_text(ctx, z, n, sqlite3_free);
      sqlite3_result_subtype(ctx, KUSTOMER_JSON_SUBTYPE);
      return;
  }
}

static int each_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx,
                       int iCol){
  EachCursor *pCur = (EachCursor*)cur;
  const KMetaItem *pItem = &pCur->meta.aItem[pCur->iRow];
  const KProblem *pP;
  switch( iCol ){
    case EACH_KEY:
      sqlite3_result_text(ctx, pItem->pSrc->string, -1, SQLITE_TRANSIENT);
      break;
    case EACH_VALUE:
      each_result_value(ctx, pItem->pSrc);
      break;
    case EACH_TYPE:
      sqlite3_result_text(ctx, kustomer_json_type(pItem->pSrc), -1,
                          SQLITE_STATIC);
      break;
    case EACH_KKEY:
      if( pItem->eFate==KFATE_SENT ){
        sqlite3_result_text(ctx, pItem->zKey, -1, SQLITE_TRANSIENT);
      }
      break;
    case EACH_KVALUE:
      if( pItem->eFate!=KFATE_SENT ) break;
      if( pItem->eConv==KCONV_NONE ){
        each_result_value(ctx, pItem->pSrc);
      }else{
        /* A converted value is a JSON string: return its text. */
        sqlite3_str *p = sqlite3_str_new(0);
        cJSON *pStr;
        int rc = kustomer_meta_write_value(p, pItem);
        char *z = sqlite3_str_finish(p);
        if( rc || z==0 ){
          sqlite3_free(z);
          sqlite3_result_error_nomem(ctx);
          break;
        }
        pStr = kustomer_json_parse(z, (int)strlen(z), 0);
        sqlite3_free(z);
        if( pStr==0 || !cJSON_IsString(pStr) ){
          cJSON_Delete(pStr);
          sqlite3_result_error_nomem(ctx);
          break;
        }
        sqlite3_result_text(ctx, pStr->valuestring, -1, SQLITE_TRANSIENT);
        cJSON_Delete(pStr);
      }
      break;
    case EACH_SENT:
      if( pItem->eFate==KFATE_SENT ){
        sqlite3_str *p = sqlite3_str_new(0);
        int rc = kustomer_meta_write_value(p, pItem), n;
        char *z;
        if( rc==SQLITE_OK ) rc = sqlite3_str_errcode(p);
        n = sqlite3_str_length(p);
        z = sqlite3_str_finish(p);
        if( rc ){
          sqlite3_free(z);
          sqlite3_result_error_code(ctx, rc);
          break;
        }
        sqlite3_result_text(ctx, z, n, sqlite3_free);
        sqlite3_result_subtype(ctx, KUSTOMER_JSON_SUBTYPE);
      }
      break;
    case EACH_PROBLEM:
      pP = kustomer_meta_item_problem(pItem);
      if( pP ) sqlite3_result_text(ctx, pP->zMessage, -1, SQLITE_STATIC);
      break;
    default:
      break;
  }
  return SQLITE_OK;
}

static int each_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *pRowid){
  *pRowid = ((EachCursor*)cur)->iRow + 1;
  return SQLITE_OK;
}

static sqlite3_module eachModule = {
  /* eponymous only: no xCreate */
  .xConnect = each_connect,
  .xBestIndex = each_best_index,
  .xDisconnect = kustomer_tvf_disconnect,
  .xOpen = each_open,
  .xClose = each_close,
  .xFilter = each_filter,
  .xNext = each_next,
  .xEof = each_eof,
  .xColumn = each_column,
  .xRowid = each_rowid,
};

int kustomer_register_meta_each(sqlite3 *db){
  return sqlite3_create_module(db, "kustomer_meta_each", &eachModule, 0);
}
