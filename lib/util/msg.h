/*
 * msg - logging with five levels of meaning.
 *
 * info: what happened; warn: something is wrong but work goes on;
 * error: an operation failed; fatal: the process cannot go on (exit 1);
 * panic: an invariant broke, which is a bug (abort).
 *
 * Lines go to syslog (facility mail by default), to a file named by
 * maillog_file, or to stderr, in the shape "postern/PROGRAM[pid]: text".
 * Written to a file, each line carries a syslog-style timestamp and host
 * name so that log tools read it like /var/log/mail.log.
 */
#ifndef POSTERN_MSG_H
#define POSTERN_MSG_H

#include <stdarg.h>

#define MSG_FMT(a, b) __attribute__((format(printf, a, b)))

enum msg_dest { MSG_DEST_STDERR, MSG_DEST_SYSLOG, MSG_DEST_FILE };

extern int msg_verbose;

/* msg_init - name the program ("smtpd"); logs go to stderr until msg_open */
void msg_init(const char *program);
/* msg_open - choose the destination: syslog_name ("postern"), facility, file */
void msg_open(const char *syslog_name, const char *facility, const char *file);
/* msg_also_stderr - copy every line to stderr as well (interactive commands) */
void msg_also_stderr(int on);
/* msg_program - the program name given to msg_init */
const char *msg_program(void);
/* msg_ident - "postern/smtpd" */
const char *msg_ident(void);
/* msg_facility_code - syslog facility by name, -1 when unknown */
int msg_facility_code(const char *name);

void msg_info(const char *fmt, ...) MSG_FMT(1, 2);
void msg_warn(const char *fmt, ...) MSG_FMT(1, 2);
void msg_error(const char *fmt, ...) MSG_FMT(1, 2);
_Noreturn void msg_fatal(const char *fmt, ...) MSG_FMT(1, 2);
_Noreturn void msg_fatal_status(int status, const char *fmt, ...) MSG_FMT(2, 3);
_Noreturn void msg_panic(const char *fmt, ...) MSG_FMT(1, 2);

/* msg_cleanup_fn - called once before a fatal exit (e.g. remove a temp file) */
void msg_set_cleanup(void (*fn)(void));

#endif
