/*
 * smtpd_anvil - per-client connection, rate and AUTH failure limits,
 * counted across all processes of the service by the anvil service (see
 * smtpd_anvil.h for the contract, anvil(8) for the service).
 *
 * Which limit applies where, and what the client hears (Postfix's replies
 * and log lines, so that log tools keep working):
 *
 *   connect   smtpd_client_connection_count_limit, ..._connection_rate_limit
 *             421 4.7.0 HOST Error: too many connections from ADDR
 *   MAIL      smtpd_client_message_rate_limit
 *             450 4.7.1 Error: too much mail from ADDR
 *   RCPT      smtpd_client_recipient_rate_limit
 *             450 4.7.1 Error: too many recipients from ADDR
 *   STARTTLS  smtpd_client_new_tls_session_rate_limit
 *             454 4.7.0 Error: too many new TLS sessions from ADDR
 *             (wrapper mode: the connection is closed without a reply)
 *   AUTH      smtpd_client_auth_rate_limit
 *             450 4.7.1 Error: too many AUTH commands from ADDR
 *             smtpd_client_auth_failure_limit (Postern): failed AUTH
 *             commands per anvil_rate_time_unit; once reached, every AUTH
 *             gets, without a word to the authentication backend,
 *             454 4.7.0 Error: too many failed authentications from ADDR
 *             (RFC 4954 6: 454 is the temporary AUTH failure, so a
 *             legitimate client tries again later; a password guesser gets
 *             no more answers to learn from)
 *
 * A limit of 0 is off; the count is compared after the new event is
 * counted, so a limit of N allows N. Clients in
 * smtpd_client_event_limit_exceptions are neither limited nor counted.
 *
 * Without the anvil service (no private/anvil socket when smtpd starts, or
 * one nobody listens on) the connection count is kept within this process
 * (smtpd_peer.c), the AUTH failure limit within the session, and the rates
 * are not limited.
 * When anvil is configured but does not answer, every limit fails open:
 * lib/mail/anvil_clnt.c logs it and the client is served.
 */
#include <sys/stat.h>

#include "mail/anvil_clnt.h"
#include "mail/mail_conf.h"
#include "util/msg.h"
#include "util/mymalloc.h"

#include "smtpd_anvil.h"

typedef struct SMTPD_ANVIL_CONFIG {
    ANVIL_CLNT *clnt; /* NULL: no anvil service; connection count in-process */
    long conn_count_limit;
    long conn_rate_limit;
    long mail_rate_limit;
    long rcpt_rate_limit;
    long newtls_rate_limit;
    long auth_rate_limit;
    long auth_failure_limit;
} SMTPD_ANVIL_CONFIG;

/* smtpd_anvil_init - read the limits once; look for the anvil service */
void smtpd_anvil_init(SMTPD_CONFIG *cfg)
{
    SMTPD_ANVIL_CONFIG *a = mycalloc(1, sizeof(*a));
    struct stat st;

    a->conn_count_limit = var_int("smtpd_client_connection_count_limit");
    a->conn_rate_limit = var_int("smtpd_client_connection_rate_limit");
    a->mail_rate_limit = var_int("smtpd_client_message_rate_limit");
    a->rcpt_rate_limit = var_int("smtpd_client_recipient_rate_limit");
    a->newtls_rate_limit = var_int("smtpd_client_new_tls_session_rate_limit");
    a->auth_rate_limit = var_int("smtpd_client_auth_rate_limit");
    a->auth_failure_limit = var_int("smtpd_client_auth_failure_limit");
    if (a->conn_count_limit <= 0 && a->conn_rate_limit <= 0 && a->mail_rate_limit <= 0 &&
        a->rcpt_rate_limit <= 0 && a->newtls_rate_limit <= 0 && a->auth_rate_limit <= 0 &&
        a->auth_failure_limit <= 0) {
        myfree(a);
        cfg->anvil = NULL;
        return;
    }
    /* Called in queue_directory, before any chroot: the path holds in both. */
    if (stat(ANVIL_SERVICE_PATH, &st) == 0 && S_ISSOCK(st.st_mode)) {
        a->clnt = anvil_clnt_create(ANVIL_SERVICE_PATH, ANVIL_CLNT_TIMEOUT_MS);
    } else if (a->conn_rate_limit > 0 || a->mail_rate_limit > 0 || a->rcpt_rate_limit > 0 ||
               a->newtls_rate_limit > 0 || a->auth_rate_limit > 0) {
        msg_warn("no anvil service (%s): client rate limits are not enforced; add \"anvil unix "
                 "- - n - 1 anvil\" to master.cf",
                 ANVIL_SERVICE_PATH);
    }
    cfg->anvil = a;
}

