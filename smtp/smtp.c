/*
 * smtp - the SMTP and LMTP delivery agent (man/smtp.8).
 *
 * A MAIL_SERVER_SINGLE service: qmgr connects to private/smtp (or relay,
 * lmtp, ...), sends delivery requests (docs/protocols.md section 3), one
 * after another on the same connection if it likes, and gets one answer
 * per recipient and a summary for each. The agent reads the message from
 * the queue file, never changes it, and logs every result in Postfix's
 * shape.
 *
 * LMTP (RFC 2033) is the same program: it speaks LMTP when
 * smtp_lmtp = yes (master.cf "-o smtp_lmtp=yes") or when it is started
 * under the name "lmtp", as Postfix's lmtp(8) is.
 */
#include <errno.h>
#include <event2/event.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "mail/attr.h"
#include "mail/cleanup_proto.h"
#include "mail/deliver_log.h"
#include "mail/mail_conf.h"
#include "mail/mail_queue.h"
#include "mail/mail_server.h"
#include "mail/qfile.h"
#include "mail/queue_id.h"
#include "smtp.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"
#include "util/vstr.h"

#define SMTP_IPC_TIMEOUT_MAX 3600 /* seconds: bound on waiting for qmgr */

SMTP_CONF smtp_conf;
DNS_CTX *smtp_dns;

static const char *smtp_argv0 = "smtp";
static struct event *smtp_cache_timer;
static long smtp_ipc_timeout;

