/*
 * postcat - show the contents of Postern queue files (Postfix's postcat(1)).
 *
 * SYNOPSIS
 *   postcat [-behq] [-c config_dir] files...
 *
 * DESCRIPTION
 *   Prints the envelope and the content of each queue file named on the
 *   command line; with -q the arguments are queue ids, looked up in every
 *   queue under queue_directory. Without -b, -e or -h everything is shown
 *   under Postfix's section banners ("*** ENVELOPE RECORDS ... ***",
 *   "*** MESSAGE CONTENTS ... ***", "*** MESSAGE FILE END ... ***");
 *   with any of them only those parts are shown, without banners, so that
 *   "postcat -bh" gives the message exactly as stored (LF line ends).
 *
 *   -b   the body: from the first line after the header section
 *   -e   the envelope
 *   -h   the primary header section (without the empty line that ends it)
 *   -c   configuration directory (for -q)
 *   -q   the arguments are queue ids
 *
 *   The file is read through lib/mail/qfile and checked record by record,
 *   so a damaged file is reported, never shown half-understood.
 *
 * DIAGNOSTICS
 *   Problems go to stderr. Exit status 0 when every file was shown, 1 when
 *   one could not be, 64 for bad usage.
 *
 * SEE ALSO
 *   man/postcat.1, docs/queue-format.md
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mail/hdr_parse.h"
#include "mail/mail_conf.h"
#include "mail/mail_queue.h"
#include "mail/qfile.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define POSTCAT_EX_USAGE 64
#define POSTCAT_FIELD_MAX (16 * 1024 * 1024) /* header field shown whole up to this */
#define POSTCAT_COUNT_MAX (1024 * 1024)      /* header fields recognised at most */

/* What to show. */
#define POSTCAT_ENV (1 << 0)
#define POSTCAT_HEAD (1 << 1)
#define POSTCAT_BODY (1 << 2)

/* The queues -q searches, in the order mail moves through them. */
static const char *const postcat_queues[] = {
    MAIL_QUEUE_INCOMING,
    MAIL_QUEUE_IMMEDIATE,
    MAIL_QUEUE_BULK,
    MAIL_QUEUE_DEFERRED,
    MAIL_QUEUE_HOLD,
    MAIL_QUEUE_CORRUPT,
    NULL,
};

/* postcat_usage - how to call us */
static _Noreturn void postcat_usage(void)
{
    fprintf(stderr, "usage: postcat [-behq] [-c config_dir] files...\n");
    exit(POSTCAT_EX_USAGE);
}

/* postcat_time - Postfix's asctime()-style time */
static const char *postcat_time(time_t when, char *buf, size_t len)
{
    struct tm tm;

    if (localtime_r(&when, &tm) == NULL || strftime(buf, len, "%a %b %e %H:%M:%S %Y", &tm) == 0)
        snprintf(buf, len, "%lld", (long long)when);
    return buf;
}

/* postcat_status - a recipient status byte in words */
static const char *postcat_status(int status)
{
    switch (status) {
    case QFILE_RCPT_PENDING: return "pending";
    case QFILE_RCPT_DEFERRED: return "deferred";
    case QFILE_RCPT_DONE: return "delivered";
    case QFILE_RCPT_BOUNCED: return "bounced";
    default: return "unknown";
    }
}

