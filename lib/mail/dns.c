/*
 * dns - DNS lookups through libunbound: resolver set-up, synchronous and
 * asynchronous queries, and strict parsing of the record data that comes
 * back (see dns.h).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unbound.h>

#include "mail/dns.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"
#include "util/vstr.h"

#define DNS_CLASS_IN 1
#define DNS_RCODE_NOERROR 0
#define DNS_RCODE_NXDOMAIN 3
#define DNS_PORT_MAX 65535

/* State of one query started through dns_lookup_async, on the context's
   list until its callback ran or it was cancelled. */
typedef struct DNS_QUERY {
    struct DNS_CTX *ctx;
    DNS_CALLBACK cb;
    void *arg;
    char *qname;
    int type;
    int id;
    struct DNS_QUERY *next;
} DNS_QUERY;

struct DNS_CTX {
    struct ub_ctx *ub;
    DNS_QUERY *pending;
};

/* State of a synchronous lookup, filled by its callback. */
typedef struct DNS_WAIT {
    int done;
    int status;
    DNS_REPLY *reply;
    VSTR *why;
} DNS_WAIT;

/* dns_type_name - mnemonic for a type */
const char *dns_type_name(int type)
{
    static char buf[sizeof("TYPE65535")];

    switch (type) {
    case DNS_TYPE_A: return "A";
    case DNS_TYPE_CNAME: return "CNAME";
    case DNS_TYPE_PTR: return "PTR";
    case DNS_TYPE_MX: return "MX";
    case DNS_TYPE_TXT: return "TXT";
    case DNS_TYPE_AAAA: return "AAAA";
    default: snprintf(buf, sizeof(buf), "TYPE%d", type & 0xffff); return buf;
    }
}

/* dns_status_text - Postfix's words for a status */
const char *dns_status_text(int status)
{
    switch (status) {
    case DNS_OK: return "Success";
    case DNS_NOTFOUND: return "Host not found";
    case DNS_NODATA: return "No address associated with hostname";
    case DNS_RETRY: return "Host not found, try again";
    case DNS_INVAL: return "Malformed or unexpected name server reply";
    default: return "Unknown DNS status";
    }
}

/* dns_hostname_valid - syntax of a host name */
int dns_hostname_valid(const char *name)
{
    size_t len = strlen(name), label = 0, i;

    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > DNS_NAME_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];

        if (ch == '.') {
            /* Empty labels and labels ending in '-' are not host names. */
            if (label == 0 || name[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!(isalnum(ch) || ch == '-' || ch == '_') || ch > 0x7f)
            return 0;
        if (label == 0 && ch == '-')
            return 0;
        if (++label > DNS_LABEL_MAX)
            return 0;
    }
    return name[len - 1] != '-';
}

/* dns_name_from_wire - an uncompressed wire-form name into text */
int dns_name_from_wire(const unsigned char *data, size_t len, size_t *used, VSTR *text)
{
    size_t pos = 0;

    vstr_reset(text);
    for (;;) {
        size_t n;

        if (pos >= len || pos >= DNS_WIRE_MAX)
            return -1;
        n = data[pos++];
        if (n == 0)
            break;
        /* 0xC0: a compression pointer; 0x40, 0x80: reserved label types.
           Record data handed out by the resolver is never compressed. */
        if (n > DNS_LABEL_MAX)
            return -1;
        if (pos + n > len || pos + n >= DNS_WIRE_MAX)
            return -1;
        if (vstr_len(text) > 0)
            vstr_addch(text, '.');
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = data[pos + i];

            /* A dot inside a label, or bytes that are not printable
               ASCII, would change the meaning of the text form or forge
               log lines: such names are refused, not escaped. */
            if (ch == '.' || ch <= 0x20 || ch >= 0x7f)
                return -1;
            vstr_addch(text, (char)tolower(ch));
        }
        pos += n;
    }
    *used = pos;
    return 0;
}

