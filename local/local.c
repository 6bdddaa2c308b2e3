/*
 * local - the local delivery agent, as Postfix's local(8).
 *
 *   local -n local -t unix [master options]      (master.cf: local unix - n n - - local)
 *
 * A MAIL_SERVER_SINGLE service: qmgr connects to private/local and sends
 * delivery requests (docs/protocols.md section 3): a queue file and one or
 * more of its recipients. local reads the message from the queue file
 * (never changing it), delivers to each recipient through aliases,
 * ~/.forward files and the user's mailbox (local_expand.c), and answers
 * each recipient as soon as it is done, then with a summary. Every final
 * destination is logged in Postfix's shape:
 *
 *   ID: to=<user@dom>, relay=local, delay=0.1, delays=0.01/0/0/0.09, dsn=2.0.0,
 *       status=sent (delivered to maildir)
 *
 * Privileges: local runs as root when the instance was started as root
 * (master.cf unpriv = n), because it must become each recipient in turn;
 * everything a recipient could influence happens in a child process with
 * that recipient's ids (local_priv.c). In a private instance it runs as the
 * invoking user, and so does every delivery.
 */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "local.h"
#include "mail/attr.h"
#include "mail/deliver_log.h"
#include "mail/mail_conf.h"
#include "mail/mail_queue.h"
#include "mail/mail_server.h"
#include "mail/priv.h"
#include "mail/queue_id.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"

LOCAL_CONF local_conf;

/* ------------------------------------------------------------------ */
/* Results and logging.                                                */
/* ------------------------------------------------------------------ */

/* local_result_init - success with no text yet */
void local_result_init(LOCAL_RESULT *res)
{
    res->status = LOCAL_STAT_OK;
    snprintf(res->dsn, sizeof(res->dsn), "2.0.0");
    res->reason = vstr_alloc(64);
    vstr_set_limit(res->reason, LOCAL_REASON_MAX);
}

/* local_result_free - release the reason */
void local_result_free(LOCAL_RESULT *res)
{
    vstr_free(res->reason);
    res->reason = NULL;
}

/* local_result_text - format into the reason, cut at its limit */
static void local_result_text(LOCAL_RESULT *res, const char *fmt, va_list ap)
{
    VSTR *text = vstr_alloc(128);

    vstr_vsprintf_append(text, fmt, ap);
    vstr_reset(res->reason);
    vstr_ncat(res->reason, vstr_str(text),
              vstr_len(text) < LOCAL_REASON_MAX ? vstr_len(text) : LOCAL_REASON_MAX);
    vstr_free(text);
}

/* local_result_set - a failure; 4.x.x defers, anything else bounces */
void local_result_set(LOCAL_RESULT *res, const char *dsn, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    res->status = dsn[0] == '4' ? LOCAL_STAT_DEFER : LOCAL_STAT_BOUNCE;
    snprintf(res->dsn, sizeof(res->dsn), "%s", dsn);
    errno = saved; /* for %m */
    va_start(ap, fmt);
    local_result_text(res, fmt, ap);
    va_end(ap);
}

/* local_result_ok - success with its text */
void local_result_ok(LOCAL_RESULT *res, const char *fmt, ...)
{
    va_list ap;

    res->status = LOCAL_STAT_OK;
    snprintf(res->dsn, sizeof(res->dsn), "2.0.0");
    va_start(ap, fmt);
    local_result_text(res, fmt, ap);
    va_end(ap);
}

/* local_rank - which outcome wins for the recipient: a deferral (so the
   whole recipient is tried again), then a bounce, then success */
static int local_rank(int status)
{
    return status == LOCAL_STAT_OK ? 0 : status == LOCAL_STAT_BOUNCE ? 1 : 2;
}

