/*
 * qfile - the queue file: a typed, length-prefixed record format, its writer
 * (cleanup), its reader and the durable updates (qmgr, postqueue, postsuper).
 *
 * Why records: the envelope must never be text lines that message data
 * could forge (Exim's spool-injection bugs). Every piece of data sits in a
 * record whose type and length come from the writer, not from the data, so
 * no byte sequence in an address, header or body can start a record.
 * docs/queue-format.md has the same description with the reasoning.
 *
 * FILE LAYOUT (format version 1; all integers big-endian, unsigned unless
 * marked signed)
 *
 *   header   8 bytes magic 89 50 51 46 0D 0A 1A 0A ("\x89PQF\r\n\x1a\n": the
 *            high byte catches 7-bit copies, CR LF and ^Z catch text-mode
 *            mangling), u16 format version (1), u16 flags (0; non-zero is
 *            refused by this reader)
 *   record   u8 type, u32 length, then `length` payload bytes
 *
 * Record types 0x01-0x7F are critical: a reader that does not know one
 * refuses the file (corrupt). 0x80-0xFE are ancillary: unknown ones are
 * skipped, so a later writer can add information that old readers may
 * ignore. 0x00 and 0xFF are never valid (zero-filled or erased blocks).
 * Lengths above QFILE_REC_MAX, or above the limit of the record's type, are
 * refused before anything is read or allocated.
 *
 *   type     name         payload                                  count, place
 *   'I' 49   QUEUE_ID     the queue id (QUEUE_ID_LEN bytes)        1, first record
 *   'T' 54   ARRIVAL      u64 seconds, u32 microseconds            1, envelope
 *   'C' 43   CLASS        u8 class (0 immediate, 1 bulk),          1, envelope
 *                         signed u8 priority -9..9 (RFC 6710)
 *   'S' 53   SENDER       the address; empty = null sender <>     1, envelope
 *   'D' 44   DSN          u8 RET (0 none, 1 FULL, 2 HDRS),         0-1, envelope
 *                         then ENVID (RFC 3461, rest; may be empty)
 *   'R' 52   RCPT         u8 status, u8 NOTIFY bits, u16 length +  1..QFILE_RCPT_MAX,
 *                         address, u16 length + original           envelope or
 *                         recipient, then DSN ORCPT (rest)         post-content
 *   'A' 41   ATTR         u8 name length, name, then value (rest)  any, envelope or
 *                                                                  post-content
 *   'M' 4D   CONTENT      u64 content size, u64 file offset of    1, ends the envelope
 *                         the CONTENT_END record (both 0 until
 *                         the writer commits)
 *   'L' 4C   LINE         line data; a line end follows            any, content
 *   'P' 50   PART         line data (1+ bytes), no line end        any, content
 *   'E' 45   CONTENT_END  empty                                    1, ends content
 *   'Z' 5A   COMMIT       u32 number of RCPT records               1, ends writer data
 *   'W' 57   DEFER        u32 recipient index, u64 time, u64 next  any, appended
 *                         attempt time, u8 length + DSN status
 *                         ("4.4.1"), then reason text (rest)
 *   'Y' 59   WARNED       u64 time a delay warning was sent        any, appended
 *
 * Sections in order: header; envelope (QUEUE_ID first, then ARRIVAL, CLASS,
 * SENDER, DSN, RCPT and ATTR in any order); CONTENT; content records;
 * CONTENT_END; post-content RCPT and ATTR (added after the content was
 * seen: recipients from headers or from a content filter); COMMIT; records
 * appended by qmgr. The CONTENT record lets readers that only need the
 * envelope jump over the content.
 *
 * Content: each line of the message is stored without its line end as one
 * or more records of at most QFILE_CHUNK_MAX bytes; LINE ends a line that had
 * a line end, PART carries data that continues in the next record, or the
 * final bytes of a message whose last line has no line end. Reading the
 * records back and adding a line end after each LINE gives the message back
 * byte for byte. The content is 8-bit clean: any byte value may appear,
 * NUL included, because lengths delimit the data; whether NUL or bare CR
 * are acceptable in mail is decided by smtpd and cleanup, not here. Which
 * line end to write (LF, or CRLF for SMTP) is for the reader to choose.
 * The content size counts the data bytes plus one per line end (LF).
 *
 * Envelope strings are returned as C strings, so they never contain NUL.
 * Addresses (sender, recipient, original recipient, ORCPT) and ENVID must
 * not contain control characters; attribute values and deferral reasons
 * must not contain CR or LF (they end up in logs and headers).
 *
 * RECIPIENT STATUS IN PLACE. The first payload byte of each RCPT record is
 * its status: 'P' pending, 'R' deferred (to retry), 'D' done (delivered),
 * 'B' bounced (failed; the notice has been queued). qmgr changes it with a
 * one-byte pwrite() at the offset the reader reported, then fdatasync().
 * That is atomic enough: a single byte lies inside one disk sector, and
 * storage writes a sector whole or not at all, so after a crash the byte is
 * the old or the new value, never a mix; the rest of the file is not
 * touched. A crash before the fdatasync() may lose the change, so the
 * recipient is delivered again: at-least-once, never lost. 'D' and 'B' are
 * final and are never changed back.
 *
 * APPENDED RECORDS. After COMMIT, qmgr appends DEFER and WARNED records
 * (pwrite at the end, fdatasync). Readers apply them in file order, so the
 * latest wins. A crash during an append can leave a partial record (cut
 * short, or zero-filled by the file system): readers ignore such a damaged
 * tail (tail_damaged is set) and the next append truncates it away first.
 * Anything else wrong after COMMIT is corruption.
 *
 * COMMIT SEQUENCE (qfile_writer_commit): write CONTENT_END (if not yet),
 * the post-content records and COMMIT; patch ARRIVAL, CLASS and CONTENT
 * (in the buffer when still there, else in the file); flush;
 * fsync(file); rename incoming/ID to immediate/ID or
 * bulk/ID by class (never replacing a file); fsync(target directory). The
 * message is accepted only after all of that succeeded; on any failure the
 * file is removed and nothing is acknowledged.
 *
 * Reading a file that is cut short (a writer still at work, or a crash)
 * gives QFILE_ERR_INCOMPLETE; the caller decides whether that is "still
 * being written" (incoming/) or corrupt (any other queue).
 *
 * Memory: a reader holds the envelope (at most QFILE_RCPT_MAX recipients
 * and QFILE_ATTR_MAX attributes, each field bounded) and one record buffer;
 * content is streamed. The writer holds one buffer of QFILE_WBUF_SIZE.
 *
 * Ownership: qfile_writer_create and qfile_open return objects that the
 * caller releases with qfile_writer_free and qfile_close. Strings inside a
 * QFILE are owned by it.
 */
