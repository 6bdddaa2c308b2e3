/*
 * postern - start, stop, reload, check and report on the Postern mail system.
 *
 * SYNOPSIS
 *   postern [-c config_dir] [-v] start | start-fg | stop | reload | status | check
 *
 * DESCRIPTION
 *   The administrator's command, shaped like Postfix's postfix(1). The
 *   configuration directory is -c, else $MAIL_CONFIG, else the built-in
 *   default. Messages go to standard error as "postern/postern-script: ..."
 *   and to the mail log.
 *
 *   start     check the queue tree (creating and fixing quietly), then run
 *             master, which detaches once it is up; exit 0 only then
 *   start-fg  the same, with master in the foreground (for init systems
 *             and containers that supervise it)
 *   stop      SIGTERM to master, wait until it is gone
 *   reload    SIGHUP to master: re-read main.cf and master.cf
 *   status    exit 0 and say so when master runs, 1 when it does not
 *   check     create missing queue directories, fix owners and modes,
 *             report each fix, check master.cf; exit 0 when all is well
 *
 * EXIT STATUS
 *   0 success, 1 failure or not running, 64 bad usage.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/mail_queue_dirs.h"
#include "mail/mail_version.h"
#include "mail/master_cf.h"
#include "mail/master_pid.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define POSTERN_EX_USAGE 64
#define POSTERN_STOP_WAIT 30 /* seconds `stop` waits for master to exit */

/* postern_say - one line to the terminal and to the mail log */
static void postern_say(int warn, const char *fmt, ...) MSG_FMT(2, 3);

