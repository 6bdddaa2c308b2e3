/*
 * mail_addr_find - the lookup orders Postfix documents for address tables.
 *
 * virtual(5)/canonical(5) style (mail_addr_find):
 *     user+ext@domain, user@domain, user+ext, user, @domain
 *   where "user+ext" and "user" are tried only when the domain is local
 *   (the caller says so through a callback: $myorigin, $mydestination,
 *   $inet_interfaces, $proxy_interfaces), or the address has no domain.
 *
 * access(5) style (mail_addr_find_access):
 *     user+ext@domain, user@domain, domain (and its parents), user+ext@, user@
 *   Parent domains: "a.b.example" then ".b.example", ".example"; with
 *   MAIL_ADDR_FIND_PARENT (parent_domain_matches_subdomains lists the
 *   table's parameter) "b.example", "example" instead.
 *
 * Pattern tables (pcre:, cidr:) see only the first, complete key: their
 * patterns do their own matching, as in Postfix. Keys for fixed-string
 * tables are folded to lower case, so lookups never depend on case.
 *
 * recipient_delimiter is passed in (one or more characters, "" or NULL for
 * none); an address is split at the first of them, never at position 0, and
 * never for postmaster, mailer-daemon, double-bounce, and, when '-' is a
 * delimiter, owner-* and *-request.
 *
 * Results are what dict_get() returns (owned by the table); NULL with
 * d->error telling "not found" (DICT_ERR_NONE) from a failed lookup, which
 * stops the search at once.
 */
#ifndef POSTERN_MAIL_ADDR_FIND_H
#define POSTERN_MAIL_ADDR_FIND_H

#include <stddef.h>

#include "mail/dict.h"
#include "util/vstr.h"

#define MAIL_ADDR_FIND_PARENT (1 << 0) /* "domain.tld" also matches its subdomains */
#define MAIL_ADDR_FIND_MAX_LABELS 127  /* parent domains tried at most (DNS limit) */

/* MAIL_ADDR_LOCAL_FN - is this (lower-case) domain one of ours */
typedef int (*MAIL_ADDR_LOCAL_FN)(const char *domain, void *context);

/* mail_addr_find - virtual/canonical order. When the match came from a key
   without the extension, extension (if not NULL) receives it with its
   delimiter ("+foo") so the caller can propagate it; otherwise it is empty. */
const char *mail_addr_find(DICT *d, const char *address, const char *delimiters,
                           MAIL_ADDR_LOCAL_FN is_local, void *context, VSTR *extension);

/* mail_addr_find_access - access(5) order for check_{sender,recipient}_access.
   Pass the null sender as smtpd_null_access_lookup_key ("<>"). */
const char *mail_addr_find_access(DICT *d, const char *address, const char *delimiters, int flags);

/* mail_addr_find_domain - a domain or host name, then its parent domains
   (check_client_access, check_helo_access, ...); an address literal
   "[...]" is looked up only as it is. */
const char *mail_addr_find_domain(DICT *d, const char *domain, int flags);

/* mail_addr_find_host_addr - access(5) network order for a client address:
   1.2.3.4, 1.2.3, 1.2, 1 (IPv6 likewise at ':'); cidr tables see it whole */
const char *mail_addr_find_host_addr(DICT *d, const char *addr);

/* mail_addr_ext_offset - where the extension starts in a local part of len
   bytes (at its delimiter), or len when there is none */
size_t mail_addr_ext_offset(const char *localpart, size_t len, const char *delimiters);

#endif
