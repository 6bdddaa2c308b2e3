/*
 * postsuper_ops - delete, hold, release and requeue messages, by queue id
 * or all of them, while the mail system runs.
 *
 * Coordination with the queue manager rests on rename(2) and unlink(2)
 * being atomic: a file is in one queue or another, never both and never
 * neither, and of two processes moving the same file only one succeeds
 * (the other gets ENOENT and looks again; see ps_one). qmgr keeps working
 * through its open descriptor on a message it already holds in memory, so
 * a message being delivered right now finishes that delivery attempt; its
 * results still land in the file wherever it went, and qmgr treats ENOENT
 * on its own move or removal as "an administrator took it".
 *
 * Requeue resets deferred recipients to pending, which writes status bytes
 * that qmgr also writes. postsuper does that only while it holds an
 * exclusive flock(2) on the file and re-reads the status first; a process
 * that holds a lock on the file (qmgr, while it works on the message) makes
 * postsuper leave the statuses alone and only move the file. The worst a
 * lost race can do is deliver one recipient twice, never drop one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/mail_queue.h"
#include "mail/mail_trigger.h"
#include "mail/qfile.h"
#include "mail/queue_id.h"
#include "postsuper.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/vstr.h"

#define PS_TRIES 3 /* passes over the queues when a file moves under us */

/* Results of one attempt in one queue. */
#define PS_DONE 0
#define PS_NOT_HERE 1
#define PS_FAILED 2

/* What each operation says, and the queues it applies to. */
static const struct {
    const char *log;           /* "ID: removed" */
    const char *const *dflt;   /* default queues */
    const char *const *refuse; /* queues it never takes mail from */
} ps_op_info[PS_OP_COUNT] = {
    [PS_OP_DELETE] = {"removed",
                      (const char *const[]){MAIL_QUEUE_MAILDROP, MAIL_QUEUE_HOLD,
                                            MAIL_QUEUE_IMMEDIATE, MAIL_QUEUE_BULK,
                                            MAIL_QUEUE_DEFERRED, NULL},
                      (const char *const[]){NULL}},
    [PS_OP_HOLD] = {"placed on hold",
                    (const char *const[]){MAIL_QUEUE_IMMEDIATE, MAIL_QUEUE_BULK,
                                          MAIL_QUEUE_DEFERRED, NULL},
                    /* maildrop mail is not yet sanitized; it must not mix
                       with queue files (Postfix's rule too) */
                    (const char *const[]){MAIL_QUEUE_MAILDROP, MAIL_QUEUE_HOLD, MAIL_QUEUE_INCOMING,
                                          MAIL_QUEUE_CORRUPT, NULL}},
    [PS_OP_RELEASE] = {"released from hold", (const char *const[]){MAIL_QUEUE_HOLD, NULL},
                       (const char *const[]){MAIL_QUEUE_MAILDROP, MAIL_QUEUE_INCOMING,
                                             MAIL_QUEUE_IMMEDIATE, MAIL_QUEUE_BULK,
                                             MAIL_QUEUE_DEFERRED, MAIL_QUEUE_CORRUPT, NULL}},
    [PS_OP_REQUEUE] = {"requeued",
                       (const char *const[]){MAIL_QUEUE_HOLD, MAIL_QUEUE_IMMEDIATE, MAIL_QUEUE_BULK,
                                             MAIL_QUEUE_DEFERRED, NULL},
                       (const char *const[]){MAIL_QUEUE_MAILDROP, MAIL_QUEUE_INCOMING,
                                             MAIL_QUEUE_CORRUPT, NULL}},
};

/* ps_in_list - name is in the NULL-terminated list */
static int ps_in_list(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0)
            return 1;
    return 0;
}

/* ps_queues_for - the queues op looks in */
ARGV *ps_queues_for(enum ps_op op, const ARGV *given)
{
    ARGV *out = argv_alloc(8);

    if (given == NULL) {
        for (const char *const *qp = ps_op_info[op].dflt; *qp; qp++)
            argv_add(out, *qp, (char *)NULL);
        return out;
    }
    for (size_t i = 0; i < given->argc; i++)
        if (!ps_in_list(ps_op_info[op].refuse, given->argv[i]))
            argv_add(out, given->argv[i], (char *)NULL);
    return out;
}

/* ps_log - "ID: removed" and the like: the log, and the terminal for ids
   named one by one (a mass operation would flood it) */
static void ps_log(enum ps_op op, const char *id, int to_terminal)
{
    msg_also_stderr(to_terminal);
    msg_info("%s: %s", id, ps_op_info[op].log);
    msg_also_stderr(1);
}

