/*
 * dict_static - the static: table: every key has the same value.
 *
 *   static:value
 *   static:{ value with spaces }
 */
#include <string.h>
#include <sys/stat.h>

#include "mail/dict.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

/* dict_static_open - the value is the table name, braces removed */
static void *dict_static_open(DICT *d, int mode, struct stat *st, VSTR *why)
{
    const char *err;
    char *value;

    (void)mode;
    memset(st, 0, sizeof(*st));
    if (d->name[0] == '{') {
        if ((value = dict_unbrace(d->name, &err)) == NULL) {
            vstr_sprintf(why, "bad static:name syntax: \"static:%s\": %s", d->name, err);
            return NULL;
        }
    } else {
        value = mystrdup(d->name);
    }
    /* An empty result would read as "found, nothing": refuse it up front. */
    if (*value == 0) {
        myfree(value);
        vstr_sprintf(why, "bad static:name syntax: \"static:%s\": empty value", d->name);
        return NULL;
    }
    return value;
}

static const char *dict_static_lookup(DICT *d, const char *key)
{
    (void)key;
    return d->state;
}

static void dict_static_free(DICT *d, void *state)
{
    (void)d;
    myfree(state);
}

const DICT_TYPE dict_static_type = {
    .type = "static",
    .flags = DICT_FLAG_FIXED,
    .suffix = NULL,
    .open = dict_static_open,
    .lookup = dict_static_lookup,
    .free = dict_static_free,
};
