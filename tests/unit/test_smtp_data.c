/*
 * test_smtp_data - DATA / BDAT content: end-of-data, dot-unstuffing, SMTP
 * smuggling variants under each bare CR / LF policy (fed in one chunk, byte
 * by byte, and split at every offset), line splitting at and over the
 * limit, size accounting, NUL octets (kept by default, refused with
 * SMTP_DATA_FLAG_REJECT_NUL) and BDAT chunks.
 *
 * Output is recorded as text: each piece escaped (\r \n \0 \\ \$ \+ \#),
 * then "$" for a line end, "+" for a continuation piece, "#" for a last
 * piece without a line ending.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/smtp_data.h"
#include "util/mymalloc.h"

#define S(lit) (lit), (sizeof(lit) - 1)

typedef struct RESULT {
    VSTR *out;   /* recorded pieces */
    VSTR *raw;   /* BDAT reconstruction: pieces with CRLF per line end */
    int status;  /* last smtp_data_feed result */
    size_t used; /* octets consumed in all */
    int errors;
    int seen;
    uint64_t size;
    int pieces_after_error; /* pieces delivered while errors were set */
    SMTP_DATA *data;
} RESULT;

static void result_init(RESULT *r)
{
    memset(r, 0, sizeof(*r));
    r->out = vstr_alloc(256);
    r->raw = vstr_alloc(256);
}

static void result_free(RESULT *r)
{
    vstr_free(r->out);
    vstr_free(r->raw);
}

/* collect - the line callback */
static void collect(void *context, const char *buf, size_t len, int flags)
{
    RESULT *r = context;

    if (r->data && smtp_data_errors(r->data))
        r->pieces_after_error++;
    for (size_t i = 0; i < len; i++) {
        switch (buf[i]) {
        case '\r': vstr_cat(r->out, "\\r"); break;
        case '\n': vstr_cat(r->out, "\\n"); break;
        case 0: vstr_cat(r->out, "\\0"); break;
        case '\\':
        case '$':
        case '+':
        case '#':
            vstr_addch(r->out, '\\');
            vstr_addch(r->out, buf[i]);
            break;
        default: vstr_addch(r->out, buf[i]); break;
        }
    }
    vstr_ncat(r->raw, buf, len);
    if (flags & SMTP_DATA_PIECE_CONT) {
        vstr_addch(r->out, '+');
    } else if (flags & SMTP_DATA_PIECE_NOEOL) {
        vstr_addch(r->out, '#');
    } else {
        vstr_addch(r->out, '$');
        vstr_cat(r->raw, "\r\n");
    }
}

/* run_data - DATA mode: first segment of `first` octets, then `step` each */
static void run_data(RESULT *r, const SMTP_DATA_OPTS *opts, const char *buf, size_t len,
                     size_t first, size_t step)
{
    SMTP_DATA *data = smtp_data_create(opts, collect, r);
    size_t pos = 0;

    r->data = data;
    smtp_data_start(data, SMTP_DATA_MODE_DATA);
    r->status = SMTP_DATA_MORE;
    while (pos < len && r->status != SMTP_DATA_END) {
        size_t seg = (pos == 0) ? first : step;
        size_t used;

        if (seg > len - pos)
            seg = len - pos;
        r->status = smtp_data_feed(data, buf + pos, seg, &used);
        assert_true(used <= seg);
        if (r->status == SMTP_DATA_MORE)
            assert_int_equal(used, seg); /* DATA takes all until the end */
        pos += used;
    }
    r->used = pos;
    r->errors = smtp_data_errors(data);
    r->seen = smtp_data_seen(data);
    r->size = smtp_data_size(data);
    r->data = NULL;
    smtp_data_free(data);
}

static SMTP_DATA_OPTS opts_of(enum smtp_data_bare bare, size_t line_max, uint64_t size_limit,
                              int flags)
{
    SMTP_DATA_OPTS o = {bare, line_max, size_limit, flags};

    return o;
}

