/*
 * smtp_param - parse MAIL FROM / RCPT TO ESMTP parameters; xtext and the
 * RFC 6533 UTF-8 address encodings. See smtp_param.h.
 */
#include <string.h>
#include <strings.h>

#include "mail/smtp_addr.h"
#include "mail/smtp_param.h"
#include "util/mymalloc.h"

#define SMTP_PARAM_HEXPOINT_MAX 6 /* RFC 6533: at most "10FFFF" */

typedef enum smtp_param_err (*SMTP_PARAM_FN)(SMTP_PARAMS *, const char *, size_t, int);

static enum smtp_param_err smtp_param_size(SMTP_PARAMS *, const char *, size_t, int);
static enum smtp_param_err smtp_param_body(SMTP_PARAMS *, const char *, size_t, int);
static enum smtp_param_err smtp_param_utf8(SMTP_PARAMS *, const char *, size_t, int);
static enum smtp_param_err smtp_param_ret(SMTP_PARAMS *, const char *, size_t, int);
static enum smtp_param_err smtp_param_envid(SMTP_PARAMS *, const char *, size_t, int);
static enum smtp_param_err smtp_param_auth(SMTP_PARAMS *, const char *, size_t, int);
static enum smtp_param_err smtp_param_notify(SMTP_PARAMS *, const char *, size_t, int);
static enum smtp_param_err smtp_param_orcpt(SMTP_PARAMS *, const char *, size_t, int);

/* The known parameters: command, the extension that must be offered, handler. */
static const struct smtp_param_def {
    const char *name;
    int seen;  /* SMTP_PARAM_SEEN_* */
    int rcpt;  /* 1: RCPT TO, 0: MAIL FROM */
    int offer; /* any of these SMTP_PARAM_FLAG_* bits */
    SMTP_PARAM_FN fn;
} smtp_param_defs[] = {
    {"SIZE", SMTP_PARAM_SEEN_SIZE, 0, SMTP_PARAM_FLAG_SIZE, smtp_param_size},
    {"BODY", SMTP_PARAM_SEEN_BODY, 0, SMTP_PARAM_FLAG_8BITMIME | SMTP_PARAM_FLAG_BINARYMIME,
     smtp_param_body},
    {"SMTPUTF8", SMTP_PARAM_SEEN_SMTPUTF8, 0, SMTP_PARAM_FLAG_SMTPUTF8, smtp_param_utf8},
    {"RET", SMTP_PARAM_SEEN_RET, 0, SMTP_PARAM_FLAG_DSN, smtp_param_ret},
    {"ENVID", SMTP_PARAM_SEEN_ENVID, 0, SMTP_PARAM_FLAG_DSN, smtp_param_envid},
    {"AUTH", SMTP_PARAM_SEEN_AUTH, 0, SMTP_PARAM_FLAG_AUTH, smtp_param_auth},
    {"NOTIFY", SMTP_PARAM_SEEN_NOTIFY, 1, SMTP_PARAM_FLAG_DSN, smtp_param_notify},
    {"ORCPT", SMTP_PARAM_SEEN_ORCPT, 1, SMTP_PARAM_FLAG_DSN, smtp_param_orcpt},
};

#define SMTP_PARAM_NDEFS (sizeof(smtp_param_defs) / sizeof(smtp_param_defs[0]))

