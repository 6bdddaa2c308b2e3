/*
 * test_mail_conf - unit tests for main.cf parsing, $name expansion, typed
 * access, overrides and the parameter table (lib/mail/mail_conf.c,
 * lib/mail/mail_params.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mail/mail_conf.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"
#include "util/vstr.h"

static char test_dir[] = "/tmp/test_mail_conf.XXXXXX";
static char test_path[sizeof(test_dir) + 16];

/* write_conf - replace the test main.cf with text */
static void write_conf(const char *text)
{
    assert_int_equal(file_write_atomic(test_path, text, strlen(text), 0644), 0);
}

/* load_text - reset, write text, load it; returns mail_conf_load's result */
static int load_text(const char *text, VSTR *why)
{
    mail_conf_reset();
    write_conf(text);
    vstr_reset(why);
    return mail_conf_load(test_path, why);
}

/* load_ok - load text that must parse */
static void load_ok(const char *text)
{
    VSTR *why = vstr_alloc(64);

    if (load_text(text, why) < 0)
        fail_msg("unexpected error: %s", vstr_str(why));
    vstr_free(why);
}

/* expand - expand text; returns a new string or NULL (why in *why_out if given) */
static char *expand(const char *text, char **why_out)
{
    VSTR *out = vstr_alloc(64);
    VSTR *why = vstr_alloc(64);
    char *result = NULL;

    if (mail_conf_expand(text, out, why) == 0)
        result = mystrdup(vstr_str(out));
    if (why_out)
        *why_out = mystrdup(vstr_str(why));
    vstr_free(out);
    vstr_free(why);
    return result;
}

static void assert_expands(const char *text, const char *want)
{
    char *why;
    char *got = expand(text, &why);

    if (got == NULL)
        fail_msg("expanding \"%s\" failed: %s", text, why);
    assert_string_equal(got, want);
    myfree(got);
    myfree(why);
}

static void assert_expand_fails(const char *text, const char *reason_part)
{
    char *why;
    char *got = expand(text, &why);

    if (got != NULL)
        fail_msg("expanding \"%s\" should fail, gave \"%s\"", text, got);
    if (strstr(why, reason_part) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\"", why, reason_part);
    myfree(why);
}

/* Child-process checks for fatal errors (exit 1) and panics (abort). */
enum { EXIT_FATAL, EXIT_PANIC };

static void run_child(void (*fn)(const char *), const char *arg, int how)
{
    fflush(NULL);
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);

        if (devnull >= 0)
            dup2(devnull, 2);
        fn(arg);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (how == EXIT_FATAL) {
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 1);
    } else {
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGABRT);
    }
}

static void call_var_int(const char *name)
{
    (void)var_int(name);
}

static void call_var_time(const char *name)
{
    (void)var_time(name);
}

static void call_var_bool(const char *name)
{
    (void)var_bool(name);
}

static void call_var_str(const char *name)
{
    (void)var_str(name);
}

static void call_conf_read(const char *dir)
{
    mail_conf_read(dir);
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(test_dir));
    snprintf(test_path, sizeof(test_path), "%s/main.cf", test_dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mail_conf_reset();
    unlink(test_path);
    rmdir(test_dir);
    return 0;
}

/* --- the table ---------------------------------------------------------- */

static void test_table_sorted_and_valid(void **state)
{
    (void)state;
    size_t n = mail_param_count();

    assert_true(n > 100);
    assert_null(mail_param_table[n].name);
    for (size_t i = 0; i < n; i++) {
        const MAIL_PARAM *p = &mail_param_table[i];

        assert_true(mail_conf_name_ok(p->name));
        if (i > 0)
            assert_true(strcmp(mail_param_table[i - 1].name, p->name) < 0);
        assert_ptr_equal(mail_param_find(p->name), p);
        assert_true((p->defval != NULL) != (p->compute != NULL));
        if (p->type == PARAM_TIME)
            assert_non_null(strchr("smhdw", p->time_unit));
        if (p->type == PARAM_INT || p->type == PARAM_TIME)
            assert_true(p->min <= p->max);
    }
    assert_null(mail_param_find("no_such_parameter"));
    assert_null(mail_param_find(""));
}