#ifndef POSTERN_QFILE_H
#define POSTERN_QFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>

#include "mail/queue_id.h"
#include "util/vstr.h"

/* Format. */
#define QFILE_MAGIC "\x89PQF\r\n\x1a\n"
#define QFILE_MAGIC_LEN 8
#define QFILE_VERSION 1
#define QFILE_HEADER_LEN 12
#define QFILE_REC_HEADER_LEN 5 /* u8 type, u32 length */

/* Record types (see the table above). */
#define QFILE_REC_QUEUE_ID 'I'
#define QFILE_REC_ARRIVAL 'T'
#define QFILE_REC_CLASS 'C'
#define QFILE_REC_SENDER 'S'
#define QFILE_REC_DSN 'D'
#define QFILE_REC_RCPT 'R'
#define QFILE_REC_ATTR 'A'
#define QFILE_REC_CONTENT 'M'
#define QFILE_REC_LINE 'L'
#define QFILE_REC_PART 'P'
#define QFILE_REC_CONTENT_END 'E'
#define QFILE_REC_COMMIT 'Z'
#define QFILE_REC_DEFER 'W'
#define QFILE_REC_WARNED 'Y'
#define QFILE_REC_ANCILLARY 0x80 /* types 0x80-0xFE: skipped when unknown */

