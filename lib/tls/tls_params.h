/*
 * tls_params - Postfix's TLS parameter syntax, for the server and the
 * client: protocol lists (smtpd_tls_protocols, smtp_tls_protocols and
 * their mandatory_ forms) and cipher grades (smtpd_tls_ciphers = high |
 * medium, with *_exclude_ciphers).
 *
 * Protocol lists: names separated by white space, commas or colons.
 * "!NAME" excludes a protocol, ">=NAME" and "<=NAME" bound the range,
 * a bare "NAME" includes it (when any are listed, only those listed are
 * allowed). Names: SSLv2, SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, any
 * case. SSLv2 is never allowed. An empty list allows SSLv3 to TLSv1.3
 * (what the OpenSSL build and its security level permit). Examples:
 * ">=TLSv1.2", "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", "TLSv1.3".
 *
 * OpenSSL takes a range (min, max) plus "no" options for holes inside
 * it ("!TLSv1.1" with TLSv1 allowed): TLS_PROTO_RANGE carries all three.
 */
#ifndef POSTERN_TLS_PARAMS_H
#define POSTERN_TLS_PARAMS_H

#include "util/vstr.h"

#define TLS_PARAMS_SPEC_MAX 1024 /* longest protocol list or exclusion list taken */

/* The OpenSSL settings for a protocol list. */
typedef struct TLS_PROTO_RANGE {
    int min;               /* SSL3_VERSION .. TLS1_3_VERSION */
    int max;               /* SSL3_VERSION .. TLS1_3_VERSION, >= min */
    unsigned long no_opts; /* SSL_OP_NO_* for protocols inside [min, max] that are off */
} TLS_PROTO_RANGE;

/* tls_proto_parse - a protocol list as a range; 0, or -1 with the reason in why
   (unknown name, bad syntax, nothing left) */
int tls_proto_parse(const char *spec, TLS_PROTO_RANGE *range, VSTR *why);

/* tls_proto_name - "TLSv1.2" for TLS1_2_VERSION and so on; "unknown" otherwise */
const char *tls_proto_name(int version);

/*
 * Cipher grades. Postfix names the lists "high" and "medium" (and the
 * obsolete "low", "export" and "null"); the caller supplies what each
 * grade means (see tls_server.h for the server's modern lists). "low"
 * and "export" are taken as "medium" (no cipher weaker than the medium
 * list is ever offered); "null" (no encryption) is refused.
 */

/* tls_cipher_grade - the OpenSSL cipher list for a grade, with the exclusions
   (white space, comma or colon separated names, each appended as ":!NAME")
   into out; 0, or -1 with the reason in why */
int tls_cipher_grade(const char *grade, const char *high_list, const char *medium_list,
                     const char *exclusions, VSTR *out, VSTR *why);

#endif
