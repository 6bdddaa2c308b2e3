/*
 * postdrop - put a local submission into queue_directory/maildrop.
 *
 * SYNOPSIS
 *   postdrop [-r] [-v] [-c config_dir]
 *
 * DESCRIPTION
 *   sendmail(1) runs postdrop with the message on standard input, in the
 *   maildrop record format (lib/mail/maildrop.h; docs/queue-format.md). No
 *   other input is accepted. postdrop checks every record, writes a new file
 *   maildrop/tmp.ID (O_EXCL, never following a link), puts a SUBMITTER
 *   record with the real uid and its login name in front of the copy,
 *   makes it durable, renames it to maildrop/ID and wakes the pickup service
 *   (public/$pickup_service_name). When the mail system is not running the
 *   file simply waits in maildrop/ for pickup, and postdrop still succeeds.
 *
 *   -r   report the maildrop id on standard output when the file is in place
 *   -v   verbose logging
 *   -c   the configuration directory (see SECURITY)
 *
 * SECURITY
 *   postdrop is installed set-gid $setgid_group (mode 2755): maildrop/ is
 *   mode 1730, owner mail_owner, group setgid_group, so only this group can
 *   create files there and nobody but mail_owner can list it. postdrop is
 *   never set-uid. The group privilege is used only to create the file, to
 *   rename it and to reach public/: the input is read and checked by a child
 *   process that has given the group up for good (real, effective and saved
 *   gid), so a flaw in that code cannot be turned into the group's rights.
 *   Run set-gid, postdrop takes no configuration from the caller unless the
 *   directory is listed in alternate_config_directories of the default
 *   main.cf, or it and its main.cf are owned by root and writable by nobody
 *   else; the environment is emptied. The file is created mode 0444 (the
 *   submitting user owns it, and pickup, which runs as mail_owner, must read
 *   it; the directory keeps everyone else out). pickup trusts nothing in it:
 *   the submitting user is the file's owner.
 *
 * EXIT STATUS (sysexits.h)
 *   0 queued; 64 bad usage; 65 malformed input or no recipients; 69 message
 *   larger than message_size_limit; 74 read error on standard input;
 *   75 temporary failure (disk full, queue not set up yet: try again);
 *   77 not allowed (authorized_submit_users, not installed set-gid, or an
 *   unauthorized -c directory); 78 unreadable or broken main.cf.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "mail/mail_queue_dirs.h"
#include "mail/mail_trigger.h"
#include "mail/maildrop.h"
#include "mail/queue_id.h"
#include "mail/user_acl.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/strutil.h"
#include "util/vstr.h"

#ifndef DEF_CONFIG_DIR
#define DEF_CONFIG_DIR "/etc/postern"
#endif

#define POSTDROP_TMP_PREFIX "tmp." /* temporary names: never a valid queue id */
#define POSTDROP_CREATE_TRIES 100  /* fresh names to try on a collision */
#define POSTDROP_NAME_MAX 64       /* tmp.ID and ID fit */

/* What the signal handler needs to remove an unfinished file. */
static int postdrop_privileged; /* running set-gid */
static int postdrop_dir_fd = -1;
static char postdrop_tmp_name[POSTDROP_NAME_MAX];
static volatile sig_atomic_t postdrop_tmp_live;

/* postdrop_remove_tmp - forget the unfinished file (also from msg_fatal) */
static void postdrop_remove_tmp(void)
{
    if (postdrop_tmp_live && postdrop_dir_fd >= 0) {
        (void)unlinkat(postdrop_dir_fd, postdrop_tmp_name, 0);
        postdrop_tmp_live = 0;
    }
}

/* postdrop_on_exit - every way out: no unfinished file and no group
   privilege left behind (also from msg_fatal) */
static void postdrop_on_exit(void)
{
    gid_t gid = getgid();

    postdrop_remove_tmp();
    if (postdrop_privileged)
        (void)setresgid(gid, gid, gid);
}

/* postdrop_sig - interrupted (^C at the terminal, kill): leave nothing behind */
static void postdrop_sig(int sig)
{
    (void)sig;
    postdrop_remove_tmp();
    _exit(EX_TEMPFAIL);
}

