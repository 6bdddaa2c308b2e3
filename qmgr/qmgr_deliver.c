/*
 * qmgr_deliver - one delivery: a request to a delivery agent and its
 * per-recipient answers (docs/protocols.md section 3), driven by the event
 * loop so that no agent can hold up the queue manager.
 *
 * The connection to private/TRANSPORT is non-blocking from the start. A
 * delivery goes through three states, each with its own time limit:
 *
 *   SENDING    the request is written as the socket takes it;
 *   TAKING     it is written, and the agent must have read all of it within
 *              qmgr_ipc_timeout (the socket's send queue, SIOCOUTQ, tells):
 *              a connection that only sits in the listen backlog, because
 *              master cannot start the agent, must not hold mail for hours;
 *   ANSWERING  the agent delivers; it may stay silent for at most
 *              qmgr_delivery_timeout between answers.
 *
 * Answers are read as they come, each one recorded in the queue file (no
 * fdatasync yet), and every batch read is made durable with one fdatasync
 * before anything else happens. An agent that times out, closes the
 * connection early, or breaks the protocol leaves its unanswered
 * recipients deferred with "delivery agent failed"; an agent that cannot
 * be reached, or never reads its request, makes its transport unavailable
 * for a while (qmgr_sched.c).
 *
 * Answers are checked before they are believed: the recipient index must
 * belong to this request and not have been answered yet, the status must
 * be 0, 4xx or 5xx, and the message size is bounded by the attribute
 * protocol's limits.
 *
 * CONNECTION REUSE. The protocol allows several requests, one after the
 * other, on one connection. A connection whose delivery ended cleanly (the
 * summary arrived, nothing else is pending) is kept idle for the next
 * delivery of its transport, for QMGR_IDLE_TIME seconds at most; a
 * delivery to the same next hop takes the connection that served that
 * next hop last, so it reaches the agent process whose SMTP session cache
 * holds a session there. Reuse also saves the agents' accept() round (and
 * the wake-up of every idle agent process that a new connection causes).
 * An agent that closes an idle connection (reload, timeout, an agent that
 * serves one request per connection) is noticed: a request that finds the
 * connection closed before any answer is sent again once, on a new one.
 * Idle connections count against the descriptor budget of deliveries.
 *
 * The summary's dest_status is the destination's health for the scheduler:
 * "dead" (no server of the destination could be reached or completed the
 * handshake) is negative feedback, anything else positive; a delivery that
 * ended without a summary gives none (the agent failed, not the
 * destination).
 */
#include <errno.h>
#include <event2/event.h>
#include <linux/sockios.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mail/attr.h"
#include "qmgr.h"
#include "util/msg.h"
#include "util/mymalloc.h"

#define QMGR_DELIVER_READ_SIZE 16384 /* bytes read per call */
#define QMGR_IDLE_TIME 10            /* seconds an idle agent connection is kept */
#define QMGR_IDLE_MAX 256            /* idle agent connections at most */

enum qmgr_dlv_state {
    QMGR_DLV_SENDING,   /* writing the request */
    QMGR_DLV_TAKING,    /* written; waiting until the agent has read it */
    QMGR_DLV_ANSWERING, /* the agent has it: waiting for answers */
};

typedef struct QMGR_DELIVERY {
    enum qmgr_dlv_state state;
    QMGR_ENTRY *entry;
    int fd;
    struct event *rev;       /* readable */
    struct event *wev;       /* writable, while the request is not all sent */
    struct event *timer;     /* ipc or delivery timeout */
    VSTR *out;               /* the request */
    size_t out_done;         /* bytes of it sent */
    VSTR *in;                /* answers not yet decoded */
    unsigned char *answered; /* per entry recipient */
    size_t answered_count;
    int eof_ok;     /* the summary arrived */
    int feedback;   /* QMGR_FB_* from the summary */
    char *fail_dsn; /* the first deferral: what a dead destination says */
    char *fail_why;
    int reused; /* the connection served an earlier delivery */
} QMGR_DELIVERY;

