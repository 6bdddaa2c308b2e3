/*
 * qmgr_notify - the end of a round: notices through bounce(8).
 *
 * When a message's round ends with recipients that need a notice (failed
 * for good, NOTIFY=SUCCESS delivered) or with a delay warning due,
 * qmgr_message.c hands the message here. A job sends one request per kind
 * and per BOUNCE_RCPT_MAX recipients (docs/protocols.md section 7) to
 * private/$bounce_service_name, one connection each, one after another,
 * and applies each answer as it comes: a failure notice that bounce(8)
 * queued turns its recipients 'B'; a delay notice records WARNED. Then the
 * round goes on (qmgr_message_notified): the file is removed or deferred.
 *
 * Like deliveries, all of it is non-blocking on the event loop with time
 * limits, so neither bounce(8) nor cleanup behind it can stall the
 * scheduler; at most QMGR_NOTIFY_CONN_MAX requests are in progress, the
 * other jobs wait in line. A request that fails (no service, a timeout, a
 * refusal) ends its job: what was not confirmed is left as it was, to be
 * asked again in a later round (failures, delay warnings) or given up with
 * a warning (success notices, whose deliveries must not repeat).
 */
#include <errno.h>
#include <event2/event.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mail/attr.h"
#include "mail/bounce_proto.h"
#include "qmgr.h"
#include "util/msg.h"
#include "util/mymalloc.h"

#define QMGR_NOTIFY_READ_SIZE 4096 /* an answer is small */

/* One request: a kind and its recipients. */
typedef struct QMGR_NREQ {
    const char *kind;  /* BOUNCE_KIND_* */
    size_t *index;     /* recipient indexes */
    QMGR_NOTE **notes; /* their notes (NULL entries for delay) */
    size_t count;
} QMGR_NREQ;

/* One message's notices. */
typedef struct QMGR_NOTIFY {
    QMGR_MESSAGE *msg;
    QMGR_NREQ *req;
    size_t nreq, pos;
    int delay_reqs, delay_ok; /* delay requests made, confirmed */
    int fd;
    struct event *rev, *wev, *timer;
    VSTR *out, *in;
    size_t out_done;
    QMGR_RING link; /* waiting for a connection slot */
} QMGR_NOTIFY;

static QMGR_RING qmgr_notify_wait = {&qmgr_notify_wait, &qmgr_notify_wait};
static int qmgr_notify_busy; /* jobs holding a connection slot */

static void qmgr_notify_next(QMGR_NOTIFY *job);

/* qmgr_notify_clean - printable copy (the service reads strictly printable
   strings), bounded */
static const char *qmgr_notify_clean(VSTR *out, const char *s, size_t max)
{
    vstr_reset(out);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p && vstr_len(out) < max;
         p++)
        vstr_addch(out, *p < 0x20 || *p == 0x7f ? ' ' : *p);
    return vstr_str(out);
}

/* qmgr_notify_add_req - a request of kind for up to BOUNCE_RCPT_MAX recipients */
static QMGR_NREQ *qmgr_notify_add_req(QMGR_NOTIFY *job, const char *kind, size_t *cap)
{
    QMGR_NREQ *r;

    if (job->nreq == *cap) {
        *cap = *cap ? 2 * *cap : 4;
        job->req = myrealloc(job->req, size_mul(*cap, sizeof(*job->req)));
    }
    r = job->req + job->nreq++;
    r->kind = kind;
    r->index = mymalloc(BOUNCE_RCPT_MAX * sizeof(*r->index));
    r->notes = mymalloc(BOUNCE_RCPT_MAX * sizeof(*r->notes));
    r->count = 0;
    return r;
}

