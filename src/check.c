/*
** kustomer_check(event [, settings]): one row per reason Kustomer would
** reject or misread an event.  No rows means the event is clean.
**
**   SELECT rule, count(*) FROM events, kustomer_check(events.payload)
**   GROUP BY rule;
**
** Columns: path (a JSON path into the event), rule, severity ('error':
** Kustomer rejects it; 'warning': accepted but misread or lost), message.
** With advancedTransform in the settings, the transformed payload is
** checked, so the rows show what is left after RudderStack's fixes.
*/
#include <math.h>
#include <string.h>
#include "kustomer.h"
SQLITE_EXTENSION_INIT3

/* ---- Rows --------------------------------------------------------------- */

typedef struct CheckRow CheckRow;
struct CheckRow {
  const char *zPath;        /* the path, or with zKey its parent's */
  const char *zKey;         /* a member of zPath, in the cursor's tree */
  const char *zRule;
  const char *zSeverity;
  const char *zMessage;
  char bOwnPath;            /* zPath is allocated (else static text) */
  char bOwnMessage;         /* the same for zMessage */
};

/*
** The rows of one event.  Most findings are of a property: their path is
** made from the parent's static path and the key, which stays in the tree
** (kept until the next event), only when the column is read, and their
** message is static text.  So a count of findings allocates nothing per
** row; the array of rows is kept from event to event.
*/
typedef struct CheckCursor CheckCursor;
struct CheckCursor {
  sqlite3_vtab_cursor base;
  int nRow, nAlloc;
  int iRow;
  CheckRow *aRow;
  int rc;                   /* first allocation failure while adding rows */
  cJSON *pDoc;              /* the event's tree, which row keys point into */
  KJsonRoom room;           /* lent to its parse */
  KSettings *pSet;          /* the last call's settings, parsed once for */
  char *zSet;               /* ... this text (NULL: no settings argument) */
  int nSet;
};

static void check_reset(CheckCursor *pCur){
  int i;
  for(i=0; i<pCur->nRow; i++){
    if( pCur->aRow[i].bOwnPath ) sqlite3_free((char*)pCur->aRow[i].zPath);
    if( pCur->aRow[i].bOwnMessage ){
      sqlite3_free((char*)pCur->aRow[i].zMessage);
    }
  }
  kustomer_json_delete(pCur->pDoc);
  pCur->pDoc = 0;
  pCur->nRow = 0;
  pCur->iRow = 0;
  pCur->rc = SQLITE_OK;
}

/* Add a row.  bOwnPath, bOwn: zPath, zMessage come from sqlite3_mprintf
** (owned; NULL is out of memory), else they are static text. */
static void check_add_row(CheckCursor *pCur, const char *zPath, int bOwnPath,
                          const char *zKey, const char *zRule,
                          const char *zSeverity, const char *zMessage,
                          int bOwn){
  CheckRow *pRow;
  if( pCur->rc==SQLITE_OK && (zPath==0 || zMessage==0) ){
    pCur->rc = SQLITE_NOMEM;
  }
  if( pCur->rc==SQLITE_OK && pCur->nRow==pCur->nAlloc ){
    int nNew = pCur->nAlloc ? pCur->nAlloc*2 : 16;
    CheckRow *aNew = sqlite3_realloc64(pCur->aRow, sizeof(CheckRow)*nNew);
    if( aNew==0 ){
      pCur->rc = SQLITE_NOMEM;
    }else{
      pCur->aRow = aNew;
      pCur->nAlloc = nNew;
    }
  }
  if( pCur->rc!=SQLITE_OK ){
    if( bOwnPath ) sqlite3_free((char*)zPath);
    if( bOwn ) sqlite3_free((char*)zMessage);
    return;
  }
  pRow = &pCur->aRow[pCur->nRow++];
  pRow->zPath = zPath;
  pRow->zKey = zKey;
  pRow->zRule = zRule;
  pRow->zSeverity = zSeverity;
  pRow->zMessage = zMessage;
  pRow->bOwnPath = (char)bOwnPath;
  pRow->bOwnMessage = (char)bOwn;
}

/* A row whose path and message were built for it. */
static void check_add(CheckCursor *pCur, char *zPath, const char *zRule,
                      const char *zSeverity, char *zMessage){
  check_add_row(pCur, zPath, 1, 0, zRule, zSeverity, zMessage, 1);
}

