/*
 * smtpd_proto - the SMTP session state machine (RFC 5321, RFC 2920
 * PIPELINING, RFC 3030 CHUNKING): which command is legal in which state,
 * and what each command does.
 *
 * STATES AND COMMANDS (smtpd_cmd_table below holds the same information)
 *
 *   state       HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP other
 *   CONNECTED   yes  yes  yes* 503  503  503  yes  yes  yes  yes  yes  502/500
 *   GREETED     yes  yes  yes  503  503  503  yes  yes  yes  yes  yes  502/500
 *   MAIL        yes  yes  503  yes  503/554   yes  yes  yes  yes  yes  502/500
 *   RCPT        yes  yes  503  yes  yes  yes  yes  yes  yes  yes  yes  502/500
 *   CHUNKING    yes  yes  503  503  503  yes  yes  yes  yes  503  yes  502/500
 *   (* 503 with smtpd_helo_required = yes; BDAT refused in a state is read
 *   and discarded so that its octets are never taken for commands)
 *
 *   Transitions: HELO/EHLO -> GREETED (and end any transaction); MAIL ->
 *   MAIL; the first accepted RCPT -> RCPT; DATA -> DATA, and its end ->
 *   GREETED (or CONNECTED without HELO); BDAT -> BDAT, the end of a chunk ->
 *   CHUNKING, the end of the LAST one -> GREETED; RSET -> GREETED; QUIT and
 *   fatal errors -> CLOSING.
 *
 * COMMAND LINES are refused before they reach a handler when they hold a
 * NUL, a bare CR, a bare LF as terminator (smtpd_forbid_bare_newline), bad
 * UTF-8 (with smtputf8_enable), or exceed 512 octets (MAIL and RCPT may
 * carry ESMTP parameters up to SMTPD_PATH_LINE_MAX): these are the
 * ingredients of SMTP smuggling and of parser confusion, so they are never
 * guessed at. Commands in smtpd_forbidden_commands and lines shaped like a
 * message header ("Subject: ...") end the session: such a client is not
 * speaking SMTP.
 *
 * PIPELINING (RFC 2920 3.1): HELO, EHLO, DATA, NOOP, VRFY, EXPN, STARTTLS
 * and AUTH must be the last command of a group. When more input is already
 * buffered after one of them, the client did not wait for our reply; this
 * is logged ("improper command pipelining after DATA") and, with
 * smtpd_forbid_unauth_pipelining = yes, answered "554 5.5.0 Error: SMTP
 * protocol synchronization" and disconnected. In particular, text sent
 * right behind DATA is never taken as message content before our 354.
 *
 * ERRORS: a failed command counts toward smtpd_soft_error_limit (each
 * further reply is delayed by smtpd_error_sleep_time) and
 * smtpd_hard_error_limit (421 and disconnect). NOOP, RSET, VRFY, HELO,
 * EHLO, EXPN, HELP and ETRN beyond smtpd_junk_command_limit count as
 * errors. Delivered mail resets both counters.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "mail/cleanup_proto.h"
#include "mail/qfile.h"
#include "util/msg.h"
#include "util/mymalloc.h"

#include "smtpd.h"
#include "smtpd_sasl.h"
#include "smtpd_tls.h"
#include "smtpd_anvil.h"

/* Handler results: SMTPD_OK, SMTPD_ERROR, SMTPD_PENDING (smtpd.h). */

/* Command flags. */
#define SMTPD_CMDF_LAST (1 << 0) /* RFC 2920: last command of a pipelined group */
#define SMTPD_CMDF_JUNK (1 << 1) /* counts toward smtpd_junk_command_limit */
#define SMTPD_CMDF_LONG (1 << 2) /* may exceed 512 octets (ESMTP parameters) */
#define SMTPD_CMDF_PRE_TLS (1 << 3) /* allowed before STARTTLS at the encrypt level */

#define ST(x) SMTPD_STATE_BIT(SMTPD_ST_##x)
#define SMTPD_IDLE (ST(CONNECTED) | ST(GREETED))
#define SMTPD_ANY (SMTPD_IDLE | ST(MAIL) | ST(RCPT) | ST(CHUNKING))

typedef int (*SMTPD_CMD_FN)(SMTPD_SESSION *s, const SMTP_CMD *cmd);

typedef struct SMTPD_CMD_INFO {
    enum smtp_cmd_verb verb;
    enum smtpd_stat stat;
    SMTPD_CMD_FN fn;
    int flags;       /* SMTPD_CMDF_* */
    unsigned states; /* where the handler runs; elsewhere smtpd_sequence_error */
} SMTPD_CMD_INFO;

static int smtpd_helo(SMTPD_SESSION *s, const SMTP_CMD *cmd);
static int smtpd_mail(SMTPD_SESSION *s, const SMTP_CMD *cmd);
static int smtpd_rcpt(SMTPD_SESSION *s, const SMTP_CMD *cmd);
static int smtpd_data(SMTPD_SESSION *s, const SMTP_CMD *cmd);
static int smtpd_bdat(SMTPD_SESSION *s, const SMTP_CMD *cmd);
static int smtpd_rset(SMTPD_SESSION *s, const SMTP_CMD *cmd);
static int smtpd_noop(SMTPD_SESSION *s, const SMTP_CMD *cmd);
static int smtpd_quit(SMTPD_SESSION *s, const SMTP_CMD *cmd);
static int smtpd_vrfy(SMTPD_SESSION *s, const SMTP_CMD *cmd);
static int smtpd_help(SMTPD_SESSION *s, const SMTP_CMD *cmd);
static int smtpd_not_implemented(SMTPD_SESSION *s, const SMTP_CMD *cmd);

/*
 * The one table of commands. STARTTLS (smtpd_tls.c) and AUTH
 * (smtpd_sasl.c) are LAST commands; STARTTLS also discards any input
 * buffered before its handshake (CVE-2011-0411). PRE_TLS marks what a
 * client may do before STARTTLS at smtpd_tls_security_level = encrypt.
 */
