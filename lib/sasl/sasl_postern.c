/*
 * sasl_postern - the "postern" SASL backend: credentials from Postern
 * lookup tables (smtpd_sasl_password_maps), mechanisms PLAIN, LOGIN,
 * CRAM-MD5 and SCRAM-SHA-256 run here.
 *
 * TABLE VALUES (key: the login name; fixed-string tables fold its case)
 *   $y$...  $6$...  $5$...  $2b$...   a crypt(3) hash (yescrypt,
 *                         sha512-crypt, sha256-crypt, bcrypt, and what
 *                         else libcrypt knows)
 *   {CRYPT}hash  {SHA512-CRYPT}hash  {SHA256-CRYPT}hash  {BLF-CRYPT}hash
 *   {MD5-CRYPT}hash       Dovecot's names for the same crypt(3) hashes
 *   {PLAIN}secret         the password itself (needed by CRAM-MD5)
 *   {SCRAM-SHA-256}iter,salt,StoredKey,ServerKey
 *                         Dovecot's SCRAM secret (doveadm pw -s SCRAM-SHA-256)
 * PLAIN and LOGIN work with every form; CRAM-MD5 needs {PLAIN};
 * SCRAM-SHA-256 needs {PLAIN} (printable ASCII) or {SCRAM-SHA-256}.
 *
 * HIDING WHO EXISTS
 * A missing user, a wrong password and an entry that cannot serve the
 * mechanism all end in the same SASL_FAIL text. On a miss the password is
 * still run through crypt(3) with the setting of the last hash looked up
 * (at first a fresh default-method setting), so that a miss costs what a
 * real check costs. SCRAM gives unknown users a salt derived from the name
 * with a per-process key and the default iteration count, and fails only
 * at the proof, as it does for a wrong password.
 *
 * THREADS
 * crypt(3) and PBKDF2 run in the worker pool (sasl_work.c); jobs carry
 * copies of what they need, so a session may end while its job runs.
 * Table lookups stay on the event loop thread (dict is not thread-safe).
 */
#include <crypt.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "mail/dict.h"
#include "mail/mail_conf.h"
#include "sasl/sasl_impl.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define PG_HOST_MAX 255 /* host name in CRAM-MD5 challenges */

typedef struct PG_SERVER {
    DICT **maps;
    size_t nmaps;
    ARGV *mech_names;
    unsigned *mech_props;
    SASL_WORK_POOL *pool;
    char *dummy_setting;                  /* what a miss is checked against */
    unsigned char salt_key[SASL_KEY_LEN]; /* made-up SCRAM salts */
    char host[PG_HOST_MAX + 1];
} PG_SERVER;

enum pg_mech { PG_PLAIN, PG_LOGIN, PG_CRAM, PG_SCRAM };

enum pg_stage {
    PG_WAIT_FIRST, /* PLAIN, SCRAM: waiting for the first client message */
    PG_WAIT_USER,  /* LOGIN */
    PG_WAIT_PASS,  /* LOGIN */
    PG_WAIT_CRAM,  /* CRAM-MD5: challenge sent */
    PG_WAIT_FINAL, /* SCRAM: server-first sent */
    PG_WAIT_EMPTY, /* SCRAM: server signature sent */
    PG_WORKING,    /* a job runs */
    PG_DONE,
};

enum pg_secret { PG_SEC_MISS, PG_SEC_CRYPT, PG_SEC_PLAIN, PG_SEC_SCRAM, PG_SEC_BAD };

/* SCRAM key source for one exchange */
enum pg_scram_src { PG_SCRAM_STORED, PG_SCRAM_FROM_PLAIN, PG_SCRAM_FAKE };

typedef struct PG_SESS {
    PG_SERVER *pg;
    SASL_SESS *sess;
    enum pg_mech mech;
    enum pg_stage stage;
    VSTR *user;
    VSTR *challenge; /* CRAM-MD5 */
    SASL_SCRAM *scram;
    enum pg_scram_src scram_src;
    SASL_SCRAM_SECRET scram_sec; /* keys, salt, iterations */
    VSTR *scram_plain;           /* PG_SCRAM_FROM_PLAIN: the secret */
    SASL_WORK *work;
} PG_SESS;