/* dns_rr_free - release the strings of one record */
void dns_rr_free(DNS_RR *rr)
{
    myfree(rr->host);
    myfree(rr->text);
    rr->host = rr->text = NULL;
}

/* dns_rr_parse - one record's rdata into rr */
int dns_rr_parse(int type, const unsigned char *rdata, size_t len, DNS_RR *rr)
{
    VSTR *name = NULL;
    size_t used = 0, off = 0;

    memset(rr, 0, sizeof(*rr));
    rr->type = type;
    switch (type) {
    case DNS_TYPE_A:
        if (len != 4)
            return -1;
        rr->family = AF_INET;
        memcpy(rr->addr, rdata, 4);
        return 0;
    case DNS_TYPE_AAAA:
        if (len != 16)
            return -1;
        rr->family = AF_INET6;
        memcpy(rr->addr, rdata, 16);
        return 0;
    case DNS_TYPE_MX:
        if (len < 3)
            return -1;
        rr->pref = ((unsigned)rdata[0] << 8) | rdata[1];
        off = 2;
        /* FALLTHROUGH */
    case DNS_TYPE_CNAME:
    case DNS_TYPE_PTR:
        name = vstr_alloc(64);
        if (dns_name_from_wire(rdata + off, len - off, &used, name) < 0 || off + used != len)
            goto fail;
        /* The root is allowed only as an MX exchange (RFC 7505 null MX). */
        if (vstr_len(name) == 0 ? type != DNS_TYPE_MX : !dns_hostname_valid(vstr_str(name)))
            goto fail;
        rr->host = vstr_export(name);
        return 0;
    case DNS_TYPE_TXT: {
        VSTR *txt = vstr_alloc(64);

        vstr_set_limit(txt, DNS_TXT_MAX);
        while (off < len) {
            size_t n = rdata[off++];

            if (off + n > len || vstr_ncat(txt, rdata + off, n) < 0) {
                vstr_free(txt);
                return -1;
            }
            off += n;
        }
        /* NUL bytes would cut the text short; control bytes forge logs. */
        for (size_t i = 0; i < vstr_len(txt); i++) {
            if ((unsigned char)vstr_str(txt)[i] < 0x20 || vstr_str(txt)[i] == 0x7f) {
                vstr_free(txt);
                return -1;
            }
        }
        rr->text = vstr_export(txt);
        return 0;
    }
    default: return -1;
    }
fail:
    vstr_free(name);
    return -1;
}

/* dns_mx_cmp - by preference */
static int dns_mx_cmp(const void *a, const void *b)
{
    const DNS_RR *x = a, *y = b;

    return x->pref < y->pref ? -1 : x->pref > y->pref;
}

/* dns_mx_sort - by preference; equal preferences in random order */
void dns_mx_sort(DNS_RR *rr, size_t count, long (*rnd)(void))
{
    size_t start, end;

    if (rnd == NULL)
        rnd = random;
    /* Shuffle everything first, then sort stably by preference: qsort is
       not stable, so sort, then shuffle each run of equal preference. */
    qsort(rr, count, sizeof(*rr), dns_mx_cmp);
    for (start = 0; start < count; start = end) {
        for (end = start + 1; end < count && rr[end].pref == rr[start].pref; end++)
            ;
        for (size_t i = end - 1; i > start; i--) {
            size_t j = start + (size_t)((unsigned long)rnd() % (i - start + 1));
            DNS_RR tmp = rr[i];

            rr[i] = rr[j];
            rr[j] = tmp;
        }
    }
}

