/*
** Declarations shared by the extension's modules.
**
** The extension is split in the manner of sqlean: kustomer_ext.c holds the
** entry point and the registration table; each file in src/ implements one
** part of the SQL surface or one shared mechanism.  Every unit includes
** this header, then says SQLITE_EXTENSION_INIT3.
**
** The sections below follow the layers, each using only those above it:
**   core         jsnum.c json.c settings.c transform.c: pure, no SQL
**                context, no network (make test checks this)
**   SQL support  support.c: results, errors, the settings argument,
**                table-valued function plumbing
**   SQL surface  functions.c meta_each.c check.c session.c
**   network      http.c (the only user of libcurl), kapi.c (Kustomer's
**                conventions), network.c fetch.c outbox.c flush.c
*/
#ifndef KUSTOMER_H
#define KUSTOMER_H

#include <stddef.h>
#include <sqlite3ext.h>
#include <cjson/cJSON.h>

/* The Makefile passes the text of the file VERSION; a compile without it
** still builds, and kustomer_version() then says so. */
#ifndef KUSTOMER_VERSION
# define KUSTOMER_VERSION "unknown (built without VERSION)"
#endif

/* Limits on input JSON, enforced with a clear error before parsing. */
#define KUSTOMER_MAX_DEPTH 256                 /* nesting of arrays/objects */
#define KUSTOMER_MAX_JSON  (64 * 1024 * 1024)  /* bytes of one document */

/* SQLite 3.45 added this flag; older libraries ignore unknown flag bits. */
#ifndef SQLITE_RESULT_SUBTYPE
# define SQLITE_RESULT_SUBTYPE 0x001000000
#endif
#define KUSTOMER_JSON_SUBTYPE 74 /* 'J', what SQLite's json functions use */

/* ======== Core =========================================================== */

/* ---- jsnum.c: numbers exactly as JavaScript prints them ------------------ */

/* Longest text kustomer_fmt_number() writes, terminator included. */
#define KUSTOMER_NUMBUF 32

/*
** Write into zBuf the text JavaScript's Number.prototype.toString gives for
** r (the same digits JSON.stringify uses for finite numbers): shortest
** round-trip digits, exponent form from 1e21 and below 1e-6, "-0" as "0",
** "NaN", "Infinity", "-Infinity".  Returns the length, without terminator.
*/
int kustomer_fmt_number(double r, char *zBuf);

/* ---- json.c: parsing input, writing output ------------------------------ */

/*
** Parse n bytes of JSON text.  Before cJSON sees the text it is checked for
** what cJSON would accept silently or lose: what RFC 8259 refuses (01, 1.,
** control characters, bad or unpaired \u escapes), invalid UTF-8, nesting
** deeper than KUSTOMER_MAX_DEPTH, a \u0000 escape (cJSON truncates there),
** size.
** On failure returns NULL and sets *pzErr to a message from sqlite3_mprintf
** (without a function-name prefix) or leaves it NULL on out-of-memory.
** pzErr may be NULL when the reason does not matter.
*/
cJSON *kustomer_json_parse(const char *z, int n, char **pzErr);
/* The end of the one JSON value at z (after whitespace), proved valid by
** the lean scan, or NULL: then the text is not valid JSON, or is of a kind
** the scan leaves to kustomer_json_parse() (which then says which).  The
** text must be followed by a NUL at or after zEnd. */
const char *kustomer_json_scan(const char *z, const char *zEnd);

/*
** Parse an object's text as kustomer_json_parse() does, keeping only the
** members aKeep lists (ended by a NULL zKey), in text order, duplicates
** included.  A kept member with aSub whose value is an object keeps in turn
** only the members aSub lists.  A member whose key has an escape or a '.'
** is always kept (a dotted path may name it).  Whether the text is valid,
** and the error if not, are exactly kustomer_json_parse()'s.  As for that
** function, z[n] must be a NUL (sqlite3_value_text() puts one there).
** eHow KKEEP_SHALLOW: an object value keeps all its members, but those
** aSub does not list have an object or array value made empty ({} or [],
** so the kind is kept); for a reader of the members' kinds only.
*/
#define KKEEP_WHOLE   0
#define KKEEP_RAW     1     /* also report the value's text (KJsonRaw) */
#define KKEEP_SHALLOW 2
typedef struct KJsonKeep KJsonKeep;
struct KJsonKeep {
  const char *zKey;         /* a member's key; NULL ends the list */
  const KJsonKeep *aSub;    /* members of its object to keep; NULL: all */
  int eHow;                 /* KKEEP_* */
};

/*
** The text of the top-level member whose KJsonKeep has KKEEP_RAW (pRaw may be
** NULL when none has), so that a caller can write it out from the text
** instead of from a parse of it all.  eState says what the parse returned
** holds of it:
**   KRAW_NONE     all of it (absent, not an object, or the whole text was
**                 parsed): z is NULL
**   KRAW_TEXT     an object, its only occurrence, at z (n bytes): the tree
**                 holds only the members aSub lists
**   KRAW_REPARSE  the member is there more than once, or a key with an
**                 escape or a '.' sits beside it: parse again in full
*/
#define KRAW_NONE    0
#define KRAW_TEXT    1
#define KRAW_REPARSE 2
#define KRAW_MEMBERS 48
typedef struct KJsonRaw KJsonRaw;
struct KJsonRaw {
  const char *z;
  int n;
  int eState;
  int bChecked;             /* the parse made kustomer_json_raw_ok()'s
                            ** check, and it passed (else call it) */
  int nMember;              /* members recorded by that check (it fails
                            ** for more than KRAW_MEMBERS) */
  struct KJsonRawMember {
    const char *zKey;       /* at its opening quote */
    const char *zVal;
    int nKey, nVal;         /* nKey counts the quotes */
  } aMember[KRAW_MEMBERS];
  int bRewrite;             /* set by kustomer_json_raw_ok(): the text has
                            ** whitespace between tokens, or a number
                            ** JavaScript prints otherwise (389.0) */
};
/*
** Room a caller may lend kustomer_json_parse_some() for the tree, which it
** then builds there if it fits, saving an allocation: the tree is then
** only good while the room is.
*/
typedef struct KJsonRoom KJsonRoom;
struct KJsonRoom {
  cJSON aNode[48];          /* 3 KB, typed so as to align as cJSON */
};
cJSON *kustomer_json_parse_some(const char *z, int n, const KJsonKeep *aKeep,
                                KJsonRaw *pRaw, KJsonRoom *pRoom,
                                char **pzErr);

/*
** Free a tree from kustomer_json_parse_some(), or any cJSON tree.  Trees of
** the text the scan accepts are built in one block, marked by KJSON_ARENA
** in their root's type (outside the 0xff of its cJSON type), and
** KJSON_LENT too when in a KJsonRoom: cJSON_Delete() must not see them.
** Their nodes are cJSON's and read as such.
*/
#define KJSON_ARENA 0x4000
#define KJSON_LENT  0x8000
void kustomer_json_delete(cJSON *p);

/*
** Whether the text of a KRAW_TEXT value, copied without the whitespace
** between its tokens and with trailing fraction zeros and the sign of -0
** dropped, is exactly what kustomer_json_value() writes for its parse:
** every string and key written as JSON.stringify would (no \u or \/
** escape), numbers of at most 63 characters (those JavaScript prints
** otherwise, 1e2 or 0.30000000000000004, are written formatted from their
** double, as the parse writes them), and no object with a repeated key.
** Sets pRaw->bRewrite.
*/
int kustomer_json_raw_ok(KJsonRaw *pRaw);

