/*
 * test_smtp_param - ESMTP parameter grammar, each MAIL and RCPT parameter,
 * duplicates, unknown keywords, xtext and RFC 6533 encodings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/smtp_param.h"

#define ALL SMTP_PARAM_FLAG_ALL
#define RCPT SMTP_PARAM_FLAG_RCPT
#define TXN SMTP_PARAM_FLAG_UTF8_TXN

static int setup(void **state)
{
    *state = smtp_param_alloc();
    return 0;
}

static int teardown(void **state)
{
    smtp_param_free(*state);
    return 0;
}

static enum smtp_param_err parse(SMTP_PARAMS *p, const char *str, int flags)
{
    return smtp_param_parse(p, str, strlen(str), flags);
}

#define EXPECT(p, str, flags, want)                                                                \
    do {                                                                                           \
        enum smtp_param_err got_ = parse((p), (str), (flags));                                     \
        if (got_ != (want))                                                                        \
            fail_msg("\"%s\": got %s, want %s", (str), smtp_param_strerror(got_),                  \
                     smtp_param_strerror(want));                                                   \
    } while (0)

static void test_size(void **state)
{
    SMTP_PARAMS *p = *state;

    EXPECT(p, "SIZE=1000", ALL, SMTP_PARAM_OK);
    assert_true(p->size == 1000);
    assert_int_equal(p->seen, SMTP_PARAM_SEEN_SIZE);
    EXPECT(p, "size=0", ALL, SMTP_PARAM_OK);
    assert_true(p->size == 0);
    assert_int_equal(p->seen, SMTP_PARAM_SEEN_SIZE);
    EXPECT(p, "SIZE=18446744073709551615", ALL, SMTP_PARAM_OK);
    assert_true(p->size == UINT64_MAX);
    EXPECT(p, "SIZE=00000000000000000001", ALL, SMTP_PARAM_OK);
    assert_true(p->size == 1);
    EXPECT(p, "SIZE=18446744073709551616", ALL, SMTP_PARAM_ERR_SIZE_RANGE);
    EXPECT(p, "SIZE=99999999999999999999", ALL, SMTP_PARAM_ERR_SIZE_RANGE);
    EXPECT(p, "SIZE=000000000000000000001", ALL, SMTP_PARAM_ERR_SIZE);
    EXPECT(p, "SIZE=", ALL, SMTP_PARAM_ERR_SYNTAX);
    EXPECT(p, "SIZE", ALL, SMTP_PARAM_ERR_SIZE);
    EXPECT(p, "SIZE=-1", ALL, SMTP_PARAM_ERR_SIZE);
    EXPECT(p, "SIZE=+1", ALL, SMTP_PARAM_ERR_SIZE);
    EXPECT(p, "SIZE=1k", ALL, SMTP_PARAM_ERR_SIZE);
    EXPECT(p, "SIZE=0x10", ALL, SMTP_PARAM_ERR_SIZE);
    EXPECT(p, "SIZE=1.5", ALL, SMTP_PARAM_ERR_SIZE);
    EXPECT(p, "SIZE==1", ALL, SMTP_PARAM_ERR_SYNTAX);
    EXPECT(p, "SIZE=1 SIZE=2", ALL, SMTP_PARAM_ERR_DUPLICATE);
    EXPECT(p, "SIZE=1 size=1", ALL, SMTP_PARAM_ERR_DUPLICATE);
    EXPECT(p, "SIZE=1", ALL & ~SMTP_PARAM_FLAG_SIZE, SMTP_PARAM_ERR_UNKNOWN);
    EXPECT(p, "SIZE=1", ALL | RCPT, SMTP_PARAM_ERR_UNKNOWN);
    assert_string_equal(vstr_str(p->keyword), "SIZE");
}

static void test_body(void **state)
{
    SMTP_PARAMS *p = *state;

    EXPECT(p, "BODY=7BIT", ALL, SMTP_PARAM_OK);
    assert_int_equal(p->body, SMTP_PARAM_BODY_7BIT);
    EXPECT(p, "BODY=8BITMIME", ALL, SMTP_PARAM_OK);
    assert_int_equal(p->body, SMTP_PARAM_BODY_8BITMIME);
    EXPECT(p, "body=8bitmime", ALL, SMTP_PARAM_OK);
    assert_int_equal(p->body, SMTP_PARAM_BODY_8BITMIME);
    EXPECT(p, "BODY=BINARYMIME", ALL, SMTP_PARAM_OK);
    assert_int_equal(p->body, SMTP_PARAM_BODY_BINARYMIME);
    EXPECT(p, "BODY=BINARYMIME", SMTP_PARAM_FLAG_8BITMIME, SMTP_PARAM_ERR_BODY);
    EXPECT(p, "BODY=8BITMIME", SMTP_PARAM_FLAG_BINARYMIME, SMTP_PARAM_ERR_BODY);
    EXPECT(p, "BODY=7BIT", SMTP_PARAM_FLAG_8BITMIME, SMTP_PARAM_OK);
    EXPECT(p, "BODY=7BIT", SMTP_PARAM_FLAG_SIZE, SMTP_PARAM_ERR_UNKNOWN);
    EXPECT(p, "BODY=8BIT", ALL, SMTP_PARAM_ERR_BODY);
    EXPECT(p, "BODY=8BITMIMEX", ALL, SMTP_PARAM_ERR_BODY);
    EXPECT(p, "BODY", ALL, SMTP_PARAM_ERR_BODY);
    EXPECT(p, "BODY=7BIT BODY=7BIT", ALL, SMTP_PARAM_ERR_DUPLICATE);
    EXPECT(p, "BODY=7BIT", ALL | RCPT, SMTP_PARAM_ERR_UNKNOWN);
}

static void test_smtputf8_ret_auth(void **state)
{
    SMTP_PARAMS *p = *state;

    EXPECT(p, "SMTPUTF8", ALL, SMTP_PARAM_OK);
    assert_int_equal(p->seen, SMTP_PARAM_SEEN_SMTPUTF8);
    EXPECT(p, "smtputf8", ALL, SMTP_PARAM_OK);
    EXPECT(p, "SMTPUTF8=yes", ALL, SMTP_PARAM_ERR_SMTPUTF8);
    EXPECT(p, "SMTPUTF8 SMTPUTF8", ALL, SMTP_PARAM_ERR_DUPLICATE);
    EXPECT(p, "SMTPUTF8", ALL & ~SMTP_PARAM_FLAG_SMTPUTF8, SMTP_PARAM_ERR_UNKNOWN);
    EXPECT(p, "SMTPUTF8", ALL | RCPT, SMTP_PARAM_ERR_UNKNOWN);

    EXPECT(p, "RET=FULL", ALL, SMTP_PARAM_OK);
    assert_int_equal(p->ret, SMTP_PARAM_RET_FULL);
    EXPECT(p, "RET=hdrs", ALL, SMTP_PARAM_OK);
    assert_int_equal(p->ret, SMTP_PARAM_RET_HDRS);
    EXPECT(p, "RET=ALL", ALL, SMTP_PARAM_ERR_RET);
    EXPECT(p, "RET=HDRSX", ALL, SMTP_PARAM_ERR_RET);
    EXPECT(p, "RET", ALL, SMTP_PARAM_ERR_RET);
    EXPECT(p, "RET=FULL RET=HDRS", ALL, SMTP_PARAM_ERR_DUPLICATE);
    EXPECT(p, "RET=FULL", ALL & ~SMTP_PARAM_FLAG_DSN, SMTP_PARAM_ERR_UNKNOWN);
    EXPECT(p, "RET=FULL", ALL | RCPT, SMTP_PARAM_ERR_UNKNOWN);

    EXPECT(p, "AUTH=<>", ALL, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->auth), "<>");
    EXPECT(p, "AUTH=user@example.com", ALL, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->auth), "user@example.com");
    EXPECT(p, "AUTH=a+2Bb@example.com", ALL, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->auth), "a+b@example.com");
    EXPECT(p, "AUTH=a+C3+BC@example.com", ALL, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->auth), "a\xc3\xbc@example.com");
    EXPECT(p, "AUTH=a+C3@example.com", ALL, SMTP_PARAM_ERR_AUTH);
    EXPECT(p, "AUTH=a+0Db", ALL, SMTP_PARAM_ERR_AUTH);
    EXPECT(p, "AUTH=a+", ALL, SMTP_PARAM_ERR_AUTH);
    EXPECT(p, "AUTH", ALL, SMTP_PARAM_ERR_AUTH);
    EXPECT(p, "AUTH=", ALL, SMTP_PARAM_ERR_SYNTAX);
    EXPECT(p, "AUTH=<>", ALL & ~SMTP_PARAM_FLAG_AUTH, SMTP_PARAM_ERR_UNKNOWN);
}

static void test_envid(void **state)
{
    SMTP_PARAMS *p = *state;
    char buf[400];

    EXPECT(p, "ENVID=QQ314159", ALL, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->envid), "QQ314159");
    EXPECT(p, "ENVID=abc+2B+3Dxyz", ALL, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->envid), "abc+=xyz");
    EXPECT(p, "ENVID=a+20b", ALL, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->envid), "a b");
    EXPECT(p, "ENVID=a+2b", ALL, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->envid), "a+");
    EXPECT(p, "ENVID=+7E", ALL, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->envid), "~");
    EXPECT(p, "ENVID=a+2", ALL, SMTP_PARAM_ERR_ENVID);
    EXPECT(p, "ENVID=a+", ALL, SMTP_PARAM_ERR_ENVID);
    EXPECT(p, "ENVID=+", ALL, SMTP_PARAM_ERR_ENVID);
    EXPECT(p, "ENVID=a+G1", ALL, SMTP_PARAM_ERR_ENVID);
    EXPECT(p, "ENVID=a+1G", ALL, SMTP_PARAM_ERR_ENVID);
    EXPECT(p, "ENVID=a++41", ALL, SMTP_PARAM_ERR_ENVID);
    EXPECT(p, "ENVID=a+00", ALL, SMTP_PARAM_ERR_ENVID);
    EXPECT(p, "ENVID=a+0A", ALL, SMTP_PARAM_ERR_ENVID);
    EXPECT(p, "ENVID=a+0D+0A", ALL, SMTP_PARAM_ERR_ENVID);
    EXPECT(p, "ENVID=+7F", ALL, SMTP_PARAM_ERR_ENVID);
    EXPECT(p, "ENVID=+C3+BC", ALL, SMTP_PARAM_ERR_ENVID);
    EXPECT(p, "ENVID=+09", ALL, SMTP_PARAM_ERR_ENVID);
    EXPECT(p, "ENVID", ALL, SMTP_PARAM_ERR_ENVID);
    EXPECT(p, "ENVID=a ENVID=b", ALL, SMTP_PARAM_ERR_DUPLICATE);
    EXPECT(p, "ENVID=a", ALL | RCPT, SMTP_PARAM_ERR_UNKNOWN);

    /* 100 decoded octets, however they were encoded */
    memcpy(buf, "ENVID=", 6);
    memset(buf + 6, 'e', 100);
    buf[106] = 0;
    EXPECT(p, buf, ALL, SMTP_PARAM_OK);
    assert_int_equal(vstr_len(p->envid), 100);
    buf[106] = 'e';
    buf[107] = 0;
    EXPECT(p, buf, ALL, SMTP_PARAM_ERR_ENVID);
    memcpy(buf, "ENVID=", 6);
    for (int i = 0; i < 100; i++)
        memcpy(buf + 6 + 3 * i, "+2B", 3);
    buf[306] = 0;
    EXPECT(p, buf, ALL, SMTP_PARAM_OK);
    assert_int_equal(vstr_len(p->envid), 100);
    memcpy(buf + 306, "+2B", 4);
    EXPECT(p, buf, ALL, SMTP_PARAM_ERR_ENVID);
}

