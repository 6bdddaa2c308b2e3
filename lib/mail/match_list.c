/*
 * match_list - ordered address and domain pattern lists (mynetworks,
 * relay_domains, mydestination, ...). See match_list.h for the syntax.
 * Patterns are parsed once, when the list is built, so that a lookup is a
 * walk over an array and a configuration mistake is reported at start-up.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "mail/dict.h"
#include "mail/mail_addr_find.h"
#include "mail/mail_conf.h"
#include "mail/match_list.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/strutil.h"
#include "util/vstr.h"

#define MATCH_ADDR_BYTES 16 /* IPv6 */

enum match_item_kind {
    MATCH_ITEM_NET,       /* address/prefix */
    MATCH_ITEM_DOMAIN,    /* example.com (and subdomains with MATCH_LIST_PARENT) */
    MATCH_ITEM_SUBDOMAIN, /* .example.com */
    MATCH_ITEM_LITERAL,   /* [192.0.2.7] in a domain list */
    MATCH_ITEM_TABLE,     /* type:table */
};

typedef struct MATCH_ITEM {
    enum match_item_kind kind;
    int negate;
    int family; /* NET: AF_INET or AF_INET6 */
    unsigned char net[MATCH_ADDR_BYTES];
    unsigned char mask[MATCH_ADDR_BYTES];
    char *text; /* DOMAIN, SUBDOMAIN (with its dot), LITERAL: lower case */
    DICT *dict; /* TABLE */
} MATCH_ITEM;

struct MATCH_LIST {
    char *name;
    int flags;
    MATCH_ITEM *items;
    size_t count;
    size_t cap;
};

/* match_addr_parse - address text (no brackets) into family and bytes; 0 or -1 */
static int match_addr_parse(const char *text, int *family, unsigned char *bytes)
{
    struct in6_addr a6;

    memset(bytes, 0, MATCH_ADDR_BYTES);
    if (inet_pton(AF_INET, text, bytes) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, text, &a6) != 1)
        return -1;
    /* ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket. */
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
        *family = AF_INET;
        memcpy(bytes, a6.s6_addr + 12, 4);
        return 0;
    }
    *family = AF_INET6;
    memcpy(bytes, a6.s6_addr, 16);
    return 0;
}

/* match_addr_text - copy addr into buf without surrounding brackets; -1 if too long */
static int match_addr_text(const char *addr, char *buf, size_t size)
{
    size_t len = strlen(addr);

    if (len >= 2 && addr[0] == '[' && addr[len - 1] == ']') {
        addr++;
        len -= 2;
    }
    if (len >= size)
        return -1;
    memcpy(buf, addr, len);
    buf[len] = 0;
    return 0;
}

/* match_item_add - a new zeroed item at the end of the list */
static MATCH_ITEM *match_item_add(MATCH_LIST *ml)
{
    if (ml->count == ml->cap) {
        ml->cap = ml->cap ? size_mul(ml->cap, 2) : 8;
        ml->items = myrealloc(ml->items, size_mul(ml->cap, sizeof(*ml->items)));
    }
    MATCH_ITEM *it = &ml->items[ml->count++];

    memset(it, 0, sizeof(*it));
    return it;
}