static const SMTPD_CMD_INFO smtpd_cmd_table[] = {
    /* verb            stat                 handler          flags                  states */
    {SMTP_CMD_HELO, SMTPD_STAT_HELO, smtpd_helo,
     SMTPD_CMDF_LAST | SMTPD_CMDF_JUNK | SMTPD_CMDF_PRE_TLS, SMTPD_ANY},
    {SMTP_CMD_EHLO, SMTPD_STAT_EHLO, smtpd_helo,
     SMTPD_CMDF_LAST | SMTPD_CMDF_JUNK | SMTPD_CMDF_PRE_TLS, SMTPD_ANY},
    {SMTP_CMD_MAIL, SMTPD_STAT_MAIL, smtpd_mail, SMTPD_CMDF_LONG, SMTPD_IDLE},
    {SMTP_CMD_RCPT, SMTPD_STAT_RCPT, smtpd_rcpt, SMTPD_CMDF_LONG, ST(MAIL) | ST(RCPT)},
    {SMTP_CMD_DATA, SMTPD_STAT_DATA, smtpd_data, SMTPD_CMDF_LAST, ST(RCPT)},
    {SMTP_CMD_BDAT, SMTPD_STAT_BDAT, smtpd_bdat, 0, SMTPD_ANY},
    {SMTP_CMD_RSET, SMTPD_STAT_RSET, smtpd_rset, SMTPD_CMDF_JUNK | SMTPD_CMDF_PRE_TLS, SMTPD_ANY},
    {SMTP_CMD_NOOP, SMTPD_STAT_NOOP, smtpd_noop,
     SMTPD_CMDF_LAST | SMTPD_CMDF_JUNK | SMTPD_CMDF_PRE_TLS, SMTPD_ANY},
    {SMTP_CMD_QUIT, SMTPD_STAT_QUIT, smtpd_quit, SMTPD_CMDF_PRE_TLS, SMTPD_ANY},
    {SMTP_CMD_VRFY, SMTPD_STAT_VRFY, smtpd_vrfy, SMTPD_CMDF_LAST | SMTPD_CMDF_JUNK,
     SMTPD_IDLE | ST(MAIL) | ST(RCPT)},
    {SMTP_CMD_EXPN, SMTPD_STAT_EXPN, smtpd_not_implemented, SMTPD_CMDF_LAST | SMTPD_CMDF_JUNK,
     SMTPD_ANY},
    {SMTP_CMD_HELP, SMTPD_STAT_HELP, smtpd_help, SMTPD_CMDF_JUNK, SMTPD_ANY},
    {SMTP_CMD_STARTTLS, SMTPD_STAT_STARTTLS, smtpd_tls_starttls,
     SMTPD_CMDF_LAST | SMTPD_CMDF_PRE_TLS, SMTPD_IDLE},
    {SMTP_CMD_AUTH, SMTPD_STAT_AUTH, smtpd_sasl_auth, SMTPD_CMDF_LAST | SMTPD_CMDF_LONG, SMTPD_ANY},
    {SMTP_CMD_ETRN, SMTPD_STAT_ETRN, smtpd_not_implemented, SMTPD_CMDF_JUNK, SMTPD_ANY},
    {SMTP_CMD_XCLIENT, SMTPD_STAT_UNKNOWN, smtpd_not_implemented, 0, SMTPD_ANY},
    {SMTP_CMD_XFORWARD, SMTPD_STAT_UNKNOWN, smtpd_not_implemented, 0, SMTPD_ANY},
};

#define SMTPD_NCMDS (sizeof(smtpd_cmd_table) / sizeof(smtpd_cmd_table[0]))

static const char *const smtpd_state_names[SMTPD_ST_COUNT] = {
    [SMTPD_ST_CONNECTED] = "CONNECTED", [SMTPD_ST_GREETED] = "GREETED",
    [SMTPD_ST_MAIL] = "MAIL",           [SMTPD_ST_RCPT] = "RCPT",
    [SMTPD_ST_DATA] = "DATA",           [SMTPD_ST_BDAT] = "BDAT",
    [SMTPD_ST_CHUNKING] = "CHUNKING",   [SMTPD_ST_SKIP] = "SKIP",
    [SMTPD_ST_CLOSING] = "CLOSING",
};

/* smtpd_protocol_name - the RFC 3848 keyword: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA */
const char *smtpd_protocol_name(const SMTPD_SESSION *s)
{
    static const char *const esmtp[2][2] = {{"ESMTP", "ESMTPA"}, {"ESMTPS", "ESMTPSA"}};

    if (s->protocol == NULL || strcmp(s->protocol, SMTPD_PROTO_SMTP) == 0)
        return SMTPD_PROTO_SMTP;
    return esmtp[s->tls != NULL][s->sasl_username != NULL];
}

/* smtpd_state_name - for debug logging */
const char *smtpd_state_name(enum smtpd_state st)
{
    return (unsigned)st < SMTPD_ST_COUNT ? smtpd_state_names[st] : "?";
}

/* smtpd_state_idle - where a session is between transactions */
int smtpd_state_idle(const SMTPD_SESSION *s)
{
    return s->helo_name ? SMTPD_ST_GREETED : SMTPD_ST_CONNECTED;
}

/* smtpd_cmd_find - table entry of a verb, NULL for unknown commands */
static const SMTPD_CMD_INFO *smtpd_cmd_find(enum smtp_cmd_verb verb)
{
    for (size_t i = 0; i < SMTPD_NCMDS; i++)
        if (smtpd_cmd_table[i].verb == verb)
            return &smtpd_cmd_table[i];
    return NULL;
}

/*
 * Transactions.
 */

/* smtpd_txn_reset - forget the transaction; an open cleanup connection aborts */
void smtpd_txn_reset(SMTPD_SESSION *s)
{
    SMTPD_TXN *txn = &s->txn;

    smtpd_cleanup_free(txn->cleanup);
    smtp_data_free(txn->data);
    myfree(txn->sender);
    myfree(txn->first_rcpt);
    myfree(txn->envid);
    myfree(txn->pending_rcpt);
    myfree(txn->pending_orcpt);
    myfree(txn->sasl_sender);
    memset(txn, 0, sizeof(*txn));
    s->block &= ~(SMTPD_BLOCK_CLEANUP | SMTPD_BLOCK_DRAIN);
}

/* smtpd_count_error - a failed command for the error limits */
void smtpd_count_error(SMTPD_SESSION *s)
{
    s->error_count++;
}

/* smtpd_cmd_done - account for a finished command; enforce smtpd_hard_error_limit */
void smtpd_cmd_done(SMTPD_SESSION *s, int result)
{
    if (s->cur_stat >= 0 && result == SMTPD_OK)
        s->stat_ok[s->cur_stat]++;
    s->cur_stat = -1;
    if (result == SMTPD_ERROR)
        smtpd_count_error(s);
    if (s->error_count >= s->cfg->hard_error_limit && s->state != SMTPD_ST_CLOSING) {
        msg_info("too many errors after %s from %s", s->where ? s->where : "CONNECT",
                 s->peer.namaddr);
        smtpd_txn_reset(s);
        smtpd_reply(s, 421, "4.7.0", "%s Error: too many errors", s->cfg->myhostname);
        smtpd_close_after_reply(s);
    }
}

/* smtpd_fail - send a refusal; SMTPD_ERROR */
static int smtpd_fail(SMTPD_SESSION *s, int code, const char *dsn, const char *text)
{
    smtpd_reply(s, code, dsn, "%s", text);
    return SMTPD_ERROR;
}

