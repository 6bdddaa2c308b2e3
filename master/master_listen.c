/*
 * master_listen - open the listening endpoints of a service: TCP sockets
 * (IPv4 and IPv6, per inet_interfaces and inet_protocols), UNIX-domain
 * sockets and fifos in queue_directory/private or public.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mail/priv.h"
#include "master.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"

#define MASTER_HOST_MAX 1025 /* NI_MAXHOST: longest host part of an inet service */

/* master_inet_families - which address families inet_protocols allows */
static int master_inet_families(const char *protocols, int *v4, int *v6, VSTR *why)
{
    ARGV *words = argv_split(protocols, ", \t\r\n");
    int ret = 0;

    *v4 = *v6 = 0;
    for (size_t i = 0; i < words->argc; i++) {
        const char *w = words->argv[i];

        if (strcasecmp(w, "all") == 0) {
            int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

            /* "all" means IPv6 too only where the kernel has it. */
            *v4 = 1;
            if (probe >= 0) {
                *v6 = 1;
                close(probe);
            }
        } else if (strcasecmp(w, "ipv4") == 0) {
            *v4 = 1;
        } else if (strcasecmp(w, "ipv6") == 0) {
            *v6 = 1;
        } else {
            vstr_sprintf(why, "bad inet_protocols value \"%s\"", w);
            ret = -1;
        }
    }
    if (ret == 0 && !*v4 && !*v6) {
        vstr_sprintf(why, "inet_protocols \"%s\" enables no protocol", protocols);
        ret = -1;
    }
    argv_free(words);
    return ret;
}

/* master_inet_split - "[addr]:port", "host:port" or "port"; host NULL for the last */
static int master_inet_split(const char *spec, char **host, char **port, VSTR *why)
{
    const char *colon;

    *host = *port = NULL;
    if (*spec == '[') {
        const char *close_br = strchr(spec, ']');

        if (close_br == NULL || close_br[1] != ':' || close_br[2] == 0 ||
            close_br - spec - 1 >= MASTER_HOST_MAX) {
            vstr_sprintf(why, "bad inet service \"%s\": expected [address]:port", spec);
            return -1;
        }
        *host = mystrndup(spec + 1, (size_t)(close_br - spec - 1));
        *port = mystrdup(close_br + 2);
        return 0;
    }
    if ((colon = strrchr(spec, ':')) != NULL) {
        if (memchr(spec, ':', (size_t)(colon - spec)) != NULL) {
            vstr_sprintf(why, "bad inet service \"%s\": write an IPv6 address as [address]:port",
                         spec);
            return -1;
        }
        if (colon[1] == 0 || colon - spec >= MASTER_HOST_MAX) {
            vstr_sprintf(why, "bad inet service \"%s\": expected host:port", spec);
            return -1;
        }
        *host = mystrndup(spec, (size_t)(colon - spec));
        *port = mystrdup(colon + 1);
        return 0;
    }
    *port = mystrdup(spec);
    return 0;
}

/* master_addr_text - "127.0.0.1 port 25" for messages */
static void master_addr_text(const struct sockaddr *sa, VSTR *text)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    vstr_sprintf(text, "%s port %d", host, port);
}

/* master_listen_add - keep one more descriptor; -1 past MASTER_LISTEN_MAX */
static int master_listen_add(MASTER_SERV *serv, int fd, VSTR *why)
{
    if (serv->listen_count >= MASTER_LISTEN_MAX) {
        vstr_sprintf(why, "service \"%s\": more than %d listening addresses", serv->name,
                     MASTER_LISTEN_MAX);
        close(fd);
        return -1;
    }
    serv->listen_fds[serv->listen_count++] = fd;
    return 0;
}

