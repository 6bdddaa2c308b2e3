/*
 * sendmail_smtp - stand-alone SMTP mode (sendmail -bs): an SMTP conversation
 * on standard input and output, as programs such as mail user agents and
 * some MTAs' "pipe to sendmail -bs" transports use it.
 *
 * Each message accepted with DATA goes into maildrop/ through postdrop,
 * exactly like one piped into sendmail, so it gets the same trust, the same
 * checks and the same logging; "250 2.0.0 Ok: queued as ID" carries its
 * maildrop id. Postfix runs smtpd for this; Postern keeps the loop here,
 * because smtpd is a network daemon that runs as mail_owner, while this
 * conversation runs as the calling user with no privilege at all.
 *
 * Commands: HELO, EHLO (PIPELINING, SIZE, ENHANCEDSTATUSCODES, 8BITMIME,
 * DSN, SMTPUTF8), MAIL FROM (SIZE, BODY, RET, ENVID, SMTPUTF8), RCPT TO
 * (NOTIFY; ORCPT is checked and not kept), DATA, RSET, NOOP, VRFY (per
 * disable_vrfy_command), QUIT. Paths with or without angle brackets and
 * addresses without a domain are accepted, as for command-line recipients.
 *
 * Line ends: the peer is a local program talking through a pipe, often
 * with LF alone, so LF and CR LF both end a line, and a "." line ends DATA.
 * The SMTP smuggling defence of smtpd protects the boundary between
 * different mail systems on one connection; here the sender could write
 * the same bytes into a file and submit that, so there is nothing to defend.
 *
 * Limits: smtpd_timeout for each read, smtpd_recipient_limit,
 * message_size_limit, smtpd_hard_error_limit, SM_SMTP_LINE_MAX per command.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/qfile.h"
#include "mail/queue_id.h"
#include "mail/smtp_addr.h"
#include "mail/smtp_cmd.h"
#include "mail/smtp_param.h"
#include "sendmail.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/vstr.h"

#define SM_SMTP_LINE_MAX 2048 /* a command line, without its line end */

typedef struct SM_SMTP {
    SM_OPTS *o;
    SM_IN *in;
    VSTR *out;
    const char *host;
    int errors;
    int error_limit;
    size_t rcpt_limit;
    uint64_t size_limit;
    int vrfy_disabled;
    /* The transaction. */
    int have_mail;
    VSTR *sender;
    int body, ret, utf8;
    VSTR *envid;
    ARGV *rcpt;
    int *notify;
    size_t notify_cap;
    SMTP_ADDR *addr;
    SMTP_PARAMS *params;
} SM_SMTP;

