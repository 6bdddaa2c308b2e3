/*
 * match_list - ordered pattern lists for network addresses and domains:
 * mynetworks, relay_domains, mydestination, smtpd_client_event_limit_exceptions,
 * smtpd_forbid_bare_newline_exclusions and the like.
 *
 * PATTERNS (tried in order; the first that matches decides)
 *   !pattern          when pattern matches, the answer is "no match"
 *   type:table        a lookup that finds any value is a match (dict.h);
 *                     address lists look up in mail_addr_find_host_addr
 *                     order, domain lists in mail_addr_find_domain order
 *   /file/name        the patterns in that file: separated by commas or
 *                     white space, '#' starts a comment line; files may name
 *                     files, at most MATCH_LIST_DEPTH deep
 *
 *   MATCH_LIST_ADDR (host addresses, Postfix's mynetworks syntax):
 *     192.0.2.7   192.0.2.0/24   [192.0.2.0]/24   2001:db8::/32
 *     [2001:db8::]/32   [::1]/128   ::1
 *   A network with host bits set ("192.0.2.7/24") is refused, as Postfix
 *   refuses it, because it rarely means what the writer thought.
 *   IPv4-mapped IPv6 addresses (::ffff:192.0.2.7) match as IPv4.
 *
 *   MATCH_LIST_DOMAIN (domain names, any case):
 *     example.com     that domain; with MATCH_LIST_PARENT also every
 *                     subdomain (parent_domain_matches_subdomains)
 *     .example.com    every subdomain of example.com
 *     [192.0.2.7]     an address literal, compared as text
 *
 * RESULTS
 *   match_list_addr and match_list_domain return 1 for a match, 0 for none,
 *   and -1 when a table lookup failed (DICT_ERR_RETRY or DICT_ERR_CONFIG):
 *   the caller must then answer "try again later", never "no".
 *
 * OWNERSHIP
 *   match_list_new copies what it needs; tables are opened through
 *   dict_open (shared) and closed by match_list_free.
 */
#ifndef POSTERN_MATCH_LIST_H
#define POSTERN_MATCH_LIST_H

#include "util/vstr.h"

#define MATCH_LIST_ADDR (1 << 0)   /* patterns are networks (or tables keyed by address) */
#define MATCH_LIST_DOMAIN (1 << 1) /* patterns are domains (or tables keyed by domain) */
#define MATCH_LIST_PARENT (1 << 2) /* domain: "example.com" also matches its subdomains */

#define MATCH_LIST_DEPTH 10           /* /file/name nesting */
#define MATCH_LIST_FILE_MAX (1 << 20) /* largest pattern file read */
#define MATCH_LIST_ITEM_MAX 1024      /* longest single pattern */

typedef struct MATCH_LIST MATCH_LIST;

/* match_list_new - parse value (the parameter's expanded text) for the list called
   name (for messages); NULL with the reason in why */
MATCH_LIST *match_list_new(const char *name, const char *value, int flags, VSTR *why);
/* match_list_free - release; NULL is fine */
void match_list_free(MATCH_LIST *ml);
/* match_list_addr - does the address text (IPv4 or IPv6, optionally in []) match */
int match_list_addr(MATCH_LIST *ml, const char *addr);
/* match_list_domain - does the domain match (case does not matter) */
int match_list_domain(MATCH_LIST *ml, const char *domain);
/* match_list_count - patterns in the list (files expanded) */
size_t match_list_count(const MATCH_LIST *ml);

#endif
