/*
 * sasl_impl - the inside of the SASL server library (lib/sasl): what the
 * generic layer (sasl_server.c), the backends (sasl_postern.c,
 * sasl_dovecot.c) and the mechanism code share, and what the unit tests
 * reach directly. Nothing outside lib/sasl and its tests includes this.
 *
 * Pieces:
 *   sasl_codec.c   strict base64 (RFC 4648), constant-time compare,
 *                  UTF-8 and identity checks, wiping secrets
 *   sasl_policy.c  smtpd_sasl_security_options words and
 *                  smtpd_sasl_mechanism_filter
 *   sasl_mech.c    PLAIN (RFC 4616), LOGIN, CRAM-MD5 (RFC 2195) messages
 *   sasl_scram.c   SCRAM-SHA-256 (RFC 5802, RFC 7677) messages and keys,
 *                  Dovecot's {SCRAM-SHA-256} secret format
 *   sasl_work.c    the worker threads that run crypt(3) and PBKDF2
 *   sasl_server.c  sessions, results through the event loop, backends
 */
#ifndef POSTERN_SASL_IMPL_H
#define POSTERN_SASL_IMPL_H

#include <stddef.h>

#include "sasl/sasl_server.h"
#include "util/argv.h"
#include "util/vstr.h"

struct event_base;

/* ---- Limits ---- */

#define SASL_RESPONSE_LIMIT_DEF 12288 /* smtpd_sasl_response_limit when 0 is given */
#define SASL_MECH_NAME_MAX 20         /* RFC 4422 3.1: mechanism names are 1..20 chars */
#define SASL_MECH_COUNT_MAX 64        /* mechanisms a backend may announce */
#define SASL_ID_MAX 255               /* RFC 4616 2: authcid/authzid accepted up to 255 octets */
#define SASL_PASS_MAX 1024            /* longest password accepted (RFC 4616 asks for 255) */
#define SASL_TEXT_MAX 512             /* longest result text handed to the caller */
#define SASL_CRYPT_WORKERS_DEF 2      /* smtpd_sasl_crypt_workers when 0 is given */
#define SASL_CRYPT_WORKERS_MAX 64     /* upper bound for the worker pool */
#define SASL_SCRAM_ITER_DEF 4096      /* RFC 7677 4: iteration count for new secrets */
#define SASL_SCRAM_ITER_MAX 10000000  /* refuse stored counts above this (CPU bound) */
#define SASL_SCRAM_NONCE_MAX 256      /* longest client nonce accepted */
#define SASL_SCRAM_SALT_MAX 128       /* longest stored salt accepted (octets) */
#define SASL_SCRAM_SALT_LEN 16        /* salt length made up for plaintext secrets */
#define SASL_SCRAM_SNONCE_LEN 18      /* random octets in the server nonce (24 base64 chars) */
#define SASL_KEY_LEN 32               /* SHA-256 output */
#define SASL_MD5_LEN 16

/* The one failure text for every credential mismatch: a missing user and a
   wrong password must look the same to the client and in the log. */
#define SASL_FAIL_TEXT "authentication failure"

/* ---- Security properties of a mechanism ---- */

/* What a mechanism is subject to or provides, in Dovecot's MECH words;
   Postfix's security option words are the negations of the first four
   (noplaintext, noactive, nodictionary, noanonymous) and demands for the
   next two (forward_secrecy, mutual_auth). */
#define SASL_SEC_PLAINTEXT (1u << 0)   /* sends the password in clear */
#define SASL_SEC_ACTIVE (1u << 1)      /* open to active (non-dictionary) attacks */
#define SASL_SEC_DICTIONARY (1u << 2)  /* open to passive dictionary attacks */
#define SASL_SEC_ANONYMOUS (1u << 3)   /* anonymous login */
#define SASL_SEC_FWD_SECRECY (1u << 4) /* provides forward secrecy */
#define SASL_SEC_MUTUAL_AUTH (1u << 5) /* authenticates the server as well */
#define SASL_SEC_PRIVATE (1u << 6)     /* Dovecot: never advertise (APOP) */

