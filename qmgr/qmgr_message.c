/*
 * qmgr_message - the active messages: taking a queue file into memory,
 * recording each recipient's result in it, and ending the round.
 *
 * Order of durable steps (docs/queue-format.md, "Crash recovery"):
 *
 *   1. a result is written into the queue file (status byte in place for
 *      delivered and bounced recipients, an appended DEFER record with the
 *      reason and the next attempt time for deferred ones);
 *   2. qfile_sync() makes the results of one batch durable (fdatasync);
 *   3. only then does qmgr act: remove the file when every recipient is
 *      final ("ID: removed"), or move it to deferred/ and set its
 *      modification time to the next attempt time.
 *
 * A crash between any two steps leaves the file in a queue qmgr scans, with
 * the results recorded so far; recipients without a recorded result are
 * delivered again (at-least-once), recipients recorded final never are.
 * One exception saves an fdatasync per message: when the results make every
 * recipient final and no notice is due, the next step is the removal, and
 * the marks are not synced first (docs/queue-format.md, "Crash recovery"):
 * a power loss that undoes the removal may undo them too, which repeats
 * those deliveries and loses none.
 *
 * Retry times follow Postfix: after a failed round the next attempt comes
 * after the message's age, clamped between minimal_backoff_time and
 * maximal_backoff_time, so the interval doubles with every attempt. A
 * message older than maximal_queue_lifetime (bounce_queue_lifetime for the
 * null sender) that still has deferred recipients after a round has them
 * bounced ("status=expired, returned to sender").
 *
 * BOUNCES. A recipient that failed for good (a 5xx from an agent, or its
 * message expired) first gets a DEFER record with its 5.x.x status and
 * reason: "deferred with a permanent status" means "failed, notice not
 * queued yet". At the end of the round bounce(8) is asked to queue the
 * notice to the sender (qmgr_notify.c); only when it has done so does the
 * status byte become 'B'. If the notice cannot be queued now, the
 * recipient stays deferred, and a later round (or a restart: such
 * recipients are recognised when the file is taken in) asks again without
 * delivering again. A crash before the 'B' is recorded can at worst queue
 * a notice twice, never lose it.
 *
 * NOTICES AT THE END OF A ROUND, all through bounce(8): failures (above);
 * a delay warning once per message (the WARNED record) when the message is
 * older than delay_warning_time and recipients are still deferred; success
 * notices for delivered recipients whose NOTIFY has SUCCESS when the next
 * hop did not take the request over (dsn_passed). A success notice that
 * cannot be queued is only logged: the delivery itself must not repeat.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/mail_queue.h"
#include "mail/qfile.h"
#include "qmgr.h"
#include "util/msg.h"
#include "util/mymalloc.h"

static QMGR_RING qmgr_active;        /* every active message */
static QMGR_HTABLE *qmgr_active_ids; /* id -> QMGR_MESSAGE */
static size_t qmgr_active_count;
static size_t qmgr_active_rcpt;
static size_t qmgr_active_class[QMGR_CLASS_COUNT];
static unsigned long qmgr_message_seq;
static QMGR_HTABLE *qmgr_skip;    /* ids not to open again in this process */
static QMGR_HTABLE *qmgr_flushed; /* ids a flush request moved, until taken in */

/* qmgr_message_init - empty active set */
void qmgr_message_init(void)
{
    qmgr_ring_init(&qmgr_active);
    qmgr_active_ids = qmgr_htable_create(1024);
    qmgr_skip = qmgr_htable_create(64);
    qmgr_flushed = qmgr_htable_create(64);
}

/* qmgr_message_flush_mark - this message was moved by a flush request */
void qmgr_message_flush_mark(const char *id)
{
    if (qmgr_htable_find(qmgr_flushed, id) != NULL)
        return;
    /* Bounded: forgetting only means defer_transports holds one back. */
    if (qmgr_htable_count(qmgr_flushed) >= QMGR_FLUSHED_MAX) {
        qmgr_htable_free(qmgr_flushed);
        qmgr_flushed = qmgr_htable_create(64);
    }
    qmgr_htable_enter(qmgr_flushed, id, (void *)1);
}

size_t qmgr_message_active_count(void)
{
    return qmgr_active_count;
}

size_t qmgr_message_class_count(int msg_class)
{
    return qmgr_active_class[msg_class];
}

