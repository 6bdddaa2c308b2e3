/*
 * test_showq_proto - unit tests for lib/mail/showq_proto: printable text
 * (controls, C1, malformed UTF-8, the length cap), the writer's splitting
 * of recipients over messages, the decoder, and malformed messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mail/attr.h"
#include "mail/showq_proto.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

/* printable - showq_printable into a static buffer for comparisons */
static const char *printable(const char *in)
{
    static VSTR *out;

    if (out == NULL)
        out = vstr_alloc(10);
    showq_printable(out, in);
    return vstr_str(out);
}

static void test_printable_ascii_and_controls(void **state)
{
    (void)state;
    assert_string_equal(printable("user@example.com"), "user@example.com");
    assert_string_equal(printable(""), "");
    assert_string_equal(printable("a\tb\x1b[31mc\x07\x7f"), "a?b?[31mc??");
    assert_string_equal(printable("\x01\x1f "), "?? ");
    VSTR *out = vstr_alloc(1);

    showq_printable(out, NULL); /* NULL is an empty text */
    assert_int_equal(vstr_len(out), 0);
    vstr_free(out);
}

static void test_printable_utf8(void **state)
{
    (void)state;
    /* Well-formed UTF-8 stays: 2, 3 and 4 byte characters. */
    assert_string_equal(printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* C1 controls (CSI, NEL) are one replacement each. */
    assert_string_equal(printable("a\xc2\x9b"
                                  "2Jb\xc2\x85"
                                  "c"),
                        "a?2Jb?c");
    /* Lone and malformed bytes: one replacement per byte that is not part
       of a character. */
    assert_string_equal(printable("\xe9t\xe9"), "?t?");
    assert_string_equal(printable("\xc0\x80"), "??");           /* overlong NUL */
    assert_string_equal(printable("\xe0\x80\xaf"), "???");      /* overlong '/' */
    assert_string_equal(printable("\xed\xa0\x80"), "???");      /* surrogate */
    assert_string_equal(printable("\xf4\x90\x80\x80"), "????"); /* above U+10FFFF */
    assert_string_equal(printable("\xf5\x80\x80\x80"), "????"); /* never valid lead */
    assert_string_equal(printable("ab\xe2\x82"), "ab??");       /* cut short */
    assert_string_equal(printable("\x80\xbf"), "??");           /* stray continuation */
    assert_string_equal(printable("\xc3\x28"), "?(");           /* bad continuation */
}

static void test_printable_cap(void **state)
{
    size_t n = SHOWQ_TEXT_MAX;
    char *in = mymalloc(2 * n + 1);
    VSTR *out = vstr_alloc(10);

    (void)state;
    /* Two-byte characters whose count does not fit: cut on a boundary. */
    for (size_t i = 0; i < n; i++)
        memcpy(in + 2 * i, "\xc3\xa9", 2);
    in[2 * n] = 0;
    showq_printable(out, in);
    assert_true(vstr_len(out) <= SHOWQ_TEXT_MAX);
    assert_int_equal(vstr_len(out) % 2, 0);
    assert_int_equal((unsigned char)vstr_str(out)[vstr_len(out) - 1], 0xa9);
    memset(in, 'x', 2 * n);
    showq_printable(out, in);
    assert_int_equal(vstr_len(out), SHOWQ_TEXT_MAX);
    myfree(in);
    vstr_free(out);
}

/* A socketpair: the writer on one end, the reader on the other. */
typedef struct PAIR {
    int fd[2];
    ATTR_STREAM *w, *r;
} PAIR;

static void pair_open(PAIR *p)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
    /* Enough buffer for a whole test conversation without a reader thread. */
    int size = 4 * 1024 * 1024;

    setsockopt(p->fd[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    setsockopt(p->fd[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    p->w = attr_stream_open(p->fd[0], 5000);
    p->r = attr_stream_open(p->fd[1], 5000);
}

static void pair_close(PAIR *p)
{
    attr_stream_free(p->w);
    attr_stream_free(p->r);
    close(p->fd[0]);
    close(p->fd[1]);
}

/* read_expect - the next message must decode to kind with count pairs */
static void read_expect(PAIR *p, SHOWQ_MSG *m, enum showq_msg_kind kind, size_t count, int more)
{
    VSTR *why = vstr_alloc(100);

    if (showq_msg_read(p->r, m, why) != 0)
        fail_msg("read: %s", vstr_str(why));
    assert_int_equal(m->kind, kind);
    if (kind != SHOWQ_MSG_END) {
        assert_int_equal(m->rcpt_count, count);
        assert_int_equal(m->more, more);
    }
    vstr_free(why);
}

static void test_roundtrip(void **state)
{
    static const size_t counts[] = {0, 1, SHOWQ_RCPT_CHUNK, SHOWQ_RCPT_CHUNK + 1, 200};
    PAIR p;
    SHOWQ_MSG m;
    char addr[64];

    (void)state;
    pair_open(&p);
    SHOWQ_WRITER *w = showq_writer_new(p.w);

    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
        assert_int_equal(showq_writer_message(w, "deferred", "11GDXQ05GBSN00C1S", 1704164645, 12345,
                                              0, "sender@example.org"),
                         0);
        for (size_t i = 0; i < counts[c]; i++) {
            snprintf(addr, sizeof(addr), "r%zu@example.com", i);
            assert_int_equal(showq_writer_rcpt(w, addr, i % 2 ? "why" : ""), 0);
        }
        assert_int_equal(showq_writer_done(w), 0);
    }
    assert_int_equal(showq_writer_end(w, SHOWQ_STAT_OK, NULL, 5), 0);
    showq_writer_free(w);

    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
        size_t left = counts[c], seen = 0;
        enum showq_msg_kind kind = SHOWQ_MSG_MESSAGE;

        do {
            size_t here = left > SHOWQ_RCPT_CHUNK ? SHOWQ_RCPT_CHUNK : left;

            read_expect(&p, &m, kind, here, left > SHOWQ_RCPT_CHUNK);
            assert_string_equal(m.queue_id, "11GDXQ05GBSN00C1S");
            if (kind == SHOWQ_MSG_MESSAGE) {
                assert_string_equal(m.queue_name, "deferred");
                assert_int_equal(m.arrival_time, 1704164645);
                assert_int_equal(m.message_size, 12345);
                assert_int_equal(m.forced_expire, 0);
                assert_string_equal(m.sender, "sender@example.org");
            }
            for (size_t i = 0; i < m.rcpt_count; i++, seen++) {
                snprintf(addr, sizeof(addr), "r%zu@example.com", seen);
                assert_string_equal(m.rcpt[i], addr);
                assert_string_equal(m.reason[i], seen % 2 ? "why" : "");
            }
            left -= here;
            kind = SHOWQ_MSG_RECIPIENTS;
            showq_msg_free(&m);
        } while (left > 0);
        assert_int_equal(seen, counts[c]);
    }
    read_expect(&p, &m, SHOWQ_MSG_END, 0, 0);
    assert_int_equal(m.status, SHOWQ_STAT_OK);
    assert_int_equal(m.count, 5);
    assert_string_equal(m.status_reason, "");
    showq_msg_free(&m);
    pair_close(&p);
}

static void test_end_status_and_early_close(void **state)
{
    PAIR p;
    SHOWQ_MSG m;
    VSTR *why = vstr_alloc(100);

    (void)state;
    pair_open(&p);
    SHOWQ_WRITER *w = showq_writer_new(p.w);

    assert_int_equal(showq_writer_end(w, SHOWQ_STAT_DENIED, "User x(1) is not allowed", 0), 0);
    showq_writer_free(w);
    read_expect(&p, &m, SHOWQ_MSG_END, 0, 0);
    assert_int_equal(m.status, SHOWQ_STAT_DENIED);
    assert_string_equal(m.status_reason, "User x(1) is not allowed");
    showq_msg_free(&m);
    /* The server goes away without "end". */
    shutdown(p.fd[0], SHUT_WR);
    assert_int_equal(showq_msg_read(p.r, &m, why), -1);
    assert_non_null(strstr(vstr_str(why), "ended early"));
    vstr_free(why);
    pair_close(&p);
}

/* decode_raw - encode the spec list, decode it as a showq message */
static int decode_raw(VSTR *why, ...)
{
    VSTR *buf = vstr_alloc(100);
    const ATTR_SPEC *list[ATTR_LIST_MAX + 1];
    va_list ap;
    ATTR_MSG *raw = NULL;
    SHOWQ_MSG m;
    size_t used;
    int ret;

    va_start(ap, why);
    attr_list_collect(&ap, list);
    va_end(ap);
    assert_int_equal(attr_encode_list(buf, NULL, 0, why, list), 0);
    assert_int_equal(attr_msg_decode(vstr_str(buf), vstr_len(buf), &used, NULL, 0, &raw, why), 0);
    ret = showq_msg_decode(raw, &m, why);
    if (ret == 0)
        showq_msg_free(&m);
    vstr_free(buf);
    return ret;
}

#define HEAD                                                                                       \
    ATTR_STR("kind", "message"), ATTR_STR("queue_name", "deferred"),                               \
        ATTR_STR("queue_id", "11GDXQ05GBSN00C1S"), ATTR_UNUM("arrival_time", 1),                   \
        ATTR_UNUM("message_size", 2), ATTR_UNUM("forced_expire", 0), ATTR_STR("sender", "s@x")

static void test_malformed(void **state)
{
    VSTR *why = vstr_alloc(100);

    (void)state;
    /* The reference message decodes. */
    assert_int_equal(decode_raw(why, HEAD, ATTR_STR("recipient", "a@b"), ATTR_STR("reason", ""),
                                ATTR_UNUM("more", 0), ATTR_STR("extra", "skipped"), ATTR_END),
                     0);
    assert_int_equal(decode_raw(why, ATTR_STR("queue_id", "X"), ATTR_END), -1);
    assert_non_null(strstr(vstr_str(why), "\"kind\" is missing"));
    assert_int_equal(decode_raw(why, ATTR_STR("kind", "bogus"), ATTR_END), -1);
    assert_non_null(strstr(vstr_str(why), "unknown kind"));
    assert_int_equal(
        decode_raw(why, ATTR_STR("kind", "message"), ATTR_STR("kind", "end"), ATTR_END), -1);
    assert_int_equal(decode_raw(why, ATTR_BIN("kind", "end", 3), ATTR_END), -1);
    /* Missing or bad members of a message. */
    assert_int_equal(decode_raw(why, ATTR_STR("kind", "message"), ATTR_END), -1);
    assert_int_equal(
        decode_raw(why, ATTR_STR("kind", "message"), ATTR_STR("queue_name", ""), ATTR_END), -1);
    assert_non_null(strstr(vstr_str(why), "empty queue name"));
    assert_int_equal(decode_raw(why, HEAD, ATTR_END), -1); /* no "more" */
    assert_int_equal(decode_raw(why, HEAD, ATTR_UNUM("more", 2), ATTR_END), -1);
    assert_non_null(strstr(vstr_str(why), "out of range"));
    assert_int_equal(decode_raw(why, ATTR_STR("kind", "message"),
                                ATTR_STR("queue_name", "deferred"), ATTR_STR("queue_id", "I"),
                                ATTR_UNUM("arrival_time", 1), ATTR_UNUM("message_size", 2),
                                ATTR_UNUM("forced_expire", 7), ATTR_STR("sender", ""),
                                ATTR_UNUM("more", 0), ATTR_END),
                     -1);
    assert_int_equal(decode_raw(why, ATTR_STR("kind", "message"),
                                ATTR_STR("queue_name", "deferred"), ATTR_STR("queue_id", "I"),
                                ATTR_NUM("arrival_time", -1), ATTR_UNUM("message_size", 2),
                                ATTR_UNUM("forced_expire", 0), ATTR_STR("sender", ""),
                                ATTR_UNUM("more", 0), ATTR_END),
                     -1);
    assert_int_equal(decode_raw(why, ATTR_STR("kind", "recipients"), ATTR_STR("queue_id", ""),
                                ATTR_UNUM("more", 0), ATTR_END),
                     -1);
    assert_non_null(strstr(vstr_str(why), "empty queue id"));
    /* Pairs out of order. */
    assert_int_equal(
        decode_raw(why, HEAD, ATTR_STR("recipient", "a@b"), ATTR_UNUM("more", 0), ATTR_END), -1);
    assert_non_null(strstr(vstr_str(why), "recipient without a reason"));
    assert_int_equal(decode_raw(why, HEAD, ATTR_STR("reason", "x"), ATTR_UNUM("more", 0), ATTR_END),
                     -1);
    assert_non_null(strstr(vstr_str(why), "reason without a recipient"));
    assert_int_equal(decode_raw(why, HEAD, ATTR_STR("recipient", "a@b"),
                                ATTR_STR("recipient", "c@d"), ATTR_STR("reason", ""),
                                ATTR_UNUM("more", 0), ATTR_END),
                     -1);
    assert_int_equal(decode_raw(why, HEAD, ATTR_STR("recipient", "a@b"), ATTR_STR("reason", ""),
                                ATTR_STR("reason", ""), ATTR_UNUM("more", 0), ATTR_END),
                     -1);
    assert_int_equal(decode_raw(why, HEAD, ATTR_STR("recipient", ""), ATTR_STR("reason", ""),
                                ATTR_UNUM("more", 0), ATTR_END),
                     -1);
    assert_int_equal(decode_raw(why, HEAD, ATTR_BIN("recipient", "a", 1), ATTR_STR("reason", ""),
                                ATTR_UNUM("more", 0), ATTR_END),
                     -1);
    assert_int_equal(decode_raw(why, HEAD, ATTR_STR("recipient", "a"), ATTR_UNUM("reason", 1),
                                ATTR_UNUM("more", 0), ATTR_END),
                     -1);
    /* End without status, status out of range. */
    assert_int_equal(decode_raw(why, ATTR_STR("kind", "end"), ATTR_END), -1);
    assert_int_equal(decode_raw(why, ATTR_STR("kind", "end"), ATTR_UNUM("status", 1000), ATTR_END),
                     -1);
    vstr_free(why);
}

static void test_too_many_pairs(void **state)
{
    VSTR *buf = vstr_alloc(100), *why = vstr_alloc(100);
    ATTR_MSG *raw;
    SHOWQ_MSG m;
    size_t used;

    (void)state;
    assert_int_equal(attr_encode(buf, NULL, ATTR_FLAG_MORE, why, HEAD, ATTR_END), 0);
    size_t prior = vstr_len(buf);

    /* SHOWQ_RCPT_CHUNK + 1 pairs: more than one message may carry. */
    for (int i = 0; i <= SHOWQ_RCPT_CHUNK; i++) {
        const ATTR_SPEC *list[] = {ATTR_STR("recipient", "a@b"), ATTR_STR("reason", ""), NULL};

        assert_int_equal(attr_encode_cont(buf, NULL, ATTR_FLAG_MORE, why, list,
                                          vstr_len(buf) - prior, 7 + (size_t)i * 2),
                         0);
    }
    const ATTR_SPEC *last[] = {ATTR_UNUM("more", 0), NULL};

    assert_int_equal(attr_encode_cont(buf, NULL, 0, why, last, 0, 0), 0);
    assert_int_equal(attr_msg_decode(vstr_str(buf), vstr_len(buf), &used, NULL, 0, &raw, why), 0);
    assert_int_equal(showq_msg_decode(raw, &m, why), -1);
    assert_non_null(strstr(vstr_str(why), "more than"));
    vstr_free(buf);
    vstr_free(why);
}

static void test_writer_misuse_panics_are_bugs(void **state)
{
    /* Calling order is the caller's job; the writer refuses a client that
       went away with an error, not a crash. */
    PAIR p;

    (void)state;
    pair_open(&p);
    SHOWQ_WRITER *w = showq_writer_new(p.w);

    close(p.fd[1]);
    assert_int_equal(showq_writer_message(w, "deferred", "11GDXQ05GBSN00C1S", 1, 2, 0, "s"), 0);
    assert_int_equal(showq_writer_rcpt(w, "a@b", ""), 0);
    assert_int_equal(showq_writer_done(w), -1);
    assert_int_equal(errno, EPIPE);
    showq_writer_free(w);
    attr_stream_free(p.w);
    attr_stream_free(p.r);
    close(p.fd[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printable_ascii_and_controls),
        cmocka_unit_test(test_printable_utf8),
        cmocka_unit_test(test_printable_cap),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_end_status_and_early_close),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_too_many_pairs),
        cmocka_unit_test(test_writer_misuse_panics_are_bugs),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
