/*
 * pickup - feed local submissions from queue_directory/maildrop to cleanup.
 *
 * SYNOPSIS
 *   master.cf: pickup unix n - n 60 1 pickup
 *
 * DESCRIPTION
 *   A trigger service (lib/mail/mail_server.h) running as mail_owner. On
 *   every request on public/pickup (postdrop sends "W" after each new
 *   file) and on master's periodic wakeup it scans maildrop/, oldest file
 *   first, and for each file written by postdrop(1):
 *
 *     1. opens it without following links and insists on a regular file;
 *     2. takes the submitting user from the file's owner (st_uid), never
 *        from the file's content;
 *     3. reads the whole file once with the maildrop reader
 *        (lib/mail/maildrop.h), which checks every record and bound, and
 *        checks that the SUBMITTER record names the owner;
 *     4. reads it again and hands it to cleanup (lib/mail/cleanup_clnt.h,
 *        private/ or public/$cleanup_service_name, origin "pickup"; see
 *        docs/protocols.md section 6) with the flags for local
 *        submissions: add missing Message-Id, Date and From; remove Bcc;
 *        recipients from the headers when the submitter asked for it
 *        (sendmail -t); the uid for cleanup's Received: header and the
 *        sender's full name;
 *     5. removes the file only after cleanup has committed the message.
 *
 *   Envelope addresses without a domain get "@$myorigin" when
 *   append_at_myorigin is set, as local submissions do in Postfix.
 *
 *   What is not a file from postdrop is never trusted and never crashes
 *   pickup: a file that breaks the format, a link, a device, a name that is
 *   not a maildrop name, a submitter that is not the owner, or a message
 *   cleanup refuses for good (5xx) is moved to corrupt/ and logged once:
 *
 *     warning: maildrop/NAME: REASON: moved to corrupt/ID
 *
 *   A temporary failure (cleanup down, disk full) leaves the file where it
 *   is and ends the scan; the next wakeup tries again. A temporary file
 *   (tmp.ID) that postdrop no longer holds locked and that is older than
 *   PICKUP_TMP_MIN_AGE is the remains of an interrupted postdrop and is
 *   removed.
 *
 * LOGGING
 *   As Postfix's pickup: "ID: uid=1000 from=<alice>".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/cleanup_clnt.h"
#include "mail/mail_conf.h"
#include "mail/mail_queue.h"
#include "mail/mail_server.h"
#include "mail/maildrop.h"
#include "mail/qfile.h"
#include "mail/queue_id.h"
#include "mail/user_acl.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/vstr.h"

#define PICKUP_SCAN_BATCH 10000  /* names taken from one directory pass */
#define PICKUP_TMP_PREFIX "tmp." /* postdrop's temporary names */
#define PICKUP_TMP_MIN_AGE 60    /* seconds before an unlocked temporary file is stale */
#define PICKUP_NAME_SHOW 100     /* bytes of a hostile file name shown in the log */
#define PICKUP_DATA_BUF 65536    /* content sent to cleanup per request */

/* Outcome of one file. */
enum pickup_result {
    PICKUP_DONE,  /* handed over and removed, or moved to corrupt/ */
    PICKUP_SKIP,  /* not ours to handle now (gone, still being written) */
    PICKUP_RETRY, /* temporary failure: stop this scan, try at the next wakeup */
};

/* Settings, read once after the privilege drop. */
static struct {
    const char *cleanup_private; /* private/$cleanup_service_name */
    const char *cleanup_public;  /* public/...: where master.cf "private = n" puts it */
    const char *myorigin;
    int append_at_myorigin;
    uint64_t size_limit; /* message_size_limit */
    int ipc_timeout_ms;
} pickup_conf;

/* pickup_safe_name - a directory entry name fit for a log line */
static const char *pickup_safe_name(const char *name, VSTR *buf)
{
    vstr_reset(buf);
    for (size_t i = 0; name[i] && i < PICKUP_NAME_SHOW; i++) {
        unsigned char c = (unsigned char)name[i];

        vstr_addch(buf, c < 0x21 || c > 0x7e ? '?' : (char)c);
    }
    if (strlen(name) > PICKUP_NAME_SHOW)
        vstr_cat(buf, "...");
    return vstr_str(buf);
}

