/*
 * attr - the length-limited attribute protocol every Postern service speaks
 * over its UNIX stream socket (queue_directory/private/NAME, public/NAME).
 *
 * MESSAGES
 *   A message is a sequence of named, typed attributes followed by an end
 *   marker. Every field is length-prefixed with fixed-width big-endian
 *   integers, so no peer data can be mistaken for framing (unlike text
 *   lines, where a value holding a separator could forge a field):
 *
 *     message = *record end
 *     record  = type(1) name_len(1) name(name_len) value_len(4) value(value_len)
 *     end     = 0x00                      (a lone type byte)
 *
 *     type 0x01 STR   text; value_len bytes, no NUL byte anywhere
 *     type 0x02 INT   signed 64-bit, two's complement, value_len must be 8
 *     type 0x03 UINT  unsigned 64-bit, value_len must be 8
 *     type 0x04 BIN   arbitrary bytes
 *
 *   name: 1..name_max bytes from [A-Za-z0-9_.-], compared exactly.
 *   value_len: unsigned 32-bit big-endian. Any other type byte is an error.
 *   docs/ipc.md has the full description and a byte-level example.
 *
 * LIMITS
 *   ATTR_LIMITS bounds the name length, one value, the whole message (every
 *   byte including the end marker) and the attribute count. The reader checks
 *   each length field against them as soon as the field arrives, before it
 *   reads or allocates anything for the value, so a forged length costs the
 *   receiver nothing. Defaults are ATTR_*_MAX; attr_stream_set_limits changes
 *   them per connection within the ATTR_*_HARD_MAX ceilings.
 *
 * READER FLAGS (after Postfix's attr_scan)
 *   Every attribute a reader asks for with ATTR_*_OUT is required: when it is
 *   absent the read fails. ATTR_*_OPT asks for an optional one (the output is
 *   left untouched when absent). Attributes nobody asked for are skipped, so a
 *   newer peer may send more than an older one understands; ATTR_FLAG_EXTRA
 *   makes them an error. ATTR_FLAG_PRINTABLE rejects string values holding
 *   control characters (bytes 0x01-0x1f and 0x7f; bytes 0x80-0xff are allowed
 *   so that UTF-8 passes). A name asked for that appears twice is always an
 *   error: a reader must not have to guess which copy the sender meant.
 *
 * WRITER FLAGS
 *   ATTR_FLAG_MORE appends attributes without ending the message, so that a
 *   message with a variable number of attributes can be built in several
 *   calls; the next call without the flag ends (and, on a stream, sends) it.
 *
 * ERRORS
 *   Functions return -1 with errno set and a one-line reason (in the why
 *   argument, or attr_stream_why for streams):
 *     EPROTO     wire format broken (unknown type byte, bad name, number not
 *                8 bytes, NUL in a string, end of input inside a message)
 *     EMSGSIZE   a limit exceeded (name, value, message, count, or the limit
 *                of the caller's output VSTR)
 *     EBADMSG    well-formed but not what the reader asked for: required
 *                attribute missing, attribute repeated, type mismatch, extra
 *                attribute under ATTR_FLAG_EXTRA, control character under
 *                ATTR_FLAG_PRINTABLE
 *     ERANGE     a number does not fit the requested signedness
 *     ENODATA    clean end of input between two messages
 *     ETIMEDOUT  the message was not read or written within the timeout
 *     EINVAL     the writer was given a bad name
 *   After an error about the content of a correctly framed message
 *   (EBADMSG, ERANGE, a NUL byte in a string, a value longer than the
 *   caller's output VSTR allows) that message has been consumed and the
 *   stream stays usable (a server may answer with an error status). Any
 *   other error leaves the stream out of step with its peer: every later
 *   call fails the same way and the caller should close.
 *
 * TYPE-SAFE ARGUMENT LISTS
 *   The writers take ATTR_STR / ATTR_NUM / ATTR_UNUM / ATTR_BIN, the readers
 *   ATTR_*_OUT and ATTR_*_OPT, each list ending in ATTR_END. Each macro builds
 *   a compound literal ATTR_SPEC whose field types the compiler checks
 *   (a VSTR * given to ATTR_STR does not compile). Passing a reader spec to a
 *   writer or vice versa is a bug and panics. A list holds at most
 *   ATTR_LIST_MAX specs.
 *
 *     attr_print(s, 0, ATTR_STR("queue_id", id), ATTR_UNUM("size", n), ATTR_END);
 *     attr_scan(s, ATTR_FLAG_PRINTABLE, ATTR_STR_OUT("queue_id", id_buf),
 *               ATTR_UNUM_OPT("size", &size), ATTR_END);
 *
 * OWNERSHIP
 *   ATTR_STREAM: attr_stream_open allocates, attr_stream_free releases; the
 *   file descriptor stays the caller's (attr_stream_free does not close it).
 *   ATTR_MSG: returned by attr_msg_read / attr_msg_decode, owned by the
 *   caller, released with attr_msg_free; the strings in it live as long as
 *   the message. Output VSTRs and numbers belong to the caller; on error
 *   some of them may already have been overwritten.
 *
 * EVENT-DRIVEN USE
 *   attr_frame, attr_decode and attr_msg_decode work on memory, report
 *   ATTR_MORE when the buffer does not yet hold a whole message, and never
 *   block; attr_encode appends a message to a VSTR. A server running from an
 *   event loop feeds them the bytes it has. The ATTR_STREAM functions are
 *   built on the same code with blocking, timed I/O.
 */
