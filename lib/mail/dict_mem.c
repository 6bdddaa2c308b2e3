/*
 * dict_mem - the in-memory table behind texthash: and inline: tables.
 *
 * Entries are kept in insertion order (so "postmap -s" lists them as the
 * source had them) with an open-addressing index on top. Keys come from
 * files the administrator wrote, not from peers, so a fixed hash is fine.
 */
#include <stdint.h>
#include <string.h>

#include "mail/dict.h"
#include "util/mymalloc.h"

typedef struct DICT_MEM_ENT {
    char *key;
    char *value;
} DICT_MEM_ENT;

struct DICT_MEM {
    DICT_MEM_ENT *ents; /* insertion order */
    size_t count;
    size_t cap;
    size_t *index; /* slot -> entry number + 1; 0 = empty */
    size_t slots;  /* power of two, kept at least twice count */
};

/* dict_mem_hash - FNV-1a */
static uint64_t dict_mem_hash(const char *key)
{
    uint64_t h = 14695981039346656037ULL;

    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

/* dict_mem_slot - slot holding key, or the empty slot where it would go */
static size_t dict_mem_slot(const DICT_MEM *m, const char *key)
{
    size_t mask = m->slots - 1;
    size_t i = (size_t)dict_mem_hash(key) & mask;

    while (m->index[i] != 0 && strcmp(m->ents[m->index[i] - 1].key, key) != 0)
        i = (i + 1) & mask;
    return i;
}

/* dict_mem_grow - double the index and rehash */
static void dict_mem_grow(DICT_MEM *m)
{
    myfree(m->index);
    m->slots = size_mul(m->slots, 2);
    m->index = mycalloc(m->slots, sizeof(*m->index));
    for (size_t e = 0; e < m->count; e++)
        m->index[dict_mem_slot(m, m->ents[e].key)] = e + 1;
}

DICT_MEM *dict_mem_new(void)
{
    DICT_MEM *m = mycalloc(1, sizeof(*m));

    m->slots = 16;
    m->index = mycalloc(m->slots, sizeof(*m->index));
    return m;
}

void dict_mem_free(DICT_MEM *m)
{
    if (m == NULL)
        return;
    for (size_t e = 0; e < m->count; e++) {
        myfree(m->ents[e].key);
        myfree(m->ents[e].value);
    }
    myfree(m->ents);
    myfree(m->index);
    myfree(m);
}

int dict_mem_put(DICT_MEM *m, const char *key, const char *value, int replace)
{
    size_t slot = dict_mem_slot(m, key);

    if (m->index[slot] != 0) {
        DICT_MEM_ENT *ent = &m->ents[m->index[slot] - 1];

        if (replace) {
            myfree(ent->value);
            ent->value = mystrdup(value);
        }
        return 1;
    }
    if (m->count == m->cap) {
        m->cap = m->cap ? size_mul(m->cap, 2) : 16;
        m->ents = myrealloc(m->ents, size_mul(m->cap, sizeof(*m->ents)));
    }
    m->ents[m->count].key = mystrdup(key);
    m->ents[m->count].value = mystrdup(value);
    m->count++;
    m->index[slot] = m->count;
    if (m->count * 2 > m->slots)
        dict_mem_grow(m);
    return 0;
}

const char *dict_mem_get(const DICT_MEM *m, const char *key)
{
    size_t slot = dict_mem_slot(m, key);

    return m->index[slot] ? m->ents[m->index[slot] - 1].value : NULL;
}

size_t dict_mem_count(const DICT_MEM *m)
{
    return m->count;
}

int dict_mem_entry(const DICT_MEM *m, size_t i, const char **key, const char **value)
{
    if (i >= m->count)
        return -1;
    *key = m->ents[i].key;
    *value = m->ents[i].value;
    return 0;
}
