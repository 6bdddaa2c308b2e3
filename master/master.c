/*
 * master - the Postern supervisor.
 *
 * SYNOPSIS
 *   master [-c config_dir] [-d | -f] [-t] [-v] [-w]
 *
 * DESCRIPTION
 *   master reads main.cf and master.cf, opens every service's listening
 *   sockets, and starts service processes on demand (see master_spawn.c),
 *   within each service's process limit. It restarts what dies, throttles
 *   services that cannot start, re-reads its configuration on SIGHUP and
 *   stops everything on SIGTERM. A lock on queue_directory/pid/master.pid
 *   keeps a second master off the same queue.
 *
 *   Started as root, master stays root; each service drops to mail_owner
 *   (unless its unpriv column says n) inside the service skeleton
 *   (mail_server.c). Started as another user, master runs a private
 *   instance: everything runs as that user.
 *
 * OPTIONS
 *   -c dir  configuration directory (else $MAIL_CONFIG, else the default)
 *   -d, -f  stay in the foreground: do not detach, keep standard error
 *   -t      test: exit 0 when no master runs on this queue, 1 when one does
 *   -v      verbose logging (repeat for more); services get -v too
 *   -w      accepted for compatibility: without -d/-f, master always waits
 *           until the daemon is up and exits 0 only when it is
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/mail_queue_dirs.h"
#include "mail/mail_version.h"
#include "mail/master_cf.h"
#include "mail/master_pid.h"
#include "mail/priv.h"
#include "master.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"

#define MASTER_EX_USAGE 64

/* master_usage - bad command line */
static _Noreturn void master_usage(void)
{
    fprintf(stderr, "usage: master [-c config_dir] [-d | -f] [-t] [-v] [-w]\n");
    exit(MASTER_EX_USAGE);
}

/* master_qdir_report - log what the queue tree check changed or found */
static void master_qdir_report(void *ctx, int fixed, const char *text)
{
    (void)ctx;
    if (fixed)
        msg_info("%s", text);
    else
        msg_warn("%s", text);
}

/* master_check_queue - queue_directory exists with the directories master needs */
static void master_check_queue(MASTER *m)
{
    MAIL_QUEUE_IDS ids;
    VSTR *why = vstr_alloc(128);

    if (mail_queue_ids(m->conf.mail_owner, m->conf.setgid_group, &ids, why) < 0)
        msg_fatal("%s", vstr_str(why));
    if (mail_queue_dirs_check(m->conf.queue_dir, &ids, MAIL_QDIR_FIX, master_qdir_report, NULL) > 0)
        msg_fatal("queue directory %s is not usable (see the messages above; "
                  "`postern check` reports the details)",
                  m->conf.queue_dir);
    vstr_free(why);
    if (chdir(m->conf.queue_dir) < 0)
        msg_fatal("chdir %s: %m", m->conf.queue_dir);
}

/* master_read_services - master.cf into services; fatal on any error */
static void master_read_services(MASTER *m)
{
    VSTR *why = vstr_alloc(256);
    VSTR *path = vstr_alloc(128);
    MASTER_CF *cf;

    vstr_sprintf(path, "%s/master.cf", m->conf.config_dir);
    cf = master_cf_read(vstr_str(path), (int)var_int("default_process_limit"), why);
    if (cf == NULL || master_services_build(m, &m->conf, cf, &m->services, why) < 0)
        msg_fatal("%s", vstr_str(why));
    if (m->services == NULL)
        msg_warn("%s: no services are configured", vstr_str(path));
    master_cf_free(cf);
    vstr_free(path);
    vstr_free(why);
}

/* master_open_services - listeners, pipes and wakeups of every service */
static void master_open_services(MASTER *m)
{
    VSTR *why = vstr_alloc(256);

    for (MASTER_SERV *serv = m->services; serv; serv = serv->next) {
        if (master_listen_open(m, serv, why) < 0)
            msg_fatal("service \"%s\" (%s): %s", serv->name, serv->type_name, vstr_str(why));
    }
    for (MASTER_SERV *serv = m->services; serv; serv = serv->next) {
        master_serv_start(m, serv);
        master_wakeup_start(m, serv);
    }
    vstr_free(why);
}

/* master_lock - take the pid file lock; fatal when another master has it */
static void master_lock(MASTER *m)
{
    VSTR *path = vstr_alloc(128);
    VSTR *why = vstr_alloc(128);
    pid_t holder;

    master_pid_path(path, m->conf.queue_dir, m->conf.pid_dir);
    m->pid_path = mystrdup(vstr_str(path));
    if ((m->pid_fd = master_pid_lock(m->pid_path, &holder, why)) < 0)
        msg_fatal("%s", vstr_str(why));
    vstr_free(path);
    vstr_free(why);
}

/* master_detach - fork into the background; the parent waits for "ready" */
static int master_detach(void)
{
    int ready[2];
    pid_t pid;
    char ok;

    if (pipe2(ready, O_CLOEXEC) < 0)
        msg_fatal("pipe: %m");
    if ((pid = fork()) < 0)
        msg_fatal("fork: %m");
    if (pid > 0) {
        int status;

        close(ready[1]);
        /* Whatever went wrong, the daemon said so on stderr before exiting. */
        if (read_full(ready[0], &ok, 1) == 1 && ok == 'k')
            _exit(0);
        waitpid(pid, &status, 0);
        _exit(1);
    }
    close(ready[0]);
    if (setsid() < 0)
        msg_fatal("setsid: %m");
    return ready[1];
}

