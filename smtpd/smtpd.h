/*
 * smtpd - the SMTP server (RFC 5321): shared definitions of its modules.
 *
 *   smtpd.c          main(), configuration, sessions and their event
 *                    plumbing: client I/O with bounded buffers, timers,
 *                    backpressure, replies, the per-session log lines
 *   smtpd_proto.c    the session state machine: the command table (which
 *                    command is legal in which state) and the handlers
 *   smtpd_data.c     DATA and BDAT content: smuggling-safe end-of-data
 *                    detection (lib/mail/smtp_data), the Received: header,
 *                    streaming to cleanup, the end-of-message reply
 *   smtpd_check.c    recipient policy: restriction lists, relay control,
 *                    local recipient validation
 *   smtpd_cleanup.c  the non-blocking client of the cleanup service
 *   smtpd_peer.c     the client's address and name; connection counts
 *   smtpd_anvil.c    per-client connection, rate and AUTH failure limits,
 *                    counted across processes by the anvil service
 *   smtpd_sasl.c     SMTP AUTH (RFC 4954) on lib/sasl: the AUTH command and
 *                    exchange, MAIL AUTH=, what an authenticated session logs
 *
 * One process serves many sessions on one libevent loop. Nothing in a
 * session ever blocks: while a session waits (for cleanup's reply, for
 * cleanup to drain its socket, for the client to read our replies, for an
 * error delay) it stops reading from the client, so every buffer holding
 * peer data stays bounded.
 */
#ifndef POSTERN_SMTPD_H
#define POSTERN_SMTPD_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "mail/dict.h"
#include "mail/match_list.h"
#include "mail/queue_id.h"
#include "mail/smtp_addr.h"
#include "mail/smtp_cmd.h"
#include "mail/smtp_data.h"
#include "mail/smtp_param.h"
#include "util/argv.h"
#include "util/vstr.h"

struct event_base;
struct event;
struct bufferevent;

/*
 * Limits that are not parameters: protocol constants and buffer bounds.
 */
/* RFC 5321 4.5.3.1.4 allows 512 octets; RFC 1869 4.1.2 lets extensions add
   to MAIL and RCPT: ORCPT (500, RFC 3461 5), ENVID (100), AUTH= (500),
   NOTIFY, RET, SIZE, BODY, SMTPUTF8. */
#define SMTPD_CMD_LINE_MAX SMTP_CMD_LINE_MAX /* any command, CRLF included */
#define SMTPD_PATH_LINE_MAX 2048             /* MAIL and RCPT with ESMTP parameters */
#define SMTPD_IN_HIGH (64 * 1024)            /* client input buffered at most */
#define SMTPD_OUT_HIGH (64 * 1024)           /* unread replies before we stop reading */
#define SMTPD_CLEANUP_HIGH (256 * 1024)      /* content queued to cleanup before we stop reading */
#define SMTPD_LINGER_MAX (1024 * 1024)       /* input thrown away after the last reply */
#define SMTPD_HELO_MAX 255                   /* RFC 1035 name, or an address literal */
#define SMTPD_LOG_INPUT_MAX 100              /* client input quoted in a log line */
#define SMTPD_NAME_MAX 256                   /* client host name */
#define SMTPD_SERVICE_NAME_MAX 63            /* cleanup_service_name */

/* What the client said in HELO/EHLO decides the protocol keyword (RFC 3848). */
#define SMTPD_PROTO_SMTP "SMTP"
#define SMTPD_PROTO_ESMTP "ESMTP"

/* smtpd_forbid_bare_newline */
enum smtpd_bare_newline {
    SMTPD_BARE_NO,        /* "no": normalise (Postern never lets LF.LF end a message) */
    SMTPD_BARE_NORMALIZE, /* "normalize": bare LF ends a line, CRLF.CRLF ends data */
    SMTPD_BARE_REJECT,    /* "reject" (and "yes"): refuse the command or message */
};

