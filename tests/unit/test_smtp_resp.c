/*
 * test_smtp_resp - the SMTP client's reply reader (single and multi-line
 * replies, enhanced status codes, garbage, code changes, endless and
 * over-long replies, unprintable bytes), EHLO keyword parsing, and the
 * nexthop forms of lib/mail/smtp_nexthop (malformed ones included).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/smtp_nexthop.h"
#include "mail/smtp_resp.h"
#include "util/argv.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

/* feed - lines into a fresh reply; the last smtp_resp_line result */
static int feed(SMTP_RESP *r, const char *const *lines)
{
    int rc = SMTP_RESP_MORE;

    smtp_resp_reset(r);
    for (; *lines && rc == SMTP_RESP_MORE; lines++)
        rc = smtp_resp_line(r, *lines, strlen(*lines));
    return rc;
}

static void test_single_and_multi(void **state)
{
    SMTP_RESP *r = smtp_resp_alloc();

    (void)state;
    assert_int_equal(feed(r, (const char *[]){"250 2.1.5 Ok", NULL}), SMTP_RESP_DONE);
    assert_int_equal(r->code, 250);
    assert_string_equal(r->dsn, "2.1.5");
    assert_true(r->has_dsn);
    assert_string_equal(vstr_str(r->text), "250 2.1.5 Ok");

    assert_int_equal(feed(r, (const char *[]){"550-5.1.1 first", "550 5.1.1 second", NULL}),
                     SMTP_RESP_DONE);
    assert_string_equal(vstr_str(r->text), "550-5.1.1 first 550 5.1.1 second");
    assert_int_equal(r->lines->argc, 2);
    assert_string_equal(r->lines->argv[1], "5.1.1 second");

    /* No enhanced code: derived from the reply code. A code of the wrong
       class in the text is not taken. */
    assert_int_equal(feed(r, (const char *[]){"451 try later", NULL}), SMTP_RESP_DONE);
    assert_string_equal(r->dsn, "4.0.0");
    assert_false(r->has_dsn);
    assert_int_equal(feed(r, (const char *[]){"451 5.1.1 wrong class", NULL}), SMTP_RESP_DONE);
    assert_string_equal(r->dsn, "4.0.0");
    /* The bare code is a complete reply (RFC 5321 4.2). */
    assert_int_equal(feed(r, (const char *[]){"220", NULL}), SMTP_RESP_DONE);
    assert_int_equal(r->code, 220);
    /* 5.1.10 (RFC 7505). */
    assert_int_equal(feed(r, (const char *[]){"556 5.1.10 null MX", NULL}), SMTP_RESP_DONE);
    assert_string_equal(r->dsn, "5.1.10");
    smtp_resp_free(r);
}

static void test_malformed(void **state)
{
    SMTP_RESP *r = smtp_resp_alloc();

    (void)state;
    assert_int_equal(feed(r, (const char *[]){"garbage", NULL}), SMTP_RESP_ERROR);
    assert_non_null(strstr(vstr_str(r->why), "malformed reply"));
    assert_int_equal(feed(r, (const char *[]){"25", NULL}), SMTP_RESP_ERROR);
    assert_int_equal(feed(r, (const char *[]){"250x", NULL}), SMTP_RESP_ERROR);
    assert_int_equal(feed(r, (const char *[]){"150 what", NULL}), SMTP_RESP_ERROR);
    assert_int_equal(feed(r, (const char *[]){"650 what", NULL}), SMTP_RESP_ERROR);
    assert_int_equal(feed(r, (const char *[]){"", NULL}), SMTP_RESP_ERROR);
    /* The code changes inside a multi-line reply. */
    assert_int_equal(feed(r, (const char *[]){"250-a", "550 b", NULL}), SMTP_RESP_ERROR);
    /* A continuation that turns into garbage. */
    assert_int_equal(feed(r, (const char *[]){"250-a", "zzz", NULL}), SMTP_RESP_ERROR);
    smtp_resp_free(r);
}

