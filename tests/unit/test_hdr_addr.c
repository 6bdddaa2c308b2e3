/*
 * test_hdr_addr - addresses from address-list header values (sendmail -t):
 * plain lists, display names, groups, comments, quoted local parts,
 * obsolete routes and spacing, domain literals, and malformed elements,
 * which are skipped and counted, never turned into a wrong address.
 * Also mail_date, the RFC 5322 date text cleanup writes into Date:.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mail/hdr_addr.h"
#include "mail/mail_date.h"
#include "util/argv.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

/* list - the addresses of value joined by " | ", and the skipped count */
static char *list(const char *value, size_t max, size_t *skipped)
{
    ARGV *out = argv_alloc(4);
    VSTR *joined = vstr_alloc(64);
    size_t n = hdr_addr_list(value, strlen(value), out, max, skipped);

    assert_int_equal(n, out->argc);
    for (size_t i = 0; i < out->argc; i++)
        vstr_sprintf_append(joined, "%s%s", i ? " | " : "", out->argv[i]);
    argv_free(out);
    return vstr_export(joined);
}

static void expect(const char *value, const char *want, size_t want_skipped)
{
    size_t skipped = 99;
    char *got = list(value, 0, &skipped);

    assert_string_equal(got, want);
    assert_int_equal(skipped, want_skipped);
    myfree(got);
}

static void test_plain(void **state)
{
    (void)state;
    expect("a@example.com", "a@example.com", 0);
    expect("a@example.com, b@example.org", "a@example.com | b@example.org", 0);
    expect(" a@x ,\n\tb@y ", "a@x | b@y", 0);
    expect("first.last@sub.example.com", "first.last@sub.example.com", 0);
    expect("user", "user", 0);
    expect("", "", 0);
}

static void test_display_names(void **state)
{
    (void)state;
    expect("Joe Q. Public <john.q.public@example.com>", "john.q.public@example.com", 0);
    expect("\"Giant; \\\"Big\\\" Box\" <sysservices@example.net>", "sysservices@example.net", 0);
    expect("Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>",
           "mary@x.test | jdoe@example.org | one@y.test", 0);
    expect("<boss@nil.test>", "boss@nil.test", 0);
    expect("\"Smith, John\" <js@x>, other@y", "js@x | other@y", 0);
}

static void test_groups(void **state)
{
    (void)state;
    expect("undisclosed-recipients:;", "", 0);
    expect("A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
           "c@a.test | joe@where.test | jdoe@one.test", 0);
    expect("team: a@x, b@y; c@z", "a@x | b@y | c@z", 0);
}

static void test_comments_and_quotes(void **state)
{
    (void)state;
    expect("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", "pete@silly.test", 0);
    expect("a@x (with (nested) comment)", "a@x", 0);
    /* The internal form keeps a quoted local part unquoted, as Postfix does. */
    expect("\"john doe\"@example.com", "john doe@example.com", 0);
    expect("\"a,b\"@x, c@y", "a,b@x | c@y", 0);
}

static void test_obsolete(void **state)
{
    (void)state;
    /* RFC 5322 4.4: routes, spaces around dots, empty list elements. */
    expect("<@relay1.test,@relay2.test:user@final.test>", "user@final.test", 0);
    expect("john . doe @ example . com", "john.doe@example.com", 0);
    expect("a@x,,b@y,", "a@x | b@y", 0);
    expect("[literal] <u@[192.0.2.1]>", "u@[192.0.2.1]", 0);
    expect("u@[IPv6:2001:db8::1]", "u@[IPv6:2001:db8::1]", 0);
}

