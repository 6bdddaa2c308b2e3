/*
 * smtpd_peer - who the client is: its address, port and name as the log
 * lines and the Received: header show them, which policy lists it is in,
 * and how many sessions each client address has open in this process
 * (smtpd_client_connection_count_limit).
 *
 * Client names (smtpd_peername_lookup = yes). A name is shown only when it
 * is verified, as Postfix does: the PTR record of the address names a host,
 * and that host's A (or AAAA) records include the address again. The two
 * lookups go through libunbound (lib/mail/dns) asynchronously on the
 * session's event loop, so a slow DNS server delays only its own client's
 * greeting, never the other sessions; SMTPD_PEER_LOOKUP_MAX bounds the
 * whole verification. A name that cannot be verified is "unknown" (the
 * reverse name, when there is one, is still passed to cleanup as
 * reverse_client_name). Loopback clients (127.0.0.1, ::1) are "localhost"
 * without a lookup. Policy never depends on the name.
 *
 * Connection counts here are per process: master runs several smtpd
 * processes when one is busy, and each counts only its own sessions. This
 * count is used only when the anvil service is not configured; with it,
 * smtpd_anvil.c counts across all processes of the service.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/event.h>

#include "mail/dns.h"
#include "mail/mail_conf.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#include "smtpd.h"

#define SMTPD_COUNT_BUCKETS 1024 /* hash buckets of the connection count table */

typedef struct SMTPD_COUNT {
    struct SMTPD_COUNT *next;
    long count;
    char addr[INET6_ADDRSTRLEN];
} SMTPD_COUNT;

/* Sessions per client address in this process (the one event loop owns it). */
static SMTPD_COUNT *smtpd_count_table[SMTPD_COUNT_BUCKETS];

/* The process's resolver, NULL when names are not looked up. */
static DNS_CTX *smtpd_dns;
static struct event *smtpd_dns_event;

/* smtpd_peer_sockaddr - text address and port of a socket address; 0 or -1 */
static int smtpd_peer_sockaddr(const struct sockaddr_storage *ss, char *addr, size_t size,
                               char *port, size_t port_size, int *family, unsigned char *bin)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

        *family = AF_INET;
        memcpy(bin, &sin->sin_addr, 4);
        if (inet_ntop(AF_INET, &sin->sin_addr, addr, size) == NULL)
            return -1;
        snprintf(port, port_size, "%u", (unsigned)ntohs(sin->sin_port));
        return 0;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

        snprintf(port, port_size, "%u", (unsigned)ntohs(sin6->sin6_port));
        /* A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d. */
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            *family = AF_INET;
            memcpy(bin, sin6->sin6_addr.s6_addr + 12, 4);
            return inet_ntop(AF_INET, sin6->sin6_addr.s6_addr + 12, addr, size) ? 0 : -1;
        }
        *family = AF_INET6;
        memcpy(bin, sin6->sin6_addr.s6_addr, 16);
        return inet_ntop(AF_INET6, &sin6->sin6_addr, addr, size) ? 0 : -1;
    }
    /* A UNIX-domain client (tests, a local proxy) is this host. */
    *family = AF_INET;
    memcpy(bin, "\177\0\0\1", 4);
    snprintf(addr, size, "127.0.0.1");
    snprintf(port, port_size, "0");
    return 0;
}

/* smtpd_peer_is_localhost - 127.0.0.1 or ::1: "localhost" without asking DNS */
static int smtpd_peer_is_localhost(const SMTPD_PEER *peer)
{
    return strcmp(peer->addr, "127.0.0.1") == 0 || strcmp(peer->addr, "::1") == 0;
}

/* smtpd_peer_set_name - the names and the name[addr] form of the logs */
static void smtpd_peer_set_name(SMTPD_PEER *peer, const char *name, const char *rname)
{
    snprintf(peer->name, sizeof(peer->name), "%s", name);
    snprintf(peer->rname, sizeof(peer->rname), "%s", rname);
    if (peer->client_port_logging)
        snprintf(peer->namaddr, sizeof(peer->namaddr), "%s[%s]:%s", peer->name, peer->addr,
                 peer->port);
    else
        snprintf(peer->namaddr, sizeof(peer->namaddr), "%s[%s]", peer->name, peer->addr);
}

/* smtpd_peer_list - membership in a policy list; a failed lookup counts as "no" */
static int smtpd_peer_list(MATCH_LIST *ml, const SMTPD_PEER *peer)
{
    return ml != NULL && match_list_addr(ml, peer->addr) == 1;
}

