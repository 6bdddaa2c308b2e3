/*
 * master_cf - parse and check master.cf, Postfix's eight columns.
 *
 * Logical lines as in main.cf: a line that starts with white space continues
 * the previous one, blank lines and lines whose first non-blank character is
 * '#' are skipped (also between continuation lines). The first seven columns
 * are single words; from the command on, a word that starts with '{' runs to
 * the matching '}' and may hold white space ("{" and "}" and the white space
 * just inside them are dropped), as in Postfix 3.0 and later.
 *
 * Options are the leading words that start with '-', as getopt(3) would see
 * them: "-o name=value" and "-o { name = value }" become overrides, other
 * options stay in args. A "-o" after the first non-option word belongs to
 * the command (for example a program run by a pipe-like service).
 *
 * Everything is checked before anything is returned, so that master never
 * starts half a configuration: every error names the file and line.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "mail/mail_conf.h"
#include "mail/master_cf.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/strutil.h"
#include "util/vstr.h"

#define MASTER_CF_SHOW 60 /* bytes of offending text quoted in errors */

/* Daemon options that take an argument (getopt letters followed by ':'). */
#define MASTER_CF_ARG_OPTS "imnorst"

static const char *const master_cf_types[] = {"inet", "unix", "unix-dgram", "fifo", "pass", NULL};

/* master_ent_free - one entry */
static void master_ent_free(MASTER_ENT *ent)
{
    if (ent == NULL)
        return;
    myfree(ent->service);
    myfree(ent->type);
    myfree(ent->command);
    for (int i = 0; i < 7; i++)
        myfree(ent->column[i]);
    if (ent->args)
        argv_free(ent->args);
    if (ent->overrides)
        argv_free(ent->overrides);
    if (ent->words)
        argv_free(ent->words);
    myfree(ent);
}

void master_cf_free(MASTER_CF *cf)
{
    if (cf == NULL)
        return;
    for (size_t i = 0; i < cf->count; i++)
        master_ent_free(cf->ents[i]);
    myfree(cf->ents);
    myfree(cf);
}

MASTER_ENT *master_cf_find(const MASTER_CF *cf, const char *service, const char *type)
{
    for (size_t i = 0; i < cf->count; i++)
        if (strcmp(cf->ents[i]->service, service) == 0 && strcmp(cf->ents[i]->type, type) == 0)
            return cf->ents[i];
    return NULL;
}

/* master_cf_err - "FILE, line N: " then the reason */
static void master_cf_err(VSTR *why, const char *name, int lineno, const char *fmt, ...)
    MSG_FMT(4, 5);

static void master_cf_err(VSTR *why, const char *name, int lineno, const char *fmt, ...)
{
    va_list ap;

    vstr_sprintf(why, "%s, line %d: ", name, lineno);
    va_start(ap, fmt);
    vstr_vsprintf_append(why, fmt, ap);
    va_end(ap);
}

/* master_cf_port_ok - a port number 1..65535 or a services(5) name */
static int master_cf_port_ok(const char *port)
{
    long n;

    if (alldig(port))
        return parse_long(port, 1, 65535, &n) == 0;
    if (!isalpha((unsigned char)*port))
        return 0;
    for (const char *cp = port; *cp; cp++)
        if (!isalnum((unsigned char)*cp) && *cp != '-' && *cp != '_' && *cp != '.')
            return 0;
    return 1;
}

/* master_cf_host_ok - a host name or address, without brackets */
static int master_cf_host_ok(const char *host)
{
    if (*host == 0)
        return 0;
    for (const char *cp = host; *cp; cp++)
        if (!isalnum((unsigned char)*cp) && !strchr(".-_:%", *cp))
            return 0;
    return 1;
}

/* master_cf_inet_split - [host:]port, host possibly in brackets */
int master_cf_inet_split(const char *service, char **host, char **port)
{
    const char *colon;
    char *h = NULL;

    *host = *port = NULL;
    if (*service == '[') {
        const char *close = strchr(service, ']');

        if (close == NULL || close[1] != ':')
            return -1;
        h = mystrndup(service + 1, (size_t)(close - service - 1));
        colon = close + 1;
    } else if ((colon = strrchr(service, ':')) != NULL) {
        h = mystrndup(service, (size_t)(colon - service));
    }
    const char *p = colon ? colon + 1 : service;

    if ((h != NULL && !master_cf_host_ok(h)) || !master_cf_port_ok(p)) {
        myfree(h);
        return -1;
    }
    *host = h;
    *port = mystrdup(p);
    return 0;
}