/* What a worker gets: copies only, never pointers into a session. */
enum pg_job_kind {
    PG_JOB_CRYPT,
    PG_JOB_PLAIN,
    PG_JOB_SCRAM_CHECK,
    PG_JOB_SCRAM_KEYS,
    PG_JOB_DUMMY
};

typedef struct PG_JOB {
    PG_SESS *ps; /* owner; only used on the loop thread, after the cancel check */
    enum pg_job_kind kind;
    VSTR *password;
    char *setting; /* crypt hash, or the dummy setting */
    VSTR *plain;   /* {PLAIN} secret */
    SASL_SCRAM_SECRET sec;
    int ok;
    int crypt_failed;
} PG_JOB;

/* ---- Table access ---- */

/* pg_lookup - the first table's value for user, copied into value;
   1 found, 0 not found, -1 a table failed */
static int pg_lookup(PG_SERVER *pg, const char *user, VSTR *value)
{
    for (size_t i = 0; i < pg->nmaps; i++) {
        const char *v = dict_get(pg->maps[i], user);

        if (v != NULL) {
            vstr_cpy(value, v);
            return 1;
        }
        if (pg->maps[i]->error != DICT_ERR_NONE) {
            msg_warn("smtpd_sasl_password_maps: %s:%s: lookup of \"%s\" failed", pg->maps[i]->type,
                     pg->maps[i]->name, user);
            return -1;
        }
    }
    return 0;
}

/* pg_classify - what kind of secret a table value holds; *payload is the
   text after the scheme tag */
static enum pg_secret pg_classify(const char *value, const char **payload)
{
    static const char *const crypt_tags[] = {
        "{CRYPT}", "{SHA512-CRYPT}", "{SHA256-CRYPT}", "{BLF-CRYPT}", "{MD5-CRYPT}",
    };

    *payload = value;
    if (*value == '{') {
        for (size_t i = 0; i < sizeof(crypt_tags) / sizeof(crypt_tags[0]); i++) {
            size_t n = strlen(crypt_tags[i]);

            if (strncasecmp(value, crypt_tags[i], n) == 0) {
                *payload = value + n;
                return **payload ? PG_SEC_CRYPT : PG_SEC_BAD;
            }
        }
        if (strncasecmp(value, "{PLAIN}", 7) == 0) {
            *payload = value + 7;
            return **payload ? PG_SEC_PLAIN : PG_SEC_BAD;
        }
        if (strncasecmp(value, "{SCRAM-SHA-256}", 15) == 0) {
            *payload = value + 15;
            return PG_SEC_SCRAM;
        }
        return PG_SEC_BAD;
    }
    /* Locked accounts as shadow writes them ("!", "*", "!$6$..."). */
    if (*value == 0 || *value == '!' || *value == '*')
        return PG_SEC_BAD;
    return PG_SEC_CRYPT;
}

/* ---- Worker jobs ---- */

/* pg_crypt_check - crypt(3) the password with setting; 1 when it gives setting */
static int pg_crypt_check(const char *password, const char *setting, int *failed)
{
    struct crypt_data *cd = mycalloc(1, sizeof(*cd));
    const char *out = crypt_rn(password, setting, cd, (int)sizeof(*cd));
    int ok = 0;

    /* libcrypt signals failure with NULL or a string starting with '*'. */
    if (out == NULL || *out == '*') {
        *failed = 1;
    } else {
        ok = sasl_ct_equal(out, strlen(out), setting, strlen(setting));
    }
    sasl_wipe(cd, sizeof(*cd));
    myfree(cd);
    return ok;
}