/* sasl_secopts_parse - smtpd_sasl_security_options words into the property
   bits a mechanism must not have (NO* words) or must have (the others);
   0, or -1 with why */
int sasl_secopts_parse(const char *value, unsigned *must_not, unsigned *must, VSTR *why);
/* sasl_secopts_allow - does a mechanism with props pass the options */
int sasl_secopts_allow(unsigned props, unsigned must_not, unsigned must);
/* sasl_mech_props - the properties of a mechanism Postern implements itself,
   classified as Cyrus SASL classifies it; 0 when unknown */
unsigned sasl_mech_props(const char *name);
/* sasl_mech_props_word - a Dovecot MECH flag word as a SASL_SEC_* bit; 0 if unknown */
unsigned sasl_mech_props_word(const char *word);

/* sasl_filter - smtpd_sasl_mechanism_filter: names, !name, type:table and
   /file/name, tried in order; the first that matches decides; a mechanism
   no item matches is dropped; an empty filter keeps everything. */
typedef struct SASL_FILTER SASL_FILTER;

#define SASL_FILTER_DEPTH 5            /* /file/name nesting */
#define SASL_FILTER_FILE_MAX (1 << 16) /* largest filter file read */

/* sasl_filter_new - parse the expanded parameter value; NULL with why */
SASL_FILTER *sasl_filter_new(const char *value, VSTR *why);
/* sasl_filter_keep - 1 keep the mechanism, 0 drop it */
int sasl_filter_keep(SASL_FILTER *f, const char *mech);
/* sasl_filter_free - release; NULL is fine */
void sasl_filter_free(SASL_FILTER *f);

/* ---- Codec and checks (sasl_codec.c) ---- */

/* sasl_b64_decode - strict RFC 4648 section 4 base64 (no white space, '='
   padding to a multiple of four, zero pad bits) appended to out; 0, or -1
   and out unchanged */
int sasl_b64_decode(const char *in, size_t len, VSTR *out);
/* sasl_b64_valid - would sasl_b64_decode accept it */
int sasl_b64_valid(const char *in, size_t len);
/* sasl_b64_encode - append base64 of len octets to out */
void sasl_b64_encode(const void *in, size_t len, VSTR *out);
/* sasl_ct_equal - constant-time comparison (time depends on the lengths only) */
int sasl_ct_equal(const void *a, size_t alen, const void *b, size_t blen);
/* sasl_utf8_valid - well-formed UTF-8 (RFC 3629: no overlongs, no surrogates) */
int sasl_utf8_valid(const char *s, size_t len);
/* sasl_id_ok - a usable identity: 1..SASL_ID_MAX octets of UTF-8 without
   control characters (they would end up in logs and table keys) */
int sasl_id_ok(const char *s, size_t len);
/* sasl_wipe - clear memory that held a secret (not optimised away) */
void sasl_wipe(void *p, size_t len);
/* sasl_vstr_wipe_free - wipe the whole buffer of vs, then free it; NULL is fine */
void sasl_vstr_wipe_free(VSTR *vs);
/* sasl_vstr_secret - a new VSTR sized so that up to len octets never realloc */
VSTR *sasl_vstr_secret(size_t len);
/* sasl_printable - replace anything outside printable ASCII with '?' in place */
char *sasl_printable(char *s);

/* ---- PLAIN, LOGIN, CRAM-MD5 (sasl_mech.c) ---- */

/* sasl_plain_parse - RFC 4616 message "[authzid] NUL authcid NUL passwd"
   (msg is the decoded response, NUL-terminated past len as a VSTR is).
   Pointers go into msg, which is split in place. 0, or -1 with a static reason. */
int sasl_plain_parse(char *msg, size_t len, const char **authzid, const char **authcid,
                     const char **passwd, const char **why);
/* sasl_authzid_ok - RFC 4616 authzid rule as Postern applies it: empty, or
   the same identity as authcid (ASCII case does not matter: tables fold it) */
int sasl_authzid_ok(const char *authzid, const char *authcid);
/* sasl_login_check - a decoded LOGIN user name (is_pass 0) or password:
   no NUL, sane length, an identity rule for the name; 0 or -1 with why */
