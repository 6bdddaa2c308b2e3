/*
 * dict_cidr - the cidr: table (cidr_table(5)): IPv4 and IPv6 networks.
 *
 *   network/prefix   result        [!]address[/prefix] result
 *   if [!]network/prefix  ...  endif   (may nest)
 *
 * Rules are tried in file order; the first match wins. The lookup key is an
 * address string ("192.0.2.1", "2001:db8::1", optionally in []); a key that
 * is not an address matches nothing. As in Postfix, a bad rule (bad mask,
 * host bits set, no result) is reported with file and line and skipped; an
 * "if" whose pattern is bad makes its whole block match nothing, so a typo
 * never turns conditional rules into unconditional ones.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "mail/dict.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"
#include "util/vstr.h"

#define DICT_CIDR_ADDR_BYTES 16
#define DICT_CIDR_ADDR_TEXT 64 /* longer than any address text */

enum dict_cidr_op { CIDR_OP_MATCH, CIDR_OP_IF, CIDR_OP_ENDIF };

typedef struct DICT_CIDR_RULE {
    enum dict_cidr_op op;
    int lineno;
    int negate; /* "!pattern" */
    int broken; /* IF whose pattern did not parse: its block never runs */
    int family; /* AF_INET, AF_INET6 */
    int nbytes; /* 4 or 16 */
    unsigned char net[DICT_CIDR_ADDR_BYTES];
    unsigned char mask[DICT_CIDR_ADDR_BYTES];
    char *result; /* MATCH */
    size_t skip;  /* IF: index of its ENDIF (count when missing) */
} DICT_CIDR_RULE;

typedef struct DICT_CIDR {
    DICT_CIDR_RULE *rules;
    size_t count;
    size_t cap;
} DICT_CIDR;

/* dict_cidr_add - append a rule; returns it */
static DICT_CIDR_RULE *dict_cidr_add(DICT_CIDR *dc, enum dict_cidr_op op, int lineno)
{
    if (dc->count == dc->cap) {
        dc->cap = dc->cap ? size_mul(dc->cap, 2) : 16;
        dc->rules = myrealloc(dc->rules, size_mul(dc->cap, sizeof(*dc->rules)));
    }
    DICT_CIDR_RULE *r = &dc->rules[dc->count++];

    memset(r, 0, sizeof(*r));
    r->op = op;
    r->lineno = lineno;
    return r;
}

/* dict_cidr_parse_addr - address text to bytes; family or 0 */
static int dict_cidr_parse_addr(const char *text, unsigned char *bytes)
{
    int family = strchr(text, ':') ? AF_INET6 : AF_INET;

    /* inet_pton refuses IPv4 octets with leading zeros, which other tools
       read as octal: better no match than a surprise network. */
    return inet_pton(family, text, bytes) == 1 ? family : 0;
}

/* dict_cidr_parse_pattern - "addr", "addr/len", "[addr]", "[addr]/len",
   "[addr/len]" into r; 0, or -1 with why */
static int dict_cidr_parse_pattern(DICT_CIDR_RULE *r, const char *pattern, VSTR *why)
{
    char addr[DICT_CIDR_ADDR_TEXT];
    const char *p = pattern;
    const char *mask = NULL;
    size_t alen;
    long bits;

    if (*p == '[') {
        const char *close = strchr(++p, ']');

        if (close == NULL) {
            vstr_sprintf(why, "missing ']' character after \"%s\"", pattern);
            return -1;
        }
        if (close[1] != 0 && close[1] != '/') {
            vstr_sprintf(why, "garbage after \"%.*s\"", (int)(close - pattern + 1), pattern);
            return -1;
        }
        const char *slash = memchr(p, '/', (size_t)(close - p));

        alen = (size_t)((slash ? slash : close) - p);
        if (slash)
            mask = slash + 1; /* "[addr/len]": the mask ends at ']' */
        else if (close[1] == '/')
            mask = close + 2;
        if (slash && close[1] != 0) {
            vstr_sprintf(why, "garbage after \"%.*s\"", (int)(close - pattern + 1), pattern);
            return -1;
        }
    } else {
        const char *slash = strchr(p, '/');

        alen = slash ? (size_t)(slash - p) : strlen(p);
        if (slash)
            mask = slash + 1;
    }
    if (alen == 0 || alen >= sizeof(addr)) {
        vstr_sprintf(why, "bad address pattern: \"%s\"", pattern);
        return -1;
    }
    memcpy(addr, p, alen);
    addr[alen] = 0;
    if ((r->family = dict_cidr_parse_addr(addr, r->net)) == 0) {
        vstr_sprintf(why, "bad address pattern: \"%s\"", pattern);
        return -1;
    }
    r->nbytes = r->family == AF_INET6 ? 16 : 4;
    bits = r->nbytes * 8;
    if (mask) {
        char mtext[8];
        size_t mlen = strcspn(mask, "]");

        if (mlen == 0 || mlen >= sizeof(mtext)) {
            vstr_sprintf(why, "bad net/mask pattern: \"%s\"", pattern);
            return -1;
        }
        memcpy(mtext, mask, mlen);
        mtext[mlen] = 0;
        if (!alldig(mtext) || parse_long(mtext, 0, r->nbytes * 8, &bits) < 0) {
            vstr_sprintf(why, "bad net/mask pattern: \"%s\"", pattern);
            return -1;
        }
    }
    memset(r->mask, 0, sizeof(r->mask));
    for (long i = 0; i < bits; i++)
        r->mask[i / 8] |= (unsigned char)(0x80 >> (i % 8));
    for (int i = 0; i < r->nbytes; i++) {
        if (r->net[i] & ~r->mask[i]) {
            unsigned char fixed[DICT_CIDR_ADDR_BYTES];
            char text[INET6_ADDRSTRLEN];

            for (int j = 0; j < r->nbytes; j++)
                fixed[j] = r->net[j] & r->mask[j];
            inet_ntop(r->family, fixed, text, sizeof(text));
            vstr_sprintf(why,
                         "non-null host address bits in \"%s\", perhaps you should use "
                         "\"%s/%ld\" instead",
                         pattern, text, bits);
            return -1;
        }
    }
    return 0;
}

