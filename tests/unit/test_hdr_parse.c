/*
 * test_hdr_parse - the streaming header-section parser: fields, folding,
 * where the header section ends (empty line, a non-header line, end of
 * content), limits (field size, field count), NUL bytes, callback stops,
 * and the same result however the input is split (whole, byte by byte, at
 * every offset, random garbage).
 *
 * Events are recorded as a transcript:
 *   F<name_len><T if truncated><N if no line end>:<text, LF shown as \n>
 *   E<how>                          end of the header section
 *   <body text>$                    a body line (pieces of a line are joined)
 *   <body text>#                    body text without a final line end
 * Control characters in body text are shown as \xNN.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/hdr_parse.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define S(lit) (lit), (sizeof(lit) - 1)

typedef struct REC {
    VSTR *out;
    int in_body_line;  /* body text of an unfinished line was recorded */
    int stop_at_field; /* return this from the Nth field callback (0: never) */
    int stop_value;
    int fields;
} REC;

static void rec_escape(VSTR *out, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)data[i];

        if (ch == '\n')
            vstr_cat(out, "\\n");
        else if (ch < 32 || ch == 127)
            vstr_sprintf_append(out, "\\x%02X", ch);
        else
            vstr_addch(out, ch);
    }
}

static int rec_field(void *ctx, const char *text, size_t len, size_t name_len, int flags)
{
    REC *r = ctx;

    vstr_sprintf_append(r->out, "F%zu%s%s:", name_len, (flags & HDR_FIELD_TRUNCATED) ? "T" : "",
                        (flags & HDR_FIELD_NO_EOL) ? "N" : "");
    rec_escape(r->out, text, len);
    vstr_addch(r->out, '\n');
    r->fields++;
    if (r->stop_at_field && r->fields == r->stop_at_field)
        return r->stop_value;
    return 0;
}

static int rec_end(void *ctx, int how)
{
    REC *r = ctx;

    vstr_sprintf_append(r->out, "E%d\n", how);
    return 0;
}

static int rec_body(void *ctx, const char *data, size_t len, int eol)
{
    REC *r = ctx;

    rec_escape(r->out, data, len);
    r->in_body_line = !eol;
    if (eol)
        vstr_cat(r->out, "$\n");
    return 0;
}

static const HDR_PARSE_CB rec_cb = {rec_field, rec_end, rec_body};

/* run - parse input fed in pieces of at most `step` bytes (0: whole); transcript */
static char *run(const char *in, size_t len, size_t field_max, size_t count_max, size_t step,
                 int *result)
{
    REC r = {vstr_alloc(256), 0, 0, 0, 0};
    HDR_PARSE *p = hdr_parse_create(field_max, count_max, &rec_cb, &r);
    int res = 0;
    size_t off = 0;

    if (step == 0)
        step = len ? len : 1;
    while (off < len && res == 0) {
        size_t n = len - off < step ? len - off : step;

        res = hdr_parse_feed(p, in + off, n);
        off += n;
    }
    if (res == 0)
        res = hdr_parse_end(p);
    if (res == 0 && r.in_body_line)
        vstr_cat(r.out, "#\n");
    if (result)
        *result = res;
    hdr_parse_free(p);
    return vstr_export(r.out);
}

/* check - whole, byte by byte and split at every offset give `want` */
static void check(const char *in, size_t len, size_t field_max, size_t count_max, const char *want,
                  int want_result)
{
    int res;
    char *got = run(in, len, field_max, count_max, 0, &res);

    assert_string_equal(got, want);
    assert_int_equal(res, want_result);
    myfree(got);
    got = run(in, len, field_max, count_max, 1, &res);
    assert_string_equal(got, want);
    assert_int_equal(res, want_result);
    myfree(got);
    for (size_t cut = 1; cut < len; cut++) {
        REC r = {vstr_alloc(256), 0, 0, 0, 0};
        HDR_PARSE *p = hdr_parse_create(field_max, count_max, &rec_cb, &r);

        res = hdr_parse_feed(p, in, cut);
        if (res == 0)
            res = hdr_parse_feed(p, in + cut, len - cut);
        if (res == 0)
            res = hdr_parse_end(p);
        if (res == 0 && r.in_body_line)
            vstr_cat(r.out, "#\n");
        assert_string_equal(vstr_str(r.out), want);
        assert_int_equal(res, want_result);
        hdr_parse_free(p);
        vstr_free(r.out);
    }
}

