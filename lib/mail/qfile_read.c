/*
 * qfile_read - open and validate a queue file, hold its envelope, stream its
 * content.
 *
 * Validation is strict: every record's type must be known (or ancillary),
 * allowed where it stands, and no longer than its type permits, which is
 * checked before its payload is read; every field is decoded with bounds.
 * A file that ends early is "incomplete" rather than corrupt, because that
 * is what a writer at work or a crash leaves behind. Nothing in the file
 * decides how much memory is allocated beyond the format's limits.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/mail_queue.h"
#include "mail/qfile_rec.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"

#define QFILE_TIME_MAX ((uint64_t)INT64_MAX) /* time_t is 64 bits on Linux */

/* qfile_err - set q's reason and return err */
static int qfile_err(QFILE *q, int err, const char *fmt, ...) MSG_FMT(3, 4);

static int qfile_err(QFILE *q, int err, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    vstr_sprintf(q->why, "%s: ", vstr_str(q->path));
    va_start(ap, fmt);
    vstr_vsprintf_append(q->why, fmt, ap);
    va_end(ap);
    errno = saved;
    return err;
}

/* qfile_dup - payload bytes as a new C string */
static char *qfile_dup(const unsigned char *p, size_t len)
{
    return mystrndup((const char *)p, len);
}

/* What qfile_next leaves in *type when it could not read a record header. */
#define QFILE_NEXT_EOF (-1)   /* clean end of file at a record boundary */
#define QFILE_NEXT_TRUNC (-2) /* end of file inside a record header, or a read error */

/* qfile_next - the next record, skipping ancillary ones; checks the type and
   the length against the type before reading the payload. */
static int qfile_next(QFILE *q, QFILE_RD *rd, int *type, const unsigned char **p, size_t *len,
                      off_t *off)
{
    for (;;) {
        int r = qfile_rd_head(rd, type, len, off);

        if (r != QFILE_RD_OK) {
            *type = r == QFILE_RD_EOF ? QFILE_NEXT_EOF : QFILE_NEXT_TRUNC;
            if (r == QFILE_RD_ERR)
                return qfile_err(q, QFILE_ERR_SYS, "read: %m");
            return qfile_err(q, QFILE_ERR_INCOMPLETE, "file ends at offset %lld", (long long)*off);
        }
        if (!qfile_type_known(*type) && !qfile_type_ancillary(*type))
            return qfile_err(q, QFILE_ERR_CORRUPT, "bad record type 0x%02x at offset %lld", *type,
                             (long long)*off);
        if (*len > QFILE_REC_MAX || *len > qfile_type_max_len(*type))
            return qfile_err(q, QFILE_ERR_CORRUPT,
                             "record type 0x%02x at offset %lld: length %zu over the limit", *type,
                             (long long)*off, *len);
        r = qfile_rd_body(rd, *len, p);
        if (r == QFILE_RD_ERR)
            return qfile_err(q, QFILE_ERR_SYS, "read: %m");
        if (r != QFILE_RD_OK)
            return qfile_err(q, QFILE_ERR_INCOMPLETE, "record at offset %lld is cut short",
                             (long long)*off);
        if (!qfile_type_known(*type))
            continue; /* ancillary, from a later writer */
        return 0;
    }
}

/* qfile_bad - a record whose contents break the format */
static int qfile_bad(QFILE *q, int type, off_t off, const char *what)
{
    return qfile_err(q, QFILE_ERR_CORRUPT, "record '%c' at offset %lld: %s", type, (long long)off,
                     what);
}

/* qfile_get_time - u64 seconds into *t; 0 or -1 out of range */
static int qfile_get_time(const unsigned char *p, time_t *t)
{
    uint64_t v = qfile_get64(p);

    if (v > QFILE_TIME_MAX)
        return -1;
    *t = (time_t)v;
    return 0;
}

