/*
 * smtpd_data - message content for DATA and BDAT: where the message ends,
 * what cleanup receives, and the reply at the end.
 *
 * The content state machine is lib/mail/smtp_data: only CRLF "." CRLF ends
 * DATA; LF.LF, CR.CR, LF.CRLF, CRLF.LF and friends are content (with
 * smtpd_forbid_bare_newline = reject the message is then refused at its
 * end). Dot-stuffing is undone there. Each content line goes to cleanup as
 * it arrives (with an LF line end, as docs/protocols.md wants), preceded by
 * our Received: header, so smtpd never holds more than one line piece and
 * the bounded cleanup backlog of a message. When that backlog passes
 * SMTPD_CLEANUP_HIGH the session stops reading from the client until
 * cleanup has taken most of it.
 *
 * The reply comes only after cleanup answered "end": "250 2.0.0 Ok: queued
 * as ID" means the queue file is committed. A message refused by the
 * content rules (size, bare newlines) is never committed: the cleanup
 * connection is closed, which makes cleanup drop the file.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mail/mail_date.h"
#include "util/msg.h"
#include "util/mymalloc.h"

#include "smtpd.h"
#include "smtpd_sasl.h"
#include "smtpd_tls.h"

/* smtpd_data_line - SMTP_DATA_LINE_FN: one content line (piece) to cleanup */
static void smtpd_data_line(void *context, const char *buf, size_t len, int flags)
{
    SMTPD_SESSION *s = context;
    SMTPD_CLEANUP *c = s->txn.cleanup;

    if (c == NULL || s->txn.failed)
        return;
    smtpd_cleanup_data(c, buf, len);
    if (!(flags & (SMTP_DATA_PIECE_CONT | SMTP_DATA_PIECE_NOEOL)))
        smtpd_cleanup_data(c, "\n", 1);
}

/* smtpd_data_received - the Received: header, in Postfix's shape (RFC 5321 4.4) */
static void smtpd_data_received(SMTPD_SESSION *s)
{
    SMTPD_TXN *txn = &s->txn;
    VSTR *hdr = vstr_alloc(512);
    VSTR *date = vstr_alloc(MAIL_DATE_MAX);
    VSTR *rcpt = vstr_alloc(64);

    mail_date(time(NULL), date);
    vstr_sprintf(hdr, "Received: from %s (%s [%s%s])\n", s->helo_name ? s->helo_name : s->peer.name,
                 s->peer.name, s->peer.family == AF_INET6 ? "IPv6:" : "", s->peer.addr);
    /* Postfix's TLS comments: protocol, cipher, key exchange (RFC 5321 4.4 "TCP-info"). */
    smtpd_tls_received(s, hdr);
    /* smtpd_sasl_authenticated_header: who submitted it (off by default: privacy). */
    smtpd_sasl_received(s, hdr);
    /* With several recipients the date follows the id (no "for" clause). */
    vstr_sprintf_append(hdr, "\tby %s (%s) with %s id %s%s\n", s->cfg->myhostname,
                        s->cfg->mail_name, smtpd_protocol_name(s),
                        txn->queue_id, txn->rcpt_count == 1 ? "" : ";");
    if (txn->rcpt_count == 1 && txn->first_rcpt) {
        smtp_addr_external(rcpt, txn->first_rcpt, strlen(txn->first_rcpt));
        vstr_sprintf_append(hdr, "\tfor <%s>; %s\n", vstr_str(rcpt), vstr_str(date));
    } else {
        vstr_sprintf_append(hdr, "\t%s\n", vstr_str(date));
    }
    smtpd_cleanup_data(txn->cleanup, vstr_str(hdr), vstr_len(hdr));
    vstr_free(hdr);
    vstr_free(date);
    vstr_free(rcpt);
}

/* smtpd_data_begin - the content of the transaction starts (DATA, or the first BDAT) */
void smtpd_data_begin(SMTPD_SESSION *s, int mode)
{
    SMTPD_CONFIG *cfg = s->cfg;
    SMTP_DATA_OPTS opts = {
        .line_max = (size_t)cfg->line_length_limit,
        .size_limit = cfg->message_size_limit,
        .flags = 0,
    };

    /* "no" and "normalize" both normalise: LF.LF never ends a message here. */
    opts.bare = (cfg->bare_newline == SMTPD_BARE_REJECT && !s->peer.bare_exempt)
                    ? SMTP_DATA_BARE_REJECT
                    : SMTP_DATA_BARE_NORMALIZE;
    s->txn.data = smtp_data_create(&opts, smtpd_data_line, s);
    smtp_data_start(s->txn.data, mode);
    s->txn.bdat = mode == SMTP_DATA_MODE_BDAT;
    smtpd_data_received(s);
    if (mode == SMTP_DATA_MODE_DATA)
        s->state = SMTPD_ST_DATA;
}

/* smtpd_data_abort - the message is refused: log, answer, forget the transaction */
static void smtpd_data_abort(SMTPD_SESSION *s, int code, const char *dsn, const char *text, int log)
{
    if (log)
        smtpd_log_reject(s, "END-OF-MESSAGE", code, dsn, text, s->txn.first_rcpt);
    smtpd_reply(s, code, dsn, "%s", text);
    smtpd_txn_reset(s);
    s->state = smtpd_state_idle(s);
    smtpd_cmd_done(s, -1);
}