/* master_cf_service_ok - check the service name for its type; NULL or a reason */
static const char *master_cf_service_ok(const char *service, const char *type)
{
    if (strlen(service) > MASTER_CF_NAME_MAX)
        return "service name is too long";
    if (strcmp(type, "inet") == 0) {
        char *host, *port;

        if (master_cf_inet_split(service, &host, &port) < 0)
            return "bad inet service name (expected [host:]port, host:port, [address]:port "
                   "or a port name or number from 1 to 65535)";
        myfree(host);
        myfree(port);
        return NULL;
    }
    /* A UNIX socket or fifo below queue_directory/private or public: no paths. */
    if (*service == '.')
        return "service name must not start with '.'";
    for (const char *cp = service; *cp; cp++)
        if (*cp == '/' || !isgraph((unsigned char)*cp))
            return "service name must be one word without '/'";
    return NULL;
}

/* master_cf_yn - "y", "n" or "-" (def) into *result; -1 if none of these */
static int master_cf_yn(const char *word, int def, int *result)
{
    if (strcmp(word, "-") == 0)
        *result = def;
    else if (strcmp(word, "y") == 0)
        *result = 1;
    else if (strcmp(word, "n") == 0)
        *result = 0;
    else
        return -1;
    return 0;
}

/* master_cf_word - one command word; braces group words that hold white space */
static int master_cf_word(const char **cpp, VSTR *word, int *braced, VSTR *why, const char *name,
                          int lineno)
{
    const char *cp = *cpp;

    *braced = 0;
    vstr_reset(word);
    if (*cp == '{') {
        int level = 0;
        const char *start = cp + 1, *end;

        for (end = cp; *end; end++) {
            if (*end == '{')
                level++;
            else if (*end == '}' && --level == 0)
                break;
        }
        if (*end == 0) {
            master_cf_err(why, name, lineno, "missing '}' in \"%.*s\"", MASTER_CF_SHOW, cp);
            return -1;
        }
        if (end[1] && !isspace((unsigned char)end[1])) {
            master_cf_err(why, name, lineno, "text after '}' in \"%.*s\"", MASTER_CF_SHOW, cp);
            return -1;
        }
        while (start < end && isspace((unsigned char)*start))
            start++;
        const char *last = end;

        while (last > start && isspace((unsigned char)last[-1]))
            last--;
        vstr_ncpy(word, start, (size_t)(last - start));
        *braced = 1;
        *cpp = end + 1;
        return 0;
    }
    const char *end = cp;

    while (*end && !isspace((unsigned char)*end))
        end++;
    vstr_ncpy(word, cp, (size_t)(end - cp));
    *cpp = end;
    return 0;
}

/* master_cf_display - a word as master.cf would show it */
static void master_cf_display(ARGV *words, const char *word, int braced)
{
    int space = 0;

    for (const char *cp = word; *cp; cp++)
        space |= isspace((unsigned char)*cp) != 0;
    if (space || (braced && *word == 0)) {
        VSTR *tmp = vstr_alloc(strlen(word) + 4);

        vstr_sprintf(tmp, "{%s}", word);
        argv_add(words, vstr_str(tmp), (char *)NULL);
        vstr_free(tmp);
    } else {
        argv_add(words, word, (char *)NULL);
    }
}

/* master_cf_override - "name=value" or "name = value" into normal form */
static int master_cf_override(MASTER_ENT *ent, const char *text, VSTR *why, const char *name,
                              int lineno)
{
    const char *eq = strchr(text, '=');

    if (eq == NULL) {
        master_cf_err(why, name, lineno, "-o \"%.*s\": expected name=value", MASTER_CF_SHOW, text);
        return -1;
    }
    char *pname = mystrndup(text, (size_t)(eq - text));
    char *pval = mystrdup(eq + 1);
    char *n = trim(pname), *v = trim(pval);
    int r = -1;

    if (!mail_conf_name_ok(n)) {
        master_cf_err(why, name, lineno, "-o: bad parameter name \"%.*s\"", MASTER_CF_SHOW, n);
    } else {
        VSTR *tmp = vstr_alloc(strlen(n) + strlen(v) + 2);

        vstr_sprintf(tmp, "%s=%s", n, v);
        argv_add(ent->overrides, vstr_str(tmp), (char *)NULL);
        argv_add(ent->words, "-o", (char *)NULL);
        master_cf_display(ent->words, vstr_str(tmp), 0);
        vstr_free(tmp);
        r = 0;
    }
    myfree(pname);
    myfree(pval);
    return r;
}

