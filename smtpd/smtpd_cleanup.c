/*
 * smtpd_cleanup - the non-blocking client of the cleanup service
 * (docs/protocols.md section 1, lib/mail/cleanup_proto.h), driven by the
 * session's event loop.
 *
 * One SMTPD_CLEANUP is one message transaction: smtpd_cleanup_open()
 * connects to $queue_directory/private/$cleanup_service_name (or public/,
 * where master.cf may put it) and sends "open"; the "open" reply reports
 * SMTPD_CLEANUP_EV_OPENED. The caller then streams attributes, the sender,
 * recipients and content, all appended to a bufferevent's output buffer;
 * smtpd_cleanup_end() sends "end" and the final reply reports
 * SMTPD_CLEANUP_EV_DONE. Freeing the object closes the connection, which
 * tells cleanup to drop the unfinished queue file.
 *
 * States:
 *   CONNECTING  connect() said EAGAIN (the listener's backlog is full):
 *               retry every SMTPD_CLEANUP_RETRY_MS for SMTPD_CLEANUP_CONNECT_MS
 *   WAIT_OPEN   "open" sent; reply due within ipc_timeout
 *   OPEN        streaming; any input from cleanup now is a protocol error
 *   WAIT_END    "end" sent; reply due within ipc_timeout
 *   DONE        final reply received
 *   FAILED      connection, timeout or protocol failure; writes are dropped
 *
 * Backpressure: smtpd_cleanup_backlog() is what waits to be written; when
 * the caller finds it too large it calls smtpd_cleanup_notify_drain() and
 * stops reading from its client; SMTPD_CLEANUP_EV_DRAINED says when the
 * backlog fell to SMTPD_CLEANUP_LOW.
 *
 * The callback is always the last thing a handler here does, so the
 * callee may free the object.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mail/attr.h"
#include "mail/cleanup_proto.h"
#include "mail/qfile.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#include "smtpd.h"

#define SMTPD_CLEANUP_RETRY_MS 50      /* between connect attempts while the backlog is full */
#define SMTPD_CLEANUP_CONNECT_MS 10000 /* give up connecting after this long */
#define SMTPD_CLEANUP_LOW (64 * 1024)  /* report DRAINED at or below this backlog */
#define SMTPD_CLEANUP_REPLY_MAX 4096   /* bytes of one reply message at most */
#define SMTPD_CLEANUP_SERVICE_MAX (SMTPD_SERVICE_NAME_MAX + 1)
#define SMTPD_CLEANUP_PATH_MAX 128 /* "private/" + service (sun_path checked at connect) */

enum smtpd_cleanup_state {
    SMTPD_CL_CONNECTING,
    SMTPD_CL_WAIT_OPEN,
    SMTPD_CL_OPEN,
    SMTPD_CL_WAIT_END,
    SMTPD_CL_DONE,
    SMTPD_CL_FAILED,
};

struct SMTPD_CLEANUP {
    struct event_base *base;
    struct bufferevent *bev;
    struct event *timer; /* connect retry */
    enum smtpd_cleanup_state state;
    SMTPD_CLEANUP_FN fn;
    void *context;
    unsigned flags;
    long reply_timeout; /* seconds */
    int drain_wanted;
    int connect_waited_ms;
    char service[SMTPD_CLEANUP_SERVICE_MAX];
    char path[SMTPD_CLEANUP_PATH_MAX];
    VSTR *pending; /* content not yet framed into a "data" request */
    VSTR *enc;     /* one encoded request */
    VSTR *why;     /* reason of a failure, for the log */
    SMTP_REPLY reply;
    char queue_id[QUEUE_ID_SIZE];
    VSTR *dsn;
    VSTR *reason;
};

/* The two places master.cf may put the service (private = y or n). */
static const char *const smtpd_cleanup_classes[] = {CLEANUP_SERVICE_CLASS, "public"};

static void smtpd_cleanup_read_cb(struct bufferevent *bev, void *ctx);
static void smtpd_cleanup_write_cb(struct bufferevent *bev, void *ctx);
static void smtpd_cleanup_event_cb(struct bufferevent *bev, short what, void *ctx);

