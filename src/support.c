/*
** What the SQL surface shares: results and errors of SQL functions, the
** settings argument (parsed once per statement), the names of SQL types,
** and the table-valued functions' plumbing (arguments as HIDDEN columns,
** mapped to xFilter arguments as series.c does).
**
** The core (jsnum.c, json.c, settings.c, transform.c) knows nothing of
** sqlite3_context or virtual tables; this file is where they meet it.
*/
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

/* ---- Results ------------------------------------------------------------- */

void kustomer_result_error(sqlite3_context *ctx, char *zMsg){
  if( zMsg ){
    sqlite3_result_error(ctx, zMsg, -1);
    sqlite3_free(zMsg);
  }else{
    sqlite3_result_error_nomem(ctx);
  }
}

void kustomer_result_code(sqlite3_context *ctx, int rc){
  if( rc==SQLITE_TOOBIG ){
    sqlite3_result_error_toobig(ctx);
  }else if( rc==SQLITE_NOMEM ){
    sqlite3_result_error_nomem(ctx);
  }else{
    sqlite3_result_error_code(ctx, rc);
  }
}

void kustomer_result_str(sqlite3_context *ctx, sqlite3_str *p, int bJson){
  int rc = sqlite3_str_errcode(p);
  int n = sqlite3_str_length(p);
  char *z = sqlite3_str_finish(p);
  if( rc ){
    sqlite3_free(z);
    kustomer_result_code(ctx, rc);
    return;
  }
  sqlite3_result_text(ctx, z ? z : "", n, z ? sqlite3_free : SQLITE_STATIC);
  if( bJson ) sqlite3_result_subtype(ctx, KUSTOMER_JSON_SUBTYPE);
}

void kustomer_result_event_error(sqlite3_context *ctx, int status,
                                 const char *zMsg){
  sqlite3_str *p = sqlite3_str_new(0);
  sqlite3_str_appendf(p, "{\"statusCode\":%d,\"error\":", status);
  kustomer_json_string(p, zMsg, strlen(zMsg));
  sqlite3_str_appendchar(p, 1, '}');
  kustomer_result_str(ctx, p, 1);
}

const char *kustomer_type_name(sqlite3_value *pVal){
  if( pVal==0 ) return "nothing";
  switch( sqlite3_value_type(pVal) ){
    case SQLITE_INTEGER: return "integer";
    case SQLITE_FLOAT:   return "real";
    case SQLITE_BLOB:    return "blob";
    case SQLITE_NULL:    return "null";
    default:             return "text";
  }
}

/* "zFunc(): argument N (zName) <what>", or "zFunc: zName <what>" when iArg
** is 0 (a column of a table's INSERT); zFmt and the rest make <what>.
** From sqlite3_mprintf; NULL on out-of-memory. */
static char *arg_error(const char *zFunc, int iArg, const char *zName,
                       const char *zFmt, ...){
  char *zWhat, *zMsg = 0;
  va_list ap;
  va_start(ap, zFmt);
  zWhat = sqlite3_vmprintf(zFmt, ap);
  va_end(ap);
  if( zWhat && iArg==0 ){
    zMsg = sqlite3_mprintf("%s: %s %s", zFunc, zName, zWhat);
  }else if( zWhat ){
    zMsg = sqlite3_mprintf("%s(): argument %d (%s) %s", zFunc, iArg, zName,
                           zWhat);
  }
  sqlite3_free(zWhat);
  return zMsg;
}

char *kustomer_not_text(const char *zFunc, int iArg, const char *zName,
                        sqlite3_value *pVal){
  /* an INSERT's column names NULL as SQL spells it */
  return arg_error(zFunc, iArg, zName, "must be JSON text, got %s",
                   iArg==0 && sqlite3_value_type(pVal)==SQLITE_NULL
                   ? "NULL" : kustomer_type_name(pVal));
}

