/*
 * smtp_addr - parse and quote the address path of MAIL FROM and RCPT TO
 * (RFC 5321 4.1.2, 4.1.3, 4.5.3.1; RFC 6531 for SMTPUTF8).
 *
 * GRAMMAR ACCEPTED
 *   Path      = "<" [ A-d-l ":" ] Mailbox ">"     source route accepted, dropped
 *   A-d-l     = "@" Domain *( "," "@" Domain )
 *   Mailbox   = Local-part "@" ( Domain / address-literal )
 *   Local-part = Dot-string / Quoted-string        (atoms per RFC 5322 3.2.3)
 *   Quoted-string: printable ASCII and SP; quoted-pair "\" %d32-126
 *   Domain    = labels of letters, digits and inner hyphens, at most 63
 *               octets each; the last label must not be all digits (a
 *               dotted quad belongs in brackets, and no top-level domain is
 *               numeric)
 *   address-literal = "[" IPv4 "]" / "[IPv6:" IPv6 "]" (checked with
 *               inet_pton) / "[" tag ":" 1*dcontent "]" (General-address-
 *               literal; the tag is an Ldh-str)
 *   "<>"      the null reverse-path: MAIL only
 *   "<postmaster>" without a domain, any case: RCPT only (RFC 5321 4.1.1.3)
 *
 *   With SMTP_ADDR_FLAG_UTF8 (the client gave SMTPUTF8, RFC 6531 3.3) the
 *   local part and the domain labels may also hold UTF-8; it is checked
 *   strictly (no overlong forms, no surrogates, nothing past U+10FFFF).
 *   U-labels are not checked against IDNA2008 tables. Without the flag any
 *   octet above 127 is refused (553 5.6.7).
 *
 *   An empty quoted local part (""@example.com) is refused although the
 *   grammar permits it: its internal form "@example.com" is the catch-all key
 *   of virtual and canonical tables.
 *
 * LIMITS (RFC 5321 4.5.3.1, on the text as sent)
 *   local part SMTP_ADDR_LOCAL_MAX (64), domain or literal SMTP_ADDR_DOMAIN_MAX
 *   (255), the whole path with its angle brackets and any source route
 *   SMTP_ADDR_PATH_MAX (256).
 *
 * FLAGS
 *   SMTP_ADDR_FLAG_RCPT     a forward-path: "<>" refused, "<postmaster>" taken;
 *                           without it the path is a reverse-path (MAIL FROM)
 *   SMTP_ADDR_FLAG_UTF8     SMTPUTF8 is in effect for this transaction
 *   SMTP_ADDR_FLAG_LENIENT  a path without angle brackets is accepted; it ends
 *                           at the first blank outside quotes (Postfix's
 *                           strict_rfc821_envelopes = no)
 *   SMTP_ADDR_FLAG_LOCAL_OK a local part without "@domain" is accepted (domain
 *                           left empty) so that a reject_non_fqdn_* style
 *                           policy can decide instead of the grammar
 *
 * RESULT
 *   smtp_addr_parse fills an SMTP_ADDR (allocated by smtp_addr_alloc, owned
 *   by the caller, released by smtp_addr_free; each parse overwrites it):
 *   addr is the internal form (local part unquoted, as Postfix keeps it:
 *   "a b@example.com" for <"a b"@example.com>; empty for <>), local and
 *   domain the two halves. *used is set to the number of octets that made up
 *   the path; what follows is empty or starts with a blank, then the ESMTP
 *   parameters. smtp_addr_external turns an internal address back into the
 *   form to send, quoting the local part when it is not a Dot-string.
 *
 * ERRORS
 *   Each enum smtp_addr_err has a short reason for the log
 *   (smtp_addr_strerror) and a suggested reply (smtp_addr_reply): 501 with
 *   5.1.7 for the sender or 5.1.3 for a recipient, or 553 5.6.7 for UTF-8
 *   without SMTPUTF8.
 */
#ifndef POSTERN_SMTP_ADDR_H
#define POSTERN_SMTP_ADDR_H

#include <stddef.h>

#include "mail/smtp_cmd.h"
#include "util/vstr.h"

#define SMTP_ADDR_LOCAL_MAX 64   /* RFC 5321 4.5.3.1.1 */
#define SMTP_ADDR_DOMAIN_MAX 255 /* RFC 5321 4.5.3.1.2 */
#define SMTP_ADDR_PATH_MAX 256   /* RFC 5321 4.5.3.1.3, with "<" and ">" */
#define SMTP_ADDR_LABEL_MAX 63   /* RFC 1035 2.3.4, one ASCII label */

/* parse flags */
#define SMTP_ADDR_FLAG_RCPT (1 << 0)
#define SMTP_ADDR_FLAG_UTF8 (1 << 1)
#define SMTP_ADDR_FLAG_LENIENT (1 << 2)
#define SMTP_ADDR_FLAG_LOCAL_OK (1 << 3)

