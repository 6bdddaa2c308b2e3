/*
 * smtpd_check - the recipient policy: which RCPT TO the server accepts.
 *
 * As in Postfix with smtpd_delay_reject = yes, every restriction list is
 * evaluated when a recipient arrives, in this order:
 *
 *   smtpd_client_restrictions, smtpd_helo_restrictions,
 *   smtpd_sender_restrictions, smtpd_relay_restrictions,
 *   smtpd_recipient_restrictions, then reject_unlisted_recipient when
 *   smtpd_reject_unlisted_recipient = yes.
 *
 * Within a list the first restriction that decides wins: PERMIT ends that
 * list (the next list still runs), REJECT ends the evaluation. A list that
 * runs out decides nothing. The mail to postmaster (<postmaster>, or
 * postmaster@ a local domain) is always accepted (RFC 5321 4.5.1).
 *
 * Restrictions understood (the rest of Postfix's vocabulary is answered
 * "451 4.3.5 Server configuration error" and logged, never ignored):
 *   permit reject defer dunno
 *   permit_mynetworks permit_sasl_authenticated
 *   permit_auth_destination reject_unauth_destination defer_unauth_destination
 *   reject_unlisted_recipient reject_unauth_pipelining
 *   reject_non_fqdn_recipient reject_non_fqdn_sender reject_non_fqdn_helo_hostname
 *   reject_invalid_helo_hostname
 *   reject_sender_login_mismatch, reject_authenticated_sender_login_mismatch,
 *   reject_unauthenticated_sender_login_mismatch, reject_known_sender_login_mismatch
 *   check_client_access, check_helo_access, check_sender_access,
 *   check_recipient_access TYPE:TABLE (access(5) results: OK, REJECT [text],
 *   DEFER [text], DUNNO, "NNN [x.y.z] text", or one restriction name)
 *
 * Relay control. A recipient is our destination when its domain is local
 * (mydestination, or an address literal of this host) or in relay_domains,
 * and its local part carries no sender-specified routing: user%other@local,
 * other!user@local and "user@other"@local name another destination that a
 * later rewrite could act on, so with allow_untrusted_routing = no they are
 * never "ours" (Postfix's RESOLVE_FLAG_ROUTED rule). A source route
 * (<@relay:user@local>) was already dropped by the address parser, so it is
 * never followed. Everything else needs permit_mynetworks or an
 * authenticated client (permit_sasl_authenticated; not ANONYMOUS).
 *
 * Sender ownership (smtpd_sender_login_maps). The table gives, for a sender
 * address, the login names that may use it (separated by commas or
 * blanks), looked up in Postfix's mail_addr_find order: user+ext@domain,
 * user@domain, user+ext and user (local domains only), @domain. As in
 * Postfix the restrictions act on non-null senders only:
 *   reject_authenticated_sender_login_mismatch: an authenticated client
 *     must be an owner ("553 5.7.1 <addr>: Sender address rejected: not
 *     owned by user NAME"), also of an address the table does not list
 *   reject_unauthenticated_sender_login_mismatch: a client that did not
 *     authenticate may not use an address the table lists ("553 5.7.1
 *     <addr>: Sender address rejected: not logged in")
 *   reject_sender_login_mismatch: both
 *   reject_known_sender_login_mismatch: as the first, but only for
 *     addresses the table lists; and the second
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mail/mail_addr_find.h"
#include "mail/mail_conf.h"
#include "util/msg.h"
#include "util/mymalloc.h"

#include "smtpd.h"
#include "smtpd_sasl.h"

#define SMTPD_CHECK_DEPTH 10 /* restriction names nested in access results */

enum smtpd_verdict { SMTPD_DUNNO, SMTPD_PERMIT, SMTPD_REJECT };

/* What one evaluation is about. */
typedef struct SMTPD_CHECK {
    SMTPD_SESSION *s;
    const SMTP_ADDR *rcpt; /* internal form, domain lower case */
    const char *what;      /* "Recipient address" ... for reply texts */
    const char *subject;   /* the thing named in <...> */
    int *code;
    const char **dsn;
    VSTR *text;
    int depth;
} SMTPD_CHECK;

/* smtpd_reject - fill in the reply for a refusal; SMTPD_REJECT */
static enum smtpd_verdict smtpd_reject(SMTPD_CHECK *ck, int code, const char *dsn, const char *fmt,
                                       ...) __attribute__((format(printf, 4, 5)));