/* dns_servers_parse - dns_servers into unbound forwarder forms */
int dns_servers_parse(const char *servers, ARGV *out, VSTR *why)
{
    ARGV *list = argv_split(servers ? servers : "", ", \t\r\n");
    VSTR *host = vstr_alloc(64);
    unsigned char buf[sizeof(struct in6_addr)];
    int ret = -1;

    if (list->argc > DNS_SERVERS_MAX) {
        vstr_sprintf(why, "dns_servers: more than %d entries", DNS_SERVERS_MAX);
        goto done;
    }
    for (size_t i = 0; i < list->argc; i++) {
        const char *item = list->argv[i];
        const char *port = NULL, *p;
        long num;

        if (item[0] == '[') {
            /* [address]:port or [address] */
            if ((p = strchr(item, ']')) == NULL || (p[1] != 0 && p[1] != ':'))
                goto bad;
            vstr_ncpy(host, item + 1, (size_t)(p - item - 1));
            if (p[1] == ':')
                port = p + 2;
        } else if ((p = strchr(item, '@')) != NULL) {
            vstr_ncpy(host, item, (size_t)(p - item));
            port = p + 1;
        } else if ((p = strchr(item, ':')) != NULL && strchr(p + 1, ':') == NULL) {
            /* One colon: IPv4 address and port. More: a bare IPv6 address. */
            vstr_ncpy(host, item, (size_t)(p - item));
            port = p + 1;
        } else {
            vstr_cpy(host, item);
        }
        if (inet_pton(AF_INET, vstr_str(host), buf) != 1 &&
            inet_pton(AF_INET6, vstr_str(host), buf) != 1) {
            vstr_sprintf(why,
                         "dns_servers: \"%s\" is not an IP address (host names are "
                         "not allowed here)",
                         item);
            goto done;
        }
        if (port != NULL) {
            if (parse_long(port, 1, DNS_PORT_MAX, &num) < 0)
                goto bad;
            vstr_sprintf_append(host, "@%ld", num);
        }
        argv_add(out, vstr_str(host), (char *)NULL);
        continue;
    bad:
        vstr_sprintf(why,
                     "dns_servers: bad entry \"%s\": expected address, address:port, "
                     "[address]:port or address@port",
                     item);
        goto done;
    }
    ret = 0;
done:
    vstr_free(host);
    argv_free(list);
    return ret;
}

/* dns_ctx_create - a resolver */
DNS_CTX *dns_ctx_create(const char *servers, VSTR *why)
{
    ARGV *fwd = argv_alloc(4);
    DNS_CTX *ctx = NULL;
    struct ub_ctx *ub;
    int err;

    if (dns_servers_parse(servers, fwd, why) < 0)
        goto done;
    if ((ub = ub_ctx_create()) == NULL) {
        vstr_sprintf(why, "cannot create the DNS resolver context");
        goto done;
    }
    /* Threads, not libunbound's default of a forked helper process: a
       delivery agent must not leave children behind when it exits. */
    if ((err = ub_ctx_async(ub, 1)) != 0)
        goto ub_fail;
    if (fwd->argc == 0) {
        if ((err = ub_ctx_resolvconf(ub, NULL)) != 0)
            goto ub_fail;
    } else {
        for (size_t i = 0; i < fwd->argc; i++)
            if ((err = ub_ctx_set_fwd(ub, fwd->argv[i])) != 0)
                goto ub_fail;
    }
    ctx = mymalloc(sizeof(*ctx));
    ctx->ub = ub;
    ctx->pending = NULL;
    goto done;
ub_fail:
    vstr_sprintf(why, "DNS resolver set-up: %s", ub_strerror(err));
    ub_ctx_delete(ub);
done:
    argv_free(fwd);
    return ctx;
}

/* dns_query_free - release one query's state */
static void dns_query_free(DNS_QUERY *q)
{
    myfree(q->qname);
    myfree(q);
}

/* dns_query_unlink - take a query off its context's list */
static void dns_query_unlink(DNS_QUERY *q)
{
    for (DNS_QUERY **pp = &q->ctx->pending; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == q) {
            *pp = q->next;
            return;
        }
    }
}

/* dns_ctx_free - release */
void dns_ctx_free(DNS_CTX *ctx)
{
    if (ctx == NULL)
        return;
    /* ub_ctx_delete stops the resolver threads; no callback runs after. */
    ub_ctx_delete(ctx->ub);
    while (ctx->pending != NULL) {
        DNS_QUERY *q = ctx->pending;

        ctx->pending = q->next;
        dns_query_free(q);
    }
    myfree(ctx);
}

