/*
 * smtp_data - DATA / BDAT content: end-of-data detection, dot-unstuffing,
 * bare CR / LF policy, line splitting and size accounting. The states and
 * their transitions are in smtp_data_step(); see smtp_data.h for the table.
 */
#include <string.h>

#include "mail/smtp_data.h"
#include "util/msg.h"
#include "util/mymalloc.h"

enum smtp_data_state {
    SMTP_DATA_ST_BOL,      /* line start after CRLF (or data start): "." may end */
    SMTP_DATA_ST_BOL_BARE, /* line start after a bare LF: "." never ends */
    SMTP_DATA_ST_DOT,      /* "." seen at SMTP_DATA_ST_BOL */
    SMTP_DATA_ST_DOT_CR,   /* "." CR seen at SMTP_DATA_ST_BOL */
    SMTP_DATA_ST_TEXT,     /* inside a line */
    SMTP_DATA_ST_CR,       /* CR inside a line, LF decides */
    SMTP_DATA_ST_END,      /* message complete */
};

struct SMTP_DATA {
    SMTP_DATA_OPTS opts;
    SMTP_DATA_LINE_FN fn;
    void *context;
    int mode;                   /* SMTP_DATA_MODE_* */
    enum smtp_data_state state; /* see smtp_data_step */
    char *line;                 /* current piece, opts.line_max octets */
    size_t len;                 /* octets in line */
    uint64_t size;              /* RFC 1870 message size so far */
    uint64_t chunk_left;        /* BDAT: octets still due in this chunk */
    int last_chunk;             /* BDAT: this chunk is LAST */
    int errors;                 /* SMTP_DATA_ERR_* */
    int first_error;            /* the one SMTP_DATA_ERR_* bit to answer */
    int seen;                   /* SMTP_DATA_SAW_* */
};

/* smtp_data_create - one per session; the options are copied */
SMTP_DATA *smtp_data_create(const SMTP_DATA_OPTS *opts, SMTP_DATA_LINE_FN fn, void *context)
{
    SMTP_DATA *data = mycalloc(1, sizeof(*data));

    data->opts = *opts;
    if (data->opts.line_max == 0)
        data->opts.line_max = SMTP_DATA_LINE_MAX;
    if (data->opts.line_max > SMTP_DATA_LINE_HARD_MAX)
        msg_fatal("smtp_data: line length limit %zu exceeds %d", data->opts.line_max,
                  SMTP_DATA_LINE_HARD_MAX);
    data->fn = fn;
    data->context = context;
    data->line = mymalloc(data->opts.line_max);
    smtp_data_start(data, SMTP_DATA_MODE_DATA);
    return data;
}

void smtp_data_free(SMTP_DATA *data)
{
    if (data) {
        myfree(data->line);
        myfree(data);
    }
}

/* smtp_data_start - forget the previous message */
void smtp_data_start(SMTP_DATA *data, int mode)
{
    data->mode = mode;
    data->state = SMTP_DATA_ST_BOL;
    data->len = 0;
    data->size = 0;
    data->chunk_left = 0;
    data->last_chunk = 0;
    data->errors = 0;
    data->first_error = 0;
    data->seen = 0;
}

/* smtp_data_bdat_chunk - announce the octets of the next BDAT command */
void smtp_data_bdat_chunk(SMTP_DATA *data, uint64_t size, int last)
{
    if (data->mode != SMTP_DATA_MODE_BDAT)
        msg_panic("smtp_data_bdat_chunk: not in BDAT mode");
    data->chunk_left = size;
    data->last_chunk = last;
}

/* smtp_data_error - remember an error; the first one is the one answered */
static void smtp_data_error(SMTP_DATA *data, int err)
{
    if (data->errors == 0)
        data->first_error = err;
    data->errors |= err;
}

/* smtp_data_count - add to the message size, saturating; check the limit */
static void smtp_data_count(SMTP_DATA *data, size_t n)
{
    data->size = (data->size > UINT64_MAX - n) ? UINT64_MAX : data->size + n;
    if (data->opts.size_limit && data->size > data->opts.size_limit &&
        !(data->errors & SMTP_DATA_ERR_SIZE))
        smtp_data_error(data, SMTP_DATA_ERR_SIZE);
}

/* smtp_data_emit - hand the current piece over unless the message is refused */
static void smtp_data_emit(SMTP_DATA *data, int flags)
{
    if (data->errors == 0)
        data->fn(data->context, data->line, data->len, flags);
    data->len = 0;
}

