/*
 * local_copy - the copy of a message that local delivery writes: an mbox
 * "From sender date" line, Return-Path: and Delivered-To: on top (Postfix's
 * order), the content from the queue file with ">From " quoting for mbox
 * formats, and the Delivered-To: values of the header section, which detect
 * mail forwarding loops.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "local.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"

#define LOCAL_COPY_BUF 65536                 /* bytes buffered before the sink sees them */
#define LOCAL_FROM_LEN 5                     /* "From " */
#define LOCAL_HEADER_TOTAL_MAX (1024 * 1024) /* header bytes examined for Delivered-To */

typedef struct LOCAL_COPY {
    LOCAL_WRITE_FN fn;
    void *ctx;
    int flags;
    int err; /* errno of a failed write; 0 = none */
    size_t len;
    char pending[LOCAL_FROM_LEN]; /* start of a line, held until it can be quoted */
    size_t pending_len;
    int at_bol;   /* the next byte starts a line */
    int last_eol; /* the content so far ended with a line end */
    int any;      /* content bytes were written */
    char buf[LOCAL_COPY_BUF];
} LOCAL_COPY;

/* local_copy_flush - hand the buffer to the sink */
static int local_copy_flush(LOCAL_COPY *cp)
{
    if (cp->err)
        return -1;
    if (cp->len > 0 && cp->fn(cp->ctx, cp->buf, cp->len) < 0) {
        cp->err = errno ? errno : EIO;
        return -1;
    }
    cp->len = 0;
    return 0;
}

/* local_copy_put - buffer bytes */
static int local_copy_put(LOCAL_COPY *cp, const char *data, size_t len)
{
    while (len > 0) {
        if (cp->len == sizeof(cp->buf) && local_copy_flush(cp) < 0)
            return -1;
        size_t n = sizeof(cp->buf) - cp->len;

        if (n > len)
            n = len;
        memcpy(cp->buf + cp->len, data, n);
        cp->len += n;
        data += n;
        len -= n;
    }
    return 0;
}

/* local_copy_line_start - the held start of a line, quoted if it is "From " */
static int local_copy_line_start(LOCAL_COPY *cp)
{
    if ((cp->flags & LOCAL_COPY_QUOTE) && cp->pending_len == LOCAL_FROM_LEN &&
        memcmp(cp->pending, "From ", LOCAL_FROM_LEN) == 0 && local_copy_put(cp, ">", 1) < 0)
        return -1;
    if (local_copy_put(cp, cp->pending, cp->pending_len) < 0)
        return -1;
    cp->pending_len = 0;
    cp->at_bol = 0;
    return 0;
}

/*
 * local_copy_chunk - content callback. A line may reach us in several
 * pieces (records of at most QFILE_CHUNK_MAX bytes, and the writer may have
 * split a line anywhere), so the first bytes of each line are held until
 * there are enough of them to tell whether the line starts with "From ".
 */
static int local_copy_chunk(void *ctx, const char *data, size_t len, int flags)
{
    LOCAL_COPY *cp = ctx;

    if (len > 0)
        cp->any = 1;
    if (cp->at_bol && (cp->flags & LOCAL_COPY_QUOTE)) {
        size_t n = LOCAL_FROM_LEN - cp->pending_len;

        if (n > len)
            n = len;
        memcpy(cp->pending + cp->pending_len, data, n);
        cp->pending_len += n;
        data += n;
        len -= n;
        if (cp->pending_len < LOCAL_FROM_LEN && !(flags & QFILE_EOL))
            return 0;
        if (local_copy_line_start(cp) < 0)
            return 1;
    }
    cp->at_bol = 0;
    if (local_copy_put(cp, data, len) < 0)
        return 1;
    cp->last_eol = (flags & QFILE_EOL) != 0;
    if (cp->last_eol) {
        if (local_copy_put(cp, "\n", 1) < 0)
            return 1;
        cp->at_bol = 1;
        cp->any = 1;
    }
    return 0;
}