/* An idle connection to an agent, kept for the next delivery. */
typedef struct QMGR_IDLE {
    int fd;
    QMGR_TRANSPORT *transport;
    char *nexthop;    /* what it served last */
    struct event *ev; /* EOF, stray bytes or the idle time: close */
    QMGR_RING link;   /* in qmgr_idle, most recently used first */
} QMGR_IDLE;

static int qmgr_deliveries; /* in progress */
static QMGR_RING qmgr_idle = {&qmgr_idle, &qmgr_idle};
static int qmgr_idle_count;

static void qmgr_deliver_read_event(evutil_socket_t fd, short what, void *ctx);
static void qmgr_deliver_write_event(evutil_socket_t fd, short what, void *ctx);

/* qmgr_idle_free - forget an idle connection (closed unless keep_fd) */
static int qmgr_idle_free(QMGR_IDLE *c, int keep_fd)
{
    int fd = c->fd;

    qmgr_ring_detach(&c->link);
    event_free(c->ev);
    myfree(c->nexthop);
    myfree(c);
    qmgr_idle_count--;
    if (!keep_fd) {
        close(fd);
        return -1;
    }
    return fd;
}

/* qmgr_idle_event - an idle connection was closed by the agent, or sent
   something unasked, or stayed unused too long */
static void qmgr_idle_event(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd, (void)what;
    qmgr_idle_free(ctx, 0);
}

/* qmgr_idle_put - keep a connection for the next delivery of its transport */
static void qmgr_idle_put(QMGR_TRANSPORT *t, const char *nexthop, int fd)
{
    struct timeval tv = {.tv_sec = QMGR_IDLE_TIME};
    QMGR_IDLE *c;

    if (qmgr_idle_count >= QMGR_IDLE_MAX ||
        qmgr_deliveries + qmgr_idle_count >= qmgr_conf.delivery_limit) {
        close(fd);
        return;
    }
    c = mycalloc(1, sizeof(*c));
    c->fd = fd;
    c->transport = t;
    c->nexthop = mystrdup(nexthop);
    c->ev = event_new(qmgr_base, fd, EV_READ, qmgr_idle_event, c);
    event_add(c->ev, &tv);
    qmgr_ring_insert_before(qmgr_idle.next, &c->link);
    qmgr_idle_count++;
}

/* qmgr_idle_take - an idle connection of the transport, the one that last
   served nexthop if there is one; its descriptor, or -1 */
static int qmgr_idle_take(const QMGR_TRANSPORT *t, const char *nexthop)
{
    QMGR_IDLE *any = NULL;

    for (QMGR_RING *r = qmgr_idle.next; r != &qmgr_idle; r = r->next) {
        QMGR_IDLE *c = QMGR_RING_TO(r, QMGR_IDLE, link);

        if (c->transport != t)
            continue;
        if (strcmp(c->nexthop, nexthop) == 0)
            return qmgr_idle_free(c, 1);
        if (any == NULL)
            any = c;
    }
    return any ? qmgr_idle_free(any, 1) : -1;
}

/* qmgr_deliver_count - deliveries in progress */
int qmgr_deliver_count(void)
{
    return qmgr_deliveries;
}

/* qmgr_tv_usec - a time as microseconds since the epoch */
static unsigned long long qmgr_tv_usec(const struct timeval *tv)
{
    return (unsigned long long)tv->tv_sec * 1000000ULL + (unsigned long long)tv->tv_usec;
}

