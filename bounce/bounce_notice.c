/*
 * bounce_notice - from one request to the notices it calls for, queued
 * through cleanup.
 *
 * Who gets what (Postfix's rules, notify_classes simplified to the three
 * classes that concern delivery: bounce, 2bounce, delay):
 *
 *   failure, sender S       notice to S from <> with the recipients whose
 *                           NOTIFY is unset or has FAILURE (RFC 3461 4.1);
 *                           with "bounce" a postmaster copy (headers only)
 *   failure, sender <>      a notice itself failed: one notice to
 *                           2bounce_notice_recipient from double_bounce_sender
 *                           with the whole failed message, when notify_classes
 *                           has 2bounce or bounce; else it is dropped
 *   failure, sender         a postmaster notice failed: dropped with a warning
 *     double_bounce_sender
 *   delay                   notice to S (recipients with NOTIFY unset or DELAY),
 *                           headers only; never for <> or double_bounce_sender;
 *                           with "delay" a postmaster copy
 *   success                 notice to S (recipients with NOTIFY=SUCCESS),
 *                           headers only; never for <> or double_bounce_sender
 *
 * No loop is possible: a notice to a sender goes out from <>; when it fails,
 * its sender is <>, so the only thing that can follow is one postmaster
 * notice from double_bounce_sender; when that fails, its sender is
 * double_bounce_sender and nothing at all follows. Delay and success
 * notices are never sent for mail from <> or double_bounce_sender. So any
 * chain of notices has at most three messages, whatever fails.
 *
 * RET (RFC 3461 4.3): a failure notice carries the whole message
 * (message/rfc822) unless RET=HDRS, the message is larger than
 * bounce_size_limit, or it is BINARYMIME (which no notice may carry); then
 * only its header section (text/rfc822-headers), itself cut at
 * bounce_size_limit. Delay and success notices carry the header section.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "mail/bounce_msg.h"
#include "mail/cleanup_clnt.h"
#include "mail/cleanup_proto.h"
#include "mail/mail_queue_dirs.h"
#include "mail/qfile.h"
#include "util/msg.h"
#include "util/mymalloc.h"

/* Who a notice goes to, and from whom. */
typedef struct BOUNCE_TARGET {
    const char *to;
    const char *sender; /* envelope sender: "" or double_bounce_sender */
    int postmaster;     /* a postmaster notice (no sender boilerplate, all recipients) */
    enum bounce_msg_ret ret;
    const char *log_what; /* "sender non-delivery notification", ... */
} BOUNCE_TARGET;

/* Collects the original's text while the content is walked. */
typedef struct BOUNCE_COPY {
    VSTR *text;
    size_t limit;
    int headers_only;
    int done;
    int cut; /* stopped at the limit */
} BOUNCE_COPY;

/* bounce_copy_piece - qfile content callback */
static int bounce_copy_piece(void *ctx, const char *data, size_t len, int flags)
{
    BOUNCE_COPY *bc = ctx;

    /* The empty line that ends the header section (RFC 5322 2.1). */
    if (bc->headers_only && (flags & QFILE_BOL) && (flags & QFILE_EOL) && len == 0) {
        vstr_addch(bc->text, '\n');
        bc->done = 1;
        return 1;
    }
    if (vstr_len(bc->text) + len + 1 > bc->limit) {
        bc->cut = 1;
        return 1;
    }
    vstr_ncat(bc->text, data, len);
    if (flags & QFILE_EOL)
        vstr_addch(bc->text, '\n');
    return 0;
}

/* bounce_original - the text of the original to return; ret may be lowered
   from FULL to HDRS. 0, or -1 with why. */