/* pg_job_run - the slow part, in a worker thread */
static void pg_job_run(void *arg)
{
    PG_JOB *job = arg;
    unsigned char stored[SASL_KEY_LEN];
    unsigned char server[SASL_KEY_LEN];
    int ignore = 0;

    switch (job->kind) {
    case PG_JOB_CRYPT:
        job->ok = pg_crypt_check(vstr_str(job->password), job->setting, &job->crypt_failed);
        break;
    case PG_JOB_PLAIN:
        job->ok = sasl_ct_equal(vstr_str(job->password), vstr_len(job->password),
                                vstr_str(job->plain), vstr_len(job->plain));
        /* Cost what a hashed entry costs, so the entry's form does not show. */
        (void)pg_crypt_check(vstr_str(job->password), job->setting, &ignore);
        break;
    case PG_JOB_SCRAM_CHECK:
        sasl_scram_keys(vstr_str(job->password), vstr_len(job->password), job->sec.salt,
                        job->sec.salt_len, job->sec.iter, stored, server);
        job->ok = sasl_ct_equal(stored, sizeof(stored), job->sec.stored_key, SASL_KEY_LEN);
        break;
    case PG_JOB_SCRAM_KEYS:
        sasl_scram_keys(vstr_str(job->plain), vstr_len(job->plain), job->sec.salt,
                        job->sec.salt_len, job->sec.iter, job->sec.stored_key, job->sec.server_key);
        job->ok = 1;
        break;
    case PG_JOB_DUMMY:
        if (job->setting != NULL)
            (void)pg_crypt_check(vstr_str(job->password), job->setting, &ignore);
        else
            sasl_scram_keys(vstr_str(job->password), vstr_len(job->password), job->sec.salt,
                            job->sec.salt_len, job->sec.iter, stored, server);
        job->ok = 0;
        break;
    }
    sasl_wipe(stored, sizeof(stored));
    sasl_wipe(server, sizeof(server));
}

/* pg_job_free - wipe and release a job */
static void pg_job_free(void *arg)
{
    PG_JOB *job = arg;

    sasl_vstr_wipe_free(job->password);
    sasl_vstr_wipe_free(job->plain);
    myfree(job->setting);
    sasl_wipe(&job->sec, sizeof(job->sec));
    myfree(job);
}

static void pg_job_done(void *arg);

/* pg_job_new - a job owned by ps */
static PG_JOB *pg_job_new(PG_SESS *ps, enum pg_job_kind kind, const char *password)
{
    PG_JOB *job = mycalloc(1, sizeof(*job));

    job->ps = ps;
    job->kind = kind;
    if (password != NULL) {
        size_t len = strlen(password);

        job->password = sasl_vstr_secret(len);
        vstr_ncpy(job->password, password, len);
    }
    return job;
}

/* pg_job_submit - hand a job to the pool */
static void pg_job_submit(PG_SESS *ps, PG_JOB *job)
{
    ps->stage = PG_WORKING;
    ps->work = sasl_work_submit(ps->pg->pool, pg_job_run, pg_job_done, pg_job_free, job);
}

/* ---- Results ---- */

/* pg_fail - the one failure answer */
static void pg_fail(PG_SESS *ps)
{
    ps->stage = PG_DONE;
    sasl_sess_post(ps->sess, SASL_FAIL, SASL_FAIL_TEXT);
}

/* pg_badprot - a malformed client message */
static void pg_badprot(PG_SESS *ps, const char *why)
{
    ps->stage = PG_DONE;
    sasl_sess_post(ps->sess, SASL_BADPROT, why);
}

/* pg_tempfail - the tables cannot answer now */
static void pg_tempfail(PG_SESS *ps)
{
    ps->stage = PG_DONE;
    sasl_sess_post(ps->sess, SASL_TEMPFAIL, "password table lookup failed");
}

/* pg_ok - authenticated as the user name the client gave */
static void pg_ok(PG_SESS *ps)
{
    ps->stage = PG_DONE;
    sasl_sess_post(ps->sess, SASL_OK, vstr_str(ps->user));
}

/* pg_continue - a challenge, base64-encoded here */
static void pg_continue(PG_SESS *ps, const char *challenge, size_t len, enum pg_stage next)
{
    VSTR *b64 = vstr_alloc(len * 4 / 3 + 8);

    sasl_b64_encode(challenge, len, b64);
    ps->stage = next;
    sasl_sess_post(ps->sess, SASL_CONTINUE, vstr_str(b64));
    vstr_free(b64);
}

