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
  double tNotBefore;        /* remaining 0: wait until then (monotonic) */
  sqlite3_int64 iRowid;
  sqlite3_uint64 *aSeen;    /* hashes of the GET paths fetched */
  int nSeen, nSeenSlot;
};

/* ---- Time --------------------------------------------------------------- */

static double clock_seconds(clockid_t id){
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + ts.tv_nsec/1e9;
}

/* The fuzzing build (tests/fuzz/fuzz_http.c) shortens the waits, which a
** server can make minutes long, so that each input stays short. */
#ifndef FETCH_SLEEP_MAX
# define FETCH_SLEEP_MAX 1e9
#endif
static void fetch_sleep(double s){
  kustomer_sleep(s < FETCH_SLEEP_MAX ? s : FETCH_SLEEP_MAX);
}

/* Exponential backoff with jitter for the n-th retry (1-based). */
static double backoff_seconds(int n){
  unsigned int r;
  double s = 0.25;
  while( --n>0 && s<8.0 ) s *= 2;
  sqlite3_randomness(sizeof(r), &r);
  return s*(0.75 + 0.5*(r/4294967296.0));
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

/*
** Set the vtab's error to zMsg (from sqlite3_mprintf, owned), with every
** occurrence of the API key replaced: a server that echoes the request in
** its error body must not put the key into an SQL error.
*/
static int fetch_error(FetchCursor *pCur, char *zMsg){
  const char *zKey = pCur->zAuth;
  if( zMsg && zKey ){
    size_t nKey;
    if( strncmp(zKey, "Bearer ", 7)==0 ) zKey += 7;
    nKey = strlen(zKey);
    if( nKey>=4 && strstr(zMsg, zKey) ){
      sqlite3_str *p = sqlite3_str_new(0);
      const char *z = zMsg, *zHit;
      while( (zHit = strstr(z, zKey))!=0 ){
        sqlite3_str_append(p, z, (int)(zHit - z));
        sqlite3_str_appendall(p, "<redacted>");
        z = zHit + nKey;
      }
      sqlite3_str_appendall(p, z);
      sqlite3_free(zMsg);
      zMsg = sqlite3_str_finish(p);
    }
  }
  return kustomer_vtab_error(pCur->base.pVtab, zMsg);
}

/*
** Kustomer's message in an error body: errors[0].detail, title or message
** (kustomer-api.md 7), else a top-level message, else the start of the
** body as text.  NULL when there is nothing to say (or out of memory).
*/
static char *response_message(const KHttpResp *pResp){
  char *zErr = 0, *zOut = 0;
  cJSON *pDoc = 0;
  int i, n;
  if( pResp->nBody>0 ){
    pDoc = kustomer_json_parse(pResp->zBody, pResp->nBody, &zErr);
    sqlite3_free(zErr);
  }
  if( pDoc ){
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
  /* Not Kustomer's shape: the first 200 bytes, on a character boundary,
  ** control characters blanked so the message stays one line. */
  n = pResp->nBody>200 ? 200 : pResp->nBody;
  while( n>0 && n<pResp->nBody && (pResp->zBody[n] & 0xC0)==0x80 ) n--;
  if( n==0 ) return 0;
  zOut = sqlite3_mprintf("%.*s%s", n, pResp->zBody,
                         n<pResp->nBody ? "..." : "");
  for(i=0; zOut && zOut[i]; i++){
    if( (unsigned char)zOut[i]<0x20 ) zOut[i] = ' ';
  }
  return zOut;
}

/* The SQL error for an HTTP status that ends the fetch. */
static int status_error(FetchCursor *pCur, const KHttpResp *pResp,
                        const char *zMethod, int nTry, const char *zWhy){
  char *zMsg = response_message(pResp);
  sqlite3_str *p = sqlite3_str_new(0);
  sqlite3_str_appendf(p, "kustomer_fetch(): HTTP %ld from %s %s",
                      pResp->status, zMethod, pCur->zPath);
  if( zMsg ) sqlite3_str_appendf(p, ": %s", zMsg);
  if( zWhy ) sqlite3_str_appendf(p, " (%s)", zWhy);
  else if( nTry>1 ) sqlite3_str_appendf(p, " (after %d attempts)", nTry);
  sqlite3_free(zMsg);
  return fetch_error(pCur, sqlite3_str_finish(p));
}

/* ---- Rate limit headers ------------------------------------------------- */

/* A header's value as a number of seconds; -1 when absent or not one. */
static double header_number(const cJSON *pHdr, const char *zName){
  const cJSON *pV = kustomer_json_member(pHdr, zName);
  const char *z;
  char *zEnd = 0;
  double r;
  if( !cJSON_IsString(pV) ) return -1;
  z = pV->valuestring;
  while( *z==' ' ) z++;
  if( !(*z>='0' && *z<='9') ) return -1;   /* e.g. an HTTP-date */
  r = strtod(z, &zEnd);
  while( zEnd && *zEnd==' ' ) zEnd++;
  return (zEnd && *zEnd==0) ? r : -1;
}

/*
** Seconds until the rate limit resets, from Retry-After (seconds or an
** HTTP-date), else
** x-ratelimit-reset (epoch seconds, or seconds from now when small: both
** are seen, kustomer-api.md 6).  -1 when neither says.
*/
static double reset_wait(const cJSON *pHdr){
  const cJSON *pRetry = kustomer_json_member(pHdr, "retry-after");
  double r = kustomer_http_retry_after(cJSON_IsString(pRetry)
                                       ? pRetry->valuestring : 0);
  if( r>=0 ) return r;
  r = header_number(pHdr, "x-ratelimit-reset");
  if( r<0 ) return -1;
  if( r>1e9 ){
    r -= clock_seconds(CLOCK_REALTIME);
    if( r<0 ) r = 0;
  }
  return r;
}

/* ---- Requests ----------------------------------------------------------- */

/*
** GET or POST pCur->zPath, retrying what is worth retrying.  SQLITE_OK
** leaves a 2xx response in *pResp (clear it after use); anything else has
** set the vtab's error.
*/
static int fetch_request(FetchCursor *pCur, KHttpResp *pResp){
  KHttp *pHttp = ((FetchVtab*)pCur->base.pVtab)->pHttp;
  const char *zMethod = pCur->zBody ? "POST" : "GET";
  double tDeadline = clock_seconds(CLOCK_MONOTONIC) + FETCH_DEADLINE;
  char *zUrl;
  KHttpReq req;
  int nTry = 0, n429 = 0, rc = SQLITE_OK;

  memset(pResp, 0, sizeof(*pResp));
  zUrl = sqlite3_mprintf("%s%s", pCur->zBase, pCur->zPath);
  if( zUrl==0 ) return SQLITE_NOMEM;
  memset(&req, 0, sizeof(req));
  req.zMethod = zMethod;
  req.zUrl = zUrl;
  req.zAuth = pCur->zAuth;
  req.zBody = pCur->zBody;
  req.nBody = pCur->nBody;
  req.timeoutMs = pCur->timeoutMs;

  while( 1 ){
    double tNow = clock_seconds(CLOCK_MONOTONIC);
    double wait;
    cJSON *pHdr;
    char *zHdrErr = 0;
    /* The last page said the budget is used up: wait for its reset
    ** rather than spend a request on a 429. */
    if( pCur->tNotBefore>tNow ) fetch_sleep(pCur->tNotBefore - tNow);
    pCur->tNotBefore = 0;
    kustomer_http_resp_clear(pResp);
    nTry++;
    rc = kustomer_http_do(pHttp, &req, pResp);
    if( rc ) break;
    tNow = clock_seconds(CLOCK_MONOTONIC);

    if( pResp->eNet ){
      int bRetry = pResp->eNet==KNET_RESET || pResp->eNet==KNET_TIMEDOUT
                || pResp->eNet==KNET_PIPE;
      wait = backoff_seconds(nTry);
      if( !bRetry || nTry>=FETCH_MAX_TRIES || tNow+wait>tDeadline ){
        if( pResp->eNet==KNET_REFUSED_URL ){
          rc = fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): %s",
                                                 pResp->zErr));
        }else if( nTry>1 ){
          rc = fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): %s %s: "
                           "%s (after %d attempts)", zMethod, pCur->zPath,
                           pResp->zErr, nTry));
        }else{
          rc = fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): %s %s: %s",
                           zMethod, pCur->zPath, pResp->zErr));
        }
        break;
      }
      fetch_sleep(wait);
      continue;
    }

    pHdr = kustomer_json_parse(pResp->zHeaders, (int)strlen(pResp->zHeaders),
                               &zHdrErr);
    sqlite3_free(zHdrErr);
    if( pResp->status>=200 && pResp->status<300 ){
      double r = header_number(pHdr, "x-ratelimit-remaining");
      if( r>=0 && r<1 ){
        wait = reset_wait(pHdr);
        if( wait>0 && wait<=FETCH_MAX_WAIT ) pCur->tNotBefore = tNow + wait;
      }
      cJSON_Delete(pHdr);
      break;
    }
    if( pResp->status==429 ){
      /* Does not use up an attempt: the request was not at fault. */
      wait = reset_wait(pHdr);
      if( wait<0 ) wait = backoff_seconds(++n429 + 2);
      if( wait<0.05 ) wait = 0.05;   /* reset rounded to the second */
      cJSON_Delete(pHdr);
      if( wait>FETCH_MAX_WAIT ){
        char *zWhy = sqlite3_mprintf("the rate limit resets in %.0f s; "
                                     "kustomer_fetch() waits at most %.0f s",
                                     wait, FETCH_MAX_WAIT);
        rc = zWhy ? status_error(pCur, pResp, zMethod, nTry, zWhy)
                  : SQLITE_NOMEM;
        sqlite3_free(zWhy);
        break;
      }
      if( tNow+wait>tDeadline ){
        char *zWhy = sqlite3_mprintf("still rate limited after %.0f s",
                                     FETCH_DEADLINE);
        rc = zWhy ? status_error(pCur, pResp, zMethod, nTry, zWhy)
                  : SQLITE_NOMEM;
        sqlite3_free(zWhy);
        break;
      }
      nTry--;
      fetch_sleep(wait);
      continue;
    }
    cJSON_Delete(pHdr);
    if( pResp->status>=500 || pResp->status==408 ){
      wait = backoff_seconds(nTry);
      if( nTry<FETCH_MAX_TRIES && tNow+wait<=tDeadline ){
        fetch_sleep(wait);
        continue;
      }
    }
    rc = status_error(pCur, pResp, zMethod, nTry, 0);
    break;
  }
  sqlite3_free(zUrl);
  if( rc ) kustomer_http_resp_clear(pResp);
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
  if( pCur->zAuth ){
    memset(pCur->zAuth, 0, strlen(pCur->zAuth));
    sqlite3_free(pCur->zAuth);
    pCur->zAuth = 0;
  }
}

