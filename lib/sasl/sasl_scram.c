/*
 * sasl_scram - SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash) on the server
 * side: the client messages, the server messages, the keys, and Dovecot's
 * stored secret form "{SCRAM-SHA-256}iter,salt,StoredKey,ServerKey".
 *
 * Not supported, and refused clearly: channel binding (the client asks
 * with "p="; Postern never offers SCRAM-SHA-256-PLUS, so "n" and "y" are
 * the flags a correct client sends), mandatory extensions ("m=", RFC 5802
 * 5.1), and SASLprep of passwords beyond printable ASCII (where SASLprep
 * changes nothing): a plaintext secret outside that range cannot be used
 * with SCRAM, which the backend reports.
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "sasl/sasl_impl.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/strutil.h"
#include "util/vstr.h"

static char *sasl_scram_test_nonce;

/* sasl_test_scram_nonce - tests pin the server nonce (RFC 7677's vector) */
void sasl_test_scram_nonce(const char *snonce)
{
    myfree(sasl_scram_test_nonce);
    sasl_scram_test_nonce = snonce ? mystrdup(snonce) : NULL;
}

/* sasl_test_scram_nonce_get - the pinned nonce or NULL */
const char *sasl_test_scram_nonce_get(void)
{
    return sasl_scram_test_nonce;
}

/* sasl_scram_new - empty exchange state */
SASL_SCRAM *sasl_scram_new(void)
{
    SASL_SCRAM *s = mycalloc(1, sizeof(*s));

    s->gs2_header = vstr_alloc(16);
    s->authzid = vstr_alloc(16);
    s->username = vstr_alloc(32);
    s->client_first_bare = vstr_alloc(64);
    s->nonce = vstr_alloc(64);
    s->server_first = vstr_alloc(128);
    s->final_no_proof = vstr_alloc(128);
    return s;
}

/* sasl_scram_free - release; NULL is fine */
void sasl_scram_free(SASL_SCRAM *s)
{
    if (s == NULL)
        return;
    vstr_free(s->gs2_header);
    vstr_free(s->authzid);
    vstr_free(s->username);
    vstr_free(s->client_first_bare);
    vstr_free(s->nonce);
    vstr_free(s->server_first);
    vstr_free(s->final_no_proof);
    sasl_wipe(s->proof, sizeof(s->proof));
    myfree(s);
}

/* sasl_scram_saslname - decode RFC 5802 saslname ("=2C" is ',', "=3D" is
   '='; any other '=' is invalid) into out; 0 or -1 */
static int sasl_scram_saslname(const char *p, size_t len, VSTR *out)
{
    vstr_reset(out);
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '=') {
            if (i + 2 < len && p[i + 1] == '2' && p[i + 2] == 'C')
                vstr_addch(out, ',');
            else if (i + 2 < len && p[i + 1] == '3' && p[i + 2] == 'D')
                vstr_addch(out, '=');
            else
                return -1;
            i += 2;
        } else if (p[i] == ',') {
            return -1;
        } else {
            vstr_addch(out, p[i]);
        }
    }
    return sasl_id_ok(vstr_str(out), vstr_len(out)) ? 0 : -1;
}

/* sasl_scram_field - the attribute at *pos: letter '=' value up to ',' or
   the end; value and its length out, *pos past the ','; -1 when malformed */
static int sasl_scram_field(const char *msg, size_t len, size_t *pos, int *attr, const char **value,
                            size_t *vlen)
{
    size_t start = *pos;
    const char *comma;

    if (start + 2 > len || msg[start + 1] != '=')
        return -1;
    *attr = (unsigned char)msg[start];
    if (!((*attr >= 'a' && *attr <= 'z') || (*attr >= 'A' && *attr <= 'Z')))
        return -1;
    *value = msg + start + 2;
    comma = memchr(*value, ',', len - start - 2);
    *vlen = comma ? (size_t)(comma - *value) : len - start - 2;
    *pos = comma ? (size_t)(comma - msg) + 1 : len;
    /* A trailing ',' would start an empty attribute. */
    if (comma != NULL && *pos == len)
        return -1;
    return 0;
}

/* sasl_scram_printable - printable ASCII other than ',' (RFC 5802 "printable") */
static int sasl_scram_printable(const char *p, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
            return 0;
    return 1;
}