/* check_data - same result in one chunk, byte by byte, and split anywhere */
static void check_data(const SMTP_DATA_OPTS *opts, const char *buf, size_t len,
                       const char *want_out, size_t want_used, int want_status)
{
    RESULT one, other;

    result_init(&one);
    run_data(&one, opts, buf, len, len ? len : 1, len ? len : 1);
    if (want_out && strcmp(vstr_str(one.out), want_out) != 0)
        fail_msg("output\n got: %s\nwant: %s", vstr_str(one.out), want_out);
    assert_int_equal(one.used, want_used);
    assert_int_equal(one.status, want_status);
    assert_int_equal(one.pieces_after_error, 0);

    for (size_t k = 0; k <= len; k++) {
        result_init(&other);
        if (k == 0)
            run_data(&other, opts, buf, len, 1, 1); /* byte by byte */
        else
            run_data(&other, opts, buf, len, k, len);
        if (strcmp(vstr_str(one.out), vstr_str(other.out)) != 0)
            fail_msg("split %zu differs\n got: %s\nwant: %s", k, vstr_str(other.out),
                     vstr_str(one.out));
        assert_int_equal(other.used, one.used);
        assert_int_equal(other.status, one.status);
        assert_int_equal(other.errors, one.errors);
        assert_int_equal(other.seen, one.seen);
        assert_true(other.size == one.size);
        assert_int_equal(other.pieces_after_error, 0);
        result_free(&other);
    }
    result_free(&one);
}

/* data_once - run in one chunk and hand back the result (caller frees) */
static void data_once(RESULT *r, const SMTP_DATA_OPTS *opts, const char *buf, size_t len)
{
    result_init(r);
    run_data(r, opts, buf, len, len ? len : 1, len ? len : 1);
}

static void test_end_of_data(void **state)
{
    SMTP_DATA_OPTS o = opts_of(SMTP_DATA_BARE_NORMALIZE, 0, 0, 0);

    (void)state;
    check_data(&o, S(".\r\n"), "", 3, SMTP_DATA_END);
    check_data(&o, S("a\r\n.\r\n"), "a$", 6, SMTP_DATA_END);
    check_data(&o, S("a\r\nb\r\n\r\n.\r\n"), "a$b$$", 11, SMTP_DATA_END);
    /* what follows the end belongs to the next command */
    check_data(&o, S("a\r\n.\r\nQUIT\r\n"), "a$", 6, SMTP_DATA_END);
    check_data(&o, S(".\r\nMAIL FROM:<x@y.z>\r\n"), "", 3, SMTP_DATA_END);
    /* not yet the end */
    check_data(&o, S("a\r\n."), "a$", 4, SMTP_DATA_MORE);
    check_data(&o, S("a\r\n.\r"), "a$", 5, SMTP_DATA_MORE);
    check_data(&o, S("a\r\n"), "a$", 3, SMTP_DATA_MORE);
    check_data(&o, S("a"), "", 1, SMTP_DATA_MORE);
    check_data(&o, S("a."), "", 2, SMTP_DATA_MORE);
}

static void test_end_then_feed(void **state)
{
    SMTP_DATA_OPTS o = opts_of(SMTP_DATA_BARE_NORMALIZE, 0, 0, 0);
    RESULT r;
    size_t used = 99;

    (void)state;
    result_init(&r);
    SMTP_DATA *data = smtp_data_create(&o, collect, &r);

    assert_int_equal(smtp_data_feed(data, S("x\r\n.\r\nNOOP\r\n"), &used), SMTP_DATA_END);
    assert_int_equal(used, 6);
    assert_int_equal(smtp_data_feed(data, S("NOOP\r\n"), &used), SMTP_DATA_END);
    assert_int_equal(used, 0);
    assert_string_equal(vstr_str(r.out), "x$");
    /* a new message starts clean */
    smtp_data_start(data, SMTP_DATA_MODE_DATA);
    assert_int_equal(smtp_data_feed(data, S("y\r\n.\r\n"), &used), SMTP_DATA_END);
    assert_string_equal(vstr_str(r.out), "x$y$");
    assert_true(smtp_data_size(data) == 3);
    smtp_data_free(data);
    result_free(&r);
}

static void test_dot_stuffing(void **state)
{
    SMTP_DATA_OPTS o = opts_of(SMTP_DATA_BARE_NORMALIZE, 0, 0, 0);

    (void)state;
    check_data(&o, S("..x\r\n.\r\n"), ".x$", 8, SMTP_DATA_END);
    check_data(&o, S("..\r\n.\r\n"), ".$", 7, SMTP_DATA_END);
    check_data(&o, S("...\r\n.\r\n"), "..$", 8, SMTP_DATA_END);
    check_data(&o, S(".x\r\n.\r\n"), "x$", 7, SMTP_DATA_END);
    check_data(&o, S("a\r\n...\r\n.\r\n"), "a$..$", 11, SMTP_DATA_END);
    check_data(&o, S("x.\r\n.\r\n"), "x.$", 7, SMTP_DATA_END);
    check_data(&o, S(" .\r\n.\r\n"), " .$", 7, SMTP_DATA_END);
    check_data(&o, S(". \r\n.\r\n"), " $", 7, SMTP_DATA_END);
    check_data(&o, S("..\r\n..\r\n.\r\n"), ".$.$", 11, SMTP_DATA_END);
    check_data(&o, S(".\r\r\n.\r\n"), " $", 7, SMTP_DATA_END);
    /* the stuffed dot is not counted in the size */
    RESULT r;

    data_once(&r, &o, S("..\r\n.\r\n"));
    assert_true(r.size == 3);
    result_free(&r);
}

