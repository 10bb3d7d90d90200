/*
** kustomer_session(timestamp [, gap_minutes [, prefix [, user_key]]]):
** a window function that numbers sessions, for Kustomer's sessionId.
**
**   SELECT kustomer_session(ts, 30) OVER (
**            PARTITION BY coalesce(user_id, anonymous_id) ORDER BY ts)
**     FROM events;
**   -- 2024-05-01T10:00:00Z  lvnnbr40
**   -- 2024-05-01T10:29:00Z  lvnnbr40   (29 minutes later: same session)
**   -- 2024-05-01T11:30:00Z  lvnqjhs0   (61 minutes later: a new one)
**
** A new session starts when the gap to the previous row with a timestamp
** (in the window's order) is greater than gap_minutes (default 30); a gap
** of exactly gap_minutes does not start one, and a negative gap (rows not
** in time order) never does.  A row with a NULL timestamp gets NULL and is
** skipped when gaps are measured.
**
** The id.  The function sees only what it is passed, not the PARTITION BY
** key, so the id is made from what identifies a session within a user: the
** time it started, in epoch milliseconds written in base 36 (8 characters
** from 1972 to 2059).  That is deterministic (the same archive gives the
** same ids), distinct for distinct starts, and short.  It is unique only
** within a user; two arguments make it unique across users:
**   - prefix: text put in front as it is (the user id, with a separator);
**   - user_key: hashed (64-bit FNV-1a of its UTF-8 bytes, modulo 36^8)
**     into 8 base-36 characters put between the prefix and the start, so
**     ids stay short whatever the key's length (an e-mail address, say);
**     SQLite has no hash function the caller could use to shorten a
**     prefix portably, hence this argument.  Two users then share an id
**     only if their keys' hashes collide (about 1 in 2.8e12) and their
**     sessions start in the same millisecond.
**
** Timestamps: ISO-8601 text ("2024-05-01T10:00:00.123+02:00", or the
** "2024-05-01 10:00:00" SQLite writes; no zone means UTC), or Unix time as
** a number: seconds, or milliseconds when its absolute value is above 1e11
** (1e11 seconds is the year 5138, 1e11 milliseconds is 1973).
**
** As a window function the value is that of the last row of the frame,
** computed over the rows in the frame: with the default frame (UNBOUNDED
** PRECEDING to CURRENT ROW) that is the current row's session.  Peers of
** an ORDER BY ts are stepped before the value is taken; they have the same
** timestamp, hence the same session.  A frame that does not start at
** UNBOUNDED PRECEDING sees only its own rows, so a session cannot start
** before the frame does; xInverse keeps that exact.  As an aggregate it
** gives the group's last session (NULL timestamps ignored), in the order
** the rows are stepped.
*/
#include <math.h>
#include <string.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

#define SESSION_FUNC "kustomer_session"
#define SESSION_DEFAULT_GAP 30.0        /* minutes */
#define SESSION_MS_ABOVE 1e11           /* larger numbers are milliseconds */

/* Year 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z in epoch
** milliseconds: what four-digit ISO years can say, and the range numbers
** are held to as well. */
#define SESSION_MIN_MS (-62167219200000LL)
#define SESSION_MAX_MS 253402300799999LL

/* Longest suffix after the prefix: 8 hash characters, a sign, 11 base-36
** digits of |SESSION_MIN_MS|, a terminator. */
#define SESSION_SUFFIX 24

/* How much of a bad timestamp an error message quotes. */
#define SESSION_QUOTE_MAX 64

typedef struct SessionState SessionState;
struct SessionState {
  /* The timestamps (epoch ms) of the frame's rows that belong to its last
  ** session, in the order stepped: aTs[iHead] is the session's start.
  ** Only xInverse needs more than the start: when the start leaves a
  ** sliding frame, the next row starts the frame's last session.  The
  ** buffer is reused from one session to the next, so a partition costs
  ** a few allocations, not one per row. */
  sqlite3_int64 *aTs;
  sqlite3_int64 nAlloc;
  sqlite3_int64 iHead;
  sqlite3_int64 nTs;
  sqlite3_int64 nBefore;  /* rows with a timestamp before that session */
  int bLastNull;          /* the frame's last row has a NULL timestamp */
  int bKey;               /* hKey is set: the last row had a user_key */
  sqlite3_uint64 hKey;    /* the hash of that user_key, modulo 36^8 */
  char *zId;              /* the last row's prefix, then room for a suffix */
  sqlite3_int64 nPrefix;  /* bytes of prefix in zId */
  sqlite3_int64 nIdAlloc;
};