/* Limits, part of the format: writers refuse more, readers call more corrupt. */
#define QFILE_REC_MAX 65536        /* any record's payload */
#define QFILE_CHUNK_MAX 4096       /* content bytes per LINE/PART record */
#define QFILE_ADDR_MAX 2048        /* sender, recipient, original recipient */
#define QFILE_ORCPT_MAX 2048       /* DSN ORCPT, "addr-type;xtext" */
#define QFILE_ENVID_MAX 512        /* DSN ENVID (RFC 3461: 100 characters, xtext) */
#define QFILE_ATTR_NAME_MAX 64     /* [A-Za-z0-9_.-]+ */
#define QFILE_ATTR_VALUE_MAX 16384 /* attribute value */
#define QFILE_DSN_STATUS_MAX 32    /* "4.4.1" */
#define QFILE_REASON_MAX 4096      /* deferral reason text */
#define QFILE_RCPT_MAX 100000      /* recipients per queue file */
#define QFILE_ATTR_MAX 1000        /* attributes per queue file */
#define QFILE_WBUF_SIZE 65536      /* writer buffer */

/* Message classes: the queue a committed file goes to. */
#define QFILE_CLASS_IMMEDIATE 0
#define QFILE_CLASS_BULK 1
#define QFILE_PRIORITY_MIN (-9) /* RFC 6710 MT-PRIORITY */
#define QFILE_PRIORITY_MAX 9

/* DSN RET (RFC 3461 section 4.3). */
#define QFILE_RET_NONE 0
#define QFILE_RET_FULL 1
#define QFILE_RET_HDRS 2

/* DSN NOTIFY bits (RFC 3461 section 4.1); 0 = not given. */
#define QFILE_NOTIFY_SUCCESS (1 << 0)
#define QFILE_NOTIFY_FAILURE (1 << 1)
#define QFILE_NOTIFY_DELAY (1 << 2)
#define QFILE_NOTIFY_NEVER (1 << 3) /* alone only */

/* Recipient status bytes (updated in place). */
#define QFILE_RCPT_PENDING 'P'
#define QFILE_RCPT_DEFERRED 'R'
#define QFILE_RCPT_DONE 'D'
#define QFILE_RCPT_BOUNCED 'B'

/* Well-known attribute names (Postfix's where it has one). */
#define QFILE_ATTR_CLIENT_NAME "client_name"
#define QFILE_ATTR_REVERSE_CLIENT_NAME "reverse_client_name"
#define QFILE_ATTR_CLIENT_ADDR "client_address"
#define QFILE_ATTR_CLIENT_PORT "client_port"
#define QFILE_ATTR_HELO_NAME "helo_name"
#define QFILE_ATTR_PROTOCOL "protocol_name"
#define QFILE_ATTR_SASL_METHOD "sasl_method"
#define QFILE_ATTR_SASL_USERNAME "sasl_username"
#define QFILE_ATTR_SASL_SENDER "sasl_sender"
#define QFILE_ATTR_REWRITE_CONTEXT "rewrite_context"
#define QFILE_ATTR_LOG_IDENT "log_ident"

/* Results: 0, or one of these. */
#define QFILE_OK 0
#define QFILE_ERR_SYS (-1)        /* a system call failed; errno says which way */
#define QFILE_ERR_INCOMPLETE (-2) /* cut short: still being written, or a crash */
#define QFILE_ERR_CORRUPT (-3)    /* breaks the format */
#define QFILE_ERR_FORMAT (-4)     /* not a queue file, or a version we cannot read */
#define QFILE_ERR_LIMIT (-5)      /* over a size or count limit */
#define QFILE_ERR_INVAL (-6)      /* data the format cannot hold, or an update not allowed */

/* qfile_strerror - "incomplete", "corrupt", ... for a result code */
const char *qfile_strerror(int err);

/* qfile_class_queue - the queue a message of that class is committed to */
const char *qfile_class_queue(int msg_class);

/* ------------------------------------------------------------------ */
/* Writer (cleanup).                                                   */
/* ------------------------------------------------------------------ */

typedef struct QFILE_WRITER QFILE_WRITER;

/* qfile_writer_create - a new file incoming/ID (O_EXCL, mode 0600, locked
   while written) with a fresh id, header, QUEUE_ID, ARRIVAL (the id's time)
   and CLASS (immediate, 0) written; NULL with the reason in why (may be NULL) */
QFILE_WRITER *qfile_writer_create(VSTR *why);

/* qfile_writer_id - the id (valid from creation on; acknowledge it only after commit) */
const char *qfile_writer_id(const QFILE_WRITER *w);