/* smtp_clean - printable copy of text for reasons (no control characters) */
static void smtp_clean(VSTR *out, const char *text)
{
    vstr_reset(out);
    for (const char *p = text; *p && vstr_len(out) < SMTP_REASON_MAX; p++)
        vstr_addch(out, (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
}

/* smtp_soft_error - remember a soft failure */
void smtp_soft_error(SMTP_REQ *req, int code, const char *dsn, const char *relay, const char *fmt,
                     ...)
{
    VSTR *text = vstr_alloc(128);
    va_list ap;

    va_start(ap, fmt);
    vstr_vsprintf_append(text, fmt, ap);
    va_end(ap);
    req->last.code = code;
    snprintf(req->last.dsn, sizeof(req->last.dsn), "%s", dsn);
    smtp_clean(req->last.reason, vstr_str(text));
    vstr_cpy(req->last.relay, relay ? relay : "none");
    vstr_free(text);
}

/* smtp_log_result - Postfix's delivery line */
static void smtp_log_result(SMTP_REQ *req, const SMTP_RCPT *r, const char *status, const char *dsn,
                            const char *relay, const char *reason, const SMTP_SESSION *sess)
{
    VSTR *line = vstr_alloc(256);
    DELIVER_LOG info = {
        .queue_id = req->queue_id,
        .to = r->addr,
        .orig_to = r->orig,
        .relay = relay,
        .dsn = dsn,
        .status = status,
        .reason = reason,
        .arrival_usec = req->arrival_usec,
        .active_usec = req->active_usec,
        .request_usec = req->request_usec,
        .conn_usec = req->conn_usec,
        .done_usec = deliver_log_now_usec(),
    };

    deliver_log_format(line, &info, smtp_conf.log_resolution);
    /* Postfix adds "conn_use=N" after relay= when a connection served more
       than one delivery. */
    if (sess != NULL && sess->use_count > 1) {
        VSTR *needle = vstr_alloc(64);
        char *at;

        vstr_sprintf(needle, ", relay=%s, ", relay);
        if ((at = strstr(vstr_str(line), vstr_str(needle))) != NULL) {
            VSTR *out = vstr_alloc(vstr_len(line) + 32);
            size_t cut = (size_t)(at - vstr_str(line)) + vstr_len(needle) - 2;

            vstr_ncat(out, vstr_str(line), cut);
            vstr_sprintf_append(out, ", conn_use=%d", sess->use_count);
            vstr_cat(out, vstr_str(line) + cut);
            vstr_cpy(line, vstr_str(out));
            vstr_free(out);
        }
        vstr_free(needle);
    }
    msg_info("%s", vstr_str(line));
    vstr_free(line);
}

/* smtp_dsn_diag - the remote reply in a reason of smtp_resp_reason's shape
   ("host NAME[ADDR] said: TEXT (in reply to CMD command)") into dtext, and
   the server's name from relay ("NAME[ADDR]:PORT") into mname; empty when
   there is none. For RFC 3464 Remote-MTA and Diagnostic-Code. */
static void smtp_dsn_diag(int code, const char *reason, const char *relay, SMTP_SESSION *sess,
                          VSTR *mname, VSTR *dtext)
{
    static const char said[] = " said: ", tail[] = " command)";
    const char *p, *bracket;

    vstr_reset(mname);
    vstr_reset(dtext);
    if (strcmp(relay, "none") != 0 && (bracket = strchr(relay, '[')) != NULL && bracket > relay)
        vstr_ncpy(mname, relay, (size_t)(bracket - relay));
    if (strncmp(reason, "host ", 5) == 0 && (p = strstr(reason, said)) != NULL) {
        const char *end, *in;

        p += sizeof(said) - 1;
        end = p + strlen(p);
        in = strstr(p, " (in reply to ");
        if (in != NULL && end - in > (long)(sizeof(tail) - 1) &&
            strcmp(end - (sizeof(tail) - 1), tail) == 0)
            end = in;
        vstr_ncpy(dtext, p, (size_t)(end - p));
    } else if (code / 100 == 2 && sess != NULL) {
        vstr_cpy(dtext, reason); /* the server's reply itself */
    }
}

/* smtp_rcpt_done - a final result for recipient i */
void smtp_rcpt_done(SMTP_REQ *req, size_t i, int code, const char *dsn, const char *relay,
                    const char *reason, SMTP_SESSION *sess)
{
    SMTP_RCPT *r = req->rcpt + i;
    VSTR *text = vstr_alloc(128), *mname = vstr_alloc(32), *dtext = vstr_alloc(64);
    const char *status = code / 100 == 2 ? "sent" : code / 100 == 4 ? "deferred" : "bounced";
    const char *action = smtp_conf.lmtp ? "delivered" : "relayed";
    int passed = 0;

    if (r->state == SMTP_RCPT_FINAL)
        msg_panic("%s: second result for recipient %s", req->queue_id, r->addr);
    r->state = SMTP_RCPT_FINAL;
    req->todo--;
    relay = relay && *relay ? relay : "none";
    /* Failed before any transmission: the time went into connection set-up. */
    if (req->conn_usec == 0)
        req->conn_usec = deliver_log_now_usec();
    smtp_clean(text, reason);
    /* RFC 3461 4.1: a DSN-capable next hop took NOTIFY over; no notice of
       success is due from here. Otherwise qmgr sends one ("relayed") when
       NOTIFY=SUCCESS asked for it. */
    if (code / 100 == 2 && !smtp_conf.lmtp && sess != NULL &&
        (sess->ehlo.features & SMTP_FEATURE_DSN))
        passed = 1;
    smtp_log_result(req, r, status, dsn, relay, vstr_str(text), sess);
    smtp_dsn_diag(code, vstr_str(text), relay, sess, mname, dtext);
    if (!req->out_failed &&
        attr_print(req->out, 0, ATTR_UNUM("rcpt_index", r->index),
                   ATTR_UNUM("status", code / 100 == 2 ? 0 : (unsigned long long)code),
                   ATTR_STR("dsn", dsn), ATTR_STR("reason", vstr_str(text)),
                   ATTR_STR("relay", relay), ATTR_STR("dsn_action", action),
                   ATTR_UNUM("dsn_passed", passed),
                   ATTR_STR("dsn_mtype", vstr_len(mname) ? "dns" : ""),
                   ATTR_STR("dsn_mname", vstr_str(mname)),
                   ATTR_STR("dsn_dtype", vstr_len(dtext) ? "smtp" : ""),
                   ATTR_STR("dsn_dtext", vstr_str(dtext)), ATTR_END) < 0) {
        msg_warn("%s: cannot send the result to the queue manager: %s", req->queue_id,
                 attr_stream_why(req->out));
        req->out_failed = 1;
    }
    vstr_free(text);
    vstr_free(mname);
    vstr_free(dtext);
}

/* smtp_fail_todo - one result for every recipient not yet answered */
void smtp_fail_todo(SMTP_REQ *req, int code, const char *dsn, const char *relay, const char *reason)
{
    for (size_t i = 0; i < req->count; i++)
        if (req->rcpt[i].state == SMTP_RCPT_TODO)
            smtp_rcpt_done(req, i, code, dsn, relay, reason, NULL);
}

/* smtp_req_free - release a request */
static void smtp_req_free(SMTP_REQ *req)
{
    for (size_t i = 0; i < req->count; i++) {
        myfree(req->rcpt[i].addr);
        myfree(req->rcpt[i].orig);
        myfree(req->rcpt[i].dsn_orcpt);
    }
    myfree(req->rcpt);
    myfree(req->queue_name);
    myfree(req->queue_id);
    myfree(req->nexthop);
    myfree(req->sender);
    myfree(req->envid);
    myfree(req->ret);
    if (req->q)
        qfile_close(req->q);
    smtp_nexthop_free(&req->nh);
    smtp_tls_policy_free(&req->tls);
    vstr_free(req->last.reason);
    vstr_free(req->last.relay);
    myfree(req);
}

/* smtp_req_str - a copy of a string attribute; NULL when absent */
static char *smtp_req_str(const ATTR_MSG *m, const char *name, int required, VSTR *why)
{
    const char *v = attr_msg_get_str(m, name);

    if (v == NULL) {
        if (required || errno != ENOENT)
            vstr_sprintf(why, "bad or missing attribute \"%s\"", name);
        return required || errno != ENOENT ? NULL : mystrdup("");
    }
    return mystrdup(v);
}

/* smtp_non_ascii - any byte above 0x7f */
static int smtp_non_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s > 0x7f)
            return 1;
    return 0;
}

