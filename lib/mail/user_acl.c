/*
 * user_acl - match a login name against a user list such as
 * authorized_mailq_users (see user_acl.h for the pattern syntax).
 */
#include <errno.h>
#include <stdarg.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "mail/dict.h"
#include "mail/mail_conf.h"
#include "mail/user_acl.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"

#define USER_ACL_NOMATCH 2   /* internal: keep looking */
#define USER_ACL_PWBUF 16384 /* getpwuid_r buffer */

/* user_acl_name - the login name of uid */
void user_acl_name(uid_t uid, VSTR *name)
{
    struct passwd pw, *res = NULL;
    char *buf = mymalloc(USER_ACL_PWBUF);

    if (getpwuid_r(uid, &pw, buf, USER_ACL_PWBUF, &res) == 0 && res != NULL && *res->pw_name)
        vstr_cpy(name, res->pw_name);
    else
        vstr_cpy(name, USER_ACL_NAME_UNKNOWN);
    myfree(buf);
}

/* user_acl_why - set the reason for an error result */
static int user_acl_why(VSTR *why, const char *fmt, ...) MSG_FMT(2, 3);

static int user_acl_why(VSTR *why, const char *fmt, ...)
{
    va_list ap;

    if (why) {
        vstr_reset(why);
        va_start(ap, fmt);
        vstr_vsprintf_append(why, fmt, ap);
        va_end(ap);
    }
    return USER_ACL_ERROR;
}

/* user_acl_file_items - the patterns of a /file/name: comment lines dropped */
static ARGV *user_acl_file_items(const char *path, VSTR *why, int *err)
{
    size_t len;
    char *text = file_read_all(path, USER_ACL_FILE_MAX, &len);
    ARGV *items;

    *err = 0;
    if (text == NULL) {
        *err = user_acl_why(why, "open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (memchr(text, 0, len) != NULL) {
        myfree(text);
        *err = user_acl_why(why, "%s: contains a null byte", path);
        return NULL;
    }
    items = argv_alloc(16);
    for (char *line = text, *next; line != NULL; line = next) {
        if ((next = strchr(line, '\n')) != NULL)
            *next++ = 0;
        line += strspn(line, " \t\r");
        if (*line == '#' || *line == 0)
            continue;
        ARGV *words = mail_conf_split_list(line);

        for (size_t i = 0; i < words->argc; i++)
            argv_add(items, words->argv[i], (char *)NULL);
        argv_free(words);
    }
    myfree(text);
    return items;
}

/* user_acl_table - look the name up in a type:table pattern */
static int user_acl_table(const char *param, const char *spec, const char *name, VSTR *why)
{
    VSTR *err = vstr_alloc(100);
    DICT *d = dict_open(spec, DICT_FLAG_FOLD_FIX, err);
    int result;

    if (d == NULL) {
        result = user_acl_why(why, "%s: %s", param, vstr_str(err));
        vstr_free(err);
        return result;
    }
    vstr_free(err);
    if (dict_get(d, name) != NULL)
        result = USER_ACL_ALLOW;
    else if (d->error != DICT_ERR_NONE)
        result = user_acl_why(why, "%s: lookup of \"%s\" in %s failed", param, name, spec);
    else
        result = USER_ACL_NOMATCH;
    dict_close(d);
    return result;
}

/* user_acl_eval - the first pattern of items that matches decides; polarity 1
   means a match allows, 0 that it denies (inside "!/file/name") */
static int user_acl_eval(const char *param, const ARGV *items, int polarity, const char *name,
                         int depth, VSTR *why)
{
    for (size_t i = 0; i < items->argc; i++) {
        const char *p = items->argv[i];
        int pol = polarity;
        int r;

        while (*p == '!') {
            pol = !pol;
            p++;
        }
        if (*p == 0)
            return user_acl_why(why, "%s: \"%s\": nothing after '!'", param, items->argv[i]);
        if (*p == '/') {
            ARGV *inner;

            if (depth >= USER_ACL_DEPTH)
                return user_acl_why(why, "%s: %s: files nested more than %d deep", param, p,
                                    USER_ACL_DEPTH);
            if ((inner = user_acl_file_items(p, why, &r)) == NULL)
                return r;
            r = user_acl_eval(param, inner, pol, name, depth + 1, why);
            argv_free(inner);
        } else if (strchr(p, ':') != NULL) {
            /* Login names never hold ':' (it separates passwd fields). */
            if ((r = user_acl_table(param, p, name, why)) == USER_ACL_ALLOW)
                r = pol ? USER_ACL_ALLOW : USER_ACL_DENY;
        } else {
            r = strcmp(p, name) == 0 ? (pol ? USER_ACL_ALLOW : USER_ACL_DENY) : USER_ACL_NOMATCH;
        }
        if (r != USER_ACL_NOMATCH)
            return r;
    }
    return USER_ACL_NOMATCH;
}

/* user_acl_match - does the list allow the user called name */
int user_acl_match(const char *param, const char *acl, const char *name, VSTR *why)
{
    ARGV *items = mail_conf_split_list(acl ? acl : "");
    int r = user_acl_eval(param, items, 1, name, 0, why);

    argv_free(items);
    return r == USER_ACL_NOMATCH ? USER_ACL_DENY : r;
}

/* user_acl_check - user_acl_match for a uid */
int user_acl_check(const char *param, const char *acl, uid_t uid, VSTR *name, VSTR *why)
{
    VSTR *buf = name ? name : vstr_alloc(32);
    int r;

    user_acl_name(uid, buf);
    r = user_acl_match(param, acl, vstr_str(buf), why);
    if (buf != name)
        vstr_free(buf);
    return r;
}
