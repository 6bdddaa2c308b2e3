/*
 * test_smtp_cmd - command line checks, verb splitting, MAIL/RCPT prefixes,
 * BDAT arguments and reply formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/smtp_cmd.h"

#define S(lit) (lit), (sizeof(lit) - 1)

/* reply_is_clean - every CR is followed by LF and every LF preceded by CR;
   every line starts with three digits and '-' or ' ' (or ends there) */
static int reply_is_clean(const VSTR *out, size_t max_line)
{
    const char *s = vstr_str(out);
    size_t len = vstr_len(out);
    size_t start = 0;

    if (len < 5 || s[len - 2] != '\r' || s[len - 1] != '\n')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r' && (i + 1 >= len || s[i + 1] != '\n'))
            return 0;
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            return 0;
        if (s[i] == '\n') {
            size_t line = i + 1 - start;
            const char *l = s + start;

            if (line > max_line || line < 5)
                return 0;
            if (l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' || l[2] < '0' || l[2] > '9')
                return 0;
            if (line > 5 && l[3] != '-' && l[3] != ' ')
                return 0;
            /* only the last line may use ' ' */
            if (l[3] == ' ' && i + 1 != len)
                return 0;
            if (l[3] == '-' && i + 1 == len)
                return 0;
            start = i + 1;
        }
    }
    return 1;
}

static void test_line_check(void **state)
{
    char buf[SMTP_CMD_LINE_MAX + 2];

    (void)state;
    assert_int_equal(smtp_cmd_line_check(S("MAIL FROM:<a@b.c>\r\n")), 0);
    assert_int_equal(smtp_cmd_line_check(S("\r\n")), 0);
    assert_int_equal(smtp_cmd_line_check(S("QUIT\n")), SMTP_CMD_LINE_BARE_LF);
    assert_int_equal(smtp_cmd_line_check(S("\n")), SMTP_CMD_LINE_BARE_LF);
    assert_int_equal(smtp_cmd_line_check(S("QUIT\r\r\n")), SMTP_CMD_LINE_BARE_CR);
    assert_int_equal(smtp_cmd_line_check(S("NO\rOP\r\n")), SMTP_CMD_LINE_BARE_CR);
    assert_int_equal(smtp_cmd_line_check(S("NO\nOP\r\n")), SMTP_CMD_LINE_BARE_LF);
    assert_int_equal(smtp_cmd_line_check(S("NO\0OP\r\n")), SMTP_CMD_LINE_NUL);
    assert_int_equal(smtp_cmd_line_check(S("\0\r\n")), SMTP_CMD_LINE_NUL);
    assert_int_equal(smtp_cmd_line_check(S("QUIT")), SMTP_CMD_LINE_NO_EOL);
    assert_int_equal(smtp_cmd_line_check(S("QUIT\r")),
                     SMTP_CMD_LINE_NO_EOL | SMTP_CMD_LINE_BARE_CR);
    assert_int_equal(smtp_cmd_line_check("", 0), SMTP_CMD_LINE_NO_EOL);
    assert_int_equal(smtp_cmd_line_check(S("\r\n.\n")), SMTP_CMD_LINE_BARE_LF);

    /* exactly 512 octets with CRLF is fine, 513 is not */
    memset(buf, 'x', sizeof(buf));
    memcpy(buf + SMTP_CMD_LINE_MAX - 2, "\r\n", 2);
    assert_int_equal(smtp_cmd_line_check(buf, SMTP_CMD_LINE_MAX), 0);
    memset(buf, 'x', sizeof(buf));
    memcpy(buf + SMTP_CMD_LINE_MAX - 1, "\r\n", 2);
    assert_int_equal(smtp_cmd_line_check(buf, SMTP_CMD_LINE_MAX + 1), SMTP_CMD_LINE_TOO_LONG);
    assert_int_equal(smtp_cmd_line_check(buf, SMTP_CMD_LINE_MAX - 1), SMTP_CMD_LINE_NO_EOL);
}

static void test_line_strip(void **state)
{
    (void)state;
    assert_int_equal(smtp_cmd_line_strip(S("QUIT\r\n")), 4);
    assert_int_equal(smtp_cmd_line_strip(S("QUIT\n")), 4);
    assert_int_equal(smtp_cmd_line_strip(S("QUIT\r")), 5);
    assert_int_equal(smtp_cmd_line_strip(S("QUIT")), 4);
    assert_int_equal(smtp_cmd_line_strip(S("\r\n")), 0);
    assert_int_equal(smtp_cmd_line_strip(S("\n")), 0);
    assert_int_equal(smtp_cmd_line_strip("", 0), 0);
    assert_int_equal(smtp_cmd_line_strip(S("QUIT\r\n\r\n")), 6);
}

