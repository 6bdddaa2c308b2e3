/*
 * postsuper - queue maintenance for the administrator, as Postfix's
 * postsuper(1).
 *
 * SYNOPSIS
 *   postsuper [-psSv] [-c config_dir] [-d queue_id] [-h queue_id]
 *             [-H queue_id] [-r queue_id] [queue ...]
 *
 * DESCRIPTION
 *   -d ID deletes a message, -h ID puts it on hold (hold/, where the queue
 *   manager never looks), -H ID releases it from hold, -r ID requeues it
 *   (deferred recipients become pending, the file goes back to its class
 *   queue, immediate/ or bulk/); each may be given several times, with ALL
 *   (upper case) for every message of the queues, or with "-" to read queue
 *   ids from standard input, one per line. After -H and -r the queue
 *   manager is woken up. -s checks and repairs the queue structure, -p
 *   purges stale temporary files (postsuper_repair.c); they run before the
 *   other operations, and without any option postsuper does both. Queue
 *   names after the options limit what is looked at ("active" stands for
 *   immediate and bulk). Every operation works while the mail system runs
 *   (postsuper_ops.c).
 *
 *   Only root and mail_owner may run postsuper. Started as root it becomes
 *   mail_owner for good after reading the configuration, so that the queue
 *   is only ever changed with the mail system's own rights and the files it
 *   creates have the right owner.
 *
 *   What was done is logged ("ID: removed", "ID: placed on hold", "ID:
 *   released from hold", "ID: requeued") and summed up on standard error
 *   and in the log ("Deleted: N messages").
 *
 * EXIT STATUS (sysexits.h)
 *   0 success (also when a named message was not found); 64 EX_USAGE bad
 *   usage or an invalid queue id on the command line; 65 EX_DATAERR invalid
 *   queue ids on standard input (the valid ones were processed); 74
 *   EX_IOERR some operation failed; 77 EX_NOPERM not root or mail_owner;
 *   78 EX_CONFIG the configuration cannot be read.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/mail_queue.h"
#include "mail/priv.h"
#include "mail/queue_id.h"
#include "postsuper.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define PS_OPTIONS "c:d:e:f:h:H:pr:sSv"

PS_STATS ps_stats;
int ps_exit_status = EX_CONFIG;

/* The queues -s and -p look at by default: every message queue. */
static const char *const ps_repair_queues[] = {
    MAIL_QUEUE_MAILDROP, MAIL_QUEUE_INCOMING, MAIL_QUEUE_IMMEDIATE, MAIL_QUEUE_BULK,
    MAIL_QUEUE_DEFERRED, MAIL_QUEUE_HOLD,     MAIL_QUEUE_CORRUPT,   NULL,
};

/* ps_cleanup - fatal errors from the libraries exit with the current status */
static void ps_cleanup(void)
{
    exit(ps_exit_status);
}

/* ps_usage - explain and exit */
static _Noreturn void ps_usage(void)
{
    PS_FATAL(EX_USAGE,
             "usage: postsuper [-c config_dir] [-d queue_id (delete)] [-h queue_id (hold)] "
             "[-H queue_id (un-hold)] [-p (purge temporary files)] [-r queue_id (requeue)] "
             "[-s (structure fix)] [-v (verbose)] [queue...]");
}

/* ps_help - --help on standard output */
static _Noreturn void ps_help(void)
{
    printf("usage: postsuper [-psv] [-c config_dir] [-d queue_id] [-h queue_id] "
           "[-H queue_id] [-r queue_id] [queue ...]\n"
           "  -d queue_id  delete the message (ALL: every message, -: ids from standard input)\n"
           "  -h queue_id  put the message on hold\n"
           "  -H queue_id  release the message from hold\n"
           "  -r queue_id  requeue the message\n"
           "  -s           check and repair the queue structure\n"
           "  -p           purge stale temporary files\n");
    exit(0);
}

