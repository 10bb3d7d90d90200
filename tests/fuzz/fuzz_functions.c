/*
** libFuzzer target: the extension's pure SQL functions and table-valued
** functions, through SQLite, on one in-memory database.
**
** Input: byte 0 is a set of flags, the rest is split at NUL bytes into
** event, settings and customer id (missing parts are SQL NULL).
**   flags & 3       event bound as: 0,1 TEXT; 2 BLOB; 3 INTEGER (atoll)
**   (flags>>2) & 3  settings bound as: 0,1 TEXT (NULL if absent); 2 NULL;
**                   3 BLOB
**   flags & 16      customer id bound as INTEGER (else TEXT)
**   flags & 32      reprepare the statements (fresh settings cache)
** SQL errors are expected and ignored; crashes, leaks and UB are findings,
** and so is a JSON result that SQLite's json_valid() rejects.
** Never the network functions, the session, the outbox or the flush.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include "fuzz_common.h"

/* Statements: ?1 event (or properties), ?2 settings, ?3 customer id.
** bJson: column 1 of a row is json_valid(column 0) when column 0 is
** not NULL: a 0 there is reported. */
static const struct { const char *zSql; int bJson; } aStmt[] = {
  { "SELECT kustomer_event_name(?1)", 0 },
  { "SELECT kustomer_event_name(?1,?2)", 0 },
  { "SELECT x, json_valid(x) FROM (SELECT kustomer_meta(?1) AS x)", 1 },
  { "SELECT x, json_valid(x) FROM (SELECT kustomer_meta(?1,?2) AS x)", 1 },
  { "SELECT x, json_valid(x) FROM (SELECT kustomer_meta("
    "json_extract(?1,'$.properties'),?2) AS x WHERE json_valid(?1))", 1 },
  { "SELECT x, json_valid(x) FROM (SELECT kustomer_identify(?1) AS x)", 1 },
  { "SELECT x, json_valid(x) FROM (SELECT kustomer_identify(?1,?2) AS x)", 1 },
  { "SELECT x, json_valid(x) FROM (SELECT kustomer_tracking(?1,?2) AS x)", 1 },
  { "SELECT x, json_valid(x) FROM (SELECT kustomer_request(?1,?2) AS x)", 1 },
  { "SELECT x, json_valid(x) FROM (SELECT kustomer_request(?1,?2,?3) AS x)",
    1 },
  { "SELECT count(*) FROM kustomer_check(?1,?2)", 0 },
  { "SELECT * FROM kustomer_check(?1,?2)", 0 },
  { "SELECT * FROM kustomer_check(?1)", 0 },
  { "SELECT count(*) FROM kustomer_meta_each(?1,?2)", 0 },
  { "SELECT * FROM kustomer_meta_each(?1,?2)", 0 },
  { "SELECT * FROM kustomer_meta_each(json_extract(?1,'$.properties'),?2)"
    " WHERE json_valid(?1)", 0 },
};
#define NSTMT (int)(sizeof(aStmt)/sizeof(aStmt[0]))

static sqlite3 *db;
static sqlite3_stmt *apStmt[NSTMT];

static void prepare_all(void){
  int i;
  for(i=0; i<NSTMT; i++){
    sqlite3_finalize(apStmt[i]);
    apStmt[i] = 0;
    if( sqlite3_prepare_v2(db, aStmt[i].zSql, -1, &apStmt[i], 0)!=SQLITE_OK ){
      fprintf(stderr, "fuzz: cannot prepare %s: %s\n", aStmt[i].zSql,
              sqlite3_errmsg(db));
      abort();
    }
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv){
  (void)argc; (void)argv;
  db = fuzz_open_db();
  prepare_all();
  return 0;
}

/* Bind n bytes of z (NULL: SQL NULL) to parameter i as eMode says. */
static void bind_part(sqlite3_stmt *p, int i, const char *z, int n, int eMode){
  char aNum[32];
  if( z==0 || eMode==2 ){
    sqlite3_bind_null(p, i);
  }else if( eMode==3 ){
    sqlite3_bind_blob(p, i, z, n, SQLITE_TRANSIENT);
  }else if( eMode==4 ){
    int k = n<(int)sizeof(aNum)-1 ? n : (int)sizeof(aNum)-1;
    memcpy(aNum, z, (size_t)k);
    aNum[k] = 0;
    sqlite3_bind_int64(p, i, atoll(aNum));
  }else{
    sqlite3_bind_text(p, i, z, n, SQLITE_TRANSIENT);
  }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size){
  const char *azPart[3] = {0, 0, 0};
  int anPart[3] = {0, 0, 0};
  int flags, i, nPart = 0;
  size_t j, iStart;
  int eEvent, eSet, eCust;

  if( size==0 ) return 0;
  flags = data[0];
  iStart = 1;
  for(j=1; j<=size && nPart<3; j++){
    if( j==size || (data[j]==0 && nPart<2) ){
      azPart[nPart] = (const char*)data + iStart;
      anPart[nPart] = (int)(j - iStart);
      nPart++;
      iStart = j+1;
      if( j==size ) break;
    }
  }
  eEvent = (flags & 3)==2 ? 3 : (flags & 3)==3 ? 4 : 1;
  switch( (flags>>2) & 3 ){
    case 2:  eSet = 2; break;
    case 3:  eSet = 3; break;
    default: eSet = 1; break;
  }
  eCust = (flags & 16) ? 4 : 1;
  if( flags & 32 ) prepare_all();

  for(i=0; i<NSTMT; i++){
    sqlite3_stmt *p = apStmt[i];
    int nParam = sqlite3_bind_parameter_count(p);
    int rc;
    bind_part(p, 1, azPart[0], anPart[0], eEvent);
    if( nParam>=2 ) bind_part(p, 2, azPart[1], anPart[1], eSet);
    if( nParam>=3 ) bind_part(p, 3, azPart[2], anPart[2], eCust);
    while( (rc = sqlite3_step(p))==SQLITE_ROW ){
      int k, nCol = sqlite3_column_count(p);
      for(k=0; k<nCol; k++){
        /* Reads every column (the table-valued functions' xColumn). */
        const unsigned char *z = sqlite3_column_text(p, k);
        int n = sqlite3_column_bytes(p, k);
        if( z && n>0 && z[n]!=0 ) abort();
      }
      if( aStmt[i].bJson
       && sqlite3_column_type(p, 0)!=SQLITE_NULL
       && sqlite3_column_int(p, 1)==0 ){
        fprintf(stderr, "fuzz: %s returned invalid JSON: %s\n",
                aStmt[i].zSql, sqlite3_column_text(p, 0));
        abort();
      }
    }
    (void)rc;  /* SQLITE_DONE or an error: both fine */
    sqlite3_reset(p);
    sqlite3_clear_bindings(p);
  }
  return 0;
}
