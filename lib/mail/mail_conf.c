/*
 * mail_conf - main.cf reading, $name expansion and typed parameter access.
 *
 * One store holds every name that was looked up or set: its main.cf value,
 * its override (master.cf -o, command-line -o), a cached computed default
 * and a cached expansion. Precedence: override, then main.cf, then the
 * table's default. Expansion results are cached per name; when any value
 * changes all caches are dropped, but the old strings are kept on a retired
 * list until the next mail_conf_read/mail_conf_reset, because callers may
 * hold pointers from var_str() (see mail_conf.h for the lifetime promise).
 *
 * main.cf syntax (postconf(5)): "name = value" logical lines; a physical line
 * that starts with white space continues the logical line; blank lines and
 * lines whose first non-blank character is '#' are skipped, also between
 * continuation lines. A file is parsed completely before anything is stored,
 * so an error leaves the previous configuration untouched.
 *
 * Expansion forms: $name, ${name}, $(name), ${name?text}, ${name?{text}},
 * ${name:text}, ${name:{text}}, ${name?{text1}:{text2}}, the comparisons
 * ${{text1} OP {text2} ? {text3} : {text4}} with OP one of == != (as text)
 * and < <= > >= (as decimal numbers), and $$ for one '$'. Names in expansions
 * are [A-Za-z0-9_]. Undefined names expand to nothing. Loops and nesting past
 * MAIL_CONF_DEPTH are errors, as is output past MAIL_CONF_EXPAND_MAX (a few
 * lines like "a = $b$b$b$b" would otherwise grow without bound).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/mail_conf.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/strutil.h"
#include "util/vstr.h"

#ifndef DEF_CONFIG_DIR
#define DEF_CONFIG_DIR "/etc/postern"
#endif

#define CONF_HASH_INIT 1024       /* buckets; doubled when the load passes 1 */
#define CONF_WHY_SHOW 60          /* bytes of offending text quoted in errors */
#define CONF_NOT_SET ((size_t)-1) /* order of a name never set */

typedef struct CONF_ENT {
    char *name;
    char *file_val;          /* from main.cf, or NULL */
    char *over_val;          /* from mail_conf_update, or NULL */
    char *computed;          /* cached computed default, or NULL */
    char *expanded;          /* cached expansion, or NULL */
    const MAIL_PARAM *param; /* table entry, or NULL for user-defined names */
    size_t order;            /* index in conf_order, or CONF_NOT_SET */
    int busy;                /* being expanded: seeing it again is a loop */
    int computing;           /* inside param->compute() */
    struct CONF_ENT *next;   /* hash chain */
} CONF_ENT;

static CONF_ENT **conf_tab;
static size_t conf_tab_size;
static size_t conf_tab_used;
static ARGV *conf_order;    /* names set in main.cf or by overrides, first-set order */
static char **conf_retired; /* stale strings that callers may still hold */
static size_t conf_retired_len, conf_retired_cap;
static char *conf_path_name; /* main.cf path for messages */

/* Names being expanded, outermost first, for loop messages. */
static const char *conf_stack[MAIL_CONF_DEPTH + 2];
static int conf_stack_len;