/* smtp_req_parse - the request message into a new SMTP_REQ; NULL with why */
static SMTP_REQ *smtp_req_parse(const ATTR_MSG *m, ATTR_STREAM *out, VSTR *why)
{
    SMTP_REQ *req = mycalloc(1, sizeof(*req));
    SMTP_RCPT *cur = NULL;
    size_t cap = 0;
    unsigned long long end = 0;

    req->out = out;
    req->recv_usec = deliver_log_now_usec();
    req->last.reason = vstr_alloc(128);
    req->last.relay = vstr_alloc(32);
    vstr_cpy(req->last.relay, "none");
    if ((req->queue_name = smtp_req_str(m, "queue_name", 1, why)) == NULL ||
        (req->queue_id = smtp_req_str(m, "queue_id", 1, why)) == NULL ||
        (req->nexthop = smtp_req_str(m, "nexthop", 1, why)) == NULL ||
        (req->sender = smtp_req_str(m, "sender", 1, why)) == NULL ||
        (req->envid = smtp_req_str(m, "envid", 0, why)) == NULL ||
        (req->ret = smtp_req_str(m, "ret", 0, why)) == NULL)
        goto fail;
    /* The ids name a file: no path may sneak in through them. */
    if (!mail_queue_name_ok(req->queue_name) || !queue_id_valid(req->queue_id)) {
        vstr_sprintf(why, "bad queue name or queue id");
        goto fail;
    }
    {
        unsigned long long t = 0;

        if (attr_msg_get_unum(m, "arrival_usec", &t) == 0)
            req->arrival_usec = t;
        if (attr_msg_get_unum(m, "active_usec", &t) == 0)
            req->active_usec = t;
        if (attr_msg_get_unum(m, "request_usec", &t) == 0)
            req->request_usec = t;
    }
    (void)attr_msg_get_unum(m, "flags", &req->flags);
    if (attr_msg_get_unum(m, "end", &end) < 0 || end != 1) {
        vstr_sprintf(why, "request without \"end\"");
        goto fail;
    }
    /* Recipients: rcpt_index starts each one; the others follow it. */
    for (size_t i = 0; i < m->count; i++) {
        const ATTR_VAL *v = m->val + i;

        if (strcmp(v->name, "rcpt_index") == 0 && v->type == ATTR_TYPE_UINT) {
            if (req->count == cap) {
                cap = cap ? 2 * cap : 8;
                req->rcpt = myrealloc(req->rcpt, size_mul(cap, sizeof(SMTP_RCPT)));
            }
            cur = req->rcpt + req->count++;
            memset(cur, 0, sizeof(*cur));
            cur->index = v->unum;
            continue;
        }
        if (cur == NULL)
            continue;
        if (strcmp(v->name, "rcpt") == 0 && v->type == ATTR_TYPE_STR && cur->addr == NULL)
            cur->addr = mystrdup(v->data);
        else if (strcmp(v->name, "orcpt") == 0 && v->type == ATTR_TYPE_STR && cur->orig == NULL)
            cur->orig = mystrdup(v->data);
        else if (strcmp(v->name, "dsn_orcpt") == 0 && v->type == ATTR_TYPE_STR &&
                 cur->dsn_orcpt == NULL)
            cur->dsn_orcpt = mystrdup(v->data);
        else if (strcmp(v->name, "notify") == 0 && v->type == ATTR_TYPE_UINT)
            cur->notify = (unsigned)(v->unum & 0xf);
    }
    for (size_t i = 0; i < req->count; i++) {
        SMTP_RCPT *r = req->rcpt + i;

        if (r->addr == NULL || *r->addr == 0) {
            /* Not answerable: qmgr defers it as "delivery agent failed". */
            vstr_sprintf(why, "recipient #%llu without an address", r->index);
            goto fail;
        }
        if (r->orig == NULL)
            r->orig = mystrdup("");
        if (r->dsn_orcpt == NULL)
            r->dsn_orcpt = mystrdup("");
    }
    if (req->count == 0) {
        vstr_sprintf(why, "request without recipients");
        goto fail;
    }
    req->todo = req->count;
    return req;
fail:
    smtp_req_free(req);
    return NULL;
}

