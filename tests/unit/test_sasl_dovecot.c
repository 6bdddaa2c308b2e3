/*
 * test_sasl_dovecot - unit tests for the dovecot backend of lib/sasl
 * against a scripted fake Dovecot auth server (a thread on a UNIX socket):
 * the handshake and MECH flags, the exact AUTH/CONT lines sent, OK, CONT
 * and FAIL replies (reasons with Dovecot's escapes, temp, missing user,
 * malformed challenges, stray ids), multiplexed sessions, timeouts,
 * connections lost before and during an exchange and made again, an
 * overlong line, a wrong protocol version, no server at all, an overlong
 * initial response, and sessions freed while Dovecot still thinks.
 * The real Dovecot is exercised by tests/integration/test_sasl_dovecot.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "sasl/sasl_impl.h"
#include "sasl/sasl_server.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define WAIT_SECS 15       /* longest wait for one result */
#define FAKE_WAIT_MS 10000 /* longest the fake server waits for a line */

static char test_dir[64];
static struct event_base *base;

/* ---- the fake Dovecot ---- */

typedef struct FAKE FAKE;
typedef void (*FAKE_SCRIPT)(FAKE *f);

struct FAKE {
    char path[100];
    int listen_fd;
    int fd;
    pthread_t thread;
    FAKE_SCRIPT script;
    char buf[65536];
    size_t len;
    char line[65536];
    int failed;
    char error[512];
};

/* fk_fail - note the first failure of the script (cmocka is not thread-safe) */
static void fk_fail(FAKE *f, const char *fmt, ...)
{
    va_list ap;

    if (f->failed++)
        return;
    va_start(ap, fmt);
    vsnprintf(f->error, sizeof(f->error), fmt, ap);
    va_end(ap);
}

/* fk_accept - the next connection */
static int fk_accept(FAKE *f)
{
    struct pollfd p = {f->listen_fd, POLLIN, 0};

    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    f->len = 0;
    if (poll(&p, 1, FAKE_WAIT_MS) != 1) {
        fk_fail(f, "no connection");
        return -1;
    }
    f->fd = accept(f->listen_fd, NULL, NULL);
    return f->fd;
}

/* fk_line - the next line into f->line; 1, 0 at EOF, -1 on timeout */
static int fk_line(FAKE *f)
{
    for (;;) {
        char *nl = memchr(f->buf, '\n', f->len);
        struct pollfd p = {f->fd, POLLIN, 0};
        ssize_t n;

        if (nl != NULL) {
            size_t l = (size_t)(nl - f->buf);

            memcpy(f->line, f->buf, l);
            f->line[l] = 0;
            memmove(f->buf, nl + 1, f->len - l - 1);
            f->len -= l + 1;
            return 1;
        }
        if (f->fd < 0 || poll(&p, 1, FAKE_WAIT_MS) != 1)
            return -1;
        n = read(f->fd, f->buf + f->len, sizeof(f->buf) - f->len - 1);
        if (n <= 0)
            return 0;
        f->len += (size_t)n;
    }
}

/* fk_expect - the next line must start with prefix (or equal it with exact) */
static const char *fk_expect(FAKE *f, const char *prefix, int exact)
{
    int r = fk_line(f);

    if (r != 1) {
        fk_fail(f, "expected \"%s\", got %s", prefix, r == 0 ? "EOF" : "nothing");
        return "";
    }
    if (exact ? strcmp(f->line, prefix) != 0 : strncmp(f->line, prefix, strlen(prefix)) != 0)
        fk_fail(f, "expected \"%s\", got \"%s\"", prefix, f->line);
    return f->line;
}

/* fk_send - write text */
static void fk_send(FAKE *f, const char *text)
{
    if (write(f->fd, text, strlen(text)) != (ssize_t)strlen(text))
        fk_fail(f, "write failed");
}

/* fk_handshake - the client's greeting, then ours */
static void fk_handshake(FAKE *f)
{
    fk_expect(f, "VERSION\t1\t", 0);
    fk_expect(f, "CPID\t", 0);
    fk_send(f, "VERSION\t1\t2\n"
               "MECH\tPLAIN\tplaintext\n"
               "MECH\tLOGIN\tplaintext\n"
               "MECH\tAPOP\tprivate\n"
               "MECH\tCRAM-MD5\tdictionary\tactive\n"
               "MECH\tbad name\n"
               "MECH\tANONYMOUS\tanonymous\n"
               "MECH\tSCRAM-SHA-256\tmutual-auth\n"
               "SPID\t4242\nCUID\t7\nCOOKIE\t0123456789abcdef0123456789abcdef\n"
               "DONE\n");
}

