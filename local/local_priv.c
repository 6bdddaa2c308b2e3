/*
 * local_priv - child processes that act with a recipient's rights.
 *
 * Started as root, local never touches a user's files as root: each
 * mailbox, file or command delivery, and each read of a .forward or
 * :include: file, happens in a child process that first takes the user's
 * uid and gid (and only that group) for good, then does the work and sends
 * a small result record back through a pipe. A bug or a hostile file in the
 * child can then do no more than the user could, and the parent never
 * changes identity at all. The one exception is delivery into a mail spool
 * directory that only root may write (LOCAL_RUN_KEEP_ROOT): that child keeps
 * the right to return to root for creating the mailbox and its lock file,
 * and writes the message with the user's effective ids.
 *
 * In a private instance (not root) the children run as the invoking user,
 * like everything else; the code path is the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "local.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"

#define LOCAL_FILE_READ_TIMEOUT 300 /* seconds to read a .forward or :include: file */

/* The record a child sends back; reason and data follow it. */
typedef struct LOCAL_WIRE {
    int32_t status;
    char dsn[16];
    uint32_t reason_len;
    uint32_t data_len;
    uint32_t owner_uid;
    uint32_t owner_gid;
    int32_t found;
} LOCAL_WIRE;

/* local_child_reply_init - an empty reply */
void local_child_reply_init(LOCAL_CHILD_REPLY *reply)
{
    memset(reply, 0, sizeof(*reply));
    local_result_init(&reply->res);
    reply->data = vstr_alloc(64);
    vstr_set_limit(reply->data, LOCAL_FILE_MAX);
}

/* local_child_reply_free - release a reply's buffers */
void local_child_reply_free(LOCAL_CHILD_REPLY *reply)
{
    local_result_free(&reply->res);
    vstr_free(reply->data);
    reply->data = NULL;
}

/* local_priv_become - become uid/gid for good, with gid as the only group */
void local_priv_become(uid_t uid, gid_t gid)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;

    if (!local_conf.is_root)
        return;
    if (setgroups(1, &gid) < 0)
        msg_fatal("setgroups(%ld): %m", (long)gid);
    if (setresgid(gid, gid, gid) < 0)
        msg_fatal("setresgid(%ld): %m", (long)gid);
    if (setresuid(uid, uid, uid) < 0)
        msg_fatal("setresuid(%ld): %m", (long)uid);
    /* Read back rather than trust: a half-done switch must not write mail. */
    if (getresuid(&ru, &eu, &su) < 0 || ru != uid || eu != uid || su != uid)
        msg_fatal("privilege switch: uid is not %ld", (long)uid);
    if (getresgid(&rg, &eg, &sg) < 0 || rg != gid || eg != gid || sg != gid)
        msg_fatal("privilege switch: gid is not %ld", (long)gid);
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
        msg_fatal("privilege switch: uid 0 can still be taken back");
}

/* local_priv_effective - switch effective ids only; uid 0 returns to root */
int local_priv_effective(uid_t uid, gid_t gid)
{
    if (!local_conf.is_root)
        return 0;
    if (uid == 0) {
        if (seteuid(0) < 0 || setegid(0) < 0)
            return -1;
        return 0;
    }
    if (geteuid() != 0 && seteuid(0) < 0)
        return -1;
    if (setgroups(1, &gid) < 0 || setegid(gid) < 0 || seteuid(uid) < 0)
        return -1;
    return 0;
}

/* local_child_send - the reply record into the pipe */
static void local_child_send(int fd, const LOCAL_CHILD_REPLY *reply)
{
    LOCAL_WIRE w;
    size_t rlen = vstr_len(reply->res.reason);

    memset(&w, 0, sizeof(w));
    w.status = reply->res.status;
    memcpy(w.dsn, reply->res.dsn, sizeof(w.dsn));
    w.dsn[sizeof(w.dsn) - 1] = 0;
    if (rlen > LOCAL_REASON_MAX)
        rlen = LOCAL_REASON_MAX;
    w.reason_len = (uint32_t)rlen;
    w.data_len = (uint32_t)vstr_len(reply->data);
    w.owner_uid = (uint32_t)reply->owner_uid;
    w.owner_gid = (uint32_t)reply->owner_gid;
    w.found = reply->found;
    if (write_full(fd, &w, sizeof(w)) < 0 ||
        write_full(fd, vstr_str(reply->res.reason), rlen) < 0 ||
        write_full(fd, vstr_str(reply->data), vstr_len(reply->data)) < 0)
        _exit(1);
}

/* local_read_deadline - exactly len bytes before the deadline; 0 or -1 */
static int local_read_deadline(int fd, void *buf, size_t len, time_t deadline)
{
    char *cp = buf;

    while (len > 0) {
        time_t left = deadline - time(NULL);

        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        ssize_t n = timed_read(fd, cp, len, left > INT32_MAX / 1000 ? INT32_MAX : (int)left * 1000);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EPIPE;
            return -1;
        }
        cp += n;
        len -= (size_t)n;
    }
    return 0;
}

/* local_child_status - "exit status N" / "killed by signal N" for a wait status */
static void local_child_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(buf, len, "wait status %d", status);
}