/* sasl_scram_parse_first - gs2-header client-first-message-bare */
int sasl_scram_parse_first(SASL_SCRAM *s, const char *msg, size_t len, const char **why)
{
    size_t pos;
    int attr;
    const char *v;
    size_t vlen;

    if (memchr(msg, 0, len) != NULL || !sasl_utf8_valid(msg, len)) {
        *why = "SCRAM: malformed client-first-message";
        return -1;
    }
    /* gs2-cbind-flag */
    if (len >= 1 && msg[0] == 'p') {
        *why = "SCRAM: channel binding is not supported";
        return -1;
    }
    if (len < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',') {
        *why = "SCRAM: malformed GS2 header";
        return -1;
    }
    pos = 2;
    vstr_reset(s->authzid);
    if (msg[pos] != ',') {
        const char *comma;

        if (msg[pos] != 'a' || pos + 1 >= len || msg[pos + 1] != '=' ||
            (comma = memchr(msg + pos, ',', len - pos)) == NULL ||
            sasl_scram_saslname(msg + pos + 2, (size_t)(comma - msg - pos - 2), s->authzid) < 0) {
            *why = "SCRAM: malformed authorization identity";
            return -1;
        }
        pos = (size_t)(comma - msg);
    }
    pos++;
    vstr_ncpy(s->gs2_header, msg, pos);
    vstr_ncpy(s->client_first_bare, msg + pos, len - pos);

    /* client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions] */
    if (sasl_scram_field(msg, len, &pos, &attr, &v, &vlen) < 0) {
        *why = "SCRAM: malformed client-first-message";
        return -1;
    }
    if (attr == 'm') {
        *why = "SCRAM: mandatory extensions are not supported";
        return -1;
    }
    if (attr != 'n' || sasl_scram_saslname(v, vlen, s->username) < 0) {
        *why = "SCRAM: malformed user name";
        return -1;
    }
    if (sasl_scram_field(msg, len, &pos, &attr, &v, &vlen) < 0 || attr != 'r' ||
        vlen > SASL_SCRAM_NONCE_MAX || !sasl_scram_printable(v, vlen)) {
        *why = "SCRAM: malformed client nonce";
        return -1;
    }
    vstr_ncpy(s->nonce, v, vlen);
    /* Optional extensions: well-formed, otherwise ignored (RFC 5802 5.1). */
    while (pos < len) {
        if (sasl_scram_field(msg, len, &pos, &attr, &v, &vlen) < 0) {
            *why = "SCRAM: malformed extension";
            return -1;
        }
    }
    return 0;
}

/* sasl_scram_snonce - 18 random octets in base64: no ',' can appear */
void sasl_scram_snonce(VSTR *out)
{
    unsigned char rnd[SASL_SCRAM_SNONCE_LEN];

    vstr_reset(out);
    if (sasl_scram_test_nonce != NULL) {
        vstr_cpy(out, sasl_scram_test_nonce);
        return;
    }
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        msg_fatal("SCRAM: RAND_bytes failed");
    sasl_b64_encode(rnd, sizeof(rnd), out);
}

/* sasl_scram_server_first - "r=cnonce+snonce,s=salt,i=iter" */
void sasl_scram_server_first(SASL_SCRAM *s, const char *snonce, const unsigned char *salt,
                             size_t salt_len, long iter)
{
    vstr_cat(s->nonce, snonce);
    vstr_sprintf(s->server_first, "r=%s,s=", vstr_str(s->nonce));
    sasl_b64_encode(salt, salt_len, s->server_first);
    vstr_sprintf_append(s->server_first, ",i=%ld", iter);
}

