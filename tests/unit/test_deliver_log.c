/*
 * test_deliver_log - Postfix-shaped delivery log lines: the delay figures
 * (rounding, resolution, clamping of clocks that go backwards), orig_to,
 * and control characters from remote or command text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/deliver_log.h"
#include "util/vstr.h"

/* secs - deliver_log_seconds as a string (static buffer) */
static const char *secs(uint64_t usec, int resolution)
{
    static char buf[64];
    VSTR *out = vstr_alloc(16);

    deliver_log_seconds(out, usec, resolution);
    snprintf(buf, sizeof(buf), "%s", vstr_str(out));
    vstr_free(out);
    return buf;
}

static void test_seconds(void **state)
{
    (void)state;
    assert_string_equal(secs(0, 2), "0");
    assert_string_equal(secs(4000, 2), "0");      /* below 0.01: "0" */
    assert_string_equal(secs(5000, 2), "0.01");   /* rounds up */
    assert_string_equal(secs(43000, 2), "0.04");  /* two digits at most after the point */
    assert_string_equal(secs(43000, 3), "0.043"); /* more with a finer resolution */
    assert_string_equal(secs(100000, 2), "0.1");  /* trailing zeros removed */
    assert_string_equal(secs(270000, 2), "0.27");
    assert_string_equal(secs(999999, 2), "1");    /* 1.00 */
    assert_string_equal(secs(1340000, 2), "1.3"); /* two significant digits */
    assert_string_equal(secs(9960000, 2), "10");
    assert_string_equal(secs(12400000, 2), "12"); /* whole seconds from 10 on */
    assert_string_equal(secs(12600000, 2), "13");
    assert_string_equal(secs(2054000000ULL, 2), "2054");
    assert_string_equal(secs(1234, 6), "0.0012");
    assert_string_equal(secs(7, 6), "0.000007");
    assert_string_equal(secs(270000, 0), "0"); /* resolution 0: whole seconds */
    assert_string_equal(secs(1700000, 0), "2");
    assert_string_equal(secs(270000, -5), "0"); /* out-of-range resolutions clamp */
    assert_string_equal(secs(1234, 99), "0.0012");
    assert_string_equal(secs(UINT64_MAX, 2), "18446744073710");
}

static void test_line(void **state)
{
    (void)state;
    VSTR *out = vstr_alloc(64);
    DELIVER_LOG info = {
        .queue_id = "11GDXQ05GBSN00C1S",
        .to = "alice@example.com",
        .orig_to = "alias@example.com",
        .relay = "local",
        .dsn = "2.0.0",
        .status = "sent",
        .reason = "delivered to maildir",
        .arrival_usec = 1000000000ULL,
        .active_usec = 1000010000ULL,
        .request_usec = 1000010000ULL,
        .conn_usec = 1000010000ULL,
        .done_usec = 1000100000ULL,
    };

    deliver_log_format(out, &info, 2);
    assert_string_equal(vstr_str(out),
                        "11GDXQ05GBSN00C1S: to=<alice@example.com>, orig_to=<alias@example.com>, "
                        "relay=local, delay=0.1, delays=0.01/0/0/0.09, dsn=2.0.0, status=sent "
                        "(delivered to maildir)");
    /* orig_to only when it differs. */
    info.orig_to = "alice@example.com";
    deliver_log_format(out, &info, 2);
    assert_null(strstr(vstr_str(out), "orig_to"));
    info.orig_to = NULL;
    deliver_log_format(out, &info, 2);
    assert_null(strstr(vstr_str(out), "orig_to"));
    vstr_free(out);
}

static void test_hostile_fields(void **state)
{
    (void)state;
    VSTR *out = vstr_alloc(64);
    DELIVER_LOG info = {
        .queue_id = "ID",
        .to = "a\nb@x",
        .relay = "local",
        .dsn = "5.3.0",
        .status = "bounced",
        .reason = "Command died\r\nID: to=<forged>, status=sent (x)\x7f",
    };

    deliver_log_format(out, &info, 2);
    assert_null(strchr(vstr_str(out), '\n'));
    assert_null(strchr(vstr_str(out), '\r'));
    assert_null(strchr(vstr_str(out), 0x7f));
    assert_non_null(strstr(vstr_str(out), "to=<a?b@x>"));
    /* Unknown (0) times and clocks going backwards give zeros, not huge values. */
    assert_non_null(strstr(vstr_str(out), "delay=0, delays=0/0/0/0"));
    info.arrival_usec = 5000000;
    info.active_usec = 4000000;
    info.done_usec = 3000000;
    deliver_log_format(out, &info, 2);
    assert_non_null(strstr(vstr_str(out), "delay=0, delays=0/0/0/0"));
    /* NULL fields print as empty. */
    memset(&info, 0, sizeof(info));
    deliver_log_format(out, &info, 2);
    assert_string_equal(vstr_str(out),
                        ": to=<>, relay=, delay=0, delays=0/0/0/0, dsn=, status= ()");
    vstr_free(out);
}

static void test_now(void **state)
{
    (void)state;
    uint64_t a = deliver_log_now_usec(), b = deliver_log_now_usec();

    assert_true(a > 1600000000ULL * 1000000ULL);
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seconds),
        cmocka_unit_test(test_line),
        cmocka_unit_test(test_hostile_fields),
        cmocka_unit_test(test_now),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
