/*
** The scalar SQL functions:
**
**   kustomer_version()                            -> '0.1.0'
**   kustomer_event_name(event [, settings])       -> 'Order-Completed'
**   kustomer_meta(properties [, settings])        -> '{"totalNum":3}'
**   kustomer_identify(event [, settings])         -> customer body
**   kustomer_tracking(event [, settings])         -> {identity, event} body
**   kustomer_request(event, settings [, customer_id]) -> request envelope
**
** All are pure.  NULL in gives NULL out.  JSON results carry SQLite's JSON
** subtype so that they nest inside json_object() as objects.  The narrower
** functions raise an SQL error for an event they cannot transform;
** kustomer_request() instead returns {"statusCode":400,"error":...} so that
** one bad row does not abort an export.
*/
#include <stdint.h>
#include <string.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

/* What a call computes. */
#define KFN_EVENT_NAME 1
#define KFN_META       2
#define KFN_IDENTIFY   3
#define KFN_TRACKING   4
#define KFN_REQUEST    5

static void version_func(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  (void)argc;
  (void)argv;
  sqlite3_result_text(ctx, KUSTOMER_VERSION, -1, SQLITE_STATIC);
}

void kustomer_result_error(sqlite3_context *ctx, char *zMsg){
  if( zMsg ){
    sqlite3_result_error(ctx, zMsg, -1);
    sqlite3_free(zMsg);
  }else{
    sqlite3_result_error_nomem(ctx);
  }
}

static void result_code(sqlite3_context *ctx, int rc){
  if( rc==SQLITE_TOOBIG ){
    sqlite3_result_error_toobig(ctx);
  }else{
    sqlite3_result_error_nomem(ctx);
  }
}

void kustomer_result_str(sqlite3_context *ctx, sqlite3_str *p, int bJson){
  int rc = sqlite3_str_errcode(p);
  int n = sqlite3_str_length(p);
  char *z = sqlite3_str_finish(p);
  if( rc ){
    sqlite3_free(z);
    result_code(ctx, rc);
    return;
  }
  sqlite3_result_text(ctx, z ? z : "", n, z ? sqlite3_free : SQLITE_STATIC);
  if( bJson ) sqlite3_result_subtype(ctx, KUSTOMER_JSON_SUBTYPE);
}

static const char *type_name(int eType){
  switch( eType ){
    case SQLITE_INTEGER: return "integer";
    case SQLITE_FLOAT:   return "real";
    case SQLITE_BLOB:    return "blob";
    default:             return "text";
  }
}

void kustomer_result_event_error(sqlite3_context *ctx, int status,
                                 const char *zMsg){
  sqlite3_str *p = sqlite3_str_new(0);
  sqlite3_str_appendf(p, "{\"statusCode\":%d,\"error\":", status);
  kustomer_json_string(p, zMsg, strlen(zMsg));
  sqlite3_str_appendchar(p, 1, '}');
  kustomer_result_str(ctx, p, 1);
}

