/*
 * test_qfile - unit tests for lib/mail/qfile_* and mail_queue: the record
 * format (checked against a file built by hand from the documentation),
 * byte-exact content, hostile and truncated files, in-place status updates,
 * appended records, the commit sequence and its failure paths, hashed
 * queue directories, moves, scans and the incoming/ purge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mail/mail_queue.h"
#include "mail/qfile.h"
#include "mail/queue_id.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/vstr.h"

static char tdir[PATH_MAX]; /* the queue_directory of the current test */

static const char *const queues[] = {
    MAIL_QUEUE_MAILDROP, MAIL_QUEUE_INCOMING, MAIL_QUEUE_IMMEDIATE, MAIL_QUEUE_BULK,
    MAIL_QUEUE_DEFERRED, MAIL_QUEUE_HOLD,     MAIL_QUEUE_CORRUPT,   NULL,
};

/* ---- fixtures and helpers ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    char path[PATH_MAX + 32];

    (void)state;
    snprintf(tdir, sizeof(tdir), "/tmp/test_qfile.XXXXXX");
    if (mkdtemp(tdir) == NULL)
        return -1;
    for (int i = 0; queues[i]; i++) {
        snprintf(path, sizeof(path), "%s/%s", tdir, queues[i]);
        if (mkdir(path, 0700) < 0)
            return -1;
    }
    snprintf(path, sizeof(path), "%s/maillog", tdir);
    msg_open(NULL, NULL, path);
    return mail_queue_init(tdir, 0, "", NULL);
}

static int teardown(void **state)
{
    (void)state;
    msg_open(NULL, NULL, "/dev/stderr");
    return nftw(tdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* count - files in a queue */
static ssize_t count(const char *queue)
{
    ARGV *ids = argv_alloc(4);
    ssize_t n = mail_queue_scan(queue, 0, ids);

    argv_free(ids);
    return n;
}

/* total - files in all message queues */
static ssize_t total(void)
{
    ssize_t n = 0;

    for (int i = 0; queues[i]; i++)
        n += count(queues[i]);
    return n;
}

/* slurp - whole file into a new VSTR */
static VSTR *slurp(const char *path)
{
    size_t len;
    char *data = file_read_all(path, 64 << 20, &len);
    VSTR *vs = vstr_alloc(len + 1);

    assert_non_null(data);
    vstr_ncpy(vs, data, len);
    myfree(data);
    return vs;
}

/* spit - write a file */
static void spit(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write_full(fd, data, len), 0);
    close(fd);
}

/* qpath - a queue file's path (static buffer) */
static const char *qpath(const char *queue, const char *id)
{
    static VSTR *buf;

    if (buf == NULL)
        buf = vstr_alloc(256);
    return mail_queue_path(buf, queue, id);
}

/* probe - write bytes to a scratch file and open it by path */
static int probe(const void *data, size_t len, int flags, QFILE **qp)
{
    char path[PATH_MAX + 16];
    VSTR *why = vstr_alloc(64);
    int err;

    snprintf(path, sizeof(path), "%s/probe", tdir);
    spit(path, data, len);
    err = qfile_open_path(path, NULL, flags, qp, why);
    if (err == 0)
        assert_non_null(*qp);
    else
        assert_true(vstr_len(why) > 0); /* every failure says why */
    vstr_free(why);
    return err;
}

/* probe_close - probe and close; the result code */
static int probe_close(const void *data, size_t len, int flags)
{
    QFILE *q = NULL;
    int err = probe(data, len, flags, &q);

    qfile_close(q);
    return err;
}

/* content_of - the content as written by qfile_content_to_fd */
static VSTR *content_of(QFILE *q, int flags)
{
    char path[PATH_MAX + 16];
    int fd;
    VSTR *out;

    snprintf(path, sizeof(path), "%s/content.out", tdir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(qfile_content_to_fd(q, fd, flags), 0);
    close(fd);
    out = slurp(path);
    unlink(path);
    return out;
}

/* simple_message - commit a small message; its id into id */
static void simple_message(int msg_class, const char *content, char *id)
{
    QFILE_WRITER *w = qfile_writer_create(NULL);

    assert_non_null(w);
    assert_int_equal(qfile_writer_set_class(w, msg_class, 0), 0);
    assert_int_equal(qfile_writer_sender(w, "sender@example.org"), 0);
    assert_int_equal(qfile_writer_rcpt(w, "a@example.com", NULL, NULL, 0), 0);
    assert_int_equal(qfile_writer_rcpt(w, "b@example.com", NULL, NULL, 0), 0);
    assert_int_equal(qfile_writer_rcpt(w, "c@example.com", NULL, NULL, 0), 0);
    assert_int_equal(qfile_writer_text(w, content, strlen(content)), 0);
    assert_int_equal(qfile_writer_commit(w, id), 0);
    qfile_writer_free(w);
}

/* ---- a file built by hand, byte by byte, from the documented format ---- */

static void raw_bytes(VSTR *f, const void *p, size_t len)
{
    vstr_ncat(f, p, len);
}

static void raw_u16(VSTR *f, unsigned v)
{
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};

    raw_bytes(f, b, 2);
}

static void raw_u32(VSTR *f, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};

    raw_bytes(f, b, 4);
}

static void raw_u64(VSTR *f, uint64_t v)
{
    raw_u32(f, (uint32_t)(v >> 32));
    raw_u32(f, (uint32_t)v);
}

static void raw_rec(VSTR *f, int type, const void *p, size_t len)
{
    vstr_addch(f, type);
    raw_u32(f, (uint32_t)len);
    raw_bytes(f, p, len);
}

static void raw_rec_str(VSTR *f, int type, const char *s)
{
    raw_rec(f, type, s, strlen(s));
}

/* raw_rcpt - RCPT payload */
static void raw_rcpt(VSTR *f, int status, int notify, const char *addr, const char *orig,
                     const char *orcpt)
{
    VSTR *p = vstr_alloc(64);

    vstr_addch(p, status);
    vstr_addch(p, notify);
    raw_u16(p, (unsigned)strlen(addr));
    vstr_cat(p, addr);
    raw_u16(p, (unsigned)strlen(orig));
    vstr_cat(p, orig);
    vstr_cat(p, orcpt);
    raw_rec(f, 'R', vstr_str(p), vstr_len(p));
    vstr_free(p);
}

/* raw_attr - ATTR payload */
static void raw_attr(VSTR *f, const char *name, const char *value)
{
    VSTR *p = vstr_alloc(64);

    vstr_addch(p, (int)strlen(name));
    vstr_cat(p, name);
    vstr_cat(p, value);
    raw_rec(f, 'A', vstr_str(p), vstr_len(p));
    vstr_free(p);
}

/* Offsets inside the hand-made file, for the mutation tests. */
typedef struct RAWINFO {
    size_t sender;  /* SENDER record */
    size_t rcpt;    /* first RCPT record */
    size_t content; /* CONTENT record */
    size_t first_line;
    size_t end;    /* CONTENT_END record */
    size_t commit; /* COMMIT record */
    size_t size;   /* file size */
} RAWINFO;

#define RAW_CONTENT "Subject: hand made\n\nbody line\ntail"