/* smtp_data_put - content octets; a full piece goes out as a continuation */
static void smtp_data_put(SMTP_DATA *data, const char *buf, size_t len)
{
    while (len > 0) {
        if (data->len == data->opts.line_max) {
            data->seen |= SMTP_DATA_SAW_LONG;
            if (data->opts.flags & SMTP_DATA_FLAG_REJECT_LONG)
                smtp_data_error(data, SMTP_DATA_ERR_LONG);
            smtp_data_emit(data, SMTP_DATA_PIECE_CONT);
        }
        size_t n = data->opts.line_max - data->len;

        if (n > len)
            n = len;
        memcpy(data->line + data->len, buf, n);
        data->len += n;
        smtp_data_count(data, n);
        buf += n;
        len -= n;
    }
}

/* smtp_data_eol - the line ends (counted as CRLF) */
static void smtp_data_eol(SMTP_DATA *data)
{
    smtp_data_count(data, 2);
    smtp_data_emit(data, 0);
}

/* smtp_data_bare_lf - LF without CR: policy; never a place where "." may end */
static void smtp_data_bare_lf(SMTP_DATA *data)
{
    data->seen |= SMTP_DATA_SAW_BARE_LF;
    switch (data->opts.bare) {
    case SMTP_DATA_BARE_KEEP:
        smtp_data_put(data, "\n", 1);
        data->state = SMTP_DATA_ST_TEXT;
        return;
    case SMTP_DATA_BARE_REJECT:
        smtp_data_error(data, SMTP_DATA_ERR_BARE_LF);
        /* Parse on as NORMALIZE does; nothing reaches the callback any more. */
        /* FALLTHROUGH */
    case SMTP_DATA_BARE_NORMALIZE:
        smtp_data_eol(data);
        data->state = SMTP_DATA_ST_BOL_BARE;
        return;
    }
    msg_panic("smtp_data: bad bare policy %d", (int)data->opts.bare);
}

/* smtp_data_bare_cr - CR not followed by LF: policy; the line goes on */
static void smtp_data_bare_cr(SMTP_DATA *data)
{
    data->seen |= SMTP_DATA_SAW_BARE_CR;
    switch (data->opts.bare) {
    case SMTP_DATA_BARE_KEEP: smtp_data_put(data, "\r", 1); break;
    case SMTP_DATA_BARE_REJECT: smtp_data_error(data, SMTP_DATA_ERR_BARE_CR); break;
    case SMTP_DATA_BARE_NORMALIZE: smtp_data_put(data, " ", 1); break;
    }
    data->state = SMTP_DATA_ST_TEXT;
}

/* smtp_data_text - one octet inside a line (the TEXT row of the table) */
static void smtp_data_text(SMTP_DATA *data, unsigned char ch)
{
    if (ch == '\r') {
        data->state = SMTP_DATA_ST_CR;
        return;
    }
    if (ch == '\n') {
        smtp_data_bare_lf(data);
        return;
    }
    if (ch == 0) {
        data->seen |= SMTP_DATA_SAW_NUL;
        if (data->opts.flags & SMTP_DATA_FLAG_REJECT_NUL)
            smtp_data_error(data, SMTP_DATA_ERR_NUL);
    } else if (ch >= 0x80) {
        data->seen |= SMTP_DATA_SAW_8BIT;
    }
    data->state = SMTP_DATA_ST_TEXT;
    smtp_data_put(data, (const char *)&ch, 1);
}

