/*
 * mail_trigger - the client side of trigger services (qmgr, pickup;
 * docs/protocols.md section 2): connect to the service's UNIX socket,
 * write the requests, close. There is no reply.
 *
 * A request is a NUL-terminated string ("W", "F", "S" SITE, "I" ID); several
 * travel in one connection. The whole write is at most
 * MAIL_SERVER_TRIGGER_MAX bytes, which is all the service reads.
 */
#ifndef POSTERN_MAIL_TRIGGER_H
#define POSTERN_MAIL_TRIGGER_H

/* mail_trigger - send the requests (NULL-terminated list of strings, each
   sent with its terminating NUL) to the socket at path within timeout_ms.
   0, or -1 with errno: ENOENT or ECONNREFUSED when nothing listens (the mail
   system is down), EACCES, ETIMEDOUT, EMSGSIZE when the requests are too
   long, or another system error. */
int mail_trigger(const char *path, const char *const *requests, int timeout_ms);

/* mail_trigger_send - write the requests to an fd already connected to a
   trigger service (the caller connects and closes it); 0 or -1 with errno */
int mail_trigger_send(int fd, const char *const *requests, int timeout_ms);

/* mail_trigger_one - mail_trigger with one request */
int mail_trigger_one(const char *path, const char *request, int timeout_ms);

#endif
