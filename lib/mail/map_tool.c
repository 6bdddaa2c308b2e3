/*
 * map_tool - the engine of postmap(1) and postalias(1): build, query,
 * update and list lookup tables.
 *
 * The two commands differ only in their source syntax ("key value" or
 * aliases(5) "name: value, ..."), in how they print entries, and in
 * postalias's default table (alias_database); a MAP_TOOL says which.
 *
 * A table is never written in place: the new one is built in a temporary
 * file which is renamed over the old one, so programs reading the table
 * see either the old or the new one, complete. Run by root, a table is
 * built with the rights of its source file's owner (unless -o), so a
 * hostile source cannot make root write where its owner could not.
 *
 * Exit status: 0 success (for -q and -d: found), 1 not found or an error
 * (errors are always reported on standard error), 64 bad usage.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/dict.h"
#include "mail/mail_conf.h"
#include "mail/map_tool.h"
#include "util/argv.h"
#include "util/strutil.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define MAP_TOOL_EX_USAGE 64 /* sysexits.h EX_USAGE */
#define MAP_TOOL_MAX_GROUPS 256

#define MAP_TOOL_FLAG_AS_OWNER (1 << 0)  /* build as the source file's owner (root only) */
#define MAP_TOOL_FLAG_SAVE_PERM (1 << 1) /* no more group/other read than the source */
#define MAP_TOOL_FLAG_NO_DUP_WARN (1 << 2)

static const MAP_TOOL *map_tool; /* the command being run */

/* Every table we have open, so that a fatal exit closes them all (a table
   being written is then discarded, never left half-built). */
static DICT **map_tool_dicts;
static size_t map_tool_ndicts;

/* map_tool_cleanup - fatal-exit hook */
static void map_tool_cleanup(void)
{
    while (map_tool_ndicts > 0)
        dict_close(map_tool_dicts[--map_tool_ndicts]);
    myfree(map_tool_dicts);
    map_tool_dicts = NULL;
}

/* map_tool_close - close a table opened with map_tool_open */
static void map_tool_close(DICT *d)
{
    for (size_t i = 0; i < map_tool_ndicts; i++) {
        if (map_tool_dicts[i] == d) {
            map_tool_dicts[i] = map_tool_dicts[--map_tool_ndicts];
            break;
        }
    }
    dict_close(d);
}

/* map_tool_usage - explain and exit */
_Noreturn static void map_tool_usage(void)
{
    msg_fatal_status(MAP_TOOL_EX_USAGE,
                     "usage: %s [-Nfinoprsvw] [-c config_dir] [-d key] [-q key] "
                     "[type:]file ...",
                     msg_program());
}

/* map_tool_split - "type:name" or a bare file name with the default type.
   A ':' after a '/' belongs to the file name. */
static char *map_tool_split(const char *arg, const char **name)
{
    const char *colon = strchr(arg, ':');

    if (colon && memchr(arg, '/', (size_t)(colon - arg)) == NULL && colon > arg) {
        *name = colon + 1;
        return mystrndup(arg, (size_t)(colon - arg));
    }
    *name = arg;
    return mystrdup(var_str("default_database_type"));
}

/* map_tool_open - open a table or die with the reason */
static DICT *map_tool_open(const char *arg, int mode, int flags)
{
    const char *name;
    char *type = map_tool_split(arg, &name);
    VSTR *why = vstr_alloc(100);
    DICT *d = dict_open_type(type, name, mode, flags, why);

    if (d == NULL)
        msg_fatal("%s", vstr_str(why));
    vstr_free(why);
    myfree(type);
    map_tool_dicts = myrealloc(map_tool_dicts, size_mul(map_tool_ndicts + 1, sizeof(DICT *)));
    map_tool_dicts[map_tool_ndicts++] = d;
    return d;
}

/* map_tool_getline - one line of standard input without its newline; 1, or
   0 at the end. Over-long lines are skipped with a warning. */
static int map_tool_getline(FILE *fp, VSTR *buf)
{
    int ch;

    for (;;) {
        int toolong = 0;
        int any = 0;

        vstr_reset(buf);
        while ((ch = getc_unlocked(fp)) != EOF && ch != '\n') {
            any = 1;
            if (vstr_addch(buf, ch) < 0)
                toolong = 1;
        }
        if (ch == EOF && ferror(fp))
            msg_fatal("read standard input: %s", strerror(errno));
        if (ch == EOF && !any)
            return 0;
        if (!toolong)
            return 1;
        msg_warn("standard input: line longer than %d bytes: ignoring it", DICT_LINE_MAX);
    }
}