/* smtpd_cleanup_fail - record a failure and tell the session (last action) */
static void smtpd_cleanup_fail(SMTPD_CLEANUP *c, const char *why)
{
    if (c->state == SMTPD_CL_FAILED)
        return;
    vstr_cpy(c->why, why);
    msg_warn("cleanup service %s: %s", c->path, why);
    c->state = SMTPD_CL_FAILED;
    if (c->bev)
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    c->fn(c->context, SMTPD_CLEANUP_EV_FAILED);
}

/* smtpd_cleanup_send - append the request in c->enc to the output */
static void smtpd_cleanup_send(SMTPD_CLEANUP *c)
{
    if (c->state != SMTPD_CL_FAILED && c->bev != NULL &&
        bufferevent_write(c->bev, vstr_str(c->enc), vstr_len(c->enc)) < 0)
        msg_warn("cleanup service %s: cannot queue a request", c->path);
    vstr_reset(c->enc);
}

/* smtpd_cleanup_timeouts - a read deadline only while a reply is due */
static void smtpd_cleanup_timeouts(SMTPD_CLEANUP *c)
{
    struct timeval tv = {.tv_sec = c->reply_timeout};
    int waiting = c->state == SMTPD_CL_WAIT_OPEN || c->state == SMTPD_CL_WAIT_END;

    bufferevent_set_timeouts(c->bev, waiting ? &tv : NULL, &tv);
}

/* smtpd_cleanup_connected - wrap the socket, send "open" */
static void smtpd_cleanup_connected(SMTPD_CLEANUP *c, int fd)
{
    c->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL)
        msg_fatal("bufferevent_socket_new failed");
    bufferevent_setcb(c->bev, smtpd_cleanup_read_cb, smtpd_cleanup_write_cb, smtpd_cleanup_event_cb,
                      c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, SMTPD_CLEANUP_REPLY_MAX);
    bufferevent_setwatermark(c->bev, EV_WRITE, SMTPD_CLEANUP_LOW, 0);
    c->state = SMTPD_CL_WAIT_OPEN;
    smtpd_cleanup_timeouts(c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (attr_encode(c->enc, NULL, 0, c->why, ATTR_STR(CLEANUP_ATTR_REQ, CLEANUP_REQ_OPEN),
                    ATTR_UNUM(CLEANUP_ATTR_FLAGS, c->flags),
                    ATTR_STR(CLEANUP_ATTR_ORIGIN, CLEANUP_ORIGIN_SMTPD), ATTR_END) < 0)
        msg_panic("smtpd_cleanup: cannot encode open: %s", vstr_str(c->why));
    smtpd_cleanup_send(c);
}

/* smtpd_cleanup_try - one non-blocking connect; fd, or -1 with errno */
static int smtpd_cleanup_try(const char *path)
{
    struct sockaddr_un sun;
    int fd;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path));
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    /* A UNIX-domain connect completes or fails at once; EAGAIN: backlog full. */
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* smtpd_cleanup_connect - find the service and connect; 1 done, 0 retry later, -1 failed */
static int smtpd_cleanup_connect(SMTPD_CLEANUP *c)
{
    /* The class that answered last time is tried first: master.cf rarely
       changes under a running process, and a miss costs a failed connect()
       per message. */
    static size_t last_class;
    const size_t nclass = sizeof(smtpd_cleanup_classes) / sizeof(smtpd_cleanup_classes[0]);
    int first_errno = 0;

    for (size_t n = 0; n < nclass; n++) {
        size_t i = (last_class + n) % nclass;
        char path[SMTPD_CLEANUP_PATH_MAX];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", smtpd_cleanup_classes[i], c->service);
        if ((fd = smtpd_cleanup_try(path)) >= 0) {
            snprintf(c->path, sizeof(c->path), "%s", path);
            last_class = i;
            smtpd_cleanup_connected(c, fd);
            return 1;
        }
        if (errno == EAGAIN) {
            snprintf(c->path, sizeof(c->path), "%s", path);
            return 0;
        }
        if (first_errno == 0)
            first_errno = errno;
    }
    vstr_sprintf(c->why, "connect to %s/%s: %s", smtpd_cleanup_classes[0], c->service,
                 strerror(first_errno));
    return -1;
}

