/*
 * local.h - the local delivery agent's shared types and functions.
 *
 * The files of the program:
 *   local.c          main(), configuration, the delivery request protocol
 *                    (docs/protocols.md section 3), results and logging
 *   local_expand.c   one recipient: aliases, ~/.forward, :include:, loops,
 *                    duplicates, then the mailbox
 *   local_mailbox.c  Maildir, mbox and /file deliveries; locking
 *   local_command.c  |command deliveries
 *   local_forward.c  forwarding to other domains through cleanup
 *   local_copy.c     the delivered copy: From_ line, Return-Path,
 *                    Delivered-To, >From quoting
 *   local_priv.c     child processes that run as the recipient
 */
#ifndef POSTERN_LOCAL_H
#define POSTERN_LOCAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mail/alias_parse.h"
#include "mail/dict.h"
#include "mail/qfile.h"
#include "util/argv.h"
#include "util/vstr.h"

/* Limits. */
#define LOCAL_EXPAND_DEPTH_MAX 100       /* nested alias, .forward and :include: levels */
#define LOCAL_LIST_ITEMS_MAX 10000       /* destinations in one alias value or file */
#define LOCAL_DEST_TOTAL_MAX 100000      /* destinations expanded from one recipient */
#define LOCAL_FILE_MAX (1024 * 1024)     /* bytes of a .forward or :include: file */
#define LOCAL_REASON_MAX 2000            /* bytes of a result text */
#define LOCAL_CMD_OUTPUT_MAX 2000        /* command output kept for the bounce reason */
#define LOCAL_USER_NAME_MAX 64           /* a user name not found in passwd */
#define LOCAL_HEADER_LINE_MAX 8192       /* one header line while looking for Delivered-To */
#define LOCAL_DELIVERED_MAX 1000         /* Delivered-To headers remembered */
#define LOCAL_RCPT_MAX 1000              /* recipients in one delivery request */
#define LOCAL_HOSTNAME_MAX 256           /* host name in Maildir file names */
#define LOCAL_REQUEST_TIMEOUT_MS 3600000 /* an idle client connection at most */
#define LOCAL_CLEANUP_TIMEOUT_MS 300000  /* one message to cleanup when forwarding */

/* Sources of a destination, for allow_mail_to_commands / _files. */
#define LOCAL_CLASS_ALIAS (1 << 0)
#define LOCAL_CLASS_FORWARD (1 << 1)
#define LOCAL_CLASS_INCLUDE (1 << 2)

/* prepend_delivered_header classes. */
#define LOCAL_DT_COMMAND (1 << 0)
#define LOCAL_DT_FILE (1 << 1)
#define LOCAL_DT_FORWARD (1 << 2)

/* Reply status values (docs/protocols.md section 3). */
#define LOCAL_STAT_OK 0
#define LOCAL_STAT_DEFER 450
#define LOCAL_STAT_BOUNCE 550

/* Configuration, read once at start-up from the parameter table. */
typedef struct LOCAL_CONF {
    char *myorigin;
    char *myhostname;
    ARGV *mydestination; /* lower case */
    char *recipient_delimiter;
    ARGV *alias_specs;
    DICT **alias_maps;
    char *home_mailbox;
    char *mail_spool_directory;
    char *forward_path; /* unexpanded */
    char *local_home_directory;
    char *mailbox_command; /* unexpanded */
    int allow_commands;    /* LOCAL_CLASS_* */
    int allow_files;
    int prepend_delivered; /* LOCAL_DT_* */
    char *local_command_shell;
    char *command_expansion_filter;
    char *forward_expansion_filter;
    char *command_execution_directory; /* unexpanded */
    char *execution_directory_expansion_filter;
    long command_time_limit;
    char *default_privs;
    uid_t default_uid;
    gid_t default_gid;
    int lock_fcntl, lock_flock, lock_dotlock;
    long stale_lock_time;
    long deliver_lock_attempts;
    long deliver_lock_delay;
    long mailbox_size_limit;
    int strict_mailbox_ownership;
    int require_home_directory;
    long duplicate_filter_limit;
    long delay_resolution;
    long ipc_timeout;
    ARGV *export_environment;
    char *cleanup_service;
    int is_root;    /* started as root: switch to recipients' uids */
    uid_t self_uid; /* private instance: everything runs as this user */
    gid_t self_gid;
    char maildir_host[LOCAL_HOSTNAME_MAX]; /* host name as Maildir names hold it */
} LOCAL_CONF;

extern LOCAL_CONF local_conf;

