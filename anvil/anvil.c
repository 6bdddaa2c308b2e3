/*
 * anvil - per-client connection counts and request rates for smtpd, as
 * Postfix's anvil(8).
 *
 * SYNOPSIS
 *   master.cf:  anvil unix - - n - 1 anvil
 *
 * DESCRIPTION
 *   One process (maxproc 1) keeps, per identity "service:client-address",
 *   the number of connections open now and the number of connection
 *   attempts, MAIL and RCPT commands, TLS handshakes, AUTH commands and
 *   failed AUTH commands within the current anvil_rate_time_unit window
 *   (lib/mail/anvil_table.h). smtpd processes ask it over private/anvil
 *   (docs/protocols.md section 8, lib/mail/anvil_clnt.h) and apply the
 *   smtpd_client_*_limit parameters to the answers; anvil itself refuses
 *   nothing.
 *
 *   Every smtpd process keeps one connection open and sends one request
 *   at a time. The server is event-driven: many smtpd processes are served
 *   at once and none can hold up another. Connections are counted per
 *   smtpd connection, so when an smtpd process goes away (even killed) the
 *   sessions it counted stop counting.
 *
 *   Every anvil_status_update_time, and before a normal exit, anvil logs
 *   the highest count and rates of the interval as Postfix does:
 *     statistics: max connection rate 3/60s for (smtp:192.0.2.1) at Jan  1 12:00:00
 *
 *   Memory is bounded by anvil_client_table_limit entries; idle entries
 *   expire when their rate window ends, and when the table is full the
 *   idle entry used longest ago is dropped.
 *
 * SECURITY
 *   anvil runs as mail_owner and talks only to the mail system (private/).
 *   Requests are length-limited attribute messages (ANVIL_LIMITS); a
 *   malformed one closes the connection, a well-formed bad one is answered
 *   with an error status. No request blocks the process.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mail/anvil_clnt.h"
#include "mail/anvil_table.h"
#include "mail/attr.h"
#include "mail/mail_conf.h"
#include "mail/mail_server.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define ANVIL_IN_HIGH (64 * 1024)  /* client input buffered at most */
#define ANVIL_OUT_HIGH (64 * 1024) /* unread replies before we stop reading */
#define ANVIL_PARTIAL_TIMEOUT 10   /* seconds for the rest of a started request */
#define ANVIL_WRITE_TIMEOUT 10     /* seconds for a client to take a reply */

/* Requests are small: a request name and an identity. */
static const ATTR_LIMITS anvil_limits = {
    .name_max = ATTR_NAME_MAX,
    .value_max = ANVIL_IDENT_MAX + 64,
    .msg_max = 4096,
    .count_max = 16,
};

/* The process's state (one event loop). */
static struct {
    ANVIL_TABLE *table;
    long unit;        /* anvil_rate_time_unit */
    long status_time; /* anvil_status_update_time */
    size_t limit;     /* anvil_client_table_limit */
    struct event *status_ev;
    struct event *expire_ev;
    VSTR *why;
    VSTR *reply;
} anvil;

/* One connected client (an smtpd process). */
typedef struct ANVIL_SESSION {
    struct bufferevent *bev;
    ANVIL_OWNER *owner;
} ANVIL_SESSION;

/* What each request does. */
enum anvil_op { ANVIL_OP_CONNECT, ANVIL_OP_DISCONNECT, ANVIL_OP_EVENT, ANVIL_OP_LOOKUP };

static const struct {
    const char *name;
    enum anvil_op op;
    enum anvil_event ev; /* ANVIL_OP_EVENT */
} anvil_requests[] = {
    {ANVIL_REQ_CONNECT, ANVIL_OP_CONNECT, ANVIL_EV_CONN},
    {ANVIL_REQ_DISCONNECT, ANVIL_OP_DISCONNECT, ANVIL_EV_CONN},
    {ANVIL_REQ_MAIL, ANVIL_OP_EVENT, ANVIL_EV_MAIL},
    {ANVIL_REQ_RCPT, ANVIL_OP_EVENT, ANVIL_EV_RCPT},
    {ANVIL_REQ_NEWTLS, ANVIL_OP_EVENT, ANVIL_EV_NEWTLS},
    {ANVIL_REQ_AUTH, ANVIL_OP_EVENT, ANVIL_EV_AUTH},
    {ANVIL_REQ_AUTH_FAIL, ANVIL_OP_EVENT, ANVIL_EV_AUTH_FAIL},
    {ANVIL_REQ_LOOKUP, ANVIL_OP_LOOKUP, ANVIL_EV_CONN},
};

