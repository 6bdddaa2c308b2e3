/*
 * local_mailbox - delivery to a user's mailbox (Maildir or mbox) and to
 * /file destinations from aliases and .forward files.
 *
 * Each delivery runs in a child process with the rights of the user it is
 * for (local_priv.c). Nothing is written through a symbolic link or to a
 * file with more than one name: the Maildir directories and the mailbox
 * file are opened with O_NOFOLLOW relative to a directory descriptor, an
 * existing mbox file is checked with lstat() and again with fstat() after
 * the open (same inode, one link, owned by the user), and new files are
 * created with O_EXCL. A file planted by someone else therefore cannot turn
 * a delivery into a write to a file of the attacker's choice.
 *
 * Maildir (home_mailbox = Maildir/): the message is written to tmp/ under
 * a unique name (seconds.M<usec>P<pid>Q<count>.host, per the maildir
 * specification), fsync()ed, moved into new/ without ever replacing a file,
 * and new/ is fsync()ed: once we report success the message survives a
 * crash.
 *
 * mbox (home_mailbox without a trailing slash, or mail_spool_directory/USER):
 * dot-lock (USER.lock, stale locks removed after stale_lock_time) and
 * fcntl() lock as mailbox_delivery_lock says, "From sender date" line,
 * ">From " quoting, an empty line at the end; fsync() before reporting; on
 * any error the file is truncated back to its old size, so a failed delivery
 * leaves no partial message behind. In a spool directory only root can
 * write (Debian's /var/mail), the lock file and a new mailbox are created
 * as root (the mailbox then given to the user) and the message is written
 * with the user's effective ids, as Postfix does.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "local.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/strutil.h"

#define LOCAL_MAILDIR_TRIES 10 /* new names tried when a tmp/ name exists */
#define LOCAL_LOCK_SUFFIX ".lock"

/* What one mailbox or file delivery needs in its child. */
typedef struct LOCAL_BOX {
    const LOCAL_STATE *st;
    const char *delivered; /* Delivered-To value */
    const char *base;      /* directory the path starts from */
    int base_nofollow;     /* base is ours to check too (local_home_directory) */
    const char *rel;       /* path below base; for a maildir its directory */
    const char *display;   /* the whole path, for messages */
    const char *user;      /* user name, for messages */
    int maildir;
    int mailbox;      /* the user's own mailbox (not a /file destination) */
    int spool_root;   /* create as root, write as the user */
    int require_home; /* base missing: defer (require_home_directory) */
    uid_t uid;        /* owner of the mailbox */
    gid_t gid;
    unsigned long count; /* Maildir Q value */
} LOCAL_BOX;

static unsigned long local_maildir_count; /* deliveries by this process */

/* local_box_errno_dsn - the DSN for a failed system call in a delivery */
static const char *local_box_errno_dsn(int err)
{
    switch (err) {
    case EFBIG:
    case EDQUOT: return "5.2.2"; /* mailbox full */
    case ELOOP:
    case EMLINK: return "5.2.0"; /* refused: a link where a mailbox belongs */
    default: return "4.2.0";     /* may work later: permissions, space, locks */
    }
}

/* local_box_fail - the result for a failed delivery, in Postfix's words */
static void local_box_fail(const LOCAL_BOX *box, LOCAL_RESULT *res, const char *dsn,
                           const char *detail)
{
    if (box->maildir)
        local_result_set(res, dsn, "maildir delivery failed: %s", detail);
    else if (box->mailbox)
        local_result_set(res, dsn, "cannot update mailbox %s for user %s. %s", box->display,
                         box->user, detail);
    else
        local_result_set(res, dsn, "cannot append message to file %s: %s", box->display, detail);
}

/* local_box_fail_errno - local_box_fail with "what: strerror" */
static void local_box_fail_errno(const LOCAL_BOX *box, LOCAL_RESULT *res, int err, const char *what)
{
    VSTR *text = vstr_alloc(128);

    if (err == ELOOP)
        vstr_sprintf(text, "%s: is a symbolic link", what);
    else
        vstr_sprintf(text, "%s: %s", what, strerror(err));
    local_box_fail(box, res, local_box_errno_dsn(err), vstr_str(text));
    vstr_free(text);
}