/* smtp_req_message - properties of the message from the queue file */
static int smtp_req_message(SMTP_REQ *req, VSTR *why)
{
    const char *enc, *utf8;
    int err = qfile_open(req->queue_name, req->queue_id, 0, &req->q, why);

    if (err != QFILE_OK)
        return -1;
    req->size = req->q->content_size;
    enc = qfile_attr(req->q, CLEANUP_QATTR_ENCODING);
    req->eightbit = enc != NULL && strcasecmp(enc, CLEANUP_ENC_7BIT) != 0;
    utf8 = qfile_attr(req->q, CLEANUP_QATTR_SMTPUTF8);
    /* RFC 6531 3.4: what needs SMTPUTF8 is a UTF-8 envelope address, or a
       client that asked for it (its headers may hold UTF-8 too). */
    req->smtputf8 = (utf8 != NULL && strcmp(utf8, "1") == 0) || smtp_non_ascii(req->sender);
    for (size_t i = 0; i < req->count && !req->smtputf8; i++)
        req->smtputf8 = smtp_non_ascii(req->rcpt[i].addr);
    return 0;
}

/* smtp_handle - one request: deliver, answer each recipient, summary */
static int smtp_handle(ATTR_STREAM *s, const ATTR_MSG *m)
{
    VSTR *why = vstr_alloc(128);
    SMTP_REQ *req = smtp_req_parse(m, s, why);
    int ret = 0;

    if (req == NULL) {
        msg_warn("bad delivery request from the queue manager: %s", vstr_str(why));
        vstr_free(why);
        return -1;
    }
    if (smtp_req_message(req, why) < 0) {
        msg_warn("%s: cannot read queue file %s/%s: %s", req->queue_id, req->queue_name,
                 req->queue_id, vstr_str(why));
        smtp_fail_todo(req, 451, "4.3.0", "none", "cannot read the queue file");
    } else if (smtp_nexthop_parse(req->nexthop, smtp_conf.known_ports, &req->nh, why) < 0) {
        /* A configuration problem (transport_maps, relayhost): defer. */
        msg_warn("%s: %s", req->queue_id, vstr_str(why));
        smtp_fail_todo(req, 451, "4.3.5", "none", vstr_str(why));
    } else if (smtp_tls_policy(req->nexthop, &req->nh, &req->tls, why) < 0) {
        msg_warn("%s: %s", req->queue_id, vstr_str(why));
        smtp_fail_todo(req, 451, "4.3.0", "none", "TLS policy lookup error");
    } else {
        smtp_deliver(req);
    }
    /* docs/protocols.md section 3: "dead" when no server of the destination
       could be reached or completed the handshake (qmgr's negative feedback). */
    if (!req->out_failed && attr_print(s, 0, ATTR_UNUM("done", 1), ATTR_UNUM("count", req->count),
                                       ATTR_STR("dest_status", !req->judged ? ""
                                                               : req->dead  ? "dead"
                                                                            : "ok"),
                                       ATTR_END) < 0) {
        msg_warn("%s: cannot send the summary to the queue manager: %s", req->queue_id,
                 attr_stream_why(s));
        req->out_failed = 1;
    }
    if (req->out_failed)
        ret = -1;
    smtp_req_free(req);
    vstr_free(why);
    return ret;
}

