/*
 * dict - the generic lookup table layer: type registry, shared instances,
 * reload of changed files, and the text-source helpers the table types use.
 *
 * A DICT handle stays the same for its whole life; what a table type keeps
 * (d->state) is replaced underneath when the table's file changes. That is
 * how daemons holding a handle see a table rebuilt by postmap. The check is
 * one time() call per lookup and at most one stat() per DICT_CHECK_INTERVAL.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "mail/dict.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"
#include "util/vstr.h"

#define DICT_PROXY_PREFIX "proxy:" /* accepted and ignored, see dict_open_why */

static const DICT_TYPE *const dict_types[] = {
    &dict_hash_type,   &dict_btree_type,  &dict_pcre_type,     &dict_cidr_type,
    &dict_inline_type, &dict_static_type, &dict_texthash_type, &dict_unix_type,
};

#define DICT_NTYPES (sizeof(dict_types) / sizeof(dict_types[0]))

/* Shared instances opened with dict_open(); few per process, so a list. */
static DICT *dict_registry;

/* dict_type_find - table type by name, NULL when unknown */
static const DICT_TYPE *dict_type_find(const char *type)
{
    for (size_t i = 0; i < DICT_NTYPES; i++)
        if (strcmp(dict_types[i]->type, type) == 0)
            return dict_types[i];
    return NULL;
}

int dict_type_known(const char *type)
{
    return dict_type_find(type) != NULL;
}

const char *const *dict_type_names(void)
{
    static const char *names[DICT_NTYPES + 1];

    if (names[0] == NULL)
        for (size_t i = 0; i < DICT_NTYPES; i++)
            names[i] = dict_types[i]->type;
    return names;
}

char *dict_spec_split(const char *spec, const char **name)
{
    const char *colon = strchr(spec, ':');

    if (colon == NULL)
        return NULL;
    *name = colon + 1;
    return mystrndup(spec, (size_t)(colon - spec));
}

/* dict_new - handle without state */
static DICT *dict_new(const DICT_TYPE *kind, const char *name, int mode, int flags)
{
    DICT *d = mycalloc(1, sizeof(*d));

    d->type = kind->type;
    d->name = mystrdup(name);
    d->flags = (flags & ~(DICT_FLAG_FIXED | DICT_FLAG_PATTERN)) | kind->flags;
    d->mode = mode;
    d->kind = kind;
    d->refcount = 1;
    return d;
}

/* dict_watch_set - remember the status of the file the state was read from */
static void dict_watch_set(DICT *d, const struct stat *st)
{
    if (d->mode != DICT_MODE_READ || d->kind->suffix == NULL || st->st_ino == 0)
        return;
    if (d->watch_path == NULL) {
        VSTR *path = vstr_alloc(strlen(d->name) + strlen(d->kind->suffix) + 1);

        vstr_cat(path, d->name);
        vstr_cat(path, d->kind->suffix);
        d->watch_path = vstr_export(path);
    }
    d->watch_dev = st->st_dev;
    d->watch_ino = st->st_ino;
    d->watch_mtime = st->st_mtim;
    d->watch_size = st->st_size;
    d->watch_checked = time(NULL);
}

/* dict_attach - open the table type's state; 0 or -1 with why */
static int dict_attach(DICT *d, VSTR *why)
{
    struct stat st;
    unsigned saved = d->warnings;

    memset(&st, 0, sizeof(st));
    d->warnings = 0;
    void *state = d->kind->open(d, d->mode, &st, why);

    if (state == NULL) {
        d->warnings = saved;
        return -1;
    }
    d->state = state;
    dict_watch_set(d, &st);
    return 0;
}

/* dict_free - release everything of a handle */
static void dict_free(DICT *d)
{
    if (d->state)
        d->kind->free(d, d->state);
    vstr_free(d->fold_buf);
    myfree(d->watch_path);
    myfree(d->open_error);
    myfree(d->reg_key);
    myfree(d->name);
    myfree(d);
}

/* dict_open_type_why - dict_open_type with a reason buffer that exists */
static DICT *dict_open_type_why(const char *type, const char *name, int mode, int flags, VSTR *why)
{
    const DICT_TYPE *kind = dict_type_find(type);

    if (kind == NULL) {
        vstr_sprintf(why, "unsupported dictionary type: %s", type);
        return NULL;
    }
    if (*name == 0) {
        vstr_sprintf(why, "missing table name in \"%s:\"", type);
        return NULL;
    }
    if (mode != DICT_MODE_READ && kind->update == NULL) {
        vstr_sprintf(why, "%s:%s: table type %s is read-only", type, name, type);
        return NULL;
    }
    if (mode != DICT_MODE_READ && mode != DICT_MODE_CREATE && mode != DICT_MODE_UPDATE)
        msg_panic("dict_open_type: bad mode %d", mode);
    DICT *d = dict_new(kind, name, mode, flags);

    if (dict_attach(d, why) < 0) {
        dict_free(d);
        return NULL;
    }
    return d;
}