/*
** Append the members of the KRAW_TEXT object pRaw (one that passed
** kustomer_json_raw_ok()) as kustomer_json_value() would, braces included,
** leaving out those whose key (n bytes, as written) xSkip says to.
*/
void kustomer_json_raw_object(sqlite3_str *p, const KJsonRaw *pRaw,
                              int (*xSkip)(const char*, size_t, void*),
                              void *pArg);

/* Append the value of pRaw's member i as kustomer_json_value() would write
** its parse. */
void kustomer_json_raw_value(sqlite3_str *p, const KJsonRaw *pRaw, int i);

/* The key of member i as written, without its quotes. */
static inline void kustomer_json_raw_key(const KJsonRaw *pRaw, int i,
                                         const char **pz, int *pn){
  *pz = pRaw->aMember[i].zKey+1;
  *pn = pRaw->aMember[i].nKey-2;
}

/* Whether the key of member i has no escape and no ASCII whitespace or
** control byte, so that its bytes are the key; *pbHigh says it has bytes
** beyond ASCII (whose whitespace, if any, is JavaScript's business). */
int kustomer_json_raw_key_plain(const KJsonRaw *pRaw, int i, int *pbHigh);

/* The kind of member i's value. */
#define KRAWV_NULL   0
#define KRAWV_TRUE   1
#define KRAWV_FALSE  2
#define KRAWV_NUMBER 3
#define KRAWV_STRING 4
#define KRAWV_ARRAY  5
#define KRAWV_OBJECT 6
static inline int kustomer_json_raw_kind(const KJsonRaw *pRaw, int i){
  switch( pRaw->aMember[i].zVal[0] ){
    case '"': return KRAWV_STRING;
    case 't': return KRAWV_TRUE;
    case 'f': return KRAWV_FALSE;
    case 'n': return KRAWV_NULL;
    case '{': return KRAWV_OBJECT;
    case '[': return KRAWV_ARRAY;
    default:  return KRAWV_NUMBER;
  }
}

/* A string value's text between its quotes, escapes as written. */
static inline void kustomer_json_raw_string(const KJsonRaw *pRaw, int i,
                                            const char **pz, int *pn){
  *pz = pRaw->aMember[i].zVal+1;
  *pn = pRaw->aMember[i].nVal-2;
}

/* Append n bytes of compact JSON text (no control characters) as a JSON
** string: only its quotes and backslashes take an escape. */
void kustomer_json_string_of_json(sqlite3_str *p, const char *z, int n);

/* For an array value that holds nothing but, in arrays of one element, one
** scalar (whose JavaScript string then has no ','): returns 1, its kind
** (KRAWV_STRING or KRAWV_NUMBER) and its text (*pz at the string's
** quote).  0 for any other array. */
int kustomer_json_raw_array_scalar(const KJsonRaw *pRaw, int i, int *peKind,
                                   const char **pz);

/* Append a JSON string literal for n bytes of UTF-8, escaped as
** JSON.stringify escapes. */
void kustomer_json_string(sqlite3_str *p, const char *z, size_t n);

/* The same without the quotes, to build a string literal in parts. */
void kustomer_json_string_body(sqlite3_str *p, const char *z, size_t n);

/* A string literal for bytes from a server, which need not be UTF-8: each
** byte that does not start a valid sequence, and NUL, becomes U+FFFD. */
void kustomer_json_string_lossy(sqlite3_str *p, const char *z, size_t n);

/* Append an object member's key and colon ("key":), after a comma if
** bComma. */
void kustomer_json_key(sqlite3_str *p, int bComma, const char *z, size_t n);

/* Append a number as JSON.stringify does (non-finite values as null). */
void kustomer_json_number(sqlite3_str *p, double r);

/* Append the compact JSON of a parsed value.  Objects keep their input key
** order; a duplicated key keeps its first position and its last value, as
** JSON.parse leaves it. */
void kustomer_json_value(sqlite3_str *p, const cJSON *pVal);

/* Append JavaScript's string conversion of a value ("" + v), except that an
** object is written as its compact JSON instead of "[object Object]". */
void kustomer_js_string(sqlite3_str *p, const cJSON *pVal);

/* For each of n keys, the index of the first key equal to it (hashing
** when n is large).  Returns SQLITE_OK or SQLITE_NOMEM. */
int kustomer_first_same(int n, const char *const *azKey, int *aFirst);

/* Lookup of a member by exact key; with duplicates the last one wins. */
const cJSON *kustomer_json_member(const cJSON *pObj, const char *zKey);

/* JavaScript truthiness of a parsed value (NULL pointer = undefined). */
int kustomer_js_truthy(const cJSON *pVal);

/* The reference's "acceptable" value: truthy, or exactly false or 0. */
int kustomer_acceptable(const cJSON *pVal);

/* Name of a value's JSON type as SQLite's json_type() reports it:
** null, true, false, integer, real, text, array, object. */
const char *kustomer_json_type(const cJSON *pVal);

/* ---- settings.c: destination settings ----------------------------------- */

#define KUSTOMER_DEFAULT_BASE "https://api.kustomerapp.com"
#define KUSTOMER_TIMEOUT_MS   30000   /* one HTTP request, when not set */

typedef struct KSettings KSettings;
struct KSettings {
  char *zBase;            /* API host, no trailing '/' */
  char *zAuth;            /* Authorization header value of kustomer_request;
                          ** NULL when the key comes from zKeyEnv */
  char *zKeyEnv;          /* apiKeyEnv: variable holding the key, or NULL */
  int bHasKey;            /* apiKey or apiKeyEnv was given */
  long timeoutMs;         /* timeoutMs, default KUSTOMER_TIMEOUT_MS */
  int bAdvanced;          /* advancedTransform */
  int bIdentityEmail;     /* setIdentityEmail */
  int bDisableEmail;      /* disableEmailAsTrackingProperty */
  int bGenericPage;       /* genericPage */
  int bGenericScreen;     /* genericScreen */
  int bSegmentTraits;     /* traitMapping: "segment" (default "rudderstack") */
  int bNormalize;         /* normalizeTraits */
  char *zTimeMeta;        /* timestampMeta: meta key of the event's time */
};

/*
** Parse settings JSON text (NULL or empty object = defaults).  Returns
** SQLITE_OK and a new object, SQLITE_NOMEM, or SQLITE_ERROR with *pzErr
** (sqlite3_mprintf, no function prefix) describing the problem.
*/
int kustomer_settings_parse(const char *z, int n, KSettings **ppOut,
                            char **pzErr);
void kustomer_settings_free(KSettings *p);

/* Settings a table stores (outbox, sync): they must be given and name the
** key with apiKeyEnv, never hold apiKey itself.  An error message (no
** prefix) or NULL. */
char *kustomer_settings_check_stored(const char *zSettings);

/* ---- transform.c: the reference's transformation ----------------------- */

/* Message types. */
#define KTYPE_IDENTIFY 1
#define KTYPE_TRACK    2
#define KTYPE_PAGE     3
#define KTYPE_SCREEN   4

/*
** A per-event failure: the status the reference reports and its message.
** zMsg is from sqlite3_mprintf and owned by the KError.
*/
typedef struct KError KError;
struct KError {
  int status;
  char *zMsg;
};
void kustomer_error_clear(KError *pErr);

/* Result codes of the transform functions are SQLITE_OK, SQLITE_NOMEM,
** SQLITE_TOOBIG (output too large), or this one: the event cannot be
** transformed and *pErr says why. */
#define KUSTOMER_EVENT_ERROR (-1)

/* The message type of an event (KTYPE_*), or KUSTOMER_EVENT_ERROR with the
** reference's error for a missing or unsupported type. */
int kustomer_event_type(const cJSON *pEvent, KError *pErr);

