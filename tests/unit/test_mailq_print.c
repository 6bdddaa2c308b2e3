/*
 * test_mailq_print - unit tests for lib/mail/mailq_print: Postfix's mailq
 * layout (columns, marks, reason lines, trailer), JSON lines and their
 * quoting, recipients continued over several protocol messages, and
 * messages out of sequence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mail/mailq_print.h"
#include "mail/showq_proto.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define ID "11GDXQ05GBSN00C1S"
#define T0 1704164645ULL /* Tue Jan  2 03:04:05 2024 UTC */
#define RCPT_COL "                                               " /* 47 blanks */

/* msg_entry - a "message" protocol message without the attribute buffer */
static SHOWQ_MSG msg_entry(const char *queue, const char *id, unsigned long long size,
                           const char *sender, int more)
{
    SHOWQ_MSG m;

    memset(&m, 0, sizeof(m));
    m.kind = SHOWQ_MSG_MESSAGE;
    m.queue_name = queue;
    m.queue_id = id;
    m.arrival_time = T0;
    m.message_size = size;
    m.sender = sender;
    m.more = more;
    return m;
}

/* add_rcpt - one more recipient in m */
static void add_rcpt(SHOWQ_MSG *m, const char *addr, const char *reason)
{
    m->rcpt[m->rcpt_count] = addr;
    m->reason[m->rcpt_count] = reason;
    m->rcpt_count++;
}

static int setup(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    return 0;
}

static void test_text_entry_layout(void **state)
{
    MAILQ_PRINT *p = mailq_print_new(MAILQ_FORMAT_TEXT);
    VSTR *out = vstr_alloc(100), *why = vstr_alloc(100);
    SHOWQ_MSG m = msg_entry("deferred", ID, 1234, "alice@example.org", 0);
    const char *short_reason = "connect to mx.example.net[192.0.2.7]:25: Connection timed out";
    char expect[4096];

    (void)state;
    add_rcpt(&m, "bob@example.com", short_reason);
    add_rcpt(&m, "carol@example.com", short_reason);
    add_rcpt(&m, "dave@example.com", "");
    assert_int_equal(mailq_print_msg(p, &m, out, why), 0);
    assert_int_equal(mailq_print_finish(p, out, why), 0);
    snprintf(expect, sizeof(expect),
             "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n" ID
             "     1234 Tue Jan  2 03:04:05 alice@example.org\n"
             "%*s(%s)\n" RCPT_COL "bob@example.com\n" RCPT_COL "carol@example.com\n"
             "%*s(reason unavailable)\n" RCPT_COL "dave@example.com\n"
             "\n-- 1 Kbytes in 1 Request.\n",
             (int)(76 - strlen(short_reason)), "", short_reason, 76 - 18, "");
    assert_string_equal(vstr_str(out), expect);
    assert_int_equal(mailq_print_count(p), 1);
    mailq_print_free(p);
    vstr_free(out);
    vstr_free(why);
}

static void test_text_marks_and_trailer(void **state)
{
    static const struct {
        const char *queue;
        int forced;
        const char *mark;
    } cases[] = {
        {"immediate", 0, "*"}, {"bulk", 0, "*"},    {"active", 0, "*"}, {"hold", 0, "!"},
        {"deferred", 0, ""},   {"maildrop", 0, ""}, {"hold", 1, "!#"},  {"deferred", 1, "#"},
    };
    MAILQ_PRINT *p = mailq_print_new(MAILQ_FORMAT_TEXT);
    VSTR *out = vstr_alloc(100), *why = vstr_alloc(100), *want = vstr_alloc(100);

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        SHOWQ_MSG m = msg_entry(cases[i].queue, ID, 1024, "s@example.org", 0);

        m.forced_expire = cases[i].forced;
        vstr_reset(out);
        assert_int_equal(mailq_print_msg(p, &m, out, why), 0);
        /* The mark widens the id column, as printf does in Postfix. */
        vstr_reset(want);
        if (i == 0)
            vstr_cat(want, "----Queue ID----- --Size-- ---Arrival Time---- "
                           "--Sender/Recipient------\n");
        else
            vstr_cat(want, "\n");
        vstr_sprintf_append(want, "%s%s %8d Tue Jan  2 03:04:05 s@example.org\n", ID, cases[i].mark,
                            1024);
        assert_string_equal(vstr_str(out), vstr_str(want));
    }
    vstr_reset(out);
    assert_int_equal(mailq_print_finish(p, out, why), 0);
    assert_string_equal(vstr_str(out), "\n-- 8 Kbytes in 8 Requests.\n");
    mailq_print_free(p);

    p = mailq_print_new(MAILQ_FORMAT_TEXT);
    vstr_reset(out);
    assert_int_equal(mailq_print_finish(p, out, why), 0);
    assert_string_equal(vstr_str(out), "Mail queue is empty\n");
    mailq_print_free(p);
    vstr_free(out);
    vstr_free(why);
    vstr_free(want);
}