/* raw_valid - the reference file: every record type of the envelope and content */
static VSTR *raw_valid(const char *id, RAWINFO *info)
{
    VSTR *f = vstr_alloc(512), *p = vstr_alloc(32);
    RAWINFO dummy;

    if (info == NULL)
        info = &dummy;
    raw_bytes(f, "\x89PQF\r\n\x1a\n", 8);
    raw_u16(f, 1);
    raw_u16(f, 0);
    raw_rec_str(f, 'I', id);
    raw_u64(p, 1700000000);
    raw_u32(p, 123456);
    raw_rec(f, 'T', vstr_str(p), vstr_len(p));
    raw_rec(f, 'C', "\x01\xfb", 2); /* bulk, priority -5 */
    info->sender = vstr_len(f);
    raw_rec_str(f, 'S', "sender@example.org");
    raw_rec(f, 'D',
            "\x02"
            "ENV123",
            7);
    info->rcpt = vstr_len(f);
    raw_rcpt(f, 'P', QFILE_NOTIFY_SUCCESS | QFILE_NOTIFY_FAILURE, "rcpt@example.com",
             "Rcpt@Example.COM", "rfc822;rcpt@example.com");
    raw_attr(f, "client_name", "mx.example.net");
    info->content = vstr_len(f);
    raw_rec(f, 'M', "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    info->first_line = vstr_len(f);
    raw_rec_str(f, 'L', "Subject: hand made");
    raw_rec_str(f, 'L', "");
    raw_rec_str(f, 'P', "body ");
    raw_rec_str(f, 'L', "line");
    raw_rec_str(f, 'P', "tail");
    info->end = vstr_len(f);
    raw_rec(f, 'E', "", 0);
    raw_rcpt(f, 'P', 0, "late@example.com", "", "");
    raw_attr(f, "x-late", "1");
    info->commit = vstr_len(f);
    raw_rec(f, 'Z', "\0\0\0\x02", 4);
    info->size = vstr_len(f);

    /* Patch CONTENT: size and the CONTENT_END offset. */
    vstr_reset(p);
    raw_u64(p, strlen(RAW_CONTENT));
    raw_u64(p, info->end);
    memcpy(vstr_str(f) + info->content + 5, vstr_str(p), 16);
    vstr_free(p);
    return f;
}

/* put32_at - overwrite a big-endian u32 in a file image */
static void put32_at(VSTR *f, size_t off, uint32_t v)
{
    unsigned char *p = (unsigned char *)vstr_str(f) + off;

    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put64_at(VSTR *f, size_t off, uint64_t v)
{
    put32_at(f, off, (uint32_t)(v >> 32));
    put32_at(f, off + 4, (uint32_t)v);
}

/* img_insert - a copy of f with bytes inserted at off */
static VSTR *img_insert(const VSTR *f, size_t off, const VSTR *ins)
{
    VSTR *out = vstr_alloc(vstr_len(f) + vstr_len(ins));

    vstr_ncat(out, vstr_str(f), off);
    vstr_ncat(out, vstr_str(ins), vstr_len(ins));
    vstr_ncat(out, vstr_str(f) + off, vstr_len(f) - off);
    return out;
}

/* ---- tests ---- */

static void test_hand_made_file_reads(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE];
    QFILE *q = NULL;

    queue_id_new(id, NULL);
    VSTR *f = raw_valid(id, NULL);

    spit(qpath(MAIL_QUEUE_BULK, id), vstr_str(f), vstr_len(f));
    for (int flags = 0; flags <= (QFILE_OPEN_VERIFY | QFILE_OPEN_UPDATE); flags++) {
        VSTR *why = vstr_alloc(16);

        assert_int_equal(qfile_open(MAIL_QUEUE_BULK, id, flags, &q, why), 0);
        assert_string_equal(q->id, id);
        assert_string_equal(q->queue, MAIL_QUEUE_BULK);
        assert_int_equal(q->arrival.tv_sec, 1700000000);
        assert_int_equal(q->arrival.tv_usec, 123456);
        assert_int_equal(q->msg_class, QFILE_CLASS_BULK);
        assert_int_equal(q->priority, -5);
        assert_string_equal(q->sender, "sender@example.org");
        assert_int_equal(q->dsn_ret, QFILE_RET_HDRS);
        assert_string_equal(q->dsn_envid, "ENV123");
        assert_int_equal(q->rcpt_count, 2);
        assert_string_equal(q->rcpt[0].address, "rcpt@example.com");
        assert_string_equal(q->rcpt[0].orig_rcpt, "Rcpt@Example.COM");
        assert_string_equal(q->rcpt[0].orcpt, "rfc822;rcpt@example.com");
        assert_int_equal(q->rcpt[0].notify, QFILE_NOTIFY_SUCCESS | QFILE_NOTIFY_FAILURE);
        assert_int_equal(q->rcpt[0].status, QFILE_RCPT_PENDING);
        assert_int_equal(q->rcpt[0].defer_count, 0);
        assert_null(q->rcpt[0].reason);
        assert_string_equal(q->rcpt[1].address, "late@example.com");
        assert_string_equal(q->rcpt[1].orig_rcpt, "");
        assert_int_equal(q->attr_count, 2);
        assert_string_equal(qfile_attr(q, "client_name"), "mx.example.net");
        assert_string_equal(qfile_attr(q, "x-late"), "1");
        assert_null(qfile_attr(q, "nope"));
        assert_int_equal(q->content_size, strlen(RAW_CONTENT));
        assert_int_equal(q->tail_damaged, 0);
        assert_int_equal(q->delay_warned, 0);
        assert_int_equal(qfile_pending(q), 2);
        assert_int_equal(qfile_next_attempt(q), 0);

        VSTR *c = content_of(q, 0);

        assert_int_equal(vstr_len(c), strlen(RAW_CONTENT));
        assert_memory_equal(vstr_str(c), RAW_CONTENT, vstr_len(c));
        vstr_free(c);
        qfile_close(q);
        vstr_free(why);
    }
    vstr_free(f);
}

static void test_writer_output_matches_format(void **state)
{
    (void)state;
    QFILE_WRITER *w = qfile_writer_create(NULL);
    struct timeval tv = {1700000000, 123456};
    char id[QUEUE_ID_SIZE];

    assert_non_null(w);
    assert_int_equal(qfile_writer_set_arrival(w, &tv), 0);
    assert_int_equal(qfile_writer_sender(w, "sender@example.org"), 0);
    assert_int_equal(qfile_writer_dsn(w, QFILE_RET_HDRS, "ENV123"), 0);
    assert_int_equal(qfile_writer_rcpt(w, "rcpt@example.com", "Rcpt@Example.COM",
                                       "rfc822;rcpt@example.com",
                                       QFILE_NOTIFY_SUCCESS | QFILE_NOTIFY_FAILURE),
                     0);
    assert_int_equal(qfile_writer_attr(w, "client_name", "mx.example.net"), 0);
    assert_int_equal(qfile_writer_line(w, "Subject: hand made", 18, 1), 0);
    assert_int_equal(qfile_writer_line(w, "", 0, 1), 0);
    assert_int_equal(qfile_writer_line(w, "body ", 5, 0), 0);
    assert_int_equal(qfile_writer_line(w, "line", 4, 1), 0);
    assert_int_equal(qfile_writer_line(w, "tail", 4, 0), 0);
    assert_int_equal(qfile_writer_line(w, "", 0, 0), 0); /* nothing at all */
    assert_int_equal(qfile_writer_rcpt(w, "late@example.com", NULL, NULL, 0), 0);
    assert_int_equal(qfile_writer_attr(w, "x-late", "1"), 0);
    /* The class can still change after the content. */
    assert_int_equal(qfile_writer_set_class(w, QFILE_CLASS_BULK, -5), 0);
    assert_int_equal(qfile_writer_size(w), strlen(RAW_CONTENT));
    assert_int_equal(qfile_writer_commit(w, id), 0);
    assert_string_equal(id, qfile_writer_id(w));
    qfile_writer_free(w);

    VSTR *want = raw_valid(id, NULL);
    VSTR *got = slurp(qpath(MAIL_QUEUE_BULK, id));

    assert_int_equal(vstr_len(got), vstr_len(want));
    assert_memory_equal(vstr_str(got), vstr_str(want), vstr_len(want));
    vstr_free(want);
    vstr_free(got);
    assert_int_equal(count(MAIL_QUEUE_INCOMING), 0);
}

static void test_commit_by_class(void **state)
{
    (void)state;
    char id1[QUEUE_ID_SIZE], id2[QUEUE_ID_SIZE];
    struct stat st;

    simple_message(QFILE_CLASS_IMMEDIATE, "hello\n", id1);
    simple_message(QFILE_CLASS_BULK, "hello\n", id2);
    assert_true(strcmp(id1, id2) < 0);
    assert_int_equal(count(MAIL_QUEUE_INCOMING), 0);
    assert_int_equal(count(MAIL_QUEUE_IMMEDIATE), 1);
    assert_int_equal(count(MAIL_QUEUE_BULK), 1);
    assert_int_equal(mail_queue_exists(MAIL_QUEUE_IMMEDIATE, id1), 1);
    assert_int_equal(mail_queue_exists(MAIL_QUEUE_BULK, id2), 1);
    assert_int_equal(stat(qpath(MAIL_QUEUE_IMMEDIATE, id1), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600); /* no group or other access */

    /* The null sender, and a message without any content. */
    QFILE_WRITER *w = qfile_writer_create(NULL);
    QFILE *q;

    assert_int_equal(qfile_writer_sender(w, ""), 0);
    assert_int_equal(qfile_writer_rcpt(w, "postmaster@example.com", NULL, NULL, QFILE_NOTIFY_NEVER),
                     0);
    assert_int_equal(qfile_writer_commit(w, id1), 0);
    qfile_writer_free(w);
    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id1, QFILE_OPEN_VERIFY, &q, NULL), 0);
    assert_string_equal(q->sender, "");
    assert_string_equal(q->dsn_envid, "");
    assert_int_equal(q->dsn_ret, QFILE_RET_NONE);
    assert_int_equal(q->rcpt[0].notify, QFILE_NOTIFY_NEVER);
    assert_int_equal(q->content_size, 0);
    VSTR *c = content_of(q, 0);

    assert_int_equal(vstr_len(c), 0);
    vstr_free(c);
    qfile_close(q);
}

/* The content test message: the corner cases of line handling. */
static VSTR *tricky_content(void)
{
    VSTR *c = vstr_alloc(40000);

    vstr_cat(c, "From: a@example.org\nSubject: test\n\n");
    vstr_cat(c, ".leading dot\n..two dots\n.\n\n\n");
    vstr_cat(c, "8-bit: \x80\xff\xfe\xc3\xa9\n");
    vstr_cat(c, "cr in \r the middle\n");
    vstr_cat(c, "crlf kept as data\r\n");
    vstr_cat(c, "\r\n");
    vstr_ncat(c, "nul \0 byte\n", 11);
    for (int i = 0; i < 10000; i++)
        vstr_addch(c, 'x');
    vstr_addch(c, '\n');
    for (int i = 0; i < QFILE_CHUNK_MAX; i++)
        vstr_addch(c, 'y');
    vstr_addch(c, '\n');
    for (int i = 0; i < QFILE_CHUNK_MAX + 1; i++)
        vstr_addch(c, '.');
    vstr_addch(c, '\n');
    for (int i = 0; i < 2 * QFILE_CHUNK_MAX; i++)
        vstr_addch(c, 'z');
    vstr_cat(c, "\n.\n");
    vstr_cat(c, "last line without newline");
    return c;
}

/* write_in_pieces - content through qfile_writer_text in odd-sized pieces */
static void write_in_pieces(QFILE_WRITER *w, const VSTR *c, int seed)
{
    static const size_t sizes[] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 4096, 4097, 7};
    size_t off = 0;

    for (int i = seed; off < vstr_len(c); i++) {
        size_t n = sizes[i % (int)(sizeof(sizes) / sizeof(sizes[0]))];

        if (n > vstr_len(c) - off)
            n = vstr_len(c) - off;
        assert_int_equal(qfile_writer_text(w, vstr_str(c) + off, n), 0);
        off += n;
    }
}

/* expected_smtp - LF to CRLF and dot-stuffing, done independently */
static VSTR *expected_smtp(const VSTR *c)
{
    VSTR *out = vstr_alloc(vstr_len(c) + 1000);
    int bol = 1;

    for (size_t i = 0; i < vstr_len(c); i++) {
        char ch = vstr_str(c)[i];

        if (bol && ch == '.')
            vstr_addch(out, '.');
        if (ch == '\n')
            vstr_cat(out, "\r\n");
        else
            vstr_addch(out, ch);
        bol = ch == '\n';
    }
    return out;
}