/*
 * Statistics.
 */

/* anvil_when - "Jan  1 12:00:00", as Postfix shows the time of a maximum */
static const char *anvil_when(time_t when, char *buf, size_t size)
{
    struct tm tm;

    if (localtime_r(&when, &tm) == NULL || strftime(buf, size, "%b %e %H:%M:%S", &tm) == 0)
        snprintf(buf, size, "%ld", (long)when);
    return buf;
}

/* anvil_status_dump - log the maxima of the interval, then start over */
static void anvil_status_dump(void)
{
    static const struct {
        enum anvil_event ev;
        const char *what;
    } rates[] = {
        {ANVIL_EV_MAIL, "message rate"},           {ANVIL_EV_RCPT, "recipient rate"},
        {ANVIL_EV_NEWTLS, "new TLS sessions"},     {ANVIL_EV_AUTH, "AUTH rate"},
        {ANVIL_EV_AUTH_FAIL, "AUTH failure rate"},
    };
    const ANVIL_STATS *st = anvil_table_stats(anvil.table);
    char when[64];

    if (st->rate[ANVIL_EV_CONN].value > 0)
        msg_info("statistics: max connection rate %ld/%lds for (%s) at %s",
                 st->rate[ANVIL_EV_CONN].value, anvil.unit, st->rate[ANVIL_EV_CONN].ident,
                 anvil_when(st->rate[ANVIL_EV_CONN].when, when, sizeof(when)));
    if (st->count.value > 0)
        msg_info("statistics: max connection count %ld for (%s) at %s", st->count.value,
                 st->count.ident, anvil_when(st->count.when, when, sizeof(when)));
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        const ANVIL_MAX *m = &st->rate[rates[i].ev];

        if (m->value > 0)
            msg_info("statistics: max %s %ld/%lds for (%s) at %s", rates[i].what, m->value,
                     anvil.unit, m->ident, anvil_when(m->when, when, sizeof(when)));
    }
    if (st->max_size > 0)
        msg_info("statistics: max cache size %zu at %s", st->max_size,
                 anvil_when(st->max_size_when, when, sizeof(when)));
    if (st->evicted > 0 || st->untracked > 0)
        msg_warn("statistics: client table full (anvil_client_table_limit = %zu): %lu idle "
                 "clients forgotten early, %lu events not tracked",
                 anvil.limit, st->evicted, st->untracked);
    anvil_table_stats_reset(anvil.table);
}

/* anvil_status_event - anvil_status_update_time passed */
static void anvil_status_event(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd, (void)what, (void)ctx;
    anvil_status_dump();
}

/* anvil_expire_event - forget idle clients whose window ended, even when all is quiet */
static void anvil_expire_event(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd, (void)what, (void)ctx;
    anvil_table_expire(anvil.table, time(NULL));
}

/*
 * Requests.
 */

/* anvil_reply - queue a reply: status, an optional reason, the counts when known */
static void anvil_reply(ANVIL_SESSION *as, unsigned status, const char *reason,
                        const ANVIL_COUNTS *c)
{
    int r;

    vstr_reset(anvil.reply);
    if (c == NULL) {
        r = attr_encode(anvil.reply, &anvil_limits, 0, anvil.why,
                        ATTR_UNUM(ANVIL_ATTR_STATUS, status),
                        ATTR_STR(ANVIL_ATTR_REASON, reason ? reason : ""), ATTR_END);
    } else {
        r = attr_encode(
            anvil.reply, &anvil_limits, 0, anvil.why, ATTR_UNUM(ANVIL_ATTR_STATUS, status),
            ATTR_UNUM(ANVIL_ATTR_COUNT, (unsigned long long)c->count),
            ATTR_UNUM(ANVIL_ATTR_RATE, (unsigned long long)c->rate[ANVIL_EV_CONN]),
            ATTR_UNUM(ANVIL_ATTR_MAIL, (unsigned long long)c->rate[ANVIL_EV_MAIL]),
            ATTR_UNUM(ANVIL_ATTR_RCPT, (unsigned long long)c->rate[ANVIL_EV_RCPT]),
            ATTR_UNUM(ANVIL_ATTR_NEWTLS, (unsigned long long)c->rate[ANVIL_EV_NEWTLS]),
            ATTR_UNUM(ANVIL_ATTR_AUTH, (unsigned long long)c->rate[ANVIL_EV_AUTH]),
            ATTR_UNUM(ANVIL_ATTR_AUTH_FAIL, (unsigned long long)c->rate[ANVIL_EV_AUTH_FAIL]),
            ATTR_END);
    }
    if (r < 0)
        msg_panic("anvil_reply: %s", vstr_str(anvil.why));
    if (bufferevent_write(as->bev, vstr_str(anvil.reply), vstr_len(anvil.reply)) < 0)
        msg_warn("cannot queue a reply: out of memory");
}