/* match_parse_net - "[addr]/len", "addr/len", "[addr]", "addr"; 0 or -1 with why */
static int match_parse_net(MATCH_ITEM *it, const char *pattern, VSTR *why)
{
    char addr[INET6_ADDRSTRLEN + 8];
    const char *slash;
    const char *start = pattern;
    size_t alen;
    long bits;
    int max;

    if (*pattern == '[') {
        const char *close = strchr(pattern, ']');

        if (close == NULL || (close[1] != 0 && close[1] != '/'))
            goto bad;
        start = pattern + 1;
        alen = (size_t)(close - start);
        slash = close[1] == '/' ? close + 1 : NULL;
    } else {
        slash = strchr(pattern, '/');
        alen = slash ? (size_t)(slash - pattern) : strlen(pattern);
    }
    if (alen == 0 || alen >= sizeof(addr))
        goto bad;
    memcpy(addr, start, alen);
    addr[alen] = 0;
    if (match_addr_parse(addr, &it->family, it->net) < 0)
        goto bad;
    max = it->family == AF_INET ? 32 : 128;
    if (slash == NULL) {
        bits = max;
    } else if (!alldig(slash + 1) || parse_long(slash + 1, 0, max, &bits) < 0) {
        vstr_sprintf(why, "bad network prefix length in \"%s\"", pattern);
        return -1;
    }
    for (int i = 0; i < MATCH_ADDR_BYTES; i++) {
        long left = bits - 8L * i;

        it->mask[i] = left >= 8 ? 0xff : left <= 0 ? 0 : (unsigned char)(0xff << (8 - left));
        if (it->net[i] & ~it->mask[i]) {
            vstr_sprintf(why,
                         "non-null host address bits in \"%s\": specify the network address "
                         "with the host bits zero",
                         pattern);
            return -1;
        }
    }
    it->kind = MATCH_ITEM_NET;
    return 0;

bad:
    vstr_sprintf(why, "bad address pattern: \"%s\"", pattern);
    return -1;
}

/* match_domain_char - letters, digits, '-', '_', '.' and UTF-8 octets */
static int match_domain_char(int ch)
{
    return isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch >= 0x80;
}

/* match_parse_domain - "example.com", ".example.com", "[literal]"; 0 or -1 with why */
static int match_parse_domain(MATCH_ITEM *it, const char *pattern, VSTR *why)
{
    size_t len = strlen(pattern);

    if (pattern[0] == '[') {
        if (len < 3 || pattern[len - 1] != ']' || str_has_ctl(pattern))
            goto bad;
        it->kind = MATCH_ITEM_LITERAL;
    } else {
        for (const unsigned char *cp = (const unsigned char *)pattern; *cp; cp++)
            if (!match_domain_char(*cp))
                goto bad;
        if (pattern[0] == '.' ? len < 2 : len < 1)
            goto bad;
        it->kind = pattern[0] == '.' ? MATCH_ITEM_SUBDOMAIN : MATCH_ITEM_DOMAIN;
    }
    it->text = lowercase(mystrdup(pattern));
    return 0;

bad:
    vstr_sprintf(why, "bad domain pattern: \"%s\"", pattern);
    return -1;
}

/* match_is_table - "type:name" with a known type ("proxy:" may come first) */
static int match_is_table(const char *pattern)
{
    const char *name;
    char *type;
    int known;

    while (strncmp(pattern, "proxy:", 6) == 0)
        pattern += 6;
    if ((type = dict_spec_split(pattern, &name)) == NULL)
        return 0;
    known = *type && dict_type_known(type);
    myfree(type);
    return known;
}

static int match_add_text(MATCH_LIST *ml, const char *text, int depth, VSTR *why);

/* match_add_file - the patterns in a file */
static int match_add_file(MATCH_LIST *ml, const char *path, int depth, VSTR *why)
{
    size_t len;
    char *text;
    int ret;

    if (depth >= MATCH_LIST_DEPTH) {
        vstr_sprintf(why, "%s: pattern files nested more than %d deep", path, MATCH_LIST_DEPTH);
        return -1;
    }
    if ((text = file_read_all(path, MATCH_LIST_FILE_MAX, &len)) == NULL) {
        vstr_sprintf(why, "open %s: %s", path, strerror(errno));
        return -1;
    }
    if (memchr(text, 0, len) != NULL) {
        myfree(text);
        vstr_sprintf(why, "%s: NUL byte in pattern file", path);
        return -1;
    }
    /* Drop comment lines, then treat the rest like a parameter value. */
    VSTR *body = vstr_alloc(len + 1);
    char *save = text;
    char *line;

    while ((line = mystrtok(&save, "\n")) != NULL) {
        char *cp = line + strspn(line, " \t\r");

        if (*cp == '#' || *cp == 0)
            continue;
        vstr_cat(body, cp);
        vstr_cat(body, " ");
    }
    myfree(text);
    ret = match_add_text(ml, vstr_str(body), depth + 1, why);
    vstr_free(body);
    return ret;
}

