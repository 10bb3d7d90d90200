/*
** libFuzzer target: the sync (kustomer_sync, kustomer_pull, the tables
** syncmap.c writes) against fuzzed responses, bodies and headers, from an
** in-process loopback HTTP server that answers with the input.
**
** Input: bytes 0 and 1 are flags; the rest is split at each "\0\0" into
** successive responses, one per connection the extension opens (the same
** framing as fuzz_http).
**   flags0 & 7       streams: 0 customer, 1 conversation, 2 message,note,
**                    3 company,reference, 4 kobject, 5 work_session,
**                    6 customer,kobject,work_session,audit_log,
**                    custom_attribute_metadata, 7 core
**   (flags0>>3) & 3  page_size 1, 2, 3 or 500
**   flags0 & 0x20    pull twice (the second resumes from the state)
**   flags0 & 0x40    the responses are raw bytes, written as they are
**                    (else the structured form below)
**   flags0 & 0x80    the last response answers every later request too
**                    (a server that keeps saying the same: links.next to
**                    itself, 429s, full pages), until the input is over
**   flags1 & 3       list_page_size 1, 2, 3 or 100
**   flags1 & 4       lookback_seconds=0 (else 300) and search_limit=1000
**                    (else 100: 90 searches a window, too few to reach the
**                    100-page cap of a tie within the 2 seconds)
**   flags1 & 8       start_date='2020-01-01T00:00:00Z'
**   flags1 & 16      prefix='p_'
**   flags1 & 32      record=0
**   flags1 & 64      turn_pages=1
**   flags1 & 128     with two pulls: INSERT INTO ks(ks) VALUES('resync')
**                    between them (the pass that completes sweeps)
** The sync always has rate_window=1 and a pull's bound is 2 seconds; the
** build cuts its waits to 10 ms (PULL_SLEEP_MAX).
** A structured response: its byte 0 % 16 picks a status in aStatus; 14
** and 15 take the next three bytes, each % 10, as the digits of a fuzzed
** status; byte 0 >= 0xF0 also makes the server wait 250 ms before it
** answers (a slow server: the pull's seconds must still hold).  Then
** header lines, separated by '\n' (sent with CRLF), up to a blank line,
** then the body; the harness adds a correct Content-Length.  Without a
** blank line it is all body.  Bodies of the shapes the sync reads: search
** pages {"data":[records],"meta":{"total":N}}, klass lists
** {"data":[{"attributes":{"name":"order"}}],"links":{"next":..}},
** work-session lists, single records {"data":{..}}.
**
** The server reads each request (headers, then a Content-Length body),
** writes the next response, and closes the connection; with no response
** left it closes without answering.  Settings use apiKeyEnv (a test key
** set in LLVMFuzzerInitialize) and timeoutMs 1000.
**
** Findings, besides crashes, leaks, UB and libFuzzer timeouts (each one
** aborts): a pull result that is not json_valid() or not UTF-8; an SQL
** error from the pull whose message does not start "kustomer_pull(): ",
** or that is SQLITE_NOMEM (nothing runs out of memory here);
** a pull that runs well past its 2 seconds; the API key in a result, an
** error, or any table of the database (unless the responses hold it: an
** echo; then only the errors are searched); text in a table that is not
** UTF-8; a _record that is not valid JSON; a cursor or tie_at in the
** sync's state that is not YYYY-MM-DDTHH:MM:SS.sssZ; a resync that fails; a
** request the server receives whose body is not valid JSON or whose
** request line is not printable ASCII (what the server sent earlier, such
** as klass names and ids, must not break the requests that follow).
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
#define PULL_SECS   2
#define MAX_RESP    64
#define SLOW_US     250000

static const int aStatus[14] = {
  200, 201, 202, 204, 301, 400, 401, 403, 404, 409, 429, 500, 502, 503
};

/* ---- The loopback server ------------------------------------------------ */