static int bounce_original(QFILE *qf, enum bounce_msg_ret *ret, VSTR *text, VSTR *why)
{
    BOUNCE_COPY bc = {text, (size_t)bounce_conf.size_limit, 0, 0, 0};
    const char *enc = qfile_attr(qf, CLEANUP_QATTR_ENCODING);
    int rc;

    vstr_reset(text);
    if (*ret == BOUNCE_MSG_RET_NONE)
        return 0;
    if (*ret == BOUNCE_MSG_RET_FULL && (qf->content_size > (uint64_t)bounce_conf.size_limit ||
                                        (enc != NULL && strcasecmp(enc, CLEANUP_ENC_BINARY) == 0)))
        *ret = BOUNCE_MSG_RET_HDRS;
    bc.headers_only = *ret == BOUNCE_MSG_RET_HDRS;
    rc = qfile_content_walk(qf, bounce_copy_piece, &bc);
    if (rc < 0) {
        vstr_sprintf(why, "read queue file: %s", qfile_why(qf));
        return -1;
    }
    if (bc.cut) {
        /* Headers beyond the limit: keep whole lines only. */
        char *nl = memrchr(vstr_str(text), '\n', vstr_len(text));

        vstr_truncate(text, nl ? (size_t)(nl - vstr_str(text)) + 1 : 0);
    }
    return 0;
}

/* bounce_non_ascii - any octet above 0x7f */
static int bounce_non_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 1;
    return 0;
}

/* bounce_wanted - does this recipient's NOTIFY ask for this kind of notice */
static int bounce_wanted(enum bounce_msg_kind kind, int notify, int postmaster)
{
    if (postmaster)
        return 1;
    switch (kind) {
    case BOUNCE_MSG_FAILURE: return notify == 0 || (notify & QFILE_NOTIFY_FAILURE);
    case BOUNCE_MSG_DELAY: return notify == 0 || (notify & QFILE_NOTIFY_DELAY);
    case BOUNCE_MSG_SUCCESS: return (notify & QFILE_NOTIFY_SUCCESS) != 0;
    }
    return 0;
}

/* bounce_cleanup_path - private/ unless master.cf made cleanup public */
static void bounce_cleanup_path(VSTR *path)
{
    struct stat st;

    vstr_sprintf(path, "%s/%s", MAIL_QUEUE_PRIVATE, bounce_conf.cleanup_service);
    if (lstat(vstr_str(path), &st) < 0 && errno == ENOENT)
        vstr_sprintf(path, "%s/%s", MAIL_QUEUE_PUBLIC, bounce_conf.cleanup_service);
}

/* bounce_send - one notice; 0 with its id, 1 when cleanup refused it for
   good (5xx), -1 with why when it should be tried again */