/* smtpd_cleanup_retry_cb - the service's backlog was full: try again */
static void smtpd_cleanup_retry_cb(evutil_socket_t fd, short what, void *ctx)
{
    SMTPD_CLEANUP *c = ctx;
    int r;

    (void)fd, (void)what;
    if ((r = smtpd_cleanup_connect(c)) > 0)
        return;
    c->connect_waited_ms += SMTPD_CLEANUP_RETRY_MS;
    if (r < 0 || c->connect_waited_ms >= SMTPD_CLEANUP_CONNECT_MS) {
        if (r == 0)
            vstr_sprintf(c->why, "connect to %s: service busy for %d ms", c->path,
                         SMTPD_CLEANUP_CONNECT_MS);
        smtpd_cleanup_fail(c, vstr_str(c->why));
        return;
    }
    struct timeval tv = {0, SMTPD_CLEANUP_RETRY_MS * 1000};

    evtimer_add(c->timer, &tv);
}

/* smtpd_cleanup_open - start a transaction; NULL when the service cannot be reached */
SMTPD_CLEANUP *smtpd_cleanup_open(struct event_base *base, const SMTPD_CONFIG *cfg, unsigned flags,
                                  SMTPD_CLEANUP_FN fn, void *context)
{
    SMTPD_CLEANUP *c = mycalloc(1, sizeof(*c));
    int r;

    c->base = base;
    c->fn = fn;
    c->context = context;
    c->flags = flags;
    c->reply_timeout = cfg->ipc_timeout;
    c->pending = vstr_alloc(1024);
    c->enc = vstr_alloc(1024);
    c->why = vstr_alloc(100);
    c->dsn = vstr_alloc(CLEANUP_DSN_MAX + 1);
    c->reason = vstr_alloc(100);
    vstr_set_limit(c->dsn, CLEANUP_DSN_MAX);
    vstr_set_limit(c->reason, CLEANUP_REASON_MAX);
    c->state = SMTPD_CL_CONNECTING;
    snprintf(c->service, sizeof(c->service), "%s", cfg->cleanup_service);
    snprintf(c->path, sizeof(c->path), "%s/%s", smtpd_cleanup_classes[0], c->service);
    if ((r = smtpd_cleanup_connect(c)) < 0) {
        msg_warn("%s", vstr_str(c->why));
        smtpd_cleanup_free(c);
        return NULL;
    }
    if (r == 0) {
        struct timeval tv = {0, SMTPD_CLEANUP_RETRY_MS * 1000};

        c->timer = evtimer_new(base, smtpd_cleanup_retry_cb, c);
        evtimer_add(c->timer, &tv);
    }
    return c;
}

/* smtpd_cleanup_attr - a named attribute of the message (client_name, helo_name...) */
void smtpd_cleanup_attr(SMTPD_CLEANUP *c, const char *name, const char *value)
{
    if (attr_encode(c->enc, NULL, 0, c->why, ATTR_STR(CLEANUP_ATTR_REQ, CLEANUP_REQ_ATTR),
                    ATTR_STR(CLEANUP_ATTR_NAME, name), ATTR_STR(CLEANUP_ATTR_VALUE, value),
                    ATTR_END) < 0)
        msg_panic("smtpd_cleanup: cannot encode attribute %s: %s", name, vstr_str(c->why));
    smtpd_cleanup_send(c);
}

/* smtpd_cleanup_body_name - BODY= as cleanup_proto.h spells it */
static const char *smtpd_cleanup_body_name(int body)
{
    switch (body) {
    case SMTP_PARAM_BODY_8BITMIME: return CLEANUP_BODY_8BITMIME;
    case SMTP_PARAM_BODY_BINARYMIME: return CLEANUP_BODY_BINARYMIME;
    default: return CLEANUP_BODY_7BIT;
    }
}

