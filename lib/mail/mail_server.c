/*
 * mail_server - daemon skeleton: arguments, configuration, privilege drop,
 * and the accept loops of the multi-session, single-client and trigger
 * servers, with master's status protocol (master_proto.h).
 *
 * Waiting for clients. Every process of a service watches the same
 * listening socket. Watched through each process's libevent loop, a new
 * connection wakes every idle process of the service and all but one find
 * nothing to accept: with a hundred idle cleanup processes that is a
 * hundred context switches per message (the "thundering herd"). A
 * single-client server therefore waits between clients in a private epoll
 * set of its own, where the listeners are registered with EPOLLEXCLUSIVE:
 * the kernel then wakes one waiting process per connection (processes busy
 * with a client are not waiting and are skipped). The status pipe sits in
 * the same set, so a reload is seen at once, and the wait ends at the
 * earliest timer of the process's event base (idle limit, watchdog, the
 * daemon's own timers), which then runs without blocking. docs/master.md
 * explains why this and not an accept lock. Multi-session servers (smtpd)
 * keep the shared wait: their sessions live on the event base, and few
 * processes each hold many sessions, so their herd is small.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/mail_server.h"
#include "mail/master_proto.h"
#include "mail/priv.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/strutil.h"

/* Private wait (single-client servers): how long one epoll_wait may last. */
#define MS_WAIT_MAX_MS (60 * 1000)     /* bounds the effect of a wall-clock step */
#define MS_WAIT_DUE_MS 10              /* a timer libevent did not find due yet */
#define MS_WAIT_FOREIGN_MS 100         /* while the daemon has descriptor events on the base */
#define MS_EP_STATUS MASTER_LISTEN_MAX /* epoll data of the status pipe; listeners are 0.. */

/* Trigger servers. */
#define MS_TRIGGER_BATCH 64        /* connections accepted per listener wakeup at most */
#define MS_TRIGGER_PENDING_MAX 256 /* connections waiting for the rest of their request */

/*
 * Heap behaviour. Each message makes a daemon allocate and free buffers of
 * 64 KB and more (request buffers, queue file buffers, content pieces).
 * With glibc's defaults the freed top of the heap is given back at once
 * (brk), and blocks from 128 KB up are mmap()ed and munmap()ed each time:
 * every round then pays page faults to get the memory back, and each
 * unmapping a TLB shoot-down on every CPU, which in a virtual machine costs
 * more than the work itself. Memory freed below these sizes stays with the
 * process for the next message instead.
 */
#define MS_MALLOC_TRIM_THRESHOLD (4 * 1024 * 1024) /* freed heap top kept */
#define MS_MALLOC_MMAP_THRESHOLD (2 * 1024 * 1024) /* larger blocks use mmap */

/* The whole state of one service process; there is one per process. */
typedef struct MS_STATE {
    const MAIL_SERVER_SPEC *spec;
    MAIL_SERVER_ARGS args;
    int listen_count;                           /* -s N */
    struct event *listen_ev[MASTER_LISTEN_MAX]; /* one per listening fd */
    struct event *status_ev;                    /* notices master closing the pipe */
    struct event *idle_ev;                      /* max_idle */
    struct event *watchdog_ev;                  /* re-arms alarm(daemon_timeout) */
    struct event *retry_ev;                     /* resume accepting after EMFILE */
    int unpriv;                                 /* -u */
    int chroot;                                 /* -c */
    int is_fifo;                                /* -t fifo */
    long max_idle, max_use, ipc_timeout, daemon_timeout;
    long use_count;      /* clients (or triggers) taken so far */
    int sessions;        /* MULTI sessions open now */
    int listening;       /* listen events are enabled */
    int draining;        /* stopped accepting for good */
    int reported;        /* last MASTER_STAT_* sent, -1 none */
    int epfd;            /* private wait set (single-client servers), else -1 */
    int exclusive;       /* EPOLLEXCLUSIVE accepted by the kernel */
    int trigger_pending; /* trigger connections whose request is not all there */
} MS_STATE;

static MS_STATE ms;

static void ms_update(void);

/* ms_exit - normal end of the process */
static _Noreturn void ms_exit(void)
{
    if (ms.spec->pre_exit)
        ms.spec->pre_exit(&ms.args);
    exit(0);
}

