/*
 * test_sasl_postern - unit tests for lib/sasl through its public interface
 * with the postern backend: a texthash: password table holding yescrypt,
 * sha512-crypt and bcrypt hashes made at test time, {PLAIN}, Dovecot-style
 * {SHA512-CRYPT}/{BLF-CRYPT} tags and {SCRAM-SHA-256} secrets; PLAIN
 * (RFC 4616 vectors), LOGIN, CRAM-MD5 (RFC 2195 example) and SCRAM-SHA-256
 * (RFC 7677 vector and a full client) exchanges, good and bad; malformed
 * responses; security options and the mechanism filter; results that
 * arrive only from the event loop; sessions freed while crypt(3) runs; and
 * a miss costing about what a wrong password costs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "sasl/sasl_impl.h"
#include "sasl/sasl_server.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define WAIT_SECS 30 /* longest wait for one result */
#define ALL_MECHS "PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256"

static char test_dir[256];
static char table_spec[600];
static struct event_base *base;

/* ---- results ---- */

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

/* wait_res - run the loop until the callback ran once */
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

/* run_loop_for - let the loop run for ms milliseconds */
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

/* b64 - base64 of len octets (static buffer) */
static const char *b64(const void *data, size_t len)
{
    static char buf[4096];
    VSTR *v = vstr_alloc(64);

    sasl_b64_encode(data, len, v);
    snprintf(buf, sizeof(buf), "%s", vstr_str(v));
    vstr_free(v);
    return buf;
}

/* b64s - base64 of a C string */
static const char *b64s(const char *s)
{
    return b64(s, strlen(s));
}

/* unb64 - decode a challenge (static buffer, NUL-terminated) */
static const char *unb64(const char *text)
{
    static char buf[4096];
    VSTR *v = vstr_alloc(64);

    assert_int_equal(sasl_b64_decode(text, strlen(text), v), 0);
    snprintf(buf, sizeof(buf), "%s", vstr_str(v));
    vstr_free(v);
    return buf;
}

/* ---- server and session helpers ---- */

/* server - a postern server on the test table */
static SASL_SERVER *server(const char *mechs, const char *security, const char *filter, long limit)
{
    SASL_SERVER_ARGS args = {0};
    VSTR *why = vstr_alloc(64);
    SASL_SERVER *srv;

    args.type = "postern";
    args.path = table_spec;
    args.mechanisms = mechs;
    args.security = security;
    args.tls_security = "";
    args.filter = filter;
    args.service = "smtp";
    args.timeout = 10;
    args.response_limit = limit;
    args.base = base;
    args.crypt_workers = 2;
    srv = sasl_server_create(&args, why);
    if (srv == NULL)
        fail_msg("sasl_server_create: %s", vstr_str(why));
    vstr_free(why);
    return srv;
}

static const SASL_CLIENT_INFO plain_info = {"192.0.2.1", "40000", "192.0.2.25", "587", 0};
static const SASL_CLIENT_INFO tls_info = {"192.0.2.1", "40000", "192.0.2.25", "587", 1};

/* start - begin and wait for the first result */
static SASL_SESS *start(SASL_SERVER *srv, const char *mech, const char *initial, RES *res)
{
    VSTR *why = vstr_alloc(64);
    SASL_SESS *sess;

    memset(res, 0, sizeof(*res));
    sess = sasl_sess_start(srv, mech, initial, &plain_info, done_cb, res, why);
    if (sess == NULL)
        fail_msg("sasl_sess_start %s: %s", mech, vstr_str(why));
    vstr_free(why);
    /* Never a callback from inside sasl_sess_start. */
    assert_int_equal(res->calls, 0);
    wait_res(res);
    return sess;
}

/* step - one more response and its result */
static void step(SASL_SESS *sess, const char *response, RES *res)
{
    res->calls = 0;
    sasl_sess_step(sess, response, strlen(response));
    assert_int_equal(res->calls, 0);
    wait_res(res);
}

/* expect - the result and its text */
static void expect(const RES *res, enum sasl_result result, const char *text)
{
    if (res->result != result)
        fail_msg("result %d (\"%s\"), expected %d", res->result, res->text, result);
    if (text != NULL)
        assert_string_equal(res->text, text);
}

/* plain_auth - AUTH PLAIN with an initial response; the final result */
static void plain_auth(SASL_SERVER *srv, const char *authzid, const char *user, const char *pass,
                       enum sasl_result result, const char *text)
{
    char msg[1024];
    size_t len = (size_t)snprintf(msg, sizeof(msg), "%s%c%s%c%s", authzid, 0, user, 0, pass);
    RES res;
    SASL_SESS *sess = start(srv, "PLAIN", b64(msg, len), &res);

