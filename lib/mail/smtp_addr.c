/*
 * smtp_addr - parse, quote and inspect MAIL FROM / RCPT TO paths
 * (RFC 5321 4.1.2, 4.1.3, 4.5.3.1; RFC 6531). See smtp_addr.h.
 */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "mail/smtp_addr.h"
#include "util/mymalloc.h"

#define SMTP_ADDR_IPV6_TEXT_MAX 45 /* longest IPv6 text form (INET6_ADDRSTRLEN - 1) */

static const char *const smtp_addr_reasons[] = {
    [SMTP_ADDR_OK] = "ok",
    [SMTP_ADDR_ERR_EMPTY] = "empty address",
    [SMTP_ADDR_ERR_BRACKET] = "missing or misplaced angle bracket",
    [SMTP_ADDR_ERR_TRAILING] = "text after the closing angle bracket",
    [SMTP_ADDR_ERR_NULL_RCPT] = "null address as recipient",
    [SMTP_ADDR_ERR_ROUTE] = "malformed source route",
    [SMTP_ADDR_ERR_LOCAL] = "malformed local part",
    [SMTP_ADDR_ERR_QUOTE] = "malformed quoted local part",
    [SMTP_ADDR_ERR_EMPTY_LOCAL] = "empty local part",
    [SMTP_ADDR_ERR_NO_DOMAIN] = "missing domain",
    [SMTP_ADDR_ERR_DOMAIN] = "malformed domain",
    [SMTP_ADDR_ERR_NUMERIC] = "numeric top-level domain (use an address literal)",
    [SMTP_ADDR_ERR_LITERAL] = "malformed address literal",
    [SMTP_ADDR_ERR_LOCAL_LONG] = "local part too long",
    [SMTP_ADDR_ERR_DOMAIN_LONG] = "domain too long",
    [SMTP_ADDR_ERR_LABEL_LONG] = "domain label too long",
    [SMTP_ADDR_ERR_PATH_LONG] = "path too long",
    [SMTP_ADDR_ERR_BAD_UTF8] = "malformed UTF-8",
    [SMTP_ADDR_ERR_NEED_SMTPUTF8] = "non-ASCII address without SMTPUTF8",
};

/* smtp_addr_alloc - result holder with bounded strings */
SMTP_ADDR *smtp_addr_alloc(void)
{
    SMTP_ADDR *addr = mymalloc(sizeof(*addr));

    addr->addr = vstr_alloc(64);
    addr->local = vstr_alloc(64);
    addr->domain = vstr_alloc(64);
    vstr_set_limit(addr->addr, SMTP_ADDR_LOCAL_MAX + 1 + SMTP_ADDR_DOMAIN_MAX);
    vstr_set_limit(addr->local, SMTP_ADDR_LOCAL_MAX);
    vstr_set_limit(addr->domain, SMTP_ADDR_DOMAIN_MAX);
    addr->flags = 0;
    return addr;
}

void smtp_addr_free(SMTP_ADDR *addr)
{
    if (addr) {
        vstr_free(addr->addr);
        vstr_free(addr->local);
        vstr_free(addr->domain);
        myfree(addr);
    }
}

