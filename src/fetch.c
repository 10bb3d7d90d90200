/*
** kustomer_fetch(path, settings [, body]): Kustomer's own records back in
** SQLite, one row per record, following pagination.
**
**   INSERT INTO customers(id, name, updated_at)
**     SELECT id, json_extract(attributes, '$.name'),
**            json_extract(attributes, '$.updatedAt')
**       FROM kustomer_fetch('/v1/customers?pageSize=100',
**              '{"orgName":"acme","apiKeyEnv":"KUSTOMER_API_KEY"}');
**
** Columns: type, id, attributes (JSON), relationships (JSON or NULL), page
** (1 for the first response of the call), record (the whole record), and
** the arguments as HIDDEN columns.  Without body the path is fetched with
** GET and links.next followed; with body (a JSON object) it is POSTed, as
** search is, and pages are advanced with page=N.  Pages are fetched as rows
** are read, so a LIMIT also stops the requests.
**
** 429s wait for the rate limit's reset; 5xx, 408, timeouts and dropped
** connections are retried with backoff; anything else is an SQL error with
** Kustomer's message.  SQLITE_VTAB_DIRECTONLY and eponymous-only: a view or
** trigger in a database file someone else wrote cannot make this
** connection send requests.  The API key goes only into the Authorization
** header.
*/
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

#define FETCH_MAX_TRIES  5        /* attempts at a page on 5xx/timeouts */
#define FETCH_MAX_WAIT   120.0    /* seconds: a longer 429 wait is an error */
/* make test also builds these small (LIMITS in the Makefile) to reach them */
#ifndef FETCH_DEADLINE
# define FETCH_DEADLINE  300.0    /* seconds for all attempts at one page */
#endif
#ifndef FETCH_MAX_PAGES
# define FETCH_MAX_PAGES 100000   /* beyond this, pagination looks endless */
#endif

/* Columns. */
#define FETCH_TYPE          0
#define FETCH_ID            1
#define FETCH_ATTRIBUTES    2
#define FETCH_RELATIONSHIPS 3
#define FETCH_PAGE          4
#define FETCH_RECORD        5
#define FETCH_PATH          6   /* HIDDEN: argument 1 */
#define FETCH_SETTINGS      7   /* HIDDEN: argument 2 */
#define FETCH_BODY          8   /* HIDDEN: argument 3 */


typedef struct FetchVtab FetchVtab;
struct FetchVtab {
  sqlite3_vtab base;
  KHttp *pHttp;             /* the connection's client: keep-alive */
};

typedef struct FetchCursor FetchCursor;
struct FetchCursor {
  sqlite3_vtab_cursor base;
  char *zBase;              /* API host from the settings */
  char *zAuth;              /* Authorization value; wiped when freed */
  char *zBody;              /* POST body (compact JSON); NULL: GET */
  int nBody;
  long timeoutMs;
  char *zFirst;             /* the path as given (POST: pages derive) */
  char *zPath;              /* path of the next request; NULL: no more */
  int iPageParam;           /* POST: page=N of the next request */
  int nPage;                /* responses received: the page column */
  cJSON *pDoc;              /* the current page */
  const cJSON *pRow;        /* current record; NULL at the end */
  int bArray;               /* data is an array (else a single object) */
  KLimiter lim;             /* waits the responses ask for */
  sqlite3_int64 iRowid;
  sqlite3_uint64 *aSeen;    /* hashes of the GET paths fetched */
  int nSeen, nSeenSlot;
};

/* The fuzzing build (tests/fuzz/fuzz_http.c) shortens the waits, which a
** server can make minutes long, so that each input stays short. */
#ifndef FETCH_SLEEP_MAX
# define FETCH_SLEEP_MAX 1e9
#endif
static void fetch_sleep(void *pArg, double s){
  (void)pArg;
  kustomer_sleep(s < FETCH_SLEEP_MAX ? s : FETCH_SLEEP_MAX);
}

/* ---- Paths -------------------------------------------------------------- */