/* random lines, dot-stuffed, come back unchanged however they are fed */
static void test_stuffing_round_trip(void **state)
{
    SMTP_DATA_OPTS o = opts_of(SMTP_DATA_BARE_NORMALIZE, 0, 0, 0);
    VSTR *wire = vstr_alloc(1024);
    VSTR *want = vstr_alloc(1024);
    unsigned seed = 12345;

    (void)state;
    for (int round = 0; round < 20; round++) {
        vstr_reset(wire);
        vstr_reset(want);
        for (int line = 0; line < 30; line++) {
            size_t n = (size_t)(rand_r(&seed) % 12);
            char buf[16];

            for (size_t i = 0; i < n; i++) {
                static const char pool[] = ".a. b.:";

                buf[i] = pool[rand_r(&seed) % (sizeof(pool) - 1)];
            }
            if (n > 0 && buf[0] == '.')
                vstr_addch(wire, '.');
            vstr_ncat(wire, buf, n);
            vstr_cat(wire, "\r\n");
            vstr_ncat(want, buf, n);
            vstr_addch(want, '$');
        }
        vstr_cat(wire, ".\r\n");
        check_data(&o, vstr_str(wire), vstr_len(wire), vstr_str(want), vstr_len(wire),
                   SMTP_DATA_END);
    }
    vstr_free(wire);
    vstr_free(want);
}

/* the messages used for smuggling: a variant between "body" and a second,
   forged transaction; only the final CRLF "." CRLF may end the data */
#define SMUGGLE_HEAD "Subject: x\r\n\r\nbody"
#define SMUGGLE_TAIL "MAIL FROM:<evil@x>\r\nRCPT TO:<v@x>\r\nDATA\r\nevil\r\n"
#define SMUGGLE_END "\r\n.\r\n"
#define SMUGGLE_NEXT "QUIT\r\n"

static const char *const smuggle_variants[] = {
    "\n.\n",    "\n.\r\n",   "\r\n.\n",     "\r.\r",        "\r.\r\n",      "\r\n.\r",
    "\r.\n",    "\n.\r",     "\r\n.\r\r\n", "\r\n\n.\r\n",  "\n\n.\n\n",    "\r\n.\n\r\n",
    "\n.\n.\n", "\r\r.\r\r", "\n\r.\r\n",   "\r\n.\r.\r\n", "\r\n.\n.\r\n",
};

static void build_smuggle(VSTR *msg, const char *variant)
{
    vstr_cpy(msg, SMUGGLE_HEAD);
    vstr_cat(msg, variant);
    vstr_cat(msg, SMUGGLE_TAIL);
    vstr_cat(msg, SMUGGLE_END);
    vstr_cat(msg, SMUGGLE_NEXT);
}

static void test_smuggling(void **state)
{
    static const enum smtp_data_bare policies[] = {SMTP_DATA_BARE_NORMALIZE, SMTP_DATA_BARE_REJECT,
                                                   SMTP_DATA_BARE_KEEP};
    VSTR *msg = vstr_alloc(256);

    (void)state;
    for (size_t p = 0; p < sizeof(policies) / sizeof(policies[0]); p++) {
        SMTP_DATA_OPTS o = opts_of(policies[p], 0, 0, 0);

        for (size_t v = 0; v < sizeof(smuggle_variants) / sizeof(smuggle_variants[0]); v++) {
            RESULT r;
            size_t want_used;

            build_smuggle(msg, smuggle_variants[v]);
            want_used = vstr_len(msg) - strlen(SMUGGLE_NEXT);
            /* one chunk, byte by byte, every split: all agree, none ends early */
            check_data(&o, vstr_str(msg), vstr_len(msg), NULL, want_used, SMTP_DATA_END);
            data_once(&r, &o, vstr_str(msg), vstr_len(msg));
            if (policies[p] == SMTP_DATA_BARE_REJECT) {
                assert_true(r.errors & (SMTP_DATA_ERR_BARE_LF | SMTP_DATA_ERR_BARE_CR));
                assert_null(strstr(vstr_str(r.out), "MAIL FROM"));
                assert_null(strstr(vstr_str(r.out), "evil"));
            } else {
                /* the forged commands are content of the one message */
                if (strstr(vstr_str(r.out), "MAIL FROM:<evil@x>$RCPT TO:<v@x>$DATA$evil$") == NULL)
                    fail_msg("policy %zu variant %zu: %s", p, v, vstr_str(r.out));
                assert_int_equal(r.errors, 0);
            }
            result_free(&r);
        }
    }
    vstr_free(msg);
}

