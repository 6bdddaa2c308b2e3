/*
 * anvil_clnt - synchronous, time-bounded, fail-open client of the anvil
 * service (see anvil_clnt.h).
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mail/anvil_clnt.h"
#include "mail/attr.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

struct ANVIL_CLNT {
    char *path;
    int timeout_ms;
    int fd; /* -1 while not connected */
    ATTR_STREAM *stream;
    int answered;      /* this connection has answered a request */
    int absent;        /* the last failure: nobody listens on the socket */
    time_t down_until; /* fail at once until then */
    time_t warned;     /* when the last failure was logged; 0 never */
    VSTR *ident;
    VSTR *reason;
    VSTR *why;
};

/* anvil_clnt_create - a client; connects at the first request */
ANVIL_CLNT *anvil_clnt_create(const char *path, int timeout_ms)
{
    ANVIL_CLNT *a = mycalloc(1, sizeof(*a));

    a->path = mystrdup(path);
    a->timeout_ms = timeout_ms;
    a->fd = -1;
    a->ident = vstr_alloc(ANVIL_IDENT_MAX + 1);
    a->reason = vstr_alloc(64);
    vstr_set_limit(a->reason, ANVIL_REASON_MAX);
    a->why = vstr_alloc(100);
    return a;
}

/* anvil_clnt_close - drop the connection */
static void anvil_clnt_close(ANVIL_CLNT *a)
{
    attr_stream_free(a->stream);
    a->stream = NULL;
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
    a->answered = 0;
}

void anvil_clnt_free(ANVIL_CLNT *a)
{
    if (a == NULL)
        return;
    anvil_clnt_close(a);
    myfree(a->path);
    vstr_free(a->ident);
    vstr_free(a->reason);
    vstr_free(a->why);
    myfree(a);
}

/* anvil_clnt_warn - log why a request failed, unless a failure was logged lately */
static void anvil_clnt_warn(ANVIL_CLNT *a, time_t now)
{
    if (a->warned == 0 || now - a->warned >= ANVIL_CLNT_WARN_INTERVAL || now < a->warned) {
        a->warned = now;
        if (a->absent)
            msg_warn("%s: %s -- no anvil service: client rate limits are not enforced", a->path,
                     vstr_str(a->why));
        else
            msg_warn("%s: %s -- client connection and rate limits are not enforced", a->path,
                     vstr_str(a->why));
    }
}

/* anvil_clnt_fail - the service cannot be reached: log it, and hold off for a while */
static void anvil_clnt_fail(ANVIL_CLNT *a, time_t now)
{
    a->down_until = now + ANVIL_CLNT_RETRY_DELAY;
    anvil_clnt_warn(a, now);
}

/* anvil_clnt_open - connect to the service; 0 or -1 (reason in a->why) */
static int anvil_clnt_open(ANVIL_CLNT *a)
{
    if ((a->fd = attr_clnt_connect(a->path, a->timeout_ms)) < 0) {
        a->absent = errno == ENOENT || errno == ECONNREFUSED;
        vstr_sprintf(a->why, "connect: %s", strerror(errno));
        return -1;
    }
    a->stream = attr_stream_open(a->fd, a->timeout_ms);
    a->answered = 0;
    return 0;
}

/* anvil_clnt_clamp - a counter from the wire as a long */
static long anvil_clnt_clamp(unsigned long long v)
{
    return v > LONG_MAX ? LONG_MAX : (long)v;
}

