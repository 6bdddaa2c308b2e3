/*
 * test_qmgr_route - unit tests for the queue manager's routing (which
 * transport and next hop a recipient gets) and its hash table. Both are
 * program code (qmgr/), compiled in here from their sources.
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

#include "../../qmgr/qmgr_htable.c"
#include "../../qmgr/qmgr_route.c"
#include "mail/mail_conf.h"
#include "util/safe_io.h"

static char list_file[] = "/tmp/test_qmgr_route.XXXXXX";

/* route_ok - route rcpt, which must succeed, to "transport nexthop" */
static void route_ok(const char *rcpt, const char *want_transport, const char *want_nexthop)
{
    VSTR *t = vstr_alloc(16), *n = vstr_alloc(16), *why = vstr_alloc(16);
    char got[600], want[600];

    if (qmgr_route(rcpt, t, n, why) < 0)
        snprintf(got, sizeof(got), "error: %s", vstr_str(why));
    else
        snprintf(got, sizeof(got), "%s %s", vstr_str(t), vstr_str(n));
    snprintf(want, sizeof(want), "%s %s", want_transport, want_nexthop);
    vstr_free(t);
    vstr_free(n);
    vstr_free(why);
    if (strcmp(got, want) != 0)
        fail_msg("%s: got \"%s\", want \"%s\"", rcpt, got, want);
}

/* route_fails - route rcpt, which must fail for now */
static void route_fails(const char *rcpt)
{
    VSTR *t = vstr_alloc(16), *n = vstr_alloc(16), *why = vstr_alloc(16);

    assert_int_equal(qmgr_route(rcpt, t, n, why), -1);
    assert_true(vstr_len(why) > 0);
    vstr_free(t);
    vstr_free(n);
    vstr_free(why);
}

/* setup - one configuration for every routing test */
static int setup(void **state)
{
    int fd = mkstemp(list_file);
    const char *text = "# domains from a file\nfile.example, other-file.example # trailing\n"
                       "\n  spaced.example\n";

    (void)state;
    if (fd < 0 || write_full(fd, text, strlen(text)) < 0)
        return -1;
    close(fd);
    mail_conf_reset();
    mail_conf_update("myhostname", "mail.example.com");
    mail_conf_update("mydestination", "");
    {
        VSTR *v = vstr_alloc(100);

        vstr_sprintf(v,
                     "$myhostname, Example.COM., !no.sub.example.net, .sub.example.net, "
                     "inline:{table.example=yes}, %s",
                     list_file);
        mail_conf_update("mydestination", vstr_str(v));
        vstr_free(v);
    }
    mail_conf_update("relay_domains", "relay.example");
    mail_conf_update("relay_transport", "relay");
    mail_conf_update("default_transport", "smtp");
    qmgr_route_init();
    return 0;
}

/* test_lookup_failure - a table that cannot answer defers, never misroutes */
static void test_lookup_failure(void **state)
{
    (void)state;
    mail_conf_update("relay_domains", "first.example, hash:/nonexistent/postern/table");
    qmgr_route_init();
    route_ok("user@example.com", "local", "mail.example.com");
    route_ok("user@first.example", "relay", "first.example");
    route_fails("user@remote.example");
    /* Back to the configuration of the other tests. */
    mail_conf_update("relay_domains", "relay.example");
    qmgr_route_init();
    route_ok("user@remote.example", "smtp", "remote.example");
}

static int teardown(void **state)
{
    (void)state;
    unlink(list_file);
    return 0;
}

static void test_local_domains(void **state)
{
    (void)state;
    route_ok("user@mail.example.com", "local", "mail.example.com");
    /* Case and a trailing dot do not matter; the list had both. */
    route_ok("user@EXAMPLE.com", "local", "mail.example.com");
    route_ok("user@example.com.", "local", "mail.example.com");
    route_ok("user@a.sub.example.net", "local", "mail.example.com");
    route_ok("user@table.example", "local", "mail.example.com");
    route_ok("user@file.example", "local", "mail.example.com");
    route_ok("user@other-file.example", "local", "mail.example.com");
    route_ok("user@spaced.example", "local", "mail.example.com");
    /* No domain: only ever local. */
    route_ok("postmaster", "local", "mail.example.com");
    route_ok("user@", "local", "mail.example.com");
}

static void test_not_local(void **state)
{
    (void)state;
    /* ".sub.example.net" is its subdomains only; "!" excludes, first match wins. */
    route_ok("user@sub.example.net", "smtp", "sub.example.net");
    route_ok("user@no.sub.example.net", "smtp", "no.sub.example.net");
    /* mydestination names do not match their subdomains. */
    route_ok("user@x.example.com", "smtp", "x.example.com");
    /* The last '@' separates the domain. */
    route_ok("\"a@example.com\"@remote.example", "smtp", "remote.example");
    route_ok("user@[192.0.2.1]", "smtp", "[192.0.2.1]");
    route_ok("User@Remote.EXAMPLE", "smtp", "remote.example");
}

static void test_relay_domains(void **state)
{
    (void)state;
    route_ok("user@relay.example", "relay", "relay.example");
    /* relay_domains is in parent_domain_matches_subdomains by default. */
    route_ok("user@deep.relay.example", "relay", "deep.relay.example");
    route_ok("user@notrelay.example", "smtp", "notrelay.example");
}

static void test_relayhost_and_nexthop(void **state)
{
    (void)state;
    mail_conf_update("relayhost", "[gw.example]:587");
    route_ok("user@remote.example", "smtp", "[gw.example]:587");
    route_ok("user@relay.example", "relay", "[gw.example]:587");
    /* Local mail never goes to the relay host. */
    route_ok("user@example.com", "local", "mail.example.com");
    /* A next hop in the transport value wins over relayhost. */
    mail_conf_update("default_transport", "smtp:[mx.example]");
    route_ok("user@remote.example", "smtp", "[mx.example]");
    mail_conf_update("default_transport", "smtp");
    mail_conf_update("relayhost", "");
    route_ok("user@remote.example", "smtp", "remote.example");
}

