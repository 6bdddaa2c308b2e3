/*
 * cleanup_message - the message content: header processing while it
 * streams into the queue file. Memory stays bounded by one header field
 * (header_size_limit) whatever the size of the message.
 *
 * What happens to the content, in order:
 *   - without CLEANUP_FLAG_HAS_RECEIVED, a Received: header is put first
 *     ("by $myhostname ($mail_name[, from userid N]) id ID; date");
 *   - stray CR characters become spaces (cleanup_replace_stray_cr_lf; the
 *     client already turned every line end into LF, so any CR left could
 *     only be used to smuggle a line end past a later hop), except for
 *     BODY=BINARYMIME, whose bytes are never changed;
 *   - primary header fields (hdr_parse) are inspected: Received: counts
 *     hops (hopcount_limit), Message-ID is logged, Precedence: bulk, list
 *     and junk make the message bulk, Content-Transfer-Encoding: 8bit or
 *     binary sets the encoding (detect_8bit_encoding_header), To/Cc/Bcc
 *     give recipients for CLEANUP_FLAG_EXTRACT_RCPT; fields named in
 *     message_drop_headers (and Bcc with CLEANUP_FLAG_REMOVE_BCC) are not
 *     written; a field over header_size_limit is cut there (Postfix
 *     discards the excess too);
 *   - at the end of the header section, with CLEANUP_FLAG_MISSING_HEADERS
 *     (or always_add_missing_headers), missing (Resent-)Message-Id, Date
 *     and From are added after the last field; when the section ended with
 *     a line that is not a header field, an empty line is put before that
 *     line, as Postfix does, so that readers see it as body;
 *   - the body is copied unchanged.
 * Rejections: a NUL byte in a header field (550 5.6.0), more header fields
 * than header_count_limit (552 5.3.4), hopcount_limit Received: headers
 * (554 5.4.0), more content than message_size_limit (552 5.3.4).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "mail/cleanup_proto.h"
#include "mail/hdr_addr.h"
#include "mail/mail_date.h"
#include "mail/smtp_addr.h"
#include "util/msg.h"
#include "util/mymalloc.h"

#define CLEANUP_LOG_VALUE_MAX 1000 /* bytes of a header value in a log line */
#define CLEANUP_LOG_NAME_MAX 100   /* bytes of a header name in a log line */
#define CLEANUP_RESENT_PREFIX "resent-"

/* cleanup_out - content into the queue file (unless the message failed) */
static void cleanup_out(CLEANUP_STATE *st, const char *data, size_t len, int eol)
{
    int err;

    if (st->writer && (err = qfile_writer_line(st->writer, data, len, eol)) != 0)
        cleanup_write_error(st, err);
}

/* cleanup_out_lines - header text whose lines are separated by "\n"; the
   last line gets a line end when eol */
static void cleanup_out_lines(CLEANUP_STATE *st, const char *text, size_t len, int eol)
{
    const char *end = text + len;

    for (;;) {
        const char *nl = memchr(text, '\n', (size_t)(end - text));

        if (nl == NULL) {
            cleanup_out(st, text, (size_t)(end - text), eol);
            return;
        }
        cleanup_out(st, text, (size_t)(nl - text), 1);
        text = nl + 1;
    }
}

/* cleanup_out_header - a header cleanup makes, after any unfinished line */
static void cleanup_out_header(CLEANUP_STATE *st, const char *text)
{
    if (st->pending_no_eol) {
        cleanup_out(st, "", 0, 1);
        st->pending_no_eol = 0;
    }
    cleanup_out_lines(st, text, strlen(text), 1);
}

/* cleanup_content_reject - a content rejection, logged once */
static void cleanup_content_reject(CLEANUP_STATE *st, unsigned status, const char *dsn,
                                   const char *reason, const char *what)
{
    if (st->err_status != 0)
        return;
    cleanup_fail(st, status, dsn, "%s", reason);
    cleanup_log_reject(st, what);
}