/* local_report - log one final destination and merge it into the recipient */
void local_report(const LOCAL_STATE *st, const char *to, const LOCAL_RESULT *res)
{
    LOCAL_RCPT *rc = st->rcpt;
    LOCAL_MSG *msg = st->msg;
    VSTR *line = vstr_alloc(256);
    DELIVER_LOG info = {
        .queue_id = msg->queue_id,
        .to = to,
        .orig_to = *rc->orcpt ? rc->orcpt : rc->address,
        .relay = "local",
        .dsn = res->dsn,
        .status = res->status == LOCAL_STAT_OK      ? "sent"
                  : res->status == LOCAL_STAT_DEFER ? "deferred"
                                                    : "bounced",
        .reason = vstr_str(res->reason),
        .arrival_usec = msg->arrival_usec,
        .active_usec = msg->active_usec,
        .request_usec = msg->request_usec,
        .conn_usec = msg->start_usec,
        .done_usec = deliver_log_now_usec(),
    };

    deliver_log_format(line, &info, (int)local_conf.delay_resolution);
    msg_info("%s", vstr_str(line));
    vstr_free(line);

    if (res->status == LOCAL_STAT_OK)
        rc->delivered_count++;
    if (local_rank(res->status) > local_rank(rc->status) ||
        (res->status == LOCAL_STAT_OK && rc->status == LOCAL_STAT_OK)) {
        rc->status = res->status;
        memcpy(rc->dsn, res->dsn, sizeof(rc->dsn));
        vstr_ncpy(rc->reason, vstr_str(res->reason), vstr_len(res->reason));
    }
}