/* fk_wait_eof - until the client closes; no request may come */
static void fk_wait_eof(FAKE *f)
{
    int r = fk_line(f);

    if (r == 1)
        fk_fail(f, "unexpected line \"%s\"", f->line);
    else if (r < 0)
        fk_fail(f, "the client did not close");
}

static void *fk_thread(void *context)
{
    FAKE *f = context;

    if (fk_accept(f) >= 0)
        f->script(f);
    if (f->fd >= 0)
        close(f->fd);
    return NULL;
}

/* fake_start - listen and run the script in a thread */
static FAKE *fake_start(FAKE_SCRIPT script)
{
    static int counter;
    FAKE *f = mycalloc(1, sizeof(*f));
    struct sockaddr_un sun;

    snprintf(f->path, sizeof(f->path), "%s/auth%d", test_dir, counter++);
    f->script = script;
    f->fd = -1;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->path);
    f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->listen_fd >= 0);
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(f->listen_fd, 5), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, fk_thread, f), 0);
    return f;
}

/* fake_end - wait for the script; it must have passed */
static void fake_end(FAKE *f)
{
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
    unlink(f->path);
    if (f->failed)
        fail_msg("fake Dovecot: %s", f->error);
    myfree(f);
}

/* ---- the client side ---- */

typedef struct RES {
    int calls;
    enum sasl_result result;
    char text[4096];
} RES;

static void done_cb(void *context, enum sasl_result result, const char *text)
{
    RES *res = context;

    res->calls++;
    res->result = result;
    snprintf(res->text, sizeof(res->text), "%s", text);
}

static void wait_timeout(evutil_socket_t fd, short what, void *context)
{
    (void)fd;
    (void)what;
    *(int *)context = 1;
}

/* wait_res - run the loop until the callback ran */
static void wait_res(RES *res)
{
    int timed_out = 0;
    struct timeval tv = {WAIT_SECS, 0};
    struct event *t = evtimer_new(base, wait_timeout, &timed_out);

    evtimer_add(t, &tv);
    while (res->calls == 0 && !timed_out)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    if (res->calls == 0)
        fail_msg("no SASL result within %d seconds", WAIT_SECS);
    assert_int_equal(res->calls, 1);
}

/* run_loop_for - let the loop run */
static void run_loop_for(int ms)
{
    int done = 0;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct event *t = evtimer_new(base, wait_timeout, &done);

    evtimer_add(t, &tv);
    while (!done)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
}

/* server - a dovecot backend on path */
static SASL_SERVER *server(const char *path, const char *security, long timeout, long limit)
{
    SASL_SERVER_ARGS args = {0};
    VSTR *why = vstr_alloc(64);
    SASL_SERVER *srv;

    args.type = "dovecot";
    args.path = path;
    args.security = security;
    args.tls_security = "";
    args.filter = "!external, static:rest";
    args.service = "smtp";
    args.timeout = timeout;
    args.response_limit = limit;
    args.base = base;
    srv = sasl_server_create(&args, why);
    if (srv == NULL)
        fail_msg("sasl_server_create: %s", vstr_str(why));
    vstr_free(why);
    return srv;
}

static const SASL_CLIENT_INFO plain_info = {"192.0.2.1", "40000", "192.0.2.25", "587", 0};
static const SASL_CLIENT_INFO tls_info = {"2001:db8::1", "40001", "2001:db8::25", "465", 1};

/* start - begin; the first result */
static SASL_SESS *start(SASL_SERVER *srv, const char *mech, const char *initial,
                        const SASL_CLIENT_INFO *info, RES *res)
{
    VSTR *why = vstr_alloc(64);
    SASL_SESS *sess;

    memset(res, 0, sizeof(*res));
    sess = sasl_sess_start(srv, mech, initial, info, done_cb, res, why);
    if (sess == NULL)
        fail_msg("sasl_sess_start %s: %s", mech, vstr_str(why));
    vstr_free(why);
    assert_int_equal(res->calls, 0);
    wait_res(res);
    return sess;
}

/* step - one response, one result */
static void step(SASL_SESS *sess, const char *response, RES *res)
{
    res->calls = 0;
    sasl_sess_step(sess, response, strlen(response));
    assert_int_equal(res->calls, 0);
    wait_res(res);
}

