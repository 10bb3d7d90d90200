/*
** Destination settings: the JSON object of RudderStack's Kustomer
** destination config (apiKey, baseEndpoint, advancedTransform,
** setIdentityEmail, disableEmailAsTrackingProperty, genericPage,
** genericScreen), plus this project's apiKeyEnv (the key from an
** environment variable, so it need not sit in SQL or a database), orgName
** and pod/orgPod (Kustomer's per-organisation and regional hosts),
** timeoutMs, identify's traitMapping and normalizeTraits, and tracking's
** timestampMeta.  Part of the core: no SQL context here (support.c reads
** the settings argument of a function, once per statement when constant).
*/
#include <string.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

void kustomer_settings_free(KSettings *p){
  if( p ){
    sqlite3_free(p->zBase);
    sqlite3_free(p->zAuth);
    sqlite3_free(p->zKeyEnv);
    sqlite3_free(p->zTimeMeta);
    sqlite3_free(p);
  }
}

/* Kustomer's pods (regions) and their API hosts (kustomer-api.md 1). */
static const struct { const char *zPod; const char *zHost; } aPod[] = {
  { "prod1", "https://api.kustomerapp.com" },
  { "prod2", "https://api.prod2.kustomerapp.com" },
  { "prod4", "https://api.prod4.kustomerapp.com" },
};

/* The API host from baseEndpoint, else orgName, else pod (Segment calls it
** orgPod), else the US default.  NULL and *pzErr on a bad value. */
static char *settings_base(const cJSON *pRoot, char **pzErr){
  const cJSON *pBase = kustomer_json_member(pRoot, "baseEndpoint");
  const cJSON *pOrg = kustomer_json_member(pRoot, "orgName");
  const cJSON *pPod = kustomer_json_member(pRoot, "pod");
  size_t i, n;
  if( !kustomer_js_truthy(pPod) ) pPod = kustomer_json_member(pRoot, "orgPod");
  if( kustomer_js_truthy(pBase) ){
    if( !cJSON_IsString(pBase) ){
      *pzErr = sqlite3_mprintf("baseEndpoint must be a string");
      return 0;
    }
    /* A trailing '/' would give "//v1/..." (DEVIATIONS D3). */
    n = strlen(pBase->valuestring);
    while( n>0 && pBase->valuestring[n-1]=='/' ) n--;
    return sqlite3_mprintf("%.*s", (int)n, pBase->valuestring);
  }
  if( kustomer_js_truthy(pOrg) ){
    const char *z = cJSON_IsString(pOrg) ? pOrg->valuestring : "";
    for(i=0; z[i]; i++){
      char c = z[i];
      if( !((c>='a' && c<='z') || (c>='A' && c<='Z') || (c>='0' && c<='9')
            || c=='-') ) break;
    }
    if( i==0 || z[i] || i>63 ){
      *pzErr = sqlite3_mprintf("orgName must be the organisation's name "
                               "(letters, digits and '-')");
      return 0;
    }
    return sqlite3_mprintf("https://%s.api.kustomerapp.com", z);
  }
  if( kustomer_js_truthy(pPod) ){
    for(i=0; cJSON_IsString(pPod) && i<sizeof(aPod)/sizeof(aPod[0]); i++){
      if( sqlite3_stricmp(pPod->valuestring, aPod[i].zPod)==0 ){
        return sqlite3_mprintf("%s", aPod[i].zHost);
      }
    }
    *pzErr = sqlite3_mprintf("pod must be one of prod1 (US), prod2 (EU), "
                             "prod4 (India)");
    return 0;
  }
  return sqlite3_mprintf("%s", KUSTOMER_DEFAULT_BASE);
}

/* The reference reads every flag by JavaScript truthiness. */
static int settings_flag(const cJSON *pObj, const char *zKey){
  return kustomer_js_truthy(kustomer_json_member(pObj, zKey));
}

