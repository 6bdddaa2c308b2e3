/*
 * qmgr_intake - from the queue directories into memory.
 *
 * New mail: cleanup's "A queue/id" trigger names the file, and qmgr opens
 * just that file when there is room (the fast path). When there is no room,
 * or at master's wakeup, or at start-up, the class directories are scanned
 * (oldest first, bounded read-ahead) and messages are taken in as room
 * allows. Which class goes next follows the scheduler's policy (see
 * qmgr_sched.c): immediate first, but after qmgr_immediate_bulk_ratio
 * immediate messages in a row one bulk message when one waits. Within a
 * class, messages enter memory oldest first; MT-PRIORITY orders deliveries
 * among the messages in memory, which is all of them unless more than
 * qmgr_message_active_limit wait.
 *
 * Deferred mail: a file in deferred/ carries its next attempt time as its
 * modification time (qmgr_message.c), so the scan every queue_run_delay
 * needs one stat() per file. A due file is opened, checked against the
 * next attempt times recorded inside it, and moved back to the queue of its
 * class (immediate/ or bulk/), where it is taken in like new mail: retried
 * mail competes under the same class policy as fresh mail and never
 * bypasses it. The moves run in small slices from the event loop, so a
 * large deferred queue never stalls deliveries.
 *
 * Flush requests (docs/protocols.md section 2): F moves all deferred mail
 * back now, S SITE the deferred mail with a recipient routed to next hop
 * SITE (the one routing function decides, transport_maps included, so the
 * site is the destination queue those recipients go to), I ID one message
 * wherever it waits (except hold/). A message moved by a flush is marked so
 * that defer_transports does not hold it back again (postqueue -f delivers
 * what sendmail -q would).
 */
#include <errno.h>
#include <event2/event.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "mail/mail_queue.h"
#include "mail/queue_id.h"
#include "qmgr.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"

#define QMGR_DEFER_SLICE 20        /* deferred files handled per event-loop turn */
#define QMGR_SITES_MAX 100         /* pending "S site" requests kept */
#define QMGR_SITE_SCAN_MAX 1000000 /* deferred files looked at for one "S site" */

/* One class directory: ids read ahead from it, and whether it may hold more. */
typedef struct QMGR_CLASSQ {
    const char *queue;
    ARGV *ids;
    size_t pos;
    int backlog;  /* files may wait there that are neither in memory nor in ids */
    int complete; /* the last scan listed the whole directory */
    size_t taken; /* messages taken in (or found gone) from ids */
} QMGR_CLASSQ;

static QMGR_CLASSQ qmgr_classq[QMGR_CLASS_COUNT] = {
    {MAIL_QUEUE_IMMEDIATE, NULL, 0, 0, 1, 0},
    {MAIL_QUEUE_BULK, NULL, 0, 0, 1, 0},
};
static long qmgr_intake_streak; /* immediate messages taken in a row */

/* The deferred/ job: ids collected by one walk, handled a slice at a time. */
enum qmgr_defer_mode { QMGR_DEFER_DUE, QMGR_DEFER_ALL, QMGR_DEFER_SITES };

typedef struct QMGR_DEFER_JOB {
    enum qmgr_defer_mode mode;
    ARGV *ids;
    size_t pos;
    ARGV *sites;  /* QMGR_DEFER_SITES: next hops asked for */
    int more;     /* the walk stopped at its batch limit */
    size_t moved; /* files that went back to their class */
} QMGR_DEFER_JOB;

static QMGR_DEFER_JOB *qmgr_defer_job; /* running, or NULL */
static struct event *qmgr_defer_ev;    /* runs the next slice */
static ARGV *qmgr_pending_sites;       /* S requests waiting for the running job */
static int qmgr_pending_all;           /* F arrived while a job ran */
static int qmgr_pending_due;           /* a due scan was asked for while a job ran */

static void qmgr_defer_slice(evutil_socket_t fd, short what, void *ctx);

/* qmgr_intake_init - nothing read ahead yet */
void qmgr_intake_init(void)
{
    for (int c = 0; c < QMGR_CLASS_COUNT; c++)
        qmgr_classq[c].ids = argv_alloc(16);
    qmgr_defer_ev = event_new(qmgr_base, -1, 0, qmgr_defer_slice, NULL);
    qmgr_pending_sites = argv_alloc(4);
}

