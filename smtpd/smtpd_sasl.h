/*
 * smtpd_sasl - SMTP AUTH (RFC 4954) in smtpd: the AUTH command and its
 * exchange, the AUTH keyword in EHLO, the AUTH= parameter of MAIL, what an
 * authenticated session adds to the log, the queue file and Received:.
 * The mechanisms and credential backends are lib/sasl (sasl_server.h).
 *
 * Life of an exchange: smtpd_sasl_auth() starts it and blocks the session
 * (SMTPD_BLOCK_AUTH) until the backend answers; a "334" challenge unblocks
 * it, and every line the client sends while s->sasl != NULL goes to
 * smtpd_sasl_line() instead of the command parser; the final answer (235,
 * 535, 454, 501, 500) ends the exchange and the AUTH command.
 */
#ifndef POSTERN_SMTPD_SASL_H
#define POSTERN_SMTPD_SASL_H

#include <stddef.h>

#include "smtpd.h"

/* RFC 4422 3.1: a mechanism name is 1 to 20 characters. */
#define SMTPD_SASL_MECH_MAX 20
/* An AUTH line is "AUTH" SP mechanism SP initial-response CRLF: this much
   more than the response itself. */
#define SMTPD_SASL_LINE_SLACK (4 + 1 + SMTPD_SASL_MECH_MAX + 1 + 2)
/* smtpd_sasl_response_limit is capped so that a whole line always fits in
   the client input buffer (SMTPD_IN_HIGH): a longer one could never be
   completed and the session would only wait for its timeout. */
#define SMTPD_SASL_RESPONSE_HARD_MAX (SMTPD_IN_HIGH - 1024)

/* smtpd_sasl_init - read the AUTH parameters; cfg->sasl stays NULL when
   smtpd_sasl_auth_enable = no. Call in pre_init (as root, so that tables
   outside a chroot can be opened; the library starts no thread before the
   first AUTH) after the other configuration: the backend is created on
   base, and the command line buffer (cfg->line) is widened to hold AUTH
   lines. An unsupported smtpd_sasl_type is fatal; a backend that cannot be
   set up is logged and AUTH is then refused (454), never silently open. */
void smtpd_sasl_init(SMTPD_CONFIG *cfg, struct event_base *base);

/* smtpd_sasl_ehlo - the mechanisms to announce in EHLO now ("PLAIN LOGIN"),
   or NULL when AUTH is not offered to this session */
const char *smtpd_sasl_ehlo(SMTPD_SESSION *s);

/* smtpd_sasl_ehlo_lines - append the EHLO keyword lines ("\nAUTH PLAIN LOGIN",
   and "\nAUTH=PLAIN LOGIN" with broken_sasl_auth_clients = yes), if any */
void smtpd_sasl_ehlo_lines(SMTPD_SESSION *s, VSTR *text);

/* smtpd_sasl_auth - the AUTH command; SMTPD_PENDING while the exchange runs,
   else SMTPD_ERROR with the reply queued */
int smtpd_sasl_auth(SMTPD_SESSION *s, const SMTP_CMD *cmd);

/* smtpd_sasl_line - one client line (with its terminator) while s->sasl is
   not NULL; line NULL: the line was longer than the response limit and has
   been discarded. Returns 0. */
int smtpd_sasl_line(SMTPD_SESSION *s, const char *line, size_t len);

/* smtpd_sasl_reset - forget any exchange and the authentication (after
   STARTTLS, RFC 3207 4.2; at the end of the session) */
void smtpd_sasl_reset(SMTPD_SESSION *s);

/* smtpd_sasl_line_limit - the longest line the client may send next when
   longer than the usual command line limits: a response while an exchange
   runs, or an AUTH command with an initial response (peek holds the first
   peek_len buffered octets). 0 when the usual limits apply. */
size_t smtpd_sasl_line_limit(const SMTPD_SESSION *s, const char *peek, size_t peek_len);

/* smtpd_sasl_required - smtpd_sasl_auth_required = yes and the client has
   not authenticated: MAIL and the other commands RFC 4954 6 names get
   "530 5.7.0 Authentication required" */
int smtpd_sasl_required(const SMTPD_SESSION *s);

/* smtpd_sasl_permitted - permit_sasl_authenticated: authenticated, and not
   anonymously */
int smtpd_sasl_permitted(const SMTPD_SESSION *s);

/* smtpd_sasl_mail_param - the AUTH= value of an accepted MAIL (decoded,
   "<>" for none), or NULL when absent; kept in s->txn.sasl_sender only for
   an authenticated client (RFC 4954 5: anyone else is treated as AUTH=<>) */
void smtpd_sasl_mail_param(SMTPD_SESSION *s, const char *value);

/* smtpd_sasl_txn_open - the queue file exists: log "ID: client=..., sasl_method=...,
   sasl_username=..., sasl_sender=..." as Postfix does and hand those
   attributes to cleanup */
void smtpd_sasl_txn_open(SMTPD_SESSION *s);

/* smtpd_sasl_received - append "\t(Authenticated sender: NAME)\n" to a
   Received: header under construction when smtpd_sasl_authenticated_header
   = yes and the client has authenticated */
void smtpd_sasl_received(const SMTPD_SESSION *s, VSTR *hdr);

#endif