/* ps_op_of - the operation an option letter asks for */
static int ps_op_of(int ch, enum ps_op *op)
{
    switch (ch) {
    case 'd': *op = PS_OP_DELETE; return 1;
    case 'h': *op = PS_OP_HOLD; return 1;
    case 'H': *op = PS_OP_RELEASE; return 1;
    case 'r': *op = PS_OP_REQUEUE; return 1;
    default: return 0;
    }
}

/* ps_queue_args - the queue names after the options; NULL when none */
static ARGV *ps_queue_args(int argc, char **argv)
{
    ARGV *queues;

    if (optind >= argc)
        return NULL;
    queues = argv_alloc(8);
    for (int i = optind; i < argc; i++) {
        /* Postfix's "active" queue is Postern's two class queues. */
        if (strcmp(argv[i], "active") == 0)
            argv_add(queues, MAIL_QUEUE_IMMEDIATE, MAIL_QUEUE_BULK, (char *)NULL);
        else if (mail_queue_name_ok(argv[i]))
            argv_add(queues, argv[i], (char *)NULL);
        else
            PS_FATAL(EX_USAGE, "invalid directory name: %s", argv[i]);
    }
    return queues;
}

/* ps_read_config - main.cf, logging, the queue directory, privileges */
static void ps_read_config(const char *cmdline_dir)
{
    const char *dir = mail_conf_dir(cmdline_dir);
    uid_t owner_uid;
    gid_t owner_gid;
    VSTR *why = vstr_alloc(100);

    vstr_sprintf(why, "%s/main.cf", dir);
    if (access(vstr_str(why), R_OK) < 0)
        PS_FATAL(EX_CONFIG, "open %s: %m", vstr_str(why));
    mail_conf_read(dir);
    msg_open(var_str("syslog_name"), var_str("syslog_facility"), var_str("maillog_file"));
    msg_also_stderr(1);

    /* The mail system's owner, or root who becomes it; nobody else. */
    if (priv_lookup(var_str("mail_owner"), &owner_uid, &owner_gid) < 0)
        PS_FATAL(EX_CONFIG, "mail_owner user \"%s\" does not exist", var_str("mail_owner"));
    if (getuid() != 0 && getuid() != owner_uid)
        PS_FATAL(EX_NOPERM, "use of this command is reserved for the superuser");
    if (chdir(var_str("queue_directory")) < 0)
        PS_FATAL(EX_CONFIG, "chdir %s: %m", var_str("queue_directory"));
    if (priv_is_root())
        priv_drop(var_str("mail_owner"), NULL);
    else
        priv_no_new_privs();
    if (mail_queue_init(var_str("queue_directory"), (int)var_int("hash_queue_depth"),
                        var_str("hash_queue_names"), why) < 0)
        PS_FATAL(EX_CONFIG, "%s", vstr_str(why));
    vstr_free(why);
    ps_exit_status = EX_IOERR;
}

/* ps_summary - Postfix's report lines for what was asked */
static void ps_summary(const int asked[PS_OP_COUNT])
{
    static const char *const label[PS_OP_COUNT] = {
        [PS_OP_DELETE] = "Deleted",
        [PS_OP_HOLD] = "Placed on hold",
        [PS_OP_RELEASE] = "Released from hold",
        [PS_OP_REQUEUE] = "Requeued",
    };
    static const enum ps_op order[] = {PS_OP_REQUEUE, PS_OP_DELETE, PS_OP_HOLD, PS_OP_RELEASE};

    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        long n = ps_stats.done[order[i]];

        if (asked[order[i]])
            msg_info("%s: %ld message%s", label[order[i]], n, n != 1 ? "s" : "");
    }
    if (ps_stats.moved > 0)
        msg_info("Moved to the right queue subdirectory: %ld file%s", ps_stats.moved,
                 ps_stats.moved != 1 ? "s" : "");
    if (ps_stats.corrupt > 0)
        msg_info("Moved to the corrupt queue: %ld file%s", ps_stats.corrupt,
                 ps_stats.corrupt != 1 ? "s" : "");
}

