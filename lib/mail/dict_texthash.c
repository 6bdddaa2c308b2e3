/*
 * dict_texthash - the texthash: table: postmap's source format read into
 * memory, no .db file needed.
 *
 *   key whitespace value      (continuation lines start with white space)
 *
 * Lines without a value are skipped with a warning, as postmap does; a
 * duplicate key keeps the first value (DICT_FLAG_DUP_REPLACE: the last).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "mail/dict.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"
#include "util/vstr.h"

typedef struct DICT_THASH {
    DICT_MEM *mem;
    size_t cursor;
} DICT_THASH;

static void *dict_texthash_open(DICT *d, int mode, struct stat *st, VSTR *why)
{
    FILE *fp;
    DICT_READER *rd;
    const char *line;
    int lineno;
    int rc;

    (void)mode;
    if ((fp = dict_text_source(d->name, st, why)) == NULL)
        return NULL;
    DICT_MEM *mem = dict_mem_new();
    VSTR *buf = vstr_alloc(256);

    rd = dict_reader_new(fp, d->name);
    while ((rc = dict_reader_next(rd, &line, &lineno)) > 0) {
        char *key;
        char *value;
        const char *err;

        vstr_cpy(buf, line);
        if (dict_split_kv(vstr_str(buf), &key, &value, &err) < 0) {
            msg_warn("%s, line %d: %s -- ignoring this line", d->name, lineno, err);
            d->warnings++;
            continue;
        }
        if (key[strlen(key) - 1] == ':')
            msg_warn("%s, line %d: record is in \"key: value\" format; is this an alias file?",
                     d->name, lineno);
        if (d->flags & DICT_FLAG_FOLD_FIX)
            lowercase(key);
        if (dict_mem_put(mem, key, value, d->flags & DICT_FLAG_DUP_REPLACE) == 1 &&
            (d->flags & (DICT_FLAG_DUP_IGNORE | DICT_FLAG_DUP_REPLACE)) == 0) {
            msg_warn("%s, line %d: duplicate entry: \"%s\"", d->name, lineno, key);
            d->warnings++;
        }
    }
    int saved = errno;

    d->warnings += dict_reader_warnings(rd);
    dict_reader_free(rd);
    vstr_free(buf);
    fclose(fp);
    if (rc < 0) {
        vstr_sprintf(why, "read %s: %s", d->name, strerror(saved));
        dict_mem_free(mem);
        return NULL;
    }
    DICT_THASH *th = mycalloc(1, sizeof(*th));

    th->mem = mem;
    return th;
}

static const char *dict_texthash_lookup(DICT *d, const char *key)
{
    DICT_THASH *th = d->state;

    return dict_mem_get(th->mem, key);
}

static int dict_texthash_seq(DICT *d, int how, const char **key, const char **value)
{
    DICT_THASH *th = d->state;

    if (how == DICT_SEQ_FIRST)
        th->cursor = 0;
    if (dict_mem_entry(th->mem, th->cursor, key, value) < 0)
        return 1;
    th->cursor++;
    return 0;
}

static void dict_texthash_free(DICT *d, void *state)
{
    DICT_THASH *th = state;

    (void)d;
    dict_mem_free(th->mem);
    myfree(th);
}

const DICT_TYPE dict_texthash_type = {
    .type = "texthash",
    .flags = DICT_FLAG_FIXED,
    .suffix = "",
    .open = dict_texthash_open,
    .lookup = dict_texthash_lookup,
    .seq = dict_texthash_seq,
    .free = dict_texthash_free,
};
