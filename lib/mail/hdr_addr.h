/*
 * hdr_addr - the addresses in an address-list header value (To:, Cc:,
 * Bcc: and their Resent- forms; RFC 5322 section 3.4), for sendmail -t.
 *
 * Accepted: mailboxes ("addr-spec", "Display Name <addr-spec>"), groups
 * ("name: a@x, b@y;" and the empty "undisclosed-recipients:;"), comments
 * in parentheses (nested, with quoted pairs), quoted strings, domain
 * literals, folding white space, and the obsolete forms of RFC 5322 4.4
 * that still occur: a source route inside angle brackets
 * ("<@relay1,@relay2:user@example.com>", the route is dropped), empty list
 * elements, and dots and white space between the words of a local part.
 *
 * Results are in Postern's internal form: the local part unquoted
 * ("a b@example.com" for "\"a b\"@example.com"), the domain as written.
 * An element without "@domain" is returned as its local part alone; the
 * caller decides what to append. Elements that are not an address (a
 * phrase without angle brackets, "<>" , an unterminated bracket) are
 * skipped and counted. Results never contain control characters.
 */
#ifndef POSTERN_HDR_ADDR_H
#define POSTERN_HDR_ADDR_H

#include <stddef.h>

#include "util/argv.h"

#define HDR_ADDR_MAX 2048 /* longest address returned; longer ones are skipped */

/* hdr_addr_list - append the addresses in value (len bytes; folds as LF) to
   out, at most max of them (0 = no limit); returns the number appended. The
   number of elements skipped as invalid goes to *skipped when not NULL. */
size_t hdr_addr_list(const char *value, size_t len, ARGV *out, size_t max, size_t *skipped);

#endif
