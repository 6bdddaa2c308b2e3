/*
 * cleanup_session - the cleanup protocol (docs/protocols.md section 1) for
 * one client connection: one request at a time, in the order open, attr*,
 * sender, (attr | rcpt)*, data*, end. Errors found after "open" are only
 * remembered; the client hears about them in the final reply, so that it
 * never has to read while it streams content.
 *
 * A request out of order, or one this server cannot make sense of, is a
 * bug in the client: it is logged and the message fails with 451 4.3.0
 * (Postfix's "internal protocol error"), so the client tries again later.
 * A broken stream (bad framing, a value over the limits, a timeout) or the
 * client closing the connection ends the session at once, and the
 * unfinished queue file is removed.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "mail/cleanup_proto.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"

/* Stream limits: one "data" request is at most CLEANUP_DATA_MAX bytes of
   content, and no request needs more than a handful of attributes. */
#define CLEANUP_REQ_MSG_MAX (CLEANUP_DATA_MAX + 4096)
#define CLEANUP_REQ_COUNT_MAX 32
#define CLEANUP_NOTIFY_MAX 0xff

/* Session results of a request handler. */
#define CLEANUP_GO_ON 0
#define CLEANUP_CLOSE 1

/* cleanup_reply - send one reply; 0 or -1 */
static int cleanup_reply(CLEANUP_STATE *st, unsigned status, const char *dsn, const char *reason)
{
    if (attr_print(st->stream, 0, ATTR_UNUM(CLEANUP_ATTR_STATUS, status),
                   ATTR_STR(CLEANUP_ATTR_QUEUE_ID, st->queue_id),
                   ATTR_STR(CLEANUP_ATTR_DSN, dsn ? dsn : ""),
                   ATTR_STR(CLEANUP_ATTR_REASON, reason ? reason : ""), ATTR_END) < 0) {
        msg_warn("%s: send reply: %s", st->queue_id[0] ? st->queue_id : "NOQUEUE",
                 attr_stream_why(st->stream));
        return -1;
    }
    return 0;
}

/* cleanup_proto_error - a request the protocol does not allow here */
static void cleanup_proto_error(CLEANUP_STATE *st, const char *what)
{
    msg_warn("%s: protocol error from %s client: %s", st->queue_id[0] ? st->queue_id : "NOQUEUE",
             st->origin && *st->origin ? st->origin : "unknown", what);
    cleanup_fail(st, 451, "4.3.0", "Error: internal protocol error");
}

/* cleanup_keep - replace *slot with a copy of value */
static void cleanup_keep(char **slot, const char *value)
{
    myfree(*slot);
    *slot = mystrdup(value);
}

/* cleanup_req_open - create the queue file and tell the client its id */
static int cleanup_req_open(CLEANUP_STATE *st, const ATTR_MSG *m)
{
    unsigned long long flags = 0;
    const char *origin;
    VSTR *why;

    if (attr_msg_get_unum(m, CLEANUP_ATTR_FLAGS, &flags) < 0 && errno != ENOENT) {
        msg_warn("protocol error: bad \"%s\" in open request", CLEANUP_ATTR_FLAGS);
        return CLEANUP_CLOSE;
    }
    origin = attr_msg_get_str(m, CLEANUP_ATTR_ORIGIN);
    st->origin = mystrdup(origin ? origin : "");
    if (flags & ~(unsigned long long)CLEANUP_FLAG_MASK)
        msg_warn("%s client sent unknown flags 0x%llx: ignored", *st->origin ? st->origin : "a",
                 flags & ~(unsigned long long)CLEANUP_FLAG_MASK);
    st->flags = (int)(flags & CLEANUP_FLAG_MASK);

    if (!cleanup_space_ok()) {
        cleanup_reply(st, 452, "4.3.1", "Insufficient system storage");
        return CLEANUP_CLOSE;
    }
    why = vstr_alloc(100);
    st->writer = qfile_writer_create(why);
    if (st->writer == NULL) {
        msg_warn("cannot create a queue file: %s", vstr_str(why));
        vstr_free(why);
        cleanup_reply(st, 451, "4.3.0", "Error: queue file write error");
        return CLEANUP_CLOSE;
    }
    vstr_free(why);
    memcpy(st->queue_id, qfile_writer_id(st->writer), QUEUE_ID_SIZE);
    if (queue_id_time(st->queue_id, &st->arrival) < 0)
        msg_panic("queue file writer made an invalid id %s", st->queue_id);
    st->dups = cleanup_dup_new(cleanup_conf.dup_filter_limit);
    st->phase = CLEANUP_PH_ENVELOPE;
    if (cleanup_reply(st, 0, "", "") < 0)
        return CLEANUP_CLOSE;
    return CLEANUP_GO_ON;
}