/* exact content for the smuggling variants under NORMALIZE */
static void test_smuggling_normalize_exact(void **state)
{
    static const struct {
        const char *variant;
        const char *want;
    } cases[] = {
        {"\n.\n", "Subject: x$$body$$MAIL"},    {"\r\n.\n", "Subject: x$$body$$MAIL"},
        {"\n.\r\n", "Subject: x$$body$$MAIL"},  {"\r.\r", "Subject: x$$body . MAIL"},
        {"\r.\r\n", "Subject: x$$body .$MAIL"}, {"\r\n.\r", "Subject: x$$body$ MAIL"},
        {"\r.\n", "Subject: x$$body .$MAIL"},   {"\n..\n", "Subject: x$$body$.$MAIL"},
    };
    SMTP_DATA_OPTS o = opts_of(SMTP_DATA_BARE_NORMALIZE, 0, 0, 0);
    VSTR *msg = vstr_alloc(256);

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        RESULT r;

        build_smuggle(msg, cases[i].variant);
        data_once(&r, &o, vstr_str(msg), vstr_len(msg));
        if (strncmp(vstr_str(r.out), cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("variant %zu: %s", i, vstr_str(r.out));
        assert_true(r.seen & (SMTP_DATA_SAW_BARE_LF | SMTP_DATA_SAW_BARE_CR));
        result_free(&r);
    }
    vstr_free(msg);
}

static void test_bare_policies(void **state)
{
    SMTP_DATA_OPTS norm = opts_of(SMTP_DATA_BARE_NORMALIZE, 0, 0, 0);
    SMTP_DATA_OPTS rej = opts_of(SMTP_DATA_BARE_REJECT, 0, 0, 0);
    SMTP_DATA_OPTS keep = opts_of(SMTP_DATA_BARE_KEEP, 0, 0, 0);
    SMTP_REPLY reply;
    RESULT r;

    (void)state;
    check_data(&norm, S("a\nb\r\n.\r\n"), "a$b$", 8, SMTP_DATA_END);
    check_data(&norm, S("a\rb\r\n.\r\n"), "a b$", 8, SMTP_DATA_END);
    check_data(&norm, S("a\r\rb\r\n.\r\n"), "a  b$", 9, SMTP_DATA_END);
    check_data(&norm, S("a\n\n.\r\n.\r\n"), "a$$$", 9, SMTP_DATA_END);
    check_data(&keep, S("a\nb\r\n.\r\n"), "a\\nb$", 8, SMTP_DATA_END);
    check_data(&keep, S("a\rb\r\n.\r\n"), "a\\rb$", 8, SMTP_DATA_END);
    check_data(&keep, S("a\r\n.\n.\r\n.\r\n"), "a$\\n.$", 11, SMTP_DATA_END);
    check_data(&rej, S("x\r\na\nb\r\n.\r\n"), "x$", 11, SMTP_DATA_END);
    check_data(&rej, S("clean\r\n.\r\n"), "clean$", 10, SMTP_DATA_END);

    data_once(&r, &norm, S("a\nb\r\n.\r\n"));
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.seen, SMTP_DATA_SAW_BARE_LF);
    assert_true(r.size == 6); /* a CRLF b CRLF: a bare LF counts as CRLF */
    result_free(&r);

    data_once(&r, &rej, S("a\nb\r\n.\r\n"));
    assert_int_equal(r.errors, SMTP_DATA_ERR_BARE_LF);
    assert_string_equal(vstr_str(r.out), "");
    result_free(&r);

    /* the reply names the first offence */
    SMTP_DATA *data = smtp_data_create(&rej, collect, &r);
    size_t used;

    result_init(&r);
    assert_int_equal(smtp_data_reply(data, &reply), -1);
    smtp_data_feed(data, S("a\rb\nc\r\n.\r\n"), &used);
    assert_int_equal(smtp_data_errors(data), SMTP_DATA_ERR_BARE_CR | SMTP_DATA_ERR_BARE_LF);
    assert_int_equal(smtp_data_reply(data, &reply), 0);
    assert_int_equal(reply.code, 550);
    assert_string_equal(reply.dsn, "5.5.2");
    assert_string_equal(reply.text, "Error: bare <CR> received");
    smtp_data_start(data, SMTP_DATA_MODE_DATA);
    assert_int_equal(smtp_data_reply(data, &reply), -1);
    smtp_data_feed(data, S("a\nb\rc\r\n.\r\n"), &used);
    assert_int_equal(smtp_data_reply(data, &reply), 0);
    assert_string_equal(reply.text, "Error: bare <LF> received");
    smtp_data_free(data);
    result_free(&r);
}

