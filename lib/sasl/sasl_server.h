/*
 * sasl_server - the server side of SMTP AUTH (RFC 4954): mechanisms and
 * credential backends, for smtpd's event loop.
 *
 * Backends (smtpd_sasl_type):
 *   postern  a Postern password map (smtpd_sasl_password_maps, any table
 *            type: hash:, btree:, texthash:, ...): key = login name, value
 *            = a crypt(3) hash ($y$ yescrypt, $6$ sha512-crypt, $2b$
 *            bcrypt, ...), or a scheme-tagged secret as Dovecot writes them:
 *            {PLAIN}secret, {SCRAM-SHA-256}iter,salt,StoredKey,ServerKey.
 *            Mechanisms: those named in smtpd_sasl_postern_mechanisms
 *            (PLAIN, LOGIN by default; CRAM-MD5 and SCRAM-SHA-256 work only
 *            for users whose entry holds what they need). crypt(3) runs in
 *            worker threads so one slow hash never stalls other sessions.
 *   dovecot  Dovecot's authentication protocol over a UNIX socket
 *            (smtpd_sasl_path; a relative path is under queue_directory,
 *            as in Postfix): mechanisms are the ones Dovecot announces,
 *            and every step is relayed to Dovecot.
 *
 * Everything is asynchronous: sasl_sess_step() returns at once and the
 * result arrives through the SASL_DONE_FN callback from the event loop
 * (never from inside sasl_sess_start/sasl_sess_step themselves).
 *
 * Mechanism filtering: smtpd_sasl_security_options (or
 * smtpd_sasl_tls_security_options on a TLS session) with Postfix's
 * words (noplaintext, noactive, nodictionary, noanonymous,
 * mutual_auth, forward_secrecy), then smtpd_sasl_mechanism_filter.
 */
#ifndef POSTERN_SASL_SERVER_H
#define POSTERN_SASL_SERVER_H

#include <stddef.h>

#include "util/vstr.h"

struct event_base;

typedef struct SASL_SERVER SASL_SERVER; /* one per process: backend and settings */
typedef struct SASL_SESS SASL_SESS;     /* one AUTH exchange */

/* Results given to SASL_DONE_FN. */
enum sasl_result {
    SASL_CONTINUE, /* text: the next challenge, base64 (may be ""): send "334 text" */
    SASL_OK,       /* text: the authenticated user name (authorization identity) */
    SASL_FAIL,     /* text: why, for the log ("authentication failure"); answer 535 5.7.8 */
    SASL_TEMPFAIL, /* text: why (backend down, timeout); answer 454 4.7.0 */
    SASL_BADPROT,  /* text: why (bad base64, bad message shape); answer 501 5.5.2 */
};

typedef void (*SASL_DONE_FN)(void *context, enum sasl_result result, const char *text);

/* Settings; sasl_server_create copies what it keeps. */
typedef struct SASL_SERVER_ARGS {
    const char *type;            /* "postern" or "dovecot" */
    const char *path;            /* dovecot: socket path; postern: the password map list */
    const char *mechanisms;      /* postern: smtpd_sasl_postern_mechanisms */
    const char *security;        /* smtpd_sasl_security_options */
    const char *tls_security;    /* smtpd_sasl_tls_security_options */
    const char *filter;          /* smtpd_sasl_mechanism_filter */
    const char *service;         /* smtpd_sasl_service ("smtp"), told to Dovecot */
    long timeout;                /* seconds for a backend answer (smtpd_sasl_backend_timeout) */
    long response_limit;         /* smtpd_sasl_response_limit: octets of one response */
    struct event_base *base;
    long crypt_workers;          /* postern: smtpd_sasl_crypt_workers (threads); 0: 2 */
} SASL_SERVER_ARGS;

/*
 * sasl_server_create - a backend; NULL with *why set when the settings are
 * wrong (unknown type, unreadable map). Runs after the privilege drop for
 * dovecot (it connects lazily) and for postern maps readable by mail_owner;
 * call it in pre_init (as root) when the map is root-only.
 */
SASL_SERVER *sasl_server_create(const SASL_SERVER_ARGS *args, VSTR *why);

/* sasl_server_mechs - "PLAIN LOGIN": what to offer now; "" when none. The
   string stays valid until the next call. dovecot: until Dovecot's MECH list
   is known, a call connects and waits for the handshake (at most 2 seconds;
   after a failure no new attempt for 5 seconds, and "" is returned). */
const char *sasl_server_mechs(SASL_SERVER *srv, int tls_active);

/*
 * sasl_sess_start - begin AUTH with mechanism mech (case-insensitive) and
 * an optional initial response (RFC 4954 4: NULL when none was given, ""
 * for "="). Returns NULL with *why set when the mechanism is not offered
 * (answer 504 5.5.4). Otherwise the first result arrives through fn.
 */
typedef struct SASL_CLIENT_INFO {
    const char *client_addr; /* 192.0.2.1 */
    const char *client_port;
    const char *local_addr;
    const char *local_port;
    int tls_active;
} SASL_CLIENT_INFO;

SASL_SESS *sasl_sess_start(SASL_SERVER *srv, const char *mech, const char *initial,
                           const SASL_CLIENT_INFO *info, SASL_DONE_FN fn, void *context,
                           VSTR *why);

/* sasl_sess_step - the client's next response line (base64, CRLF removed; smtpd answers "*" itself) */
void sasl_sess_step(SASL_SESS *sess, const char *response, size_t len);

/* sasl_sess_mech - the mechanism's canonical name ("PLAIN") */
const char *sasl_sess_mech(const SASL_SESS *sess);

/* sasl_sess_free - end the exchange; a pending backend answer is dropped, fn never runs */
void sasl_sess_free(SASL_SESS *sess);

/* sasl_server_free - at exit */
void sasl_server_free(SASL_SERVER *srv);

#endif
