/*
 * qmgr - the queue manager: the one scheduler of the mail system.
 *
 * qmgr takes committed messages from the queue directories into memory
 * (the "active" set, bounded by qmgr_message_active_limit messages and
 * qmgr_message_recipient_limit recipients), groups their recipients by
 * transport and destination, hands them to delivery agents over
 * private/TRANSPORT within per-destination and per-transport concurrency
 * limits, records every result in the queue file before acting on it, and
 * then removes the file (all recipients final) or moves it to deferred/
 * with a next-attempt time (exponential backoff). It never blocks on a
 * delivery: every agent connection is a non-blocking socket driven by the
 * event loop, with a time limit.
 *
 * Modules (one prefix each):
 *   qmgr.c          main(), configuration, triggers, timers, start-up recovery
 *   qmgr_intake.c   queue directories -> memory: class order, scans, flush
 *   qmgr_message.c  one active message: results, bounce hook, defer, removal
 *   qmgr_sched.c    transports, destination queues, entries, dispatch
 *   qmgr_deliver.c  one delivery: the delivery agent conversation
 *   qmgr_notify.c   notices (bounce, delay, success) through bounce(8)
 *   qmgr_route.c    recipient -> transport and next hop
 *   qmgr_htable.c   string-keyed hash table
 *
 * Ownership: the active message set owns messages; a destination queue
 * owns its waiting entries; a delivery owns its entry until it reports
 * back. Everything here runs on the one event loop of the process.
 */
#ifndef POSTERN_QMGR_H
#define POSTERN_QMGR_H

#include <stddef.h>
#include <sys/time.h>
#include <time.h>

#include "mail/qfile.h"
#include "util/argv.h"
#include "util/vstr.h"

struct event_base;

/* Message classes as the scheduler sees them (QFILE_CLASS_* values). */
#define QMGR_CLASS_COUNT 2

/* Bounds that are part of the design, not configuration. */
/* Recipients per delivery request: 100 recipients of at most 3 x 2048 bytes
   of addresses and 5 attributes each stay within the attribute protocol's
   default limits (1 MiB, 1024 attributes per message), which agents use. */
#define QMGR_REQUEST_RCPT_MAX 100
#define QMGR_FD_RESERVE 64        /* descriptors kept for logging, tables, triggers */
#define QMGR_DELIVERY_FD_MAX 1000 /* concurrent delivery connections at most */
#define QMGR_SCAN_EXTRA 1000      /* ids read ahead per class scan */
#define QMGR_DEFER_BATCH 5000     /* due deferred messages moved per pass */
#define QMGR_SKIP_MAX 1000        /* unreadable files remembered (not retried) */
#define QMGR_BUSY_RETRY_MS 200    /* agent backlog full: try again after */
#define QMGR_NOTIFY_CONN_MAX 20   /* notice requests to bounce(8) in progress */
#define QMGR_NOTE_TEXT_MAX 1024   /* bytes of a remote reply kept for a notice */
#define QMGR_FLUSHED_MAX 10000    /* flushed ids remembered until taken in */

/* Values in delivery requests and answers (docs/protocols.md section 3). */
#define QMGR_REQ_FLAGS_NONE 0 /* request "flags": none defined yet */
#define QMGR_STAT_SENT 0      /* reply status: delivered */

/* Concurrency feedback from one delivery (docs/protocols.md, dest_status). */
#define QMGR_FB_NONE 0 /* no verdict on the destination (the agent failed) */
#define QMGR_FB_OK 1   /* a server of the destination was reached */
#define QMGR_FB_FAIL 2 /* connection or handshake failure at the destination */

/* ------------------------------------------------------------------ */
/* Intrusive doubly linked rings.                                      */
/* ------------------------------------------------------------------ */

typedef struct QMGR_RING {
    struct QMGR_RING *prev, *next;
} QMGR_RING;

/* qmgr_ring_init - an empty ring (or a detached member) */
static inline void qmgr_ring_init(QMGR_RING *r)
{
    r->prev = r->next = r;
}

/* qmgr_ring_empty - no members (or, for a member, detached) */
static inline int qmgr_ring_empty(const QMGR_RING *r)
{
    return r->next == r;
}

/* qmgr_ring_insert_before - put m in front of at (at the tail when at is the head) */
static inline void qmgr_ring_insert_before(QMGR_RING *at, QMGR_RING *m)
{
    m->next = at;
    m->prev = at->prev;
    at->prev->next = m;
    at->prev = m;
}