/* dns_reply_free - release a reply */
void dns_reply_free(DNS_REPLY *reply)
{
    if (reply == NULL)
        return;
    for (size_t i = 0; i < reply->count; i++)
        dns_rr_free(reply->rr + i);
    myfree(reply->rr);
    myfree(reply->qname);
    myfree(reply->canon);
    myfree(reply);
}

/* dns_result_convert - a libunbound answer into a status and a reply */
static int dns_result_convert(const char *qname, int type, int err, struct ub_result *res,
                              DNS_REPLY **replyp, VSTR *why)
{
    DNS_REPLY *reply;
    size_t n = 0, bad = 0;

    *replyp = NULL;
    if (err != 0) {
        vstr_sprintf(why, "%s (%s)", dns_status_text(DNS_RETRY), ub_strerror(err));
        return DNS_RETRY;
    }
    if (res->rcode == DNS_RCODE_NXDOMAIN || res->nxdomain) {
        vstr_cpy(why, dns_status_text(DNS_NOTFOUND));
        return DNS_NOTFOUND;
    }
    /* SERVFAIL, REFUSED, FORMERR, NOTIMP: a server problem, not an answer. */
    if (res->rcode != DNS_RCODE_NOERROR || res->bogus) {
        vstr_cpy(why, dns_status_text(DNS_RETRY));
        return DNS_RETRY;
    }
    if (!res->havedata) {
        vstr_cpy(why, dns_status_text(DNS_NODATA));
        return DNS_NODATA;
    }
    reply = mycalloc(1, sizeof(*reply));
    for (size_t i = 0; res->data[i] != NULL && i < DNS_RR_MAX; i++)
        n++;
    reply->rr = mycalloc(n ? n : 1, sizeof(DNS_RR));
    for (size_t i = 0; i < n; i++) {
        if (dns_rr_parse(type, (const unsigned char *)res->data[i], (size_t)res->len[i],
                         reply->rr + reply->count) == 0)
            reply->count++;
        else
            bad++;
    }
    if (bad)
        msg_warn("DNS reply for %s/%s: %zu malformed or invalid record%s ignored", qname,
                 dns_type_name(type), bad, bad > 1 ? "s" : "");
    if (reply->count == 0) {
        dns_reply_free(reply);
        vstr_sprintf(why, "%s", dns_status_text(DNS_INVAL));
        return DNS_RETRY;
    }
    reply->qname = lowercase(mystrdup(qname));
    if (res->canonname != NULL && dns_hostname_valid(res->canonname)) {
        size_t len = strlen(res->canonname);

        if (len > 0 && res->canonname[len - 1] == '.')
            len--;
        reply->canon = lowercase(mystrndup(res->canonname, len));
    } else {
        reply->canon = mystrdup(reply->qname);
    }
    reply->type = type;
    reply->ttl = res->ttl;
    *replyp = reply;
    return DNS_OK;
}

/* dns_async_done - libunbound's callback for dns_lookup_async */
static void dns_async_done(void *arg, int err, struct ub_result *res)
{
    DNS_QUERY *q = arg;
    DNS_REPLY *reply = NULL;
    VSTR *why = vstr_alloc(64);
    int status = dns_result_convert(q->qname, q->type, err, res, &reply, why);

    if (res != NULL)
        ub_resolve_free(res);
    dns_query_unlink(q);
    q->cb(q->arg, status, reply, vstr_str(why));
    vstr_free(why);
    dns_query_free(q);
}

/* dns_qname_ok - a name we are willing to send to the resolver */
static int dns_qname_ok(const char *name)
{
    /* Any printable ASCII without spaces, so that SRV-style "_x" labels
       and DNSBL keys pass; the resolver checks the rest. */
    size_t len = strlen(name);

    if (len == 0 || len > DNS_NAME_MAX + 1)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7f)
            return 0;
    return strstr(name, "..") == NULL && name[0] != '.';
}

