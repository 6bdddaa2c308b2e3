/*
 * local_expand - what happens to one recipient, in Postfix's order:
 *
 *   1. The local part is folded to lower case and split at the
 *      recipient_delimiter into user and extension (user+ext).
 *   2. alias_maps are searched for "user+ext", then "user". An alias
 *      value is a list of addresses, |commands, /files and :include:
 *      files, each delivered in turn; addresses in our domains are
 *      expanded again right here (the same steps, one level deeper),
 *      others are forwarded through cleanup.
 *   3. The user must exist (passwd, or in a private instance with
 *      local_home_directory any safe name); otherwise "unknown user".
 *   4. The first file of forward_path that exists (~/.forward+ext,
 *      ~/.forward) is read with the user's rights and used like an alias.
 *   5. Otherwise the mail goes to the user's mailbox (or mailbox_command).
 *
 * Loops: an alias that lists its own name, and a .forward that lists its
 * owner, deliver to that user's mailbox instead of expanding again (as
 * Postfix and sendmail do); "\user" always means the mailbox; nesting
 * deeper than LOCAL_EXPAND_DEPTH_MAX levels, or a message that already
 * carries our Delivered-To: for the address, bounces as a mail forwarding
 * loop. Destinations reached twice by one recipient are delivered once.
 *
 * Rights: commands and files from aliases run as the owner of the alias
 * table, or as default_privs when root owns it; from a .forward as its
 * user; from an :include: file as the file's owner unless that is root
 * (then as whoever included it). Nothing runs as root: root's commands and
 * files take default_privs.
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local.h"
#include "mail/mail_addr_find.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"

#define LOCAL_DUP_PREFIX_MAX 32  /* "command:4294967295:" and the like */
#define LOCAL_EXPAND_NEST_MAX 10 /* ${name?${other?...}} levels in forward_path */

/* Where a destination came from, and with which rights its commands run. */
typedef struct LOCAL_ORIGIN {
    int class;              /* LOCAL_CLASS_* */
    const char *alias_of;   /* alias name being expanded, or NULL */
    const char *forward_of; /* user whose .forward is being read, or NULL */
    LOCAL_PRIV priv;
    const LOCAL_USER *priv_user; /* HOME etc. for commands; may be NULL */
} LOCAL_ORIGIN;

static void local_deliver_address(LOCAL_STATE *st);

/* local_user_free - release a user */
void local_user_free(LOCAL_USER *u)
{
    if (u == NULL)
        return;
    myfree(u->name);
    myfree(u->home);
    myfree(u->shell);
    myfree(u);
}

/*
 * local_user_name_ok - a name that is safe as a directory name under
 * local_home_directory: letters, digits, '.', '_', '-', not starting with
 * '.' or '-', at most LOCAL_USER_NAME_MAX bytes. Anything else ("..",
 * "a/b", control characters) cannot be a private instance's user.
 */
static int local_user_name_ok(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > LOCAL_USER_NAME_MAX || name[0] == '.' || name[0] == '-')
        return 0;
    for (const char *cp = name; *cp; cp++)
        if (!isalnum((unsigned char)*cp) && *cp != '.' && *cp != '_' && *cp != '-')
            return 0;
    return 1;
}

/* local_user_from_pw - a LOCAL_USER from a passwd entry */
static LOCAL_USER *local_user_from_pw(const struct passwd *pw, int lhd)
{
    LOCAL_USER *u = mycalloc(1, sizeof(*u));
    VSTR *home = vstr_alloc(64);

    u->name = mystrdup(pw->pw_name);
    u->in_passwd = 1;
    if (local_conf.is_root) {
        u->uid = pw->pw_uid;
        u->gid = pw->pw_gid;
    } else {
        u->uid = local_conf.self_uid;
        u->gid = local_conf.self_gid;
    }
    if (lhd)
        vstr_sprintf(home, "%s/%s", local_conf.local_home_directory, pw->pw_name);
    else
        vstr_cpy(home, pw->pw_dir ? pw->pw_dir : "/");
    u->home = vstr_export(home);
    u->shell = mystrdup(pw->pw_shell ? pw->pw_shell : "");
    return u;
}

