/*
 * sasl_dovecot - the "dovecot" SASL backend: Dovecot's authentication
 * client protocol (version 1) over a UNIX socket (smtpd_sasl_path).
 *
 * PROTOCOL (lines end in LF, fields are separated by TAB)
 *   C: VERSION 1 1            C: CPID pid
 *   S: VERSION 1 n   S: MECH name flags...   S: SPID/CUID/COOKIE ...  S: DONE
 *   C: AUTH id mech service=smtp nologin lip= rip= lport= rport= [secured] [resp=b64]
 *   S: CONT id b64  |  OK id user=name ...  |  FAIL id [reason=text] [temp] ...
 *   C: CONT id b64
 * resp= comes last: Dovecot ignores what follows it. Values Dovecot sends
 * may use its \001 escapes; they are undone before use.
 *
 * CONNECTION
 * One connection per process, shared by every session: requests carry an
 * id and replies are matched by it. The connection is made when first
 * needed and again after it fails. The mechanism list must be known for
 * EHLO before any AUTH: the first sasl_server_mechs() call therefore
 * connects synchronously, waiting at most DC_SYNC_WAIT_MS for Dovecot's
 * handshake (a UNIX socket on the same host answers in microseconds); if
 * that fails, no AUTH is offered and the next attempt waits DC_RETRY_SECS.
 * Later connections (for AUTH) are made asynchronously on the event loop;
 * the last known mechanism list stays in use meanwhile.
 *
 * LIMITS
 * Lines are at most DC_LINE_MAX octets (Dovecot's own limit, 16384); a
 * longer line from Dovecot drops the connection, a longer request is
 * refused. Every request has smtpd_sasl_backend_timeout to be answered
 * (then SASL_TEMPFAIL; a late reply is ignored).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "sasl/sasl_impl.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/strutil.h"
#include "util/vstr.h"

#define DC_LINE_MAX 16384    /* Dovecot's AUTH_CLIENT_MAX_LINE_LENGTH */
#define DC_SYNC_WAIT_MS 2000 /* first handshake, done synchronously, at most */
#define DC_RETRY_SECS 5      /* after a failed synchronous connect */
#define DC_PROTO_MAJOR 1
#define DC_PROTO_MINOR 1

enum dc_state { DC_DOWN, DC_HANDSHAKE, DC_READY };

typedef struct DC_SESS DC_SESS;

typedef struct DC_SERVER {
    struct event_base *base;
    char *path;
    char *service;
    long timeout;
    enum dc_state state;
    struct bufferevent *bev;
    int fd; /* the socket under bev (closed by us: at once, not by a finalizer) */
    struct event *hs_timer;
    unsigned next_id;
    int version_ok;
    ARGV *mech_names; /* the list in use */
    unsigned *mech_props;
    unsigned generation;
    int have_mechs;
    ARGV *new_names; /* the list a handshake is building */
    unsigned *new_props;
    time_t retry_at;
    DC_SESS *head; /* every live session */
    DC_SESS *tail;
} DC_SERVER;

struct DC_SESS {
    DC_SERVER *dc;
    SASL_SESS *sess;
    unsigned id;  /* the request at Dovecot; 0 when there is none */
    VSTR *queued; /* AUTH arguments after the id, until the connection is ready */
    int waiting;  /* a reply is due */
    int lost;     /* the connection went away mid-exchange */
    struct event *timer;
    DC_SESS *prev;
    DC_SESS *next;
};

static void dc_disconnect(DC_SERVER *dc, const char *why);

/* ---- Helpers ---- */

/* dc_unescape - undo Dovecot's \001 escapes in place (NUL becomes '?') */
static char *dc_unescape(char *s)
{
    char *out = s;

    for (char *in = s; *in; in++) {
        if (*in != '\001' || in[1] == 0) {
            *out++ = *in;
            continue;
        }
        switch (*++in) {
        case '0': *out++ = '?'; break;
        case '1': *out++ = '\001'; break;
        case 't': *out++ = '\t'; break;
        case 'r': *out++ = '\r'; break;
        case 'n': *out++ = '\n'; break;
        default: *out++ = *in; break;
        }
    }
    *out = 0;
    return s;
}

/* dc_value_ok - a value we may put in a request without escaping */
static int dc_value_ok(const char *s)
{
    if (s == NULL || *s == 0 || strlen(s) > 255)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

/* dc_mech_name_ok - RFC 4422 3.1: 1..20 of A-Z 0-9 - _ */
static int dc_mech_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > SASL_MECH_NAME_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return 0;
    return 1;
}