/* qfile_parse_rcpt - a RCPT record into the recipient list */
static int qfile_parse_rcpt(QFILE *q, const unsigned char *p, size_t len, off_t off, size_t *cap)
{
    size_t alen, olen, rlen;
    QFILE_RCPT *r;

    if (len < 6)
        return qfile_bad(q, 'R', off, "too short");
    if (!qfile_status_ok(p[0]))
        return qfile_bad(q, 'R', off, "bad status");
    if (!qfile_notify_ok(p[1]))
        return qfile_bad(q, 'R', off, "bad NOTIFY bits");
    alen = qfile_get16(p + 2);
    if (alen == 0 || alen > QFILE_ADDR_MAX || 4 + alen + 2 > len)
        return qfile_bad(q, 'R', off, "bad address length");
    olen = qfile_get16(p + 4 + alen);
    if (olen > QFILE_ADDR_MAX || 6 + alen + olen > len)
        return qfile_bad(q, 'R', off, "bad original recipient length");
    rlen = len - 6 - alen - olen;
    if (!qfile_addr_ok((const char *)p + 4, alen, QFILE_ADDR_MAX) ||
        !qfile_addr_ok((const char *)p + 6 + alen, olen, QFILE_ADDR_MAX) ||
        !qfile_addr_ok((const char *)p + 6 + alen + olen, rlen, QFILE_ORCPT_MAX))
        return qfile_bad(q, 'R', off, "bad characters in an address");
    if (q->rcpt_count >= QFILE_RCPT_MAX)
        return qfile_bad(q, 'R', off, "too many recipients");
    if (q->rcpt_count == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        q->rcpt = myrealloc(q->rcpt, size_mul(*cap, sizeof(*q->rcpt)));
    }
    r = q->rcpt + q->rcpt_count++;
    memset(r, 0, sizeof(*r));
    r->status = p[0];
    r->notify = p[1];
    r->address = qfile_dup(p + 4, alen);
    r->orig_rcpt = qfile_dup(p + 6 + alen, olen);
    r->orcpt = qfile_dup(p + 6 + alen + olen, rlen);
    r->offset = off;
    r->status_offset = off + QFILE_REC_HEADER_LEN;
    return 0;
}

/* qfile_parse_attr - an ATTR record into the attribute list */
static int qfile_parse_attr(QFILE *q, const unsigned char *p, size_t len, off_t off, size_t *cap)
{
    size_t nlen;
    QFILE_ATTR *a;

    if (len < 2 || (nlen = p[0]) == 0 || 1 + nlen > len)
        return qfile_bad(q, 'A', off, "bad name length");
    if (!qfile_attr_name_ok((const char *)p + 1, nlen))
        return qfile_bad(q, 'A', off, "bad name");
    if (!qfile_text_ok((const char *)p + 1 + nlen, len - 1 - nlen, QFILE_ATTR_VALUE_MAX))
        return qfile_bad(q, 'A', off, "bad value");
    if (q->attr_count >= QFILE_ATTR_MAX)
        return qfile_bad(q, 'A', off, "too many attributes");
    if (q->attr_count == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        q->attr = myrealloc(q->attr, size_mul(*cap, sizeof(*q->attr)));
    }
    a = q->attr + q->attr_count++;
    a->name = qfile_dup(p + 1, nlen);
    a->value = qfile_dup(p + 1 + nlen, len - 1 - nlen);
    return 0;
}

/* qfile_parse_defer - apply a DEFER record to its recipient (latest wins) */
static int qfile_parse_defer(QFILE *q, const unsigned char *p, size_t len, off_t off)
{
    size_t dlen, idx;
    time_t when, next;
    QFILE_RCPT *r;

    if (len < 21)
        return qfile_bad(q, 'W', off, "too short");
    idx = qfile_get32(p);
    if (idx >= q->rcpt_count)
        return qfile_bad(q, 'W', off, "no such recipient");
    if (qfile_get_time(p + 4, &when) < 0 || qfile_get_time(p + 12, &next) < 0)
        return qfile_bad(q, 'W', off, "time out of range");
    dlen = p[20];
    if (dlen > QFILE_DSN_STATUS_MAX || 21 + dlen > len ||
        !qfile_addr_ok((const char *)p + 21, dlen, QFILE_DSN_STATUS_MAX) ||
        !qfile_text_ok((const char *)p + 21 + dlen, len - 21 - dlen, QFILE_REASON_MAX))
        return qfile_bad(q, 'W', off, "bad status or reason text");
    r = q->rcpt + idx;
    r->defer_count++;
    r->defer_time = when;
    r->next_attempt = next;
    myfree(r->dsn_status);
    myfree(r->reason);
    r->dsn_status = qfile_dup(p + 21, dlen);
    r->reason = qfile_dup(p + 21 + dlen, len - 21 - dlen);
    return 0;
}

/* Which once-only envelope records were seen. */
#define QFILE_SEEN_ARRIVAL (1 << 0)
#define QFILE_SEEN_CLASS (1 << 1)
#define QFILE_SEEN_SENDER (1 << 2)
#define QFILE_SEEN_DSN (1 << 3)

