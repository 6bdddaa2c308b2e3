/*
 * hdr_addr - address-list parsing for header values (see hdr_addr.h).
 *
 * Two passes: a tokenizer turns the value into words (atoms, quoted
 * strings, domain literals) and specials, dropping comments and white
 * space; then each list element (tokens between ',' or ';' outside angle
 * brackets, with a group's display name before ':' discarded) becomes one
 * addr-spec. Everything is bounded by the value's length, which the caller
 * bounds (header_size_limit).
 */
#include <string.h>

#include "mail/hdr_addr.h"
#include "util/argv.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

enum hdr_tok_type {
    HDR_TOK_ATOM,    /* atom or dot-atom piece */
    HDR_TOK_QSTRING, /* quoted string, unquoted in text */
    HDR_TOK_LITERAL, /* [domain literal], brackets included */
    HDR_TOK_SPECIAL, /* one of < > @ , ; : . */
    HDR_TOK_BAD,     /* unterminated quote or literal, control character */
};

typedef struct HDR_TOK {
    enum hdr_tok_type type;
    int ch;       /* HDR_TOK_SPECIAL: the character */
    size_t start; /* text: offset and length in the token arena */
    size_t len;
    int space_before; /* white space or a comment came before it */
} HDR_TOK;

typedef struct HDR_TOKENS {
    HDR_TOK *tok;
    size_t count, cap;
    VSTR *arena; /* token texts */
} HDR_TOKENS;

#define HDR_SPECIALS "<>@,;:."

/* hdr_tok_add - append a token whose text is already at the end of the arena */
static HDR_TOK *hdr_tok_add(HDR_TOKENS *t, enum hdr_tok_type type, size_t start, int space)
{
    HDR_TOK *tk;

    if (t->count == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->tok = myrealloc(t->tok, size_mul(t->cap, sizeof(*t->tok)));
    }
    tk = &t->tok[t->count++];
    tk->type = type;
    tk->ch = 0;
    tk->start = start;
    tk->len = vstr_len(t->arena) - start;
    tk->space_before = space;
    return tk;
}

/* hdr_skip_comment - past a comment starting at *i (RFC 5322 3.2.2: nested, quoted pairs) */
static void hdr_skip_comment(const char *s, size_t len, size_t *i)
{
    int depth = 0;

    for (; *i < len; (*i)++) {
        if (s[*i] == '\\') {
            if (*i + 1 < len)
                (*i)++;
        } else if (s[*i] == '(') {
            depth++;
        } else if (s[*i] == ')' && --depth == 0) {
            (*i)++;
            return;
        }
    }
}

/* hdr_is_ctl - a control character (never part of a returned address) */
static int hdr_is_ctl(unsigned char ch)
{
    return ch < 32 || ch == 127;
}

/* hdr_tokenize - the value's tokens */
static void hdr_tokenize(const char *s, size_t len, HDR_TOKENS *t)
{
    size_t i = 0;
    int space = 0;

    while (i < len) {
        unsigned char ch = (unsigned char)s[i];
        size_t start = vstr_len(t->arena);

        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            space = 1;
            i++;
        } else if (ch == '(') {
            hdr_skip_comment(s, len, &i);
            space = 1;
        } else if (ch == '"') {
            int bad = 1;

            for (i++; i < len; i++) {
                if (s[i] == '"') {
                    bad = 0;
                    i++;
                    break;
                }
                if (s[i] == '\\' && i + 1 < len)
                    i++;
                if (s[i] == '\n') /* a fold inside a quoted string is not content */
                    continue;
                if (hdr_is_ctl((unsigned char)s[i]) && s[i] != '\t')
                    bad = 2;
                vstr_addch(t->arena, s[i]);
            }
            hdr_tok_add(t, bad ? HDR_TOK_BAD : HDR_TOK_QSTRING, start, space);
            space = 0;
        } else if (ch == '[') {
            int bad = 1;

            for (; i < len; i++) {
                if (s[i] == '\n')
                    continue;
                if (hdr_is_ctl((unsigned char)s[i]) ||
                    (s[i] == '[' && vstr_len(t->arena) > start)) {
                    bad = 1;
                    break;
                }
                vstr_addch(t->arena, s[i]);
                if (s[i] == ']') {
                    bad = 0;
                    i++;
                    break;
                }
            }
            hdr_tok_add(t, bad ? HDR_TOK_BAD : HDR_TOK_LITERAL, start, space);
            space = 0;
        } else if (strchr(HDR_SPECIALS, ch) != NULL && ch != 0) {
            hdr_tok_add(t, HDR_TOK_SPECIAL, start, space)->ch = ch;
            space = 0;
            i++;
        } else if (hdr_is_ctl(ch) || ch == ')' || ch == ']' || ch == '\\') {
            hdr_tok_add(t, HDR_TOK_BAD, start, space);
            space = 0;
            i++;
        } else {
            /* atext, and 8-bit bytes for RFC 6532 UTF-8 headers */
            while (i < len) {
                ch = (unsigned char)s[i];
                if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '(' || ch == '"' ||
                    ch == '[' || ch == ')' || ch == ']' || ch == '\\' || hdr_is_ctl(ch) ||
                    strchr(HDR_SPECIALS, ch) != NULL)
                    break;
                vstr_addch(t->arena, ch);
                i++;
            }
            hdr_tok_add(t, HDR_TOK_ATOM, start, space);
            space = 0;
        }
    }
}

/* hdr_tok_is - the token is the special character ch */
static int hdr_tok_is(const HDR_TOK *tk, int ch)
{
    return tk->type == HDR_TOK_SPECIAL && tk->ch == ch;
}

