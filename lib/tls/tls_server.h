/*
 * tls_server - the server's OpenSSL context, built once per process from
 * Postfix-style parameters, before the privilege drop (private keys are
 * often readable by root only).
 *
 * Certificates: either chain files (Postfix's smtpd_tls_chain_files: PEM
 * files holding a private key followed by its certificate chain, leaf
 * first, as many pairs as wanted, a key and its chain possibly in
 * separate files listed in that order), or the legacy pairs (cert_file
 * with key_file, eccert_file with eckey_file, dcert_file with
 * dkey_file; an empty key file means the key is in the certificate
 * file). An RSA and an ECDSA pair can be loaded at once: OpenSSL then
 * picks per client from the cipher suite (TLS 1.2) or the signature
 * algorithms (TLS 1.3) it offers.
 *
 * What the context does: the protocol range from the Postfix protocol
 * list; the cipher list of the grade (TLS 1.2 and older; TLS 1.3 uses
 * OpenSSL's AEAD suites); the server's cipher order when asked; no
 * compression (CRIME); no renegotiation (client-initiated renegotiation
 * is a denial-of-service lever and has no use in SMTP); no session
 * resumption at all (no tickets, no cache): an SMTP session is long
 * compared to its handshake, and resumption across the processes of a
 * service would need a shared key or cache. No SNI callback: every
 * name gets the same certificates, and clients need not send SNI.
 */
#ifndef POSTERN_TLS_SERVER_H
#define POSTERN_TLS_SERVER_H

#include <openssl/ssl.h>

#include "util/vstr.h"

#define TLS_PEM_FILE_MAX (1024 * 1024) /* largest certificate or key file read */
#define TLS_PEM_OBJECTS_MAX 64         /* PEM objects per file at most */

/*
 * The server's cipher lists for TLS 1.2 when tls_high_cipherlist and
 * tls_medium_cipherlist are not set in main.cf: forward secrecy (ECDHE)
 * and AEAD ciphers only (AES-GCM, ChaCha20-Poly1305), strongest first.
 * CBC suites are left out (Lucky13 and friends), so are RSA key transport
 * (no forward secrecy, ROBOT) and finite-field DHE.
 */
#define TLS_SERVER_HIGH_CIPHERS                                                                    \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_SERVER_MEDIUM_CIPHERS                                                                  \
    TLS_SERVER_HIGH_CIPHERS ":ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"

typedef struct TLS_SERVER_PARAMS {
    const char *chain_files; /* list; when not empty the legacy pairs are not used */
    const char *cert_file;   /* legacy pairs: "" when unused */
    const char *key_file;
    const char *eccert_file;
    const char *eckey_file;
    const char *dcert_file;
    const char *dkey_file;
    const char *protocols;   /* Postfix protocol list */
    const char *grade;       /* "high" or "medium" */
    const char *high_list;   /* OpenSSL list for "high" */
    const char *medium_list; /* OpenSSL list for "medium" */
    const char *exclusions;  /* ciphers to leave out */
    const char *groups;      /* key exchange groups ("X25519:prime256v1"); "" = library default */
    int server_preference;   /* the server's cipher order wins */
} TLS_SERVER_PARAMS;

/* tls_server_has_cert - the parameters name at least one certificate */
int tls_server_has_cert(const TLS_SERVER_PARAMS *p);

/* tls_server_ctx_new - the context; NULL with the reason in why (the OpenSSL
   error queue is logged and cleared). SSL_CTX_free it. */
SSL_CTX *tls_server_ctx_new(const TLS_SERVER_PARAMS *p, VSTR *why);

/* tls_log_errors - log and clear OpenSSL's error queue ("TLS library problem: ...") */
void tls_log_errors(void);

/* tls_log_error_code - log one OpenSSL error code the same way */
void tls_log_error_code(unsigned long code);

#endif