static void test_content_byte_exact(void **state)
{
    (void)state;
    VSTR *c = tricky_content();

    for (int seed = 0; seed < 6; seed++) {
        QFILE_WRITER *w = qfile_writer_create(NULL);
        char id[QUEUE_ID_SIZE];
        QFILE *q;

        assert_non_null(w);
        assert_int_equal(qfile_writer_sender(w, "s@example.org"), 0);
        assert_int_equal(qfile_writer_rcpt(w, "r@example.org", NULL, NULL, 0), 0);
        write_in_pieces(w, c, seed);
        assert_int_equal(qfile_writer_size(w), vstr_len(c));
        assert_int_equal(qfile_writer_commit(w, id), 0);
        qfile_writer_free(w);

        assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, QFILE_OPEN_VERIFY, &q, NULL), 0);
        assert_int_equal(q->content_size, vstr_len(c));
        VSTR *got = content_of(q, 0);

        assert_int_equal(vstr_len(got), vstr_len(c));
        assert_memory_equal(vstr_str(got), vstr_str(c), vstr_len(c));
        vstr_free(got);

        VSTR *smtp = content_of(q, QFILE_OUT_CRLF | QFILE_OUT_DOTSTUFF);
        VSTR *want = expected_smtp(c);

        assert_int_equal(vstr_len(smtp), vstr_len(want));
        assert_memory_equal(vstr_str(smtp), vstr_str(want), vstr_len(want));
        vstr_free(smtp);
        vstr_free(want);
        qfile_close(q);
        assert_int_equal(mail_queue_remove(MAIL_QUEUE_IMMEDIATE, id), 0);
    }
    vstr_free(c);
}

typedef struct CHUNKS {
    VSTR *log; /* "flags:len;" per call */
    int stop_after;
    int calls;
} CHUNKS;

static int chunk_log(void *ctx, const char *data, size_t len, int flags)
{
    CHUNKS *ch = ctx;

    (void)data;
    vstr_sprintf_append(ch->log, "%s%s%zu;", (flags & QFILE_BOL) ? "B" : "",
                        (flags & QFILE_EOL) ? "E" : "", len);
    if (++ch->calls == ch->stop_after)
        return 42;
    return 0;
}

static void test_content_walk_flags(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE];
    QFILE *q;
    CHUNKS ch = {vstr_alloc(64), 0, 0};
    VSTR *c = vstr_alloc(6000);

    vstr_cat(c, "a\n\nbc");
    vstr_addch(c, '\n');
    for (int i = 0; i < 5000; i++)
        vstr_addch(c, 'q');
    vstr_cat(c, "\nend");

    QFILE_WRITER *w = qfile_writer_create(NULL);

    assert_int_equal(qfile_writer_sender(w, "s@example.org"), 0);
    assert_int_equal(qfile_writer_rcpt(w, "r@example.org", NULL, NULL, 0), 0);
    assert_int_equal(qfile_writer_text(w, vstr_str(c), vstr_len(c)), 0);
    assert_int_equal(qfile_writer_commit(w, id), 0);
    qfile_writer_free(w);

    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, 0, &q, NULL), 0);
    assert_int_equal(qfile_content_walk(q, chunk_log, &ch), 0);
    assert_string_equal(vstr_str(ch.log), "BE1;BE0;BE2;B4096;E904;B3;");
    /* A positive callback value stops the walk and comes back. */
    vstr_reset(ch.log);
    ch.calls = 0;
    ch.stop_after = 2;
    assert_int_equal(qfile_content_walk(q, chunk_log, &ch), 42);
    assert_string_equal(vstr_str(ch.log), "BE1;BE0;");
    /* Walks can be repeated. */
    VSTR *got = content_of(q, 0);

    assert_memory_equal(vstr_str(got), vstr_str(c), vstr_len(c));
    vstr_free(got);
    qfile_close(q);
    vstr_free(ch.log);
    vstr_free(c);
}

/* build_with_appends - a committed file with appended records; its id, the
   offset where COMMIT ends and the offsets after each appended record */
static void build_with_appends(char *id, off_t *commit_end, off_t *ends, int n_ends)
{
    QFILE *q;

    simple_message(QFILE_CLASS_IMMEDIATE, "Subject: x\n\n.dot\nbody\n", id);
    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, QFILE_OPEN_UPDATE, &q, NULL), 0);
    *commit_end = q->valid_end;
    for (int i = 0; i < n_ends; i++) {
        if (i % 3 == 2)
            assert_int_equal(qfile_set_delay_warned(q, 1700000000 + i, QFILE_NOSYNC), 0);
        else
            assert_int_equal(qfile_rcpt_defer(q, (size_t)i % 2, 1700000000 + i, 1700000600 + i,
                                              "4.4.1", "connection refused", QFILE_NOSYNC),
                             0);
        ends[i] = q->valid_end;
    }
    assert_int_equal(qfile_sync(q), 0);
    qfile_close(q);
}

static void test_truncated_at_every_offset(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE];
    off_t commit_end, ends[4];

    build_with_appends(id, &commit_end, ends, 4);
    VSTR *f = slurp(qpath(MAIL_QUEUE_IMMEDIATE, id));

    assert_int_equal((off_t)vstr_len(f), ends[3]);
    for (size_t len = 0; len < vstr_len(f); len++) {
        for (int flags = 0; flags <= QFILE_OPEN_VERIFY; flags += QFILE_OPEN_VERIFY) {
            QFILE *q = NULL;
            int err = probe(vstr_str(f), len, flags, &q);

            if ((off_t)len < commit_end) {
                assert_int_equal(err, QFILE_ERR_INCOMPLETE);
                assert_null(q);
                continue;
            }
            /* Inside the appended records: the damaged tail is ignored. */
            int boundary = (off_t)len == commit_end;

            for (int i = 0; i < 4; i++)
                boundary |= (off_t)len == ends[i];
            assert_int_equal(err, 0);
            assert_int_equal(q->tail_damaged, !boundary);
            assert_int_equal(q->rcpt_count, 3);
            qfile_close(q);
        }
    }
    /* The whole file, for contrast. */
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), QFILE_OPEN_VERIFY), 0);
    vstr_free(f);

    /* The same for the hand-made file, which has post-content records. */
    RAWINFO info;

    f = raw_valid(id, &info);
    for (size_t len = 0; len < vstr_len(f); len++)
        assert_int_equal(probe_close(vstr_str(f), len, 0), QFILE_ERR_INCOMPLETE);
    vstr_free(f);
}

static void test_uncommitted_file_is_incomplete(void **state)
{
    (void)state;
    QFILE_WRITER *w = qfile_writer_create(NULL);
    VSTR *c = tricky_content();
    char id[QUEUE_ID_SIZE];
    QFILE *q = NULL;

    assert_non_null(w);
    memcpy(id, qfile_writer_id(w), sizeof(id));
    assert_true(queue_id_valid(id));
    assert_int_equal(qfile_writer_sender(w, "s@example.org"), 0);
    assert_int_equal(qfile_writer_rcpt(w, "r@example.org", NULL, NULL, 0), 0);
    /* More than one buffer of content, so that some reached the file. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(qfile_writer_text(w, vstr_str(c), vstr_len(c)), 0);
    assert_int_equal(count(MAIL_QUEUE_INCOMING), 1);
    assert_int_equal(qfile_open(MAIL_QUEUE_INCOMING, id, 0, &q, NULL), QFILE_ERR_INCOMPLETE);
    assert_int_equal(qfile_open(MAIL_QUEUE_INCOMING, id, QFILE_OPEN_VERIFY, &q, NULL),
                     QFILE_ERR_INCOMPLETE);
    assert_null(q);
    qfile_writer_free(w); /* abort */
    assert_int_equal(total(), 0);
    vstr_free(c);
}

static void test_bad_magic_and_version(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE];
    VSTR *f;

    queue_id_new(id, NULL);
    f = raw_valid(id, NULL);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), 0);

    /* Every single-byte change of the magic. */
    for (int i = 0; i < QFILE_MAGIC_LEN; i++) {
        char saved = vstr_str(f)[i];

        vstr_str(f)[i] ^= 0x20;
        assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_FORMAT);
        /* A short file with a wrong prefix is not a queue file either. */
        assert_int_equal(probe_close(vstr_str(f), (size_t)i + 1, 0), QFILE_ERR_FORMAT);
        vstr_str(f)[i] = saved;
    }
    /* Version 2, version 0, header flags. */
    put32_at(f, 8, 0x00020000);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_FORMAT);
    put32_at(f, 8, 0x00000000);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_FORMAT);
    put32_at(f, 8, 0x00010001);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_FORMAT);
    put32_at(f, 8, 0x00010000);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), 0);

    /* Text that looks like a Postfix or Exim spool file. */
    const char *text = "Return-Path: <x@example.org>\nReceived: from x\n";

    assert_int_equal(probe_close(text, strlen(text), 0), QFILE_ERR_FORMAT);
    assert_int_equal(probe_close("", 0, 0), QFILE_ERR_INCOMPLETE);
    assert_int_equal(probe_close("\x89PQ", 3, 0), QFILE_ERR_INCOMPLETE);
    /* LF to CRLF mangling changes the magic. */
    assert_int_equal(probe_close("\x89PQF\r\r\n\x1a\r\n\0\1\0\0", 14, 0), QFILE_ERR_FORMAT);
    vstr_free(f);
}

