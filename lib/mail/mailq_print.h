/*
 * mailq_print - the queue listing as people and programs read it: Postfix's
 * `postqueue -p` (Sendmail mailq) text and `postqueue -j` JSON lines, made
 * from the showq protocol messages (showq_proto.h) as they arrive.
 *
 * TEXT (postqueue -p, mailq), with Postfix's column layout for long queue
 * ids (Postern's ids are always long):
 *
 *   ----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------
 *   11GDXQ05GBSN00C1S*   12345 Tue Jan  2 03:04:05 sender@example.org
 *                                                  rcpt@example.com
 *
 *   The id is followed by '*' for mail waiting for or in delivery
 *   (immediate/ and bulk/, Postfix's "active"), '!' for mail on hold, then
 *   '#' when forced to expire; an id with a mark is one column wider, as in
 *   Postfix. Size is the message size in bytes, the arrival time is local
 *   time in asctime() form. A recipient's deferral reason stands on its own
 *   line before it, in parentheses, right-aligned so that it ends in column
 *   78, or from column 1 when it is longer than 76 characters (Postfix does
 *   not wrap it); it is printed only when it differs from the previous
 *   recipient's, and "(reason unavailable)" when a recipient without one
 *   follows one with one. Entries are separated by an empty line; the
 *   listing ends with "-- N Kbytes in M Requests." (sizes summed, divided by
 *   1024; "Request" for one), or is just "Mail queue is empty".
 *
 * JSON (postqueue -j): one object per queue file and line, members in
 * Postfix's order: queue_name, queue_id, arrival_time, message_size,
 * forced_expire, sender, recipients (objects with address and, when
 * there is one, delay_reason). Strings are escaped per RFC 8259 and are
 * valid UTF-8.
 *
 * Ownership: mailq_print_new allocates, mailq_print_free releases; output
 * is appended to the caller's VSTR.
 */
#ifndef POSTERN_MAILQ_PRINT_H
#define POSTERN_MAILQ_PRINT_H

#include "mail/showq_proto.h"
#include "util/vstr.h"

#define MAILQ_FORMAT_TEXT 0
#define MAILQ_FORMAT_JSON 1

#define MAILQ_REASON_COLUMN 76 /* a reason this long or shorter is right-aligned */

typedef struct MAILQ_PRINT MAILQ_PRINT;

MAILQ_PRINT *mailq_print_new(int format);
void mailq_print_free(MAILQ_PRINT *p);

/* mailq_print_msg - append the output for one "message" or "recipients"
   protocol message to out; -1 with why when it is out of sequence */
int mailq_print_msg(MAILQ_PRINT *p, const SHOWQ_MSG *m, VSTR *out, VSTR *why);

/* mailq_print_finish - append the trailer (text) after the last message;
   -1 with why when a queue file was left incomplete */
int mailq_print_finish(MAILQ_PRINT *p, VSTR *out, VSTR *why);

/* mailq_print_count - queue files printed so far */
unsigned long long mailq_print_count(const MAILQ_PRINT *p);

/* mailq_json_quote - append text as the inside of a JSON string */
void mailq_json_quote(VSTR *out, const char *text);

#endif