/* local_write_fd - sink for local_copy */
static int local_write_fd(void *ctx, const char *data, size_t len)
{
    return write_full(*(int *)ctx, data, len);
}

/* local_box_size_limit - mailbox_size_limit as the file size limit of this child */
static void local_box_size_limit(void)
{
    if (local_conf.mailbox_size_limit > 0) {
        struct rlimit rl = {.rlim_cur = (rlim_t)local_conf.mailbox_size_limit,
                            .rlim_max = (rlim_t)local_conf.mailbox_size_limit};

        /* EFBIG instead of a signal when a write would pass the limit. */
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
            msg_warn("setrlimit RLIMIT_FSIZE %ld: %m", local_conf.mailbox_size_limit);
    }
}

/*
 * local_open_dirs - open (creating with mode 0700 where missing) each
 * component of rel below the directory dfd, never through a symbolic link.
 * Returns the last directory's descriptor, or -1 with errno and the failing
 * component in what.
 */
static int local_open_dirs(int dfd, const char *rel, int create, VSTR *what)
{
    char *copy = mystrdup(rel);
    char *cp = copy, *comp;
    int fd = dup(dfd);

    if (fd < 0) {
        vstr_cpy(what, ".");
        myfree(copy);
        return -1;
    }
    while ((comp = mystrtok(&cp, "/")) != NULL) {
        int next;

        if (strcmp(comp, ".") == 0)
            continue;
        if (strcmp(comp, "..") == 0) {
            /* Never climb out of the home directory. */
            close(fd);
            vstr_cpy(what, comp);
            myfree(copy);
            errno = EINVAL;
            return -1;
        }
        if (create && mkdirat(fd, comp, 0700) < 0 && errno != EEXIST) {
            int err = errno;

            vstr_cpy(what, comp);
            close(fd);
            myfree(copy);
            errno = err;
            return -1;
        }
        next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            int err = errno;

            /* O_NOFOLLOW on a symbolic link gives ELOOP (or ENOTDIR with
               O_DIRECTORY on some kernels): report it as the link it is. */
            struct stat st;

            if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                err = ELOOP;
            vstr_cpy(what, comp);
            close(fd);
            myfree(copy);
            errno = err;
            return -1;
        }
        close(fd);
        fd = next;
    }
    myfree(copy);
    return fd;
}

/* local_open_base - the directory a delivery path starts from */
static int local_open_base(const LOCAL_BOX *box)
{
    int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (box->base_nofollow ? O_NOFOLLOW : 0);

    return open(box->base, flags);
}

/* local_maildir_name - a unique file name for tmp/ and new/ */
static void local_maildir_name(VSTR *name, unsigned long count)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    vstr_sprintf(name, "%ld.M%ldP%ldQ%lu.%s", (long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(),
                 count, local_conf.maildir_host);
}