/* qmgr_message_find - the active message with this id */
QMGR_MESSAGE *qmgr_message_find(const char *id)
{
    return qmgr_htable_find(qmgr_active_ids, id);
}

/* qmgr_message_room - may a message with nrcpt recipients come in now */
int qmgr_message_room(size_t nrcpt)
{
    if (qmgr_active_count >= (size_t)qmgr_conf.active_limit)
        return 0;
    /* One message always fits, however many recipients it has: otherwise a
       message bigger than the recipient budget would never be delivered. */
    if (qmgr_active_count > 0 && qmgr_active_rcpt + nrcpt > (size_t)qmgr_conf.rcpt_limit)
        return 0;
    return 1;
}

/* qmgr_message_skip_add - do not open this file again in this process */
void qmgr_message_skip_add(const char *id)
{
    if (qmgr_message_skip_has(id))
        return;
    /* Bounded: forgetting them all only costs one more warning each. */
    if (qmgr_htable_count(qmgr_skip) >= QMGR_SKIP_MAX) {
        qmgr_htable_free(qmgr_skip);
        qmgr_skip = qmgr_htable_create(64);
    }
    qmgr_htable_enter(qmgr_skip, id, (void *)1);
}

int qmgr_message_skip_has(const char *id)
{
    return qmgr_htable_find(qmgr_skip, id) != NULL;
}

/* qmgr_fmt_delay - seconds as Postfix logs delays: at most two significant
   digits below 100 s, whole seconds above, "0" below 10 ms */
const char *qmgr_fmt_delay(char *buf, size_t size, double seconds)
{
    if (seconds < 0.01)
        snprintf(buf, size, "0");
    else if (seconds < 0.1)
        snprintf(buf, size, "%.2f", seconds);
    else if (seconds < 100)
        snprintf(buf, size, "%.2g", seconds);
    else
        snprintf(buf, size, "%.0f", seconds);
    return buf;
}

/* qmgr_tv_diff - b - a in seconds */
static double qmgr_tv_diff(const struct timeval *a, const struct timeval *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_usec - a->tv_usec) / 1e6;
}

/* qmgr_message_magic_ok - the file starts like a queue file (or is too short
   to tell): a bad magic means it is not one of ours at all */