static enum smtpd_verdict smtpd_reject(SMTPD_CHECK *ck, int code, const char *dsn, const char *fmt,
                                       ...)
{
    va_list ap;

    *ck->code = code;
    *ck->dsn = dsn;
    va_start(ap, fmt);
    vstr_reset(ck->text);
    vstr_vsprintf_append(ck->text, fmt, ap);
    va_end(ap);
    return SMTPD_REJECT;
}

/* smtpd_temp_fail - a table lookup failed: 451, never a 5xx guess */
static enum smtpd_verdict smtpd_temp_fail(SMTPD_CHECK *ck)
{
    return smtpd_reject(ck, 451, "4.3.0", "<%s>: Temporary lookup failure", ck->subject);
}

/* smtpd_config_error - a restriction we cannot evaluate */
static enum smtpd_verdict smtpd_config_error(SMTPD_CHECK *ck, const char *name)
{
    msg_warn("unsupported restriction \"%s\" in main.cf or master.cf -- answering 451 4.3.5", name);
    return smtpd_reject(ck, 451, "4.3.5", "<%s>: %s rejected: Server configuration error",
                        ck->subject, ck->what);
}

/* smtpd_check_is_local_domain - mydestination, or an address literal of this host */
int smtpd_check_is_local_domain(SMTPD_SESSION *s, const char *domain)
{
    size_t len = strlen(domain);

    if (len > 2 && domain[0] == '[' && domain[len - 1] == ']') {
        char addr[INET6_ADDRSTRLEN + 8];
        unsigned char bin[16];
        const char *a = domain + 1;

        len -= 2;
        if (len > 5 && strncasecmp(a, "IPv6:", 5) == 0) {
            a += 5;
            len -= 5;
        }
        if (len >= sizeof(addr))
            return 0;
        memcpy(addr, a, len);
        addr[len] = 0;
        /* The address the client reached us on, and loopback, are ours. */
        if (strcmp(addr, s->peer.local_addr) == 0)
            return 1;
        if (inet_pton(AF_INET, addr, bin) == 1)
            return bin[0] == 127;
        if (inet_pton(AF_INET6, addr, bin) == 1)
            return strcmp(addr, "::1") == 0 ||
                   (s->cfg->inet_interfaces != NULL &&
                    match_list_addr(s->cfg->inet_interfaces, addr) == 1);
        return 0;
    }
    return match_list_domain(s->cfg->mydestination, domain);
}

/* smtpd_is_local_cb - MAIL_ADDR_LOCAL_FN for mail_addr_find */
static int smtpd_is_local_cb(const char *domain, void *context)
{
    return smtpd_check_is_local_domain(context, domain) == 1;
}

/* smtpd_routed - sender-specified routing in the local part (RFC 5321 3.6.1 / C) */
static int smtpd_routed(SMTPD_SESSION *s, const SMTP_ADDR *rcpt)
{
    if (s->cfg->allow_untrusted_routing)
        return 0;
    return smtp_addr_routing(vstr_str(rcpt->local), vstr_len(rcpt->local)) != 0;
}

/* smtpd_auth_destination - 1 ours (local or relay_domains), 0 not, -1 lookup error */
static int smtpd_auth_destination(SMTPD_CHECK *ck)
{
    const char *domain = vstr_str(ck->rcpt->domain);
    int r;

    if (ck->rcpt->flags & SMTP_ADDR_IS_POSTMASTER)
        return 1;
    if (*domain == 0 || smtpd_routed(ck->s, ck->rcpt))
        return 0;
    if ((r = smtpd_check_is_local_domain(ck->s, domain)) != 0)
        return r;
    return match_list_domain(ck->s->cfg->relay_domains, domain);
}

/* smtpd_maps_find - look addr up in a NULL-terminated table list; 1, 0, -1 error */
static int smtpd_maps_find(SMTPD_SESSION *s, DICT **maps, const char *addr)
{
    for (DICT **dp = maps; *dp; dp++) {
        if (mail_addr_find(*dp, addr, s->cfg->delimiters, smtpd_is_local_cb, s, NULL) != NULL)
            return 1;
        if ((*dp)->error != DICT_ERR_NONE) {
            msg_warn("%s:%s: lookup of %s failed", (*dp)->type, (*dp)->name, addr);
            return -1;
        }
    }
    return 0;
}