static const struct {
    int code;
    const char *dsn;
    const char *text;
    const char *reason;
} smtp_param_errs[] = {
    [SMTP_PARAM_OK] = {250, "2.0.0", "Ok", "ok"},
    [SMTP_PARAM_ERR_SYNTAX] = {501, "5.5.4", "Bad parameter syntax", "malformed parameter"},
    [SMTP_PARAM_ERR_UNKNOWN] = {555, "5.5.4", "Unsupported option", "unsupported parameter"},
    [SMTP_PARAM_ERR_DUPLICATE] = {501, "5.5.4", "Duplicate parameter", "parameter repeated"},
    [SMTP_PARAM_ERR_SIZE] = {501, "5.5.4", "Bad message size syntax", "malformed SIZE"},
    [SMTP_PARAM_ERR_SIZE_RANGE] = {552, "5.3.4", "Message size exceeds fixed limit",
                                   "SIZE out of range"},
    [SMTP_PARAM_ERR_BODY] = {501, "5.5.4", "Unsupported BODY parameter", "bad BODY"},
    [SMTP_PARAM_ERR_SMTPUTF8] = {501, "5.5.4", "Bad SMTPUTF8 parameter syntax",
                                 "SMTPUTF8 with a value"},
    [SMTP_PARAM_ERR_RET] = {501, "5.5.4", "Bad RET parameter syntax", "bad RET"},
    [SMTP_PARAM_ERR_ENVID] = {501, "5.5.4", "Bad ENVID parameter syntax", "bad ENVID"},
    [SMTP_PARAM_ERR_NOTIFY] = {501, "5.5.4", "Bad NOTIFY parameter syntax", "bad NOTIFY"},
    [SMTP_PARAM_ERR_ORCPT] = {501, "5.5.4", "Bad ORCPT parameter syntax", "bad ORCPT"},
    [SMTP_PARAM_ERR_AUTH] = {501, "5.5.4", "Bad AUTH parameter syntax", "bad AUTH"},
    [SMTP_PARAM_ERR_NEED_UTF8] = {501, "5.5.4", "Must declare SMTPUTF8 to send unicode parameter",
                                  "non-ASCII parameter without SMTPUTF8"},
    [SMTP_PARAM_ERR_BAD_UTF8] = {501, "5.5.4", "Malformed UTF-8 in parameter",
                                 "malformed UTF-8 in parameter"},
};

#define SMTP_PARAM_NERRS (sizeof(smtp_param_errs) / sizeof(smtp_param_errs[0]))

/* smtp_param_alloc - empty parameter set with bounded strings */
SMTP_PARAMS *smtp_param_alloc(void)
{
    SMTP_PARAMS *params = mycalloc(1, sizeof(*params));

    params->envid = vstr_alloc(32);
    params->orcpt_type = vstr_alloc(16);
    params->orcpt_addr = vstr_alloc(64);
    params->auth = vstr_alloc(64);
    params->keyword = vstr_alloc(16);
    vstr_set_limit(params->envid, SMTP_PARAM_ENVID_MAX);
    vstr_set_limit(params->orcpt_type, SMTP_PARAM_ORCPT_MAX);
    vstr_set_limit(params->orcpt_addr, SMTP_PARAM_ORCPT_MAX);
    vstr_set_limit(params->auth, SMTP_PARAM_AUTH_MAX);
    vstr_set_limit(params->keyword, SMTP_PARAM_KEYWORD_MAX);
    return params;
}

void smtp_param_free(SMTP_PARAMS *params)
{
    if (params) {
        vstr_free(params->envid);
        vstr_free(params->orcpt_type);
        vstr_free(params->orcpt_addr);
        vstr_free(params->auth);
        vstr_free(params->keyword);
        myfree(params);
    }
}

/* smtp_param_reset - back to "nothing given" */
void smtp_param_reset(SMTP_PARAMS *params)
{
    params->seen = 0;
    params->size = 0;
    params->body = SMTP_PARAM_BODY_NONE;
    params->ret = SMTP_PARAM_RET_NONE;
    params->notify = 0;
    vstr_reset(params->envid);
    vstr_reset(params->orcpt_type);
    vstr_reset(params->orcpt_addr);
    vstr_reset(params->auth);
    vstr_reset(params->keyword);
}