/* smtpd_peer_init - fill peer for the connected socket fd; 0, or -1 (logged) */
int smtpd_peer_init(SMTPD_PEER *peer, int fd, const SMTPD_CONFIG *cfg)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char lport[8];
    unsigned char lbin[16];
    int lfamily;

    memset(peer, 0, sizeof(*peer));
    memset(&ss, 0, sizeof(ss));
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) {
        /* The client left between accept() and now. */
        if (errno != ENOTCONN)
            msg_warn("getpeername: %m");
        return -1;
    }
    if (smtpd_peer_sockaddr(&ss, peer->addr, sizeof(peer->addr), peer->port, sizeof(peer->port),
                            &peer->family, peer->bin) < 0) {
        msg_warn("cannot convert the client address to text: %m");
        return -1;
    }
    len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        smtpd_peer_sockaddr(&ss, peer->local_addr, sizeof(peer->local_addr), lport, sizeof(lport),
                            &lfamily, lbin) < 0)
        peer->local_addr[0] = 0;
    peer->client_port_logging = cfg->client_port_logging;
    if (smtpd_peer_is_localhost(peer))
        smtpd_peer_set_name(peer, "localhost", "localhost");
    else
        smtpd_peer_set_name(peer, "unknown", "unknown");
    peer->in_mynetworks = smtpd_peer_list(cfg->mynetworks, peer);
    peer->limit_exempt = smtpd_peer_list(cfg->limit_exceptions, peer);
    peer->bare_exempt = smtpd_peer_list(cfg->bare_exclusions, peer);
    return 0;
}

/* smtpd_count_hash - FNV-1a over the address text */
static unsigned smtpd_count_hash(const char *addr)
{
    unsigned h = 2166136261u;

    for (const unsigned char *cp = (const unsigned char *)addr; *cp; cp++)
        h = (h ^ *cp) * 16777619u;
    return h % SMTPD_COUNT_BUCKETS;
}

/* smtpd_peer_count_add - one more session from this address; the new count */
int smtpd_peer_count_add(SMTPD_PEER *peer)
{
    SMTPD_COUNT **head = &smtpd_count_table[smtpd_count_hash(peer->addr)];
    SMTPD_COUNT *ent;

    if (peer->counted)
        msg_panic("smtpd_peer_count_add: %s counted twice", peer->addr);
    for (ent = *head; ent; ent = ent->next)
        if (strcmp(ent->addr, peer->addr) == 0)
            break;
    if (ent == NULL) {
        ent = mycalloc(1, sizeof(*ent));
        snprintf(ent->addr, sizeof(ent->addr), "%s", peer->addr);
        ent->next = *head;
        *head = ent;
    }
    peer->counted = 1;
    return (int)++ent->count;
}

/* smtpd_peer_count_del - the session of a counted peer ended */
void smtpd_peer_count_del(SMTPD_PEER *peer)
{
    SMTPD_COUNT **pp = &smtpd_count_table[smtpd_count_hash(peer->addr)];

    if (!peer->counted)
        return;
    peer->counted = 0;
    for (; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->addr, peer->addr) == 0) {
            SMTPD_COUNT *ent = *pp;

            if (--ent->count <= 0) {
                *pp = ent->next;
                myfree(ent);
            }
            return;
        }
    }
    msg_panic("smtpd_peer_count_del: %s is not in the table", peer->addr);
}

/*
 * Name verification.
 */

/* smtpd_dns_event_cb - answers arrived: run their callbacks */
static void smtpd_dns_event_cb(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd, (void)what, (void)ctx;
    if (dns_ctx_process(smtpd_dns) < 0)
        msg_warn("DNS resolver: cannot process answers");
}

/* smtpd_peer_dns_init - the resolver, as root before any chroot (reads resolv.conf) */
void smtpd_peer_dns_init(const SMTPD_CONFIG *cfg, struct event_base *base)
{
    VSTR *why;

    (void)cfg;
    if (!var_bool("smtpd_peername_lookup") || var_bool("disable_dns_lookups"))
        return;
    why = vstr_alloc(100);
    if ((smtpd_dns = dns_ctx_create(var_str("dns_servers"), why)) == NULL) {
        msg_warn("client host names will show as \"unknown\": %s", vstr_str(why));
    } else {
        smtpd_dns_event =
            event_new(base, dns_ctx_fd(smtpd_dns), EV_READ | EV_PERSIST, smtpd_dns_event_cb, NULL);
        event_add(smtpd_dns_event, NULL);
    }
    vstr_free(why);
}

/* smtpd_peer_reverse_name - "4.3.2.1.in-addr.arpa" or the ip6.arpa nibbles */
static void smtpd_peer_reverse_name(const SMTPD_PEER *peer, VSTR *out)
{
    static const char hex[] = "0123456789abcdef";

    vstr_reset(out);
    if (peer->family == AF_INET) {
        vstr_sprintf(out, "%u.%u.%u.%u.in-addr.arpa", peer->bin[3], peer->bin[2], peer->bin[1],
                     peer->bin[0]);
        return;
    }
    for (int i = 15; i >= 0; i--)
        vstr_sprintf_append(out, "%c.%c.", hex[peer->bin[i] & 0xf], hex[peer->bin[i] >> 4]);
    vstr_cat(out, "ip6.arpa");
}

