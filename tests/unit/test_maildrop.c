/*
 * test_maildrop - unit tests for lib/mail/maildrop: the record layout
 * (checked against bytes built by hand from the documentation), byte-exact
 * content, the section rules, every malformed or hostile input the reader
 * must refuse (and how), the writer's refusals, postdrop-style copying, and
 * random garbage that must never crash the reader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mail/maildrop.h"
#include "mail/qfile.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

/* ---- helpers ---- */

/* mem_fd - an anonymous file holding len bytes, positioned at 0 */
static int mem_fd(const void *data, size_t len)
{
    int fd = memfd_create("test_maildrop", 0);

    assert_true(fd >= 0);
    if (len)
        assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

/* fd_bytes - the whole content of fd into buf (a VSTR) */
static void fd_bytes(int fd, VSTR *buf)
{
    char tmp[4096];
    ssize_t n;

    vstr_reset(buf);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    while ((n = read(fd, tmp, sizeof(tmp))) > 0)
        vstr_ncat(buf, tmp, (size_t)n);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
}

/* Hand-built records. */
static void put_hdr(VSTR *b, unsigned version, unsigned flags)
{
    vstr_ncat(b, MAILDROP_MAGIC, MAILDROP_MAGIC_LEN);
    vstr_addch(b, (char)(version >> 8));
    vstr_addch(b, (char)version);
    vstr_addch(b, (char)(flags >> 8));
    vstr_addch(b, (char)flags);
}

static void put_rec(VSTR *b, int type, const void *p, size_t len)
{
    vstr_addch(b, (char)type);
    vstr_addch(b, (char)(len >> 24));
    vstr_addch(b, (char)(len >> 16));
    vstr_addch(b, (char)(len >> 8));
    vstr_addch(b, (char)len);
    vstr_ncat(b, p, len);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static void put_end(VSTR *b, uint32_t rcpts, uint64_t size)
{
    unsigned char e[12];

    put_u32(e, rcpts);
    put_u32(e + 4, (uint32_t)(size >> 32));
    put_u32(e + 8, (uint32_t)size);
    put_rec(b, MAILDROP_REC_END, e, 12);
}

static void put_submitter(VSTR *b, uint32_t uid, const char *login)
{
    unsigned char p[300];

    put_u32(p, uid);
    memcpy(p + 4, login, strlen(login));
    put_rec(b, MAILDROP_REC_SUBMITTER, p, 4 + strlen(login));
}

static void put_rcpt(VSTR *b, int notify, const char *addr)
{
    unsigned char p[3000];

    p[0] = (unsigned char)notify;
    memcpy(p + 1, addr, strlen(addr));
    put_rec(b, MAILDROP_REC_RCPT, p, 1 + strlen(addr));
}

/* A minimal valid file: submitter, sender, one recipient, "hi\n". */
static void good_file(VSTR *b)
{
    put_hdr(b, 1, 0);
    put_submitter(b, 1000, "alice");
    put_rec(b, MAILDROP_REC_SENDER, "alice", 5);
    put_rcpt(b, 0, "bob@example.com");
    put_rec(b, MAILDROP_REC_CONTENT, "", 0);
    put_rec(b, MAILDROP_REC_LINE, "hi", 2);
    put_rec(b, MAILDROP_REC_CONTENT_END, "", 0);
    put_end(b, 1, 3);
}

/* read_all - read every record of data in mode; the last result, with the
   reason into why when not NULL */
static int read_all(const VSTR *data, int mode, const MAILDROP_LIMITS *lim, VSTR *why)
{
    int fd = mem_fd(vstr_str(data), vstr_len(data));
    MAILDROP_READER *r = maildrop_reader_open(fd, mode, lim);
    MAILDROP_REC rec;
    int res;

    while ((res = maildrop_read(r, &rec)) == MAILDROP_OK)
        /* void */;
    if (why)
        vstr_cpy(why, maildrop_reader_why(r));
    /* Errors are sticky. */
    if (res != MAILDROP_EOF)
        assert_int_equal(maildrop_read(r, &rec), res);
    maildrop_reader_free(r);
    close(fd);
    return res;
}

/* expect - data read in mode gives err, with reason containing text */
static void expect(const VSTR *data, int mode, int err, const char *text)
{
    VSTR *why = vstr_alloc(100);
    int res = read_all(data, mode, NULL, why);

    if (res != err || (text && strstr(vstr_str(why), text) == NULL))
        fail_msg("expected %d (%s), got %d: %s", err, text ? text : "", res, vstr_str(why));
    vstr_free(why);
}

/* ---- tests ---- */

/* The writer's bytes are exactly the documented layout. */
static void test_golden_bytes(void **state)
{
    VSTR *want = vstr_alloc(100), *got = vstr_alloc(100);
    int fd = mem_fd("", 0);
    MAILDROP_WRITER *w = maildrop_writer_open(fd, "test");

    (void)state;
    good_file(want);
    assert_int_equal(maildrop_writer_submitter(w, 1000, "alice"), 0);
    assert_int_equal(maildrop_writer_sender(w, "alice"), 0);
    assert_int_equal(maildrop_writer_rcpt(w, "bob@example.com", 0), 0);
    assert_int_equal(maildrop_writer_line(w, "hi", 2, 1), 0);
    assert_int_equal(maildrop_writer_finish(w), 0);
    fd_bytes(fd, got);
    assert_int_equal(vstr_len(got), vstr_len(want));
    assert_memory_equal(vstr_str(got), vstr_str(want), vstr_len(want));
    /* The first bytes, as docs/queue-format.md shows them. */
    assert_memory_equal(vstr_str(got), "\x89PMD\r\n\x1a\n\x00\x01\x00\x00U\x00\x00\x00\x09", 17);
    maildrop_writer_free(w);
    close(fd);
    vstr_free(want);
    vstr_free(got);
}

/* Everything written comes back, content byte for byte. */
static void test_round_trip(void **state)
{
    int fd = mem_fd("", 0);
    MAILDROP_WRITER *w = maildrop_writer_open(fd, "test");
    MAILDROP_READER *r;
    MAILDROP_REC rec;
    VSTR *content = vstr_alloc(100), *back = vstr_alloc(100);
    char big[10000];
    int n_rcpt = 0, res;

    (void)state;
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    big[5000] = 0; /* a NUL byte inside a line */
    assert_int_equal(maildrop_writer_submitter(w, 4294967295UL, "root"), 0);
    assert_int_equal(maildrop_writer_flags(w, MAILDROP_FLAG_EXTRACT_RCPT), 0);
    assert_int_equal(maildrop_writer_sender(w, ""), 0);
    assert_int_equal(maildrop_writer_full_name(w, "J\xc3\xb6rg Doe"), 0);
    assert_int_equal(maildrop_writer_dsn(w, QFILE_RET_HDRS, "env-id+1"), 0);
    assert_int_equal(maildrop_writer_body(w, MAILDROP_BODY_8BITMIME), 0);
    assert_int_equal(maildrop_writer_rcpt(w, "a@example.com", QFILE_NOTIFY_NEVER), 0);
    /* Lines: empty, a dot, long (split in pieces), CR inside, a NUL, and a
       last line without a line end given in two calls. */
    assert_int_equal(maildrop_writer_line(w, "", 0, 1), 0);
    assert_int_equal(maildrop_writer_line(w, ".", 1, 1), 0);
    assert_int_equal(maildrop_writer_line(w, big, sizeof(big), 1), 0);
    assert_int_equal(maildrop_writer_line(w, "a\rb", 3, 1), 0);
    assert_int_equal(maildrop_writer_line(w, "tail", 4, 0), 0);
    assert_int_equal(maildrop_writer_line(w, "-end", 4, 0), 0);
    assert_int_equal(maildrop_writer_end_content(w), 0);
    assert_int_equal(
        maildrop_writer_rcpt(w, "post@example.com", QFILE_NOTIFY_SUCCESS | QFILE_NOTIFY_DELAY), 0);
    assert_int_equal(maildrop_writer_finish(w), 0);
    assert_int_equal(maildrop_writer_rcpt_count(w), 2);
    vstr_ncat(content, "\n.\n", 3);
    vstr_ncat(content, big, sizeof(big));
    vstr_ncat(content, "\na\rb\ntail-end", 13);
    assert_int_equal(maildrop_writer_size(w), vstr_len(content));
    maildrop_writer_free(w);

    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    r = maildrop_reader_open(fd, MAILDROP_RD_FILE, NULL);
    while ((res = maildrop_read(r, &rec)) == MAILDROP_OK) {
        switch (rec.type) {
        case MAILDROP_REC_SUBMITTER:
            assert_int_equal(rec.uid, 4294967295UL);
            assert_string_equal(rec.text, "root");
            break;
        case MAILDROP_REC_FLAGS: assert_int_equal(rec.flags, MAILDROP_FLAG_EXTRACT_RCPT); break;
        case MAILDROP_REC_SENDER: assert_string_equal(rec.text, ""); break;
        case MAILDROP_REC_FULL_NAME: assert_string_equal(rec.text, "J\xc3\xb6rg Doe"); break;
        case MAILDROP_REC_DSN:
            assert_int_equal(rec.ret, QFILE_RET_HDRS);
            assert_string_equal(rec.text, "env-id+1");
            break;
        case MAILDROP_REC_BODY: assert_int_equal(rec.body, MAILDROP_BODY_8BITMIME); break;
        case MAILDROP_REC_RCPT:
            if (n_rcpt++ == 0) {
                assert_string_equal(rec.text, "a@example.com");
                assert_int_equal(rec.notify, QFILE_NOTIFY_NEVER);
            } else {
                assert_string_equal(rec.text, "post@example.com");
                assert_int_equal(rec.notify, QFILE_NOTIFY_SUCCESS | QFILE_NOTIFY_DELAY);
            }
            break;
        case MAILDROP_REC_LINE:
            assert_true(rec.len <= MAILDROP_CHUNK_MAX);
            vstr_ncat(back, rec.data, rec.len);
            vstr_addch(back, '\n');
            break;
        case MAILDROP_REC_PART:
            assert_true(rec.len >= 1 && rec.len <= MAILDROP_CHUNK_MAX);
            vstr_ncat(back, rec.data, rec.len);
            break;
        case MAILDROP_REC_END:
            assert_int_equal(rec.rcpt_count, 2);
            assert_int_equal(rec.content_size, vstr_len(content));
            break;
        default: break;
        }
    }
    assert_int_equal(res, MAILDROP_EOF);
    assert_int_equal(n_rcpt, 2);
    /* LINE adds a line end, PART none: the message comes back exactly. */
    assert_int_equal(vstr_len(back), vstr_len(content));
    assert_memory_equal(vstr_str(back), vstr_str(content), vstr_len(content));
    assert_int_equal(maildrop_reader_size(r), vstr_len(content));
    maildrop_reader_free(r);
    close(fd);
    vstr_free(content);
    vstr_free(back);
}

/* Postdrop's job: a stream (no submitter) copied into a file (with one). */
static void test_copy_stream_to_file(void **state)
{
    int in = mem_fd("", 0), out = mem_fd("", 0);
    MAILDROP_WRITER *w = maildrop_writer_open(in, "sendmail");
    MAILDROP_READER *r;
    MAILDROP_REC rec;
    VSTR *a = vstr_alloc(100), *b = vstr_alloc(100);
    int res;

    (void)state;
    maildrop_writer_sender(w, "alice@example.com");
    maildrop_writer_rcpt(w, "bob@example.com", 0);
    maildrop_writer_line(w, "Subject: x", 10, 1);
    maildrop_writer_line(w, "", 0, 1);
    maildrop_writer_line(w, "body", 4, 0);
    assert_int_equal(maildrop_writer_finish(w), 0);
    maildrop_writer_free(w);
    assert_int_equal(lseek(in, 0, SEEK_SET), 0);

    r = maildrop_reader_open(in, MAILDROP_RD_STREAM, NULL);
    w = maildrop_writer_open(out, "maildrop/X");
    assert_int_equal(maildrop_writer_submitter(w, 1000, "alice"), 0);
    while ((res = maildrop_read(r, &rec)) == MAILDROP_OK) {
        if (rec.type == MAILDROP_REC_END)
            continue;
        assert_int_equal(maildrop_writer_copy(w, &rec), 0);
    }
    assert_int_equal(res, MAILDROP_EOF);
    assert_int_equal(maildrop_writer_finish(w), 0);
    maildrop_reader_free(r);
    maildrop_writer_free(w);

    /* The file reads back whole, and holds the stream after its submitter. */
    fd_bytes(out, b);
    assert_int_equal(read_all(b, MAILDROP_RD_FILE, NULL, NULL), MAILDROP_EOF);
    fd_bytes(in, a);
    size_t sub = MAILDROP_REC_HEADER_LEN + 4 + 5;

    assert_int_equal(vstr_len(b), vstr_len(a) + sub);
    assert_memory_equal(vstr_str(b) + MAILDROP_HEADER_LEN + sub, vstr_str(a) + MAILDROP_HEADER_LEN,
                        vstr_len(a) - MAILDROP_HEADER_LEN);
    /* A file is not a stream and a stream is not a file. */
    expect(b, MAILDROP_RD_STREAM, MAILDROP_ERR_CORRUPT, "submitter record in the input");
    expect(a, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "the first record is not the submitter");
    close(in);
    close(out);
    vstr_free(a);
    vstr_free(b);
}

/* Header problems. */
static void test_bad_header(void **state)
{
    VSTR *b = vstr_alloc(100);

    (void)state;
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_TRUNC, "empty input");
    vstr_cpy(b, "From alice Mon Jan  1 00:00:00 2024\nSubject: not ours\n");
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_FORMAT, "bad magic");
    vstr_reset(b);
    vstr_ncat(b, MAILDROP_MAGIC, 5);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_TRUNC, "file header cut short");
    vstr_reset(b);
    put_hdr(b, 2, 0);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_FORMAT, "version 2");
    vstr_reset(b);
    put_hdr(b, 1, 1);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_FORMAT, "flags");
    /* A queue file is not a maildrop file. */
    vstr_reset(b);
    vstr_ncat(b, QFILE_MAGIC "\x00\x01\x00\x00", 12);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_FORMAT, "bad magic");
    vstr_free(b);
}

