/*
 * qmgr_sched - transports, destination queues and the choice of the next
 * delivery.
 *
 * Each recipient of an active message is routed (qmgr_route) to a
 * transport and a next hop. A transport has one queue per destination:
 * the next hop, or, when the transport takes one recipient per delivery
 * (TRANSPORT_destination_recipient_limit = 1, as local does), the recipient
 * itself, so that local_destination_concurrency_limit bounds parallel
 * deliveries to one mailbox, as in Postfix. A queue holds entries: up to
 * the recipient limit of recipients of one message, which become one
 * delivery request.
 *
 * Limits: a queue has at most TRANSPORT_destination_concurrency_limit
 * deliveries in progress; a transport at most its master.cf process limit
 * (more connections would only wait in the agent's listen backlog); all
 * transports together at most the descriptor budget (qmgr_conf).
 *
 * CONCURRENCY FEEDBACK (Postfix 2.5's scheduler). A queue starts with a
 * window of TRANSPORT_initial_destination_concurrency deliveries and
 * learns from each delivery's summary (docs/protocols.md section 3,
 * dest_status): a delivery that reached a server of the destination is
 * positive feedback (the window grows by the positive feedback, "1" or
 * "1/concurrency", up to the concurrency limit: slow start), one that
 * failed at the connection or handshake is negative feedback (the window
 * shrinks, never below 1). Failures also count pseudo-cohorts (one per
 * window's worth of failed deliveries in a row); after
 * TRANSPORT_destination_concurrency_failed_cohort_limit of them the
 * destination is dead: its waiting recipients are deferred with
 * "delivery temporarily suspended: REASON" and so is every recipient
 * routed to it, without contacting an agent, until minimal_backoff_time
 * has passed (or a flush request, F or S, revives it).
 *
 * RATE DELAY. With TRANSPORT_destination_rate_delay (or
 * default_destination_rate_delay) above zero a destination gets one
 * delivery at a time, and the next one starts that long after the last one
 * ended; other destinations are not held up. Per-recipient queues (local)
 * make it a delay per recipient, as in Postfix.
 *
 * CLASS POLICY. Each queue keeps its waiting entries in two lists, one per
 * class (immediate, bulk), each ordered by MT-PRIORITY (RFC 6710; higher
 * first) and then by intake order. A transport keeps, per class, the queues
 * that have entries of that class and room for another delivery, and
 * serves them round robin, so one busy destination cannot hold up others.
 * Between the classes it runs a weighted round robin: immediate first, but
 * after qmgr_immediate_bulk_ratio immediate deliveries in a row, one bulk
 * delivery when bulk mail waits. Immediate mail thus gets at least
 * ratio/(ratio+1) of the delivery slots under load, and bulk mail never
 * starves. The same policy chooses which queue directory the next message
 * is read from (qmgr_intake.c).
 *
 * A transport whose agent cannot be reached (no socket, connection
 * refused) is "unavailable" for transport_retry_time: its waiting
 * recipients are deferred at once ("mail transport unavailable"), and so
 * are new ones, until the time is up. A full listen backlog only pauses
 * the transport briefly.
 *
 * Transports named in defer_transports are not delivered to (recipients
 * are deferred with "deferred transport") unless a flush request brought
 * the message in. The transports "error" and "retry" of transport(5)
 * results ("error:5.1.1 text") are answered here when master.cf has no
 * such service: a bounce or a deferral with the next hop as the reason.
 */
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/mail_conf.h"
#include "mail/master_cf.h"
#include "qmgr.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"

#define QMGR_TRANSPORT_NAME_MAX 100 /* as master.cf service names */
#define QMGR_DEAD_PREFIX "delivery temporarily suspended: "

static QMGR_RING qmgr_transports; /* every transport seen */
static MASTER_CF *qmgr_master_cf; /* for process limits; NULL if unreadable */

