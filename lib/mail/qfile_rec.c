/*
 * qfile_rec - queue file encoding helpers, field checks and the record reader.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "mail/mail_queue.h"
#include "mail/qfile_rec.h"
#include "util/msg.h"
#include "util/mymalloc.h"

void qfile_put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

void qfile_put32(unsigned char *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

void qfile_put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

uint16_t qfile_get16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t qfile_get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

uint64_t qfile_get64(const unsigned char *p)
{
    return ((uint64_t)qfile_get32(p) << 32) | qfile_get32(p + 4);
}

/* qfile_type_max_len - the largest payload a known type may have */
size_t qfile_type_max_len(int type)
{
    switch (type) {
    case QFILE_REC_QUEUE_ID: return QUEUE_ID_LEN;
    case QFILE_REC_ARRIVAL: return 12;
    case QFILE_REC_CLASS: return 2;
    case QFILE_REC_SENDER: return QFILE_ADDR_MAX;
    case QFILE_REC_DSN: return 1 + QFILE_ENVID_MAX;
    case QFILE_REC_RCPT: return 2 + 2 + QFILE_ADDR_MAX + 2 + QFILE_ADDR_MAX + QFILE_ORCPT_MAX;
    case QFILE_REC_ATTR: return 1 + QFILE_ATTR_NAME_MAX + QFILE_ATTR_VALUE_MAX;
    case QFILE_REC_CONTENT: return 16;
    case QFILE_REC_LINE: return QFILE_CHUNK_MAX;
    case QFILE_REC_PART: return QFILE_CHUNK_MAX;
    case QFILE_REC_CONTENT_END: return 0;
    case QFILE_REC_COMMIT: return 4;
    case QFILE_REC_DEFER: return 4 + 8 + 8 + 1 + QFILE_DSN_STATUS_MAX + QFILE_REASON_MAX;
    case QFILE_REC_WARNED: return 8;
    default: return QFILE_REC_MAX; /* ancillary: only the general limit */
    }
}

/* qfile_type_known - a version-1 type */
int qfile_type_known(int type)
{
    return type > 0 && type < QFILE_REC_ANCILLARY && strchr("ITCSDRAMLPEZWY", type) != NULL;
}

/* qfile_type_ancillary - a type readers skip when they do not know it */
int qfile_type_ancillary(int type)
{
    return type >= QFILE_REC_ANCILLARY && type <= 0xFE;
}

/* qfile_addr_ok - address text without NUL or control characters */
int qfile_addr_ok(const char *s, size_t len, size_t max)
{
    if (len > max)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        /* 8-bit bytes stay allowed: SMTPUTF8 addresses are UTF-8 (RFC 6531). */
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

/* qfile_text_ok - one line of text: no NUL, CR or LF */
int qfile_text_ok(const char *s, size_t len, size_t max)
{
    if (len > max)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == 0 || s[i] == '\r' || s[i] == '\n')
            return 0;
    return 1;
}

/* qfile_attr_name_ok - attribute names are short identifiers */
int qfile_attr_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > QFILE_ATTR_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* qfile_notify_ok - NEVER stands alone (RFC 3461 section 4.1) */
int qfile_notify_ok(int notify)
{
    int all = QFILE_NOTIFY_SUCCESS | QFILE_NOTIFY_FAILURE | QFILE_NOTIFY_DELAY;

    if (notify & ~(all | QFILE_NOTIFY_NEVER))
        return 0;
    return !((notify & QFILE_NOTIFY_NEVER) && (notify & all));
}

/* qfile_status_ok - a valid recipient status byte */
int qfile_status_ok(int status)
{
    return status == QFILE_RCPT_PENDING || status == QFILE_RCPT_DEFERRED ||
           status == QFILE_RCPT_DONE || status == QFILE_RCPT_BOUNCED;
}

void qfile_rd_init(QFILE_RD *rd, int fd, off_t offset)
{
    rd->fd = fd;
    rd->buf = mymalloc(QFILE_RD_BUFSIZE);
    rd->buf_off = offset;
    rd->len = rd->pos = 0;
}