/* local_user_find - a user that can receive mail, or NULL */
LOCAL_USER *local_user_find(const char *name)
{
    int lhd = *local_conf.local_home_directory != 0;
    struct passwd *pw;

    errno = 0;
    if ((pw = getpwnam(name)) != NULL) {
        /* Under local_home_directory the name becomes a directory name. */
        if (lhd && !local_user_name_ok(pw->pw_name))
            return NULL;
        return local_user_from_pw(pw, lhd);
    }
    /* A private instance delivers to any safe name below local_home_directory. */
    if (!local_conf.is_root && lhd && local_user_name_ok(name)) {
        LOCAL_USER *u = mycalloc(1, sizeof(*u));
        VSTR *home = vstr_alloc(64);

        u->name = mystrdup(name);
        u->uid = local_conf.self_uid;
        u->gid = local_conf.self_gid;
        vstr_sprintf(home, "%s/%s", local_conf.local_home_directory, name);
        u->home = vstr_export(home);
        u->shell = mystrdup("/bin/sh");
        return u;
    }
    return NULL;
}

/* local_user_by_uid - the passwd entry of uid (for commands' environment) */
LOCAL_USER *local_user_by_uid(uid_t uid)
{
    struct passwd *pw = getpwuid(uid);

    return pw ? local_user_from_pw(pw, 0) : NULL;
}

/* local_dup_seen - this destination was delivered for this recipient already */
static int local_dup_seen(LOCAL_RCPT *rc, const char *kind, const char *what)
{
    VSTR *key = vstr_alloc(64);
    int seen = 0;

    vstr_sprintf(key, "%s:%s", kind, what);
    for (size_t i = 0; i < rc->dup_filter->argc; i++) {
        if (strcmp(rc->dup_filter->argv[i], vstr_str(key)) == 0) {
            seen = 1;
            break;
        }
    }
    /* A full filter lets duplicates through rather than losing mail. */
    if (!seen && (long)rc->dup_filter->argc < local_conf.duplicate_filter_limit)
        argv_add(rc->dup_filter, vstr_str(key), (char *)0);
    vstr_free(key);
    return seen;
}

/* local_state_free - release the strings of a state */
static void local_state_free(LOCAL_STATE *st)
{
    myfree(st->address);
    myfree(st->local);
    myfree(st->user);
    myfree(st->extension);
    myfree(st->domain);
}

/*
 * local_state_init - fill st for address (user+ext@domain; a missing domain
 * is $myorigin). The local part is folded to lower case and split at the
 * first recipient_delimiter, as Postfix does; an extension holding '/' is
 * dropped, because it becomes part of a .forward file name.
 */
static void local_state_init(LOCAL_STATE *st, const LOCAL_STATE *parent, LOCAL_MSG *msg,
                             LOCAL_RCPT *rc, const char *address)
{
    const char *at = strrchr(address, '@');
    size_t llen = at ? (size_t)(at - address) : strlen(address);
    VSTR *full = vstr_alloc(64);
    size_t off;

    memset(st, 0, sizeof(*st));
    st->msg = msg;
    st->rcpt = rc;
    st->parent = parent;
    st->level = parent ? parent->level + 1 : 0;
    st->local = mystrndup(address, llen);
    /* "john doe"@host as queued: the quotes are not part of the name. */
    if (llen >= 2 && st->local[0] == '"' && st->local[llen - 1] == '"') {
        memmove(st->local, st->local + 1, llen - 2);
        st->local[llen - 2] = 0;
    }
    lowercase(st->local);
    st->domain = mystrdup(at ? at + 1 : local_conf.myorigin);
    lowercase(st->domain);
    vstr_ncpy(full, address, llen);
    vstr_sprintf_append(full, "@%s", at ? at + 1 : local_conf.myorigin);
    st->address = vstr_export(full);
    off = mail_addr_ext_offset(st->local, strlen(st->local), local_conf.recipient_delimiter);
    st->user = mystrndup(st->local, off);
    if (st->local[off] && st->local[off + 1]) {
        st->extension = mystrdup(st->local + off + 1);
        if (strchr(st->extension, '/') != NULL) {
            msg_warn("%s: address with illegal extension: %s", msg->queue_id, st->local);
            myfree(st->extension);
            st->extension = NULL;
        }
    }
}