/*
** Offset of the first byte of a path that may not be sent as it is
** (space, control, non-ASCII, '\', '#': all must be percent-encoded), or
** -1 when the whole path is fine.
*/
static int path_bad_byte(const char *z){
  int i;
  for(i=0; z[i]; i++){
    unsigned char c = (unsigned char)z[i];
    if( c<=0x20 || c>=0x7f || c=='\\' || c=='#' ) return i;
  }
  return -1;
}

/* A path on the API host: one leading '/' ("//host" names another). */
static int path_is_local(const char *z){
  return z[0]=='/' && z[1]!='/';
}

/*
** The path with its page query parameter set to iPage: the first page=
** replaced where it stands, later ones dropped, else page=N appended.
*/
static char *path_with_page(const char *zPath, int iPage){
  sqlite3_str *p = sqlite3_str_new(0);
  const char *zQ = strchr(zPath, '?');
  int bDone = 0, bFirst = 1;
  if( zQ==0 ){
    sqlite3_str_appendf(p, "%s?page=%d", zPath, iPage);
    return sqlite3_str_finish(p);
  }
  sqlite3_str_append(p, zPath, (int)(zQ - zPath));
  zQ++;
  while( 1 ){
    size_t n = strcspn(zQ, "&");
    int bPage = (n>=4 && memcmp(zQ, "page", 4)==0 && (n==4 || zQ[4]=='='));
    if( n>0 && !(bPage && bDone) ){
      sqlite3_str_appendchar(p, 1, bFirst ? '?' : '&');
      bFirst = 0;
      if( bPage ){
        sqlite3_str_appendf(p, "page=%d", iPage);
        bDone = 1;
      }else{
        sqlite3_str_append(p, zQ, (int)n);
      }
    }
    if( zQ[n]==0 ) break;
    zQ += n+1;
  }
  if( !bDone ) sqlite3_str_appendf(p, "%cpage=%d", bFirst ? '?' : '&', iPage);
  return sqlite3_str_finish(p);
}

/* The page=N of a path, 1 when absent or not a positive integer. */
static int path_page(const char *zPath){
  const char *z = strchr(zPath, '?');
  while( z ){
    z++;
    if( strncmp(z, "page=", 5)==0 ){
      int i, v = 0;
      for(i=5; z[i]>='0' && z[i]<='9' && v<100000000; i++){
        v = v*10 + (z[i]-'0');
      }
      return (v>0 && (z[i]==0 || z[i]=='&')) ? v : 1;
    }
    z = strchr(z, '&');
  }
  return 1;
}

/* ---- Pages seen: a GET loop would never end ----------------------------- */

static sqlite3_uint64 path_hash(const char *z){
  sqlite3_uint64 h = 0xcbf29ce484222325ULL;   /* FNV-1a */
  while( *z ){
    h ^= (unsigned char)*z++;
    h *= 0x100000001b3ULL;
  }
  return h ? h : 1;   /* 0 marks an empty slot */
}

/* Record a path: 1 if it was seen before, 0 if new, or SQLITE_NOMEM
** (negated). */
static int seen_add(FetchCursor *pCur, const char *zPath){
  sqlite3_uint64 h = path_hash(zPath);
  int i;
  if( pCur->nSeen*2 >= pCur->nSeenSlot ){
    int nNew = pCur->nSeenSlot ? pCur->nSeenSlot*2 : 64;
    sqlite3_uint64 *aNew;
    aNew = sqlite3_malloc64(sizeof(*aNew)*(sqlite3_uint64)nNew);
    if( aNew==0 ) return -SQLITE_NOMEM;
    memset(aNew, 0, sizeof(*aNew)*(size_t)nNew);
    for(i=0; i<pCur->nSeenSlot; i++){
      sqlite3_uint64 x = pCur->aSeen[i];
      int j;
      if( x==0 ) continue;
      for(j=(int)(x & (sqlite3_uint64)(nNew-1)); aNew[j]; j=(j+1)&(nNew-1)){}
      aNew[j] = x;
    }
    sqlite3_free(pCur->aSeen);
    pCur->aSeen = aNew;
    pCur->nSeenSlot = nNew;
  }
  for(i=(int)(h & (sqlite3_uint64)(pCur->nSeenSlot-1)); pCur->aSeen[i];
      i=(i+1)&(pCur->nSeenSlot-1)){
    if( pCur->aSeen[i]==h ) return 1;
  }
  pCur->aSeen[i] = h;
  pCur->nSeen++;
  return 0;
}

