/*
 * smtp_data - the message content state machine for DATA (RFC 5321 4.1.1.4,
 * 4.5.2) and BDAT (RFC 3030). This is where the SMTP smuggling defence
 * lives: the content ends only at CRLF "." CRLF, whatever mixture of bare
 * CR and bare LF a client sends.
 *
 * USE
 *   Create one SMTP_DATA per session, start it for each message with
 *   smtp_data_start(), then feed the octets as they arrive, in chunks of any
 *   size. Each content line reaches the callback without its line ending
 *   and, for DATA, with the leading dot of a dot-stuffed line removed.
 *   smtp_data_feed() says how many octets it used: in DATA mode it stops
 *   right after the end-of-data line, and what follows belongs to the next
 *   command (PIPELINING); in BDAT mode it never takes more than the chunk.
 *
 *   A line longer than line_max content octets reaches the callback in
 *   pieces: every piece but the last has SMTP_DATA_PIECE_CONT set, so the
 *   queue writer can store the line exactly (Postfix's REC_TYPE_CONT).
 *   In BDAT mode the last piece of a message that does not end in a line
 *   ending has SMTP_DATA_PIECE_NOEOL.
 *
 * BARE CR AND BARE LF (RFC 5321 2.3.8: CR and LF only as CRLF)
 *   SMTP_DATA_BARE_NORMALIZE  a bare LF ends the line as if it were CRLF; a
 *       bare CR becomes a space (as Postfix's cleanup_replace_stray_cr_lf
 *       does) so that no stray CR is queued and later relayed to a server
 *       that might take it as a line ending
 *   SMTP_DATA_BARE_REJECT     the message is refused at its end ("550 5.5.2
 *       Error: bare <LF> received" / "... <CR> ..."); nothing more reaches
 *       the callback once seen, and the caller queues nothing
 *   SMTP_DATA_BARE_KEEP       bare CR and bare LF are content octets; only
 *       CRLF ends a line. For BDAT with BODY=BINARYMIME, where they are
 *       legitimate data. Never for DATA that may be relayed.
 *   With every policy, a line that began after a bare LF or holds a bare CR
 *   can never end the data and can never start a second message: LF.LF,
 *   LF.CRLF, CRLF.LF, CR.CR, CR.CRLF, CRLF.CR and the like are content.
 *   After a bare LF in NORMALIZE or REJECT mode a dot at the start of the
 *   next line is still unstuffed (the line started), it just cannot end.
 *
 * NUL OCTETS
 *   Kept as content by default (the queue file is length-prefixed and
 *   Postfix passes them too). SMTP_DATA_FLAG_REJECT_NUL refuses the message
 *   instead ("550 5.6.0").
 *
 * LIMITS
 *   line_max   content octets per line before splitting (0: SMTP_DATA_LINE_MAX,
 *              the 998 of RFC 5321 4.5.3.1.6; smtpd passes line_length_limit,
 *              2048 in Postfix). SMTP_DATA_FLAG_REJECT_LONG refuses the
 *              message instead of splitting ("550 5.6.0").
 *   size_limit message octets as RFC 1870 counts them: content octets plus
 *              CRLF per line, dot-stuffing and the final "." not counted
 *              (0: none). When passed, nothing more reaches the callback but
 *              the input is still consumed to the end of the data, so the
 *              session stays in step; the reply is "552 5.3.4".
 *
 * STATES (DATA mode; BDAT mode uses TEXT and CR only, never unstuffs)
 *   state     input         action                              next
 *   BOL       "."           -                                   DOT
 *   BOL       other         as in TEXT                          -
 *   BOL_BARE  "."           drop it (unstuff)                   TEXT
 *   BOL_BARE  other         as in TEXT                          -
 *   DOT       CR            -                                   DOT_CR
 *   DOT       other         drop the dot; as in TEXT            -
 *   DOT_CR    LF            end of data                         END
 *   DOT_CR    other         dot dropped; bare CR; as in TEXT    -
 *   TEXT      CR            -                                   CR
 *   TEXT      LF            bare LF (policy)                    BOL_BARE / TEXT (KEEP)
 *   TEXT      other         content octet                       TEXT
 *   CR        LF            line ends                           BOL
 *   CR        other         bare CR (policy); as in TEXT        -
 *   BOL is where the data starts and where a CRLF leaves it: only there
 *   can "." CRLF end the data.
 */
#ifndef POSTERN_SMTP_DATA_H
#define POSTERN_SMTP_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "mail/smtp_cmd.h"

