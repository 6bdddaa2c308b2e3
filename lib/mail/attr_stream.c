/*
 * attr_stream - blocking, timed attribute message I/O over one connection.
 *
 * Reading: bytes go into a buffer that never grows past the connection's
 * msg_max; attr_frame checks each length field as it arrives, so a peer
 * cannot make the reader wait for, or allocate, more than the limits allow.
 * Each message must arrive within the timeout as a whole, so a peer that
 * sends one byte at a time cannot hold a process forever.
 *
 * Writing: a message is encoded into a buffer and sent when it ends, in one
 * write when the socket takes it all.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mail/attr.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/vstr.h"

#define ATTR_RBUF_INIT 4096         /* first read buffer */
#define ATTR_RBUF_BIG (64 * 1024)   /* the second size: a large message grows once or twice */
#define ATTR_RBUF_KEEP (128 * 1024) /* larger idle buffers are given back */
#define ATTR_WHY_MAX 512            /* reason text */

struct ATTR_STREAM {
    int fd;
    int timeout_ms; /* per message; negative: none */
    ATTR_LIMITS lim;
    char *rbuf;  /* unread bytes are rbuf[rpos .. rlen) */
    size_t rcap; /* allocated, never above lim.msg_max */
    size_t rpos;
    size_t rlen;
    ATTR_FRAME frame; /* framing progress of the message at rpos */
    VSTR *wbuf;       /* the message being written */
    size_t wcount;    /* attributes in wbuf */
    int dead;         /* errno of a failure that broke the stream, else 0 */
    VSTR *why;
};

/* attr_stream_fail - record the reason; a broken stream stays broken */
static int MSG_FMT(4, 5) attr_stream_fail(ATTR_STREAM *s, int err, int fatal, const char *fmt, ...)
{
    va_list ap;

    vstr_reset(s->why);
    va_start(ap, fmt);
    vstr_vsprintf_append(s->why, fmt, ap);
    va_end(ap);
    if (fatal)
        s->dead = err;
    errno = err;
    return -1;
}

/* attr_stream_broken - refuse to work on a stream that lost step */
static int attr_stream_broken(ATTR_STREAM *s)
{
    if (s->dead == 0)
        return 0;
    errno = s->dead;
    return 1;
}

/* attr_deadline - now + timeout_ms on the monotonic clock (ms); -1: none */
static long long attr_deadline(int timeout_ms)
{
    struct timespec ts;

    if (timeout_ms < 0)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
}

/* attr_remaining - ms left until deadline (0 when past); -1: none */
static int attr_remaining(long long deadline)
{
    struct timespec ts;
    long long now;

    if (deadline < 0)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return now >= deadline ? 0 : (int)(deadline - now);
}

ATTR_STREAM *attr_stream_open(int fd, int timeout_ms)
{
    ATTR_STREAM *s = mycalloc(1, sizeof(*s));

    s->fd = fd;
    s->timeout_ms = timeout_ms;
    s->lim = attr_limits_default;
    s->wbuf = vstr_alloc(ATTR_RBUF_INIT);
    s->why = vstr_alloc(128);
    vstr_set_limit(s->why, ATTR_WHY_MAX);
    /* With a blocking fd a write of a large message, or a read after a
       spurious wakeup, could outlast the timeout. */
    (void)non_blocking(fd, 1);
    return s;
}

void attr_stream_free(ATTR_STREAM *s)
{
    if (s) {
        myfree(s->rbuf);
        vstr_free(s->wbuf);
        vstr_free(s->why);
        myfree(s);
    }
}

int attr_stream_set_limits(ATTR_STREAM *s, const ATTR_LIMITS *lim)
{
    if (attr_limits_valid(lim) < 0)
        return -1;
    if (vstr_len(s->wbuf) > 0) {
        errno = EBUSY; /* the message half built was checked against the old limits */
        return -1;
    }
    s->lim = *lim;
    /* Rescan any partial message under the new limits. */
    s->frame = ATTR_FRAME_INIT;
    return 0;
}

void attr_stream_set_timeout(ATTR_STREAM *s, int timeout_ms)
{
    s->timeout_ms = timeout_ms;
}

int attr_stream_fd(const ATTR_STREAM *s)
{
    return s->fd;
}

const char *attr_stream_why(const ATTR_STREAM *s)
{
    return vstr_str(s->why);
}

/*
 * Reading.
 */