/* Parse an event's text for the transformation: kustomer_json_parse()
** without the members that no transformation or check reads.  pRoom, if
** not NULL, is lent to kustomer_json_parse_some(). */
cJSON *kustomer_event_parse(const char *z, int n, KJsonRoom *pRoom,
                            char **pzErr);

/* The same for kustomer_check() with settings of that bAdvanced: without
** it, the nested values of properties that no path names are made empty
** (only their kind is read). */
cJSON *kustomer_event_parse_check(const char *z, int n, int bAdvanced,
                                  KJsonRoom *pRoom, char **pzErr);

/* The properties of a tracking event as text, for meta written from it:
** json.c's record of the members, and the advanced plan of each, which
** transform.c decides from that record. */
typedef struct KMetaText KMetaText;
struct KMetaText {
  KJsonRaw raw;
  unsigned char aAdv[KRAW_MEMBERS];
};

/* The same for the request and tracking bodies: of a track, page or
** screen event only the traits members they read.  With pProps, when
** pProps->raw.eState is KRAW_TEXT the tree holds only the members of
** properties that lookups read, and meta is written from the text, which
** is canonical and, with bAdvanced, whose advanced plan the text decides:
** pass the bAdvanced of the settings the tree is then transformed with.
** pRoom, if not NULL, is lent to kustomer_json_parse_some(). */
cJSON *kustomer_event_parse_lean(const char *z, int n, int bAdvanced,
                                 KMetaText *pProps, KJsonRoom *pRoom,
                                 char **pzErr);

/* Append meta from the text of properties (see above).  SQLITE_OK or
** SQLITE_NOMEM. */
int kustomer_meta_write_raw(sqlite3_str *p, const KMetaText *pProps,
                            int bAdvanced, int bDropEmail);

/*
** Meta: the plan for turning a properties object into Kustomer's meta,
** one item per member of the object, in input order.  A member is not sent
** when it is one of the session/tracking keys, when a later member has the
** same key (JSON.parse keeps the last value, at the first key's position),
** or when a later member maps to the same Kustomer key.
*/
typedef struct KMetaItem KMetaItem;
struct KMetaItem {
  const cJSON *pSrc;      /* the member as given */
  const char *zKey;       /* key sent to Kustomer; NULL if not computed */
  int eConv;              /* KCONV_*: how the value is sent */
  int eFate;              /* KFATE_*: what happens to this member */
  int iPos;               /* output position (first member with its key) */
  int iNext;              /* next item in output order, -1 at the end */
  char bOwnKey;           /* zKey was allocated for this item */
};
#define KCONV_NONE    0   /* value sent as it is */
#define KCONV_BOOLSTR 1   /* boolean sent as "true"/"false" */
#define KCONV_ARRJOIN 2   /* array sent as its elements' JSON joined by , */
#define KCONV_OBJJSON 3   /* object sent as its compact JSON text */

#define KFATE_SENT      0 /* sent under zKey */
#define KFATE_EXCLUDED  1 /* a session/tracking key: not part of meta */
#define KFATE_DUPLICATE 2 /* the same key appears again later */
#define KFATE_COLLISION 3 /* a later member maps to the same Kustomer key */
#define KFATE_EMAIL     4 /* removed by disableEmailAsTrackingProperty */

typedef struct KMeta KMeta;
struct KMeta {
  const cJSON *pProps;    /* the properties value (NULL: absent) */
  int bAdvanced;          /* advanced transformation applied */
  int nItem;              /* members of an object (0 otherwise) */
  int iFirst;             /* first sent item in output order, -1 if none */
  KMetaItem *aItem;
  KMetaItem aStatic[16];  /* small objects need no allocation */
};

/* Build the meta plan for a properties value (NULL = absent).  bDropEmail
** marks the "email" key as removed.  Returns SQLITE_OK or SQLITE_NOMEM. */
int kustomer_meta_plan(const cJSON *pProps, int bAdvanced, int bDropEmail,
                       KMeta *pMeta);
void kustomer_meta_free(KMeta *pMeta);

/* Whether meta is present in the event payload at all. */
int kustomer_meta_present(const KMeta *pMeta);

/* Append the Kustomer value of one meta item. */
int kustomer_meta_write_value(sqlite3_str *p, const KMetaItem *pItem);

/* Append the meta value for a plan (object, or a primitive passed
** through when properties is not an object and advanced is off). */
int kustomer_meta_write(sqlite3_str *p, const KMeta *pMeta);

/* Append the Kustomer event name of a track/page/screen event.  Returns
** SQLITE_OK or KUSTOMER_EVENT_ERROR. */
int kustomer_event_name_write(sqlite3_str *p, const cJSON *pEvent, int eType,
                              const KSettings *pSet, KError *pErr);

/* Append the {identity, event} body of a track/page/screen event. */
int kustomer_tracking_write(sqlite3_str *p, const cJSON *pEvent, int eType,
                            const KSettings *pSet, const KMetaText *pPropsRaw,
                            KError *pErr);

/* Append the customer body of an identify event. */
int kustomer_identify_write(sqlite3_str *p, const cJSON *pEvent,
                            const KSettings *pSet, KError *pErr);

/*
** Identify's plan: each key of the customer body, what it is made of and
** where in the event it was read, so that kustomer_check can point at the
** trait behind a value Kustomer would reject.
*/
#define KID_COPY      0     /* the value as read (normalised if asked) */
#define KID_NAME      1     /* first + " " + last (Segment: either alone) */
#define KID_HOME      2     /* [{"type":"home","<zItem>":value}] */
#define KID_URL       3     /* [{"url":value}] */
#define KID_ADDRESS   4     /* [{"type":"home","address":text}] */
#define KID_LOCATION  5     /* Segment: one structured location */
#define KID_DROPPED   6     /* normalizeTraits could not repair it: not sent */
typedef struct KIdField KIdField;
struct KIdField {
  const char *zKey;         /* the body's key */
  int eForm;                /* KID_* */
  const char *zItem;        /* KID_HOME: "email" or "phone" */
  const char *zAs;          /* normalised gender ("m"/"f"), else NULL */
  const char *zPath;        /* where pVal was read, "traits.gender" */
  const cJSON *pVal;
  const char *zPath2;       /* KID_NAME: the last name's */
  const cJSON *pVal2;
};
#define KID_MAX 32
typedef struct KIdPlan KIdPlan;
struct KIdPlan {
  int bSegment;             /* traitMapping "segment" */
  int bNormalize;           /* normalizeTraits */
  int nField;
  KIdField aField[KID_MAX];
};

/* The plan of an identify event's body; KUSTOMER_EVENT_ERROR without an
** externalId. */
int kustomer_identify_plan(const cJSON *pEvent, const KSettings *pSet,
                           KIdPlan *pPlan, KError *pErr);

/* Append the JSON of one planned key's value; SQLITE_OK or SQLITE_NOMEM. */
int kustomer_identify_value(sqlite3_str *p, const KIdPlan *pPlan,
                             const KIdField *pF);

/* Call xDrop(pArg, zPath, zMsg) for every trait of the event (and part of
** one) that the plan sends nowhere; zPath is a JSON path ("$.traits.x"),
** both from sqlite3_mprintf and owned by xDrop.  SQLITE_OK or
** SQLITE_NOMEM. */
int kustomer_identify_dropped(const cJSON *pEvent, const KIdPlan *pPlan,
                              void (*xDrop)(void*, char*, char*), void *pArg);

/* An ISO 8601 date-time that Kustomer takes: kustomer_is_iso_date()'s
** shape and a real calendar date and time. */
int kustomer_is_calendar_date(const char *z, size_t n);

