/*
 * cleanup_envelope - recipients (duplicate removal, recipients taken from
 * headers) and the message class.
 *
 * Duplicates: as Postfix's cleanup does, a recipient is dropped when the
 * same address with the same DSN ORCPT and NOTIFY was already written,
 * compared without case; at most duplicate_filter_limit recipients are
 * remembered (beyond that, later duplicates are kept: delivering twice is
 * better than holding unbounded memory).
 *
 * Class: a message is bulk when it says Precedence: bulk, list or junk,
 * when it has bulk_recipient_threshold recipients or more, when its sender
 * matches "bulk" in message_class_maps, or when its priority is negative;
 * "immediate" in message_class_maps and a positive priority make it
 * immediate whatever else says bulk. The priority is the MT-PRIORITY the
 * client passed (RFC 6710), raised by message_priority_maps; with no
 * MT-PRIORITY the map's value (or 0) is used.
 */
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "mail/mail_addr_find.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"

struct CLEANUP_DUP {
    size_t limit; /* keys remembered at most */
    size_t count;
    size_t cap;  /* slots, a power of two, more than twice count */
    char **slot; /* open addressing, NULL = free */
};

#define CLEANUP_DUP_INIT_CAP 64

/* cleanup_dup_new - an empty duplicate filter */
CLEANUP_DUP *cleanup_dup_new(size_t limit)
{
    CLEANUP_DUP *d = mycalloc(1, sizeof(*d));

    d->limit = limit;
    d->cap = CLEANUP_DUP_INIT_CAP;
    d->slot = mycalloc(d->cap, sizeof(*d->slot));
    return d;
}

/* cleanup_dup_free - release */
void cleanup_dup_free(CLEANUP_DUP *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->cap; i++)
        myfree(d->slot[i]);
    myfree(d->slot);
    myfree(d);
}

/* cleanup_dup_hash - FNV-1a */
static size_t cleanup_dup_hash(const char *key)
{
    size_t h = 2166136261u;

    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 16777619u;
    return h;
}

/* cleanup_dup_slot - where key is, or the free slot where it would go */
static char **cleanup_dup_slot(char **slot, size_t cap, const char *key)
{
    size_t i = cleanup_dup_hash(key) & (cap - 1);

    while (slot[i] != NULL && strcmp(slot[i], key) != 0)
        i = (i + 1) & (cap - 1);
    return &slot[i];
}

/* cleanup_dup_grow - double the table */
static void cleanup_dup_grow(CLEANUP_DUP *d)
{
    size_t cap = size_mul(d->cap, 2);
    char **slot = mycalloc(cap, sizeof(*slot));

    for (size_t i = 0; i < d->cap; i++)
        if (d->slot[i])
            *cleanup_dup_slot(slot, cap, d->slot[i]) = d->slot[i];
    myfree(d->slot);
    d->slot = slot;
    d->cap = cap;
}

/* cleanup_dup_seen - 1 when key was seen; otherwise remember it (if room) and 0 */
static int cleanup_dup_seen(CLEANUP_DUP *d, const char *key)
{
    char **slot = cleanup_dup_slot(d->slot, d->cap, key);

    if (*slot != NULL)
        return 1;
    if (d->count >= d->limit)
        return 0;
    *slot = mystrdup(key);
    if (++d->count * 2 >= d->cap)
        cleanup_dup_grow(d);
    return 0;
}