/* cleanup_is_drop - a header field cleanup does not copy */
static int cleanup_is_drop(const CLEANUP_STATE *st, const char *text, size_t name_len)
{
    const ARGV *drop = cleanup_conf.drop_headers;

    if ((st->flags & CLEANUP_FLAG_REMOVE_BCC) &&
        (hdr_name_is(text, name_len, "bcc") || hdr_name_is(text, name_len, "resent-bcc")))
        return 1;
    for (size_t i = 0; i < drop->argc; i++)
        if (hdr_name_is(text, name_len, drop->argv[i]))
            return 1;
    return 0;
}

/* cleanup_first_word - the value's first word, lower case, into buf */
static const char *cleanup_first_word(const char *value, size_t vlen, VSTR *buf)
{
    size_t i;

    vstr_reset(buf);
    hdr_unfold(value, vlen, CLEANUP_LOG_VALUE_MAX, buf);
    for (i = 0; i < vstr_len(buf); i++)
        if (vstr_str(buf)[i] == ' ' || vstr_str(buf)[i] == '\t' || vstr_str(buf)[i] == ';' ||
            vstr_str(buf)[i] == '(')
            break;
    vstr_truncate(buf, i);
    vstr_lower(buf);
    return vstr_str(buf);
}

/* cleanup_extract - recipients from an address-list field */
static void cleanup_extract(CLEANUP_STATE *st, ARGV **list, const char *value, size_t vlen)
{
    size_t have = (st->extracted ? st->extracted->argc : 0) +
                  (st->resent_extracted ? st->resent_extracted->argc : 0);
    size_t room =
        cleanup_conf.extract_rcpt_limit > have ? cleanup_conf.extract_rcpt_limit - have : 0;
    ARGV *found = argv_alloc(4);

    if (*list == NULL)
        *list = argv_alloc(4);
    /* Ask for one more than fits, to tell "full" from "over the limit". */
    hdr_addr_list(value, vlen, found, room + 1, NULL);
    if (found->argc > room) {
        cleanup_content_reject(st, 552, "5.5.3", "Error: too many recipients",
                               "message header recipients");
    } else {
        for (size_t i = 0; i < found->argc; i++)
            argv_add(*list, found->argv[i], (char *)NULL);
    }
    argv_free(found);
}

/* cleanup_log_message_id - "ID: message-id=<...>" (and resent-message-id) */
static void cleanup_log_message_id(CLEANUP_STATE *st, const char *prefix, const char *value,
                                   size_t vlen)
{
    vstr_reset(st->buf);
    hdr_unfold(value, vlen, CLEANUP_LOG_VALUE_MAX, st->buf);
    msg_info("%s: %smessage-id=%s", st->queue_id, prefix, vstr_str(st->buf));
}