/* qfile_parse_envelope - QUEUE_ID through CONTENT */
static int qfile_parse_envelope(QFILE *q, QFILE_RD *rd, const char *want_id, size_t *rcap,
                                size_t *acap)
{
    const unsigned char *p;
    size_t len;
    off_t off;
    int type, err, seen = 0;

    if ((err = qfile_next(q, rd, &type, &p, &len, &off)) != 0)
        return err;
    if (type != QFILE_REC_QUEUE_ID || len != QUEUE_ID_LEN)
        return qfile_err(q, QFILE_ERR_CORRUPT, "first record is not the queue id");
    memcpy(q->id, p, QUEUE_ID_LEN);
    q->id[QUEUE_ID_LEN] = 0;
    if (!queue_id_valid(q->id))
        return qfile_err(q, QFILE_ERR_CORRUPT, "bad queue id in file");
    if (want_id && strcmp(want_id, q->id) != 0)
        return qfile_err(q, QFILE_ERR_CORRUPT, "file holds queue id %s", q->id);

    for (;;) {
        int bit;

        if ((err = qfile_next(q, rd, &type, &p, &len, &off)) != 0)
            return err;
        bit = type == QFILE_REC_ARRIVAL  ? QFILE_SEEN_ARRIVAL
              : type == QFILE_REC_CLASS  ? QFILE_SEEN_CLASS
              : type == QFILE_REC_SENDER ? QFILE_SEEN_SENDER
              : type == QFILE_REC_DSN    ? QFILE_SEEN_DSN
                                         : 0;
        if (bit & seen)
            return qfile_bad(q, type, off, "repeated");
        seen |= bit;
        switch (type) {
        case QFILE_REC_ARRIVAL:
            if (len != 12 || qfile_get_time(p, &q->arrival.tv_sec) < 0 ||
                qfile_get32(p + 8) >= 1000000)
                return qfile_bad(q, type, off, "bad time");
            q->arrival.tv_usec = (suseconds_t)qfile_get32(p + 8);
            break;
        case QFILE_REC_CLASS:
            if (len != 2)
                return qfile_bad(q, type, off, "bad length");
            q->msg_class = p[0];
            q->priority = (signed char)p[1];
            if ((q->msg_class != QFILE_CLASS_IMMEDIATE && q->msg_class != QFILE_CLASS_BULK) ||
                q->priority < QFILE_PRIORITY_MIN || q->priority > QFILE_PRIORITY_MAX)
                return qfile_bad(q, type, off, "bad class or priority");
            break;
        case QFILE_REC_SENDER:
            if (!qfile_addr_ok((const char *)p, len, QFILE_ADDR_MAX))
                return qfile_bad(q, type, off, "bad characters in the sender");
            q->sender = qfile_dup(p, len);
            break;
        case QFILE_REC_DSN:
            if (len < 1 || p[0] > QFILE_RET_HDRS ||
                !qfile_addr_ok((const char *)p + 1, len - 1, QFILE_ENVID_MAX))
                return qfile_bad(q, type, off, "bad RET or ENVID");
            q->dsn_ret = p[0];
            q->dsn_envid = qfile_dup(p + 1, len - 1);
            break;
        case QFILE_REC_RCPT:
            if ((err = qfile_parse_rcpt(q, p, len, off, rcap)) != 0)
                return err;
            break;
        case QFILE_REC_ATTR:
            if ((err = qfile_parse_attr(q, p, len, off, acap)) != 0)
                return err;
            break;
        case QFILE_REC_CONTENT:
            if ((seen & (QFILE_SEEN_ARRIVAL | QFILE_SEEN_CLASS | QFILE_SEEN_SENDER)) !=
                (QFILE_SEEN_ARRIVAL | QFILE_SEEN_CLASS | QFILE_SEEN_SENDER))
                return qfile_bad(q, type, off, "envelope lacks arrival, class or sender");
            if (len != 16)
                return qfile_bad(q, type, off, "bad length");
            q->content_size = qfile_get64(p);
            q->content_offset = qfile_rd_tell(rd);
            uint64_t end = qfile_get64(p + 8);

            /* Zero: the writer has not committed (or died before it did). */
            if (end == 0)
                return qfile_err(q, QFILE_ERR_INCOMPLETE, "content never finished");
            if (end < (uint64_t)q->content_offset || end > (uint64_t)INT64_MAX)
                return qfile_bad(q, type, off, "bad content end offset");
            q->content_end = (off_t)end;
            return 0;
        default: return qfile_bad(q, type, off, "not allowed in the envelope");
        }
    }
}