/* qmgr_ring_append - add m at the tail of ring head */
static inline void qmgr_ring_append(QMGR_RING *head, QMGR_RING *m)
{
    qmgr_ring_insert_before(head, m);
}

/* qmgr_ring_detach - take m out of its ring; m becomes an empty ring */
static inline void qmgr_ring_detach(QMGR_RING *m)
{
    m->prev->next = m->next;
    m->next->prev = m->prev;
    qmgr_ring_init(m);
}

#define QMGR_RING_TO(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ------------------------------------------------------------------ */
/* Hash table: string keys (copied), void * values (not owned).        */
/* ------------------------------------------------------------------ */

typedef struct QMGR_HTABLE QMGR_HTABLE;

QMGR_HTABLE *qmgr_htable_create(size_t size_hint);
void qmgr_htable_free(QMGR_HTABLE *t);
/* qmgr_htable_find - value for key, or NULL */
void *qmgr_htable_find(const QMGR_HTABLE *t, const char *key);
/* qmgr_htable_enter - add key (must be absent); returns the stored key copy */
const char *qmgr_htable_enter(QMGR_HTABLE *t, const char *key, void *value);
/* qmgr_htable_delete - remove key if present */
void qmgr_htable_delete(QMGR_HTABLE *t, const char *key);
size_t qmgr_htable_count(const QMGR_HTABLE *t);

/* ------------------------------------------------------------------ */
/* Configuration: read once at start-up from the parameter table.      */
/* ------------------------------------------------------------------ */

typedef struct QMGR_CONF {
    long active_limit;          /* messages in memory (after the descriptor budget) */
    long rcpt_limit;            /* recipients in memory */
    long delivery_limit;        /* concurrent deliveries, all transports */
    long min_backoff;           /* minimal_backoff_time */
    long max_backoff;           /* maximal_backoff_time */
    long queue_run_delay;       /* deferred/ scan interval */
    long max_lifetime;          /* maximal_queue_lifetime */
    long bounce_lifetime;       /* bounce_queue_lifetime (null sender) */
    long retry_time;            /* transport_retry_time */
    long ipc_timeout;           /* qmgr_ipc_timeout: sending one request */
    long delivery_timeout;      /* qmgr_delivery_timeout: agent silence */
    long class_ratio;           /* qmgr_immediate_bulk_ratio */
    long purge_age;             /* qmgr_incoming_purge_time */
    long default_dest_conc;     /* default_destination_concurrency_limit */
    long default_rcpt_lim;      /* default_destination_recipient_limit */
    long default_proc;          /* default_process_limit */
    long init_dest_conc;        /* initial_destination_concurrency */
    long default_cohorts;       /* default_destination_concurrency_failed_cohort_limit */
    const char *default_pos_fb; /* default_destination_concurrency_positive_feedback */
    const char *default_neg_fb; /* default_destination_concurrency_negative_feedback */
    long default_rate_delay;    /* default_destination_rate_delay */
    long delay_warning;         /* delay_warning_time (0: no delay notices) */
    int soft_bounce;            /* soft_bounce: permanent failures are deferred */
    ARGV *defer_transports;     /* defer_transports */
    char *bounce_path;          /* private/$bounce_service_name */
} QMGR_CONF;

extern QMGR_CONF qmgr_conf;
extern struct event_base *qmgr_base;

/* ------------------------------------------------------------------ */
/* Scheduler objects.                                                  */
/* ------------------------------------------------------------------ */

typedef struct QMGR_TRANSPORT QMGR_TRANSPORT;
typedef struct QMGR_QUEUE QMGR_QUEUE;
typedef struct QMGR_ENTRY QMGR_ENTRY;

/* A recipient that needs a notice at the end of the round: a failure (its
   status and reason are in the queue file's latest DEFER record) or a
   success that NOTIFY=SUCCESS asked to hear about. */
typedef struct QMGR_NOTE {
    size_t index;
    int success;  /* 1: success notice; 0: failure */
    char *action; /* RFC 3464 action ("failed", "relayed", "delivered") */
    char *status; /* success: the agent's DSN status (failure: from the file) */
    char *reason; /* success: the agent's text (failure: from the file) */
    char *relay, *mtype, *mname, *dtype, *dtext; /* "" when unknown */
} QMGR_NOTE;

