/*
** The HTTP transport: the only file that includes <curl/curl.h>.  What
** Kustomer's responses mean (retries, rate limits, its error messages, the
** key) is kapi.c's business; this file only moves bytes.
**
** One KHttp per database connection keeps a connection alive between
** successive requests to the same host.
** TLS is verified; plain http:// is refused unless the host is a loopback
** address (tests and local fakes).  Redirects are not followed: Kustomer
** does not redirect API calls, and a redirect must not carry the API key
** elsewhere.  Error texts carry curl's message, never a header value, so
** the API key cannot leak into them.
*/
#include <errno.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

/* One request at a time through a multi handle of one connection: each
** request gets a fresh easy handle and the multi keeps the connection
** alive.  libcurl 7.88 reads freed memory when an easy handle that has
** received headers is reset and reused for a response whose first header
** line starts with whitespace, and when a share's connection cache
** outlives the easy handle that used it (both found by
** tests/fuzz/fuzz_http.c and valgrind). */
struct KHttp {
  KHttpMulti *pMulti;
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
  p->pMulti = 0;
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
    kustomer_multi_free(p->pMulti);
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
  /* A server's bytes need not be UTF-8; the JSON made of them must be. */
  kustomer_json_string_lossy(p->pHdr, zName, strlen(zName));
  sqlite3_str_appendchar(p->pHdr, 1, ':');
  kustomer_json_string_lossy(p->pHdr, &z[i], len-i);
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

/*
** One transfer: an easy handle set up for a request, with what it owns
** (header list, copies of the body and of the Authorization line) and what
** it collects.  Used by the synchronous path and by the multi interface.
*/
typedef struct Xfer Xfer;
struct Xfer {
  CURL *h;
  struct curl_slist *pList;
  char *zAuthLine;          /* "Authorization: ...", wiped when freed */
  char *zUrl;               /* copies kept alive for the multi interface */
  char *zBody;
  Collect c;
  char aErr[CURL_ERROR_SIZE];
  sqlite3_int64 iTag;       /* the caller's name for the transfer */
  int nSent;                /* times libcurl was about to send it */
  int bRefused;             /* xSend refused a send */
  int (*xSend)(void*, int);
  void *pSendArg;
  Xfer *pNext;
};

/* libcurl is about to send the request, on a new or a kept-alive
** connection: the first time maybe long after the transfer started (a
** connection can wait a second for the server's accept), then again each
** time it resends on its own (the connection died before a reply).  The
** caller counts each, or refuses. */
static int prereq_cb(void *pArg, char *zIp, char *zLocal, int iRemote,
                     int iLocal){
  Xfer *x = (Xfer*)pArg;
  (void)zIp; (void)zLocal; (void)iRemote; (void)iLocal;
  if( x->xSend && x->xSend(x->pSendArg, x->nSent) ){
    x->bRefused = 1;
    return CURL_PREREQFUNC_ABORT;
  }
  x->nSent++;
  return CURL_PREREQFUNC_OK;
}

static void xfer_release(Xfer *x){
  if( x->c.pBody ) sqlite3_free(sqlite3_str_finish(x->c.pBody));
  if( x->c.pHdr ) sqlite3_free(sqlite3_str_finish(x->c.pHdr));
  x->c.pBody = x->c.pHdr = 0;
  curl_slist_free_all(x->pList);
  x->pList = 0;
  if( x->zAuthLine ){
    /* The key was in this buffer: do not leave it in freed memory. */
    memset(x->zAuthLine, 0, strlen(x->zAuthLine));
    sqlite3_free(x->zAuthLine);
    x->zAuthLine = 0;
  }
  sqlite3_free(x->zUrl);
  sqlite3_free(x->zBody);
  x->zUrl = x->zBody = 0;
  if( x->h ){
    /* Nothing of this request may be used by the next one on the handle. */
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, (struct curl_slist*)0);
    curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, (char*)0);
    curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, (char*)0);
    curl_easy_setopt(x->h, CURLOPT_PREREQFUNCTION,
                     (curl_prereq_callback)0);
  }
}

