/*
 * test_anvil_table - unit tests for lib/mail/anvil_table (the anvil
 * service's counts, rate windows, owners, expiry, eviction, statistics,
 * hostile identities) and lib/mail/anvil_clnt (answers, failing open on
 * absent, silent, refusing and restarted servers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mail/anvil_clnt.h"
#include "mail/anvil_table.h"
#include "mail/attr.h"
#include "util/mymalloc.h"

#define T0 ((time_t)1700000000)
#define UNIT 60

/*
 * The table.
 */

static void test_connect_and_disconnect(void **state)
{
    (void)state;
    ANVIL_TABLE *t = anvil_table_new(100, UNIT);
    ANVIL_OWNER *o = anvil_owner_new();
    ANVIL_COUNTS c;

    for (long i = 1; i <= 3; i++) {
        assert_int_equal(anvil_table_connect(t, o, "smtp:192.0.2.1", T0 + i, &c), 0);
        assert_int_equal(c.count, i);
        assert_int_equal(c.rate[ANVIL_EV_CONN], i);
        assert_int_equal(c.rate[ANVIL_EV_MAIL], 0);
    }
    assert_int_equal(anvil_table_disconnect(t, o, "smtp:192.0.2.1", T0 + 5), 1);
    assert_int_equal(anvil_table_lookup(t, "smtp:192.0.2.1", T0 + 5, &c), 0);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.rate[ANVIL_EV_CONN], 3);
    /* Another service is another identity. */
    assert_int_equal(anvil_table_lookup(t, "submission:192.0.2.1", T0 + 5, &c), 0);
    assert_int_equal(c.count, 0);
    assert_int_equal(c.rate[ANVIL_EV_CONN], 0);
    /* A disconnect nobody counted is ignored. */
    assert_int_equal(anvil_table_disconnect(t, o, "smtp:192.0.2.99", T0 + 5), 0);
    assert_int_equal(anvil_table_disconnect(t, o, "smtp:192.0.2.1", T0 + 6), 1);
    assert_int_equal(anvil_table_disconnect(t, o, "smtp:192.0.2.1", T0 + 6), 1);
    assert_int_equal(anvil_table_disconnect(t, o, "smtp:192.0.2.1", T0 + 6), 0);
    assert_int_equal(anvil_table_lookup(t, "smtp:192.0.2.1", T0 + 6, &c), 0);
    assert_int_equal(c.count, 0);
    anvil_owner_free(t, o, T0 + 7);
    anvil_table_free(t);
}

static void test_event_kinds_are_separate(void **state)
{
    (void)state;
    ANVIL_TABLE *t = anvil_table_new(100, UNIT);
    ANVIL_COUNTS c;

    for (int ev = ANVIL_EV_MAIL; ev < ANVIL_EV_COUNT; ev++)
        for (int n = 0; n <= ev; n++)
            assert_int_equal(
                anvil_table_event(t, "smtp:[2001:db8::1]", (enum anvil_event)ev, T0, &c), 0);
    assert_int_equal(anvil_table_lookup(t, "smtp:[2001:db8::1]", T0, &c), 0);
    assert_int_equal(c.count, 0);
    assert_int_equal(c.rate[ANVIL_EV_CONN], 0);
    for (int ev = ANVIL_EV_MAIL; ev < ANVIL_EV_COUNT; ev++)
        assert_int_equal(c.rate[ev], ev + 1);
    anvil_table_free(t);
}

