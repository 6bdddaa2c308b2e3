/*
 * test_attr - unit tests for the attribute protocol (lib/mail/attr*.c):
 * wire format, limits, strictness flags, malformed and truncated input,
 * timeouts, and a real client/server exchange over a UNIX socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mail/attr.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

/*
 * Helpers.
 */

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* raw_rec - append a record with any field values, to forge input */
static void raw_rec(VSTR *b, int type, const char *name, size_t name_len, uint32_t value_len,
                    const void *value, size_t value_bytes)
{
    unsigned char len[4] = {(unsigned char)(value_len >> 24), (unsigned char)(value_len >> 16),
                            (unsigned char)(value_len >> 8), (unsigned char)value_len};

    vstr_addch(b, type);
    vstr_addch(b, (int)name_len);
    vstr_ncat(b, name, strlen(name));
    vstr_ncat(b, len, 4);
    if (value_bytes)
        vstr_ncat(b, value, value_bytes);
}

/* raw_str - a well-formed string record */
static void raw_str(VSTR *b, const char *name, const char *value)
{
    raw_rec(b, ATTR_TYPE_STR, name, strlen(name), (uint32_t)strlen(value), value, strlen(value));
}

static void raw_end(VSTR *b)
{
    vstr_addch(b, ATTR_TYPE_END);
}

static void make_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* write_all - test-side blocking write */
static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);

        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/* sample_encode - a message with every type */
static void sample_encode(VSTR *out)
{
    static const unsigned char bin[] = {0, 1, 2, 0xff, 0, 'x'};

    assert_int_equal(attr_encode(out, NULL, 0, NULL, ATTR_STR("queue_id", "4BxJ2k1abcZ"),
                                 ATTR_NUM("delta", -42), ATTR_UNUM("size", 123456789012ULL),
                                 ATTR_BIN("data", bin, sizeof(bin)), ATTR_STR("empty", ""),
                                 ATTR_END),
                     0);
}

/*
 * Wire format and round trips.
 */

static void test_wire_bytes(void **state)
{
    (void)state;
    VSTR *out = vstr_alloc(64);
    static const unsigned char want[] = {
        0x01, 0x01, 'a',  0,    0,    0,    2, 'x',  'y',  /* STR a = "xy" */
        0x02, 0x01, 'n',  0,    0,    0,    8, 0xff, 0xff, /* INT n = -2 */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,                /* */
        0x03, 0x01, 'u',  0,    0,    0,    8, 0,    0,    /* UINT u = 258 */
        0,    0,    0,    0,    1,    2,                   /* */
        0x04, 0x01, 'b',  0,    0,    0,    1, 0,          /* BIN b = "\0" */
        0x00,                                              /* end */
    };

    assert_int_equal(attr_encode(out, NULL, 0, NULL, ATTR_STR("a", "xy"), ATTR_NUM("n", -2),
                                 ATTR_UNUM("u", 258), ATTR_BIN("b", "", 1), ATTR_END),
                     0);
    assert_int_equal(vstr_len(out), sizeof(want));
    assert_memory_equal(vstr_str(out), want, sizeof(want));
    vstr_free(out);
}

static void test_roundtrip_memory(void **state)
{
    (void)state;
    VSTR *out = vstr_alloc(64), *id = vstr_alloc(16), *data = vstr_alloc(16), *why = vstr_alloc(64);
    long long lmin = 0, lmax = 0, neg = 0;
    unsigned long long umax = 0, zero = 1;
    size_t used = 0;

    assert_int_equal(attr_encode(out, NULL, 0, why, ATTR_STR("id", "ABC.def-1"),
                                 ATTR_NUM("lmin", LLONG_MIN), ATTR_NUM("lmax", LLONG_MAX),
                                 ATTR_NUM("neg", -1), ATTR_UNUM("umax", ULLONG_MAX),
                                 ATTR_UNUM("zero", 0), ATTR_BIN("data", "a\0b\n", 4), ATTR_END),
                     0);
    int n = attr_decode(vstr_str(out), vstr_len(out), &used, NULL, ATTR_FLAG_STRICT, why,
                        ATTR_STR_OUT("id", id), ATTR_NUM_OUT("lmin", &lmin),
                        ATTR_NUM_OUT("lmax", &lmax), ATTR_NUM_OUT("neg", &neg),
                        ATTR_UNUM_OUT("umax", &umax), ATTR_UNUM_OUT("zero", &zero),
                        ATTR_BIN_OUT("data", data), ATTR_END);

    assert_int_equal(n, 7);
    assert_int_equal(used, vstr_len(out));
    assert_string_equal(vstr_str(id), "ABC.def-1");
    assert_true(lmin == LLONG_MIN);
    assert_true(lmax == LLONG_MAX);
    assert_true(neg == -1);
    assert_true(umax == ULLONG_MAX);
    assert_true(zero == 0);
    assert_int_equal(vstr_len(data), 4);
    assert_memory_equal(vstr_str(data), "a\0b\n", 4);
    vstr_free(out);
    vstr_free(id);
    vstr_free(data);
    vstr_free(why);
}

static void test_roundtrip_stream(void **state)
{
    (void)state;
    int sv[2];
    ATTR_STREAM *a, *b;
    VSTR *id = vstr_alloc(16), *data = vstr_alloc(16);
    long long delta = 0;
    unsigned long long size = 0;
    static const unsigned char bin[] = {0, 1, 2, 0xff};

    make_pair(sv);
    a = attr_stream_open(sv[0], 2000);
    b = attr_stream_open(sv[1], 2000);
    assert_int_equal(attr_print(a, 0, ATTR_STR("queue_id", "4BxJ2k1abcZ"), ATTR_NUM("delta", -7),
                                ATTR_UNUM("size", 99), ATTR_BIN("data", bin, sizeof(bin)),
                                ATTR_END),
                     0);
    assert_int_equal(attr_scan(b, ATTR_FLAG_STRICT, ATTR_STR_OUT("queue_id", id),
                               ATTR_NUM_OUT("delta", &delta), ATTR_UNUM_OUT("size", &size),
                               ATTR_BIN_OUT("data", data), ATTR_END),
                     4);
    assert_string_equal(vstr_str(id), "4BxJ2k1abcZ");
    assert_true(delta == -7);
    assert_true(size == 99);
    assert_int_equal(vstr_len(data), sizeof(bin));
    assert_memory_equal(vstr_str(data), bin, sizeof(bin));
    assert_string_equal(attr_stream_why(b), "");

    /* And back the other way on the same connection. */
    assert_int_equal(attr_print(b, 0, ATTR_UNUM("status", 0), ATTR_END), 0);
    assert_int_equal(attr_scan(a, 0, ATTR_UNUM_OUT("status", &size), ATTR_END), 1);
    assert_true(size == 0);

    /* Peer closes between messages: ENODATA, a clean end. */
    close(sv[0]);
    assert_int_equal(attr_scan(b, 0, ATTR_UNUM_OUT("status", &size), ATTR_END), -1);
    assert_int_equal(errno, ENODATA);
    attr_stream_free(a);
    attr_stream_free(b);
    close(sv[1]);
    vstr_free(id);
    vstr_free(data);
}