/* postcat_envelope - the envelope, one "name: value" line per item */
static void postcat_envelope(const QFILE *q)
{
    static const char *const ret_names[] = {"", "FULL", "HDRS"};
    char tbuf[64], nbuf[64];

    printf("queue_id: %s\n", q->id);
    printf("message_arrival_time: %s\n", postcat_time(q->arrival.tv_sec, tbuf, sizeof(tbuf)));
    printf("message_class: %s\n", q->msg_class == QFILE_CLASS_BULK ? "bulk" : "immediate");
    printf("message_priority: %d\n", q->priority);
    printf("message_size: %llu\n", (unsigned long long)q->content_size);
    printf("sender: %s\n", q->sender);
    if (q->dsn_ret != QFILE_RET_NONE && q->dsn_ret <= QFILE_RET_HDRS)
        printf("dsn_ret: %s\n", ret_names[q->dsn_ret]);
    if (*q->dsn_envid)
        printf("dsn_envid: %s\n", q->dsn_envid);
    for (size_t i = 0; i < q->attr_count; i++)
        printf("named_attribute: %s=%s\n", q->attr[i].name, q->attr[i].value);
    for (size_t i = 0; i < q->rcpt_count; i++) {
        const QFILE_RCPT *r = &q->rcpt[i];

        if (*r->orig_rcpt)
            printf("original_recipient: %s\n", r->orig_rcpt);
        if (*r->orcpt)
            printf("dsn_orig_rcpt: %s\n", r->orcpt);
        if (r->notify)
            printf("dsn_notify_flags: %d\n", r->notify);
        printf("recipient: %s\n", r->address);
        printf("recipient_status: %s\n", postcat_status(r->status));
        if (r->defer_count > 0)
            printf("recipient_defer: %u attempt%s, last %s, next %s, %s %s\n", r->defer_count,
                   r->defer_count == 1 ? "" : "s", postcat_time(r->defer_time, tbuf, sizeof(tbuf)),
                   postcat_time(r->next_attempt, nbuf, sizeof(nbuf)),
                   r->dsn_status ? r->dsn_status : "", r->reason ? r->reason : "");
    }
    if (q->delay_warned)
        printf("delay_warning_time: %s\n", postcat_time(q->delay_warned_time, tbuf, sizeof(tbuf)));
}

/* Header/body split for -h and -b: the same parser cleanup uses. */
typedef struct POSTCAT_SPLIT {
    int what; /* POSTCAT_HEAD, POSTCAT_BODY */
    HDR_PARSE *parser;
} POSTCAT_SPLIT;

static int postcat_field(void *ctx, const char *text, size_t len, size_t name_len, int flags)
{
    POSTCAT_SPLIT *s = ctx;

    (void)name_len;
    if (s->what & POSTCAT_HEAD) {
        fwrite(text, 1, len, stdout);
        if ((flags & HDR_FIELD_NO_EOL) == 0)
            putchar('\n');
    }
    return 0;
}

static int postcat_end(void *ctx, int how)
{
    (void)ctx, (void)how;
    return 0;
}

static int postcat_body(void *ctx, const char *data, size_t len, int eol)
{
    POSTCAT_SPLIT *s = ctx;

    if (s->what & POSTCAT_BODY) {
        fwrite(data, 1, len, stdout);
        if (eol)
            putchar('\n');
    }
    return 0;
}

static const HDR_PARSE_CB postcat_cb = {postcat_field, postcat_end, postcat_body};

/* postcat_piece - content walk callback: feed the splitter */
static int postcat_piece(void *ctx, const char *data, size_t len, int flags)
{
    POSTCAT_SPLIT *s = ctx;

    if (hdr_parse_feed(s->parser, data, len) != 0 ||
        ((flags & QFILE_EOL) && hdr_parse_feed(s->parser, "\n", 1) != 0))
        return 1;
    return 0;
}

/* postcat_content - the content, whole or split */
static int postcat_content(QFILE *q, int what)
{
    POSTCAT_SPLIT s;
    int err;

    if ((what & (POSTCAT_HEAD | POSTCAT_BODY)) == (POSTCAT_HEAD | POSTCAT_BODY)) {
        fflush(stdout);
        return qfile_content_to_fd(q, STDOUT_FILENO, 0);
    }
    s.what = what;
    s.parser = hdr_parse_create(POSTCAT_FIELD_MAX, POSTCAT_COUNT_MAX, &postcat_cb, &s);
    err = qfile_content_walk(q, postcat_piece, &s);
    if (err == 0 && hdr_parse_end(s.parser) != 0)
        err = 1;
    if (err > 0) {
        /* The stored header was not what cleanup writes (NUL in a field). */
        msg_warn("%s: cannot split header and body", q->id);
        err = QFILE_ERR_CORRUPT;
    }
    hdr_parse_free(s.parser);
    return err;
}