DICT *dict_open_type(const char *type, const char *name, int mode, int flags, VSTR *why)
{
    if (why != NULL)
        return dict_open_type_why(type, name, mode, flags, why);
    VSTR *own = vstr_alloc(100);
    DICT *d = dict_open_type_why(type, name, mode, flags, own);

    vstr_free(own);
    return d;
}

/* dict_reg_key - registry key: flags and spec */
static char *dict_reg_key(const char *spec, int flags)
{
    VSTR *key = vstr_alloc(strlen(spec) + 16);

    vstr_sprintf(key, "%x:%s", (unsigned)flags, spec);
    return vstr_export(key);
}

/* dict_open_why - dict_open with a reason buffer that exists */
static DICT *dict_open_why(const char *spec, int flags, VSTR *why)
{
    const char *name;
    char *type;
    char *key;
    DICT *d;

    if (strlen(spec) > DICT_SPEC_MAX) {
        vstr_sprintf(why, "table name longer than %d bytes", DICT_SPEC_MAX);
        return NULL;
    }
    /* Postfix's proxy: goes through its proxymap service; Postern has none
       and opens the table directly ("proxy:unix:passwd.byname" in a copied
       main.cf keeps working). */
    while (strncmp(spec, DICT_PROXY_PREFIX, sizeof(DICT_PROXY_PREFIX) - 1) == 0)
        spec += sizeof(DICT_PROXY_PREFIX) - 1;
    if ((type = dict_spec_split(spec, &name)) == NULL) {
        vstr_sprintf(why, "need \"type:name\" instead of \"%s\"", spec);
        return NULL;
    }
    key = dict_reg_key(spec, flags);
    for (d = dict_registry; d; d = d->reg_next) {
        if (strcmp(d->reg_key, key) == 0) {
            d->refcount++;
            myfree(key);
            myfree(type);
            return d;
        }
    }
    const DICT_TYPE *kind = dict_type_find(type);

    if (kind == NULL) {
        vstr_sprintf(why, "unsupported dictionary type: %s", type);
        goto fail;
    }
    if (*name == 0) {
        vstr_sprintf(why, "missing table name in \"%s\"", spec);
        goto fail;
    }
    d = dict_new(kind, name, DICT_MODE_READ, flags);
    if (dict_attach(d, why) < 0) {
        if ((flags & DICT_FLAG_SURROGATE) == 0) {
            dict_free(d);
            goto fail;
        }
        msg_warn("%s:%s is unavailable: %s", d->type, d->name, vstr_str(why));
        d->open_error = mystrdup(vstr_str(why));
        d->retry_at = time(NULL) + DICT_RETRY_INTERVAL;
    }
    d->reg_key = key;
    d->reg_next = dict_registry;
    dict_registry = d;
    myfree(type);
    return d;

fail:
    myfree(key);
    myfree(type);
    return NULL;
}

DICT *dict_open(const char *spec, int flags, VSTR *why)
{
    if (why != NULL)
        return dict_open_why(spec, flags, why);
    VSTR *own = vstr_alloc(100);
    DICT *d = dict_open_why(spec, flags, own);

    vstr_free(own);
    return d;
}

void dict_close(DICT *d)
{
    if (d == NULL)
        return;
    if (--d->refcount > 0)
        return;
    if (d->reg_key) {
        for (DICT **pp = &dict_registry; *pp; pp = &(*pp)->reg_next) {
            if (*pp == d) {
                *pp = d->reg_next;
                break;
            }
        }
    }
    dict_free(d);
}

/* dict_retry_open - a surrogate tries the real table again, now and then */
static void dict_retry_open(DICT *d)
{
    time_t now = time(NULL);

    if (now < d->retry_at)
        return;
    d->retry_at = now + DICT_RETRY_INTERVAL;
    VSTR *why = vstr_alloc(100);

    if (dict_attach(d, why) == 0) {
        msg_info("%s:%s is available again", d->type, d->name);
        myfree(d->open_error);
        d->open_error = NULL;
    } else {
        msg_warn("%s:%s is unavailable: %s", d->type, d->name, vstr_str(why));
        myfree(d->open_error);
        d->open_error = mystrdup(vstr_str(why));
    }
    vstr_free(why);
}