static void fetch_reset(FetchCursor *pCur){
  page_clear(pCur);
  auth_clear(pCur);
  sqlite3_free(pCur->zBase);
  sqlite3_free(pCur->zBody);
  sqlite3_free(pCur->zFirst);
  sqlite3_free(pCur->zPath);
  sqlite3_free(pCur->aSeen);
  memset(((char*)pCur) + sizeof(pCur->base), 0,
         sizeof(*pCur) - sizeof(pCur->base));
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

static const char *value_type_name(sqlite3_value *v){
  switch( sqlite3_value_type(v) ){
    case SQLITE_INTEGER: return "integer";
    case SQLITE_FLOAT:   return "real";
    case SQLITE_BLOB:    return "blob";
    case SQLITE_NULL:    return "null";
    default:             return "text";
  }
}

/* Settings, host and key of a call into the cursor. */
static int filter_settings(FetchCursor *pCur, sqlite3_value *pArg){
  KSettings *pSet = 0;
  char *zErr = 0;
  const char *z;
  int rc;
  if( pArg==0 || sqlite3_value_type(pArg)!=SQLITE_TEXT ){
    return fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): argument 2 "
                       "(settings) must be JSON text, got %s",
                       pArg ? value_type_name(pArg) : "nothing"));
  }
  z = (const char*)sqlite3_value_text(pArg);
  if( z==0 ) return SQLITE_NOMEM;
  rc = kustomer_settings_parse(z, sqlite3_value_bytes(pArg), &pSet, &zErr);
  if( rc!=SQLITE_OK ){
    if( zErr==0 ) return rc;
    rc = fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): argument 2 "
                     "(settings) %s", zErr));
    sqlite3_free(zErr);
    return rc;
  }
  pCur->timeoutMs = pSet->timeoutMs;
  pCur->zBase = sqlite3_mprintf("%s", pSet->zBase);
  if( pCur->zBase==0 ){
    rc = SQLITE_NOMEM;
  }else if( pSet->zKeyEnv && pSet->zAuth==0 ){
    const char *zKey = getenv(pSet->zKeyEnv);
    if( zKey==0 || zKey[0]==0 ){
      rc = fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): the "
                       "environment variable %s named by apiKeyEnv is not "
                       "set", pSet->zKeyEnv));
    }else{
      pCur->zAuth = sqlite3_mprintf("Bearer %s", zKey);
      if( pCur->zAuth==0 ) rc = SQLITE_NOMEM;
    }
  }else if( pSet->zKeyEnv==0 && strcmp(pSet->zAuth, "Bearer undefined")==0 ){
    /* What kustomer_settings_parse() writes when no key is given: a read
    ** without a key can only be refused. */
    rc = fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): argument 2 "
                     "(settings) must give apiKey or apiKeyEnv"));
  }else{
    pCur->zAuth = sqlite3_mprintf("%s", pSet->zAuth);
    if( pCur->zAuth==0 ) rc = SQLITE_NOMEM;
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
    return fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): argument 3 "
                       "(body) must be JSON text, got %s",
                       value_type_name(pArg)));
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
  sqlite3_value *apArg[3] = { 0, 0, 0 };
  const char *zPath;
  int i, j = 0, iBad, rc;
  (void)idxStr;

  fetch_reset(pCur);
  for(i=0; i<3; i++){
    if( (idxNum & (1<<i)) && j<argc ) apArg[i] = argv[j++];
  }
  /* NULL in, nothing out: no path, no request. */
  if( apArg[0]==0 || sqlite3_value_type(apArg[0])==SQLITE_NULL ){
    return SQLITE_OK;
  }
  if( sqlite3_value_type(apArg[0])!=SQLITE_TEXT ){
    return fetch_error(pCur, sqlite3_mprintf("kustomer_fetch(): argument 1 "
                       "(path) must be text, got %s",
                       value_type_name(apArg[0])));
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
  0,                        /* iVersion */
  0,                        /* xCreate: eponymous only */
  fetch_connect,
  fetch_best_index,
  fetch_disconnect,
  0,                        /* xDestroy */
  fetch_open,
  fetch_close,
  fetch_filter,
  fetch_next,
  fetch_eof,
  fetch_column,
  fetch_rowid,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0  /* xUpdate .. xShadowName */
};

int kustomer_register_fetch(sqlite3 *db){
  KHttp *pHttp;
  int rc = kustomer_http_new(&pHttp);
  if( rc ) return rc;
  /* SQLite calls the destructor when the module goes, or if this fails. */
  return sqlite3_create_module_v2(db, "kustomer_fetch", &fetchModule, pHttp,
                                  kustomer_http_unref);
}