/* smtp_wait_request - wait for qmgr's next request; idle cached sessions
   are closed on time meanwhile. 1 readable, 0 timed out or error. */
static int smtp_wait_request(int fd)
{
    long long deadline = smtp_deadline((int)smtp_ipc_timeout);

    for (;;) {
        long next = smtp_cache_expire(0);
        long long left = deadline - smtp_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int wait, n;

        if (left <= 0)
            return 0;
        wait = next >= 0 && next * 1000 < left ? (int)(next * 1000 + 10) : (int)left;
        n = poll(&pfd, 1, wait);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return 0;
    }
}

/* smtp_cache_event - close idle sessions while no client is connected */
static void smtp_cache_event(evutil_socket_t fd, short what, void *ctx)
{
    long next = smtp_cache_expire(0);

    (void)fd, (void)what, (void)ctx;
    if (next >= 0) {
        struct timeval tv = {.tv_sec = next > 0 ? next : 1};

        evtimer_add(smtp_cache_timer, &tv);
    }
}

/* smtp_service - one qmgr connection: requests until it closes */
static void smtp_service(const MAIL_SERVER_ARGS *args, int fd)
{
    ATTR_STREAM *s = attr_stream_open(fd, (int)smtp_ipc_timeout * 1000);

    (void)args;
    if (smtp_cache_timer)
        evtimer_del(smtp_cache_timer);
    for (;;) {
        ATTR_MSG *m;

        if (!smtp_wait_request(fd))
            break;
        if ((m = attr_msg_read(s, ATTR_FLAG_PRINTABLE)) == NULL) {
            if (errno != ENODATA)
                msg_warn("queue manager request: %s", attr_stream_why(s));
            break;
        }
        if (smtp_handle(s, m) < 0) {
            attr_msg_free(m);
            break;
        }
        attr_msg_free(m);
    }
    attr_stream_free(s);
    /* Sessions kept for the next client are closed on time by the loop. */
    smtp_cache_event(-1, 0, NULL);
}

/* smtp_inet_protocols - inet_protocols into use_ipv4 / use_ipv6 */
static void smtp_inet_protocols(void)
{
    ARGV *list = var_list("inet_protocols");

    smtp_conf.use_ipv4 = smtp_conf.use_ipv6 = 0;
    for (size_t i = 0; i < list->argc; i++) {
        if (strcasecmp(list->argv[i], "all") == 0)
            smtp_conf.use_ipv4 = smtp_conf.use_ipv6 = 1;
        else if (strcasecmp(list->argv[i], "ipv4") == 0)
            smtp_conf.use_ipv4 = 1;
        else if (strcasecmp(list->argv[i], "ipv6") == 0)
            smtp_conf.use_ipv6 = 1;
        else
            msg_fatal("inet_protocols: unknown protocol \"%s\"", list->argv[i]);
    }
    if (!smtp_conf.use_ipv4 && !smtp_conf.use_ipv6)
        msg_fatal("inet_protocols: no protocol enabled");
    argv_free(list);
}