/* qmgr_notify_plan - the requests for a message, failures first */
static void qmgr_notify_plan(QMGR_NOTIFY *job, int warn)
{
    QMGR_MESSAGE *msg = job->msg;
    const QFILE *qf = msg->qf;
    QMGR_NREQ *r = NULL;
    size_t cap = 0;

    for (int success = 0; success < 2; success++) {
        r = NULL;
        for (size_t i = 0; i < msg->note_count; i++) {
            QMGR_NOTE *n = msg->notes + i;

            if (n->success != success)
                continue;
            if (r == NULL || r->count == BOUNCE_RCPT_MAX)
                r = qmgr_notify_add_req(job, success ? BOUNCE_KIND_SUCCESS : BOUNCE_KIND_FAILURE,
                                        &cap);
            r->index[r->count] = n->index;
            r->notes[r->count++] = n;
        }
        if (success == 1 || !warn)
            continue;
        /* Delay: every recipient still deferred with a temporary status. */
        r = NULL;
        for (size_t i = 0; i < qf->rcpt_count; i++) {
            const QFILE_RCPT *q = qf->rcpt + i;

            if (q->status != QFILE_RCPT_DEFERRED || (q->dsn_status && q->dsn_status[0] == '5'))
                continue;
            if (r == NULL || r->count == BOUNCE_RCPT_MAX) {
                r = qmgr_notify_add_req(job, BOUNCE_KIND_DELAY, &cap);
                job->delay_reqs++;
            }
            r->index[r->count] = i;
            r->notes[r->count++] = NULL;
        }
    }
}

/* qmgr_notify_encode - request r as attribute messages into out */
static int qmgr_notify_encode(const QMGR_NOTIFY *job, const QMGR_NREQ *r, VSTR *out, VSTR *why)
{
    const QFILE *qf = job->msg->qf;
    VSTR *status = vstr_alloc(16), *reason = vstr_alloc(128), *relay = vstr_alloc(32);
    VSTR *mtype = vstr_alloc(16), *mname = vstr_alloc(32), *dtype = vstr_alloc(16);
    VSTR *dtext = vstr_alloc(64);
    int rc = -1;

    if (attr_encode(out, NULL, 0, why, ATTR_STR(BOUNCE_ATTR_KIND, r->kind),
                    ATTR_STR(BOUNCE_ATTR_QUEUE_NAME, qf->queue),
                    ATTR_STR(BOUNCE_ATTR_QUEUE_ID, qf->id), ATTR_UNUM(BOUNCE_ATTR_COUNT, r->count),
                    ATTR_END) < 0)
        goto done;
    for (size_t i = 0; i < r->count; i++) {
        const QFILE_RCPT *q = qf->rcpt + r->index[i];
        const QMGR_NOTE *n = r->notes[i];
        const char *st, *why_text, *action;

        if (n != NULL && n->success) {
            st = n->status;
            why_text = n->reason;
            action = n->action;
        } else {
            /* Failures and delays: status and reason of the latest DEFER. */
            st = q->dsn_status && *q->dsn_status ? q->dsn_status : n ? "5.0.0" : "4.0.0";
            why_text = q->reason ? q->reason : "";
            action = n ? n->action : "delayed";
        }
        if (attr_encode(
                out, NULL, 0, why, ATTR_UNUM(BOUNCE_ATTR_RCPT_INDEX, r->index[i]),
                ATTR_STR(BOUNCE_ATTR_STATUS, qmgr_notify_clean(status, st, BOUNCE_STATUS_MAX)),
                ATTR_STR(BOUNCE_ATTR_ACTION, action),
                ATTR_STR(BOUNCE_ATTR_REASON, qmgr_notify_clean(reason, why_text, BOUNCE_TEXT_MAX)),
                ATTR_STR(BOUNCE_ATTR_RELAY,
                         qmgr_notify_clean(relay, n ? n->relay : "", BOUNCE_NAME_MAX)),
                ATTR_STR(BOUNCE_ATTR_MTYPE,
                         qmgr_notify_clean(mtype, n ? n->mtype : "", BOUNCE_NAME_MAX)),
                ATTR_STR(BOUNCE_ATTR_MNAME,
                         qmgr_notify_clean(mname, n ? n->mname : "", BOUNCE_NAME_MAX)),
                ATTR_STR(BOUNCE_ATTR_DTYPE,
                         qmgr_notify_clean(dtype, n ? n->dtype : "", BOUNCE_NAME_MAX)),
                ATTR_STR(BOUNCE_ATTR_DTEXT,
                         qmgr_notify_clean(dtext, n ? n->dtext : "", BOUNCE_TEXT_MAX)),
                ATTR_END) < 0)
            goto done;
    }
    rc = attr_encode(out, NULL, 0, why, ATTR_UNUM(BOUNCE_ATTR_END, 1), ATTR_END);
done:
    vstr_free(status);
    vstr_free(reason);
    vstr_free(relay);
    vstr_free(mtype);
    vstr_free(mname);
    vstr_free(dtype);
    vstr_free(dtext);
    return rc;
}