/* One recipient's outcome as a delivery agent reports it. */
typedef struct QMGR_RESULT {
    int status;                                /* 0, 4xx, 5xx */
    const char *dsn;                           /* RFC 3463 */
    const char *reason;                        /* for the log and the notice */
    const char *relay;                         /* "host[addr]:port", "local", "none" */
    const char *action;                        /* dsn_action, NULL when absent */
    int passed;                                /* dsn_passed: the next hop took NOTIFY over */
    const char *mtype, *mname, *dtype, *dtext; /* NULL when absent */
} QMGR_RESULT;

/* An active message: its open queue file and the progress of this round. */
typedef struct QMGR_MESSAGE {
    char id[QUEUE_ID_SIZE];
    QFILE *qf;             /* open for updates while active */
    unsigned long seq;     /* intake order (unique per process) */
    int msg_class;         /* QFILE_CLASS_* */
    int priority;          /* RFC 6710 MT-PRIORITY, -9..9 */
    struct timeval active; /* when it was taken in */
    size_t rcpt_held;      /* recipients counted against the memory budget */
    size_t rcpt_waiting;   /* in destination queues, not yet sent */
    size_t rcpt_busy;      /* in deliveries now */
    int io_error;          /* a result could not be recorded */
    int unsynced;          /* results written since the last fdatasync */
    int flushed;           /* taken in by a flush: defer_transports does not apply */
    int expired;           /* this round bounces what is left (queue lifetime) */
    int notifying;         /* waiting for bounce(8) at the end of the round */
    QMGR_NOTE *notes;      /* recipients that need a notice */
    size_t note_count, note_cap;
    QMGR_RING link; /* in the active set */
} QMGR_MESSAGE;

/* One delivery request's worth of recipients of one message for one queue. */
struct QMGR_ENTRY {
    QMGR_MESSAGE *msg;
    QMGR_QUEUE *queue;
    size_t *rcpt; /* indexes into msg->qf->rcpt */
    size_t count, cap;
    QMGR_RING link; /* in queue->todo[class] while waiting */
};

/* A destination of one transport: next hop (or recipient, see qmgr_sched.c). */
struct QMGR_QUEUE {
    char *name;    /* key in the transport's table */
    char *nexthop; /* what the agent is told */
    QMGR_TRANSPORT *transport;
    int busy;                            /* deliveries in progress */
    QMGR_RING todo[QMGR_CLASS_COUNT];    /* waiting entries, priority order */
    size_t todo_count[QMGR_CLASS_COUNT]; /* entries in todo */
    QMGR_RING ready[QMGR_CLASS_COUNT];   /* member of transport->ready[class] */
    unsigned long fill_seq;              /* message whose entry is being filled */
    QMGR_ENTRY *fill;                    /* that entry (valid while fill_seq matches) */
    QMGR_RING link;                      /* in transport->all_queues */
    /* Concurrency feedback (Postfix 2.5 style, qmgr_sched.c). */
    double window;       /* deliveries allowed at once: slow start up to dest_limit */
    double success;      /* positive feedback not yet turned into window */
    double failure;      /* negative feedback not yet taken from the window */
    double fail_cohorts; /* pseudo-cohorts that failed in a row */
    int dead;            /* suspended: no connection attempts until the timer */
    char *dead_dsn;      /* while dead: what waiting recipients are deferred with */
    char *dead_why;
    int resting;         /* rate delay: the next delivery waits for the timer */
    int failing;         /* failed lately: kept (with its counts) until the timer */
    struct event *timer; /* end of dead state or of the rate delay */
};

struct QMGR_TRANSPORT {
    char *name;
    char *service_path;                /* "private/NAME" relative to queue_directory */
    int dest_limit;                    /* TRANSPORT_destination_concurrency_limit */
    int rcpt_limit;                    /* TRANSPORT_destination_recipient_limit (capped) */
    int proc_limit;                    /* master.cf maxproc: concurrent deliveries */
    int busy;                          /* deliveries in progress */
    int per_recipient;                 /* rcpt_limit 1: one queue per recipient */
    int init_conc;                     /* TRANSPORT_initial_destination_concurrency */
    int cohort_limit;                  /* ..._destination_concurrency_failed_cohort_limit */
    double pos_fb, neg_fb;             /* feedback amounts */
    int pos_per_conc, neg_per_conc;    /* "N/concurrency": divided by the window */
    long rate_delay;                   /* TRANSPORT_destination_rate_delay, seconds */
    int deferred;                      /* named in defer_transports */
    int special;                       /* 'e' error, 'r' retry: answered by qmgr */
    time_t throttled;                  /* unavailable until then (0: available) */
    char *throttle_why;                /* reason while throttled */
    int backlog_full;                  /* the agent's listen backlog was full */
    struct event *timer;               /* end of throttle or backlog pause */
    QMGR_HTABLE *queues;               /* name -> QMGR_QUEUE */
    QMGR_RING all_queues;              /* every queue of the transport */
    QMGR_RING ready[QMGR_CLASS_COUNT]; /* queues with waiting entries, below their limit */
    int streak;                        /* immediate entries sent in a row */
    QMGR_RING link;                    /* all transports */
};