static void test_forged_lengths(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE];
    RAWINFO info;
    VSTR *f;
    static const uint32_t huge[] = {
        0xFFFFFFFFu, 0x7FFFFFFFu, 0x80000000u, QFILE_REC_MAX + 1, QFILE_ADDR_MAX + 1,
    };

    queue_id_new(id, NULL);
    f = raw_valid(id, &info);

    /* Huge lengths on the sender record: refused before any allocation. */
    for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
        put32_at(f, info.sender + 1, huge[i]);
        assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_CORRUPT);
    }
    /* A length within limits but past the end of the file: cut short. */
    put32_at(f, info.sender + 1, QFILE_ADDR_MAX);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_INCOMPLETE);
    /* A length that swallows the next records makes a bad sender. */
    put32_at(f, info.sender + 1, 40);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_CORRUPT);
    vstr_free(f);

    /* Huge lengths on content records, with and without VERIFY. */
    f = raw_valid(id, &info);
    put32_at(f, info.first_line + 1, 0xFFFFFFF0u);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), 0); /* jumped over */
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), QFILE_OPEN_VERIFY), QFILE_ERR_CORRUPT);
    QFILE *q;

    assert_int_equal(probe(vstr_str(f), vstr_len(f), 0, &q), 0);
    assert_int_equal(qfile_content_walk(q, NULL, NULL), QFILE_ERR_CORRUPT);
    qfile_close(q);
    put32_at(f, info.first_line + 1, QFILE_CHUNK_MAX + 1);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), QFILE_OPEN_VERIFY), QFILE_ERR_CORRUPT);
    vstr_free(f);

    /* Inner lengths of RCPT: address length past the record, zero, huge. */
    static const unsigned inner[] = {0, 0xFFFF, 200, QFILE_ADDR_MAX + 1};

    for (size_t i = 0; i < sizeof(inner) / sizeof(inner[0]); i++) {
        f = raw_valid(id, &info);
        vstr_str(f)[info.rcpt + 7] = (char)(inner[i] >> 8);
        vstr_str(f)[info.rcpt + 8] = (char)inner[i];
        assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_CORRUPT);
        vstr_free(f);
    }

    /* CONTENT offsets: zero is uncommitted; inside the content, past the end,
       before the content, or a size that does not add up. */
    f = raw_valid(id, &info);
    put64_at(f, info.content + 5 + 8, 0);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_INCOMPLETE);
    put64_at(f, info.content + 5 + 8, info.first_line);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_CORRUPT);
    put64_at(f, info.content + 5 + 8, info.size + 100);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_INCOMPLETE);
    put64_at(f, info.content + 5 + 8, 3);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_CORRUPT);
    put64_at(f, info.content + 5 + 8, UINT64_MAX);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_CORRUPT);
    put64_at(f, info.content + 5 + 8, info.end);
    put64_at(f, info.content + 5, strlen(RAW_CONTENT) + 1);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), 0);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), QFILE_OPEN_VERIFY), QFILE_ERR_CORRUPT);
    vstr_free(f);

    /* COMMIT with the wrong recipient count. */
    f = raw_valid(id, &info);
    put32_at(f, info.commit + 5, 3);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_CORRUPT);
    put32_at(f, info.commit + 5, 1);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_CORRUPT);
    vstr_free(f);
}

/* with_record - the reference file with one record inserted at off */
static VSTR *with_record(const char *id, size_t off, int type, const void *p, size_t len)
{
    VSTR *f = raw_valid(id, NULL), *ins = vstr_alloc(len + 5), *out;

    raw_rec(ins, type, p, len);
    out = img_insert(f, off, ins);
    vstr_free(f);
    vstr_free(ins);
    return out;
}

/* fix_offsets - after inserting delta bytes at offset at (at or before the
   content end), move the CONTENT end offset along; CONTENT itself moved too
   if the insert came before it */
static void fix_offsets(VSTR *f, const RAWINFO *info, size_t at, size_t delta)
{
    size_t content = info->content + (at <= info->content ? delta : 0);

    put64_at(f, content + 5 + 8, info->end + delta);
}

static void test_unknown_record_types(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE];
    RAWINFO info;
    VSTR *f;

    queue_id_new(id, NULL);
    vstr_free(raw_valid(id, &info));

    /* Ancillary records anywhere are skipped, content unchanged. */
    size_t places[] = {info.sender, info.content, info.first_line,
                       info.end,    info.commit,  info.size};

    for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
        for (int type = 0x80; type <= 0xFE; type += 0x3F) {
            QFILE *q;

            f = with_record(id, places[i], type, "future data", 11);
            if (places[i] <= info.end)
                fix_offsets(f, &info, places[i], 16);
            assert_int_equal(probe(vstr_str(f), vstr_len(f), QFILE_OPEN_VERIFY, &q), 0);
            assert_int_equal(q->rcpt_count, 2);
            assert_int_equal(q->tail_damaged, 0);
            VSTR *c = content_of(q, 0);

            assert_int_equal(vstr_len(c), strlen(RAW_CONTENT));
            assert_memory_equal(vstr_str(c), RAW_CONTENT, vstr_len(c));
            vstr_free(c);
            qfile_close(q);
            vstr_free(f);
        }
    }
    /* Ancillary records may be empty, and must still respect the general limit. */
    f = with_record(id, info.sender, 0x80, "", 0);
    fix_offsets(f, &info, info.sender, 5);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), QFILE_OPEN_VERIFY), 0);
    put32_at(f, info.sender + 1, QFILE_REC_MAX + 1);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_CORRUPT);
    vstr_free(f);

    /* Unknown critical types, 0x00 and 0xFF: corrupt in every section before
       COMMIT; after COMMIT only a zero type passes as a damaged tail. */
    static const int bad[] = {0x00, 0x01, 'a', 'X', 0x7F, 0xFF};

    for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
        for (size_t t = 0; t < sizeof(bad) / sizeof(bad[0]); t++) {
            QFILE *q = NULL;
            int flags = QFILE_OPEN_VERIFY;

            f = with_record(id, places[i], bad[t], "junk", 4);
            if (places[i] <= info.end)
                fix_offsets(f, &info, places[i], 9);
            int err = probe(vstr_str(f), vstr_len(f), flags, &q);

            if (places[i] == info.size && bad[t] == 0) {
                assert_int_equal(err, 0);
                assert_int_equal(q->tail_damaged, 1);
            } else {
                assert_int_equal(err, QFILE_ERR_CORRUPT);
            }
            qfile_close(q);
            vstr_free(f);
        }
    }

    /* Known types in the wrong section. */
    struct {
        size_t off;
        int type;
        const char *payload;
        size_t len;
    } misplaced[] = {
        {info.sender, 'I', id, QUEUE_ID_LEN},        /* a second queue id */
        {info.sender, 'S', "x@example.org", 13},     /* a second sender */
        {info.sender, 'C', "\0\0", 2},               /* a second class */
        {info.sender, 'D', "\0", 1},                 /* a second DSN */
        {info.sender, 'L', "line", 4},               /* content in the envelope */
        {info.sender, 'E', "", 0},                   /* content end in the envelope */
        {info.sender, 'Z', "\0\0\0\1", 4},           /* commit in the envelope */
        {info.sender, 'W', "", 0},                   /* appended in the envelope */
        {info.first_line, 'S', "x@example.org", 13}, /* envelope in the content */
        {info.first_line, 'M', "", 0},               /* a second CONTENT */
        {info.commit, 'S', "x@example.org", 13},     /* post-content sender */
        {info.commit, 'L', "x", 1},                  /* post-content content */
        {info.commit, 'Y', "\0\0\0\0\0\0\0\1", 8},   /* appended before commit */
        {info.size, 'R', "P\0\0\1x\0\0", 7},         /* recipient after commit */
        {info.size, 'A', "\1xy", 3},                 /* attribute after commit */
        {info.size, 'Z', "\0\0\0\2", 4},             /* a second commit */
    };

    for (size_t i = 0; i < sizeof(misplaced) / sizeof(misplaced[0]); i++) {
        f = with_record(id, misplaced[i].off, misplaced[i].type, misplaced[i].payload,
                        misplaced[i].len);
        if (misplaced[i].off <= info.end)
            fix_offsets(f, &info, misplaced[i].off, 5 + misplaced[i].len);
        assert_int_equal(probe_close(vstr_str(f), vstr_len(f), QFILE_OPEN_VERIFY),
                         QFILE_ERR_CORRUPT);
        vstr_free(f);
    }

    /* The first record must be the right queue id. */
    f = raw_valid(id, &info);
    vstr_str(f)[12] = 'S';
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_CORRUPT);
    vstr_str(f)[12] = 'I';
    vstr_str(f)[17] = 'i'; /* not an id character */
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_CORRUPT);
    vstr_free(f);
}

static void test_bad_field_values(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE];
    RAWINFO info;
    VSTR *f;

    queue_id_new(id, NULL);
    vstr_free(raw_valid(id, &info));
    /* Offsets of single bytes in the reference file and bad values for them. */
    size_t tpos = 12 + 5 + QUEUE_ID_LEN; /* ARRIVAL record */
    size_t cpos = tpos + 5 + 12;         /* CLASS record */
    size_t dpos = info.sender + 5 + 18;  /* DSN record */
    struct {
        size_t off;
        unsigned char value;
    } bad[] = {
        {tpos + 5 + 8, 0xFF},                    /* microseconds >= 10^6 */
        {tpos + 5, 0x80},                        /* seconds past INT64_MAX */
        {cpos + 5, 2},                           /* class */
        {cpos + 6, 10},                          /* priority 10 */
        {cpos + 6, (unsigned char)-10},          /* priority -10 */
        {dpos + 5, 3},                           /* RET */
        {dpos + 6, '\n'},                        /* control character in ENVID */
        {info.sender + 5, 0},                    /* NUL in the sender */
        {info.sender + 6, '\r'},                 /* CR in the sender */
        {info.sender + 7, 0x7F},                 /* DEL in the sender */
        {info.rcpt + 5, 'X'},                    /* recipient status */
        {info.rcpt + 5, 0},                      /* recipient status */
        {info.rcpt + 6, 0x10},                   /* NOTIFY bit */
        {info.rcpt + 6, QFILE_NOTIFY_NEVER | 1}, /* NEVER with SUCCESS */
        {info.rcpt + 9, '\n'},                   /* LF in the address */
        {info.commit - 1, '\r'},                 /* CR in an attribute value */
        {info.commit - 8, 0},                    /* attribute name length 0 */
        {info.commit - 7, '='},                  /* bad attribute name */
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f = raw_valid(id, NULL);
        vstr_str(f)[bad[i].off] = (char)bad[i].value;
        assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_CORRUPT);
        vstr_free(f);
    }
    /* An empty PART record would hide a line start. */
    f = with_record(id, info.first_line, 'P', "", 0);
    fix_offsets(f, &info, info.first_line, 5);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), 0);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), QFILE_OPEN_VERIFY), QFILE_ERR_CORRUPT);
    vstr_free(f);
    /* A file without any recipients. */
    f = vstr_alloc(256);
    raw_bytes(f, "\x89PQF\r\n\x1a\n\0\1\0\0", 12);
    raw_rec_str(f, 'I', id);
    raw_rec(f, 'T', "\0\0\0\0\0\0\0\1\0\0\0\0", 12);
    raw_rec(f, 'C', "\0\0", 2);
    raw_rec_str(f, 'S', "");
    size_t m = vstr_len(f);

    raw_rec(f, 'M', "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    put64_at(f, m + 5 + 8, vstr_len(f));
    raw_rec(f, 'E', "", 0);
    raw_rec(f, 'Z', "\0\0\0\0", 4);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), QFILE_OPEN_VERIFY), QFILE_ERR_CORRUPT);
    vstr_free(f);
    /* The same without SENDER: the envelope is incomplete. */
    f = vstr_alloc(256);
    raw_bytes(f, "\x89PQF\r\n\x1a\n\0\1\0\0", 12);
    raw_rec_str(f, 'I', id);
    raw_rec(f, 'T', "\0\0\0\0\0\0\0\1\0\0\0\0", 12);
    raw_rec(f, 'C', "\0\0", 2);
    raw_rec(f, 'M', "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16);
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_CORRUPT);
    vstr_free(f);
}

