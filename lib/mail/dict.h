/*
 * dict - lookup tables behind one interface, named "type:name".
 *
 * Types: hash: and btree: (Berkeley DB files NAME.db built by postmap),
 * pcre: (pcre_table(5)), cidr: (cidr_table(5)), inline:{ key=value, ... },
 * static:value, texthash:/path (postmap's source format read into
 * memory) and unix:passwd.byname / unix:group.byname (the C library's user
 * and group databases). dict_open() accepts and ignores a "proxy:" prefix
 * (Postfix's proxymap client): Postern opens the table directly. A table is
 * read-only unless opened with dict_open_type() in a write mode, which only
 * hash: and btree: support.
 *
 * Sharing: dict_open() keeps one instance per (spec, flags) in the process
 * and counts references; dict_close() drops one. Tables that live in a file
 * notice when the file was replaced or changed (checked at most once per
 * DICT_CHECK_INTERVAL seconds, on lookup) and read it again, so a daemon
 * sees a rebuilt table without a restart.
 *
 * Ownership: strings returned by dict_get() and dict_seq() belong to the
 * table and stay valid until the next call on the same table (by anyone in
 * the process: copy what must outlive that).
 *
 * Errors: dict_get() returns NULL both for "not found" and for "the lookup
 * failed"; d->error tells them apart: DICT_ERR_NONE means not found,
 * DICT_ERR_RETRY a temporary failure (answer 4xx, defer), DICT_ERR_CONFIG a
 * table that cannot work as configured.
 *
 * Not thread-safe: one thread per process uses the tables, as in every
 * Postern program.
 */
#ifndef POSTERN_DICT_H
#define POSTERN_DICT_H

#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "util/vstr.h"

#define DICT_ERR_NONE 0      /* no error: the key was not found */
#define DICT_ERR_RETRY (-1)  /* temporary failure: try again later */
#define DICT_ERR_CONFIG (-2) /* the table is broken or cannot do this */

/* Open modes for dict_open_type(). Writes never touch the live file: they
   go to a temporary file that dict_commit() renames over it, so readers see
   the old table or the new one, never a mix. */
#define DICT_MODE_READ 0   /* lookups only */
#define DICT_MODE_CREATE 1 /* start empty; dict_commit() replaces the table */
#define DICT_MODE_UPDATE 2 /* start from a copy of the table (or empty) */

/* Flags given by the caller. */
#define DICT_FLAG_FOLD_FIX (1 << 0)    /* fold keys to lower case (fixed-string tables) */
#define DICT_FLAG_TRY0NULL (1 << 1)    /* db: keys and values without a trailing NUL */
#define DICT_FLAG_TRY1NULL (1 << 2)    /* db: keys and values with a trailing NUL */
#define DICT_FLAG_DUP_WARN (1 << 3)    /* dict_put of a present key: warn, keep the old */
#define DICT_FLAG_DUP_IGNORE (1 << 4)  /* ... keep the old silently */
#define DICT_FLAG_DUP_REPLACE (1 << 5) /* ... replace the old value */
#define DICT_FLAG_SURROGATE                                                                        \
    (1 << 6)                         /* dict_open failure: return a table whose                    \
                                        lookups fail with DICT_ERR_RETRY and which                 \
                                        keeps trying to open the real one */
#define DICT_FLAG_NO_REGSUB (1 << 7) /* pcre: refuse $number in results */
#define DICT_FLAG_NO_RELOAD (1 << 8) /* never re-read a changed file */

/* Flags a table type sets by itself. */
#define DICT_FLAG_FIXED (1 << 16)   /* keys are fixed strings (hash, btree, texthash...) */
#define DICT_FLAG_PATTERN (1 << 17) /* keys are matched by patterns (pcre, cidr) */

/* dict_seq() positions */
#define DICT_SEQ_FIRST 0
#define DICT_SEQ_NEXT 1

#define DICT_CHECK_INTERVAL 1       /* seconds between checks that a file changed */
#define DICT_RETRY_INTERVAL 10      /* seconds between attempts to open a failed table */
#define DICT_LINE_MAX (1024 * 1024) /* longest logical line of a table source */
#define DICT_SPEC_MAX 65536         /* longest "type:name" accepted by dict_open */

typedef struct DICT DICT;
typedef struct DICT_TYPE DICT_TYPE;

struct DICT {
    const char *type;  /* "hash", "pcre", ... */
    char *name;        /* what followed "type:" */
    int flags;         /* DICT_FLAG_* */
    int mode;          /* DICT_MODE_* */
    int error;         /* DICT_ERR_* of the last operation */
    unsigned warnings; /* problems reported (rules skipped) when last read */
    /* The rest belongs to the dict layer and the table type. */
    const DICT_TYPE *kind;
    void *state;      /* the table type's data */
    VSTR *fold_buf;   /* folded key */
    char *watch_path; /* file whose change makes us read the table again */
    dev_t watch_dev;
    ino_t watch_ino;
    struct timespec watch_mtime;
    off_t watch_size;
    time_t watch_checked;
    char *open_error; /* surrogate: why the table is not open */
    time_t retry_at;
    int refcount;
    char *reg_key; /* registry key; NULL when private */
    DICT *reg_next;
};

