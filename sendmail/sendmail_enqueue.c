/*
 * sendmail_enqueue - sendmail's default mode: read a message from standard
 * input and queue it through postdrop.
 *
 * Input handling, as Postfix's sendmail does it:
 *   - line ends are LF; a CR before it is removed as sendmail_fix_line_endings
 *     says (always; strict: only when the first line ends in CR LF; never);
 *   - leading "From " lines (mbox separators, also ">From ") are dropped;
 *   - without -i / -oi a line holding only "." ends the input (Sendmail's
 *     convention); with it, only the end of input does;
 *   - a last line without a line end is taken as a whole line;
 *   - lines of any length pass unchanged, in pieces.
 *
 * With -t, recipients come from the To:, Cc: and Bcc: headers (or the
 * Resent- ones when the message has Resent- headers) and are added to those
 * on the command line. cleanup extracts them (CLEANUP_FLAG_EXTRACT_RCPT,
 * passed on by pickup) and removes Bcc: from every copy, so that this is
 * done in one place. sendmail only looks at the header section first when
 * -t is the only source of recipients, to refuse a message that has none
 * with the usual error instead of accepting it and losing it later.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "mail/hdr_addr.h"
#include "mail/hdr_parse.h"
#include "mail/mail_conf.h"
#include "mail/queue_id.h"
#include "mail/user_acl.h"
#include "sendmail.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define SM_HOLD_MAX (1024 * 1024) /* header section looked at before -t gives up checking */

enum sm_cr { SM_CR_STRIP, SM_CR_KEEP, SM_CR_UNDECIDED };

typedef struct SM_MSG {
    SM_OPTS *o;
    SM_DROP *drop;
    enum sm_cr cr;
    int skip_from; /* still looking at leading From_ lines */
    int skipping;  /* inside a From_ line that is being dropped */
    int bol;       /* the next piece starts a line */
    /* The -t check. */
    int holding; /* the header section is kept in held, postdrop not yet started */
    VSTR *held;  /* lines so far, LF-terminated; a last piece without LF continues */
    HDR_PARSE *hp;
    size_t addrs, resent_addrs;
    int resent;
    int hdr_done;
} SM_MSG;

/* sm_count_field - count the recipients a header field names */
static int sm_count_field(void *ctx, const char *text, size_t len, size_t name_len, int flags)
{
    SM_MSG *m = ctx;
    size_t vlen;
    const char *value = hdr_value(text, len, &vlen);
    ARGV *tmp;

    (void)flags;
    if (name_len > 7 && hdr_name_is(text, 7, "resent-"))
        m->resent = 1;
    if (hdr_name_is(text, name_len, "to") || hdr_name_is(text, name_len, "cc") ||
        hdr_name_is(text, name_len, "bcc")) {
        tmp = argv_alloc(4);
        m->addrs += hdr_addr_list(value, vlen, tmp, 1, NULL);
        argv_free(tmp);
    } else if (hdr_name_is(text, name_len, "resent-to") ||
               hdr_name_is(text, name_len, "resent-cc") ||
               hdr_name_is(text, name_len, "resent-bcc")) {
        tmp = argv_alloc(4);
        m->resent_addrs += hdr_addr_list(value, vlen, tmp, 1, NULL);
        argv_free(tmp);
    }
    return 0;
}

static int sm_count_end(void *ctx, int how)
{
    SM_MSG *m = ctx;

    (void)how;
    m->hdr_done = 1;
    return 0;
}

static int sm_count_body(void *ctx, const char *data, size_t len, int eol)
{
    (void)ctx, (void)data, (void)len, (void)eol;
    return 0;
}

static const HDR_PARSE_CB sm_count_cb = {
    .field = sm_count_field,
    .end = sm_count_end,
    .body = sm_count_body,
};

/* sm_write - one piece to postdrop; a write failure ends everything */
static void sm_write(SM_MSG *m, const char *data, size_t len, int eol)
{
    VSTR *why;
    char id[QUEUE_ID_SIZE];
    int status;

    if (maildrop_writer_line(sm_drop_writer(m->drop), data, len, eol) == 0)
        return;
    why = vstr_alloc(100);
    status = sm_drop_finish(m->drop, 1, id, why);
    m->drop = NULL;
    sm_die(status ? status : EX_TEMPFAIL, "%s(%ld): %s", sm_who(m->o), (long)m->o->uid,
           vstr_str(why));
}

/* sm_release - the header section is known: check it, start postdrop, and
   write what was held */
static void sm_release(SM_MSG *m)
{
    VSTR *why = vstr_alloc(100);
    const char *p = vstr_str(m->held), *end = vstr_end(m->held);

    if (m->holding && m->hdr_done && (m->resent ? m->resent_addrs : m->addrs) == 0)
        sm_die(EX_USAGE, "%s(%ld): No recipient addresses found in message header", sm_who(m->o),
               (long)m->o->uid);
    if ((m->drop = sm_drop_start(m->o, why)) == NULL)
        sm_die(EX_UNAVAILABLE, "%s(%ld): %s", sm_who(m->o), (long)m->o->uid, vstr_str(why));
    if (sm_drop_envelope(m->drop, m->o, why) < 0) {
        char id[QUEUE_ID_SIZE];
        VSTR *ignored = vstr_alloc(100);

        (void)sm_drop_finish(m->drop, 0, id, ignored);
        sm_die(EX_DATAERR, "%s(%ld): %s", sm_who(m->o), (long)m->o->uid, vstr_str(why));
    }
    m->holding = 0;
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));

        if (lf) {
            sm_write(m, p, (size_t)(lf - p), 1);
            p = lf + 1;
        } else {
            sm_write(m, p, (size_t)(end - p), 0);
            p = end;
        }
    }
    vstr_free(why);
}

