/*
 * cleanup_state - one message transaction's state, the error that decides
 * its final reply, and the reject log line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "util/msg.h"
#include "util/mymalloc.h"

/* cleanup_state_new - an empty transaction on the client's stream */
CLEANUP_STATE *cleanup_state_new(ATTR_STREAM *stream)
{
    CLEANUP_STATE *st = mycalloc(1, sizeof(*st));

    st->stream = stream;
    st->phase = CLEANUP_PH_NEW;
    st->err_reason = vstr_alloc(100);
    st->buf = vstr_alloc(256);
    st->cr_buf = vstr_alloc(256);
    return st;
}

/* cleanup_state_free - release; an uncommitted queue file is removed */
void cleanup_state_free(CLEANUP_STATE *st)
{
    if (st == NULL)
        return;
    qfile_writer_free(st->writer);
    hdr_parse_free(st->parser);
    cleanup_dup_free(st->dups);
    if (st->extracted)
        argv_free(st->extracted);
    if (st->resent_extracted)
        argv_free(st->resent_extracted);
    myfree(st->origin);
    myfree(st->sender);
    myfree(st->first_rcpt);
    myfree(st->uid);
    myfree(st->full_name);
    myfree(st->client_name);
    myfree(st->client_addr);
    myfree(st->helo_name);
    myfree(st->protocol_name);
    vstr_free(st->err_reason);
    vstr_free(st->buf);
    vstr_free(st->cr_buf);
    myfree(st);
}

/* cleanup_fail - remember the first error and give up the queue file */
void cleanup_fail(CLEANUP_STATE *st, unsigned status, const char *dsn, const char *fmt, ...)
{
    va_list ap;

    if (st->err_status == 0) {
        st->err_status = status;
        snprintf(st->err_dsn, sizeof(st->err_dsn), "%s", dsn);
        vstr_reset(st->err_reason);
        va_start(ap, fmt);
        vstr_vsprintf_append(st->err_reason, fmt, ap);
        va_end(ap);
    }
    /* Nothing more goes into the file; freeing the writer removes it now
       rather than after the client has sent the rest of a large message. */
    qfile_writer_free(st->writer);
    st->writer = NULL;
}

/* cleanup_write_error - a writer failure: system errors are temporary */
void cleanup_write_error(CLEANUP_STATE *st, int err)
{
    if (st->writer == NULL)
        return;
    msg_warn("%s: queue file write error: %s: %s", st->queue_id, qfile_strerror(err),
             qfile_writer_why(st->writer));
    cleanup_fail(st, 451, "4.3.0", "Error: queue file write error");
}

/* cleanup_origin - "name[addr]", or the origin when the client sent no address */
const char *cleanup_origin(CLEANUP_STATE *st, VSTR *buf)
{
    if (st->client_addr)
        vstr_sprintf(buf, "%s[%s]", st->client_name ? st->client_name : "unknown", st->client_addr);
    else
        vstr_sprintf(buf, "%s", st->origin && *st->origin ? st->origin : "local");
    return vstr_str(buf);
}

/* cleanup_log_reject - Postfix's shape for content rejections */
void cleanup_log_reject(CLEANUP_STATE *st, const char *what)
{
    VSTR *line = vstr_alloc(256);
    VSTR *origin = vstr_alloc(64);

    vstr_sprintf(line, "%s: reject: %s from %s; from=<%s> to=<%s>", st->queue_id, what,
                 cleanup_origin(st, origin), st->sender ? st->sender : "",
                 st->first_rcpt ? st->first_rcpt : "");
    if (st->protocol_name)
        vstr_sprintf_append(line, " proto=%s", st->protocol_name);
    if (st->helo_name)
        vstr_sprintf_append(line, " helo=<%s>", st->helo_name);
    vstr_sprintf_append(line, ": %s %s", st->err_dsn, vstr_str(st->err_reason));
    msg_info("%s", vstr_str(line));
    vstr_free(origin);
    vstr_free(line);
}