int sasl_login_check(const char *msg, size_t len, int is_pass, const char **why);

#define SASL_LOGIN_USER_CHALLENGE "Username:" /* draft-murchison-sasl-login */
#define SASL_LOGIN_PASS_CHALLENGE "Password:"

/* sasl_cram_challenge - RFC 2195 challenge "<random.time@host>" into out */
void sasl_cram_challenge(VSTR *out, const char *host);
/* sasl_cram_parse - "user SP 32 hex digits": user into user, digest into
   digest; 0, or -1 with a static reason */
int sasl_cram_parse(const char *msg, size_t len, VSTR *user, unsigned char digest[SASL_MD5_LEN],
                    const char **why);
/* sasl_cram_verify - HMAC-MD5(secret, challenge) == digest, in constant time */
int sasl_cram_verify(const char *secret, size_t secret_len, const char *challenge,
                     const unsigned char digest[SASL_MD5_LEN]);

/* ---- SCRAM-SHA-256 (sasl_scram.c) ---- */

typedef struct SASL_SCRAM {
    VSTR *gs2_header;        /* "n,," "y,," or with a=authzid */
    VSTR *authzid;           /* decoded a= value ("" when none) */
    VSTR *username;          /* decoded n= value */
    VSTR *client_first_bare; /* for the AuthMessage */
    VSTR *nonce;             /* client nonce, then client + server nonce */
    VSTR *server_first;      /* what the server sent */
    VSTR *final_no_proof;    /* client-final-message-without-proof */
    unsigned char proof[SASL_KEY_LEN];
} SASL_SCRAM;

/* sasl_scram_new, sasl_scram_free - message state of one exchange */
SASL_SCRAM *sasl_scram_new(void);
void sasl_scram_free(SASL_SCRAM *s);
/* sasl_scram_parse_first - client-first-message (RFC 5802 7); 0, or -1 with a static reason */
int sasl_scram_parse_first(SASL_SCRAM *s, const char *msg, size_t len, const char **why);
/* sasl_scram_snonce - a fresh server nonce (base64 of random octets) into out */
void sasl_scram_snonce(VSTR *out);
/* sasl_scram_server_first - build the server-first-message from the server
   nonce (printable, no ','), salt and iteration count; it is kept in s */
void sasl_scram_server_first(SASL_SCRAM *s, const char *snonce, const unsigned char *salt,
                             size_t salt_len, long iter);
/* sasl_scram_parse_final - client-final-message: channel binding must repeat
   the GS2 header, the nonce must be the combined one; 0, or -1 with why */
int sasl_scram_parse_final(SASL_SCRAM *s, const char *msg, size_t len, const char **why);
/* sasl_scram_keys - StoredKey and ServerKey from a password (ASCII only:
   SASLprep is the identity there) */
void sasl_scram_keys(const char *password, size_t pass_len, const unsigned char *salt,
                     size_t salt_len, long iter, unsigned char stored_key[SASL_KEY_LEN],
                     unsigned char server_key[SASL_KEY_LEN]);
/* sasl_scram_password_ok - may the server prepare this password itself (RFC
   4013 SASLprep leaves printable ASCII unchanged; nothing else is supported) */
int sasl_scram_password_ok(const char *password, size_t len);
/* sasl_scram_verify - does the client proof fit StoredKey (constant time) */
int sasl_scram_verify(const SASL_SCRAM *s, const unsigned char stored_key[SASL_KEY_LEN]);
/* sasl_scram_server_final - "v=" base64(ServerSignature) into out */
void sasl_scram_server_final(const SASL_SCRAM *s, const unsigned char server_key[SASL_KEY_LEN],
                             VSTR *out);

/* A stored secret in Dovecot's form "iter,salt,StoredKey,ServerKey" (the
   text after "{SCRAM-SHA-256}"; salt and keys base64). */
typedef struct SASL_SCRAM_SECRET {
    long iter;
    unsigned char salt[SASL_SCRAM_SALT_MAX];
    size_t salt_len;
    unsigned char stored_key[SASL_KEY_LEN];
    unsigned char server_key[SASL_KEY_LEN];
} SASL_SCRAM_SECRET;