/* qmgr_sched_init - remember master.cf for the transports' process limits */
void qmgr_sched_init(const char *master_cf_path)
{
    VSTR *why = vstr_alloc(100);

    qmgr_ring_init(&qmgr_transports);
    qmgr_master_cf = master_cf_read(master_cf_path, (int)qmgr_conf.default_proc, why);
    if (qmgr_master_cf == NULL)
        msg_warn("cannot read %s: %s -- using default_process_limit for every transport",
                 master_cf_path, vstr_str(why));
    vstr_free(why);
}

/* qmgr_transport_param - TRANSPORT_suffix if set and valid, else the default */
static int qmgr_transport_param(const char *transport, const char *suffix, long def)
{
    VSTR *name = vstr_alloc(64);
    const char *value;
    long result = def;

    vstr_sprintf(name, "%s_%s", transport, suffix);
    if ((value = mail_conf_lookup(vstr_str(name))) != NULL &&
        parse_long(value, 1, INT_MAX, &result) < 0) {
        msg_warn("%s = %s: not a number from 1 to %d -- using %ld", vstr_str(name), value, INT_MAX,
                 def);
        result = def;
    }
    vstr_free(name);
    return (int)result;
}

/* qmgr_transport_time - TRANSPORT_suffix as a time in seconds if set and
   valid, else the default */
static long qmgr_transport_time(const char *transport, const char *suffix, long def)
{
    VSTR *name = vstr_alloc(64);
    const char *value;
    long result = def;

    vstr_sprintf(name, "%s_%s", transport, suffix);
    if ((value = mail_conf_lookup(vstr_str(name))) != NULL && parse_time(value, 's', &result) < 0) {
        msg_warn("%s = %s: not a time value -- using %lds", vstr_str(name), value, def);
        result = def;
    }
    vstr_free(name);
    return result;
}

/* qmgr_feedback_parse - "number", "number/number" or "number/concurrency"
   with a result in 0..1 (postconf(5)); 0, or -1 when malformed */
static int qmgr_feedback_parse(const char *value, double *amount, int *per_conc)
{
    char *copy = mystrdup(value), *slash, *end;
    double num, den = 1;
    int rc = -1;

    *per_conc = 0;
    if ((slash = strchr(copy, '/')) != NULL)
        *slash++ = 0;
    num = strtod(trim(copy), &end);
    if (end == copy || *end != 0)
        goto done;
    if (slash != NULL) {
        slash = trim(slash);
        if (strcasecmp(slash, "concurrency") == 0) {
            *per_conc = 1;
        } else {
            den = strtod(slash, &end);
            if (end == slash || *end != 0 || den <= 0)
                goto done;
        }
    }
    *amount = num / den;
    rc = *amount >= 0 && *amount <= 1 ? 0 : -1;
done:
    myfree(copy);
    return rc;
}

/* qmgr_transport_feedback - TRANSPORT_suffix (else the default) as feedback */
static void qmgr_transport_feedback(const char *transport, const char *suffix, const char *def,
                                    double *amount, int *per_conc)
{
    VSTR *name = vstr_alloc(64);
    const char *value;

    vstr_sprintf(name, "%s_%s", transport, suffix);
    if ((value = mail_conf_lookup(vstr_str(name))) == NULL)
        value = def;
    if (qmgr_feedback_parse(value, amount, per_conc) < 0) {
        msg_warn("%s = %s: expected a number from 0 to 1, N/N or N/concurrency -- using 1",
                 vstr_str(name), value);
        *amount = 1;
        *per_conc = 0;
    }
    vstr_free(name);
}

/* qmgr_transport_name_ok - safe as a socket name under private/ */
static int qmgr_transport_name_ok(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > QMGR_TRANSPORT_NAME_MAX || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return 0;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return 0;
    return 1;
}

/* qmgr_transport_timer - the throttle or backlog pause is over */
static void qmgr_transport_timer(evutil_socket_t fd, short what, void *ctx)
{
    QMGR_TRANSPORT *t = ctx;

    (void)fd, (void)what;
    if (t->throttled) {
        msg_info("transport %s: trying again", t->name);
        t->throttled = 0;
        myfree(t->throttle_why);
        t->throttle_why = NULL;
    }
    t->backlog_full = 0;
    qmgr_kick();
}

