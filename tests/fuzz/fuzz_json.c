/*
** libFuzzer target: kustomer_json_parse() and kustomer_json_value().
** For any input that parses: the compact output must parse again and
** serialise to the same bytes (idempotence).  And
** kustomer_json_parse() accepts nothing SQLite's json_valid() refuses.  And
** kustomer_json_parse_some() must accept and reject exactly what
** kustomer_json_parse() does, with the same error, and keep the kept members
** as they are: the same nodes, node for node, as cJSON builds (parse_some
** builds its own).  A properties object that kustomer_json_raw_ok() accepts
** is written from its text exactly as from its parse, and the lean parse
** of kustomer_request() gives the same request as the full one.  A
** shallow parse (KKEEP_SHALLOW, kustomer_check's) keeps every member of
** properties of the kind it has.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kustomer.h"
#include "fuzz_common.h"
SQLITE_EXTENSION_INIT3

static char *serialise(const cJSON *p, int *pn){
  sqlite3_str *s = sqlite3_str_new(0);
  char *z;
  kustomer_json_value(s, p);
  *pn = sqlite3_str_length(s);
  z = sqlite3_str_finish(s);
  if( z==0 ){ fprintf(stderr, "fuzz_json: out of memory\n"); abort(); }
  return z;
}

static void fail(const char *zWhy, const char *zIn, int nIn,
                 const char *zA, const char *zB){
  fprintf(stderr, "fuzz_json: %s\n  input (%d bytes): %.*s\n  a: %s\n  b: %s\n",
          zWhy, nIn, nIn > 2000 ? 2000 : nIn, zIn, zA ? zA : "(null)",
          zB ? zB : "(null)");
  abort();
}

static const KJsonKeep aTraits[] = {
  {"email", 0, 0}, {"name", 0, 0}, {0, 0, 0}
};
static const KJsonKeep aKeep[] = {
  {"type", 0, 0}, {"properties", 0, 0}, {"context", aTraits, 0},
  {"userId", 0, 0}, {0, 0, 0}
};
/* properties written from its text: the same bytes as from its parse */
static const KJsonKeep aRawKeep[] = {
  {"type", 0, 0}, {"properties", aTraits, 1}, {0, 0, 0}
};

/* kustomer_check's kind of parse: properties shallow, but email and name */
static const KJsonKeep aShallowKeep[] = {
  {"type", 0, 0}, {"properties", aTraits, KKEEP_SHALLOW}, {0, 0, 0}
};

/* Whether two trees have the same nodes: types, keys, strings, numbers to
** the bit, and cJSON's links (the first child's prev is the last). */
static int tree_same(const cJSON *a, const cJSON *b){
  const cJSON *x, *y;
  if( (a->type & 0xff)!=(b->type & 0xff) ) return 0;
  if( (a->string==0)!=(b->string==0)
   || (a->string && strcmp(a->string, b->string)!=0) ) return 0;
  if( (a->valuestring==0)!=(b->valuestring==0)
   || (a->valuestring && strcmp(a->valuestring, b->valuestring)!=0) ){
    return 0;
  }
  if( a->valueint!=b->valueint
   || memcmp(&a->valuedouble, &b->valuedouble, sizeof(double))!=0 ){
    return 0;
  }
  for(x=a->child, y=b->child; x && y; x=x->next, y=y->next){
    if( !tree_same(x, y) ) return 0;
    if( (x->next==0)!=(y->next==0) ) return 0;
    if( x->next && (x->next->prev!=x || y->next->prev!=y) ) return 0;
    if( x==a->child && ((x->prev==0)!=(y->prev==0)
                        || (x->prev && x->prev->next!=0)
                        || (y->prev && y->prev->next!=0)) ) return 0;
  }
  return x==0 && y==0;
}

static int skip_none(const char *z, size_t n, void *pArg){
  (void)z; (void)n; (void)pArg;
  return 0;
}

/* Settings for the lean-against-full comparison: plain, dropping the
** e-mail from meta, and the advanced transformation. */
#define NSET 3
static KSettings *apSet[NSET];
static sqlite3_stmt *pValid;   /* SQLite's json_valid() */

/* Whether SQLite's json_valid() accepts the n bytes at z. */
static int sqlite_json_valid(const char *z, int n){
  int b;
  sqlite3_bind_text(pValid, 1, z, n, SQLITE_STATIC);
  b = sqlite3_step(pValid)==SQLITE_ROW && sqlite3_column_int(pValid, 0);
  sqlite3_reset(pValid);
  return b;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv){
  static const char *azSet[NSET] = {
    "{}", "{\"setIdentityEmail\":true,\"disableEmailAsTrackingProperty\":true}",
    "{\"advancedTransform\":true}"
  };
  int i;
  (void)argc; (void)argv;
  (void)fuzz_open_db();   /* sets sqlite3_api; the db stays open */
  if( sqlite3_prepare_v2(fuzz_db, "SELECT json_valid(?1)", -1, &pValid, 0) ){
    fprintf(stderr, "fuzz_json: %s\n", sqlite3_errmsg(fuzz_db));
    abort();
  }
  for(i=0; i<NSET; i++){
    char *zErr = 0;
    if( kustomer_settings_parse(azSet[i], (int)strlen(azSet[i]), &apSet[i],
                                &zErr) ){
      fprintf(stderr, "fuzz_json: settings: %s\n", zErr ? zErr : "?");
      abort();
    }
  }
  return 0;
}

