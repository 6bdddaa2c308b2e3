/*
 * bounce - the Postern delivery status notification service (man/bounce.8).
 *
 * SYNOPSIS
 *   bounce [generic daemon options]   (started by master)
 *
 * DESCRIPTION
 *   A MAIL_SERVER_SINGLE service on private/bounce. qmgr asks it, one
 *   request per connection (docs/protocols.md section 7), to queue a
 *   notice about some recipients of a message: non-delivery (RFC 3464
 *   Action: failed), delay (delayed) or success (delivered, relayed). The
 *   service reads the original from its queue file (read-only), writes the
 *   notice with lib/mail/bounce_msg and submits it through cleanup with
 *   origin "bounce", then answers. qmgr marks the recipients bounced only
 *   after a status 0 answer, so "B" in a queue file always means that the
 *   notice is in the queue (or that none was due).
 *
 *   Working in a process of its own keeps qmgr from ever waiting on
 *   cleanup or the disk for a notice, and keeps the MIME composition of
 *   mail contents out of the scheduler.
 *
 * FILES
 *   private/bounce      this service
 *   private/cleanup     where notices go
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "bounce.h"
#include "mail/attr.h"
#include "mail/bounce_proto.h"
#include "mail/mail_conf.h"
#include "mail/mail_queue.h"
#include "mail/mail_server.h"
#include "mail/qfile.h"
#include "mail/queue_id.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define BOUNCE_IPC_TIMEOUT_MAX 3600 /* seconds: bound on one request's exchange */

BOUNCE_CONF bounce_conf;

/* bounce_req_free - release a request */
static void bounce_req_free(BOUNCE_REQ *req)
{
    for (size_t i = 0; i < req->count; i++) {
        BOUNCE_REQ_RCPT *r = req->rcpt + i;

        myfree(r->status);
        myfree(r->action);
        myfree(r->reason);
        myfree(r->relay);
        myfree(r->mtype);
        myfree(r->mname);
        myfree(r->dtype);
        myfree(r->dtext);
    }
    myfree(req->rcpt);
    myfree(req->queue_name);
    myfree(req->queue_id);
    myfree(req);
}

/* bounce_str - a string attribute, "" when absent; NULL when present but
   wrong (type, repeated) or longer than max */
static char *bounce_str(const ATTR_MSG *m, const char *name, size_t max, int required)
{
    const char *v = attr_msg_get_str(m, name);

    if (v == NULL)
        return (errno == ENOENT && !required) ? mystrdup("") : NULL;
    if (strlen(v) > max)
        return NULL;
    return mystrdup(v);
}