static void expect_split(const char *line, enum smtp_cmd_verb verb, const char *name,
                         const char *arg, int sloppy)
{
    SMTP_CMD cmd;

    assert_int_equal(smtp_cmd_split(line, strlen(line), &cmd), 0);
    assert_int_equal(cmd.verb, verb);
    assert_int_equal(cmd.name_len, strlen(name));
    assert_memory_equal(cmd.name, name, cmd.name_len);
    assert_int_equal(cmd.arg_len, strlen(arg));
    assert_memory_equal(cmd.arg, arg, cmd.arg_len);
    assert_int_equal(cmd.sloppy, sloppy);
}

static void test_split(void **state)
{
    SMTP_CMD cmd;

    (void)state;
    expect_split("MAIL FROM:<a@b.c>", SMTP_CMD_MAIL, "MAIL", "FROM:<a@b.c>", 0);
    expect_split("mail from:<a@b.c>", SMTP_CMD_MAIL, "mail", "from:<a@b.c>", 0);
    expect_split("MaIl FROM:<a@b.c> SIZE=10", SMTP_CMD_MAIL, "MaIl", "FROM:<a@b.c> SIZE=10", 0);
    expect_split("DATA", SMTP_CMD_DATA, "DATA", "", 0);
    expect_split("DATA ", SMTP_CMD_DATA, "DATA", "", 1);
    expect_split("  QUIT", SMTP_CMD_QUIT, "QUIT", "", 1);
    expect_split("RCPT  TO:<a@b.c>", SMTP_CMD_RCPT, "RCPT", "TO:<a@b.c>", 1);
    expect_split("RCPT\tTO:<a@b.c>", SMTP_CMD_RCPT, "RCPT", "TO:<a@b.c>", 1);
    expect_split("EHLO host.example \t", SMTP_CMD_EHLO, "EHLO", "host.example", 1);
    expect_split("HELP me please", SMTP_CMD_HELP, "HELP", "me please", 0);
    expect_split("FOO bar", SMTP_CMD_UNKNOWN, "FOO", "bar", 0);
    expect_split("MAILX FROM:<>", SMTP_CMD_UNKNOWN, "MAILX", "FROM:<>", 0);
    expect_split("MAI", SMTP_CMD_UNKNOWN, "MAI", "", 0);
    expect_split("MAIL:FROM", SMTP_CMD_UNKNOWN, "MAIL:FROM", "", 0);
    expect_split("STARTTLS", SMTP_CMD_STARTTLS, "STARTTLS", "", 0);
    expect_split("xclient NAME=x", SMTP_CMD_XCLIENT, "xclient", "NAME=x", 0);
    expect_split("XFORWARD ADDR=1.2.3.4", SMTP_CMD_XFORWARD, "XFORWARD", "ADDR=1.2.3.4", 0);
    expect_split("BDAT 10 LAST", SMTP_CMD_BDAT, "BDAT", "10 LAST", 0);
    expect_split("AUTH PLAIN", SMTP_CMD_AUTH, "AUTH", "PLAIN", 0);
    expect_split("ETRN example.com", SMTP_CMD_ETRN, "ETRN", "example.com", 0);
    expect_split("STARTTLSSTARTTLSX", SMTP_CMD_UNKNOWN, "STARTTLSSTARTTLSX", "", 0);

    assert_int_equal(smtp_cmd_split("", 0, &cmd), -1);
    assert_int_equal(smtp_cmd_split(S("   "), &cmd), -1);
    assert_int_equal(smtp_cmd_split(S("\t"), &cmd), -1);
    /* only the given length counts */
    assert_int_equal(smtp_cmd_split("QUIT now", 4, &cmd), 0);
    assert_int_equal(cmd.verb, SMTP_CMD_QUIT);
    assert_int_equal(cmd.arg_len, 0);
}

