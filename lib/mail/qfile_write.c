/*
 * qfile_write - the queue file writer used by cleanup: create in incoming/,
 * stream envelope and content records, commit durably into the class queue.
 *
 * Memory stays bounded by one buffer of QFILE_WBUF_SIZE however large the
 * message is. A failure while writing is sticky: every later call returns
 * the same error, and commit removes the file instead of accepting it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/mail_queue.h"
#include "mail/qfile_rec.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"

#define QFILE_CREATE_TRIES 100 /* fresh ids to try before giving up */

/* Writer states, in the order a file is written. */
enum qfile_w_state {
    QFILE_W_ENVELOPE, /* before CONTENT */
    QFILE_W_CONTENT,  /* between CONTENT and CONTENT_END */
    QFILE_W_POST,     /* after CONTENT_END: post-content RCPT/ATTR */
    QFILE_W_DONE,     /* committed */
    QFILE_W_FAILED,   /* an error happened; the file will be removed */
};

struct QFILE_WRITER {
    int fd;
    enum qfile_w_state state;
    int err; /* the sticky error once FAILED */
    char id[QUEUE_ID_SIZE];
    VSTR *path; /* incoming/ID */
    VSTR *why;
    unsigned char *buf; /* QFILE_WBUF_SIZE */
    size_t buf_len;
    off_t flushed;                /* bytes written to the file so far */
    off_t arrival_off, class_off; /* payloads patched at commit */
    off_t content_off;            /* CONTENT payload, patched at commit */
    off_t content_end_off;        /* the CONTENT_END record */
    struct timeval arrival;
    int msg_class, priority;
    int have_sender, have_dsn;
    size_t rcpt_count, attr_count;
    uint64_t size, size_limit;
};

/* qfile_w_pos - the file offset the next record will have */
static off_t qfile_w_pos(const QFILE_WRITER *w)
{
    return w->flushed + (off_t)w->buf_len;
}

/* qfile_w_fail - make the writer fail for good, with a reason */
static int qfile_w_fail(QFILE_WRITER *w, int err, const char *fmt, ...) MSG_FMT(3, 4);

static int qfile_w_fail(QFILE_WRITER *w, int err, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    vstr_reset(w->why);
    va_start(ap, fmt);
    vstr_vsprintf_append(w->why, fmt, ap);
    va_end(ap);
    w->state = QFILE_W_FAILED;
    w->err = err;
    errno = saved;
    return err;
}

/* qfile_w_reject - refuse one piece of data; the writer goes on */
static int qfile_w_reject(QFILE_WRITER *w, int err, const char *fmt, ...) MSG_FMT(3, 4);

static int qfile_w_reject(QFILE_WRITER *w, int err, const char *fmt, ...)
{
    va_list ap;

    vstr_reset(w->why);
    va_start(ap, fmt);
    vstr_vsprintf_append(w->why, fmt, ap);
    va_end(ap);
    return err;
}

/* qfile_w_flush - write the buffer out */
static int qfile_w_flush(QFILE_WRITER *w)
{
    if (w->buf_len == 0)
        return 0;
    if (write_full(w->fd, w->buf, w->buf_len) < 0)
        return qfile_w_fail(w, QFILE_ERR_SYS, "write %s: %m", vstr_str(w->path));
    w->flushed += (off_t)w->buf_len;
    w->buf_len = 0;
    return 0;
}

/* qfile_w_record - append one record; its payload may be given in two parts */
static int qfile_w_record(QFILE_WRITER *w, int type, const void *p1, size_t n1, const void *p2,
                          size_t n2)
{
    size_t len = n1 + n2;

    if (len > qfile_type_max_len(type) || QFILE_REC_HEADER_LEN + len > QFILE_WBUF_SIZE)
        msg_panic("qfile_w_record: type %c payload %zu too long", type, len);
    if (w->buf_len + QFILE_REC_HEADER_LEN + len > QFILE_WBUF_SIZE && qfile_w_flush(w) < 0)
        return w->err;
    unsigned char *p = w->buf + w->buf_len;

    p[0] = (unsigned char)type;
    qfile_put32(p + 1, (uint32_t)len);
    if (n1)
        memcpy(p + QFILE_REC_HEADER_LEN, p1, n1);
    if (n2)
        memcpy(p + QFILE_REC_HEADER_LEN + n1, p2, n2);
    w->buf_len += QFILE_REC_HEADER_LEN + len;
    return 0;
}