/* ------------------------------------------------------------------ */
/* qmgr.c                                                              */
/* ------------------------------------------------------------------ */

/* qmgr_kick - run intake and dispatch soon (once per loop turn) */
void qmgr_kick(void);
/* qmgr_now - the current time of day */
time_t qmgr_now(void);

/* ------------------------------------------------------------------ */
/* qmgr_intake.c                                                       */
/* ------------------------------------------------------------------ */

void qmgr_intake_init(void);
/* qmgr_intake_notify - "A queue/id": a new message was committed */
void qmgr_intake_notify(const char *queue, const char *id);
/* qmgr_intake_rescan - look at immediate/ and bulk/ again (wakeup, start) */
void qmgr_intake_rescan(void);
/* qmgr_intake_run - take messages in while there is room (class policy) */
void qmgr_intake_run(void);
/* qmgr_intake_deferred - move deferred mail that is due (or all of it, flush)
   back to its class queue */
void qmgr_intake_deferred(int flush_all);
/* qmgr_intake_flush_site - deferred mail with a recipient for this next hop */
void qmgr_intake_flush_site(const char *site);
/* qmgr_intake_flush_id - one message, wherever it waits */
void qmgr_intake_flush_id(const char *id);
/* qmgr_intake_room - a message left memory: room for the next */
void qmgr_intake_room(void);

/* ------------------------------------------------------------------ */
/* qmgr_message.c                                                      */
/* ------------------------------------------------------------------ */

/* Results of qmgr_message_take. */
#define QMGR_TAKE_OK 0      /* taken in (or finished at once) */
#define QMGR_TAKE_GONE 1    /* no such file (delivered, moved, removed) */
#define QMGR_TAKE_FULL 2    /* no room in memory now; try later */
#define QMGR_TAKE_ACTIVE 3  /* already in memory */
#define QMGR_TAKE_SKIPPED 4 /* unreadable now (logged); not retried soon */

void qmgr_message_init(void);
/* qmgr_message_open - open queue/id for updates; 0, or QMGR_TAKE_GONE (absent,
   or moved to corrupt/) or QMGR_TAKE_SKIPPED (unreadable now, logged) */
int qmgr_message_open(const char *queue, const char *id, QFILE **qfp);
/* qmgr_message_take - open queue/id (or adopt qf when not NULL) and take it in */
int qmgr_message_take(const char *queue, const char *id, QFILE *qf);
/* qmgr_message_find - the active message with this id, or NULL */
QMGR_MESSAGE *qmgr_message_find(const char *id);
/* qmgr_message_active_count - messages in memory */
size_t qmgr_message_active_count(void);
/* qmgr_message_room - may one more message come in (n recipients; 0 = unknown) */
int qmgr_message_room(size_t nrcpt);
/* qmgr_message_class_count - messages of a class in memory */
size_t qmgr_message_class_count(int msg_class);
/* qmgr_message_result - one recipient's outcome from a delivery agent;
   recorded without fdatasync (see qmgr_message_sync) */
void qmgr_message_result(QMGR_MESSAGE *msg, size_t index, const QMGR_RESULT *res);
/* qmgr_message_fail - qmgr's own failure for a recipient (agent failed,
   transport unavailable): logged in the agents' shape, then recorded */
void qmgr_message_fail(QMGR_MESSAGE *msg, size_t index, int status, const char *dsn,
                       const char *reason);
/* qmgr_message_sync - make the results recorded so far durable */
void qmgr_message_sync(QMGR_MESSAGE *msg);
/* qmgr_message_progress - recipients went back from waiting/busy to done;
   finishes the round when nothing is left in flight */