/* qmgr_transport_get - find or create a transport by name */
static QMGR_TRANSPORT *qmgr_transport_get(const char *name)
{
    QMGR_RING *r;
    QMGR_TRANSPORT *t;
    const MASTER_ENT *ent;
    VSTR *path;

    for (r = qmgr_transports.next; r != &qmgr_transports; r = r->next) {
        t = QMGR_RING_TO(r, QMGR_TRANSPORT, link);
        if (strcmp(t->name, name) == 0)
            return t;
    }
    t = mycalloc(1, sizeof(*t));
    t->name = mystrdup(name);
    path = vstr_alloc(64);
    vstr_sprintf(path, "private/%s", name);
    t->service_path = vstr_export(path);
    t->dest_limit =
        qmgr_transport_param(name, "destination_concurrency_limit", qmgr_conf.default_dest_conc);
    t->rcpt_limit =
        qmgr_transport_param(name, "destination_recipient_limit", qmgr_conf.default_rcpt_lim);
    if (t->rcpt_limit > QMGR_REQUEST_RCPT_MAX)
        t->rcpt_limit = QMGR_REQUEST_RCPT_MAX;
    t->per_recipient = t->rcpt_limit == 1;
    t->init_conc =
        qmgr_transport_param(name, "initial_destination_concurrency", qmgr_conf.init_dest_conc);
    {
        VSTR *pname = vstr_alloc(64);
        const char *value;
        long v = qmgr_conf.default_cohorts;

        /* 0 is valid here: it turns dead-destination detection off. */
        vstr_sprintf(pname, "%s_destination_concurrency_failed_cohort_limit", name);
        if ((value = mail_conf_lookup(vstr_str(pname))) != NULL &&
            parse_long(value, 0, INT_MAX, &v) < 0) {
            msg_warn("%s = %s: not a number -- using %ld", vstr_str(pname), value,
                     qmgr_conf.default_cohorts);
            v = qmgr_conf.default_cohorts;
        }
        t->cohort_limit = (int)v;
        vstr_free(pname);
    }
    qmgr_transport_feedback(name, "destination_concurrency_positive_feedback",
                            qmgr_conf.default_pos_fb, &t->pos_fb, &t->pos_per_conc);
    qmgr_transport_feedback(name, "destination_concurrency_negative_feedback",
                            qmgr_conf.default_neg_fb, &t->neg_fb, &t->neg_per_conc);
    t->rate_delay =
        qmgr_transport_time(name, "destination_rate_delay", qmgr_conf.default_rate_delay);
    for (size_t i = 0; i < qmgr_conf.defer_transports->argc; i++)
        if (strcmp(qmgr_conf.defer_transports->argv[i], name) == 0)
            t->deferred = 1;
    ent = qmgr_master_cf ? master_cf_find(qmgr_master_cf, name, "unix") : NULL;
    /* transport(5)'s error and retry results, when no agent is configured. */
    if (ent == NULL && (strcmp(name, "error") == 0 || strcmp(name, "retry") == 0))
        t->special = name[0];
    t->proc_limit = ent ? ent->maxproc : (int)qmgr_conf.default_proc;
    if (t->proc_limit <= 0 || t->proc_limit > qmgr_conf.delivery_limit)
        t->proc_limit = (int)qmgr_conf.delivery_limit;
    t->queues = qmgr_htable_create(64);
    t->timer = evtimer_new(qmgr_base, qmgr_transport_timer, t);
    for (int c = 0; c < QMGR_CLASS_COUNT; c++)
        qmgr_ring_init(&t->ready[c]);
    qmgr_ring_init(&t->all_queues);
    qmgr_ring_append(&qmgr_transports, &t->link);
    if (msg_verbose)
        msg_info("transport %s: destination concurrency %d (initial %d), recipients per delivery "
                 "%d, processes %d, rate delay %lds",
                 name, t->dest_limit, t->init_conc, t->rcpt_limit, t->proc_limit, t->rate_delay);
    return t;
}

