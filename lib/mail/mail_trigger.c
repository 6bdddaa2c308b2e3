/*
 * mail_trigger - send wakeup and flush requests to a trigger service.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mail/attr.h"
#include "mail/mail_server.h"
#include "mail/mail_trigger.h"
#include "util/safe_io.h"

/* mail_trigger_write - all of buf, each wait bounded; MSG_NOSIGNAL so that a
   service that went away is an error (EPIPE), not a signal to the caller.
   A fresh socket nearly always takes a request whole: try before polling. */
static int mail_trigger_write(int fd, const char *buf, size_t len, int timeout_ms)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN || timed_wait_writable(fd, timeout_ms) < 0)
                return -1;
            continue;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* mail_trigger_send - the requests, each with its NUL, in one write */
int mail_trigger_send(int fd, const char *const *requests, int timeout_ms)
{
    char buf[MAIL_SERVER_TRIGGER_MAX];
    size_t len = 0;

    for (const char *const *rp = requests; *rp; rp++) {
        size_t n = strlen(*rp) + 1;

        /* The service reads at most this much: what follows would be lost. */
        if (n > sizeof(buf) - len) {
            errno = EMSGSIZE;
            return -1;
        }
        memcpy(buf + len, *rp, n);
        len += n;
    }
    return mail_trigger_write(fd, buf, len, timeout_ms);
}

/* mail_trigger - one connection, the requests, close */
int mail_trigger(const char *path, const char *const *requests, int timeout_ms)
{
    int fd, saved;

    if ((fd = attr_clnt_connect(path, timeout_ms)) < 0)
        return -1;
    if (mail_trigger_send(fd, requests, timeout_ms) < 0) {
        saved = errno;
        (void)close(fd);
        errno = saved;
        return -1;
    }
    return close(fd);
}

/* mail_trigger_one - a single request */
int mail_trigger_one(const char *path, const char *request, int timeout_ms)
{
    const char *requests[2] = {request, NULL};

    return mail_trigger(path, requests, timeout_ms);
}
