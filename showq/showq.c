/*
 * showq - list the mail queue for postqueue -p / -j and mailq, as
 * Postfix's showq(8).
 *
 * SYNOPSIS
 *   master.cf:  showq unix n - n - - showq
 *   showq -S [-c config_dir] [-v]      (stand-alone, started by postqueue)
 *
 * DESCRIPTION
 *   A single-client service on public/showq, running as mail_owner: for
 *   each client it reads the queue directories and sends one protocol
 *   message per queue file (docs/protocols.md section 4): maildrop/, then
 *   immediate/ and bulk/ (Postfix's "active" mail, shown with '*'),
 *   deferred/ and hold/ ('!'), oldest first within each queue. incoming/
 *   holds only files that were never acknowledged and corrupt/ only what
 *   the queue manager set aside, so neither is listed. The listing is not
 *   a snapshot: a message moved between queues while the listing runs may
 *   be shown twice or not at all, as in Postfix.
 *
 *   Only users allowed by authorized_mailq_users see the queue; root and
 *   mail_owner always do. The user is the one the kernel reports for the
 *   peer of the connection (SO_PEERCRED), so a set-group-id client cannot
 *   lie about it. A refused user gets an "end" message saying so, and the
 *   refusal is logged.
 *
 *   Per recipient that is not yet delivered or bounced the listing shows
 *   the address and, for a deferred one, the latest deferral reason;
 *   deferred recipients come first (as Postfix lists its defer log first).
 *   Addresses are shown in external form (quoted local part where needed),
 *   the null sender as $empty_address_recipient. Everything sent is made
 *   printable (showq_printable).
 *
 *   With -S, showq writes the same stream to standard output and exits:
 *   postqueue runs it that way for root while the mail system is down.
 *   Started as root it first becomes mail_owner.
 *
 * SECURITY
 *   showq takes no input from the client. Queue files are only read.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "mail/attr.h"
#include "mail/mail_conf.h"
#include "mail/mail_queue.h"
#include "mail/mail_server.h"
#include "mail/maildrop.h"
#include "mail/priv.h"
#include "mail/qfile.h"
#include "mail/showq_proto.h"
#include "mail/smtp_addr.h"
#include "mail/user_acl.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/strutil.h"
#include "util/vstr.h"

#define SHOWQ_TIMEOUT_MAX_MS (3600 * 1000) /* per message, whatever ipc_timeout says */

/* The queues listed, in Postfix's order (maildrop, active, deferred, hold). */
static const char *const showq_queues[] = {
    MAIL_QUEUE_MAILDROP, MAIL_QUEUE_IMMEDIATE, MAIL_QUEUE_BULK,
    MAIL_QUEUE_DEFERRED, MAIL_QUEUE_HOLD,      NULL,
};

/* What a listing needs to carry along. */
typedef struct SHOWQ_STATE {
    SHOWQ_WRITER *w;
    unsigned long long count; /* queue files sent */
    VSTR *sender;             /* scratch: printable sender */
    VSTR *addr;               /* scratch: printable recipient */
    VSTR *reason;             /* scratch: printable reason */
    VSTR *ext;                /* scratch: external address form */
    VSTR *why;
} SHOWQ_STATE;

/* showq_timeout_ms - the per-message time limit */
static int showq_timeout_ms(void)
{
    long t = var_time("ipc_timeout");

    return t > 0 && t < SHOWQ_TIMEOUT_MAX_MS / 1000 ? (int)t * 1000 : SHOWQ_TIMEOUT_MAX_MS;
}

/* showq_address - an envelope address as it is shown: external form,
   printable; the null sender as $empty_address_recipient */
static const char *showq_address(SHOWQ_STATE *st, VSTR *out, const char *addr)
{
    if (*addr == 0) {
        showq_printable(out, var_str("empty_address_recipient"));
    } else if (smtp_addr_external(st->ext, addr, strlen(addr)) == 0) {
        showq_printable(out, vstr_str(st->ext));
    } else {
        showq_printable(out, addr);
    }
    return vstr_str(out);
}