/* pickup_corrupt - move maildrop/NAME to corrupt/ and say why, once */
static void pickup_corrupt(const char *name, const char *reason)
{
    VSTR *src = vstr_alloc(100), *dst = vstr_alloc(100), *show = vstr_alloc(100);
    char id[QUEUE_ID_SIZE];
    int tries = 0, ok = 0;

    pickup_safe_name(name, show);
    vstr_sprintf(src, "%s/%s", MAIL_QUEUE_MAILDROP, name);
    /* A maildrop name is a queue id: keep it when corrupt/ has no such file. */
    if (queue_id_valid(name))
        snprintf(id, sizeof(id), "%s", name);
    else
        queue_id_new(id, NULL);
    while (!ok && tries++ < 10) {
        if (mail_queue_hashed(MAIL_QUEUE_CORRUPT) &&
            mail_queue_make_subdirs(MAIL_QUEUE_CORRUPT, id) < 0)
            break;
        mail_queue_path(dst, MAIL_QUEUE_CORRUPT, id);
        if (mail_queue_rename(vstr_str(src), vstr_str(dst)) == 0)
            ok = 1;
        else if (errno == EEXIST)
            queue_id_new(id, NULL);
        else
            break;
    }
    if (!ok) {
        msg_warn("%s/%s: %s: cannot move it to %s/: %m", MAIL_QUEUE_MAILDROP, vstr_str(show),
                 reason, MAIL_QUEUE_CORRUPT);
    } else {
        (void)fsync_parent(vstr_str(dst));
        (void)fsync_dir(MAIL_QUEUE_MAILDROP);
        msg_warn("%s/%s: %s: moved to %s/%s", MAIL_QUEUE_MAILDROP, vstr_str(show), reason,
                 MAIL_QUEUE_CORRUPT, id);
    }
    vstr_free(src);
    vstr_free(dst);
    vstr_free(show);
}

/* pickup_qualify - addr with "@$myorigin" when it has no domain; into buf */
static const char *pickup_qualify(const char *addr, VSTR *buf)
{
    vstr_cpy(buf, addr);
    if (*addr && strchr(addr, '@') == NULL && pickup_conf.append_at_myorigin)
        vstr_sprintf_append(buf, "@%s", pickup_conf.myorigin);
    return vstr_str(buf);
}

/* pickup_flush - send buffered content to cleanup */
static int pickup_flush(CLEANUP_CLNT *c, VSTR *buf)
{
    int r = vstr_len(buf) ? cleanup_clnt_data(c, vstr_str(buf), vstr_len(buf)) : 0;

    vstr_reset(buf);
    return r;
}

/* pickup_send_content - second pass: the content records to cleanup. 0, or
   a maildrop error with the reason in why. A failure to write to cleanup
   stops the sending; cleanup_clnt_end then reports it (sticky). */
static int pickup_send_content(int fd, CLEANUP_CLNT *c, VSTR *why)
{
    MAILDROP_LIMITS lim = {.size_max = pickup_conf.size_limit};
    MAILDROP_READER *r;
    MAILDROP_REC rec;
    VSTR *buf = vstr_alloc(PICKUP_DATA_BUF);
    int res, broken = 0;

    if (lseek(fd, 0, SEEK_SET) < 0) {
        vstr_sprintf(why, "lseek: %m");
        vstr_free(buf);
        return MAILDROP_ERR_SYS;
    }
    r = maildrop_reader_open(fd, MAILDROP_RD_FILE, &lim);
    while (!broken && (res = maildrop_read(r, &rec)) == MAILDROP_OK) {
        if (rec.type != MAILDROP_REC_LINE && rec.type != MAILDROP_REC_PART)
            continue;
        if (vstr_len(buf) + rec.len + 1 > PICKUP_DATA_BUF && pickup_flush(c, buf) < 0)
            broken = 1;
        vstr_ncat(buf, rec.data, rec.len);
        if (rec.type == MAILDROP_REC_LINE)
            vstr_addch(buf, '\n');
    }
    if (broken) {
        res = 0;
    } else if (res == MAILDROP_EOF) {
        (void)pickup_flush(c, buf);
        res = 0;
    } else {
        vstr_cpy(why, maildrop_reader_why(r));
    }
    maildrop_reader_free(r);
    vstr_free(buf);
    return res;
}

/* pickup_remove - the message is cleanup's now: remove the maildrop copy */
static void pickup_remove(int dfd, const char *name, const char *queue_id)
{
    if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT) {
        /* It would be submitted twice; there is nothing better to do than say so. */
        msg_warn("%s: remove %s/%s: %m", queue_id, MAIL_QUEUE_MAILDROP, name);
        return;
    }
    (void)fsync(dfd);
}

