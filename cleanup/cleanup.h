/*
 * cleanup.h - internal interfaces of the cleanup daemon: its configuration,
 * the state of one message transaction, and the functions the session,
 * message, envelope and queue modules offer each other.
 */
#ifndef POSTERN_CLEANUP_H
#define POSTERN_CLEANUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "mail/attr.h"
#include "mail/dict.h"
#include "mail/hdr_parse.h"
#include "mail/qfile.h"
#include "util/argv.h"
#include "util/vstr.h"

/* Configuration, read once at start (cleanup.c). */
typedef struct CLEANUP_CONF {
    uint64_t message_size_limit; /* content bytes the client sends; 0 = none */
    size_t header_size_limit;    /* bytes of one header field */
    size_t header_count_limit;   /* header fields in the primary header section */
    long hopcount_limit;         /* Received: headers before "too many hops" */
    size_t dup_filter_limit;     /* recipients remembered for duplicate removal */
    size_t bulk_rcpt_threshold;  /* this many recipients make a message bulk; 0 = never */
    size_t extract_rcpt_limit;   /* recipients taken from headers at most */
    size_t attr_count_limit;     /* named attributes stored per message */
    uint64_t queue_minfree;      /* free bytes the queue file system must keep */
    int replace_stray_cr;        /* cleanup_replace_stray_cr_lf */
    int detect_8bit_header;      /* detect_8bit_encoding_header */
    int always_add_headers;      /* always_add_missing_headers */
    int append_at_myorigin;      /* append_at_myorigin */
    const char *myhostname;      /* for Message-Id and Received */
    const char *myorigin;        /* domain for addresses without one */
    const char *mail_name;       /* "Postern", for Received */
    const char *recipient_delimiter;
    ARGV *drop_headers;     /* message_drop_headers, lower case */
    DICT **class_maps;      /* message_class_maps, NULL-terminated */
    DICT **priority_maps;   /* message_priority_maps, NULL-terminated */
    VSTR *qmgr_path;        /* public/$queue_service_name */
    int ipc_timeout_ms;     /* waiting for the client's next request */
    int trigger_timeout_ms; /* waking qmgr */
} CLEANUP_CONF;

extern CLEANUP_CONF cleanup_conf;

/* Seen-header bits (CLEANUP_STATE.hdr_seen). */
#define CLEANUP_HDR_MESSAGE_ID (1u << 0)
#define CLEANUP_HDR_DATE (1u << 1)
#define CLEANUP_HDR_FROM (1u << 2)
#define CLEANUP_HDR_RESENT_MESSAGE_ID (1u << 3)
#define CLEANUP_HDR_RESENT_DATE (1u << 4)
#define CLEANUP_HDR_RESENT_FROM (1u << 5)

/* Transaction phases, in protocol order. */
enum cleanup_phase {
    CLEANUP_PH_NEW,      /* before "open" */
    CLEANUP_PH_ENVELOPE, /* after "open": attributes, then "sender" */
    CLEANUP_PH_RCPT,     /* after "sender": attributes and recipients */
    CLEANUP_PH_DATA,     /* after the first "data" */
};

typedef struct CLEANUP_DUP CLEANUP_DUP;

/* One message transaction. */
typedef struct CLEANUP_STATE {
    ATTR_STREAM *stream;
    QFILE_WRITER *writer; /* NULL once the message failed (the file is gone) */
    char queue_id[QUEUE_ID_SIZE];
    struct timeval arrival; /* the queue id's time */
    enum cleanup_phase phase;
    int flags;    /* CLEANUP_FLAG_* */
    char *origin; /* "smtpd", "pickup", ... */
    char *sender; /* internal form; "" = <> */
    char *first_rcpt;
    size_t rcpt_count;
    CLEANUP_DUP *dups;
    size_t attr_count;
    int binary;        /* BODY=BINARYMIME: no content changes at all */
    int have_encoding; /* the client said which BODY= it used */
    int encoding_8bit; /* a Content-Transfer-Encoding header says 8bit or binary */
    /* What the client told us that cleanup itself uses. */
    int mt_priority, have_mt_priority;
    char *uid;
    char *full_name;
    char *client_name, *client_addr, *helo_name, *protocol_name;
    /* Content. */
    HDR_PARSE *parser;
    int content_started;
    uint64_t size;          /* content bytes received from the client */
    int pending_no_eol;     /* the last header line was written without a line end */
    unsigned hdr_seen;      /* CLEANUP_HDR_* */
    int resent;             /* a Resent- header was seen */
    long hops;              /* Received: headers */
    int precedence_bulk;    /* Precedence: bulk, list or junk */
    ARGV *extracted;        /* recipients from To/Cc/Bcc (CLEANUP_FLAG_EXTRACT_RCPT) */
    ARGV *resent_extracted; /* ... from Resent-To/Cc/Bcc */
    /* The first error decides the final reply. */
    unsigned err_status; /* 0 = no error */
    char err_dsn[16];
    VSTR *err_reason;
    VSTR *buf;    /* scratch for header callbacks */
    VSTR *cr_buf; /* content with stray CR replaced */
} CLEANUP_STATE;

/* cleanup_session.c */
void cleanup_service(int fd);

/* cleanup_state.c */
CLEANUP_STATE *cleanup_state_new(ATTR_STREAM *stream);
void cleanup_state_free(CLEANUP_STATE *st);
/* cleanup_fail - record the reply for a failed message (the first one
   counts) and abandon the queue file */
void cleanup_fail(CLEANUP_STATE *st, unsigned status, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* cleanup_write_error - a queue file writer call failed: log and fail 451 */
void cleanup_write_error(CLEANUP_STATE *st, int err);
/* cleanup_log_reject - "ID: reject: WHAT from ORIGIN; from=<> to=<> ...: DSN TEXT" */
void cleanup_log_reject(CLEANUP_STATE *st, const char *what);
/* cleanup_origin - "name[addr]" of the client, or the origin */
const char *cleanup_origin(CLEANUP_STATE *st, VSTR *buf);

/* cleanup_message.c */
void cleanup_content_data(CLEANUP_STATE *st, const char *data, size_t len);
void cleanup_content_end(CLEANUP_STATE *st);

/* cleanup_envelope.c */
CLEANUP_DUP *cleanup_dup_new(size_t limit);
void cleanup_dup_free(CLEANUP_DUP *d);
/* cleanup_add_rcpt - write one recipient unless it is a duplicate */
void cleanup_add_rcpt(CLEANUP_STATE *st, const char *addr, const char *orcpt, int notify);
/* cleanup_add_extracted - recipients from headers (post-content) */
void cleanup_add_extracted(CLEANUP_STATE *st);
/* cleanup_decide_class - class and priority of the message */
void cleanup_decide_class(CLEANUP_STATE *st, int *msg_class, int *priority);

/* cleanup_queue.c */
/* cleanup_space_ok - the queue file system has room for a message; 1 or 0 */
int cleanup_space_ok(void);
/* cleanup_wake_qmgr - tell qmgr about the new file; warns on failure */
void cleanup_wake_qmgr(const char *queue_name, const char *id);

#endif