/* ---- Session bookkeeping ---- */

/* dc_sess_find - the session waiting for request id */
static DC_SESS *dc_sess_find(DC_SERVER *dc, unsigned id)
{
    for (DC_SESS *ds = dc->head; ds != NULL; ds = ds->next)
        if (ds->id == id && id != 0)
            return ds;
    return NULL;
}

/* dc_sess_result - end the wait with a result */
static void dc_sess_result(DC_SESS *ds, enum sasl_result result, const char *text)
{
    ds->waiting = 0;
    evtimer_del(ds->timer);
    vstr_free(ds->queued);
    ds->queued = NULL;
    if (result != SASL_CONTINUE)
        ds->id = 0;
    sasl_sess_post(ds->sess, result, text);
}

/* dc_sess_timeout - Dovecot did not answer in time */
static void dc_sess_timeout(evutil_socket_t fd, short what, void *context)
{
    DC_SESS *ds = context;

    (void)fd;
    (void)what;
    msg_warn("SASL: no answer from the Dovecot auth server %s within %lds", ds->dc->path,
             ds->dc->timeout);
    dc_sess_result(ds, SASL_TEMPFAIL, "timeout waiting for the authentication server");
}

/* dc_sess_wait - a reply is now due */
static void dc_sess_wait(DC_SESS *ds)
{
    struct timeval tv = {ds->dc->timeout, 0};

    ds->waiting = 1;
    evtimer_add(ds->timer, &tv);
}

/* dc_send_auth - write the AUTH request of ds */
static void dc_send_auth(DC_SERVER *dc, DC_SESS *ds)
{
    if (++dc->next_id == 0)
        dc->next_id = 1;
    ds->id = dc->next_id;
    evbuffer_add_printf(bufferevent_get_output(dc->bev), "AUTH\t%u\t%s\n", ds->id,
                        vstr_str(ds->queued));
    vstr_free(ds->queued);
    ds->queued = NULL;
}

/* ---- Reading from Dovecot ---- */

/* dc_handshake_line - one line before DONE; -1 on a protocol error */
static int dc_handshake_line(DC_SERVER *dc, char *line)
{
    ARGV *f = argv_split(line, "\t");
    int ret = 0;

    if (f->argc == 0) {
        /* empty line: ignore */
    } else if (strcmp(f->argv[0], "VERSION") == 0) {
        long major;

        if (f->argc < 2 || parse_long(f->argv[1], 0, 1000000, &major) < 0 ||
            major != DC_PROTO_MAJOR) {
            msg_warn("SASL: Dovecot auth server %s speaks protocol version %s, not %d", dc->path,
                     f->argc >= 2 ? f->argv[1] : "(none)", DC_PROTO_MAJOR);
            ret = -1;
        } else {
            dc->version_ok = 1;
        }
    } else if (strcmp(f->argv[0], "MECH") == 0 && f->argc >= 2) {
        unsigned props = 0;

        for (size_t i = 2; i < f->argc; i++)
            props |= sasl_mech_props_word(f->argv[i]);
        if (!dc_mech_name_ok(f->argv[1])) {
            msg_warn("SASL: Dovecot auth server %s: ignoring mechanism name \"%.30s\"", dc->path,
                     sasl_printable(f->argv[1]));
        } else if (!(props & SASL_SEC_PRIVATE) && dc->new_names->argc < SASL_MECH_COUNT_MAX) {
            dc->new_props[dc->new_names->argc] = props;
            argv_add(dc->new_names, f->argv[1], (char *)NULL);
        }
    } else if (strcmp(f->argv[0], "DONE") == 0) {
        if (!dc->version_ok) {
            msg_warn("SASL: Dovecot auth server %s: handshake without VERSION", dc->path);
            ret = -1;
        } else {
            argv_free(dc->mech_names);
            myfree(dc->mech_props);
            dc->mech_names = dc->new_names;
            dc->mech_props = dc->new_props;
            dc->new_names = NULL;
            dc->new_props = NULL;
            dc->have_mechs = 1;
            dc->generation++;
            dc->state = DC_READY;
        }
    }
    /* SPID, CUID, COOKIE and anything unknown: not needed for SMTP AUTH. */
    argv_free(f);
    return ret;
}