/*
** Append the whole request envelope for an event.  zCustomerId (may be
** NULL) is the id of an existing customer for identify.  On any result
** but SQLITE_OK the text appended to p is incomplete: discard it.
*/
int kustomer_request_write(sqlite3_str *p, const cJSON *pEvent,
                           const KSettings *pSet, const char *zCustomerId,
                           const KMetaText *pPropsRaw, KError *pErr);

/*
** The values identify's customer lookups use, in the reference's order
** (4.1): the e-mail, the userId (without anonymousId), the raw anonymousId;
** each may be NULL.  Returns non-zero when the event carries its Kustomer
** id (a context.externalId of type kustomerId): then no lookup is made.
*/
int kustomer_identify_lookups(const cJSON *pEvent, const cJSON *apVal[3]);

/* Append v as an RFC 3986 path segment (DEVIATIONS D4). */
void kustomer_path_segment(sqlite3_str *p, const char *z, size_t n);

/* The same for the JavaScript string of a value; returns SQLITE_OK or the
** error of the temporary string (NOMEM, TOOBIG). */
int kustomer_path_segment_value(sqlite3_str *p, const cJSON *pVal);

/* The inverse: n bytes of a path segment percent-decoded (sqlite3_malloc;
** to free), or NULL when it decodes to nothing or to a NUL byte. */
char *kustomer_path_segment_decode(const char *z, size_t n);

/* The value of the hex digit c, or -1. */
int kustomer_hex_digit(char c);

/* "email=", "externalId=", "externalId=": the lookups' path prefixes. */
extern const char *const kustomer_aLookupPrefix[3];

/* The generic userId lookup (userId ... anonymousId), NULL if none. */
const cJSON *kustomer_user_id(const cJSON *pEvent);
/* Whether the event's integrations turn Kustomer off, as RudderStack and
** Segment read them: 1 {"Kustomer":false}, 2 {"All":false} without
** "Kustomer" true (or an object of its settings); 0 not. */
int kustomer_integration_off(const cJSON *pEvent);

/* Whether text contains JavaScript whitespace (the \s class). */
int kustomer_has_space(const char *z, size_t n);

/* ISO-8601 test of the advanced transformation (section 6.4). */
int kustomer_is_iso_date(const char *z, size_t n);
/* Epoch milliseconds as YYYY-MM-DDTHH:MM:SS.sssZ (zOut: 25 bytes), so that
** text order is time order. */
#define KUSTOMER_ISO_LEN 25
void kustomer_iso_format(sqlite3_int64 ms, char *zOut);

/* Meta rules: the verdict on one meta key/value as it would be sent, NULL
** when Kustomer accepts it, else the rule's name and severity (shared by
** kustomer_check and kustomer_meta_each). */
typedef struct KProblem KProblem;
struct KProblem {
  const char *zRule;        /* e.g. "number_key_without_num" */
  const char *zSeverity;    /* "error" or "warning" */
  const char *zMessage;     /* a sentence for people */
};
const KProblem *kustomer_meta_item_problem(const KMetaItem *pItem);

/* ======== SQL support ==================================================== */

/* ---- support.c: results, errors and arguments of the SQL surface -------- */

/* Report an error message built with sqlite3_mprintf (takes ownership;
** NULL means out of memory). */
void kustomer_result_error(sqlite3_context *ctx, char *zMsg);

/* Report an error code: TOOBIG and NOMEM as SQLite's own, others plain. */
void kustomer_result_code(sqlite3_context *ctx, int rc);

/* Hand a finished string to SQLite as the result (with the JSON subtype
** when bJson), or report its error code (NOMEM, TOOBIG). */
void kustomer_result_str(sqlite3_context *ctx, sqlite3_str *p, int bJson);

/* The {"statusCode":N,"error":"..."} result of a per-event failure. */
void kustomer_result_event_error(sqlite3_context *ctx, int status,
                                 const char *zMsg);

/* A value's SQL type as an error names it: integer, real, text, blob,
** null ("nothing" for a NULL pointer: an argument not given). */
const char *kustomer_type_name(sqlite3_value *pVal);

/* "zFunc(): argument N (zName) must be JSON text, got <type>" ("zFunc:
** zName ..." for iArg 0, a table's column), from sqlite3_mprintf: the one
** wording of that error. */
char *kustomer_not_text(const char *zFunc, int iArg, const char *zName,
                        sqlite3_value *pVal);

/* The JSON text of argument iArg (zName) of zFunc, not NULL: its text, or
** for JSONB (a blob, where the host SQLite is 3.45 or later) the text the
** host's json() makes of it, owned by p until kustomer_json_text_done().
** SQLITE_ERROR with *pzErr (sqlite3_mprintf) for any other type or a blob
** that is not JSONB; iArg 0 names a table's column ("zFunc: zName"). */
typedef struct KJsonText KJsonText;
struct KJsonText {
  const char *z;
  int n;
  char *zOwned;
};
int kustomer_json_text(sqlite3 *db, sqlite3_value *pVal, const char *zFunc,
                       int iArg, const char *zName, KJsonText *p,
                       char **pzErr);
void kustomer_json_text_done(KJsonText *p);

/* The options argument iArg of zFunc (kustomer_flush, kustomer_pull): SQL
** NULL (*ppOpt NULL), or JSON text of an object (*ppOpt, cJSON_Delete()
** it).  SQLITE_ERROR with *pzErr ("zFunc(): argument N (options) ...");
** SQLITE_NOMEM. */
int kustomer_options_arg(const char *zFunc, int iArg, sqlite3_value *pArg,
                         cJSON **ppOpt, char **pzErr);

/* Whether a function that commits as it goes (a flush, a pull) may run on
** db now: not inside a transaction (zWhy says why not), not inside a
** statement that writes.  NULL, or the error "zFunc(): ...". */
char *kustomer_may_commit(sqlite3 *db, const char *zFunc, const char *zWhy);

/* Whether pid is another process, alive: one that holds an outbox or a
** sync (a killed one leaves a dead pid behind). */
int kustomer_pid_live(int pid);

/* The settings of argument iArg (1-based, for messages) of zFunc, a value
** that may be NULL (defaults).  SQLITE_OK and a new object; SQLITE_ERROR
** with *pzErr prefixed "zFunc(): argument N (settings) "; SQLITE_NOMEM. */
int kustomer_settings_value(sqlite3_value *pVal, const char *zFunc, int iArg,
                            KSettings **ppSet, char **pzErr);

/* The reference's defaults, shared (never freed). */
const KSettings *kustomer_settings_default(void);

/*
** Settings for the function argument argv[iArg] (defaults when absent or
** NULL).  A constant settings argument is parsed once per statement: the
** parse is cached with sqlite3_set_auxdata.  On error, reports it on ctx
** (prefixed with zFunc) and returns NULL.  *pbNew says the object is new:
** pass it to kustomer_settings_done() after the last use.
*/
const KSettings *kustomer_settings_get(sqlite3_context *ctx, int argc,
                                       sqlite3_value **argv, int iArg,
                                       const char *zFunc, int *pbNew);
void kustomer_settings_done(sqlite3_context *ctx, int iArg,
                            const KSettings *pSet, int bNew);

/* Where a function writes its text result: with a constant settings
** argument iArg, the statement's buffer, after the results before it
** (p from iStart on is this one), else a new string.  Finish with
** kustomer_out_result() (the result, as JSON when bJson) or
** kustomer_out_discard() (for a result set otherwise). */
typedef struct KOut KOut;
struct KOut {
  sqlite3_str *p;
  int iStart;
  void *pAux;               /* the statement's, or NULL */
};
void kustomer_out_begin(sqlite3_context *ctx, int iArg, KOut *pOut);
void kustomer_out_result(sqlite3_context *ctx, KOut *pOut, int bJson);
void kustomer_out_discard(KOut *pOut);