static int qmgr_message_magic_ok(const char *queue, const char *id)
{
    VSTR *path = vstr_alloc(100);
    char buf[QFILE_MAGIC_LEN];
    ssize_t n = -1;
    int fd;

    if ((fd = open(mail_queue_path(path, queue, id), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
        n = pread(fd, buf, sizeof(buf), 0);
        close(fd);
    }
    vstr_free(path);
    return n < 0 || memcmp(buf, QFILE_MAGIC, (size_t)n) == 0;
}

/* qmgr_message_corrupt - keep a broken file for the administrator, out of the way */
void qmgr_message_corrupt(const char *queue, const char *id, const char *why)
{
    if (mail_queue_move(queue, MAIL_QUEUE_CORRUPT, id) == 0) {
        msg_warn("%s: corrupt queue file in %s/: %s -- moved to %s/", id, queue, why,
                 MAIL_QUEUE_CORRUPT);
    } else if (errno != ENOENT) {
        msg_warn("%s: corrupt queue file in %s/: %s; cannot move it to %s/: %m", id, queue, why,
                 MAIL_QUEUE_CORRUPT);
        qmgr_message_skip_add(id);
    }
}

/* qmgr_message_open_error - what a failed qfile_open means for the file */
static int qmgr_message_open_error(const char *queue, const char *id, int err, const char *why)
{
    switch (err) {
    case QFILE_ERR_SYS:
        if (errno == ENOENT)
            return QMGR_TAKE_GONE;
        msg_warn("%s: cannot read queue file in %s/: %s", id, queue, why);
        return QMGR_TAKE_SKIPPED;
    case QFILE_ERR_FORMAT:
        if (!qmgr_message_magic_ok(queue, id))
            break;
        /* A newer format version: keep it for the program that wrote it. */
        msg_warn("%s: queue file in %s/ has a format this version cannot read: %s -- leaving it "
                 "alone",
                 id, queue, why);
        qmgr_message_skip_add(id);
        return QMGR_TAKE_SKIPPED;
    case QFILE_ERR_INVAL:
        msg_warn("%s: cannot open queue file in %s/: %s", id, queue, why);
        qmgr_message_skip_add(id);
        return QMGR_TAKE_SKIPPED;
    default: /* CORRUPT, INCOMPLETE outside incoming/, LIMIT */ break;
    }
    qmgr_message_corrupt(queue, id, why);
    return QMGR_TAKE_GONE;
}

/* qmgr_message_open - open a queue file for updates; 0, or QMGR_TAKE_GONE
   (absent, or moved to corrupt/) or QMGR_TAKE_SKIPPED (logged) */
int qmgr_message_open(const char *queue, const char *id, QFILE **qfp)
{
    VSTR *why = vstr_alloc(100);
    int err;

    if ((err = qfile_open(queue, id, QFILE_OPEN_UPDATE, qfp, why)) != 0)
        err = qmgr_message_open_error(queue, id, err, vstr_str(why));
    vstr_free(why);
    return err;
}

/* qmgr_rcpt_final - delivered or bounced */
static int qmgr_rcpt_final(const QFILE_RCPT *r)
{
    return r->status == QFILE_RCPT_DONE || r->status == QFILE_RCPT_BOUNCED;
}

/* qmgr_message_remove_file - every recipient is final: the file goes */
static void qmgr_message_remove_file(QFILE *qf)
{
    if (qfile_remove(qf) == 0) {
        msg_info("%s: removed", qf->id);
    } else if (errno == ENOENT) {
        /* postsuper -d removed it already and logged so. */
    } else {
        msg_warn("%s: %s", qf->id, qfile_why(qf));
        /* The file stays: its results must be durable after all. */
        if (qfile_sync(qf) != 0)
            msg_warn("%s: %s", qf->id, qfile_why(qf));
    }
}

/* qmgr_rcpt_failed - deferred with a permanent status: failed, notice pending */
static int qmgr_rcpt_failed(const QFILE_RCPT *r)
{
    return r->status == QFILE_RCPT_DEFERRED && r->dsn_status != NULL && r->dsn_status[0] == '5';
}

/* qmgr_note_str - a bounded copy of an optional agent string */
static char *qmgr_note_str(const char *s)
{
    return mystrndup(s ? s : "", QMGR_NOTE_TEXT_MAX);
}

/* qmgr_note_add - remember that recipient index needs a notice */
static void qmgr_note_add(QMGR_MESSAGE *msg, size_t index, int success, const QMGR_RESULT *res)
{
    QMGR_NOTE *n;

    if (msg->note_count == msg->note_cap) {
        msg->note_cap = msg->note_cap ? 2 * msg->note_cap : 4;
        msg->notes = myrealloc(msg->notes, size_mul(msg->note_cap, sizeof(*msg->notes)));
    }
    n = msg->notes + msg->note_count++;
    n->index = index;
    n->success = success;
    n->action = mystrdup(success ? (res && res->action && *res->action ? res->action : "delivered")
                                 : "failed");
    n->status = success ? qmgr_note_str(res ? res->dsn : NULL) : NULL;
    n->reason = success ? qmgr_note_str(res ? res->reason : NULL) : NULL;
    n->relay = qmgr_note_str(res ? res->relay : NULL);
    n->mtype = qmgr_note_str(res ? res->mtype : NULL);
    n->mname = qmgr_note_str(res ? res->mname : NULL);
    n->dtype = qmgr_note_str(res ? res->dtype : NULL);
    n->dtext = qmgr_note_str(res ? res->dtext : NULL);
}

/* qmgr_notes_free - forget the notes of the round */
static void qmgr_notes_free(QMGR_MESSAGE *msg)
{
    for (size_t i = 0; i < msg->note_count; i++) {
        QMGR_NOTE *n = msg->notes + i;

        myfree(n->action);
        myfree(n->status);
        myfree(n->reason);
        myfree(n->relay);
        myfree(n->mtype);
        myfree(n->mname);
        myfree(n->dtype);
        myfree(n->dtext);
    }
    myfree(msg->notes);
    msg->notes = NULL;
    msg->note_count = msg->note_cap = 0;
}

/* qmgr_message_take - take a committed message into memory */
int qmgr_message_take(const char *queue, const char *id, QFILE *qf)
{
    QMGR_MESSAGE *msg;
    int err;

    if (qmgr_message_find(id) != NULL) {
        qfile_close(qf);
        return QMGR_TAKE_ACTIVE;
    }
    if (qf == NULL) {
        if (qmgr_message_skip_has(id))
            return QMGR_TAKE_SKIPPED;
        if (!qmgr_message_room(0))
            return QMGR_TAKE_FULL;
        if ((err = qmgr_message_open(queue, id, &qf)) != 0)
            return err;
    }

    /* Crash recovery: every result was recorded but the removal was lost. */
    if (qfile_pending(qf) == 0) {
        qmgr_message_remove_file(qf);
        qfile_close(qf);
        return QMGR_TAKE_OK;
    }
    if (!qmgr_message_room(qf->rcpt_count)) {
        qfile_close(qf);
        return QMGR_TAKE_FULL;
    }

    msg = mycalloc(1, sizeof(*msg));
    memcpy(msg->id, qf->id, sizeof(msg->id));
    msg->qf = qf;
    msg->seq = ++qmgr_message_seq;
    if (qmgr_htable_find(qmgr_flushed, msg->id) != NULL) {
        msg->flushed = 1;
        qmgr_htable_delete(qmgr_flushed, msg->id);
    }
    msg->msg_class = qf->msg_class == QFILE_CLASS_BULK ? QFILE_CLASS_BULK : QFILE_CLASS_IMMEDIATE;
    msg->priority = qf->priority;
    gettimeofday(&msg->active, NULL);
    msg->rcpt_held = qf->rcpt_count;
    qmgr_ring_append(&qmgr_active, &msg->link);
    qmgr_htable_enter(qmgr_active_ids, msg->id, msg);
    qmgr_active_count++;
    qmgr_active_rcpt += msg->rcpt_held;
    qmgr_active_class[msg->msg_class]++;

    msg_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)", msg->id, qf->sender,
             (unsigned long long)qf->content_size, qf->rcpt_count);

    /* Assignment may fail recipients at once (no route, transport down);
       the round must not end while recipients are still being assigned. */
    msg->rcpt_waiting++;
    for (size_t i = 0; i < qf->rcpt_count; i++) {
        if (qmgr_rcpt_final(qf->rcpt + i))
            continue;
        /* Failed for good in an earlier round; only the notice is missing. */
        if (qmgr_rcpt_failed(qf->rcpt + i))
            qmgr_note_add(msg, i, 0, NULL);
        else
            qmgr_sched_assign(msg, i);
    }
    qmgr_message_sync(msg);
    msg->rcpt_waiting--;
    qmgr_message_progress(msg);
    qmgr_kick();
    return QMGR_TAKE_OK;
}