/* master_cf_command - the command and its arguments, from cp on */
static int master_cf_command(MASTER_ENT *ent, const char *cp, VSTR *why, const char *name,
                             int lineno)
{
    VSTR *word = vstr_alloc(64);
    int braced, options = 1, r = -1;

    ent->args = argv_alloc(4);
    ent->overrides = argv_alloc(4);
    ent->words = argv_alloc(8);
    for (;;) {
        while (isspace((unsigned char)*cp))
            cp++;
        if (*cp == 0)
            break;
        if (master_cf_word(&cp, word, &braced, why, name, lineno) < 0)
            goto done;
        const char *w = vstr_str(word);

        if (ent->command == NULL) {
            if (*w == 0) {
                master_cf_err(why, name, lineno, "empty command name");
                goto done;
            }
            ent->command = mystrdup(w);
            master_cf_display(ent->words, w, braced);
            continue;
        }
        if (!options || braced || w[0] != '-' || w[1] == 0) {
            options = 0; /* first operand: the rest belongs to the command */
            argv_add(ent->args, w, (char *)NULL);
            master_cf_display(ent->words, w, braced);
            continue;
        }
        if (strcmp(w, "--") == 0) {
            options = 0;
            argv_add(ent->args, w, (char *)NULL);
            argv_add(ent->words, w, (char *)NULL);
            continue;
        }
        /* An option word: flags, possibly ending in one that takes an argument. */
        size_t i;

        for (i = 1; w[i] && !strchr(MASTER_CF_ARG_OPTS, w[i]); i++)
            ;
        if (w[i] == 0) {
            argv_add(ent->args, w, (char *)NULL);
            argv_add(ent->words, w, (char *)NULL);
            continue;
        }
        char opt = w[i];
        VSTR *flags = vstr_alloc(16);
        VSTR *optarg = vstr_alloc(64);
        int arg_braced = 0;

        if (i > 1) {
            vstr_addch(flags, '-');
            vstr_ncat(flags, w + 1, i - 1);
        }
        if (w[i + 1]) {
            vstr_cpy(optarg, w + i + 1);
        } else {
            while (isspace((unsigned char)*cp))
                cp++;
            if (*cp == 0) {
                master_cf_err(why, name, lineno, "option -%c needs an argument", opt);
                vstr_free(flags);
                vstr_free(optarg);
                goto done;
            }
            if (master_cf_word(&cp, optarg, &arg_braced, why, name, lineno) < 0) {
                vstr_free(flags);
                vstr_free(optarg);
                goto done;
            }
        }
        if (vstr_len(flags) > 0) {
            argv_add(ent->args, vstr_str(flags), (char *)NULL);
            argv_add(ent->words, vstr_str(flags), (char *)NULL);
        }
        int bad = 0;

        if (opt == 'o') {
            bad = master_cf_override(ent, vstr_str(optarg), why, name, lineno) < 0;
        } else {
            char o[3] = {'-', opt, 0};

            argv_add(ent->args, o, vstr_str(optarg), (char *)NULL);
            argv_add(ent->words, o, (char *)NULL);
            master_cf_display(ent->words, vstr_str(optarg), arg_braced);
        }
        vstr_free(flags);
        vstr_free(optarg);
        if (bad)
            goto done;
    }
    if (ent->command == NULL) {
        master_cf_err(why, name, lineno, "missing command");
        goto done;
    }
    r = 0;

done:
    vstr_free(word);
    return r;
}

