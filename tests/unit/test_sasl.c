/*
 * test_sasl - unit tests for the message layer of lib/sasl: strict base64,
 * constant-time compare, UTF-8 and identity checks, the PLAIN, LOGIN,
 * CRAM-MD5 (RFC 2195 example) and SCRAM-SHA-256 (RFC 7677 test vector)
 * parsers and computations, Dovecot's SCRAM secret form, the security
 * options and the mechanism filter. Every parser also gets malformed input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sasl/sasl_impl.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

static char test_dir[256];

/* decode - strict decode of a C string; the result or NULL when refused */
static VSTR *decode(const char *b64)
{
    VSTR *out = vstr_alloc(16);

    if (sasl_b64_decode(b64, strlen(b64), out) < 0) {
        assert_int_equal(vstr_len(out), 0);
        vstr_free(out);
        return NULL;
    }
    return out;
}

/* ---- base64 ---- */

static void test_b64_good(void **unused)
{
    VSTR *v;

    (void)unused;
    v = decode("");
    assert_non_null(v);
    assert_int_equal(vstr_len(v), 0);
    vstr_free(v);

    v = decode("AGFsaWNlAHNlY3JldA==");
    assert_non_null(v);
    assert_int_equal(vstr_len(v), 13);
    assert_memory_equal(vstr_str(v), "\0alice\0secret", 13);
    vstr_free(v);

    v = decode("YWI="); /* "ab": pad bits zero */
    assert_non_null(v);
    assert_string_equal(vstr_str(v), "ab");
    vstr_free(v);

    v = decode("VXNlcm5hbWU6");
    assert_non_null(v);
    assert_string_equal(vstr_str(v), "Username:");
    vstr_free(v);

    /* Appends to what is there; a refused input leaves it untouched. */
    v = vstr_alloc(8);
    vstr_cpy(v, "x");
    assert_int_equal(sasl_b64_decode("eQ==", 4, v), 0);
    assert_string_equal(vstr_str(v), "xy");
    assert_int_equal(sasl_b64_decode("eQ=", 3, v), -1);
    assert_string_equal(vstr_str(v), "xy");
    vstr_free(v);
}

static void test_b64_malformed(void **unused)
{
    static const char *const bad[] = {
        "abc", /* not a multiple of four */
        "a",        "ab=c",     "a===",     "====",
        "=AAA",     "ab==cd==",                     /* padding inside */
        "YW Jj",                                    /* white space */
        "YWJj\n",   "YWJj\r\n", " YWJj",    "YR==", /* non-zero pad bits */
        "YWJ=",                                     /* non-zero pad bits */
        "YW-j",                                     /* base64url alphabet */
        "YW_j",     "YW\x80j",  "YWJj====", "YWJjZA=",
        "YWJjZA=a", "Y\0Jj", /* embedded NUL (length 4 given below) */
    };

    (void)unused;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = (i == sizeof(bad) / sizeof(bad[0]) - 1) ? 4 : strlen(bad[i]);
        VSTR *out = vstr_alloc(8);

        if (sasl_b64_decode(bad[i], len, out) == 0)
            fail_msg("accepted malformed base64 #%zu \"%s\"", i, bad[i]);
        assert_int_equal(vstr_len(out), 0);
        assert_false(sasl_b64_valid(bad[i], len));
        vstr_free(out);
    }
}

static void test_b64_roundtrip(void **unused)
{
    unsigned char data[70];

    (void)unused;
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(data); len++) {
        VSTR *enc = vstr_alloc(8);
        VSTR *dec = vstr_alloc(8);

        sasl_b64_encode(data, len, enc);
        assert_int_equal(vstr_len(enc), (len + 2) / 3 * 4);
        assert_int_equal(sasl_b64_decode(vstr_str(enc), vstr_len(enc), dec), 0);
        assert_int_equal(vstr_len(dec), len);
        assert_memory_equal(vstr_str(dec), data, len);
        vstr_free(enc);
        vstr_free(dec);
    }
    /* A limit on the output buffer does not cut a decode short. */
    {
        VSTR *dec = vstr_alloc(4);

        vstr_set_limit(dec, 2);
        assert_int_equal(sasl_b64_decode("YWJjZGVm", 8, dec), 0);
        assert_string_equal(vstr_str(dec), "abcdef");
        vstr_free(dec);
    }
}

