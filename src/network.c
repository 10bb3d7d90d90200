/*
** The SQL functions that talk to Kustomer:
**
**   kustomer_process(event, settings)     -> what RudderStack's processor
**       returns for the event, identify lookups included
**   kustomer_send(request [, settings])   -> {"status":..,"headers":..,
**       "body":..} of sending one request envelope
**
** Both are SQLITE_DIRECTONLY: a view or trigger in a database file someone
** else wrote must not be able to make this connection send anything.
** The API key comes from settings.apiKey or, better, from the environment
** variable named by settings.apiKeyEnv; it never appears in an error.
*/
#include <stdlib.h>
#include <string.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

/* The Authorization value to send (settings.apiKey, else the variable
** apiKeyEnv names, else the reference's "Bearer undefined"), or NULL with
** the SQL error set on ctx. */
static char *auth_value(sqlite3_context *ctx, const KSettings *pSet,
                        const char *zFunc){
  char *zAuth = 0, *zErr = 0;
  int rc = kustomer_api_auth(pSet, 0, &zAuth, &zErr);
  if( rc==SQLITE_ERROR ){
    kustomer_result_error(ctx, sqlite3_mprintf("%s(): %s", zFunc, zErr));
  }else if( rc ){
    sqlite3_result_error_nomem(ctx);
  }
  sqlite3_free(zErr);
  return zAuth;
}

/* Append a response body: its JSON when it is JSON, else it as a string. */
static void append_body(sqlite3_str *p, const KHttpResp *pResp,
                        cJSON **ppParsed){
  char *zErr = 0;
  cJSON *pDoc = 0;
  if( pResp->nBody>0 ){
    pDoc = kustomer_json_parse(pResp->zBody, pResp->nBody, &zErr);
    sqlite3_free(zErr);
  }
  if( pDoc ){
    kustomer_json_value(p, pDoc);
  }else{
    kustomer_json_string_lossy(p, pResp->zBody, (size_t)pResp->nBody);
  }
  if( ppParsed ){
    *ppParsed = pDoc;
  }else{
    cJSON_Delete(pDoc);
  }
}

/* ---- kustomer_process --------------------------------------------------- */

/* The reference's normalised transport errors: status and text. */
static void net_error(int eNet, const char *zCurl, int *pStatus,
                      char **pzText){
  switch( eNet ){
    case KNET_REFUSED:
      *pStatus = 500;
      *pzText = sqlite3_mprintf("[ECONNREFUSED] :: Connection refused");
      break;
    case KNET_RESET:
      *pStatus = 500;
      *pzText = sqlite3_mprintf("[ECONNRESET] :: Connection reset by peer");
      break;
    case KNET_TIMEDOUT:
      *pStatus = 500;
      *pzText = sqlite3_mprintf("[ETIMEDOUT] :: Operation timed out");
      break;
    case KNET_DNS:
      *pStatus = 400;
      *pzText = sqlite3_mprintf("[ENOTFOUND] :: DNS lookup failed");
      break;
    case KNET_PIPE:
      *pStatus = 400;
      *pzText = sqlite3_mprintf("[EPIPE] :: Broken pipe");
      break;
    default:
      *pStatus = 400;
      *pzText = sqlite3_mprintf("[EOTHER] :: %s", zCurl ? zCurl : "");
      break;
  }
}

