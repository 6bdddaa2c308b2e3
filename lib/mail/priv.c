/*
 * priv - drop root for good: chroot, ids, every capability set, no_new_privs.
 *
 * Order matters. The chroot needs CAP_SYS_CHROOT, and emptying the bounding
 * set and locking the securebits need CAP_SETPCAP, so both happen while the
 * process is still root; then the groups, gid and uid change (the kernel
 * clears the permitted and effective sets on the uid change); then whatever
 * is left of the capability sets is cleared explicitly, and finally each
 * result is read back and checked rather than trusted.
 */
#include <errno.h>
#include <grp.h>
#include <linux/securebits.h>
#include <pwd.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "mail/priv.h"
#include "util/msg.h"

/* Supplementary groups we accept back from getgroups() while verifying. */
#define PRIV_GROUPS_MAX 64

/* priv_is_root - running with effective uid 0 */
int priv_is_root(void)
{
    return geteuid() == 0;
}

/* priv_lookup - uid and primary gid of a user name */
int priv_lookup(const char *user, uid_t *uid, gid_t *gid)
{
    struct passwd *pw;

    errno = 0;
    if (user == NULL || *user == 0 || (pw = getpwnam(user)) == NULL)
        return -1;
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

/* priv_lookup_group - gid of a group name */
int priv_lookup_group(const char *group, gid_t *gid)
{
    struct group *gr;

    errno = 0;
    if (group == NULL || *group == 0 || (gr = getgrnam(group)) == NULL)
        return -1;
    *gid = gr->gr_gid;
    return 0;
}

/* priv_no_new_privs - forbid execve from ever granting privileges again */
void priv_no_new_privs(void)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) < 0)
        msg_fatal("prctl PR_SET_NO_NEW_PRIVS: %m");
    if (prctl(PR_GET_NO_NEW_PRIVS, 0L, 0L, 0L, 0L) != 1)
        msg_fatal("PR_SET_NO_NEW_PRIVS did not take effect");
}

/* priv_chroot - change root to dir; the cwd ends up inside the new root */
static void priv_chroot(const char *dir)
{
    if (chdir(dir) < 0)
        msg_fatal("chdir %s: %m", dir);
    if (chroot(".") < 0)
        msg_fatal("chroot %s: %m", dir);
    if (chdir("/") < 0)
        msg_fatal("chdir / in chroot %s: %m", dir);
}

/* priv_drop_bounding - empty the bounding set so no execve can regain a capability */
static void priv_drop_bounding(void)
{
    for (cap_value_t cap = 0; CAP_IS_SUPPORTED(cap); cap++) {
        if (cap_drop_bound(cap) < 0)
            msg_fatal("drop capability %d from the bounding set: %m", (int)cap);
    }
    if (cap_reset_ambient() < 0 && errno != EINVAL)
        msg_fatal("clear the ambient capability set: %m");
}

/* priv_lock_securebits - uid 0 gets no capabilities back, ever, via exec or setuid */
static void priv_lock_securebits(void)
{
    unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED |
                         SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                         SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;

    if (prctl(PR_SET_SECUREBITS, bits, 0L, 0L, 0L) < 0)
        msg_fatal("prctl PR_SET_SECUREBITS: %m");
}

/* priv_clear_caps - empty the effective, permitted and inheritable sets */
static void priv_clear_caps(void)
{
    cap_t none = cap_init();

    if (none == NULL)
        msg_fatal("cap_init: %m");
    if (cap_set_proc(none) < 0)
        msg_fatal("clear capability sets: %m");
    cap_free(none);
}

/* priv_verify - read back every property the drop promised */
static void priv_verify(uid_t uid, gid_t gid)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    gid_t groups[PRIV_GROUPS_MAX];
    int ngroups;

    if (getresuid(&ru, &eu, &su) < 0 || ru != uid || eu != uid || su != uid)
        msg_fatal("privilege drop: uid is not %ld", (long)uid);
    if (getresgid(&rg, &eg, &sg) < 0 || rg != gid || eg != gid || sg != gid)
        msg_fatal("privilege drop: gid is not %ld", (long)gid);
    ngroups = getgroups(PRIV_GROUPS_MAX, groups);
    if (ngroups < 0 || ngroups > 1 || (ngroups == 1 && groups[0] != gid))
        msg_fatal("privilege drop: supplementary groups were not reset");
    /* A process that can take uid 0 back has not dropped anything. */
    if (setuid(0) == 0 || seteuid(0) == 0)
        msg_fatal("privilege drop: setuid(0) still succeeds");

    cap_t now = cap_get_proc();
    cap_t none = cap_init();

    if (now == NULL || none == NULL)
        msg_fatal("cap_get_proc: %m");
    if (cap_compare(now, none) != 0)
        msg_fatal("privilege drop: capability sets are not empty");
    cap_free(now);
    cap_free(none);
    for (cap_value_t cap = 0; CAP_IS_SUPPORTED(cap); cap++)
        if (cap_get_bound(cap) != 0)
            msg_fatal("privilege drop: capability %d is still in the bounding set", (int)cap);
}

/* priv_drop_ids - become uid/gid for good, optionally inside chroot_dir */
void priv_drop_ids(uid_t uid, gid_t gid, const char *chroot_dir)
{
    if (!priv_is_root()) {
        /* A private instance: nothing to give up but the right to gain. */
        priv_no_new_privs();
        return;
    }
    if (uid == 0)
        msg_fatal("refusing to run an unprivileged service as uid 0");
    if (chroot_dir && *chroot_dir)
        priv_chroot(chroot_dir);
    priv_drop_bounding();
    priv_lock_securebits();
    if (setgroups(1, &gid) < 0)
        msg_fatal("setgroups(%ld): %m", (long)gid);
    if (setresgid(gid, gid, gid) < 0)
        msg_fatal("setresgid(%ld): %m", (long)gid);
    if (setresuid(uid, uid, uid) < 0)
        msg_fatal("setresuid(%ld): %m", (long)uid);
    priv_clear_caps();
    priv_no_new_privs();
    priv_verify(uid, gid);
}

/* priv_drop - look user up, then drop as priv_drop_ids */
void priv_drop(const char *user, const char *chroot_dir)
{
    uid_t uid;
    gid_t gid;

    if (!priv_is_root()) {
        priv_no_new_privs();
        return;
    }
    if (priv_lookup(user, &uid, &gid) < 0)
        msg_fatal("unknown user \"%s\" (mail_owner): %s", user ? user : "",
                  errno ? strerror(errno) : "no such user");
    if (uid == 0)
        msg_fatal("user \"%s\" has uid 0: mail_owner must be an unprivileged user", user);
    priv_drop_ids(uid, gid, chroot_dir);
}
