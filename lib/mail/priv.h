/*
 * priv - irrevocable privilege drop for daemons started as root.
 *
 * priv_drop() is the one place where a Postern process gives up root: it
 * optionally chroots, takes the user's uid, primary gid and only that group,
 * empties the bounding, ambient, effective, permitted and inheritable
 * capability sets, and sets PR_SET_NO_NEW_PRIVS so that no later execve can
 * gain anything back (setuid binaries, file capabilities). Every step is
 * verified; any failure is fatal, because a daemon that goes on half
 * privileged is worse than one that does not run at all.
 *
 * Not running as root (a private instance), priv_drop() cannot change
 * users: it only sets PR_SET_NO_NEW_PRIVS and returns.
 */
#ifndef POSTERN_PRIV_H
#define POSTERN_PRIV_H

#include <sys/types.h>

/* priv_lookup - uid and primary gid of user; 0, or -1 when unknown */
int priv_lookup(const char *user, uid_t *uid, gid_t *gid);
/* priv_lookup_group - gid of group name; 0, or -1 when unknown */
int priv_lookup_group(const char *group, gid_t *gid);

/* priv_drop - become user for good (see above); chroot_dir NULL = no chroot.
   Fatal on any failure, including a user that is unknown or is root. */
void priv_drop(const char *user, const char *chroot_dir);

/* priv_drop_ids - the same with numeric ids (no lookup, for callers that
   looked the user up before a chroot) */
void priv_drop_ids(uid_t uid, gid_t gid, const char *chroot_dir);

/* priv_no_new_privs - set PR_SET_NO_NEW_PRIVS; fatal on failure */
void priv_no_new_privs(void);

/* priv_is_root - running with effective uid 0 */
int priv_is_root(void);

#endif