/* qfile_writer_why - text for the last error */
const char *qfile_writer_why(const QFILE_WRITER *w);

/* qfile_writer_set_size_limit - message_size_limit for the content (0 = none) */
void qfile_writer_set_size_limit(QFILE_WRITER *w, uint64_t limit);

/* qfile_writer_size - content bytes so far (data plus one per line end) */
uint64_t qfile_writer_size(const QFILE_WRITER *w);

/* qfile_writer_set_arrival - replace the arrival time; any time before commit */
int qfile_writer_set_arrival(QFILE_WRITER *w, const struct timeval *when);

/* qfile_writer_set_class - class and priority; any time before commit */
int qfile_writer_set_class(QFILE_WRITER *w, int msg_class, int priority);

/* qfile_writer_sender - the envelope sender ("" for <>); once, before content */
int qfile_writer_sender(QFILE_WRITER *w, const char *sender);

/* qfile_writer_dsn - RET and ENVID (NULL or ""); at most once, before content */
int qfile_writer_dsn(QFILE_WRITER *w, int ret, const char *envid);

/* qfile_writer_rcpt - a recipient (status pending); orig_rcpt and orcpt may be
   NULL. Before the content, or after it (post-content section). */
int qfile_writer_rcpt(QFILE_WRITER *w, const char *addr, const char *orig_rcpt, const char *orcpt,
                      int notify);

/* qfile_writer_attr - a named attribute; before or after the content */
int qfile_writer_attr(QFILE_WRITER *w, const char *name, const char *value);

/* qfile_writer_line - content: len bytes of a line, then a line end if eol.
   Calls with eol = 0 continue the same line; no line end is ever invented. */
int qfile_writer_line(QFILE_WRITER *w, const char *data, size_t len, int eol);

/* qfile_writer_text - content as raw bytes, lines split at LF (the LF is the
   line end; CR stays data); a last piece without LF continues with the next call */
int qfile_writer_text(QFILE_WRITER *w, const char *data, size_t len);

/* qfile_writer_end_content - close the content; later rcpt/attr calls go to the
   post-content section (implied by commit) */
int qfile_writer_end_content(QFILE_WRITER *w);

/* qfile_writer_commit - finish, fsync, rename into the class queue, fsync that
   directory; then copy the id to id_out (QUEUE_ID_SIZE, may be NULL). On any
   failure the file is removed and an error returned: nothing may be
   acknowledged. */
int qfile_writer_commit(QFILE_WRITER *w, char *id_out);

/* qfile_writer_free - release; an uncommitted file is removed (abort) */
void qfile_writer_free(QFILE_WRITER *w);

/* ------------------------------------------------------------------ */
/* Reader and updates (qmgr, delivery agents, postqueue, postsuper).   */
/* ------------------------------------------------------------------ */

typedef struct QFILE_RCPT {
    char *address;       /* never NULL */
    char *orig_rcpt;     /* "" = same as address */
    char *orcpt;         /* DSN ORCPT, "" = none */
    int notify;          /* QFILE_NOTIFY_* */
    int status;          /* QFILE_RCPT_* */
    off_t offset;        /* the RCPT record */
    off_t status_offset; /* its status byte */
    /* From the latest DEFER record for this recipient (defer_count 0: none). */
    unsigned defer_count;
    time_t defer_time;
    time_t next_attempt;
    char *dsn_status; /* NULL when never deferred */
    char *reason;     /* NULL when never deferred */
} QFILE_RCPT;

typedef struct QFILE_ATTR {
    char *name;
    char *value;
} QFILE_ATTR;

/* Read-only for callers except through the functions below. */
typedef struct QFILE {
    char id[QUEUE_ID_SIZE];
    char *queue; /* the queue it is in; NULL when opened by path */
    struct timeval arrival;
    int msg_class;    /* QFILE_CLASS_* */
    int priority;     /* -9..9 */
    char *sender;     /* "" = null sender */
    int dsn_ret;      /* QFILE_RET_* */
    char *dsn_envid;  /* "" = none */
    QFILE_RCPT *rcpt; /* in file order */
    size_t rcpt_count;
    QFILE_ATTR *attr; /* in file order */
    size_t attr_count;
    uint64_t content_size;
    off_t content_offset; /* first record after CONTENT */
    off_t content_end;    /* the CONTENT_END record */
    int delay_warned;     /* a WARNED record exists */
    time_t delay_warned_time;
    int tail_damaged; /* an interrupted append was ignored */
    /* Private. */
    int fd;
    int flags;
    off_t valid_end; /* end of the last good record */
    VSTR *path;
    VSTR *why;
} QFILE;