/* cleanup_interpret_attr - attributes cleanup uses itself */
static void cleanup_interpret_attr(CLEANUP_STATE *st, const char *name, const char *value)
{
    long prio;

    if (strcmp(name, CLEANUP_ATTR_MT_PRIORITY) == 0) {
        /* RFC 6710 section 3: an integer from -9 to 9. */
        if (parse_long(value[0] == '+' ? value + 1 : value, -9, 9, &prio) == 0) {
            st->mt_priority = (int)prio;
            st->have_mt_priority = 1;
        } else {
            msg_warn("%s: ignoring bad %s value \"%.20s\"", st->queue_id, name, value);
        }
    } else if (strcmp(name, CLEANUP_ATTR_UID) == 0) {
        if (alldig(value) && strlen(value) <= 10)
            cleanup_keep(&st->uid, value);
    } else if (strcmp(name, CLEANUP_ATTR_FULL_NAME) == 0) {
        cleanup_keep(&st->full_name, value);
    } else if (strcmp(name, CLEANUP_ATTR_CLIENT_NAME) == 0) {
        cleanup_keep(&st->client_name, value);
    } else if (strcmp(name, CLEANUP_ATTR_CLIENT_ADDRESS) == 0) {
        cleanup_keep(&st->client_addr, value);
    } else if (strcmp(name, CLEANUP_ATTR_HELO_NAME) == 0) {
        cleanup_keep(&st->helo_name, value);
    } else if (strcmp(name, CLEANUP_ATTR_PROTOCOL_NAME) == 0) {
        cleanup_keep(&st->protocol_name, value);
    }
}

/* cleanup_store_attr - one ATTR record; our own attributes are not counted */
static void cleanup_store_attr(CLEANUP_STATE *st, const char *name, const char *value, int count)
{
    int err;

    if (st->writer == NULL)
        return;
    if (count && st->attr_count >= cleanup_conf.attr_count_limit) {
        msg_warn("%s: more than queue_file_attribute_count_limit=%zu attributes: dropping \"%s\"",
                 st->queue_id, cleanup_conf.attr_count_limit, name);
        return;
    }
    err = qfile_writer_attr(st->writer, name, value);
    if (err == QFILE_ERR_INVAL || err == QFILE_ERR_LIMIT) {
        msg_warn("%s: cannot store attribute: %s", st->queue_id, qfile_writer_why(st->writer));
        cleanup_proto_error(st, "unacceptable attribute");
    } else if (err != 0) {
        cleanup_write_error(st, err);
    } else if (count) {
        st->attr_count++;
    }
}

/* cleanup_req_attr - a named attribute for the queue file */
static int cleanup_req_attr(CLEANUP_STATE *st, const ATTR_MSG *m)
{
    const char *name = attr_msg_get_str(m, CLEANUP_ATTR_NAME);
    const char *value = attr_msg_get_str(m, CLEANUP_ATTR_VALUE);

    if (name == NULL || value == NULL) {
        cleanup_proto_error(st, "attribute request without name or value");
        return CLEANUP_GO_ON;
    }
    if (st->phase == CLEANUP_PH_DATA) {
        cleanup_proto_error(st, "attribute after the content started");
        return CLEANUP_GO_ON;
    }
    cleanup_interpret_attr(st, name, value);
    cleanup_store_attr(st, name, value, 1);
    return CLEANUP_GO_ON;
}

/* cleanup_dsn_ret - RET= text to QFILE_RET_*; -1 when unknown */
static int cleanup_dsn_ret(const char *ret)
{
    if (ret == NULL)
        return QFILE_RET_NONE;
    if (strcasecmp(ret, CLEANUP_RET_FULL) == 0)
        return QFILE_RET_FULL;
    if (strcasecmp(ret, CLEANUP_RET_HDRS) == 0)
        return QFILE_RET_HDRS;
    return -1;
}

/* cleanup_body_encoding - BODY= to the queue file's encoding; NULL when unknown */
static const char *cleanup_body_encoding(const char *body)
{
    if (strcasecmp(body, CLEANUP_BODY_7BIT) == 0)
        return CLEANUP_ENC_7BIT;
    if (strcasecmp(body, CLEANUP_BODY_8BITMIME) == 0)
        return CLEANUP_ENC_8BIT;
    if (strcasecmp(body, CLEANUP_BODY_BINARYMIME) == 0)
        return CLEANUP_ENC_BINARY;
    return NULL;
}