/* EHLO keywords, for the advertised mask and smtpd_discard_ehlo_keywords */
#define SMTPD_EXT_PIPELINING (1 << 0)
#define SMTPD_EXT_SIZE (1 << 1)
#define SMTPD_EXT_VRFY (1 << 2)
#define SMTPD_EXT_ETRN (1 << 3)
#define SMTPD_EXT_STARTTLS (1 << 4)
#define SMTPD_EXT_AUTH (1 << 5)
#define SMTPD_EXT_ENHANCEDSTATUSCODES (1 << 6)
#define SMTPD_EXT_8BITMIME (1 << 7)
#define SMTPD_EXT_DSN (1 << 8)
#define SMTPD_EXT_SMTPUTF8 (1 << 9)
#define SMTPD_EXT_CHUNKING (1 << 10)

/*
 * The process's configuration, read once from the parameter table, and its
 * scratch space (one event loop thread, so parsers can share it).
 */
typedef struct SMTPD_CONFIG {
    /* identity */
    char *myhostname;
    char *banner;     /* smtpd_banner, expanded */
    char *mail_name;  /* "Postern", for Received: */
    char *myorigin;   /* appended to addresses without a domain */
    char *delimiters; /* recipient_delimiter */
    char *cleanup_service;
    char *service; /* master.cf service name, for log lines */

    /* limits */
    long recipient_limit;
    long recipient_overshoot_limit;
    long hard_error_limit;
    long soft_error_limit;
    long error_sleep_time; /* seconds */
    long junk_command_limit;
    long timeout;            /* smtpd_timeout, seconds */
    long session_time_limit; /* smtpd_session_time_limit, seconds */
    long ipc_timeout;        /* cleanup replies, seconds */
    long conn_count_limit;   /* smtpd_client_connection_count_limit */
    long linger_time;        /* smtpd_linger_time, seconds; 0: close at once */
    uint64_t message_size_limit;
    long line_length_limit;

    /* behaviour */
    int disable_vrfy;
    int helo_required;
    int forbid_unauth_pipelining;
    int smtputf8_enable;
    int strict_rfc821;
    int allow_untrusted_routing;
    int delay_open;
    int reject_unlisted_recipient;
    int client_port_logging;
    enum smtpd_bare_newline bare_newline;
    int bare_newline_code;
    int ext_discard; /* SMTPD_EXT_* from smtpd_discard_ehlo_keywords */
    ARGV *forbidden_commands;

    /* reply codes */
    int relay_reject_code;
    int unknown_local_code;
    int unknown_relay_code;
    int reject_code;
    int defer_code;

    /* lists and tables */
    MATCH_LIST *mynetworks;
    MATCH_LIST *mydestination;
    MATCH_LIST *relay_domains;
    MATCH_LIST *inet_interfaces; /* addresses of this host, as far as main.cf names them */
    MATCH_LIST *limit_exceptions;
    MATCH_LIST *bare_exclusions;
    ARGV *header_rewrite_clients; /* local_header_rewrite_clients */
    DICT **local_rcpt_maps;       /* NULL-terminated; NULL: no local recipient check */
    DICT **relay_rcpt_maps;       /* NULL-terminated; NULL: no relay recipient check */
    ARGV *client_restrictions;
    ARGV *helo_restrictions;
    ARGV *sender_restrictions;
    ARGV *relay_restrictions;
    ARGV *recipient_restrictions;
    ARGV *access_specs;       /* check_*_access tables named in those lists */
    DICT **access_maps;       /* opened at start-up, parallel to access_specs */
    DICT **sender_login_maps; /* smtpd_sender_login_maps; NULL when empty */

    /* TLS (smtpd_tls.c), AUTH (smtpd_sasl.c), anvil (smtpd_anvil.c) */
    struct SMTPD_TLS_CONFIG *tls;     /* NULL: no certificate, no STARTTLS */
    struct SMTPD_SASL_CONFIG *sasl;   /* NULL: smtpd_sasl_auth_enable = no */
    struct SMTPD_ANVIL_CONFIG *anvil; /* NULL: no anvil service in use */

    /* scratch, valid during one handler call */
    SMTP_ADDR *addr;
    SMTP_PARAMS *params;
    VSTR *line;  /* the command line being handled */
    VSTR *reply; /* a formatted reply */
    VSTR *text;  /* reply text under construction */
    VSTR *tmp;
} SMTPD_CONFIG;