static void test_notify(void **state)
{
    SMTP_PARAMS *p = *state;

    EXPECT(p, "NOTIFY=NEVER", ALL | RCPT, SMTP_PARAM_OK);
    assert_int_equal(p->notify, SMTP_PARAM_NOTIFY_NEVER);
    EXPECT(p, "NOTIFY=SUCCESS", ALL | RCPT, SMTP_PARAM_OK);
    assert_int_equal(p->notify, SMTP_PARAM_NOTIFY_SUCCESS);
    EXPECT(p, "NOTIFY=SUCCESS,FAILURE,DELAY", ALL | RCPT, SMTP_PARAM_OK);
    assert_int_equal(p->notify, SMTP_PARAM_NOTIFY_SUCCESS | SMTP_PARAM_NOTIFY_FAILURE |
                                    SMTP_PARAM_NOTIFY_DELAY);
    EXPECT(p, "notify=delay,failure", ALL | RCPT, SMTP_PARAM_OK);
    assert_int_equal(p->notify, SMTP_PARAM_NOTIFY_DELAY | SMTP_PARAM_NOTIFY_FAILURE);
    assert_int_equal(p->seen, SMTP_PARAM_SEEN_NOTIFY);
    EXPECT(p, "NOTIFY=NEVER,SUCCESS", ALL | RCPT, SMTP_PARAM_ERR_NOTIFY);
    EXPECT(p, "NOTIFY=SUCCESS,NEVER", ALL | RCPT, SMTP_PARAM_ERR_NOTIFY);
    EXPECT(p, "NOTIFY=NEVER,NEVER", ALL | RCPT, SMTP_PARAM_ERR_NOTIFY);
    EXPECT(p, "NOTIFY=SUCCESS,SUCCESS", ALL | RCPT, SMTP_PARAM_ERR_NOTIFY);
    EXPECT(p, "NOTIFY=SUCCESS,", ALL | RCPT, SMTP_PARAM_ERR_NOTIFY);
    EXPECT(p, "NOTIFY=,SUCCESS", ALL | RCPT, SMTP_PARAM_ERR_NOTIFY);
    EXPECT(p, "NOTIFY=SUCCESS,,DELAY", ALL | RCPT, SMTP_PARAM_ERR_NOTIFY);
    EXPECT(p, "NOTIFY=,", ALL | RCPT, SMTP_PARAM_ERR_NOTIFY);
    EXPECT(p, "NOTIFY=FOO", ALL | RCPT, SMTP_PARAM_ERR_NOTIFY);
    EXPECT(p, "NOTIFY=SUCCESS;DELAY", ALL | RCPT, SMTP_PARAM_ERR_NOTIFY);
    EXPECT(p, "NOTIFY", ALL | RCPT, SMTP_PARAM_ERR_NOTIFY);
    EXPECT(p, "NOTIFY=NEVER NOTIFY=NEVER", ALL | RCPT, SMTP_PARAM_ERR_DUPLICATE);
    EXPECT(p, "NOTIFY=NEVER", ALL, SMTP_PARAM_ERR_UNKNOWN);
    EXPECT(p, "NOTIFY=NEVER", (ALL & ~SMTP_PARAM_FLAG_DSN) | RCPT, SMTP_PARAM_ERR_UNKNOWN);
}