/* cleanup_req_sender - the envelope sender and the MAIL FROM parameters */
static int cleanup_req_sender(CLEANUP_STATE *st, const ATTR_MSG *m)
{
    const char *addr = attr_msg_get_str(m, CLEANUP_ATTR_ADDRESS);
    const char *ret_text = attr_msg_get_str(m, CLEANUP_ATTR_RET);
    const char *envid = attr_msg_get_str(m, CLEANUP_ATTR_ENVID);
    const char *body = attr_msg_get_str(m, CLEANUP_ATTR_BODY);
    const char *encoding = NULL;
    unsigned long long utf8 = 0;
    int ret = cleanup_dsn_ret(ret_text);
    int err;

    if (st->phase != CLEANUP_PH_ENVELOPE) {
        cleanup_proto_error(st, "sender request twice or after recipients or content");
        return CLEANUP_GO_ON;
    }
    st->phase = CLEANUP_PH_RCPT;
    if (addr == NULL || ret < 0 ||
        (attr_msg_get_unum(m, CLEANUP_ATTR_SMTPUTF8_REQ, &utf8) < 0 && errno != ENOENT) ||
        (body != NULL && (encoding = cleanup_body_encoding(body)) == NULL)) {
        cleanup_proto_error(st, "malformed sender request");
        return CLEANUP_GO_ON;
    }
    st->sender = mystrdup(addr);
    if (st->writer == NULL)
        return CLEANUP_GO_ON;
    if ((err = qfile_writer_sender(st->writer, addr)) != 0) {
        if (err != QFILE_ERR_INVAL)
            cleanup_write_error(st, err);
        else
            cleanup_proto_error(st, "sender address the queue file cannot hold");
        return CLEANUP_GO_ON;
    }
    if ((ret != QFILE_RET_NONE || (envid && *envid)) &&
        (err = qfile_writer_dsn(st->writer, ret, envid)) != 0) {
        if (err != QFILE_ERR_INVAL)
            cleanup_write_error(st, err);
        else
            cleanup_proto_error(st, "DSN ENVID the queue file cannot hold");
        return CLEANUP_GO_ON;
    }
    if (encoding) {
        st->have_encoding = 1;
        st->binary = strcmp(encoding, CLEANUP_ENC_BINARY) == 0;
        cleanup_store_attr(st, CLEANUP_QATTR_ENCODING, encoding, 0);
    }
    if (utf8)
        cleanup_store_attr(st, CLEANUP_QATTR_SMTPUTF8, "1", 0);
    return CLEANUP_GO_ON;
}

/* cleanup_req_rcpt - one envelope recipient */
static int cleanup_req_rcpt(CLEANUP_STATE *st, const ATTR_MSG *m)
{
    const char *addr = attr_msg_get_str(m, CLEANUP_ATTR_ADDRESS);
    const char *orcpt = attr_msg_get_str(m, CLEANUP_ATTR_ORCPT);
    unsigned long long notify = 0;

    if (st->phase != CLEANUP_PH_RCPT) {
        cleanup_proto_error(st, "recipient before the sender or after the content");
        return CLEANUP_GO_ON;
    }
    if (addr == NULL || *addr == 0 ||
        (attr_msg_get_unum(m, CLEANUP_ATTR_NOTIFY, &notify) < 0 && errno != ENOENT) ||
        notify > CLEANUP_NOTIFY_MAX) {
        cleanup_proto_error(st, "malformed recipient request");
        return CLEANUP_GO_ON;
    }
    cleanup_add_rcpt(st, addr, orcpt, (int)notify);
    return CLEANUP_GO_ON;
}

/* cleanup_req_data - a piece of the message content */
static int cleanup_req_data(CLEANUP_STATE *st, const ATTR_MSG *m)
{
    size_t len;
    const char *data = attr_msg_get_bin(m, CLEANUP_ATTR_DATA, &len);

    if (st->phase < CLEANUP_PH_RCPT) {
        cleanup_proto_error(st, "content before the sender");
        return CLEANUP_GO_ON;
    }
    st->phase = CLEANUP_PH_DATA;
    if (data == NULL) {
        cleanup_proto_error(st, "data request without data");
        return CLEANUP_GO_ON;
    }
    cleanup_content_data(st, data, len);
    return CLEANUP_GO_ON;
}