/* Lengths past a type's limit are refused before any payload is read. */
static void test_hostile_lengths(void **state)
{
    VSTR *b = vstr_alloc(100);
    unsigned char h[5] = {MAILDROP_REC_LINE, 0xff, 0xff, 0xff, 0xff};

    (void)state;
    put_hdr(b, 1, 0);
    put_submitter(b, 1, "x");
    vstr_ncat(b, "M\0\0\0\0", 5);
    vstr_ncat(b, h, 5); /* 4 GiB line, no payload present */
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT,
           "length 4294967295 exceeds the limit of 4096");

    /* Ancillary records are bounded too. */
    vstr_reset(b);
    put_hdr(b, 1, 0);
    put_submitter(b, 1, "x");
    h[0] = 0x90, h[1] = 0, h[2] = 1, h[3] = 0, h[4] = 1; /* 65537 */
    vstr_ncat(b, h, 5);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "exceeds the limit of 65536");

    /* Fixed-size records with the wrong size. */
    vstr_reset(b);
    put_hdr(b, 1, 0);
    put_submitter(b, 1, "x");
    put_rec(b, MAILDROP_REC_CONTENT, "x", 1);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "exceeds the limit of 0");
    vstr_reset(b);
    put_hdr(b, 1, 0);
    put_submitter(b, 1, "x");
    put_rec(b, MAILDROP_REC_BODY, "\1\1", 2);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "exceeds the limit of 1");
    vstr_free(b);
}

