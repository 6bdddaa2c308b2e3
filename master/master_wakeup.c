/*
 * master_wakeup - periodic wakeup requests for services with a wakeup time
 * (qmgr, pickup): one MASTER_TRIGGER_WAKEUP byte, sent without ever
 * blocking master. A request that would block is dropped; the next period
 * sends another.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "master.h"
#include "util/msg.h"

/* master_wakeup_unix - connect, write the byte, close; all non-blocking */
static void master_wakeup_unix(MASTER_SERV *serv)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char req = MASTER_TRIGGER_WAKEUP;
    int fd;

    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", serv->sock_path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
        msg_warn("%s: wakeup: socket: %m", serv->name);
        return;
    }
    /* A full listen queue means the service has plenty to do already. */
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        if (errno != EAGAIN)
            msg_warn("%s: wakeup: connect %s: %m", serv->name, serv->sock_path);
    } else if (write(fd, &req, 1) < 0 && errno != EAGAIN) {
        msg_warn("%s: wakeup: write: %m", serv->name);
    }
    close(fd);
}

/* master_wakeup_fifo - write the byte through master's own descriptor */
static void master_wakeup_fifo(MASTER_SERV *serv)
{
    char req = MASTER_TRIGGER_WAKEUP;

    if (serv->listen_count > 0 && write(serv->listen_fds[0], &req, 1) < 0 && errno != EAGAIN)
        msg_warn("%s: wakeup: write fifo %s: %m", serv->name, serv->sock_path);
}

/* master_wakeup_event - time to wake the service */
static void master_wakeup_event(evutil_socket_t fd, short what, void *ctx)
{
    MASTER_SERV *serv = ctx;

    (void)fd, (void)what;
    /* "wakeup?" wakes only a service that has been used. */
    if (serv->wakeup_if_used && !serv->ever_used)
        return;
    if (msg_verbose)
        msg_info("%s: wakeup", serv->name);
    if (serv->type == MASTER_TYPE_FIFO)
        master_wakeup_fifo(serv);
    else if (serv->type == MASTER_TYPE_UNIX)
        master_wakeup_unix(serv);
}

/* master_wakeup_start - first wakeup now, then every serv->wakeup seconds */
void master_wakeup_start(MASTER *m, MASTER_SERV *serv)
{
    struct timeval tv = {.tv_sec = serv->wakeup};

    if (serv->wakeup <= 0 || serv->type == MASTER_TYPE_INET)
        return;
    serv->wakeup_ev = event_new(m->base, -1, EV_PERSIST, master_wakeup_event, serv);
    event_add(serv->wakeup_ev, &tv);
    master_wakeup_event(-1, 0, serv);
}
