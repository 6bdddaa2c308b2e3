/*
 * postqueue - the mail queue for every user: list it and ask for delivery,
 * as Postfix's postqueue(1).
 *
 * SYNOPSIS
 *   postqueue [-v] [-c config_dir] -p | -j | -f | -i queue_id | -s site
 *
 * DESCRIPTION
 *   -p lists the queue in Sendmail's mailq format, -j as JSON lines (both
 *   through the showq service, public/showq); -f asks the queue manager to
 *   attempt delivery of all deferred mail and wakes the pickup service, -i
 *   one message, -s the mail for one destination (triggers on public/qmgr,
 *   docs/protocols.md section 2). postqueue never reads the queue itself,
 *   except that root can still list it while the mail system is down: it
 *   then runs showq -S directly, as Postfix does.
 *
 * SECURITY
 *   postqueue is installed set-group-id setgid_group (postdrop) so that any
 *   user can reach public/, mode 0710. That privilege is lowered at once
 *   and raised only around connect(2) to a public/ socket; once connected,
 *   it is dropped for good. Everything else (reading main.cf, logging,
 *   writing the listing) runs with the user's own rights. Running
 *   set-group-id, postqueue refuses a configuration directory other than
 *   the default one unless the default main.cf lists it in
 *   alternate_config_directories (or the user is root), and keeps only the
 *   environment that import_environment names. Who may list or flush is
 *   decided by authorized_mailq_users and authorized_flush_users; showq
 *   checks the former again on its side with the peer's kernel
 *   credentials.
 *
 * EXIT STATUS (sysexits.h, as Postfix)
 *   0 success; 64 EX_USAGE bad usage, invalid destination or queue id;
 *   69 EX_UNAVAILABLE the mail system is down; 77 EX_NOPERM the user may not
 *   do this; 70 EX_SOFTWARE the socket cannot be reached or showq answered
 *   nonsense; 78 EX_CONFIG a configuration that cannot be read.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/attr.h"
#include "mail/mail_conf.h"
#include "mail/mail_queue_dirs.h"
#include "mail/priv.h"
#include "mail/user_acl.h"
#include "postqueue.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define PQ_TIMEOUT_MAX_MS (3600 * 1000) /* no wait is longer, whatever main.cf says */
#define PQ_PUBLIC_PATH_MAX 200          /* "public/" + a service name */

int pq_exit_status = EX_CONFIG;

/* Set-group-id state: the real gid and the privileged one (saved set-gid). */
static int pq_setgid;
static gid_t pq_real_gid, pq_priv_gid;

enum pq_mode { PQ_MODE_NONE, PQ_MODE_LIST, PQ_MODE_JSON, PQ_MODE_FLUSH, PQ_MODE_SITE, PQ_MODE_ID };

/* pq_cleanup - fatal errors from the libraries exit with the current status */
static void pq_cleanup(void)
{
    exit(pq_exit_status);
}

/* pq_usage - explain and exit */
static _Noreturn void pq_usage(void)
{
    PQ_FATAL(EX_USAGE, "usage: postqueue -f | postqueue -i queueid | postqueue -j | "
                       "postqueue -p | postqueue -s site");
}

/* pq_help - --help on standard output */
static _Noreturn void pq_help(void)
{
    printf("usage: postqueue [-v] [-c config_dir] -f | -i queue_id | -j | -p | -s site\n"
           "  -f           attempt delivery of all queued mail\n"
           "  -i queue_id  attempt delivery of one message\n"
           "  -j           list the queue as JSON lines\n"
           "  -p           list the queue (mailq)\n"
           "  -s site      attempt delivery of the mail for one destination\n");
    exit(0);
}

/* pq_privs_init - lower the set-group-id privilege until a connect needs it */
static void pq_privs_init(void)
{
    gid_t r, e, s;

    if (getresgid(&r, &e, &s) < 0)
        PQ_FATAL(EX_OSERR, "getresgid: %m");
    if (e == r)
        return;
    pq_setgid = 1;
    pq_real_gid = r;
    pq_priv_gid = e;
    /* The saved set-gid keeps the privilege for pq_connect. */
    if (setresgid((gid_t)-1, r, e) < 0 || getegid() != r)
        PQ_FATAL(EX_OSERR, "cannot lower the set-group-id privilege: %m");
}

