/*
 * cleanup_clnt - blocking client of the cleanup service (see cleanup_clnt.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mail/attr.h"
#include "mail/cleanup_clnt.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

struct CLEANUP_CLNT {
    int fd;
    ATTR_STREAM *stream;
    char queue_id[QUEUE_ID_SIZE];
    int failed; /* a request could not be sent: the transaction is lost */
    int ended;  /* cleanup_clnt_end was called */
    VSTR *why;
};

/* The fallback answer when cleanup cannot be asked (Postfix's wording). */
#define CLEANUP_CLNT_FAIL_STATUS 451
#define CLEANUP_CLNT_FAIL_DSN "4.3.0"
#define CLEANUP_CLNT_FAIL_TEXT "Error: queue file write error"

/* cleanup_clnt_reply_set - fill a reply */
static void cleanup_clnt_reply_set(CLEANUP_REPLY *r, unsigned status, const char *id,
                                   const char *dsn, const char *reason)
{
    r->status = status;
    snprintf(r->queue_id, sizeof(r->queue_id), "%s", id ? id : "");
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn ? dsn : "");
    snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
}

/* cleanup_clnt_fail - the fallback reply */
static void cleanup_clnt_fail(CLEANUP_REPLY *r, const char *id)
{
    cleanup_clnt_reply_set(r, CLEANUP_CLNT_FAIL_STATUS, id, CLEANUP_CLNT_FAIL_DSN,
                           CLEANUP_CLNT_FAIL_TEXT);
}

/* cleanup_clnt_read_reply - one reply message into r; 0 or -1 */
static int cleanup_clnt_read_reply(CLEANUP_CLNT *c, CLEANUP_REPLY *r)
{
    unsigned long long status = 0;
    VSTR *id = vstr_alloc(QUEUE_ID_SIZE);
    VSTR *dsn = vstr_alloc(CLEANUP_DSN_MAX);
    VSTR *reason = vstr_alloc(100);
    int ret = -1;

    vstr_set_limit(id, QUEUE_ID_LEN);
    vstr_set_limit(dsn, CLEANUP_DSN_MAX - 1);
    vstr_set_limit(reason, CLEANUP_REASON_MAX - 1);
    if (attr_scan(c->stream, ATTR_FLAG_PRINTABLE, ATTR_UNUM_OUT(CLEANUP_ATTR_STATUS, &status),
                  ATTR_STR_OPT(CLEANUP_ATTR_QUEUE_ID, id), ATTR_STR_OPT(CLEANUP_ATTR_DSN, dsn),
                  ATTR_STR_OPT(CLEANUP_ATTR_REASON, reason), ATTR_END) < 0) {
        vstr_sprintf(c->why, "read cleanup reply: %s", attr_stream_why(c->stream));
        goto done;
    }
    if (status != 0 && (status < 400 || status > 599)) {
        vstr_sprintf(c->why, "cleanup reply: bad status %llu", status);
        goto done;
    }
    cleanup_clnt_reply_set(r, (unsigned)status, vstr_str(id), vstr_str(dsn), vstr_str(reason));
    ret = 0;

done:
    vstr_free(id);
    vstr_free(dsn);
    vstr_free(reason);
    return ret;
}

/* cleanup_clnt_free - close and release */
void cleanup_clnt_free(CLEANUP_CLNT *c)
{
    if (c == NULL)
        return;
    attr_stream_free(c->stream);
    if (c->fd >= 0)
        close(c->fd);
    vstr_free(c->why);
    myfree(c);
}

/* cleanup_clnt_open - connect and open a transaction */
CLEANUP_CLNT *cleanup_clnt_open(const char *path, int flags, const char *origin, int timeout_ms,
                                CLEANUP_REPLY *reply)
{
    CLEANUP_CLNT *c = mycalloc(1, sizeof(*c));

    if (timeout_ms <= 0)
        timeout_ms = CLEANUP_CLNT_TIMEOUT_MS;
    c->why = vstr_alloc(100);
    if ((c->fd = attr_clnt_connect(path, timeout_ms)) < 0) {
        vstr_sprintf(c->why, "connect to %s: %m", path);
        msg_warn("%s", vstr_str(c->why));
        goto fail;
    }
    c->stream = attr_stream_open(c->fd, timeout_ms);
    if (attr_print(c->stream, 0, ATTR_STR(CLEANUP_ATTR_REQ, CLEANUP_REQ_OPEN),
                   ATTR_UNUM(CLEANUP_ATTR_FLAGS, (unsigned long long)flags),
                   ATTR_STR(CLEANUP_ATTR_ORIGIN, origin ? origin : ""), ATTR_END) < 0) {
        vstr_sprintf(c->why, "send to %s: %s", path, attr_stream_why(c->stream));
        msg_warn("%s", vstr_str(c->why));
        goto fail;
    }
    if (cleanup_clnt_read_reply(c, reply) < 0) {
        msg_warn("%s: %s", path, vstr_str(c->why));
        goto fail;
    }
    if (reply->status != 0)
        goto refused;
    if (!queue_id_valid(reply->queue_id)) {
        msg_warn("%s: cleanup gave no valid queue id", path);
        goto fail;
    }
    memcpy(c->queue_id, reply->queue_id, QUEUE_ID_SIZE);
    return c;

fail:
    cleanup_clnt_fail(reply, NULL);
refused:
    cleanup_clnt_free(c);
    return NULL;
}

/* cleanup_clnt_queue_id - the id of the open transaction */
const char *cleanup_clnt_queue_id(const CLEANUP_CLNT *c)
{
    return c->queue_id;
}