#define CHECK(in, want) check(S(in), 1000, 100, (want), 0)

static void test_basic(void **state)
{
    (void)state;
    CHECK("Subject: hi\nFrom: a@b\n\nbody\nmore\n",
          "F7:Subject: hi\nF4:From: a@b\nE1\n$\nbody$\nmore$\n");
    /* The body is copied whatever it holds, header-like lines included. */
    CHECK("A: 1\n\nB: 2\n\nC: 3\n", "F1:A: 1\nE1\n$\nB: 2$\n$\nC: 3$\n");
}

static void test_folding(void **state)
{
    (void)state;
    CHECK("Subject: a\n b\n\tc\nX: y\n\nz\n", "F7:Subject: a\\n b\\n\\x09c\nF1:X: y\nE1\n$\nz$\n");
    /* A blank-only continuation line is still a continuation (RFC 5322 4.2). */
    CHECK("To: a,\n   \n b\n\n", "F2:To: a,\\n   \\n b\nE1\n$\n");
}

static void test_garbage_ends_header(void **state)
{
    (void)state;
    CHECK("Subject: x\nnot a header line\nbody\n",
          "F7:Subject: x\nE2\nnot a header line$\nbody$\n");
    /* A line starting with a blank and no field before it: no header at all. */
    CHECK(" leading\nSubject: x\n", "E2\n leading$\nSubject: x$\n");
    /* A colon without a name, a name with a blank inside, 8-bit and control bytes. */
    CHECK(": x\n", "E2\n: x$\n");
    CHECK("From someone Mon\nX: y\n", "E2\nFrom someone Mon$\nX: y$\n");
    CHECK("Sub\xc3\xa9ject: x\n", "E2\nSub\xc3\xa9ject: x$\n");
    CHECK("A: 1\nB\x01: 2\n", "F1:A: 1\nE2\nB\\x01: 2$\n");
    /* A name-only line (no colon) ends the header section too. */
    CHECK("A: 1\nBcc\n\nx\n", "F1:A: 1\nE2\nBcc$\n$\nx$\n");
}

static void test_obsolete_blank_before_colon(void **state)
{
    (void)state;
    CHECK("Subject : x\nTo\t:y\n\n", "F7:Subject : x\nF2:To\\x09:y\nE1\n$\n");
}

static void test_end_of_content(void **state)
{
    (void)state;
    CHECK("", "E3\n");
    CHECK("A: b", "F1N:A: b\nE3\n");
    CHECK("A: b\n", "F1:A: b\nE3\n");
    CHECK("A: b\n c", "F1N:A: b\\n c\nE3\n");
    CHECK("\n", "E1\n$\n");
    CHECK("A: b\n\nno eol", "F1:A: b\nE1\n$\nno eol#\n");
    /* A last line without a colon and without a line end is body text. */
    CHECK("A: b\nnocolon", "F1:A: b\nE2\nnocolon#\n");
    CHECK("Name", "E2\nName#\n");
}

static void test_nul(void **state)
{
    (void)state;
    check(S("Subject: a\0b\n\n"), 1000, 100, "", HDR_PARSE_ERR_NUL);
    check(S("Subject: a\n b\0\n\n"), 1000, 100, "", HDR_PARSE_ERR_NUL);
    /* NUL in the body, or opening a line (so not a header), is body data. */
    check(S("A: 1\n\nx\0y\n"), 1000, 100, "F1:A: 1\nE1\n$\nx\\x00y$\n", 0);
    check(S("\0A: 1\n"), 1000, 100, "E2\n\\x00A: 1$\n", 0);
}

static void test_count_limit(void **state)
{
    (void)state;
    check(S("A: 1\nB: 2\nC: 3\n\n"), 1000, 3, "F1:A: 1\nF1:B: 2\nF1:C: 3\nE1\n$\n", 0);
    /* The fourth field is refused before anything of it is handed out. */
    check(S("A: 1\nB: 2\nC: 3\nD: 4\n\n"), 1000, 3, "F1:A: 1\nF1:B: 2\nF1:C: 3\n",
          HDR_PARSE_ERR_COUNT);
}

