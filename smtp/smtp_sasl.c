/*
 * smtp_sasl - client AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN, for
 * relaying through a provider.
 *
 * Credentials come from smtp_sasl_password_maps ("user:password"), looked
 * up as Postfix does: the nexthop as written ("[host]:port", "domain"),
 * then "[host]" without the port, then the server's host name, then the
 * bare nexthop host or domain.
 *
 * Security options mirror Postfix's: smtp_sasl_security_options applies to
 * sessions without TLS, smtp_sasl_tls_security_options to sessions with
 * TLS. "noplaintext" forbids PLAIN and LOGIN (the only mechanisms this
 * client has), so with the defaults ("noplaintext, noanonymous" without
 * TLS, "noanonymous" with TLS) passwords are sent only over TLS. A server
 * that offers no usable mechanism is used without AUTH, as Postfix does;
 * a rejected login defers the mail with the server's reason (as Postfix
 * with smtp_sasl_auth_soft_bounce = yes: a password problem must not bounce
 * mail) and the next server is tried.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mail/mail_conf.h"
#include "smtp.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

static SMTP_MAPS *smtp_sasl_maps;

/* smtp_sasl_init - open the password tables (before the privilege drop) */
int smtp_sasl_init(VSTR *why)
{
    if (!smtp_conf.sasl_enable)
        return 0;
    smtp_sasl_maps = smtp_maps_open("smtp_sasl_password_maps", smtp_conf.sasl_password_maps, why);
    return smtp_sasl_maps ? 0 : -1;
}

/* smtp_sasl_b64 - base64 of len octets appended to out */
static void smtp_sasl_b64(VSTR *out, const char *data, size_t len)
{
    size_t olen = 4 * ((len + 2) / 3) + 1;
    unsigned char *buf = mymalloc(olen);
    int n = EVP_EncodeBlock(buf, (const unsigned char *)data, (int)len);

    vstr_ncat(out, buf, (size_t)n);
    OPENSSL_cleanse(buf, olen);
    myfree(buf);
}

/* smtp_sasl_allowed - may mechanism mech be used on this session */
static int smtp_sasl_allowed(const SMTP_SESSION *sess, const char *mech)
{
    const char *opts =
        sess->tls ? smtp_conf.sasl_tls_security_options : smtp_conf.sasl_security_options;
    ARGV *list = argv_split(opts, ", \t");
    int ok = 1;

    /* PLAIN and LOGIN send the password as it is: "noplaintext". */
    for (size_t i = 0; i < list->argc; i++)
        if (strcasecmp(list->argv[i], "noplaintext") == 0)
            ok = 0;
    argv_free(list);
    if (ok && *smtp_conf.sasl_mechanism_filter) {
        ARGV *filter = argv_split(smtp_conf.sasl_mechanism_filter, ", \t");

        ok = 0;
        for (size_t i = 0; i < filter->argc; i++)
            if (strcasecmp(filter->argv[i], mech) == 0)
                ok = 1;
        argv_free(filter);
    }
    (void)mech;
    return ok;
}

/* smtp_sasl_offered - did the server list mech */
static int smtp_sasl_offered(const SMTP_SESSION *sess, const char *mech)
{
    size_t n = strlen(mech);

    for (const char *p = sess->ehlo.auth; (p = strstr(p, mech)) != NULL; p += n)
        if ((p == sess->ehlo.auth || p[-1] == ' ') && (p[n] == 0 || p[n] == ' '))
            return 1;
    return 0;
}

/* smtp_sasl_secret - the user:password for this session; 1 found, 0 none, -1 error */
static int smtp_sasl_secret(SMTP_REQ *req, SMTP_SESSION *sess, VSTR *secret)
{
    VSTR *key = vstr_alloc(64);
    const char *keys[4];
    int nkeys = 0, error = 0, found = 0;
    char *bracket = NULL;

    keys[nkeys++] = req->nexthop;
    if (req->nh.no_mx && req->nh.port) {
        vstr_sprintf(key, "[%s]", req->nh.host);
        bracket = vstr_export(key);
        key = vstr_alloc(64);
        keys[nkeys++] = bracket;
    }
    keys[nkeys++] = sess->host;
    keys[nkeys++] = req->nh.host;
    for (int i = 0; i < nkeys && !found && error == 0; i++) {
        const char *v = smtp_maps_find(smtp_sasl_maps, keys[i], &error);

        if (v != NULL) {
            vstr_cpy(secret, v);
            found = 1;
        }
    }
    myfree(bracket);
    vstr_free(key);
    return error < 0 ? -1 : found;
}

/* smtp_sasl_fail - a rejected AUTH: soft, with the server's words */
static int smtp_sasl_fail(SMTP_REQ *req, SMTP_SESSION *sess, const SMTP_RESP *resp)
{
    char dsn[SMTP_DSN_MAX];
    int code = resp->code;

    /* smtp_sasl_auth_soft_bounce: a 5xx from AUTH defers, never bounces. */
    snprintf(dsn, sizeof(dsn), "%s", resp->dsn);
    if (code / 100 == 5) {
        code = 400 + code % 100;
        dsn[0] = '4';
    } else if (code / 100 != 4) {
        /* A 2xx or 3xx where the exchange should have ended. */
        code = 454;
        snprintf(dsn, sizeof(dsn), "4.7.0");
    }
    smtp_soft_error(req, code, dsn, sess->relay, "SASL authentication failed; server %s said: %.*s",
                    sess->namaddr, SMTP_REASON_MAX / 2, vstr_str(resp->text));
    return SMTP_SESS_SOFT;
}

