/*
 * dict_unix - the unix: table: the system's user and group databases as
 * the C library sees them (getpwnam_r, getgrnam_r), so that every NSS
 * source configured in nsswitch.conf counts, as with Postfix's unix: type.
 *
 *   unix:passwd.byname   key: login name   value: the passwd(5) line
 *   unix:group.byname    key: group name   value: the group(5) line
 *
 * smtpd uses unix:passwd.byname in local_recipient_maps to refuse mail for
 * unknown local users at RCPT time. The value is rebuilt from the returned
 * fields ("name:x:uid:gid:gecos:dir:shell"; the password field is always
 * "x" so that no hash ever leaves this module).
 *
 * Keys that cannot be names (empty, longer than DICT_UNIX_KEY_MAX, holding
 * ':', '/', '@', blanks or control characters; local_recipient_maps tries
 * "user@domain" before "user") are "not found" without a
 * query: the C library and the NSS modules behind it never see them. A
 * failed query (NSS source down, no memory) is DICT_ERR_RETRY so that the
 * caller answers 4xx instead of bouncing a real user.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/dict.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define DICT_UNIX_KEY_MAX 256           /* longest name looked up (LOGIN_NAME_MAX) */
#define DICT_UNIX_BUF_INIT 1024         /* first getpwnam_r buffer */
#define DICT_UNIX_BUF_MAX (1024 * 1024) /* largest buffer before giving up */
#define DICT_UNIX_VALUE_MAX (64 * 1024) /* longest value returned */

enum dict_unix_map { DICT_UNIX_PASSWD, DICT_UNIX_GROUP };

typedef struct DICT_UNIX {
    enum dict_unix_map map;
    char *buf;   /* scratch for the reentrant lookups */
    size_t size; /* bytes in buf */
    VSTR *value; /* last result, owned by the table */
} DICT_UNIX;

/* dict_unix_open - check the map name; no file behind it */
static void *dict_unix_open(DICT *d, int mode, struct stat *st, VSTR *why)
{
    DICT_UNIX *du;
    enum dict_unix_map map;

    (void)mode;
    memset(st, 0, sizeof(*st));
    if (strcmp(d->name, "passwd.byname") == 0) {
        map = DICT_UNIX_PASSWD;
    } else if (strcmp(d->name, "group.byname") == 0) {
        map = DICT_UNIX_GROUP;
    } else {
        vstr_sprintf(why, "unknown table: unix:%s (known: passwd.byname, group.byname)", d->name);
        return NULL;
    }
    du = mycalloc(1, sizeof(*du));
    du->map = map;
    du->size = DICT_UNIX_BUF_INIT;
    du->buf = mymalloc(du->size);
    du->value = vstr_alloc(128);
    vstr_set_limit(du->value, DICT_UNIX_VALUE_MAX);
    return du;
}

/* dict_unix_key_ok - could this be a user or group name at all */
static int dict_unix_key_ok(const char *key)
{
    size_t len = strlen(key);

    if (len == 0 || len > DICT_UNIX_KEY_MAX)
        return 0;
    for (const unsigned char *cp = (const unsigned char *)key; *cp; cp++)
        if (*cp == ':' || *cp == '/' || *cp == '@' || *cp <= ' ' || *cp == 0x7f)
            return 0;
    return 1;
}

/* dict_unix_grow - double the scratch buffer; -1 at the ceiling */
static int dict_unix_grow(DICT_UNIX *du)
{
    if (du->size >= DICT_UNIX_BUF_MAX)
        return -1;
    du->size = size_mul(du->size, 2);
    du->buf = myrealloc(du->buf, du->size);
    return 0;
}

/* dict_unix_notfound_errno - errors that glibc documents as "no such entry" */
static int dict_unix_notfound_errno(int err)
{
    return err == 0 || err == ENOENT || err == ESRCH || err == EBADF || err == EPERM;
}

/* dict_unix_passwd - one passwd lookup into du->value; 1 found, 0 not, -1 failed */
static int dict_unix_passwd(DICT_UNIX *du, const char *key)
{
    struct passwd pw, *res;
    int err;

    while ((err = getpwnam_r(key, &pw, du->buf, du->size, &res)) == ERANGE)
        if (dict_unix_grow(du) < 0)
            return -1;
    if (res == NULL)
        return dict_unix_notfound_errno(err) ? 0 : -1;
    if (vstr_sprintf(du->value, "%s:x:%ld:%ld:%s:%s:%s", pw.pw_name, (long)pw.pw_uid,
                     (long)pw.pw_gid, pw.pw_gecos ? pw.pw_gecos : "", pw.pw_dir ? pw.pw_dir : "",
                     pw.pw_shell ? pw.pw_shell : "") < 0)
        return -1;
    return 1;
}

/* dict_unix_group - one group lookup into du->value; 1 found, 0 not, -1 failed */
static int dict_unix_group(DICT_UNIX *du, const char *key)
{
    struct group gr, *res;
    int err;

    while ((err = getgrnam_r(key, &gr, du->buf, du->size, &res)) == ERANGE)
        if (dict_unix_grow(du) < 0)
            return -1;
    if (res == NULL)
        return dict_unix_notfound_errno(err) ? 0 : -1;
    if (vstr_sprintf(du->value, "%s:x:%ld:", gr.gr_name, (long)gr.gr_gid) < 0)
        return -1;
    for (char **mem = gr.gr_mem; mem && *mem; mem++)
        if (vstr_sprintf_append(du->value, "%s%s", mem == gr.gr_mem ? "" : ",", *mem) < 0)
            return -1;
    return 1;
}

static const char *dict_unix_lookup(DICT *d, const char *key)
{
    DICT_UNIX *du = d->state;
    int found;

    if (!dict_unix_key_ok(key))
        return NULL;
    found = du->map == DICT_UNIX_PASSWD ? dict_unix_passwd(du, key) : dict_unix_group(du, key);
    if (found < 0) {
        msg_warn("unix:%s: lookup of \"%s\" failed", d->name, key);
        d->error = DICT_ERR_RETRY;
        return NULL;
    }
    return found ? vstr_str(du->value) : NULL;
}

static void dict_unix_free(DICT *d, void *state)
{
    DICT_UNIX *du = state;

    (void)d;
    vstr_free(du->value);
    myfree(du->buf);
    myfree(du);
}

const DICT_TYPE dict_unix_type = {
    .type = "unix",
    .flags = DICT_FLAG_FIXED,
    .suffix = NULL,
    .open = dict_unix_open,
    .lookup = dict_unix_lookup,
    .free = dict_unix_free,
};
