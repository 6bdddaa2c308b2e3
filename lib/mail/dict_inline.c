/*
 * dict_inline - the inline: table, its entries in its name.
 *
 *   inline:{ key=value, key2 = value2, { key3 = value with spaces } }
 *
 * Items are separated by commas or white space; an item in braces may hold
 * white space. A later entry for a key replaces an earlier one. Any syntax
 * error makes the open fail: a table half-understood is worse than none.
 */
#include <ctype.h>
#include <string.h>
#include <sys/stat.h>

#include "mail/dict.h"
#include "util/mymalloc.h"
#include "util/strutil.h"
#include "util/vstr.h"

typedef struct DICT_INLINE {
    DICT_MEM *mem;
    size_t cursor;
} DICT_INLINE;

/* dict_inline_entry - one "key=value" item into the table; NULL or a reason */
static const char *dict_inline_entry(DICT *d, DICT_MEM *mem, char *item)
{
    char *eq = strchr(item, '=');

    if (eq == NULL)
        return "missing '=' after attribute name";
    *eq = 0;
    char *key = trim(item);
    char *value = trim(eq + 1);

    if (*key == 0)
        return "missing attribute name";
    if (*value == 0)
        return "missing attribute value";
    if (d->flags & DICT_FLAG_FOLD_FIX)
        lowercase(key);
    dict_mem_put(mem, key, value, 1);
    return NULL;
}

static void *dict_inline_open(DICT *d, int mode, struct stat *st, VSTR *why)
{
    const char *err = NULL;
    char *body;
    char *cp;
    char *item;
    DICT_MEM *mem;

    (void)mode;
    memset(st, 0, sizeof(*st));
    if ((body = dict_unbrace(d->name, &err)) == NULL) {
        vstr_sprintf(why, "bad syntax: \"inline:%s\": %s; need \"inline:{name=value...}\"", d->name,
                     err);
        return NULL;
    }
    mem = dict_mem_new();
    cp = body;
    while ((item = dict_brace_token(&cp, &err)) != NULL) {
        char *inner = NULL;

        if (*item == '{' && (item = inner = dict_unbrace(item, &err)) == NULL)
            break;
        err = dict_inline_entry(d, mem, item);
        myfree(inner);
        if (err)
            break;
    }
    if (err == NULL && dict_mem_count(mem) == 0)
        err = "empty table";
    myfree(body);
    if (err) {
        vstr_sprintf(why, "bad syntax: \"inline:%s\": %s; need \"inline:{name=value...}\"", d->name,
                     err);
        dict_mem_free(mem);
        return NULL;
    }
    DICT_INLINE *di = mycalloc(1, sizeof(*di));

    di->mem = mem;
    return di;
}

static const char *dict_inline_lookup(DICT *d, const char *key)
{
    DICT_INLINE *di = d->state;

    return dict_mem_get(di->mem, key);
}

static int dict_inline_seq(DICT *d, int how, const char **key, const char **value)
{
    DICT_INLINE *di = d->state;

    if (how == DICT_SEQ_FIRST)
        di->cursor = 0;
    if (dict_mem_entry(di->mem, di->cursor, key, value) < 0)
        return 1;
    di->cursor++;
    return 0;
}

static void dict_inline_free(DICT *d, void *state)
{
    DICT_INLINE *di = state;

    (void)d;
    dict_mem_free(di->mem);
    myfree(di);
}

const DICT_TYPE dict_inline_type = {
    .type = "inline",
    .flags = DICT_FLAG_FIXED,
    .suffix = NULL,
    .open = dict_inline_open,
    .lookup = dict_inline_lookup,
    .seq = dict_inline_seq,
    .free = dict_inline_free,
};