static void test_status_in_place(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE];
    QFILE *q;
    struct stat before, after;

    simple_message(QFILE_CLASS_IMMEDIATE, "x\n", id);
    assert_int_equal(stat(qpath(MAIL_QUEUE_IMMEDIATE, id), &before), 0);

    /* Read-only handles cannot change anything. */
    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, 0, &q, NULL), 0);
    assert_int_equal(qfile_rcpt_mark(q, 0, QFILE_RCPT_DONE, 0), QFILE_ERR_INVAL);
    assert_int_equal(qfile_rcpt_defer(q, 0, 1, 2, NULL, NULL, 0), QFILE_ERR_INVAL);
    assert_int_equal(qfile_set_delay_warned(q, 1, 0), QFILE_ERR_INVAL);
    qfile_close(q);

    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, QFILE_OPEN_UPDATE, &q, NULL), 0);
    assert_int_equal(qfile_rcpt_mark(q, 0, QFILE_RCPT_DONE, 0), 0);
    assert_int_equal(qfile_rcpt_mark(q, 1, QFILE_RCPT_BOUNCED, QFILE_NOSYNC), 0);
    assert_int_equal(qfile_sync(q), 0);
    assert_int_equal(qfile_rcpt_mark(q, 0, QFILE_RCPT_DONE, 0), 0); /* no change */
    /* Final states stay final; bad statuses and indexes are refused. */
    assert_int_equal(qfile_rcpt_mark(q, 0, QFILE_RCPT_PENDING, 0), QFILE_ERR_INVAL);
    assert_int_equal(qfile_rcpt_mark(q, 1, QFILE_RCPT_DONE, 0), QFILE_ERR_INVAL);
    assert_int_equal(qfile_rcpt_mark(q, 2, 'X', 0), QFILE_ERR_INVAL);
    assert_int_equal(qfile_rcpt_mark(q, 3, QFILE_RCPT_DONE, 0), QFILE_ERR_INVAL);
    assert_true(strlen(qfile_why(q)) > 0);
    assert_int_equal(qfile_pending(q), 1);
    off_t status_at = q->rcpt[1].status_offset;

    qfile_close(q);

    /* The file did not grow, and the byte on disk is the new status. */
    assert_int_equal(stat(qpath(MAIL_QUEUE_IMMEDIATE, id), &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    VSTR *f = slurp(qpath(MAIL_QUEUE_IMMEDIATE, id));

    assert_int_equal(vstr_str(f)[status_at], 'B');
    vstr_free(f);

    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, QFILE_OPEN_VERIFY, &q, NULL), 0);
    assert_int_equal(q->rcpt[0].status, QFILE_RCPT_DONE);
    assert_int_equal(q->rcpt[1].status, QFILE_RCPT_BOUNCED);
    assert_int_equal(q->rcpt[2].status, QFILE_RCPT_PENDING);
    qfile_close(q);
}

static void test_defer_latest_wins(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE];
    QFILE *q;
    char *long_reason = mymalloc(QFILE_REASON_MAX + 100);

    memset(long_reason, 'r', QFILE_REASON_MAX + 99);
    long_reason[QFILE_REASON_MAX + 99] = 0;

    simple_message(QFILE_CLASS_IMMEDIATE, "x\n", id);
    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, QFILE_OPEN_UPDATE, &q, NULL), 0);
    assert_int_equal(qfile_rcpt_defer(q, 0, 1000, 2000, "4.4.1", "first reason", 0), 0);
    assert_int_equal(qfile_rcpt_defer(q, 1, 1100, 1500, "4.7.0", "greylisted\r\nretry", 0), 0);
    assert_int_equal(qfile_rcpt_defer(q, 0, 3000, 9000, "4.2.2", "mailbox full", 0), 0);
    assert_int_equal(qfile_rcpt_defer(q, 2, 3100, 9100, NULL, long_reason, 0), 0);
    assert_int_equal(qfile_set_delay_warned(q, 5000, 0), 0);
    assert_int_equal(qfile_set_delay_warned(q, 6000, 0), 0);
    /* Bad input to the appenders. */
    assert_int_equal(qfile_rcpt_defer(q, 9, 1, 2, NULL, NULL, 0), QFILE_ERR_INVAL);
    assert_int_equal(qfile_rcpt_defer(q, 0, 1, 2, "4.4.1\n", NULL, 0), QFILE_ERR_INVAL);
    assert_int_equal(qfile_rcpt_defer(q, 0, -1, 2, NULL, NULL, 0), QFILE_ERR_INVAL);
    assert_int_equal(qfile_set_delay_warned(q, -1, 0), QFILE_ERR_INVAL);
    qfile_close(q);

    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, QFILE_OPEN_UPDATE, &q, NULL), 0);
    assert_int_equal(q->rcpt[0].status, QFILE_RCPT_DEFERRED);
    assert_int_equal(q->rcpt[0].defer_count, 2);
    assert_int_equal(q->rcpt[0].defer_time, 3000);
    assert_int_equal(q->rcpt[0].next_attempt, 9000);
    assert_string_equal(q->rcpt[0].dsn_status, "4.2.2");
    assert_string_equal(q->rcpt[0].reason, "mailbox full");
    assert_string_equal(q->rcpt[1].reason, "greylisted  retry"); /* one line */
    assert_string_equal(q->rcpt[2].dsn_status, "");
    assert_int_equal(strlen(q->rcpt[2].reason), QFILE_REASON_MAX);
    assert_int_equal(q->delay_warned, 1);
    assert_int_equal(q->delay_warned_time, 6000);
    assert_int_equal(q->tail_damaged, 0);
    assert_int_equal(qfile_next_attempt(q), 1500);

    /* Delivered after a deferral: no longer counts for the retry time. */
    assert_int_equal(qfile_rcpt_mark(q, 1, QFILE_RCPT_DONE, 0), 0);
    assert_int_equal(qfile_next_attempt(q), 9000);
    assert_int_equal(qfile_rcpt_defer(q, 1, 1, 2, NULL, NULL, 0), QFILE_ERR_INVAL);
    assert_int_equal(qfile_rcpt_mark(q, 0, QFILE_RCPT_DONE, 0), 0);
    assert_int_equal(qfile_rcpt_mark(q, 2, QFILE_RCPT_BOUNCED, 0), 0);
    assert_int_equal(qfile_pending(q), 0);
    assert_int_equal(qfile_next_attempt(q), 0);
    qfile_close(q);

    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, QFILE_OPEN_VERIFY, &q, NULL), 0);
    assert_int_equal(qfile_pending(q), 0);
    assert_string_equal(q->rcpt[0].reason, "mailbox full"); /* history stays */
    qfile_close(q);
    myfree(long_reason);
}

static void test_damaged_tail_repaired(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE];
    off_t commit_end, ends[3];
    QFILE *q;
    const char *path;

    build_with_appends(id, &commit_end, ends, 3);
    path = qpath(MAIL_QUEUE_IMMEDIATE, id);

    /* Cut the last record (a WARNED) in half: the earlier ones still count. */
    assert_int_equal(truncate(path, ends[2] - 4), 0);
    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, QFILE_OPEN_UPDATE, &q, NULL), 0);
    assert_int_equal(q->tail_damaged, 1);
    assert_int_equal(q->delay_warned, 0);
    assert_int_equal(q->rcpt[1].defer_count, 1);
    assert_int_equal(q->valid_end, ends[1]);
    /* The next append cuts the damage off first. */
    assert_int_equal(qfile_rcpt_defer(q, 2, 7000, 8000, "4.0.0", "later", 0), 0);
    qfile_close(q);
    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, 0, &q, NULL), 0);
    assert_int_equal(q->tail_damaged, 0);
    assert_string_equal(q->rcpt[2].reason, "later");
    off_t end = q->valid_end;

    qfile_close(q);

    /* A zero-filled tail, as some file systems leave after a crash. */
    int fd = open(path, O_WRONLY | O_APPEND);
    char zeros[700] = {0};

    assert_true(fd >= 0);
    assert_int_equal(write_full(fd, zeros, sizeof(zeros)), 0);
    close(fd);
    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, QFILE_OPEN_UPDATE, &q, NULL), 0);
    assert_int_equal(q->tail_damaged, 1);
    assert_int_equal(qfile_set_delay_warned(q, 1234, 0), 0);
    qfile_close(q);
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, end + 5 + 8);
    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, 0, &q, NULL), 0);
    assert_int_equal(q->tail_damaged, 0);
    assert_int_equal(q->delay_warned_time, 1234);
    qfile_close(q);

    /* A complete but invalid appended record is corruption, not damage. */
    VSTR *f = slurp(path), *ins = vstr_alloc(32);

    raw_rec(ins, 'W',
            "\0\0\0\x09"
            "0123456789abcdef\0",
            21); /* recipient #9 */
    vstr_ncat(f, vstr_str(ins), vstr_len(ins));
    assert_int_equal(probe_close(vstr_str(f), vstr_len(f), 0), QFILE_ERR_CORRUPT);
    vstr_free(f);
    vstr_free(ins);
}