/* pickup_cleanup_path - the cleanup socket: private/ unless only public/ has it */
static const char *pickup_cleanup_path(void)
{
    struct stat st;

    if (lstat(pickup_conf.cleanup_private, &st) < 0 && errno == ENOENT &&
        lstat(pickup_conf.cleanup_public, &st) == 0)
        return pickup_conf.cleanup_public;
    return pickup_conf.cleanup_private;
}

/* pickup_deliver - hand one checked file to cleanup */
static enum pickup_result pickup_deliver(int dfd, int fd, const char *name, uid_t uid,
                                         const char *login, MAILDROP_ENVELOPE *env)
{
    CLEANUP_REPLY reply;
    CLEANUP_SENDER_OPTS opts = {0};
    CLEANUP_CLNT *c;
    VSTR *addr = vstr_alloc(100), *why = vstr_alloc(100), *text = vstr_alloc(100);
    const char *sender = env->sender ? env->sender : login;
    int flags = CLEANUP_FLAG_MISSING_HEADERS | CLEANUP_FLAG_REMOVE_BCC, err;
    enum pickup_result result = PICKUP_DONE;

    if (env->flags & MAILDROP_FLAG_EXTRACT_RCPT)
        flags |= CLEANUP_FLAG_EXTRACT_RCPT;
    c = cleanup_clnt_open(pickup_cleanup_path(), flags, CLEANUP_ORIGIN_PICKUP,
                          pickup_conf.ipc_timeout_ms, &reply);
    if (c == NULL) {
        msg_warn("%s/%s: cleanup is not available: %u %s %s: will try again", MAIL_QUEUE_MAILDROP,
                 name, reply.status, reply.dsn, reply.reason);
        result = PICKUP_RETRY;
        goto done;
    }
    msg_info("%s: uid=%ld from=<%s>", cleanup_clnt_queue_id(c), (long)uid, sender);
    vstr_sprintf(text, "%ld", (long)uid);
    cleanup_clnt_attr(c, CLEANUP_ATTR_UID, vstr_str(text));
    cleanup_clnt_attr(c, QFILE_ATTR_REWRITE_CONTEXT, "local");
    if (env->full_name)
        cleanup_clnt_attr(c, CLEANUP_ATTR_FULL_NAME, env->full_name);
    opts.ret = env->ret == QFILE_RET_FULL   ? CLEANUP_RET_FULL
               : env->ret == QFILE_RET_HDRS ? CLEANUP_RET_HDRS
                                            : NULL;
    opts.envid = env->envid && *env->envid ? env->envid : NULL;
    opts.body = env->body == MAILDROP_BODY_7BIT       ? CLEANUP_BODY_7BIT
                : env->body == MAILDROP_BODY_8BITMIME ? CLEANUP_BODY_8BITMIME
                                                      : NULL;
    opts.smtputf8 = env->utf8;
    opts.size = env->content_size;
    cleanup_clnt_sender(c, pickup_qualify(sender, addr), &opts);
    for (size_t i = 0; i < env->rcpt->argc; i++)
        cleanup_clnt_rcpt(c, pickup_qualify(env->rcpt->argv[i], addr), NULL, env->notify[i]);
    if ((err = pickup_send_content(fd, c, why)) != 0) {
        /* The file changed under us, or a read error: abort the message. */
        const char *id = cleanup_clnt_queue_id(c);

        vstr_sprintf(text, "%s: second reading failed: %s", id, vstr_str(why));
        cleanup_clnt_free(c);
        if (err == MAILDROP_ERR_SYS) {
            msg_warn("%s/%s: %s: will try again", MAIL_QUEUE_MAILDROP, name, vstr_str(text));
            result = PICKUP_RETRY;
        } else {
            pickup_corrupt(name, vstr_str(text));
        }
        goto done;
    }
    cleanup_clnt_end(c, &reply);
    if (reply.status == 0) {
        pickup_remove(dfd, name, reply.queue_id);
    } else if (reply.status >= 500) {
        vstr_sprintf(text, "uid=%ld: %s: rejected by cleanup: %u %s %s", (long)uid,
                     cleanup_clnt_queue_id(c), reply.status, reply.dsn, reply.reason);
        pickup_corrupt(name, vstr_str(text));
    } else {
        msg_warn("%s: %s/%s: temporary failure: %u %s %s: will try again", cleanup_clnt_queue_id(c),
                 MAIL_QUEUE_MAILDROP, name, reply.status, reply.dsn, reply.reason);
        result = PICKUP_RETRY;
    }
    cleanup_clnt_free(c);
done:
    vstr_free(addr);
    vstr_free(why);
    vstr_free(text);
    return result;
}

