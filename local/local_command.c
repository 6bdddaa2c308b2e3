/*
 * local_command - delivery to |command destinations from aliases, .forward
 * and :include: files, and mailbox_command.
 *
 * The command text is the alias or .forward owner's own text and runs as
 * `/bin/sh -c TEXT` (or local_command_shell) with the rights decided by the
 * caller: the recipient for .forward, the owner of the alias table or
 * default_privs for aliases. Envelope data (sender, recipient, extension...)
 * never becomes part of a command line: it reaches the command only through
 * environment variables, and every byte outside command_expansion_filter is
 * replaced by '_' first. A sender such as "`rm -rf ~`@example.com" therefore
 * stays inert text, which is the lesson of OpenSMTPD's CVE-2020-7247, where
 * an envelope address ended up inside a shell command.
 *
 * The command gets the message on standard input ("From sender date" line,
 * Return-Path:, Delivered-To:, then the message), runs in its own process
 * group with a clean environment and no descriptors but 0, 1 and 2, and is
 * killed (the whole group) after command_time_limit. Its standard output and
 * error are collected (up to LOCAL_CMD_OUTPUT_MAX bytes) for the bounce
 * reason. The exit status says what happened, as sysexits(3) defines it:
 * 0 delivered, EX_TEMPFAIL (and EX_OSERR) try again later, anything else a
 * permanent failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "local.h"
#include "mail/mail_conf.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"

#define LOCAL_PATH_DEFAULT "/usr/bin:/bin" /* PATH of commands, as _PATH_DEFPATH */
#define LOCAL_SHELL_DEFAULT "/bin/sh"
#define LOCAL_EXEC_ERR_FD 3 /* the child's report of a failed exec */
#define LOCAL_ENV_MAX 64    /* environment entries of a command at most */

/* What sysexits(3) codes mean for mail, as Postfix reports them. */
static const struct {
    int code;
    const char *dsn;
    const char *text;
} local_sysexits[] = {
    {EX_USAGE, "5.3.0", "command line usage error"},
    {EX_DATAERR, "5.6.0", "data format error"},
    {EX_NOINPUT, "5.3.0", "cannot open input"},
    {EX_NOUSER, "5.1.1", "user unknown"},
    {EX_NOHOST, "5.1.2", "host name unknown"},
    {EX_UNAVAILABLE, "5.3.0", "service unavailable"},
    {EX_SOFTWARE, "5.3.0", "internal software error"},
    {EX_OSERR, "4.3.0", "system resource problem"},
    {EX_OSFILE, "5.3.0", "critical OS file missing"},
    {EX_CANTCREAT, "5.2.0", "can't create user output file"},
    {EX_IOERR, "5.3.0", "input/output error"},
    {EX_TEMPFAIL, "4.3.0", "temporary failure"},
    {EX_PROTOCOL, "5.5.0", "remote error in protocol"},
    {EX_NOPERM, "5.7.0", "permission denied"},
    {EX_CONFIG, "5.3.5", "local configuration error"},
};

/* The running command, seen from the parent. */
typedef struct LOCAL_CMD {
    pid_t pid;
    int in;  /* its standard input */
    int out; /* its standard output and error */
    time_t deadline;
    int timed_out;
    int input_closed; /* the command stopped reading: the rest is discarded */
    VSTR *output;
} LOCAL_CMD;

/* local_filter - a copy of text with bytes outside allowed replaced by '_' */
char *local_filter(const char *text, const char *allowed)
{
    char *copy = mystrdup(text ? text : "");

    for (char *cp = copy; *cp; cp++)
        if (strchr(allowed, *cp) == NULL)
            *cp = '_';
    return copy;
}