/* qmgr_class_of_queue - QFILE_CLASS_* for a class directory, -1 otherwise */
static int qmgr_class_of_queue(const char *queue)
{
    for (int c = 0; c < QMGR_CLASS_COUNT; c++)
        if (strcmp(queue, qmgr_classq[c].queue) == 0)
            return c;
    return -1;
}

/* qmgr_intake_room - a message left memory: take the next one soon */
void qmgr_intake_room(void)
{
    qmgr_kick();
}

/* qmgr_intake_rescan - the class directories may hold mail not in memory */
void qmgr_intake_rescan(void)
{
    for (int c = 0; c < QMGR_CLASS_COUNT; c++)
        qmgr_classq[c].backlog = 1;
    qmgr_kick();
}

/* qmgr_intake_notify - a message was committed into queue */
void qmgr_intake_notify(const char *queue, const char *id)
{
    int c = qmgr_class_of_queue(queue);
    QMGR_CLASSQ *cq;

    if (c < 0 || !queue_id_valid(id)) {
        msg_warn("ignoring trigger for \"%.100s/%.100s\": not a message in %s/ or %s/", queue, id,
                 MAIL_QUEUE_IMMEDIATE, MAIL_QUEUE_BULK);
        return;
    }
    cq = qmgr_classq + c;
    /* Mail that arrived earlier and still waits goes first. */
    if (cq->backlog || cq->pos < cq->ids->argc ||
        qmgr_message_take(queue, id, NULL) == QMGR_TAKE_FULL)
        cq->backlog = 1;
    qmgr_kick();
}

/* qmgr_classq_has_work - ids read ahead, or a directory to scan */
static int qmgr_classq_has_work(const QMGR_CLASSQ *cq)
{
    return cq->pos < cq->ids->argc || cq->backlog;
}

/* qmgr_classq_refill - read the oldest ids of a class directory */
static void qmgr_classq_refill(QMGR_CLASSQ *cq, int c)
{
    size_t room = (size_t)qmgr_conf.active_limit - qmgr_message_active_count();
    size_t limit = room + qmgr_message_class_count(c) + QMGR_SCAN_EXTRA;
    ssize_t n;

    argv_truncate(cq->ids, 0);
    cq->pos = 0;
    cq->taken = 0;
    /* Files in memory are still in the directory: read past them. */
    if ((n = mail_queue_scan(cq->queue, limit, cq->ids)) < 0) {
        msg_warn("scan %s/: %m", cq->queue);
        argv_truncate(cq->ids, 0);
        cq->complete = 1;
        return;
    }
    cq->complete = (size_t)n < limit;
}

/* qmgr_intake_pick - the class to take the next message from, -1 none */
static int qmgr_intake_pick(void)
{
    int imm = qmgr_classq_has_work(qmgr_classq + QFILE_CLASS_IMMEDIATE);
    int bulk = qmgr_classq_has_work(qmgr_classq + QFILE_CLASS_BULK);

    if (imm && (!bulk || qmgr_intake_streak < qmgr_conf.class_ratio))
        return QFILE_CLASS_IMMEDIATE;
    return bulk ? QFILE_CLASS_BULK : -1;
}

/* qmgr_intake_run - take messages in while there is room */
void qmgr_intake_run(void)
{
    int c;

    while (qmgr_message_room(0) && (c = qmgr_intake_pick()) >= 0) {
        QMGR_CLASSQ *cq = qmgr_classq + c;
        int rc;

        if (cq->pos >= cq->ids->argc) {
            /* The oldest files are all unreadable or in memory already:
               scanning again now would find the same; wait for a wakeup. */
            if (cq->ids->argc > 0 && cq->taken == 0 && !cq->complete) {
                argv_truncate(cq->ids, 0);
                cq->pos = 0;
                cq->backlog = 0;
                continue;
            }
            qmgr_classq_refill(cq, c);
            if (cq->ids->argc == 0 || cq->complete)
                cq->backlog = 0;
            continue;
        }
        rc = qmgr_message_take(cq->queue, cq->ids->argv[cq->pos], NULL);
        if (rc == QMGR_TAKE_FULL) {
            /* The recipient budget, not the message count: wait for room. */
            cq->backlog = 1;
            break;
        }
        cq->pos++;
        if (rc == QMGR_TAKE_OK || rc == QMGR_TAKE_GONE)
            cq->taken++;
        if (rc == QMGR_TAKE_OK)
            qmgr_intake_streak = c == QFILE_CLASS_IMMEDIATE ? qmgr_intake_streak + 1 : 0;
    }
}