/* ---- Errors ------------------------------------------------------------- */

/* Set the vtab's error to zMsg (from sqlite3_mprintf, owned), the key
** redacted from it. */
static int fetch_error(FetchCursor *pCur, char *zMsg){
  return kustomer_vtab_error(pCur->base.pVtab,
                             kustomer_api_redact(zMsg, pCur->zAuth));
}

/* The SQL error for an HTTP status that ends the fetch. */
static int status_error(FetchCursor *pCur, const KHttpResp *pResp,
                        const char *zMethod, int nTry, const char *zWhy){
  char *zMsg = kustomer_api_message(pResp, 200);
  sqlite3_str *p = sqlite3_str_new(0);
  sqlite3_str_appendf(p, "kustomer_fetch(): HTTP %ld from %s %s",
                      pResp->status, zMethod, pCur->zPath);
  if( zMsg ) sqlite3_str_appendf(p, ": %s", zMsg);
  if( zWhy ) sqlite3_str_appendf(p, " (%s)", zWhy);
  else if( nTry>1 ) sqlite3_str_appendf(p, " (after %d attempts)", nTry);
  sqlite3_free(zMsg);
  return fetch_error(pCur, sqlite3_str_finish(p));
}

/* The SQL error for a transport failure that ends the fetch. */
static int net_error(FetchCursor *pCur, const KHttpResp *pResp,
                     const char *zMethod, int nTry){
  if( pResp->eNet==KNET_REFUSED_URL ){
    return fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): %s",
                                             pResp->zErr));
  }
  if( nTry>1 ){
    return fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): %s %s: %s "
                       "(after %d attempts)", zMethod, pCur->zPath,
                       pResp->zErr, nTry));
  }
  return fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): %s %s: %s",
                                           zMethod, pCur->zPath,
                                           pResp->zErr));
}

/* The SQL error for a 429 whose wait is more than fetch allows. */
static int wait_error(FetchCursor *pCur, const KHttpResp *pResp,
                      const char *zMethod, int nTry, double wait,
                      int bDeadline){
  char *zWhy = bDeadline ?
      sqlite3_mprintf("still rate limited after %.0f s", FETCH_DEADLINE) :
      sqlite3_mprintf("the rate limit resets in %.0f s; kustomer_fetch() "
                      "waits at most %.0f s", wait, FETCH_MAX_WAIT);
  int rc = zWhy ? status_error(pCur, pResp, zMethod, nTry, zWhy)
                : SQLITE_NOMEM;
  sqlite3_free(zWhy);
  return rc;
}

/* ---- Requests ----------------------------------------------------------- */