/* smtpd_cleanup_sender - the envelope sender and the MAIL FROM parameters */
void smtpd_cleanup_sender(SMTPD_CLEANUP *c, const SMTPD_TXN *txn)
{
    if (attr_encode(c->enc, NULL, ATTR_FLAG_MORE, c->why,
                    ATTR_STR(CLEANUP_ATTR_REQ, CLEANUP_REQ_SENDER),
                    ATTR_STR(CLEANUP_ATTR_ADDRESS, txn->sender),
                    ATTR_STR(CLEANUP_ATTR_BODY, smtpd_cleanup_body_name(txn->body)),
                    ATTR_UNUM(CLEANUP_ATTR_SMTPUTF8_REQ, txn->smtputf8 ? 1 : 0),
                    ATTR_UNUM(CLEANUP_ATTR_SIZE, txn->size), ATTR_END) < 0)
        msg_panic("smtpd_cleanup: cannot encode sender: %s", vstr_str(c->why));
    size_t prior = vstr_len(c->enc);
    /* Compound literals at function scope: they must outlive the encode call. */
    const ATTR_SPEC *ret = ATTR_STR(
        CLEANUP_ATTR_RET, txn->ret == SMTP_PARAM_RET_FULL ? CLEANUP_RET_FULL : CLEANUP_RET_HDRS);
    const ATTR_SPEC *envid = ATTR_STR(CLEANUP_ATTR_ENVID, txn->envid ? txn->envid : "");
    const ATTR_SPEC *list[3];
    size_t n = 0;

    if (txn->ret != SMTP_PARAM_RET_NONE)
        list[n++] = ret;
    if (txn->envid)
        list[n++] = envid;
    list[n] = ATTR_END;
    if (attr_encode_cont(c->enc, NULL, 0, c->why, list, prior, 5) < 0)
        msg_panic("smtpd_cleanup: cannot encode sender: %s", vstr_str(c->why));
    smtpd_cleanup_send(c);
}

/* smtpd_cleanup_rcpt - one accepted recipient with its DSN parameters */
void smtpd_cleanup_rcpt(SMTPD_CLEANUP *c, const char *addr, const char *orcpt, unsigned notify)
{
    if (attr_encode(c->enc, NULL, ATTR_FLAG_MORE, c->why,
                    ATTR_STR(CLEANUP_ATTR_REQ, CLEANUP_REQ_RCPT),
                    ATTR_STR(CLEANUP_ATTR_ADDRESS, addr), ATTR_UNUM(CLEANUP_ATTR_NOTIFY, notify),
                    ATTR_END) < 0)
        msg_panic("smtpd_cleanup: cannot encode recipient: %s", vstr_str(c->why));
    size_t prior = vstr_len(c->enc);
    const ATTR_SPEC *spec = ATTR_STR(CLEANUP_ATTR_ORCPT, orcpt ? orcpt : "");
    const ATTR_SPEC *list[2] = {orcpt ? spec : ATTR_END, ATTR_END};
    if (attr_encode_cont(c->enc, NULL, 0, c->why, list, prior, 3) < 0)
        msg_panic("smtpd_cleanup: cannot encode recipient: %s", vstr_str(c->why));
    smtpd_cleanup_send(c);
}

/* smtpd_cleanup_flush - frame the pending content as one "data" request */
static void smtpd_cleanup_flush(SMTPD_CLEANUP *c)
{
    if (vstr_len(c->pending) == 0)
        return;
    if (attr_encode(c->enc, NULL, 0, c->why, ATTR_STR(CLEANUP_ATTR_REQ, CLEANUP_REQ_DATA),
                    ATTR_BIN(CLEANUP_ATTR_DATA, vstr_str(c->pending), vstr_len(c->pending)),
                    ATTR_END) < 0)
        msg_panic("smtpd_cleanup: cannot encode content: %s", vstr_str(c->why));
    vstr_reset(c->pending);
    smtpd_cleanup_send(c);
}