/* cleanup_inspect - what the header field tells us; 1 when it is not copied */
static int cleanup_inspect(CLEANUP_STATE *st, const char *text, size_t len, size_t name_len)
{
    size_t vlen;
    const char *value = hdr_value(text, len, &vlen);
    int extract = st->flags & CLEANUP_FLAG_EXTRACT_RCPT;

    if (name_len > strlen(CLEANUP_RESENT_PREFIX) &&
        hdr_name_is(text, strlen(CLEANUP_RESENT_PREFIX), CLEANUP_RESENT_PREFIX))
        st->resent = 1;

    if (hdr_name_is(text, name_len, "received")) {
        /* Mail loops: RFC 5321 6.3. Postfix counts every Received: header. */
        if (++st->hops >= cleanup_conf.hopcount_limit)
            cleanup_content_reject(st, 554, "5.4.0", "Error: too many hops", "message");
    } else if (hdr_name_is(text, name_len, "message-id")) {
        st->hdr_seen |= CLEANUP_HDR_MESSAGE_ID;
        cleanup_log_message_id(st, "", value, vlen);
    } else if (hdr_name_is(text, name_len, "resent-message-id")) {
        st->hdr_seen |= CLEANUP_HDR_RESENT_MESSAGE_ID;
        cleanup_log_message_id(st, "resent-", value, vlen);
    } else if (hdr_name_is(text, name_len, "date")) {
        st->hdr_seen |= CLEANUP_HDR_DATE;
    } else if (hdr_name_is(text, name_len, "resent-date")) {
        st->hdr_seen |= CLEANUP_HDR_RESENT_DATE;
    } else if (hdr_name_is(text, name_len, "from")) {
        st->hdr_seen |= CLEANUP_HDR_FROM;
    } else if (hdr_name_is(text, name_len, "resent-from")) {
        st->hdr_seen |= CLEANUP_HDR_RESENT_FROM;
    } else if (hdr_name_is(text, name_len, "precedence")) {
        const char *word = cleanup_first_word(value, vlen, st->buf);

        if (strcmp(word, "bulk") == 0 || strcmp(word, "list") == 0 || strcmp(word, "junk") == 0)
            st->precedence_bulk = 1;
    } else if (hdr_name_is(text, name_len, "content-transfer-encoding")) {
        const char *word = cleanup_first_word(value, vlen, st->buf);

        if (strcmp(word, "8bit") == 0 || strcmp(word, "binary") == 0)
            st->encoding_8bit = 1;
    } else if (extract && (hdr_name_is(text, name_len, "to") || hdr_name_is(text, name_len, "cc") ||
                           hdr_name_is(text, name_len, "bcc"))) {
        cleanup_extract(st, &st->extracted, value, vlen);
    } else if (extract && (hdr_name_is(text, name_len, "resent-to") ||
                           hdr_name_is(text, name_len, "resent-cc") ||
                           hdr_name_is(text, name_len, "resent-bcc"))) {
        cleanup_extract(st, &st->resent_extracted, value, vlen);
    }
    return cleanup_is_drop(st, text, name_len);
}

/* cleanup_hdr_field - one primary header field */
static int cleanup_hdr_field(void *ctx, const char *text, size_t len, size_t name_len, int flags)
{
    CLEANUP_STATE *st = ctx;
    int drop = cleanup_inspect(st, text, len, name_len);

    if (st->err_status != 0)
        return 1;
    if (flags & HDR_FIELD_TRUNCATED)
        msg_info("%s: header %.*s: text over header_size_limit=%zu bytes dropped", st->queue_id,
                 (int)(name_len < CLEANUP_LOG_NAME_MAX ? name_len : CLEANUP_LOG_NAME_MAX), text,
                 cleanup_conf.header_size_limit);
    if (drop)
        return 0;
    cleanup_out_lines(st, text, len, (flags & HDR_FIELD_NO_EOL) == 0);
    st->pending_no_eol = (flags & HDR_FIELD_NO_EOL) != 0;
    return st->err_status != 0;
}

/* cleanup_phrase - a display name for From:, quoted unless plain (RFC 5322 3.2.5) */
static void cleanup_phrase(VSTR *out, const char *name)
{
    static const char atext_special[] = "!#$%&'*+-/=?^_`{|}~";
    int plain = *name != ' ' && *name != 0 && name[strlen(name) - 1] != ' ';

    for (const char *cp = name; plain && *cp; cp++) {
        unsigned char ch = (unsigned char)*cp;

        plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                ch == ' ' || ch >= 0x80 || strchr(atext_special, ch) != NULL;
    }
    if (plain) {
        vstr_cat(out, name);
        return;
    }
    vstr_addch(out, '"');
    for (const char *cp = name; *cp; cp++) {
        if (*cp == '"' || *cp == '\\')
            vstr_addch(out, '\\');
        vstr_addch(out, *cp);
    }
    vstr_addch(out, '"');
}

