/*
** kustomer_events(path [, options]): the messages of event archives, a row
** each, as SDKs and pipelines write them.
**
**   INSERT INTO events(payload)
**     SELECT message FROM kustomer_events('archive/2024-05-??/events.json.gz')
**      WHERE error IS NULL;
**
** path: a file, a directory (its files, in name order) or a glob.  Each
** file may be gzip-compressed (known by its magic bytes: zlib reads plain
** files as they are) and holds NDJSON (a message or an envelope
** {"batch":[...]} per line), or JSON documents (an array of messages, an
** envelope, a message; pretty-printed or not, one after another).
**
** Columns: message (the message's JSON text exactly as in the file, with
** the JSON subtype), file, line (1-based; an envelope's or an array's
** element has the line the element starts on), batch_index (the
** element's index in its envelope or array, else NULL), error (NULL, or
** why the line or the file could not be read; message is then NULL), and
** the HIDDEN path and options.  A bad line never stops the read: it is a
** row with its error, and the next line is read.  Envelope members other
** than batch (a writeKey, say) are never returned.
**
** NDJSON files are read in chunks: memory stays flat in the size of the
** file, bounded by the longest line (options.maxLineBytes).  A file of
** JSON documents is read whole, up to the JSON size limit.
**
** It reads the local filesystem: SQLITE_DIRECTONLY, so that a view or a
** trigger in someone else's database file cannot make it read yours.
*/
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

#define EV_MESSAGE  0
#define EV_FILE     1
#define EV_LINE     2
#define EV_BATCH    3
#define EV_ERROR    4
#define EV_PATH     5   /* HIDDEN: argument 1 */
#define EV_OPTIONS  6   /* HIDDEN: argument 2 */

#define EV_CHUNK          (256*1024)
#define EV_MAX_LINE       (16*1024*1024)    /* default maxLineBytes */
#define EV_MAX_FILES      1000000

/* How a file is read. */
#define MODE_UNKNOWN  0     /* nothing read yet */
#define MODE_LINES    1     /* NDJSON */
#define MODE_DOC      2     /* JSON documents, the file read whole */

typedef struct EvCursor EvCursor;
struct EvCursor {
  sqlite3_vtab_cursor base;
  sqlite3_int64 iRowid;
  int bEof;
  int maxLine;
  /* the files */
  char **azFile;
  int nFile, iFile;
  /* the file being read */
  gzFile gz;
  int eMode;
  int bFileEof;             /* gzread has no more */
  char *aBuf;               /* read buffer (MODE_LINES), or the whole text */
  size_t nAlloc, iStart, iEnd;
  sqlite3_int64 iLine;      /* lines consumed so far */
  sqlite3_int64 nOffset;    /* bytes of the file before aBuf[0] */
  size_t iCut;              /* where line_next() put the line's NUL */
  char cCut;                /* and the byte that was there */
  int bSkipLong;            /* discarding the rest of a too long line */
  /* a container whose elements are rows: an envelope's batch or an array,
  ** in aBuf (no more is read into it until its last element) */
  const char *zElem;        /* the next element (or ']') */
  const char *zContEnd;
  sqlite3_int64 iContLine;  /* line of zElem */
  int iElem;
  /* document mode: the next top-level value */
  const char *zDoc;
  const char *zDocEnd;
  sqlite3_int64 iDocLine;
  /* the row */
  const char *zMsg;
  int nMsg;
  sqlite3_int64 iRowLine;   /* 0: none (a file's error) */
  int iBatch;               /* -1: none */
  char *zErr;
};

/* ---- The files of a path ------------------------------------------------- */

static int has_glob(const char *z){
  return strpbrk(z, "*?[")!=0;
}

static int file_add(EvCursor *p, const char *z){
  char **a;
  if( p->nFile>=EV_MAX_FILES ) return SQLITE_OK;
  a = sqlite3_realloc64(p->azFile, sizeof(char*)*(p->nFile+1));
  if( a==0 ) return SQLITE_NOMEM;
  p->azFile = a;
  p->azFile[p->nFile] = sqlite3_mprintf("%s", z);
  if( p->azFile[p->nFile]==0 ) return SQLITE_NOMEM;
  p->nFile++;
  return SQLITE_OK;
}

static int name_cmp(const void *a, const void *b){
  return strcmp(*(char*const*)a, *(char*const*)b);
}

