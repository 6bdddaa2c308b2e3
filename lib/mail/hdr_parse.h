/*
 * hdr_parse - a streaming parser for the header section of a message
 * (RFC 5322 section 2.2): header fields, their folded continuation lines,
 * and where the header section ends. Memory stays bounded however the
 * content arrives: one header field at most field_max bytes, plus nothing
 * for the body, which passes straight through.
 *
 * INPUT
 *   Message text with LF line ends, in pieces split anywhere (the cleanup
 *   protocol's "data" chunks). A header field is "name:" then its value;
 *   the name is 1 or more printable ASCII characters other than ':' (RFC
 *   5322 3.6.8 ftext), optionally followed by blanks before the colon (the
 *   obsolete syntax of RFC 5322 4.5, still sent by old software and
 *   accepted, unchanged, as Postfix accepts it). A line that starts with a
 *   space or a tab continues the field before it.
 *
 * WHERE THE HEADER SECTION ENDS
 *   At the first empty line (HDR_END_EMPTY; the empty line itself is the
 *   first body line), at the first line that is neither a field nor a
 *   continuation (HDR_END_GARBAGE; that line is the first body line: the
 *   caller decides whether to put an empty line before it), or at the end
 *   of the content (HDR_END_EOF). A message whose first line starts with a
 *   blank has no header section at all.
 *
 * LIMITS
 *   field_max bounds one header field with its continuation lines (the
 *   header_size_limit of Postfix): text past it is dropped and the field is
 *   reported with HDR_FIELD_TRUNCATED. A name that does not reach its
 *   colon within field_max bytes is not a name, and the line goes to the
 *   body. count_max bounds the number of fields: one more is an error
 *   (HDR_PARSE_ERR_COUNT). A NUL byte inside a header field is an error
 *   (HDR_PARSE_ERR_NUL): RFC 5322 does not allow it, and software that
 *   keeps header values as C strings would see a different header.
 *
 * OUTPUT (callbacks, in content order)
 *   field(ctx, text, len, name_len, flags)  one whole field: its lines
 *       joined by "\n", without the final line end; name_len is the length
 *       of the name (without blanks before the colon)
 *   end(ctx, how)                           once: the header section is over
 *   body(ctx, data, len, eol)               body text: pieces of a line;
 *       eol says a line end follows the piece (the LF is not in data)
 *   A callback returns 0 to go on, or a positive value that stops the
 *   parser and is returned by hdr_parse_feed/hdr_parse_end from then on.
 *
 * Ownership: hdr_parse_create allocates, hdr_parse_free releases. The text
 * given to callbacks is valid during the call only.
 */
#ifndef POSTERN_HDR_PARSE_H
#define POSTERN_HDR_PARSE_H

#include <stddef.h>

#include "util/vstr.h"

/* field flags */
#define HDR_FIELD_TRUNCATED (1 << 0) /* text past field_max was dropped */
#define HDR_FIELD_NO_EOL (1 << 1)    /* the content ended inside its last line */

/* how the header section ended */
#define HDR_END_EMPTY 1   /* an empty line (passed to body next) */
#define HDR_END_GARBAGE 2 /* a line that is not a header field (passed to body next) */
#define HDR_END_EOF 3     /* the end of the content */

/* errors (negative, so that they differ from callback stop values) */
#define HDR_PARSE_ERR_NUL (-1)   /* NUL byte in a header field */
#define HDR_PARSE_ERR_COUNT (-2) /* more than count_max header fields */

typedef struct HDR_PARSE_CB {
    int (*field)(void *ctx, const char *text, size_t len, size_t name_len, int flags);
    int (*end)(void *ctx, int how);
    int (*body)(void *ctx, const char *data, size_t len, int eol);
} HDR_PARSE_CB;

typedef struct HDR_PARSE HDR_PARSE;

/* hdr_parse_create - a parser; field_max >= 1, count_max >= 1 */
HDR_PARSE *hdr_parse_create(size_t field_max, size_t count_max, const HDR_PARSE_CB *cb, void *ctx);
/* hdr_parse_feed - more content; 0, a callback's stop value, or HDR_PARSE_ERR_* */
int hdr_parse_feed(HDR_PARSE *p, const char *data, size_t len);
/* hdr_parse_end - the content is complete; same results */
int hdr_parse_end(HDR_PARSE *p);
/* hdr_parse_in_header - still inside the header section; 1 or 0 */
int hdr_parse_in_header(const HDR_PARSE *p);
/* hdr_parse_count - header fields seen so far */
size_t hdr_parse_count(const HDR_PARSE *p);
void hdr_parse_free(HDR_PARSE *p);

/* hdr_parse_strerror - text for an HDR_PARSE_ERR_* code */
const char *hdr_parse_strerror(int err);

/*
 * Helpers for the text of one field (as given to the field callback).
 */

/* hdr_name_len - length of the field name if line (len bytes) starts a
   header field ("name" [blanks] ":"), else 0 */
size_t hdr_name_len(const char *line, size_t len);
/* hdr_name_is - the field's name (name_len bytes at text) equals name,
   ignoring ASCII case; 1 or 0 */
int hdr_name_is(const char *text, size_t name_len, const char *name);
/* hdr_value - the field's value: after the colon and the blanks that follow
   it; *vlen is its length (to the end of the field, folds included) */
const char *hdr_value(const char *text, size_t len, size_t *vlen);
/* hdr_unfold - append value to out unfolded (each line end removed, the
   blanks after it kept: RFC 5322 2.2.3) with white space at both ends
   trimmed; at most max bytes are appended (0 = no limit) */
void hdr_unfold(const char *value, size_t len, size_t max, VSTR *out);

#endif
