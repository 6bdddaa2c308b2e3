/*
 * smtpd_sasl - SMTP AUTH (RFC 4954) for smtpd: the AUTH command, the
 * exchange of challenges and responses, and what authentication changes
 * elsewhere (EHLO, MAIL AUTH=, the log, the queue file, Received:).
 *
 * THE AUTH COMMAND is answered in Postfix's order and words:
 *   503 5.5.1 Error: send HELO/EHLO first          (smtpd_helo_required)
 *   503 5.5.1 Error: authentication not enabled    (no SASL, or "auth" in
 *                                                   smtpd_discard_ehlo_keywords)
 *   503 5.5.1 Error: MAIL transaction in progress  (RFC 4954 4)
 *   504 5.5.4 Encryption required for requested authentication mechanism
 *                                                  (smtpd_tls_auth_only, no TLS)
 *   503 5.5.1 Error: already authenticated         (RFC 4954 4: one AUTH)
 *   501 5.5.4 Syntax: AUTH mechanism
 *   504 5.5.4 Unrecognized authentication type     (not offered)
 * then the exchange: "334 challenge" lines, each answered by one client
 * line; "*" cancels (501 5.7.0 Authentication aborted); a response longer
 * than smtpd_sasl_response_limit is refused (500 5.5.6); "=" as initial
 * response stands for an empty one (RFC 4954 4). The end:
 *   235 2.7.0 Authentication successful
 *   535 5.7.8 Error: authentication failed: REASON
 *   501 5.5.2 Cannot decode response                (bad base64 or message)
 *   454 4.7.0 Temporary authentication failure: REASON  (backend down, timeout,
 *                                                   or no usable backend at all)
 * Every answer but 235 counts as an error toward smtpd_soft_error_limit
 * (the tarpit) and smtpd_hard_error_limit (421 and disconnect), so a
 * password guesser gets slower and is then cut off; failed credentials are
 * also counted for the client address across sessions and processes
 * (smtpd_anvil_auth_failed), and smtpd_anvil_auth may refuse to start.
 *
 * LOGGING, as Postfix logs it (fail2ban's postfix filter matches these):
 *   warning: NAME[ADDR]: SASL LOGIN authentication failed: REASON
 *   warning: NAME[ADDR]: SASL PLAIN authentication aborted
 *   QUEUEID: client=NAME[ADDR], sasl_method=PLAIN, sasl_username=alice
 * A temporary failure of the backend is logged as "authentication failed
 * (temporary)": it is no sign of an attack, and log watchers that ban
 * password guessers must not ban every user during a backend outage.
 *
 * WAITING. The backend answers asynchronously (lib/sasl); meanwhile the
 * session reads nothing (SMTPD_BLOCK_AUTH), so a client cannot push
 * commands past an unanswered AUTH. The lines of the exchange may be longer
 * than command lines (smtpd_sasl_line_limit tells the reader how long).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mail/mail_conf.h"
#include "sasl/sasl_server.h"
#include "util/msg.h"
#include "util/mymalloc.h"

#include "smtpd.h"
#include "smtpd_anvil.h"
#include "smtpd_sasl.h"

#define SMTPD_SASL_RESPONSE_DEFAULT 12288 /* smtpd_sasl_response_limit = 0 */
#define SMTPD_SASL_REASON_MAX 200         /* backend text quoted in a reply or log line */
#define SMTPD_SASL_NAME_MAX 255           /* authenticated name kept (RFC 4616 2) */

/* The process's AUTH settings (NULL in SMTPD_CONFIG when AUTH is off). */
typedef struct SMTPD_SASL_CONFIG {
    SASL_SERVER *server;
    long response_limit;    /* smtpd_sasl_response_limit, capped */
    int broken_clients;     /* broken_sasl_auth_clients: also "AUTH=mechs" */
    int tls_auth_only;      /* smtpd_tls_auth_only */
    int auth_required;      /* smtpd_sasl_auth_required */
    int auth_header;        /* smtpd_sasl_authenticated_header */
    MATCH_LIST *exceptions; /* smtpd_sasl_exceptions_networks: AUTH not announced */
} SMTPD_SASL_CONFIG;

/* One AUTH exchange. */
typedef struct SMTPD_SASL_SESSION {
    SASL_SESS *sess;
    char mech[SMTPD_SASL_MECH_MAX + 1]; /* canonical name, for replies and logs */
} SMTPD_SASL_SESSION;

