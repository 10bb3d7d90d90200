/*
** The HTTP client: the only file that includes <curl/curl.h>.
**
** One KHttp per database connection holds a curl easy handle, so that
** successive requests to the same host reuse the connection (keep-alive).
** TLS is verified; plain http:// is refused unless the host is a loopback
** address (tests and local fakes).  Redirects are not followed: Kustomer
** does not redirect API calls, and a redirect must not carry the API key
** elsewhere.  Error texts carry curl's message, never a header value, so
** the API key cannot leak into them.
*/
#include <string.h>
#include <curl/curl.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

struct KHttp {
  CURL *pCurl;
  int nRef;
};

int kustomer_http_new(KHttp **ppOut){
  KHttp *p;
  *ppOut = 0;
  /* Thread-safe since libcurl 7.84; repeated calls are reference counted. */
  if( curl_global_init(CURL_GLOBAL_DEFAULT)!=CURLE_OK ) return SQLITE_ERROR;
  p = sqlite3_malloc(sizeof(*p));
  if( p==0 ){
    curl_global_cleanup();
    return SQLITE_NOMEM;
  }
  p->pCurl = 0;
  p->nRef = 1;
  *ppOut = p;
  return SQLITE_OK;
}

void kustomer_http_ref(KHttp *p){
  p->nRef++;
}

void kustomer_http_unref(void *pArg){
  KHttp *p = (KHttp*)pArg;
  if( p && --p->nRef==0 ){
    if( p->pCurl ) curl_easy_cleanup(p->pCurl);
    sqlite3_free(p);
    curl_global_cleanup();
  }
}

/* Whether host (n bytes) is a loopback address: localhost, 127/8, ::1. */
static int is_loopback(const char *z, size_t n){
  size_t i;
  int nDot = 0;
  if( n==9 && sqlite3_strnicmp(z, "localhost", 9)==0 ) return 1;
  if( n==5 && memcmp(z, "[::1]", 5)==0 ) return 1;
  if( n<4 || memcmp(z, "127.", 4)!=0 ) return 0;
  for(i=0; i<n; i++){
    if( z[i]=='.' ){
      nDot++;
    }else if( z[i]<'0' || z[i]>'9' ){
      return 0;
    }
  }
  return nDot==3;
}

int kustomer_http_check_url(const char *zUrl, char **pzErr){
  const char *zHost, *zEnd;
  size_t n;
  *pzErr = 0;
  if( sqlite3_strnicmp(zUrl, "https://", 8)==0 ) return SQLITE_OK;
  if( sqlite3_strnicmp(zUrl, "http://", 7)!=0 ){
    *pzErr = sqlite3_mprintf("URL %Q is not http:// or https://", zUrl);
    return SQLITE_ERROR;
  }
  zHost = zUrl + 7;
  zEnd = zHost + strcspn(zHost, "/?#");
  n = (size_t)(zEnd - zHost);
  if( memchr(zHost, '@', n) ){
    *pzErr = sqlite3_mprintf("URL %Q has user information, which is refused",
                             zUrl);
    return SQLITE_ERROR;
  }
  if( zHost[0]=='[' ){
    const char *zClose = memchr(zHost, ']', n);
    if( zClose ) n = (size_t)(zClose - zHost) + 1;
  }else{
    const char *zColon = memchr(zHost, ':', n);
    if( zColon ) n = (size_t)(zColon - zHost);
  }
  if( !is_loopback(zHost, n) ){
    *pzErr = sqlite3_mprintf("plain http:// is refused for %.*s: use "
                             "https:// (http:// is allowed only for loopback "
                             "hosts)", (int)n, zHost);
    return SQLITE_ERROR;
  }
  return SQLITE_OK;
}

typedef struct Collect Collect;
struct Collect {
  sqlite3_str *pBody;
  sqlite3_str *pHdr;        /* JSON object members, without braces */
  int nHdr;
};

static size_t body_cb(char *z, size_t sz, size_t n, void *pArg){
  Collect *p = (Collect*)pArg;
  sqlite3_str_append(p->pBody, z, (int)(sz*n));
  return sqlite3_str_errcode(p->pBody) ? 0 : sz*n;
}

/* Response headers as a JSON object, names in lower case.  A status line
** starts a new response (after 100 Continue), so it resets the list. */
static size_t header_cb(char *z, size_t sz, size_t n, void *pArg){
  Collect *p = (Collect*)pArg;
  size_t len = sz*n, i, iColon;
  char *zName;
  if( len>=5 && memcmp(z, "HTTP/", 5)==0 ){
    sqlite3_str_reset(p->pHdr);
    p->nHdr = 0;
    return len;
  }
  while( len>0 && (z[len-1]=='\r' || z[len-1]=='\n') ) len--;
  for(iColon=0; iColon<len && z[iColon]!=':'; iColon++){}
  if( iColon==0 || iColon>=len ) return sz*n;
  zName = sqlite3_mprintf("%.*s", (int)iColon, z);
  if( zName==0 ) return 0;
  for(i=0; zName[i]; i++){
    if( zName[i]>='A' && zName[i]<='Z' ) zName[i] += 'a' - 'A';
  }
  i = iColon+1;
  while( i<len && (z[i]==' ' || z[i]=='\t') ) i++;
  if( p->nHdr++ ) sqlite3_str_appendchar(p->pHdr, 1, ',');
  kustomer_json_string(p->pHdr, zName, strlen(zName));
  sqlite3_str_appendchar(p->pHdr, 1, ':');
  kustomer_json_string(p->pHdr, &z[i], len-i);
  sqlite3_free(zName);
  return sqlite3_str_errcode(p->pHdr) ? 0 : sz*n;
}