/* Every regular file of directory zDir, in name order. */
static int dir_files(EvCursor *p, const char *zDir){
  DIR *d = opendir(zDir);
  struct dirent *e;
  int rc = SQLITE_OK, iFirst = p->nFile;
  if( d==0 ) return file_add(p, zDir);     /* its error comes with the row */
  while( rc==SQLITE_OK && (e = readdir(d))!=0 ){
    struct stat st;
    char *zPath;
    if( e->d_name[0]=='.' ) continue;      /* ., .., hidden files */
    zPath = sqlite3_mprintf("%s/%s", zDir, e->d_name);
    if( zPath==0 ){
      rc = SQLITE_NOMEM;
      break;
    }
    if( stat(zPath, &st)==0 && S_ISREG(st.st_mode) ) rc = file_add(p, zPath);
    sqlite3_free(zPath);
  }
  closedir(d);
  if( p->nFile>iFirst ){
    qsort(&p->azFile[iFirst], (size_t)(p->nFile-iFirst), sizeof(char*),
          name_cmp);
  }
  return rc;
}

/* The files of path z; *pzErr when a glob matches nothing. */
static int path_files(EvCursor *p, const char *z, char **pzErr){
  struct stat st;
  *pzErr = 0;
  if( stat(z, &st)==0 && S_ISDIR(st.st_mode) ) return dir_files(p, z);
  if( stat(z, &st)!=0 && has_glob(z) ){
    glob_t g;
    size_t i;
    int rc = SQLITE_OK, e = glob(z, 0, 0, &g);
    if( e==GLOB_NOSPACE ) return SQLITE_NOMEM;
    if( e!=0 ){
      *pzErr = sqlite3_mprintf("no file matches %s", z);
      return *pzErr ? SQLITE_OK : SQLITE_NOMEM;
    }
    for(i=0; i<g.gl_pathc && rc==SQLITE_OK; i++){
      if( stat(g.gl_pathv[i], &st)==0 && S_ISDIR(st.st_mode) ) continue;
      rc = file_add(p, g.gl_pathv[i]);
    }
    globfree(&g);
    return rc;
  }
  return file_add(p, z);
}

/* ---- Reading ----------------------------------------------------------- */

static void row_clear(EvCursor *p){
  sqlite3_free(p->zErr);
  p->zErr = 0;
  p->zMsg = 0;
  p->nMsg = 0;
  p->iRowLine = 0;
  p->iBatch = -1;
}

static void file_close(EvCursor *p){
  if( p->gz ) gzclose(p->gz);
  p->gz = 0;
  sqlite3_free(p->aBuf);
  p->aBuf = 0;
  p->nAlloc = p->iStart = p->iEnd = 0;
  p->zElem = p->zContEnd = p->zDoc = p->zDocEnd = 0;
  p->eMode = MODE_UNKNOWN;
  p->bFileEof = p->bSkipLong = 0;
  p->iLine = p->nOffset = 0;
}

/* zlib's message for the file, or errno's. */
static char *gz_error(EvCursor *p, const char *zWhat){
  int e = Z_OK;
  const char *z = p->gz ? gzerror(p->gz, &e) : 0;
  if( e==Z_ERRNO || z==0 || z[0]==0 ) z = strerror(errno);
  return sqlite3_mprintf("%s: %s", zWhat, z);
}

/* Read more of the file into aBuf (MODE_LINES keeps the unconsumed part).
** Returns the bytes read, 0 at the end, -1 on an error (p->zErr set). */
static int buf_fill(EvCursor *p){
  int n;
  size_t nKeep = p->iEnd - p->iStart;
  if( p->bFileEof ) return 0;
  if( p->iStart>0 ){
    memmove(p->aBuf, p->aBuf + p->iStart, nKeep);
    p->nOffset += (sqlite3_int64)p->iStart;
    p->iStart = 0;
    p->iEnd = nKeep;
  }
  if( p->nAlloc - p->iEnd < EV_CHUNK ){
    size_t nNew = p->nAlloc ? p->nAlloc*2 : EV_CHUNK*2;
    char *a;
    if( nNew < p->iEnd + EV_CHUNK + 1 ) nNew = p->iEnd + EV_CHUNK + 1;
    a = sqlite3_realloc64(p->aBuf, nNew);
    if( a==0 ) return -2;
    p->aBuf = a;
    p->nAlloc = nNew;
  }
  n = gzread(p->gz, p->aBuf + p->iEnd, (unsigned)(p->nAlloc - p->iEnd - 1));
  if( n<0 ){
    p->zErr = gz_error(p, "cannot read the file");
    p->bFileEof = 1;
    return -1;
  }
  if( n==0 ){
    int e = Z_OK;
    gzerror(p->gz, &e);
    p->bFileEof = 1;
    if( e!=Z_OK && e!=Z_STREAM_END ){
      p->zErr = gz_error(p, "truncated or corrupt gzip data");
      return -1;
    }
    return 0;
  }
  p->iEnd += (size_t)n;
  p->aBuf[p->iEnd] = 0;
  return n;
}