/* Flags for qfile_open. */
#define QFILE_OPEN_UPDATE (1 << 0) /* read-write, for marks, appends */
#define QFILE_OPEN_VERIFY (1 << 1) /* also check every content record now */

/* qfile_open - open and parse queue_name/id; 0 and *qp, or an error with the
   reason in why (may be NULL) */
int qfile_open(const char *queue_name, const char *id, int flags, QFILE **qp, VSTR *why);

/* qfile_open_path - the same for a file outside the queue tree; id, if not
   NULL, must match the file's QUEUE_ID. Cannot be moved or removed. */
int qfile_open_path(const char *path, const char *id, int flags, QFILE **qp, VSTR *why);

/* qfile_close - release */
void qfile_close(QFILE *q);

/* qfile_why - text for the last error on q */
const char *qfile_why(const QFILE *q);

/* qfile_attr - the last value of the attribute, NULL if absent */
const char *qfile_attr(const QFILE *q, const char *name);

/* qfile_pending - recipients not yet final (pending or deferred) */
size_t qfile_pending(const QFILE *q);

/* qfile_next_attempt - earliest next-attempt time of the recipients not yet
   final; 0 when one of them has never been deferred (due now) or none left */
time_t qfile_next_attempt(const QFILE *q);

/* Content callback: one call per record's data. flags has QFILE_BOL when
   the data starts a line, QFILE_EOL when a line end follows it. Return 0 to
   go on; a positive value stops the walk and is returned by it. */
typedef int (*QFILE_CONTENT_FN)(void *ctx, const char *data, size_t len, int flags);

#define QFILE_BOL (1 << 0)
#define QFILE_EOL (1 << 1)

/* qfile_content_walk - stream the content, checking every record; 0, the
   callback's value, or an error */
int qfile_content_walk(QFILE *q, QFILE_CONTENT_FN fn, void *ctx);

/* Flags for qfile_content_to_fd. */
#define QFILE_OUT_CRLF (1 << 0)     /* line ends as CR LF instead of LF */
#define QFILE_OUT_DOTSTUFF (1 << 1) /* double a leading "." (RFC 5321 4.5.2) */

/* qfile_content_to_fd - write the content to fd; 0 or an error */
int qfile_content_to_fd(QFILE *q, int fd, int flags);

/* Flag for the updates below: leave the fdatasync to a later qfile_sync. */
#define QFILE_NOSYNC (1 << 0)

/* qfile_rcpt_mark - set recipient index's status in place (pwrite, then
   fdatasync unless QFILE_NOSYNC); a final status cannot change (INVAL) */
int qfile_rcpt_mark(QFILE *q, size_t index, int status, int flags);

/* qfile_rcpt_defer - append a DEFER record for recipient index and mark it
   deferred in place; dsn_status and reason may be NULL */
int qfile_rcpt_defer(QFILE *q, size_t index, time_t when, time_t next_attempt,
                     const char *dsn_status, const char *reason, int flags);

/* qfile_set_delay_warned - append a WARNED record */
int qfile_set_delay_warned(QFILE *q, time_t when, int flags);

/* qfile_sync - fdatasync the updates made with QFILE_NOSYNC */
int qfile_sync(QFILE *q);

/* qfile_move - move the open file to another queue durably (rename, fsync of
   both directories); the handle stays usable */
int qfile_move(QFILE *q, const char *to_queue);

/* qfile_remove - unlink the file (no directory fsync: a removal undone by a
   crash means a repeated delivery, never a lost one); only the handle is
   left, for close */
int qfile_remove(QFILE *q);

/* qfile_purge_incoming - remove files in incoming/ that no writer holds
   (their lock is free) and that are older than min_age seconds: they were
   never acknowledged. Returns the number removed, or -1 with why. */
long qfile_purge_incoming(long min_age, VSTR *why);

#endif
