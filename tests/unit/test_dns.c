/*
 * test_dns - the pure parts of lib/mail/dns: dns_servers parsing, wire
 * names (malformed ones included: compression pointers, long labels,
 * truncation, bytes that would change the meaning of the text form), record
 * data of each type, host name syntax, MX ordering with shuffled equal
 * preferences, and a context against a server that does not answer.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "mail/dns.h"
#include "util/argv.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

/* servers - dns_servers_parse result joined by spaces, or NULL */
static char *servers(const char *in)
{
    static char buf[512];
    ARGV *out = argv_alloc(4);
    VSTR *why = vstr_alloc(16);
    int rc = dns_servers_parse(in, out, why);

    buf[0] = 0;
    for (size_t i = 0; rc == 0 && i < out->argc; i++) {
        strcat(buf, i ? " " : "");
        strcat(buf, out->argv[i]);
    }
    argv_free(out);
    vstr_free(why);
    return rc == 0 ? buf : NULL;
}

static void test_servers(void **state)
{
    (void)state;
    assert_string_equal(servers(""), "");
    assert_string_equal(servers("127.0.0.1"), "127.0.0.1");
    assert_string_equal(servers("127.0.0.1:5353, [::1]:53"), "127.0.0.1@5353 ::1@53");
    assert_string_equal(servers("2001:db8::1 192.0.2.1@1053"), "2001:db8::1 192.0.2.1@1053");
    assert_string_equal(servers("[2001:db8::2]"), "2001:db8::2");
    /* Malformed or not addresses. */
    assert_null(servers("dns.example"));
    assert_null(servers("127.0.0.1:0"));
    assert_null(servers("127.0.0.1:65536"));
    assert_null(servers("127.0.0.1:x"));
    assert_null(servers("[::1"));
    assert_null(servers("[::1]x"));
    assert_null(servers("1.2.3.4@"));
    assert_null(servers("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17"));
}

/* wire - dns_name_from_wire on bytes; the text, or NULL */
static const char *wire(const char *bytes, size_t len, size_t *used)
{
    static char buf[512];
    VSTR *text = vstr_alloc(16);
    size_t u = 0;
    int rc = dns_name_from_wire((const unsigned char *)bytes, len, &u, text);

    snprintf(buf, sizeof(buf), "%s", vstr_str(text));
    vstr_free(text);
    if (used)
        *used = u;
    return rc == 0 ? buf : NULL;
}

static void test_wire_names(void **state)
{
    size_t used;
    char big[300];

    (void)state;
    assert_string_equal(wire("\3mx1\7Example\3org\0", 17, &used), "mx1.example.org");
    assert_int_equal(used, 17);
    assert_string_equal(wire("\0", 1, &used), "");
    assert_int_equal(used, 1);
    /* Malformed: compression pointer, truncated, no end, label over 63. */
    assert_null(wire("\300\014", 2, NULL));
    assert_null(wire("\3mx1", 4, NULL));
    assert_null(wire("\3mx1\3org", 8, NULL));
    assert_null(wire("", 0, NULL));
    memset(big, 'a', sizeof(big));
    big[0] = 64;
    big[65] = 0;
    assert_null(wire(big, 66, NULL));
    /* A name over 255 octets: four labels of 63. */
    for (int i = 0; i < 4; i++) {
        big[i * 64] = 63;
        memset(big + i * 64 + 1, 'b', 63);
    }
    big[256] = 0;
    assert_null(wire(big, 257, NULL));
    /* Bytes that would change the text form or forge a log line. */
    assert_null(wire("\3a.b\0", 5, NULL));
    assert_null(wire("\3a b\0", 5, NULL));
    assert_null(wire("\3a\nb\0", 5, NULL));
    assert_null(wire("\3a\377b\0", 5, NULL));
}

static void test_rr_parse(void **state)
{
    DNS_RR rr;
    char addr[64];

    (void)state;
    assert_int_equal(dns_rr_parse(DNS_TYPE_A, (const unsigned char *)"\177\0\0\2", 4, &rr), 0);
    assert_int_equal(rr.family, AF_INET);
    inet_ntop(AF_INET, rr.addr, addr, sizeof(addr));
    assert_string_equal(addr, "127.0.0.2");
    assert_int_equal(dns_rr_parse(DNS_TYPE_A, (const unsigned char *)"\177\0\0", 3, &rr), -1);
    assert_int_equal(dns_rr_parse(DNS_TYPE_AAAA,
                                  (const unsigned char *)"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16,
                                  &rr),
                     0);
    assert_int_equal(rr.family, AF_INET6);
    assert_int_equal(dns_rr_parse(DNS_TYPE_AAAA, (const unsigned char *)"\0\1", 2, &rr), -1);

    assert_int_equal(
        dns_rr_parse(DNS_TYPE_MX, (const unsigned char *)"\0\12\2mx\7example\0", 14, &rr), 0);
    assert_int_equal(rr.pref, 10);
    assert_string_equal(rr.host, "mx.example");
    dns_rr_free(&rr);
    /* RFC 7505 null MX: the root as exchange. */
    assert_int_equal(dns_rr_parse(DNS_TYPE_MX, (const unsigned char *)"\0\0\0", 3, &rr), 0);
    assert_string_equal(rr.host, "");
    dns_rr_free(&rr);
    /* Trailing garbage, short data, an invalid host name, the root as PTR. */
    assert_int_equal(dns_rr_parse(DNS_TYPE_MX, (const unsigned char *)"\0\12\2mx\0X", 7, &rr), -1);
    assert_int_equal(dns_rr_parse(DNS_TYPE_MX, (const unsigned char *)"\0\12", 2, &rr), -1);
    assert_int_equal(dns_rr_parse(DNS_TYPE_MX, (const unsigned char *)"\0\12\2-x\0", 6, &rr), -1);
    assert_int_equal(dns_rr_parse(DNS_TYPE_PTR, (const unsigned char *)"\0", 1, &rr), -1);
    assert_int_equal(dns_rr_parse(DNS_TYPE_CNAME, (const unsigned char *)"\1a\0", 3, &rr), 0);
    assert_string_equal(rr.host, "a");
    dns_rr_free(&rr);
    /* TXT: strings joined; a length past the end or a control byte fails. */
    assert_int_equal(dns_rr_parse(DNS_TYPE_TXT, (const unsigned char *)"\3abc\2de", 7, &rr), 0);
    assert_string_equal(rr.text, "abcde");
    dns_rr_free(&rr);
    assert_int_equal(dns_rr_parse(DNS_TYPE_TXT, (const unsigned char *)"\5abc", 4, &rr), -1);
    assert_int_equal(dns_rr_parse(DNS_TYPE_TXT, (const unsigned char *)"\2a\n", 3, &rr), -1);
    assert_int_equal(dns_rr_parse(99, (const unsigned char *)"x", 1, &rr), -1);
}