/* smtp_addr_utf8_seq - strict RFC 3629 check of one sequence */
size_t smtp_addr_utf8_seq(const unsigned char *p, size_t len)
{
    unsigned char lo = 0x80, hi = 0xBF;
    size_t need;

    if (len == 0)
        return 0;
    if (p[0] < 0x80)
        return 1;
    if (p[0] < 0xC2) /* continuation byte, or overlong 2-octet form */
        return 0;
    if (p[0] < 0xE0) {
        need = 2;
    } else if (p[0] < 0xF0) {
        need = 3;
        if (p[0] == 0xE0)
            lo = 0xA0; /* overlong */
        else if (p[0] == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
    } else if (p[0] < 0xF5) {
        need = 4;
        if (p[0] == 0xF0)
            lo = 0x90; /* overlong */
        else if (p[0] == 0xF4)
            hi = 0x8F; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (len < need || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return need;
}

/* smtp_addr_utf8_valid - every sequence valid */
int smtp_addr_utf8_valid(const char *str, size_t len)
{
    const unsigned char *p = (const unsigned char *)str;

    while (len > 0) {
        size_t n = smtp_addr_utf8_seq(p, len);

        if (n == 0)
            return 0;
        p += n;
        len -= n;
    }
    return 1;
}

static int smtp_addr_digit(int ch)
{
    return ch >= '0' && ch <= '9';
}

static int smtp_addr_letdig(int ch)
{
    return smtp_addr_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int smtp_addr_blank(int ch)
{
    return ch == ' ' || ch == '\t';
}

/* smtp_addr_atext - RFC 5322 3.2.3 atext (ASCII part) */
static int smtp_addr_atext(int ch)
{
    return smtp_addr_letdig(ch) || (ch != 0 && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL);
}

/* smtp_addr_nonascii - one UTF-8 sequence where SMTPUTF8 decides */
static enum smtp_addr_err smtp_addr_nonascii(const char *s, size_t n, int flags, size_t *seq)
{
    *seq = smtp_addr_utf8_seq((const unsigned char *)s, n);
    if (*seq == 0)
        return SMTP_ADDR_ERR_BAD_UTF8;
    if (!(flags & SMTP_ADDR_FLAG_UTF8))
        return SMTP_ADDR_ERR_NEED_SMTPUTF8;
    return SMTP_ADDR_OK;
}

/* smtp_addr_quoted_end - length through the closing quote at s[0]; 0 if none */
static size_t smtp_addr_quoted_end(const char *s, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return 0;
}

/* smtp_addr_find_close - length of "<...>" honouring quotes */
static enum smtp_addr_err smtp_addr_find_close(const char *s, size_t n, size_t *path_len)
{
    for (size_t i = 1; i < n; i++) {
        if (s[i] == '"') {
            size_t q = smtp_addr_quoted_end(s + i, n - i);

            if (q == 0)
                return SMTP_ADDR_ERR_QUOTE;
            i += q - 1;
        } else if (s[i] == '>') {
            *path_len = i + 1;
            return SMTP_ADDR_OK;
        } else if (s[i] == '<') {
            return SMTP_ADDR_ERR_BRACKET;
        }
    }
    return SMTP_ADDR_ERR_BRACKET;
}

/* smtp_addr_find_blank - length up to the first blank outside quotes */
static size_t smtp_addr_find_blank(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n && !smtp_addr_blank(s[i]); i++) {
        if (s[i] == '"') {
            size_t q = smtp_addr_quoted_end(s + i, n - i);

            if (q == 0)
                return n;
            i += q - 1;
        }
    }
    return i;
}

/* smtp_addr_ipv4 - Snum 3("." Snum), Snum = 1*3DIGIT in 0..255 */
static int smtp_addr_ipv4(const char *s, size_t n)
{
    size_t i = 0;

    for (int part = 0; part < 4; part++) {
        unsigned val = 0;
        size_t start;

        if (part > 0 && (i >= n || s[i++] != '.'))
            return -1;
        start = i;
        while (i < n && smtp_addr_digit(s[i]) && i - start < 3)
            val = val * 10 + (unsigned)(s[i++] - '0');
        if (i == start || val > 255)
            return -1;
    }
    return i == n ? 0 : -1;
}

/* smtp_addr_ipv6 - "IPv6:" already removed; inet_pton decides */
static int smtp_addr_ipv6(const char *s, size_t n)
{
    char buf[SMTP_ADDR_IPV6_TEXT_MAX + 1];
    struct in6_addr in6;

    if (n == 0 || n > SMTP_ADDR_IPV6_TEXT_MAX)
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    return inet_pton(AF_INET6, buf, &in6) == 1 ? 0 : -1;
}

/* smtp_addr_general - Standardized-tag ":" 1*dcontent (RFC 5321 4.1.3) */
static int smtp_addr_general(const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    size_t tag;

    if (colon == NULL || colon == s || colon == s + n - 1)
        return -1;
    tag = (size_t)(colon - s);
    for (size_t i = 0; i < tag; i++)
        if (!smtp_addr_letdig(s[i]) && s[i] != '-')
            return -1;
    if (!smtp_addr_letdig(s[tag - 1]))
        return -1;
    for (size_t i = tag + 1; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        /* dcontent = %d33-90 / %d94-126: no "[", "\", "]" */
        if (ch < 33 || ch > 126 || ch == '[' || ch == '\\' || ch == ']')
            return -1;
    }
    return 0;
}

/* smtp_addr_literal - "[" IPv4 / "IPv6:" IPv6 / General "]"; sets a LIT flag */
static enum smtp_addr_err smtp_addr_literal(const char *s, size_t n, int *lit)
{
    const char *in = s + 1;
    size_t m;
    size_t i;

    if (n < 3 || s[n - 1] != ']')
        return SMTP_ADDR_ERR_LITERAL;
    m = n - 2;
    if (m > 5 && strncasecmp(in, "IPv6:", 5) == 0) {
        *lit = SMTP_ADDR_LIT_IPV6;
        return smtp_addr_ipv6(in + 5, m - 5) == 0 ? SMTP_ADDR_OK : SMTP_ADDR_ERR_LITERAL;
    }
    for (i = 0; i < m && (smtp_addr_digit(in[i]) || in[i] == '.'); i++)
        /* void */;
    if (i == m) {
        *lit = SMTP_ADDR_LIT_IPV4;
        return smtp_addr_ipv4(in, m) == 0 ? SMTP_ADDR_OK : SMTP_ADDR_ERR_LITERAL;
    }
    *lit = SMTP_ADDR_LIT_GENERAL;
    return smtp_addr_general(in, m) == 0 ? SMTP_ADDR_OK : SMTP_ADDR_ERR_LITERAL;
}

/* smtp_addr_label - one sub-domain: Let-dig [Ldh-str], or a U-label */
static enum smtp_addr_err smtp_addr_label(const char *s, size_t n, int flags, size_t *end,
                                          int *numeric)
{
    enum smtp_addr_err err;
    size_t i = 0;
    size_t seq;
    int ascii = 1;

    *numeric = 1;
    while (i < n && s[i] != '.') {
        if ((unsigned char)s[i] >= 0x80) {
            if ((err = smtp_addr_nonascii(s + i, n - i, flags, &seq)) != SMTP_ADDR_OK)
                return err;
            i += seq;
            ascii = *numeric = 0;
            continue;
        }
        if (!smtp_addr_letdig(s[i]) && s[i] != '-')
            return SMTP_ADDR_ERR_DOMAIN;
        if (!smtp_addr_digit(s[i]))
            *numeric = 0;
        i++;
    }
    if (i == 0 || s[0] == '-' || s[i - 1] == '-')
        return SMTP_ADDR_ERR_DOMAIN;
    if (ascii && i > SMTP_ADDR_LABEL_MAX)
        return SMTP_ADDR_ERR_LABEL_LONG;
    *end = i;
    return SMTP_ADDR_OK;
}

/* smtp_addr_domain - sub-domain *("." sub-domain), last label not numeric */
static enum smtp_addr_err smtp_addr_domain(const char *s, size_t n, int flags)
{
    enum smtp_addr_err err;
    size_t i = 0;
    size_t len;
    int numeric;

    for (;;) {
        if ((err = smtp_addr_label(s + i, n - i, flags, &len, &numeric)) != SMTP_ADDR_OK)
            return err;
        i += len;
        if (i == n)
            return numeric ? SMTP_ADDR_ERR_NUMERIC : SMTP_ADDR_OK;
        i++; /* the dot; a trailing dot leaves an empty label */
    }
}

/* smtp_addr_route - A-d-l ":" ; *end is past the colon */
static enum smtp_addr_err smtp_addr_route(const char *s, size_t n, int flags, size_t *end)
{
    enum smtp_addr_err err;
    size_t i = 0;

    for (;;) {
        size_t j;

        if (i >= n || s[i] != '@')
            return SMTP_ADDR_ERR_ROUTE;
        for (j = ++i; j < n && s[j] != ',' && s[j] != ':'; j++)
            /* void */;
        if (j == n)
            return SMTP_ADDR_ERR_ROUTE;
        err = smtp_addr_domain(s + i, j - i, flags);
        if (err == SMTP_ADDR_ERR_BAD_UTF8 || err == SMTP_ADDR_ERR_NEED_SMTPUTF8)
            return err;
        if (err != SMTP_ADDR_OK)
            return SMTP_ADDR_ERR_ROUTE;
        i = j + 1;
        if (s[j] == ':')
            break;
    }
    if (i == n)
        return SMTP_ADDR_ERR_ROUTE;
    *end = i;
    return SMTP_ADDR_OK;
}

/* smtp_addr_dotstring - Atom *("." Atom) up to "@" or the end */
static enum smtp_addr_err smtp_addr_dotstring(VSTR *local, const char *s, size_t n, int flags,
                                              size_t *end)
{
    enum smtp_addr_err err;
    size_t i = 0;
    size_t seq;
    int after_dot = 1;

    while (i < n && s[i] != '@') {
        if (s[i] == '.') {
            if (after_dot)
                return SMTP_ADDR_ERR_LOCAL;
            after_dot = 1;
            i++;
        } else if ((unsigned char)s[i] >= 0x80) {
            if ((err = smtp_addr_nonascii(s + i, n - i, flags, &seq)) != SMTP_ADDR_OK)
                return err;
            after_dot = 0;
            i += seq;
        } else if (smtp_addr_atext(s[i])) {
            after_dot = 0;
            i++;
        } else {
            return (s[i] == '"') ? SMTP_ADDR_ERR_QUOTE : SMTP_ADDR_ERR_LOCAL;
        }
    }
    if (after_dot) /* empty, or ends in a dot */
        return SMTP_ADDR_ERR_LOCAL;
    if (i > SMTP_ADDR_LOCAL_MAX || vstr_ncpy(local, s, i) < 0)
        return SMTP_ADDR_ERR_LOCAL_LONG;
    *end = i;
    return SMTP_ADDR_OK;
}

/* smtp_addr_quoted - DQUOTE *QcontentSMTP DQUOTE, unquoted into local */
static enum smtp_addr_err smtp_addr_quoted(VSTR *local, const char *s, size_t n, int flags,
                                           size_t *end)
{
    enum smtp_addr_err err;
    size_t i = 1;
    size_t seq;
    size_t wire = smtp_addr_quoted_end(s, n);

    if (wire == 0)
        return SMTP_ADDR_ERR_QUOTE;
    if (wire > SMTP_ADDR_LOCAL_MAX)
        return SMTP_ADDR_ERR_LOCAL_LONG;
    vstr_reset(local);
    while (i < wire - 1) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '\\') {
            /* quoted-pairSMTP = %d92 %d32-126 */
            ch = (unsigned char)s[i + 1];
            if (ch < 32 || ch > 126)
                return SMTP_ADDR_ERR_QUOTE;
            vstr_addch(local, ch);
            i += 2;
        } else if (ch >= 0x80) {
            if ((err = smtp_addr_nonascii(s + i, n - i, flags, &seq)) != SMTP_ADDR_OK)
                return err;
            vstr_ncat(local, s + i, seq);
            i += seq;
        } else if (ch < 32 || ch == 127) {
            return SMTP_ADDR_ERR_QUOTE;
        } else {
            vstr_addch(local, ch);
            i++;
        }
    }
    if (vstr_len(local) == 0)
        return SMTP_ADDR_ERR_EMPTY_LOCAL;
    *end = wire;
    return SMTP_ADDR_OK;
}

/* smtp_addr_no_domain - a local part alone: <postmaster> or LOCAL_OK */
static enum smtp_addr_err smtp_addr_no_domain(SMTP_ADDR *addr, int flags)
{
    if ((flags & SMTP_ADDR_FLAG_RCPT) && !(addr->flags & SMTP_ADDR_WAS_QUOTED) &&
        vstr_len(addr->local) == 10 && strcasecmp(vstr_str(addr->local), "postmaster") == 0)
        addr->flags |= SMTP_ADDR_IS_POSTMASTER;
    else if (!(flags & SMTP_ADDR_FLAG_LOCAL_OK))
        return SMTP_ADDR_ERR_NO_DOMAIN;
    vstr_cpy(addr->addr, vstr_str(addr->local));
    return SMTP_ADDR_OK;
}

/* smtp_addr_mailbox - Local-part "@" ( Domain / address-literal ) */
static enum smtp_addr_err smtp_addr_mailbox(SMTP_ADDR *addr, const char *s, size_t n, int flags)
{
    enum smtp_addr_err err;
    size_t i = 0;
    int lit = 0;

    if (n > 0 && s[0] == '"') {
        addr->flags |= SMTP_ADDR_WAS_QUOTED;
        err = smtp_addr_quoted(addr->local, s, n, flags, &i);
    } else {
        err = smtp_addr_dotstring(addr->local, s, n, flags, &i);
    }
    if (err != SMTP_ADDR_OK)
        return err;
    if (i == n)
        return smtp_addr_no_domain(addr, flags);
    if (s[i] != '@')
        return SMTP_ADDR_ERR_QUOTE; /* text after the closing quote */
    s += i + 1;
    n -= i + 1;
    if (n == 0)
        return SMTP_ADDR_ERR_DOMAIN;
    if (n > SMTP_ADDR_DOMAIN_MAX)
        return SMTP_ADDR_ERR_DOMAIN_LONG;
    err = (s[0] == '[') ? smtp_addr_literal(s, n, &lit) : smtp_addr_domain(s, n, flags);
    if (err != SMTP_ADDR_OK)
        return err;
    addr->flags |= lit;
    vstr_ncpy(addr->domain, s, n);
    vstr_cpy(addr->addr, vstr_str(addr->local));
    vstr_addch(addr->addr, '@');
    vstr_ncat(addr->addr, s, n);
    return SMTP_ADDR_OK;
}

/* smtp_addr_inner - what sits between the angle brackets */
static enum smtp_addr_err smtp_addr_inner(SMTP_ADDR *addr, const char *s, size_t n, int flags)
{
    enum smtp_addr_err err;
    size_t i = 0;

    if (n == 0) {
        if (flags & SMTP_ADDR_FLAG_RCPT)
            return SMTP_ADDR_ERR_NULL_RCPT;
        addr->flags |= SMTP_ADDR_IS_NULL;
        return SMTP_ADDR_OK;
    }
    /* RFC 5321 4.1.2 / C: source routes MUST be accepted and SHOULD be ignored. */
    if (s[0] == '@') {
        if ((err = smtp_addr_route(s, n, flags, &i)) != SMTP_ADDR_OK)
            return err;
        addr->flags |= SMTP_ADDR_HAD_ROUTE;
    }
    return smtp_addr_mailbox(addr, s + i, n - i, flags);
}

/* smtp_addr_has_8bit - any octet above 127 */
static int smtp_addr_has_8bit(const VSTR *vs)
{
    for (size_t i = 0; i < vstr_len(vs); i++)
        if ((unsigned char)vstr_str(vs)[i] >= 0x80)
            return 1;
    return 0;
}

/* smtp_addr_parse - delimit the path, check its length, parse what is inside */
enum smtp_addr_err smtp_addr_parse(SMTP_ADDR *addr, const char *str, size_t len, int flags,
                                   size_t *used)
{
    enum smtp_addr_err err;
    size_t path_len = 0;
    size_t wire_len;
    const char *inner;
    size_t inner_len;

    vstr_reset(addr->addr);
    vstr_reset(addr->local);
    vstr_reset(addr->domain);
    addr->flags = 0;
    *used = 0;
    if (len == 0 || smtp_addr_blank(str[0]))
        return SMTP_ADDR_ERR_EMPTY;
    if (str[0] == '<') {
        if ((err = smtp_addr_find_close(str, len, &path_len)) != SMTP_ADDR_OK)
            return err;
        if (path_len < len && !smtp_addr_blank(str[path_len]))
            return SMTP_ADDR_ERR_TRAILING;
        inner = str + 1;
        inner_len = path_len - 2;
        wire_len = path_len;
    } else {
        if (!(flags & SMTP_ADDR_FLAG_LENIENT))
            return SMTP_ADDR_ERR_BRACKET;
        path_len = smtp_addr_find_blank(str, len);
        inner = str;
        inner_len = path_len;
        wire_len = path_len + 2; /* as if it had its brackets */
        addr->flags |= SMTP_ADDR_NO_BRACKETS;
    }
    *used = path_len;
    if (wire_len > SMTP_ADDR_PATH_MAX)
        return SMTP_ADDR_ERR_PATH_LONG;
    if ((err = smtp_addr_inner(addr, inner, inner_len, flags)) != SMTP_ADDR_OK)
        return err;
    if (smtp_addr_has_8bit(addr->addr))
        addr->flags |= SMTP_ADDR_HAS_UTF8;
    return SMTP_ADDR_OK;
}

/* smtp_addr_strerror - reason text */
const char *smtp_addr_strerror(enum smtp_addr_err err)
{
    if ((unsigned)err >= sizeof(smtp_addr_reasons) / sizeof(smtp_addr_reasons[0]))
        return "unknown error";
    return smtp_addr_reasons[err];
}

/* smtp_addr_reply - Postfix-style replies: 501 5.1.7 sender, 501 5.1.3 recipient */
void smtp_addr_reply(enum smtp_addr_err err, int flags, SMTP_REPLY *reply)
{
    int rcpt = (flags & SMTP_ADDR_FLAG_RCPT) != 0;

    reply->code = 501;
    reply->dsn = rcpt ? "5.1.3" : "5.1.7";
    switch (err) {
    case SMTP_ADDR_OK:
        reply->code = 250;
        reply->dsn = rcpt ? "2.1.5" : "2.1.0";
        reply->text = "Ok";
        break;
    case SMTP_ADDR_ERR_NEED_SMTPUTF8:
        /* RFC 6531 3.5 / RFC 6533: X.6.7 non-ASCII address not permitted */
        reply->code = 553;
        reply->dsn = "5.6.7";
        reply->text = "Must declare SMTPUTF8 to send unicode address";
        break;
    case SMTP_ADDR_ERR_PATH_LONG:
    case SMTP_ADDR_ERR_LOCAL_LONG:
    case SMTP_ADDR_ERR_DOMAIN_LONG:
    case SMTP_ADDR_ERR_LABEL_LONG:
        /* RFC 5321 4.5.3.1.10: "501 Path too long" */
        reply->text = rcpt ? "Recipient address too long" : "Sender address too long";
        break;
    default:
        reply->text = rcpt ? "Bad recipient address syntax" : "Bad sender address syntax";
        break;
    }
}

/* smtp_addr_local_needs_quote - not a Dot-string (octets above 127 count as atext) */
int smtp_addr_local_needs_quote(const char *local, size_t len)
{
    int after_dot = 1;

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)local[i];

        if (ch == '.') {
            if (after_dot)
                return 1;
            after_dot = 1;
        } else if (ch >= 0x80 || smtp_addr_atext(ch)) {
            after_dot = 0;
        } else {
            return 1;
        }
    }
    return after_dot;
}