/* A row at a static path, with a message built for it. */
static void check_add_at(CheckCursor *pCur, const char *zPath,
                         const char *zRule, const char *zSeverity,
                         char *zMessage){
  check_add_row(pCur, zPath, 0, 0, zRule, zSeverity, zMessage, 1);
}

/* The JSON path of a member, quoting keys that are not plain names as
** SQLite's json_each() does. */
static char *member_path(const char *zParent, const char *zKey){
  const char *z = zKey;
  int bPlain = (*z!=0 && !(*z>='0' && *z<='9'));
  for(; *z && bPlain; z++){
    char c = *z;
    bPlain = (c>='a' && c<='z') || (c>='A' && c<='Z') || (c>='0' && c<='9')
          || c=='_';
  }
  if( bPlain ) return sqlite3_mprintf("%s.%s", zParent, zKey);
  {
    sqlite3_str *p = sqlite3_str_new(0);
    sqlite3_str_appendf(p, "%s.", zParent);
    kustomer_json_string(p, zKey, strlen(zKey));
    return sqlite3_str_finish(p);
  }
}

/* ---- Identify: the customer body against Kustomer's schema ------------ */

/* One planned key's value being checked, and where its trait is. */
typedef struct IdCheck IdCheck;
struct IdCheck {
  CheckCursor *pCur;
  const KIdField *pF;
};

/* "the string \"x\"", "the number 5", "an object", ... */
static char *describe(const cJSON *p){
  sqlite3_str *pStr;
  if( cJSON_IsObject(p) ) return sqlite3_mprintf("an object");
  if( cJSON_IsArray(p) ) return sqlite3_mprintf("an array");
  pStr = sqlite3_str_new(0);
  if( cJSON_IsString(p) ){
    sqlite3_str_appendall(pStr, "the string ");
    if( strlen(p->valuestring)>40 ){
      size_t n = 40;
      while( (p->valuestring[n] & 0xC0)==0x80 ) n--;  /* whole characters */
      sqlite3_str_appendall(pStr, "starting ");
      kustomer_json_string(pStr, p->valuestring, n);
    }else{
      kustomer_json_value(pStr, p);
    }
  }else{
    if( cJSON_IsNumber(p) ) sqlite3_str_appendall(pStr, "the number ");
    kustomer_json_value(pStr, p);
  }
  return sqlite3_str_finish(pStr);
}

/* A row for the planned key: zSub is where in the sent value (".x[0]"),
** which is where in the event too when the value is copied as it is. */
static void id_problem(IdCheck *pC, const char *zSub, const char *zRule,
                       const char *zWhat, const char *zExpect,
                       const cJSON *pGot){
  const KIdField *pF = pC->pF;
  char *zGot = pGot ? describe(pGot) : sqlite3_mprintf("nothing");
  /* A value built from a trait (emails from email, ...) has no zSub in
  ** the event: the row points at the trait. */
  const char *zTail = pF->eForm==KID_COPY ? zSub : "";
  check_add(pC->pCur, sqlite3_mprintf("$.%s%s", pF->zPath, zTail), zRule,
            "error", zGot==0 ? 0 :
            sqlite3_mprintf("Kustomer rejects the customer: %s%s must be "
                            "%s, not %s", pF->zKey, zWhat, zExpect, zGot));
  sqlite3_free(zGot);
}

static int is_num(const cJSON *p){ return cJSON_IsNumber(p); }

/* Python's str.isspace() for the character at z; its length or 0. */
static int py_space(const unsigned char *z){
  if( *z==' ' || (*z>=0x09 && *z<=0x0d) || (*z>=0x1c && *z<=0x1f) ) return 1;
  if( z[0]==0xC2 && (z[1]==0x85 || z[1]==0xA0) ) return 2;
  if( z[0]==0xE1 && z[1]==0x9A && z[2]==0x80 ) return 3;
  if( z[0]==0xE2 && z[1]==0x80 && (z[2]<=0x8A || z[2]==0xA8 || z[2]==0xA9
                                   || z[2]==0xAF) ) return 3;
  if( z[0]==0xE2 && z[1]==0x81 && z[2]==0x9F ) return 3;
  if( z[0]==0xE3 && z[1]==0x80 && z[2]==0x80 ) return 3;
  return 0;
}

