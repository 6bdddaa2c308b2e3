/*
 * showq_proto - the queue listing protocol: printable text, the server's
 * streaming writer and the client's message decoder (showq_proto.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "mail/showq_proto.h"
#include "util/msg.h"
#include "util/mymalloc.h"

/* showq_utf8_len - length of the well-formed UTF-8 character at p (n bytes
   left), 0 when the bytes there are not one (RFC 3629 section 4: no
   overlong forms, no surrogates, nothing above U+10FFFF); *cp gets the code
   point */
static size_t showq_utf8_len(const unsigned char *p, size_t n, unsigned *cp)
{
    unsigned c = p[0];
    size_t len;
    unsigned min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, min = 0x80, *cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, min = 0x800, *cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, min = 0x10000, *cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (p[i] & 0x3F);
    }
    if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF))
        return 0;
    return len;
}

/* showq_printable - text made safe to show */
void showq_printable(VSTR *out, const char *text)
{
    const unsigned char *p = (const unsigned char *)(text ? text : "");
    size_t n = strlen((const char *)p);

    vstr_reset(out);
    while (n > 0) {
        unsigned cp = 0;
        size_t len = showq_utf8_len(p, n, &cp);

        /* C0 controls, DEL and C1 controls (U+0080..U+009F: some terminals
           act on CSI) become one replacement each; so does each byte that
           is not part of a well-formed character. */
        if (len == 0 || cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
            if (vstr_len(out) + 1 > SHOWQ_TEXT_MAX)
                break;
            vstr_addch(out, SHOWQ_REPLACEMENT);
            len = len ? len : 1;
            p += len, n -= len;
            continue;
        }
        if (vstr_len(out) + len > SHOWQ_TEXT_MAX)
            break;
        vstr_ncat(out, p, len);
        p += len, n -= len;
    }
}

/* ------------------------------------------------------------------ */
/* Server.                                                              */
/* ------------------------------------------------------------------ */

struct SHOWQ_WRITER {
    ATTR_STREAM *s;
    VSTR *id;     /* the queue file being sent */
    size_t pairs; /* pairs in the message being built */
    int open;     /* a message is being built */
};

SHOWQ_WRITER *showq_writer_new(ATTR_STREAM *s)
{
    SHOWQ_WRITER *w = mycalloc(1, sizeof(*w));

    w->s = s;
    w->id = vstr_alloc(32);
    return w;
}

void showq_writer_free(SHOWQ_WRITER *w)
{
    if (w == NULL)
        return;
    vstr_free(w->id);
    myfree(w);
}

/* showq_writer_message - start a queue file's message */
int showq_writer_message(SHOWQ_WRITER *w, const char *queue_name, const char *queue_id,
                         unsigned long long arrival_time, unsigned long long message_size,
                         int forced_expire, const char *sender)
{
    if (w->open)
        msg_panic("showq_writer_message: %s is not done", vstr_str(w->id));
    vstr_cpy(w->id, queue_id);
    w->pairs = 0;
    if (attr_print(w->s, ATTR_FLAG_MORE, ATTR_STR(SHOWQ_ATTR_KIND, SHOWQ_KIND_MESSAGE),
                   ATTR_STR(SHOWQ_ATTR_QUEUE, queue_name), ATTR_STR(SHOWQ_ATTR_QUEUE_ID, queue_id),
                   ATTR_UNUM(SHOWQ_ATTR_TIME, arrival_time),
                   ATTR_UNUM(SHOWQ_ATTR_SIZE, message_size),
                   ATTR_UNUM(SHOWQ_ATTR_FORCED_EXPIRE, forced_expire ? 1 : 0),
                   ATTR_STR(SHOWQ_ATTR_SENDER, sender), ATTR_END) < 0)
        return -1;
    w->open = 1;
    return 0;
}