/* master_stdio_null - a daemon keeps no terminal */
static void master_stdio_null(void)
{
    int fd = open("/dev/null", O_RDWR);

    if (fd < 0)
        msg_fatal("open /dev/null: %m");
    for (int i = 0; i < 3; i++)
        if (fd != i && dup2(fd, i) < 0)
            msg_fatal("dup2 /dev/null: %m");
    if (fd > 2)
        close(fd);
}

/* master_stop - SIGTERM: stop every process within a bound, then exit */
static _Noreturn void master_stop(MASTER *m, int sig)
{
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
    time_t deadline = time(NULL) + MASTER_STOP_WAIT;

    msg_info("terminating on signal %d", sig);
    m->stopping = 1;
    master_kill_all(m, SIGTERM);
    master_reap(m);
    while (master_proc_count(m) > 0 && time(NULL) < deadline) {
        nanosleep(&tick, NULL);
        master_reap(m);
    }
    if (master_proc_count(m) > 0) {
        msg_warn("%d processes did not stop within %d seconds -- killing them",
                 master_proc_count(m), MASTER_STOP_WAIT);
        master_kill_all(m, SIGKILL);
        while (master_proc_count(m) > 0 && waitpid(-1, NULL, 0) >= 0)
            master_reap(m);
        master_reap(m);
    }
    if (m->pid_path)
        unlink(m->pid_path);
    exit(0);
}

/* master_signal_event - signals arrive here through libevent's self-pipe */
static void master_signal_event(evutil_socket_t sig, short what, void *ctx)
{
    MASTER *m = ctx;

    (void)what;
    switch (sig) {
    case SIGCHLD: master_reap(m); break;
    case SIGHUP: master_reload(m); break;
    case SIGTERM:
    case SIGINT:
    case SIGQUIT: master_stop(m, (int)sig);
    default: break;
    }
}

/* master_signals - SIGCHLD, SIGHUP and the stop signals into the event loop */
static void master_signals(MASTER *m)
{
    static const int sigs[] = {SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT};

    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct event *ev = evsignal_new(m->base, sigs[i], master_signal_event, m);

        if (ev == NULL || evsignal_add(ev, NULL) < 0)
            msg_fatal("cannot handle signal %d", sigs[i]);
    }
}

/* master_test_running - -t: is a master running on this queue */
static _Noreturn void master_test_running(const MASTER *m)
{
    VSTR *path = vstr_alloc(128);
    pid_t pid;

    master_pid_path(path, m->conf.queue_dir, m->conf.pid_dir);
    pid = master_pid_running(vstr_str(path));
    vstr_free(path);
    exit(pid > 0 ? 1 : 0);
}

/* master_announce - the start-up lines log tools and admins look for */
static void master_announce(const MASTER *m)
{
    msg_info("daemon started -- version %s, configuration %s", MAIL_VERSION, m->conf.config_dir);
    if (!priv_is_root()) {
        struct passwd *pw = getpwuid(geteuid());

        msg_info("running as a private instance as user %s (uid %ld): every service runs as "
                 "that user",
                 pw ? pw->pw_name : "?", (long)geteuid());
    }
}

int main(int argc, char **argv)
{
    static MASTER master;
    MASTER *m = &master;
    const char *cmd_dir = NULL;
    int foreground = 0, test = 0, ready_fd = -1;
    int ch;
    VSTR *why = vstr_alloc(128);

    msg_init("master");
    while ((ch = getopt(argc, argv, "c:dftvw")) != -1) {
        switch (ch) {
        case 'c': cmd_dir = optarg; break;
        case 'd':
        case 'f': foreground = 1; break;
        case 't': test = 1; break;
        case 'v': msg_verbose++, m->verbose = 1; break;
        case 'w': break;
        default: master_usage();
        }
    }
    if (optind != argc)
        master_usage();

    const char *config_dir = mail_conf_dir(cmd_dir);

    mail_conf_read(config_dir);
    if (master_conf_load(&m->conf, config_dir, why) < 0)
        msg_fatal("%s", vstr_str(why));
    if (test)
        master_test_running(m);
    msg_open(var_str("syslog_name"), var_str("syslog_facility"), var_str("maillog_file"));
    /* Until start-up is complete, whoever started master sees the errors too. */
    msg_also_stderr(1);
    umask(022);
    master_check_queue(m);
    master_read_services(m);

    if (!foreground)
        ready_fd = master_detach();
    master_lock(m);
    if ((m->base = event_base_new()) == NULL)
        msg_fatal("event_base_new failed");
    master_signals(m);
    master_open_services(m);
    master_announce(m);

    msg_also_stderr(0);
    if (ready_fd >= 0) {
        master_stdio_null();
        if (write_full(ready_fd, "k", 1) < 0)
            msg_warn("cannot tell the starting process that master is up: %m");
        close(ready_fd);
    }
    vstr_free(why);
    event_base_dispatch(m->base);
    msg_fatal("event loop ended unexpectedly");
}