/* The error row for a value that did not scan (z, n bytes, NUL after). */
static void value_error(EvCursor *p, const char *zWhat, const char *z, int n){
  char *zErr = 0;
  cJSON *pDoc = kustomer_json_parse(z, n, &zErr);
  if( pDoc ){
    /* valid after all (of a kind the lean scan leaves to cJSON) */
    cJSON_Delete(pDoc);
    return;
  }
  p->zErr = sqlite3_mprintf("%s %s", zWhat, zErr ? zErr : "is not valid JSON");
  sqlite3_free(zErr);
}

/* The end of a valid JSON value at z (no checks: z was proved valid). */
static const char *value_skip(const char *z){
  int depth = 0;
  do{
    char c = *z;
    if( c=='"' ){
      for(z++; *z!='"'; z++){
        if( *z=='\\' ) z++;
      }
      z++;
    }else if( c=='{' || c=='[' ){
      depth++;
      z++;
    }else if( c=='}' || c==']' ){
      depth--;
      z++;
    }else if( depth==0 ){
      /* a scalar at the top: up to a delimiter */
      while( *z && !strchr(",]} \t\r\n", *z) ) z++;
      return z;
    }else{
      z++;
    }
  }while( depth>0 );
  return z;
}

static const char *ws_skip(const char *z, sqlite3_int64 *piLine){
  while( *z==' ' || *z=='\t' || *z=='\r' || *z=='\n' ){
    if( *z=='\n' && piLine ) (*piLine)++;
    z++;
  }
  return z;
}

/* Whether "batch" (with its quotes) is in the n bytes at z. */
static int has_batch_word(const char *z, int n){
  const char *zEnd = z + n, *q = z;
  while( (q = memchr(q, '"', (size_t)(zEnd - q)))!=0 ){
    if( zEnd - q >= 7 && memcmp(q, "\"batch\"", 7)==0 ) return 1;
    q++;
  }
  return 0;
}

/* The value of top-level member "batch" of a valid object z, or NULL. */
static const char *batch_of(const char *z){
  z = ws_skip(z+1, 0);
  while( *z=='"' ){
    const char *zKey = z+1, *zVal;
    int bBatch;
    z = value_skip(z);
    bBatch = z - zKey == 6 && memcmp(zKey, "batch\"", 6)==0;
    z = ws_skip(z, 0);
    z = ws_skip(z+1, 0);    /* past ':' */
    zVal = z;
    if( bBatch ) return zVal;
    z = ws_skip(value_skip(z), 0);
    if( *z==',' ) z = ws_skip(z+1, 0);
  }
  return 0;
}

/* Begin reading the elements of the array at z (valid JSON), whose line
** is iLine. */
static void cont_begin(EvCursor *p, const char *z, const char *zEnd,
                       sqlite3_int64 iLine){
  p->iContLine = iLine;
  p->zElem = ws_skip(z+1, &p->iContLine);
  p->zContEnd = zEnd;
  p->iElem = 0;
}

/* The next element of the container as the row; 0 when it is done. */
static int cont_next(EvCursor *p){
  const char *z = p->zElem, *zEnd;
  if( z==0 ) return 0;
  if( *z==']' || z>=p->zContEnd ){
    p->zElem = 0;
    return 0;
  }
  zEnd = value_skip(z);
  p->iRowLine = p->iContLine;
  p->iBatch = p->iElem++;
  if( *z=='{' ){
    p->zMsg = z;
    p->nMsg = (int)(zEnd - z);
  }else{
    p->zErr = sqlite3_mprintf("element %d is not a JSON object (a message)",
                              p->iBatch);
  }
  /* count the lines inside the element, then past the comma */
  for(; z<zEnd; z++){
    if( *z=='\n' ) p->iContLine++;
  }
  z = ws_skip(zEnd, &p->iContLine);
  if( *z==',' ) z = ws_skip(z+1, &p->iContLine);
  p->zElem = z;
  return 1;
}