/* ms_stop_listening - close the listening descriptors: no new clients */
static void ms_stop_listening(void)
{
    for (int i = 0; i < ms.listen_count; i++) {
        if (ms.listen_ev[i]) {
            /* master keeps the socket open, so closing our descriptor would
               not take it out of the private wait set: remove it first. */
            if (ms.epfd >= 0)
                (void)epoll_ctl(ms.epfd, EPOLL_CTL_DEL, MASTER_LISTEN_FD + i, NULL);
            event_free(ms.listen_ev[i]);
            ms.listen_ev[i] = NULL;
            close(MASTER_LISTEN_FD + i);
        }
    }
    if (ms.retry_ev)
        event_del(ms.retry_ev);
    ms.listening = 0;
}

/* ms_drain - stop accepting; exit as soon as no session is open and no
   trigger request is still arriving */
static void ms_drain(const char *why)
{
    if (ms.draining)
        return;
    ms.draining = 1;
    if (msg_verbose)
        msg_info("%s -- finishing open sessions and exiting", why);
    ms_stop_listening();
    if (ms.status_ev)
        event_del(ms.status_ev);
    if (ms.sessions == 0 && ms.trigger_pending == 0)
        ms_exit();
}

/* ms_report - tell master whether this process can take a client */
static void ms_report(int status)
{
    MASTER_STATUS rec = {.pid = (int32_t)getpid(), .status = status};

    if (ms.draining || status == ms.reported)
        return;
    ms.reported = status;
    if (write_full(MASTER_STATUS_FD, &rec, sizeof(rec)) < 0)
        ms_drain(errno == EPIPE ? "master closed the status pipe" : "status pipe write error");
}