/* cleanup_add_rcpt - one recipient into the file, unless a duplicate */
void cleanup_add_rcpt(CLEANUP_STATE *st, const char *addr, const char *orcpt, int notify)
{
    int err;

    if (st->first_rcpt == NULL)
        st->first_rcpt = mystrdup(addr);
    if (st->writer == NULL)
        return;
    vstr_sprintf(st->buf, "%s\n%s\n%d", addr, orcpt ? orcpt : "", notify);
    vstr_lower(st->buf);
    if (cleanup_dup_seen(st->dups, vstr_str(st->buf))) {
        if (msg_verbose)
            msg_info("%s: duplicate recipient <%s> removed", st->queue_id, addr);
        return;
    }
    err = qfile_writer_rcpt(st->writer, addr, NULL, orcpt, notify);
    if (err == QFILE_ERR_LIMIT) {
        cleanup_fail(st, 452, "4.5.3", "Error: too many recipients");
    } else if (err == QFILE_ERR_INVAL) {
        msg_warn("%s: recipient refused: %s", st->queue_id, qfile_writer_why(st->writer));
        cleanup_fail(st, 550, "5.1.3", "Error: bad recipient address syntax");
    } else if (err != 0) {
        cleanup_write_error(st, err);
    } else {
        st->rcpt_count++;
    }
}

/* cleanup_add_extracted - recipients from To/Cc/Bcc, or Resent- ones when present */
void cleanup_add_extracted(CLEANUP_STATE *st)
{
    /* RFC 5322 3.6.6: a resent message goes to its Resent- destinations. */
    const ARGV *list = st->resent ? st->resent_extracted : st->extracted;
    VSTR *addr = vstr_alloc(100);

    for (size_t i = 0; list && i < list->argc && st->err_status == 0; i++) {
        vstr_cpy(addr, list->argv[i]);
        if (strchr(list->argv[i], '@') == NULL) {
            if (!cleanup_conf.append_at_myorigin)
                continue;
            vstr_sprintf_append(addr, "@%s", cleanup_conf.myorigin);
        }
        cleanup_add_rcpt(st, vstr_str(addr), NULL, 0);
    }
    vstr_free(addr);
}

/* cleanup_map_lookup - first match of the sender in a list of tables */
static const char *cleanup_map_lookup(CLEANUP_STATE *st, DICT **maps, const char *param)
{
    const char *key = st->sender && *st->sender ? st->sender : "<>";

    for (size_t i = 0; maps && maps[i]; i++) {
        const char *value =
            mail_addr_find_access(maps[i], key, cleanup_conf.recipient_delimiter, 0);

        if (value != NULL)
            return value;
        if (maps[i]->error != DICT_ERR_NONE) {
            msg_warn("%s: %s lookup of <%s> failed: using the default", st->queue_id, param, key);
            return NULL;
        }
    }
    return NULL;
}

/* cleanup_decide_class - class and priority */
void cleanup_decide_class(CLEANUP_STATE *st, int *msg_class, int *priority)
{
    const char *value;
    int bulk = st->precedence_bulk || (cleanup_conf.bulk_rcpt_threshold > 0 &&
                                       st->rcpt_count >= cleanup_conf.bulk_rcpt_threshold);
    int forced = 0;
    long prio = st->have_mt_priority ? st->mt_priority : 0;
    long map_prio;

    if ((value = cleanup_map_lookup(st, cleanup_conf.priority_maps, "message_priority_maps"))) {
        if (parse_long(value, -9, 9, &map_prio) < 0)
            msg_warn("%s: message_priority_maps: bad priority \"%.20s\" for <%s>: need -9..9",
                     st->queue_id, value, st->sender);
        else if (!st->have_mt_priority || map_prio > prio)
            prio = map_prio;
    }
    if ((value = cleanup_map_lookup(st, cleanup_conf.class_maps, "message_class_maps"))) {
        if (strcasecmp(value, "bulk") == 0) {
            bulk = 1;
        } else if (strcasecmp(value, "immediate") == 0) {
            bulk = 0;
            forced = 1;
        } else {
            msg_warn("%s: message_class_maps: bad class \"%.20s\" for <%s>: need bulk or immediate",
                     st->queue_id, value, st->sender);
        }
    }
    if (prio < 0 && !forced)
        bulk = 1;
    if (prio > 0)
        bulk = 0;
    *msg_class = bulk ? QFILE_CLASS_BULK : QFILE_CLASS_IMMEDIATE;
    *priority = (int)prio;
}