    expect(&res, result, text);
    assert_string_equal(sasl_sess_mech(sess), "PLAIN");
    sasl_sess_free(sess);
}

/* ---- the table ---- */

/* make_hash - crypt(3) hash of pw with a fresh setting for prefix */
static char *make_hash(const char *prefix, const char *pw)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data cd;
    const char *h;

    memset(&cd, 0, sizeof(cd));
    assert_non_null(crypt_gensalt_rn(prefix, 0, NULL, 0, setting, (int)sizeof(setting)));
    h = crypt_rn(pw, setting, &cd, (int)sizeof(cd));
    assert_non_null(h);
    assert_true(h[0] == '$');
    return mystrdup(h);
}

/* scram_secret - "{SCRAM-SHA-256}iter,salt,stored,server" for pw (static) */
static const char *scram_secret(const char *pw, const char *salt_b64, long iter)
{
    static char buf[512];
    unsigned char stored[SASL_KEY_LEN], srvkey[SASL_KEY_LEN];
    VSTR *salt = vstr_alloc(32);
    int n;

    assert_int_equal(sasl_b64_decode(salt_b64, strlen(salt_b64), salt), 0);
    sasl_scram_keys(pw, strlen(pw), (unsigned char *)vstr_str(salt), vstr_len(salt), iter, stored,
                    srvkey);
    n = snprintf(buf, sizeof(buf), "{SCRAM-SHA-256}%ld,%s,", iter, salt_b64);
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s,", b64(stored, sizeof(stored)));
    snprintf(buf + n, sizeof(buf) - (size_t)n, "%s", b64(srvkey, sizeof(srvkey)));
    vstr_free(salt);
    return buf;
}

static int group_setup(void **unused)
{
    char path[512];
    FILE *fp;
    char *yes, *sha512, *bcrypt, *blf, *sha256;

    (void)unused;
    msg_init("test_sasl_postern");
    snprintf(test_dir, sizeof(test_dir), "/tmp/test_sasl_postern.XXXXXX");
    if (mkdtemp(test_dir) == NULL)
        return -1;
    base = event_base_new();
    yes = make_hash("$y$", "alicepw");
    sha512 = make_hash("$6$", "bobpw");
    bcrypt = make_hash("$2b$", "carolpw");
    blf = make_hash("$2b$", "frankpw");
    sha256 = make_hash("$5$", "kimpw");
    snprintf(path, sizeof(path), "%s/passwd", test_dir);
    fp = fopen(path, "w");
    if (fp == NULL)
        return -1;
    fprintf(fp, "# login   secret\n");
    fprintf(fp, "alice %s\n", yes);
    fprintf(fp, "bob {SHA512-CRYPT}%s\n", sha512);
    fprintf(fp, "carol %s\n", bcrypt);
    fprintf(fp, "dave {PLAIN}davepw\n");
    fprintf(fp, "frank {BLF-CRYPT}%s\n", blf);
    fprintf(fp, "kim {crypt}%s\n", sha256);
    fprintf(fp, "tim {PLAIN}tanstaaftanstaaf\n");
    fprintf(fp, "user %s\n", scram_secret("pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", 4096));
    /* doveadm pw -s SCRAM-SHA-256 -p pencil */
    fprintf(fp, "erin {SCRAM-SHA-256}4096,VIqzW6YqxCEC/qNe0O/XPg==,"
                "MmH4uGiQI9XAENp83SzuL+UBCPejUmYWL/oD+eO/WIA=,"
                "u/zi76ySkjbhpVCtu5wguSo7B4fW3Jp7meOzOVkCtCQ=\n");
    fprintf(fp, "gina {MD4}0123456789abcdef\n");
    fprintf(fp, "hank !%s\n", yes);
    fprintf(fp, "ivan {PLAIN}p\xc3\xa4sswort\n");
    fprintf(fp, "jack {SCRAM-SHA-256}4096,broken\n");
    fprintf(fp, "lena nonsense-hash\n");
    fclose(fp);
    snprintf(table_spec, sizeof(table_spec), "texthash:%s", path);
    myfree(yes);
    myfree(sha512);
    myfree(bcrypt);
    myfree(blf);
    myfree(sha256);
    return 0;
}