/* scheme ":" and no whitespace after */
static int is_uri(const char *zIn){
  const unsigned char *z = (const unsigned char*)zIn;
  int i = 0;
  if( !((z[0]>='a' && z[0]<='z') || (z[0]>='A' && z[0]<='Z')) ) return 0;
  for(i=1; (z[i]>='a' && z[i]<='z') || (z[i]>='A' && z[i]<='Z')
           || (z[i]>='0' && z[i]<='9') || z[i]=='+' || z[i]=='.' || z[i]=='-';
      i++){}
  if( z[i]!=':' || z[i+1]==0 ) return 0;
  for(i++; z[i]; i++){
    if( py_space(&z[i]) ) return 0;
  }
  return 1;
}

static int utf8_chars(const char *z){
  int n = 0;
  for(; *z; z++) n += ((*z & 0xC0)!=0x80);
  return n;
}

static int in_list(const char *z, const char *const *az){
  for(; *az; az++){
    if( strcmp(z, *az)==0 ) return 1;
  }
  return 0;
}

static const char *const azEmailType[] = { "home", "work", "other", 0 };
static const char *const azPhoneType[] = { "mobile", "home", "work", "fax",
                                           "other", 0 };
static const char *const azMobile[] = { "mobile", 0 };
static const char *const azUrlType[] = { "website", "blog", "other", 0 };
static const char *const azSocialType[] = { "twitter", "facebook",
                                            "instagram", "linkedin",
                                            "pinterest", 0 };

/* The lists of objects of the customer body: the members each item
** needs as strings, and the values its type may take. */
static const struct ItemSpec {
  const char *zKey;
  const char *azNeed[3];
  const char *const *azType;
  const char *zTypes;
} aItemSpec[] = {
  { "emails", { "email" }, azEmailType, "home, work or other" },
  { "phones", { "phone" }, azPhoneType, "mobile, home, work, fax or other" },
  { "whatsapps", { "phone" }, azMobile, "mobile" },
  { "urls", { "url" }, azUrlType, "website, blog or other" },
  { "socials", { "type", "username" }, azSocialType,
    "twitter, facebook, instagram, linkedin or pinterest" },
  { "locations", { 0 }, azEmailType, "home, work or other" },
  { "facebookIds", { 0 }, 0, 0 },
  { "instagramIds", { 0 }, 0, 0 },
};

static void check_items(IdCheck *pC, const struct ItemSpec *pS,
                        const cJSON *pV){
  const cJSON *pI;
  int i, j;
  if( cJSON_IsNull(pV) ) return;
  if( !cJSON_IsArray(pV) ){
    id_problem(pC, "", "item_invalid", "", "an array of objects", pV);
    return;
  }
  for(pI=pV->child, i=0; pI; pI=pI->next, i++){
    char zSub[40];
    const cJSON *pT;
    sqlite3_snprintf(sizeof(zSub), zSub, "[%d]", i);
    if( !cJSON_IsObject(pI) ){
      id_problem(pC, zSub, "item_invalid", zSub, "an object", pI);
      continue;
    }
    for(j=0; j<3 && pS->azNeed[j]; j++){
      const cJSON *pN = kustomer_json_member(pI, pS->azNeed[j]);
      char zSub2[80];
      sqlite3_snprintf(sizeof(zSub2), zSub2, "%s.%s", zSub, pS->azNeed[j]);
      if( !kustomer_acceptable(pN) ){
        /* an absent member: the row points at its item */
        id_problem(pC, pN ? zSub2 : zSub, "item_invalid", zSub2,
                   "given (it is required)", pN);
      }else if( !cJSON_IsString(pN) ){
        id_problem(pC, zSub2, "item_invalid", zSub2, "a string", pN);
      }
    }
    pT = kustomer_json_member(pI, "type");
    if( pS->azType && pT && !cJSON_IsNull(pT)
     && !(cJSON_IsString(pT) && in_list(pT->valuestring, pS->azType))
     && (pS->azNeed[0]==0 || strcmp(pS->azNeed[0], "type")!=0
         || (cJSON_IsString(pT) && pT->valuestring[0])) ){
      char zSub2[80];
      sqlite3_snprintf(sizeof(zSub2), zSub2, "%s.type", zSub);
      id_problem(pC, zSub2, "item_type_invalid", zSub2, pS->zTypes, pT);
    }
    pT = kustomer_json_member(pI, "verified");
    if( pT && !cJSON_IsNull(pT) && !cJSON_IsBool(pT) ){
      char zSub2[80];
      sqlite3_snprintf(sizeof(zSub2), zSub2, "%s.verified", zSub);
      id_problem(pC, zSub2, "item_invalid", zSub2, "true or false", pT);
    }
  }
}

