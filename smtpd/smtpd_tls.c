/*
 * smtpd_tls - STARTTLS, wrapper mode and the TLS security level of the SMTP
 * server (see smtpd_tls.h for the session flow, man/smtpd.8 for the
 * parameters).
 *
 * While a handshake runs, s->client is the OpenSSL bufferevent in its
 * accepting state with this module's event callback, and the session is
 * blocked (SMTPD_BLOCK_TLS): smtpd.c reads no input and runs no command.
 * s->tls is set only once the handshake has completed, so that everything
 * that asks "is this session encrypted" (ESMTPS, smtpd_tls_auth_only, the
 * encrypt level) sees TLS only when it is there.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "tls/tls_info.h"
#include "tls/tls_server.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"

#include "smtpd.h"
#include "smtpd_anvil.h"
#include "smtpd_sasl.h"
#include "smtpd_tls.h"

#define SMTPD_TLS_ERRORS_MAX 8   /* OpenSSL errors logged per failed handshake */
#define SMTPD_TLS_GROUPS_MAX 512 /* longest key exchange group list built */

/* smtpd_tls_security_level */
enum smtpd_tls_level {
    SMTPD_TLS_NONE,
    SMTPD_TLS_MAY,
    SMTPD_TLS_ENCRYPT,
};

struct SMTPD_TLS_CONFIG {
    SSL_CTX *ctx; /* NULL: TLS is wanted but not usable (logged at start) */
    enum smtpd_tls_level level;
    int wrapper;           /* smtpd_tls_wrappermode */
    long starttls_timeout; /* seconds */
    int received_header;   /* smtpd_tls_received_header */
};

struct SMTPD_TLS_SESSION {
    TLS_INFO info;
};

/*
 * Configuration.
 */

/* smtpd_tls_level - smtpd_tls_security_level, or the older booleans */
static enum smtpd_tls_level smtpd_tls_level(void)
{
    const char *level = var_str("smtpd_tls_security_level");

    /* Postfix: an empty level defers to smtpd_use_tls / smtpd_enforce_tls. */
    if (*level == 0)
        return var_bool("smtpd_enforce_tls") ? SMTPD_TLS_ENCRYPT
               : var_bool("smtpd_use_tls")   ? SMTPD_TLS_MAY
                                             : SMTPD_TLS_NONE;
    if (strcasecmp(level, "none") == 0)
        return SMTPD_TLS_NONE;
    if (strcasecmp(level, "may") == 0)
        return SMTPD_TLS_MAY;
    if (strcasecmp(level, "encrypt") == 0)
        return SMTPD_TLS_ENCRYPT;
    /* Levels that verify the client's certificate: a server cannot. */
    if (strcasecmp(level, "verify") == 0 || strcasecmp(level, "secure") == 0 ||
        strcasecmp(level, "fingerprint") == 0 || strcasecmp(level, "dane") == 0 ||
        strcasecmp(level, "dane-only") == 0) {
        msg_warn("smtpd_tls_security_level: unsupported TLS level \"%s\", using \"encrypt\"",
                 level);
        return SMTPD_TLS_ENCRYPT;
    }
    msg_fatal("smtpd_tls_security_level: invalid TLS level \"%s\": use none, may or encrypt",
              level);
}

/* smtpd_tls_groups - the ECDHE groups from smtpd_tls_eecdh_grade, into out */
static void smtpd_tls_groups(VSTR *out)
{
    const char *grade = var_str("smtpd_tls_eecdh_grade");
    ARGV *curves;

    vstr_reset(out);
    if (strcasecmp(grade, "strong") == 0) {
        vstr_cpy(out, var_str("tls_eecdh_strong_curve"));
        return;
    }
    if (strcasecmp(grade, "ultra") == 0) {
        vstr_cpy(out, var_str("tls_eecdh_ultra_curve"));
        return;
    }
    /* Without ECDHE no TLS 1.2 cipher of ours would remain. */
    if (strcasecmp(grade, "auto") != 0)
        msg_warn("smtpd_tls_eecdh_grade: unsupported value \"%s\", using \"auto\"", grade);
    curves = var_list("tls_eecdh_auto_curves");
    for (size_t i = 0; i < curves->argc; i++) {
        if (vstr_len(out) + strlen(curves->argv[i]) + 1 > SMTPD_TLS_GROUPS_MAX)
            break;
        vstr_sprintf_append(out, "%s%s", i ? ":" : "", curves->argv[i]);
    }
    argv_free(curves);
}

