/*
 * smtp.h - the SMTP and LMTP delivery agent's internal interfaces: its
 * configuration, the delivery request, the connection stream (plain or
 * TLS), sessions and their cache, and the protocol steps. man/smtp.8
 * describes the program; docs/protocols.md section 3 the request.
 */
#ifndef POSTERN_SMTP_H
#define POSTERN_SMTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "mail/attr.h"
#include "mail/dns.h"
#include "mail/qfile.h"
#include "mail/smtp_nexthop.h"
#include "mail/smtp_resp.h"
#include "util/argv.h"
#include "util/vstr.h"

typedef struct ssl_st SSL;

/* Limits. */
#define SMTP_CACHE_MAX 4            /* idle sessions kept per process */
#define SMTP_SERVERS_MAX 64         /* addresses considered per delivery */
#define SMTP_IBUF_SIZE 16384        /* input buffer of a connection */
#define SMTP_PIPE_BATCH 8192        /* octets of pipelined commands before reading replies */
#define SMTP_REASON_MAX 2048        /* octets of a reason reported to qmgr */
#define SMTP_CMD_MAX 4096           /* octets of one command line we send */
#define SMTP_SASL_SECRET_MAX 1024   /* octets of user:password */
#define SMTP_DISCARD_LINES_MAX 1000 /* lines skipped after a cut reply line */

/* TLS security levels (smtp_tls_security_level). */
enum smtp_tls_level {
    SMTP_TLS_NONE,
    SMTP_TLS_MAY,
    SMTP_TLS_ENCRYPT,
    SMTP_TLS_VERIFY,
    SMTP_TLS_SECURE,
};

/* Address family preference (smtp_address_preference). */
enum smtp_addr_pref {
    SMTP_PREF_ANY,
    SMTP_PREF_IPV4,
    SMTP_PREF_IPV6,
};

/* The configuration, read once per process from the parameter table. */
typedef struct SMTP_CONF {
    int lmtp;              /* LMTP (RFC 2033) instead of SMTP */
    const char *proto;     /* "SMTP" or "LMTP" for messages */
    unsigned default_port; /* smtp_tcp_port or lmtp_tcp_port */
    const char *known_ports;
    const char *helo_name;
    int connect_timeout, helo_timeout, mail_timeout, rcpt_timeout; /* seconds */
    int data_init_timeout, data_xfer_timeout, data_done_timeout;
    int quit_timeout, rset_timeout, starttls_timeout;
    int dns_timeout_ms;
    int mx_address_limit, mx_session_limit;
    int skip_5xx_greeting, always_send_ehlo, skip_quit_response;
    int defer_if_no_mx_address_found;
    int randomize_addresses;
    ARGV *fallback_relay;
    ARGV *discard_ehlo;
    int use_ipv4, use_ipv6;
    enum smtp_addr_pref addr_pref;
    const char *bind_address, *bind_address6;
    long reuse_count_limit; /* 0 = none */
    long reuse_time_limit;  /* seconds */
    long cache_time_limit;  /* seconds an idle session is kept */
    int cache_on_demand;
    long line_length_limit; /* 0 = none */
    int log_resolution;
    /* TLS */
    enum smtp_tls_level tls_level;
    const char *tls_policy_maps;
    const char *tls_verify_match, *tls_secure_match;
    const char *tls_servername;
    /* SASL */
    int sasl_enable;
    const char *sasl_password_maps;
    const char *sasl_security_options, *sasl_tls_security_options;
    const char *sasl_mechanism_filter;
} SMTP_CONF;

extern SMTP_CONF smtp_conf;
extern DNS_CTX *smtp_dns;

/* A TLS policy for one destination. */
typedef struct SMTP_TLS_POLICY {
    enum smtp_tls_level level;
    char *match; /* names for verify/secure, ':' or ',' separated; NULL: the defaults */
} SMTP_TLS_POLICY;

/* I/O results. */
#define SMTP_IO_OK 0
#define SMTP_IO_TIMEOUT (-1)
#define SMTP_IO_EOF (-2)
#define SMTP_IO_ERR (-3)
#define SMTP_IO_PROTO (-4) /* malformed or over-long reply */

/* A connection: a socket, optionally with TLS on it, and buffers. */
typedef struct SMTP_STREAM {
    int fd;
    SSL *ssl;
    char ibuf[SMTP_IBUF_SIZE];
    size_t ipos, ilen;
    VSTR *obuf;
    VSTR *why; /* text for the last error */
} SMTP_STREAM;