static void test_limits(void **state)
{
    SMTP_RESP *r = smtp_resp_alloc();
    char *big = mymalloc(SMTP_RESP_LINE_MAX * 4);
    int rc = SMTP_RESP_MORE, n = 0;

    (void)state;
    /* An endless multi-line reply stops at the line limit. */
    smtp_resp_reset(r);
    while (rc == SMTP_RESP_MORE && n < 10000) {
        rc = smtp_resp_line(r, "250-again", 9);
        n++;
    }
    assert_int_equal(rc, SMTP_RESP_ERROR);
    assert_int_equal(n, SMTP_RESP_LINES_MAX + 1);
    /* Long lines are cut, and the total text is bounded. */
    memcpy(big, "250-", 4);
    memset(big + 4, 'x', SMTP_RESP_LINE_MAX * 4 - 4);
    smtp_resp_reset(r);
    rc = SMTP_RESP_MORE;
    n = 0;
    while (rc == SMTP_RESP_MORE && n < 100) {
        rc = smtp_resp_line(r, big, SMTP_RESP_LINE_MAX * 4);
        n++;
    }
    assert_int_equal(rc, SMTP_RESP_ERROR);
    assert_true(vstr_len(r->text) <= SMTP_RESP_TEXT_MAX + SMTP_RESP_LINES_MAX);
    assert_true(strlen(r->lines->argv[0]) <= SMTP_RESP_LINE_MAX);
    myfree(big);
    smtp_resp_free(r);
}

static void test_unprintable(void **state)
{
    SMTP_RESP *r = smtp_resp_alloc();
    const char line[] = "550 bad\r\nX-Injected: \0\x1b[31m\xc3\xbc";

    (void)state;
    assert_int_equal(smtp_resp_line(r, line, sizeof(line) - 1), SMTP_RESP_DONE);
    assert_string_equal(vstr_str(r->text), "550 bad??X-Injected: ??[31m??");
    assert_int_equal(strlen(vstr_str(r->text)), vstr_len(r->text));
    smtp_resp_free(r);
}

static void test_dsn_parse(void **state)
{
    char dsn[SMTP_DSN_MAX];

    (void)state;
    assert_int_equal(smtp_dsn_parse("2.0.0 Ok", dsn, sizeof(dsn)), 5);
    assert_string_equal(dsn, "2.0.0");
    assert_int_equal(smtp_dsn_parse("5.123.456", dsn, sizeof(dsn)), 9);
    assert_int_equal(smtp_dsn_parse("5.1234.1 x", dsn, sizeof(dsn)), 0);
    assert_int_equal(smtp_dsn_parse("3.0.0 x", dsn, sizeof(dsn)), 0);
    assert_int_equal(smtp_dsn_parse("5.1.1x", dsn, sizeof(dsn)), 0);
    assert_int_equal(smtp_dsn_parse("5..1", dsn, sizeof(dsn)), 0);
    assert_int_equal(smtp_dsn_parse("", dsn, sizeof(dsn)), 0);
    assert_int_equal(smtp_dsn_parse("5.1.1", dsn, 4), 0);
}

static void test_ehlo(void **state)
{
    SMTP_RESP *r = smtp_resp_alloc();
    SMTP_EHLO e;
    ARGV *discard = argv_split("dsn", ",");

    (void)state;
    feed(r,
         (const char *[]){"250-mx.example Hello", "250-PIPELINING", "250-SIZE 1000", "250-8bitmime",
                          "250-AUTH PLAIN LOGIN plain", "250-AUTH=LOGIN CRAM-MD5", "250-DSN",
                          "250-STARTTLS", "250-X-UNKNOWN foo", "250 SMTPUTF8", NULL});
    smtp_resp_ehlo(r, NULL, &e);
    assert_true(e.features & SMTP_FEATURE_PIPELINING);
    assert_true(e.features & SMTP_FEATURE_8BITMIME);
    assert_true(e.features & SMTP_FEATURE_SMTPUTF8);
    assert_true(e.features & SMTP_FEATURE_DSN);
    assert_true(e.features & SMTP_FEATURE_STARTTLS);
    assert_false(e.features & SMTP_FEATURE_CHUNKING);
    assert_int_equal(e.size, 1000);
    assert_string_equal(e.auth, "PLAIN LOGIN CRAM-MD5");
    smtp_resp_ehlo(r, discard, &e);
    assert_false(e.features & SMTP_FEATURE_DSN);
    /* The first line (the server's name) is never a keyword; SIZE without a
       number or with garbage means no limit. */
    feed(r, (const char *[]){"250-PIPELINING", "250-SIZE", "250 SIZE 12x", NULL});
    smtp_resp_ehlo(r, NULL, &e);
    assert_false(e.features & SMTP_FEATURE_PIPELINING);
    assert_true(e.features & SMTP_FEATURE_SIZE);
    assert_int_equal(e.size, 0);
    /* An AUTH list too long to keep is cut, never overflows. */
    {
        char line[3000];

        strcpy(line, "250 AUTH");
        for (int i = 0; i < 150; i++)
            strcat(line, " MECHANISM-NAME-X");
        feed(r, (const char *[]){"250-x", line, NULL});
        smtp_resp_ehlo(r, NULL, &e);
        assert_true(strlen(e.auth) < sizeof(e.auth));
    }
    argv_free(discard);
    smtp_resp_free(r);
}