/* sasl_scram_parse_final - "c=..,r=..[,ext]*,p=.." */
int sasl_scram_parse_final(SASL_SCRAM *s, const char *msg, size_t len, const char **why)
{
    size_t pos = 0;
    size_t attr_start;
    int attr;
    const char *v;
    size_t vlen;
    VSTR *cbind;
    int ok;

    if (memchr(msg, 0, len) != NULL || !sasl_utf8_valid(msg, len)) {
        *why = "SCRAM: malformed client-final-message";
        return -1;
    }
    if (sasl_scram_field(msg, len, &pos, &attr, &v, &vlen) < 0 || attr != 'c') {
        *why = "SCRAM: malformed channel binding";
        return -1;
    }
    /* Without channel binding, c= repeats the GS2 header (RFC 5802 7). */
    cbind = vstr_alloc(vlen);
    ok = sasl_b64_decode(v, vlen, cbind) == 0 &&
         sasl_ct_equal(vstr_str(cbind), vstr_len(cbind), vstr_str(s->gs2_header),
                       vstr_len(s->gs2_header));
    vstr_free(cbind);
    if (!ok) {
        *why = "SCRAM: channel binding does not match the GS2 header";
        return -1;
    }
    if (sasl_scram_field(msg, len, &pos, &attr, &v, &vlen) < 0 || attr != 'r' ||
        !sasl_ct_equal(v, vlen, vstr_str(s->nonce), vstr_len(s->nonce))) {
        *why = "SCRAM: nonce mismatch";
        return -1;
    }
    for (;;) {
        attr_start = pos;
        if (pos >= len || sasl_scram_field(msg, len, &pos, &attr, &v, &vlen) < 0) {
            *why = "SCRAM: malformed client-final-message";
            return -1;
        }
        if (attr == 'p')
            break;
    }
    /* The proof is the last attribute. */
    if (pos != len || attr_start == 0) {
        *why = "SCRAM: the proof must come last";
        return -1;
    }
    {
        VSTR *proof = vstr_alloc(SASL_KEY_LEN + 3);

        ok = sasl_b64_decode(v, vlen, proof) == 0 && vstr_len(proof) == SASL_KEY_LEN;
        if (ok)
            memcpy(s->proof, vstr_str(proof), SASL_KEY_LEN);
        vstr_free(proof);
    }
    if (!ok) {
        *why = "SCRAM: malformed proof";
        return -1;
    }
    vstr_ncpy(s->final_no_proof, msg, attr_start - 1);
    return 0;
}

/* sasl_scram_hmac - HMAC-SHA-256 */
static void sasl_scram_hmac(const unsigned char *key, size_t key_len, const void *data, size_t len,
                            unsigned char out[SASL_KEY_LEN])
{
    unsigned int out_len = 0;

    if (HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &out_len) == NULL ||
        out_len != SASL_KEY_LEN)
        msg_fatal("SCRAM: HMAC-SHA-256 failed");
}

/* sasl_scram_keys - SaltedPassword := Hi(password, salt, i); the two keys */
void sasl_scram_keys(const char *password, size_t pass_len, const unsigned char *salt,
                     size_t salt_len, long iter, unsigned char stored_key[SASL_KEY_LEN],
                     unsigned char server_key[SASL_KEY_LEN])
{
    unsigned char salted[SASL_KEY_LEN];
    unsigned char client_key[SASL_KEY_LEN];

    if (PKCS5_PBKDF2_HMAC(password, (int)pass_len, salt, (int)salt_len, (int)iter, EVP_sha256(),
                          SASL_KEY_LEN, salted) != 1)
        msg_fatal("SCRAM: PBKDF2 failed");
    sasl_scram_hmac(salted, sizeof(salted), "Client Key", 10, client_key);
    SHA256(client_key, sizeof(client_key), stored_key);
    sasl_scram_hmac(salted, sizeof(salted), "Server Key", 10, server_key);
    sasl_wipe(salted, sizeof(salted));
    sasl_wipe(client_key, sizeof(client_key));
}

/* sasl_scram_password_ok - printable ASCII: SASLprep (RFC 4013) is the identity there */
int sasl_scram_password_ok(const char *password, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)password[i] < 0x20 || (unsigned char)password[i] > 0x7e)
            return 0;
    return 1;
}

/* sasl_scram_auth_message - client-first-bare "," server-first "," client-final-without-proof */
static VSTR *sasl_scram_auth_message(const SASL_SCRAM *s)
{
    VSTR *am = vstr_alloc(vstr_len(s->client_first_bare) + vstr_len(s->server_first) +
                          vstr_len(s->final_no_proof) + 3);

    vstr_ncat(am, vstr_str(s->client_first_bare), vstr_len(s->client_first_bare));
    vstr_addch(am, ',');
    vstr_ncat(am, vstr_str(s->server_first), vstr_len(s->server_first));
    vstr_addch(am, ',');
    vstr_ncat(am, vstr_str(s->final_no_proof), vstr_len(s->final_no_proof));
    return am;
}