/* smtpd_tls_file - a certificate or key parameter; Postfix's "none" means unset */
static const char *smtpd_tls_file(const char *name)
{
    const char *value = var_str(name);

    return strcasecmp(value, "none") == 0 ? "" : value;
}

/* smtpd_tls_context - the server context for this level; NULL when unusable */
static SSL_CTX *smtpd_tls_context(int mandatory)
{
    VSTR *why = vstr_alloc(100);
    VSTR *groups = vstr_alloc(100);
    VSTR *exclusions = vstr_alloc(100);
    TLS_SERVER_PARAMS p;
    SSL_CTX *ctx = NULL;

    /* smtpd_tls_exclude_ciphers applies at every level, the mandatory list on top. */
    vstr_sprintf(exclusions, "%s %s", var_str("smtpd_tls_exclude_ciphers"),
                 mandatory ? var_str("smtpd_tls_mandatory_exclude_ciphers") : "");
    smtpd_tls_groups(groups);
    p.chain_files = var_str("smtpd_tls_chain_files");
    p.cert_file = smtpd_tls_file("smtpd_tls_cert_file");
    p.key_file = smtpd_tls_file("smtpd_tls_key_file");
    p.eccert_file = smtpd_tls_file("smtpd_tls_eccert_file");
    p.eckey_file = smtpd_tls_file("smtpd_tls_eckey_file");
    p.dcert_file = smtpd_tls_file("smtpd_tls_dcert_file");
    p.dkey_file = smtpd_tls_file("smtpd_tls_dkey_file");
    p.protocols = var_str(mandatory ? "smtpd_tls_mandatory_protocols" : "smtpd_tls_protocols");
    p.grade = var_str(mandatory ? "smtpd_tls_mandatory_ciphers" : "smtpd_tls_ciphers");
    /* The built-in lists unless main.cf names its own (they are the client's too). */
    p.high_list = mail_conf_is_set("tls_high_cipherlist") ? var_str("tls_high_cipherlist")
                                                          : TLS_SERVER_HIGH_CIPHERS;
    p.medium_list = mail_conf_is_set("tls_medium_cipherlist") ? var_str("tls_medium_cipherlist")
                                                              : TLS_SERVER_MEDIUM_CIPHERS;
    p.exclusions = vstr_str(exclusions);
    p.groups = vstr_str(groups);
    p.server_preference = var_bool("tls_preempt_cipherlist");

    if (!tls_server_has_cert(&p)) {
        msg_warn("No server certs available. TLS won't be enabled");
    } else {
        if (*p.chain_files && (*p.cert_file || *p.eccert_file || *p.dcert_file))
            msg_warn("Both smtpd_tls_chain_files and one or more of the legacy "
                     "smtpd_tls_cert_file, smtpd_tls_eccert_file or smtpd_tls_dcert_file are "
                     "non-empty; the legacy parameters will be ignored");
        if ((ctx = tls_server_ctx_new(&p, why)) == NULL)
            msg_warn("%s: disabling TLS support", vstr_str(why));
    }
    vstr_free(why);
    vstr_free(groups);
    vstr_free(exclusions);
    return ctx;
}