/* ---- PLAIN and LOGIN: check a password ---- */

/* pg_verify - look the user up and start the check of password */
static void pg_verify(PG_SESS *ps, const char *password)
{
    PG_SERVER *pg = ps->pg;
    VSTR *value = sasl_vstr_secret(256);
    const char *payload;
    const char *why;
    PG_JOB *job;
    int found = pg_lookup(pg, vstr_str(ps->user), value);

    if (found < 0) {
        sasl_vstr_wipe_free(value);
        pg_tempfail(ps);
        return;
    }
    switch (found ? pg_classify(vstr_str(value), &payload) : PG_SEC_MISS) {
    case PG_SEC_CRYPT:
        job = pg_job_new(ps, PG_JOB_CRYPT, password);
        job->setting = mystrdup(payload);
        /* Misses are checked against the kind of hash this table holds. */
        if (*payload == '$' && strcmp(pg->dummy_setting, payload) != 0) {
            myfree(pg->dummy_setting);
            pg->dummy_setting = mystrdup(payload);
        }
        break;
    case PG_SEC_PLAIN:
        job = pg_job_new(ps, PG_JOB_PLAIN, password);
        job->plain = sasl_vstr_secret(strlen(payload));
        vstr_cpy(job->plain, payload);
        job->setting = mystrdup(pg->dummy_setting);
        break;
    case PG_SEC_SCRAM:
        job = pg_job_new(ps, PG_JOB_SCRAM_CHECK, password);
        if (sasl_scram_secret_parse(payload, &job->sec, &why) < 0) {
            msg_warn("smtpd_sasl_password_maps: user \"%s\": %s", vstr_str(ps->user), why);
            job->kind = PG_JOB_DUMMY;
            job->setting = mystrdup(pg->dummy_setting);
        }
        break;
    case PG_SEC_BAD:
        if (*vstr_str(value) == '{')
            msg_warn("smtpd_sasl_password_maps: user \"%s\": unsupported password scheme",
                     vstr_str(ps->user));
        /* FALLTHROUGH */
    case PG_SEC_MISS:
    default:
        job = pg_job_new(ps, PG_JOB_DUMMY, password);
        job->setting = mystrdup(pg->dummy_setting);
        break;
    }
    sasl_vstr_wipe_free(value);
    pg_job_submit(ps, job);
}

/* pg_plain - a PLAIN message */
static void pg_plain(PG_SESS *ps, const VSTR *decoded)
{
    VSTR *msg = sasl_vstr_secret(vstr_len(decoded));
    const char *authzid, *authcid, *passwd, *why;

    vstr_ncpy(msg, vstr_str(decoded), vstr_len(decoded));
    if (sasl_plain_parse(vstr_str(msg), vstr_len(msg), &authzid, &authcid, &passwd, &why) < 0) {
        pg_badprot(ps, why);
    } else if (!sasl_authzid_ok(authzid, authcid)) {
        /* Postern has no proxy authorization: acting for another user is refused. */
        vstr_cpy(ps->user, authcid);
        pg_fail(ps);
    } else {
        vstr_cpy(ps->user, authcid);
        pg_verify(ps, passwd);
    }
    sasl_vstr_wipe_free(msg);
}

/* pg_login_user - a LOGIN user name; asks for the password */
static void pg_login_user(PG_SESS *ps, const VSTR *decoded)
{
    const char *why;

    if (sasl_login_check(vstr_str(decoded), vstr_len(decoded), 0, &why) < 0) {
        pg_badprot(ps, why);
        return;
    }
    vstr_ncpy(ps->user, vstr_str(decoded), vstr_len(decoded));
    pg_continue(ps, SASL_LOGIN_PASS_CHALLENGE, strlen(SASL_LOGIN_PASS_CHALLENGE), PG_WAIT_PASS);
}