/* Cut short in each way. */
static void test_truncated(void **state)
{
    VSTR *full = vstr_alloc(100), *b = vstr_alloc(100);

    (void)state;
    good_file(full);
    assert_int_equal(read_all(full, MAILDROP_RD_FILE, NULL, NULL), MAILDROP_EOF);
    /* Every proper prefix fails; none reads as a whole file. */
    for (size_t n = 0; n < vstr_len(full); n++) {
        vstr_ncpy(b, vstr_str(full), n);
        int res = read_all(b, MAILDROP_RD_FILE, NULL, NULL);

        if (res != MAILDROP_ERR_TRUNC && res != MAILDROP_ERR_ABORT && res != MAILDROP_ERR_FORMAT)
            fail_msg("prefix of %zu bytes: result %d", n, res);
    }
    /* Ending cleanly between records before END is an abort, not damage. */
    vstr_reset(b);
    put_hdr(b, 1, 0);
    put_submitter(b, 1, "x");
    put_rec(b, MAILDROP_REC_CONTENT, "", 0);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_ABORT, "before the end record");
    vstr_ncat(b,
              "L\0\0\0\x05"
              "ab",
              7);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_TRUNC, "cut short");
    vstr_free(full);
    vstr_free(b);
}

/* Records out of their section, repeated, or with bad fields. */
static void test_structure(void **state)
{
    VSTR *b = vstr_alloc(100);

    (void)state;
#define START()                                                                                    \
    do {                                                                                           \
        vstr_reset(b);                                                                             \
        put_hdr(b, 1, 0);                                                                          \
        put_submitter(b, 1000, "alice");                                                           \
    } while (0)

    START();
    put_rec(b, MAILDROP_REC_SENDER, "a", 1);
    put_rec(b, MAILDROP_REC_SENDER, "b", 1);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "repeated");

    START();
    put_submitter(b, 1000, "alice");
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "out of place");

    START();
    put_rec(b, MAILDROP_REC_CONTENT, "", 0);
    put_rec(b, MAILDROP_REC_SENDER, "a", 1);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "out of place");

    START();
    put_rec(b, MAILDROP_REC_LINE, "x", 1);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "out of place");

    START();
    put_rec(b, MAILDROP_REC_CONTENT, "", 0);
    put_rcpt(b, 0, "a@b");
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "out of place");

    START();
    put_end(b, 0, 0);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "out of place");

    START();
    put_rec(b, MAILDROP_REC_CONTENT, "", 0);
    put_rec(b, MAILDROP_REC_PART, "", 0);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "empty content piece");

    START();
    put_rec(b, 'Q', "", 0);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "unknown record type 'Q'");

    START();
    put_rec(b, 0x00, "", 0);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "invalid record type 0x00");

    START();
    put_rec(b, 0xff, "", 0);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "invalid record type 0xff");

    /* Field syntax. */
    START();
    put_rec(b, MAILDROP_REC_SENDER, "a\nb", 3);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed sender");
    START();
    put_rcpt(b, 0, "a\rb@example.com");
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed recipient");
    START();
    put_rcpt(b, 0, "");
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed recipient");
    START();
    put_rcpt(b, QFILE_NOTIFY_NEVER | QFILE_NOTIFY_SUCCESS, "a@b");
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed recipient");
    START();
    put_rcpt(b, 0x40, "a@b");
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed recipient");
    START();
    put_rec(b, MAILDROP_REC_FULL_NAME, "Eve\r\nBcc: x", 11);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed full name");
    START();
    put_rec(b, MAILDROP_REC_FULL_NAME, "", 0);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed full name");
    START();
    put_rec(b, MAILDROP_REC_DSN, "\3", 1);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed DSN");
    START();
    put_rec(b, MAILDROP_REC_DSN, "\1\xc3\xa9", 3);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed DSN");
    START();
    put_rec(b, MAILDROP_REC_DSN, "", 0);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed DSN");
    START();
    put_rec(b, MAILDROP_REC_BODY, "\3", 1);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed body");
    START();
    put_rec(b, MAILDROP_REC_FLAGS, "\0\0\0\2", 4);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed flags");
    START();
    put_rec(b, MAILDROP_REC_FLAGS, "\0\0\1", 3);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed flags");

    /* A submitter with a name that could forge a log line. */
    vstr_reset(b);
    put_hdr(b, 1, 0);
    put_submitter(b, 1000, "alice\nroot");
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed submitter");
    vstr_reset(b);
    put_hdr(b, 1, 0);
    put_rec(b, MAILDROP_REC_SUBMITTER, "\0\0\0\1", 4);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed submitter");
    vstr_free(b);