/* bounce_dsn_ok - an RFC 3463 status of class 2, 4 or 5 */
static int bounce_dsn_ok(const char *s)
{
    int n;

    if ((s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    for (s += 2, n = 0; *s >= '0' && *s <= '9'; s++)
        n++;
    if (n < 1 || n > 3 || *s++ != '.')
        return 0;
    for (n = 0; *s >= '0' && *s <= '9'; s++)
        n++;
    return n >= 1 && n <= 3 && *s == 0;
}

/* bounce_action_ok - an RFC 3464 2.3.3 action */
static int bounce_action_ok(const char *s)
{
    static const char *const actions[] = {"failed",  "delayed",  "delivered",
                                          "relayed", "expanded", NULL};

    for (size_t i = 0; actions[i]; i++)
        if (strcmp(s, actions[i]) == 0)
            return 1;
    return 0;
}

/* bounce_read_rcpt - one recipient message into r; 0 or -1 with why */
static int bounce_read_rcpt(const ATTR_MSG *m, BOUNCE_REQ_RCPT *r, VSTR *why)
{
    unsigned long long index;

    if (attr_msg_get_unum(m, BOUNCE_ATTR_RCPT_INDEX, &index) < 0 || index >= QFILE_RCPT_MAX) {
        vstr_sprintf(why, "bad or missing %s", BOUNCE_ATTR_RCPT_INDEX);
        return -1;
    }
    r->index = (size_t)index;
    r->status = bounce_str(m, BOUNCE_ATTR_STATUS, BOUNCE_STATUS_MAX, 1);
    r->action = bounce_str(m, BOUNCE_ATTR_ACTION, BOUNCE_ACTION_MAX, 1);
    r->reason = bounce_str(m, BOUNCE_ATTR_REASON, BOUNCE_TEXT_MAX, 0);
    r->relay = bounce_str(m, BOUNCE_ATTR_RELAY, BOUNCE_NAME_MAX, 0);
    r->mtype = bounce_str(m, BOUNCE_ATTR_MTYPE, BOUNCE_NAME_MAX, 0);
    r->mname = bounce_str(m, BOUNCE_ATTR_MNAME, BOUNCE_NAME_MAX, 0);
    r->dtype = bounce_str(m, BOUNCE_ATTR_DTYPE, BOUNCE_NAME_MAX, 0);
    r->dtext = bounce_str(m, BOUNCE_ATTR_DTEXT, BOUNCE_TEXT_MAX, 0);
    if (!r->status || !r->action || !r->reason || !r->relay || !r->mtype || !r->mname ||
        !r->dtype || !r->dtext) {
        vstr_sprintf(why, "recipient #%zu: bad, missing or over-long attribute", r->index);
        return -1;
    }
    if (!bounce_dsn_ok(r->status) || !bounce_action_ok(r->action)) {
        vstr_sprintf(why, "recipient #%zu: bad status \"%.32s\" or action \"%.16s\"", r->index,
                     r->status, r->action);
        return -1;
    }
    return 0;
}

/* bounce_read_req - one whole request; NULL with why */
static BOUNCE_REQ *bounce_read_req(ATTR_STREAM *s, VSTR *why)
{
    BOUNCE_REQ *req = mycalloc(1, sizeof(*req));
    ATTR_MSG *m;
    const char *kind;
    unsigned long long count = 0, end = 0;

    if ((m = attr_msg_read(s, ATTR_FLAG_PRINTABLE)) == NULL) {
        vstr_sprintf(why, "%s", errno == ENODATA ? "no request" : attr_stream_why(s));
        goto fail;
    }
    kind = attr_msg_get_str(m, BOUNCE_ATTR_KIND);
    req->queue_name = bounce_str(m, BOUNCE_ATTR_QUEUE_NAME, 64, 1);
    req->queue_id = bounce_str(m, BOUNCE_ATTR_QUEUE_ID, QUEUE_ID_SIZE, 1);
    if (kind == NULL || req->queue_name == NULL || req->queue_id == NULL ||
        attr_msg_get_unum(m, BOUNCE_ATTR_COUNT, &count) < 0) {
        vstr_sprintf(why, "request without kind, queue_name, queue_id or count");
        attr_msg_free(m);
        goto fail;
    }
    if (strcmp(kind, BOUNCE_KIND_FAILURE) == 0)
        req->kind = BOUNCE_MSG_FAILURE;
    else if (strcmp(kind, BOUNCE_KIND_DELAY) == 0)
        req->kind = BOUNCE_MSG_DELAY;
    else if (strcmp(kind, BOUNCE_KIND_SUCCESS) == 0)
        req->kind = BOUNCE_MSG_SUCCESS;
    else {
        vstr_sprintf(why, "unknown kind \"%.32s\"", kind);
        attr_msg_free(m);
        goto fail;
    }
    attr_msg_free(m);
    /* The names become a path: nothing but a queue and an id may pass. */
    if (!mail_queue_name_ok(req->queue_name) || !queue_id_valid(req->queue_id)) {
        vstr_sprintf(why, "bad queue name or queue id");
        goto fail;
    }
    if (count == 0 || count > BOUNCE_RCPT_MAX) {
        vstr_sprintf(why, "recipient count %llu not in 1..%d", count, BOUNCE_RCPT_MAX);
        goto fail;
    }
    req->rcpt = mycalloc((size_t)count, sizeof(*req->rcpt));
    for (; req->count < count; req->count++) {
        if ((m = attr_msg_read(s, ATTR_FLAG_PRINTABLE)) == NULL) {
            vstr_sprintf(why, "recipient: %s", attr_stream_why(s));
            goto fail;
        }
        if (bounce_read_rcpt(m, req->rcpt + req->count, why) < 0) {
            req->count++;
            attr_msg_free(m);
            goto fail;
        }
        attr_msg_free(m);
    }
    if ((m = attr_msg_read(s, ATTR_FLAG_PRINTABLE)) == NULL) {
        vstr_sprintf(why, "end: %s", attr_stream_why(s));
        goto fail;
    }
    if (attr_msg_get_unum(m, BOUNCE_ATTR_END, &end) < 0 || end != 1) {
        vstr_sprintf(why, "request without \"end\"");
        attr_msg_free(m);
        goto fail;
    }
    attr_msg_free(m);
    return req;
fail:
    bounce_req_free(req);
    return NULL;
}

/* bounce_service - one qmgr connection: one request, one answer */
static void bounce_service(const MAIL_SERVER_ARGS *args, int fd)
{
    ATTR_STREAM *s = attr_stream_open(fd, bounce_conf.ipc_timeout_ms);
    VSTR *why = vstr_alloc(100), *new_id = vstr_alloc(QUEUE_ID_SIZE);
    BOUNCE_REQ *req;
    unsigned status = 0;

    (void)args;
    if ((req = bounce_read_req(s, why)) == NULL) {
        /* A broken request gets no answer: qmgr sees the connection end and
           tries again later; nothing was queued. */
        if (strcmp(vstr_str(why), "no request") != 0)
            msg_warn("bad request from the queue manager: %s", vstr_str(why));
        goto done;
    }
    if (bounce_notice(req, new_id, why) < 0) {
        msg_warn("%s: cannot queue notice: %s", req->queue_id, vstr_str(why));
        status = 451;
    } else {
        vstr_reset(why);
    }
    if (attr_print(s, 0, ATTR_UNUM(BOUNCE_ATTR_REPLY_STATUS, status),
                   ATTR_STR(BOUNCE_ATTR_REPLY_REASON, vstr_str(why)),
                   ATTR_STR(BOUNCE_ATTR_REPLY_ID, vstr_str(new_id)), ATTR_END) < 0)
        msg_warn("%s: cannot answer the queue manager: %s", req->queue_id, attr_stream_why(s));
    bounce_req_free(req);
done:
    attr_stream_free(s);
    vstr_free(why);
    vstr_free(new_id);
}

/* bounce_qualify - an address with a domain: "@$myorigin" appended when it
   has none (Postfix's append_at_myorigin for locally made addresses) */
static char *bounce_qualify(const char *addr, const char *domain)
{
    VSTR *v = vstr_alloc(64);

    if (strchr(addr, '@') != NULL)
        vstr_cpy(v, addr);
    else
        vstr_sprintf(v, "%s@%s", addr, domain);
    return vstr_export(v);
}

/* bounce_read_conf - the parameters, once */
static void bounce_read_conf(void)
{
    ARGV *classes = var_list("notify_classes");
    long ipc = var_time("ipc_timeout");

    bounce_conf.myhostname = var_str("myhostname");
    bounce_conf.myorigin = var_str("myorigin");
    bounce_conf.double_bounce =
        bounce_qualify(var_str("double_bounce_sender"), bounce_conf.myhostname);
    bounce_conf.mailer_daemon = bounce_qualify("MAILER-DAEMON", bounce_conf.myhostname);
    bounce_conf.rcpt_2bounce =
        bounce_qualify(var_str("2bounce_notice_recipient"), bounce_conf.myorigin);
    bounce_conf.rcpt_bounce =
        bounce_qualify(var_str("bounce_notice_recipient"), bounce_conf.myorigin);
    bounce_conf.rcpt_delay =
        bounce_qualify(var_str("delay_notice_recipient"), bounce_conf.myorigin);
    for (size_t i = 0; i < classes->argc; i++) {
        const char *c = classes->argv[i];

        /* "bounce" implies "2bounce" (postconf(5)). */
        if (strcasecmp(c, "bounce") == 0)
            bounce_conf.notify |= BOUNCE_NOTIFY_BOUNCE | BOUNCE_NOTIFY_2BOUNCE;
        else if (strcasecmp(c, "2bounce") == 0)
            bounce_conf.notify |= BOUNCE_NOTIFY_2BOUNCE;
        else if (strcasecmp(c, "delay") == 0)
            bounce_conf.notify |= BOUNCE_NOTIFY_DELAY;
        else if (strcasecmp(c, "resource") != 0 && strcasecmp(c, "software") != 0 &&
                 strcasecmp(c, "policy") != 0 && strcasecmp(c, "protocol") != 0 &&
                 strcasecmp(c, "data") != 0)
            msg_warn("notify_classes: unknown class \"%s\" ignored", c);
    }
    argv_free(classes);
    bounce_conf.size_limit = var_int("bounce_size_limit");
    bounce_conf.delay_warning_time = var_time("delay_warning_time");
    bounce_conf.max_lifetime = var_time("maximal_queue_lifetime");
    if (ipc > BOUNCE_IPC_TIMEOUT_MAX)
        ipc = BOUNCE_IPC_TIMEOUT_MAX;
    bounce_conf.ipc_timeout_ms = (int)ipc * 1000;
    bounce_conf.cleanup_service = mystrdup(var_str("cleanup_service_name"));
}

/* bounce_pre_init - configuration and the queue layout */
static void bounce_pre_init(const MAIL_SERVER_ARGS *args)
{
    VSTR *why = vstr_alloc(64);

    (void)args;
    if (mail_queue_init(var_str("queue_directory"), (int)var_int("hash_queue_depth"),
                        var_str("hash_queue_names"), why) < 0)
        msg_fatal("queue settings: %s", vstr_str(why));
    vstr_free(why);
    bounce_read_conf();
}

int main(int argc, char **argv)
{
    static const MAIL_SERVER_SPEC spec = {
        .kind = MAIL_SERVER_SINGLE,
        .pre_init = bounce_pre_init,
        .single_service = bounce_service,
    };

    mail_server_main(argc, argv, &spec);
}
