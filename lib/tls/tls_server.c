/*
 * tls_server - the server's SSL_CTX: certificates and keys, protocols,
 * ciphers, and the options every Postern TLS server uses (see
 * tls_server.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tls/tls_params.h"
#include "tls/tls_server.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"

#define TLS_ERR_TEXT_MAX 256 /* one formatted OpenSSL error */

/* The private keys and certificates of one PEM file, in file order. */
typedef struct TLS_PEM_OBJ {
    EVP_PKEY *key; /* exactly one of key and cert is set */
    X509 *cert;
} TLS_PEM_OBJ;

typedef struct TLS_PEM_LIST {
    TLS_PEM_OBJ obj[TLS_PEM_OBJECTS_MAX];
    int count;
} TLS_PEM_LIST;

/* One key with its certificate chain, leaf first (pointers into PEM lists). */
typedef struct TLS_PAIR {
    EVP_PKEY *key;
    X509 *chain[TLS_PEM_OBJECTS_MAX];
    int count;
} TLS_PAIR;

/* tls_log_error_code - one OpenSSL error as Postfix logs it */
void tls_log_error_code(unsigned long code)
{
    char buf[TLS_ERR_TEXT_MAX];

    ERR_error_string_n(code, buf, sizeof(buf));
    msg_warn("TLS library problem: %s", buf);
}

/* tls_log_errors - log and clear the error queue, with where and what */
void tls_log_errors(void)
{
    unsigned long code;
    const char *file, *data;
    int line, flags;
    char buf[TLS_ERR_TEXT_MAX];

    while ((code = ERR_get_error_all(&file, &line, NULL, &data, &flags)) != 0) {
        ERR_error_string_n(code, buf, sizeof(buf));
        msg_warn("TLS library problem: %s:%s:%d:%s", buf, file ? file : "", line,
                 (flags & ERR_TXT_STRING) && data ? data : "");
    }
}

/* tls_pem_free - release the objects of a file */
static void tls_pem_free(TLS_PEM_LIST *list)
{
    for (int i = 0; i < list->count; i++) {
        EVP_PKEY_free(list->obj[i].key);
        X509_free(list->obj[i].cert);
    }
    list->count = 0;
}

/* tls_pem_decode - one PEM object into list; 0, or -1 with why */
static int tls_pem_decode(const char *path, const char *name, const char *header,
                          const unsigned char *data, long len, TLS_PEM_LIST *list, VSTR *why)
{
    const unsigned char *p = data;
    TLS_PEM_OBJ *obj = &list->obj[list->count];
    size_t nlen = strlen(name);

    if (strcmp(name, "CERTIFICATE") == 0 || strcmp(name, "X509 CERTIFICATE") == 0) {
        obj->cert = d2i_X509(NULL, &p, len);
    } else if (strcmp(name, "TRUSTED CERTIFICATE") == 0) {
        obj->cert = d2i_X509_AUX(NULL, &p, len);
    } else if (nlen >= 11 && strcmp(name + nlen - 11, "PRIVATE KEY") == 0) {
        /* No pass phrase can be typed at a daemon's start. */
        if (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0 || strstr(header, "ENCRYPTED") != NULL) {
            vstr_sprintf(why, "%s: encrypted private keys are not supported", path);
            return -1;
        }
        obj->key = d2i_AutoPrivateKey(NULL, &p, len);
    } else {
        /* "EC PARAMETERS" and other companions of keys: not needed. */
        return 0;
    }
    if (obj->cert == NULL && obj->key == NULL) {
        vstr_sprintf(why, "%s: cannot decode the %s", path, name);
        return -1;
    }
    if (++list->count >= TLS_PEM_OBJECTS_MAX) {
        vstr_sprintf(why, "%s: more than %d keys and certificates", path, TLS_PEM_OBJECTS_MAX - 1);
        return -1;
    }
    return 0;
}

