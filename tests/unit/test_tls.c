/*
 * test_tls - lib/tls: Postfix protocol lists and cipher grades (well-formed
 * and malformed), the server context from certificate files (legacy pairs,
 * chain files, and every way those files can be wrong), and what tls_info
 * reports after a real handshake over memory BIOs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls/tls_info.h"
#include "tls/tls_params.h"
#include "tls/tls_server.h"
#include "util/vstr.h"

#define PATH_BUF 512

/*
 * Protocol lists.
 */

static void expect_range(const char *spec, int min, int max, unsigned long no_opts)
{
    TLS_PROTO_RANGE r;
    VSTR *why = vstr_alloc(10);

    if (tls_proto_parse(spec, &r, why) != 0)
        fail_msg("\"%s\": %s", spec, vstr_str(why));
    if (r.min != min || r.max != max || r.no_opts != no_opts)
        fail_msg("\"%s\": got %s..%s no=%#lx", spec, tls_proto_name(r.min), tls_proto_name(r.max),
                 r.no_opts);
    vstr_free(why);
}

static void expect_bad_range(const char *spec, const char *reason)
{
    TLS_PROTO_RANGE r;
    VSTR *why = vstr_alloc(10);

    if (tls_proto_parse(spec, &r, why) == 0)
        fail_msg("\"%s\": accepted", spec);
    if (strstr(vstr_str(why), reason) == NULL)
        fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", spec, vstr_str(why), reason);
    vstr_free(why);
}

static void test_proto_lists(void **state)
{
    (void)state;
    expect_range(">=TLSv1.2", TLS1_2_VERSION, TLS1_3_VERSION, 0);
    expect_range("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", TLS1_2_VERSION, TLS1_3_VERSION, 0);
    expect_range("!SSLv2:!SSLv3 !TLSv1\t!TLSv1.1", TLS1_2_VERSION, TLS1_3_VERSION, 0);
    expect_range("TLSv1.3", TLS1_3_VERSION, TLS1_3_VERSION, 0);
    expect_range("tlsv1.2, TLSV1.3", TLS1_2_VERSION, TLS1_3_VERSION, 0);
    expect_range("<=TLSv1.2", SSL3_VERSION, TLS1_2_VERSION, 0);
    expect_range(">=TLSv1, <=TLSv1.2", TLS1_VERSION, TLS1_2_VERSION, 0);
    expect_range("", SSL3_VERSION, TLS1_3_VERSION, 0);
    expect_range(">=TLSv1", TLS1_VERSION, TLS1_3_VERSION, 0);
    /* A hole inside the range becomes an option. */
    expect_range(">=TLSv1, !TLSv1.1", TLS1_VERSION, TLS1_3_VERSION, SSL_OP_NO_TLSv1_1);
    expect_range("TLSv1 TLSv1.3", TLS1_VERSION, TLS1_3_VERSION,
                 SSL_OP_NO_TLSv1_1 | SSL_OP_NO_TLSv1_2);
    /* SSLv2 is never allowed, whatever the list says. */
    expect_range("SSLv2 SSLv3", SSL3_VERSION, SSL3_VERSION, 0);
    assert_string_equal(tls_proto_name(TLS1_2_VERSION), "TLSv1.2");
    assert_string_equal(tls_proto_name(0x1234), "unknown");
}

static void test_proto_lists_malformed(void **state)
{
    char big[TLS_PARAMS_SPEC_MAX + 20];

    (void)state;
    expect_bad_range("TLSv1.4", "unknown TLS protocol \"TLSv1.4\"");
    expect_bad_range("!", "unknown TLS protocol \"!\"");
    expect_bad_range(">=", "unknown TLS protocol");
    expect_bad_range("=>TLSv1.2", "unknown TLS protocol");
    expect_bad_range(">TLSv1.2", "unknown TLS protocol");
    expect_bad_range("!!TLSv1.2", "unknown TLS protocol");
    expect_bad_range("TLSv1.2\x01", "unknown TLS protocol");
    expect_bad_range("TLS", "unknown TLS protocol");
    expect_bad_range("SSLv2", "no usable TLS protocol");
    expect_bad_range("!TLSv1.2 !TLSv1.3 >=TLSv1.2", "no usable TLS protocol");
    expect_bad_range(">=TLSv1.3 <=TLSv1.2", "no usable TLS protocol");
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    memcpy(big, "TLSv1.2", 7);
    expect_bad_range(big, "longer than");
}