/* dc_reply_line - OK, CONT or FAIL for a request */
static void dc_reply_line(DC_SERVER *dc, char *line)
{
    char *cmd = line;
    char *id_text;
    char *rest;
    DC_SESS *ds;
    long id;

    if ((id_text = strchr(cmd, '\t')) == NULL)
        return;
    *id_text++ = 0;
    if ((rest = strchr(id_text, '\t')) != NULL)
        *rest++ = 0;
    if (strcmp(cmd, "OK") != 0 && strcmp(cmd, "CONT") != 0 && strcmp(cmd, "FAIL") != 0)
        return;
    /* A reply to a request that timed out or was abandoned is ignored. */
    if (parse_long(id_text, 1, 0xffffffffL, &id) < 0 ||
        (ds = dc_sess_find(dc, (unsigned)id)) == NULL || !ds->waiting)
        return;

    if (strcmp(cmd, "CONT") == 0) {
        const char *data = rest ? rest : "";

        /* The challenge goes to the client in a 334 reply: it must be base64. */
        if (!sasl_b64_valid(data, strlen(data)) || strlen(data) > DC_LINE_MAX) {
            msg_warn("SASL: Dovecot auth server %s sent a malformed challenge", dc->path);
            dc_sess_result(ds, SASL_TEMPFAIL, "malformed answer from the authentication server");
            return;
        }
        dc_sess_result(ds, SASL_CONTINUE, data);
        return;
    }

    /* OK and FAIL: optional name=value parameters. */
    char *user = NULL;
    char *reason = NULL;
    int temp = 0;
    ARGV *params = argv_split(rest ? rest : "", "\t");

    for (size_t i = 0; i < params->argc; i++) {
        char *p = params->argv[i];

        if (strncmp(p, "user=", 5) == 0)
            user = sasl_printable(dc_unescape(p + 5));
        else if (strncmp(p, "reason=", 7) == 0)
            reason = sasl_printable(dc_unescape(p + 7));
        else if (strcmp(p, "temp") == 0 || strcmp(p, "code=temp_fail") == 0)
            temp = 1;
    }
    if (strcmp(cmd, "OK") == 0) {
        if (user == NULL || *user == 0) {
            msg_warn("SASL: Dovecot auth server %s accepted a login without naming the user",
                     dc->path);
            dc_sess_result(ds, SASL_TEMPFAIL, "the authentication server did not name the user");
        } else {
            dc_sess_result(ds, SASL_OK, user);
        }
    } else if (temp) {
        dc_sess_result(ds, SASL_TEMPFAIL, reason ? reason : "temporary authentication failure");
    } else {
        /* Postfix logs Dovecot's reason as it is, possibly empty. */
        dc_sess_result(ds, SASL_FAIL, reason ? reason : "");
    }
    argv_free(params);
}

/* dc_line - one line from Dovecot; -1 when the connection must go */
static int dc_line(DC_SERVER *dc, char *line)
{
    size_t len = strlen(line);

    if (len > 0 && line[len - 1] == '\r')
        line[len - 1] = 0;
    if (dc->state == DC_HANDSHAKE)
        return dc_handshake_line(dc, line);
    dc_reply_line(dc, line);
    return 0;
}

/* dc_flush_queue - after the handshake: send what waited for it */
static void dc_flush_queue(DC_SERVER *dc)
{
    for (DC_SESS *ds = dc->head; ds != NULL; ds = ds->next)
        if (ds->queued != NULL)
            dc_send_auth(dc, ds);
}

/* dc_read - lines from the socket */
static void dc_read(struct bufferevent *bev, void *context)
{
    DC_SERVER *dc = context;
    struct evbuffer *in = bufferevent_get_input(bev);

    while (dc->bev == bev) {
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
        enum dc_state before = dc->state;

        if (line == NULL) {
            if (evbuffer_get_length(in) > DC_LINE_MAX)
                dc_disconnect(dc, "line too long");
            return;
        }
        if (n > DC_LINE_MAX || memchr(line, 0, n) != NULL) {
            free(line);
            dc_disconnect(dc, n > DC_LINE_MAX ? "line too long" : "NUL in a line");
            return;
        }
        if (dc_line(dc, line) < 0) {
            free(line);
            dc_disconnect(dc, "protocol error");
            return;
        }
        free(line);
        if (before == DC_HANDSHAKE && dc->state == DC_READY) {
            evtimer_del(dc->hs_timer);
            dc_flush_queue(dc);
        }
    }
}