/* master_inet_bind - one listening TCP socket */
static int master_inet_bind(MASTER_SERV *serv, const struct addrinfo *ai, VSTR *why)
{
    VSTR *text = vstr_alloc(64);
    int on = 1;
    int fd;

    master_addr_text(ai->ai_addr, text);
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        vstr_sprintf(why, "socket for %s: %s", vstr_str(text), strerror(errno));
        goto fail;
    }
    /* Restart without waiting for TIME_WAIT sockets of the previous master. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
        (ai->ai_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0)) {
        vstr_sprintf(why, "setsockopt for %s: %s", vstr_str(text), strerror(errno));
        goto fail;
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        vstr_sprintf(why, "bind %s: %s", vstr_str(text), strerror(errno));
        goto fail;
    }
    if (listen(fd, MASTER_LISTEN_BACKLOG) < 0) {
        vstr_sprintf(why, "listen %s: %s", vstr_str(text), strerror(errno));
        goto fail;
    }
    vstr_free(text);
    return master_listen_add(serv, fd, why);

fail:
    if (fd >= 0)
        close(fd);
    vstr_free(text);
    return -1;
}

/* master_inet_host - bind every address of host (NULL = wildcard) that the families allow */
static int master_inet_host(MASTER_SERV *serv, const char *host, const char *port, int v4, int v6,
                            VSTR *why)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res, *ai, *prev;
    int err, bound = 0;

    hints.ai_family = v4 && v6 ? AF_UNSPEC : v4 ? AF_INET : AF_INET6;
    if ((err = getaddrinfo(host, port, &hints, &res)) != 0) {
        vstr_sprintf(why, "service \"%s\": look up %s port %s: %s", serv->name, host ? host : "*",
                     port, gai_strerror(err));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        if ((ai->ai_family == AF_INET && !v4) || (ai->ai_family == AF_INET6 && !v6) ||
            (ai->ai_family != AF_INET && ai->ai_family != AF_INET6))
            continue;
        /* A name may list one address twice; bind it once. */
        for (prev = res; prev != ai; prev = prev->ai_next)
            if (prev->ai_addrlen == ai->ai_addrlen &&
                memcmp(prev->ai_addr, ai->ai_addr, ai->ai_addrlen) == 0)
                break;
        if (prev != ai)
            continue;
        if (master_inet_bind(serv, ai, why) < 0) {
            freeaddrinfo(res);
            return -1;
        }
        bound++;
    }
    freeaddrinfo(res);
    if (bound == 0) {
        vstr_sprintf(why, "service \"%s\": no address of %s matches inet_protocols", serv->name,
                     host ? host : "*");
        return -1;
    }
    return 0;
}

/* master_inet_open - every socket of an inet service */
static int master_inet_open(MASTER *m, MASTER_SERV *serv, VSTR *why)
{
    char *host, *port;
    int v4, v6, ret = 0;

    if (master_inet_families(m->conf.inet_protocols, &v4, &v6, why) < 0)
        return -1;
    if (master_inet_split(serv->name, &host, &port, why) < 0)
        return -1;
    if (host) {
        ret = master_inet_host(serv, host, port, v4, v6, why);
    } else {
        /* A bare port listens on inet_interfaces. */
        ARGV *ifaces = argv_split(m->conf.inet_interfaces, ", \t\r\n");

        for (size_t i = 0; ret == 0 && i < ifaces->argc; i++) {
            const char *iface = ifaces->argv[i];

            if (strcasecmp(iface, "all") == 0) {
                if (v4)
                    ret = master_inet_host(serv, "0.0.0.0", port, 1, 0, why);
                if (ret == 0 && v6)
                    ret = master_inet_host(serv, "::", port, 0, 1, why);
            } else if (strcasecmp(iface, "loopback-only") == 0) {
                if (v4)
                    ret = master_inet_host(serv, "127.0.0.1", port, 1, 0, why);
                if (ret == 0 && v6)
                    ret = master_inet_host(serv, "::1", port, 0, 1, why);
            } else {
                char *h =
                    *iface == '[' ? mystrndup(iface + 1, strcspn(iface + 1, "]")) : mystrdup(iface);

                ret = master_inet_host(serv, h, port, v4, v6, why);
                myfree(h);
            }
        }
        if (ret == 0 && ifaces->argc == 0) {
            vstr_sprintf(why, "service \"%s\": inet_interfaces is empty", serv->name);
            ret = -1;
        }
        argv_free(ifaces);
    }
    myfree(host);
    myfree(port);
    return ret;
}