/* attr_stream_room - make the buffer hold at least one more byte, never
   growing it past msg_max; the caller knows fewer than msg_max are unread */
static void attr_stream_room(ATTR_STREAM *s)
{
    size_t unread = s->rlen - s->rpos;

    if (s->rpos > 0) {
        memmove(s->rbuf, s->rbuf + s->rpos, unread);
        s->rpos = 0;
        s->rlen = unread;
    }
    if (s->rlen < s->rcap)
        return;
    /* Small messages stay in a small buffer; a large one (cleanup's 64 KB
       content pieces) jumps to ATTR_RBUF_BIG instead of doubling its way up. */
    size_t cap = s->rcap == 0              ? ATTR_RBUF_INIT
                 : s->rcap < ATTR_RBUF_BIG ? ATTR_RBUF_BIG
                                           : s->rcap * 2;

    if (cap > s->lim.msg_max)
        cap = s->lim.msg_max;
    s->rbuf = myrealloc(s->rbuf, cap);
    s->rcap = cap;
}

/* attr_stream_read - read into the buffer's free space; the descriptor is
   non-blocking, so try first and poll only when nothing is there (a
   message usually arrives faster than a poll-then-read round) */
static ssize_t attr_stream_read(ATTR_STREAM *s, size_t want, long long deadline)
{
    ssize_t n;

    do {
        n = read(s->fd, s->rbuf + s->rlen, want);
    } while (n < 0 && errno == EINTR);
    if (n >= 0 || errno != EAGAIN)
        return n;
    return timed_read(s->fd, s->rbuf + s->rlen, want, attr_remaining(deadline));
}

/* attr_stream_frame - read until a whole message sits at rpos; its length */
static int attr_stream_frame(ATTR_STREAM *s, size_t *msg_len, long long deadline)
{
    for (;;) {
        size_t unread = s->rlen - s->rpos;
        int r = attr_frame(&s->frame, s->rbuf + s->rpos, unread, &s->lim, msg_len, s->why);

        if (r == 0)
            return 0;
        if (r != ATTR_MORE) {
            s->dead = errno;
            return -1;
        }

        /* ATTR_MORE: fewer than msg_max bytes are unread (attr_frame would
           have refused otherwise), so the buffer may grow by at least one. */
        attr_stream_room(s);
        size_t want = s->rcap - s->rlen;

        if (want > s->lim.msg_max - unread)
            want = s->lim.msg_max - unread;
        ssize_t n = attr_stream_read(s, want, deadline);

        if (n < 0 && errno == ETIMEDOUT)
            return attr_stream_fail(s, ETIMEDOUT, 1, "timeout after %d ms %s", s->timeout_ms,
                                    unread ? "inside an attribute message"
                                           : "waiting for an attribute message");
        if (n < 0)
            return attr_stream_fail(s, errno, 1, "read error: %s", strerror(errno));
        if (n == 0 && unread == 0)
            return attr_stream_fail(s, ENODATA, 1, "end of input");
        if (n == 0)
            return attr_stream_fail(
                s, EPROTO, 1, "truncated attribute message: end of input after %zu bytes", unread);
        s->rlen += (size_t)n;
    }
}

/* attr_stream_consume - drop the message just read */
static void attr_stream_consume(ATTR_STREAM *s, size_t msg_len)
{
    s->rpos += msg_len;
    s->frame = ATTR_FRAME_INIT;
    if (s->rpos == s->rlen) {
        s->rpos = s->rlen = 0;
        /* A long-lived connection should not keep one large message's buffer. */
        if (s->rcap > ATTR_RBUF_KEEP) {
            myfree(s->rbuf);
            s->rbuf = NULL;
            s->rcap = 0;
        }
    }
}

/* attr_stream_idle_check - reading in the middle of writing a message is a bug */
static void attr_stream_idle_check(ATTR_STREAM *s, const char *what)
{
    if (vstr_len(s->wbuf) > 0)
        msg_panic("%s: called with a message half written (ATTR_FLAG_MORE)", what);
}

