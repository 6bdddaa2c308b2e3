/*
 * bounce_proto - the notice service protocol (docs/protocols.md section 7):
 * what qmgr sends to bounce(8) on private/$bounce_service_name to have a
 * delivery status notification queued, and what it gets back.
 *
 * One connection carries one request; a request is a sequence of attribute
 * messages, so that a notice for many recipients never meets the per-message
 * limits of the attribute protocol:
 *
 *   qmgr                                            bounce
 *   kind queue_name queue_id count            ->
 *   rcpt_index dsn_status dsn_action reason relay
 *     dsn_mtype dsn_mname dsn_dtype dsn_dtext  ->    (count times)
 *   end=1                                     ->
 *                                             <-    status reason queue_id
 *
 * status 0: the notice was committed into the queue (queue_id names it) or
 * none was due (queue_id ""); only then may qmgr record the recipients as
 * bounced. Any other status (4xx) means "try again later".
 */
#ifndef POSTERN_BOUNCE_PROTO_H
#define POSTERN_BOUNCE_PROTO_H

/* The service: $queue_directory/private/$bounce_service_name. */
#define BOUNCE_SERVICE_CLASS "private"

/* Values of "kind". */
#define BOUNCE_KIND_FAILURE "failure" /* undeliverable: Action failed (RFC 3464) */
#define BOUNCE_KIND_DELAY "delay"     /* still being retried: Action delayed */
#define BOUNCE_KIND_SUCCESS "success" /* NOTIFY=SUCCESS: delivered, relayed, expanded */

/* Attributes of the first message. */
#define BOUNCE_ATTR_KIND "kind"
#define BOUNCE_ATTR_QUEUE_NAME "queue_name"
#define BOUNCE_ATTR_QUEUE_ID "queue_id"
#define BOUNCE_ATTR_COUNT "count" /* recipient messages that follow */

/* Attributes of a recipient message (the dsn_* names are Postfix's). */
#define BOUNCE_ATTR_RCPT_INDEX "rcpt_index" /* position as qfile reports it */
#define BOUNCE_ATTR_STATUS "dsn_status"     /* RFC 3463 "5.1.1" */
#define BOUNCE_ATTR_ACTION "dsn_action"     /* RFC 3464 action */
#define BOUNCE_ATTR_REASON "reason"         /* text for people */
#define BOUNCE_ATTR_RELAY "relay"           /* "host[addr]:port", "local", "none" */
#define BOUNCE_ATTR_MTYPE "dsn_mtype"       /* Remote-MTA type: "dns" ("" none) */
#define BOUNCE_ATTR_MNAME "dsn_mname"       /* Remote-MTA name */
#define BOUNCE_ATTR_DTYPE "dsn_dtype"       /* Diagnostic-Code type: "smtp" ("" none) */
#define BOUNCE_ATTR_DTEXT "dsn_dtext"       /* the remote reply */

/* The last message, and the reply. */
#define BOUNCE_ATTR_END "end"
#define BOUNCE_ATTR_REPLY_STATUS "status"
#define BOUNCE_ATTR_REPLY_REASON "reason"
#define BOUNCE_ATTR_REPLY_ID "queue_id"

/* Limits of the protocol. */
#define BOUNCE_RCPT_MAX 1000 /* recipients in one request (one notice) */
#define BOUNCE_TEXT_MAX 4096 /* bytes of a reason or diagnostic text */
#define BOUNCE_NAME_MAX 1024 /* bytes of a relay, type or MTA name */
#define BOUNCE_STATUS_MAX 32 /* bytes of a DSN status */
#define BOUNCE_ACTION_MAX 16 /* bytes of an action */

#endif