/* ps_failed - an operation failed for a reason worth telling */
static int ps_failed(const char *id, const char *what, const char *queue)
{
    msg_warn("%s: cannot %s (%s queue): %m", id, what, queue);
    ps_stats.errors++;
    return PS_FAILED;
}

/* ps_delete - remove the file; in incoming/ only when its writer is gone */
static int ps_delete(const char *queue, const char *id)
{
    if (strcmp(queue, MAIL_QUEUE_INCOMING) == 0) {
        VSTR *path = vstr_alloc(100);
        int fd =
            open(mail_queue_path(path, queue, id), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

        vstr_free(path);
        if (fd < 0)
            return errno == ENOENT ? PS_NOT_HERE : ps_failed(id, "remove", queue);
        /* cleanup holds the lock while it writes: that message is not ours. */
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            close(fd);
            msg_warn("%s: is being written to the %s queue -- not removed", id, queue);
            return PS_FAILED;
        }
        int ret = mail_queue_remove(queue, id);
        int saved = errno;

        close(fd);
        errno = saved;
        if (ret < 0)
            return errno == ENOENT ? PS_NOT_HERE : ps_failed(id, "remove", queue);
        return PS_DONE;
    }
    if (mail_queue_remove(queue, id) < 0)
        return errno == ENOENT ? PS_NOT_HERE : ps_failed(id, "remove", queue);
    return PS_DONE;
}

/* ps_hold - move the file to hold/ */
static int ps_hold(const char *queue, const char *id)
{
    if (mail_queue_move(queue, MAIL_QUEUE_HOLD, id) < 0)
        return errno == ENOENT ? PS_NOT_HERE : ps_failed(id, "place on hold", queue);
    return PS_DONE;
}

/* ps_target - the queue a released or requeued message goes to: its class
   queue, where the queue manager takes it at once; deferred/ for a file we
   cannot read (the queue manager decides what it is) */
static const char *ps_target(const QFILE *q)
{
    return q ? qfile_class_queue(q->msg_class) : MAIL_QUEUE_DEFERRED;
}

/* ps_open - the message's queue file; PS_DONE with *qp (NULL when it cannot
   be read as a queue file), or PS_NOT_HERE */
static int ps_open(const char *queue, const char *id, int flags, QFILE **qp)
{
    VSTR *why = vstr_alloc(100);
    int err = qfile_open(queue, id, flags, qp, why);

    if (err != QFILE_OK) {
        *qp = NULL;
        if (err == QFILE_ERR_SYS && errno == ENOENT) {
            vstr_free(why);
            return PS_NOT_HERE;
        }
        msg_warn("%s: %s", id, vstr_str(why));
    }
    vstr_free(why);
    return PS_DONE;
}

/* ps_due_now - a file in deferred/ is due when its modification time has
   passed (the queue manager's convention): make it due now */
static void ps_due_now(const char *queue, const char *id)
{
    VSTR *path = vstr_alloc(100);

    if (utimensat(AT_FDCWD, mail_queue_path(path, queue, id), NULL, AT_SYMLINK_NOFOLLOW) < 0)
        msg_warn("%s: cannot set the next delivery attempt: %m", id);
    vstr_free(path);
}

/* ps_release - hold/ to the message's class queue */
static int ps_release(const char *queue, const char *id)
{
    QFILE *q;
    int ret;

    if (ps_open(queue, id, 0, &q) == PS_NOT_HERE)
        return PS_NOT_HERE;
    if (mail_queue_move(queue, ps_target(q), id) < 0) {
        ret = errno == ENOENT ? PS_NOT_HERE : ps_failed(id, "release from hold", queue);
    } else {
        ret = PS_DONE;
        if (q == NULL)
            ps_due_now(MAIL_QUEUE_DEFERRED, id);
    }
    if (q)
        qfile_close(q);
    return ret;
}

/* ps_reset_deferred - deferred recipients become pending again, under an
   exclusive lock and after re-reading each status byte; 0, or -1 (nothing
   or part reset, the reason logged) */