int attr_scan_list(ATTR_STREAM *s, int flags, const ATTR_SPEC *const *list)
{
    size_t msg_len, used;
    int r;

    attr_stream_idle_check(s, "attr_scan");
    if (attr_stream_broken(s))
        return -1;
    vstr_reset(s->why);
    if (attr_stream_frame(s, &msg_len, attr_deadline(s->timeout_ms)) < 0)
        return -1;
    /* The message is whole; whatever its content, the stream stays in step. */
    r = attr_decode_list(s->rbuf + s->rpos, msg_len, &used, &s->lim, flags, s->why, list);
    if (r == ATTR_MORE || (r >= 0 && used != msg_len))
        msg_panic("attr_scan: framing disagreement (%d, %zu/%zu)", r, used, msg_len);
    int saved = errno;

    attr_stream_consume(s, msg_len);
    errno = saved;
    return r;
}

int attr_scan(ATTR_STREAM *s, int flags, ...)
{
    const ATTR_SPEC *list[ATTR_LIST_MAX + 1];
    va_list ap;

    va_start(ap, flags);
    attr_list_collect(&ap, list);
    va_end(ap);
    return attr_scan_list(s, flags, list);
}

ATTR_MSG *attr_msg_read(ATTR_STREAM *s, int flags)
{
    ATTR_MSG *msg;
    size_t msg_len, used;
    int r, saved;

    attr_stream_idle_check(s, "attr_msg_read");
    if (attr_stream_broken(s))
        return NULL;
    vstr_reset(s->why);
    if (attr_stream_frame(s, &msg_len, attr_deadline(s->timeout_ms)) < 0)
        return NULL;
    r = attr_msg_decode(s->rbuf + s->rpos, msg_len, &used, &s->lim, flags, &msg, s->why);
    if (r == ATTR_MORE || (r == 0 && used != msg_len))
        msg_panic("attr_msg_read: framing disagreement (%d, %zu/%zu)", r, used, msg_len);
    saved = errno;
    attr_stream_consume(s, msg_len);
    errno = saved;
    return r == 0 ? msg : NULL;
}

/*
 * Writing.
 */

/* attr_stream_flush - send wbuf within the deadline */
static int attr_stream_flush(ATTR_STREAM *s, long long deadline)
{
    const char *data = vstr_str(s->wbuf);
    size_t len = vstr_len(s->wbuf), done = 0;

    while (done < len) {
        /* MSG_NOSIGNAL: a peer that went away is an error to report, not a
           SIGPIPE that kills the process. Pipes take plain write(). */
        ssize_t n = send(s->fd, data + done, len - done, MSG_NOSIGNAL);

        if (n < 0 && errno == ENOTSOCK)
            n = write(s->fd, data + done, len - done);
        if (n >= 0) {
            done += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return attr_stream_fail(s, errno, 1, "write error: %s", strerror(errno));
        if (timed_wait_writable(s->fd, attr_remaining(deadline)) < 0) {
            if (errno == ETIMEDOUT)
                return attr_stream_fail(s, ETIMEDOUT, 1,
                                        "timeout after %d ms writing an attribute message",
                                        s->timeout_ms);
            return attr_stream_fail(s, errno, 1, "write error: %s", strerror(errno));
        }
    }
    vstr_reset(s->wbuf);
    return 0;
}

/* attr_stream_discard - forget the unsent message */
static void attr_stream_discard(ATTR_STREAM *s)
{
    vstr_reset(s->wbuf);
    s->wcount = 0;
}

int attr_print_list(ATTR_STREAM *s, int flags, const ATTR_SPEC *const *list)
{
    size_t n;

    if (attr_stream_broken(s)) {
        attr_stream_discard(s);
        return -1;
    }
    vstr_reset(s->why);
    for (n = 0; list[n] != NULL; n++)
        /* count */;
    /* wbuf holds only the earlier parts of this message, if any. */
    if (attr_encode_cont(s->wbuf, &s->lim, flags, s->why, list, vstr_len(s->wbuf), s->wcount) < 0) {
        int saved = errno;

        /* Never send half a message: the peer would take what follows for
           the rest of it. */
        attr_stream_discard(s);
        errno = saved;
        return -1;
    }
    s->wcount += n;
    if (flags & ATTR_FLAG_MORE)
        return 0;
    s->wcount = 0;
    if (attr_stream_flush(s, attr_deadline(s->timeout_ms)) < 0) {
        int saved = errno;

        attr_stream_discard(s);
        errno = saved;
        return -1;
    }
    return 0;
}

int attr_print(ATTR_STREAM *s, int flags, ...)
{
    const ATTR_SPEC *list[ATTR_LIST_MAX + 1];
    va_list ap;

    va_start(ap, flags);
    attr_list_collect(&ap, list);
    va_end(ap);
    return attr_print_list(s, flags, list);
}