/* SMTP_ADDR.flags: what the parse found */
#define SMTP_ADDR_IS_NULL (1 << 0)       /* <> */
#define SMTP_ADDR_IS_POSTMASTER (1 << 1) /* <postmaster> with no domain */
#define SMTP_ADDR_HAD_ROUTE (1 << 2)     /* a source route was dropped */
#define SMTP_ADDR_WAS_QUOTED (1 << 3)    /* the local part was a Quoted-string */
#define SMTP_ADDR_HAS_UTF8 (1 << 4)      /* octets above 127 */
#define SMTP_ADDR_NO_BRACKETS (1 << 5)   /* accepted without <> (lenient) */
#define SMTP_ADDR_LIT_IPV4 (1 << 6)      /* domain is [1.2.3.4] */
#define SMTP_ADDR_LIT_IPV6 (1 << 7)      /* domain is [IPv6:...] */
#define SMTP_ADDR_LIT_GENERAL (1 << 8)   /* domain is [tag:content] */
#define SMTP_ADDR_LITERAL (SMTP_ADDR_LIT_IPV4 | SMTP_ADDR_LIT_IPV6 | SMTP_ADDR_LIT_GENERAL)

/* smtp_addr_routing bits: sender-specified routing in the local part */
#define SMTP_ADDR_ROUTE_PERCENT (1 << 0) /* user%remote */
#define SMTP_ADDR_ROUTE_BANG (1 << 1)    /* remote!user (bang path) */
#define SMTP_ADDR_ROUTE_AT (1 << 2)      /* "user@remote" (quoted) */

enum smtp_addr_err {
    SMTP_ADDR_OK = 0,
    SMTP_ADDR_ERR_EMPTY,        /* no address */
    SMTP_ADDR_ERR_BRACKET,      /* missing "<" or ">" */
    SMTP_ADDR_ERR_TRAILING,     /* text right after ">" */
    SMTP_ADDR_ERR_NULL_RCPT,    /* "<>" as a recipient */
    SMTP_ADDR_ERR_ROUTE,        /* malformed source route */
    SMTP_ADDR_ERR_LOCAL,        /* malformed Dot-string */
    SMTP_ADDR_ERR_QUOTE,        /* malformed Quoted-string */
    SMTP_ADDR_ERR_EMPTY_LOCAL,  /* "" local part */
    SMTP_ADDR_ERR_NO_DOMAIN,    /* no "@domain" */
    SMTP_ADDR_ERR_DOMAIN,       /* malformed domain */
    SMTP_ADDR_ERR_NUMERIC,      /* all-digit top-level label */
    SMTP_ADDR_ERR_LITERAL,      /* malformed address literal */
    SMTP_ADDR_ERR_LOCAL_LONG,   /* local part over SMTP_ADDR_LOCAL_MAX */
    SMTP_ADDR_ERR_DOMAIN_LONG,  /* domain over SMTP_ADDR_DOMAIN_MAX */
    SMTP_ADDR_ERR_LABEL_LONG,   /* label over SMTP_ADDR_LABEL_MAX */
    SMTP_ADDR_ERR_PATH_LONG,    /* path over SMTP_ADDR_PATH_MAX */
    SMTP_ADDR_ERR_BAD_UTF8,     /* malformed UTF-8 */
    SMTP_ADDR_ERR_NEED_SMTPUTF8 /* UTF-8 without SMTPUTF8 */
};

typedef struct SMTP_ADDR {
    VSTR *addr;   /* internal form: local@domain, local part unquoted */
    VSTR *local;  /* local part, unquoted */
    VSTR *domain; /* domain or [literal] as sent; empty when none */
    int flags;    /* SMTP_ADDR_IS_* and friends */
} SMTP_ADDR;

/* smtp_addr_alloc - new empty result; release with smtp_addr_free */
SMTP_ADDR *smtp_addr_alloc(void);
void smtp_addr_free(SMTP_ADDR *addr);

/* smtp_addr_parse - parse the path at the start of str; *used = its length */
enum smtp_addr_err smtp_addr_parse(SMTP_ADDR *addr, const char *str, size_t len, int flags,
                                   size_t *used);
/* smtp_addr_strerror - short reason for the log */
const char *smtp_addr_strerror(enum smtp_addr_err err);
/* smtp_addr_reply - suggested reply; flags as given to smtp_addr_parse */
void smtp_addr_reply(enum smtp_addr_err err, int flags, SMTP_REPLY *reply);

/* smtp_addr_local_needs_quote - local part is not a valid Dot-string */
int smtp_addr_local_needs_quote(const char *local, size_t len);
/* smtp_addr_quote_local - append the local part, quoted when needed; -1 on controls */
int smtp_addr_quote_local(VSTR *out, const char *local, size_t len);
/* smtp_addr_external - replace out with the form to send (no <>); -1 on controls */
int smtp_addr_external(VSTR *out, const char *internal, size_t len);

/* smtp_addr_routing - SMTP_ADDR_ROUTE_* bits found in an unquoted local part */
int smtp_addr_routing(const char *local, size_t len);
/* smtp_addr_lower_domain - fold the ASCII letters of the domain (domain and addr) */
void smtp_addr_lower_domain(SMTP_ADDR *addr);

/* smtp_addr_utf8_seq - length (1-4) of the valid UTF-8 sequence at p, 0 if invalid */
size_t smtp_addr_utf8_seq(const unsigned char *p, size_t len);
/* smtp_addr_utf8_valid - whole buffer is valid UTF-8 */
int smtp_addr_utf8_valid(const char *str, size_t len);

#endif
