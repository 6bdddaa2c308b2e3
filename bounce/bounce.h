/*
 * bounce.h - the notice service's internal interfaces: its configuration,
 * one request as read from qmgr (lib/mail/bounce_proto.h), and the notice
 * writer. man/bounce.8 describes the program.
 */
#ifndef POSTERN_BOUNCE_H
#define POSTERN_BOUNCE_H

#include <stddef.h>

#include "mail/bounce_msg.h"
#include "util/vstr.h"

/* notify_classes bits that bounce(8) acts on. */
#define BOUNCE_NOTIFY_BOUNCE (1 << 0)  /* postmaster copy of every non-delivery notice */
#define BOUNCE_NOTIFY_2BOUNCE (1 << 1) /* undeliverable notices go to postmaster */
#define BOUNCE_NOTIFY_DELAY (1 << 2)   /* postmaster copy of delay notices */

typedef struct BOUNCE_CONF {
    const char *myhostname;
    const char *myorigin;
    char *double_bounce;     /* double_bounce_sender@myhostname */
    char *mailer_daemon;     /* MAILER-DAEMON@myhostname: From of every notice */
    char *rcpt_2bounce;      /* 2bounce_notice_recipient, qualified */
    char *rcpt_bounce;       /* bounce_notice_recipient, qualified */
    char *rcpt_delay;        /* delay_notice_recipient, qualified */
    int notify;              /* BOUNCE_NOTIFY_* */
    long size_limit;         /* bounce_size_limit: octets of the original returned */
    long delay_warning_time; /* seconds */
    long max_lifetime;       /* maximal_queue_lifetime, seconds */
    int ipc_timeout_ms;
    char *cleanup_service; /* cleanup_service_name */
} BOUNCE_CONF;

extern BOUNCE_CONF bounce_conf;

/* One recipient of a request (strings owned by the request). */
typedef struct BOUNCE_REQ_RCPT {
    size_t index;
    char *status, *action, *reason, *relay, *mtype, *mname, *dtype, *dtext;
} BOUNCE_REQ_RCPT;

typedef struct BOUNCE_REQ {
    enum bounce_msg_kind kind;
    char *queue_name;
    char *queue_id;
    BOUNCE_REQ_RCPT *rcpt;
    size_t count;
} BOUNCE_REQ;

/* bounce_notice - queue what the request asks for. 0 with the new notice's
   id in new_id ("" when none was due), or -1 with the reason in why when the
   caller should try again later. */
int bounce_notice(const BOUNCE_REQ *req, VSTR *new_id, VSTR *why);

#endif
