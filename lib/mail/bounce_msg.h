/*
 * bounce_msg - the text of a delivery status notification: a
 * multipart/report; report-type=delivery-status message (RFC 6522) with a
 * human-readable part in Postfix's wording, a message/delivery-status part
 * (RFC 3464) and the original message (message/rfc822) or its header
 * section (text/rfc822-headers).
 *
 * The caller (bounce(8)) gathers everything: the notice's own queue id
 * (for Message-Id and the MIME boundary), the original envelope and the
 * per-recipient results; bounce_msg_build only formats, so it can be tested
 * octet for octet. The result has LF line ends, as cleanup expects.
 *
 * Every value that comes from outside (addresses, reasons, remote replies)
 * is checked: control characters become '?' (no header injection through a
 * reply text), and long field values are folded at white space and, where
 * there is none, cut into RFC 5322 section 2.1.1 sized pieces, so that no
 * generated line exceeds BOUNCE_MSG_LINE_MAX octets.
 *
 * Ownership: nothing is allocated that the caller must free except what
 * it asks for; out is the caller's VSTR.
 */
#ifndef POSTERN_BOUNCE_MSG_H
#define POSTERN_BOUNCE_MSG_H

#include <stddef.h>
#include <sys/time.h>
#include <time.h>

#include "util/vstr.h"

#define BOUNCE_MSG_FOLD 78        /* preferred line length (RFC 5322 2.1.1) */
#define BOUNCE_MSG_LINE_MAX 998   /* generated lines never exceed this */
#define BOUNCE_MSG_FIELD_MAX 4096 /* bytes of one value copied into a field */

/* What kind of notice. */
enum bounce_msg_kind {
    BOUNCE_MSG_FAILURE, /* Undelivered Mail Returned to Sender */
    BOUNCE_MSG_DELAY,   /* Delayed Mail (still being retried) */
    BOUNCE_MSG_SUCCESS, /* Successful Mail Delivery Report */
};

/* How much of the original goes along. */
enum bounce_msg_ret {
    BOUNCE_MSG_RET_NONE, /* nothing */
    BOUNCE_MSG_RET_HDRS, /* text/rfc822-headers */
    BOUNCE_MSG_RET_FULL, /* message/rfc822 */
};

/* One recipient's lines; "" means absent for every optional field. */
typedef struct BOUNCE_MSG_RCPT {
    const char *address; /* Final-Recipient */
    const char *orig;    /* original recipient before aliasing ("" = same) */
    const char *orcpt;   /* DSN ORCPT "type;address" (RFC 3461 4.2) */
    const char *action;  /* failed, delayed, delivered, relayed, expanded */
    const char *status;  /* RFC 3463 "5.1.1" */
    const char *reason;  /* text for the human-readable part */
    const char *relay;   /* "host[addr]:port" for "delivery via" (success) */
    const char *mtype;   /* Remote-MTA: mtype; mname */
    const char *mname;
    const char *dtype; /* Diagnostic-Code: dtype; dtext (else X-Postern; reason) */
    const char *dtext;
} BOUNCE_MSG_RCPT;

typedef struct BOUNCE_MSG {
    enum bounce_msg_kind kind;
    int postmaster;          /* a postmaster copy: no sender boilerplate */
    const char *myhostname;  /* Reporting-MTA, text, Message-Id */
    const char *from;        /* From: address of the notice */
    const char *to;          /* To: address of the notice */
    const char *notice_id;   /* queue id of the notice itself */
    time_t now;              /* Date:, Message-Id, boundary */
    const char *queue_id;    /* of the original message */
    const char *sender;      /* its envelope sender ("" = null sender) */
    const char *envid;       /* RFC 3461 ENVID ("" = none) */
    struct timeval arrival;  /* Arrival-Date */
    long delay_warning_time; /* seconds, for the delay text */
    long max_lifetime;       /* seconds, for the delay text */
    time_t retry_until;      /* Will-Retry-Until of a delay notice (0 = none) */
    const BOUNCE_MSG_RCPT *rcpt;
    size_t rcpt_count;
    enum bounce_msg_ret ret;
    const char *original; /* the text for the third part, LF line ends */
    size_t original_len;
    int eightbit; /* the original holds 8-bit octets: Content-Transfer-Encoding 8bit */
    int utf8;     /* SMTPUTF8 addresses: message/global-delivery-status (RFC 6533) */
} BOUNCE_MSG;

/* bounce_msg_build - the whole notice into out (replacing it), LF line ends */
void bounce_msg_build(const BOUNCE_MSG *m, VSTR *out);

/* bounce_msg_header_len - length of the header section of text (up to and
   including the empty line that ends it; all of text when it has none) */
size_t bounce_msg_header_len(const char *text, size_t len);

/* bounce_msg_subject - the Subject of a notice */
const char *bounce_msg_subject(enum bounce_msg_kind kind, int postmaster);

#endif
