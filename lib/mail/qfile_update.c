/*
 * qfile_update - durable changes to committed queue files: recipient status
 * in place, appended deferral and delay-warning records, moves between
 * queues, removal, and the purge of abandoned files in incoming/.
 *
 * Only one process (qmgr) updates a given file at a time; readers may look
 * at it meanwhile and see either the old or the new status byte, and at most
 * a partial appended record, which they ignore (see qfile.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/mail_queue.h"
#include "mail/qfile_rec.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"

/* qfile_uerr - set q's reason and return err */
static int qfile_uerr(QFILE *q, int err, const char *fmt, ...) MSG_FMT(3, 4);

static int qfile_uerr(QFILE *q, int err, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    vstr_sprintf(q->why, "%s: ", q->id);
    va_start(ap, fmt);
    vstr_vsprintf_append(q->why, fmt, ap);
    va_end(ap);
    errno = saved;
    return err;
}

/* qfile_writable - the handle was opened for updates and index is in range */
static int qfile_writable(QFILE *q, size_t index)
{
    if (!(q->flags & QFILE_OPEN_UPDATE))
        return qfile_uerr(q, QFILE_ERR_INVAL, "opened read-only");
    if (index >= q->rcpt_count)
        return qfile_uerr(q, QFILE_ERR_INVAL, "no recipient #%zu", index);
    return 0;
}

/* qfile_pwrite_full - len bytes at offset */
static int qfile_pwrite_full(int fd, const void *buf, size_t len, off_t offset)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, offset);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
        offset += n;
    }
    return 0;
}

/* qfile_sync - make the updates so far durable */
int qfile_sync(QFILE *q)
{
    if (fdatasync(q->fd) < 0)
        return qfile_uerr(q, QFILE_ERR_SYS, "fdatasync: %m");
    return 0;
}

/* qfile_status_write - one byte in place */
static int qfile_status_write(QFILE *q, size_t index, int status)
{
    unsigned char b = (unsigned char)status;

    /* One byte lies within one sector: on disk it is either old or new. */
    if (qfile_pwrite_full(q->fd, &b, 1, q->rcpt[index].status_offset) < 0)
        return qfile_uerr(q, QFILE_ERR_SYS, "update recipient status: %m");
    q->rcpt[index].status = status;
    return 0;
}

/* qfile_rcpt_mark - set a recipient's status in place */
int qfile_rcpt_mark(QFILE *q, size_t index, int status, int flags)
{
    QFILE_RCPT *r;
    int err;

    if ((err = qfile_writable(q, index)) != 0)
        return err;
    if (!qfile_status_ok(status))
        return qfile_uerr(q, QFILE_ERR_INVAL, "bad recipient status 0x%02x", status);
    r = q->rcpt + index;
    if (r->status == status)
        return 0;
    if (r->status == QFILE_RCPT_DONE || r->status == QFILE_RCPT_BOUNCED)
        return qfile_uerr(q, QFILE_ERR_INVAL, "recipient #%zu is already final", index);
    if ((err = qfile_status_write(q, index, status)) != 0)
        return err;
    return (flags & QFILE_NOSYNC) ? 0 : qfile_sync(q);
}

/* qfile_append - one record after the last good one, cutting off a damaged tail */
static int qfile_append(QFILE *q, int type, const void *p1, size_t n1, const void *p2, size_t n2)
{
    size_t len = n1 + n2;
    unsigned char *rec;
    struct stat st;
    int err = 0;

    if (len > qfile_type_max_len(type))
        msg_panic("qfile_append: record '%c' of %zu bytes", type, len);
    if (fstat(q->fd, &st) < 0)
        return qfile_uerr(q, QFILE_ERR_SYS, "fstat: %m");
    if (st.st_size < q->valid_end)
        return qfile_uerr(q, QFILE_ERR_CORRUPT, "file shrank while open");
    if (st.st_size > q->valid_end && ftruncate(q->fd, q->valid_end) < 0)
        return qfile_uerr(q, QFILE_ERR_SYS, "cut off damaged tail: %m");
    rec = mymalloc(QFILE_REC_HEADER_LEN + len);
    rec[0] = (unsigned char)type;
    qfile_put32(rec + 1, (uint32_t)len);
    if (n1)
        memcpy(rec + QFILE_REC_HEADER_LEN, p1, n1);
    if (n2)
        memcpy(rec + QFILE_REC_HEADER_LEN + n1, p2, n2);
    if (qfile_pwrite_full(q->fd, rec, QFILE_REC_HEADER_LEN + len, q->valid_end) < 0) {
        err = qfile_uerr(q, QFILE_ERR_SYS, "append: %m");
        /* Leave no partial record for the next append to write after. */
        int saved = errno;

        (void)ftruncate(q->fd, q->valid_end);
        errno = saved;
    } else {
        q->valid_end += (off_t)(QFILE_REC_HEADER_LEN + len);
        q->tail_damaged = 0;
    }
    myfree(rec);
    return err;
}

/* qfile_clean_text - copy text for the file: CR and LF become spaces, cut at max */
static char *qfile_clean_text(const char *text, size_t max, size_t *lenp)
{
    size_t len = text ? strnlen(text, max) : 0;
    char *copy = mystrndup(text ? text : "", len);

    for (size_t i = 0; i < len; i++)
        if (copy[i] == '\r' || copy[i] == '\n')
            copy[i] = ' ';
    *lenp = len;
    return copy;
}