#ifndef POSTERN_ATTR_H
#define POSTERN_ATTR_H

#include <stdarg.h>
#include <stddef.h>

#include "util/vstr.h"

/* Wire type bytes. */
#define ATTR_TYPE_END 0x00
#define ATTR_TYPE_STR 0x01
#define ATTR_TYPE_INT 0x02
#define ATTR_TYPE_UINT 0x03
#define ATTR_TYPE_BIN 0x04

/* Fixed sizes of the wire format. */
#define ATTR_NAME_LEN_SIZE 1  /* name length field */
#define ATTR_VALUE_LEN_SIZE 4 /* value length field */
#define ATTR_NUM_SIZE 8       /* INT and UINT values */
/* Bytes of a record other than its name and value. */
#define ATTR_HEADER_SIZE (1 + ATTR_NAME_LEN_SIZE + ATTR_VALUE_LEN_SIZE)

/* Default limits (per connection, see attr_stream_set_limits). */
#define ATTR_NAME_MAX 64            /* bytes in a name */
#define ATTR_VALUE_MAX (256 * 1024) /* bytes in one STR or BIN value */
#define ATTR_MSG_MAX (1024 * 1024)  /* bytes in one message, end marker included */
#define ATTR_COUNT_MAX 1024         /* attributes in one message */

/* Ceilings no override may pass. */
#define ATTR_NAME_HARD_MAX 255               /* the name length is one byte */
#define ATTR_MSG_HARD_MAX (64 * 1024 * 1024) /* bounds any one buffer */
#define ATTR_COUNT_HARD_MAX (64 * 1024)

/* Specs in one argument list (ATTR_END excluded). */
#define ATTR_LIST_MAX 100

/* Flags. */
#define ATTR_FLAG_NONE 0
#define ATTR_FLAG_EXTRA (1 << 0)     /* reader: unrequested attributes are an error */
#define ATTR_FLAG_PRINTABLE (1 << 1) /* reader: no control characters in strings */
#define ATTR_FLAG_STRICT (ATTR_FLAG_EXTRA | ATTR_FLAG_PRINTABLE)
#define ATTR_FLAG_MORE (1 << 2) /* writer: the message continues in the next call */

/* Return value of the memory decoders: the buffer holds no whole message yet. */
#define ATTR_MORE (-2)

typedef struct ATTR_LIMITS {
    size_t name_max;  /* 1 .. ATTR_NAME_HARD_MAX */
    size_t value_max; /* 0 .. msg_max */
    size_t msg_max;   /* 1 .. ATTR_MSG_HARD_MAX */
    size_t count_max; /* 0 .. ATTR_COUNT_HARD_MAX */
} ATTR_LIMITS;

