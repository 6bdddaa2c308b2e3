/*
 * postalias - build and query alias tables, as Postfix's postalias(1).
 *
 *   postalias [-Nfinoprsvw] [-c config_dir] [-d key] [-q key] [type:]file ...
 *
 * Without -q, -d or -s: build type:file (hash: or btree:, giving file.db)
 * from the aliases(5) text file, or with -i add aliases(5) lines from
 * standard input to it. The source format is not postmap's "key value":
 * each entry is "name: value, value, ...", the colon is required, a name
 * may be quoted, lines starting with white space continue the previous
 * one and '#' starts a comment line. Names are folded to lower case unless
 * -f is given. A table is never written in place: the new table is built in
 * a temporary file and renamed over the old one, so that local(8) sees the
 * old table or the new one, complete.
 *
 * -q key prints the value of key (the first table that has it; "-" reads
 * keys from standard input), -d key deletes it, -s prints every entry.
 *
 * Run by root, the table is built with the rights of the source file's
 * owner (unless -o), so the result belongs to that owner and a hostile
 * source cannot make root write where its owner could not; the owner of
 * the table decides the rights that local(8) gives to commands and files
 * in it.
 *
 * Exit status: 0 success (for -q and -d: found), 1 not found or an error,
 * 64 bad usage.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/alias_parse.h"
#include "mail/dict.h"
#include "mail/mail_conf.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"
#include "util/vstr.h"

#define POSTALIAS_EX_USAGE 64 /* sysexits.h EX_USAGE */
#define POSTALIAS_MAX_GROUPS 256
#define POSTALIAS_CHECK_ITEMS 100000 /* destinations checked in one value */

#define POSTALIAS_FLAG_AS_OWNER (1 << 0)  /* build as the source file's owner (root only) */
#define POSTALIAS_FLAG_SAVE_PERM (1 << 1) /* no more group/other read than the source */
#define POSTALIAS_FLAG_NO_DUP_WARN (1 << 2)

/* Open tables, closed (and an unfinished build discarded) on a fatal exit. */
static DICT **postalias_dicts;
static size_t postalias_ndicts;

/* postalias_cleanup - fatal-exit hook */
static void postalias_cleanup(void)
{
    while (postalias_ndicts > 0)
        dict_close(postalias_dicts[--postalias_ndicts]);
    myfree(postalias_dicts);
    postalias_dicts = NULL;
}

/* postalias_close - close a table opened with postalias_open */
static void postalias_close(DICT *d)
{
    for (size_t i = 0; i < postalias_ndicts; i++) {
        if (postalias_dicts[i] == d) {
            postalias_dicts[i] = postalias_dicts[--postalias_ndicts];
            break;
        }
    }
    dict_close(d);
}

/* postalias_usage - explain and exit */
_Noreturn static void postalias_usage(void)
{
    msg_fatal_status(POSTALIAS_EX_USAGE,
                     "usage: %s [-Nfinoprsvw] [-c config_dir] [-d key] [-q key] "
                     "[type:]file ...",
                     msg_program());
}

/* postalias_split - "type:name", or a bare file name with the default type */
static char *postalias_split(const char *arg, const char **name)
{
    const char *colon = strchr(arg, ':');

    if (colon && colon > arg && memchr(arg, '/', (size_t)(colon - arg)) == NULL) {
        *name = colon + 1;
        return mystrndup(arg, (size_t)(colon - arg));
    }
    *name = arg;
    return mystrdup(var_str("default_database_type"));
}

/* postalias_open - open a table or die with the reason */
static DICT *postalias_open(const char *arg, int mode, int flags)
{
    const char *name;
    char *type = postalias_split(arg, &name);
    VSTR *why = vstr_alloc(100);
    DICT *d = dict_open_type(type, name, mode, flags, why);

    if (d == NULL)
        msg_fatal("%s", vstr_str(why));
    vstr_free(why);
    myfree(type);
    postalias_dicts =
        myrealloc(postalias_dicts, size_mul(postalias_ndicts + 1, sizeof(*postalias_dicts)));
    postalias_dicts[postalias_ndicts++] = d;
    return d;
}