/* Table-valued functions: xBestIndex for the nArg (at most
** KUSTOMER_TVF_MAX_ARGS) HIDDEN argument columns from iFirstArg, the first
** nRequired of them required (azArg names them for the error).  Equality
** constraints on them become xFilter's arguments in column order; idxNum
** has bit i set when argument i+1 is there.  rCost is a scan's cost: a
** dear one (requests) is run once. */
#define KUSTOMER_TVF_MAX_ARGS 4
int kustomer_tvf_best_index(sqlite3_vtab *pVtab, sqlite3_index_info *pInfo,
                            int iFirstArg, int nArg, int nRequired,
                            const char *zFunc, const char *const *azArg,
                            double rCost);
/* xFilter's arguments back in column order: apArg[i] is argument i+1, or
** NULL when not given. */
void kustomer_tvf_args(int idxNum, int argc, sqlite3_value **argv, int nArg,
                       sqlite3_value **apArg);
int kustomer_tvf_disconnect(sqlite3_vtab *pVtab);
/* xConnect of a pure table-valued function: declares the schema and makes
** it innocuous (usable in views and triggers).  The vtab is a KTvf. */
typedef struct KTvf KTvf;
struct KTvf {
  sqlite3_vtab base;
  sqlite3 *db;              /* for kustomer_json_text() */
};
int kustomer_tvf_connect_pure(sqlite3 *db, const char *zSchema,
                              sqlite3_vtab **ppVtab);
/* Set a vtab's error message (from sqlite3_mprintf; takes ownership). */
int kustomer_vtab_error(sqlite3_vtab *pVtab, char *zMsg);
/* kustomer_settings_value() for a table-valued function: the error goes
** to the vtab. */
int kustomer_vtab_settings(sqlite3_vtab *pVtab, const char *zFunc, int iArg,
                           sqlite3_value *pVal, KSettings **ppSet);

/* Virtual table arguments "key=value", in the manner of csv.c: a table of
** the keys, each a field of a struct at iOff.  A value may be quoted
** ('...' or "...", doubled quotes inside).  Unknown and repeated keys and
** values out of range are errors naming the key. */
#define KARG_TEXT 0         /* char*, from sqlite3_malloc */
#define KARG_REAL 1         /* double */
#define KARG_INT  2         /* int */
#define KARG_BOOL 3         /* int, 0 or 1 */
typedef struct KArgSpec KArgSpec;
struct KArgSpec {
  const char *zKey;         /* NULL ends the table */
  int eType;                /* KARG_* */
  size_t iOff;              /* offsetof() the field */
  double rDefault;
  double rMin, rMax;        /* range of a number */
  int bMinOpen;             /* rMin itself is out of range */
  const char *zRange;       /* "must be between ..." (NULL: unchecked) */
};
void kustomer_args_defaults(const KArgSpec *aSpec, void *pStruct);
void kustomer_args_free(const KArgSpec *aSpec, void *pStruct);
/* Parse argv[3..argc-1] of xCreate into pStruct (defaults first).
** SQLITE_ERROR with *pzErr (no prefix), SQLITE_NOMEM, SQLITE_OK. */
int kustomer_args_parse(const KArgSpec *aSpec, int argc,
                        const char *const *argv, void *pStruct, char **pzErr);
/* The range check alone (after loading from storage); an error or NULL. */
char *kustomer_args_check(const KArgSpec *aSpec, const void *pStruct);
/* Set the field named zKey from a stored value (unknown keys ignored). */
int kustomer_args_load(const KArgSpec *aSpec, void *pStruct,
                       const char *zKey, sqlite3_value *pVal);
/* Bind the field of a to parameter iParam of pStmt. */
void kustomer_args_bind(const KArgSpec *a, const void *pStruct,
                        sqlite3_stmt *pStmt, int iParam);

/* ---- session.c: times ---------------------------------------------------- */

/* ISO-8601 text (what kustomer_session() reads) as epoch milliseconds;
** 0 when it is not a valid date-time. */
int kustomer_iso_ms(const char *z, int n, sqlite3_int64 *pMs);

/* ======== Network ======================================================== */

/* ---- http.c: the HTTP transport (the only user of libcurl) -------------- */

typedef struct KHttp KHttp;

/* A transport failure, named as the reference's network layer names it. */
#define KNET_REFUSED     1   /* ECONNREFUSED */
#define KNET_RESET       2   /* ECONNRESET: connection dropped */
#define KNET_TIMEDOUT    3   /* ETIMEDOUT */
#define KNET_DNS         4   /* ENOTFOUND */
#define KNET_PIPE        5   /* EPIPE */
#define KNET_OTHER       6
#define KNET_REFUSED_URL 7   /* not sent: the URL was refused */

typedef struct KHttpReq KHttpReq;
struct KHttpReq {
  const char *zMethod;      /* GET, POST, PUT, ... */
  const char *zUrl;
  const char *zAuth;        /* Authorization value, or NULL */
  const char *zBody;        /* NULL: no body */
  int nBody;
  long timeoutMs;           /* <=0: KUSTOMER_TIMEOUT_MS */
  /* Called each time libcurl is about to send the request: iAttempt 0
  ** when it first goes out (maybe long after the transfer started: a
  ** connection can take a second to come up), then for each time libcurl
  ** sends it again by itself (a kept-alive connection died before any
  ** reply).  Nonzero refuses: the transfer fails, bNotSent for attempt 0,
  ** as a dropped connection after.  NULL: every send goes ahead. */
  int (*xSend)(void*, int iAttempt);
  void *pSendArg;
};

typedef struct KHttpResp KHttpResp;
struct KHttpResp {
  long status;              /* HTTP status; 0 on a transport failure */
  char *zBody;              /* response body (sqlite3_malloc) */
  int nBody;
  char *zHeaders;           /* JSON object of the headers, lower-case names */
  int nHeader;              /* number of headers received */
  int eNet;                 /* KNET_* when no HTTP response came back */
  int nResends;             /* times libcurl sent the request again by
                            ** itself (each also went to the server) */
  int bNotSent;             /* xSend refused it before it went out */
  char *zErr;               /* curl's message for a transport failure */
};

int kustomer_http_new(KHttp **ppOut);
void kustomer_http_ref(KHttp *p);
void kustomer_http_unref(void *p);     /* usable as an xDestroy */

/* SQLITE_OK when the URL may be used, else an error message. */
int kustomer_http_check_url(const char *zUrl, char **pzErr);

/* Perform one request.  SQLITE_OK means *pResp says what happened (an
** HTTP status, or a transport failure in eNet/zErr); SQLITE_NOMEM. */
int kustomer_http_do(KHttp *p, const KHttpReq *pReq, KHttpResp *pResp);
void kustomer_http_resp_clear(KHttpResp *p);

/* Sleep s seconds (nothing when s<=0), resuming after signals: the waits
** between attempts and for rate limits. */
void kustomer_sleep(double s);

/* The seconds a Retry-After header's value z asks for: delay-seconds, or
** an HTTP-date less the time now (0 once past).  -1 when z (or NULL) is
** neither. */
double kustomer_http_retry_after(const char *z);

/* Concurrent transfers (libcurl's multi interface) with kept-alive
** connections, at most nConn at once. */
typedef struct KHttpMulti KHttpMulti;
int kustomer_multi_new(KHttpMulti **ppOut, int nConn);
void kustomer_multi_free(KHttpMulti *p);
int kustomer_multi_running(KHttpMulti *p);