/*
** GET or POST pCur->zPath, retrying what is worth retrying, within the
** rate limit the responses report.  SQLITE_OK leaves a 2xx response in
** *pResp (clear it after use); anything else has set the vtab's error.
** A page gets FETCH_MAX_TRIES attempts and FETCH_DEADLINE seconds.
*/
static int fetch_request(FetchCursor *pCur, KHttpResp *pResp){
  const char *zMethod = pCur->zBody ? "POST" : "GET";
  char *zUrl = sqlite3_mprintf("%s%s", pCur->zBase, pCur->zPath);
  KApiCall call;
  KHttpReq req;
  int rc;

  memset(pResp, 0, sizeof(*pResp));
  if( zUrl==0 ) return SQLITE_NOMEM;
  kustomer_api_request(&req, zMethod, zUrl, pCur->zAuth, 0);
  req.timeoutMs = pCur->timeoutMs;
  req.zBody = pCur->zBody;
  req.nBody = pCur->nBody;
  memset(&call, 0, sizeof(call));
  call.pHttp = ((FetchVtab*)pCur->base.pVtab)->pHttp;
  call.pLim = &pCur->lim;
  call.nMaxTries = FETCH_MAX_TRIES;
  call.tDeadline = kustomer_clock() + FETCH_DEADLINE;
  call.maxWait = FETCH_MAX_WAIT;
  call.backoffBase = 0.25;
  call.backoffCap = 8.0;
  call.xSleep = fetch_sleep;
  rc = kustomer_api_call(&call, &req, pResp);
  sqlite3_free(zUrl);
  if( rc ) return rc;
  switch( call.eEnd ){
    case KCALL_OK:
      return SQLITE_OK;
    case KCALL_WAIT:
      rc = wait_error(pCur, pResp, zMethod, call.nTry+1, call.wait, 0);
      break;
    case KCALL_DEADLINE:
    case KCALL_STOPPED:
      rc = wait_error(pCur, pResp, zMethod, call.nTry+1, call.wait, 1);
      break;
    case KCALL_NET:
      rc = net_error(pCur, pResp, zMethod, call.nTry);
      break;
    default:
      rc = status_error(pCur, pResp, zMethod, call.nTry, 0);
      break;
  }
  kustomer_http_resp_clear(pResp);
  return rc;
}

/* ---- Pages -------------------------------------------------------------- */

/* Free the current page. */
static void page_clear(FetchCursor *pCur){
  cJSON_Delete(pCur->pDoc);
  pCur->pDoc = 0;
  pCur->pRow = 0;
}

/*
** The path links.next leads to (into *pzPath), or an error.  It must stay
** on the API host: the key would go wherever it points.
*/
static int next_path(FetchCursor *pCur, const char *zNext, char **pzPath){
  const char *zPath = zNext;
  size_t nBase = strlen(pCur->zBase);
  int iBad;
  *pzPath = 0;
  if( sqlite3_strnicmp(zNext, "http://", 7)==0
   || sqlite3_strnicmp(zNext, "https://", 8)==0 || zNext[0]=='/' ){
    if( sqlite3_strnicmp(zNext, pCur->zBase, (int)nBase)==0
     && zNext[nBase]=='/' ){
      zPath = zNext + nBase;
    }
    if( !path_is_local(zPath) ){
      return fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): links.next "
                         "of page %d points to another host than %s: %Q",
                         pCur->nPage, pCur->zBase, zNext));
    }
  }else{
    return fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): links.next of "
                       "page %d is not a path or URL: %Q", pCur->nPage,
                       zNext));
  }
  iBad = path_bad_byte(zPath);
  if( iBad>=0 ){
    return fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): links.next of "
                       "page %d has a character that must be percent-encoded "
                       "at offset %d: %Q", pCur->nPage,
                       (int)(zPath - zNext) + iBad, zNext));
  }
  *pzPath = sqlite3_mprintf("%s", zPath);
  return *pzPath ? SQLITE_OK : SQLITE_NOMEM;
}

/* Whether the page just read was the last, for a POST: links.next says
** so when present, else meta.totalPages. */
static int post_is_last(const cJSON *pDoc, int iPage){
  const cJSON *pLinks = kustomer_json_member(pDoc, "links");
  const cJSON *pNext = kustomer_json_member(pLinks, "next");
  const cJSON *pTotal;
  if( pNext ) return !cJSON_IsString(pNext);
  pTotal = kustomer_json_member(kustomer_json_member(pDoc, "meta"),
                                "totalPages");
  return cJSON_IsNumber(pTotal) && iPage>=pTotal->valuedouble;
}

