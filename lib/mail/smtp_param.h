/*
 * smtp_param - the ESMTP parameters after a MAIL FROM or RCPT TO path, and
 * the xtext encodings they use. Pure functions on memory.
 *
 * SYNTAX (RFC 5321 4.1.2)
 *   params  = esmtp-param *(SP esmtp-param)      (runs of blanks tolerated)
 *   esmtp-param   = esmtp-keyword ["=" esmtp-value]
 *   esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
 *   esmtp-value   = 1*(%d33-60 / %d62-126), plus UTF-8 when SMTPUTF8 is in
 *                   effect (RFC 6531 3.3): no "=", SP or controls
 *   Keywords and the fixed values (7BIT, FULL, NEVER, ...) ignore case.
 *
 * PARAMETERS
 *   MAIL: SIZE=1*20DIGIT (RFC 1870)        BODY=7BIT|8BITMIME|BINARYMIME
 *         SMTPUTF8 (no value, RFC 6531)    RET=FULL|HDRS, ENVID=xtext (RFC 3461)
 *         AUTH=xtext (RFC 4954; "<>" or a mailbox)
 *   RCPT: NOTIFY=NEVER | 1#(SUCCESS/FAILURE/DELAY), each at most once
 *         ORCPT=addr-type ";" xtext (RFC 3461 4.2); for addr-type utf-8 the
 *         value is utf-8-addr-xtext, or utf-8-addr-unitext when the
 *         transaction is SMTPUTF8 (RFC 6533 3)
 *   A keyword is known only for its own command and only when the caller
 *   says the extension was offered (SMTP_PARAM_FLAG_*; BODY needs 8BITMIME
 *   or BINARYMIME, RET/ENVID/NOTIFY/ORCPT need DSN); otherwise it is
 *   reported as unknown (555 5.5.4, RFC 5321 4.1.1.11). A parameter given
 *   twice is an error. Decoded ENVID and rfc822 ORCPT values must be
 *   printable US-ASCII (RFC 3461 4.2, 4.4); ENVID is at most
 *   SMTP_PARAM_ENVID_MAX decoded octets, the ORCPT value at most
 *   SMTP_PARAM_ORCPT_MAX octets as sent. A SIZE too large for 64 bits is
 *   syntactically fine but answered 552 5.3.4: no limit could accept it.
 *
 * XTEXT (RFC 3461 4)
 *   xtext = *( %d33-42 / %d44-60 / %d62-126 / "+" 2HEXDIG ). The decoder
 *   rejects a "+" without two hex digits, a raw "=", SP, controls, octets
 *   above 126 and "+00" (a NUL would truncate the value). RFC 3461 asks for
 *   upper-case hex; lower-case is accepted when decoding (it is
 *   unambiguous) and never produced when encoding.
 *
 *   utf-8-addr-xtext / -unitext (RFC 6533 3) escape with "\x{HEX}": 2 to 6
 *   hex digits, exactly 2 for values below 0x100 and no leading zero
 *   otherwise, a Unicode scalar value other than NUL. Raw UTF-8 is allowed
 *   only in the unitext form. The decoded address may hold no controls
 *   (it must be a Mailbox).
 *
 * OWNERSHIP
 *   SMTP_PARAMS comes from smtp_param_alloc and goes to smtp_param_free.
 *   smtp_param_parse resets it first. Its strings are bounded VSTRs.
 */
#ifndef POSTERN_SMTP_PARAM_H
#define POSTERN_SMTP_PARAM_H

#include <stddef.h>
#include <stdint.h>

#include "mail/smtp_cmd.h"
#include "util/vstr.h"

#define SMTP_PARAM_SIZE_DIGITS 20 /* RFC 1870: size-value = 1*20DIGIT */
#define SMTP_PARAM_ENVID_MAX 100  /* RFC 3461 4.4 */
#define SMTP_PARAM_ORCPT_MAX 500  /* RFC 3461 4.2 */
#define SMTP_PARAM_AUTH_MAX 500   /* decoded AUTH= mailbox */
#define SMTP_PARAM_KEYWORD_MAX 64 /* keyword kept for the reply and the log */

/* what the command is and which extensions the server announced */
#define SMTP_PARAM_FLAG_RCPT (1 << 0)       /* RCPT TO parameters, else MAIL FROM */
#define SMTP_PARAM_FLAG_SIZE (1 << 1)       /* RFC 1870 */
#define SMTP_PARAM_FLAG_8BITMIME (1 << 2)   /* RFC 6152 */
#define SMTP_PARAM_FLAG_BINARYMIME (1 << 3) /* RFC 3030 */
#define SMTP_PARAM_FLAG_SMTPUTF8 (1 << 4)   /* RFC 6531 */
#define SMTP_PARAM_FLAG_DSN (1 << 5)        /* RFC 3461 */
#define SMTP_PARAM_FLAG_AUTH (1 << 6)       /* RFC 4954 */
#define SMTP_PARAM_FLAG_UTF8_TXN (1 << 7)   /* RCPT: MAIL FROM had SMTPUTF8 */
#define SMTP_PARAM_FLAG_ALL                                                                        \
    (SMTP_PARAM_FLAG_SIZE | SMTP_PARAM_FLAG_8BITMIME | SMTP_PARAM_FLAG_BINARYMIME |                \
     SMTP_PARAM_FLAG_SMTPUTF8 | SMTP_PARAM_FLAG_DSN | SMTP_PARAM_FLAG_AUTH)

