/*
 * maildrop - reader and writer of the local submission format (maildrop.h).
 *
 * The reader is the trust boundary for anything in queue_directory/maildrop:
 * it checks each length against its record type's limit before reading the
 * payload, each record against the section it may appear in, each field
 * against its syntax, and the END record against what it counted. Memory is
 * one input buffer and one record buffer, whatever the input holds.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mail/maildrop.h"
#include "mail/qfile.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/vstr.h"

#define MD_RBUF_SIZE 65536                                              /* reader input buffer */
#define MD_WBUF_SIZE (2 * (MAILDROP_REC_MAX + MAILDROP_REC_HEADER_LEN)) /* writer buffer */
#define MD_WHY_MAX 1024                                                 /* error text */

/* Singleton records seen (bits). */
#define MD_SEEN_SENDER (1 << 0)
#define MD_SEEN_FULL_NAME (1 << 1)
#define MD_SEEN_DSN (1 << 2)
#define MD_SEEN_BODY (1 << 3)
#define MD_SEEN_FLAGS (1 << 4)

/* Sections, in the order they come. */
enum md_state {
    MD_HEADER,  /* reader: file header not yet read */
    MD_START,   /* file mode: SUBMITTER must come first */
    MD_ENV,     /* envelope */
    MD_CONTENT, /* between CONTENT and CONTENT_END */
    MD_POST,    /* after CONTENT_END: recipients, then END */
    MD_DONE,    /* END seen */
    MD_EOF,     /* reader: clean end of input after END */
    MD_FAILED,  /* an error; sticky */
};

