/*
 * showq_proto - the queue listing protocol between the showq service and
 * its clients (postqueue -p / -j, mailq), docs/protocols.md section 4.
 *
 * The client connects to public/showq and sends nothing; showq decides
 * from the peer's credentials whether it may see the queue, then sends
 * attribute messages (docs/ipc.md), each with a `kind`:
 *
 *   "message"     one queue file: queue_name, queue_id, arrival_time,
 *                 message_size, forced_expire, sender, then up to
 *                 SHOWQ_RCPT_CHUNK (recipient, reason) pairs and `more`
 *   "recipients"  the next pairs of the same queue file: queue_id, pairs,
 *                 more (sent while the previous message had more = 1)
 *   "end"         the last message: status (SHOWQ_STAT_*), reason, count
 *
 * Splitting a queue file's recipients over messages of at most
 * SHOWQ_RCPT_CHUNK pairs keeps every message within the default attribute
 * limits whatever the number of recipients (a queue file may hold
 * QFILE_RCPT_MAX), and lets the client print as it reads.
 *
 * Text is made printable by the server (showq_printable): control
 * characters and bytes that are not valid UTF-8 become '?', so nothing a
 * remote server put in a deferral reason can reach the user's terminal as
 * an escape sequence or break a JSON reader. The client reads with
 * ATTR_FLAG_PRINTABLE as a second line of defence.
 *
 * Ownership: SHOWQ_WRITER from showq_writer_new, released by
 * showq_writer_free. SHOWQ_MSG from showq_msg_read or showq_msg_decode,
 * released by showq_msg_free; its strings live until then.
 */
#ifndef POSTERN_SHOWQ_PROTO_H
#define POSTERN_SHOWQ_PROTO_H

#include <stddef.h>

#include "mail/attr.h"
#include "util/vstr.h"

/* Message kinds. */
#define SHOWQ_KIND_MESSAGE "message"
#define SHOWQ_KIND_RECIPIENTS "recipients"
#define SHOWQ_KIND_END "end"

/* Attribute names (Postfix's where Postfix has one). */
#define SHOWQ_ATTR_KIND "kind"
#define SHOWQ_ATTR_QUEUE "queue_name"
#define SHOWQ_ATTR_QUEUE_ID "queue_id"
#define SHOWQ_ATTR_TIME "arrival_time"
#define SHOWQ_ATTR_SIZE "message_size"
#define SHOWQ_ATTR_FORCED_EXPIRE "forced_expire"
#define SHOWQ_ATTR_SENDER "sender"
#define SHOWQ_ATTR_RECIPIENT "recipient"
#define SHOWQ_ATTR_REASON "reason"
#define SHOWQ_ATTR_MORE "more"
#define SHOWQ_ATTR_STATUS "status"
#define SHOWQ_ATTR_COUNT "count"

/* End status. */
#define SHOWQ_STAT_OK 0     /* the listing is complete */
#define SHOWQ_STAT_DENIED 1 /* the client's user may not see the queue */
#define SHOWQ_STAT_FAIL 2   /* the queue could not be read (listing incomplete) */

#define SHOWQ_RCPT_CHUNK 64   /* (recipient, reason) pairs per message at most */
#define SHOWQ_TEXT_MAX 16384  /* longest sender, recipient or reason sent */
#define SHOWQ_NAME_MAX 64     /* longest queue name or queue id accepted */
#define SHOWQ_REPLACEMENT '?' /* stands in for what is not printable */

/* showq_printable - text made safe to show: control characters and invalid
   UTF-8 become SHOWQ_REPLACEMENT, cut at SHOWQ_TEXT_MAX bytes (on a
   character boundary); replaces out */
void showq_printable(VSTR *out, const char *text);

/* ---- Server: streaming one queue file at a time ---- */

typedef struct SHOWQ_WRITER SHOWQ_WRITER;

/* showq_writer_new - write to s (still the caller's) */
SHOWQ_WRITER *showq_writer_new(ATTR_STREAM *s);
void showq_writer_free(SHOWQ_WRITER *w);
/* showq_writer_message - start a queue file's message; strings as they are to
   be shown (already printable). 0, or -1 (attr_stream_why) */
int showq_writer_message(SHOWQ_WRITER *w, const char *queue_name, const char *queue_id,
                         unsigned long long arrival_time, unsigned long long message_size,
                         int forced_expire, const char *sender);
/* showq_writer_rcpt - one recipient and its reason ("" = none); 0 or -1 */
int showq_writer_rcpt(SHOWQ_WRITER *w, const char *address, const char *reason);
/* showq_writer_done - the queue file is complete; sends what is buffered; 0 or -1 */
int showq_writer_done(SHOWQ_WRITER *w);
/* showq_writer_end - the final message; 0 or -1 */
int showq_writer_end(SHOWQ_WRITER *w, int status, const char *reason, unsigned long long count);

/* ---- Client ---- */

enum showq_msg_kind { SHOWQ_MSG_MESSAGE, SHOWQ_MSG_RECIPIENTS, SHOWQ_MSG_END };

typedef struct SHOWQ_MSG {
    enum showq_msg_kind kind;
    /* MESSAGE (queue_id also for RECIPIENTS) */
    const char *queue_name;
    const char *queue_id;
    unsigned long long arrival_time;
    unsigned long long message_size;
    int forced_expire;
    const char *sender;
    /* MESSAGE and RECIPIENTS */
    size_t rcpt_count;
    const char *rcpt[SHOWQ_RCPT_CHUNK];
    const char *reason[SHOWQ_RCPT_CHUNK];
    int more;
    /* END */
    int status;
    const char *status_reason; /* "" when none */
    unsigned long long count;
    /* Private. */
    ATTR_MSG *raw;
} SHOWQ_MSG;

/* showq_msg_decode - interpret a message; takes raw over (freed with m, also
   on failure). 0, or -1 with the reason in why. */
int showq_msg_decode(ATTR_MSG *raw, SHOWQ_MSG *m, VSTR *why);
/* showq_msg_read - read and interpret the next message; 0, or -1 with the
   reason in why (errno ENODATA: the server closed before "end") */
int showq_msg_read(ATTR_STREAM *s, SHOWQ_MSG *m, VSTR *why);
/* showq_msg_free - release what m holds; m itself is the caller's */
void showq_msg_free(SHOWQ_MSG *m);

#endif