static void test_verbs(void **state)
{
    static const char *const names[] = {"HELO",     "EHLO", "MAIL", "RCPT",    "DATA",    "BDAT",
                                        "RSET",     "NOOP", "QUIT", "VRFY",    "EXPN",    "HELP",
                                        "STARTTLS", "AUTH", "ETRN", "XCLIENT", "XFORWARD"};
    char lower[32];

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        enum smtp_cmd_verb verb = smtp_cmd_verb_lookup(names[i], strlen(names[i]));

        assert_int_not_equal(verb, SMTP_CMD_UNKNOWN);
        assert_string_equal(smtp_cmd_verb_name(verb), names[i]);
        for (size_t j = 0; names[i][j]; j++)
            lower[j] = (char)(names[i][j] | 0x20);
        assert_int_equal(smtp_cmd_verb_lookup(lower, strlen(names[i])), verb);
        /* a prefix or an extension of a verb is not that verb */
        assert_int_not_equal(smtp_cmd_verb_lookup(names[i], strlen(names[i]) - 1), verb);
    }
    assert_string_equal(smtp_cmd_verb_name(SMTP_CMD_UNKNOWN), "UNKNOWN");
    assert_int_equal(smtp_cmd_verb_lookup("", 0), SMTP_CMD_UNKNOWN);
    assert_int_equal(smtp_cmd_verb_lookup(S("LHLO")), SMTP_CMD_UNKNOWN);
    assert_int_equal(smtp_cmd_verb_lookup(S("MA\0L")), SMTP_CMD_UNKNOWN);
}

static void expect_path(const char *arg, const char *prefix, int ret, const char *path)
{
    const char *p = NULL;
    size_t len = 0;

    assert_int_equal(smtp_cmd_path_arg(arg, strlen(arg), prefix, &p, &len), ret);
    if (ret == 0) {
        assert_int_equal(len, strlen(path));
        assert_memory_equal(p, path, len);
    }
}

static void test_path_arg(void **state)
{
    (void)state;
    expect_path("FROM:<a@b.c>", "FROM:", 0, "<a@b.c>");
    expect_path("from:<a@b.c>", "FROM:", 0, "<a@b.c>");
    expect_path("From: <a@b.c> SIZE=1", "FROM:", 0, "<a@b.c> SIZE=1");
    expect_path("FROM: \t <a@b.c>", "FROM:", 0, "<a@b.c>");
    expect_path("FROM:<>", "FROM:", 0, "<>");
    expect_path("FROM:", "FROM:", 0, "");
    expect_path("TO:<a@b.c>", "TO:", 0, "<a@b.c>");
    expect_path("to:<postmaster>", "TO:", 0, "<postmaster>");
    expect_path("FROM<a@b.c>", "FROM:", -1, NULL);
    expect_path("FROM :<a@b.c>", "FROM:", -1, NULL);
    expect_path("TO:<a@b.c>", "FROM:", -1, NULL);
    expect_path("FRO", "FROM:", -1, NULL);
    expect_path("", "TO:", -1, NULL);
}

static void expect_bdat(const char *arg, int ret, uint64_t size, int last)
{
    uint64_t got = 12345;
    int got_last = -1;

    assert_int_equal(smtp_cmd_bdat_parse(arg, strlen(arg), &got, &got_last), ret);
    if (ret == SMTP_CMD_BDAT_OK) {
        assert_true(got == size);
        assert_int_equal(got_last, last);
    }
}