/* A valid object or array at z (n bytes) of line iLine as rows: a message
** is the row; an envelope or an array starts its elements.  Returns 1 if
** a row is ready. */
static int value_rows(EvCursor *p, const char *z, int n, sqlite3_int64 iLine){
  if( *z=='[' ){
    cont_begin(p, z, z+n, iLine);
    return cont_next(p);
  }
  if( *z!='{' ){
    p->iRowLine = iLine;
    p->zErr = sqlite3_mprintf("not a JSON object (a message or an envelope "
                              "{\"batch\":[...]})");
    return 1;
  }
  /* most messages do not hold the word: no walk for them */
  if( has_batch_word(z, n) ){
    const char *zBatch = batch_of(z);
    if( zBatch ){
      if( *zBatch!='[' ){
        p->iRowLine = iLine;
        p->zErr = sqlite3_mprintf("an envelope whose batch is not an array");
        return 1;
      }
      const char *q;
      for(q=z; q<zBatch; q++){
        if( *q=='\n' ) iLine++;
      }
      cont_begin(p, zBatch, z+n, iLine);
      if( cont_next(p) ) return 1;
      return 0;       /* an empty batch: no row */
    }
  }
  p->iRowLine = iLine;
  p->zMsg = z;
  p->nMsg = n;
  return 1;
}

/* Document mode: the file read whole (MODE_DOC), values one after
** another.  Returns 1 if a row is ready, 0 at the end of the file. */
static int doc_next(EvCursor *p){
  const char *z, *zEnd;
  while( 1 ){
    if( cont_next(p) ) return 1;
    z = ws_skip(p->zDoc, &p->iDocLine);
    if( z>=p->zDocEnd ) return 0;
    zEnd = kustomer_json_scan(z, p->zDocEnd);
    if( zEnd==0 ){
      /* a value that does not scan: its error, then on from the next line
      ** (one bad value does not cost the rest of the file) */
      const char *zNl = memchr(z, '\n', (size_t)(p->zDocEnd - z));
      const char *zStop = zNl ? zNl : p->zDocEnd;
      char c = *zStop;
      p->iRowLine = p->iDocLine;
      *(char*)zStop = 0;
      value_error(p, "the value", z, (int)(zStop - z));
      *(char*)zStop = c;
      if( p->zErr==0 ){
        p->zErr = sqlite3_mprintf("the value is not valid JSON, or spans "
                                  "lines in a way that cannot be read");
      }
      p->zDoc = zNl ? zNl : p->zDocEnd;
      return 1;
    }
    p->zDoc = zEnd;
    {
      sqlite3_int64 iLine = p->iDocLine;
      const char *q;
      for(q=z; q<zEnd; q++){
        if( *q=='\n' ) p->iDocLine++;
      }
      if( value_rows(p, z, (int)(zEnd - z), iLine) ) return 1;
    }
  }
}

/* Read the rest of the file into aBuf, for document mode. */
static int doc_load(EvCursor *p){
  int n;
  do{
    if( p->iEnd - p->iStart > (size_t)KUSTOMER_MAX_JSON ){
      p->zErr = sqlite3_mprintf("the file is one JSON document larger than "
                                "%d bytes (NDJSON files are read in chunks)",
                                KUSTOMER_MAX_JSON);
      return -1;
    }
    n = buf_fill(p);
  }while( n>0 );
  if( n==-2 ) return -2;
  if( n<0 ) return -1;
  p->eMode = MODE_DOC;
  p->zDoc = p->aBuf + p->iStart;
  p->zDocEnd = p->aBuf + p->iEnd;
  p->iDocLine = 1;
  return 0;
}

