/*
 * anvil_table - per-client connection counts and event rates for the
 * anvil service, with a hard bound on memory (see anvil_table.h).
 *
 * Layout: a chained hash table of entries keyed by identity; a doubly
 * linked list of the idle entries (no open connection), most recently used
 * first, from which expiry and eviction take the oldest; and per entry the
 * list of HOLD records, one per owner that has connections open for it.
 * Each HOLD is also on its owner's list, so that an owner that goes away
 * gives back its connections without a search.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "mail/anvil_table.h"
#include "util/msg.h"
#include "util/mymalloc.h"

#define ANVIL_BUCKETS_MIN 64         /* initial hash buckets */
#define ANVIL_BUCKETS_MAX (1u << 24) /* the hash table stops growing here */

typedef struct ANVIL_ENTRY ANVIL_ENTRY;
typedef struct ANVIL_HOLD ANVIL_HOLD;

/* Connections one owner has open for one entry. */
struct ANVIL_HOLD {
    ANVIL_ENTRY *entry;
    ANVIL_OWNER *owner;
    long count;
    ANVIL_HOLD *enext, *eprev; /* the entry's holds */
    ANVIL_HOLD *onext, *oprev; /* the owner's holds */
};

struct ANVIL_OWNER {
    ANVIL_HOLD *holds;
};

struct ANVIL_ENTRY {
    ANVIL_ENTRY *hnext;         /* hash chain */
    ANVIL_ENTRY *inext, *iprev; /* idle list (count == 0 only) */
    ANVIL_HOLD *holds;
    uint64_t hash;
    time_t start;   /* start of the current rate window */
    time_t touched; /* last use (idle list order) */
    long count;     /* open connections: the sum of the holds */
    long rate[ANVIL_EV_COUNT];
    size_t len;
    char ident[]; /* len bytes and a NUL */
};

struct ANVIL_TABLE {
    ANVIL_ENTRY **buckets;
    size_t nbuckets; /* a power of two */
    size_t size;
    size_t limit;
    long unit;
    ANVIL_ENTRY *idle_head; /* most recently used */
    ANVIL_ENTRY *idle_tail; /* used longest ago */
    uint64_t key[2];        /* SipHash key */
    ANVIL_STATS stats;
};

/*
 * SipHash-2-4 (Aumasson and Bernstein): a keyed hash, so that clients who
 * choose their addresses (an IPv6 /64 holds 2^64 of them) cannot aim them
 * at one hash chain.
 */
#define ANVIL_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define ANVIL_SIPROUND                                                                             \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ANVIL_ROTL(v1, 13);                                                                   \
        v1 ^= v0;                                                                                  \
        v0 = ANVIL_ROTL(v0, 32);                                                                   \
        v2 += v3;                                                                                  \
        v3 = ANVIL_ROTL(v3, 16);                                                                   \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ANVIL_ROTL(v3, 21);                                                                   \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ANVIL_ROTL(v1, 17);                                                                   \
        v1 ^= v2;                                                                                  \
        v2 = ANVIL_ROTL(v2, 32);                                                                   \
    } while (0)