/* qmgr_message_backoff - when to try a deferred recipient again */
static time_t qmgr_message_backoff(const QMGR_MESSAGE *msg, time_t now)
{
    long age = (long)(now - msg->qf->arrival.tv_sec);

    /* Postfix's rule: wait as long as the message has already waited, so
       the interval doubles from one attempt to the next, within bounds. */
    if (age > qmgr_conf.max_backoff)
        age = qmgr_conf.max_backoff;
    if (age < qmgr_conf.min_backoff)
        age = qmgr_conf.min_backoff;
    return now + age;
}

/* qmgr_dsn_clean - dsn if it is an RFC 3463 status of the right class, else
   the class's generic one */
static const char *qmgr_dsn_clean(const char *dsn, int status)
{
    const char *generic = status == 0 ? "2.0.0" : status < 500 ? "4.0.0" : "5.0.0";
    const char *p = dsn;
    int n;

    if (dsn == NULL || dsn[0] != generic[0] || dsn[1] != '.')
        return generic;
    for (p = dsn + 2, n = 0; *p >= '0' && *p <= '9'; p++)
        n++;
    if (n < 1 || n > 3 || *p++ != '.')
        return generic;
    for (n = 0; *p >= '0' && *p <= '9'; p++)
        n++;
    return n >= 1 && n <= 3 && *p == 0 ? dsn : generic;
}

/*
 * qmgr_message_bounce - the one place where a recipient fails for good: a
 * permanent failure reported by a delivery agent, or a deferred recipient
 * whose message outlived maximal_queue_lifetime. It is recorded as
 * deferred with its 5.x.x status and reason (the notice is not queued
 * yet) and noted for the notice at the end of the round; the status byte
 * becomes 'B' in qmgr_message_bounced, once bounce(8) has queued it.
 */