/* postcat_show - one queue file */
static int postcat_show(const char *label, const char *path, const char *queue, const char *id,
                        int what, int banners)
{
    QFILE *q = NULL;
    VSTR *why = vstr_alloc(100);
    int err;

    err = queue ? qfile_open(queue, id, QFILE_OPEN_VERIFY, &q, why)
                : qfile_open_path(path, NULL, QFILE_OPEN_VERIFY, &q, why);
    if (err != 0) {
        msg_warn("%s: %s", label, vstr_str(why));
        vstr_free(why);
        return -1;
    }
    if (banners)
        printf("*** ENVELOPE RECORDS %s ***\n", label);
    if (what & POSTCAT_ENV)
        postcat_envelope(q);
    if (banners)
        printf("*** MESSAGE CONTENTS %s ***\n", label);
    if ((what & (POSTCAT_HEAD | POSTCAT_BODY)) && (err = postcat_content(q, what)) != 0)
        msg_warn("%s: %s", label, qfile_why(q));
    fflush(stdout);
    if (banners)
        printf("\n*** MESSAGE FILE END %s ***\n", label);
    fflush(stdout);
    qfile_close(q);
    vstr_free(why);
    return err == 0 ? 0 : -1;
}

/* postcat_by_id - find the id in the queues and show it */
static int postcat_by_id(const char *id, int what, int banners)
{
    VSTR *label = vstr_alloc(64);
    int r = -1, found = 0;

    if (!queue_id_valid(id)) {
        msg_warn("%s: not a valid queue id", id);
        vstr_free(label);
        return -1;
    }
    for (int i = 0; postcat_queues[i]; i++) {
        if (mail_queue_exists(postcat_queues[i], id) != 1)
            continue;
        found = 1;
        vstr_sprintf(label, "%s/%s", postcat_queues[i], id);
        r = postcat_show(vstr_str(label), NULL, postcat_queues[i], id, what, banners);
        break;
    }
    if (!found)
        msg_warn("%s: no such queue file", id);
    vstr_free(label);
    return r;
}

int main(int argc, char **argv)
{
    const char *config_dir = NULL;
    int what = 0, by_id = 0, failed = 0, ch;
    VSTR *why;

    msg_init("postcat");
    while ((ch = getopt(argc, argv, "bc:ehq")) != -1) {
        switch (ch) {
        case 'b': what |= POSTCAT_BODY; break;
        case 'c': config_dir = optarg; break;
        case 'e': what |= POSTCAT_ENV; break;
        case 'h': what |= POSTCAT_HEAD; break;
        case 'q': by_id = 1; break;
        default: postcat_usage();
        }
    }
    if (optind >= argc)
        postcat_usage();
    int banners = what == 0;

    if (what == 0)
        what = POSTCAT_ENV | POSTCAT_HEAD | POSTCAT_BODY;
    if (by_id) {
        mail_conf_read(mail_conf_dir(config_dir));
        why = vstr_alloc(100);
        if (mail_queue_init(var_str("queue_directory"), (int)var_int("hash_queue_depth"),
                            var_str("hash_queue_names"), why) < 0)
            msg_fatal("%s", vstr_str(why));
        vstr_free(why);
    }
    for (int i = optind; i < argc; i++) {
        int r = by_id ? postcat_by_id(argv[i], what, banners)
                      : postcat_show(argv[i], argv[i], NULL, NULL, what, banners);

        failed |= r < 0;
    }
    return failed ? 1 : 0;
}