/* One delivery request: the message. */
typedef struct LOCAL_MSG {
    QFILE *q;
    const char *queue_id;
    const char *queue_name;
    const char *sender; /* "" = null sender */
    const char *envid;
    const char *ret;
    uint64_t arrival_usec, active_usec, request_usec, start_usec;
    ARGV *delivered_to; /* lower case Delivered-To values of the header section */
    int headers_read;   /* delivered_to is filled */
} LOCAL_MSG;

/* One forwarded address, waiting to be sent through cleanup. */
typedef struct LOCAL_FWD {
    char *delivered; /* the address whose alias or .forward forwarded it */
    char *address;
} LOCAL_FWD;

/* One recipient of the request, and the outcome so far. */
typedef struct LOCAL_RCPT {
    unsigned long long index;
    const char *address;
    const char *orcpt;     /* original recipient, "" when none */
    const char *dsn_orcpt; /* DSN ORCPT, "" when none */
    unsigned long long notify;
    int status;   /* the worst so far: LOCAL_STAT_* */
    char dsn[16]; /* of the worst result */
    VSTR *reason; /* of the worst result */
    size_t delivered_count;
    ARGV *dup_filter; /* "kind:destination" already delivered */
    size_t dest_total;
    LOCAL_FWD *fwd;
    size_t fwd_count, fwd_cap;
} LOCAL_RCPT;

/* Who a delivery runs as. */
typedef struct LOCAL_PRIV {
    uid_t uid;
    gid_t gid;
} LOCAL_PRIV;

/* A user that can receive mail. */
typedef struct LOCAL_USER {
    char *name;
    uid_t uid;
    gid_t gid;
    char *home;
    char *shell;
    int in_passwd; /* 0: a private instance's user under local_home_directory */
} LOCAL_USER;

/* Expansion state: one address on the way from the recipient to its
   destinations. Each level points to the one it came from. */
typedef struct LOCAL_STATE {
    LOCAL_MSG *msg;
    LOCAL_RCPT *rcpt;
    const struct LOCAL_STATE *parent;
    int level;
    char *address;   /* user+ext@domain, as delivered (Delivered-To) */
    char *local;     /* local part, lower case, with the extension */
    char *user;      /* local part without the extension */
    char *extension; /* NULL when none */
    char *domain;
    int no_alias;                /* "\user": the mailbox, no aliases, no .forward */
    const char *alias_of;        /* this level came from alias NAME (loop check) */
    const char *forward_of;      /* this level came from USER's .forward */
    int source;                  /* LOCAL_CLASS_* of this level's origin; 0 = the recipient */
    LOCAL_PRIV priv;             /* rights for commands and files from this level */
    const LOCAL_USER *priv_user; /* whose HOME/SHELL/LOGNAME commands get; may be NULL */
} LOCAL_STATE;

/* Result of one child or one destination. */
typedef struct LOCAL_RESULT {
    int status; /* LOCAL_STAT_* */
    char dsn[16];
    VSTR *reason;
} LOCAL_RESULT;

