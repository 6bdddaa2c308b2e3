/*
 * smtpd - the Postern SMTP server: main(), configuration, and the event
 * plumbing of a session. The protocol itself is in smtpd_proto.c (see
 * smtpd.h for the module map and man/smtpd.8 for the behaviour).
 *
 * I/O model. Each session owns a bufferevent on the client socket. Input is
 * kept to SMTPD_IN_HIGH octets (libevent stops reading at the watermark);
 * smtpd_input() takes whole command lines, or content octets while DATA or
 * BDAT runs, and hands them to the state machine. Replies are appended to
 * the output buffer and leave when the loop gets to them, so replies to a
 * PIPELINING batch go out together. A session that must wait sets a bit in
 * s->block and stops reading: waiting for cleanup's reply, for cleanup's
 * socket to drain (backpressure: content is never buffered without bound),
 * for the client to read replies, or for the error delay timer. Every wait
 * is bounded: cleanup replies by ipc_timeout, client reads and writes by
 * smtpd_timeout, the whole session by smtpd_session_time_limit.
 *
 * Lifetime. Callbacks may decide that a session is over; it is then marked
 * dead and freed when the outermost callback returns (smtpd_leave), so no
 * code ever touches a freed session. A session that ends with a last reply
 * (QUIT, a limit, a timeout) closes gracefully once that reply has left:
 * see "Graceful close" below.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/mail_server.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"

#include "smtpd.h"
#include "smtpd_sasl.h"
#include "smtpd_anvil.h"
#include "smtpd_tls.h"

#define SMTPD_FD_RESERVE 64      /* descriptors kept for logs, tables, listeners */
#define SMTPD_FD_PER_SESSION 2   /* the client and, during a transaction, cleanup */
#define SMTPD_NOFILE_MAX 1048576 /* raise the soft descriptor limit at most to this */
#define SMTPD_LINGER_CHUNK 4096  /* one read of input to throw away (on the stack) */
#define SMTPD_LINGER_BURST 16    /* reads per wakeup: then other sessions get their turn */

static SMTPD_CONFIG smtpd_config;

/*
 * Output.
 */

/* smtpd_reply_raw - queue reply text that is already formatted (CRLF included) */
void smtpd_reply_raw(SMTPD_SESSION *s, const char *text, size_t len)
{
    if (s->dead || s->client == NULL)
        return;
    if (bufferevent_write(s->client, text, len) < 0)
        msg_warn("cannot queue a reply for %s", s->peer.namaddr);
}

/* smtpd_reply - format and queue "code dsn text"; multi-line text splits at '\n' */
void smtpd_reply(SMTPD_SESSION *s, int code, const char *dsn, const char *fmt, ...)
{
    SMTPD_CONFIG *cfg = s->cfg;
    va_list ap;

    vstr_reset(cfg->text);
    va_start(ap, fmt);
    vstr_vsprintf_append(cfg->text, fmt, ap);
    va_end(ap);
    if (smtp_cmd_reply_format(cfg->reply, code, dsn, vstr_str(cfg->text), 0) < 0)
        msg_panic("smtpd_reply: bad reply code %d or status %s", code, dsn ? dsn : "(none)");
    smtpd_reply_raw(s, vstr_str(cfg->reply), vstr_len(cfg->reply));
}

/* smtpd_reply_smtp - queue a suggested reply, with an optional ": suffix" */
void smtpd_reply_smtp(SMTPD_SESSION *s, const SMTP_REPLY *r, const char *suffix)
{
    if (suffix && *suffix)
        smtpd_reply(s, r->code, r->dsn, "%s: %s", r->text, suffix);
    else
        smtpd_reply(s, r->code, r->dsn, "%s", r->text);
}

/* smtpd_printable - client input made safe for a log line (at most SMTPD_LOG_INPUT_MAX) */
const char *smtpd_printable(const char *in, size_t len, VSTR *out)
{
    vstr_reset(out);
    for (size_t i = 0; i < len && vstr_len(out) < SMTPD_LOG_INPUT_MAX; i++) {
        unsigned char ch = (unsigned char)in[i];

        if (ch == '\r' && i + 1 < len && in[i + 1] == '\n')
            vstr_cat(out, "<CR><LF>"), i++;
        else if (ch < 0x20 || ch == 0x7f)
            vstr_sprintf_append(out, "\\x%02x", ch);
        else
            vstr_addch(out, (char)ch);
    }
    return vstr_str(out);
}