/* The next line (without its newline, NUL-terminated in place) of an
** NDJSON file: 1 and *pz, *pn; 0 at the end of the file, -1 with p->zErr
** (a line too long, a read error), -2 on out of memory. */
static int line_next(EvCursor *p, char **pz, int *pn){
  while( 1 ){
    char *zStart = p->aBuf ? p->aBuf + p->iStart : 0;
    char *zNl = zStart ? memchr(zStart, '\n', p->iEnd - p->iStart) : 0;
    size_t nLine = zNl ? (size_t)(zNl - zStart) : p->iEnd - p->iStart;
    if( !zNl && nLine > (size_t)p->maxLine ){
      /* too long: reported once, then skipped to its newline */
      int bFirst = !p->bSkipLong;
      p->bSkipLong = 1;
      p->iStart = p->iEnd;
      if( bFirst ){
        p->iLine++;
        p->zErr = sqlite3_mprintf("the line is longer than %d bytes "
                                  "(options.maxLineBytes)", p->maxLine);
        return -1;
      }
      continue;
    }
    if( zNl || (p->bFileEof && nLine>0) ){
      p->iStart += nLine + (zNl ? 1 : 0);
      if( p->bSkipLong ){
        p->bSkipLong = 0;
        continue;
      }
      p->iLine++;
      if( nLine > (size_t)p->maxLine ){
        p->zErr = sqlite3_mprintf("the line is longer than %d bytes "
                                  "(options.maxLineBytes)", p->maxLine);
        return -1;
      }
      if( nLine>0 && zStart[nLine-1]=='\r' ) nLine--;
      p->iCut = (size_t)(zStart + nLine - p->aBuf);
      p->cCut = zStart[nLine];
      zStart[nLine] = 0;
      *pz = zStart;
      *pn = (int)nLine;
      return 1;
    }
    if( p->bFileEof ) return 0;
    {
      int n = buf_fill(p);
      if( n==-2 ) return -2;
      if( n<0 ) return -1;
      if( n==0 && p->iEnd==p->iStart ) return 0;
    }
  }
}

/* Open the next file.  Returns 1 if one is open, 0 when none is left, 1
** with p->zErr when it cannot be opened (the row says so). */
static int file_next(EvCursor *p){
  const char *zFile;
  struct stat st;
  if( p->iFile>=p->nFile ) return 0;
  zFile = p->azFile[p->iFile++];
  if( stat(zFile, &st)==0 && S_ISDIR(st.st_mode) ){
    p->zErr = sqlite3_mprintf("is a directory");
    return 1;
  }
  p->gz = gzopen(zFile, "rb");
  if( p->gz==0 ){
    p->zErr = sqlite3_mprintf("cannot open the file: %s", strerror(errno));
    return 1;
  }
  gzbuffer(p->gz, EV_CHUNK);
  return 1;
}

/* Make the next row.  SQLITE_OK (p->bEof at the end), or an error. */
static int ev_step(EvCursor *p){
  row_clear(p);
  while( 1 ){
    char *z;
    int n, e;
    if( p->zElem && cont_next(p) ) return SQLITE_OK;
    if( p->eMode==MODE_DOC ){
      if( doc_next(p) ) return SQLITE_OK;
      file_close(p);
      continue;
    }
    if( p->gz==0 ){
      if( !file_next(p) ){
        p->bEof = 1;
        return SQLITE_OK;
      }
      if( p->zErr ) return SQLITE_OK;       /* could not be opened */
    }
    e = line_next(p, &z, &n);
    if( e==-2 ) return SQLITE_NOMEM;
    if( e<0 ){
      p->iRowLine = p->iLine;
      if( p->bFileEof ){
        p->iRowLine = 0;
        file_close(p);
      }
      return SQLITE_OK;
    }
    if( e==0 ){
      file_close(p);
      continue;
    }
    {
      const char *zV = z, *zEnd;
      while( *zV==' ' || *zV=='\t' ) zV++;
      if( *zV==0 ) continue;                 /* a blank line */
      if( memchr(z, 0, (size_t)n) ){
        /* a NUL byte: not text; the rest of this file is not read */
        p->iRowLine = p->iLine;
        p->zErr = sqlite3_mprintf("not a text file (a NUL byte on line "
                                  "%lld): the rest of the file is skipped",
                                  p->iLine);
        file_close(p);
        return SQLITE_OK;
      }
      zEnd = kustomer_json_scan(zV, z+n);
      if( p->eMode==MODE_UNKNOWN ){
        if( *zV=='[' || (zEnd==0 && *zV=='{') ){
          /* an array, or a document over several lines: read it whole */
          p->aBuf[p->iCut] = p->cCut;          /* undo the cut */
          p->iStart = (size_t)(z - p->aBuf);
          p->iLine--;
          e = doc_load(p);
          if( e==-2 ) return SQLITE_NOMEM;
          if( e<0 ){
            file_close(p);
            return SQLITE_OK;
          }
          p->iDocLine = p->iLine + 1;
          continue;
        }
        p->eMode = MODE_LINES;
      }
      if( zEnd && *ws_skip(zEnd, 0)==0 ){
        if( value_rows(p, zV, (int)(zEnd - zV), p->iLine) ) return SQLITE_OK;
        continue;
      }
      p->iRowLine = p->iLine;
      if( zEnd ){
        p->zErr = sqlite3_mprintf("the line has text after its JSON value "
                                  "(at offset %lld)",
                                  (sqlite3_int64)(zEnd - z));
        return SQLITE_OK;
      }
      value_error(p, "the line", z, n);
      if( p->zErr==0 ){
        /* valid JSON the lean scan does not take: as cJSON reads it */
        if( value_rows(p, zV, (int)(z + n - zV), p->iLine) ) return SQLITE_OK;
        continue;
      }
      return SQLITE_OK;
    }
  }
}