/*
 * Set-up.
 */

/* smtpd_sasl_list_or_die - an address list parameter; NULL when empty */
static MATCH_LIST *smtpd_sasl_list_or_die(const char *param)
{
    const char *value = var_str(param);
    VSTR *why;
    MATCH_LIST *ml;

    if (value[strspn(value, " \t,")] == 0)
        return NULL;
    why = vstr_alloc(100);
    if ((ml = match_list_new(param, value, MATCH_LIST_ADDR, why)) == NULL)
        msg_fatal("%s", vstr_str(why));
    vstr_free(why);
    return ml;
}

/* smtpd_sasl_init - AUTH settings and the backend (pre_init, as root) */
void smtpd_sasl_init(SMTPD_CONFIG *cfg, struct event_base *base)
{
    SMTPD_SASL_CONFIG *sc;
    SASL_SERVER_ARGS args;
    const char *type;
    VSTR *why;
    long limit;

    cfg->sasl = NULL;
    if (!var_bool("smtpd_sasl_auth_enable"))
        return;
    type = var_str("smtpd_sasl_type");
    if (strcmp(type, "postern") != 0 && strcmp(type, "dovecot") != 0)
        msg_fatal("smtpd_sasl_type = %s is not supported: use \"postern\" (a password table, "
                  "smtpd_sasl_password_maps) or \"dovecot\" (Dovecot's auth socket, "
                  "smtpd_sasl_path)",
                  type);
    limit = var_int("smtpd_sasl_response_limit");
    if (limit <= 0)
        limit = SMTPD_SASL_RESPONSE_DEFAULT;
    if (limit > SMTPD_SASL_RESPONSE_HARD_MAX) {
        msg_warn("smtpd_sasl_response_limit = %ld: using %d, the most a line may hold here", limit,
                 SMTPD_SASL_RESPONSE_HARD_MAX);
        limit = SMTPD_SASL_RESPONSE_HARD_MAX;
    }

    memset(&args, 0, sizeof(args));
    args.type = type;
    args.path = strcmp(type, "dovecot") == 0 ? var_str("smtpd_sasl_path")
                                             : var_str("smtpd_sasl_password_maps");
    args.mechanisms = var_str("smtpd_sasl_postern_mechanisms");
    args.security = var_str("smtpd_sasl_security_options");
    args.tls_security = var_str("smtpd_sasl_tls_security_options");
    args.filter = var_str("smtpd_sasl_mechanism_filter");
    args.service = var_str("smtpd_sasl_service");
    args.timeout = var_time("smtpd_sasl_backend_timeout");
    args.response_limit = limit;
    args.crypt_workers = var_int("smtpd_sasl_crypt_workers");
    args.base = base;

    sc = mycalloc(1, sizeof(*sc));
    why = vstr_alloc(100);
    /* A backend that cannot work (no table yet, unreadable table) fails
       closed without a crash loop: AUTH is not offered, AUTH gets 454, and
       a service with smtpd_sasl_auth_required = yes takes no mail. */
    if ((sc->server = sasl_server_create(&args, why)) == NULL)
        msg_warn("SASL authentication (smtpd_sasl_type = %s) is unavailable: %s -- AUTH is not "
                 "offered until this is fixed",
                 type, vstr_str(why));
    vstr_free(why);
    sc->response_limit = limit;
    sc->broken_clients = var_bool("broken_sasl_auth_clients");
    sc->tls_auth_only = var_bool("smtpd_tls_auth_only");
    sc->auth_required = var_bool("smtpd_sasl_auth_required");
    sc->auth_header = var_bool("smtpd_sasl_authenticated_header");
    sc->exceptions = smtpd_sasl_list_or_die("smtpd_sasl_exceptions_networks");
    cfg->sasl = sc;

    /* The reader copies each line into cfg->line: make room for AUTH lines. */
    if (cfg->line != NULL && cfg->line->limit < (size_t)limit + SMTPD_SASL_LINE_SLACK)
        vstr_set_limit(cfg->line, (size_t)limit + SMTPD_SASL_LINE_SLACK);
}

/*
 * EHLO and the session's state.
 */