static void qmgr_message_bounce(QMGR_MESSAGE *msg, size_t index, const char *dsn,
                                const char *reason, const QMGR_RESULT *res)
{
    time_t now = qmgr_now();
    int err = qfile_rcpt_defer(msg->qf, index, now, qmgr_message_backoff(msg, now), dsn,
                               reason ? reason : "", QFILE_NOSYNC);

    msg->unsynced = 1;
    if (err != 0) {
        msg_warn("%s: record failed recipient <%s>: %s", msg->id, msg->qf->rcpt[index].address,
                 qfile_why(msg->qf));
        msg->io_error = 1;
        return;
    }
    qmgr_note_add(msg, index, 0, res);
}

/* qmgr_message_bounced - the notice is queued: the recipient is final */
void qmgr_message_bounced(QMGR_MESSAGE *msg, size_t index)
{
    int err = qfile_rcpt_mark(msg->qf, index, QFILE_RCPT_BOUNCED, QFILE_NOSYNC);

    msg->unsynced = 1;
    if (err != 0) {
        msg_warn("%s: record bounced recipient <%s>: %s", msg->id, msg->qf->rcpt[index].address,
                 qfile_why(msg->qf));
        msg->io_error = 1;
    }
}

/* qmgr_message_warned - the delay notice is queued: never again */
void qmgr_message_warned(QMGR_MESSAGE *msg)
{
    msg->unsynced = 1;
    if (qfile_set_delay_warned(msg->qf, qmgr_now(), QFILE_NOSYNC) != 0) {
        msg_warn("%s: record delay warning: %s", msg->id, qfile_why(msg->qf));
        msg->io_error = 1;
    }
}

/* qmgr_message_result - record one recipient's outcome (no fdatasync yet) */
void qmgr_message_result(QMGR_MESSAGE *msg, size_t index, const QMGR_RESULT *res)
{
    QFILE *qf = msg->qf;
    time_t now = qmgr_now();
    int status = res->status, err = 0;
    const char *dsn = qmgr_dsn_clean(res->dsn, status);
    char soft[QFILE_DSN_STATUS_MAX + 1];

    /* soft_bounce: the safety net turns every permanent failure into a
       deferral (5xx to 4xx, 5.X.Y to 4.X.Y), as Postfix does. */
    if (status >= 500 && qmgr_conf.soft_bounce) {
        status -= 100;
        snprintf(soft, sizeof(soft), "4%s", dsn + 1);
        dsn = soft;
    }
    msg->unsynced = 1;
    if (status == QMGR_STAT_SENT) {
        err = qfile_rcpt_mark(qf, index, QFILE_RCPT_DONE, QFILE_NOSYNC);
        /* RFC 3461 4.1: a success notice, unless the next hop took it over. */
        if (err == 0 && (qf->rcpt[index].notify & QFILE_NOTIFY_SUCCESS) && !res->passed)
            qmgr_note_add(msg, index, 1, res);
    } else if (status < 500) {
        err = qfile_rcpt_defer(qf, index, now, qmgr_message_backoff(msg, now), dsn,
                               res->reason ? res->reason : "", QFILE_NOSYNC);
    } else {
        qmgr_message_bounce(msg, index, dsn, res->reason, res);
        return;
    }
    if (err != 0) {
        msg_warn("%s: record result for <%s>: %s", msg->id, qf->rcpt[index].address, qfile_why(qf));
        msg->io_error = 1;
    }
}

/* qmgr_message_fail - qmgr's own verdict for a recipient: recorded, then
   logged as delivery agents log theirs */