/* local_run_child - fork, act as priv in the child, collect its reply */
void local_run_child(const LOCAL_PRIV *priv, int flags, long timeout, LOCAL_CHILD_FN fn, void *ctx,
                     LOCAL_CHILD_REPLY *reply)
{
    int pfd[2];
    pid_t pid;
    LOCAL_WIRE w;
    time_t deadline = time(NULL) + (timeout > 0 ? timeout : 1);
    int ok = 0, status = 0;
    char text[64];

    if (pipe2(pfd, O_CLOEXEC) < 0) {
        local_result_set(&reply->res, "4.3.0", "cannot create pipe: %m");
        return;
    }
    if ((pid = fork()) < 0) {
        local_result_set(&reply->res, "4.3.0", "cannot fork delivery process: %m");
        close(pfd[0]);
        close(pfd[1]);
        return;
    }
    if (pid == 0) {
        close(pfd[0]);
        signal(SIGPIPE, SIG_DFL);
        umask(077);
        if (!(flags & LOCAL_RUN_KEEP_ROOT))
            local_priv_become(priv->uid, priv->gid);
        fn(ctx, reply);
        local_child_send(pfd[1], reply);
        _exit(0);
    }
    close(pfd[1]);
    if (local_read_deadline(pfd[0], &w, sizeof(w), deadline) == 0 &&
        w.reason_len <= LOCAL_REASON_MAX && w.data_len <= LOCAL_FILE_MAX) {
        char *buf = mymalloc((size_t)w.reason_len + w.data_len + 1);

        if (local_read_deadline(pfd[0], buf, (size_t)w.reason_len + w.data_len, deadline) == 0) {
            w.dsn[sizeof(w.dsn) - 1] = 0;
            reply->res.status = w.status;
            memcpy(reply->res.dsn, w.dsn, sizeof(reply->res.dsn));
            vstr_ncpy(reply->res.reason, buf, w.reason_len);
            vstr_ncpy(reply->data, buf + w.reason_len, w.data_len);
            reply->owner_uid = (uid_t)w.owner_uid;
            reply->owner_gid = (gid_t)w.owner_gid;
            reply->found = w.found;
            ok = 1;
        }
        myfree(buf);
    }
    if (!ok && errno == ETIMEDOUT) {
        /* The child's process group is its own only for commands; this one
           is a plain child. */
        kill(pid, SIGKILL);
    }
    close(pfd[0]);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            status = 0;
            break;
        }
    }
    if (!ok) {
        local_child_status(status, text, sizeof(text));
        local_result_set(&reply->res, "4.3.0", "delivery process failed: %s", text);
        vstr_reset(reply->data);
        reply->found = 0;
    }
}

/* The file reader's request. */
typedef struct LOCAL_READ {
    const char *path;
    int check_owner;
    uid_t owner;
} LOCAL_READ;

/*
 * local_read_child - read one .forward or :include: file with the child's
 * rights. A file that is missing is not an error (found = 0); one that is
 * not a regular file, is writable by others or, for a .forward, belongs to
 * someone else is refused (found = -1, the reason in the result): such a
 * file could make the recipient's mail go where someone else decided.
 */
static void local_read_child(void *ctx, LOCAL_CHILD_REPLY *reply)
{
    LOCAL_READ *rd = ctx;
    struct stat st;
    int fd;
    char buf[8192];
    ssize_t n;

    /* O_NONBLOCK: a fifo planted as the file must not hang the open. */
    if ((fd = open(rd->path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)) < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            reply->found = 0;
            return;
        }
        local_result_set(&reply->res, "4.3.0", "cannot open %s: %m", rd->path);
        return;
    }
    if (fstat(fd, &st) < 0) {
        local_result_set(&reply->res, "4.3.0", "cannot stat %s: %m", rd->path);
        goto done;
    }
    reply->owner_uid = st.st_uid;
    reply->owner_gid = st.st_gid;
    if (!S_ISREG(st.st_mode)) {
        reply->found = -1;
        local_result_set(&reply->res, "4.3.0", "%s is not a regular file", rd->path);
        goto done;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        reply->found = -1;
        local_result_set(&reply->res, "4.3.0", "%s is group or world writable", rd->path);
        goto done;
    }
    if (rd->check_owner && st.st_uid != rd->owner && st.st_uid != 0) {
        reply->found = -1;
        local_result_set(&reply->res, "4.3.0", "%s is not owned by the recipient (uid %ld)",
                         rd->path, (long)rd->owner);
        goto done;
    }
    (void)non_blocking(fd, 0);
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            local_result_set(&reply->res, "4.3.0", "cannot read %s: %m", rd->path);
            vstr_reset(reply->data);
            goto done;
        }
        if (vstr_ncat(reply->data, buf, (size_t)n) < 0) {
            local_result_set(&reply->res, "4.3.0", "%s is larger than %d bytes", rd->path,
                             LOCAL_FILE_MAX);
            vstr_reset(reply->data);
            goto done;
        }
    }
    reply->found = 1;
done:
    close(fd);
}

/* local_read_file - read a .forward or :include: file as priv */
void local_read_file(const LOCAL_PRIV *priv, const char *path, int check_owner, uid_t owner,
                     LOCAL_CHILD_REPLY *reply)
{
    LOCAL_READ rd = {.path = path, .check_owner = check_owner, .owner = owner};
    struct stat st;

    /* Nothing there at all: no child needed. Looking costs no privacy, since
       only "does not exist" is acted upon here. */
    if (stat(path, &st) < 0 && (errno == ENOENT || errno == ENOTDIR)) {
        reply->found = 0;
        return;
    }
    local_run_child(priv, 0, LOCAL_FILE_READ_TIMEOUT, local_read_child, &rd, reply);
}
