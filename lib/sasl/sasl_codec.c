/*
 * sasl_codec - strict base64 (RFC 4648 section 4), constant-time
 * comparison, UTF-8 and identity checks, and wiping of secrets for the SASL
 * server library.
 *
 * Strictness is deliberate: RFC 4954 4 says a malformed base64 response is
 * answered 501, and accepting white space, missing padding or non-zero pad
 * bits would let two different strings mean the same response, which is
 * how filters in front of a parser get bypassed.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "sasl/sasl_impl.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

static const char sasl_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* sasl_b64_value - the 6-bit value of an alphabet character, -1 otherwise */
static int sasl_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* sasl_b64_scan - check in and, when out is not NULL, append the octets */
static int sasl_b64_scan(const char *in, size_t len, VSTR *out)
{
    const unsigned char *p = (const unsigned char *)in;

    if (len % 4 != 0)
        return -1;
    if (out != NULL)
        vstr_reserve(out, len / 4 * 3 + 1);
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        int last = (i + 4 == len);

        for (int k = 0; k < 4; k++) {
            if (p[i + k] == '=') {
                /* Padding only at the end of the last quantum: "xx==" or "xxx=". */
                if (!last || k < 2)
                    return -1;
                if (k == 2 && p[i + 3] != '=')
                    return -1;
                v[k] = 0;
                pad++;
            } else if ((v[k] = sasl_b64_value(p[i + k])) < 0 || pad > 0) {
                return -1;
            }
        }
        /* RFC 4648 3.5: the bits that padding leaves over must be zero. */
        if (pad == 2 && (v[1] & 0x0f) != 0)
            return -1;
        if (pad == 1 && (v[2] & 0x03) != 0)
            return -1;
        if (out != NULL) {
            unsigned char o[3];

            o[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
            o[1] = (unsigned char)((v[1] & 0x0f) << 4 | v[2] >> 2);
            o[2] = (unsigned char)((v[2] & 0x03) << 6 | v[3]);
            vstr_ncat(out, o, (size_t)(3 - pad));
        }
    }
    return 0;
}

/* sasl_b64_decode - strict decode appended to out; -1 leaves out unchanged */
int sasl_b64_decode(const char *in, size_t len, VSTR *out)
{
    size_t mark = vstr_len(out);
    size_t old_limit = out->limit;
    int ret;

    /* The decoded size is known: never let the limit cut a result short. */
    out->limit = 0;
    if ((ret = sasl_b64_scan(in, len, out)) < 0) {
        sasl_wipe(vstr_str(out) + mark, vstr_len(out) - mark);
        vstr_truncate(out, mark);
    }
    out->limit = old_limit;
    return ret;
}

/* sasl_b64_valid - syntax check only */
int sasl_b64_valid(const char *in, size_t len)
{
    return sasl_b64_scan(in, len, NULL) == 0;
}

/* sasl_b64_encode - append the base64 form of len octets */
void sasl_b64_encode(const void *in, size_t len, VSTR *out)
{
    const unsigned char *p = in;
    char q[4];

    vstr_reserve(out, size_add(size_mul(len / 3 + 1, 4), 1));
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;

        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        q[0] = sasl_b64_alphabet[v >> 18 & 0x3f];
        q[1] = sasl_b64_alphabet[v >> 12 & 0x3f];
        q[2] = i + 1 < len ? sasl_b64_alphabet[v >> 6 & 0x3f] : '=';
        q[3] = i + 2 < len ? sasl_b64_alphabet[v & 0x3f] : '=';
        vstr_ncat(out, q, 4);
    }
}

/* sasl_ct_equal - compare secrets without an early exit */
int sasl_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    /* A length difference is no secret (hash formats fix the lengths), but
       still compare something so that both paths cost about the same. */
    if (alen != blen) {
        (void)CRYPTO_memcmp(a, a, alen);
        return 0;
    }
    return CRYPTO_memcmp(a, b, alen) == 0;
}

/* sasl_utf8_next - length of the well-formed UTF-8 sequence at s, 0 if bad */
static size_t sasl_utf8_next(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    /* Overlong forms, UTF-16 surrogates and values past U+10FFFF. */
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* sasl_utf8_valid - RFC 3629 well-formedness */
int sasl_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < len;) {
        size_t n = sasl_utf8_next(p + i, len - i);

        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* sasl_id_ok - an identity that is safe to log and to look up */
int sasl_id_ok(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;

    if (len == 0 || len > SASL_ID_MAX || !sasl_utf8_valid(s, len))
        return 0;
    for (size_t i = 0; i < len; i++) {
        /* C0 controls, NUL, DEL, and C1 controls (U+0080..U+009F = C2 80..9F). */
        if (p[i] < 0x20 || p[i] == 0x7f)
            return 0;
        if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
            return 0;
    }
    return 1;
}

/* sasl_wipe - clear a secret */
void sasl_wipe(void *p, size_t len)
{
    if (p != NULL && len > 0)
        OPENSSL_cleanse(p, len);
}

/* sasl_vstr_wipe_free - clear the whole buffer, then free */
void sasl_vstr_wipe_free(VSTR *vs)
{
    if (vs == NULL)
        return;
    sasl_wipe(vs->data, vs->cap);
    vstr_free(vs);
}

/* sasl_vstr_secret - a buffer that will not move (and leave copies) while it grows to len */
VSTR *sasl_vstr_secret(size_t len)
{
    VSTR *vs = vstr_alloc(size_add(len, 1));

    vstr_reserve(vs, size_add(len, 1));
    return vs;
}

/* sasl_printable - make text from a peer safe for a log line */
char *sasl_printable(char *s)
{
    size_t len = strlen(s);
    int utf8 = sasl_utf8_valid(s, len);
    unsigned char *p = (unsigned char *)s;

    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f || (!utf8 && p[i] >= 0x80))
            p[i] = '?';
        else if (utf8 && p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
            p[i] = p[i + 1] = '?';
    }
    return s;
}