/* md_put16/32/64, md_get32/64 - big-endian integers */
static void md_put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void md_put32(unsigned char *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static void md_put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint16_t md_get16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t md_get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t md_get64(const unsigned char *p)
{
    return ((uint64_t)md_get32(p) << 32) | md_get32(p + 4);
}

/* maildrop_strerror - a word for a result code */
const char *maildrop_strerror(int err)
{
    switch (err) {
    case MAILDROP_OK: return "success";
    case MAILDROP_EOF: return "end of input";
    case MAILDROP_ERR_SYS: return "system error";
    case MAILDROP_ERR_TRUNC: return "cut short";
    case MAILDROP_ERR_CORRUPT: return "corrupt";
    case MAILDROP_ERR_FORMAT: return "not a maildrop file";
    case MAILDROP_ERR_LIMIT: return "over a limit";
    case MAILDROP_ERR_INVAL: return "invalid data";
    case MAILDROP_ERR_ABORT: return "ended before the end record";
    default: return "unknown error";
    }
}

/* maildrop_addr_ok - no NUL or control characters; bounded */
int maildrop_addr_ok(const char *addr, size_t len, int empty_ok)
{
    if (len == 0)
        return empty_ok;
    if (len > MAILDROP_ADDR_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)addr[i];

        /* 8-bit bytes pass: SMTPUTF8 addresses are UTF-8 (RFC 6531). */
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

/* maildrop_text_ok - one line of text that can go into a log or a header */
int maildrop_text_ok(const char *text, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];

        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

/* maildrop_envid_ok - RFC 3461 4.4: the decoded ENVID is printable US-ASCII */
int maildrop_envid_ok(const char *envid, size_t len)
{
    if (len > MAILDROP_ENVID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)envid[i] < 0x20 || (unsigned char)envid[i] > 0x7e)
            return 0;
    return 1;
}

/* md_notify_ok - a valid NOTIFY combination: NEVER stands alone */
static int md_notify_ok(int notify)
{
    int all = QFILE_NOTIFY_SUCCESS | QFILE_NOTIFY_FAILURE | QFILE_NOTIFY_DELAY | QFILE_NOTIFY_NEVER;

    if (notify & ~all)
        return 0;
    return !(notify & QFILE_NOTIFY_NEVER) || notify == QFILE_NOTIFY_NEVER;
}

/* md_type_max - the largest payload of a known type; 0 also for unknown */
static size_t md_type_max(int type, int *known)
{
    *known = 1;
    switch (type) {
    case MAILDROP_REC_SUBMITTER: return 4 + MAILDROP_LOGIN_MAX;
    case MAILDROP_REC_FLAGS: return 4;
    case MAILDROP_REC_SENDER: return MAILDROP_ADDR_MAX;
    case MAILDROP_REC_FULL_NAME: return MAILDROP_FULL_NAME_MAX;
    case MAILDROP_REC_DSN: return 1 + MAILDROP_ENVID_MAX;
    case MAILDROP_REC_BODY: return 1;
    case MAILDROP_REC_RCPT: return 1 + MAILDROP_ADDR_MAX;
    case MAILDROP_REC_CONTENT: return 0;
    case MAILDROP_REC_LINE: return MAILDROP_CHUNK_MAX;
    case MAILDROP_REC_PART: return MAILDROP_CHUNK_MAX;
    case MAILDROP_REC_CONTENT_END: return 0;
    case MAILDROP_REC_END: return 12;
    default: *known = 0; return 0;
    }
}

/* md_type_name - the type for an error text: 'S' or 0x9c */
static const char *md_type_name(int type, char *buf, size_t size)
{
    if (type > 0x20 && type < 0x7f)
        snprintf(buf, size, "'%c'", type);
    else
        snprintf(buf, size, "0x%02x", (unsigned)type);
    return buf;
}

/* ------------------------------------------------------------------ */
/* Reader.                                                             */
/* ------------------------------------------------------------------ */

struct MAILDROP_READER {
    int fd;
    int mode;
    MAILDROP_LIMITS lim;
    enum md_state state;
    int err;
    VSTR *why;
    unsigned char *ibuf; /* MD_RBUF_SIZE */
    size_t ilen, ipos;
    int ieof;
    unsigned char *rec; /* MAILDROP_REC_MAX + 1: the payload, NUL-terminated */
    uint64_t offset;
    int seen;
    size_t rcpt_count;
    uint64_t env_bytes;
    uint64_t size;
};

/* md_r_fail - fail for good with a reason */
static int md_r_fail(MAILDROP_READER *r, int err, const char *fmt, ...) MSG_FMT(3, 4);

static int md_r_fail(MAILDROP_READER *r, int err, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    vstr_reset(r->why);
    va_start(ap, fmt);
    vstr_vsprintf_append(r->why, fmt, ap);
    va_end(ap);
    r->state = MD_FAILED;
    r->err = err;
    errno = saved;
    return err;
}

MAILDROP_READER *maildrop_reader_open(int fd, int mode, const MAILDROP_LIMITS *limits)
{
    MAILDROP_READER *r = mycalloc(1, sizeof(*r));

    r->fd = fd;
    r->mode = mode;
    if (limits)
        r->lim = *limits;
    if (r->lim.rcpt_max == 0 || r->lim.rcpt_max > MAILDROP_RCPT_MAX)
        r->lim.rcpt_max = MAILDROP_RCPT_MAX;
    r->state = MD_HEADER;
    r->why = vstr_alloc(128);
    vstr_set_limit(r->why, MD_WHY_MAX);
    r->ibuf = mymalloc(MD_RBUF_SIZE);
    r->rec = mymalloc(MAILDROP_REC_MAX + 1);
    return r;
}

void maildrop_reader_free(MAILDROP_READER *r)
{
    if (r == NULL)
        return;
    vstr_free(r->why);
    myfree(r->ibuf);
    myfree(r->rec);
    myfree(r);
}

const char *maildrop_reader_why(const MAILDROP_READER *r)
{
    return vstr_str(r->why);
}

uint64_t maildrop_reader_offset(const MAILDROP_READER *r)
{
    return r->offset;
}

uint64_t maildrop_reader_size(const MAILDROP_READER *r)
{
    return r->size;
}

/* md_r_bytes - up to n input bytes into dst; the count (short only at end of
   input), or -1 on a read error */
static ssize_t md_r_bytes(MAILDROP_READER *r, unsigned char *dst, size_t n)
{
    size_t got = 0;

    while (got < n) {
        if (r->ipos == r->ilen) {
            if (r->ieof)
                break;
            ssize_t k;

            do
                k = read(r->fd, r->ibuf, MD_RBUF_SIZE);
            while (k < 0 && errno == EINTR);
            if (k < 0)
                return -1;
            if (k == 0) {
                r->ieof = 1;
                break;
            }
            r->ilen = (size_t)k;
            r->ipos = 0;
        }
        size_t take = r->ilen - r->ipos;

        if (take > n - got)
            take = n - got;
        memcpy(dst + got, r->ibuf + r->ipos, take);
        r->ipos += take;
        got += take;
    }
    r->offset += got;
    return (ssize_t)got;
}

/* md_r_header - the file header: magic, version, flags */
static int md_r_header(MAILDROP_READER *r)
{
    unsigned char h[MAILDROP_HEADER_LEN];
    ssize_t n = md_r_bytes(r, h, sizeof(h));

    if (n < 0)
        return md_r_fail(r, MAILDROP_ERR_SYS, "read: %m");
    if (n == 0)
        return md_r_fail(r, MAILDROP_ERR_TRUNC, "empty input");
    if (memcmp(h, MAILDROP_MAGIC, (size_t)n < MAILDROP_MAGIC_LEN ? (size_t)n : MAILDROP_MAGIC_LEN))
        return md_r_fail(r, MAILDROP_ERR_FORMAT, "bad magic number: not a maildrop file");
    if (n < (ssize_t)sizeof(h))
        return md_r_fail(r, MAILDROP_ERR_TRUNC, "file header cut short");
    if (md_get16(h + 8) != MAILDROP_VERSION)
        return md_r_fail(r, MAILDROP_ERR_FORMAT, "format version %u is not supported",
                         (unsigned)md_get16(h + 8));
    if (md_get16(h + 10) != 0)
        return md_r_fail(r, MAILDROP_ERR_FORMAT, "unknown header flags 0x%04x",
                         (unsigned)md_get16(h + 10));
    r->state = r->mode == MAILDROP_RD_FILE ? MD_START : MD_ENV;
    return MAILDROP_OK;
}

/* md_r_misplaced - a record in a section where it may not be */
static int md_r_misplaced(MAILDROP_READER *r, int type)
{
    char tb[8];

    return md_r_fail(r, MAILDROP_ERR_CORRUPT, "record %s out of place",
                     md_type_name(type, tb, sizeof(tb)));
}

/* md_r_once - a singleton record: only in the envelope, only once */
static int md_r_once(MAILDROP_READER *r, int type, int bit)
{
    char tb[8];

    if (r->state != MD_ENV)
        return md_r_misplaced(r, type);
    if (r->seen & bit)
        return md_r_fail(r, MAILDROP_ERR_CORRUPT, "record %s repeated",
                         md_type_name(type, tb, sizeof(tb)));
    r->seen |= bit;
    return MAILDROP_OK;
}

/* md_r_check - validate a decoded record against the section and its syntax */
static int md_r_check(MAILDROP_READER *r, MAILDROP_REC *rec)
{
    const char *p = (const char *)rec->data;
    size_t len = rec->len;

    if (r->state == MD_START && rec->type != MAILDROP_REC_SUBMITTER)
        return md_r_fail(r, MAILDROP_ERR_CORRUPT, "the first record is not the submitter");
    switch (rec->type) {
    case MAILDROP_REC_SUBMITTER:
        if (r->mode != MAILDROP_RD_FILE)
            return md_r_fail(r, MAILDROP_ERR_CORRUPT, "submitter record in the input");
        if (r->state != MD_START)
            return md_r_misplaced(r, rec->type);
        if (len < 5 || !maildrop_text_ok(p + 4, len - 4, MAILDROP_LOGIN_MAX))
            return md_r_fail(r, MAILDROP_ERR_CORRUPT, "malformed submitter record");
        rec->uid = md_get32(rec->data);
        rec->text = p + 4;
        rec->text_len = len - 4;
        r->state = MD_ENV;
        break;
    case MAILDROP_REC_FLAGS:
        if (md_r_once(r, rec->type, MD_SEEN_FLAGS) < 0)
            return r->err;
        /* Unknown bits are refused: a request must not be silently dropped. */
        if (len != 4 || (md_get32(rec->data) & ~(uint32_t)MAILDROP_FLAG_MASK))
            return md_r_fail(r, MAILDROP_ERR_CORRUPT, "malformed flags record");
        rec->flags = md_get32(rec->data);
        break;
    case MAILDROP_REC_SENDER:
        if (md_r_once(r, rec->type, MD_SEEN_SENDER) < 0)
            return r->err;
        if (!maildrop_addr_ok(p, len, 1))
            return md_r_fail(r, MAILDROP_ERR_CORRUPT, "malformed sender address");
        rec->text = p;
        rec->text_len = len;
        break;
    case MAILDROP_REC_FULL_NAME:
        if (md_r_once(r, rec->type, MD_SEEN_FULL_NAME) < 0)
            return r->err;
        if (!maildrop_text_ok(p, len, MAILDROP_FULL_NAME_MAX))
            return md_r_fail(r, MAILDROP_ERR_CORRUPT, "malformed full name");
        rec->text = p;
        rec->text_len = len;
        break;
    case MAILDROP_REC_DSN:
        if (md_r_once(r, rec->type, MD_SEEN_DSN) < 0)
            return r->err;
        if (len < 1 || rec->data[0] > QFILE_RET_HDRS || !maildrop_envid_ok(p + 1, len - 1))
            return md_r_fail(r, MAILDROP_ERR_CORRUPT, "malformed DSN record");
        rec->ret = rec->data[0];
        rec->text = p + 1;
        rec->text_len = len - 1;
        break;
    case MAILDROP_REC_BODY:
        if (md_r_once(r, rec->type, MD_SEEN_BODY) < 0)
            return r->err;
        if (len != 1 ||
            (rec->data[0] != MAILDROP_BODY_7BIT && rec->data[0] != MAILDROP_BODY_8BITMIME))
            return md_r_fail(r, MAILDROP_ERR_CORRUPT, "malformed body type record");
        rec->body = rec->data[0];
        break;
    case MAILDROP_REC_RCPT:
        if (r->state != MD_ENV && r->state != MD_POST)
            return md_r_misplaced(r, rec->type);
        if (len < 2 || !md_notify_ok(rec->data[0]) || !maildrop_addr_ok(p + 1, len - 1, 0))
            return md_r_fail(r, MAILDROP_ERR_CORRUPT, "malformed recipient record");
        if (r->rcpt_count >= r->lim.rcpt_max)
            return md_r_fail(r, MAILDROP_ERR_LIMIT, "more than %zu recipients", r->lim.rcpt_max);
        r->rcpt_count++;
        rec->notify = rec->data[0];
        rec->text = p + 1;
        rec->text_len = len - 1;
        break;
    case MAILDROP_REC_CONTENT:
        if (r->state != MD_ENV)
            return md_r_misplaced(r, rec->type);
        r->state = MD_CONTENT;
        break;
    case MAILDROP_REC_LINE:
    case MAILDROP_REC_PART:
        if (r->state != MD_CONTENT)
            return md_r_misplaced(r, rec->type);
        if (rec->type == MAILDROP_REC_PART && len == 0)
            return md_r_fail(r, MAILDROP_ERR_CORRUPT, "empty content piece");
        r->size += len + (rec->type == MAILDROP_REC_LINE);
        if (r->lim.size_max && r->size > r->lim.size_max)
            return md_r_fail(r, MAILDROP_ERR_LIMIT, "message size exceeds the limit of %llu bytes",
                             (unsigned long long)r->lim.size_max);
        break;
    case MAILDROP_REC_CONTENT_END:
        if (r->state != MD_CONTENT)
            return md_r_misplaced(r, rec->type);
        r->state = MD_POST;
        break;
    case MAILDROP_REC_END:
        if (r->state != MD_POST)
            return md_r_misplaced(r, rec->type);
        if (len != 12)
            return md_r_fail(r, MAILDROP_ERR_CORRUPT, "malformed end record");
        rec->rcpt_count = md_get32(rec->data);
        rec->content_size = md_get64(rec->data + 4);
        if (rec->rcpt_count != r->rcpt_count || rec->content_size != r->size)
            return md_r_fail(r, MAILDROP_ERR_CORRUPT,
                             "end record says %lu recipients and %llu bytes; found %zu and %llu",
                             (unsigned long)rec->rcpt_count, (unsigned long long)rec->content_size,
                             r->rcpt_count, (unsigned long long)r->size);
        r->state = MD_DONE;
        break;
    default: /* ancillary, skipped by callers; allowed in any section */ break;
    }
    if (rec->type != MAILDROP_REC_LINE && rec->type != MAILDROP_REC_PART) {
        r->env_bytes += len;
        if (r->env_bytes > MAILDROP_ENVELOPE_MAX)
            return md_r_fail(r, MAILDROP_ERR_LIMIT, "envelope larger than %d bytes",
                             MAILDROP_ENVELOPE_MAX);
    }
    return MAILDROP_OK;
}

int maildrop_read(MAILDROP_READER *r, MAILDROP_REC *rec)
{
    unsigned char h[MAILDROP_REC_HEADER_LEN];
    char tb[8];
    ssize_t n;
    int known;

    memset(rec, 0, sizeof(*rec));
    rec->text = "";
    if (r->state == MD_FAILED)
        return r->err;
    if (r->state == MD_EOF)
        return MAILDROP_EOF;
    if (r->state == MD_HEADER && md_r_header(r) < 0)
        return r->err;
    if (r->state == MD_DONE) {
        /* Nothing may follow END: a spliced or appended file is not whole. */
        if ((n = md_r_bytes(r, h, 1)) < 0)
            return md_r_fail(r, MAILDROP_ERR_SYS, "read: %m");
        if (n > 0)
            return md_r_fail(r, MAILDROP_ERR_CORRUPT, "data after the end record");
        r->state = MD_EOF;
        return MAILDROP_EOF;
    }
    if ((n = md_r_bytes(r, h, sizeof(h))) < 0)
        return md_r_fail(r, MAILDROP_ERR_SYS, "read: %m");
    if (n == 0)
        return md_r_fail(r, MAILDROP_ERR_ABORT, "input ended before the end record");
    if (n < (ssize_t)sizeof(h))
        return md_r_fail(r, MAILDROP_ERR_TRUNC, "record header cut short");
    rec->type = h[0];
    rec->len = md_get32(h + 1);
    if (rec->type == 0x00 || rec->type == 0xff)
        return md_r_fail(r, MAILDROP_ERR_CORRUPT, "invalid record type 0x%02x",
                         (unsigned)rec->type);
    size_t max = md_type_max(rec->type, &known);

    if (!known) {
        if (rec->type < MAILDROP_REC_ANCILLARY)
            return md_r_fail(r, MAILDROP_ERR_CORRUPT, "unknown record type %s",
                             md_type_name(rec->type, tb, sizeof(tb)));
        max = MAILDROP_REC_MAX;
    }
    /* The length is checked before anything is read for it. */
    if (rec->len > max)
        return md_r_fail(r, MAILDROP_ERR_CORRUPT, "record %s length %zu exceeds the limit of %zu",
                         md_type_name(rec->type, tb, sizeof(tb)), rec->len, max);
    if ((n = md_r_bytes(r, r->rec, rec->len)) < 0)
        return md_r_fail(r, MAILDROP_ERR_SYS, "read: %m");
    if ((size_t)n < rec->len)
        return md_r_fail(r, MAILDROP_ERR_TRUNC, "record %s cut short",
                         md_type_name(rec->type, tb, sizeof(tb)));
    r->rec[rec->len] = 0;
    rec->data = r->rec;
    return md_r_check(r, rec);
}

/* md_has_8bit - any byte above 127 (an SMTPUTF8 address) */
static int md_has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s > 0x7f)
            return 1;
    return 0;
}