/*
** Fetch the page at pCur->zPath, make its first record current and work
** out the path of the page after it (NULL: none).  An empty page ends the
** fetch.
*/
static int fetch_page(FetchCursor *pCur){
  const char *zMethod = pCur->zBody ? "POST" : "GET";
  const cJSON *pData, *pRow;
  KHttpResp resp;
  char *zErr = 0, *zNext = 0;
  int rc, i;

  page_clear(pCur);
  if( pCur->nPage>=FETCH_MAX_PAGES ){
    return fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): more than %d "
                       "pages: pagination looks endless", FETCH_MAX_PAGES));
  }
  rc = fetch_request(pCur, &resp);
  if( rc ) return rc;
  pCur->nPage++;

  pCur->pDoc = kustomer_json_parse(resp.zBody, resp.nBody, &zErr);
  if( pCur->pDoc==0 ){
    rc = zErr ? fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): the "
                            "response to %s %s %s", zMethod, pCur->zPath,
                            zErr))
              : SQLITE_NOMEM;
    goto done;
  }
  pData = kustomer_json_member(pCur->pDoc, "data");
  if( !cJSON_IsObject(pCur->pDoc) || pData==0 ){
    rc = fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): the response to "
                     "%s %s has no \"data\" member", zMethod, pCur->zPath));
    goto done;
  }
  if( !cJSON_IsArray(pData) && !cJSON_IsObject(pData) ){
    rc = fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): the response to "
                     "%s %s has \"data\" of type %s, not an array or object",
                     zMethod, pCur->zPath, kustomer_json_type(pData)));
    goto done;
  }
  pCur->bArray = cJSON_IsArray(pData);
  if( pCur->bArray ){
    for(i=0, pRow=pData->child; pRow; i++, pRow=pRow->next){
      if( !cJSON_IsObject(pRow) ){
        rc = fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): the "
                         "response to %s %s has data[%d] of type %s, not a "
                         "record",
                         zMethod, pCur->zPath, i, kustomer_json_type(pRow)));
        goto done;
      }
    }
    pCur->pRow = pData->child;
  }else{
    pCur->pRow = pData;
  }

  /* The next page. */
  if( pCur->pRow==0 || !pCur->bArray ){
    /* empty page or a single record: done */
  }else if( pCur->zBody ){
    if( !post_is_last(pCur->pDoc, pCur->iPageParam) ){
      zNext = path_with_page(pCur->zFirst, ++pCur->iPageParam);
      if( zNext==0 ) rc = SQLITE_NOMEM;
    }
  }else{
    const cJSON *pNext = kustomer_json_member(
        kustomer_json_member(pCur->pDoc, "links"), "next");
    if( cJSON_IsString(pNext) && pNext->valuestring[0] ){
      rc = next_path(pCur, pNext->valuestring, &zNext);
      if( rc==SQLITE_OK ){
        int bSeen = seen_add(pCur, zNext);
        if( bSeen<0 ){
          rc = -bSeen;
        }else if( bSeen ){
          rc = fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): "
                           "links.next of page %d leads back to a page "
                           "already fetched "
                           "(%s): pagination would not end", pCur->nPage,
                           zNext));
        }
      }
    }else if( pNext && !cJSON_IsNull(pNext) && !cJSON_IsString(pNext) ){
      rc = fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): links.next of "
                       "page %d is of type %s, not a string", pCur->nPage,
                       kustomer_json_type(pNext)));
    }
  }

done:
  kustomer_http_resp_clear(&resp);
  sqlite3_free(zErr);
  sqlite3_free(pCur->zPath);
  pCur->zPath = rc==SQLITE_OK ? zNext : 0;
  if( rc ){
    sqlite3_free(zNext);
    page_clear(pCur);
  }
  return rc;
}

/* ---- The virtual table -------------------------------------------------- */