static void test_malformed(void **state)
{
    char long_domain[400];

    (void)state;
    memset(long_domain, 'a', sizeof(long_domain));
    memcpy(long_domain, "u@", 2);
    long_domain[sizeof(long_domain) - 1] = 0;
    route_fails(long_domain);
    /* An empty transport name is a configuration error, not a crash. */
    mail_conf_update("default_transport", ":nexthop");
    route_fails("user@remote.example");
    mail_conf_update("default_transport", "smtp");
    /* Only dots: the domain is "." after folding, which is nobody's. */
    route_ok("user@...", "smtp", ".");
}

/* test_transport_maps - transport(5) keys, order and results */
static void test_transport_maps(void **state)
{
    (void)state;
    mail_conf_update("recipient_delimiter", "+");
    mail_conf_update("transport_maps",
                     "inline:{ user@tm.example=smtp:[10.0.0.1], tm.example=relay:, "
                     ".sub.tm.example=:[gw.example]:587, user@ext.example=smtp:[ext-gw.example], "
                     "keep.example=:, bare.example=lmtp, example.com=relay:[inside.example] }, "
                     "inline:{ *=smtp:[fallback.example], tm.example=never:[used] }");
    qmgr_route_init();
    /* Whole address first, then the domain; an empty next hop keeps the
       class's (the domain here); the first table wins for a key. */
    route_ok("user@tm.example", "smtp", "[10.0.0.1]");
    route_ok("other@TM.example", "relay", "tm.example");
    /* ".parent" covers subdomains only; "tm.example" does not cover them. */
    route_ok("x@a.sub.tm.example", "smtp", "[gw.example]:587");
    route_ok("x@sub.tm.example", "smtp", "[fallback.example]");
    route_ok("x@deep.tm.example", "smtp", "[fallback.example]");
    /* user+ext@domain is also looked up as user@domain. */
    route_ok("user+foo@ext.example", "smtp", "[ext-gw.example]");
    route_ok("other+foo@ext.example", "smtp", "[fallback.example]");
    /* ":" changes nothing; a bare name is the transport. */
    route_ok("u@keep.example", "smtp", "keep.example");
    route_ok("u@bare.example", "lmtp", "bare.example");
    /* Local domains too (Postfix's transport_maps override every class). */
    route_ok("user@example.com", "relay", "[inside.example]");
    /* No domain: local, whatever "*" says. */
    route_ok("postmaster", "local", "mail.example.com");
    /* With relayhost: an empty next hop keeps the relay host. */
    mail_conf_update("relayhost", "[smarthost.example]");
    route_ok("other@tm.example", "relay", "[smarthost.example]");
    mail_conf_update("relayhost", "");
    /* parent_domain_matches_subdomains naming transport_maps: "domain"
       entries cover subdomains, ".domain" keys are no longer tried. */
    mail_conf_update("parent_domain_matches_subdomains", "relay_domains, transport_maps");
    qmgr_route_init();
    route_ok("x@deep.tm.example", "relay", "deep.tm.example");
    mail_conf_update("parent_domain_matches_subdomains", "relay_domains");
    /* A table that fails defers every routed recipient, never misroutes. */
    mail_conf_update("transport_maps", "hash:/nonexistent/postern/transport");
    qmgr_route_init();
    route_fails("user@remote.example");
    route_fails("user@example.com");
    route_ok("postmaster", "local", "mail.example.com");
    /* Malformed results: an empty transport keeps the class's. */
    mail_conf_update("transport_maps", "inline:{ odd.example=:, odder.example=::x }");
    qmgr_route_init();
    route_ok("u@odd.example", "smtp", "odd.example");
    route_ok("u@odder.example", "smtp", ":x");
    mail_conf_update("transport_maps", "");
    mail_conf_update("recipient_delimiter", "");
    qmgr_route_init();
    route_ok("user@tm.example", "smtp", "tm.example");
}

static void test_htable(void **state)
{
    QMGR_HTABLE *t = qmgr_htable_create(0);
    char key[32];

    (void)state;
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        assert_string_equal(qmgr_htable_enter(t, key, (void *)(intptr_t)(i + 1)), key);
    }
    assert_int_equal(qmgr_htable_count(t), 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        assert_int_equal((intptr_t)qmgr_htable_find(t, key), i + 1);
    }
    assert_null(qmgr_htable_find(t, "key-5000"));
    assert_null(qmgr_htable_find(t, ""));
    for (int i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof(key), "key-%d", i);
        qmgr_htable_delete(t, key);
    }
    qmgr_htable_delete(t, "absent");
    assert_int_equal(qmgr_htable_count(t), 2500);
    assert_null(qmgr_htable_find(t, "key-0"));
    assert_int_equal((intptr_t)qmgr_htable_find(t, "key-1"), 2);
    /* The empty key is a key like any other. */
    qmgr_htable_enter(t, "", (void *)7);
    assert_int_equal((intptr_t)qmgr_htable_find(t, ""), 7);
    qmgr_htable_free(t);
    qmgr_htable_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_domains),  cmocka_unit_test(test_not_local),
        cmocka_unit_test(test_relay_domains),  cmocka_unit_test(test_relayhost_and_nexthop),
        cmocka_unit_test(test_malformed),      cmocka_unit_test(test_lookup_failure),
        cmocka_unit_test(test_transport_maps), cmocka_unit_test(test_htable),
    };

    msg_init("test_qmgr_route");
    return cmocka_run_group_tests(tests, setup, teardown);
}
