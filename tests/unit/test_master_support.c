/*
 * test_master_support - unit tests for what master, postern and every
 * service share: the queue directory table and its check/fix
 * (mail_queue_dirs), the master pid file lock (master_pid) and the
 * privilege drop (priv, root-only parts run in a forked child).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mail/mail_queue_dirs.h"
#include "mail/master_pid.h"
#include "mail/priv.h"
#include "util/msg.h"
#include "util/vstr.h"

typedef struct REPORTS {
    int fixed, problems;
    char last[512];
} REPORTS;

static char tmp_root[64];

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmp_root, sizeof(tmp_root), "/tmp/test_master_support.XXXXXX");
    return mkdtemp(tmp_root) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    char cmd[PATH_MAX + 16];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
    return system(cmd) == 0 ? 0 : -1;
}

static void collect(void *ctx, int fixed, const char *text)
{
    REPORTS *r = ctx;

    if (fixed)
        r->fixed++;
    else
        r->problems++;
    snprintf(r->last, sizeof(r->last), "%s", text);
}

/* The ids of a private instance: everything is the invoking user's. */
static MAIL_QUEUE_IDS own_ids(void)
{
    MAIL_QUEUE_IDS ids = {0};

    ids.root_uid = ids.owner_uid = geteuid();
    ids.root_gid = ids.owner_gid = ids.setgid_gid = getegid();
    ids.private_instance = 1;
    return ids;
}

static mode_t mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(lstat(path, &st), 0);
    return st.st_mode & 07777;
}

static void test_queue_dirs_table(void **state)
{
    int seen_maildrop = 0, seen_private = 0;

    (void)state;
    assert_string_equal(mail_queue_dirs[0].name, ".");
    for (const MAIL_QUEUE_DIR *d = mail_queue_dirs; d->name; d++) {
        if (strcmp(d->name, MAIL_QUEUE_MAILDROP) == 0) {
            seen_maildrop = 1;
            assert_int_equal(d->mode, 01730);
            assert_int_equal(d->group, MAIL_QDIR_GROUP_SETGID);
        }
        if (strcmp(d->name, MAIL_QUEUE_PRIVATE) == 0) {
            seen_private = 1;
            assert_int_equal(d->mode, 0700);
            assert_int_equal(d->owner, MAIL_QDIR_OWNER_MAIL);
        }
        /* Nothing in the queue may be writable by others. */
        assert_int_equal(d->mode & 0002, 0);
    }
    assert_true(seen_maildrop && seen_private);
}

static void test_queue_dirs_create_then_clean(void **state)
{
    char queue[PATH_MAX], path[PATH_MAX + 32];
    MAIL_QUEUE_IDS ids = own_ids();
    REPORTS r = {0};

    (void)state;
    snprintf(queue, sizeof(queue), "%s/a/b/queue", tmp_root);
    /* Audit only: everything is missing and nothing is created. */
    assert_true(mail_queue_dirs_check(queue, &ids, 0, collect, &r) > 0);
    assert_int_equal(access(queue, F_OK), -1);
    memset(&r, 0, sizeof(r));
    assert_int_equal(mail_queue_dirs_check(queue, &ids, MAIL_QDIR_FIX, collect, &r), 0);
    assert_true(r.fixed >= 10);
    assert_int_equal(r.problems, 0);
    snprintf(path, sizeof(path), "%s/maildrop", queue);
    assert_int_equal(mode_of(path), 01730);
    snprintf(path, sizeof(path), "%s/public", queue);
    assert_int_equal(mode_of(path), 0710);
    assert_int_equal(mode_of(queue), 0755);
    /* A second run finds nothing to do. */
    memset(&r, 0, sizeof(r));
    assert_int_equal(mail_queue_dirs_check(queue, &ids, MAIL_QDIR_FIX, collect, &r), 0);
    assert_int_equal(r.fixed + r.problems, 0);
}