/* local_attr - a forward_path attribute; NULL when it has no value */
static const char *local_attr(const LOCAL_STATE *st, const LOCAL_USER *u, const char *name,
                              size_t len)
{
    static const char *const names[] = {"user",      "home",   "shell", "recipient",
                                        "extension", "domain", "local", "recipient_delimiter"};
    const char *value = NULL;
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0)
            break;
    switch (i) {
    case 0: value = u->name; break;
    case 1: value = u->home; break;
    case 2: value = u->shell; break;
    case 3: value = st->address; break;
    case 4: value = st->extension; break;
    case 5: value = st->domain; break;
    case 6: value = st->local; break;
    case 7: value = local_conf.recipient_delimiter; break;
    default: msg_warn("forward_path: unknown attribute \"$%.*s\"", (int)len, name); break;
    }
    return value && *value ? value : NULL;
}

#define LOCAL_EXP_UNDEF 1 /* an attribute without value was used */

/*
 * local_expand - expand $name, ${name}, $(name), ${name?text} (text when
 * name has a value) and ${name:text} (text when it has none) as Postfix
 * does for forward_path; attribute values pass through filter first (bytes
 * outside it become '_'), so that an extension such as "../x" cannot name
 * another file. Returns 0, LOCAL_EXP_UNDEF, or -1 on bad syntax.
 */
static int local_expand(const LOCAL_STATE *st, const LOCAL_USER *u, const char *text, size_t len,
                        const char *filter, VSTR *out, int depth)
{
    int result = 0;

    if (depth > LOCAL_EXPAND_NEST_MAX)
        return -1;
    for (size_t i = 0; i < len; i++) {
        const char *name, *sub = NULL;
        size_t nlen, slen = 0;
        int op = 0;

        if (text[i] != '$') {
            vstr_addch(out, text[i]);
            continue;
        }
        if (++i >= len)
            return -1;
        if (text[i] == '$') {
            vstr_addch(out, '$');
            continue;
        }
        if (text[i] == '{' || text[i] == '(') {
            char open = text[i], close = open == '{' ? '}' : ')';
            size_t start = ++i;
            int nest = 1;

            while (i < len && nest > 0) {
                if (text[i] == open)
                    nest++;
                else if (text[i] == close)
                    nest--;
                if (nest > 0)
                    i++;
            }
            if (i >= len)
                return -1;
            name = text + start;
            for (nlen = 0;
                 start + nlen < i && (isalnum((unsigned char)name[nlen]) || name[nlen] == '_');
                 nlen++)
                ;
            if (start + nlen < i) {
                op = name[nlen];
                if (op != '?' && op != ':')
                    return -1;
                sub = name + nlen + 1;
                slen = i - (start + nlen + 1);
            }
        } else {
            name = text + i;
            for (nlen = 0;
                 i + nlen < len && (isalnum((unsigned char)name[nlen]) || name[nlen] == '_');
                 nlen++)
                ;
            if (nlen == 0)
                return -1;
            i += nlen - 1;
        }
        if (nlen == 0)
            return -1;
        const char *value = local_attr(st, u, name, nlen);

        if (op == '?' || op == ':') {
            if ((op == '?') == (value != NULL)) {
                int r = local_expand(st, u, sub, slen, filter, out, depth + 1);

                if (r < 0)
                    return -1;
                result |= r;
            }
        } else if (value == NULL) {
            result |= LOCAL_EXP_UNDEF;
        } else {
            char *clean = local_filter(value, filter);

            vstr_cat(out, clean);
            myfree(clean);
        }
    }
    return result;
}

/*
 * local_exec_dir - command_execution_directory expanded for a command of st
 * run as user: a new string, NULL when the parameter is empty. -1 in *bad
 * when it does not expand (a name without value, bad syntax).
 */