/* postdrop_usage - bad command line */
static _Noreturn void postdrop_usage(void)
{
    fprintf(stderr, "usage: postdrop [-r] [-v] [-c config_dir]\n");
    postdrop_on_exit();
    exit(EX_USAGE);
}

/* postdrop_std_fds - make sure 0, 1 and 2 are open, so that no file we open
   becomes someone's standard error (a classic set-id program bug) */
static void postdrop_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        int nfd = open("/dev/null", O_RDWR);

        if (nfd != fd)
            _exit(EX_OSERR);
    }
}

/* Results of postdrop_dir_trusted besides a descriptor. */
#define POSTDROP_DIR_LISTED (-1) /* named in alternate_config_directories */
#define POSTDROP_DIR_REFUSED (-2)

/* postdrop_dir_trusted - may a set-gid postdrop read its configuration from
   dir? POSTDROP_DIR_LISTED when the default main.cf lists it in
   alternate_config_directories (the administrator vouches for the path);
   a descriptor of dir/main.cf when the directory and the file belong to
   root and nobody else may change them (the file is then read through that
   descriptor, so a link the caller swaps after the check changes nothing);
   POSTDROP_DIR_REFUSED otherwise */
static int postdrop_dir_trusted(const char *dir)
{
    VSTR *path = vstr_alloc(256), *why = vstr_alloc(100);
    int res = POSTDROP_DIR_REFUSED, dfd, mfd;
    struct stat st;

    vstr_sprintf(path, "%s/main.cf", DEF_CONFIG_DIR);
    if (access(vstr_str(path), F_OK) == 0 && mail_conf_load(vstr_str(path), why) == 0) {
        ARGV *alt = var_list("alternate_config_directories");

        for (size_t i = 0; i < alt->argc; i++)
            if (strcmp(alt->argv[i], dir) == 0)
                res = POSTDROP_DIR_LISTED;
        argv_free(alt);
    }
    mail_conf_reset();
    if (res == POSTDROP_DIR_REFUSED && (dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        if (fstat(dfd, &st) == 0 && st.st_uid == 0 && !(st.st_mode & (S_IWGRP | S_IWOTH)) &&
            (mfd = openat(dfd, "main.cf", O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
            if (fstat(mfd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0 &&
                !(st.st_mode & (S_IWGRP | S_IWOTH)))
                res = mfd;
            else
                close(mfd);
        }
        close(dfd);
    }
    vstr_free(path);
    vstr_free(why);
    return res;
}

/* postdrop_config - read main.cf; every failure has its own exit status */
static void postdrop_config(const char *dir, int privileged)
{
    VSTR *path = vstr_alloc(256), *why = vstr_alloc(100);
    int trusted = POSTDROP_DIR_LISTED;

    if (privileged && strcmp(dir, DEF_CONFIG_DIR) != 0 &&
        (trusted = postdrop_dir_trusted(dir)) == POSTDROP_DIR_REFUSED)
        msg_fatal_status(EX_NOPERM,
                         "%s: configuration directory not authorized: list it in "
                         "alternate_config_directories in %s/main.cf",
                         dir, DEF_CONFIG_DIR);
    if (trusted >= 0)
        vstr_sprintf(path, "/proc/self/fd/%d", trusted);
    else
        vstr_sprintf(path, "%s/main.cf", dir);
    mail_conf_reset();
    if (mail_conf_load(vstr_str(path), why) < 0)
        msg_fatal_status(EX_CONFIG, "%s%s%s", trusted >= 0 ? dir : "",
                         trusted >= 0 ? "/main.cf: " : "", vstr_str(why));
    if (trusted >= 0)
        close(trusted);
    mail_conf_update("config_directory", dir);
    if (mail_conf_check(why) < 0)
        msg_fatal_status(EX_CONFIG, "%s/main.cf: %s", dir, vstr_str(why));
    vstr_free(path);
    vstr_free(why);
}

/* postdrop_log_open - the mail log; a log file we may not write means syslog,
   without a warning on every submission */
static void postdrop_log_open(void)
{
    const char *file = var_str("maillog_file");

    if (*file && strcmp(file, "/dev/stderr") != 0 &&
        faccessat(AT_FDCWD, file, W_OK, AT_EACCESS) < 0)
        file = "";
    msg_open(var_str("syslog_name"), var_str("syslog_facility"), file);
}

/* postdrop_create - maildrop/tmp.ID, new, not a link, mode 0444 once ours;
   the id into id */
static int postdrop_create(char *id)
{
    int fd = -1;

    for (int tries = 0; tries < POSTDROP_CREATE_TRIES; tries++) {
        queue_id_new(id, NULL);
        snprintf(postdrop_tmp_name, sizeof(postdrop_tmp_name), "%s%s", POSTDROP_TMP_PREFIX, id);
        fd = openat(postdrop_dir_fd, postdrop_tmp_name,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    if (fd < 0) {
        if (errno == EACCES || errno == EPERM)
            msg_fatal_status(EX_NOPERM,
                             "create file %s/%s/%s: %m (postdrop must be installed set-gid %s, "
                             "mode 2755)",
                             var_str("queue_directory"), MAIL_QUEUE_MAILDROP, postdrop_tmp_name,
                             var_str("setgid_group"));
        msg_fatal_status(EX_TEMPFAIL, "create file %s/%s/%s: %m", var_str("queue_directory"),
                         MAIL_QUEUE_MAILDROP, postdrop_tmp_name);
    }
    postdrop_tmp_live = 1;
    /* The umask is the caller's: set the mode explicitly. pickup (mail_owner)
       reads the file through the "other" bits; the directory (1730) keeps
       everybody else from reaching it. */
    if (fchmod(fd, 0444) < 0)
        msg_fatal_status(EX_TEMPFAIL, "chmod %s/%s: %m", MAIL_QUEUE_MAILDROP, postdrop_tmp_name);
    /* Held until exit: pickup removes only temporary files nobody holds. */
    if (flock(fd, LOCK_EX) < 0)
        msg_fatal_status(EX_TEMPFAIL, "lock %s/%s: %m", MAIL_QUEUE_MAILDROP, postdrop_tmp_name);
    return fd;
}

/* postdrop_copy - standard input into the file, every record checked; an
   exit status. Runs without the group privilege. */
static int postdrop_copy(int fd, uid_t uid, const char *login)
{
    MAILDROP_LIMITS lim = {.size_max = (uint64_t)var_int("message_size_limit")};
    MAILDROP_READER *r = maildrop_reader_open(0, MAILDROP_RD_STREAM, &lim);
    MAILDROP_WRITER *w = maildrop_writer_open(fd, postdrop_tmp_name);
    MAILDROP_REC rec;
    unsigned flags = 0;
    int res, status = EX_OK;

    if (maildrop_writer_submitter(w, (unsigned long)uid, login) != 0) {
        msg_warn("uid=%ld: cannot record the submitter: %s", (long)uid, maildrop_writer_why(w));
        status = EX_SOFTWARE;
        goto done;
    }
    while ((res = maildrop_read(r, &rec)) == MAILDROP_OK) {
        if (rec.type == MAILDROP_REC_END)
            continue; /* the writer makes its own from what it wrote */
        if (rec.type == MAILDROP_REC_FLAGS)
            flags = rec.flags;
        if ((res = maildrop_writer_copy(w, &rec)) != 0)
            break;
    }
    switch (res) {
    case MAILDROP_EOF: break;
    case MAILDROP_ERR_ABORT:
        /* sendmail gave up (and says why itself); nothing to report here. */
        if (msg_verbose)
            msg_info("uid=%ld: input ended before the end record", (long)uid);
        status = EX_DATAERR;
        goto done;
    case MAILDROP_ERR_LIMIT:
        msg_warn("uid=%ld: File too large: %s", (long)uid, maildrop_reader_why(r));
        status = EX_UNAVAILABLE;
        goto done;
    case MAILDROP_ERR_SYS:
        msg_warn("uid=%ld: standard input: %s", (long)uid, maildrop_reader_why(r));
        status = EX_IOERR;
        goto done;
    case MAILDROP_ERR_TRUNC:
    case MAILDROP_ERR_CORRUPT:
    case MAILDROP_ERR_FORMAT:
        msg_warn("uid=%ld: malformed input: %s", (long)uid, maildrop_reader_why(r));
        status = EX_DATAERR;
        goto done;
    default: /* the writer refused or failed */
        msg_warn("uid=%ld: %s", (long)uid, maildrop_writer_why(w));
        status = res == MAILDROP_ERR_SYS ? EX_TEMPFAIL : EX_DATAERR;
        goto done;
    }
    if (maildrop_writer_rcpt_count(w) == 0 && !(flags & MAILDROP_FLAG_EXTRACT_RCPT)) {
        msg_warn("uid=%ld: no recipients specified", (long)uid);
        status = EX_DATAERR;
        goto done;
    }
    if (maildrop_writer_finish(w) != 0) {
        msg_warn("uid=%ld: %s", (long)uid, maildrop_writer_why(w));
        status = EX_TEMPFAIL;
        goto done;
    }
    /* The content must be on disk before the file gets its final name. */
    if (fsync(fd) < 0) {
        msg_warn("uid=%ld: fsync %s: %m", (long)uid, postdrop_tmp_name);
        status = EX_TEMPFAIL;
    }
done:
    maildrop_reader_free(r);
    maildrop_writer_free(w);
    return status;
}

/* postdrop_give_up_group - the real gid everywhere, verified */
static void postdrop_give_up_group(gid_t gid)
{
    gid_t r, e, s;

    if (setresgid(gid, gid, gid) < 0 || getresgid(&r, &e, &s) < 0 || r != gid || e != gid ||
        s != gid)
        msg_fatal_status(EX_SOFTWARE, "cannot give up the group privilege: %m");
}

/* postdrop_copy_unprivileged - postdrop_copy in a child without the group */
static int postdrop_copy_unprivileged(int fd, uid_t uid, const char *login)
{
    pid_t pid;
    int status;

    if ((pid = fork()) < 0)
        msg_fatal_status(EX_TEMPFAIL, "fork: %m");
    if (pid == 0) {
        /* The child must not remove the file on its way out: the parent does. */
        postdrop_tmp_live = 0;
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        close(postdrop_dir_fd);
        postdrop_dir_fd = -1;
        postdrop_give_up_group(getgid());
        _exit(postdrop_copy(fd, uid, login));
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            msg_fatal_status(EX_TEMPFAIL, "waitpid: %m");
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    msg_warn("uid=%ld: input reader killed by signal %d", (long)uid,
             WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return EX_SOFTWARE;
}

/* postdrop_commit - the final name, durably */
static void postdrop_commit(int fd, const char *id)
{
    if (renameat2(postdrop_dir_fd, postdrop_tmp_name, postdrop_dir_fd, id, RENAME_NOREPLACE) < 0) {
        /* File systems without RENAME_NOREPLACE: link(2) never replaces either. */
        if ((errno != EINVAL && errno != ENOSYS) ||
            linkat(postdrop_dir_fd, postdrop_tmp_name, postdrop_dir_fd, id, 0) < 0)
            msg_fatal_status(EX_TEMPFAIL, "rename %s/%s to %s: %m", MAIL_QUEUE_MAILDROP,
                             postdrop_tmp_name, id);
        (void)unlinkat(postdrop_dir_fd, postdrop_tmp_name, 0);
    }
    postdrop_tmp_live = 0;

    /*
     * The submitting user may not read maildrop/ (mode 1730), so the
     * directory cannot be opened for an fsync. The rename changed the file's
     * ctime, and an fsync of the file forces the journal (ext4) or log (XFS,
     * btrfs) that holds the rename to disk as well. Where the directory can
     * be opened (a private instance) it is synced too.
     */
    if (fsync(fd) < 0)
        msg_fatal_status(EX_TEMPFAIL, "fsync %s/%s: %m", MAIL_QUEUE_MAILDROP, id);
    int dfd = open(MAIL_QUEUE_MAILDROP, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

/* postdrop_wakeup - tell pickup; a mail system that is down is not an error */
static void postdrop_wakeup(const char *id)
{
    VSTR *path = vstr_alloc(100);

    vstr_sprintf(path, "%s/%s", MAIL_QUEUE_PUBLIC, var_str("pickup_service_name"));
    if (mail_trigger_one(vstr_str(path), "W", (int)var_time("trigger_timeout") * 1000) < 0) {
        /* Only the log hears about it: the message is safe in maildrop/. */
        msg_also_stderr(msg_verbose > 0);
        msg_info("%s: cannot wake up pickup (%s: %m): the message waits in %s/ until the mail "
                 "system runs",
                 id, vstr_str(path), MAIL_QUEUE_MAILDROP);
        msg_also_stderr(1);
    }
    vstr_free(path);
}

int main(int argc, char **argv)
{
    const char *config_arg = NULL;
    int report = 0, ch, privileged, fd, status;
    char id[QUEUE_ID_SIZE];
    uid_t uid = getuid();
    VSTR *login = vstr_alloc(64), *why = vstr_alloc(100);
    struct sigaction sa;

    postdrop_std_fds();
    umask(077);
    msg_init("postdrop");
    msg_also_stderr(1);
    postdrop_privileged = privileged = getegid() != getgid();
    msg_set_cleanup(postdrop_on_exit);
    if (geteuid() != getuid())
        msg_fatal_status(EX_SOFTWARE, "postdrop must not be installed set-uid");

    while ((ch = getopt(argc, argv, "+c:rv")) != -1) {
        switch (ch) {
        case 'c': config_arg = optarg; break;
        case 'r': report = 1; break;
        case 'v': msg_verbose++; break;
        default: postdrop_usage();
        }
    }
    if (optind != argc)
        postdrop_usage();

    /* Run set-gid, nothing from the caller's environment is used. */
    char *dir = mystrdup(mail_conf_dir(config_arg));

    if (privileged)
        clearenv();
    postdrop_config(dir, privileged);
    postdrop_log_open();

    user_acl_name(uid, login);
    switch (user_acl_check("authorized_submit_users", var_str("authorized_submit_users"), uid,
                           login, why)) {
    case USER_ACL_ALLOW: break;
    case USER_ACL_DENY:
        msg_fatal_status(EX_NOPERM, "User %s(%ld) is not allowed to submit mail", vstr_str(login),
                         (long)uid);
    default: msg_fatal_status(EX_TEMPFAIL, "authorized_submit_users: %s", vstr_str(why));
    }
    if (chdir(var_str("queue_directory")) < 0)
        msg_fatal_status(EX_TEMPFAIL, "chdir %s: %m", var_str("queue_directory"));
    /* O_PATH: the group may enter maildrop/ but not read it. */
    if ((postdrop_dir_fd =
             open(MAIL_QUEUE_MAILDROP, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        msg_fatal_status(EX_TEMPFAIL, "open %s/%s: %m (has the mail system been started once?)",
                         var_str("queue_directory"), MAIL_QUEUE_MAILDROP);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = postdrop_sig;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    fd = postdrop_create(id);
    status = privileged ? postdrop_copy_unprivileged(fd, uid, vstr_str(login))
                        : postdrop_copy(fd, uid, vstr_str(login));
    if (status != EX_OK) {
        postdrop_on_exit();
        exit(status);
    }
    postdrop_commit(fd, id);
    if (msg_verbose)
        msg_info("%s: uid=%ld: message in %s/", id, (long)uid, MAIL_QUEUE_MAILDROP);
    if (report) {
        printf("%s\n", id);
        if (fflush(stdout) != 0 || ferror(stdout))
            msg_warn("write queue id to standard output: %m");
    }
    postdrop_wakeup(id);
    if (privileged)
        postdrop_give_up_group(getgid());
    postdrop_privileged = 0;
    close(fd);
    vstr_free(login);
    vstr_free(why);
    myfree(dir);
    exit(EX_OK);
}