/*
 * Session states: one per place in the protocol (see smtpd_proto.c for the
 * table of commands per state).
 */
enum smtpd_state {
    SMTPD_ST_CONNECTED, /* greeting sent; no HELO/EHLO yet */
    SMTPD_ST_GREETED,   /* HELO/EHLO done; no transaction */
    SMTPD_ST_MAIL,      /* MAIL accepted; no recipient accepted yet */
    SMTPD_ST_RCPT,      /* at least one recipient accepted */
    SMTPD_ST_DATA,      /* 354 sent: message content until CRLF.CRLF */
    SMTPD_ST_BDAT,      /* inside a BDAT chunk of the transaction */
    SMTPD_ST_CHUNKING,  /* between BDAT chunks: only BDAT, RSET, NOOP, QUIT, HELP */
    SMTPD_ST_SKIP,      /* discarding the octets of a refused BDAT chunk */
    SMTPD_ST_CLOSING,   /* the last reply is queued; close (gracefully) once it is sent */
    SMTPD_ST_COUNT
};

#define SMTPD_STATE_BIT(st) (1u << (st))

/* Why a session does not process input right now (any bit stops it). */
#define SMTPD_BLOCK_CLEANUP (1 << 0) /* waiting for a cleanup reply */
#define SMTPD_BLOCK_DRAIN (1 << 1)   /* cleanup's socket buffer is full */
#define SMTPD_BLOCK_OUTPUT (1 << 2)  /* the client does not read our replies */
#define SMTPD_BLOCK_SLEEP (1 << 3)   /* error delay (smtpd_error_sleep_time) */
#define SMTPD_BLOCK_DNS (1 << 4)     /* client name verification before the greeting */
#define SMTPD_BLOCK_AUTH (1 << 5)    /* waiting for the authentication backend */
#define SMTPD_BLOCK_TLS (1 << 6)     /* TLS handshake in progress */

/* Per-command counters for the "disconnect from" summary (Postfix order). */
enum smtpd_stat {
    SMTPD_STAT_HELO,
    SMTPD_STAT_EHLO,
    SMTPD_STAT_STARTTLS,
    SMTPD_STAT_AUTH,
    SMTPD_STAT_MAIL,
    SMTPD_STAT_RCPT,
    SMTPD_STAT_DATA,
    SMTPD_STAT_BDAT,
    SMTPD_STAT_RSET,
    SMTPD_STAT_NOOP,
    SMTPD_STAT_VRFY,
    SMTPD_STAT_EXPN,
    SMTPD_STAT_HELP,
    SMTPD_STAT_ETRN,
    SMTPD_STAT_QUIT,
    SMTPD_STAT_UNKNOWN,
    SMTPD_STAT_COUNT
};

typedef struct SMTPD_CLEANUP SMTPD_CLEANUP;

/* What a transaction waits for from cleanup (SMTPD_BLOCK_CLEANUP is set meanwhile). */
enum smtpd_wait {
    SMTPD_WAIT_NONE,
    SMTPD_WAIT_OPEN, /* the "open" reply; then the pending MAIL or RCPT is answered */
    SMTPD_WAIT_END,  /* the final reply; then the end of DATA or BDAT LAST is answered */
};