/* anvil_clnt_query - one request for service:addr; 0 with *out, or -1 (fail open) */
static int anvil_clnt_query(ANVIL_CLNT *a, const char *request, const char *service,
                            const char *addr, ANVIL_COUNTS *out)
{
    unsigned long long status = 0, n[1 + ANVIL_EV_COUNT] = {0};
    time_t now = time(NULL);
    int r = -1;

    /* Held off after a failure (unless the clock stepped back past the hold). */
    if (a->stream == NULL && now < a->down_until && now >= a->down_until - ANVIL_CLNT_RETRY_DELAY)
        return -1;
    a->absent = 0;
    vstr_sprintf(a->ident, "%s:%s", service, addr);
    if (!anvil_ident_ok(vstr_str(a->ident))) {
        vstr_sprintf(a->why, "bad client identity \"%.100s\"", vstr_str(a->ident));
        anvil_clnt_warn(a, now);
        return -1;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused, saved;

        if (a->stream == NULL && anvil_clnt_open(a) < 0)
            break;
        vstr_reset(a->reason);
        r = attr_clnt_request(
            a->stream, ATTR_FLAG_PRINTABLE, ATTR_STR(ANVIL_ATTR_REQUEST, request),
            ATTR_STR(ANVIL_ATTR_IDENT, vstr_str(a->ident)), ATTR_END,
            ATTR_UNUM_OUT(ANVIL_ATTR_STATUS, &status), ATTR_STR_OPT(ANVIL_ATTR_REASON, a->reason),
            ATTR_UNUM_OPT(ANVIL_ATTR_COUNT, &n[0]),
            ATTR_UNUM_OPT(ANVIL_ATTR_RATE, &n[1 + ANVIL_EV_CONN]),
            ATTR_UNUM_OPT(ANVIL_ATTR_MAIL, &n[1 + ANVIL_EV_MAIL]),
            ATTR_UNUM_OPT(ANVIL_ATTR_RCPT, &n[1 + ANVIL_EV_RCPT]),
            ATTR_UNUM_OPT(ANVIL_ATTR_NEWTLS, &n[1 + ANVIL_EV_NEWTLS]),
            ATTR_UNUM_OPT(ANVIL_ATTR_AUTH, &n[1 + ANVIL_EV_AUTH]),
            ATTR_UNUM_OPT(ANVIL_ATTR_AUTH_FAIL, &n[1 + ANVIL_EV_AUTH_FAIL]), ATTR_END);
        if (r >= 0)
            break;
        saved = errno;
        vstr_sprintf(a->why, "%s", attr_stream_why(a->stream));
        reused = a->answered;
        anvil_clnt_close(a);
        /* A connection that worked may only be stale (anvil was restarted):
           one fresh try. A timeout already spent the time we allow. */
        if (!reused || saved == ETIMEDOUT)
            break;
    }
    if (r < 0) {
        anvil_clnt_fail(a, now);
        return -1;
    }
    a->answered = 1;
    if (status != ANVIL_STAT_OK) {
        /* The service works; only this request was refused. */
        vstr_sprintf(a->why, "request \"%s\" refused: %llu %s", request, status,
                     vstr_str(a->reason));
        anvil_clnt_warn(a, now);
        return -1;
    }
    a->down_until = 0;
    if (out) {
        out->count = anvil_clnt_clamp(n[0]);
        for (int i = 0; i < ANVIL_EV_COUNT; i++)
            out->rate[i] = anvil_clnt_clamp(n[1 + i]);
    }
    return 0;
}

/* anvil_clnt_absent - did the last failed call find no server listening at all */
int anvil_clnt_absent(const ANVIL_CLNT *a)
{
    return a->absent;
}

int anvil_clnt_connect(ANVIL_CLNT *a, const char *service, const char *addr, ANVIL_COUNTS *out)
{
    return anvil_clnt_query(a, ANVIL_REQ_CONNECT, service, addr, out);
}

int anvil_clnt_disconnect(ANVIL_CLNT *a, const char *service, const char *addr)
{
    return anvil_clnt_query(a, ANVIL_REQ_DISCONNECT, service, addr, NULL);
}

int anvil_clnt_mail(ANVIL_CLNT *a, const char *service, const char *addr, ANVIL_COUNTS *out)
{
    return anvil_clnt_query(a, ANVIL_REQ_MAIL, service, addr, out);
}

int anvil_clnt_rcpt(ANVIL_CLNT *a, const char *service, const char *addr, ANVIL_COUNTS *out)
{
    return anvil_clnt_query(a, ANVIL_REQ_RCPT, service, addr, out);
}

int anvil_clnt_newtls(ANVIL_CLNT *a, const char *service, const char *addr, ANVIL_COUNTS *out)
{
    return anvil_clnt_query(a, ANVIL_REQ_NEWTLS, service, addr, out);
}

int anvil_clnt_auth(ANVIL_CLNT *a, const char *service, const char *addr, ANVIL_COUNTS *out)
{
    return anvil_clnt_query(a, ANVIL_REQ_AUTH, service, addr, out);
}

int anvil_clnt_auth_fail(ANVIL_CLNT *a, const char *service, const char *addr, ANVIL_COUNTS *out)
{
    return anvil_clnt_query(a, ANVIL_REQ_AUTH_FAIL, service, addr, out);
}

int anvil_clnt_lookup(ANVIL_CLNT *a, const char *service, const char *addr, ANVIL_COUNTS *out)
{
    return anvil_clnt_query(a, ANVIL_REQ_LOOKUP, service, addr, out);
}