/* local_is_local_domain - one of mydestination (any case, trailing dot ignored) */
int local_is_local_domain(const char *domain)
{
    size_t len = strlen(domain);

    while (len > 0 && domain[len - 1] == '.')
        len--;
    for (size_t i = 0; i < local_conf.mydestination->argc; i++) {
        const char *d = local_conf.mydestination->argv[i];

        if (strlen(d) == len && strncasecmp(d, domain, len) == 0)
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Configuration.                                                      */
/* ------------------------------------------------------------------ */

/* local_classes - "alias, forward, include" into LOCAL_CLASS_* bits */
static int local_classes(const char *param)
{
    ARGV *av = var_list(param);
    int bits = 0;

    for (size_t i = 0; i < av->argc; i++) {
        const char *w = av->argv[i];

        if (strcasecmp(w, "alias") == 0)
            bits |= LOCAL_CLASS_ALIAS;
        else if (strcasecmp(w, "forward") == 0)
            bits |= LOCAL_CLASS_FORWARD;
        else if (strcasecmp(w, "include") == 0)
            bits |= LOCAL_CLASS_INCLUDE;
        else
            msg_warn("%s: unknown class \"%s\" ignored", param, w);
    }
    argv_free(av);
    return bits;
}

/* local_dt_classes - prepend_delivered_header into LOCAL_DT_* bits */
static int local_dt_classes(void)
{
    ARGV *av = var_list("prepend_delivered_header");
    int bits = 0;

    for (size_t i = 0; i < av->argc; i++) {
        const char *w = av->argv[i];

        if (strcasecmp(w, "command") == 0)
            bits |= LOCAL_DT_COMMAND;
        else if (strcasecmp(w, "file") == 0)
            bits |= LOCAL_DT_FILE;
        else if (strcasecmp(w, "forward") == 0)
            bits |= LOCAL_DT_FORWARD;
        else
            msg_warn("prepend_delivered_header: unknown class \"%s\" ignored", w);
    }
    argv_free(av);
    return bits;
}

/* local_locks - mailbox_delivery_lock */
static void local_locks(void)
{
    ARGV *av = var_list("mailbox_delivery_lock");

    for (size_t i = 0; i < av->argc; i++) {
        const char *w = av->argv[i];

        if (strcasecmp(w, "fcntl") == 0)
            local_conf.lock_fcntl = 1;
        else if (strcasecmp(w, "flock") == 0)
            local_conf.lock_flock = 1;
        else if (strcasecmp(w, "dotlock") == 0)
            local_conf.lock_dotlock = 1;
        else
            msg_fatal("mailbox_delivery_lock: unknown lock method \"%s\"", w);
    }
    argv_free(av);
}

/* local_maildir_host - the host name with '/' and ':' escaped, as the
   maildir specification asks, so that it is one safe file name part */
static void local_maildir_host(void)
{
    char host[LOCAL_HOSTNAME_MAX];
    VSTR *out = vstr_alloc(64);

    if (gethostname(host, sizeof(host)) < 0 || host[0] == 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = 0;
    for (const char *cp = host; *cp; cp++) {
        if (*cp == '/')
            vstr_cat(out, "\\057");
        else if (*cp == ':')
            vstr_cat(out, "\\072");
        else if ((unsigned char)*cp < 0x20 || *cp == 0x7f)
            vstr_addch(out, '_');
        else
            vstr_addch(out, *cp);
    }
    snprintf(local_conf.maildir_host, sizeof(local_conf.maildir_host), "%s", vstr_str(out));
    vstr_free(out);
}

/* local_read_conf - every parameter, once */
static void local_read_conf(void)
{
    LOCAL_CONF *c = &local_conf;
    VSTR *why = vstr_alloc(64);

    c->is_root = priv_is_root();
    c->self_uid = geteuid();
    c->self_gid = getegid();
    c->myorigin = mystrdup(var_str("myorigin"));
    c->myhostname = mystrdup(var_str("myhostname"));
    c->mydestination = var_list("mydestination");
    for (size_t i = 0; i < c->mydestination->argc; i++)
        lowercase(c->mydestination->argv[i]);
    c->recipient_delimiter = mystrdup(var_str("recipient_delimiter"));
    c->home_mailbox = mystrdup(var_str("home_mailbox"));
    c->mail_spool_directory = mystrdup(var_str("mail_spool_directory"));
    if (*c->mail_spool_directory == 0 && *c->home_mailbox == 0)
        msg_fatal("mail_spool_directory and home_mailbox are both empty: no mailbox to deliver to");
    c->forward_path = mystrdup(mail_conf_raw("forward_path"));
    c->local_home_directory = mystrdup(var_str("local_home_directory"));
    {
        size_t n = strlen(c->local_home_directory);

        while (n > 1 && c->local_home_directory[n - 1] == '/')
            c->local_home_directory[--n] = 0;
        if (n > 0 && c->local_home_directory[0] != '/')
            msg_fatal("local_home_directory must be an absolute path: %s", c->local_home_directory);
    }
    c->mailbox_command = mystrdup(mail_conf_raw("mailbox_command"));
    c->allow_commands = local_classes("allow_mail_to_commands");
    c->allow_files = local_classes("allow_mail_to_files");
    c->prepend_delivered = local_dt_classes();
    c->local_command_shell = mystrdup(var_str("local_command_shell"));
    c->command_expansion_filter = mystrdup(mail_conf_raw("command_expansion_filter"));
    c->forward_expansion_filter = mystrdup(mail_conf_raw("forward_expansion_filter"));
    c->command_execution_directory = mystrdup(mail_conf_raw("command_execution_directory"));
    c->execution_directory_expansion_filter =
        mystrdup(mail_conf_raw("execution_directory_expansion_filter"));
    c->command_time_limit = var_time("command_time_limit");
    c->default_privs = mystrdup(var_str("default_privs"));
    local_locks();
    c->stale_lock_time = var_time("stale_lock_time");
    c->deliver_lock_attempts = var_int("deliver_lock_attempts");
    c->deliver_lock_delay = var_time("deliver_lock_delay");
    c->mailbox_size_limit = var_int("mailbox_size_limit");
    if (c->mailbox_size_limit > 0 && var_int("message_size_limit") > c->mailbox_size_limit)
        msg_warn("mailbox_size_limit (%ld) is smaller than message_size_limit (%ld)",
                 c->mailbox_size_limit, var_int("message_size_limit"));
    c->strict_mailbox_ownership = var_bool("strict_mailbox_ownership");
    c->require_home_directory = var_bool("require_home_directory");
    c->duplicate_filter_limit = var_int("duplicate_filter_limit");
    c->delay_resolution = var_int("delay_logging_resolution_limit");
    c->ipc_timeout = var_time("ipc_timeout");
    c->export_environment = var_list("export_environment");
    c->cleanup_service = mystrdup(var_str("cleanup_service_name"));
    if (c->is_root) {
        if (priv_lookup(c->default_privs, &c->default_uid, &c->default_gid) < 0)
            msg_fatal("default_privs: unknown user \"%s\"", c->default_privs);
        if (c->default_uid == 0)
            msg_fatal("default_privs: \"%s\" has uid 0: it must be an unprivileged user",
                      c->default_privs);
        uid_t owner_uid;
        gid_t owner_gid;

        if (priv_lookup(var_str("mail_owner"), &owner_uid, &owner_gid) == 0 &&
            owner_uid == c->default_uid)
            msg_fatal("default_privs: \"%s\" is the mail_owner: deliveries must not be able "
                      "to touch the queue",
                      c->default_privs);
    } else {
        c->default_uid = c->self_uid;
        c->default_gid = c->self_gid;
    }
    local_maildir_host();

    /* Alias tables: a table that cannot be opened makes its lookups fail
       temporarily (mail waits), never "not found" (mail would go astray). */
    c->alias_specs = var_list("alias_maps");
    c->alias_maps = mycalloc(c->alias_specs->argc + 1, sizeof(DICT *));
    for (size_t i = 0; i < c->alias_specs->argc; i++)
        c->alias_maps[i] = dict_open(c->alias_specs->argv[i],
                                     DICT_FLAG_FOLD_FIX | DICT_FLAG_SURROGATE | DICT_FLAG_TRY0NULL |
                                         DICT_FLAG_TRY1NULL,
                                     why);
    vstr_free(why);
}

/* local_pre_init - before the event loop, as the user we run as */
static void local_pre_init(const MAIL_SERVER_ARGS *args)
{
    VSTR *why = vstr_alloc(64);

    (void)args;
    if (mail_queue_init(var_str("queue_directory"), (int)var_int("hash_queue_depth"),
                        var_str("hash_queue_names"), why) < 0)
        msg_fatal("queue settings: %s", vstr_str(why));
    vstr_free(why);
    local_read_conf();
}

/* ------------------------------------------------------------------ */
/* The delivery request (docs/protocols.md section 3).                 */
/* ------------------------------------------------------------------ */

/* local_req_str - a required or optional STR attribute of the request */
static const char *local_req_str(const ATTR_MSG *req, const char *name, int required)
{
    const char *value = attr_msg_get_str(req, name);

    if (value == NULL && (required || errno != ENOENT))
        return NULL;
    return value ? value : "";
}

/* local_req_num - a UINT attribute; 0 when absent */
static unsigned long long local_req_num(const ATTR_MSG *req, const char *name)
{
    unsigned long long v = 0;

    if (attr_msg_get_unum(req, name, &v) < 0)
        v = 0;
    return v;
}

/* local_parse_rcpts - the repeated recipient groups, in message order */
static LOCAL_RCPT *local_parse_rcpts(const ATTR_MSG *req, size_t *count, VSTR *why)
{
    LOCAL_RCPT *rcpts = NULL;
    size_t n = 0, cap = 0;
    int seen_end = 0;

    for (size_t i = 0; i < req->count; i++) {
        const ATTR_VAL *v = &req->val[i];
        LOCAL_RCPT *cur = n > 0 ? &rcpts[n - 1] : NULL;

        if (strcmp(v->name, "rcpt_index") == 0) {
            if (v->type != ATTR_TYPE_UINT) {
                vstr_sprintf(why, "rcpt_index is not a number");
                goto fail;
            }
            if (n >= LOCAL_RCPT_MAX) {
                vstr_sprintf(why, "more than %d recipients in one request", LOCAL_RCPT_MAX);
                goto fail;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 4;
                rcpts = myrealloc(rcpts, size_mul(cap, sizeof(*rcpts)));
            }
            memset(&rcpts[n], 0, sizeof(rcpts[n]));
            rcpts[n].index = v->unum;
            rcpts[n].orcpt = rcpts[n].dsn_orcpt = "";
            n++;
        } else if (strcmp(v->name, "rcpt") == 0 || strcmp(v->name, "orcpt") == 0 ||
                   strcmp(v->name, "dsn_orcpt") == 0) {
            if (cur == NULL || v->type != ATTR_TYPE_STR) {
                vstr_sprintf(why, "attribute %s out of place", v->name);
                goto fail;
            }
            if (v->name[0] == 'r')
                cur->address = v->data;
            else if (v->name[0] == 'o')
                cur->orcpt = v->data;
            else
                cur->dsn_orcpt = v->data;
        } else if (strcmp(v->name, "notify") == 0) {
            if (cur == NULL || v->type != ATTR_TYPE_UINT) {
                vstr_sprintf(why, "attribute notify out of place");
                goto fail;
            }
            cur->notify = v->unum;
        } else if (strcmp(v->name, "end") == 0) {
            seen_end = 1;
        }
    }
    if (!seen_end) {
        vstr_sprintf(why, "request has no end attribute");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (rcpts[i].address == NULL || *rcpts[i].address == 0) {
            vstr_sprintf(why, "recipient %zu has no address", i);
            goto fail;
        }
    }
    *count = n;
    return rcpts;
fail:
    myfree(rcpts);
    *count = 0;
    return NULL;
}

/* local_reply - answer one recipient */
static int local_reply(ATTR_STREAM *s, const LOCAL_RCPT *rc)
{
    return attr_print(s, 0, ATTR_UNUM("rcpt_index", rc->index),
                      ATTR_UNUM("status", (unsigned long long)rc->status), ATTR_STR("dsn", rc->dsn),
                      ATTR_STR("reason", vstr_str(rc->reason)), ATTR_STR("relay", "local"),
                      ATTR_END);
}

/* local_fail_all - every recipient gets the same result (no delivery tried) */
static void local_fail_all(LOCAL_MSG *msg, LOCAL_RCPT *rcpts, size_t n, const char *dsn,
                           const char *reason)
{
    for (size_t i = 0; i < n; i++) {
        LOCAL_STATE st = {.msg = msg, .rcpt = &rcpts[i]};
        LOCAL_RESULT res;

        local_result_init(&res);
        local_result_set(&res, dsn, "%s", reason);
        local_report(&st, rcpts[i].address, &res);
        local_result_free(&res);
    }
}

/* local_check_rcpt - the request's recipient matches the queue file */
static int local_check_rcpt(const LOCAL_MSG *msg, const LOCAL_RCPT *rc)
{
    const QFILE *q = msg->q;

    return rc->index < q->rcpt_count && strcmp(q->rcpt[rc->index].address, rc->address) == 0;
}

/* local_request - one delivery request: deliver, answer each recipient, summarize */
static int local_request(ATTR_STREAM *s, const ATTR_MSG *req, void *context)
{
    LOCAL_MSG msg;
    LOCAL_RCPT *rcpts;
    size_t n = 0, answered = 0;
    VSTR *why = vstr_alloc(64);
    int rc = ATTR_SERV_CONTINUE, err;

    (void)context;
    memset(&msg, 0, sizeof(msg));
    msg.queue_name = local_req_str(req, "queue_name", 1);
    msg.queue_id = local_req_str(req, "queue_id", 1);
    msg.sender = local_req_str(req, "sender", 1);
    msg.envid = local_req_str(req, "envid", 0);
    msg.ret = local_req_str(req, "ret", 0);
    if (msg.queue_name == NULL || msg.queue_id == NULL || msg.sender == NULL || msg.envid == NULL ||
        msg.ret == NULL) {
        msg_warn("delivery request: missing or bad queue_name, queue_id or sender");
        rc = -1;
        goto done;
    }
    if (!mail_queue_name_ok(msg.queue_name) || !queue_id_valid(msg.queue_id)) {
        /* These name a file: anything else could reach outside the queue. */
        msg_warn("delivery request: bad queue name or id");
        rc = -1;
        goto done;
    }
    msg.arrival_usec = local_req_num(req, "arrival_usec");
    msg.active_usec = local_req_num(req, "active_usec");
    msg.request_usec = local_req_num(req, "request_usec");
    if ((rcpts = local_parse_rcpts(req, &n, why)) == NULL) {
        msg_warn("%s: delivery request: %s", msg.queue_id, vstr_str(why));
        rc = -1;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        rcpts[i].status = LOCAL_STAT_OK;
        snprintf(rcpts[i].dsn, sizeof(rcpts[i].dsn), "2.0.0");
        rcpts[i].reason = vstr_alloc(64);
        vstr_set_limit(rcpts[i].reason, LOCAL_REASON_MAX);
        vstr_cpy(rcpts[i].reason, "delivered");
        rcpts[i].dup_filter = argv_alloc(8);
    }
    msg.delivered_to = argv_alloc(4);
    msg.start_usec = deliver_log_now_usec();

    err = qfile_open(msg.queue_name, msg.queue_id, 0, &msg.q, why);
    if (err != 0) {
        VSTR *text = vstr_alloc(64);

        vstr_sprintf(text, "cannot access mail queue file %s/%s: %s", msg.queue_name, msg.queue_id,
                     vstr_str(why));
        local_fail_all(&msg, rcpts, n, "4.3.0", vstr_str(text));
        vstr_free(text);
    } else if (msg.arrival_usec == 0) {
        msg.arrival_usec =
            (uint64_t)msg.q->arrival.tv_sec * 1000000ULL + (uint64_t)msg.q->arrival.tv_usec;
    }
    for (size_t i = 0; i < n; i++) {
        if (msg.q != NULL) {
            if (local_check_rcpt(&msg, &rcpts[i]))
                local_deliver_recipient(&msg, &rcpts[i]);
            else
                local_fail_all(&msg, &rcpts[i], 1, "4.3.0",
                               "recipient does not match the queue file");
        }
        /* Answer at once: should we die now, this one is not lost. */
        if (local_reply(s, &rcpts[i]) < 0) {
            msg_warn("%s: reply to queue manager: %s", msg.queue_id, attr_stream_why(s));
            rc = -1;
            break;
        }
        answered++;
    }
    if (rc == ATTR_SERV_CONTINUE &&
        attr_print(s, 0, ATTR_UNUM("done", 1), ATTR_UNUM("count", answered), ATTR_END) < 0) {
        msg_warn("%s: reply to queue manager: %s", msg.queue_id, attr_stream_why(s));
        rc = -1;
    }
    for (size_t i = 0; i < n; i++) {
        vstr_free(rcpts[i].reason);
        argv_free(rcpts[i].dup_filter);
        for (size_t j = 0; j < rcpts[i].fwd_count; j++) {
            myfree(rcpts[i].fwd[j].delivered);
            myfree(rcpts[i].fwd[j].address);
        }
        myfree(rcpts[i].fwd);
    }
    myfree(rcpts);
    argv_free(msg.delivered_to);
    if (msg.q)
        qfile_close(msg.q);
done:
    vstr_free(why);
    return rc;
}

/* local_service - one client (qmgr) connection: requests until it closes */
static void local_service(const MAIL_SERVER_ARGS *args, int fd)
{
    ATTR_STREAM *s = attr_stream_open(fd, LOCAL_REQUEST_TIMEOUT_MS);

    (void)args;
    if (attr_serv_loop(s, ATTR_FLAG_PRINTABLE, local_request, NULL) < 0 && errno != ENODATA)
        msg_warn("delivery request from queue manager: %s", attr_stream_why(s));
    attr_stream_free(s);
}

int main(int argc, char **argv)
{
    MAIL_SERVER_SPEC spec = {
        .kind = MAIL_SERVER_SINGLE,
        .pre_init = local_pre_init,
        .single_service = local_service,
    };

    mail_server_main(argc, argv, &spec);
}