static void test_text_reason_widths(void **state)
{
    char r76[77], r77[78], expect[512];
    MAILQ_PRINT *p = mailq_print_new(MAILQ_FORMAT_TEXT);
    VSTR *out = vstr_alloc(100), *why = vstr_alloc(100);
    SHOWQ_MSG m = msg_entry("deferred", ID, 1, "s", 0);

    (void)state;
    memset(r76, 'a', 76);
    r76[76] = 0;
    memset(r77, 'b', 77);
    r77[77] = 0;
    add_rcpt(&m, "x@y", r76);
    add_rcpt(&m, "z@y", r77);
    add_rcpt(&m, "w@y", r77);
    add_rcpt(&m, "v@y", "c");
    assert_int_equal(mailq_print_msg(p, &m, out, why), 0);
    const char *body = strchr(strchr(vstr_str(out), '\n') + 1, '\n') + 1;

    /* 76 characters: no padding; 77: none either (never negative); a
       repeated reason is not shown again; a short one ends in column 78. */
    snprintf(expect, sizeof(expect),
             "(%s)\n" RCPT_COL "x@y\n(%s)\n" RCPT_COL "z@y\n" RCPT_COL "w@y\n%75s(c)\n" RCPT_COL
             "v@y\n",
             r76, r77, "");
    assert_string_equal(body, expect);
    mailq_print_free(p);
    vstr_free(out);
    vstr_free(why);
}

static void test_continued_recipients(void **state)
{
    MAILQ_PRINT *p = mailq_print_new(MAILQ_FORMAT_TEXT);
    VSTR *out = vstr_alloc(100), *why = vstr_alloc(100);
    SHOWQ_MSG m = msg_entry("deferred", ID, 10, "s", 1), more;

    (void)state;
    add_rcpt(&m, "a@x", "same");
    assert_int_equal(mailq_print_msg(p, &m, out, why), 0);
    /* The trailer must not come while recipients are still due. */
    assert_int_equal(mailq_print_finish(p, out, why), -1);
    assert_non_null(strstr(vstr_str(why), "was not finished"));
    memset(&more, 0, sizeof(more));
    more.kind = SHOWQ_MSG_RECIPIENTS;
    more.queue_id = ID;
    more.more = 1;
    add_rcpt(&more, "b@x", "same");
    vstr_reset(out);
    assert_int_equal(mailq_print_msg(p, &more, out, why), 0);
    /* The reason carries over: not repeated for the next recipient. */
    assert_string_equal(vstr_str(out), RCPT_COL "b@x\n");
    /* A continuation for another queue file is out of sequence. */
    more.queue_id = "11GDXQ05GBSN00C1T";
    assert_int_equal(mailq_print_msg(p, &more, out, why), -1);
    more.queue_id = ID;
    /* A new queue file before this one ended is out of sequence. */
    assert_int_equal(mailq_print_msg(p, &m, out, why), -1);
    more.more = 0;
    assert_int_equal(mailq_print_msg(p, &more, out, why), 0);
    /* Done: now a continuation is out of sequence, so is "end". */
    assert_int_equal(mailq_print_msg(p, &more, out, why), -1);
    more.kind = SHOWQ_MSG_END;
    assert_int_equal(mailq_print_msg(p, &more, out, why), -1);
    vstr_reset(out);
    assert_int_equal(mailq_print_finish(p, out, why), 0);
    assert_string_equal(vstr_str(out), "\n-- 0 Kbytes in 1 Request.\n");
    mailq_print_free(p);
    vstr_free(out);
    vstr_free(why);
}