static int group_teardown(void **unused)
{
    char cmd[300];

    (void)unused;
    event_base_free(base);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", test_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- tests ---- */

static void test_create_errors(void **unused)
{
    SASL_SERVER_ARGS args = {0};
    VSTR *why = vstr_alloc(64);
    char missing[600];

    (void)unused;
    args.type = "postern";
    args.path = table_spec;
    args.security = "noanonymous";
    args.base = base;

    args.type = "cyrus";
    assert_null(sasl_server_create(&args, why));
    assert_non_null(strstr(vstr_str(why), "not available"));
    args.type = "kerberos";
    assert_null(sasl_server_create(&args, why));
    args.type = NULL;
    assert_null(sasl_server_create(&args, why));
    args.type = "postern";

    args.path = "";
    assert_null(sasl_server_create(&args, why));
    assert_non_null(strstr(vstr_str(why), "smtpd_sasl_password_maps"));
    snprintf(missing, sizeof(missing), "hash:%s/no-such-table", test_dir);
    args.path = missing;
    assert_null(sasl_server_create(&args, why));
    args.path = table_spec;

    args.mechanisms = "PLAIN, DIGEST-MD5";
    assert_null(sasl_server_create(&args, why));
    assert_non_null(strstr(vstr_str(why), "DIGEST-MD5"));
    args.mechanisms = NULL;

    args.security = "noplaintext, sometimes";
    assert_null(sasl_server_create(&args, why));
    args.security = "noanonymous";
    args.filter = "!";
    assert_null(sasl_server_create(&args, why));
    args.filter = NULL;
    args.base = NULL;
    assert_null(sasl_server_create(&args, why));
    args.base = base;

    /* And the defaults work: PLAIN and LOGIN. */
    {
        SASL_SERVER *srv = sasl_server_create(&args, why);

        assert_non_null(srv);
        assert_string_equal(sasl_server_mechs(srv, 0), "PLAIN LOGIN");
        sasl_server_free(srv);
    }
    vstr_free(why);
}

static void test_mechs_and_options(void **unused)
{
    SASL_SERVER *srv;
    VSTR *why = vstr_alloc(64);
    RES res;

    (void)unused;
    srv = server(ALL_MECHS ", plain", "noanonymous", "!external, static:rest", 0);
    assert_string_equal(sasl_server_mechs(srv, 0), "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256");
    sasl_server_free(srv);

    /* noplaintext without TLS, nothing demanded with TLS (args.tls_security = ""). */
    srv = server(ALL_MECHS, "noplaintext, noanonymous", NULL, 0);
    assert_string_equal(sasl_server_mechs(srv, 0), "CRAM-MD5 SCRAM-SHA-256");
    assert_string_equal(sasl_server_mechs(srv, 1), "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256");
    memset(&res, 0, sizeof(res));
    assert_null(sasl_sess_start(srv, "plain", NULL, &plain_info, done_cb, &res, why));
    assert_true(vstr_len(why) > 0);
    {
        SASL_SESS *sess = sasl_sess_start(srv, "plain", NULL, &tls_info, done_cb, &res, why);

        assert_non_null(sess);
        assert_string_equal(sasl_sess_mech(sess), "PLAIN");
        sasl_sess_free(sess); /* before the first result: it never comes */
        run_loop_for(50);
        assert_int_equal(res.calls, 0);
    }
    sasl_server_free(srv);

    srv = server(ALL_MECHS, "mutual_auth", NULL, 0);
    assert_string_equal(sasl_server_mechs(srv, 0), "SCRAM-SHA-256");
    sasl_server_free(srv);

    srv = server(ALL_MECHS, "noactive", NULL, 0);
    assert_string_equal(sasl_server_mechs(srv, 0), "SCRAM-SHA-256");
    sasl_server_free(srv);

    srv = server(ALL_MECHS, "nodictionary", NULL, 0);
    assert_string_equal(sasl_server_mechs(srv, 0), "");
    sasl_server_free(srv);

    srv = server(ALL_MECHS, "", "login, plain", 0);
    assert_string_equal(sasl_server_mechs(srv, 0), "PLAIN LOGIN");
    assert_null(sasl_sess_start(srv, "CRAM-MD5", NULL, &plain_info, done_cb, &res, why));
    assert_null(sasl_sess_start(srv, "NO-SUCH", NULL, &plain_info, done_cb, &res, why));
    assert_null(sasl_sess_start(srv, "", NULL, &plain_info, done_cb, &res, why));
    sasl_server_free(srv);
    vstr_free(why);
}

static void test_plain_good(void **unused)
{
    SASL_SERVER *srv = server(ALL_MECHS, "", NULL, 0);

    (void)unused;
    plain_auth(srv, "", "alice", "alicepw", SASL_OK, "alice");      /* yescrypt */
    plain_auth(srv, "", "bob", "bobpw", SASL_OK, "bob");            /* {SHA512-CRYPT} */
    plain_auth(srv, "", "carol", "carolpw", SASL_OK, "carol");      /* bcrypt */
    plain_auth(srv, "", "dave", "davepw", SASL_OK, "dave");         /* {PLAIN} */
    plain_auth(srv, "", "frank", "frankpw", SASL_OK, "frank");      /* {BLF-CRYPT} */
    plain_auth(srv, "", "kim", "kimpw", SASL_OK, "kim");            /* {crypt} sha256 */
    plain_auth(srv, "", "user", "pencil", SASL_OK, "user");         /* {SCRAM-SHA-256} */
    plain_auth(srv, "", "erin", "pencil", SASL_OK, "erin");         /* Dovecot's secret */
    plain_auth(srv, "", "tim", "tanstaaftanstaaf", SASL_OK, "tim"); /* RFC 4616 example */
    /* The table folds case; the name reported is the one given. */
    plain_auth(srv, "", "Alice", "alicepw", SASL_OK, "Alice");
    /* authzid equal to authcid is fine. */
    plain_auth(srv, "alice", "alice", "alicepw", SASL_OK, "alice");

    /* Without an initial response: an empty challenge first. */
    {
        RES res;
        SASL_SESS *sess = start(srv, "PLAIN", NULL, &res);
        char msg[] = "\0dave\0davepw";

        expect(&res, SASL_CONTINUE, "");
        step(sess, b64(msg, sizeof(msg) - 1), &res);
        expect(&res, SASL_OK, "dave");
        sasl_sess_free(sess);
    }
    sasl_server_free(srv);
}

static void test_plain_bad(void **unused)
{
    SASL_SERVER *srv = server(ALL_MECHS, "", NULL, 0);

    (void)unused;
    /* Every failure looks the same. */
    plain_auth(srv, "", "alice", "wrong", SASL_FAIL, SASL_FAIL_TEXT);
    plain_auth(srv, "", "alice", "alicepwx", SASL_FAIL, SASL_FAIL_TEXT);
    plain_auth(srv, "", "bob", "alicepw", SASL_FAIL, SASL_FAIL_TEXT);
    plain_auth(srv, "", "carol", "carolp", SASL_FAIL, SASL_FAIL_TEXT);
    plain_auth(srv, "", "dave", "davepW", SASL_FAIL, SASL_FAIL_TEXT);
    plain_auth(srv, "", "dave", "davepw ", SASL_FAIL, SASL_FAIL_TEXT);
    plain_auth(srv, "", "user", "pencil2", SASL_FAIL, SASL_FAIL_TEXT);
    plain_auth(srv, "", "nobody", "whatever", SASL_FAIL, SASL_FAIL_TEXT); /* miss */
    plain_auth(srv, "", "gina", "x", SASL_FAIL, SASL_FAIL_TEXT);          /* unknown scheme */
    plain_auth(srv, "", "hank", "alicepw", SASL_FAIL, SASL_FAIL_TEXT);    /* locked */
    plain_auth(srv, "", "jack", "pencil", SASL_FAIL, SASL_FAIL_TEXT);     /* broken secret */
    plain_auth(srv, "", "lena", "nonsense", SASL_FAIL, SASL_FAIL_TEXT);   /* not a hash */
    /* RFC 4616 example 2: acting for someone else is refused. */
    plain_auth(srv, "dave", "alice", "alicepw", SASL_FAIL, SASL_FAIL_TEXT);
    sasl_server_free(srv);
}

static void test_plain_malformed(void **unused)
{
    SASL_SERVER *srv = server(ALL_MECHS, "", NULL, 64);
    static const char *const bad_b64[] = {"AGFsaWNl AHNlY3JldA==", "AGFsaWNlAHNlY3JldA",
                                          "AGFsaWNlAHNlY3JldA=", "*", "AGFsaWNlAHNlY3Jld=A="};
    RES res;
    SASL_SESS *sess;
    char big[100];

    (void)unused;
    for (size_t i = 0; i < sizeof(bad_b64) / sizeof(bad_b64[0]); i++) {
        sess = start(srv, "PLAIN", bad_b64[i], &res);
        expect(&res, SASL_BADPROT, NULL);
        sasl_sess_free(sess);
    }
    /* Shapes RFC 4616 does not allow. */
    sess = start(srv, "PLAIN", b64s("alicealicepw"), &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);
    sess = start(srv, "PLAIN", b64("\0alice\0alice\0pw", 15), &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);
    sess = start(srv, "PLAIN", b64("\0\0pw", 4), &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);
    sess = start(srv, "PLAIN", "", &res); /* "AUTH PLAIN =" */
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);
    sess = start(srv, "PLAIN", b64("\0al\nice\0pw", 10), &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);

    /* Longer than smtpd_sasl_response_limit (64 here): initial and later. */
    memset(big, 'A', 68);
    big[68] = 0;
    sess = start(srv, "PLAIN", big, &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);
    sess = start(srv, "PLAIN", NULL, &res);
    expect(&res, SASL_CONTINUE, "");
    step(sess, big, &res);
    expect(&res, SASL_BADPROT, NULL);
    /* Anything after a final result is refused too. */
    step(sess, b64("\0dave\0davepw", 12), &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);

    /* A response while the previous one is being checked ends the exchange. */
    sess = start(srv, "PLAIN", NULL, &res);
    res.calls = 0;
    sasl_sess_step(sess, b64("\0alice\0alicepw", 14), 20);
    sasl_sess_step(sess, "AAAA", 4);
    wait_res(&res);
    expect(&res, SASL_BADPROT, NULL);
    run_loop_for(300);
    assert_int_equal(res.calls, 1);
    sasl_sess_free(sess);
    sasl_server_free(srv);
}

