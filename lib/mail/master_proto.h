/*
 * master_proto - the contract between master and the services it starts.
 *
 * File descriptors. A service process starts with
 *   0, 1, 2   standard input, output, error (master's, or /dev/null)
 *   3         MASTER_STATUS_FD: write end of the service's status pipe
 *   4 .. 4+N-1  MASTER_LISTEN_FD..: the service's N listening sockets (or its
 *             fifo), N given by "-s N"
 * and nothing else: every other descriptor is closed before exec.
 *
 * Arguments. master runs
 *   COMMAND -n SERVICE -t TYPE [-u] [-c] [-v] -s N [-o name=value]... [ARGS...]
 * where SERVICE and TYPE are master.cf columns 1 and 2, -u means "run as
 * mail_owner" (unpriv = y), -c means "chroot to queue_directory" (chroot =
 * y), -o are the master.cf overrides and ARGS the rest of the command
 * column. MAIL_CONFIG in the environment names the configuration directory.
 *
 * Status. A process writes MASTER_STATUS records to fd 3: AVAIL once it is
 * ready to serve (after its privileges are dropped) and again whenever it
 * can take a client, TAKEN while it cannot. Records are smaller than
 * PIPE_BUF, so writes from the processes sharing one pipe never interleave.
 * When master closes its end (reload, removal of the service, master gone)
 * the write end reports an error: the process stops accepting, finishes
 * the sessions it has, and exits.
 *
 * Wakeup. Every `wakeup` seconds master writes MASTER_TRIGGER_WAKEUP to the
 * service's UNIX socket (one connection, one byte) or fifo.
 */
#ifndef POSTERN_MASTER_PROTO_H
#define POSTERN_MASTER_PROTO_H

#include <stdint.h>

#define MASTER_STATUS_FD 3
#define MASTER_LISTEN_FD 4
#define MASTER_LISTEN_MAX 64 /* listening descriptors per service at most */

#define MASTER_STAT_TAKEN 0 /* busy: cannot accept another client now */
#define MASTER_STAT_AVAIL 1 /* ready for a client */

typedef struct MASTER_STATUS {
    int32_t pid;    /* the reporting process */
    int32_t status; /* MASTER_STAT_* */
} MASTER_STATUS;

#define MASTER_TRIGGER_WAKEUP 'W' /* "look for work" */

#endif