/* qmgr_deliver_request - encode the request for an entry into out */
static int qmgr_deliver_request(const QMGR_ENTRY *e, VSTR *out, VSTR *why)
{
    const QFILE *qf = e->msg->qf;
    const char *ret = qf->dsn_ret == QFILE_RET_FULL   ? "FULL"
                      : qf->dsn_ret == QFILE_RET_HDRS ? "HDRS"
                                                      : "";
    struct timeval now;
    size_t count = 0;

    gettimeofday(&now, NULL);
    if (attr_encode(out, NULL, ATTR_FLAG_MORE, why, ATTR_STR("queue_name", qf->queue),
                    ATTR_STR("queue_id", qf->id), ATTR_STR("nexthop", e->queue->nexthop),
                    ATTR_STR("sender", qf->sender), ATTR_STR("envid", qf->dsn_envid),
                    ATTR_STR("ret", ret), ATTR_UNUM("arrival_usec", qmgr_tv_usec(&qf->arrival)),
                    ATTR_UNUM("active_usec", qmgr_tv_usec(&e->msg->active)),
                    ATTR_UNUM("request_usec", qmgr_tv_usec(&now)),
                    ATTR_UNUM("flags", QMGR_REQ_FLAGS_NONE), ATTR_END) < 0)
        return -1;
    count = 10;
    for (size_t i = 0; i < e->count; i++) {
        const QFILE_RCPT *r = qf->rcpt + e->rcpt[i];
        const ATTR_SPEC *list[] = {
            ATTR_UNUM("rcpt_index", e->rcpt[i]), ATTR_STR("rcpt", r->address),
            ATTR_STR("orcpt", r->orig_rcpt),     ATTR_STR("dsn_orcpt", r->orcpt),
            ATTR_UNUM("notify", r->notify),      ATTR_END,
        };

        if (attr_encode_cont(out, NULL, ATTR_FLAG_MORE, why, list, vstr_len(out), count) < 0)
            return -1;
        count += 5;
    }
    const ATTR_SPEC *end[] = {ATTR_UNUM("end", 1), ATTR_END};

    return attr_encode_cont(out, NULL, 0, why, end, vstr_len(out), count);
}

/* qmgr_taking_time - how long an agent may take to read the whole request */
static long qmgr_taking_time(void)
{
    return qmgr_conf.ipc_timeout < qmgr_conf.delivery_timeout ? qmgr_conf.ipc_timeout
                                                              : qmgr_conf.delivery_timeout;
}

/* qmgr_deliver_arm - enter a state and (re)start its timer */
static void qmgr_deliver_arm(QMGR_DELIVERY *d, enum qmgr_dlv_state state, long sec)
{
    struct timeval tv = {.tv_sec = sec > 0 ? sec : 1};

    d->state = state;
    evtimer_add(d->timer, &tv);
}

/* qmgr_deliver_finish - record what is missing, release everything; with
   unavailable, the transport is not used for a while */
static void qmgr_deliver_finish(QMGR_DELIVERY *d, const char *problem, int unavailable)
{
    QMGR_ENTRY *e = d->entry;
    QMGR_MESSAGE *msg = e->msg;
    QMGR_TRANSPORT *t = e->queue->transport;
    int fb = problem != NULL ? QMGR_FB_NONE : d->feedback;
    /* A clean end leaves the agent ready for the next request. */
    int keep =
        problem == NULL && d->eof_ok && vstr_len(d->in) == 0 && d->wev == NULL && !unavailable;

    if (problem != NULL)
        msg_warn("%s: %s: %s", msg->id, e->queue->transport->service_path, problem);
    /* docs/protocols.md: a recipient the agent did not answer is deferred. */
    if (d->answered_count < e->count)
        for (size_t i = 0; i < e->count; i++)
            if (!d->answered[i])
                qmgr_message_fail(msg, e->rcpt[i], 451, "4.3.0", "delivery agent failed");
    qmgr_message_sync(msg);

    event_free(d->rev);
    if (d->wev)
        event_free(d->wev);
    event_free(d->timer);
    qmgr_deliveries--;
    if (keep)
        qmgr_idle_put(t, e->queue->nexthop, d->fd);
    else
        close(d->fd);
    vstr_free(d->out);
    vstr_free(d->in);
    myfree(d->answered);
    qmgr_sched_done(e, fb, d->fail_dsn, d->fail_why);
    myfree(d->fail_dsn);
    myfree(d->fail_why);
    myfree(d);
    if (unavailable)
        qmgr_sched_unavailable(t, problem);
}