static void postern_say(int warn, const char *fmt, ...)
{
    VSTR *text = vstr_alloc(256);
    va_list ap;

    va_start(ap, fmt);
    vstr_vsprintf_append(text, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s%s\n", msg_ident(), warn ? "warning: " : "", vstr_str(text));
    fflush(stderr);
    /* The log copy, unless the log is the terminal already. */
    if (strcmp(var_str("maillog_file"), "/dev/stderr") != 0) {
        if (warn)
            msg_warn("%s", vstr_str(text));
        else
            msg_info("%s", vstr_str(text));
    }
    vstr_free(text);
}

/* postern_usage - bad command line */
static _Noreturn void postern_usage(const char *why)
{
    if (why)
        fprintf(stderr, "postern: %s\n", why);
    fprintf(stderr, "usage: postern [-c config_dir] [-v] "
                    "start | start-fg | stop | reload | status | check\n");
    exit(POSTERN_EX_USAGE);
}

/* postern_pid_path - where master's pid file is */
static char *postern_pid_path(void)
{
    VSTR *path = vstr_alloc(128);

    master_pid_path(path, var_str("queue_directory"), var_str("process_id_directory"));
    return vstr_export(path);
}

/* postern_running - master's pid, 0 when it is not running */
static pid_t postern_running(void)
{
    char *path = postern_pid_path();
    pid_t pid = master_pid_running(path);

    if (pid < 0)
        postern_say(1, "cannot examine %s: %s", path, strerror(errno));
    myfree(path);
    return pid > 0 ? pid : 0;
}

/* postern_report - print each finding of the queue tree check */
static void postern_report(void *ctx, int fixed, const char *text)
{
    int quiet = *(int *)ctx;

    if (fixed && quiet)
        return;
    postern_say(!fixed, "%s", text);
}

/* postern_check - queue tree and master.cf; number of problems left */
static int postern_check(int quiet)
{
    MAIL_QUEUE_IDS ids;
    VSTR *why = vstr_alloc(256);
    VSTR *path = vstr_alloc(128);
    int problems = 0;
    MASTER_CF *cf;

    if (mail_queue_ids(var_str("mail_owner"), var_str("setgid_group"), &ids, why) < 0) {
        postern_say(1, "%s", vstr_str(why));
        problems++;
        goto done;
    }
    problems += mail_queue_dirs_check(var_str("queue_directory"), &ids, MAIL_QDIR_FIX,
                                      postern_report, &quiet);
    vstr_sprintf(path, "%s/master.cf", var_str("config_directory"));
    if ((cf = master_cf_read(vstr_str(path), (int)var_int("default_process_limit"), why)) == NULL) {
        postern_say(1, "%s", vstr_str(why));
        problems++;
    } else {
        master_cf_free(cf);
    }
done:
    vstr_free(path);
    vstr_free(why);
    return problems;
}

/* postern_start - check, then become master */
static _Noreturn void postern_start(const char *config_dir, int foreground, int verbose)
{
    VSTR *path = vstr_alloc(128);
    pid_t pid;
    char *args[8];
    int n = 0;

    if ((pid = postern_running()) > 0) {
        postern_say(0, "the %s mail system is already running: PID: %ld", MAIL_NAME, (long)pid);
        exit(1);
    }
    if (postern_check(1) > 0) {
        postern_say(1, "not starting: fix the problems above first");
        exit(1);
    }
    postern_say(0, "starting the %s mail system", MAIL_NAME);
    vstr_sprintf(path, "%s/master", var_str("daemon_directory"));
    args[n++] = "master";
    args[n++] = "-c";
    args[n++] = (char *)config_dir;
    if (foreground)
        args[n++] = "-f";
    if (verbose)
        args[n++] = "-v";
    args[n] = NULL;
    execv(vstr_str(path), args);
    postern_say(1, "cannot run %s: %s", vstr_str(path), strerror(errno));
    exit(1);
}

/* postern_signal - deliver sig to a running master; its pid, or exit 1 */
static pid_t postern_signal(int sig, const char *doing)
{
    pid_t pid = postern_running();

    if (pid == 0) {
        postern_say(0, "the %s mail system is not running", MAIL_NAME);
        exit(1);
    }
    postern_say(0, "%s the %s mail system", doing, MAIL_NAME);
    if (kill(pid, sig) < 0) {
        postern_say(1, "cannot signal master process %ld: %s", (long)pid, strerror(errno));
        exit(1);
    }
    return pid;
}

/* postern_gone - the process has exited (a zombie waiting for init counts) */
static int postern_gone(pid_t pid)
{
    char path[64], buf[512];
    FILE *fp;
    int gone = 0;

    if (kill(pid, 0) < 0 && errno == ESRCH)
        return 1;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((fp = fopen(path, "re")) == NULL)
        return errno == ENOENT;
    if (fgets(buf, sizeof(buf), fp) != NULL) {
        const char *paren = strrchr(buf, ')');

        gone = paren != NULL && paren[1] == ' ' && paren[2] == 'Z';
    }
    fclose(fp);
    return gone;
}

/* postern_stop - SIGTERM, then wait until master has released the lock and exited */
static int postern_stop(void)
{
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
    time_t deadline;
    pid_t pid;

    pid = postern_signal(SIGTERM, "stopping");
    deadline = time(NULL) + POSTERN_STOP_WAIT;
    /* The pid file goes just before master exits; wait for the exit itself. */
    while (postern_running() > 0 || !postern_gone(pid)) {
        if (time(NULL) >= deadline) {
            postern_say(1, "master did not stop within %d seconds", POSTERN_STOP_WAIT);
            return 1;
        }
        nanosleep(&tick, NULL);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd_dir = NULL;
    int verbose = 0;
    int ch;

    msg_init("postern-script");
    while ((ch = getopt(argc, argv, "+c:v")) != -1) {
        switch (ch) {
        case 'c': cmd_dir = optarg; break;
        case 'v': verbose = 1, msg_verbose++; break;
        default: postern_usage(NULL);
        }
    }
    if (optind >= argc)
        postern_usage("missing command");
    if (optind + 1 < argc)
        postern_usage("too many arguments");

    const char *cmd = argv[optind];

    if (strcmp(cmd, "start") && strcmp(cmd, "start-fg") && strcmp(cmd, "stop") &&
        strcmp(cmd, "reload") && strcmp(cmd, "status") && strcmp(cmd, "check"))
        postern_usage("unknown command");

    /* Resolve the directory once, so master gets exactly the same one. */
    char *config_dir = mystrdup(mail_conf_dir(cmd_dir));

    if (setenv("MAIL_CONFIG", config_dir, 1) < 0)
        msg_fatal("setenv: %m");
    mail_conf_read(config_dir);
    msg_open(var_str("syslog_name"), var_str("syslog_facility"), var_str("maillog_file"));

    if (strcmp(cmd, "start") == 0 || strcmp(cmd, "start-fg") == 0)
        postern_start(config_dir, cmd[5] == '-', verbose);
    myfree(config_dir);
    if (strcmp(cmd, "stop") == 0)
        return postern_stop();
    if (strcmp(cmd, "reload") == 0) {
        postern_signal(SIGHUP, "refreshing");
        return 0;
    }
    if (strcmp(cmd, "status") == 0) {
        pid_t pid = postern_running();

        if (pid > 0)
            postern_say(0, "the %s mail system is running: PID: %ld", MAIL_NAME, (long)pid);
        else
            postern_say(0, "the %s mail system is not running", MAIL_NAME);
        return pid > 0 ? 0 : 1;
    }
    /* check */
    return postern_check(0) > 0 ? 1 : 0;
}
