/*
 * qmgr_route - which transport delivers a recipient, and to which next hop.
 *
 * All of qmgr's routing is the one function qmgr_route(). It follows
 * Postfix's address classes:
 *
 *   domain in mydestination (or no domain)  $local_transport  ("local:$myhostname")
 *   domain in relay_domains                 $relay_transport  ("relay")
 *   anything else                           $default_transport ("smtp")
 *
 * A transport value is "name" or "name:nexthop". The next hop is, in
 * falling precedence, the one in the transport value, $relayhost (relay and
 * default classes only), then the recipient's domain, as in Postfix's
 * trivial-rewrite. The next hop reaches the delivery agent as it is
 * written: "[host]:port" (no MX lookup) and "host" (MX lookup) alike.
 *
 * Then transport_maps (transport(5)) may override both, searched in this
 * order, each key in every table before the next key:
 *
 *   user+extension@domain   the whole address (the only key pattern tables see)
 *   user@domain             without the recipient_delimiter extension
 *   domain                  the recipient's domain
 *   .parent                 each parent domain ("parent" without the dot
 *                           when parent_domain_matches_subdomains names
 *                           transport_maps: then "domain" covers subdomains)
 *   *                       everything else
 *
 * A result "transport:nexthop" replaces what the class chose; an empty
 * transport or next hop keeps the class's ("example.com :" changes nothing,
 * "example.com smtp:" keeps the next hop). Addresses without a domain are
 * never looked up: they are local whatever "*" says.
 *
 * Domain lists (mydestination, relay_domains) take Postfix's forms: names,
 * ".name" for its subdomains, "type:table" (the domain and its parents are
 * looked up, the value is ignored), "/file/name" holding more such
 * elements, and "!element" to exclude; the first match decides. A plain
 * name also matches its subdomains when the list's parameter is named in
 * parent_domain_matches_subdomains (relay_domains by default). A table
 * lookup that fails (not "not found") makes the route fail for now: the
 * recipient is deferred, never sent the wrong way.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "mail/dict.h"
#include "mail/mail_addr_find.h"
#include "mail/mail_conf.h"
#include "qmgr.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/strutil.h"

#define QMGR_ROUTE_FILE_MAX (1024 * 1024) /* a "/file/name" list element */
#define QMGR_ROUTE_DOMAIN_MAX 255         /* RFC 1035 section 2.3.4 */

enum qmgr_dom_kind { QMGR_DOM_NAME, QMGR_DOM_SUBDOMAINS, QMGR_DOM_TABLE };

typedef struct QMGR_DOM {
    enum qmgr_dom_kind kind;
    int negate;
    char *name; /* NAME: "example.com"; SUBDOMAINS: ".example.com" */
    DICT *dict; /* TABLE */
} QMGR_DOM;

typedef struct QMGR_DOMLIST {
    const char *param; /* for messages */
    QMGR_DOM *elem;
    size_t count, cap;
    int parent; /* plain names match subdomains */
} QMGR_DOMLIST;

static QMGR_DOMLIST qmgr_mydest = {"mydestination", NULL, 0, 0, 0};
static QMGR_DOMLIST qmgr_relay = {"relay_domains", NULL, 0, 0, 0};

/* transport_maps: its tables, in order. */
static DICT **qmgr_tmaps;
static size_t qmgr_tmap_count;
static int qmgr_tmap_parent; /* "domain" entries match subdomains too */

