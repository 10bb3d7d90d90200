/*
** Shared by the libFuzzer harnesses: an in-memory database with the
** extension registered.  This file uses the ordinary SQLite API (sqlite3.h),
** not the sqlite3ext.h redirection the extension's own sources use;
** sqlite3_auto_extension() makes SQLite call sqlite3_kustomer_init() with its
** own sqlite3_api_routines, which sets the extension's global sqlite3_api.
*/
#include <stdio.h>
#include <stdlib.h>
#include <sqlite3.h>
#include "fuzz_common.h"

int sqlite3_kustomer_init(sqlite3*, char**, const sqlite3_api_routines*);

/* The last database opened, kept reachable so that LeakSanitizer does not
** report it. */
sqlite3 *fuzz_db;

sqlite3 *fuzz_open_db(void){
  sqlite3 *db = 0;
  static int bAuto = 0;
  if( !bAuto ){
    if( sqlite3_auto_extension((void(*)(void))sqlite3_kustomer_init)
        !=SQLITE_OK ){
      fprintf(stderr, "fuzz: sqlite3_auto_extension failed\n");
      abort();
    }
    bAuto = 1;
  }
  if( sqlite3_open(":memory:", &db)!=SQLITE_OK ){
    fprintf(stderr, "fuzz: cannot open db: %s\n", db ? sqlite3_errmsg(db) : "");
    abort();
  }
  fuzz_db = db;
  return db;
}