/* smtpd_login_owners - the owners smtpd_sender_login_maps lists for sender:
   1 found (*owners set, owned by the table), 0 not listed, -1 lookup error */
static int smtpd_login_owners(SMTPD_SESSION *s, const char *sender, const char **owners)
{
    for (DICT **dp = s->cfg->sender_login_maps; dp && *dp; dp++) {
        if ((*owners = mail_addr_find(*dp, sender, s->cfg->delimiters, smtpd_is_local_cb, s,
                                      NULL)) != NULL)
            return 1;
        if ((*dp)->error != DICT_ERR_NONE) {
            msg_warn("%s:%s: lookup of %s failed", (*dp)->type, (*dp)->name, sender);
            return -1;
        }
    }
    return 0;
}

/* smtpd_login_owned - is login among the owners (commas or blanks between names) */
static int smtpd_login_owned(const char *owners, const char *login)
{
    size_t llen = strlen(login);

    for (const char *cp = owners; *cp;) {
        size_t n;

        cp += strspn(cp, ", \t");
        n = strcspn(cp, ", \t");
        if (n == llen && n > 0 && strncasecmp(cp, login, n) == 0)
            return 1;
        cp += n;
    }
    return 0;
}

/* smtpd_login_mismatch - the four *_sender_login_mismatch restrictions */
static enum smtpd_verdict smtpd_login_mismatch(SMTPD_CHECK *ck, const char *name)
{
    SMTPD_SESSION *s = ck->s;
    const char *sender = s->txn.sender;
    const char *login = s->sasl_username;
    const char *owners = NULL;
    int check_auth, check_unauth, allow_unlisted, found;

    /* Postfix's rule: the null sender is never a mismatch. */
    if (s->cfg->sender_login_maps == NULL || sender == NULL || *sender == 0)
        return SMTPD_DUNNO;
    check_auth = strcmp(name, "reject_unauthenticated_sender_login_mismatch") != 0;
    check_unauth = strcmp(name, "reject_authenticated_sender_login_mismatch") != 0;
    allow_unlisted = strcmp(name, "reject_known_sender_login_mismatch") == 0;
    if ((login != NULL && !check_auth) || (login == NULL && !check_unauth))
        return SMTPD_DUNNO;
    if ((found = smtpd_login_owners(s, sender, &owners)) < 0)
        return smtpd_reject(ck, 451, "4.3.0", "<%s>: Temporary lookup failure", sender);
    if (login == NULL)
        return found ? smtpd_reject(ck, 553, "5.7.1",
                                    "<%s>: Sender address rejected: not logged in", sender)
                     : SMTPD_DUNNO;
    if ((!found && allow_unlisted) || (found && smtpd_login_owned(owners, login)))
        return SMTPD_DUNNO;
    return smtpd_reject(ck, 553, "5.7.1", "<%s>: Sender address rejected: not owned by user %s",
                        sender, login);
}

/* smtpd_unlisted - reject_unlisted_recipient: unknown users of our domains */
static enum smtpd_verdict smtpd_unlisted(SMTPD_CHECK *ck)
{
    SMTPD_SESSION *s = ck->s;
    const char *domain = vstr_str(ck->rcpt->domain);
    const char *addr = vstr_str(ck->rcpt->addr);
    int local, found;

    if (ck->rcpt->flags & SMTP_ADDR_IS_POSTMASTER)
        return SMTPD_DUNNO;
    if ((local = smtpd_check_is_local_domain(s, domain)) < 0)
        return smtpd_temp_fail(ck);
    if (local) {
        if (s->cfg->local_rcpt_maps == NULL)
            return SMTPD_DUNNO;
        if ((found = smtpd_maps_find(s, s->cfg->local_rcpt_maps, addr)) < 0)
            return smtpd_temp_fail(ck);
        if (found)
            return SMTPD_DUNNO;
        return smtpd_reject(ck, s->cfg->unknown_local_code,
                            s->cfg->unknown_local_code >= 500 ? "5.1.1" : "4.1.1",
                            "<%s>: Recipient address rejected: User unknown in local recipient "
                            "table",
                            ck->subject);
    }
    if (s->cfg->relay_rcpt_maps == NULL)
        return SMTPD_DUNNO;
    int relay = match_list_domain(s->cfg->relay_domains, domain);