/* master_path_own - give a socket or fifo to mail_owner with the right mode */
static int master_path_own(MASTER *m, const char *path, mode_t mode, VSTR *why)
{
    if (chmod(path, mode) < 0 ||
        (priv_is_root() && chown(path, m->conf.owner_uid, m->conf.owner_gid) < 0)) {
        vstr_sprintf(why, "set owner and mode of %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* master_unix_open - a UNIX stream socket in private/ (0600) or public/ (0666) */
static int master_unix_open(MASTER *m, MASTER_SERV *serv, VSTR *why)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(serv->sock_path) >= sizeof(sun.sun_path)) {
        vstr_sprintf(why, "socket path too long: %s", serv->sock_path);
        return -1;
    }
    strcpy(sun.sun_path, serv->sock_path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
        vstr_sprintf(why, "socket: %s", strerror(errno));
        return -1;
    }
    if (unlink(serv->sock_path) < 0 && errno != ENOENT) {
        vstr_sprintf(why, "remove old %s: %s", serv->sock_path, strerror(errno));
        goto fail;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        vstr_sprintf(why, "bind %s: %s", serv->sock_path, strerror(errno));
        goto fail;
    }
    if (master_path_own(m, serv->sock_path, serv->private_ ? 0600 : 0666, why) < 0)
        goto fail;
    if (listen(fd, MASTER_LISTEN_BACKLOG) < 0) {
        vstr_sprintf(why, "listen %s: %s", serv->sock_path, strerror(errno));
        goto fail;
    }
    return master_listen_add(serv, fd, why);

fail:
    close(fd);
    return -1;
}

/* master_fifo_open - a fifo, held open read-write so that it never reports EOF */
static int master_fifo_open(MASTER *m, MASTER_SERV *serv, VSTR *why)
{
    int fd;

    if (unlink(serv->sock_path) < 0 && errno != ENOENT) {
        vstr_sprintf(why, "remove old %s: %s", serv->sock_path, strerror(errno));
        return -1;
    }
    if (mkfifo(serv->sock_path, 0600) < 0) {
        vstr_sprintf(why, "create fifo %s: %s", serv->sock_path, strerror(errno));
        return -1;
    }
    if (master_path_own(m, serv->sock_path, serv->private_ ? 0600 : 0622, why) < 0)
        return -1;
    if ((fd = open(serv->sock_path, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0) {
        vstr_sprintf(why, "open fifo %s: %s", serv->sock_path, strerror(errno));
        return -1;
    }
    return master_listen_add(serv, fd, why);
}

/* master_listen_open - every listening descriptor of serv; 0 or -1 with why */
int master_listen_open(MASTER *m, MASTER_SERV *serv, VSTR *why)
{
    int ret;

    switch (serv->type) {
    case MASTER_TYPE_INET: ret = master_inet_open(m, serv, why); break;
    case MASTER_TYPE_UNIX: ret = master_unix_open(m, serv, why); break;
    case MASTER_TYPE_FIFO: ret = master_fifo_open(m, serv, why); break;
    default: msg_panic("master_listen_open: bad type %d", (int)serv->type);
    }
    if (ret < 0)
        master_listen_close(serv);
    return ret;
}

/* master_listen_close - close what master_listen_open opened */
void master_listen_close(MASTER_SERV *serv)
{
    for (int i = 0; i < serv->listen_count; i++)
        close(serv->listen_fds[i]);
    serv->listen_count = 0;
}