/* Start a transfer named iTag.  SQLITE_OK; SQLITE_DONE when the URL was
** refused (then *pRefused says why, eNet KNET_REFUSED_URL); NOMEM. */
int kustomer_multi_start(KHttpMulti *p, const KHttpReq *pReq,
                         sqlite3_int64 iTag, KHttpResp *pRefused);

/* Wait up to msWait for a transfer to finish.  1: *piTag and *pResp are
** set (clear pResp after use); 0: none finished yet; <0: -SQLITE_NOMEM. */
int kustomer_multi_next(KHttpMulti *p, int msWait, sqlite3_int64 *piTag,
                        KHttpResp *pResp);

/* ---- kapi.c: Kustomer's HTTP conventions, used by every network module -- */

/* Seconds on a monotonic clock: deadlines and waits. */
double kustomer_clock(void);
/* Seconds since 1970 (the wall clock): what other processes read, such as
** request ledgers and x-ratelimit-reset. */
double kustomer_wall(void);

/* The Authorization value "Bearer <key>": settings.apiKey, else the
** variable settings.apiKeyEnv names.  Without either: with bRequired,
** SQLITE_ERROR and *pzErr (no function prefix); else "Bearer undefined",
** as the reference sends.  Free the value with kustomer_api_auth_free(),
** which wipes it. */
int kustomer_api_auth(const KSettings *pSet, int bRequired, char **pzAuth,
                      char **pzErr);
void kustomer_api_auth_free(char *zAuth);

/* A request without a body, with the settings' timeout (NULL: the
** default); set zBody/nBody after for one with a body. */
void kustomer_api_request(KHttpReq *pReq, const char *zMethod,
                          const char *zUrl, const char *zAuth,
                          const KSettings *pSet);

/* zMsg (from sqlite3_mprintf, owned) with every occurrence of the key in
** zAuth replaced by "<redacted>": a server that echoes the request in its
** error body must not put the key into an error or a row. */
char *kustomer_api_redact(char *zMsg, const char *zAuth);

/* Kustomer's message in a response body: errors[0].detail, title or
** message, else a top-level message, else the first nMax bytes of the body
** (cut on a UTF-8 boundary, control characters blanked).  NULL when there
** is nothing to say or on out-of-memory. */
char *kustomer_api_message(const KHttpResp *pResp, int nMax);

/* data.id of a JSON response body, or NULL. */
char *kustomer_api_data_id(const KHttpResp *pResp);

/* What a response means. */
#define KAPI_OK     0   /* 2xx */
#define KAPI_RETRY  1   /* 5xx, 408, a dropped or timed-out connection:
                        ** again after kustomer_api_backoff() */
#define KAPI_WAIT   2   /* 429: again once the rate window allows */
#define KAPI_DOWN   3   /* connection refused, no such host, ...: the
                        ** server is not there (now) */
#define KAPI_AUTH   4   /* 401/403: the key is refused; stop */
#define KAPI_FATAL  5   /* any other status, or the URL was refused */
/* (a request the limiter kept back when it was about to go out, bNotSent,
** is KAPI_WAIT) */
int kustomer_api_class(const KHttpResp *pResp);

/* The wait before attempt nTry+1 (nTry 1-based): base doubled per
** attempt, at most cap, with +-25% jitter from sqlite3_randomness() (never
** rand(), which would reseed the host process's generator). */
double kustomer_api_backoff(int nTry, double base, double cap);

/* The rate-limit headers of a response, each -1 when absent or not
** digits: x-ratelimit-limit, -remaining, -reset (as seconds from now,
** whether sent as epoch seconds or as seconds), Retry-After (seconds or an
** HTTP-date, as seconds from now). */
typedef struct KApiRate KApiRate;
struct KApiRate {
  double limit, remaining, reset, retryAfter;
};
void kustomer_api_rate(const KHttpResp *pResp, KApiRate *pRate);
/* Seconds until the rate limit allows a request: Retry-After, else the
** reset; -1 when neither says. */
double kustomer_api_rate_wait(const KApiRate *pRate);

/*
** The ledger: every request the outbox and the sync start, in one table
** per database file, main.kustomer_requests(t, kind) (wall-clock time;
** kind 'api' or 'search', and a search counts as both), so that the
** organisation's one budget holds across both and across processes; and
** main.kustomer_ratelimit, where a pause a 429 asked for is kept for every
** process.
*/
typedef struct KLedger KLedger;
/* Create the tables if missing (in a write transaction). */
int kustomer_ledger_create(sqlite3 *db);
int kustomer_ledger_open(sqlite3 *db, KLedger **ppOut);
void kustomer_ledger_close(KLedger *p);
int kustomer_ledger_add(KLedger *p, double t, int bSearch);
/* Forget starts before tBefore (they are out of every window). */
int kustomer_ledger_prune(KLedger *p, double tBefore);

/* ---- idmap.c: the file's map of customer ids ---------------------------- */

/* main.kustomer_customers(key, customer_id, source, updated_at): lookup
** keys ('externalId=..', 'email=..') to Kustomer's customer ids, learnt by
** the flush (bulk results, lookups) and the sync (its customer records). */
typedef struct KIdMap KIdMap;
int kustomer_idmap_open(sqlite3 *db, KIdMap **ppOut);
void kustomer_idmap_close(KIdMap *p);
/* After a rollback: the table may have gone with it. */
void kustomer_idmap_reset(KIdMap *p);
/* *pzId: the id (to free), or NULL when the key is unknown. */
int kustomer_idmap_get(KIdMap *p, const char *zKey, char **pzId);
int kustomer_idmap_put(KIdMap *p, const char *zKey, const char *zId,
                       const char *zSource);
/* Forget every key of customer zId. */
int kustomer_idmap_forget(KIdMap *p, const char *zId);
/* zPrefix and pVal as a lookup's path; NULL (no key) unless pVal is
** truthy, or out of memory. */
char *kustomer_idmap_key(const char *zPrefix, const cJSON *pVal);
/* A sync customer record's attributes: externalId and e-mails to zId. */
int kustomer_idmap_record(KIdMap *p, const char *zId, const cJSON *pAttr,
                          int bDeleted);

/*
** The limiter: never more than nAllowed = floor(rate_limit * budget)
** requests (and nSearchAllowed searches) start in any window of
** rate_window seconds, counted in the ledger with everyone else's; none
** while a 429 asks to wait, and none while x-ratelimit-remaining is down
** to the share this caller leaves to others ((1 - budget) of the limit).
** Without a ledger (kustomer_fetch) only the responses are obeyed.
*/
typedef struct KLimiter KLimiter;
struct KLimiter {
  double rateWindow;        /* seconds */
  double tWindow;           /* the window with a margin for the time a
                            ** request takes to reach Kustomer */
  double budget;
  double maxPause;          /* longest pause a response may cause (<=0:
                            ** no cap) */
  int nAllowed;             /* 0: no budget kept, only the headers obeyed */
  int nSearchAllowed;       /* 0: searches not counted apart */
  int bLearn;               /* take the limit from x-ratelimit-limit */
  sqlite3_int64 iLastRow;   /* the ledger row of the last start added */
  double tPause;            /* no request starts before this (wall) */
  int n429;                 /* 429s in a row without a wait in them */
  KLedger *pLedger;         /* the starts, shared; NULL: none kept */
};
int kustomer_limiter_init(KLimiter *p, double rateLimit, double budget,
                          double rateWindow);
void kustomer_limiter_free(KLimiter *p);
/* Count searches apart, at most searchLimit * budget per window. */
void kustomer_limiter_searches(KLimiter *p, double searchLimit);
/* Record a request (a search with bSearch) starting now (its ledger row
** in p->iLastRow). */
int kustomer_limiter_add(KLimiter *p, int bSearch);
/* The request whose start is ledger row iRow (recorded at tStarted) is
** going out now.  Late (its connection took time), its start moves to now
** if the window has room for it there: 0; else 1, not to be sent now. */
int kustomer_limiter_sent(KLimiter *p, sqlite3_int64 iRow, double tStarted,
                          int bSearch);