static int smtp_param_alnum(int ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* smtp_param_hexval - value of one hex digit (either case), -1 if none */
static int smtp_param_hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* smtp_param_is (value, "WORD") - whole value equals a word, any case */
static int smtp_param_is(const char *val, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(val, word, len) == 0;
}

/* smtp_param_printable - printable US-ASCII and SP only (RFC 3461 4.2, 4.4) */
static int smtp_param_printable(const VSTR *vs)
{
    for (size_t i = 0; i < vstr_len(vs); i++) {
        unsigned char ch = (unsigned char)vstr_str(vs)[i];

        if (ch < 32 || ch > 126)
            return 0;
    }
    return 1;
}

/* smtp_param_no_ctl - no C0 control or DEL (UTF-8 allowed) */
static int smtp_param_no_ctl(const VSTR *vs)
{
    for (size_t i = 0; i < vstr_len(vs); i++) {
        unsigned char ch = (unsigned char)vstr_str(vs)[i];

        if (ch < 32 || ch == 127)
            return 0;
    }
    return 1;
}

/* smtp_param_size - RFC 1870 size-value = 1*20DIGIT */
static enum smtp_param_err smtp_param_size(SMTP_PARAMS *params, const char *val, size_t len,
                                           int flags)
{
    uint64_t size = 0;
    int overflow = 0;

    (void)flags;
    if (val == NULL || len == 0 || len > SMTP_PARAM_SIZE_DIGITS)
        return SMTP_PARAM_ERR_SIZE;
    for (size_t i = 0; i < len; i++) {
        unsigned digit = (unsigned)(val[i] - '0');

        if (val[i] < '0' || val[i] > '9')
            return SMTP_PARAM_ERR_SIZE;
        if (size > (UINT64_MAX - digit) / 10)
            overflow = 1;
        else
            size = size * 10 + digit;
    }
    if (overflow)
        return SMTP_PARAM_ERR_SIZE_RANGE;
    params->size = size;
    return SMTP_PARAM_OK;
}

/* smtp_param_body - RFC 6152 7BIT / 8BITMIME, RFC 3030 BINARYMIME */
static enum smtp_param_err smtp_param_body(SMTP_PARAMS *params, const char *val, size_t len,
                                           int flags)
{
    if (val == NULL)
        return SMTP_PARAM_ERR_BODY;
    if (smtp_param_is(val, len, "7BIT"))
        params->body = SMTP_PARAM_BODY_7BIT;
    else if (smtp_param_is(val, len, "8BITMIME") && (flags & SMTP_PARAM_FLAG_8BITMIME))
        params->body = SMTP_PARAM_BODY_8BITMIME;
    else if (smtp_param_is(val, len, "BINARYMIME") && (flags & SMTP_PARAM_FLAG_BINARYMIME))
        params->body = SMTP_PARAM_BODY_BINARYMIME;
    else
        return SMTP_PARAM_ERR_BODY;
    return SMTP_PARAM_OK;
}

/* smtp_param_utf8 - RFC 6531 3.4: SMTPUTF8 takes no value */
static enum smtp_param_err smtp_param_utf8(SMTP_PARAMS *params, const char *val, size_t len,
                                           int flags)
{
    (void)params;
    (void)len;
    (void)flags;
    return val ? SMTP_PARAM_ERR_SMTPUTF8 : SMTP_PARAM_OK;
}

/* smtp_param_ret - RFC 3461 4.3 */
static enum smtp_param_err smtp_param_ret(SMTP_PARAMS *params, const char *val, size_t len,
                                          int flags)
{
    (void)flags;
    if (val && smtp_param_is(val, len, "FULL"))
        params->ret = SMTP_PARAM_RET_FULL;
    else if (val && smtp_param_is(val, len, "HDRS"))
        params->ret = SMTP_PARAM_RET_HDRS;
    else
        return SMTP_PARAM_ERR_RET;
    return SMTP_PARAM_OK;
}

/* smtp_param_envid - RFC 3461 4.4: xtext, printable, at most 100 octets */
static enum smtp_param_err smtp_param_envid(SMTP_PARAMS *params, const char *val, size_t len,
                                            int flags)
{
    (void)flags;
    if (val == NULL || smtp_param_xtext_decode(params->envid, val, len) < 0 ||
        vstr_len(params->envid) == 0 || !smtp_param_printable(params->envid))
        return SMTP_PARAM_ERR_ENVID;
    return SMTP_PARAM_OK;
}

/* smtp_param_auth - RFC 4954 5: xtext of "<>" or a mailbox */
static enum smtp_param_err smtp_param_auth(SMTP_PARAMS *params, const char *val, size_t len,
                                           int flags)
{
    (void)flags;
    if (val == NULL || smtp_param_xtext_decode(params->auth, val, len) < 0 ||
        vstr_len(params->auth) == 0 || !smtp_param_no_ctl(params->auth) ||
        !smtp_addr_utf8_valid(vstr_str(params->auth), vstr_len(params->auth)))
        return SMTP_PARAM_ERR_AUTH;
    return SMTP_PARAM_OK;
}

/* smtp_param_notify_word - one list element's bit, 0 if unknown */
static int smtp_param_notify_word(const char *word, size_t len)
{
    if (smtp_param_is(word, len, "NEVER"))
        return SMTP_PARAM_NOTIFY_NEVER;
    if (smtp_param_is(word, len, "SUCCESS"))
        return SMTP_PARAM_NOTIFY_SUCCESS;
    if (smtp_param_is(word, len, "FAILURE"))
        return SMTP_PARAM_NOTIFY_FAILURE;
    if (smtp_param_is(word, len, "DELAY"))
        return SMTP_PARAM_NOTIFY_DELAY;
    return 0;
}

/* smtp_param_notify - RFC 3461 4.1: "NEVER" / 1#( SUCCESS / FAILURE / DELAY ) */
static enum smtp_param_err smtp_param_notify(SMTP_PARAMS *params, const char *val, size_t len,
                                             int flags)
{
    size_t i = 0;

    (void)flags;
    if (val == NULL)
        return SMTP_PARAM_ERR_NOTIFY;
    while (i <= len) {
        const char *comma = memchr(val + i, ',', len - i);
        size_t wlen = comma ? (size_t)(comma - val) - i : len - i;
        int bit = smtp_param_notify_word(val + i, wlen);

        if (bit == 0 || (params->notify & bit))
            return SMTP_PARAM_ERR_NOTIFY;
        params->notify |= bit;
        i += wlen + 1;
    }
    if ((params->notify & SMTP_PARAM_NOTIFY_NEVER) && params->notify != SMTP_PARAM_NOTIFY_NEVER)
        return SMTP_PARAM_ERR_NOTIFY;
    return SMTP_PARAM_OK;
}

/* smtp_param_orcpt - RFC 3461 4.2 addr-type ";" xtext; RFC 6533 for utf-8 */
static enum smtp_param_err smtp_param_orcpt(SMTP_PARAMS *params, const char *val, size_t len,
                                            int flags)
{
    const char *semi;
    size_t tlen;
    int ok;

    if (val == NULL || len > SMTP_PARAM_ORCPT_MAX || (semi = memchr(val, ';', len)) == NULL)
        return SMTP_PARAM_ERR_ORCPT;
    tlen = (size_t)(semi - val);
    /* addr-type = atom */
    if (tlen == 0 || smtp_addr_local_needs_quote(val, tlen) || memchr(val, '.', tlen))
        return SMTP_PARAM_ERR_ORCPT;
    for (size_t i = 0; i < tlen; i++)
        if ((unsigned char)val[i] >= 0x80)
            return SMTP_PARAM_ERR_ORCPT;
    vstr_ncpy(params->orcpt_type, val, tlen);
    val += tlen + 1;
    len -= tlen + 1;
    if (smtp_param_is(vstr_str(params->orcpt_type), tlen, "utf-8")) {
        ok = smtp_param_utf8_addr_decode(params->orcpt_addr, val, len,
                                         (flags & SMTP_PARAM_FLAG_UTF8_TXN) != 0) == 0;
    } else {
        ok = smtp_param_xtext_decode(params->orcpt_addr, val, len) == 0 &&
             smtp_param_printable(params->orcpt_addr);
    }
    if (!ok || vstr_len(params->orcpt_addr) == 0)
        return SMTP_PARAM_ERR_ORCPT;
    return SMTP_PARAM_OK;
}

/* smtp_param_keyword_ok - esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static int smtp_param_keyword_ok(const char *kw, size_t len)
{
    if (len == 0 || !smtp_param_alnum(kw[0]))
        return 0;
    for (size_t i = 1; i < len; i++)
        if (!smtp_param_alnum(kw[i]) && kw[i] != '-')
            return 0;
    return 1;
}

/* smtp_param_value_ok - esmtp-value; notes non-ASCII for the SMTPUTF8 check */
static enum smtp_param_err smtp_param_value_ok(const char *val, size_t len, int *nonascii)
{
    size_t i = 0;

    if (len == 0)
        return SMTP_PARAM_ERR_SYNTAX;
    while (i < len) {
        unsigned char ch = (unsigned char)val[i];

        if (ch >= 0x80) {
            size_t seq = smtp_addr_utf8_seq((const unsigned char *)val + i, len - i);

            if (seq == 0)
                return SMTP_PARAM_ERR_BAD_UTF8;
            *nonascii = 1;
            i += seq;
        } else if (ch < 33 || ch == '=' || ch == 127) {
            return SMTP_PARAM_ERR_SYNTAX;
        } else {
            i++;
        }
    }
    return SMTP_PARAM_OK;
}

/* smtp_param_lookup - the definition for this command and offer, or NULL */
static const struct smtp_param_def *smtp_param_lookup(const char *kw, size_t len, int flags)
{
    int rcpt = (flags & SMTP_PARAM_FLAG_RCPT) != 0;

    for (size_t i = 0; i < SMTP_PARAM_NDEFS; i++) {
        const struct smtp_param_def *def = smtp_param_defs + i;

        if (smtp_param_is(kw, len, def->name))
            return (def->rcpt == rcpt && (flags & def->offer)) ? def : NULL;
    }
    return NULL;
}

/* smtp_param_one - one keyword[=value] token */
static enum smtp_param_err smtp_param_one(SMTP_PARAMS *params, const char *tok, size_t len,
                                          int flags, int *nonascii)
{
    const char *eq = memchr(tok, '=', len);
    size_t klen = eq ? (size_t)(eq - tok) : len;
    const char *val = eq ? eq + 1 : NULL;
    size_t vlen = eq ? len - klen - 1 : 0;
    const struct smtp_param_def *def;
    enum smtp_param_err err;
    int utf8 = 0;

    if (!smtp_param_keyword_ok(tok, klen))
        return SMTP_PARAM_ERR_SYNTAX;
    vstr_ncpy(params->keyword, tok, klen < SMTP_PARAM_KEYWORD_MAX ? klen : SMTP_PARAM_KEYWORD_MAX);
    if (val && (err = smtp_param_value_ok(val, vlen, &utf8)) != SMTP_PARAM_OK)
        return err;
    /* RCPT: SMTPUTF8 can only have come with MAIL FROM, so decide now. */
    if (utf8 && (flags & SMTP_PARAM_FLAG_RCPT) && !(flags & SMTP_PARAM_FLAG_UTF8_TXN))
        return SMTP_PARAM_ERR_NEED_UTF8;
    *nonascii |= utf8;
    if ((def = smtp_param_lookup(tok, klen, flags)) == NULL)
        return SMTP_PARAM_ERR_UNKNOWN;
    if (params->seen & def->seen)
        return SMTP_PARAM_ERR_DUPLICATE;
    params->seen |= def->seen;
    return def->fn(params, val, vlen, flags);
}

/* smtp_param_parse - blank-separated parameters, first error wins */
enum smtp_param_err smtp_param_parse(SMTP_PARAMS *params, const char *str, size_t len, int flags)
{
    enum smtp_param_err err;
    int nonascii = 0;
    size_t i = 0;

    smtp_param_reset(params);
    for (;;) {
        size_t start;

        while (i < len && (str[i] == ' ' || str[i] == '\t'))
            i++;
        if (i == len)
            break;
        for (start = i; i < len && str[i] != ' ' && str[i] != '\t'; i++)
            /* void */;
        if ((err = smtp_param_one(params, str + start, i - start, flags, &nonascii)) != 0)
            return err;
    }
    /* RFC 6531 3.3: UTF-8 in esmtp-value only in an SMTPUTF8 transaction. */
    if (nonascii && !(flags & SMTP_PARAM_FLAG_UTF8_TXN) &&
        !(params->seen & SMTP_PARAM_SEEN_SMTPUTF8))
        return SMTP_PARAM_ERR_NEED_UTF8;
    vstr_reset(params->keyword);
    return SMTP_PARAM_OK;
}

const char *smtp_param_strerror(enum smtp_param_err err)
{
    if ((unsigned)err >= SMTP_PARAM_NERRS)
        return "unknown error";
    return smtp_param_errs[err].reason;
}

/* smtp_param_reply - code, enhanced status and text for an error */
void smtp_param_reply(enum smtp_param_err err, SMTP_REPLY *reply)
{
    if ((unsigned)err >= SMTP_PARAM_NERRS)
        err = SMTP_PARAM_ERR_SYNTAX;
    reply->code = smtp_param_errs[err].code;
    reply->dsn = smtp_param_errs[err].dsn;
    reply->text = smtp_param_errs[err].text;
}

/* smtp_param_xtext_decode - RFC 3461 4 xtext */
int smtp_param_xtext_decode(VSTR *out, const char *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];

        if (ch == '+') {
            int hi = i + 2 < len ? smtp_param_hexval(in[i + 1]) : -1;
            int lo = i + 2 < len ? smtp_param_hexval(in[i + 2]) : -1;

            if (hi < 0 || lo < 0 || (hi | lo) == 0)
                return -1;
            ch = (unsigned char)(hi << 4 | lo);
            i += 2;
        } else if (ch < 33 || ch > 126 || ch == '=') {
            return -1;
        }
        if (vstr_addch(out, ch) < 0)
            return -1;
    }
    return 0;
}