/* smtpd_log_reject - Postfix's "QUEUEID: reject: CMD from NAME[ADDR]: reply; from=..." */
void smtpd_log_reject(SMTPD_SESSION *s, const char *cmd, int code, const char *dsn,
                      const char *text, const char *rcpt)
{
    VSTR *line = s->cfg->tmp;

    vstr_sprintf(line, "%s: reject: %s from %s: %d %s%s%s",
                 s->txn.queue_id[0] ? s->txn.queue_id : "NOQUEUE", cmd, s->peer.namaddr, code,
                 dsn ? dsn : "", dsn ? " " : "", text);
    if (s->txn.sender)
        vstr_sprintf_append(line, "; from=<%s>", s->txn.sender);
    if (rcpt)
        vstr_sprintf_append(line, "%sto=<%s>", s->txn.sender ? " " : "; ", rcpt);
    vstr_sprintf_append(line, "%sproto=%s", s->txn.sender || rcpt ? " " : "; ",
                        s->protocol ? s->protocol : SMTPD_PROTO_SMTP);
    if (s->helo_name)
        vstr_sprintf_append(line, " helo=<%s>", s->helo_name);
    msg_info("%s", vstr_str(line));
}

/*
 * Flow control.
 */

/* smtpd_update_reading - read from the client only when input can be processed */
static void smtpd_update_reading(SMTPD_SESSION *s)
{
    if (s->dead || s->client == NULL)
        return;
    if (s->block != 0 || s->state == SMTPD_ST_CLOSING)
        bufferevent_disable(s->client, EV_READ);
    else
        bufferevent_enable(s->client, EV_READ);
}

/* smtpd_block - stop processing input for a reason (SMTPD_BLOCK_*) */
void smtpd_block(SMTPD_SESSION *s, int why)
{
    s->block |= why;
    smtpd_update_reading(s);
}

static void smtpd_input(SMTPD_SESSION *s);

/* smtpd_unblock - that reason is gone; go on with buffered input */
void smtpd_unblock(SMTPD_SESSION *s, int why)
{
    s->block &= ~why;
    if (s->block == 0)
        smtpd_resume(s);
}

/* smtpd_resume - process what is buffered, then read again */
void smtpd_resume(SMTPD_SESSION *s)
{
    smtpd_input(s);
}

/* smtpd_input_len - octets of client input not yet processed */
size_t smtpd_input_len(SMTPD_SESSION *s)
{
    return s->client ? evbuffer_get_length(bufferevent_get_input(s->client)) : 0;
}

/* smtpd_input_peek - the first len buffered input octets, contiguous (for logs) */
const char *smtpd_input_peek(SMTPD_SESSION *s, size_t len)
{
    struct evbuffer *in = bufferevent_get_input(s->client);

    if (len > evbuffer_get_length(in))
        len = evbuffer_get_length(in);
    return (const char *)evbuffer_pullup(in, (ssize_t)len);
}

/* smtpd_close_after_reply - the session ends once queued replies are sent */
void smtpd_close_after_reply(SMTPD_SESSION *s)
{
    s->state = SMTPD_ST_CLOSING;
    smtpd_update_reading(s);
    if (s->client == NULL)
        s->dead = SMTPD_END_CLOSE;
    else if (evbuffer_get_length(bufferevent_get_output(s->client)) == 0 && !s->dead)
        s->dead = SMTPD_END_LINGER;
}

/*
 * Input.
 */

/* smtpd_find_eol - offset of the first LF within the first max octets, or -1 */
static ssize_t smtpd_find_eol(struct evbuffer *in, size_t max)
{
    struct evbuffer_ptr end;
    struct evbuffer_ptr p;
    size_t len = evbuffer_get_length(in);

    if (len > max)
        len = max;
    if (evbuffer_ptr_set(in, &end, len, EVBUFFER_PTR_SET) < 0)
        return -1;
    p = evbuffer_search_range(in, "\n", 1, NULL, &end);
    return p.pos;
}

/* smtpd_sleep_cb - the error delay is over */
static void smtpd_sleep_cb(evutil_socket_t fd, short what, void *ctx);

/* smtpd_error_delay - tarpit a client past smtpd_soft_error_limit; 1 when delaying */
static int smtpd_error_delay(SMTPD_SESSION *s)
{
    struct timeval tv = {.tv_sec = s->cfg->error_sleep_time};

    if (s->slept || s->cfg->error_sleep_time <= 0 || s->error_count < s->cfg->soft_error_limit)
        return 0;
    if (s->sleep_timer == NULL)
        s->sleep_timer = evtimer_new(s->base, smtpd_sleep_cb, s);
    evtimer_add(s->sleep_timer, &tv);
    smtpd_block(s, SMTPD_BLOCK_SLEEP);
    return 1;
}

/* smtpd_line_max - the longest line taken now: AUTH lines may be longer */
static size_t smtpd_line_max(SMTPD_SESSION *s, struct evbuffer *in)
{
    size_t peek = evbuffer_get_length(in) < 5 ? evbuffer_get_length(in) : 5;
    size_t sasl = smtpd_sasl_line_limit(s, (const char *)evbuffer_pullup(in, (ssize_t)peek), peek);

    return sasl > SMTPD_PATH_LINE_MAX ? sasl : SMTPD_PATH_LINE_MAX;
}

