/*
 * mail_queue_dirs - create and audit the queue directory tree from one table.
 *
 * Each directory is opened with O_NOFOLLOW|O_DIRECTORY and fixed through the
 * descriptor (fchown, fchmod), so a symbolic link or a rename placed in the
 * tree cannot redirect a chown or chmod done as root to some other file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/mail_queue_dirs.h"
#include "mail/priv.h"
#include "util/msg.h"
#include "util/vstr.h"

/*
 * maildrop is written by the setgid postdrop command and read by pickup:
 * group write for postdrop, sticky so that one submitter cannot remove
 * another's file, no read for the group so that queue files cannot be listed.
 * public/ holds the sockets unprivileged commands may reach (through group
 * setgid_group); private/ the sockets only the mail system may use.
 */
const MAIL_QUEUE_DIR mail_queue_dirs[] = {
    {".", MAIL_QDIR_OWNER_ROOT, MAIL_QDIR_GROUP_ROOT, 0755},
    {MAIL_QUEUE_PID, MAIL_QDIR_OWNER_ROOT, MAIL_QDIR_GROUP_ROOT, 0755},
    {MAIL_QUEUE_MAILDROP, MAIL_QDIR_OWNER_MAIL, MAIL_QDIR_GROUP_SETGID, 01730},
    {MAIL_QUEUE_PUBLIC, MAIL_QDIR_OWNER_MAIL, MAIL_QDIR_GROUP_SETGID, 0710},
    {MAIL_QUEUE_PRIVATE, MAIL_QDIR_OWNER_MAIL, MAIL_QDIR_GROUP_OWNER, 0700},
    {MAIL_QUEUE_INCOMING, MAIL_QDIR_OWNER_MAIL, MAIL_QDIR_GROUP_OWNER, 0700},
    {MAIL_QUEUE_IMMEDIATE, MAIL_QDIR_OWNER_MAIL, MAIL_QDIR_GROUP_OWNER, 0700},
    {MAIL_QUEUE_BULK, MAIL_QDIR_OWNER_MAIL, MAIL_QDIR_GROUP_OWNER, 0700},
    {MAIL_QUEUE_DEFERRED, MAIL_QDIR_OWNER_MAIL, MAIL_QDIR_GROUP_OWNER, 0700},
    {MAIL_QUEUE_HOLD, MAIL_QDIR_OWNER_MAIL, MAIL_QDIR_GROUP_OWNER, 0700},
    {MAIL_QUEUE_CORRUPT, MAIL_QDIR_OWNER_MAIL, MAIL_QDIR_GROUP_OWNER, 0700},
    {NULL, 0, 0, 0},
};

/* mail_queue_ids - numeric owners for the table's symbolic ones */
int mail_queue_ids(const char *mail_owner, const char *setgid_group, MAIL_QUEUE_IDS *ids, VSTR *why)
{
    memset(ids, 0, sizeof(*ids));
    if (!priv_is_root()) {
        ids->private_instance = 1;
        ids->root_uid = ids->owner_uid = geteuid();
        ids->root_gid = ids->owner_gid = ids->setgid_gid = getegid();
        return 0;
    }
    if (priv_lookup(mail_owner, &ids->owner_uid, &ids->owner_gid) < 0) {
        vstr_sprintf(why, "mail_owner user \"%s\" does not exist", mail_owner ? mail_owner : "");
        return -1;
    }
    if (ids->owner_uid == 0) {
        vstr_sprintf(why, "mail_owner \"%s\" has uid 0: it must be an unprivileged user",
                     mail_owner);
        return -1;
    }
    if (priv_lookup_group(setgid_group, &ids->setgid_gid) < 0) {
        vstr_sprintf(why, "setgid_group \"%s\" does not exist", setgid_group ? setgid_group : "");
        return -1;
    }
    if (ids->setgid_gid == 0) {
        vstr_sprintf(why, "setgid_group \"%s\" has gid 0: it must be an unprivileged group",
                     setgid_group);
        return -1;
    }
    return 0;
}

/* qdir_report - format and hand one finding to the caller */
static void qdir_report(MAIL_QDIR_REPORT report, void *ctx, int fixed, const char *fmt, ...)
    MSG_FMT(4, 5);

static void qdir_report(MAIL_QDIR_REPORT report, void *ctx, int fixed, const char *fmt, ...)
{
    VSTR *text = vstr_alloc(256);
    va_list ap;

    va_start(ap, fmt);
    vstr_vsprintf_append(text, fmt, ap);
    va_end(ap);
    if (report)
        report(ctx, fixed, vstr_str(text));
    vstr_free(text);
}

/* qdir_mkdirs - create path and missing parents (parents 0755) */
static int qdir_mkdirs(const char *path, mode_t mode)
{
    VSTR *buf = vstr_alloc(strlen(path) + 1);
    int ret = 0;

    vstr_cpy(buf, path);
    for (char *p = vstr_str(buf) + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(vstr_str(buf), 0755) < 0 && errno != EEXIST)
            ret = -1;
        *p = '/';
        if (ret < 0)
            goto done;
    }
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        ret = -1;
done:
    vstr_free(buf);
    return ret;
}

