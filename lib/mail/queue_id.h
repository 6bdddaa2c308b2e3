/*
 * queue_id - queue ids: unique, sortable by arrival, safe as file names.
 *
 * Format version 1 (QUEUE_ID_LEN = 17 characters), for example
 * "11GDXQ05GBSN00C1S" (made at 2024-01-02 03:04:05.678901 UTC by pid 12345):
 *
 *   offset  width  meaning
 *   0       1      format version, '1'
 *   1       11     microseconds since the epoch, base 32, most significant first
 *   12      5      uniqueness suffix: the creating process id, base 32
 *
 * The base-32 alphabet is "0123456789ABCDEFGHJKMNPQRSTVWXYZ" (Crockford's:
 * digits and upper-case letters without I, L, O and U). It is in ASCII order,
 * so with the fixed width strcmp() order is creation order, and it has no
 * lower-case letters, so ids stay distinct on case-insensitive file systems
 * and cannot be confused when read aloud (0/O, 1/I/L). Eleven digits hold 2^55
 * microseconds: enough until the year 3112.
 *
 * Uniqueness: one process never returns the same time twice (a burst within
 * one microsecond borrows the following microseconds), and two processes
 * that run at the same time have different process ids. What is left (clock
 * set back across a restart with the same process id, process ids repeated
 * in separate pid namespaces that share a queue) is caught by the O_EXCL
 * creation of the queue file: the writer asks for a new id and retries.
 *
 * The hashed queue subdirectories (mail_queue) are named after the id's last
 * time digits, which change fastest, so files spread evenly over them.
 *
 * The id is chosen by queue file writers; anything that takes an id from a
 * user (postsuper, postqueue -i) must check it with queue_id_valid() before
 * building a path from it.
 */
#ifndef POSTERN_QUEUE_ID_H
#define POSTERN_QUEUE_ID_H

#include <stdint.h>
#include <sys/time.h>
#include <sys/types.h>

#define QUEUE_ID_VERSION '1'
#define QUEUE_ID_TIME_POS 1              /* first time digit */
#define QUEUE_ID_TIME_LEN 11             /* time digits */
#define QUEUE_ID_UNIQ_POS 12             /* first uniqueness digit */
#define QUEUE_ID_UNIQ_LEN 5              /* uniqueness digits (25 bits; Linux pids need 22) */
#define QUEUE_ID_LEN 17                  /* characters */
#define QUEUE_ID_SIZE (QUEUE_ID_LEN + 1) /* with the terminating NUL */

/* QUEUE_ID_USEC_MAX - the largest time an id can hold (32^11 - 1 microseconds) */
#define QUEUE_ID_USEC_MAX ((UINT64_C(1) << 55) - 1)

/* queue_id_new - a fresh id into id[QUEUE_ID_SIZE]; its time into *when if not NULL */
void queue_id_new(char *id, struct timeval *when);

/* queue_id_format - the id for a given time and uniqueness value (tests, tools);
   usec above QUEUE_ID_USEC_MAX is a bug; uniq is taken modulo 32^5 */
void queue_id_format(char *id, uint64_t usec, uint32_t uniq);

/* queue_id_valid - exactly a version-1 id: length, version, alphabet; 1 or 0 */
int queue_id_valid(const char *id);

/* queue_id_time - the creation time encoded in id; 0, or -1 if id is not valid */
int queue_id_time(const char *id, struct timeval *when);

/* queue_id_hash_char - the character naming hash level `level` (0 = outermost,
   the fastest-changing digit); id must be valid, level < QUEUE_ID_TIME_LEN */
int queue_id_hash_char(const char *id, int level);

/* queue_id_char_ok - ch belongs to the id alphabet; 1 or 0 */
int queue_id_char_ok(int ch);

#endif