/* smtp_param_xtext_encode - "+" HEX HEX for "+", "=", and octets outside 33-126 */
int smtp_param_xtext_encode(VSTR *out, const char *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        int ret;

        if (ch < 33 || ch > 126 || ch == '+' || ch == '=')
            ret = vstr_sprintf_append(out, "+%02X", ch);
        else
            ret = vstr_addch(out, ch);
        if (ret < 0)
            return -1;
    }
    return 0;
}

/* smtp_param_put_utf8 - append code point cp as UTF-8 */
static int smtp_param_put_utf8(VSTR *out, unsigned long cp)
{
    char buf[4];
    size_t n;

    if (cp < 0x80) {
        buf[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        buf[0] = (char)(0xC0 | cp >> 6);
        buf[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        buf[0] = (char)(0xE0 | cp >> 12);
        buf[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        buf[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        buf[0] = (char)(0xF0 | cp >> 18);
        buf[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        buf[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        buf[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return vstr_ncat(out, buf, n);
}

/* smtp_param_hexpoint - "\x{HEX}" at in; its length, 0 if malformed */
static size_t smtp_param_hexpoint(const char *in, size_t len, unsigned long *cp)
{
    size_t i = 3;
    int val;

    if (len < 6 || in[1] != 'x' || in[2] != '{')
        return 0;
    *cp = 0;
    while (i < len && i - 3 <= SMTP_PARAM_HEXPOINT_MAX && (val = smtp_param_hexval(in[i])) >= 0) {
        *cp = *cp << 4 | (unsigned long)val;
        i++;
    }
    size_t digits = i - 3;

    if (i >= len || in[i] != '}' || digits < 2 || digits > SMTP_PARAM_HEXPOINT_MAX)
        return 0;
    /* Shortest form only: two digits below 0x100, no leading zero above. */
    if ((*cp < 0x100) != (digits == 2) || (digits > 2 && in[3] == '0'))
        return 0;
    if (*cp == 0 || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF))
        return 0;
    return i + 1;
}

/* smtp_param_utf8_addr_decode - RFC 6533 3 */
int smtp_param_utf8_addr_decode(VSTR *out, const char *in, size_t len, int unitext)
{
    size_t i = 0;
    size_t start = vstr_len(out);

    while (i < len) {
        unsigned char ch = (unsigned char)in[i];
        unsigned long cp;
        size_t n;

        if (ch == '\\') {
            if ((n = smtp_param_hexpoint(in + i, len - i, &cp)) == 0 ||
                smtp_param_put_utf8(out, cp) < 0)
                return -1;
        } else if (ch >= 0x80) {
            n = smtp_addr_utf8_seq((const unsigned char *)in + i, len - i);
            if (!unitext || n == 0 || vstr_ncat(out, in + i, n) < 0)
                return -1;
        } else if (ch < 0x21 || ch > 0x7E || ch == '+' || ch == '=') {
            return -1; /* QCHARx / QUCHAR exclude these; they must be escaped */
        } else {
            n = 1;
            if (vstr_addch(out, ch) < 0)
                return -1;
        }
        i += n;
    }
    /* The result must be a Mailbox: no controls. */
    for (size_t j = start; j < vstr_len(out); j++) {
        unsigned char ch = (unsigned char)vstr_str(out)[j];

        if (ch < 0x20 || ch == 0x7F)
            return -1;
    }
    return 0;
}

/* smtp_param_utf8_cp - code point of a valid sequence of n octets */
static unsigned long smtp_param_utf8_cp(const unsigned char *p, size_t n)
{
    static const unsigned char lead_mask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    unsigned long cp = p[0] & lead_mask[n];

    for (size_t i = 1; i < n; i++)
        cp = cp << 6 | (p[i] & 0x3F);
    return cp;
}

/* smtp_param_utf8_addr_encode - escape "\", "+", "=", SP, controls; non-ASCII unless unitext */
int smtp_param_utf8_addr_encode(VSTR *out, const char *in, size_t len, int unitext)
{
    size_t i = 0;

    while (i < len) {
        const unsigned char *p = (const unsigned char *)in + i;
        size_t n = smtp_addr_utf8_seq(p, len - i);
        int ret;

        if (n == 0)
            return -1;
        if (n == 1 && p[0] >= 0x21 && p[0] <= 0x7E && p[0] != '\\' && p[0] != '+' && p[0] != '=')
            ret = vstr_addch(out, p[0]);
        else if (n > 1 && unitext)
            ret = vstr_ncat(out, p, n);
        else
            ret = vstr_sprintf_append(out, "\\x{%02lX}", smtp_param_utf8_cp(p, n));
        if (ret < 0)
            return -1;
        i += n;
    }
    return 0;
}
