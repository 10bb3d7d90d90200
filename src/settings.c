/*
** Destination settings: the JSON object of RudderStack's Kustomer
** destination config (apiKey, baseEndpoint, advancedTransform,
** setIdentityEmail, disableEmailAsTrackingProperty, genericPage,
** genericScreen), parsed once per statement when it is a constant.
*/
#include <string.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

#define KUSTOMER_DEFAULT_BASE "https://api.kustomerapp.com"

void kustomer_settings_free(KSettings *p){
  if( p ){
    sqlite3_free(p->zBase);
    sqlite3_free(p->zAuth);
    sqlite3_free(p);
  }
}

/* The reference reads every flag by JavaScript truthiness. */
static int settings_flag(const cJSON *pObj, const char *zKey){
  return kustomer_js_truthy(kustomer_json_member(pObj, zKey));
}

int kustomer_settings_parse(const char *z, int n, KSettings **ppOut,
                            char **pzErr){
  cJSON *pRoot = 0;
  KSettings *pSet;
  const cJSON *pBase, *pKey;
  sqlite3_str *pStr;
  int rc = SQLITE_OK;

  *ppOut = 0;
  *pzErr = 0;
  pSet = sqlite3_malloc(sizeof(*pSet));
  if( pSet==0 ) return SQLITE_NOMEM;
  memset(pSet, 0, sizeof(*pSet));
  if( z ){
    pRoot = kustomer_json_parse(z, n, pzErr);
    if( pRoot==0 ){
      rc = *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
      goto done;
    }
    if( !cJSON_IsObject(pRoot) ){
      *pzErr = sqlite3_mprintf("must be a JSON object");
      rc = SQLITE_ERROR;
      goto done;
    }
  }

  pBase = kustomer_json_member(pRoot, "baseEndpoint");
  if( kustomer_js_truthy(pBase) ){
    size_t nBase;
    if( !cJSON_IsString(pBase) ){
      *pzErr = sqlite3_mprintf("baseEndpoint must be a string");
      rc = SQLITE_ERROR;
      goto done;
    }
    /* A trailing '/' would give "//v1/..." (DEVIATIONS D3). */
    nBase = strlen(pBase->valuestring);
    while( nBase>0 && pBase->valuestring[nBase-1]=='/' ) nBase--;
    pSet->zBase = sqlite3_mprintf("%.*s", (int)nBase, pBase->valuestring);
  }else{
    pSet->zBase = sqlite3_mprintf("%s", KUSTOMER_DEFAULT_BASE);
  }

  /* "Bearer " + apiKey, as JavaScript interpolates it. */
  pKey = kustomer_json_member(pRoot, "apiKey");
  pStr = sqlite3_str_new(0);
  sqlite3_str_appendall(pStr, "Bearer ");
  if( pKey ){
    kustomer_js_string(pStr, pKey);
  }else{
    sqlite3_str_appendall(pStr, "undefined");
  }
  pSet->zAuth = sqlite3_str_finish(pStr);
  if( pSet->zBase==0 || pSet->zAuth==0 ){
    rc = SQLITE_NOMEM;
    goto done;
  }

  pSet->bAdvanced = settings_flag(pRoot, "advancedTransform");
  pSet->bIdentityEmail = settings_flag(pRoot, "setIdentityEmail");
  pSet->bDisableEmail = settings_flag(pRoot, "disableEmailAsTrackingProperty");
  pSet->bGenericPage = settings_flag(pRoot, "genericPage");
  pSet->bGenericScreen = settings_flag(pRoot, "genericScreen");

done:
  cJSON_Delete(pRoot);
  if( rc!=SQLITE_OK ){
    kustomer_settings_free(pSet);
    pSet = 0;
  }
  *ppOut = pSet;
  return rc;
}

/* Settings when none are given: the reference's defaults. */
static KSettings defaultSettings = {
  (char*)KUSTOMER_DEFAULT_BASE, (char*)"Bearer undefined", 0, 0, 0, 0, 0
};

static void settings_error(sqlite3_context *ctx, char *zMsg){
  if( zMsg ){
    sqlite3_result_error(ctx, zMsg, -1);
    sqlite3_free(zMsg);
  }else{
    sqlite3_result_error_nomem(ctx);
  }
}

KSettings *kustomer_settings_get(sqlite3_context *ctx, int argc,
                                 sqlite3_value **argv, int iArg,
                                 const char *zFunc, int *pbNew){
  KSettings *pSet;
  const char *zText;
  char *zErr = 0;
  int rc;

  *pbNew = 0;
  if( iArg>=argc || sqlite3_value_type(argv[iArg])==SQLITE_NULL ){
    return &defaultSettings;
  }
  pSet = sqlite3_get_auxdata(ctx, iArg);
  if( pSet ) return pSet;
  if( sqlite3_value_type(argv[iArg])!=SQLITE_TEXT ){
    settings_error(ctx, sqlite3_mprintf("%s(): argument %d (settings) must "
                   "be JSON text", zFunc, iArg+1));
    return 0;
  }
  zText = (const char*)sqlite3_value_text(argv[iArg]);
  rc = zText==0 ? SQLITE_NOMEM :
       kustomer_settings_parse(zText, sqlite3_value_bytes(argv[iArg]),
                               &pSet, &zErr);
  if( rc==SQLITE_NOMEM ){
    sqlite3_result_error_nomem(ctx);
    return 0;
  }
  if( rc!=SQLITE_OK ){
    settings_error(ctx, sqlite3_mprintf("%s(): argument %d (settings) %s",
                                        zFunc, iArg+1, zErr));
    sqlite3_free(zErr);
    return 0;
  }
  *pbNew = 1;
  return pSet;
}

void kustomer_settings_done(sqlite3_context *ctx, int iArg, KSettings *pSet,
                            int bNew){
  /* Last use of pSet: SQLite may free it before set_auxdata returns. */
  if( bNew ){
    sqlite3_set_auxdata(ctx, iArg, pSet,
                        (void(*)(void*))kustomer_settings_free);
  }
}