/* pg_login_pass - a LOGIN password */
static void pg_login_pass(PG_SESS *ps, const VSTR *decoded)
{
    const char *why;

    if (sasl_login_check(vstr_str(decoded), vstr_len(decoded), 1, &why) < 0) {
        pg_badprot(ps, why);
        return;
    }
    pg_verify(ps, vstr_str(decoded));
}

/* ---- CRAM-MD5 ---- */

/* pg_cram - the "user digest" response */
static void pg_cram(PG_SESS *ps, const VSTR *decoded)
{
    unsigned char digest[SASL_MD5_LEN];
    const char *why;
    const char *payload;
    VSTR *value;
    int found;
    int ok = 0;

    if (sasl_cram_parse(vstr_str(decoded), vstr_len(decoded), ps->user, digest, &why) < 0) {
        pg_badprot(ps, why);
        return;
    }
    value = sasl_vstr_secret(256);
    if ((found = pg_lookup(ps->pg, vstr_str(ps->user), value)) < 0) {
        sasl_vstr_wipe_free(value);
        pg_tempfail(ps);
        return;
    }
    if (found && pg_classify(vstr_str(value), &payload) == PG_SEC_PLAIN) {
        ok = sasl_cram_verify(payload, strlen(payload), vstr_str(ps->challenge), digest);
    } else {
        /* Same work for a user without a usable secret. */
        unsigned char fake[SASL_KEY_LEN];

        if (RAND_bytes(fake, sizeof(fake)) != 1)
            msg_fatal("CRAM-MD5: RAND_bytes failed");
        (void)sasl_cram_verify((const char *)fake, sizeof(fake), vstr_str(ps->challenge), digest);
    }
    sasl_vstr_wipe_free(value);
    if (ok)
        pg_ok(ps);
    else
        pg_fail(ps);
}

/* ---- SCRAM-SHA-256 ---- */

/* pg_scram_fake_salt - a stable made-up salt for a name, so that asking twice
   about an unknown user gives the same answer */
static void pg_scram_fake_salt(PG_SERVER *pg, const char *user, SASL_SCRAM_SECRET *sec)
{
    unsigned char mac[SASL_KEY_LEN];
    unsigned int len = 0;

    if (HMAC(EVP_sha256(), pg->salt_key, sizeof(pg->salt_key), (const unsigned char *)user,
             strlen(user), mac, &len) == NULL)
        msg_fatal("SCRAM: HMAC-SHA-256 failed");
    memcpy(sec->salt, mac, SASL_SCRAM_SALT_LEN);
    sec->salt_len = SASL_SCRAM_SALT_LEN;
    sec->iter = SASL_SCRAM_ITER_DEF;
}

/* pg_scram_first - client-first-message: look the user up, send server-first */
static void pg_scram_first(PG_SESS *ps, const VSTR *decoded)
{
    PG_SERVER *pg = ps->pg;
    const char *why;
    const char *payload;
    VSTR *value;
    VSTR *snonce;
    int found;

    if (sasl_scram_parse_first(ps->scram, vstr_str(decoded), vstr_len(decoded), &why) < 0) {
        pg_badprot(ps, why);
        return;
    }
    vstr_cpy(ps->user, vstr_str(ps->scram->username));
    if (!sasl_authzid_ok(vstr_str(ps->scram->authzid), vstr_str(ps->user))) {
        pg_fail(ps);
        return;
    }
    value = sasl_vstr_secret(256);
    if ((found = pg_lookup(pg, vstr_str(ps->user), value)) < 0) {
        sasl_vstr_wipe_free(value);
        pg_tempfail(ps);
        return;
    }
    ps->scram_src = PG_SCRAM_FAKE;
    switch (found ? pg_classify(vstr_str(value), &payload) : PG_SEC_MISS) {
    case PG_SEC_SCRAM:
        if (sasl_scram_secret_parse(payload, &ps->scram_sec, &why) == 0)
            ps->scram_src = PG_SCRAM_STORED;
        else
            msg_warn("smtpd_sasl_password_maps: user \"%s\": %s", vstr_str(ps->user), why);
        break;
    case PG_SEC_PLAIN:
        if (sasl_scram_password_ok(payload, strlen(payload))) {
            ps->scram_src = PG_SCRAM_FROM_PLAIN;
            ps->scram_plain = sasl_vstr_secret(strlen(payload));
            vstr_cpy(ps->scram_plain, payload);
        } else {
            msg_warn("SCRAM-SHA-256: user \"%s\": the password is not printable ASCII, which "
                     "this server cannot SASLprep; use PLAIN or store a {SCRAM-SHA-256} secret",
                     vstr_str(ps->user));
        }
        break;
    default: break;
    }
    sasl_vstr_wipe_free(value);
    if (ps->scram_src != PG_SCRAM_STORED)
        pg_scram_fake_salt(pg, vstr_str(ps->user), &ps->scram_sec);

    snonce = vstr_alloc(40);
    sasl_scram_snonce(snonce);
    sasl_scram_server_first(ps->scram, vstr_str(snonce), ps->scram_sec.salt, ps->scram_sec.salt_len,
                            ps->scram_sec.iter);
    vstr_free(snonce);
    pg_continue(ps, vstr_str(ps->scram->server_first), vstr_len(ps->scram->server_first),
                PG_WAIT_FINAL);
}