static int bounce_send(const BOUNCE_REQ *req, QFILE *qf, const BOUNCE_TARGET *t, VSTR *new_id,
                       VSTR *why)
{
    BOUNCE_MSG_RCPT *rcpts = mycalloc(req->count ? req->count : 1, sizeof(*rcpts));
    VSTR *original = vstr_alloc(1024), *text = vstr_alloc(4096), *path = vstr_alloc(64);
    BOUNCE_MSG m = {0};
    CLEANUP_SENDER_OPTS opts = {0};
    CLEANUP_REPLY reply;
    CLEANUP_CLNT *c = NULL;
    enum bounce_msg_ret ret = t->ret;
    const char *utf8 = qfile_attr(qf, CLEANUP_QATTR_SMTPUTF8);
    int rc = -1;
    size_t n = 0;

    for (size_t i = 0; i < req->count; i++) {
        const BOUNCE_REQ_RCPT *r = req->rcpt + i;
        const QFILE_RCPT *q = qf->rcpt + r->index;

        if (!bounce_wanted(req->kind, q->notify, t->postmaster))
            continue;
        rcpts[n] =
            (BOUNCE_MSG_RCPT){q->address, q->orig_rcpt, q->orcpt, r->action, r->status, r->reason,
                              r->relay,   r->mtype,     r->mname, r->dtype,  r->dtext};
        n++;
    }
    if (n == 0) {
        /* Nobody asked for this notice (NOTIFY=NEVER, or only SUCCESS). */
        vstr_reset(new_id);
        rc = 0;
        goto done;
    }
    if (bounce_original(qf, &ret, original, why) < 0)
        goto done;

    bounce_cleanup_path(path);
    if ((c = cleanup_clnt_open(vstr_str(path), 0, CLEANUP_ORIGIN_BOUNCE, bounce_conf.ipc_timeout_ms,
                               &reply)) == NULL) {
        vstr_sprintf(why, "cleanup: %u %s %s", reply.status, reply.dsn, reply.reason);
        goto done;
    }
    m.kind = req->kind;
    m.postmaster = t->postmaster;
    m.myhostname = bounce_conf.myhostname;
    m.from = bounce_conf.mailer_daemon;
    m.to = t->to;
    m.notice_id = cleanup_clnt_queue_id(c);
    m.now = time(NULL);
    m.queue_id = qf->id;
    m.sender = qf->sender;
    m.envid = qf->dsn_envid;
    m.arrival = qf->arrival;
    m.delay_warning_time = bounce_conf.delay_warning_time;
    m.max_lifetime = bounce_conf.max_lifetime;
    m.retry_until =
        req->kind == BOUNCE_MSG_DELAY ? (time_t)(qf->arrival.tv_sec + bounce_conf.max_lifetime) : 0;
    m.rcpt = rcpts;
    m.rcpt_count = n;
    m.ret = ret;
    m.original = vstr_str(original);
    m.original_len = vstr_len(original);
    m.eightbit = bounce_non_ascii(vstr_str(original), vstr_len(original));
    /* RFC 6533: addresses in UTF-8 need a notice that may carry them. */
    m.utf8 = (utf8 != NULL && strcmp(utf8, "1") == 0) || bounce_non_ascii(t->to, strlen(t->to)) ||
             bounce_non_ascii(qf->sender, strlen(qf->sender));
    for (size_t i = 0; i < n && !m.utf8; i++)
        m.utf8 = bounce_non_ascii(rcpts[i].address, strlen(rcpts[i].address));
    bounce_msg_build(&m, text);

    opts.body = m.eightbit || m.utf8 ? CLEANUP_BODY_8BITMIME : CLEANUP_BODY_7BIT;
    opts.smtputf8 = m.utf8;
    if (cleanup_clnt_sender(c, t->sender, &opts) < 0 || cleanup_clnt_rcpt(c, t->to, NULL, 0) < 0 ||
        cleanup_clnt_data(c, vstr_str(text), vstr_len(text)) < 0) {
        vstr_sprintf(why, "cleanup: %s", cleanup_clnt_why(c));
        goto done;
    }
    if (cleanup_clnt_end(c, &reply) < 0 || reply.status != 0) {
        vstr_sprintf(why, "cleanup: %u %s %s", reply.status, reply.dsn, reply.reason);
        rc = reply.status >= 500 ? 1 : -1;
        goto done;
    }
    vstr_cpy(new_id, reply.queue_id);
    msg_info("%s: %s: %s", qf->id, t->log_what, reply.queue_id);
    rc = 0;
done:
    if (c)
        cleanup_clnt_free(c);
    myfree(rcpts);
    vstr_free(original);
    vstr_free(text);
    vstr_free(path);
    return rc;
}

/* bounce_open_qfile - the message, in the queue qmgr named or wherever an
   administrator moved it meanwhile (postsuper -h, -r) */
static int bounce_open_qfile(const BOUNCE_REQ *req, QFILE **qf, VSTR *why)
{
    static const char *const queues[] = {MAIL_QUEUE_IMMEDIATE, MAIL_QUEUE_BULK, MAIL_QUEUE_DEFERRED,
                                         MAIL_QUEUE_HOLD, NULL};
    int err = qfile_open(req->queue_name, req->queue_id, 0, qf, why);

    for (size_t i = 0; err == QFILE_ERR_SYS && errno == ENOENT && queues[i]; i++)
        if (strcmp(queues[i], req->queue_name) != 0)
            err = qfile_open(queues[i], req->queue_id, 0, qf, why);
    return err == QFILE_OK ? 0 : -1;
}