/* dict_cidr_matches - does addr (of family) fall in the rule's network */
static int dict_cidr_matches(const DICT_CIDR_RULE *r, int family, const unsigned char *addr)
{
    if (r->family != family)
        return 0;
    for (int i = 0; i < r->nbytes; i++)
        if ((addr[i] & r->mask[i]) != r->net[i])
            return 0;
    return 1;
}

/* dict_cidr_negation - skip '!' and white space after it; 1 when negated */
static int dict_cidr_negation(char **pp)
{
    int negate = 0;
    char *p = *pp;

    while (*p == '!') {
        negate = !negate;
        p++;
        while (isspace((unsigned char)*p))
            p++;
    }
    *pp = p;
    return negate;
}

/* dict_cidr_word - cut the next white-space separated word out of *pp */
static char *dict_cidr_word(char **pp)
{
    char *p = *pp;
    char *start = p;

    while (*p && !isspace((unsigned char)*p))
        p++;
    if (*p)
        *p++ = 0;
    while (isspace((unsigned char)*p))
        p++;
    *pp = p;
    return start;
}

/* dict_cidr_keyword - is the line the keyword (followed by space or end) */
static int dict_cidr_keyword(const char *line, const char *word)
{
    size_t n = strlen(word);

    return strncasecmp(line, word, n) == 0 && (line[n] == 0 || isspace((unsigned char)line[n]));
}

/* dict_cidr_parse_line - one logical line into the rule list */
static void dict_cidr_parse_line(DICT *d, DICT_CIDR *dc, size_t **stack, size_t *depth,
                                 size_t *stack_cap, char *line, int lineno, VSTR *why)
{
    char *p = line;

    if (dict_cidr_keyword(p, "if")) {
        p += 2;
        while (isspace((unsigned char)*p))
            p++;
        int negate = dict_cidr_negation(&p);
        char *pattern = dict_cidr_word(&p);
        DICT_CIDR_RULE *r = dict_cidr_add(dc, CIDR_OP_IF, lineno);

        r->negate = negate;
        if (*pattern == 0) {
            msg_warn("cidr map %s, line %d: no address pattern after \"if\": "
                     "the rules up to its \"endif\" will never match",
                     d->name, lineno);
            r->broken = 1;
            d->warnings++;
        } else if (dict_cidr_parse_pattern(r, pattern, why) < 0) {
            msg_warn("cidr map %s, line %d: %s: the rules up to its \"endif\" will never match",
                     d->name, lineno, vstr_str(why));
            r->broken = 1;
            d->warnings++;
        }
        if (*p) {
            msg_warn("cidr map %s, line %d: ignoring extra text after \"if\" statement: \"%s\"",
                     d->name, lineno, p);
            d->warnings++;
        }
        if (*depth == *stack_cap) {
            *stack_cap = *stack_cap ? size_mul(*stack_cap, 2) : 8;
            *stack = myrealloc(*stack, size_mul(*stack_cap, sizeof(**stack)));
        }
        (*stack)[(*depth)++] = dc->count - 1;
        return;
    }
    if (dict_cidr_keyword(p, "endif")) {
        if (*depth == 0) {
            msg_warn("cidr map %s, line %d: ignoring \"endif\" without matching \"if\"", d->name,
                     lineno);
            d->warnings++;
            return;
        }
        if (p[5]) {
            msg_warn("cidr map %s, line %d: ignoring extra text after \"endif\"", d->name, lineno);
            d->warnings++;
        }
        dict_cidr_add(dc, CIDR_OP_ENDIF, lineno);
        dc->rules[(*stack)[--*depth]].skip = dc->count - 1;
        return;
    }
    int negate = dict_cidr_negation(&p);
    char *pattern = dict_cidr_word(&p);
    DICT_CIDR_RULE rule;

    memset(&rule, 0, sizeof(rule));
    if (*pattern == 0) {
        vstr_cpy(why, "no address pattern");
    } else if (*p == 0) {
        vstr_cpy(why, "no lookup result");
    } else if (dict_cidr_parse_pattern(&rule, pattern, why) == 0) {
        DICT_CIDR_RULE *r = dict_cidr_add(dc, CIDR_OP_MATCH, lineno);

        memcpy(r->net, rule.net, sizeof(r->net));
        memcpy(r->mask, rule.mask, sizeof(r->mask));
        r->family = rule.family;
        r->nbytes = rule.nbytes;
        r->negate = negate;
        r->result = mystrdup(p);
        return;
    }
    msg_warn("cidr map %s, line %d: %s: skipping this rule", d->name, lineno, vstr_str(why));
    d->warnings++;
}