static void test_empty_values(void **state)
{
    (void)state;
    VSTR *out = vstr_alloc(16), *s = vstr_alloc(16), *b = vstr_alloc(16);
    size_t used;

    vstr_cpy(s, "old");
    vstr_cpy(b, "old");
    assert_int_equal(
        attr_encode(out, NULL, 0, NULL, ATTR_STR("s", ""), ATTR_BIN("b", NULL, 0), ATTR_END), 0);
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, NULL,
                                 ATTR_STR_OUT("s", s), ATTR_BIN_OUT("b", b), ATTR_END),
                     2);
    assert_int_equal(vstr_len(s), 0);
    assert_string_equal(vstr_str(s), "");
    assert_int_equal(vstr_len(b), 0);

    /* An empty message is just the end marker. */
    vstr_reset(out);
    assert_int_equal(attr_encode(out, NULL, 0, NULL, ATTR_END), 0);
    assert_int_equal(vstr_len(out), 1);
    assert_int_equal(attr_decode(vstr_str(out), 1, &used, NULL, 0, NULL, ATTR_END), 0);
    assert_int_equal(used, 1);
    vstr_free(out);
    vstr_free(s);
    vstr_free(b);
}

/*
 * Limits.
 */

static void test_value_limit(void **state)
{
    (void)state;
    size_t max = ATTR_VALUE_MAX;
    char *big = mymalloc(max + 2);
    VSTR *out = vstr_alloc(16), *got = vstr_alloc(16), *why = vstr_alloc(64);
    size_t used;

    memset(big, 'x', max + 1);
    big[max + 1] = 0;

    /* Exactly at the limit: accepted both ways. */
    assert_int_equal(attr_encode(out, NULL, 0, why, ATTR_BIN("v", big, max), ATTR_END), 0);
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, why,
                                 ATTR_BIN_OUT("v", got), ATTR_END),
                     1);
    assert_int_equal(vstr_len(got), max);

    /* One byte over: the writer refuses and leaves out unchanged. */
    size_t before = vstr_len(out);

    assert_int_equal(attr_encode(out, NULL, 0, why, ATTR_STR("v", big), ATTR_END), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_int_equal(vstr_len(out), before);
    assert_non_null(strstr(vstr_str(why), "exceeds limit"));

    /* The reader refuses from the header alone, before any value byte. */
    vstr_reset(out);
    raw_rec(out, ATTR_TYPE_BIN, "v", 1, (uint32_t)(max + 1), NULL, 0);
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, why,
                                 ATTR_BIN_OUT("v", got), ATTR_END),
                     -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_int_equal(used, 0);
    assert_non_null(strstr(vstr_str(why), "\"v\""));

    myfree(big);
    vstr_free(out);
    vstr_free(got);
    vstr_free(why);
}