/* The client, as the session logs and reports it. */
typedef struct SMTPD_PEER {
    char addr[INET6_ADDRSTRLEN];       /* 192.0.2.1, 2001:db8::1 (v4-mapped as v4) */
    unsigned char bin[16];             /* the same in network order */
    char port[8];                      /* decimal */
    char local_addr[INET6_ADDRSTRLEN]; /* the address the client connected to */
    char name[SMTPD_NAME_MAX];         /* verified name, or "unknown" */
    char rname[SMTPD_NAME_MAX];        /* reverse name, or "unknown" */
    char namaddr[SMTPD_NAME_MAX + INET6_ADDRSTRLEN + 12]; /* name[addr] or name[addr]:port */
    int family;                                           /* AF_INET, AF_INET6 */
    int in_mynetworks;
    int limit_exempt; /* smtpd_client_event_limit_exceptions */
    int bare_exempt;  /* smtpd_forbid_bare_newline_exclusions */
    int counted;      /* holds a slot in the connection count table */
    int anvil;        /* counted by the anvil service (smtpd_anvil.c) */
    /* Name verification in progress (smtpd_peername_lookup). */
    int dns_id;    /* the pending query */
    int dns_stage; /* 0 none, 1 PTR, 2 forward lookup */
    struct event *dns_timer;
    void (*dns_done)(void *context);
    void *dns_context;
    int client_port_logging;
} SMTPD_PEER;

/* One message transaction: from MAIL to the end of data or RSET. */
typedef struct SMTPD_TXN {
    char *sender;     /* internal form; "" for <> */
    char *first_rcpt; /* the first accepted recipient, for Received: "for" */
    int smtputf8;
    int body;        /* SMTP_PARAM_BODY_* */
    int ret;         /* SMTP_PARAM_RET_* */
    char *envid;     /* decoded ENVID, or NULL */
    uint64_t size;   /* SIZE= declared, 0 when not */
    long rcpt_count; /* accepted recipients */
    long rcpt_tried; /* RCPT commands in this transaction */
    long overshoot;  /* RCPT commands beyond smtpd_recipient_limit */
    SMTPD_CLEANUP *cleanup;
    enum smtpd_wait wait;
    enum smtp_cmd_verb pending; /* the command answered when "open" completes */
    char *pending_rcpt;         /* that RCPT's address, ORCPT and NOTIFY bits */
    char *pending_orcpt;
    unsigned pending_notify;
    char queue_id[QUEUE_ID_SIZE]; /* from cleanup's open reply; "" before */
    int bdat;                     /* the content arrives in BDAT chunks */
    uint64_t bdat_total;          /* octets announced in BDAT chunks so far */
    uint64_t bdat_chunk;          /* octets of the current chunk */
    int bdat_last;                /* the current chunk is LAST */
    SMTP_DATA *data;              /* content state machine while DATA/BDAT runs */
    int failed;                   /* cleanup failed mid-transaction: answer 451 at the end */
    char *sasl_sender;            /* MAIL AUTH= of an authenticated client (RFC 4954 5), or NULL */
} SMTPD_TXN;

/* Why a session ends (s->dead) when the outermost callback returns. */
#define SMTPD_END_CLOSE 1  /* close at once: the client is gone, or cannot be answered */
#define SMTPD_END_LINGER 2 /* the last reply is out: graceful close (smtpd.c) */

/*
 * Graceful close: after the last reply our side of the connection is shut
 * down and client input is read and thrown away until the client closes,
 * for smtpd_linger_time and SMTPD_LINGER_MAX octets at most. Only the
 * descriptor and an event are left of the session then.
 */
typedef struct SMTPD_LINGER {
    struct event *ev;         /* input or the deadline; NULL: not lingering */
    int fd;                   /* the client socket, sending side shut down; -1: none */
    size_t discarded;         /* octets read and thrown away */
    struct timespec deadline; /* CLOCK_MONOTONIC */
} SMTPD_LINGER;