static int iPort;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
/* Responses of the current input, as bytes on the wire.  The server takes
** ownership of the one it pops (a late connection may still be served
** after the input is over: it must not see freed memory); with bRepeat
** the last one stays and is copied for each further request. */
static char *azResp[MAX_RESP];
static size_t anResp[MAX_RESP];
static int aSlow[MAX_RESP];
static int nResp, iResp;
static int bRepeat;
static int bBusy;                 /* a connection is being served */

static void finding(const char *zWhat, const char *zDetail);

/* The server's own database: json_valid() of request bodies. */
static sqlite3 *dbSrv;
static int bVerbose;            /* FUZZ_SYNC_VERBOSE set: print results */

/* What the extension sent must be well formed whatever the server said
** before (klass names go into search bodies, ids into paths): a body
** that is valid JSON, a request line of printable ASCII. */
static void check_request(const char *zHead, const char *zBody, long nBody){
  const char *z;
  for(z=zHead; *z && *z!='\r'; z++){
    if( (unsigned char)*z<0x20 || (unsigned char)*z>0x7e ){
      finding("a request line that is not printable ASCII", zHead);
    }
  }
  if( bVerbose ) fprintf(stderr, "request: %.*s %.*s\n", (int)(z-zHead), zHead,
                         (int)nBody, zBody ? zBody : "");
  if( nBody>0 && zBody ){
    sqlite3_stmt *p = 0;
    int bOk = 0;
    if( sqlite3_prepare_v2(dbSrv, "SELECT json_valid(?1)", -1, &p, 0)==SQLITE_OK ){
      sqlite3_bind_text(p, 1, zBody, (int)nBody, SQLITE_STATIC);
      bOk = sqlite3_step(p)==SQLITE_ROW && sqlite3_column_int(p, 0)==1;
    }
    sqlite3_finalize(p);
    if( !bOk ) finding("a request body that is not valid JSON", zBody);
  }
}

/* Read one request: headers to CRLFCRLF, then Content-Length bytes.
** Returns 0 when the client went away first. */
static int read_request(int fd){
  char aBuf[8192];
  char *zBody = 0;
  long nGot = 0, nWant;
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
  if( nBody<0 || nBody>1000000 ) return 0;
  nWant = nBody;
  zBody = malloc((size_t)nBody + 1);
  if( zBody==0 ) abort();
  nGot = (long)(n - (size_t)(zEnd + 4 - aBuf));
  if( nGot>nBody ) nGot = nBody;
  memcpy(zBody, zEnd + 4, (size_t)nGot);
  while( nGot<nWant ){
    ssize_t k = recv(fd, zBody + nGot, (size_t)(nWant - nGot), 0);
    if( k<=0 ){
      free(zBody);
      return 0;
    }
    nGot += k;
  }
  zBody[nWant] = 0;
  zEnd[2] = 0;
  check_request(aBuf, zBody, nWant);
  free(zBody);
  return 1;
}