/* SMTP_PARAMS.seen */
#define SMTP_PARAM_SEEN_SIZE (1 << 0)
#define SMTP_PARAM_SEEN_BODY (1 << 1)
#define SMTP_PARAM_SEEN_SMTPUTF8 (1 << 2)
#define SMTP_PARAM_SEEN_RET (1 << 3)
#define SMTP_PARAM_SEEN_ENVID (1 << 4)
#define SMTP_PARAM_SEEN_AUTH (1 << 5)
#define SMTP_PARAM_SEEN_NOTIFY (1 << 6)
#define SMTP_PARAM_SEEN_ORCPT (1 << 7)

/* SMTP_PARAMS.notify */
#define SMTP_PARAM_NOTIFY_NEVER (1 << 0)
#define SMTP_PARAM_NOTIFY_SUCCESS (1 << 1)
#define SMTP_PARAM_NOTIFY_FAILURE (1 << 2)
#define SMTP_PARAM_NOTIFY_DELAY (1 << 3)

enum smtp_param_body {
    SMTP_PARAM_BODY_NONE = 0,
    SMTP_PARAM_BODY_7BIT,
    SMTP_PARAM_BODY_8BITMIME,
    SMTP_PARAM_BODY_BINARYMIME,
};

enum smtp_param_ret {
    SMTP_PARAM_RET_NONE = 0,
    SMTP_PARAM_RET_FULL,
    SMTP_PARAM_RET_HDRS,
};

enum smtp_param_err {
    SMTP_PARAM_OK = 0,
    SMTP_PARAM_ERR_SYNTAX,     /* not keyword[=value] */
    SMTP_PARAM_ERR_UNKNOWN,    /* not offered for this command: 555 */
    SMTP_PARAM_ERR_DUPLICATE,  /* given twice */
    SMTP_PARAM_ERR_SIZE,       /* SIZE not 1*20DIGIT */
    SMTP_PARAM_ERR_SIZE_RANGE, /* SIZE beyond 64 bits: 552 */
    SMTP_PARAM_ERR_BODY,       /* unknown or not offered BODY value */
    SMTP_PARAM_ERR_SMTPUTF8,   /* SMTPUTF8 with a value */
    SMTP_PARAM_ERR_RET,
    SMTP_PARAM_ERR_ENVID,
    SMTP_PARAM_ERR_NOTIFY,
    SMTP_PARAM_ERR_ORCPT,
    SMTP_PARAM_ERR_AUTH,
    SMTP_PARAM_ERR_NEED_UTF8, /* non-ASCII value without SMTPUTF8 */
    SMTP_PARAM_ERR_BAD_UTF8,  /* malformed UTF-8 in a value */
};

typedef struct SMTP_PARAMS {
    int seen;                  /* SMTP_PARAM_SEEN_* */
    uint64_t size;             /* SIZE= */
    enum smtp_param_body body; /* BODY= */
    enum smtp_param_ret ret;   /* RET= */
    int notify;                /* NOTIFY=, SMTP_PARAM_NOTIFY_* */
    VSTR *envid;               /* ENVID=, decoded */
    VSTR *orcpt_type;          /* ORCPT= addr-type as sent ("rfc822", "utf-8") */
    VSTR *orcpt_addr;          /* ORCPT= address, decoded */
    VSTR *auth;                /* AUTH=, decoded ("<>" or a mailbox) */
    VSTR *keyword;             /* the keyword an error is about */
} SMTP_PARAMS;

SMTP_PARAMS *smtp_param_alloc(void);
void smtp_param_free(SMTP_PARAMS *params);
/* smtp_param_reset - forget everything parsed */
void smtp_param_reset(SMTP_PARAMS *params);
/* smtp_param_parse - all parameters in str (leading blanks skipped) */
enum smtp_param_err smtp_param_parse(SMTP_PARAMS *params, const char *str, size_t len, int flags);
/* smtp_param_strerror - short reason for the log */
const char *smtp_param_strerror(enum smtp_param_err err);
/* smtp_param_reply - suggested reply; for ERR_UNKNOWN append ": " keyword */
void smtp_param_reply(enum smtp_param_err err, SMTP_REPLY *reply);

/* smtp_param_xtext_decode - append decoded xtext; -1 if malformed */
int smtp_param_xtext_decode(VSTR *out, const char *in, size_t len);
/* smtp_param_xtext_encode - append xtext for any octets */
int smtp_param_xtext_encode(VSTR *out, const char *in, size_t len);
/* smtp_param_utf8_addr_decode - append RFC 6533 utf-8-addr-xtext/-unitext; -1 bad */
int smtp_param_utf8_addr_decode(VSTR *out, const char *in, size_t len, int unitext);
/* smtp_param_utf8_addr_encode - append RFC 6533 form of a UTF-8 address; -1 bad UTF-8 */
int smtp_param_utf8_addr_encode(VSTR *out, const char *in, size_t len, int unitext);

#endif
