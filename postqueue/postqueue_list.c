/*
 * postqueue_list - postqueue -p and -j: read the showq stream, print the
 * listing (mailq_print), and the fallbacks when showq cannot be reached.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mail/attr.h"
#include "mail/mail_conf.h"
#include "mail/mailq_print.h"
#include "mail/showq_proto.h"
#include "postqueue.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/vstr.h"

#define PQ_OUT_FLUSH 8192 /* bytes of listing collected before a write */
#define PQ_SHOWQ_PROGRAM "showq"

/* Results of pq_print_stream. */
#define PQ_PRINT_DONE 0
#define PQ_PRINT_GONE 1    /* the reader of our output went away */
#define PQ_PRINT_BROKEN -1 /* the stream ended early or made no sense */

/* pq_flush_out - write the collected listing; -1 when the reader is gone */
static int pq_flush_out(VSTR *out)
{
    if (vstr_len(out) == 0)
        return 0;
    if (write_full(STDOUT_FILENO, vstr_str(out), vstr_len(out)) < 0) {
        /* "postqueue -p | head" stops reading: end quietly, as Postfix. */
        if (errno == EPIPE)
            return -1;
        PQ_FATAL(EX_IOERR, "write error: %m");
    }
    vstr_reset(out);
    return 0;
}

/* pq_end - the showq "end" message: success, or a fatal refusal or failure */
static int pq_end(MAILQ_PRINT *p, const SHOWQ_MSG *m, VSTR *out, VSTR *why)
{
    switch (m->status) {
    case SHOWQ_STAT_OK:
        if (mailq_print_finish(p, out, why) < 0)
            return PQ_PRINT_BROKEN;
        return pq_flush_out(out) < 0 ? PQ_PRINT_GONE : PQ_PRINT_DONE;
    case SHOWQ_STAT_DENIED:
        PQ_FATAL(EX_NOPERM, "%s",
                 *m->status_reason ? m->status_reason : "not allowed to view the mail queue");
    case SHOWQ_STAT_FAIL:
        (void)pq_flush_out(out);
        PQ_FATAL(EX_UNAVAILABLE, "Queue report incomplete: %s",
                 *m->status_reason ? m->status_reason : "the queue could not be read");
    default:
        vstr_sprintf(why, "malformed showq server response: unknown status %d", m->status);
        return PQ_PRINT_BROKEN;
    }
}

/* pq_print_stream - print what showq sends on s until its "end" */
static int pq_print_stream(ATTR_STREAM *s, int format, VSTR *why)
{
    MAILQ_PRINT *p = mailq_print_new(format);
    VSTR *out = vstr_alloc(PQ_OUT_FLUSH + 1024);
    SHOWQ_MSG m;
    int ret;

    for (;;) {
        if (showq_msg_read(s, &m, why) < 0) {
            ret = PQ_PRINT_BROKEN;
            break;
        }
        if (m.kind == SHOWQ_MSG_END) {
            ret = pq_end(p, &m, out, why);
            showq_msg_free(&m);
            break;
        }
        ret = mailq_print_msg(p, &m, out, why);
        showq_msg_free(&m);
        if (ret < 0) {
            ret = PQ_PRINT_BROKEN;
            break;
        }
        if (vstr_len(out) >= PQ_OUT_FLUSH && pq_flush_out(out) < 0) {
            ret = PQ_PRINT_GONE;
            break;
        }
    }
    /* What was listed before a failure is still worth showing. */
    if (ret == PQ_PRINT_BROKEN)
        (void)pq_flush_out(out);
    mailq_print_free(p);
    vstr_free(out);
    return ret;
}

/* pq_list_direct - root, mail system down: run showq -S and read its output */
static void pq_list_direct(int format, const char *config_dir)
{
    VSTR *path = vstr_alloc(100);
    VSTR *why = vstr_alloc(100);
    ATTR_STREAM *s;
    int fds[2], status, ret;
    pid_t pid;

    msg_warn("Mail system is down -- accessing queue directly");
    vstr_sprintf(path, "%s/%s", var_str("daemon_directory"), PQ_SHOWQ_PROGRAM);
    if (pipe2(fds, O_CLOEXEC) < 0)
        PQ_FATAL(EX_OSERR, "pipe: %m");
    if ((pid = fork()) < 0)
        PQ_FATAL(EX_OSERR, "fork: %m");
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        if (dup2(fds[1], STDOUT_FILENO) < 0)
            _exit(EX_OSERR);
        execl(vstr_str(path), PQ_SHOWQ_PROGRAM, "-S", "-c", config_dir,
              msg_verbose ? "-v" : (char *)NULL, (char *)NULL);
        fprintf(stderr, "postqueue: fatal: execute %s: %s\n", vstr_str(path), strerror(errno));
        _exit(EX_UNAVAILABLE);
    }
    close(fds[1]);
    s = attr_stream_open(fds[0], pq_timeout_ms("ipc_timeout"));
    ret = pq_print_stream(s, format, why);
    attr_stream_free(s);
    close(fds[0]);
    if (ret == PQ_PRINT_GONE)
        (void)kill(pid, SIGTERM);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            PQ_FATAL(EX_OSERR, "waitpid: %m");
    if (ret == PQ_PRINT_BROKEN) {
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            PQ_FATAL(EX_UNAVAILABLE, "Queue report unavailable - %s failed", vstr_str(path));
        PQ_FATAL(EX_SOFTWARE, "%s", vstr_str(why));
    }
    vstr_free(path);
    vstr_free(why);
}

/* pq_list - postqueue -p / -j */
void pq_list(int format, const char *config_dir)
{
    const char *service = var_str("showq_service_name");
    VSTR *why;
    ATTR_STREAM *s;
    int fd, ret;

    pq_check_user("authorized_mailq_users", "view");
    if ((fd = pq_connect(service, pq_timeout_ms("ipc_timeout"))) < 0) {
        /* Not the mail system's fault when the user cannot reach public/. */
        if (errno == EACCES || errno == EPERM)
            PQ_FATAL(EX_SOFTWARE, "Connect to the %s %s service: %m", var_str("mail_name"),
                     service);
        pq_drop_privileges();
        if (geteuid() == 0) {
            pq_list_direct(format, config_dir);
            return;
        }
        PQ_FATAL(EX_UNAVAILABLE, "Queue report unavailable - mail system is down");
    }
    pq_drop_privileges();
    why = vstr_alloc(100);
    s = attr_stream_open(fd, pq_timeout_ms("ipc_timeout"));
    ret = pq_print_stream(s, format, why);
    attr_stream_free(s);
    close(fd);
    if (ret == PQ_PRINT_BROKEN)
        PQ_FATAL(EX_SOFTWARE, "%s", vstr_str(why));
    vstr_free(why);
}