/* pg_scram_conclude - check the proof with the keys in scram_sec */
static void pg_scram_conclude(PG_SESS *ps)
{
    VSTR *final;

    if (ps->scram_src == PG_SCRAM_FAKE || !sasl_scram_verify(ps->scram, ps->scram_sec.stored_key)) {
        pg_fail(ps);
        return;
    }
    /* RFC 5802 5: the server proves itself; the client answers with an empty response. */
    final = vstr_alloc(64);
    sasl_scram_server_final(ps->scram, ps->scram_sec.server_key, final);
    pg_continue(ps, vstr_str(final), vstr_len(final), PG_WAIT_EMPTY);
    vstr_free(final);
}

/* pg_scram_final - client-final-message */
static void pg_scram_final(PG_SESS *ps, const VSTR *decoded)
{
    const char *why;
    PG_JOB *job;

    if (sasl_scram_parse_final(ps->scram, vstr_str(decoded), vstr_len(decoded), &why) < 0) {
        pg_badprot(ps, why);
        return;
    }
    switch (ps->scram_src) {
    case PG_SCRAM_STORED: pg_scram_conclude(ps); return;
    case PG_SCRAM_FROM_PLAIN:
        job = pg_job_new(ps, PG_JOB_SCRAM_KEYS, NULL);
        job->plain = sasl_vstr_secret(vstr_len(ps->scram_plain));
        vstr_cpy(job->plain, vstr_str(ps->scram_plain));
        break;
    case PG_SCRAM_FAKE:
    default:
        /* The PBKDF2 a real user would cost, then failure. */
        job = pg_job_new(ps, PG_JOB_DUMMY, "no such user");
        break;
    }
    job->sec = ps->scram_sec;
    pg_job_submit(ps, job);
}

/* pg_job_done - a worker finished: give the answer */
static void pg_job_done(void *arg)
{
    PG_JOB *job = arg;
    PG_SESS *ps = job->ps;

    ps->work = NULL;
    if (job->kind == PG_JOB_CRYPT && job->crypt_failed)
        msg_warn("smtpd_sasl_password_maps: user \"%s\": the password hash is not one "
                 "that crypt(3) supports",
                 vstr_str(ps->user));
    if (job->kind == PG_JOB_SCRAM_KEYS) {
        memcpy(ps->scram_sec.stored_key, job->sec.stored_key, SASL_KEY_LEN);
        memcpy(ps->scram_sec.server_key, job->sec.server_key, SASL_KEY_LEN);
        pg_scram_conclude(ps);
        return;
    }
    if (job->ok)
        pg_ok(ps);
    else
        pg_fail(ps);
}

/* ---- Backend interface ---- */