/* qmgr_queue_limit - deliveries a queue may have in progress now */
static int qmgr_queue_limit(const QMGR_QUEUE *q)
{
    int w = (int)q->window;

    /* A rate delay spaces deliveries: only one at a time can be spaced. */
    if (q->transport->rate_delay > 0)
        return 1;
    if (w < 1)
        w = 1;
    return w < q->transport->dest_limit ? w : q->transport->dest_limit;
}

/* qmgr_queue_update_ready - a queue is in its transport's ready list of a
   class exactly when it has entries of that class and room to deliver */
static void qmgr_queue_update_ready(QMGR_QUEUE *q)
{
    int room = !q->dead && !q->resting && q->busy < qmgr_queue_limit(q);

    for (int c = 0; c < QMGR_CLASS_COUNT; c++) {
        int want = room && q->todo_count[c] > 0;

        if (!want && !qmgr_ring_empty(&q->ready[c]))
            qmgr_ring_detach(&q->ready[c]);
        else if (want && qmgr_ring_empty(&q->ready[c]))
            qmgr_ring_append(&q->transport->ready[c], &q->ready[c]);
    }
}

static void qmgr_queue_timer(evutil_socket_t fd, short what, void *ctx);

/* qmgr_queue_get - find or create a destination queue */
static QMGR_QUEUE *qmgr_queue_get(QMGR_TRANSPORT *t, const char *name, const char *nexthop)
{
    QMGR_QUEUE *q = qmgr_htable_find(t->queues, name);

    if (q != NULL)
        return q;
    q = mycalloc(1, sizeof(*q));
    q->transport = t;
    q->name = (char *)qmgr_htable_enter(t->queues, name, q);
    q->nexthop = mystrdup(nexthop);
    for (int c = 0; c < QMGR_CLASS_COUNT; c++) {
        qmgr_ring_init(&q->todo[c]);
        qmgr_ring_init(&q->ready[c]);
    }
    q->window = t->init_conc < t->dest_limit ? t->init_conc : t->dest_limit;
    q->timer = evtimer_new(qmgr_base, qmgr_queue_timer, q);
    qmgr_ring_append(&t->all_queues, &q->link);
    return q;
}

/* qmgr_queue_release - free a queue with nothing waiting and nothing busy;
   a dead, resting or lately failing queue stays until its timer, so that it
   remembers (mail for a failing destination often trickles in one message
   at a time: its failures must add up) */
static void qmgr_queue_release(QMGR_QUEUE *q)
{
    if (q->busy > 0 || q->todo_count[0] > 0 || q->todo_count[1] > 0 || q->dead || q->resting ||
        q->failing)
        return;
    for (int c = 0; c < QMGR_CLASS_COUNT; c++)
        if (!qmgr_ring_empty(&q->ready[c]))
            qmgr_ring_detach(&q->ready[c]);
    qmgr_ring_detach(&q->link);
    event_free(q->timer);
    myfree(q->nexthop);
    /* The key copy is q->name: delete it last. */
    qmgr_htable_delete(q->transport->queues, q->name);
    myfree(q);
}

/* qmgr_queue_revive - a dead queue may be tried again, from the start */
static void qmgr_queue_revive(QMGR_QUEUE *q)
{
    QMGR_TRANSPORT *t = q->transport;

    q->dead = 0;
    myfree(q->dead_dsn);
    myfree(q->dead_why);
    q->dead_dsn = q->dead_why = NULL;
    q->window = t->init_conc < t->dest_limit ? t->init_conc : t->dest_limit;
    q->fail_cohorts = q->success = q->failure = 0;
    if (msg_verbose)
        msg_info("transport %s: destination %s: trying again", t->name, q->nexthop);
}

/* qmgr_queue_timer - the dead time or the rate delay is over */
static void qmgr_queue_timer(evutil_socket_t fd, short what, void *ctx)
{
    QMGR_QUEUE *q = ctx;

    (void)fd, (void)what;
    if (q->dead)
        qmgr_queue_revive(q);
    q->resting = 0;
    q->failing = 0;
    qmgr_queue_update_ready(q);
    qmgr_queue_release(q);
    qmgr_kick();
}

