/*
 * sendmail.h - shared declarations of the sendmail(1) command: options,
 * the postdrop child that puts a message into maildrop/, the line reader
 * for standard input, enqueue mode and stand-alone SMTP mode (-bs).
 */
#ifndef POSTERN_SENDMAIL_H
#define POSTERN_SENDMAIL_H

#include <stddef.h>
#include <sys/types.h>

#include "mail/maildrop.h"
#include "util/argv.h"
#include "util/vstr.h"

/* What the command line asked for, after checking. */
typedef struct SM_OPTS {
    const char *config_dir; /* -C, else $MAIL_CONFIG, else the default */
    int have_sender;        /* -f or -r given */
    char *sender;           /* internal form ("" = null sender) */
    char *full_name;        /* -F, else $NAME; NULL when none */
    int extract;            /* -t */
    int dot_ends;           /* a "." line ends the input (no -i / -oi) */
    int notify;             /* -N: QFILE_NOTIFY_* bits, 0 = not given */
    int ret;                /* -R: QFILE_RET_* */
    char *envid;            /* -V, NULL when none */
    int body;               /* -B: MAILDROP_BODY_*, 0 = not given */
    int report;             /* one -v: say where the message went */
    ARGV *rcpt;             /* command-line recipients, internal form */
    uid_t uid;
    char *login; /* the caller's login name ("unknown" when none) */
} SM_OPTS;

/* sm_die - the message on standard error (and the mail log), then exit */
_Noreturn void sm_die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* sm_who - "sender(uid)" for messages, as Postfix writes them */
const char *sm_who(const SM_OPTS *o);

/* ---- postdrop (sendmail_drop.c) ---- */

typedef struct SM_DROP SM_DROP;

/* sm_drop_start - run $command_directory/postdrop with a pipe on each side;
   NULL with why when it could not be started */
SM_DROP *sm_drop_start(const SM_OPTS *o, VSTR *why);
/* sm_drop_writer - the record writer on postdrop's standard input */
MAILDROP_WRITER *sm_drop_writer(SM_DROP *d);
/* sm_drop_envelope - sender, flags, DSN, body type and command-line
   recipients; 0, or -1 with why */
int sm_drop_envelope(SM_DROP *d, const SM_OPTS *o, VSTR *why);
/* sm_drop_finish - commit (write END) or abort (close early), wait for
   postdrop; 0 with the maildrop id in id (QUEUE_ID_SIZE), or a sysexits
   status with why. Frees d. */
int sm_drop_finish(SM_DROP *d, int commit, char *id, VSTR *why);

/* ---- standard input (sendmail_input.c) ---- */

typedef struct SM_IN SM_IN;

/* Piece ends: the line goes on, ended by LF, or input ended without LF. */
#define SM_IN_MORE 0
#define SM_IN_LF 1
#define SM_IN_EOF_NOLF 2

/* Results besides a length. */
#define SM_IN_EOF (-1)     /* no more input */
#define SM_IN_ERROR (-2)   /* read error (errno) */
#define SM_IN_TIMEOUT (-3) /* nothing within the timeout */

/* sm_in_open - buffered reader of fd; timeout_ms < 0: wait forever */
SM_IN *sm_in_open(int fd, int timeout_ms);
/* sm_in_piece - the next piece of a line, at most max bytes (max >= 2),
   without its LF; a piece that does not end the line never ends in CR, so
   a CR before LF is always in the piece that the LF ends. The length (data
   valid until the next call) with *end set, or an SM_IN_* result. */
ssize_t sm_in_piece(SM_IN *in, const char **data, size_t max, int *end);
void sm_in_free(SM_IN *in);

/* ---- modes ---- */

/* sm_enqueue - read a message from standard input and queue it; exits */
_Noreturn void sm_enqueue(SM_OPTS *o);
/* sm_smtp - stand-alone SMTP server on standard input and output; exits */
_Noreturn void sm_smtp(SM_OPTS *o);

#endif