/* smtp_addr_has_ctl - controls cannot be written in any SMTP form */
static int smtp_addr_has_ctl(const char *str, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)str[i] < 32 || str[i] == 127)
            return 1;
    return 0;
}

/* smtp_addr_quote_local - append Dot-string as is, else a Quoted-string */
int smtp_addr_quote_local(VSTR *out, const char *local, size_t len)
{
    if (smtp_addr_has_ctl(local, len))
        return -1;
    if (!smtp_addr_local_needs_quote(local, len))
        return vstr_ncat(out, local, len);
    if (vstr_addch(out, '"') < 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if ((local[i] == '"' || local[i] == '\\') && vstr_addch(out, '\\') < 0)
            return -1;
        if (vstr_addch(out, local[i]) < 0)
            return -1;
    }
    return vstr_addch(out, '"');
}

/* smtp_addr_external - internal form to the form sent after "MAIL FROM:<" */
int smtp_addr_external(VSTR *out, const char *internal, size_t len)
{
    /* The local part may hold "@" (it was quoted): the domain follows the last. */
    const char *at = memrchr(internal, '@', len);
    size_t local_len = at ? (size_t)(at - internal) : len;

    vstr_reset(out);
    if (len == 0)
        return 0;
    if (smtp_addr_quote_local(out, internal, local_len) < 0)
        return -1;
    if (at == NULL)
        return 0;
    if (smtp_addr_has_ctl(at, len - local_len))
        return -1;
    return vstr_ncat(out, at, len - local_len);
}

