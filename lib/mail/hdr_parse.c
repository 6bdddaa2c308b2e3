/*
 * hdr_parse - streaming header-section parser (see hdr_parse.h).
 *
 * One buffer holds the current header field. A new line is classified from
 * its first bytes as they arrive: a blank continues the field before it, an
 * LF ends the header section, anything else is a candidate name that
 * becomes a field at its colon or turns out to be the first body line. The
 * field before is handed out as soon as the next line shows it is complete.
 */
#include <string.h>

#include "mail/hdr_parse.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

/* Where the parser is in the current line. */
enum hdr_state {
    HDR_ST_LINE,     /* at the start of a line in the header section */
    HDR_ST_NAME,     /* in a candidate field name */
    HDR_ST_NAME_WSP, /* blanks after a candidate name, before the colon */
    HDR_ST_FIELD,    /* in a field's (or continuation line's) text */
    HDR_ST_BODY,     /* past the header section */
};

struct HDR_PARSE {
    enum hdr_state state;
    VSTR *field;      /* the current field, or the candidate line */
    size_t name_len;  /* of the current field */
    int field_flags;  /* HDR_FIELD_* */
    int have_field;   /* field holds a field to hand out */
    int fold_pending; /* a continuation line began: its "\n" is not stored yet */
    int drop_line;    /* no room for the current continuation line: drop it */
    size_t field_max; /* bytes of one field at most */
    size_t count_max; /* fields at most */
    size_t count;     /* fields seen */
    int ended;        /* the end callback was called */
    int err;          /* sticky result once stopped */
    HDR_PARSE_CB cb;
    void *ctx;
};

#define HDR_IS_BLANK(c) ((c) == ' ' || (c) == '\t')
/* RFC 5322 3.6.8: ftext = %d33-57 / %d59-126 (printable ASCII but ':') */
#define HDR_IS_FTEXT(c) ((c) >= 33 && (c) <= 126 && (c) != ':')

/* hdr_parse_create - a new parser */
HDR_PARSE *hdr_parse_create(size_t field_max, size_t count_max, const HDR_PARSE_CB *cb, void *ctx)
{
    HDR_PARSE *p = mycalloc(1, sizeof(*p));

    if (field_max == 0 || count_max == 0 || cb == NULL || cb->field == NULL || cb->end == NULL ||
        cb->body == NULL)
        msg_panic("hdr_parse_create: bad arguments");
    p->state = HDR_ST_LINE;
    p->field = vstr_alloc(field_max < 1024 ? field_max + 1 : 1024);
    p->field_max = field_max;
    p->count_max = count_max;
    p->cb = *cb;
    p->ctx = ctx;
    return p;
}

/* hdr_parse_free - release */
void hdr_parse_free(HDR_PARSE *p)
{
    if (p == NULL)
        return;
    vstr_free(p->field);
    myfree(p);
}

/* hdr_parse_in_header - still in the header section */
int hdr_parse_in_header(const HDR_PARSE *p)
{
    return !p->ended;
}

/* hdr_parse_count - fields seen */
size_t hdr_parse_count(const HDR_PARSE *p)
{
    return p->count;
}

/* hdr_parse_strerror - text for an error code */
const char *hdr_parse_strerror(int err)
{
    switch (err) {
    case HDR_PARSE_ERR_NUL: return "NUL character in message header";
    case HDR_PARSE_ERR_COUNT: return "too many message header fields";
    default: return "unknown header parser error";
    }
}

/* hdr_append - add field text, dropping what does not fit in field_max */
static void hdr_append(HDR_PARSE *p, const char *data, size_t len)
{
    size_t have = vstr_len(p->field);
    size_t room = have < p->field_max ? p->field_max - have : 0;

    if (len > room) {
        p->field_flags |= HDR_FIELD_TRUNCATED;
        len = room;
    }
    if (len > 0)
        vstr_ncat(p->field, data, len);
}

/* hdr_flush_field - hand out the field held, if any */
static int hdr_flush_field(HDR_PARSE *p, int extra_flags)
{
    int r = 0;

    if (p->have_field)
        r = p->cb.field(p->ctx, vstr_str(p->field), vstr_len(p->field), p->name_len,
                        p->field_flags | extra_flags);
    p->have_field = 0;
    p->field_flags = 0;
    p->name_len = 0;
    vstr_reset(p->field);
    return r;
}