/* smtpd_sasl_ehlo - the mechanisms to announce now, or NULL */
const char *smtpd_sasl_ehlo(SMTPD_SESSION *s)
{
    SMTPD_SASL_CONFIG *sc = s->cfg->sasl;
    const char *mechs;

    if (sc == NULL || sc->server == NULL || (s->cfg->ext_discard & SMTPD_EXT_AUTH))
        return NULL;
    /* smtpd_tls_auth_only: passwords never cross the network in clear. */
    if (sc->tls_auth_only && s->tls == NULL)
        return NULL;
    if (sc->exceptions != NULL && match_list_addr(sc->exceptions, s->peer.addr) == 1)
        return NULL;
    mechs = sasl_server_mechs(sc->server, s->tls != NULL);
    return mechs != NULL && *mechs ? mechs : NULL;
}

/* smtpd_sasl_ehlo_lines - "\nAUTH mechs" (and "\nAUTH=mechs" for old Outlook) */
void smtpd_sasl_ehlo_lines(SMTPD_SESSION *s, VSTR *text)
{
    const char *mechs = smtpd_sasl_ehlo(s);

    if (mechs == NULL)
        return;
    vstr_sprintf_append(text, "\nAUTH %s", mechs);
    /* broken_sasl_auth_clients: the draft syntax of RFC 2554 that Outlook
       Express 4 and Microsoft Exchange 5.0 look for. */
    if (s->cfg->sasl->broken_clients)
        vstr_sprintf_append(text, "\nAUTH=%s", mechs);
}

/* smtpd_sasl_line_limit - longer lines for AUTH and its responses, else 0 */
size_t smtpd_sasl_line_limit(const SMTPD_SESSION *s, const char *peek, size_t peek_len)
{
    const SMTPD_SASL_CONFIG *sc = s->cfg->sasl;

    if (sc == NULL)
        return 0;
    if (s->sasl != NULL)
        return (size_t)sc->response_limit + 2; /* CRLF */
    if (peek_len >= 5 && strncasecmp(peek, "AUTH", 4) == 0 && (peek[4] == ' ' || peek[4] == '\t'))
        return (size_t)sc->response_limit + SMTPD_SASL_LINE_SLACK;
    return 0;
}

/* smtpd_sasl_required - AUTH is required and has not happened */
int smtpd_sasl_required(const SMTPD_SESSION *s)
{
    const SMTPD_SASL_CONFIG *sc = s->cfg->sasl;

    return sc != NULL && sc->auth_required && s->sasl_username == NULL;
}

/* smtpd_sasl_permitted - authenticated, and not anonymously */
int smtpd_sasl_permitted(const SMTPD_SESSION *s)
{
    return s->sasl_username != NULL && s->sasl_method != NULL &&
           strcasecmp(s->sasl_method, "ANONYMOUS") != 0;
}

/* smtpd_sasl_copy - a copy of text fit for logs and headers: controls become '?' */
static char *smtpd_sasl_copy(const char *text, size_t max)
{
    size_t len = strnlen(text, max);
    char *copy = mystrndup(text, len);

    for (char *cp = copy; *cp; cp++)
        if ((unsigned char)*cp < 0x20 || *cp == 0x7f)
            *cp = '?';
    return copy;
}

/* smtpd_sasl_end - forget the exchange (not the authentication) */
static void smtpd_sasl_end(SMTPD_SESSION *s)
{
    if (s->sasl == NULL)
        return;
    if (s->sasl->sess != NULL)
        sasl_sess_free(s->sasl->sess);
    myfree(s->sasl);
    s->sasl = NULL;
}

/* smtpd_sasl_reset - forget the exchange and the authentication */
void smtpd_sasl_reset(SMTPD_SESSION *s)
{
    smtpd_sasl_end(s);
    /* No resume here: the caller is in the middle of its own work. */
    s->block &= ~SMTPD_BLOCK_AUTH;
    myfree(s->sasl_username);
    myfree(s->sasl_method);
    s->sasl_username = NULL;
    s->sasl_method = NULL;
}

/*
 * The exchange.
 */

/* smtpd_sasl_finish - the AUTH command is over: account for it, read again */
static void smtpd_sasl_finish(SMTPD_SESSION *s, int result)
{
    smtpd_sasl_end(s);
    smtpd_cmd_done(s, result);
    smtpd_unblock(s, SMTPD_BLOCK_AUTH);
}

/* smtpd_sasl_reason - backend text for a reply or log line, never empty */
static const char *smtpd_sasl_reason(const char *text, VSTR *buf)
{
    if (text == NULL || *text == 0)
        return "(reason unavailable)";
    return smtpd_printable(text, strnlen(text, SMTPD_SASL_REASON_MAX), buf);
}