/* smtp_sasl_step - send one line, read the reply */
static int smtp_sasl_step(SMTP_SESSION *sess, SMTP_RESP *resp, const VSTR *line)
{
    int io;

    smtp_stream_put(sess->stream, vstr_str(line), vstr_len(line));
    smtp_stream_put(sess->stream, "\r\n", 2);
    if ((io = smtp_stream_flush(sess->stream, smtp_conf.helo_timeout)) != SMTP_IO_OK)
        return io;
    return smtp_stream_read_resp(sess->stream, resp, smtp_deadline(smtp_conf.helo_timeout));
}

/* smtp_sasl_login - AUTH PLAIN or LOGIN when configured */
int smtp_sasl_login(SMTP_REQ *req, SMTP_SESSION *sess)
{
    VSTR *secret, *line;
    SMTP_RESP *resp;
    const char *mech, *colon;
    int ret = SMTP_SESS_OK, io = SMTP_IO_OK, found;

    if (!smtp_conf.sasl_enable || !(sess->ehlo.features & SMTP_FEATURE_AUTH))
        return SMTP_SESS_OK;
    secret = vstr_alloc(64);
    vstr_set_limit(secret, SMTP_SASL_SECRET_MAX);
    if ((found = smtp_sasl_secret(req, sess, secret)) <= 0) {
        if (found < 0) {
            smtp_soft_error(req, 450, "4.3.0", sess->relay,
                            "smtp_sasl_password_maps lookup error for %s", req->nexthop);
            ret = SMTP_SESS_SOFT;
        }
        vstr_free(secret);
        return ret;
    }
    if (smtp_sasl_offered(sess, "PLAIN") && smtp_sasl_allowed(sess, "PLAIN"))
        mech = "PLAIN";
    else if (smtp_sasl_offered(sess, "LOGIN") && smtp_sasl_allowed(sess, "LOGIN"))
        mech = "LOGIN";
    else
        mech = NULL;
    if (mech == NULL) {
        /* Postfix: no mechanism we may use means no AUTH, not no mail. */
        msg_info("%s: no SASL mechanism usable with %s (%s offers: %s)%s", req->queue_id,
                 sess->namaddr, sess->tls ? "TLS" : "plaintext", sess->ehlo.auth,
                 sess->tls ? "" : "; passwords are sent only over TLS by default");
        OPENSSL_cleanse(vstr_str(secret), vstr_len(secret));
        vstr_free(secret);
        return SMTP_SESS_OK;
    }
    resp = smtp_resp_alloc();
    line = vstr_alloc(128);
    colon = strchr(vstr_str(secret), ':');
    {
        const char *user = vstr_str(secret);
        size_t ulen = colon ? (size_t)(colon - user) : strlen(user);
        const char *pass = colon ? colon + 1 : "";

        if (strcmp(mech, "PLAIN") == 0) {
            /* RFC 4616: authzid NUL authcid NUL passwd, sent at once. */
            VSTR *msg = vstr_alloc(64);

            vstr_addch(msg, 0);
            vstr_ncat(msg, user, ulen);
            vstr_addch(msg, 0);
            vstr_cat(msg, pass);
            vstr_cpy(line, "AUTH PLAIN ");
            smtp_sasl_b64(line, vstr_str(msg), vstr_len(msg));
            OPENSSL_cleanse(vstr_str(msg), vstr_len(msg));
            vstr_free(msg);
            io = smtp_sasl_step(sess, resp, line);
        } else {
            vstr_cpy(line, "AUTH LOGIN");
            if ((io = smtp_sasl_step(sess, resp, line)) == SMTP_IO_OK && resp->code == 334) {
                vstr_reset(line);
                smtp_sasl_b64(line, user, ulen);
                if ((io = smtp_sasl_step(sess, resp, line)) == SMTP_IO_OK && resp->code == 334) {
                    vstr_reset(line);
                    smtp_sasl_b64(line, pass, strlen(pass));
                    io = smtp_sasl_step(sess, resp, line);
                }
            }
        }
    }
    if (io != SMTP_IO_OK) {
        sess->broken = 1;
        smtp_soft_error(req, 450, "4.4.2", sess->relay, "%s with %s while authenticating",
                        io == SMTP_IO_TIMEOUT ? "conversation timed out" : "lost connection",
                        sess->namaddr);
        ret = SMTP_SESS_SOFT;
    } else if (resp->code / 100 != 2) {
        if (resp->code == 334)
            sess->broken = 1; /* the exchange is not over: do not reuse */
        ret = smtp_sasl_fail(req, sess, resp);
    } else if (msg_verbose) {
        msg_info("%s: authenticated to %s with %s", req->queue_id, sess->namaddr, mech);
    }
    OPENSSL_cleanse(vstr_str(line), vstr_len(line));
    OPENSSL_cleanse(vstr_str(secret), vstr_len(secret));
    vstr_free(line);
    vstr_free(secret);
    smtp_resp_free(resp);
    return ret;
}