/* smtpd_cleanup_data - message text (LF line ends); sent in CLEANUP_DATA_MAX requests */
void smtpd_cleanup_data(SMTPD_CLEANUP *c, const char *buf, size_t len)
{
    if (c->state == SMTPD_CL_FAILED)
        return;
    while (len > 0) {
        size_t room = CLEANUP_DATA_MAX - vstr_len(c->pending);
        size_t n = len < room ? len : room;

        vstr_ncat(c->pending, buf, n);
        buf += n;
        len -= n;
        if (vstr_len(c->pending) == CLEANUP_DATA_MAX)
            smtpd_cleanup_flush(c);
    }
}

/* smtpd_cleanup_end - no more content: ask for the commit */
void smtpd_cleanup_end(SMTPD_CLEANUP *c)
{
    if (c->state != SMTPD_CL_OPEN)
        return;
    smtpd_cleanup_flush(c);
    if (attr_encode(c->enc, NULL, 0, c->why, ATTR_STR(CLEANUP_ATTR_REQ, CLEANUP_REQ_END),
                    ATTR_END) < 0)
        msg_panic("smtpd_cleanup: cannot encode end: %s", vstr_str(c->why));
    smtpd_cleanup_send(c);
    c->state = SMTPD_CL_WAIT_END;
    smtpd_cleanup_timeouts(c);
}

size_t smtpd_cleanup_backlog(const SMTPD_CLEANUP *c)
{
    if (c->bev == NULL || c->state == SMTPD_CL_FAILED)
        return 0;
    return evbuffer_get_length(bufferevent_get_output(c->bev)) + vstr_len(c->pending);
}

/* smtpd_cleanup_notify_drain - report EV_DRAINED once the backlog is low again */
void smtpd_cleanup_notify_drain(SMTPD_CLEANUP *c)
{
    c->drain_wanted = 1;
}

const SMTP_REPLY *smtpd_cleanup_reply(const SMTPD_CLEANUP *c)
{
    return &c->reply;
}

const char *smtpd_cleanup_queue_id(const SMTPD_CLEANUP *c)
{
    return c->queue_id;
}

const char *smtpd_cleanup_why(const SMTPD_CLEANUP *c)
{
    return vstr_str(c->why);
}

/* smtpd_cleanup_take_reply - check and keep a reply; 0, or -1 with why */
static int smtpd_cleanup_take_reply(SMTPD_CLEANUP *c, unsigned long long status, VSTR *qid)
{
    if (status != 0 && (status < 400 || status > 599)) {
        vstr_sprintf(c->why, "bad status %llu in reply", status);
        return -1;
    }
    if (vstr_len(qid) > 0) {
        if (!queue_id_valid(vstr_str(qid))) {
            vstr_sprintf(c->why, "malformed queue id in reply");
            return -1;
        }
        snprintf(c->queue_id, sizeof(c->queue_id), "%s", vstr_str(qid));
    }
    if (status == 0) {
        c->reply = (SMTP_REPLY){250, "2.0.0", "Ok"};
        if (c->queue_id[0] == 0) {
            vstr_sprintf(c->why, "success reply without a queue id");
            return -1;
        }
        return 0;
    }
    /* Relay cleanup's verdict, but never a malformed code or class. */
    if (vstr_len(c->dsn) == 0 || !smtp_cmd_dsn_valid((int)status, vstr_str(c->dsn)))
        vstr_cpy(c->dsn, status >= 500 ? "5.3.0" : "4.3.0");
    if (vstr_len(c->reason) == 0)
        vstr_cpy(c->reason, "Error: queue file write error");
    c->reply = (SMTP_REPLY){(int)status, vstr_str(c->dsn), vstr_str(c->reason)};
    return 0;
}