static const char azBase36[] = "0123456789abcdefghijklmnopqrstuvwxyz";

/* Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
** days_from_civil), exact for every year ISO text can hold. */
static sqlite3_int64 days_from_civil(int y, int m, int d){
  sqlite3_int64 era, yoe, doy, doe;
  y -= m<=2;
  era = (y>=0 ? y : y-399)/400;
  yoe = y - era*400;
  doy = (153*(m + (m>2 ? -3 : 9)) + 2)/5 + d - 1;
  doe = yoe*365 + yoe/4 - yoe/100 + doy;
  return era*146097 + doe - 719468;
}

/* Read exactly nDigit decimal digits at z[*pi]. */
static int read_digits(const char *z, int n, int *pi, int nDigit, int *pVal){
  int i = *pi, v = 0, k;
  if( n - i < nDigit ) return 0;
  for(k=0; k<nDigit; k++){
    char c = z[i+k];
    if( c<'0' || c>'9' ) return 0;
    v = v*10 + (c - '0');
  }
  *pi = i + nDigit;
  *pVal = v;
  return 1;
}

/*
** Parse ISO-8601 text: YYYY-MM-DD, optionally followed by 'T' (or a space,
** as SQLite's datetime() writes) and hh:mm[:ss[.fraction]], then an
** optional zone: Z, +hh:mm, +hhmm or +hh (and -).  No zone is UTC.  The
** fraction is rounded to the millisecond.  Fields are range-checked
** (February 30th is refused) so a typo cannot become another date.
*/
static int parse_iso(const char *z, int n, sqlite3_int64 *pMs){
  int i = 0, Y, M, D, h = 0, m = 0, s = 0, ms = 0, off = 0;
  static const int aDays[] = {31,28,31,30,31,30,31,31,30,31,30,31};
  int nDay;

  if( !read_digits(z, n, &i, 4, &Y) || i>=n || z[i++]!='-'
   || !read_digits(z, n, &i, 2, &M) || i>=n || z[i++]!='-'
   || !read_digits(z, n, &i, 2, &D) ){
    return 0;
  }
  if( M<1 || M>12 ) return 0;
  nDay = aDays[M-1];
  if( M==2 && (Y%4==0 && (Y%100!=0 || Y%400==0)) ) nDay = 29;
  if( D<1 || D>nDay ) return 0;

  if( i<n ){
    if( z[i]!='T' && z[i]!='t' && z[i]!=' ' ) return 0;
    i++;
    if( !read_digits(z, n, &i, 2, &h) || i>=n || z[i++]!=':'
     || !read_digits(z, n, &i, 2, &m) ){
      return 0;
    }
    if( i<n && z[i]==':' ){
      i++;
      if( !read_digits(z, n, &i, 2, &s) ) return 0;
      if( i<n && (z[i]=='.' || z[i]==',') ){
        int k = 0, bUp = 0;
        i++;
        if( i>=n || z[i]<'0' || z[i]>'9' ) return 0;
        for(; i<n && z[i]>='0' && z[i]<='9'; i++, k++){
          if( k<3 ){
            ms = ms*10 + (z[i] - '0');
          }else if( k==3 ){
            bUp = z[i]>='5';
          }
        }
        for(; k<3; k++) ms *= 10;
        ms += bUp;
      }
    }
    if( h>23 || m>59 || s>59 ) return 0;
    if( i<n ){
      if( z[i]=='Z' || z[i]=='z' ){
        i++;
      }else if( z[i]=='+' || z[i]=='-' ){
        int sign = z[i++]=='-' ? -1 : 1, oh, om = 0;
        if( !read_digits(z, n, &i, 2, &oh) ) return 0;
        if( i<n ){
          if( z[i]==':' ) i++;
          if( !read_digits(z, n, &i, 2, &om) ) return 0;
        }
        if( oh>23 || om>59 ) return 0;
        off = sign*(oh*60 + om);
      }else{
        return 0;
      }
    }
    if( i!=n ) return 0;
  }
  *pMs = days_from_civil(Y, M, D)*86400000
       + ((sqlite3_int64)h*3600 + m*60 + s)*1000 + ms
       - (sqlite3_int64)off*60000;
  return 1;
}