/* smtpd_command_line - take one command line if a whole one is buffered; 0 when none */
static int smtpd_command_line(SMTPD_SESSION *s, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    size_t max;
    ssize_t eol;

    if (len == 0)
        return 0;
    if (s->skip_line) {
        /* The rest of an overlong line: discard it, answer once at its end. */
        if ((eol = smtpd_find_eol(in, len)) < 0) {
            evbuffer_drain(in, len);
            return 0;
        }
        evbuffer_drain(in, (size_t)eol + 1);
        s->skip_line = 0;
        smtpd_proto_line_error(s, SMTP_CMD_LINE_TOO_LONG);
        return 1;
    }
    max = smtpd_line_max(s, in);
    if ((eol = smtpd_find_eol(in, max)) < 0) {
        if (len <= max)
            return 0;
        /* Too long: drop it through its end (never treat its tail as a
           command of its own), keep what follows it. */
        if ((eol = smtpd_find_eol(in, len)) >= 0) {
            evbuffer_drain(in, (size_t)eol + 1);
            smtpd_proto_line_error(s, SMTP_CMD_LINE_TOO_LONG);
            return 1;
        }
        evbuffer_drain(in, len);
        s->skip_line = 1;
        return 0;
    }
    if (smtpd_error_delay(s))
        return 0;
    s->slept = 0;
    len = (size_t)eol + 1;
    if (vstr_ncpy(s->cfg->line, evbuffer_pullup(in, (ssize_t)len), len) < 0)
        msg_panic("smtpd_command_line: line of %zu octets over the buffer limit", len);
    evbuffer_drain(in, len);
    smtpd_proto_command(s, vstr_str(s->cfg->line), len);
    return 1;
}

/* smtpd_content - feed buffered content to DATA/BDAT/skip; 0 when nothing was buffered */
static int smtpd_content(SMTPD_SESSION *s, struct evbuffer *in)
{
    struct evbuffer_iovec v;
    size_t used = 0;

    if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
        return 0;
    smtpd_data_input(s, v.iov_base, v.iov_len, &used);
    evbuffer_drain(in, used);
    return 1;
}

/* smtpd_input - process buffered input until it runs out or the session must wait */
static void smtpd_input(SMTPD_SESSION *s)
{
    struct evbuffer *in;

    if (s->client == NULL)
        return;
    in = bufferevent_get_input(s->client);
    while (!s->dead && s->block == 0 && s->state != SMTPD_ST_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(s->client)) > SMTPD_OUT_HIGH) {
            /* A client that sends but does not read: wait until it reads. */
            smtpd_block(s, SMTPD_BLOCK_OUTPUT);
            break;
        }
        if (s->state == SMTPD_ST_DATA || s->state == SMTPD_ST_BDAT || s->state == SMTPD_ST_SKIP) {
            /* A zero-length chunk completes without input. */
            if (s->state != SMTPD_ST_DATA && smtpd_data_input(s, NULL, 0, NULL))
                continue;
            if (!smtpd_content(s, in))
                break;
        } else if (!smtpd_command_line(s, in)) {
            break;
        }
    }
    smtpd_update_reading(s);
}

/*
 * Session life.
 */

/* smtpd_stat_names - the "disconnect from" keys, in Postfix's order */
static const char *const smtpd_stat_names[SMTPD_STAT_COUNT] = {
    [SMTPD_STAT_HELO] = "helo",         [SMTPD_STAT_EHLO] = "ehlo",
    [SMTPD_STAT_STARTTLS] = "starttls", [SMTPD_STAT_AUTH] = "auth",
    [SMTPD_STAT_MAIL] = "mail",         [SMTPD_STAT_RCPT] = "rcpt",
    [SMTPD_STAT_DATA] = "data",         [SMTPD_STAT_BDAT] = "bdat",
    [SMTPD_STAT_RSET] = "rset",         [SMTPD_STAT_NOOP] = "noop",
    [SMTPD_STAT_VRFY] = "vrfy",         [SMTPD_STAT_EXPN] = "expn",
    [SMTPD_STAT_HELP] = "help",         [SMTPD_STAT_ETRN] = "etrn",
    [SMTPD_STAT_QUIT] = "quit",         [SMTPD_STAT_UNKNOWN] = "unknown",
};

/* smtpd_log_disconnect - "disconnect from NAME[ADDR] ehlo=1 mail=1 ... commands=N" */
static void smtpd_log_disconnect(SMTPD_SESSION *s)
{
    VSTR *line = s->cfg->tmp;
    int total = 0, ok = 0;

    vstr_sprintf(line, "disconnect from %s", s->peer.namaddr);
    for (int i = 0; i < SMTPD_STAT_COUNT; i++) {
        if (s->stat_total[i] == 0)
            continue;
        total += s->stat_total[i];
        ok += s->stat_ok[i];
        if (s->stat_ok[i] == s->stat_total[i])
            vstr_sprintf_append(line, " %s=%d", smtpd_stat_names[i], s->stat_total[i]);
        else
            vstr_sprintf_append(line, " %s=%d/%d", smtpd_stat_names[i], s->stat_ok[i],
                                s->stat_total[i]);
    }
    if (ok == total)
        vstr_sprintf_append(line, " commands=%d", total);
    else
        vstr_sprintf_append(line, " commands=%d/%d", ok, total);
    msg_info("%s", vstr_str(line));
}