static int ps_reset_deferred(const char *queue, const char *id, QFILE *q)
{
    VSTR *path = vstr_alloc(100);
    int fd = open(mail_queue_path(path, queue, id), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int ret = 0;

    vstr_free(path);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        /* Someone works on it now; its statuses are theirs to write. */
        if (msg_verbose)
            msg_info("%s: locked -- recipient statuses left as they are", id);
        close(fd);
        return -1;
    }
    for (size_t i = 0; i < q->rcpt_count && ret == 0; i++) {
        unsigned char now;

        if (q->rcpt[i].status != QFILE_RCPT_DEFERRED)
            continue;
        /* The status may have become final since the file was read. */
        if (pread(fd, &now, 1, q->rcpt[i].status_offset) != 1 || now != QFILE_RCPT_DEFERRED)
            continue;
        if (qfile_rcpt_mark(q, i, QFILE_RCPT_PENDING, QFILE_NOSYNC) != QFILE_OK) {
            msg_warn("%s", qfile_why(q));
            ret = -1;
        }
    }
    if (qfile_sync(q) != QFILE_OK) {
        msg_warn("%s", qfile_why(q));
        ret = -1;
    }
    close(fd);
    return ret;
}

/* ps_requeue - deferred recipients pending again, file to its class queue */
static int ps_requeue(const char *queue, const char *id)
{
    const char *target;
    QFILE *q;
    int ret = PS_DONE;

    if (ps_open(queue, id, QFILE_OPEN_UPDATE, &q) == PS_NOT_HERE)
        return PS_NOT_HERE;
    if (q != NULL && ps_reset_deferred(queue, id, q) < 0 && errno == ENOENT) {
        qfile_close(q);
        return PS_NOT_HERE;
    }
    target = ps_target(q);
    if (strcmp(queue, target) != 0 && mail_queue_move(queue, target, id) < 0)
        ret = errno == ENOENT ? PS_NOT_HERE : ps_failed(id, "requeue", queue);
    else if (strcmp(target, MAIL_QUEUE_DEFERRED) == 0)
        ps_due_now(target, id);
    if (q)
        qfile_close(q);
    return ret;
}

/* ps_attempt - op on the file id in queue */
static int ps_attempt(enum ps_op op, const char *queue, const char *id)
{
    switch (op) {
    case PS_OP_DELETE: return ps_delete(queue, id);
    case PS_OP_HOLD: return ps_hold(queue, id);
    case PS_OP_RELEASE: return ps_release(queue, id);
    case PS_OP_REQUEUE: return ps_requeue(queue, id);
    default: msg_panic("ps_attempt: bad operation %d", (int)op);
    }
}

/* ps_put_in_place - a file found at path, outside the place the hash
   settings want (they changed and -s has not run yet), is moved there
   first, so that the operations, which name files by queue and id, find
   it; 0, or -1 with errno */
static int ps_put_in_place(const char *queue, const char *id, const char *path)
{
    VSTR *want = vstr_alloc(100);
    int ret = 0;

    if (strcmp(path, mail_queue_path(want, queue, id)) != 0) {
        if (mail_queue_make_subdirs(queue, id) < 0 || mail_queue_rename(path, vstr_str(want)) < 0) {
            ret = -1;
        } else {
            if (fsync_parent(vstr_str(want)) < 0 || fsync_parent(path) < 0)
                msg_warn("%s: fsync after moving %s: %m", id, path);
            msg_info("%s: moved from %s to %s", id, path, vstr_str(want));
        }
    }
    int saved = errno;

    vstr_free(want);
    errno = saved;
    return ret;
}

/* ps_find_elsewhere - look for id at every hash depth of queue; 1 when it
   was found outside its place and moved there */
static int ps_find_elsewhere(const char *queue, const char *id)
{
    VSTR *path = vstr_alloc(100);
    struct stat st;
    int found = 0;

    for (int depth = 0; depth <= MAIL_QUEUE_HASH_DEPTH_MAX && !found; depth++) {
        vstr_sprintf(path, "%s/%s", mail_queue_directory(), queue);
        for (int level = 0; level < depth; level++)
            vstr_sprintf_append(path, "/%c", queue_id_hash_char(id, level));
        vstr_sprintf_append(path, "/%s", id);
        if (lstat(vstr_str(path), &st) == 0 && S_ISREG(st.st_mode))
            found = ps_put_in_place(queue, id, vstr_str(path)) == 0;
    }
    vstr_free(path);
    return found;
}

/* ps_one - op on one message. A file that moves between queues while we
   look (qmgr at work) is looked for again, a few times. */
void ps_one(enum ps_op op, const ARGV *queues, const char *id, int to_terminal)
{
    for (int tries = 0; tries < PS_TRIES; tries++) {
        for (size_t i = 0; i < queues->argc; i++) {
            int r = ps_attempt(op, queues->argv[i], id);

            if (r == PS_NOT_HERE && tries == 0 && ps_find_elsewhere(queues->argv[i], id))
                r = ps_attempt(op, queues->argv[i], id);
            switch (r) {
            case PS_DONE:
                ps_stats.done[op]++;
                ps_log(op, id, to_terminal);
                return;
            case PS_FAILED: return;
            default: break;
            }
        }
    }
    if (msg_verbose)
        msg_info("%s: not found", id);
}

