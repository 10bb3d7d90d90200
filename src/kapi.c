/*
** Kustomer's HTTP conventions, in one place, over http.c's transport:
**
**   - the key: settings.apiKey, or the variable settings.apiKeyEnv names,
**     as "Bearer <key>", wiped when freed, and redacted from any error
**     text that a server could have echoed it into;
**   - Kustomer's message from an error body;
**   - what a response means (ok, retry after a backoff, wait for the rate
**     window, the host is down, the key is refused, fatal) and the one
**     backoff policy;
**   - the rate-limit headers (digits only) and the limiter that keeps a
**     caller within its share of the organisation's budget;
**   - the clocks: monotonic for deadlines, the wall for what other
**     processes read (ledgers, x-ratelimit-reset).
**
** kustomer_fetch, kustomer_send/kustomer_process, the outbox's flush and
** the sync all go through these; none of them decides any of this itself.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

/* ---- Clocks ------------------------------------------------------------- */

double kustomer_clock(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec/1e9;
}

double kustomer_wall(void){
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec/1e9;
}

/* ---- The key ------------------------------------------------------------ */

int kustomer_api_auth(const KSettings *pSet, int bRequired, char **pzAuth,
                      char **pzErr){
  *pzAuth = 0;
  *pzErr = 0;
  if( pSet->zKeyEnv && pSet->zAuth==0 ){
    const char *zKey = getenv(pSet->zKeyEnv);
    if( zKey==0 || zKey[0]==0 ){
      *pzErr = sqlite3_mprintf("the environment variable %s named by "
                               "apiKeyEnv is not set", pSet->zKeyEnv);
      return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
    }
    *pzAuth = sqlite3_mprintf("Bearer %s", zKey);
  }else if( !pSet->bHasKey && bRequired ){
    *pzErr = sqlite3_mprintf("settings must give apiKey or apiKeyEnv");
    return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }else{
    *pzAuth = sqlite3_mprintf("%s", pSet->zAuth);
  }
  return *pzAuth ? SQLITE_OK : SQLITE_NOMEM;
}

void kustomer_api_auth_free(char *zAuth){
  if( zAuth ){
    /* The key was in this buffer: do not leave it in freed memory. */
    memset(zAuth, 0, strlen(zAuth));
    sqlite3_free(zAuth);
  }
}

void kustomer_api_request(KHttpReq *pReq, const char *zMethod,
                          const char *zUrl, const char *zAuth,
                          const KSettings *pSet){
  memset(pReq, 0, sizeof(*pReq));
  pReq->zMethod = zMethod;
  pReq->zUrl = zUrl;
  pReq->zAuth = zAuth;
  pReq->timeoutMs = pSet ? pSet->timeoutMs : KUSTOMER_TIMEOUT_MS;
}

char *kustomer_api_redact(char *zMsg, const char *zAuth){
  const char *zKey = zAuth;
  sqlite3_str *p;
  const char *z, *zHit;
  size_t nKey;
  if( zMsg==0 || zKey==0 ) return zMsg;
  if( strncmp(zKey, "Bearer ", 7)==0 ) zKey += 7;
  nKey = strlen(zKey);
  /* A key of a few bytes would match ordinary words. */
  if( nKey<4 || strstr(zMsg, zKey)==0 ) return zMsg;
  p = sqlite3_str_new(0);
  z = zMsg;
  while( (zHit = strstr(z, zKey))!=0 ){
    sqlite3_str_append(p, z, (int)(zHit - z));
    sqlite3_str_appendall(p, "<redacted>");
    z = zHit + nKey;
  }
  sqlite3_str_appendall(p, z);
  sqlite3_free(zMsg);
  return sqlite3_str_finish(p);
}

/* ---- Kustomer's message -------------------------------------------------- */