/* smtpd_session_release - the session is over: log it, give back its counts, free
   its buffers and its bufferevent (which closes the socket unless lingering holds
   a duplicate); safe to call again */
static void smtpd_session_release(SMTPD_SESSION *s)
{
    if (s->logged_connect) {
        smtpd_log_disconnect(s);
        s->logged_connect = 0;
    }
    smtpd_txn_reset(s);
    smtpd_sasl_reset(s);
    smtpd_tls_free(s); /* close_notify first, while the TLS connection is still there */
    if (s->client) {
        bufferevent_free(s->client);
        s->client = NULL;
    }
    if (s->session_timer) {
        event_free(s->session_timer);
        s->session_timer = NULL;
    }
    if (s->sleep_timer) {
        event_free(s->sleep_timer);
        s->sleep_timer = NULL;
    }
    smtpd_peer_resolve_cancel(&s->peer);
    smtpd_anvil_disconnect(s);
    myfree(s->helo_name);
    s->helo_name = NULL;
}

/* smtpd_session_free - release everything of a session, then tell the skeleton */
static void smtpd_session_free(SMTPD_SESSION *s)
{
    smtpd_session_release(s);
    if (s->linger.ev)
        event_free(s->linger.ev);
    if (s->linger.fd >= 0)
        close(s->linger.fd);
    myfree(s);
    /* Last: with no session left in a draining process this exits. */
    mail_server_session_done();
}

/*
 * Graceful close.
 *
 * close() on a socket with unread input makes the kernel send a reset
 * instead of a FIN, and a reset may make the client's kernel drop our last
 * reply (the 421 that says why, QUIT's 221) before the client has read it:
 * the client sees "connection reset" and no reply. That happens whenever a
 * client pipelines behind QUIT or keeps sending after a limit ended its
 * session. So once the last reply is in the kernel the session shuts down
 * its sending side (the client reads the reply, then end of file; over TLS
 * a close_notify comes first), then reads and throws away whatever the
 * client still sends, never acting on it, until the client closes,
 * smtpd_linger_time has passed or SMTPD_LINGER_MAX octets were read (a
 * close with input still unread then resets, but the client has had its
 * time). A client that closes after the reply, as after 221, ends this at
 * once. Everything else of the session is released (and logged) when
 * lingering starts, its connection counts too: a lingering client holds a
 * descriptor and an event, no buffer, and no slot of any client limit.
 */

