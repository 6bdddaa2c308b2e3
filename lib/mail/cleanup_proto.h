/*
 * cleanup_proto - the cleanup service protocol (docs/protocols.md section 1):
 * request and attribute names, the CLEANUP_FLAG_* bits, and the queue-file
 * attributes cleanup derives from a request. Shared by cleanup and its
 * clients (smtpd, pickup, bounce, lib/mail/cleanup_clnt for blocking ones).
 *
 * One connection carries one message transaction:
 *
 *   client                                   cleanup
 *   req=open flags=N origin=S          ->
 *                                      <-    status=0 queue_id=ID
 *                                            (or status=452 dsn reason: close)
 *   req=attr name=S value=S            ->    (0..n)
 *   req=sender address=S [ret envid body smtputf8 size]
 *   req=rcpt address=S [orcpt notify]  ->    (0..n)
 *   req=data data=BIN                  ->    (0..n, at most CLEANUP_DATA_MAX each)
 *   req=end                            ->
 *                                      <-    status dsn reason queue_id
 *
 * Nothing but the two replies ever travels from cleanup to the client, so a
 * client streaming content never needs to read: errors found while the
 * content arrives are answered at "end". Closing the connection before
 * "end" aborts the transaction and cleanup removes the file it was writing.
 *
 * A status is 0 (success) or an SMTP reply code (4xx temporary, 5xx
 * permanent); dsn is the RFC 3463 code and reason the text that follows it
 * in an SMTP reply, for example status 552, dsn "5.3.4", reason "Error:
 * message file too big", which smtpd sends as "552 5.3.4 Error: message
 * file too big".
 */
#ifndef POSTERN_CLEANUP_PROTO_H
#define POSTERN_CLEANUP_PROTO_H

/* The service: $queue_directory/private/$cleanup_service_name. */
#define CLEANUP_SERVICE_CLASS "private"

/* The request name attribute and its values. */
#define CLEANUP_ATTR_REQ "req"
#define CLEANUP_REQ_OPEN "open"
#define CLEANUP_REQ_ATTR "attr"
#define CLEANUP_REQ_SENDER "sender"
#define CLEANUP_REQ_RCPT "rcpt"
#define CLEANUP_REQ_DATA "data"
#define CLEANUP_REQ_END "end"

/* Attributes of the requests. */
#define CLEANUP_ATTR_FLAGS "flags"           /* open: UINT, CLEANUP_FLAG_* */
#define CLEANUP_ATTR_ORIGIN "origin"         /* open: STR, CLEANUP_ORIGIN_* */
#define CLEANUP_ATTR_NAME "name"             /* attr: STR, [A-Za-z0-9_.-], 1..64 bytes */
#define CLEANUP_ATTR_VALUE "value"           /* attr: STR */
#define CLEANUP_ATTR_ADDRESS "address"       /* sender, rcpt: STR, internal form */
#define CLEANUP_ATTR_RET "ret"               /* sender: STR "FULL" or "HDRS" (RFC 3461) */
#define CLEANUP_ATTR_ENVID "envid"           /* sender: STR, xtext-decoded */
#define CLEANUP_ATTR_BODY "body"             /* sender: STR, CLEANUP_BODY_* */
#define CLEANUP_ATTR_SMTPUTF8_REQ "smtputf8" /* sender: UINT 0/1 (RFC 6531) */
#define CLEANUP_ATTR_SIZE "size"             /* sender: UINT, SIZE= as declared */
#define CLEANUP_ATTR_ORCPT "orcpt"           /* rcpt: STR "type;address", xtext-decoded */
#define CLEANUP_ATTR_NOTIFY "notify"         /* rcpt: UINT, QFILE_NOTIFY_* bits */
#define CLEANUP_ATTR_DATA "data"             /* data: BIN */