/* smtp_read_conf - the configuration, once */
static void smtp_read_conf(void)
{
    const char *base = strrchr(smtp_argv0, '/');
    const char *pref = var_str("smtp_address_preference");
    const char *level = var_str("smtp_tls_security_level");
    const char *port;
    unsigned p;

    base = base ? base + 1 : smtp_argv0;
    smtp_conf.lmtp = var_bool("smtp_lmtp") || strcmp(base, "lmtp") == 0;
    smtp_conf.proto = smtp_conf.lmtp ? "LMTP" : "SMTP";
    smtp_conf.known_ports = var_str("known_tcp_ports");
    port = var_str(smtp_conf.lmtp ? "lmtp_tcp_port" : "smtp_tcp_port");
    if (smtp_port_parse(port, smtp_conf.known_ports, &p) < 0)
        msg_fatal("%s: bad port \"%s\"", smtp_conf.lmtp ? "lmtp_tcp_port" : "smtp_tcp_port", port);
    smtp_conf.default_port = p;
    smtp_conf.helo_name = var_str("smtp_helo_name");
    if (!dns_hostname_valid(smtp_conf.helo_name))
        msg_fatal("smtp_helo_name: \"%s\" is not a valid host name", smtp_conf.helo_name);
    smtp_conf.connect_timeout = (int)var_time("smtp_connect_timeout");
    smtp_conf.helo_timeout = (int)var_time("smtp_helo_timeout");
    smtp_conf.mail_timeout = (int)var_time("smtp_mail_timeout");
    smtp_conf.rcpt_timeout = (int)var_time("smtp_rcpt_timeout");
    smtp_conf.data_init_timeout = (int)var_time("smtp_data_init_timeout");
    smtp_conf.data_xfer_timeout = (int)var_time("smtp_data_xfer_timeout");
    smtp_conf.data_done_timeout = (int)var_time("smtp_data_done_timeout");
    smtp_conf.quit_timeout = (int)var_time("smtp_quit_timeout");
    smtp_conf.rset_timeout = (int)var_time("smtp_rset_timeout");
    smtp_conf.starttls_timeout = (int)var_time("smtp_starttls_timeout");
    smtp_conf.dns_timeout_ms = (int)var_time("dns_timeout") * 1000;
    smtp_conf.mx_address_limit = (int)var_int("smtp_mx_address_limit");
    smtp_conf.mx_session_limit = (int)var_int("smtp_mx_session_limit");
    smtp_conf.skip_5xx_greeting = var_bool("smtp_skip_5xx_greeting");
    smtp_conf.always_send_ehlo = var_bool("smtp_always_send_ehlo");
    smtp_conf.skip_quit_response = var_bool("smtp_skip_quit_response");
    smtp_conf.defer_if_no_mx_address_found = var_bool("smtp_defer_if_no_mx_address_found");
    smtp_conf.randomize_addresses = var_bool("smtp_randomize_addresses");
    smtp_conf.fallback_relay = var_list("smtp_fallback_relay");
    smtp_conf.discard_ehlo = var_list("smtp_discard_ehlo_keywords");
    smtp_inet_protocols();
    if (strcasecmp(pref, "ipv4") == 0)
        smtp_conf.addr_pref = SMTP_PREF_IPV4;
    else if (strcasecmp(pref, "ipv6") == 0)
        smtp_conf.addr_pref = SMTP_PREF_IPV6;
    else if (strcasecmp(pref, "any") == 0)
        smtp_conf.addr_pref = SMTP_PREF_ANY;
    else
        msg_fatal("smtp_address_preference: expected ipv4, ipv6 or any, not \"%s\"", pref);
    smtp_conf.bind_address = var_str("smtp_bind_address");
    smtp_conf.bind_address6 = var_str("smtp_bind_address6");
    smtp_conf.reuse_count_limit = var_int("smtp_connection_reuse_count_limit");
    smtp_conf.reuse_time_limit = var_time("smtp_connection_reuse_time_limit");
    smtp_conf.cache_time_limit = var_time("smtp_connection_cache_time_limit");
    smtp_conf.cache_on_demand = var_bool("smtp_connection_cache_on_demand");
    smtp_conf.line_length_limit = var_int("smtp_line_length_limit");
    smtp_conf.log_resolution = (int)var_int("delay_logging_resolution_limit");
    if (strcasecmp(level, "") == 0 || strcasecmp(level, "none") == 0)
        smtp_conf.tls_level = SMTP_TLS_NONE;
    else if (strcasecmp(level, "may") == 0)
        smtp_conf.tls_level = SMTP_TLS_MAY;
    else if (strcasecmp(level, "encrypt") == 0)
        smtp_conf.tls_level = SMTP_TLS_ENCRYPT;
    else if (strcasecmp(level, "verify") == 0)
        smtp_conf.tls_level = SMTP_TLS_VERIFY;
    else if (strcasecmp(level, "secure") == 0)
        smtp_conf.tls_level = SMTP_TLS_SECURE;
    else
        msg_fatal("smtp_tls_security_level: unsupported level \"%s\"", level);
    smtp_conf.tls_verify_match = var_str("smtp_tls_verify_cert_match");
    smtp_conf.tls_secure_match = var_str("smtp_tls_secure_cert_match");
    smtp_conf.tls_servername = var_str("smtp_tls_servername");
    smtp_conf.sasl_enable = var_bool("smtp_sasl_auth_enable");
    smtp_conf.sasl_password_maps = var_str("smtp_sasl_password_maps");
    smtp_conf.sasl_security_options = var_str("smtp_sasl_security_options");
    smtp_conf.sasl_tls_security_options = var_str("smtp_sasl_tls_security_options");
    smtp_conf.sasl_mechanism_filter = var_str("smtp_sasl_mechanism_filter");
    smtp_ipc_timeout = var_time("ipc_timeout");
    if (smtp_ipc_timeout > SMTP_IPC_TIMEOUT_MAX)
        smtp_ipc_timeout = SMTP_IPC_TIMEOUT_MAX;
}

