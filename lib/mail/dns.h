/*
 * dns - DNS lookups (MX, A, AAAA, PTR, TXT, CNAME) through libunbound.
 *
 * RESOLVER
 *   One DNS_CTX per process. dns_ctx_create() takes the value of the
 *   dns_servers parameter: empty means the system resolver named in
 *   /etc/resolv.conf; otherwise a list of addresses with optional ports
 *   ("127.0.0.1:5353", "[::1]:5353", "192.0.2.53", "2001:db8::53", or
 *   libunbound's own "addr@port"), which the context forwards every query
 *   to (recursion desired). Names are not allowed there: finding the
 *   resolver must not need a resolver. Create the context before a chroot
 *   (it reads /etc/resolv.conf at once).
 *
 *   libunbound is asynchronous: each query runs in a resolver thread and
 *   the answer comes back through a pipe (dns_ctx_fd). Event-driven code
 *   starts queries with dns_lookup_async, watches dns_ctx_fd for
 *   readability and calls dns_ctx_process, which runs the callbacks.
 *   Blocking code (the delivery agents, which serve one client at a time)
 *   calls dns_lookup, which waits on the same descriptor with a deadline
 *   and cancels the query when the deadline passes: no lookup can hold a
 *   process longer than the caller's timeout.
 *
 * ANSWERS
 *   A lookup ends in one of the DNS_* status codes below. Only DNS_OK
 *   comes with a DNS_REPLY: the records of the asked-for type in the answer
 *   (CNAME chains are followed by the resolver; reply->canon names the end
 *   of the chain), at most DNS_RR_MAX of them. Record data is checked
 *   before use: a record that does not parse (a name with a compression
 *   pointer, a label over 63 octets, an address of the wrong length) is
 *   dropped with a warning, and host names (MX exchange, PTR target) are
 *   kept only when dns_hostname_valid accepts them, so nothing a DNS server
 *   sends reaches a log line or an SMTP command unchecked.
 *
 *   An MX record whose exchange is the root (".") is kept with host "":
 *   that is RFC 7505's null MX, which the caller reports as "does not
 *   accept mail".
 *
 * OWNERSHIP
 *   dns_ctx_create allocates, dns_ctx_free releases (pending queries are
 *   cancelled without their callbacks). A DNS_REPLY belongs to whoever
 *   received it and is released with dns_reply_free.
 *
 * THREADS
 *   The resolver threads are libunbound's; every function here must be
 *   called from one thread, as everything in Postern.
 */
#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H

#include <stddef.h>

#include "util/argv.h"
#include "util/vstr.h"

/* Record types (RFC 1035, RFC 3596). */
#define DNS_TYPE_A 1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_PTR 12
#define DNS_TYPE_MX 15
#define DNS_TYPE_TXT 16
#define DNS_TYPE_AAAA 28

/* Limits on what a DNS server can make us hold. */
#define DNS_NAME_MAX 253   /* text form of a name, without the final dot */
#define DNS_LABEL_MAX 63   /* octets in one label (RFC 1035 2.3.4) */
#define DNS_WIRE_MAX 255   /* octets of a name in wire form */
#define DNS_RR_MAX 100     /* records kept from one answer */
#define DNS_TXT_MAX 4096   /* octets of one TXT record's joined strings */
#define DNS_SERVERS_MAX 16 /* entries in dns_servers */

/* Lookup results. */
#define DNS_OK 0       /* records of the type were found */
#define DNS_NOTFOUND 1 /* the name does not exist (NXDOMAIN) */
#define DNS_NODATA 2   /* the name exists but has no record of the type */
#define DNS_RETRY 3    /* try again later: SERVFAIL, REFUSED, timeout, resolver error */
#define DNS_INVAL 4    /* the query name is not a valid domain name */

typedef struct DNS_RR {
    int type;               /* DNS_TYPE_* */
    unsigned pref;          /* MX: preference */
    char *host;             /* MX exchange ("" = null MX), PTR, CNAME target; else NULL */
    int family;             /* A, AAAA: AF_INET or AF_INET6; else 0 */
    unsigned char addr[16]; /* A: 4 bytes, AAAA: 16 bytes, network order */
    char *text;             /* TXT: the character-strings joined; else NULL */
} DNS_RR;