static void test_orcpt(void **state)
{
    SMTP_PARAMS *p = *state;
    char buf[600];

    EXPECT(p, "ORCPT=rfc822;user@example.com", ALL | RCPT, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->orcpt_type), "rfc822");
    assert_string_equal(vstr_str(p->orcpt_addr), "user@example.com");
    EXPECT(p, "ORCPT=RFC822;a+2Bb@x.org", ALL | RCPT, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->orcpt_type), "RFC822");
    assert_string_equal(vstr_str(p->orcpt_addr), "a+b@x.org");
    EXPECT(p, "ORCPT=rfc822;+22a+20b+22@x.org", ALL | RCPT, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->orcpt_addr), "\"a b\"@x.org");
    EXPECT(p, "ORCPT=x400;c+3Dus+3Ba+3D+3Bp+3Dx", ALL | RCPT, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->orcpt_type), "x400");
    assert_string_equal(vstr_str(p->orcpt_addr), "c=us;a=;p=x");
    EXPECT(p, "ORCPT=rfc822", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=;a@b.c", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=rfc822;", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=rfc.822;a@b.c", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=rfc(822);a@b.c", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=rf\xc3\xa9;a@b.c", ALL | RCPT | TXN, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=rfc822;a+0Ab@x.org", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=rfc822;a+C3+BC@x.org", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=rfc822;a+Zb@x.org", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=rfc822;a+", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=rf c822;a@b.c", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=rfc822;a@b.c ORCPT=rfc822;a@b.c", ALL | RCPT, SMTP_PARAM_ERR_DUPLICATE);
    EXPECT(p, "ORCPT=rfc822;a@b.c", ALL, SMTP_PARAM_ERR_UNKNOWN);

    /* 500 octets as sent */
    snprintf(buf, sizeof(buf), "ORCPT=rfc822;");
    memset(buf + 13, 'o', 493);
    buf[506] = 0;
    EXPECT(p, buf, ALL | RCPT, SMTP_PARAM_OK);
    buf[506] = 'o';
    buf[507] = 0;
    EXPECT(p, buf, ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
}

static void test_orcpt_utf8(void **state)
{
    SMTP_PARAMS *p = *state;

    /* utf-8-addr-xtext: allowed with or without an SMTPUTF8 transaction */
    EXPECT(p, "ORCPT=utf-8;user\\x{E9}@example.com", ALL | RCPT, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->orcpt_type), "utf-8");
    assert_string_equal(vstr_str(p->orcpt_addr), "user\xc3\xa9@example.com");
    EXPECT(p, "ORCPT=UTF-8;a\\x{2B}b\\x{3D}c\\x{5C}d@x", ALL | RCPT, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->orcpt_addr), "a+b=c\\d@x");
    EXPECT(p, "ORCPT=utf-8;\\x{e9}\\x{1F600}\\x{10FFFF}\\x{800}@x", ALL | RCPT, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->orcpt_addr),
                        "\xc3\xa9\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xe0\xa0\x80@x");
    EXPECT(p, "ORCPT=utf-8;\\x{20}a@x", ALL | RCPT, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->orcpt_addr), " a@x");
    /* utf-8-addr-unitext: raw UTF-8 only in an SMTPUTF8 transaction */
    EXPECT(p, "ORCPT=utf-8;\xc3\xbc@x", ALL | RCPT | TXN, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->orcpt_addr), "\xc3\xbc@x");
    EXPECT(p, "ORCPT=utf-8;\xc3\xbc\\x{2B}@x", ALL | RCPT | TXN, SMTP_PARAM_OK);
    assert_string_equal(vstr_str(p->orcpt_addr), "\xc3\xbc+@x");
    EXPECT(p, "ORCPT=utf-8;\xc3\xbc@x", ALL | RCPT, SMTP_PARAM_ERR_NEED_UTF8);
    EXPECT(p, "ORCPT=utf-8;\xc3@x", ALL | RCPT | TXN, SMTP_PARAM_ERR_BAD_UTF8);
    EXPECT(p, "ORCPT=utf-8;\xed\xa0\x80@x", ALL | RCPT | TXN, SMTP_PARAM_ERR_BAD_UTF8);
    /* malformed escapes */
    EXPECT(p, "ORCPT=utf-8;a+2Bb@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\x{0E9}@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\x{00E9}@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\x{0800}@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\x{D800}@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\x{DFFF}@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\x{110000}@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\x{1234567}@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\x{00}@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\x{0A}@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\x{7F}@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\x{9}@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\x{}@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\x{E9@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\x{E9", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\xE9@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\y{E9}@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;\\x{G9}@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;a\\@x", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
    EXPECT(p, "ORCPT=utf-8;a\\", ALL | RCPT, SMTP_PARAM_ERR_ORCPT);
}