/* hdr_end_section - the header section is over */
static int hdr_end_section(HDR_PARSE *p, int how)
{
    p->ended = 1;
    p->state = HDR_ST_BODY;
    return p->cb.end(p->ctx, how);
}

/* hdr_garbage - the candidate line is not a field: it is the first body line */
static int hdr_garbage(HDR_PARSE *p)
{
    int r;

    if ((r = hdr_end_section(p, HDR_END_GARBAGE)) != 0)
        return r;
    if (vstr_len(p->field) > 0)
        r = p->cb.body(p->ctx, vstr_str(p->field), vstr_len(p->field), 0);
    vstr_reset(p->field);
    return r;
}

/* hdr_start_field - the candidate line is a field: count it */
static int hdr_start_field(HDR_PARSE *p, size_t name_len)
{
    if (p->count >= p->count_max)
        return HDR_PARSE_ERR_COUNT;
    p->count++;
    p->have_field = 1;
    p->name_len = name_len;
    p->state = HDR_ST_FIELD;
    return 0;
}

/* hdr_step_line - the first byte of a line in the header section; consumes nothing */
static int hdr_step_line(HDR_PARSE *p, int ch)
{
    int r;

    if (HDR_IS_BLANK(ch) && p->have_field) {
        /* RFC 5322 2.2.3: a folded line; the fold is stored with its text. */
        p->fold_pending = 1;
        p->state = HDR_ST_FIELD;
        return 0;
    }
    if ((r = hdr_flush_field(p, 0)) != 0)
        return r;
    if (ch == '\n')
        return hdr_end_section(p, HDR_END_EMPTY);
    p->state = HDR_ST_NAME;
    return 0;
}

/* hdr_step_name - bytes of a candidate name; *used is set to what was taken */
static int hdr_step_name(HDR_PARSE *p, const char *data, size_t len, size_t *used)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)data[i];

        if (vstr_len(p->field) >= p->field_max) {
            /* A name that never reaches its colon within the limit is body text. */
            *used = i;
            return hdr_garbage(p);
        }
        if (p->state == HDR_ST_NAME && HDR_IS_FTEXT(ch)) {
            vstr_addch(p->field, ch);
            p->name_len++;
            continue;
        }
        if (HDR_IS_BLANK(ch) && p->name_len > 0) {
            vstr_addch(p->field, ch);
            p->state = HDR_ST_NAME_WSP;
            continue;
        }
        if (ch == ':' && p->name_len > 0) {
            int r;

            vstr_addch(p->field, ch);
            *used = i + 1;
            if ((r = hdr_start_field(p, p->name_len)) != 0)
                return r;
            return 0;
        }
        /* Anything else (a control or 8-bit byte, the line end, a colon with
           no name) means this line is not a header field. */
        *used = i;
        return hdr_garbage(p);
    }
    *used = len;
    return 0;
}

/* hdr_step_field - field text up to the end of the line; *used as above */
static int hdr_step_field(HDR_PARSE *p, const char *data, size_t len, size_t *used)
{
    const char *nl = memchr(data, '\n', len);
    size_t n = nl ? (size_t)(nl - data) : len;

    if (memchr(data, 0, n) != NULL)
        return HDR_PARSE_ERR_NUL;
    if (p->fold_pending) {
        /* Store the fold only with at least one byte of its line: a fold
           alone would make an empty line, which ends the header section. */
        p->fold_pending = 0;
        if (vstr_len(p->field) + 2 <= p->field_max) {
            vstr_addch(p->field, '\n');
        } else {
            p->field_flags |= HDR_FIELD_TRUNCATED;
            p->drop_line = 1;
        }
    }
    if (p->drop_line)
        p->field_flags |= n > 0 ? HDR_FIELD_TRUNCATED : 0;
    else
        hdr_append(p, data, n);
    if (nl) {
        p->state = HDR_ST_LINE;
        p->drop_line = 0;
        n++;
    }
    *used = n;
    return 0;
}