/*
 * Cipher grades.
 */

static void test_cipher_grades(void **state)
{
    VSTR *out = vstr_alloc(10), *why = vstr_alloc(10);

    (void)state;
    assert_int_equal(tls_cipher_grade("high", "H", "M", "", out, why), 0);
    assert_string_equal(vstr_str(out), "H");
    assert_int_equal(tls_cipher_grade("MEDIUM", "H", "M", "", out, why), 0);
    assert_string_equal(vstr_str(out), "M");
    /* The obsolete weak grades never get anything weaker than medium. */
    assert_int_equal(tls_cipher_grade("low", "H", "M", "", out, why), 0);
    assert_string_equal(vstr_str(out), "M");
    assert_int_equal(tls_cipher_grade("export", "H", "M", "", out, why), 0);
    assert_string_equal(vstr_str(out), "M");
    assert_int_equal(
        tls_cipher_grade("medium", "H", "M", "aNULL, RC4 :MD5\tECDHE+AESGCM", out, why), 0);
    assert_string_equal(vstr_str(out), "M:!aNULL:!RC4:!MD5:!ECDHE+AESGCM");
    vstr_free(out);
    vstr_free(why);
}

static void test_cipher_grades_malformed(void **state)
{
    VSTR *out = vstr_alloc(10), *why = vstr_alloc(10);
    static const char *const bad_exclusions[] = {"!RC4",    "+RC4",     "-RC4", "@STRENGTH",
                                                 "RC4;MD5", "RC4 a\"b", "x\x01"};
    char big[TLS_PARAMS_SPEC_MAX + 10];

    (void)state;
    assert_int_equal(tls_cipher_grade("null", "H", "M", "", out, why), -1);
    assert_non_null(strstr(vstr_str(why), "no encryption"));
    assert_int_equal(tls_cipher_grade("superhigh", "H", "M", "", out, why), -1);
    assert_non_null(strstr(vstr_str(why), "unknown cipher grade"));
    assert_int_equal(tls_cipher_grade("", "H", "M", "", out, why), -1);
    assert_int_equal(tls_cipher_grade("high", "", "M", "", out, why), -1);
    assert_non_null(strstr(vstr_str(why), "empty cipher list"));
    assert_int_equal(tls_cipher_grade("high", NULL, "M", "", out, why), -1);
    for (size_t i = 0; i < sizeof(bad_exclusions) / sizeof(bad_exclusions[0]); i++) {
        if (tls_cipher_grade("medium", "H", "M", bad_exclusions[i], out, why) != -1)
            fail_msg("exclusion \"%s\" accepted", bad_exclusions[i]);
    }
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_int_equal(tls_cipher_grade("medium", "H", "M", big, out, why), -1);
    vstr_free(out);
    vstr_free(why);
}

/*
 * Certificate files.
 */

typedef struct PKI {
    char dir[PATH_BUF];
    EVP_PKEY *ca_key, *rsa_key, *ec_key;
    X509 *ca, *rsa, *ec;
} PKI;

static PKI pki;

/* make_cert - a certificate for key, signed by signer (issuer NULL: self-signed) */
static X509 *make_cert(EVP_PKEY *key, EVP_PKEY *signer, X509 *issuer, long serial, const char *cn)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();

    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(x, key);
    assert_true(X509_sign(x, signer, EVP_sha256()) > 0);
    X509_NAME_free(name);
    return x;
}

/* path_of - DIR/name; the last few results stay valid (a rotating set of buffers) */
static const char *path_of(const char *name)
{
    static char bufs[8][2 * PATH_BUF];
    static unsigned next;
    char *buf = bufs[next++ % 8];

    snprintf(buf, sizeof(bufs[0]), "%s/%s", pki.dir, name);
    return buf;
}

/* write_pem - a file of keys (k) and certificates (c), e.g. "kcc" */
static const char *write_pem(const char *name, const char *layout, ...)
{
    FILE *fp = fopen(path_of(name), "w");
    va_list ap;

    assert_non_null(fp);
    va_start(ap, layout);
    for (const char *cp = layout; *cp; cp++) {
        if (*cp == 'k')
            assert_true(
                PEM_write_PrivateKey(fp, va_arg(ap, EVP_PKEY *), NULL, NULL, 0, NULL, NULL) == 1);
        else
            assert_true(PEM_write_X509(fp, va_arg(ap, X509 *)) == 1);
    }
    va_end(ap);
    fclose(fp);
    return path_of(name);
}