void maildrop_envelope_free(MAILDROP_ENVELOPE *env)
{
    myfree(env->sender);
    myfree(env->full_name);
    myfree(env->envid);
    if (env->rcpt)
        argv_free(env->rcpt);
    myfree(env->notify);
    memset(env, 0, sizeof(*env));
}

int maildrop_envelope_read(int fd, int mode, const MAILDROP_LIMITS *limits, MAILDROP_ENVELOPE *env,
                           VSTR *why)
{
    MAILDROP_READER *r = maildrop_reader_open(fd, mode, limits);
    MAILDROP_REC rec;
    size_t cap = 0;
    int res;

    memset(env, 0, sizeof(*env));
    env->rcpt = argv_alloc(4);
    while ((res = maildrop_read(r, &rec)) == MAILDROP_OK) {
        switch (rec.type) {
        case MAILDROP_REC_SUBMITTER:
            env->submitter_uid = rec.uid;
            env->have_submitter = 1;
            break;
        case MAILDROP_REC_FLAGS: env->flags = rec.flags; break;
        case MAILDROP_REC_SENDER:
            env->sender = mystrdup(rec.text);
            env->utf8 |= md_has_8bit(rec.text);
            break;
        case MAILDROP_REC_FULL_NAME: env->full_name = mystrdup(rec.text); break;
        case MAILDROP_REC_DSN:
            env->ret = rec.ret;
            env->envid = mystrdup(rec.text);
            break;
        case MAILDROP_REC_BODY: env->body = rec.body; break;
        case MAILDROP_REC_RCPT:
            /* The reader bounds the count (rcpt_max) and the bytes. */
            if (env->rcpt->argc >= cap) {
                cap = cap ? size_mul(cap, 2) : 16;
                env->notify = myrealloc(env->notify, size_mul(cap, sizeof(int)));
            }
            env->notify[env->rcpt->argc] = rec.notify;
            argv_add(env->rcpt, rec.text, (char *)0);
            env->utf8 |= md_has_8bit(rec.text);
            break;
        case MAILDROP_REC_END: env->content_size = rec.content_size; break;
        default: break; /* content, and ancillary records this version ignores */
        }
    }
    if (res != MAILDROP_EOF && why)
        vstr_cpy(why, maildrop_reader_why(r));
    maildrop_reader_free(r);
    return res == MAILDROP_EOF ? 0 : res;
}

