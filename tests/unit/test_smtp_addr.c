/*
 * test_smtp_addr - MAIL FROM / RCPT TO path grammar, limits, UTF-8,
 * quoting, routing characters and replies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/smtp_addr.h"

#define MAIL 0
#define RCPT SMTP_ADDR_FLAG_RCPT
#define UTF8 SMTP_ADDR_FLAG_UTF8
#define LENIENT SMTP_ADDR_FLAG_LENIENT
#define LOCAL_OK SMTP_ADDR_FLAG_LOCAL_OK

typedef struct CASE {
    const char *in;
    int flags;
    enum smtp_addr_err err;
    const char *addr;   /* internal form when ok */
    const char *local;  /* NULL: not checked */
    const char *domain; /* NULL: not checked */
} CASE;

static int setup(void **state)
{
    *state = smtp_addr_alloc();
    return 0;
}

static int teardown(void **state)
{
    smtp_addr_free(*state);
    return 0;
}

static int addr_blank(int ch)
{
    return ch == ' ' || ch == '\t';
}

static void run_case(SMTP_ADDR *addr, const CASE *c, size_t len)
{
    size_t used = 0;
    enum smtp_addr_err err = smtp_addr_parse(addr, c->in, len, c->flags, &used);

    if (err != c->err)
        fail_msg("%s: got %d (%s), want %d (%s)", c->in, err, smtp_addr_strerror(err), c->err,
                 smtp_addr_strerror(c->err));
    if (err != SMTP_ADDR_OK)
        return;
    assert_string_equal(vstr_str(addr->addr), c->addr);
    if (c->local)
        assert_string_equal(vstr_str(addr->local), c->local);
    if (c->domain)
        assert_string_equal(vstr_str(addr->domain), c->domain);
    assert_true(used <= len);
    assert_true(used == len || addr_blank(c->in[used]));
}

static void run_cases(SMTP_ADDR *addr, const CASE *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        run_case(addr, cases + i, strlen(cases[i].in));
}

#define RUN(addr, cases) run_cases((addr), (cases), sizeof(cases) / sizeof((cases)[0]))

static void test_basic(void **state)
{
    static const CASE cases[] = {
        {"<a@example.com>", MAIL, SMTP_ADDR_OK, "a@example.com", "a", "example.com"},
        {"<a@example.com>", RCPT, SMTP_ADDR_OK, "a@example.com", "a", "example.com"},
        {"<first.last@sub.example.co.uk>", MAIL, 0, "first.last@sub.example.co.uk", NULL, NULL},
        {"<!#$%&'*+-/=?^_`{|}~@x.org>", MAIL, 0, "!#$%&'*+-/=?^_`{|}~@x.org", "!#$%&'*+-/=?^_`{|}~",
         "x.org"},
        {"<A.B.C@X.Y>", MAIL, 0, "A.B.C@X.Y", NULL, NULL},
        {"<a@x>", MAIL, 0, "a@x", NULL, "x"},
        {"<a@123x.org>", MAIL, 0, "a@123x.org", NULL, NULL},
        {"<a@x.o-rg>", MAIL, 0, "a@x.o-rg", NULL, NULL},
        {"<a@a-b--c.org>", MAIL, 0, "a@a-b--c.org", NULL, NULL},
        {"<a@xn--bcher-kva.example>", MAIL, 0, "a@xn--bcher-kva.example", NULL, NULL},
        {"<a@x.org> SIZE=100", MAIL, 0, "a@x.org", NULL, NULL},
        {"<a@x.org>\tSIZE=100", MAIL, 0, "a@x.org", NULL, NULL},
        {"<0@1.org>", MAIL, 0, "0@1.org", NULL, NULL},
    };
    SMTP_ADDR *addr = *state;
    size_t used;

    RUN(addr, cases);
    assert_int_equal(smtp_addr_parse(addr, "<a@x.org> SIZE=100", 18, 0, &used), SMTP_ADDR_OK);
    assert_int_equal(used, 9);
    assert_int_equal(addr->flags, 0);
}

static void test_null_and_postmaster(void **state)
{
    static const CASE cases[] = {
        {"<>", MAIL, SMTP_ADDR_OK, "", "", ""},
        {"<> SIZE=1", MAIL, SMTP_ADDR_OK, "", "", ""},
        {"<>", RCPT, SMTP_ADDR_ERR_NULL_RCPT, NULL, NULL, NULL},
        {"<postmaster>", RCPT, SMTP_ADDR_OK, "postmaster", "postmaster", ""},
        {"<PostMaster>", RCPT, SMTP_ADDR_OK, "PostMaster", "PostMaster", ""},
        {"<POSTMASTER>", RCPT | UTF8, SMTP_ADDR_OK, "POSTMASTER", NULL, ""},
        {"<postmaster>", MAIL, SMTP_ADDR_ERR_NO_DOMAIN, NULL, NULL, NULL},
        {"<\"postmaster\">", RCPT, SMTP_ADDR_ERR_NO_DOMAIN, NULL, NULL, NULL},
        {"<postmaste>", RCPT, SMTP_ADDR_ERR_NO_DOMAIN, NULL, NULL, NULL},
        {"<postmaster@x.org>", RCPT, SMTP_ADDR_OK, "postmaster@x.org", NULL, "x.org"},
        {"<user>", RCPT, SMTP_ADDR_ERR_NO_DOMAIN, NULL, NULL, NULL},
        {"<user>", RCPT | LOCAL_OK, SMTP_ADDR_OK, "user", "user", ""},
        {"<user>", MAIL | LOCAL_OK, SMTP_ADDR_OK, "user", "user", ""},
        {"<\"a b\">", RCPT | LOCAL_OK, SMTP_ADDR_OK, "a b", "a b", ""},
    };
    SMTP_ADDR *addr = *state;
    size_t used;

    RUN(addr, cases);
    assert_int_equal(smtp_addr_parse(addr, "<>", 2, MAIL, &used), SMTP_ADDR_OK);
    assert_int_equal(addr->flags, SMTP_ADDR_IS_NULL);
    assert_int_equal(smtp_addr_parse(addr, "<Postmaster>", 12, RCPT, &used), SMTP_ADDR_OK);
    assert_int_equal(addr->flags, SMTP_ADDR_IS_POSTMASTER);
    assert_int_equal(smtp_addr_parse(addr, "<user>", 6, RCPT | LOCAL_OK, &used), SMTP_ADDR_OK);
    assert_int_equal(addr->flags, 0);
}