/* anvil_hash - SipHash-2-4 of len bytes under the table's key */
static uint64_t anvil_hash(const ANVIL_TABLE *t, const char *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    uint64_t v0 = 0x736f6d6570736575ULL ^ t->key[0];
    uint64_t v1 = 0x646f72616e646f6dULL ^ t->key[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ t->key[0];
    uint64_t v3 = 0x7465646279746573ULL ^ t->key[1];
    uint64_t b = (uint64_t)len << 56;
    size_t whole = len - len % 8;
    size_t i;

    for (i = 0; i < whole; i += 8) {
        uint64_t m = 0;

        for (int k = 7; k >= 0; k--)
            m = (m << 8) | p[i + (size_t)k];
        v3 ^= m;
        ANVIL_SIPROUND;
        ANVIL_SIPROUND;
        v0 ^= m;
    }
    for (size_t k = 0; i + k < len; k++)
        b |= (uint64_t)p[i + k] << (8 * k);
    v3 ^= b;
    ANVIL_SIPROUND;
    ANVIL_SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    ANVIL_SIPROUND;
    ANVIL_SIPROUND;
    ANVIL_SIPROUND;
    ANVIL_SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* anvil_table_new - empty table */
ANVIL_TABLE *anvil_table_new(size_t limit, long unit)
{
    ANVIL_TABLE *t = mycalloc(1, sizeof(*t));

    if (limit < 1 || unit < 1)
        msg_panic("anvil_table_new: bad limit %zu or unit %ld", limit, unit);
    t->limit = limit;
    t->unit = unit;
    t->nbuckets = ANVIL_BUCKETS_MIN;
    t->buckets = mycalloc(t->nbuckets, sizeof(*t->buckets));
    if (getrandom(t->key, sizeof(t->key), 0) != (ssize_t)sizeof(t->key)) {
        /* Without a random key the hash still works; it is merely guessable. */
        msg_warn("anvil_table_new: getrandom: %m -- using a weaker hash key");
        t->key[0] = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
        t->key[1] = (uint64_t)getpid() * 0xc2b2ae3d27d4eb4fULL;
    }
    return t;
}

/* anvil_table_size - entries stored now */
size_t anvil_table_size(const ANVIL_TABLE *t)
{
    return t->size;
}

/* anvil_ident_ok - a well-formed identity */
int anvil_ident_ok(const char *ident)
{
    size_t len = 0;

    if (ident == NULL)
        return 0;
    for (const char *cp = ident; *cp; cp++, len++) {
        unsigned char ch = (unsigned char)*cp;

        if (len >= ANVIL_IDENT_MAX || ch <= ' ' || ch >= 0x7f)
            return 0;
    }
    return len > 0;
}

/*
 * The idle list.
 */

/* anvil_idle_unlink - take e off the idle list */
static void anvil_idle_unlink(ANVIL_TABLE *t, ANVIL_ENTRY *e)
{
    if (e->iprev)
        e->iprev->inext = e->inext;
    else
        t->idle_head = e->inext;
    if (e->inext)
        e->inext->iprev = e->iprev;
    else
        t->idle_tail = e->iprev;
    e->inext = e->iprev = NULL;
}

/* anvil_idle_push - put e at the most recently used end of the idle list */
static void anvil_idle_push(ANVIL_TABLE *t, ANVIL_ENTRY *e)
{
    e->iprev = NULL;
    e->inext = t->idle_head;
    if (t->idle_head)
        t->idle_head->iprev = e;
    else
        t->idle_tail = e;
    t->idle_head = e;
}

/*
 * Entries.
 */

/* anvil_find - the entry for ident (len bytes, hash h), or NULL */
static ANVIL_ENTRY *anvil_find(const ANVIL_TABLE *t, const char *ident, size_t len, uint64_t h)
{
    for (ANVIL_ENTRY *e = t->buckets[h & (t->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->len == len && memcmp(e->ident, ident, len) == 0)
            return e;
    return NULL;
}

/* anvil_grow - double the buckets while the chains get long */
static void anvil_grow(ANVIL_TABLE *t)
{
    size_t n = t->nbuckets * 2;
    ANVIL_ENTRY **b;

    if (t->size <= t->nbuckets || t->nbuckets >= ANVIL_BUCKETS_MAX)
        return;
    b = mycalloc(n, sizeof(*b));
    for (size_t i = 0; i < t->nbuckets; i++) {
        ANVIL_ENTRY *e, *next;

        for (e = t->buckets[i]; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    myfree(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

/* anvil_delete - forget an idle entry */
static void anvil_delete(ANVIL_TABLE *t, ANVIL_ENTRY *e)
{
    ANVIL_ENTRY **pp = &t->buckets[e->hash & (t->nbuckets - 1)];

    if (e->count != 0 || e->holds != NULL)
        msg_panic("anvil_delete: %s has %ld open connections", e->ident, e->count);
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    anvil_idle_unlink(t, e);
    t->size--;
    myfree(e);
}

/* anvil_window_over - has e's rate window run out (or the clock stepped back) */
static int anvil_window_over(const ANVIL_TABLE *t, const ANVIL_ENTRY *e, time_t now)
{
    return now < e->start || now - e->start >= t->unit;
}

/* anvil_roll - start a new window when the current one has run out */
static void anvil_roll(ANVIL_TABLE *t, ANVIL_ENTRY *e, time_t now)
{
    if (anvil_window_over(t, e, now)) {
        memset(e->rate, 0, sizeof(e->rate));
        e->start = now;
    }
}

/* anvil_touch - e is used now: an idle entry moves to the front */
static void anvil_touch(ANVIL_TABLE *t, ANVIL_ENTRY *e, time_t now)
{
    e->touched = now;
    if (e->count == 0 && t->idle_head != e) {
        anvil_idle_unlink(t, e);
        anvil_idle_push(t, e);
    }
}

/* anvil_max - raise one statistic */
static void anvil_max(ANVIL_MAX *m, long value, const ANVIL_ENTRY *e, time_t now)
{
    if (value > m->value) {
        m->value = value;
        m->when = now;
        memcpy(m->ident, e->ident, e->len + 1);
    }
}

/* anvil_lookup_or_add - the entry for ident, created when new; NULL when it
   cannot be stored (the table is full of entries with open connections) */
static ANVIL_ENTRY *anvil_lookup_or_add(ANVIL_TABLE *t, const char *ident, time_t now)
{
    size_t len = strlen(ident);
    uint64_t h = anvil_hash(t, ident, len);
    ANVIL_ENTRY *e;

    if ((e = anvil_find(t, ident, len, h)) != NULL)
        return e;
    anvil_table_expire(t, now);
    if (t->size >= t->limit) {
        if (t->idle_tail == NULL) {
            t->stats.untracked++;
            return NULL;
        }
        /* Full: the idle entry used longest ago makes room. */
        anvil_delete(t, t->idle_tail);
        t->stats.evicted++;
    }
    e = mycalloc(1, size_add(sizeof(*e), len + 1));
    e->hash = h;
    e->len = len;
    memcpy(e->ident, ident, len + 1);
    e->start = now;
    e->touched = now;
    e->hnext = t->buckets[h & (t->nbuckets - 1)];
    t->buckets[h & (t->nbuckets - 1)] = e;
    anvil_idle_push(t, e);
    t->size++;
    if (t->size > t->stats.max_size) {
        t->stats.max_size = t->size;
        t->stats.max_size_when = now;
    }
    anvil_grow(t);
    return e;
}

/* anvil_report - copy e's counts out */
static void anvil_report(const ANVIL_ENTRY *e, ANVIL_COUNTS *out)
{
    if (out == NULL)
        return;
    out->count = e->count;
    memcpy(out->rate, e->rate, sizeof(out->rate));
}

/* anvil_untracked - the counts of an event that could not be stored: a first one */
static void anvil_untracked(enum anvil_event ev, ANVIL_COUNTS *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    out->rate[ev] = 1;
    if (ev == ANVIL_EV_CONN)
        out->count = 1;
}

/* anvil_count_event - one more event of kind ev for e */
static void anvil_count_event(ANVIL_TABLE *t, ANVIL_ENTRY *e, enum anvil_event ev, time_t now)
{
    anvil_roll(t, e, now);
    if (e->rate[ev] < LONG_MAX)
        e->rate[ev]++;
    anvil_max(&t->stats.rate[ev], e->rate[ev], e, now);
    anvil_touch(t, e, now);
}

/*
 * Updates.
 */

/* anvil_table_connect - one more open connection for o */
int anvil_table_connect(ANVIL_TABLE *t, ANVIL_OWNER *o, const char *ident, time_t now,
                        ANVIL_COUNTS *out)
{
    ANVIL_ENTRY *e;
    ANVIL_HOLD *h;

    if (!anvil_ident_ok(ident)) {
        errno = EINVAL;
        return -1;
    }
    if ((e = anvil_lookup_or_add(t, ident, now)) == NULL) {
        anvil_untracked(ANVIL_EV_CONN, out);
        return 0;
    }
    anvil_count_event(t, e, ANVIL_EV_CONN, now);
    for (h = e->holds; h && h->owner != o; h = h->enext)
        /* void */;
    if (h == NULL) {
        h = mycalloc(1, sizeof(*h));
        h->entry = e;
        h->owner = o;
        h->enext = e->holds;
        if (e->holds)
            e->holds->eprev = h;
        e->holds = h;
        h->onext = o->holds;
        if (o->holds)
            o->holds->oprev = h;
        o->holds = h;
    }
    if (e->count == 0)
        anvil_idle_unlink(t, e);
    h->count++;
    e->count++;
    anvil_max(&t->stats.count, e->count, e, now);
    anvil_report(e, out);
    return 0;
}

/* anvil_release - o gives back n connections of hold h; frees h at zero */
static void anvil_release(ANVIL_TABLE *t, ANVIL_HOLD *h, long n, time_t now)
{
    ANVIL_ENTRY *e = h->entry;
    ANVIL_OWNER *o = h->owner;

    if (n > h->count || h->count > e->count)
        msg_panic("anvil_release: %s: bad counts %ld/%ld/%ld", e->ident, n, h->count, e->count);
    h->count -= n;
    e->count -= n;
    if (h->count == 0) {
        if (h->eprev)
            h->eprev->enext = h->enext;
        else
            e->holds = h->enext;
        if (h->enext)
            h->enext->eprev = h->eprev;
        if (h->oprev)
            h->oprev->onext = h->onext;
        else
            o->holds = h->onext;
        if (h->onext)
            h->onext->oprev = h->oprev;
        myfree(h);
    }
    if (e->count == 0) {
        e->touched = now;
        anvil_idle_push(t, e);
        /* Nothing left to remember: no connection, no live window. */
        if (anvil_window_over(t, e, now))
            anvil_delete(t, e);
    }
}

/* anvil_table_disconnect - one connection that o counted ends */
int anvil_table_disconnect(ANVIL_TABLE *t, ANVIL_OWNER *o, const char *ident, time_t now)
{
    size_t len;
    ANVIL_ENTRY *e;
    ANVIL_HOLD *h;

    if (!anvil_ident_ok(ident)) {
        errno = EINVAL;
        return -1;
    }
    len = strlen(ident);
    if ((e = anvil_find(t, ident, len, anvil_hash(t, ident, len))) == NULL)
        return 0;
    for (h = e->holds; h && h->owner != o; h = h->enext)
        /* void */;
    if (h == NULL)
        return 0;
    anvil_release(t, h, 1, now);
    return 1;
}

/* anvil_table_event - count one event */
int anvil_table_event(ANVIL_TABLE *t, const char *ident, enum anvil_event ev, time_t now,
                      ANVIL_COUNTS *out)
{
    ANVIL_ENTRY *e;

    if (ev <= ANVIL_EV_CONN || ev >= ANVIL_EV_COUNT)
        msg_panic("anvil_table_event: bad event %d", (int)ev);
    if (!anvil_ident_ok(ident)) {
        errno = EINVAL;
        return -1;
    }
    if ((e = anvil_lookup_or_add(t, ident, now)) == NULL) {
        anvil_untracked(ev, out);
        return 0;
    }
    anvil_count_event(t, e, ev, now);
    anvil_report(e, out);
    return 0;
}

/* anvil_table_lookup - the counts as they stand */
int anvil_table_lookup(ANVIL_TABLE *t, const char *ident, time_t now, ANVIL_COUNTS *out)
{
    size_t len;
    ANVIL_ENTRY *e;

    if (!anvil_ident_ok(ident)) {
        errno = EINVAL;
        return -1;
    }
    memset(out, 0, sizeof(*out));
    len = strlen(ident);
    if ((e = anvil_find(t, ident, len, anvil_hash(t, ident, len))) == NULL)
        return 0;
    out->count = e->count;
    if (!anvil_window_over(t, e, now))
        memcpy(out->rate, e->rate, sizeof(out->rate));
    return 0;
}

/*
 * anvil_table_expire - forget idle entries whose window has run out, oldest
 * first. The idle list is ordered by last use, and a window starts no later
 * than the entry's last use, so the walk stops at the first entry still in
 * its window; an entry further up whose window ended is found on a later
 * call, or evicted first when the table is full.
 */
size_t anvil_table_expire(ANVIL_TABLE *t, time_t now)
{
    size_t n = 0;

    while (t->idle_tail && anvil_window_over(t, t->idle_tail, now)) {
        anvil_delete(t, t->idle_tail);
        n++;
    }
    return n;
}

/*
 * Owners.
 */

ANVIL_OWNER *anvil_owner_new(void)
{
    return mycalloc(1, sizeof(ANVIL_OWNER));
}

void anvil_owner_free(ANVIL_TABLE *t, ANVIL_OWNER *o, time_t now)
{
    if (o == NULL)
        return;
    while (o->holds)
        anvil_release(t, o->holds, o->holds->count, now);
    myfree(o);
}

/* anvil_table_free - release every entry */
void anvil_table_free(ANVIL_TABLE *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        ANVIL_ENTRY *e, *next;

        for (e = t->buckets[i]; e; e = next) {
            next = e->hnext;
            if (e->holds)
                msg_panic("anvil_table_free: %s is still held by an owner", e->ident);
            myfree(e);
        }
    }
    myfree(t->buckets);
    myfree(t);
}

/*
 * Statistics.
 */

const ANVIL_STATS *anvil_table_stats(const ANVIL_TABLE *t)
{
    return &t->stats;
}

void anvil_table_stats_reset(ANVIL_TABLE *t)
{
    memset(&t->stats, 0, sizeof(t->stats));
}