/* showq_send_rcpts - recipients not yet final: deferred first, then pending */
static int showq_send_rcpts(SHOWQ_STATE *st, const QFILE *q)
{
    static const int order[] = {QFILE_RCPT_DEFERRED, QFILE_RCPT_PENDING};

    for (size_t pass = 0; pass < sizeof(order) / sizeof(order[0]); pass++) {
        for (size_t i = 0; i < q->rcpt_count; i++) {
            const QFILE_RCPT *r = q->rcpt + i;

            if (r->status != order[pass])
                continue;
            showq_printable(st->reason,
                            r->status == QFILE_RCPT_DEFERRED && r->reason != NULL ? r->reason : "");
            if (showq_writer_rcpt(st->w, showq_address(st, st->addr, r->address),
                                  vstr_str(st->reason)) < 0)
                return -1;
        }
    }
    return 0;
}

/* showq_send_drop - a maildrop file that does not parse: pickup judges it
   later; meanwhile it is shown as Postfix showed such files, by its owner */
static int showq_send_drop(SHOWQ_STATE *st, const char *id, const struct stat *sb)
{
    int ret;

    vstr_sprintf(st->sender, "(maildrop queue, sender UID %lu)", (unsigned long)sb->st_uid);
    ret = showq_writer_message(st->w, MAIL_QUEUE_MAILDROP, id, (unsigned long long)sb->st_mtime,
                               (unsigned long long)sb->st_size, 0, vstr_str(st->sender));
    if (ret == 0)
        ret = showq_writer_done(st->w);
    if (ret == 0)
        st->count++;
    return ret;
}

/* showq_send_maildrop - a local submission waiting for pickup (the maildrop
   format, lib/mail/maildrop.h): its sender (without one, the owner's login,
   which pickup will use) and recipients; the arrival time is the file's */
static int showq_send_maildrop(SHOWQ_STATE *st, const char *id, const char *path)
{
    MAILDROP_ENVELOPE env;
    struct stat sb;
    int fd, ret = 0;

    /* O_NONBLOCK: a fifo planted here must not hang the listing. */
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) < 0)
        return 0;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return 0;
    }
    (void)non_blocking(fd, 0);
    if (maildrop_envelope_read(fd, MAILDROP_RD_FILE, NULL, &env, st->why) != 0) {
        ret = showq_send_drop(st, id, &sb);
    } else {
        if (env.sender != NULL) {
            showq_address(st, st->sender, env.sender);
        } else {
            user_acl_name(sb.st_uid, st->ext);
            showq_printable(st->sender, vstr_str(st->ext));
        }
        ret = showq_writer_message(st->w, MAIL_QUEUE_MAILDROP, id,
                                   (unsigned long long)sb.st_mtime, env.content_size, 0,
                                   vstr_str(st->sender));
        for (size_t i = 0; ret == 0 && i < env.rcpt->argc; i++)
            ret = showq_writer_rcpt(st->w, showq_address(st, st->addr, env.rcpt->argv[i]), "");
        if (ret == 0)
            ret = showq_writer_done(st->w);
        if (ret == 0)
            st->count++;
    }
    maildrop_envelope_free(&env);
    close(fd);
    return ret;
}

/* showq_send_file - one queue file found at path; 0 sent or skipped, -1 client gone */
static int showq_send_file(SHOWQ_STATE *st, const char *queue, const char *id, const char *path)
{
    QFILE *q;
    int err;

    if (strcmp(queue, MAIL_QUEUE_MAILDROP) == 0)
        return showq_send_maildrop(st, id, path);
    if ((err = qfile_open_path(path, id, 0, &q, st->why)) != QFILE_OK) {
        /* Moved or removed since the scan: that is the queue at work. */
        if (err == QFILE_ERR_SYS && errno == ENOENT)
            return 0;
        /* The queue manager sets damaged files aside; not ours to judge. */
        msg_warn("%s: skipping queue file in %s/: %s", id, queue, vstr_str(st->why));
        return 0;
    }
    int ret = showq_writer_message(st->w, queue, id, (unsigned long long)q->arrival.tv_sec,
                                   q->content_size, 0, showq_address(st, st->sender, q->sender));

    if (ret == 0)
        ret = showq_send_rcpts(st, q);
    if (ret == 0)
        ret = showq_writer_done(st->w);
    if (ret == 0)
        st->count++;
    qfile_close(q);
    return ret;
}