    if (relay < 0)
        return smtpd_temp_fail(ck);
    if (!relay)
        return SMTPD_DUNNO;
    if ((found = smtpd_maps_find(s, s->cfg->relay_rcpt_maps, addr)) < 0)
        return smtpd_temp_fail(ck);
    if (found)
        return SMTPD_DUNNO;
    return smtpd_reject(
        ck, s->cfg->unknown_relay_code, s->cfg->unknown_relay_code >= 500 ? "5.1.1" : "4.1.1",
        "<%s>: Recipient address rejected: User unknown in relay recipient table", ck->subject);
}

/* smtpd_fqdn - a name with a dot (or an address literal) */
static int smtpd_fqdn(const char *name)
{
    return *name == '[' || strchr(name, '.') != NULL;
}

/* smtpd_access_dict - the table opened at start-up for a check_*_access spec */
static DICT *smtpd_access_dict(const SMTPD_CONFIG *cfg, const char *spec)
{
    for (size_t i = 0; cfg->access_specs && i < cfg->access_specs->argc; i++)
        if (strcmp(cfg->access_specs->argv[i], spec) == 0)
            return cfg->access_maps[i];
    return NULL;
}

static enum smtpd_verdict smtpd_restriction(SMTPD_CHECK *ck, const char *name, const char *arg);

/* smtpd_access_result - act on an access(5) table's value */
static enum smtpd_verdict smtpd_access_result(SMTPD_CHECK *ck, const char *value)
{
    const char *cp = value + strspn(value, " \t");
    size_t wlen = strcspn(cp, " \t");
    const char *rest = cp + wlen + strspn(cp + wlen, " \t");

    if (wlen == 2 && strncasecmp(cp, "OK", 2) == 0)
        return SMTPD_PERMIT;
    if (wlen == 6 && strncasecmp(cp, "PERMIT", 6) == 0)
        return SMTPD_PERMIT;
    if (wlen == 5 && strncasecmp(cp, "DUNNO", 5) == 0)
        return SMTPD_DUNNO;
    if (wlen == 6 && strncasecmp(cp, "REJECT", 6) == 0)
        return smtpd_reject(ck, ck->s->cfg->reject_code, "5.7.1", "<%s>: %s rejected: %s",
                            ck->subject, ck->what, *rest ? rest : "Access denied");
    if (wlen == 5 && strncasecmp(cp, "DEFER", 5) == 0)
        return smtpd_reject(ck, ck->s->cfg->defer_code, "4.7.1", "<%s>: %s rejected: %s",
                            ck->subject, ck->what, *rest ? rest : "Try again later");
    if (wlen == 3 && (cp[0] == '4' || cp[0] == '5') && isdigit((unsigned char)cp[1]) &&
        isdigit((unsigned char)cp[2])) {
        int code = (cp[0] - '0') * 100 + (cp[1] - '0') * 10 + (cp[2] - '0');
        const char *dsn = code >= 500 ? "5.7.1" : "4.7.1";
        char given[sizeof(ck->s->reply_dsn)];
        size_t dlen = strcspn(rest, " \t");

        /* "550 5.1.1 text": keep an enhanced code that fits the reply code. */
        if (dlen > 0 && dlen < sizeof(given)) {
            memcpy(given, rest, dlen);
            given[dlen] = 0;
            if (smtp_cmd_dsn_valid(code, given)) {
                memcpy(ck->s->reply_dsn, given, dlen + 1);
                dsn = ck->s->reply_dsn;
                rest += dlen + strspn(rest + dlen, " \t");
            }
        }
        return smtpd_reject(ck, code, dsn, "<%s>: %s rejected: %s", ck->subject, ck->what,
                            *rest ? rest : "Access denied");
    }
    if (*cp && !*rest && ck->depth < SMTPD_CHECK_DEPTH) {
        char name[64];

        if (wlen < sizeof(name)) {
            memcpy(name, cp, wlen);
            name[wlen] = 0;
            ck->depth++;
            enum smtpd_verdict v = smtpd_restriction(ck, name, NULL);

            ck->depth--;
            return v;
        }
    }
    return smtpd_config_error(ck, value);
}

/* smtpd_access - check_*_access: look up the keys for what is being checked */
static enum smtpd_verdict smtpd_access(SMTPD_CHECK *ck, const char *name, const char *spec)
{
    SMTPD_SESSION *s = ck->s;
    DICT *d = spec ? smtpd_access_dict(s->cfg, spec) : NULL;
    const char *value = NULL;

