/*
 * smtp_cmd - SMTP command line syntax and reply formatting (RFC 5321),
 * shared by the SMTP server and the SMTP client. Pure functions on memory.
 *
 * COMMAND LINES
 *   smtp_cmd_line_check looks at one line as the reader delivered it (with
 *   its terminator) and reports what must never pass silently: NUL bytes, a
 *   CR not followed by LF, a line ended by LF alone, a line longer than
 *   SMTP_CMD_LINE_MAX (RFC 5321 4.5.3.1.4: 512 octets including CRLF), and a
 *   line without any terminator. Bare CR and bare LF in commands are how
 *   "SMTP smuggling" payloads hide, so the server must reject them rather
 *   than guess (Postfix: smtpd_forbid_bare_newline).
 *
 *   smtp_cmd_split splits a line (terminator removed) into verb and
 *   argument. RFC 5321 wants exactly one SP between them; like Postfix we
 *   also accept leading blanks, several blanks and trailing blanks, and say
 *   so in SMTP_CMD.sloppy so that the server can log it. The verb is matched
 *   without regard to case. Nothing is copied: SMTP_CMD points into the line.
 *
 *   smtp_cmd_path_arg checks the "FROM:" / "TO:" prefix of a MAIL or RCPT
 *   argument (any case) and skips blanks after the colon, which RFC 5321
 *   does not allow but Postfix and most servers tolerate ("MAIL FROM: <a@b>").
 *
 *   smtp_cmd_bdat_parse parses "chunk-size [SP LAST]" strictly (RFC 3030 2:
 *   chunk-size = 1*DIGIT). A malformed size leaves the server unable to know
 *   how many octets follow; it must answer and close the connection rather
 *   than read the chunk as commands.
 *
 * REPLIES
 *   smtp_cmd_reply_format writes a complete reply: "250-2.1.0 text" CRLF
 *   lines with the last one "250 2.1.0 text" CRLF. A '\n' (or CRLF) in the
 *   text starts a new reply line; lines longer than the width are wrapped at
 *   a space, or cut when there is none. The enhanced status code (RFC 2034,
 *   RFC 3463) repeats on every line. Control characters in the text (a lone
 *   CR, TAB, DEL, ...) become '?' or ' ', so the text can never end a reply
 *   early or inject a line of its own.
 *
 * SMTP_REPLY
 *   The code / enhanced status / text triple that smtp_addr, smtp_param and
 *   smtp_data suggest for each failure. The strings are static.
 */
#ifndef POSTERN_SMTP_CMD_H
#define POSTERN_SMTP_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "util/vstr.h"

#define SMTP_CMD_LINE_MAX 512       /* RFC 5321 4.5.3.1.4: command line, with CRLF */
#define SMTP_CMD_REPLY_LINE_MAX 512 /* RFC 5321 4.5.3.1.5: reply line, with CRLF */
#define SMTP_CMD_VERB_MAX 16        /* longest verb we bother to classify */

/* Reply suggestion: e.g. {501, "5.1.7", "Bad sender address syntax"}. */
typedef struct SMTP_REPLY {
    int code;         /* three-digit reply code */
    const char *dsn;  /* enhanced status code (RFC 3463), NULL for none */
    const char *text; /* reply text without code */
} SMTP_REPLY;

enum smtp_cmd_verb {
    SMTP_CMD_UNKNOWN = 0,
    SMTP_CMD_HELO,
    SMTP_CMD_EHLO,
    SMTP_CMD_MAIL,
    SMTP_CMD_RCPT,
    SMTP_CMD_DATA,
    SMTP_CMD_BDAT,
    SMTP_CMD_RSET,
    SMTP_CMD_NOOP,
    SMTP_CMD_QUIT,
    SMTP_CMD_VRFY,
    SMTP_CMD_EXPN,
    SMTP_CMD_HELP,
    SMTP_CMD_STARTTLS,
    SMTP_CMD_AUTH,
    SMTP_CMD_ETRN,
    SMTP_CMD_XCLIENT,
    SMTP_CMD_XFORWARD,
};

/* smtp_cmd_line_check result bits */
#define SMTP_CMD_LINE_NUL (1 << 0)      /* a NUL byte */
#define SMTP_CMD_LINE_BARE_CR (1 << 1)  /* CR not followed by LF */
#define SMTP_CMD_LINE_BARE_LF (1 << 2)  /* LF not preceded by CR */
#define SMTP_CMD_LINE_TOO_LONG (1 << 3) /* more than SMTP_CMD_LINE_MAX octets */
#define SMTP_CMD_LINE_NO_EOL (1 << 4)   /* no LF at the end */

typedef struct SMTP_CMD {
    enum smtp_cmd_verb verb;
    const char *name; /* the verb as sent (not terminated) */
    size_t name_len;
    const char *arg; /* argument without surrounding blanks (not terminated) */
    size_t arg_len;  /* 0 when there is none */
    int sloppy;      /* blanks other than one SP between verb and argument */
} SMTP_CMD;

/* smtp_cmd_bdat_parse results */
#define SMTP_CMD_BDAT_OK 0
#define SMTP_CMD_BDAT_SYNTAX (-1) /* not "1*DIGIT [SP LAST]" */
#define SMTP_CMD_BDAT_RANGE (-2)  /* chunk size does not fit 64 bits */

/* smtp_cmd_line_check - SMTP_CMD_LINE_* bits for a line with its terminator */
int smtp_cmd_line_check(const char *line, size_t len);
/* smtp_cmd_line_strip - length of the line without its CRLF or LF */
size_t smtp_cmd_line_strip(const char *line, size_t len);
/* smtp_cmd_split - verb and argument of a line without terminator; -1 if blank */
int smtp_cmd_split(const char *line, size_t len, SMTP_CMD *cmd);
/* smtp_cmd_verb_lookup - classify a verb, any case */
enum smtp_cmd_verb smtp_cmd_verb_lookup(const char *name, size_t len);
/* smtp_cmd_verb_name - "MAIL" etc.; "UNKNOWN" for SMTP_CMD_UNKNOWN */
const char *smtp_cmd_verb_name(enum smtp_cmd_verb verb);
/* smtp_cmd_path_arg - after prefix ("FROM:", "TO:") and blanks; 0, or -1 no prefix */
int smtp_cmd_path_arg(const char *arg, size_t len, const char *prefix, const char **path,
                      size_t *path_len);
/* smtp_cmd_bdat_parse - "chunk-size [SP LAST]"; SMTP_CMD_BDAT_* */
int smtp_cmd_bdat_parse(const char *arg, size_t len, uint64_t *size, int *last);

/* smtp_cmd_reply_format - replace out with a full reply; width 0 = maximum; -1 bad code */
int smtp_cmd_reply_format(VSTR *out, int code, const char *dsn, const char *text, size_t width);
/* smtp_cmd_reply - smtp_cmd_reply_format for an SMTP_REPLY at maximum width */
int smtp_cmd_reply(VSTR *out, const SMTP_REPLY *reply);
/* smtp_cmd_dsn_valid - enhanced status "class.subject.detail" that fits the code */
int smtp_cmd_dsn_valid(int code, const char *dsn);

#endif