/* showq_collect - walk callback: remember where each queue file is */
static int showq_collect(void *ctx, const char *id, const char *path)
{
    (void)id;
    argv_add((ARGV *)ctx, path, (char *)NULL);
    return 0;
}

/* showq_path_cmp - qsort by file name: the queue id, so arrival order */
static int showq_path_cmp(const void *a, const void *b)
{
    const char *pa = *(char *const *)a, *pb = *(char *const *)b;

    return strcmp(strrchr(pa, '/') + 1, strrchr(pb, '/') + 1);
}

/* showq_list - every listed queue; 0 done, -1 client gone, 1 a queue unreadable.
   Files are read where the walk finds them, so a queue whose hash settings
   changed (and that postsuper -s has not yet put in order) is still listed. */
static int showq_list(SHOWQ_STATE *st, VSTR *fail)
{
    int ret = 0;

    for (const char *const *qp = showq_queues; *qp; qp++) {
        ARGV *paths = argv_alloc(100);

        if (mail_queue_walk(*qp, showq_collect, paths) < 0) {
            msg_warn("cannot scan queue directory %s/%s: %m", mail_queue_directory(), *qp);
            if (vstr_len(fail) == 0)
                vstr_sprintf(fail, "cannot scan the %s queue: %m", *qp);
            ret = 1;
        }
        qsort(paths->argv, paths->argc, sizeof(char *), showq_path_cmp);
        for (size_t i = 0; i < paths->argc; i++) {
            const char *path = paths->argv[i];

            if (showq_send_file(st, *qp, strrchr(path, '/') + 1, path) < 0) {
                argv_free(paths);
                return -1;
            }
        }
        argv_free(paths);
    }
    return ret;
}

/* showq_run - the whole listing on stream s; status per SHOWQ_STAT_* */
static void showq_run(ATTR_STREAM *s)
{
    SHOWQ_STATE st = {
        .w = showq_writer_new(s),
        .sender = vstr_alloc(100),
        .addr = vstr_alloc(100),
        .reason = vstr_alloc(100),
        .ext = vstr_alloc(100),
        .why = vstr_alloc(100),
    };
    VSTR *fail = vstr_alloc(100);
    int ret = showq_list(&st, fail);

    if (ret >= 0 && showq_writer_end(st.w, ret == 0 ? SHOWQ_STAT_OK : SHOWQ_STAT_FAIL,
                                     vstr_str(fail), st.count) < 0)
        ret = -1;
    if (ret < 0 && errno != EPIPE && errno != ECONNRESET)
        msg_warn("queue listing cut short: %s", attr_stream_why(s));
    showq_writer_free(st.w);
    vstr_free(st.sender);
    vstr_free(st.addr);
    vstr_free(st.reason);
    vstr_free(st.ext);
    vstr_free(st.why);
    vstr_free(fail);
}