    if (d == NULL)
        return smtpd_config_error(ck, name);
    if (strcmp(name, "check_client_access") == 0) {
        value = mail_addr_find_host_addr(d, s->peer.addr);
        if (value == NULL && d->error == DICT_ERR_NONE && strcmp(s->peer.name, "unknown") != 0)
            value = mail_addr_find_domain(d, s->peer.name, 0);
    } else if (strcmp(name, "check_helo_access") == 0) {
        if (s->helo_name == NULL)
            return SMTPD_DUNNO;
        value = mail_addr_find_domain(d, s->helo_name, 0);
    } else if (strcmp(name, "check_sender_access") == 0) {
        const char *sender = s->txn.sender && *s->txn.sender ? s->txn.sender : "<>";

        value = mail_addr_find_access(d, sender, s->cfg->delimiters, 0);
    } else {
        value = mail_addr_find_access(d, vstr_str(ck->rcpt->addr), s->cfg->delimiters, 0);
    }
    if (value == NULL)
        return d->error == DICT_ERR_NONE ? SMTPD_DUNNO : smtpd_temp_fail(ck);
    return smtpd_access_result(ck, value);
}

/* smtpd_restriction - one restriction; arg is the table of check_*_access */
static enum smtpd_verdict smtpd_restriction(SMTPD_CHECK *ck, const char *name, const char *arg)
{
    SMTPD_SESSION *s = ck->s;
    const SMTPD_CONFIG *cfg = s->cfg;
    const char *rcpt_domain = vstr_str(ck->rcpt->domain);
    int r;

    if (strcasecmp(name, "permit") == 0)
        return SMTPD_PERMIT;
    if (strcasecmp(name, "dunno") == 0)
        return SMTPD_DUNNO;
    if (strcasecmp(name, "reject") == 0)
        return smtpd_reject(ck, cfg->reject_code, "5.7.1", "<%s>: %s rejected: Access denied",
                            ck->subject, ck->what);
    if (strcasecmp(name, "defer") == 0)
        return smtpd_reject(ck, cfg->defer_code, "4.7.1", "<%s>: %s rejected: Try again later",
                            ck->subject, ck->what);
    if (strcmp(name, "permit_mynetworks") == 0)
        return s->peer.in_mynetworks ? SMTPD_PERMIT : SMTPD_DUNNO;
    if (strcmp(name, "permit_sasl_authenticated") == 0)
        return smtpd_sasl_permitted(s) ? SMTPD_PERMIT : SMTPD_DUNNO;
    if (strcmp(name, "reject_sender_login_mismatch") == 0 ||
        strcmp(name, "reject_authenticated_sender_login_mismatch") == 0 ||
        strcmp(name, "reject_unauthenticated_sender_login_mismatch") == 0 ||
        strcmp(name, "reject_known_sender_login_mismatch") == 0)
        return smtpd_login_mismatch(ck, name);
    if (strcmp(name, "permit_auth_destination") == 0 ||
        strcmp(name, "reject_unauth_destination") == 0 ||
        strcmp(name, "defer_unauth_destination") == 0) {
        if ((r = smtpd_auth_destination(ck)) < 0)
            return smtpd_temp_fail(ck);
        if (name[0] == 'p')
            return r ? SMTPD_PERMIT : SMTPD_DUNNO;
        if (r)
            return SMTPD_DUNNO;
        if (name[0] == 'd')
            return smtpd_reject(ck, 454, "4.7.1", "<%s>: Relay access denied", ck->subject);
        return smtpd_reject(ck, cfg->relay_reject_code,
                            cfg->relay_reject_code >= 500 ? "5.7.1" : "4.7.1",
                            "<%s>: Relay access denied", ck->subject);
    }
    if (strcmp(name, "reject_unlisted_recipient") == 0 || strcmp(name, "check_recipient_maps") == 0)
        return smtpd_unlisted(ck);
    if (strcmp(name, "reject_unauth_pipelining") == 0)
        return s->ill_pipelining
                   ? smtpd_reject(ck, 503, "5.5.0",
                                  "<%s>: %s rejected: Improper use of SMTP command pipelining",
                                  ck->subject, ck->what)
                   : SMTPD_DUNNO;
    if (strcmp(name, "reject_non_fqdn_recipient") == 0)
        return smtpd_fqdn(rcpt_domain) ? SMTPD_DUNNO
                                       : smtpd_reject(ck, 504, "5.5.2",
                                                      "<%s>: Recipient address rejected: need "
                                                      "fully-qualified address",
                                                      ck->subject);
    if (strcmp(name, "reject_non_fqdn_sender") == 0) {
        const char *at = s->txn.sender ? strrchr(s->txn.sender, '@') : NULL;

        if (s->txn.sender == NULL || *s->txn.sender == 0 || (at && smtpd_fqdn(at + 1)))
            return SMTPD_DUNNO;
        return smtpd_reject(ck, 504, "5.5.2",
                            "<%s>: Sender address rejected: need fully-qualified address",
                            s->txn.sender);
    }
    if (strcmp(name, "reject_non_fqdn_helo_hostname") == 0 ||
        strcmp(name, "reject_non_fqdn_hostname") == 0) {
        if (s->helo_name == NULL || smtpd_fqdn(s->helo_name))
            return SMTPD_DUNNO;
        return smtpd_reject(ck, 504, "5.5.2",
                            "<%s>: Helo command rejected: need fully-qualified hostname",
                            s->helo_name);
    }
    if (strcmp(name, "reject_invalid_helo_hostname") == 0 ||
        strcmp(name, "reject_invalid_hostname") == 0)
        return SMTPD_DUNNO; /* HELO/EHLO already refused invalid names */
    if (strncmp(name, "check_", 6) == 0 && strlen(name) > 13 &&
        strcmp(name + strlen(name) - 7, "_access") == 0)
        return smtpd_access(ck, name, arg);
    return smtpd_config_error(ck, name);
}