SMTP_STREAM *smtp_stream_open(int fd);
/* smtp_stream_free - close the socket (and TLS) and release */
void smtp_stream_free(SMTP_STREAM *s);
/* smtp_stream_put - queue output */
void smtp_stream_put(SMTP_STREAM *s, const char *data, size_t len);
/* smtp_stream_flush - send queued output, each step within timeout seconds */
int smtp_stream_flush(SMTP_STREAM *s, int timeout);
/* smtp_stream_read_resp - one whole reply before the deadline (monotonic ms) */
int smtp_stream_read_resp(SMTP_STREAM *s, SMTP_RESP *resp, long long deadline_ms);
/* smtp_stream_pending - input already buffered (must be none before TLS starts) */
size_t smtp_stream_pending(const SMTP_STREAM *s);
/* smtp_stream_tls_connect - TLS handshake on the stream within timeout seconds */
int smtp_stream_tls_connect(SMTP_STREAM *s, SSL *ssl, int timeout);
/* smtp_stream_alive - the peer has not closed and sent nothing unasked */
int smtp_stream_alive(SMTP_STREAM *s);

/* smtp_now_ms - monotonic clock; smtp_deadline - now plus seconds */
long long smtp_now_ms(void);
long long smtp_deadline(int seconds);

/* A session with one server. */
typedef struct SMTP_SESSION {
    SMTP_STREAM *stream;
    char *host; /* the server's name (MX host, nexthop host) or address */
    char *addr; /* its address as text, or the unix socket path */
    unsigned port;
    char *namaddr;  /* "host[addr]" (Postfix's form in messages) */
    char *relay;    /* "host[addr]:port" for relay= */
    char *dest_key; /* cache key: the destination and the policy */
    SMTP_EHLO ehlo; /* the server's extensions (after the last EHLO) */
    int tls;        /* TLS is active */
    int use_count;  /* transactions done */
    time_t start;   /* connected at */
    time_t idle_since;
    int broken; /* must not be reused */
} SMTP_SESSION;

/* A delivery's recipient. */
enum smtp_rcpt_state {
    SMTP_RCPT_TODO,  /* no final answer yet */
    SMTP_RCPT_FINAL, /* answered to qmgr */
};

typedef struct SMTP_RCPT {
    unsigned long long index;
    char *addr;
    char *orig;      /* original recipient, "" = none */
    char *dsn_orcpt; /* "type;address", "" = none */
    unsigned notify; /* QFILE_NOTIFY_* */
    int state;       /* enum smtp_rcpt_state */
    int accepted;    /* RCPT accepted in the current transaction */
} SMTP_RCPT;

/* A failure kept for the recipients that are left when servers run out. */
typedef struct SMTP_ERROR {
    int code; /* 4xx or 5xx */
    char dsn[SMTP_DSN_MAX];
    VSTR *reason;
    VSTR *relay; /* "none" or the session's relay */
} SMTP_ERROR;

/* One delivery request (docs/protocols.md section 3). */
typedef struct SMTP_REQ {
    char *queue_name, *queue_id, *nexthop, *sender, *envid, *ret;
    uint64_t arrival_usec, active_usec, request_usec, conn_usec, recv_usec;
    unsigned long long flags;
    SMTP_RCPT *rcpt;
    size_t count;
    size_t todo; /* recipients without a final answer */
    QFILE *q;
    int smtputf8;     /* the message needs SMTPUTF8 (RFC 6531) */
    int eightbit;     /* the body was declared 8BITMIME */
    uint64_t size;    /* content size */
    ATTR_STREAM *out; /* to qmgr */
    int out_failed;
    SMTP_NEXTHOP nh;
    SMTP_TLS_POLICY tls;
    SMTP_ERROR last; /* latest soft failure */
    int site_ok;     /* a server of the destination completed the handshake */
    int judged;      /* the destination was tried: the summary says dest_status */
    int dead;        /* ... and it failed as a whole (no server, all deferred) */
} SMTP_REQ;

/* smtp_rcpt_done - report a final result for recipient i (to qmgr and the
   log); code 250.. delivered, 4xx deferred, 5xx bounced */
void smtp_rcpt_done(SMTP_REQ *req, size_t i, int code, const char *dsn, const char *relay,
                    const char *reason, SMTP_SESSION *sess);
