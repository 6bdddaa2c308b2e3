/*
 * master_spawn - start service processes on demand, track their status
 * reports, reap them, and throttle services whose processes cannot start.
 *
 * Demand: while no process of a service is available, master itself
 * watches the service's listeners; a client (or a wakeup) waiting there
 * starts one process, up to maxproc. A process counts as available from
 * its start until it reports busy, as in Postfix, so one waiting client
 * starts one process, not a burst.
 *
 * Throttling: a process that exits before its first status report (bad
 * command, bad configuration, crash during start) puts the service on hold
 * for service_throttle_time seconds, so a broken service costs a handful of
 * forks a minute, never a fork storm.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "master.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"

static void master_throttle(MASTER_SERV *serv);

/* master_at_limit - the service runs maxproc processes */
static int master_at_limit(const MASTER_SERV *serv)
{
    return serv->maxproc > 0 && serv->total_proc >= serv->maxproc;
}

/* master_listen_watch - start or stop watching the listeners */
static void master_listen_watch(MASTER_SERV *serv, int on)
{
    if (on == serv->listening)
        return;
    for (int i = 0; i < serv->listen_count; i++) {
        if (serv->listen_ev[i] == NULL)
            continue;
        if (on)
            event_add(serv->listen_ev[i], NULL);
        else
            event_del(serv->listen_ev[i]);
    }
    serv->listening = on;
}

/* master_listen_event - a client waits and no process is available */
static void master_listen_event(evutil_socket_t fd, short what, void *ctx)
{
    MASTER_SERV *serv = ctx;

    (void)fd, (void)what;
    if (serv->avail_proc > 0 || serv->throttled || serv->master->stopping)
        return;
    if (!master_at_limit(serv)) {
        master_spawn(serv->master, serv);
        return;
    }
    /* Demand at the limit: say so (rarely), then wait for a status change. */
    time_t now = time(NULL);

    if (serv->maxproc > 1 && now - serv->limit_warned >= MASTER_LIMIT_WARN_DELAY) {
        serv->limit_warned = now;
        msg_warn("service \"%s\" (%s) has reached its process limit \"%d\": new clients may be "
                 "delayed",
                 serv->name, serv->type_name, serv->maxproc);
    }
    master_listen_watch(serv, 0);
}

/* master_avail_update - watch the listeners while no process is available:
   a waiting client then starts one, or, at maxproc, is reported */
void master_avail_update(MASTER_SERV *serv)
{
    master_listen_watch(serv, serv->avail_proc == 0 && !serv->throttled && !serv->master->stopping);
}

/* master_proc_status - apply one status record */
static void master_proc_status(MASTER_SERV *serv, const MASTER_STATUS *rec)
{
    MASTER_PROC *proc;

    for (proc = serv->procs; proc; proc = proc->next)
        if (proc->pid == rec->pid)
            break;
    /* The process may have been reaped before its last report was read. */
    if (proc == NULL) {
        if (msg_verbose)
            msg_info("%s: status from unknown process %ld", serv->name, (long)rec->pid);
        return;
    }
    proc->ready = 1;
    switch (rec->status) {
    case MASTER_STAT_AVAIL:
        if (!proc->avail) {
            proc->avail = 1;
            serv->avail_proc++;
        }
        break;
    case MASTER_STAT_TAKEN:
        if (proc->avail) {
            proc->avail = 0;
            serv->avail_proc--;
        }
        proc->use_count++;
        break;
    default:
        msg_warn("%s: process %ld sent bad status %d", serv->name, (long)rec->pid,
                 (int)rec->status);
        break;
    }
}

/* master_status_event - status records from the service's processes */
static void master_status_event(evutil_socket_t fd, short what, void *ctx)
{
    MASTER_SERV *serv = ctx;
    MASTER_STATUS recs[64];
    ssize_t n;

    (void)what;
    while ((n = read(fd, recs, sizeof(recs))) > 0) {
        /* Records are written whole (PIPE_BUF), so reads return whole ones. */
        if (n % (ssize_t)sizeof(recs[0]) != 0)
            msg_warn("%s: status pipe: %ld stray bytes ignored", serv->name,
                     (long)(n % (ssize_t)sizeof(recs[0])));
        for (ssize_t i = 0; i < n / (ssize_t)sizeof(recs[0]); i++)
            master_proc_status(serv, &recs[i]);
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR)
        msg_warn("%s: read status pipe: %m", serv->name);
    master_avail_update(serv);
}

/* master_throttle_event - the hold is over: accept demand again */
static void master_throttle_event(evutil_socket_t fd, short what, void *ctx)
{
    MASTER_SERV *serv = ctx;

    (void)fd, (void)what;
    serv->throttled = 0;
    master_avail_update(serv);
}

