/*
 * attr_clnt - the client side of the attribute protocol: connect to a
 * service's UNIX socket within a timeout, send a request, read the reply.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mail/attr.h"
#include "util/msg.h"
#include "util/vstr.h"

/* attr_clnt_now_ms - monotonic clock in ms */
static long long attr_clnt_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* attr_clnt_sndtimeo - set SO_SNDTIMEO to ms (0: none) */
static int attr_clnt_sndtimeo(int fd, long long ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};

    return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/*
 * attr_clnt_connect - connect with a timeout. A UNIX-domain connect waits
 * only while the server's listen backlog is full, and Linux bounds that wait
 * by SO_SNDTIMEO (a non-blocking connect would fail at once with EAGAIN and
 * give nothing to poll on), so the timeout goes there for the connect.
 */
int attr_clnt_connect(const char *path, int timeout_ms)
{
    struct sockaddr_un sun;
    size_t len = strlen(path);
    long long deadline = timeout_ms < 0 ? -1 : attr_clnt_now_ms() + timeout_ms;
    int fd, saved;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (len == 0 || len >= sizeof(sun.sun_path)) {
        errno = len ? ENAMETOOLONG : ENOENT;
        return -1;
    }
    memcpy(sun.sun_path, path, len + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    for (;;) {
        if (deadline >= 0) {
            long long left = deadline - attr_clnt_now_ms();

            if (left <= 0) {
                errno = ETIMEDOUT;
                goto fail;
            }
            if (attr_clnt_sndtimeo(fd, left) < 0)
                goto fail;
        }
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN && deadline >= 0)
            errno = ETIMEDOUT; /* the backlog stayed full */
        goto fail;
    }
    /* Later I/O is bounded by poll(); restore the default. */
    if (deadline >= 0 && attr_clnt_sndtimeo(fd, 0) < 0)
        goto fail;
    return fd;

fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* attr_clnt_exchange - one request (list req) and its reply (list rep) */
static int attr_clnt_exchange(ATTR_STREAM *s, int flags, const ATTR_SPEC *const *req,
                              const ATTR_SPEC *const *rep)
{
    if (attr_print_list(s, 0, req) < 0)
        return -1;
    return attr_scan_list(s, flags, rep);
}

int attr_clnt_request(ATTR_STREAM *s, int flags, ...)
{
    const ATTR_SPEC *req[ATTR_LIST_MAX + 1];
    const ATTR_SPEC *rep[ATTR_LIST_MAX + 1];
    va_list ap;

    va_start(ap, flags);
    attr_list_collect(&ap, req);
    attr_list_collect(&ap, rep);
    va_end(ap);
    return attr_clnt_exchange(s, flags, req, rep);
}

int attr_clnt_call(const char *path, int timeout_ms, int flags, VSTR *why, ...)
{
    const ATTR_SPEC *req[ATTR_LIST_MAX + 1];
    const ATTR_SPEC *rep[ATTR_LIST_MAX + 1];
    ATTR_STREAM *s;
    va_list ap;
    int fd, r, saved;

    va_start(ap, why);
    attr_list_collect(&ap, req);
    attr_list_collect(&ap, rep);
    va_end(ap);

    if ((fd = attr_clnt_connect(path, timeout_ms)) < 0) {
        saved = errno;
        if (why)
            vstr_sprintf(why, "connect to %s: %s", path, strerror(saved));
        errno = saved;
        return -1;
    }
    s = attr_stream_open(fd, timeout_ms);
    r = attr_clnt_exchange(s, flags, req, rep);
    saved = errno;
    if (r < 0 && why)
        vstr_sprintf(why, "%s: %s", path, attr_stream_why(s));
    attr_stream_free(s);
    close(fd);
    errno = saved;
    return r;
}