#undef START
}

/* END must match what came before it, and nothing may follow it. */
static void test_end_record(void **state)
{
    VSTR *b = vstr_alloc(100);

    (void)state;
    vstr_reset(b);
    put_hdr(b, 1, 0);
    put_submitter(b, 1, "x");
    put_rcpt(b, 0, "a@b");
    put_rec(b, MAILDROP_REC_CONTENT, "", 0);
    put_rec(b, MAILDROP_REC_LINE, "abc", 3);
    put_rec(b, MAILDROP_REC_CONTENT_END, "", 0);
    put_end(b, 1, 3); /* the size is 4 */
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "found 1 and 4");

    vstr_reset(b);
    good_file(b);
    put_rec(b, MAILDROP_REC_LINE, "spliced", 7);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "data after the end record");

    vstr_reset(b);
    good_file(b);
    vstr_addch(b, 0);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "data after the end record");

    vstr_reset(b);
    put_hdr(b, 1, 0);
    put_submitter(b, 1, "x");
    put_rec(b, MAILDROP_REC_CONTENT, "", 0);
    put_rec(b, MAILDROP_REC_CONTENT_END, "", 0);
    put_rec(b, MAILDROP_REC_END, "\0\0\0\0", 4);
    expect(b, MAILDROP_RD_FILE, MAILDROP_ERR_CORRUPT, "malformed end record");
    vstr_free(b);
}

