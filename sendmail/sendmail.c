/*
 * sendmail - the Sendmail-compatible command line of Postern (also mailq
 * and newaliases, by the name it is called with).
 *
 * SYNOPSIS
 *   sendmail [option ...] [--] [recipient ...]
 *   mailq                  (sendmail -bp)
 *   newaliases             (sendmail -bi)
 *
 * DESCRIPTION
 *   By default sendmail reads a message from standard input and queues it
 *   for delivery through postdrop(1), which writes it into maildrop/ for
 *   the pickup service. sendmail runs as the calling user with no
 *   privilege of its own. The options are Postfix's (see man/sendmail.1):
 *
 *   -t          recipients from To/Cc/Bcc too (Bcc removed from every copy)
 *   -i, -oi     a "." line does not end the input
 *   -f, -r ADDR envelope sender ("" or "<>": the null sender)
 *   -F NAME     full name for a From: header that has to be added
 *   -N DSN      never, or a list of success, delay, failure
 *   -R RET      full or hdrs        -V ENVID  envelope id      -B 7BIT|8BITMIME
 *   -bm         queue a message (the default)
 *   -bs         SMTP conversation on standard input and output
 *   -bp         list the queue (postqueue -p)           -bi, -I  newaliases
 *   -q          flush the queue (postqueue -f); -qRsite, -qIid; -q30m ignored
 *   -C PATH     main.cf, or its directory               -v  verbose
 *   -oAPATH     alias database for -bi; other -oX, -Am, -Ac, -G, -U, -L, -O,
 *               -h, -e, -c, -m, -p, -x are accepted and ignored, as Postfix does
 *   --          the end of the options: everything after it is a recipient
 *
 *   -bd and -bl (daemon mode) are refused: "postern start" starts the mail
 *   system. -bv (address verification), -XV (VERP), -qS and -n are refused.
 *
 * EXIT STATUS (sysexits.h, as Postfix uses them)
 *   0 queued; 64 bad usage (unknown option, no recipients, bad address);
 *   65 malformed input; 69 message larger than message_size_limit, or a
 *   helper program that cannot run; 71 no login name for the uid; 75
 *   temporary failure; 77 not allowed (authorized_submit_users, postdrop
 *   not set-gid); 78 main.cf unreadable or invalid. A postdrop failure
 *   passes postdrop's own status on.
 *
 * Mail the mail system cannot take right now is not an error: when master
 * is not running the message waits in maildrop/ and sendmail exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "mail/hdr_addr.h"
#include "mail/mail_conf.h"
#include "mail/qfile.h"
#include "mail/user_acl.h"
#include "sendmail.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"
#include "util/vstr.h"

/* Modes of operation. */
enum sm_mode {
    SM_MODE_ENQUEUE,  /* -bm: queue a message */
    SM_MODE_MAILQ,    /* -bp, mailq */
    SM_MODE_NEWALIAS, /* -bi, -I, newaliases */
    SM_MODE_SMTP,     /* -bs */
    SM_MODE_FLUSH,    /* -q */
    SM_MODE_IGNORE,   /* -bh, -bH: nothing to do */
};

_Noreturn void sm_die(int status, const char *fmt, ...)
{
    VSTR *text = vstr_alloc(200);
    va_list ap;

    va_start(ap, fmt);
    vstr_vsprintf_append(text, fmt, ap);
    va_end(ap);
    msg_fatal_status(status, "%s", vstr_str(text));
}

const char *sm_who(const SM_OPTS *o)
{
    return o->have_sender ? o->sender : o->login;
}

/* sm_usage - a bad command line */
static _Noreturn void sm_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void sm_usage(const char *fmt, ...)
{
    VSTR *text = vstr_alloc(200);
    va_list ap;

    va_start(ap, fmt);
    vstr_vsprintf_append(text, fmt, ap);
    va_end(ap);
    msg_fatal_status(EX_USAGE, "%s; usage: %s [option ...] [--] [recipient ...]", vstr_str(text),
                     msg_program());
}

/* sm_std_fds - make sure 0, 1 and 2 are open before anything else is */
static void sm_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
            _exit(EX_OSERR);
}

/* sm_clean_text - a full name fit for the maildrop format: control
   characters become spaces, at most MAILDROP_FULL_NAME_MAX bytes; NULL when
   nothing is left */
static char *sm_clean_text(const char *text)
{
    size_t len = strlen(text);
    char *copy, *start, *res;

    if (len > MAILDROP_FULL_NAME_MAX)
        len = MAILDROP_FULL_NAME_MAX;
    copy = mystrndup(text, len);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    start = trim(copy);
    res = *start ? mystrdup(start) : NULL;
    myfree(copy);
    return res;
}