/* qmgr_deliver_answer - one answer message; NULL, or a protocol problem */
static const char *qmgr_deliver_answer(QMGR_DELIVERY *d, const ATTR_MSG *m, VSTR *problem)
{
    QMGR_ENTRY *e = d->entry;
    unsigned long long index, status, count, passed = 0;
    QMGR_RESULT res;
    const char *dest;
    size_t j;

    if (attr_msg_get_unum(m, "done", &count) == 0) {
        if (attr_msg_get_unum(m, "count", &count) == 0 && count != d->answered_count)
            msg_warn("%s: %s: agent counted %llu answers, qmgr %zu", e->msg->id,
                     e->queue->transport->service_path, count, d->answered_count);
        dest = attr_msg_get_str(m, "dest_status");
        d->feedback = dest != NULL && strcmp(dest, "dead") == 0 ? QMGR_FB_FAIL : QMGR_FB_OK;
        d->eof_ok = 1;
        return NULL;
    }
    if (attr_msg_get_unum(m, "rcpt_index", &index) < 0 ||
        attr_msg_get_unum(m, "status", &status) < 0) {
        vstr_sprintf(problem, "answer without rcpt_index or status");
        return vstr_str(problem);
    }
    for (j = 0; j < e->count && e->rcpt[j] != index; j++)
        /* void */;
    if (j == e->count) {
        vstr_sprintf(problem, "answer for recipient #%llu, which is not in the request", index);
        return vstr_str(problem);
    }
    if (d->answered[j]) {
        vstr_sprintf(problem, "second answer for recipient #%llu", index);
        return vstr_str(problem);
    }
    if (status != QMGR_STAT_SENT && (status < 400 || status > 599)) {
        vstr_sprintf(problem, "bad status %llu for recipient #%llu", status, index);
        return vstr_str(problem);
    }
    memset(&res, 0, sizeof(res));
    res.status = (int)status;
    res.dsn = attr_msg_get_str(m, "dsn");
    res.reason = attr_msg_get_str(m, "reason");
    if (res.reason == NULL)
        res.reason = "";
    res.relay = attr_msg_get_str(m, "relay");
    res.action = attr_msg_get_str(m, "dsn_action");
    res.passed = attr_msg_get_unum(m, "dsn_passed", &passed) == 0 && passed == 1;
    res.mtype = attr_msg_get_str(m, "dsn_mtype");
    res.mname = attr_msg_get_str(m, "dsn_mname");
    res.dtype = attr_msg_get_str(m, "dsn_dtype");
    res.dtext = attr_msg_get_str(m, "dsn_dtext");
    if (status >= 400 && status < 500 && d->fail_why == NULL) {
        d->fail_dsn = mystrndup(res.dsn ? res.dsn : "4.0.0", QFILE_DSN_STATUS_MAX);
        d->fail_why = mystrndup(res.reason, QFILE_REASON_MAX);
    }
    d->answered[j] = 1;
    d->answered_count++;
    qmgr_message_result(e->msg, (size_t)index, &res);
    return NULL;
}

/* qmgr_deliver_decode - every whole answer in the input buffer; 0 go on,
   1 finished (summary), -1 with problem set */
static int qmgr_deliver_decode(QMGR_DELIVERY *d, VSTR *problem)
{
    size_t pos = 0, used;
    ATTR_MSG *m;
    int rc = 0;

    while (rc == 0 && !d->eof_ok) {
        int n = attr_msg_decode(vstr_str(d->in) + pos, vstr_len(d->in) - pos, &used, NULL,
                                ATTR_FLAG_PRINTABLE, &m, problem);

        if (n == ATTR_MORE)
            break;
        if (n < 0) {
            /* Framing broken, or content refused: either way this agent is
               not speaking the protocol; trust nothing more from it. */
            rc = -1;
            break;
        }
        pos += used;
        if (qmgr_deliver_answer(d, m, problem) != NULL)
            rc = -1;
        attr_msg_free(m);
    }
    if (pos > 0) {
        memmove(vstr_str(d->in), vstr_str(d->in) + pos, vstr_len(d->in) - pos);
        vstr_truncate(d->in, vstr_len(d->in) - pos);
    }
    return rc < 0 ? -1 : d->eof_ok;
}