/* Unknown ancillary records are returned and skipped; critical ones are not. */
static void test_ancillary(void **state)
{
    VSTR *b = vstr_alloc(100);
    int fd, res, seen = 0;
    MAILDROP_READER *r;
    MAILDROP_REC rec;

    (void)state;
    put_hdr(b, 1, 0);
    put_submitter(b, 1, "x");
    put_rec(b, 0xA0, "future", 6);
    put_rec(b, MAILDROP_REC_CONTENT, "", 0);
    put_rec(b, 0xA1, "", 0);
    put_rec(b, MAILDROP_REC_CONTENT_END, "", 0);
    put_rcpt(b, 0, "a@b");
    put_end(b, 1, 0);
    fd = mem_fd(vstr_str(b), vstr_len(b));
    r = maildrop_reader_open(fd, MAILDROP_RD_FILE, NULL);
    while ((res = maildrop_read(r, &rec)) == MAILDROP_OK)
        if (rec.type >= MAILDROP_REC_ANCILLARY)
            seen++;
    assert_int_equal(res, MAILDROP_EOF);
    assert_int_equal(seen, 2);
    maildrop_reader_free(r);
    close(fd);
    vstr_free(b);
}

/* The size and recipient limits. */
static void test_limits(void **state)
{
    VSTR *b = vstr_alloc(100), *why = vstr_alloc(100);
    MAILDROP_LIMITS lim = {.size_max = 3, .rcpt_max = 2};

    (void)state;
    good_file(b); /* content size 3, one recipient: within */
    assert_int_equal(read_all(b, MAILDROP_RD_FILE, &lim, NULL), MAILDROP_EOF);
    lim.size_max = 2;
    assert_int_equal(read_all(b, MAILDROP_RD_FILE, &lim, why), MAILDROP_ERR_LIMIT);
    assert_non_null(strstr(vstr_str(why), "limit of 2 bytes"));

    vstr_reset(b);
    put_hdr(b, 1, 0);
    put_submitter(b, 1, "x");
    put_rcpt(b, 0, "a@b");
    put_rcpt(b, 0, "c@d");
    put_rcpt(b, 0, "e@f");
    assert_int_equal(read_all(b, MAILDROP_RD_FILE, &lim, why), MAILDROP_ERR_LIMIT);
    assert_non_null(strstr(vstr_str(why), "more than 2 recipients"));
    vstr_free(b);
    vstr_free(why);
}

