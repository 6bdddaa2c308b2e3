/*
 * smtp_stream - the SMTP client's connection: a non-blocking socket,
 * optionally with TLS on it, buffered output, and reply reading with a
 * deadline per reply (a server that trickles a reply one byte at a time
 * gets no more time than one that sends nothing) and bounded lines.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "smtp.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/vstr.h"

/* smtp_now_ms - monotonic clock in milliseconds */
long long smtp_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* smtp_deadline - now plus seconds */
long long smtp_deadline(int seconds)
{
    return smtp_now_ms() + (long long)seconds * 1000;
}

/* smtp_stream_open - wrap a connected socket */
SMTP_STREAM *smtp_stream_open(int fd)
{
    SMTP_STREAM *s = mycalloc(1, sizeof(*s));

    non_blocking(fd, 1);
    s->fd = fd;
    s->obuf = vstr_alloc(1024);
    s->why = vstr_alloc(64);
    return s;
}

/* smtp_stream_free - close and release */
void smtp_stream_free(SMTP_STREAM *s)
{
    if (s == NULL)
        return;
    if (s->ssl != NULL) {
        /* A close_notify without waiting for the peer's: we are leaving. */
        (void)SSL_shutdown(s->ssl);
        SSL_free(s->ssl);
    }
    if (s->fd >= 0)
        close(s->fd);
    vstr_free(s->obuf);
    vstr_free(s->why);
    myfree(s);
}

/* smtp_stream_wait - poll for events until the deadline */
static int smtp_stream_wait(SMTP_STREAM *s, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - smtp_now_ms();
        struct pollfd pfd = {.fd = s->fd, .events = events};
        int n;

        if (left <= 0)
            return SMTP_IO_TIMEOUT;
        n = poll(&pfd, 1, left > 3600000 ? 3600000 : (int)left);
        if (n > 0)
            return SMTP_IO_OK;
        if (n < 0 && errno != EINTR) {
            vstr_sprintf(s->why, "poll: %s", strerror(errno));
            return SMTP_IO_ERR;
        }
    }
}

/* smtp_ssl_error - map an SSL_get_error result; SMTP_IO_OK with *events
   set when the call should be retried after waiting */
static int smtp_ssl_error(SMTP_STREAM *s, int ret, short *events)
{
    int err = SSL_get_error(s->ssl, ret);
    unsigned long e;

    switch (err) {
    case SSL_ERROR_WANT_READ: *events = POLLIN; return SMTP_IO_OK;
    case SSL_ERROR_WANT_WRITE: *events = POLLOUT; return SMTP_IO_OK;
    case SSL_ERROR_ZERO_RETURN: return SMTP_IO_EOF;
    case SSL_ERROR_SYSCALL:
        if (errno == 0 || errno == EPIPE || errno == ECONNRESET)
            return SMTP_IO_EOF;
        vstr_sprintf(s->why, "%s", strerror(errno));
        return SMTP_IO_ERR;
    default:
        e = ERR_get_error();
        vstr_sprintf(s->why, "TLS error: %s", e ? ERR_reason_error_string(e) : "unknown");
        ERR_clear_error();
        /* An unexpected EOF in OpenSSL 3 is reported as an SSL error. */
        return SMTP_IO_EOF;
    }
}

/* smtp_stream_fill - read more input before the deadline */
static int smtp_stream_fill(SMTP_STREAM *s, long long deadline)
{
    if (s->ipos > 0) {
        memmove(s->ibuf, s->ibuf + s->ipos, s->ilen - s->ipos);
        s->ilen -= s->ipos;
        s->ipos = 0;
    }
    if (s->ilen >= sizeof(s->ibuf))
        return SMTP_IO_OK;
    for (;;) {
        short events = POLLIN;
        int ret;

        if (s->ssl != NULL) {
            ERR_clear_error();
            ret = SSL_read(s->ssl, s->ibuf + s->ilen, (int)(sizeof(s->ibuf) - s->ilen));
            if (ret > 0) {
                s->ilen += (size_t)ret;
                return SMTP_IO_OK;
            }
            if ((ret = smtp_ssl_error(s, ret, &events)) != SMTP_IO_OK)
                return ret;
        } else {
            ssize_t n = read(s->fd, s->ibuf + s->ilen, sizeof(s->ibuf) - s->ilen);

            if (n > 0) {
                s->ilen += (size_t)n;
                return SMTP_IO_OK;
            }
            if (n == 0)
                return SMTP_IO_EOF;
            if (errno != EAGAIN && errno != EINTR) {
                if (errno == ECONNRESET)
                    return SMTP_IO_EOF;
                vstr_sprintf(s->why, "read: %s", strerror(errno));
                return SMTP_IO_ERR;
            }
        }
        if ((ret = smtp_stream_wait(s, events, deadline)) != SMTP_IO_OK)
            return ret;
    }
}

/* smtp_stream_line - one line (without CR LF) into line, cut at max octets;
   the rest of an over-long line is read and dropped */