static int pki_setup(void **state)
{
    (void)state;
    snprintf(pki.dir, sizeof(pki.dir), "/tmp/test_tls.XXXXXX");
    if (mkdtemp(pki.dir) == NULL)
        return -1;
    pki.ca_key = EVP_RSA_gen(2048);
    pki.rsa_key = EVP_RSA_gen(2048);
    pki.ec_key = EVP_EC_gen("P-256");
    pki.ca = make_cert(pki.ca_key, pki.ca_key, NULL, 1, "Test CA");
    pki.rsa = make_cert(pki.rsa_key, pki.ca_key, pki.ca, 2, "mx.example.com");
    pki.ec = make_cert(pki.ec_key, pki.ca_key, pki.ca, 3, "mx.example.com");
    return 0;
}

static int pki_teardown(void **state)
{
    char cmd[PATH_BUF + 16];

    (void)state;
    X509_free(pki.ca);
    X509_free(pki.rsa);
    X509_free(pki.ec);
    EVP_PKEY_free(pki.ca_key);
    EVP_PKEY_free(pki.rsa_key);
    EVP_PKEY_free(pki.ec_key);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pki.dir);
    return system(cmd) == 0 ? 0 : -1;
}

static TLS_SERVER_PARAMS params(void)
{
    TLS_SERVER_PARAMS p = {
        .chain_files = "",
        .cert_file = "",
        .key_file = "",
        .eccert_file = "",
        .eckey_file = "",
        .dcert_file = "",
        .dkey_file = "",
        .protocols = ">=TLSv1.2",
        .grade = "medium",
        .high_list = TLS_SERVER_HIGH_CIPHERS,
        .medium_list = TLS_SERVER_MEDIUM_CIPHERS,
        .exclusions = "",
        .groups = "X25519:prime256v1",
        .server_preference = 1,
    };
    return p;
}

/* has_cert - the context holds a certificate of this key type, with n chain certs */
static int has_cert(SSL_CTX *ctx, X509 *want, int chain)
{
    STACK_OF(X509) *sk = NULL;

    if (SSL_CTX_select_current_cert(ctx, want) != 1)
        return 0;
    if (SSL_CTX_get0_chain_certs(ctx, &sk) != 1)
        return 0;
    return (sk ? sk_X509_num(sk) : 0) == chain;
}

static SSL_CTX *ctx_ok(const TLS_SERVER_PARAMS *p)
{
    VSTR *why = vstr_alloc(10);
    SSL_CTX *ctx = tls_server_ctx_new(p, why);

    if (ctx == NULL)
        fail_msg("tls_server_ctx_new: %s", vstr_str(why));
    vstr_free(why);
    return ctx;
}

static void ctx_bad(const TLS_SERVER_PARAMS *p, const char *reason)
{
    VSTR *why = vstr_alloc(10);
    SSL_CTX *ctx = tls_server_ctx_new(p, why);

    if (ctx != NULL)
        fail_msg("accepted; want \"%s\"", reason);
    if (strstr(vstr_str(why), reason) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\"", vstr_str(why), reason);
    assert_int_equal(ERR_peek_error(), 0);
    vstr_free(why);
}

static void test_legacy_pairs(void **state)
{
    TLS_SERVER_PARAMS p = params();
    char rsa_cert[PATH_BUF], rsa_key[PATH_BUF], ec_both[PATH_BUF];
    SSL_CTX *ctx;

    (void)state;
    snprintf(rsa_cert, sizeof(rsa_cert), "%s", write_pem("rsa.crt", "cc", pki.rsa, pki.ca));
    snprintf(rsa_key, sizeof(rsa_key), "%s", write_pem("rsa.key", "k", pki.rsa_key));
    /* An empty key file: the key is in the certificate file (after it here). */
    snprintf(ec_both, sizeof(ec_both), "%s", write_pem("ec.pem", "ck", pki.ec, pki.ec_key));
    p.cert_file = rsa_cert;
    p.key_file = rsa_key;
    p.eccert_file = ec_both;
    assert_true(tls_server_has_cert(&p));
    ctx = ctx_ok(&p);
    assert_true(has_cert(ctx, pki.rsa, 1));
    assert_true(has_cert(ctx, pki.ec, 0));
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_COMPRESSION);
    assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);
    assert_true(SSL_CTX_get_options(ctx) & SSL_OP_CIPHER_SERVER_PREFERENCE);
    assert_int_equal(SSL_CTX_get_session_cache_mode(ctx), SSL_SESS_CACHE_OFF);
    SSL_CTX_free(ctx);
}