/* map_tool_check_value - Postfix's warning for a table that "finds" nothing */
static void map_tool_check_value(const DICT *d, const char *key, const char *value)
{
    if (map_tool->check_results && *value == 0) {
        msg_warn("table %s:%s: key %s: empty string result is not allowed", d->type, d->name, key);
        msg_warn("table %s:%s should return NO RESULT in case of NOT FOUND", d->type, d->name);
    }
}

/* map_tool_lookup - dict_get that dies on a failed lookup */
static const char *map_tool_lookup(DICT *d, const char *key)
{
    const char *value = dict_get(d, key);

    if (value == NULL && d->error != DICT_ERR_NONE)
        msg_fatal("table %s:%s: query error", d->type, d->name);
    if (value)
        map_tool_check_value(d, key, value);
    return value;
}

/* map_tool_flush - make sure what we printed got out */
static void map_tool_flush(void)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        msg_fatal("write standard output: %s", strerror(errno));
}

/* map_tool_query - -q key: the first table that has it; 1 found */
static int map_tool_query(char **maps, int count, const char *key, int flags)
{
    for (int i = 0; i < count; i++) {
        DICT *d = map_tool_open(maps[i], DICT_MODE_READ, flags);
        const char *value = map_tool_lookup(d, key);

        if (value) {
            printf("%s\n", value);
            map_tool_flush();
            map_tool_close(d);
            return 1;
        }
        map_tool_close(d);
    }
    return 0;
}

/* map_tool_queries - -q -: keys from standard input, "key SEP value" out */
static int map_tool_queries(char **maps, int count, int flags)
{
    VSTR *key = vstr_alloc(100);
    size_t base = map_tool_ndicts;
    int found = 0;

    vstr_set_limit(key, DICT_LINE_MAX);
    for (int i = 0; i < count; i++)
        map_tool_open(maps[i], DICT_MODE_READ, flags);
    while (map_tool_getline(stdin, key)) {
        for (int i = 0; i < count; i++) {
            const char *value = map_tool_lookup(map_tool_dicts[base + (size_t)i], vstr_str(key));

            if (value) {
                printf("%s%s%s\n", vstr_str(key), map_tool->separator, value);
                found = 1;
                break;
            }
        }
    }
    map_tool_flush();
    while (map_tool_ndicts > base)
        map_tool_close(map_tool_dicts[map_tool_ndicts - 1]);
    vstr_free(key);
    return found;
}

/* map_tool_commit - put a written table in place or die */
static void map_tool_commit(DICT *d)
{
    VSTR *why = vstr_alloc(100);

    if (dict_commit(d, why) < 0)
        msg_fatal("%s", vstr_str(why));
    vstr_free(why);
}

/* map_tool_open_update - open for update; the table must exist already */
static DICT *map_tool_open_update(const char *arg, int flags)
{
    map_tool_close(map_tool_open(arg, DICT_MODE_READ, flags));
    return map_tool_open(arg, DICT_MODE_UPDATE, flags);
}

/* map_tool_signals - hold (1) or release (0) the signals that would stop us
   between writing and renaming */
static void map_tool_signals(int hold)
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

/* map_tool_delete - -d key: remove from every table; 1 when any had it */
static int map_tool_delete(char **maps, int count, const char *key, int flags)
{
    int found = 0;

    for (int i = 0; i < count; i++) {
        map_tool_signals(1);
        DICT *d = map_tool_open_update(maps[i], flags);
        int r = dict_del(d, key);

        if (r < 0)
            msg_fatal("table %s:%s: delete error", d->type, d->name);
        if (r == 0) {
            map_tool_commit(d);
            found = 1;
        }
        map_tool_close(d);
        map_tool_signals(0);
    }
    return found;
}

/* map_tool_deletes - -d -: keys from standard input */
static int map_tool_deletes(char **maps, int count, int flags)
{
    DICT **dicts = mycalloc((size_t)count, sizeof(*dicts));
    int *changed = mycalloc((size_t)count, sizeof(*changed));
    VSTR *key = vstr_alloc(100);
    int found = 0;

    vstr_set_limit(key, DICT_LINE_MAX);
    for (int i = 0; i < count; i++)
        dicts[i] = map_tool_open_update(maps[i], flags);
    while (map_tool_getline(stdin, key)) {
        for (int i = 0; i < count; i++) {
            int r = dict_del(dicts[i], vstr_str(key));

            if (r < 0)
                msg_fatal("table %s:%s: delete error", dicts[i]->type, dicts[i]->name);
            if (r == 0)
                changed[i] = found = 1;
        }
    }
    map_tool_signals(1);
    for (int i = 0; i < count; i++) {
        if (changed[i])
            map_tool_commit(dicts[i]);
        map_tool_close(dicts[i]);
    }
    map_tool_signals(0);
    myfree(changed);
    myfree(dicts);
    vstr_free(key);
    return found;
}