static void test_forged_lengths(void **state)
{
    (void)state;
    VSTR *in = vstr_alloc(64), *why = vstr_alloc(64), *got = vstr_alloc(16);
    size_t used;
    ATTR_MSG *msg;

    /* A value length of 4 GiB - 1: error at once, nothing allocated for it. */
    raw_rec(in, ATTR_TYPE_STR, "queue_id", 8, 0xffffffffu, NULL, 0);
    assert_int_equal(attr_decode(vstr_str(in), vstr_len(in), &used, NULL, 0, why,
                                 ATTR_STR_OUT("queue_id", got), ATTR_END),
                     -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_int_equal(attr_msg_decode(vstr_str(in), vstr_len(in), &used, NULL, 0, &msg, why), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_null(msg);

    /* Too many attributes: 1025 tiny records. */
    vstr_reset(in);
    for (int i = 0; i <= ATTR_COUNT_MAX; i++)
        raw_str(in, "a", "");
    raw_end(in);
    assert_int_equal(attr_decode(vstr_str(in), vstr_len(in), &used, NULL, 0, why, ATTR_END), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_non_null(strstr(vstr_str(why), "more than 1024 attributes"));

    /* Exactly the count limit is fine. */
    vstr_reset(in);
    for (int i = 0; i < ATTR_COUNT_MAX; i++)
        raw_str(in, "a", "");
    raw_end(in);
    assert_int_equal(attr_decode(vstr_str(in), vstr_len(in), &used, NULL, 0, why, ATTR_END), 0);

    /* Values each within value_max whose sum passes msg_max. */
    ATTR_LIMITS lim = {.name_max = 8, .value_max = 40, .msg_max = 100, .count_max = 10};

    vstr_reset(in);
    for (int i = 0; i < 3; i++)
        raw_str(in, "k", "0123456789012345678901234567890123456789");
    raw_end(in);
    assert_int_equal(attr_decode(vstr_str(in), vstr_len(in), &used, &lim, 0, why, ATTR_END), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_non_null(strstr(vstr_str(why), "message exceeds 100 bytes"));

    /* A record ending exactly at msg_max leaves no room for the end marker. */
    vstr_reset(in);
    raw_str(in, "k", "0123456789012345678901234567890123456789"); /* 47 bytes */
    raw_rec(in, ATTR_TYPE_BIN, "k", 1, 46, "0123456789012345678901234567890123456789012345",
            46); /* 53: 100 in all */
    assert_int_equal(attr_decode(vstr_str(in), vstr_len(in), &used, &lim, 0, why, ATTR_END), -1);
    assert_int_equal(errno, EMSGSIZE);

    vstr_free(in);
    vstr_free(why);
    vstr_free(got);
}

static void test_names(void **state)
{
    (void)state;
    VSTR *in = vstr_alloc(64), *why = vstr_alloc(64), *got = vstr_alloc(16);
    char name[ATTR_NAME_MAX + 2];
    size_t used;

    memset(name, 'n', sizeof(name));
    name[ATTR_NAME_MAX] = 0;

    /* ATTR_NAME_MAX bytes: fine. */
    assert_int_equal(attr_encode(in, NULL, 0, why, ATTR_STR(name, "v"), ATTR_END), 0);
    assert_int_equal(attr_decode(vstr_str(in), vstr_len(in), &used, NULL, 0, why,
                                 ATTR_STR_OUT(name, got), ATTR_END),
                     1);

    /* One more: the writer says EINVAL, the reader EMSGSIZE. */
    name[ATTR_NAME_MAX] = 'n';
    name[ATTR_NAME_MAX + 1] = 0;
    vstr_reset(in);
    assert_int_equal(attr_encode(in, NULL, 0, why, ATTR_STR(name, "v"), ATTR_END), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(vstr_len(in), 0);
    raw_rec(in, ATTR_TYPE_STR, name, strlen(name), 1, "v", 1);
    raw_end(in);
    assert_int_equal(attr_decode(vstr_str(in), vstr_len(in), &used, NULL, 0, why, ATTR_END), -1);
    assert_int_equal(errno, EMSGSIZE);

    /* Bad characters, and the empty name. */
    static const char *const bad[] = {"a b", "a\nb", "a=b", "x\xc3\xa9", "a:b"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vstr_reset(in);
        assert_int_equal(attr_encode(in, NULL, 0, why, ATTR_STR(bad[i], "v"), ATTR_END), -1);
        assert_int_equal(errno, EINVAL);
        raw_rec(in, ATTR_TYPE_STR, bad[i], strlen(bad[i]), 1, "v", 1);
        raw_end(in);
        assert_int_equal(attr_decode(vstr_str(in), vstr_len(in), &used, NULL, 0, why, ATTR_END),
                         -1);
        assert_int_equal(errno, EPROTO);
        assert_non_null(strstr(vstr_str(why), "bad character"));
    }
    vstr_reset(in);
    assert_int_equal(attr_encode(in, NULL, 0, why, ATTR_STR("", "v"), ATTR_END), -1);
    assert_int_equal(errno, EINVAL);
    raw_rec(in, ATTR_TYPE_STR, "", 0, 1, "v", 1);
    raw_end(in);
    assert_int_equal(attr_decode(vstr_str(in), vstr_len(in), &used, NULL, 0, why, ATTR_END), -1);
    assert_int_equal(errno, EPROTO);
    vstr_free(in);
    vstr_free(why);
    vstr_free(got);
}

static void test_limits_override(void **state)
{
    (void)state;
    int sv[2];
    ATTR_STREAM *a, *b;
    VSTR *got = vstr_alloc(16);
    ATTR_LIMITS small = {.name_max = 4, .value_max = 8, .msg_max = 64, .count_max = 2};
    ATTR_LIMITS bad = small;

    make_pair(sv);
    a = attr_stream_open(sv[0], 2000);
    b = attr_stream_open(sv[1], 2000);

    /* Out of range limits are refused. */
    bad.name_max = ATTR_NAME_HARD_MAX + 1;
    assert_int_equal(attr_stream_set_limits(b, &bad), -1);
    assert_int_equal(errno, EINVAL);
    bad = small;
    bad.value_max = bad.msg_max + 1;
    assert_int_equal(attr_stream_set_limits(b, &bad), -1);
    bad = small;
    bad.msg_max = 0;
    assert_int_equal(attr_stream_set_limits(b, &bad), -1);
    assert_int_equal(attr_stream_set_limits(b, &small), 0);

    /* The writer has the defaults; the reader's smaller limits apply. */
    assert_int_equal(attr_print(a, 0, ATTR_STR("v", "123456789"), ATTR_END), 0);
    assert_int_equal(attr_scan(b, 0, ATTR_STR_OUT("v", got), ATTR_END), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_non_null(strstr(attr_stream_why(b), "exceeds limit 8"));
    attr_stream_free(b);
    close(sv[1]);

    /* A writer with small limits refuses before sending. */
    assert_int_equal(attr_stream_set_limits(a, &small), 0);
    assert_int_equal(
        attr_print(a, 0, ATTR_STR("v", "1"), ATTR_STR("w", "2"), ATTR_STR("x", "3"), ATTR_END), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_int_equal(attr_print(a, 0, ATTR_STR("toolong", "1"), ATTR_END), -1);
    assert_int_equal(errno, EINVAL);
    attr_stream_free(a);
    close(sv[0]);
    vstr_free(got);
}

/*
 * Truncation at every offset.
 */

static void test_truncated_memory(void **state)
{
    (void)state;
    VSTR *out = vstr_alloc(64), *why = vstr_alloc(64);
    ATTR_MSG *msg;
    size_t used, msg_len = 0;

    sample_encode(out);
    for (size_t k = 0; k < vstr_len(out); k++) {
        assert_int_equal(attr_decode(vstr_str(out), k, &used, NULL, 0, why, ATTR_END), ATTR_MORE);
        assert_int_equal(used, 0);
        assert_int_equal(attr_msg_decode(vstr_str(out), k, &used, NULL, 0, &msg, why), ATTR_MORE);
        assert_null(msg);
    }

    /* attr_frame fed one more byte at a time keeps its place. */
    ATTR_FRAME fr = ATTR_FRAME_INIT;

    for (size_t k = 0; k < vstr_len(out); k++)
        assert_int_equal(attr_frame(&fr, vstr_str(out), k, NULL, &msg_len, why), ATTR_MORE);
    assert_int_equal(attr_frame(&fr, vstr_str(out), vstr_len(out), NULL, &msg_len, why), 0);
    assert_int_equal(msg_len, vstr_len(out));
    assert_int_equal(fr.count, 5);
    vstr_free(out);
    vstr_free(why);
}

static void test_truncated_stream(void **state)
{
    (void)state;
    VSTR *out = vstr_alloc(64), *id = vstr_alloc(16);

    sample_encode(out);
    for (size_t k = 0; k < vstr_len(out); k++) {
        int sv[2];
        ATTR_STREAM *s;

        make_pair(sv);
        if (k)
            write_all(sv[0], vstr_str(out), k);
        close(sv[0]);
        s = attr_stream_open(sv[1], 2000);
        assert_int_equal(attr_scan(s, 0, ATTR_STR_OPT("queue_id", id), ATTR_END), -1);
        if (k == 0) {
            assert_int_equal(errno, ENODATA);
        } else {
            assert_int_equal(errno, EPROTO);
            assert_non_null(strstr(attr_stream_why(s), "truncated"));
        }
        attr_stream_free(s);
        close(sv[1]);
    }
    vstr_free(out);
    vstr_free(id);
}

/*
 * Strictness flags.
 */

static void test_extra_attributes(void **state)
{
    (void)state;
    VSTR *out = vstr_alloc(64), *why = vstr_alloc(64), *id = vstr_alloc(16);
    size_t used;

    assert_int_equal(attr_encode(out, NULL, 0, NULL, ATTR_STR("queue_id", "Q1"),
                                 ATTR_UNUM("future_field", 7), ATTR_BIN("blob", "z", 1), ATTR_END),
                     0);
    /* Skipped by default, so a newer peer can talk to an older one. */
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, why,
                                 ATTR_STR_OUT("queue_id", id), ATTR_END),
                     1);
    assert_string_equal(vstr_str(id), "Q1");
    /* An error with ATTR_FLAG_EXTRA; the framing was fine, so used is set. */
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, ATTR_FLAG_EXTRA, why,
                                 ATTR_STR_OUT("queue_id", id), ATTR_END),
                     -1);
    assert_int_equal(errno, EBADMSG);
    assert_int_equal(used, vstr_len(out));
    assert_non_null(strstr(vstr_str(why), "unexpected attribute \"future_field\""));
    vstr_free(out);
    vstr_free(why);
    vstr_free(id);
}

static void test_missing_and_optional(void **state)
{
    (void)state;
    VSTR *out = vstr_alloc(64), *why = vstr_alloc(64), *id = vstr_alloc(16), *opt = vstr_alloc(16);
    unsigned long long size = 555;
    size_t used;

    assert_int_equal(attr_encode(out, NULL, 0, NULL, ATTR_STR("queue_id", "Q1"), ATTR_END), 0);
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, why,
                                 ATTR_STR_OUT("queue_id", id), ATTR_UNUM_OUT("size", &size),
                                 ATTR_END),
                     -1);
    assert_int_equal(errno, EBADMSG);
    assert_string_equal(vstr_str(why), "missing attribute \"size\"");

    /* Optional: absent is fine, and the output keeps its value. */
    vstr_cpy(opt, "default");
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, why,
                                 ATTR_STR_OUT("queue_id", id), ATTR_UNUM_OPT("size", &size),
                                 ATTR_STR_OPT("sasl_username", opt), ATTR_END),
                     1);
    assert_true(size == 555);
    assert_string_equal(vstr_str(opt), "default");
    vstr_free(out);
    vstr_free(why);
    vstr_free(id);
    vstr_free(opt);
}