static void test_nul(void **state)
{
    SMTP_DATA_OPTS keep = opts_of(SMTP_DATA_BARE_NORMALIZE, 0, 0, 0);
    SMTP_DATA_OPTS rej = opts_of(SMTP_DATA_BARE_NORMALIZE, 0, 0, SMTP_DATA_FLAG_REJECT_NUL);
    SMTP_REPLY reply;
    RESULT r;

    (void)state;
    check_data(&keep, S("a\0b\r\n\0\r\n.\r\n"), "a\\0b$\\0$", 11, SMTP_DATA_END);
    /* a NUL after the dot: not the end, the dot is unstuffed */
    check_data(&keep, S("a\r\n.\0\r\nb\r\n.\r\n"), "a$\\0$b$", 13, SMTP_DATA_END);
    data_once(&r, &keep, S("a\0b\r\n.\r\n"));
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.seen, SMTP_DATA_SAW_NUL);
    result_free(&r);

    check_data(&rej, S("ok\r\na\0b\r\nc\r\n.\r\n"), "ok$", 15, SMTP_DATA_END);
    data_once(&r, &rej, S("a\0b\r\n.\r\n"));
    assert_int_equal(r.errors, SMTP_DATA_ERR_NUL);
    result_free(&r);

    SMTP_DATA *data = smtp_data_create(&rej, collect, &r);
    size_t used;

    result_init(&r);
    smtp_data_feed(data, S("\0\r\n.\r\n"), &used);
    assert_int_equal(smtp_data_reply(data, &reply), 0);
    assert_int_equal(reply.code, 550);
    assert_string_equal(reply.dsn, "5.6.0");
    smtp_data_free(data);
    result_free(&r);
}

static void test_8bit(void **state)
{
    SMTP_DATA_OPTS o = opts_of(SMTP_DATA_BARE_NORMALIZE, 0, 0, 0);
    RESULT r;

    (void)state;
    data_once(&r, &o, S("caf\xc3\xa9\r\n.\r\n"));
    assert_int_equal(r.seen, SMTP_DATA_SAW_8BIT);
    assert_string_equal(vstr_str(r.out), "caf\xc3\xa9$");
    result_free(&r);
    data_once(&r, &o, S(".\xff\r\n.\r\n"));
    assert_int_equal(r.seen, SMTP_DATA_SAW_8BIT);
    result_free(&r);
    data_once(&r, &o, S("plain\r\n.\r\n"));
    assert_int_equal(r.seen, 0);
    result_free(&r);
}

/* repeat - a run of n copies of ch */
static char *repeat(char ch, size_t n)
{
    char *buf = mymalloc(n + 1);

    memset(buf, ch, n);
    buf[n] = 0;
    return buf;
}

static void expect_line(const SMTP_DATA_OPTS *o, size_t n, const char *want_pieces, int long_seen)
{
    VSTR *msg = vstr_alloc(n + 16);
    char *line = repeat('x', n);
    RESULT r;

    vstr_cpy(msg, line);
    vstr_cat(msg, "\r\n.\r\n");
    check_data(o, vstr_str(msg), vstr_len(msg), want_pieces, vstr_len(msg), SMTP_DATA_END);
    data_once(&r, o, vstr_str(msg), vstr_len(msg));
    assert_int_equal((r.seen & SMTP_DATA_SAW_LONG) != 0, long_seen);
    /* the pieces put together are the line, exactly */
    assert_int_equal(vstr_len(r.raw), n + 2);
    assert_memory_equal(vstr_str(r.raw), line, n);
    assert_true(r.size == n + 2);
    result_free(&r);
    myfree(line);
    vstr_free(msg);
}

