/*
 * sendmail_input - standard input as pieces of lines, in bounded memory.
 *
 * Lines may be of any length: they come out in pieces of at most the
 * caller's maximum, so no input can make sendmail hold more than one
 * buffer. A piece that does not end its line never ends in CR, so the CR
 * of a CR LF pair is always seen together with its LF and can be removed
 * (sendmail_fix_line_endings) even when a long line is split.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "sendmail.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"

#define SM_IN_BUF_SIZE 65536 /* read buffer; more than any piece */

struct SM_IN {
    int fd;
    int timeout_ms;
    char *buf;
    size_t pos, end;
    int eof;
};

SM_IN *sm_in_open(int fd, int timeout_ms)
{
    SM_IN *in = mycalloc(1, sizeof(*in));

    in->fd = fd;
    in->timeout_ms = timeout_ms;
    in->buf = mymalloc(SM_IN_BUF_SIZE);
    return in;
}

void sm_in_free(SM_IN *in)
{
    if (in == NULL)
        return;
    myfree(in->buf);
    myfree(in);
}

/* sm_in_fill - more input behind what is buffered; 0, or an SM_IN_* error */
static int sm_in_fill(SM_IN *in)
{
    ssize_t n;

    if (in->pos > 0) {
        memmove(in->buf, in->buf + in->pos, in->end - in->pos);
        in->end -= in->pos;
        in->pos = 0;
    }
    if (in->timeout_ms >= 0)
        n = timed_read(in->fd, in->buf + in->end, SM_IN_BUF_SIZE - in->end, in->timeout_ms);
    else
        do
            n = read(in->fd, in->buf + in->end, SM_IN_BUF_SIZE - in->end);
        while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == ETIMEDOUT ? SM_IN_TIMEOUT : SM_IN_ERROR;
    if (n == 0)
        in->eof = 1;
    in->end += (size_t)n;
    return 0;
}

ssize_t sm_in_piece(SM_IN *in, const char **data, size_t max, int *end)
{
    int err;

    if (max < 2 || max >= SM_IN_BUF_SIZE)
        max = SM_IN_BUF_SIZE - 1;
    for (;;) {
        char *start = in->buf + in->pos;
        size_t avail = in->end - in->pos;
        size_t window = avail < max + 1 ? avail : max + 1;
        char *lf = memchr(start, '\n', window);

        if (lf) {
            size_t len = (size_t)(lf - start);

            *data = start;
            *end = SM_IN_LF;
            in->pos += len + 1;
            return (ssize_t)len;
        }
        if (avail > max) {
            /* A long line: a piece of it, a trailing CR held back. */
            size_t len = start[max - 1] == '\r' ? max - 1 : max;

            *data = start;
            *end = SM_IN_MORE;
            in->pos += len;
            return (ssize_t)len;
        }
        if (in->eof) {
            if (avail == 0)
                return SM_IN_EOF;
            *data = start;
            *end = SM_IN_EOF_NOLF;
            in->pos += avail;
            return (ssize_t)avail;
        }
        if ((err = sm_in_fill(in)) != 0)
            return err;
    }
}