/* local_cmd_drain - read what the command printed; 0, or -1 at EOF/error */
static int local_cmd_drain(LOCAL_CMD *cmd)
{
    char buf[4096];
    ssize_t n;

    for (;;) {
        n = read(cmd->out, buf, sizeof(buf));
        if (n > 0) {
            /* Keep the first bytes; the rest is read and dropped. */
            size_t room = LOCAL_CMD_OUTPUT_MAX > vstr_len(cmd->output)
                              ? LOCAL_CMD_OUTPUT_MAX - vstr_len(cmd->output)
                              : 0;

            vstr_ncat(cmd->output, buf, (size_t)n < room ? (size_t)n : room);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        return -1;
    }
}

/* local_cmd_wait_io - poll the command's input (if want_in) and output until
   one is ready or the deadline; 1 input writable, 0 otherwise, -1 timed out */
static int local_cmd_wait_io(LOCAL_CMD *cmd, int want_in)
{
    struct pollfd pfd[2];
    int n = 0;
    time_t left = cmd->deadline - time(NULL);

    if (left <= 0) {
        cmd->timed_out = 1;
        return -1;
    }
    if (want_in) {
        pfd[n].fd = cmd->in;
        pfd[n].events = POLLOUT;
        n++;
    }
    if (cmd->out >= 0) {
        pfd[n].fd = cmd->out;
        pfd[n].events = POLLIN;
        n++;
    }
    if (n == 0)
        return 0;
    /* At most a second at a time, so that the command's exit is noticed
       even when something else still holds its output pipe. */
    int rc = poll(pfd, (nfds_t)n, left > 1 ? 1000 : (int)left * 1000);

    if (rc < 0)
        return 0;
    int wi = 0;

    for (int i = 0; i < n; i++) {
        if (pfd[i].fd == cmd->out && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) {
            if (local_cmd_drain(cmd) < 0) {
                close(cmd->out);
                cmd->out = -1;
            }
        }
        if (want_in && pfd[i].fd == cmd->in && pfd[i].revents)
            wi = 1;
    }
    return wi;
}

/* local_cmd_write - sink for local_copy: the command's standard input */
static int local_cmd_write(void *ctx, const char *data, size_t len)
{
    LOCAL_CMD *cmd = ctx;

    while (len > 0 && !cmd->input_closed) {
        ssize_t n = write(cmd->in, data, len);

        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EPIPE) {
            /* The command exited or closed its input: its exit status decides. */
            cmd->input_closed = 1;
            break;
        }
        if (n < 0 && errno != EAGAIN)
            return -1;
        if (local_cmd_wait_io(cmd, 1) < 0) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
    return 0;
}

/* local_env_add - NAME=value into the environment being built */
static void local_env_add(ARGV *env, const char *name, const char *value, int filter)
{
    char *v = filter ? local_filter(value, local_conf.command_expansion_filter)
                     : mystrdup(value ? value : "");
    VSTR *entry = vstr_alloc(64);

    if (env->argc < LOCAL_ENV_MAX) {
        vstr_sprintf(entry, "%s=%s", name, v);
        argv_add(env, vstr_str(entry), (char *)0);
    }
    vstr_free(entry);
    myfree(v);
}

/* local_cmd_env - the command's whole environment */
static ARGV *local_cmd_env(const LOCAL_STATE *st, const LOCAL_USER *user)
{
    ARGV *env = argv_alloc(24);
    const LOCAL_RCPT *rc = st->rcpt;
    static const struct {
        const char *var;
        const char *attr;
    } client_attrs[] = {
        {"CLIENT_ADDRESS", QFILE_ATTR_CLIENT_ADDR}, {"CLIENT_HOSTNAME", QFILE_ATTR_CLIENT_NAME},
        {"CLIENT_HELO", QFILE_ATTR_HELO_NAME},      {"CLIENT_PROTOCOL", QFILE_ATTR_PROTOCOL},
        {"SASL_METHOD", QFILE_ATTR_SASL_METHOD},    {"SASL_USERNAME", QFILE_ATTR_SASL_USERNAME},
    };

    /* Our own environment only for what export_environment names. */
    for (size_t i = 0; i < local_conf.export_environment->argc; i++) {
        const char *name = local_conf.export_environment->argv[i];
        const char *eq = strchr(name, '=');

        if (eq != NULL) {
            argv_add(env, name, (char *)0);
        } else {
            const char *value = getenv(name);

            if (value)
                local_env_add(env, name, value, 0);
        }
    }
    local_env_add(env, "PATH", LOCAL_PATH_DEFAULT, 0);
    local_env_add(env, "HOME", user ? user->home : "/", 0);
    local_env_add(env, "SHELL",
                  user && user->shell && *user->shell ? user->shell : LOCAL_SHELL_DEFAULT, 0);
    local_env_add(env, "LOGNAME", user ? user->name : st->user, 1);
    local_env_add(env, "USER", st->user, 1);
    local_env_add(env, "EXTENSION", st->extension ? st->extension : "", 1);
    local_env_add(env, "DOMAIN", st->domain, 1);
    local_env_add(env, "LOCAL", st->local, 1);
    local_env_add(env, "RECIPIENT", st->address, 1);
    local_env_add(env, "SENDER", st->msg->sender, 1);
    local_env_add(env, "ORIGINAL_RECIPIENT", *rc->orcpt ? rc->orcpt : rc->address, 1);
    for (size_t i = 0; i < sizeof(client_attrs) / sizeof(client_attrs[0]); i++) {
        const char *value = qfile_attr(st->msg->q, client_attrs[i].attr);

        if (value)
            local_env_add(env, client_attrs[i].var, value, 1);
    }
    return env;
}

/* local_cmd_argv - the shell (or local_command_shell) and the command text */
static ARGV *local_cmd_argv(const char *command)
{
    ARGV *av;

    if (*local_conf.local_command_shell) {
        av = argv_split(local_conf.local_command_shell, " \t");
        if (av->argc == 0)
            argv_add(av, LOCAL_SHELL_DEFAULT, "-c", (char *)0);
    } else {
        av = argv_alloc(4);
        argv_add(av, LOCAL_SHELL_DEFAULT, "-c", (char *)0);
    }
    argv_add(av, command, (char *)0);
    return av;
}

/* local_cmd_child - in the new process: become the user and exec the shell.
   A failed exec reports its errno through errfd, a failed chdir to a required
   directory the negated errno. */
static _Noreturn void local_cmd_child(const LOCAL_PRIV *priv, const char *dir, int dir_required,
                                      int in, int out, int errfd, ARGV *av, ARGV *env)
{
    sigset_t none;
    int err;

    setsid(); /* its own process group, so a time-out kills all of it */
    local_priv_become(priv->uid, priv->gid);
    umask(077);
    if (dir == NULL || chdir(dir) < 0) {
        if (dir_required) {
            err = -errno;
            (void)write_full(errfd, &err, sizeof(err));
            _exit(EX_OSERR);
        }
        (void)chdir("/");
    }
    if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
        dup2(out, STDERR_FILENO) < 0 || dup2(errfd, LOCAL_EXEC_ERR_FD) < 0)
        _exit(EX_OSERR);
    /* Nothing of ours but 0, 1, 2: no queue files, sockets or master's pipe. */
    close_range(LOCAL_EXEC_ERR_FD + 1, ~0U, 0);
    close_on_exec(LOCAL_EXEC_ERR_FD, 1);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(av->argv[0], av->argv, env->argv);
    err = errno;
    (void)write_full(LOCAL_EXEC_ERR_FD, &err, sizeof(err));
    _exit(EX_OSERR);
}