/* cleanup_from_header - "From: address" from the envelope sender */
static void cleanup_from_header(CLEANUP_STATE *st, const char *prefix, VSTR *out)
{
    VSTR *addr = vstr_alloc(100);
    VSTR *ext = vstr_alloc(100);
    const char *sender = st->sender && *st->sender ? st->sender : "MAILER-DAEMON";

    vstr_cpy(addr, sender);
    if (st->sender && *st->sender && strchr(sender, '@') == NULL && cleanup_conf.append_at_myorigin)
        vstr_sprintf_append(addr, "@%s", cleanup_conf.myorigin);
    if (smtp_addr_external(ext, vstr_str(addr), vstr_len(addr)) < 0)
        vstr_cpy(ext, "MAILER-DAEMON"); /* cannot happen: the queue file refused controls */
    vstr_sprintf(out, "%sFrom: ", prefix);
    if (st->full_name && *st->full_name && st->sender && *st->sender) {
        cleanup_phrase(out, st->full_name);
        vstr_sprintf_append(out, " <%s>", vstr_str(ext));
    } else {
        vstr_cat(out, vstr_str(ext));
    }
    vstr_free(addr);
    vstr_free(ext);
}

/* cleanup_add_missing - Message-Id, Date, From for local and trusted mail */
static void cleanup_add_missing(CLEANUP_STATE *st)
{
    const char *prefix = st->resent ? "Resent-" : "";
    unsigned id_bit = st->resent ? CLEANUP_HDR_RESENT_MESSAGE_ID : CLEANUP_HDR_MESSAGE_ID;
    unsigned date_bit = st->resent ? CLEANUP_HDR_RESENT_DATE : CLEANUP_HDR_DATE;
    unsigned from_bit = st->resent ? CLEANUP_HDR_RESENT_FROM : CLEANUP_HDR_FROM;
    VSTR *line = vstr_alloc(256);
    VSTR *date = vstr_alloc(MAIL_DATE_MAX);

    if ((st->hdr_seen & id_bit) == 0) {
        /* Postfix's form: the arrival time in UTC, the queue id, our name. */
        time_t when = st->arrival.tv_sec;
        struct tm tm;
        char stamp[32];

        gmtime_r(&when, &tm);
        strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
        vstr_sprintf(line, "%sMessage-Id: <%s.%s@%s>", prefix, stamp, st->queue_id,
                     cleanup_conf.myhostname);
        cleanup_out_header(st, vstr_str(line));
        msg_info("%s: %smessage-id=<%s.%s@%s>", st->queue_id, st->resent ? "resent-" : "", stamp,
                 st->queue_id, cleanup_conf.myhostname);
        st->hdr_seen |= id_bit;
    }
    if ((st->hdr_seen & date_bit) == 0) {
        vstr_sprintf(line, "%sDate: %s", prefix, mail_date(st->arrival.tv_sec, date));
        cleanup_out_header(st, vstr_str(line));
    }
    if ((st->hdr_seen & from_bit) == 0) {
        cleanup_from_header(st, prefix, line);
        cleanup_out_header(st, vstr_str(line));
    }
    vstr_free(date);
    vstr_free(line);
}

/* cleanup_hdr_end - the header section is over */
static int cleanup_hdr_end(void *ctx, int how)
{
    CLEANUP_STATE *st = ctx;

    if (st->err_status != 0)
        return 1;
    if ((st->flags & CLEANUP_FLAG_MISSING_HEADERS) || cleanup_conf.always_add_headers)
        cleanup_add_missing(st);
    if ((st->hdr_seen & CLEANUP_HDR_MESSAGE_ID) == 0)
        msg_info("%s: message-id=<>", st->queue_id);
    /* A body line that was taken for the end of the header section: the
       empty line makes every later reader agree where the body starts. */
    if (how == HDR_END_GARBAGE)
        cleanup_out_header(st, "");
    return st->err_status != 0;
}

/* cleanup_hdr_body - body text, unchanged */
static int cleanup_hdr_body(void *ctx, const char *data, size_t len, int eol)
{
    CLEANUP_STATE *st = ctx;

    cleanup_out(st, data, len, eol);
    return st->err_status != 0;
}

static const HDR_PARSE_CB cleanup_hdr_cb = {
    .field = cleanup_hdr_field,
    .end = cleanup_hdr_end,
    .body = cleanup_hdr_body,
};