/* match_add_item - one pattern */
static int match_add_item(MATCH_LIST *ml, const char *pattern, int depth, VSTR *why)
{
    int negate = 0;
    MATCH_ITEM *it;

    if (strlen(pattern) > MATCH_LIST_ITEM_MAX) {
        vstr_sprintf(why, "pattern longer than %d bytes", MATCH_LIST_ITEM_MAX);
        return -1;
    }
    while (*pattern == '!') {
        negate = !negate;
        pattern++;
    }
    if (*pattern == 0) {
        vstr_sprintf(why, "empty pattern after \"!\"");
        return -1;
    }
    if (*pattern == '/') {
        if (negate) {
            vstr_sprintf(why, "\"!%s\": a file cannot be negated", pattern);
            return -1;
        }
        return match_add_file(ml, pattern, depth, why);
    }
    if (match_is_table(pattern)) {
        DICT *d = dict_open(pattern, DICT_FLAG_FOLD_FIX, why);

        if (d == NULL)
            return -1;
        it = match_item_add(ml);
        it->kind = MATCH_ITEM_TABLE;
        it->dict = d;
        it->negate = negate;
        return 0;
    }
    it = match_item_add(ml);
    it->negate = negate;
    if (((ml->flags & MATCH_LIST_ADDR) ? match_parse_net(it, pattern, why)
                                       : match_parse_domain(it, pattern, why)) < 0) {
        ml->count--;
        return -1;
    }
    return 0;
}

/* match_add_text - every pattern of a list value */
static int match_add_text(MATCH_LIST *ml, const char *text, int depth, VSTR *why)
{
    ARGV *av = mail_conf_split_list(text);
    int ret = 0;

    for (size_t i = 0; i < av->argc && ret == 0; i++)
        ret = match_add_item(ml, av->argv[i], depth, why);
    argv_free(av);
    return ret;
}

MATCH_LIST *match_list_new(const char *name, const char *value, int flags, VSTR *why)
{
    MATCH_LIST *ml;
    VSTR *err = vstr_alloc(100);

    if (((flags & MATCH_LIST_ADDR) != 0) == ((flags & MATCH_LIST_DOMAIN) != 0))
        msg_panic("match_list_new: %s: need exactly one of MATCH_LIST_ADDR and _DOMAIN", name);
    ml = mycalloc(1, sizeof(*ml));
    ml->name = mystrdup(name);
    ml->flags = flags;
    if (match_add_text(ml, value, 0, err) < 0) {
        if (why)
            vstr_sprintf(why, "%s: %s", name, vstr_str(err));
        vstr_free(err);
        match_list_free(ml);
        return NULL;
    }
    vstr_free(err);
    return ml;
}

void match_list_free(MATCH_LIST *ml)
{
    if (ml == NULL)
        return;
    for (size_t i = 0; i < ml->count; i++) {
        myfree(ml->items[i].text);
        dict_close(ml->items[i].dict);
    }
    myfree(ml->items);
    myfree(ml->name);
    myfree(ml);
}

size_t match_list_count(const MATCH_LIST *ml)
{
    return ml->count;
}

/* match_table_result - 1 found, 0 not, -1 failed (logged) */
static int match_table_result(const MATCH_LIST *ml, const MATCH_ITEM *it, const char *value,
                              const char *key)
{
    if (value != NULL)
        return 1;
    if (it->dict->error != DICT_ERR_NONE) {
        msg_warn("%s: %s:%s lookup error for \"%s\"", ml->name, it->dict->type, it->dict->name,
                 key);
        return -1;
    }
    return 0;
}

