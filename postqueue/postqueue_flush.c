/*
 * postqueue_flush - postqueue -f, -s site and -i queue_id: ask the queue
 * manager (and for -f the pickup service) for delivery now, through the
 * trigger protocol of docs/protocols.md section 2.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/mail_trigger.h"
#include "mail/queue_id.h"
#include "postqueue.h"
#include "util/msg.h"
#include "util/vstr.h"

#define PQ_SITE_MAX 255  /* RFC 1035 2.3.4: a host name */
#define PQ_LABEL_MAX 63  /* one label */
#define PQ_SITE_SHOW 100 /* characters of a bad argument echoed back */

/* pq_show - a bad argument as it may be echoed: printable, cut */
static const char *pq_show(VSTR *buf, const char *arg)
{
    size_t len = strlen(arg);

    vstr_reset(buf);
    for (size_t i = 0; i < len && i < PQ_SITE_SHOW; i++)
        vstr_addch(buf, isprint((unsigned char)arg[i]) ? arg[i] : '?');
    if (len > PQ_SITE_SHOW)
        vstr_cat(buf, "...");
    return vstr_str(buf);
}

/* pq_literal_ok - "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3) */
static int pq_literal_ok(const char *site)
{
    char buf[PQ_SITE_MAX + 1];
    size_t len = strlen(site);
    unsigned char addr[16];

    if (len < 3 || len > PQ_SITE_MAX || site[len - 1] != ']')
        return 0;
    memcpy(buf, site + 1, len - 2);
    buf[len - 2] = 0;
    if (strncasecmp(buf, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, buf + 5, addr) == 1;
    return inet_pton(AF_INET, buf, addr) == 1;
}

/* pq_site_ok - a host name (letters, digits, '-', '_' in labels of 1..63,
   not all numeric) or an address literal */
int pq_site_ok(const char *site)
{
    size_t len = strlen(site), label = 0;
    int alpha = 0;

    if (*site == '[')
        return pq_literal_ok(site);
    if (len == 0 || len > PQ_SITE_MAX)
        return 0;
    for (size_t i = 0; i <= len; i++) {
        unsigned char ch = (unsigned char)site[i];

        if (ch == '.' || ch == 0) {
            /* Empty labels and labels that start or end with '-' are invalid;
               a single trailing dot (the root) is accepted. */
            if (label == 0 ? !(ch == 0 && i > 0) : site[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!isalnum(ch) && ch != '-' && ch != '_')
            return 0;
        if (label == 0 && ch == '-')
            return 0;
        if (++label > PQ_LABEL_MAX)
            return 0;
        alpha |= !isdigit(ch);
    }
    /* "192.0.2.1" belongs in brackets. */
    return alpha;
}

/* pq_trigger - send requests to public/SERVICE; 0 or -1 with errno */
static int pq_trigger(const char *service, const char *const *requests)
{
    int timeout = pq_timeout_ms("trigger_timeout");
    int fd = pq_connect(service, timeout);
    int saved;

    if (fd < 0)
        return -1;
    if (mail_trigger_send(fd, requests, timeout) < 0) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return close(fd);
}

/* pq_qmgr - one request to the queue manager, or the "mail system is down" fatal */
static void pq_qmgr(const char *request)
{
    const char *requests[2] = {request, NULL};

    if (pq_trigger(var_str("queue_service_name"), requests) < 0) {
        if (errno == EACCES || errno == EPERM)
            PQ_FATAL(EX_SOFTWARE, "Connect to the %s %s service: %m", var_str("mail_name"),
                     var_str("queue_service_name"));
        PQ_FATAL(EX_UNAVAILABLE, "Cannot flush mail queue - mail system is down");
    }
}

/* pq_flush_queue - postqueue -f: deferred mail due now, maildrop picked up */
void pq_flush_queue(void)
{
    static const char *const wakeup[] = {"W", NULL};

    pq_check_user("authorized_flush_users", "flush");
    pq_qmgr("F");
    /* Local submissions waiting in maildrop/ go too (sendmail -q). A master.cf
       without pickup is a choice, not an outage. */
    if (pq_trigger(var_str("pickup_service_name"), wakeup) < 0 && msg_verbose)
        msg_info("cannot wake up the %s service: %m", var_str("pickup_service_name"));
    pq_drop_privileges();
}

/* pq_flush_site - postqueue -s site */
void pq_flush_site(const char *site)
{
    VSTR *buf = vstr_alloc(PQ_SITE_MAX + 2);

    pq_check_user("authorized_flush_users", "flush");
    if (!pq_site_ok(site))
        PQ_FATAL(EX_USAGE, "Cannot flush mail queue - invalid destination: \"%s\"",
                 pq_show(buf, site));
    vstr_sprintf(buf, "S%s", site);
    pq_qmgr(vstr_str(buf));
    pq_drop_privileges();
    vstr_free(buf);
}

/* pq_flush_id - postqueue -i queue_id */
void pq_flush_id(const char *id)
{
    VSTR *buf = vstr_alloc(QUEUE_ID_SIZE + 2);

    pq_check_user("authorized_flush_users", "flush");
    /* Only a well-formed id ever reaches the queue manager. */
    if (!queue_id_valid(id))
        PQ_FATAL(EX_USAGE, "Cannot flush mail queue - invalid queue id: \"%s\"", pq_show(buf, id));
    vstr_sprintf(buf, "I%s", id);
    pq_qmgr(vstr_str(buf));
    pq_drop_privileges();
    vstr_free(buf);
}