static void test_rate_window(void **state)
{
    (void)state;
    ANVIL_TABLE *t = anvil_table_new(100, UNIT);
    ANVIL_COUNTS c;

    /* The window starts at the first event and lasts UNIT seconds. */
    anvil_table_event(t, "smtp:a", ANVIL_EV_AUTH_FAIL, T0 + 10, &c);
    anvil_table_event(t, "smtp:a", ANVIL_EV_AUTH_FAIL, T0 + 40, &c);
    anvil_table_event(t, "smtp:a", ANVIL_EV_AUTH_FAIL, T0 + 69, &c);
    assert_int_equal(c.rate[ANVIL_EV_AUTH_FAIL], 3);
    /* A lookup after the window ended reports nothing, and changes nothing. */
    anvil_table_lookup(t, "smtp:a", T0 + 70, &c);
    assert_int_equal(c.rate[ANVIL_EV_AUTH_FAIL], 0);
    anvil_table_lookup(t, "smtp:a", T0 + 69, &c);
    assert_int_equal(c.rate[ANVIL_EV_AUTH_FAIL], 3);
    /* The next event starts a new window. */
    anvil_table_event(t, "smtp:a", ANVIL_EV_AUTH_FAIL, T0 + 70, &c);
    assert_int_equal(c.rate[ANVIL_EV_AUTH_FAIL], 1);
    anvil_table_event(t, "smtp:a", ANVIL_EV_AUTH, T0 + 129, &c);
    assert_int_equal(c.rate[ANVIL_EV_AUTH_FAIL], 1);
    assert_int_equal(c.rate[ANVIL_EV_AUTH], 1);
    /* A clock that steps back restarts the window rather than trusting it. */
    anvil_table_event(t, "smtp:a", ANVIL_EV_AUTH, T0 + 5, &c);
    assert_int_equal(c.rate[ANVIL_EV_AUTH], 1);
    assert_int_equal(c.rate[ANVIL_EV_AUTH_FAIL], 0);
    anvil_table_free(t);
}

static void test_connections_keep_entries(void **state)
{
    (void)state;
    ANVIL_TABLE *t = anvil_table_new(100, UNIT);
    ANVIL_OWNER *o = anvil_owner_new();
    ANVIL_COUNTS c;

    anvil_table_connect(t, o, "smtp:held", T0, &c);
    anvil_table_event(t, "smtp:idle", ANVIL_EV_MAIL, T0, &c);
    assert_int_equal(anvil_table_size(t), 2);
    assert_int_equal(anvil_table_expire(t, T0 + UNIT - 1), 0);
    /* Only the idle one goes when its window ends; a connection keeps its entry. */
    assert_int_equal(anvil_table_expire(t, T0 + UNIT), 1);
    assert_int_equal(anvil_table_size(t), 1);
    assert_int_equal(anvil_table_expire(t, T0 + 10 * UNIT), 0);
    anvil_table_lookup(t, "smtp:held", T0 + 10 * UNIT, &c);
    assert_int_equal(c.count, 1);
    /* The last connection ends after the window: nothing is left to keep. */
    assert_int_equal(anvil_table_disconnect(t, o, "smtp:held", T0 + 10 * UNIT), 1);
    assert_int_equal(anvil_table_size(t), 0);
    /* Ending within the window keeps the rates until the window ends. */
    anvil_table_connect(t, o, "smtp:short", T0 + 1000, &c);
    anvil_table_disconnect(t, o, "smtp:short", T0 + 1001);
    assert_int_equal(anvil_table_size(t), 1);
    anvil_table_lookup(t, "smtp:short", T0 + 1002, &c);
    assert_int_equal(c.rate[ANVIL_EV_CONN], 1);
    assert_int_equal(anvil_table_expire(t, T0 + 1000 + UNIT), 1);
    anvil_owner_free(t, o, T0 + 2000);
    anvil_table_free(t);
}