/* attr_limits_default - ATTR_NAME_MAX, ATTR_VALUE_MAX, ATTR_MSG_MAX, ATTR_COUNT_MAX */
extern const ATTR_LIMITS attr_limits_default;

/* attr_limits_valid - are the limits within the ceilings; 0, or -1 with errno EINVAL */
int attr_limits_valid(const ATTR_LIMITS *lim);

/*
 * One element of an argument list. Build them with the macros below, not by
 * hand.
 */
enum attr_mode {
    ATTR_MODE_PUT = 1, /* writer: send this value */
    ATTR_MODE_GET,     /* reader: required attribute */
    ATTR_MODE_OPT,     /* reader: optional attribute */
};

typedef struct ATTR_SPEC {
    unsigned char type; /* ATTR_TYPE_* */
    unsigned char mode; /* enum attr_mode */
    const char *name;
    union {
        const char *str;
        long long num;
        unsigned long long unum;
        struct {
            const void *ptr;
            size_t len;
        } bin;
        VSTR *vstr_out;
        long long *num_out;
        unsigned long long *unum_out;
    } u;
} ATTR_SPEC;

#define ATTR_SPEC_(t, m, n, field, v)                                                              \
    (&(const ATTR_SPEC){.type = (t), .mode = (m), .name = (n), .u.field = (v)})

/* Writer elements. */
#define ATTR_STR(n, s) ATTR_SPEC_(ATTR_TYPE_STR, ATTR_MODE_PUT, (n), str, (s))
#define ATTR_NUM(n, v) ATTR_SPEC_(ATTR_TYPE_INT, ATTR_MODE_PUT, (n), num, (v))
#define ATTR_UNUM(n, v) ATTR_SPEC_(ATTR_TYPE_UINT, ATTR_MODE_PUT, (n), unum, (v))
#define ATTR_BIN(n, p, l)                                                                          \
    (&(const ATTR_SPEC){.type = ATTR_TYPE_BIN,                                                     \
                        .mode = ATTR_MODE_PUT,                                                     \
                        .name = (n),                                                               \
                        .u.bin = {.ptr = (p), .len = (l)}})

/* Reader elements: required. STR and BIN store into a VSTR (its limit applies). */
#define ATTR_STR_OUT(n, vs) ATTR_SPEC_(ATTR_TYPE_STR, ATTR_MODE_GET, (n), vstr_out, (vs))
#define ATTR_NUM_OUT(n, p) ATTR_SPEC_(ATTR_TYPE_INT, ATTR_MODE_GET, (n), num_out, (p))
#define ATTR_UNUM_OUT(n, p) ATTR_SPEC_(ATTR_TYPE_UINT, ATTR_MODE_GET, (n), unum_out, (p))
#define ATTR_BIN_OUT(n, vs) ATTR_SPEC_(ATTR_TYPE_BIN, ATTR_MODE_GET, (n), vstr_out, (vs))

/* Reader elements: optional (output untouched when the attribute is absent). */
#define ATTR_STR_OPT(n, vs) ATTR_SPEC_(ATTR_TYPE_STR, ATTR_MODE_OPT, (n), vstr_out, (vs))
#define ATTR_NUM_OPT(n, p) ATTR_SPEC_(ATTR_TYPE_INT, ATTR_MODE_OPT, (n), num_out, (p))
#define ATTR_UNUM_OPT(n, p) ATTR_SPEC_(ATTR_TYPE_UINT, ATTR_MODE_OPT, (n), unum_out, (p))
#define ATTR_BIN_OPT(n, vs) ATTR_SPEC_(ATTR_TYPE_BIN, ATTR_MODE_OPT, (n), vstr_out, (vs))

#define ATTR_END ((const ATTR_SPEC *)0)

/*
 * attr_list_collect - copy specs from *ap up to ATTR_END into list (room for
 * ATTR_LIST_MAX + 1 entries, NULL-terminated); returns the count. For
 * modules that wrap the writers or readers in their own varargs functions;
 * taking a pointer lets the caller collect a second list from the same ap.
 */
size_t attr_list_collect(va_list *ap, const ATTR_SPEC **list);

/*
 * Memory codec.
 */

