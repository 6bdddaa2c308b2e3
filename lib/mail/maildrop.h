/*
 * maildrop - the local submission format: what sendmail hands to postdrop
 * on a pipe, and what postdrop writes into queue_directory/maildrop/ for
 * pickup. One typed, length-prefixed record format for both, with a reader
 * that checks every record, and a writer that refuses what the reader would.
 *
 * Why records and not text: the envelope (sender, recipients, DSN) must
 * never be something message data can forge. Every field sits in a record
 * whose type and length come from the writer, so no byte sequence in the
 * message can start a record. docs/queue-format.md ("The maildrop format")
 * has the same description with the reasoning.
 *
 * LAYOUT (version 1; integers big-endian, unsigned)
 *
 *   header   8 bytes magic 89 50 4D 44 0D 0A 1A 0A ("\x89PMD\r\n\x1a\n"),
 *            u16 version (1), u16 flags (0; anything else is refused)
 *   record   u8 type, u32 length, then `length` payload bytes
 *
 *   type     name       payload                                  count, place
 *   'U' 55   SUBMITTER  u32 uid, then login name (1..256)        1, first (files only)
 *   'F' 46   FLAGS      u32 MAILDROP_FLAG_* bits (others refused) 0-1, envelope
 *   'S' 53   SENDER     address (0..2048; empty = null sender)   0-1, envelope
 *   'N' 4E   FULL_NAME  text (1..512, no control characters)     0-1, envelope
 *   'D' 44   DSN        u8 RET (0 none, 1 FULL, 2 HDRS), then    0-1, envelope
 *                       ENVID (rest, 0..100, printable ASCII)
 *   'B' 42   BODY       u8 body type (1 7BIT, 2 8BITMIME)        0-1, envelope
 *   'R' 52   RCPT       u8 NOTIFY bits (QFILE_NOTIFY_*), then    any, envelope or
 *                       the address (rest, 1..2048)              post-content
 *   'M' 4D   CONTENT    empty                                    1, ends the envelope
 *   'L' 4C   LINE       line data (0..4096); a line end follows  any, content
 *   'P' 50   PART       line data (1..4096); no line end         any, content
 *   'X' 58   CONTENT_END empty                                   1, ends the content
 *   'Z' 5A   END        u32 recipient records, u64 content size  1, last record
 *
 * Types 0x01-0x7F are critical: an unknown one makes the input corrupt.
 * 0x80-0xFE are ancillary: unknown ones are skipped (at most
 * MAILDROP_REC_MAX bytes each), so a later writer may add information that
 * this reader can ignore. 0x00 and 0xFF are never valid.
 *
 * Content lines are stored as in the queue file (lib/mail/qfile.h): each
 * line without its line end, in pieces of at most MAILDROP_CHUNK_MAX bytes;
 * PART for a piece that the next record continues (or the last bytes of a
 * message without a final line end), LINE for the piece that ends a line.
 * Any byte may appear. The content size counts the data bytes plus one per
 * LINE record.
 *
 * Addresses are in internal form (local part unquoted) and hold no control
 * characters; 8-bit bytes pass (SMTPUTF8). Text fields hold no control
 * characters either, so nothing read here can add a line to a log or a
 * header.
 *
 * END repeats the number of RCPT records and the content size: a file cut
 * short, or two files spliced together, cannot pass for a whole one, and
 * nothing may follow END.
 *
 * TRUST. The SUBMITTER record is written by postdrop only and only into
 * files; the reader refuses it in a stream (MAILDROP_RD_STREAM), so sendmail
 * input can never claim another user. pickup does not trust SUBMITTER
 * either: it takes the submitting user from the file owner and only checks
 * that the record agrees. Everything else in a file is untrusted input, and
 * this reader treats it as such: every length is checked against its type's
 * limit before anything is read or allocated, and memory stays at one
 * record buffer whatever the file holds.
 *
 * OWNERSHIP. maildrop_reader_open and maildrop_writer_open return objects
 * the caller frees; the descriptor stays the caller's. Pointers in a
 * MAILDROP_REC are valid until the next maildrop_read on that reader.
 */