static void test_login(void **unused)
{
    SASL_SERVER *srv = server(ALL_MECHS, "", NULL, 0);
    RES res;
    SASL_SESS *sess;

    (void)unused;
    sess = start(srv, "login", NULL, &res);
    expect(&res, SASL_CONTINUE, "VXNlcm5hbWU6");
    assert_string_equal(sasl_sess_mech(sess), "LOGIN");
    step(sess, b64s("carol"), &res);
    expect(&res, SASL_CONTINUE, "UGFzc3dvcmQ6");
    step(sess, b64s("carolpw"), &res);
    expect(&res, SASL_OK, "carol");
    sasl_sess_free(sess);

    /* The user name as initial response. */
    sess = start(srv, "LOGIN", b64s("alice"), &res);
    expect(&res, SASL_CONTINUE, "UGFzc3dvcmQ6");
    step(sess, b64s("bad"), &res);
    expect(&res, SASL_FAIL, SASL_FAIL_TEXT);
    sasl_sess_free(sess);

    sess = start(srv, "LOGIN", NULL, &res);
    step(sess, b64s("nobody"), &res);
    expect(&res, SASL_CONTINUE, "UGFzc3dvcmQ6");
    step(sess, b64s("secret"), &res);
    expect(&res, SASL_FAIL, SASL_FAIL_TEXT);
    sasl_sess_free(sess);

    /* Malformed. */
    sess = start(srv, "LOGIN", NULL, &res);
    step(sess, b64("al\0ice", 6), &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);
    sess = start(srv, "LOGIN", NULL, &res);
    step(sess, "", &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);
    sess = start(srv, "LOGIN", NULL, &res);
    step(sess, b64s("alice"), &res);
    step(sess, b64("alice\0pw", 8), &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);
    sess = start(srv, "LOGIN", NULL, &res);
    step(sess, "YWxpY2U", &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);
    sasl_server_free(srv);
}

