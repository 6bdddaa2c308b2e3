/*
 * cleanup_clnt - a blocking client of the cleanup service, for programs
 * that are not event-driven (pickup, bounce, tests). It speaks the protocol
 * of cleanup_proto.h (docs/protocols.md section 1): open, attributes,
 * sender, recipients, content, end.
 *
 *     CLEANUP_REPLY r;
 *     CLEANUP_CLNT *c = cleanup_clnt_open(path, CLEANUP_FLAG_MISSING_HEADERS,
 *                                         CLEANUP_ORIGIN_PICKUP, 0, &r);
 *     if (c == NULL)
 *         ... r.status, r.dsn, r.reason say why (451 when unreachable)
 *     cleanup_clnt_attr(c, "uid", "1000");
 *     cleanup_clnt_sender(c, "user@example.com", NULL);
 *     cleanup_clnt_rcpt(c, "other@example.com", NULL, 0);
 *     cleanup_clnt_data(c, text, len);          (as often as needed)
 *     cleanup_clnt_end(c, &r);                  r.status 0: queued as r.queue_id
 *     cleanup_clnt_free(c);
 *
 * Errors are sticky: after a failed write every later call fails at once,
 * and cleanup_clnt_end reports a temporary failure (451 4.3.0) without
 * waiting for a reply. Freeing the client before cleanup_clnt_end closes
 * the connection, which makes cleanup abort the message and remove its
 * file.
 *
 * Ownership: cleanup_clnt_open allocates; cleanup_clnt_free releases and
 * closes. A CLEANUP_REPLY is the caller's (no allocation).
 */
#ifndef POSTERN_CLEANUP_CLNT_H
#define POSTERN_CLEANUP_CLNT_H

#include <stddef.h>

#include "mail/cleanup_proto.h"
#include "mail/queue_id.h"

#define CLEANUP_CLNT_TIMEOUT_MS 3600000 /* default per-request timeout (ipc_timeout) */

/* A reply from cleanup (or made up by the client when cleanup is unreachable). */
typedef struct CLEANUP_REPLY {
    unsigned status;                 /* 0, or an SMTP reply code */
    char queue_id[QUEUE_ID_SIZE];    /* "" when none */
    char dsn[CLEANUP_DSN_MAX];       /* "5.3.4"; "2.0.0" on success */
    char reason[CLEANUP_REASON_MAX]; /* text after the DSN code */
} CLEANUP_REPLY;

/* Optional parts of the sender request (RFC 3461, 6152, 3030, 6531, 1870). */
typedef struct CLEANUP_SENDER_OPTS {
    const char *ret;         /* CLEANUP_RET_FULL, CLEANUP_RET_HDRS or NULL */
    const char *envid;       /* xtext-decoded, or NULL */
    const char *body;        /* CLEANUP_BODY_* or NULL */
    int smtputf8;            /* 1 when SMTPUTF8 was given */
    unsigned long long size; /* SIZE= as declared, 0 when none */
} CLEANUP_SENDER_OPTS;

typedef struct CLEANUP_CLNT CLEANUP_CLNT;

/* cleanup_clnt_open - connect to the UNIX socket at path (relative to the
   current directory, normally queue_directory: "private/cleanup") and open
   a transaction; timeout_ms per request (0: CLEANUP_CLNT_TIMEOUT_MS). NULL
   with the reason in *reply when the connection fails or cleanup refuses. */
CLEANUP_CLNT *cleanup_clnt_open(const char *path, int flags, const char *origin, int timeout_ms,
                                CLEANUP_REPLY *reply);
/* cleanup_clnt_queue_id - the id cleanup gave at open */
const char *cleanup_clnt_queue_id(const CLEANUP_CLNT *c);
/* cleanup_clnt_why - text of the last failure ("" when none) */
const char *cleanup_clnt_why(const CLEANUP_CLNT *c);

/* Requests; 0, or -1 after a failure (sticky). */
int cleanup_clnt_attr(CLEANUP_CLNT *c, const char *name, const char *value);
int cleanup_clnt_sender(CLEANUP_CLNT *c, const char *sender, const CLEANUP_SENDER_OPTS *opts);
/* cleanup_clnt_rcpt - orcpt "type;address" or NULL; notify QFILE_NOTIFY_* bits */
int cleanup_clnt_rcpt(CLEANUP_CLNT *c, const char *addr, const char *orcpt, int notify);
/* cleanup_clnt_data - message text with LF line ends, any amount (sent in
   CLEANUP_DATA_MAX pieces) */
int cleanup_clnt_data(CLEANUP_CLNT *c, const char *data, size_t len);

/* cleanup_clnt_end - finish the transaction and wait for the final reply;
   0 with cleanup's answer in *reply (status 0: committed), or -1 with a
   made-up 451 4.3.0 in *reply when cleanup could not be asked */
int cleanup_clnt_end(CLEANUP_CLNT *c, CLEANUP_REPLY *reply);

/* cleanup_clnt_free - close (aborting the message unless ended) and release */
void cleanup_clnt_free(CLEANUP_CLNT *c);

#endif