/* postalias_getline - one line of standard input; 1, or 0 at the end */
static int postalias_getline(VSTR *buf)
{
    int ch;

    for (;;) {
        int toolong = 0, any = 0;

        vstr_reset(buf);
        while ((ch = getc(stdin)) != EOF && ch != '\n') {
            any = 1;
            if (vstr_addch(buf, ch) < 0)
                toolong = 1;
        }
        if (ch == EOF && ferror(stdin))
            msg_fatal("read standard input: %s", strerror(errno));
        if (ch == EOF && !any)
            return 0;
        if (!toolong)
            return 1;
        msg_warn("standard input: line longer than %d bytes: ignoring it", DICT_LINE_MAX);
    }
}

/* postalias_lookup - dict_get that dies on a failed lookup */
static const char *postalias_lookup(DICT *d, const char *key)
{
    const char *value = dict_get(d, key);

    if (value == NULL && d->error != DICT_ERR_NONE)
        msg_fatal("table %s:%s: query error", d->type, d->name);
    return value;
}

/* postalias_flush - make sure what we printed got out */
static void postalias_flush(void)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        msg_fatal("write standard output: %s", strerror(errno));
}

/* postalias_query - -q key: the first table that has it; 1 found */
static int postalias_query(char **maps, int count, const char *key, int flags)
{
    for (int i = 0; i < count; i++) {
        DICT *d = postalias_open(maps[i], DICT_MODE_READ, flags);
        const char *value = postalias_lookup(d, key);

        if (value) {
            printf("%s\n", value);
            postalias_flush();
            postalias_close(d);
            return 1;
        }
        postalias_close(d);
    }
    return 0;
}

/* postalias_queries - -q -: keys from standard input, "key: value" out */
static int postalias_queries(char **maps, int count, int flags)
{
    VSTR *key = vstr_alloc(100);
    size_t base = postalias_ndicts;
    int found = 0;

    vstr_set_limit(key, DICT_LINE_MAX);
    for (int i = 0; i < count; i++)
        postalias_open(maps[i], DICT_MODE_READ, flags);
    while (postalias_getline(key)) {
        for (int i = 0; i < count; i++) {
            const char *value = postalias_lookup(postalias_dicts[base + (size_t)i], vstr_str(key));

            if (value) {
                printf("%s: %s\n", vstr_str(key), value);
                found = 1;
                break;
            }
        }
    }
    postalias_flush();
    while (postalias_ndicts > base)
        postalias_close(postalias_dicts[postalias_ndicts - 1]);
    vstr_free(key);
    return found;
}

/* postalias_commit - put a written table in place or die */
static void postalias_commit(DICT *d)
{
    VSTR *why = vstr_alloc(100);

    if (dict_commit(d, why) < 0)
        msg_fatal("%s", vstr_str(why));
    vstr_free(why);
}

/* postalias_signals - hold (1) or release (0) the signals that would stop us
   between writing and renaming */
static void postalias_signals(int hold)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL) < 0)
        msg_fatal("sigprocmask: %s", strerror(errno));
}

/* postalias_delete - -d key from every table; 1 when any had it */
static int postalias_delete(char **maps, int count, const char *key, int flags)
{
    int found = 0;

    for (int i = 0; i < count; i++) {
        postalias_signals(1);
        postalias_close(postalias_open(maps[i], DICT_MODE_READ, flags));
        DICT *d = postalias_open(maps[i], DICT_MODE_UPDATE, flags);
        int r = dict_del(d, key);

        if (r < 0)
            msg_fatal("table %s:%s: delete error", d->type, d->name);
        if (r == 0) {
            postalias_commit(d);
            found = 1;
        }
        postalias_close(d);
        postalias_signals(0);
    }
    return found;
}

/* postalias_sequence - -s: every entry of the first table, in aliases(5) form */
static void postalias_sequence(const char *map, int flags)
{
    DICT *d = postalias_open(map, DICT_MODE_READ, flags);
    const char *key, *value;
    int r;

    for (int how = DICT_SEQ_FIRST; (r = dict_seq(d, how, &key, &value)) == 0; how = DICT_SEQ_NEXT)
        printf("%s: %s\n", key, value);
    if (r < 0)
        msg_fatal("table %s:%s: sequence error", d->type, d->name);
    postalias_flush();
    postalias_close(d);
}

/* Who we were before becoming the source file's owner. */
typedef struct POSTALIAS_CRED {
    int changed;
    uid_t euid;
    gid_t egid;
    gid_t groups[POSTALIAS_MAX_GROUPS];
    int ngroups;
} POSTALIAS_CRED;

