/*
 * anvil_clnt - client of the anvil service (anvil(8), docs/protocols.md
 * section 8): per (service, client address) connection counts and event
 * rates, shared by all processes of a service.
 *
 * USE FROM AN EVENT LOOP
 *   Each call is one synchronous request and reply over one long-lived
 *   connection to private/anvil. anvil answers from memory in microseconds,
 *   and every call is bounded by timeout_ms for the request and the same
 *   again for the reply, so an smtpd event loop can afford it. The
 *   connection is made at the first request (after the daemon dropped its
 *   privileges and entered its chroot: the path is relative to
 *   queue_directory) and made again after a failure.
 *
 * FAILING OPEN
 *   When anvil cannot be reached, does not answer in time, or refuses a
 *   request, the call returns -1 and the caller must let the client
 *   through, as Postfix does: rate limits protect against abuse, and an
 *   unavailable anvil must not take the mail service down with it. Failures
 *   are logged at most once per ANVIL_CLNT_WARN_INTERVAL. After anvil could
 *   not be reached, calls fail at once without trying for
 *   ANVIL_CLNT_RETRY_DELAY seconds, so a stuck anvil costs the event loop
 *   at most one timeout per delay.
 *
 * A connection that answered before and now fails (anvil restarted) is
 * retried once at once on a fresh connection, unless it timed out.
 */
#ifndef POSTERN_ANVIL_CLNT_H
#define POSTERN_ANVIL_CLNT_H

#include "mail/anvil_table.h"

#define ANVIL_SERVICE_PATH "private/anvil" /* relative to queue_directory */

#define ANVIL_CLNT_TIMEOUT_MS 250   /* request, and then reply, each within this */
#define ANVIL_CLNT_RETRY_DELAY 2    /* seconds without a try after a failure */
#define ANVIL_CLNT_WARN_INTERVAL 60 /* seconds between two failure warnings */

/* The protocol: attribute names, requests, status values. */
#define ANVIL_ATTR_REQUEST "request"
#define ANVIL_ATTR_IDENT "ident"
#define ANVIL_ATTR_STATUS "status"
#define ANVIL_ATTR_REASON "reason"
#define ANVIL_ATTR_COUNT "count"         /* connections open now */
#define ANVIL_ATTR_RATE "rate"           /* connection attempts in the window */
#define ANVIL_ATTR_MAIL "mail"           /* MAIL commands in the window */
#define ANVIL_ATTR_RCPT "rcpt"           /* RCPT commands in the window */
#define ANVIL_ATTR_NEWTLS "newtls"       /* TLS handshakes in the window */
#define ANVIL_ATTR_AUTH "auth"           /* AUTH commands in the window */
#define ANVIL_ATTR_AUTH_FAIL "auth_fail" /* failed AUTH commands in the window */

#define ANVIL_REQ_CONNECT "connect"
#define ANVIL_REQ_DISCONNECT "disconnect"
#define ANVIL_REQ_MAIL "message"
#define ANVIL_REQ_RCPT "recipient"
#define ANVIL_REQ_NEWTLS "newtls"
#define ANVIL_REQ_AUTH "auth"
#define ANVIL_REQ_AUTH_FAIL "auth_fail"
#define ANVIL_REQ_LOOKUP "lookup"

#define ANVIL_STAT_OK 0            /* done; the counts follow */
#define ANVIL_STAT_BAD_IDENT 501   /* ident missing or malformed */
#define ANVIL_STAT_BAD_REQUEST 502 /* request missing or unknown */

#define ANVIL_REASON_MAX 200 /* bytes of a refusal reason we keep */

typedef struct ANVIL_CLNT ANVIL_CLNT;

/* anvil_clnt_create - a client for the service at path (nothing is opened yet) */
ANVIL_CLNT *anvil_clnt_create(const char *path, int timeout_ms);
/* anvil_clnt_free - close and release; NULL is fine */
void anvil_clnt_free(ANVIL_CLNT *a);

/*
 * Requests for the identity "service:addr". Each returns 0 with the counts
 * after the event in *out (every field: count and all rates), or -1: anvil
 * unavailable or the request refused (logged; fail open). out may be NULL.
 */
int anvil_clnt_connect(ANVIL_CLNT *a, const char *service, const char *addr, ANVIL_COUNTS *out);
int anvil_clnt_disconnect(ANVIL_CLNT *a, const char *service, const char *addr);
int anvil_clnt_mail(ANVIL_CLNT *a, const char *service, const char *addr, ANVIL_COUNTS *out);
int anvil_clnt_rcpt(ANVIL_CLNT *a, const char *service, const char *addr, ANVIL_COUNTS *out);
int anvil_clnt_newtls(ANVIL_CLNT *a, const char *service, const char *addr, ANVIL_COUNTS *out);
int anvil_clnt_auth(ANVIL_CLNT *a, const char *service, const char *addr, ANVIL_COUNTS *out);
int anvil_clnt_auth_fail(ANVIL_CLNT *a, const char *service, const char *addr, ANVIL_COUNTS *out);
int anvil_clnt_lookup(ANVIL_CLNT *a, const char *service, const char *addr, ANVIL_COUNTS *out);

/* anvil_clnt_absent - after a call failed (or was held off after such a
   failure): nothing listens on the socket (ENOENT, ECONNREFUSED). master
   keeps the socket of a configured service open even while its process is
   down, so this means that anvil is not configured (a stale socket left
   from an earlier master.cf), not that it is broken. */
int anvil_clnt_absent(const ANVIL_CLNT *a);

#endif