/* master_throttle - hold the service after a failed start */
static void master_throttle(MASTER_SERV *serv)
{
    struct timeval tv = {.tv_sec = serv->master->conf.throttle_time};

    if (serv->throttled)
        return;
    serv->throttled = 1;
    evtimer_add(serv->throttle_ev, &tv);
    master_avail_update(serv);
}

/* master_serv_start - the status pipe and events of a service that has its listeners */
void master_serv_start(MASTER *m, MASTER_SERV *serv)
{
    if (pipe2(serv->status_fd, O_CLOEXEC) < 0)
        msg_fatal("pipe: %m");
    non_blocking(serv->status_fd[0], 1);
    serv->status_ev =
        event_new(m->base, serv->status_fd[0], EV_READ | EV_PERSIST, master_status_event, serv);
    event_add(serv->status_ev, NULL);
    serv->throttle_ev = evtimer_new(m->base, master_throttle_event, serv);
    for (int i = 0; i < serv->listen_count; i++)
        serv->listen_ev[i] = event_new(m->base, serv->listen_fds[i], EV_READ | EV_PERSIST,
                                       master_listen_event, serv);
    master_avail_update(serv);
}

/* master_child_argv - COMMAND -n SERVICE -t TYPE [-u] [-c] -s N [-o x=y].. ARGS */
static ARGV *master_child_argv(const MASTER *m, const MASTER_SERV *serv)
{
    ARGV *av = argv_alloc(16);
    char count[16];
    const char *slash = strrchr(serv->command, '/');

    snprintf(count, sizeof(count), "%d", serv->listen_count);
    argv_add(av, slash ? slash + 1 : serv->command, "-n", serv->name, "-t", serv->type_name,
             (char *)NULL);
    if (serv->unpriv)
        argv_add(av, "-u", (char *)NULL);
    if (serv->chroot)
        argv_add(av, "-c", (char *)NULL);
    if (m->verbose)
        argv_add(av, "-v", (char *)NULL);
    argv_add(av, "-s", count, (char *)NULL);
    for (size_t i = 0; i < serv->overrides->argc; i++)
        argv_add(av, "-o", serv->overrides->argv[i], (char *)NULL);
    for (size_t i = 0; i < serv->args->argc; i++)
        argv_add(av, serv->args->argv[i], (char *)NULL);
    return av;
}

