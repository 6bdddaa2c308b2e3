/*
 * cleanup_queue - what cleanup asks of the queue around a message: is there
 * room for it (queue_minfree), and telling qmgr that it was committed
 * (docs/protocols.md section 2).
 */
#include <stdint.h>
#include <sys/statvfs.h>

#include "cleanup.h"
#include "mail/mail_trigger.h"
#include "util/msg.h"

/* cleanup_space_ok - free space for one more message, as Postfix's smtpd
   checks it: at least queue_minfree and at least 1.5 times
   message_size_limit */
int cleanup_space_ok(void)
{
    struct statvfs sv;
    uint64_t avail, limit = cleanup_conf.message_size_limit;

    if (statvfs(".", &sv) < 0) {
        msg_warn("statvfs queue directory: %m");
        return 1; /* cannot tell: the write will fail if the disk is full */
    }
    if (sv.f_frsize != 0 && sv.f_bavail > UINT64_MAX / sv.f_frsize)
        avail = UINT64_MAX;
    else
        avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    if (avail < cleanup_conf.queue_minfree) {
        msg_warn("not enough free space in mail queue: %llu bytes < queue_minfree=%llu bytes",
                 (unsigned long long)avail, (unsigned long long)cleanup_conf.queue_minfree);
        return 0;
    }
    if (limit > 0 && limit <= UINT64_MAX / 3 && avail < limit + limit / 2) {
        msg_warn("not enough free space in mail queue: %llu bytes < 1.5*message size limit",
                 (unsigned long long)avail);
        return 0;
    }
    return 1;
}

/* cleanup_wake_qmgr - "A" QUEUE "/" ID to public/qmgr; never fails the message */
void cleanup_wake_qmgr(const char *queue_name, const char *id)
{
    VSTR *req = vstr_alloc(64);
    const char *path = vstr_str(cleanup_conf.qmgr_path);

    vstr_sprintf(req, "A%s/%s", queue_name, id);
    if (mail_trigger_one(path, vstr_str(req), cleanup_conf.trigger_timeout_ms) < 0)
        msg_warn("%s: cannot wake qmgr through %s: %m (it finds the message at its next queue "
                 "scan)",
                 id, path);
    vstr_free(req);
}
