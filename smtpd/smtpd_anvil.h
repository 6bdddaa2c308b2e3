/*
 * smtpd_anvil - per-client connection, rate and AUTH failure limits for
 * smtpd, counted across all smtpd processes by the anvil service.
 *
 * Postfix's smtpd_client_connection_count_limit,
 * smtpd_client_connection_rate_limit, smtpd_client_message_rate_limit,
 * smtpd_client_recipient_rate_limit, smtpd_client_new_tls_session_rate_limit,
 * smtpd_client_auth_rate_limit, and Postern's smtpd_client_auth_failure_limit.
 * Clients matching smtpd_client_event_limit_exceptions are never limited.
 * When the anvil service is not configured (no private/anvil socket), the
 * connection count is kept within this process only and the rates are not
 * limited; when anvil stops answering, every limit fails open (a warning,
 * the client is served), as in Postfix.
 *
 * Each function that can refuse returns 0 to go on, or -1 when a limit was
 * hit: the reply is then queued (and, for smtpd_anvil_connect, the session
 * is closing).
 */
#ifndef POSTERN_SMTPD_ANVIL_H
#define POSTERN_SMTPD_ANVIL_H

#include "smtpd.h"

/* smtpd_anvil_init - read the limits once (pre_init); cfg->anvil NULL when none apply */
void smtpd_anvil_init(SMTPD_CONFIG *cfg);
/* smtpd_anvil_connect - a new client: count and rate; -1: 421 queued, session closing */
int smtpd_anvil_connect(SMTPD_SESSION *s);
/* smtpd_anvil_disconnect - the session ends: give its connection slot back */
void smtpd_anvil_disconnect(SMTPD_SESSION *s);
/* smtpd_anvil_mail - a MAIL command about to be accepted; -1: 450 queued */
int smtpd_anvil_mail(SMTPD_SESSION *s);
/* smtpd_anvil_rcpt - a RCPT command about to be accepted; -1: 450 queued */
int smtpd_anvil_rcpt(SMTPD_SESSION *s);
/* smtpd_anvil_newtls - before a TLS handshake (STARTTLS, wrappermode); -1: 421 queued */
int smtpd_anvil_newtls(SMTPD_SESSION *s);
/* smtpd_anvil_auth - before an AUTH exchange: AUTH rate and failure limit; -1: reply queued */
int smtpd_anvil_auth(SMTPD_SESSION *s);
/* smtpd_anvil_auth_failed - count one failed AUTH for the client, across sessions */
void smtpd_anvil_auth_failed(SMTPD_SESSION *s);

#endif