/*
** The error result of a failed lookup (4.2): {"statusCode":N,"error":E}
** where E is the JSON text of {message, destinationResponse}.
*/
static void lookup_error(sqlite3_context *ctx, const KHttpResp *pResp){
  sqlite3_str *pErr = sqlite3_str_new(0);
  sqlite3_str *pMsg = sqlite3_str_new(0);
  sqlite3_str *pOut;
  cJSON *pDoc = 0;
  int status = (int)pResp->status;
  char *zNet = 0;

  if( pResp->eNet ){
    net_error(pResp->eNet, pResp->zErr, &status, &zNet);
    if( zNet ){
      kustomer_json_string(pMsg, zNet, strlen(zNet));
    }
  }else{
    sqlite3_str *pBody = sqlite3_str_new(0);
    append_body(pBody, pResp, &pDoc);
    if( status==200 ){
      const cJSON *pData = kustomer_json_member(pDoc, "data");
      sqlite3_str_appendall(pMsg, "Error while lookingUp Kustomer ");
      if( kustomer_js_truthy(pData) ) kustomer_json_value(pMsg, pData);
    }else if( pDoc ? kustomer_js_truthy(pDoc) : pResp->nBody>0 ){
      sqlite3_str_append(pMsg, sqlite3_str_value(pBody),
                         sqlite3_str_length(pBody));
    }else{
      sqlite3_str_appendall(pMsg, "Error while lookingUp Kustomer");
    }
    sqlite3_free(sqlite3_str_finish(pBody));
  }

  sqlite3_str_appendall(pErr, "{\"message\":");
  kustomer_json_string(pErr, sqlite3_str_value(pMsg) ?
                       sqlite3_str_value(pMsg) : "",
                       (size_t)sqlite3_str_length(pMsg));
  sqlite3_str_appendall(pErr, ",\"destinationResponse\":{\"response\":");
  if( pResp->eNet ){
    kustomer_json_string(pErr, zNet ? zNet : "", zNet ? strlen(zNet) : 0);
  }else if( pDoc ){
    kustomer_json_value(pErr, pDoc);
  }else{
    kustomer_json_string_lossy(pErr, pResp->zBody, (size_t)pResp->nBody);
  }
  sqlite3_str_appendf(pErr, ",\"status\":%d", status);
  if( pResp->nHeader>0 ){
    sqlite3_str_appendf(pErr, ",\"headers\":%s", pResp->zHeaders);
  }
  sqlite3_str_appendall(pErr, "}}");

  pOut = sqlite3_str_new(0);
  sqlite3_str_appendf(pOut, "{\"statusCode\":%d,\"error\":", status);
  kustomer_json_string(pOut, sqlite3_str_value(pErr) ?
                       sqlite3_str_value(pErr) : "",
                       (size_t)sqlite3_str_length(pErr));
  sqlite3_str_appendchar(pOut, 1, '}');
  if( sqlite3_str_errcode(pErr) || sqlite3_str_errcode(pMsg) ){
    sqlite3_result_error_nomem(ctx);
    sqlite3_free(sqlite3_str_finish(pOut));
  }else{
    kustomer_result_str(ctx, pOut, 1);
  }
  sqlite3_free(sqlite3_str_finish(pErr));
  sqlite3_free(sqlite3_str_finish(pMsg));
  sqlite3_free(zNet);
  cJSON_Delete(pDoc);
}