static void test_printable(void **state)
{
    (void)state;
    VSTR *out = vstr_alloc(64), *why = vstr_alloc(64), *got = vstr_alloc(16);
    size_t used;

    assert_int_equal(
        attr_encode(out, NULL, 0, NULL, ATTR_STR("sender", "a\r\nb@example.com"), ATTR_END), 0);
    /* Without the flag the value passes as it is. */
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, why,
                                 ATTR_STR_OUT("sender", got), ATTR_END),
                     1);
    assert_string_equal(vstr_str(got), "a\r\nb@example.com");
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, ATTR_FLAG_PRINTABLE,
                                 why, ATTR_STR_OUT("sender", got), ATTR_END),
                     -1);
    assert_int_equal(errno, EBADMSG);
    assert_non_null(strstr(vstr_str(why), "control character 0x0d"));

    /* Extra attributes are checked too. */
    ATTR_MSG *msg;

    assert_int_equal(
        attr_decode(vstr_str(out), vstr_len(out), &used, NULL, ATTR_FLAG_PRINTABLE, why, ATTR_END),
        -1);
    assert_int_equal(
        attr_msg_decode(vstr_str(out), vstr_len(out), &used, NULL, ATTR_FLAG_PRINTABLE, &msg, why),
        -1);
    assert_int_equal(errno, EBADMSG);
    assert_null(msg);

    /* DEL is a control character; UTF-8 is not. */
    vstr_reset(out);
    assert_int_equal(attr_encode(out, NULL, 0, NULL, ATTR_STR("x", "a\x7f"), ATTR_END), 0);
    assert_int_equal(
        attr_decode(vstr_str(out), vstr_len(out), &used, NULL, ATTR_FLAG_PRINTABLE, why, ATTR_END),
        -1);
    vstr_reset(out);
    assert_int_equal(
        attr_encode(out, NULL, 0, NULL, ATTR_STR("x", "j\xc3\xb8rn@\xc3\xa6.dk"), ATTR_END), 0);
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, ATTR_FLAG_PRINTABLE,
                                 why, ATTR_STR_OUT("x", got), ATTR_END),
                     1);

    /* A NUL inside a string is never accepted, flag or not. */
    vstr_reset(out);
    raw_rec(out, ATTR_TYPE_STR, "x", 1, 3, "a\0b", 3);
    raw_end(out);
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, why, ATTR_END), -1);
    assert_int_equal(errno, EPROTO);
    assert_non_null(strstr(vstr_str(why), "NUL byte"));
    vstr_free(out);
    vstr_free(why);
    vstr_free(got);
}

/*
 * Malformed records.
 */

static void test_bad_type(void **state)
{
    (void)state;
    static const int types[] = {0x05, 0x7f, 0xff, 'S'};
    VSTR *in = vstr_alloc(64), *why = vstr_alloc(64);
    size_t used;

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        vstr_reset(in);
        raw_str(in, "ok", "v");
        raw_rec(in, types[i], "x", 1, 1, "v", 1);
        raw_end(in);
        assert_int_equal(attr_decode(vstr_str(in), vstr_len(in), &used, NULL, 0, why, ATTR_END),
                         -1);
        assert_int_equal(errno, EPROTO);
        assert_int_equal(used, 0);
        assert_non_null(strstr(vstr_str(why), "unknown attribute type"));
        assert_non_null(strstr(vstr_str(why), "offset 9"));
    }

    /* Numbers must be exactly 8 bytes. */
    vstr_reset(in);
    raw_rec(in, ATTR_TYPE_INT, "n", 1, 4, "\0\0\0\1", 4);
    raw_end(in);
    assert_int_equal(attr_decode(vstr_str(in), vstr_len(in), &used, NULL, 0, why, ATTR_END), -1);
    assert_int_equal(errno, EPROTO);
    vstr_reset(in);
    raw_rec(in, ATTR_TYPE_UINT, "n", 1, 0xffffffffu, NULL, 0);
    assert_int_equal(attr_decode(vstr_str(in), vstr_len(in), &used, NULL, 0, why, ATTR_END), -1);
    assert_int_equal(errno, EPROTO);
    vstr_free(in);
    vstr_free(why);
}