void qmgr_message_fail(QMGR_MESSAGE *msg, size_t index, int status, const char *dsn,
                       const char *reason)
{
    const QFILE_RCPT *r = msg->qf->rcpt + index;
    char total[32], a[32], b[32];
    struct timeval now;
    VSTR *orig = vstr_alloc(64);
    QMGR_RESULT res = {.status = status, .dsn = dsn, .reason = reason, .relay = "none"};
    char logged[QFILE_DSN_STATUS_MAX + 1];

    qmgr_message_result(msg, index, &res);
    snprintf(logged, sizeof(logged), "%s", qmgr_dsn_clean(dsn, status));
    if (status >= 500 && qmgr_conf.soft_bounce) {
        status -= 100;
        logged[0] = '4';
    }
    gettimeofday(&now, NULL);
    if (*r->orig_rcpt && strcmp(r->orig_rcpt, r->address) != 0)
        vstr_sprintf(orig, "orig_to=<%s>, ", r->orig_rcpt);
    msg_info("%s: to=<%s>, %srelay=none, delay=%s, delays=%s/%s/0/0, dsn=%s, status=%s (%s)",
             msg->id, r->address, vstr_str(orig),
             qmgr_fmt_delay(total, sizeof(total), qmgr_tv_diff(&msg->qf->arrival, &now)),
             qmgr_fmt_delay(a, sizeof(a), qmgr_tv_diff(&msg->qf->arrival, &msg->active)),
             qmgr_fmt_delay(b, sizeof(b), qmgr_tv_diff(&msg->active, &now)), logged,
             status < 500 ? "deferred" : "bounced", reason);
    vstr_free(orig);
}

/* qmgr_message_complete - every recipient is final and no notice is due:
   the next step is the removal of the file */
static int qmgr_message_complete(const QMGR_MESSAGE *msg)
{
    return msg->note_count == 0 && !msg->notifying && msg->rcpt_waiting == 0 && !msg->io_error &&
           qfile_pending(msg->qf) == 0;
}

/* qmgr_message_sync - make the recorded results durable before acting on
   them. When the action is the removal of the file, the fdatasync is left
   out: a crash before the removal is on disk brings the file back with
   recipients not yet marked, which are delivered again (at-least-once,
   as with any crash before a mark); after it, nothing is left to mark. */
void qmgr_message_sync(QMGR_MESSAGE *msg)
{
    if (!msg->unsynced || qmgr_message_complete(msg))
        return;
    msg->unsynced = 0;
    if (qfile_sync(msg->qf) != 0) {
        msg_warn("%s: %s", msg->id, qfile_why(msg->qf));
        msg->io_error = 1;
    }
}

/* qmgr_message_free - leave memory */
static void qmgr_message_free(QMGR_MESSAGE *msg)
{
    qmgr_ring_detach(&msg->link);
    qmgr_htable_delete(qmgr_active_ids, msg->id);
    qmgr_active_count--;
    qmgr_active_rcpt -= msg->rcpt_held;
    qmgr_active_class[msg->msg_class]--;
    qfile_close(msg->qf);
    qmgr_notes_free(msg);
    myfree(msg);
    qmgr_intake_room();
}

/* qmgr_message_set_due - a deferred file's modification time is its next
   attempt time, so that the deferred/ scan needs only a stat() per file */
void qmgr_message_set_due(const char *queue, const char *id, time_t when)
{
    struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = when, .tv_nsec = 0}};
    VSTR *path = vstr_alloc(100);

    if (utimensat(AT_FDCWD, mail_queue_path(path, queue, id), ts, AT_SYMLINK_NOFOLLOW) < 0)
        msg_warn("%s: set next attempt time: %m", id);
    vstr_free(path);
}

/* qmgr_message_expired - older than its queue lifetime */
static int qmgr_message_expired(const QMGR_MESSAGE *msg, time_t now)
{
    long lifetime = *msg->qf->sender ? qmgr_conf.max_lifetime : qmgr_conf.bounce_lifetime;

    return now - msg->qf->arrival.tv_sec >= lifetime;
}

/* qmgr_message_defer_file - move to deferred/ until the next attempt */
static void qmgr_message_defer_file(QMGR_MESSAGE *msg, time_t now)
{
    QFILE *qf = msg->qf;
    time_t next = qfile_next_attempt(qf);

    if (next <= now)
        next = now + qmgr_conf.min_backoff;
    if (strcmp(qf->queue, MAIL_QUEUE_DEFERRED) != 0 && qfile_move(qf, MAIL_QUEUE_DEFERRED) != 0) {
        if (errno == ENOENT) {
            /* postsuper took it (hold, delete, requeue): its results are
               recorded in the file, and whoever moves it back decides
               (docs/protocols.md section 5). Forget it quietly. */
            if (msg_verbose)
                msg_info("%s: moved away by the administrator", msg->id);
            return;
        }
        /* It stays where it is, with its results recorded; a later scan
           takes it in again. Not in this process's next scans, though:
           without this a failing move would be retried in a tight loop. */
        msg_warn("%s: %s", msg->id, qfile_why(qf));
        qmgr_message_skip_add(msg->id);
        return;
    }
    qmgr_message_set_due(qf->queue, qf->id, next);
}