/* cleanup_received - our own Received: header for clients that wrote none */
static void cleanup_received(CLEANUP_STATE *st)
{
    VSTR *line = vstr_alloc(256);
    VSTR *date = vstr_alloc(MAIL_DATE_MAX);

    vstr_sprintf(line, "Received: by %s (%s", cleanup_conf.myhostname, cleanup_conf.mail_name);
    if (st->uid)
        vstr_sprintf_append(line, ", from userid %s", st->uid);
    vstr_sprintf_append(line, ")\n\tid %s; %s", st->queue_id, mail_date(st->arrival.tv_sec, date));
    cleanup_out_lines(st, vstr_str(line), vstr_len(line), 1);
    vstr_free(date);
    vstr_free(line);
}

/* cleanup_content_start - before the first content byte */
static void cleanup_content_start(CLEANUP_STATE *st)
{
    st->content_started = 1;
    st->parser = hdr_parse_create(cleanup_conf.header_size_limit, cleanup_conf.header_count_limit,
                                  &cleanup_hdr_cb, st);
    if ((st->flags & CLEANUP_FLAG_HAS_RECEIVED) == 0)
        cleanup_received(st);
}

/* cleanup_parse_result - the parser stopped: say why */
static void cleanup_parse_result(CLEANUP_STATE *st, int r)
{
    if (r == HDR_PARSE_ERR_NUL)
        cleanup_content_reject(st, 550, "5.6.0", "Error: malformed message header: NUL character",
                               "message header");
    else if (r == HDR_PARSE_ERR_COUNT)
        cleanup_content_reject(st, 552, "5.3.4", "Error: too many message header fields",
                               "message header");
    /* Positive values: a callback stopped it after recording the error. */
}

/* cleanup_strip_cr - the data with every CR replaced by a space, in st->cr_buf
   (not st->buf: the header callbacks use that while the parser reads this) */
static const char *cleanup_strip_cr(CLEANUP_STATE *st, const char *data, size_t len)
{
    VSTR *b = st->cr_buf;
    char *cp;

    vstr_ncpy(b, data, len);
    for (cp = vstr_str(b); (cp = memchr(cp, '\r', (size_t)(vstr_end(b) - cp))) != NULL;)
        *cp++ = ' ';
    return vstr_str(b);
}

/* cleanup_content_data - a piece of the content as the client sent it */
void cleanup_content_data(CLEANUP_STATE *st, const char *data, size_t len)
{
    uint64_t limit = cleanup_conf.message_size_limit;
    int r;

    if (!st->content_started)
        cleanup_content_start(st);
    if (st->err_status != 0)
        return; /* the rest of a failed message is read and dropped */
    st->size += len;
    if (limit > 0 && st->size > limit) {
        /* Postfix's words; the file is removed now, not when the client is done. */
        cleanup_content_reject(st, 552, "5.3.4", "Error: message file too big", "message");
        return;
    }
    if (cleanup_conf.replace_stray_cr && !st->binary && memchr(data, '\r', len) != NULL)
        data = cleanup_strip_cr(st, data, len);
    if ((r = hdr_parse_feed(st->parser, data, len)) != 0)
        cleanup_parse_result(st, r);
}

/* cleanup_content_end - the client said "end" */
void cleanup_content_end(CLEANUP_STATE *st)
{
    int r;

    if (!st->content_started)
        cleanup_content_start(st);
    if (st->err_status != 0)
        return;
    if ((r = hdr_parse_end(st->parser)) != 0)
        cleanup_parse_result(st, r);
    /* Content-Transfer-Encoding: 8bit from a client that did not say BODY=. */
    if (st->err_status == 0 && !st->have_encoding && st->encoding_8bit &&
        cleanup_conf.detect_8bit_header) {
        int err;

        if (st->writer &&
            (err = qfile_writer_attr(st->writer, CLEANUP_QATTR_ENCODING, CLEANUP_ENC_8BIT)) != 0)
            cleanup_write_error(st, err);
    }
}