void qfile_rd_free(QFILE_RD *rd)
{
    myfree(rd->buf);
    rd->buf = NULL;
}

off_t qfile_rd_tell(const QFILE_RD *rd)
{
    return rd->buf_off + (off_t)rd->pos;
}

void qfile_rd_seek(QFILE_RD *rd, off_t offset)
{
    /* Stay inside the buffer when we can: content walks seek backwards. */
    if (offset >= rd->buf_off && offset <= rd->buf_off + (off_t)rd->len) {
        rd->pos = (size_t)(offset - rd->buf_off);
        return;
    }
    rd->buf_off = offset;
    rd->len = rd->pos = 0;
}

/* qfile_rd_fill - make need bytes available at pos; OK, TRUNC (fewer remain), ERR */
static int qfile_rd_fill(QFILE_RD *rd, size_t need, size_t *avail)
{
    if (need > QFILE_RD_BUFSIZE)
        msg_panic("qfile_rd_fill: %zu bytes do not fit the buffer", need);
    if (rd->len - rd->pos < need) {
        if (rd->pos > 0) {
            memmove(rd->buf, rd->buf + rd->pos, rd->len - rd->pos);
            rd->buf_off += (off_t)rd->pos;
            rd->len -= rd->pos;
            rd->pos = 0;
        }
        while (rd->len < need) {
            ssize_t n = pread(rd->fd, rd->buf + rd->len, QFILE_RD_BUFSIZE - rd->len,
                              rd->buf_off + (off_t)rd->len);

            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return QFILE_RD_ERR;
            if (n == 0)
                break;
            rd->len += (size_t)n;
        }
    }
    *avail = rd->len - rd->pos;
    return *avail >= need ? QFILE_RD_OK : QFILE_RD_TRUNC;
}

/* qfile_rd_head - the next record's type and length */
int qfile_rd_head(QFILE_RD *rd, int *type, size_t *len, off_t *rec_off)
{
    size_t avail;
    int r = qfile_rd_fill(rd, QFILE_REC_HEADER_LEN, &avail);

    *rec_off = qfile_rd_tell(rd);
    if (r == QFILE_RD_TRUNC)
        return avail == 0 ? QFILE_RD_EOF : QFILE_RD_TRUNC;
    if (r != QFILE_RD_OK)
        return r;
    *type = rd->buf[rd->pos];
    *len = qfile_get32(rd->buf + rd->pos + 1);
    rd->pos += QFILE_REC_HEADER_LEN;
    return QFILE_RD_OK;
}

/* qfile_rd_body - the payload of the record whose header was just read */
int qfile_rd_body(QFILE_RD *rd, size_t len, const unsigned char **payload)
{
    size_t avail;
    int r;

    if (len > QFILE_REC_MAX)
        msg_panic("qfile_rd_body: unchecked length %zu", len);
    if ((r = qfile_rd_fill(rd, len, &avail)) != QFILE_RD_OK)
        return r;
    *payload = rd->buf + rd->pos;
    rd->pos += len;
    return QFILE_RD_OK;
}

/* qfile_strerror - text for a result code */
const char *qfile_strerror(int err)
{
    switch (err) {
    case QFILE_OK: return "success";
    case QFILE_ERR_SYS: return "system error";
    case QFILE_ERR_INCOMPLETE: return "incomplete";
    case QFILE_ERR_CORRUPT: return "corrupt";
    case QFILE_ERR_FORMAT: return "not a queue file of a known version";
    case QFILE_ERR_LIMIT: return "limit exceeded";
    case QFILE_ERR_INVAL: return "invalid data or request";
    default: return "unknown error";
    }
}

/* qfile_class_queue - the queue a message of that class is committed to */
const char *qfile_class_queue(int msg_class)
{
    switch (msg_class) {
    case QFILE_CLASS_IMMEDIATE: return MAIL_QUEUE_IMMEDIATE;
    case QFILE_CLASS_BULK: return MAIL_QUEUE_BULK;
    default: msg_panic("qfile_class_queue: bad class %d", msg_class);
    }
}
