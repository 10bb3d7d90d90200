/*
** libFuzzer target: everything the extension reads from what the server
** sends back (status lines, headers, bodies), through SQL, against an
** in-process loopback HTTP server that answers with the input.
**
** Input: byte 0 is a set of flags; the rest is split at each "\0\0" into
** successive responses, one per connection the extension opens.
**   flags & 3       entry point:
**                   0  kustomer_send(request, settings): a lookup GET, a
**                      customer POST or PUT, or a tracking POST
**                   1  kustomer_process(identify event, settings): the
**                      customer lookups and their replies
**                   2  kustomer_send(kustomer_process(track event, settings),
**                      settings)
**                   3  kustomer_flush('out', 1) on a new in-memory database
**                      whose outbox holds identify (bulk create, and PUT
**                      by kustomerId) and track rows
**   flags & 4       the responses are raw bytes, written as they are
**                   (else the structured form below)
**   flags & 8       flush: rate_window=60, Kustomer's (else 1);
**                   with entry point 0: kustomer_fetch() instead, its
**                   pages (links.next, search's page=N), 429s and retries
**                   (built with its waits cut to 10 ms)
**   (flags>>4)&15   variant: which request, event or outbox rows (below)
** A structured response: its byte 0 % 16 picks a status in aStatus; 14
** and 15 take the next three bytes, each % 10, as the digits of a fuzzed
** status.  Then header lines, separated by '\n' (sent with CRLF), up to a
** blank line, then the body; the harness adds a correct Content-Length.
** Without a blank line it is all body.
**
** The server reads each request (headers, then a Content-Length body),
** writes the next response, and closes the connection, so that no client
** waits for more; with no response left it closes without answering.
** Settings use apiKeyEnv (a test key set in LLVMFuzzerInitialize) and
** timeoutMs 1000.
**
** Findings, besides crashes, leaks, UB and libFuzzer timeouts (each one
** aborts): a JSON result that SQLite's json_valid() rejects or that is not
** UTF-8; the API key in an error message, a result or an outbox row
** (unless the responses hold it: an echo); a call that runs well past its
** limits (the flush's seconds, timeoutMs).
*/
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>
#include "fuzz_common.h"

#define KEY_ENV     "KUSTOMER_FUZZ_KEY"
#define KEY         "fuzz-key-5e3cr3t-0b1d"
#define TIMEOUT_MS  1000
#define FLUSH_SECS  1.0
#define MAX_RESP    64

static const int aStatus[14] = {
  200, 201, 202, 204, 301, 400, 401, 403, 404, 409, 429, 500, 502, 503
};

/* ---- The loopback server ------------------------------------------------ */

static int iPort;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
/* Responses of the current input, as bytes on the wire.  The server takes
** ownership of the one it pops (a late connection may still be served
** after the input is over: it must not see freed memory). */
static char *azResp[MAX_RESP];
static size_t anResp[MAX_RESP];
static int nResp, iResp;
static int bBusy;                 /* a connection is being served */

/* Read one request: headers to CRLFCRLF, then Content-Length bytes.
** Returns 0 when the client went away first. */
static int read_request(int fd){
  char aBuf[8192];
  size_t n = 0;
  long nBody = 0;
  char *zEnd = 0;
  for(;;){
    ssize_t k;
    if( n==sizeof(aBuf)-1 ) return 0;
    k = recv(fd, aBuf+n, sizeof(aBuf)-1-n, 0);
    if( k<=0 ) return 0;
    n += (size_t)k;
    aBuf[n] = 0;
    zEnd = strstr(aBuf, "\r\n\r\n");
    if( zEnd ) break;
  }
  {
    char *z;
    for(z=aBuf; z<zEnd; z++){
      if( (z==aBuf || z[-1]=='\n') && strncasecmp(z, "content-length:", 15)==0 ){
        nBody = atol(z+15);
      }
    }
  }
  nBody -= (long)(n - (size_t)(zEnd + 4 - aBuf));
  while( nBody>0 ){
    ssize_t k = recv(fd, aBuf, sizeof(aBuf), 0);
    if( k<=0 ) return 0;
    nBody -= k;
  }
  return 1;
}

