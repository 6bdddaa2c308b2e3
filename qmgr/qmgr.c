/*
 * qmgr - the Postern queue manager.
 *
 * SYNOPSIS
 *   qmgr [generic daemon options]   (started by master; man/qmgr.8)
 *
 * DESCRIPTION
 *   The only scheduler of the mail system (docs/protocols.md sections 2 and
 *   3, docs/queue-format.md): a long-running trigger server on public/qmgr
 *   that takes committed mail into memory, hands recipients to delivery
 *   agents, records every result in the queue file before acting on it,
 *   retries with exponential backoff and recovers everything after a crash.
 *
 *   Trigger requests, several per connection, each ended by a NUL byte:
 *     W            wakeup (master, every wakeup seconds): scan the queues
 *     A QUEUE/ID   a message was committed into QUEUE (immediate, bulk)
 *     F            flush: all deferred mail now; dead destinations and
 *                  unavailable transports are tried again at once
 *     S SITE       deferred mail for next hop SITE now (and SITE's queues
 *                  are no longer dead)
 *     I ID         message ID now
 *
 *   Start-up is crash recovery: incoming/ files that no writer holds and
 *   that are older than qmgr_incoming_purge_time were never acknowledged
 *   and are removed; every file in immediate/ and bulk/ is taken in, those
 *   that were being delivered when qmgr died included (their unrecorded
 *   recipients are delivered again: at-least-once); files whose recipients
 *   are all final are removed; deferred/ is scanned at once.
 *
 * FILES
 *   public/qmgr       trigger socket (or fifo)
 *   private/TRANSPORT delivery agents
 *   private/bounce    notices to senders (bounce(8))
 *   $config_directory/master.cf  process limits of the transports
 */
#include <errno.h>
#include <event2/event.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "mail/mail_conf.h"
#include "mail/mail_queue.h"
#include "mail/mail_server.h"
#include "qmgr.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"

#define QMGR_SITE_MAX 255 /* "S site": a domain or [host]:port */

QMGR_CONF qmgr_conf;
struct event_base *qmgr_base;

static struct event *qmgr_kick_ev; /* intake and dispatch, once per loop turn */
static int qmgr_kick_pending;
static struct event *qmgr_deferred_ev; /* every queue_run_delay */
static time_t qmgr_last_purge;

/* qmgr_now - the time of day */
time_t qmgr_now(void)
{
    return time(NULL);
}

/* qmgr_kick_event - take mail in and start deliveries */
static void qmgr_kick_event(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd, (void)what, (void)ctx;
    qmgr_kick_pending = 0;
    qmgr_intake_run();
    qmgr_sched_dispatch();
}

/* qmgr_kick - ask for a kick event (many requests in one turn make one) */
void qmgr_kick(void)
{
    if (qmgr_kick_pending || qmgr_kick_ev == NULL)
        return;
    qmgr_kick_pending = 1;
    event_active(qmgr_kick_ev, EV_TIMEOUT, 0);
}

/* qmgr_purge_incoming - remove never-acknowledged leftovers from incoming/ */
static void qmgr_purge_incoming(void)
{
    VSTR *why = vstr_alloc(100);
    long n;

    qmgr_last_purge = qmgr_now();
    if ((n = qfile_purge_incoming(qmgr_conf.purge_age, why)) < 0)
        msg_warn("%s", vstr_str(why));
    else if (n > 0 && msg_verbose)
        msg_info("removed %ld abandoned file(s) from %s/", n, MAIL_QUEUE_INCOMING);
    vstr_free(why);
}

/* qmgr_deferred_event - time to look for deferred mail that is due */
static void qmgr_deferred_event(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd, (void)what, (void)ctx;
    qmgr_intake_deferred(0);
}

