/*
 * test_util - unit tests for lib/util: vstr, argv, strutil, safe_io, msg.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/strutil.h"
#include "util/vstr.h"

static void test_vstr_grow_and_terminate(void **state)
{
    (void)state;
    VSTR *vs = vstr_alloc(1);

    for (int i = 0; i < 1000; i++)
        assert_int_equal(vstr_addch(vs, 'a' + i % 26), 0);
    assert_int_equal(vstr_len(vs), 1000);
    assert_int_equal(strlen(vstr_str(vs)), 1000);
    vstr_truncate(vs, 3);
    assert_string_equal(vstr_str(vs), "abc");
    vstr_sprintf_append(vs, "-%d-%s", 42, "x");
    assert_string_equal(vstr_str(vs), "abc-42-x");
    vstr_sprintf(vs, "%0500d", 7);
    assert_int_equal(vstr_len(vs), 500);
    vstr_free(vs);
}

static void test_vstr_limit(void **state)
{
    (void)state;
    VSTR *vs = vstr_alloc(4);

    vstr_set_limit(vs, 8);
    assert_int_equal(vstr_cat(vs, "12345678"), 0);
    assert_int_equal(vstr_addch(vs, '9'), -1);
    assert_string_equal(vstr_str(vs), "12345678");
    vstr_reset(vs);
    assert_int_equal(vstr_sprintf(vs, "%s", "123456789"), -1);
    assert_int_equal(vstr_len(vs), 0);
    assert_string_equal(vstr_str(vs), "");
    assert_int_equal(vstr_ncat(vs, "x", SIZE_MAX), -1);
    vstr_free(vs);
}

static void test_vstr_binary_and_export(void **state)
{
    (void)state;
    VSTR *vs = vstr_alloc(0);

    vstr_ncat(vs, "a\0b", 3);
    assert_int_equal(vstr_len(vs), 3);
    assert_memory_equal(vstr_str(vs), "a\0b", 3);
    vstr_cpy(vs, "HeLLo");
    vstr_lower(vs);
    char *s = vstr_export(vs);

    assert_string_equal(s, "hello");
    myfree(s);
}

static void test_argv(void **state)
{
    (void)state;
    ARGV *av = argv_split("  a, b,,c  ", ", ");

    assert_int_equal(av->argc, 3);
    assert_string_equal(av->argv[0], "a");
    assert_string_equal(av->argv[2], "c");
    assert_null(av->argv[3]);
    argv_add(av, "d", "e", (char *)NULL);
    assert_int_equal(av->argc, 5);
    argv_truncate(av, 1);
    assert_int_equal(av->argc, 1);
    assert_null(av->argv[1]);
    argv_free(av);
    av = argv_split("", " ");
    assert_int_equal(av->argc, 0);
    argv_free(av);
}

static void test_strutil_numbers(void **state)
{
    (void)state;
    long v;
    int b;

    assert_int_equal(parse_long("123", 0, 1000, &v), 0);
    assert_int_equal(v, 123);
    assert_int_equal(parse_long("1001", 0, 1000, &v), -1);
    assert_int_equal(parse_long("", 0, 1000, &v), -1);
    assert_int_equal(parse_long(" 1", 0, 1000, &v), -1);
    assert_int_equal(parse_long("1x", 0, 1000, &v), -1);
    assert_int_equal(parse_long("99999999999999999999999", 0, LONG_MAX, &v), -1);
    assert_int_equal(parse_time("10", 's', &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(parse_time("5m", 's', &v), 0);
    assert_int_equal(v, 300);
    assert_int_equal(parse_time("2", 'd', &v), 0);
    assert_int_equal(v, 172800);
    assert_int_equal(parse_time("1w", 's', &v), 0);
    assert_int_equal(v, 604800);
    assert_int_equal(parse_time("3x", 's', &v), -1);
    assert_int_equal(parse_time("3ss", 's', &v), -1);
    assert_int_equal(parse_time("-3", 's', &v), -1);
    assert_int_equal(parse_time("9223372036854775807w", 's', &v), -1);
    assert_int_equal(parse_bool("Yes", &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(parse_bool("off", &b), 0);
    assert_int_equal(b, 0);
    assert_int_equal(parse_bool("maybe", &b), -1);
    assert_true(alldig("0123"));
    assert_false(alldig(""));
    assert_false(alldig("1a"));
}

static void test_strutil_text(void **state)
{
    (void)state;
    char buf[] = "  \tHello World \r\n";
    char *t = trim(buf);

    assert_string_equal(t, "Hello World");
    assert_string_equal(lowercase(t), "hello world");
    char line[] = "a,b,,c";
    char *src = line, *tok;
    int n = 0;

    while ((tok = mystrtok(&src, ",")) != NULL)
        n++;
    assert_int_equal(n, 3);
    assert_true(str_has_ctl("a\tb"));
    assert_true(str_has_ctl("a\x7f"));
    assert_false(str_has_ctl("plain text"));
}

static char tmpdir[64];

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/postern-test-util.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    (void)state;
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_file_write_atomic(void **state)
{
    (void)state;
    char path[PATH_MAX];
    size_t len;

    snprintf(path, sizeof(path), "%s/file", tmpdir);
    assert_int_equal(file_write_atomic(path, "one\n", 4, 0640), 0);
    assert_int_equal(file_write_atomic(path, "second\n", 7, 0640), 0);
    char *data = file_read_all(path, 0, &len);

    assert_non_null(data);
    assert_int_equal(len, 7);
    assert_memory_equal(data, "second\n", 7);
    myfree(data);
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    /* nothing temporary left behind */
    char tmp[PATH_MAX + 32];

    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(access(tmp, F_OK), -1);
    /* limit */
    errno = 0;
    assert_null(file_read_all(path, 3, &len));
    assert_int_equal(errno, EFBIG);
    /* a missing directory fails cleanly */
    snprintf(path, sizeof(path), "%s/no/such/file", tmpdir);
    assert_int_equal(file_write_atomic(path, "x", 1, 0600), -1);
    assert_null(file_read_all(path, 0, &len));
    assert_int_equal(fsync_dir(tmpdir), 0);
    assert_int_equal(fsync_parent(path), -1);
}