/* smtpd_peer_finish - verification over (whatever the outcome): tell the session */
static void smtpd_peer_finish(SMTPD_PEER *peer, const char *name, const char *rname)
{
    if (peer->dns_timer) {
        event_free(peer->dns_timer);
        peer->dns_timer = NULL;
    }
    peer->dns_stage = 0;
    smtpd_peer_set_name(peer, name, rname);
    peer->dns_done(peer->dns_context);
}

/* smtpd_peer_forward_cb - does the PTR name lead back to the address */
static void smtpd_peer_forward_cb(void *arg, int status, DNS_REPLY *reply, const char *why)
{
    SMTPD_PEER *peer = arg;
    int match = 0;
    size_t alen = peer->family == AF_INET ? 4 : 16;

    if (status == DNS_OK) {
        for (size_t i = 0; i < reply->count && !match; i++)
            match = reply->rr[i].family == peer->family &&
                    memcmp(reply->rr[i].addr, peer->bin, alen) == 0;
        if (!match)
            msg_warn("hostname %s does not resolve to address %s", peer->rname, peer->addr);
    } else {
        msg_warn("hostname %s does not resolve to address %s: %s", peer->rname, peer->addr, why);
    }
    dns_reply_free(reply);
    char rname[SMTPD_NAME_MAX];

    snprintf(rname, sizeof(rname), "%s", peer->rname);
    smtpd_peer_finish(peer, match ? rname : "unknown", rname);
}

/* smtpd_peer_ptr_cb - the address's name, if it has one */
static void smtpd_peer_ptr_cb(void *arg, int status, DNS_REPLY *reply, const char *why)
{
    SMTPD_PEER *peer = arg;
    VSTR *err;

    (void)why;
    if (status != DNS_OK || reply->count == 0 || reply->rr[0].host == NULL ||
        *reply->rr[0].host == 0) {
        dns_reply_free(reply);
        smtpd_peer_finish(peer, "unknown", "unknown");
        return;
    }
    /* Names reach logs and headers: lib/mail/dns already checked the syntax. */
    snprintf(peer->rname, sizeof(peer->rname), "%s", reply->rr[0].host);
    dns_reply_free(reply);
    err = vstr_alloc(64);
    peer->dns_stage = 2;
    if (dns_lookup_async(smtpd_dns, peer->rname,
                         peer->family == AF_INET ? DNS_TYPE_A : DNS_TYPE_AAAA,
                         smtpd_peer_forward_cb, peer, &peer->dns_id, err) < 0) {
        char rname[SMTPD_NAME_MAX];

        snprintf(rname, sizeof(rname), "%s", peer->rname);
        smtpd_peer_finish(peer, "unknown", rname);
    }
    vstr_free(err);
}

/* smtpd_peer_timeout_cb - SMTPD_PEER_LOOKUP_MAX passed: go on without a name */
static void smtpd_peer_timeout_cb(evutil_socket_t fd, short what, void *ctx)
{
    SMTPD_PEER *peer = ctx;
    char rname[SMTPD_NAME_MAX];

    (void)fd, (void)what;
    dns_cancel(smtpd_dns, peer->dns_id);
    snprintf(rname, sizeof(rname), "%s", peer->dns_stage == 2 ? peer->rname : "unknown");
    msg_info("%s: client name lookup timed out after %d seconds", peer->addr,
             SMTPD_PEER_LOOKUP_MAX);
    smtpd_peer_finish(peer, "unknown", rname);
}

/* smtpd_peer_resolve - start verifying the client's name; 1 started (done follows), 0 not */
int smtpd_peer_resolve(SMTPD_PEER *peer, struct event_base *base, void (*done)(void *),
                       void *context)
{
    struct timeval tv = {.tv_sec = SMTPD_PEER_LOOKUP_MAX};
    VSTR *name, *why;
    int r;

    if (smtpd_dns == NULL || smtpd_peer_is_localhost(peer))
        return 0;
    name = vstr_alloc(80);
    why = vstr_alloc(64);
    smtpd_peer_reverse_name(peer, name);
    r = dns_lookup_async(smtpd_dns, vstr_str(name), DNS_TYPE_PTR, smtpd_peer_ptr_cb, peer,
                         &peer->dns_id, why);
    vstr_free(name);
    vstr_free(why);
    if (r < 0)
        return 0;
    peer->dns_stage = 1;
    peer->dns_done = done;
    peer->dns_context = context;
    peer->dns_timer = evtimer_new(base, smtpd_peer_timeout_cb, peer);
    evtimer_add(peer->dns_timer, &tv);
    return 1;
}

/* smtpd_peer_resolve_cancel - the session ends during verification */
void smtpd_peer_resolve_cancel(SMTPD_PEER *peer)
{
    if (peer->dns_stage == 0)
        return;
    dns_cancel(smtpd_dns, peer->dns_id);
    if (peer->dns_timer)
        event_free(peer->dns_timer);
    peer->dns_timer = NULL;
    peer->dns_stage = 0;
}