/* qmgr_intake_return - a deferred file goes back to its class queue (and into
   memory when there is room) */
static int qmgr_intake_return(const char *id, int force)
{
    const char *target;
    QFILE *qf;
    time_t next;
    int c;

    if (qmgr_message_skip_has(id) || qmgr_message_open(MAIL_QUEUE_DEFERRED, id, &qf) != 0)
        return 0;
    /* The modification time is a hint; the recorded times decide. */
    if (!force && (next = qfile_next_attempt(qf)) > qmgr_now()) {
        qmgr_message_set_due(MAIL_QUEUE_DEFERRED, id, next);
        qfile_close(qf);
        return 0;
    }
    target = qfile_class_queue(qf->msg_class);
    if (force)
        qmgr_message_flush_mark(id);
    if (qfile_pending(qf) > 0 && qfile_move(qf, target) != 0) {
        msg_warn("%s: %s", id, qfile_why(qf));
        qmgr_message_skip_add(id);
        qfile_close(qf);
        return 0;
    }
    /* Straight into memory when there is room; else it waits in its queue. */
    if (qmgr_message_take(qf->queue, id, qf) == QMGR_TAKE_FULL &&
        (c = qmgr_class_of_queue(target)) >= 0)
        qmgr_classq[c].backlog = 1;
    return 1;
}

/* qmgr_intake_site_match - a recipient of the deferred file goes to one of sites */
static int qmgr_intake_site_match(const char *id, const ARGV *sites)
{
    VSTR *nexthop = vstr_alloc(64);
    QFILE *qf;
    int hit = 0;

    if (qfile_open(MAIL_QUEUE_DEFERRED, id, 0, &qf, NULL) != 0) {
        vstr_free(nexthop);
        return 1; /* let qmgr_intake_return deal with it (corrupt, gone) */
    }
    for (size_t i = 0; !hit && i < qf->rcpt_count; i++) {
        const QFILE_RCPT *r = qf->rcpt + i;

        if (r->status == QFILE_RCPT_DONE || r->status == QFILE_RCPT_BOUNCED)
            continue;
        if (qmgr_sched_route_nexthop(r->address, nexthop) < 0)
            continue;
        for (size_t s = 0; !hit && s < sites->argc; s++)
            hit = strcasecmp(vstr_str(nexthop), sites->argv[s]) == 0;
    }
    qfile_close(qf);
    vstr_free(nexthop);
    return hit;
}

typedef struct QMGR_DEFER_WALK {
    ARGV *ids;
    time_t now;
    int all;
    size_t max;
} QMGR_DEFER_WALK;

/* qmgr_defer_walk_one - collect a deferred file that is due (or any, all) */
static int qmgr_defer_walk_one(void *ctx, const char *id, const char *path)
{
    QMGR_DEFER_WALK *w = ctx;
    struct stat st;

    if (w->all || (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_mtime <= w->now))
        argv_add(w->ids, id, (char *)NULL);
    return w->ids->argc >= w->max;
}

/* qmgr_defer_job_start - walk deferred/ and start handling what it found */
static void qmgr_defer_job_start(enum qmgr_defer_mode mode, ARGV *sites)
{
    QMGR_DEFER_WALK w = {argv_alloc(16), qmgr_now(), mode != QMGR_DEFER_DUE,
                         mode == QMGR_DEFER_SITES ? QMGR_SITE_SCAN_MAX : QMGR_DEFER_BATCH};
    int rc = mail_queue_walk(MAIL_QUEUE_DEFERRED, qmgr_defer_walk_one, &w);

    if (rc < 0)
        msg_warn("scan %s/: %m", MAIL_QUEUE_DEFERRED);
    qmgr_defer_job = mycalloc(1, sizeof(*qmgr_defer_job));
    qmgr_defer_job->more = rc > 0;
    qmgr_defer_job->mode = mode;
    qmgr_defer_job->ids = w.ids;
    qmgr_defer_job->sites = sites;
    event_active(qmgr_defer_ev, EV_TIMEOUT, 0);
}