/* ------------------------------------------------------------------ */
/* Writer.                                                             */
/* ------------------------------------------------------------------ */

struct MAILDROP_WRITER {
    int fd;
    enum md_state state;
    int err;
    VSTR *name;
    VSTR *why;
    unsigned char *buf; /* MD_WBUF_SIZE */
    size_t buf_len;
    int records; /* records written so far (SUBMITTER must be the first) */
    int seen;
    size_t rcpt_count;
    uint64_t env_bytes;
    uint64_t size, size_limit;
};

/* md_w_fail - fail for good */
static int md_w_fail(MAILDROP_WRITER *w, int err, const char *fmt, ...) MSG_FMT(3, 4);

static int md_w_fail(MAILDROP_WRITER *w, int err, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    vstr_reset(w->why);
    va_start(ap, fmt);
    vstr_vsprintf_append(w->why, fmt, ap);
    va_end(ap);
    w->state = MD_FAILED;
    w->err = err;
    errno = saved;
    return err;
}

/* md_w_reject - refuse one piece of data; the writer goes on */
static int md_w_reject(MAILDROP_WRITER *w, const char *fmt, ...) MSG_FMT(2, 3);

static int md_w_reject(MAILDROP_WRITER *w, const char *fmt, ...)
{
    va_list ap;

    vstr_reset(w->why);
    va_start(ap, fmt);
    vstr_vsprintf_append(w->why, fmt, ap);
    va_end(ap);
    return MAILDROP_ERR_INVAL;
}