static void test_cram_md5(void **unused)
{
    static const char challenge[] = "<1896.697170952@postoffice.reston.mci.net>";
    SASL_SERVER *srv = server(ALL_MECHS, "", NULL, 0);
    RES res;
    SASL_SESS *sess;

    (void)unused;
    /* RFC 2195 section 2, with the challenge of the example. */
    sasl_test_cram_challenge(challenge);
    sess = start(srv, "CRAM-MD5", NULL, &res);
    expect(&res, SASL_CONTINUE, "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
    step(sess, b64s("tim b913a602c7eda7a495b4e6e7334d3890"), &res);
    expect(&res, SASL_OK, "tim");
    sasl_sess_free(sess);

    sess = start(srv, "CRAM-MD5", NULL, &res);
    step(sess, b64s("tim b913a602c7eda7a495b4e6e7334d3891"), &res);
    expect(&res, SASL_FAIL, SASL_FAIL_TEXT);
    sasl_sess_free(sess);

    /* A user without a plaintext-equivalent secret, and a missing user. */
    sess = start(srv, "CRAM-MD5", NULL, &res);
    step(sess, b64s("alice b913a602c7eda7a495b4e6e7334d3890"), &res);
    expect(&res, SASL_FAIL, SASL_FAIL_TEXT);
    sasl_sess_free(sess);
    sess = start(srv, "CRAM-MD5", NULL, &res);
    step(sess, b64s("nobody b913a602c7eda7a495b4e6e7334d3890"), &res);
    expect(&res, SASL_FAIL, SASL_FAIL_TEXT);
    sasl_sess_free(sess);
    sasl_test_cram_challenge(NULL);

    /* A real challenge is fresh each time. */
    sess = start(srv, "CRAM-MD5", NULL, &res);
    expect(&res, SASL_CONTINUE, NULL);
    {
        char first[256];
        SASL_SESS *other;
        RES res2;

        snprintf(first, sizeof(first), "%s", unb64(res.text));
        assert_true(first[0] == '<' && first[strlen(first) - 1] == '>');
        other = start(srv, "CRAM-MD5", NULL, &res2);
        assert_string_not_equal(first, unb64(res2.text));
        sasl_sess_free(other);
    }
    /* Malformed response. */
    step(sess, b64s("tim b913a602"), &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);
    /* The server speaks first: no initial response. */
    sess = start(srv, "CRAM-MD5", b64s("tim"), &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);
    sasl_server_free(srv);
}

/* ---- SCRAM ---- */

#define RFC7677_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC7677_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC7677_SERVER_FIRST                                                                       \
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC7677_FINAL                                                                              \
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+"               \
    "Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC7677_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static void test_scram_rfc7677(void **unused)
{
    SASL_SERVER *srv = server(ALL_MECHS, "", NULL, 0);
    RES res;
    SASL_SESS *sess;

    (void)unused;
    sasl_test_scram_nonce(RFC7677_SNONCE);
    sess = start(srv, "SCRAM-SHA-256", b64s(RFC7677_FIRST), &res);
    expect(&res, SASL_CONTINUE, NULL);
    assert_string_equal(unb64(res.text), RFC7677_SERVER_FIRST);
    step(sess, b64s(RFC7677_FINAL), &res);
    expect(&res, SASL_CONTINUE, NULL);
    assert_string_equal(unb64(res.text), RFC7677_SERVER_FINAL);
    step(sess, "", &res);
    expect(&res, SASL_OK, "user");
    sasl_sess_free(sess);

    /* Without an initial response; then something other than the empty answer. */
    sess = start(srv, "SCRAM-SHA-256", NULL, &res);
    expect(&res, SASL_CONTINUE, "");
    step(sess, b64s(RFC7677_FIRST), &res);
    assert_string_equal(unb64(res.text), RFC7677_SERVER_FIRST);
    step(sess, b64s(RFC7677_FINAL), &res);
    expect(&res, SASL_CONTINUE, NULL);
    step(sess, b64s("v=x"), &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);

    /* A proof for another password. */
    sess = start(srv, "SCRAM-SHA-256", b64s(RFC7677_FIRST), &res);
    step(sess,
         b64s("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
              "p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
         &res);
    expect(&res, SASL_FAIL, SASL_FAIL_TEXT);
    sasl_sess_free(sess);

    /* Malformed messages. */
    sess = start(srv, "SCRAM-SHA-256", b64s("p=tls-server-end-point,,n=user,r=abc"), &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);
    sess = start(srv, "SCRAM-SHA-256", b64s(RFC7677_FIRST), &res);
    step(sess, b64s("c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
         &res);
    expect(&res, SASL_BADPROT, NULL);
    sasl_sess_free(sess);
    /* An authzid other than the user. */
    sess = start(srv, "SCRAM-SHA-256", b64s("n,a=admin,n=user,r=rOprNGfwEbeRWgbNEkqO"), &res);
    expect(&res, SASL_FAIL, SASL_FAIL_TEXT);
    sasl_sess_free(sess);
    sasl_test_scram_nonce(NULL);
    sasl_server_free(srv);
}

/* scram_client - a whole SCRAM-SHA-256 exchange as a client; the final result */
static enum sasl_result scram_client(SASL_SERVER *srv, const char *user, const char *pw,
                                     char *salt_out, size_t salt_size)
{
    char first_bare[256], server_first[512], final_np[512], authmsg[2048], final[5000];
    unsigned char salted[32], ckey[32], stored[32], sig[32], proof[32], skey[32], ssig[32];
    unsigned int len;
    const char *nonce, *salt, *iter;
    char *cp;
    VSTR *salt_bin = vstr_alloc(32);
    RES res;
    SASL_SESS *sess;
    char first[300];
    enum sasl_result result;

    snprintf(first_bare, sizeof(first_bare), "n=%s,r=fyko+d2lbbFgONRv9qkxdawL", user);
    snprintf(first, sizeof(first), "n,,%s", first_bare);
    sess = start(srv, "SCRAM-SHA-256", b64s(first), &res);
    expect(&res, SASL_CONTINUE, NULL);
    snprintf(server_first, sizeof(server_first), "%s", unb64(res.text));
    /* r=...,s=...,i=... */
    cp = mystrdup(server_first);
    nonce = strtok(cp, ",") + 2;
    salt = strtok(NULL, ",") + 2;
    iter = strtok(NULL, ",") + 2;
    assert_true(strncmp(nonce, "fyko+d2lbbFgONRv9qkxdawL", 24) == 0);
    assert_true(strlen(nonce) > 24);
    if (salt_out)
        snprintf(salt_out, salt_size, "%s", salt);
    assert_int_equal(sasl_b64_decode(salt, strlen(salt), salt_bin), 0);
    assert_int_equal(PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), (unsigned char *)vstr_str(salt_bin),
                                       (int)vstr_len(salt_bin), atoi(iter), EVP_sha256(), 32,
                                       salted),
                     1);
    HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, ckey, &len);
    SHA256(ckey, 32, stored);
    snprintf(final_np, sizeof(final_np), "c=biws,r=%s", nonce);
    snprintf(authmsg, sizeof(authmsg), "%s,%s,%s", first_bare, server_first, final_np);
    HMAC(EVP_sha256(), stored, 32, (const unsigned char *)authmsg, strlen(authmsg), sig, &len);
    for (int i = 0; i < 32; i++)
        proof[i] = ckey[i] ^ sig[i];
    snprintf(final, sizeof(final), "%s,p=%s", final_np, b64(proof, 32));
    step(sess, b64s(final), &res);
    result = res.result;
    if (result == SASL_CONTINUE) {
        char expected[4200];

        HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Server Key", 10, skey, &len);
        HMAC(EVP_sha256(), skey, 32, (const unsigned char *)authmsg, strlen(authmsg), ssig, &len);
        snprintf(expected, sizeof(expected), "v=%s", b64(ssig, 32));
        assert_string_equal(unb64(res.text), expected);
        step(sess, "", &res);
        result = res.result;
        if (result == SASL_OK)
            assert_string_equal(res.text, user);
    } else if (result == SASL_FAIL) {
        assert_string_equal(res.text, SASL_FAIL_TEXT);
    }
    myfree(cp);
    vstr_free(salt_bin);
    sasl_sess_free(sess);
    return result;
}

