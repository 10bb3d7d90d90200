/*
** The scalar SQL functions:
**
**   kustomer_version()                            -> the file VERSION's text
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
#include <stddef.h>
#include <string.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

static void version_func(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  (void)argc;
  (void)argv;
  sqlite3_result_text(ctx, KUSTOMER_VERSION, -1, SQLITE_STATIC);
}

/* How an event argument is parsed. */
#define PARSE_ALL   0   /* all of it: kustomer_meta() reads every member */
#define PARSE_EVENT 1   /* the members any transformation reads */
#define PARSE_LEAN  2   /* those a tracking body reads; properties as text */

/* The first argument of a call, parsed, with its settings (argument 2). */
typedef struct EventArg EventArg;
struct EventArg {
  const char *zFunc;
  const KSettings *pSet;
  int bNewSet;
  cJSON *pDoc;
  KMetaText raw;            /* properties as text (PARSE_LEAN) */
  KJsonRoom room;           /* lent to the parse: no allocation when small */
  KError err;
  KJsonText text;           /* argv[0]'s text; JSONB made text */
};

/*
** Check and parse argv[0] (named zArg in errors) and read the settings.
** Returns 1 with p->pDoc set; 0 when the call is over: NULL in (NULL out)
** or an error reported.  bEventError: a malformed event is the result
** {"statusCode":400,...} (kustomer_request), not an SQL error.  Call
** event_arg_done() after either.
*/
static int event_arg(sqlite3_context *ctx, int argc, sqlite3_value **argv,
                     const char *zFunc, const char *zArg, int eParse,
                     int bEventError, EventArg *p){
  const char *z;
  int n, rc;
  char *zErr = 0;
  memset(p, 0, offsetof(EventArg, raw));
  p->zFunc = zFunc;
  p->raw.raw.eState = KRAW_NONE;  /* set by kustomer_event_parse_lean() */
  p->err.status = 0;
  p->err.zMsg = 0;
  p->text.zOwned = 0;
  if( sqlite3_value_type(argv[0])==SQLITE_NULL ) return 0;
  rc = kustomer_json_text(sqlite3_context_db_handle(ctx), argv[0], zFunc, 1,
                          zArg, &p->text, &zErr);
  if( rc ){
    if( rc==SQLITE_ERROR ) kustomer_result_error(ctx, zErr);
    else kustomer_result_code(ctx, rc);
    return 0;
  }
  z = p->text.z;
  n = p->text.n;
  p->pSet = kustomer_settings_get(ctx, argc, argv, 1, zFunc, &p->bNewSet);
  if( p->pSet==0 ) return 0;
  switch( eParse ){
    case PARSE_ALL:
      p->pDoc = kustomer_json_parse(z, n, &zErr);
      break;
    case PARSE_LEAN:
      p->pDoc = kustomer_event_parse_lean(z, n, p->pSet->bAdvanced, &p->raw,
                                          &p->room, &zErr);
      break;
    default:
      p->pDoc = kustomer_event_parse(z, n, &p->room, &zErr);
      break;
  }
  if( p->pDoc ) return 1;
  if( zErr==0 ){
    sqlite3_result_error_nomem(ctx);
  }else if( bEventError ){
    char *zMsg = sqlite3_mprintf("Event %s", zErr);
    if( zMsg ) kustomer_result_event_error(ctx, 400, zMsg);
    else sqlite3_result_error_nomem(ctx);
    sqlite3_free(zMsg);
  }else{
    kustomer_result_error(ctx, sqlite3_mprintf("%s(): argument 1 (%s) %s",
                                               zFunc, zArg, zErr));
  }
  sqlite3_free(zErr);
  return 0;
}

static void event_arg_done(sqlite3_context *ctx, EventArg *p){
  kustomer_error_clear(&p->err);
  kustomer_json_delete(p->pDoc);
  if( p->pSet ) kustomer_settings_done(ctx, 1, p->pSet, p->bNewSet);
  kustomer_json_text_done(&p->text);
}