/* dict_open - shared read-only table by "type:name"; NULL with the reason in
   why (unless DICT_FLAG_SURROGATE). Release with dict_close. why may be NULL
   when the caller does not want the reason. */
DICT *dict_open(const char *spec, int flags, VSTR *why);
/* dict_open_type - private table of a type, in a DICT_MODE_*; NULL with why */
DICT *dict_open_type(const char *type, const char *name, int mode, int flags, VSTR *why);
/* dict_close - drop one reference; a write not committed is discarded */
void dict_close(DICT *d);

/* dict_get - value for key, or NULL (see d->error) */
const char *dict_get(DICT *d, const char *key);
/* dict_put - store; 0 stored, 1 key present and kept (DUP_WARN/IGNORE), -1 error */
int dict_put(DICT *d, const char *key, const char *value);
/* dict_del - remove; 0 removed, 1 not found, -1 error */
int dict_del(DICT *d, const char *key);
/* dict_seq - DICT_SEQ_FIRST then DICT_SEQ_NEXT; 0 entry, 1 end, -1 error */
int dict_seq(DICT *d, int how, const char **key, const char **value);
/* dict_commit - put a written table in place atomically; 0 or -1 with why */
int dict_commit(DICT *d, VSTR *why);

/* dict_type_known - is there a table type by this name */
int dict_type_known(const char *type);
/* dict_type_names - NULL-terminated list of the supported types */
const char *const *dict_type_names(void);
/* dict_spec_split - "type:name" into a new type string (myfree it) and a
   pointer into spec for name; NULL when there is no ':' */
char *dict_spec_split(const char *spec, const char **name);

/* ---- For table types (dict_*.c) ---- */

struct stat;

struct DICT_TYPE {
    const char *type;
    int flags;          /* DICT_FLAG_FIXED or DICT_FLAG_PATTERN */
    const char *suffix; /* the table's file is name + suffix; NULL: no file */
    /* open - new state for d (d->state is not touched); fills *st with the
       opened file's status (st_ino 0 when none); NULL with why */
    void *(*open)(DICT *d, int mode, struct stat *st, VSTR *why);
    const char *(*lookup)(DICT *d, const char *key);
    int (*update)(DICT *d, const char *key, const char *value); /* NULL: read-only */
    int (*del)(DICT *d, const char *key);
    int (*seq)(DICT *d, int how, const char **key, const char **value); /* NULL: none */
    int (*commit)(DICT *d, VSTR *why);
    void (*free)(DICT *d, void *state);
};

extern const DICT_TYPE dict_hash_type;
extern const DICT_TYPE dict_btree_type;
extern const DICT_TYPE dict_pcre_type;
extern const DICT_TYPE dict_cidr_type;
extern const DICT_TYPE dict_inline_type;
extern const DICT_TYPE dict_static_type;
extern const DICT_TYPE dict_texthash_type;
extern const DICT_TYPE dict_unix_type; /* unix:passwd.byname, unix:group.byname */

/* dict_reader - logical lines of a table source: '#' comment lines and
   blank lines are skipped, a line that starts with white space continues
   the one before, trailing white space is removed. */
typedef struct DICT_READER DICT_READER;

DICT_READER *dict_reader_new(FILE *fp, const char *name);
/* dict_reader_next - 1 with the line (owned by the reader) and the number of
   its first physical line; 0 at end; -1 on a read error (errno) */
int dict_reader_next(DICT_READER *r, const char **line, int *lineno);
/* dict_reader_warnings - lines the reader skipped with a warning */
unsigned dict_reader_warnings(const DICT_READER *r);
void dict_reader_free(DICT_READER *r);

/* dict_split_kv - split a source line "key whitespace value" in place (the
   key ends at the first white space outside double quotes); 0, or -1 with a
   static reason */
int dict_split_kv(char *line, char **key, char **value, const char **why);
/* dict_unbrace - "{ text }" to a new string "text" (myfree it); NULL with a
   static reason when the braces do not balance or text follows '}' */
char *dict_unbrace(const char *text, const char **why);
/* dict_brace_token - next item of a "{ a, { b c }, d }" body: separated by
   commas or white space, braces group; NULL at the end. Modifies *cp. */
char *dict_brace_token(char **cp, const char **why);
/* dict_text_source - the table text for file-based types: a FILE for the
   named file, or for "{ {rule}, {rule} }" an in-memory stream of one rule a
   line; *st filled for real files. NULL with why. */
FILE *dict_text_source(const char *name, struct stat *st, VSTR *why);

/* dict_mem - in-memory table (texthash, inline), kept in insertion order */
typedef struct DICT_MEM DICT_MEM;

DICT_MEM *dict_mem_new(void);
void dict_mem_free(DICT_MEM *m);
/* dict_mem_put - 0 stored, 1 key present (value replaced when replace) */
int dict_mem_put(DICT_MEM *m, const char *key, const char *value, int replace);
const char *dict_mem_get(const DICT_MEM *m, const char *key);
size_t dict_mem_count(const DICT_MEM *m);
/* dict_mem_entry - the i-th entry in insertion order; 0, or -1 past the end */
int dict_mem_entry(const DICT_MEM *m, size_t i, const char **key, const char **value);

#endif