void kustomer_http_resp_clear(KHttpResp *p){
  sqlite3_free(p->zBody);
  sqlite3_free(p->zHeaders);
  sqlite3_free(p->zErr);
  memset(p, 0, sizeof(*p));
}

/* The reference's names for transport failures (networkUtils.js). */
static int net_kind(CURLcode rc){
  switch( rc ){
    case CURLE_COULDNT_CONNECT:     return KNET_REFUSED;
    case CURLE_OPERATION_TIMEDOUT:  return KNET_TIMEDOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return KNET_DNS;
    case CURLE_SEND_ERROR:          return KNET_PIPE;
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:        return KNET_RESET;
    default:                        return KNET_OTHER;
  }
}

int kustomer_http_do(KHttp *pHttp, const KHttpReq *pReq, KHttpResp *pResp){
  Collect c;
  struct curl_slist *pList = 0, *pNew;
  char aErr[CURL_ERROR_SIZE];
  char *zAuth = 0;
  CURLcode cc;
  CURL *h;
  int rc = SQLITE_OK;

  memset(pResp, 0, sizeof(*pResp));
  if( kustomer_http_check_url(pReq->zUrl, &pResp->zErr) ){
    pResp->eNet = KNET_REFUSED_URL;
    return pResp->zErr ? SQLITE_OK : SQLITE_NOMEM;
  }
  if( pHttp->pCurl==0 ){
    pHttp->pCurl = curl_easy_init();
    if( pHttp->pCurl==0 ) return SQLITE_NOMEM;
  }
  h = pHttp->pCurl;
  curl_easy_reset(h);   /* keeps the connection cache */

  memset(&c, 0, sizeof(c));
  c.pBody = sqlite3_str_new(0);
  c.pHdr = sqlite3_str_new(0);

  pNew = curl_slist_append(pList, "Content-Type: application/json");
  if( pNew ) pList = pNew;
  pNew = pNew ? curl_slist_append(pList, "Accept: application/json") : 0;
  if( pNew ) pList = pNew;
  /* Large bodies would wait for "100 Continue" first: not worth a round
  ** trip with Kustomer. */
  pNew = pNew ? curl_slist_append(pList, "Expect:") : 0;
  if( pNew ) pList = pNew;
  if( pNew && pReq->zAuth ){
    zAuth = sqlite3_mprintf("Authorization: %s", pReq->zAuth);
    pNew = zAuth ? curl_slist_append(pList, zAuth) : 0;
    if( pNew ) pList = pNew;
  }
  if( pNew==0 ){
    rc = SQLITE_NOMEM;
    goto done;
  }

  aErr[0] = 0;
  curl_easy_setopt(h, CURLOPT_URL, pReq->zUrl);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "kustomer-sqlite/" KUSTOMER_VERSION);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, pList);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, aErr);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, pReq->timeoutMs>0 ?
                   pReq->timeoutMs : 30000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &c);
  if( strcmp(pReq->zMethod, "GET")==0 ){
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  }else{
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, pReq->zMethod);
    if( pReq->zBody ){
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                       (curl_off_t)pReq->nBody);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, pReq->zBody);
    }
  }

  cc = curl_easy_perform(h);
  if( sqlite3_str_errcode(c.pBody) || sqlite3_str_errcode(c.pHdr) ){
    rc = SQLITE_NOMEM;
    goto done;
  }
  if( cc!=CURLE_OK ){
    pResp->eNet = net_kind(cc);
    pResp->zErr = sqlite3_mprintf("%s%s%s", curl_easy_strerror(cc),
                                  aErr[0] ? ": " : "", aErr);
    if( pResp->zErr==0 ) rc = SQLITE_NOMEM;
    goto done;
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &pResp->status);
  pResp->nBody = sqlite3_str_length(c.pBody);
  pResp->zBody = sqlite3_str_finish(c.pBody);
  c.pBody = 0;
  if( pResp->zBody==0 ){
    pResp->zBody = sqlite3_mprintf("");
    if( pResp->zBody==0 ) rc = SQLITE_NOMEM;
  }
  pResp->nHeader = c.nHdr;
  pResp->zHeaders = sqlite3_mprintf("{%s}", sqlite3_str_value(c.pHdr) ?
                                    sqlite3_str_value(c.pHdr) : "");
  if( pResp->zHeaders==0 ) rc = SQLITE_NOMEM;

done:
  if( c.pBody ) sqlite3_free(sqlite3_str_finish(c.pBody));
  sqlite3_free(sqlite3_str_finish(c.pHdr));
  curl_slist_free_all(pList);
  if( zAuth ){
    /* The key was in this buffer: do not leave it in freed memory. */
    memset(zAuth, 0, strlen(zAuth));
    sqlite3_free(zAuth);
  }
  /* Nothing of this request may be used by the next one. */
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, (struct curl_slist*)0);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, (char*)0);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, (char*)0);
  if( rc!=SQLITE_OK ) kustomer_http_resp_clear(pResp);
  return rc;
}