static void test_json_lines(void **state)
{
    MAILQ_PRINT *p = mailq_print_new(MAILQ_FORMAT_JSON);
    VSTR *out = vstr_alloc(100), *why = vstr_alloc(100);
    SHOWQ_MSG m = msg_entry("hold", ID, 99, "\"q\\uote\"@example.org", 1), more;

    (void)state;
    add_rcpt(&m, "a@x", "why \"not\"");
    assert_int_equal(mailq_print_msg(p, &m, out, why), 0);
    memset(&more, 0, sizeof(more));
    more.kind = SHOWQ_MSG_RECIPIENTS;
    more.queue_id = ID;
    add_rcpt(&more, "b@x", "");
    assert_int_equal(mailq_print_msg(p, &more, out, why), 0);
    assert_string_equal(vstr_str(out),
                        "{\"queue_name\": \"hold\", \"queue_id\": \"" ID "\", "
                        "\"arrival_time\": 1704164645, \"message_size\": 99, "
                        "\"forced_expire\": false, \"sender\": \"\\\"q\\\\uote\\\"@example.org\", "
                        "\"recipients\": [{\"address\": \"a@x\", \"delay_reason\": \"why "
                        "\\\"not\\\"\"}, {\"address\": \"b@x\"}]}\n");
    vstr_reset(out);
    m.more = 0;
    m.rcpt_count = 0;
    m.forced_expire = 1;
    assert_int_equal(mailq_print_msg(p, &m, out, why), 0);
    assert_non_null(strstr(vstr_str(out), "\"forced_expire\": true, "));
    assert_non_null(strstr(vstr_str(out), "\"recipients\": []}\n"));
    vstr_reset(out);
    assert_int_equal(mailq_print_finish(p, out, why), 0);
    assert_string_equal(vstr_str(out), ""); /* no trailer in JSON */
    mailq_print_free(p);
    vstr_free(out);
    vstr_free(why);
}

static void test_json_quote(void **state)
{
    VSTR *out = vstr_alloc(10);

    (void)state;
    mailq_json_quote(out, "plain");
    assert_string_equal(vstr_str(out), "plain");
    vstr_reset(out);
    mailq_json_quote(out, "\"\\/");
    assert_string_equal(vstr_str(out), "\\\"\\\\/");
    vstr_reset(out);
    /* Controls were made printable before quoting; UTF-8 passes; bytes
       that are not UTF-8 never reach the output. */
    mailq_json_quote(out, "a\tb\x01\x7f caf\xc3\xa9 \xff");
    assert_string_equal(vstr_str(out), "a?b?? caf\xc3\xa9 ?");
    mailq_print_free(NULL);
    vstr_free(out);
}

static void test_text_hostile_client_side(void **state)
{
    /* A foreign or broken server sends raw controls: the terminal never
       sees them. */
    MAILQ_PRINT *p = mailq_print_new(MAILQ_FORMAT_TEXT);
    VSTR *out = vstr_alloc(100), *why = vstr_alloc(100);
    SHOWQ_MSG m = msg_entry("deferred", "ID\x1b[2J", 1, "s\x1b]0;x\x07", 0);

    (void)state;
    add_rcpt(&m,
             "r\xc2\x9b"
             "1m",
             "why\x1b[31m");
    assert_int_equal(mailq_print_msg(p, &m, out, why), 0);
    assert_null(strchr(vstr_str(out), 0x1b));
    assert_null(strchr(vstr_str(out), 0x07));
    assert_null(strstr(vstr_str(out), "\xc2\x9b"));
    assert_non_null(strstr(vstr_str(out), "ID?[2J"));
    assert_non_null(strstr(vstr_str(out), "(why?[31m)"));
    mailq_print_free(p);
    vstr_free(out);
    vstr_free(why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_entry_layout),
        cmocka_unit_test(test_text_marks_and_trailer),
        cmocka_unit_test(test_text_reason_widths),
        cmocka_unit_test(test_continued_recipients),
        cmocka_unit_test(test_json_lines),
        cmocka_unit_test(test_json_quote),
        cmocka_unit_test(test_text_hostile_client_side),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