/*
** Run the identify lookups (4.1).  Returns SQLITE_OK with *pzId set to the
** found customer's id (or NULL: not found), SQLITE_DONE when a lookup
** failed and the error result has been set, or an error code with the
** SQL error set.
*/
static int identify_lookups(sqlite3_context *ctx, KHttp *pHttp,
                            const cJSON *pEvent, const KSettings *pSet,
                            char **pzId){
  const cJSON *apVal[3];
  char *zAuth = 0;
  int i, rc = SQLITE_OK;

  *pzId = 0;
  if( kustomer_identify_lookups(pEvent, apVal) ) return SQLITE_OK;
  for(i=0; i<3 && rc==SQLITE_OK && *pzId==0; i++){
    sqlite3_str *pUrl;
    KHttpReq req;
    KHttpResp resp;
    char *zUrl;
    if( !kustomer_js_truthy(apVal[i]) ) continue;
    if( zAuth==0 ){
      zAuth = auth_value(ctx, pSet, "kustomer_process");
      if( zAuth==0 ) return SQLITE_ERROR;
    }
    pUrl = sqlite3_str_new(0);
    sqlite3_str_appendf(pUrl, "%s/v1/customers/%s", pSet->zBase,
                        kustomer_aLookupPrefix[i]);
    rc = kustomer_path_segment_value(pUrl, apVal[i]);
    zUrl = sqlite3_str_finish(pUrl);
    if( rc || zUrl==0 ){
      sqlite3_free(zUrl);
      sqlite3_result_error_nomem(ctx);
      rc = SQLITE_NOMEM;
      break;
    }
    kustomer_api_request(&req, "GET", zUrl, zAuth, pSet);
    rc = kustomer_http_do(pHttp, &req, &resp);
    sqlite3_free(zUrl);
    if( rc ){
      sqlite3_result_error_nomem(ctx);
      break;
    }
    if( resp.eNet==KNET_REFUSED_URL ){
      kustomer_result_error(ctx,
          sqlite3_mprintf("kustomer_process(): %s", resp.zErr));
      rc = SQLITE_ERROR;
    }else if( resp.eNet==0 && resp.status==404 ){
      /* not found: try the next value */
    }else if( resp.eNet==0 && resp.status==200 ){
      cJSON *pDoc;
      const cJSON *pId;
      char *zE = 0;
      pDoc = kustomer_json_parse(resp.zBody, resp.nBody, &zE);
      sqlite3_free(zE);
      pId = kustomer_json_member(kustomer_json_member(pDoc, "data"), "id");
      if( kustomer_js_truthy(pId) ){
        sqlite3_str *pS = sqlite3_str_new(0);
        kustomer_js_string(pS, pId);
        *pzId = sqlite3_str_finish(pS);
        if( *pzId==0 ){
          sqlite3_result_error_nomem(ctx);
          rc = SQLITE_NOMEM;
        }
      }else{
        lookup_error(ctx, &resp);
        rc = SQLITE_DONE;
      }
      cJSON_Delete(pDoc);
    }else{
      lookup_error(ctx, &resp);
      rc = SQLITE_DONE;
    }
    kustomer_http_resp_clear(&resp);
  }
  kustomer_api_auth_free(zAuth);
  if( rc!=SQLITE_OK ){
    sqlite3_free(*pzId);
    *pzId = 0;
  }
  return rc;
}

/* The envelope of an event for kustomer_process(): with the key it will
** be sent with, and zId (may be NULL) as the customer to update. */
static void process_result(sqlite3_context *ctx, const cJSON *pDoc,
                           const KSettings *pSet, int eType,
                           const char *zId){
  sqlite3_str *pOut;
  KSettings set = *pSet;
  KError err = {0, 0};
  char *zAuth = 0;
  int rc;
  if( set.zAuth==0 && eType>0 ){
    zAuth = auth_value(ctx, pSet, "kustomer_process");
    if( zAuth==0 ) return;
    set.zAuth = zAuth;
  }
  pOut = sqlite3_str_new(0);
  rc = kustomer_request_write(pOut, pDoc, &set, zId, 0, &err);
  kustomer_api_auth_free(zAuth);
  if( rc==SQLITE_OK ){
    kustomer_result_str(ctx, pOut, 1);
  }else{
    sqlite3_free(sqlite3_str_finish(pOut));
    if( rc==KUSTOMER_EVENT_ERROR ){
      kustomer_result_event_error(ctx, err.status, err.zMsg);
    }else{
      kustomer_result_code(ctx, rc);
    }
  }
  kustomer_error_clear(&err);
}