/* smtpd_anvil_active - a limit may apply to this session's client */
static SMTPD_ANVIL_CONFIG *smtpd_anvil_active(const SMTPD_SESSION *s)
{
    return s->peer.limit_exempt ? NULL : s->cfg->anvil;
}

/* smtpd_anvil_refuse_connect - 421 and close */
static int smtpd_anvil_refuse_connect(SMTPD_SESSION *s)
{
    smtpd_reply(s, 421, "4.7.0", "%s Error: too many connections from %s", s->cfg->myhostname,
                s->peer.addr);
    smtpd_close_after_reply(s);
    return -1;
}

/* smtpd_anvil_local_count - the connection count limit within this process */
static int smtpd_anvil_local_count(SMTPD_SESSION *s, long limit)
{
    long count;

    if (limit <= 0)
        return 0;
    count = smtpd_peer_count_add(&s->peer);
    if (count <= limit)
        return 0;
    msg_warn("Connection concurrency limit exceeded: %ld from %s for service %s", count,
             s->peer.namaddr, s->cfg->service);
    return smtpd_anvil_refuse_connect(s);
}

/* smtpd_anvil_connect - a new client: count it; apply the count and rate limits */
int smtpd_anvil_connect(SMTPD_SESSION *s)
{
    SMTPD_ANVIL_CONFIG *a = smtpd_anvil_active(s);
    ANVIL_COUNTS c;

    if (a == NULL)
        return 0;
    if (a->clnt == NULL)
        return smtpd_anvil_local_count(s, a->conn_count_limit);
    if (anvil_clnt_connect(a->clnt, s->cfg->service, s->peer.addr, &c) < 0)
        /* Nothing listens (a socket left from an earlier master.cf): count here. */
        return anvil_clnt_absent(a->clnt) ? smtpd_anvil_local_count(s, a->conn_count_limit) : 0;
    s->peer.anvil = 1;
    if (a->conn_count_limit > 0 && c.count > a->conn_count_limit) {
        msg_warn("Connection concurrency limit exceeded: %ld from %s for service %s", c.count,
                 s->peer.namaddr, s->cfg->service);
        return smtpd_anvil_refuse_connect(s);
    }
    if (a->conn_rate_limit > 0 && c.rate[ANVIL_EV_CONN] > a->conn_rate_limit) {
        msg_warn("Connection rate limit exceeded: %ld from %s for service %s",
                 c.rate[ANVIL_EV_CONN], s->peer.namaddr, s->cfg->service);
        return smtpd_anvil_refuse_connect(s);
    }
    return 0;
}

/* smtpd_anvil_disconnect - the session ends: give back what connect counted */
void smtpd_anvil_disconnect(SMTPD_SESSION *s)
{
    smtpd_peer_count_del(&s->peer);
    if (s->peer.anvil) {
        s->peer.anvil = 0;
        if (s->cfg->anvil && s->cfg->anvil->clnt)
            (void)anvil_clnt_disconnect(s->cfg->anvil->clnt, s->cfg->service, s->peer.addr);
    }
}

/* smtpd_anvil_mail - smtpd_client_message_rate_limit */
int smtpd_anvil_mail(SMTPD_SESSION *s)
{
    SMTPD_ANVIL_CONFIG *a = smtpd_anvil_active(s);
    ANVIL_COUNTS c;

    if (a == NULL || a->clnt == NULL || a->mail_rate_limit <= 0 ||
        anvil_clnt_mail(a->clnt, s->cfg->service, s->peer.addr, &c) < 0 ||
        c.rate[ANVIL_EV_MAIL] <= a->mail_rate_limit)
        return 0;
    msg_warn("Message delivery request rate limit exceeded: %ld from %s for service %s",
             c.rate[ANVIL_EV_MAIL], s->peer.namaddr, s->cfg->service);
    smtpd_reply(s, 450, "4.7.1", "Error: too much mail from %s", s->peer.addr);
    return -1;
}

