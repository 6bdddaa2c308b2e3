/*
 * safe_io - complete reads and writes, timeouts, and durable file updates.
 *
 * The durable-update rule used everywhere: write a temporary file in the
 * target's directory, fsync it, rename it over the target, fsync the
 * directory. A crash at any point leaves the old or the new file, never a
 * mix.
 */
#ifndef POSTERN_SAFE_IO_H
#define POSTERN_SAFE_IO_H

#include <stddef.h>
#include <sys/types.h>

/* read_full - read exactly len bytes unless EOF; returns bytes read or -1 */
ssize_t read_full(int fd, void *buf, size_t len);
/* write_full - write all len bytes; 0 or -1 */
int write_full(int fd, const void *buf, size_t len);
/* timed_wait_readable / writable - 0 ready, -1 with errno ETIMEDOUT or other */
int timed_wait_readable(int fd, int timeout_ms);
int timed_wait_writable(int fd, int timeout_ms);
/* timed_read - one read after waiting at most timeout_ms; like read(2) */
ssize_t timed_read(int fd, void *buf, size_t len, int timeout_ms);
/* timed_read_full - exactly len bytes within timeout_ms each; bytes or -1 */
ssize_t timed_read_full(int fd, void *buf, size_t len, int timeout_ms);
/* timed_write_full - all len bytes, waiting at most timeout_ms each time */
int timed_write_full(int fd, const void *buf, size_t len, int timeout_ms);
/* fsync_dir - fsync the directory at path */
int fsync_dir(const char *path);
/* fsync_parent - fsync the directory that holds path */
int fsync_parent(const char *path);
/* file_write_atomic - replace path with data durably (temp, fsync, rename, fsync dir) */
int file_write_atomic(const char *path, const void *data, size_t len, int mode);
/* file_read_all - whole file into a new buffer (myfree it), at most limit bytes;
   NULL with errno (EFBIG past the limit) */
char *file_read_all(const char *path, size_t limit, size_t *lenp);
/* close_on_exec, non_blocking - set or clear the flag; old value or -1 */
int close_on_exec(int fd, int on);
int non_blocking(int fd, int on);

#endif