/* qmgr_notify_close - end the current connection */
static void qmgr_notify_close(QMGR_NOTIFY *job)
{
    if (job->rev)
        event_free(job->rev);
    if (job->wev)
        event_free(job->wev);
    job->rev = job->wev = NULL;
    if (job->fd >= 0)
        close(job->fd);
    job->fd = -1;
    evtimer_del(job->timer);
    vstr_reset(job->out);
    vstr_reset(job->in);
    job->out_done = 0;
}

/* qmgr_notify_done - the job is over: on with the round */
static void qmgr_notify_done(QMGR_NOTIFY *job)
{
    QMGR_MESSAGE *msg = job->msg;

    qmgr_notify_close(job);
    if (job->delay_reqs > 0 && job->delay_ok == job->delay_reqs)
        qmgr_message_warned(msg);
    for (size_t i = 0; i < job->nreq; i++) {
        myfree(job->req[i].index);
        myfree(job->req[i].notes);
    }
    myfree(job->req);
    event_free(job->timer);
    vstr_free(job->out);
    vstr_free(job->in);
    myfree(job);
    qmgr_notify_busy--;
    qmgr_message_notified(msg);
    /* A slot is free: the next job in line. */
    if (!qmgr_ring_empty(&qmgr_notify_wait)) {
        QMGR_NOTIFY *next = QMGR_RING_TO(qmgr_notify_wait.next, QMGR_NOTIFY, link);

        qmgr_ring_detach(&next->link);
        qmgr_notify_busy++;
        /* From the event loop: a chain of jobs that fail at once must not
           recurse here. */
        event_active(next->timer, EV_TIMEOUT, 0);
    }
}

/* qmgr_notify_fail - this request failed: the job ends here */
static void qmgr_notify_fail(QMGR_NOTIFY *job, const char *why)
{
    const QMGR_NREQ *r = job->req + job->pos;

    msg_warn("%s: cannot queue %s notice: %s -- %s", job->msg->id, r->kind, why,
             strcmp(r->kind, BOUNCE_KIND_SUCCESS) == 0 ? "giving up" : "trying again later");
    job->pos = job->nreq;
    qmgr_notify_done(job);
}

/* qmgr_notify_answer - bounce(8) answered the current request */
static void qmgr_notify_answer(QMGR_NOTIFY *job, const ATTR_MSG *m)
{
    const QMGR_NREQ *r = job->req + job->pos;
    unsigned long long status;
    const char *reason = attr_msg_get_str(m, BOUNCE_ATTR_REPLY_REASON);
    VSTR *why = vstr_alloc(64);

    if (attr_msg_get_unum(m, BOUNCE_ATTR_REPLY_STATUS, &status) < 0) {
        qmgr_notify_close(job);
        qmgr_notify_fail(job, "answer without status");
    } else if (status != 0) {
        vstr_sprintf(why, "bounce service: %llu %s", status, reason ? reason : "");
        qmgr_notify_close(job);
        qmgr_notify_fail(job, vstr_str(why));
    } else {
        if (strcmp(r->kind, BOUNCE_KIND_FAILURE) == 0)
            for (size_t i = 0; i < r->count; i++)
                qmgr_message_bounced(job->msg, r->index[i]);
        else if (strcmp(r->kind, BOUNCE_KIND_DELAY) == 0)
            job->delay_ok++;
        qmgr_notify_close(job);
        job->pos++;
        qmgr_notify_next(job);
    }
    vstr_free(why);
}

/* qmgr_notify_read_event - the answer arrives */
static void qmgr_notify_read_event(evutil_socket_t fd, short what, void *ctx)
{
    QMGR_NOTIFY *job = ctx;
    char buf[QMGR_NOTIFY_READ_SIZE];
    VSTR *why;
    ATTR_MSG *m;
    size_t used;
    ssize_t n;
    int rc;

    (void)what;
    n = read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        qmgr_notify_close(job);
        qmgr_notify_fail(job, n == 0 ? "bounce service closed the connection" : "read error");
        return;
    }
    vstr_ncat(job->in, buf, (size_t)n);
    why = vstr_alloc(64);
    rc = attr_msg_decode(vstr_str(job->in), vstr_len(job->in), &used, NULL, ATTR_FLAG_PRINTABLE, &m,
                         why);
    if (rc == ATTR_MORE && vstr_len(job->in) < ATTR_MSG_MAX) {
        vstr_free(why);
        return;
    }
    if (rc < 0 || rc == ATTR_MORE) {
        qmgr_notify_close(job);
        qmgr_notify_fail(job, rc < 0 ? vstr_str(why) : "answer too long");
    } else {
        qmgr_notify_answer(job, m);
        attr_msg_free(m);
    }
    vstr_free(why);
}

