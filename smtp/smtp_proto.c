/*
 * smtp_proto - the SMTP/LMTP dialogue of the delivery agent: greeting,
 * EHLO with HELO fallback (LHLO for LMTP), STARTTLS by policy, AUTH, then
 * MAIL, RCPT and DATA (pipelined when the server offers PIPELINING,
 * RFC 2920), the message content with CR LF line ends and dot-stuffing
 * (RFC 5321 4.5.2), and per-recipient results.
 *
 * Failure rules, as in Postfix: a 5xx reply bounces the recipients it
 * concerns at once; a 4xx reply, a timeout, a lost connection or a
 * malformed reply leaves them for the next server, and defers them only
 * at the last server. Every reply is read with the stage's timeout as a
 * deadline for the whole reply.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mail/qfile.h"
#include "mail/smtp_param.h"
#include "mail/smtp_resp.h"
#include "smtp.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define SMTP_DATA_FLUSH 65536 /* octets of content queued before a write */

/* Commands of a transaction, for matching replies to what they answer. */
enum smtp_txn_kind { SMTP_TXN_MAIL, SMTP_TXN_RCPT, SMTP_TXN_DATA };

/* Content writer state. */
typedef struct SMTP_DATA_CTX {
    SMTP_STREAM *stream;
    long col;      /* octets on the current output line */
    int open_line; /* the last piece had no line end */
    int io;        /* SMTP_IO_* of a failed flush */
} SMTP_DATA_CTX;

/* smtp_resp_reason - Postfix's "host X said: ... (in reply to CMD command)" */
void smtp_resp_reason(VSTR *out, const SMTP_SESSION *sess, const SMTP_RESP *resp, const char *cmd)
{
    vstr_sprintf(out, "host %s said: %.*s", sess->namaddr, SMTP_REASON_MAX / 2,
                 vstr_str(resp->text));
    if (cmd != NULL)
        vstr_sprintf_append(out, " (in reply to %s command)", cmd);
}

/* smtp_io_fail - a session-level I/O failure while doing something */
static void smtp_io_fail(SMTP_REQ *req, SMTP_SESSION *sess, int io, const char *doing)
{
    sess->broken = 1;
    switch (io) {
    case SMTP_IO_TIMEOUT:
        smtp_soft_error(req, 450, "4.4.2", sess->relay, "conversation with %s timed out while %s",
                        sess->namaddr, doing);
        break;
    case SMTP_IO_PROTO:
        smtp_soft_error(req, 450, "4.5.0", sess->relay,
                        "host %s sent a malformed reply while %s: %s", sess->namaddr, doing,
                        vstr_str(sess->stream->why));
        break;
    default:
        smtp_soft_error(req, 450, "4.4.2", sess->relay, "lost connection with %s while %s",
                        sess->namaddr, doing);
        break;
    }
}

/* smtp_chat - send one command line, read its reply */
static int smtp_chat(SMTP_SESSION *sess, SMTP_RESP *resp, int timeout, const char *fmt, ...)
    MSG_FMT(4, 5);

static int smtp_chat(SMTP_SESSION *sess, SMTP_RESP *resp, int timeout, const char *fmt, ...)
{
    VSTR *cmd = vstr_alloc(128);
    va_list ap;
    int io;

    va_start(ap, fmt);
    vstr_vsprintf_append(cmd, fmt, ap);
    va_end(ap);
    vstr_cat(cmd, "\r\n");
    smtp_stream_put(sess->stream, vstr_str(cmd), vstr_len(cmd));
    vstr_free(cmd);
    if ((io = smtp_stream_flush(sess->stream, timeout)) != SMTP_IO_OK)
        return io;
    return smtp_stream_read_resp(sess->stream, resp, smtp_deadline(timeout));
}