static void test_owners(void **state)
{
    (void)state;
    ANVIL_TABLE *t = anvil_table_new(100, UNIT);
    ANVIL_OWNER *a = anvil_owner_new();
    ANVIL_OWNER *b = anvil_owner_new();
    ANVIL_OWNER *stranger = anvil_owner_new();
    ANVIL_COUNTS c;

    anvil_table_connect(t, a, "smtp:x", T0, &c);
    anvil_table_connect(t, a, "smtp:x", T0, &c);
    anvil_table_connect(t, a, "smtp:y", T0, &c);
    anvil_table_connect(t, b, "smtp:x", T0, &c);
    assert_int_equal(c.count, 3);
    /* Only the owner that counted a connection can end it. */
    assert_int_equal(anvil_table_disconnect(t, stranger, "smtp:x", T0), 0);
    anvil_table_lookup(t, "smtp:x", T0, &c);
    assert_int_equal(c.count, 3);
    /* An owner that goes away gives back all it held. */
    anvil_owner_free(t, a, T0 + 1);
    anvil_table_lookup(t, "smtp:x", T0 + 1, &c);
    assert_int_equal(c.count, 1);
    assert_int_equal(c.rate[ANVIL_EV_CONN], 3);
    anvil_table_lookup(t, "smtp:y", T0 + 1, &c);
    assert_int_equal(c.count, 0);
    assert_int_equal(anvil_table_disconnect(t, b, "smtp:x", T0 + 2), 1);
    assert_int_equal(anvil_table_disconnect(t, b, "smtp:x", T0 + 2), 0);
    anvil_owner_free(t, b, T0 + 3);
    anvil_owner_free(t, stranger, T0 + 3);
    anvil_owner_free(t, NULL, T0 + 3);
    anvil_table_free(t);
}

static void test_eviction_oldest_idle_first(void **state)
{
    (void)state;
    ANVIL_TABLE *t = anvil_table_new(3, UNIT);
    ANVIL_OWNER *o = anvil_owner_new();
    ANVIL_COUNTS c;

    anvil_table_event(t, "smtp:a", ANVIL_EV_RCPT, T0, &c);
    anvil_table_event(t, "smtp:b", ANVIL_EV_RCPT, T0 + 1, &c);
    anvil_table_event(t, "smtp:c", ANVIL_EV_RCPT, T0 + 2, &c);
    /* a was used again: b is now the one used longest ago. */
    anvil_table_event(t, "smtp:a", ANVIL_EV_RCPT, T0 + 3, &c);
    anvil_table_event(t, "smtp:d", ANVIL_EV_RCPT, T0 + 4, &c);
    assert_int_equal(anvil_table_size(t), 3);
    anvil_table_lookup(t, "smtp:b", T0 + 4, &c);
    assert_int_equal(c.rate[ANVIL_EV_RCPT], 0);
    anvil_table_lookup(t, "smtp:a", T0 + 4, &c);
    assert_int_equal(c.rate[ANVIL_EV_RCPT], 2);
    assert_int_equal(anvil_table_stats(t)->evicted, 1);
    /* Entries with open connections are never evicted. */
    anvil_table_connect(t, o, "smtp:e", T0 + 5, &c); /* evicts c */
    anvil_table_connect(t, o, "smtp:f", T0 + 6, &c); /* evicts a */
    anvil_table_connect(t, o, "smtp:g", T0 + 7, &c); /* evicts d */
    assert_int_equal(anvil_table_stats(t)->evicted, 4);
    /* Full of connections: a new identity is answered but not stored. */
    assert_int_equal(anvil_table_connect(t, o, "smtp:h", T0 + 8, &c), 0);
    assert_int_equal(c.count, 1);
    assert_int_equal(c.rate[ANVIL_EV_CONN], 1);
    assert_int_equal(anvil_table_event(t, "smtp:h", ANVIL_EV_AUTH, T0 + 8, &c), 0);
    assert_int_equal(c.rate[ANVIL_EV_AUTH], 1);
    assert_int_equal(c.count, 0);
    assert_int_equal(anvil_table_size(t), 3);
    assert_int_equal(anvil_table_stats(t)->untracked, 2);
    assert_int_equal(anvil_table_disconnect(t, o, "smtp:h", T0 + 9), 0);
    for (const char *const *id = (const char *const[]){"smtp:e", "smtp:f", "smtp:g", NULL}; *id;
         id++) {
        anvil_table_lookup(t, *id, T0 + 9, &c);
        assert_int_equal(c.count, 1);
    }
    anvil_owner_free(t, o, T0 + 9);
    anvil_table_free(t);
}

