/*
 * mail_queue_dirs - the queue directory tree: names, owners, modes, checks.
 *
 * One table lists every directory under queue_directory with its owner,
 * group and mode; `postern check`, master and anything else that creates or
 * audits the tree use it, so the layout is written down exactly once.
 *
 * Started as root, owners are root, mail_owner and setgid_group as the table
 * says. In a private instance (not root) every directory belongs to the
 * invoking user and that user's primary group; the modes stay the same.
 */
#ifndef POSTERN_MAIL_QUEUE_DIRS_H
#define POSTERN_MAIL_QUEUE_DIRS_H

#include <sys/types.h>

#include "util/vstr.h"

/* Queue directory names (relative to queue_directory). */
#define MAIL_QUEUE_MAILDROP "maildrop"
#define MAIL_QUEUE_INCOMING "incoming"
#define MAIL_QUEUE_IMMEDIATE "immediate"
#define MAIL_QUEUE_BULK "bulk"
#define MAIL_QUEUE_DEFERRED "deferred"
#define MAIL_QUEUE_HOLD "hold"
#define MAIL_QUEUE_CORRUPT "corrupt"
#define MAIL_QUEUE_PRIVATE "private"
#define MAIL_QUEUE_PUBLIC "public"
#define MAIL_QUEUE_PID "pid"

enum mail_qdir_owner {
    MAIL_QDIR_OWNER_ROOT, /* root (the invoking user in a private instance) */
    MAIL_QDIR_OWNER_MAIL, /* mail_owner */
};

enum mail_qdir_group {
    MAIL_QDIR_GROUP_ROOT,   /* group root */
    MAIL_QDIR_GROUP_OWNER,  /* mail_owner's primary group */
    MAIL_QDIR_GROUP_SETGID, /* setgid_group (postdrop) */
};

typedef struct MAIL_QUEUE_DIR {
    const char *name; /* relative to queue_directory; "." is the top */
    enum mail_qdir_owner owner;
    enum mail_qdir_group group;
    mode_t mode; /* including the sticky bit where used */
} MAIL_QUEUE_DIR;

/* mail_queue_dirs - the table, ending with a NULL name; "." comes first */
extern const MAIL_QUEUE_DIR mail_queue_dirs[];

/* The numeric owners the table's symbolic ones stand for. */
typedef struct MAIL_QUEUE_IDS {
    uid_t root_uid, owner_uid;
    gid_t root_gid, owner_gid, setgid_gid;
    int private_instance; /* not root: everything is the invoking user's */
} MAIL_QUEUE_IDS;

/* mail_queue_ids - resolve mail_owner and setgid_group (as root) or take the
   invoking user (otherwise); 0, or -1 with the reason in why */
int mail_queue_ids(const char *mail_owner, const char *setgid_group, MAIL_QUEUE_IDS *ids,
                   VSTR *why);

/* Flags for mail_queue_dirs_check. */
#define MAIL_QDIR_FIX (1 << 0) /* create missing directories, fix owners and modes */

/* Report callback: one line per finding or fix ("created ...", "fixed mode ..."). */
typedef void (*MAIL_QDIR_REPORT)(void *ctx, int fixed, const char *text);

/* mail_queue_dirs_check - audit (and with MAIL_QDIR_FIX repair) the tree under
   queue_dir; returns the number of problems left (0 = all fine). Symbolic
   links where a directory belongs are never followed or fixed. */
int mail_queue_dirs_check(const char *queue_dir, const MAIL_QUEUE_IDS *ids, int flags,
                          MAIL_QDIR_REPORT report, void *ctx);

#endif