/* qmgr_queue_arm - (re)start the queue's timer */
static void qmgr_queue_arm(QMGR_QUEUE *q, long sec)
{
    struct timeval tv = {.tv_sec = sec > 0 ? sec : 0, .tv_usec = sec > 0 ? 0 : 1000};

    evtimer_del(q->timer);
    evtimer_add(q->timer, &tv);
}

/* qmgr_entry_free - release an entry (not its message) */
static void qmgr_entry_free(QMGR_ENTRY *entry)
{
    myfree(entry->rcpt);
    myfree(entry);
}

/* qmgr_entry_insert - queue an entry by priority, then intake order */
static void qmgr_entry_insert(QMGR_QUEUE *q, QMGR_ENTRY *e)
{
    QMGR_RING *head = &q->todo[e->msg->msg_class], *at = head;

    /* Most mail has priority 0: the search from the tail ends at once. */
    while (at->prev != head &&
           QMGR_RING_TO(at->prev, QMGR_ENTRY, link)->msg->priority < e->msg->priority)
        at = at->prev;
    qmgr_ring_insert_before(at, &e->link);
    q->todo_count[e->msg->msg_class]++;
}

/* qmgr_sched_special - transport(5)'s error and retry: the next hop is
   "[X.Y.Z ]text"; the recipient bounces (error) or is deferred (retry) */
static void qmgr_sched_special(QMGR_MESSAGE *msg, size_t index, int kind, const char *nexthop)
{
    char dsn[QFILE_DSN_STATUS_MAX + 1];
    const char *text = nexthop, *sp = strchr(nexthop, ' ');
    size_t len = sp ? (size_t)(sp - nexthop) : strlen(nexthop);
    int cls = kind == 'e' ? '5' : '4';

    snprintf(dsn, sizeof(dsn), "%c.0.0", cls);
    /* A leading status of the right class is the DSN code (error(8)). */
    if (len >= 5 && len < sizeof(dsn) && nexthop[0] == cls && nexthop[1] == '.') {
        memcpy(dsn, nexthop, len);
        dsn[len] = 0;
        text = sp ? sp + 1 : "";
    }
    if (*text == 0)
        text = kind == 'e' ? "mail delivery error" : "delivery deferred";
    qmgr_message_fail(msg, index, kind == 'e' ? 550 : 451, dsn, text);
}

/* qmgr_sched_assign - route one recipient into a queue entry */
void qmgr_sched_assign(QMGR_MESSAGE *msg, size_t index)
{
    const char *rcpt = msg->qf->rcpt[index].address;
    VSTR *tname = vstr_alloc(32), *nexthop = vstr_alloc(64), *why = vstr_alloc(64);
    QMGR_TRANSPORT *t;
    QMGR_QUEUE *q;
    QMGR_ENTRY *e;

    if (qmgr_route(rcpt, tname, nexthop, why) < 0) {
        qmgr_message_fail(msg, index, 451, "4.3.0", vstr_str(why));
        goto out;
    }
    if (!qmgr_transport_name_ok(vstr_str(tname))) {
        vstr_sprintf(why, "bad transport name \"%s\" for <%s>", vstr_str(tname), rcpt);
        msg_warn("%s: %s", msg->id, vstr_str(why));
        qmgr_message_fail(msg, index, 451, "4.3.5", "mail system configuration error");
        goto out;
    }
    t = qmgr_transport_get(vstr_str(tname));
    if (t->special) {
        qmgr_sched_special(msg, index, t->special, vstr_str(nexthop));
        goto out;
    }
    if (t->throttled) {
        qmgr_message_fail(msg, index, 451, "4.3.0", t->throttle_why);
        goto out;
    }
    if (t->deferred && !msg->flushed) {
        qmgr_message_fail(msg, index, 450, "4.3.2", "deferred transport");
        goto out;
    }
    if (t->per_recipient) {
        /* One queue per mailbox: the concurrency limit protects each one. */
        VSTR *key = vstr_alloc(64);

        vstr_cpy(key, rcpt);
        vstr_lower(key);
        q = qmgr_queue_get(t, vstr_str(key), vstr_str(nexthop));
        vstr_free(key);
    } else {
        q = qmgr_queue_get(t, vstr_str(nexthop), vstr_str(nexthop));
    }
    if (q->dead) {
        /* No connection attempt for every queued message (Postfix's dead
           destination): the recipient waits for the next retry. */
        qmgr_message_fail(msg, index, 451, q->dead_dsn, q->dead_why);
        goto out;
    }
    e = q->fill_seq == msg->seq ? q->fill : NULL;
    if (e == NULL || e->count >= (size_t)t->rcpt_limit) {
        e = mycalloc(1, sizeof(*e));
        e->msg = msg;
        e->queue = q;
        e->cap = (size_t)t->rcpt_limit < msg->qf->rcpt_count ? (size_t)t->rcpt_limit
                                                             : msg->qf->rcpt_count;
        e->rcpt = mymalloc(size_mul(e->cap ? e->cap : 1, sizeof(*e->rcpt)));
        qmgr_entry_insert(q, e);
        q->fill_seq = msg->seq;
        q->fill = e;
        qmgr_queue_update_ready(q);
    }
    e->rcpt[e->count++] = index;
    msg->rcpt_waiting++;
out:
    vstr_free(tname);
    vstr_free(nexthop);
    vstr_free(why);
}