/* ms_private_listen - add listener i to the private wait set, or take it out */
static void ms_private_listen(int i, int on)
{
    int fd = MASTER_LISTEN_FD + i;
    struct epoll_event ev = {.events = EPOLLIN | (ms.exclusive ? EPOLLEXCLUSIVE : 0),
                             .data.u32 = (uint32_t)i};

    if (!on) {
        if (epoll_ctl(ms.epfd, EPOLL_CTL_DEL, fd, &ev) < 0 && errno != ENOENT)
            msg_fatal("%s: epoll_ctl DEL listener: %m", ms.args.service);
        return;
    }
    if (epoll_ctl(ms.epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
        return;
    /* Kernels before 4.5 refuse the flag: correct, only less efficient. */
    if (errno == EINVAL && ms.exclusive) {
        ms.exclusive = 0;
        ev.events = EPOLLIN;
        if (epoll_ctl(ms.epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
            return;
    }
    msg_fatal("%s: epoll_ctl ADD listener: %m", ms.args.service);
}

/* ms_listen_enable - start or stop watching the listening descriptors */
static void ms_listen_enable(int on)
{
    if (ms.draining || on == ms.listening)
        return;
    for (int i = 0; i < ms.listen_count; i++) {
        if (ms.listen_ev[i] == NULL)
            continue;
        if (ms.epfd >= 0)
            ms_private_listen(i, on);
        else if (on)
            event_add(ms.listen_ev[i], NULL);
        else
            event_del(ms.listen_ev[i]);
    }
    ms.listening = on;
}

/* ms_idle_arm - (re)start the idle timer, or stop it while clients are open */
static void ms_idle_arm(int idle)
{
    if (ms.idle_ev == NULL)
        return;
    if (idle) {
        struct timeval tv = {.tv_sec = ms.max_idle};

        event_add(ms.idle_ev, &tv);
    } else {
        event_del(ms.idle_ev);
    }
}

/* ms_used_up - served max_use clients */
static int ms_used_up(void)
{
    return (ms.spec->flags & MAIL_SERVER_LONG_RUNNING) == 0 && ms.max_use > 0 &&
           ms.use_count >= ms.max_use;
}

/* ms_update - after any change: accept or not, report, idle timer, exit */
static void ms_update(void)
{
    int full = ms.spec->max_sessions > 0 && ms.sessions >= ms.spec->max_sessions;

    if (ms.draining) {
        if (ms.sessions == 0 && ms.trigger_pending == 0)
            ms_exit();
        return;
    }
    /*
     * A multi-session process that reached max_use keeps accepting while it
     * has sessions and retires when it next becomes idle, as Postfix's
     * multi_server does: max_use renews processes, it must not cap how
     * many sessions one process holds at once.
     */
    if (ms_used_up() && (ms.spec->kind != MAIL_SERVER_MULTI || ms.sessions == 0)) {
        /* Busy for good, so that master starts a fresh process if needed. */
        ms_report(MASTER_STAT_TAKEN);
        ms_drain("use limit reached");
        return;
    }
    ms_listen_enable(!full);
    ms_report(full ? MASTER_STAT_TAKEN : MASTER_STAT_AVAIL);
    ms_idle_arm(ms.sessions == 0);
}

/* mail_server_session_done - a MULTI session has ended */
void mail_server_session_done(void)
{
    if (ms.spec == NULL || ms.spec->kind != MAIL_SERVER_MULTI)
        msg_panic("mail_server_session_done: not a multi-session server");
    if (ms.sessions <= 0)
        msg_panic("mail_server_session_done: no session is open");
    ms.sessions--;
    ms_update();
}

int mail_server_sessions(void)
{
    return ms.sessions;
}

int mail_server_draining(void)
{
    return ms.draining;
}

/* ms_read_trigger - collect one request from a trigger client */
static size_t ms_read_trigger(int fd, char *buf, size_t size)
{
    size_t len = 0;
    struct timespec start, now;

    /*
     * A trigger is a few bytes written at once and a close. The read runs
     * inside the service's only loop (qmgr's scheduler), so a client that
     * connects and stalls must not hold it: the whole request has to arrive
     * within MAIL_SERVER_TRIGGER_WAIT_MS, whatever ipc_timeout says.
     */
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (len < size) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;

        if (spent >= MAIL_SERVER_TRIGGER_WAIT_MS) {
            msg_warn("%s: trigger request not complete within %d ms: dropped", ms.args.service,
                     MAIL_SERVER_TRIGGER_WAIT_MS);
            return 0;
        }
        ssize_t n = timed_read(fd, buf + len, size - len, MAIL_SERVER_TRIGGER_WAIT_MS - (int)spent);

        if (n < 0) {
            msg_warn("%s: read trigger request: %m", ms.args.service);
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    return len;
}

/* ms_serve_trigger - hand one trigger request to the daemon */
static void ms_serve_trigger(const char *buf, size_t len)
{
    if (len == 0)
        return;
    ms_report(MASTER_STAT_TAKEN);
    ms.use_count++;
    ms.spec->trigger_service(&ms.args, buf, len);
}

/* One trigger connection whose request has not all arrived yet. */
typedef struct MS_TRIGGER {
    int fd;
    size_t len;
    long long deadline; /* monotonic ms: the whole request by then */
    struct event *ev;
    char buf[MAIL_SERVER_TRIGGER_MAX];
} MS_TRIGGER;

/* ms_now_ms - monotonic clock in milliseconds */
static long long ms_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ms_trigger_fill - read what has arrived; 1 when the request is whole
   (end of input, or the buffer is full), 0 to wait for more */
static int ms_trigger_fill(MS_TRIGGER *t)
{
    while (t->len < sizeof(t->buf)) {
        ssize_t n = read(t->fd, t->buf + t->len, sizeof(t->buf) - t->len);

        if (n > 0) {
            t->len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n < 0)
            msg_warn("%s: read trigger request: %m", ms.args.service);
        return 1; /* end of input, or an error: serve what came */
    }
    return 1;
}

/* ms_trigger_end - close the connection; serve its request unless dropped */
static void ms_trigger_end(MS_TRIGGER *t, int serve)
{
    if (t->ev) {
        event_free(t->ev);
        ms.trigger_pending--;
    }
    close(t->fd);
    if (serve)
        ms_serve_trigger(t->buf, t->len);
    myfree(t);
}

/* ms_trigger_event - more bytes of a pending trigger request, or its time is up */
static void ms_trigger_event(evutil_socket_t fd, short what, void *ctx)
{
    MS_TRIGGER *t = ctx;
    long long left = t->deadline - ms_now_ms();

    (void)fd;
    if ((what & EV_READ) && ms_trigger_fill(t)) {
        ms_trigger_end(t, 1);
    } else if (left <= 0) {
        msg_warn("%s: trigger request not complete within %d ms: dropped", ms.args.service,
                 MAIL_SERVER_TRIGGER_WAIT_MS);
        ms_trigger_end(t, 0);
    } else {
        struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};

        event_add(t->ev, &tv);
        return;
    }
    ms_update();
}

/* ms_trigger_start - a new trigger connection: serve it now if its request is
   all there, else wait for the rest from the loop */
static void ms_trigger_start(int fd)
{
    MS_TRIGGER *t = mycalloc(1, sizeof(*t));
    struct timeval tv = {.tv_sec = MAIL_SERVER_TRIGGER_WAIT_MS / 1000,
                         .tv_usec = (MAIL_SERVER_TRIGGER_WAIT_MS % 1000) * 1000};

    t->fd = fd;
    t->deadline = ms_now_ms() + MAIL_SERVER_TRIGGER_WAIT_MS;
    if (ms_trigger_fill(t)) {
        ms_trigger_end(t, 1);
        return;
    }
    /* Too many slow clients already: this one gets the bounded blocking read. */
    if (ms.trigger_pending >= MS_TRIGGER_PENDING_MAX) {
        t->len += ms_read_trigger(fd, t->buf + t->len, sizeof(t->buf) - t->len);
        ms_trigger_end(t, t->len > 0);
        return;
    }
    t->ev = event_new(ms.args.base, fd, EV_READ, ms_trigger_event, t);
    ms.trigger_pending++;
    event_add(t->ev, &tv);
}

/* ms_fifo_event - trigger bytes arrived on the fifo */
static void ms_fifo_event(int fd)
{
    char buf[MAIL_SERVER_TRIGGER_MAX];
    ssize_t n = read(fd, buf, sizeof(buf));

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0)
        msg_fatal("%s: read fifo: %m", ms.args.service);
    ms_idle_arm(0);
    ms_serve_trigger(buf, (size_t)n);
    ms_update();
}

/* ms_retry_event - accept again after running out of descriptors */
static void ms_retry_event(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd, (void)what, (void)ctx;
    ms_update();
}

/* ms_accept_one - one client from the listener; -1 when there is none now
   (or accepting must pause, which this arranges) */
static int ms_accept_one(int lfd, int flags)
{
    int fd;

    /* Other processes of the service share the socket: losing the race is normal. */
    if ((fd = accept4(lfd, NULL, NULL, flags)) >= 0)
        return fd;
    if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
        return -1;
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        struct timeval tv = {.tv_sec = 1};

        /* Level-triggered: without a pause this would spin. */
        msg_warn("%s: accept: %m -- pausing", ms.args.service);
        ms_listen_enable(0);
        event_add(ms.retry_ev, &tv);
        return -1;
    }
    msg_fatal("%s: accept: %m", ms.args.service);
}

/* ms_accept_triggers - every trigger client waiting now, up to a batch */
static void ms_accept_triggers(int lfd)
{
    int fd, taken = 0;

    /*
     * A trigger service (qmgr) gets one connection per message that
     * cleanup commits. Taking one per loop turn lets the backlog fill
     * while the loop does other work, and then every cleanup process waits
     * in connect(): take all that wait, without waiting for their bytes.
     */
    while (taken < MS_TRIGGER_BATCH && ms.listening &&
           (fd = ms_accept_one(lfd, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
        taken++;
        ms_idle_arm(0);
        ms_trigger_start(fd);
    }
    if (taken > 0)
        ms_update();
}

/* ms_accept_event - a client is waiting on a listening socket */
static void ms_accept_event(evutil_socket_t lfd, short what, void *ctx)
{
    int fd;

    (void)what, (void)ctx;
    if (ms.is_fifo) {
        ms_fifo_event(lfd);
        return;
    }
    if (ms.spec->kind == MAIL_SERVER_TRIGGER) {
        ms_accept_triggers(lfd);
        return;
    }
    if ((fd = ms_accept_one(lfd, SOCK_CLOEXEC |
                                     (ms.spec->kind == MAIL_SERVER_MULTI ? SOCK_NONBLOCK : 0))) < 0)
        return;
    ms_idle_arm(0);
    if (ms.spec->kind == MAIL_SERVER_MULTI) {
        ms.sessions++;
        ms.use_count++;
        ms_update();
        ms.spec->multi_service(&ms.args, fd);
        return;
    }
    ms_report(MASTER_STAT_TAKEN);
    ms.use_count++;
    ms.spec->single_service(&ms.args, fd);
    close(fd);
    ms_update();
}

/* ms_status_event - the status pipe's read end is gone: reload or master exit */
static void ms_status_event(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd, (void)what, (void)ctx;
    ms_drain("master closed the status pipe");
}

/* ms_idle_event - max_idle seconds without a client */
static void ms_idle_event(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd, (void)what, (void)ctx;
    if (ms.sessions > 0 || ms.trigger_pending > 0)
        return;
    if (msg_verbose)
        msg_info("idle timeout -- exiting");
    ms_exit();
}

/* ms_watchdog_event - the loop still runs: push the alarm further out */
static void ms_watchdog_event(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd, (void)what, (void)ctx;
    alarm((unsigned)ms.daemon_timeout);
}

/* ms_usage - master passed something this program does not understand */
static _Noreturn void ms_usage(const char *prog)
{
    msg_fatal("usage: %s -n service -t type [-u] [-c] [-v] [-s count] [-o name=value]... "
              "[args...] (this program is started by master)",
              prog);
}

/* ms_parse_args - master's options; the rest is the daemon's */
static void ms_parse_args(int argc, char **argv, ARGV *overrides)
{
    long count = 1;
    int ch;

    opterr = 0;
    optind = 1;
    while ((ch = getopt(argc, argv, "+n:t:ucvs:o:")) != -1) {
        switch (ch) {
        case 'n': ms.args.service = optarg; break;
        case 't': ms.args.type = optarg; break;
        case 'u': ms.unpriv = 1; break;
        case 'c': ms.chroot = 1; break;
        case 'v': msg_verbose++; break;
        case 's':
            if (parse_long(optarg, 1, MASTER_LISTEN_MAX, &count) < 0)
                msg_fatal("bad listener count \"-s %s\"", optarg);
            break;
        case 'o': argv_add(overrides, optarg, (char *)NULL); break;
        default: ms_usage(argv[0]);
        }
    }
    if (ms.args.service == NULL || ms.args.type == NULL)
        ms_usage(argv[0]);
    ms.listen_count = (int)count;
    ms.is_fifo = strcmp(ms.args.type, "fifo") == 0;
    ms.args.argc = argc - optind;
    ms.args.argv = argv + optind;
}

/* ms_take_fds - check master's descriptors and close everything else */
static void ms_take_fds(void)
{
    for (int fd = MASTER_STATUS_FD; fd < MASTER_LISTEN_FD + ms.listen_count; fd++) {
        if (fcntl(fd, F_GETFD) < 0)
            msg_fatal("descriptor %d is not open: this program is run by master", fd);
        close_on_exec(fd, 1);
    }
    for (int i = 0; i < ms.listen_count; i++)
        non_blocking(MASTER_LISTEN_FD + i, 1);
    /* Nothing else inherited may leak into the service (or, after the
       privilege drop, keep a root-opened file within reach). */
    if (close_range((unsigned)(MASTER_LISTEN_FD + ms.listen_count), ~0U, 0) < 0)
        msg_fatal("close_range: %m");
}

/* ms_read_config - main.cf, then master.cf's -o overrides */
static void ms_read_config(const ARGV *overrides)
{
    mail_conf_read(mail_conf_dir(NULL));
    for (size_t i = 0; i < overrides->argc; i++)
        if (mail_conf_parse_override(overrides->argv[i]) < 0)
            msg_fatal("bad -o override \"%s\": expected name=value", overrides->argv[i]);
    msg_open(var_str("syslog_name"), var_str("syslog_facility"), var_str("maillog_file"));
    ms.max_idle = var_time("max_idle");
    ms.max_use = var_int("max_use");
    ms.ipc_timeout = var_time("ipc_timeout");
    ms.daemon_timeout = var_time("daemon_timeout");
}

/* ms_drop_privileges - as root: chroot as asked, become mail_owner unless unpriv=n */
static void ms_drop_privileges(void)
{
    const char *queue_dir = var_str("queue_directory");

    if (!priv_is_root()) {
        /* Private instance: already the user everything runs as. */
        if (ms.unpriv)
            priv_no_new_privs();
        return;
    }
    if (ms.unpriv) {
        priv_drop(var_str("mail_owner"), ms.chroot ? queue_dir : NULL);
    } else if (ms.chroot) {
        if (chroot(queue_dir) < 0 || chdir("/") < 0)
            msg_fatal("chroot %s: %m", queue_dir);
    }
}

/* ms_private_setup - single-client servers: the private wait set */
static void ms_private_setup(void)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = MS_EP_STATUS};

    if ((ms.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        msg_fatal("%s: epoll_create1: %m", ms.args.service);
    ms.exclusive = 1;
    /* A pipe's write end reports an error once the reader is gone. */
    if (epoll_ctl(ms.epfd, EPOLL_CTL_ADD, MASTER_STATUS_FD, &ev) < 0)
        msg_fatal("%s: epoll_ctl ADD status pipe: %m", ms.args.service);
}

/* ms_setup_events - the loop's events: listeners, status pipe, timers */
static void ms_setup_events(void)
{
    struct event_base *base = ms.args.base;

    /* The listener events exist in both modes: a non-NULL one means "open". */
    for (int i = 0; i < ms.listen_count; i++)
        ms.listen_ev[i] =
            event_new(base, MASTER_LISTEN_FD + i, EV_READ | EV_PERSIST, ms_accept_event, NULL);
    if (ms.spec->kind == MAIL_SERVER_SINGLE && !ms.is_fifo) {
        ms_private_setup();
    } else {
        /* A pipe's write end polls as an error once the reader is gone. */
        ms.status_ev =
            event_new(base, MASTER_STATUS_FD, EV_READ | EV_PERSIST, ms_status_event, NULL);
        event_add(ms.status_ev, NULL);
    }
    ms.retry_ev = evtimer_new(base, ms_retry_event, NULL);
    if (ms.max_idle > 0 && (ms.spec->flags & MAIL_SERVER_LONG_RUNNING) == 0)
        ms.idle_ev = evtimer_new(base, ms_idle_event, NULL);
    if (ms.daemon_timeout > 0) {
        struct timeval tv = {.tv_sec = ms.daemon_timeout / 2 > 0 ? ms.daemon_timeout / 2 : 1};

        ms.watchdog_ev = event_new(base, -1, EV_PERSIST, ms_watchdog_event, NULL);
        event_add(ms.watchdog_ev, &tv);
        alarm((unsigned)ms.daemon_timeout);
    }
}

/* What ms_base_deadline learns about the event base. */
typedef struct MS_BASE_SCAN {
    struct timeval first; /* earliest timeout, wall clock */
    int have_timeout;
    int foreign_fd; /* an fd event the private set does not watch */
} MS_BASE_SCAN;

/* ms_base_scan_one - event_base_foreach_event callback */
static int ms_base_scan_one(const struct event_base *base, const struct event *ev, void *ctx)
{
    MS_BASE_SCAN *scan = ctx;
    struct timeval tv;

    (void)base;
    /* The listener events are never added in this mode; anything else with
       a descriptor belongs to the daemon. */
    if (event_pending(ev, EV_READ | EV_WRITE, NULL))
        scan->foreign_fd = 1;
    if (event_pending(ev, EV_TIMEOUT, &tv) &&
        (!scan->have_timeout || timercmp(&tv, &scan->first, <))) {
        scan->first = tv;
        scan->have_timeout = 1;
    }
    return 0;
}

/* ms_private_wait_ms - how long the private wait may block: until the
   earliest timer of the event base, and never long without a look at it */
static int ms_private_wait_ms(void)
{
    struct event_base *base = ms.args.base;
    MS_BASE_SCAN scan = {.have_timeout = 0, .foreign_fd = 0};
    struct timeval now, left;
    long long ms_left;

    if (event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE) > 0)
        return 0;
    (void)event_base_foreach_event(base, ms_base_scan_one, &scan);
    ms_left = scan.foreign_fd ? MS_WAIT_FOREIGN_MS : MS_WAIT_MAX_MS;
    if (scan.have_timeout) {
        /*
         * event_pending reports timeouts on the wall clock, converted from
         * libevent's monotonic clock with an offset it refreshes every few
         * seconds. A timer that looks due here was not due for libevent a
         * moment ago (it would have run): after a step of the wall clock the
         * two disagree for a while, so wait a little instead of spinning.
         */
        gettimeofday(&now, NULL);
        if (!timercmp(&scan.first, &now, >))
            return MS_WAIT_DUE_MS;
        timersub(&scan.first, &now, &left);
        long long t = (long long)left.tv_sec * 1000 + (left.tv_usec + 999) / 1000;

        if (t < ms_left)
            ms_left = t;
    }
    return (int)ms_left;
}

/* ms_private_loop - serve a single-client server's clients; never returns */
static _Noreturn void ms_private_loop(void)
{
    struct epoll_event evs[MASTER_LISTEN_MAX + 1];

    for (;;) {
        /* Timers that are due, and anything a callback made active. */
        if (event_base_loop(ms.args.base, EVLOOP_NONBLOCK) < 0)
            msg_fatal("%s: event loop failed", ms.args.service);
        int n = epoll_wait(ms.epfd, evs, MASTER_LISTEN_MAX + 1, ms_private_wait_ms());

        if (n < 0) {
            if (errno == EINTR)
                continue; /* a signal: libevent's handler has queued it */
            msg_fatal("%s: epoll_wait: %m", ms.args.service);
        }
        for (int i = 0; i < n; i++) {
            uint32_t what = evs[i].data.u32;

            if (what == MS_EP_STATUS) {
                ms_drain("master closed the status pipe");
            } else if (what < (uint32_t)ms.listen_count && ms.listen_ev[what] != NULL &&
                       ms.listening) {
                /* Checked again: serving one client may have ended listening. */
                ms_accept_event(MASTER_LISTEN_FD + (int)what, EV_READ, NULL);
            }
        }
    }
}

/* ms_check_spec - the daemon filled in the callback its kind needs */
static void ms_check_spec(const MAIL_SERVER_SPEC *spec)
{
    if ((spec->kind == MAIL_SERVER_MULTI && spec->multi_service == NULL) ||
        (spec->kind == MAIL_SERVER_SINGLE && spec->single_service == NULL) ||
        (spec->kind == MAIL_SERVER_TRIGGER && spec->trigger_service == NULL))
        msg_panic("mail_server_main: no service callback for this server kind");
}

/* mail_server_main - set up, drop privileges, serve until done */
_Noreturn void mail_server_main(int argc, char **argv, const MAIL_SERVER_SPEC *spec)
{
    ARGV *overrides = argv_alloc(4);

    msg_init(argv[0]);
    /* Only a tuning hint: allocators that ignore it (sanitizers) still work. */
    (void)mallopt(M_TRIM_THRESHOLD, MS_MALLOC_TRIM_THRESHOLD);
    (void)mallopt(M_MMAP_THRESHOLD, MS_MALLOC_MMAP_THRESHOLD);
    ms_check_spec(spec);
    ms.spec = spec;
    ms.reported = -1;
    ms.epfd = -1;
    ms.args.context = spec->context;
    ms_parse_args(argc, argv, overrides);
    ms_take_fds();
    signal(SIGPIPE, SIG_IGN);
    ms_read_config(overrides);
    argv_free(overrides);
    if (chdir(var_str("queue_directory")) < 0)
        msg_fatal("chdir %s: %m", var_str("queue_directory"));
    if ((ms.args.base = event_base_new()) == NULL)
        msg_fatal("event_base_new failed");

    /* Last chance to open anything as root or outside the chroot. */
    if (spec->pre_init)
        spec->pre_init(&ms.args);
    ms_drop_privileges();
    if (spec->post_init)
        spec->post_init(&ms.args);

    ms_setup_events();
    ms_update();
    if (ms.epfd >= 0)
        ms_private_loop();
    event_base_dispatch(ms.args.base);
    msg_fatal("%s: event loop ended unexpectedly", ms.args.service);
}