static void dict_cidr_free(DICT *d, void *state)
{
    DICT_CIDR *dc = state;

    (void)d;
    for (size_t i = 0; i < dc->count; i++)
        myfree(dc->rules[i].result);
    myfree(dc->rules);
    myfree(dc);
}

static void *dict_cidr_open(DICT *d, int mode, struct stat *st, VSTR *why)
{
    FILE *fp;
    DICT_READER *rd;
    const char *line;
    int lineno = 0;
    int rc;
    size_t *stack = NULL;
    size_t depth = 0;
    size_t stack_cap = 0;

    (void)mode;
    if ((fp = dict_text_source(d->name, st, why)) == NULL)
        return NULL;
    DICT_CIDR *dc = mycalloc(1, sizeof(*dc));
    VSTR *buf = vstr_alloc(256);
    VSTR *err = vstr_alloc(100);

    rd = dict_reader_new(fp, d->name);
    while ((rc = dict_reader_next(rd, &line, &lineno)) > 0) {
        vstr_cpy(buf, line);
        dict_cidr_parse_line(d, dc, &stack, &depth, &stack_cap, vstr_str(buf), lineno, err);
    }
    int saved = errno;

    d->warnings += dict_reader_warnings(rd);
    dict_reader_free(rd);
    fclose(fp);
    vstr_free(buf);
    vstr_free(err);
    /* An "if" left open runs to the end of the table. */
    while (depth > 0) {
        DICT_CIDR_RULE *r = &dc->rules[stack[--depth]];

        msg_warn("cidr map %s, line %d: \"if\" has no matching \"endif\"", d->name, r->lineno);
        r->skip = dc->count;
        d->warnings++;
    }
    myfree(stack);
    if (rc < 0) {
        vstr_sprintf(why, "read %s: %s", d->name, strerror(saved));
        dict_cidr_free(d, dc);
        return NULL;
    }
    return dc;
}

static const char *dict_cidr_lookup(DICT *d, const char *key)
{
    DICT_CIDR *dc = d->state;
    unsigned char addr[DICT_CIDR_ADDR_BYTES];
    char text[DICT_CIDR_ADDR_TEXT];
    size_t len = strlen(key);
    int family;

    /* Accept "[addr]" as well as "addr"; anything else is not an address. */
    if (len >= 2 && key[0] == '[' && key[len - 1] == ']') {
        key++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(text))
        return NULL;
    memcpy(text, key, len);
    text[len] = 0;
    if ((family = dict_cidr_parse_addr(text, addr)) == 0)
        return NULL;

    for (size_t i = 0; i < dc->count; i++) {
        const DICT_CIDR_RULE *r = &dc->rules[i];

        switch (r->op) {
        case CIDR_OP_ENDIF: break;
        case CIDR_OP_IF:
            if (r->broken || dict_cidr_matches(r, family, addr) == r->negate || r->family != family)
                i = r->skip; /* the loop steps past the ENDIF */
            break;
        case CIDR_OP_MATCH:
            /* A rule of the other address family never matches, negated
               or not (as in Postfix). */
            if (r->family == family && dict_cidr_matches(r, family, addr) != r->negate)
                return r->result;
            break;
        }
    }
    return NULL;
}

const DICT_TYPE dict_cidr_type = {
    .type = "cidr",
    .flags = DICT_FLAG_PATTERN,
    .suffix = "",
    .open = dict_cidr_open,
    .lookup = dict_cidr_lookup,
    .free = dict_cidr_free,
};