/* How many requests may start now, nInFlight being out already. */
int kustomer_limiter_available(KLimiter *p, int nInFlight, int bSearch);
/* Seconds until another request (a search) may start (0: now). */
double kustomer_limiter_wait(KLimiter *p, int bSearch);
/* Obey a response's 429 or used-up budget: pause for what Retry-After or
** x-ratelimit-reset asks (a 429 that says nothing: a backoff from 1 s up
** to the window).  Returns the pause it set, 0 for none. */
double kustomer_limiter_observe(KLimiter *p, const KHttpResp *pResp);

/*
** One request with Kustomer's rules: each attempt waits for the limiter
** (never past tDeadline), then xStart (if set: it records the start, or
** says stop); 5xx, 408 and dropped connections (and refused ones with
** bRetryDown) are tried again after the backoff, up to nMaxTries; 429s
** wait without using up an attempt.  Returns SQLITE_OK (then eEnd says
** how it ended, and *pResp holds the last response) or SQLITE_NOMEM.
*/
#define KCALL_OK       0    /* a 2xx */
#define KCALL_STATUS   1    /* another status, after the attempts allowed */
#define KCALL_NET      2    /* a transport failure, the same */
#define KCALL_WAIT     3    /* a 429 asked for more than maxWait */
#define KCALL_DEADLINE 4    /* a 429's wait would pass tDeadline */
#define KCALL_STOPPED  5    /* not sent: the limiter's wait passes
                            ** tDeadline, or xStart said stop */
typedef struct KApiCall KApiCall;
struct KApiCall {
  KHttp *pHttp;
  KLimiter *pLim;           /* may be NULL */
  int bSearch;              /* the request is a search */
  int nMaxTries;
  int bRetryDown;
  double tDeadline;         /* kustomer_clock() */
  double maxWait;
  double backoffBase, backoffCap;
  int (*xStart)(void*);
  void *pStartArg;
  void (*xSleep)(void*, double);  /* given pStartArg; NULL: kustomer_sleep() */
  /* what happened */
  int nTry;                 /* attempts sent */
  int nResend;              /* of those, libcurl's own resends (counted by
                            ** xStart too; refused when the limiter has no
                            ** room) */
  sqlite3_int64 iRow;       /* the ledger row of the attempt out */
  double tStarted;
  int n429;                 /* 429s waited out */
  int eEnd;                 /* KCALL_* */
  double wait;              /* the wait of KCALL_WAIT/DEADLINE/STOPPED */
};
int kustomer_api_call(KApiCall *pCall, const KHttpReq *pReq, KHttpResp *pResp);

/* ---- outbox.c and flush.c: durable delivery ----------------------------- */

/* The arguments of a kustomer_outbox table, as stored in <name>_config. */
typedef struct KOutboxConfig KOutboxConfig;
struct KOutboxConfig {
  char *zSettings;          /* settings JSON (never holds apiKey) */
  double rateLimit;         /* requests allowed per rate window */
  double budget;            /* share of rateLimit this outbox may use */
  int maxAttempts;          /* attempts before a row is failed */
  double rateWindow;        /* seconds; 60 for Kustomer */
  int concurrency;          /* requests in flight at once */
  int progress;             /* draw a progress bar on a terminal */
  int dedupe;               /* one row per messageId */
  char *zIntegrations;      /* 'honor' (NULL) or 'ignore' */
};

/* An outbox's shadow tables and the statements on them, prepared when
** first used (FTS5's fts5StorageGetStmt): outbox.c owns their SQL. */
#define KOB_DUE           0
#define KOB_DUE_BULK      1
#define KOB_SENDING       2
#define KOB_SENT          3
#define KOB_RETRY         4
#define KOB_FAILED        5
#define KOB_ROW           6
#define KOB_TO_UPDATE     7
#define KOB_INSERT        8
#define KOB_DELETE        9
#define KOB_RETRY_FAILED  10
#define KOB_COUNT         11
#define KOB_NEXT_DUE      12
#define KOB_RECOVER       13
#define KOB_BULK_SET      14
#define KOB_BULK_JOBS     15
#define KOB_BULK_ROWS     16
#define KOB_TO_LOOKUP     17
#define KOB_DUE_LOOKUP    18
#define KOB_JOB_WAIT      19
#define KOB_BY_MESSAGE    20
#define KOB_TO_CREATE     21
#define KOB_CONFIG_GET    22
#define KOB_CONFIG_PUT    23
#define KOB_CONFIG_DEL    24
#define KOB_N             25
typedef struct KOutboxStore KOutboxStore;
struct KOutboxStore {
  sqlite3 *db;
  char *zDb;                /* schema holding the tables */
  char *zName;              /* the outbox's name */
  int iVersion;             /* storage version read from <name>_config */
  sqlite3_stmt *aStmt[KOB_N];
};
int kustomer_outbox_store_init(KOutboxStore *p, sqlite3 *db,
                               const char *zDb, const char *zName);
void kustomer_outbox_store_close(KOutboxStore *p);
/* The statement eStmt (KOB_*), reset and its bindings cleared. */
int kustomer_outbox_stmt(KOutboxStore *p, int eStmt, sqlite3_stmt **ppStmt);

/* Read and check an outbox's configuration and its storage version (an
** unknown one is an error). */
int kustomer_outbox_config_read(KOutboxStore *pStore, KOutboxConfig *p,
                                char **pzErr);
void kustomer_outbox_config_clear(KOutboxConfig *p);

/* Bring the tables of an older storage version up to this one's; call
** inside a write transaction. */
int kustomer_outbox_upgrade(KOutboxStore *p, char **pzErr);

/* What the outbox stores for an event: the request envelope (no
** Authorization header), its kind ("create", "update" or "track") and,
** for identify, the customer key ("externalId=<id>", the lookup that finds
** it); or the reason the event cannot be sent (zError).  zCustomerId (may
** be NULL): the customer an identify updates. */
typedef struct KOutboxItem KOutboxItem;
struct KOutboxItem {
  char *zRequest;
  const char *zKind;
  char *zCustomerKey;
  char *zMessageId;         /* the event's messageId (a string), or NULL */
  int eIntegrationOff;      /* kustomer_integration_off() of the event */
  char *zError;
};
int kustomer_outbox_request(const KSettings *pSet, const char *zEvent,
                            int nEvent, const char *zCustomerId,
                            KOutboxItem *pItem);
void kustomer_outbox_item_clear(KOutboxItem *p);

/* ---- sha256.c: SHA-256 (OpenSSL's libcrypto) ----------------------------- */

/* lower(hex(sha256(salt || data))) into zOut (65 bytes).  0, or 1 when
** libcrypto failed (zOut is then ""). */
int kustomer_sha256_hex(const unsigned char *aSalt, size_t nSalt,
                        const void *pData, size_t nData, char *zOut);

/* ---- syncmap.c: the sync's tables ------------------------------------------ */

/* Append snake(name) as tap-kustomer and Fivetran make it
** (airBnBuserIdNum -> air_bn_buser_id_num); other than letters, digits
** and '_', '_'; an empty name, "_". */
void kustomer_snake(sqlite3_str *p, const char *z, int n);

/* Records into the tables of the sync zSync (schema zDb; table names
** with zPrefix).  Every call writes inside the caller's transaction. */
typedef struct KSyncMap KSyncMap;
int kustomer_syncmap_open(sqlite3 *db, const char *zDb, const char *zSync,
                          const char *zPrefix, int bRecord, KSyncMap **ppOut);