/* expect - result and text */
static void expect(const RES *res, enum sasl_result result, const char *text)
{
    if (res->result != result)
        fail_msg("result %d (\"%s\"), expected %d", res->result, res->text, result);
    if (text != NULL)
        assert_string_equal(res->text, text);
}

/* one_shot - start, expect a final result, free */
static void one_shot(SASL_SERVER *srv, const char *mech, const char *initial,
                     const SASL_CLIENT_INFO *info, enum sasl_result result, const char *text)
{
    RES res;
    SASL_SESS *sess = start(srv, mech, initial, info, &res);

    expect(&res, result, text);
    sasl_sess_free(sess);
}

/* ---- scripts and tests ---- */

static void script_handshake_only(FAKE *f)
{
    fk_handshake(f);
    fk_wait_eof(f);
}

static void test_handshake(void **unused)
{
    FAKE *f = fake_start(script_handshake_only);
    SASL_SERVER *srv = server(f->path, "noplaintext, noanonymous", 10, 0);
    VSTR *why = vstr_alloc(64);
    RES res;

    (void)unused;
    /* Learnt at the first call; APOP is private, "bad name" is no name. */
    assert_string_equal(sasl_server_mechs(srv, 0), "CRAM-MD5 SCRAM-SHA-256");
    assert_string_equal(sasl_server_mechs(srv, 1), "PLAIN LOGIN CRAM-MD5 ANONYMOUS SCRAM-SHA-256");
    assert_null(sasl_sess_start(srv, "PLAIN", NULL, &plain_info, done_cb, &res, why));
    assert_null(sasl_sess_start(srv, "APOP", NULL, &tls_info, done_cb, &res, why));
    sasl_server_free(srv);
    fake_end(f);
    vstr_free(why);
}

static void script_replies(FAKE *f)
{
    fk_handshake(f);
    fk_expect(f,
              "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=192.0.2.25\trip=192.0.2.1\tlport=587"
              "\trport=40000\tresp=AGFsaWNlAHNlY3JldA==",
              1);
    fk_send(f, "OK\t1\tuser=alice\n");
    fk_expect(f,
              "AUTH\t2\tPLAIN\tservice=smtp\tnologin\tlip=2001:db8::25\trip=2001:db8::1"
              "\tlport=465\trport=40001\tsecured\tresp=AGFsaWNlAHdyb25n",
              1);
    fk_send(f, "FAIL\t2\tuser=alice\treason=bad\001tthing \001\061\n");
    fk_expect(f, "AUTH\t3\tPLAIN\t", 0);
    fk_send(f, "FAIL\t3\n");
    fk_expect(f, "AUTH\t4\tPLAIN\t", 0);
    fk_send(f, "FAIL\t4\ttemp\treason=database down\n");
    fk_expect(f, "AUTH\t5\tPLAIN\t", 0);
    fk_send(f, "FAIL\t5\tcode=temp_fail\n");
    fk_expect(f, "AUTH\t6\tPLAIN\t", 0);
    fk_send(f, "OK\t6\n"); /* no user= */
    fk_expect(f,
              "AUTH\t7\tLOGIN\tservice=smtp\tnologin\tlip=192.0.2.25\trip=192.0.2.1\tlport=587"
              "\trport=40000",
              1);
    fk_send(f, "CONT\t7\tVXNlcm5hbWU6\n");
    fk_expect(f, "CONT\t7\tYWxpY2U=", 1);
    fk_send(f, "CONT\t7\tUGFzc3dvcmQ6\n");
    fk_expect(f, "AUTH\t8\tLOGIN\t", 0);
    fk_send(f, "CONT\t8\t!!not base64\n");
    fk_expect(f, "CONT\t7\tc2VjcmV0", 1);
    fk_send(f, "OK\t7\tuser=al\001tice\tsomething=else\n");
    fk_expect(f, "AUTH\t9\tPLAIN\t", 0);
    /* A reply for a request nobody made, an unknown command, then the answer. */
    fk_send(f, "OK\t99\tuser=mallory\nHELLO\t9\nOK\tx\nFAIL\t9\treason=Invalid base64 data\n");
    fk_expect(f,
              "AUTH\t10\tPLAIN\tservice=smtp\tnologin\tlip=192.0.2.25\trip=192.0.2.1"
              "\tlport=587\trport=40000\tresp=",
              1);
    fk_send(f, "CONT\t10\t\n");
    fk_expect(f, "CONT\t10\t", 1);
    fk_send(f, "FAIL\t10\tuser=x\n");
    fk_wait_eof(f);
}