/* smtpd_skip - discard the octets of a refused BDAT chunk, then return to this state */
static void smtpd_skip(SMTPD_SESSION *s, uint64_t size)
{
    if (size == 0)
        return;
    s->skip_return = s->state;
    s->skip_left = size;
    s->state = SMTPD_ST_SKIP;
}

/* smtpd_param_flags - what smtp_param_parse may accept, from what EHLO offered */
static int smtpd_param_flags(const SMTPD_SESSION *s, int rcpt)
{
    int flags = rcpt ? SMTP_PARAM_FLAG_RCPT : 0;

    if (s->ext & SMTPD_EXT_SIZE)
        flags |= SMTP_PARAM_FLAG_SIZE;
    if (s->ext & SMTPD_EXT_8BITMIME)
        flags |= SMTP_PARAM_FLAG_8BITMIME;
    if (s->ext & SMTPD_EXT_SMTPUTF8)
        flags |= SMTP_PARAM_FLAG_SMTPUTF8;
    if (s->ext & SMTPD_EXT_DSN)
        flags |= SMTP_PARAM_FLAG_DSN;
    if (rcpt && s->txn.smtputf8)
        flags |= SMTP_PARAM_FLAG_UTF8_TXN;
    /* As Postfix: AUTH= is understood whenever AUTH is enabled. */
    if (s->cfg->sasl != NULL)
        flags |= SMTP_PARAM_FLAG_AUTH;
    return flags;
}

/* smtpd_ext_offered - the EHLO keywords of this server for this session */
static int smtpd_ext_offered(const SMTPD_SESSION *s)
{
    const SMTPD_CONFIG *cfg = s->cfg;
    int ext = SMTPD_EXT_PIPELINING | SMTPD_EXT_SIZE | SMTPD_EXT_ENHANCEDSTATUSCODES |
              SMTPD_EXT_8BITMIME | SMTPD_EXT_DSN | SMTPD_EXT_CHUNKING;

    if (!cfg->disable_vrfy)
        ext |= SMTPD_EXT_VRFY;
    if (cfg->smtputf8_enable)
        ext |= SMTPD_EXT_SMTPUTF8;
    if (cfg->sasl != NULL)
        ext |= SMTPD_EXT_AUTH;
    if (smtpd_tls_offer(s))
        ext |= SMTPD_EXT_STARTTLS;
    return ext & ~cfg->ext_discard;
}

/*
 * Cleanup: open, then hand over what the transaction has so far.
 */

static void smtpd_cleanup_cb(void *context, int event);

/* smtpd_txn_open - connect to cleanup for this transaction; 0, or -1 (reply sent) */
static int smtpd_txn_open(SMTPD_SESSION *s, enum smtp_cmd_verb pending)
{
    unsigned flags = CLEANUP_FLAG_HAS_RECEIVED;

    if (smtpd_check_header_rewrite(s))
        flags |= CLEANUP_FLAG_MISSING_HEADERS;
    s->txn.cleanup = smtpd_cleanup_open(s->base, s->cfg, flags, smtpd_cleanup_cb, s);
    if (s->txn.cleanup == NULL) {
        smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
        return -1;
    }
    s->txn.wait = SMTPD_WAIT_OPEN;
    s->txn.pending = pending;
    smtpd_block(s, SMTPD_BLOCK_CLEANUP);
    return 0;
}

/* smtpd_rcpt_commit - a recipient is accepted and known to cleanup */
static void smtpd_rcpt_commit(SMTPD_SESSION *s, const char *addr, const char *orcpt,
                              unsigned notify)
{
    smtpd_cleanup_rcpt(s->txn.cleanup, addr, orcpt, notify);
    s->txn.rcpt_count++;
    if (s->txn.first_rcpt == NULL)
        s->txn.first_rcpt = mystrdup(addr);
    s->state = SMTPD_ST_RCPT;
    smtpd_reply(s, 250, "2.1.5", "Ok");
}

/* smtpd_txn_opened - cleanup answered "open" */
static void smtpd_txn_opened(SMTPD_SESSION *s, const SMTP_REPLY *r)
{
    SMTPD_TXN *txn = &s->txn;
    SMTPD_CLEANUP *c = txn->cleanup;
    enum smtp_cmd_verb pending = txn->pending;

    txn->wait = SMTPD_WAIT_NONE;
    if (r == NULL || r->code != 250) {
        if (r != NULL)
            msg_warn("%s: cleanup refused a new message: %d %s %s", s->peer.namaddr, r->code,
                     r->dsn, r->text);
        smtpd_cleanup_free(c);
        txn->cleanup = NULL;
        smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
        if (pending == SMTP_CMD_MAIL) {
            smtpd_txn_reset(s);
            s->state = smtpd_state_idle(s);
        }
        smtpd_cmd_done(s, SMTPD_ERROR);
        return;
    }
    snprintf(txn->queue_id, sizeof(txn->queue_id), "%s", smtpd_cleanup_queue_id(c));
    smtpd_sasl_txn_open(s); /* "ID: client=..." with the SASL details */
    smtpd_cleanup_attr(c, "client_name", s->peer.name);
    smtpd_cleanup_attr(c, "reverse_client_name", s->peer.rname);
    smtpd_cleanup_attr(c, "client_address", s->peer.addr);
    smtpd_cleanup_attr(c, "client_port", s->peer.port);
    if (s->helo_name)
        smtpd_cleanup_attr(c, "helo_name", s->helo_name);
    smtpd_cleanup_attr(c, "protocol_name", smtpd_protocol_name(s));
    smtpd_cleanup_sender(c, txn);
    if (pending == SMTP_CMD_RCPT) {
        smtpd_rcpt_commit(s, txn->pending_rcpt, txn->pending_orcpt, txn->pending_notify);
        myfree(txn->pending_rcpt);
        myfree(txn->pending_orcpt);
        txn->pending_rcpt = txn->pending_orcpt = NULL;
    } else {
        smtpd_reply(s, 250, "2.1.0", "Ok");
    }
    smtpd_cmd_done(s, SMTPD_OK);
}

/* smtpd_txn_cleanup_failed - the cleanup connection broke */
static void smtpd_txn_cleanup_failed(SMTPD_SESSION *s)
{
    switch (s->txn.wait) {
    case SMTPD_WAIT_OPEN: smtpd_txn_opened(s, NULL); break;
    case SMTPD_WAIT_END: smtpd_data_cleanup_failed(s); break;
    default:
        /* Streaming: keep reading the client in step, answer 451 at the end. */
        s->txn.failed = 1;
        s->block &= ~SMTPD_BLOCK_DRAIN;
        break;
    }
}