/* hdr_step_body - body text, one line piece per callback */
static int hdr_step_body(HDR_PARSE *p, const char *data, size_t len, size_t *used)
{
    const char *nl = memchr(data, '\n', len);
    size_t n = nl ? (size_t)(nl - data) : len;

    *used = n + (nl ? 1 : 0);
    return p->cb.body(p->ctx, data, n, nl != NULL);
}

/* hdr_parse_feed - more content */
int hdr_parse_feed(HDR_PARSE *p, const char *data, size_t len)
{
    while (p->err == 0 && len > 0) {
        size_t used = 0;
        int r;

        switch (p->state) {
        case HDR_ST_LINE: r = hdr_step_line(p, (unsigned char)data[0]); break;
        case HDR_ST_NAME:
        case HDR_ST_NAME_WSP: r = hdr_step_name(p, data, len, &used); break;
        case HDR_ST_FIELD: r = hdr_step_field(p, data, len, &used); break;
        case HDR_ST_BODY: r = hdr_step_body(p, data, len, &used); break;
        default: msg_panic("hdr_parse_feed: bad state %d", (int)p->state);
        }
        if (r != 0)
            p->err = r;
        data += used;
        len -= used;
    }
    return p->err;
}

/* hdr_parse_end - the content is complete */
int hdr_parse_end(HDR_PARSE *p)
{
    int r = 0;

    if (p->err != 0 || p->ended)
        return p->err;
    switch (p->state) {
    case HDR_ST_LINE:
        if ((r = hdr_flush_field(p, 0)) == 0)
            r = hdr_end_section(p, HDR_END_EOF);
        break;
    case HDR_ST_NAME:
    case HDR_ST_NAME_WSP:
        /* The last line has no line end and never reached a colon. */
        r = hdr_garbage(p);
        break;
    case HDR_ST_FIELD:
        if ((r = hdr_flush_field(p, HDR_FIELD_NO_EOL)) == 0)
            r = hdr_end_section(p, HDR_END_EOF);
        break;
    case HDR_ST_BODY: break;
    }
    p->err = r;
    return r;
}

/* hdr_name_len - length of the name if line starts a header field */
size_t hdr_name_len(const char *line, size_t len)
{
    size_t i = 0, name;

    while (i < len && HDR_IS_FTEXT((unsigned char)line[i]))
        i++;
    if ((name = i) == 0)
        return 0;
    while (i < len && HDR_IS_BLANK(line[i]))
        i++;
    return i < len && line[i] == ':' ? name : 0;
}

/* hdr_name_is - case-insensitive name comparison */
int hdr_name_is(const char *text, size_t name_len, const char *name)
{
    size_t i;

    for (i = 0; i < name_len && name[i]; i++) {
        unsigned char a = (unsigned char)text[i], b = (unsigned char)name[i];

        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b - 'A' + 'a');
        if (a != b)
            return 0;
    }
    return i == name_len && name[i] == 0;
}

/* hdr_value - the value after the colon and the blanks after it */
const char *hdr_value(const char *text, size_t len, size_t *vlen)
{
    const char *colon = memchr(text, ':', len);
    const char *end = text + len, *cp;

    if (colon == NULL) {
        *vlen = 0;
        return end;
    }
    for (cp = colon + 1; cp < end && HDR_IS_BLANK(*cp); cp++)
        ;
    *vlen = (size_t)(end - cp);
    return cp;
}

/* hdr_unfold - unfolded and trimmed value into out */
void hdr_unfold(const char *value, size_t len, size_t max, VSTR *out)
{
    size_t start = vstr_len(out), added = 0;
    const char *end = value + len;

    while (value < end && (HDR_IS_BLANK(*value) || *value == '\n'))
        value++;
    for (; value < end; value++) {
        if (*value == '\n')
            continue;
        if (max > 0 && added >= max)
            break;
        vstr_addch(out, *value);
        added++;
    }
    while (vstr_len(out) > start && HDR_IS_BLANK(vstr_str(out)[vstr_len(out) - 1]))
        vstr_truncate(out, vstr_len(out) - 1);
}