/* pickup_file - one maildrop file: check it, then deliver it or set it aside */
static enum pickup_result pickup_file(int dfd, const char *name)
{
    MAILDROP_ENVELOPE env;
    VSTR *why = vstr_alloc(100), *login = vstr_alloc(64), *text = vstr_alloc(100);
    enum pickup_result result = PICKUP_DONE;
    MAILDROP_LIMITS lim = {.size_max = pickup_conf.size_limit};
    struct stat st;
    int fd, err;

    memset(&env, 0, sizeof(env));
    /* O_NONBLOCK: a fifo planted here must not hang the open. */
    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            result = PICKUP_SKIP;
        } else if (errno == ELOOP) {
            pickup_corrupt(name, "symbolic link");
        } else if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
            msg_warn("open %s/%s: %m", MAIL_QUEUE_MAILDROP, name);
            result = PICKUP_RETRY;
        } else {
            vstr_sprintf(why, "cannot open: %m");
            pickup_corrupt(name, vstr_str(why));
        }
        goto done;
    }
    if (fstat(fd, &st) < 0) {
        msg_warn("fstat %s/%s: %m", MAIL_QUEUE_MAILDROP, name);
        result = PICKUP_RETRY;
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        pickup_corrupt(name, "not a regular file");
        goto done;
    }
    if (st.st_nlink != 1) {
        /* postdrop on a file system without RENAME_NOREPLACE links the final
           name before it removes tmp.ID: that is a rename at work. */
        struct stat tst;

        vstr_sprintf(text, "%s%s", PICKUP_TMP_PREFIX, name);
        if (st.st_nlink == 2 && fstatat(dfd, vstr_str(text), &tst, AT_SYMLINK_NOFOLLOW) == 0 &&
            tst.st_dev == st.st_dev && tst.st_ino == st.st_ino) {
            result = PICKUP_SKIP;
            goto done;
        }
        vstr_sprintf(why, "%lu hard links", (unsigned long)st.st_nlink);
        pickup_corrupt(name, vstr_str(why));
        goto done;
    }
    /* Back to blocking reads: a regular file never blocks anyway. */
    (void)non_blocking(fd, 0);

    /* The submitting user is the owner of the file, whatever it says. */
    user_acl_name(st.st_uid, login);
    /* First pass: the whole file is checked before cleanup hears of it. */
    if ((err = maildrop_envelope_read(fd, MAILDROP_RD_FILE, &lim, &env, why)) != 0) {
        if (err == MAILDROP_ERR_SYS) {
            msg_warn("%s/%s: %s: will try again", MAIL_QUEUE_MAILDROP, name, vstr_str(why));
            result = PICKUP_RETRY;
        } else {
            vstr_sprintf(text, "uid=%ld: %s", (long)st.st_uid, vstr_str(why));
            pickup_corrupt(name, vstr_str(text));
        }
        goto done;
    }
    if (!env.have_submitter || env.submitter_uid != (unsigned long)st.st_uid) {
        vstr_sprintf(text, "uid=%ld: the file says it was submitted by uid %lu", (long)st.st_uid,
                     env.submitter_uid);
        pickup_corrupt(name, vstr_str(text));
        goto done;
    }
    if (env.rcpt->argc == 0 && !(env.flags & MAILDROP_FLAG_EXTRACT_RCPT)) {
        vstr_sprintf(text, "uid=%ld: no recipients", (long)st.st_uid);
        pickup_corrupt(name, vstr_str(text));
        goto done;
    }
    if (env.sender == NULL && strcmp(vstr_str(login), USER_ACL_NAME_UNKNOWN) == 0) {
        vstr_sprintf(text, "uid=%ld: no sender, and the owner has no login name", (long)st.st_uid);
        pickup_corrupt(name, vstr_str(text));
        goto done;
    }
    result = pickup_deliver(dfd, fd, name, st.st_uid, vstr_str(login), &env);
done:
    if (fd >= 0)
        close(fd);
    maildrop_envelope_free(&env);
    vstr_free(why);
    vstr_free(login);
    vstr_free(text);
    return result;
}

