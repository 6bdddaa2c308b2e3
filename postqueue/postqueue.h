/*
 * postqueue - internal interfaces between postqueue.c (options, privileges,
 * configuration) and postqueue_list.c (listing) / postqueue_flush.c.
 */
#ifndef POSTERN_POSTQUEUE_H
#define POSTERN_POSTQUEUE_H

#include <sysexits.h>

#include "mail/mailq_print.h"
#include "util/msg.h"

/* pq_exit_status - the status a fatal error exits with (set by PQ_FATAL) */
extern int pq_exit_status;

/* PQ_FATAL - end with a message and a sysexits.h status */
#define PQ_FATAL(status, ...) (pq_exit_status = (status), msg_fatal_status((status), __VA_ARGS__))

/* pq_connect - connect to public/SERVICE with the set-group-id privilege
   raised for the connect only; the fd, or -1 with errno */
int pq_connect(const char *service, int timeout_ms);

/* pq_drop_privileges - give up the set-group-id privilege for good */
void pq_drop_privileges(void);

/* pq_allowed - is the invoking user in the list param (root and mail_owner
   always are); fatal with the refusal message what ("view", "flush") */
void pq_check_user(const char *param, const char *what);

/* pq_timeout_ms - a parameter of type time in milliseconds, bounded */
int pq_timeout_ms(const char *param);

/* pq_list - postqueue -p (MAILQ_FORMAT_TEXT) or -j (MAILQ_FORMAT_JSON) */
void pq_list(int format, const char *config_dir);

/* pq_flush_queue - postqueue -f */
void pq_flush_queue(void);
/* pq_flush_site - postqueue -s site */
void pq_flush_site(const char *site);
/* pq_flush_id - postqueue -i queue_id */
void pq_flush_id(const char *id);

/* pq_site_ok - a host name or an address literal in [] (RFC 5321 4.1.3) */
int pq_site_ok(const char *site);

#endif