/* Custom attributes: a suffix gives each one's type. */
static void check_custom(IdCheck *pC, const cJSON *pV){
  static const char *const azSuffix[] = { "Str", "Txt", "Num", "At", "Bool",
                                          "Url", "Id", 0 };
  const cJSON *pA;
  if( cJSON_IsNull(pV) ) return;
  if( !cJSON_IsObject(pV) ){
    id_problem(pC, "", "custom_invalid", "", "an object of custom attributes",
               pV);
    return;
  }
  for(pA=pV->child; pA; pA=pA->next){
    char *zSub = member_path("", pA->string);
    const char *zExpect = 0;
    size_t nKey = strlen(pA->string);
    int i;
    if( zSub==0 ){
      pC->pCur->rc = SQLITE_NOMEM;
      return;
    }
    for(i=0; azSuffix[i]; i++){
      size_t n = strlen(azSuffix[i]);
      if( nKey>n && strcmp(pA->string+nKey-n, azSuffix[i])==0 ) break;
    }
    if( azSuffix[i]==0 ){
      check_add(pC->pCur, sqlite3_mprintf("$.%s%s", pC->pF->zPath, zSub),
                "custom_invalid", "error",
                sqlite3_mprintf("Kustomer rejects the customer: custom "
                "attribute %Q has no type suffix (Str, Txt, Num, At, Bool, "
                "Url or Id)", pA->string));
      sqlite3_free(zSub);
      continue;
    }
    if( !cJSON_IsNull(pA) ){
      switch( i ){
        case 0: case 1:
          if( !cJSON_IsString(pA) ) zExpect = "a string";
          else if( utf8_chars(pA->valuestring)>1024 ){
            zExpect = "at most 1024 characters";
          }
          break;
        case 2: if( !is_num(pA) ) zExpect = "a number"; break;
        case 3:
          if( !cJSON_IsString(pA) || !kustomer_is_calendar_date(
                   pA->valuestring, strlen(pA->valuestring)) ){
            zExpect = "an ISO 8601 date-time string";
          }
          break;
        case 4: if( !cJSON_IsBool(pA) ) zExpect = "true or false"; break;
        case 5:
          if( !cJSON_IsString(pA) || !is_uri(pA->valuestring) ){
            zExpect = "a URI";
          }
          break;
        default:
          if( !cJSON_IsString(pA) || pA->valuestring[0]==0 ){
            zExpect = "an object id string";
          }
          break;
      }
    }
    if( zExpect ) id_problem(pC, zSub, "custom_invalid", zSub, zExpect, pA);
    sqlite3_free(zSub);
  }
}