/* nh - parse; a description string, or "ERR" */
static const char *nh(const char *text)
{
    static char buf[256];
    SMTP_NEXTHOP n;
    VSTR *why = vstr_alloc(16);

    if (smtp_nexthop_parse(text, "lmtp=24, smtp=25, smtps=submissions=465", &n, why) < 0) {
        vstr_free(why);
        return "ERR";
    }
    snprintf(buf, sizeof(buf), "%s port=%u mx=%d addr=%d unix=%d", n.host, n.port, !n.no_mx,
             n.is_addr, n.is_unix);
    smtp_nexthop_free(&n);
    vstr_free(why);
    return buf;
}

static void test_nexthop(void **state)
{
    (void)state;
    assert_string_equal(nh("Example.COM"), "example.com port=0 mx=1 addr=0 unix=0");
    assert_string_equal(nh("example.com:2525"), "example.com port=2525 mx=1 addr=0 unix=0");
    assert_string_equal(nh("[mail.example.com]"), "mail.example.com port=0 mx=0 addr=0 unix=0");
    assert_string_equal(nh("[mail.example.com]:submissions"),
                        "mail.example.com port=465 mx=0 addr=0 unix=0");
    assert_string_equal(nh("[192.0.2.1]:587"), "192.0.2.1 port=587 mx=0 addr=1 unix=0");
    assert_string_equal(nh("[ipv6:2001:db8::1]:25"), "2001:db8::1 port=25 mx=0 addr=1 unix=0");
    assert_string_equal(nh("[2001:db8::1]"), "2001:db8::1 port=0 mx=0 addr=1 unix=0");
    assert_string_equal(nh("inet:[127.0.0.1]:24"), "127.0.0.1 port=24 mx=0 addr=1 unix=0");
    assert_string_equal(nh("unix:/var/run/lmtp"), "/var/run/lmtp port=0 mx=0 addr=0 unix=1");
    assert_string_equal(nh("example.com."), "example.com port=0 mx=1 addr=0 unix=0");
    assert_string_equal(nh("example.com:lmtp"), "example.com port=24 mx=1 addr=0 unix=0");
    /* Malformed. */
    assert_string_equal(nh(""), "ERR");
    assert_string_equal(nh("[example.com"), "ERR");
    assert_string_equal(nh("[example.com]x"), "ERR");
    assert_string_equal(nh("[example.com]:"), "ERR");
    assert_string_equal(nh("example.com:0"), "ERR");
    assert_string_equal(nh("example.com:70000"), "ERR");
    assert_string_equal(nh("example.com:no-such-service-name"), "ERR");
    assert_string_equal(nh("2001:db8::1"), "ERR");
    assert_string_equal(nh("[ipv6:not-an-address]"), "ERR");
    assert_string_equal(nh("bad_-.example com"), "ERR");
    assert_string_equal(nh("a\r\nb.example"), "ERR");
    assert_string_equal(nh("unix:relative"), "ERR");
}

static void test_port_parse(void **state)
{
    unsigned port = 0;

    (void)state;
    assert_int_equal(smtp_port_parse("25", NULL, &port), 0);
    assert_int_equal(port, 25);
    assert_int_equal(smtp_port_parse("smtp", "smtp=2525", &port), 0);
    assert_int_equal(port, 2525);
    assert_int_equal(smtp_port_parse("smtp", NULL, &port), 0); /* /etc/services */
    assert_int_equal(port, 25);
    assert_int_equal(smtp_port_parse("", NULL, &port), -1);
    assert_int_equal(smtp_port_parse("-1", NULL, &port), -1);
    assert_int_equal(smtp_port_parse("99999999999999999999", NULL, &port), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_and_multi), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_limits),           cmocka_unit_test(test_unprintable),
        cmocka_unit_test(test_dsn_parse),        cmocka_unit_test(test_ehlo),
        cmocka_unit_test(test_nexthop),          cmocka_unit_test(test_port_parse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