/* qfile_w_usable - the writer accepts more data; panic on calls after commit */
static int qfile_w_usable(QFILE_WRITER *w, const char *func)
{
    if (w->state == QFILE_W_DONE)
        msg_panic("%s: queue file %s already committed", func, w->id);
    return w->state == QFILE_W_FAILED ? w->err : 0;
}

/* qfile_w_timeval - ARRIVAL payload */
static void qfile_w_timeval(unsigned char *p, const struct timeval *tv)
{
    qfile_put64(p, (uint64_t)tv->tv_sec);
    qfile_put32(p + 8, (uint32_t)tv->tv_usec);
}

/* qfile_w_class - CLASS payload */
static void qfile_w_class(unsigned char *p, int msg_class, int priority)
{
    p[0] = (unsigned char)msg_class;
    p[1] = (unsigned char)(signed char)priority;
}

/* qfile_w_open - create incoming/ID exclusively with a fresh id */
static int qfile_w_open(QFILE_WRITER *w)
{
    struct timeval tv;

    for (int tries = 0; tries < QFILE_CREATE_TRIES; tries++) {
        queue_id_new(w->id, &tv);
        /* O_EXCL makes the id unique in incoming/; it must not clash with a
           message in another queue either (clock set back, reused pid), or
           the commit would fail after all the work. */
        if (mail_queue_exists_any(w->id, MAIL_QUEUE_INCOMING))
            continue;
        mail_queue_path(w->path, MAIL_QUEUE_INCOMING, w->id);
        w->fd = open(vstr_str(w->path), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        /* A hash subdirectory is made when first needed; then the same id again. */
        if (w->fd < 0 && errno == ENOENT && mail_queue_hashed(MAIL_QUEUE_INCOMING) &&
            mail_queue_make_subdirs(MAIL_QUEUE_INCOMING, w->id) == 0)
            w->fd =
                open(vstr_str(w->path), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (w->fd >= 0) {
            w->arrival = tv;
            return 0;
        }
        if (errno != EEXIST)
            return qfile_w_fail(w, QFILE_ERR_SYS, "create %s: %m", vstr_str(w->path));
    }
    errno = EEXIST;
    return qfile_w_fail(w, QFILE_ERR_SYS, "no unused queue id after %d tries", QFILE_CREATE_TRIES);
}

/* qfile_writer_create - a new queue file in incoming/ */
QFILE_WRITER *qfile_writer_create(VSTR *why)
{
    QFILE_WRITER *w = mycalloc(1, sizeof(*w));
    unsigned char hdr[QFILE_HEADER_LEN], tv[12], cls[2];

    w->fd = -1;
    w->path = vstr_alloc(256);
    w->why = vstr_alloc(128);
    w->buf = mymalloc(QFILE_WBUF_SIZE);
    w->state = QFILE_W_ENVELOPE;
    if (qfile_w_open(w) < 0)
        goto fail;

    /* The lock tells qfile_purge_incoming that a live writer owns the file. */
    if (flock(w->fd, LOCK_EX | LOCK_NB) < 0) {
        qfile_w_fail(w, QFILE_ERR_SYS, "lock %s: %m", vstr_str(w->path));
        goto fail;
    }
    memcpy(hdr, QFILE_MAGIC, QFILE_MAGIC_LEN);
    qfile_put16(hdr + QFILE_MAGIC_LEN, QFILE_VERSION);
    qfile_put16(hdr + QFILE_MAGIC_LEN + 2, 0);
    memcpy(w->buf, hdr, sizeof(hdr));
    w->buf_len = sizeof(hdr);
    qfile_w_record(w, QFILE_REC_QUEUE_ID, w->id, QUEUE_ID_LEN, NULL, 0);

    /* ARRIVAL and CLASS have fixed sizes and are rewritten at commit, so that
       cleanup can decide the class after it has seen the headers. */
    w->arrival_off = qfile_w_pos(w) + QFILE_REC_HEADER_LEN;
    qfile_w_timeval(tv, &w->arrival);
    qfile_w_record(w, QFILE_REC_ARRIVAL, tv, sizeof(tv), NULL, 0);
    w->class_off = qfile_w_pos(w) + QFILE_REC_HEADER_LEN;
    qfile_w_class(cls, w->msg_class, w->priority);
    qfile_w_record(w, QFILE_REC_CLASS, cls, sizeof(cls), NULL, 0);
    return w;

fail:
    if (why)
        vstr_cpy(why, vstr_str(w->why));
    qfile_writer_free(w);
    return NULL;
}

/* qfile_writer_id - the queue id */
const char *qfile_writer_id(const QFILE_WRITER *w)
{
    return w->id;
}

/* qfile_writer_why - text for the last error */
const char *qfile_writer_why(const QFILE_WRITER *w)
{
    return vstr_str(w->why);
}

/* qfile_writer_set_size_limit - message_size_limit (0 = none) */
void qfile_writer_set_size_limit(QFILE_WRITER *w, uint64_t limit)
{
    w->size_limit = limit;
}

/* qfile_writer_size - content bytes so far */
uint64_t qfile_writer_size(const QFILE_WRITER *w)
{
    return w->size;
}

/* qfile_writer_set_arrival - replace the arrival time */
int qfile_writer_set_arrival(QFILE_WRITER *w, const struct timeval *when)
{
    int err;

    if ((err = qfile_w_usable(w, "qfile_writer_set_arrival")) != 0)
        return err;
    if (when->tv_sec < 0 || when->tv_usec < 0 || when->tv_usec >= 1000000)
        return qfile_w_reject(w, QFILE_ERR_INVAL, "bad arrival time");
    w->arrival = *when;
    return 0;
}

/* qfile_writer_set_class - class and priority */
int qfile_writer_set_class(QFILE_WRITER *w, int msg_class, int priority)
{
    int err;

    if ((err = qfile_w_usable(w, "qfile_writer_set_class")) != 0)
        return err;
    if (msg_class != QFILE_CLASS_IMMEDIATE && msg_class != QFILE_CLASS_BULK)
        return qfile_w_reject(w, QFILE_ERR_INVAL, "bad message class %d", msg_class);
    if (priority < QFILE_PRIORITY_MIN || priority > QFILE_PRIORITY_MAX)
        return qfile_w_reject(w, QFILE_ERR_INVAL, "priority %d is not in -9..9", priority);
    w->msg_class = msg_class;
    w->priority = priority;
    return 0;
}

/* qfile_writer_sender - the envelope sender, once, before the content */
int qfile_writer_sender(QFILE_WRITER *w, const char *sender)
{
    size_t len = strlen(sender);
    int err;

    if ((err = qfile_w_usable(w, "qfile_writer_sender")) != 0)
        return err;
    if (w->state != QFILE_W_ENVELOPE || w->have_sender)
        msg_panic("qfile_writer_sender: %s: sender after content or twice", w->id);
    if (!qfile_addr_ok(sender, len, QFILE_ADDR_MAX))
        return qfile_w_reject(w, QFILE_ERR_INVAL,
                              "sender address too long or has control "
                              "characters");
    if ((err = qfile_w_record(w, QFILE_REC_SENDER, sender, len, NULL, 0)) != 0)
        return err;
    w->have_sender = 1;
    return 0;
}

/* qfile_writer_dsn - RET and ENVID, at most once, before the content */
int qfile_writer_dsn(QFILE_WRITER *w, int ret, const char *envid)
{
    size_t len = envid ? strlen(envid) : 0;
    unsigned char r;
    int err;

    if ((err = qfile_w_usable(w, "qfile_writer_dsn")) != 0)
        return err;
    if (w->state != QFILE_W_ENVELOPE || w->have_dsn)
        msg_panic("qfile_writer_dsn: %s: DSN data after content or twice", w->id);
    if (ret != QFILE_RET_NONE && ret != QFILE_RET_FULL && ret != QFILE_RET_HDRS)
        return qfile_w_reject(w, QFILE_ERR_INVAL, "bad DSN RET value %d", ret);
    if (!qfile_addr_ok(envid ? envid : "", len, QFILE_ENVID_MAX))
        return qfile_w_reject(w, QFILE_ERR_INVAL,
                              "DSN ENVID too long or has control "
                              "characters");
    r = (unsigned char)ret;
    if ((err = qfile_w_record(w, QFILE_REC_DSN, &r, 1, envid, len)) != 0)
        return err;
    w->have_dsn = 1;
    return 0;
}

/* qfile_w_begin_content - write CONTENT (placeholders patched at commit) */
static int qfile_w_begin_content(QFILE_WRITER *w)
{
    unsigned char zero[16] = {0};
    int err;

    if (!w->have_sender)
        msg_panic("qfile_writer: %s: content before the sender", w->id);
    w->content_off = qfile_w_pos(w) + QFILE_REC_HEADER_LEN;
    if ((err = qfile_w_record(w, QFILE_REC_CONTENT, zero, sizeof(zero), NULL, 0)) != 0)
        return err;
    w->state = QFILE_W_CONTENT;
    return 0;
}

/* qfile_writer_end_content - write CONTENT_END; later envelope records are post-content */
int qfile_writer_end_content(QFILE_WRITER *w)
{
    int err;

    if ((err = qfile_w_usable(w, "qfile_writer_end_content")) != 0)
        return err;
    if (w->state == QFILE_W_ENVELOPE && (err = qfile_w_begin_content(w)) != 0)
        return err;
    if (w->state != QFILE_W_CONTENT)
        return 0;
    w->content_end_off = qfile_w_pos(w);
    if ((err = qfile_w_record(w, QFILE_REC_CONTENT_END, NULL, 0, NULL, 0)) != 0)
        return err;
    w->state = QFILE_W_POST;
    return 0;
}

/* qfile_w_envelope_ok - recipients and attributes go before or after the content */
static int qfile_w_envelope_ok(QFILE_WRITER *w, const char *func)
{
    int err;

    if ((err = qfile_w_usable(w, func)) != 0)
        return err;
    if (w->state == QFILE_W_CONTENT)
        return qfile_writer_end_content(w);
    return 0;
}

/* qfile_writer_rcpt - one recipient */
int qfile_writer_rcpt(QFILE_WRITER *w, const char *addr, const char *orig_rcpt, const char *orcpt,
                      int notify)
{
    size_t alen = strlen(addr), olen, rlen;
    unsigned char head[4], mid[2];
    VSTR *rec;
    int err;

    if (orig_rcpt == NULL)
        orig_rcpt = "";
    if (orcpt == NULL)
        orcpt = "";
    olen = strlen(orig_rcpt);
    rlen = strlen(orcpt);
    if ((err = qfile_w_envelope_ok(w, "qfile_writer_rcpt")) != 0)
        return err;
    if (alen == 0 || !qfile_addr_ok(addr, alen, QFILE_ADDR_MAX) ||
        !qfile_addr_ok(orig_rcpt, olen, QFILE_ADDR_MAX))
        return qfile_w_reject(w, QFILE_ERR_INVAL,
                              "recipient address empty, too long or with "
                              "control characters");
    if (!qfile_addr_ok(orcpt, rlen, QFILE_ORCPT_MAX))
        return qfile_w_reject(w, QFILE_ERR_INVAL,
                              "DSN ORCPT too long or has control "
                              "characters");
    if (!qfile_notify_ok(notify))
        return qfile_w_reject(w, QFILE_ERR_INVAL, "bad DSN NOTIFY combination 0x%x", notify);
    if (w->rcpt_count >= QFILE_RCPT_MAX)
        return qfile_w_reject(w, QFILE_ERR_LIMIT, "more than %d recipients", QFILE_RCPT_MAX);

    head[0] = QFILE_RCPT_PENDING;
    head[1] = (unsigned char)notify;
    qfile_put16(head + 2, (uint16_t)alen);
    qfile_put16(mid, (uint16_t)olen);
    rec = vstr_alloc(sizeof(head) + alen + sizeof(mid) + olen + rlen);
    vstr_ncat(rec, head, sizeof(head));
    vstr_ncat(rec, addr, alen);
    vstr_ncat(rec, mid, sizeof(mid));
    vstr_ncat(rec, orig_rcpt, olen);
    err = qfile_w_record(w, QFILE_REC_RCPT, vstr_str(rec), vstr_len(rec), orcpt, rlen);
    vstr_free(rec);
    if (err == 0)
        w->rcpt_count++;
    return err;
}

/* qfile_writer_attr - one named attribute */
int qfile_writer_attr(QFILE_WRITER *w, const char *name, const char *value)
{
    size_t nlen = strlen(name), vlen = strlen(value);
    unsigned char head[1 + QFILE_ATTR_NAME_MAX];
    int err;

    if ((err = qfile_w_envelope_ok(w, "qfile_writer_attr")) != 0)
        return err;
    if (!qfile_attr_name_ok(name, nlen))
        return qfile_w_reject(w, QFILE_ERR_INVAL, "bad attribute name");
    if (!qfile_text_ok(value, vlen, QFILE_ATTR_VALUE_MAX))
        return qfile_w_reject(w, QFILE_ERR_INVAL, "attribute %s: value too long or has CR/LF",
                              name);
    if (w->attr_count >= QFILE_ATTR_MAX)
        return qfile_w_reject(w, QFILE_ERR_LIMIT, "more than %d attributes", QFILE_ATTR_MAX);
    head[0] = (unsigned char)nlen;
    memcpy(head + 1, name, nlen);
    if ((err = qfile_w_record(w, QFILE_REC_ATTR, head, 1 + nlen, value, vlen)) == 0)
        w->attr_count++;
    return err;
}

/* qfile_writer_line - content data, then a line end if eol */
int qfile_writer_line(QFILE_WRITER *w, const char *data, size_t len, int eol)
{
    uint64_t add = (uint64_t)len + (eol ? 1 : 0);
    int err;

    if ((err = qfile_w_usable(w, "qfile_writer_line")) != 0)
        return err;
    if (w->state == QFILE_W_ENVELOPE && (err = qfile_w_begin_content(w)) != 0)
        return err;
    if (w->state != QFILE_W_CONTENT)
        msg_panic("qfile_writer_line: %s: content after its end", w->id);
    if (add > UINT64_MAX - w->size || (w->size_limit > 0 && w->size + add > w->size_limit))
        return qfile_w_fail(w, QFILE_ERR_LIMIT, "message size exceeds the limit of %llu bytes",
                            (unsigned long long)w->size_limit);
    w->size += add;

    /* Long lines become PART records; the last piece carries the line end. */
    while (len > QFILE_CHUNK_MAX || (len > 0 && !eol)) {
        size_t n = len > QFILE_CHUNK_MAX ? QFILE_CHUNK_MAX : len;

        if ((err = qfile_w_record(w, QFILE_REC_PART, data, n, NULL, 0)) != 0)
            return err;
        data += n;
        len -= n;
    }
    if (eol)
        return qfile_w_record(w, QFILE_REC_LINE, data, len, NULL, 0);
    return 0;
}

/* qfile_writer_text - raw content bytes, split into lines at LF */
int qfile_writer_text(QFILE_WRITER *w, const char *data, size_t len)
{
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;
        int err = qfile_writer_line(w, data, n, nl != NULL);

        if (err != 0)
            return err;
        if (nl == NULL)
            break;
        data += n + 1;
        len -= n + 1;
    }
    return 0;
}

/* qfile_w_pwrite - write len bytes at offset */
static int qfile_w_pwrite(QFILE_WRITER *w, const void *buf, size_t len, off_t offset)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = pwrite(w->fd, p, len, offset);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return qfile_w_fail(w, QFILE_ERR_SYS, "write %s: %m", vstr_str(w->path));
        p += n;
        len -= (size_t)n;
        offset += n;
    }
    return 0;
}