static void test_writer_failures_leave_nothing(void **state)
{
    (void)state;
    QFILE_WRITER *w;
    char id[QUEUE_ID_SIZE] = "";
    VSTR *why = vstr_alloc(16);

    /* Abandoned without commit. */
    w = qfile_writer_create(NULL);
    assert_int_equal(qfile_writer_sender(w, "s@example.org"), 0);
    assert_int_equal(qfile_writer_rcpt(w, "r@example.org", NULL, NULL, 0), 0);
    assert_int_equal(qfile_writer_text(w, "data\n", 5), 0);
    assert_int_equal(count(MAIL_QUEUE_INCOMING), 1);
    qfile_writer_free(w);
    assert_int_equal(total(), 0);

    /* No recipients. */
    w = qfile_writer_create(NULL);
    assert_int_equal(qfile_writer_sender(w, "s@example.org"), 0);
    assert_int_equal(qfile_writer_commit(w, id), QFILE_ERR_INVAL);
    assert_string_equal(id, "");
    assert_true(strlen(qfile_writer_why(w)) > 0);
    qfile_writer_free(w);
    assert_int_equal(total(), 0);

    /* message_size_limit: sticky, and commit refuses. */
    w = qfile_writer_create(NULL);
    qfile_writer_set_size_limit(w, 10);
    assert_int_equal(qfile_writer_sender(w, "s@example.org"), 0);
    assert_int_equal(qfile_writer_rcpt(w, "r@example.org", NULL, NULL, 0), 0);
    assert_int_equal(qfile_writer_text(w, "123456789\n", 10), 0); /* exactly the limit */
    assert_int_equal(qfile_writer_size(w), 10);
    assert_int_equal(qfile_writer_text(w, "x", 1), QFILE_ERR_LIMIT);
    assert_int_equal(qfile_writer_text(w, "", 0), 0); /* nothing to write */
    assert_int_equal(qfile_writer_line(w, "y", 1, 0), QFILE_ERR_LIMIT);
    assert_int_equal(qfile_writer_rcpt(w, "r2@example.org", NULL, NULL, 0), QFILE_ERR_LIMIT);
    assert_int_equal(qfile_writer_commit(w, id), QFILE_ERR_LIMIT);
    qfile_writer_free(w);
    assert_int_equal(total(), 0);

    /* Bad data is refused but the writer goes on. */
    w = qfile_writer_create(NULL);
    assert_int_equal(qfile_writer_sender(w, "s@example.org\r\nRCPT TO:<x>"), QFILE_ERR_INVAL);
    assert_int_equal(qfile_writer_sender(w, "s@example.org"), 0);
    assert_int_equal(qfile_writer_dsn(w, 7, NULL), QFILE_ERR_INVAL);
    assert_int_equal(qfile_writer_dsn(w, QFILE_RET_FULL, "id\x01"), QFILE_ERR_INVAL);
    assert_int_equal(qfile_writer_rcpt(w, "", NULL, NULL, 0), QFILE_ERR_INVAL);
    assert_int_equal(qfile_writer_rcpt(w, "r@example.org\n", NULL, NULL, 0), QFILE_ERR_INVAL);
    assert_int_equal(qfile_writer_rcpt(w, "r@example.org", "o\r", NULL, 0), QFILE_ERR_INVAL);
    assert_int_equal(qfile_writer_rcpt(w, "r@example.org", NULL, "rfc822;\x7f", 0),
                     QFILE_ERR_INVAL);
    assert_int_equal(
        qfile_writer_rcpt(w, "r@example.org", NULL, NULL, QFILE_NOTIFY_NEVER | QFILE_NOTIFY_DELAY),
        QFILE_ERR_INVAL);
    assert_int_equal(qfile_writer_rcpt(w, "r@example.org", NULL, NULL, 0x40), QFILE_ERR_INVAL);
    assert_int_equal(qfile_writer_attr(w, "", "v"), QFILE_ERR_INVAL);
    assert_int_equal(qfile_writer_attr(w, "a=b", "v"), QFILE_ERR_INVAL);
    assert_int_equal(qfile_writer_attr(w, "helo_name", "evil\r\nX-Injected: 1"), QFILE_ERR_INVAL);
    assert_int_equal(qfile_writer_set_class(w, 2, 0), QFILE_ERR_INVAL);
    assert_int_equal(qfile_writer_set_class(w, QFILE_CLASS_BULK, 10), QFILE_ERR_INVAL);
    struct timeval bad_tv = {1, 1000000};

    assert_int_equal(qfile_writer_set_arrival(w, &bad_tv), QFILE_ERR_INVAL);
    char big[QFILE_ADDR_MAX + 2];

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_int_equal(qfile_writer_rcpt(w, big, NULL, NULL, 0), QFILE_ERR_INVAL);
    big[QFILE_ADDR_MAX] = 0;
    assert_int_equal(qfile_writer_rcpt(w, big, NULL, NULL, 0), 0); /* exactly the limit */
    assert_int_equal(qfile_writer_commit(w, id), 0);
    qfile_writer_free(w);
    QFILE *q;

    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, QFILE_OPEN_VERIFY, &q, NULL), 0);
    assert_int_equal(q->rcpt_count, 1);
    assert_int_equal(strlen(q->rcpt[0].address), QFILE_ADDR_MAX);
    assert_int_equal(q->dsn_ret, QFILE_RET_NONE);
    assert_int_equal(q->attr_count, 0);
    qfile_close(q);
    assert_int_equal(mail_queue_remove(MAIL_QUEUE_IMMEDIATE, id), 0);

    /* The target queue directory is missing: the rename fails. */
    char dir[PATH_MAX + 32], moved[PATH_MAX + 32];

    snprintf(dir, sizeof(dir), "%s/%s", tdir, MAIL_QUEUE_BULK);
    snprintf(moved, sizeof(moved), "%s/bulk.away", tdir);
    assert_int_equal(rename(dir, moved), 0);
    w = qfile_writer_create(NULL);
    assert_int_equal(qfile_writer_set_class(w, QFILE_CLASS_BULK, 0), 0);
    assert_int_equal(qfile_writer_sender(w, "s@example.org"), 0);
    assert_int_equal(qfile_writer_rcpt(w, "r@example.org", NULL, NULL, 0), 0);
    assert_int_equal(qfile_writer_commit(w, id), QFILE_ERR_SYS);
    assert_non_null(strstr(qfile_writer_why(w), "rename"));
    qfile_writer_free(w);
    assert_int_equal(rename(moved, dir), 0);
    assert_int_equal(total(), 0);

    /* A file with the same id already in the target queue is never replaced. */
    w = qfile_writer_create(NULL);
    memcpy(id, qfile_writer_id(w), sizeof(id));
    spit(qpath(MAIL_QUEUE_IMMEDIATE, id), "precious", 8);
    assert_int_equal(qfile_writer_sender(w, "s@example.org"), 0);
    assert_int_equal(qfile_writer_rcpt(w, "r@example.org", NULL, NULL, 0), 0);
    assert_int_equal(qfile_writer_commit(w, NULL), QFILE_ERR_SYS);
    qfile_writer_free(w);
    VSTR *f = slurp(qpath(MAIL_QUEUE_IMMEDIATE, id));

    assert_string_equal(vstr_str(f), "precious");
    vstr_free(f);
    assert_int_equal(count(MAIL_QUEUE_INCOMING), 0);
    assert_int_equal(mail_queue_remove(MAIL_QUEUE_IMMEDIATE, id), 0);

    /* No incoming/ directory at all: create fails and says why. */
    snprintf(dir, sizeof(dir), "%s/%s", tdir, MAIL_QUEUE_INCOMING);
    assert_int_equal(rmdir(dir), 0);
    assert_null(qfile_writer_create(why));
    assert_non_null(strstr(vstr_str(why), "incoming"));
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(total(), 0);
    vstr_free(why);
}

static void test_recipient_limit(void **state)
{
    (void)state;
    QFILE_WRITER *w = qfile_writer_create(NULL);
    char addr[64], id[QUEUE_ID_SIZE];
    QFILE *q;

    assert_int_equal(qfile_writer_sender(w, "list@example.org"), 0);
    for (int i = 0; i < QFILE_RCPT_MAX; i++) {
        snprintf(addr, sizeof(addr), "member%d@example.com", i);
        assert_int_equal(qfile_writer_rcpt(w, addr, NULL, NULL, 0), 0);
    }
    assert_int_equal(qfile_writer_rcpt(w, "one.more@example.com", NULL, NULL, 0), QFILE_ERR_LIMIT);
    assert_int_equal(qfile_writer_text(w, "hi\n", 3), 0);
    assert_int_equal(qfile_writer_commit(w, id), 0);
    qfile_writer_free(w);
    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, 0, &q, NULL), 0);
    assert_int_equal(q->rcpt_count, QFILE_RCPT_MAX);
    assert_string_equal(q->rcpt[QFILE_RCPT_MAX - 1].address, "member99999@example.com");
    qfile_close(q);

    /* One more recipient record, forged into the file: refused. */
    VSTR *f = slurp(qpath(MAIL_QUEUE_IMMEDIATE, id)), *extra = vstr_alloc(64), *g;
    size_t zpos = vstr_len(f) - 9; /* COMMIT is the last record */

    assert_int_equal(vstr_str(f)[zpos], 'Z');
    raw_rcpt(extra, 'P', 0, "forged@example.com", "", "");
    g = img_insert(f, zpos, extra);
    put32_at(g, vstr_len(g) - 4, QFILE_RCPT_MAX + 1);
    assert_int_equal(probe_close(vstr_str(g), vstr_len(g), 0), QFILE_ERR_CORRUPT);
    vstr_free(f);
    vstr_free(g);
    vstr_free(extra);
}