/* smtp_fail_todo - the same result for every recipient not yet answered */
void smtp_fail_todo(SMTP_REQ *req, int code, const char *dsn, const char *relay,
                    const char *reason);
/* smtp_soft_error - remember a soft failure (for when servers run out) */
void smtp_soft_error(SMTP_REQ *req, int code, const char *dsn, const char *relay, const char *fmt,
                     ...) MSG_FMT(5, 6);

/* smtp_deliver.c: routing, connecting and the whole delivery */
void smtp_deliver(SMTP_REQ *req);

/* smtp_session.c: connecting, the session cache */
SMTP_SESSION *smtp_session_new(SMTP_STREAM *stream, const char *host, const char *addr,
                               unsigned port, const char *dest_key);
void smtp_session_free(SMTP_SESSION *sess);
/* smtp_connect_addr - TCP (or UNIX) connect within smtp_connect_timeout;
   the fd, or -1 with the reason in why */
int smtp_connect_addr(int family, const unsigned char *addr, unsigned port, const char *path,
                      VSTR *why);
/* smtp_cache_take - an idle session for dest_key (removed from the cache) or NULL */
SMTP_SESSION *smtp_cache_take(const char *dest_key);
/* smtp_cache_put - keep a session for later (or close it when it may not be kept) */
void smtp_cache_put(SMTP_SESSION *sess);
/* smtp_cache_expire - close idle sessions older than the limit (all when force);
   the seconds until the next one expires, or -1 when the cache is empty */
long smtp_cache_expire(int force);
/* smtp_session_quit - send QUIT (unless the session is broken) and free */
void smtp_session_quit(SMTP_SESSION *sess);

/* smtp_proto.c: the dialogue */
#define SMTP_SESS_OK 0
#define SMTP_SESS_SOFT 1  /* this server failed: try the next */
#define SMTP_SESS_HARD 2  /* recipients were answered for good */
#define SMTP_SESS_PLAIN 3 /* TLS failed at level may: retry this server in plaintext */

/* smtp_session_setup - greeting, EHLO/HELO/LHLO, STARTTLS, AUTH */
int smtp_session_setup(SMTP_REQ *req, SMTP_SESSION *sess, int allow_tls);
/* smtp_session_reset - RSET on a reused session; 0 usable, -1 not */
int smtp_session_reset(SMTP_SESSION *sess);
/* smtp_transaction - MAIL, RCPT, DATA for the recipients left; final: no
   other server follows, so soft failures are reported now. Returns 0 when
   the session may be reused, -1 when it must be closed. */
int smtp_transaction(SMTP_REQ *req, SMTP_SESSION *sess, int final);

/* smtp_tls.c */
int smtp_tls_init(VSTR *why);
/* smtp_tls_policy - the policy for a nexthop; 0, or -1 (table failure) with why */
int smtp_tls_policy(const char *nexthop, const SMTP_NEXTHOP *nh, SMTP_TLS_POLICY *pol, VSTR *why);
void smtp_tls_policy_free(SMTP_TLS_POLICY *pol);
const char *smtp_tls_level_name(enum smtp_tls_level level);
/* smtp_tls_start - handshake after "220" to STARTTLS, checks by level, log
   line; 0, or -1 with dsn and why filled */
int smtp_tls_start(SMTP_REQ *req, SMTP_SESSION *sess, char *dsn, size_t dsn_size, VSTR *why);

/* smtp_sasl.c */
int smtp_sasl_init(VSTR *why);
/* smtp_sasl_login - AUTH when enabled and a password is known: 0 done or
   not needed, or an SMTP_SESS_* failure already recorded in req */
int smtp_sasl_login(SMTP_REQ *req, SMTP_SESSION *sess);

/* smtp_maps.c: lookup table lists opened once */
typedef struct DICT DICT;
typedef struct SMTP_MAPS {
    const char *param; /* the parameter's name, for messages */
    DICT **dict;
    size_t count;
} SMTP_MAPS;

SMTP_MAPS *smtp_maps_open(const char *param, const char *value, VSTR *why);
void smtp_maps_free(SMTP_MAPS *maps);
const char *smtp_maps_find(SMTP_MAPS *maps, const char *key, int *error);

/* smtp_resp_reason - "host X said: CODE TEXT (in reply to CMD command)" */
void smtp_resp_reason(VSTR *out, const SMTP_SESSION *sess, const SMTP_RESP *resp, const char *cmd);

#endif