/*
** The result of a transformation that wrote pOut (finished here; NULL when
** nothing was written) with code rc: the text (as JSON when bJson), the
** per-event error (an SQL error naming the function, or with bEventError
** the {"statusCode":..} result), or the error code.
*/
static void event_result(sqlite3_context *ctx, EventArg *p, int rc,
                         KOut *pOut, int bJson, int bEventError){
  if( rc==SQLITE_OK ){
    kustomer_out_result(ctx, pOut, bJson);
    return;
  }
  if( pOut ) kustomer_out_discard(pOut);
  if( rc!=KUSTOMER_EVENT_ERROR ){
    kustomer_result_code(ctx, rc);
  }else if( bEventError ){
    kustomer_result_event_error(ctx, p->err.status, p->err.zMsg);
  }else{
    kustomer_result_error(ctx, sqlite3_mprintf("%s(): %s", p->zFunc,
                                               p->err.zMsg));
  }
}

/* The event's type, when it is one of those wanted (1: identify, 2: a
** tracking type).  Otherwise the result is set (an error, or NULL for an
** identify's event name) and 0 returned. */
static int event_type_of(sqlite3_context *ctx, EventArg *p, int bIdentify,
                         int bNullIfIdentify){
  int eType = kustomer_event_type(p->pDoc, &p->err);
  if( eType<0 || eType==SQLITE_NOMEM ){
    event_result(ctx, p, eType, 0, 0, 0);
    return 0;
  }
  if( bIdentify && eType!=KTYPE_IDENTIFY ){
    kustomer_result_error(ctx, sqlite3_mprintf("%s(): event type is not "
                                               "identify", p->zFunc));
    return 0;
  }
  if( !bIdentify && eType==KTYPE_IDENTIFY ){
    if( !bNullIfIdentify ){
      kustomer_result_error(ctx, sqlite3_mprintf("%s(): event type is "
                            "identify, not track, page or screen",
                            p->zFunc));
    }
    return 0;
  }
  return eType;
}

/* kustomer_event_name(event [, settings]) -> text, NULL for identify */
static void event_name_func(sqlite3_context *ctx, int argc,
                            sqlite3_value **argv){
  EventArg a;
  int eType, rc;
  KOut out;
  if( event_arg(ctx, argc, argv, "kustomer_event_name", "event", PARSE_EVENT,
                0, &a)
   && (eType = event_type_of(ctx, &a, 0, 1))!=0 ){
    kustomer_out_begin(ctx, 1, &out);
    rc = kustomer_event_name_write(out.p, a.pDoc, eType, a.pSet, &a.err);
    event_result(ctx, &a, rc, &out, 0, 0);
  }
  event_arg_done(ctx, &a);
}

/* kustomer_meta(properties [, settings]) -> JSON, NULL when no meta */
static void meta_func(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  EventArg a;
  KMeta meta;
  int rc;
  if( event_arg(ctx, argc, argv, "kustomer_meta", "properties", PARSE_ALL, 0,
                &a) ){
    rc = kustomer_meta_plan(a.pDoc, a.pSet->bAdvanced,
                            a.pSet->bIdentityEmail && a.pSet->bDisableEmail,
                            &meta);
    if( rc==SQLITE_OK && !kustomer_meta_present(&meta) ){
      /* no meta: NULL */
    }else{
      KOut out;
      kustomer_out_begin(ctx, 1, &out);
      if( rc==SQLITE_OK ) rc = kustomer_meta_write(out.p, &meta);
      event_result(ctx, &a, rc, &out, 1, 0);
    }
    kustomer_meta_free(&meta);
  }
  event_arg_done(ctx, &a);
}

/* kustomer_identify(event [, settings]) -> the customer body */
static void identify_func(sqlite3_context *ctx, int argc,
                          sqlite3_value **argv){
  EventArg a;
  KOut out;
  int rc;
  if( event_arg(ctx, argc, argv, "kustomer_identify", "event", PARSE_EVENT, 0,
                &a)
   && event_type_of(ctx, &a, 1, 0) ){
    kustomer_out_begin(ctx, 1, &out);
    rc = kustomer_identify_write(out.p, a.pDoc, a.pSet, &a.err);
    event_result(ctx, &a, rc, &out, 1, 0);
  }
  event_arg_done(ctx, &a);
}