static void test_open_errors(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE], other[QUEUE_ID_SIZE];
    QFILE *q = (QFILE *)1;
    VSTR *why = vstr_alloc(16);

    /* Ids and queue names from users are checked, never used as paths. */
    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, "../../etc/passwd", 0, &q, why),
                     QFILE_ERR_INVAL);
    assert_null(q);
    assert_int_equal(qfile_open("../etc", "10000000000000000", 0, &q, why), QFILE_ERR_INVAL);
    assert_int_equal(qfile_open("active", "10000000000000000", 0, &q, why), QFILE_ERR_INVAL);
    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, "10000000000000000", 0, &q, why),
                     QFILE_ERR_SYS);
    assert_int_equal(errno, ENOENT);
    assert_true(vstr_len(why) > 0);

    /* A file renamed by hand to another id is caught. */
    simple_message(QFILE_CLASS_IMMEDIATE, "x\n", id);
    queue_id_new(other, NULL);
    char from[PATH_MAX + 64];

    snprintf(from, sizeof(from), "%s", qpath(MAIL_QUEUE_IMMEDIATE, id));
    assert_int_equal(rename(from, qpath(MAIL_QUEUE_IMMEDIATE, other)), 0);
    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, other, 0, &q, why), QFILE_ERR_CORRUPT);
    assert_non_null(strstr(vstr_str(why), id));
    assert_int_equal(qfile_open_path(qpath(MAIL_QUEUE_IMMEDIATE, other), NULL, 0, &q, why), 0);
    assert_string_equal(q->id, id);
    assert_null(q->queue);
    qfile_close(q);

    /* A symbolic link where a queue file belongs is not followed. */
    char target[PATH_MAX + 16];

    snprintf(target, sizeof(target), "%s/probe", tdir);
    spit(target, "x", 1);
    queue_id_new(other, NULL);
    assert_int_equal(symlink(target, qpath(MAIL_QUEUE_HOLD, other)), 0);
    assert_int_equal(qfile_open(MAIL_QUEUE_HOLD, other, 0, &q, why), QFILE_ERR_SYS);
    assert_int_equal(errno, ELOOP);
    assert_int_equal(unlink(qpath(MAIL_QUEUE_HOLD, other)), 0);

    assert_string_equal(qfile_strerror(QFILE_ERR_INCOMPLETE), "incomplete");
    assert_string_equal(qfile_strerror(QFILE_ERR_CORRUPT), "corrupt");
    assert_string_equal(qfile_strerror(12345), "unknown error");
    assert_string_equal(qfile_class_queue(QFILE_CLASS_BULK), MAIL_QUEUE_BULK);
    assert_string_equal(qfile_class_queue(QFILE_CLASS_IMMEDIATE), MAIL_QUEUE_IMMEDIATE);
    vstr_free(why);
}

static void test_move_and_remove(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE];
    QFILE *q;
    const char *path[] = {MAIL_QUEUE_DEFERRED, MAIL_QUEUE_IMMEDIATE, MAIL_QUEUE_HOLD,
                          MAIL_QUEUE_BULK,     MAIL_QUEUE_CORRUPT,   MAIL_QUEUE_DEFERRED};

    simple_message(QFILE_CLASS_IMMEDIATE, "x\n", id);
    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, QFILE_OPEN_UPDATE, &q, NULL), 0);
    for (size_t i = 0; i < sizeof(path) / sizeof(path[0]); i++) {
        assert_int_equal(qfile_move(q, path[i]), 0);
        assert_string_equal(q->queue, path[i]);
        assert_int_equal(total(), 1);
        assert_int_equal(count(path[i]), 1);
        /* The handle still works after the move. */
        assert_int_equal(qfile_rcpt_defer(q, 0, (time_t)i, (time_t)i + 10, "4.0.0", "x", 0), 0);
    }
    assert_int_equal(qfile_move(q, MAIL_QUEUE_DEFERRED), QFILE_ERR_SYS); /* same queue */
    assert_int_equal(qfile_move(q, "nosuch"), QFILE_ERR_INVAL);
    assert_int_equal(qfile_rcpt_mark(q, 0, QFILE_RCPT_DONE, 0), 0);
    qfile_close(q);
    assert_int_equal(qfile_open(MAIL_QUEUE_DEFERRED, id, 0, &q, NULL), 0);
    assert_int_equal(q->rcpt[0].defer_count, 6);
    assert_int_equal(q->rcpt[0].status, QFILE_RCPT_DONE);
    assert_int_equal(qfile_remove(q), 0);
    qfile_close(q);
    assert_int_equal(total(), 0);

    /* Path-level moves: missing source, never replacing the target. */
    assert_int_equal(mail_queue_move(MAIL_QUEUE_HOLD, MAIL_QUEUE_DEFERRED, id), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(mail_queue_remove(MAIL_QUEUE_HOLD, id), -1);
    assert_int_equal(errno, ENOENT);
    spit(qpath(MAIL_QUEUE_HOLD, id), "a", 1);
    spit(qpath(MAIL_QUEUE_DEFERRED, id), "b", 1);
    assert_int_equal(mail_queue_move(MAIL_QUEUE_HOLD, MAIL_QUEUE_DEFERRED, id), -1);
    assert_int_equal(errno, EEXIST);
    VSTR *f = slurp(qpath(MAIL_QUEUE_DEFERRED, id));

    assert_string_equal(vstr_str(f), "b");
    vstr_free(f);
    assert_int_equal(mail_queue_exists_any(id, NULL), 1);
    assert_int_equal(mail_queue_exists_any(id, MAIL_QUEUE_HOLD), 1);
    assert_int_equal(mail_queue_remove(MAIL_QUEUE_DEFERRED, id), 0);
    assert_int_equal(mail_queue_exists_any(id, MAIL_QUEUE_HOLD), 0);
    assert_int_equal(mail_queue_move(MAIL_QUEUE_HOLD, MAIL_QUEUE_DEFERRED, id), 0);
    assert_int_equal(mail_queue_exists(MAIL_QUEUE_DEFERRED, id), 1);
    assert_int_equal(mail_queue_exists(MAIL_QUEUE_HOLD, id), 0);
}

static void test_paths_and_names(void **state)
{
    (void)state;
    VSTR *buf = vstr_alloc(8), *why = vstr_alloc(8);
    char expect[PATH_MAX + 64];
    const char *id = "11PYQ6V2K8HR7C00B";

    assert_true(queue_id_valid(id));
    snprintf(expect, sizeof(expect), "%s/deferred/%s", tdir, id);
    assert_string_equal(mail_queue_path(buf, MAIL_QUEUE_DEFERRED, id), expect);
    for (int i = 0; queues[i]; i++)
        assert_true(mail_queue_name_ok(queues[i]));
    assert_false(mail_queue_name_ok("active"));
    assert_false(mail_queue_name_ok("defer"));
    assert_false(mail_queue_name_ok("../immediate"));
    assert_false(mail_queue_name_ok(""));
    assert_false(mail_queue_name_ok(NULL));

    /* Hashing: two levels, from the last time digits (R, then H). */
    assert_int_equal(
        mail_queue_init("/var/spool/postern//", 2, "deferred, defer hold,bounce\tactive", why), 0);
    assert_string_equal(mail_queue_directory(), "/var/spool/postern");
    assert_string_equal(mail_queue_path(buf, MAIL_QUEUE_DEFERRED, id),
                        "/var/spool/postern/deferred/R/H/11PYQ6V2K8HR7C00B");
    assert_string_equal(mail_queue_file_dir(buf, MAIL_QUEUE_HOLD, id),
                        "/var/spool/postern/hold/R/H");
    assert_string_equal(mail_queue_path(buf, MAIL_QUEUE_IMMEDIATE, id),
                        "/var/spool/postern/immediate/11PYQ6V2K8HR7C00B");
    assert_true(mail_queue_hashed(MAIL_QUEUE_DEFERRED));
    assert_false(mail_queue_hashed(MAIL_QUEUE_BULK));

    /* Depth 0 turns hashing off whatever the names. */
    assert_int_equal(mail_queue_init("/q", 0, "deferred", why), 0);
    assert_false(mail_queue_hashed(MAIL_QUEUE_DEFERRED));
    assert_string_equal(mail_queue_path(buf, MAIL_QUEUE_DEFERRED, id), "/q/deferred/"
                                                                       "11PYQ6V2K8HR7C00B");

    /* Bad settings leave the old ones in place. */
    assert_int_equal(mail_queue_init("/x", 1, "deferred, nosuch", why), -1);
    assert_non_null(strstr(vstr_str(why), "nosuch"));
    assert_int_equal(mail_queue_init("/x", MAIL_QUEUE_HASH_DEPTH_MAX + 1, "", why), -1);
    assert_int_equal(mail_queue_init("/x", -1, "", why), -1);
    assert_int_equal(mail_queue_init("", 1, "", why), -1);
    assert_string_equal(mail_queue_directory(), "/q");
    assert_int_equal(mail_queue_init(tdir, 0, "", NULL), 0);
    vstr_free(buf);
    vstr_free(why);
}

static void test_hashed_queues(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE], expect[PATH_MAX + 64];
    QFILE *q;
    ARGV *ids = argv_alloc(4);

    assert_int_equal(mail_queue_init(tdir, 2, "incoming, bulk, deferred", NULL), 0);
    simple_message(QFILE_CLASS_BULK, "hashed\n", id);
    snprintf(expect, sizeof(expect), "%s/bulk/%c/%c/%s", tdir, queue_id_hash_char(id, 0),
             queue_id_hash_char(id, 1), id);
    assert_int_equal(access(expect, F_OK), 0);
    assert_int_equal(count(MAIL_QUEUE_INCOMING), 0);

    assert_int_equal(qfile_open(MAIL_QUEUE_BULK, id, QFILE_OPEN_UPDATE, &q, NULL), 0);
    assert_int_equal(qfile_move(q, MAIL_QUEUE_DEFERRED), 0);
    snprintf(expect, sizeof(expect), "%s/deferred/%c/%c/%s", tdir, queue_id_hash_char(id, 0),
             queue_id_hash_char(id, 1), id);
    assert_int_equal(access(expect, F_OK), 0);
    assert_int_equal(qfile_move(q, MAIL_QUEUE_HOLD), 0); /* not hashed */
    snprintf(expect, sizeof(expect), "%s/hold/%s", tdir, id);
    assert_int_equal(access(expect, F_OK), 0);
    assert_int_equal(qfile_move(q, MAIL_QUEUE_DEFERRED), 0);
    qfile_close(q);

    /* Many messages spread over subdirectories and scan back in order. */
    ARGV *made = argv_alloc(64);

    for (int i = 0; i < 40; i++) {
        simple_message(QFILE_CLASS_BULK, "m\n", id);
        argv_add(made, id, (char *)NULL);
    }
    assert_int_equal(mail_queue_scan(MAIL_QUEUE_BULK, 0, ids), 40);
    for (int i = 0; i < 40; i++)
        assert_string_equal(ids->argv[i], made->argv[i]);

    /* A file left at another depth by older settings is still found. */
    assert_int_equal(mail_queue_init(tdir, 1, "bulk", NULL), 0);
    argv_truncate(ids, 0);
    assert_int_equal(mail_queue_scan(MAIL_QUEUE_BULK, 0, ids), 40);
    assert_int_equal(mail_queue_scan(MAIL_QUEUE_DEFERRED, 0, ids), 1);
    assert_int_equal(mail_queue_init(tdir, 0, "", NULL), 0);
    argv_free(made);
    argv_free(ids);
}