/* local_cmd_output_text - ". Command output: ..." with control characters blanked */
static void local_cmd_output_text(VSTR *out, const VSTR *output)
{
    size_t len = vstr_len(output);

    while (len > 0 && (vstr_str(output)[len - 1] == '\n' || vstr_str(output)[len - 1] == ' '))
        len--;
    if (len == 0)
        return;
    vstr_cat(out, ". Command output: ");
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)vstr_str(output)[i];

        vstr_addch(out, ch < 0x20 || ch == 0x7f ? ' ' : ch);
    }
}

/* local_cmd_finish - wait for the command's end; its wait status, or -1 on time-out */
static int local_cmd_finish(LOCAL_CMD *cmd)
{
    int status = 0;

    for (;;) {
        pid_t r = waitpid(cmd->pid, &status, cmd->timed_out ? 0 : WNOHANG);

        if (r == cmd->pid) {
            /* Whatever it printed last; a background child of the command
               that keeps the pipe open does not hold us up. */
            if (cmd->out >= 0)
                (void)local_cmd_drain(cmd);
            break;
        }
        if (r < 0 && errno != EINTR)
            break;
        if (cmd->timed_out)
            continue;
        if (time(NULL) >= cmd->deadline) {
            cmd->timed_out = 1;
            kill(-cmd->pid, SIGKILL);
            continue;
        }
        if (cmd->out >= 0) {
            if (local_cmd_wait_io(cmd, 0) < 0)
                kill(-cmd->pid, SIGKILL);
        } else {
            struct timespec ts = {0, 10 * 1000 * 1000};

            nanosleep(&ts, NULL);
        }
    }
    return cmd->timed_out ? -1 : status;
}