static void test_bad_identities(void **state)
{
    (void)state;
    ANVIL_TABLE *t = anvil_table_new(10, UNIT);
    ANVIL_OWNER *o = anvil_owner_new();
    ANVIL_COUNTS c;
    char longest[ANVIL_IDENT_MAX + 1], too_long[ANVIL_IDENT_MAX + 2];
    const char *bad[] = {"",          "a b",           "a\tb", "a\nb",  "\x01",
                         "smtp:\x7f", "smtp:\xc3\xa9", " ",    too_long};

    memset(longest, 'x', ANVIL_IDENT_MAX);
    longest[ANVIL_IDENT_MAX] = 0;
    memset(too_long, 'x', ANVIL_IDENT_MAX + 1);
    too_long[ANVIL_IDENT_MAX + 1] = 0;
    assert_false(anvil_ident_ok(NULL));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(anvil_ident_ok(bad[i]));
        errno = 0;
        assert_int_equal(anvil_table_connect(t, o, bad[i], T0, &c), -1);
        assert_int_equal(errno, EINVAL);
        assert_int_equal(anvil_table_disconnect(t, o, bad[i], T0), -1);
        assert_int_equal(anvil_table_event(t, bad[i], ANVIL_EV_MAIL, T0, &c), -1);
        assert_int_equal(anvil_table_lookup(t, bad[i], T0, &c), -1);
    }
    assert_int_equal(anvil_table_size(t), 0);
    assert_true(anvil_ident_ok(longest));
    assert_int_equal(anvil_table_event(t, longest, ANVIL_EV_MAIL, T0, &c), 0);
    assert_int_equal(c.rate[ANVIL_EV_MAIL], 1);
    assert_true(anvil_ident_ok("smtp:[2001:db8::1]"));
    anvil_owner_free(t, o, T0);
    anvil_table_free(t);
}

static void test_statistics(void **state)
{
    (void)state;
    ANVIL_TABLE *t = anvil_table_new(100, UNIT);
    ANVIL_OWNER *o = anvil_owner_new();
    const ANVIL_STATS *st = anvil_table_stats(t);
    ANVIL_COUNTS c;

    anvil_table_connect(t, o, "smtp:one", T0, &c);
    anvil_table_connect(t, o, "smtp:two", T0 + 1, &c);
    anvil_table_connect(t, o, "smtp:two", T0 + 2, &c);
    anvil_table_event(t, "smtp:one", ANVIL_EV_MAIL, T0 + 3, &c);
    assert_int_equal(st->count.value, 2);
    assert_string_equal(st->count.ident, "smtp:two");
    assert_int_equal(st->count.when, T0 + 2);
    assert_int_equal(st->rate[ANVIL_EV_CONN].value, 2);
    assert_int_equal(st->rate[ANVIL_EV_MAIL].value, 1);
    assert_string_equal(st->rate[ANVIL_EV_MAIL].ident, "smtp:one");
    assert_int_equal(st->rate[ANVIL_EV_AUTH].value, 0);
    assert_int_equal(st->max_size, 2);
    anvil_table_stats_reset(t);
    assert_int_equal(st->count.value, 0);
    assert_int_equal(st->max_size, 0);
    anvil_owner_free(t, o, T0 + 4);
    anvil_table_free(t);
}