/* smtpd_tls_init - read the TLS settings and load the keys (pre_init, as root) */
void smtpd_tls_init(SMTPD_CONFIG *cfg)
{
    enum smtpd_tls_level level = smtpd_tls_level();
    int wrapper = var_bool("smtpd_tls_wrappermode");
    struct SMTPD_TLS_CONFIG *tc;

    cfg->tls = NULL;
    if (level == SMTPD_TLS_NONE && !wrapper)
        return;
    tc = mycalloc(1, sizeof(*tc));
    tc->level = level;
    tc->wrapper = wrapper;
    tc->starttls_timeout = var_time("smtpd_starttls_timeout");
    tc->received_header = var_bool("smtpd_tls_received_header");
    /* Implicit TLS and the encrypt level are mandatory TLS (Postfix). */
    tc->ctx = smtpd_tls_context(wrapper || level == SMTPD_TLS_ENCRYPT);
    /* Opportunistic TLS that cannot work is not offered at all; where TLS is
       mandatory, clients get 454 to STARTTLS and 530 to mail (a temporary
       failure while the administrator fixes the certificates). */
    if (tc->ctx == NULL && level == SMTPD_TLS_MAY && !wrapper) {
        myfree(tc);
        return;
    }
    cfg->tls = tc;
}

/*
 * Questions from the protocol engine.
 */

/* smtpd_tls_wrappermode - implicit TLS service */
int smtpd_tls_wrappermode(const SMTPD_CONFIG *cfg)
{
    return cfg->tls != NULL && cfg->tls->wrapper;
}

/* smtpd_tls_offer - STARTTLS in the EHLO reply */
int smtpd_tls_offer(const SMTPD_SESSION *s)
{
    const struct SMTPD_TLS_CONFIG *tc = s->cfg->tls;

    return tc != NULL && !tc->wrapper && s->tls == NULL &&
           !(s->cfg->ext_discard & SMTPD_EXT_STARTTLS);
}

/* smtpd_tls_required - the encrypt level before STARTTLS */
int smtpd_tls_required(const SMTPD_SESSION *s)
{
    return s->cfg->tls != NULL && s->cfg->tls->level == SMTPD_TLS_ENCRYPT && s->tls == NULL;
}

/*
 * The handshake.
 */

/* smtpd_tls_log_failure - Postfix's "SSL_accept error" lines */
static void smtpd_tls_log_failure(SMTPD_SESSION *s, struct bufferevent *bev, short what)
{
    unsigned long errs[SMTPD_TLS_ERRORS_MAX];
    int n = 0, eof = 0;
    unsigned long e;

    /*
     * libevent hands back the library's errors last first, mixed with the
     * SSL_get_error() code it saw (no library: not worth a log line). A TCP
     * close in mid-handshake is an error to OpenSSL 3 ("unexpected eof").
     */
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        if (ERR_GET_LIB(e) == 0)
            continue;
        if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
            ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            eof = 1;
        else if (n < SMTPD_TLS_ERRORS_MAX)
            errs[n++] = e;
    }
    if (n > 0) {
        msg_info("SSL_accept error from %s: -1", s->peer.namaddr);
        while (n > 0)
            tls_log_error_code(errs[--n]);
    } else if (what & BEV_EVENT_TIMEOUT) {
        msg_info("SSL_accept error from %s: %s", s->peer.namaddr, strerror(ETIMEDOUT));
    } else if (!eof && (what & BEV_EVENT_ERROR) && EVUTIL_SOCKET_ERROR() != 0) {
        msg_info("SSL_accept error from %s: %s", s->peer.namaddr,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    } else {
        msg_info("SSL_accept error from %s: lost connection", s->peer.namaddr);
    }
    /* Leave nothing in the queue for the next session's SSL_get_error(). */
    ERR_clear_error();
}

/* smtpd_tls_reset - RFC 3207 4.2: forget everything learned before TLS */
static void smtpd_tls_reset(SMTPD_SESSION *s)
{
    smtpd_txn_reset(s);
    myfree(s->helo_name);
    s->helo_name = NULL;
    s->protocol = NULL;
    s->ext = 0;
    s->state = SMTPD_ST_CONNECTED;
    smtpd_sasl_reset(s);
}

