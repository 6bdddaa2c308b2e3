/*
 * cleanup_submit - submit one message to the cleanup service through the
 * blocking client library (lib/mail/cleanup_clnt), for integration tests.
 *
 * usage: cleanup_submit -p SOCKET [-f FLAGS] [-o ORIGIN] [-a NAME=VALUE]...
 *                       -s SENDER [-r RECIPIENT]... < message
 *
 * The message is read from standard input (LF line ends) and sent in
 * pieces. Prints the final reply as "STATUS DSN QUEUE_ID REASON" (status 0
 * on success) on standard output; exit status 0 when a reply was received
 * (whatever it said), 1 when cleanup could not be asked, 64 for bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/cleanup_clnt.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"

#define SUBMIT_BUF 8192

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: cleanup_submit -p socket [-f flags] [-o origin] [-a name=value]... "
                    "-s sender [-r recipient]... < message\n");
    exit(64);
}

static void print_reply(const CLEANUP_REPLY *r)
{
    printf("%u %s %s %s\n", r->status, r->dsn[0] ? r->dsn : "-", r->queue_id[0] ? r->queue_id : "-",
           r->reason);
}

int main(int argc, char **argv)
{
    const char *path = NULL, *sender = NULL, *origin = CLEANUP_ORIGIN_PICKUP;
    ARGV *rcpts = argv_alloc(4), *attrs = argv_alloc(4);
    int flags = 0, ch, ok;
    CLEANUP_REPLY reply;
    CLEANUP_CLNT *c;
    char buf[SUBMIT_BUF];
    ssize_t n;

    msg_init("cleanup_submit");
    while ((ch = getopt(argc, argv, "a:f:o:p:r:s:")) != -1) {
        switch (ch) {
        case 'a':
            if (strchr(optarg, '=') == NULL)
                usage();
            argv_add(attrs, optarg, (char *)NULL);
            break;
        case 'f': flags = (int)strtol(optarg, NULL, 0); break;
        case 'o': origin = optarg; break;
        case 'p': path = optarg; break;
        case 'r': argv_add(rcpts, optarg, (char *)NULL); break;
        case 's': sender = optarg; break;
        default: usage();
        }
    }
    if (path == NULL || sender == NULL)
        usage();
    if ((c = cleanup_clnt_open(path, flags, origin, 0, &reply)) == NULL) {
        print_reply(&reply);
        return reply.status == 451 ? 1 : 0;
    }
    ok = 1;
    for (size_t i = 0; ok && i < attrs->argc; i++) {
        char *eq = strchr(attrs->argv[i], '=');

        *eq = 0;
        ok = cleanup_clnt_attr(c, attrs->argv[i], eq + 1) == 0;
    }
    ok = ok && cleanup_clnt_sender(c, sender, NULL) == 0;
    for (size_t i = 0; ok && i < rcpts->argc; i++)
        ok = cleanup_clnt_rcpt(c, rcpts->argv[i], NULL, 0) == 0;
    while (ok && (n = read(STDIN_FILENO, buf, sizeof(buf))) > 0)
        ok = cleanup_clnt_data(c, buf, (size_t)n) == 0;
    if (cleanup_clnt_end(c, &reply) < 0) {
        print_reply(&reply);
        cleanup_clnt_free(c);
        return 1;
    }
    print_reply(&reply);
    cleanup_clnt_free(c);
    argv_free(rcpts);
    argv_free(attrs);
    return 0;
}