/* master_child_fds - status pipe to fd 3, listeners to 4.., nothing else survives exec */
static void master_child_fds(const MASTER_SERV *serv)
{
    int first_free = MASTER_LISTEN_FD + serv->listen_count;
    int tmp[MASTER_LISTEN_MAX + 1];

    /* Move everything above the target range first, so no dup2 clobbers a source. */
    if ((tmp[0] = fcntl(serv->status_fd[1], F_DUPFD_CLOEXEC, first_free)) < 0)
        msg_fatal("dup status pipe: %m");
    for (int i = 0; i < serv->listen_count; i++)
        if ((tmp[i + 1] = fcntl(serv->listen_fds[i], F_DUPFD_CLOEXEC, first_free)) < 0)
            msg_fatal("dup listener: %m");
    if (dup2(tmp[0], MASTER_STATUS_FD) < 0)
        msg_fatal("dup2 status pipe: %m");
    for (int i = 0; i < serv->listen_count; i++)
        if (dup2(tmp[i + 1], MASTER_LISTEN_FD + i) < 0)
            msg_fatal("dup2 listener: %m");
    /* Everything from first_free up closes at exec (the log stays until then). */
    if (close_range((unsigned)first_free, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        for (int fd = first_free; fd < 1024; fd++)
            close_on_exec(fd, 1);
}

/* master_child_exec - in the new process: descriptors, signals, exec */
static _Noreturn void master_child_exec(MASTER *m, MASTER_SERV *serv)
{
    struct sigaction sa = {.sa_handler = SIG_DFL};
    sigset_t none;
    ARGV *av = master_child_argv(m, serv);

    master_child_fds(serv);
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(serv->path, av->argv, m->conf.env->argv);
    msg_fatal("exec %s: %m", serv->path);
}

/* master_spawn - start one process of serv */
void master_spawn(MASTER *m, MASTER_SERV *serv)
{
    sigset_t all, saved;
    MASTER_PROC *proc;
    pid_t pid;

    /* No signal handler of master may run in the child before exec. */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &saved);
    pid = fork();
    if (pid == 0)
        master_child_exec(m, serv);
    sigprocmask(SIG_SETMASK, &saved, NULL);
    if (pid < 0) {
        msg_warn("fork: %m -- throttling service \"%s\"", serv->name);
        master_throttle(serv);
        return;
    }
    if (msg_verbose)
        msg_info("%s: started process %ld", serv->name, (long)pid);
    proc = mycalloc(1, sizeof(*proc));
    proc->pid = pid;
    proc->serv = serv;
    proc->path = mystrdup(serv->path);
    proc->avail = 1;
    proc->next = serv->procs;
    serv->procs = proc;
    serv->total_proc++;
    serv->avail_proc++;
    serv->ever_used = 1;
    master_avail_update(serv);
}

/* master_proc_unlink - remove pid from a list; the entry, or NULL */
static MASTER_PROC *master_proc_unlink(MASTER_PROC **head, pid_t pid)
{
    for (MASTER_PROC **pp = head; *pp; pp = &(*pp)->next) {
        if ((*pp)->pid == pid) {
            MASTER_PROC *proc = *pp;

            *pp = proc->next;
            return proc;
        }
    }
    return NULL;
}

/* master_proc_find_unlink - take pid out of whichever list holds it */
static MASTER_PROC *master_proc_find_unlink(MASTER *m, pid_t pid)
{
    MASTER_PROC *proc;

    for (MASTER_SERV *serv = m->services; serv; serv = serv->next)
        if ((proc = master_proc_unlink(&serv->procs, pid)) != NULL)
            return proc;
    return master_proc_unlink(&m->retired, pid);
}

/* master_reap - collect every exited child; log failures; throttle bad starts */
void master_reap(MASTER *m)
{
    pid_t pid;
    int status;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        MASTER_PROC *proc = master_proc_find_unlink(m, pid);
        MASTER_SERV *serv;

        if (proc == NULL)
            continue;
        /* While stopping, deaths by signal are the stop itself (or ^C on a terminal). */
        if (WIFSIGNALED(status) && !m->stopping)
            msg_warn("process %s pid %ld killed by signal %d", proc->path, (long)pid,
                     WTERMSIG(status));
        else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
            msg_warn("process %s pid %ld exit status %d", proc->path, (long)pid,
                     WEXITSTATUS(status));
        if ((serv = proc->serv) != NULL) {
            serv->total_proc--;
            if (proc->avail)
                serv->avail_proc--;
            if (!proc->ready && !m->stopping && !serv->throttled) {
                msg_warn("%s: bad command startup -- throttling", serv->path);
                master_throttle(serv);
            }
            master_avail_update(serv);
        }
        myfree(proc->path);
        myfree(proc);
    }
}

/* master_serv_retire - the service goes away: its processes finish and exit */
void master_serv_retire(MASTER *m, MASTER_SERV *serv)
{
    MASTER_PROC *proc;

    while ((proc = serv->procs) != NULL) {
        serv->procs = proc->next;
        proc->serv = NULL;
        proc->next = m->retired;
        m->retired = proc;
    }
    serv->total_proc = serv->avail_proc = 0;
    for (int i = 0; i < serv->listen_count; i++)
        if (serv->listen_ev[i]) {
            event_free(serv->listen_ev[i]);
            serv->listen_ev[i] = NULL;
        }
    serv->listening = 0;
    if (serv->status_ev) {
        event_free(serv->status_ev);
        serv->status_ev = NULL;
    }
    /* Closing our end of the status pipe is the "finish and exit" signal. */
    for (int i = 0; i < 2; i++) {
        if (serv->status_fd[i] >= 0)
            close(serv->status_fd[i]);
        serv->status_fd[i] = -1;
    }
    if (serv->throttle_ev) {
        event_free(serv->throttle_ev);
        serv->throttle_ev = NULL;
    }
    if (serv->wakeup_ev) {
        event_free(serv->wakeup_ev);
        serv->wakeup_ev = NULL;
    }
}

/* master_kill_all - signal every process, current or retired */
void master_kill_all(MASTER *m, int sig)
{
    for (MASTER_SERV *serv = m->services; serv; serv = serv->next)
        for (MASTER_PROC *proc = serv->procs; proc; proc = proc->next)
            kill(proc->pid, sig);
    for (MASTER_PROC *proc = m->retired; proc; proc = proc->next)
        kill(proc->pid, sig);
}

/* master_proc_count - processes not yet reaped */
int master_proc_count(const MASTER *m)
{
    int n = 0;

    for (const MASTER_SERV *serv = m->services; serv; serv = serv->next)
        for (const MASTER_PROC *proc = serv->procs; proc; proc = proc->next)
            n++;
    for (const MASTER_PROC *proc = m->retired; proc; proc = proc->next)
        n++;
    return n;
}