/* qmgr_domlist_add - one element (a file expands into more, one level deep) */
static void qmgr_domlist_add(QMGR_DOMLIST *list, const char *text, int depth)
{
    QMGR_DOM d = {QMGR_DOM_NAME, 0, NULL, NULL};
    VSTR *why;

    while (*text == '!') {
        d.negate = !d.negate;
        text++;
    }
    if (*text == 0)
        return;
    if (*text == '/') {
        size_t len;
        char *data = file_read_all(text, QMGR_ROUTE_FILE_MAX, &len);

        if (depth > 0)
            msg_fatal("%s: file \"%s\" inside a file is not supported", list->param, text);
        if (data == NULL)
            msg_fatal("%s: read \"%s\": %m", list->param, text);
        /* One element per word; "#" starts a comment to the end of the line. */
        for (char *line = data, *next; line && *line; line = next) {
            if ((next = strchr(line, '\n')) != NULL)
                *next++ = 0;
            char *hash = strchr(line, '#');

            if (hash)
                *hash = 0;
            ARGV *words = argv_split(line, ", \t\r");

            for (size_t i = 0; i < words->argc; i++)
                qmgr_domlist_add(list, words->argv[i], depth + 1);
            argv_free(words);
        }
        myfree(data);
        return;
    }
    const char *colon = strchr(text, ':');

    if (colon && colon > text) {
        char *type = mystrndup(text, (size_t)(colon - text));
        int known = dict_type_known(type);

        myfree(type);
        if (known) {
            why = vstr_alloc(100);
            /* A table that cannot be opened now fails each lookup with a
               temporary error and keeps trying: mail waits, nothing is
               misrouted. */
            d.kind = QMGR_DOM_TABLE;
            d.dict = dict_open(text, DICT_FLAG_FOLD_FIX | DICT_FLAG_SURROGATE, why);
            if (d.dict == NULL)
                msg_fatal("%s: open %s: %s", list->param, text, vstr_str(why));
            vstr_free(why);
            goto add;
        }
    }
    d.name = lowercase(mystrdup(text));
    /* "example.com." and "example.com" are the same name. */
    for (size_t n = strlen(d.name); n > 1 && d.name[n - 1] == '.'; n--)
        d.name[n - 1] = 0;
    d.kind = d.name[0] == '.' ? QMGR_DOM_SUBDOMAINS : QMGR_DOM_NAME;
add:
    if (list->count == list->cap) {
        list->cap = list->cap ? 2 * list->cap : 8;
        list->elem = myrealloc(list->elem, size_mul(list->cap, sizeof(*list->elem)));
    }
    list->elem[list->count++] = d;
}

/* qmgr_domlist_load - parse a list parameter */
static void qmgr_domlist_load(QMGR_DOMLIST *list)
{
    ARGV *parents = var_list("parent_domain_matches_subdomains");
    ARGV *words = var_list(list->param);

    for (size_t i = 0; i < parents->argc; i++)
        if (strcmp(parents->argv[i], list->param) == 0)
            list->parent = 1;
    for (size_t i = 0; i < words->argc; i++)
        qmgr_domlist_add(list, words->argv[i], 0);
    argv_free(words);
    argv_free(parents);
}

/* qmgr_dom_suffix - domain ends with ".suffix" (suffix given without its dot) */
static int qmgr_dom_suffix(const char *domain, const char *suffix)
{
    size_t dl = strlen(domain), sl = strlen(suffix);

    return dl > sl + 1 && domain[dl - sl - 1] == '.' && strcmp(domain + dl - sl, suffix) == 0;
}

/* qmgr_domlist_match - 1 listed, 0 not, -1 a table lookup failed */
static int qmgr_domlist_match(const QMGR_DOMLIST *list, const char *domain)
{
    for (size_t i = 0; i < list->count; i++) {
        const QMGR_DOM *d = list->elem + i;
        int hit = 0;

        switch (d->kind) {
        case QMGR_DOM_NAME:
            hit =
                strcmp(domain, d->name) == 0 || (list->parent && qmgr_dom_suffix(domain, d->name));
            break;
        case QMGR_DOM_SUBDOMAINS: hit = qmgr_dom_suffix(domain, d->name + 1); break;
        case QMGR_DOM_TABLE:
            hit = mail_addr_find_domain(d->dict, domain,
                                        list->parent ? MAIL_ADDR_FIND_PARENT : 0) != NULL;
            if (!hit && d->dict->error != DICT_ERR_NONE)
                return -1;
            break;
        }
        if (hit)
            return !d->negate;
    }
    return 0;
}

/* qmgr_domlist_free - forget a list */
static void qmgr_domlist_free(QMGR_DOMLIST *list)
{
    for (size_t i = 0; i < list->count; i++) {
        myfree(list->elem[i].name);
        if (list->elem[i].dict)
            dict_close(list->elem[i].dict);
    }
    myfree(list->elem);
    list->elem = NULL;
    list->count = list->cap = 0;
    list->parent = 0;
}

