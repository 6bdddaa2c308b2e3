/*
 * smtp_deliver - one delivery request from routing to results: a cached
 * session for the destination when there is one, else the server list from
 * DNS (MX in preference order, equal preferences shuffled; the domain's own
 * addresses when it has no MX, RFC 5321 5.1; RFC 7505 null MX bounces;
 * [host] and address literals without MX lookup), then smtp_fallback_relay,
 * and one server after another until every recipient has a final answer,
 * within smtp_mx_address_limit addresses and smtp_mx_session_limit
 * sessions.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "mail/deliver_log.h"
#include "mail/dns.h"
#include "smtp.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

/* One address to try. */
typedef struct SMTP_SERVER {
    char *host; /* name for messages and TLS checks */
    int family; /* AF_INET, AF_INET6, AF_UNIX */
    unsigned char addr[16];
    unsigned port;
    int fallback; /* from smtp_fallback_relay */
} SMTP_SERVER;

typedef struct SMTP_SERVERS {
    SMTP_SERVER list[SMTP_SERVERS_MAX];
    size_t count;
} SMTP_SERVERS;

/* Outcome of resolving a destination. */
#define SMTP_ROUTE_OK 0
#define SMTP_ROUTE_SOFT 1 /* temporary: recorded as a soft error */
#define SMTP_ROUTE_DONE 2 /* recipients answered for good (bounce) */

/* smtp_servers_add - append one address (bounded) */
static void smtp_servers_add(SMTP_SERVERS *sv, const char *host, int family,
                             const unsigned char *addr, unsigned port, int fallback)
{
    SMTP_SERVER *s;

    if (sv->count >= SMTP_SERVERS_MAX)
        return;
    s = sv->list + sv->count++;
    s->host = mystrdup(host);
    s->family = family;
    memcpy(s->addr, addr, family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0);
    s->port = port;
    s->fallback = fallback;
}

/* smtp_servers_free - release */
static void smtp_servers_free(SMTP_SERVERS *sv)
{
    for (size_t i = 0; i < sv->count; i++)
        myfree(sv->list[i].host);
    sv->count = 0;
}

/* smtp_shuffle - random order of n records (smtp_randomize_addresses) */
static void smtp_shuffle(DNS_RR *rr, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)random() % i;
        DNS_RR tmp = rr[i - 1];

        rr[i - 1] = rr[j];
        rr[j] = tmp;
    }
}

/* smtp_host_addrs - the addresses of one host, by inet_protocols and
   smtp_address_preference, at most limit of them; a DNS_* status (DNS_OK
   when any address was added) and the reason in why */
static int smtp_host_addrs(SMTP_REQ *req, SMTP_SERVERS *sv, const char *host, unsigned port,
                           int fallback, size_t limit, VSTR *why)
{
    DNS_REPLY *r4 = NULL, *r6 = NULL;
    int s4 = DNS_NODATA, s6 = DNS_NODATA;
    size_t added = 0, i4 = 0, i6 = 0;
    VSTR *w = vstr_alloc(64);
    int first6;

    (void)req;
    if (smtp_conf.use_ipv6)
        s6 = dns_lookup(smtp_dns, host, DNS_TYPE_AAAA, smtp_conf.dns_timeout_ms, &r6, w);
    if (smtp_conf.use_ipv4) {
        s4 = dns_lookup(smtp_dns, host, DNS_TYPE_A, smtp_conf.dns_timeout_ms, &r4, w);
    }
    if (r4 && smtp_conf.randomize_addresses)
        smtp_shuffle(r4->rr, r4->count);
    if (r6 && smtp_conf.randomize_addresses)
        smtp_shuffle(r6->rr, r6->count);
    /* Preference: one family first, then the other (the fallback from one
       family to the other); "any" alternates, IPv6 first. */
    first6 = smtp_conf.addr_pref != SMTP_PREF_IPV4;
    while (added < limit && ((r4 && i4 < r4->count) || (r6 && i6 < r6->count))) {
        int take6;

        if (smtp_conf.addr_pref == SMTP_PREF_ANY)
            take6 = (r6 && i6 < r6->count) && (!(r4 && i4 < r4->count) || i6 <= i4);
        else
            take6 = first6 ? (r6 && i6 < r6->count) : !(r4 && i4 < r4->count);
        if (take6)
            smtp_servers_add(sv, host, AF_INET6, r6->rr[i6++].addr, port, fallback);
        else
            smtp_servers_add(sv, host, AF_INET, r4->rr[i4++].addr, port, fallback);
        added++;
    }
    dns_reply_free(r4);
    dns_reply_free(r6);
    vstr_free(w);
    if (added > 0)
        return DNS_OK;
    /* Report the lookup Postfix would name: A when IPv4 is on, else AAAA. */
    {
        int st = s4 == DNS_RETRY || s6 == DNS_RETRY         ? DNS_RETRY
                 : s4 == DNS_NOTFOUND || s6 == DNS_NOTFOUND ? DNS_NOTFOUND
                                                            : DNS_NODATA;
        const char *type = smtp_conf.use_ipv4 ? "A" : "AAAA";

        vstr_sprintf(why,
                     "Host or domain name not found. Name service error for name=%s "
                     "type=%s: %s",
                     host, type, dns_status_text(st == DNS_NODATA ? DNS_NOTFOUND : st));
        return st;
    }
}