/* ps_collect - walk callback: where each queue file is */
static int ps_collect(void *ctx, const char *id, const char *path)
{
    (void)id;
    argv_add((ARGV *)ctx, path, (char *)NULL);
    return 0;
}

/* ps_all - op on every message in the queues. Every queue is scanned
   before anything moves, so that a message moved into a queue that comes
   later in the list (requeue from hold/ to immediate/) is not taken twice. */
void ps_all(enum ps_op op, const ARGV *queues)
{
    ARGV **paths = mycalloc(queues->argc ? queues->argc : 1, sizeof(ARGV *));

    for (size_t i = 0; i < queues->argc; i++) {
        paths[i] = argv_alloc(100);
        if (mail_queue_walk(queues->argv[i], ps_collect, paths[i]) < 0) {
            msg_warn("cannot scan queue directory %s/%s: %m", mail_queue_directory(),
                     queues->argv[i]);
            ps_stats.errors++;
        }
    }
    for (size_t i = 0; i < queues->argc; i++) {
        const char *queue = queues->argv[i];

        for (size_t j = 0; j < paths[i]->argc; j++) {
            const char *id = strrchr(paths[i]->argv[j], '/') + 1;

            if (ps_put_in_place(queue, id, paths[i]->argv[j]) < 0) {
                if (errno != ENOENT)
                    ps_failed(id, "move into its place", queue);
                continue;
            }
            if (ps_attempt(op, queue, id) == PS_DONE) {
                ps_stats.done[op]++;
                ps_log(op, id, 0);
            }
        }
        argv_free(paths[i]);
    }
    myfree(paths);
}

/* ps_id_clean - a queue id as read from a line: white space and Postfix's
   status marks (mailq's '*', '!', '#') around it removed, in place */
static char *ps_id_clean(char *line)
{
    char *end;

    line += strspn(line, " \t\r");
    end = line + strlen(line);
    while (end > line && strchr(" \t\r*!#", end[-1]) != NULL)
        *--end = 0;
    return line;
}

/* ps_show - printable excerpt of a bad id for a message */
static const char *ps_show(VSTR *buf, const char *text)
{
    vstr_reset(buf);
    for (size_t i = 0; text[i] && i < 64; i++)
        vstr_addch(buf, text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?');
    if (strlen(text) > 64)
        vstr_cat(buf, "...");
    return vstr_str(buf);
}

/* ps_stdin - op on the ids read from standard input */
void ps_stdin(enum ps_op op, const ARGV *queues)
{
    VSTR *line = vstr_alloc(100);
    VSTR *show = vstr_alloc(100);
    int ch, overlong = 0;

    vstr_set_limit(line, PS_LINE_MAX);
    do {
        ch = getchar();
        if (ch != EOF && ch != '\n') {
            if (vstr_addch(line, ch) < 0)
                overlong = 1;
            continue;
        }
        if (overlong) {
            msg_warn("standard input: line longer than %d bytes -- skipped", PS_LINE_MAX);
            ps_stats.bad_ids++;
        } else if (memchr(vstr_str(line), 0, vstr_len(line)) != NULL) {
            msg_warn("standard input: null byte in a line -- skipped");
            ps_stats.bad_ids++;
        } else {
            char *id = ps_id_clean(vstr_str(line));

            if (*id == 0) {
                /* blank line */
            } else if (!queue_id_valid(id)) {
                msg_warn("invalid mail queue id: %s", ps_show(show, id));
                ps_stats.bad_ids++;
            } else {
                ps_one(op, queues, id, 1);
            }
        }
        vstr_reset(line);
        overlong = 0;
    } while (ch != EOF);
    if (ferror(stdin)) {
        msg_warn("read standard input: %m");
        ps_stats.errors++;
    }
    vstr_free(line);
    vstr_free(show);
}

/* ps_wakeup - the queue manager should look at the queue now */
void ps_wakeup(void)
{
    VSTR *path = vstr_alloc(100);
    long t = var_time("trigger_timeout");

    vstr_sprintf(path, "%s/%s", MAIL_QUEUE_PUBLIC, var_str("queue_service_name"));
    /* The mail system may well be down; it looks at the queue when it starts. */
    if (mail_trigger_one(vstr_str(path), "W", t > 0 && t < 3600 ? (int)t * 1000 : 10000) < 0 &&
        msg_verbose)
        msg_info("cannot wake up the %s service: %m", var_str("queue_service_name"));
    vstr_free(path);
}