/* One key of the customer body, as Kustomer's create schema takes it
** (kustomer-api.md 3). */
static void check_customer_key(IdCheck *pC, const char *zKey,
                               const cJSON *pV){
  static const char *const azString[] = { "name", "company", "externalId",
      "username", "avatarUrl", "locale", "timeZone", "defaultLang", 0 };
  static const char *const azDate[] = { "signedUpAt", "lastActivityAt",
      "lastCustomerActivityAt", "lastSeenAt", "birthdayAt", "importedAt",
      "createdAt", 0 };
  size_t i;
  if( in_list(zKey, azString) ){
    if( !cJSON_IsNull(pV) && !cJSON_IsString(pV) ){
      id_problem(pC, "", "string_expected", "", "a string", pV);
    }
  }else if( in_list(zKey, azDate) ){
    if( !cJSON_IsNull(pV) && !(cJSON_IsString(pV)
         && kustomer_is_calendar_date(pV->valuestring,
                                      strlen(pV->valuestring))) ){
      id_problem(pC, "", "date_invalid", "", "an ISO 8601 date-time string "
                 "(2024-05-01T12:00:00Z)", pV);
    }
  }else if( strcmp(zKey, "gender")==0 ){
    if( !cJSON_IsNull(pV) && !(cJSON_IsString(pV)
         && (strcmp(pV->valuestring, "m")==0
             || strcmp(pV->valuestring, "f")==0)) ){
      id_problem(pC, "", "gender_invalid", "", "\"m\" or \"f\"", pV);
    }
  }else if( strcmp(zKey, "tags")==0 ){
    const cJSON *pT = 0;
    if( cJSON_IsArray(pV) ){
      for(pT=pV->child; pT && cJSON_IsString(pT); pT=pT->next){}
    }
    if( !cJSON_IsNull(pV) && (!cJSON_IsArray(pV) || pT) ){
      id_problem(pC, "", "tags_invalid", "", "an array of strings", pV);
    }
  }else if( strcmp(zKey, "custom")==0 ){
    check_custom(pC, pV);
  }else if( strcmp(zKey, "sentiment")==0 ){
    const cJSON *pP, *pConf;
    if( cJSON_IsNull(pV) ) return;
    if( !cJSON_IsObject(pV) ){
      id_problem(pC, "", "sentiment_invalid", "", "an object {polarity, "
                 "confidence}", pV);
      return;
    }
    pP = kustomer_json_member(pV, "polarity");
    if( pP && !(cJSON_IsNumber(pP) && (pP->valuedouble==-1.0
          || pP->valuedouble==0.0 || pP->valuedouble==1.0)) ){
      id_problem(pC, ".polarity", "sentiment_invalid", ".polarity",
                 "-1, 0 or 1", pP);
    }
    pConf = kustomer_json_member(pV, "confidence");
    if( pConf && !is_num(pConf) ){
      id_problem(pC, ".confidence", "sentiment_invalid", ".confidence",
                 "a number", pConf);
    }
  }else if( strcmp(zKey, "rev")==0 ){
    if( !cJSON_IsNull(pV) && !is_num(pV) ){
      id_problem(pC, "", "rev_invalid", "", "a number", pV);
    }
  }else{
    for(i=0; i<sizeof(aItemSpec)/sizeof(aItemSpec[0]); i++){
      if( strcmp(zKey, aItemSpec[i].zKey)==0 ){
        check_items(pC, &aItemSpec[i], pV);
        break;
      }
    }
  }
}

static void check_dropped(void *pArg, char *zPath, char *zMsg){
  check_add((CheckCursor*)pArg, zPath, "trait_not_mapped", "warning", zMsg);
}

/* Whether a value copied into the body reads back as the same value: an
** atom but a number JavaScript sends as null (an infinity).  Arrays and
** objects are written and read back (a repeated key is sent once). */
static int sent_as_read(const cJSON *p){
  if( cJSON_IsNumber(p) ) return isfinite(p->valuedouble);
  return cJSON_IsString(p) || cJSON_IsBool(p) || cJSON_IsNull(p);
}

/* Every key of the body identify would send, checked where it is read. */
static void check_identify(CheckCursor *pCur, const cJSON *pEvent,
                           const KSettings *pSet){
  KIdPlan plan;
  KError err = {0, 0};
  int i, rc = kustomer_identify_plan(pEvent, pSet, &plan, &err);
  kustomer_error_clear(&err);
  if( rc ){
    if( rc==SQLITE_NOMEM ) pCur->rc = rc;
    return;       /* no externalId: missing_user_id says so */
  }
  for(i=0; i<plan.nField && pCur->rc==SQLITE_OK; i++){
    IdCheck c;
    sqlite3_str *pStr;
    cJSON *pSent;
    c.pCur = pCur;
    c.pF = &plan.aField[i];
    if( c.pF->eForm==KID_DROPPED ) continue;
    if( c.pF->eForm==KID_COPY && c.pF->zAs==0 && !plan.bNormalize
     && sent_as_read(c.pF->pVal) ){
      check_customer_key(&c, c.pF->zKey, c.pF->pVal);
      continue;
    }
    pStr = sqlite3_str_new(0);
    rc = kustomer_identify_value(pStr, &plan, c.pF);
    if( rc==SQLITE_OK ) rc = sqlite3_str_errcode(pStr);
    pSent = rc ? 0 : kustomer_json_parse(sqlite3_str_value(pStr),
                                         sqlite3_str_length(pStr), 0);
    sqlite3_free(sqlite3_str_finish(pStr));
    if( pSent==0 ){
      pCur->rc = rc ? rc : SQLITE_NOMEM;
      return;
    }
    check_customer_key(&c, c.pF->zKey, pSent);
    cJSON_Delete(pSent);
  }
  if( pCur->rc==SQLITE_OK ){
    rc = kustomer_identify_dropped(pEvent, &plan, check_dropped, pCur);
    if( rc ) pCur->rc = rc;
  }
}

