/*
** kustomer: a SQLite extension that turns stored RudderStack/Segment
** events into Kustomer API requests.
**
**   .load ./dist/kustomer
**   SELECT kustomer_request(payload, '{"apiKey":"..."}') FROM events;
**   SELECT * FROM kustomer_check('{"type":"track","event":"Cart Viewed"}');
**
** This file is the entry point and the registration table only; the SQL
** surface is implemented in src/.
*/
#include "src/kustomer.h"
SQLITE_EXTENSION_INIT1

static const struct {
  const char *zName;
  int (*xRegister)(sqlite3*);
} aModule[] = {
  { "scalar functions",   kustomer_register_functions },
  { "kustomer_meta_each", kustomer_register_meta_each },
  { "kustomer_check",     kustomer_register_check },
  { "kustomer_session",   kustomer_register_session },
  { "network functions",  kustomer_register_network },
  { "kustomer_outbox",    kustomer_register_outbox },
  { "kustomer_flush",     kustomer_register_flush },
  { "kustomer_fetch",     kustomer_register_fetch },
  { "kustomer_sync",      kustomer_register_sync },
  { "kustomer_pull",      kustomer_register_pull },
  { "kustomer_events",    kustomer_register_events },
};

int sqlite3_kustomer_init(sqlite3*, char**, const sqlite3_api_routines*);

#ifdef _WIN32
__declspec(dllexport)
#else
__attribute__((visibility("default")))
#endif
int sqlite3_kustomer_init(sqlite3 *db, char **pzErrMsg,
                          const sqlite3_api_routines *pApi){
  size_t i;
  SQLITE_EXTENSION_INIT2(pApi);
  for(i=0; i<sizeof(aModule)/sizeof(aModule[0]); i++){
    int rc = aModule[i].xRegister(db);
    if( rc!=SQLITE_OK ){
      *pzErrMsg = sqlite3_mprintf("kustomer: cannot register %s: %s",
                                  aModule[i].zName, sqlite3_errstr(rc));
      return rc;
    }
  }
  return SQLITE_OK;
}
