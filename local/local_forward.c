/*
 * local_forward - forwarding to addresses in other domains, found in aliases
 * and .forward files: a new message through cleanup (docs/protocols.md
 * section 1), with the original sender and content and a Delivered-To:
 * header on top, so that a message that comes back here is recognised as a
 * loop. Forwarded addresses are collected while one recipient is expanded
 * and sent at its end, one new message per forwarding address, as Postfix
 * does.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "local.h"
#include "mail/cleanup_clnt.h"
#include "util/msg.h"
#include "util/mymalloc.h"

#define LOCAL_FWD_ORIGIN "local" /* cleanup's log names the forwarding program */

/* local_forward_add - remember one address to forward to */
void local_forward_add(const LOCAL_STATE *st, const char *address)
{
    LOCAL_RCPT *rc = st->rcpt;
    VSTR *delivered = vstr_alloc(64);

    if (rc->fwd_count == rc->fwd_cap) {
        rc->fwd_cap = rc->fwd_cap ? size_mul(rc->fwd_cap, 2) : 4;
        rc->fwd = myrealloc(rc->fwd, size_mul(rc->fwd_cap, sizeof(*rc->fwd)));
    }
    vstr_cpy(delivered, st->address);
    vstr_lower(delivered);
    rc->fwd[rc->fwd_count].delivered = vstr_export(delivered);
    rc->fwd[rc->fwd_count].address = mystrdup(address);
    rc->fwd_count++;
}

/* local_fwd_write - sink for local_copy: content to cleanup */
static int local_fwd_write(void *ctx, const char *data, size_t len)
{
    return cleanup_clnt_data((CLEANUP_CLNT *)ctx, data, len);
}

/* local_fwd_result - a cleanup reply as a delivery result */
static void local_fwd_result(const CLEANUP_REPLY *r, LOCAL_RESULT *res)
{
    const char *dsn = r->dsn;

    /* The DSN class decides; a reply without a usable one goes by status. */
    if (dsn[0] != '4' && dsn[0] != '5')
        dsn = r->status >= 500 ? "5.3.0" : "4.3.0";
    local_result_set(res, dsn, "cannot forward: %s", *r->reason ? r->reason : "refused");
}

/*
 * local_fwd_send - one new message for the addresses whose delivered value
 * is `delivered`; 0 and the new queue id, or -1 with the result in res.
 */
static int local_fwd_send(LOCAL_MSG *msg, LOCAL_RCPT *rc, const char *delivered, VSTR *queue_id,
                          LOCAL_RESULT *res)
{
    VSTR *path = vstr_alloc(64);
    VSTR *why = vstr_alloc(64);
    VSTR *orcpt = vstr_alloc(64);
    CLEANUP_SENDER_OPTS opts = {0};
    CLEANUP_REPLY reply;
    CLEANUP_CLNT *c;
    int ret = -1, rc_copy;

    /* master.cf decides whether the service is private (y) or public (n). */
    vstr_sprintf(path, "%s/%s", CLEANUP_SERVICE_CLASS, local_conf.cleanup_service);
    if (access(vstr_str(path), F_OK) < 0 && errno == ENOENT)
        vstr_sprintf(path, "public/%s", local_conf.cleanup_service);
    if ((c = cleanup_clnt_open(vstr_str(path), 0, LOCAL_FWD_ORIGIN, LOCAL_CLEANUP_TIMEOUT_MS,
                               &reply)) == NULL) {
        local_fwd_result(&reply, res);
        goto done;
    }
    opts.ret = *msg->ret ? msg->ret : NULL;
    opts.envid = *msg->envid ? msg->envid : NULL;
    /* DSN: the forwarded copies keep the recipient's original identity. */
    if (*rc->dsn_orcpt)
        vstr_cpy(orcpt, rc->dsn_orcpt);
    else
        vstr_sprintf(orcpt, "rfc822;%s", *rc->orcpt ? rc->orcpt : rc->address);
    cleanup_clnt_sender(c, msg->sender, &opts);
    for (size_t i = 0; i < rc->fwd_count; i++)
        if (strcmp(rc->fwd[i].delivered, delivered) == 0)
            cleanup_clnt_rcpt(c, rc->fwd[i].address, vstr_str(orcpt), (int)rc->notify);
    rc_copy = local_copy(msg, (local_conf.prepend_delivered & LOCAL_DT_FORWARD) ? delivered : NULL,
                         LOCAL_COPY_DELIVERED, local_fwd_write, c, why);
    if (rc_copy == LOCAL_COPY_ERR_QUEUE) {
        /* Freeing the client without "end" makes cleanup drop the message. */
        local_result_set(res, "4.3.0", "cannot forward: %s", vstr_str(why));
        goto done;
    }
    if (cleanup_clnt_end(c, &reply) < 0 || reply.status != 0) {
        local_fwd_result(&reply, res);
        goto done;
    }
    vstr_cpy(queue_id, reply.queue_id);
    ret = 0;
done:
    cleanup_clnt_free(c);
    vstr_free(path);
    vstr_free(why);
    vstr_free(orcpt);
    return ret;
}

/* local_forward_flush - send what the recipient's expansion forwarded */
void local_forward_flush(LOCAL_MSG *msg, LOCAL_RCPT *rc)
{
    LOCAL_STATE st = {.msg = msg, .rcpt = rc};
    VSTR *queue_id = vstr_alloc(32);

    for (size_t i = 0; i < rc->fwd_count; i++) {
        LOCAL_RESULT res;
        int done_before = 0;

        /* One message per forwarding address, sent when it is first seen. */
        for (size_t j = 0; j < i; j++)
            if (strcmp(rc->fwd[j].delivered, rc->fwd[i].delivered) == 0)
                done_before = 1;
        if (done_before)
            continue;
        local_result_init(&res);
        vstr_reset(queue_id);
        if (local_fwd_send(msg, rc, rc->fwd[i].delivered, queue_id, &res) == 0)
            local_result_ok(&res, "forwarded as %s", vstr_str(queue_id));
        for (size_t j = i; j < rc->fwd_count; j++)
            if (strcmp(rc->fwd[j].delivered, rc->fwd[i].delivered) == 0)
                local_report(&st, rc->fwd[j].address, &res);
        local_result_free(&res);
    }
    vstr_free(queue_id);
}