static int fetch_connect(sqlite3 *db, void *pAux, int argc,
                         const char *const *argv, sqlite3_vtab **ppVtab,
                         char **pzErr){
  FetchVtab *pVtab;
  int rc;
  (void)argc; (void)argv; (void)pzErr;
  rc = sqlite3_declare_vtab(db,
      "CREATE TABLE x(type TEXT, id TEXT, attributes, relationships,"
      " page INTEGER, record, path HIDDEN, settings HIDDEN, body HIDDEN)");
  if( rc!=SQLITE_OK ) return rc;
  pVtab = sqlite3_malloc(sizeof(*pVtab));
  if( pVtab==0 ) return SQLITE_NOMEM;
  memset(pVtab, 0, sizeof(*pVtab));
  pVtab->pHttp = (KHttp*)pAux;
  kustomer_http_ref(pVtab->pHttp);
  /* A hostile schema must not be able to send requests (csv.c's reason). */
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  *ppVtab = &pVtab->base;
  return SQLITE_OK;
}

static int fetch_disconnect(sqlite3_vtab *pBase){
  FetchVtab *pVtab = (FetchVtab*)pBase;
  kustomer_http_unref(pVtab->pHttp);
  sqlite3_free(pVtab);
  return SQLITE_OK;
}

static int fetch_best_index(sqlite3_vtab *pVtab, sqlite3_index_info *pInfo){
  static const char *const azArg[] = { "path", "settings", "body" };
  /* Every scan costs requests: the planner should run it once. */
  int rc = kustomer_tvf_best_index(pVtab, pInfo, FETCH_PATH, 3, 2,
                                   "kustomer_fetch", azArg, 1e6);
  pInfo->estimatedRows = 1000;
  return rc;
}

static void auth_clear(FetchCursor *pCur){
  kustomer_api_auth_free(pCur->zAuth);
  pCur->zAuth = 0;
}

static void fetch_reset(FetchCursor *pCur){
  page_clear(pCur);
  auth_clear(pCur);
  kustomer_limiter_free(&pCur->lim);
  sqlite3_free(pCur->zBase);
  sqlite3_free(pCur->zBody);
  sqlite3_free(pCur->zFirst);
  sqlite3_free(pCur->zPath);
  sqlite3_free(pCur->aSeen);
  memset(((char*)pCur) + sizeof(pCur->base), 0,
         sizeof(*pCur) - sizeof(pCur->base));
  /* No budget of its own: fetch obeys what the responses say (a 429, a
  ** used-up x-ratelimit-remaining), with no cap on the pause, so that a
  ** wait beyond FETCH_MAX_WAIT is an error rather than shortened. */
  kustomer_limiter_init(&pCur->lim, 0, 1.0, 60);
  pCur->lim.maxPause = 0;
}

static int fetch_open(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCur){
  FetchCursor *pCur = sqlite3_malloc(sizeof(*pCur));
  (void)pVtab;
  if( pCur==0 ) return SQLITE_NOMEM;
  memset(pCur, 0, sizeof(*pCur));
  *ppCur = &pCur->base;
  return SQLITE_OK;
}

static int fetch_close(sqlite3_vtab_cursor *cur){
  FetchCursor *pCur = (FetchCursor*)cur;
  fetch_reset(pCur);
  sqlite3_free(pCur);
  return SQLITE_OK;
}

/* Settings, host and key of a call into the cursor. */
static int filter_settings(FetchCursor *pCur, sqlite3_value *pArg){
  sqlite3_vtab *pVtab = pCur->base.pVtab;
  KSettings *pSet = 0;
  char *zErr = 0;
  int rc;
  if( pArg==0 || sqlite3_value_type(pArg)!=SQLITE_TEXT ){
    return fetch_error(pCur, kustomer_not_text("kustomer_fetch", 2,
                                               "settings", pArg));
  }
  rc = kustomer_vtab_settings(pVtab, "kustomer_fetch", 2, pArg, &pSet);
  if( rc ) return rc;
  pCur->timeoutMs = pSet->timeoutMs;
  pCur->zBase = sqlite3_mprintf("%s", pSet->zBase);
  if( pCur->zBase==0 ){
    rc = SQLITE_NOMEM;
  }else if( !pSet->bHasKey ){
    /* a read without a key can only be refused */
    rc = fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): argument 2 "
                     "(settings) must give apiKey or apiKeyEnv"));
  }else{
    rc = kustomer_api_auth(pSet, 1, &pCur->zAuth, &zErr);
    if( rc==SQLITE_ERROR ){
      rc = fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): %s", zErr));
    }
    sqlite3_free(zErr);
  }
  kustomer_settings_free(pSet);
  return rc;
}