/* sm_sender - the -f / -r argument in internal form */
static char *sm_sender(const char *arg)
{
    char *copy = mystrdup(arg), *t = trim(copy), *res;
    ARGV *addrs;

    if (*t == 0 || strcmp(t, "<>") == 0) {
        myfree(copy);
        return mystrdup("");
    }
    addrs = argv_alloc(2);
    if (hdr_addr_list(t, strlen(t), addrs, 0, NULL) == 0)
        sm_usage("-f option specified malformed sender: %s", arg);
    if (addrs->argc > 1)
        msg_warn("-f option specified malformed sender: %s", arg);
    res = mystrdup(addrs->argv[0]);
    argv_free(addrs);
    myfree(copy);
    return res;
}

/* sm_notify - the -N list; -1 when malformed */
static int sm_notify(const char *arg)
{
    ARGV *words = argv_split(arg, ", \t");
    int notify = 0, never = 0;

    for (size_t i = 0; i < words->argc && notify >= 0; i++) {
        if (strcasecmp(words->argv[i], "never") == 0)
            never = 1;
        else if (strcasecmp(words->argv[i], "success") == 0)
            notify |= QFILE_NOTIFY_SUCCESS;
        else if (strcasecmp(words->argv[i], "delay") == 0)
            notify |= QFILE_NOTIFY_DELAY;
        else if (strcasecmp(words->argv[i], "failure") == 0)
            notify |= QFILE_NOTIFY_FAILURE;
        else
            notify = -1;
    }
    if (notify >= 0 && never)
        notify = notify ? -1 : QFILE_NOTIFY_NEVER; /* NEVER stands alone (RFC 3461 4.1) */
    if (words->argc == 0)
        notify = -1;
    argv_free(words);
    return notify;
}

/* sm_config_dir - the -C argument: main.cf or the directory holding it */
static char *sm_config_dir(const char *arg)
{
    char *copy = mystrdup(arg), *res;
    struct stat st;

    if (strcmp(basename(copy), "main.cf") == 0 && !(stat(arg, &st) == 0 && S_ISDIR(st.st_mode))) {
        myfree(copy);
        copy = mystrdup(arg);
        res = mystrdup(dirname(copy));
    } else {
        res = mystrdup(arg);
    }
    myfree(copy);
    return res;
}

/* sm_read_config - main.cf; unreadable or invalid is EX_CONFIG */
static void sm_read_config(const char *dir)
{
    VSTR *path = vstr_alloc(256), *why = vstr_alloc(100);
    const char *file;

    vstr_sprintf(path, "%s/main.cf", dir);
    if (mail_conf_load(vstr_str(path), why) < 0)
        msg_fatal_status(EX_CONFIG, "%s", vstr_str(why));
    mail_conf_update("config_directory", dir);
    if (mail_conf_check(why) < 0)
        msg_fatal_status(EX_CONFIG, "%s: %s", vstr_str(path), vstr_str(why));
    /* A log file this user may not write means syslog, quietly. */
    file = var_str("maillog_file");
    if (*file && strcmp(file, "/dev/stderr") != 0 && access(file, W_OK) < 0)
        file = "";
    msg_open(var_str("syslog_name"), var_str("syslog_facility"), file);
    /* The helpers we run read the same configuration. */
    if (setenv("MAIL_CONFIG", dir, 1) < 0)
        msg_fatal_status(EX_OSERR, "setenv: %m");
    vstr_free(path);
    vstr_free(why);
}

/* sm_exec - replace this process with $command_directory/av[0] */
static _Noreturn void sm_exec(ARGV *av)
{
    VSTR *path = vstr_alloc(100);

    vstr_sprintf(path, "%s/%s", var_str("command_directory"), av->argv[0]);
    execv(vstr_str(path), av->argv);
    msg_fatal_status(EX_UNAVAILABLE, "cannot execute %s: %m", vstr_str(path));
}

/* sm_no_recipients - modes that take no recipient */
static void sm_no_recipients(char **rest, const char *what)
{
    if (*rest)
        sm_usage("%s mode requires no recipient", what);
}

/* sm_check_submit - authorized_submit_users (postdrop enforces it too) */
static void sm_check_submit(SM_OPTS *o)
{
    VSTR *why = vstr_alloc(100), *name = vstr_alloc(64);

    switch (user_acl_check("authorized_submit_users", var_str("authorized_submit_users"), o->uid,
                           name, why)) {
    case USER_ACL_ALLOW: break;
    case USER_ACL_DENY:
        msg_fatal_status(EX_NOPERM, "User %s(%ld) is not allowed to submit mail", vstr_str(name),
                         (long)o->uid);
    default: msg_fatal_status(EX_TEMPFAIL, "authorized_submit_users: %s", vstr_str(why));
    }
    vstr_free(why);
    vstr_free(name);
}

