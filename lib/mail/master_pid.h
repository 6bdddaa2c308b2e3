/*
 * master_pid - the pid file that keeps two masters off one queue.
 *
 * master holds an fcntl write lock on queue_directory/pid/master.pid for as
 * long as it runs; the file holds its pid. A second master fails to take
 * the lock; `postern status` and `postern stop` ask the kernel who holds it,
 * so a stale file left by a crash is never mistaken for a running master.
 */
#ifndef POSTERN_MASTER_PID_H
#define POSTERN_MASTER_PID_H

#include <sys/types.h>

#include "util/vstr.h"

#define MASTER_PID_FILE "master.pid"

/* master_pid_path - queue_dir/pid_dir/master.pid into path (pid_dir may be absolute) */
void master_pid_path(VSTR *path, const char *queue_dir, const char *pid_dir);

/* master_pid_lock - create and lock the file, write our pid; the descriptor
   (keep it open: closing it drops the lock), or -1 with the reason in why and
   *holder set to the running master's pid when that is the reason */
int master_pid_lock(const char *path, pid_t *holder, VSTR *why);

/* master_pid_running - pid of the master holding the lock; 0 when none holds
   it (no file, or a stale one); -1 when the file cannot be examined (errno) */
pid_t master_pid_running(const char *path);

#endif