static void test_chain_files(void **state)
{
    TLS_SERVER_PARAMS p = params();
    char files[3 * PATH_BUF];
    SSL_CTX *ctx;

    (void)state;
    /* One file with key, leaf and CA; then a key file and its chain file. */
    snprintf(files, sizeof(files), "%s, ",
             write_pem("c1.pem", "kcc", pki.rsa_key, pki.rsa, pki.ca));
    snprintf(files + strlen(files), sizeof(files) - strlen(files), "%s ",
             write_pem("c2.key", "k", pki.ec_key));
    snprintf(files + strlen(files), sizeof(files) - strlen(files), "%s",
             write_pem("c2.crt", "c", pki.ec));
    p.chain_files = files;
    ctx = ctx_ok(&p);
    assert_true(has_cert(ctx, pki.rsa, 1));
    assert_true(has_cert(ctx, pki.ec, 0));
    SSL_CTX_free(ctx);
    /* Both pairs in one file. */
    p.chain_files = write_pem("c3.pem", "kcckc", pki.rsa_key, pki.rsa, pki.ca, pki.ec_key, pki.ec);
    ctx = ctx_ok(&p);
    assert_true(has_cert(ctx, pki.rsa, 1));
    assert_true(has_cert(ctx, pki.ec, 0));
    SSL_CTX_free(ctx);
}

static void test_bad_certificate_files(void **state)
{
    TLS_SERVER_PARAMS p = params();
    FILE *fp;

    (void)state;
    ctx_bad(&p, "no server certificate configured");

    p.chain_files = write_pem("b1.pem", "ck", pki.rsa, pki.rsa_key);
    ctx_bad(&p, "a certificate before any private key");
    p.chain_files = write_pem("b2.pem", "kkc", pki.rsa_key, pki.ec_key, pki.ec);
    ctx_bad(&p, "a private key needs a certificate after it");
    p.chain_files = write_pem("b3.pem", "kc", pki.rsa_key, pki.ec);
    ctx_bad(&p, "does not match");
    p.chain_files = write_pem("b4.pem", "c", pki.rsa);
    ctx_bad(&p, "a certificate before any private key");
    p.chain_files = path_of("no-such-file.pem");
    ctx_bad(&p, "cannot open");
    p.chain_files = pki.dir;
    ctx_bad(&p, "not a regular file");

    fp = fopen(path_of("garbage.pem"), "w");
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n-----END CERTIFICATE-----\n", fp);
    fclose(fp);
    p.chain_files = path_of("garbage.pem");
    ctx_bad(&p, "garbage.pem");

    fp = fopen(path_of("empty.pem"), "w");
    fclose(fp);
    p.chain_files = path_of("empty.pem");
    ctx_bad(&p, "no private key");

    fp = fopen(path_of("huge.pem"), "w");
    for (int i = 0; i <= TLS_PEM_FILE_MAX / 64; i++)
        fputs("###############################################################\n", fp);
    fclose(fp);
    p.chain_files = path_of("huge.pem");
    ctx_bad(&p, "at most");

    fp = fopen(path_of("enc.pem"), "w");
    assert_true(PEM_write_PKCS8PrivateKey(fp, pki.rsa_key, EVP_aes_128_cbc(), NULL, 0, NULL,
                                          (void *)"secret") == 1);
    PEM_write_X509(fp, pki.rsa);
    fclose(fp);
    p.chain_files = path_of("enc.pem");
    ctx_bad(&p, "encrypted private keys are not supported");

    /* Legacy pairs: a key that does not match, a key file without a key. */
    p = params();
    p.cert_file = write_pem("l1.crt", "c", pki.rsa);
    p.key_file = write_pem("l1.key", "k", pki.ca_key);
    ctx_bad(&p, "does not match");
    p.key_file = write_pem("l2.key", "c", pki.ca);
    ctx_bad(&p, "cannot get RSA private key");
    p.cert_file = write_pem("l3.crt", "k", pki.rsa_key);
    p.key_file = "";
    ctx_bad(&p, "cannot get RSA certificate");

    /* Protocols and grades are checked before anything is loaded. */
    p = params();
    p.cert_file = write_pem("ok.pem", "kc", pki.rsa_key, pki.rsa);
    p.protocols = "TLSv9";
    ctx_bad(&p, "unknown TLS protocol");
    p.protocols = ">=TLSv1.2";
    p.grade = "null";
    ctx_bad(&p, "no encryption");
    p.grade = "medium";
    p.medium_list = "NO-SUCH-CIPHER";
    ctx_bad(&p, "no usable cipher");
}