/* smtpd_tls_established - the handshake completed: log, reset, go on */
static void smtpd_tls_established(SMTPD_SESSION *s)
{
    SSL *ssl = bufferevent_openssl_get_ssl(s->client);
    VSTR *line = s->cfg->tmp;
    const TLS_INFO *info;

    s->tls = mycalloc(1, sizeof(*s->tls));
    tls_info_get(ssl, &s->tls->info);
    ERR_clear_error();
    info = &s->tls->info;
    /* No client certificate is asked for: the peer is anonymous. */
    vstr_sprintf(line, "%s TLS connection established from %s: %s with cipher %s (%d/%d bits)",
                 info->peer_cert ? "Untrusted" : "Anonymous", s->peer.namaddr, info->protocol,
                 info->cipher, info->cipher_usebits, info->cipher_algbits);
    tls_info_details(info, line);
    msg_info("%s", vstr_str(line));

    smtpd_client_attach(s, s->client);
    if (s->state == SMTPD_ST_CLOSING) {
        /* The session ended meanwhile (time limit): only its last reply goes out. */
        s->block &= ~SMTPD_BLOCK_TLS;
        return;
    }
    if (s->cfg->tls->wrapper) {
        s->block &= ~SMTPD_BLOCK_TLS;
        smtpd_session_greet(s);
        smtpd_resume(s);
        return;
    }
    smtpd_tls_reset(s);
    smtpd_cmd_done(s, SMTPD_OK);
    smtpd_unblock(s, SMTPD_BLOCK_TLS);
}

/* smtpd_tls_event_cb - events of the OpenSSL bufferevent while it handshakes */
static void smtpd_tls_event_cb(struct bufferevent *bev, short what, void *ctx)
{
    SMTPD_SESSION *s = ctx;

    smtpd_enter(s);
    if (what & BEV_EVENT_CONNECTED) {
        smtpd_tls_established(s);
    } else {
        smtpd_tls_log_failure(s, bev, what);
        msg_info("lost connection after %s from %s", s->where ? s->where : "CONNECT",
                 s->peer.namaddr);
        smtpd_txn_reset(s);
        s->dead = 1;
    }
    smtpd_leave(s);
}

/* smtpd_tls_handshake - move the connection to an OpenSSL bufferevent and start */
static void smtpd_tls_handshake(SMTPD_SESSION *s)
{
    struct bufferevent *plain = s->client;
    struct timeval tv = {.tv_sec = s->cfg->tls->starttls_timeout};
    struct bufferevent *bev;
    SSL *ssl;
    int fd;

    /*
     * The plaintext bufferevent closes its socket when freed, and with it go
     * any octets it still buffers (there are none it should act on: see
     * smtpd_tls_starttls). The OpenSSL one gets its own descriptor.
     */
    if ((fd = fcntl(bufferevent_getfd(plain), F_DUPFD_CLOEXEC, 0)) < 0) {
        msg_warn("%s: cannot start TLS: %s", s->peer.namaddr, strerror(errno));
        s->dead = 1;
        return;
    }
    s->client = NULL;
    bufferevent_free(plain);
    if ((ssl = SSL_new(s->cfg->tls->ctx)) == NULL)
        msg_fatal("cannot create a TLS connection object");
    bev = bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL)
        msg_fatal("cannot create a TLS bufferevent");
    /* A client that closes TCP without close_notify has just gone: EOF. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    bufferevent_setcb(bev, NULL, NULL, smtpd_tls_event_cb, s);
    bufferevent_set_timeouts(bev, &tv, &tv);
    s->client = bev;
}

/* smtpd_tls_flushed - the 220 is out: STARTTLS goes on with the handshake */
void smtpd_tls_flushed(SMTPD_SESSION *s)
{
    if (s->dead || s->client == NULL || bufferevent_openssl_get_ssl(s->client) != NULL)
        return;
    smtpd_tls_handshake(s);
}

/* smtpd_tls_wrapper_start - implicit TLS: the handshake comes before anything */
void smtpd_tls_wrapper_start(SMTPD_SESSION *s)
{
    if (s->cfg->tls == NULL || s->cfg->tls->ctx == NULL) {
        msg_warn("Wrapper-mode request dropped from %s for service %s. TLS context "
                 "initialization failed. For details see earlier warnings in your logs.",
                 s->peer.namaddr, s->cfg->service);
        s->dead = 1;
        return;
    }
    if (smtpd_anvil_newtls(s) < 0) {
        /* Nothing can be said in plaintext to a client that expects TLS. */
        s->dead = 1;
        return;
    }
    smtpd_block(s, SMTPD_BLOCK_TLS);
    smtpd_tls_handshake(s);
}