/* local_deliver_command - run the command with the message on its input */
void local_deliver_command(const LOCAL_STATE *st, const char *command, const LOCAL_PRIV *priv,
                           const LOCAL_USER *user, const char *dir, LOCAL_RESULT *res)
{
    LOCAL_CMD cmd = {.pid = -1, .in = -1, .out = -1};
    int in[2] = {-1, -1}, out[2] = {-1, -1}, ep[2] = {-1, -1};
    ARGV *av = local_cmd_argv(command);
    ARGV *env = local_cmd_env(st, user);
    VSTR *why = vstr_alloc(64);
    VSTR *delivered = vstr_alloc(128);
    VSTR *text = vstr_alloc(128);
    int err = 0, status, rc;
    ssize_t n;

    cmd.output = vstr_alloc(256);
    vstr_cpy(delivered, st->address);
    vstr_lower(delivered);
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
        local_result_set(res, "4.3.0", "cannot create pipe: %m");
        goto done;
    }
    if ((cmd.pid = fork()) < 0) {
        local_result_set(res, "4.3.0", "cannot fork command process: %m");
        goto done;
    }
    if (cmd.pid == 0)
        local_cmd_child(priv,
                        dir    ? dir
                        : user ? user->home
                               : NULL,
                        dir != NULL, in[0], out[1], ep[1], av, env);
    close(in[0]);
    close(out[1]);
    close(ep[1]);
    in[0] = out[1] = ep[1] = -1;
    cmd.in = in[1];
    cmd.out = out[0];
    in[1] = out[0] = -1;
    cmd.deadline = time(NULL) + local_conf.command_time_limit;

    /* The exec either happens (the pipe closes) or reports its errno. */
    while ((n = read(ep[0], &err, sizeof(err))) < 0 && errno == EINTR)
        ;
    if (n == (ssize_t)sizeof(err)) {
        close(cmd.in);
        cmd.in = -1;
        (void)local_cmd_finish(&cmd);
        if (err < 0)
            local_result_set(res, "4.3.0", "cannot change to execution directory %s: %s", dir,
                             strerror(-err));
        else
            local_result_set(res, "4.3.0", "cannot execute command \"%s\": %s", av->argv[0],
                             strerror(err));
        goto done;
    }
    non_blocking(cmd.in, 1);
    non_blocking(cmd.out, 1);
    rc = local_copy(st->msg,
                    (local_conf.prepend_delivered & LOCAL_DT_COMMAND) ? vstr_str(delivered) : NULL,
                    LOCAL_COPY_FROM_LINE | LOCAL_COPY_RETURN_PATH | LOCAL_COPY_DELIVERED,
                    local_cmd_write, &cmd, why);
    close(cmd.in);
    cmd.in = -1;
    if (rc == LOCAL_COPY_ERR_QUEUE) {
        kill(-cmd.pid, SIGKILL);
        cmd.timed_out = 1;
        (void)local_cmd_finish(&cmd);
        local_result_set(res, "4.3.0", "%s", vstr_str(why));
        goto done;
    }
    if (rc < 0 && !cmd.timed_out)
        msg_warn("%s: write to command \"%s\": %s", st->msg->queue_id, command, vstr_str(why));
    if (cmd.timed_out)
        kill(-cmd.pid, SIGKILL);
    status = local_cmd_finish(&cmd);
    if (cmd.timed_out || status < 0) {
        vstr_sprintf(text, "Command time limit exceeded: \"%s\"", command);
        local_cmd_output_text(text, cmd.output);
        local_result_set(res, "5.3.0", "%s", vstr_str(text));
    } else if (WIFSIGNALED(status)) {
        vstr_sprintf(text, "Command died with signal %d: \"%s\"", WTERMSIG(status), command);
        local_cmd_output_text(text, cmd.output);
        local_result_set(res, "5.3.0", "%s", vstr_str(text));
    } else if (WEXITSTATUS(status) != 0) {
        const char *dsn = "5.3.0";
        int code = WEXITSTATUS(status);

        for (size_t i = 0; i < sizeof(local_sysexits) / sizeof(local_sysexits[0]); i++)
            if (local_sysexits[i].code == code)
                dsn = local_sysexits[i].dsn;
        vstr_sprintf(text, "Command died with status %d: \"%s\"", code, command);
        local_cmd_output_text(text, cmd.output);
        local_result_set(res, dsn, "%s", vstr_str(text));
    } else {
        local_result_ok(res, "delivered to command: %s", command);
    }

done : {
    int *fds[] = {&in[0], &in[1], &out[0], &out[1], &ep[0], &ep[1], &cmd.in, &cmd.out};

    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (*fds[i] >= 0)
            close(*fds[i]);
}
    argv_free(av);
    argv_free(env);
    vstr_free(why);
    vstr_free(delivered);
    vstr_free(text);
    vstr_free(cmd.output);
}