/* The row for an event name (as sent) with whitespace in it, if it has. */
static void check_name_spaces(CheckCursor *pCur, const char *zPath,
                              const char *zName){
  if( kustomer_has_space(zName, strlen(zName)) ){
    check_add_at(pCur, zPath, "event_name_spaces", "error",
                 sqlite3_mprintf("event name %Q contains whitespace, which "
                                 "Kustomer rejects", zName));
  }
}

static void check_event(CheckCursor *pCur, const cJSON *pEvent,
                        const KSettings *pSet){
  KError err = {0, 0};
  int eType = kustomer_event_type(pEvent, &err);
  const cJSON *pProps, *pEvName;
  KMeta meta;
  int i, rc, eOff = kustomer_integration_off(pEvent);

  if( eOff ){
    check_add_at(pCur, "$.integrations", "integration_disabled", "warning",
                 sqlite3_mprintf("%s: RudderStack and Segment never give "
                 "this message to the Kustomer destination",
                 eOff==1 ? "integrations.Kustomer is false"
                         : "integrations.All is false and Kustomer is not "
                           "turned on"));
  }
  if( eType<0 ){
    const char *zRule = "unsupported_type";
    const char *zPath = "$.type";
    if( eType==SQLITE_NOMEM ){ pCur->rc = SQLITE_NOMEM; return; }
    if( !cJSON_IsObject(pEvent) ){
      zRule = "not_an_object";
      zPath = "$";
    }else if( !kustomer_js_truthy(kustomer_json_member(pEvent, "type")) ){
      zRule = "missing_type";
    }
    check_add_at(pCur, zPath, zRule, "error",
                 sqlite3_mprintf("%s", err.zMsg));
    kustomer_error_clear(&err);
    return;
  }
  if( kustomer_user_id(pEvent)==0 ){
    check_add_at(pCur, "$.userId", "missing_user_id", "error",
                 sqlite3_mprintf("no userId or anonymousId: %s",
                     eType==KTYPE_IDENTIFY ?
                     "the customer cannot be created (Missing required value "
                     "from \"userId\")" :
                     "the event is sent with a null externalId"));
  }
  if( eType==KTYPE_IDENTIFY ){
    check_identify(pCur, pEvent, pSet);
    return;
  }

  /* The event name as it would be sent: a track event's string as it is,
  ** without the advanced transformation. */
  pEvName = kustomer_json_member(pEvent, "event");
  if( eType==KTYPE_TRACK && !pSet->bAdvanced && cJSON_IsString(pEvName)
   && kustomer_acceptable(pEvName) ){
    check_name_spaces(pCur, "$.event", pEvName->valuestring);
  }else{
    sqlite3_str *pName = sqlite3_str_new(0);
    const char *zNamePath = eType==KTYPE_TRACK ? "$.event" : "$.name";
    rc = kustomer_event_name_write(pName, pEvent, eType, pSet, &err);
    if( rc==KUSTOMER_EVENT_ERROR ){
      const cJSON *pEv = kustomer_json_member(pEvent, "event");
      check_add_at(pCur, zNamePath,
                   kustomer_acceptable(pEv) ? "event_name_not_string"
                                            : "missing_event_name",
                   "error", sqlite3_mprintf("%s", err.zMsg));
      kustomer_error_clear(&err);
    }else if( rc!=SQLITE_OK || sqlite3_str_errcode(pName) ){
      pCur->rc = SQLITE_NOMEM;
    }else{
      const char *zName = sqlite3_str_value(pName);
      const cJSON *pEv = kustomer_json_member(pEvent, "event");
      if( eType==KTYPE_TRACK && !cJSON_IsString(pEv) ){
        check_add_at(pCur, zNamePath,
                     "event_name_not_string", "error",
                     sqlite3_mprintf("event name is a %s, not a string",
                                     kustomer_json_type(pEv)));
      }else if( zName ){
        check_name_spaces(pCur, zNamePath, zName);
      }
    }
    sqlite3_free(sqlite3_str_finish(pName));
  }

  pProps = kustomer_json_member(pEvent, "properties");
  if( kustomer_acceptable(pProps) && !cJSON_IsObject(pProps) ){
    check_add_at(pCur, "$.properties", "properties_not_object",
                 pSet->bAdvanced ? "warning" : "error",
                 sqlite3_mprintf(pSet->bAdvanced ?
                     "properties is not an object (%s): meta is sent empty" :
                     "properties is not an object (%s): Kustomer's meta must "
                     "be an object", kustomer_json_type(pProps)));
  }
  rc = kustomer_meta_plan(pProps, pSet->bAdvanced,
                          pSet->bIdentityEmail && pSet->bDisableEmail, &meta);
  if( rc!=SQLITE_OK ){
    pCur->rc = rc;
    kustomer_meta_free(&meta);
    return;
  }
  for(i=0; i<meta.nItem; i++){
    const KMetaItem *pItem = &meta.aItem[i];
    const KProblem *pP = kustomer_meta_item_problem(pItem);
    if( pP==0 ) continue;
    if( pItem->eFate==KFATE_SENT && pItem->zKey!=pItem->pSrc->string
     && strcmp(pItem->zKey, pItem->pSrc->string)!=0 ){
      check_add_row(pCur, "$.properties", 0, pItem->pSrc->string,
                    pP->zRule, pP->zSeverity,
                    sqlite3_mprintf("%s (sent as %Q)", pP->zMessage,
                                    pItem->zKey), 1);
    }else{
      check_add_row(pCur, "$.properties", 0, pItem->pSrc->string,
                    pP->zRule, pP->zSeverity, pP->zMessage, 0);
    }
  }
  kustomer_meta_free(&meta);
}