/* bounce_notice - the notices one request calls for */
int bounce_notice(const BOUNCE_REQ *req, VSTR *new_id, VSTR *why)
{
    QFILE *qf = NULL;
    BOUNCE_TARGET sender = {0}, copy = {0};
    VSTR *copy_id = vstr_alloc(32), *copy_why = vstr_alloc(64);
    const char *orig_sender;
    int rc = -1, have_copy = 0;

    vstr_reset(new_id);
    if (bounce_open_qfile(req, &qf, why) < 0)
        goto done;
    for (size_t i = 0; i < req->count; i++) {
        if (req->rcpt[i].index >= qf->rcpt_count) {
            vstr_sprintf(why, "recipient #%zu is not in the queue file", req->rcpt[i].index);
            goto done;
        }
    }
    orig_sender = qf->sender;

    if (*orig_sender == 0 || strcasecmp(orig_sender, bounce_conf.double_bounce) == 0) {
        /* Mail from the mail system itself. */
        if (req->kind == BOUNCE_MSG_FAILURE && *orig_sender == 0 &&
            (bounce_conf.notify & (BOUNCE_NOTIFY_2BOUNCE | BOUNCE_NOTIFY_BOUNCE))) {
            sender = (BOUNCE_TARGET){bounce_conf.rcpt_2bounce, bounce_conf.double_bounce, 1,
                                     BOUNCE_MSG_RET_FULL, "postmaster non-delivery notification"};
        } else if (req->kind == BOUNCE_MSG_FAILURE && *orig_sender != 0) {
            msg_warn("%s: undeliverable postmaster notification discarded", qf->id);
            rc = 0;
            goto done;
        } else if (req->kind == BOUNCE_MSG_DELAY && *orig_sender == 0 &&
                   (bounce_conf.notify & BOUNCE_NOTIFY_DELAY)) {
            sender = (BOUNCE_TARGET){bounce_conf.rcpt_delay, bounce_conf.double_bounce, 1,
                                     BOUNCE_MSG_RET_HDRS, "postmaster delay notification"};
        } else {
            if (req->kind == BOUNCE_MSG_SUCCESS)
                msg_info("%s: not sending trace/success notification for %s message", qf->id,
                         *orig_sender ? "double-bounce" : "single-bounce");
            rc = 0;
            goto done;
        }
    } else {
        switch (req->kind) {
        case BOUNCE_MSG_FAILURE:
            sender = (BOUNCE_TARGET){orig_sender, "", 0,
                                     qf->dsn_ret == QFILE_RET_HDRS ? BOUNCE_MSG_RET_HDRS
                                                                   : BOUNCE_MSG_RET_FULL,
                                     "sender non-delivery notification"};
            if (bounce_conf.notify & BOUNCE_NOTIFY_BOUNCE) {
                copy = (BOUNCE_TARGET){bounce_conf.rcpt_bounce, bounce_conf.double_bounce, 1,
                                       BOUNCE_MSG_RET_HDRS, "postmaster non-delivery notification"};
                have_copy = 1;
            }
            break;
        case BOUNCE_MSG_DELAY:
            sender = (BOUNCE_TARGET){orig_sender, "", 0, BOUNCE_MSG_RET_HDRS,
                                     "sender delay notification"};
            if (bounce_conf.notify & BOUNCE_NOTIFY_DELAY) {
                copy = (BOUNCE_TARGET){bounce_conf.rcpt_delay, bounce_conf.double_bounce, 1,
                                       BOUNCE_MSG_RET_HDRS, "postmaster delay notification"};
                have_copy = 1;
            }
            break;
        case BOUNCE_MSG_SUCCESS:
            sender = (BOUNCE_TARGET){orig_sender, "", 0, BOUNCE_MSG_RET_HDRS,
                                     "sender delivery status notification"};
            break;
        }
    }
    rc = bounce_send(req, qf, &sender, new_id, why);
    if (rc > 0) {
        /* cleanup will never take it (too big for message_size_limit...):
           retrying cannot help, and the original must not stay forever. */
        msg_warn("%s: cannot queue %s: %s -- giving up", qf->id, sender.log_what, vstr_str(why));
        vstr_reset(new_id);
        rc = 0;
    }
    /* The postmaster copy is not critical: a failure is only logged. */
    if (rc == 0 && have_copy && bounce_send(req, qf, &copy, copy_id, copy_why) != 0)
        msg_warn("%s: postmaster notice failed while notifying %s: %s", qf->id, orig_sender,
                 vstr_str(copy_why));
done:
    if (qf)
        qfile_close(qf);
    vstr_free(copy_id);
    vstr_free(copy_why);
    return rc;
}