/* dict_check_reload - read the table again when its file changed */
static void dict_check_reload(DICT *d)
{
    struct stat st;
    time_t now;

    if (d->watch_path == NULL || (d->flags & DICT_FLAG_NO_RELOAD))
        return;
    now = time(NULL);
    /* A clock that went backwards must not stop the checks for good. */
    if (now >= d->watch_checked && now - d->watch_checked < DICT_CHECK_INTERVAL)
        return;
    d->watch_checked = now;
    if (stat(d->watch_path, &st) < 0)
        return; /* gone for a moment, or for good: keep serving what we have */
    if (st.st_dev == d->watch_dev && st.st_ino == d->watch_ino && st.st_size == d->watch_size &&
        st.st_mtim.tv_sec == d->watch_mtime.tv_sec && st.st_mtim.tv_nsec == d->watch_mtime.tv_nsec)
        return;

    void *old = d->state;
    VSTR *why = vstr_alloc(100);

    d->state = NULL;
    if (dict_attach(d, why) == 0) {
        d->kind->free(d, old);
        msg_info("%s:%s changed on disk, reloaded", d->type, d->name);
    } else {
        d->state = old;
        /* Do not retry (and log) every second until the file changes again. */
        d->watch_dev = st.st_dev;
        d->watch_ino = st.st_ino;
        d->watch_mtime = st.st_mtim;
        d->watch_size = st.st_size;
        msg_warn("%s:%s changed on disk but cannot be reloaded: %s; keeping the old table", d->type,
                 d->name, vstr_str(why));
    }
    vstr_free(why);
}

/* dict_fold - the key as the table stores it */
static const char *dict_fold(DICT *d, const char *key)
{
    if ((d->flags & (DICT_FLAG_FOLD_FIX | DICT_FLAG_FIXED)) !=
        (DICT_FLAG_FOLD_FIX | DICT_FLAG_FIXED))
        return key;
    if (d->fold_buf == NULL)
        d->fold_buf = vstr_alloc(100);
    vstr_cpy(d->fold_buf, key);
    vstr_lower(d->fold_buf);
    return vstr_str(d->fold_buf);
}

/* dict_ready - is there state to work with (trying a surrogate's table) */
static int dict_ready(DICT *d)
{
    if (d->state == NULL)
        dict_retry_open(d);
    if (d->state == NULL) {
        d->error = DICT_ERR_RETRY;
        return 0;
    }
    return 1;
}

const char *dict_get(DICT *d, const char *key)
{
    d->error = DICT_ERR_NONE;
    if (d->state)
        dict_check_reload(d);
    if (!dict_ready(d))
        return NULL;
    return d->kind->lookup(d, dict_fold(d, key));
}

int dict_put(DICT *d, const char *key, const char *value)
{
    d->error = DICT_ERR_NONE;
    if (d->mode == DICT_MODE_READ) {
        msg_warn("%s:%s: table is not open for writing", d->type, d->name);
        d->error = DICT_ERR_CONFIG;
        return -1;
    }
    key = dict_fold(d, key);
    int r = d->kind->update(d, key, value);

    if (r == 1 && (d->flags & (DICT_FLAG_DUP_IGNORE | DICT_FLAG_DUP_REPLACE)) == 0)
        msg_warn("%s:%s: duplicate entry: \"%s\"", d->type, d->name, key);
    return r;
}

int dict_del(DICT *d, const char *key)
{
    d->error = DICT_ERR_NONE;
    if (d->mode == DICT_MODE_READ) {
        msg_warn("%s:%s: table is not open for writing", d->type, d->name);
        d->error = DICT_ERR_CONFIG;
        return -1;
    }
    return d->kind->del(d, dict_fold(d, key));
}

int dict_seq(DICT *d, int how, const char **key, const char **value)
{
    d->error = DICT_ERR_NONE;
    if (d->kind->seq == NULL) {
        msg_warn("%s:%s: table type %s cannot list its entries", d->type, d->name, d->type);
        d->error = DICT_ERR_CONFIG;
        return -1;
    }
    if (!dict_ready(d))
        return -1;
    return d->kind->seq(d, how, key, value);
}

int dict_commit(DICT *d, VSTR *why)
{
    d->error = DICT_ERR_NONE;
    if (d->mode == DICT_MODE_READ) {
        vstr_sprintf(why, "%s:%s: table is not open for writing", d->type, d->name);
        d->error = DICT_ERR_CONFIG;
        return -1;
    }
    return d->kind->commit(d, why);
}