/* qmgr_trigger_one - one request */
static void qmgr_trigger_one(const char *req, size_t len)
{
    char cmd = req[0];
    const char *arg = req + 1;
    const char *slash;

    /* Tolerate a blank between the letter and its argument. */
    while (*arg == ' ')
        arg++;
    switch (cmd) {
    case 'W':
        qmgr_intake_rescan();
        if (qmgr_now() - qmgr_last_purge >= (qmgr_conf.purge_age > 60 ? 60 : qmgr_conf.purge_age))
            qmgr_purge_incoming();
        break;
    case 'A':
        if ((slash = strchr(arg, '/')) == NULL || slash == arg) {
            msg_warn("malformed trigger request \"%.100s\"", req);
            break;
        }
        {
            char *queue = mystrndup(arg, (size_t)(slash - arg));

            qmgr_intake_notify(queue, slash + 1);
            myfree(queue);
        }
        break;
    case 'F':
        msg_info("flush requested: deferred mail is due now");
        qmgr_sched_flush(NULL);
        qmgr_intake_deferred(1);
        break;
    case 'S':
        if (*arg == 0 || strlen(arg) > QMGR_SITE_MAX || str_has_ctl(arg) || strchr(arg, ' ')) {
            msg_warn("malformed site flush request \"%.100s\"", req);
            break;
        }
        qmgr_sched_flush(arg);
        qmgr_intake_flush_site(arg);
        break;
    case 'I': qmgr_intake_flush_id(arg); break;
    default: msg_warn("unknown trigger request \"%.*s\"", (int)(len < 100 ? len : 100), req); break;
    }
}

/* qmgr_trigger - one trigger connection's bytes: NUL-terminated requests */
static void qmgr_trigger(const MAIL_SERVER_ARGS *args, const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;

    (void)args;
    while (p < end) {
        const char *nul = memchr(p, 0, (size_t)(end - p));
        size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);

        if (n > 0) {
            /* Requests are text: make a terminated copy, refusing embedded
               control characters that could reach the log. */
            char *req = mystrndup(p, n);

            if (str_has_ctl(req))
                msg_warn("trigger request with control characters ignored");
            else
                qmgr_trigger_one(req, n);
            myfree(req);
        }
        p += n + 1;
    }
}

/* qmgr_conf_time - a time parameter within [1, limit] seconds */
static long qmgr_conf_time(const char *name, long min)
{
    long v = var_time(name);

    return v < min ? min : v;
}

/* qmgr_fd_budget - raise the descriptor limit and share it out: each active
   message holds its queue file open, each delivery one socket */
static void qmgr_fd_budget(void)
{
    struct rlimit rl;
    long avail;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        msg_fatal("getrlimit RLIMIT_NOFILE: %m");
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (rl.rlim_cur > (1U << 20))
            rl.rlim_cur = 1U << 20;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) < 0)
            msg_fatal("getrlimit RLIMIT_NOFILE: %m");
    }
    avail = rl.rlim_cur > (rlim_t)(1U << 20) ? (long)(1 << 20) : (long)rl.rlim_cur;
    avail -= QMGR_FD_RESERVE;
    if (avail < 8)
        msg_fatal("only %ld file descriptors: qmgr needs more than %d", (long)rl.rlim_cur,
                  QMGR_FD_RESERVE + 8);
    qmgr_conf.delivery_limit = avail / 4 > QMGR_DELIVERY_FD_MAX ? QMGR_DELIVERY_FD_MAX : avail / 4;
    if (qmgr_conf.active_limit > avail - qmgr_conf.delivery_limit) {
        msg_info("qmgr_message_active_limit %ld exceeds what %ld file descriptors allow: using %ld",
                 qmgr_conf.active_limit, (long)rl.rlim_cur, avail - qmgr_conf.delivery_limit);
        qmgr_conf.active_limit = avail - qmgr_conf.delivery_limit;
    }
}