/* The writer refuses what the reader would refuse. */
static void test_writer_refusals(void **state)
{
    int fd = mem_fd("", 0);
    MAILDROP_WRITER *w = maildrop_writer_open(fd, "test");
    MAILDROP_REC rec = {.type = MAILDROP_REC_SUBMITTER, .text = "x"};
    char long_addr[MAILDROP_ADDR_MAX + 2];

    (void)state;
    memset(long_addr, 'a', sizeof(long_addr) - 1);
    long_addr[sizeof(long_addr) - 1] = 0;
    assert_int_equal(maildrop_writer_sender(w, "a\nb"), MAILDROP_ERR_INVAL);
    assert_int_equal(maildrop_writer_sender(w, long_addr), MAILDROP_ERR_INVAL);
    assert_int_equal(maildrop_writer_sender(w, "a@b"), 0);
    assert_int_equal(maildrop_writer_sender(w, "a@b"), MAILDROP_ERR_INVAL);
    assert_non_null(strstr(maildrop_writer_why(w), "twice"));
    assert_int_equal(maildrop_writer_submitter(w, 1, "x"), MAILDROP_ERR_INVAL);
    assert_int_equal(maildrop_writer_rcpt(w, "", 0), MAILDROP_ERR_INVAL);
    assert_int_equal(maildrop_writer_rcpt(w, "x@y", QFILE_NOTIFY_NEVER | QFILE_NOTIFY_DELAY),
                     MAILDROP_ERR_INVAL);
    assert_int_equal(maildrop_writer_full_name(w, "tab\there"), MAILDROP_ERR_INVAL);
    assert_int_equal(maildrop_writer_dsn(w, 7, NULL), MAILDROP_ERR_INVAL);
    assert_int_equal(maildrop_writer_dsn(w, QFILE_RET_FULL, "bad envid"), 0); /* SP is printable */
    assert_int_equal(maildrop_writer_body(w, 9), MAILDROP_ERR_INVAL);
    assert_int_equal(maildrop_writer_flags(w, 0x100), MAILDROP_ERR_INVAL);
    assert_int_equal(maildrop_writer_copy(w, &rec), MAILDROP_ERR_INVAL);
    rec.type = MAILDROP_REC_END;
    assert_int_equal(maildrop_writer_copy(w, &rec), MAILDROP_ERR_INVAL);
    rec.type = 'Q';
    assert_int_equal(maildrop_writer_copy(w, &rec), MAILDROP_ERR_INVAL);
    assert_int_equal(maildrop_writer_line(w, "x", 1, 1), 0);
    assert_int_equal(maildrop_writer_rcpt(w, "x@y", 0), MAILDROP_ERR_INVAL);
    assert_int_equal(maildrop_writer_full_name(w, "late"), MAILDROP_ERR_INVAL);
    /* Still usable: the refusals did not break the file. */
    assert_int_equal(maildrop_writer_finish(w), 0);
    assert_int_equal(maildrop_writer_line(w, "x", 1, 1), MAILDROP_ERR_INVAL);
    maildrop_writer_free(w);
    close(fd);
}