/* kustomer_process(event, settings) -> what RudderStack's processor gives */
static void process_func(sqlite3_context *ctx, int argc,
                         sqlite3_value **argv){
  KHttp *pHttp = (KHttp*)sqlite3_user_data(ctx);
  const KSettings *pSet;
  int bNewSet = 0;
  cJSON *pDoc = 0;
  char *zErr = 0, *zId = 0;
  KError err = {0, 0};
  int eType, rc;
  KJsonText text;

  if( sqlite3_value_type(argv[0])==SQLITE_NULL ) return;
  rc = kustomer_json_text(sqlite3_context_db_handle(ctx), argv[0],
                          "kustomer_process", 1, "event", &text, &zErr);
  if( rc ){
    if( rc==SQLITE_ERROR ) kustomer_result_error(ctx, zErr);
    else kustomer_result_code(ctx, rc);
    return;
  }
  pSet = kustomer_settings_get(ctx, argc, argv, 1, "kustomer_process",
                               &bNewSet);
  if( pSet==0 ){
    kustomer_json_text_done(&text);
    return;
  }
  pDoc = kustomer_json_parse(text.z, text.n, &zErr);
  kustomer_json_text_done(&text);
  if( pDoc==0 ){
    char *zMsg = zErr ? sqlite3_mprintf("Event %s", zErr) : 0;
    if( zMsg ) kustomer_result_event_error(ctx, 400, zMsg);
    else sqlite3_result_error_nomem(ctx);
    sqlite3_free(zMsg);
    goto done;
  }
  eType = kustomer_event_type(pDoc, &err);
  if( eType==SQLITE_NOMEM ){
    sqlite3_result_error_nomem(ctx);
    goto done;
  }
  /* Lookups first: a lookup error wins over a missing externalId. */
  if( eType==KTYPE_IDENTIFY
   && identify_lookups(ctx, pHttp, pDoc, pSet, &zId)!=SQLITE_OK ){
    goto done;
  }
  process_result(ctx, pDoc, pSet, eType, zId);

done:
  kustomer_error_clear(&err);
  sqlite3_free(zErr);
  sqlite3_free(zId);
  cJSON_Delete(pDoc);
  kustomer_settings_done(ctx, 1, pSet, bNewSet);
}

/* ---- kustomer_send ------------------------------------------------------ */

static int is_empty_object(const cJSON *p){
  return p==0 || cJSON_IsNull(p) || (cJSON_IsObject(p) && p->child==0);
}

/*
** The request an envelope describes, into *pReq (its URL and method point
** into pEnv; the body is *pzBody, to free).  The key is the settings' when
** given, else the envelope's Authorization header (*pzAuth, to free with
** kustomer_api_auth_free()).  0 after reporting an error on ctx.
*/
static int send_request(sqlite3_context *ctx, const cJSON *pEnv,
                        const KSettings *pSet, KHttpReq *pReq,
                        char **pzAuth, char **pzBody){
  const cJSON *pMethod = kustomer_json_member(pEnv, "method");
  const cJSON *pUrl = kustomer_json_member(pEnv, "endpoint");
  const cJSON *pJson;
  *pzAuth = *pzBody = 0;
  if( !cJSON_IsString(pMethod) || !cJSON_IsString(pUrl) ){
    const cJSON *pE = kustomer_json_member(pEnv, "error");
    if( cJSON_IsString(pE) ){
      kustomer_result_error(ctx, sqlite3_mprintf("kustomer_send(): argument 1 "
                            "is a failed transformation, not a request: %s",
                            pE->valuestring));
    }else{
      kustomer_result_error(ctx, sqlite3_mprintf("kustomer_send(): argument 1 "
                            "(request) needs string members \"method\" and "
                            "\"endpoint\""));
    }
    return 0;
  }
  if( !is_empty_object(kustomer_json_member(pEnv, "params")) ){
    kustomer_result_error(ctx, sqlite3_mprintf("kustomer_send(): request "
                          "params are not supported: put them in the "
                          "endpoint"));
    return 0;
  }
  if( pSet ){
    *pzAuth = auth_value(ctx, pSet, "kustomer_send");
    if( *pzAuth==0 ) return 0;
  }else{
    const cJSON *pA = kustomer_json_member(
        kustomer_json_member(pEnv, "headers"), "Authorization");
    if( cJSON_IsString(pA) ){
      *pzAuth = sqlite3_mprintf("%s", pA->valuestring);
      if( *pzAuth==0 ){
        sqlite3_result_error_nomem(ctx);
        return 0;
      }
    }
  }
  kustomer_api_request(pReq, pMethod->valuestring, pUrl->valuestring,
                       *pzAuth, pSet);
  pJson = kustomer_json_member(kustomer_json_member(pEnv, "body"), "JSON");
  /* An empty body is not sent with a GET. */
  if( pJson && !(cJSON_IsObject(pJson) && pJson->child==0
                 && strcmp(pMethod->valuestring, "GET")==0) ){
    sqlite3_str *p = sqlite3_str_new(0);
    kustomer_json_value(p, pJson);
    pReq->nBody = sqlite3_str_length(p);
    *pzBody = sqlite3_str_finish(p);
    if( *pzBody==0 ){
      sqlite3_result_error_nomem(ctx);
      return 0;
    }
    pReq->zBody = *pzBody;
  }
  return 1;
}

