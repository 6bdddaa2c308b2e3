/*
 * master - internal interfaces of the supervisor: configuration, services,
 * listeners, processes, wakeups.
 *
 * A MASTER_SERV is one master.cf entry at run time: its listening
 * descriptors, its status pipe, its processes and its timers. A MASTER_PROC
 * is one child. On reload, services whose name and type are unchanged hand
 * their listeners to their successors; every old process is "retired": it
 * stays in the process table, without a service, until it exits.
 */
#ifndef POSTERN_MASTER_H
#define POSTERN_MASTER_H

#include <sys/types.h>
#include <time.h>

#include "mail/master_cf.h"
#include "mail/master_proto.h"
#include "util/argv.h"
#include "util/vstr.h"

struct event;
struct event_base;

#define MASTER_LISTEN_BACKLOG 128  /* pending connections per listening socket */
#define MASTER_STOP_WAIT 5         /* seconds children get to exit on SIGTERM */
#define MASTER_LIMIT_WARN_DELAY 60 /* seconds between "process limit" warnings */

enum master_type { MASTER_TYPE_INET, MASTER_TYPE_UNIX, MASTER_TYPE_FIFO };

/* What master itself takes from main.cf. */
typedef struct MASTER_CONF {
    char *config_dir;
    char *queue_dir;
    char *daemon_dir;
    char *mail_owner;
    char *setgid_group;
    char *pid_dir;
    char *inet_interfaces;
    char *inet_protocols;
    long throttle_time; /* service_throttle_time */
    uid_t owner_uid;    /* mail_owner, or the invoking user (private instance) */
    gid_t owner_gid;
    ARGV *env; /* the children's environment */
} MASTER_CONF;

typedef struct MASTER_PROC {
    pid_t pid;
    struct MASTER_SERV *serv; /* NULL once retired */
    char *path;               /* for messages after the service is gone */
    int avail;                /* last report: can take a client */
    int ready;                /* has reported at least once */
    long use_count;           /* clients taken */
    struct MASTER_PROC *next;
} MASTER_PROC;

typedef struct MASTER_SERV {
    struct MASTER *master;
    char *name; /* column 1 */
    enum master_type type;
    const char *type_name;
    int private_, unpriv, chroot;
    int wakeup, wakeup_if_used, maxproc;
    int lineno;
    char *command;   /* column 8, first word */
    char *path;      /* the program to run */
    ARGV *args;      /* column 8, the rest */
    ARGV *overrides; /* -o name=value */
    char *sock_path; /* unix and fifo: the file in private/ or public/ */
    int listen_fds[MASTER_LISTEN_MAX];
    int listen_count;
    struct event *listen_ev[MASTER_LISTEN_MAX];
    int listening;    /* master watches the listeners for demand */
    int status_fd[2]; /* [0] master reads, [1] handed to children */
    struct event *status_ev;
    struct event *throttle_ev;
    struct event *wakeup_ev;
    int throttled;
    int ever_used; /* a process was started at least once */
    int total_proc, avail_proc;
    time_t limit_warned;
    MASTER_PROC *procs;
    struct MASTER_SERV *next;
} MASTER_SERV;

typedef struct MASTER {
    MASTER_CONF conf;
    MASTER_SERV *services;
    MASTER_PROC *retired;
    struct event_base *base;
    int stopping;
    int verbose;
    int pid_fd;
    char *pid_path;
} MASTER;

/* master_conf.c */
int master_conf_load(MASTER_CONF *conf, const char *config_dir, VSTR *why);
void master_conf_free(MASTER_CONF *conf);
int master_services_build(MASTER *m, const MASTER_CONF *conf, const MASTER_CF *cf,
                          MASTER_SERV **result, VSTR *why);
void master_serv_free(MASTER_SERV *serv);
int master_serv_same_listener(const MASTER_SERV *a, const MASTER_SERV *b);

/* master_listen.c */
int master_listen_open(MASTER *m, MASTER_SERV *serv, VSTR *why);
void master_listen_close(MASTER_SERV *serv);

/* master_spawn.c */
void master_serv_start(MASTER *m, MASTER_SERV *serv);
void master_spawn(MASTER *m, MASTER_SERV *serv);
void master_serv_retire(MASTER *m, MASTER_SERV *serv);
void master_avail_update(MASTER_SERV *serv);
void master_reap(MASTER *m);
void master_kill_all(MASTER *m, int sig);
int master_proc_count(const MASTER *m);

/* master_wakeup.c */
void master_wakeup_start(MASTER *m, MASTER_SERV *serv);

/* master_reload.c */
void master_reload(MASTER *m);

#endif