static void test_scram_client(void **unused)
{
    SASL_SERVER *srv = server(ALL_MECHS, "", NULL, 0);
    char salt1[100], salt2[100];

    (void)unused;
    /* {PLAIN}, stored SCRAM secrets (ours and Dovecot's). */
    assert_int_equal(scram_client(srv, "dave", "davepw", salt1, sizeof(salt1)), SASL_OK);
    assert_int_equal(scram_client(srv, "dave", "davepw", salt2, sizeof(salt2)), SASL_OK);
    assert_string_equal(salt1, salt2);
    assert_int_equal(scram_client(srv, "erin", "pencil", NULL, 0), SASL_OK);
    assert_int_equal(scram_client(srv, "user", "pencil", salt1, sizeof(salt1)), SASL_OK);
    assert_string_equal(salt1, "W22ZaJ0SNY7soEsUEjb6gQ==");
    assert_int_equal(scram_client(srv, "dave", "wrong", NULL, 0), SASL_FAIL);
    assert_int_equal(scram_client(srv, "erin", "pencil2", NULL, 0), SASL_FAIL);

    /* An unknown user gets a stable made-up salt and fails only at the proof. */
    assert_int_equal(scram_client(srv, "nobody", "x", salt1, sizeof(salt1)), SASL_FAIL);
    assert_int_equal(scram_client(srv, "nobody", "y", salt2, sizeof(salt2)), SASL_FAIL);
    assert_string_equal(salt1, salt2);
    assert_int_equal(scram_client(srv, "nobody2", "y", salt2, sizeof(salt2)), SASL_FAIL);
    assert_string_not_equal(salt1, salt2);
    /* Users whose entry cannot serve SCRAM: a hash, a non-ASCII {PLAIN}. */
    assert_int_equal(scram_client(srv, "alice", "alicepw", NULL, 0), SASL_FAIL);
    assert_int_equal(scram_client(srv, "ivan", "p\xc3\xa4sswort", NULL, 0), SASL_FAIL);
    /* Escaped names: "=2C" is ','. */
    assert_int_equal(scram_client(srv, "no=2Cbody", "x", NULL, 0), SASL_FAIL);
    sasl_server_free(srv);
}