void kustomer_syncmap_close(KSyncMap *p);
/* Forget what is known of the tables (after a rollback). */
void kustomer_syncmap_forget(KSyncMap *p);
/* Take the time now as _synced_at of what follows; returns it. */
const char *kustomer_syncmap_now(KSyncMap *p);
/* The message of the last error. */
const char *kustomer_syncmap_errmsg(KSyncMap *p);
/* Create the main table zTable and its child tables if missing (a foreign
** table of one of their names is an error). */
int kustomer_syncmap_table(KSyncMap *p, const char *zTable);
/* Write one record into zTable (and its child tables, those of zParent,
** default zTable; zKlass: a kobject's klass, as klass_name).  *pbDeleted:
** the record says it is deleted. */
int kustomer_syncmap_record(KSyncMap *p, const char *zTable,
                            const char *zParent, const char *zKlass,
                            const cJSON *pRec, int *pbDeleted);
/* hash= and block= of the sync (comma-separated "table.column", or
** "table" for block), applied by kustomer_syncmap_record() to the record
** itself before anything is written; the salt is copied. */
int kustomer_syncmap_privacy(KSyncMap *p, const char *zHash,
                             const char *zBlock, const unsigned char *aSalt,
                             int nSalt);
/* history=: main tables (comma-separated) kept in history mode too, in
** <table>_history (with their link and value child tables'), made when
** the table is. */
int kustomer_syncmap_history(KSyncMap *p, const char *zList);
/* custom='json': custom attributes in one JSON column "custom" rather
** than a custom_<name> column each. */
void kustomer_syncmap_custom_json(KSyncMap *p, int bJson);
/* system_columns='fivetran': tables made from now on also have
** _fivetran_synced, _fivetran_deleted (and in history tables
** _fivetran_start, _fivetran_end, _fivetran_active) as generated columns. */
void kustomer_syncmap_fivetran(KSyncMap *p, int bFivetran);
/* What zTable is: 1 a main table, 2 a child table (*pzParent its
** parent's), 0 none a sync makes. */
int kustomer_syncmap_table_kind(const char *zTable, const char **pzParent);
/* Whether column zCol of zTable is a key (id, updated_at, a relationship,
** a child table's keys, a system column): never hashed or blocked. */
int kustomer_syncmap_is_key(const char *zTable, const char *zCol);
/* Mark deleted the rows of zTable (and their child rows) not synced since
** zSince; *pnSwept of them. */
int kustomer_syncmap_sweep(KSyncMap *p, const char *zTable,
                           const char *zSince, int *pnSwept);
/* Whether zTable holds zId with updated_at zUpdatedAt. */
/* Mark row zId of zTable (when the sync keeps that table) and its child
** rows deleted: an audit log's delete.  *pnMarked: 1 if it was live. */
int kustomer_syncmap_mark_deleted(KSyncMap *p, const char *zTable,
                                  const char *zId, int *pnMarked);
/* Write every stored _record again (the columns and child tables as the
** mapping makes them now), with no request; each row keeps _synced_at and
** a _deleted=1 a sweep or the audit log gave it.  *pnRows written. */
int kustomer_syncmap_rebuild(KSyncMap *p, int *pnRows);
int kustomer_syncmap_stored(KSyncMap *p, const char *zTable, const char *zId,
                            const char *zUpdatedAt);
/* The child tables of a main table (at most nMax); returns how many. */
int kustomer_syncmap_child_tables(const char *zParent, const char **azOut,
                                  int nMax);

/* ---- sync.c and pull.c: Kustomer's records kept as tables --------------- */

/* The streams a sync can keep: a search context, or a list (work
** sessions) or the klasses whose kobjects become streams kobject:<klass>,
** or a reference list read whole every reimport_hours. */
#define KSYNC_SEARCH   0
#define KSYNC_LIST     1
#define KSYNC_KLASSES  2
#define KSYNC_REF      3    /* a reference list: a full pass when due */
#define KSYNC_AUDIT    4    /* the audit log's deletes */
typedef struct KSyncStream KSyncStream;
struct KSyncStream {
  const char *zName;        /* stream and table name */
  int eKind;                /* KSYNC_* */
  const char *zContext;     /* search: queryContext; list: the path */
  int bReference;           /* in the group "reference" (else "core") */
};
extern const KSyncStream kustomer_sync_stream[];   /* ends with zName NULL */

/* The arguments of a kustomer_sync table, as stored in <name>_config. */
typedef struct KSyncConfig KSyncConfig;
struct KSyncConfig {
  char *zSettings;          /* settings JSON (never holds apiKey) */
  char *zStreams;           /* streams='...' as given (NULL: all) */
  char *zExclude;
  char *zStartDate;         /* earliest updatedAt to read (NULL: all) */
  double budget;            /* share of the org's limits */
  double rateLimit;         /* requests per window; 0: learn it */
  double rateWindow;
  double searchLimit;       /* searches per window */
  double lookback;          /* seconds re-read before a cursor */
  int pageSize;             /* search pages */
  int listPageSize;         /* list pages */
  int turnPages;            /* pages a stream reads before the next's turn */
  double reimportHours;     /* reference streams: hours between passes */
  char *zPrefix;            /* table-name prefix */
  char *zHash;              /* hash='table.column,...' */
  char *zBlock;             /* block='table.column,table,...' */
  char *zHistory;           /* history='conversation,...' */
  char *zCustom;            /* custom='columns' (NULL) or 'json' */
  char *zSystem;            /* system_columns='short' (NULL) or 'fivetran' */
  char *zBackfill;          /* backfill='oldest_first' (NULL) or 'recent_first' */
  char *zSalt;              /* the hash salt made at CREATE (hex), or NULL */
  int bRecord;              /* keep _record */
  int progress;
  unsigned mStreams;        /* derived: bit i for kustomer_sync_stream[i] */
};
/* Read and check a sync's configuration (zDb.zName_config). */
int kustomer_sync_config_read(sqlite3 *db, const char *zDb, const char *zName,
                              KSyncConfig *p, char **pzErr);
void kustomer_sync_config_clear(KSyncConfig *p);
/* The stream of a name (kobject:<klass> is "kobject"), or -1. */
int kustomer_sync_stream_find(const char *zName);
/* The phase a search stream starts in: "archive", or with
** backfill='recent_first' "recent" (the last day first). */
const char *kustomer_sync_search_start(const KSyncConfig *p);
/* Whether block= names table zTable (without the prefix) whole. */
int kustomer_sync_blocked(const KSyncConfig *p, const char *zTable);
/* Give the sync's custom=, history=, block= and (bHash) hash= to a map,
** with the salt (from the variable settings.hashSaltEnv names, else the
** one made at CREATE).  SQLITE_ERROR with *pzErr (no prefix) when the
** salt is missing. */
int kustomer_sync_map_setup(const KSyncConfig *p, KSyncMap *pMap,
                            int bHash, char **pzErr);

/* ---- registration (one function per module, called from the entry) ----- */
int kustomer_register_functions(sqlite3 *db);
int kustomer_register_meta_each(sqlite3 *db);
int kustomer_register_check(sqlite3 *db);
int kustomer_register_session(sqlite3 *db);
int kustomer_register_network(sqlite3 *db);
int kustomer_register_outbox(sqlite3 *db);
int kustomer_register_flush(sqlite3 *db);
int kustomer_register_fetch(sqlite3 *db);
int kustomer_register_sync(sqlite3 *db);
int kustomer_register_pull(sqlite3 *db);
int kustomer_register_events(sqlite3 *db);

#endif /* KUSTOMER_H */