/* qfile_walk - the content records from content_offset to CONTENT_END; fn may be NULL */
static int qfile_walk(QFILE *q, QFILE_CONTENT_FN fn, void *ctx)
{
    QFILE_RD rd;
    const unsigned char *p;
    size_t len;
    off_t off;
    uint64_t size = 0;
    int type, err, bol = 1;

    qfile_rd_init(&rd, q->fd, q->content_offset);
    for (;;) {
        if ((err = qfile_next(q, &rd, &type, &p, &len, &off)) != 0)
            break;
        if (off > q->content_end) {
            err = qfile_bad(q, type, off, "content runs past its end");
            break;
        }
        if (type == QFILE_REC_CONTENT_END) {
            if (off != q->content_end)
                err = qfile_bad(q, type, off, "not where CONTENT says");
            else if (size != q->content_size)
                err = qfile_bad(q, type, off, "content size differs from CONTENT");
            break;
        }
        if (type != QFILE_REC_LINE && type != QFILE_REC_PART) {
            err = qfile_bad(q, type, off, "not allowed in the content");
            break;
        }
        /* An empty PART would let a line start look like a continuation. */
        if (type == QFILE_REC_PART && len == 0) {
            err = qfile_bad(q, type, off, "empty");
            break;
        }
        int flags = (bol ? QFILE_BOL : 0) | (type == QFILE_REC_LINE ? QFILE_EOL : 0);

        size += len + (type == QFILE_REC_LINE);
        bol = type == QFILE_REC_LINE;
        if (fn && (err = fn(ctx, (const char *)p, len, flags)) != 0) {
            if (err < 0)
                msg_panic("qfile_content_walk: callback returned %d", err);
            break;
        }
    }
    qfile_rd_free(&rd);
    return err;
}

/* qfile_parse_rest - CONTENT_END, post-content records, COMMIT, appended records */
static int qfile_parse_rest(QFILE *q, QFILE_RD *rd, size_t *rcap, size_t *acap)
{
    const unsigned char *p;
    size_t len;
    off_t off;
    int type, err;

    if (q->flags & QFILE_OPEN_VERIFY) {
        if ((err = qfile_walk(q, NULL, NULL)) != 0)
            return err;
    }
    qfile_rd_seek(rd, q->content_end);
    if ((err = qfile_next(q, rd, &type, &p, &len, &off)) != 0)
        return err;
    if (type != QFILE_REC_CONTENT_END || off != q->content_end)
        return qfile_err(q, QFILE_ERR_CORRUPT, "no content end at offset %lld",
                         (long long)q->content_end);

    /* Post-content envelope records, up to COMMIT. */
    for (;;) {
        if ((err = qfile_next(q, rd, &type, &p, &len, &off)) != 0)
            return err;
        if (type == QFILE_REC_RCPT)
            err = qfile_parse_rcpt(q, p, len, off, rcap);
        else if (type == QFILE_REC_ATTR)
            err = qfile_parse_attr(q, p, len, off, acap);
        else if (type == QFILE_REC_COMMIT)
            break;
        else
            err = qfile_bad(q, type, off, "not allowed after the content");
        if (err != 0)
            return err;
    }
    if (len != 4 || qfile_get32(p) != q->rcpt_count || q->rcpt_count == 0)
        return qfile_bad(q, type, off, "recipient count does not match");
    q->valid_end = qfile_rd_tell(rd);

    /*
     * Appended records. A record cut short, or a zero type byte where a file
     * system zero-filled an interrupted append, is a damaged tail: ignored
     * here and cut off by the next append. Everything else must be valid.
     */
    for (;;) {
        err = qfile_next(q, rd, &type, &p, &len, &off);
        if (err == QFILE_ERR_INCOMPLETE && type == QFILE_NEXT_EOF)
            return 0;
        if (err == QFILE_ERR_INCOMPLETE || (err == QFILE_ERR_CORRUPT && type == 0)) {
            q->tail_damaged = 1;
            msg_warn("%s: ignoring damaged appended record at offset %lld", q->id,
                     (long long)q->valid_end);
            return 0;
        }
        if (err != 0)
            return err;
        switch (type) {
        case QFILE_REC_DEFER: err = qfile_parse_defer(q, p, len, off); break;
        case QFILE_REC_WARNED:
            if (len != 8 || qfile_get_time(p, &q->delay_warned_time) < 0)
                err = qfile_bad(q, type, off, "bad time");
            q->delay_warned = 1;
            break;
        default: err = qfile_bad(q, type, off, "not allowed after COMMIT"); break;
        }
        if (err != 0)
            return err;
        q->valid_end = qfile_rd_tell(rd);
    }
}