/* postalias_become - as root, build with the rights of the source's owner */
static void postalias_become(const struct stat *st, POSTALIAS_CRED *saved)
{
    saved->changed = 0;
    if (geteuid() != 0 || (st->st_uid == 0 && st->st_gid == 0))
        return;
    saved->euid = geteuid();
    saved->egid = getegid();
    if ((saved->ngroups = getgroups(POSTALIAS_MAX_GROUPS, saved->groups)) < 0)
        msg_fatal("getgroups: %s", strerror(errno));
    if (setgroups(1, &st->st_gid) < 0 || setegid(st->st_gid) < 0 || seteuid(st->st_uid) < 0)
        msg_fatal("set effective uid/gid %ld/%ld: %s", (long)st->st_uid, (long)st->st_gid,
                  strerror(errno));
    saved->changed = 1;
}

/* postalias_restore - undo postalias_become */
static void postalias_restore(const POSTALIAS_CRED *saved)
{
    if (!saved->changed)
        return;
    if (seteuid(saved->euid) < 0 || setegid(saved->egid) < 0 ||
        setgroups((size_t)saved->ngroups, saved->groups) < 0)
        msg_fatal("restore privileges: %s", strerror(errno));
}

/* postalias_check_value - warn about a value local(8) could not use */
static void postalias_check_value(const char *source, int lineno, const char *value)
{
    VSTR *why = vstr_alloc(64);
    ALIAS_LIST *list = alias_list_parse(value, strlen(value), 0, POSTALIAS_CHECK_ITEMS, why);

    if (list == NULL)
        msg_warn("%s, line %d: %s", source, lineno, vstr_str(why));
    else if (list->count == 0)
        msg_warn("%s, line %d: alias has no destinations", source, lineno);
    alias_list_free(list);
    vstr_free(why);
}

/* postalias_load - the aliases of a source into the table being written */
static void postalias_load(DICT *d, FILE *fp, const char *source, int pflags, int flags)
{
    DICT_READER *rd = dict_reader_new(fp, source);
    VSTR *buf = vstr_alloc(256);
    const char *line;
    int lineno, rc;

    while ((rc = dict_reader_next(rd, &line, &lineno)) > 0) {
        char *name, *value;
        const char *err;

        vstr_cpy(buf, line);
        if (alias_parse_line(vstr_str(buf), &name, &value, &err) < 0) {
            msg_warn("%s, line %d: %s -- ignoring this line", source, lineno, err);
            continue;
        }
        if (flags & DICT_FLAG_FOLD_FIX)
            lowercase(name);
        postalias_check_value(source, lineno, value);
        int r = dict_put(d, name, value);

        if (r < 0)
            msg_fatal("table %s:%s: write error", d->type, d->name);
        if (r == 1 && !(pflags & POSTALIAS_FLAG_NO_DUP_WARN))
            msg_warn("%s, line %d: duplicate entry: \"%s\"", source, lineno, name);
    }
    if (rc < 0)
        msg_fatal("read %s: %s", source, strerror(errno));
    dict_reader_free(rd);
    vstr_free(buf);
}

/* postalias_build - a table from its source file, or add stdin (-i) */
static void postalias_build(const char *map, int incremental, int flags, int pflags)
{
    const char *name;
    char *type = postalias_split(map, &name);
    FILE *fp;
    const char *source;
    struct stat st;
    mode_t saved_mask = 0;
    int mask_changed = 0;
    POSTALIAS_CRED cred = {0};

    if (incremental) {
        fp = stdin;
        source = "stdin";
    } else {
        if (!dict_type_known(type))
            msg_fatal("unsupported dictionary type: %s", type);
        if ((fp = fopen(name, "re")) == NULL)
            msg_fatal("open %s: %s", name, strerror(errno));
        source = name;
        if (fstat(fileno(fp), &st) < 0)
            msg_fatal("fstat %s: %s", name, strerror(errno));
        if (!S_ISREG(st.st_mode))
            msg_fatal("open %s: not a regular file", name);
        if (pflags & POSTALIAS_FLAG_SAVE_PERM) {
            saved_mask = umask(022 | (~st.st_mode & 077));
            mask_changed = 1;
        }
        if (pflags & POSTALIAS_FLAG_AS_OWNER)
            postalias_become(&st, &cred);
    }
    postalias_signals(1);
    DICT *d = postalias_open(map, incremental ? DICT_MODE_UPDATE : DICT_MODE_CREATE, flags);

    if (mask_changed)
        umask(saved_mask);
    postalias_load(d, fp, source, pflags, flags);
    postalias_commit(d);
    postalias_close(d);
    postalias_signals(0);
    postalias_restore(&cred);
    if (fp != stdin)
        fclose(fp);
    myfree(type);
}

