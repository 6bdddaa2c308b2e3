/*
 * tls_info - negotiated TLS parameters, named as Postfix names them.
 */
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "tls/tls_info.h"

/* tls_info_copy - a bounded copy of a library-supplied name ("" for NULL) */
static void tls_info_copy(char *dst, const char *src)
{
    snprintf(dst, TLS_INFO_NAME_MAX, "%s", src ? src : "");
}

/* tls_info_group - the curve or group of an EC key ("prime256v1") */
static void tls_info_group(EVP_PKEY *pkey, char *dst)
{
    size_t len = 0;

    dst[0] = 0;
    if (EVP_PKEY_get_group_name(pkey, dst, TLS_INFO_NAME_MAX, &len) != 1)
        dst[0] = 0;
}

/* tls_info_kex - the key exchange of TLS 1.3: the peer's key share */
static void tls_info_kex(SSL *ssl, TLS_INFO *info)
{
    EVP_PKEY *pkey = NULL;

    if (SSL_get_peer_tmp_key(ssl, &pkey) != 1 || pkey == NULL)
        return;
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_DH:
        tls_info_copy(info->kex_name, "DHE");
        info->kex_bits = EVP_PKEY_get_bits(pkey);
        break;
    case EVP_PKEY_EC:
        tls_info_copy(info->kex_name, "ECDHE");
        tls_info_group(pkey, info->kex_curve);
        break;
    default: tls_info_copy(info->kex_name, OBJ_nid2sn(EVP_PKEY_get_base_id(pkey))); break;
    }
    EVP_PKEY_free(pkey);
}

/* tls_info_local_sig - our certificate's key type and the digest of our signature */
static void tls_info_local_sig(SSL *ssl, TLS_INFO *info)
{
    X509 *cert = SSL_get_certificate(ssl);
    EVP_PKEY *pkey = cert ? X509_get0_pubkey(cert) : NULL;
    int nid;

    if (pkey == NULL)
        return;
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
        /* TLS 1.3 signs with RSA only in PSS mode. */
        tls_info_copy(info->srvr_sig_name, "RSA-PSS");
        info->srvr_sig_bits = EVP_PKEY_get_bits(pkey);
        break;
    case EVP_PKEY_EC:
        tls_info_copy(info->srvr_sig_name, "ECDSA");
        tls_info_group(pkey, info->srvr_sig_curve);
        break;
    default: tls_info_copy(info->srvr_sig_name, OBJ_nid2sn(EVP_PKEY_get_base_id(pkey))); break;
    }
    /* Ed25519 and Ed448 have no separate digest: the library answers NID_undef. */
    if (SSL_get_signature_nid(ssl, &nid) == 1 && nid != NID_undef)
        tls_info_copy(info->srvr_sig_dgst, OBJ_nid2sn(nid));
}

/* tls_info_get - what the handshake settled */
void tls_info_get(SSL *ssl, TLS_INFO *info)
{
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    X509 *peer;

    memset(info, 0, sizeof(*info));
    tls_info_copy(info->protocol, SSL_get_version(ssl));
    tls_info_copy(info->cipher, cipher ? SSL_CIPHER_get_name(cipher) : "unknown");
    if (cipher)
        info->cipher_usebits = SSL_CIPHER_get_bits(cipher, &info->cipher_algbits);
    if ((peer = SSL_get1_peer_certificate(ssl)) != NULL) {
        info->peer_cert = 1;
        X509_free(peer);
    }
    /* Postfix adds these details for TLS 1.3 only. */
    if (SSL_version(ssl) < TLS1_3_VERSION)
        return;
    tls_info_kex(ssl, info);
    if (SSL_is_server(ssl))
        tls_info_local_sig(ssl, info);
}

/* tls_info_details - the TLS 1.3 details, in the order Postfix logs them */
void tls_info_details(const TLS_INFO *info, VSTR *out)
{
    if (info->kex_name[0]) {
        vstr_sprintf_append(out, " key-exchange %s", info->kex_name);
        if (info->kex_curve[0])
            vstr_sprintf_append(out, " (%s)", info->kex_curve);
        else if (info->kex_bits > 0)
            vstr_sprintf_append(out, " (%d bits)", info->kex_bits);
    }
    if (info->srvr_sig_name[0]) {
        vstr_sprintf_append(out, " server-signature %s", info->srvr_sig_name);
        if (info->srvr_sig_curve[0])
            vstr_sprintf_append(out, " (%s)", info->srvr_sig_curve);
        else if (info->srvr_sig_bits > 0)
            vstr_sprintf_append(out, " (%d bits)", info->srvr_sig_bits);
        if (info->srvr_sig_dgst[0])
            vstr_sprintf_append(out, " server-digest %s", info->srvr_sig_dgst);
    }
}