static void test_types_and_ranges(void **state)
{
    (void)state;
    VSTR *out = vstr_alloc(64), *why = vstr_alloc(64), *got = vstr_alloc(16);
    long long num = 0;
    unsigned long long unum = 0;
    size_t used;

    /* String where a number is expected. */
    assert_int_equal(attr_encode(out, NULL, 0, NULL, ATTR_STR("size", "12"), ATTR_END), 0);
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, why,
                                 ATTR_UNUM_OUT("size", &unum), ATTR_END),
                     -1);
    assert_int_equal(errno, EBADMSG);
    assert_string_equal(vstr_str(why),
                        "attribute \"size\": expected unsigned number, received string");
    /* Binary where a string is expected. */
    vstr_reset(out);
    assert_int_equal(attr_encode(out, NULL, 0, NULL, ATTR_BIN("s", "x", 1), ATTR_END), 0);
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, why,
                                 ATTR_STR_OUT("s", got), ATTR_END),
                     -1);
    assert_int_equal(errno, EBADMSG);

    /* Signed and unsigned convert when the value fits, ERANGE otherwise. */
    vstr_reset(out);
    assert_int_equal(attr_encode(out, NULL, 0, NULL, ATTR_UNUM("u", 5), ATTR_NUM("n", 6),
                                 ATTR_UNUM("big", ULLONG_MAX), ATTR_NUM("neg", -1), ATTR_END),
                     0);
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, why,
                                 ATTR_NUM_OUT("u", &num), ATTR_UNUM_OUT("n", &unum), ATTR_END),
                     2);
    assert_true(num == 5 && unum == 6);
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, why,
                                 ATTR_NUM_OUT("big", &num), ATTR_END),
                     -1);
    assert_int_equal(errno, ERANGE);
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, why,
                                 ATTR_UNUM_OUT("neg", &unum), ATTR_END),
                     -1);
    assert_int_equal(errno, ERANGE);
    assert_int_equal(used, vstr_len(out));
    vstr_free(out);
    vstr_free(why);
    vstr_free(got);
}

static void test_repeated(void **state)
{
    (void)state;
    VSTR *out = vstr_alloc(64), *why = vstr_alloc(64), *got = vstr_alloc(16);
    size_t used;

    assert_int_equal(attr_encode(out, NULL, 0, NULL, ATTR_STR("rcpt", "a@x"),
                                 ATTR_STR("rcpt", "b@x"), ATTR_STR("queue_id", "Q"), ATTR_END),
                     0);
    /* A requested name twice: which one did the sender mean? Refuse. */
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, why,
                                 ATTR_STR_OUT("rcpt", got), ATTR_END),
                     -1);
    assert_int_equal(errno, EBADMSG);
    assert_string_equal(vstr_str(why), "attribute \"rcpt\" repeated");
    /* Repeated names nobody asked for are skipped like any extra. */
    assert_int_equal(attr_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, why,
                                 ATTR_STR_OUT("queue_id", got), ATTR_END),
                     1);

    /* ATTR_MSG reads them as a list. */
    ATTR_MSG *msg;
    const ATTR_VAL *val;
    size_t pos = 0;

    assert_int_equal(attr_msg_decode(vstr_str(out), vstr_len(out), &used, NULL, 0, &msg, why), 0);
    val = attr_msg_next(msg, "rcpt", &pos);
    assert_non_null(val);
    assert_string_equal(val->data, "a@x");
    val = attr_msg_next(msg, "rcpt", &pos);
    assert_non_null(val);
    assert_string_equal(val->data, "b@x");
    assert_null(attr_msg_next(msg, "rcpt", &pos));
    assert_null(attr_msg_get_str(msg, "rcpt"));
    assert_int_equal(errno, EBADMSG);
    assert_string_equal(attr_msg_get_str(msg, "queue_id"), "Q");
    attr_msg_free(msg);
    vstr_free(out);
    vstr_free(why);
    vstr_free(got);
}

static void test_msg_lookup(void **state)
{
    (void)state;
    VSTR *out = vstr_alloc(64), *why = vstr_alloc(64);
    ATTR_MSG *msg;
    long long num;
    unsigned long long unum;
    size_t used, len;
    const char *bin;

    sample_encode(out);
    raw_end(out); /* a second message follows: used must stop at the first */
    assert_int_equal(
        attr_msg_decode(vstr_str(out), vstr_len(out), &used, NULL, ATTR_FLAG_PRINTABLE, &msg, why),
        0);
    assert_int_equal(used, vstr_len(out) - 1);
    assert_int_equal(msg->count, 5);
    assert_string_equal(msg->val[0].name, "queue_id");
    assert_string_equal(attr_msg_get_str(msg, "queue_id"), "4BxJ2k1abcZ");
    assert_string_equal(attr_msg_get_str(msg, "empty"), "");
    assert_int_equal(attr_msg_get_num(msg, "delta", &num), 0);
    assert_true(num == -42);
    assert_int_equal(attr_msg_get_unum(msg, "size", &unum), 0);
    assert_true(unum == 123456789012ULL);
    assert_int_equal(attr_msg_get_num(msg, "size", &num), 0);
    assert_true(num == 123456789012LL);
    assert_int_equal(attr_msg_get_unum(msg, "delta", &unum), -1);
    assert_int_equal(errno, ERANGE);
    bin = attr_msg_get_bin(msg, "data", &len);
    assert_non_null(bin);
    assert_int_equal(len, 6);
    assert_memory_equal(bin, "\0\1\2\xff\0x", 6);
    assert_null(attr_msg_get_str(msg, "nope"));
    assert_int_equal(errno, ENOENT);
    assert_null(attr_msg_get_str(msg, "data"));
    assert_int_equal(errno, EBADMSG);
    assert_int_equal(attr_msg_get_num(msg, "queue_id", &num), -1);
    assert_int_equal(errno, EBADMSG);
    attr_msg_free(msg);

    /* The second message: empty. */
    assert_int_equal(attr_msg_decode(vstr_str(out) + used, 1, &used, NULL, 0, &msg, why), 0);
    assert_int_equal(msg->count, 0);
    attr_msg_free(msg);
    vstr_free(out);
    vstr_free(why);
}

/*
 * Streams: building messages, pipelining, stream state after errors.
 */