/* smtp_addr_routing - "%", "!" or "@" in a local part: user-specified relaying */
int smtp_addr_routing(const char *local, size_t len)
{
    int found = 0;

    for (size_t i = 0; i < len; i++) {
        if (local[i] == '%')
            found |= SMTP_ADDR_ROUTE_PERCENT;
        else if (local[i] == '!')
            found |= SMTP_ADDR_ROUTE_BANG;
        else if (local[i] == '@')
            found |= SMTP_ADDR_ROUTE_AT;
    }
    return found;
}

/* smtp_addr_lower_domain - domains compare without case; local parts do not */
void smtp_addr_lower_domain(SMTP_ADDR *addr)
{
    size_t dlen = vstr_len(addr->domain);
    size_t alen = vstr_len(addr->addr);

    vstr_lower(addr->domain);
    /* RFC 5321 4.1.3 spells the tag "IPv6:"; keep that form for replies and logs. */
    if (dlen > 6 && memcmp(vstr_str(addr->domain), "[ipv6:", 6) == 0)
        memcpy(vstr_str(addr->domain) + 1, "IPv6", 4);
    if (dlen == 0 || dlen > alen)
        return;
    memcpy(vstr_str(addr->addr) + alen - dlen, vstr_str(addr->domain), dlen);
}