/* ---- The virtual table -------------------------------------------------- */

#define CHECK_PATH     0
#define CHECK_RULE     1
#define CHECK_SEVERITY 2
#define CHECK_MESSAGE  3
#define CHECK_EVENT    4   /* HIDDEN: argument 1 */
#define CHECK_SETTINGS 5   /* HIDDEN: argument 2 */

static int check_connect(sqlite3 *db, void *pAux, int argc,
                         const char *const *argv, sqlite3_vtab **ppVtab,
                         char **pzErr){
  (void)pAux; (void)argc; (void)argv; (void)pzErr;
  return kustomer_tvf_connect_pure(db,
      "CREATE TABLE x(path TEXT, rule TEXT, severity TEXT, message TEXT,"
      " event HIDDEN, settings HIDDEN)", ppVtab);
}

static int check_best_index(sqlite3_vtab *pVtab, sqlite3_index_info *pInfo){
  static const char *const azArg[] = { "event", "settings" };
  return kustomer_tvf_best_index(pVtab, pInfo, CHECK_EVENT, 2, 1,
                                 "kustomer_check", azArg, 10.0);
}

static int check_open(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCur){
  CheckCursor *pCur = sqlite3_malloc(sizeof(*pCur));
  (void)pVtab;
  if( pCur==0 ) return SQLITE_NOMEM;
  memset(pCur, 0, sizeof(*pCur));
  *ppCur = &pCur->base;
  return SQLITE_OK;
}

/* The settings of a call: those of the last call when they are the same
** text (a join calls once per row with one settings string). */
static int check_settings(CheckCursor *pCur, sqlite3_value *pVal,
                          KSettings **ppSet){
  const char *z = 0;
  int n = 0, rc;
  if( pVal && sqlite3_value_type(pVal)==SQLITE_NULL ) pVal = 0;
  if( pVal && sqlite3_value_type(pVal)==SQLITE_TEXT ){
    z = (const char*)sqlite3_value_text(pVal);
    if( z==0 ) return SQLITE_NOMEM;
    n = sqlite3_value_bytes(pVal);
  }
  if( pCur->pSet && ((pVal==0 && pCur->zSet==0)
                  || (z && pCur->zSet && pCur->nSet==n
                      && memcmp(pCur->zSet, z, (size_t)n)==0)) ){
    *ppSet = pCur->pSet;
    return SQLITE_OK;
  }
  rc = kustomer_vtab_settings(pCur->base.pVtab, "kustomer_check", 2, pVal,
                              ppSet);
  if( rc ) return rc;
  kustomer_settings_free(pCur->pSet);
  sqlite3_free(pCur->zSet);
  pCur->pSet = *ppSet;
  pCur->zSet = 0;
  pCur->nSet = 0;
  if( z ){
    pCur->zSet = sqlite3_malloc(n+1);
    if( pCur->zSet==0 ){
      pCur->pSet = 0;       /* not cached: the caller frees it */
      return SQLITE_OK;
    }
    memcpy(pCur->zSet, z, n);
    pCur->nSet = n;
  }
  return SQLITE_OK;
}

