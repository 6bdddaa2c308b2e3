/*
 * sendmail_drop - run postdrop(1) and hand it one message as maildrop
 * records (lib/mail/maildrop.h) on its standard input.
 *
 * sendmail never writes into the queue itself: it runs as the calling user
 * and only postdrop, set-gid, may create files in maildrop/. postdrop
 * reports the maildrop id on its standard output (-r) and says what went
 * wrong on standard error itself; its exit status (sysexits.h) becomes
 * sendmail's. Closing postdrop's input before the END record makes it
 * discard the file: that is how a failed submission is abandoned.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/qfile.h"
#include "mail/queue_id.h"
#include "sendmail.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"

#define SM_DROP_ID_MAX 64 /* postdrop's report line, at most */

struct SM_DROP {
    pid_t pid;
    int to_fd;   /* postdrop's standard input */
    int from_fd; /* postdrop's standard output */
    MAILDROP_WRITER *w;
    VSTR *path;
};

/* sm_drop_child - become postdrop; never returns */
static _Noreturn void sm_drop_child(const SM_DROP *d, const SM_OPTS *o, int in_fd, int out_fd)
{
    ARGV *av = argv_alloc(8);

    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0) {
        fprintf(stderr, "sendmail: fatal: dup2: %s\n", strerror(errno));
        _exit(EX_OSERR);
    }
    argv_add(av, "postdrop", "-r", "-c", o->config_dir, (char *)0);
    for (int i = 0; i < msg_verbose; i++)
        argv_add(av, "-v", (char *)0);
    signal(SIGPIPE, SIG_DFL);
    execv(vstr_str(d->path), av->argv);
    fprintf(stderr, "sendmail: fatal: %s(%ld): unable to execute %s: %s\n", sm_who(o), (long)o->uid,
            vstr_str(d->path), strerror(errno));
    _exit(EX_UNAVAILABLE);
}

SM_DROP *sm_drop_start(const SM_OPTS *o, VSTR *why)
{
    int in[2], out[2];
    SM_DROP *d;

    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
        vstr_sprintf(why, "pipe: %m");
        return NULL;
    }
    d = mycalloc(1, sizeof(*d));
    d->path = vstr_alloc(100);
    vstr_sprintf(d->path, "%s/postdrop", var_str("command_directory"));
    if ((d->pid = fork()) < 0) {
        vstr_sprintf(why, "fork: %m");
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        vstr_free(d->path);
        myfree(d);
        return NULL;
    }
    if (d->pid == 0)
        sm_drop_child(d, o, in[0], out[1]);
    close(in[0]);
    close(out[1]);
    d->to_fd = in[1];
    d->from_fd = out[0];
    d->w = maildrop_writer_open(d->to_fd, "postdrop");
    maildrop_writer_set_size_limit(d->w, (uint64_t)var_int("message_size_limit"));
    return d;
}

MAILDROP_WRITER *sm_drop_writer(SM_DROP *d)
{
    return d->w;
}

int sm_drop_envelope(SM_DROP *d, const SM_OPTS *o, VSTR *why)
{
    int err = 0;

    if (o->extract)
        err = maildrop_writer_flags(d->w, MAILDROP_FLAG_EXTRACT_RCPT);
    if (err == 0)
        err = maildrop_writer_sender(d->w, o->sender);
    if (err == 0 && o->full_name)
        err = maildrop_writer_full_name(d->w, o->full_name);
    if (err == 0 && (o->ret != QFILE_RET_NONE || o->envid))
        err = maildrop_writer_dsn(d->w, o->ret, o->envid);
    if (err == 0 && o->body)
        err = maildrop_writer_body(d->w, o->body);
    for (size_t i = 0; err == 0 && o->rcpt && i < o->rcpt->argc; i++)
        err = maildrop_writer_rcpt(d->w, o->rcpt->argv[i], o->notify);
    if (err != 0) {
        vstr_cpy(why, maildrop_writer_why(d->w));
        return -1;
    }
    return 0;
}

/* sm_drop_read_id - postdrop's report: one queue id and a newline */
static void sm_drop_read_id(SM_DROP *d, char *id)
{
    char buf[SM_DROP_ID_MAX + 1];
    ssize_t got = read_full(d->from_fd, buf, SM_DROP_ID_MAX);

    id[0] = 0;
    if (got <= 0)
        return;
    buf[got] = 0;
    buf[strcspn(buf, "\n")] = 0;
    if (queue_id_valid(buf))
        memcpy(id, buf, QUEUE_ID_SIZE); /* valid: exactly QUEUE_ID_LEN bytes and a NUL */
}

int sm_drop_finish(SM_DROP *d, int commit, char *id, VSTR *why)
{
    int wres = 0, status, ret;

    id[0] = 0;
    if (commit && (wres = maildrop_writer_finish(d->w)) != 0)
        vstr_cpy(why, maildrop_writer_why(d->w));
    close(d->to_fd);
    if (commit)
        sm_drop_read_id(d, id);
    close(d->from_fd);
    while (waitpid(d->pid, &status, 0) < 0) {
        if (errno != EINTR) {
            vstr_sprintf(why, "waitpid: %m");
            status = -1;
            break;
        }
    }
    if (wres == MAILDROP_ERR_LIMIT) {
        /* sendmail's own check; postdrop saw the input end and dropped it. */
        ret = EX_UNAVAILABLE;
        vstr_cpy(why, "message file too big");
    } else if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        /* postdrop said why on standard error; its status says what kind. */
        ret = WEXITSTATUS(status);
        vstr_sprintf(why, "postdrop failed (exit status %d)", ret);
    } else if (status != -1 && WIFSIGNALED(status)) {
        ret = EX_TEMPFAIL;
        vstr_sprintf(why, "postdrop killed by signal %d", WTERMSIG(status));
    } else if (status == -1) {
        ret = EX_TEMPFAIL;
    } else if (!commit) {
        ret = EX_SOFTWARE; /* cannot happen: postdrop never takes a message without END */
        vstr_cpy(why, "postdrop accepted an incomplete message");
    } else if (wres != 0) {
        ret = EX_TEMPFAIL; /* why: the writer's reason */
    } else if (id[0] == 0) {
        ret = EX_SOFTWARE;
        vstr_cpy(why, "postdrop reported no queue id");
    } else {
        ret = 0;
    }
    maildrop_writer_free(d->w);
    vstr_free(d->path);
    myfree(d);
    return ret;
}