/* cleanup_clnt_why - the last failure */
const char *cleanup_clnt_why(const CLEANUP_CLNT *c)
{
    return vstr_str(c->why);
}

/* cleanup_clnt_send - one request from a spec list; -1 makes the client fail for good */
static int cleanup_clnt_send(CLEANUP_CLNT *c, const ATTR_SPEC *const *list)
{
    if (c->failed || c->ended) {
        errno = EPIPE;
        return -1;
    }
    if (attr_print_list(c->stream, 0, list) < 0) {
        vstr_sprintf(c->why, "%s: send to cleanup: %s", c->queue_id, attr_stream_why(c->stream));
        c->failed = 1;
        return -1;
    }
    return 0;
}

/* cleanup_clnt_attr - one named attribute */
int cleanup_clnt_attr(CLEANUP_CLNT *c, const char *name, const char *value)
{
    const ATTR_SPEC *list[] = {
        ATTR_STR(CLEANUP_ATTR_REQ, CLEANUP_REQ_ATTR),
        ATTR_STR(CLEANUP_ATTR_NAME, name),
        ATTR_STR(CLEANUP_ATTR_VALUE, value),
        ATTR_END,
    };

    return cleanup_clnt_send(c, list);
}

/* cleanup_clnt_sender - the envelope sender and its MAIL FROM parameters */
int cleanup_clnt_sender(CLEANUP_CLNT *c, const char *sender, const CLEANUP_SENDER_OPTS *o)
{
    /* Compound literals at function scope: they must outlive the if statements below. */
    const ATTR_SPEC *req = ATTR_STR(CLEANUP_ATTR_REQ, CLEANUP_REQ_SENDER);
    const ATTR_SPEC *addr = ATTR_STR(CLEANUP_ATTR_ADDRESS, sender);
    const ATTR_SPEC *ret = ATTR_STR(CLEANUP_ATTR_RET, o ? o->ret : NULL);
    const ATTR_SPEC *envid = ATTR_STR(CLEANUP_ATTR_ENVID, o ? o->envid : NULL);
    const ATTR_SPEC *body = ATTR_STR(CLEANUP_ATTR_BODY, o ? o->body : NULL);
    const ATTR_SPEC *utf8 = ATTR_UNUM(CLEANUP_ATTR_SMTPUTF8_REQ, 1);
    const ATTR_SPEC *size = ATTR_UNUM(CLEANUP_ATTR_SIZE, o ? o->size : 0);
    const ATTR_SPEC *list[8];
    size_t n = 0;

    list[n++] = req;
    list[n++] = addr;
    if (o && o->ret)
        list[n++] = ret;
    if (o && o->envid)
        list[n++] = envid;
    if (o && o->body)
        list[n++] = body;
    if (o && o->smtputf8)
        list[n++] = utf8;
    if (o && o->size)
        list[n++] = size;
    list[n] = ATTR_END;
    return cleanup_clnt_send(c, list);
}

/* cleanup_clnt_rcpt - one recipient */
int cleanup_clnt_rcpt(CLEANUP_CLNT *c, const char *addr, const char *orcpt, int notify)
{
    const ATTR_SPEC *req = ATTR_STR(CLEANUP_ATTR_REQ, CLEANUP_REQ_RCPT);
    const ATTR_SPEC *address = ATTR_STR(CLEANUP_ATTR_ADDRESS, addr);
    const ATTR_SPEC *orig = ATTR_STR(CLEANUP_ATTR_ORCPT, orcpt);
    const ATTR_SPEC *notif = ATTR_UNUM(CLEANUP_ATTR_NOTIFY, (unsigned long long)notify);
    const ATTR_SPEC *list[5];
    size_t n = 0;

    list[n++] = req;
    list[n++] = address;
    if (orcpt && *orcpt)
        list[n++] = orig;
    if (notify)
        list[n++] = notif;
    list[n] = ATTR_END;
    return cleanup_clnt_send(c, list);
}

/* cleanup_clnt_data - content, in pieces of at most CLEANUP_DATA_MAX */
int cleanup_clnt_data(CLEANUP_CLNT *c, const char *data, size_t len)
{
    while (len > 0) {
        size_t n = len > CLEANUP_DATA_MAX ? CLEANUP_DATA_MAX : len;
        const ATTR_SPEC *list[] = {
            ATTR_STR(CLEANUP_ATTR_REQ, CLEANUP_REQ_DATA),
            ATTR_BIN(CLEANUP_ATTR_DATA, data, n),
            ATTR_END,
        };

        if (cleanup_clnt_send(c, list) < 0)
            return -1;
        data += n;
        len -= n;
    }
    return 0;
}

/* cleanup_clnt_end - finish and read the final reply */
int cleanup_clnt_end(CLEANUP_CLNT *c, CLEANUP_REPLY *reply)
{
    const ATTR_SPEC *list[] = {ATTR_STR(CLEANUP_ATTR_REQ, CLEANUP_REQ_END), ATTR_END};

    if (cleanup_clnt_send(c, list) < 0 || cleanup_clnt_read_reply(c, reply) < 0) {
        c->failed = 1;
        msg_warn("%s", vstr_str(c->why));
        cleanup_clnt_fail(reply, c->queue_id);
        return -1;
    }
    c->ended = 1;
    if (reply->queue_id[0] == 0)
        memcpy(reply->queue_id, c->queue_id, QUEUE_ID_SIZE);
    return 0;
}