/* qmgr_deliver_connect - a non-blocking connection to the agent's socket */
static int qmgr_deliver_connect(const char *path);

/* qmgr_deliver_resend - a reused connection was closed before any answer:
   send the request again on a new one; 0, or -1 when that fails too */
static int qmgr_deliver_resend(QMGR_DELIVERY *d)
{
    int fd = qmgr_deliver_connect(d->entry->queue->transport->service_path);

    if (fd < 0)
        return -1;
    event_free(d->rev);
    if (d->wev)
        event_free(d->wev);
    close(d->fd);
    d->fd = fd;
    d->reused = 0;
    d->out_done = 0;
    d->rev = event_new(qmgr_base, fd, EV_READ | EV_PERSIST, qmgr_deliver_read_event, d);
    d->wev = event_new(qmgr_base, fd, EV_WRITE | EV_PERSIST, qmgr_deliver_write_event, d);
    event_add(d->rev, NULL);
    event_add(d->wev, NULL);
    qmgr_deliver_arm(d, QMGR_DLV_SENDING, qmgr_taking_time());
    return 0;
}

/* qmgr_deliver_read_event - answers arrive */
static void qmgr_deliver_read_event(evutil_socket_t fd, short what, void *ctx)
{
    QMGR_DELIVERY *d = ctx;
    VSTR *problem = vstr_alloc(100);
    size_t before = d->answered_count;
    char buf[QMGR_DELIVER_READ_SIZE];
    ssize_t n;
    int rc;

    (void)what;
    n = read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        vstr_free(problem);
        return;
    }
    /* A kept connection the agent had closed meanwhile: nothing was done. */
    if (n <= 0 && d->reused && d->answered_count == 0 && vstr_len(d->in) == 0 &&
        qmgr_deliver_resend(d) == 0) {
        vstr_free(problem);
        return;
    }
    if (n < 0) {
        vstr_sprintf(problem, "read: %m");
        rc = -1;
    } else if (n == 0) {
        vstr_sprintf(problem, "delivery agent closed the connection before it was done");
        rc = -1;
    } else {
        vstr_ncat(d->in, buf, (size_t)n);
        rc = qmgr_deliver_decode(d, problem);
        /* Bounded: the decoder refuses a message over ATTR_MSG_MAX first. */
        if (rc == 0 && vstr_len(d->in) > ATTR_MSG_MAX) {
            vstr_sprintf(problem, "answer longer than %d bytes", ATTR_MSG_MAX);
            rc = -1;
        }
    }
    if (rc == 0 && d->answered_count > before) {
        qmgr_message_sync(d->entry->msg);
        if (d->state != QMGR_DLV_SENDING)
            qmgr_deliver_arm(d, QMGR_DLV_ANSWERING, qmgr_conf.delivery_timeout);
    }
    if (rc > 0 && d->answered_count < d->entry->count) {
        vstr_sprintf(problem, "delivery agent answered %zu of %zu recipients", d->answered_count,
                     d->entry->count);
        rc = -1;
    }
    if (rc != 0)
        qmgr_deliver_finish(d, rc < 0 ? vstr_str(problem) : NULL, 0);
    vstr_free(problem);
}

/* qmgr_deliver_write_event - send more of the request */
static void qmgr_deliver_write_event(evutil_socket_t fd, short what, void *ctx)
{
    QMGR_DELIVERY *d = ctx;
    ssize_t n;

    (void)what;
    n = send(fd, vstr_str(d->out) + d->out_done, vstr_len(d->out) - d->out_done, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) {
        /* The agent is gone; the read side sees the end and finishes. */
        event_free(d->wev);
        d->wev = NULL;
        return;
    }
    d->out_done += (size_t)n;
    if (d->out_done == vstr_len(d->out)) {
        event_free(d->wev);
        d->wev = NULL;
        qmgr_deliver_arm(d, QMGR_DLV_TAKING, qmgr_taking_time());
    }
}