/* The POST body of a call: a JSON object, sent as compact JSON. */
static int filter_body(FetchCursor *pCur, sqlite3_value *pArg){
  cJSON *pDoc;
  char *zErr = 0;
  sqlite3_str *p;
  const char *z;
  int rc;
  if( sqlite3_value_type(pArg)!=SQLITE_TEXT ){
    return fetch_error(pCur, kustomer_not_text("kustomer_fetch", 3, "body",
                                               pArg));
  }
  z = (const char*)sqlite3_value_text(pArg);
  if( z==0 ) return SQLITE_NOMEM;
  pDoc = kustomer_json_parse(z, sqlite3_value_bytes(pArg), &zErr);
  if( pDoc==0 ){
    if( zErr==0 ) return SQLITE_NOMEM;
    rc = fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): argument 3 "
                     "(body) %s", zErr));
    sqlite3_free(zErr);
    return rc;
  }
  if( !cJSON_IsObject(pDoc) ){
    cJSON_Delete(pDoc);
    return fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): argument 3 "
                       "(body) must be a JSON object"));
  }
  p = sqlite3_str_new(0);
  kustomer_json_value(p, pDoc);
  cJSON_Delete(pDoc);
  rc = sqlite3_str_errcode(p);
  pCur->nBody = sqlite3_str_length(p);
  pCur->zBody = sqlite3_str_finish(p);
  if( rc==SQLITE_OK && pCur->zBody==0 ) rc = SQLITE_NOMEM;
  return rc;
}

static int fetch_filter(sqlite3_vtab_cursor *cur, int idxNum,
                        const char *idxStr, int argc, sqlite3_value **argv){
  FetchCursor *pCur = (FetchCursor*)cur;
  sqlite3_value *apArg[3];
  const char *zPath;
  int iBad, rc;
  (void)idxStr;

  fetch_reset(pCur);
  kustomer_tvf_args(idxNum, argc, argv, 3, apArg);
  /* NULL in, nothing out: no path, no request. */
  if( apArg[0]==0 || sqlite3_value_type(apArg[0])==SQLITE_NULL ){
    return SQLITE_OK;
  }
  if( sqlite3_value_type(apArg[0])!=SQLITE_TEXT ){
    return fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): argument 1 "
                       "(path) must be text, got %s",
                       kustomer_type_name(apArg[0])));
  }
  zPath = (const char*)sqlite3_value_text(apArg[0]);
  if( zPath==0 ) return SQLITE_NOMEM;
  if( !path_is_local(zPath) ){
    return fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): argument 1 "
                       "(path) must be a path on the API host, starting with "
                       "one '/' as in '/v1/customers', got %Q", zPath));
  }
  iBad = path_bad_byte(zPath);
  if( iBad>=0 ){
    return fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): argument 1 "
                       "(path) has a character that must be percent-encoded "
                       "at offset %d", iBad));
  }
  rc = filter_settings(pCur, apArg[1]);
  if( rc==SQLITE_OK && apArg[2] && sqlite3_value_type(apArg[2])!=SQLITE_NULL ){
    rc = filter_body(pCur, apArg[2]);
  }
  if( rc==SQLITE_OK ){
    pCur->zFirst = sqlite3_mprintf("%s", zPath);
    pCur->zPath = sqlite3_mprintf("%s", zPath);
    if( pCur->zFirst==0 || pCur->zPath==0 ) rc = SQLITE_NOMEM;
  }
  if( rc==SQLITE_OK ){
    pCur->iPageParam = path_page(zPath);
    if( pCur->zBody==0 ){
      int bSeen = seen_add(pCur, zPath);
      if( bSeen<0 ) rc = -bSeen;
    }
  }
  if( rc==SQLITE_OK ) rc = fetch_page(pCur);
  while( rc==SQLITE_OK && pCur->pRow==0 && pCur->zPath ){
    rc = fetch_page(pCur);
  }
  pCur->iRowid = 1;
  /* The key is kept only while pages remain to be fetched. */
  if( rc || pCur->zPath==0 ) auth_clear(pCur);
  return rc;
}