static int slist_add(struct curl_slist **ppList, const char *z){
  struct curl_slist *pNew = curl_slist_append(*ppList, z);
  if( pNew==0 ) return SQLITE_NOMEM;
  *ppList = pNew;
  return SQLITE_OK;
}

/* Set up x->h (already created) for pReq; the URL must have been checked. */
static int xfer_setup(Xfer *x, const KHttpReq *pReq){
  CURL *h = x->h;
  x->c.pBody = sqlite3_str_new(0);
  x->c.pHdr = sqlite3_str_new(0);
  x->c.nHdr = 0;
  x->zUrl = sqlite3_mprintf("%s", pReq->zUrl);
  if( x->zUrl==0 ) return SQLITE_NOMEM;
  if( pReq->zBody ){
    x->zBody = sqlite3_malloc64((sqlite3_uint64)pReq->nBody + 1);
    if( x->zBody==0 ) return SQLITE_NOMEM;
    memcpy(x->zBody, pReq->zBody, (size_t)pReq->nBody);
    x->zBody[pReq->nBody] = 0;
  }
  if( slist_add(&x->pList, "Content-Type: application/json")
   || slist_add(&x->pList, "Accept: application/json")
      /* Large bodies would wait for "100 Continue" first: not worth a
      ** round trip with Kustomer. */
   || slist_add(&x->pList, "Expect:") ){
    return SQLITE_NOMEM;
  }
  if( pReq->zAuth ){
    x->zAuthLine = sqlite3_mprintf("Authorization: %s", pReq->zAuth);
    if( x->zAuthLine==0 || slist_add(&x->pList, x->zAuthLine) ){
      return SQLITE_NOMEM;
    }
  }
  x->aErr[0] = 0;
  curl_easy_setopt(h, CURLOPT_URL, x->zUrl);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "kustomer-sqlite/" KUSTOMER_VERSION);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->pList);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->aErr);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, pReq->timeoutMs>0 ?
                   pReq->timeoutMs : (long)KUSTOMER_TIMEOUT_MS);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &x->c);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &x->c);
  curl_easy_setopt(h, CURLOPT_PRIVATE, (void*)x);
  x->nSent = 0;
  x->bRefused = 0;
  x->xSend = pReq->xSend;
  x->pSendArg = pReq->pSendArg;
  curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, prereq_cb);
  curl_easy_setopt(h, CURLOPT_PREREQDATA, (void*)x);
  if( strcmp(pReq->zMethod, "GET")==0 ){
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  }else{
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, pReq->zMethod);
    if( x->zBody ){
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                       (curl_off_t)pReq->nBody);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->zBody);
    }
  }
  return SQLITE_OK;
}