/* smtp_route_dest - the servers for one destination (nexthop or fallback) */
static int smtp_route_dest(SMTP_REQ *req, SMTP_SERVERS *sv, const SMTP_NEXTHOP *nh, int fallback,
                           int final_dest)
{
    VSTR *why = vstr_alloc(128);
    unsigned port = nh->port ? nh->port : smtp_conf.default_port;
    DNS_REPLY *mx = NULL;
    size_t limit =
        smtp_conf.mx_address_limit > 0 ? (size_t)smtp_conf.mx_address_limit : SMTP_SERVERS_MAX;
    int st, ret = SMTP_ROUTE_OK, retry = 0;

    if (nh->is_unix) {
        smtp_servers_add(sv, nh->host, AF_UNIX, (const unsigned char *)"", 0, fallback);
        goto done;
    }
    if (nh->is_addr) {
        unsigned char a[16];

        if (inet_pton(AF_INET, nh->host, a) == 1)
            smtp_servers_add(sv, nh->host, AF_INET, a, port, fallback);
        else if (inet_pton(AF_INET6, nh->host, a) == 1)
            smtp_servers_add(sv, nh->host, AF_INET6, a, port, fallback);
        goto done;
    }
    if (nh->no_mx) {
        st = smtp_host_addrs(req, sv, nh->host, port, fallback, limit, why);
        goto addr_status;
    }
    st = dns_lookup(smtp_dns, nh->host, DNS_TYPE_MX, smtp_conf.dns_timeout_ms, &mx, why);
    if (st == DNS_NODATA) {
        /* RFC 5321 5.1: no MX records: the domain is its own mail host. */
        st = smtp_host_addrs(req, sv, nh->host, port, fallback, limit, why);
        goto addr_status;
    }
    if (st != DNS_OK) {
        vstr_sprintf(why,
                     "Host or domain name not found. Name service error for name=%s "
                     "type=MX: %s",
                     nh->host, dns_status_text(st));
        goto addr_status;
    }
    /* RFC 7505 3: a single MX with the root as exchange says "no mail". */
    if (mx->count == 1 && mx->rr[0].host[0] == 0) {
        if (final_dest) {
            vstr_sprintf(why, "Domain %s does not accept mail (nullMX)", nh->host);
            smtp_fail_todo(req, 556, "5.1.10", "none", vstr_str(why));
            ret = SMTP_ROUTE_DONE;
        }
        goto done;
    }
    dns_mx_sort(mx->rr, mx->count, NULL);
    for (size_t i = 0; i < mx->count && sv->count < SMTP_SERVERS_MAX; i++) {
        size_t before = sv->count;

        if (mx->rr[i].host[0] == 0)
            continue; /* a null MX among others is ignored */
        if (limit == 0)
            break;
        st = smtp_host_addrs(req, sv, mx->rr[i].host, port, fallback, limit, why);
        if (st == DNS_RETRY)
            retry = 1;
        limit -= sv->count - before;
    }
    st = sv->count > 0 ? DNS_OK : retry ? DNS_RETRY : DNS_NOTFOUND;
    if (st != DNS_OK && smtp_conf.defer_if_no_mx_address_found)
        st = DNS_RETRY;
addr_status:
    if (st == DNS_OK)
        goto done;
    if (st == DNS_RETRY || !final_dest) {
        smtp_soft_error(req, 450, "4.4.3", "none", "%s", vstr_str(why));
        ret = SMTP_ROUTE_SOFT;
    } else {
        smtp_fail_todo(req, 550, "5.4.4", "none", vstr_str(why));
        ret = SMTP_ROUTE_DONE;
    }
done:
    dns_reply_free(mx);
    vstr_free(why);
    return ret;
}

/* smtp_route - every server to try for this request */
static int smtp_route(SMTP_REQ *req, SMTP_SERVERS *sv)
{
    int ret = smtp_route_dest(req, sv, &req->nh, 0, 1);

    if (ret == SMTP_ROUTE_DONE)
        return ret;
    for (size_t i = 0; i < smtp_conf.fallback_relay->argc; i++) {
        SMTP_NEXTHOP fb;
        VSTR *why = vstr_alloc(64);
        int r;

        if (smtp_nexthop_parse(smtp_conf.fallback_relay->argv[i], smtp_conf.known_ports, &fb, why) <
            0) {
            msg_warn("smtp_fallback_relay: %s", vstr_str(why));
            vstr_free(why);
            continue;
        }
        vstr_free(why);
        /* Never fall back to the destination we are already trying. */
        if (strcmp(fb.host, req->nh.host) != 0 || fb.port != req->nh.port) {
            r = smtp_route_dest(req, sv, &fb, 1, 0);
            (void)r;
        }
        smtp_nexthop_free(&fb);
    }
    return sv->count > 0 ? SMTP_ROUTE_OK : ret;
}

