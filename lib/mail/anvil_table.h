/*
 * anvil_table - the anvil service's memory: per client identity (an
 * "ident", normally "service:address"), the connections open now and the
 * events counted in the current rate window.
 *
 * RATES
 *   Each entry counts six kinds of events (ANVIL_EV_*) in one window of
 *   `unit` seconds (anvil_rate_time_unit). The window starts at the first
 *   event after the previous one ended, as Postfix's anvil does: a rate is
 *   "events since the window started". A window that has run out is
 *   reset at the next event, so a client held to L events per window can
 *   still make up to 2L events in a span of one unit that straddles two
 *   windows.
 *
 * CONNECTIONS AND OWNERS
 *   A connection is counted for an ANVIL_OWNER (one per connected client
 *   of the anvil service, i.e. one per smtpd process). Only the owner that
 *   counted a connection can give it back, and anvil_owner_free gives back
 *   everything an owner still holds: when an smtpd process dies, its
 *   sessions no longer count, and a disconnect from a process that reached
 *   a restarted anvil (which never saw its connect) is ignored.
 *
 * MEMORY BOUND
 *   At most `limit` entries (anvil_client_table_limit). An entry with no
 *   open connection is "idle"; idle entries are kept in the order they
 *   were last used. An idle entry whose rate window has run out is
 *   forgotten (anvil_table_expire, and on every update); when the table is
 *   full, a new identity evicts the idle entry that was used longest ago.
 *   When every entry holds open connections (so nothing can be evicted),
 *   a new identity is not stored: its event is answered as a first event
 *   and counted in the statistics as untracked. Identities are hashed with
 *   a keyed hash (SipHash-2-4, key from getrandom), so clients cannot
 *   choose addresses that collide.
 *
 * STATISTICS
 *   The largest count and rates seen since anvil_table_stats_reset, with
 *   the identity and time, for the "statistics: max ..." log lines.
 *
 * Times are seconds (time(2)); a clock that steps back restarts the
 * windows it passes. Ownership: the table owns its entries; owners are
 * created with anvil_owner_new and released with anvil_owner_free.
 */
#ifndef POSTERN_ANVIL_TABLE_H
#define POSTERN_ANVIL_TABLE_H

#include <stddef.h>
#include <time.h>

#define ANVIL_IDENT_MAX 256 /* bytes in an identity, NUL excluded */

/* Counted events. */
enum anvil_event {
    ANVIL_EV_CONN,      /* connection attempts */
    ANVIL_EV_MAIL,      /* MAIL FROM commands */
    ANVIL_EV_RCPT,      /* RCPT TO commands */
    ANVIL_EV_NEWTLS,    /* TLS handshakes started */
    ANVIL_EV_AUTH,      /* AUTH commands */
    ANVIL_EV_AUTH_FAIL, /* failed AUTH commands (Postern) */
    ANVIL_EV_COUNT
};

typedef struct ANVIL_TABLE ANVIL_TABLE;
typedef struct ANVIL_OWNER ANVIL_OWNER;

/* What an update or lookup reports for one identity. */
typedef struct ANVIL_COUNTS {
    long count;                /* connections open now */
    long rate[ANVIL_EV_COUNT]; /* events in the current window */
} ANVIL_COUNTS;

/* One maximum for the statistics. */
typedef struct ANVIL_MAX {
    long value; /* 0: nothing seen */
    time_t when;
    char ident[ANVIL_IDENT_MAX + 1];
} ANVIL_MAX;

typedef struct ANVIL_STATS {
    ANVIL_MAX count;                /* most connections at once */
    ANVIL_MAX rate[ANVIL_EV_COUNT]; /* highest rates */
    size_t max_size;                /* most entries at once */
    time_t max_size_when;
    unsigned long evicted;   /* idle entries dropped because the table was full */
    unsigned long untracked; /* events not stored: full of open connections */
} ANVIL_STATS;

/* anvil_table_new - empty table: at most limit (>= 1) entries, windows of unit (>= 1) s */
ANVIL_TABLE *anvil_table_new(size_t limit, long unit);
/* anvil_table_free - release the table; every owner must be freed first */
void anvil_table_free(ANVIL_TABLE *t);
/* anvil_table_size - entries stored now */
size_t anvil_table_size(const ANVIL_TABLE *t);
/* anvil_ident_ok - 1..ANVIL_IDENT_MAX printable ASCII bytes, no white space */
int anvil_ident_ok(const char *ident);

/* anvil_owner_new - a new owner of connections (one per anvil client) */
ANVIL_OWNER *anvil_owner_new(void);
/* anvil_owner_free - give back every connection the owner holds, then free it */
void anvil_owner_free(ANVIL_TABLE *t, ANVIL_OWNER *o, time_t now);

/* anvil_table_connect - one more open connection for o and one connection
   event; the counts afterwards in *out. 0, or -1 (EINVAL) for a bad ident. */
int anvil_table_connect(ANVIL_TABLE *t, ANVIL_OWNER *o, const char *ident, time_t now,
                        ANVIL_COUNTS *out);
/* anvil_table_disconnect - one connection that o counted ends; 1 given back,
   0 when o held none for ident (ignored), -1 (EINVAL) for a bad ident */
int anvil_table_disconnect(ANVIL_TABLE *t, ANVIL_OWNER *o, const char *ident, time_t now);
/* anvil_table_event - count one event of kind ev (not ANVIL_EV_CONN); counts in *out */
int anvil_table_event(ANVIL_TABLE *t, const char *ident, enum anvil_event ev, time_t now,
                      ANVIL_COUNTS *out);
/* anvil_table_lookup - the counts without counting anything (zeros when unknown) */
int anvil_table_lookup(ANVIL_TABLE *t, const char *ident, time_t now, ANVIL_COUNTS *out);
/* anvil_table_expire - forget idle entries whose window has run out; how many */
size_t anvil_table_expire(ANVIL_TABLE *t, time_t now);

/* anvil_table_stats - maxima since the last reset (owned by the table) */
const ANVIL_STATS *anvil_table_stats(const ANVIL_TABLE *t);
/* anvil_table_stats_reset - start new maxima */
void anvil_table_stats_reset(ANVIL_TABLE *t);

#endif