/* smtpd_sasl_failed - credentials refused or garbled: log as Postfix, count */
static void smtpd_sasl_failed(SMTPD_SESSION *s, const char *reason)
{
    msg_warn("%s: SASL %s authentication failed: %s", s->peer.namaddr, s->sasl->mech, reason);
    s->auth_failures++;
    smtpd_anvil_auth_failed(s);
}

/* smtpd_sasl_base64 - does text look like a base64 challenge */
static int smtpd_sasl_base64(const char *text)
{
    size_t len = strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");

    return text[len + strspn(text + len, "=")] == 0;
}

/* smtpd_sasl_done - SASL_DONE_FN: the backend's answer */
static void smtpd_sasl_done(void *context, enum sasl_result result, const char *text)
{
    SMTPD_SESSION *s = context;
    const char *reason;
    VSTR *buf;

    if (s->sasl == NULL)
        msg_panic("smtpd_sasl_done: no AUTH exchange for %s", s->peer.namaddr);
    smtpd_enter(s);
    if (s->dead || s->state == SMTPD_ST_CLOSING) {
        /* The session ended meanwhile (time limit, lost client). */
        smtpd_sasl_end(s);
        smtpd_leave(s);
        return;
    }
    if (text == NULL)
        text = "";
    buf = vstr_alloc(64);
    switch (result) {
    case SASL_CONTINUE:
        if (!smtpd_sasl_base64(text)) {
            msg_warn("%s: SASL %s: the authentication backend sent a malformed challenge",
                     s->peer.namaddr, s->sasl->mech);
            smtpd_reply(s, 454, "4.7.0", "Temporary authentication failure: backend error");
            smtpd_sasl_finish(s, SMTPD_ERROR);
            break;
        }
        /* Raw: a long challenge must not be wrapped like reply text. */
        vstr_sprintf(buf, "334 %s\r\n", text);
        smtpd_reply_raw(s, vstr_str(buf), vstr_len(buf));
        smtpd_unblock(s, SMTPD_BLOCK_AUTH);
        break;
    case SASL_OK:
        myfree(s->sasl_username);
        myfree(s->sasl_method);
        s->sasl_username = smtpd_sasl_copy(text, SMTPD_SASL_NAME_MAX);
        s->sasl_method = mystrdup(s->sasl->mech);
        smtpd_reply(s, 235, "2.7.0", "Authentication successful");
        smtpd_sasl_finish(s, SMTPD_OK);
        break;
    case SASL_FAIL:
        reason = smtpd_sasl_reason(text, buf);
        smtpd_sasl_failed(s, reason);
        smtpd_reply(s, 535, "5.7.8", "Error: authentication failed: %s", reason);
        smtpd_sasl_finish(s, SMTPD_ERROR);
        break;
    case SASL_BADPROT:
        smtpd_sasl_failed(s, smtpd_sasl_reason(text, buf));
        smtpd_reply(s, 501, "5.5.2", "Cannot decode response");
        smtpd_sasl_finish(s, SMTPD_ERROR);
        break;
    case SASL_TEMPFAIL:
    default:
        reason = smtpd_sasl_reason(text, buf);
        msg_warn("%s: SASL %s authentication failed (temporary): %s", s->peer.namaddr,
                 s->sasl->mech, reason);
        smtpd_reply(s, 454, "4.7.0", "Temporary authentication failure: %s", reason);
        smtpd_sasl_finish(s, SMTPD_ERROR);
        break;
    }
    vstr_free(buf);
    smtpd_leave(s);
}

/* smtpd_sasl_fail - refuse the AUTH command itself; SMTPD_ERROR */
static int smtpd_sasl_fail(SMTPD_SESSION *s, int code, const char *dsn, const char *text)
{
    smtpd_reply(s, code, dsn, "%s", text);
    return SMTPD_ERROR;
}

/* smtpd_sasl_mech_ok - RFC 4422 3.1: 1*20 (ALPHA / DIGIT / "-" / "_") */
static int smtpd_sasl_mech_ok(const char *mech, size_t len)
{
    if (len == 0 || len > SMTPD_SASL_MECH_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)mech[i]) && mech[i] != '-' && mech[i] != '_')
            return 0;
    return 1;
}