/* local_atext - an RFC 5322 atext character (8-bit bytes count: RFC 6532) */
static int local_atext(int ch)
{
    return isalnum(ch) || ch >= 0x80 || (ch && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL);
}

/* local_quote_address - address with its local part quoted when it is not a
   dot-atom (RFC 5322 section 3.4.1), as headers and From_ lines need it */
void local_quote_address(VSTR *out, const char *address)
{
    const char *at = strrchr(address, '@');
    size_t llen = at ? (size_t)(at - address) : strlen(address);
    int quote = llen == 0 || address[0] == '.' || address[llen - 1] == '.';

    for (size_t i = 0; i < llen && !quote; i++) {
        int ch = (unsigned char)address[i];

        if (ch == '.' ? address[i + 1] == '.' : !local_atext(ch))
            quote = 1;
    }
    vstr_reset(out);
    if (quote && llen > 0) {
        vstr_addch(out, '"');
        for (size_t i = 0; i < llen; i++) {
            if (address[i] == '"' || address[i] == '\\')
                vstr_addch(out, '\\');
            vstr_addch(out, address[i]);
        }
        vstr_addch(out, '"');
    } else {
        vstr_ncat(out, address, llen);
    }
    if (at)
        vstr_cat(out, at);
}

/* local_copy_from_line - "From sender  Www Mmm dd hh:mm:ss yyyy": the asctime
   date after two spaces, as Postfix and the traditional mail programs write it */
static void local_copy_from_line(VSTR *out, const char *sender)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    VSTR *quoted = vstr_alloc(64);

    localtime_r(&now, &tm);
    if (strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0)
        date[0] = 0;
    if (*sender)
        local_quote_address(quoted, sender);
    vstr_sprintf_append(out, "From %s  %s\n", *sender ? vstr_str(quoted) : "MAILER-DAEMON", date);
    vstr_free(quoted);
}

/* local_copy - write the delivered copy */
int local_copy(LOCAL_MSG *msg, const char *delivered, int flags, LOCAL_WRITE_FN fn, void *ctx,
               VSTR *why)
{
    LOCAL_COPY *cp = mycalloc(1, sizeof(*cp));
    VSTR *head = vstr_alloc(256);
    int rc;

    cp->fn = fn;
    cp->ctx = ctx;
    cp->flags = flags;
    cp->at_bol = 1;
    cp->last_eol = 1;
    if (flags & LOCAL_COPY_FROM_LINE)
        local_copy_from_line(head, msg->sender);
    if (flags & LOCAL_COPY_RETURN_PATH) {
        VSTR *quoted = vstr_alloc(64);

        if (*msg->sender)
            local_quote_address(quoted, msg->sender);
        vstr_sprintf_append(head, "Return-Path: <%s>\n", vstr_str(quoted));
        vstr_free(quoted);
    }
    if ((flags & LOCAL_COPY_DELIVERED) && delivered) {
        VSTR *quoted = vstr_alloc(64);

        local_quote_address(quoted, delivered);
        vstr_lower(quoted);
        vstr_sprintf_append(head, "Delivered-To: %s\n", vstr_str(quoted));
        vstr_free(quoted);
    }
    local_copy_put(cp, vstr_str(head), vstr_len(head));
    vstr_free(head);

    rc = qfile_content_walk(msg->q, local_copy_chunk, cp);
    if (rc > 0 || cp->err) {
        /* The walk stopped because the sink failed: a write error. */
        rc = -1;
    } else if (rc < 0) {
        vstr_sprintf(why, "queue file %s: %s", msg->queue_id, qfile_why(msg->q));
        rc = LOCAL_COPY_ERR_QUEUE;
    } else {
        /* A last line that had no line end still gets one, as Postfix does. */
        if (cp->pending_len > 0)
            local_copy_line_start(cp);
        if (cp->any && !cp->last_eol)
            local_copy_put(cp, "\n", 1);
        if (flags & LOCAL_COPY_BLANK)
            local_copy_put(cp, "\n", 1);
        rc = local_copy_flush(cp);
    }
    if (rc == -1) {
        int err = cp->err ? cp->err : EIO;

        vstr_sprintf(why, "%s", strerror(err));
        errno = err;
    }
    myfree(cp);
    return rc;
}