/* ---- The virtual table --------------------------------------------------- */

static int ev_connect(sqlite3 *db, void *pAux, int argc,
                      const char *const *argv, sqlite3_vtab **ppVtab,
                      char **pzErr){
  int rc;
  (void)pAux; (void)argc; (void)argv; (void)pzErr;
  rc = sqlite3_declare_vtab(db, "CREATE TABLE x(message TEXT, file TEXT,"
                            " line INTEGER, batch_index INTEGER, error TEXT,"
                            " path HIDDEN, options HIDDEN)");
  if( rc ) return rc;
  *ppVtab = sqlite3_malloc(sizeof(sqlite3_vtab));
  if( *ppVtab==0 ) return SQLITE_NOMEM;
  memset(*ppVtab, 0, sizeof(sqlite3_vtab));
  /* it reads files: never from a view or a trigger of a database file */
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  return SQLITE_OK;
}

static int ev_best_index(sqlite3_vtab *pVtab, sqlite3_index_info *pInfo){
  static const char *const azArg[] = { "path", "options" };
  return kustomer_tvf_best_index(pVtab, pInfo, EV_PATH, 2, 1,
                                 "kustomer_events", azArg, 1000.0);
}

static void ev_reset(EvCursor *p){
  int i;
  file_close(p);
  row_clear(p);
  for(i=0; i<p->nFile; i++) sqlite3_free(p->azFile[i]);
  sqlite3_free(p->azFile);
  p->azFile = 0;
  p->nFile = p->iFile = 0;
  p->iRowid = 0;
  p->bEof = 1;
}

static int ev_open(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCur){
  EvCursor *p = sqlite3_malloc(sizeof(*p));
  (void)pVtab;
  if( p==0 ) return SQLITE_NOMEM;
  memset(p, 0, sizeof(*p));
  p->bEof = 1;
  p->iBatch = -1;
  *ppCur = &p->base;
  return SQLITE_OK;
}

static int ev_close(sqlite3_vtab_cursor *cur){
  EvCursor *p = (EvCursor*)cur;
  ev_reset(p);
  sqlite3_free(p);
  return SQLITE_OK;
}

/* The options: {"maxLineBytes":N}. */
static int ev_options(EvCursor *p, sqlite3_value *pArg){
  sqlite3_vtab *pVtab = p->base.pVtab;
  cJSON *pOpt = 0;
  const cJSON *pM;
  char *zErr = 0;
  int rc = kustomer_options_arg("kustomer_events", 2, pArg, &pOpt, &zErr);
  if( rc ) return zErr ? kustomer_vtab_error(pVtab, zErr) : rc;
  for(pM=pOpt ? pOpt->child : 0; pM; pM=pM->next){
    if( strcmp(pM->string, "maxLineBytes")==0 ){
      if( !cJSON_IsNumber(pM) || pM->valuedouble<1
       || pM->valuedouble>KUSTOMER_MAX_JSON ){
        cJSON_Delete(pOpt);
        return kustomer_vtab_error(pVtab, sqlite3_mprintf("kustomer_events():"
                   " argument 2 (options): maxLineBytes must be a number "
                   "between 1 and %d", KUSTOMER_MAX_JSON));
      }
      p->maxLine = (int)pM->valuedouble;
    }else{
      rc = kustomer_vtab_error(pVtab, sqlite3_mprintf("kustomer_events(): "
               "argument 2 (options) has an unknown option %Q (known: "
               "maxLineBytes)", pM->string));
      cJSON_Delete(pOpt);
      return rc;
    }
  }
  cJSON_Delete(pOpt);
  return SQLITE_OK;
}

