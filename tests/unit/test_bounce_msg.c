/*
 * test_bounce_msg - unit tests for delivery status notification text
 * (lib/mail/bounce_msg): one notice compared octet for octet with the
 * expected text, then the properties that must hold for any input: no
 * line over 998 octets, no control characters from reasons in headers,
 * a boundary that the returned message does not contain, the header
 * section finder on malformed input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mail/bounce_msg.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define T_NOW 1700000000 /* Tue, 14 Nov 2023 22:13:20 UTC */

static const char golden_failure[] =
    "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n"
    "Subject: Undelivered Mail Returned to Sender\n"
    "To: <sender@origin.example>\n"
    "Auto-Submitted: auto-replied\n"
    "Message-Id: <20231114221320.1NOTICE0000000000@mx.example.net>\n"
    "Date: Tue, 14 Nov 2023 22:13:20 +0000 (UTC)\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/report; report-type=delivery-status;\n"
    "\tboundary=\"1NOTICE0000000000.1700000000/mx.example.net\"\n"
    "Content-Transfer-Encoding: 7bit\n"
    "\n"
    "This is a MIME-encapsulated message.\n"
    "\n"
    "--1NOTICE0000000000.1700000000/mx.example.net\n"
    "Content-Description: Notification\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "\n"
    "This is the mail system at host mx.example.net.\n"
    "\n"
    "I'm sorry to have to inform you that your message could not\n"
    "be delivered to one or more recipients. It's attached below.\n"
    "\n"
    "For further assistance, please send mail to postmaster.\n"
    "\n"
    "If you do so, please include this problem report. You can\n"
    "delete your own text from the attached returned message.\n"
    "\n"
    "                   The mail system\n"
    "\n"
    "<bad@dest.example> (expanded from <alias@origin.example>): host "
    "mx.dest.example[192.0.2.1] said: 550 5.1.1 <bad@dest.example>: User unknown (in "
    "reply to RCPT TO command)\n"
    "\n"
    "--1NOTICE0000000000.1700000000/mx.example.net\n"
    "Content-Description: Delivery report\n"
    "Content-Type: message/delivery-status\n"
    "\n"
    "Reporting-MTA: dns; mx.example.net\n"
    "Original-Envelope-Id: ENV-1\n"
    "X-Postern-Queue-ID: 1ORIGINAL00000000\n"
    "X-Postern-Sender: rfc822; sender@origin.example\n"
    "Arrival-Date: Tue, 14 Nov 2023 22:03:20 +0000 (UTC)\n"
    "\n"
    "Final-Recipient: rfc822; bad@dest.example\n"
    "Original-Recipient: rfc822; orig@origin.example\n"
    "Action: failed\n"
    "Status: 5.1.1\n"
    "Remote-MTA: dns; mx.dest.example\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <bad@dest.example>: User unknown\n"
    "\n"
    "--1NOTICE0000000000.1700000000/mx.example.net\n"
    "Content-Description: Undelivered Message Headers\n"
    "Content-Type: text/rfc822-headers\n"
    "\n"
    "Subject: hello\n"
    "From: sender@origin.example\n"
    "\n"
    "\n"
    "--1NOTICE0000000000.1700000000/mx.example.net--\n";

/* base - a notice with one recipient */
static void base(BOUNCE_MSG *m, BOUNCE_MSG_RCPT *r)
{
    *r = (BOUNCE_MSG_RCPT){
        .address = "bad@dest.example",
        .orig = "alias@origin.example",
        .orcpt = "rfc822;orig@origin.example",
        .action = "failed",
        .status = "5.1.1",
        .reason = "host mx.dest.example[192.0.2.1] said: 550 5.1.1 <bad@dest.example>: User "
                  "unknown (in reply to RCPT TO command)",
        .relay = "mx.dest.example[192.0.2.1]:25",
        .mtype = "dns",
        .mname = "mx.dest.example",
        .dtype = "smtp",
        .dtext = "550 5.1.1 <bad@dest.example>: User unknown",
    };
    *m = (BOUNCE_MSG){
        .kind = BOUNCE_MSG_FAILURE,
        .myhostname = "mx.example.net",
        .from = "MAILER-DAEMON@mx.example.net",
        .to = "sender@origin.example",
        .notice_id = "1NOTICE0000000000",
        .now = T_NOW,
        .queue_id = "1ORIGINAL00000000",
        .sender = "sender@origin.example",
        .envid = "ENV-1",
        .arrival = {T_NOW - 600, 0},
        .rcpt = r,
        .rcpt_count = 1,
        .ret = BOUNCE_MSG_RET_HDRS,
        .original = "Subject: hello\nFrom: sender@origin.example\n\n",
        .original_len = strlen("Subject: hello\nFrom: sender@origin.example\n\n"),
    };
}