static void test_replies(void **unused)
{
    FAKE *f = fake_start(script_replies);
    SASL_SERVER *srv = server(f->path, "noanonymous", 10, 0);
    RES res;
    SASL_SESS *sess;

    (void)unused;
    assert_string_equal(sasl_server_mechs(srv, 0), "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256");
    one_shot(srv, "plain", "AGFsaWNlAHNlY3JldA==", &plain_info, SASL_OK, "alice");
    /* Dovecot's reason, unescaped and made printable. */
    one_shot(srv, "PLAIN", "AGFsaWNlAHdyb25n", &tls_info, SASL_FAIL, "bad?thing ?");
    one_shot(srv, "PLAIN", "AGFsaWNlAHdyb25n", &plain_info, SASL_FAIL, "");
    one_shot(srv, "PLAIN", "AGFsaWNlAHdyb25n", &plain_info, SASL_TEMPFAIL, "database down");
    one_shot(srv, "PLAIN", "AGFsaWNlAHdyb25n", &plain_info, SASL_TEMPFAIL, NULL);
    one_shot(srv, "PLAIN", "AGFsaWNlAHdyb25n", &plain_info, SASL_TEMPFAIL, NULL);

    sess = start(srv, "LOGIN", NULL, &plain_info, &res);
    expect(&res, SASL_CONTINUE, "VXNlcm5hbWU6");
    step(sess, "YWxpY2U=", &res);
    expect(&res, SASL_CONTINUE, "UGFzc3dvcmQ6");
    /* Malformed base64 never reaches Dovecot. */
    {
        RES bad;
        SASL_SESS *other;

        other = start(srv, "LOGIN", NULL, &plain_info, &bad);
        expect(&bad, SASL_TEMPFAIL, NULL); /* the challenge "!!not base64" */
        sasl_sess_free(other);
    }
    step(sess, "c2VjcmV0", &res);
    expect(&res, SASL_OK, "al?ice");
    sasl_sess_free(sess);

    one_shot(srv, "PLAIN", "AGFsaWNlAHdyb25n", &plain_info, SASL_FAIL, "Invalid base64 data");

    /* "AUTH PLAIN =": an empty initial response is resp= with nothing. */
    sess = start(srv, "PLAIN", "", &plain_info, &res);
    expect(&res, SASL_CONTINUE, "");
    step(sess, "", &res);
    expect(&res, SASL_FAIL, "");
    sasl_sess_free(sess);

    /* Refused before Dovecot sees them. */
    one_shot(srv, "PLAIN", "AGFsaWNl\tAHdyb25n", &plain_info, SASL_BADPROT, NULL);
    sess = start(srv, "LOGIN", "YWxpY2U", &plain_info, &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);
    sasl_server_free(srv);
    fake_end(f);
}

static void script_multiplex(FAKE *f)
{
    fk_handshake(f);
    fk_expect(f, "AUTH\t1\tPLAIN\t", 0);
    fk_expect(f, "AUTH\t2\tPLAIN\t", 0);
    fk_send(f, "OK\t2\tuser=bob\n");
    fk_send(f, "OK\t1\tuser=alice\n");
    fk_wait_eof(f);
}

static void test_multiplex(void **unused)
{
    FAKE *f = fake_start(script_multiplex);
    SASL_SERVER *srv = server(f->path, "", 10, 0);
    VSTR *why = vstr_alloc(64);
    RES a, b;
    SASL_SESS *sa, *sb;

    (void)unused;
    assert_string_equal(sasl_server_mechs(srv, 0), "PLAIN LOGIN CRAM-MD5 ANONYMOUS SCRAM-SHA-256");
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    sa = sasl_sess_start(srv, "PLAIN", "AGFsaWNlAHNlY3JldA==", &plain_info, done_cb, &a, why);
    sb = sasl_sess_start(srv, "PLAIN", "AGJvYgBzZWNyZXQ=", &plain_info, done_cb, &b, why);
    wait_res(&a);
    wait_res(&b);
    expect(&a, SASL_OK, "alice");
    expect(&b, SASL_OK, "bob");
    sasl_sess_free(sa);
    sasl_sess_free(sb);
    sasl_server_free(srv);
    fake_end(f);
    vstr_free(why);
}