/* smtp_helo - EHLO (HELO after a 5xx), or LHLO; SMTP_SESS_* */
static int smtp_helo(SMTP_REQ *req, SMTP_SESSION *sess, SMTP_RESP *resp, int esmtp)
{
    VSTR *reason = vstr_alloc(128);
    const char *cmd = smtp_conf.lmtp ? "LHLO" : esmtp ? "EHLO" : "HELO";
    int io, ret = SMTP_SESS_OK;

    memset(&sess->ehlo, 0, sizeof(sess->ehlo));
    io = smtp_chat(sess, resp, smtp_conf.helo_timeout, "%s %s", cmd, smtp_conf.helo_name);
    if (io == SMTP_IO_OK && resp->code / 100 == 5 && !smtp_conf.lmtp && esmtp) {
        /* RFC 5321 3.2: a server that does not know EHLO gets HELO. */
        cmd = "HELO";
        io = smtp_chat(sess, resp, smtp_conf.helo_timeout, "HELO %s", smtp_conf.helo_name);
    }
    if (io != SMTP_IO_OK) {
        smtp_io_fail(req, sess, io, "performing the EHLO handshake");
        ret = SMTP_SESS_SOFT;
    } else if (resp->code / 100 == 2) {
        if (strcmp(cmd, "HELO") != 0)
            smtp_resp_ehlo(resp, smtp_conf.discard_ehlo, &sess->ehlo);
    } else {
        smtp_resp_reason(reason, sess, resp, cmd);
        if (resp->code / 100 == 5) {
            smtp_fail_todo(req, resp->code, resp->dsn, sess->relay, vstr_str(reason));
            ret = SMTP_SESS_HARD;
        } else {
            smtp_soft_error(req, resp->code, resp->dsn, sess->relay, "%s", vstr_str(reason));
            ret = SMTP_SESS_SOFT;
        }
        if (resp->code == 421)
            sess->broken = 1;
    }
    vstr_free(reason);
    return ret;
}

/* smtp_starttls - STARTTLS and the handshake; SMTP_SESS_* */
static int smtp_starttls(SMTP_REQ *req, SMTP_SESSION *sess, SMTP_RESP *resp)
{
    VSTR *why = vstr_alloc(128);
    char dsn[SMTP_DSN_MAX];
    int io, ret = SMTP_SESS_OK;

    io = smtp_chat(sess, resp, smtp_conf.starttls_timeout, "STARTTLS");
    if (io != SMTP_IO_OK) {
        smtp_io_fail(req, sess, io, "sending STARTTLS");
        ret = SMTP_SESS_SOFT;
    } else if (resp->code != 220) {
        if (req->tls.level == SMTP_TLS_MAY) {
            /* Opportunistic: go on in plaintext on this connection. */
            ret = SMTP_SESS_OK;
        } else {
            smtp_resp_reason(why, sess, resp, "STARTTLS");
            smtp_soft_error(req, 450, "4.7.5", sess->relay, "TLS is required, but %s",
                            vstr_str(why));
            ret = SMTP_SESS_SOFT;
        }
        goto done;
    } else if (smtp_stream_pending(sess->stream) > 0) {
        /* Plaintext that arrived after the 220 would be taken as if it had
           come over TLS (the STARTTLS injection attack, CVE-2011-0411's
           client-side twin): never use such a connection. */
        sess->broken = 1;
        smtp_soft_error(req, 450, "4.7.5", sess->relay,
                        "host %s sent data after its reply to STARTTLS", sess->namaddr);
        ret = SMTP_SESS_SOFT;
    } else if (smtp_tls_start(req, sess, dsn, sizeof(dsn), why) < 0) {
        sess->broken = 1;
        if (req->tls.level == SMTP_TLS_MAY) {
            msg_info("%s: TLS handshake with %s failed (%s): trying again in plaintext",
                     req->queue_id, sess->namaddr, vstr_str(why));
            ret = SMTP_SESS_PLAIN;
        } else {
            smtp_soft_error(req, 450, dsn, sess->relay, "%s", vstr_str(why));
            ret = SMTP_SESS_SOFT;
        }
    } else {
        sess->tls = 1;
        /* RFC 3207 4.2: forget what the server said before; ask again. */
        ret = smtp_helo(req, sess, resp, 1);
    }
done:
    vstr_free(why);
    return ret;
}

