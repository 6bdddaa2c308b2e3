/*
 * smtp_resp - the SMTP client's side of a reply (RFC 5321 4.2): assembling
 * one possibly multi-line reply from the lines a server sends, with bounds,
 * its enhanced status code (RFC 3463, RFC 2034), and the EHLO keywords it
 * announces.
 *
 * A reply is fed line by line (without the line end) to smtp_resp_line().
 * Every line must start with the same three digits followed by '-'
 * (more lines follow), ' ' or nothing (the last line). A line that does
 * not is a protocol error: the caller gives up on the connection, as a
 * peer that sends garbage cannot be trusted to be in step. A reply with
 * more than SMTP_RESP_LINES_MAX lines or more than SMTP_RESP_TEXT_MAX
 * octets of text is an error too, so an endless multi-line reply costs
 * bounded memory; the caller's timeout bounds the time.
 *
 * Text kept from the peer is made printable: control characters and bytes
 * outside ASCII become '?', so a reply can go into logs, queue-file
 * reasons and bounce messages as it is.
 *
 * Ownership: smtp_resp_alloc allocates, smtp_resp_free releases. The
 * strings inside belong to the reply and change with the next reply fed.
 */
#ifndef POSTERN_SMTP_RESP_H
#define POSTERN_SMTP_RESP_H

#include <stddef.h>

#include "util/argv.h"
#include "util/vstr.h"

#define SMTP_RESP_LINE_MAX 2048  /* octets of one reply line kept (longer: cut) */
#define SMTP_RESP_LINES_MAX 100  /* lines of one reply */
#define SMTP_RESP_TEXT_MAX 16384 /* octets of one reply's text */
#define SMTP_DSN_MAX 16          /* "5.1.10" and a NUL, with room */

/* smtp_resp_line results */
#define SMTP_RESP_MORE 0  /* a continuation line: feed the next */
#define SMTP_RESP_DONE 1  /* the last line: the reply is complete */
#define SMTP_RESP_ERROR 2 /* malformed or over a limit: see why */

typedef struct SMTP_RESP {
    int code;               /* 200..599 once complete */
    char dsn[SMTP_DSN_MAX]; /* enhanced status, or "X.0.0" from the code */
    int has_dsn;            /* the server sent the enhanced status itself */
    VSTR *text;             /* every line as sent ("250-a 250 b"), joined by spaces */
    ARGV *lines;            /* each line's text after the code and separator */
    VSTR *why;              /* reason for SMTP_RESP_ERROR */
    size_t octets;          /* text octets so far */
} SMTP_RESP;

/* smtp_resp_alloc - an empty reply */
SMTP_RESP *smtp_resp_alloc(void);
/* smtp_resp_free - release; NULL is fine */
void smtp_resp_free(SMTP_RESP *r);
/* smtp_resp_reset - forget the previous reply before the next is fed */
void smtp_resp_reset(SMTP_RESP *r);
/* smtp_resp_line - add one line (without CR LF; may hold any byte) */
int smtp_resp_line(SMTP_RESP *r, const char *line, size_t len);
/* smtp_resp_set - a complete reply made up by the client itself (tests,
   and errors reported in the same shape); text without the code */
void smtp_resp_set(SMTP_RESP *r, int code, const char *dsn, const char *text);

/* smtp_dsn_parse - an RFC 3463 status code at the start of text
   ("class.subject.detail": class 2, 4 or 5, subject 0..999, detail
   0..999) followed by a space or the end; its length, or 0 */
size_t smtp_dsn_parse(const char *text, char *dsn, size_t size);

/* EHLO keywords (RFC 5321 4.1.1.1 and the extensions' RFCs). */
#define SMTP_FEATURE_PIPELINING (1 << 0) /* RFC 2920 */
#define SMTP_FEATURE_SIZE (1 << 1)       /* RFC 1870 */
#define SMTP_FEATURE_8BITMIME (1 << 2)   /* RFC 6152 */
#define SMTP_FEATURE_SMTPUTF8 (1 << 3)   /* RFC 6531 */
#define SMTP_FEATURE_DSN (1 << 4)        /* RFC 3461 */
#define SMTP_FEATURE_STARTTLS (1 << 5)   /* RFC 3207 */
#define SMTP_FEATURE_AUTH (1 << 6)       /* RFC 4954 */
#define SMTP_FEATURE_ENHANCED (1 << 7)   /* RFC 2034 ENHANCEDSTATUSCODES */
#define SMTP_FEATURE_CHUNKING (1 << 8)   /* RFC 3030 */

#define SMTP_AUTH_MECHS_MAX 512 /* octets of the AUTH mechanism list kept */

typedef struct SMTP_EHLO {
    unsigned features;              /* SMTP_FEATURE_* */
    unsigned long long size;        /* SIZE limit; 0 = none announced */
    char auth[SMTP_AUTH_MECHS_MAX]; /* mechanisms, upper case, space separated */
} SMTP_EHLO;

/* smtp_resp_ehlo - the keywords of a complete 250 EHLO reply; the first
   line (the server's name) is skipped. Keywords in discard (a list of
   names, may be NULL) are ignored, as Postfix's smtp_discard_ehlo_keywords. */
void smtp_resp_ehlo(const SMTP_RESP *r, const ARGV *discard, SMTP_EHLO *ehlo);

#endif