/* smtpd_data_refusal - the reply for a message the content rules refused; 0 or -1 */
static int smtpd_data_refusal(SMTPD_SESSION *s, SMTP_REPLY *r)
{
    if (smtp_data_reply(s->txn.data, r) < 0)
        return -1;
    /* smtpd_forbid_bare_newline_reject_code decides the code, as for commands
       (smtp_data answers bare CR and bare LF, and only those, with 5.5.2). */
    if (r->dsn && strcmp(r->dsn, "5.5.2") == 0) {
        r->code = s->cfg->bare_newline_code;
        r->dsn = r->code >= 500 ? "5.5.2" : "4.5.2";
    }
    return 0;
}

/* smtpd_data_end - the last octet of the message arrived */
static void smtpd_data_end(SMTPD_SESSION *s)
{
    SMTPD_TXN *txn = &s->txn;
    SMTP_REPLY r;

    if (smtpd_data_refusal(s, &r) == 0) {
        if (smtp_data_errors(txn->data) & (SMTP_DATA_ERR_BARE_LF | SMTP_DATA_ERR_BARE_CR))
            msg_info("%s: bare %s received from %s", txn->queue_id,
                     (smtp_data_errors(txn->data) & SMTP_DATA_ERR_BARE_LF) ? "<LF>" : "<CR>",
                     s->peer.namaddr);
        smtpd_data_abort(s, r.code, r.dsn, r.text, 1);
        return;
    }
    if (txn->failed || txn->cleanup == NULL) {
        smtpd_data_abort(s, 451, "4.3.0", "Error: queue file write error", 0);
        return;
    }
    /* The reply waits for the commit: nothing else happens in this session meanwhile. */
    smtpd_cleanup_end(txn->cleanup);
    txn->wait = SMTPD_WAIT_END;
    smtpd_block(s, SMTPD_BLOCK_CLEANUP);
}

/* smtpd_data_chunk_end - a BDAT chunk other than the last one is complete */
static void smtpd_data_chunk_end(SMTPD_SESSION *s)
{
    SMTPD_TXN *txn = &s->txn;
    SMTP_REPLY r;

    /* A message already refused (size, bare newline) is answered now, not later. */
    if (smtpd_data_refusal(s, &r) == 0) {
        smtpd_data_abort(s, r.code, r.dsn, r.text, 1);
        return;
    }
    s->state = SMTPD_ST_CHUNKING;
    smtpd_reply(s, 250, "2.0.0", "Ok: %llu bytes", (unsigned long long)txn->bdat_chunk);
    smtpd_cmd_done(s, 0);
}

/* smtpd_data_backpressure - stop reading while cleanup has too much queued */
static void smtpd_data_backpressure(SMTPD_SESSION *s)
{
    SMTPD_CLEANUP *c = s->txn.cleanup;

    if (c && !s->txn.failed && smtpd_cleanup_backlog(c) > SMTPD_CLEANUP_HIGH) {
        smtpd_cleanup_notify_drain(c);
        smtpd_block(s, SMTPD_BLOCK_DRAIN);
    }
}

/* smtpd_data_input - content octets for DATA, BDAT or a skipped chunk; 1 if progress */
int smtpd_data_input(SMTPD_SESSION *s, const char *buf, size_t len, size_t *used)
{
    size_t dummy;
    int r;

    if (used == NULL)
        used = &dummy;
    *used = 0;
    switch (s->state) {
    case SMTPD_ST_SKIP:
        if (s->skip_left > 0 && len > 0) {
            *used = s->skip_left < len ? (size_t)s->skip_left : len;
            s->skip_left -= *used;
        }
        if (s->skip_left > 0)
            return *used > 0;
        s->state = s->skip_return;
        return 1;
    case SMTPD_ST_BDAT:
        if (len == 0 && smtp_data_chunk_left(s->txn.data) > 0)
            return 0;
        break;
    case SMTPD_ST_DATA:
        if (len == 0)
            return 0;
        break;
    default: msg_panic("smtpd_data_input: state %s", smtpd_state_name(s->state));
    }
    r = smtp_data_feed(s->txn.data, buf, len, used);
    switch (r) {
    case SMTP_DATA_MORE: smtpd_data_backpressure(s); return 1;
    case SMTP_DATA_CHUNK_END:
        smtpd_data_backpressure(s);
        smtpd_data_chunk_end(s);
        return 1;
    case SMTP_DATA_END: smtpd_data_end(s); return 1;
    }
    msg_panic("smtpd_data_input: smtp_data_feed returned %d", r);
}

/* smtpd_data_done - cleanup answered "end": the reply the client waited for */
void smtpd_data_done(SMTPD_SESSION *s)
{
    SMTPD_TXN *txn = &s->txn;
    const SMTP_REPLY *r = smtpd_cleanup_reply(txn->cleanup);

    txn->wait = SMTPD_WAIT_NONE;
    if (r->code != 250) {
        smtpd_data_abort(s, r->code, r->dsn, r->text, 1);
        return;
    }
    if (txn->bdat)
        smtpd_reply(s, 250, "2.0.0", "Ok: %llu bytes queued as %s",
                    (unsigned long long)txn->bdat_total, txn->queue_id);
    else
        smtpd_reply(s, 250, "2.0.0", "Ok: queued as %s", txn->queue_id);
    /* "without delivering mail": a client that got mail through starts over. */
    s->error_count = 0;
    s->junk_count = 0;
    smtpd_txn_reset(s);
    s->state = smtpd_state_idle(s);
    smtpd_cmd_done(s, 0);
}

/* smtpd_data_cleanup_failed - cleanup broke while we waited for the commit */
void smtpd_data_cleanup_failed(SMTPD_SESSION *s)
{
    s->txn.wait = SMTPD_WAIT_NONE;
    smtpd_data_abort(s, 451, "4.3.0", "Error: queue file write error", 0);
}