/* smtp_session_setup - from the greeting to a session ready for MAIL */
int smtp_session_setup(SMTP_REQ *req, SMTP_SESSION *sess, int allow_tls)
{
    SMTP_RESP *resp = smtp_resp_alloc();
    VSTR *reason = vstr_alloc(128);
    int io, ret, esmtp;

    io = smtp_stream_read_resp(sess->stream, resp, smtp_deadline(smtp_conf.helo_timeout));
    if (io != SMTP_IO_OK) {
        smtp_io_fail(req, sess, io, "receiving the initial server greeting");
        ret = SMTP_SESS_SOFT;
        goto done;
    }
    if (resp->code / 100 != 2) {
        /* smtp_skip_5xx_greeting: a 5xx greeting says "not this server". */
        int code = resp->code;
        char dsn[SMTP_DSN_MAX];

        snprintf(dsn, sizeof(dsn), "%s", resp->dsn);
        if (code / 100 == 5 && smtp_conf.skip_5xx_greeting) {
            code = 400 + code % 100;
            dsn[0] = '4';
        }
        vstr_sprintf(reason, "host %s refused to talk to me: %.*s", sess->namaddr,
                     SMTP_REASON_MAX / 2, vstr_str(resp->text));
        sess->broken = 1;
        if (code / 100 == 5) {
            smtp_fail_todo(req, code, dsn, sess->relay, vstr_str(reason));
            ret = SMTP_SESS_HARD;
        } else {
            smtp_soft_error(req, code, dsn, sess->relay, "%s", vstr_str(reason));
            ret = SMTP_SESS_SOFT;
        }
        goto done;
    }
    esmtp = smtp_conf.always_send_ehlo || strstr(vstr_str(resp->text), "ESMTP") != NULL;
    if ((ret = smtp_helo(req, sess, resp, esmtp)) != SMTP_SESS_OK)
        goto done;
    if (req->tls.level >= SMTP_TLS_ENCRYPT &&
        (!allow_tls || !(sess->ehlo.features & SMTP_FEATURE_STARTTLS))) {
        smtp_soft_error(req, 450, "4.7.4", sess->relay,
                        "TLS is required, but was not offered by host %s", sess->namaddr);
        ret = SMTP_SESS_SOFT;
        goto done;
    }
    if (allow_tls && req->tls.level >= SMTP_TLS_MAY &&
        (sess->ehlo.features & SMTP_FEATURE_STARTTLS) && sess->addr[0] != '/') {
        if ((ret = smtp_starttls(req, sess, resp)) != SMTP_SESS_OK)
            goto done;
    }
    ret = smtp_sasl_login(req, sess);
done:
    smtp_resp_free(resp);
    vstr_free(reason);
    return ret;
}

/* smtp_session_reset - RSET before a reused session's next transaction */
int smtp_session_reset(SMTP_SESSION *sess)
{
    SMTP_RESP *resp = smtp_resp_alloc();
    int io = smtp_chat(sess, resp, smtp_conf.rset_timeout, "RSET");
    int ok = io == SMTP_IO_OK && resp->code / 100 == 2;

    if (!ok)
        sess->broken = 1;
    smtp_resp_free(resp);
    return ok ? 0 : -1;
}

/* smtp_quote_addr - an address as RFC 5321 4.1.2 wants it in a path:
   the local part quoted when it is not a dot-atom */