static int ev_filter(sqlite3_vtab_cursor *cur, int idxNum,
                     const char *idxStr, int argc, sqlite3_value **argv){
  EvCursor *p = (EvCursor*)cur;
  sqlite3_value *apArg[2];
  char *zErr = 0;
  const char *zPath;
  int rc;
  (void)idxStr;
  ev_reset(p);
  p->maxLine = EV_MAX_LINE;
  kustomer_tvf_args(idxNum, argc, argv, 2, apArg);
  if( apArg[0]==0 || sqlite3_value_type(apArg[0])==SQLITE_NULL ){
    return SQLITE_OK;                       /* NULL in, nothing out */
  }
  if( sqlite3_value_type(apArg[0])!=SQLITE_TEXT ){
    return kustomer_vtab_error(cur->pVtab, sqlite3_mprintf("kustomer_events()"
               ": argument 1 (path) must be text (a file, a directory or a "
               "glob)"));
  }
  zPath = (const char*)sqlite3_value_text(apArg[0]);
  if( zPath==0 ) return SQLITE_NOMEM;
  if( zPath[0]==0 ){
    return kustomer_vtab_error(cur->pVtab, sqlite3_mprintf("kustomer_events()"
               ": argument 1 (path) is empty"));
  }
  if( apArg[1] ){
    rc = ev_options(p, apArg[1]);
    if( rc ) return rc;
  }
  rc = path_files(p, zPath, &zErr);
  if( rc ) return rc;
  p->bEof = 0;
  if( zErr ){
    /* a glob that matches nothing: a row that says so */
    p->zErr = zErr;
    p->iRowid = 1;
    p->nFile = 0;
    return SQLITE_OK;
  }
  p->iRowid = 1;
  return ev_step(p);
}

static int ev_next(sqlite3_vtab_cursor *cur){
  EvCursor *p = (EvCursor*)cur;
  p->iRowid++;
  if( p->nFile==0 ){
    p->bEof = 1;
    return SQLITE_OK;
  }
  return ev_step(p);
}

static int ev_eof(sqlite3_vtab_cursor *cur){
  return ((EvCursor*)cur)->bEof;
}

static int ev_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int iCol){
  EvCursor *p = (EvCursor*)cur;
  switch( iCol ){
    case EV_MESSAGE:
      if( p->zMsg && p->zErr==0 ){
        sqlite3_result_text(ctx, p->zMsg, p->nMsg, SQLITE_TRANSIENT);
        sqlite3_result_subtype(ctx, KUSTOMER_JSON_SUBTYPE);
      }
      break;
    case EV_FILE:
      if( p->iFile>0 && p->iFile<=p->nFile ){
        sqlite3_result_text(ctx, p->azFile[p->iFile-1], -1, SQLITE_TRANSIENT);
      }
      break;
    case EV_LINE:
      if( p->iRowLine>0 ) sqlite3_result_int64(ctx, p->iRowLine);
      break;
    case EV_BATCH:
      if( p->iBatch>=0 ) sqlite3_result_int(ctx, p->iBatch);
      break;
    case EV_ERROR:
      if( p->zErr ) sqlite3_result_text(ctx, p->zErr, -1, SQLITE_TRANSIENT);
      break;
    default:
      break;
  }
  return SQLITE_OK;
}

static int ev_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *pRowid){
  *pRowid = ((EvCursor*)cur)->iRowid;
  return SQLITE_OK;
}

static sqlite3_module evModule = {
  /* eponymous only: no xCreate */
  .xConnect = ev_connect,
  .xBestIndex = ev_best_index,
  .xDisconnect = kustomer_tvf_disconnect,
  .xOpen = ev_open,
  .xClose = ev_close,
  .xFilter = ev_filter,
  .xNext = ev_next,
  .xEof = ev_eof,
  .xColumn = ev_column,
  .xRowid = ev_rowid,
};

int kustomer_register_events(sqlite3 *db){
  return sqlite3_create_module(db, "kustomer_events", &evModule, 0);
}