/* qfile_rcpt_defer - record why a recipient was deferred and when to retry */
int qfile_rcpt_defer(QFILE *q, size_t index, time_t when, time_t next_attempt,
                     const char *dsn_status, const char *reason, int flags)
{
    unsigned char head[21 + QFILE_DSN_STATUS_MAX];
    size_t dlen = dsn_status ? strlen(dsn_status) : 0, rlen;
    QFILE_RCPT *r;
    char *text;
    int err;

    if ((err = qfile_writable(q, index)) != 0)
        return err;
    r = q->rcpt + index;
    if (r->status == QFILE_RCPT_DONE || r->status == QFILE_RCPT_BOUNCED)
        return qfile_uerr(q, QFILE_ERR_INVAL, "recipient #%zu is already final", index);
    if (when < 0 || next_attempt < 0)
        return qfile_uerr(q, QFILE_ERR_INVAL, "negative time");
    if (!qfile_addr_ok(dsn_status ? dsn_status : "", dlen, QFILE_DSN_STATUS_MAX))
        return qfile_uerr(q, QFILE_ERR_INVAL, "bad DSN status text");

    /* Reasons come from remote servers: keep them one bounded line. */
    text = qfile_clean_text(reason, QFILE_REASON_MAX, &rlen);
    qfile_put32(head, (uint32_t)index);
    qfile_put64(head + 4, (uint64_t)when);
    qfile_put64(head + 12, (uint64_t)next_attempt);
    head[20] = (unsigned char)dlen;
    memcpy(head + 21, dsn_status ? dsn_status : "", dlen);
    err = qfile_append(q, QFILE_REC_DEFER, head, 21 + dlen, text, rlen);
    if (err == 0 && r->status != QFILE_RCPT_DEFERRED)
        err = qfile_status_write(q, index, QFILE_RCPT_DEFERRED);
    if (err == 0 && !(flags & QFILE_NOSYNC))
        err = qfile_sync(q);
    if (err == 0) {
        r->defer_count++;
        r->defer_time = when;
        r->next_attempt = next_attempt;
        myfree(r->dsn_status);
        myfree(r->reason);
        r->dsn_status = mystrndup(dsn_status ? dsn_status : "", dlen);
        r->reason = text;
    } else {
        myfree(text);
    }
    return err;
}

/* qfile_set_delay_warned - record that a delay warning was sent */
int qfile_set_delay_warned(QFILE *q, time_t when, int flags)
{
    unsigned char p[8];
    int err;

    if (!(q->flags & QFILE_OPEN_UPDATE))
        return qfile_uerr(q, QFILE_ERR_INVAL, "opened read-only");
    if (when < 0)
        return qfile_uerr(q, QFILE_ERR_INVAL, "negative time");
    qfile_put64(p, (uint64_t)when);
    if ((err = qfile_append(q, QFILE_REC_WARNED, p, sizeof(p), NULL, 0)) != 0)
        return err;
    if (!(flags & QFILE_NOSYNC) && (err = qfile_sync(q)) != 0)
        return err;
    q->delay_warned = 1;
    q->delay_warned_time = when;
    return 0;
}

/* qfile_move - move the open file to another queue */
int qfile_move(QFILE *q, const char *to_queue)
{
    if (q->queue == NULL)
        msg_panic("qfile_move: %s was opened by path", q->id);
    if (!mail_queue_name_ok(to_queue))
        return qfile_uerr(q, QFILE_ERR_INVAL, "bad queue name");
    if (mail_queue_move(q->queue, to_queue, q->id) < 0)
        return qfile_uerr(q, QFILE_ERR_SYS, "move from %s to %s: %m", q->queue, to_queue);
    myfree(q->queue);
    q->queue = mystrdup(to_queue);
    mail_queue_path(q->path, to_queue, q->id);
    return 0;
}

/*
 * qfile_remove - unlink the file of a message that is done with.
 *
 * No fsync() of the directory, as in Postfix: if a crash undoes the unlink,
 * the file comes back with every recipient final (qmgr removes it again) or,
 * if the same crash also lost the unsynced final marks, with some
 * recipients pending, who are then delivered a second time. A removal that
 * does not reach the disk can only cause a duplicate, never a loss
 * (docs/queue-format.md, "Crash recovery"), so it is not worth a disk
 * flush per message.
 */
int qfile_remove(QFILE *q)
{
    if (q->queue == NULL)
        msg_panic("qfile_remove: %s was opened by path", q->id);
    if (unlink(vstr_str(q->path)) < 0)
        return qfile_uerr(q, QFILE_ERR_SYS, "remove from %s: %m", q->queue);
    return 0;
}

typedef struct QFILE_PURGE {
    time_t now;
    long min_age;
    long removed;
} QFILE_PURGE;

/* qfile_purge_one - walk callback: remove one abandoned incoming file */
static int qfile_purge_one(void *ctx, const char *id, const char *path)
{
    QFILE_PURGE *purge = ctx;
    struct stat st;
    int fd;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) < 0)
        return 0; /* committed or removed meanwhile */

    /* A live writer holds the lock; its file is not ours to remove. The age
       test covers the moment between a writer's open and its flock. */
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        purge->now - st.st_mtime >= purge->min_age) {
        if (unlink(path) == 0) {
            if (fsync_parent(path) < 0)
                msg_warn("fsync directory of %s: %m", path);
            msg_info("%s: removed incomplete queue file (never acknowledged)", id);
            purge->removed++;
        } else if (errno != ENOENT) {
            msg_warn("remove %s: %m", path);
        }
    }
    (void)close(fd);
    return 0;
}

/* qfile_purge_incoming - remove abandoned files from incoming/ */
long qfile_purge_incoming(long min_age, VSTR *why)
{
    QFILE_PURGE purge = {time(NULL), min_age, 0};

    if (mail_queue_walk(MAIL_QUEUE_INCOMING, qfile_purge_one, &purge) < 0) {
        if (why)
            vstr_sprintf(why, "scan %s/%s: %m", mail_queue_directory(), MAIL_QUEUE_INCOMING);
        return -1;
    }
    return purge.removed;
}
