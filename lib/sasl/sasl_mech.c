/*
 * sasl_mech - the messages of the simple mechanisms: PLAIN (RFC 4616),
 * LOGIN (draft-murchison-sasl-login) and CRAM-MD5 (RFC 2195). Each parser
 * takes the decoded client response and refuses anything off its grammar;
 * the backends decide what to do with the identities and secrets.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "sasl/sasl_impl.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

/* ---- PLAIN ---- */

/* sasl_plain_parse - split "[authzid] NUL authcid NUL passwd" */
int sasl_plain_parse(char *msg, size_t len, const char **authzid, const char **authcid,
                     const char **passwd, const char **why)
{
    char *nul1 = memchr(msg, 0, len);
    char *nul2;
    size_t zlen, clen, plen;

    if (nul1 == NULL || (nul2 = memchr(nul1 + 1, 0, len - (size_t)(nul1 + 1 - msg))) == NULL) {
        *why = "PLAIN: the response needs two NUL separators";
        return -1;
    }
    zlen = (size_t)(nul1 - msg);
    clen = (size_t)(nul2 - nul1 - 1);
    plen = len - (size_t)(nul2 + 1 - msg);
    if (memchr(nul2 + 1, 0, plen) != NULL) {
        *why = "PLAIN: NUL in the password";
        return -1;
    }
    if (zlen > 0 && !sasl_id_ok(msg, zlen)) {
        *why = "PLAIN: malformed authorization identity";
        return -1;
    }
    if (!sasl_id_ok(nul1 + 1, clen)) {
        *why = "PLAIN: malformed authentication identity";
        return -1;
    }
    if (plen == 0 || plen > SASL_PASS_MAX) {
        *why = "PLAIN: empty or overlong password";
        return -1;
    }
    *authzid = msg;
    *authcid = nul1 + 1;
    *passwd = nul2 + 1;
    return 0;
}

/* sasl_authzid_ok - no acting on behalf of someone else */
int sasl_authzid_ok(const char *authzid, const char *authcid)
{
    return *authzid == 0 || strcasecmp(authzid, authcid) == 0;
}

/* ---- LOGIN ---- */

/* sasl_login_check - one decoded LOGIN answer */
int sasl_login_check(const char *msg, size_t len, int is_pass, const char **why)
{
    if (memchr(msg, 0, len) != NULL) {
        *why = is_pass ? "LOGIN: NUL in the password" : "LOGIN: NUL in the user name";
        return -1;
    }
    if (is_pass) {
        if (len == 0 || len > SASL_PASS_MAX) {
            *why = "LOGIN: empty or overlong password";
            return -1;
        }
    } else if (!sasl_id_ok(msg, len)) {
        *why = "LOGIN: malformed user name";
        return -1;
    }
    return 0;
}

/* ---- CRAM-MD5 ---- */

static char *sasl_cram_test_challenge;

/* sasl_test_cram_challenge - tests pin the challenge (RFC 2195's example) */
void sasl_test_cram_challenge(const char *challenge)
{
    myfree(sasl_cram_test_challenge);
    sasl_cram_test_challenge = challenge ? mystrdup(challenge) : NULL;
}

/* sasl_test_cram_challenge_get - the pinned challenge or NULL */
const char *sasl_test_cram_challenge_get(void)
{
    return sasl_cram_test_challenge;
}

/* sasl_cram_challenge - "<random.time@host>": unique, never repeated, so that
   a captured response cannot be replayed (RFC 2195 2) */
void sasl_cram_challenge(VSTR *out, const char *host)
{
    unsigned char rnd[8];
    unsigned long long r = 0;

    if (sasl_cram_test_challenge != NULL) {
        vstr_cpy(out, sasl_cram_test_challenge);
        return;
    }
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        msg_fatal("CRAM-MD5: RAND_bytes failed");
    for (size_t i = 0; i < sizeof(rnd); i++)
        r = r << 8 | rnd[i];
    vstr_sprintf(out, "<%llu.%lld@%s>", r, (long long)time(NULL), host);
}

/* sasl_hex_value - one hex digit, -1 otherwise */
static int sasl_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* sasl_cram_parse - "user SP digest" (the user name may hold spaces: the
   digest follows the last one) */
int sasl_cram_parse(const char *msg, size_t len, VSTR *user, unsigned char digest[SASL_MD5_LEN],
                    const char **why)
{
    const char *sp;

    if (memchr(msg, 0, len) != NULL) {
        *why = "CRAM-MD5: NUL in the response";
        return -1;
    }
    if (len < 2 * SASL_MD5_LEN + 2 || msg[len - 2 * SASL_MD5_LEN - 1] != ' ') {
        *why = "CRAM-MD5: the response is not \"user digest\"";
        return -1;
    }
    sp = msg + len - 2 * SASL_MD5_LEN - 1;
    for (size_t i = 0; i < SASL_MD5_LEN; i++) {
        int hi = sasl_hex_value((unsigned char)sp[1 + 2 * i]);
        int lo = sasl_hex_value((unsigned char)sp[2 + 2 * i]);

        if (hi < 0 || lo < 0) {
            *why = "CRAM-MD5: the digest is not 32 hex digits";
            return -1;
        }
        digest[i] = (unsigned char)(hi << 4 | lo);
    }
    if (!sasl_id_ok(msg, (size_t)(sp - msg))) {
        *why = "CRAM-MD5: malformed user name";
        return -1;
    }
    vstr_ncpy(user, msg, (size_t)(sp - msg));
    return 0;
}

/* sasl_cram_verify - recompute the keyed digest and compare */
int sasl_cram_verify(const char *secret, size_t secret_len, const char *challenge,
                     const unsigned char digest[SASL_MD5_LEN])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int ok;

    if (HMAC(EVP_md5(), secret, (int)secret_len, (const unsigned char *)challenge,
             strlen(challenge), mac, &mac_len) == NULL)
        msg_fatal("CRAM-MD5: HMAC-MD5 failed");
    ok = sasl_ct_equal(mac, mac_len, digest, SASL_MD5_LEN);
    sasl_wipe(mac, sizeof(mac));
    return ok;
}