/* postalias_read_config - main.cf when there is one: tables build without */
static void postalias_read_config(const char *dir_arg)
{
    const char *dir = mail_conf_dir(dir_arg);
    VSTR *path = vstr_alloc(256);
    struct stat st;

    vstr_sprintf(path, "%s/main.cf", dir);
    if (stat(vstr_str(path), &st) == 0)
        mail_conf_read(dir);
    else if (dir_arg != NULL)
        msg_fatal("open %s: %s", vstr_str(path), strerror(errno));
    vstr_free(path);
}

int main(int argc, char **argv)
{
    int flags = DICT_FLAG_FOLD_FIX | DICT_FLAG_DUP_IGNORE;
    int pflags = POSTALIAS_FLAG_AS_OWNER | POSTALIAS_FLAG_SAVE_PERM;
    const char *config_dir = NULL, *query = NULL, *delkey = NULL;
    int sequence = 0, incremental = 0, ch;

    umask(022);
    msg_init(argc > 0 ? argv[0] : "postalias");
    msg_set_cleanup(postalias_cleanup);
    if (getenv("MAIL_VERBOSE"))
        msg_verbose = 1;

    while ((ch = getopt(argc, argv, "Nc:d:finopq:rsvw")) != -1) {
        switch (ch) {
        case 'N': flags = (flags & ~DICT_FLAG_TRY0NULL) | DICT_FLAG_TRY1NULL; break;
        case 'n': flags = (flags & ~DICT_FLAG_TRY1NULL) | DICT_FLAG_TRY0NULL; break;
        case 'c': config_dir = optarg; break;
        case 'd':
        case 'q':
            if (sequence || query || delkey) {
                msg_error("specify only one of -s -q or -d");
                postalias_usage();
            }
            if (ch == 'd')
                delkey = optarg;
            else
                query = optarg;
            break;
        case 's':
            if (query || delkey) {
                msg_error("specify only one of -s -q or -d");
                postalias_usage();
            }
            sequence = 1;
            break;
        case 'f': flags &= ~DICT_FLAG_FOLD_FIX; break;
        case 'i': incremental = 1; break;
        case 'o': pflags &= ~POSTALIAS_FLAG_AS_OWNER; break;
        case 'p': pflags &= ~POSTALIAS_FLAG_SAVE_PERM; break;
        case 'r':
            flags = (flags & ~DICT_FLAG_DUP_IGNORE) | DICT_FLAG_DUP_REPLACE;
            pflags |= POSTALIAS_FLAG_NO_DUP_WARN;
            break;
        case 'v': msg_verbose++; break;
        case 'w':
            flags = (flags & ~DICT_FLAG_DUP_REPLACE) | DICT_FLAG_DUP_IGNORE;
            pflags |= POSTALIAS_FLAG_NO_DUP_WARN;
            break;
        default: postalias_usage();
        }
    }
    postalias_read_config(config_dir);
    /* No table named: the alias_database parameter (what newaliases builds). */
    ARGV *defaults = NULL;
    char **maps = argv + optind;
    int count = argc - optind;

    if (count == 0) {
        if (query || delkey || sequence)
            postalias_usage();
        defaults = var_list("alias_database");
        if (defaults->argc == 0)
            msg_fatal("no table named and alias_database is empty");
        maps = defaults->argv;
        count = (int)defaults->argc;
    }
    if (delkey)
        exit(postalias_delete(maps, count, delkey, flags) ? 0 : 1);
    if (query) {
        if (strcmp(query, "-") == 0)
            exit(postalias_queries(maps, count, flags) ? 0 : 1);
        exit(postalias_query(maps, count, query, flags) ? 0 : 1);
    }
    if (sequence) {
        postalias_sequence(maps[0], flags);
        exit(0);
    }
    for (int i = 0; i < count; i++)
        postalias_build(maps[i], incremental, flags, pflags);
    argv_free(defaults);
    exit(0);
}
