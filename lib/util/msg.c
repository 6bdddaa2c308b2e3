/*
 * msg - logging to syslog, a file or stderr, in Postfix's line shape.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "util/msg.h"

#define MSG_LINE_MAX 4096

int msg_verbose;

static char msg_prog[64] = "postern";
static char msg_id[128] = "postern";
static enum msg_dest msg_dest = MSG_DEST_STDERR;
static int msg_fd = -1;
static int msg_stderr_too;
static int msg_depth;
static void (*msg_cleanup)(void);

static const struct {
    const char *name;
    int code;
} msg_facilities[] = {
    {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},
    {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
    {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
    {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

/* msg_facility_code - facility by name */
int msg_facility_code(const char *name)
{
    for (size_t i = 0; i < sizeof(msg_facilities) / sizeof(msg_facilities[0]); i++)
        if (strcasecmp(name, msg_facilities[i].name) == 0)
            return msg_facilities[i].code;
    return -1;
}

/* msg_init - set the program name; until msg_open, lines go to stderr */
void msg_init(const char *program)
{
    const char *slash = strrchr(program, '/');

    snprintf(msg_prog, sizeof(msg_prog), "%s", slash ? slash + 1 : program);
    snprintf(msg_id, sizeof(msg_id), "postern/%s", msg_prog);
}

const char *msg_program(void)
{
    return msg_prog;
}

const char *msg_ident(void)
{
    return msg_id;
}

void msg_also_stderr(int on)
{
    msg_stderr_too = on;
}

void msg_set_cleanup(void (*fn)(void))
{
    msg_cleanup = fn;
}

/* msg_open - pick the log destination from the configuration */
void msg_open(const char *syslog_name, const char *facility, const char *file)
{
    snprintf(msg_id, sizeof(msg_id), "%s/%s",
             syslog_name && *syslog_name ? syslog_name : "postern", msg_prog);
    if (msg_fd >= 0 && msg_dest == MSG_DEST_FILE)
        close(msg_fd);
    msg_fd = -1;
    if (file && *file) {
        if (strcmp(file, "/dev/stderr") == 0) {
            msg_dest = MSG_DEST_STDERR;
            return;
        }
        msg_fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (msg_fd >= 0) {
            msg_dest = MSG_DEST_FILE;
            return;
        }
        fprintf(stderr, "%s: warning: open maillog_file %s: %s\n", msg_prog, file,
                strerror(errno));
    }
    int fac = msg_facility_code(facility && *facility ? facility : "mail");

    openlog(msg_id, LOG_PID | LOG_NDELAY, fac < 0 ? LOG_MAIL : fac);
    msg_dest = MSG_DEST_SYSLOG;
}

/* msg_write_fd - one write per line so concurrent writers do not interleave */
static void msg_write_fd(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

/* msg_emit - format and deliver one line */
static void msg_emit(int prio, const char *level, const char *fmt, va_list ap)
{
    char text[MSG_LINE_MAX];
    char line[MSG_LINE_MAX + 256];
    int saved = errno;

    if (msg_depth++ > 0) { /* a failure while logging: do not recurse */
        msg_depth--;
        return;
    }
    vsnprintf(text, sizeof(text), fmt, ap);
    /* Peer data may end up in log text: never let it forge a second line. */
    for (char *p = text; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    const char *sep = level ? ": " : "";

    level = level ? level : "";
    if (msg_dest == MSG_DEST_SYSLOG) {
        syslog(prio, "%s%s%s", level, sep, text);
    } else if (msg_dest == MSG_DEST_FILE) {
        char stamp[64], host[256];
        time_t now = time(NULL);
        struct tm tm;
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&now, &tm);
        strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = 0;
        char *dot = strchr(host, '.');

        if (dot)
            *dot = 0;
        int n = snprintf(line, sizeof(line), "%s %s %s[%ld]: %s%s%s\n", stamp, host, msg_id,
                         (long)getpid(), level, sep, text);

        msg_write_fd(msg_fd, line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
    }
    if (msg_dest == MSG_DEST_STDERR || msg_stderr_too) {
        int n = snprintf(line, sizeof(line), "%s: %s%s%s\n", msg_prog, level, sep, text);

        msg_write_fd(2, line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
    }
    msg_depth--;
    errno = saved;
}

void msg_info(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    msg_emit(LOG_INFO, NULL, fmt, ap);
    va_end(ap);
}

void msg_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    msg_emit(LOG_WARNING, "warning", fmt, ap);
    va_end(ap);
}

void msg_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    msg_emit(LOG_ERR, "error", fmt, ap);
    va_end(ap);
}

/* msg_run_cleanup - run the cleanup hook once */
static void msg_run_cleanup(void)
{
    void (*fn)(void) = msg_cleanup;

    msg_cleanup = NULL;
    if (fn)
        fn();
}

_Noreturn void msg_fatal_status(int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    msg_emit(LOG_CRIT, "fatal", fmt, ap);
    va_end(ap);
    msg_run_cleanup();
    exit(status);
}

_Noreturn void msg_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    msg_emit(LOG_CRIT, "fatal", fmt, ap);
    va_end(ap);
    msg_run_cleanup();
    exit(1);
}

_Noreturn void msg_panic(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    msg_emit(LOG_CRIT, "panic", fmt, ap);
    va_end(ap);
    msg_run_cleanup();
    abort();
}