/* qmgr_tmaps_free - close transport_maps */
static void qmgr_tmaps_free(void)
{
    for (size_t i = 0; i < qmgr_tmap_count; i++)
        dict_close(qmgr_tmaps[i]);
    myfree(qmgr_tmaps);
    qmgr_tmaps = NULL;
    qmgr_tmap_count = 0;
}

/* qmgr_tmaps_load - open transport_maps; a table that cannot be opened
   fails each lookup (the mail waits) and keeps trying to open */
static void qmgr_tmaps_load(void)
{
    ARGV *specs = var_list("transport_maps");
    ARGV *parents = var_list("parent_domain_matches_subdomains");
    VSTR *why = vstr_alloc(100);

    qmgr_tmap_parent = 0;
    for (size_t i = 0; i < parents->argc; i++)
        if (strcmp(parents->argv[i], "transport_maps") == 0)
            qmgr_tmap_parent = 1;
    qmgr_tmaps = mycalloc(specs->argc ? specs->argc : 1, sizeof(*qmgr_tmaps));
    for (size_t i = 0; i < specs->argc; i++) {
        DICT *d = dict_open(specs->argv[i], DICT_FLAG_FOLD_FIX | DICT_FLAG_SURROGATE, why);

        if (d == NULL)
            msg_fatal("transport_maps: open %s: %s", specs->argv[i], vstr_str(why));
        qmgr_tmaps[qmgr_tmap_count++] = d;
    }
    vstr_free(why);
    argv_free(specs);
    argv_free(parents);
}

/* qmgr_route_init - read the lists (again); tables re-read themselves when
   their files change */
void qmgr_route_init(void)
{
    qmgr_domlist_free(&qmgr_mydest);
    qmgr_domlist_free(&qmgr_relay);
    qmgr_tmaps_free();
    qmgr_domlist_load(&qmgr_mydest);
    qmgr_domlist_load(&qmgr_relay);
    qmgr_tmaps_load();
}

/* qmgr_tmap_get - key in every table, in order: the value (copied into
   out) 1, not found 0, a failed lookup -1 */
static int qmgr_tmap_get(const char *key, int fixed_only, VSTR *out)
{
    for (size_t i = 0; i < qmgr_tmap_count; i++) {
        DICT *d = qmgr_tmaps[i];
        const char *v;

        /* Pattern tables match the whole address by themselves (transport(5)). */
        if (fixed_only && (d->flags & DICT_FLAG_PATTERN))
            continue;
        if ((v = dict_get(d, key)) != NULL) {
            vstr_cpy(out, v);
            return 1;
        }
        if (d->error != DICT_ERR_NONE)
            return -1;
    }
    return 0;
}

/* qmgr_tmap_find - the transport(5) search for rcpt (domain is its folded
   domain, not empty); 1 with the value in out, 0 none, -1 a failed lookup */
static int qmgr_tmap_find(const char *rcpt, const char *domain, VSTR *out)
{
    const char *at = strrchr(rcpt, '@');
    const char *delim = var_str("recipient_delimiter");
    VSTR *key = vstr_alloc(64);
    size_t ext;
    int rc;

    if ((rc = qmgr_tmap_get(rcpt, 0, out)) != 0)
        goto done;
    /* user+ext@domain also as user@domain */
    ext = mail_addr_ext_offset(rcpt, (size_t)(at - rcpt), delim);
    if (ext < (size_t)(at - rcpt)) {
        vstr_ncpy(key, rcpt, ext);
        vstr_cat(key, at);
        if ((rc = qmgr_tmap_get(vstr_str(key), 1, out)) != 0)
            goto done;
    }
    if ((rc = qmgr_tmap_get(domain, 1, out)) != 0)
        goto done;
    for (const char *p = strchr(domain, '.'); p && p[1]; p = strchr(p + 1, '.')) {
        if ((rc = qmgr_tmap_get(qmgr_tmap_parent ? p + 1 : p, 1, out)) != 0)
            goto done;
    }
    rc = qmgr_tmap_get("*", 1, out);
done:
    vstr_free(key);
    return rc;
}