/* tls_pem_read - every key and certificate of one file, in order; 0, or -1 with why */
static int tls_pem_read(const char *path, TLS_PEM_LIST *list, VSTR *why)
{
    struct stat st;
    BIO *bio;
    int fd, ret = 0;

    list->count = 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        vstr_sprintf(why, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > TLS_PEM_FILE_MAX) {
        vstr_sprintf(why, "%s: not a regular file of at most %d bytes", path, TLS_PEM_FILE_MAX);
        close(fd);
        return -1;
    }
    if ((bio = BIO_new_fd(fd, BIO_CLOSE)) == NULL) {
        close(fd);
        vstr_sprintf(why, "%s: cannot create a BIO", path);
        return -1;
    }
    for (;;) {
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        long len = 0;

        if (PEM_read_bio(bio, &name, &header, &data, &len) != 1) {
            unsigned long err = ERR_peek_last_error();

            /* "no start line" after the last object is the normal end. */
            if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
                ERR_clear_error();
            } else {
                vstr_sprintf(why, "%s: malformed PEM data", path);
                ret = -1;
            }
            break;
        }
        ret = tls_pem_decode(path, name, header, data, len, list, why);
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        if (ret < 0)
            break;
    }
    BIO_free(bio);
    if (ret < 0)
        tls_pem_free(list);
    return ret;
}

/* tls_pair_install - one key and its chain into the context; 0, or -1 with why */
static int tls_pair_install(SSL_CTX *ctx, const TLS_PAIR *pair, const char *where, VSTR *why)
{
    if (pair->key == NULL || pair->count == 0) {
        vstr_sprintf(why, "%s: a private key needs a certificate after it", where);
        return -1;
    }
    /* A mismatch would fail every handshake with this key type. */
    if (X509_check_private_key(pair->chain[0], pair->key) != 1) {
        vstr_sprintf(why, "%s: the private key does not match the certificate", where);
        return -1;
    }
    if (SSL_CTX_use_certificate(ctx, pair->chain[0]) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, pair->key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        vstr_sprintf(why, "%s: the certificate or key is not usable", where);
        return -1;
    }
    SSL_CTX_clear_chain_certs(ctx);
    for (int i = 1; i < pair->count; i++) {
        if (SSL_CTX_add1_chain_cert(ctx, pair->chain[i]) != 1) {
            vstr_sprintf(why, "%s: cannot add a chain certificate", where);
            return -1;
        }
    }
    return 0;
}

/* tls_chain_files - smtpd_tls_chain_files: keys each followed by their chain */
static int tls_chain_files(SSL_CTX *ctx, const char *files, VSTR *why)
{
    ARGV *names = argv_split(files, " \t\r\n,");
    TLS_PEM_LIST *lists = mycalloc(names->argc ? names->argc : 1, sizeof(TLS_PEM_LIST));
    TLS_PAIR pair = {0};
    int ret = -1, installed = 0;

    for (size_t f = 0; f < names->argc; f++) {
        if (tls_pem_read(names->argv[f], &lists[f], why) < 0)
            goto out;
        for (int i = 0; i < lists[f].count; i++) {
            TLS_PEM_OBJ *obj = &lists[f].obj[i];

            if (obj->key) {
                /* A key starts the next pair: the previous one is complete. */
                if (pair.key) {
                    if (tls_pair_install(ctx, &pair, files, why) < 0)
                        goto out;
                    installed++;
                }
                memset(&pair, 0, sizeof(pair));
                pair.key = obj->key;
            } else if (pair.key == NULL) {
                vstr_sprintf(why, "%s: a certificate before any private key", names->argv[f]);
                goto out;
            } else if (pair.count >= TLS_PEM_OBJECTS_MAX) {
                vstr_sprintf(why, "%s: a chain of more than %d certificates", files,
                             TLS_PEM_OBJECTS_MAX);
                goto out;
            } else {
                pair.chain[pair.count++] = obj->cert;
            }
        }
    }
    if (pair.key) {
        if (tls_pair_install(ctx, &pair, files, why) < 0)
            goto out;
        installed++;
    }
    if (installed == 0) {
        vstr_sprintf(why, "%s: no private key", files);
        goto out;
    }
    ret = 0;
out:
    for (size_t f = 0; f < names->argc; f++)
        tls_pem_free(&lists[f]);
    myfree(lists);
    argv_free(names);
    return ret;
}