/* cleanup_finish - content end, checks, commit; the final reply */
static int cleanup_finish(CLEANUP_STATE *st)
{
    int msg_class, priority, err;
    char id[QUEUE_ID_SIZE];
    const char *queue;

    if (st->phase < CLEANUP_PH_RCPT)
        cleanup_proto_error(st, "end of message before the sender");
    else
        cleanup_content_end(st);
    if (st->err_status == 0 && (st->flags & CLEANUP_FLAG_EXTRACT_RCPT))
        cleanup_add_extracted(st);
    if (st->err_status == 0 && st->rcpt_count == 0)
        cleanup_fail(st, 550, "5.1.0", "Error: no recipients specified");
    if (st->err_status == 0 && st->writer) {
        cleanup_decide_class(st, &msg_class, &priority);
        if ((err = qfile_writer_set_class(st->writer, msg_class, priority)) != 0)
            msg_panic("%s: class %d priority %d refused: %s", st->queue_id, msg_class, priority,
                      qfile_writer_why(st->writer));
        if ((err = qfile_writer_commit(st->writer, id)) != 0)
            cleanup_write_error(st, err);
    }
    if (st->err_status != 0 || st->writer == NULL) {
        if (st->err_status == 0) /* cannot happen: a lost writer always records why */
            cleanup_fail(st, 451, "4.3.0", "Error: queue file write error");
        cleanup_reply(st, st->err_status, st->err_dsn, vstr_str(st->err_reason));
        return CLEANUP_CLOSE;
    }
    qfile_writer_free(st->writer);
    st->writer = NULL;
    queue = qfile_class_queue(msg_class);
    vstr_sprintf(st->buf, "Ok: queued as %s", st->queue_id);
    cleanup_reply(st, 0, "2.0.0", vstr_str(st->buf));
    cleanup_wake_qmgr(queue, st->queue_id);
    return CLEANUP_CLOSE;
}

/* cleanup_dispatch - one request */
static int cleanup_dispatch(CLEANUP_STATE *st, const ATTR_MSG *m)
{
    const char *req = attr_msg_get_str(m, CLEANUP_ATTR_REQ);

    if (st->phase == CLEANUP_PH_NEW) {
        if (req == NULL || strcmp(req, CLEANUP_REQ_OPEN) != 0) {
            msg_warn("protocol error: the first request is not \"%s\"", CLEANUP_REQ_OPEN);
            return CLEANUP_CLOSE;
        }
        return cleanup_req_open(st, m);
    }
    if (req == NULL) {
        cleanup_proto_error(st, "request without a name");
        return CLEANUP_GO_ON;
    }
    if (strcmp(req, CLEANUP_REQ_DATA) == 0)
        return cleanup_req_data(st, m);
    if (strcmp(req, CLEANUP_REQ_RCPT) == 0)
        return cleanup_req_rcpt(st, m);
    if (strcmp(req, CLEANUP_REQ_ATTR) == 0)
        return cleanup_req_attr(st, m);
    if (strcmp(req, CLEANUP_REQ_SENDER) == 0)
        return cleanup_req_sender(st, m);
    if (strcmp(req, CLEANUP_REQ_END) == 0)
        return cleanup_finish(st);
    if (strcmp(req, CLEANUP_REQ_OPEN) == 0)
        cleanup_proto_error(st, "second open request");
    else
        cleanup_proto_error(st, "unknown request");
    return CLEANUP_GO_ON;
}

/* cleanup_service - serve one client connection: one message */
void cleanup_service(int fd)
{
    static const ATTR_LIMITS lim = {
        .name_max = ATTR_NAME_MAX,
        .value_max = CLEANUP_DATA_MAX,
        .msg_max = CLEANUP_REQ_MSG_MAX,
        .count_max = CLEANUP_REQ_COUNT_MAX,
    };
    ATTR_STREAM *s = attr_stream_open(fd, cleanup_conf.ipc_timeout_ms);
    CLEANUP_STATE *st = cleanup_state_new(s);
    int done = CLEANUP_GO_ON;

    if (attr_stream_set_limits(s, &lim) < 0)
        msg_panic("cleanup: bad stream limits");
    while (done == CLEANUP_GO_ON) {
        /* PRINTABLE: no control characters in any string: they end up in
           the queue file's envelope, in log lines and in headers. */
        ATTR_MSG *m = attr_msg_read(s, ATTR_FLAG_PRINTABLE);

        if (m == NULL) {
            if (errno == EBADMSG && st->phase != CLEANUP_PH_NEW) {
                /* Consumed whole: answer it at the end like any bad request. */
                cleanup_proto_error(st, attr_stream_why(s));
                continue;
            }
            if (errno == ENODATA) {
                /* Normal when smtpd's client gives up (RSET, QUIT, every
                   recipient rejected): smtpd logs that side. */
                if (msg_verbose)
                    msg_info("%s: client closed the connection before the end of the message",
                             st->queue_id[0] ? st->queue_id : "NOQUEUE");
            } else {
                msg_warn("%s: read request: %s", st->queue_id[0] ? st->queue_id : "NOQUEUE",
                         attr_stream_why(s));
            }
            break;
        }
        done = cleanup_dispatch(st, m);
        attr_msg_free(m);
    }
    /* Frees (and so removes) a queue file that was not committed. */
    cleanup_state_free(st);
    attr_stream_free(s);
}
