/*
 * postconf_main - postconf's main.cf part: show parameters, edit the file.
 *
 * Showing reads main.cf through mail_conf (so postconf sees exactly what the
 * daemons see), except with -d, where only the built-in defaults count.
 * Editing works on the text of main.cf, line by line, so that comments,
 * blank lines and the order of settings survive: a setting's first line and
 * its continuation lines are replaced or removed together, and the result
 * replaces the file atomically (temporary file, fsync, rename).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/master_cf.h"
#include "postconf.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/strutil.h"
#include "util/vstr.h"

#define PCF_SHOW 60 /* bytes of a bad argument quoted in messages */

/* pcf_cmp - qsort by name */
static int pcf_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* pcf_collect_refs - add every name that text refers to with $name, ${name, $(name */
static void pcf_collect_refs(const char *text, ARGV *refs)
{
    for (const char *cp = text; (cp = strchr(cp, '$')) != NULL;) {
        cp++;
        if (*cp == '$') {
            cp++;
            continue;
        }
        if (*cp == '{' || *cp == '(')
            cp++;
        size_t n = strspn(cp, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");

        if (n > 0)
            argv_addn(refs, cp, n);
        cp += n;
    }
}

/* pcf_has - is name in av */
static int pcf_has(const ARGV *av, const char *name)
{
    for (size_t i = 0; i < av->argc; i++)
        if (strcmp(av->argv[i], name) == 0)
            return 1;
    return 0;
}

/*
 * pcf_warn_unused - a name main.cf sets that no program reads and no value
 * refers to is most likely a typo ("smtpd_recipent_limit"): say so, as
 * Postfix does. References from master.cf -o values count too.
 */
static void pcf_warn_unused(const PCF_OPTS *opts)
{
    size_t count;
    const char *const *names = mail_conf_names(&count);
    ARGV *refs = argv_alloc(32);
    VSTR *path = vstr_alloc(128);
    VSTR *why = vstr_alloc(64);

    for (const MAIL_PARAM *p = mail_param_table; p->name; p++) {
        const char *raw = mail_conf_raw(p->name);

        if (raw != NULL && p->type != PARAM_RAW)
            pcf_collect_refs(raw, refs);
    }
    for (size_t i = 0; i < count; i++)
        pcf_collect_refs(mail_conf_raw(names[i]), refs);
    /* Restriction classes are named, not referenced with '$'. */
    ARGV *classes = mail_conf_split_list(mail_conf_raw("smtpd_restriction_classes"));

    for (size_t i = 0; i < classes->argc; i++)
        argv_add(refs, classes->argv[i], (char *)NULL);
    argv_free(classes);
    vstr_sprintf(path, "%s/master.cf", opts->config_dir);
    if (access(vstr_str(path), R_OK) == 0) {
        MASTER_CF *cf = master_cf_read(vstr_str(path), 1, why);

        for (size_t i = 0; cf != NULL && i < cf->count; i++)
            for (size_t j = 0; j < cf->ents[i]->overrides->argc; j++)
                pcf_collect_refs(cf->ents[i]->overrides->argv[j], refs);
        master_cf_free(cf);
    }
    for (size_t i = 0; i < count; i++)
        if (mail_param_find(names[i]) == NULL && !pcf_has(refs, names[i]))
            msg_warn("%s: unused parameter: %s=%s", mail_conf_path(), names[i],
                     mail_conf_raw(names[i]));
    argv_free(refs);
    vstr_free(path);
    vstr_free(why);
}

/* pcf_all_names - the names to show when none are given; new ARGV, sorted */
static ARGV *pcf_all_names(const PCF_OPTS *opts)
{
    ARGV *av = argv_alloc(mail_param_count() + 16);
    size_t count;
    const char *const *names = mail_conf_names(&count);

    if (!opts->nondefault)
        for (const MAIL_PARAM *p = mail_param_table; p->name; p++)
            argv_add(av, p->name, (char *)NULL);
    if (!opts->defaults)
        for (size_t i = 0; i < count; i++)
            if (opts->nondefault || mail_param_find(names[i]) == NULL)
                argv_add(av, names[i], (char *)NULL);
    qsort(av->argv, av->argc, sizeof(char *), pcf_cmp);
    return av;
}

/* pcf_show_main - print parameters as "name = value" */
void pcf_show_main(const PCF_OPTS *opts, char **names)
{
    static VSTR *out, *why; /* static: reachable when msg_fatal exits */
    static char *text;
    ARGV *all = NULL;

    if (out == NULL) {
        out = vstr_alloc(256);
        why = vstr_alloc(64);
    }

    if (opts->defaults) {
        /* Defaults only: main.cf must not leak into expansions. */
        mail_conf_reset();
    } else {
        mail_conf_read(opts->config_dir);
        for (size_t i = 0; i < opts->overrides->argc; i++)
            if (mail_conf_parse_override(opts->overrides->argv[i]) < 0)
                msg_fatal("bad -o argument \"%.*s\": expected name=value", PCF_SHOW,
                          opts->overrides->argv[i]);
        pcf_warn_unused(opts);
    }
    if (*names == NULL) {
        all = pcf_all_names(opts);
        names = all->argv;
    }
    for (; *names; names++) {
        const char *name = *names;
        const MAIL_PARAM *p = mail_param_find(name);
        const char *value;

        if (opts->defaults) {
            if (p == NULL) {
                msg_warn("%s: unknown parameter", name);
                continue;
            }
            value = mail_param_default(p);
        } else {
            if ((value = mail_conf_raw(name)) == NULL) {
                msg_warn("%s: unknown parameter", name);
                continue;
            }
            if (opts->nondefault && !mail_conf_is_set(name))
                continue;
        }
        if (opts->expand && !(p && p->type == PARAM_RAW)) {
            text = mystrdup(value);
            if (mail_conf_expand(text, out, why) < 0)
                msg_fatal("%s: parameter %s: %s", opts->defaults ? "defaults" : mail_conf_path(),
                          name, vstr_str(why));
            myfree(text);
            text = NULL;
            value = vstr_str(out);
        }
        pcf_print(opts, name, value);
    }
    if (all)
        argv_free(all);
}

/* One physical line of main.cf as the editor sees it. */
enum pcf_line_kind { PCF_OTHER, PCF_START, PCF_CONT };

/* pcf_line_name - the name at the start of a setting line (up to '=' or white space) */
static char *pcf_line_name(const char *line, size_t len)
{
    size_t n = 0;

    while (n < len && line[n] != '=' && line[n] != ' ' && line[n] != '\t' && line[n] != '\r')
        n++;
    return mystrndup(line, n);
}

/* pcf_line_kind - blank and comment lines, setting starts, continuations */
static enum pcf_line_kind pcf_line_kind(const char *line, size_t len)
{
    size_t i = 0;

    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\f' ||
                       line[i] == '\v'))
        i++;
    if (i == len || line[i] == '#')
        return PCF_OTHER;
    return i == 0 ? PCF_START : PCF_CONT;
}

typedef struct PCF_REQ {
    char *name;
    char *value; /* -e only */
    int done;
} PCF_REQ;

/* pcf_parse_requests - check the arguments before touching the file */
static PCF_REQ *pcf_parse_requests(const PCF_OPTS *opts, char **args, size_t *count)
{
    size_t n = 0;

    while (args[n])
        n++;
    /* Static: still reachable if a later argument is fatal (no leak reports). */
    static PCF_REQ *reqs;

    reqs = mycalloc(n, sizeof(*reqs));

    for (size_t i = 0; i < n; i++) {
        const char *arg = args[i];
        const char *eq = strchr(arg, '=');

        if (opts->edit == PCF_EDIT_SET && eq == NULL) {
            msg_fatal("missing '=' after parameter name: \"%.*s\"", PCF_SHOW, arg);
        } else if (opts->edit == PCF_EDIT_SET) {
            char *name = mystrndup(arg, (size_t)(eq - arg));
            char *value = mystrdup(eq + 1);

            reqs[i].name = mystrdup(trim(name));
            reqs[i].value = mystrdup(trim(value));
            myfree(name);
            myfree(value);
            if (*reqs[i].name == 0)
                msg_fatal("missing parameter name: \"%.*s\"", PCF_SHOW, arg);
            /* A line break would split the value and forge another setting. */
            if (strpbrk(reqs[i].value, "\n\r") != NULL)
                msg_fatal("value of %s contains a line break", reqs[i].name);
        } else {
            if (eq != NULL)
                msg_fatal("%s takes parameter names, not name=value: \"%.*s\"",
                          opts->edit == PCF_EDIT_REMOVE ? "-X" : "-#", PCF_SHOW, arg);
            reqs[i].name = mystrdup(arg);
        }
        if (!mail_conf_name_ok(reqs[i].name))
            msg_fatal("bad parameter name: \"%.*s\"", PCF_SHOW, reqs[i].name);
    }
    *count = n;
    return reqs;
}

/* pcf_find_req - the last request for name (a later argument wins), or NULL */
static PCF_REQ *pcf_find_req(PCF_REQ *reqs, size_t count, const char *name)
{
    for (size_t i = count; i > 0; i--)
        if (strcmp(reqs[i - 1].name, name) == 0)
            return &reqs[i - 1];
    return NULL;
}

/* pcf_add_setting - "name = value" */
static void pcf_add_setting(VSTR *out, const PCF_REQ *req)
{
    if (*req->value)
        vstr_sprintf_append(out, "%s = %s\n", req->name, req->value);
    else
        vstr_sprintf_append(out, "%s =\n", req->name);
}

/* pcf_rewrite - the new text of main.cf */
static void pcf_rewrite(const PCF_OPTS *opts, const char *text, size_t len, PCF_REQ *reqs,
                        size_t count, VSTR *out)
{
    const char *cp = text, *end = text + len;
    PCF_REQ *cur = NULL; /* request that owns the current setting, if any */

    while (cp < end) {
        const char *nl = memchr(cp, '\n', (size_t)(end - cp));
        size_t llen = nl ? (size_t)(nl - cp) : (size_t)(end - cp);
        size_t full = nl ? llen + 1 : llen;
        enum pcf_line_kind kind = pcf_line_kind(cp, llen);
        int keep = 1;

        if (kind == PCF_START) {
            char *name = pcf_line_name(cp, llen);

            cur = pcf_find_req(reqs, count, name);
            myfree(name);
        }
        if (cur != NULL && kind != PCF_OTHER) {
            switch (opts->edit) {
            case PCF_EDIT_SET:
                /* The first setting is replaced in place, later ones dropped. */
                if (kind == PCF_START && !cur->done) {
                    pcf_add_setting(out, cur);
                    cur->done = 1;
                }
                keep = 0;
                break;
            case PCF_EDIT_REMOVE: keep = 0; break;
            case PCF_EDIT_COMMENT: vstr_addch(out, '#'); break;
            default: break;
            }
        }
        if (keep) {
            vstr_ncat(out, cp, full);
            if (nl == NULL && opts->edit == PCF_EDIT_SET)
                vstr_addch(out, '\n');
        }
        cp += full;
    }
    if (opts->edit != PCF_EDIT_SET)
        return;
    /* New settings go at the end, in argument order, each once. */
    for (size_t i = 0; i < count; i++)
        if (!reqs[i].done && pcf_find_req(reqs, count, reqs[i].name) == &reqs[i]) {
            if (vstr_len(out) > 0 && vstr_str(out)[vstr_len(out) - 1] != '\n')
                vstr_addch(out, '\n');
            pcf_add_setting(out, &reqs[i]);
            reqs[i].done = 1;
        }
}

/* pcf_edit_main - apply -e, -X or -# to main.cf */
void pcf_edit_main(const PCF_OPTS *opts, char **args)
{
    /* Static: still reachable when msg_fatal exits (no leak reports). */
    static VSTR *path, *out;
    static char *text, *real;
    size_t len, count;
    struct stat st;

    PCF_REQ *reqs = pcf_parse_requests(opts, args, &count);

    path = vstr_alloc(256);
    out = vstr_alloc(4096);
    vstr_sprintf(path, "%s/main.cf", opts->config_dir);
    text = file_read_all(vstr_str(path), MAIL_CONF_FILE_MAX, &len);

    if (text == NULL)
        msg_fatal("open %s: %s", vstr_str(path),
                  errno == EFBIG ? "file too large" : strerror(errno));
    if (memchr(text, 0, len) != NULL)
        msg_fatal("%s: NUL character in file; not editing it", vstr_str(path));
    pcf_rewrite(opts, text, len, reqs, count, out);

    /* Edit the file a symbolic link points to, not the link. */
    if ((real = realpath(vstr_str(path), NULL)) == NULL)
        msg_fatal("realpath %s: %m", vstr_str(path));
    if (stat(real, &st) < 0)
        msg_fatal("stat %s: %m", real);
    if (vstr_len(out) != len || memcmp(vstr_str(out), text, len) != 0) {
        if (file_write_atomic(real, vstr_str(out), vstr_len(out), (int)(st.st_mode & 07777)) < 0)
            msg_fatal("write %s: %m", real);
        /* Keep the old permissions (the umask applied at creation) and owner. */
        if (chmod(real, st.st_mode & 07777) < 0)
            msg_warn("chmod %s: %m", real);
        if ((st.st_uid != geteuid() || st.st_gid != getegid()) &&
            chown(real, st.st_uid, st.st_gid) < 0)
            msg_warn("chown %s: %m", real);
    }
    free(real); /* from realpath(3), not mymalloc */
    real = NULL;
    for (size_t i = 0; i < count; i++) {
        myfree(reqs[i].name);
        myfree(reqs[i].value);
    }
    myfree(reqs);
    myfree(text);
    vstr_free(out);
    vstr_free(path);
    text = NULL;
    out = path = NULL;
}