/* pickup_temp_file - a postdrop temporary file: leave it while postdrop holds
   it; remove the remains of one that is gone */
static void pickup_temp_file(int dfd, const char *name)
{
    struct stat st;
    int fd;

    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return;
    if (time(NULL) - st.st_mtime < PICKUP_TMP_MIN_AGE)
        return;
    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        pickup_corrupt(name, "temporary name, but not a file postdrop wrote");
        return;
    }
    /* postdrop holds an exclusive lock from creation to exit. */
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        if (unlinkat(dfd, name, 0) == 0) {
            msg_info("%s/%s: removed the unfinished file of an interrupted postdrop (uid=%ld)",
                     MAIL_QUEUE_MAILDROP, name, (long)st.st_uid);
            (void)fsync(dfd);
        }
    }
    close(fd);
}

/* pickup_name_cmp - qsort by name: queue ids sort by arrival */
static int pickup_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* pickup_scan - one pass over maildrop/; returns 1 when a full batch was taken
   and all went well (there may be more), 0 otherwise */
static int pickup_scan_once(void)
{
    ARGV *names = argv_alloc(16);
    DIR *dir;
    struct dirent *de;
    int dfd, more = 0, retry = 0;

    if ((dfd = open(MAIL_QUEUE_MAILDROP, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        msg_warn("open %s: %m", MAIL_QUEUE_MAILDROP);
        argv_free(names);
        return 0;
    }
    if ((dir = fdopendir(dup(dfd))) == NULL) {
        msg_warn("opendir %s: %m", MAIL_QUEUE_MAILDROP);
        close(dfd);
        argv_free(names);
        return 0;
    }
    while ((de = readdir(dir)) != NULL && names->argc < PICKUP_SCAN_BATCH) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        argv_add(names, de->d_name, (char *)0);
    }
    more = names->argc >= PICKUP_SCAN_BATCH;
    closedir(dir);
    qsort(names->argv, names->argc, sizeof(char *), pickup_name_cmp);

    for (size_t i = 0; i < names->argc && !retry && !mail_server_draining(); i++) {
        const char *name = names->argv[i];
        size_t plen = strlen(PICKUP_TMP_PREFIX);

        if (queue_id_valid(name)) {
            retry = pickup_file(dfd, name) == PICKUP_RETRY;
        } else if (strncmp(name, PICKUP_TMP_PREFIX, plen) == 0 && queue_id_valid(name + plen)) {
            pickup_temp_file(dfd, name);
        } else {
            pickup_corrupt(name, "not a maildrop file name");
        }
    }
    close(dfd);
    argv_free(names);
    return more && !retry;
}

/* pickup_trigger - any request (postdrop's "W", master's wakeup) means: scan */
static void pickup_trigger(const MAIL_SERVER_ARGS *args, const char *buf, size_t len)
{
    (void)args, (void)buf, (void)len;
    while (pickup_scan_once() && !mail_server_draining())
        /* a full batch: look again */;
}

/* pickup_post_init - settings, once, after the privilege drop */
static void pickup_post_init(const MAIL_SERVER_ARGS *args)
{
    VSTR *path = vstr_alloc(100), *why = vstr_alloc(100);

    (void)args;
    vstr_sprintf(path, "%s/%s", CLEANUP_SERVICE_CLASS, var_str("cleanup_service_name"));
    pickup_conf.cleanup_private = mystrdup(vstr_str(path));
    vstr_sprintf(path, "%s/%s", MAIL_QUEUE_PUBLIC, var_str("cleanup_service_name"));
    pickup_conf.cleanup_public = vstr_export(path);
    pickup_conf.myorigin = mystrdup(var_str("myorigin"));
    pickup_conf.append_at_myorigin = var_bool("append_at_myorigin");
    pickup_conf.size_limit = (uint64_t)var_int("message_size_limit");
    pickup_conf.ipc_timeout_ms = (int)var_time("ipc_timeout") * 1000;
    /* The skeleton put us in queue_directory (or the chroot that is it). */
    if (mail_queue_init(".", (int)var_int("hash_queue_depth"), var_str("hash_queue_names"), why) <
        0)
        msg_fatal("%s", vstr_str(why));
    vstr_free(why);
}

int main(int argc, char **argv)
{
    static const MAIL_SERVER_SPEC spec = {
        .kind = MAIL_SERVER_TRIGGER,
        .post_init = pickup_post_init,
        .trigger_service = pickup_trigger,
    };

    mail_server_main(argc, argv, &spec);
}