static void test_generic_syntax(void **state)
{
    SMTP_PARAMS *p = *state;

    EXPECT(p, "", ALL, SMTP_PARAM_OK);
    assert_int_equal(p->seen, 0);
    EXPECT(p, "   ", ALL, SMTP_PARAM_OK);
    EXPECT(p, " SIZE=1  BODY=8BITMIME\tSMTPUTF8 ", ALL, SMTP_PARAM_OK);
    assert_int_equal(p->seen,
                     SMTP_PARAM_SEEN_SIZE | SMTP_PARAM_SEEN_BODY | SMTP_PARAM_SEEN_SMTPUTF8);
    EXPECT(p, "-SIZE=1", ALL, SMTP_PARAM_ERR_SYNTAX);
    EXPECT(p, "SI_ZE=1", ALL, SMTP_PARAM_ERR_SYNTAX);
    EXPECT(p, "=1", ALL, SMTP_PARAM_ERR_SYNTAX);
    EXPECT(p, "=", ALL, SMTP_PARAM_ERR_SYNTAX);
    EXPECT(p, "X-FOO=a=b", ALL, SMTP_PARAM_ERR_SYNTAX);
    EXPECT(p, "X-FOO=a\x01", ALL, SMTP_PARAM_ERR_SYNTAX);
    EXPECT(p, "X-FOO=a\x7f", ALL, SMTP_PARAM_ERR_SYNTAX);
    EXPECT(p, "X-FOO=a\r", ALL, SMTP_PARAM_ERR_SYNTAX);
    EXPECT(p, "X-FOO=\xc3", ALL, SMTP_PARAM_ERR_BAD_UTF8);
    EXPECT(p, "X-FOO=\xc0\xaf", ALL, SMTP_PARAM_ERR_BAD_UTF8);
    EXPECT(p, "<a@b.c>", ALL, SMTP_PARAM_ERR_SYNTAX);

    EXPECT(p, "X-FOO=bar", ALL, SMTP_PARAM_ERR_UNKNOWN);
    assert_string_equal(vstr_str(p->keyword), "X-FOO");
    EXPECT(p, "SIZE=1 X-FOO", ALL, SMTP_PARAM_ERR_UNKNOWN);
    assert_string_equal(vstr_str(p->keyword), "X-FOO");
    EXPECT(p, "9X", ALL, SMTP_PARAM_ERR_UNKNOWN);
    EXPECT(p, "FOO=\xc3\xbc", ALL, SMTP_PARAM_ERR_UNKNOWN);
    EXPECT(p, "MAIL", ALL, SMTP_PARAM_ERR_UNKNOWN);
    EXPECT(p, "SIZE=1", 0, SMTP_PARAM_ERR_UNKNOWN);

    /* NUL in the middle is a control like any other */
    assert_int_equal(smtp_param_parse(p, "SIZE=1\0", 7, ALL), SMTP_PARAM_ERR_SYNTAX);
    assert_int_equal(smtp_param_parse(p, "SIZE=1\0 BODY=7BIT", 6, ALL), SMTP_PARAM_OK);

    /* the keyword kept for the reply is bounded */
    char big[200];

    memset(big, 'K', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    EXPECT(p, big, ALL, SMTP_PARAM_ERR_UNKNOWN);
    assert_int_equal(vstr_len(p->keyword), SMTP_PARAM_KEYWORD_MAX);
    EXPECT(p, "SIZE=1", ALL, SMTP_PARAM_OK);
    assert_int_equal(vstr_len(p->keyword), 0);
}

static void test_combined(void **state)
{
    SMTP_PARAMS *p = *state;

    EXPECT(p, "SIZE=100 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159 AUTH=<>", ALL,
           SMTP_PARAM_OK);
    assert_true(p->size == 100);
    assert_int_equal(p->body, SMTP_PARAM_BODY_8BITMIME);
    assert_int_equal(p->ret, SMTP_PARAM_RET_HDRS);
    assert_string_equal(vstr_str(p->envid), "QQ314159");
    assert_string_equal(vstr_str(p->auth), "<>");
    assert_int_equal(p->seen, SMTP_PARAM_SEEN_SIZE | SMTP_PARAM_SEEN_BODY |
                                  SMTP_PARAM_SEEN_SMTPUTF8 | SMTP_PARAM_SEEN_RET |
                                  SMTP_PARAM_SEEN_ENVID | SMTP_PARAM_SEEN_AUTH);

    /* a new parse forgets the old values */
    EXPECT(p, "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b.c", ALL | RCPT, SMTP_PARAM_OK);
    assert_true(p->size == 0);
    assert_int_equal(p->body, SMTP_PARAM_BODY_NONE);
    assert_int_equal(p->ret, SMTP_PARAM_RET_NONE);
    assert_int_equal(vstr_len(p->envid), 0);
    assert_int_equal(vstr_len(p->auth), 0);
    assert_int_equal(p->notify, SMTP_PARAM_NOTIFY_SUCCESS | SMTP_PARAM_NOTIFY_FAILURE);
    assert_string_equal(vstr_str(p->orcpt_addr), "a@b.c");
    assert_int_equal(p->seen, SMTP_PARAM_SEEN_NOTIFY | SMTP_PARAM_SEEN_ORCPT);

    /* the first error wins */
    EXPECT(p, "SIZE=x BODY=FOO", ALL, SMTP_PARAM_ERR_SIZE);
    EXPECT(p, "BODY=FOO SIZE=x", ALL, SMTP_PARAM_ERR_BODY);
    EXPECT(p, "X-A SIZE=x", ALL, SMTP_PARAM_ERR_UNKNOWN);
}

static void test_reply(void **state)
{
    SMTP_REPLY r;
    VSTR *out = vstr_alloc(16);

    (void)state;
    smtp_param_reply(SMTP_PARAM_ERR_UNKNOWN, &r);
    assert_int_equal(r.code, 555);
    assert_string_equal(r.dsn, "5.5.4");
    smtp_param_reply(SMTP_PARAM_ERR_SIZE_RANGE, &r);
    assert_int_equal(r.code, 552);
    assert_string_equal(r.dsn, "5.3.4");
    smtp_param_reply(SMTP_PARAM_ERR_SYNTAX, &r);
    assert_int_equal(r.code, 501);
    assert_string_equal(r.dsn, "5.5.4");
    for (int e = SMTP_PARAM_OK; e <= SMTP_PARAM_ERR_BAD_UTF8; e++) {
        smtp_param_reply(e, &r);
        assert_int_equal(smtp_cmd_reply(out, &r), 0);
        assert_non_null(smtp_param_strerror(e));
        for (int f = e + 1; f <= SMTP_PARAM_ERR_BAD_UTF8; f++)
            assert_string_not_equal(smtp_param_strerror(e), smtp_param_strerror(f));
    }
    smtp_param_reply((enum smtp_param_err)999, &r);
    assert_int_equal(r.code, 501);
    assert_string_equal(smtp_param_strerror((enum smtp_param_err)999), "unknown error");
    vstr_free(out);
}

static void test_xtext(void **state)
{
    VSTR *enc = vstr_alloc(16);
    VSTR *dec = vstr_alloc(16);
    char all[255];

    (void)state;
    /* every octet but NUL survives a round trip; the encoding is xchar only */
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    assert_int_equal(smtp_param_xtext_encode(enc, all, sizeof(all)), 0);
    for (size_t i = 0; i < vstr_len(enc); i++) {
        unsigned char ch = (unsigned char)vstr_str(enc)[i];

        assert_true(ch >= 33 && ch <= 126 && ch != '=');
    }
    assert_int_equal(smtp_param_xtext_decode(dec, vstr_str(enc), vstr_len(enc)), 0);
    assert_int_equal(vstr_len(dec), sizeof(all));
    assert_memory_equal(vstr_str(dec), all, sizeof(all));

    vstr_reset(enc);
    assert_int_equal(smtp_param_xtext_encode(enc, "a+b=c d", 7), 0);
    assert_string_equal(vstr_str(enc), "a+2Bb+3Dc+20d");

    /* malformed */
    static const char *const bad[] = {"+",   "+4",    "+4G", "+G4",  "a+", "=",
                                      "a b", "a\x80", "+00", "++2B", "\t"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vstr_reset(dec);
        if (smtp_param_xtext_decode(dec, bad[i], strlen(bad[i])) != -1)
            fail_msg("xtext \"%s\" accepted", bad[i]);
    }
    vstr_reset(dec);
    assert_int_equal(smtp_param_xtext_decode(dec, "", 0), 0);
    assert_int_equal(vstr_len(dec), 0);
    vstr_free(enc);
    vstr_free(dec);
}

static void test_utf8_addr_codec(void **state)
{
    static const char *const addrs[] = {
        "plain@example.com",
        "a+b=c\\d@x",
        "\xc3\xbc\xe7\x94\xa8\xf0\x9f\x98\x80@\xe4\xbe\x8b.x",
        "sp ace@x",
        "\xc2\x80\xc3\xbf\xc4\x80@x",
    };
    VSTR *enc = vstr_alloc(16);
    VSTR *dec = vstr_alloc(16);

    (void)state;
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        for (int unitext = 0; unitext <= 1; unitext++) {
            vstr_reset(enc);
            vstr_reset(dec);
            assert_int_equal(smtp_param_utf8_addr_encode(enc, addrs[i], strlen(addrs[i]), unitext),
                             0);
            for (size_t j = 0; j < vstr_len(enc); j++) {
                unsigned char ch = (unsigned char)vstr_str(enc)[j];

                assert_true(ch > 32 && ch != 127 && ch != '+' && ch != '=');
                if (!unitext)
                    assert_true(ch < 128);
            }
            assert_int_equal(
                smtp_param_utf8_addr_decode(dec, vstr_str(enc), vstr_len(enc), unitext), 0);
            assert_string_equal(vstr_str(dec), addrs[i]);
        }
    }
    vstr_reset(enc);
    assert_int_equal(smtp_param_utf8_addr_encode(enc, "a+\xc3\xa9", 4, 0), 0);
    assert_string_equal(vstr_str(enc), "a\\x{2B}\\x{E9}");
    vstr_reset(enc);
    assert_int_equal(smtp_param_utf8_addr_encode(enc, "\xf0\x9f\x98\x80", 4, 0), 0);
    assert_string_equal(vstr_str(enc), "\\x{1F600}");
    vstr_reset(enc);
    assert_int_equal(smtp_param_utf8_addr_encode(enc, "a\xc3", 2, 0), -1);
    assert_int_equal(smtp_param_utf8_addr_encode(enc, "\xed\xa0\x80", 3, 1), -1);
    vstr_free(enc);
    vstr_free(dec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_smtputf8_ret_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_envid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orcpt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orcpt_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generic_syntax, setup, teardown),
        cmocka_unit_test_setup_teardown(test_combined, setup, teardown),
        cmocka_unit_test(test_reply),
        cmocka_unit_test(test_xtext),
        cmocka_unit_test(test_utf8_addr_codec),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