#ifndef POSTERN_MAILDROP_H
#define POSTERN_MAILDROP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/argv.h"
#include "util/vstr.h"

/* Format. */
#define MAILDROP_MAGIC "\x89PMD\r\n\x1a\n"
#define MAILDROP_MAGIC_LEN 8
#define MAILDROP_VERSION 1
#define MAILDROP_HEADER_LEN 12
#define MAILDROP_REC_HEADER_LEN 5 /* u8 type, u32 length */

/* Record types. */
#define MAILDROP_REC_SUBMITTER 'U'
#define MAILDROP_REC_FLAGS 'F'
#define MAILDROP_REC_SENDER 'S'
#define MAILDROP_REC_FULL_NAME 'N'
#define MAILDROP_REC_DSN 'D'
#define MAILDROP_REC_BODY 'B'
#define MAILDROP_REC_RCPT 'R'
#define MAILDROP_REC_CONTENT 'M'
#define MAILDROP_REC_LINE 'L'
#define MAILDROP_REC_PART 'P'
#define MAILDROP_REC_CONTENT_END 'X'
#define MAILDROP_REC_END 'Z'
#define MAILDROP_REC_ANCILLARY 0x80 /* 0x80-0xFE: skipped when unknown */

/* Limits, part of the format: the writer refuses more, the reader calls more corrupt. */
#define MAILDROP_REC_MAX 65536         /* any record's payload */
#define MAILDROP_CHUNK_MAX 4096        /* content bytes per LINE/PART record */
#define MAILDROP_ADDR_MAX 2048         /* sender, recipient (as QFILE_ADDR_MAX) */
#define MAILDROP_LOGIN_MAX 256         /* login name in SUBMITTER */
#define MAILDROP_FULL_NAME_MAX 512     /* FULL_NAME text */
#define MAILDROP_ENVID_MAX 100         /* RFC 3461 4.4 */
#define MAILDROP_RCPT_MAX 100000       /* RCPT records per file (as QFILE_RCPT_MAX) */
#define MAILDROP_ENVELOPE_MAX 16777216 /* bytes of all envelope and recipient payloads */

/* FLAGS bits: requests of the submitter that pickup passes on. */
#define MAILDROP_FLAG_EXTRACT_RCPT (1 << 0) /* recipients from To/Cc/Bcc (sendmail -t) */
#define MAILDROP_FLAG_MASK 0x1              /* bits this version knows */

/* BODY values. */
#define MAILDROP_BODY_7BIT 1
#define MAILDROP_BODY_8BITMIME 2

/* Results: 0, or one of these. */
#define MAILDROP_OK 0
#define MAILDROP_EOF 1            /* reader: clean end after the END record */
#define MAILDROP_ERR_SYS (-1)     /* a system call failed (errno) */
#define MAILDROP_ERR_TRUNC (-2)   /* input ended inside a record or before END */
#define MAILDROP_ERR_CORRUPT (-3) /* breaks the format */
#define MAILDROP_ERR_FORMAT (-4)  /* not this format, or a version we do not read */
#define MAILDROP_ERR_LIMIT (-5)   /* content size or recipient count over the limit */
#define MAILDROP_ERR_INVAL (-6)   /* writer: data the format cannot hold */
#define MAILDROP_ERR_ABORT                                                                         \
    (-7) /* reader: input ended cleanly between records                                            \
            before END (a writer that gave up) */

/* maildrop_strerror - "corrupt", "cut short", ... for a result code */
const char *maildrop_strerror(int err);

/* ------------------------------------------------------------------ */
/* Reader.                                                             */
/* ------------------------------------------------------------------ */

/* Reader modes. */
#define MAILDROP_RD_STREAM 0 /* sendmail -> postdrop: SUBMITTER refused */
#define MAILDROP_RD_FILE 1   /* a maildrop file: SUBMITTER required, first */