/* ---- checks ---- */

static void test_checks(void **unused)
{
    char long_id[SASL_ID_MAX + 2];

    (void)unused;
    assert_true(sasl_ct_equal("abc", 3, "abc", 3));
    assert_false(sasl_ct_equal("abc", 3, "abd", 3));
    assert_false(sasl_ct_equal("abc", 3, "abcd", 4));
    assert_true(sasl_ct_equal("", 0, "", 0));

    assert_true(sasl_utf8_valid("h\xc3\xa9llo", 6));
    assert_true(sasl_utf8_valid("\xf0\x9f\x98\x80", 4));
    assert_false(sasl_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    assert_false(sasl_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(sasl_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(sasl_utf8_valid("\xe2\x82", 2));         /* truncated */
    assert_false(sasl_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    assert_false(sasl_utf8_valid("\xff", 1));

    assert_true(sasl_id_ok("alice", 5));
    assert_true(sasl_id_ok("alice@example.com", 17));
    assert_true(sasl_id_ok("J\xc3\xb6rg", 5));
    assert_false(sasl_id_ok("", 0));
    assert_false(sasl_id_ok("al\nice", 6));
    assert_false(sasl_id_ok("al\tice", 6));
    assert_false(sasl_id_ok("al\x7f", 3));
    assert_false(sasl_id_ok("a\xc2\x85", 3)); /* C1 NEL */
    assert_false(sasl_id_ok("a\0b", 3));
    memset(long_id, 'a', sizeof(long_id));
    assert_true(sasl_id_ok(long_id, SASL_ID_MAX));
    assert_false(sasl_id_ok(long_id, SASL_ID_MAX + 1));

    {
        char text[] = "a\tb\x01\xff";

        assert_string_equal(sasl_printable(text), "a?b??");
    }
    {
        char text[] = "J\xc3\xb6rg\x1b";

        assert_string_equal(sasl_printable(text), "J\xc3\xb6rg?");
    }
}

/* ---- PLAIN and LOGIN ---- */

/* plain - parse a PLAIN message given with its length */
static int plain(const char *msg, size_t len, const char **z, const char **c, const char **p)
{
    static char buf[2048];
    const char *why = NULL;
    int ret;

    assert_true(len < sizeof(buf));
    memcpy(buf, msg, len);
    buf[len] = 0;
    ret = sasl_plain_parse(buf, len, z, c, p, &why);
    if (ret < 0)
        assert_non_null(why);
    return ret;
}

static void test_plain(void **unused)
{
    const char *z, *c, *p;
    char big[SASL_PASS_MAX + 20];

    (void)unused;
    /* RFC 4616 section 4 examples. */
    assert_int_equal(plain("\0tim\0tanstaaftanstaaf", 21, &z, &c, &p), 0);
    assert_string_equal(z, "");
    assert_string_equal(c, "tim");
    assert_string_equal(p, "tanstaaftanstaaf");
    assert_true(sasl_authzid_ok(z, c));

    assert_int_equal(plain("Ursel\0Kurt\0xipj3plmq", 20, &z, &c, &p), 0);
    assert_string_equal(z, "Ursel");
    assert_string_equal(c, "Kurt");
    assert_string_equal(p, "xipj3plmq");
    assert_false(sasl_authzid_ok(z, c));
    assert_true(sasl_authzid_ok("KURT", "kurt"));

    /* Malformed. */
    assert_int_equal(plain("timtanstaaf", 11, &z, &c, &p), -1);       /* no NUL */
    assert_int_equal(plain("\0timtanstaaf", 12, &z, &c, &p), -1);     /* one NUL */
    assert_int_equal(plain("\0tim\0tan\0staaf", 14, &z, &c, &p), -1); /* NUL in passwd */
    assert_int_equal(plain("\0\0secret", 8, &z, &c, &p), -1);         /* empty authcid */
    assert_int_equal(plain("\0tim\0", 5, &z, &c, &p), -1);            /* empty passwd */
    assert_int_equal(plain("", 0, &z, &c, &p), -1);                   /* empty message */
    assert_int_equal(plain("\0ti\nm\0pw", 9, &z, &c, &p), -1);        /* control char */
    assert_int_equal(plain("\xff\0tim\0pw", 8, &z, &c, &p), -1);      /* bad authzid */
    assert_int_equal(plain("\0t\xc0\xafm\0pw", 8, &z, &c, &p), -1);   /* overlong UTF-8 */
    big[0] = 0;
    big[1] = 'u';
    big[2] = 0;
    memset(big + 3, 'x', SASL_PASS_MAX + 1);
    assert_int_equal(plain(big, 3 + SASL_PASS_MAX + 1, &z, &c, &p), -1); /* overlong passwd */
    assert_int_equal(plain(big, 3 + SASL_PASS_MAX, &z, &c, &p), 0);
}

static void test_login(void **unused)
{
    const char *why;

    (void)unused;
    assert_int_equal(sasl_login_check("alice", 5, 0, &why), 0);
    assert_int_equal(sasl_login_check("secret pw", 9, 1, &why), 0);
    assert_int_equal(sasl_login_check("", 0, 0, &why), -1);
    assert_int_equal(sasl_login_check("", 0, 1, &why), -1);
    assert_int_equal(sasl_login_check("al\0ice", 6, 0, &why), -1);
    assert_int_equal(sasl_login_check("pa\0ss", 5, 1, &why), -1);
    assert_int_equal(sasl_login_check("al\r\nice", 7, 0, &why), -1);
}

/* ---- CRAM-MD5 ---- */

static void test_cram(void **unused)
{
    static const char challenge[] = "<1896.697170952@postoffice.reston.mci.net>";
    static const char response[] = "tim b913a602c7eda7a495b4e6e7334d3890";
    unsigned char digest[SASL_MD5_LEN];
    VSTR *user = vstr_alloc(16);
    VSTR *ch = vstr_alloc(16);
    const char *why;

    (void)unused;
    /* RFC 2195 section 2 example. */
    assert_int_equal(sasl_cram_parse(response, strlen(response), user, digest, &why), 0);
    assert_string_equal(vstr_str(user), "tim");
    assert_true(sasl_cram_verify("tanstaaftanstaaf", 16, challenge, digest));
    assert_false(sasl_cram_verify("tanstaaftanstaag", 16, challenge, digest));
    assert_false(sasl_cram_verify("tanstaaftanstaaf", 16,
                                  "<1896.697170953@postoffice.reston.mci.net>", digest));
    /* Upper-case hex is the same digest; a user name may hold spaces. */
    assert_int_equal(
        sasl_cram_parse("tim B913A602C7EDA7A495B4E6E7334D3890", 36, user, digest, &why), 0);
    assert_true(sasl_cram_verify("tanstaaftanstaaf", 16, challenge, digest));
    assert_int_equal(
        sasl_cram_parse("tim smith b913a602c7eda7a495b4e6e7334d3890", 42, user, digest, &why), 0);
    assert_string_equal(vstr_str(user), "tim smith");

    /* Malformed. */
    assert_int_equal(sasl_cram_parse("timb913a602c7eda7a495b4e6e7334d3890", 35, user, digest, &why),
                     -1);
    assert_int_equal(sasl_cram_parse("tim b913a602c7eda7a495b4e6e7334d389", 35, user, digest, &why),
                     -1);
    assert_int_equal(
        sasl_cram_parse("tim b913a602c7eda7a495b4e6e7334d389g", 36, user, digest, &why), -1);
    assert_int_equal(sasl_cram_parse(" b913a602c7eda7a495b4e6e7334d3890", 33, user, digest, &why),
                     -1);
    assert_int_equal(
        sasl_cram_parse("t\0m b913a602c7eda7a495b4e6e7334d3890", 36, user, digest, &why), -1);
    assert_int_equal(
        sasl_cram_parse("t\tm b913a602c7eda7a495b4e6e7334d3890", 36, user, digest, &why), -1);
    assert_int_equal(sasl_cram_parse("", 0, user, digest, &why), -1);

    /* Challenges: msg-id shape, fresh each time, or pinned by the test hook. */
    sasl_cram_challenge(ch, "mx.example");
    assert_true(vstr_str(ch)[0] == '<');
    assert_non_null(strstr(vstr_str(ch), "@mx.example>"));
    {
        char first[128];

        snprintf(first, sizeof(first), "%s", vstr_str(ch));
        sasl_cram_challenge(ch, "mx.example");
        assert_string_not_equal(first, vstr_str(ch));
    }
    sasl_test_cram_challenge(challenge);
    sasl_cram_challenge(ch, "mx.example");
    assert_string_equal(vstr_str(ch), challenge);
    sasl_test_cram_challenge(NULL);
    assert_null(sasl_test_cram_challenge_get());
    vstr_free(user);
    vstr_free(ch);
}

/* ---- SCRAM-SHA-256 ---- */

#define RFC7677_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC7677_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC7677_SERVER_FIRST                                                                       \
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC7677_FINAL                                                                              \
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+"               \
    "Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC7677_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* rfc_scram - state after the RFC 7677 client-first and server-first */
static SASL_SCRAM *rfc_scram(unsigned char *salt, size_t *salt_len)
{
    SASL_SCRAM *s = sasl_scram_new();
    VSTR *v = decode("W22ZaJ0SNY7soEsUEjb6gQ==");
    const char *why;

    assert_non_null(v);
    memcpy(salt, vstr_str(v), vstr_len(v));
    *salt_len = vstr_len(v);
    vstr_free(v);
    assert_int_equal(sasl_scram_parse_first(s, RFC7677_FIRST, strlen(RFC7677_FIRST), &why), 0);
    sasl_scram_server_first(s, RFC7677_SNONCE, salt, *salt_len, 4096);
    return s;
}

static void test_scram_rfc7677(void **unused)
{
    unsigned char salt[32], stored[SASL_KEY_LEN], server[SASL_KEY_LEN];
    size_t salt_len;
    SASL_SCRAM *s = rfc_scram(salt, &salt_len);
    VSTR *out = vstr_alloc(64);
    const char *why;

    (void)unused;
    assert_string_equal(vstr_str(s->gs2_header), "n,,");
    assert_string_equal(vstr_str(s->username), "user");
    assert_string_equal(vstr_str(s->authzid), "");
    assert_string_equal(vstr_str(s->client_first_bare), "n=user,r=rOprNGfwEbeRWgbNEkqO");
    assert_string_equal(vstr_str(s->server_first), RFC7677_SERVER_FIRST);

    sasl_scram_keys("pencil", 6, salt, salt_len, 4096, stored, server);
    assert_int_equal(sasl_scram_parse_final(s, RFC7677_FINAL, strlen(RFC7677_FINAL), &why), 0);
    assert_true(sasl_scram_verify(s, stored));
    sasl_scram_server_final(s, server, out);
    assert_string_equal(vstr_str(out), RFC7677_SERVER_FINAL);

    /* The wrong password, or a flipped proof bit, fails. */
    sasl_scram_keys("pencil2", 7, salt, salt_len, 4096, stored, server);
    assert_false(sasl_scram_verify(s, stored));
    sasl_scram_keys("pencil", 6, salt, salt_len, 4096, stored, server);
    s->proof[5] ^= 1;
    assert_false(sasl_scram_verify(s, stored));
    sasl_scram_free(s);
    vstr_free(out);
}

static void test_scram_first_malformed(void **unused)
{
    static const char *const bad[] = {
        "p=tls-unique,,n=user,r=abc", /* channel binding asked for */
        "x,,n=user,r=abc",            /* unknown flag */
        "n,n=user,r=abc",             /* GS2 header cut short */
        "n,,m=ext,n=user,r=abc",      /* mandatory extension */
        "n,,n=us=3Cer,r=abc",         /* bad saslname escape */
        "n,,n=us=2,r=abc",            /* truncated escape */
        "n,,n=,r=abc",                /* empty user */
        "n,,n=user,r=",               /* empty nonce */
        "n,,n=user",                  /* no nonce */
        "n,,r=abc,n=user",            /* wrong order */
        "n,,n=user,r=abc,",           /* trailing comma */
        "n,,n=user,r=a c",            /* space in nonce */
        "n,,n=user,r=abc,1=x",        /* extension name not a letter */
        "n,,n=user,r=abc,xx",         /* extension without '=' */
        "n,,n=u\x01ser,r=abc",        /* control character */
        "n,,n=\xff,r=abc",            /* not UTF-8 */
        "n,b=x,n=user,r=abc",         /* not an authzid */
        "n,a=,n=user,r=abc",          /* empty authzid */
        "",
        "n",
    };
    const char *why;

    (void)unused;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        SASL_SCRAM *s = sasl_scram_new();

        why = NULL;
        if (sasl_scram_parse_first(s, bad[i], strlen(bad[i]), &why) == 0)
            fail_msg("accepted client-first #%zu \"%s\"", i, bad[i]);
        assert_non_null(why);
        sasl_scram_free(s);
    }
    {
        SASL_SCRAM *s = sasl_scram_new();

        assert_int_equal(sasl_scram_parse_first(s, "n,,n=u\0ser,r=abc", 16, &why), -1);
        /* Accepted forms: "y", an authzid, escapes, extensions. */
        assert_int_equal(sasl_scram_parse_first(s, "y,a=other,n=u=2Cs=3Der,r=abc,x=1,q=", 35, &why),
                         0);
        assert_string_equal(vstr_str(s->gs2_header), "y,a=other,");
        assert_string_equal(vstr_str(s->authzid), "other");
        assert_string_equal(vstr_str(s->username), "u,s=er");
        assert_string_equal(vstr_str(s->nonce), "abc");
        sasl_scram_free(s);
    }
}

static void test_scram_final_malformed(void **unused)
{
    static const char *const bad[] = {
        "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+"
        "Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+"
        "Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=!!!!",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,c=biws,p=dHzbZapWIk4jUhN+"
        "Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biw,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+"
        "Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,,p=dHzbZapWIk4jUhN+"
        "Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "",
    };
    unsigned char salt[32];
    size_t salt_len;
    const char *why;

    (void)unused;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        SASL_SCRAM *s = rfc_scram(salt, &salt_len);

        why = NULL;
        if (sasl_scram_parse_final(s, bad[i], strlen(bad[i]), &why) == 0)
            fail_msg("accepted client-final #%zu \"%s\"", i, bad[i]);
        assert_non_null(why);
        sasl_scram_free(s);
    }
    /* An extension before the proof is allowed and part of the AuthMessage. */
    {
        SASL_SCRAM *s = rfc_scram(salt, &salt_len);
        const char *msg = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,x=1,p="
                          "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        unsigned char stored[SASL_KEY_LEN], server[SASL_KEY_LEN];

        assert_int_equal(sasl_scram_parse_final(s, msg, strlen(msg), &why), 0);
        assert_string_equal(vstr_str(s->final_no_proof),
                            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,x=1");
        sasl_scram_keys("pencil", 6, salt, salt_len, 4096, stored, server);
        assert_false(sasl_scram_verify(s, stored)); /* the proof was made without x=1 */
        sasl_scram_free(s);
    }
}

static void test_scram_secret(void **unused)
{
    /* doveadm pw -s SCRAM-SHA-256 -p pencil (Dovecot 2.3) */
    static const char dovecot[] =
        "4096,VIqzW6YqxCEC/qNe0O/XPg==,MmH4uGiQI9XAENp83SzuL+UBCPejUmYWL/oD+eO/WIA=,"
        "u/zi76ySkjbhpVCtu5wguSo7B4fW3Jp7meOzOVkCtCQ=";
    static const char *const bad[] = {
        "",
        "4096",
        "0,VIqzW6YqxCEC/qNe0O/XPg==,MmH4uGiQI9XAENp83SzuL+UBCPejUmYWL/oD+eO/WIA=,u/"
        "zi76ySkjbhpVCtu5wguSo7B4fW3Jp7meOzOVkCtCQ=",
        "x,VIqzW6YqxCEC/qNe0O/XPg==,MmH4uGiQI9XAENp83SzuL+UBCPejUmYWL/oD+eO/WIA=,u/"
        "zi76ySkjbhpVCtu5wguSo7B4fW3Jp7meOzOVkCtCQ=",
        "99999999999,VIqzW6YqxCEC/qNe0O/XPg==,MmH4uGiQI9XAENp83SzuL+UBCPejUmYWL/oD+eO/WIA=,u/"
        "zi76ySkjbhpVCtu5wguSo7B4fW3Jp7meOzOVkCtCQ=",
        "4096,,MmH4uGiQI9XAENp83SzuL+UBCPejUmYWL/oD+eO/WIA=,u/"
        "zi76ySkjbhpVCtu5wguSo7B4fW3Jp7meOzOVkCtCQ=",
        "4096,VIqzW6YqxCEC/qNe0O/XPg=,MmH4uGiQI9XAENp83SzuL+UBCPejUmYWL/oD+eO/WIA=,u/"
        "zi76ySkjbhpVCtu5wguSo7B4fW3Jp7meOzOVkCtCQ=",
        "4096,VIqzW6YqxCEC/qNe0O/XPg==,MmH4uGiQI9XAENp83SzuL+UBCPejUmYWL/oD+eO/WI==,u/"
        "zi76ySkjbhpVCtu5wguSo7B4fW3Jp7meOzOVkCtCQ=",
        "4096,VIqzW6YqxCEC/qNe0O/XPg==,MmH4uGiQI9XAENp83SzuL+UBCPejUmYWL/oD+eO/WIA=",
        "4096,VIqzW6YqxCEC/qNe0O/XPg==,MmH4uGiQI9XAENp83SzuL+UBCPejUmYWL/oD+eO/WIA=,u/"
        "zi76ySkjbhpVCtu5wguSo7B4fW3Jp7meOzOVkCtCQ=,x",
        "4096,VIqzW6YqxCEC/qNe0O/XPg==,MmH4uGiQI9XAENp83SzuL+UBCPejUmYWL/oD+eO/WIA=,u/"
        "zi76ySkjbhpVCtu5wguSo7B4fW3Jp7meOzOVkCtC",
    };
    SASL_SCRAM_SECRET sec;
    unsigned char stored[SASL_KEY_LEN], server[SASL_KEY_LEN];
    const char *why;

    (void)unused;
    assert_int_equal(sasl_scram_secret_parse(dovecot, &sec, &why), 0);
    assert_int_equal(sec.iter, 4096);
    assert_int_equal(sec.salt_len, 16);
    /* Dovecot's keys are the ones RFC 5802 gives for "pencil". */
    sasl_scram_keys("pencil", 6, sec.salt, sec.salt_len, sec.iter, stored, server);
    assert_memory_equal(stored, sec.stored_key, SASL_KEY_LEN);
    assert_memory_equal(server, sec.server_key, SASL_KEY_LEN);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (sasl_scram_secret_parse(bad[i], &sec, &why) == 0)
            fail_msg("accepted SCRAM secret #%zu \"%s\"", i, bad[i]);
        assert_non_null(why);
    }
    assert_true(sasl_scram_password_ok("pencil", 6));
    assert_true(sasl_scram_password_ok("a b~", 4));
    assert_false(sasl_scram_password_ok("p\xc3\xa4ss", 5));
    assert_false(sasl_scram_password_ok("p\tss", 4));
    assert_false(sasl_scram_password_ok("", 0));
}

static void test_scram_nonce(void **unused)
{
    VSTR *a = vstr_alloc(32);
    VSTR *b = vstr_alloc(32);

    (void)unused;
    sasl_scram_snonce(a);
    sasl_scram_snonce(b);
    assert_int_equal(vstr_len(a), 24);
    assert_null(strchr(vstr_str(a), ','));
    assert_string_not_equal(vstr_str(a), vstr_str(b));
    sasl_test_scram_nonce(RFC7677_SNONCE);
    sasl_scram_snonce(a);
    assert_string_equal(vstr_str(a), RFC7677_SNONCE);
    sasl_test_scram_nonce(NULL);
    assert_null(sasl_test_scram_nonce_get());
    vstr_free(a);
    vstr_free(b);
}

/* ---- security options and filter ---- */

static void test_secopts(void **unused)
{
    unsigned no, must;
    VSTR *why = vstr_alloc(64);
    unsigned plain = sasl_mech_props("PLAIN");
    unsigned login = sasl_mech_props("login");
    unsigned cram = sasl_mech_props("CRAM-MD5");
    unsigned scram = sasl_mech_props("SCRAM-SHA-256");
    unsigned anon = sasl_mech_props("ANONYMOUS");

    (void)unused;
    assert_int_equal(sasl_mech_props("NO-SUCH"), 0);
    assert_int_equal(sasl_secopts_parse("", &no, &must, why), 0);
    assert_true(sasl_secopts_allow(plain, no, must));
    assert_true(sasl_secopts_allow(anon, no, must));
    assert_false(sasl_secopts_allow(SASL_SEC_PRIVATE, no, must));

    assert_int_equal(sasl_secopts_parse("noanonymous", &no, &must, why), 0);
    assert_true(sasl_secopts_allow(plain, no, must));
    assert_false(sasl_secopts_allow(anon, no, must));

    assert_int_equal(sasl_secopts_parse("noplaintext, noanonymous", &no, &must, why), 0);
    assert_false(sasl_secopts_allow(plain, no, must));
    assert_false(sasl_secopts_allow(login, no, must));
    assert_true(sasl_secopts_allow(cram, no, must));
    assert_true(sasl_secopts_allow(scram, no, must));

    assert_int_equal(sasl_secopts_parse("NOACTIVE", &no, &must, why), 0);
    assert_false(sasl_secopts_allow(plain, no, must));
    assert_false(sasl_secopts_allow(cram, no, must));
    assert_true(sasl_secopts_allow(scram, no, must));

    /* As Cyrus classifies them, every mechanism here is open to a dictionary attack. */
    assert_int_equal(sasl_secopts_parse("nodictionary", &no, &must, why), 0);
    assert_false(sasl_secopts_allow(plain, no, must));
    assert_false(sasl_secopts_allow(cram, no, must));
    assert_false(sasl_secopts_allow(scram, no, must));

    assert_int_equal(sasl_secopts_parse("mutual_auth", &no, &must, why), 0);
    assert_false(sasl_secopts_allow(plain, no, must));
    assert_false(sasl_secopts_allow(cram, no, must));
    assert_true(sasl_secopts_allow(scram, no, must));

    assert_int_equal(sasl_secopts_parse("forward_secrecy", &no, &must, why), 0);
    assert_false(sasl_secopts_allow(scram, no, must));
    assert_true(sasl_secopts_allow(SASL_SEC_FWD_SECRECY, no, must));

    /* Dovecot's words. */
    assert_int_equal(sasl_mech_props_word("plaintext"), SASL_SEC_PLAINTEXT);
    assert_int_equal(sasl_mech_props_word("mutual-auth"), SASL_SEC_MUTUAL_AUTH);
    assert_int_equal(sasl_mech_props_word("forward-secrecy"), SASL_SEC_FWD_SECRECY);
    assert_int_equal(sasl_mech_props_word("private"), SASL_SEC_PRIVATE);
    assert_int_equal(sasl_mech_props_word("nonsense"), 0);

    /* Malformed. */
    assert_int_equal(sasl_secopts_parse("noplaintext, nosuch", &no, &must, why), -1);
    assert_non_null(strstr(vstr_str(why), "nosuch"));
    assert_int_equal(sasl_secopts_parse("plaintext", &no, &must, why), -1);
    vstr_free(why);
}

/* keeps - the mechanisms of a fixed list the filter keeps, as one string */
static const char *keeps(SASL_FILTER *f)
{
    static const char *const all[] = {"PLAIN",         "LOGIN",    "CRAM-MD5",
                                      "SCRAM-SHA-256", "EXTERNAL", "GSSAPI"};
    static char buf[200];

    buf[0] = 0;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (sasl_filter_keep(f, all[i])) {
            if (buf[0])
                strcat(buf, " ");
            strcat(buf, all[i]);
        }
    }
    return buf;
}

/* filter - a filter that must parse */
static SASL_FILTER *filter(const char *value)
{
    VSTR *why = vstr_alloc(64);
    SASL_FILTER *f = sasl_filter_new(value, why);

    if (f == NULL)
        fail_msg("filter \"%s\": %s", value, vstr_str(why));
    vstr_free(why);
    return f;
}

/* write_file - a file in the test directory; returns its path (static buffer) */
static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", test_dir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_true(fputs(text, fp) >= 0);
    assert_int_equal(fclose(fp), 0);
    return path;
}

