#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H
typedef struct sqlite3 sqlite3;
/* An in-memory database with the extension loaded (aborts on failure). */
sqlite3 *fuzz_open_db(void);
extern sqlite3 *fuzz_db;
#endif
