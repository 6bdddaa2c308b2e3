/*
 * postsuper - internal interfaces between postsuper.c (options, privileges,
 * configuration), postsuper_ops.c (delete, hold, release, requeue) and
 * postsuper_repair.c (structure check, purge).
 */
#ifndef POSTERN_POSTSUPER_H
#define POSTERN_POSTSUPER_H

#include <sysexits.h>

#include "util/argv.h"

/* Operations on messages. */
enum ps_op { PS_OP_DELETE, PS_OP_HOLD, PS_OP_RELEASE, PS_OP_REQUEUE, PS_OP_COUNT };

/* What happened, for the summary and the exit status. */
typedef struct PS_STATS {
    long done[PS_OP_COUNT]; /* messages deleted, held, released, requeued */
    long errors;            /* operations that failed for a reason other than "not there" */
    long bad_ids;           /* invalid queue ids read from standard input */
    long moved;             /* -s: files put where the hash settings want them */
    long corrupt;           /* -s: files set aside in corrupt/ */
    long removed;           /* -s, -p: stale and alien files removed */
} PS_STATS;

extern PS_STATS ps_stats;

/* PS_FATAL - end with a message and a sysexits.h status */
#define PS_FATAL(status, ...) (ps_exit_status = (status), msg_fatal_status((status), __VA_ARGS__))
extern int ps_exit_status;

/* ps_queues_for - the queues an operation looks in: those of the command
   line (NULL: the defaults) that the operation applies to; argv_free it */
ARGV *ps_queues_for(enum ps_op op, const ARGV *given);

/* ps_one - apply op to one message given by id ("ALL" and "-" excluded) */
void ps_one(enum ps_op op, const ARGV *queues, const char *id, int verbose_log);

/* ps_all - apply op to every message in the queues */
void ps_all(enum ps_op op, const ARGV *queues);

/* ps_stdin - apply op to the ids read from standard input, one per line */
void ps_stdin(enum ps_op op, const ARGV *queues);

/* ps_wakeup - ask the queue manager to look for work (after -H, -r) */
void ps_wakeup(void);

/* ps_repair - -s (structure) and/or -p (purge) over the queues */
void ps_repair(const ARGV *queues, int structure, int purge);

#define PS_LINE_MAX 1024            /* longest line of queue ids read */
#define PS_TEMP_AGE (7 * 24 * 3600) /* -p: temporary files older than this go */

#endif