char *kustomer_api_message(const KHttpResp *pResp, int nMax){
  char *zErr = 0, *zOut = 0;
  cJSON *pDoc = 0;
  int i, n;
  if( pResp->nBody>0 ){
    pDoc = kustomer_json_parse(pResp->zBody, pResp->nBody, &zErr);
    sqlite3_free(zErr);
  }
  if( pDoc ){
    /* {"errors":[{detail|title|message}]} or JSON:API's error objects,
    ** else a top-level message (kustomer-api.md 7). */
    static const char *const azKey[] = { "detail", "title", "message" };
    const cJSON *pErrs = kustomer_json_member(pDoc, "errors");
    const cJSON *pE = cJSON_IsArray(pErrs) ? pErrs->child : 0;
    const cJSON *pM = 0;
    for(i=0; i<3 && pE && pM==0; i++){
      pM = kustomer_json_member(pE, azKey[i]);
      if( !cJSON_IsString(pM) || pM->valuestring[0]==0 ) pM = 0;
    }
    if( pM==0 ){
      pM = kustomer_json_member(pDoc, "message");
      if( !cJSON_IsString(pM) || pM->valuestring[0]==0 ) pM = 0;
    }
    if( pM ) zOut = sqlite3_mprintf("%s", pM->valuestring);
    cJSON_Delete(pDoc);
    if( zOut ) return zOut;
  }
  /* Not Kustomer's shape: the start of the body, cut on a character
  ** boundary, control characters blanked so the message stays one line. */
  n = pResp->nBody>nMax ? nMax : pResp->nBody;
  while( n>0 && n<pResp->nBody && (pResp->zBody[n] & 0xC0)==0x80 ) n--;
  if( n==0 ) return 0;
  zOut = sqlite3_mprintf("%.*s%s", n, pResp->zBody,
                         n<pResp->nBody ? "..." : "");
  for(i=0; zOut && zOut[i]; i++){
    if( (unsigned char)zOut[i]<0x20 ) zOut[i] = ' ';
  }
  return zOut;
}

char *kustomer_api_data_id(const KHttpResp *pResp){
  char *zErr = 0, *zId = 0;
  cJSON *pDoc = kustomer_json_parse(pResp->zBody, pResp->nBody, &zErr);
  const cJSON *pId;
  sqlite3_free(zErr);
  pId = kustomer_json_member(kustomer_json_member(pDoc, "data"), "id");
  if( cJSON_IsString(pId) ) zId = sqlite3_mprintf("%s", pId->valuestring);
  cJSON_Delete(pDoc);
  return zId;
}

/* ---- What a response means ---------------------------------------------- */

int kustomer_api_class(const KHttpResp *pResp){
  switch( pResp->eNet ){
    case 0:
      break;
    case KNET_RESET: case KNET_TIMEDOUT: case KNET_PIPE:
      return KAPI_RETRY;
    case KNET_REFUSED_URL:
      return KAPI_FATAL;
    default:
      return KAPI_DOWN;
  }
  if( pResp->status>=200 && pResp->status<300 ) return KAPI_OK;
  if( pResp->status==429 ) return KAPI_WAIT;
  if( pResp->status==401 || pResp->status==403 ) return KAPI_AUTH;
  if( pResp->status>=500 || pResp->status==408 ) return KAPI_RETRY;
  return KAPI_FATAL;
}

double kustomer_api_backoff(int nTry, double base, double cap){
  unsigned int r;
  double s = base;
  while( --nTry>0 && s<cap ) s *= 2;
  if( s>cap ) s = cap;
  /* jitter: spread retries so that they do not arrive together */
  sqlite3_randomness(sizeof(r), &r);
  return s*(0.75 + 0.5*(r/4294967296.0));
}

/* ---- Rate-limit headers ------------------------------------------------- */

/* A header's value as digits (a '.' fraction allowed), -1 when absent or
** anything else: "1e3", "-1", "soon" and HTTP-dates are not numbers. */
static double header_digits(const cJSON *pHdr, const char *zName){
  const cJSON *pV = kustomer_json_member(pHdr, zName);
  const char *z;
  double r = 0, f = 1;
  int nDigit = 0;
  if( !cJSON_IsString(pV) ) return -1;
  z = pV->valuestring;
  while( *z==' ' || *z=='\t' ) z++;
  for(; *z>='0' && *z<='9'; z++, nDigit++) r = r*10 + (*z-'0');
  if( *z=='.' ){
    for(z++; *z>='0' && *z<='9'; z++, nDigit++){
      f /= 10;
      r += f*(*z-'0');
    }
  }
  while( *z==' ' || *z=='\t' ) z++;
  return (nDigit>0 && *z==0) ? r : -1;
}

void kustomer_api_rate(const KHttpResp *pResp, KApiRate *pRate){
  cJSON *pHdr = 0;
  const cJSON *pRetry;
  char *zErr = 0;
  pRate->limit = pRate->remaining = pRate->reset = pRate->retryAfter = -1;
  if( pResp->eNet || pResp->zHeaders==0 ) return;
  pHdr = kustomer_json_parse(pResp->zHeaders, (int)strlen(pResp->zHeaders),
                             &zErr);
  sqlite3_free(zErr);
  if( pHdr==0 ) return;
  pRate->limit = header_digits(pHdr, "x-ratelimit-limit");
  pRate->remaining = header_digits(pHdr, "x-ratelimit-remaining");
  pRate->reset = header_digits(pHdr, "x-ratelimit-reset");
  if( pRate->reset>1e9 ){
    /* Epoch seconds or seconds from now: both are seen (kustomer-api 6). */
    pRate->reset -= kustomer_wall();
    if( pRate->reset<0 ) pRate->reset = 0;
  }
  pRetry = kustomer_json_member(pHdr, "retry-after");
  pRate->retryAfter = kustomer_http_retry_after(cJSON_IsString(pRetry)
                                                ? pRetry->valuestring : 0);
  cJSON_Delete(pHdr);
}