/* Turn a finished transfer into *pResp. */
static int xfer_finish(Xfer *x, CURLcode cc, KHttpResp *pResp){
  memset(pResp, 0, sizeof(*pResp));
  if( sqlite3_str_errcode(x->c.pBody) || sqlite3_str_errcode(x->c.pHdr) ){
    return SQLITE_NOMEM;
  }
  pResp->nResends = x->nSent>1 ? x->nSent-1 : 0;
  if( cc!=CURLE_OK && x->bRefused ){
    /* kept back by the rate limit: never sent, or (the connection died)
    ** not sent again at once: a dropped connection, for the caller's own
    ** retry rules */
    pResp->eNet = KNET_RESET;
    pResp->bNotSent = x->nSent==0;
    pResp->zErr = sqlite3_mprintf(x->nSent==0
        ? "not sent: no room in the rate window when its connection was up"
        : "Connection died before a reply (not sent again at once: the "
          "rate limit had no room)");
    return pResp->zErr ? SQLITE_OK : SQLITE_NOMEM;
  }
  if( cc!=CURLE_OK ){
    pResp->eNet = net_kind(cc);
    pResp->zErr = sqlite3_mprintf("%s%s%s", curl_easy_strerror(cc),
                                  x->aErr[0] ? ": " : "", x->aErr);
    return pResp->zErr ? SQLITE_OK : SQLITE_NOMEM;
  }
  curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &pResp->status);
  pResp->nBody = sqlite3_str_length(x->c.pBody);
  pResp->zBody = sqlite3_str_finish(x->c.pBody);
  x->c.pBody = 0;
  if( pResp->zBody==0 ) pResp->zBody = sqlite3_mprintf("");
  pResp->nHeader = x->c.nHdr;
  pResp->zHeaders = sqlite3_mprintf("{%s}", sqlite3_str_value(x->c.pHdr) ?
                                    sqlite3_str_value(x->c.pHdr) : "");
  if( pResp->zBody==0 || pResp->zHeaders==0 ){
    kustomer_http_resp_clear(pResp);
    return SQLITE_NOMEM;
  }
  return SQLITE_OK;
}

/* A request refused before it is sent, reported as a transport failure. */
static int refused_url(const KHttpReq *pReq, KHttpResp *pResp){
  memset(pResp, 0, sizeof(*pResp));
  if( kustomer_http_check_url(pReq->zUrl, &pResp->zErr)==SQLITE_OK ){
    return SQLITE_OK;
  }
  pResp->eNet = KNET_REFUSED_URL;
  return pResp->zErr ? SQLITE_DONE : SQLITE_NOMEM;
}

/* ---- The multi interface: concurrent transfers for the outbox ---------- */

struct KHttpMulti {
  CURLM *pMulti;
  int nRunning;             /* transfers started and not yet collected */
  Xfer *pList;              /* those transfers */
};

int kustomer_multi_new(KHttpMulti **ppOut, int nConn){
  KHttpMulti *p;
  *ppOut = 0;
  if( curl_global_init(CURL_GLOBAL_DEFAULT)!=CURLE_OK ) return SQLITE_ERROR;
  p = sqlite3_malloc(sizeof(*p));
  if( p==0 ){
    curl_global_cleanup();
    return SQLITE_NOMEM;
  }
  memset(p, 0, sizeof(*p));
  p->pMulti = curl_multi_init();
  if( p->pMulti==0 ){
    sqlite3_free(p);
    curl_global_cleanup();
    return SQLITE_NOMEM;
  }
  /* Connections are kept alive and reused across transfers. */
  curl_multi_setopt(p->pMulti, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)nConn);
  curl_multi_setopt(p->pMulti, CURLMOPT_MAX_HOST_CONNECTIONS, (long)nConn);
  *ppOut = p;
  return SQLITE_OK;
}

static void multi_drop(KHttpMulti *p, Xfer *x){
  Xfer **pp;
  for(pp=&p->pList; *pp && *pp!=x; pp=&(*pp)->pNext){}
  if( *pp ) *pp = x->pNext;
  curl_multi_remove_handle(p->pMulti, x->h);
  xfer_release(x);
  curl_easy_cleanup(x->h);
  sqlite3_free(x);
  p->nRunning--;
}

void kustomer_multi_free(KHttpMulti *p){
  if( p==0 ) return;
  while( p->pList ) multi_drop(p, p->pList);
  curl_multi_cleanup(p->pMulti);
  sqlite3_free(p);
  curl_global_cleanup();
}

int kustomer_multi_running(KHttpMulti *p){
  return p->nRunning;
}

