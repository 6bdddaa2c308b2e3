/*
 * deliver_log - the delivery agents' log line, in Postfix's shape:
 *
 *   ID: to=<rcpt>, orig_to=<orcpt>, relay=R, delay=D, delays=a/b/c/d, dsn=X.Y.Z,
 *       status=sent (reason)
 *
 * (one line). pflogsumm, fail2ban and many scripts read exactly these
 * fields in this order, so every delivery agent formats them here.
 *
 * delay is the time since the message arrived; delays splits it into a:
 * before the queue manager took the message in, b: in the queue manager,
 * c: connection set-up (for local delivery: until delivery started), d:
 * transmission. Values follow delay_logging_resolution_limit as Postfix
 * prints them: 10 seconds and more as whole seconds, less with two
 * significant digits and at most `resolution` decimals, values below the
 * resolution as "0", trailing zeros removed.
 */
#ifndef POSTERN_DELIVER_LOG_H
#define POSTERN_DELIVER_LOG_H

#include <stdint.h>

#include "util/vstr.h"

#define DELIVER_LOG_RESOLUTION_MAX 6 /* digits after the point at most */

typedef struct DELIVER_LOG {
    const char *queue_id;
    const char *to;      /* the recipient delivered to */
    const char *orig_to; /* the original recipient; shown when it differs, NULL/"" = none */
    const char *relay;   /* "local", "host[1.2.3.4]:25", "none" */
    const char *dsn;     /* "2.0.0" */
    const char *status;  /* "sent", "deferred", "bounced" */
    const char *reason;  /* text in the parentheses */
    /* Microseconds since the epoch; 0 = unknown (counts as the previous one). */
    uint64_t arrival_usec; /* message arrival */
    uint64_t active_usec;  /* queue manager took it in */
    uint64_t request_usec; /* delivery request sent */
    uint64_t conn_usec;    /* connection set up / delivery started */
    uint64_t done_usec;    /* delivery finished */
} DELIVER_LOG;

/* deliver_log_seconds - append one duration (microseconds) as Postfix prints it */
void deliver_log_seconds(VSTR *out, uint64_t usec, int resolution);

/* deliver_log_format - the whole line (without a trailing newline) into out;
   control characters in any field are shown as '?', so that a reason taken
   from a remote server or a command cannot forge log lines */
void deliver_log_format(VSTR *out, const DELIVER_LOG *info, int resolution);

/* deliver_log_now_usec - the current time in microseconds since the epoch */
uint64_t deliver_log_now_usec(void);

#endif
