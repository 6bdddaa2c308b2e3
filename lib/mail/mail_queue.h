/*
 * mail_queue - where queue files live: queue names, paths, hashing, moves, scans.
 *
 * The message queues under queue_directory (names from mail_queue_dirs.h):
 *
 *   maildrop/   local submissions (postdrop), read by pickup
 *   incoming/   queue files being written by cleanup; never acknowledged yet
 *   immediate/  committed mail of class immediate, waiting for qmgr
 *   bulk/       committed mail of class bulk, waiting for qmgr
 *   deferred/   mail that qmgr will try again later
 *   hold/       mail held by policy or postsuper -h; qmgr ignores it
 *   corrupt/    files that failed validation, kept for the administrator
 *
 * Hashing: a queue named in hash_queue_names keeps its files in
 * hash_queue_depth levels of one-character subdirectories, named after the
 * id's fastest-changing time digits (queue_id_hash_char), last digit first:
 * with depth 2, "deferred/N/S/11GDXQ05GBSN00C1S". No directory grows huge.
 * Subdirectories are created when first needed. The walker finds files at
 * any depth up to MAIL_QUEUE_HASH_DEPTH_MAX, so mail stays reachable by scans
 * after the hashing settings change (a repair tool can move it into place).
 *
 * Moves and removals are durable: rename (never replacing an existing file)
 * or unlink, then fsync of every directory whose entries changed. Paths are
 * only ever built from a known queue name and a valid queue id; anything else
 * is a bug (panic), because it could let a path escape queue_directory.
 *
 * Settings come from mail_queue_init (not from main.cf directly), so that
 * tests and tools can point the module at any directory. They are process
 * configuration: set once at start-up, read everywhere.
 */
#ifndef POSTERN_MAIL_QUEUE_H
#define POSTERN_MAIL_QUEUE_H

#include <sys/types.h>

#include "mail/mail_queue_dirs.h"
#include "util/argv.h"
#include "util/vstr.h"

#define MAIL_QUEUE_HASH_DEPTH_MAX 4 /* levels; 32^4 directories is already plenty */

/* mail_queue_init - settings: queue_directory, hash_queue_depth (0 disables
   hashing) and hash_queue_names (comma/space list). Names of Postfix's
   logfile queues (defer, bounce, trace, flush, saved, active) are accepted
   and ignored so that a Postfix main.cf works; other unknown names fail.
   0, or -1 with the reason in why (may be NULL). May be called again. */
int mail_queue_init(const char *queue_directory, int hash_depth, const char *hash_names, VSTR *why);

/* mail_queue_directory - the queue_directory given to mail_queue_init */
const char *mail_queue_directory(void);

/* mail_queue_name_ok - a message queue this module knows; 1 or 0 */
int mail_queue_name_ok(const char *queue_name);

/* mail_queue_hashed - files of this queue live in hash subdirectories; 1 or 0 */
int mail_queue_hashed(const char *queue_name);

/* mail_queue_path - the file's path into buf: DIR/QUEUE[/H/H]/ID; returns vstr_str(buf) */
const char *mail_queue_path(VSTR *buf, const char *queue_name, const char *id);

/* mail_queue_file_dir - the directory holding that file; returns vstr_str(buf) */
const char *mail_queue_file_dir(VSTR *buf, const char *queue_name, const char *id);

/* mail_queue_make_subdirs - create the hash subdirectories for id (mode 0700)
   and fsync the parents of those created; 0, or -1 with errno */
int mail_queue_make_subdirs(const char *queue_name, const char *id);

/* mail_queue_exists - a file for id is in queue_name; 1, 0, or -1 with errno */
int mail_queue_exists(const char *queue_name, const char *id);

/* mail_queue_exists_any - a file for id is in any message queue except skip
   (NULL: none); 1 or 0 */
int mail_queue_exists_any(const char *id, const char *skip);

/* mail_queue_rename - move a file between two paths without ever replacing
   an existing target (EEXIST); 0, or -1 with errno */
int mail_queue_rename(const char *from_path, const char *to_path);

/* mail_queue_move - move id from one queue to another, durably: rename
   (creating hash subdirectories as needed, EEXIST if the target exists),
   then fsync both directories; 0, or -1 with errno */
int mail_queue_move(const char *from_queue, const char *to_queue, const char *id);

/* mail_queue_remove - unlink id from the queue and fsync its directory;
   0, or -1 with errno (ENOENT when it is not there) */
int mail_queue_remove(const char *queue_name, const char *id);

/* Walk callback: one call per queue file found; path is valid during the
   call only. Return 0 to go on, anything else to stop the walk. */
typedef int (*MAIL_QUEUE_WALK_FN)(void *ctx, const char *id, const char *path);

/* mail_queue_walk - every file with a valid id name in the queue, at the top
   or in hash subdirectories, in directory order; entries that are neither are
   logged and skipped. Returns 0, the callback's stop value, or -1 with errno
   (the queue directory cannot be read). */
int mail_queue_walk(const char *queue_name, MAIL_QUEUE_WALK_FN fn, void *ctx);

/* mail_queue_scan - the ids in a queue, sorted (oldest first), appended to
   ids; with limit > 0 only the oldest `limit` are kept, in memory bounded by
   about twice that. Returns the number added, or -1 with errno. */
ssize_t mail_queue_scan(const char *queue_name, size_t limit, ARGV *ids);

#endif