/* local_maildir_child - write one Maildir message (in the delivery child) */
static void local_maildir_child(void *ctx, LOCAL_CHILD_REPLY *reply)
{
    LOCAL_BOX *box = ctx;
    LOCAL_RESULT *res = &reply->res;
    VSTR *what = vstr_alloc(64);
    VSTR *name = vstr_alloc(64);
    VSTR *why = vstr_alloc(64);
    int base = -1, md = -1, tmp = -1, new = -1, cur = -1, fd = -1;
    int linked = 0, rc;

    local_box_size_limit();
    if ((base = local_open_base(box)) < 0) {
        if (errno == ENOENT && box->require_home)
            local_result_set(res, "4.3.0", "home directory %s is not available", box->base);
        else
            local_box_fail_errno(box, res, errno, box->base);
        goto done;
    }
    if ((md = local_open_dirs(base, box->rel, 1, what)) < 0) {
        local_box_fail_errno(box, res, errno, vstr_str(what));
        goto done;
    }
    if ((tmp = local_open_dirs(md, "tmp", 1, what)) < 0 ||
        (new = local_open_dirs(md, "new", 1, what)) < 0 ||
        (cur = local_open_dirs(md, "cur", 1, what)) < 0) {
        local_box_fail_errno(box, res, errno, vstr_str(what));
        goto done;
    }
    for (int i = 0; i < LOCAL_MAILDIR_TRIES; i++) {
        local_maildir_name(name, box->count + (unsigned long)i);
        fd =
            openat(tmp, vstr_str(name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    if (fd < 0) {
        vstr_sprintf(what, "create tmp/%s", vstr_str(name));
        local_box_fail_errno(box, res, errno, vstr_str(what));
        goto done;
    }
    rc = local_copy(box->st->msg, box->delivered, LOCAL_COPY_RETURN_PATH | LOCAL_COPY_DELIVERED,
                    local_write_fd, &fd, why);
    if (rc == LOCAL_COPY_ERR_QUEUE) {
        local_result_set(res, "4.3.0", "%s", vstr_str(why));
        goto unlink_tmp;
    }
    if (rc < 0 || fsync(fd) < 0) {
        local_box_fail_errno(box, res, errno, "write tmp file");
        goto unlink_tmp;
    }
    rc = close(fd);
    fd = -1;
    if (rc < 0) {
        local_box_fail_errno(box, res, errno, "close tmp file");
        goto unlink_tmp;
    }
    /* Into new/, never over an existing file (the name is unique, but a
       reused one must not destroy a delivered message). */
    if (renameat2(tmp, vstr_str(name), new, vstr_str(name), RENAME_NOREPLACE) < 0) {
        if ((errno != EINVAL && errno != ENOSYS) ||
            linkat(tmp, vstr_str(name), new, vstr_str(name), 0) < 0) {
            vstr_sprintf(what, "move to new/%s", vstr_str(name));
            local_box_fail_errno(box, res, errno, vstr_str(what));
            goto unlink_tmp;
        }
        linked = 1;
    }
    if (fsync(new) < 0) {
        local_box_fail_errno(box, res, errno, "fsync new/");
        /* The message may or may not survive a crash: say so by deferring;
           a second copy is better than none. */
        unlinkat(new, vstr_str(name), 0);
        goto unlink_tmp;
    }
    if (linked)
        unlinkat(tmp, vstr_str(name), 0);
    local_result_ok(res, "delivered to maildir");
    goto done;

unlink_tmp:
    if (fd >= 0)
        close(fd);
    fd = -1;
    unlinkat(tmp, vstr_str(name), 0);
done:
    if (fd >= 0)
        close(fd);
    {
        int fds[] = {base, md, tmp, new, cur};

        for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
            if (fds[i] >= 0)
                close(fds[i]);
    }
    vstr_free(what);
    vstr_free(name);
    vstr_free(why);
}

/* local_sleep - pause between lock attempts */
static void local_sleep(long seconds)
{
    struct timespec ts = {.tv_sec = seconds > 0 ? seconds : 0,
                          .tv_nsec = seconds > 0 ? 0 : 100 * 1000 * 1000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/*
 * local_dotlock - create NAME.lock in the directory dfd (O_EXCL); a lock
 * older than stale_lock_time is taken to be left by a crashed program and
 * removed. 0, or -1 with errno (EAGAIN: held by someone else).
 */
static int local_dotlock(int dfd, const char *lock)
{
    for (long i = 0; i < local_conf.deliver_lock_attempts; i++) {
        struct stat st;
        int fd = openat(dfd, lock, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (errno != EEXIST)
            return -1;
        if (fstatat(dfd, lock, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            time(NULL) > st.st_mtime + local_conf.stale_lock_time) {
            msg_warn("removing stale lock file %s (%ld seconds old)", lock,
                     (long)(time(NULL) - st.st_mtime));
            if (unlinkat(dfd, lock, 0) == 0)
                continue;
        }
        if (i + 1 < local_conf.deliver_lock_attempts)
            local_sleep(local_conf.deliver_lock_delay);
    }
    errno = EAGAIN;
    return -1;
}

/* local_kernel_lock - fcntl() and/or flock() lock on the open mailbox */
static int local_kernel_lock(int fd)
{
    for (long i = 0; i < local_conf.deliver_lock_attempts; i++) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        int ok = 1;

        if (local_conf.lock_fcntl && fcntl(fd, F_SETLK, &fl) < 0) {
            if (errno != EAGAIN && errno != EACCES)
                return -1;
            ok = 0;
        }
        if (ok && local_conf.lock_flock && flock(fd, LOCK_EX | LOCK_NB) < 0) {
            if (errno != EWOULDBLOCK)
                return -1;
            ok = 0;
            if (local_conf.lock_fcntl) {
                fl.l_type = F_UNLCK;
                fcntl(fd, F_SETLK, &fl);
            }
        }
        if (ok)
            return 0;
        if (i + 1 < local_conf.deliver_lock_attempts)
            local_sleep(local_conf.deliver_lock_delay);
    }
    errno = EAGAIN;
    return -1;
}

/* local_split_path - the directory part and the last component of rel */
static void local_split_path(const char *rel, VSTR *dir, VSTR *file)
{
    const char *slash = strrchr(rel, '/');

    if (slash == NULL) {
        vstr_cpy(dir, ".");
        vstr_cpy(file, rel);
    } else {
        vstr_ncpy(dir, rel, (size_t)(slash - rel));
        if (vstr_len(dir) == 0)
            vstr_cpy(dir, "/");
        vstr_cpy(file, slash + 1);
    }
}

/*
 * local_mbox_open - open (or create) the mbox file "file" in the directory
 * dfd for appending, with the checks that keep the write where it belongs.
 * 0 and *fdp, or -1 with a reason in res.
 */
static int local_mbox_open(const LOCAL_BOX *box, int dfd, const char *file, int *fdp,
                           LOCAL_RESULT *res)
{
    struct stat lst, fst;
    int fd;

    for (int attempt = 0; attempt < 2; attempt++) {
        if (fstatat(dfd, file, &lst, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT) {
                local_box_fail_errno(box, res, errno, "lstat");
                return -1;
            }
            fd = openat(dfd, file,
                        O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC,
                        0600);
            if (fd < 0 && errno == EEXIST)
                continue; /* created meanwhile: check it like any existing file */
            if (fd < 0) {
                local_box_fail_errno(box, res, errno, "create");
                return -1;
            }
            /* Created as root in a root-only spool: the user's from now on. */
            if (box->spool_root && fchown(fd, box->uid, box->gid) < 0) {
                local_box_fail_errno(box, res, errno, "chown");
                close(fd);
                unlinkat(dfd, file, 0);
                return -1;
            }
            *fdp = fd;
            return 0;
        }
        if (S_ISLNK(lst.st_mode)) {
            local_box_fail(box, res, "5.2.0", "file is a symbolic link");
            return -1;
        }
        if (S_ISCHR(lst.st_mode) && !box->mailbox) {
            /* /dev/null and friends: no locking, no size, no truncation. */
            if ((fd = openat(dfd, file, O_WRONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC)) < 0) {
                local_box_fail_errno(box, res, errno, "open");
                return -1;
            }
            *fdp = fd;
            return 0;
        }
        if (!S_ISREG(lst.st_mode)) {
            local_box_fail(box, res, "5.2.0", "file is not a regular file");
            return -1;
        }
        if (lst.st_nlink != 1) {
            VSTR *text = vstr_alloc(64);

            vstr_sprintf(text, "file has %lu hard links", (unsigned long)lst.st_nlink);
            local_box_fail(box, res, "5.2.0", vstr_str(text));
            vstr_free(text);
            return -1;
        }
        if (box->mailbox && local_conf.strict_mailbox_ownership && lst.st_uid != box->uid) {
            VSTR *text = vstr_alloc(64);

            vstr_sprintf(text, "file is owned by uid %ld, not by the recipient (uid %ld)",
                         (long)lst.st_uid, (long)box->uid);
            local_box_fail(box, res, "5.2.0", vstr_str(text));
            vstr_free(text);
            return -1;
        }
        fd = openat(dfd, file, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
            local_box_fail_errno(box, res, errno, "open");
            return -1;
        }
        /* The name may have been switched between lstat and open. */
        if (fstat(fd, &fst) < 0 || fst.st_dev != lst.st_dev || fst.st_ino != lst.st_ino ||
            fst.st_nlink != 1 || !S_ISREG(fst.st_mode)) {
            local_box_fail(box, res, "4.2.0", "file changed while it was opened");
            close(fd);
            return -1;
        }
        *fdp = fd;
        return 0;
    }
    local_box_fail(box, res, "4.2.0", "file keeps changing while it is opened");
    return -1;
}

/* local_mbox_child - append one message to an mbox file (in the delivery child) */
static void local_mbox_child(void *ctx, LOCAL_CHILD_REPLY *reply)
{
    LOCAL_BOX *box = ctx;
    LOCAL_RESULT *res = &reply->res;
    VSTR *dir = vstr_alloc(64);
    VSTR *file = vstr_alloc(64);
    VSTR *lock = vstr_alloc(64);
    VSTR *why = vstr_alloc(64);
    VSTR *what = vstr_alloc(64);
    int base = -1, dfd = -1, fd = -1, locked = 0, rc;
    struct stat st;
    off_t orig_size = 0;

    local_split_path(box->rel, dir, file);
    if ((base = local_open_base(box)) < 0) {
        if (errno == ENOENT && box->require_home)
            local_result_set(res, "4.3.0", "home directory %s is not available", box->base);
        else
            local_box_fail_errno(box, res, errno, box->base);
        goto done;
    }
    if ((dfd = local_open_dirs(base, vstr_str(dir), 0, what)) < 0) {
        local_box_fail_errno(box, res, errno, vstr_str(what));
        goto done;
    }
    if (local_conf.lock_dotlock) {
        vstr_sprintf(lock, "%s%s", vstr_str(file), LOCAL_LOCK_SUFFIX);
        if (local_dotlock(dfd, vstr_str(lock)) == 0) {
            locked = 1;
        } else if (box->mailbox || errno == EAGAIN) {
            if (errno == EAGAIN)
                local_box_fail(box, res, "4.2.0", "unable to lock for exclusive access");
            else
                local_box_fail_errno(box, res, errno, "create lock file");
            goto done;
        }
        /* A /file destination in a directory we cannot write: kernel locks only. */
    }
    if (local_mbox_open(box, dfd, vstr_str(file), &fd, res) < 0)
        goto done;
    if (fstat(fd, &st) < 0) {
        local_box_fail_errno(box, res, errno, "fstat");
        goto done;
    }
    if (S_ISREG(st.st_mode)) {
        if (local_kernel_lock(fd) < 0) {
            if (errno == EAGAIN)
                local_box_fail(box, res, "4.2.0", "unable to lock for exclusive access");
            else
                local_box_fail_errno(box, res, errno, "lock");
            goto done;
        }
        /* Size after locking: another writer may have appended meanwhile. */
        if (fstat(fd, &st) < 0) {
            local_box_fail_errno(box, res, errno, "fstat");
            goto done;
        }
        orig_size = st.st_size;
        local_box_size_limit();
    }
    /* From here on, the user's rights: quotas and audit see the user. */
    if (box->spool_root && local_priv_effective(box->uid, box->gid) < 0) {
        local_box_fail_errno(box, res, errno, "switch to the recipient's ids");
        goto done;
    }
    rc = local_copy(box->st->msg, box->delivered,
                    LOCAL_COPY_MBOX | LOCAL_COPY_RETURN_PATH | LOCAL_COPY_DELIVERED, local_write_fd,
                    &fd, why);
    if (rc == 0 && S_ISREG(st.st_mode) && fsync(fd) < 0)
        rc = -1;
    if (rc != 0) {
        int err = errno;

        /* Leave the mailbox as it was: no half message for readers to trip on. */
        if (S_ISREG(st.st_mode) && ftruncate(fd, orig_size) < 0)
            msg_warn("truncate %s back to %lld bytes: %m", box->display, (long long)orig_size);
        if (rc == LOCAL_COPY_ERR_QUEUE) {
            local_result_set(res, "4.3.0", "%s", vstr_str(why));
        } else {
            vstr_sprintf(what, "error writing message: %s", strerror(err));
            local_box_fail(box, res, local_box_errno_dsn(err), vstr_str(what));
        }
        goto done;
    }
    if (box->mailbox)
        local_result_ok(res, "delivered to mailbox");
    else
        local_result_ok(res, "delivered to file: %s", box->display);

done:
    if (box->spool_root)
        (void)local_priv_effective(0, 0);
    if (fd >= 0 && close(fd) < 0 && res->status == LOCAL_STAT_OK) {
        int err = errno;

        vstr_sprintf(what, "error writing message: %s", strerror(err));
        local_box_fail(box, res, local_box_errno_dsn(err), vstr_str(what));
    }
    if (locked && unlinkat(dfd, vstr_str(lock), 0) < 0)
        msg_warn("remove lock file %s: %m", vstr_str(lock));
    if (dfd >= 0)
        close(dfd);
    if (base >= 0)
        close(base);
    vstr_free(dir);
    vstr_free(file);
    vstr_free(lock);
    vstr_free(why);
    vstr_free(what);
}

/* local_box_run - run the Maildir or mbox child and copy its result */
static void local_box_run(LOCAL_BOX *box, const LOCAL_PRIV *priv, int flags, LOCAL_RESULT *res)
{
    LOCAL_CHILD_REPLY reply;

    box->count = ++local_maildir_count;
    local_child_reply_init(&reply);
    local_run_child(priv, flags, local_conf.ipc_timeout,
                    box->maildir ? local_maildir_child : local_mbox_child, box, &reply);
    res->status = reply.res.status;
    memcpy(res->dsn, reply.res.dsn, sizeof(res->dsn));
    vstr_ncpy(res->reason, vstr_str(reply.res.reason), vstr_len(reply.res.reason));
    local_child_reply_free(&reply);
}

/*
 * local_make_home - under local_home_directory, make sure $dir/USER exists
 * and belongs to the user (created by us, as whoever we are, then given to
 * the user). A symbolic link or a directory of another user is refused.
 */
int local_make_home(const LOCAL_USER *user, LOCAL_RESULT *res)
{
    const char *top = local_conf.local_home_directory;
    struct stat st;
    int dfd, fd, created = 0;

    if (mkdir(top, 0755) < 0 && errno != EEXIST) {
        local_result_set(res, "4.3.0", "cannot create local_home_directory %s: %m", top);
        return -1;
    }
    if ((dfd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        local_result_set(res, "4.3.0", "cannot open local_home_directory %s: %m", top);
        return -1;
    }
    if (mkdirat(dfd, user->name, 0700) == 0) {
        created = 1;
    } else if (errno != EEXIST) {
        local_result_set(res, "4.3.0", "cannot create home directory %s: %m", user->home);
        close(dfd);
        return -1;
    }
    fd = openat(dfd, user->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(dfd);
    if (fd < 0) {
        local_result_set(res, errno == ELOOP || errno == ENOTDIR ? "5.2.0" : "4.3.0",
                         "cannot open home directory %s: %s", user->home,
                         errno == ELOOP || errno == ENOTDIR ? "not a directory or a symbolic link"
                                                            : strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        local_result_set(res, "4.3.0", "cannot stat home directory %s: %m", user->home);
        close(fd);
        return -1;
    }
    if (st.st_uid != user->uid) {
        /* Just created by us (as root): hand it over; anyone else's: refuse. */
        if (created && local_conf.is_root && fchown(fd, user->uid, user->gid) == 0) {
            close(fd);
            return 0;
        }
        local_result_set(res, "5.2.0", "home directory %s belongs to uid %ld, not to %s",
                         user->home, (long)st.st_uid, user->name);
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* local_deliver_mailbox - the user's own Maildir or mbox */
void local_deliver_mailbox(const LOCAL_STATE *st, const LOCAL_USER *user, LOCAL_RESULT *res)
{
    LOCAL_BOX box = {0};
    LOCAL_PRIV priv = {.uid = user->uid, .gid = user->gid};
    VSTR *rel = vstr_alloc(64);
    VSTR *display = vstr_alloc(128);
    VSTR *delivered = vstr_alloc(128);
    int flags = 0;

    vstr_cpy(delivered, st->address);
    vstr_lower(delivered);
    box.st = st;
    box.delivered = vstr_str(delivered);
    box.user = user->name;
    box.mailbox = 1;
    box.uid = user->uid;
    box.gid = user->gid;
    if (*local_conf.home_mailbox) {
        const char *hm = local_conf.home_mailbox;

        while (*hm == '/')
            hm++;
        box.base = user->home;
        box.require_home = local_conf.require_home_directory;
        if (*local_conf.local_home_directory) {
            if (local_make_home(user, res) < 0)
                goto done;
            box.base_nofollow = 1;
        }
        vstr_cpy(rel, hm);
    } else {
        box.base = local_conf.mail_spool_directory;
        vstr_cpy(rel, user->name);
        if (local_conf.mail_spool_directory[strlen(local_conf.mail_spool_directory) - 1] == '/')
            vstr_addch(rel, '/');
        /* Root-only spool (Debian's root:mail 2775 /var/mail): create as root. */
        if (local_conf.is_root && user->uid != 0)
            flags |= LOCAL_RUN_KEEP_ROOT, box.spool_root = 1;
    }
    box.maildir = vstr_len(rel) > 0 && vstr_str(rel)[vstr_len(rel) - 1] == '/';
    if (box.maildir) {
        /* Maildir in the spool: the user's own directory, written as the user. */
        flags &= ~LOCAL_RUN_KEEP_ROOT;
        box.spool_root = 0;
    }
    vstr_sprintf(display, "%s/%s", box.base, vstr_str(rel));
    if (box.maildir)
        vstr_truncate(display, vstr_len(display) - 1);
    box.rel = vstr_str(rel);
    box.display = vstr_str(display);
    local_box_run(&box, &priv, flags, res);
done:
    vstr_free(rel);
    vstr_free(display);
    vstr_free(delivered);
}

/* local_deliver_file - a /file (or /maildir/) destination, as priv */
void local_deliver_file(const LOCAL_STATE *st, const char *path, const LOCAL_PRIV *priv,
                        LOCAL_RESULT *res)
{
    LOCAL_BOX box = {0};
    VSTR *delivered = vstr_alloc(128);
    VSTR *dir = vstr_alloc(128);
    VSTR *last = vstr_alloc(64);
    size_t len = strlen(path);
    const char *slash;

    if (path[0] != '/') {
        local_result_set(res, "5.3.5", "file destination is not an absolute path: %s", path);
        goto done;
    }
    box.maildir = len > 1 && path[len - 1] == '/';
    while (len > 1 && path[len - 1] == '/')
        len--;
    /* The directories on the way are the administrator's or the user's
       choice and are followed; the file (or maildir) itself never is. */
    for (slash = path + len; slash > path && slash[-1] != '/'; slash--)
        ;
    vstr_ncpy(dir, path, (size_t)(slash - path));
    vstr_ncpy(last, slash, len - (size_t)(slash - path));
    if (vstr_len(last) == 0 || strcmp(vstr_str(last), "..") == 0 ||
        strcmp(vstr_str(last), ".") == 0) {
        local_result_set(res, "5.3.5", "bad file destination: %s", path);
        goto done;
    }
    vstr_cpy(delivered, st->address);
    vstr_lower(delivered);
    box.st = st;
    box.delivered = (local_conf.prepend_delivered & LOCAL_DT_FILE) ? vstr_str(delivered) : NULL;
    box.user = st->user;
    box.base = vstr_str(dir);
    box.rel = vstr_str(last);
    box.display = path;
    box.uid = priv->uid;
    box.gid = priv->gid;
    local_box_run(&box, priv, 0, res);
done:
    vstr_free(delivered);
    vstr_free(dir);
    vstr_free(last);
}