/* smtp_pre_init - as root: configuration, resolver, TLS keys, tables */
static void smtp_pre_init(const MAIL_SERVER_ARGS *args)
{
    VSTR *why = vstr_alloc(64);

    (void)args;
    if (mail_queue_init(var_str("queue_directory"), (int)var_int("hash_queue_depth"),
                        var_str("hash_queue_names"), why) < 0)
        msg_fatal("queue settings: %s", vstr_str(why));
    smtp_read_conf();
    /* The resolver reads /etc/resolv.conf now, before any chroot. */
    if ((smtp_dns = dns_ctx_create(var_str("dns_servers"), why)) == NULL)
        msg_fatal("%s", vstr_str(why));
    if (smtp_tls_init(why) < 0)
        msg_fatal("TLS set-up: %s", vstr_str(why));
    if (smtp_sasl_init(why) < 0)
        msg_fatal("SASL set-up: %s", vstr_str(why));
    srandom((unsigned)(getpid() ^ time(NULL)));
    vstr_free(why);
}

/* smtp_post_init - the timer that closes idle cached sessions */
static void smtp_post_init(const MAIL_SERVER_ARGS *args)
{
    smtp_cache_timer = evtimer_new(args->base, smtp_cache_event, NULL);
}

/* smtp_pre_exit - QUIT the sessions still open */
static void smtp_pre_exit(const MAIL_SERVER_ARGS *args)
{
    (void)args;
    smtp_cache_expire(1);
    if (smtp_cache_timer)
        event_free(smtp_cache_timer);
    smtp_cache_timer = NULL;
}

int main(int argc, char **argv)
{
    MAIL_SERVER_SPEC spec = {
        .kind = MAIL_SERVER_SINGLE,
        .pre_init = smtp_pre_init,
        .post_init = smtp_post_init,
        .single_service = smtp_service,
        .pre_exit = smtp_pre_exit,
    };

    if (argc > 0 && argv[0] != NULL)
        smtp_argv0 = argv[0];
    mail_server_main(argc, argv, &spec);
}