MAILDROP_WRITER *maildrop_writer_open(int fd, const char *name)
{
    MAILDROP_WRITER *w = mycalloc(1, sizeof(*w));

    w->fd = fd;
    w->state = MD_ENV;
    w->name = vstr_alloc(64);
    vstr_cpy(w->name, name ? name : "maildrop");
    w->why = vstr_alloc(128);
    vstr_set_limit(w->why, MD_WHY_MAX);
    w->buf = mymalloc(MD_WBUF_SIZE);
    memcpy(w->buf, MAILDROP_MAGIC, MAILDROP_MAGIC_LEN);
    md_put16(w->buf + 8, MAILDROP_VERSION);
    md_put16(w->buf + 10, 0);
    w->buf_len = MAILDROP_HEADER_LEN;
    return w;
}

void maildrop_writer_free(MAILDROP_WRITER *w)
{
    if (w == NULL)
        return;
    vstr_free(w->name);
    vstr_free(w->why);
    myfree(w->buf);
    myfree(w);
}

void maildrop_writer_set_size_limit(MAILDROP_WRITER *w, uint64_t limit)
{
    w->size_limit = limit;
}

uint64_t maildrop_writer_size(const MAILDROP_WRITER *w)
{
    return w->size;
}

size_t maildrop_writer_rcpt_count(const MAILDROP_WRITER *w)
{
    return w->rcpt_count;
}