/* sm_smtp_send - one reply; a peer that went away ends the session */
static void sm_smtp_send(SM_SMTP *s, int code, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void sm_smtp_send(SM_SMTP *s, int code, const char *dsn, const char *fmt, ...)
{
    VSTR *text = vstr_alloc(100);
    va_list ap;

    va_start(ap, fmt);
    vstr_vsprintf_append(text, fmt, ap);
    va_end(ap);
    if (smtp_cmd_reply_format(s->out, code, dsn, vstr_str(text), 0) < 0)
        msg_panic("sm_smtp_send: bad reply code %d", code);
    vstr_free(text);
    if (write_full(1, vstr_str(s->out), vstr_len(s->out)) < 0)
        exit(EX_IOERR);
    if (code >= 500 && ++s->errors >= s->error_limit) {
        smtp_cmd_reply_format(s->out, 421, "4.7.0", "Error: too many errors", 0);
        (void)write_full(1, vstr_str(s->out), vstr_len(s->out));
        exit(EX_OK);
    }
}

/* sm_smtp_reset - forget the transaction */
static void sm_smtp_reset(SM_SMTP *s)
{
    s->have_mail = 0;
    vstr_reset(s->sender);
    vstr_reset(s->envid);
    argv_truncate(s->rcpt, 0);
    s->body = 0;
    s->ret = QFILE_RET_NONE;
    s->utf8 = 0;
}

/* sm_smtp_notify - the NOTIFY= bits in queue file terms */
static int sm_smtp_notify(int n)
{
    return (n & SMTP_PARAM_NOTIFY_NEVER ? QFILE_NOTIFY_NEVER : 0) |
           (n & SMTP_PARAM_NOTIFY_SUCCESS ? QFILE_NOTIFY_SUCCESS : 0) |
           (n & SMTP_PARAM_NOTIFY_FAILURE ? QFILE_NOTIFY_FAILURE : 0) |
           (n & SMTP_PARAM_NOTIFY_DELAY ? QFILE_NOTIFY_DELAY : 0);
}

/* sm_smtp_path - parse "FROM:<path> params" / "TO:<path> params"; 0 or -1 (answered) */
static int sm_smtp_path(SM_SMTP *s, const SMTP_CMD *cmd, const char *prefix, int rcpt)
{
    const char *path;
    size_t plen, used;
    enum smtp_addr_err aerr;
    enum smtp_param_err perr;
    SMTP_REPLY reply;
    int aflags = SMTP_ADDR_FLAG_LENIENT | SMTP_ADDR_FLAG_LOCAL_OK | SMTP_ADDR_FLAG_UTF8 |
                 (rcpt ? SMTP_ADDR_FLAG_RCPT : 0);
    int pflags = SMTP_PARAM_FLAG_SIZE | SMTP_PARAM_FLAG_8BITMIME | SMTP_PARAM_FLAG_DSN |
                 SMTP_PARAM_FLAG_SMTPUTF8 | (rcpt ? SMTP_PARAM_FLAG_RCPT : 0) |
                 (rcpt && s->utf8 ? SMTP_PARAM_FLAG_UTF8_TXN : 0);

    if (smtp_cmd_path_arg(cmd->arg, cmd->arg_len, prefix, &path, &plen) < 0) {
        sm_smtp_send(s, 501, "5.5.4", "Syntax: %s %s<address>", rcpt ? "RCPT" : "MAIL", prefix);
        return -1;
    }
    if ((aerr = smtp_addr_parse(s->addr, path, plen, aflags, &used)) != SMTP_ADDR_OK) {
        smtp_addr_reply(aerr, aflags, &reply);
        sm_smtp_send(s, reply.code, reply.dsn, "%s", reply.text);
        return -1;
    }
    if ((perr = smtp_param_parse(s->params, path + used, plen - used, pflags)) != SMTP_PARAM_OK) {
        smtp_param_reply(perr, &reply);
        sm_smtp_send(s, reply.code, reply.dsn, "%s", reply.text);
        return -1;
    }
    return 0;
}

/* sm_smtp_mail - MAIL FROM */
static void sm_smtp_mail(SM_SMTP *s, const SMTP_CMD *cmd)
{
    if (s->have_mail) {
        sm_smtp_send(s, 503, "5.5.1", "Error: nested MAIL command");
        return;
    }
    if (sm_smtp_path(s, cmd, "FROM:", 0) < 0)
        return;
    if ((s->params->seen & SMTP_PARAM_SEEN_SIZE) && s->size_limit &&
        s->params->size > s->size_limit) {
        sm_smtp_send(s, 552, "5.3.4", "Message size exceeds fixed limit");
        return;
    }
    vstr_cpy(s->sender, vstr_str(s->addr->addr));
    s->body = s->params->body == SMTP_PARAM_BODY_7BIT       ? MAILDROP_BODY_7BIT
              : s->params->body == SMTP_PARAM_BODY_8BITMIME ? MAILDROP_BODY_8BITMIME
                                                            : 0;
    s->ret = s->params->ret == SMTP_PARAM_RET_FULL   ? QFILE_RET_FULL
             : s->params->ret == SMTP_PARAM_RET_HDRS ? QFILE_RET_HDRS
                                                     : QFILE_RET_NONE;
    if (s->params->seen & SMTP_PARAM_SEEN_ENVID)
        vstr_cpy(s->envid, vstr_str(s->params->envid));
    s->utf8 = (s->params->seen & SMTP_PARAM_SEEN_SMTPUTF8) != 0;
    s->have_mail = 1;
    sm_smtp_send(s, 250, "2.1.0", "Ok");
}

/* sm_smtp_rcpt - RCPT TO */
static void sm_smtp_rcpt(SM_SMTP *s, const SMTP_CMD *cmd)
{
    if (!s->have_mail) {
        sm_smtp_send(s, 503, "5.5.1", "Error: need MAIL command");
        return;
    }
    if (sm_smtp_path(s, cmd, "TO:", 1) < 0)
        return;
    if (s->rcpt->argc >= s->rcpt_limit) {
        sm_smtp_send(s, 452, "4.5.3", "Error: too many recipients");
        return;
    }
    if (!maildrop_addr_ok(vstr_str(s->addr->addr), vstr_len(s->addr->addr), 0)) {
        sm_smtp_send(s, 501, "5.1.3", "Bad recipient address syntax");
        return;
    }
    if (s->rcpt->argc >= s->notify_cap) {
        s->notify_cap = s->notify_cap ? size_mul(s->notify_cap, 2) : 16;
        s->notify = myrealloc(s->notify, size_mul(s->notify_cap, sizeof(int)));
    }
    s->notify[s->rcpt->argc] = sm_smtp_notify(s->params->notify);
    argv_add(s->rcpt, vstr_str(s->addr->addr), (char *)0);
    sm_smtp_send(s, 250, "2.1.5", "Ok");
}

/* sm_smtp_envelope - the transaction's envelope to postdrop; 0 or -1 */
static int sm_smtp_envelope(SM_SMTP *s, MAILDROP_WRITER *w)
{
    if (maildrop_writer_sender(w, vstr_str(s->sender)) != 0)
        return -1;
    if ((s->ret != QFILE_RET_NONE || vstr_len(s->envid)) &&
        maildrop_writer_dsn(w, s->ret, vstr_len(s->envid) ? vstr_str(s->envid) : NULL) != 0)
        return -1;
    if (s->body && maildrop_writer_body(w, s->body) != 0)
        return -1;
    for (size_t i = 0; i < s->rcpt->argc; i++)
        if (maildrop_writer_rcpt(w, s->rcpt->argv[i], s->notify[i]) != 0)
            return -1;
    return 0;
}

/* sm_smtp_data - DATA: the content up to the "." line, into postdrop */
static void sm_smtp_data(SM_SMTP *s, const SMTP_CMD *cmd)
{
    VSTR *why = vstr_alloc(100);
    SM_DROP *drop;
    MAILDROP_WRITER *w;
    const char *data;
    ssize_t len;
    int end, bol = 1, failed = 0, werr = 0, status;
    char id[QUEUE_ID_SIZE];

    if (!s->have_mail) {
        sm_smtp_send(s, 503, "5.5.1", "Error: need MAIL command");
        goto done;
    }
    if (s->rcpt->argc == 0) {
        sm_smtp_send(s, 503, "5.5.1", "Error: need RCPT command");
        goto done;
    }
    if (cmd->arg_len) {
        sm_smtp_send(s, 501, "5.5.4", "Syntax: DATA");
        goto done;
    }
    if ((drop = sm_drop_start(s->o, why)) == NULL) {
        msg_warn("%s(%ld): %s", sm_who(s->o), (long)s->o->uid, vstr_str(why));
        sm_smtp_send(s, 451, "4.3.0", "Error: queue file write error");
        goto done;
    }
    w = sm_drop_writer(drop);
    if (sm_smtp_envelope(s, w) < 0) {
        failed = 1;
        vstr_cpy(why, maildrop_writer_why(w));
    }
    sm_smtp_send(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
    for (;;) {
        len = sm_in_piece(s->in, &data, MAILDROP_CHUNK_MAX, &end);
        if (len < 0) {
            /* The peer went away (or stopped talking) inside the message. */
            (void)sm_drop_finish(drop, 0, id, why);
            if (len == SM_IN_TIMEOUT) {
                smtp_cmd_reply_format(s->out, 421, "4.4.2", "Error: timeout exceeded", 0);
                (void)write_full(1, vstr_str(s->out), vstr_len(s->out));
            }
            exit(len == SM_IN_EOF ? EX_OK : EX_IOERR);
        }
        int eol = end != SM_IN_MORE;

        if (eol && len > 0 && data[len - 1] == '\r')
            len--;
        if (bol && len > 0 && data[0] == '.') {
            if (eol && len == 1)
                break;
            data++, len--; /* RFC 5321 4.5.2: remove the stuffed dot */
        }
        bol = eol;
        if (!failed && (werr = maildrop_writer_line(w, data, (size_t)len, eol)) != 0) {
            failed = 1; /* go on reading to the end of the data, then answer */
            vstr_cpy(why, maildrop_writer_why(w));
        }
    }
    if (failed) {
        VSTR *ignored = vstr_alloc(100);

        (void)sm_drop_finish(drop, 0, id, ignored);
        vstr_free(ignored);
        status = EX_DATAERR;
    } else {
        status = sm_drop_finish(drop, 1, id, why);
    }
    if (status == 0) {
        sm_smtp_send(s, 250, "2.0.0", "Ok: queued as %s", id);
    } else if (werr == MAILDROP_ERR_LIMIT) {
        sm_smtp_send(s, 552, "5.3.4", "Error: message file too big");
    } else {
        msg_warn("%s(%ld): message not queued: %s", sm_who(s->o), (long)s->o->uid, vstr_str(why));
        sm_smtp_send(s, 451, "4.3.0", "Error: queue file write error");
    }
    sm_smtp_reset(s);
done:
    vstr_free(why);
}

/* sm_smtp_hello - HELO and EHLO */
static void sm_smtp_hello(SM_SMTP *s, const SMTP_CMD *cmd, int ehlo)
{
    if (cmd->arg_len == 0) {
        sm_smtp_send(s, 501, "5.5.4", "Syntax: %s hostname", ehlo ? "EHLO" : "HELO");
        return;
    }
    sm_smtp_reset(s);
    if (!ehlo) {
        sm_smtp_send(s, 250, NULL, "%s", s->host);
        return;
    }
    /* A '\n' in the text starts the next line of the multi-line reply. */
    sm_smtp_send(s, 250, NULL, "%s\nPIPELINING\nSIZE %llu\nENHANCEDSTATUSCODES\n8BITMIME\nDSN%s",
                 s->host, (unsigned long long)s->size_limit,
                 var_bool("smtputf8_enable") ? "\nSMTPUTF8" : "");
}

/* sm_smtp_command - one command line */
static void sm_smtp_command(SM_SMTP *s, const char *line, size_t len)
{
    SMTP_CMD cmd;

    if (smtp_cmd_split(line, len, &cmd) < 0) {
        sm_smtp_send(s, 500, "5.5.2", "Error: bad syntax");
        return;
    }
    switch (cmd.verb) {
    case SMTP_CMD_HELO: sm_smtp_hello(s, &cmd, 0); break;
    case SMTP_CMD_EHLO: sm_smtp_hello(s, &cmd, 1); break;
    case SMTP_CMD_MAIL: sm_smtp_mail(s, &cmd); break;
    case SMTP_CMD_RCPT: sm_smtp_rcpt(s, &cmd); break;
    case SMTP_CMD_DATA: sm_smtp_data(s, &cmd); break;
    case SMTP_CMD_RSET:
        sm_smtp_reset(s);
        sm_smtp_send(s, 250, "2.0.0", "Ok");
        break;
    case SMTP_CMD_NOOP: sm_smtp_send(s, 250, "2.0.0", "Ok"); break;
    case SMTP_CMD_VRFY:
        if (s->vrfy_disabled)
            sm_smtp_send(s, 502, "5.5.1", "VRFY command is disabled");
        else
            sm_smtp_send(s, 252, "2.0.0", "Cannot VRFY user, but will accept message");
        break;
    case SMTP_CMD_QUIT: sm_smtp_send(s, 221, "2.0.0", "Bye"); exit(EX_OK);
    default: sm_smtp_send(s, 502, "5.5.2", "Error: command not recognized"); break;
    }
}

_Noreturn void sm_smtp(SM_OPTS *o)
{
    SM_SMTP s;
    const char *data;
    ssize_t len;
    int end;

    memset(&s, 0, sizeof(s));
    s.o = o;
    s.in = sm_in_open(0, (int)var_time("smtpd_timeout") * 1000);
    s.out = vstr_alloc(512);
    s.host = var_str("myhostname");
    s.error_limit = (int)var_int("smtpd_hard_error_limit");
    s.rcpt_limit = (size_t)var_int("smtpd_recipient_limit");
    s.size_limit = (uint64_t)var_int("message_size_limit");
    s.vrfy_disabled = var_bool("disable_vrfy_command");
    s.sender = vstr_alloc(100);
    s.envid = vstr_alloc(100);
    s.rcpt = argv_alloc(4);
    s.addr = smtp_addr_alloc();
    s.params = smtp_param_alloc();
    if (s.rcpt_limit > MAILDROP_RCPT_MAX)
        s.rcpt_limit = MAILDROP_RCPT_MAX;
    if (s.error_limit < 1)
        s.error_limit = 1;

    sm_smtp_send(&s, 220, NULL, "%s", var_str("smtpd_banner"));
    for (;;) {
        len = sm_in_piece(s.in, &data, SM_SMTP_LINE_MAX, &end);
        if (len == SM_IN_EOF)
            exit(EX_OK);
        if (len == SM_IN_TIMEOUT) {
            sm_smtp_send(&s, 421, "4.4.2", "%s Error: timeout exceeded", s.host);
            exit(EX_OK);
        }
        if (len < 0)
            exit(EX_IOERR);
        if (end == SM_IN_MORE) {
            /* Too long for a command: skip the rest of the line, then answer. */
            while ((len = sm_in_piece(s.in, &data, SM_SMTP_LINE_MAX, &end)) >= 0 &&
                   end == SM_IN_MORE)
                /* void */;
            sm_smtp_send(&s, 500, "5.5.0", "Error: command line too long");
            continue;
        }
        if (len > 0 && data[len - 1] == '\r')
            len--;
        sm_smtp_command(&s, data, (size_t)len);
    }
}
