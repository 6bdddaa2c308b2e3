/*
 * test_match_list - unit tests for lib/mail/match_list.c (mynetworks-style
 * address lists, mydestination / relay_domains domain lists) and
 * lib/mail/dict_unix.c (unix:passwd.byname, unix:group.byname, the proxy:
 * prefix), including malformed patterns and keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/dict.h"
#include "mail/match_list.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

static char test_dir[256];

/* write_file - a file in the test directory; returns its path (static buffer) */
static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", test_dir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_true(fputs(text, fp) >= 0);
    assert_int_equal(fclose(fp), 0);
    return path;
}

/* must_list - match_list_new that the test requires to work */
static MATCH_LIST *must_list(const char *value, int flags)
{
    VSTR *why = vstr_alloc(100);
    MATCH_LIST *ml = match_list_new("test_list", value, flags, why);

    if (ml == NULL)
        fail_msg("match_list_new(\"%s\"): %s", value, vstr_str(why));
    vstr_free(why);
    return ml;
}

/* bad_list - match_list_new must refuse value; the reason must mention want */
static void bad_list(const char *value, int flags, const char *want)
{
    VSTR *why = vstr_alloc(100);
    MATCH_LIST *ml = match_list_new("test_list", value, flags, why);

    if (ml != NULL)
        fail_msg("match_list_new(\"%s\") accepted a bad list", value);
    if (strstr(vstr_str(why), want) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\"", vstr_str(why), want);
    assert_non_null(strstr(vstr_str(why), "test_list"));
    vstr_free(why);
}

static void test_addr_networks(void **unused)
{
    (void)unused;
    MATCH_LIST *ml = must_list("127.0.0.0/8, [::1]/128 192.0.2.7\t2001:db8::/32 "
                               "[198.51.100.0]/24",
                               MATCH_LIST_ADDR);

    assert_int_equal(match_list_count(ml), 5);
    assert_int_equal(match_list_addr(ml, "127.0.0.1"), 1);
    assert_int_equal(match_list_addr(ml, "127.255.255.255"), 1);
    assert_int_equal(match_list_addr(ml, "128.0.0.1"), 0);
    assert_int_equal(match_list_addr(ml, "::1"), 1);
    assert_int_equal(match_list_addr(ml, "[::1]"), 1);
    assert_int_equal(match_list_addr(ml, "::2"), 0);
    assert_int_equal(match_list_addr(ml, "192.0.2.7"), 1);
    assert_int_equal(match_list_addr(ml, "192.0.2.8"), 0);
    assert_int_equal(match_list_addr(ml, "2001:db8:ffff::1"), 1);
    assert_int_equal(match_list_addr(ml, "2001:db9::1"), 0);
    assert_int_equal(match_list_addr(ml, "198.51.100.200"), 1);
    /* IPv4-mapped IPv6 is the IPv4 client it stands for. */
    assert_int_equal(match_list_addr(ml, "::ffff:127.0.0.5"), 1);
    assert_int_equal(match_list_addr(ml, "::ffff:10.0.0.1"), 0);
    /* Not addresses: never a match, never a crash. */
    assert_int_equal(match_list_addr(ml, ""), 0);
    assert_int_equal(match_list_addr(ml, "localhost"), 0);
    assert_int_equal(match_list_addr(ml, "[]"), 0);
    assert_int_equal(match_list_addr(ml, "["), 0);
    assert_int_equal(match_list_addr(ml, "127.0.0.1/8"), 0);
    assert_int_equal(match_list_addr(ml, "1111111111111111111111111111111111111111111111111111"
                                         "11111111111111111111111111111111111"),
                     0);
    match_list_free(ml);
}

static void test_addr_negation_order_and_empty(void **unused)
{
    (void)unused;
    MATCH_LIST *ml = must_list("!192.0.2.1 192.0.2.0/24 !!10.0.0.1", MATCH_LIST_ADDR);

    assert_int_equal(match_list_addr(ml, "192.0.2.1"), 0); /* first match wins */
    assert_int_equal(match_list_addr(ml, "192.0.2.2"), 1);
    assert_int_equal(match_list_addr(ml, "10.0.0.1"), 1); /* double negation */
    match_list_free(ml);

    ml = must_list("", MATCH_LIST_ADDR);
    assert_int_equal(match_list_count(ml), 0);
    assert_int_equal(match_list_addr(ml, "127.0.0.1"), 0);
    match_list_free(ml);

    ml = must_list("0.0.0.0/0", MATCH_LIST_ADDR);
    assert_int_equal(match_list_addr(ml, "203.0.113.9"), 1);
    assert_int_equal(match_list_addr(ml, "2001:db8::1"), 0); /* other family */
    match_list_free(ml);
}