/* master_cf_entry - one logical line into an entry; NULL with why */
static MASTER_ENT *master_cf_entry(const char *line, const char *name, int lineno,
                                   int default_maxproc, VSTR *why)
{
    static const char *const colname[7] = {"service", "type",   "private", "unpriv",
                                           "chroot",  "wakeup", "maxproc"};
    MASTER_ENT *ent = mycalloc(1, sizeof(*ent));
    const char *cp = line, *reason;
    int n = 0;

    ent->lineno = lineno;
    for (n = 0; n < 7; n++) {
        while (isspace((unsigned char)*cp))
            cp++;
        if (*cp == 0)
            break;
        const char *end = cp;

        while (*end && !isspace((unsigned char)*end))
            end++;
        ent->column[n] = mystrndup(cp, (size_t)(end - cp));
        cp = end;
    }
    while (isspace((unsigned char)*cp))
        cp++;
    if (n < 7 || *cp == 0) {
        master_cf_err(why, name, lineno, "expected 8 fields or more, found %d", n);
        goto fail;
    }
    ent->service = mystrdup(ent->column[0]);
    ent->type = mystrdup(ent->column[1]);

    size_t t;

    for (t = 0; master_cf_types[t]; t++)
        if (strcmp(ent->type, master_cf_types[t]) == 0)
            break;
    if (master_cf_types[t] == NULL) {
        master_cf_err(why, name, lineno,
                      "bad service type \"%.*s\" (expected inet, unix, unix-dgram, fifo or pass)",
                      MASTER_CF_SHOW, ent->type);
        goto fail;
    }
    if ((reason = master_cf_service_ok(ent->service, ent->type)) != NULL) {
        master_cf_err(why, name, lineno, "%s: \"%.*s\"", reason, MASTER_CF_SHOW, ent->service);
        goto fail;
    }
    int is_inet = strcmp(ent->type, "inet") == 0;

    if (master_cf_yn(ent->column[2], !is_inet, &ent->private_) < 0 ||
        master_cf_yn(ent->column[3], 1, &ent->unpriv) < 0 ||
        master_cf_yn(ent->column[4], 0, &ent->chroot) < 0) {
        int bad = master_cf_yn(ent->column[2], 0, &ent->private_) < 0 ? 2
                  : master_cf_yn(ent->column[3], 0, &ent->unpriv) < 0 ? 3
                                                                      : 4;

        master_cf_err(why, name, lineno, "%s column: expected y, n or -, not \"%.*s\"",
                      colname[bad], MASTER_CF_SHOW, ent->column[bad]);
        goto fail;
    }
    if (is_inet && ent->private_) {
        master_cf_err(why, name, lineno, "an inet service cannot be private (use n or -)");
        goto fail;
    }

    /* Wakeup: seconds, "-" for none, a trailing '?' for "only once in use". */
    const char *wake = ent->column[5];
    long num;

    if (strcmp(wake, "-") != 0) {
        size_t wlen = strlen(wake);
        char *digits = mystrdup(wake);

        if (wlen > 1 && digits[wlen - 1] == '?') {
            digits[wlen - 1] = 0;
            ent->wakeup_if_used = 1;
        }
        int bad = !alldig(digits) || parse_long(digits, 0, MASTER_CF_WAKEUP_MAX, &num) < 0;

        myfree(digits);
        if (bad) {
            master_cf_err(why, name, lineno,
                          "wakeup column: expected seconds from 0 to %d, optionally followed "
                          "by '?', or -, not \"%.*s\"",
                          MASTER_CF_WAKEUP_MAX, MASTER_CF_SHOW, wake);
            goto fail;
        }
        ent->wakeup = (int)num;
        if (ent->wakeup == 0)
            ent->wakeup_if_used = 0;
    }

    /* Process limit: "-" is $default_process_limit, 0 means no limit. */
    if (strcmp(ent->column[6], "-") == 0) {
        ent->maxproc = default_maxproc;
    } else if (!alldig(ent->column[6]) ||
               parse_long(ent->column[6], 0, MASTER_CF_MAXPROC_MAX, &num) < 0) {
        master_cf_err(why, name, lineno,
                      "maxproc column: expected a number from 0 (no limit) to %d, or -, "
                      "not \"%.*s\"",
                      MASTER_CF_MAXPROC_MAX, MASTER_CF_SHOW, ent->column[6]);
        goto fail;
    } else {
        ent->maxproc = (int)num;
    }
    if (master_cf_command(ent, cp, why, name, lineno) < 0)
        goto fail;
    return ent;

fail:
    master_ent_free(ent);
    return NULL;
}

