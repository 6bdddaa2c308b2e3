/*
 * master_pid - create, lock and query the master pid file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mail/master_pid.h"
#include "util/safe_io.h"

/* master_pid_path - where the pid file lives */
void master_pid_path(VSTR *path, const char *queue_dir, const char *pid_dir)
{
    if (pid_dir && *pid_dir == '/')
        vstr_sprintf(path, "%s/%s", pid_dir, MASTER_PID_FILE);
    else
        vstr_sprintf(path, "%s/%s/%s", queue_dir, pid_dir && *pid_dir ? pid_dir : "pid",
                     MASTER_PID_FILE);
}

/* master_pid_holder - pid holding a write lock on fd, 0 when none */
static pid_t master_pid_holder(int fd)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

    if (fcntl(fd, F_GETLK, &fl) < 0)
        return -1;
    return fl.l_type == F_UNLCK ? 0 : fl.l_pid;
}

/* master_pid_lock - lock and fill in the pid file */
int master_pid_lock(const char *path, pid_t *holder, VSTR *why)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    char buf[32];
    int fd;

    *holder = 0;
    /* O_NOFOLLOW: the pid directory is root's, but never chase a link as root. */
    if ((fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644)) < 0) {
        vstr_sprintf(why, "open lock file %s: %s", path, strerror(errno));
        return -1;
    }
    if (fcntl(fd, F_SETLK, &fl) < 0) {
        if (errno == EAGAIN || errno == EACCES) {
            *holder = master_pid_holder(fd);
            vstr_sprintf(why,
                         "the %s mail system is already running (pid file %s locked by "
                         "process %ld)",
                         "Postern", path, (long)*holder);
        } else {
            vstr_sprintf(why, "lock %s: %s", path, strerror(errno));
        }
        close(fd);
        return -1;
    }
    /* Same shape as Postfix's master.pid: the pid right-aligned in 10 columns. */
    int n = snprintf(buf, sizeof(buf), "%10ld\n", (long)getpid());

    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        vstr_sprintf(why, "write %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* master_pid_running - who holds the lock */
pid_t master_pid_running(const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    pid_t pid;

    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    pid = master_pid_holder(fd);
    close(fd);
    return pid;
}