/* qfile_parse - the whole file structure */
static int qfile_parse(QFILE *q, const char *want_id)
{
    unsigned char hdr[QFILE_HEADER_LEN];
    ssize_t n;
    size_t got, rcap = 0, acap = 0;
    QFILE_RD rd;
    int err;

    for (got = 0; got < sizeof(hdr); got += (size_t)n) {
        n = pread(q->fd, hdr + got, sizeof(hdr) - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            n = 0;
        else if (n < 0)
            return qfile_err(q, QFILE_ERR_SYS, "read: %m");
        else if (n == 0)
            break;
    }
    if (memcmp(hdr, QFILE_MAGIC, got < QFILE_MAGIC_LEN ? got : QFILE_MAGIC_LEN) != 0)
        return qfile_err(q, QFILE_ERR_FORMAT, "not a queue file (bad magic)");
    if (got < sizeof(hdr))
        return qfile_err(q, QFILE_ERR_INCOMPLETE, "file ends inside the header");
    if (qfile_get16(hdr + QFILE_MAGIC_LEN) != QFILE_VERSION)
        return qfile_err(q, QFILE_ERR_FORMAT, "unsupported format version %u",
                         qfile_get16(hdr + QFILE_MAGIC_LEN));
    if (qfile_get16(hdr + QFILE_MAGIC_LEN + 2) != 0)
        return qfile_err(q, QFILE_ERR_FORMAT, "unsupported header flags 0x%04x",
                         qfile_get16(hdr + QFILE_MAGIC_LEN + 2));
    qfile_rd_init(&rd, q->fd, QFILE_HEADER_LEN);
    err = qfile_parse_envelope(q, &rd, want_id, &rcap, &acap);
    if (err == 0)
        err = qfile_parse_rest(q, &rd, &rcap, &acap);
    qfile_rd_free(&rd);
    return err;
}

/* qfile_alloc - an empty handle */
static QFILE *qfile_alloc(const char *queue_name, int flags)
{
    QFILE *q = mycalloc(1, sizeof(*q));

    q->fd = -1;
    q->flags = flags;
    q->queue = queue_name ? mystrdup(queue_name) : NULL;
    q->path = vstr_alloc(256);
    q->why = vstr_alloc(128);
    q->sender = NULL;
    q->dsn_envid = NULL;
    return q;
}

/* qfile_open_common - open q->path and parse it */
static int qfile_open_common(QFILE *q, const char *want_id, QFILE **qp, VSTR *why)
{
    int mode = (q->flags & QFILE_OPEN_UPDATE) ? O_RDWR : O_RDONLY;
    int err;

    if ((q->fd = open(vstr_str(q->path), mode | O_CLOEXEC | O_NOFOLLOW)) < 0)
        err = qfile_err(q, QFILE_ERR_SYS, "open: %m");
    else
        err = qfile_parse(q, want_id);
    if (err != 0) {
        int saved = errno;

        if (why)
            vstr_cpy(why, vstr_str(q->why));
        qfile_close(q);
        errno = saved;
        return err;
    }
    if (q->dsn_envid == NULL)
        q->dsn_envid = mystrdup("");
    *qp = q;
    return 0;
}

/* qfile_open - open and parse queue_name/id */
int qfile_open(const char *queue_name, const char *id, int flags, QFILE **qp, VSTR *why)
{
    QFILE *q;

    *qp = NULL;
    /* Ids may come from users (postsuper, postqueue -i): check, never panic. */
    if (!mail_queue_name_ok(queue_name) || !queue_id_valid(id)) {
        if (why)
            vstr_sprintf(why, "bad queue name or queue id");
        return QFILE_ERR_INVAL;
    }
    q = qfile_alloc(queue_name, flags);
    mail_queue_path(q->path, queue_name, id);
    return qfile_open_common(q, id, qp, why);
}

/* qfile_open_path - open and parse a file by path */
int qfile_open_path(const char *path, const char *id, int flags, QFILE **qp, VSTR *why)
{
    QFILE *q = qfile_alloc(NULL, flags);

    *qp = NULL;
    vstr_cpy(q->path, path);
    return qfile_open_common(q, id, qp, why);
}

/* qfile_close - release everything */
void qfile_close(QFILE *q)
{
    if (q == NULL)
        return;
    if (q->fd >= 0)
        (void)close(q->fd);
    for (size_t i = 0; i < q->rcpt_count; i++) {
        myfree(q->rcpt[i].address);
        myfree(q->rcpt[i].orig_rcpt);
        myfree(q->rcpt[i].orcpt);
        myfree(q->rcpt[i].dsn_status);
        myfree(q->rcpt[i].reason);
    }
    myfree(q->rcpt);
    for (size_t i = 0; i < q->attr_count; i++) {
        myfree(q->attr[i].name);
        myfree(q->attr[i].value);
    }
    myfree(q->attr);
    myfree(q->sender);
    myfree(q->dsn_envid);
    myfree(q->queue);
    vstr_free(q->path);
    vstr_free(q->why);
    myfree(q);
}

/* qfile_why - text for the last error */
const char *qfile_why(const QFILE *q)
{
    return vstr_str(q->why);
}

/* qfile_attr - the last value of an attribute */
const char *qfile_attr(const QFILE *q, const char *name)
{
    for (size_t i = q->attr_count; i > 0; i--)
        if (strcmp(q->attr[i - 1].name, name) == 0)
            return q->attr[i - 1].value;
    return NULL;
}

/* qfile_rcpt_final - delivered or bounced */
static int qfile_rcpt_final(const QFILE_RCPT *r)
{
    return r->status == QFILE_RCPT_DONE || r->status == QFILE_RCPT_BOUNCED;
}

/* qfile_pending - recipients not yet final */
size_t qfile_pending(const QFILE *q)
{
    size_t n = 0;

    for (size_t i = 0; i < q->rcpt_count; i++)
        n += !qfile_rcpt_final(q->rcpt + i);
    return n;
}

/* qfile_next_attempt - earliest retry time among recipients not yet final */
time_t qfile_next_attempt(const QFILE *q)
{
    time_t next = 0;
    int any = 0;

    for (size_t i = 0; i < q->rcpt_count; i++) {
        const QFILE_RCPT *r = q->rcpt + i;

        if (qfile_rcpt_final(r))
            continue;
        if (r->defer_count == 0)
            return 0;
        if (!any || r->next_attempt < next)
            next = r->next_attempt;
        any = 1;
    }
    return next;
}

/* qfile_content_walk - stream the content to a callback */
int qfile_content_walk(QFILE *q, QFILE_CONTENT_FN fn, void *ctx)
{
    return qfile_walk(q, fn, ctx);
}

typedef struct QFILE_OUT {
    int fd;
    int flags;
    int err; /* write failed: errno saved here */
    size_t len;
    char buf[QFILE_WBUF_SIZE];
} QFILE_OUT;

/* qfile_out_put - buffer bytes for the descriptor */
static int qfile_out_put(QFILE_OUT *out, const char *data, size_t len)
{
    while (len > 0) {
        if (out->len == sizeof(out->buf)) {
            if (write_full(out->fd, out->buf, out->len) < 0) {
                out->err = errno;
                return 1;
            }
            out->len = 0;
        }
        size_t n = sizeof(out->buf) - out->len;

        if (n > len)
            n = len;
        memcpy(out->buf + out->len, data, n);
        out->len += n;
        data += n;
        len -= n;
    }
    return 0;
}

/* qfile_out_chunk - content callback for qfile_content_to_fd */
static int qfile_out_chunk(void *ctx, const char *data, size_t len, int flags)
{
    QFILE_OUT *out = ctx;

    if ((out->flags & QFILE_OUT_DOTSTUFF) && (flags & QFILE_BOL) && len > 0 && data[0] == '.' &&
        qfile_out_put(out, ".", 1))
        return 1;
    if (qfile_out_put(out, data, len))
        return 1;
    if (flags & QFILE_EOL)
        return qfile_out_put(out, (out->flags & QFILE_OUT_CRLF) ? "\r\n" : "\n",
                             (out->flags & QFILE_OUT_CRLF) ? 2 : 1);
    return 0;
}

/* qfile_content_to_fd - write the content to a descriptor */
int qfile_content_to_fd(QFILE *q, int fd, int flags)
{
    QFILE_OUT *out = mycalloc(1, sizeof(*out));
    int err;

    out->fd = fd;
    out->flags = flags;
    err = qfile_walk(q, qfile_out_chunk, out);
    if (err == 0 && out->len > 0 && write_full(fd, out->buf, out->len) < 0)
        out->err = errno;
    if (err > 0 || out->err) {
        errno = out->err;
        err = qfile_err(q, QFILE_ERR_SYS, "write content: %m");
    }
    myfree(out);
    return err;
}