static void test_table_has_required(void **state)
{
    (void)state;
    static const char *const names[] = {
        "config_directory",
        "queue_directory",
        "daemon_directory",
        "command_directory",
        "data_directory",
        "meta_directory",
        "mail_owner",
        "setgid_group",
        "default_privs",
        "syslog_name",
        "syslog_facility",
        "maillog_file",
        "myhostname",
        "mydomain",
        "myorigin",
        "mydestination",
        "relay_domains",
        "mynetworks",
        "mynetworks_style",
        "inet_interfaces",
        "inet_protocols",
        "default_process_limit",
        "service_throttle_time",
        "max_idle",
        "max_use",
        "ipc_timeout",
        "ipc_idle",
        "daemon_timeout",
        "process_id_directory",
        "import_environment",
        "export_environment",
        "mail_version",
        "mail_name",
        "smtpd_banner",
        "alias_maps",
        "alias_database",
        "message_size_limit",
        "master_service_disable",
        "smtpd_recipient_limit",
        "smtpd_hard_error_limit",
        "smtpd_soft_error_limit",
        "smtpd_timeout",
        "smtpd_client_connection_count_limit",
        "smtpd_error_sleep_time",
        "disable_vrfy_command",
        "line_length_limit",
        "queue_minfree",
        "minimal_backoff_time",
        "maximal_backoff_time",
        "queue_run_delay",
        "maximal_queue_lifetime",
        "bounce_queue_lifetime",
        "delay_warning_time",
        "default_destination_concurrency_limit",
        "local_recipient_maps",
        "home_mailbox",
        "mail_spool_directory",
        "recipient_delimiter",
        "hash_queue_depth",
        "hash_queue_names",
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (mail_param_find(names[i]) == NULL)
            fail_msg("parameter %s is missing from the table", names[i]);
}

static void test_defaults(void **state)
{
    (void)state;
    VSTR *why = vstr_alloc(64);

    load_ok("");
    if (mail_conf_check(why) < 0)
        fail_msg("defaults do not check: %s", vstr_str(why));
    assert_string_equal(var_str("queue_directory"), "/var/spool/postern");
    assert_string_equal(var_str("config_directory"), DEF_CONFIG_DIR);
    assert_string_equal(var_str("meta_directory"), DEF_CONFIG_DIR);
    assert_string_equal(var_str("mail_owner"), "postern");
    assert_string_equal(var_str("relay_domains"), "");
    assert_string_equal(var_str("alias_maps"), "hash:/etc/aliases");
    assert_int_equal(var_int("default_process_limit"), 100);
    assert_int_equal(var_int("message_size_limit"), 10240000);
    assert_int_equal(var_int("smtpd_hard_error_limit"), 20);
    assert_int_equal(var_time("smtpd_timeout"), 300);
    assert_int_equal(var_time("maximal_queue_lifetime"), 5 * 86400);
    assert_int_equal(var_time("delay_warning_time"), 0);
    assert_int_equal(var_time("service_throttle_time"), 60);
    assert_true(var_bool("disable_vrfy_command")); /* Postern: yes by default */
    assert_string_equal(var_str("mail_name"), "Postern");
    /* stress=yes switches the Postfix-style overload defaults. */
    mail_conf_update("stress", "yes");
    assert_int_equal(var_int("smtpd_hard_error_limit"), 1);
    assert_int_equal(var_time("smtpd_timeout"), 10);
    vstr_free(why);
}

static void test_computed_defaults(void **state)
{
    (void)state;
    load_ok("");
    const char *host = var_str("myhostname");

    assert_non_null(strchr(host, '.'));
    const char *dest = var_str("mydestination");

    assert_non_null(strstr(dest, host));
    assert_non_null(strstr(dest, "localhost."));
    const char *nets = var_str("mynetworks");

    assert_non_null(strstr(nets, "127.0.0.0/8"));
    assert_non_null(strstr(nets, "[::1]/128"));
    assert_string_equal(mail_param_default(mail_param_find("mynetworks_style")), "host");

    load_ok("myhostname = mail.example.com\n");
    assert_string_equal(var_str("mydomain"), "example.com");
    assert_string_equal(var_str("myorigin"), "mail.example.com");
    assert_string_equal(var_str("mydestination"),
                        "mail.example.com, localhost.example.com, localhost");
    assert_string_equal(var_str("smtpd_banner"), "mail.example.com ESMTP Postern");
    load_ok("myhostname = example.com\n");
    assert_string_equal(var_str("mydomain"), "localdomain");
    /* A loop through computed defaults is broken, not followed forever. */
    load_ok("myhostname = mx.$mydomain\n");
    assert_string_equal(var_str("myhostname"), "mx.localdomain");
}

/* --- parsing ------------------------------------------------------------ */

static void test_parse_basic(void **state)
{
    (void)state;
    size_t count;

    load_ok("# comment\n"
            "myhostname=host.example   \n"
            "\n"
            "  # indented comment\n"
            "mydestination =   a,\n"
            "    b,\n"
            "# comment between continuation lines\n"
            "\n"
            "\tc  \n"
            "my_own_param = x y  z\n"
            "relay_domains = first\n"
            "relay_domains = second\r\n"
            "empty_one =\n");
    assert_string_equal(mail_conf_raw("myhostname"), "host.example");
    assert_string_equal(mail_conf_raw("mydestination"), "a, b, c");
    assert_string_equal(mail_conf_raw("my_own_param"), "x y  z");
    assert_string_equal(mail_conf_raw("relay_domains"), "second");
    assert_string_equal(mail_conf_raw("empty_one"), "");
    assert_true(mail_conf_is_set("myhostname"));
    assert_false(mail_conf_is_set("myorigin"));
    assert_string_equal(mail_conf_raw("myorigin"), "$myhostname");
    assert_null(mail_conf_raw("never_heard_of"));

    const char *const *names = mail_conf_names(&count);

    assert_int_equal(count, 5);
    assert_string_equal(names[0], "myhostname");
    assert_string_equal(names[1], "mydestination");
    assert_string_equal(names[2], "my_own_param");
    assert_string_equal(names[3], "relay_domains");
    assert_string_equal(names[4], "empty_one");
    assert_null(names[5]);
}

static void test_parse_errors(void **state)
{
    (void)state;
    VSTR *why = vstr_alloc(64);

    assert_int_equal(load_text("myhostname = a\n\nbad line here\n", why), -1);
    assert_non_null(strstr(vstr_str(why), ", line 3: missing '='"));
    assert_non_null(strstr(vstr_str(why), test_path));
    assert_int_equal(load_text("# x\n= value\n", why), -1);
    assert_non_null(strstr(vstr_str(why), "line 2: missing parameter name"));
    assert_int_equal(load_text("a = 1\nbad$name = 1\n", why), -1);
    assert_non_null(strstr(vstr_str(why), "line 2: bad parameter name"));
    assert_int_equal(load_text("a = 1\nb = x\n  continued\nc d = 2\n", why), -1);
    assert_non_null(strstr(vstr_str(why), "line 4: bad parameter name"));

    /* An embedded NUL byte in the file is rejected with its line. */
    mail_conf_reset();
    static const char nul_text[] = "a = 1\nb = 2\0 c = 3\n";

    assert_int_equal(file_write_atomic(test_path, nul_text, sizeof(nul_text) - 1, 0644), 0);
    assert_int_equal(mail_conf_load(test_path, why), -1);
    assert_non_null(strstr(vstr_str(why), "line 2: NUL"));

    /* A logical line longer than MAIL_CONF_LINE_MAX, built from continuations. */
    VSTR *big = vstr_alloc(MAIL_CONF_LINE_MAX + 100);

    vstr_cat(big, "long = x\n");
    while (vstr_len(big) < MAIL_CONF_LINE_MAX + MAIL_CONF_LINE_MAX / 4)
        vstr_cat(big, "  0123456789012345678901234567890123456789\n");
    assert_int_equal(load_text(vstr_str(big), why), -1);
    assert_non_null(strstr(vstr_str(why), "line 1: logical line longer than"));
    vstr_free(big);

    /* A missing file. */
    mail_conf_reset();
    assert_int_equal(mail_conf_load("/nonexistent/dir/main.cf", why), -1);
    assert_non_null(strstr(vstr_str(why), "open /nonexistent/dir/main.cf:"));

    /* A failed load leaves the earlier values in place. */
    load_ok("myorigin = kept.example\n");
    write_conf("myorigin = new.example\nbroken\n");
    assert_int_equal(mail_conf_load(test_path, why), -1);
    assert_string_equal(var_str("myorigin"), "kept.example");

    /* Leading white space on the first line: warned about and ignored. */
    load_ok("   orphan continuation\nmyorigin = x\n");
    assert_string_equal(mail_conf_raw("myorigin"), "x");
    vstr_free(why);
}

static void test_conf_read_dir(void **state)
{
    (void)state;
    write_conf("myorigin = example.net\n");
    mail_conf_read(test_dir);
    assert_string_equal(var_str("myorigin"), "example.net");
    assert_string_equal(var_str("config_directory"), test_dir);
    assert_true(mail_conf_is_set("config_directory"));

    setenv("MAIL_CONFIG", "/env/dir", 1);
    assert_string_equal(mail_conf_dir("/cmd/dir"), "/cmd/dir");
    assert_string_equal(mail_conf_dir(NULL), "/env/dir");
    unsetenv("MAIL_CONFIG");
    assert_string_equal(mail_conf_dir(NULL), DEF_CONFIG_DIR);

    write_conf("broken line\n");
    run_child(call_conf_read, test_dir, EXIT_FATAL);
    run_child(call_conf_read, "/nonexistent/postern", EXIT_FATAL);
}

/* --- expansion ------------------------------------------------------------ */

static void test_expand_forms(void **state)
{
    (void)state;
    load_ok("myhostname = mx.example.org\n"
            "full = yes\n"
            "empty =\n"
            "nested = <$full|${empty}>\n"
            "num = 7\n");
    assert_expands("plain text", "plain text");
    assert_expands("$myhostname", "mx.example.org");
    assert_expands("a${myhostname}b", "amx.example.orgb");
    assert_expands("a$(myhostname)b", "amx.example.orgb");
    assert_expands("$myhostname.", "mx.example.org.");
    assert_expands("$$myhostname costs $$5", "$myhostname costs $5");
    assert_expands("[$undefined_name]", "[]");
    assert_expands("[${full?set}][${empty?set}]", "[set][]");
    assert_expands("[${full:unset}][${empty:unset}]", "[][unset]");
    assert_expands("[${full?{a, b }}][${empty:{ c }}]", "[a, b ][ c ]");
    assert_expands("[${full?{yes}:{no}}][${empty?{yes}:{no}}]", "[yes][no]");
    assert_expands("${full?{x} : {y}}", "x");
    assert_expands("${full?$myhostname}", "mx.example.org");
    assert_expands("${empty:${full?{deep $nested}}}", "deep <yes|>");
    assert_expands("$(full?x(y)z)", "x(y)z");
    assert_expands("${{$full} == {yes} ? {eq} : {ne}}", "eq");
    assert_expands("${{$full} != {yes} ? {ne} : {eq}}", "eq");
    assert_expands("${{$num} < {10} ? {small}}", "small");
    assert_expands("${{$num} >= {10} ? {big}}", "");
    assert_expands("${{$num}<={7}?{le}:{gt}}", "le");
    assert_expands("$mail_name", "Postern");
}

static void test_expand_errors(void **state)
{
    (void)state;
    load_ok("full = yes\nnum = x\n");
    assert_expand_fails("${full", "unterminated ${");
    assert_expand_fails("a $(full b", "unterminated $(");
    assert_expand_fails("${full?{x}", "unterminated");
    assert_expand_fails("cost $ 5", "'$' not followed by a parameter name");
    assert_expand_fails("trailing $", "'$' not followed");
    assert_expand_fails("${?x}", "missing parameter name");
    assert_expand_fails("${full!x}", "bad character after parameter name");
    assert_expand_fails("${full?{x}y}", "unexpected text");
    assert_expand_fails("${full?{x}:y}", "'{' expected");
    assert_expand_fails("${full:{x}:{y}}", "unexpected text");
    assert_expand_fails("${{a} ~ {b} ? {c}}", "unknown operator");
    assert_expand_fails("${{a} == {b} {c}}", "'?' expected");
    assert_expand_fails("${{$num} < {3} ? {c}}", "needs decimal numbers");
    /* A bad value is reported when something refers to it. */
    load_ok("a = x ${b\nc = [$a]\n");
    assert_expand_fails("$c", "unterminated ${");
}

static void test_expand_loops(void **state)
{
    (void)state;
    char *why;

    load_ok("self = x$self\n"
            "a = $b\n"
            "b = ${c?{$a}}\n"
            "c = 1\n"
            "myhostname = $mydomain\n"
            "mydomain = $myorigin\n"
            "myorigin = $myhostname\n");
    assert_expand_fails("$self", "parameter loop: $self -> $self");
    assert_expand_fails("$a", "parameter loop: $a -> $b -> $a");
    assert_null(expand("$myorigin", &why));
    assert_non_null(strstr(why, "$myorigin -> $myhostname -> $mydomain -> $myorigin"));
    myfree(why);
    /* After an error nothing stays marked busy: a good name still expands. */
    assert_expands("$c", "1");
    run_child(call_var_str, "myhostname", EXIT_FATAL);
}

static void test_expand_depth_and_size(void **state)
{
    (void)state;
    VSTR *text = vstr_alloc(4096);

    /* A chain just within the limit works; a longer one is an error. */
    for (int i = 0; i < MAIL_CONF_DEPTH - 1; i++)
        vstr_sprintf_append(text, "p%d = $p%d\n", i, i + 1);
    vstr_sprintf_append(text, "p%d = end\n", MAIL_CONF_DEPTH - 1);
    load_ok(vstr_str(text));
    assert_expands("$p0", "end");

    vstr_reset(text);
    for (int i = 0; i < MAIL_CONF_DEPTH + 50; i++)
        vstr_sprintf_append(text, "p%d = $p%d\n", i, i + 1);
    load_ok(vstr_str(text));
    assert_expand_fails("$p0", "nested more than");

    /* Doubling at each level must hit the size bound, not exhaust memory. */
    vstr_reset(text);
    for (int i = 0; i < 40; i++)
        vstr_sprintf_append(text, "d%d = $d%d$d%d\n", i, i + 1, i + 1);
    vstr_cat(text, "d40 = 0123456789\n");
    load_ok(vstr_str(text));
    assert_expand_fails("$d0", "longer than");

    /* Deeply nested conditionals are bounded too. */
    vstr_reset(text);
    for (int i = 0; i < MAIL_CONF_DEPTH + 10; i++)
        vstr_cat(text, "${full?");
    vstr_cat(text, "x");
    for (int i = 0; i < MAIL_CONF_DEPTH + 10; i++)
        vstr_cat(text, "}");
    load_ok("full = 1\n");
    assert_expand_fails(vstr_str(text), "nested more than");

    /* An overlong name after '$'. */
    vstr_reset(text);
    vstr_addch(text, '$');
    for (int i = 0; i < MAIL_CONF_NAME_MAX + 5; i++)
        vstr_addch(text, 'n');
    assert_expand_fails(vstr_str(text), "too long");
    vstr_free(text);
}

static void test_raw_params(void **state)
{
    (void)state;
    load_ok("recipient_delimiter = +\n");
    /* RAW parameters are left for the program that fills in $home etc. */
    assert_string_equal(var_str("forward_path"),
                        "$home/.forward${recipient_delimiter}${extension}, $home/.forward");
    assert_non_null(strstr(var_str("smtpd_expansion_filter"), "#$%&"));
    assert_expands("<$forward_path>", "<$home/.forward${recipient_delimiter}${extension}, "
                                      "$home/.forward>");
}

/* --- overrides, typed access ---------------------------------------------------- */

static void test_override_precedence(void **state)
{
    (void)state;
    size_t count;

    load_ok("myorigin = from.file\n");
    assert_string_equal(var_str("myorigin"), "from.file");
    const char *held = var_str("myorigin");

    mail_conf_update("myorigin", "from.override");
    assert_string_equal(var_str("myorigin"), "from.override");
    assert_string_equal(held, "from.file"); /* still valid memory: retired, not freed */
    assert_int_equal(mail_conf_parse_override("  relay_domains =  a, b  "), 0);
    assert_string_equal(var_str("relay_domains"), "a, b");
    assert_int_equal(mail_conf_parse_override("my_class = reject"), 0);
    assert_string_equal(mail_conf_lookup("my_class"), "reject");
    assert_int_equal(mail_conf_parse_override("no equals sign"), -1);
    assert_int_equal(mail_conf_parse_override("=value"), -1);
    assert_int_equal(mail_conf_parse_override("bad name=value"), -1);
    assert_int_equal(mail_conf_parse_override("bad$name=value"), -1);
    mail_conf_names(&count);
    assert_int_equal(count, 3);

    /* Overrides feed expansions of other names. */
    mail_conf_update("myhostname", "o.example.com");
    assert_string_equal(var_str("smtpd_banner"), "o.example.com ESMTP Postern");
    mail_conf_update("myhostname", "p.example.com");
    assert_string_equal(var_str("smtpd_banner"), "p.example.com ESMTP Postern");
    assert_null(mail_conf_lookup("not_defined_anywhere"));
    assert_string_equal(mail_conf_lookup("myorigin"), "from.override");
}

static void test_var_time(void **state)
{
    (void)state;
    load_ok("maximal_queue_lifetime = 2\n"
            "bounce_queue_lifetime = 3h\n"
            "smtpd_timeout = 45\n"
            "ipc_timeout = 2m\n"
            "delay_warning_time = 4\n"
            "minimal_backoff_time = 1w\n"
            "queue_run_delay = 0\n"
            "max_idle = 10x\n"
            "maximal_backoff_time = -5\n"
            "ipc_idle = 99999999999999999999s\n"
            "daemon_timeout = \n");
    assert_int_equal(var_time("maximal_queue_lifetime"), 2 * 86400);
    assert_int_equal(var_time("bounce_queue_lifetime"), 3 * 3600);
    assert_int_equal(var_time("smtpd_timeout"), 45);
    assert_int_equal(var_time("ipc_timeout"), 120);
    assert_int_equal(var_time("delay_warning_time"), 4 * 3600);
    assert_int_equal(var_time("minimal_backoff_time"), 7 * 86400);
    run_child(call_var_time, "queue_run_delay", EXIT_FATAL); /* below the minimum of 1s */
    run_child(call_var_time, "max_idle", EXIT_FATAL);
    run_child(call_var_time, "maximal_backoff_time", EXIT_FATAL);
    run_child(call_var_time, "ipc_idle", EXIT_FATAL);
    run_child(call_var_time, "daemon_timeout", EXIT_FATAL);
    run_child(call_var_time, "message_size_limit", EXIT_PANIC); /* wrong type: a bug */
}

static void test_var_int_bool(void **state)
{
    (void)state;
    load_ok("message_size_limit = 52428800\n"
            "smtpd_recipient_limit = 0\n"
            "default_process_limit = abc\n"
            "line_length_limit = 99999999999999999999999\n"
            "reject_code = 250\n"
            "disable_vrfy_command = YES\n"
            "biff = no\n"
            "smtputf8_enable = true\n"
            "strict_8bitmime = \n");
    assert_int_equal(var_int("message_size_limit"), 52428800);
    run_child(call_var_int, "smtpd_recipient_limit", EXIT_FATAL);
    run_child(call_var_int, "default_process_limit", EXIT_FATAL);
    run_child(call_var_int, "line_length_limit", EXIT_FATAL);
    run_child(call_var_int, "reject_code", EXIT_FATAL);
    assert_true(var_bool("disable_vrfy_command"));
    assert_false(var_bool("biff"));
    run_child(call_var_bool, "smtputf8_enable", EXIT_FATAL);
    run_child(call_var_bool, "strict_8bitmime", EXIT_FATAL);
    run_child(call_var_str, "no_such_parameter", EXIT_PANIC);
    run_child(call_var_bool, "myhostname", EXIT_PANIC);

    VSTR *why = vstr_alloc(64);

    assert_int_equal(mail_conf_check(why), -1);
    assert_non_null(strstr(vstr_str(why), "parameter"));
    load_ok("user_defined = ${oops\n");
    assert_int_equal(mail_conf_check(why), -1);
    assert_non_null(strstr(vstr_str(why), "user_defined"));
    vstr_free(why);
}

static void test_split_list(void **state)
{
    (void)state;
    ARGV *av = mail_conf_split_list(" a, b\tc,,{ x, y } inline:{ a=b, c=d },d ");

    assert_int_equal(av->argc, 6);
    assert_string_equal(av->argv[0], "a");
    assert_string_equal(av->argv[1], "b");
    assert_string_equal(av->argv[2], "c");
    assert_string_equal(av->argv[3], "{ x, y }");
    assert_string_equal(av->argv[4], "inline:{ a=b, c=d }");
    assert_string_equal(av->argv[5], "d");
    argv_free(av);
    av = mail_conf_split_list("unbalanced:{ a, b");
    assert_int_equal(av->argc, 1);
    argv_free(av);
    av = mail_conf_split_list(" , ");
    assert_int_equal(av->argc, 0);
    argv_free(av);

    load_ok("myhostname = h.example\n");
    av = var_list("mydestination");
    assert_int_equal(av->argc, 3);
    assert_string_equal(av->argv[0], "h.example");
    assert_string_equal(av->argv[1], "localhost.localdomain");
    argv_free(av);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_sorted_and_valid),
        cmocka_unit_test(test_table_has_required),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_computed_defaults),
        cmocka_unit_test(test_parse_basic),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_conf_read_dir),
        cmocka_unit_test(test_expand_forms),
        cmocka_unit_test(test_expand_errors),
        cmocka_unit_test(test_expand_loops),
        cmocka_unit_test(test_expand_depth_and_size),
        cmocka_unit_test(test_raw_params),
        cmocka_unit_test(test_override_precedence),
        cmocka_unit_test(test_var_time),
        cmocka_unit_test(test_var_int_bool),
        cmocka_unit_test(test_split_list),
    };

    msg_init("test_mail_conf");
    return cmocka_run_group_tests(tests, setup, teardown);
}