/* tls_legacy_pair - one of smtpd_tls_cert_file/key_file and friends */
static int tls_legacy_pair(SSL_CTX *ctx, const char *label, const char *cert_file,
                           const char *key_file, VSTR *why)
{
    TLS_PEM_LIST *certs = mycalloc(1, sizeof(*certs));
    TLS_PEM_LIST *keys = mycalloc(1, sizeof(*keys));
    TLS_PAIR pair = {0};
    int ret = -1;

    if (*key_file == 0)
        key_file = cert_file;
    if (tls_pem_read(cert_file, certs, why) < 0 || tls_pem_read(key_file, keys, why) < 0)
        goto out;
    for (int i = 0; i < keys->count && pair.key == NULL; i++)
        pair.key = keys->obj[i].key;
    for (int i = 0; i < certs->count; i++)
        if (certs->obj[i].cert)
            pair.chain[pair.count++] = certs->obj[i].cert;
    if (pair.count == 0) {
        vstr_sprintf(why, "cannot get %s certificate from file \"%s\"", label, cert_file);
        goto out;
    }
    if (pair.key == NULL) {
        vstr_sprintf(why, "cannot get %s private key from file \"%s\"", label, key_file);
        goto out;
    }
    ret = tls_pair_install(ctx, &pair, cert_file, why);
out:
    tls_pem_free(certs);
    tls_pem_free(keys);
    myfree(certs);
    myfree(keys);
    return ret;
}

/* tls_server_has_cert - any certificate named */
int tls_server_has_cert(const TLS_SERVER_PARAMS *p)
{
    return *p->chain_files || *p->cert_file || *p->eccert_file || *p->dcert_file;
}

/* tls_server_certs - the certificates, chain files or legacy pairs */
static int tls_server_certs(SSL_CTX *ctx, const TLS_SERVER_PARAMS *p, VSTR *why)
{
    if (*p->chain_files)
        return tls_chain_files(ctx, p->chain_files, why);
    if (*p->cert_file && tls_legacy_pair(ctx, "RSA", p->cert_file, p->key_file, why) < 0)
        return -1;
    if (*p->eccert_file && tls_legacy_pair(ctx, "ECDSA", p->eccert_file, p->eckey_file, why) < 0)
        return -1;
    if (*p->dcert_file && tls_legacy_pair(ctx, "DSA", p->dcert_file, p->dkey_file, why) < 0)
        return -1;
    return 0;
}

/* tls_server_ctx_new - the server context from the parameters */
SSL_CTX *tls_server_ctx_new(const TLS_SERVER_PARAMS *p, VSTR *why)
{
    TLS_PROTO_RANGE range;
    VSTR *ciphers = vstr_alloc(256);
    SSL_CTX *ctx = NULL;
    uint64_t opts;

    ERR_clear_error();
    if (!tls_server_has_cert(p)) {
        vstr_sprintf(why, "no server certificate configured");
        goto fail;
    }
    if (tls_proto_parse(p->protocols, &range, why) < 0)
        goto fail;
    if (tls_cipher_grade(p->grade, p->high_list, p->medium_list, p->exclusions, ciphers, why) < 0)
        goto fail;
    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
        vstr_sprintf(why, "cannot create a TLS server context");
        goto fail;
    }
    if (SSL_CTX_set_min_proto_version(ctx, range.min) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, range.max) != 1) {
        vstr_sprintf(why, "cannot set the TLS protocol range %s to %s", tls_proto_name(range.min),
                     tls_proto_name(range.max));
        goto fail;
    }
    opts = range.no_opts | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET;
    if (p->server_preference)
        opts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
    SSL_CTX_set_options(ctx, opts);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* Idle sessions should not hold 2 x 16 KB of record buffers each. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (SSL_CTX_set_cipher_list(ctx, vstr_str(ciphers)) != 1) {
        vstr_sprintf(why, "no usable cipher in \"%s\"", vstr_str(ciphers));
        goto fail;
    }
    /* Only when a finite-field DHE suite is configured explicitly. */
    SSL_CTX_set_dh_auto(ctx, 1);
    if (*p->groups && SSL_CTX_set1_groups_list(ctx, p->groups) != 1) {
        msg_warn("cannot use the key exchange groups \"%s\": using the library default", p->groups);
        ERR_clear_error();
    }
    if (tls_server_certs(ctx, p, why) < 0)
        goto fail;
    vstr_free(ciphers);
    ERR_clear_error();
    return ctx;
fail:
    tls_log_errors();
    SSL_CTX_free(ctx);
    vstr_free(ciphers);
    return NULL;
}