typedef struct DNS_REPLY {
    char *qname;  /* the name asked for, lower case, no final dot */
    int type;     /* the type asked for */
    char *canon;  /* the canonical name (end of the CNAME chain) */
    int ttl;      /* seconds */
    DNS_RR *rr;   /* count records, in answer order (dns_mx_sort orders MX) */
    size_t count; /* >= 1 */
} DNS_REPLY;

typedef struct DNS_CTX DNS_CTX;

/* dns_ctx_create - a resolver for the dns_servers value (NULL or "" = the
   system's); NULL with the reason in why */
DNS_CTX *dns_ctx_create(const char *servers, VSTR *why);
/* dns_ctx_free - cancel pending queries and release; NULL is fine */
void dns_ctx_free(DNS_CTX *ctx);

/* dns_lookup - one query, waiting at most timeout_ms; a DNS_* status, with
   *replyp set only for DNS_OK, and the reason for any other status in why
   ("Host not found", "Host not found, try again", ...) */
int dns_lookup(DNS_CTX *ctx, const char *name, int type, int timeout_ms, DNS_REPLY **replyp,
               VSTR *why);

/* Asynchronous use. The callback gets the status, the reply (DNS_OK only;
   the callback owns it) and a reason (valid during the call). */
typedef void (*DNS_CALLBACK)(void *arg, int status, DNS_REPLY *reply, const char *why);

/* dns_lookup_async - start a query; 0 and its id, or -1 with why (the
   callback is then never called) */
int dns_lookup_async(DNS_CTX *ctx, const char *name, int type, DNS_CALLBACK cb, void *arg, int *id,
                     VSTR *why);
/* dns_cancel - forget a pending query; its callback is never called */
void dns_cancel(DNS_CTX *ctx, int id);
/* dns_ctx_fd - becomes readable when answers are waiting */
int dns_ctx_fd(DNS_CTX *ctx);
/* dns_ctx_process - run the callbacks of the answers that arrived; 0 or -1 */
int dns_ctx_process(DNS_CTX *ctx);

/* dns_reply_free - release a reply; NULL is fine */
void dns_reply_free(DNS_REPLY *reply);

/* ---- Pure helpers (also used by the tests) ---- */

/* dns_servers_parse - the dns_servers value into libunbound forwarder forms
   ("addr" or "addr@port") appended to out; 0, or -1 with why */
int dns_servers_parse(const char *servers, ARGV *out, VSTR *why);

/* dns_name_from_wire - an uncompressed wire-form name at data (len bytes
   available) into text (lower case, no final dot; "" for the root); the
   bytes it used in *used. 0, or -1 when malformed (compression pointer,
   label over 63, name over 255 octets, truncated, a label holding '.' or
   a byte outside printable ASCII) */
int dns_name_from_wire(const unsigned char *data, size_t len, size_t *used, VSTR *text);

/* dns_rr_parse - one record's rdata of type into rr (its strings are new;
   dns_rr_free releases them); 0, or -1 when malformed or invalid */
int dns_rr_parse(int type, const unsigned char *rdata, size_t len, DNS_RR *rr);
/* dns_rr_free - release the strings of one record */
void dns_rr_free(DNS_RR *rr);

/* dns_mx_sort - order MX records by preference, shuffling those of equal
   preference (RFC 5321 5.1) with rnd (returns a random number; NULL: the
   C library's random()) */
void dns_mx_sort(DNS_RR *rr, size_t count, long (*rnd)(void));

/* dns_hostname_valid - a syntactically valid host name: labels of letters,
   digits, '-' and '_' (not starting or ending with '-'), 1..63 octets
   each, at most DNS_NAME_MAX in all, one optional final dot */
int dns_hostname_valid(const char *name);

/* dns_type_name - "MX", "A", ... (or "TYPE<n>" in a static buffer) */
const char *dns_type_name(int type);

/* dns_status_text - Postfix's words for a status: "Host not found",
   "Host not found, try again", "No address associated with hostname" */
const char *dns_status_text(int status);

#endif
