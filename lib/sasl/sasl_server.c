/*
 * sasl_server - the generic half of the SASL server library: settings,
 * which mechanisms to offer (backend list, security options, filter),
 * and the AUTH exchange itself (response limits, strict base64, results
 * delivered from the event loop). The backends (sasl_postern.c,
 * sasl_dovecot.c) only see well-formed, decoded responses.
 *
 * Results: a backend calls sasl_sess_post(); the result is handed to the
 * caller's callback from an event made active on the loop, so callbacks
 * never run inside sasl_sess_start() or sasl_sess_step() and a callback
 * may free the session.
 */
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "sasl/sasl_impl.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

struct SASL_SERVER {
    const SASL_BACKEND *be;
    void *be_state;
    unsigned must_not[2]; /* [0]: without TLS, [1]: with TLS */
    unsigned must[2];
    SASL_FILTER *filter;
    size_t response_limit;
    struct event_base *base;
    VSTR *offer[2]; /* "PLAIN LOGIN", as last returned */
    ARGV *offer_list[2];
};

struct SASL_SESS {
    SASL_SERVER *srv;
    char mech[SASL_MECH_NAME_MAX + 1];
    SASL_DONE_FN fn;
    void *context;
    SASL_CLIENT_INFO info;
    struct event *post_ev;
    int posted; /* a result waits for the loop */
    enum sasl_result post_result;
    VSTR *post_text;
    int busy; /* between a response and the callback for it */
    int over; /* a final result was posted */
    void *bsess;
};

static const SASL_BACKEND *sasl_backend_find(const char *type)
{
    if (strcasecmp(type, "postern") == 0)
        return &sasl_postern_backend;
    if (strcasecmp(type, "dovecot") == 0)
        return &sasl_dovecot_backend;
    return NULL;
}

/* sasl_server_create - check the settings, set up the backend */
SASL_SERVER *sasl_server_create(const SASL_SERVER_ARGS *args, VSTR *why)
{
    SASL_SERVER *srv;
    const SASL_BACKEND *be;

    if (args->type == NULL || (be = sasl_backend_find(args->type)) == NULL) {
        const char *type = args->type ? args->type : "";

        if (strcasecmp(type, "cyrus") == 0)
            vstr_sprintf(why, "SASL type \"cyrus\" is not available in Postern: "
                              "use smtpd_sasl_type = postern or dovecot");
        else
            vstr_sprintf(why, "unsupported SASL type \"%s\": use postern or dovecot", type);
        return NULL;
    }
    if (args->base == NULL) {
        vstr_sprintf(why, "SASL server: no event loop");
        return NULL;
    }
    srv = mycalloc(1, sizeof(*srv));
    srv->be = be;
    srv->base = args->base;
    srv->response_limit =
        args->response_limit > 0 ? (size_t)args->response_limit : SASL_RESPONSE_LIMIT_DEF;
    srv->offer[0] = vstr_alloc(64);
    srv->offer[1] = vstr_alloc(64);
    if (sasl_secopts_parse(args->security, &srv->must_not[0], &srv->must[0], why) < 0 ||
        sasl_secopts_parse(args->tls_security ? args->tls_security : args->security,
                           &srv->must_not[1], &srv->must[1], why) < 0 ||
        (srv->filter = sasl_filter_new(args->filter, why)) == NULL ||
        (srv->be_state = be->create(srv, args, why)) == NULL) {
        sasl_server_free(srv);
        return NULL;
    }
    return srv;
}

/* sasl_server_offer - the mechanisms to offer now, as a list and a string */
static ARGV *sasl_server_offer(SASL_SERVER *srv, int tls_active)
{
    int i = tls_active ? 1 : 0;
    const ARGV *names;
    const unsigned *props;
    unsigned gen;

    srv->be->mechs(srv->be_state, &names, &props, &gen);
    argv_free(srv->offer_list[i]);
    srv->offer_list[i] = argv_alloc(8);
    vstr_reset(srv->offer[i]);
    for (size_t k = 0; names != NULL && k < names->argc; k++) {
        if (!sasl_secopts_allow(props[k], srv->must_not[i], srv->must[i]) ||
            !sasl_filter_keep(srv->filter, names->argv[k]))
            continue;
        argv_add(srv->offer_list[i], names->argv[k], (char *)NULL);
        if (vstr_len(srv->offer[i]) > 0)
            vstr_addch(srv->offer[i], ' ');
        vstr_cat(srv->offer[i], names->argv[k]);
    }
    return srv->offer_list[i];
}

/* sasl_server_mechs - "PLAIN LOGIN", or "" */
const char *sasl_server_mechs(SASL_SERVER *srv, int tls_active)
{
    (void)sasl_server_offer(srv, tls_active);
    return vstr_str(srv->offer[tls_active ? 1 : 0]);
}

/* sasl_server_base - the loop the library runs on */
struct event_base *sasl_server_base(const SASL_SERVER *srv)
{
    return srv->base;
}

/* sasl_sess_deliver - the loop side of sasl_sess_post */
static void sasl_sess_deliver(evutil_socket_t fd, short what, void *context)
{
    SASL_SESS *sess = context;
    enum sasl_result result = sess->post_result;
    VSTR *text = sess->post_text;

    (void)fd;
    (void)what;
    /* The callback may free the session: nothing of it is used afterwards,
       and the text it gets stays valid for the whole call. */
    sess->post_text = vstr_alloc(64);
    sess->posted = 0;
    sess->busy = 0;
    sess->fn(sess->context, result, vstr_str(text));
    sasl_vstr_wipe_free(text);
}