/* attr_encode - append one message (or its first part, ATTR_FLAG_MORE) to
   out; 0, or -1 with errno and why, out unchanged. lim NULL: defaults. */
int attr_encode(VSTR *out, const ATTR_LIMITS *lim, int flags, VSTR *why, ...);
int attr_encode_list(VSTR *out, const ATTR_LIMITS *lim, int flags, VSTR *why,
                     const ATTR_SPEC *const *list);
/* attr_encode_cont - attr_encode_list for a later part of a message built
   with ATTR_FLAG_MORE: prior_len bytes and prior_count attributes of it are
   already encoded, and count against the limits. */
int attr_encode_cont(VSTR *out, const ATTR_LIMITS *lim, int flags, VSTR *why,
                     const ATTR_SPEC *const *list, size_t prior_len, size_t prior_count);

/* Framing progress over a growing buffer: set it to ATTR_FRAME_INIT before
   each message and keep the same limits until that message is framed. It
   holds offsets, so the buffer may move between calls. */
typedef struct ATTR_FRAME {
    size_t pos;   /* bytes of whole records seen */
    size_t count; /* records seen */
} ATTR_FRAME;

#define ATTR_FRAME_INIT ((ATTR_FRAME){0, 0})

/* attr_frame - does buf (len bytes, starting at a message) hold the whole
   message? 0 and *msg_len, ATTR_MORE (progress kept in fr, so feeding the
   same buffer grown by new bytes costs only the new records), or -1 with
   errno and why. Checks every length field against lim on arrival. */
int attr_frame(ATTR_FRAME *fr, const char *buf, size_t len, const ATTR_LIMITS *lim, size_t *msg_len,
               VSTR *why);

/* attr_decode - read the message at the start of buf into the outputs; the
   number of attributes stored, ATTR_MORE, or -1 with errno and why. *used is
   the message length when the framing was intact (also when the message was
   rejected: skip it and go on), 0 when the input is malformed (close). */
int attr_decode(const char *buf, size_t len, size_t *used, const ATTR_LIMITS *lim, int flags,
                VSTR *why, ...);
int attr_decode_list(const char *buf, size_t len, size_t *used, const ATTR_LIMITS *lim, int flags,
                     VSTR *why, const ATTR_SPEC *const *list);

/*
 * Whole messages, for code that looks attributes up by name or reads lists
 * (the same name repeated).
 */
typedef struct ATTR_VAL {
    const char *name;        /* NUL-terminated */
    int type;                /* ATTR_TYPE_* */
    const char *data;        /* STR, BIN: the bytes, NUL-terminated; NULL otherwise */
    size_t len;              /* STR, BIN: bytes in data */
    long long num;           /* INT */
    unsigned long long unum; /* UINT */
} ATTR_VAL;

typedef struct ATTR_MSG {
    size_t count;  /* attributes, in message order */
    ATTR_VAL *val; /* read-only for callers */
    char *arena;   /* names and values */
} ATTR_MSG;

/* attr_msg_decode - the message at the start of buf into a new *msgp; 0,
   ATTR_MORE, or -1 (errno, why; *used as for attr_decode). Flags:
   ATTR_FLAG_PRINTABLE. */
int attr_msg_decode(const char *buf, size_t len, size_t *used, const ATTR_LIMITS *lim, int flags,
                    ATTR_MSG **msgp, VSTR *why);
/* attr_msg_free - release a message; NULL is fine */
void attr_msg_free(ATTR_MSG *msg);
/* attr_msg_next - the next value named name at or after *pos (start at 0);
   NULL when no more. For lists such as repeated recipients. */
const ATTR_VAL *attr_msg_next(const ATTR_MSG *msg, const char *name, size_t *pos);
/* attr_msg_get_* - the one value named name. Fail (NULL or -1) with errno
   ENOENT when absent, EBADMSG when of another type or repeated, ERANGE when a
   number does not fit. */
const char *attr_msg_get_str(const ATTR_MSG *msg, const char *name);
int attr_msg_get_num(const ATTR_MSG *msg, const char *name, long long *out);
int attr_msg_get_unum(const ATTR_MSG *msg, const char *name, unsigned long long *out);
const char *attr_msg_get_bin(const ATTR_MSG *msg, const char *name, size_t *len);