static void test_timed_io(void **state)
{
    (void)state;
    int sv[2];
    char buf[16];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    /* nobody writes: a short timeout, not a hang */
    errno = 0;
    assert_int_equal(timed_read(sv[0], buf, sizeof(buf), 50), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_int_equal(timed_write_full(sv[1], "hello", 5, 1000), 0);
    assert_int_equal(timed_read_full(sv[0], buf, 5, 1000), 5);
    assert_memory_equal(buf, "hello", 5);
    /* EOF in the middle: a short count */
    assert_int_equal(write_full(sv[1], "ab", 2), 0);
    close(sv[1]);
    assert_int_equal(timed_read_full(sv[0], buf, 5, 1000), 2);
    assert_int_equal(read_full(sv[0], buf, 5), 0);
    assert_int_equal(non_blocking(sv[0], 1), 0);
    assert_int_equal(non_blocking(sv[0], 0), 1);
    assert_int_equal(close_on_exec(sv[0], 1), 0);
    assert_int_equal(close_on_exec(sv[0], 1), 1);
    close(sv[0]);
}

static void test_msg_file(void **state)
{
    (void)state;
    char path[PATH_MAX];
    size_t len;

    snprintf(path, sizeof(path), "%s/maillog", tmpdir);
    msg_init("/usr/libexec/postern/testprog");
    assert_string_equal(msg_program(), "testprog");
    msg_open("postern-x", "mail", path);
    assert_string_equal(msg_ident(), "postern-x/testprog");
    msg_info("hello %s", "world");
    msg_warn("injected\nfake line");
    msg_error("bad");
    char *data = file_read_all(path, 0, &len);

    assert_non_null(data);
    char pidtag[64];

    snprintf(pidtag, sizeof(pidtag), "postern-x/testprog[%ld]: hello world\n", (long)getpid());
    assert_non_null(strstr(data, pidtag));
    assert_non_null(strstr(data, "]: warning: injected fake line\n"));
    assert_non_null(strstr(data, "]: error: bad\n"));
    /* peer data never forges a second log line */
    int lines = 0;

    for (char *p = data; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 3);
    myfree(data);
    msg_open(NULL, NULL, "/dev/stderr");
    assert_int_equal(msg_facility_code("local3"), msg_facility_code("LOCAL3"));
    assert_int_equal(msg_facility_code("nonsense"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vstr_grow_and_terminate),
        cmocka_unit_test(test_vstr_limit),
        cmocka_unit_test(test_vstr_binary_and_export),
        cmocka_unit_test(test_argv),
        cmocka_unit_test(test_strutil_numbers),
        cmocka_unit_test(test_strutil_text),
        cmocka_unit_test(test_file_write_atomic),
        cmocka_unit_test(test_timed_io),
        cmocka_unit_test(test_msg_file),
    };

    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