static void test_queue_dirs_fix_mode(void **state)
{
    char queue[PATH_MAX], path[PATH_MAX + 32];
    MAIL_QUEUE_IDS ids = own_ids();
    REPORTS r = {0};

    (void)state;
    snprintf(queue, sizeof(queue), "%s/fixmode", tmp_root);
    assert_int_equal(mail_queue_dirs_check(queue, &ids, MAIL_QDIR_FIX, NULL, NULL), 0);
    snprintf(path, sizeof(path), "%s/deferred", queue);
    assert_int_equal(chmod(path, 0777), 0);
    /* Audit reports it and leaves it alone. */
    assert_int_equal(mail_queue_dirs_check(queue, &ids, 0, collect, &r), 1);
    assert_non_null(strstr(r.last, "wrong mode"));
    assert_int_equal(mode_of(path), 0777);
    memset(&r, 0, sizeof(r));
    assert_int_equal(mail_queue_dirs_check(queue, &ids, MAIL_QDIR_FIX, collect, &r), 0);
    assert_int_equal(r.fixed, 1);
    assert_non_null(strstr(r.last, "fixed mode of"));
    assert_non_null(strstr(r.last, "0777 -> 0700"));
    assert_int_equal(mode_of(path), 0700);
}

static void test_queue_dirs_refuse_symlink_and_file(void **state)
{
    char queue[PATH_MAX], path[PATH_MAX + 32], target[PATH_MAX + 32];
    MAIL_QUEUE_IDS ids = own_ids();
    REPORTS r = {0};

    (void)state;
    snprintf(queue, sizeof(queue), "%s/links", tmp_root);
    assert_int_equal(mail_queue_dirs_check(queue, &ids, MAIL_QDIR_FIX, NULL, NULL), 0);
    /* A symbolic link where hold/ belongs is never followed or "fixed". */
    snprintf(path, sizeof(path), "%s/hold", queue);
    snprintf(target, sizeof(target), "%s/elsewhere", tmp_root);
    assert_int_equal(mkdir(target, 0777), 0);
    assert_int_equal(chmod(target, 0777), 0);
    assert_int_equal(rmdir(path), 0);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(mail_queue_dirs_check(queue, &ids, MAIL_QDIR_FIX, collect, &r), 1);
    assert_non_null(strstr(r.last, "symbolic link"));
    assert_int_equal(mode_of(target), 0777);
    /* A plain file where corrupt/ belongs. */
    snprintf(path, sizeof(path), "%s/corrupt", queue);
    assert_int_equal(rmdir(path), 0);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);

    assert_true(fd >= 0);
    close(fd);
    memset(&r, 0, sizeof(r));
    assert_int_equal(mail_queue_dirs_check(queue, &ids, MAIL_QDIR_FIX, collect, &r), 2);
}

static void test_queue_dirs_bad_queue_dir(void **state)
{
    MAIL_QUEUE_IDS ids = own_ids();
    REPORTS r = {0};

    (void)state;
    assert_int_equal(mail_queue_dirs_check("relative/queue", &ids, MAIL_QDIR_FIX, collect, &r), 1);
    assert_non_null(strstr(r.last, "not an absolute path"));
    assert_int_equal(mail_queue_dirs_check("", &ids, MAIL_QDIR_FIX, collect, &r), 1);
    assert_int_equal(mail_queue_dirs_check(NULL, &ids, MAIL_QDIR_FIX, collect, &r), 1);
}

static void test_queue_ids_unknown_names(void **state)
{
    MAIL_QUEUE_IDS ids;
    VSTR *why = vstr_alloc(64);

    (void)state;
    if (geteuid() != 0) {
        /* Private instance: names do not matter. */
        assert_int_equal(mail_queue_ids("no-such-user-x", "no-such-group-x", &ids, why), 0);
        assert_int_equal(ids.owner_uid, geteuid());
    } else {
        assert_int_equal(mail_queue_ids("no-such-user-x", "nogroup", &ids, why), -1);
        assert_non_null(strstr(vstr_str(why), "does not exist"));
        assert_int_equal(mail_queue_ids("root", "nogroup", &ids, why), -1);
        assert_non_null(strstr(vstr_str(why), "uid 0"));
        assert_int_equal(mail_queue_ids("nobody", "", &ids, why), -1);
    }
    vstr_free(why);
}