int kustomer_iso_ms(const char *z, int n, sqlite3_int64 *pMs){
  return parse_iso(z, n, pMs);
}

/*
** The timestamp argument in epoch milliseconds.  Returns 1 and sets *pMs,
** 0 for NULL, or -1 after reporting an error on ctx.
*/
static int session_time(sqlite3_context *ctx, sqlite3_value *pVal,
                        sqlite3_int64 *pMs){
  int eType = sqlite3_value_type(pVal);
  int bOk = 0;
  switch( eType ){
    case SQLITE_NULL:
      return 0;
    case SQLITE_INTEGER: {
      sqlite3_int64 v = sqlite3_value_int64(pVal);
      if( v>(sqlite3_int64)SESSION_MS_ABOVE
       || v<-(sqlite3_int64)SESSION_MS_ABOVE ){
        *pMs = v;
      }else{
        *pMs = v*1000;
      }
      bOk = *pMs>=SESSION_MIN_MS && *pMs<=SESSION_MAX_MS;
      break;
    }
    case SQLITE_FLOAT: {
      double r = sqlite3_value_double(pVal);
      if( !(fabs(r)>SESSION_MS_ABOVE) ) r *= 1000.0;
      r = floor(r + 0.5);
      /* Checked as a double first: converting an out-of-range double to
      ** an integer is undefined. */
      if( r>=(double)SESSION_MIN_MS && r<=(double)SESSION_MAX_MS ){
        *pMs = (sqlite3_int64)r;
        bOk = 1;
      }
      break;
    }
    case SQLITE_TEXT: {
      const char *z = (const char*)sqlite3_value_text(pVal);
      if( z==0 ){
        sqlite3_result_error_nomem(ctx);
        return -1;
      }
      bOk = parse_iso(z, sqlite3_value_bytes(pVal), pMs);
      break;
    }
    default:
      kustomer_result_error(ctx,
          sqlite3_mprintf("%s(): argument 1 (timestamp) must "
                          "be text or a number, got %s", SESSION_FUNC,
                          kustomer_type_name(pVal)));
      return -1;
  }
  if( !bOk ){
    /* Quote at most SESSION_QUOTE_MAX bytes, cut at a character boundary,
    ** so a stray document in the column does not fill the message. */
    const char *z = (const char*)sqlite3_value_text(pVal);
    int n = sqlite3_value_bytes(pVal);
    const char *zMore = "";
    if( z==0 ){
      sqlite3_result_error_nomem(ctx);
      return -1;
    }
    if( n>SESSION_QUOTE_MAX ){
      n = SESSION_QUOTE_MAX;
      while( n>0 && (((unsigned char)z[n]) & 0xc0)==0x80 ) n--;
      zMore = "...";
    }
    kustomer_result_error(ctx,
        sqlite3_mprintf("%s(): cannot read '%.*q%s' as a "
                        "timestamp", SESSION_FUNC, n, z, zMore));
    return -1;
  }
  return 1;
}

/* The gap in milliseconds from argument 2 (NULL or absent: the default).
** Returns a negative number after reporting an error. */
static double session_gap(sqlite3_context *ctx, int argc,
                          sqlite3_value **argv){
  int eType;
  double r;
  if( argc<2 ) return SESSION_DEFAULT_GAP*60000.0;
  eType = sqlite3_value_type(argv[1]);
  if( eType==SQLITE_NULL ) return SESSION_DEFAULT_GAP*60000.0;
  if( eType!=SQLITE_INTEGER && eType!=SQLITE_FLOAT ){
    kustomer_result_error(ctx,
        sqlite3_mprintf("%s(): argument 2 (gap_minutes) must "
                        "be a positive number, got %s", SESSION_FUNC,
                        kustomer_type_name(argv[1])));
    return -1.0;
  }
  r = sqlite3_value_double(argv[1]);
  if( !(r>0.0) ){
    kustomer_result_error(ctx,
        sqlite3_mprintf("%s(): argument 2 (gap_minutes) must "
                        "be a positive number, got %s", SESSION_FUNC,
                        (const char*)sqlite3_value_text(argv[1])));
    return -1.0;
  }
  return r*60000.0;
}