/* anvil_request - carry out one request and answer it */
static void anvil_request(ANVIL_SESSION *as, const ATTR_MSG *m)
{
    const char *req = attr_msg_get_str(m, ANVIL_ATTR_REQUEST);
    const char *ident = attr_msg_get_str(m, ANVIL_ATTR_IDENT);
    time_t now = time(NULL);
    ANVIL_COUNTS c;
    size_t i;

    if (req == NULL) {
        anvil_reply(as, ANVIL_STAT_BAD_REQUEST, "request attribute missing", NULL);
        return;
    }
    for (i = 0; i < sizeof(anvil_requests) / sizeof(anvil_requests[0]); i++)
        if (strcmp(req, anvil_requests[i].name) == 0)
            break;
    if (i == sizeof(anvil_requests) / sizeof(anvil_requests[0])) {
        msg_warn("unknown request \"%.100s\"", req);
        anvil_reply(as, ANVIL_STAT_BAD_REQUEST, "unknown request", NULL);
        return;
    }
    if (ident == NULL || !anvil_ident_ok(ident)) {
        msg_warn("request \"%s\": missing or malformed ident", req);
        anvil_reply(as, ANVIL_STAT_BAD_IDENT, "missing or malformed ident", NULL);
        return;
    }
    if (msg_verbose)
        msg_info("request=%s ident=%s", req, ident);
    switch (anvil_requests[i].op) {
    case ANVIL_OP_CONNECT: (void)anvil_table_connect(anvil.table, as->owner, ident, now, &c); break;
    case ANVIL_OP_DISCONNECT:
        (void)anvil_table_disconnect(anvil.table, as->owner, ident, now);
        (void)anvil_table_lookup(anvil.table, ident, now, &c);
        break;
    case ANVIL_OP_EVENT:
        (void)anvil_table_event(anvil.table, ident, anvil_requests[i].ev, now, &c);
        break;
    case ANVIL_OP_LOOKUP: (void)anvil_table_lookup(anvil.table, ident, now, &c); break;
    }
    anvil_reply(as, ANVIL_STAT_OK, NULL, &c);
}

/*
 * Client connections.
 */

/* anvil_session_free - the client is gone: its connections stop counting */
static void anvil_session_free(ANVIL_SESSION *as)
{
    anvil_owner_free(anvil.table, as->owner, time(NULL));
    bufferevent_free(as->bev);
    myfree(as);
    mail_server_session_done();
}

/* anvil_input - answer every whole request buffered; 0, or -1 when the session is freed */
static int anvil_input(ANVIL_SESSION *as)
{
    struct evbuffer *in = bufferevent_get_input(as->bev);
    struct evbuffer *out = bufferevent_get_output(as->bev);
    struct timeval partial = {.tv_sec = ANVIL_PARTIAL_TIMEOUT};
    struct timeval wr = {.tv_sec = ANVIL_WRITE_TIMEOUT};

    while (evbuffer_get_length(in) > 0) {
        size_t len = evbuffer_get_length(in);
        ATTR_FRAME fr = ATTR_FRAME_INIT;
        ATTR_MSG *m = NULL;
        size_t msg_len, used;
        const char *buf;
        int r;

        if (evbuffer_get_length(out) > ANVIL_OUT_HIGH) {
            /* A client that sends but does not read: wait until it reads. */
            bufferevent_disable(as->bev, EV_READ);
            return 0;
        }
        if (len > anvil_limits.msg_max)
            len = anvil_limits.msg_max;
        buf = (const char *)evbuffer_pullup(in, (ssize_t)len);
        r = attr_frame(&fr, buf, len, &anvil_limits, &msg_len, anvil.why);
        if (r == ATTR_MORE)
            break;
        if (r < 0) {
            msg_warn("malformed request: %s -- closing the connection", vstr_str(anvil.why));
            anvil_session_free(as);
            return -1;
        }
        r = attr_msg_decode(buf, msg_len, &used, &anvil_limits, ATTR_FLAG_PRINTABLE, &m, anvil.why);
        if (r < 0) {
            /* Well framed but not acceptable (a control character, say): say so. */
            msg_warn("bad request: %s", vstr_str(anvil.why));
            anvil_reply(as, ANVIL_STAT_BAD_REQUEST, vstr_str(anvil.why), NULL);
        } else {
            anvil_request(as, m);
            attr_msg_free(m);
        }
        evbuffer_drain(in, msg_len);
    }
    /* Half a request may wait for its rest only so long; a quiet client may wait forever. */
    bufferevent_set_timeouts(as->bev, evbuffer_get_length(in) > 0 ? &partial : NULL, &wr);
    bufferevent_enable(as->bev, EV_READ);
    return 0;
}