/* dns_lookup_async - start a query */
int dns_lookup_async(DNS_CTX *ctx, const char *name, int type, DNS_CALLBACK cb, void *arg, int *id,
                     VSTR *why)
{
    DNS_QUERY *q;
    int err;

    if (!dns_qname_ok(name)) {
        vstr_sprintf(why, "%s", dns_status_text(DNS_INVAL));
        errno = EINVAL;
        return -1;
    }
    q = mymalloc(sizeof(*q));
    q->ctx = ctx;
    q->cb = cb;
    q->arg = arg;
    q->qname = mystrdup(name);
    q->type = type;
    if ((err = ub_resolve_async(ctx->ub, name, type, DNS_CLASS_IN, q, dns_async_done, &q->id)) !=
        0) {
        vstr_sprintf(why, "%s (%s)", dns_status_text(DNS_RETRY), ub_strerror(err));
        dns_query_free(q);
        return -1;
    }
    /* Callbacks run only from dns_ctx_process, so linking now is safe. */
    q->next = ctx->pending;
    ctx->pending = q;
    *id = q->id;
    return 0;
}

/* dns_cancel - forget a pending query */
void dns_cancel(DNS_CTX *ctx, int id)
{
    for (DNS_QUERY *q = ctx->pending; q != NULL; q = q->next) {
        if (q->id == id) {
            /* After ub_cancel the callback is never called: free it here. */
            (void)ub_cancel(ctx->ub, id);
            dns_query_unlink(q);
            dns_query_free(q);
            return;
        }
    }
}

/* dns_ctx_fd - readable when answers wait */
int dns_ctx_fd(DNS_CTX *ctx)
{
    return ub_fd(ctx->ub);
}

/* dns_ctx_process - run callbacks */
int dns_ctx_process(DNS_CTX *ctx)
{
    return ub_process(ctx->ub) == 0 ? 0 : -1;
}

/* dns_wait_done - callback of a synchronous lookup */
static void dns_wait_done(void *arg, int status, DNS_REPLY *reply, const char *why)
{
    DNS_WAIT *w = arg;

    w->done = 1;
    w->status = status;
    w->reply = reply;
    vstr_cpy(w->why, why);
}

/* dns_now_ms - monotonic clock in milliseconds */
static long long dns_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* dns_lookup - one query with a deadline */
int dns_lookup(DNS_CTX *ctx, const char *name, int type, int timeout_ms, DNS_REPLY **replyp,
               VSTR *why)
{
    DNS_WAIT w = {.done = 0, .status = DNS_RETRY, .reply = NULL, .why = why};
    long long deadline = dns_now_ms() + (timeout_ms > 0 ? timeout_ms : 1);
    int id;

    *replyp = NULL;
    if (dns_lookup_async(ctx, name, type, dns_wait_done, &w, &id, why) < 0)
        return errno == EINVAL ? DNS_INVAL : DNS_RETRY;
    while (!w.done) {
        long long left = deadline - dns_now_ms();
        struct pollfd pfd = {.fd = dns_ctx_fd(ctx), .events = POLLIN};
        int n;

        if (left <= 0) {
            dns_cancel(ctx, id);
            vstr_sprintf(why, "%s (timeout)", dns_status_text(DNS_RETRY));
            return DNS_RETRY;
        }
        n = poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left);
        if (n < 0 && errno != EINTR) {
            dns_cancel(ctx, id);
            vstr_sprintf(why, "%s (poll: %s)", dns_status_text(DNS_RETRY), strerror(errno));
            return DNS_RETRY;
        }
        if (n > 0 && dns_ctx_process(ctx) < 0) {
            dns_cancel(ctx, id);
            vstr_sprintf(why, "%s (resolver error)", dns_status_text(DNS_RETRY));
            return DNS_RETRY;
        }
    }
    *replyp = w.reply;
    return w.status;
}