/* sasl_scram_secret_parse - 0, or -1 with a static reason */
int sasl_scram_secret_parse(const char *text, SASL_SCRAM_SECRET *sec, const char **why);

/* ---- Worker threads (sasl_work.c) ---- */

/* Jobs run SASL_WORK_RUN in a worker thread (nothing there may touch the
   event loop, the tables or the log) and then SASL_WORK_DONE in the event
   loop. A cancelled job's done function never runs; its argument is
   released with free_fn either way, in the event loop. */
typedef struct SASL_WORK_POOL SASL_WORK_POOL;
typedef struct SASL_WORK SASL_WORK;
typedef void (*SASL_WORK_RUN)(void *arg);
typedef void (*SASL_WORK_DONE)(void *arg);
typedef void (*SASL_WORK_FREE)(void *arg);

/* sasl_work_pool_new - threads start at the first job (never before the
   daemon has dropped privileges and forked) */
SASL_WORK_POOL *sasl_work_pool_new(struct event_base *base, int threads);
/* sasl_work_submit - queue a job; the handle is valid until done runs or
   until sasl_work_cancel */
SASL_WORK *sasl_work_submit(SASL_WORK_POOL *pool, SASL_WORK_RUN run, SASL_WORK_DONE done,
                            SASL_WORK_FREE free_fn, void *arg);
/* sasl_work_cancel - forget the job: done never runs; arg is freed once no
   thread uses it */
void sasl_work_cancel(SASL_WORK *w);
/* sasl_work_pool_free - stop the threads (waits for running jobs) */
void sasl_work_pool_free(SASL_WORK_POOL *pool);
/* sasl_work_pending - jobs queued or running (for tests) */
size_t sasl_work_pending(SASL_WORK_POOL *pool);

/* ---- The generic layer and the backends (sasl_server.c) ---- */

typedef struct SASL_BACKEND {
    const char *type;
    /* create - backend state from the settings; NULL with why */
    void *(*create)(SASL_SERVER *srv, const SASL_SERVER_ARGS *args, VSTR *why);
    /* mechs - the mechanisms the backend can run now (names and SASL_SEC_*
       properties), refreshed if it must; *generation changes when they do */
    void (*mechs)(void *be, const ARGV **names, const unsigned **props, unsigned *generation);
    /* start - begin; initial is the raw base64 (NULL when none) and decoded
       its decoding (already checked for length and syntax) */
    void *(*start)(void *be, SASL_SESS *sess, const char *mech, const char *initial,
                   const VSTR *decoded);
    /* step - the next response, raw and decoded */
    void (*step)(void *be, void *bsess, const char *raw, size_t len, const VSTR *decoded);
    /* end - the session is over: drop pending work, free bsess */
    void (*end)(void *be, void *bsess);
    void (*free)(void *be);
} SASL_BACKEND;

extern const SASL_BACKEND sasl_postern_backend;
extern const SASL_BACKEND sasl_dovecot_backend;

/* sasl_sess_post - a backend's result for the session: delivered through
   the session's callback from the event loop, never synchronously. After a
   final result (anything but SASL_CONTINUE) the session takes no steps. */
void sasl_sess_post(SASL_SESS *sess, enum sasl_result result, const char *text);
/* sasl_sess_info - what the caller told about the client (copies) */
const SASL_CLIENT_INFO *sasl_sess_info(const SASL_SESS *sess);
/* sasl_server_base - the event loop */
struct event_base *sasl_server_base(const SASL_SERVER *srv);

/* ---- Test hooks ---- */

/* sasl_test_scram_nonce - use this server nonce (NULL: random again) */
void sasl_test_scram_nonce(const char *snonce);
/* sasl_test_cram_challenge - use this CRAM-MD5 challenge (NULL: random again) */
void sasl_test_cram_challenge(const char *challenge);
/* sasl_test_hooks - the current hook values (NULL when unset) */
const char *sasl_test_scram_nonce_get(void);
const char *sasl_test_cram_challenge_get(void);

#endif