static void test_quoted(void **state)
{
    static const CASE cases[] = {
        {"<\"a b\"@x.org>", MAIL, 0, "a b@x.org", "a b", "x.org"},
        {"<\"a\\\"b\"@x.org>", MAIL, 0, "a\"b@x.org", "a\"b", NULL},
        {"<\"a\\\\b\"@x.org>", MAIL, 0, "a\\b@x.org", "a\\b", NULL},
        {"<\"a\\ b\"@x.org>", MAIL, 0, "a b@x.org", NULL, NULL},
        {"<\"a\\xb\"@x.org>", MAIL, 0, "axb@x.org", NULL, NULL},
        {"<\"a@b\"@x.org>", MAIL, 0, "a@b@x.org", "a@b", "x.org"},
        {"<\"a>b\"@x.org>", MAIL, 0, "a>b@x.org", NULL, NULL},
        {"<\"<>\"@x.org>", MAIL, 0, "<>@x.org", NULL, NULL},
        {"<\"abc\"@x.org>", MAIL, 0, "abc@x.org", NULL, NULL},
        {"<\".a..b.\"@x.org>", MAIL, 0, ".a..b.@x.org", NULL, NULL},
        {"<\" \"@x.org>", MAIL, 0, " @x.org", NULL, NULL},
        {"<\"~!#(),:;[]\"@x.org>", MAIL, 0, "~!#(),:;[]@x.org", NULL, NULL},
        {"<\"\"@x.org>", MAIL, SMTP_ADDR_ERR_EMPTY_LOCAL, NULL, NULL, NULL},
        {"<\"a\"b@x.org>", MAIL, SMTP_ADDR_ERR_QUOTE, NULL, NULL, NULL},
        {"<a\"b\"@x.org>", MAIL, SMTP_ADDR_ERR_QUOTE, NULL, NULL, NULL},
        {"<a.\"b\"@x.org>", MAIL, SMTP_ADDR_ERR_QUOTE, NULL, NULL, NULL},
        {"<\"a\".b@x.org>", MAIL, SMTP_ADDR_ERR_QUOTE, NULL, NULL, NULL},
        {"<\"a@x.org>", MAIL, SMTP_ADDR_ERR_QUOTE, NULL, NULL, NULL},
        {"<\"a\\\"@x.org>", MAIL, SMTP_ADDR_ERR_QUOTE, NULL, NULL, NULL},
        {"<\"a\tb\"@x.org>", MAIL, SMTP_ADDR_ERR_QUOTE, NULL, NULL, NULL},
        {"<\"a\\\tb\"@x.org>", MAIL, SMTP_ADDR_ERR_QUOTE, NULL, NULL, NULL},
        {"<\"a\x7f\"@x.org>", MAIL, SMTP_ADDR_ERR_QUOTE, NULL, NULL, NULL},
        {"<\"a\\\x7f\"@x.org>", MAIL, SMTP_ADDR_ERR_QUOTE, NULL, NULL, NULL},
        {"<\"a\x01\"@x.org>", MAIL, SMTP_ADDR_ERR_QUOTE, NULL, NULL, NULL},
        {"<\"a\"", MAIL, SMTP_ADDR_ERR_BRACKET, NULL, NULL, NULL},
    };
    SMTP_ADDR *addr = *state;
    size_t used;

    RUN(addr, cases);
    assert_int_equal(smtp_addr_parse(addr, "<\"a b\"@x.org>", 13, MAIL, &used), SMTP_ADDR_OK);
    assert_int_equal(addr->flags, SMTP_ADDR_WAS_QUOTED);
    /* a CR or LF inside quotes is a control like any other */
    assert_int_equal(smtp_addr_parse(addr, "<\"a\rb\"@x.org>", 13, MAIL, &used),
                     SMTP_ADDR_ERR_QUOTE);
    assert_int_equal(smtp_addr_parse(addr, "<\"a\nb\"@x.org>", 13, MAIL, &used),
                     SMTP_ADDR_ERR_QUOTE);
    assert_int_equal(smtp_addr_parse(addr, "<\"a\0b\"@x.org>", 13, MAIL, &used),
                     SMTP_ADDR_ERR_QUOTE);
}