/* ps_std_fds - descriptors 0-2 open */
static void ps_std_fds(void)
{
    struct stat st;

    for (int fd = 0; fd < 3; fd++)
        if (fstat(fd, &st) < 0 && (errno != EBADF || open("/dev/null", O_RDWR) != fd))
            PS_FATAL(EX_OSERR, "open /dev/null: %m");
}

int main(int argc, char **argv)
{
    const char *config_dir = NULL;
    int structure = 0, purge = 0, any = 0, stdin_used = 0;
    int asked[PS_OP_COUNT] = {0};
    int wakeup = 0;
    ARGV *given;
    enum ps_op op;
    int ch;

    umask(077);
    msg_init("postsuper");
    msg_set_cleanup(ps_cleanup);
    ps_std_fds();
    /* getopt's own messages name the program the way ours do. */
    if (argc > 0)
        argv[0] = (char *)msg_program();
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0)
            ps_help();
    /* A privileged wrapper would hand us a caller's environment and files. */
    if (getuid() != geteuid() || getgid() != getegid())
        PS_FATAL(EX_NOPERM, "this command must not run as a set-uid or set-gid process");

    /* First pass: check everything before anything is done. */
    while ((ch = getopt(argc, argv, PS_OPTIONS)) != -1) {
        if (ps_op_of(ch, &op)) {
            any = 1;
            asked[op] = 1;
            wakeup |= op == PS_OP_RELEASE || op == PS_OP_REQUEUE;
            if (strcmp(optarg, "-") == 0) {
                if (stdin_used++)
                    PS_FATAL(EX_USAGE, "only one option may read queue ids from standard input");
            } else if (strcmp(optarg, "ALL") != 0 && !queue_id_valid(optarg)) {
                PS_FATAL(EX_USAGE, "invalid mail queue id: %.64s", optarg);
            }
            continue;
        }
        switch (ch) {
        case 'c':
            if (*optarg != '/')
                PS_FATAL(EX_USAGE, "-c requires absolute pathname");
            config_dir = optarg;
            break;
        case 'e':
        case 'f': PS_FATAL(EX_USAGE, "-%c (forced expiration) is not supported", ch);
        case 'p': purge = 1, any = 1; break;
        case 'S':
        case 's': structure = 1, any = 1; break;
        case 'v': msg_verbose++; break;
        default: ps_usage();
        }
    }
    if (!any)
        structure = purge = 1;
    given = ps_queue_args(argc, argv);
    ps_read_config(config_dir);
    signal(SIGPIPE, SIG_IGN);

    /* Repairs first, so that later operations find files where they belong. */
    if (structure || purge) {
        ARGV *queues = argv_alloc(8);

        for (const char *const *qp = ps_repair_queues; *qp; qp++)
            if (given == NULL)
                argv_add(queues, *qp, (char *)NULL);
        for (size_t i = 0; given != NULL && i < given->argc; i++)
            argv_add(queues, given->argv[i], (char *)NULL);
        ps_repair(queues, structure, purge);
        argv_free(queues);
    }

    /* Then the operations, in the order given. */
    optind = 0;
    while ((ch = getopt(argc, argv, PS_OPTIONS)) != -1) {
        if (!ps_op_of(ch, &op))
            continue;
        ARGV *queues = ps_queues_for(op, given);

        if (strcmp(optarg, "ALL") == 0)
            ps_all(op, queues);
        else if (strcmp(optarg, "-") == 0)
            ps_stdin(op, queues);
        else
            ps_one(op, queues, optarg, 1);
        argv_free(queues);
    }
    if (wakeup)
        ps_wakeup();
    ps_summary(asked);
    if (given)
        argv_free(given);
    if (ps_stats.bad_ids > 0)
        exit(EX_DATAERR);
    exit(ps_stats.errors > 0 ? EX_IOERR : 0);
}