/* ---- Text sources ---- */

struct DICT_READER {
    FILE *fp;
    char *name;
    VSTR *line; /* the logical line being returned */
    VSTR *next; /* one physical line of look-ahead */
    int have_next;
    int next_lineno;
    int next_long; /* the look-ahead line was too long */
    int lineno;    /* physical lines read */
    unsigned warnings;
};

DICT_READER *dict_reader_new(FILE *fp, const char *name)
{
    DICT_READER *r = mycalloc(1, sizeof(*r));

    r->fp = fp;
    r->name = mystrdup(name);
    r->line = vstr_alloc(256);
    r->next = vstr_alloc(256);
    vstr_set_limit(r->line, DICT_LINE_MAX);
    vstr_set_limit(r->next, DICT_LINE_MAX);
    return r;
}

void dict_reader_free(DICT_READER *r)
{
    if (r == NULL)
        return;
    vstr_free(r->line);
    vstr_free(r->next);
    myfree(r->name);
    myfree(r);
}

unsigned dict_reader_warnings(const DICT_READER *r)
{
    return r->warnings;
}

/* dict_reader_phys - next physical line without its end and trailing white
   space; 1 line, 0 end, -1 error. Past DICT_LINE_MAX the rest is dropped and
   *toolong set. */
static int dict_reader_phys(DICT_READER *r, VSTR *buf, int *toolong)
{
    int ch;
    int any = 0;

    vstr_reset(buf);
    *toolong = 0;
    while ((ch = getc_unlocked(r->fp)) != EOF) {
        any = 1;
        if (ch == '\n')
            break;
        if (vstr_addch(buf, ch) < 0)
            *toolong = 1;
    }
    if (ch == EOF && ferror(r->fp))
        return -1;
    if (!any)
        return 0;
    r->lineno++;
    while (vstr_len(buf) > 0 && isspace((unsigned char)vstr_str(buf)[vstr_len(buf) - 1]))
        vstr_truncate(buf, vstr_len(buf) - 1);
    return 1;
}

/* dict_reader_skip - blank lines and '#' comment lines carry nothing */
static int dict_reader_skip(const char *text)
{
    while (isspace((unsigned char)*text))
        text++;
    return *text == 0 || *text == '#';
}

int dict_reader_next(DICT_READER *r, const char **line, int *lineno)
{
    int rc;
    int toolong;

    for (;;) {
        if (!r->have_next) {
            if ((rc = dict_reader_phys(r, r->next, &r->next_long)) <= 0)
                return rc;
            r->next_lineno = r->lineno;
        }
        r->have_next = 0;
        if (dict_reader_skip(vstr_str(r->next)))
            continue;
        if (isspace((unsigned char)vstr_str(r->next)[0])) {
            msg_warn("%s, line %d: continuation line without a line before it: ignoring it",
                     r->name, r->next_lineno);
            r->warnings++;
            continue;
        }
        vstr_cpy(r->line, vstr_str(r->next));
        toolong = r->next_long;
        *lineno = r->next_lineno;

        /* Gather the lines that continue this one. */
        for (;;) {
            if ((rc = dict_reader_phys(r, r->next, &r->next_long)) < 0)
                return -1;
            if (rc == 0)
                break;
            r->next_lineno = r->lineno;
            if (dict_reader_skip(vstr_str(r->next)))
                continue;
            if (!isspace((unsigned char)vstr_str(r->next)[0])) {
                r->have_next = 1;
                break;
            }
            if (r->next_long || vstr_cat(r->line, vstr_str(r->next)) < 0)
                toolong = 1;
        }
        if (toolong) {
            msg_warn("%s, line %d: logical line longer than %d bytes: ignoring it", r->name,
                     *lineno, DICT_LINE_MAX);
            r->warnings++;
            continue;
        }
        *line = vstr_str(r->line);
        return 1;
    }
}

int dict_split_kv(char *line, char **key, char **value, const char **why)
{
    char *p = line;
    int quoted = 0;

    while (isspace((unsigned char)*p))
        p++;
    *key = p;
    /* The key ends at the first white space outside "...", like postmap's
       source format; a backslash protects the next character. */
    for (; *p; p++) {
        if (*p == '\\') {
            if (p[1] == 0) {
                p++;
                break;
            }
            p++;
        } else if (*p == '"') {
            quoted = !quoted;
        } else if (isspace((unsigned char)*p) && !quoted) {
            break;
        }
    }
    if (quoted) {
        *why = "unbalanced '\"'";
        return -1;
    }
    if (*p)
        *p++ = 0;
    while (isspace((unsigned char)*p))
        p++;
    *value = trim(p);
    if (**key == 0 || **value == 0) {
        *why = "expected format: key whitespace value";
        return -1;
    }
    return 0;
}