/* sasl_scram_verify - ClientKey := ClientProof XOR HMAC(StoredKey, AuthMessage);
   H(ClientKey) must be StoredKey */
int sasl_scram_verify(const SASL_SCRAM *s, const unsigned char stored_key[SASL_KEY_LEN])
{
    VSTR *am = sasl_scram_auth_message(s);
    unsigned char sig[SASL_KEY_LEN];
    unsigned char key[SASL_KEY_LEN];
    unsigned char hashed[SASL_KEY_LEN];
    int ok;

    sasl_scram_hmac(stored_key, SASL_KEY_LEN, vstr_str(am), vstr_len(am), sig);
    for (size_t i = 0; i < SASL_KEY_LEN; i++)
        key[i] = s->proof[i] ^ sig[i];
    SHA256(key, sizeof(key), hashed);
    ok = sasl_ct_equal(hashed, sizeof(hashed), stored_key, SASL_KEY_LEN);
    sasl_wipe(key, sizeof(key));
    vstr_free(am);
    return ok;
}

/* sasl_scram_server_final - "v=" base64(HMAC(ServerKey, AuthMessage)) */
void sasl_scram_server_final(const SASL_SCRAM *s, const unsigned char server_key[SASL_KEY_LEN],
                             VSTR *out)
{
    VSTR *am = sasl_scram_auth_message(s);
    unsigned char sig[SASL_KEY_LEN];

    sasl_scram_hmac(server_key, SASL_KEY_LEN, vstr_str(am), vstr_len(am), sig);
    vstr_cpy(out, "v=");
    sasl_b64_encode(sig, sizeof(sig), out);
    vstr_free(am);
}

/* sasl_scram_b64_field - decode one comma-separated base64 field of a secret */
static int sasl_scram_b64_field(const char **cp, unsigned char *out, size_t max, size_t *out_len,
                                int last)
{
    const char *end = last ? *cp + strlen(*cp) : strchr(*cp, ',');
    VSTR *buf;
    int ok;

    if (end == NULL)
        return -1;
    buf = vstr_alloc((size_t)(end - *cp) + 1);
    ok = sasl_b64_decode(*cp, (size_t)(end - *cp), buf) == 0 && vstr_len(buf) > 0 &&
         vstr_len(buf) <= max;
    if (ok) {
        memcpy(out, vstr_str(buf), vstr_len(buf));
        *out_len = vstr_len(buf);
    }
    sasl_vstr_wipe_free(buf);
    *cp = last ? end : end + 1;
    return ok ? 0 : -1;
}

/* sasl_scram_secret_parse - Dovecot's "iter,salt,StoredKey,ServerKey" */
int sasl_scram_secret_parse(const char *text, SASL_SCRAM_SECRET *sec, const char **why)
{
    const char *comma = strchr(text, ',');
    char num[16];
    size_t n;

    memset(sec, 0, sizeof(*sec));
    if (comma == NULL || comma == text || (size_t)(comma - text) >= sizeof(num)) {
        *why = "SCRAM-SHA-256 secret: malformed iteration count";
        return -1;
    }
    memcpy(num, text, (size_t)(comma - text));
    num[comma - text] = 0;
    if (parse_long(num, 1, SASL_SCRAM_ITER_MAX, &sec->iter) < 0) {
        *why = "SCRAM-SHA-256 secret: bad iteration count";
        return -1;
    }
    text = comma + 1;
    if (sasl_scram_b64_field(&text, sec->salt, sizeof(sec->salt), &sec->salt_len, 0) < 0) {
        *why = "SCRAM-SHA-256 secret: bad salt";
        return -1;
    }
    if (sasl_scram_b64_field(&text, sec->stored_key, SASL_KEY_LEN, &n, 0) < 0 ||
        n != SASL_KEY_LEN) {
        *why = "SCRAM-SHA-256 secret: bad StoredKey";
        return -1;
    }
    if (strchr(text, ',') != NULL ||
        sasl_scram_b64_field(&text, sec->server_key, SASL_KEY_LEN, &n, 1) < 0 ||
        n != SASL_KEY_LEN) {
        *why = "SCRAM-SHA-256 secret: bad ServerKey";
        return -1;
    }
    return 0;
}