/* qfile_w_patch - rewrite len bytes at offset: in the buffer while they are
   still there (a small message is then written with one write()), else in
   the file */
static int qfile_w_patch(QFILE_WRITER *w, const void *data, size_t len, off_t offset)
{
    if (offset >= w->flushed) {
        if ((size_t)(offset - w->flushed) + len > w->buf_len)
            msg_panic("qfile_w_patch: %s: offset %lld beyond the data", w->id, (long long)offset);
        memcpy(w->buf + (offset - w->flushed), data, len);
        return 0;
    }
    return qfile_w_pwrite(w, data, len, offset);
}

/* qfile_w_finish - the last records, the patches, and fsync of the file */
static int qfile_w_finish(QFILE_WRITER *w)
{
    unsigned char cnt[4], tv[12], cls[2], content[16];
    int err;

    if ((err = qfile_writer_end_content(w)) != 0)
        return err;
    if (w->rcpt_count == 0)
        return qfile_w_fail(w, QFILE_ERR_INVAL, "no recipients");
    qfile_put32(cnt, (uint32_t)w->rcpt_count);
    if ((err = qfile_w_record(w, QFILE_REC_COMMIT, cnt, sizeof(cnt), NULL, 0)) != 0)
        return err;
    qfile_w_timeval(tv, &w->arrival);
    qfile_w_class(cls, w->msg_class, w->priority);
    qfile_put64(content, w->size);
    qfile_put64(content + 8, (uint64_t)w->content_end_off);
    /* Patches that fall inside the buffer go out with the last write. */
    if ((err = qfile_w_patch(w, tv, sizeof(tv), w->arrival_off)) != 0 ||
        (err = qfile_w_patch(w, cls, sizeof(cls), w->class_off)) != 0 ||
        (err = qfile_w_patch(w, content, sizeof(content), w->content_off)) != 0 ||
        (err = qfile_w_flush(w)) != 0)
        return err;
    if (fsync(w->fd) < 0)
        return qfile_w_fail(w, QFILE_ERR_SYS, "fsync %s: %m", vstr_str(w->path));
    return 0;
}