/* smtpd_cleanup_read_cb - a reply (or something that should not be there) */
static void smtpd_cleanup_read_cb(struct bufferevent *bev, void *ctx)
{
    SMTPD_CLEANUP *c = ctx;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    unsigned long long status = 0;
    ATTR_LIMITS lim = attr_limits_default;
    VSTR *qid;
    size_t used = 0;
    int r;
    int event;

    if (c->state != SMTPD_CL_WAIT_OPEN && c->state != SMTPD_CL_WAIT_END) {
        smtpd_cleanup_fail(c, "unexpected data from the service");
        return;
    }
    lim.msg_max = SMTPD_CLEANUP_REPLY_MAX;
    lim.value_max = SMTPD_CLEANUP_REPLY_MAX;
    qid = vstr_alloc(QUEUE_ID_SIZE);
    vstr_set_limit(qid, QUEUE_ID_LEN + 1);
    vstr_reset(c->dsn);
    vstr_reset(c->reason);
    r = attr_decode((const char *)evbuffer_pullup(in, -1), len, &used, &lim, ATTR_FLAG_PRINTABLE,
                    c->why, ATTR_UNUM_OUT(CLEANUP_ATTR_STATUS, &status),
                    ATTR_STR_OPT(CLEANUP_ATTR_QUEUE_ID, qid),
                    ATTR_STR_OPT(CLEANUP_ATTR_DSN, c->dsn),
                    ATTR_STR_OPT(CLEANUP_ATTR_REASON, c->reason), ATTR_END);
    if (r == ATTR_MORE) {
        vstr_free(qid);
        if (len >= SMTPD_CLEANUP_REPLY_MAX)
            smtpd_cleanup_fail(c, "reply too large");
        return;
    }
    if (r < 0 || smtpd_cleanup_take_reply(c, status, qid) < 0) {
        vstr_free(qid);
        vstr_sprintf_append(c->why, " (malformed reply)");
        smtpd_cleanup_fail(c, vstr_str(c->why));
        return;
    }
    vstr_free(qid);
    evbuffer_drain(in, used);
    if (c->state == SMTPD_CL_WAIT_OPEN) {
        /* After a failed open cleanup closes: nothing more will come. */
        c->state = c->reply.code == 250 ? SMTPD_CL_OPEN : SMTPD_CL_DONE;
        event = SMTPD_CLEANUP_EV_OPENED;
    } else {
        c->state = SMTPD_CL_DONE;
        event = SMTPD_CLEANUP_EV_DONE;
    }
    smtpd_cleanup_timeouts(c);
    c->fn(c->context, event);
}

/* smtpd_cleanup_write_cb - the backlog fell to SMTPD_CLEANUP_LOW */
static void smtpd_cleanup_write_cb(struct bufferevent *bev, void *ctx)
{
    SMTPD_CLEANUP *c = ctx;

    (void)bev;
    if (c->drain_wanted && c->state != SMTPD_CL_FAILED) {
        c->drain_wanted = 0;
        c->fn(c->context, SMTPD_CLEANUP_EV_DRAINED);
    }
}

/* smtpd_cleanup_event_cb - end of file, error or timeout on the connection */
static void smtpd_cleanup_event_cb(struct bufferevent *bev, short what, void *ctx)
{
    SMTPD_CLEANUP *c = ctx;

    (void)bev;
    if (c->state == SMTPD_CL_DONE || c->state == SMTPD_CL_FAILED) {
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        smtpd_cleanup_fail(c, (what & BEV_EVENT_READING) ? "timeout waiting for a reply"
                                                         : "timeout sending a request");
    else if (what & BEV_EVENT_EOF)
        smtpd_cleanup_fail(c, "the service closed the connection");
    else
        smtpd_cleanup_fail(c, strerror(EVUTIL_SOCKET_ERROR()));
}

/* smtpd_cleanup_free - close (an unfinished transaction is aborted); NULL is fine */
void smtpd_cleanup_free(SMTPD_CLEANUP *c)
{
    if (c == NULL)
        return;
    if (c->timer)
        event_free(c->timer);
    if (c->bev)
        bufferevent_free(c->bev);
    vstr_free(c->pending);
    vstr_free(c->enc);
    vstr_free(c->why);
    vstr_free(c->dsn);
    vstr_free(c->reason);
    myfree(c);
}