static void test_addr_malformed(void **unused)
{
    (void)unused;
    bad_list("192.0.2.7/24", MATCH_LIST_ADDR, "host address bits");
    bad_list("192.0.2.0/33", MATCH_LIST_ADDR, "prefix length");
    bad_list("192.0.2.0/", MATCH_LIST_ADDR, "prefix length");
    bad_list("192.0.2.0/-1", MATCH_LIST_ADDR, "prefix length");
    bad_list("192.0.2.0/2x", MATCH_LIST_ADDR, "prefix length");
    bad_list("2001:db8::/129", MATCH_LIST_ADDR, "prefix length");
    bad_list("[::1", MATCH_LIST_ADDR, "bad address pattern");
    bad_list("[::1]x", MATCH_LIST_ADDR, "bad address pattern");
    bad_list("[]", MATCH_LIST_ADDR, "bad address pattern");
    bad_list("example.com", MATCH_LIST_ADDR, "bad address pattern");
    bad_list("300.1.1.1", MATCH_LIST_ADDR, "bad address pattern");
    bad_list("!", MATCH_LIST_ADDR, "empty pattern");
    bad_list("nosuchtype:/x", MATCH_LIST_ADDR, "bad address pattern");
    bad_list("/nonexistent/file/postern-test", MATCH_LIST_ADDR, "open");
    bad_list("!/etc/hosts", MATCH_LIST_ADDR, "cannot be negated");
    char big[MATCH_LIST_ITEM_MAX + 10];

    memset(big, '1', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    bad_list(big, MATCH_LIST_ADDR, "longer than");
}

static void test_addr_tables_and_files(void **unused)
{
    (void)unused;
    char spec[600];
    const char *cidr = write_file("nets.cidr", "192.0.2.0/24 OK\n2001:db8::/32 OK\n");

    snprintf(spec, sizeof(spec), "10.0.0.0/8 cidr:%s inline:{ 203.0.113.5=yes }", cidr);
    MATCH_LIST *ml = must_list(spec, MATCH_LIST_ADDR);

    assert_int_equal(match_list_addr(ml, "192.0.2.99"), 1);
    assert_int_equal(match_list_addr(ml, "[2001:db8::7]"), 1);
    assert_int_equal(match_list_addr(ml, "203.0.113.5"), 1);
    assert_int_equal(match_list_addr(ml, "203.0.113.6"), 0);
    assert_int_equal(match_list_addr(ml, "::ffff:192.0.2.1"), 1); /* table sees 192.0.2.1 */
    match_list_free(ml);

    /* A file of patterns with comments; files may include files. */
    const char *inner = write_file("inner.nets", "# inner\n198.51.100.0/24\n");

    snprintf(spec, sizeof(spec), "# trusted\n  # indented comment\n127.0.0.1, [::1]/128\n%s\n",
             inner);
    const char *outer = write_file("outer.nets", spec);

    ml = must_list(outer, MATCH_LIST_ADDR);
    assert_int_equal(match_list_count(ml), 3);
    assert_int_equal(match_list_addr(ml, "127.0.0.1"), 1);
    assert_int_equal(match_list_addr(ml, "198.51.100.1"), 1);
    assert_int_equal(match_list_addr(ml, "127.0.0.2"), 0);
    match_list_free(ml);

    /* A file naming itself must not recurse without end. */
    char self[600];

    snprintf(self, sizeof(self), "%s/loop.nets", test_dir);
    write_file("loop.nets", self);
    bad_list(self, MATCH_LIST_ADDR, "nested");

    /* A missing hash table is a configuration error at start-up. */
    snprintf(spec, sizeof(spec), "hash:%s/missing", test_dir);
    bad_list(spec, MATCH_LIST_ADDR, "missing");
}

static void test_domains(void **unused)
{
    (void)unused;
    MATCH_LIST *ml =
        must_list("Example.COM, .sub.example.org localhost [192.0.2.1]", MATCH_LIST_DOMAIN);

    assert_int_equal(match_list_domain(ml, "example.com"), 1);
    assert_int_equal(match_list_domain(ml, "EXAMPLE.com"), 1);
    assert_int_equal(match_list_domain(ml, "example.com."), 1);
    assert_int_equal(match_list_domain(ml, "a.example.com"), 0); /* no parent matching */
    assert_int_equal(match_list_domain(ml, "xexample.com"), 0);
    assert_int_equal(match_list_domain(ml, "a.sub.example.org"), 1);
    assert_int_equal(match_list_domain(ml, "sub.example.org"), 0);
    assert_int_equal(match_list_domain(ml, "localhost"), 1);
    assert_int_equal(match_list_domain(ml, "[192.0.2.1]"), 1);
    assert_int_equal(match_list_domain(ml, "192.0.2.1"), 0);
    assert_int_equal(match_list_domain(ml, ""), 0);
    assert_int_equal(match_list_domain(ml, "."), 0);
    match_list_free(ml);

    ml = must_list("example.com !bad.example.net example.net",
                   MATCH_LIST_DOMAIN | MATCH_LIST_PARENT);
    assert_int_equal(match_list_domain(ml, "a.b.example.com"), 1);
    assert_int_equal(match_list_domain(ml, "example.com"), 1);
    assert_int_equal(match_list_domain(ml, "badexample.com"), 0);
    assert_int_equal(match_list_domain(ml, "bad.example.net"), 0);
    assert_int_equal(match_list_domain(ml, "x.bad.example.net"), 0);
    assert_int_equal(match_list_domain(ml, "good.example.net"), 1);
    match_list_free(ml);

    ml = must_list("inline:{ relay.example=1, .wild.example=1 }", MATCH_LIST_DOMAIN);
    assert_int_equal(match_list_domain(ml, "relay.example"), 1);
    assert_int_equal(match_list_domain(ml, "RELAY.example"), 1);
    assert_int_equal(match_list_domain(ml, "a.wild.example"), 1);
    assert_int_equal(match_list_domain(ml, "other.example"), 0);
    match_list_free(ml);

    bad_list("exa\"mple.com", MATCH_LIST_DOMAIN, "bad domain pattern");
    bad_list("a/b", MATCH_LIST_DOMAIN, "bad domain pattern");
    bad_list("a\001b", MATCH_LIST_DOMAIN, "bad domain pattern");
    bad_list(".", MATCH_LIST_DOMAIN, "bad domain pattern");
    bad_list("[x", MATCH_LIST_DOMAIN, "bad domain pattern");
    bad_list("[]", MATCH_LIST_DOMAIN, "bad domain pattern");
}

static void test_dict_unix(void **unused)
{
    (void)unused;
    VSTR *why = vstr_alloc(100);
    DICT *d = dict_open("unix:passwd.byname", 0, why);
    struct passwd *pw = getpwuid(0);

    assert_non_null(d);
    assert_non_null(pw);
    const char *value = dict_get(d, pw->pw_name);

    assert_non_null(value);
    assert_int_equal(strncmp(value, "root:x:0:0:", 11), 0);
    assert_null(dict_get(d, "no-such-user-postern-test"));
    assert_int_equal(d->error, DICT_ERR_NONE);

    /* Keys that cannot be names never reach the C library. */
    const char *bad_keys[] = {"",     "root:x", "../root", "root@localhost", "a b", "a\tb",
                              "a\nb", "\177",   NULL};

    for (int i = 0; bad_keys[i]; i++) {
        assert_null(dict_get(d, bad_keys[i]));
        assert_int_equal(d->error, DICT_ERR_NONE);
    }
    char big[400];

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_null(dict_get(d, big));
    assert_int_equal(d->error, DICT_ERR_NONE);

    /* proxy: is accepted and means the same table (the same shared instance). */
    DICT *p = dict_open("proxy:unix:passwd.byname", 0, why);

    assert_non_null(p);
    assert_non_null(dict_get(p, "root"));
    dict_close(p);
    dict_close(d);

    d = dict_open("unix:group.byname", 0, why);
    assert_non_null(d);
    value = dict_get(d, "root");
    assert_non_null(value);
    assert_int_equal(strncmp(value, "root:x:0:", 9), 0);
    assert_null(dict_get(d, "no-such-group-postern-test"));
    dict_close(d);

    assert_null(dict_open("unix:shadow.byname", 0, why));
    assert_non_null(strstr(vstr_str(why), "unknown table"));
    assert_null(dict_open("unix:", 0, why));
    assert_null(dict_open("proxy:", 0, why));
    /* A unix: table in a domain list: lookups by key work through it. */
    MATCH_LIST *ml = must_list("unix:passwd.byname", MATCH_LIST_DOMAIN);

    assert_int_equal(match_list_domain(ml, "root"), 1);
    assert_int_equal(match_list_domain(ml, "no-such-user-postern-test"), 0);
    match_list_free(ml);
    vstr_free(why);
}

static int group_setup(void **unused)
{
    (void)unused;
    msg_init("test_match_list");
    snprintf(test_dir, sizeof(test_dir), "/tmp/test_match_list.XXXXXX");
    return mkdtemp(test_dir) ? 0 : -1;
}

static int group_teardown(void **unused)
{
    char cmd[300];

    (void)unused;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", test_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_networks),  cmocka_unit_test(test_addr_negation_order_and_empty),
        cmocka_unit_test(test_addr_malformed), cmocka_unit_test(test_addr_tables_and_files),
        cmocka_unit_test(test_domains),        cmocka_unit_test(test_dict_unix),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
