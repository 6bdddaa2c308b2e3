/*
 * qmgr_htable - a string-keyed hash table for the queue manager's indexes
 * (active messages by queue id, transports' destination queues by name).
 *
 * Chained buckets, doubled when the table holds more entries than buckets,
 * so lookups stay O(1) from a handful of entries to hundreds of thousands.
 * Keys are copied; values belong to the caller. The hash is FNV-1a with a
 * per-table random seed: keys can come from mail (domains), and a fixed
 * function would let a sender aim many keys at one bucket.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "qmgr.h"
#include "util/msg.h"
#include "util/mymalloc.h"

#define QMGR_HTABLE_MIN 16

typedef struct QMGR_HENT {
    struct QMGR_HENT *next;
    char *key;
    void *value;
} QMGR_HENT;

struct QMGR_HTABLE {
    QMGR_HENT **bucket;
    size_t size;  /* buckets, a power of two */
    size_t count; /* entries */
    uint64_t seed;
};

/* qmgr_htable_hash - seeded FNV-1a */
static size_t qmgr_htable_hash(const QMGR_HTABLE *t, const char *key)
{
    uint64_t h = 14695981039346656037ULL ^ t->seed;

    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return (size_t)(h ^ (h >> 29)) & (t->size - 1);
}

/* qmgr_htable_create - an empty table */
QMGR_HTABLE *qmgr_htable_create(size_t size_hint)
{
    QMGR_HTABLE *t = mymalloc(sizeof(*t));

    t->size = QMGR_HTABLE_MIN;
    while (t->size < size_hint && t->size < ((size_t)1 << 30))
        t->size <<= 1;
    t->bucket = mycalloc(t->size, sizeof(*t->bucket));
    t->count = 0;
    if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t)sizeof(t->seed))
        t->seed = (uint64_t)(uintptr_t)t ^ (uint64_t)random();
    return t;
}

/* qmgr_htable_free - release the table and its key copies */
void qmgr_htable_free(QMGR_HTABLE *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->size; i++) {
        QMGR_HENT *e = t->bucket[i], *next;

        for (; e; e = next) {
            next = e->next;
            myfree(e->key);
            myfree(e);
        }
    }
    myfree(t->bucket);
    myfree(t);
}

/* qmgr_htable_grow - double the buckets */
static void qmgr_htable_grow(QMGR_HTABLE *t)
{
    QMGR_HENT **old = t->bucket;
    size_t old_size = t->size;

    t->size = old_size * 2;
    t->bucket = mycalloc(t->size, sizeof(*t->bucket));
    for (size_t i = 0; i < old_size; i++) {
        QMGR_HENT *e = old[i], *next;

        for (; e; e = next) {
            size_t h = qmgr_htable_hash(t, e->key);

            next = e->next;
            e->next = t->bucket[h];
            t->bucket[h] = e;
        }
    }
    myfree(old);
}

/* qmgr_htable_find - value for key, or NULL */
void *qmgr_htable_find(const QMGR_HTABLE *t, const char *key)
{
    for (QMGR_HENT *e = t->bucket[qmgr_htable_hash(t, key)]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e->value;
    return NULL;
}

/* qmgr_htable_enter - add a key that is not there yet */
const char *qmgr_htable_enter(QMGR_HTABLE *t, const char *key, void *value)
{
    QMGR_HENT *e;
    size_t h;

    if (qmgr_htable_find(t, key) != NULL)
        msg_panic("qmgr_htable_enter: duplicate key \"%s\"", key);
    if (t->count >= t->size && t->size < ((size_t)1 << 30))
        qmgr_htable_grow(t);
    h = qmgr_htable_hash(t, key);
    e = mymalloc(sizeof(*e));
    e->key = mystrdup(key);
    e->value = value;
    e->next = t->bucket[h];
    t->bucket[h] = e;
    t->count++;
    return e->key;
}

/* qmgr_htable_delete - remove key if present */
void qmgr_htable_delete(QMGR_HTABLE *t, const char *key)
{
    QMGR_HENT **pp = &t->bucket[qmgr_htable_hash(t, key)];

    for (; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            QMGR_HENT *e = *pp;

            *pp = e->next;
            myfree(e->key);
            myfree(e);
            t->count--;
            return;
        }
    }
}

/* qmgr_htable_count - entries */
size_t qmgr_htable_count(const QMGR_HTABLE *t)
{
    return t->count;
}