/* smtpd_restriction_takes_arg - restrictions followed by a table */
static int smtpd_restriction_takes_arg(const char *name)
{
    return strcmp(name, "check_client_access") == 0 || strcmp(name, "check_helo_access") == 0 ||
           strcmp(name, "check_sender_access") == 0 || strcmp(name, "check_recipient_access") == 0;
}

/* smtpd_list - one restriction list */
static enum smtpd_verdict smtpd_list(SMTPD_CHECK *ck, const ARGV *list, const char *what,
                                     const char *subject)
{
    ck->what = what;
    ck->subject = subject;
    for (size_t i = 0; list && i < list->argc; i++) {
        const char *name = list->argv[i];
        const char *arg = NULL;

        if (smtpd_restriction_takes_arg(name))
            arg = i + 1 < list->argc ? list->argv[++i] : NULL;
        enum smtpd_verdict v = smtpd_restriction(ck, name, arg);

        if (v != SMTPD_DUNNO)
            return v;
    }
    return SMTPD_DUNNO;
}

/* smtpd_is_postmaster - <postmaster>, or postmaster@ a local domain */
static int smtpd_is_postmaster(SMTPD_SESSION *s, const SMTP_ADDR *rcpt)
{
    if (rcpt->flags & SMTP_ADDR_IS_POSTMASTER)
        return 1;
    return strcasecmp(vstr_str(rcpt->local), "postmaster") == 0 &&
           smtpd_check_is_local_domain(s, vstr_str(rcpt->domain)) == 1;
}

/* smtpd_check_rcpt - SMTPD_CHECK_OK, or SMTPD_CHECK_REJECT with the reply */
int smtpd_check_rcpt(SMTPD_SESSION *s, const SMTP_ADDR *rcpt, const char *shown, int *code,
                     const char **dsn, VSTR *text)
{
    SMTPD_CHECK ck = {.s = s, .rcpt = rcpt, .code = code, .dsn = dsn, .text = text};
    const SMTPD_CONFIG *cfg = s->cfg;
    char client[sizeof(s->peer.namaddr) + 4];
    const char *sender = s->txn.sender && *s->txn.sender ? s->txn.sender : "";

    if (smtpd_is_postmaster(s, rcpt))
        return SMTPD_CHECK_OK;
    snprintf(client, sizeof(client), "%s[%s]", s->peer.name, s->peer.addr);
    if (smtpd_list(&ck, cfg->client_restrictions, "Client host", client) == SMTPD_REJECT ||
        smtpd_list(&ck, cfg->helo_restrictions, "Helo command", s->helo_name ? s->helo_name : "") ==
            SMTPD_REJECT ||
        smtpd_list(&ck, cfg->sender_restrictions, "Sender address", sender) == SMTPD_REJECT ||
        smtpd_list(&ck, cfg->relay_restrictions, "Recipient address", shown) == SMTPD_REJECT ||
        smtpd_list(&ck, cfg->recipient_restrictions, "Recipient address", shown) == SMTPD_REJECT)
        return SMTPD_CHECK_REJECT;
    ck.what = "Recipient address";
    ck.subject = shown;
    if (cfg->reject_unlisted_recipient && smtpd_unlisted(&ck) == SMTPD_REJECT)
        return SMTPD_CHECK_REJECT;
    return SMTPD_CHECK_OK;
}