/* smtpd_tls_starttls - STARTTLS (RFC 3207 4) */
int smtpd_tls_starttls(SMTPD_SESSION *s, const SMTP_CMD *cmd)
{
    const struct SMTPD_TLS_CONFIG *tc = s->cfg->tls;
    struct evbuffer *in;

    if (cmd->arg_len > 0) {
        smtpd_reply(s, 501, "5.5.4", "Syntax: STARTTLS");
        return SMTPD_ERROR;
    }
    if (s->tls != NULL) {
        smtpd_reply(s, 554, "5.5.1", "Error: TLS already active");
        return SMTPD_ERROR;
    }
    if (tc == NULL || tc->wrapper || (s->cfg->ext_discard & SMTPD_EXT_STARTTLS)) {
        smtpd_reply(s, 502, "5.5.1", "Error: command not implemented");
        return SMTPD_ERROR;
    }
    if (tc->ctx == NULL) {
        smtpd_reply(s, 454, "4.7.0", "TLS not available due to local problem");
        return SMTPD_ERROR;
    }
    if (smtpd_anvil_newtls(s) < 0)
        return SMTPD_ERROR;
    smtpd_reply(s, 220, "2.0.0", "Ready to start TLS");
    /*
     * CVE-2011-0411: whatever the client sent after STARTTLS arrived before
     * the handshake, so it is not protected by it; a man in the middle may
     * have added it. Discard it now; what is still on its way is read by
     * OpenSSL as handshake data, which fails the handshake.
     */
    in = bufferevent_get_input(s->client);
    evbuffer_drain(in, evbuffer_get_length(in));
    smtpd_block(s, SMTPD_BLOCK_TLS);
    return SMTPD_PENDING;
}

/*
 * Session end and Received: header.
 */

/* smtpd_tls_free - close_notify after an orderly end (RFC 8446 6.1), release */
void smtpd_tls_free(SMTPD_SESSION *s)
{
    SSL *ssl;

    if (s->tls == NULL)
        return;
    if (s->client && s->state == SMTPD_ST_CLOSING &&
        (ssl = bufferevent_openssl_get_ssl(s->client)) != NULL) {
        /*
         * One attempt, never waiting. The SSL writes to the socket itself
         * (a socket BIO under the bufferevent), which is non-blocking; and
         * after an orderly end the last reply has left (libevent keeps a
         * partly written record in its output buffer, and the write
         * callback comes only once that is empty), so the alert is the
         * only thing the SSL has to send. If the socket buffer is full it
         * is dropped: the client then sees the TCP end of file only, and
         * has every reply already. The client's close_notify is not
         * waited for (RFC 8446 6.1): smtpd.c half-closes TCP right after
         * and throws away what still arrives without decrypting it.
         */
        (void)SSL_shutdown(ssl);
        ERR_clear_error();
    }
    myfree(s->tls);
    s->tls = NULL;
}

/* smtpd_tls_received - Postfix's TLS comment lines of the Received: header */
void smtpd_tls_received(const SMTPD_SESSION *s, VSTR *hdr)
{
    const TLS_INFO *info;
    size_t mark;

    if (s->tls == NULL || s->cfg->tls == NULL || !s->cfg->tls->received_header)
        return;
    info = &s->tls->info;
    vstr_sprintf_append(hdr, "\t(using %s with cipher %s (%d/%d bits)", info->protocol,
                        info->cipher, info->cipher_usebits, info->cipher_algbits);
    /* TLS 1.3 details go on a continuation line inside the same comment. */
    vstr_cat(hdr, "\n\t");
    mark = vstr_len(hdr);
    tls_info_details(info, hdr);
    if (vstr_len(hdr) == mark)
        vstr_truncate(hdr, mark - 2);
    vstr_cat(hdr, ")\n");
    vstr_cat(hdr, "\t(No client certificate requested)\n");
}
