/*
** What the table-valued functions share: their arguments are HIDDEN
** columns, mapped to xFilter arguments as series.c does.
*/
#include <string.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

int kustomer_tvf_best_index(sqlite3_vtab *pVtab, sqlite3_index_info *pInfo,
                            int iFirstArg, int nArg, int nRequired,
                            const char *zFunc, const char *const *azArg,
                            double rCost){
  int aIdx[KUSTOMER_TVF_MAX_ARGS];
  int i, n = 0;
  const struct sqlite3_index_constraint *pC = pInfo->aConstraint;

  for(i=0; i<nArg; i++) aIdx[i] = -1;
  for(i=0; i<pInfo->nConstraint; i++, pC++){
    int iArg = pC->iColumn - iFirstArg;
    if( iArg<0 || iArg>=nArg ) continue;
    if( pC->op!=SQLITE_INDEX_CONSTRAINT_EQ ) continue;
    /* An argument known only later in the join: plan it for then, or the
    ** call would run without it (series.c does the same). */
    if( !pC->usable ) return SQLITE_CONSTRAINT;
    aIdx[iArg] = i;
  }
  for(i=0; i<nRequired; i++){
    if( aIdx[i]<0 ){
      return kustomer_vtab_error(pVtab, sqlite3_mprintf("%s(): argument %d "
                                 "(%s) is required", zFunc, i+1, azArg[i]));
    }
  }
  pInfo->idxNum = 0;
  for(i=0; i<nArg; i++){
    if( aIdx[i]>=0 ){
      pInfo->aConstraintUsage[aIdx[i]].argvIndex = ++n;
      pInfo->aConstraintUsage[aIdx[i]].omit = 1;
      pInfo->idxNum |= 1<<i;
    }
  }
  pInfo->estimatedCost = rCost;
  pInfo->estimatedRows = 10;
  return SQLITE_OK;
}

int kustomer_tvf_disconnect(sqlite3_vtab *pVtab){
  sqlite3_free(pVtab);
  return SQLITE_OK;
}

/* Set a vtab's error message (from sqlite3_mprintf; takes ownership). */
int kustomer_vtab_error(sqlite3_vtab *pVtab, char *zMsg){
  sqlite3_free(pVtab->zErrMsg);
  pVtab->zErrMsg = zMsg;
  return zMsg ? SQLITE_ERROR : SQLITE_NOMEM;
}

/* The shared xConnect: declare the schema, allow use from triggers and
** views (the functions are pure). */
int kustomer_tvf_connect(sqlite3 *db, const char *zSchema,
                         sqlite3_vtab **ppVtab){
  int rc = sqlite3_declare_vtab(db, zSchema);
  if( rc!=SQLITE_OK ) return rc;
  *ppVtab = sqlite3_malloc(sizeof(sqlite3_vtab));
  if( *ppVtab==0 ) return SQLITE_NOMEM;
  memset(*ppVtab, 0, sizeof(sqlite3_vtab));
  sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS);
  return SQLITE_OK;
}