/* dc_event - the connection closed or failed */
static void dc_event(struct bufferevent *bev, short what, void *context)
{
    DC_SERVER *dc = context;

    (void)bev;
    if (what & BEV_EVENT_EOF)
        dc_disconnect(dc, "connection closed by the server");
    else if (what & BEV_EVENT_ERROR)
        dc_disconnect(dc, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* dc_hs_timeout - the handshake did not finish */
static void dc_hs_timeout(evutil_socket_t fd, short what, void *context)
{
    (void)fd;
    (void)what;
    dc_disconnect(context, "timeout during the handshake");
}

/* ---- Connecting ---- */

/* dc_socket - a non-blocking connected socket, or -1 with errno */
static int dc_socket(DC_SERVER *dc)
{
    struct sockaddr_un sun;
    int fd;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, dc->path); /* length checked at create */
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    /* On a UNIX socket connect() completes at once or fails (EAGAIN: backlog full). */
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* dc_attach - put a connected socket on the event loop */
static void dc_attach(DC_SERVER *dc, int fd)
{
    dc->fd = fd;
    dc->bev = bufferevent_socket_new(dc->base, fd, 0);
    if (dc->bev == NULL)
        msg_fatal("SASL: bufferevent_socket_new failed");
    bufferevent_setwatermark(dc->bev, EV_READ, 0, DC_LINE_MAX + 1024);
    bufferevent_setcb(dc->bev, dc_read, NULL, dc_event, dc);
    bufferevent_enable(dc->bev, EV_READ | EV_WRITE);
}

/* dc_handshake_begin - state for a new handshake */
static void dc_handshake_begin(DC_SERVER *dc)
{
    argv_free(dc->new_names);
    myfree(dc->new_props);
    dc->new_names = argv_alloc(8);
    dc->new_props = mycalloc(SASL_MECH_COUNT_MAX, sizeof(unsigned));
    dc->version_ok = 0;
    dc->state = DC_HANDSHAKE;
}

/* dc_connect_async - start a connection on the event loop; 0 or -1 */
static int dc_connect_async(DC_SERVER *dc)
{
    struct timeval tv = {dc->timeout, 0};
    int fd;

    if ((fd = dc_socket(dc)) < 0) {
        msg_warn("SASL: connect to Dovecot auth socket %s: %m", dc->path);
        return -1;
    }
    dc_handshake_begin(dc);
    dc_attach(dc, fd);
    evbuffer_add_printf(bufferevent_get_output(dc->bev), "VERSION\t%d\t%d\nCPID\t%ld\n",
                        DC_PROTO_MAJOR, DC_PROTO_MINOR, (long)getpid());
    evtimer_add(dc->hs_timer, &tv);
    return 0;
}

/* dc_ms_left - milliseconds until a CLOCK_MONOTONIC deadline */
static int dc_ms_left(const struct timespec *deadline)
{
    struct timespec now;
    long long ms;

    clock_gettime(CLOCK_MONOTONIC, &now);
    ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
         (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : (int)ms;
}

/* dc_connect_sync - connect and finish the handshake before returning, so
   that the first EHLO can list the mechanisms; 0 or -1 */
static int dc_connect_sync(DC_SERVER *dc)
{
    struct timespec deadline;
    long wait_ms = dc->timeout * 1000 < DC_SYNC_WAIT_MS ? dc->timeout * 1000 : DC_SYNC_WAIT_MS;
    VSTR *buf = vstr_alloc(1024);
    char hello[64];
    int fd;
    const char *why = NULL;

    if ((fd = dc_socket(dc)) < 0) {
        msg_warn("SASL: connect to Dovecot auth socket %s: %m", dc->path);
        vstr_free(buf);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += wait_ms / 1000;
    deadline.tv_nsec += (wait_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    dc_handshake_begin(dc);
    snprintf(hello, sizeof(hello), "VERSION\t%d\t%d\nCPID\t%ld\n", DC_PROTO_MAJOR, DC_PROTO_MINOR,
             (long)getpid());
    if (timed_write_full(fd, hello, strlen(hello), dc_ms_left(&deadline)) < 0)
        why = "cannot send the handshake";
    while (why == NULL && dc->state == DC_HANDSHAKE) {
        char chunk[4096];
        char *nl;
        ssize_t n = timed_read(fd, chunk, sizeof(chunk), dc_ms_left(&deadline));

        if (n < 0) {
            why = errno == ETIMEDOUT ? "timeout during the handshake" : "read error";
            break;
        }
        if (n == 0) {
            why = "connection closed during the handshake";
            break;
        }
        vstr_ncat(buf, chunk, (size_t)n);
        while (why == NULL && dc->state == DC_HANDSHAKE &&
               (nl = memchr(vstr_str(buf), '\n', vstr_len(buf))) != NULL) {
            size_t line_len = (size_t)(nl - vstr_str(buf));
            char *line = mystrndup(vstr_str(buf), line_len);

            if (line_len > DC_LINE_MAX || strlen(line) != line_len)
                why = "malformed line";
            else if (dc_line(dc, line) < 0)
                why = "protocol error";
            myfree(line);
            memmove(vstr_str(buf), nl + 1, vstr_len(buf) - line_len - 1);
            vstr_truncate(buf, vstr_len(buf) - line_len - 1);
        }
        if (why == NULL && vstr_len(buf) > DC_LINE_MAX)
            why = "line too long";
    }
    if (why != NULL) {
        msg_warn("SASL: Dovecot auth socket %s: %s", dc->path, why);
        close(fd);
        dc->state = DC_DOWN;
        vstr_free(buf);
        return -1;
    }
    /* Dovecot says nothing more until asked; anything else is dropped. */
    vstr_free(buf);
    dc_attach(dc, fd);
    return 0;
}

/* dc_close - free the bufferevent and close the socket now (libevent would
   close it only when the loop runs its finalizers) */
static void dc_close(DC_SERVER *dc)
{
    if (dc->bev != NULL) {
        bufferevent_free(dc->bev);
        dc->bev = NULL;
        close(dc->fd);
        dc->fd = -1;
    }
}

/* dc_disconnect - drop the connection; requests waiting for it fail for now */
static void dc_disconnect(DC_SERVER *dc, const char *why)
{
    int was_ready = dc->state == DC_READY;
    int affected = 0;

    dc_close(dc);
    evtimer_del(dc->hs_timer);
    dc->state = DC_DOWN;
    for (DC_SESS *ds = dc->head; ds != NULL; ds = ds->next) {
        if (ds->waiting) {
            affected++;
            dc_sess_result(ds, SASL_TEMPFAIL,
                           was_ready ? "connection to the authentication server lost"
                                     : "cannot connect to the authentication server");
        } else if (ds->id != 0) {
            ds->lost = 1;
            ds->id = 0;
        }
    }
    if (affected || !was_ready)
        msg_warn("SASL: Dovecot auth socket %s: %s", dc->path, why);
}

/* ---- Backend interface ---- */

/* dc_mechs - the mechanisms Dovecot announced (first call: connect now) */
static void dc_mechs(void *be, const ARGV **names, const unsigned **props, unsigned *generation)
{
    DC_SERVER *dc = be;

    if (!dc->have_mechs && dc->state == DC_DOWN && time(NULL) >= dc->retry_at) {
        if (dc_connect_sync(dc) < 0)
            dc->retry_at = time(NULL) + DC_RETRY_SECS;
    }
    *names = dc->mech_names;
    *props = dc->mech_props;
    *generation = dc->generation;
}

/* dc_start - send AUTH (after connecting if needed) */
static void *dc_start(void *be, SASL_SESS *sess, const char *mech, const char *initial,
                      const VSTR *decoded)
{
    DC_SERVER *dc = be;
    DC_SESS *ds = mycalloc(1, sizeof(*ds));
    const SASL_CLIENT_INFO *info = sasl_sess_info(sess);
    VSTR *args = vstr_alloc(256);

    (void)decoded;
    ds->dc = dc;
    ds->sess = sess;
    ds->timer = evtimer_new(dc->base, dc_sess_timeout, ds);
    ds->prev = dc->tail;
    if (dc->tail)
        dc->tail->next = ds;
    else
        dc->head = ds;
    dc->tail = ds;

    vstr_sprintf(args, "%s\tservice=%s\tnologin", mech, dc->service);
    if (dc_value_ok(info->local_addr))
        vstr_sprintf_append(args, "\tlip=%s", info->local_addr);
    if (dc_value_ok(info->client_addr))
        vstr_sprintf_append(args, "\trip=%s", info->client_addr);
    if (dc_value_ok(info->local_port))
        vstr_sprintf_append(args, "\tlport=%s", info->local_port);
    if (dc_value_ok(info->client_port))
        vstr_sprintf_append(args, "\trport=%s", info->client_port);
    if (info->tls_active)
        vstr_cat(args, "\tsecured");
    /* resp= last: Dovecot ignores what follows it. The text is checked base64. */
    if (initial != NULL)
        vstr_sprintf_append(args, "\tresp=%s", initial);
    if (vstr_len(args) + 32 > DC_LINE_MAX) {
        vstr_free(args);
        sasl_sess_post(sess, SASL_BADPROT, "response too long for the authentication server");
        return ds;
    }
    ds->queued = args;
    dc_sess_wait(ds);
    if (dc->state == DC_DOWN && dc_connect_async(dc) < 0) {
        dc_sess_result(ds, SASL_TEMPFAIL, "cannot connect to the authentication server");
        return ds;
    }
    if (dc->state == DC_READY)
        dc_send_auth(dc, ds);
    return ds;
}

/* dc_step - relay a response */
static void dc_step(void *be, void *bsess, const char *raw, size_t len, const VSTR *decoded)
{
    DC_SERVER *dc = be;
    DC_SESS *ds = bsess;

    (void)decoded;
    if (ds->lost || ds->id == 0 || dc->state != DC_READY) {
        sasl_sess_post(ds->sess, SASL_TEMPFAIL, "connection to the authentication server lost");
        return;
    }
    if (len + 32 > DC_LINE_MAX) {
        sasl_sess_post(ds->sess, SASL_BADPROT, "response too long for the authentication server");
        return;
    }
    evbuffer_add_printf(bufferevent_get_output(dc->bev), "CONT\t%u\t%.*s\n", ds->id, (int)len, raw);
    dc_sess_wait(ds);
}

/* dc_end - forget the session (Dovecot drops an unfinished request itself) */
static void dc_end(void *be, void *bsess)
{
    DC_SERVER *dc = be;
    DC_SESS *ds = bsess;

    if (ds->prev)
        ds->prev->next = ds->next;
    else
        dc->head = ds->next;
    if (ds->next)
        ds->next->prev = ds->prev;
    else
        dc->tail = ds->prev;
    event_free(ds->timer);
    vstr_free(ds->queued);
    myfree(ds);
}

/* dc_free - close the connection */
static void dc_free(void *be)
{
    DC_SERVER *dc = be;

    dc_close(dc);
    if (dc->hs_timer != NULL)
        event_free(dc->hs_timer);
    argv_free(dc->mech_names);
    myfree(dc->mech_props);
    argv_free(dc->new_names);
    myfree(dc->new_props);
    myfree(dc->path);
    myfree(dc->service);
    myfree(dc);
}

/* dc_create - check the settings; the connection comes later */
static void *dc_create(SASL_SERVER *srv, const SASL_SERVER_ARGS *args, VSTR *why)
{
    const char *path = args->path ? args->path : "";
    DC_SERVER *dc;

    if (strncmp(path, "unix:", 5) == 0)
        path += 5;
    if (strncmp(path, "inet:", 5) == 0) {
        vstr_sprintf(why, "smtpd_sasl_path = %s: only UNIX sockets are supported for dovecot",
                     path);
        return NULL;
    }
    if (*path == 0 || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        vstr_sprintf(why, "smtpd_sasl_path: \"%s\" is not a usable UNIX socket path", path);
        return NULL;
    }
    if (!dc_value_ok(args->service ? args->service : "smtp")) {
        vstr_sprintf(why, "smtpd_sasl_service: bad service name");
        return NULL;
    }
    dc = mycalloc(1, sizeof(*dc));
    dc->base = sasl_server_base(srv);
    dc->path = mystrdup(path);
    dc->service = mystrdup(args->service ? args->service : "smtp");
    dc->timeout = args->timeout > 0 ? args->timeout : 10;
    dc->state = DC_DOWN;
    dc->fd = -1;
    dc->mech_names = argv_alloc(1);
    dc->mech_props = mycalloc(1, sizeof(unsigned));
    dc->hs_timer = evtimer_new(dc->base, dc_hs_timeout, dc);
    return dc;
}

const SASL_BACKEND sasl_dovecot_backend = {
    .type = "dovecot",
    .create = dc_create,
    .mechs = dc_mechs,
    .start = dc_start,
    .step = dc_step,
    .end = dc_end,
    .free = dc_free,
};