/* map_tool_sequence - -s: every entry of the first table */
static void map_tool_sequence(const char *map, int flags)
{
    DICT *d = map_tool_open(map, DICT_MODE_READ, flags);
    const char *key;
    const char *value;
    int r;

    for (int how = DICT_SEQ_FIRST; (r = dict_seq(d, how, &key, &value)) == 0; how = DICT_SEQ_NEXT) {
        if (*key == 0 && map_tool->check_results)
            msg_warn("table %s:%s: empty lookup key value is not allowed", d->type, d->name);
        else
            map_tool_check_value(d, key, value);
        printf("%s%s%s\n", key, map_tool->separator, value);
    }
    if (r < 0)
        msg_fatal("table %s:%s: sequence error", d->type, d->name);
    map_tool_flush();
    map_tool_close(d);
}

/* MAP_TOOL_CRED - who we were before becoming the source file's owner */
typedef struct MAP_TOOL_CRED {
    int changed;
    uid_t euid;
    gid_t egid;
    gid_t groups[MAP_TOOL_MAX_GROUPS];
    int ngroups;
} MAP_TOOL_CRED;

/* map_tool_become - as root, build as the owner of the source file, so the
   result has the right owner and a hostile source cannot make root write
   where its owner could not */
static void map_tool_become(const struct stat *st, MAP_TOOL_CRED *saved)
{
    saved->changed = 0;
    if (geteuid() != 0 || (st->st_uid == 0 && st->st_gid == 0))
        return;
    saved->euid = geteuid();
    saved->egid = getegid();
    if ((saved->ngroups = getgroups(MAP_TOOL_MAX_GROUPS, saved->groups)) < 0)
        msg_fatal("getgroups: %s", strerror(errno));
    if (setgroups(1, &st->st_gid) < 0 || setegid(st->st_gid) < 0 || seteuid(st->st_uid) < 0)
        msg_fatal("set effective uid/gid %ld/%ld: %s", (long)st->st_uid, (long)st->st_gid,
                  strerror(errno));
    saved->changed = 1;
}

/* map_tool_restore - undo map_tool_become */
static void map_tool_restore(const MAP_TOOL_CRED *saved)
{
    if (!saved->changed)
        return;
    if (seteuid(saved->euid) < 0 || setegid(saved->egid) < 0 ||
        setgroups((size_t)saved->ngroups, saved->groups) < 0)
        msg_fatal("restore privileges: %s", strerror(errno));
}

/* map_tool_load - the entries of a source into the table being written */
static void map_tool_load(DICT *d, FILE *fp, const char *source, int pflags)
{
    DICT_READER *rd = dict_reader_new(fp, source);
    VSTR *buf = vstr_alloc(256);
    const char *line;
    int lineno;
    int rc;

    while ((rc = dict_reader_next(rd, &line, &lineno)) > 0) {
        char *key;
        char *value;
        const char *err;

        vstr_cpy(buf, line);
        if (map_tool->parse(vstr_str(buf), &key, &value, &err) < 0) {
            msg_warn("%s, line %d: %s -- ignoring this line", source, lineno, err);
            continue;
        }
        /* The table folds the key too; folding here names it in warnings
           as it is stored. */
        if (d->flags & DICT_FLAG_FOLD_FIX)
            lowercase(key);
        if (map_tool->check_entry)
            map_tool->check_entry(source, lineno, key, value);
        int r = dict_put(d, key, value);

        if (r < 0)
            msg_fatal("table %s:%s: write error", d->type, d->name);
        if (r == 1 && !(pflags & MAP_TOOL_FLAG_NO_DUP_WARN))
            msg_warn("%s, line %d: duplicate entry: \"%s\"", source, lineno, key);
    }
    if (rc < 0)
        msg_fatal("read %s: %s", source, strerror(errno));
    dict_reader_free(rd);
    vstr_free(buf);
}

/* map_tool_build - create a table from its source file, or add stdin (-i) */
static void map_tool_build(const char *map, int incremental, int flags, int pflags)
{
    const char *name;
    char *type = map_tool_split(map, &name);
    FILE *fp;
    const char *source;
    struct stat st;
    mode_t saved_mask = 0;
    int mask_changed = 0;
    MAP_TOOL_CRED cred = {0};

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
        /* No more readable by group and others than the source is. */
        if (pflags & MAP_TOOL_FLAG_SAVE_PERM) {
            saved_mask = umask(022 | (~st.st_mode & 077));
            mask_changed = 1;
        }
        if (pflags & MAP_TOOL_FLAG_AS_OWNER)
            map_tool_become(&st, &cred);
    }
    map_tool_signals(1);
    DICT *d = map_tool_open(map, incremental ? DICT_MODE_UPDATE : DICT_MODE_CREATE, flags);

    if (mask_changed)
        umask(saved_mask);
    map_tool_load(d, fp, source, pflags);
    map_tool_commit(d);
    map_tool_close(d);
    map_tool_signals(0);
    map_tool_restore(&cred);
    if (fp != stdin)
        fclose(fp);
    myfree(type);
}