typedef struct MAILDROP_LIMITS {
    uint64_t size_max; /* content size (message_size_limit); 0 = none */
    size_t rcpt_max;   /* recipients, at most MAILDROP_RCPT_MAX; 0 = that */
} MAILDROP_LIMITS;

/* One record, decoded. Which fields are set depends on type. */
typedef struct MAILDROP_REC {
    int type;                  /* MAILDROP_REC_* (or an unknown ancillary type) */
    const unsigned char *data; /* the payload as read */
    size_t len;
    const char *text; /* SUBMITTER login, SENDER, FULL_NAME, DSN envid, RCPT
                         address; NUL-terminated; "" otherwise */
    size_t text_len;
    unsigned long uid;     /* SUBMITTER */
    int ret;               /* DSN: QFILE_RET_* */
    int notify;            /* RCPT: QFILE_NOTIFY_* */
    int body;              /* BODY: MAILDROP_BODY_* */
    unsigned flags;        /* FLAGS: MAILDROP_FLAG_* */
    uint32_t rcpt_count;   /* END */
    uint64_t content_size; /* END */
} MAILDROP_REC;

typedef struct MAILDROP_READER MAILDROP_READER;

/* maildrop_reader_open - read from fd (its current position) in a mode; limits
   may be NULL (no size limit, MAILDROP_RCPT_MAX) */
MAILDROP_READER *maildrop_reader_open(int fd, int mode, const MAILDROP_LIMITS *limits);

/* maildrop_read - the next record, checked; MAILDROP_OK, MAILDROP_EOF after
   END and a clean end of input, or an error (the reason in maildrop_reader_why).
   Unknown ancillary records are returned too (callers skip them). After an
   error every later call returns the same error. */
int maildrop_read(MAILDROP_READER *r, MAILDROP_REC *rec);

/* maildrop_reader_why - text for the last error ("" when none) */
const char *maildrop_reader_why(const MAILDROP_READER *r);

/* maildrop_reader_offset - input bytes consumed so far */
uint64_t maildrop_reader_offset(const MAILDROP_READER *r);

/* maildrop_reader_size - content size so far (data plus one per LINE) */
uint64_t maildrop_reader_size(const MAILDROP_READER *r);

/* maildrop_reader_free - release; the descriptor is not closed */
void maildrop_reader_free(MAILDROP_READER *r);

/* The envelope of a whole file or stream, read and checked by
   maildrop_envelope_read (pickup; a queue lister). */
typedef struct MAILDROP_ENVELOPE {
    int have_submitter;
    unsigned long submitter_uid; /* SUBMITTER (files): check it against the owner */
    unsigned flags;              /* MAILDROP_FLAG_* */
    char *sender;                /* NULL when the input has no SENDER */
    char *full_name;             /* NULL when none */
    int ret;                     /* QFILE_RET_* */
    char *envid;                 /* NULL when none */
    int body;                    /* MAILDROP_BODY_*, 0 when none */
    ARGV *rcpt;                  /* envelope and post-content recipients, in order */
    int *notify;                 /* NOTIFY bits of each, rcpt->argc entries */
    uint64_t content_size;       /* from END, verified */
    int utf8;                    /* the sender or a recipient holds 8-bit bytes */
} MAILDROP_ENVELOPE;

/* maildrop_envelope_read - read all of fd (from its current position) in a
   mode, checking every record, and keep the envelope in *env (allocated
   members; maildrop_envelope_free releases them, also after a failure).
   0, or a maildrop error with the reason in why. Memory is bounded by
   MAILDROP_ENVELOPE_MAX however large the input. */
int maildrop_envelope_read(int fd, int mode, const MAILDROP_LIMITS *limits, MAILDROP_ENVELOPE *env,
                           VSTR *why);

/* maildrop_envelope_free - release what maildrop_envelope_read allocated */
void maildrop_envelope_free(MAILDROP_ENVELOPE *env);