int kustomer_multi_start(KHttpMulti *p, const KHttpReq *pReq,
                         sqlite3_int64 iTag, KHttpResp *pRefused){
  Xfer *x;
  int rc = refused_url(pReq, pRefused);
  if( rc ) return rc;     /* SQLITE_DONE: refused, *pRefused says why */
  x = sqlite3_malloc(sizeof(*x));
  if( x==0 ) return SQLITE_NOMEM;
  memset(x, 0, sizeof(*x));
  x->h = curl_easy_init();
  if( x->h==0 ){
    sqlite3_free(x);
    return SQLITE_NOMEM;
  }
  x->iTag = iTag;
  rc = xfer_setup(x, pReq);
  if( rc==SQLITE_OK && curl_multi_add_handle(p->pMulti, x->h)!=CURLM_OK ){
    rc = SQLITE_NOMEM;
  }
  if( rc ){
    xfer_release(x);
    curl_easy_cleanup(x->h);
    sqlite3_free(x);
    return rc;
  }
  x->pNext = p->pList;
  p->pList = x;
  p->nRunning++;
  return SQLITE_OK;
}

int kustomer_multi_next(KHttpMulti *p, int msWait, sqlite3_int64 *piTag,
                        KHttpResp *pResp){
  int nLeft, nActive;
  CURLMsg *pMsg;
  memset(pResp, 0, sizeof(*pResp));
  if( p->nRunning==0 ) return 0;
  curl_multi_perform(p->pMulti, &nActive);
  pMsg = curl_multi_info_read(p->pMulti, &nLeft);
  if( pMsg==0 && msWait>0 ){
    curl_multi_poll(p->pMulti, 0, 0, msWait, 0);
    curl_multi_perform(p->pMulti, &nActive);
    pMsg = curl_multi_info_read(p->pMulti, &nLeft);
  }
  while( pMsg && pMsg->msg!=CURLMSG_DONE ){
    pMsg = curl_multi_info_read(p->pMulti, &nLeft);
  }
  if( pMsg ){
    Xfer *x = 0;
    int rc;
    CURLcode cc = pMsg->data.result;
    curl_easy_getinfo(pMsg->easy_handle, CURLINFO_PRIVATE, (char**)&x);
    *piTag = x->iTag;
    rc = xfer_finish(x, cc, pResp);
    multi_drop(p, x);
    return rc==SQLITE_OK ? 1 : -rc;
  }
  return 0;
}

int kustomer_http_do(KHttp *pHttp, const KHttpReq *pReq, KHttpResp *pResp){
  sqlite3_int64 iTag;
  int rc;
  memset(pResp, 0, sizeof(*pResp));
  if( pHttp->pMulti==0 ){
    rc = kustomer_multi_new(&pHttp->pMulti, 1);
    if( rc ) return rc;
  }
  rc = kustomer_multi_start(pHttp->pMulti, pReq, 0, pResp);
  if( rc==SQLITE_DONE ) return SQLITE_OK;   /* refused: *pResp says why */
  if( rc ) return rc;
  do{
    rc = kustomer_multi_next(pHttp->pMulti, 1000, &iTag, pResp);
  }while( rc==0 );
  return rc<0 ? -rc : SQLITE_OK;
}

void kustomer_sleep(double s){
  struct timespec ts;
  if( !(s>0) ) return;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec)*1e9);
  if( ts.tv_nsec>999999999 ) ts.tv_nsec = 999999999;   /* rounding */
  while( nanosleep(&ts, &ts)!=0 && errno==EINTR ){}
}

double kustomer_http_retry_after(const char *z){
  time_t t;
  double r;
  if( z==0 ) return -1;
  while( *z==' ' || *z=='\t' ) z++;
  if( *z>='0' && *z<='9' ){
    /* delay-seconds: digits only (RFC 9110 10.2.3) */
    for(r=0; *z>='0' && *z<='9'; z++) r = r*10 + (*z-'0');
    while( *z==' ' || *z=='\t' ) z++;
    return *z==0 ? r : -1;
  }
  t = curl_getdate(z, 0);
  if( t==(time_t)-1 ) return -1;
  r = difftime(t, time(0));
  return r>0 ? r : 0;
}
