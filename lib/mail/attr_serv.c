/*
 * attr_serv - the server side of the attribute protocol for services that
 * handle one connection at a time: read each request as a whole message,
 * hand it to the service's handler, which sends the reply.
 *
 * Event-driven services use attr_frame / attr_msg_decode / attr_encode from
 * their event loop instead.
 */
#include <errno.h>

#include "mail/attr.h"
#include "util/msg.h"

int attr_serv_loop(ATTR_STREAM *s, int flags, ATTR_SERV_FN fn, void *context)
{
    int handled = 0;

    for (;;) {
        ATTR_MSG *req = attr_msg_read(s, flags);

        if (req == NULL)
            /* A client that closes between requests is the normal end. */
            return errno == ENODATA ? handled : -1;
        int r = fn(s, req, context);

        attr_msg_free(req);
        if (r < 0)
            return -1;
        handled++;
        if (r == ATTR_SERV_CLOSE)
            return handled;
        if (r != ATTR_SERV_CONTINUE)
            msg_panic("attr_serv_loop: handler returned %d", r);
    }
}