static char *local_exec_dir(const LOCAL_STATE *st, const LOCAL_USER *user, int *bad)
{
    const char *text = local_conf.command_execution_directory;
    static const LOCAL_USER none = {.name = "", .home = "", .shell = ""};
    VSTR *out;
    int r;

    *bad = 0;
    if (*text == 0)
        return NULL;
    out = vstr_alloc(64);
    r = local_expand(st, user ? user : &none, text, strlen(text),
                     local_conf.execution_directory_expansion_filter, out, 0);
    if (r != 0 || vstr_len(out) == 0) {
        *bad = 1;
        vstr_free(out);
        return NULL;
    }
    return vstr_export(out);
}

/* local_run_command - one command destination with its working directory */
static void local_run_command(const LOCAL_STATE *st, const char *command, const LOCAL_PRIV *priv,
                              const LOCAL_USER *user, LOCAL_RESULT *res)
{
    int bad;
    char *dir = local_exec_dir(st, user, &bad);

    if (bad)
        local_result_set(res, "4.3.0", "cannot expand command_execution_directory \"%s\"",
                         local_conf.command_execution_directory);
    else
        local_deliver_command(st, command, priv, user, dir, res);
    myfree(dir);
}

/* local_report_new - report a result made up here for one destination */
static void local_report_new(const LOCAL_STATE *st, const char *to, const char *dsn,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void local_report_new(const LOCAL_STATE *st, const char *to, const char *dsn,
                             const char *fmt, ...)
{
    LOCAL_RESULT res;
    VSTR *text = vstr_alloc(128);
    va_list ap;

    local_result_init(&res);
    va_start(ap, fmt);
    vstr_vsprintf_append(text, fmt, ap);
    va_end(ap);
    local_result_set(&res, dsn, "%s", vstr_str(text));
    local_report(st, to, &res);
    local_result_free(&res);
    vstr_free(text);
}

/* local_command_priv - rights for a command or file: never root */
static LOCAL_PRIV local_command_priv(const LOCAL_PRIV *priv)
{
    LOCAL_PRIV p = *priv;

    if (local_conf.is_root && p.uid == 0) {
        p.uid = local_conf.default_uid;
        p.gid = local_conf.default_gid;
    }
    return p;
}

static void local_deliver_list(LOCAL_STATE *st, const char *text, size_t len, int flags,
                               const LOCAL_ORIGIN *org, const char *what);

/* local_deliver_include - an :include: file, read with the includer's rights */
static void local_deliver_include(LOCAL_STATE *st, const char *path, const LOCAL_ORIGIN *org)
{
    LOCAL_CHILD_REPLY reply;
    LOCAL_ORIGIN inc = *org;
    LOCAL_PRIV priv = local_command_priv(&org->priv);
    LOCAL_USER *owner = NULL;
    VSTR *what = vstr_alloc(64);

    if (path[0] != '/') {
        local_report_new(st, st->address, "5.3.5", "include file is not an absolute path: %s",
                         path);
        vstr_free(what);
        return;
    }
    local_child_reply_init(&reply);
    local_read_file(&priv, path, 0, 0, &reply);
    if (reply.found != 1) {
        if (reply.found == 0 && reply.res.status == LOCAL_STAT_OK)
            local_report_new(st, st->address, "4.3.0", "cannot open include file %s: %s", path,
                             strerror(ENOENT));
        else
            local_report(st, st->address, &reply.res);
        goto done;
    }
    /* The file's owner answers for what it lists, unless that is root. */
    inc.class = LOCAL_CLASS_INCLUDE;
    if (local_conf.is_root && reply.owner_uid != 0) {
        inc.priv.uid = reply.owner_uid;
        inc.priv.gid = reply.owner_gid;
        owner = local_user_by_uid(reply.owner_uid);
        inc.priv_user = owner;
    }
    vstr_sprintf(what, ":include:%s", path);
    local_deliver_list(st, vstr_str(reply.data), vstr_len(reply.data), ALIAS_PARSE_COMMENTS, &inc,
                       vstr_str(what));
done:
    local_child_reply_free(&reply);
    local_user_free(owner);
    vstr_free(what);
}

/* local_deliver_dest - one destination of an alias, .forward or include list */
static void local_deliver_dest(LOCAL_STATE *st, const ALIAS_DEST *dest, const LOCAL_ORIGIN *org)
{
    LOCAL_STATE child;
    LOCAL_RESULT res;
    LOCAL_PRIV priv;
    char uidbuf[LOCAL_DUP_PREFIX_MAX];

    if (++st->rcpt->dest_total > LOCAL_DEST_TOTAL_MAX) {
        if (st->rcpt->dest_total == LOCAL_DEST_TOTAL_MAX + 1)
            local_report_new(st, st->address, "5.4.6",
                             "mail forwarding loop for %s: more than %d destinations", st->address,
                             LOCAL_DEST_TOTAL_MAX);
        return;
    }
    switch (dest->type) {
    case ALIAS_DEST_ADDRESS:
    case ALIAS_DEST_MAILBOX: {
        const char *at = strrchr(dest->value, '@');

        if (dest->type == ALIAS_DEST_ADDRESS && at != NULL && !local_is_local_domain(at + 1)) {
            if (!local_dup_seen(st->rcpt, "forward", dest->value))
                local_forward_add(st, dest->value);
            return;
        }
        local_state_init(&child, st, st->msg, st->rcpt, dest->value);
        child.no_alias = dest->type == ALIAS_DEST_MAILBOX;
        child.alias_of = org->alias_of;
        child.forward_of = org->forward_of;
        child.source = org->class;
        child.priv = org->priv;
        child.priv_user = org->priv_user;
        local_deliver_address(&child);
        local_state_free(&child);
        return;
    }
    case ALIAS_DEST_COMMAND:
        if (!(local_conf.allow_commands & org->class)) {
            local_report_new(st, st->address, "5.7.1", "mail to command is restricted");
            return;
        }
        priv = local_command_priv(&org->priv);
        snprintf(uidbuf, sizeof(uidbuf), "command:%ld", (long)priv.uid);
        if (local_dup_seen(st->rcpt, uidbuf, dest->value))
            return;
        local_result_init(&res);
        {
            LOCAL_USER *pu = NULL;
            const LOCAL_USER *env_user = org->priv_user;

            /* HOME and friends follow the rights the command runs with. */
            if (env_user == NULL || (local_conf.is_root && env_user->uid != priv.uid))
                env_user = pu = local_user_by_uid(priv.uid);
            local_run_command(st, dest->value, &priv, env_user, &res);
            local_user_free(pu);
        }
        local_report(st, st->address, &res);
        local_result_free(&res);
        return;
    case ALIAS_DEST_FILE:
        if (!(local_conf.allow_files & org->class)) {
            local_report_new(st, st->address, "5.7.1", "mail to file is restricted");
            return;
        }
        priv = local_command_priv(&org->priv);
        if (local_dup_seen(st->rcpt, "file", dest->value))
            return;
        local_result_init(&res);
        local_deliver_file(st, dest->value, &priv, &res);
        local_report(st, st->address, &res);
        local_result_free(&res);
        return;
    case ALIAS_DEST_INCLUDE:
        if (st->level >= LOCAL_EXPAND_DEPTH_MAX) {
            local_report_new(st, st->address, "5.4.6", "mail forwarding loop for %s", st->address);
            return;
        }
        st->level++;
        local_deliver_include(st, dest->value, org);
        st->level--;
        return;
    }
}

/* local_deliver_list - every destination of a list (alias value or file) */
static void local_deliver_list(LOCAL_STATE *st, const char *text, size_t len, int flags,
                               const LOCAL_ORIGIN *org, const char *what)
{
    VSTR *why = vstr_alloc(64);
    ALIAS_LIST *list = alias_list_parse(text, len, flags, LOCAL_LIST_ITEMS_MAX, why);

    if (list == NULL) {
        local_report_new(st, st->address, "4.3.0", "%s: %s", what, vstr_str(why));
    } else if (list->count == 0) {
        local_report_new(st, st->address, "5.3.0", "%s has no destinations", what);
    } else {
        for (size_t i = 0; i < list->count; i++)
            local_deliver_dest(st, &list->dest[i], org);
    }
    alias_list_free(list);
    vstr_free(why);
}

/* local_alias_priv - rights for commands and files of an alias table */
static void local_alias_priv(const DICT *d, LOCAL_ORIGIN *org, LOCAL_USER **owner)
{
    struct stat st;

    *owner = NULL;
    if (!local_conf.is_root) {
        org->priv.uid = local_conf.self_uid;
        org->priv.gid = local_conf.self_gid;
        return;
    }
    /* A table that a user owns speaks with that user's rights only. */
    if (d->watch_path && stat(d->watch_path, &st) == 0 && st.st_uid != 0) {
        org->priv.uid = st.st_uid;
        org->priv.gid = st.st_gid;
    } else {
        org->priv.uid = local_conf.default_uid;
        org->priv.gid = local_conf.default_gid;
    }
    *owner = local_user_by_uid(org->priv.uid);
    org->priv_user = *owner;
}

/* local_alias_on_chain - the alias name is already being expanded above us */
static int local_alias_on_chain(const LOCAL_STATE *st, const char *name)
{
    for (const LOCAL_STATE *p = st; p; p = p->parent)
        if (p->alias_of && strcmp(p->alias_of, name) == 0)
            return 1;
    return 0;
}

/* local_deliver_alias - 1 when aliases took care of st (or failed), 0 when none applies */
static int local_deliver_alias(LOCAL_STATE *st)
{
    const char *keys[2] = {st->local, st->extension ? st->user : NULL};

    for (int k = 0; k < 2 && keys[k]; k++) {
        if (local_alias_on_chain(st, keys[k]))
            continue;
        for (size_t i = 0; i < local_conf.alias_specs->argc; i++) {
            DICT *d = local_conf.alias_maps[i];
            const char *value = dict_get(d, keys[k]);

            if (value == NULL && d->error != DICT_ERR_NONE) {
                local_report_new(st, st->address, "4.3.0", "alias database unavailable");
                return 1;
            }
            if (value == NULL)
                continue;

            /* The value belongs to the table until its next lookup: copy it. */
            char *copy = mystrdup(value);
            char *name = mystrdup(keys[k]);
            LOCAL_ORIGIN org = {.class = LOCAL_CLASS_ALIAS, .alias_of = name};
            LOCAL_USER *owner;
            VSTR *what = vstr_alloc(64);

            local_alias_priv(d, &org, &owner);
            vstr_sprintf(what, "alias %s", name);
            local_deliver_list(st, copy, strlen(copy), 0, &org, vstr_str(what));
            local_user_free(owner);
            vstr_free(what);
            myfree(copy);
            myfree(name);
            return 1;
        }
    }
    return 0;
}

/* local_forward_on_chain - the user's .forward is already being expanded above us */
static int local_forward_on_chain(const LOCAL_STATE *st, const char *user)
{
    for (const LOCAL_STATE *p = st; p; p = p->parent)
        if (p->forward_of && strcmp(p->forward_of, user) == 0)
            return 1;
    return 0;
}

/* local_deliver_forward - 1 when a .forward file took care of st, 0 when there is none */
static int local_deliver_forward(LOCAL_STATE *st, const LOCAL_USER *user)
{
    ARGV *paths;
    VSTR *path = vstr_alloc(128);
    LOCAL_PRIV priv = {.uid = user->uid, .gid = user->gid};
    int handled = 0;

    if (*local_conf.forward_path == 0 || local_forward_on_chain(st, user->name)) {
        vstr_free(path);
        return 0;
    }
    paths = argv_split(local_conf.forward_path, ", \t\r\n");
    for (size_t i = 0; i < paths->argc && !handled; i++) {
        LOCAL_CHILD_REPLY reply;
        int r;

        vstr_reset(path);
        r = local_expand(st, user, paths->argv[i], strlen(paths->argv[i]),
                         local_conf.forward_expansion_filter, path, 0);
        if (r < 0) {
            msg_warn("forward_path: bad syntax in \"%s\"", paths->argv[i]);
            continue;
        }
        /* A name that needs a missing attribute (no extension): skip it. */
        if (r & LOCAL_EXP_UNDEF || vstr_len(path) == 0)
            continue;
        local_child_reply_init(&reply);
        local_read_file(&priv, vstr_str(path), 1, user->uid, &reply);
        if (reply.found == 1) {
            LOCAL_ORIGIN org = {.class = LOCAL_CLASS_FORWARD,
                                .forward_of = user->name,
                                .priv = priv,
                                .priv_user = user};
            VSTR *why = vstr_alloc(64);
            ALIAS_LIST *list = alias_list_parse(vstr_str(reply.data), vstr_len(reply.data),
                                                ALIAS_PARSE_COMMENTS, LOCAL_LIST_ITEMS_MAX, why);

            /* An empty .forward is no .forward: the mailbox gets the mail. */
            if (list == NULL) {
                local_report_new(st, st->address, "4.3.0", "%s: %s", vstr_str(path), vstr_str(why));
                handled = 1;
            } else if (list->count > 0) {
                for (size_t j = 0; j < list->count; j++)
                    local_deliver_dest(st, &list->dest[j], &org);
                handled = 1;
            }
            alias_list_free(list);
            vstr_free(why);
        } else if (reply.found == -1) {
            msg_warn("%s: ignoring %s: %s", st->msg->queue_id, vstr_str(path),
                     vstr_str(reply.res.reason));
        } else if (reply.res.status != LOCAL_STAT_OK) {
            local_report(st, st->address, &reply.res);
            handled = 1;
        }
        local_child_reply_free(&reply);
    }
    argv_free(paths);
    vstr_free(path);
    return handled;
}

/* local_deliver_to_mailbox - the last step: mailbox_command or the mailbox */
static void local_deliver_to_mailbox(LOCAL_STATE *st, const LOCAL_USER *user)
{
    LOCAL_RESULT res;

    if (local_dup_seen(st->rcpt, "mailbox", user->name))
        return;
    local_result_init(&res);
    if (*local_conf.mailbox_command) {
        LOCAL_PRIV priv = {.uid = user->uid, .gid = user->gid};

        priv = local_command_priv(&priv);
        if (*local_conf.local_home_directory == 0 || local_make_home(user, &res) == 0)
            local_run_command(st, local_conf.mailbox_command, &priv, user, &res);
    } else {
        local_deliver_mailbox(st, user, &res);
    }
    local_report(st, st->address, &res);
    local_result_free(&res);
}

/* local_deliver_address - the steps above for one address */
static void local_deliver_address(LOCAL_STATE *st)
{
    LOCAL_USER *user;
    VSTR *why;

    if (st->level > LOCAL_EXPAND_DEPTH_MAX) {
        local_report_new(st, st->address, "5.4.6", "mail forwarding loop for %s", st->address);
        return;
    }
    if (!st->msg->headers_read) {
        why = vstr_alloc(64);
        if (local_read_headers(st->msg, why) < 0) {
            local_report_new(st, st->address, "4.3.0", "%s", vstr_str(why));
            vstr_free(why);
            return;
        }
        vstr_free(why);
    }
    /* Our own Delivered-To: the message has been here before for this
       address and would circle forever. */
    if (local_has_delivered_to(st->msg, st->address)) {
        local_report_new(st, st->address, "5.4.6", "mail forwarding loop for %s", st->address);
        return;
    }
    if (!st->no_alias && local_deliver_alias(st))
        return;
    if ((user = local_user_find(st->user)) == NULL) {
        local_report_new(st, st->address, "5.1.1", "unknown user: \"%s\"", st->user);
        return;
    }
    if (st->no_alias || !local_deliver_forward(st, user))
        local_deliver_to_mailbox(st, user);
    local_user_free(user);
}

/* local_deliver_recipient - one recipient of the request, start to end */
void local_deliver_recipient(LOCAL_MSG *msg, LOCAL_RCPT *rcpt)
{
    LOCAL_STATE st;

    local_state_init(&st, NULL, msg, rcpt, rcpt->address);
    if (local_conf.is_root) {
        st.priv.uid = local_conf.default_uid;
        st.priv.gid = local_conf.default_gid;
    } else {
        st.priv.uid = local_conf.self_uid;
        st.priv.gid = local_conf.self_gid;
    }
    local_deliver_address(&st);
    local_forward_flush(msg, rcpt);
    local_state_free(&st);
}