/* qmgr_sched_pick_class - weighted round robin between the classes */
static int qmgr_sched_pick_class(QMGR_TRANSPORT *t)
{
    int imm = !qmgr_ring_empty(&t->ready[QFILE_CLASS_IMMEDIATE]);
    int bulk = !qmgr_ring_empty(&t->ready[QFILE_CLASS_BULK]);

    if (imm && (!bulk || t->streak < qmgr_conf.class_ratio)) {
        t->streak++;
        return QFILE_CLASS_IMMEDIATE;
    }
    if (bulk) {
        t->streak = 0;
        return QFILE_CLASS_BULK;
    }
    return -1;
}

/* qmgr_sched_take - the next entry of a transport, accounted as busy */
static QMGR_ENTRY *qmgr_sched_take(QMGR_TRANSPORT *t)
{
    int c = qmgr_sched_pick_class(t);
    QMGR_QUEUE *q;
    QMGR_ENTRY *e;

    if (c < 0)
        return NULL;
    q = QMGR_RING_TO(t->ready[c].next, QMGR_QUEUE, ready[c]);
    e = QMGR_RING_TO(q->todo[c].next, QMGR_ENTRY, link);
    qmgr_ring_detach(&e->link);
    q->todo_count[c]--;
    if (q->fill == e)
        q->fill = NULL;
    q->busy++;
    t->busy++;
    /* Round robin: this queue goes to the back of the line. */
    qmgr_ring_detach(&q->ready[c]);
    qmgr_queue_update_ready(q);
    e->msg->rcpt_waiting -= e->count;
    e->msg->rcpt_busy += e->count;
    return e;
}

/* qmgr_sched_dispatch - start deliveries while the limits allow */
void qmgr_sched_dispatch(void)
{
    QMGR_RING *r;

    for (r = qmgr_transports.next; r != &qmgr_transports; r = r->next) {
        QMGR_TRANSPORT *t = QMGR_RING_TO(r, QMGR_TRANSPORT, link);
        QMGR_ENTRY *e;

        while (!t->throttled && !t->backlog_full && t->busy < t->proc_limit &&
               qmgr_deliver_count() < qmgr_conf.delivery_limit && (e = qmgr_sched_take(t)) != NULL)
            qmgr_deliver_start(e);
    }
}

/* qmgr_sched_release - an entry is no longer busy: update the counters */
static void qmgr_sched_release(QMGR_ENTRY *e)
{
    QMGR_QUEUE *q = e->queue;

    q->busy--;
    q->transport->busy--;
    qmgr_queue_update_ready(q);
}