static void test_malformed(void **state)
{
    (void)state;
    /* A phrase without angle brackets is no address. */
    expect("John Smith", "", 1);
    expect("John Smith, a@x", "a@x", 1);
    /* Broken brackets, quotes and literals; the rest of the list survives
       where the element ends cleanly. */
    expect("<a@x", "", 1);
    expect("<>", "", 1);
    expect("\"unterminated@x", "", 1);
    expect("a@[1.2.3.4, b@y", "", 1);
    expect("a@x.., b@y", "b@y", 1);
    expect("a@, b@y", "b@y", 1);
    expect("@x", "", 1);
    expect("a..b@x", "", 1);
    expect("a@x@y", "", 1);
    expect("<@route-without-colon.test user@x>", "", 1);
    /* Control characters never reach a result. */
    expect("a\x01@x, b@y", "b@y", 1);
    expect("\"a\x01\"@x", "", 1);
    expect("a@x)y", "", 1);
}

static void test_utf8(void **state)
{
    (void)state;
    /* RFC 6532: UTF-8 in addresses passes through unchanged. */
    expect("J\xc3\xb6rg <j\xc3\xb6rg@b\xc3\xbc"
           "cher.test>",
           "j\xc3\xb6rg@b\xc3\xbc"
           "cher.test",
           0);
}

static void test_limits(void **state)
{
    size_t skipped;
    char *got;
    VSTR *big = vstr_alloc(HDR_ADDR_MAX + 16);

    (void)state;
    got = list("a@x, b@y, c@z", 2, &skipped);
    assert_string_equal(got, "a@x | b@y");
    myfree(got);
    /* An address longer than HDR_ADDR_MAX is skipped. */
    for (size_t i = 0; i < HDR_ADDR_MAX; i++)
        vstr_addch(big, 'a');
    vstr_cat(big, "@x, ok@y");
    got = list(vstr_str(big), 0, &skipped);
    assert_string_equal(got, "ok@y");
    assert_int_equal(skipped, 1);
    myfree(got);
    vstr_free(big);
}

/* test_random - arbitrary bytes: no crash, no result with control characters */
static void test_random(void **state)
{
    static const char alphabet[] = "ab@.,;:<>()\"[]\\ \n\x01\x80";
    char buf[200];
    unsigned seed = 4242;

    (void)state;
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof(buf));
        ARGV *out = argv_alloc(4);

        for (size_t i = 0; i < len; i++)
            buf[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
        hdr_addr_list(buf, len, out, 0, NULL);
        for (size_t i = 0; i < out->argc; i++) {
            assert_true(strlen(out->argv[i]) > 0);
            for (const char *cp = out->argv[i]; *cp; cp++)
                assert_true((unsigned char)*cp >= 32 && *cp != 127);
        }
        argv_free(out);
    }
}

static void date_in(const char *tz, time_t when, const char *want)
{
    VSTR *buf = vstr_alloc(MAIL_DATE_MAX);

    setenv("TZ", tz, 1);
    tzset();
    assert_string_equal(mail_date(when, buf), want);
    assert_true(strlen(want) <= MAIL_DATE_MAX);
    vstr_free(buf);
}

static void test_mail_date(void **state)
{
    (void)state;
    date_in("UTC0", 0, "Thu,  1 Jan 1970 00:00:00 +0000 (UTC)");
    date_in("CET-1CEST,M3.5.0,M10.5.0/3", 1700000000, "Tue, 14 Nov 2023 23:13:20 +0100 (CET)");
    date_in("CET-1CEST,M3.5.0,M10.5.0/3", 1690000000, "Sat, 22 Jul 2023 06:26:40 +0200 (CEST)");
    date_in("EST5", 1700000000, "Tue, 14 Nov 2023 17:13:20 -0500 (EST)");
    date_in("<+0530>-5:30", 1700000000, "Wed, 15 Nov 2023 03:43:20 +0530 (+0530)");
    unsetenv("TZ");
    tzset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),    cmocka_unit_test(test_display_names),
        cmocka_unit_test(test_groups),   cmocka_unit_test(test_comments_and_quotes),
        cmocka_unit_test(test_obsolete), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_utf8),     cmocka_unit_test(test_limits),
        cmocka_unit_test(test_random),   cmocka_unit_test(test_mail_date),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