/* showq_writer_rcpt - one recipient; a full message is sent first */
int showq_writer_rcpt(SHOWQ_WRITER *w, const char *address, const char *reason)
{
    if (!w->open)
        msg_panic("showq_writer_rcpt: no message started");
    if (w->pairs >= SHOWQ_RCPT_CHUNK) {
        w->open = 0;
        if (attr_print(w->s, 0, ATTR_UNUM(SHOWQ_ATTR_MORE, 1), ATTR_END) < 0)
            return -1;
        if (attr_print(w->s, ATTR_FLAG_MORE, ATTR_STR(SHOWQ_ATTR_KIND, SHOWQ_KIND_RECIPIENTS),
                       ATTR_STR(SHOWQ_ATTR_QUEUE_ID, vstr_str(w->id)), ATTR_END) < 0)
            return -1;
        w->open = 1;
        w->pairs = 0;
    }
    if (attr_print(w->s, ATTR_FLAG_MORE, ATTR_STR(SHOWQ_ATTR_RECIPIENT, address),
                   ATTR_STR(SHOWQ_ATTR_REASON, reason ? reason : ""), ATTR_END) < 0) {
        w->open = 0;
        return -1;
    }
    w->pairs++;
    return 0;
}

/* showq_writer_done - end the queue file's last message */
int showq_writer_done(SHOWQ_WRITER *w)
{
    if (!w->open)
        msg_panic("showq_writer_done: no message started");
    w->open = 0;
    return attr_print(w->s, 0, ATTR_UNUM(SHOWQ_ATTR_MORE, 0), ATTR_END);
}

/* showq_writer_end - the final message */
int showq_writer_end(SHOWQ_WRITER *w, int status, const char *reason, unsigned long long count)
{
    if (w->open)
        msg_panic("showq_writer_end: %s is not done", vstr_str(w->id));
    return attr_print(w->s, 0, ATTR_STR(SHOWQ_ATTR_KIND, SHOWQ_KIND_END),
                      ATTR_UNUM(SHOWQ_ATTR_STATUS, (unsigned long long)status),
                      ATTR_STR(SHOWQ_ATTR_REASON, reason ? reason : ""),
                      ATTR_UNUM(SHOWQ_ATTR_COUNT, count), ATTR_END);
}

/* ------------------------------------------------------------------ */
/* Client.                                                              */
/* ------------------------------------------------------------------ */

/* showq_bad - a reason for a malformed message; returns -1 */
static int showq_bad(VSTR *why, const char *fmt, ...) MSG_FMT(2, 3);

static int showq_bad(VSTR *why, const char *fmt, ...)
{
    va_list ap;

    vstr_cpy(why, "malformed showq server response: ");
    va_start(ap, fmt);
    vstr_vsprintf_append(why, fmt, ap);
    va_end(ap);
    errno = EBADMSG;
    return -1;
}

/* showq_get_str - the one string attribute name, or NULL with why */
static const char *showq_get_str(const ATTR_MSG *raw, const char *name, size_t max, VSTR *why)
{
    const char *s = attr_msg_get_str(raw, name);

    if (s == NULL) {
        showq_bad(why, "attribute \"%s\" is %s", name,
                  errno == ENOENT ? "missing" : "repeated or not a string");
        return NULL;
    }
    if (max > 0 && strlen(s) > max) {
        showq_bad(why, "attribute \"%s\" is too long", name);
        return NULL;
    }
    return s;
}

/* showq_get_unum - the one number attribute name; 0 or -1 with why */
static int showq_get_unum(const ATTR_MSG *raw, const char *name, unsigned long long max,
                          unsigned long long *out, VSTR *why)
{
    if (attr_msg_get_unum(raw, name, out) < 0)
        return showq_bad(why, "attribute \"%s\" is %s", name,
                         errno == ENOENT ? "missing" : "repeated or not a number");
    if (*out > max)
        return showq_bad(why, "attribute \"%s\" is out of range", name);
    return 0;
}

/* showq_get_pairs - the (recipient, reason) pairs, in message order */
static int showq_get_pairs(SHOWQ_MSG *m, VSTR *why)
{
    const ATTR_MSG *raw = m->raw;
    int have_reason = 1;

    m->rcpt_count = 0;
    for (size_t i = 0; i < raw->count; i++) {
        const ATTR_VAL *v = raw->val + i;

        if (strcmp(v->name, SHOWQ_ATTR_RECIPIENT) == 0) {
            if (!have_reason)
                return showq_bad(why, "recipient without a reason");
            if (m->rcpt_count >= SHOWQ_RCPT_CHUNK)
                return showq_bad(why, "more than %d recipients in one message", SHOWQ_RCPT_CHUNK);
            if (v->type != ATTR_TYPE_STR || v->len == 0)
                return showq_bad(why, "recipient is not a non-empty string");
            m->rcpt[m->rcpt_count++] = v->data;
            have_reason = 0;
        } else if (strcmp(v->name, SHOWQ_ATTR_REASON) == 0) {
            if (have_reason)
                return showq_bad(why, "reason without a recipient");
            if (v->type != ATTR_TYPE_STR)
                return showq_bad(why, "reason is not a string");
            m->reason[m->rcpt_count - 1] = v->data;
            have_reason = 1;
        }
    }
    if (!have_reason)
        return showq_bad(why, "recipient without a reason");
    return 0;
}