/* match_net - does the parsed address fall in the item's network */
static int match_net(const MATCH_ITEM *it, int family, const unsigned char *bytes)
{
    if (it->family != family)
        return 0;
    for (int i = 0; i < MATCH_ADDR_BYTES; i++)
        if ((bytes[i] & it->mask[i]) != it->net[i])
            return 0;
    return 1;
}

int match_list_addr(MATCH_LIST *ml, const char *addr)
{
    char text[INET6_ADDRSTRLEN + 8];
    char canon[INET6_ADDRSTRLEN];
    unsigned char bytes[MATCH_ADDR_BYTES];
    int family;

    if ((ml->flags & MATCH_LIST_ADDR) == 0)
        msg_panic("match_list_addr: %s is not an address list", ml->name);
    /* Something that is not an address matches nothing. */
    if (match_addr_text(addr, text, sizeof(text)) < 0 || match_addr_parse(text, &family, bytes) < 0)
        return 0;
    /* Tables see the canonical text, so "::ffff:192.0.2.1" looks up "192.0.2.1". */
    if (inet_ntop(family, bytes, canon, sizeof(canon)) == NULL)
        return 0;
    for (size_t i = 0; i < ml->count; i++) {
        const MATCH_ITEM *it = &ml->items[i];
        int hit;

        if (it->kind == MATCH_ITEM_TABLE) {
            const char *value = mail_addr_find_host_addr(it->dict, canon);

            if ((hit = match_table_result(ml, it, value, canon)) < 0)
                return -1;
        } else {
            hit = match_net(it, family, bytes);
        }
        if (hit)
            return !it->negate;
    }
    return 0;
}

/* match_domain_item - one non-table domain pattern against a lower-case domain */
static int match_domain_item(const MATCH_LIST *ml, const MATCH_ITEM *it, const char *domain)
{
    size_t dlen = strlen(domain);
    size_t plen = strlen(it->text);

    switch (it->kind) {
    case MATCH_ITEM_LITERAL:
    case MATCH_ITEM_DOMAIN:
        if (strcmp(domain, it->text) == 0)
            return 1;
        if (it->kind == MATCH_ITEM_LITERAL || (ml->flags & MATCH_LIST_PARENT) == 0)
            return 0;
        /* parent_domain_matches_subdomains: "example.com" matches "a.example.com" */
        return dlen > plen && domain[dlen - plen - 1] == '.' &&
               strcmp(domain + dlen - plen, it->text) == 0;
    case MATCH_ITEM_SUBDOMAIN:
        /* ".example.com" matches "a.example.com", never "example.com" itself */
        return dlen > plen && strcmp(domain + dlen - plen, it->text) == 0;
    default: msg_panic("match_domain_item: bad item kind %d", (int)it->kind);
    }
}

int match_list_domain(MATCH_LIST *ml, const char *domain)
{
    char *lower;
    int result = 0;

    if ((ml->flags & MATCH_LIST_DOMAIN) == 0)
        msg_panic("match_list_domain: %s is not a domain list", ml->name);
    if (*domain == 0)
        return 0;
    lower = lowercase(mystrdup(domain));
    /* A trailing dot names the same domain (RFC 1034 3.1). */
    size_t len = strlen(lower);

    if (len > 1 && lower[len - 1] == '.')
        lower[len - 1] = 0;
    for (size_t i = 0; i < ml->count; i++) {
        const MATCH_ITEM *it = &ml->items[i];
        int hit;

        if (it->kind == MATCH_ITEM_TABLE) {
            const char *value = mail_addr_find_domain(
                it->dict, lower, (ml->flags & MATCH_LIST_PARENT) ? MAIL_ADDR_FIND_PARENT : 0);

            if ((hit = match_table_result(ml, it, value, lower)) < 0) {
                result = -1;
                break;
            }
        } else {
            hit = match_domain_item(ml, it, lower);
        }
        if (hit) {
            result = !it->negate;
            break;
        }
    }
    myfree(lower);
    return result;
}