/* smtpd_check_vrfy - VRFY: only whether the address is one we know */
int smtpd_check_vrfy(SMTPD_SESSION *s, const SMTP_ADDR *rcpt, const char *shown, int *code,
                     const char **dsn, VSTR *text)
{
    SMTPD_CHECK ck = {.s = s, .rcpt = rcpt, .code = code, .dsn = dsn, .text = text};

    ck.what = "Recipient address";
    ck.subject = shown;
    if (smtpd_is_postmaster(s, rcpt))
        return SMTPD_CHECK_OK;
    return smtpd_unlisted(&ck) == SMTPD_REJECT ? SMTPD_CHECK_REJECT : SMTPD_CHECK_OK;
}

/* smtpd_check_header_rewrite - local_header_rewrite_clients: may cleanup add headers */
int smtpd_check_header_rewrite(SMTPD_SESSION *s)
{
    const ARGV *list = s->cfg->header_rewrite_clients;

    for (size_t i = 0; list && i < list->argc; i++) {
        const char *name = list->argv[i];

        if (strcmp(name, "permit_mynetworks") == 0 && s->peer.in_mynetworks)
            return 1;
        /* The client is this host: it reached us from one of our addresses. */
        if (strcmp(name, "permit_inet_interfaces") == 0 &&
            (strcmp(s->peer.addr, s->peer.local_addr) == 0 || strcmp(s->peer.addr, "::1") == 0 ||
             strncmp(s->peer.addr, "127.", 4) == 0))
            return 1;
        if (strcmp(name, "static:all") == 0 || strcmp(name, "permit") == 0)
            return 1;
    }
    return 0;
}

/* smtpd_check_init - open the access tables the restriction lists name */
void smtpd_check_init(SMTPD_CONFIG *cfg)
{
    const ARGV *lists[] = {cfg->client_restrictions, cfg->helo_restrictions,
                           cfg->sender_restrictions, cfg->relay_restrictions,
                           cfg->recipient_restrictions};
    VSTR *why = vstr_alloc(100);
    ARGV *login_maps = var_list("smtpd_sender_login_maps");

    /* Opened even without AUTH: reject_unauthenticated_sender_login_mismatch
       is for the port-25 service, where nobody authenticates. */
    cfg->sender_login_maps = NULL;
    if (login_maps->argc > 0) {
        cfg->sender_login_maps = mycalloc(login_maps->argc + 1, sizeof(DICT *));
        for (size_t i = 0; i < login_maps->argc; i++)
            if ((cfg->sender_login_maps[i] = dict_open(
                     login_maps->argv[i], DICT_FLAG_FOLD_FIX | DICT_FLAG_SURROGATE, why)) == NULL)
                msg_fatal("smtpd_sender_login_maps: %s", vstr_str(why));
    }
    argv_free(login_maps);
    cfg->access_specs = argv_alloc(4);
    for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++) {
        for (size_t i = 0; lists[l] && i < lists[l]->argc; i++) {
            if (!smtpd_restriction_takes_arg(lists[l]->argv[i]))
                continue;
            if (i + 1 >= lists[l]->argc)
                msg_fatal("restriction \"%s\" needs a table argument", lists[l]->argv[i]);
            const char *spec = lists[l]->argv[++i];

            if (smtpd_access_dict(cfg, spec) != NULL)
                continue;
            DICT *d = dict_open(spec, DICT_FLAG_FOLD_FIX | DICT_FLAG_SURROGATE, why);

            if (d == NULL)
                msg_fatal("%s", vstr_str(why));
            argv_add(cfg->access_specs, spec, (char *)0);
            cfg->access_maps =
                myrealloc(cfg->access_maps, size_mul(cfg->access_specs->argc, sizeof(DICT *)));
            cfg->access_maps[cfg->access_specs->argc - 1] = d;
        }
    }
    vstr_free(why);
}