/* The size limit is checked before writing and is sticky. */
static void test_writer_size_limit(void **state)
{
    int fd = mem_fd("", 0);
    MAILDROP_WRITER *w = maildrop_writer_open(fd, "test");

    (void)state;
    maildrop_writer_set_size_limit(w, 10);
    assert_int_equal(maildrop_writer_line(w, "123456789", 9, 1), 0); /* 10 bytes */
    assert_int_equal(maildrop_writer_line(w, "", 0, 1), MAILDROP_ERR_LIMIT);
    assert_non_null(strstr(maildrop_writer_why(w), "limit of 10 bytes"));
    assert_int_equal(maildrop_writer_finish(w), MAILDROP_ERR_LIMIT);
    assert_int_equal(maildrop_writer_size(w), 10);
    maildrop_writer_free(w);
    close(fd);
}

/* A write error (the reader of a pipe went away) is sticky. */
static void test_writer_write_error(void **state)
{
    int p[2];
    MAILDROP_WRITER *w;
    char big[MAILDROP_CHUNK_MAX];

    (void)state;
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    signal(SIGPIPE, SIG_IGN);
    w = maildrop_writer_open(p[1], "postdrop");
    memset(big, 'x', sizeof(big));
    int res = 0;

    for (int i = 0; i < 100 && res == 0; i++)
        res = maildrop_writer_line(w, big, sizeof(big), 1);
    if (res == 0)
        res = maildrop_writer_finish(w);
    assert_int_equal(res, MAILDROP_ERR_SYS);
    assert_non_null(strstr(maildrop_writer_why(w), "write postdrop"));
    assert_int_equal(maildrop_writer_rcpt(w, "a@b", 0), MAILDROP_ERR_SYS);
    maildrop_writer_free(w);
    close(p[1]);
}

/* A stream through a real pipe, read while it is written. */
static void test_pipe_stream(void **state)
{
    int p[2], res, lines = 0;
    pid_t pid;
    MAILDROP_READER *r;
    MAILDROP_REC rec;

    (void)state;
    assert_int_equal(pipe(p), 0);
    if ((pid = fork()) == 0) {
        close(p[0]);
        MAILDROP_WRITER *w = maildrop_writer_open(p[1], "child");

        maildrop_writer_rcpt(w, "a@b", 0);
        for (int i = 0; i < 5000; i++)
            maildrop_writer_line(w, "a line of text", 14, 1);
        _exit(maildrop_writer_finish(w) == 0 ? 0 : 1);
    }
    close(p[1]);
    r = maildrop_reader_open(p[0], MAILDROP_RD_STREAM, NULL);
    while ((res = maildrop_read(r, &rec)) == MAILDROP_OK)
        lines += rec.type == MAILDROP_REC_LINE;
    assert_int_equal(res, MAILDROP_EOF);
    assert_int_equal(lines, 5000);
    maildrop_reader_free(r);
    close(p[0]);
    int status;

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(status, 0);
}

/* Random bytes, and random damage to a good file, never crash the reader
   and never read as a whole file unless they are one. */
static void test_garbage(void **state)
{
    VSTR *good = vstr_alloc(100), *b = vstr_alloc(100);
    unsigned seed = 12345;

    (void)state;
    good_file(good);
    for (int round = 0; round < 3000; round++) {
        vstr_reset(b);
        if (round % 2) {
            put_hdr(b, 1, 0);
            size_t n = (size_t)(rand_r(&seed) % 200);

            for (size_t i = 0; i < n; i++)
                vstr_addch(b, (char)rand_r(&seed));
        } else {
            vstr_ncpy(b, vstr_str(good), vstr_len(good));
            int flips = 1 + rand_r(&seed) % 3;

            for (int i = 0; i < flips; i++)
                vstr_str(b)[rand_r(&seed) % vstr_len(b)] ^= (char)(1 + rand_r(&seed) % 255);
        }
        int res = read_all(b, round % 3 ? MAILDROP_RD_FILE : MAILDROP_RD_STREAM, NULL, NULL);

        assert_true(res == MAILDROP_EOF || res < 0);
    }
    vstr_free(good);
    vstr_free(b);
}