/* pg_start - a new exchange */
static void *pg_start(void *be, SASL_SESS *sess, const char *mech, const char *initial,
                      const VSTR *decoded)
{
    PG_SESS *ps = mycalloc(1, sizeof(*ps));

    ps->pg = be;
    ps->sess = sess;
    ps->user = vstr_alloc(64);
    if (strcasecmp(mech, "PLAIN") == 0) {
        ps->mech = PG_PLAIN;
        if (initial == NULL)
            pg_continue(ps, "", 0, PG_WAIT_FIRST);
        else
            pg_plain(ps, decoded);
    } else if (strcasecmp(mech, "LOGIN") == 0) {
        ps->mech = PG_LOGIN;
        if (initial == NULL)
            pg_continue(ps, SASL_LOGIN_USER_CHALLENGE, strlen(SASL_LOGIN_USER_CHALLENGE),
                        PG_WAIT_USER);
        else
            pg_login_user(ps, decoded);
    } else if (strcasecmp(mech, "CRAM-MD5") == 0) {
        ps->mech = PG_CRAM;
        if (initial != NULL) {
            /* RFC 2195: the server speaks first. */
            pg_badprot(ps, "CRAM-MD5 takes no initial response");
        } else {
            ps->challenge = vstr_alloc(64);
            sasl_cram_challenge(ps->challenge, ps->pg->host);
            pg_continue(ps, vstr_str(ps->challenge), vstr_len(ps->challenge), PG_WAIT_CRAM);
        }
    } else if (strcasecmp(mech, "SCRAM-SHA-256") == 0) {
        ps->mech = PG_SCRAM;
        ps->scram = sasl_scram_new();
        if (initial == NULL)
            pg_continue(ps, "", 0, PG_WAIT_FIRST);
        else
            pg_scram_first(ps, decoded);
    } else {
        msg_panic("sasl_postern: mechanism %s was offered but is not implemented", mech);
    }
    return ps;
}

/* pg_step - the client's next response */
static void pg_step(void *be, void *bsess, const char *raw, size_t len, const VSTR *decoded)
{
    PG_SESS *ps = bsess;

    (void)be;
    (void)raw;
    (void)len;
    switch (ps->stage) {
    case PG_WAIT_FIRST:
        if (ps->mech == PG_PLAIN)
            pg_plain(ps, decoded);
        else
            pg_scram_first(ps, decoded);
        break;
    case PG_WAIT_USER: pg_login_user(ps, decoded); break;
    case PG_WAIT_PASS: pg_login_pass(ps, decoded); break;
    case PG_WAIT_CRAM: pg_cram(ps, decoded); break;
    case PG_WAIT_FINAL: pg_scram_final(ps, decoded); break;
    case PG_WAIT_EMPTY:
        if (vstr_len(decoded) == 0)
            pg_ok(ps);
        else
            pg_badprot(ps, "SCRAM: the answer to the server signature must be empty");
        break;
    case PG_WORKING:
    case PG_DONE:
    default: pg_badprot(ps, "unexpected response"); break;
    }
}

/* pg_end - the session is over */
static void pg_end(void *be, void *bsess)
{
    PG_SESS *ps = bsess;

    (void)be;
    if (ps->work != NULL)
        sasl_work_cancel(ps->work);
    vstr_free(ps->user);
    vstr_free(ps->challenge);
    sasl_scram_free(ps->scram);
    sasl_vstr_wipe_free(ps->scram_plain);
    sasl_wipe(&ps->scram_sec, sizeof(ps->scram_sec));
    myfree(ps);
}

/* pg_mechs - the configured mechanisms (fixed) */
static void pg_mechs(void *be, const ARGV **names, const unsigned **props, unsigned *generation)
{
    PG_SERVER *pg = be;

    *names = pg->mech_names;
    *props = pg->mech_props;
    *generation = 0;
}

/* pg_free - close the tables, stop the workers */
static void pg_free(void *be)
{
    PG_SERVER *pg = be;

    sasl_work_pool_free(pg->pool);
    for (size_t i = 0; i < pg->nmaps; i++)
        dict_close(pg->maps[i]);
    myfree(pg->maps);
    argv_free(pg->mech_names);
    myfree(pg->mech_props);
    myfree(pg->dummy_setting);
    sasl_wipe(pg->salt_key, sizeof(pg->salt_key));
    myfree(pg);
}