/* ------------------------------------------------------------------ */
/* Writer.                                                             */
/* ------------------------------------------------------------------ */

typedef struct MAILDROP_WRITER MAILDROP_WRITER;

/* maildrop_writer_open - start writing to fd (a file or a pipe): the header
   goes out with the first flush. name is for error texts ("maildrop/ID",
   "postdrop"). */
MAILDROP_WRITER *maildrop_writer_open(int fd, const char *name);

/* maildrop_writer_set_size_limit - message_size_limit for the content (0 = none) */
void maildrop_writer_set_size_limit(MAILDROP_WRITER *w, uint64_t limit);

/* Envelope records. Each returns 0, MAILDROP_ERR_INVAL for data the format
   cannot hold (the writer goes on), or a sticky error. SENDER, FULL_NAME,
   DSN, BODY and FLAGS at most once and before the content; RCPT before or after it;
   SUBMITTER first (postdrop only). */
int maildrop_writer_submitter(MAILDROP_WRITER *w, unsigned long uid, const char *login);
int maildrop_writer_flags(MAILDROP_WRITER *w, unsigned flags);
int maildrop_writer_sender(MAILDROP_WRITER *w, const char *addr);
int maildrop_writer_full_name(MAILDROP_WRITER *w, const char *name);
int maildrop_writer_dsn(MAILDROP_WRITER *w, int ret, const char *envid);
int maildrop_writer_body(MAILDROP_WRITER *w, int body);
int maildrop_writer_rcpt(MAILDROP_WRITER *w, const char *addr, int notify);

/* maildrop_writer_line - content: len bytes of a line, then a line end if eol;
   calls with eol = 0 continue the same line. The first call writes CONTENT.
   MAILDROP_ERR_LIMIT (sticky) past the size limit. */
int maildrop_writer_line(MAILDROP_WRITER *w, const char *data, size_t len, int eol);

/* maildrop_writer_end_content - write CONTENT (if not yet) and CONTENT_END;
   later RCPT records go to the post-content section */
int maildrop_writer_end_content(MAILDROP_WRITER *w);

/* maildrop_writer_copy - write a record another reader returned (postdrop
   copying its input); SUBMITTER and END are refused (the writer makes its own) */
int maildrop_writer_copy(MAILDROP_WRITER *w, const MAILDROP_REC *rec);

/* maildrop_writer_finish - end the content if needed, write END, flush. The
   caller makes it durable (fsync) if it is a file. */
int maildrop_writer_finish(MAILDROP_WRITER *w);

/* maildrop_writer_flush - send what is buffered (e.g. before waiting on a peer) */
int maildrop_writer_flush(MAILDROP_WRITER *w);

/* maildrop_writer_size - content size so far */
uint64_t maildrop_writer_size(const MAILDROP_WRITER *w);

/* maildrop_writer_rcpt_count - RCPT records written */
size_t maildrop_writer_rcpt_count(const MAILDROP_WRITER *w);

/* maildrop_writer_why - text for the last error */
const char *maildrop_writer_why(const MAILDROP_WRITER *w);

/* maildrop_writer_free - release; the descriptor is not closed */
void maildrop_writer_free(MAILDROP_WRITER *w);

/* ------------------------------------------------------------------ */
/* Field checks shared by the writers, the reader and the programs.     */
/* ------------------------------------------------------------------ */

/* maildrop_addr_ok - an address the format can hold: no NUL or control
   characters, at most MAILDROP_ADDR_MAX bytes; empty allowed only if empty_ok */
int maildrop_addr_ok(const char *addr, size_t len, int empty_ok);

/* maildrop_text_ok - text without NUL or control characters, 1..max bytes */
int maildrop_text_ok(const char *text, size_t len, size_t max);

/* maildrop_envid_ok - printable ASCII (RFC 3461 4.4), at most MAILDROP_ENVID_MAX */
int maildrop_envid_ok(const char *envid, size_t len);

#endif