static void script_timeout(FAKE *f)
{
    fk_handshake(f);
    fk_expect(f, "AUTH\t1\tPLAIN\t", 0);
    usleep(1500 * 1000);
    fk_send(f, "OK\t1\tuser=late\n");
    fk_expect(f, "AUTH\t2\tPLAIN\t", 0);
    fk_send(f, "OK\t2\tuser=alice\n");
    /* A request freed before the answer: the answer is dropped. */
    fk_expect(f, "AUTH\t3\tPLAIN\t", 0);
    usleep(300 * 1000);
    fk_send(f, "OK\t3\tuser=gone\n");
    fk_expect(f, "AUTH\t4\tPLAIN\t", 0);
    fk_send(f, "OK\t4\tuser=alice\n");
    fk_wait_eof(f);
}

static void test_timeout_and_free(void **unused)
{
    FAKE *f = fake_start(script_timeout);
    SASL_SERVER *srv = server(f->path, "", 1, 0);
    VSTR *why = vstr_alloc(64);
    RES res;
    SASL_SESS *sess;

    (void)unused;
    assert_true(sasl_server_mechs(srv, 0)[0] != 0);
    one_shot(srv, "PLAIN", "AGFsaWNlAHNlY3JldA==", &plain_info, SASL_TEMPFAIL,
             "timeout waiting for the authentication server");
    one_shot(srv, "PLAIN", "AGFsaWNlAHNlY3JldA==", &plain_info, SASL_OK, "alice");
    memset(&res, 0, sizeof(res));
    sess = sasl_sess_start(srv, "PLAIN", "AGFsaWNlAHNlY3JldA==", &plain_info, done_cb, &res, why);
    assert_non_null(sess);
    run_loop_for(50);
    sasl_sess_free(sess);
    run_loop_for(600);
    assert_int_equal(res.calls, 0);
    one_shot(srv, "PLAIN", "AGFsaWNlAHNlY3JldA==", &plain_info, SASL_OK, "alice");
    sasl_server_free(srv);
    fake_end(f);
    vstr_free(why);
}

static void script_reconnect(FAKE *f)
{
    /* Lost while a request waits. */
    fk_handshake(f);
    fk_expect(f, "AUTH\t1\tPLAIN\t", 0);
    if (fk_accept(f) < 0)
        return;
    /* The next AUTH connects again; lost in the middle of an exchange. */
    fk_handshake(f);
    fk_expect(f, "AUTH\t2\tLOGIN\t", 0);
    fk_send(f, "CONT\t2\tVXNlcm5hbWU6\n");
    usleep(200 * 1000);
    if (fk_accept(f) < 0)
        return;
    fk_handshake(f);
    fk_expect(f, "AUTH\t3\tPLAIN\t", 0);
    fk_send(f, "OK\t3\tuser=alice\n");
    /* An overlong line from the server drops the connection. */
    fk_expect(f, "AUTH\t4\tPLAIN\t", 0);
    {
        static char big[20001];

        memset(big, 'A', sizeof(big) - 1);
        fk_send(f, big);
    }
    if (fk_accept(f) < 0)
        return;
    fk_handshake(f);
    fk_expect(f, "AUTH\t5\tPLAIN\t", 0);
    fk_send(f, "OK\t5\tuser=alice\n");
    fk_wait_eof(f);
}

static void test_reconnect(void **unused)
{
    FAKE *f = fake_start(script_reconnect);
    SASL_SERVER *srv = server(f->path, "", 10, 0);
    RES res;
    SASL_SESS *sess;

    (void)unused;
    assert_true(sasl_server_mechs(srv, 0)[0] != 0);
    one_shot(srv, "PLAIN", "AGFsaWNlAHNlY3JldA==", &plain_info, SASL_TEMPFAIL,
             "connection to the authentication server lost");
    /* The list stays offered while disconnected. */
    assert_string_equal(sasl_server_mechs(srv, 0), "PLAIN LOGIN CRAM-MD5 ANONYMOUS SCRAM-SHA-256");
    sess = start(srv, "LOGIN", NULL, &plain_info, &res);
    expect(&res, SASL_CONTINUE, "VXNlcm5hbWU6");
    run_loop_for(400); /* the server hangs up meanwhile */
    step(sess, "YWxpY2U=", &res);
    expect(&res, SASL_TEMPFAIL, "connection to the authentication server lost");
    sasl_sess_free(sess);
    one_shot(srv, "PLAIN", "AGFsaWNlAHNlY3JldA==", &plain_info, SASL_OK, "alice");
    one_shot(srv, "PLAIN", "AGFsaWNlAHNlY3JldA==", &plain_info, SASL_TEMPFAIL, NULL);
    one_shot(srv, "PLAIN", "AGFsaWNlAHNlY3JldA==", &plain_info, SASL_OK, "alice");
    sasl_server_free(srv);
    fake_end(f);
}