static void smtp_quote_addr(VSTR *out, const char *addr)
{
    const char *at = strrchr(addr, '@');
    size_t llen = at ? (size_t)(at - addr) : strlen(addr);
    int atom = llen > 0 && addr[0] != '.' && addr[llen - 1] != '.';

    for (size_t i = 0; i < llen && atom; i++) {
        unsigned char ch = (unsigned char)addr[i];

        if (ch == '.' ? addr[i + 1] == '.'
                      : !(ch >= 0x80 || strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL ||
                          (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z')))
            atom = 0;
    }
    if (*addr == 0)
        return;
    if (atom || llen == 0) {
        vstr_cat(out, addr);
        return;
    }
    vstr_addch(out, '"');
    for (size_t i = 0; i < llen; i++) {
        if (addr[i] == '"' || addr[i] == '\\')
            vstr_addch(out, '\\');
        vstr_addch(out, addr[i]);
    }
    vstr_addch(out, '"');
    if (at)
        vstr_cat(out, at);
}

/* smtp_mail_cmd - MAIL FROM with the parameters the server takes */
static void smtp_mail_cmd(SMTP_REQ *req, SMTP_SESSION *sess, VSTR *cmd)
{
    unsigned feat = sess->ehlo.features;

    vstr_cpy(cmd, "MAIL FROM:<");
    smtp_quote_addr(cmd, req->sender);
    vstr_addch(cmd, '>');
    if (feat & SMTP_FEATURE_SIZE)
        vstr_sprintf_append(cmd, " SIZE=%llu", (unsigned long long)req->size);
    if (req->eightbit && (feat & SMTP_FEATURE_8BITMIME))
        vstr_cat(cmd, " BODY=8BITMIME");
    if (req->smtputf8)
        vstr_cat(cmd, " SMTPUTF8");
    if (feat & SMTP_FEATURE_DSN) {
        if (strcasecmp(req->ret, "FULL") == 0 || strcasecmp(req->ret, "HDRS") == 0)
            vstr_sprintf_append(cmd, " RET=%s",
                                strcasecmp(req->ret, "FULL") == 0 ? "FULL" : "HDRS");
        if (*req->envid) {
            vstr_cat(cmd, " ENVID=");
            smtp_param_xtext_encode(cmd, req->envid, strlen(req->envid));
        }
    }
}

/* smtp_rcpt_cmd - RCPT TO with NOTIFY and ORCPT for a DSN server */
static void smtp_rcpt_cmd(SMTP_SESSION *sess, const SMTP_RCPT *rcpt, VSTR *cmd)
{
    vstr_cpy(cmd, "RCPT TO:<");
    smtp_quote_addr(cmd, rcpt->addr);
    vstr_addch(cmd, '>');
    if (!(sess->ehlo.features & SMTP_FEATURE_DSN))
        return;
    if (rcpt->notify & QFILE_NOTIFY_NEVER) {
        vstr_cat(cmd, " NOTIFY=NEVER");
    } else if (rcpt->notify) {
        const char *sep = " NOTIFY=";

        if (rcpt->notify & QFILE_NOTIFY_SUCCESS)
            vstr_cat(cmd, sep), sep = ",", vstr_cat(cmd, "SUCCESS");
        if (rcpt->notify & QFILE_NOTIFY_FAILURE)
            vstr_cat(cmd, sep), sep = ",", vstr_cat(cmd, "FAILURE");
        if (rcpt->notify & QFILE_NOTIFY_DELAY)
            vstr_cat(cmd, sep), vstr_cat(cmd, "DELAY");
    }
    if (*rcpt->dsn_orcpt) {
        const char *semi = strchr(rcpt->dsn_orcpt, ';');

        if (semi != NULL && semi > rcpt->dsn_orcpt && semi[1] != 0) {
            size_t tlen = (size_t)(semi - rcpt->dsn_orcpt);

            vstr_cat(cmd, " ORCPT=");
            vstr_ncat(cmd, rcpt->dsn_orcpt, tlen);
            vstr_addch(cmd, ';');
            if (tlen == 5 && strncasecmp(rcpt->dsn_orcpt, "utf-8", 5) == 0)
                smtp_param_utf8_addr_encode(cmd, semi + 1, strlen(semi + 1), 0);
            else
                smtp_param_xtext_encode(cmd, semi + 1, strlen(semi + 1));
        }
    }
}

/* smtp_rcpt_fail - a 4xx/5xx for recipient i */
static void smtp_rcpt_fail(SMTP_REQ *req, SMTP_SESSION *sess, size_t i, const SMTP_RESP *resp,
                           const char *cmd, int final)
{
    VSTR *reason = vstr_alloc(128);

    smtp_resp_reason(reason, sess, resp, cmd);
    if (resp->code / 100 == 5 || final)
        smtp_rcpt_done(req, i, resp->code, resp->dsn, sess->relay, vstr_str(reason), sess);
    else
        smtp_soft_error(req, resp->code, resp->dsn, sess->relay, "%s", vstr_str(reason));
    vstr_free(reason);
}

/* smtp_data_piece - one piece of content, dot-stuffed, CR LF, folded */
static int smtp_data_piece(void *ctx, const char *data, size_t len, int flags)
{
    SMTP_DATA_CTX *dc = ctx;
    long limit = smtp_conf.line_length_limit;

    if (flags & QFILE_BOL) {
        dc->col = 0;
        /* RFC 5321 4.5.2: a line starting with "." gets another one. */
        if (len > 0 && data[0] == '.') {
            smtp_stream_put(dc->stream, ".", 1);
            dc->col++;
        }
    }
    while (len > 0) {
        size_t n = len;

        /* RFC 5322 2.1.1: lines of at most 998 octets; longer ones are
           broken as Postfix does, with CR LF and a space. */
        if (limit > 0) {
            if (dc->col >= limit) {
                smtp_stream_put(dc->stream, "\r\n ", 3);
                dc->col = 1;
            }
            if ((long)n > limit - dc->col)
                n = (size_t)(limit - dc->col);
        }
        smtp_stream_put(dc->stream, data, n);
        dc->col += (long)n;
        data += n;
        len -= n;
    }
    dc->open_line = !(flags & QFILE_EOL);
    if (flags & QFILE_EOL) {
        smtp_stream_put(dc->stream, "\r\n", 2);
        dc->col = 0;
    }
    if (vstr_len(dc->stream->obuf) >= SMTP_DATA_FLUSH &&
        (dc->io = smtp_stream_flush(dc->stream, smtp_conf.data_xfer_timeout)) != SMTP_IO_OK)
        return 1;
    return 0;
}

/* smtp_send_content - the message, then "."; 0, or -1 (recorded in req) */
static int smtp_send_content(SMTP_REQ *req, SMTP_SESSION *sess)
{
    SMTP_DATA_CTX dc = {.stream = sess->stream, .col = 0, .open_line = 0, .io = SMTP_IO_OK};
    int ret = qfile_content_walk(req->q, smtp_data_piece, &dc);

    if (ret > 0 || dc.io != SMTP_IO_OK) {
        smtp_io_fail(req, sess, dc.io, "sending message body");
        return -1;
    }
    if (ret != 0) {
        /* The queue file is damaged: nothing the server could fix. The
           session is mid-DATA and cannot be used again. */
        sess->broken = 1;
        smtp_soft_error(req, 450, "4.3.0", sess->relay, "error reading the queue file: %s",
                        qfile_why(req->q));
        return -1;
    }
    if (dc.open_line)
        smtp_stream_put(sess->stream, "\r\n", 2);
    smtp_stream_put(sess->stream, ".\r\n", 3);
    if ((dc.io = smtp_stream_flush(sess->stream, smtp_conf.data_xfer_timeout)) != SMTP_IO_OK) {
        smtp_io_fail(req, sess, dc.io, "sending message body");
        return -1;
    }
    return 0;
}

/* smtp_data_done - the reply (SMTP) or replies (LMTP) after "." */
static int smtp_data_done(SMTP_REQ *req, SMTP_SESSION *sess, SMTP_RESP *resp, int final)
{
    for (size_t i = 0; i < req->count; i++) {
        SMTP_RCPT *r = req->rcpt + i;
        int io;

        if (!r->accepted || r->state == SMTP_RCPT_FINAL)
            continue;
        io = smtp_stream_read_resp(sess->stream, resp, smtp_deadline(smtp_conf.data_done_timeout));
        if (io != SMTP_IO_OK) {
            smtp_io_fail(req, sess, io,
                         "sending end of data -- message may be sent more than once");
            return -1;
        }
        if (resp->code == 421)
            sess->broken = 1;
        /* SMTP: one reply for every accepted recipient; LMTP: one each. */
        for (size_t j = i; j < req->count; j++) {
            SMTP_RCPT *rj = req->rcpt + j;

            if (!rj->accepted || rj->state == SMTP_RCPT_FINAL)
                continue;
            rj->accepted = 0;
            if (resp->code / 100 == 2)
                smtp_rcpt_done(req, j, resp->code, resp->dsn, sess->relay, vstr_str(resp->text),
                               sess);
            else
                smtp_rcpt_fail(req, sess, j, resp, "end of DATA", final);
            if (smtp_conf.lmtp)
                break;
        }
    }
    return 0;
}

/* smtp_transaction - one mail transaction on a ready session */
int smtp_transaction(SMTP_REQ *req, SMTP_SESSION *sess, int final)
{
    SMTP_RESP *resp = smtp_resp_alloc();
    VSTR *cmd = vstr_alloc(256);
    size_t *rcpt_of = mycalloc(req->count + 2, sizeof(size_t));
    int *kind = mycalloc(req->count + 2, sizeof(int));
    size_t ncmd = 0, sent = 0, got = 0, accepted = 0;
    int pipelining = (sess->ehlo.features & SMTP_FEATURE_PIPELINING) != 0;
    int mail_ok = 0, mail_failed = 0, ret = 0, io;

    if (req->smtputf8 && !(sess->ehlo.features & SMTP_FEATURE_SMTPUTF8)) {
        /* RFC 6531 3.4: without the extension there is no way to send it. */
        vstr_sprintf(cmd, "SMTPUTF8 is required, but was not offered by host %s", sess->namaddr);
        smtp_fail_todo(req, 550, "5.6.7", sess->relay, vstr_str(cmd));
        goto done;
    }
    if ((sess->ehlo.features & SMTP_FEATURE_SIZE) && sess->ehlo.size > 0 &&
        req->size > sess->ehlo.size) {
        /* RFC 1870: a message bigger than the server takes is not sent. */
        vstr_sprintf(cmd, "message size %llu exceeds size limit %llu of server %s",
                     (unsigned long long)req->size, sess->ehlo.size, sess->namaddr);
        smtp_fail_todo(req, 552, "5.3.4", sess->relay, vstr_str(cmd));
        goto done;
    }
    /* This session's Nth transaction (Postfix's conn_use). */
    sess->use_count++;
    kind[ncmd++] = SMTP_TXN_MAIL;
    for (size_t i = 0; i < req->count; i++) {
        req->rcpt[i].accepted = 0;
        if (req->rcpt[i].state == SMTP_RCPT_TODO) {
            rcpt_of[ncmd] = i;
            kind[ncmd++] = SMTP_TXN_RCPT;
        }
    }
    kind[ncmd++] = SMTP_TXN_DATA;

    while (got < ncmd) {
        /* Send: a batch when pipelining, else the next command alone. */
        size_t batch = 0;

        while (sent < ncmd && (pipelining ? batch < SMTP_PIPE_BATCH : sent == got)) {
            if (!pipelining && ((kind[sent] != SMTP_TXN_MAIL && !mail_ok) ||
                                (kind[sent] == SMTP_TXN_DATA && accepted == 0))) {
                /* Nothing left worth sending: stop the transaction here. */
                ncmd = sent;
                break;
            }
            if (kind[sent] == SMTP_TXN_MAIL)
                smtp_mail_cmd(req, sess, cmd);
            else if (kind[sent] == SMTP_TXN_RCPT)
                smtp_rcpt_cmd(sess, req->rcpt + rcpt_of[sent], cmd);
            else
                vstr_cpy(cmd, "DATA");
            vstr_cat(cmd, "\r\n");
            batch += vstr_len(cmd);
            smtp_stream_put(sess->stream, vstr_str(cmd), vstr_len(cmd));
            sent++;
        }
        if (got >= ncmd)
            break;
        if (batch > 0 &&
            (io = smtp_stream_flush(sess->stream, smtp_conf.mail_timeout)) != SMTP_IO_OK) {
            smtp_io_fail(req, sess, io,
                         kind[got] == SMTP_TXN_MAIL   ? "sending MAIL FROM"
                         : kind[got] == SMTP_TXN_RCPT ? "sending RCPT TO"
                                                      : "sending DATA command");
            ret = -1;
            goto done;
        }
        /* Read the reply to the oldest command not yet answered. */
        io = smtp_stream_read_resp(sess->stream, resp,
                                   smtp_deadline(kind[got] == SMTP_TXN_MAIL ? smtp_conf.mail_timeout
                                                 : kind[got] == SMTP_TXN_RCPT
                                                     ? smtp_conf.rcpt_timeout
                                                     : smtp_conf.data_init_timeout));
        if (io != SMTP_IO_OK) {
            smtp_io_fail(req, sess, io,
                         kind[got] == SMTP_TXN_MAIL   ? "sending MAIL FROM"
                         : kind[got] == SMTP_TXN_RCPT ? "sending RCPT TO"
                                                      : "sending DATA command");
            ret = -1;
            goto done;
        }
        if (resp->code == 421)
            sess->broken = 1;
        switch (kind[got]) {
        case SMTP_TXN_MAIL:
            if (resp->code / 100 == 2) {
                mail_ok = 1;
            } else {
                mail_failed = 1;
                for (size_t i = 0; i < req->count; i++)
                    if (req->rcpt[i].state == SMTP_RCPT_TODO)
                        smtp_rcpt_fail(req, sess, i, resp, "MAIL FROM", final);
            }
            break;
        case SMTP_TXN_RCPT:
            /* After a failed MAIL the RCPT replies say nothing new. */
            if (mail_failed)
                break;
            if (resp->code / 100 == 2) {
                req->rcpt[rcpt_of[got]].accepted = 1;
                accepted++;
            } else {
                smtp_rcpt_fail(req, sess, rcpt_of[got], resp, "RCPT TO", final);
            }
            break;
        case SMTP_TXN_DATA:
            if (resp->code == 354 && (accepted == 0 || mail_failed)) {
                /* A server that wants content without recipients is out of
                   step: sending anything now could deliver an empty message. */
                sess->broken = 1;
                ret = -1;
                goto done;
            }
            if (resp->code == 354) {
                if (smtp_send_content(req, sess) < 0 ||
                    smtp_data_done(req, sess, resp, final) < 0) {
                    ret = -1;
                    goto done;
                }
            } else if (accepted > 0 && !mail_failed) {
                for (size_t i = 0; i < req->count; i++) {
                    if (req->rcpt[i].accepted && req->rcpt[i].state == SMTP_RCPT_TODO) {
                        req->rcpt[i].accepted = 0;
                        smtp_rcpt_fail(req, sess, i, resp, "DATA", final);
                    }
                }
            }
            break;
        }
        got++;
    }
done:
    for (size_t i = 0; i < req->count; i++)
        req->rcpt[i].accepted = 0;
    if (sess->broken)
        ret = -1;
    myfree(rcpt_of);
    myfree(kind);
    vstr_free(cmd);
    smtp_resp_free(resp);
    return ret;
}
