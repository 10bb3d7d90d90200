/*
** libFuzzer target: kustomer_events() over fuzzed archive files.
**
** Input: byte 0 is flags, the rest is the file's content.
**   flags & 3     0 as it is; 1 gzip-compressed (one member); 2 two gzip
**                 members (the content split in half), as concatenated
**                 hourly files are; 3 gzip-compressed, then cut short
**                 (truncated at a point the next byte picks)
**   flags & 4     options {"maxLineBytes":64}
**   flags & 8     also a second file, the same content as it is, read
**                 through a glob over both
** Findings, besides crashes, leaks, UB and timeouts: a row with both a
** message and an error, or neither; a message that is not a JSON object
** (json_valid, json_type) or not UTF-8, or not found in the content as it
** is (messages are returned exactly as in the file); an error without
** "kustomer_events" where an SQL error is raised; a line number out of
** range.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <sqlite3.h>
#include "fuzz_common.h"

static char zDir[64];

static void finding(const char *zWhat, const char *zDetail){
  fprintf(stderr, "fuzz_events: %s: %s\n", zWhat, zDetail ? zDetail : "");
  abort();
}

static void write_file(const char *zPath, const void *p, size_t n){
  FILE *f = fopen(zPath, "wb");
  if( f==0 || (n>0 && fwrite(p, 1, n, f)!=n) ) finding("cannot write", zPath);
  fclose(f);
}

/* n bytes at p as one gzip member appended to f. */
static void gzip_member(FILE *f, const unsigned char *p, size_t n){
  z_stream zs;
  unsigned char aOut[16384];
  int rc;
  memset(&zs, 0, sizeof(zs));
  if( deflateInit2(&zs, 6, Z_DEFLATED, 16+15, 8, Z_DEFAULT_STRATEGY)!=Z_OK ){
    abort();
  }
  zs.next_in = (unsigned char*)p;
  zs.avail_in = (unsigned)n;
  do{
    zs.next_out = aOut;
    zs.avail_out = sizeof(aOut);
    rc = deflate(&zs, Z_FINISH);
    fwrite(aOut, 1, sizeof(aOut) - zs.avail_out, f);
  }while( rc==Z_OK );
  deflateEnd(&zs);
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
    for(j=1; j<=k; j++) if( (z[i+j]&0xC0)!=0x80 ) return 0;
    i += k+1;
  }
  return 1;
}

/* Whether n bytes at z are in the h-byte content at p (a plain loop:
** libFuzzer hooks memmem and would feed its arguments back). */
static int in_content(const unsigned char *p, size_t h, const char *z,
                      size_t n){
  size_t i, j;
  if( n==0 || n>h ) return n==0;
  for(i=0; i+n<=h; i++){
    for(j=0; j<n && p[i+j]==(unsigned char)z[j]; j++){}
    if( j==n ) return 1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size){
  char zFile[96], zFile2[96], zArg[128];
  const unsigned char *p;
  size_t n;
  int f, nLines = 0;
  size_t i;
  sqlite3 *db;
  sqlite3_stmt *pStmt = 0;
  char *zSql;
  if( size<1 ) return 0;
  if( zDir[0]==0 ){
    snprintf(zDir, sizeof(zDir), "/tmp/fuzz_events.%d", (int)getpid());
    mkdir(zDir, 0700);
  }
  f = data[0];
  p = data+1;
  n = size-1;
  for(i=0; i<n; i++) if( p[i]=='\n' ) nLines++;
  snprintf(zFile, sizeof(zFile), "%s/a.ndjson", zDir);
  snprintf(zFile2, sizeof(zFile2), "%s/b.ndjson", zDir);
  unlink(zFile2);
  if( (f & 3)==0 ){
    write_file(zFile, p, n);
  }else{
    FILE *fo = fopen(zFile, "wb");
    if( fo==0 ) finding("cannot write", zFile);
    if( (f & 3)==2 ){
      gzip_member(fo, p, n/2);
      gzip_member(fo, p+n/2, n-n/2);
    }else{
      gzip_member(fo, p, n);
    }
    fclose(fo);
    if( (f & 3)==3 ){
      FILE *fi = fopen(zFile, "rb");
      long len;
      unsigned char *a;
      fseek(fi, 0, SEEK_END);
      len = ftell(fi);
      fseek(fi, 0, SEEK_SET);
      a = malloc((size_t)len+1);
      if( a==0 ) abort();
      if( fread(a, 1, (size_t)len, fi)!=(size_t)len ) abort();
      fclose(fi);
      write_file(zFile, a, (size_t)(n>0 ? (p[0] % (len+1)) : len/2));
      free(a);
    }
  }
  if( f & 8 ) write_file(zFile2, p, n);
  snprintf(zArg, sizeof(zArg), "%s%s", zDir, (f & 8) ? "/*.ndjson"
                                                     : "/a.ndjson");
  db = fuzz_open_db();
  zSql = sqlite3_mprintf("SELECT message, error, line, batch_index,"
                         " json_valid(message), json_type(message)"
                         " FROM kustomer_events(%Q%s)", zArg,
                         (f & 4) ? ", '{\"maxLineBytes\":64}'" : "");
  if( sqlite3_prepare_v2(db, zSql, -1, &pStmt, 0)!=SQLITE_OK ){
    finding("cannot prepare", sqlite3_errmsg(db));
  }
  sqlite3_free(zSql);
  while( 1 ){
    int rc = sqlite3_step(pStmt);
    const unsigned char *zMsg;
    if( rc==SQLITE_DONE ) break;
    if( rc!=SQLITE_ROW ){
      const char *zErr = sqlite3_errmsg(db);
      if( rc==SQLITE_NOMEM ) break;     /* libFuzzer's malloc limit */
      if( strstr(zErr, "kustomer_events")==0 ){
        finding("an SQL error that does not name kustomer_events", zErr);
      }
      break;
    }
    zMsg = sqlite3_column_text(pStmt, 0);
    if( (zMsg==0)==(sqlite3_column_type(pStmt, 1)==SQLITE_NULL) ){
      finding("a row with both a message and an error, or neither",
              (const char*)sqlite3_column_text(pStmt, 1));
    }
    if( zMsg ){
      int nMsg = sqlite3_column_bytes(pStmt, 0);
      const char *zType = (const char*)sqlite3_column_text(pStmt, 5);
      if( sqlite3_column_int(pStmt, 4)!=1 || zType==0
       || strcmp(zType, "object")!=0 ){
        finding("a message that is not a JSON object", (const char*)zMsg);
      }
      if( !utf8_ok(zMsg, nMsg) ) finding("a message not UTF-8", "");
      if( !in_content(p, n, (const char*)zMsg, (size_t)nMsg) ){
        finding("a message not as in the file", (const char*)zMsg);
      }
    }
    if( sqlite3_column_type(pStmt, 2)!=SQLITE_NULL ){
      sqlite3_int64 iLine = sqlite3_column_int64(pStmt, 2);
      if( iLine<1 || iLine>nLines+1 ){
        finding("a line number out of range", "");
      }
    }
  }
  sqlite3_finalize(pStmt);
  if( sqlite3_close(db)!=SQLITE_OK ) finding("cannot close", "");
  fuzz_db = 0;
  return 0;
}