static void test_many_clients_stay_bounded(void **state)
{
    (void)state;
    enum { LIMIT = 5000, CLIENTS = 40000 };
    ANVIL_TABLE *t = anvil_table_new(LIMIT, UNIT);
    ANVIL_OWNER *o = anvil_owner_new();
    ANVIL_COUNTS c;
    char ident[64];

    /* Some clients stay connected; a flood of others comes and goes. */
    for (int i = 0; i < 100; i++) {
        snprintf(ident, sizeof(ident), "smtp:10.0.0.%d", i);
        anvil_table_connect(t, o, ident, T0, &c);
    }
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(ident, sizeof(ident), "smtp:[2001:db8::%x]", i);
        anvil_table_event(t, ident, ANVIL_EV_AUTH_FAIL, T0 + i / 1000, &c);
        assert_int_equal(c.rate[ANVIL_EV_AUTH_FAIL], 1);
        assert_true(anvil_table_size(t) <= LIMIT);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(ident, sizeof(ident), "smtp:10.0.0.%d", i);
        anvil_table_lookup(t, ident, T0 + 40, &c);
        assert_int_equal(c.count, 1);
    }
    /* The most recent ones are still known. */
    snprintf(ident, sizeof(ident), "smtp:[2001:db8::%x]", CLIENTS - 1);
    anvil_table_lookup(t, ident, T0 + 40, &c);
    assert_int_equal(c.rate[ANVIL_EV_AUTH_FAIL], 1);
    assert_true(anvil_table_stats(t)->evicted > 0);
    /* Once every window has ended only the connected ones remain. */
    anvil_table_expire(t, T0 + 1000);
    assert_int_equal(anvil_table_size(t), 100);
    anvil_owner_free(t, o, T0 + 1000);
    assert_int_equal(anvil_table_size(t), 0);
    anvil_table_free(t);
}

/*
 * The client, against a scripted server in a child process.
 */

enum fake_mode { FAKE_ANSWER, FAKE_SILENT, FAKE_REFUSE, FAKE_ONE_PER_CONN };

typedef struct FAKE {
    char dir[64];
    char path[96];
    pid_t pid;
} FAKE;

/* fake_reply - answer one request as the mode says; ATTR_SERV_* */
static int fake_handler(ATTR_STREAM *s, const ATTR_MSG *req, void *context)
{
    enum fake_mode mode = *(enum fake_mode *)context;
    const char *what = attr_msg_get_str(req, ANVIL_ATTR_REQUEST);

    if (mode == FAKE_REFUSE)
        return attr_print(s, 0, ATTR_UNUM(ANVIL_ATTR_STATUS, ANVIL_STAT_BAD_IDENT),
                          ATTR_STR(ANVIL_ATTR_REASON, "go away"), ATTR_END) < 0
                   ? -1
                   : ATTR_SERV_CONTINUE;
    if (attr_print(s, 0, ATTR_UNUM(ANVIL_ATTR_STATUS, ANVIL_STAT_OK),
                   ATTR_UNUM(ANVIL_ATTR_COUNT, 7), ATTR_UNUM(ANVIL_ATTR_RATE, 8),
                   ATTR_UNUM(ANVIL_ATTR_AUTH_FAIL, strcmp(what, "auth_fail") == 0 ? 9 : 0),
                   ATTR_END) < 0)
        return -1;
    return mode == FAKE_ONE_PER_CONN ? ATTR_SERV_CLOSE : ATTR_SERV_CONTINUE;
}

/* fake_start - a server on a fresh socket in a child process */
static void fake_start(FAKE *f, enum fake_mode mode)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int lfd;

    snprintf(f->dir, sizeof(f->dir), "/tmp/test_anvil.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/anvil", f->dir);
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->path);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(lfd, 16), 0);
    if ((f->pid = fork()) == 0) {
        for (;;) {
            int fd = accept(lfd, NULL, NULL);
            ATTR_STREAM *s;

            if (fd < 0)
                _exit(1);
            if (mode == FAKE_SILENT) {
                pause();
                _exit(0);
            }
            s = attr_stream_open(fd, 5000);
            (void)attr_serv_loop(s, ATTR_FLAG_PRINTABLE, fake_handler, &mode);
            attr_stream_free(s);
            close(fd);
        }
    }
    close(lfd);
}