/* Check that argument iArg (prefix or user_key) is text, an integer or
** NULL; returns 0 after reporting an error. */
static int session_text_arg(sqlite3_context *ctx, int argc,
                            sqlite3_value **argv, int iArg,
                            const char *zName){
  int eType;
  if( argc<=iArg ) return 1;
  eType = sqlite3_value_type(argv[iArg]);
  if( eType==SQLITE_FLOAT || eType==SQLITE_BLOB ){
    kustomer_result_error(ctx,
        sqlite3_mprintf("%s(): argument %d (%s) must be text "
                        "or an integer, got %s", SESSION_FUNC, iArg+1, zName,
                        kustomer_type_name(argv[iArg])));
    return 0;
  }
  return 1;
}

/* Remember the prefix of the row just stepped.  A prefix is normally the
** same for a whole partition, so it is copied only when it changes. */
static int session_set_prefix(SessionState *p, sqlite3_value *pVal){
  const char *z = 0;
  sqlite3_int64 n = 0;
  if( pVal && sqlite3_value_type(pVal)!=SQLITE_NULL ){
    z = (const char*)sqlite3_value_text(pVal);
    if( z==0 ) return SQLITE_NOMEM;
    n = sqlite3_value_bytes(pVal);
  }
  if( n==p->nPrefix && (n==0 || memcmp(p->zId, z, (size_t)n)==0) ){
    return SQLITE_OK;
  }
  if( n + SESSION_SUFFIX > p->nIdAlloc ){
    sqlite3_int64 nNew = n + SESSION_SUFFIX;
    char *zNew = sqlite3_realloc64(p->zId, (sqlite3_uint64)nNew);
    if( zNew==0 ) return SQLITE_NOMEM;
    p->zId = zNew;
    p->nIdAlloc = nNew;
  }
  if( n ) memcpy(p->zId, z, (size_t)n);
  p->nPrefix = n;
  return SQLITE_OK;
}

/* FNV-1a, 64 bits: a published hash, so the ids can be reproduced
** elsewhere; reduced to what 8 base-36 characters hold. */
static int session_set_key(SessionState *p, sqlite3_value *pVal){
  const unsigned char *z;
  int n, i;
  sqlite3_uint64 h = 0xcbf29ce484222325ULL;
  if( pVal==0 || sqlite3_value_type(pVal)==SQLITE_NULL ){
    p->bKey = 0;
    return SQLITE_OK;
  }
  z = sqlite3_value_text(pVal);
  if( z==0 ) return SQLITE_NOMEM;
  n = sqlite3_value_bytes(pVal);
  for(i=0; i<n; i++){
    h ^= z[i];
    h *= 0x100000001b3ULL;
  }
  p->hKey = h % 2821109907456ULL;   /* 36^8 */
  p->bKey = 1;
  return SQLITE_OK;
}

/* Append a timestamp to the queue of the frame's last session. */
static int session_push(SessionState *p, sqlite3_int64 ms){
  if( p->iHead + p->nTs >= p->nAlloc ){
    if( p->iHead>0 ){
      /* Slots freed by xInverse at the front: reuse them first. */
      memmove(p->aTs, &p->aTs[p->iHead], (size_t)p->nTs*sizeof(p->aTs[0]));
      p->iHead = 0;
    }
    if( p->nTs >= p->nAlloc ){
      sqlite3_int64 nNew = p->nAlloc ? p->nAlloc*2 : 16;
      sqlite3_int64 *aNew = sqlite3_realloc64(p->aTs,
                              (sqlite3_uint64)nNew*sizeof(p->aTs[0]));
      if( aNew==0 ) return SQLITE_NOMEM;
      p->aTs = aNew;
      p->nAlloc = nNew;
    }
  }
  p->aTs[p->iHead + p->nTs] = ms;
  p->nTs++;
  return SQLITE_OK;
}