/*
 * hdr_addr_spec - tokens [from, to) as local-part "@" domain into out; 0, or
 * -1 when they do not form an address. Obsolete forms accepted: white space
 * around the dots of a local part or domain.
 */
static int hdr_addr_spec(const HDR_TOKENS *t, size_t from, size_t to, VSTR *out)
{
    size_t i = from, words = 0;
    int want_word = 1;

    vstr_reset(out);
    /* local-part = word *("." word) */
    for (; i < to && !hdr_tok_is(&t->tok[i], '@'); i++) {
        const HDR_TOK *tk = &t->tok[i];

        if (tk->type == HDR_TOK_ATOM || tk->type == HDR_TOK_QSTRING) {
            if (!want_word)
                return -1; /* two words in a row: a phrase, not an address */
            vstr_ncat(out, vstr_str(t->arena) + tk->start, tk->len);
            want_word = 0;
            words++;
        } else if (hdr_tok_is(tk, '.') && !want_word) {
            vstr_addch(out, '.');
            want_word = 1;
        } else {
            return -1;
        }
    }
    if (words == 0 || want_word)
        return -1;
    if (i == to)
        return 0; /* no domain: the caller decides */
    vstr_addch(out, '@');
    /* domain = dot-atom / domain-literal */
    want_word = 1;
    words = 0;
    for (i++; i < to; i++) {
        const HDR_TOK *tk = &t->tok[i];

        if ((tk->type == HDR_TOK_ATOM || tk->type == HDR_TOK_LITERAL) && want_word &&
            (tk->type == HDR_TOK_ATOM || words == 0)) {
            vstr_ncat(out, vstr_str(t->arena) + tk->start, tk->len);
            want_word = 0;
            words++;
            if (tk->type == HDR_TOK_LITERAL && i + 1 != to)
                return -1;
        } else if (hdr_tok_is(tk, '.') && !want_word) {
            vstr_addch(out, '.');
            want_word = 1;
        } else {
            return -1;
        }
    }
    return words > 0 && !want_word ? 0 : -1;
}

/* hdr_addr_ok - a result we hand out: bounded, no control characters */
static int hdr_addr_ok(const VSTR *addr)
{
    if (vstr_len(addr) == 0 || vstr_len(addr) > HDR_ADDR_MAX)
        return 0;
    for (size_t i = 0; i < vstr_len(addr); i++)
        if (hdr_is_ctl((unsigned char)vstr_str(addr)[i]))
            return 0;
    return 1;
}

/*
 * hdr_element - one list element, tokens [from, to): "phrase <addr>" or a
 * bare addr-spec; 1 and the address in out, 0 for an empty element, -1 when
 * it is not an address.
 */
static int hdr_element(const HDR_TOKENS *t, size_t from, size_t to, VSTR *out)
{
    size_t lt, gt, i;

    if (from == to)
        return 0;
    for (lt = from; lt < to && !hdr_tok_is(&t->tok[lt], '<'); lt++)
        ;
    if (lt == to)
        return hdr_addr_spec(t, from, to, out) == 0 && hdr_addr_ok(out) ? 1 : -1;
    for (gt = lt + 1; gt < to && !hdr_tok_is(&t->tok[gt], '>'); gt++)
        ;
    if (gt == to)
        return -1;
    /* RFC 5322 4.4 obs-angle-addr: drop a source route "@a,@b:" */
    i = lt + 1;
    if (i < gt && hdr_tok_is(&t->tok[i], '@')) {
        size_t colon;

        for (colon = i; colon < gt && !hdr_tok_is(&t->tok[colon], ':'); colon++)
            ;
        if (colon == gt)
            return -1;
        i = colon + 1;
    }
    if (i == gt)
        return -1; /* "<>" is no recipient */
    return hdr_addr_spec(t, i, gt, out) == 0 && hdr_addr_ok(out) ? 1 : -1;
}

/* hdr_addr_list - the addresses of an address-list value */
size_t hdr_addr_list(const char *value, size_t len, ARGV *out, size_t max, size_t *skipped)
{
    HDR_TOKENS t = {NULL, 0, 0, vstr_alloc(len + 1)};
    VSTR *addr = vstr_alloc(100);
    size_t added = 0, bad = 0, start = 0, i;
    int in_angle = 0;

    hdr_tokenize(value, len, &t);
    for (i = 0; i <= t.count; i++) {
        const HDR_TOK *tk = i < t.count ? &t.tok[i] : NULL;
        int r;

        if (tk && hdr_tok_is(tk, '<')) {
            in_angle = 1;
            continue;
        }
        if (tk && hdr_tok_is(tk, '>')) {
            in_angle = 0;
            continue;
        }
        if (tk && in_angle)
            continue;
        if (tk && hdr_tok_is(tk, ':')) {
            /* A group: the display name before the colon is not an address. */
            start = i + 1;
            continue;
        }
        if (tk && !hdr_tok_is(tk, ',') && !hdr_tok_is(tk, ';'))
            continue;
        r = hdr_element(&t, start, i, addr);
        start = i + 1;
        in_angle = 0;
        if (r < 0) {
            bad++;
        } else if (r > 0) {
            if (max > 0 && added >= max)
                break;
            argv_addn(out, vstr_str(addr), vstr_len(addr));
            added++;
        }
    }
    if (skipped)
        *skipped = bad;
    vstr_free(addr);
    vstr_free(t.arena);
    myfree(t.tok);
    return added;
}