/* sasl_sess_post - queue a result for the callback */
void sasl_sess_post(SASL_SESS *sess, enum sasl_result result, const char *text)
{
    if (sess->posted)
        msg_panic("sasl_sess_post: %s: a result is already waiting", sess->mech);
    sess->posted = 1;
    sess->post_result = result;
    vstr_ncpy(sess->post_text, text ? text : "", text ? strnlen(text, SASL_TEXT_MAX) : 0);
    if (result != SASL_CONTINUE)
        sess->over = 1;
    event_active(sess->post_ev, EV_TIMEOUT, 1);
}

/* sasl_sess_info - the client facts given at start */
const SASL_CLIENT_INFO *sasl_sess_info(const SASL_SESS *sess)
{
    return &sess->info;
}

/* sasl_sess_mech - canonical mechanism name */
const char *sasl_sess_mech(const SASL_SESS *sess)
{
    return sess->mech;
}

/* sasl_dup - copy an optional string */
static char *sasl_dup(const char *s)
{
    return s ? mystrdup(s) : NULL;
}

/* sasl_sess_start - begin an exchange with mech */
SASL_SESS *sasl_sess_start(SASL_SERVER *srv, const char *mech, const char *initial,
                           const SASL_CLIENT_INFO *info, SASL_DONE_FN fn, void *context, VSTR *why)
{
    ARGV *offer = sasl_server_offer(srv, info != NULL && info->tls_active);
    const char *canon = NULL;
    SASL_SESS *sess;
    VSTR *decoded = NULL;

    for (size_t i = 0; i < offer->argc; i++)
        if (strcasecmp(offer->argv[i], mech) == 0)
            canon = offer->argv[i];
    if (canon == NULL) {
        vstr_sprintf(why, "mechanism not available");
        return NULL;
    }
    sess = mycalloc(1, sizeof(*sess));
    sess->srv = srv;
    strcpy(sess->mech, canon);
    sess->fn = fn;
    sess->context = context;
    if (info != NULL) {
        sess->info.client_addr = sasl_dup(info->client_addr);
        sess->info.client_port = sasl_dup(info->client_port);
        sess->info.local_addr = sasl_dup(info->local_addr);
        sess->info.local_port = sasl_dup(info->local_port);
        sess->info.tls_active = info->tls_active;
    }
    sess->post_ev = event_new(srv->base, -1, 0, sasl_sess_deliver, sess);
    if (sess->post_ev == NULL)
        msg_fatal("sasl_sess_start: event_new failed");
    sess->post_text = vstr_alloc(64);
    sess->busy = 1;

    if (initial != NULL) {
        size_t len = strlen(initial);

        if (len > srv->response_limit) {
            sasl_sess_post(sess, SASL_BADPROT, "initial response too long");
            return sess;
        }
        if (!sasl_b64_valid(initial, len)) {
            sasl_sess_post(sess, SASL_BADPROT, "malformed base64 in the initial response");
            return sess;
        }
        decoded = sasl_vstr_secret(len);
        (void)sasl_b64_decode(initial, len, decoded);
    }
    sess->bsess = srv->be->start(srv->be_state, sess, sess->mech, initial, decoded);
    sasl_vstr_wipe_free(decoded);
    return sess;
}

/* sasl_sess_step - the client's next response */
void sasl_sess_step(SASL_SESS *sess, const char *response, size_t len)
{
    SASL_SERVER *srv = sess->srv;
    VSTR *decoded;

    if (sess->busy) {
        /* The caller must wait for the callback; answering two responses at
           once would desynchronise the exchange, so end it. */
        msg_warn("SASL %s: a response arrived before the previous one was answered", sess->mech);
        if (sess->bsess != NULL) {
            srv->be->end(srv->be_state, sess->bsess);
            sess->bsess = NULL;
        }
        if (sess->posted) {
            sess->post_result = SASL_BADPROT;
            vstr_cpy(sess->post_text, "response sent before the challenge");
            sess->over = 1;
        } else {
            sasl_sess_post(sess, SASL_BADPROT, "response sent before the challenge");
        }
        return;
    }
    sess->busy = 1;
    if (sess->over) {
        sasl_sess_post(sess, SASL_BADPROT, "the authentication exchange is over");
        return;
    }
    if (len > srv->response_limit) {
        sasl_sess_post(sess, SASL_BADPROT, "response too long");
        return;
    }
    if (!sasl_b64_valid(response, len)) {
        sasl_sess_post(sess, SASL_BADPROT, "malformed base64 response");
        return;
    }
    decoded = sasl_vstr_secret(len);
    (void)sasl_b64_decode(response, len, decoded);
    srv->be->step(srv->be_state, sess->bsess, response, len, decoded);
    sasl_vstr_wipe_free(decoded);
}

/* sasl_sess_free - end the exchange; a pending answer is dropped */
void sasl_sess_free(SASL_SESS *sess)
{
    if (sess == NULL)
        return;
    if (sess->bsess != NULL)
        sess->srv->be->end(sess->srv->be_state, sess->bsess);
    event_free(sess->post_ev);
    sasl_vstr_wipe_free(sess->post_text);
    myfree((void *)sess->info.client_addr);
    myfree((void *)sess->info.client_port);
    myfree((void *)sess->info.local_addr);
    myfree((void *)sess->info.local_port);
    myfree(sess);
}

/* sasl_server_free - release the backend and settings */
void sasl_server_free(SASL_SERVER *srv)
{
    if (srv == NULL)
        return;
    if (srv->be_state != NULL)
        srv->be->free(srv->be_state);
    sasl_filter_free(srv->filter);
    vstr_free(srv->offer[0]);
    vstr_free(srv->offer[1]);
    argv_free(srv->offer_list[0]);
    argv_free(srv->offer_list[1]);
    myfree(srv);
}