/* qmgr_message_finish - after the notices: remove the file, or defer it */
static void qmgr_message_finish(QMGR_MESSAGE *msg)
{
    QFILE *qf = msg->qf;
    time_t now = qmgr_now();

    qmgr_message_sync(msg);
    if (msg->io_error) {
        /* What could not be recorded will be delivered again: that is the
           at-least-once promise. Keep the file, out of the way for now. */
        msg_warn("%s: queue file update failed -- trying again later", msg->id);
        qmgr_message_defer_file(msg, now);
    } else if (qfile_pending(qf) == 0) {
        if (msg->expired)
            msg_info("%s: from=<%s>, status=expired, returned to sender", msg->id, qf->sender);
        qmgr_message_remove_file(qf);
    } else {
        qmgr_message_defer_file(msg, now);
    }
    qmgr_message_free(msg);
}

/* qmgr_message_expire - the message outlived its queue lifetime: every
   recipient still deferred fails now (RFC 3463 X.4.7, delivery time expired) */
static void qmgr_message_expire(QMGR_MESSAGE *msg, time_t now)
{
    QFILE *qf = msg->qf;
    long age = (long)(now - qf->arrival.tv_sec);
    VSTR *why = vstr_alloc(100), *span = vstr_alloc(32);

    msg->expired = 1;
    if (age >= 86400)
        vstr_sprintf(span, "%ld day(s)", age / 86400);
    else
        vstr_sprintf(span, "%ld second(s)", age);
    for (size_t i = 0; i < qf->rcpt_count; i++) {
        const QFILE_RCPT *r = qf->rcpt + i;
        int last = r->reason != NULL && *r->reason != 0;

        if (qmgr_rcpt_final(r) || qmgr_rcpt_failed(r))
            continue;
        vstr_sprintf(why, "message is too old: delivery time expired after %s%s%s", vstr_str(span),
                     last ? "; last error: " : "", last ? r->reason : "");
        qmgr_message_bounce(msg, i, "5.4.7", vstr_str(why), NULL);
    }
    vstr_free(why);
    vstr_free(span);
}

/* qmgr_message_warn_due - is a delay notice due now */
static int qmgr_message_warn_due(const QMGR_MESSAGE *msg, time_t now)
{
    const QFILE *qf = msg->qf;

    if (qmgr_conf.delay_warning <= 0 || qf->delay_warned || msg->expired ||
        now - qf->arrival.tv_sec < qmgr_conf.delay_warning)
        return 0;
    for (size_t i = 0; i < qf->rcpt_count; i++)
        if (qf->rcpt[i].status == QFILE_RCPT_DEFERRED && !qmgr_rcpt_failed(qf->rcpt + i))
            return 1;
    return 0;
}

/* qmgr_message_round_end - every recipient of this round has its result */
static void qmgr_message_round_end(QMGR_MESSAGE *msg)
{
    QFILE *qf = msg->qf;
    time_t now = qmgr_now();
    int warn;

    if (msg->io_error) {
        qmgr_message_finish(msg);
        return;
    }
    if (qfile_pending(qf) > 0 && !qmgr_conf.soft_bounce && qmgr_message_expired(msg, now))
        qmgr_message_expire(msg, now);
    warn = qmgr_message_warn_due(msg, now);
    qmgr_message_sync(msg);
    if (msg->io_error || (msg->note_count == 0 && !warn)) {
        qmgr_message_finish(msg);
        return;
    }
    /* bounce(8) queues the notices; the round ends when it has answered. */
    msg->notifying = 1;
    qmgr_notify_start(msg, warn);
}

/* qmgr_message_notified - the notices are done: finish the round */
void qmgr_message_notified(QMGR_MESSAGE *msg)
{
    msg->notifying = 0;
    qmgr_notes_free(msg);
    qmgr_message_finish(msg);
}

/* qmgr_message_progress - end the round once nothing is waiting or in flight */
void qmgr_message_progress(QMGR_MESSAGE *msg)
{
    if (msg->rcpt_waiting == 0 && msg->rcpt_busy == 0 && !msg->notifying)
        qmgr_message_round_end(msg);
}