static void test_local_errors(void **state)
{
    static const CASE cases[] = {
        {"<.a@x.org>", MAIL, SMTP_ADDR_ERR_LOCAL, NULL, NULL, NULL},
        {"<a.@x.org>", MAIL, SMTP_ADDR_ERR_LOCAL, NULL, NULL, NULL},
        {"<a..b@x.org>", MAIL, SMTP_ADDR_ERR_LOCAL, NULL, NULL, NULL},
        {"<.@x.org>", MAIL, SMTP_ADDR_ERR_LOCAL, NULL, NULL, NULL},
        {"<a b@x.org>", MAIL, SMTP_ADDR_ERR_LOCAL, NULL, NULL, NULL},
        {"<a(b)@x.org>", MAIL, SMTP_ADDR_ERR_LOCAL, NULL, NULL, NULL},
        {"<a,b@x.org>", MAIL, SMTP_ADDR_ERR_LOCAL, NULL, NULL, NULL},
        {"<a:b@x.org>", MAIL, SMTP_ADDR_ERR_LOCAL, NULL, NULL, NULL},
        {"<a;b@x.org>", MAIL, SMTP_ADDR_ERR_LOCAL, NULL, NULL, NULL},
        {"<a[b]@x.org>", MAIL, SMTP_ADDR_ERR_LOCAL, NULL, NULL, NULL},
        {"<a\\b@x.org>", MAIL, SMTP_ADDR_ERR_LOCAL, NULL, NULL, NULL},
        {"<a\tb@x.org>", MAIL, SMTP_ADDR_ERR_LOCAL, NULL, NULL, NULL},
        {"<a\x7f@x.org>", MAIL, SMTP_ADDR_ERR_LOCAL, NULL, NULL, NULL},
        {"<a\x01@x.org>", MAIL, SMTP_ADDR_ERR_LOCAL, NULL, NULL, NULL},
        {"<@x.org>", MAIL, SMTP_ADDR_ERR_ROUTE, NULL, NULL, NULL},
    };
    SMTP_ADDR *addr = *state;
    size_t used;

    RUN(addr, cases);
    assert_int_equal(smtp_addr_parse(addr, "<a\0b@x.org>", 11, MAIL, &used), SMTP_ADDR_ERR_LOCAL);
    assert_int_equal(smtp_addr_parse(addr, "<a\rb@x.org>", 11, MAIL, &used), SMTP_ADDR_ERR_LOCAL);
    assert_int_equal(smtp_addr_parse(addr, "<a@x.org\n>", 10, MAIL, &used), SMTP_ADDR_ERR_DOMAIN);
}

static void test_domains(void **state)
{
    static const CASE cases[] = {
        {"<a@>", MAIL, SMTP_ADDR_ERR_DOMAIN, NULL, NULL, NULL},
        {"<a@-x.org>", MAIL, SMTP_ADDR_ERR_DOMAIN, NULL, NULL, NULL},
        {"<a@x-.org>", MAIL, SMTP_ADDR_ERR_DOMAIN, NULL, NULL, NULL},
        {"<a@x.-org>", MAIL, SMTP_ADDR_ERR_DOMAIN, NULL, NULL, NULL},
        {"<a@x..org>", MAIL, SMTP_ADDR_ERR_DOMAIN, NULL, NULL, NULL},
        {"<a@.x.org>", MAIL, SMTP_ADDR_ERR_DOMAIN, NULL, NULL, NULL},
        {"<a@x.org.>", MAIL, SMTP_ADDR_ERR_DOMAIN, NULL, NULL, NULL},
        {"<a@.>", MAIL, SMTP_ADDR_ERR_DOMAIN, NULL, NULL, NULL},
        {"<a@x_y.org>", MAIL, SMTP_ADDR_ERR_DOMAIN, NULL, NULL, NULL},
        {"<a@x y.org>", MAIL, SMTP_ADDR_ERR_DOMAIN, NULL, NULL, NULL},
        {"<a@x.org@y.org>", MAIL, SMTP_ADDR_ERR_DOMAIN, NULL, NULL, NULL},
        {"<a@x.org:25>", MAIL, SMTP_ADDR_ERR_DOMAIN, NULL, NULL, NULL},
        {"<a@x.org\">", MAIL, SMTP_ADDR_ERR_QUOTE, NULL, NULL, NULL},
        {"<a@1.2.3.4>", MAIL, SMTP_ADDR_ERR_NUMERIC, NULL, NULL, NULL},
        {"<a@x.123>", MAIL, SMTP_ADDR_ERR_NUMERIC, NULL, NULL, NULL},
        {"<a@123>", MAIL, SMTP_ADDR_ERR_NUMERIC, NULL, NULL, NULL},
        {"<a@123.x>", MAIL, SMTP_ADDR_OK, "a@123.x", NULL, NULL},
        {"<a@x.1a>", MAIL, SMTP_ADDR_OK, "a@x.1a", NULL, NULL},
    };
    SMTP_ADDR *addr = *state;

    RUN(addr, cases);
}