/* pg_host - this host's name for CRAM-MD5 challenges (letters, digits, '.', '-') */
static void pg_host(PG_SERVER *pg)
{
    if (gethostname(pg->host, sizeof(pg->host) - 1) < 0 || pg->host[0] == 0)
        strcpy(pg->host, "localhost");
    pg->host[sizeof(pg->host) - 1] = 0;
    for (char *cp = pg->host; *cp; cp++)
        if (!((*cp >= 'a' && *cp <= 'z') || (*cp >= 'A' && *cp <= 'Z') ||
              (*cp >= '0' && *cp <= '9') || *cp == '.' || *cp == '-'))
            *cp = '-';
}

/* pg_create - open the tables, check the mechanisms */
static void *pg_create(SASL_SERVER *srv, const SASL_SERVER_ARGS *args, VSTR *why)
{
    static const char *const supported[] = {"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"};
    PG_SERVER *pg = mycalloc(1, sizeof(*pg));
    ARGV *specs = mail_conf_split_list(args->path ? args->path : "");
    ARGV *mechs = argv_split(args->mechanisms ? args->mechanisms : "PLAIN, LOGIN", ", \t\r\n");
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];

    pg->mech_names = argv_alloc(4);
    pg->mech_props = mycalloc(sizeof(supported) / sizeof(supported[0]), sizeof(unsigned));
    for (size_t i = 0; i < mechs->argc; i++) {
        size_t k;
        size_t j;

        for (k = 0; k < sizeof(supported) / sizeof(supported[0]); k++)
            if (strcasecmp(mechs->argv[i], supported[k]) == 0)
                break;
        if (k == sizeof(supported) / sizeof(supported[0])) {
            vstr_sprintf(why,
                         "smtpd_sasl_postern_mechanisms: unsupported mechanism \"%s\" (use "
                         "PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256)",
                         mechs->argv[i]);
            goto fail;
        }
        for (j = 0; j < pg->mech_names->argc; j++)
            if (strcmp(pg->mech_names->argv[j], supported[k]) == 0)
                break;
        if (j < pg->mech_names->argc)
            continue;
        pg->mech_props[pg->mech_names->argc] = sasl_mech_props(supported[k]);
        argv_add(pg->mech_names, supported[k], (char *)NULL);
    }
    if (specs->argc == 0) {
        vstr_sprintf(why, "smtpd_sasl_password_maps is empty: the postern SASL backend needs "
                          "a password table");
        goto fail;
    }
    pg->maps = mycalloc(specs->argc, sizeof(DICT *));
    for (size_t i = 0; i < specs->argc; i++) {
        VSTR *err = vstr_alloc(100);

        pg->maps[i] = dict_open(specs->argv[i], DICT_FLAG_FOLD_FIX, err);
        if (pg->maps[i] == NULL) {
            vstr_sprintf(why, "smtpd_sasl_password_maps: %s", vstr_str(err));
            vstr_free(err);
            goto fail;
        }
        vstr_free(err);
        pg->nmaps++;
    }
    /* A setting of the library's preferred method until a real hash is seen. */
    if (crypt_gensalt_rn(NULL, 0, NULL, 0, setting, (int)sizeof(setting)) == NULL ||
        setting[0] == '*')
        msg_fatal("crypt_gensalt_rn: no default password hashing method: %m");
    pg->dummy_setting = mystrdup(setting);
    if (RAND_bytes(pg->salt_key, sizeof(pg->salt_key)) != 1)
        msg_fatal("SASL: RAND_bytes failed");
    pg_host(pg);
    pg->pool = sasl_work_pool_new(sasl_server_base(srv), (int)args->crypt_workers);
    argv_free(specs);
    argv_free(mechs);
    return pg;

fail:
    argv_free(specs);
    argv_free(mechs);
    pg_free(pg);
    return NULL;
}

const SASL_BACKEND sasl_postern_backend = {
    .type = "postern",
    .create = pg_create,
    .mechs = pg_mechs,
    .start = pg_start,
    .step = pg_step,
    .end = pg_end,
    .free = pg_free,
};