static void test_print_more(void **state)
{
    (void)state;
    int sv[2];
    ATTR_STREAM *a, *b;
    ATTR_MSG *msg;
    char rcpt[32];

    make_pair(sv);
    a = attr_stream_open(sv[0], 2000);
    b = attr_stream_open(sv[1], 2000);
    assert_int_equal(attr_print(a, ATTR_FLAG_MORE, ATTR_STR("queue_id", "Q"), ATTR_END), 0);
    for (int i = 0; i < 50; i++) {
        snprintf(rcpt, sizeof(rcpt), "user%d@example.com", i);
        assert_int_equal(attr_print(a, ATTR_FLAG_MORE, ATTR_STR("rcpt", rcpt), ATTR_END), 0);
    }
    assert_int_equal(attr_print(a, 0, ATTR_UNUM("rcpt_count", 50), ATTR_END), 0);
    msg = attr_msg_read(b, ATTR_FLAG_PRINTABLE);
    assert_non_null(msg);
    assert_int_equal(msg->count, 52);
    size_t pos = 0;
    int n = 0;

    while (attr_msg_next(msg, "rcpt", &pos) != NULL)
        n++;
    assert_int_equal(n, 50);
    attr_msg_free(msg);

    /* A part that fails discards the whole message; the next one is clean. */
    ATTR_LIMITS lim = attr_limits_default;

    lim.count_max = 3;
    assert_int_equal(attr_stream_set_limits(a, &lim), 0);
    assert_int_equal(
        attr_print(a, ATTR_FLAG_MORE, ATTR_STR("x", "1"), ATTR_STR("y", "2"), ATTR_END), 0);
    assert_int_equal(attr_stream_set_limits(a, &lim), -1);
    assert_int_equal(errno, EBUSY);
    assert_int_equal(attr_print(a, 0, ATTR_STR("z", "3"), ATTR_STR("w", "4"), ATTR_END), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_non_null(strstr(attr_stream_why(a), "more than 3 attributes"));
    assert_int_equal(attr_print(a, 0, ATTR_STR("ok", "1"), ATTR_END), 0);
    msg = attr_msg_read(b, 0);
    assert_non_null(msg);
    assert_int_equal(msg->count, 1);
    assert_string_equal(attr_msg_get_str(msg, "ok"), "1");
    attr_msg_free(msg);

    attr_stream_free(a);
    attr_stream_free(b);
    close(sv[0]);
    close(sv[1]);
}

static void test_pipelined(void **state)
{
    (void)state;
    int sv[2];
    ATTR_STREAM *s;
    VSTR *out = vstr_alloc(64), *got = vstr_alloc(16);

    /* Two messages in one write: each scan takes exactly one. */
    assert_int_equal(attr_encode(out, NULL, 0, NULL, ATTR_STR("m", "one"), ATTR_END), 0);
    assert_int_equal(attr_encode(out, NULL, 0, NULL, ATTR_STR("m", "two"), ATTR_END), 0);
    make_pair(sv);
    write_all(sv[0], vstr_str(out), vstr_len(out));
    s = attr_stream_open(sv[1], 2000);
    assert_int_equal(attr_scan(s, 0, ATTR_STR_OUT("m", got), ATTR_END), 1);
    assert_string_equal(vstr_str(got), "one");
    assert_int_equal(attr_scan(s, 0, ATTR_STR_OUT("m", got), ATTR_END), 1);
    assert_string_equal(vstr_str(got), "two");
    close(sv[0]);
    assert_int_equal(attr_scan(s, 0, ATTR_STR_OUT("m", got), ATTR_END), -1);
    assert_int_equal(errno, ENODATA);
    attr_stream_free(s);
    close(sv[1]);
    vstr_free(out);
    vstr_free(got);
}

static void test_stream_state_after_errors(void **state)
{
    (void)state;
    int sv[2];
    ATTR_STREAM *a, *b;
    VSTR *small = vstr_alloc(16), *got = vstr_alloc(16), *raw = vstr_alloc(16);

    make_pair(sv);
    a = attr_stream_open(sv[0], 2000);
    b = attr_stream_open(sv[1], 2000);

    /* Rejected content (output VSTR limit, missing attribute) keeps the
       stream in step: the next message reads fine. */
    vstr_set_limit(small, 4);
    assert_int_equal(attr_print(a, 0, ATTR_STR("v", "0123456789"), ATTR_END), 0);
    assert_int_equal(attr_scan(b, 0, ATTR_STR_OUT("v", small), ATTR_END), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_non_null(strstr(attr_stream_why(b), "receiving buffer"));
    assert_int_equal(attr_print(a, 0, ATTR_STR("w", "x"), ATTR_END), 0);
    assert_int_equal(attr_scan(b, 0, ATTR_STR_OUT("v", got), ATTR_END), -1);
    assert_int_equal(errno, EBADMSG);
    assert_int_equal(attr_print(a, 0, ATTR_STR("v", "ok"), ATTR_END), 0);
    assert_int_equal(attr_scan(b, 0, ATTR_STR_OUT("v", small), ATTR_END), 1);
    assert_string_equal(vstr_str(small), "ok");

    /* A broken frame leaves the stream out of step: it stays failed. */
    raw_rec(raw, 0x09, "v", 1, 0, NULL, 0);
    write_all(sv[0], vstr_str(raw), vstr_len(raw));
    assert_int_equal(attr_print(a, 0, ATTR_STR("v", "after"), ATTR_END), 0);
    assert_int_equal(attr_scan(b, 0, ATTR_STR_OUT("v", got), ATTR_END), -1);
    assert_int_equal(errno, EPROTO);
    assert_int_equal(attr_scan(b, 0, ATTR_STR_OUT("v", got), ATTR_END), -1);
    assert_int_equal(errno, EPROTO);
    assert_null(attr_msg_read(b, 0));
    assert_int_equal(errno, EPROTO);
    assert_int_equal(attr_print(b, 0, ATTR_STR("v", "x"), ATTR_END), -1);

    attr_stream_free(a);
    attr_stream_free(b);
    close(sv[0]);
    close(sv[1]);
    vstr_free(small);
    vstr_free(got);
    vstr_free(raw);
}

static void test_forged_length_stream(void **state)
{
    (void)state;
    int sv[2];
    ATTR_STREAM *s;
    VSTR *raw = vstr_alloc(16), *got = vstr_alloc(16);
    long long t0;

    /* The peer announces 4 GiB and keeps the connection open: the reader
       must refuse from the header, not wait for the value. */
    make_pair(sv);
    raw_rec(raw, ATTR_TYPE_BIN, "data", 4, 0xffffffffu, NULL, 0);
    write_all(sv[0], vstr_str(raw), vstr_len(raw));
    s = attr_stream_open(sv[1], 5000);
    t0 = now_ms();
    assert_int_equal(attr_scan(s, 0, ATTR_BIN_OUT("data", got), ATTR_END), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_true(now_ms() - t0 < 1000);
    attr_stream_free(s);
    close(sv[0]);
    close(sv[1]);
    vstr_free(raw);
    vstr_free(got);
}

/*
 * Timeouts.
 */

static void test_read_timeout(void **state)
{
    (void)state;
    int sv[2];
    ATTR_STREAM *s;
    VSTR *got = vstr_alloc(16);
    long long t0, elapsed;

    make_pair(sv);
    s = attr_stream_open(sv[1], 100);
    t0 = now_ms();
    assert_int_equal(attr_scan(s, 0, ATTR_STR_OUT("v", got), ATTR_END), -1);
    elapsed = now_ms() - t0;
    assert_int_equal(errno, ETIMEDOUT);
    assert_true(elapsed >= 90 && elapsed < 2000);
    assert_non_null(strstr(attr_stream_why(s), "timeout after 100 ms"));
    attr_stream_free(s);
    close(sv[0]);
    close(sv[1]);
    vstr_free(got);
}

static void test_slow_peer_deadline(void **state)
{
    (void)state;
    int sv[2];
    pid_t pid;
    VSTR *out = vstr_alloc(64), *got = vstr_alloc(16);

    /* One byte every 30 ms never lets a per-read timer fire, but the whole
       message must arrive within the timeout. */
    assert_int_equal(attr_encode(out, NULL, 0, NULL, ATTR_STR("v", "0123456789abcdef"), ATTR_END),
                     0);
    make_pair(sv);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[1]);
        for (size_t i = 0; i < vstr_len(out); i++) {
            struct timespec ts = {0, 30 * 1000 * 1000};

            if (write(sv[0], vstr_str(out) + i, 1) != 1)
                _exit(0);
            nanosleep(&ts, NULL);
        }
        _exit(0);
    }
    close(sv[0]);
    ATTR_STREAM *s = attr_stream_open(sv[1], 150);
    long long t0 = now_ms();

    assert_int_equal(attr_scan(s, 0, ATTR_STR_OUT("v", got), ATTR_END), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_true(now_ms() - t0 < 600);
    assert_non_null(strstr(attr_stream_why(s), "inside an attribute message"));
    attr_stream_free(s);
    close(sv[1]);
    waitpid(pid, NULL, 0);
    vstr_free(out);
    vstr_free(got);
}

static void test_write_timeout_and_epipe(void **state)
{
    (void)state;
    int sv[2];
    ATTR_STREAM *s;
    ATTR_LIMITS lim = attr_limits_default;
    size_t big_len = 4 * 1024 * 1024;
    char *big = mycalloc(1, big_len);
    long long t0;

    /* The peer never reads: the write must give up after the timeout. */
    make_pair(sv);
    s = attr_stream_open(sv[0], 100);
    lim.value_max = lim.msg_max = 8 * 1024 * 1024;
    assert_int_equal(attr_stream_set_limits(s, &lim), 0);
    t0 = now_ms();
    assert_int_equal(attr_print(s, 0, ATTR_BIN("data", big, big_len), ATTR_END), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_true(now_ms() - t0 < 2000);
    attr_stream_free(s);
    close(sv[0]);
    close(sv[1]);

    /* The peer went away: EPIPE, not a SIGPIPE that kills the process. */
    make_pair(sv);
    close(sv[1]);
    s = attr_stream_open(sv[0], 1000);
    assert_int_equal(attr_print(s, 0, ATTR_STR("v", "x"), ATTR_END), -1);
    assert_int_equal(errno, EPIPE);
    assert_non_null(strstr(attr_stream_why(s), "write error"));
    attr_stream_free(s);
    close(sv[0]);
    myfree(big);
}

/*
 * Client and server over a real UNIX socket.
 */

typedef struct TMPSOCK {
    char dir[40];
    char path[80];
} TMPSOCK;

static int tmp_listen(TMPSOCK *t, int backlog)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd;

    snprintf(t->dir, sizeof(t->dir), "/tmp/test_attr.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/private-svc", t->dir);
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", t->path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    return fd;
}

static void tmp_remove(TMPSOCK *t)
{
    unlink(t->path);
    rmdir(t->dir);
}

/* serv_handler - "add": n + 1; "bye": reply and close; else an error status */
static int serv_handler(ATTR_STREAM *s, const ATTR_MSG *req, void *context)
{
    const char *op = attr_msg_get_str(req, "op");
    long long n = 0;

    (*(int *)context)++;
    if (op == NULL)
        return attr_print(s, 0, ATTR_UNUM("status", 1), ATTR_STR("reason", "no op"), ATTR_END) < 0
                   ? -1
                   : ATTR_SERV_CONTINUE;
    if (strcmp(op, "add") == 0 && attr_msg_get_num(req, "n", &n) == 0)
        return attr_print(s, 0, ATTR_UNUM("status", 0), ATTR_NUM("n", n + 1), ATTR_END) < 0
                   ? -1
                   : ATTR_SERV_CONTINUE;
    if (strcmp(op, "bye") == 0)
        return attr_print(s, 0, ATTR_UNUM("status", 0), ATTR_END) < 0 ? -1 : ATTR_SERV_CLOSE;
    return attr_print(s, 0, ATTR_UNUM("status", 1), ATTR_STR("reason", "bad op"), ATTR_END) < 0
               ? -1
               : ATTR_SERV_CONTINUE;
}

/* serv_child - serve two connections; exit status 0 when each went as planned */
static _Noreturn void serv_child(int lfd)
{
    static const int want[2] = {3, 1};

    for (int c = 0; c < 2; c++) {
        int fd = accept(lfd, NULL, NULL);
        int calls = 0;

        if (fd < 0)
            _exit(10);
        ATTR_STREAM *s = attr_stream_open(fd, 5000);
        int r = attr_serv_loop(s, ATTR_FLAG_PRINTABLE, serv_handler, &calls);

        attr_stream_free(s);
        close(fd);
        if (r != want[c] || calls != want[c])
            _exit(20 + c);
    }
    _exit(0);
}

static void test_client_server(void **state)
{
    (void)state;
    TMPSOCK t = {.dir = ""};
    int lfd = tmp_listen(&t, 16);
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0)
        serv_child(lfd);
    close(lfd);

    /* Connection 1: three requests on one stream, then the client closes. */
    int fd = attr_clnt_connect(t.path, 2000);
    ATTR_STREAM *s;
    unsigned long long status = 99;
    long long n = 0;
    VSTR *reason = vstr_alloc(32), *why = vstr_alloc(64);

    assert_true(fd >= 0);
    s = attr_stream_open(fd, 2000);
    assert_int_equal(
        attr_clnt_request(s, ATTR_FLAG_STRICT, ATTR_STR("op", "add"), ATTR_NUM("n", 41), ATTR_END,
                          ATTR_UNUM_OUT("status", &status), ATTR_NUM_OUT("n", &n), ATTR_END),
        2);
    assert_true(status == 0 && n == 42);
    assert_int_equal(
        attr_clnt_request(s, ATTR_FLAG_STRICT, ATTR_STR("op", "add"), ATTR_NUM("n", -1), ATTR_END,
                          ATTR_UNUM_OUT("status", &status), ATTR_NUM_OUT("n", &n), ATTR_END),
        2);
    assert_true(status == 0 && n == 0);
    assert_int_equal(attr_clnt_request(s, 0, ATTR_STR("op", "mul"), ATTR_END,
                                       ATTR_UNUM_OUT("status", &status),
                                       ATTR_STR_OPT("reason", reason), ATTR_END),
                     2);
    assert_true(status == 1);
    assert_string_equal(vstr_str(reason), "bad op");
    attr_stream_free(s);
    close(fd);

    /* Connection 2: one-shot call; the server closes after replying. */
    assert_int_equal(attr_clnt_call(t.path, 2000, 0, why, ATTR_STR("op", "bye"), ATTR_END,
                                    ATTR_UNUM_OUT("status", &status), ATTR_END),
                     1);
    assert_true(status == 0);

    int wstatus = 0;

    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    assert_true(WIFEXITED(wstatus));
    assert_int_equal(WEXITSTATUS(wstatus), 0);

    /* Nobody listens any more. */
    assert_int_equal(attr_clnt_call(t.path, 2000, 0, why, ATTR_STR("op", "bye"), ATTR_END,
                                    ATTR_UNUM_OUT("status", &status), ATTR_END),
                     -1);
    assert_int_equal(errno, ECONNREFUSED);
    assert_non_null(strstr(vstr_str(why), "connect to "));
    tmp_remove(&t);
    vstr_free(reason);
    vstr_free(why);
}

static void test_connect_errors(void **state)
{
    (void)state;
    char longpath[200];
    TMPSOCK t = {.dir = ""};

    assert_int_equal(attr_clnt_connect("/nonexistent/dir/sock", 1000), -1);
    assert_int_equal(errno, ENOENT);
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = 0;
    assert_int_equal(attr_clnt_connect(longpath, 1000), -1);
    assert_int_equal(errno, ENAMETOOLONG);

    /* A server that never accepts: once its backlog is full, connect waits
       for the timeout and no longer. */
    int lfd = tmp_listen(&t, 0);
    int fds[8];
    int nfds = 0, r = 0;
    long long t0 = 0;

    while (nfds < 8) {
        t0 = now_ms();
        r = attr_clnt_connect(t.path, 100);
        if (r < 0)
            break;
        fds[nfds++] = r;
    }
    assert_int_equal(r, -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_true(now_ms() - t0 >= 90 && now_ms() - t0 < 2000);
    while (nfds > 0)
        close(fds[--nfds]);
    close(lfd);
    tmp_remove(&t);
}

/*
 * Robustness: random and mutated input never crashes, overreads or leaks
 * (run under ASan), and always gets one of the three documented answers.
 */

static uint32_t rng_state = 12345;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void test_mutations(void **state)
{
    (void)state;
    VSTR *good = vstr_alloc(64), *why = vstr_alloc(64), *got = vstr_alloc(16);
    ATTR_LIMITS lim = {.name_max = 16, .value_max = 64, .msg_max = 256, .count_max = 8};
    size_t used;

    sample_encode(good);
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = vstr_len(good);
        char *buf = mymalloc(len);
        ATTR_MSG *msg;

        memcpy(buf, vstr_str(good), len);
        for (int f = 0, flips = 1 + (int)(rng() % 4); f < flips; f++)
            buf[rng() % len] = (char)rng();
        if (iter % 3 == 0)
            len = rng() % (len + 1);
        int r = attr_msg_decode(buf, len, &used, iter % 2 ? &lim : NULL, 0, &msg, why);

        assert_true(r == 0 || r == ATTR_MORE || r == -1);
        assert_true(used <= len);
        if (r == 0) {
            assert_non_null(msg);
            attr_msg_free(msg);
        }
        r = attr_decode(buf, len, &used, NULL, ATTR_FLAG_STRICT, why, ATTR_STR_OPT("queue_id", got),
                        ATTR_BIN_OPT("data", got), ATTR_END);
        assert_true(r >= ATTR_MORE && r <= 2);
        myfree(buf);
    }
    vstr_free(good);
    vstr_free(why);
    vstr_free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_bytes),
        cmocka_unit_test(test_roundtrip_memory),
        cmocka_unit_test(test_roundtrip_stream),
        cmocka_unit_test(test_empty_values),
        cmocka_unit_test(test_value_limit),
        cmocka_unit_test(test_forged_lengths),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_limits_override),
        cmocka_unit_test(test_truncated_memory),
        cmocka_unit_test(test_truncated_stream),
        cmocka_unit_test(test_extra_attributes),
        cmocka_unit_test(test_missing_and_optional),
        cmocka_unit_test(test_printable),
        cmocka_unit_test(test_bad_type),
        cmocka_unit_test(test_types_and_ranges),
        cmocka_unit_test(test_repeated),
        cmocka_unit_test(test_msg_lookup),
        cmocka_unit_test(test_print_more),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_stream_state_after_errors),
        cmocka_unit_test(test_forged_length_stream),
        cmocka_unit_test(test_read_timeout),
        cmocka_unit_test(test_slow_peer_deadline),
        cmocka_unit_test(test_write_timeout_and_epipe),
        cmocka_unit_test(test_client_server),
        cmocka_unit_test(test_connect_errors),
        cmocka_unit_test(test_mutations),
    };

    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would end the run: MSG_NOSIGNAL must hold */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