static void fake_stop(FAKE *f)
{
    kill(f->pid, SIGKILL);
    waitpid(f->pid, NULL, 0);
    unlink(f->path);
    rmdir(f->dir);
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static void test_clnt_answers(void **state)
{
    (void)state;
    FAKE f;
    ANVIL_COUNTS c;
    ANVIL_CLNT *a;

    fake_start(&f, FAKE_ANSWER);
    a = anvil_clnt_create(f.path, 1000);
    memset(&c, 0xff, sizeof(c));
    assert_int_equal(anvil_clnt_connect(a, "smtp", "192.0.2.1", &c), 0);
    assert_int_equal(c.count, 7);
    assert_int_equal(c.rate[ANVIL_EV_CONN], 8);
    assert_int_equal(c.rate[ANVIL_EV_MAIL], 0); /* absent in the reply: zero */
    assert_int_equal(anvil_clnt_auth_fail(a, "smtp", "192.0.2.1", &c), 0);
    assert_int_equal(c.rate[ANVIL_EV_AUTH_FAIL], 9);
    assert_int_equal(anvil_clnt_disconnect(a, "smtp", "192.0.2.1"), 0);
    /* An identity that would not be accepted is never sent. */
    assert_int_equal(anvil_clnt_mail(a, "smtp service", "192.0.2.1", &c), -1);
    anvil_clnt_free(a);
    fake_stop(&f);
}

static void test_clnt_fails_open(void **state)
{
    (void)state;
    FAKE f;
    ANVIL_COUNTS c;
    ANVIL_CLNT *a;
    long t;

    /* No server at all. */
    a = anvil_clnt_create("/nonexistent/private/anvil", 200);
    assert_int_equal(anvil_clnt_connect(a, "smtp", "192.0.2.1", &c), -1);
    assert_int_equal(anvil_clnt_rcpt(a, "smtp", "192.0.2.1", &c), -1);
    anvil_clnt_free(a);

    /* A server that never answers costs one timeout, then nothing for a while. */
    fake_start(&f, FAKE_SILENT);
    a = anvil_clnt_create(f.path, 200);
    t = now_ms();
    assert_int_equal(anvil_clnt_connect(a, "smtp", "192.0.2.1", &c), -1);
    assert_true(now_ms() - t >= 150);
    assert_true(now_ms() - t < 2000);
    t = now_ms();
    assert_int_equal(anvil_clnt_newtls(a, "smtp", "192.0.2.1", &c), -1);
    assert_true(now_ms() - t < 50);
    anvil_clnt_free(a);
    fake_stop(&f);

    /* A server that refuses. */
    fake_start(&f, FAKE_REFUSE);
    a = anvil_clnt_create(f.path, 1000);
    assert_int_equal(anvil_clnt_auth(a, "smtp", "192.0.2.1", &c), -1);
    anvil_clnt_free(a);
    fake_stop(&f);
}

static void test_clnt_reconnects(void **state)
{
    (void)state;
    FAKE f;
    ANVIL_COUNTS c;
    ANVIL_CLNT *a;

    /* The server drops each connection after one answer, as a restarted
       anvil would: the next request notices and tries a fresh connection. */
    fake_start(&f, FAKE_ONE_PER_CONN);
    a = anvil_clnt_create(f.path, 1000);
    for (int i = 0; i < 5; i++) {
        memset(&c, 0, sizeof(c));
        assert_int_equal(anvil_clnt_lookup(a, "smtp", "192.0.2.1", &c), 0);
        assert_int_equal(c.count, 7);
    }
    anvil_clnt_free(a);
    fake_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_and_disconnect),
        cmocka_unit_test(test_event_kinds_are_separate),
        cmocka_unit_test(test_rate_window),
        cmocka_unit_test(test_connections_keep_entries),
        cmocka_unit_test(test_owners),
        cmocka_unit_test(test_eviction_oldest_idle_first),
        cmocka_unit_test(test_bad_identities),
        cmocka_unit_test(test_statistics),
        cmocka_unit_test(test_many_clients_stay_bounded),
        cmocka_unit_test(test_clnt_answers),
        cmocka_unit_test(test_clnt_fails_open),
        cmocka_unit_test(test_clnt_reconnects),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