/* ---- event loop behaviour ---- */

typedef struct FREE_CTX {
    SASL_SESS *sess;
    RES res;
} FREE_CTX;

/* free_cb - free the session first, then use the text */
static void free_cb(void *context, enum sasl_result result, const char *text)
{
    FREE_CTX *fc = context;

    sasl_sess_free(fc->sess);
    fc->sess = NULL;
    done_cb(&fc->res, result, text);
}

static void test_free_while_working(void **unused)
{
    SASL_SERVER *srv = server(ALL_MECHS, "", NULL, 0);
    VSTR *why = vstr_alloc(64);
    RES res[6];
    SASL_SESS *sess[6];
    char msg[64];

    (void)unused;
    /* Several checks at once on two workers; free half of them mid-way. */
    for (int i = 0; i < 6; i++) {
        size_t len = (size_t)snprintf(msg, sizeof(msg), "%c%s%c%s", 0, i % 2 ? "alice" : "carol", 0,
                                      i % 2 ? "alicepw" : "carolpw");

        memset(&res[i], 0, sizeof(res[i]));
        sess[i] = sasl_sess_start(srv, "PLAIN", b64(msg, len), &plain_info, done_cb, &res[i], why);
        assert_non_null(sess[i]);
    }
    for (int i = 0; i < 6; i += 2)
        sasl_sess_free(sess[i]);
    for (int i = 1; i < 6; i += 2) {
        wait_res(&res[i]);
        expect(&res[i], SASL_OK, "alice");
        sasl_sess_free(sess[i]);
    }
    run_loop_for(500);
    for (int i = 0; i < 6; i += 2)
        assert_int_equal(res[i].calls, 0);

    /* Freed inside the callback: the text stays valid for the whole call. */
    {
        FREE_CTX fc = {NULL, {0}};

        fc.sess = sasl_sess_start(srv, "LOGIN", NULL, &plain_info, free_cb, &fc, why);
        assert_non_null(fc.sess);
        wait_res(&fc.res);
        assert_null(fc.sess);
        expect(&fc.res, SASL_CONTINUE, "VXNlcm5hbWU6");
    }
    /* The server goes away with a job still running: the pool waits for it. */
    {
        size_t len = (size_t)snprintf(msg, sizeof(msg), "%calice%calicepw", 0, 0);

        memset(&res[0], 0, sizeof(res[0]));
        sess[0] = sasl_sess_start(srv, "PLAIN", b64(msg, len), &plain_info, done_cb, &res[0], why);
        sasl_sess_free(sess[0]);
    }
    sasl_server_free(srv);
    assert_int_equal(res[0].calls, 0);
    vstr_free(why);
}