/* lines_ok - every line at most 998 octets, no CR, no control characters */
static void lines_ok(const VSTR *text)
{
    const char *p = vstr_str(text), *end = p + vstr_len(text);

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

        assert_true(len <= BOUNCE_MSG_LINE_MAX);
        for (size_t i = 0; i < len; i++)
            assert_false((unsigned char)p[i] < 0x20 && p[i] != '\t');
        p += len + 1;
    }
}

static void test_golden_failure(void **state)
{
    BOUNCE_MSG m;
    BOUNCE_MSG_RCPT r;
    VSTR *out = vstr_alloc(100);

    (void)state;
    base(&m, &r);
    bounce_msg_build(&m, out);
    if (strcmp(vstr_str(out), golden_failure) != 0) {
        /* Show where the texts part (cmocka cuts long messages). */
        size_t i = 0;

        while (vstr_str(out)[i] && vstr_str(out)[i] == golden_failure[i])
            i++;
        fail_msg("differs at offset %zu: got \"%.60s\", want \"%.60s\"", i, vstr_str(out) + i,
                 golden_failure + i);
    }
    lines_ok(out);
    vstr_free(out);
}

static void test_full_and_8bit(void **state)
{
    BOUNCE_MSG m;
    BOUNCE_MSG_RCPT r;
    VSTR *out = vstr_alloc(100);
    const char *orig = "Subject: caf\xc3\xa9\n\nbody \xc3\xa9\nno newline at end";

    (void)state;
    base(&m, &r);
    m.ret = BOUNCE_MSG_RET_FULL;
    m.original = orig;
    m.original_len = strlen(orig);
    m.eightbit = 1;
    m.envid = "";
    r.orcpt = "";
    bounce_msg_build(&m, out);
    assert_non_null(strstr(vstr_str(out), "Content-Transfer-Encoding: 8bit\n\nThis is a MIME"));
    assert_non_null(strstr(vstr_str(out), "Content-Description: Undelivered Message\n"
                                          "Content-Type: message/rfc822\n"
                                          "Content-Transfer-Encoding: 8bit\n\n"));
    assert_non_null(strstr(vstr_str(out), "no newline at end\n\n--"));
    /* No ORCPT: the address before aliasing is the original recipient. */
    assert_non_null(strstr(vstr_str(out), "Original-Recipient: rfc822; alias@origin.example\n"));
    assert_null(strstr(vstr_str(out), "Original-Envelope-Id"));
    vstr_free(out);
}

static void test_hostile_values(void **state)
{
    BOUNCE_MSG m;
    BOUNCE_MSG_RCPT r;
    VSTR *out = vstr_alloc(100), *reason = vstr_alloc(100), *orig = vstr_alloc(100);
    char word[3000];

    (void)state;
    base(&m, &r);
    /* A reply text that tries to add a header, and a word longer than a line. */
    memset(word, 'w', sizeof(word) - 1);
    word[sizeof(word) - 1] = 0;
    vstr_sprintf(reason, "550 evil\r\nX-Injected: yes\n\x01 %s end", word);
    r.reason = vstr_str(reason);
    r.dtext = vstr_str(reason);
    r.dtype = "smtp";
    r.mname = "host\nX-Other: 1";
    /* The original contains what the boundary would be. */
    vstr_sprintf(orig, "Subject: x\n\n--1NOTICE0000000000.1700000000/mx.example.net\n");
    m.original = vstr_str(orig);
    m.original_len = vstr_len(orig);
    m.ret = BOUNCE_MSG_RET_FULL;
    bounce_msg_build(&m, out);
    lines_ok(out);
    assert_null(strstr(vstr_str(out), "\nX-Injected"));
    assert_null(strstr(vstr_str(out), "\nX-Other"));
    assert_non_null(strstr(vstr_str(out), "boundary=\"1NOTICE0000000000.1700000000.1/"));
    assert_non_null(strstr(vstr_str(out), "--1NOTICE0000000000.1700000000.1/mx.example.net--\n"));
    vstr_free(out);
    vstr_free(reason);
    vstr_free(orig);
}