/* dict_brace_end - the '}' that closes the '{' at text; NULL if none */
static const char *dict_brace_end(const char *text)
{
    int depth = 0;

    for (const char *p = text; *p; p++) {
        if (*p == '{')
            depth++;
        else if (*p == '}' && --depth == 0)
            return p;
    }
    return NULL;
}

char *dict_unbrace(const char *text, const char **why)
{
    const char *start = text;
    const char *end;

    while (isspace((unsigned char)*start))
        start++;
    if (*start != '{') {
        *why = "missing '{'";
        return NULL;
    }
    if ((end = dict_brace_end(start)) == NULL) {
        *why = "missing '}'";
        return NULL;
    }
    for (const char *p = end + 1; *p; p++) {
        if (!isspace((unsigned char)*p)) {
            *why = "text after '}'";
            return NULL;
        }
    }
    char *inner = mystrndup(start + 1, (size_t)(end - start - 1));
    char *trimmed = trim(inner);
    char *copy = mystrdup(trimmed);

    myfree(inner);
    return copy;
}

char *dict_brace_token(char **cp, const char **why)
{
    static const char sep[] = ", \t\r\n";
    char *p = *cp;
    int depth = 0;

    *why = NULL;
    p += strspn(p, sep);
    if (*p == 0) {
        *cp = p;
        return NULL;
    }
    char *start = p;

    for (; *p; p++) {
        if (*p == '{') {
            depth++;
        } else if (*p == '}') {
            if (depth == 0) {
                *why = "unexpected '}'";
                return NULL;
            }
            depth--;
        } else if (depth == 0 && strchr(sep, *p)) {
            break;
        }
    }
    if (depth != 0) {
        *why = "missing '}'";
        return NULL;
    }
    if (*p)
        *p++ = 0;
    *cp = p;
    return start;
}

/* dict_text_inline - "{ {rule}, {rule} }" as text, one rule a line */
static FILE *dict_text_inline(const char *name, VSTR *why)
{
    const char *err;
    char *body = dict_unbrace(name, &err);
    VSTR *text;
    char *cp;
    char *item;
    FILE *fp = NULL;

    if (body == NULL) {
        vstr_sprintf(why, "bad syntax: \"%s\": %s", name, err);
        return NULL;
    }
    text = vstr_alloc(strlen(body) + 2);
    cp = body;
    while ((item = dict_brace_token(&cp, &err)) != NULL) {
        char *rule;

        if (*item != '{' || (rule = dict_unbrace(item, &err)) == NULL) {
            if (*item != '{')
                err = "each rule must be enclosed in { }";
            break;
        }
        vstr_cat(text, rule);
        vstr_addch(text, '\n');
        myfree(rule);
    }
    if (err) {
        vstr_sprintf(why, "bad syntax: \"%s\": %s", name, err);
    } else if (vstr_len(text) == 0) {
        vstr_sprintf(why, "bad syntax: \"%s\": empty table", name);
    } else if ((fp = fmemopen(NULL, vstr_len(text), "w+")) == NULL) {
        vstr_sprintf(why, "fmemopen: %s", strerror(errno));
    } else if (fwrite(vstr_str(text), 1, vstr_len(text), fp) != vstr_len(text)) {
        vstr_sprintf(why, "fmemopen write: %s", strerror(errno));
        fclose(fp);
        fp = NULL;
    } else {
        rewind(fp);
    }
    vstr_free(text);
    myfree(body);
    return fp;
}

FILE *dict_text_source(const char *name, struct stat *st, VSTR *why)
{
    FILE *fp;

    memset(st, 0, sizeof(*st));
    if (*name == '{')
        return dict_text_inline(name, why);
    if ((fp = fopen(name, "re")) == NULL) {
        vstr_sprintf(why, "open %s: %s", name, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(fp), st) < 0) {
        vstr_sprintf(why, "fstat %s: %s", name, strerror(errno));
        fclose(fp);
        return NULL;
    }
    /* A FIFO or device would block or never end. */
    if (!S_ISREG(st->st_mode)) {
        vstr_sprintf(why, "open %s: not a regular file", name);
        fclose(fp);
        return NULL;
    }
    return fp;
}