/* qfile_writer_commit - make the message durable in its class queue */
int qfile_writer_commit(QFILE_WRITER *w, char *id_out)
{
    const char *queue = qfile_class_queue(w->msg_class);
    VSTR *dst = vstr_alloc(256);
    int err;

    if ((err = qfile_w_usable(w, "qfile_writer_commit")) != 0 || (err = qfile_w_finish(w)) != 0)
        goto fail;
    mail_queue_path(dst, queue, w->id);
    if (mail_queue_rename(vstr_str(w->path), vstr_str(dst)) < 0) {
        if (errno != ENOENT || !mail_queue_hashed(queue) ||
            mail_queue_make_subdirs(queue, w->id) < 0 ||
            mail_queue_rename(vstr_str(w->path), vstr_str(dst)) < 0) {
            err = qfile_w_fail(w, QFILE_ERR_SYS, "rename %s to %s: %m", vstr_str(w->path),
                               vstr_str(dst));
            goto fail;
        }
    }

    /*
     * Without this fsync a crash could undo the rename after the client was
     * told "queued": the file would be back in incoming/ and purged there.
     * If it fails the message is not accepted, so take it back out of the
     * queue before qmgr acts on it (at worst it is delivered and the client
     * sends it again: a duplicate, never a loss).
     */
    if (fsync_parent(vstr_str(dst)) < 0) {
        err = qfile_w_fail(w, QFILE_ERR_SYS, "fsync directory of %s: %m", vstr_str(dst));
        (void)unlink(vstr_str(dst));
        goto fail;
    }
    vstr_cpy(w->path, vstr_str(dst));
    vstr_free(dst);
    w->state = QFILE_W_DONE;
    (void)close(w->fd); /* after fsync, close has nothing left to report */
    w->fd = -1;
    if (id_out)
        memcpy(id_out, w->id, QUEUE_ID_SIZE);
    return 0;

fail:
    vstr_free(dst);
    if (w->fd >= 0) {
        (void)unlink(vstr_str(w->path));
        (void)close(w->fd);
        w->fd = -1;
    }
    return err;
}

/* qfile_writer_free - release; remove an uncommitted file */
void qfile_writer_free(QFILE_WRITER *w)
{
    if (w == NULL)
        return;
    if (w->fd >= 0) {
        if (w->state != QFILE_W_DONE)
            (void)unlink(vstr_str(w->path));
        (void)close(w->fd);
    }
    vstr_free(w->path);
    vstr_free(w->why);
    myfree(w->buf);
    myfree(w);
}
