/*
 * safe_io - I/O that either completes, times out, or says why not.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/vstr.h"

ssize_t read_full(int fd, void *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = read(fd, (char *)buf + done, len - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

int write_full(int fd, const void *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = write(fd, (const char *)buf + done, len - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* timed_poll - wait for one event on fd */
static int timed_poll(int fd, short events, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = events};

    for (;;) {
        int n = poll(&pfd, 1, timeout_ms < 0 ? -1 : timeout_ms);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        return 0;
    }
}

int timed_wait_readable(int fd, int timeout_ms)
{
    return timed_poll(fd, POLLIN, timeout_ms);
}

int timed_wait_writable(int fd, int timeout_ms)
{
    return timed_poll(fd, POLLOUT, timeout_ms);
}

ssize_t timed_read(int fd, void *buf, size_t len, int timeout_ms)
{
    for (;;) {
        if (timed_wait_readable(fd, timeout_ms) < 0)
            return -1;
        ssize_t n = read(fd, buf, len);

        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        return n;
    }
}

ssize_t timed_read_full(int fd, void *buf, size_t len, int timeout_ms)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = timed_read(fd, (char *)buf + done, len - done, timeout_ms);

        if (n < 0)
            return -1;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

int timed_write_full(int fd, const void *buf, size_t len, int timeout_ms)
{
    size_t done = 0;

    while (done < len) {
        if (timed_wait_writable(fd, timeout_ms) < 0)
            return -1;
        ssize_t n = write(fd, (const char *)buf + done, len - done);

        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    int r = fsync(fd);
    int saved = errno;

    close(fd);
    errno = saved;
    return r;
}

int fsync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return fsync_dir(".");
    if (slash == path)
        return fsync_dir("/");
    char *dir = mystrndup(path, (size_t)(slash - path));
    int r = fsync_dir(dir);
    int saved = errno;

    myfree(dir);
    errno = saved;
    return r;
}

int file_write_atomic(const char *path, const void *data, size_t len, int mode)
{
    VSTR *tmp = vstr_alloc(strlen(path) + 32);
    int fd, saved;

    vstr_sprintf(tmp, "%s.tmp.%ld", path, (long)getpid());
    fd = open(vstr_str(tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        goto fail;
    if (write_full(fd, data, len) < 0 || fsync(fd) < 0) {
        saved = errno;
        close(fd);
        errno = saved;
        goto fail_unlink;
    }
    if (close(fd) < 0 || rename(vstr_str(tmp), path) < 0)
        goto fail_unlink;
    if (fsync_parent(path) < 0)
        goto fail;
    vstr_free(tmp);
    return 0;

fail_unlink:
    saved = errno;
    unlink(vstr_str(tmp));
    errno = saved;
fail:
    saved = errno;
    vstr_free(tmp);
    errno = saved;
    return -1;
}

char *file_read_all(const char *path, size_t limit, size_t *lenp)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    VSTR *buf;
    char chunk[8192];
    ssize_t n;
    int saved;

    if (fd < 0)
        return NULL;
    buf = vstr_alloc(sizeof(chunk));
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail;
        if (limit && buf->len + (size_t)n > limit) {
            errno = EFBIG;
            goto fail;
        }
        vstr_ncat(buf, chunk, (size_t)n);
    }
    close(fd);
    if (lenp)
        *lenp = buf->len;
    return vstr_export(buf);

fail:
    saved = errno;
    close(fd);
    vstr_free(buf);
    errno = saved;
    return NULL;
}

int close_on_exec(int fd, int on)
{
    int flags = fcntl(fd, F_GETFD, 0);

    if (flags < 0)
        return -1;
    if (fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC) < 0)
        return -1;
    return (flags & FD_CLOEXEC) != 0;
}

int non_blocking(int fd, int on)
{
    int flags = fcntl(fd, F_GETFL, 0);

    if (flags < 0)
        return -1;
    if (fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) < 0)
        return -1;
    return (flags & O_NONBLOCK) != 0;
}