static void test_line_limit(void **state)
{
    SMTP_DATA_OPTS o = opts_of(SMTP_DATA_BARE_NORMALIZE, 10, 0, 0);
    SMTP_DATA_OPTS rej = opts_of(SMTP_DATA_BARE_NORMALIZE, 10, 0, SMTP_DATA_FLAG_REJECT_LONG);
    SMTP_REPLY reply;
    RESULT r;

    (void)state;
    expect_line(&o, 9, "xxxxxxxxx$", 0);
    expect_line(&o, 10, "xxxxxxxxxx$", 0);
    expect_line(&o, 11, "xxxxxxxxxx+x$", 1);
    expect_line(&o, 20, "xxxxxxxxxx+xxxxxxxxxx$", 1);
    expect_line(&o, 21, "xxxxxxxxxx+xxxxxxxxxx+x$", 1);
    expect_line(&o, 0, "$", 0);

    /* a dot-stuffed line of 11 octets holds 10 of content: not long */
    check_data(&o, S("..xxxxxxxxx\r\n.\r\n"), ".xxxxxxxxx$", 16, SMTP_DATA_END);
    /* a bare CR turned into a space counts as content */
    check_data(&o, S("xxxxxxxxxx\rx\r\n.\r\n"), "xxxxxxxxxx+ x$", 17, SMTP_DATA_END);

    /* refusing instead of splitting */
    check_data(&rej, S("xxxxxxxxxx\r\n.\r\n"), "xxxxxxxxxx$", 15, SMTP_DATA_END);
    check_data(&rej, S("ok\r\nxxxxxxxxxxx\r\nmore\r\n.\r\n"), "ok$", 26, SMTP_DATA_END);
    data_once(&r, &rej, S("xxxxxxxxxxx\r\n.\r\n"));
    assert_int_equal(r.errors, SMTP_DATA_ERR_LONG);
    result_free(&r);

    SMTP_DATA *data = smtp_data_create(&rej, collect, &r);
    size_t used;

    result_init(&r);
    smtp_data_feed(data, S("xxxxxxxxxxx\r\n.\r\n"), &used);
    assert_int_equal(smtp_data_reply(data, &reply), 0);
    assert_int_equal(reply.code, 550);
    smtp_data_free(data);
    result_free(&r);
}

static void test_line_limit_default(void **state)
{
    SMTP_DATA_OPTS o = opts_of(SMTP_DATA_BARE_NORMALIZE, 0, 0, 0);
    SMTP_DATA_OPTS big = opts_of(SMTP_DATA_BARE_NORMALIZE, 2048, 0, 0);
    VSTR *msg = vstr_alloc(4096);
    char *line;
    RESULT r;

    (void)state;
    /* RFC 5321 4.5.3.1.6: 1000 octets with CRLF, so 998 of content */
    for (size_t n = 997; n <= 999; n++) {
        line = repeat('y', n);
        vstr_cpy(msg, line);
        vstr_cat(msg, "\r\n.\r\n");
        data_once(&r, &o, vstr_str(msg), vstr_len(msg));
        assert_int_equal((r.seen & SMTP_DATA_SAW_LONG) != 0, n > SMTP_DATA_LINE_MAX);
        assert_int_equal(vstr_len(r.raw), n + 2);
        result_free(&r);
        myfree(line);
    }
    /* Postfix's line_length_limit default */
    for (size_t n = 2047; n <= 2049; n++) {
        line = repeat('z', n);
        vstr_cpy(msg, line);
        vstr_cat(msg, "\r\n.\r\n");
        data_once(&r, &big, vstr_str(msg), vstr_len(msg));
        assert_int_equal((r.seen & SMTP_DATA_SAW_LONG) != 0, n > 2048);
        assert_int_equal(vstr_len(r.raw), n + 2);
        assert_memory_equal(vstr_str(r.raw), line, n);
        result_free(&r);
        myfree(line);
    }
    vstr_free(msg);
}

static void test_size_limit(void **state)
{
    SMTP_DATA_OPTS o = opts_of(SMTP_DATA_BARE_NORMALIZE, 0, 10, 0);
    SMTP_REPLY reply;
    RESULT r;

    (void)state;
    /* 8 + CRLF = 10: at the limit */
    data_once(&r, &o, S("12345678\r\n.\r\n"));
    assert_int_equal(r.errors, 0);
    assert_true(r.size == 10);
    result_free(&r);
    /* one more: refused, but the input is still consumed to the end */
    check_data(&o, S("123456789\r\nmore\r\nlines\r\n.\r\nQUIT\r\n"), "", 27, SMTP_DATA_END);
    data_once(&r, &o, S("123456789\r\nmore\r\nlines\r\n.\r\nQUIT\r\n"));
    assert_int_equal(r.errors, SMTP_DATA_ERR_SIZE);
    assert_true(r.size == 11 + 6 + 7);
    result_free(&r);
    /* lines before the limit was passed were delivered, none after */
    check_data(&o, S("1234\r\n5678\r\n.\r\n"), "1234$", 15, SMTP_DATA_END);

    SMTP_DATA *data = smtp_data_create(&o, collect, &r);
    size_t used;

    result_init(&r);
    smtp_data_feed(data, S("123456789\r\n.\r\n"), &used);
    assert_int_equal(smtp_data_reply(data, &reply), 0);
    assert_int_equal(reply.code, 552);
    assert_string_equal(reply.dsn, "5.3.4");
    smtp_data_free(data);
    result_free(&r);
}