const char *maildrop_writer_why(const MAILDROP_WRITER *w)
{
    return vstr_str(w->why);
}

int maildrop_writer_flush(MAILDROP_WRITER *w)
{
    if (w->state == MD_FAILED)
        return w->err;
    if (w->buf_len == 0)
        return 0;
    if (write_full(w->fd, w->buf, w->buf_len) < 0)
        return md_w_fail(w, MAILDROP_ERR_SYS, "write %s: %m", vstr_str(w->name));
    w->buf_len = 0;
    return 0;
}

/* md_w_record - append one record whose payload comes in two parts */
static int md_w_record(MAILDROP_WRITER *w, int type, const void *p1, size_t n1, const void *p2,
                       size_t n2)
{
    size_t len = n1 + n2;

    if (w->state == MD_FAILED)
        return w->err;
    if (len > MAILDROP_REC_MAX)
        msg_panic("md_w_record: type 0x%02x payload %zu too long", (unsigned)type, len);
    if (w->buf_len + MAILDROP_REC_HEADER_LEN + len > MD_WBUF_SIZE && maildrop_writer_flush(w) < 0)
        return w->err;
    unsigned char *p = w->buf + w->buf_len;

    p[0] = (unsigned char)type;
    md_put32(p + 1, (uint32_t)len);
    if (n1)
        memcpy(p + MAILDROP_REC_HEADER_LEN, p1, n1);
    if (n2)
        memcpy(p + MAILDROP_REC_HEADER_LEN + n1, p2, n2);
    w->buf_len += MAILDROP_REC_HEADER_LEN + len;
    w->records++;
    if (type != MAILDROP_REC_LINE && type != MAILDROP_REC_PART)
        w->env_bytes += len;
    return 0;
}

/* md_w_envelope - may an envelope singleton be written now */
static int md_w_envelope(MAILDROP_WRITER *w, int bit, const char *what)
{
    if (w->state == MD_FAILED)
        return w->err;
    if (w->state != MD_ENV)
        return md_w_reject(w, "%s after the content", what);
    if (w->seen & bit)
        return md_w_reject(w, "%s given twice", what);
    if (w->env_bytes > MAILDROP_ENVELOPE_MAX - MAILDROP_REC_MAX)
        return md_w_reject(w, "envelope too large");
    return 0;
}