/* smtp_addr_text - an address as text */
static void smtp_addr_text(const SMTP_SERVER *s, char *buf, size_t size)
{
    if (s->family == AF_UNIX)
        snprintf(buf, size, "%s", s->host);
    else
        inet_ntop(s->family, s->addr, buf, (socklen_t)size);
}

/* smtp_finish - after a transaction: keep the session or close it */
static void smtp_finish(SMTP_SESSION *sess, int txn)
{
    if (txn == 0 && !sess->broken)
        smtp_cache_put(sess);
    else if (sess->broken)
        smtp_session_free(sess);
    else
        smtp_session_quit(sess);
}

/* smtp_try_server - connect, set up, deliver; SMTP_SESS_* of the set-up */
static int smtp_try_server(SMTP_REQ *req, const SMTP_SERVER *s, const char *dest_key, int final)
{
    char addr[INET6_ADDRSTRLEN + 1];
    VSTR *why = vstr_alloc(64);
    int allow_tls = 1, ret;

    smtp_addr_text(s, addr, sizeof(addr));
    for (;;) {
        SMTP_SESSION *sess;
        int fd = smtp_connect_addr(s->family, s->addr, s->port,
                                   s->family == AF_UNIX ? s->host : NULL, why);

        if (fd < 0) {
            if (s->family == AF_UNIX)
                smtp_soft_error(req, 450, "4.4.1", "none", "connect to %s: %s", s->host,
                                vstr_str(why));
            else
                smtp_soft_error(req, 450, "4.4.1", "none", "connect to %s[%s]:%u: %s", s->host,
                                addr, s->port, vstr_str(why));
            ret = SMTP_SESS_SOFT;
            break;
        }
        sess = smtp_session_new(smtp_stream_open(fd), s->family == AF_UNIX ? "localhost" : s->host,
                                addr, s->port, dest_key);
        ret = smtp_session_setup(req, sess, allow_tls);
        if (ret == SMTP_SESS_PLAIN && allow_tls) {
            /* TLS at level may failed: the same server once more without it. */
            smtp_session_free(sess);
            allow_tls = 0;
            continue;
        }
        if (ret != SMTP_SESS_OK) {
            if (sess->broken)
                smtp_session_free(sess);
            else
                smtp_session_quit(sess);
            break;
        }
        req->conn_usec = deliver_log_now_usec();
        req->site_ok = 1;
        smtp_finish(sess, smtp_transaction(req, sess, final));
        break;
    }
    vstr_free(why);
    return ret;
}

/* smtp_deliver - the whole request */
void smtp_deliver(SMTP_REQ *req)
{
    SMTP_SERVERS *sv = mycalloc(1, sizeof(*sv));
    VSTR *key = vstr_alloc(128);
    SMTP_SESSION *sess;
    int sessions = 0;

    vstr_sprintf(key, "%s:%s:%u:%s", smtp_conf.proto, req->nexthop, smtp_conf.default_port,
                 smtp_tls_level_name(req->tls.level));
    if (req->tls.match)
        vstr_sprintf_append(key, ":%s", req->tls.match);

    /* A session left open by an earlier delivery to the same destination. */
    req->judged = 1;
    if ((sess = smtp_cache_take(vstr_str(key))) != NULL) {
        if (smtp_session_reset(sess) == 0) {
            req->conn_usec = deliver_log_now_usec();
            req->site_ok = 1;
            smtp_finish(sess, smtp_transaction(req, sess, 0));
        } else {
            smtp_session_free(sess);
        }
    }
    if (req->todo > 0 && smtp_route(req, sv) == SMTP_ROUTE_OK) {
        long limit = smtp_conf.mx_session_limit;

        for (size_t i = 0; i < sv->count && req->todo > 0; i++) {
            int next_fallback = i + 1 < sv->count && sv->list[i + 1].fallback;
            /* The last server we will try reports soft failures itself. */
            int final = i + 1 == sv->count || (limit > 0 && sessions + 1 >= limit &&
                                               !sv->list[i].fallback && !next_fallback);
            int ret = smtp_try_server(req, sv->list + i, vstr_str(key), final);

            if (ret == SMTP_SESS_HARD)
                break;
            /* smtp_mx_session_limit counts sessions that completed the
               initial handshake; refused connections and bad greetings
               only use up addresses (smtp_mx_address_limit). */
            if (ret == SMTP_SESS_OK && !sv->list[i].fallback && limit > 0 && ++sessions >= limit) {
                /* Give up on the MX hosts; the fallback relays remain. */
                while (i + 1 < sv->count && !sv->list[i + 1].fallback)
                    i++;
            }
        }
    }
    if (req->todo > 0) {
        if (req->last.code == 0)
            smtp_soft_error(req, 450, "4.4.3", "none", "no server available for %s", req->nexthop);
        /* Connection or handshake failure with every server: the
           destination failed as a whole (qmgr backs off from it). */
        if (!req->site_ok && req->last.code / 100 == 4)
            req->dead = 1;
        smtp_fail_todo(req, req->last.code, req->last.dsn, vstr_str(req->last.relay),
                       vstr_str(req->last.reason));
    }
    smtp_servers_free(sv);
    myfree(sv);
    vstr_free(key);
}