static int smtp_stream_line(SMTP_STREAM *s, VSTR *line, size_t max, long long deadline)
{
    vstr_reset(line);
    for (;;) {
        char *start = s->ibuf + s->ipos;
        size_t avail = s->ilen - s->ipos;
        char *nl = memchr(start, '\n', avail);
        size_t take = nl ? (size_t)(nl - start) : avail;
        int ret;

        if (vstr_len(line) < max)
            vstr_ncat(line, start, take < max - vstr_len(line) ? take : max - vstr_len(line));
        if (nl != NULL) {
            s->ipos += take + 1;
            if (vstr_len(line) > 0 && vstr_str(line)[vstr_len(line) - 1] == '\r')
                vstr_truncate(line, vstr_len(line) - 1);
            return SMTP_IO_OK;
        }
        s->ipos = s->ilen;
        if ((ret = smtp_stream_fill(s, deadline)) != SMTP_IO_OK)
            return ret;
    }
}

/* smtp_stream_read_resp - one whole reply before the deadline */
int smtp_stream_read_resp(SMTP_STREAM *s, SMTP_RESP *resp, long long deadline)
{
    VSTR *line = vstr_alloc(256);
    int ret;

    smtp_resp_reset(resp);
    for (;;) {
        if ((ret = smtp_stream_line(s, line, SMTP_RESP_LINE_MAX, deadline)) != SMTP_IO_OK)
            break;
        ret = smtp_resp_line(resp, vstr_str(line), vstr_len(line));
        if (ret == SMTP_RESP_DONE) {
            ret = SMTP_IO_OK;
            break;
        }
        if (ret == SMTP_RESP_ERROR) {
            vstr_cpy(s->why, vstr_str(resp->why));
            ret = SMTP_IO_PROTO;
            break;
        }
    }
    vstr_free(line);
    return ret;
}

/* smtp_stream_put - queue output */
void smtp_stream_put(SMTP_STREAM *s, const char *data, size_t len)
{
    vstr_ncat(s->obuf, data, len);
}

/* smtp_stream_flush - send queued output */
int smtp_stream_flush(SMTP_STREAM *s, int timeout)
{
    size_t off = 0;
    int ret = SMTP_IO_OK;

    while (off < vstr_len(s->obuf)) {
        /* The timeout is per step, as Postfix's: progress re-arms it. */
        long long deadline = smtp_deadline(timeout);
        size_t left = vstr_len(s->obuf) - off;
        short events = POLLOUT;

        if (s->ssl != NULL) {
            int n;

            ERR_clear_error();
            n = SSL_write(s->ssl, vstr_str(s->obuf) + off, left > 65536 ? 65536 : (int)left);
            if (n > 0) {
                off += (size_t)n;
                continue;
            }
            if ((ret = smtp_ssl_error(s, n, &events)) != SMTP_IO_OK)
                break;
        } else {
            ssize_t n = send(s->fd, vstr_str(s->obuf) + off, left, MSG_NOSIGNAL);

            if (n > 0) {
                off += (size_t)n;
                continue;
            }
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                ret = errno == EPIPE || errno == ECONNRESET ? SMTP_IO_EOF : SMTP_IO_ERR;
                vstr_sprintf(s->why, "write: %s", strerror(errno));
                break;
            }
        }
        if ((ret = smtp_stream_wait(s, events, deadline)) != SMTP_IO_OK)
            break;
    }
    vstr_reset(s->obuf);
    return ret;
}

/* smtp_stream_pending - input not yet consumed */
size_t smtp_stream_pending(const SMTP_STREAM *s)
{
    return s->ilen - s->ipos;
}

/* smtp_stream_tls_connect - the handshake */
int smtp_stream_tls_connect(SMTP_STREAM *s, SSL *ssl, int timeout)
{
    long long deadline = smtp_deadline(timeout);

    s->ssl = ssl;
    if (SSL_set_fd(ssl, s->fd) != 1) {
        vstr_sprintf(s->why, "cannot attach TLS to the socket");
        return SMTP_IO_ERR;
    }
    for (;;) {
        short events = POLLIN;
        int ret;

        ERR_clear_error();
        ret = SSL_connect(ssl);
        if (ret == 1)
            return SMTP_IO_OK;
        if ((ret = smtp_ssl_error(s, ret, &events)) != SMTP_IO_OK) {
            if (vstr_len(s->why) == 0)
                vstr_cpy(s->why, "handshake failure");
            return ret == SMTP_IO_EOF ? SMTP_IO_ERR : ret;
        }
        if ((ret = smtp_stream_wait(s, events, deadline)) != SMTP_IO_OK)
            return ret;
    }
}

/* smtp_stream_alive - no EOF and no unasked input on an idle connection */
int smtp_stream_alive(SMTP_STREAM *s)
{
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};

    if (smtp_stream_pending(s) > 0)
        return 0;
    if (poll(&pfd, 1, 0) == 0)
        return 1;
    /* Readable while idle means EOF, an error, or a 421 sent on its own:
       none of them leaves the session usable. Under TLS it may also be a
       TLS 1.3 session ticket, so only a hang-up is taken as final there and
       the RSET that starts every reuse decides the rest. */
    return s->ssl != NULL && (pfd.revents & (POLLHUP | POLLERR)) == 0;
}