static void test_delay_and_success(void **state)
{
    BOUNCE_MSG m;
    BOUNCE_MSG_RCPT r;
    VSTR *out = vstr_alloc(100);

    (void)state;
    base(&m, &r);
    m.kind = BOUNCE_MSG_DELAY;
    m.delay_warning_time = 4 * 3600;
    m.max_lifetime = 5 * 86400;
    m.retry_until = T_NOW + 86400;
    r.action = "delayed";
    r.status = "4.4.1";
    bounce_msg_build(&m, out);
    assert_non_null(strstr(vstr_str(out), "Subject: Delayed Mail (still being retried)\n"));
    assert_non_null(strstr(vstr_str(out), "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND "
                                          "YOUR MESSAGE. #\n"));
    assert_non_null(strstr(vstr_str(out), "for more than 4 hour(s).\nIt will be retried until it "
                                          "is 5 day(s) old.\n"));
    assert_non_null(strstr(vstr_str(out), "Action: delayed\nStatus: 4.4.1\n"));
    assert_non_null(strstr(vstr_str(out), "Will-Retry-Until: Wed, 15 Nov 2023 22:13:20"));
    /* Short settings are stated exactly, not as "0 hour(s)". */
    m.delay_warning_time = 90;
    bounce_msg_build(&m, out);
    assert_non_null(strstr(vstr_str(out), "for more than 90 second(s)."));

    base(&m, &r);
    m.kind = BOUNCE_MSG_SUCCESS;
    r.action = "relayed";
    r.status = "2.0.0";
    r.reason = "250 2.0.0 Ok: queued as X";
    r.dtext = r.reason;
    bounce_msg_build(&m, out);
    assert_non_null(strstr(vstr_str(out), "Subject: Successful Mail Delivery Report\n"));
    assert_non_null(strstr(vstr_str(out), "delivery via mx.dest.example[192.0.2.1]:25: 250 2.0.0"));
    assert_non_null(strstr(vstr_str(out), "Action: relayed\nStatus: 2.0.0\n"));
    /* No remote reply: the reason is the diagnostic, as X-Postern. */
    base(&m, &r);
    r.dtype = "";
    r.mtype = "";
    r.reason = "mail for x loops back to myself";
    bounce_msg_build(&m, out);
    assert_non_null(strstr(vstr_str(out), "Diagnostic-Code: X-Postern; mail for x loops back"));
    assert_null(strstr(vstr_str(out), "Remote-MTA"));
    vstr_free(out);
}

static void test_postmaster_and_utf8(void **state)
{
    BOUNCE_MSG m;
    BOUNCE_MSG_RCPT r;
    VSTR *out = vstr_alloc(100);

    (void)state;
    base(&m, &r);
    m.postmaster = 1;
    m.sender = "";
    m.to = "postmaster@mx.example.net";
    bounce_msg_build(&m, out);
    assert_non_null(strstr(vstr_str(out), "Subject: Postmaster Copy: Undelivered Mail\n"));
    assert_null(strstr(vstr_str(out), "I'm sorry"));
    assert_non_null(strstr(vstr_str(out), "X-Postern-Sender: rfc822;\n"));
    base(&m, &r);
    m.utf8 = 1;
    r.address = "j\xc3\xbcrgen@dest.example";
    bounce_msg_build(&m, out);
    assert_non_null(strstr(vstr_str(out), "report-type=global-delivery-status"));
    assert_non_null(strstr(vstr_str(out), "Final-Recipient: utf-8; j\xc3\xbcrgen@dest.example\n"));
    assert_non_null(strstr(vstr_str(out), "Content-Type: message/global-headers\n"));
    vstr_free(out);
}

static void test_header_len(void **state)
{
    (void)state;
    assert_int_equal(bounce_msg_header_len("A: b\n\nbody\n", 11), 6);
    assert_int_equal(bounce_msg_header_len("A: b\r\n\r\nbody", 12), 8);
    /* No empty line: all of it is header. */
    assert_int_equal(bounce_msg_header_len("A: b\nC: d", 9), 9);
    assert_int_equal(bounce_msg_header_len("", 0), 0);
    assert_int_equal(bounce_msg_header_len("\nbody", 5), 1);
    /* A NUL inside does not stop the search. */
    assert_int_equal(bounce_msg_header_len("A\0b\n\nx", 6), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_failure),      cmocka_unit_test(test_full_and_8bit),
        cmocka_unit_test(test_hostile_values),      cmocka_unit_test(test_delay_and_success),
        cmocka_unit_test(test_postmaster_and_utf8), cmocka_unit_test(test_header_len),
    };

    setenv("TZ", "UTC", 1);
    tzset();
    msg_init("test_bounce_msg");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