/*
 * Blocking streams over a connected socket (or pipe pair end) with a
 * timeout per message: one attr_scan / attr_print call must complete within
 * timeout_ms (negative: no timeout), however the peer paces its bytes.
 * Writes are buffered and sent per message, in one write when the socket
 * takes it. attr_stream_open puts fd in non-blocking mode so that no system
 * call can outlast the timeout.
 */
typedef struct ATTR_STREAM ATTR_STREAM;

/* attr_stream_open - wrap a connected fd (still owned by the caller) */
ATTR_STREAM *attr_stream_open(int fd, int timeout_ms);
/* attr_stream_free - release buffers; does not close the fd; NULL is fine */
void attr_stream_free(ATTR_STREAM *s);
/* attr_stream_set_limits - replace the limits; 0, or -1 with errno EINVAL when
   out of range, EBUSY while a message is half written (ATTR_FLAG_MORE) */
int attr_stream_set_limits(ATTR_STREAM *s, const ATTR_LIMITS *lim);
/* attr_stream_set_timeout - per-message timeout in ms (negative: none) */
void attr_stream_set_timeout(ATTR_STREAM *s, int timeout_ms);
/* attr_stream_fd - the wrapped descriptor */
int attr_stream_fd(const ATTR_STREAM *s);
/* attr_stream_why - reason for the last failure ("" when none) */
const char *attr_stream_why(const ATTR_STREAM *s);

/* attr_print - write attributes, ending and sending the message unless
   ATTR_FLAG_MORE; 0, or -1 (errno, attr_stream_why). A failed call discards
   the whole unsent message. */
int attr_print(ATTR_STREAM *s, int flags, ...);
int attr_print_list(ATTR_STREAM *s, int flags, const ATTR_SPEC *const *list);
/* attr_scan - read one message into the outputs; attributes stored, or -1 */
int attr_scan(ATTR_STREAM *s, int flags, ...);
int attr_scan_list(ATTR_STREAM *s, int flags, const ATTR_SPEC *const *list);
/* attr_msg_read - read one whole message; NULL with errno (attr_stream_why) */
ATTR_MSG *attr_msg_read(ATTR_STREAM *s, int flags);

/*
 * Client side (attr_clnt.c).
 */

/* attr_clnt_connect - connect to the UNIX socket at path within timeout_ms;
   the fd (close-on-exec), or -1 with errno (ETIMEDOUT when the server's
   backlog stayed full, ENAMETOOLONG, ECONNREFUSED, ENOENT...) */
int attr_clnt_connect(const char *path, int timeout_ms);
/* attr_clnt_request - send one request, read its reply. Arguments: writer
   specs, ATTR_END, reader specs, ATTR_END; flags apply to the reply.
   Attributes stored from the reply, or -1 (errno, attr_stream_why). */
int attr_clnt_request(ATTR_STREAM *s, int flags, ...);
/* attr_clnt_call - connect to path, one request and reply, close; as
   attr_clnt_request, the reason in why (may be NULL) */
int attr_clnt_call(const char *path, int timeout_ms, int flags, VSTR *why, ...);

/*
 * Server side (attr_serv.c).
 */

/* Return values of a request handler. */
#define ATTR_SERV_CONTINUE 0 /* wait for the next request */
#define ATTR_SERV_CLOSE 1    /* done with this client */

/* A handler gets each request and sends its reply with attr_print on s;
   ATTR_SERV_CONTINUE, ATTR_SERV_CLOSE, or -1 to fail the session. */
typedef int (*ATTR_SERV_FN)(ATTR_STREAM *s, const ATTR_MSG *request, void *context);

/* attr_serv_loop - read requests from an accepted connection and hand each to
   fn until the client closes (or fn says so): the number of requests
   handled, or -1 (errno, attr_stream_why) on a protocol, I/O or handler
   failure. flags: ATTR_FLAG_PRINTABLE for the requests; a request it
   rejects ends the session (a service that wants to answer such requests
   leaves the flag off and checks the values itself). */
int attr_serv_loop(ATTR_STREAM *s, int flags, ATTR_SERV_FN fn, void *context);

#endif