/*
 * A handshake over memory BIOs, and what tls_info makes of it.
 */

static void handshake(SSL *client, SSL *server)
{
    for (int i = 0; i < 20; i++) {
        int rc = SSL_do_handshake(client);
        int rs = SSL_do_handshake(server);

        if (rc == 1 && rs == 1)
            return;
    }
    ERR_print_errors_fp(stderr);
    fail_msg("handshake did not complete");
}

static SSL *client_for(SSL_CTX **cctx, int version, const char *ciphers, const char *sigalgs)
{
    SSL *ssl;

    *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(*cctx, version);
    SSL_CTX_set_max_proto_version(*cctx, version);
    if (ciphers)
        assert_int_equal(SSL_CTX_set_cipher_list(*cctx, ciphers), 1);
    if (sigalgs)
        assert_int_equal(SSL_CTX_set1_sigalgs_list(*cctx, sigalgs), 1);
    ssl = SSL_new(*cctx);
    SSL_set_connect_state(ssl);
    return ssl;
}

static void run_handshake(int version, const char *ciphers, const char *sigalgs, TLS_INFO *info)
{
    TLS_SERVER_PARAMS p = params();
    SSL_CTX *sctx, *cctx;
    SSL *server, *client;
    BIO *b1, *b2;
    char rsa[PATH_BUF], ec[PATH_BUF];

    snprintf(rsa, sizeof(rsa), "%s", write_pem("h-rsa.pem", "kc", pki.rsa_key, pki.rsa));
    snprintf(ec, sizeof(ec), "%s", write_pem("h-ec.pem", "kc", pki.ec_key, pki.ec));
    p.cert_file = rsa;
    p.eccert_file = ec;
    sctx = ctx_ok(&p);
    server = SSL_new(sctx);
    SSL_set_accept_state(server);
    client = client_for(&cctx, version, ciphers, sigalgs);
    assert_int_equal(BIO_new_bio_pair(&b1, 0, &b2, 0), 1);
    SSL_set_bio(client, b1, b1);
    SSL_set_bio(server, b2, b2);
    handshake(client, server);
    tls_info_get(server, info);
    SSL_free(client);
    SSL_free(server);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static void test_info_tls13(void **state)
{
    TLS_INFO info;
    VSTR *out = vstr_alloc(10);

    (void)state;
    run_handshake(TLS1_3_VERSION, NULL, "ecdsa_secp256r1_sha256", &info);
    assert_string_equal(info.protocol, "TLSv1.3");
    assert_int_equal(info.cipher_algbits, 256);
    assert_string_equal(info.kex_name, "X25519");
    tls_info_details(&info, out);
    assert_string_equal(vstr_str(out), " key-exchange X25519 server-signature ECDSA (prime256v1) "
                                       "server-digest SHA256");
    run_handshake(TLS1_3_VERSION, NULL, "rsa_pss_rsae_sha256", &info);
    vstr_reset(out);
    tls_info_details(&info, out);
    assert_string_equal(vstr_str(out),
                        " key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest "
                        "SHA256");
    assert_int_equal(info.peer_cert, 0);
    vstr_free(out);
}

static void test_info_tls12(void **state)
{
    TLS_INFO info;
    VSTR *out = vstr_alloc(10);

    (void)state;
    run_handshake(TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256", NULL, &info);
    assert_string_equal(info.protocol, "TLSv1.2");
    assert_string_equal(info.cipher, "ECDHE-RSA-AES128-GCM-SHA256");
    assert_int_equal(info.cipher_usebits, 128);
    /* Postfix adds no details before TLS 1.3. */
    tls_info_details(&info, out);
    assert_string_equal(vstr_str(out), "");
    vstr_free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_lists),
        cmocka_unit_test(test_proto_lists_malformed),
        cmocka_unit_test(test_cipher_grades),
        cmocka_unit_test(test_cipher_grades_malformed),
        cmocka_unit_test(test_legacy_pairs),
        cmocka_unit_test(test_chain_files),
        cmocka_unit_test(test_bad_certificate_files),
        cmocka_unit_test(test_info_tls13),
        cmocka_unit_test(test_info_tls12),
    };

    return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