typedef struct SMTPD_SESSION {
    SMTPD_CONFIG *cfg;
    struct event_base *base;
    struct bufferevent *client;
    enum smtpd_state state;
    enum smtpd_state skip_return; /* state after a skipped BDAT chunk */
    uint64_t skip_left;           /* SMTPD_ST_SKIP: octets still to discard */
    int block;                    /* SMTPD_BLOCK_* */
    int dead;                     /* SMTPD_END_*: end at the end of the current callback */
    int in_callback;              /* nesting depth of our callbacks */
    int skip_line;                /* discarding the rest of an overlong line */
    int ill_pipelining;           /* the client pipelined where RFC 2920 forbids */
    int slept;                    /* the error delay for the next command is done */
    int logged_connect;           /* "connect from" was logged: log "disconnect from" */
    int cur_stat;                 /* SMTPD_STAT_* of the command being answered, or -1 */
    const char *where;            /* the last command, for "lost connection after X" */
    char reply_dsn[16];           /* enhanced status code taken from a table's result */

    SMTPD_PEER peer;
    char *helo_name;
    const char *protocol; /* SMTPD_PROTO_* */
    int ext;              /* SMTPD_EXT_* offered in EHLO */

    long error_count;
    long junk_count;
    int stat_total[SMTPD_STAT_COUNT];
    int stat_ok[SMTPD_STAT_COUNT];

    /* TLS (smtpd_tls.c): NULL while the session is in plaintext */
    struct SMTPD_TLS_SESSION *tls;
    /* AUTH (smtpd_sasl.c) */
    struct SMTPD_SASL_SESSION *sasl; /* an AUTH exchange in progress, or NULL */
    char *sasl_username;             /* NULL: not authenticated */
    char *sasl_method;               /* the mechanism that succeeded */
    long auth_failures;              /* failed AUTH commands in this session */

    SMTPD_TXN txn;
    struct event *session_timer; /* smtpd_session_time_limit */
    struct event *sleep_timer;   /* error delay */
    SMTPD_LINGER linger;         /* once the session is over: graceful close */
} SMTPD_SESSION;

/* Command handler results (smtpd_proto.c and the handlers of other modules). */
#define SMTPD_OK 0       /* the command succeeded */
#define SMTPD_ERROR (-1) /* the command failed: an error for the limits */
#define SMTPD_PENDING 1  /* the reply comes later (cleanup, content, a backend) */