static void test_field_size_limit(void **state)
{
    (void)state;
    /* Text past field_max is dropped, continuation lines included. */
    check(S("Subject: 0123456789ABCDEFGHIJ\n more\nX: y\n\n"), 20, 100,
          "F7T:Subject: 0123456789A\nF1:X: y\nE1\n$\n", 0);
    /* No room for a fold and a byte: the continuation goes, never leaving
       a bare fold that would read as an empty line. */
    check(S("Subject: 0123456789\n more\n\n"), 20, 100, "F7T:Subject: 0123456789\nE1\n$\n", 0);
    check(S("Subject: 012345678\n more\n\n"), 20, 100, "F7T:Subject: 012345678\\n \nE1\n$\n", 0);
    /* Exactly at the limit: nothing dropped. */
    check(S("Subject: 01234567890\n\n"), 20, 100, "F7:Subject: 01234567890\nE1\n$\n", 0);
    /* A "name" that does not reach a colon within the limit is body text,
       passed on whole. */
    check(S("ABCDEFGHIJKLMNOPQRSTUVWXYZ: x\nmore\n"), 20, 100,
          "E2\nABCDEFGHIJKLMNOPQRSTUVWXYZ: x$\nmore$\n", 0);
}

static void test_callback_stop(void **state)
{
    REC r = {vstr_alloc(64), 0, 2, 7, 0};
    HDR_PARSE *p = hdr_parse_create(100, 100, &rec_cb, &r);

    (void)state;
    assert_int_equal(hdr_parse_feed(p, S("A: 1\nB: 2\nC: 3\n")), 7);
    assert_int_equal(hdr_parse_feed(p, S("D: 4\n")), 7);
    assert_int_equal(hdr_parse_end(p), 7);
    assert_string_equal(vstr_str(r.out), "F1:A: 1\nF1:B: 2\n");
    /* The third field was not complete when the second stopped the parser. */
    assert_int_equal(hdr_parse_count(p), 2);
    assert_true(hdr_parse_in_header(p));
    hdr_parse_free(p);
    vstr_free(r.out);
}

static void test_helpers(void **state)
{
    VSTR *v = vstr_alloc(16);
    size_t vlen;
    const char *val;

    (void)state;
    assert_int_equal(hdr_name_len(S("Subject: x")), 7);
    assert_int_equal(hdr_name_len(S("Subject \t: x")), 7);
    assert_int_equal(hdr_name_len(S("Subject")), 0);
    assert_int_equal(hdr_name_len(S(": x")), 0);
    assert_int_equal(hdr_name_len(S(" A: x")), 0);
    assert_int_equal(hdr_name_len(S("A b: x")), 0);
    assert_true(hdr_name_is("Message-ID: x", 10, "message-id"));
    assert_false(hdr_name_is("Message-ID: x", 10, "message-i"));
    assert_false(hdr_name_is("Message-ID: x", 10, "message-idx"));
    val = hdr_value(S("Subject:  \t hello\n world"), &vlen);
    assert_int_equal(vlen, 12);
    assert_memory_equal(val, "hello\n world", 12);
    val = hdr_value(S("Subject:"), &vlen);
    assert_int_equal(vlen, 0);
    hdr_unfold(S(" <a@b>\n\t \n"), 0, v);
    assert_string_equal(vstr_str(v), "<a@b>");
    vstr_reset(v);
    hdr_unfold(S("a\n b\n\tc  "), 0, v);
    assert_string_equal(vstr_str(v), "a b\tc");
    vstr_reset(v);
    hdr_unfold(S("abcdef"), 3, v);
    assert_string_equal(vstr_str(v), "abc");
    assert_string_equal(hdr_parse_strerror(HDR_PARSE_ERR_NUL), "NUL character in message header");
    vstr_free(v);
}

/* test_random - garbage never crashes, and splitting never changes the result */
static void test_random(void **state)
{
    static const char alphabet[] = "ab: \t\n\0\r\x80:-";
    char buf[300];
    unsigned seed = 12345;

    (void)state;
    for (int round = 0; round < 300; round++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof(buf));
        int r1, r2;
        char *whole, *bytes;

        for (size_t i = 0; i < len; i++)
            buf[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
        whole = run(buf, len, 16, 8, 0, &r1);
        bytes = run(buf, len, 16, 8, 1, &r2);
        assert_string_equal(whole, bytes);
        assert_int_equal(r1, r2);
        myfree(whole);
        myfree(bytes);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_folding),
        cmocka_unit_test(test_garbage_ends_header),
        cmocka_unit_test(test_obsolete_blank_before_colon),
        cmocka_unit_test(test_end_of_content),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_count_limit),
        cmocka_unit_test(test_field_size_limit),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_random),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