static int fetch_next(sqlite3_vtab_cursor *cur){
  FetchCursor *pCur = (FetchCursor*)cur;
  int rc = SQLITE_OK;
  pCur->iRowid++;
  pCur->pRow = (pCur->pRow && pCur->bArray) ? pCur->pRow->next : 0;
  while( rc==SQLITE_OK && pCur->pRow==0 && pCur->zPath ){
    rc = fetch_page(pCur);
  }
  /* The key is kept only while pages remain to be fetched. */
  if( rc || pCur->zPath==0 ) auth_clear(pCur);
  return rc;
}

static int fetch_eof(sqlite3_vtab_cursor *cur){
  return ((FetchCursor*)cur)->pRow==0;
}

/* A member as a JSON result with the JSON subtype; NULL when absent or
** null. */
static void result_member(sqlite3_context *ctx, const cJSON *pVal){
  sqlite3_str *p;
  if( pVal==0 || cJSON_IsNull(pVal) ) return;
  p = sqlite3_str_new(0);
  kustomer_json_value(p, pVal);
  kustomer_result_str(ctx, p, 1);
}

/* A record's type or id as text (numbers as JavaScript prints them). */
static void result_name(sqlite3_context *ctx, const cJSON *pVal){
  if( cJSON_IsString(pVal) ){
    sqlite3_result_text(ctx, pVal->valuestring, -1, SQLITE_TRANSIENT);
  }else if( cJSON_IsNumber(pVal) ){
    sqlite3_str *p = sqlite3_str_new(0);
    kustomer_js_string(p, pVal);
    kustomer_result_str(ctx, p, 0);
  }
}

static int fetch_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx,
                        int iCol){
  FetchCursor *pCur = (FetchCursor*)cur;
  const cJSON *pRow = pCur->pRow;
  switch( iCol ){
    case FETCH_TYPE:
      result_name(ctx, kustomer_json_member(pRow, "type"));
      break;
    case FETCH_ID:
      result_name(ctx, kustomer_json_member(pRow, "id"));
      break;
    case FETCH_ATTRIBUTES:
      result_member(ctx, kustomer_json_member(pRow, "attributes"));
      break;
    case FETCH_RELATIONSHIPS:
      result_member(ctx, kustomer_json_member(pRow, "relationships"));
      break;
    case FETCH_PAGE:
      sqlite3_result_int(ctx, pCur->nPage);
      break;
    case FETCH_RECORD:
      result_member(ctx, pRow);
      break;
    default:
      break;   /* the arguments read back as NULL: settings may hold a key */
  }
  return SQLITE_OK;
}

static int fetch_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *pRowid){
  *pRowid = ((FetchCursor*)cur)->iRowid;
  return SQLITE_OK;
}

static sqlite3_module fetchModule = {
  /* eponymous only: no xCreate */
  .xConnect = fetch_connect,
  .xBestIndex = fetch_best_index,
  .xDisconnect = fetch_disconnect,
  .xOpen = fetch_open,
  .xClose = fetch_close,
  .xFilter = fetch_filter,
  .xNext = fetch_next,
  .xEof = fetch_eof,
  .xColumn = fetch_column,
  .xRowid = fetch_rowid,
};

int kustomer_register_fetch(sqlite3 *db){
  KHttp *pHttp;
  int rc = kustomer_http_new(&pHttp);
  if( rc ) return rc;
  /* SQLite calls the destructor when the module goes, or if this fails. */
  return sqlite3_create_module_v2(db, "kustomer_fetch", &fetchModule, pHttp,
                                  kustomer_http_unref);
}
