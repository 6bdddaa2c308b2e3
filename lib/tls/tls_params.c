/*
 * tls_params - Postfix's TLS protocol lists and cipher grades turned into
 * what OpenSSL takes (see tls_params.h for the syntax).
 */
#include <ctype.h>
#include <openssl/ssl.h>
#include <string.h>
#include <strings.h>

#include "tls/tls_params.h"
#include "util/argv.h"

#define TLS_PARAMS_SEP " \t\r\n,:" /* separators in protocol and exclusion lists */

/* The protocols Postfix names, oldest first. */
static const struct tls_proto_info {
    const char *name;
    int version;
    unsigned long no_opt;
} tls_protos[] = {
    {"SSLv2", SSL2_VERSION, 0}, /* never allowed */
    {"SSLv3", SSL3_VERSION, SSL_OP_NO_SSLv3},
    {"TLSv1", TLS1_VERSION, SSL_OP_NO_TLSv1},
    {"TLSv1.1", TLS1_1_VERSION, SSL_OP_NO_TLSv1_1},
    {"TLSv1.2", TLS1_2_VERSION, SSL_OP_NO_TLSv1_2},
    {"TLSv1.3", TLS1_3_VERSION, SSL_OP_NO_TLSv1_3},
};

#define TLS_NPROTOS ((int)(sizeof(tls_protos) / sizeof(tls_protos[0])))
#define TLS_PROTO_BIT(i) (1u << (i))
#define TLS_PROTO_ALL ((TLS_PROTO_BIT(TLS_NPROTOS) - 1) & ~TLS_PROTO_BIT(0))

/* tls_proto_index - index of a protocol name in tls_protos, -1 when unknown */
static int tls_proto_index(const char *name)
{
    for (int i = 0; i < TLS_NPROTOS; i++)
        if (strcasecmp(name, tls_protos[i].name) == 0)
            return i;
    return -1;
}

/* tls_proto_name - the name of a protocol version */
const char *tls_proto_name(int version)
{
    for (int i = 0; i < TLS_NPROTOS; i++)
        if (tls_protos[i].version == version)
            return tls_protos[i].name;
    return "unknown";
}

/* tls_proto_parse - a Postfix protocol list as an OpenSSL range with holes */
int tls_proto_parse(const char *spec, TLS_PROTO_RANGE *range, VSTR *why)
{
    unsigned allowed = TLS_PROTO_ALL;
    unsigned include = 0;
    int lo = -1, hi = -1;
    ARGV *words;

    if (strlen(spec) > TLS_PARAMS_SPEC_MAX) {
        vstr_sprintf(why, "TLS protocol list longer than %d characters", TLS_PARAMS_SPEC_MAX);
        return -1;
    }
    words = argv_split(spec, TLS_PARAMS_SEP);
    for (size_t w = 0; w < words->argc; w++) {
        const char *word = words->argv[w];
        const char *name = word;
        int idx;

        if (*name == '!' || (name[0] == '>' && name[1] == '=') ||
            (name[0] == '<' && name[1] == '='))
            name += *name == '!' ? 1 : 2;
        if ((idx = tls_proto_index(name)) < 0) {
            vstr_sprintf(why, "unknown TLS protocol \"%s\" in \"%s\"", word, spec);
            argv_free(words);
            return -1;
        }
        if (*word == '!')
            allowed &= ~TLS_PROTO_BIT(idx);
        else if (*word == '>')
            allowed &= ~(TLS_PROTO_BIT(idx) - 1);
        else if (*word == '<')
            allowed &= TLS_PROTO_BIT(idx + 1) - 1;
        else
            include |= TLS_PROTO_BIT(idx);
    }
    argv_free(words);
    /* Naming protocols allows those only (Postfix: "TLSv1.2 TLSv1.3"). */
    if (include)
        allowed &= include;
    for (int i = 0; i < TLS_NPROTOS; i++) {
        if (allowed & TLS_PROTO_BIT(i)) {
            if (lo < 0)
                lo = i;
            hi = i;
        }
    }
    if (lo < 0) {
        vstr_sprintf(why, "no usable TLS protocol in \"%s\"", spec);
        return -1;
    }
    range->min = tls_protos[lo].version;
    range->max = tls_protos[hi].version;
    range->no_opts = 0;
    for (int i = lo; i <= hi; i++)
        if (!(allowed & TLS_PROTO_BIT(i)))
            range->no_opts |= tls_protos[i].no_opt;
    return 0;
}

/* tls_cipher_name_ok - an OpenSSL cipher or cipher class name, nothing else */
static int tls_cipher_name_ok(const char *name)
{
    /* Not empty, and no OpenSSL operator ('!', '+', '-', '@') in front. */
    if (!isalnum((unsigned char)*name))
        return 0;
    for (const char *cp = name; *cp; cp++)
        if (!isalnum((unsigned char)*cp) && strchr("-_.+=", *cp) == NULL)
            return 0;
    return 1;
}

/* tls_cipher_grade - the cipher list for a Postfix grade, minus the exclusions */
int tls_cipher_grade(const char *grade, const char *high_list, const char *medium_list,
                     const char *exclusions, VSTR *out, VSTR *why)
{
    const char *base;
    ARGV *words;

    if (strcasecmp(grade, "high") == 0) {
        base = high_list;
    } else if (strcasecmp(grade, "medium") == 0 || strcasecmp(grade, "low") == 0 ||
               strcasecmp(grade, "export") == 0) {
        base = medium_list;
    } else if (strcasecmp(grade, "null") == 0) {
        vstr_sprintf(why, "cipher grade \"null\" (no encryption) is not supported");
        return -1;
    } else {
        vstr_sprintf(why, "unknown cipher grade \"%s\": use high or medium", grade);
        return -1;
    }
    if (base == NULL || *base == 0) {
        vstr_sprintf(why, "empty cipher list for grade \"%s\"", grade);
        return -1;
    }
    if (strlen(exclusions) > TLS_PARAMS_SPEC_MAX) {
        vstr_sprintf(why, "cipher exclusion list longer than %d characters", TLS_PARAMS_SPEC_MAX);
        return -1;
    }
    vstr_cpy(out, base);
    words = argv_split(exclusions, TLS_PARAMS_SEP);
    for (size_t w = 0; w < words->argc; w++) {
        const char *name = words->argv[w];

        /* Postfix: an exclusion names ciphers; OpenSSL's operators are not allowed. */
        if (!tls_cipher_name_ok(name)) {
            vstr_sprintf(why, "invalid cipher exclusion \"%s\"", name);
            argv_free(words);
            return -1;
        }
        vstr_sprintf_append(out, ":!%s", name);
    }
    argv_free(words);
    return 0;
}