/* The whole envelope of a file in one call, and its failure. */
static void test_envelope_read(void **state)
{
    int fd = mem_fd("", 0);
    MAILDROP_WRITER *w = maildrop_writer_open(fd, "test");
    MAILDROP_ENVELOPE env;
    MAILDROP_LIMITS lim = {.size_max = 100};
    VSTR *why = vstr_alloc(100), *b = vstr_alloc(100);

    (void)state;
    maildrop_writer_submitter(w, 42, "carol");
    maildrop_writer_full_name(w, "Carol C.");
    maildrop_writer_dsn(w, QFILE_RET_FULL, "id-1");
    maildrop_writer_rcpt(w, "a@example.com", QFILE_NOTIFY_FAILURE);
    maildrop_writer_line(w, "body", 4, 1);
    maildrop_writer_end_content(w);
    maildrop_writer_rcpt(w, "j\xc3\xb6rg@example.com", 0);
    assert_int_equal(maildrop_writer_finish(w), 0);
    maildrop_writer_free(w);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(maildrop_envelope_read(fd, MAILDROP_RD_FILE, &lim, &env, why), 0);
    assert_true(env.have_submitter);
    assert_int_equal(env.submitter_uid, 42);
    assert_null(env.sender);
    assert_string_equal(env.full_name, "Carol C.");
    assert_int_equal(env.ret, QFILE_RET_FULL);
    assert_string_equal(env.envid, "id-1");
    assert_int_equal(env.rcpt->argc, 2);
    assert_string_equal(env.rcpt->argv[1], "j\xc3\xb6rg@example.com");
    assert_int_equal(env.notify[0], QFILE_NOTIFY_FAILURE);
    assert_int_equal(env.notify[1], 0);
    assert_int_equal(env.content_size, 5);
    assert_true(env.utf8);
    maildrop_envelope_free(&env);
    maildrop_envelope_free(&env); /* twice is harmless */

    /* Over the size limit: an error, the reason, and nothing leaked. */
    lim.size_max = 4;
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(maildrop_envelope_read(fd, MAILDROP_RD_FILE, &lim, &env, why),
                     MAILDROP_ERR_LIMIT);
    assert_non_null(strstr(vstr_str(why), "limit of 4 bytes"));
    maildrop_envelope_free(&env);

    /* Garbage. */
    vstr_cpy(b, "not a maildrop file at all");
    close(fd);
    fd = mem_fd(vstr_str(b), vstr_len(b));
    assert_int_equal(maildrop_envelope_read(fd, MAILDROP_RD_FILE, NULL, &env, why),
                     MAILDROP_ERR_FORMAT);
    maildrop_envelope_free(&env);
    close(fd);
    vstr_free(why);
    vstr_free(b);
}

/* The field checks used by the programs. */
static void test_field_checks(void **state)
{
    (void)state;
    assert_true(maildrop_addr_ok("", 0, 1));
    assert_false(maildrop_addr_ok("", 0, 0));
    assert_true(maildrop_addr_ok("j\xc3\xb6rg@example.com", 15, 0));
    assert_false(maildrop_addr_ok("a\x7f", 2, 0));
    assert_false(maildrop_text_ok("", 0, 10));
    assert_false(maildrop_text_ok("12345678901", 11, 10));
    assert_true(maildrop_envid_ok("", 0));
    assert_false(maildrop_envid_ok("\x80", 1));
    assert_string_equal(maildrop_strerror(MAILDROP_ERR_CORRUPT), "corrupt");
    assert_string_equal(maildrop_strerror(42), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_bytes),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_copy_stream_to_file),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_hostile_lengths),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_end_record),
        cmocka_unit_test(test_ancillary),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_writer_refusals),
        cmocka_unit_test(test_writer_size_limit),
        cmocka_unit_test(test_writer_write_error),
        cmocka_unit_test(test_pipe_stream),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_envelope_read),
        cmocka_unit_test(test_field_checks),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