static void script_bad_version(FAKE *f)
{
    fk_expect(f, "VERSION\t1\t", 0);
    fk_expect(f, "CPID\t", 0);
    fk_send(f, "VERSION\t2\t0\nMECH\tPLAIN\tplaintext\nDONE\n");
    fk_wait_eof(f);
}

static void script_no_version(FAKE *f)
{
    fk_expect(f, "VERSION\t1\t", 0);
    fk_expect(f, "CPID\t", 0);
    fk_send(f, "MECH\tPLAIN\tplaintext\nDONE\n");
    fk_wait_eof(f);
}

static void test_bad_servers(void **unused)
{
    FAKE *f;
    SASL_SERVER *srv;
    VSTR *why = vstr_alloc(64);
    RES res;
    char path[600];
    struct timespec a, b;

    (void)unused;
    f = fake_start(script_bad_version);
    srv = server(f->path, "", 10, 0);
    assert_string_equal(sasl_server_mechs(srv, 0), "");
    assert_null(sasl_sess_start(srv, "PLAIN", NULL, &plain_info, done_cb, &res, why));
    fake_end(f);
    sasl_server_free(srv);

    f = fake_start(script_no_version);
    srv = server(f->path, "", 10, 0);
    assert_string_equal(sasl_server_mechs(srv, 0), "");
    fake_end(f);
    sasl_server_free(srv);

    /* Nobody listening: no AUTH offered, at once, and no retry storm. */
    snprintf(path, sizeof(path), "%s/no-such-socket", test_dir);
    srv = server(path, "", 10, 0);
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_string_equal(sasl_server_mechs(srv, 0), "");
    assert_string_equal(sasl_server_mechs(srv, 1), "");
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_true(b.tv_sec - a.tv_sec < 2);
    sasl_server_free(srv);

    /* Settings. */
    {
        SASL_SERVER_ARGS args = {0};

        args.type = "dovecot";
        args.base = base;
        args.path = "inet:127.0.0.1:12345";
        assert_null(sasl_server_create(&args, why));
        args.path = "";
        assert_null(sasl_server_create(&args, why));
        memset(path, 'x', sizeof(path) - 1);
        path[sizeof(path) - 1] = 0;
        args.path = path;
        assert_null(sasl_server_create(&args, why));
        args.path = "unix:private/auth";
        args.service = "sm\ttp";
        assert_null(sasl_server_create(&args, why));
        args.service = NULL;
        srv = sasl_server_create(&args, why);
        assert_non_null(srv);
        sasl_server_free(srv);
    }
    vstr_free(why);
}

static void test_long_initial(void **unused)
{
    FAKE *f = fake_start(script_handshake_only);
    SASL_SERVER *srv = server(f->path, "", 10, 20000);
    char *big = mymalloc(17001);

    (void)unused;
    memset(big, 'A', 17000);
    big[17000] = 0;
    assert_true(sasl_server_mechs(srv, 0)[0] != 0);
    /* Within smtpd_sasl_response_limit, beyond Dovecot's line length. */
    one_shot(srv, "PLAIN", big, &plain_info, SASL_BADPROT, NULL);
    sasl_server_free(srv);
    fake_end(f);

    /* Beyond smtpd_sasl_response_limit: refused before the backend. */
    f = fake_start(script_handshake_only);
    srv = server(f->path, "", 10, 100);
    big[104] = 0;
    one_shot(srv, "PLAIN", big, &plain_info, SASL_BADPROT, "initial response too long");
    sasl_server_free(srv);
    fake_end(f);
    myfree(big);
}

static int group_setup(void **unused)
{
    (void)unused;
    msg_init("test_sasl_dovecot");
    signal(SIGPIPE, SIG_IGN); /* as every Postern daemon does */
    snprintf(test_dir, sizeof(test_dir), "/tmp/test_sasl_dv.XXXXXX");
    if (mkdtemp(test_dir) == NULL)
        return -1;
    base = event_base_new();
    return base ? 0 : -1;
}

static int group_teardown(void **unused)
{
    char cmd[300];

    (void)unused;
    event_base_free(base);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", test_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake),    cmocka_unit_test(test_replies),
        cmocka_unit_test(test_multiplex),    cmocka_unit_test(test_timeout_and_free),
        cmocka_unit_test(test_reconnect),    cmocka_unit_test(test_bad_servers),
        cmocka_unit_test(test_long_initial),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