/* qmgr_queue_defer_todo - defer every waiting recipient of a queue */
static void qmgr_queue_defer_todo(QMGR_QUEUE *q, const char *dsn, const char *why)
{
    for (int c = 0; c < QMGR_CLASS_COUNT; c++) {
        while (!qmgr_ring_empty(&q->todo[c])) {
            QMGR_ENTRY *e = QMGR_RING_TO(q->todo[c].next, QMGR_ENTRY, link);
            QMGR_MESSAGE *msg = e->msg;

            qmgr_ring_detach(&e->link);
            q->todo_count[c]--;
            if (q->fill == e)
                q->fill = NULL;
            for (size_t i = 0; i < e->count; i++)
                qmgr_message_fail(msg, e->rcpt[i], 451, dsn, why);
            qmgr_message_sync(msg);
            msg->rcpt_waiting -= e->count;
            qmgr_entry_free(e);
            qmgr_message_progress(msg);
        }
    }
    qmgr_queue_update_ready(q);
}

/* qmgr_queue_die - the destination failed as a whole: suspend it */
static void qmgr_queue_die(QMGR_QUEUE *q, const char *dsn, const char *why)
{
    VSTR *text = vstr_alloc(100);

    q->dead = 1;
    q->resting = 0;
    q->dead_dsn = mystrdup(dsn && dsn[0] == '4' ? dsn : "4.4.1");
    vstr_sprintf(text, "%s%s", QMGR_DEAD_PREFIX, why && *why ? why : "destination unavailable");
    q->dead_why = vstr_export(text);
    msg_info("transport %s: destination %s is unavailable -- delivery suspended for %lds",
             q->transport->name, q->nexthop, qmgr_conf.min_backoff);
    qmgr_queue_arm(q, qmgr_conf.min_backoff);
    qmgr_queue_defer_todo(q, q->dead_dsn, q->dead_why);
}

/* qmgr_queue_feedback - adjust the window after a delivery */
static void qmgr_queue_feedback(QMGR_QUEUE *q, int fb, const char *dsn, const char *why)
{
    QMGR_TRANSPORT *t = q->transport;
    double amount;

    if (q->dead)
        return; /* a delivery that started before the verdict */
    if (fb == QMGR_FB_OK) {
        /* Slow start: the window grows at the end of a run of 1/feedback. */
        q->fail_cohorts = 0;
        q->failing = 0;
        q->failure = 0;
        amount = t->pos_per_conc ? t->pos_fb / q->window : t->pos_fb;
        q->success += amount;
        while (q->success >= 1) {
            q->success -= 1;
            if (q->window < t->dest_limit)
                q->window += 1;
        }
        return;
    }
    /* Connection or handshake failure: one more pseudo-cohort fraction. */
    q->success = 0;
    if (t->cohort_limit > 0 && (q->fail_cohorts += 1.0 / q->window) >= t->cohort_limit) {
        qmgr_queue_die(q, dsn, why);
        return;
    }
    /* Remember for a while, even when no mail waits now. */
    q->failing = 1;
    qmgr_queue_arm(q, qmgr_conf.min_backoff);
    /* The window shrinks at the start of a run of 1/feedback, never below 1. */
    amount = t->neg_per_conc ? t->neg_fb / q->window : t->neg_fb;
    if (amount > 0) {
        if (q->failure <= 0) {
            q->failure += 1;
            if (q->window > 1)
                q->window = q->window - 1 < 1 ? 1 : q->window - 1;
        }
        q->failure -= amount;
    }
}

/* qmgr_sched_done - a delivery finished; its results are recorded */
void qmgr_sched_done(QMGR_ENTRY *e, int fb, const char *dsn, const char *why)
{
    QMGR_MESSAGE *msg = e->msg;
    QMGR_QUEUE *q = e->queue;
    QMGR_TRANSPORT *t = q->transport;

    msg->rcpt_busy -= e->count;
    q->busy--;
    t->busy--;
    qmgr_entry_free(e);
    /* Deferring the queue's other entries may end rounds: keep this one. */
    msg->rcpt_waiting++;
    if (fb != QMGR_FB_NONE)
        qmgr_queue_feedback(q, fb, dsn, why);
    if (t->rate_delay > 0 && !q->dead) {
        q->resting = 1;
        qmgr_queue_arm(q, t->rate_delay);
    }
    qmgr_queue_update_ready(q);
    qmgr_queue_release(q);
    msg->rcpt_waiting--;
    qmgr_message_progress(msg);
    qmgr_kick();
}