static void transform_func(sqlite3_context *ctx, int argc,
                           sqlite3_value **argv){
  int eFunc = (int)(intptr_t)sqlite3_user_data(ctx);
  const char *zFunc;
  const char *zArgName = "event";
  KSettings *pSet = 0;
  int bNewSet = 0;
  cJSON *pDoc = 0;
  char *zErr = 0;
  const char *zCustomerId = 0;
  KError err = {0, 0};
  KJsonRaw propsRaw;
  KJsonRoom room;
  sqlite3_str *pOut = 0;
  int rc = SQLITE_OK, eType = 0;

  propsRaw.eState = KRAW_NONE;    /* set by kustomer_event_parse_lean() */
  switch( eFunc ){
    case KFN_EVENT_NAME: zFunc = "kustomer_event_name"; break;
    case KFN_META:       zFunc = "kustomer_meta"; zArgName = "properties";
                         break;
    case KFN_IDENTIFY:   zFunc = "kustomer_identify"; break;
    case KFN_TRACKING:   zFunc = "kustomer_tracking"; break;
    default:             zFunc = "kustomer_request"; break;
  }

  if( sqlite3_value_type(argv[0])==SQLITE_NULL ) return;
  if( sqlite3_value_type(argv[0])!=SQLITE_TEXT ){
    kustomer_result_error(ctx,
        sqlite3_mprintf("%s(): argument 1 (%s) must be JSON "
                        "text, got %s", zFunc, zArgName,
                        type_name(sqlite3_value_type(argv[0]))));
    return;
  }
  if( eFunc==KFN_REQUEST && argc>2
   && sqlite3_value_type(argv[2])!=SQLITE_NULL ){
    int t = sqlite3_value_type(argv[2]);
    if( t!=SQLITE_TEXT && t!=SQLITE_INTEGER ){
      kustomer_result_error(ctx,
          sqlite3_mprintf("%s(): argument 3 (customer_id) must "
                          "be text or an integer, got %s", zFunc,
                          type_name(t)));
      return;
    }
    zCustomerId = (const char*)sqlite3_value_text(argv[2]);
    if( zCustomerId==0 ){
      sqlite3_result_error_nomem(ctx);
      return;
    }
  }
  pSet = kustomer_settings_get(ctx, argc, argv, 1, zFunc, &bNewSet);
  if( pSet==0 ) return;

  {
    const char *z = (const char*)sqlite3_value_text(argv[0]);
    if( z==0 ){
      sqlite3_result_error_nomem(ctx);
      goto done;
    }
    /* kustomer_meta() reads all of its argument; the others read the
    ** few members of an event that the transformation uses. */
    if( eFunc==KFN_META ){
      pDoc = kustomer_json_parse(z, sqlite3_value_bytes(argv[0]), &zErr);
    }else if( eFunc==KFN_REQUEST || eFunc==KFN_TRACKING ){
      pDoc = kustomer_event_parse_lean(z, sqlite3_value_bytes(argv[0]),
                                       pSet->bAdvanced, &propsRaw, &room,
                                       &zErr);
    }else{
      pDoc = kustomer_event_parse(z, sqlite3_value_bytes(argv[0]), &room,
                                  &zErr);
    }
  }
  if( pDoc==0 ){
    if( zErr==0 ){
      sqlite3_result_error_nomem(ctx);
    }else if( eFunc==KFN_REQUEST ){
      char *zMsg = sqlite3_mprintf("Event %s", zErr);
      if( zMsg ){
        kustomer_result_event_error(ctx, 400, zMsg);
        sqlite3_free(zMsg);
      }else{
        sqlite3_result_error_nomem(ctx);
      }
    }else{
      kustomer_result_error(ctx, sqlite3_mprintf("%s(): argument 1 (%s) %s",
                                        zFunc, zArgName, zErr));
    }
    goto done;
  }

  pOut = sqlite3_str_new(0);
  if( eFunc==KFN_META ){
    KMeta meta;
    rc = kustomer_meta_plan(pDoc, pSet->bAdvanced,
                            pSet->bIdentityEmail && pSet->bDisableEmail,
                            &meta);
    if( rc==SQLITE_OK ){
      if( kustomer_meta_present(&meta) ){
        rc = kustomer_meta_write(pOut, &meta);
      }else{
        kustomer_meta_free(&meta);
        goto done;   /* no meta: NULL */
      }
    }
    kustomer_meta_free(&meta);
  }else if( eFunc==KFN_REQUEST ){
    rc = kustomer_request_write(pOut, pDoc, pSet, zCustomerId, &propsRaw,
                                &err);
  }else{
    eType = kustomer_event_type(pDoc, &err);
    if( eType<0 ){
      rc = eType;
    }else if( eFunc==KFN_IDENTIFY ){
      if( eType!=KTYPE_IDENTIFY ){
        kustomer_result_error(ctx,
            sqlite3_mprintf("%s(): event type is not identify",
                            zFunc));
        goto done;
      }
      rc = kustomer_identify_write(pOut, pDoc, pSet, &err);
    }else if( eType==KTYPE_IDENTIFY ){
      if( eFunc==KFN_EVENT_NAME ) goto done;   /* no event name: NULL */
      kustomer_result_error(ctx,
          sqlite3_mprintf("%s(): event type is identify, not "
                          "track, page or screen", zFunc));
      goto done;
    }else if( eFunc==KFN_TRACKING ){
      rc = kustomer_tracking_write(pOut, pDoc, eType, pSet, &propsRaw, &err);
    }else{
      rc = kustomer_event_name_write(pOut, pDoc, eType, pSet, &err);
    }
  }

  if( rc==KUSTOMER_EVENT_ERROR ){
    if( eFunc==KFN_REQUEST ){
      kustomer_result_event_error(ctx, err.status, err.zMsg);
    }else{
      kustomer_result_error(ctx, sqlite3_mprintf("%s(): %s", zFunc, err.zMsg));
    }
  }else if( rc!=SQLITE_OK ){
    result_code(ctx, rc);
  }else{
    kustomer_result_str(ctx, pOut, eFunc!=KFN_EVENT_NAME);
    pOut = 0;
  }

done:
  if( pOut ) sqlite3_free(sqlite3_str_finish(pOut));
  kustomer_error_clear(&err);
  sqlite3_free(zErr);
  kustomer_json_delete(pDoc);
  kustomer_settings_done(ctx, 1, pSet, bNewSet);
}

int kustomer_register_functions(sqlite3 *db){
  static const struct {
    const char *zName;
    int nArg;
    int eFunc;
    void (*xFunc)(sqlite3_context*, int, sqlite3_value**);
  } aFunc[] = {
    { "kustomer_version",    0, 0,              version_func },
    { "kustomer_event_name", 1, KFN_EVENT_NAME, transform_func },
    { "kustomer_event_name", 2, KFN_EVENT_NAME, transform_func },
    { "kustomer_meta",       1, KFN_META,       transform_func },
    { "kustomer_meta",       2, KFN_META,       transform_func },
    { "kustomer_identify",   1, KFN_IDENTIFY,   transform_func },
    { "kustomer_identify",   2, KFN_IDENTIFY,   transform_func },
    { "kustomer_tracking",   1, KFN_TRACKING,   transform_func },
    { "kustomer_tracking",   2, KFN_TRACKING,   transform_func },
    { "kustomer_request",    2, KFN_REQUEST,    transform_func },
    { "kustomer_request",    3, KFN_REQUEST,    transform_func },
  };
  const int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
  size_t i;
  int rc = SQLITE_OK;
  for(i=0; i<sizeof(aFunc)/sizeof(aFunc[0]) && rc==SQLITE_OK; i++){
    int f = flags;
    /* Every function but the version returns JSON or text built from it;
    ** only JSON results set a subtype. */
    if( aFunc[i].eFunc!=0 && aFunc[i].eFunc!=KFN_EVENT_NAME ){
      f |= SQLITE_RESULT_SUBTYPE;
    }
    rc = sqlite3_create_function(db, aFunc[i].zName, aFunc[i].nArg, f,
                                 (void*)(intptr_t)aFunc[i].eFunc,
                                 aFunc[i].xFunc, 0, 0);
  }
  return rc;
}
