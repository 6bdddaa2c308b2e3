/*
 * cleanup - canonicalise each message and commit it to the queue.
 *
 * One client connection is one message transaction (docs/protocols.md
 * section 1): cleanup creates the queue file in incoming/ at "open", writes
 * the envelope as it arrives, streams the content through the header
 * processing into the file, and at "end" commits it (fsync, rename into
 * immediate/ or bulk/, fsync of the directory) before it answers; then it
 * wakes qmgr. master runs as many cleanup processes as there are open
 * transactions (maxproc 0 in master.cf). man/cleanup.8 describes what is
 * done to a message.
 *
 * This file: main(), the configuration, start-up.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "mail/mail_conf.h"
#include "mail/mail_queue.h"
#include "mail/mail_server.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"

CLEANUP_CONF cleanup_conf;

#define CLEANUP_TIMEOUT_MAX_S 86400 /* no per-request wait beyond a day */

/* cleanup_open_maps - the tables of a list parameter, NULL-terminated */
static DICT **cleanup_open_maps(const char *param)
{
    ARGV *specs = var_list(param);
    DICT **maps = mycalloc(specs->argc + 1, sizeof(*maps));
    VSTR *why = vstr_alloc(100);
    int flags = DICT_FLAG_FOLD_FIX;
    size_t n = 0;

    if (!var_bool("daemon_table_open_error_is_fatal"))
        flags |= DICT_FLAG_SURROGATE;
    for (size_t i = 0; i < specs->argc; i++) {
        DICT *d = dict_open(specs->argv[i], flags, why);

        if (d == NULL)
            msg_fatal("%s: open %s: %s", param, specs->argv[i], vstr_str(why));
        maps[n++] = d;
    }
    maps[n] = NULL;
    vstr_free(why);
    argv_free(specs);
    return maps;
}

/* cleanup_ms - a TIME parameter as milliseconds for the attribute streams */
static int cleanup_ms(const char *param)
{
    long sec = var_time(param);

    if (sec <= 0 || sec > CLEANUP_TIMEOUT_MAX_S)
        sec = CLEANUP_TIMEOUT_MAX_S;
    return (int)(sec * 1000);
}

/* cleanup_pre_init - as root, before any chroot: time zone and lookup tables */
static void cleanup_pre_init(const MAIL_SERVER_ARGS *args)
{
    (void)args;
    /* Date: headers use the local zone; read it before a chroot hides it. */
    tzset();
    cleanup_conf.class_maps = cleanup_open_maps("message_class_maps");
    cleanup_conf.priority_maps = cleanup_open_maps("message_priority_maps");
}

/* cleanup_post_init - the rest of the configuration */
static void cleanup_post_init(const MAIL_SERVER_ARGS *args)
{
    CLEANUP_CONF *c = &cleanup_conf;
    VSTR *why = vstr_alloc(100);
    ARGV *drop;

    (void)args;
    /* mail_server made the queue directory our working directory (or root). */
    if (mail_queue_init(".", (int)var_int("hash_queue_depth"), var_str("hash_queue_names"), why) <
        0)
        msg_fatal("queue configuration: %s", vstr_str(why));
    vstr_free(why);

    c->message_size_limit = (uint64_t)var_int("message_size_limit");
    c->header_size_limit = (size_t)var_int("header_size_limit");
    c->header_count_limit = (size_t)var_int("header_count_limit");
    c->hopcount_limit = var_int("hopcount_limit");
    c->dup_filter_limit = (size_t)var_int("duplicate_filter_limit");
    c->bulk_rcpt_threshold = (size_t)var_int("bulk_recipient_threshold");
    c->extract_rcpt_limit = (size_t)var_int("extract_recipient_limit");
    c->attr_count_limit = (size_t)var_int("queue_file_attribute_count_limit");
    if (c->attr_count_limit > QFILE_ATTR_MAX)
        c->attr_count_limit = QFILE_ATTR_MAX;
    c->queue_minfree = (uint64_t)var_int("queue_minfree");
    c->replace_stray_cr = var_bool("cleanup_replace_stray_cr_lf");
    c->detect_8bit_header = var_bool("detect_8bit_encoding_header");
    c->always_add_headers = var_bool("always_add_missing_headers");
    c->append_at_myorigin = var_bool("append_at_myorigin");
    c->myhostname = mystrdup(var_str("myhostname"));
    c->myorigin = mystrdup(var_str("myorigin"));
    c->mail_name = mystrdup(var_str("mail_name"));
    c->recipient_delimiter = mystrdup(var_str("recipient_delimiter"));
    c->drop_headers = argv_alloc(8);
    drop = var_list("message_drop_headers");
    for (size_t i = 0; i < drop->argc; i++) {
        lowercase(drop->argv[i]);
        argv_add(c->drop_headers, drop->argv[i], (char *)NULL);
    }
    argv_free(drop);
    c->qmgr_path = vstr_alloc(64);
    vstr_sprintf(c->qmgr_path, "%s/%s", MAIL_QUEUE_PUBLIC, var_str("queue_service_name"));
    c->ipc_timeout_ms = cleanup_ms("ipc_timeout");
    c->trigger_timeout_ms = cleanup_ms("trigger_timeout");
}

/* cleanup_single_service - one connection, one message */
static void cleanup_single_service(const MAIL_SERVER_ARGS *args, int fd)
{
    (void)args;
    cleanup_service(fd);
}

int main(int argc, char **argv)
{
    static const MAIL_SERVER_SPEC spec = {
        .kind = MAIL_SERVER_SINGLE,
        .pre_init = cleanup_pre_init,
        .post_init = cleanup_post_init,
        .single_service = cleanup_single_service,
    };

    mail_server_main(argc, argv, &spec);
}