/*
** JSONB (SQLite 3.45 and later) is read by the host's own json(): its
** format is the host's to define, and a host that has it has json() for
** it.  Only blobs come here, so text arguments pay nothing.
*/
static int jsonb_text(sqlite3 *db, sqlite3_value *pVal, const char *zFunc,
                      int iArg, const char *zName, KJsonText *p,
                      char **pzErr){
  sqlite3_stmt *pStmt = 0;
  int rc;
  if( sqlite3_libversion_number()<3045000 ){
    *pzErr = arg_error(zFunc, iArg, zName, "must be JSON text, got blob "
                       "(JSONB needs SQLite 3.45 or later; this is %s)",
                       sqlite3_libversion());
    return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  rc = sqlite3_prepare_v2(db, "SELECT json(?1)", -1, &pStmt, 0);
  if( rc==SQLITE_OK ){
    sqlite3_bind_value(pStmt, 1, pVal);
    if( sqlite3_step(pStmt)==SQLITE_ROW
     && sqlite3_column_type(pStmt, 0)==SQLITE_TEXT ){
      const char *z = (const char*)sqlite3_column_text(pStmt, 0);
      int n = sqlite3_column_bytes(pStmt, 0);
      p->zOwned = z ? sqlite3_malloc(n+1) : 0;
      if( p->zOwned==0 ){
        sqlite3_finalize(pStmt);
        return SQLITE_NOMEM;
      }
      memcpy(p->zOwned, z, (size_t)n+1);
      p->z = p->zOwned;
      p->n = n;
      sqlite3_finalize(pStmt);
      return SQLITE_OK;
    }
    rc = sqlite3_finalize(pStmt);
  }
  if( rc==SQLITE_NOMEM ) return SQLITE_NOMEM;
  /* json() refused it (a blob that is not JSONB), or the host has no
  ** json() at all */
  *pzErr = arg_error(zFunc, iArg, zName, "must be JSON text or JSONB, got a "
                     "blob that is not JSONB");
  return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
}

int kustomer_json_text(sqlite3 *db, sqlite3_value *pVal, const char *zFunc,
                       int iArg, const char *zName, KJsonText *p,
                       char **pzErr){
  p->z = 0;
  p->n = 0;
  p->zOwned = 0;
  *pzErr = 0;
  switch( sqlite3_value_type(pVal) ){
    case SQLITE_TEXT:
      p->z = (const char*)sqlite3_value_text(pVal);
      if( p->z==0 ) return SQLITE_NOMEM;
      p->n = sqlite3_value_bytes(pVal);
      return SQLITE_OK;
    case SQLITE_BLOB:
      return jsonb_text(db, pVal, zFunc, iArg, zName, p, pzErr);
    default:
      *pzErr = kustomer_not_text(zFunc, iArg, zName, pVal);
      return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }
}

void kustomer_json_text_done(KJsonText *p){
  sqlite3_free(p->zOwned);
  p->zOwned = 0;
  p->z = 0;
}

int kustomer_options_arg(const char *zFunc, int iArg, sqlite3_value *pArg,
                         cJSON **ppOpt, char **pzErr){
  const char *z;
  char *zErr = 0;
  *ppOpt = 0;
  *pzErr = 0;
  if( sqlite3_value_type(pArg)==SQLITE_NULL ) return SQLITE_OK;
  if( sqlite3_value_type(pArg)!=SQLITE_TEXT ){
    *pzErr = kustomer_not_text(zFunc, iArg, "options", pArg);
    return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  z = (const char*)sqlite3_value_text(pArg);
  *ppOpt = z ? kustomer_json_parse(z, sqlite3_value_bytes(pArg), &zErr) : 0;
  if( *ppOpt==0 ){
    if( zErr==0 ) return SQLITE_NOMEM;
    *pzErr = sqlite3_mprintf("%s(): argument %d (options) %s", zFunc, iArg,
                             zErr);
    sqlite3_free(zErr);
    return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  if( !cJSON_IsObject(*ppOpt) ){
    cJSON_Delete(*ppOpt);
    *ppOpt = 0;
    *pzErr = sqlite3_mprintf("%s(): argument %d (options) must be a JSON "
                             "object", zFunc, iArg);
    return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  return SQLITE_OK;
}

char *kustomer_may_commit(sqlite3 *db, const char *zFunc, const char *zWhy){
  sqlite3_stmt *pStmt = 0;
  if( !sqlite3_get_autocommit(db) ){
    return sqlite3_mprintf("%s(): cannot run inside a transaction: %s",
                           zFunc, zWhy);
  }
  /* INSERT ... SELECT f(...) holds its transaction open until it ends:
  ** nothing could be committed */
  while( (pStmt = sqlite3_next_stmt(db, pStmt))!=0 ){
    if( sqlite3_stmt_busy(pStmt) && !sqlite3_stmt_readonly(pStmt) ){
      return sqlite3_mprintf("%s(): cannot run inside a statement that "
                             "writes: call it from a SELECT of its own",
                             zFunc);
    }
  }
  return 0;
}

int kustomer_pid_live(int pid){
  return pid>0 && pid!=(int)getpid() && kill((pid_t)pid, 0)==0;
}

/* ---- The settings argument ---------------------------------------------- */

/* Settings when none are given: the reference's defaults. */
static const KSettings defaultSettings = {
  .zBase = (char*)KUSTOMER_DEFAULT_BASE,
  .zAuth = (char*)"Bearer undefined",
  .zKeyEnv = 0,
  .timeoutMs = KUSTOMER_TIMEOUT_MS,
};

const KSettings *kustomer_settings_default(void){
  return &defaultSettings;
}

int kustomer_settings_value(sqlite3_value *pVal, const char *zFunc, int iArg,
                            KSettings **ppSet, char **pzErr){
  const char *zText;
  char *zErr = 0;
  int rc;
  *ppSet = 0;
  *pzErr = 0;
  if( pVal==0 || sqlite3_value_type(pVal)==SQLITE_NULL ){
    return kustomer_settings_parse(0, 0, ppSet, pzErr);
  }
  if( sqlite3_value_type(pVal)!=SQLITE_TEXT ){
    *pzErr = kustomer_not_text(zFunc, iArg, "settings", pVal);
    return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  zText = (const char*)sqlite3_value_text(pVal);
  if( zText==0 ) return SQLITE_NOMEM;
  rc = kustomer_settings_parse(zText, sqlite3_value_bytes(pVal), ppSet, &zErr);
  if( rc==SQLITE_ERROR ){
    *pzErr = sqlite3_mprintf("%s(): argument %d (settings) %s", zFunc, iArg,
                             zErr);
    if( *pzErr==0 ) rc = SQLITE_NOMEM;
  }
  sqlite3_free(zErr);
  return rc;
}

/* What a constant settings argument keeps for its statement, as the
** argument's auxdata: the parse, and the buffer results are written into
** (kustomer_out_begin()). */
typedef struct SetAux SetAux;
struct SetAux {
  KSettings *pSet;
  sqlite3_str *pAcc;
};

static void set_aux_free(void *p){
  SetAux *pAux = p;
  kustomer_settings_free(pAux->pSet);
  sqlite3_free(sqlite3_str_finish(pAux->pAcc));
  sqlite3_free(pAux);
}

const KSettings *kustomer_settings_get(sqlite3_context *ctx, int argc,
                                       sqlite3_value **argv, int iArg,
                                       const char *zFunc, int *pbNew){
  KSettings *pSet;
  SetAux *pAux;
  char *zErr = 0;
  int rc;

  *pbNew = 0;
  if( iArg>=argc || sqlite3_value_type(argv[iArg])==SQLITE_NULL ){
    return &defaultSettings;
  }
  pAux = sqlite3_get_auxdata(ctx, iArg);
  if( pAux ) return pAux->pSet;
  rc = kustomer_settings_value(argv[iArg], zFunc, iArg+1, &pSet, &zErr);
  if( rc==SQLITE_ERROR ){
    kustomer_result_error(ctx, zErr);
    return 0;
  }
  if( rc ){
    kustomer_result_code(ctx, rc);
    return 0;
  }
  *pbNew = 1;
  return pSet;
}

void kustomer_settings_done(sqlite3_context *ctx, int iArg,
                            const KSettings *pSet, int bNew){
  SetAux *pAux;
  if( !bNew ) return;
  pAux = sqlite3_malloc(sizeof(*pAux));
  if( pAux==0 ){
    kustomer_settings_free((KSettings*)pSet);   /* not kept: parsed again */
    return;
  }
  pAux->pSet = (KSettings*)pSet;
  pAux->pAcc = 0;
  /* Last use of pSet: SQLite may free it before set_auxdata returns. */
  sqlite3_set_auxdata(ctx, iArg, pAux, set_aux_free);
}

/* Results are appended to one buffer per statement, each copied out from
** where it starts: a result of a few KB written into a new sqlite3_str
** costs a dozen reallocations as it grows.  Past OUT_KEEP bytes the buffer
** is let go and the next result starts a new one. */
#define OUT_KEEP (256*1024)

void kustomer_out_begin(sqlite3_context *ctx, int iArg, KOut *pOut){
  SetAux *pAux = sqlite3_get_auxdata(ctx, iArg);
  pOut->pAux = pAux;
  pOut->iStart = 0;
  if( pAux ){
    if( pAux->pAcc==0 ) pAux->pAcc = sqlite3_str_new(0);
    pOut->p = pAux->pAcc;
    pOut->iStart = sqlite3_str_length(pOut->p);
  }else{
    pOut->p = sqlite3_str_new(0);
  }
}

/* Let the statement's buffer go (after an error in it, or when large). */
static void out_release(KOut *pOut){
  SetAux *pAux = pOut->pAux;
  sqlite3_free(sqlite3_str_finish(pAux->pAcc));
  pAux->pAcc = 0;
}

void kustomer_out_result(sqlite3_context *ctx, KOut *pOut, int bJson){
  int rc, n;
  if( pOut->pAux==0 ){
    kustomer_result_str(ctx, pOut->p, bJson);
    return;
  }
  rc = sqlite3_str_errcode(pOut->p);
  if( rc ){
    out_release(pOut);
    kustomer_result_code(ctx, rc);
    return;
  }
  n = sqlite3_str_length(pOut->p);
  sqlite3_result_text(ctx, n ? sqlite3_str_value(pOut->p) + pOut->iStart : "",
                      n - pOut->iStart, SQLITE_TRANSIENT);
  if( bJson ) sqlite3_result_subtype(ctx, KUSTOMER_JSON_SUBTYPE);
  if( n>OUT_KEEP ) out_release(pOut);
}

void kustomer_out_discard(KOut *pOut){
  if( pOut->pAux==0 ){
    sqlite3_free(sqlite3_str_finish(pOut->p));
  }else if( sqlite3_str_errcode(pOut->p)
         || sqlite3_str_length(pOut->p)>OUT_KEEP ){
    out_release(pOut);
  }
  /* else the bytes written stay, unread, before the next result */
}

/* ---- Table-valued functions ---------------------------------------------- */

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

void kustomer_tvf_args(int idxNum, int argc, sqlite3_value **argv, int nArg,
                       sqlite3_value **apArg){
  int i, j = 0;
  for(i=0; i<nArg; i++){
    apArg[i] = ((idxNum & (1<<i)) && j<argc) ? argv[j++] : 0;
  }
}

int kustomer_tvf_disconnect(sqlite3_vtab *pVtab){
  sqlite3_free(pVtab);
  return SQLITE_OK;
}

int kustomer_vtab_error(sqlite3_vtab *pVtab, char *zMsg){
  sqlite3_free(pVtab->zErrMsg);
  pVtab->zErrMsg = zMsg;
  return zMsg ? SQLITE_ERROR : SQLITE_NOMEM;
}

int kustomer_vtab_settings(sqlite3_vtab *pVtab, const char *zFunc, int iArg,
                           sqlite3_value *pVal, KSettings **ppSet){
  char *zErr = 0;
  int rc = kustomer_settings_value(pVal, zFunc, iArg, ppSet, &zErr);
  if( rc==SQLITE_ERROR ) return kustomer_vtab_error(pVtab, zErr);
  return rc;
}

int kustomer_tvf_connect_pure(sqlite3 *db, const char *zSchema,
                              sqlite3_vtab **ppVtab){
  KTvf *p;
  int rc = sqlite3_declare_vtab(db, zSchema);
  if( rc!=SQLITE_OK ) return rc;
  p = sqlite3_malloc(sizeof(*p));
  if( p==0 ) return SQLITE_NOMEM;
  memset(p, 0, sizeof(*p));
  p->db = db;
  *ppVtab = &p->base;
  /* Pure functions: usable from triggers and views. */
  sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS);
  return SQLITE_OK;
}

/* ---- Virtual table arguments, in the manner of csv.c --------------------- */

/* The value of "key=value" with SQL-style quotes removed, or NULL if the
** argument is not for this key (or on out-of-memory: *pbNoMem). */
static char *arg_value(const char *zArg, const char *zKey, int *pbNoMem){
  size_t n = strlen(zKey);
  const char *z;
  char q;
  char *zOut;
  size_t i, j;
  while( *zArg==' ' ) zArg++;
  if( sqlite3_strnicmp(zArg, zKey, (int)n)!=0 ) return 0;
  z = zArg + n;
  while( *z==' ' ) z++;
  if( *z!='=' ) return 0;
  z++;
  while( *z==' ' ) z++;
  n = strlen(z);
  while( n>0 && z[n-1]==' ' ) n--;
  q = z[0];
  if( n>=2 && (q=='\'' || q=='"') && z[n-1]==q ){
    zOut = sqlite3_malloc64(n);
    if( zOut==0 ){
      *pbNoMem = 1;
      return 0;
    }
    for(i=1, j=0; i<n-1; i++){
      zOut[j++] = z[i];
      if( z[i]==q && z[i+1]==q ) i++;
    }
    zOut[j] = 0;
    return zOut;
  }
  zOut = sqlite3_mprintf("%.*s", (int)n, z);
  if( zOut==0 ) *pbNoMem = 1;
  return zOut;
}

/* Parse a number argument; non-zero if it is not one. */
static int arg_number(const char *z, double *pr){
  char *zEnd = 0;
  if( z==0 || *z==0 ) return 1;
  *pr = strtod(z, &zEnd);
  return *zEnd!=0;
}

void kustomer_args_defaults(const KArgSpec *aSpec, void *pStruct){
  const KArgSpec *a;
  for(a=aSpec; a->zKey; a++){
    char *p = (char*)pStruct + a->iOff;
    switch( a->eType ){
      case KARG_TEXT: *(char**)p = 0; break;
      case KARG_REAL: *(double*)p = a->rDefault; break;
      default:        *(int*)p = (int)a->rDefault; break;
    }
  }
}

void kustomer_args_free(const KArgSpec *aSpec, void *pStruct){
  const KArgSpec *a;
  for(a=aSpec; a->zKey; a++){
    if( a->eType==KARG_TEXT ){
      char **pz = (char**)((char*)pStruct + a->iOff);
      sqlite3_free(*pz);
      *pz = 0;
    }
  }
}

/* Set one field from its text (zVal, taken); an error message or NULL. */
static char *arg_set(const KArgSpec *a, void *pStruct, char *zVal){
  char *p = (char*)pStruct + a->iOff;
  char *zErr = 0;
  double r = 0;
  if( a->eType==KARG_TEXT ){
    sqlite3_free(*(char**)p);
    *(char**)p = zVal;
    return 0;
  }
  if( arg_number(zVal, &r) ){
    zErr = sqlite3_mprintf("%s must be a number, not %Q", a->zKey, zVal);
  }else if( a->eType==KARG_REAL ){
    *(double*)p = r;
  }else if( a->eType==KARG_BOOL ){
    *(int*)p = r!=0;
  }else{
    /* beyond int's range is beyond every option's range: the check says */
    *(int*)p = r>2e9 ? 2000000000 : r<-2e9 ? -2000000000 : (int)r;
  }
  sqlite3_free(zVal);
  return zErr;
}

char *kustomer_args_check(const KArgSpec *aSpec, const void *pStruct){
  const KArgSpec *a;
  for(a=aSpec; a->zKey; a++){
    const char *p = (const char*)pStruct + a->iOff;
    double r;
    if( a->eType==KARG_TEXT || a->eType==KARG_BOOL || a->zRange==0 ) continue;
    r = a->eType==KARG_REAL ? *(const double*)p : (double)*(const int*)p;
    if( !(a->bMinOpen ? r>a->rMin : r>=a->rMin) || !(r<=a->rMax) ){
      return sqlite3_mprintf("%s %s", a->zKey, a->zRange);
    }
  }
  return 0;
}

int kustomer_args_parse(const KArgSpec *aSpec, int argc,
                        const char *const *argv, void *pStruct, char **pzErr){
  unsigned char aSeen[64];
  int i, bNoMem = 0;
  memset(aSeen, 0, sizeof(aSeen));
  *pzErr = 0;
  kustomer_args_defaults(aSpec, pStruct);
  for(i=3; i<argc; i++){
    const KArgSpec *a;
    char *zVal = 0;
    for(a=aSpec; a->zKey; a++){
      zVal = arg_value(argv[i], a->zKey, &bNoMem);
      if( zVal || bNoMem ) break;
    }
    if( bNoMem ) return SQLITE_NOMEM;
    if( zVal==0 ){
      sqlite3_str *p = sqlite3_str_new(0);
      sqlite3_str_appendf(p, "unknown argument %Q (known: ", argv[i]);
      for(a=aSpec; a->zKey; a++){
        sqlite3_str_appendf(p, "%s%s", a==aSpec ? "" : ", ", a->zKey);
      }
      sqlite3_str_appendchar(p, 1, ')');
      *pzErr = sqlite3_str_finish(p);
    }else if( aSeen[a-aSpec]++ ){
      sqlite3_free(zVal);
      *pzErr = sqlite3_mprintf("argument %s given twice", a->zKey);
    }else{
      *pzErr = arg_set(a, pStruct, zVal);
      if( *pzErr==0 ) continue;
    }
    return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  *pzErr = kustomer_args_check(aSpec, pStruct);
  return *pzErr ? SQLITE_ERROR : SQLITE_OK;
}

int kustomer_args_load(const KArgSpec *aSpec, void *pStruct,
                       const char *zKey, sqlite3_value *pVal){
  const KArgSpec *a;
  for(a=aSpec; a->zKey; a++){
    char *p;
    if( strcmp(a->zKey, zKey)!=0 ) continue;
    p = (char*)pStruct + a->iOff;
    switch( a->eType ){
      case KARG_TEXT:
        sqlite3_free(*(char**)p);
        *(char**)p = 0;
        if( sqlite3_value_type(pVal)==SQLITE_NULL ) break;   /* not given */
        *(char**)p = sqlite3_mprintf("%s", sqlite3_value_text(pVal));
        if( *(char**)p==0 ) return SQLITE_NOMEM;
        break;
      case KARG_REAL: *(double*)p = sqlite3_value_double(pVal); break;
      case KARG_BOOL: *(int*)p = sqlite3_value_int(pVal)!=0; break;
      default:        *(int*)p = sqlite3_value_int(pVal); break;
    }
    break;
  }
  return SQLITE_OK;
}

void kustomer_args_bind(const KArgSpec *a, const void *pStruct,
                        sqlite3_stmt *pStmt, int iParam){
  const char *p = (const char*)pStruct + a->iOff;
  switch( a->eType ){
    case KARG_TEXT:
      sqlite3_bind_text(pStmt, iParam, *(char*const*)p, -1, SQLITE_TRANSIENT);
      break;
    case KARG_REAL: {
      /* whole numbers as integers: they read back as they were written */
      double r = *(const double*)p;
      if( r>-9e15 && r<9e15 && r==(double)(sqlite3_int64)r ){
        sqlite3_bind_int64(pStmt, iParam, (sqlite3_int64)r);
      }else{
        sqlite3_bind_double(pStmt, iParam, r);
      }
      break;
    }
    default:
      sqlite3_bind_int(pStmt, iParam, *(const int*)p);
      break;
  }
}