/* smtp_data_step - the state machine: one octet */
static void smtp_data_step(SMTP_DATA *data, unsigned char ch)
{
    int dot_special = (data->mode == SMTP_DATA_MODE_DATA && ch == '.');

    switch (data->state) {
    case SMTP_DATA_ST_BOL:
        if (dot_special)
            data->state = SMTP_DATA_ST_DOT;
        else
            smtp_data_text(data, ch);
        return;
    case SMTP_DATA_ST_BOL_BARE:
        if (dot_special)
            data->state = SMTP_DATA_ST_TEXT; /* unstuffed, but never an end */
        else
            smtp_data_text(data, ch);
        return;
    case SMTP_DATA_ST_DOT:
        if (ch == '\r')
            data->state = SMTP_DATA_ST_DOT_CR;
        else
            smtp_data_text(data, ch); /* the dot was stuffing: dropped */
        return;
    case SMTP_DATA_ST_DOT_CR:
        if (ch == '\n') {
            data->state = SMTP_DATA_ST_END; /* CRLF "." CRLF */
            return;
        }
        smtp_data_bare_cr(data);
        smtp_data_text(data, ch);
        return;
    case SMTP_DATA_ST_TEXT: smtp_data_text(data, ch); return;
    case SMTP_DATA_ST_CR:
        if (ch == '\n') {
            smtp_data_eol(data);
            data->state = SMTP_DATA_ST_BOL;
            return;
        }
        smtp_data_bare_cr(data);
        smtp_data_text(data, ch);
        return;
    case SMTP_DATA_ST_END: break;
    }
    msg_panic("smtp_data_step: octet after the end of the message");
}

/* smtp_data_run - length of plain content at buf (no CR, LF or NUL) */
static size_t smtp_data_run(SMTP_DATA *data, const char *buf, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)buf[i];

        if (ch == '\r' || ch == '\n' || ch == 0)
            break;
        if (ch >= 0x80)
            data->seen |= SMTP_DATA_SAW_8BIT;
    }
    return i;
}

/* smtp_data_finish - end of the LAST BDAT chunk: a pending CR is bare */
static void smtp_data_finish(SMTP_DATA *data)
{
    if (data->state == SMTP_DATA_ST_CR)
        smtp_data_bare_cr(data);
    if (data->len > 0)
        smtp_data_emit(data, SMTP_DATA_PIECE_NOEOL);
    data->state = SMTP_DATA_ST_END;
}

/* smtp_data_feed - consume what belongs to the message */
int smtp_data_feed(SMTP_DATA *data, const char *buf, size_t len, size_t *used)
{
    size_t avail = len;
    size_t i = 0;

    *used = 0;
    if (data->state == SMTP_DATA_ST_END)
        return SMTP_DATA_END;
    if (data->mode == SMTP_DATA_MODE_BDAT && data->chunk_left < avail)
        avail = (size_t)data->chunk_left;
    while (i < avail && data->state != SMTP_DATA_ST_END) {
        if (data->state == SMTP_DATA_ST_TEXT) {
            size_t run = smtp_data_run(data, buf + i, avail - i);

            if (run > 0) {
                smtp_data_put(data, buf + i, run);
                i += run;
                continue;
            }
        }
        smtp_data_step(data, (unsigned char)buf[i++]);
    }
    *used = i;
    if (data->mode == SMTP_DATA_MODE_DATA)
        return data->state == SMTP_DATA_ST_END ? SMTP_DATA_END : SMTP_DATA_MORE;
    data->chunk_left -= i;
    if (data->chunk_left > 0)
        return SMTP_DATA_MORE;
    if (!data->last_chunk)
        return SMTP_DATA_CHUNK_END;
    smtp_data_finish(data);
    return SMTP_DATA_END;
}

int smtp_data_errors(const SMTP_DATA *data)
{
    return data->errors;
}

int smtp_data_seen(const SMTP_DATA *data)
{
    return data->seen;
}

uint64_t smtp_data_size(const SMTP_DATA *data)
{
    return data->size;
}

uint64_t smtp_data_chunk_left(const SMTP_DATA *data)
{
    return data->chunk_left;
}

/* smtp_data_reply - the answer to the end of a refused message */
int smtp_data_reply(const SMTP_DATA *data, SMTP_REPLY *reply)
{
    switch (data->first_error) {
    case SMTP_DATA_ERR_BARE_LF:
        *reply = (SMTP_REPLY){550, "5.5.2", "Error: bare <LF> received"};
        return 0;
    case SMTP_DATA_ERR_BARE_CR:
        *reply = (SMTP_REPLY){550, "5.5.2", "Error: bare <CR> received"};
        return 0;
    case SMTP_DATA_ERR_NUL:
        *reply = (SMTP_REPLY){550, "5.6.0", "Error: NUL character in message content"};
        return 0;
    case SMTP_DATA_ERR_LONG:
        *reply = (SMTP_REPLY){550, "5.6.0", "Error: message line too long"};
        return 0;
    case SMTP_DATA_ERR_SIZE:
        *reply = (SMTP_REPLY){552, "5.3.4", "Error: message file too big"};
        return 0;
    }
    return -1;
}