/* conf_hash - FNV-1a */
static size_t conf_hash(const char *name)
{
    uint64_t h = 1469598103934665603ULL;

    for (const unsigned char *cp = (const unsigned char *)name; *cp; cp++) {
        h ^= *cp;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

/* conf_find - store entry by name, NULL when absent */
static CONF_ENT *conf_find(const char *name)
{
    if (conf_tab == NULL)
        return NULL;
    for (CONF_ENT *ent = conf_tab[conf_hash(name) & (conf_tab_size - 1)]; ent; ent = ent->next)
        if (strcmp(ent->name, name) == 0)
            return ent;
    return NULL;
}

/* conf_grow - double the bucket array */
static void conf_grow(void)
{
    size_t size = conf_tab_size ? size_mul(conf_tab_size, 2) : CONF_HASH_INIT;
    CONF_ENT **tab = mycalloc(size, sizeof(*tab));

    for (size_t i = 0; i < conf_tab_size; i++) {
        CONF_ENT *ent, *next;

        for (ent = conf_tab[i]; ent; ent = next) {
            next = ent->next;
            size_t b = conf_hash(ent->name) & (size - 1);

            ent->next = tab[b];
            tab[b] = ent;
        }
    }
    myfree(conf_tab);
    conf_tab = tab;
    conf_tab_size = size;
}

/* conf_enter - store entry by name, created when absent */
static CONF_ENT *conf_enter(const char *name)
{
    CONF_ENT *ent = conf_find(name);

    if (ent != NULL)
        return ent;
    if (conf_tab_used >= conf_tab_size)
        conf_grow();
    ent = mycalloc(1, sizeof(*ent));
    ent->name = mystrdup(name);
    ent->param = mail_param_find(name);
    ent->order = CONF_NOT_SET;
    size_t b = conf_hash(name) & (conf_tab_size - 1);

    ent->next = conf_tab[b];
    conf_tab[b] = ent;
    conf_tab_used++;
    return ent;
}

/* conf_retire - keep a string alive until the next reset */
static void conf_retire(char *str)
{
    if (str == NULL)
        return;
    if (conf_retired_len == conf_retired_cap) {
        conf_retired_cap = conf_retired_cap ? size_mul(conf_retired_cap, 2) : 16;
        conf_retired = myrealloc(conf_retired, size_mul(conf_retired_cap, sizeof(char *)));
    }
    conf_retired[conf_retired_len++] = str;
}

/* conf_invalidate - drop every cached expansion (values refer to each other) */
static void conf_invalidate(void)
{
    for (size_t i = 0; i < conf_tab_size; i++)
        for (CONF_ENT *ent = conf_tab[i]; ent; ent = ent->next) {
            conf_retire(ent->expanded);
            ent->expanded = NULL;
            conf_retire(ent->computed);
            ent->computed = NULL;
        }
}

/* conf_mark_set - remember the first time a name is set, for mail_conf_names */
static void conf_mark_set(CONF_ENT *ent)
{
    if (conf_order == NULL)
        conf_order = argv_alloc(16);
    if (ent->order == CONF_NOT_SET) {
        ent->order = conf_order->argc;
        argv_add(conf_order, ent->name, (char *)NULL);
    }
}

/* mail_conf_reset - forget everything loaded and overridden */
void mail_conf_reset(void)
{
    for (size_t i = 0; i < conf_tab_size; i++) {
        CONF_ENT *ent, *next;

        for (ent = conf_tab[i]; ent; ent = next) {
            next = ent->next;
            myfree(ent->name);
            myfree(ent->file_val);
            myfree(ent->over_val);
            myfree(ent->computed);
            myfree(ent->expanded);
            myfree(ent);
        }
    }
    myfree(conf_tab);
    conf_tab = NULL;
    conf_tab_size = conf_tab_used = 0;
    if (conf_order != NULL)
        argv_free(conf_order);
    conf_order = NULL;
    for (size_t i = 0; i < conf_retired_len; i++)
        myfree(conf_retired[i]);
    myfree(conf_retired);
    conf_retired = NULL;
    conf_retired_len = conf_retired_cap = 0;
    myfree(conf_path_name);
    conf_path_name = NULL;
    conf_stack_len = 0;
}

/* mail_conf_name_ok - a name main.cf may set */
int mail_conf_name_ok(const char *name)
{
    size_t len = 0;

    for (const char *cp = name; *cp; cp++, len++)
        if (!isalnum((unsigned char)*cp) && *cp != '_' && *cp != '-' && *cp != '.')
            return 0;
    return len > 0 && len <= MAIL_CONF_NAME_MAX;
}

/* conf_is_ref_char - a character of a name inside $name / ${name} */
static int conf_is_ref_char(int ch)
{
    return isalnum(ch) || ch == '_';
}

/* mail_conf_dir - -c argument, else $MAIL_CONFIG, else the built-in directory */
const char *mail_conf_dir(const char *cmdline_dir)
{
    const char *env;

    if (cmdline_dir != NULL && *cmdline_dir)
        return cmdline_dir;
    if ((env = getenv("MAIL_CONFIG")) != NULL && *env)
        return env;
    return DEF_CONFIG_DIR;
}

const char *mail_conf_path(void)
{
    return conf_path_name ? conf_path_name : "main.cf";
}

/* conf_quote - a short, printable excerpt of bad input for a message */
static void conf_quote(VSTR *why, const char *text, size_t len)
{
    vstr_addch(why, '"');
    for (size_t i = 0; i < len && i < CONF_WHY_SHOW; i++)
        vstr_addch(why, isprint((unsigned char)text[i]) ? text[i] : '?');
    if (len > CONF_WHY_SHOW)
        vstr_cat(why, "...");
    vstr_addch(why, '"');
}

typedef struct CONF_PAIR {
    char *name;
    char *value;
} CONF_PAIR;

/* conf_logical - check one logical line and add its name and value to pairs */
static int conf_logical(const char *path, int lineno, char *line, CONF_PAIR **pairs, size_t *count,
                        size_t *cap, VSTR *why)
{
    char *eq = strchr(line, '=');

    if (eq == NULL) {
        vstr_sprintf(why, "%s, line %d: missing '=' after parameter name: ", path, lineno);
        conf_quote(why, line, strlen(line));
        return -1;
    }
    *eq = 0;
    char *name = trim(line);
    char *value = trim(eq + 1);

    if (*name == 0) {
        *eq = '=';
        vstr_sprintf(why, "%s, line %d: missing parameter name: ", path, lineno);
        conf_quote(why, line, strlen(line));
        return -1;
    }
    if (!mail_conf_name_ok(name)) {
        vstr_sprintf(why, "%s, line %d: bad parameter name: ", path, lineno);
        conf_quote(why, name, strlen(name));
        return -1;
    }
    if (*count == *cap) {
        *cap = *cap ? size_mul(*cap, 2) : 32;
        *pairs = myrealloc(*pairs, size_mul(*cap, sizeof(**pairs)));
    }
    (*pairs)[*count].name = mystrdup(name);
    (*pairs)[*count].value = mystrdup(value);
    (*count)++;
    return 0;
}

/* conf_parse - main.cf text into name/value pairs; 0 or -1 with why */
static int conf_parse(const char *path, const char *text, size_t len, CONF_PAIR **pairs,
                      size_t *count, VSTR *why)
{
    VSTR *logical = vstr_alloc(256);
    size_t cap = 0;
    int lineno = 0, start_line = 0, have = 0, r = -1;
    const char *cp = text, *end = text + len;

    *pairs = NULL;
    *count = 0;
    if (memchr(text, 0, len) != NULL) {
        const char *nul = memchr(text, 0, len);
        int n = 1;

        for (const char *p = text; p < nul; p++)
            n += *p == '\n';
        vstr_sprintf(why, "%s, line %d: NUL character in file", path, n);
        goto done;
    }
    while (cp < end) {
        const char *nl = memchr(cp, '\n', (size_t)(end - cp));
        size_t plen = nl ? (size_t)(nl - cp) : (size_t)(end - cp);
        char *phys = mystrndup(cp, plen);
        char *body = trim(phys);

        lineno++;
        cp = nl ? nl + 1 : end;
        if (*body == 0 || *body == '#') {
            /* Blank and comment lines end nothing, even between continuations. */
        } else if (isspace((unsigned char)*phys)) {
            if (!have) {
                msg_warn("%s, line %d: logical line must not start with white space: "
                         "ignored",
                         path, lineno);
            } else if (vstr_addch(logical, ' ') < 0 || vstr_cat(logical, body) < 0) {
                vstr_sprintf(why, "%s, line %d: logical line longer than %d bytes", path,
                             start_line, MAIL_CONF_LINE_MAX);
                myfree(phys);
                goto done;
            }
        } else {
            if (have &&
                conf_logical(path, start_line, vstr_str(logical), pairs, count, &cap, why) < 0) {
                myfree(phys);
                goto done;
            }
            vstr_reset(logical);
            vstr_set_limit(logical, MAIL_CONF_LINE_MAX);
            if (vstr_cat(logical, body) < 0) {
                vstr_sprintf(why, "%s, line %d: logical line longer than %d bytes", path, lineno,
                             MAIL_CONF_LINE_MAX);
                myfree(phys);
                goto done;
            }
            have = 1;
            start_line = lineno;
        }
        myfree(phys);
    }
    if (have && conf_logical(path, start_line, vstr_str(logical), pairs, count, &cap, why) < 0)
        goto done;
    r = 0;

done:
    vstr_free(logical);
    if (r < 0) {
        for (size_t i = 0; i < *count; i++) {
            myfree((*pairs)[i].name);
            myfree((*pairs)[i].value);
        }
        myfree(*pairs);
        *pairs = NULL;
        *count = 0;
    }
    return r;
}

/* mail_conf_load - add the settings of a main.cf-style file; later ones win */
int mail_conf_load(const char *path, VSTR *why)
{
    size_t len, count;
    CONF_PAIR *pairs;
    char *text = file_read_all(path, MAIL_CONF_FILE_MAX, &len);

    if (text == NULL) {
        if (errno == EFBIG)
            vstr_sprintf(why, "%s: file is larger than %d bytes", path, MAIL_CONF_FILE_MAX);
        else
            vstr_sprintf(why, "open %s: %s", path, strerror(errno));
        return -1;
    }
    int r = conf_parse(path, text, len, &pairs, &count, why);

    myfree(text);
    if (r < 0)
        return -1;
    for (size_t i = 0; i < count; i++) {
        CONF_ENT *ent = conf_enter(pairs[i].name);

        conf_retire(ent->file_val);
        ent->file_val = pairs[i].value;
        conf_mark_set(ent);
        myfree(pairs[i].name);
    }
    myfree(pairs);
    conf_invalidate();
    myfree(conf_path_name);
    conf_path_name = mystrdup(path);
    return 0;
}

/* mail_conf_read - forget the old configuration and load DIR/main.cf */
void mail_conf_read(const char *config_dir)
{
    /* Static: still reachable when msg_fatal exits (no leak reports). */
    static VSTR *path, *why;
    const char *cur;

    if (path == NULL) {
        path = vstr_alloc(256);
        why = vstr_alloc(128);
    }
    mail_conf_reset();
    vstr_sprintf(path, "%s/main.cf", config_dir);
    if (mail_conf_load(vstr_str(path), why) < 0)
        msg_fatal("%s", vstr_str(why));
    /* The directory actually read wins over what main.cf says, as in Postfix. */
    if ((cur = mail_conf_raw("config_directory")) == NULL || strcmp(cur, config_dir) != 0)
        mail_conf_update("config_directory", config_dir);
}

/* mail_conf_update - set an override; it wins over main.cf */
void mail_conf_update(const char *name, const char *value)
{
    if (!mail_conf_name_ok(name))
        msg_fatal("bad parameter name in override: \"%.*s\"", CONF_WHY_SHOW, name);
    CONF_ENT *ent = conf_enter(name);

    conf_retire(ent->over_val);
    ent->over_val = mystrdup(value);
    conf_mark_set(ent);
    conf_invalidate();
}

/* mail_conf_parse_override - "name=value", white space around both trimmed */
int mail_conf_parse_override(const char *assignment)
{
    const char *eq = strchr(assignment, '=');

    if (eq == NULL)
        return -1;
    char *name = mystrndup(assignment, (size_t)(eq - assignment));
    char *value = mystrdup(eq + 1);
    char *n = trim(name);
    int r = -1;

    if (mail_conf_name_ok(n)) {
        mail_conf_update(n, trim(value));
        r = 0;
    }
    myfree(name);
    myfree(value);
    return r;
}

/* conf_ent_raw - the unexpanded value of an entry, NULL if undefined */
static const char *conf_ent_raw(CONF_ENT *ent)
{
    if (ent->over_val)
        return ent->over_val;
    if (ent->file_val)
        return ent->file_val;
    if (ent->param == NULL)
        return NULL;
    if (ent->param->compute) {
        if (ent->computed == NULL) {
            /* A computed default may look at other names that lead back here. */
            if (ent->computing)
                return "";
            ent->computing = 1;
            ent->busy++;
            const char *val = ent->param->compute();

            ent->busy--;
            ent->computing = 0;
            ent->computed = mystrdup(val ? val : "");
        }
        return ent->computed;
    }
    return ent->param->defval ? ent->param->defval : "";
}

/* mail_conf_raw - unexpanded value, NULL if neither known nor set */
const char *mail_conf_raw(const char *name)
{
    CONF_ENT *ent = conf_find(name);

    if (ent == NULL) {
        if (mail_param_find(name) == NULL)
            return NULL;
        ent = conf_enter(name);
    }
    return conf_ent_raw(ent);
}

/* mail_conf_is_set - set in main.cf or by an override */
int mail_conf_is_set(const char *name)
{
    CONF_ENT *ent = conf_find(name);

    return ent != NULL && (ent->over_val != NULL || ent->file_val != NULL);
}

/* mail_conf_names - names set, in the order they were first set */
const char *const *mail_conf_names(size_t *count)
{
    static const char *const none[] = {NULL};

    if (conf_order == NULL) {
        *count = 0;
        return none;
    }
    *count = conf_order->argc;
    return (const char *const *)conf_order->argv;
}

static int conf_expand(const char *text, size_t len, VSTR *out, VSTR *why, int depth);

/* conf_append - add bytes to an expansion, bounded */
static int conf_append(VSTR *out, const char *ptr, size_t len, VSTR *why)
{
    if (len > MAIL_CONF_EXPAND_MAX || vstr_len(out) > MAIL_CONF_EXPAND_MAX - len) {
        vstr_sprintf(why, "expanded value is longer than %d bytes", MAIL_CONF_EXPAND_MAX);
        return -1;
    }
    if (vstr_ncat(out, ptr, len) < 0) {
        vstr_sprintf(why, "expanded value is longer than the result buffer allows");
        return -1;
    }
    return 0;
}

/* conf_loop_why - "parameter loop: a -> b -> a" */
static void conf_loop_why(VSTR *why, const char *name)
{
    int first = 0;

    for (int i = 0; i < conf_stack_len; i++)
        if (strcmp(conf_stack[i], name) == 0) {
            first = i;
            break;
        }
    vstr_sprintf(why, "parameter loop: ");
    for (int i = first; i < conf_stack_len; i++)
        vstr_sprintf_append(why, "$%s -> ", conf_stack[i]);
    vstr_sprintf_append(why, "$%s", name);
}

/* conf_value - append the expanded value of name (empty when undefined) */
static int conf_value(const char *name, VSTR *out, VSTR *why, int depth)
{
    CONF_ENT *ent = conf_find(name);

    if (ent == NULL) {
        if (mail_param_find(name) == NULL)
            return 0; /* undefined: empty, as in Postfix */
        ent = conf_enter(name);
    }
    if (ent->busy) {
        conf_loop_why(why, name);
        return -1;
    }
    /* The stack check also bounds expansions restarted by computed defaults. */
    if (depth >= MAIL_CONF_DEPTH || conf_stack_len >= MAIL_CONF_DEPTH) {
        vstr_sprintf(why, "parameter expansion nested more than %d levels at $%s", MAIL_CONF_DEPTH,
                     name);
        return -1;
    }
    if (ent->expanded == NULL) {
        const char *raw;
        VSTR *tmp;
        int r;

        conf_stack[conf_stack_len++] = ent->name;
        ent->busy++;
        raw = conf_ent_raw(ent);
        if (raw == NULL) {
            ent->busy--;
            conf_stack_len--;
            return 0;
        }
        if (ent->param && ent->param->type == PARAM_RAW) {
            ent->busy--;
            conf_stack_len--;
            return conf_append(out, raw, strlen(raw), why);
        }
        tmp = vstr_alloc(strlen(raw) + 16);
        r = conf_expand(raw, strlen(raw), tmp, why, depth + 1);
        ent->busy--;
        conf_stack_len--;
        if (r < 0) {
            vstr_free(tmp);
            return -1;
        }
        /* A value that depends on a busy outer name is still fully expanded here. */
        ent->expanded = vstr_export(tmp);
    }
    return conf_append(out, ent->expanded, strlen(ent->expanded), why);
}

/* conf_match - end of the group opened at text[0] ('{' or '('), or NULL */
static const char *conf_match(const char *text, const char *end)
{
    char open = *text, close = open == '{' ? '}' : ')';
    int level = 0;

    for (const char *cp = text; cp < end; cp++) {
        if (*cp == open)
            level++;
        else if (*cp == close && --level == 0)
            return cp;
    }
    return NULL;
}

/* conf_skip_space - advance past white space */
static const char *conf_skip_space(const char *cp, const char *end)
{
    while (cp < end && isspace((unsigned char)*cp))
        cp++;
    return cp;
}

/* conf_group - parse "{text}" at *cpp; the inside goes to start/len */
static int conf_group(const char **cpp, const char *end, const char **start, size_t *len,
                      const char *ref, size_t ref_len, VSTR *why)
{
    const char *cp = *cpp, *close;

    if (cp >= end || *cp != '{' || (close = conf_match(cp, end)) == NULL) {
        vstr_sprintf(why, "'{' expected in ");
        conf_quote(why, ref, ref_len);
        return -1;
    }
    *start = cp + 1;
    *len = (size_t)(close - cp - 1);
    *cpp = close + 1;
    return 0;
}

/* conf_compare - evaluate "text1 OP text2" after expansion */
static int conf_compare(const char *a, const char *op, const char *b, int *result, VSTR *why)
{
    if (strcmp(op, "==") == 0) {
        *result = strcmp(a, b) == 0;
        return 0;
    }
    if (strcmp(op, "!=") == 0) {
        *result = strcmp(a, b) != 0;
        return 0;
    }
    long x, y;

    if (parse_long(a, LONG_MIN, LONG_MAX, &x) < 0 || parse_long(b, LONG_MIN, LONG_MAX, &y) < 0) {
        vstr_sprintf(why, "operator %s needs decimal numbers, not \"%.*s\" and \"%.*s\"", op,
                     CONF_WHY_SHOW, a, CONF_WHY_SHOW, b);
        return -1;
    }
    if (strcmp(op, "<") == 0)
        *result = x < y;
    else if (strcmp(op, "<=") == 0)
        *result = x <= y;
    else if (strcmp(op, ">") == 0)
        *result = x > y;
    else
        *result = x >= y;
    return 0;
}

/* conf_relational - ${{text1} OP {text2} ? {text3} : {text4}}, body without ${ } */
static int conf_relational(const char *body, size_t blen, VSTR *out, VSTR *why, int depth)
{
    const char *cp = body, *end = body + blen, *s[4] = {0};
    size_t l[4] = {0};
    char op[3] = "";
    int have_else = 0, truth, r = -1;
    VSTR *a = NULL, *b = NULL;

    if (conf_group(&cp, end, &s[0], &l[0], body, blen, why) < 0)
        return -1;
    cp = conf_skip_space(cp, end);
    for (size_t n = 0; cp < end && strchr("=!<>", *cp) && n < 2; n++)
        op[n] = *cp++;
    if (strcmp(op, "==") && strcmp(op, "!=") && strcmp(op, "<") && strcmp(op, "<=") &&
        strcmp(op, ">") && strcmp(op, ">=")) {
        vstr_sprintf(why, "unknown operator in ");
        conf_quote(why, body, blen);
        return -1;
    }
    cp = conf_skip_space(cp, end);
    if (conf_group(&cp, end, &s[1], &l[1], body, blen, why) < 0)
        return -1;
    cp = conf_skip_space(cp, end);
    if (cp >= end || *cp != '?') {
        vstr_sprintf(why, "'?' expected in ");
        conf_quote(why, body, blen);
        return -1;
    }
    cp = conf_skip_space(cp + 1, end);
    if (conf_group(&cp, end, &s[2], &l[2], body, blen, why) < 0)
        return -1;
    cp = conf_skip_space(cp, end);
    if (cp < end && *cp == ':') {
        cp = conf_skip_space(cp + 1, end);
        if (conf_group(&cp, end, &s[3], &l[3], body, blen, why) < 0)
            return -1;
        have_else = 1;
        cp = conf_skip_space(cp, end);
    }
    if (cp != end) {
        vstr_sprintf(why, "unexpected text after the last '}' in ");
        conf_quote(why, body, blen);
        return -1;
    }
    a = vstr_alloc(32);
    b = vstr_alloc(32);
    if (conf_expand(s[0], l[0], a, why, depth + 1) < 0 ||
        conf_expand(s[1], l[1], b, why, depth + 1) < 0 ||
        conf_compare(vstr_str(a), op, vstr_str(b), &truth, why) < 0)
        goto done;
    if (truth)
        r = conf_expand(s[2], l[2], out, why, depth + 1);
    else
        r = have_else ? conf_expand(s[3], l[3], out, why, depth + 1) : 0;

done:
    vstr_free(a);
    vstr_free(b);
    return r;
}

/* conf_reference - one ${...} or $(...) body (without the brackets) */
static int conf_reference(const char *body, size_t blen, VSTR *out, VSTR *why, int depth)
{
    const char *cp = body, *end = body + blen;
    char name[MAIL_CONF_NAME_MAX + 1];
    size_t nlen = 0;

    if (cp < end && *cp == '{')
        return conf_relational(body, blen, out, why, depth);
    while (cp < end && conf_is_ref_char((unsigned char)*cp)) {
        if (nlen >= MAIL_CONF_NAME_MAX) {
            vstr_sprintf(why, "parameter name too long in ");
            conf_quote(why, body, blen);
            return -1;
        }
        name[nlen++] = *cp++;
    }
    name[nlen] = 0;
    if (nlen == 0) {
        vstr_sprintf(why, "missing parameter name in ");
        conf_quote(why, body, blen);
        return -1;
    }
    if (cp == end)
        return conf_value(name, out, why, depth);
    if (*cp != '?' && *cp != ':') {
        vstr_sprintf(why, "bad character after parameter name in ");
        conf_quote(why, body, blen);
        return -1;
    }
    int want_set = *cp++ == '?';
    const char *t1 = cp, *t2 = NULL;
    size_t l1 = (size_t)(end - cp), l2 = 0;

    if (cp < end && *cp == '{') {
        /* The braced forms: ${name?{t1}}, ${name:{t1}}, ${name?{t1}:{t2}}. */
        if (conf_group(&cp, end, &t1, &l1, body, blen, why) < 0)
            return -1;
        cp = conf_skip_space(cp, end);
        if (want_set && cp < end && *cp == ':') {
            cp = conf_skip_space(cp + 1, end);
            if (conf_group(&cp, end, &t2, &l2, body, blen, why) < 0)
                return -1;
            cp = conf_skip_space(cp, end);
        }
        if (cp != end) {
            vstr_sprintf(why, "unexpected text after '}' in ");
            conf_quote(why, body, blen);
            return -1;
        }
    }
    VSTR *val = vstr_alloc(64);
    int r = conf_value(name, val, why, depth);

    if (r == 0) {
        int is_set = vstr_len(val) > 0;

        if (is_set == want_set)
            r = conf_expand(t1, l1, out, why, depth + 1);
        else if (t2 != NULL)
            r = conf_expand(t2, l2, out, why, depth + 1);
    }
    vstr_free(val);
    return r;
}

/* conf_expand - expand len bytes of text, appending to out */
static int conf_expand(const char *text, size_t len, VSTR *out, VSTR *why, int depth)
{
    const char *cp = text, *end = text + len;

    if (depth > MAIL_CONF_DEPTH) {
        vstr_sprintf(why, "parameter expansion nested more than %d levels", MAIL_CONF_DEPTH);
        return -1;
    }
    while (cp < end) {
        const char *dollar = memchr(cp, '$', (size_t)(end - cp));

        if (dollar == NULL)
            return conf_append(out, cp, (size_t)(end - cp), why);
        if (conf_append(out, cp, (size_t)(dollar - cp), why) < 0)
            return -1;
        cp = dollar + 1;
        if (cp < end && *cp == '$') {
            if (conf_append(out, "$", 1, why) < 0)
                return -1;
            cp++;
        } else if (cp < end && (*cp == '{' || *cp == '(')) {
            const char *close = conf_match(cp, end);

            if (close == NULL) {
                vstr_sprintf(why, "unterminated %s in ", *cp == '{' ? "${" : "$(");
                conf_quote(why, dollar, (size_t)(end - dollar));
                return -1;
            }
            if (conf_reference(cp + 1, (size_t)(close - cp - 1), out, why, depth) < 0)
                return -1;
            cp = close + 1;
        } else if (cp < end && conf_is_ref_char((unsigned char)*cp)) {
            char name[MAIL_CONF_NAME_MAX + 1];
            size_t nlen = 0;

            while (cp < end && conf_is_ref_char((unsigned char)*cp)) {
                if (nlen >= MAIL_CONF_NAME_MAX) {
                    vstr_sprintf(why, "parameter name too long after '$' in ");
                    conf_quote(why, dollar, (size_t)(end - dollar));
                    return -1;
                }
                name[nlen++] = *cp++;
            }
            name[nlen] = 0;
            if (conf_value(name, out, why, depth) < 0)
                return -1;
        } else {
            vstr_sprintf(why, "'$' not followed by a parameter name in ");
            conf_quote(why, text, len);
            vstr_cat(why, " (write $$ for a literal '$')");
            return -1;
        }
    }
    return 0;
}

/* mail_conf_expand - expand text into result (replacing its contents) */
int mail_conf_expand(const char *text, VSTR *result, VSTR *why)
{
    int saved_len = conf_stack_len;

    vstr_reset(result);
    int r = conf_expand(text, strlen(text), result, why, 0);

    /* conf_value pops on every path, but be robust against a future early return. */
    conf_stack_len = saved_len;
    return r;
}

/* conf_ent_value - expanded value of a known entry; fatal on errors */
static const char *conf_ent_value(CONF_ENT *ent)
{
    if (ent->param && ent->param->type == PARAM_RAW) {
        const char *raw = conf_ent_raw(ent);

        return raw ? raw : "";
    }
    if (ent->expanded == NULL) {
        static VSTR *out, *why; /* static: reachable when msg_fatal exits */

        if (out == NULL) {
            out = vstr_alloc(64);
            why = vstr_alloc(64);
        }
        vstr_reset(out);
        if (conf_value(ent->name, out, why, 0) < 0)
            msg_fatal("%s: parameter %s: %s", mail_conf_path(), ent->name, vstr_str(why));
        if (ent->expanded == NULL) /* undefined user name: conf_value stored nothing */
            return "";
    }
    return ent->expanded;
}

/* var_param - table entry of the wanted type, or a panic: a wrong name is a bug */
static CONF_ENT *var_param(const char *name, const char *fn, int type)
{
    const MAIL_PARAM *p = mail_param_find(name);

    if (p == NULL)
        msg_panic("%s: unknown parameter \"%s\"", fn, name);
    if (type >= 0 && (int)p->type != type)
        msg_panic("%s: parameter \"%s\" has another type", fn, name);
    return conf_enter(name);
}

const char *var_str(const char *name)
{
    return conf_ent_value(var_param(name, "var_str", -1));
}

long var_int(const char *name)
{
    CONF_ENT *ent = var_param(name, "var_int", PARAM_INT);
    const char *val = conf_ent_value(ent);
    long n;

    if (parse_long(val, ent->param->min, ent->param->max, &n) < 0)
        msg_fatal("%s: parameter %s: bad numerical value \"%.*s\" (expected a whole number "
                  "from %ld to %ld)",
                  mail_conf_path(), name, CONF_WHY_SHOW, val, ent->param->min, ent->param->max);
    return n;
}

long var_time(const char *name)
{
    CONF_ENT *ent = var_param(name, "var_time", PARAM_TIME);
    const char *val = conf_ent_value(ent);
    long n;

    if (parse_time(val, ent->param->time_unit, &n) < 0 || n < ent->param->min ||
        n > ent->param->max)
        msg_fatal("%s: parameter %s: bad time value \"%.*s\" (expected a number with an "
                  "optional unit s, m, h, d or w; bare numbers are in '%c'; from %lds to %lds)",
                  mail_conf_path(), name, CONF_WHY_SHOW, val, ent->param->time_unit,
                  ent->param->min, ent->param->max);
    return n;
}

int var_bool(const char *name)
{
    CONF_ENT *ent = var_param(name, "var_bool", PARAM_BOOL);
    const char *val = conf_ent_value(ent);

    /* Only yes and no, as Postfix: "true" or "1" in main.cf is a mistake to report. */
    if (strcasecmp(val, "yes") == 0)
        return 1;
    if (strcasecmp(val, "no") == 0)
        return 0;
    msg_fatal("%s: parameter %s: bad boolean value \"%.*s\" (expected yes or no)", mail_conf_path(),
              name, CONF_WHY_SHOW, val);
}

/* mail_conf_lookup - expanded value of a table or set name; NULL when undefined */
const char *mail_conf_lookup(const char *name)
{
    CONF_ENT *ent = conf_find(name);

    if (ent == NULL) {
        if (mail_param_find(name) == NULL)
            return NULL;
        ent = conf_enter(name);
    }
    if (conf_ent_raw(ent) == NULL)
        return NULL;
    return conf_ent_value(ent);
}

/* conf_check_one - expand and type-check one entry */
static int conf_check_one(CONF_ENT *ent, VSTR *why)
{
    VSTR *out = vstr_alloc(64);
    VSTR *reason = vstr_alloc(64);
    const MAIL_PARAM *p = ent->param;
    int r = 0;

    if (p && p->type == PARAM_RAW)
        goto done;
    if (conf_value(ent->name, out, reason, 0) < 0) {
        vstr_sprintf(why, "parameter %s: %s", ent->name, vstr_str(reason));
        r = -1;
        goto done;
    }
    if (p == NULL)
        goto done;
    const char *val = vstr_str(out);
    long n;

    switch (p->type) {
    case PARAM_INT:
        if (parse_long(val, p->min, p->max, &n) < 0) {
            vstr_sprintf(why, "parameter %s: bad numerical value \"%.*s\" (from %ld to %ld)",
                         ent->name, CONF_WHY_SHOW, val, p->min, p->max);
            r = -1;
        }
        break;
    case PARAM_TIME:
        if (parse_time(val, p->time_unit, &n) < 0 || n < p->min || n > p->max) {
            vstr_sprintf(why, "parameter %s: bad time value \"%.*s\"", ent->name, CONF_WHY_SHOW,
                         val);
            r = -1;
        }
        break;
    case PARAM_BOOL:
        if (strcasecmp(val, "yes") != 0 && strcasecmp(val, "no") != 0) {
            vstr_sprintf(why, "parameter %s: bad boolean value \"%.*s\" (yes or no)", ent->name,
                         CONF_WHY_SHOW, val);
            r = -1;
        }
        break;
    default: break;
    }

done:
    vstr_free(out);
    vstr_free(reason);
    return r;
}

/* mail_conf_check - expand and parse everything once */
int mail_conf_check(VSTR *why)
{
    size_t count;
    const char *const *names;

    for (const MAIL_PARAM *p = mail_param_table; p->name; p++)
        if (conf_check_one(conf_enter(p->name), why) < 0)
            return -1;
    names = mail_conf_names(&count);
    for (size_t i = 0; i < count; i++)
        if (conf_check_one(conf_enter(names[i]), why) < 0)
            return -1;
    return 0;
}

/* mail_conf_split_list - split at commas and white space, keeping {...} groups */
ARGV *mail_conf_split_list(const char *value)
{
    ARGV *av = argv_alloc(8);
    const char *cp = value;

    for (;;) {
        cp += strspn(cp, ", \t\r\n");
        if (*cp == 0)
            break;
        const char *start = cp;
        int level = 0;

        for (; *cp; cp++) {
            if (*cp == '{')
                level++;
            else if (*cp == '}' && level > 0)
                level--;
            else if (level == 0 && strchr(", \t\r\n", *cp))
                break;
        }
        argv_addn(av, start, (size_t)(cp - start));
    }
    return av;
}

ARGV *var_list(const char *name)
{
    return mail_conf_split_list(var_str(name));
}