#define SMTP_DATA_LINE_MAX 998                /* RFC 5321 4.5.3.1.6, without CRLF */
#define SMTP_DATA_LINE_HARD_MAX (1024 * 1024) /* largest line_max accepted */

enum smtp_data_bare {
    SMTP_DATA_BARE_NORMALIZE = 0,
    SMTP_DATA_BARE_REJECT,
    SMTP_DATA_BARE_KEEP,
};

/* SMTP_DATA_OPTS.flags */
#define SMTP_DATA_FLAG_REJECT_NUL (1 << 0)  /* refuse NUL octets */
#define SMTP_DATA_FLAG_REJECT_LONG (1 << 1) /* refuse lines over line_max */

typedef struct SMTP_DATA_OPTS {
    enum smtp_data_bare bare; /* bare CR / bare LF policy */
    size_t line_max;          /* content octets per line piece; 0 = SMTP_DATA_LINE_MAX */
    uint64_t size_limit;      /* message octets; 0 = no limit */
    int flags;                /* SMTP_DATA_FLAG_* */
} SMTP_DATA_OPTS;

/* callback flags */
#define SMTP_DATA_PIECE_CONT (1 << 0)  /* the line continues in the next piece */
#define SMTP_DATA_PIECE_NOEOL (1 << 1) /* BDAT: last piece, no line ending sent */

typedef void (*SMTP_DATA_LINE_FN)(void *context, const char *buf, size_t len, int flags);

/* smtp_data_feed results */
#define SMTP_DATA_MORE 0      /* want more input */
#define SMTP_DATA_END 1       /* end of the message (DATA dot, or last BDAT chunk) */
#define SMTP_DATA_CHUNK_END 2 /* BDAT: this chunk is complete, not the last */

/* modes */
#define SMTP_DATA_MODE_DATA 0
#define SMTP_DATA_MODE_BDAT 1

/* errors: any of these means the message must not be queued */
#define SMTP_DATA_ERR_BARE_LF (1 << 0)
#define SMTP_DATA_ERR_BARE_CR (1 << 1)
#define SMTP_DATA_ERR_NUL (1 << 2)
#define SMTP_DATA_ERR_LONG (1 << 3)
#define SMTP_DATA_ERR_SIZE (1 << 4)

/* what was seen, whatever the policy (for logging and for 8BITMIME checks) */
#define SMTP_DATA_SAW_BARE_LF (1 << 0)
#define SMTP_DATA_SAW_BARE_CR (1 << 1)
#define SMTP_DATA_SAW_NUL (1 << 2)
#define SMTP_DATA_SAW_LONG (1 << 3)
#define SMTP_DATA_SAW_8BIT (1 << 4)

typedef struct SMTP_DATA SMTP_DATA;

/* smtp_data_create - copy opts; fatal if line_max > SMTP_DATA_LINE_HARD_MAX */
SMTP_DATA *smtp_data_create(const SMTP_DATA_OPTS *opts, SMTP_DATA_LINE_FN fn, void *context);
void smtp_data_free(SMTP_DATA *data);
/* smtp_data_start - begin a message in SMTP_DATA_MODE_DATA or _BDAT */
void smtp_data_start(SMTP_DATA *data, int mode);
/* smtp_data_bdat_chunk - the next BDAT chunk: its size and whether it is LAST */
void smtp_data_bdat_chunk(SMTP_DATA *data, uint64_t size, int last);
/* smtp_data_feed - consume input; *used octets taken; SMTP_DATA_MORE/_END/_CHUNK_END */
int smtp_data_feed(SMTP_DATA *data, const char *buf, size_t len, size_t *used);

/* smtp_data_errors - SMTP_DATA_ERR_* bits for this message */
int smtp_data_errors(const SMTP_DATA *data);
/* smtp_data_seen - SMTP_DATA_SAW_* bits for this message */
int smtp_data_seen(const SMTP_DATA *data);
/* smtp_data_size - message octets counted so far (RFC 1870 counting) */
uint64_t smtp_data_size(const SMTP_DATA *data);
/* smtp_data_chunk_left - BDAT: octets of the current chunk not yet fed */
uint64_t smtp_data_chunk_left(const SMTP_DATA *data);
/* smtp_data_reply - 0 and the reply for the first error, -1 when there is none */
int smtp_data_reply(const SMTP_DATA *data, SMTP_REPLY *reply);

#endif
