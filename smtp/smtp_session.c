/*
 * smtp_session - connecting to a server (with smtp_connect_timeout and the
 * optional bind addresses) and the process's cache of idle sessions.
 *
 * The cache: after a delivery the session stays open, ready for the next
 * MAIL FROM, keyed by the destination (nexthop, port, protocol and TLS
 * policy). The next request for the same destination, on the same qmgr
 * connection or a later one served by this process, takes it, sends RSET
 * and uses it, within smtp_connection_reuse_count_limit transactions and
 * smtp_connection_reuse_time_limit seconds since the connection was made.
 * An idle session is closed (QUIT) after smtp_connection_cache_time_limit
 * seconds. At most SMTP_CACHE_MAX sessions are kept per process.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "smtp.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/vstr.h"

static SMTP_SESSION *smtp_cache[SMTP_CACHE_MAX];

/* smtp_session_new - a session on a connected stream */
SMTP_SESSION *smtp_session_new(SMTP_STREAM *stream, const char *host, const char *addr,
                               unsigned port, const char *dest_key)
{
    SMTP_SESSION *sess = mycalloc(1, sizeof(*sess));
    VSTR *buf = vstr_alloc(128);

    sess->stream = stream;
    sess->host = mystrdup(host);
    sess->addr = mystrdup(addr);
    sess->port = port;
    sess->dest_key = mystrdup(dest_key);
    vstr_sprintf(buf, "%s[%s]", host, addr);
    sess->namaddr = mystrdup(vstr_str(buf));
    if (port)
        vstr_sprintf_append(buf, ":%u", port);
    sess->relay = vstr_export(buf);
    sess->start = time(NULL);
    return sess;
}

/* smtp_session_free - close and release */
void smtp_session_free(SMTP_SESSION *sess)
{
    if (sess == NULL)
        return;
    smtp_stream_free(sess->stream);
    myfree(sess->host);
    myfree(sess->addr);
    myfree(sess->namaddr);
    myfree(sess->relay);
    myfree(sess->dest_key);
    myfree(sess);
}

/* smtp_session_quit - polite goodbye, then free */
void smtp_session_quit(SMTP_SESSION *sess)
{
    if (!sess->broken) {
        smtp_stream_put(sess->stream, "QUIT\r\n", 6);
        if (smtp_stream_flush(sess->stream, smtp_conf.quit_timeout) == SMTP_IO_OK &&
            !smtp_conf.skip_quit_response) {
            SMTP_RESP *resp = smtp_resp_alloc();

            (void)smtp_stream_read_resp(sess->stream, resp, smtp_deadline(smtp_conf.quit_timeout));
            smtp_resp_free(resp);
        }
    }
    smtp_session_free(sess);
}

/* smtp_bind - the configured source address for the family, if any */
static int smtp_bind(int fd, int family, VSTR *why)
{
    const char *text = family == AF_INET ? smtp_conf.bind_address : smtp_conf.bind_address6;
    struct sockaddr_storage ss;
    socklen_t len;

    if (text == NULL || *text == 0)
        return 0;
    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        sin->sin_family = AF_INET;
        if (inet_pton(AF_INET, text, &sin->sin_addr) != 1)
            goto bad;
        len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

        sin6->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
            goto bad;
        len = sizeof(*sin6);
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        vstr_sprintf(why, "bind %s: %s", text, strerror(errno));
        return -1;
    }
    return 0;
bad:
    vstr_sprintf(why, "%s: bad address \"%s\"",
                 family == AF_INET ? "smtp_bind_address" : "smtp_bind_address6", text);
    return -1;
}