double kustomer_api_rate_wait(const KApiRate *pRate){
  /* what the server asks for comes first */
  if( pRate->retryAfter>=0 ) return pRate->retryAfter;
  return pRate->reset;
}

/* ---- The limiter -------------------------------------------------------- */

int kustomer_limiter_init(KLimiter *p, double rateLimit, double budget,
                          double rateWindow){
  memset(p, 0, sizeof(*p));
  p->rateWindow = rateWindow;
  /* Requests reach Kustomer a little after they start, not all equally
  ** late: the window is widened by half a second (under 1% of Kustomer's
  ** minute, less than a request's worst delay on a busy network). */
  p->tWindow = rateWindow + 0.5;
  p->budget = budget;
  p->maxPause = 2*rateWindow;
  if( rateLimit>0 ){
    p->nAllowed = (int)floor(rateLimit*budget);
    if( p->nAllowed<1 ) p->nAllowed = 1;
  }
  return SQLITE_OK;
}

void kustomer_limiter_free(KLimiter *p){
  sqlite3_free(p->aSent);
  p->aSent = 0;
  p->nSent = p->nAlloc = 0;
}

/* Forget starts that left the window. */
static void limiter_prune(KLimiter *p, double t){
  int i, j;
  for(i=0, j=0; i<p->nSent; i++){
    if( p->aSent[i] > t - p->tWindow ) p->aSent[j++] = p->aSent[i];
  }
  p->nSent = j;
}

int kustomer_limiter_add(KLimiter *p, double t){
  if( p->nAllowed==0 ) return SQLITE_OK;   /* no budget: nothing to keep */
  limiter_prune(p, kustomer_wall());
  if( p->nSent==p->nAlloc ){
    int nNew = p->nAlloc ? p->nAlloc*2 : 64;
    double *aNew = sqlite3_realloc64(p->aSent, sizeof(double)*nNew);
    if( aNew==0 ) return SQLITE_NOMEM;
    p->aSent = aNew;
    p->nAlloc = nNew;
  }
  p->aSent[p->nSent++] = t;
  return SQLITE_OK;
}

int kustomer_limiter_available(KLimiter *p, int nInFlight){
  double t = kustomer_wall();
  int n;
  if( t < p->tPause ) return 0;
  if( p->nAllowed==0 ) return 1000000;
  limiter_prune(p, t);
  n = p->nAllowed - p->nSent - nInFlight;
  return n>0 ? n : 0;
}

double kustomer_limiter_wait(KLimiter *p){
  double t = kustomer_wall();
  double w = 0;
  if( t < p->tPause ) w = p->tPause - t;
  if( p->nAllowed>0 ){
    limiter_prune(p, t);
    if( p->nSent >= p->nAllowed ){
      /* the oldest start that must leave the window first */
      double wWin = p->aSent[p->nSent - p->nAllowed] + p->tWindow - t;
      if( wWin>w ) w = wWin;
    }
  }
  return w>0 ? w : 0;
}

/* Pause every start until w seconds from now (capped at maxPause). */
static void limiter_pause(KLimiter *p, double w){
  double t = kustomer_wall();
  if( p->maxPause>0 && w>p->maxPause ) w = p->maxPause;
  if( t + w > p->tPause ) p->tPause = t + w;
}

double kustomer_limiter_observe(KLimiter *p, const KHttpResp *pResp){
  KApiRate rate;
  double w;
  if( pResp->eNet ) return 0;
  kustomer_api_rate(pResp, &rate);
  w = kustomer_api_rate_wait(&rate);
  if( pResp->status==429 ){
    if( w<0 ){
      /* Nothing says when: back off from a second, doubling, up to a
      ** window (Kustomer answers 429 until its window resets). */
      w = kustomer_api_backoff(++p->n429, 1.0, p->rateWindow);
    }
    /* a reset rounded to the second may already be past */
    if( w<0.05 ) w = 0.05;
    limiter_pause(p, w);
    return w;
  }
  p->n429 = 0;
  if( rate.remaining>=0 && rate.remaining<1 && w>0 ){
    /* The budget is used up: wait for the reset rather than spend a
    ** request on a 429. */
    limiter_pause(p, w);
    return w;
  }
  return 0;
}