/* anvil_read_cb - request bytes arrived */
static void anvil_read_cb(struct bufferevent *bev, void *ctx)
{
    (void)bev;
    (void)anvil_input(ctx);
}

/* anvil_write_cb - the client took its replies: read again */
static void anvil_write_cb(struct bufferevent *bev, void *ctx)
{
    (void)bev;
    (void)anvil_input(ctx);
}

/* anvil_event_cb - the client closed, failed or timed out */
static void anvil_event_cb(struct bufferevent *bev, short what, void *ctx)
{
    (void)bev;
    if (what & BEV_EVENT_TIMEOUT)
        msg_warn("client connection timed out -- closing it");
    anvil_session_free(ctx);
}

/* anvil_service - a new client: MAIL_SERVER_SPEC.multi_service */
static void anvil_service(const MAIL_SERVER_ARGS *args, int fd)
{
    ANVIL_SESSION *as = mycalloc(1, sizeof(*as));
    struct timeval wr = {.tv_sec = ANVIL_WRITE_TIMEOUT};

    if (args->argv[0])
        msg_fatal("unexpected command-line argument: %s", args->argv[0]);
    as->owner = anvil_owner_new();
    as->bev = bufferevent_socket_new(args->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (as->bev == NULL)
        msg_fatal("bufferevent_socket_new failed");
    bufferevent_setcb(as->bev, anvil_read_cb, anvil_write_cb, anvil_event_cb, as);
    bufferevent_setwatermark(as->bev, EV_READ, 0, ANVIL_IN_HIGH);
    bufferevent_set_timeouts(as->bev, NULL, &wr);
    bufferevent_enable(as->bev, EV_READ | EV_WRITE);
}

/*
 * Process life.
 */

/* anvil_post_init - the table and the timers (after the privilege drop) */
static void anvil_post_init(const MAIL_SERVER_ARGS *args)
{
    struct timeval status, expire;

    anvil.unit = var_time("anvil_rate_time_unit");
    anvil.status_time = var_time("anvil_status_update_time");
    anvil.limit = (size_t)var_int("anvil_client_table_limit");
    anvil.table = anvil_table_new(anvil.limit, anvil.unit);
    anvil.why = vstr_alloc(100);
    anvil.reply = vstr_alloc(256);
    status.tv_sec = anvil.status_time;
    status.tv_usec = 0;
    anvil.status_ev = event_new(args->base, -1, EV_PERSIST, anvil_status_event, NULL);
    event_add(anvil.status_ev, &status);
    expire.tv_sec = anvil.unit;
    expire.tv_usec = 0;
    anvil.expire_ev = event_new(args->base, -1, EV_PERSIST, anvil_expire_event, NULL);
    event_add(anvil.expire_ev, &expire);
}

/* anvil_pre_exit - the last statistics */
static void anvil_pre_exit(const MAIL_SERVER_ARGS *args)
{
    (void)args;
    anvil_status_dump();
}

int main(int argc, char **argv)
{
    static const MAIL_SERVER_SPEC spec = {
        .kind = MAIL_SERVER_MULTI,
        .post_init = anvil_post_init,
        .multi_service = anvil_service,
        .pre_exit = anvil_pre_exit,
    };

    mail_server_main(argc, argv, &spec);
}