/* map_tool_read_config - main.cf from the -c directory, $MAIL_CONFIG or the
   default, when there is one: a table can be built without any */
static void map_tool_read_config(const char *dir_arg)
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

/* map_tool_main - run postmap or postalias */
_Noreturn void map_tool_main(int argc, char **argv, const MAP_TOOL *tool)
{
    int flags = DICT_FLAG_FOLD_FIX | DICT_FLAG_DUP_IGNORE;
    int pflags = MAP_TOOL_FLAG_AS_OWNER | MAP_TOOL_FLAG_SAVE_PERM;
    const char *config_dir = NULL;
    const char *query = NULL;
    const char *delkey = NULL;
    int sequence = 0;
    int incremental = 0;
    int ch;

    umask(022);
    map_tool = tool;
    msg_init(argc > 0 ? argv[0] : tool->name);
    msg_set_cleanup(map_tool_cleanup);
    if (getenv("MAIL_VERBOSE"))
        msg_verbose = 1;

    while ((ch = getopt(argc, argv, "Nc:d:fimnopq:rsvw")) != -1) {
        switch (ch) {
        case 'N': flags = (flags & ~DICT_FLAG_TRY0NULL) | DICT_FLAG_TRY1NULL; break;
        case 'n': flags = (flags & ~DICT_FLAG_TRY1NULL) | DICT_FLAG_TRY0NULL; break;
        case 'c': config_dir = optarg; break;
        case 'd':
            if (sequence || query || delkey) {
                msg_error("specify only one of -s -q or -d");
                map_tool_usage();
            }
            delkey = optarg;
            break;
        case 'q':
            if (sequence || query || delkey) {
                msg_error("specify only one of -s -q or -d");
                map_tool_usage();
            }
            query = optarg;
            break;
        case 's':
            if (query || delkey) {
                msg_error("specify only one of -s -q or -d");
                map_tool_usage();
            }
            sequence = 1;
            break;
        case 'f': flags &= ~DICT_FLAG_FOLD_FIX; break;
        case 'i': incremental = 1; break;
        case 'm': /* MIME parsing goes with -b/-h, which are not supported */
            msg_error("-m is not supported");
            map_tool_usage();
        case 'o': pflags &= ~MAP_TOOL_FLAG_AS_OWNER; break;
        case 'p': pflags &= ~MAP_TOOL_FLAG_SAVE_PERM; break;
        case 'r':
            flags = (flags & ~DICT_FLAG_DUP_IGNORE) | DICT_FLAG_DUP_REPLACE;
            pflags |= MAP_TOOL_FLAG_NO_DUP_WARN;
            break;
        case 'v': msg_verbose++; break;
        case 'w':
            flags = (flags & ~DICT_FLAG_DUP_REPLACE) | DICT_FLAG_DUP_IGNORE;
            pflags |= MAP_TOOL_FLAG_NO_DUP_WARN;
            break;
        default: map_tool_usage();
        }
    }
    map_tool_read_config(config_dir);

    char **maps = argv + optind;
    int count = argc - optind;
    ARGV *defaults = NULL;

    /* No table named: postalias builds alias_database (what newaliases does). */
    if (count == 0) {
        if (tool->default_tables == NULL || query || delkey || sequence)
            map_tool_usage();
        defaults = var_list(tool->default_tables);
        if (defaults->argc == 0)
            msg_fatal("no table named and %s is empty", tool->default_tables);
        maps = defaults->argv;
        count = (int)defaults->argc;
    }

    if (delkey) {
        if (strcmp(delkey, "-") == 0)
            exit(map_tool_deletes(maps, count, flags) ? 0 : 1);
        exit(map_tool_delete(maps, count, delkey, flags) ? 0 : 1);
    }
    if (query) {
        if (strcmp(query, "-") == 0)
            exit(map_tool_queries(maps, count, flags) ? 0 : 1);
        exit(map_tool_query(maps, count, query, flags) ? 0 : 1);
    }
    if (sequence) {
        map_tool_sequence(maps[0], flags);
        exit(0);
    }
    for (int i = 0; i < count; i++)
        map_tool_build(maps[i], incremental, flags, pflags);
    argv_free(defaults);
    exit(0);
}