/* qmgr_notify_write_event - send more of the request */
static void qmgr_notify_write_event(evutil_socket_t fd, short what, void *ctx)
{
    QMGR_NOTIFY *job = ctx;
    ssize_t n;

    (void)what;
    n = send(fd, vstr_str(job->out) + job->out_done, vstr_len(job->out) - job->out_done,
             MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) {
        /* The service is gone; the read side sees the end. */
        event_free(job->wev);
        job->wev = NULL;
        return;
    }
    job->out_done += (size_t)n;
    if (job->out_done == vstr_len(job->out)) {
        event_free(job->wev);
        job->wev = NULL;
    }
}

/* qmgr_notify_timeout - the request or the backlog pause ran out */
static void qmgr_notify_timeout(evutil_socket_t fd, short what, void *ctx)
{
    QMGR_NOTIFY *job = ctx;
    VSTR *why;

    (void)fd, (void)what;
    if (job->fd < 0) {
        /* The job's turn, or the pause after a full listen backlog is over. */
        qmgr_notify_next(job);
        return;
    }
    why = vstr_alloc(64);
    vstr_sprintf(why, "bounce service did not answer within %lds", qmgr_conf.delivery_timeout);
    qmgr_notify_close(job);
    qmgr_notify_fail(job, vstr_str(why));
    vstr_free(why);
}

/* qmgr_notify_connect - a non-blocking connection to bounce(8); fd or -1 */
static int qmgr_notify_connect(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sun.sun_path, path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* qmgr_notify_next - send the next request of the job, or finish it */
static void qmgr_notify_next(QMGR_NOTIFY *job)
{
    struct timeval tv = {.tv_sec = qmgr_conf.delivery_timeout};
    VSTR *why;

    if (job->pos >= job->nreq) {
        qmgr_notify_done(job);
        return;
    }
    why = vstr_alloc(64);
    if ((job->fd = qmgr_notify_connect(qmgr_conf.bounce_path)) < 0) {
        if (errno == EAGAIN) {
            /* Every bounce process is busy and the backlog is full. */
            struct timeval pause = {.tv_sec = 0, .tv_usec = QMGR_BUSY_RETRY_MS * 1000};

            evtimer_add(job->timer, &pause);
        } else {
            vstr_sprintf(why, "connect to %s: %m", qmgr_conf.bounce_path);
            qmgr_notify_fail(job, vstr_str(why));
        }
        vstr_free(why);
        return;
    }
    if (qmgr_notify_encode(job, job->req + job->pos, job->out, why) < 0)
        /* Bounded by BOUNCE_RCPT_MAX and the cleaned field lengths. */
        msg_panic("%s: notice request does not fit the protocol limits: %s", job->msg->id,
                  vstr_str(why));
    vstr_free(why);
    job->rev = event_new(qmgr_base, job->fd, EV_READ | EV_PERSIST, qmgr_notify_read_event, job);
    job->wev = event_new(qmgr_base, job->fd, EV_WRITE | EV_PERSIST, qmgr_notify_write_event, job);
    event_add(job->rev, NULL);
    event_add(job->wev, NULL);
    evtimer_add(job->timer, &tv);
}

/* qmgr_notify_start - the notices at the end of msg's round */
void qmgr_notify_start(QMGR_MESSAGE *msg, int warn)
{
    QMGR_NOTIFY *job = mycalloc(1, sizeof(*job));

    job->msg = msg;
    job->fd = -1;
    job->out = vstr_alloc(1024);
    job->in = vstr_alloc(256);
    job->timer = evtimer_new(qmgr_base, qmgr_notify_timeout, job);
    qmgr_ring_init(&job->link);
    qmgr_notify_plan(job, warn);
    if (qmgr_notify_busy >= QMGR_NOTIFY_CONN_MAX) {
        qmgr_ring_append(&qmgr_notify_wait, &job->link);
        return;
    }
    qmgr_notify_busy++;
    qmgr_notify_next(job);
}