void qmgr_message_progress(QMGR_MESSAGE *msg);
/* qmgr_message_skip_add, _skip_has - files not to retry in this process */
void qmgr_message_skip_add(const char *id);
int qmgr_message_skip_has(const char *id);
/* qmgr_message_corrupt - move a file that breaks the format to corrupt/ */
void qmgr_message_corrupt(const char *queue, const char *id, const char *why);
/* qmgr_message_set_due - record the next attempt as the file's modification time */
void qmgr_message_set_due(const char *queue, const char *id, time_t when);
/* qmgr_message_notified - the notices of the round are done (or failed) */
void qmgr_message_notified(QMGR_MESSAGE *msg);
/* qmgr_message_bounced - the failure notice for recipient index is queued:
   record 'B' (no fdatasync yet) */
void qmgr_message_bounced(QMGR_MESSAGE *msg, size_t index);
/* qmgr_message_warned - the delay notice is queued: record WARNED */
void qmgr_message_warned(QMGR_MESSAGE *msg);
/* qmgr_message_flush_mark - a flush request moved this message: when it is
   taken in, defer_transports does not hold it back */
void qmgr_message_flush_mark(const char *id);

/* ------------------------------------------------------------------ */
/* qmgr_sched.c                                                        */
/* ------------------------------------------------------------------ */

void qmgr_sched_init(const char *master_cf_path);
/* qmgr_sched_assign - route recipient index of msg into a queue */
void qmgr_sched_assign(QMGR_MESSAGE *msg, size_t index);
/* qmgr_sched_dispatch - start deliveries while limits allow */
void qmgr_sched_dispatch(void);
/* qmgr_sched_done - a delivery of entry finished (entry is freed here);
   feedback QMGR_FB_* on the destination, with the failure's dsn and reason */
void qmgr_sched_done(QMGR_ENTRY *entry, int feedback, const char *dsn, const char *why);
/* qmgr_sched_unavailable - the transport cannot be reached: defer its waiting
   mail and stop using it for transport_retry_time */
void qmgr_sched_unavailable(QMGR_TRANSPORT *transport, const char *why);
/* qmgr_sched_backlog - the agent's socket backlog is full: pause briefly */
void qmgr_sched_backlog(QMGR_TRANSPORT *transport);
/* qmgr_sched_requeue - put an entry back at the front of its queue */
void qmgr_sched_requeue(QMGR_ENTRY *entry);
/* qmgr_sched_flush - forget that destinations failed: every dead queue and
   unavailable transport (site NULL), or the queues of next hop site */
void qmgr_sched_flush(const char *site);
/* qmgr_sched_route_nexthop - the next hop a recipient is routed to; 0, or
   -1 (and nexthop empty) when it cannot be routed now */
int qmgr_sched_route_nexthop(const char *rcpt, VSTR *nexthop);

/* ------------------------------------------------------------------ */
/* qmgr_deliver.c                                                      */
/* ------------------------------------------------------------------ */

/* qmgr_deliver_start - send entry to its transport's agent; the result comes
   back through qmgr_message_result/_fail and qmgr_sched_done */
void qmgr_deliver_start(QMGR_ENTRY *entry);
/* qmgr_deliver_count - deliveries in progress */
int qmgr_deliver_count(void);

/* ------------------------------------------------------------------ */
/* qmgr_notify.c                                                       */
/* ------------------------------------------------------------------ */

/* qmgr_notify_start - ask bounce(8) for the notices of msg (its notes, and a
   delay notice when warn); qmgr_message_notified follows when all are done.
   Failure notices mark their recipients bounced, a delay notice records
   WARNED; a notice that cannot be queued leaves things as they were. */
void qmgr_notify_start(QMGR_MESSAGE *msg, int warn);

/* ------------------------------------------------------------------ */
/* qmgr_route.c                                                        */
/* ------------------------------------------------------------------ */

void qmgr_route_init(void);
/* qmgr_route - transport name and next hop for a recipient; 0, or -1 with the
   reason in why when the lookup failed temporarily (retry later) */
int qmgr_route(const char *rcpt, VSTR *transport, VSTR *nexthop, VSTR *why);

/* ------------------------------------------------------------------ */
/* Log helpers (qmgr_message.c).                                       */
/* ------------------------------------------------------------------ */

/* qmgr_fmt_delay - seconds as Postfix logs them ("0.12", "1.5", "47", "1174") */
const char *qmgr_fmt_delay(char *buf, size_t size, double seconds);

#endif