/* showq_msg_decode - interpret one message */
int showq_msg_decode(ATTR_MSG *raw, SHOWQ_MSG *m, VSTR *why)
{
    const char *kind;
    unsigned long long num;

    memset(m, 0, sizeof(*m));
    m->raw = raw;
    m->status_reason = "";
    if ((kind = showq_get_str(raw, SHOWQ_ATTR_KIND, SHOWQ_NAME_MAX, why)) == NULL)
        goto fail;
    if (strcmp(kind, SHOWQ_KIND_END) == 0) {
        m->kind = SHOWQ_MSG_END;
        if (showq_get_unum(raw, SHOWQ_ATTR_STATUS, 255, &num, why) < 0)
            goto fail;
        m->status = (int)num;
        if (attr_msg_get_str(raw, SHOWQ_ATTR_REASON) != NULL)
            m->status_reason = attr_msg_get_str(raw, SHOWQ_ATTR_REASON);
        if (attr_msg_get_unum(raw, SHOWQ_ATTR_COUNT, &m->count) < 0)
            m->count = 0;
        return 0;
    }
    if (strcmp(kind, SHOWQ_KIND_MESSAGE) == 0) {
        m->kind = SHOWQ_MSG_MESSAGE;
        if ((m->queue_name = showq_get_str(raw, SHOWQ_ATTR_QUEUE, SHOWQ_NAME_MAX, why)) == NULL)
            goto fail;
        if (*m->queue_name == 0) {
            showq_bad(why, "empty queue name");
            goto fail;
        }
        if ((m->sender = showq_get_str(raw, SHOWQ_ATTR_SENDER, SHOWQ_TEXT_MAX, why)) == NULL ||
            showq_get_unum(raw, SHOWQ_ATTR_TIME, (unsigned long long)INT64_MAX, &m->arrival_time,
                           why) < 0 ||
            showq_get_unum(raw, SHOWQ_ATTR_SIZE, (unsigned long long)INT64_MAX, &m->message_size,
                           why) < 0 ||
            showq_get_unum(raw, SHOWQ_ATTR_FORCED_EXPIRE, 1, &num, why) < 0)
            goto fail;
        m->forced_expire = (int)num;
    } else if (strcmp(kind, SHOWQ_KIND_RECIPIENTS) == 0) {
        m->kind = SHOWQ_MSG_RECIPIENTS;
    } else {
        showq_bad(why, "unknown kind \"%s\"", kind);
        goto fail;
    }
    if ((m->queue_id = showq_get_str(raw, SHOWQ_ATTR_QUEUE_ID, SHOWQ_NAME_MAX, why)) == NULL)
        goto fail;
    if (*m->queue_id == 0) {
        showq_bad(why, "empty queue id");
        goto fail;
    }
    if (showq_get_unum(raw, SHOWQ_ATTR_MORE, 1, &num, why) < 0)
        goto fail;
    m->more = (int)num;
    if (showq_get_pairs(m, why) < 0)
        goto fail;
    return 0;

fail:
    showq_msg_free(m);
    return -1;
}

/* showq_msg_read - the next message from the server */
int showq_msg_read(ATTR_STREAM *s, SHOWQ_MSG *m, VSTR *why)
{
    ATTR_MSG *raw;

    memset(m, 0, sizeof(*m));
    if ((raw = attr_msg_read(s, ATTR_FLAG_PRINTABLE)) == NULL) {
        int saved = errno;

        if (saved == ENODATA)
            vstr_cpy(why, "malformed showq server response: the connection ended early");
        else
            vstr_sprintf(why, "malformed showq server response: %s", attr_stream_why(s));
        errno = saved;
        return -1;
    }
    return showq_msg_decode(raw, m, why);
}

/* showq_msg_free - release what m holds */
void showq_msg_free(SHOWQ_MSG *m)
{
    attr_msg_free(m->raw);
    memset(m, 0, sizeof(*m));
}