/* time_plain - seconds for the best of n PLAIN exchanges */
static double time_plain(SASL_SERVER *srv, const char *user, const char *pw, int n)
{
    double best = 1e9;

    for (int i = 0; i < n; i++) {
        struct timespec a, b;
        double t;

        clock_gettime(CLOCK_MONOTONIC, &a);
        plain_auth(srv, "", user, pw, SASL_FAIL, SASL_FAIL_TEXT);
        clock_gettime(CLOCK_MONOTONIC, &b);
        t = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
        if (t < best)
            best = t;
    }
    return best;
}

static void test_miss_timing(void **unused)
{
    SASL_SERVER *srv = server(ALL_MECHS, "", NULL, 0);
    double wrong, miss;

    (void)unused;
    /* A wrong password for a yescrypt entry, then misses: they cost a crypt too. */
    wrong = time_plain(srv, "alice", "wrong", 3);
    miss = time_plain(srv, "nobody-here", "wrong", 3);
    print_message("wrong password %.4fs, unknown user %.4fs\n", wrong, miss);
    assert_true(miss > wrong / 3);
    assert_true(miss < wrong * 3);
    /* bcrypt table entries make misses cost a bcrypt run. */
    wrong = time_plain(srv, "carol", "wrong", 3);
    miss = time_plain(srv, "nobody-here", "wrong", 3);
    print_message("bcrypt: wrong password %.4fs, unknown user %.4fs\n", wrong, miss);
    assert_true(miss > wrong / 3);
    assert_true(miss < wrong * 3);
    sasl_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_errors),   cmocka_unit_test(test_mechs_and_options),
        cmocka_unit_test(test_plain_good),      cmocka_unit_test(test_plain_bad),
        cmocka_unit_test(test_plain_malformed), cmocka_unit_test(test_login),
        cmocka_unit_test(test_cram_md5),        cmocka_unit_test(test_scram_rfc7677),
        cmocka_unit_test(test_scram_client),    cmocka_unit_test(test_free_while_working),
        cmocka_unit_test(test_miss_timing),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