/* smtp_connect_addr - connect within smtp_connect_timeout */
int smtp_connect_addr(int family, const unsigned char *addr, unsigned port, const char *path,
                      VSTR *why)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, err;
    socklen_t errlen = sizeof(err);
    struct pollfd pfd;
    long long deadline = smtp_deadline(smtp_conf.connect_timeout);

    memset(&ss, 0, sizeof(ss));
    if (path != NULL) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;

        if (strlen(path) >= sizeof(sun->sun_path)) {
            vstr_sprintf(why, "socket path too long");
            return -1;
        }
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, path, strlen(path) + 1);
        len = sizeof(*sun);
        family = AF_UNIX;
    } else if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        sin->sin_family = AF_INET;
        sin->sin_port = htons((unsigned short)port);
        memcpy(&sin->sin_addr, addr, 4);
        len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((unsigned short)port);
        memcpy(&sin6->sin6_addr, addr, 16);
        len = sizeof(*sin6);
    }
    if ((fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
        vstr_sprintf(why, "socket: %s", strerror(errno));
        return -1;
    }
    if (family != AF_UNIX && smtp_bind(fd, family, why) < 0)
        goto fail;
    if (connect(fd, (struct sockaddr *)&ss, len) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        vstr_sprintf(why, "%s", strerror(errno));
        goto fail;
    }
    pfd.fd = fd;
    pfd.events = POLLOUT;
    for (;;) {
        long long left = deadline - smtp_now_ms();
        int n;

        if (left <= 0) {
            vstr_sprintf(why, "Connection timed out");
            goto fail;
        }
        n = poll(&pfd, 1, (int)left);
        if (n > 0)
            break;
        if (n < 0 && errno != EINTR) {
            vstr_sprintf(why, "poll: %s", strerror(errno));
            goto fail;
        }
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
        err = errno;
    if (err != 0) {
        vstr_sprintf(why, "%s", strerror(err));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

/* smtp_cache_usable - may this idle session serve another transaction */
static int smtp_cache_usable(const SMTP_SESSION *sess, time_t now)
{
    if (sess->broken)
        return 0;
    if (smtp_conf.reuse_count_limit > 0 && sess->use_count >= smtp_conf.reuse_count_limit)
        return 0;
    if (now - sess->start >= smtp_conf.reuse_time_limit)
        return 0;
    if (now - sess->idle_since >= smtp_conf.cache_time_limit)
        return 0;
    return 1;
}

/* smtp_cache_take - an idle session for the destination */
SMTP_SESSION *smtp_cache_take(const char *dest_key)
{
    time_t now = time(NULL);

    smtp_cache_expire(0);
    for (int i = 0; i < SMTP_CACHE_MAX; i++) {
        SMTP_SESSION *sess = smtp_cache[i];

        if (sess != NULL && strcmp(sess->dest_key, dest_key) == 0) {
            smtp_cache[i] = NULL;
            if (smtp_cache_usable(sess, now) && smtp_stream_alive(sess->stream))
                return sess;
            sess->broken = 1;
            smtp_session_free(sess);
        }
    }
    return NULL;
}

/* smtp_cache_put - keep a session for later, or close it */
void smtp_cache_put(SMTP_SESSION *sess)
{
    time_t now = time(NULL);
    int slot = -1;

    sess->idle_since = now;
    if (!smtp_conf.cache_on_demand || smtp_conf.cache_time_limit <= 0 ||
        !smtp_cache_usable(sess, now)) {
        smtp_session_quit(sess);
        return;
    }
    for (int i = 0; i < SMTP_CACHE_MAX && slot < 0; i++)
        if (smtp_cache[i] == NULL)
            slot = i;
    if (slot < 0) {
        /* Full: the session idle the longest makes room. */
        slot = 0;
        for (int i = 1; i < SMTP_CACHE_MAX; i++)
            if (smtp_cache[i]->idle_since < smtp_cache[slot]->idle_since)
                slot = i;
        smtp_session_quit(smtp_cache[slot]);
    }
    smtp_cache[slot] = sess;
}

/* smtp_cache_expire - close what has been idle too long */
long smtp_cache_expire(int force)
{
    time_t now = time(NULL);
    long next = -1;

    for (int i = 0; i < SMTP_CACHE_MAX; i++) {
        SMTP_SESSION *sess = smtp_cache[i];
        long left;

        if (sess == NULL)
            continue;
        if (force || !smtp_cache_usable(sess, now)) {
            smtp_cache[i] = NULL;
            smtp_session_quit(sess);
            continue;
        }
        left = (long)(sess->idle_since + smtp_conf.cache_time_limit - now);
        if (next < 0 || left < next)
            next = left;
    }
    return next;
}