/* smtpd.c */
void smtpd_reply(SMTPD_SESSION *s, int code, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void smtpd_reply_raw(SMTPD_SESSION *s, const char *text, size_t len);
void smtpd_reply_smtp(SMTPD_SESSION *s, const SMTP_REPLY *r, const char *suffix);
void smtpd_close_after_reply(SMTPD_SESSION *s);
void smtpd_client_attach(SMTPD_SESSION *s, struct bufferevent *bev);
void smtpd_session_greet(SMTPD_SESSION *s);
void smtpd_resume(SMTPD_SESSION *s);
void smtpd_enter(SMTPD_SESSION *s);
void smtpd_leave(SMTPD_SESSION *s);
const char *smtpd_input_peek(SMTPD_SESSION *s, size_t len);
void smtpd_block(SMTPD_SESSION *s, int why);
void smtpd_unblock(SMTPD_SESSION *s, int why);
size_t smtpd_input_len(SMTPD_SESSION *s);
void smtpd_log_reject(SMTPD_SESSION *s, const char *cmd, int code, const char *dsn,
                      const char *text, const char *rcpt);
const char *smtpd_printable(const char *in, size_t len, VSTR *out);

/* smtpd_proto.c */
void smtpd_proto_greet(SMTPD_SESSION *s);
const char *smtpd_protocol_name(const SMTPD_SESSION *s);
int smtpd_proto_command(SMTPD_SESSION *s, const char *line, size_t len);
void smtpd_proto_line_error(SMTPD_SESSION *s, int flags);
void smtpd_txn_reset(SMTPD_SESSION *s);
void smtpd_cmd_done(SMTPD_SESSION *s, int result);
int smtpd_state_idle(const SMTPD_SESSION *s);
const char *smtpd_state_name(enum smtpd_state st);
void smtpd_count_error(SMTPD_SESSION *s);

/* smtpd_data.c */
void smtpd_data_begin(SMTPD_SESSION *s, int mode);
int smtpd_data_input(SMTPD_SESSION *s, const char *buf, size_t len, size_t *used);
void smtpd_data_done(SMTPD_SESSION *s);
void smtpd_data_cleanup_failed(SMTPD_SESSION *s);

/* smtpd_check.c: results of the recipient policy */
#define SMTPD_CHECK_OK 0     /* accept */
#define SMTPD_CHECK_REJECT 1 /* *code, *dsn and text are the answer */
void smtpd_check_init(SMTPD_CONFIG *cfg);
int smtpd_check_rcpt(SMTPD_SESSION *s, const SMTP_ADDR *rcpt, const char *shown, int *code,
                     const char **dsn, VSTR *text);
int smtpd_check_vrfy(SMTPD_SESSION *s, const SMTP_ADDR *rcpt, const char *shown, int *code,
                     const char **dsn, VSTR *text);
int smtpd_check_is_local_domain(SMTPD_SESSION *s, const char *domain);
int smtpd_check_header_rewrite(SMTPD_SESSION *s);

/* smtpd_cleanup.c */
#define SMTPD_CLEANUP_EV_OPENED 1  /* open reply arrived (smtpd_cleanup_reply) */
#define SMTPD_CLEANUP_EV_DONE 2    /* final reply arrived (smtpd_cleanup_reply) */
#define SMTPD_CLEANUP_EV_FAILED 3  /* connection or protocol failure (reason logged) */
#define SMTPD_CLEANUP_EV_DRAINED 4 /* queued output fell below the low-water mark */

typedef void (*SMTPD_CLEANUP_FN)(void *context, int event);

SMTPD_CLEANUP *smtpd_cleanup_open(struct event_base *base, const SMTPD_CONFIG *cfg, unsigned flags,
                                  SMTPD_CLEANUP_FN fn, void *context);
void smtpd_cleanup_attr(SMTPD_CLEANUP *c, const char *name, const char *value);
void smtpd_cleanup_sender(SMTPD_CLEANUP *c, const SMTPD_TXN *txn);
void smtpd_cleanup_rcpt(SMTPD_CLEANUP *c, const char *addr, const char *orcpt, unsigned notify);
void smtpd_cleanup_data(SMTPD_CLEANUP *c, const char *buf, size_t len);
void smtpd_cleanup_end(SMTPD_CLEANUP *c);
size_t smtpd_cleanup_backlog(const SMTPD_CLEANUP *c);
void smtpd_cleanup_notify_drain(SMTPD_CLEANUP *c);
const SMTP_REPLY *smtpd_cleanup_reply(const SMTPD_CLEANUP *c);
const char *smtpd_cleanup_queue_id(const SMTPD_CLEANUP *c);
const char *smtpd_cleanup_why(const SMTPD_CLEANUP *c);
void smtpd_cleanup_free(SMTPD_CLEANUP *c);

/* smtpd_peer.c */
#define SMTPD_PEER_LOOKUP_MAX 10 /* seconds for the name verification, at most */
int smtpd_peer_init(SMTPD_PEER *peer, int fd, const SMTPD_CONFIG *cfg);
void smtpd_peer_dns_init(const SMTPD_CONFIG *cfg, struct event_base *base);
int smtpd_peer_resolve(SMTPD_PEER *peer, struct event_base *base, void (*done)(void *),
                       void *context);
void smtpd_peer_resolve_cancel(SMTPD_PEER *peer);
int smtpd_peer_count_add(SMTPD_PEER *peer);
void smtpd_peer_count_del(SMTPD_PEER *peer);

#endif