/* pq_drop_privileges - the set-group-id privilege is gone for good */
void pq_drop_privileges(void)
{
    gid_t r, e, s;

    if (!pq_setgid)
        return;
    if (setresgid(pq_real_gid, pq_real_gid, pq_real_gid) < 0 || getresgid(&r, &e, &s) < 0 ||
        r != pq_real_gid || e != pq_real_gid || s != pq_real_gid)
        PQ_FATAL(EX_OSERR, "cannot drop the set-group-id privilege: %m");
    pq_setgid = 0;
}

/* pq_connect - public/SERVICE, with the privilege raised around connect() */
int pq_connect(const char *service, int timeout_ms)
{
    char path[PQ_PUBLIC_PATH_MAX];
    int fd, saved;

    /* A service name is a master.cf name, never a path. */
    if (*service == 0 || strchr(service, '/') != NULL ||
        snprintf(path, sizeof(path), "%s/%s", MAIL_QUEUE_PUBLIC, service) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (pq_setgid && setresgid((gid_t)-1, pq_priv_gid, (gid_t)-1) < 0)
        PQ_FATAL(EX_OSERR, "cannot raise the set-group-id privilege: %m");
    fd = attr_clnt_connect(path, timeout_ms);
    saved = errno;
    if (pq_setgid && setresgid((gid_t)-1, pq_real_gid, (gid_t)-1) < 0)
        PQ_FATAL(EX_OSERR, "cannot lower the set-group-id privilege: %m");
    errno = saved;
    return fd;
}

/* pq_timeout_ms - a time parameter in ms */
int pq_timeout_ms(const char *param)
{
    long t = var_time(param);

    return t > 0 && t < PQ_TIMEOUT_MAX_MS / 1000 ? (int)t * 1000 : PQ_TIMEOUT_MAX_MS;
}

/* pq_check_user - the invoking user may do this, or a fatal refusal */
void pq_check_user(const char *param, const char *what)
{
    uid_t uid = getuid(), owner_uid;
    gid_t owner_gid;
    VSTR *name, *why;
    int r;

    if (uid == 0 ||
        (priv_lookup(var_str("mail_owner"), &owner_uid, &owner_gid) == 0 && uid == owner_uid))
        return;
    name = vstr_alloc(32);
    why = vstr_alloc(100);
    r = user_acl_check(param, var_str(param), uid, name, why);
    if (r == USER_ACL_ERROR)
        PQ_FATAL(EX_CONFIG, "%s", vstr_str(why));
    if (r != USER_ACL_ALLOW)
        PQ_FATAL(EX_NOPERM, "User %s(%ld) is not allowed to %s the mail queue", vstr_str(name),
                 (long)uid, what);
    vstr_free(name);
    vstr_free(why);
}

/* pq_std_fds - descriptors 0-2 open, so that nothing we open becomes one */
static void pq_std_fds(void)
{
    struct stat st;

    for (int fd = 0; fd < 3; fd++)
        if (fstat(fd, &st) < 0 && (errno != EBADF || open("/dev/null", O_RDWR) != fd))
            PQ_FATAL(EX_OSERR, "open /dev/null: %m");
}

/* pq_config_dir_ok - running set-group-id, a non-default configuration
   directory must be listed in the default main.cf (Postfix's rule: a user
   must not make a privileged program follow a configuration of their own) */
static void pq_config_dir_ok(const char *dir)
{
    size_t len = strlen(dir);
    int ok = 0;

    /* "/etc/postern/" names the default directory as well. */
    while (len > 1 && dir[len - 1] == '/')
        len--;
    if (!pq_setgid || getuid() == 0 ||
        (len == strlen(DEF_CONFIG_DIR) && strncmp(dir, DEF_CONFIG_DIR, len) == 0))
        return;
    if (access(DEF_CONFIG_DIR "/main.cf", R_OK) == 0) {
        mail_conf_read(DEF_CONFIG_DIR);
        ARGV *dirs = var_list("alternate_config_directories");

        for (size_t i = 0; i < dirs->argc && !ok; i++)
            ok = strcmp(dirs->argv[i], dir) == 0;
        argv_free(dirs);
        mail_conf_reset();
    }
    if (!ok)
        PQ_FATAL(EX_NOPERM,
                 "unauthorized configuration directory name: %s. Specify the name as a value "
                 "of the \"alternate_config_directories\" parameter in %s/main.cf",
                 dir, DEF_CONFIG_DIR);
}

/* pq_clean_env - keep only what import_environment names (set-group-id) */
static void pq_clean_env(void)
{
    ARGV *keep = var_list("import_environment");
    ARGV *saved = argv_alloc(16);

    for (size_t i = 0; i < keep->argc; i++) {
        const char *item = keep->argv[i];
        const char *eq = strchr(item, '=');
        const char *value;

        if (eq != NULL) {
            argv_add(saved, item, (char *)NULL); /* NAME=value: an override */
        } else if ((value = getenv(item)) != NULL) {
            VSTR *pair = vstr_alloc(64);

            vstr_sprintf(pair, "%s=%s", item, value);
            argv_add(saved, vstr_str(pair), (char *)NULL);
            vstr_free(pair);
        }
    }
    if (clearenv() != 0)
        PQ_FATAL(EX_OSERR, "cannot clear the environment");
    for (size_t i = 0; i < saved->argc; i++) {
        char *eq = strchr(saved->argv[i], '=');

        *eq = 0;
        if (setenv(saved->argv[i], eq + 1, 1) < 0)
            PQ_FATAL(EX_OSERR, "setenv: %m");
    }
    argv_free(saved);
    argv_free(keep);
}

/* pq_read_config - main.cf, logging, the queue directory */
static const char *pq_read_config(const char *cmdline_dir)
{
    const char *dir = mail_conf_dir(cmdline_dir);
    const char *log_file;
    VSTR *path = vstr_alloc(100);

    pq_config_dir_ok(dir);
    vstr_sprintf(path, "%s/main.cf", dir);
    if (access(vstr_str(path), R_OK) < 0)
        PQ_FATAL(EX_CONFIG, "open %s: %m", vstr_str(path));
    vstr_free(path);
    mail_conf_read(dir);
    /* A user who cannot write the log file logs through syslog instead. */
    log_file = var_str("maillog_file");
    if (*log_file && strcmp(log_file, "/dev/stderr") != 0 && access(log_file, W_OK) < 0)
        log_file = "";
    msg_open(var_str("syslog_name"), var_str("syslog_facility"), log_file);
    msg_also_stderr(1);
    if (pq_setgid)
        pq_clean_env();
    if (chdir(var_str("queue_directory")) < 0)
        PQ_FATAL(EX_UNAVAILABLE, "chdir %s: %m", var_str("queue_directory"));
    pq_exit_status = EX_UNAVAILABLE;
    return dir;
}

int main(int argc, char **argv)
{
    enum pq_mode mode = PQ_MODE_NONE;
    const char *config_dir = NULL;
    const char *arg = NULL;
    int ch;

    umask(022);
    msg_init("postqueue");
    msg_set_cleanup(pq_cleanup);
    pq_privs_init();
    pq_std_fds();
    /* getopt's own messages name the program the way ours do. */
    if (argc > 0)
        argv[0] = (char *)msg_program();
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0)
            pq_help();

    while ((ch = getopt(argc, argv, "c:fi:jps:v")) != -1) {
        enum pq_mode want = PQ_MODE_NONE;

        switch (ch) {
        case 'c': config_dir = optarg; continue;
        case 'v':
            /* Verbose output could show what a user should not see. */
            if (getuid() == 0)
                msg_verbose++;
            continue;
        case 'f': want = PQ_MODE_FLUSH; break;
        case 'i': want = PQ_MODE_ID, arg = optarg; break;
        case 'j': want = PQ_MODE_JSON; break;
        case 'p': want = PQ_MODE_LIST; break;
        case 's': want = PQ_MODE_SITE, arg = optarg; break;
        default: pq_usage();
        }
        if (mode != PQ_MODE_NONE)
            pq_usage();
        mode = want;
    }
    if (optind < argc || mode == PQ_MODE_NONE)
        pq_usage();

    config_dir = pq_read_config(config_dir);
    signal(SIGPIPE, SIG_IGN);

    switch (mode) {
    case PQ_MODE_LIST: pq_list(MAILQ_FORMAT_TEXT, config_dir); break;
    case PQ_MODE_JSON: pq_list(MAILQ_FORMAT_JSON, config_dir); break;
    case PQ_MODE_FLUSH: pq_flush_queue(); break;
    case PQ_MODE_SITE: pq_flush_site(arg); break;
    case PQ_MODE_ID: pq_flush_id(arg); break;
    case PQ_MODE_NONE: pq_usage();
    }
    exit(0);
}