/* qmgr_sched_requeue - the delivery did not start: back to the front */
void qmgr_sched_requeue(QMGR_ENTRY *e)
{
    QMGR_QUEUE *q = e->queue;
    int c = e->msg->msg_class;

    e->msg->rcpt_busy -= e->count;
    e->msg->rcpt_waiting += e->count;
    qmgr_ring_insert_before(q->todo[c].next, &e->link);
    q->todo_count[c]++;
    qmgr_sched_release(e);
}

/* qmgr_sched_pause - stop using a transport until the timer fires */
static void qmgr_sched_pause(QMGR_TRANSPORT *t, long msec)
{
    struct timeval tv = {.tv_sec = msec / 1000, .tv_usec = (msec % 1000) * 1000};

    evtimer_add(t->timer, &tv);
}

/* qmgr_sched_backlog - every agent process is busy and the backlog is full */
void qmgr_sched_backlog(QMGR_TRANSPORT *t)
{
    if (!t->backlog_full && !t->throttled) {
        t->backlog_full = 1;
        qmgr_sched_pause(t, QMGR_BUSY_RETRY_MS);
    }
}

/* qmgr_sched_defer_waiting - defer every waiting recipient of a transport */
static void qmgr_sched_defer_waiting(QMGR_TRANSPORT *t, const char *why)
{
    QMGR_RING *r, *next;

    for (r = t->all_queues.next; r != &t->all_queues; r = next) {
        QMGR_QUEUE *q = QMGR_RING_TO(r, QMGR_QUEUE, link);

        next = r->next;
        qmgr_queue_defer_todo(q, "4.3.0", why);
        qmgr_queue_release(q);
    }
}

/* qmgr_sched_flush - forget dead destinations (all, or those of one next
   hop) and unavailable transports (all only), as Postfix's flush does */
void qmgr_sched_flush(const char *site)
{
    QMGR_RING *r, *qr, *next;

    for (r = qmgr_transports.next; r != &qmgr_transports; r = r->next) {
        QMGR_TRANSPORT *t = QMGR_RING_TO(r, QMGR_TRANSPORT, link);

        if (site == NULL && t->throttled) {
            evtimer_del(t->timer);
            t->throttled = 0;
            myfree(t->throttle_why);
            t->throttle_why = NULL;
        }
        for (qr = t->all_queues.next; qr != &t->all_queues; qr = next) {
            QMGR_QUEUE *q = QMGR_RING_TO(qr, QMGR_QUEUE, link);

            next = qr->next;
            if (!q->dead || (site != NULL && strcasecmp(q->nexthop, site) != 0))
                continue;
            evtimer_del(q->timer);
            qmgr_queue_revive(q);
            q->resting = q->failing = 0;
            qmgr_queue_update_ready(q);
            qmgr_queue_release(q);
        }
    }
    qmgr_kick();
}

/* qmgr_sched_unavailable - the transport's agent cannot be reached */
void qmgr_sched_unavailable(QMGR_TRANSPORT *t, const char *why)
{
    if (!t->throttled) {
        msg_warn("transport %s: %s -- deferring its mail for %lds", t->name, why,
                 qmgr_conf.retry_time);
        t->throttled = qmgr_now() + qmgr_conf.retry_time;
        t->throttle_why = mystrdup("mail transport unavailable");
        t->backlog_full = 0;
        evtimer_del(t->timer);
        qmgr_sched_pause(t, qmgr_conf.retry_time * 1000);
    }
    qmgr_sched_defer_waiting(t, t->throttle_why);
}

/* qmgr_sched_route_nexthop - the next hop of a recipient ("" when it cannot be routed) */
int qmgr_sched_route_nexthop(const char *rcpt, VSTR *nexthop)
{
    VSTR *tname = vstr_alloc(32), *why = vstr_alloc(64);
    int rc = qmgr_route(rcpt, tname, nexthop, why);

    if (rc < 0)
        vstr_reset(nexthop);
    vstr_free(tname);
    vstr_free(why);
    return rc;
}