/* The request for an event from the full parse (bLean 0), from the lean
** one (1: meta from the text of properties), or from cJSON's parse of it
** all (2): "error <status> <message>" on an event
** error. */
static char *request_text(const char *zIn, int n, int bLean,
                          const KSettings *pSet){
  KMetaText raw;
  KError err = {0, 0};
  char *zErr = 0, *z;
  sqlite3_str *s;
  int rc;
  KMetaText *pRaw = bLean==1 ? &raw : 0;
  KJsonRoom room;
  cJSON *p = bLean==1 ? kustomer_event_parse_lean(zIn, n, pSet->bAdvanced,
                                                  pRaw, &room, &zErr)
           : bLean==2 ? kustomer_json_parse(zIn, n, &zErr)
           : kustomer_event_parse(zIn, n, 0, &zErr);
  s = sqlite3_str_new(0);
  if( p==0 ){
    sqlite3_str_appendf(s, "parse error %s", zErr ? zErr : "(nomem)");
  }else{
    rc = kustomer_request_write(s, p, pSet, 0, pRaw, &err);
    if( rc!=SQLITE_OK ){
      sqlite3_str_reset(s);
      sqlite3_str_appendf(s, "error %d %d %s", rc, err.status,
                          err.zMsg ? err.zMsg : "");
    }
  }
  z = sqlite3_str_finish(s);
  if( z==0 ){ fprintf(stderr, "fuzz_json: out of memory\n"); abort(); }
  kustomer_error_clear(&err);
  sqlite3_free(zErr);
  kustomer_json_delete(p);
  return z;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size){
  char *zIn, *zErr = 0, *zErr2 = 0, *zOut, *zOut2, *zCopy;
  cJSON *p, *q, *r;
  int nOut, nOut2, n = (int)size;
  if( size > 1<<20 ) return 0;
  /* Exactly n+1 bytes: ASan sees any read past the terminator. */
  zIn = malloc(size + 1);
  memcpy(zIn, data, size);
  zIn[size] = 0;

  p = kustomer_json_parse(zIn, n, &zErr);
  /* Nothing json_valid() refuses.  (The converse does not hold: SQLite
  ** checks neither UTF-8 nor surrogates, and 3.40 takes an object as a
  ** key.) */
  if( p && !sqlite_json_valid(zIn, n) ){
    fail("accepted what json_valid() refuses", zIn, n, 0, 0);
  }
  q = kustomer_json_parse_some(zIn, n, aKeep, 0, 0, &zErr2);
  if( (p==0)!=(q==0) ){
    fail("parse and parse_some disagree on validity", zIn, n, zErr, zErr2);
  }
  if( (zErr==0)!=(zErr2==0) || (zErr && strcmp(zErr, zErr2)!=0) ){
    fail("parse and parse_some give different errors", zIn, n, zErr, zErr2);
  }
  if( p ){
    static const char *azKey[] = {"type", "properties", "userId", 0};
    int k;
    zOut = serialise(p, &nOut);
    if( (size_t)nOut!=strlen(zOut) ) fail("NUL in output", zIn, n, zOut, 0);
    zCopy = malloc((size_t)nOut + 1);
    memcpy(zCopy, zOut, (size_t)nOut + 1);
    r = kustomer_json_parse(zCopy, nOut, &zErr2 /* reused */);
    if( r==0 ) fail("output does not parse", zIn, n, zOut, zErr2);
    zOut2 = serialise(r, &nOut2);
    if( nOut!=nOut2 || memcmp(zOut, zOut2, (size_t)nOut)!=0 ){
      fail("serialisation is not idempotent", zIn, n, zOut, zOut2);
    }
    sqlite3_free(zOut2);
    cJSON_Delete(r);
    free(zCopy);
    sqlite3_free(zOut);

    /* Kept members are the same in both parses. */
    if( cJSON_IsObject(p) ){
      for(k=0; azKey[k]; k++){
        const cJSON *a = kustomer_json_member(p, azKey[k]);
        const cJSON *b = kustomer_json_member(q, azKey[k]);
        if( (a==0)!=(b==0) ){
          fail("parse_some lost or added a kept member", zIn, n, azKey[k], 0);
        }
        if( a && !tree_same(a, b) ){
          fail("parse_some built a kept member otherwise", zIn, n, azKey[k], 0);
        }
        if( a ){
          zOut = serialise(a, &nOut);
          zOut2 = serialise(b, &nOut2);
          if( nOut!=nOut2 || memcmp(zOut, zOut2, (size_t)nOut)!=0 ){
            fail("parse_some changed a kept member", zIn, n, zOut, zOut2);
          }
          sqlite3_free(zOut);
          sqlite3_free(zOut2);
        }
      }
    }
  }
  if( p ){
    KJsonRaw raw;
    char *zErr3 = 0;
    KJsonRoom room;
    cJSON *t = kustomer_json_parse_some(zIn, n, aRawKeep, &raw, &room, &zErr3);
    if( t==0 ) fail("parse_some with bRaw rejects", zIn, n, zErr3, 0);
    if( raw.eState==KRAW_TEXT && kustomer_json_raw_ok(&raw) ){
      const cJSON *a = kustomer_json_member(p, "properties");
      sqlite3_str *s = sqlite3_str_new(0);
      kustomer_json_raw_object(s, &raw, skip_none, 0);
      nOut2 = sqlite3_str_length(s);
      zOut2 = sqlite3_str_finish(s);
      if( a==0 || zOut2==0 ) fail("raw text without a member", zIn, n, 0, 0);
      zOut = serialise(a, &nOut);
      if( nOut!=nOut2 || memcmp(zOut, zOut2, (size_t)nOut)!=0 ){
        fail("properties written from its text differ", zIn, n, zOut, zOut2);
      }
      sqlite3_free(zOut);
      sqlite3_free(zOut2);
    }
    sqlite3_free(zErr3);
    kustomer_json_delete(t);
  }
  /* A shallow parse: the same verdict and error; each member of properties
  ** of the same kind, atoms and listed members as they are, other arrays
  ** and objects as they are or empty (a key with an escape is kept whole),
  ** never empty under a listed key or one with a '.'. */
  {
    char *zErr4 = 0;
    cJSON *c = kustomer_json_parse_some(zIn, n, aShallowKeep, 0, 0, &zErr4);
    cJSON *c2 = kustomer_event_parse_check(zIn, n, 0, 0, 0);
    if( (c==0)!=(p==0) || (c2==0)!=(p==0) ){
      fail("shallow parse and parse disagree on validity", zIn, n, zErr,
           zErr4);
    }
    if( c==0 && (zErr==0)!=(zErr4==0) ){
      fail("shallow parse gives another error", zIn, n, zErr, zErr4);
    }
    if( c==0 && zErr && strcmp(zErr, zErr4)!=0 ){
      fail("shallow parse gives another error", zIn, n, zErr, zErr4);
    }
    if( c ){
      const cJSON *a = kustomer_json_member(p, "properties");
      const cJSON *b = kustomer_json_member(c, "properties");
      if( (a==0)!=(b==0) ) fail("shallow parse lost properties", zIn, n, 0, 0);
      if( a && !cJSON_IsObject(a) && !tree_same(a, b) ){
        fail("shallow parse changed properties", zIn, n, 0, 0);
      }
      if( a && cJSON_IsObject(a) ){
        const cJSON *x, *y;
        for(x=a->child, y=b->child; x && y; x=x->next, y=y->next){
          int bContainer = cJSON_IsObject(x) || cJSON_IsArray(x);
          int bEmpty = (x->type & 0xff)==(y->type & 0xff) && y->child==0
                    && x->child!=0;
          if( (x->type & 0xff)!=(y->type & 0xff)
           || strcmp(x->string, y->string)!=0 ){
            fail("shallow parse changed a member's kind", zIn, n, x->string,
                 y->string);
          }
          if( bContainer && bEmpty
           && (strcmp(x->string, "email")==0 || strcmp(x->string, "name")==0
               || strchr(x->string, '.')) ){
            fail("shallow parse emptied a listed member", zIn, n, x->string,
                 0);
          }
          if( !(bContainer && bEmpty) && !tree_same(x, y) ){
            fail("shallow parse changed a member", zIn, n, x->string, 0);
          }
        }
        if( x || y ) fail("shallow parse lost a member", zIn, n, 0, 0);
      }
    }
    sqlite3_free(zErr4);
    kustomer_json_delete(c);
    kustomer_json_delete(c2);
  }
  /* The lean parse writes the same request as the full one. */
  {
    int i;
    for(i=0; i<NSET; i++){
      char *zA = request_text(zIn, n, 0, apSet[i]);
      char *zB = request_text(zIn, n, 1, apSet[i]);
      char *zC = request_text(zIn, n, 2, apSet[i]);
      if( strcmp(zA, zB)!=0 ){
        fail("lean and full parse give different requests", zIn, n, zA, zB);
      }
      if( strcmp(zA, zC)!=0 ){
        fail("full parse and cJSON's give different requests", zIn, n, zA,
             zC);
      }
      sqlite3_free(zA);
      sqlite3_free(zB);
      sqlite3_free(zC);
    }
  }
  sqlite3_free(zErr);
  sqlite3_free(zErr2);
  cJSON_Delete(p);
  kustomer_json_delete(q);
  free(zIn);
  return 0;
}
