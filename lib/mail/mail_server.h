/*
 * mail_server - the skeleton every Postern service runs from main().
 *
 * mail_server_main() does what each daemon would otherwise repeat: it
 * parses the arguments master passes (see master_proto.h), reads main.cf
 * from $MAIL_CONFIG, applies the master.cf -o overrides, opens logging,
 * changes to queue_directory, closes every inherited descriptor it does not
 * own, lets the daemon open what it needs as root (pre_init), then drops
 * privileges for good (priv.h) BEFORE it reads any input, and only then
 * accepts clients on the listening descriptors master handed down.
 *
 * Three flavours:
 *   MAIL_SERVER_MULTI    many sessions per process on one libevent loop
 *                        (smtpd). multi_service gets each accepted socket,
 *                        non-blocking, and owns it from then on; it calls
 *                        mail_server_session_done() once when that session
 *                        is over (after closing or freeing the socket).
 *   MAIL_SERVER_SINGLE   one client at a time (delivery agents).
 *                        single_service gets a blocking socket and returns
 *                        when the client is done; the skeleton closes it.
 *                        Between clients the process waits in a private
 *                        epoll set (EPOLLEXCLUSIVE: one idle process woken
 *                        per connection); only timers of the event base are
 *                        served on time then (docs/master.md).
 *   MAIL_SERVER_TRIGGER  wakeup requests (qmgr, pickup): trigger_service
 *                        gets the bytes of one request (at most
 *                        MAIL_SERVER_TRIGGER_MAX) from a UNIX socket or fifo.
 *                        Waiting connections are taken in batches and their
 *                        bytes read from the event loop, so a slow client
 *                        holds up neither the loop nor the others.
 *
 * Process life: a process exits after max_idle seconds without clients and
 * after serving max_use clients (unless MAIL_SERVER_LONG_RUNNING), and when
 * master closes its status pipe (reload, service removed, master gone): it
 * then stops accepting, lets open sessions finish and exits. A watchdog
 * (alarm) kills a process whose loop is stuck for daemon_timeout seconds.
 * It reports "available" and "busy" to master so that master starts another
 * process, up to maxproc, when all are busy.
 */
#ifndef POSTERN_MAIL_SERVER_H
#define POSTERN_MAIL_SERVER_H

#include <stddef.h>

struct event_base;

#define MAIL_SERVER_TRIGGER_MAX 1024 /* bytes of one trigger request at most */
#define MAIL_SERVER_TRIGGER_WAIT_MS 1000 /* a whole trigger request must arrive within this */

enum mail_server_kind {
    MAIL_SERVER_MULTI,
    MAIL_SERVER_SINGLE,
    MAIL_SERVER_TRIGGER,
};

/* Flags for MAIL_SERVER_SPEC.flags. */
#define MAIL_SERVER_LONG_RUNNING (1 << 0) /* ignore max_idle and max_use (qmgr) */

/* What a daemon's callbacks are told; owned by the skeleton, valid until exit. */
typedef struct MAIL_SERVER_ARGS {
    const char *service;     /* master.cf service name (-n) */
    const char *type;        /* master.cf type (-t): inet, unix, fifo */
    int argc;                /* arguments after the options */
    char **argv;             /* NULL-terminated */
    struct event_base *base; /* the process's event loop */
    void *context;           /* MAIL_SERVER_SPEC.context */
} MAIL_SERVER_ARGS;

typedef struct MAIL_SERVER_SPEC {
    enum mail_server_kind kind;
    int flags;        /* MAIL_SERVER_* flags */
    int max_sessions; /* MULTI: open sessions per process at most; 0 = no limit */
    void *context;    /* handed back in MAIL_SERVER_ARGS */
    /* Optional, as root before the chroot and privilege drop: open private
       keys, tables outside the chroot. Must not read client input. */
    void (*pre_init)(const MAIL_SERVER_ARGS *args);
    /* Optional, after the privilege drop, before the first client. */
    void (*post_init)(const MAIL_SERVER_ARGS *args);
    /* One of these, by kind. */
    void (*multi_service)(const MAIL_SERVER_ARGS *args, int fd);
    void (*single_service)(const MAIL_SERVER_ARGS *args, int fd);
    void (*trigger_service)(const MAIL_SERVER_ARGS *args, const char *buf, size_t len);
    /* Optional, just before a normal exit (idle, max_use, drained). */
    void (*pre_exit)(const MAIL_SERVER_ARGS *args);
} MAIL_SERVER_SPEC;

/* mail_server_main - run the service; never returns. argv as master passes it. */
_Noreturn void mail_server_main(int argc, char **argv, const MAIL_SERVER_SPEC *spec);

/* mail_server_session_done - a MULTI session has ended; call once per session */
void mail_server_session_done(void);

/* mail_server_sessions - MULTI sessions open now */
int mail_server_sessions(void);

/* mail_server_draining - 1 once the process has stopped accepting and is
   finishing its sessions (long sessions may want to end early) */
int mail_server_draining(void);

#endif