int main(int argc, char **argv)
{
    static SM_OPTS opts;
    SM_OPTS *o = &opts;
    enum sm_mode mode = SM_MODE_ENQUEUE;
    const char *prog, *alias_db = NULL, *site = NULL, *queue_id = NULL, *qtime = NULL;
    const char *sender_arg = NULL, *notify_arg = NULL, *ret_arg = NULL, *envid_arg = NULL;
    const char *name_env;
    char *config_arg = NULL;
    int ch, verbose = 0;
    VSTR *login = vstr_alloc(64);

    sm_std_fds();
    umask(022);
    prog = strrchr(argv[0] ? argv[0] : "sendmail", '/');
    prog = prog ? prog + 1 : argv[0] ? argv[0] : "sendmail";
    msg_init(prog);
    if (getenv("MAIL_VERBOSE"))
        msg_verbose = 1;
    signal(SIGPIPE, SIG_IGN);
    o->uid = getuid();
    o->dot_ends = 1;
    o->rcpt = argv_alloc(4);
    user_acl_name(o->uid, login);
    o->login = vstr_export(login);

    if (strcmp(prog, "mailq") == 0)
        mode = SM_MODE_MAILQ;
    else if (strcmp(prog, "newaliases") == 0)
        mode = SM_MODE_NEWALIAS;

    /* POSIX option order ("+"): options stop at the first recipient. ":"
       tells a missing argument from an unknown option. */
    opterr = 0;
    while (optind < argc) {
        if (strcmp(argv[optind], "-q") == 0) { /* -q takes an optional attached value */
            mode = SM_MODE_FLUSH;
            optind++;
            continue;
        }
        if ((ch = getopt(argc, argv, "+:A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:q:r:tvx")) == -1)
            break;
        switch (ch) {
        case 'B':
            if (strcasecmp(optarg, "8BITMIME") == 0)
                o->body = MAILDROP_BODY_8BITMIME;
            else if (strcasecmp(optarg, "7BIT") == 0)
                o->body = MAILDROP_BODY_7BIT;
            else
                sm_usage("-B option needs 8BITMIME or 7BIT");
            break;
        case 'C':
            myfree(config_arg);
            config_arg = sm_config_dir(optarg);
            break;
        case 'F': o->full_name = sm_clean_text(optarg); break;
        case 'I': mode = SM_MODE_NEWALIAS; break;
        case 'N': notify_arg = optarg; break;
        case 'R': ret_arg = optarg; break;
        case 'V': envid_arg = optarg; break;
        case 'X': sm_usage("unsupported: -X%c", *optarg ? *optarg : ' ');
        case 'b':
            switch (*optarg) {
            case 'd':
            case 'l': sm_usage("-b%c is not supported; use postern start", *optarg);
            case 'h':
            case 'H': mode = SM_MODE_IGNORE; break;
            case 'i': mode = SM_MODE_NEWALIAS; break;
            case 'm': mode = SM_MODE_ENQUEUE; break;
            case 'p': mode = SM_MODE_MAILQ; break;
            case 's': mode = SM_MODE_SMTP; break;
            case 'v': sm_usage("-bv (address verification) is not supported");
            default: sm_usage("unsupported: -b%s", optarg);
            }
            break;
        case 'f':
        case 'r': sender_arg = optarg; break;
        case 'i': o->dot_ends = 0; break;
        case 'n': sm_usage("-n option not supported");
        case 'o':
            switch (*optarg) {
            case 'A':
                if (optarg[1] == 0)
                    sm_usage("-oA requires pathname");
                alias_db = optarg + 1;
                break;
            case 'i': o->dot_ends = 0; break;
            default: /* -o7, -o8, -om and the rest: Sendmail options that do not apply */
                if (msg_verbose)
                    msg_info("-o%s option ignored", optarg);
                break;
            }
            break;
        case 'q':
            if (*optarg >= '0' && *optarg <= '9') {
                qtime = optarg;
            } else if (*optarg == 'R') {
                if (optarg[1] == 0)
                    sm_usage("specify: -qRsitename");
                site = optarg + 1;
            } else if (*optarg == 'I') {
                if (optarg[1] == 0)
                    sm_usage("specify: -qIqueueid");
                queue_id = optarg + 1;
            } else {
                sm_usage("-q%c is not implemented", *optarg);
            }
            break;
        case 't': o->extract = 1; break;
        case 'v': verbose++; break;
        case ':': sm_usage("option requires an argument -- '%c'", optopt);
        case '?': sm_usage("invalid option -- '%c'", optopt);
        default: /* -A, -G, -L, -O, -U, -c, -e, -h, -m, -p, -x: ignored, as by Postfix */
            if (msg_verbose)
                msg_info("-%c option ignored", ch);
            break;
        }
    }
    char **rest = argv + optind;

    /* One -v asks for a report of the submission; more, for verbose logs. */
    if (verbose == 1 && mode == SM_MODE_ENQUEUE)
        o->report = 1;
    else if (verbose > 1)
        msg_verbose = verbose;

    o->config_dir = config_arg ? config_arg : mystrdup(mail_conf_dir(NULL));
    sm_read_config(o->config_dir);
    msg_also_stderr(1);

    if (o->extract && mode != SM_MODE_ENQUEUE)
        sm_usage("-t can be used only in delivery mode");
    if ((site || queue_id) && mode != SM_MODE_ENQUEUE)
        sm_usage("-q%c can be used only in delivery mode", site ? 'R' : 'I');

    /* Everything but queueing is another program's job. */
    ARGV *av = argv_alloc(8);

    switch (mode) {
    case SM_MODE_IGNORE: exit(EX_OK);
    case SM_MODE_MAILQ:
        sm_no_recipients(rest, "display queue");
        argv_add(av, "postqueue", "-c", o->config_dir, "-p", (char *)0);
        sm_exec(av);
    case SM_MODE_FLUSH:
        sm_no_recipients(rest, "flush queue");
        argv_add(av, "postqueue", "-c", o->config_dir, "-f", (char *)0);
        sm_exec(av);
    case SM_MODE_NEWALIAS: {
        sm_no_recipients(rest, "alias initialization");
        ARGV *maps = mail_conf_split_list(alias_db ? alias_db : var_str("alias_database"));

        if (maps->argc == 0)
            exit(EX_OK);
        argv_add(av, "postalias", "-c", o->config_dir, (char *)0);
        for (int i = 1; i < msg_verbose; i++)
            argv_add(av, "-v", (char *)0);
        for (size_t i = 0; i < maps->argc; i++)
            argv_add(av, maps->argv[i], (char *)0);
        sm_exec(av);
    }
    case SM_MODE_SMTP:
        sm_no_recipients(rest, "stand-alone");
        sm_check_submit(o);
        o->sender = mystrdup("");
        sm_smtp(o);
    case SM_MODE_ENQUEUE: break;
    }
    if (site) {
        sm_no_recipients(rest, "flush site");
        argv_add(av, "postqueue", "-c", o->config_dir, "-s", site, (char *)0);
        sm_exec(av);
    }
    if (queue_id) {
        sm_no_recipients(rest, "flush queue_id");
        argv_add(av, "postqueue", "-c", o->config_dir, "-i", queue_id, (char *)0);
        sm_exec(av);
    }
    if (qtime)
        exit(EX_OK); /* -q30m: a queue run interval; qmgr has its own */

    /* Queue a message. */
    sm_check_submit(o);
    if (sender_arg) {
        o->have_sender = 1;
        o->sender = sm_sender(sender_arg);
    } else {
        if (strcmp(o->login, USER_ACL_NAME_UNKNOWN) == 0)
            msg_fatal_status(EX_OSERR, "no login name found for user ID %lu",
                             (unsigned long)o->uid);
        o->sender = mystrdup(o->login);
    }
    if (o->full_name == NULL && (name_env = getenv("NAME")) != NULL)
        o->full_name = sm_clean_text(name_env);
    if (notify_arg && (o->notify = sm_notify(notify_arg)) < 0) {
        msg_warn("bad -N option value -- ignored");
        o->notify = 0;
    }
    if (ret_arg) {
        if (strcasecmp(ret_arg, "full") == 0)
            o->ret = QFILE_RET_FULL;
        else if (strcasecmp(ret_arg, "hdrs") == 0)
            o->ret = QFILE_RET_HDRS;
        else
            msg_warn("bad -R option value -- ignored");
    }
    if (envid_arg) {
        if (strlen(envid_arg) > MAILDROP_ENVID_MAX)
            msg_warn("too long -V option value -- ignored");
        else if (!maildrop_envid_ok(envid_arg, strlen(envid_arg)))
            msg_warn("bad syntax in -V option value -- ignored");
        else
            o->envid = mystrdup(envid_arg);
    }
    /* Like Postfix, each argument is an address list: "a@x, Name <b@y>". */
    for (char **cpp = rest; *cpp; cpp++)
        if (hdr_addr_list(*cpp, strlen(*cpp), o->rcpt, 0, NULL) == 0)
            sm_usage("bad recipient address syntax: \"%s\"", *cpp);
    argv_free(av);
    sm_enqueue(o);
}