static void test_scan(void **state)
{
    (void)state;
    ARGV *ids = argv_alloc(4), *made = argv_alloc(4);
    char id[QUEUE_ID_SIZE], junk[PATH_MAX + 64];

    for (int i = 0; i < 25; i++) {
        simple_message(QFILE_CLASS_IMMEDIATE, "m\n", id);
        argv_add(made, id, (char *)NULL);
    }
    /* Things that are not queue files are skipped. */
    snprintf(junk, sizeof(junk), "%s/immediate/junk", tdir);
    spit(junk, "x", 1);
    snprintf(junk, sizeof(junk), "%s/immediate/.hidden", tdir);
    spit(junk, "x", 1);
    snprintf(junk, sizeof(junk), "%s/immediate/1000000000000000a", tdir);
    spit(junk, "x", 1);
    snprintf(junk, sizeof(junk), "%s/immediate/10000000000000000", tdir);
    assert_int_equal(mkdir(junk, 0700), 0); /* a directory with an id name */
    snprintf(junk, sizeof(junk), "%s/immediate/Q", tdir);
    assert_int_equal(mkdir(junk, 0700), 0); /* an empty hash level */

    argv_add(ids, "keep-me", (char *)NULL); /* scan appends */
    assert_int_equal(mail_queue_scan(MAIL_QUEUE_IMMEDIATE, 0, ids), 25);
    assert_string_equal(ids->argv[0], "keep-me");
    for (int i = 0; i < 25; i++)
        assert_string_equal(ids->argv[i + 1], made->argv[i]);

    /* With a limit: the oldest ones, in order. */
    for (size_t limit = 1; limit <= 30; limit += 4) {
        argv_truncate(ids, 0);
        ssize_t n = mail_queue_scan(MAIL_QUEUE_IMMEDIATE, limit, ids);

        assert_int_equal(n, limit < 25 ? limit : 25);
        for (ssize_t i = 0; i < n; i++)
            assert_string_equal(ids->argv[i], made->argv[i]);
    }
    /* A missing queue directory is an error. */
    char dir[PATH_MAX + 32];

    snprintf(dir, sizeof(dir), "%s/%s", tdir, MAIL_QUEUE_CORRUPT);
    assert_int_equal(rmdir(dir), 0);
    assert_int_equal(mail_queue_scan(MAIL_QUEUE_CORRUPT, 0, ids), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(mkdir(dir, 0700), 0);
    argv_free(ids);
    argv_free(made);
}

static void test_purge_incoming(void **state)
{
    (void)state;
    QFILE_WRITER *live = qfile_writer_create(NULL);
    char old_id[QUEUE_ID_SIZE], young_id[QUEUE_ID_SIZE];
    struct timeval past[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
    VSTR *why = vstr_alloc(16);

    /* A live writer whose file is old: its lock protects it. */
    assert_non_null(live);
    assert_int_equal(qfile_writer_sender(live, "s@example.org"), 0);
    assert_int_equal(utimes(qpath(MAIL_QUEUE_INCOMING, qfile_writer_id(live)), past), 0);
    /* What a crashed writer leaves: an old unlocked file, and a young one. */
    queue_id_new(old_id, NULL);
    spit(qpath(MAIL_QUEUE_INCOMING, old_id), "\x89PQF", 4);
    assert_int_equal(utimes(qpath(MAIL_QUEUE_INCOMING, old_id), past), 0);
    queue_id_new(young_id, NULL);
    spit(qpath(MAIL_QUEUE_INCOMING, young_id), "\x89PQF", 4);

    assert_int_equal(qfile_purge_incoming(3600, why), 1);
    assert_int_equal(mail_queue_exists(MAIL_QUEUE_INCOMING, old_id), 0);
    assert_int_equal(mail_queue_exists(MAIL_QUEUE_INCOMING, young_id), 1);
    assert_int_equal(mail_queue_exists(MAIL_QUEUE_INCOMING, qfile_writer_id(live)), 1);
    assert_int_equal(qfile_purge_incoming(0, why), 1); /* the young one, now */
    assert_int_equal(count(MAIL_QUEUE_INCOMING), 1);

    /* The live writer is unaffected and commits. */
    assert_int_equal(qfile_writer_rcpt(live, "r@example.org", NULL, NULL, 0), 0);
    assert_int_equal(qfile_writer_commit(live, NULL), 0);
    qfile_writer_free(live);
    assert_int_equal(count(MAIL_QUEUE_INCOMING), 0);
    assert_int_equal(count(MAIL_QUEUE_IMMEDIATE), 1);
    assert_int_equal(qfile_purge_incoming(0, why), 0);

    /* The removals were logged with the queue id. */
    char log[PATH_MAX + 16];

    snprintf(log, sizeof(log), "%s/maillog", tdir);
    VSTR *text = slurp(log);

    assert_non_null(strstr(vstr_str(text), old_id));
    assert_non_null(strstr(vstr_str(text), young_id));
    vstr_free(text);
    vstr_free(why);
}

static void test_many_writers_at_once(void **state)
{
    (void)state;
    enum { N = 50 };
    QFILE_WRITER *w[N];
    char id[N][QUEUE_ID_SIZE];

    /* Interleaved writers, as in several cleanup processes. */
    for (int i = 0; i < N; i++) {
        w[i] = qfile_writer_create(NULL);
        assert_non_null(w[i]);
        assert_int_equal(qfile_writer_sender(w[i], "s@example.org"), 0);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(qfile_writer_rcpt(w[i], "r@example.org", NULL, NULL, 0), 0);
    for (int line = 0; line < 20; line++)
        for (int i = 0; i < N; i++) {
            char text[64];

            snprintf(text, sizeof(text), "message %d line %d\n", i, line);
            assert_int_equal(qfile_writer_text(w[i], text, strlen(text)), 0);
        }
    for (int i = N - 1; i >= 0; i--) {
        assert_int_equal(qfile_writer_set_class(w[i], i % 2, i % 19 - 9), 0);
        assert_int_equal(qfile_writer_commit(w[i], id[i]), 0);
        qfile_writer_free(w[i]);
    }
    assert_int_equal(count(MAIL_QUEUE_INCOMING), 0);
    assert_int_equal(count(MAIL_QUEUE_IMMEDIATE) + count(MAIL_QUEUE_BULK), N);
    for (int i = 0; i < N; i++) {
        QFILE *q;
        char want[64];

        assert_int_equal(qfile_open(qfile_class_queue(i % 2), id[i], QFILE_OPEN_VERIFY, &q, NULL),
                         0);
        assert_int_equal(q->priority, i % 19 - 9);
        VSTR *c = content_of(q, 0);

        snprintf(want, sizeof(want), "message %d line 19\n", i);
        assert_non_null(strstr(vstr_str(c), want));
        vstr_free(c);
        qfile_close(q);
    }
}

/* killed_writer - fork a cleanup stand-in that dies by SIGKILL; commit first if asked */
static void killed_writer(int commit, char *id)
{
    int fds[2];
    pid_t pid;
    int status;

    assert_int_equal(pipe(fds), 0);
    if ((pid = fork()) == 0) {
        QFILE_WRITER *w = qfile_writer_create(NULL);
        VSTR *c = tricky_content();

        close(fds[0]);
        if (w == NULL || qfile_writer_sender(w, "s@example.org") != 0 ||
            qfile_writer_rcpt(w, "r@example.org", NULL, NULL, 0) != 0)
            _exit(1);
        for (int i = 0; i < 3; i++)
            if (qfile_writer_text(w, vstr_str(c), vstr_len(c)) != 0)
                _exit(1);
        if (commit && qfile_writer_commit(w, NULL) != 0)
            _exit(1);
        if (write_full(fds[1], qfile_writer_id(w), QUEUE_ID_LEN) < 0)
            _exit(1);
        raise(SIGKILL); /* no cleanup of any kind */
        _exit(1);
    }
    assert_true(pid > 0);
    close(fds[1]);
    assert_int_equal(read_full(fds[0], id, QUEUE_ID_LEN), QUEUE_ID_LEN);
    id[QUEUE_ID_LEN] = 0;
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void test_killed_writers(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE];
    QFILE *q = NULL;

    /* Killed while writing: an incomplete, unlocked file that the purge removes. */
    killed_writer(0, id);
    assert_int_equal(mail_queue_exists(MAIL_QUEUE_INCOMING, id), 1);
    assert_int_equal(qfile_open(MAIL_QUEUE_INCOMING, id, 0, &q, NULL), QFILE_ERR_INCOMPLETE);
    assert_int_equal(qfile_purge_incoming(0, NULL), 1);
    assert_int_equal(total(), 0);

    /* Killed right after commit: the message is complete in its queue. */
    killed_writer(1, id);
    assert_int_equal(count(MAIL_QUEUE_INCOMING), 0);
    assert_int_equal(qfile_open(MAIL_QUEUE_IMMEDIATE, id, QFILE_OPEN_VERIFY, &q, NULL), 0);
    assert_int_equal(q->rcpt_count, 1);
    VSTR *c = tricky_content();

    assert_int_equal(q->content_size, 3 * vstr_len(c));
    vstr_free(c);
    /* A descriptor that cannot be written: an error, not a crash. */
    assert_int_equal(qfile_content_to_fd(q, -1, 0), QFILE_ERR_SYS);
    assert_int_equal(errno, EBADF);
    qfile_close(q);
    assert_int_equal(qfile_purge_incoming(0, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hand_made_file_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_output_matches_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_by_class, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_byte_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_walk_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_at_every_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uncommitted_file_is_incomplete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_magic_and_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_record_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_field_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defer_latest_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_tail_repaired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_failures_leave_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recipient_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move_and_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths_and_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hashed_queues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_incoming, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_writers_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_writers, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