/* smtpd_cleanup_cb - SMTPD_CLEANUP_FN: events of the transaction's cleanup connection */
static void smtpd_cleanup_cb(void *context, int event)
{
    SMTPD_SESSION *s = context;

    smtpd_enter(s);
    switch (event) {
    case SMTPD_CLEANUP_EV_OPENED: smtpd_txn_opened(s, smtpd_cleanup_reply(s->txn.cleanup)); break;
    case SMTPD_CLEANUP_EV_DONE: smtpd_data_done(s); break;
    case SMTPD_CLEANUP_EV_FAILED: smtpd_txn_cleanup_failed(s); break;
    case SMTPD_CLEANUP_EV_DRAINED: break;
    }
    /* Whatever happened, the session may be able to go on now. */
    if ((s->block & SMTPD_BLOCK_CLEANUP) && s->txn.wait == SMTPD_WAIT_NONE)
        s->block &= ~SMTPD_BLOCK_CLEANUP;
    if (event == SMTPD_CLEANUP_EV_DRAINED || event == SMTPD_CLEANUP_EV_FAILED)
        s->block &= ~SMTPD_BLOCK_DRAIN;
    smtpd_unblock(s, 0);
    smtpd_leave(s);
}

/*
 * Greeting and HELO/EHLO.
 */

/* smtpd_proto_greet - the 220 banner */
void smtpd_proto_greet(SMTPD_SESSION *s)
{
    s->cur_stat = -1;
    s->state = SMTPD_ST_CONNECTED;
    smtpd_reply(s, 220, NULL, "%s", s->cfg->banner);
}

/* smtpd_helo_label_char - letters, digits, '-' and (widely used, so tolerated) '_' */
static int smtpd_helo_label_char(int ch)
{
    return isalnum(ch) || ch == '-' || ch == '_';
}

/* smtpd_helo_valid - a host name, an IPv4 address, or an address literal */
static int smtpd_helo_valid(const char *name, size_t len)
{
    char buf[SMTPD_HELO_MAX + 1];
    unsigned char bin[16];
    size_t label = 0;

    if (len == 0 || len > SMTPD_HELO_MAX)
        return 0;
    memcpy(buf, name, len);
    buf[len] = 0;
    if (buf[0] == '[') {
        if (buf[len - 1] != ']')
            return 0;
        buf[len - 1] = 0;
        if (strncasecmp(buf + 1, "IPv6:", 5) == 0)
            return inet_pton(AF_INET6, buf + 6, bin) == 1;
        return inet_pton(AF_INET, buf + 1, bin) == 1;
    }
    if (strspn(buf, "0123456789.") == len)
        return inet_pton(AF_INET, buf, bin) == 1;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '.') {
            /* Empty labels only as the root's trailing dot. */
            if (label == 0)
                return 0;
            label = 0;
        } else if (!smtpd_helo_label_char((unsigned char)buf[i]) || ++label > 63) {
            return 0;
        }
    }
    return 1;
}

/* smtpd_helo - HELO and EHLO (RFC 5321 4.1.1.1): both end any transaction */
static int smtpd_helo(SMTPD_SESSION *s, const SMTP_CMD *cmd)
{
    int ehlo = cmd->verb == SMTP_CMD_EHLO;

    if (cmd->arg_len == 0) {
        smtpd_reply(s, 501, "5.5.4", "Syntax: %s hostname", ehlo ? "EHLO" : "HELO");
        return SMTPD_ERROR;
    }
    if (!smtpd_helo_valid(cmd->arg, cmd->arg_len)) {
        smtpd_printable(cmd->arg, cmd->arg_len, s->cfg->tmp);
        smtpd_reply(s, 501, "5.5.2", "<%s>: Helo command rejected: Invalid name",
                    vstr_str(s->cfg->tmp));
        return SMTPD_ERROR;
    }
    smtpd_txn_reset(s);
    myfree(s->helo_name);
    s->helo_name = mystrndup(cmd->arg, cmd->arg_len);
    s->protocol = ehlo ? SMTPD_PROTO_ESMTP : SMTPD_PROTO_SMTP;
    s->ext = smtpd_ext_offered(s);
    s->state = SMTPD_ST_GREETED;
    if (!ehlo) {
        smtpd_reply(s, 250, NULL, "%s", s->cfg->myhostname);
        return SMTPD_OK;
    }
    /* One text, one '\n' per keyword: smtp_cmd_reply_format makes the 250- lines. */
    VSTR *text = s->cfg->tmp;

    vstr_sprintf(text, "%s", s->cfg->myhostname);
    if (s->ext & SMTPD_EXT_PIPELINING)
        vstr_cat(text, "\nPIPELINING");
    if (s->ext & SMTPD_EXT_SIZE) {
        if (s->cfg->message_size_limit > 0)
            vstr_sprintf_append(text, "\nSIZE %llu",
                                (unsigned long long)s->cfg->message_size_limit);
        else
            vstr_cat(text, "\nSIZE");
    }
    if (s->ext & SMTPD_EXT_VRFY)
        vstr_cat(text, "\nVRFY");
    if (s->ext & SMTPD_EXT_STARTTLS)
        vstr_cat(text, "\nSTARTTLS");
    if (s->ext & SMTPD_EXT_AUTH)
        smtpd_sasl_ehlo_lines(s, text);
    if (s->ext & SMTPD_EXT_ENHANCEDSTATUSCODES)
        vstr_cat(text, "\nENHANCEDSTATUSCODES");
    if (s->ext & SMTPD_EXT_8BITMIME)
        vstr_cat(text, "\n8BITMIME");
    if (s->ext & SMTPD_EXT_DSN)
        vstr_cat(text, "\nDSN");
    if (s->ext & SMTPD_EXT_SMTPUTF8)
        vstr_cat(text, "\nSMTPUTF8");
    if (s->ext & SMTPD_EXT_CHUNKING)
        vstr_cat(text, "\nCHUNKING");
    smtpd_reply(s, 250, NULL, "%s", vstr_str(text));
    return SMTPD_OK;
}

/*
 * MAIL and RCPT.
 */

/* smtpd_addr_error - the reply for a path that did not parse */
static int smtpd_addr_error(SMTPD_SESSION *s, enum smtp_addr_err err, int flags)
{
    SMTP_REPLY r;

    smtp_addr_reply(err, flags, &r);
    smtpd_reply_smtp(s, &r, NULL);
    return SMTPD_ERROR;
}

/* smtpd_param_error - the reply for ESMTP parameters that did not parse */
static int smtpd_param_error(SMTPD_SESSION *s, enum smtp_param_err err)
{
    SMTP_REPLY r;

    smtp_param_reply(err, &r);
    smtpd_reply_smtp(s, &r,
                     err == SMTP_PARAM_ERR_UNKNOWN ? vstr_str(s->cfg->params->keyword) : NULL);
    return SMTPD_ERROR;
}

/* smtpd_complete_addr - append @$myorigin to an address without a domain */
static void smtpd_complete_addr(SMTPD_SESSION *s, SMTP_ADDR *addr)
{
    if ((addr->flags & SMTP_ADDR_IS_NULL) || vstr_len(addr->domain) > 0)
        return;
    vstr_cpy(addr->domain, s->cfg->myorigin);
    vstr_lower(addr->domain);
    vstr_sprintf(addr->addr, "%s@%s", vstr_str(addr->local), vstr_str(addr->domain));
}