/* qmgr_defer_next_job - start what was asked for while a job ran */
static void qmgr_defer_next_job(void)
{
    if (qmgr_pending_all) {
        qmgr_pending_all = 0;
        qmgr_pending_due = 0;
        argv_truncate(qmgr_pending_sites, 0);
        qmgr_defer_job_start(QMGR_DEFER_ALL, NULL);
    } else if (qmgr_pending_sites->argc > 0) {
        ARGV *sites = qmgr_pending_sites;

        qmgr_pending_sites = argv_alloc(4);
        qmgr_defer_job_start(QMGR_DEFER_SITES, sites);
    } else if (qmgr_pending_due) {
        qmgr_pending_due = 0;
        qmgr_defer_job_start(QMGR_DEFER_DUE, NULL);
    }
}

/* qmgr_defer_slice - handle the next few files of the deferred job */
static void qmgr_defer_slice(evutil_socket_t fd, short what, void *ctx)
{
    QMGR_DEFER_JOB *job = qmgr_defer_job;

    (void)fd, (void)what, (void)ctx;
    if (job == NULL)
        return;
    for (int n = 0; n < QMGR_DEFER_SLICE && job->pos < job->ids->argc; n++) {
        const char *id = job->ids->argv[job->pos++];

        if (job->mode == QMGR_DEFER_SITES && !qmgr_intake_site_match(id, job->sites))
            continue;
        job->moved += qmgr_intake_return(id, job->mode != QMGR_DEFER_DUE);
    }
    if (job->pos < job->ids->argc) {
        event_active(qmgr_defer_ev, EV_TIMEOUT, 0);
        return;
    }
    /* A walk cut at its batch limit goes on while it gets somewhere (files
       it could not move would otherwise be found again and again). */
    if (job->more && job->moved > 0) {
        if (job->mode == QMGR_DEFER_ALL)
            qmgr_pending_all = 1;
        else if (job->mode == QMGR_DEFER_DUE)
            qmgr_pending_due = 1;
    }
    argv_free(job->ids);
    if (job->sites)
        argv_free(job->sites);
    myfree(job);
    qmgr_defer_job = NULL;
    qmgr_defer_next_job();
}

/* qmgr_intake_deferred - due deferred mail (or all of it) back to its class */
void qmgr_intake_deferred(int flush_all)
{
    if (flush_all) {
        if (qmgr_defer_job && qmgr_defer_job->mode == QMGR_DEFER_ALL && qmgr_defer_job->pos == 0)
            return;
        qmgr_pending_all = 1;
    } else {
        qmgr_pending_due = 1;
    }
    if (qmgr_defer_job == NULL)
        qmgr_defer_next_job();
}

/* qmgr_intake_flush_site - deferred mail for one next hop, now */
void qmgr_intake_flush_site(const char *site)
{
    for (size_t i = 0; i < qmgr_pending_sites->argc; i++)
        if (strcasecmp(qmgr_pending_sites->argv[i], site) == 0)
            return;
    if (qmgr_pending_sites->argc >= QMGR_SITES_MAX) {
        /* Many sites asked for at once: flushing everything covers them. */
        qmgr_intake_deferred(1);
        return;
    }
    argv_add(qmgr_pending_sites, site, (char *)NULL);
    if (qmgr_defer_job == NULL)
        qmgr_defer_next_job();
}

/* qmgr_intake_flush_id - one message now, wherever it waits */
void qmgr_intake_flush_id(const char *id)
{
    if (!queue_id_valid(id)) {
        msg_warn("flush request for a bad queue id \"%.100s\"", id);
        return;
    }
    if (qmgr_message_find(id) != NULL)
        return; /* being delivered now */
    if (mail_queue_exists(MAIL_QUEUE_DEFERRED, id) == 1) {
        qmgr_intake_return(id, 1);
        return;
    }
    for (int c = 0; c < QMGR_CLASS_COUNT; c++) {
        if (mail_queue_exists(qmgr_classq[c].queue, id) == 1) {
            qmgr_message_flush_mark(id);
            if (qmgr_message_take(qmgr_classq[c].queue, id, NULL) == QMGR_TAKE_FULL)
                qmgr_classq[c].backlog = 1;
            return;
        }
    }
}