static void test_bdat(void **state)
{
    (void)state;
    expect_bdat("0", 0, 0, 0);
    expect_bdat("0 LAST", 0, 0, 1);
    expect_bdat("123", 0, 123, 0);
    expect_bdat("123 LAST", 0, 123, 1);
    expect_bdat("123 last", 0, 123, 1);
    expect_bdat("123 LaSt", 0, 123, 1);
    expect_bdat("000042", 0, 42, 0);
    expect_bdat("18446744073709551615", 0, UINT64_MAX, 0);
    expect_bdat("18446744073709551615 LAST", 0, UINT64_MAX, 1);
    expect_bdat("18446744073709551616", SMTP_CMD_BDAT_RANGE, 0, 0);
    expect_bdat("99999999999999999999999999 LAST", SMTP_CMD_BDAT_RANGE, 0, 0);
    expect_bdat("", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    expect_bdat("LAST", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    expect_bdat("-1", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    expect_bdat("+1", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    expect_bdat(" 1", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    expect_bdat("1 ", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    expect_bdat("1 2", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    expect_bdat("1a", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    expect_bdat("0x10", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    expect_bdat("1e3", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    expect_bdat("10  LAST", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    expect_bdat("10\tLAST", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    expect_bdat("10 LASTX", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    expect_bdat("10 LAS", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    expect_bdat("10 LAST x", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    expect_bdat("10 LAST ", SMTP_CMD_BDAT_SYNTAX, 0, 0);
    /* a syntax error wins over an overflow: the argument is garbage either way */
    expect_bdat("99999999999999999999999 x", SMTP_CMD_BDAT_SYNTAX, 0, 0);
}

static void expect_reply(int code, const char *dsn, const char *text, size_t width,
                         const char *want)
{
    VSTR *out = vstr_alloc(64);

    assert_int_equal(smtp_cmd_reply_format(out, code, dsn, text, width), 0);
    assert_string_equal(vstr_str(out), want);
    /* widths below the prefix are widened to fit one octet of text */
    assert_true(reply_is_clean(out, width > 10 ? width + 2 : SMTP_CMD_REPLY_LINE_MAX));
    vstr_free(out);
}

static void test_reply_basic(void **state)
{
    VSTR *out = vstr_alloc(16);
    SMTP_REPLY r = {501, "5.1.7", "Bad sender address syntax"};

    (void)state;
    expect_reply(250, "2.1.0", "Ok", 0, "250 2.1.0 Ok\r\n");
    expect_reply(250, NULL, "host.example", 0, "250 host.example\r\n");
    expect_reply(250, "", "host.example", 0, "250 host.example\r\n");
    expect_reply(354, NULL, "End data with <CR><LF>.<CR><LF>", 0,
                 "354 End data with <CR><LF>.<CR><LF>\r\n");
    expect_reply(250, NULL, "h.example\nPIPELINING\nSIZE 10240000\n8BITMIME", 0,
                 "250-h.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n");
    expect_reply(550, "5.7.1", "first\r\nsecond", 0, "550-5.7.1 first\r\n550 5.7.1 second\r\n");
    expect_reply(250, "2.0.0", "one line\n", 0, "250 2.0.0 one line\r\n");
    expect_reply(250, "2.0.0", "a\n\nb", 0, "250-2.0.0 a\r\n250-2.0.0\r\n250 2.0.0 b\r\n");
    expect_reply(250, NULL, "", 0, "250\r\n");
    expect_reply(250, NULL, NULL, 0, "250\r\n");
    expect_reply(250, "2.0.0", "", 0, "250 2.0.0\r\n");
    expect_reply(221, "2.0.0", "Bye", 0, "221 2.0.0 Bye\r\n");
    expect_reply(421, "4.3.2", "Shutting down", 0, "421 4.3.2 Shutting down\r\n");
    expect_reply(555, "5.5.4", "Unsupported option: FOO", 0,
                 "555 5.5.4 Unsupported option: FOO\r\n");

    /* controls in the text never reach the wire as such */
    expect_reply(250, NULL, "a\rb", 0, "250 a?b\r\n");
    expect_reply(250, NULL,
                 "a\tb\x7f"
                 "c\x01",
                 0, "250 a b?c?\r\n");
    expect_reply(250, NULL, "a\r\r\nb", 0, "250-a?\r\n250 b\r\n");
    expect_reply(250, NULL, "caf\xc3\xa9", 0, "250 caf\xc3\xa9\r\n");

    assert_int_equal(smtp_cmd_reply(out, &r), 0);
    assert_string_equal(vstr_str(out), "501 5.1.7 Bad sender address syntax\r\n");
    vstr_free(out);
}

static void test_reply_wrap(void **state)
{
    VSTR *out = vstr_alloc(16);
    char text[1201];
    VSTR *joined = vstr_alloc(16);

    (void)state;
    /* prefix "250-2.0.0 " is 10 octets: 10 left of a 20-octet line */
    expect_reply(250, "2.0.0", "aaaa bbbb cccc dddd", 20,
                 "250-2.0.0 aaaa bbbb\r\n250 2.0.0 cccc dddd\r\n");
    expect_reply(250, "2.0.0", "xxxxxxxxxxxxxxxxxxxxxxxxx", 20,
                 "250-2.0.0 xxxxxxxxxx\r\n250-2.0.0 xxxxxxxxxx\r\n250 2.0.0 xxxxx\r\n");
    expect_reply(250, NULL, "abc def", 7, "250-abc\r\n250 def\r\n");
    expect_reply(250, NULL, "abcdefgh", 8, "250-abcd\r\n250 efgh\r\n");
    expect_reply(250, NULL, "abcd efgh", 8, "250-abcd\r\n250 efgh\r\n");
    /* a width smaller than the prefix still makes progress */
    expect_reply(250, "2.0.0", "ab", 3, "250-2.0.0 a\r\n250 2.0.0 b\r\n");

    /* long text at the default width: every line within 512 octets,
       the text survives apart from the spaces where it was broken */
    for (size_t i = 0; i < sizeof(text) - 1; i++)
        text[i] = (i % 7 == 6) ? ' ' : (char)('a' + i % 26);
    text[sizeof(text) - 1] = 0;
    assert_int_equal(smtp_cmd_reply_format(out, 550, "5.7.1", text, 0), 0);
    assert_true(reply_is_clean(out, SMTP_CMD_REPLY_LINE_MAX));
    for (const char *p = vstr_str(out); *p;) {
        const char *eol = strstr(p, "\r\n");

        assert_non_null(eol);
        assert_memory_equal(p + 3 + 1, "5.7.1 ", 6);
        if (vstr_len(joined))
            vstr_addch(joined, ' ');
        vstr_ncat(joined, p + 10, (size_t)(eol - p - 10));
        p = eol + 2;
    }
    assert_string_equal(vstr_str(joined), text);

    /* a 2000-octet word with no space is cut, never longer than a line */
    char word[2001];

    memset(word, 'w', sizeof(word) - 1);
    word[sizeof(word) - 1] = 0;
    assert_int_equal(smtp_cmd_reply_format(out, 250, NULL, word, 0), 0);
    assert_true(reply_is_clean(out, SMTP_CMD_REPLY_LINE_MAX));
    vstr_free(out);
    vstr_free(joined);
}

static void test_reply_every_octet(void **state)
{
    VSTR *out = vstr_alloc(16);
    char text[256];

    (void)state;
    /* all octets 1..255 in the text: the reply is still clean */
    for (int i = 1; i < 256; i++)
        text[i - 1] = (char)i;
    text[255] = 0;
    assert_int_equal(smtp_cmd_reply_format(out, 250, "2.0.0", text, 0), 0);
    assert_true(reply_is_clean(out, SMTP_CMD_REPLY_LINE_MAX));
    assert_int_equal(smtp_cmd_reply_format(out, 250, "2.0.0", text, 16), 0);
    assert_true(reply_is_clean(out, 18));
    vstr_free(out);
}

static void test_reply_invalid(void **state)
{
    VSTR *out = vstr_alloc(16);

    (void)state;
    assert_int_equal(smtp_cmd_reply_format(out, 199, NULL, "x", 0), -1);
    assert_int_equal(smtp_cmd_reply_format(out, 600, NULL, "x", 0), -1);
    assert_int_equal(smtp_cmd_reply_format(out, 260, NULL, "x", 0), -1);
    assert_int_equal(smtp_cmd_reply_format(out, 0, NULL, "x", 0), -1);
    assert_int_equal(smtp_cmd_reply_format(out, 250, "4.1.1", "x", 0), -1);
    assert_int_equal(smtp_cmd_reply_format(out, 550, "2.1.1", "x", 0), -1);
    assert_int_equal(smtp_cmd_reply_format(out, 354, "3.0.0", "x", 0), -1);
    assert_int_equal(smtp_cmd_reply_format(out, 250, "2.1", "x", 0), -1);
    assert_int_equal(smtp_cmd_reply_format(out, 250, "2.1.", "x", 0), -1);
    assert_int_equal(smtp_cmd_reply_format(out, 250, "2..1", "x", 0), -1);
    assert_int_equal(smtp_cmd_reply_format(out, 250, "2.1000.1", "x", 0), -1);
    assert_int_equal(smtp_cmd_reply_format(out, 250, "2.1.1000", "x", 0), -1);
    assert_int_equal(smtp_cmd_reply_format(out, 250, "2.a.1", "x", 0), -1);
    assert_int_equal(smtp_cmd_reply_format(out, 250, "2.1.0x", "x", 0), -1);
    assert_int_equal(smtp_cmd_reply_format(out, 250, "2.1.0 ", "x", 0), -1);
    assert_int_equal(smtp_cmd_reply_format(out, 250, "20.1.0", "x", 0), -1);

    assert_true(smtp_cmd_dsn_valid(250, "2.1.0"));
    assert_true(smtp_cmd_dsn_valid(451, "4.123.999"));
    assert_true(smtp_cmd_dsn_valid(554, "5.0.0"));
    assert_false(smtp_cmd_dsn_valid(554, "4.0.0"));
    assert_false(smtp_cmd_dsn_valid(554, ""));
    vstr_free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_check),
        cmocka_unit_test(test_line_strip),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_verbs),
        cmocka_unit_test(test_path_arg),
        cmocka_unit_test(test_bdat),
        cmocka_unit_test(test_reply_basic),
        cmocka_unit_test(test_reply_wrap),
        cmocka_unit_test(test_reply_every_octet),
        cmocka_unit_test(test_reply_invalid),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
