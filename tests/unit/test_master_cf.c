/*
 * test_master_cf - unit tests for master.cf parsing and checking
 * (lib/mail/master_cf.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/master_cf.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/vstr.h"

static const char good_cf[] =
    "# Postern master process configuration\n"
    "#\n"
    "# service type  private unpriv  chroot  wakeup  maxproc command + args\n"
    "smtp      inet  n       -       n       -       -       smtpd\n"
    "submission inet n       -       n       -       -       smtpd\n"
    "  -o syslog_name=postern/submission\n"
    "  # a comment inside the entry\n"
    "\n"
    "  -o { smtpd_client_restrictions = permit_sasl_authenticated, reject }\n"
    "  -o {smtpd_tls_security_level=encrypt}\n"
    "127.0.0.1:2525 inet n - n - 10 smtpd -v -o smtpd_banner=$myhostname\n"
    "[::1]:2526 inet n - n - - smtpd\n"
    "localhost:submission inet n - n - - smtpd\n"
    "10465     inet  n       -       n       -       -       smtpd -ototal=1 -vo x=y\n"
    "pickup    unix  n       -       n       60      1       pickup\n"
    "qmgr      unix  n       -       n       300?    1       qmgr\n"
    "cleanup   unix  n       -       n       -       0       cleanup\n"
    "local     unix  -       n       n       -       -       local\n"
    "relay     unix  y       y       y       -       -       smtp -o smtp_helo_timeout=5\n"
    "postlog   unix-dgram n  -       n       -       1       postlogd\n"
    "oldqmgr   fifo  n       -       n       300     1       qmgr\n"
    "tlsproxy  pass  n       -       n       -       0       tlsproxy\n"
    "pipe_it   unix  -       n       n       -       -       pipe\n"
    "  flags=R user=nobody argv=/usr/bin/procmail -o not_an_override { with space }\n"
    "last      unix  -       -       -       -       -       /usr/local/bin/x {  }";

static MASTER_CF *parse(const char *text, VSTR *why)
{
    vstr_reset(why);
    return master_cf_parse(text, "test.cf", 77, why);
}

static void test_good_file(void **state)
{
    (void)state;
    VSTR *why = vstr_alloc(64);
    MASTER_CF *cf = parse(good_cf, why);
    MASTER_ENT *e;

    if (cf == NULL)
        fail_msg("parse failed: %s", vstr_str(why));
    assert_int_equal(cf->count, 16);

    e = master_cf_find(cf, "smtp", "inet");
    assert_non_null(e);
    assert_int_equal(e->private_, 0);
    assert_int_equal(e->unpriv, 1);
    assert_int_equal(e->chroot, 0);
    assert_int_equal(e->wakeup, 0);
    assert_int_equal(e->maxproc, 77); /* "-": the default given by the caller */
    assert_string_equal(e->command, "smtpd");
    assert_int_equal(e->args->argc, 0);
    assert_int_equal(e->overrides->argc, 0);
    assert_int_equal(e->lineno, 4);

    e = master_cf_find(cf, "submission", "inet");
    assert_non_null(e);
    assert_int_equal(e->lineno, 5);
    assert_int_equal(e->overrides->argc, 3);
    assert_string_equal(e->overrides->argv[0], "syslog_name=postern/submission");
    assert_string_equal(e->overrides->argv[1],
                        "smtpd_client_restrictions=permit_sasl_authenticated, reject");
    assert_string_equal(e->overrides->argv[2], "smtpd_tls_security_level=encrypt");
    assert_int_equal(e->args->argc, 0);
    assert_int_equal(e->words->argc, 7);
    assert_string_equal(e->words->argv[4],
                        "{smtpd_client_restrictions=permit_sasl_authenticated, reject}");

    e = master_cf_find(cf, "127.0.0.1:2525", "inet");
    assert_non_null(e);
    assert_int_equal(e->maxproc, 10);
    assert_int_equal(e->args->argc, 1);
    assert_string_equal(e->args->argv[0], "-v");
    assert_string_equal(e->overrides->argv[0], "smtpd_banner=$myhostname");

    assert_non_null(master_cf_find(cf, "[::1]:2526", "inet"));
    assert_non_null(master_cf_find(cf, "localhost:submission", "inet"));

    e = master_cf_find(cf, "10465", "inet");
    assert_non_null(e);
    assert_int_equal(e->overrides->argc, 2);
    assert_string_equal(e->overrides->argv[0], "total=1");
    assert_string_equal(e->overrides->argv[1], "x=y");
    assert_int_equal(e->args->argc, 1);
    assert_string_equal(e->args->argv[0], "-v");

    e = master_cf_find(cf, "pickup", "unix");
    assert_int_equal(e->private_, 0);
    assert_int_equal(e->wakeup, 60);
    assert_int_equal(e->wakeup_if_used, 0);
    assert_int_equal(e->maxproc, 1);

    e = master_cf_find(cf, "qmgr", "unix");
    assert_int_equal(e->wakeup, 300);
    assert_int_equal(e->wakeup_if_used, 1);
    assert_string_equal(e->column[5], "300?");

    e = master_cf_find(cf, "cleanup", "unix");
    assert_int_equal(e->maxproc, 0); /* no limit */

    e = master_cf_find(cf, "local", "unix");
    assert_int_equal(e->private_, 1);
    assert_int_equal(e->unpriv, 0);
    assert_string_equal(e->column[2], "-");

    e = master_cf_find(cf, "relay", "unix");
    assert_int_equal(e->private_, 1);
    assert_int_equal(e->unpriv, 1);
    assert_int_equal(e->chroot, 1);

    assert_non_null(master_cf_find(cf, "postlog", "unix-dgram"));
    assert_non_null(master_cf_find(cf, "oldqmgr", "fifo"));
    assert_non_null(master_cf_find(cf, "tlsproxy", "pass"));
    assert_null(master_cf_find(cf, "tlsproxy", "unix"));

    /* "-o" after the first operand belongs to the command. */
    e = master_cf_find(cf, "pipe_it", "unix");
    assert_int_equal(e->overrides->argc, 0);
    assert_int_equal(e->args->argc, 6);
    assert_string_equal(e->args->argv[3], "-o");
    assert_string_equal(e->args->argv[4], "not_an_override");
    assert_string_equal(e->args->argv[5], "with space");
    assert_string_equal(e->words->argv[6], "{with space}");

    e = master_cf_find(cf, "last", "unix");
    assert_string_equal(e->command, "/usr/local/bin/x");
    assert_int_equal(e->args->argc, 1);
    assert_string_equal(e->args->argv[0], "");
    assert_string_equal(e->words->argv[1], "{}");

    master_cf_free(cf);
    vstr_free(why);
}