int kustomer_settings_parse(const char *z, int n, KSettings **ppOut,
                            char **pzErr){
  cJSON *pRoot = 0;
  KSettings *pSet;
  const cJSON *pKey, *pEnv, *pTimeout;
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

  pSet->zBase = settings_base(pRoot, pzErr);
  if( pSet->zBase==0 ){
    rc = *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
    goto done;
  }

  pKey = kustomer_json_member(pRoot, "apiKey");
  pEnv = kustomer_json_member(pRoot, "apiKeyEnv");
  if( pEnv && !cJSON_IsNull(pEnv) ){
    if( !cJSON_IsString(pEnv) || pEnv->valuestring[0]==0 ){
      *pzErr = sqlite3_mprintf("apiKeyEnv must name an environment variable");
      rc = SQLITE_ERROR;
      goto done;
    }
    pSet->zKeyEnv = sqlite3_mprintf("%s", pEnv->valuestring);
    if( pSet->zKeyEnv==0 ){
      rc = SQLITE_NOMEM;
      goto done;
    }
  }
  /* "Bearer " + apiKey, as JavaScript interpolates it.  With only
  ** apiKeyEnv, the key is not known here: it is added at send time. */
  pSet->bHasKey = pKey!=0 || pSet->zKeyEnv!=0;
  if( pKey || pSet->zKeyEnv==0 ){
    pStr = sqlite3_str_new(0);
    sqlite3_str_appendall(pStr, "Bearer ");
    if( pKey ){
      kustomer_js_string(pStr, pKey);
    }else{
      sqlite3_str_appendall(pStr, "undefined");
    }
    pSet->zAuth = sqlite3_str_finish(pStr);
    if( pSet->zAuth==0 ){
      rc = SQLITE_NOMEM;
      goto done;
    }
  }

  pTimeout = kustomer_json_member(pRoot, "timeoutMs");
  if( pTimeout && !cJSON_IsNull(pTimeout) ){
    if( !cJSON_IsNumber(pTimeout) || pTimeout->valuedouble<1
     || pTimeout->valuedouble>86400000.0 ){
      *pzErr = sqlite3_mprintf("timeoutMs must be a number of milliseconds "
                               "between 1 and 86400000");
      rc = SQLITE_ERROR;
      goto done;
    }
    pSet->timeoutMs = (long)pTimeout->valuedouble;
  }else{
    pSet->timeoutMs = KUSTOMER_TIMEOUT_MS;
  }

  pSet->bAdvanced = settings_flag(pRoot, "advancedTransform");
  pSet->bIdentityEmail = settings_flag(pRoot, "setIdentityEmail");
  pSet->bDisableEmail = settings_flag(pRoot, "disableEmailAsTrackingProperty");
  pSet->bGenericPage = settings_flag(pRoot, "genericPage");
  pSet->bGenericScreen = settings_flag(pRoot, "genericScreen");
  pSet->bNormalize = settings_flag(pRoot, "normalizeTraits");
  {
    const cJSON *pMap = kustomer_json_member(pRoot, "traitMapping");
    if( pMap && !cJSON_IsNull(pMap) ){
      if( cJSON_IsString(pMap) && strcmp(pMap->valuestring, "segment")==0 ){
        pSet->bSegmentTraits = 1;
      }else if( !cJSON_IsString(pMap)
             || strcmp(pMap->valuestring, "rudderstack")!=0 ){
        *pzErr = sqlite3_mprintf("traitMapping must be \"rudderstack\" "
                                 "(the default) or \"segment\"");
        rc = SQLITE_ERROR;
        goto done;
      }
    }
  }
  {
    /* Kustomer reads a meta key ending in "At" as a date, and only then */
    const cJSON *pMeta = kustomer_json_member(pRoot, "timestampMeta");
    if( pMeta && !cJSON_IsNull(pMeta) ){
      size_t nKey = cJSON_IsString(pMeta) ? strlen(pMeta->valuestring) : 0;
      if( nKey<3 || nKey>100 || strcmp(pMeta->valuestring+nKey-2, "At")!=0 ){
        *pzErr = sqlite3_mprintf("timestampMeta must be a meta key ending in "
                                 "\"At\" (such as \"occurredAt\"), as "
                                 "Kustomer reads only those as dates");
        rc = SQLITE_ERROR;
        goto done;
      }
      pSet->zTimeMeta = sqlite3_mprintf("%s", pMeta->valuestring);
      if( pSet->zTimeMeta==0 ){
        rc = SQLITE_NOMEM;
        goto done;
      }
    }
  }

done:
  cJSON_Delete(pRoot);
  if( rc!=SQLITE_OK ){
    kustomer_settings_free(pSet);
    pSet = 0;
  }
  *ppOut = pSet;
  return rc;
}

char *kustomer_settings_check_stored(const char *zSettings){
  KSettings *pSet = 0;
  cJSON *pRoot;
  char *zErr = 0;
  int rc;
  if( zSettings==0 ){
    return sqlite3_mprintf("settings='{...}' is required (at least "
                           "apiKeyEnv, the variable holding the API key)");
  }
  rc = kustomer_settings_parse(zSettings, (int)strlen(zSettings),
                               &pSet, &zErr);
  if( rc ){
    char *zMsg = sqlite3_mprintf("settings %s", zErr ? zErr : "out of memory");
    sqlite3_free(zErr);
    return zMsg;
  }
  pRoot = kustomer_json_parse(zSettings, (int)strlen(zSettings), 0);
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
  return zErr;
}