/* smtpd_sasl_auth - AUTH mechanism [initial-response] (RFC 4954 4) */
int smtpd_sasl_auth(SMTPD_SESSION *s, const SMTP_CMD *cmd)
{
    SMTPD_SASL_CONFIG *sc = s->cfg->sasl;
    const char *arg = cmd->arg_len > 0 ? cmd->arg : "";
    size_t mlen = 0;
    const char *resp;
    size_t rlen;
    char mech[SMTPD_SASL_MECH_MAX + 1];
    SASL_CLIENT_INFO info;
    SMTPD_SASL_SESSION *ss;
    char *initial = NULL;
    VSTR *why;

    if (s->cfg->helo_required && s->helo_name == NULL)
        return smtpd_sasl_fail(s, 503, "5.5.1", "Error: send HELO/EHLO first");
    if (sc == NULL || (s->cfg->ext_discard & SMTPD_EXT_AUTH))
        return smtpd_sasl_fail(s, 503, "5.5.1", "Error: authentication not enabled");
    if (s->txn.sender != NULL || s->state == SMTPD_ST_MAIL || s->state == SMTPD_ST_RCPT ||
        s->state == SMTPD_ST_CHUNKING)
        return smtpd_sasl_fail(s, 503, "5.5.1", "Error: MAIL transaction in progress");
    if (sc->tls_auth_only && s->tls == NULL)
        return smtpd_sasl_fail(s, 504, "5.5.4",
                               "Encryption required for requested authentication mechanism");
    if (s->sasl_username != NULL)
        return smtpd_sasl_fail(s, 503, "5.5.1", "Error: already authenticated");
    /* The mechanism, then at most one token: the initial response. */
    while (mlen < cmd->arg_len && arg[mlen] != ' ' && arg[mlen] != '\t')
        mlen++;
    resp = arg + mlen;
    rlen = cmd->arg_len - mlen;
    while (rlen > 0 && (*resp == ' ' || *resp == '\t'))
        resp++, rlen--;
    if (mlen == 0 || memchr(resp, ' ', rlen) != NULL || memchr(resp, '\t', rlen) != NULL)
        return smtpd_sasl_fail(s, 501, "5.5.4", "Syntax: AUTH mechanism");
    if (!smtpd_sasl_mech_ok(arg, mlen)) {
        smtpd_printable(arg, mlen, s->cfg->tmp);
        msg_warn("%s: SASL %s authentication failed: Invalid authentication mechanism",
                 s->peer.namaddr, vstr_str(s->cfg->tmp));
        return smtpd_sasl_fail(s, 504, "5.5.4", "Unrecognized authentication type");
    }
    memcpy(mech, arg, mlen);
    mech[mlen] = 0;
    if (sc->server == NULL)
        return smtpd_sasl_fail(s, 454, "4.7.0",
                               "Temporary authentication failure: server configuration error");
    if (rlen > (size_t)sc->response_limit)
        return smtpd_sasl_fail(s, 500, "5.5.6", "SASL response limit exceeded");
    /* Across sessions: the AUTH rate and the failure limit per client. */
    if (smtpd_anvil_auth(s) < 0)
        return SMTPD_ERROR;
    if (rlen > 0)
        /* RFC 4954 4: "=" is an empty initial response. */
        initial = (rlen == 1 && *resp == '=') ? mystrdup("") : mystrndup(resp, rlen);

    memset(&info, 0, sizeof(info));
    info.client_addr = s->peer.addr;
    info.client_port = s->peer.port;
    info.local_addr = s->peer.local_addr;
    info.local_port = "";
    info.tls_active = s->tls != NULL;
    ss = mycalloc(1, sizeof(*ss));
    why = vstr_alloc(64);
    ss->sess = sasl_sess_start(sc->server, mech, initial, &info, smtpd_sasl_done, s, why);
    myfree(initial);
    if (ss->sess == NULL) {
        myfree(ss);
        for (char *cp = mech; *cp; cp++)
            *cp = (char)toupper((unsigned char)*cp);
        msg_warn("%s: SASL %s authentication failed: Invalid authentication mechanism",
                 s->peer.namaddr, mech);
        vstr_free(why);
        return smtpd_sasl_fail(s, 504, "5.5.4", "Unrecognized authentication type");
    }
    vstr_free(why);
    snprintf(ss->mech, sizeof(ss->mech), "%s", sasl_sess_mech(ss->sess));
    s->sasl = ss;
    /* Nothing more is read until the backend has answered. */
    smtpd_block(s, SMTPD_BLOCK_AUTH);
    return SMTPD_PENDING;
}