static void *server_main(void *pArg){
  int fdListen = *(int*)pArg;
  for(;;){
    int fd = accept(fdListen, 0, 0);
    char *z = 0;
    size_t n = 0;
    int bSlow = 0;
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
        bSlow = aSlow[iResp];
        if( bRepeat && iResp==nResp-1 ){
          n = anResp[iResp];
          z = malloc(n ? n : 1);
          if( z==0 ) abort();
          memcpy(z, azResp[iResp], n);
        }else{
          z = azResp[iResp];
          n = anResp[iResp];
          azResp[iResp] = 0;
          iResp++;
        }
      }
      pthread_mutex_unlock(&mu);
      if( z ){
        size_t i = 0;
        if( bSlow ){
          struct timespec ts = { 0, SLOW_US*1000L };
          nanosleep(&ts, 0);
        }
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
  if( sqlite3_open(":memory:", &dbSrv)!=SQLITE_OK ){
    fprintf(stderr, "fuzz_sync: cannot open the server's database\n");
    abort();
  }
  if( fd<0 || bind(fd, (struct sockaddr*)&sa, sizeof(sa))
   || listen(fd, 64) || getsockname(fd, (struct sockaddr*)&sa, &nSa)
   || pthread_create(&t, 0, server_main, &fd) ){
    perror("fuzz_sync: loopback server");
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
  bRepeat = 0;
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

/* The wire bytes of one structured response; returns whether it is a
** slow one. */
static int response_structured(Buf *p, const unsigned char *z, size_t n){
  char aLine[64];
  int iStatus = 200, bSlow = 0;
  size_t i, iBody, iStart;
  if( n>0 ){
    int k = z[0] % 16;
    bSlow = z[0]>=0xF0;
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
  return bSlow;
}

/* Queue the responses of an input (data after the flags bytes). */
static void responses_queue(const unsigned char *z, size_t n, int bRaw,
                            int bRep){
  size_t i, iStart = 0;
  pthread_mutex_lock(&mu);
  nResp = iResp = 0;
  for(i=0; i<=n && nResp<MAX_RESP; i++){
    if( i==n || (z[i]==0 && i+1<n && z[i+1]==0) ){
      Buf b = {0, 0, 0};
      int bSlow = 0;
      if( bRaw ){
        buf_add(&b, z+iStart, i-iStart);
      }else{
        bSlow = response_structured(&b, z+iStart, i-iStart);
      }
      azResp[nResp] = b.z ? b.z : malloc(1);
      anResp[nResp] = b.n;
      aSlow[nResp] = bSlow;
      nResp++;
      iStart = i+2;
      i++;
    }
  }
  bRepeat = bRep;
  pthread_mutex_unlock(&mu);
}

/* ---- Checks ------------------------------------------------------------- */

static void finding(const char *zWhat, const char *zDetail){
  fprintf(stderr, "fuzz_sync: %s: %s\n", zWhat, zDetail ? zDetail : "");
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
** echoes it is not the extension leaking it, except into an error. */
static int bServerEcho;

static void no_key(const char *zWhere, const char *z){
  if( z && !bServerEcho && has_key(z, strlen(z)) ){
    finding("the API key leaked", zWhere);
  }
}

/* Errors are redacted: the key must not be in one even when echoed. */
static void no_key_in_error(const char *zWhere, const char *z){
  if( z && has_key(z, strlen(z)) ) finding("the API key leaked", zWhere);
}

static double now_mono(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec/1e9;
}

static char zSettings[256];     /* apiKeyEnv, baseEndpoint, timeoutMs */

static sqlite3_stmt *prepare_or_die(sqlite3 *db, const char *zSql){
  sqlite3_stmt *p = 0;
  if( sqlite3_prepare_v2(db, zSql, -1, &p, 0)!=SQLITE_OK ){
    fprintf(stderr, "fuzz_sync: cannot prepare %s: %s\n", zSql,
            sqlite3_errmsg(db));
    abort();
  }
  return p;
}

static void exec_or_die(sqlite3 *db, const char *zSql){
  char *zErr = 0;
  if( sqlite3_exec(db, zSql, 0, 0, &zErr)!=SQLITE_OK ){
    fprintf(stderr, "fuzz_sync: %s: %s\n", zSql, zErr);
    abort();
  }
}

/* Whether text is valid JSON, by SQLite's json_valid(). */
static int json_ok(sqlite3 *db, const char *z){
  sqlite3_stmt *p = prepare_or_die(db, "SELECT json_valid(?1)");
  int bOk;
  sqlite3_bind_text(p, 1, z, -1, SQLITE_STATIC);
  bOk = sqlite3_step(p)==SQLITE_ROW && sqlite3_column_int(p, 0)==1;
  sqlite3_finalize(p);
  return bOk;
}

/* One kustomer_pull('ks', 2): a valid JSON result or a named SQL error,
** no key in either, within its seconds. */
static void do_pull(sqlite3 *db){
  sqlite3_stmt *p = prepare_or_die(db, "SELECT kustomer_pull('ks', 2)");
  double t0 = now_mono(), t;
  int rc = sqlite3_step(p);
  t = now_mono() - t0;
  if( rc==SQLITE_ROW ){
    const unsigned char *z = sqlite3_column_text(p, 0);
    int n = sqlite3_column_bytes(p, 0);
    if( z==0 ) finding("kustomer_pull() returned NULL", "");
    if( bVerbose ) fprintf(stderr, "result: %s\n", z);
    if( !utf8_ok(z, n) ) finding("the pull's result is not UTF-8",
                                 (const char*)z);
    if( !json_ok(db, (const char*)z) ){
      finding("the pull's result is not valid JSON", (const char*)z);
    }
    no_key("the pull's result", (const char*)z);
    {
      /* its errors, even when the server echoed the key */
      sqlite3_stmt *pE = prepare_or_die(db,
          "SELECT value FROM json_each(?1, '$.errors')");
      sqlite3_bind_text(pE, 1, (const char*)z, -1, SQLITE_STATIC);
      while( sqlite3_step(pE)==SQLITE_ROW ){
        no_key_in_error("an error in the pull's result",
                        (const char*)sqlite3_column_text(pE, 0));
      }
      sqlite3_finalize(pE);
    }
  }else{
    const char *zErr = sqlite3_errmsg(db);
    int ec = sqlite3_errcode(db);
    if( bVerbose ) fprintf(stderr, "error: %s\n", zErr);
    no_key_in_error("the pull's SQL error", zErr);
    if( !utf8_ok((const unsigned char*)zErr, (int)strlen(zErr)) ){
      finding("the pull's SQL error is not UTF-8", zErr);
    }
    /* nothing here runs out of memory (libFuzzer's malloc limit aborts
    ** first): SQLITE_NOMEM is a NULL taken for a failed allocation */
    if( ec==SQLITE_NOMEM ) finding("the pull reports out of memory", zErr);
    if( strncmp(zErr, "kustomer_pull(): ", 17)!=0 ){
      finding("a pull error that does not name kustomer_pull()", zErr);
    }
  }
  sqlite3_finalize(p);
  if( t > PULL_SECS + TIMEOUT_MS/1000.0 + 3.0 ){
    char aBuf[128];
    snprintf(aBuf, sizeof(aBuf), "%.2f s, bound %d s", t, PULL_SECS);
    finding("kustomer_pull() ran well past its seconds", aBuf);
  }
}

/* Whether z is a timestamp as the sync writes them (text order is time
** order): YYYY-MM-DDTHH:MM:SS.sssZ. */
static int iso_ok(const char *z){
  static const char zPat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
  int i;
  for(i=0; zPat[i]; i++){
    if( zPat[i]=='d' ? !(z[i]>='0' && z[i]<='9') : z[i]!=zPat[i] ) return 0;
  }
  return z[i]==0;
}

/* Every row of one table: text UTF-8 and without the key, _record JSON;
** in the sync's state (bErrors), errors without the key even when echoed
** and cursors as timestamps. */
static void check_table(sqlite3 *db, const char *zTable, int bErrors){
  char *zSql = sqlite3_mprintf("SELECT * FROM \"%w\"", zTable);
  sqlite3_stmt *p = prepare_or_die(db, zSql);
  int i, nCol = sqlite3_column_count(p), rc;
  while( (rc = sqlite3_step(p))==SQLITE_ROW ){
    for(i=0; i<nCol; i++){
      const char *zCol = sqlite3_column_name(p, i);
      const unsigned char *z;
      if( sqlite3_column_type(p, i)!=SQLITE_TEXT ) continue;
      z = sqlite3_column_text(p, i);
      if( !utf8_ok(z, sqlite3_column_bytes(p, i)) ){
        char *zMsg = sqlite3_mprintf("%s.%s: %s", zTable, zCol, z);
        finding("text in a table is not UTF-8", zMsg);
      }
      if( bVerbose>1 ) fprintf(stderr, "  %s.%s = %s\n", zTable, zCol, z);
      no_key(zTable, (const char*)z);
      if( bErrors && strcmp(zCol, "error")==0 ){
        no_key_in_error(zTable, (const char*)z);
      }
      if( bErrors && (strcmp(zCol, "cursor")==0 || strcmp(zCol, "tie_at")==0)
       && !iso_ok((const char*)z) ){
        char *zMsg = sqlite3_mprintf("%s.%s: %s", zTable, zCol, z);
        finding("a cursor that is not YYYY-MM-DDTHH:MM:SS.sssZ", zMsg);
      }
      if( strcmp(zCol, "_record")==0 && !json_ok(db, (const char*)z) ){
        char *zMsg = sqlite3_mprintf("%s: %s", zTable, z);
        finding("a _record is not valid JSON", zMsg);
      }
    }
  }
  if( rc!=SQLITE_DONE ){
    char *zMsg = sqlite3_mprintf("%s: %s", zTable, sqlite3_errmsg(db));
    finding("cannot read a table", zMsg);
  }
  sqlite3_finalize(p);
  sqlite3_free(zSql);
}

/* The sync's state (the virtual table), then every table of the file. */
static void check_tables(sqlite3 *db){
  sqlite3_stmt *p;
  char **azName = 0;
  int nName = 0, i;
  check_table(db, "ks", 1);
  p = prepare_or_die(db, "SELECT name FROM sqlite_schema WHERE type='table'"
                         " AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name");
  while( sqlite3_step(p)==SQLITE_ROW ){
    azName = realloc(azName, sizeof(char*)*(nName+1));
    if( azName==0 ) abort();
    azName[nName++] = strdup((const char*)sqlite3_column_text(p, 0));
  }
  sqlite3_finalize(p);
  for(i=0; i<nName; i++){
    check_table(db, azName[i], strcmp(azName[i], "ks_state")==0);
    free(azName[i]);
  }
  free(azName);
}

static void run_input(int f0, int f1){
  static const int aPage[4] = { 1, 2, 3, 500 };
  static const int aList[4] = { 1, 2, 3, 100 };
  static const char *const azStreams[8] = {
    "customer", "conversation", "message,note", "company,reference",
    "kobject", "work_session",
    "customer,kobject,work_session,audit_log,custom_attribute_metadata",
    "core"
  };
  sqlite3 *db = fuzz_open_db();
  char *zSql = sqlite3_mprintf(
      "CREATE VIRTUAL TABLE ks USING kustomer_sync(settings=%Q,"
      " streams='%s', page_size=%d, list_page_size=%d, rate_window=1,"
      " lookback_seconds=%d%s%s%s%s%s)",
      zSettings, azStreams[f0 & 7], aPage[(f0>>3) & 3], aList[f1 & 3],
      (f1 & 4) ? 0 : 300,
      (f1 & 4) ? ", search_limit=1000" : "",
      (f1 & 8) ? ", start_date='2020-01-01T00:00:00Z'" : "",
      (f1 & 16) ? ", prefix='p_'" : "",
      (f1 & 32) ? ", record=0" : "",
      (f1 & 64) ? ", turn_pages=1" : "");
  exec_or_die(db, zSql);
  sqlite3_free(zSql);
  do_pull(db);
  if( f0 & 0x20 ){
    if( f1 & 128 ){
      char *zErr = 0;
      if( sqlite3_exec(db, "INSERT INTO ks(ks) VALUES('resync')", 0, 0,
                       &zErr)!=SQLITE_OK ){
        finding("resync failed", zErr);
      }
    }
    do_pull(db);
  }
  check_tables(db);
  if( sqlite3_close(db)!=SQLITE_OK ) finding("cannot close", "");
  fuzz_db = 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv){
  const char *zV = getenv("FUZZ_SYNC_VERBOSE");
  (void)argc; (void)argv;
  setenv(KEY_ENV, KEY, 1);
  bVerbose = zV ? (atoi(zV)>1 ? 2 : 1) : 0;
  server_start();
  snprintf(zSettings, sizeof(zSettings),
           "{\"baseEndpoint\":\"http://127.0.0.1:%d\",\"apiKeyEnv\":\""
           KEY_ENV "\",\"timeoutMs\":%d}", iPort, TIMEOUT_MS);
  return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size){
  int f0, f1;
  if( size<2 ) return 0;
  f0 = data[0];
  f1 = data[1];
  bServerEcho = has_key((const char*)data, size);
  responses_queue(data+2, size-2, (f0 & 0x40)!=0, (f0 & 0x80)!=0);
  run_input(f0, f1);
  server_finish();
  return 0;
}