/* BDAT: chunks of given sizes (the last one LAST), each fed `step` at a time */
static void run_bdat(RESULT *r, const SMTP_DATA_OPTS *opts, const char *buf, const size_t *chunks,
                     size_t nchunks, size_t step, const char *after)
{
    SMTP_DATA *data = smtp_data_create(opts, collect, r);
    VSTR *input = vstr_alloc(64);
    size_t pos = 0;

    r->data = data;
    smtp_data_start(data, SMTP_DATA_MODE_BDAT);
    for (size_t c = 0; c < nchunks; c++) {
        size_t end = pos + chunks[c];
        int last = (c + 1 == nchunks);

        smtp_data_bdat_chunk(data, chunks[c], last);
        assert_true(smtp_data_chunk_left(data) == chunks[c]);
        /* the peer may already have sent what follows the chunk */
        vstr_ncpy(input, buf + pos, chunks[c]);
        vstr_cat(input, after);
        size_t ipos = 0;

        do {
            size_t seg = step < vstr_len(input) - ipos ? step : vstr_len(input) - ipos;
            size_t used;

            r->status = smtp_data_feed(data, vstr_str(input) + ipos, seg, &used);
            ipos += used;
        } while (r->status == SMTP_DATA_MORE);
        assert_int_equal(ipos, chunks[c]);
        assert_int_equal(r->status, last ? SMTP_DATA_END : SMTP_DATA_CHUNK_END);
        pos = end;
    }
    r->used = pos;
    r->errors = smtp_data_errors(data);
    r->seen = smtp_data_seen(data);
    r->size = smtp_data_size(data);
    r->data = NULL;
    smtp_data_free(data);
    vstr_free(input);
}

static void check_bdat(const SMTP_DATA_OPTS *opts, const char *buf, const size_t *chunks,
                       size_t nchunks, const char *want)
{
    size_t total = 0;

    for (size_t c = 0; c < nchunks; c++)
        total += chunks[c];
    for (size_t step = 1; step <= total + 1; step++) {
        RESULT r;

        result_init(&r);
        run_bdat(&r, opts, buf, chunks, nchunks, step, "QUIT\r\n");
        if (strcmp(vstr_str(r.out), want) != 0)
            fail_msg("step %zu\n got: %s\nwant: %s", step, vstr_str(r.out), want);
        assert_int_equal(r.pieces_after_error, 0);
        result_free(&r);
    }
}

static void test_bdat(void **state)
{
    SMTP_DATA_OPTS norm = opts_of(SMTP_DATA_BARE_NORMALIZE, 0, 0, 0);
    SMTP_DATA_OPTS keep = opts_of(SMTP_DATA_BARE_KEEP, 0, 0, 0);
    SMTP_DATA_OPTS rej = opts_of(SMTP_DATA_BARE_REJECT, 0, 0, 0);
    SMTP_DATA_OPTS small = opts_of(SMTP_DATA_BARE_KEEP, 4, 0, 0);
    static const size_t one8[] = {8};
    static const size_t split_cr[] = {3, 5};
    static const size_t zero[] = {0};
    static const size_t zeros[] = {0, 0, 4, 0};
    static const size_t dots[] = {7};
    static const size_t three[] = {2, 2, 2};
    RESULT r;

    (void)state;
    check_bdat(&norm, "abc\r\ndef", one8, 1, "abc$def#");
    check_bdat(&norm, "ab\r\ncd\r\n", split_cr, 2, "ab$cd$");
    check_bdat(&norm, "", zero, 1, "");
    check_bdat(&norm, "ab\r\n", zeros, 4, "ab$");
    /* no dot-unstuffing and no end marker in BDAT */
    check_bdat(&norm, ".\r\n..\r\n", dots, 1, ".$..$");
    /* CR at the end of one chunk, LF at the start of the next */
    check_bdat(&norm, "a\r\nb\r\n", three, 3, "a$b$");
    /* bare LF / CR policies */
    check_bdat(&norm, "a\nb\rc\r\n", (const size_t[]){7}, 1, "a$b c$");
    check_bdat(&keep, "a\nb\rc\r\n", (const size_t[]){7}, 1, "a\\nb\\rc$");
    check_bdat(&rej, "a\nb\rc\r\n", (const size_t[]){8}, 1, "");
    /* a CR as the very last octet is bare */
    check_bdat(&norm, "abc\r", (const size_t[]){4}, 1, "abc #");
    check_bdat(&keep, "abc\r", (const size_t[]){4}, 1, "abc\\r#");
    check_bdat(&rej, "abc\r", (const size_t[]){4}, 1, "");
    check_bdat(&keep, "abc\r", (const size_t[]){2, 2}, 2, "abc\\r#");
    /* splitting still happens */
    check_bdat(&small, "abcdefghij\r\nk", (const size_t[]){13}, 1, "abcd+efgh+ij$k#");
    check_bdat(&small, "abcd\r\n", (const size_t[]){6}, 1, "abcd$");

    result_init(&r);
    run_bdat(&r, &norm, "ab\r\ncd", (const size_t[]){6}, 1, 100, "");
    assert_true(r.size == 6);
    assert_int_equal(r.errors, 0);
    result_free(&r);
    result_init(&r);
    run_bdat(&r, &rej, "a\rb", (const size_t[]){3}, 1, 100, "");
    assert_int_equal(r.errors, SMTP_DATA_ERR_BARE_CR);
    result_free(&r);
}

