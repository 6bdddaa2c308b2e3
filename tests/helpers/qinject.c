/*
 * qinject - write committed queue files through lib/mail/qfile.h, as
 * cleanup does, for tests of qmgr and the delivery agents.
 *
 * SYNOPSIS
 *   qinject -c config_dir [-f sender] -r rcpt [-r rcpt]... [-C class]
 *           [-p priority] [-a seconds] [-n count] [-b body] [-t]
 *
 * DESCRIPTION
 *   Reads main.cf from config_dir (queue_directory, hash settings), then
 *   writes count messages (default 1) from sender ("" = the null sender;
 *   default "sender@example.org") to the recipients, commits each into
 *   immediate/ or bulk/ (-C immediate | bulk), and prints each queue id on a
 *   line of its own. -p sets the MT-PRIORITY (-9..9); -a makes the arrival
 *   time that many seconds earlier (to test lifetimes and backoff); -b is
 *   the message text (lines end in LF; default a small message naming the
 *   recipient count and the message number); -t sends qmgr the "A
 *   queue/id" trigger after each commit, as cleanup does.
 *
 * EXIT STATUS
 *   0 all written, 1 an error (on standard error), 64 bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/mail_queue.h"
#include "mail/qfile.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/safe_io.h"
#include "util/strutil.h"
#include "util/vstr.h"

#define QINJECT_EX_USAGE 64
#define QINJECT_TRIGGER_TIMEOUT_MS 5000

/* qinject_usage - bad command line */
static _Noreturn void qinject_usage(void)
{
    fprintf(stderr, "usage: qinject -c config_dir [-f sender] -r rcpt... [-C immediate|bulk] "
                    "[-p priority] [-a seconds] [-n count] [-b body] [-t]\n");
    exit(QINJECT_EX_USAGE);
}

/* qinject_trigger - tell qmgr about a committed file; failures are not fatal
   (qmgr finds the file on its next scan) */
static void qinject_trigger(const char *queue, const char *id)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    VSTR *req = vstr_alloc(64);
    int fd;

    snprintf(sun.sun_path, sizeof(sun.sun_path), "public/qmgr");
    vstr_sprintf(req, "A%s/%s", queue, id);
    vstr_addch(req, 0);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        timed_write_full(fd, vstr_str(req), vstr_len(req), QINJECT_TRIGGER_TIMEOUT_MS) < 0)
        fprintf(stderr, "qinject: trigger qmgr: %s\n", strerror(errno));
    if (fd >= 0)
        close(fd);
    vstr_free(req);
}

/* qinject_one - one message; 0 or -1 */
static int qinject_one(const char *sender, const ARGV *rcpts, int msg_class, int priority, long ago,
                       const char *body, long number, int trigger)
{
    VSTR *why = vstr_alloc(100), *text = vstr_alloc(256);
    char id[QUEUE_ID_SIZE];
    QFILE_WRITER *w;
    int rc = -1;

    if ((w = qfile_writer_create(why)) == NULL) {
        fprintf(stderr, "qinject: create: %s\n", vstr_str(why));
        goto out;
    }
    if (ago > 0) {
        struct timeval tv;

        gettimeofday(&tv, NULL);
        tv.tv_sec -= ago;
        qfile_writer_set_arrival(w, &tv);
    }
    if (qfile_writer_sender(w, sender) != 0 || qfile_writer_set_class(w, msg_class, priority) != 0)
        goto fail;
    for (size_t i = 0; i < rcpts->argc; i++)
        if (qfile_writer_rcpt(w, rcpts->argv[i], NULL, NULL, 0) != 0)
            goto fail;
    if (body)
        vstr_cpy(text, body);
    else
        vstr_sprintf(text, "Subject: qinject %ld\nFrom: <%s>\n\nmessage %ld for %zu recipient(s)\n",
                     number, sender, number, rcpts->argc);
    if (qfile_writer_text(w, vstr_str(text), vstr_len(text)) != 0 ||
        qfile_writer_commit(w, id) != 0)
        goto fail;
    printf("%s\n", id);
    fflush(stdout);
    if (trigger)
        qinject_trigger(qfile_class_queue(msg_class), id);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "qinject: %s\n", qfile_writer_why(w));
out:
    qfile_writer_free(w);
    vstr_free(why);
    vstr_free(text);
    return rc;
}

int main(int argc, char **argv)
{
    const char *config_dir = NULL, *sender = "sender@example.org", *body = NULL;
    int msg_class = QFILE_CLASS_IMMEDIATE, trigger = 0, ch;
    long priority = 0, ago = 0, count = 1;
    ARGV *rcpts = argv_alloc(4);
    VSTR *why = vstr_alloc(100);

    msg_init("qinject");
    while ((ch = getopt(argc, argv, "c:f:r:C:p:a:n:b:t")) != -1) {
        switch (ch) {
        case 'c': config_dir = optarg; break;
        case 'f': sender = optarg; break;
        case 'r': argv_add(rcpts, optarg, (char *)NULL); break;
        case 'C':
            if (strcmp(optarg, "immediate") == 0)
                msg_class = QFILE_CLASS_IMMEDIATE;
            else if (strcmp(optarg, "bulk") == 0)
                msg_class = QFILE_CLASS_BULK;
            else
                qinject_usage();
            break;
        case 'p':
            if (parse_long(optarg, QFILE_PRIORITY_MIN, QFILE_PRIORITY_MAX, &priority) < 0)
                qinject_usage();
            break;
        case 'a':
            if (parse_long(optarg, 0, 100L * 365 * 86400, &ago) < 0)
                qinject_usage();
            break;
        case 'n':
            if (parse_long(optarg, 1, 1000000, &count) < 0)
                qinject_usage();
            break;
        case 'b': body = optarg; break;
        case 't': trigger = 1; break;
        default: qinject_usage();
        }
    }
    if (config_dir == NULL || rcpts->argc == 0 || optind != argc)
        qinject_usage();
    mail_conf_read(config_dir);
    if (chdir(var_str("queue_directory")) < 0)
        msg_fatal("chdir %s: %m", var_str("queue_directory"));
    if (mail_queue_init(".", (int)var_int("hash_queue_depth"), var_str("hash_queue_names"), why) <
        0)
        msg_fatal("%s", vstr_str(why));
    for (long n = 1; n <= count; n++)
        if (qinject_one(sender, rcpts, msg_class, (int)priority, ago, body, n, trigger) < 0)
            return 1;
    argv_free(rcpts);
    vstr_free(why);
    return 0;
}