/* kustomer_tracking(event [, settings]) -> the {identity, event} body */
static void tracking_func(sqlite3_context *ctx, int argc,
                          sqlite3_value **argv){
  EventArg a;
  KOut out;
  int eType, rc;
  if( event_arg(ctx, argc, argv, "kustomer_tracking", "event", PARSE_LEAN, 0,
                &a)
   && (eType = event_type_of(ctx, &a, 0, 0))!=0 ){
    kustomer_out_begin(ctx, 1, &out);
    rc = kustomer_tracking_write(out.p, a.pDoc, eType, a.pSet, &a.raw,
                                 &a.err);
    event_result(ctx, &a, rc, &out, 1, 0);
  }
  event_arg_done(ctx, &a);
}

/* kustomer_request(event, settings [, customer_id]) -> the envelope, or
** {"statusCode":400,"error":..} for an event that cannot be sent */
static void request_func(sqlite3_context *ctx, int argc,
                         sqlite3_value **argv){
  const char *zCustomerId = 0;
  EventArg a;
  KOut out;
  int rc;
  if( argc>2 && sqlite3_value_type(argv[0])!=SQLITE_NULL
   && sqlite3_value_type(argv[2])!=SQLITE_NULL ){
    int t = sqlite3_value_type(argv[2]);
    if( t!=SQLITE_TEXT && t!=SQLITE_INTEGER
     && sqlite3_value_type(argv[0])==SQLITE_TEXT ){
      kustomer_result_error(ctx,
          sqlite3_mprintf("kustomer_request(): argument 3 (customer_id) must "
                          "be text or an integer, got %s",
                          kustomer_type_name(argv[2])));
      return;
    }
    zCustomerId = (const char*)sqlite3_value_text(argv[2]);
    if( zCustomerId==0 ){
      sqlite3_result_error_nomem(ctx);
      return;
    }
  }
  if( event_arg(ctx, argc, argv, "kustomer_request", "event", PARSE_LEAN, 1,
                &a) ){
    kustomer_out_begin(ctx, 1, &out);
    rc = kustomer_request_write(out.p, a.pDoc, a.pSet, zCustomerId, &a.raw,
                                &a.err);
    event_result(ctx, &a, rc, &out, 1, 1);
  }
  event_arg_done(ctx, &a);
}

int kustomer_register_functions(sqlite3 *db){
  static const struct {
    const char *zName;
    int nArg;
    int bJson;              /* sets the JSON subtype */
    void (*xFunc)(sqlite3_context*, int, sqlite3_value**);
  } aFunc[] = {
    { "kustomer_version",    0, 0, version_func },
    { "kustomer_event_name", 1, 0, event_name_func },
    { "kustomer_event_name", 2, 0, event_name_func },
    { "kustomer_meta",       1, 1, meta_func },
    { "kustomer_meta",       2, 1, meta_func },
    { "kustomer_identify",   1, 1, identify_func },
    { "kustomer_identify",   2, 1, identify_func },
    { "kustomer_tracking",   1, 1, tracking_func },
    { "kustomer_tracking",   2, 1, tracking_func },
    { "kustomer_request",    2, 1, request_func },
    { "kustomer_request",    3, 1, request_func },
  };
  const int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
  size_t i;
  int rc = SQLITE_OK;
  for(i=0; i<sizeof(aFunc)/sizeof(aFunc[0]) && rc==SQLITE_OK; i++){
    rc = sqlite3_create_function(db, aFunc[i].zName, aFunc[i].nArg,
             flags | (aFunc[i].bJson ? SQLITE_RESULT_SUBTYPE : 0), 0,
             aFunc[i].xFunc, 0, 0);
  }
  return rc;
}