/* smtpd_sasl_line - the client's answer to a 334 challenge */
int smtpd_sasl_line(SMTPD_SESSION *s, const char *line, size_t len)
{
    SMTPD_SASL_SESSION *ss = s->sasl;
    size_t n;

    if (ss == NULL)
        msg_panic("smtpd_sasl_line: no AUTH exchange for %s", s->peer.namaddr);
    if (line == NULL) {
        smtpd_reply(s, 500, "5.5.6", "SASL response limit exceeded");
        smtpd_sasl_finish(s, SMTPD_ERROR);
        return 0;
    }
    n = smtp_cmd_line_strip(line, len);
    if (n == 1 && line[0] == '*') {
        /* RFC 4954 4: the client cancels the exchange. */
        msg_warn("%s: SASL %s authentication aborted", s->peer.namaddr, ss->mech);
        smtpd_reply(s, 501, "5.7.0", "Authentication aborted");
        smtpd_sasl_finish(s, SMTPD_ERROR);
        return 0;
    }
    if (n > (size_t)s->cfg->sasl->response_limit) {
        smtpd_reply(s, 500, "5.5.6", "SASL response limit exceeded");
        smtpd_sasl_finish(s, SMTPD_ERROR);
        return 0;
    }
    smtpd_block(s, SMTPD_BLOCK_AUTH);
    sasl_sess_step(ss->sess, line, n);
    return 0;
}

/*
 * After AUTH: MAIL, the log, the queue file, Received:.
 */

/* smtpd_sasl_mail_param - MAIL FROM ... AUTH=<mailbox> (RFC 4954 5) */
void smtpd_sasl_mail_param(SMTPD_SESSION *s, const char *value)
{
    myfree(s->txn.sasl_sender);
    s->txn.sasl_sender = NULL;
    /* Only an authenticated client is trusted to name the original
       submitter; for anyone else it is as if AUTH=<> had been given. */
    if (value == NULL || s->sasl_username == NULL || strcmp(value, "<>") == 0)
        return;
    s->txn.sasl_sender = smtpd_sasl_copy(value, strlen(value));
}

/* smtpd_sasl_txn_open - the "client=" log line and the SASL attributes */
void smtpd_sasl_txn_open(SMTPD_SESSION *s)
{
    VSTR *line = vstr_alloc(128);

    vstr_sprintf(line, "%s: client=%s", s->txn.queue_id, s->peer.namaddr);
    if (s->sasl_method)
        vstr_sprintf_append(line, ", sasl_method=%s", s->sasl_method);
    if (s->sasl_username)
        vstr_sprintf_append(line, ", sasl_username=%s", s->sasl_username);
    if (s->txn.sasl_sender)
        vstr_sprintf_append(line, ", sasl_sender=%s", s->txn.sasl_sender);
    msg_info("%s", vstr_str(line));
    vstr_free(line);
    if (s->txn.cleanup == NULL)
        return;
    if (s->sasl_method)
        smtpd_cleanup_attr(s->txn.cleanup, "sasl_method", s->sasl_method);
    if (s->sasl_username)
        smtpd_cleanup_attr(s->txn.cleanup, "sasl_username", s->sasl_username);
    if (s->txn.sasl_sender)
        smtpd_cleanup_attr(s->txn.cleanup, "sasl_sender", s->txn.sasl_sender);
}

/* smtpd_sasl_received - "(Authenticated sender: NAME)" for Received: */
void smtpd_sasl_received(const SMTPD_SESSION *s, VSTR *hdr)
{
    const SMTPD_SASL_CONFIG *sc = s->cfg->sasl;
    char *name;

    if (sc == NULL || !sc->auth_header || s->sasl_username == NULL)
        return;
    /* Inside a header comment: no parentheses or backslashes of the user's. */
    name = smtpd_sasl_copy(s->sasl_username, SMTPD_SASL_NAME_MAX);
    for (char *cp = name; *cp; cp++)
        if (*cp == '(' || *cp == ')' || *cp == '\\')
            *cp = '?';
    vstr_sprintf_append(hdr, "\t(Authenticated sender: %s)\n", name);
    myfree(name);
}