/* qdir_wanted - numeric owner and group for one table entry */
static void qdir_wanted(const MAIL_QUEUE_DIR *d, const MAIL_QUEUE_IDS *ids, uid_t *uid, gid_t *gid)
{
    *uid = d->owner == MAIL_QDIR_OWNER_MAIL ? ids->owner_uid : ids->root_uid;
    *gid = ids->root_gid;
    switch (d->group) {
    case MAIL_QDIR_GROUP_ROOT: *gid = ids->root_gid; break;
    case MAIL_QDIR_GROUP_OWNER: *gid = ids->owner_gid; break;
    case MAIL_QDIR_GROUP_SETGID: *gid = ids->setgid_gid; break;
    }
}

/* qdir_check_one - audit or repair one directory; returns problems left */
static int qdir_check_one(const char *path, const MAIL_QUEUE_DIR *d, const MAIL_QUEUE_IDS *ids,
                          int flags, MAIL_QDIR_REPORT report, void *ctx)
{
    int fix = flags & MAIL_QDIR_FIX;
    int created = 0;
    int problems = 0;
    uid_t uid;
    gid_t gid;
    struct stat st;
    int fd;

    qdir_wanted(d, ids, &uid, &gid);
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (!fix) {
            qdir_report(report, ctx, 0, "missing directory %s", path);
            return 1;
        }
        if (qdir_mkdirs(path, 0700) < 0) {
            qdir_report(report, ctx, 0, "cannot create directory %s: %s", path, strerror(errno));
            return 1;
        }
        created = 1;
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
        if (errno == ELOOP || errno == ENOTDIR)
            qdir_report(report, ctx, 0, "%s is not a directory (or is a symbolic link)", path);
        else
            qdir_report(report, ctx, 0, "open %s: %s", path, strerror(errno));
        return 1;
    }
    if (fstat(fd, &st) < 0) {
        qdir_report(report, ctx, 0, "stat %s: %s", path, strerror(errno));
        close(fd);
        return 1;
    }
    if (st.st_uid != uid || st.st_gid != gid) {
        if (fix && fchown(fd, uid, gid) == 0) {
            if (!created)
                qdir_report(report, ctx, 1, "fixed owner of %s: %ld:%ld -> %ld:%ld", path,
                            (long)st.st_uid, (long)st.st_gid, (long)uid, (long)gid);
        } else {
            qdir_report(report, ctx, 0, "wrong owner of %s: %ld:%ld, expected %ld:%ld%s%s", path,
                        (long)st.st_uid, (long)st.st_gid, (long)uid, (long)gid, fix ? ": " : "",
                        fix ? strerror(errno) : "");
            problems++;
        }
    }
    /* chown may clear set-id bits, so the mode is checked after it. */
    if (fstat(fd, &st) == 0 && (st.st_mode & 07777) != d->mode) {
        if (fix && fchmod(fd, d->mode) == 0) {
            if (!created)
                qdir_report(report, ctx, 1, "fixed mode of %s: %04o -> %04o", path,
                            (unsigned)(st.st_mode & 07777), (unsigned)d->mode);
        } else {
            qdir_report(report, ctx, 0, "wrong mode of %s: %04o, expected %04o%s%s", path,
                        (unsigned)(st.st_mode & 07777), (unsigned)d->mode, fix ? ": " : "",
                        fix ? strerror(errno) : "");
            problems++;
        }
    }
    if (created)
        qdir_report(report, ctx, 1, "created directory %s mode %04o", path, (unsigned)d->mode);
    close(fd);
    return problems;
}

/* mail_queue_dirs_check - audit or repair the whole tree */
int mail_queue_dirs_check(const char *queue_dir, const MAIL_QUEUE_IDS *ids, int flags,
                          MAIL_QDIR_REPORT report, void *ctx)
{
    VSTR *path = vstr_alloc(256);
    int problems = 0;

    if (queue_dir == NULL || *queue_dir != '/') {
        qdir_report(report, ctx, 0, "queue_directory \"%s\" is not an absolute path",
                    queue_dir ? queue_dir : "");
        vstr_free(path);
        return 1;
    }
    for (const MAIL_QUEUE_DIR *d = mail_queue_dirs; d->name; d++) {
        if (strcmp(d->name, ".") == 0)
            vstr_cpy(path, queue_dir);
        else
            vstr_sprintf(path, "%s/%s", queue_dir, d->name);
        int n = qdir_check_one(vstr_str(path), d, ids, flags, report, ctx);

        problems += n;
        /* Without the top directory nothing below can be right. */
        if (n > 0 && strcmp(d->name, ".") == 0 && access(queue_dir, F_OK) < 0)
            break;
    }
    vstr_free(path);
    return problems;
}