/* master_cf_add - append an entry; duplicates of service and type are errors */
static int master_cf_add(MASTER_CF *cf, MASTER_ENT *ent, size_t *cap, const char *name, VSTR *why)
{
    MASTER_ENT *old = master_cf_find(cf, ent->service, ent->type);

    if (old != NULL) {
        master_cf_err(why, name, ent->lineno, "service \"%s/%s\" is already defined on line %d",
                      ent->service, ent->type, old->lineno);
        return -1;
    }
    if (cf->count == *cap) {
        *cap = *cap ? size_mul(*cap, 2) : 16;
        cf->ents = myrealloc(cf->ents, size_mul(*cap, sizeof(*cf->ents)));
    }
    cf->ents[cf->count++] = ent;
    return 0;
}

/* master_cf_finish - the logical line collected so far becomes an entry */
static int master_cf_finish(MASTER_CF *cf, size_t *cap, VSTR *logical, const char *name, int lineno,
                            int default_maxproc, VSTR *why)
{
    MASTER_ENT *ent = master_cf_entry(vstr_str(logical), name, lineno, default_maxproc, why);

    if (ent == NULL)
        return -1;
    if (master_cf_add(cf, ent, cap, name, why) < 0) {
        master_ent_free(ent);
        return -1;
    }
    return 0;
}

MASTER_CF *master_cf_parse(const char *text, const char *name, int default_maxproc, VSTR *why)
{
    MASTER_CF *cf = mycalloc(1, sizeof(*cf));
    VSTR *logical = vstr_alloc(256);
    const char *cp = text;
    size_t cap = 0;
    int lineno = 0, start_line = 0, have = 0;

    vstr_set_limit(logical, MASTER_CF_LINE_MAX);
    while (*cp) {
        const char *nl = strchr(cp, '\n');
        size_t plen = nl ? (size_t)(nl - cp) : strlen(cp);
        char *phys = mystrndup(cp, plen);
        char *body = trim(phys);
        int fail = 0;

        lineno++;
        cp = nl ? nl + 1 : cp + plen;
        if (*body == 0 || *body == '#') {
            /* Blank and comment lines end nothing. */
        } else if (isspace((unsigned char)*phys)) {
            if (!have)
                msg_warn("%s, line %d: logical line must not start with white space: ignored", name,
                         lineno);
            else if (vstr_addch(logical, ' ') < 0 || vstr_cat(logical, body) < 0) {
                master_cf_err(why, name, start_line, "logical line longer than %d bytes",
                              MASTER_CF_LINE_MAX);
                fail = 1;
            }
        } else {
            if (have &&
                master_cf_finish(cf, &cap, logical, name, start_line, default_maxproc, why) < 0) {
                fail = 1;
            } else if (vstr_cpy(logical, body) < 0) {
                master_cf_err(why, name, lineno, "logical line longer than %d bytes",
                              MASTER_CF_LINE_MAX);
                fail = 1;
            }
            have = 1;
            start_line = lineno;
        }
        myfree(phys);
        if (fail)
            goto fail;
    }
    if (have && master_cf_finish(cf, &cap, logical, name, start_line, default_maxproc, why) < 0)
        goto fail;
    vstr_free(logical);
    return cf;

fail:
    vstr_free(logical);
    master_cf_free(cf);
    return NULL;
}

MASTER_CF *master_cf_read(const char *path, int default_maxproc, VSTR *why)
{
    size_t len;
    char *text = file_read_all(path, MASTER_CF_FILE_MAX, &len);

    if (text == NULL) {
        if (errno == EFBIG)
            vstr_sprintf(why, "%s: file is larger than %d bytes", path, MASTER_CF_FILE_MAX);
        else
            vstr_sprintf(why, "open %s: %s", path, strerror(errno));
        return NULL;
    }
    const char *nul = memchr(text, 0, len);

    if (nul != NULL) {
        int n = 1;

        for (const char *p = text; p < nul; p++)
            n += *p == '\n';
        vstr_sprintf(why, "%s, line %d: NUL character in file", path, n);
        myfree(text);
        return NULL;
    }
    MASTER_CF *cf = master_cf_parse(text, path, default_maxproc, why);

    myfree(text);
    return cf;
}