static void *server_main(void *pArg){
  int fdListen = *(int*)pArg;
  for(;;){
    int fd = accept(fdListen, 0, 0);
    char *z = 0;
    size_t n = 0;
    if( fd<0 ) continue;
    pthread_mutex_lock(&mu);
    bBusy = 1;
    pthread_mutex_unlock(&mu);
    {
      /* A client that stalls cannot hold the server for long. */
      struct timeval tv = { 2, 0 };
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    if( read_request(fd) ){
      pthread_mutex_lock(&mu);
      if( iResp<nResp ){
        z = azResp[iResp];
        n = anResp[iResp];
        azResp[iResp] = 0;
        iResp++;
      }
      pthread_mutex_unlock(&mu);
      if( z ){
        size_t i = 0;
        while( i<n ){
          ssize_t k = send(fd, z+i, n-i, MSG_NOSIGNAL);
          if( k<=0 ) break;
          i += (size_t)k;
        }
        free(z);
      }
    }
    close(fd);
    pthread_mutex_lock(&mu);
    bBusy = 0;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
  }
  return 0;
}

static void server_start(void){
  static int fd;
  struct sockaddr_in sa;
  socklen_t nSa = sizeof(sa);
  pthread_t t;
  fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = 0;
  if( fd<0 || bind(fd, (struct sockaddr*)&sa, sizeof(sa))
   || listen(fd, 64) || getsockname(fd, (struct sockaddr*)&sa, &nSa)
   || pthread_create(&t, 0, server_main, &fd) ){
    perror("fuzz_http: loopback server");
    abort();
  }
  pthread_detach(t);
  iPort = ntohs(sa.sin_port);
}

/* Wait (a little) for a connection being served to end, then drop the
** responses left over. */
static void server_finish(void){
  struct timespec ts;
  int i;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 3;
  pthread_mutex_lock(&mu);
  while( bBusy ){
    if( pthread_cond_timedwait(&cv, &mu, &ts) ) break;
  }
  for(i=iResp; i<nResp; i++) free(azResp[i]);
  nResp = iResp = 0;
  pthread_mutex_unlock(&mu);
}

/* ---- Responses from the input ------------------------------------------- */

/* Append n bytes to a malloc'ed buffer. */
typedef struct Buf Buf;
struct Buf { char *z; size_t n, nAlloc; };

static void buf_add(Buf *p, const void *z, size_t n){
  if( p->n + n + 1 > p->nAlloc ){
    p->nAlloc = (p->n + n + 1)*2;
    p->z = realloc(p->z, p->nAlloc);
    if( p->z==0 ) abort();
  }
  memcpy(p->z + p->n, z, n);
  p->n += n;
}

static void buf_str(Buf *p, const char *z){
  buf_add(p, z, strlen(z));
}

/* The wire bytes of one structured response. */
static void response_structured(Buf *p, const unsigned char *z, size_t n){
  char aLine[64];
  int iStatus = 200;
  size_t i, iBody, iStart;
  if( n>0 ){
    int k = z[0] % 16;
    z++; n--;
    if( k<14 ){
      iStatus = aStatus[k];
    }else{
      iStatus = 0;
      for(i=0; i<3; i++){
        iStatus = iStatus*10 + (i<n ? z[i]%10 : 0);
      }
      i = n<3 ? n : 3;
      z += i; n -= i;
    }
  }
  snprintf(aLine, sizeof(aLine), "HTTP/1.1 %03d Fuzz\r\n", iStatus);
  buf_str(p, aLine);
  /* header lines up to the first blank line; none: all of it is body */
  iBody = 0;
  for(i=0; i+1<n; i++){
    if( z[i]=='\n' && z[i+1]=='\n' ){ iBody = i+2; break; }
  }
  if( iBody ){
    iStart = 0;
    for(i=0; i<iBody-1; i++){
      if( z[i]=='\n' ){
        if( i>iStart ){
          buf_add(p, z+iStart, i-iStart);
          buf_str(p, "\r\n");
        }
        iStart = i+1;
      }
    }
  }
  snprintf(aLine, sizeof(aLine), "Content-Length: %zu\r\n\r\n", n-iBody);
  buf_str(p, aLine);
  buf_add(p, z+iBody, n-iBody);
}

/* Queue the responses of an input (data after the flags byte). */
static void responses_queue(const unsigned char *z, size_t n, int bRaw){
  size_t i, iStart = 0;
  pthread_mutex_lock(&mu);
  nResp = iResp = 0;
  for(i=0; i<=n && nResp<MAX_RESP; i++){
    if( i==n || (z[i]==0 && i+1<n && z[i+1]==0) ){
      Buf b = {0, 0, 0};
      if( bRaw ){
        buf_add(&b, z+iStart, i-iStart);
      }else{
        response_structured(&b, z+iStart, i-iStart);
      }
      azResp[nResp] = b.z ? b.z : malloc(1);
      anResp[nResp] = b.n;
      nResp++;
      iStart = i+2;
      i++;
    }
  }
  pthread_mutex_unlock(&mu);
}

/* ---- Checks ------------------------------------------------------------- */

static void finding(const char *zWhat, const char *zDetail){
  fprintf(stderr, "fuzz_http: %s: %s\n", zWhat, zDetail ? zDetail : "");
  abort();
}

static int utf8_ok(const unsigned char *z, int n){
  int i = 0;
  while( i<n ){
    unsigned c = z[i];
    int k, j;
    if( c<0x80 ){ i++; continue; }
    if( c>=0xC2 && c<0xE0 ) k = 1;
    else if( c>=0xE0 && c<0xF0 ) k = 2;
    else if( c>=0xF0 && c<0xF5 ) k = 3;
    else return 0;
    if( i+k>=n ) return 0;
    for(j=1; j<=k; j++){
      if( (z[i+j]&0xC0)!=0x80 ) return 0;
    }
    if( c==0xE0 && z[i+1]<0xA0 ) return 0;
    if( c==0xED && z[i+1]>=0xA0 ) return 0;
    if( c==0xF0 && z[i+1]<0x90 ) return 0;
    if( c==0xF4 && z[i+1]>=0x90 ) return 0;
    i += k+1;
  }
  return 1;
}

/* Whether n bytes at z hold the key.  A plain loop: libFuzzer hooks
** strstr() and memmem() and would feed the key into the inputs. */
static int has_key(const char *z, size_t n){
  static const char zKey[] = KEY;
  size_t i, j, nKey = sizeof(zKey)-1;
  for(i=0; i+nKey<=n; i++){
    for(j=0; j<nKey && z[i+j]==zKey[j]; j++){}
    if( j==nKey ) return 1;
  }
  return 0;
}

/* Set when the input's responses themselves hold the key: a server that
** echoes it is not the extension leaking it. */
static int bServerEcho;

static void no_key(const char *zWhere, const char *z){
  if( z && !bServerEcho && has_key(z, strlen(z)) ){
    finding("the API key leaked", zWhere);
  }
}

static double now_mono(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec/1e9;
}

static int bVerbose;            /* FUZZ_HTTP_VERBOSE set: print results */
static sqlite3 *db;             /* send and process */
static char zSettings[256];     /* apiKeyEnv, baseEndpoint, timeoutMs */
static char zBase[64];

/*
** Run one statement (parameters: text) and check its single JSON result.
** Column 0 is the result, column 1 json_valid() of it, column 2 (if any)
** json_valid() of its "error" member when that is text starting with '{'
** (a lookup error's {message, destinationResponse}), column 3 (if any) the
** text to search for the key instead of the result (kustomer_process()'s
** envelope carries it in headers.Authorization, as RudderStack's does).
** Returns the result (sqlite3_malloc'ed) or NULL after an SQL error or a
** NULL result.
*/
static char *run_json(sqlite3 *pDb, const char *zSql, int nArg,
                      const char **azArg){
  sqlite3_stmt *p = 0;
  char *zOut = 0;
  int i, rc;
  if( sqlite3_prepare_v2(pDb, zSql, -1, &p, 0)!=SQLITE_OK ){
    fprintf(stderr, "fuzz_http: cannot prepare %s: %s\n", zSql,
            sqlite3_errmsg(pDb));
    abort();
  }
  for(i=0; i<nArg; i++){
    sqlite3_bind_text(p, i+1, azArg[i], -1, SQLITE_STATIC);
  }
  rc = sqlite3_step(p);
  if( rc==SQLITE_ROW ){
    const unsigned char *z = sqlite3_column_text(p, 0);
    int n = sqlite3_column_bytes(p, 0);
    if( z ){
      if( sqlite3_column_int(p, 1)==0 ) finding("invalid JSON", (const char*)z);
      if( !utf8_ok(z, n) ) finding("result is not UTF-8", (const char*)z);
      if( sqlite3_column_count(p)>2 && sqlite3_column_type(p, 2)!=SQLITE_NULL
       && sqlite3_column_int(p, 2)==0 ){
        finding("invalid JSON in the error member", (const char*)z);
      }
      no_key("a result", sqlite3_column_count(p)>3
             ? (const char*)sqlite3_column_text(p, 3) : (const char*)z);
      zOut = sqlite3_mprintf("%s", z);
    }
    if( bVerbose ) fprintf(stderr, "result: %s\n", z ? (const char*)z : "NULL");
  }else if( rc!=SQLITE_DONE ){
    no_key("an SQL error", sqlite3_errmsg(pDb));
    if( bVerbose ) fprintf(stderr, "error: %s\n", sqlite3_errmsg(pDb));
  }
  sqlite3_finalize(p);
  return zOut;
}

static void check_time(const char *zWhat, double t0, double limit){
  double t = now_mono() - t0;
  if( t>limit ){
    char aBuf[128];
    snprintf(aBuf, sizeof(aBuf), "%.2f s, limit %.2f s", t, limit);
    finding(zWhat, aBuf);
  }
}

/* ---- Entry points ------------------------------------------------------- */

#define SEND_SQL \
  "SELECT x, json_valid(x) FROM (SELECT kustomer_send(?1, ?2) AS x)"
#define SEND1_SQL \
  "SELECT x, json_valid(x) FROM (SELECT kustomer_send(?1) AS x)"

static void do_send(int iVar){
  static const char *const azPath[4] = {
    "GET /v1/customers/email=a%40x.com",
    "POST /v1/customers",
    "PUT /v1/customers/5f3a9c?replace=false",
    "POST /v1/tracking/identityEvent",
  };
  static const char *const azBody[4] = {
    0,
    "{\"externalId\":\"u1\",\"emails\":[{\"type\":\"home\",\"email\":\"a@x.com\"}]}",
    "{\"externalId\":\"u1\",\"name\":\"F L\"}",
    "{\"identity\":{\"externalId\":\"u1\"},\"event\":{\"name\":\"Signed-Up\","
    "\"meta\":{\"planStr\":\"pro\"}}}",
  };
  const char *zPath = azPath[iVar & 3];
  const char *zSp = strchr(zPath, ' ');
  int bEnvelopeKey = (iVar & 4)!=0;
  char *zReq = sqlite3_mprintf(
      "{\"version\":\"1\",\"type\":\"REST\",\"method\":\"%.*s\","
      "\"endpoint\":\"%s%s\",\"headers\":{\"Content-Type\":"
      "\"application/json\"%s},\"params\":{},\"body\":{\"JSON\":%s},"
      "\"files\":{}}",
      (int)(zSp - zPath), zPath, zBase, zSp+1,
      bEnvelopeKey ? ",\"Authorization\":\"Bearer " KEY "\"" : "",
      azBody[iVar & 3] ? azBody[iVar & 3] : "{}");
  const char *azArg[2];
  double t0 = now_mono();
  azArg[0] = zReq;
  azArg[1] = zSettings;
  if( bEnvelopeKey ){
    /* the key is in the request itself: it must still not be echoed; its
    ** timeout is the default 30 s, so no time limit of ours */
    sqlite3_free(run_json(db, SEND1_SQL, 1, azArg));
  }else{
    sqlite3_free(run_json(db, SEND_SQL, 2, azArg));
    check_time("kustomer_send() ran too long", t0, TIMEOUT_MS/1000.0 + 1.5);
  }
  sqlite3_free(zReq);
}

#define PROCESS_SQL \
  "SELECT x, json_valid(x), CASE WHEN json_extract(x,'$.error') LIKE '{%'" \
  " THEN json_valid(json_extract(x,'$.error')) END," \
  " CASE WHEN json_valid(x) THEN json_remove(x,'$.headers.Authorization')" \
  " ELSE x END FROM (SELECT kustomer_process(?1, ?2) AS x)"

static void do_identify(int iVar){
  static const char *const azEvent[4] = {
    "{\"type\":\"identify\",\"userId\":\"u1\",\"anonymousId\":\"a1\","
    "\"traits\":{\"email\":\"e@x.com\",\"firstName\":\"F\"}}",
    "{\"type\":\"identify\",\"userId\":\"u1\"}",
    "{\"type\":\"identify\",\"anonymousId\":\"anon-1\","
    "\"traits\":{\"email\":\"e@x.com\"}}",
    "{\"type\":\"identify\",\"userId\":\"u 1/\xc3\xa9\",\"anonymousId\":7,"
    "\"context\":{\"traits\":{\"email\":\"x@y.z\",\"phone\":\"+1\"}}}",
  };
  const char *azArg[2];
  double t0 = now_mono();
  azArg[0] = azEvent[iVar & 3];
  azArg[1] = zSettings;
  sqlite3_free(run_json(db, PROCESS_SQL, 2, azArg));
  /* at most three lookups */
  check_time("kustomer_process() ran too long", t0,
             3*TIMEOUT_MS/1000.0 + 1.5);
}

static void do_track(int iVar){
  static const char *const azEvent[4] = {
    "{\"type\":\"track\",\"event\":\"Signed Up\",\"userId\":\"u1\","
    "\"properties\":{\"plan\":\"pro\",\"seats\":3}}",
    "{\"type\":\"page\",\"name\":\"Pricing\",\"anonymousId\":\"a1\"}",
    "{\"type\":\"screen\",\"name\":\"Home\",\"userId\":\"u2\","
    "\"context\":{\"traits\":{\"email\":\"s@x.com\"}}}",
    "{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u3\","
    "\"properties\":{\"kustomer_session_id\":\"s1\",\"ok\":true}}",
  };
  const char *azArg[2];
  double t0 = now_mono();
  azArg[0] = azEvent[iVar & 3];
  azArg[1] = zSettings;
  sqlite3_free(run_json(db,
      "SELECT x, json_valid(x) FROM (SELECT kustomer_send("
      "kustomer_process(?1, ?2), ?2) AS x)", 2, azArg));
  check_time("kustomer_send(kustomer_process()) ran too long", t0,
             TIMEOUT_MS/1000.0 + 1.5);
}

/* Every row of a fetch: JSON columns valid, text UTF-8, no key. */
static void do_fetch(int iVar){
  static const char *const azPath[4] = {
    "/v1/customers?pageSize=2",
    "/v1/customers/5f3a9c",
    "/v1/customers/search?pageSize=2",
    "/v1/conversations?page=3&pageSize=2",
  };
  const char *zSql = (iVar & 3)==2
    ? "SELECT type, id, attributes, relationships, page, record,"
      " json_valid(attributes), json_valid(relationships), json_valid(record)"
      " FROM kustomer_fetch(?1, ?2, '{\"queryContext\":\"customer\"}')"
      " LIMIT 200"
    : "SELECT type, id, attributes, relationships, page, record,"
      " json_valid(attributes), json_valid(relationships), json_valid(record)"
      " FROM kustomer_fetch(?1, ?2) LIMIT 200";
  sqlite3_stmt *p = 0;
  int rc, i;
  if( sqlite3_prepare_v2(db, zSql, -1, &p, 0)!=SQLITE_OK ){
    fprintf(stderr, "fuzz_http: cannot prepare %s: %s\n", zSql,
            sqlite3_errmsg(db));
    abort();
  }
  sqlite3_bind_text(p, 1, azPath[iVar & 3], -1, SQLITE_STATIC);
  sqlite3_bind_text(p, 2, zSettings, -1, SQLITE_STATIC);
  while( (rc = sqlite3_step(p))==SQLITE_ROW ){
    for(i=0; i<6; i++){
      const unsigned char *z = sqlite3_column_text(p, i);
      if( z==0 ) continue;
      if( !utf8_ok(z, sqlite3_column_bytes(p, i)) ){
        finding("a fetched column is not UTF-8", (const char*)z);
      }
      no_key("a fetched column", (const char*)z);
    }
    if( sqlite3_column_type(p, 5)==SQLITE_NULL ){
      finding("a fetched row without its record", "");
    }
    for(i=0; i<3; i++){
      /* attributes, relationships, record and their json_valid() */
      static const int aCol[3][2] = { {2, 6}, {3, 7}, {5, 8} };
      if( sqlite3_column_type(p, aCol[i][0])!=SQLITE_NULL
       && sqlite3_column_int(p, aCol[i][1])==0 ){
        finding("a fetched column is not valid JSON",
                (const char*)sqlite3_column_text(p, aCol[i][0]));
      }
    }
    if( sqlite3_column_int(p, 4)<1 ){
      finding("a fetched row's page is not positive",
              (const char*)sqlite3_column_text(p, 4));
    }
    if( bVerbose ){
      fprintf(stderr, "row: page %d %s\n", sqlite3_column_int(p, 4),
              sqlite3_column_text(p, 5));
    }
  }
  if( rc!=SQLITE_DONE ){
    const char *zErr = sqlite3_errmsg(db);
    no_key("a fetch error", zErr);
    if( strncmp(zErr, "kustomer_fetch(): ", 18)!=0 && rc!=SQLITE_NOMEM ){
      finding("a fetch error that does not name kustomer_fetch()", zErr);
    }
    if( bVerbose ) fprintf(stderr, "error: %s\n", zErr);
  }
  sqlite3_finalize(p);
}

static void exec_or_die(sqlite3 *pDb, const char *zSql){
  char *zErr = 0;
  if( sqlite3_exec(pDb, zSql, 0, 0, &zErr)!=SQLITE_OK ){
    fprintf(stderr, "fuzz_http: %s: %s\n", zSql, zErr);
    abort();
  }
}

static void do_flush(int iVar, int bKustomerWindow){
  sqlite3 *pDb = fuzz_open_db();
  sqlite3_stmt *p = 0;
  char *zSql;
  double t0;
  const char *azArg[1];
  int bAll = (iVar & 7)==0;
  zSql = sqlite3_mprintf(
      "CREATE VIRTUAL TABLE out USING kustomer_outbox(settings=%Q,"
      " rate_limit=1000, budget=1, max_attempts=2, rate_window=%d,"
      " concurrency=2)", zSettings, bKustomerWindow ? 60 : 1);
  exec_or_die(pDb, zSql);
  sqlite3_free(zSql);
  if( bAll || (iVar & 1) ){
    /* new customers: one bulk job */
    exec_or_die(pDb, "INSERT INTO out(id, event) VALUES"
      "(1,'{\"type\":\"identify\",\"userId\":\"u1\","
      "\"traits\":{\"email\":\"a@x.com\",\"firstName\":\"A\"}}'),"
      "(2,'{\"type\":\"identify\",\"userId\":\"u2\","
      "\"traits\":{\"email\":\"b@x.com\"}}')");
  }
  if( bAll || (iVar & 2) ){
    exec_or_die(pDb, "INSERT INTO out(id, event) VALUES"
      "(3,'{\"type\":\"track\",\"event\":\"Signed-Up\",\"userId\":\"u1\"}'),"
      "(4,'{\"type\":\"page\",\"name\":\"Home\",\"anonymousId\":\"a4\"}')");
  }
  if( bAll || (iVar & 4) ){
    /* a known customer: a PUT */
    exec_or_die(pDb, "INSERT INTO out(id, event) VALUES"
      "(5,'{\"type\":\"identify\",\"userId\":\"u5\",\"context\":"
      "{\"externalId\":[{\"type\":\"kustomerId\",\"id\":\"5f3a9c\"}]}}')");
  }
  if( iVar & 8 ){
    /* the same customer again: waits for the next job */
    exec_or_die(pDb, "INSERT INTO out(id, event) VALUES"
      "(6,'{\"type\":\"identify\",\"userId\":\"u1\","
      "\"traits\":{\"lastName\":\"Z\"}}')");
  }
  t0 = now_mono();
  azArg[0] = 0;
  sqlite3_free(run_json(pDb,
      "SELECT x, json_valid(x) FROM (SELECT kustomer_flush('out', 1) AS x)",
      0, azArg));
  /* Only requests already started may outlast the budget: one bulk or
  ** lookup request, or the pipeline's, each within timeoutMs. */
  check_time("kustomer_flush() ran past its seconds", t0,
             FLUSH_SECS + TIMEOUT_MS/1000.0 + 1.0);
  if( sqlite3_prepare_v2(pDb, "SELECT status, error, kustomer_id FROM out",
                         -1, &p, 0)!=SQLITE_OK ){
    finding("cannot read the outbox", sqlite3_errmsg(pDb));
  }
  while( sqlite3_step(p)==SQLITE_ROW ){
    if( bVerbose ){
      fprintf(stderr, "row: %s | %s | %s\n", sqlite3_column_text(p, 0),
              sqlite3_column_text(p, 1), sqlite3_column_text(p, 2));
    }
    no_key("an outbox row's error", (const char*)sqlite3_column_text(p, 1));
    no_key("an outbox row's kustomer_id",
           (const char*)sqlite3_column_text(p, 2));
  }
  sqlite3_finalize(p);
  if( sqlite3_close(pDb)!=SQLITE_OK ) finding("cannot close", "");
  fuzz_db = db;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv){
  (void)argc; (void)argv;
  setenv(KEY_ENV, KEY, 1);
  bVerbose = getenv("FUZZ_HTTP_VERBOSE")!=0;
  server_start();
  snprintf(zBase, sizeof(zBase), "http://127.0.0.1:%d", iPort);
  snprintf(zSettings, sizeof(zSettings),
           "{\"apiKeyEnv\":\"" KEY_ENV "\",\"baseEndpoint\":\"%s\","
           "\"timeoutMs\":%d}", zBase, TIMEOUT_MS);
  db = fuzz_open_db();
  return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size){
  int flags, iVar;
  if( size==0 ) return 0;
  flags = data[0];
  iVar = (flags>>4) & 15;
  bServerEcho = has_key((const char*)data, size);
  responses_queue(data+1, size-1, (flags & 4)!=0);
  switch( flags & 3 ){
    case 0:
      if( flags & 8 ){
        do_fetch(iVar);
      }else{
        do_send(iVar);
      }
      break;
    case 1: do_identify(iVar); break;
    case 2: do_track(iVar); break;
    default: do_flush(iVar, (flags & 8)!=0); break;
  }
  server_finish();
  return 0;
}