/* kustomer_send(request [, settings]) -> {"status":..,"headers":..,
** "body":..} */
static void send_func(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  KHttp *pHttp = (KHttp*)sqlite3_user_data(ctx);
  const KSettings *pSet = 0;
  int bNewSet = 0;
  cJSON *pEnv = 0;
  char *zErr = 0, *zAuth = 0, *zBody = 0;
  KHttpReq req;
  KHttpResp resp;
  KJsonText text;
  int rc;

  memset(&resp, 0, sizeof(resp));
  if( sqlite3_value_type(argv[0])==SQLITE_NULL ) return;
  rc = kustomer_json_text(sqlite3_context_db_handle(ctx), argv[0],
                          "kustomer_send", 1, "request", &text, &zErr);
  if( rc ){
    if( rc==SQLITE_ERROR ) kustomer_result_error(ctx, zErr);
    else kustomer_result_code(ctx, rc);
    return;
  }
  if( argc>1 && sqlite3_value_type(argv[1])!=SQLITE_NULL ){
    pSet = kustomer_settings_get(ctx, argc, argv, 1, "kustomer_send",
                                 &bNewSet);
    if( pSet==0 ){
      kustomer_json_text_done(&text);
      return;
    }
  }
  pEnv = kustomer_json_parse(text.z, text.n, &zErr);
  kustomer_json_text_done(&text);
  if( pEnv==0 ){
    kustomer_result_error(ctx, zErr ? sqlite3_mprintf("kustomer_send(): "
                          "argument 1 (request) %s", zErr) : 0);
    goto done;
  }
  if( !send_request(ctx, pEnv, pSet, &req, &zAuth, &zBody) ) goto done;
  if( kustomer_http_do(pHttp, &req, &resp) ){
    sqlite3_result_error_nomem(ctx);
  }else if( resp.eNet ){
    kustomer_result_error(ctx,
        sqlite3_mprintf("kustomer_send(): %s", resp.zErr));
  }else{
    sqlite3_str *pOut = sqlite3_str_new(0);
    sqlite3_str_appendf(pOut, "{\"status\":%ld,\"headers\":%s,\"body\":",
                        resp.status, resp.zHeaders);
    append_body(pOut, &resp, 0);
    sqlite3_str_appendchar(pOut, 1, '}');
    kustomer_result_str(ctx, pOut, 1);
  }

done:
  kustomer_http_resp_clear(&resp);
  kustomer_api_auth_free(zAuth);
  sqlite3_free(zBody);
  sqlite3_free(zErr);
  cJSON_Delete(pEnv);
  if( pSet ) kustomer_settings_done(ctx, 1, pSet, bNewSet);
}

int kustomer_register_network(sqlite3 *db){
  static const struct {
    const char *zName;
    int nArg;
    void (*xFunc)(sqlite3_context*, int, sqlite3_value**);
  } aFunc[] = {
    { "kustomer_process", 2, process_func },
    { "kustomer_send",    1, send_func },
    { "kustomer_send",    2, send_func },
  };
  KHttp *pHttp;
  size_t i;
  int rc = kustomer_http_new(&pHttp);
  if( rc ) return rc;
  for(i=0; i<sizeof(aFunc)/sizeof(aFunc[0]) && rc==SQLITE_OK; i++){
    /* Each registration holds a reference; SQLite drops it with the
    ** function (connection close or redefinition). */
    kustomer_http_ref(pHttp);
    rc = sqlite3_create_function_v2(db, aFunc[i].zName, aFunc[i].nArg,
             SQLITE_UTF8 | SQLITE_DIRECTONLY | SQLITE_RESULT_SUBTYPE, pHttp,
             aFunc[i].xFunc, 0, 0, kustomer_http_unref);
  }
  kustomer_http_unref(pHttp);
  return rc;
}