/* qmgr_read_conf - the parameters qmgr uses, once */
static void qmgr_read_conf(void)
{
    qmgr_conf.active_limit = var_int("qmgr_message_active_limit");
    qmgr_conf.rcpt_limit = var_int("qmgr_message_recipient_limit");
    qmgr_conf.min_backoff = qmgr_conf_time("minimal_backoff_time", 1);
    qmgr_conf.max_backoff = qmgr_conf_time("maximal_backoff_time", 1);
    if (qmgr_conf.max_backoff < qmgr_conf.min_backoff) {
        msg_warn("maximal_backoff_time %lds is less than minimal_backoff_time %lds -- using %lds",
                 qmgr_conf.max_backoff, qmgr_conf.min_backoff, qmgr_conf.min_backoff);
        qmgr_conf.max_backoff = qmgr_conf.min_backoff;
    }
    qmgr_conf.queue_run_delay = qmgr_conf_time("queue_run_delay", 1);
    qmgr_conf.max_lifetime = var_time("maximal_queue_lifetime");
    qmgr_conf.bounce_lifetime = var_time("bounce_queue_lifetime");
    /* Postfix: bounce_queue_lifetime never exceeds maximal_queue_lifetime. */
    if (qmgr_conf.bounce_lifetime > qmgr_conf.max_lifetime)
        qmgr_conf.bounce_lifetime = qmgr_conf.max_lifetime;
    qmgr_conf.retry_time = qmgr_conf_time("transport_retry_time", 1);
    qmgr_conf.ipc_timeout = qmgr_conf_time("qmgr_ipc_timeout", 1);
    qmgr_conf.delivery_timeout = qmgr_conf_time("qmgr_delivery_timeout", 1);
    qmgr_conf.class_ratio = var_int("qmgr_immediate_bulk_ratio");
    qmgr_conf.purge_age = var_time("qmgr_incoming_purge_time");
    qmgr_conf.default_dest_conc = var_int("default_destination_concurrency_limit");
    qmgr_conf.default_rcpt_lim = var_int("default_destination_recipient_limit");
    qmgr_conf.default_proc = var_int("default_process_limit");
    qmgr_conf.init_dest_conc = var_int("initial_destination_concurrency");
    qmgr_conf.default_cohorts = var_int("default_destination_concurrency_failed_cohort_limit");
    qmgr_conf.default_pos_fb = var_str("default_destination_concurrency_positive_feedback");
    qmgr_conf.default_neg_fb = var_str("default_destination_concurrency_negative_feedback");
    qmgr_conf.default_rate_delay = var_time("default_destination_rate_delay");
    qmgr_conf.delay_warning = var_time("delay_warning_time");
    qmgr_conf.soft_bounce = var_bool("soft_bounce");
    qmgr_conf.defer_transports = var_list("defer_transports");
    {
        VSTR *path = vstr_alloc(64);

        vstr_sprintf(path, "private/%s", var_str("bounce_service_name"));
        qmgr_conf.bounce_path = vstr_export(path);
    }
    qmgr_fd_budget();
}

/* qmgr_pre_init - as root: configuration, master.cf, lookup tables */
static void qmgr_pre_init(const MAIL_SERVER_ARGS *args)
{
    VSTR *path = vstr_alloc(100);

    qmgr_base = args->base;
    qmgr_read_conf();
    vstr_sprintf(path, "%s/master.cf", mail_conf_dir(NULL));
    qmgr_sched_init(vstr_str(path));
    vstr_free(path);
    qmgr_route_init();
}

/* qmgr_queue_dir - queue_directory as this process reaches it: the working
   directory is the queue directory, which is "/" after a chroot */
static const char *qmgr_queue_dir(void)
{
    const char *dir = var_str("queue_directory");
    struct stat here, there;

    /* Full paths make better log lines; "." works in a chroot as well. */
    if (stat(".", &here) == 0 && stat(dir, &there) == 0 && here.st_dev == there.st_dev &&
        here.st_ino == there.st_ino)
        return dir;
    return ".";
}

/* qmgr_post_init - recover the queue, then serve */
static void qmgr_post_init(const MAIL_SERVER_ARGS *args)
{
    VSTR *why = vstr_alloc(100);
    struct timeval tv = {.tv_sec = qmgr_conf.queue_run_delay};

    (void)args;
    if (mail_queue_init(qmgr_queue_dir(), (int)var_int("hash_queue_depth"),
                        var_str("hash_queue_names"), why) < 0)
        msg_fatal("queue settings: %s", vstr_str(why));
    vstr_free(why);
    qmgr_message_init();
    qmgr_intake_init();
    qmgr_kick_ev = event_new(qmgr_base, -1, 0, qmgr_kick_event, NULL);
    qmgr_deferred_ev = event_new(qmgr_base, -1, EV_PERSIST, qmgr_deferred_event, NULL);
    event_add(qmgr_deferred_ev, &tv);

    qmgr_purge_incoming();
    qmgr_intake_rescan();
    qmgr_intake_deferred(0);
}

int main(int argc, char **argv)
{
    static const MAIL_SERVER_SPEC spec = {
        .kind = MAIL_SERVER_TRIGGER,
        .flags = MAIL_SERVER_LONG_RUNNING,
        .pre_init = qmgr_pre_init,
        .post_init = qmgr_post_init,
        .trigger_service = qmgr_trigger,
    };

    mail_server_main(argc, argv, &spec);
}