/* The header reader's state. */
typedef struct LOCAL_HDR {
    LOCAL_MSG *msg;
    VSTR *line;   /* the logical header line so far */
    int too_long; /* the logical line passed LOCAL_HEADER_LINE_MAX */
    size_t total; /* bytes examined */
} LOCAL_HDR;

/* local_hdr_done - one logical header line is complete */
static void local_hdr_done(LOCAL_HDR *h)
{
    static const char name[] = "delivered-to:";
    const char *text = vstr_str(h->line);

    if (!h->too_long && vstr_len(h->line) > sizeof(name) - 1 &&
        strncasecmp(text, name, sizeof(name) - 1) == 0 &&
        h->msg->delivered_to->argc < LOCAL_DELIVERED_MAX) {
        char *value = mystrdup(text + sizeof(name) - 1);
        char *v = trim(value);

        /* Folded lines keep their white space; it is not part of the address. */
        for (char *cp = v; *cp; cp++)
            if (*cp == '\t' || *cp == '\r')
                *cp = ' ';
        lowercase(v);
        argv_add(h->msg->delivered_to, v, (char *)0);
        myfree(value);
    }
    vstr_reset(h->line);
    h->too_long = 0;
}

/* local_hdr_chunk - content callback that stops at the end of the headers */
static int local_hdr_chunk(void *ctx, const char *data, size_t len, int flags)
{
    LOCAL_HDR *h = ctx;

    h->total += len + 1;
    if (h->total > LOCAL_HEADER_TOTAL_MAX)
        return 1;
    if (flags & QFILE_BOL) {
        /* A new physical line: empty ends the headers; white space continues. */
        if (len == 0 && (flags & QFILE_EOL)) {
            if (vstr_len(h->line) > 0)
                local_hdr_done(h);
            return 1;
        }
        if (len > 0 && (data[0] == ' ' || data[0] == '\t')) {
            /* continuation of the logical line */
        } else {
            if (vstr_len(h->line) > 0)
                local_hdr_done(h);
            /* Not a header line at all: the body starts (no empty line). */
            const char *colon = memchr(data, ':', len);

            if (colon == NULL && (flags & QFILE_EOL))
                return 1;
        }
    }
    if (!h->too_long && vstr_ncat(h->line, data, len) < 0)
        h->too_long = 1;
    return 0;
}

/* local_read_headers - collect the Delivered-To: values of the header section */
int local_read_headers(LOCAL_MSG *msg, VSTR *why)
{
    LOCAL_HDR h = {.msg = msg};
    int rc;

    if (msg->headers_read)
        return 0;
    h.line = vstr_alloc(256);
    vstr_set_limit(h.line, LOCAL_HEADER_LINE_MAX);
    rc = qfile_content_walk(msg->q, local_hdr_chunk, &h);
    if (rc == 0 && vstr_len(h.line) > 0)
        local_hdr_done(&h);
    vstr_free(h.line);
    if (rc < 0) {
        vstr_sprintf(why, "queue file %s: %s", msg->queue_id, qfile_why(msg->q));
        return -1;
    }
    msg->headers_read = 1;
    return 0;
}

/* local_has_delivered_to - our Delivered-To for address is already there */
int local_has_delivered_to(LOCAL_MSG *msg, const char *address)
{
    VSTR *quoted = vstr_alloc(64);
    int found = 0;

    /* Compared in the form we write it in. */
    local_quote_address(quoted, address);
    for (size_t i = 0; i < msg->delivered_to->argc && !found; i++)
        if (strcasecmp(msg->delivered_to->argv[i], vstr_str(quoted)) == 0)
            found = 1;
    vstr_free(quoted);
    return found;
}