static void test_filter(void **unused)
{
    SASL_FILTER *f;
    VSTR *why = vstr_alloc(64);
    char spec[600];

    (void)unused;
    f = filter("");
    assert_string_equal(keeps(f), "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 EXTERNAL GSSAPI");
    sasl_filter_free(f);
    assert_string_equal(keeps(NULL), "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 EXTERNAL GSSAPI");

    /* Postfix's default: everything but EXTERNAL. */
    f = filter("!external, static:rest");
    assert_string_equal(keeps(f), "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 GSSAPI");
    sasl_filter_free(f);

    f = filter("login, PLAIN");
    assert_string_equal(keeps(f), "PLAIN LOGIN");
    sasl_filter_free(f);

    f = filter("!external, !gssapi, static:rest");
    assert_string_equal(keeps(f), "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256");
    sasl_filter_free(f);

    /* First match decides: "plain" before "!plain" keeps it. */
    f = filter("plain !plain");
    assert_string_equal(keeps(f), "PLAIN");
    sasl_filter_free(f);

    f = filter("inline:{ cram-md5=yes, scram-sha-256=whatever }");
    assert_string_equal(keeps(f), "CRAM-MD5 SCRAM-SHA-256");
    sasl_filter_free(f);

    f = filter("!inline:{ plain=x }, static:rest");
    assert_string_equal(keeps(f), "LOGIN CRAM-MD5 SCRAM-SHA-256 EXTERNAL GSSAPI");
    sasl_filter_free(f);

    /* Files hold more items. */
    snprintf(
        spec, sizeof(spec), "%s, login",
        write_file("mechs", "# the mechanisms we want\n  plain\n\nscram-sha-256 , !cram-md5\n"));
    f = filter(spec);
    assert_string_equal(keeps(f), "PLAIN LOGIN SCRAM-SHA-256");
    sasl_filter_free(f);

    /* Malformed. */
    assert_null(sasl_filter_new("!", why));
    assert_null(sasl_filter_new("plain, !", why));
    assert_null(sasl_filter_new("nosuchtype:foo", why));
    assert_non_null(strstr(vstr_str(why), "smtpd_sasl_mechanism_filter"));
    snprintf(spec, sizeof(spec), "!%s", write_file("neg", "plain\n"));
    assert_null(sasl_filter_new(spec, why));
    snprintf(spec, sizeof(spec), "%s/no-such-file", test_dir);
    assert_null(sasl_filter_new(spec, why));
    assert_null(sasl_filter_new("ABCDEFGHIJKLMNOPQRSTUVWXYZ", why));
    /* A file that names itself nests until the depth limit. */
    {
        char self[600];

        snprintf(self, sizeof(self), "%s/self", test_dir);
        write_file("self", self);
        assert_null(sasl_filter_new(self, why));
        assert_non_null(strstr(vstr_str(why), "nested"));
    }
    {
        static const char nul_file[] = "plain\0login";
        char path[600];
        FILE *fp;

        snprintf(path, sizeof(path), "%s/nul", test_dir);
        fp = fopen(path, "w");
        assert_non_null(fp);
        assert_int_equal(fwrite(nul_file, 1, sizeof(nul_file) - 1, fp), sizeof(nul_file) - 1);
        fclose(fp);
        assert_null(sasl_filter_new(path, why));
    }
    /* Names longer than a mechanism name can be never match. */
    f = filter("static:rest");
    assert_false(sasl_filter_keep(f, "A-MECHANISM-NAME-THAT-IS-TOO-LONG"));
    sasl_filter_free(f);
    vstr_free(why);
}

static int group_setup(void **unused)
{
    (void)unused;
    msg_init("test_sasl");
    snprintf(test_dir, sizeof(test_dir), "/tmp/test_sasl.XXXXXX");
    return mkdtemp(test_dir) ? 0 : -1;
}

static int group_teardown(void **unused)
{
    char cmd[300];

    (void)unused;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", test_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_good),
        cmocka_unit_test(test_b64_malformed),
        cmocka_unit_test(test_b64_roundtrip),
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_login),
        cmocka_unit_test(test_cram),
        cmocka_unit_test(test_scram_rfc7677),
        cmocka_unit_test(test_scram_first_malformed),
        cmocka_unit_test(test_scram_final_malformed),
        cmocka_unit_test(test_scram_secret),
        cmocka_unit_test(test_scram_nonce),
        cmocka_unit_test(test_secopts),
        cmocka_unit_test(test_filter),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