/* qmgr_route_tmaps - apply transport_maps to the class's choice */
static int qmgr_route_tmaps(const char *rcpt, const char *domain, VSTR *transport, VSTR *nexthop,
                            VSTR *why)
{
    VSTR *value = vstr_alloc(64);
    const char *colon;
    int rc;

    if ((rc = qmgr_tmap_find(rcpt, domain, value)) < 0) {
        vstr_sprintf(why, "transport_maps lookup failure for %s", rcpt);
        goto done;
    }
    if (rc > 0) {
        const char *v = vstr_str(value);

        /* "transport:nexthop", "transport", ":nexthop", ":" or "". */
        while (*v == ' ' || *v == '\t')
            v++;
        colon = strchr(v, ':');
        if (colon == NULL) {
            if (*v)
                vstr_cpy(transport, v);
        } else {
            if (colon > v)
                vstr_ncpy(transport, v, (size_t)(colon - v));
            if (colon[1])
                vstr_cpy(nexthop, colon + 1);
        }
    }
    rc = 0;
done:
    vstr_free(value);
    return rc;
}

/* qmgr_route_spec - "name[:nexthop]" into transport, and nexthop when given */
static void qmgr_route_spec(const char *param, VSTR *transport, VSTR *nexthop)
{
    const char *spec = var_str(param);
    const char *colon = strchr(spec, ':');

    if (colon == NULL) {
        vstr_cpy(transport, spec);
        vstr_reset(nexthop);
    } else {
        vstr_ncpy(transport, spec, (size_t)(colon - spec));
        vstr_cpy(nexthop, colon + 1);
    }
}

/* qmgr_route - transport and next hop for one recipient */
int qmgr_route(const char *rcpt, VSTR *transport, VSTR *nexthop, VSTR *why)
{
    const char *at = strrchr(rcpt, '@');
    char domain[QMGR_ROUTE_DOMAIN_MAX + 1];
    size_t len = at ? strlen(at + 1) : 0;
    int local, relay = 0;

    if (len > QMGR_ROUTE_DOMAIN_MAX) {
        /* No DNS name is this long; an address literal cannot be either. */
        vstr_sprintf(why, "recipient domain longer than %d bytes", QMGR_ROUTE_DOMAIN_MAX);
        return -1;
    }
    memcpy(domain, at ? at + 1 : "", len);
    domain[len] = 0;
    while (len > 1 && domain[len - 1] == '.')
        domain[--len] = 0;
    lowercase(domain);

    /* An address without a domain can only be ours (cleanup qualifies
       addresses; what is left unqualified must not leave the host). */
    if ((local = len == 0 ? 1 : qmgr_domlist_match(&qmgr_mydest, domain)) < 0) {
        vstr_sprintf(why, "mydestination lookup for %s failed", domain);
        return -1;
    }
    if (!local && (relay = qmgr_domlist_match(&qmgr_relay, domain)) < 0) {
        vstr_sprintf(why, "relay_domains lookup for %s failed", domain);
        return -1;
    }
    qmgr_route_spec(local   ? "local_transport"
                    : relay ? "relay_transport"
                            : "default_transport",
                    transport, nexthop);
    if (vstr_len(transport) == 0) {
        vstr_sprintf(why, "empty transport name for %s", rcpt);
        return -1;
    }
    if (vstr_len(nexthop) == 0 && !local && *var_str("relayhost"))
        vstr_cpy(nexthop, var_str("relayhost"));
    if (vstr_len(nexthop) == 0)
        vstr_cpy(nexthop, len ? domain : var_str("myhostname"));
    if (len > 0 && qmgr_tmap_count > 0 &&
        qmgr_route_tmaps(rcpt, domain, transport, nexthop, why) < 0)
        return -1;
    if (vstr_len(transport) == 0) {
        vstr_sprintf(why, "empty transport name for %s", rcpt);
        return -1;
    }
    return 0;
}