/* sm_hold - keep a piece while the header section is looked at */
static void sm_hold(SM_MSG *m, const char *data, size_t len, int eol)
{
    vstr_ncat(m->held, data, len);
    if (eol)
        vstr_addch(m->held, '\n');
    if (hdr_parse_feed(m->hp, data, len) != 0 || (eol && hdr_parse_feed(m->hp, "\n", 1) != 0))
        m->hdr_done = 1; /* a NUL or too many fields: cleanup will say so */
    if (m->hdr_done)
        sm_release(m);
    else if (vstr_len(m->held) > SM_HOLD_MAX) {
        /* A header section this large: leave the judgement to cleanup. */
        m->hdr_done = 0;
        sm_release(m);
    }
}

/* sm_line_piece - one piece of input; 1 when the input ends here ("." line) */
static int sm_line_piece(SM_MSG *m, const char *data, size_t len, int end)
{
    int eol = end != SM_IN_MORE;

    if (m->cr == SM_CR_UNDECIDED && eol)
        m->cr = len > 0 && data[len - 1] == '\r' ? SM_CR_STRIP : SM_CR_KEEP;
    if (eol && m->cr == SM_CR_STRIP && len > 0 && data[len - 1] == '\r')
        len--;
    if (m->bol && m->skip_from) {
        size_t gt = 0;

        while (gt < len && data[gt] == '>')
            gt++;
        if (len - gt >= 5 && memcmp(data + gt, "From ", 5) == 0)
            m->skipping = 1;
        else
            m->skip_from = 0;
    }
    if (m->skipping) {
        if (eol)
            m->skipping = 0;
        m->bol = eol;
        return 0;
    }
    if (m->o->dot_ends && m->bol && eol && len == 1 && data[0] == '.')
        return 1;
    m->bol = eol;
    if (m->holding)
        sm_hold(m, data, len, eol);
    else
        sm_write(m, data, len, eol);
    return 0;
}

/* sm_cr_mode - sendmail_fix_line_endings */
static enum sm_cr sm_cr_mode(void)
{
    const char *v = var_str("sendmail_fix_line_endings");

    if (strcmp(v, "always") == 0)
        return SM_CR_STRIP;
    if (strcmp(v, "strict") == 0)
        return SM_CR_UNDECIDED;
    if (strcmp(v, "never") == 0)
        return SM_CR_KEEP;
    sm_die(EX_CONFIG, "invalid sendmail_fix_line_endings value: %s", v);
}

_Noreturn void sm_enqueue(SM_OPTS *o)
{
    SM_MSG m;
    SM_IN *in;
    const char *data;
    ssize_t len;
    int end, status;
    char id[QUEUE_ID_SIZE];
    VSTR *why = vstr_alloc(100);

    if (!o->extract && o->rcpt->argc == 0)
        sm_die(EX_USAGE, "Recipient addresses must be specified on the command line or via the "
                         "-t option");
    memset(&m, 0, sizeof(m));
    m.o = o;
    m.cr = sm_cr_mode();
    m.skip_from = 1;
    m.bol = 1;
    m.held = vstr_alloc(1024);
    if (o->extract && o->rcpt->argc == 0) {
        m.holding = 1;
        m.hp = hdr_parse_create((size_t)var_int("header_size_limit"),
                                (size_t)var_int("header_count_limit"), &sm_count_cb, &m);
    } else {
        sm_release(&m);
    }

    in = sm_in_open(0, -1);
    while ((len = sm_in_piece(in, &data, MAILDROP_CHUNK_MAX, &end)) >= 0)
        if (sm_line_piece(&m, data, (size_t)len, end))
            break;
    if (len == SM_IN_ERROR) {
        if (m.drop)
            (void)sm_drop_finish(m.drop, 0, id, why);
        sm_die(EX_DATAERR, "%s(%ld): error reading input: %m", sm_who(o), (long)o->uid);
    }
    if (m.holding) {
        (void)hdr_parse_end(m.hp);
        m.hdr_done = 1;
        sm_release(&m);
    }
    status = sm_drop_finish(m.drop, 1, id, why);
    if (status != 0)
        sm_die(status, "%s(%ld): %s", sm_who(o), (long)o->uid, vstr_str(why));
    if (o->report)
        fprintf(stderr, "sendmail: message queued as %s\n", id);
    if (msg_verbose)
        msg_info("%s(%ld): queued as %s", sm_who(o), (long)o->uid, id);
    sm_in_free(in);
    if (m.hp)
        hdr_parse_free(m.hp);
    vstr_free(m.held);
    vstr_free(why);
    exit(EX_OK);
}
