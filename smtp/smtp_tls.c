/*
 * smtp_tls - the SMTP client's TLS (RFC 3207 STARTTLS) with OpenSSL 3:
 * the process's SSL_CTX, the per-destination policy (smtp_tls_security_level
 * and smtp_tls_policy_maps), the handshake, certificate checks by level,
 * and Postfix's log line.
 *
 * Levels: none (never), may (opportunistic: STARTTLS when offered, any
 * certificate), encrypt (TLS required, any certificate), verify (TLS,
 * a chain trusted through smtp_tls_CAfile / smtp_tls_CApath, and a name
 * from smtp_tls_verify_cert_match, by default the MX host name), secure
 * (the same with smtp_tls_secure_cert_match, by default the nexthop
 * domain and its subdomains). Protocols: TLS 1.2 and 1.3 only, narrowed
 * by smtp_tls_protocols (may) or smtp_tls_mandatory_protocols (encrypt
 * and up). The certificate is always checked after the handshake; the
 * outcome decides what is logged (Verified, Trusted, Untrusted,
 * Anonymous) and, at verify and secure, whether the session is used at
 * all: a failed check closes it before any envelope is sent.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mail/dict.h"
#include "mail/mail_conf.h"
#include "smtp.h"
#include "tls/tls_params.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

static SSL_CTX *smtp_tls_ctx;
static SMTP_MAPS *smtp_tls_maps;

/* smtp_tls_level_parse - a level name; -1 when unknown */
static int smtp_tls_level_parse(const char *name)
{
    static const char *const names[] = {"none", "may", "encrypt", "verify", "secure"};

    if (*name == 0)
        return SMTP_TLS_NONE;
    for (int i = 0; i < 5; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    /* Postfix's levels this client does not implement map to their
       nearest safe meaning: fingerprint and dane need what we lack. */
    if (strcasecmp(name, "dane") == 0 || strcasecmp(name, "dane-only") == 0 ||
        strcasecmp(name, "fingerprint") == 0)
        return SMTP_TLS_SECURE;
    return -1;
}

/* smtp_tls_level_name - its name */
const char *smtp_tls_level_name(enum smtp_tls_level level)
{
    static const char *const names[] = {"none", "may", "encrypt", "verify", "secure"};

    return names[level];
}

/* smtp_tls_protocols - the allowed range from a Postfix protocol list
   (lib/tls), limited to TLS 1.2 and 1.3; 0, or -1 with why */
static int smtp_tls_protocols(const char *spec, TLS_PROTO_RANGE *range, VSTR *why)
{
    if (tls_proto_parse(spec, range, why) < 0)
        return -1;
    /* This client never speaks anything older than TLS 1.2. */
    if (range->max < TLS1_2_VERSION) {
        vstr_sprintf(why, "no protocol from TLSv1.2 up in \"%s\"", spec);
        return -1;
    }
    if (range->min < TLS1_2_VERSION)
        range->min = TLS1_2_VERSION;
    return 0;
}

/* smtp_tls_cipherlist - the OpenSSL list for a Postfix cipher grade */
static const char *smtp_tls_cipherlist(const char *grade)
{
    if (strcasecmp(grade, "high") == 0)
        return var_str("tls_high_cipherlist");
    return var_str("tls_medium_cipherlist");
}

/* smtp_tls_init - the SSL_CTX (as root: key files), and the policy maps */
int smtp_tls_init(VSTR *why)
{
    const char *cafile = var_str("smtp_tls_CAfile");
    const char *capath = var_str("smtp_tls_CApath");
    const char *cert = var_str("smtp_tls_cert_file");
    const char *key = var_str("smtp_tls_key_file");
    const char *maps = var_str("smtp_tls_policy_maps");

    if ((smtp_tls_ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
        vstr_sprintf(why, "cannot create a TLS context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(smtp_tls_ctx, TLS1_2_VERSION);
    /* No compression (CRIME), no renegotiation by the peer. */
    SSL_CTX_set_options(smtp_tls_ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_verify(smtp_tls_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_verify_depth(smtp_tls_ctx, (int)var_int("smtp_tls_scert_verifydepth"));
    if ((*cafile || *capath) && SSL_CTX_load_verify_locations(smtp_tls_ctx, *cafile ? cafile : NULL,
                                                              *capath ? capath : NULL) != 1) {
        vstr_sprintf(why,
                     "cannot load the CA certificates from smtp_tls_CAfile=%s "
                     "smtp_tls_CApath=%s",
                     cafile, capath);
        goto fail;
    }
    if (var_bool("tls_append_default_CA"))
        SSL_CTX_set_default_verify_paths(smtp_tls_ctx);
    if (*cert) {
        if (SSL_CTX_use_certificate_chain_file(smtp_tls_ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(smtp_tls_ctx, *key ? key : cert, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(smtp_tls_ctx) != 1) {
            vstr_sprintf(why, "cannot load the client certificate %s or its key %s", cert, key);
            goto fail;
        }
    }
    if ((smtp_tls_maps = smtp_maps_open("smtp_tls_policy_maps", maps, why)) == NULL)
        goto fail;
    ERR_clear_error();
    return 0;
fail:
    ERR_clear_error();
    SSL_CTX_free(smtp_tls_ctx);
    smtp_tls_ctx = NULL;
    return -1;
}

/* smtp_tls_policy_free - release */
void smtp_tls_policy_free(SMTP_TLS_POLICY *pol)
{
    myfree(pol->match);
    pol->match = NULL;
}

/* smtp_tls_policy_lookup - one key in the policy maps; 1 found, 0 not, -1 error */
static int smtp_tls_policy_lookup(const char *key, VSTR *value, VSTR *why)
{
    int error;
    const char *v = smtp_maps_find(smtp_tls_maps, key, &error);

    if (v != NULL) {
        vstr_cpy(value, v);
        return 1;
    }
    if (error < 0)
        vstr_sprintf(why, "smtp_tls_policy_maps: lookup error for %s", key);
    return error;
}

/* smtp_tls_policy - the policy for this nexthop */
int smtp_tls_policy(const char *nexthop, const SMTP_NEXTHOP *nh, SMTP_TLS_POLICY *pol, VSTR *why)
{
    VSTR *value = vstr_alloc(64);
    int found = 0, level;
    ARGV *words;

    pol->level = smtp_conf.tls_level;
    pol->match = NULL;
    /* Keys: the nexthop as written ("[host]:port", "domain"), then the bare
       host or domain, as Postfix's smtp_tls_policy_maps. */
    if ((found = smtp_tls_policy_lookup(nexthop, value, why)) == 0 && !nh->is_unix &&
        strcmp(nexthop, nh->host) != 0)
        found = smtp_tls_policy_lookup(nh->host, value, why);
    if (found < 0) {
        vstr_free(value);
        return -1;
    }
    if (found) {
        words = argv_split(vstr_str(value), " \t,");
        if (words->argc == 0 || (level = smtp_tls_level_parse(words->argv[0])) < 0) {
            msg_warn("smtp_tls_policy_maps: bad TLS level for %s: \"%s\" -- using \"encrypt\"",
                     nexthop, vstr_str(value));
            level = SMTP_TLS_ENCRYPT;
        }
        pol->level = level;
        for (size_t i = 1; i < words->argc; i++)
            if (strncasecmp(words->argv[i], "match=", 6) == 0)
                pol->match = mystrdup(words->argv[i] + 6);
        argv_free(words);
    }
    vstr_free(value);
    return 0;
}

/* smtp_tls_name_match - does the certificate match one of the names */
static int smtp_tls_name_match(X509 *cert, const char *list, const SMTP_REQ *req,
                               const SMTP_SESSION *sess)
{
    ARGV *names = argv_split(list, ":, \t");
    int ok = 0;

    for (size_t i = 0; i < names->argc && !ok; i++) {
        const char *n = names->argv[i];
        VSTR *name = vstr_alloc(64);

        if (strcasecmp(n, "hostname") == 0)
            vstr_cpy(name, sess->host);
        else if (strcasecmp(n, "nexthop") == 0)
            vstr_cpy(name, req->nh.host);
        else if (strcasecmp(n, "dot-nexthop") == 0)
            vstr_sprintf(name, ".%s", req->nh.host);
        else
            vstr_cpy(name, n);
        /* An address literal is matched against the IP SANs. */
        if (X509_check_ip_asc(cert, vstr_str(name), 0) == 1 ||
            X509_check_host(cert, vstr_str(name), 0, 0, NULL) == 1)
            ok = 1;
        vstr_free(name);
    }
    argv_free(names);
    return ok;
}

/* smtp_tls_start - handshake, checks, log line */
int smtp_tls_start(SMTP_REQ *req, SMTP_SESSION *sess, char *dsn, size_t dsn_size, VSTR *why)
{
    enum smtp_tls_level level = req->tls.level;
    const char *protos =
        var_str(level >= SMTP_TLS_ENCRYPT ? "smtp_tls_mandatory_protocols" : "smtp_tls_protocols");
    const char *grade =
        var_str(level >= SMTP_TLS_ENCRYPT ? "smtp_tls_mandatory_ciphers" : "smtp_tls_ciphers");
    const char *sni = smtp_conf.tls_servername;
    X509 *cert = NULL;
    SSL *ssl;
    TLS_PROTO_RANGE range;
    int io, trusted = 0, matched = 0, bits, alg_bits;
    const char *trust;

    snprintf(dsn, dsn_size, "4.7.5");
    if (smtp_tls_ctx == NULL || (ssl = SSL_new(smtp_tls_ctx)) == NULL) {
        vstr_sprintf(why, "Cannot start TLS: no TLS context");
        return -1;
    }
    if (smtp_tls_protocols(protos, &range, why) < 0) {
        SSL_free(ssl);
        msg_warn("%s: %s", level >= SMTP_TLS_ENCRYPT ? "smtp_tls_mandatory_protocols"
                                                     : "smtp_tls_protocols",
                 vstr_str(why));
        vstr_sprintf(why, "Cannot start TLS: no usable protocol in \"%s\"", protos);
        return -1;
    }
    SSL_set_min_proto_version(ssl, range.min);
    SSL_set_max_proto_version(ssl, range.max);
    SSL_set_options(ssl, range.no_opts);
    if (SSL_set_cipher_list(ssl, smtp_tls_cipherlist(grade)) != 1)
        ERR_clear_error(); /* keep OpenSSL's defaults */
    /* SNI (RFC 6066): smtp_tls_servername = hostname, nexthop, or a name. */
    if (*sni) {
        const char *name = strcasecmp(sni, "hostname") == 0  ? sess->host
                           : strcasecmp(sni, "nexthop") == 0 ? req->nh.host
                                                             : sni;

        if (dns_hostname_valid(name) && !req->nh.is_addr)
            SSL_set_tlsext_host_name(ssl, name);
    }
    if ((io = smtp_stream_tls_connect(sess->stream, ssl, smtp_conf.starttls_timeout)) !=
        SMTP_IO_OK) {
        vstr_sprintf(why, "Cannot start TLS: %s",
                     io == SMTP_IO_TIMEOUT ? "handshake timeout" : vstr_str(sess->stream->why));
        ERR_clear_error();
        return -1;
    }
    if ((cert = SSL_get1_peer_certificate(ssl)) != NULL) {
        trusted = SSL_get_verify_result(ssl) == X509_V_OK;
        if (trusted && level >= SMTP_TLS_VERIFY) {
            const char *match = req->tls.match             ? req->tls.match
                                : level == SMTP_TLS_SECURE ? smtp_conf.tls_secure_match
                                                           : smtp_conf.tls_verify_match;

            matched = smtp_tls_name_match(cert, match, req, sess);
        }
    }
    trust = matched ? "Verified" : trusted ? "Trusted" : cert ? "Untrusted" : "Anonymous";
    bits = SSL_get_cipher_bits(ssl, &alg_bits);
    msg_info("%s TLS connection established to %s: %s with cipher %s (%d/%d bits)", trust,
             sess->relay, SSL_get_version(ssl), SSL_get_cipher_name(ssl), bits, alg_bits);
    X509_free(cert);
    if (level >= SMTP_TLS_VERIFY && !trusted) {
        vstr_sprintf(why, "Server certificate not trusted");
        return -1;
    }
    if (level >= SMTP_TLS_VERIFY && !matched) {
        vstr_sprintf(why, "Server certificate not verified");
        return -1;
    }
    return 0;
}