/* smtpd_path - parse "FROM:<path> params" / "TO:<path> params"; SMTP_ADDR_OK or an error */
static enum smtp_addr_err smtpd_path(SMTPD_SESSION *s, const SMTP_CMD *cmd, int rcpt, int aflags,
                                     const char **rest, size_t *rest_len)
{
    const char *path;
    size_t plen, used = 0;
    enum smtp_addr_err err;

    if (smtp_cmd_path_arg(cmd->arg, cmd->arg_len, rcpt ? "TO:" : "FROM:", &path, &plen) < 0 ||
        plen == 0)
        return SMTP_ADDR_ERR_EMPTY;
    err = smtp_addr_parse(s->cfg->addr, path, plen, aflags, &used);
    *rest = path + used;
    *rest_len = plen - used;
    return err;
}

/* smtpd_mail - MAIL FROM:<reverse-path> [params] (RFC 5321 4.1.1.2) */
static int smtpd_mail(SMTPD_SESSION *s, const SMTP_CMD *cmd)
{
    SMTPD_CONFIG *cfg = s->cfg;
    SMTP_ADDR *addr = cfg->addr;
    SMTP_PARAMS *params = cfg->params;
    SMTPD_TXN *txn = &s->txn;
    int aflags = SMTP_ADDR_FLAG_LOCAL_OK;
    enum smtp_addr_err err;
    enum smtp_param_err perr;
    const char *rest;
    size_t rest_len;

    /* RFC 3207 4.2: after TLS the client starts over with EHLO (Postern insists). */
    if ((cfg->helo_required || s->tls != NULL) && s->helo_name == NULL)
        return smtpd_fail(s, 503, "5.5.1", "Error: send HELO/EHLO first");
    if (!cfg->strict_rfc821)
        aflags |= SMTP_ADDR_FLAG_LENIENT;
    if (s->ext & SMTPD_EXT_SMTPUTF8)
        aflags |= SMTP_ADDR_FLAG_UTF8;
    if (smtp_cmd_path_arg(cmd->arg, cmd->arg_len, "FROM:", &rest, &rest_len) < 0 || rest_len == 0)
        return smtpd_fail(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
    /* smtpd_client_message_rate_limit: each MAIL FROM counts, accepted or not (as Postfix). */
    if (smtpd_anvil_mail(s) < 0)
        return SMTPD_ERROR;
    if ((err = smtpd_path(s, cmd, 0, aflags, &rest, &rest_len)) != SMTP_ADDR_OK)
        return smtpd_addr_error(s, err, aflags);
    if ((perr = smtp_param_parse(params, rest, rest_len, smtpd_param_flags(s, 0))) != SMTP_PARAM_OK)
        return smtpd_param_error(s, perr);
    /* RFC 6531 3.4: a non-ASCII address needs the SMTPUTF8 parameter. */
    if ((addr->flags & SMTP_ADDR_HAS_UTF8) && !(params->seen & SMTP_PARAM_SEEN_SMTPUTF8))
        return smtpd_addr_error(s, SMTP_ADDR_ERR_NEED_SMTPUTF8, aflags);
    if ((params->seen & SMTP_PARAM_SEEN_SIZE) && cfg->message_size_limit > 0 &&
        params->size > cfg->message_size_limit) {
        smtpd_log_reject(s, "MAIL", 552, "5.3.4", "Message size exceeds fixed limit", NULL);
        return smtpd_fail(s, 552, "5.3.4", "Message size exceeds fixed limit");
    }
    smtp_addr_lower_domain(addr);
    smtpd_complete_addr(s, addr);

    smtpd_txn_reset(s);
    txn->sender = mystrdup(vstr_str(addr->addr));
    txn->smtputf8 = (params->seen & SMTP_PARAM_SEEN_SMTPUTF8) != 0;
    txn->body = params->body;
    txn->ret = params->ret;
    txn->size = params->size;
    if (params->seen & SMTP_PARAM_SEEN_ENVID)
        txn->envid = mystrdup(vstr_str(params->envid));
    smtpd_sasl_mail_param(s, (params->seen & SMTP_PARAM_SEEN_AUTH) ? vstr_str(params->auth) : NULL);
    s->state = SMTPD_ST_MAIL;
    if (!cfg->delay_open) {
        if (smtpd_txn_open(s, SMTP_CMD_MAIL) < 0) {
            smtpd_txn_reset(s);
            s->state = smtpd_state_idle(s);
            return SMTPD_ERROR;
        }
        return SMTPD_PENDING;
    }
    smtpd_reply(s, 250, "2.1.0", "Ok");
    return SMTPD_OK;
}

/* smtpd_notify_bits - NOTIFY= as queue file bits */
static unsigned smtpd_notify_bits(int notify)
{
    unsigned bits = 0;

    if (notify & SMTP_PARAM_NOTIFY_NEVER)
        bits |= QFILE_NOTIFY_NEVER;
    if (notify & SMTP_PARAM_NOTIFY_SUCCESS)
        bits |= QFILE_NOTIFY_SUCCESS;
    if (notify & SMTP_PARAM_NOTIFY_FAILURE)
        bits |= QFILE_NOTIFY_FAILURE;
    if (notify & SMTP_PARAM_NOTIFY_DELAY)
        bits |= QFILE_NOTIFY_DELAY;
    return bits;
}

/* smtpd_rcpt - RCPT TO:<forward-path> [params] (RFC 5321 4.1.1.3) */
static int smtpd_rcpt(SMTPD_SESSION *s, const SMTP_CMD *cmd)
{
    SMTPD_CONFIG *cfg = s->cfg;
    SMTP_ADDR *addr = cfg->addr;
    SMTP_PARAMS *params = cfg->params;
    SMTPD_TXN *txn = &s->txn;
    int aflags = SMTP_ADDR_FLAG_RCPT | SMTP_ADDR_FLAG_LOCAL_OK;
    enum smtp_addr_err err;
    enum smtp_param_err perr;
    const char *rest;
    size_t rest_len;
    int code;
    const char *dsn;
    char *orcpt = NULL;
    unsigned notify;

    if (!cfg->strict_rfc821)
        aflags |= SMTP_ADDR_FLAG_LENIENT;
    if (txn->smtputf8)
        aflags |= SMTP_ADDR_FLAG_UTF8;
    if (smtp_cmd_path_arg(cmd->arg, cmd->arg_len, "TO:", &rest, &rest_len) < 0 || rest_len == 0)
        return smtpd_fail(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
    txn->rcpt_tried++;
    /* smtpd_client_recipient_rate_limit: each RCPT TO counts, accepted or not (as Postfix). */
    if (smtpd_anvil_rcpt(s) < 0)
        return SMTPD_ERROR;
    if (txn->rcpt_count >= cfg->recipient_limit) {
        smtpd_reply(s, 452, "4.5.3", "Error: too many recipients");
        /* Clients that ignore the 452 and go on become errors (Postfix's overshoot). */
        return txn->overshoot++ < cfg->recipient_overshoot_limit ? SMTPD_OK : SMTPD_ERROR;
    }
    if ((err = smtpd_path(s, cmd, 1, aflags, &rest, &rest_len)) != SMTP_ADDR_OK)
        return smtpd_addr_error(s, err, aflags);
    if ((perr = smtp_param_parse(params, rest, rest_len, smtpd_param_flags(s, 1))) != SMTP_PARAM_OK)
        return smtpd_param_error(s, perr);
    smtp_addr_lower_domain(addr);
    /* Replies name the address as the client sent it. */
    VSTR *shown = vstr_alloc(64);

    if (addr->flags & SMTP_ADDR_IS_POSTMASTER)
        vstr_cpy(shown, vstr_str(addr->addr));
    else
        smtp_addr_external(shown, vstr_str(addr->addr), vstr_len(addr->addr));
    smtpd_complete_addr(s, addr);
    if (smtpd_check_rcpt(s, addr, vstr_str(shown), &code, &dsn, cfg->text) != SMTPD_CHECK_OK) {
        VSTR *text = vstr_alloc(128);

        vstr_cpy(text, vstr_str(cfg->text));
        smtpd_log_reject(s, "RCPT", code, dsn, vstr_str(text), vstr_str(addr->addr));
        smtpd_reply(s, code, dsn, "%s", vstr_str(text));
        vstr_free(text);
        vstr_free(shown);
        return SMTPD_ERROR;
    }
    vstr_free(shown);
    /* cleanup went away after "open": this transaction can no longer be queued. */
    if (txn->failed)
        return smtpd_fail(s, 451, "4.3.0", "Error: queue file write error");
    if (params->seen & SMTP_PARAM_SEEN_ORCPT) {
        VSTR *o = vstr_alloc(64);

        vstr_sprintf(o, "%s;%s", vstr_str(params->orcpt_type), vstr_str(params->orcpt_addr));
        orcpt = vstr_export(o);
    }
    notify = smtpd_notify_bits(params->notify);
    if (txn->cleanup == NULL) {
        /* smtpd_delay_open_until_valid_rcpt: the queue file starts here. */
        txn->pending_rcpt = mystrdup(vstr_str(addr->addr));
        txn->pending_orcpt = orcpt;
        txn->pending_notify = notify;
        if (smtpd_txn_open(s, SMTP_CMD_RCPT) < 0) {
            myfree(txn->pending_rcpt);
            myfree(txn->pending_orcpt);
            txn->pending_rcpt = txn->pending_orcpt = NULL;
            return SMTPD_ERROR;
        }
        return SMTPD_PENDING;
    }
    smtpd_rcpt_commit(s, vstr_str(addr->addr), orcpt, notify);
    myfree(orcpt);
    return SMTPD_OK;
}

/*
 * DATA and BDAT.
 */

/* smtpd_data - DATA (RFC 5321 4.1.1.4); the final reply comes from smtpd_data.c */
static int smtpd_data(SMTPD_SESSION *s, const SMTP_CMD *cmd)
{
    if (cmd->arg_len > 0)
        return smtpd_fail(s, 501, "5.5.4", "Syntax: DATA");
    if (s->txn.failed || s->txn.cleanup == NULL) {
        smtpd_txn_reset(s);
        s->state = smtpd_state_idle(s);
        return smtpd_fail(s, 451, "4.3.0", "Error: queue file write error");
    }
    smtpd_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
    smtpd_data_begin(s, SMTP_DATA_MODE_DATA);
    return SMTPD_PENDING;
}

/* smtpd_bdat_refuse - answer a BDAT that cannot be taken and skip its chunk */
static int smtpd_bdat_refuse(SMTPD_SESSION *s, uint64_t size, int code, const char *dsn,
                             const char *text)
{
    smtpd_reply(s, code, dsn, "%s", text);
    smtpd_skip(s, size);
    return SMTPD_ERROR;
}

/* smtpd_bdat - BDAT size [LAST] (RFC 3030); replies come at the end of the chunk */
static int smtpd_bdat(SMTPD_SESSION *s, const SMTP_CMD *cmd)
{
    SMTPD_TXN *txn = &s->txn;
    uint64_t size;
    int last;
    uint64_t limit = s->cfg->message_size_limit;

    if (smtp_cmd_bdat_parse(cmd->arg, cmd->arg_len, &size, &last) != SMTP_CMD_BDAT_OK) {
        /* Without a size we cannot know where the chunk ends: no way to resync. */
        smtpd_txn_reset(s);
        smtpd_reply(s, 521, "5.5.4", "Syntax: BDAT count [LAST]");
        smtpd_close_after_reply(s);
        return SMTPD_ERROR;
    }
    if (!(s->ext & SMTPD_EXT_CHUNKING))
        return smtpd_bdat_refuse(s, size, 502, "5.5.1", "Error: command not implemented");
    switch (s->state) {
    case SMTPD_ST_CONNECTED:
    case SMTPD_ST_GREETED:
        return smtpd_bdat_refuse(s, size, 503, "5.5.1", "Error: need MAIL command");
    case SMTPD_ST_MAIL:
        if (txn->rcpt_tried > 0)
            return smtpd_bdat_refuse(s, size, 554, "5.5.1", "Error: no valid recipients");
        return smtpd_bdat_refuse(s, size, 503, "5.5.1", "Error: need RCPT command");
    default: break;
    }
    if (txn->failed || txn->cleanup == NULL) {
        smtpd_txn_reset(s);
        s->state = smtpd_state_idle(s);
        return smtpd_bdat_refuse(s, size, 451, "4.3.0", "Error: queue file write error");
    }
    if (limit > 0 && (size > limit || txn->bdat_total > limit - size)) {
        smtpd_log_reject(s, "BDAT", 552, "5.3.4", "Chunk exceeds message size limit",
                         txn->first_rcpt);
        smtpd_txn_reset(s);
        s->state = smtpd_state_idle(s);
        return smtpd_bdat_refuse(s, size, 552, "5.3.4", "Chunk exceeds message size limit");
    }
    if (s->state == SMTPD_ST_RCPT)
        smtpd_data_begin(s, SMTP_DATA_MODE_BDAT);
    txn->bdat_total += size;
    txn->bdat_chunk = size;
    txn->bdat_last = last;
    smtp_data_bdat_chunk(txn->data, size, last);
    s->state = SMTPD_ST_BDAT;
    return SMTPD_PENDING;
}

/*
 * The rest.
 */

/* smtpd_rset - RSET (RFC 5321 4.1.1.5) */
static int smtpd_rset(SMTPD_SESSION *s, const SMTP_CMD *cmd)
{
    if (cmd->arg_len > 0)
        return smtpd_fail(s, 501, "5.5.4", "Syntax: RSET");
    smtpd_txn_reset(s);
    s->state = smtpd_state_idle(s);
    smtpd_reply(s, 250, "2.0.0", "Ok");
    return SMTPD_OK;
}

/* smtpd_noop - NOOP [string] (RFC 5321 4.1.1.9: the argument is ignored) */
static int smtpd_noop(SMTPD_SESSION *s, const SMTP_CMD *cmd)
{
    (void)cmd;
    smtpd_reply(s, 250, "2.0.0", "Ok");
    return SMTPD_OK;
}

/* smtpd_quit - QUIT (RFC 5321 4.1.1.10) */
static int smtpd_quit(SMTPD_SESSION *s, const SMTP_CMD *cmd)
{
    (void)cmd;
    smtpd_txn_reset(s);
    smtpd_reply(s, 221, "2.0.0", "Bye");
    smtpd_close_after_reply(s);
    return SMTPD_OK;
}

/* smtpd_vrfy - VRFY (RFC 5321 3.5.3): 252 when we would accept mail for it */
static int smtpd_vrfy(SMTPD_SESSION *s, const SMTP_CMD *cmd)
{
    SMTP_ADDR *addr = s->cfg->addr;
    int aflags = SMTP_ADDR_FLAG_RCPT | SMTP_ADDR_FLAG_LOCAL_OK | SMTP_ADDR_FLAG_LENIENT;
    size_t used;
    int code;
    const char *dsn;

    if (s->cfg->disable_vrfy)
        return smtpd_fail(s, 502, "5.5.1", "VRFY command is disabled");
    if (cmd->arg_len == 0)
        return smtpd_fail(s, 501, "5.5.4", "Syntax: VRFY address");
    if (s->ext & SMTPD_EXT_SMTPUTF8)
        aflags |= SMTP_ADDR_FLAG_UTF8;
    enum smtp_addr_err err = smtp_addr_parse(addr, cmd->arg, cmd->arg_len, aflags, &used);

    if (err == SMTP_ADDR_OK && used != cmd->arg_len)
        err = SMTP_ADDR_ERR_TRAILING;
    if (err != SMTP_ADDR_OK)
        return smtpd_addr_error(s, err, aflags);
    smtp_addr_lower_domain(addr);
    VSTR *shown = vstr_alloc(64);

    smtp_addr_external(shown, vstr_str(addr->addr), vstr_len(addr->addr));
    smtpd_complete_addr(s, addr);
    if (smtpd_check_vrfy(s, addr, vstr_str(shown), &code, &dsn, s->cfg->text) != SMTPD_CHECK_OK) {
        VSTR *text = vstr_alloc(128);

        vstr_cpy(text, vstr_str(s->cfg->text));
        smtpd_reply(s, code, dsn, "%s", vstr_str(text));
        vstr_free(text);
        vstr_free(shown);
        return SMTPD_ERROR;
    }
    /* 252: "cannot VRFY user, but will accept message and attempt delivery" */
    smtpd_reply(s, 252, "2.0.0", "%s", vstr_str(shown));
    vstr_free(shown);
    return SMTPD_OK;
}

/* smtpd_help - HELP (RFC 5321 4.1.1.8) */
static int smtpd_help(SMTPD_SESSION *s, const SMTP_CMD *cmd)
{
    (void)cmd;
    smtpd_reply(s, 214, "2.0.0",
                "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\n"
                "See RFC 5321 (SMTP), RFC 2920 (PIPELINING) and RFC 3030 (CHUNKING)");
    return SMTPD_OK;
}

/* smtpd_not_implemented - EXPN, ETRN and the extensions this release does not offer */
static int smtpd_not_implemented(SMTPD_SESSION *s, const SMTP_CMD *cmd)
{
    (void)cmd;
    return smtpd_fail(s, 502, "5.5.1", "Error: command not implemented");
}

/* smtpd_sequence_error - a known command in a state where it makes no sense */
static int smtpd_sequence_error(SMTPD_SESSION *s, const SMTPD_CMD_INFO *info)
{
    int chunking = s->state == SMTPD_ST_CHUNKING;

    switch (info->verb) {
    case SMTP_CMD_MAIL:
        return smtpd_fail(s, 503, "5.5.1",
                          chunking ? "Error: MAIL after BDAT" : "Error: nested MAIL command");
    case SMTP_CMD_RCPT:
        return smtpd_fail(s, 503, "5.5.1",
                          chunking ? "Error: RCPT after BDAT" : "Error: need MAIL command");
    case SMTP_CMD_DATA:
        if (chunking)
            return smtpd_fail(s, 503, "5.5.1", "Error: DATA after BDAT");
        if (s->state == SMTPD_ST_MAIL && s->txn.rcpt_tried > 0)
            return smtpd_fail(s, 554, "5.5.1", "Error: no valid recipients");
        return smtpd_fail(s, 503, "5.5.1", "Error: need RCPT command");
    default: return smtpd_fail(s, 503, "5.5.1", "Error: MAIL transaction in progress");
    }
}

/*
 * Command lines.
 */

/* smtpd_proto_line_error - refuse a line that never reaches a handler */
void smtpd_proto_line_error(SMTPD_SESSION *s, int flags)
{
    if (s->sasl != NULL && (flags & SMTP_CMD_LINE_TOO_LONG)) {
        /* An AUTH response over the limit: that ends the exchange. */
        smtpd_sasl_line(s, NULL, 0);
        return;
    }
    s->cur_stat = SMTPD_STAT_UNKNOWN;
    s->stat_total[SMTPD_STAT_UNKNOWN]++;
    if (flags & SMTP_CMD_LINE_TOO_LONG)
        smtpd_reply(s, 500, "5.5.2", "Error: command line too long");
    else if (flags & SMTP_CMD_LINE_NUL)
        smtpd_reply(s, 500, "5.5.2", "Error: NUL character in command");
    else if (flags & SMTP_CMD_LINE_BARE_CR)
        smtpd_reply(s, 500, "5.5.2", "Error: bare <CR> received");
    else if (flags & SMTP_CMD_LINE_BARE_LF)
        smtpd_reply(s, s->cfg->bare_newline_code,
                    s->cfg->bare_newline_code >= 500 ? "5.5.2" : "4.5.2",
                    "Error: bare <LF> received");
    else
        smtpd_reply(s, 500, "5.5.2", "Error: bad syntax");
    smtpd_cmd_done(s, SMTPD_ERROR);
}

/* smtpd_forbidden - a command from smtpd_forbidden_commands, or a header-like line */
static int smtpd_forbidden(SMTPD_SESSION *s, const SMTP_CMD *cmd)
{
    const ARGV *list = s->cfg->forbidden_commands;
    size_t i;

    for (i = 0; list && i < list->argc; i++)
        if (strlen(list->argv[i]) == cmd->name_len &&
            strncasecmp(list->argv[i], cmd->name, cmd->name_len) == 0)
            return 1;
    /* "Subject:" and friends: message text sent as commands. */
    if (cmd->name_len < 2 || cmd->name[cmd->name_len - 1] != ':')
        return 0;
    for (i = 0; i + 1 < cmd->name_len; i++)
        if (!isalnum((unsigned char)cmd->name[i]) && cmd->name[i] != '-')
            return 0;
    return 1;
}

/* smtpd_before_auth_ok - RFC 4954 6: what a client may do before AUTH when
   the server requires it: what it may do before STARTTLS, AUTH itself, and
   RCPT, DATA and BDAT, which cannot get past the missing MAIL anyway (BDAT
   must reach its handler, which skips the chunk) */
static int smtpd_before_auth_ok(const SMTPD_CMD_INFO *info)
{
    return (info->flags & SMTPD_CMDF_PRE_TLS) || info->verb == SMTP_CMD_AUTH ||
           info->verb == SMTP_CMD_RCPT || info->verb == SMTP_CMD_DATA ||
           info->verb == SMTP_CMD_BDAT;
}

/* smtpd_pipelining_violation - RFC 2920 3.1: input behind a LAST command */
static int smtpd_pipelining_violation(SMTPD_SESSION *s, const SMTPD_CMD_INFO *info)
{
    size_t pending = smtpd_input_len(s);

    if (!(info->flags & SMTPD_CMDF_LAST) || pending == 0)
        return 0;
    if (!s->ill_pipelining) {
        const char *peek = smtpd_input_peek(s, SMTPD_LOG_INPUT_MAX);

        s->ill_pipelining = 1;
        msg_info("improper command pipelining after %s from %s: %s", smtp_cmd_verb_name(info->verb),
                 s->peer.namaddr,
                 smtpd_printable(peek,
                                 pending < SMTPD_LOG_INPUT_MAX ? pending : SMTPD_LOG_INPUT_MAX,
                                 s->cfg->tmp));
    }
    return s->cfg->forbid_unauth_pipelining;
}

/* smtpd_line_flags - what is wrong with a command line (SMTP_CMD_LINE_* bits) */
static int smtpd_line_flags(SMTPD_SESSION *s, const char *line, size_t len)
{
    int flags = smtp_cmd_line_check(line, len);

    /* The 512 limit is checked per command below; MAIL and RCPT may be longer. */
    flags &= ~(SMTP_CMD_LINE_TOO_LONG | SMTP_CMD_LINE_NO_EOL);
    if ((flags & SMTP_CMD_LINE_BARE_LF) &&
        (s->cfg->bare_newline != SMTPD_BARE_REJECT || s->peer.bare_exempt))
        flags &= ~SMTP_CMD_LINE_BARE_LF;
    if (!flags && s->cfg->smtputf8_enable && !smtp_addr_utf8_valid(line, len))
        flags = -1;
    return flags;
}

/* smtpd_proto_command - one command line, terminator included */
int smtpd_proto_command(SMTPD_SESSION *s, const char *line, size_t len)
{
    const SMTPD_CMD_INFO *info;
    SMTP_CMD cmd;
    size_t stripped;
    int flags;

    /* While an AUTH exchange runs, lines are its responses, not commands. */
    if (s->sasl != NULL)
        return smtpd_sasl_line(s, line, len);
    stripped = smtp_cmd_line_strip(line, len);
    flags = smtpd_line_flags(s, line, len);
    s->cur_stat = -1;
    if (flags < 0) {
        s->stat_total[SMTPD_STAT_UNKNOWN]++;
        s->cur_stat = SMTPD_STAT_UNKNOWN;
        smtpd_reply(s, 500, "5.5.2", "Error: bad UTF-8 syntax");
        smtpd_cmd_done(s, SMTPD_ERROR);
        return 0;
    }
    if (flags) {
        if (flags & SMTP_CMD_LINE_BARE_LF)
            msg_info("bare <LF> received from %s", s->peer.namaddr);
        smtpd_proto_line_error(s, flags);
        return 0;
    }
    if (smtp_cmd_split(line, stripped, &cmd) < 0) {
        smtpd_proto_line_error(s, 0);
        return 0;
    }
    if (smtpd_forbidden(s, &cmd)) {
        msg_warn("non-SMTP command from %s: %s", s->peer.namaddr,
                 smtpd_printable(line, stripped, s->cfg->tmp));
        smtpd_txn_reset(s);
        smtpd_reply(s, 521, "5.7.0", "Error: I can break rules, too. Goodbye.");
        smtpd_close_after_reply(s);
        return 0;
    }
    info = smtpd_cmd_find(cmd.verb);
    if (len > SMTPD_CMD_LINE_MAX && (info == NULL || !(info->flags & SMTPD_CMDF_LONG))) {
        smtpd_proto_line_error(s, SMTP_CMD_LINE_TOO_LONG);
        return 0;
    }
    s->where = info ? smtp_cmd_verb_name(cmd.verb) : "UNKNOWN";
    s->cur_stat = info ? (int)info->stat : SMTPD_STAT_UNKNOWN;
    s->stat_total[s->cur_stat]++;
    if (info == NULL) {
        smtpd_reply(s, 500, "5.5.2", "Error: command not recognized");
        smtpd_cmd_done(s, SMTPD_ERROR);
        return 0;
    }
    if ((info->flags & SMTPD_CMDF_JUNK) && s->junk_count++ >= s->cfg->junk_command_limit)
        smtpd_count_error(s);
    if (smtpd_pipelining_violation(s, info)) {
        smtpd_txn_reset(s);
        smtpd_reply(s, 554, "5.5.0", "Error: SMTP protocol synchronization");
        smtpd_close_after_reply(s);
        return 0;
    }
    /* smtpd_tls_security_level = encrypt: nothing of substance before TLS. */
    if (!(info->flags & SMTPD_CMDF_PRE_TLS) && smtpd_tls_required(s)) {
        smtpd_reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
        smtpd_cmd_done(s, SMTPD_ERROR);
        return 0;
    }
    /* smtpd_sasl_auth_required: nothing of substance before AUTH (RFC 4954 6). */
    if (!smtpd_before_auth_ok(info) && smtpd_sasl_required(s)) {
        smtpd_reply(s, 530, "5.7.0", "Authentication required");
        smtpd_cmd_done(s, SMTPD_ERROR);
        return 0;
    }
    int result = (info->states & SMTPD_STATE_BIT(s->state)) ? info->fn(s, &cmd)
                                                            : smtpd_sequence_error(s, info);

    if (result != SMTPD_PENDING)
        smtpd_cmd_done(s, result);
    return 0;
}