/* BDAT with BODY=BINARYMIME: every octet value, any chunking, exact */
static void test_bdat_binary_exact(void **state)
{
    SMTP_DATA_OPTS keep = opts_of(SMTP_DATA_BARE_KEEP, 64, 0, 0);
    unsigned seed = 4242;
    char buf[3000];

    (void)state;
    for (int round = 0; round < 30; round++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof(buf));
        size_t chunks[8];
        size_t nchunks = 0;
        size_t left = len;
        RESULT r;

        for (size_t i = 0; i < len; i++) {
            int k = rand_r(&seed) % 8;

            buf[i] = (char)(k == 0 ? '\r' : k == 1 ? '\n' : rand_r(&seed) % 256);
        }
        while (nchunks < 7 && left > 0) {
            chunks[nchunks] = (size_t)rand_r(&seed) % (left + 1);
            left -= chunks[nchunks++];
        }
        chunks[nchunks++] = left;

        result_init(&r);
        run_bdat(&r, &keep, buf, chunks, nchunks, (size_t)(rand_r(&seed) % 50 + 1), "x");
        /* pieces joined, CRLF per line end, give back the octets */
        assert_int_equal(vstr_len(r.raw), len);
        assert_memory_equal(vstr_str(r.raw), buf, len);
        assert_true(r.size == len);
        assert_int_equal(r.errors, 0);
        result_free(&r);
    }
}

static void test_bdat_size_limit(void **state)
{
    SMTP_DATA_OPTS o = opts_of(SMTP_DATA_BARE_NORMALIZE, 0, 5, 0);
    RESULT r;

    (void)state;
    result_init(&r);
    run_bdat(&r, &o, "abc\r\ndefgh\r\n", (const size_t[]){6, 6}, 2, 3, "");
    assert_int_equal(r.errors, SMTP_DATA_ERR_SIZE);
    assert_int_equal(r.used, 12);
    assert_string_equal(vstr_str(r.out), "abc$");
    result_free(&r);
}

/* random mixtures of CR, LF and dots under each policy: never a crash, the
   end only at CRLF "." CRLF, and chunking never changes the result */
static void test_fuzz(void **state)
{
    static const char alphabet[] = "\r\n.a\0";
    unsigned seed = 99;
    char buf[64];

    (void)state;
    for (int round = 0; round < 300; round++) {
        size_t len = (size_t)(rand_r(&seed) % 40);
        SMTP_DATA_OPTS o = opts_of((enum smtp_data_bare)(round % 3), 3, 0, 0);
        size_t end = len + 5;
        RESULT r;

        for (size_t i = 0; i < len; i++)
            buf[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
        memcpy(buf + len, "\r\n.\r\n", 5);
        /* the first CRLF "." CRLF, counting the start of data as a CRLF */
        for (size_t i = 0; i + 3 <= len + 5; i++) {
            int at_bol = (i == 0) || (i >= 2 && buf[i - 2] == '\r' && buf[i - 1] == '\n');

            if (at_bol && memcmp(buf + i, ".\r\n", 3) == 0) {
                end = i + 3;
                break;
            }
        }
        data_once(&r, &o, buf, len + 5);
        result_free(&r);
        check_data(&o, buf, len + 5, NULL, end, SMTP_DATA_END);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_end_of_data),
        cmocka_unit_test(test_end_then_feed),
        cmocka_unit_test(test_dot_stuffing),
        cmocka_unit_test(test_stuffing_round_trip),
        cmocka_unit_test(test_smuggling),
        cmocka_unit_test(test_smuggling_normalize_exact),
        cmocka_unit_test(test_bare_policies),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_8bit),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_line_limit_default),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_bdat),
        cmocka_unit_test(test_bdat_binary_exact),
        cmocka_unit_test(test_bdat_size_limit),
        cmocka_unit_test(test_fuzz),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