static void session_step(sqlite3_context *ctx, int argc,
                         sqlite3_value **argv){
  SessionState *p;
  sqlite3_int64 ms = 0;
  double gapMs;
  int rc;

  /* Arguments are checked on every row, NULL timestamp or not, so that a
  ** bad gap or prefix is an error whatever the data. */
  gapMs = session_gap(ctx, argc, argv);
  if( gapMs<0.0 ) return;
  if( !session_text_arg(ctx, argc, argv, 2, "prefix")
   || !session_text_arg(ctx, argc, argv, 3, "user_key") ){
    return;
  }
  rc = session_time(ctx, argv[0], &ms);
  if( rc<0 ) return;

  p = (SessionState*)sqlite3_aggregate_context(ctx, sizeof(*p));
  if( p==0 ){
    sqlite3_result_error_nomem(ctx);
    return;
  }
  if( rc==0 ){
    p->bLastNull = 1;
    return;
  }
  p->bLastNull = 0;
  if( session_set_prefix(p, argc>2 ? argv[2] : 0)!=SQLITE_OK
   || session_set_key(p, argc>3 ? argv[3] : 0)!=SQLITE_OK ){
    sqlite3_result_error_nomem(ctx);
    return;
  }
  /* Consecutive rows only: a gap is measured from the previous row with a
  ** timestamp in the window's order.  A row earlier than that one (a
  ** negative gap) cannot start a session: misordered input then merges
  ** sessions rather than inventing new ones. */
  if( p->nTs>0 ){
    sqlite3_int64 prev = p->aTs[p->iHead + p->nTs - 1];
    if( ms>prev && (double)(ms - prev)>gapMs ){
      p->nBefore += p->nTs;
      p->iHead = 0;
      p->nTs = 0;
    }
  }
  if( session_push(p, ms)!=SQLITE_OK ){
    sqlite3_result_error_nomem(ctx);
  }
}

/* A sliding frame drops its first row.  Rows leave in the order they were
** stepped: first those before the last session, then that session's own,
** whose next row becomes the start (no earlier row is left to join). */
static void session_inverse(sqlite3_context *ctx, int argc,
                            sqlite3_value **argv){
  SessionState *p = (SessionState*)sqlite3_aggregate_context(ctx, 0);
  (void)argc;
  if( p==0 || sqlite3_value_type(argv[0])==SQLITE_NULL ) return;
  if( p->nBefore>0 ){
    p->nBefore--;
  }else if( p->nTs>0 ){
    p->iHead++;
    p->nTs--;
    if( p->nTs==0 ) p->iHead = 0;
  }
}

/* Write the id of the frame's last session as the result. */
static void session_result(sqlite3_context *ctx, SessionState *p){
  char aBuf[SESSION_SUFFIX];
  char aRev[16];
  char *z = p->zId ? &p->zId[p->nPrefix] : aBuf;
  sqlite3_int64 start = p->aTs[p->iHead];
  sqlite3_uint64 u;
  int n = 0, k = 0;

  if( p->bKey ){
    sqlite3_uint64 h = p->hKey;
    int i;
    for(i=7; i>=0; i--){
      z[i] = azBase36[h % 36];
      h /= 36;
    }
    n = 8;
  }
  if( start<0 ){
    z[n++] = '-';
    u = (sqlite3_uint64)0 - (sqlite3_uint64)start;
  }else{
    u = (sqlite3_uint64)start;
  }
  do{
    aRev[k++] = azBase36[u % 36];
    u /= 36;
  }while( u );
  while( k>0 ) z[n++] = aRev[--k];

  if( p->zId ){
    sqlite3_result_text64(ctx, p->zId, (sqlite3_uint64)(p->nPrefix + n),
                          SQLITE_TRANSIENT, SQLITE_UTF8);
  }else{
    sqlite3_result_text(ctx, aBuf, n, SQLITE_TRANSIENT);
  }
}

/* The window value: the session of the frame's last row, NULL when that
** row's timestamp is NULL or the frame holds no timestamp. */
static void session_value(sqlite3_context *ctx){
  SessionState *p = (SessionState*)sqlite3_aggregate_context(ctx, 0);
  if( p==0 || p->bLastNull || p->nTs==0 ) return;
  session_result(ctx, p);
}

/* The aggregate value, and the end of a window partition: the last
** session, NULL timestamps ignored as SQL aggregates ignore NULLs. */
static void session_final(sqlite3_context *ctx){
  SessionState *p = (SessionState*)sqlite3_aggregate_context(ctx, 0);
  if( p==0 ) return;
  if( p->nTs>0 ) session_result(ctx, p);
  sqlite3_free(p->aTs);
  sqlite3_free(p->zId);
  p->aTs = 0;
  p->zId = 0;
}

int kustomer_register_session(sqlite3 *db){
  const int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
  int nArg, rc = SQLITE_OK;
  for(nArg=1; nArg<=4 && rc==SQLITE_OK; nArg++){
    rc = sqlite3_create_window_function(db, SESSION_FUNC, nArg, flags, 0,
                                        session_step, session_final,
                                        session_value, session_inverse, 0);
  }
  return rc;
}