/* local.c */
void local_result_init(LOCAL_RESULT *res);
void local_result_free(LOCAL_RESULT *res);
/* local_result_set - status from the class of dsn ("4.x.x" defer, "5.x.x" bounce) */
void local_result_set(LOCAL_RESULT *res, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void local_result_ok(LOCAL_RESULT *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* local_report - log one final destination's outcome and merge it into the
   recipient's result */
void local_report(const LOCAL_STATE *st, const char *to, const LOCAL_RESULT *res);
/* local_is_local_domain - domain (any case) is one of mydestination */
int local_is_local_domain(const char *domain);

/* local_expand.c */
/* local_deliver_recipient - deliver one request recipient */
void local_deliver_recipient(LOCAL_MSG *msg, LOCAL_RCPT *rcpt);
/* local_user_free - release a user */
void local_user_free(LOCAL_USER *u);
/* local_user_find - the user named name (lower case, no extension); NULL when
   unknown; a home under local_home_directory when that is set */
LOCAL_USER *local_user_find(const char *name);
/* local_user_by_uid - passwd entry for uid (commands' HOME, SHELL, LOGNAME) */
LOCAL_USER *local_user_by_uid(uid_t uid);

/* local_copy.c */
#define LOCAL_COPY_FROM_LINE (1 << 0) /* "From sender date" first (mbox, file, command) */
#define LOCAL_COPY_QUOTE (1 << 1)     /* ">From " for content lines starting with "From " */
#define LOCAL_COPY_BLANK (1 << 2)     /* an empty line after the message (mbox) */
#define LOCAL_COPY_RETURN_PATH (1 << 3)
#define LOCAL_COPY_DELIVERED (1 << 4)
#define LOCAL_COPY_MBOX (LOCAL_COPY_FROM_LINE | LOCAL_COPY_QUOTE | LOCAL_COPY_BLANK)

/* Sink for the copy: 0, or -1 with errno. */
typedef int (*LOCAL_WRITE_FN)(void *ctx, const char *data, size_t len);

#define LOCAL_COPY_ERR_QUEUE (-2) /* local_copy: the queue file could not be read */

/* local_copy - write the delivered copy of msg to fn; delivered is the
   Delivered-To value. 0; -1 with errno after a write error; or
   LOCAL_COPY_ERR_QUEUE when the queue file is bad. The reason is in why. */
int local_copy(LOCAL_MSG *msg, const char *delivered, int flags, LOCAL_WRITE_FN fn, void *ctx,
               VSTR *why);
/* local_quote_address - address with the local part quoted unless it is a
   dot-atom (RFC 5322), for From_ lines and headers */
void local_quote_address(VSTR *out, const char *address);
/* local_read_headers - fill msg->delivered_to from the header section */
int local_read_headers(LOCAL_MSG *msg, VSTR *why);
/* local_has_delivered_to - the message carries "Delivered-To: address" */
int local_has_delivered_to(LOCAL_MSG *msg, const char *address);

/* local_priv.c */
/* A child's answer: status, dsn, reason; for file readers also data and the
   file's owner. */
typedef struct LOCAL_CHILD_REPLY {
    LOCAL_RESULT res;
    VSTR *data;
    uid_t owner_uid;
    gid_t owner_gid;
    int found; /* file readers: 1 the file exists and was read */
} LOCAL_CHILD_REPLY;

/* Runs in the child with the target's privileges; fills reply. */
typedef void (*LOCAL_CHILD_FN)(void *ctx, LOCAL_CHILD_REPLY *reply);

#define LOCAL_RUN_KEEP_ROOT (1 << 0) /* stay root; fn switches ids itself (mbox spool) */

/* local_run_child - run fn in a child process as priv (in a private instance:
   as ourselves), wait at most timeout seconds; the reply is the child's, or
   a deferral when the child failed */
void local_run_child(const LOCAL_PRIV *priv, int flags, long timeout, LOCAL_CHILD_FN fn, void *ctx,
                     LOCAL_CHILD_REPLY *reply);
void local_child_reply_init(LOCAL_CHILD_REPLY *reply);
void local_child_reply_free(LOCAL_CHILD_REPLY *reply);
/* local_priv_become - in a child: become uid/gid for good (groups: gid only) */
void local_priv_become(uid_t uid, gid_t gid);
/* local_priv_effective - in a child started as root: effective ids only (0 = back to root) */
int local_priv_effective(uid_t uid, gid_t gid);
/* local_read_file - read a .forward or :include: file as priv; reply->found,
   data, owner; a deferral on errors other than "does not exist" */
void local_read_file(const LOCAL_PRIV *priv, const char *path, int check_owner, uid_t owner,
                     LOCAL_CHILD_REPLY *reply);

/* local_mailbox.c */
/* local_deliver_mailbox - the user's own mailbox (Maildir or mbox) */
void local_deliver_mailbox(const LOCAL_STATE *st, const LOCAL_USER *user, LOCAL_RESULT *res);
/* local_make_home - under local_home_directory: create the user's home when
   missing and make sure it is the user's; 0, or -1 with the result set */
int local_make_home(const LOCAL_USER *user, LOCAL_RESULT *res);
/* local_deliver_file - a /file destination (trailing '/': a maildir) as priv */
void local_deliver_file(const LOCAL_STATE *st, const char *path, const LOCAL_PRIV *priv,
                        LOCAL_RESULT *res);

/* local_command.c */
/* local_deliver_command - run |command as priv with the message on its input;
   dir is the working directory it must have (command_execution_directory,
   expanded), or NULL for the user's home directory if possible, else "/" */
void local_deliver_command(const LOCAL_STATE *st, const char *command, const LOCAL_PRIV *priv,
                           const LOCAL_USER *user, const char *dir, LOCAL_RESULT *res);
/* local_filter - replace every byte not in allowed by '_' (new string) */
char *local_filter(const char *text, const char *allowed);

/* local_forward.c */
/* local_forward_add - queue address for forwarding on behalf of st */
void local_forward_add(const LOCAL_STATE *st, const char *address);
/* local_forward_flush - send the recipient's forwarded addresses through cleanup */
void local_forward_flush(LOCAL_MSG *msg, LOCAL_RCPT *rcpt);

#endif
