/*
 * tls_info - what was negotiated on a TLS connection, in the words
 * Postfix logs and puts into Received: headers: protocol, cipher and its
 * bits, and for TLS 1.3 the key exchange group and the signatures
 * ("key-exchange X25519 server-signature RSA-PSS (2048 bits)
 * server-digest SHA256").
 */
#ifndef POSTERN_TLS_INFO_H
#define POSTERN_TLS_INFO_H

#include <openssl/ssl.h>

#include "util/vstr.h"

#define TLS_INFO_NAME_MAX 64 /* any one algorithm, curve or protocol name */

typedef struct TLS_INFO {
    char protocol[TLS_INFO_NAME_MAX]; /* "TLSv1.3" */
    char cipher[TLS_INFO_NAME_MAX];   /* "TLS_AES_256_GCM_SHA384" */
    int cipher_usebits;
    int cipher_algbits;
    /* TLS 1.3 only (empty / 0 otherwise), as Postfix */
    char kex_name[TLS_INFO_NAME_MAX];      /* "X25519", "ECDHE", "DHE" */
    char kex_curve[TLS_INFO_NAME_MAX];     /* "prime256v1" with ECDHE */
    int kex_bits;                          /* with DHE */
    char srvr_sig_name[TLS_INFO_NAME_MAX]; /* "RSA-PSS", "ECDSA" */
    char srvr_sig_curve[TLS_INFO_NAME_MAX];
    int srvr_sig_bits;
    char srvr_sig_dgst[TLS_INFO_NAME_MAX]; /* "SHA256" */
    int peer_cert;                         /* the peer presented a certificate */
} TLS_INFO;

/* tls_info_get - fill info from an SSL whose handshake completed */
void tls_info_get(SSL *ssl, TLS_INFO *info);

/* tls_info_details - append " key-exchange ... server-signature ... server-digest ..."
   (nothing before TLS 1.3) */
void tls_info_details(const TLS_INFO *info, VSTR *out);

#endif