static void test_pid_lock(void **state)
{
    char path[PATH_MAX + 32];
    VSTR *why = vstr_alloc(64);
    VSTR *p = vstr_alloc(64);
    pid_t holder;
    int fd;

    (void)state;
    master_pid_path(p, tmp_root, "pid");
    assert_non_null(strstr(vstr_str(p), "/pid/master.pid"));
    master_pid_path(p, tmp_root, "/abs/dir");
    assert_string_equal(vstr_str(p), "/abs/dir/master.pid");

    snprintf(path, sizeof(path), "%s/master.pid", tmp_root);
    assert_int_equal(master_pid_running(path), 0); /* no file */
    fd = master_pid_lock(path, &holder, why);
    assert_true(fd >= 0);

    /* fcntl locks are per process: ask from another one. */
    pid_t child = fork();

    assert_true(child >= 0);
    if (child == 0) {
        pid_t h;
        VSTR *w = vstr_alloc(64);
        int ok = master_pid_running(path) == getppid() && master_pid_lock(path, &h, w) < 0 &&
                 h == getppid() && strstr(vstr_str(w), "already running") != NULL;

        _exit(ok ? 0 : 1);
    }
    int status;

    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    char buf[32] = {0};

    assert_true(pread(fd, buf, sizeof(buf) - 1, 0) > 0);
    assert_int_equal(atol(buf), (long)getpid());
    close(fd);
    /* A stale file (lock gone) is not a running master. */
    assert_int_equal(master_pid_running(path), 0);
    /* A symbolic link is never followed. */
    unlink(path);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    assert_int_equal(master_pid_lock(path, &holder, why), -1);
    unlink(path);
    vstr_free(why);
    vstr_free(p);
}

/* run_child - run fn in a child; its exit status (or 128 + signal) */
static int run_child(void (*fn)(void))
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        msg_init("test_priv");
        fn();
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void child_drop_nobody(void)
{
    struct passwd *pw = getpwnam("nobody");
    cap_t caps, none;

    if (pw == NULL)
        _exit(77);
    priv_drop("nobody", tmp_root);
    if (getuid() != pw->pw_uid || geteuid() != pw->pw_uid || getgid() != pw->pw_gid)
        _exit(2);
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
        _exit(3);
    caps = cap_get_proc();
    none = cap_init();
    if (cap_compare(caps, none) != 0)
        _exit(4);
    for (cap_value_t c = 0; CAP_IS_SUPPORTED(c); c++)
        if (cap_get_bound(c) != 0)
            _exit(5);
    if (setuid(0) == 0)
        _exit(6);
    /* Inside the chroot, the old root is out of sight. */
    if (access("/etc/passwd", F_OK) == 0)
        _exit(7);
    _exit(0);
}

static void child_drop_root_user(void)
{
    priv_drop("root", NULL); /* must be fatal */
    _exit(0);
}

static void child_drop_unknown(void)
{
    priv_drop("no-such-user-for-postern-tests", NULL); /* must be fatal */
    _exit(0);
}

static void child_drop_unprivileged(void)
{
    priv_drop("whoever", NULL); /* not root: only no_new_privs */
    _exit(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 ? 0 : 2);
}

static void test_priv_drop(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        assert_int_equal(run_child(child_drop_unprivileged), 0);
        skip();
    }
    int rc = run_child(child_drop_nobody);

    if (rc == 77)
        skip();
    assert_int_equal(rc, 0);
    assert_int_equal(run_child(child_drop_root_user), 1);
    assert_int_equal(run_child(child_drop_unknown), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_dirs_table),
        cmocka_unit_test(test_queue_dirs_create_then_clean),
        cmocka_unit_test(test_queue_dirs_fix_mode),
        cmocka_unit_test(test_queue_dirs_refuse_symlink_and_file),
        cmocka_unit_test(test_queue_dirs_bad_queue_dir),
        cmocka_unit_test(test_queue_ids_unknown_names),
        cmocka_unit_test(test_pid_lock),
        cmocka_unit_test(test_priv_drop),
    };

    msg_init("test_master_support");
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