int maildrop_writer_submitter(MAILDROP_WRITER *w, unsigned long uid, const char *login)
{
    unsigned char u[4];
    size_t len = strlen(login);

    if (w->state == MD_FAILED)
        return w->err;
    if (w->records != 0)
        return md_w_reject(w, "the submitter must be the first record");
    if (uid > UINT32_MAX || !maildrop_text_ok(login, len, MAILDROP_LOGIN_MAX))
        return md_w_reject(w, "malformed submitter");
    md_put32(u, (uint32_t)uid);
    return md_w_record(w, MAILDROP_REC_SUBMITTER, u, 4, login, len);
}

int maildrop_writer_flags(MAILDROP_WRITER *w, unsigned flags)
{
    unsigned char f[4];
    int err;

    if ((err = md_w_envelope(w, MD_SEEN_FLAGS, "flags")) != 0)
        return err;
    if (flags & ~(unsigned)MAILDROP_FLAG_MASK)
        return md_w_reject(w, "unknown flags 0x%x", flags);
    w->seen |= MD_SEEN_FLAGS;
    md_put32(f, (uint32_t)flags);
    return md_w_record(w, MAILDROP_REC_FLAGS, f, 4, NULL, 0);
}

int maildrop_writer_sender(MAILDROP_WRITER *w, const char *addr)
{
    size_t len = strlen(addr);
    int err;

    if ((err = md_w_envelope(w, MD_SEEN_SENDER, "sender")) != 0)
        return err;
    if (!maildrop_addr_ok(addr, len, 1))
        return md_w_reject(w, "malformed sender address");
    w->seen |= MD_SEEN_SENDER;
    return md_w_record(w, MAILDROP_REC_SENDER, addr, len, NULL, 0);
}

int maildrop_writer_full_name(MAILDROP_WRITER *w, const char *name)
{
    size_t len = strlen(name);
    int err;

    if ((err = md_w_envelope(w, MD_SEEN_FULL_NAME, "full name")) != 0)
        return err;
    if (!maildrop_text_ok(name, len, MAILDROP_FULL_NAME_MAX))
        return md_w_reject(w, "malformed full name");
    w->seen |= MD_SEEN_FULL_NAME;
    return md_w_record(w, MAILDROP_REC_FULL_NAME, name, len, NULL, 0);
}

int maildrop_writer_dsn(MAILDROP_WRITER *w, int ret, const char *envid)
{
    size_t len = envid ? strlen(envid) : 0;
    unsigned char r = (unsigned char)ret;
    int err;

    if ((err = md_w_envelope(w, MD_SEEN_DSN, "DSN")) != 0)
        return err;
    if (ret < QFILE_RET_NONE || ret > QFILE_RET_HDRS || !maildrop_envid_ok(envid ? envid : "", len))
        return md_w_reject(w, "malformed DSN parameters");
    w->seen |= MD_SEEN_DSN;
    return md_w_record(w, MAILDROP_REC_DSN, &r, 1, envid, len);
}

int maildrop_writer_body(MAILDROP_WRITER *w, int body)
{
    unsigned char b = (unsigned char)body;
    int err;

    if ((err = md_w_envelope(w, MD_SEEN_BODY, "body type")) != 0)
        return err;
    if (body != MAILDROP_BODY_7BIT && body != MAILDROP_BODY_8BITMIME)
        return md_w_reject(w, "malformed body type");
    w->seen |= MD_SEEN_BODY;
    return md_w_record(w, MAILDROP_REC_BODY, &b, 1, NULL, 0);
}

int maildrop_writer_rcpt(MAILDROP_WRITER *w, const char *addr, int notify)
{
    size_t len = strlen(addr);
    unsigned char n = (unsigned char)notify;

    if (w->state == MD_FAILED)
        return w->err;
    if (w->state != MD_ENV && w->state != MD_POST)
        return md_w_reject(w, "recipient inside the content");
    if (!maildrop_addr_ok(addr, len, 0) || !md_notify_ok(notify))
        return md_w_reject(w, "malformed recipient address");
    if (w->rcpt_count >= MAILDROP_RCPT_MAX)
        return md_w_reject(w, "more than %d recipients", MAILDROP_RCPT_MAX);
    if (w->env_bytes + 1 + len > MAILDROP_ENVELOPE_MAX)
        return md_w_reject(w, "envelope larger than %d bytes", MAILDROP_ENVELOPE_MAX);
    w->rcpt_count++;
    return md_w_record(w, MAILDROP_REC_RCPT, &n, 1, addr, len);
}