static void test_hostname_valid(void **state)
{
    char big[300];

    (void)state;
    assert_true(dns_hostname_valid("mx.example.org"));
    assert_true(dns_hostname_valid("mx.example.org."));
    assert_true(dns_hostname_valid("a"));
    assert_true(dns_hostname_valid("_dmarc.example"));
    assert_true(dns_hostname_valid("1.2.3.4"));
    assert_false(dns_hostname_valid(""));
    assert_false(dns_hostname_valid("."));
    assert_false(dns_hostname_valid("a..b"));
    assert_false(dns_hostname_valid("-a.example"));
    assert_false(dns_hostname_valid("a-.example"));
    assert_false(dns_hostname_valid("a b.example"));
    assert_false(dns_hostname_valid("a\r\nb"));
    assert_false(dns_hostname_valid("m\xc3\xbc.example"));
    memset(big, 'a', sizeof(big));
    big[64] = 0;
    assert_false(dns_hostname_valid(big)); /* label of 64 */
    for (int i = 0; i < 299; i += 2)
        big[i] = 'a', big[i + 1] = '.';
    big[299] = 0;
    assert_false(dns_hostname_valid(big)); /* over 253 */
}

static long fixed_rnd_value;
static long fixed_rnd(void)
{
    return fixed_rnd_value++;
}

static void test_mx_sort(void **state)
{
    DNS_RR rr[6];
    unsigned prefs[6] = {20, 10, 30, 10, 20, 10};
    int seen_first[6] = {0};

    (void)state;
    for (int round = 0; round < 60; round++) {
        memset(rr, 0, sizeof(rr));
        for (int i = 0; i < 6; i++) {
            rr[i].pref = prefs[i];
            rr[i].family = i; /* identity */
        }
        fixed_rnd_value = round * 7;
        dns_mx_sort(rr, 6, round % 2 ? fixed_rnd : NULL);
        for (int i = 1; i < 6; i++)
            assert_true(rr[i - 1].pref <= rr[i].pref);
        assert_int_equal(rr[0].pref, 10);
        assert_int_equal(rr[5].pref, 30);
        seen_first[rr[0].family] = 1;
    }
    /* Every preference-10 record came first at least once. */
    assert_true(seen_first[1] && seen_first[3] && seen_first[5]);
    dns_mx_sort(rr, 0, NULL);
}

static void test_text(void **state)
{
    (void)state;
    assert_string_equal(dns_type_name(DNS_TYPE_MX), "MX");
    assert_string_equal(dns_type_name(12345), "TYPE12345");
    assert_string_equal(dns_status_text(DNS_NOTFOUND), "Host not found");
    assert_string_equal(dns_status_text(DNS_RETRY), "Host not found, try again");
}

/* A resolver whose server never answers: the lookup ends at the deadline,
   and bad names are refused before anything is sent. */
static void test_lookup_timeout(void **state)
{
    VSTR *why = vstr_alloc(16);
    DNS_REPLY *reply = NULL;
    DNS_CTX *ctx;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    char spec[64];

    (void)state;
    /* A bound UDP socket nobody reads: queries go nowhere. */
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    getsockname(fd, (struct sockaddr *)&sin, &len);
    snprintf(spec, sizeof(spec), "127.0.0.1:%d", ntohs(sin.sin_port));
    ctx = dns_ctx_create(spec, why);
    assert_non_null(ctx);
    assert_int_equal(dns_lookup(ctx, "a.example", DNS_TYPE_MX, 300, &reply, why), DNS_RETRY);
    assert_null(reply);
    assert_non_null(strstr(vstr_str(why), "timeout"));
    assert_int_equal(dns_lookup(ctx, "bad name", DNS_TYPE_A, 300, &reply, why), DNS_INVAL);
    assert_int_equal(dns_lookup(ctx, "a..b", DNS_TYPE_A, 300, &reply, why), DNS_INVAL);
    dns_ctx_free(ctx);
    assert_null(dns_ctx_create("not-an-address", why));
    close(fd);
    vstr_free(why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_servers),        cmocka_unit_test(test_wire_names),
        cmocka_unit_test(test_rr_parse),       cmocka_unit_test(test_hostname_valid),
        cmocka_unit_test(test_mx_sort),        cmocka_unit_test(test_text),
        cmocka_unit_test(test_lookup_timeout),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