/* smtpd_linger_discard - read and throw away client input; -1: stop lingering */
static int smtpd_linger_discard(SMTPD_SESSION *s)
{
    char buf[SMTPD_LINGER_CHUNK];
    ssize_t n;

    for (int i = 0; i < SMTPD_LINGER_BURST; i++) {
        if ((n = recv(s->linger.fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
            s->linger.discarded += (size_t)n;
            if (s->linger.discarded >= SMTPD_LINGER_MAX)
                return -1;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return -1; /* the client's end of file, or its reset */
        }
    }
    return 0; /* more is waiting: the loop comes back at once */
}

/* smtpd_linger_wait - wait for input until the deadline; -1 when it has passed */
static int smtpd_linger_wait(SMTPD_SESSION *s)
{
    struct timespec now;
    struct timeval tv;
    long long left;

    clock_gettime(CLOCK_MONOTONIC, &now);
    left = (long long)(s->linger.deadline.tv_sec - now.tv_sec) * 1000000 +
           (s->linger.deadline.tv_nsec - now.tv_nsec) / 1000;
    if (left <= 0)
        return -1;
    tv.tv_sec = (time_t)(left / 1000000);
    tv.tv_usec = (suseconds_t)(left % 1000000);
    event_add(s->linger.ev, &tv);
    return 0;
}

/* smtpd_linger_cb - client input, or smtpd_linger_time is over */
static void smtpd_linger_cb(evutil_socket_t fd, short what, void *ctx)
{
    SMTPD_SESSION *s = ctx;

    (void)fd;
    smtpd_enter(s);
    if ((what & EV_TIMEOUT) || smtpd_linger_discard(s) < 0 || smtpd_linger_wait(s) < 0)
        s->dead = SMTPD_END_CLOSE;
    smtpd_leave(s);
}

/* smtpd_linger_start - the last reply is out: release the session, half-close,
   linger; -1: close at once instead */
static int smtpd_linger_start(SMTPD_SESSION *s)
{
    if (s->cfg->linger_time <= 0 || s->client == NULL || s->linger.fd >= 0)
        return -1;
    /* The bufferevent closes its descriptor when freed: keep a duplicate. */
    if ((s->linger.fd = fcntl(bufferevent_getfd(s->client), F_DUPFD_CLOEXEC, 0)) < 0)
        return -1;
    smtpd_session_release(s);
    /* ENOTCONN: the client is gone already. */
    if (shutdown(s->linger.fd, SHUT_WR) < 0 || smtpd_linger_discard(s) < 0)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &s->linger.deadline);
    s->linger.deadline.tv_sec += s->cfg->linger_time;
    s->linger.ev = event_new(s->base, s->linger.fd, EV_READ, smtpd_linger_cb, s);
    if (s->linger.ev == NULL)
        msg_fatal("event_new failed");
    if (smtpd_linger_wait(s) < 0)
        return -1;
    s->dead = 0;
    return 0;
}

/* smtpd_enter, smtpd_leave - bracket every callback; leave ends a dead session */
void smtpd_enter(SMTPD_SESSION *s)
{
    s->in_callback++;
}

void smtpd_leave(SMTPD_SESSION *s)
{
    if (--s->in_callback > 0 || !s->dead)
        return;
    if (s->dead == SMTPD_END_LINGER && smtpd_linger_start(s) == 0)
        return;
    smtpd_session_free(s);
}

/* smtpd_where - "after DATA (1234 bytes)" detail for lost-connection and timeout logs */
static const char *smtpd_where(SMTPD_SESSION *s, VSTR *buf)
{
    vstr_sprintf(buf, "%s", s->where ? s->where : "CONNECT");
    if (s->txn.data && (s->state == SMTPD_ST_DATA || s->state == SMTPD_ST_BDAT))
        vstr_sprintf_append(buf, " (%llu bytes)", (unsigned long long)smtp_data_size(s->txn.data));
    return vstr_str(buf);
}

/* smtpd_abort - log why the session ends, answer 421 when it can, close */
static void smtpd_abort(SMTPD_SESSION *s, const char *what, const char *reply)
{
    VSTR *where = vstr_alloc(64);

    msg_info("%s after %s from %s", what, smtpd_where(s, where), s->peer.namaddr);
    vstr_free(where);
    smtpd_txn_reset(s);
    if (reply) {
        smtpd_reply(s, 421, "4.4.2", "%s %s", s->cfg->myhostname, reply);
        smtpd_close_after_reply(s);
    } else {
        s->dead = 1;
    }
}

/* smtpd_read_cb - client input arrived */
static void smtpd_read_cb(struct bufferevent *bev, void *ctx)
{
    SMTPD_SESSION *s = ctx;

    (void)bev;
    smtpd_enter(s);
    smtpd_input(s);
    smtpd_leave(s);
}

/* smtpd_write_cb - the client took all our replies */
static void smtpd_write_cb(struct bufferevent *bev, void *ctx)
{
    SMTPD_SESSION *s = ctx;

    (void)bev;
    smtpd_enter(s);
    if (s->state == SMTPD_ST_CLOSING) {
        if (!s->dead)
            s->dead = SMTPD_END_LINGER; /* the last reply is in the kernel */
    } else if (s->block & SMTPD_BLOCK_TLS)
        smtpd_tls_flushed(s); /* "220 Ready to start TLS" is out: handshake */
    else if (s->block & SMTPD_BLOCK_OUTPUT)
        smtpd_unblock(s, SMTPD_BLOCK_OUTPUT);
    smtpd_leave(s);
}

/* smtpd_event_cb - end of file, error or timeout on the client connection */
static void smtpd_event_cb(struct bufferevent *bev, short what, void *ctx)
{
    SMTPD_SESSION *s = ctx;

    (void)bev;
    smtpd_enter(s);
    if (s->state == SMTPD_ST_CLOSING) {
        s->dead = 1;
    } else if (what & BEV_EVENT_TIMEOUT) {
        /* A client that does not read gets no reply: just close. */
        bufferevent_disable(s->client, EV_READ | EV_WRITE);
        if (what & BEV_EVENT_READING) {
            bufferevent_enable(s->client, EV_WRITE);
            smtpd_abort(s, "timeout", "Error: timeout exceeded");
        } else {
            smtpd_abort(s, "timeout", NULL);
        }
    } else {
        smtpd_abort(s, "lost connection", NULL);
    }
    smtpd_leave(s);
}

/* smtpd_session_timer_cb - smtpd_session_time_limit reached */
static void smtpd_session_timer_cb(evutil_socket_t fd, short what, void *ctx)
{
    SMTPD_SESSION *s = ctx;

    (void)fd, (void)what;
    smtpd_enter(s);
    if (s->state != SMTPD_ST_CLOSING) {
        s->block = 0;
        smtpd_abort(s, "session time limit exceeded", "Error: session time limit exceeded");
    } else {
        s->dead = 1;
    }
    smtpd_leave(s);
}

static void smtpd_sleep_cb(evutil_socket_t fd, short what, void *ctx)
{
    SMTPD_SESSION *s = ctx;

    (void)fd, (void)what;
    smtpd_enter(s);
    s->slept = 1;
    smtpd_unblock(s, SMTPD_BLOCK_SLEEP);
    smtpd_leave(s);
}

/* smtpd_session_greet - apply the limits, greet (after the handshake in wrapper mode) */
void smtpd_session_greet(SMTPD_SESSION *s)
{
    if (smtpd_anvil_connect(s) == 0)
        smtpd_proto_greet(s);
}

/* smtpd_session_ready - the client is known: log it, then TLS (port 465) or greet */
static void smtpd_session_ready(SMTPD_SESSION *s)
{
    msg_info("connect from %s", s->peer.namaddr);
    s->logged_connect = 1;
    if (smtpd_tls_wrappermode(s->cfg))
        smtpd_tls_wrapper_start(s);
    else
        smtpd_session_greet(s);
}

/* smtpd_peer_ready_cb - the client's name is verified (or not): go on */
static void smtpd_peer_ready_cb(void *context)
{
    SMTPD_SESSION *s = context;

    smtpd_enter(s);
    s->block &= ~SMTPD_BLOCK_DNS;
    smtpd_session_ready(s);
    smtpd_update_reading(s);
    smtpd_leave(s);
}

/* smtpd_client_attach - bev becomes the session's client connection: callbacks, bounds, timeouts */
void smtpd_client_attach(SMTPD_SESSION *s, struct bufferevent *bev)
{
    struct timeval io = {.tv_sec = s->cfg->timeout};

    s->client = bev;
    bufferevent_setcb(bev, smtpd_read_cb, smtpd_write_cb, smtpd_event_cb, s);
    bufferevent_setwatermark(bev, EV_READ, 0, SMTPD_IN_HIGH);
    bufferevent_set_timeouts(bev, &io, &io);
}

/* smtpd_service - a new client: MAIL_SERVER_SPEC.multi_service */
static void smtpd_service(const MAIL_SERVER_ARGS *args, int fd)
{
    SMTPD_CONFIG *cfg = args->context;
    SMTPD_SESSION *s = mycalloc(1, sizeof(*s));
    struct bufferevent *bev;
    struct timeval life = {.tv_sec = cfg->session_time_limit};

    s->cfg = cfg;
    s->base = args->base;
    s->state = SMTPD_ST_CONNECTED;
    s->linger.fd = -1;
    if (smtpd_peer_init(&s->peer, fd, cfg) < 0) {
        close(fd);
        myfree(s);
        mail_server_session_done();
        return;
    }
    /*
     * Replies often leave in two writes (the MAIL reply waits for cleanup,
     * the RCPT replies follow): with Nagle's algorithm the second write
     * waits for the client's delayed ACK, some 40 ms per transaction.
     * Replies are already batched per input packet, so send at once.
     */
    int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if ((bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL)
        msg_fatal("bufferevent_socket_new failed");
    smtpd_client_attach(s, bev);
    s->session_timer = evtimer_new(s->base, smtpd_session_timer_cb, s);
    evtimer_add(s->session_timer, &life);

    smtpd_enter(s);
    bufferevent_enable(s->client, EV_WRITE);
    /* Postfix greets only once it knows the client's name. */
    if (smtpd_peer_resolve(&s->peer, s->base, smtpd_peer_ready_cb, s))
        s->block |= SMTPD_BLOCK_DNS;
    else
        smtpd_session_ready(s);
    smtpd_update_reading(s);
    smtpd_leave(s);
}

/*
 * Configuration.
 */

/* smtpd_list_or_die - an address or domain pattern list from a parameter */
static MATCH_LIST *smtpd_list_or_die(const char *param, int flags)
{
    VSTR *why = vstr_alloc(100);
    MATCH_LIST *ml;

    if (flags & MATCH_LIST_DOMAIN) {
        ARGV *parents = var_list("parent_domain_matches_subdomains");

        for (size_t i = 0; i < parents->argc; i++)
            if (strcmp(parents->argv[i], param) == 0)
                flags |= MATCH_LIST_PARENT;
        argv_free(parents);
    }
    if ((ml = match_list_new(param, var_str(param), flags, why)) == NULL)
        msg_fatal("%s", vstr_str(why));
    vstr_free(why);
    return ml;
}

/* smtpd_maps_or_null - open the tables of a list parameter; NULL when it is empty */
static DICT **smtpd_maps_or_null(const char *param)
{
    ARGV *specs = var_list(param);
    DICT **maps = NULL;
    VSTR *why = vstr_alloc(100);

    if (specs->argc > 0) {
        maps = mycalloc(specs->argc + 1, sizeof(DICT *));
        for (size_t i = 0; i < specs->argc; i++) {
            /* A table that cannot be opened fails its lookups (451), not the daemon. */
            maps[i] = dict_open(specs->argv[i], DICT_FLAG_FOLD_FIX | DICT_FLAG_SURROGATE, why);
            if (maps[i] == NULL)
                msg_fatal("%s: %s", param, vstr_str(why));
        }
    }
    argv_free(specs);
    vstr_free(why);
    return maps;
}

/* smtpd_bare_policy - smtpd_forbid_bare_newline */
static enum smtpd_bare_newline smtpd_bare_policy(void)
{
    const char *value = var_str("smtpd_forbid_bare_newline");

    if (strcasecmp(value, "reject") == 0 || strcasecmp(value, "yes") == 0)
        return SMTPD_BARE_REJECT;
    if (strcasecmp(value, "normalize") == 0 || strcasecmp(value, "note") == 0)
        return SMTPD_BARE_NORMALIZE;
    if (strcasecmp(value, "no") == 0)
        return SMTPD_BARE_NO;
    msg_fatal("smtpd_forbid_bare_newline: bad value \"%s\": use normalize, reject or no", value);
}

/* smtpd_ext_mask - smtpd_discard_ehlo_keywords as SMTPD_EXT_* bits */
static int smtpd_ext_mask(void)
{
    static const struct {
        const char *name;
        int bit;
    } keys[] = {
        {"pipelining", SMTPD_EXT_PIPELINING},
        {"size", SMTPD_EXT_SIZE},
        {"vrfy", SMTPD_EXT_VRFY},
        {"etrn", SMTPD_EXT_ETRN},
        {"starttls", SMTPD_EXT_STARTTLS},
        {"auth", SMTPD_EXT_AUTH},
        {"enhancedstatuscodes", SMTPD_EXT_ENHANCEDSTATUSCODES},
        {"8bitmime", SMTPD_EXT_8BITMIME},
        {"dsn", SMTPD_EXT_DSN},
        {"smtputf8", SMTPD_EXT_SMTPUTF8},
        {"chunking", SMTPD_EXT_CHUNKING},
    };
    ARGV *list = var_list("smtpd_discard_ehlo_keywords");
    int mask = 0;

    for (size_t i = 0; i < list->argc; i++) {
        size_t k;

        for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            if (strcasecmp(list->argv[i], keys[k].name) == 0)
                mask |= keys[k].bit;
        /* "silent-discard" only quiets Postfix's logging; unknown words change nothing. */
    }
    argv_free(list);
    return mask;
}

/* smtpd_interfaces - the literal addresses in inet_interfaces, as a list */
static MATCH_LIST *smtpd_interfaces(void)
{
    ARGV *list = var_list("inet_interfaces");
    VSTR *addrs = vstr_alloc(100);
    MATCH_LIST *ml;

    for (size_t i = 0; i < list->argc; i++) {
        VSTR *why = vstr_alloc(10);
        MATCH_LIST *one = match_list_new("inet_interfaces", list->argv[i], MATCH_LIST_ADDR, why);

        /* Names ("all", "loopback-only", host names) are not addresses. */
        if (one != NULL)
            vstr_sprintf_append(addrs, "%s ", list->argv[i]);
        match_list_free(one);
        vstr_free(why);
    }
    ml = match_list_new("inet_interfaces", vstr_str(addrs), MATCH_LIST_ADDR, NULL);
    argv_free(list);
    vstr_free(addrs);
    return ml;
}

/* smtpd_config_init - read every parameter once, open tables (as root, before chroot) */
static void smtpd_config_init(SMTPD_CONFIG *cfg, const MAIL_SERVER_ARGS *args)
{
    cfg->service = mystrdup(args->service);
    cfg->myhostname = mystrdup(var_str("myhostname"));
    cfg->banner = mystrdup(var_str("smtpd_banner"));
    cfg->mail_name = mystrdup(var_str("mail_name"));
    cfg->myorigin = mystrdup(var_str("myorigin"));
    cfg->delimiters = mystrdup(var_str("recipient_delimiter"));
    cfg->cleanup_service = mystrdup(var_str("cleanup_service_name"));
    if (*cfg->cleanup_service == 0 || strlen(cfg->cleanup_service) > SMTPD_SERVICE_NAME_MAX ||
        strchr(cfg->cleanup_service, '/') != NULL)
        msg_fatal("cleanup_service_name: bad service name \"%s\"", cfg->cleanup_service);

    cfg->recipient_limit = var_int("smtpd_recipient_limit");
    cfg->recipient_overshoot_limit = var_int("smtpd_recipient_overshoot_limit");
    cfg->hard_error_limit = var_int("smtpd_hard_error_limit");
    cfg->soft_error_limit = var_int("smtpd_soft_error_limit");
    cfg->error_sleep_time = var_time("smtpd_error_sleep_time");
    cfg->junk_command_limit = var_int("smtpd_junk_command_limit");
    cfg->timeout = var_time("smtpd_timeout");
    cfg->session_time_limit = var_time("smtpd_session_time_limit");
    cfg->ipc_timeout = var_time("ipc_timeout");
    cfg->conn_count_limit = var_int("smtpd_client_connection_count_limit");
    cfg->linger_time = var_time("smtpd_linger_time");
    cfg->message_size_limit = (uint64_t)var_int("message_size_limit");
    cfg->line_length_limit = var_int("line_length_limit");
    if (cfg->line_length_limit > SMTP_DATA_LINE_HARD_MAX)
        cfg->line_length_limit = SMTP_DATA_LINE_HARD_MAX;

    cfg->disable_vrfy = var_bool("disable_vrfy_command");
    cfg->helo_required = var_bool("smtpd_helo_required");
    cfg->forbid_unauth_pipelining = var_bool("smtpd_forbid_unauth_pipelining");
    cfg->smtputf8_enable = var_bool("smtputf8_enable");
    cfg->strict_rfc821 = var_bool("strict_rfc821_envelopes");
    cfg->allow_untrusted_routing = var_bool("allow_untrusted_routing");
    cfg->delay_open = var_bool("smtpd_delay_open_until_valid_rcpt");
    cfg->reject_unlisted_recipient = var_bool("smtpd_reject_unlisted_recipient");
    cfg->client_port_logging = var_bool("smtpd_client_port_logging");
    cfg->bare_newline = smtpd_bare_policy();
    cfg->bare_newline_code = (int)var_int("smtpd_forbid_bare_newline_reject_code");
    cfg->ext_discard = smtpd_ext_mask();
    cfg->forbidden_commands = var_list("smtpd_forbidden_commands");

    cfg->relay_reject_code = (int)var_int("relay_domains_reject_code");
    cfg->unknown_local_code = (int)var_int("unknown_local_recipient_reject_code");
    cfg->unknown_relay_code = (int)var_int("unknown_relay_recipient_reject_code");
    cfg->reject_code = (int)var_int("reject_code");
    cfg->defer_code = (int)var_int("defer_code");

    cfg->mynetworks = smtpd_list_or_die("mynetworks", MATCH_LIST_ADDR);
    cfg->mydestination = smtpd_list_or_die("mydestination", MATCH_LIST_DOMAIN);
    cfg->relay_domains = smtpd_list_or_die("relay_domains", MATCH_LIST_DOMAIN);
    cfg->limit_exceptions =
        smtpd_list_or_die("smtpd_client_event_limit_exceptions", MATCH_LIST_ADDR);
    cfg->bare_exclusions =
        smtpd_list_or_die("smtpd_forbid_bare_newline_exclusions", MATCH_LIST_ADDR);
    cfg->inet_interfaces = smtpd_interfaces();
    cfg->header_rewrite_clients = var_list("local_header_rewrite_clients");
    cfg->local_rcpt_maps = smtpd_maps_or_null("local_recipient_maps");
    cfg->relay_rcpt_maps = smtpd_maps_or_null("relay_recipient_maps");
    cfg->client_restrictions = var_list("smtpd_client_restrictions");
    cfg->helo_restrictions = var_list("smtpd_helo_restrictions");
    cfg->sender_restrictions = var_list("smtpd_sender_restrictions");
    cfg->relay_restrictions = var_list("smtpd_relay_restrictions");
    cfg->recipient_restrictions = var_list("smtpd_recipient_restrictions");
    smtpd_check_init(cfg);

    cfg->addr = smtp_addr_alloc();
    cfg->params = smtp_param_alloc();
    cfg->line = vstr_alloc(SMTPD_PATH_LINE_MAX + 1);
    vstr_set_limit(cfg->line, SMTPD_PATH_LINE_MAX);
    cfg->reply = vstr_alloc(512);
    cfg->text = vstr_alloc(512);
    cfg->tmp = vstr_alloc(512);
}

/* smtpd_pre_init - as root, before the privilege drop: configuration and tables */
static void smtpd_pre_init(const MAIL_SERVER_ARGS *args)
{
    smtpd_config_init(args->context, args);
    smtpd_sasl_init(args->context, args->base);
    /* Private keys are often readable by root only. */
    smtpd_tls_init(args->context);
    smtpd_peer_dns_init(args->context, args->base);
    smtpd_anvil_init(args->context);
}

/* smtpd_max_sessions - sessions one process can hold with its descriptors */
static int smtpd_max_sessions(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 100;
    /* Many idle sessions cost a descriptor each: use what the hard limit allows. */
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > SMTPD_NOFILE_MAX
                          ? SMTPD_NOFILE_MAX
                          : rl.rlim_max;

        if (want > rl.rlim_cur) {
            rl.rlim_cur = want;
            (void)setrlimit(RLIMIT_NOFILE, &rl);
            (void)getrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    if (rl.rlim_cur <= SMTPD_FD_RESERVE + SMTPD_FD_PER_SESSION)
        return 1;
    return (int)((rl.rlim_cur - SMTPD_FD_RESERVE) / SMTPD_FD_PER_SESSION);
}

int main(int argc, char **argv)
{
    MAIL_SERVER_SPEC spec = {
        .kind = MAIL_SERVER_MULTI,
        .max_sessions = smtpd_max_sessions(),
        .context = &smtpd_config,
        .pre_init = smtpd_pre_init,
        .multi_service = smtpd_service,
    };

    mail_server_main(argc, argv, &spec);
}