/* md_w_content - open the content section if still in the envelope */
static int md_w_content(MAILDROP_WRITER *w)
{
    if (w->state == MD_FAILED)
        return w->err;
    if (w->state == MD_ENV) {
        if (md_w_record(w, MAILDROP_REC_CONTENT, NULL, 0, NULL, 0) < 0)
            return w->err;
        w->state = MD_CONTENT;
    }
    if (w->state != MD_CONTENT)
        return md_w_reject(w, "content after its end");
    return 0;
}

int maildrop_writer_line(MAILDROP_WRITER *w, const char *data, size_t len, int eol)
{
    int err;

    if ((err = md_w_content(w)) != 0)
        return err;
    uint64_t size = w->size + len + (eol ? 1 : 0);

    /* Checked before anything is written: the limit is never passed. */
    if (size < w->size || (w->size_limit && size > w->size_limit))
        return md_w_fail(w, MAILDROP_ERR_LIMIT, "message size exceeds the limit of %llu bytes",
                         (unsigned long long)w->size_limit);
    while (len > MAILDROP_CHUNK_MAX) {
        if (md_w_record(w, MAILDROP_REC_PART, data, MAILDROP_CHUNK_MAX, NULL, 0) < 0)
            return w->err;
        data += MAILDROP_CHUNK_MAX;
        len -= MAILDROP_CHUNK_MAX;
    }
    if (eol) {
        if (md_w_record(w, MAILDROP_REC_LINE, data, len, NULL, 0) < 0)
            return w->err;
    } else if (len > 0) {
        if (md_w_record(w, MAILDROP_REC_PART, data, len, NULL, 0) < 0)
            return w->err;
    }
    w->size = size;
    return 0;
}

int maildrop_writer_end_content(MAILDROP_WRITER *w)
{
    int err;

    if (w->state == MD_POST)
        return 0;
    if ((err = md_w_content(w)) != 0)
        return err;
    if (md_w_record(w, MAILDROP_REC_CONTENT_END, NULL, 0, NULL, 0) < 0)
        return w->err;
    w->state = MD_POST;
    return 0;
}

int maildrop_writer_copy(MAILDROP_WRITER *w, const MAILDROP_REC *rec)
{
    switch (rec->type) {
    case MAILDROP_REC_FLAGS: return maildrop_writer_flags(w, rec->flags);
    case MAILDROP_REC_SENDER: return maildrop_writer_sender(w, rec->text);
    case MAILDROP_REC_FULL_NAME: return maildrop_writer_full_name(w, rec->text);
    case MAILDROP_REC_DSN: return maildrop_writer_dsn(w, rec->ret, rec->text);
    case MAILDROP_REC_BODY: return maildrop_writer_body(w, rec->body);
    case MAILDROP_REC_RCPT: return maildrop_writer_rcpt(w, rec->text, rec->notify);
    case MAILDROP_REC_CONTENT: return md_w_content(w);
    case MAILDROP_REC_LINE: return maildrop_writer_line(w, (const char *)rec->data, rec->len, 1);
    case MAILDROP_REC_PART: return maildrop_writer_line(w, (const char *)rec->data, rec->len, 0);
    case MAILDROP_REC_CONTENT_END: return maildrop_writer_end_content(w);
    case MAILDROP_REC_SUBMITTER:
    case MAILDROP_REC_END:
        return md_w_reject(w, "record 0x%02x is not copied", (unsigned)rec->type);
    default:
        if (rec->type < MAILDROP_REC_ANCILLARY || rec->type == 0xff || rec->len > MAILDROP_REC_MAX)
            return md_w_reject(w, "record 0x%02x cannot be copied", (unsigned)rec->type);
        if (w->state == MD_FAILED)
            return w->err;
        if (w->state == MD_DONE)
            return md_w_reject(w, "record after the end");
        return md_w_record(w, rec->type, rec->data, rec->len, NULL, 0);
    }
}

int maildrop_writer_finish(MAILDROP_WRITER *w)
{
    unsigned char e[12];

    if (w->state == MD_FAILED)
        return w->err;
    if (w->state == MD_DONE)
        return 0;
    if (maildrop_writer_end_content(w) < 0)
        return w->state == MD_FAILED ? w->err : MAILDROP_ERR_INVAL;
    md_put32(e, (uint32_t)w->rcpt_count);
    md_put64(e + 4, w->size);
    if (md_w_record(w, MAILDROP_REC_END, e, sizeof(e), NULL, 0) < 0 || maildrop_writer_flush(w) < 0)
        return w->err;
    w->state = MD_DONE;
    return 0;
}