/* smtpd_anvil_rcpt - smtpd_client_recipient_rate_limit */
int smtpd_anvil_rcpt(SMTPD_SESSION *s)
{
    SMTPD_ANVIL_CONFIG *a = smtpd_anvil_active(s);
    ANVIL_COUNTS c;

    if (a == NULL || a->clnt == NULL || a->rcpt_rate_limit <= 0 ||
        anvil_clnt_rcpt(a->clnt, s->cfg->service, s->peer.addr, &c) < 0 ||
        c.rate[ANVIL_EV_RCPT] <= a->rcpt_rate_limit)
        return 0;
    msg_warn("Recipient address rate limit exceeded: %ld from %s for service %s",
             c.rate[ANVIL_EV_RCPT], s->peer.namaddr, s->cfg->service);
    smtpd_reply(s, 450, "4.7.1", "Error: too many recipients from %s", s->peer.addr);
    return -1;
}

/* smtpd_anvil_newtls - smtpd_client_new_tls_session_rate_limit, before a handshake */
int smtpd_anvil_newtls(SMTPD_SESSION *s)
{
    SMTPD_ANVIL_CONFIG *a = smtpd_anvil_active(s);
    ANVIL_COUNTS c;

    if (a == NULL || a->clnt == NULL || a->newtls_rate_limit <= 0 ||
        anvil_clnt_newtls(a->clnt, s->cfg->service, s->peer.addr, &c) < 0 ||
        c.rate[ANVIL_EV_NEWTLS] <= a->newtls_rate_limit)
        return 0;
    msg_warn("New TLS session rate limit exceeded: %ld from %s for service %s",
             c.rate[ANVIL_EV_NEWTLS], s->peer.namaddr, s->cfg->service);
    if (s->where == NULL) {
        /* Wrapper mode: the client speaks TLS first and could not read a reply. */
        smtpd_close_after_reply(s);
        return -1;
    }
    smtpd_reply(s, 454, "4.7.0", "Error: too many new TLS sessions from %s", s->peer.addr);
    return -1;
}

/* smtpd_anvil_auth_refuse - the AUTH failure limit is reached */
static int smtpd_anvil_auth_refuse(SMTPD_SESSION *s, long failures)
{
    msg_warn("AUTH failure limit reached: %ld from %s for service %s", failures, s->peer.namaddr,
             s->cfg->service);
    smtpd_reply(s, 454, "4.7.0", "Error: too many failed authentications from %s", s->peer.addr);
    return -1;
}

/* smtpd_anvil_auth - before an AUTH exchange: the AUTH rate and failure limits */
int smtpd_anvil_auth(SMTPD_SESSION *s)
{
    SMTPD_ANVIL_CONFIG *a = smtpd_anvil_active(s);
    ANVIL_COUNTS c;

    if (a == NULL || (a->auth_rate_limit <= 0 && a->auth_failure_limit <= 0))
        return 0;
    if (a->clnt == NULL || anvil_clnt_auth(a->clnt, s->cfg->service, s->peer.addr, &c) < 0) {
        /* No count across sessions: this session's own failures still count. */
        if (a->auth_failure_limit > 0 && s->auth_failures >= a->auth_failure_limit)
            return smtpd_anvil_auth_refuse(s, s->auth_failures);
        return 0;
    }
    if (a->auth_rate_limit > 0 && c.rate[ANVIL_EV_AUTH] > a->auth_rate_limit) {
        msg_warn("AUTH command rate limit exceeded: %ld from %s for service %s",
                 c.rate[ANVIL_EV_AUTH], s->peer.namaddr, s->cfg->service);
        smtpd_reply(s, 450, "4.7.1", "Error: too many AUTH commands from %s", s->peer.addr);
        return -1;
    }
    if (a->auth_failure_limit > 0 && c.rate[ANVIL_EV_AUTH_FAIL] >= a->auth_failure_limit)
        return smtpd_anvil_auth_refuse(s, c.rate[ANVIL_EV_AUTH_FAIL]);
    return 0;
}

/* smtpd_anvil_auth_failed - count one failed AUTH for the client address */
void smtpd_anvil_auth_failed(SMTPD_SESSION *s)
{
    SMTPD_ANVIL_CONFIG *a = smtpd_anvil_active(s);

    if (a == NULL || a->clnt == NULL || a->auth_failure_limit <= 0)
        return;
    (void)anvil_clnt_auth_fail(a->clnt, s->cfg->service, s->peer.addr, NULL);
}