/* showq_allowed - may the peer of fd see the queue; the refusal text in why */
static int showq_allowed(int fd, VSTR *why)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    VSTR *name, *err;
    int r;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred)) {
        msg_warn("cannot get the credentials of a client: %m -- refusing");
        vstr_cpy(why, "Cannot determine the client's user: not allowed to view the mail queue");
        return 0;
    }
    /* The super-user and the mail system itself always may. */
    if (cred.uid == 0 || cred.uid == getuid())
        return 1;
    name = vstr_alloc(32);
    err = vstr_alloc(100);
    r = user_acl_check("authorized_mailq_users", var_str("authorized_mailq_users"), cred.uid, name,
                       err);
    if (r == USER_ACL_ERROR)
        msg_warn("%s -- refusing the queue listing to %s(%ld)", vstr_str(err), vstr_str(name),
                 (long)cred.uid);
    else if (r == USER_ACL_DENY)
        msg_warn("refusing the queue listing to %s(%ld): not in authorized_mailq_users",
                 vstr_str(name), (long)cred.uid);
    if (r != USER_ACL_ALLOW)
        vstr_sprintf(why, "User %s(%ld) is not allowed to view the mail queue", vstr_str(name),
                     (long)cred.uid);
    vstr_free(name);
    vstr_free(err);
    return r == USER_ACL_ALLOW;
}

/* showq_service - one client */
static void showq_service(const MAIL_SERVER_ARGS *args, int fd)
{
    ATTR_STREAM *s = attr_stream_open(fd, showq_timeout_ms());
    VSTR *why = vstr_alloc(100);

    if (args->argc > 0)
        msg_fatal("unexpected command-line argument: %s", args->argv[0]);
    if (showq_allowed(fd, why)) {
        showq_run(s);
    } else {
        SHOWQ_WRITER *w = showq_writer_new(s);

        if (showq_writer_end(w, SHOWQ_STAT_DENIED, vstr_str(why), 0) < 0 && errno != EPIPE)
            msg_warn("refusal not sent: %s", attr_stream_why(s));
        showq_writer_free(w);
    }
    attr_stream_free(s);
    vstr_free(why);
}

/* showq_queue_init - the queue module's settings from main.cf */
static void showq_queue_init(void)
{
    VSTR *why = vstr_alloc(100);

    /* After a chroot the queue is "."; otherwise queue_directory (the cwd). */
    if (mail_queue_init(".", (int)var_int("hash_queue_depth"), var_str("hash_queue_names"), why) <
        0)
        msg_fatal("%s", vstr_str(why));
    vstr_free(why);
}

/* showq_post_init - after the privilege drop */
static void showq_post_init(const MAIL_SERVER_ARGS *args)
{
    (void)args;
    showq_queue_init();
}

/* showq_standalone - "showq -S": the listing on standard output */
static _Noreturn void showq_standalone(int argc, char **argv)
{
    const char *config_dir = NULL;
    ATTR_STREAM *s;
    int ch;

    optind = 2;
    while ((ch = getopt(argc, argv, "c:v")) != -1) {
        switch (ch) {
        case 'c': config_dir = optarg; break;
        case 'v': msg_verbose++; break;
        default: msg_fatal_status(64, "usage: %s -S [-c config_dir] [-v]", msg_program());
        }
    }
    if (optind < argc)
        msg_fatal_status(64, "usage: %s -S [-c config_dir] [-v]", msg_program());
    mail_conf_read(mail_conf_dir(config_dir));
    msg_open(var_str("syslog_name"), var_str("syslog_facility"), var_str("maillog_file"));
    msg_also_stderr(1);
    if (chdir(var_str("queue_directory")) < 0)
        msg_fatal("chdir %s: %m", var_str("queue_directory"));
    /* Reading the queue needs no more than the mail system's own rights. */
    if (priv_is_root())
        priv_drop(var_str("mail_owner"), NULL);
    else
        priv_no_new_privs();
    showq_queue_init();
    signal(SIGPIPE, SIG_IGN);
    s = attr_stream_open(STDOUT_FILENO, showq_timeout_ms());
    showq_run(s);
    attr_stream_free(s);
    exit(0);
}

int main(int argc, char **argv)
{
    static const MAIL_SERVER_SPEC spec = {
        .kind = MAIL_SERVER_SINGLE,
        .post_init = showq_post_init,
        .single_service = showq_service,
    };

    if (argc >= 2 && strcmp(argv[1], "-S") == 0) {
        msg_init(argv[0]);
        showq_standalone(argc, argv);
    }
    mail_server_main(argc, argv, &spec);
}