static void test_literals(void **state)
{
    static const CASE cases[] = {
        {"<a@[1.2.3.4]>", MAIL, 0, "a@[1.2.3.4]", NULL, "[1.2.3.4]"},
        {"<a@[255.255.255.255]>", MAIL, 0, "a@[255.255.255.255]", NULL, NULL},
        {"<a@[0.0.0.0]>", MAIL, 0, "a@[0.0.0.0]", NULL, NULL},
        {"<a@[001.02.3.4]>", MAIL, 0, "a@[001.02.3.4]", NULL, NULL},
        {"<a@[256.1.1.1]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[1.2.3]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[1.2.3.4.5]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[1234.1.1.1]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[0001.1.1.1]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[1..2.3]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[1.2.3.4.]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[.1.2.3]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[1.2.3.4>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[1.2.3.4]x>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[ 1.2.3.4]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[IPv6:::1]>", MAIL, 0, "a@[IPv6:::1]", NULL, "[IPv6:::1]"},
        {"<a@[ipv6:2001:db8::1]>", MAIL, 0, "a@[ipv6:2001:db8::1]", NULL, NULL},
        {"<a@[IPv6:2001:db8:0:0:0:0:0:1]>", MAIL, 0, "a@[IPv6:2001:db8:0:0:0:0:0:1]", NULL, NULL},
        {"<a@[IPv6:::ffff:1.2.3.4]>", MAIL, 0, "a@[IPv6:::ffff:1.2.3.4]", NULL, NULL},
        {"<a@[IPv6:2001:db8:::1]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[IPv6:]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[IPv6:gggg::1]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[IPv6:1.2.3.4]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[IPv6:1:2:3:4:5:6:7:8:9]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[IPv6:0000:0000:0000:0000:0000:0000:0000:0000:0000]>", MAIL, SMTP_ADDR_ERR_LITERAL,
         NULL, NULL, NULL},
        {"<a@[IPv6:::1%eth0]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[x-tag:some-content]>", MAIL, 0, "a@[x-tag:some-content]", NULL, NULL},
        {"<a@[X400:c=us;a=;p=x]>", MAIL, 0, "a@[X400:c=us;a=;p=x]", NULL, NULL},
        {"<a@[tag:!~]>", MAIL, 0, "a@[tag:!~]", NULL, NULL},
        {"<a@[-tag1:x]>", MAIL, 0, "a@[-tag1:x]", NULL, NULL},
        {"<a@[tag:]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[:x]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[tag-:x]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[ta_g:x]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[tag:a[b]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[tag:a]b]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[tag:a\\b]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[tag:a b]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[tag]>", MAIL, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
        {"<a@[1.2.3.4]>", MAIL | UTF8, 0, "a@[1.2.3.4]", NULL, NULL},
        {"<a@[tag:\xc3\xa9]>", MAIL | UTF8, SMTP_ADDR_ERR_LITERAL, NULL, NULL, NULL},
    };
    SMTP_ADDR *addr = *state;
    size_t used;

    RUN(addr, cases);
    assert_int_equal(smtp_addr_parse(addr, "<a@[1.2.3.4]>", 13, MAIL, &used), SMTP_ADDR_OK);
    assert_int_equal(addr->flags, SMTP_ADDR_LIT_IPV4);
    assert_int_equal(smtp_addr_parse(addr, "<a@[IPv6:::1]>", 14, MAIL, &used), SMTP_ADDR_OK);
    assert_int_equal(addr->flags, SMTP_ADDR_LIT_IPV6);
    assert_int_equal(smtp_addr_parse(addr, "<a@[t:x]>", 9, MAIL, &used), SMTP_ADDR_OK);
    assert_int_equal(addr->flags, SMTP_ADDR_LIT_GENERAL);
}

static void test_source_route(void **state)
{
    static const CASE cases[] = {
        {"<@a.org,@b.org:user@c.org>", MAIL, 0, "user@c.org", "user", "c.org"},
        {"<@a.org:user@c.org>", RCPT, 0, "user@c.org", NULL, NULL},
        {"<@a.org:\"x y\"@c.org>", RCPT, 0, "x y@c.org", NULL, NULL},
        {"<@a.org:postmaster>", RCPT, 0, "postmaster", NULL, NULL},
        {"<@a.org>", MAIL, SMTP_ADDR_ERR_ROUTE, NULL, NULL, NULL},
        {"<@a.org,user@c.org>", MAIL, SMTP_ADDR_ERR_ROUTE, NULL, NULL, NULL},
        {"<@:user@c.org>", MAIL, SMTP_ADDR_ERR_ROUTE, NULL, NULL, NULL},
        {"<@a.org,@:u@c.org>", MAIL, SMTP_ADDR_ERR_ROUTE, NULL, NULL, NULL},
        {"<@a..org:u@c.org>", MAIL, SMTP_ADDR_ERR_ROUTE, NULL, NULL, NULL},
        {"<@a.org:>", MAIL, SMTP_ADDR_ERR_ROUTE, NULL, NULL, NULL},
        {"<@a.org,b.org:u@c.org>", MAIL, SMTP_ADDR_ERR_ROUTE, NULL, NULL, NULL},
        {"<@a.org,,@b.org:u@c.org>", MAIL, SMTP_ADDR_ERR_ROUTE, NULL, NULL, NULL},
        {"<@[1.2.3.4]:u@c.org>", MAIL, SMTP_ADDR_ERR_ROUTE, NULL, NULL, NULL},
        {"<@a.org:@b.org:u@c.org>", MAIL, SMTP_ADDR_ERR_LOCAL, NULL, NULL, NULL},
        {"<@a.org:u>", MAIL, SMTP_ADDR_ERR_NO_DOMAIN, NULL, NULL, NULL},
        {"<@b\xc3\xbc.org:u@c.org>", MAIL, SMTP_ADDR_ERR_NEED_SMTPUTF8, NULL, NULL, NULL},
        {"<@b\xc3\xbc.org:u@c.org>", MAIL | UTF8, 0, "u@c.org", NULL, NULL},
        {"<@b\xc3.org:u@c.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
    };
    SMTP_ADDR *addr = *state;
    size_t used;

    RUN(addr, cases);
    assert_int_equal(smtp_addr_parse(addr, "<@a.org:u@c.org>", 16, MAIL, &used), SMTP_ADDR_OK);
    assert_int_equal(addr->flags, SMTP_ADDR_HAD_ROUTE);
}

static void test_brackets(void **state)
{
    static const CASE cases[] = {
        {"a@x.org", MAIL, SMTP_ADDR_ERR_BRACKET, NULL, NULL, NULL},
        {"a@x.org", MAIL | LENIENT, 0, "a@x.org", NULL, NULL},
        {"a@x.org SIZE=10", MAIL | LENIENT, 0, "a@x.org", NULL, NULL},
        {"\"a b\"@x.org SIZE=10", MAIL | LENIENT, 0, "a b@x.org", NULL, NULL},
        {"<a@x.org>", MAIL | LENIENT, 0, "a@x.org", NULL, NULL},
        {"postmaster", RCPT | LENIENT, 0, "postmaster", NULL, NULL},
        {"a@x.org>", MAIL | LENIENT, SMTP_ADDR_ERR_DOMAIN, NULL, NULL, NULL},
        {"\"a b@x.org", MAIL | LENIENT, SMTP_ADDR_ERR_QUOTE, NULL, NULL, NULL},
        {"<a@x.org", MAIL, SMTP_ADDR_ERR_BRACKET, NULL, NULL, NULL},
        {"<a@x.org", MAIL | LENIENT, SMTP_ADDR_ERR_BRACKET, NULL, NULL, NULL},
        {"<a@x.org>>", MAIL, SMTP_ADDR_ERR_TRAILING, NULL, NULL, NULL},
        {"<a@x.org>x", MAIL, SMTP_ADDR_ERR_TRAILING, NULL, NULL, NULL},
        {"<a@x.org><b@y.org>", MAIL, SMTP_ADDR_ERR_TRAILING, NULL, NULL, NULL},
        {"<<a@x.org>>", MAIL, SMTP_ADDR_ERR_BRACKET, NULL, NULL, NULL},
        {"<a<b@x.org>", MAIL, SMTP_ADDR_ERR_BRACKET, NULL, NULL, NULL},
        {"<", MAIL, SMTP_ADDR_ERR_BRACKET, NULL, NULL, NULL},
        {">", MAIL, SMTP_ADDR_ERR_BRACKET, NULL, NULL, NULL},
        {"", MAIL, SMTP_ADDR_ERR_EMPTY, NULL, NULL, NULL},
        {"", MAIL | LENIENT, SMTP_ADDR_ERR_EMPTY, NULL, NULL, NULL},
        {" <a@x.org>", MAIL, SMTP_ADDR_ERR_EMPTY, NULL, NULL, NULL},
        {"Name <a@x.org>", MAIL, SMTP_ADDR_ERR_BRACKET, NULL, NULL, NULL},
        {"Name <a@x.org>", MAIL | LENIENT, SMTP_ADDR_ERR_NO_DOMAIN, NULL, NULL, NULL},
    };
    SMTP_ADDR *addr = *state;
    size_t used;

    RUN(addr, cases);
    assert_int_equal(smtp_addr_parse(addr, "a@x.org SIZE=10", 15, MAIL | LENIENT, &used),
                     SMTP_ADDR_OK);
    assert_int_equal(used, 7);
    assert_int_equal(addr->flags, SMTP_ADDR_NO_BRACKETS);
}

/* build "<" local "@" domain ">" with the given lengths */
static char *make_path(size_t local_len, const char *domain)
{
    static char buf[1024];

    size_t dlen = strlen(domain);

    assert_true(local_len + dlen + 4 <= sizeof(buf));
    buf[0] = '<';
    memset(buf + 1, 'l', local_len);
    buf[1 + local_len] = '@';
    memcpy(buf + 2 + local_len, domain, dlen);
    memcpy(buf + 2 + local_len + dlen, ">", 2);
    return buf;
}

/* make_domain - labels of 9 letters and a final label making exactly len */
static const char *make_domain(size_t len)
{
    static char buf[1024];
    size_t i = 0;

    while (len - i > 10) {
        memcpy(buf + i, "abcdefghi.", 10);
        i += 10;
    }
    memset(buf + i, 'z', len - i);
    buf[len] = 0;
    return buf;
}

static void expect_err(SMTP_ADDR *addr, const char *in, int flags, enum smtp_addr_err want)
{
    size_t used;
    enum smtp_addr_err err = smtp_addr_parse(addr, in, strlen(in), flags, &used);

    if (err != want)
        fail_msg("%.60s...(%zu): got %s, want %s", in, strlen(in), smtp_addr_strerror(err),
                 smtp_addr_strerror(want));
}

static void test_limits(void **state)
{
    SMTP_ADDR *addr = *state;
    char label[80];
    char quoted[80];
    char path[1100];

    /* local part: 64 octets as sent, quotes included */
    expect_err(addr, make_path(64, "x.org"), MAIL, SMTP_ADDR_OK);
    assert_int_equal(vstr_len(addr->local), 64);
    expect_err(addr, make_path(65, "x.org"), MAIL, SMTP_ADDR_ERR_LOCAL_LONG);
    memset(quoted, 'q', sizeof(quoted));
    quoted[0] = '<';
    quoted[1] = '"';
    memcpy(quoted + 1 + 63, "\"@x.org>", 9);
    expect_err(addr, quoted, MAIL, SMTP_ADDR_OK);
    assert_int_equal(vstr_len(addr->local), 62);
    memset(quoted, 'q', sizeof(quoted));
    quoted[0] = '<';
    quoted[1] = '"';
    memcpy(quoted + 1 + 64, "\"@x.org>", 9);
    expect_err(addr, quoted, MAIL, SMTP_ADDR_ERR_LOCAL_LONG);

    /* label: 63 octets */
    memset(label, 'd', 63);
    memcpy(label + 63, ".org", 5);
    expect_err(addr, make_path(1, label), MAIL, SMTP_ADDR_OK);
    memset(label, 'd', 64);
    memcpy(label + 64, ".org", 5);
    expect_err(addr, make_path(1, label), MAIL, SMTP_ADDR_ERR_LABEL_LONG);

    /* path: 256 octets with the brackets: "<l@" + 252 + ">" */
    expect_err(addr, make_path(1, make_domain(252)), MAIL, SMTP_ADDR_OK);
    assert_int_equal(vstr_len(addr->domain), 252);
    expect_err(addr, make_path(1, make_domain(253)), MAIL, SMTP_ADDR_ERR_PATH_LONG);
    expect_err(addr, make_path(64, make_domain(189)), MAIL, SMTP_ADDR_OK);
    expect_err(addr, make_path(64, make_domain(190)), MAIL, SMTP_ADDR_ERR_PATH_LONG);
    expect_err(addr, make_path(1, make_domain(300)), RCPT, SMTP_ADDR_ERR_PATH_LONG);

    /* lenient: the limit counts the brackets that were not sent */
    snprintf(path, sizeof(path), "l@%s", make_domain(252));
    expect_err(addr, path, MAIL | LENIENT, SMTP_ADDR_OK);
    snprintf(path, sizeof(path), "l@%s", make_domain(253));
    expect_err(addr, path, MAIL | LENIENT, SMTP_ADDR_ERR_PATH_LONG);

    /* a source route counts toward the path */
    snprintf(path, sizeof(path), "<@%s:l@x.org>", make_domain(245));
    expect_err(addr, path, MAIL, SMTP_ADDR_OK);
    snprintf(path, sizeof(path), "<@%s:l@x.org>", make_domain(246));
    expect_err(addr, path, MAIL, SMTP_ADDR_ERR_PATH_LONG);
}

static void test_utf8(void **state)
{
    static const CASE cases[] = {
        {"<\xc3\xbc@x.org>", MAIL, SMTP_ADDR_ERR_NEED_SMTPUTF8, NULL, NULL, NULL},
        {"<\xc3\xbc@x.org>", MAIL | UTF8, 0, "\xc3\xbc@x.org", "\xc3\xbc", NULL},
        {"<a@b\xc3\xbc"
         "cher.de>",
         RCPT, SMTP_ADDR_ERR_NEED_SMTPUTF8, NULL, NULL, NULL},
        {"<a@b\xc3\xbc"
         "cher.de>",
         RCPT | UTF8, 0,
         "a@b\xc3\xbc"
         "cher.de",
         NULL, NULL},
        {"<\"\xc3\xbc x\"@x.org>", MAIL, SMTP_ADDR_ERR_NEED_SMTPUTF8, NULL, NULL, NULL},
        {"<\"\xc3\xbc x\"@x.org>", MAIL | UTF8, 0, "\xc3\xbc x@x.org", NULL, NULL},
        {"<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>",
         RCPT | UTF8, 0,
         "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", NULL, NULL},
        {"<\xf0\x9f\x98\x80@x.org>", MAIL | UTF8, 0, "\xf0\x9f\x98\x80@x.org", NULL, NULL},
        {"<\xf4\x8f\xbf\xbf@x.org>", MAIL | UTF8, 0, "\xf4\x8f\xbf\xbf@x.org", NULL, NULL},
        {"<\xef\xbf\xbf@x.org>", MAIL | UTF8, 0, "\xef\xbf\xbf@x.org", NULL, NULL},
        /* malformed UTF-8 is a syntax error, with or without SMTPUTF8 */
        {"<\xc0\xaf@x.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<\xc1\xbf@x.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<\xe0\x80\xaf@x.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<\xf0\x80\x80\xaf@x.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<\xed\xa0\x80@x.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<\xed\xbf\xbf@x.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<\xf4\x90\x80\x80@x.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<\xf5\x80\x80\x80@x.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<\xff@x.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<\x80@x.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<a\xc3@x.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<a\xe2\x82@x.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<a\xc3\xc3\xbc@x.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<\xc0\xaf@x.org>", MAIL, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<\"\xed\xa0\x80\"@x.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<a@x\xc3.org>", MAIL | UTF8, SMTP_ADDR_ERR_BAD_UTF8, NULL, NULL, NULL},
        {"<a@x.\xc3\xbc>", MAIL | UTF8, 0, "a@x.\xc3\xbc", NULL, NULL},
        {"<a@-\xc3\xbc.org>", MAIL | UTF8, SMTP_ADDR_ERR_DOMAIN, NULL, NULL, NULL},
        /* a quoted-pair is ASCII only */
        {"<\"\\\xc3\xbc\"@x.org>", MAIL | UTF8, SMTP_ADDR_ERR_QUOTE, NULL, NULL, NULL},
    };
    SMTP_ADDR *addr = *state;
    size_t used;

    RUN(addr, cases);
    assert_int_equal(smtp_addr_parse(addr, "<\xc3\xbc@x.org>", 10, UTF8, &used), SMTP_ADDR_OK);
    assert_int_equal(addr->flags, SMTP_ADDR_HAS_UTF8);

    /* smtp_addr_utf8_seq on its own */
    assert_int_equal(smtp_addr_utf8_seq((const unsigned char *)"a", 1), 1);
    assert_int_equal(smtp_addr_utf8_seq((const unsigned char *)"\xc2\x80", 2), 2);
    assert_int_equal(smtp_addr_utf8_seq((const unsigned char *)"\xdf\xbf", 2), 2);
    assert_int_equal(smtp_addr_utf8_seq((const unsigned char *)"\xe0\xa0\x80", 3), 3);
    assert_int_equal(smtp_addr_utf8_seq((const unsigned char *)"\xed\x9f\xbf", 3), 3);
    assert_int_equal(smtp_addr_utf8_seq((const unsigned char *)"\xee\x80\x80", 3), 3);
    assert_int_equal(smtp_addr_utf8_seq((const unsigned char *)"\xf0\x90\x80\x80", 4), 4);
    assert_int_equal(smtp_addr_utf8_seq((const unsigned char *)"\xf0\x90\x80\x80", 3), 0);
    assert_int_equal(smtp_addr_utf8_seq((const unsigned char *)"\xe2\x82\x41", 3), 0);
    assert_int_equal(smtp_addr_utf8_seq((const unsigned char *)"", 0), 0);
    assert_true(smtp_addr_utf8_valid("plain ascii", 11));
    assert_true(smtp_addr_utf8_valid("caf\xc3\xa9", 5));
    assert_false(smtp_addr_utf8_valid("caf\xc3", 4));
    assert_true(smtp_addr_utf8_valid("", 0));
}

static void test_reply(void **state)
{
    SMTP_REPLY r;

    (void)state;
    smtp_addr_reply(SMTP_ADDR_ERR_LOCAL, MAIL, &r);
    assert_int_equal(r.code, 501);
    assert_string_equal(r.dsn, "5.1.7");
    assert_string_equal(r.text, "Bad sender address syntax");
    smtp_addr_reply(SMTP_ADDR_ERR_DOMAIN, RCPT, &r);
    assert_int_equal(r.code, 501);
    assert_string_equal(r.dsn, "5.1.3");
    assert_string_equal(r.text, "Bad recipient address syntax");
    smtp_addr_reply(SMTP_ADDR_ERR_NULL_RCPT, RCPT, &r);
    assert_int_equal(r.code, 501);
    assert_string_equal(r.dsn, "5.1.3");
    smtp_addr_reply(SMTP_ADDR_ERR_NEED_SMTPUTF8, RCPT | UTF8, &r);
    assert_int_equal(r.code, 553);
    assert_string_equal(r.dsn, "5.6.7");
    smtp_addr_reply(SMTP_ADDR_ERR_PATH_LONG, MAIL, &r);
    assert_int_equal(r.code, 501);
    assert_string_equal(r.dsn, "5.1.7");
    assert_string_equal(r.text, "Sender address too long");
    smtp_addr_reply(SMTP_ADDR_ERR_LOCAL_LONG, RCPT, &r);
    assert_string_equal(r.text, "Recipient address too long");
    smtp_addr_reply(SMTP_ADDR_OK, MAIL, &r);
    assert_int_equal(r.code, 250);
    assert_string_equal(r.dsn, "2.1.0");
    smtp_addr_reply(SMTP_ADDR_OK, RCPT, &r);
    assert_string_equal(r.dsn, "2.1.5");

    /* every error has its own reason, and a valid reply */
    for (int e = SMTP_ADDR_OK; e <= SMTP_ADDR_ERR_NEED_SMTPUTF8; e++) {
        VSTR *out = vstr_alloc(16);

        for (int f = e + 1; f <= SMTP_ADDR_ERR_NEED_SMTPUTF8; f++)
            assert_string_not_equal(smtp_addr_strerror(e), smtp_addr_strerror(f));
        smtp_addr_reply(e, RCPT, &r);
        assert_int_equal(smtp_cmd_reply(out, &r), 0);
        smtp_addr_reply(e, MAIL, &r);
        assert_int_equal(smtp_cmd_reply(out, &r), 0);
        vstr_free(out);
    }
    assert_string_equal(smtp_addr_strerror((enum smtp_addr_err)999), "unknown error");
}

static void expect_external(const char *internal, int ret, const char *want)
{
    VSTR *out = vstr_alloc(16);

    assert_int_equal(smtp_addr_external(out, internal, strlen(internal)), ret);
    if (ret == 0)
        assert_string_equal(vstr_str(out), want);
    vstr_free(out);
}

static void test_external(void **state)
{
    static const char *const internals[] = {
        "a@x.org",    "a b@x.org",        "a\"b@x.org",     "a\\b@x.org",    "a@b@x.org",
        ".a@x.org",   "a.@x.org",         "a..b@x.org",     "<>@x.org",      "a(b)@x.org",
        "~!#$@x.org", "first.last@x.org", "\xc3\xbc@x.org", "a b@[1.2.3.4]", " @x.org",
    };
    SMTP_ADDR *addr = *state;
    VSTR *ext = vstr_alloc(16);
    VSTR *path = vstr_alloc(16);
    size_t used;

    expect_external("a@x.org", 0, "a@x.org");
    expect_external("a b@x.org", 0, "\"a b\"@x.org");
    expect_external("a\"b@x.org", 0, "\"a\\\"b\"@x.org");
    expect_external("a\\b@x.org", 0, "\"a\\\\b\"@x.org");
    expect_external("a@b@x.org", 0, "\"a@b\"@x.org");
    expect_external(".a@x.org", 0, "\".a\"@x.org");
    expect_external("a.@x.org", 0, "\"a.\"@x.org");
    expect_external("a..b@x.org", 0, "\"a..b\"@x.org");
    expect_external("@x.org", 0, "\"\"@x.org");
    expect_external("", 0, "");
    expect_external("postmaster", 0, "postmaster");
    expect_external("a b", 0, "\"a b\"");
    expect_external("\xc3\xbc@x.org", 0, "\xc3\xbc@x.org");
    expect_external("a\rb@x.org", -1, NULL);
    expect_external("a\nb@x.org", -1, NULL);
    expect_external("a\tb@x.org", -1, NULL);
    expect_external("a@x\r\n.org", -1, NULL);

    assert_false(smtp_addr_local_needs_quote("a.b", 3));
    assert_true(smtp_addr_local_needs_quote("", 0));
    assert_true(smtp_addr_local_needs_quote("a b", 3));

    /* external form parses back to the same internal form */
    for (size_t i = 0; i < sizeof(internals) / sizeof(internals[0]); i++) {
        assert_int_equal(smtp_addr_external(ext, internals[i], strlen(internals[i])), 0);
        vstr_sprintf(path, "<%s>", vstr_str(ext));
        assert_int_equal(smtp_addr_parse(addr, vstr_str(path), vstr_len(path), RCPT | UTF8, &used),
                         0);
        assert_string_equal(vstr_str(addr->addr), internals[i]);
    }
    vstr_free(ext);
    vstr_free(path);
}

static void test_routing_and_case(void **state)
{
    SMTP_ADDR *addr = *state;
    size_t used;

    assert_int_equal(smtp_addr_routing("user", 4), 0);
    assert_int_equal(smtp_addr_routing("user%host", 9), SMTP_ADDR_ROUTE_PERCENT);
    assert_int_equal(smtp_addr_routing("host!user", 9), SMTP_ADDR_ROUTE_BANG);
    assert_int_equal(smtp_addr_routing("a!b%c", 5), SMTP_ADDR_ROUTE_BANG | SMTP_ADDR_ROUTE_PERCENT);
    assert_int_equal(smtp_addr_routing("a@b", 3), SMTP_ADDR_ROUTE_AT);

    assert_int_equal(smtp_addr_parse(addr, "<\"u@v\"@x.org>", 13, RCPT, &used), 0);
    assert_int_equal(smtp_addr_routing(vstr_str(addr->local), vstr_len(addr->local)),
                     SMTP_ADDR_ROUTE_AT);
    assert_int_equal(smtp_addr_parse(addr, "<u%v@x.org>", 11, RCPT, &used), 0);
    assert_int_equal(smtp_addr_routing(vstr_str(addr->local), vstr_len(addr->local)),
                     SMTP_ADDR_ROUTE_PERCENT);

    assert_int_equal(smtp_addr_parse(addr, "<Foo.Bar@Sub.EXAMPLE.Org>", 25, RCPT, &used), 0);
    smtp_addr_lower_domain(addr);
    assert_string_equal(vstr_str(addr->addr), "Foo.Bar@sub.example.org");
    assert_string_equal(vstr_str(addr->local), "Foo.Bar");
    assert_string_equal(vstr_str(addr->domain), "sub.example.org");
    assert_int_equal(smtp_addr_parse(addr, "<\"A@B\"@X.ORG>", 13, RCPT, &used), 0);
    smtp_addr_lower_domain(addr);
    assert_string_equal(vstr_str(addr->addr), "A@B@x.org");
    assert_int_equal(smtp_addr_parse(addr, "<PostMaster>", 12, RCPT, &used), 0);
    smtp_addr_lower_domain(addr);
    assert_string_equal(vstr_str(addr->addr), "PostMaster");
    /* The address literal tag keeps its RFC 5321 spelling; the address folds. */
    assert_int_equal(smtp_addr_parse(addr, "<U@[ipv6:2001:DB8::1]>", 22, RCPT, &used), 0);
    smtp_addr_lower_domain(addr);
    assert_string_equal(vstr_str(addr->addr), "U@[IPv6:2001:db8::1]");
    assert_string_equal(vstr_str(addr->domain), "[IPv6:2001:db8::1]");
    assert_int_equal(smtp_addr_parse(addr, "<U@[Tag:X]>", 11, RCPT, &used), 0);
    smtp_addr_lower_domain(addr);
    assert_string_equal(vstr_str(addr->addr), "U@[tag:x]");
}

/* every octet in every position of a simple address: never a crash, and
   the only accepted octets are the ones the grammar allows */
static void test_every_octet(void **state)
{
    SMTP_ADDR *addr = *state;
    char buf[16];
    size_t used;

    for (int pos = 1; pos <= 5; pos++) {
        for (int ch = 0; ch < 256; ch++) {
            memcpy(buf, "<ab@cd.ef>", 11);
            buf[pos] = (char)ch;
            enum smtp_addr_err err = smtp_addr_parse(addr, buf, 10, RCPT | UTF8, &used);

            if (err == SMTP_ADDR_OK)
                assert_true(ch < 0x80);
            if (ch >= 0x80)
                assert_int_equal(err, SMTP_ADDR_ERR_BAD_UTF8);
            if (ch < 0x20 || ch == 0x7f)
                assert_int_not_equal(err, SMTP_ADDR_OK);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_and_postmaster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quoted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_domains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_literals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_brackets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8, setup, teardown),
        cmocka_unit_test(test_reply),
        cmocka_unit_test_setup_teardown(test_external, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routing_and_case, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_octet, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
