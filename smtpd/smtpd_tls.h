/*
 * smtpd_tls - TLS in the SMTP server: STARTTLS (RFC 3207) and implicit
 * TLS on the submissions port (smtpd_tls_wrappermode = yes, RFC 8314),
 * smtpd_tls_security_level (none, may, encrypt, and the older
 * smtpd_use_tls / smtpd_enforce_tls), the log line and the Received:
 * header details of a TLS session. The OpenSSL context comes from
 * lib/tls (tls_server.h), built once per process in pre_init, as root.
 *
 * Session flow. STARTTLS answers "220 2.0.0 Ready to start TLS", throws
 * away every octet the client sent after the command (CVE-2011-0411:
 * plaintext pipelined behind STARTTLS must never be taken as if it came
 * through TLS) and stops reading. Once the 220 has left, the plaintext
 * bufferevent is replaced by an OpenSSL one on the same socket, and the
 * handshake runs within smtpd_starttls_timeout (per wait). A failed
 * handshake is logged ("SSL_accept error from ...") and ends the session.
 * A completed one is logged ("Anonymous TLS connection established from
 * ...") and resets the session as RFC 3207 4.2 wants: no HELO/EHLO, no
 * transaction, no authentication; the client must send EHLO again, and
 * STARTTLS is no longer offered. In wrapper mode the handshake runs right
 * after "connect from", before the 220 greeting.
 */
#ifndef POSTERN_SMTPD_TLS_H
#define POSTERN_SMTPD_TLS_H

#include "smtpd.h"
#include "util/vstr.h"

/* Handler results, as in smtpd_proto.c (identical definitions). */
#ifndef SMTPD_OK
#define SMTPD_OK 0
#define SMTPD_ERROR (-1)
#define SMTPD_PENDING 1
#endif

/* smtpd_tls_init - pre_init, as root: the security level and the server
   context (certificates and keys); cfg->tls stays NULL when TLS is off */
void smtpd_tls_init(SMTPD_CONFIG *cfg);

/* smtpd_tls_offer - list STARTTLS in this EHLO reply */
int smtpd_tls_offer(const SMTPD_SESSION *s);

/* smtpd_tls_required - smtpd_tls_security_level = encrypt and no TLS yet:
   commands other than EHLO, HELO, STARTTLS, NOOP, RSET and QUIT get
   "530 5.7.0 Must issue a STARTTLS command first" */
int smtpd_tls_required(const SMTPD_SESSION *s);

/* smtpd_tls_starttls - the STARTTLS command handler: SMTPD_ERROR (reply
   queued), or SMTPD_PENDING: the handshake runs, and the command is
   accounted for (smtpd_cmd_done) once it succeeded */
int smtpd_tls_starttls(SMTPD_SESSION *s, const SMTP_CMD *cmd);

/* smtpd_tls_wrappermode - this service speaks TLS from the first octet (port 465) */
int smtpd_tls_wrappermode(const SMTPD_CONFIG *cfg);

/* smtpd_tls_wrapper_start - wrapper mode: start the handshake of a new session;
   smtpd_session_greet(s) follows once it completed */
void smtpd_tls_wrapper_start(SMTPD_SESSION *s);

/* smtpd_tls_flushed - smtpd.c: the "220 Ready to start TLS" has left (the
   session is blocked with SMTPD_BLOCK_TLS): start the handshake */
void smtpd_tls_flushed(SMTPD_SESSION *s);

/* smtpd_tls_free - the session ends (before its bufferevent is freed):
   close_notify after an orderly end, release s->tls */
void smtpd_tls_free(SMTPD_SESSION *s);

/* smtpd_tls_received - the Received: lines of a TLS session, after the "from"
   line: "\t(using TLSv1.3 with cipher ... (256/256 bits)\n\t key-exchange
   ...)\n\t(No client certificate requested)\n"; nothing without TLS or with
   smtpd_tls_received_header = no */
void smtpd_tls_received(const SMTPD_SESSION *s, VSTR *hdr);

#endif