/* qmgr_deliver_timeout - a state's time limit passed */
static void qmgr_deliver_timeout(evutil_socket_t fd, short what, void *ctx)
{
    QMGR_DELIVERY *d = ctx;
    VSTR *problem = vstr_alloc(100);
    int unread = 0;

    (void)fd, (void)what;
    switch (d->state) {
    case QMGR_DLV_SENDING:
        vstr_sprintf(problem, "delivery agent did not take the request within %lds",
                     qmgr_taking_time());
        qmgr_deliver_finish(d, vstr_str(problem), 1);
        break;
    case QMGR_DLV_TAKING:
        /* Bytes still queued: nobody accepted the connection or read it. */
        if (ioctl(d->fd, SIOCOUTQ, &unread) == 0 && unread > 0) {
            vstr_sprintf(problem, "delivery agent did not read the request within %lds",
                         qmgr_taking_time());
            qmgr_deliver_finish(d, vstr_str(problem), 1);
            break;
        }
        if (qmgr_conf.delivery_timeout > qmgr_taking_time()) {
            qmgr_deliver_arm(d, QMGR_DLV_ANSWERING,
                             qmgr_conf.delivery_timeout - qmgr_taking_time());
            break;
        }
        /* The agent has been silent for qmgr_delivery_timeout already. */
        __attribute__((fallthrough));
    case QMGR_DLV_ANSWERING:
        vstr_sprintf(problem, "delivery agent timed out after %lds", qmgr_conf.delivery_timeout);
        qmgr_deliver_finish(d, vstr_str(problem), 0);
        break;
    }
    vstr_free(problem);
}

/* qmgr_deliver_connect - a non-blocking connection to the agent's socket;
   the descriptor, or -1 with errno */
static int qmgr_deliver_connect(const char *path)
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
    /* A UNIX-domain connect never waits: it succeeds, or fails with EAGAIN
       when the listener's backlog is full. */
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* qmgr_deliver_start - connect, send the request, wait for answers */
void qmgr_deliver_start(QMGR_ENTRY *e)
{
    QMGR_TRANSPORT *t = e->queue->transport;
    QMGR_DELIVERY *d;
    VSTR *why;
    int fd, reused = 0;

    if ((fd = qmgr_idle_take(t, e->queue->nexthop)) >= 0)
        reused = 1;
    else if ((fd = qmgr_deliver_connect(t->service_path)) < 0) {
        int saved = errno;

        qmgr_sched_requeue(e);
        if (saved == EAGAIN) {
            qmgr_sched_backlog(t);
        } else {
            why = vstr_alloc(100);
            errno = saved;
            vstr_sprintf(why, "connect to %s: %m", t->service_path);
            qmgr_sched_unavailable(t, vstr_str(why));
            vstr_free(why);
        }
        return;
    }
    d = mycalloc(1, sizeof(*d));
    d->entry = e;
    d->fd = fd;
    d->reused = reused;
    d->out = vstr_alloc(1024);
    d->in = vstr_alloc(1024);
    d->answered = mycalloc(e->count, 1);
    why = vstr_alloc(100);
    if (qmgr_deliver_request(e, d->out, why) < 0)
        /* Bounded by QMGR_REQUEST_RCPT_MAX and the queue file's field limits. */
        msg_panic("%s: delivery request does not fit the protocol limits: %s", e->msg->id,
                  vstr_str(why));
    vstr_free(why);
    d->rev = event_new(qmgr_base, fd, EV_READ | EV_PERSIST, qmgr_deliver_read_event, d);
    d->wev = event_new(qmgr_base, fd, EV_WRITE | EV_PERSIST, qmgr_deliver_write_event, d);
    d->timer = evtimer_new(qmgr_base, qmgr_deliver_timeout, d);
    event_add(d->rev, NULL);
    event_add(d->wev, NULL);
    qmgr_deliveries++;
    qmgr_deliver_arm(d, QMGR_DLV_SENDING, qmgr_taking_time());
    if (msg_verbose)
        msg_info("%s: delivery of %zu recipient(s) via %s to %s", e->msg->id, e->count, t->name,
                 e->queue->nexthop);
}