static void expect_error(const char *text, const char *reason_part)
{
    VSTR *why = vstr_alloc(64);
    MASTER_CF *cf = parse(text, why);

    if (cf != NULL)
        fail_msg("no error for: %s", text);
    if (strstr(vstr_str(why), reason_part) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", vstr_str(why), reason_part);
    vstr_free(why);
}

static void test_errors(void **state)
{
    (void)state;
    /* Line numbers: the first line of the logical line. */
    expect_error("# c\n\nsmtp inet n - n - -\n",
                 "test.cf, line 3: expected 8 fields or more, found 7");
    expect_error("smtp inet\n", "line 1: expected 8 fields or more, found 2");
    expect_error("smtp inet n - n - - smtpd\nx unix - - - - -\n  \n", "line 2: expected 8");
    expect_error("smtp tcp n - n - - smtpd\n", "bad service type \"tcp\"");
    expect_error("smtp inet yes - n - - smtpd\n", "private column: expected y, n or -");
    expect_error("smtp inet n x n - - smtpd\n", "unpriv column");
    expect_error("smtp inet n - Y - - smtpd\n", "chroot column");
    expect_error("smtp inet y - n - - smtpd\n", "inet service cannot be private");
    expect_error("a unix n - n abc 1 pickup\n", "wakeup column");
    expect_error("a unix n - n -1 1 pickup\n", "wakeup column");
    expect_error("a unix n - n ? 1 pickup\n", "wakeup column");
    expect_error("a unix n - n 5?? 1 pickup\n", "wakeup column");
    expect_error("a unix n - n 99999999999 1 pickup\n", "wakeup column");
    expect_error("a unix n - n - x cleanup\n", "maxproc column");
    expect_error("a unix n - n - -1 cleanup\n", "maxproc column");
    expect_error("a unix n - n - 100001 cleanup\n", "maxproc column");
    expect_error("a unix n - n - +5 cleanup\n", "maxproc column");
    expect_error("a unix n - n - - x\nb unix n - n - - x\na unix n - n - - y\n",
                 "line 3: service \"a/unix\" is already defined on line 1");
    expect_error("host: inet n - n - - smtpd\n", "bad inet service name");
    expect_error(":25 inet n - n - - smtpd\n", "bad inet service name");
    expect_error("[::1]25 inet n - n - - smtpd\n", "bad inet service name");
    expect_error("[::1 inet n - n - - smtpd\n", "bad inet service name");
    expect_error("1.2.3.4:65536 inet n - n - - smtpd\n", "bad inet service name");
    expect_error("0 inet n - n - - smtpd\n", "bad inet service name");
    expect_error("h!st:25 inet n - n - - smtpd\n", "bad inet service name");
    expect_error("-smtp inet n - n - - smtpd\n", "bad inet service name");
    expect_error("private/x unix n - n - - x\n", "without '/'");
    expect_error("../x unix n - n - - x\n", "must not start with '.'");
    expect_error("a unix n - n - - smtpd -o\n", "option -o needs an argument");
    expect_error("a unix n - n - - smtpd -o novalue\n", "expected name=value");
    expect_error("a unix n - n - - smtpd -o {a b = c}\n", "bad parameter name");
    expect_error("a unix n - n - - smtpd -o =c\n", "bad parameter name");
    expect_error("a unix n - n - - smtpd -o { x = 1\n", "missing '}'");
    expect_error("a unix n - n - - smtpd {a}b\n", "text after '}'");
    expect_error("a unix n - n - - {} x\n", "empty command name");

    VSTR *big = vstr_alloc(MASTER_CF_LINE_MAX + 100);

    vstr_cat(big, "a unix n - n - - smtpd\n");
    while (vstr_len(big) < 2 * MASTER_CF_LINE_MAX)
        vstr_cat(big, "  -o x=0123456789012345678901234567890123456789\n");
    expect_error(vstr_str(big), "line 1: logical line longer than");
    vstr_reset(big);
    for (int i = 0; i < MASTER_CF_NAME_MAX + 1; i++)
        vstr_addch(big, 'n');
    vstr_cat(big, " unix n - n - - x\n");
    expect_error(vstr_str(big), "too long");
    vstr_free(big);
}

static void test_empty_and_continuations(void **state)
{
    (void)state;
    VSTR *why = vstr_alloc(64);
    MASTER_CF *cf = parse("", why);

    assert_non_null(cf);
    assert_int_equal(cf->count, 0);
    master_cf_free(cf);

    cf = parse("# only comments\n\n   \n#\n", why);
    assert_non_null(cf);
    assert_int_equal(cf->count, 0);
    master_cf_free(cf);

    /* Fields may continue on the next line; leading junk before any entry is ignored. */
    cf = parse("   stray\nsmtp\n inet\n  n - n\n\n - - smtpd\n\t-o a=b", why);
    if (cf == NULL)
        fail_msg("%s", vstr_str(why));
    assert_int_equal(cf->count, 1);
    assert_int_equal(cf->ents[0]->lineno, 2);
    assert_string_equal(cf->ents[0]->overrides->argv[0], "a=b");
    master_cf_free(cf);
    vstr_free(why);
}

static void test_read_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_master_cf.XXXXXX";
    char path[sizeof(dir) + 16];
    VSTR *why = vstr_alloc(64);
    static const char nul_text[] = "a unix n - n - - x\nb unix\0 n - n - - x\n";

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/master.cf", dir);
    assert_int_equal(file_write_atomic(path, good_cf, strlen(good_cf), 0644), 0);
    MASTER_CF *cf = master_cf_read(path, 100, why);

    assert_non_null(cf);
    assert_int_equal(cf->count, 16);
    master_cf_free(cf);

    assert_int_equal(file_write_atomic(path, nul_text, sizeof(nul_text) - 1, 0644), 0);
    assert_null(master_cf_read(path, 100, why));
    assert_non_null(strstr(vstr_str(why), "line 2: NUL character"));

    assert_int_equal(file_write_atomic(path, "a bad line\n", 11, 0644), 0);
    assert_null(master_cf_read(path, 100, why));
    assert_non_null(strstr(vstr_str(why), path));
    assert_non_null(strstr(vstr_str(why), ", line 1: "));

    unlink(path);
    assert_null(master_cf_read(path, 100, why));
    assert_non_null(strstr(vstr_str(why), "open "));
    rmdir(dir);
    vstr_free(why);
}

static void test_inet_split(void **state)
{
    (void)state;
    char *host, *port;

    assert_int_equal(master_cf_inet_split("smtp", &host, &port), 0);
    assert_null(host);
    assert_string_equal(port, "smtp");
    myfree(port);
    assert_int_equal(master_cf_inet_split("127.0.0.1:2525", &host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_string_equal(port, "2525");
    myfree(host);
    myfree(port);
    assert_int_equal(master_cf_inet_split("[::1]:25", &host, &port), 0);
    assert_string_equal(host, "::1");
    assert_string_equal(port, "25");
    myfree(host);
    myfree(port);
    assert_int_equal(master_cf_inet_split("::1:smtp", &host, &port), 0);
    assert_string_equal(host, "::1");
    assert_string_equal(port, "smtp");
    myfree(host);
    myfree(port);
    assert_int_equal(master_cf_inet_split("[]:25", &host, &port), -1);
    assert_int_equal(master_cf_inet_split("x:", &host, &port), -1);
    assert_int_equal(master_cf_inet_split("", &host, &port), -1);
    assert_null(host);
    assert_null(port);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_empty_and_continuations),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_inet_split),
    };

    msg_init("test_master_cf");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