/* Attributes of the replies. */
#define CLEANUP_ATTR_STATUS "status"     /* UINT: 0, or an SMTP reply code */
#define CLEANUP_ATTR_QUEUE_ID "queue_id" /* STR */
#define CLEANUP_ATTR_DSN "dsn"           /* STR: RFC 3463 "5.3.4" */
#define CLEANUP_ATTR_REASON "reason"     /* STR: text after the DSN code */

/* CLEANUP_FLAG_* bits of "open". */
#define CLEANUP_FLAG_MISSING_HEADERS (1 << 0) /* add missing Message-Id, Date, From */
#define CLEANUP_FLAG_HAS_RECEIVED (1 << 1)    /* content starts with the client's Received: */
#define CLEANUP_FLAG_EXTRACT_RCPT (1 << 2)    /* recipients from To/Cc/Bcc (sendmail -t) */
#define CLEANUP_FLAG_REMOVE_BCC (1 << 3)      /* remove Bcc and Resent-Bcc headers */
#define CLEANUP_FLAG_MASK 0xf                 /* bits a client may set */

/* Origins (the "origin" attribute of "open"; used in logs). */
#define CLEANUP_ORIGIN_SMTPD "smtpd"
#define CLEANUP_ORIGIN_PICKUP "pickup"
#define CLEANUP_ORIGIN_SENDMAIL "sendmail"
#define CLEANUP_ORIGIN_BOUNCE "bounce"
#define CLEANUP_ORIGIN_LOCAL "local" /* mail that local(8) forwards */

/* Values of "body" (RFC 6152 8BITMIME, RFC 3030 BINARYMIME). */
#define CLEANUP_BODY_7BIT "7BIT"
#define CLEANUP_BODY_8BITMIME "8BITMIME"
#define CLEANUP_BODY_BINARYMIME "BINARYMIME"

/* Values of "ret". */
#define CLEANUP_RET_FULL "FULL"
#define CLEANUP_RET_HDRS "HDRS"

/* Limits of the protocol. */
#define CLEANUP_DATA_MAX (64 * 1024) /* bytes of content in one "data" request */
#define CLEANUP_DSN_MAX 16           /* "5.3.4" and longer codes (RFC 3463: x.yyy.zzz) */
#define CLEANUP_REASON_MAX 1000      /* reply text cleanup sends at most */

/*
 * Attributes a client may send with req=attr that cleanup interprets
 * besides storing them in the queue file like every other attribute:
 *   mt_priority     "-9".."9", RFC 6710 MT-PRIORITY; a client passes it only
 *                   for senders it trusts (RFC 6710 section 5)
 *   uid             the submitting user (pickup), for the Received: header
 *                   cleanup adds without CLEANUP_FLAG_HAS_RECEIVED
 *   full_name       the sender's full name (sendmail -F), the display name
 *                   of a From: header cleanup adds
 *   client_name, client_address, helo_name, protocol_name
 *                   shown in cleanup's reject log lines
 */
#define CLEANUP_ATTR_MT_PRIORITY "mt_priority"
#define CLEANUP_ATTR_UID "uid"
#define CLEANUP_ATTR_FULL_NAME "full_name"
#define CLEANUP_ATTR_CLIENT_NAME "client_name"
#define CLEANUP_ATTR_CLIENT_ADDRESS "client_address"
#define CLEANUP_ATTR_HELO_NAME "helo_name"
#define CLEANUP_ATTR_PROTOCOL_NAME "protocol_name"

/*
 * Queue-file attributes cleanup writes from the "sender" request, for
 * delivery agents that must relay the message with the same properties.
 */
#define CLEANUP_QATTR_ENCODING "encoding" /* "7bit", "8bit" or "binary" (BODY=) */
#define CLEANUP_QATTR_SMTPUTF8 "smtputf8" /* "1" when the client asked for SMTPUTF8 */

#define CLEANUP_ENC_7BIT "7bit"
#define CLEANUP_ENC_8BIT "8bit"
#define CLEANUP_ENC_BINARY "binary"

#endif