static int check_close(sqlite3_vtab_cursor *cur){
  CheckCursor *pCur = (CheckCursor*)cur;
  check_reset(pCur);
  sqlite3_free(pCur->aRow);
  kustomer_settings_free(pCur->pSet);
  sqlite3_free(pCur->zSet);
  sqlite3_free(pCur);
  return SQLITE_OK;
}

static int check_filter(sqlite3_vtab_cursor *cur, int idxNum,
                        const char *idxStr, int argc, sqlite3_value **argv){
  CheckCursor *pCur = (CheckCursor*)cur;
  sqlite3_vtab *pVtab = cur->pVtab;
  KSettings *pSet = 0;
  KJsonText text;
  char *zErr = 0;
  int rc = SQLITE_OK;
  (void)idxNum; (void)idxStr;

  check_reset(pCur);
  if( argc<1 || sqlite3_value_type(argv[0])==SQLITE_NULL ) return SQLITE_OK;
  rc = kustomer_json_text(((KTvf*)pVtab)->db, argv[0], "kustomer_check", 1,
                          "event", &text, &zErr);
  if( rc ) return rc==SQLITE_ERROR ? kustomer_vtab_error(pVtab, zErr) : rc;
  rc = check_settings(pCur, argc>1 ? argv[1] : 0, &pSet);
  if( rc ){
    kustomer_json_text_done(&text);
    return rc;
  }
  pCur->pDoc = kustomer_event_parse_check(text.z, text.n, pSet->bAdvanced,
                                          &pCur->room, &zErr);
  if( pCur->pDoc==0 ){
    if( zErr==0 ){
      rc = SQLITE_NOMEM;
    }else{
      /* A malformed event is a finding, not an SQL error. */
      check_add_at(pCur, "$", "malformed_json", "error",
                   sqlite3_mprintf("Event %s", zErr));
      sqlite3_free(zErr);
    }
  }else{
    check_event(pCur, pCur->pDoc, pSet);
  }
  if( pSet!=pCur->pSet ) kustomer_settings_free(pSet);
  kustomer_json_text_done(&text);
  if( rc==SQLITE_OK ) rc = pCur->rc;
  return rc;
}

static int check_next(sqlite3_vtab_cursor *cur){
  ((CheckCursor*)cur)->iRow++;
  return SQLITE_OK;
}

static int check_eof(sqlite3_vtab_cursor *cur){
  CheckCursor *pCur = (CheckCursor*)cur;
  return pCur->iRow>=pCur->nRow;
}

static int check_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx,
                        int iCol){
  CheckCursor *pCur = (CheckCursor*)cur;
  const CheckRow *pRow = &pCur->aRow[pCur->iRow];
  switch( iCol ){
    case CHECK_PATH:
      if( pRow->zKey ){
        char *z = member_path(pRow->zPath, pRow->zKey);
        if( z==0 ) return SQLITE_NOMEM;
        sqlite3_result_text(ctx, z, -1, sqlite3_free);
      }else{
        sqlite3_result_text(ctx, pRow->zPath, -1,
                            pRow->bOwnPath ? SQLITE_TRANSIENT : SQLITE_STATIC);
      }
      break;
    case CHECK_RULE:
      sqlite3_result_text(ctx, pRow->zRule, -1, SQLITE_STATIC); break;
    case CHECK_SEVERITY:
      sqlite3_result_text(ctx, pRow->zSeverity, -1, SQLITE_STATIC); break;
    case CHECK_MESSAGE:
      sqlite3_result_text(ctx, pRow->zMessage, -1,
                          pRow->bOwnMessage ? SQLITE_TRANSIENT : SQLITE_STATIC);
      break;
    default:
      break;   /* hidden arguments read back as NULL */
  }
  return SQLITE_OK;
}

static int check_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *pRowid){
  *pRowid = ((CheckCursor*)cur)->iRow + 1;
  return SQLITE_OK;
}

static sqlite3_module checkModule = {
  /* eponymous only: no xCreate */
  .xConnect = check_connect,
  .xBestIndex = check_best_index,
  .xDisconnect = kustomer_tvf_disconnect,
  .xOpen = check_open,
  .xClose = check_close,
  .xFilter = check_filter,
  .xNext = check_next,
  .xEof = check_eof,
  .xColumn = check_column,
  .xRowid = check_rowid,
};

int kustomer_register_check(sqlite3 *db){
  return sqlite3_create_module(db, "kustomer_check", &checkModule, 0);
}
