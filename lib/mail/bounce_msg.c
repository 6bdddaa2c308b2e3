/*
 * bounce_msg - format delivery status notifications (RFC 3464, RFC 6522;
 * RFC 3461 for ENVID and ORCPT; RFC 3834 Auto-Submitted; RFC 6533 for
 * notices about SMTPUTF8 mail). See bounce_msg.h.
 *
 * Layout (Postfix's, so that people and scripts that know Postfix notices
 * find the same parts in the same places):
 *
 *   header: From, Subject, To, Auto-Submitted, Message-Id, Date, MIME
 *   part 1  text/plain          "Notification": boilerplate, one line per
 *                               recipient "<addr> (expanded from <orig>): reason"
 *   part 2  message/delivery-status  "Delivery report": per-message fields,
 *                               then one block per recipient
 *   part 3  message/rfc822 or text/rfc822-headers (when asked for)
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mail/bounce_msg.h"
#include "mail/mail_date.h"
#include "util/msg.h"
#include "util/vstr.h"

#define BM_BOUNDARY_TRIES 100 /* boundary variants tried against the original */

/* bm_clean - value into out, printable: control characters (and 8-bit
   octets unless allow8) become '?', at most BOUNCE_MSG_FIELD_MAX bytes */
static void bm_clean(VSTR *out, const char *value, int allow8)
{
    size_t n = 0;

    vstr_reset(out);
    for (const unsigned char *p = (const unsigned char *)(value ? value : ""); *p; p++) {
        if (n++ >= BOUNCE_MSG_FIELD_MAX)
            break;
        if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !allow8))
            vstr_addch(out, '?');
        else
            vstr_addch(out, *p);
    }
}

/* bm_fold - append text folded: break at blanks before BOUNCE_MSG_FOLD
   columns (continuation lines start with the blank, RFC 5322 2.2.3), and cut
   words that would not fit in BOUNCE_MSG_LINE_MAX; col is the column text
   starts at. Ends with a newline. */
static void bm_fold(VSTR *out, const char *text, size_t col)
{
    const char *p = text;

    while (*p) {
        const char *sp = strchr(p, ' ');
        size_t word = sp ? (size_t)(sp - p) : strlen(p);

        /* A word that fits nowhere: cut it at the hard limit. */
        while (col + word > BOUNCE_MSG_LINE_MAX) {
            size_t take = BOUNCE_MSG_LINE_MAX - col;

            vstr_ncat(out, p, take);
            vstr_cat(out, "\n ");
            p += take;
            word -= take;
            col = 1;
        }
        vstr_ncat(out, p, word);
        col += word;
        p += word;
        if (*p != ' ')
            break;
        /* Runs of blanks count as one; a blank at the end is dropped. */
        while (*p == ' ')
            p++;
        if (*p == 0)
            break;
        sp = strchr(p, ' ');
        word = sp ? (size_t)(sp - p) : strlen(p);
        if (col + 1 + word > BOUNCE_MSG_FOLD && col > 1) {
            vstr_cat(out, "\n ");
            col = 1;
        } else {
            vstr_addch(out, ' ');
            col++;
        }
    }
    vstr_addch(out, '\n');
}

/* bm_field - "Name: value" (cleaned, folded) */
static void bm_field(VSTR *out, const char *name, const char *value, int allow8)
{
    VSTR *v = vstr_alloc(128);

    bm_clean(v, value, allow8);
    vstr_cat(out, name);
    vstr_cat(out, ": ");
    bm_fold(out, vstr_str(v), strlen(name) + 2);
    vstr_free(v);
}

/* bm_typed - "Name: type; value" with value cleaned; type defaults to def */
static void bm_typed(VSTR *out, const char *name, const char *type, const char *value, int allow8)
{
    VSTR *both = vstr_alloc(128);

    vstr_sprintf(both, "%s; %s", type, value);
    bm_field(out, name, vstr_str(both), allow8);
    vstr_free(both);
}

/* bm_text_line - one line of the human-readable part; a line longer than
   BOUNCE_MSG_LINE_MAX is continued on the next line */
static void bm_text_line(VSTR *out, const char *line)
{
    size_t len = strlen(line);

    while (len > BOUNCE_MSG_LINE_MAX) {
        vstr_ncat(out, line, BOUNCE_MSG_LINE_MAX);
        vstr_addch(out, '\n');
        line += BOUNCE_MSG_LINE_MAX;
        len -= BOUNCE_MSG_LINE_MAX;
    }
    vstr_cat(out, line);
    vstr_addch(out, '\n');
}

/* bounce_msg_subject - Postfix's subjects */
const char *bounce_msg_subject(enum bounce_msg_kind kind, int postmaster)
{
    switch (kind) {
    case BOUNCE_MSG_DELAY:
        return postmaster ? "Postmaster Warning: Delayed Mail"
                          : "Delayed Mail (still being retried)";
    case BOUNCE_MSG_SUCCESS: return "Successful Mail Delivery Report";
    case BOUNCE_MSG_FAILURE:
    default:
        return postmaster ? "Postmaster Copy: Undelivered Mail"
                          : "Undelivered Mail Returned to Sender";
    }
}

/* bounce_msg_header_len - the header section of a message, with its end */
size_t bounce_msg_header_len(const char *text, size_t len)
{
    size_t pos = 0;

    /* The header section ends at the first empty line (RFC 5322 2.1). */
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t line = nl ? (size_t)(nl - (text + pos)) : len - pos;

        if (line == 0 || (line == 1 && text[pos] == '\r'))
            return nl ? pos + line + 1 : len;
        if (nl == NULL)
            return len;
        pos += line + 1;
    }
    return len;
}

/* bm_span - "N unit(s)" for a duration, in the largest unit that divides it
   (Postfix's template says hours and days; short test settings stay exact) */
static void bm_span(VSTR *out, long seconds, const char *unit_pref)
{
    static const struct {
        const char *name;
        long secs;
    } units[] = {{"day", 86400}, {"hour", 3600}, {"minute", 60}, {"second", 1}};
    size_t i;

    if (seconds < 0)
        seconds = 0;
    /* Prefer the template's unit when it fits exactly. */
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(units[i].name, unit_pref) == 0 && seconds % units[i].secs == 0 &&
            seconds >= units[i].secs)
            break;
    if (i == sizeof(units) / sizeof(units[0]))
        for (i = 0; i < sizeof(units) / sizeof(units[0]) - 1; i++)
            if (seconds >= units[i].secs && seconds % units[i].secs == 0)
                break;
    vstr_sprintf_append(out, "%ld %s(s)", seconds / units[i].secs, units[i].name);
}

/* bm_boilerplate - Postfix's wording for the sender's notice */
static void bm_boilerplate(VSTR *out, const BOUNCE_MSG *m)
{
    vstr_sprintf_append(out, "This is the mail system at host %s.\n\n", m->myhostname);
    if (m->postmaster) {
        vstr_cat(out, m->kind == BOUNCE_MSG_DELAY ? "Mail for the recipients below is delayed.\n\n"
                                                  : "Mail for the recipients below could not "
                                                    "be delivered.\n\n");
        return;
    }
    switch (m->kind) {
    case BOUNCE_MSG_FAILURE:
        vstr_cat(out, "I'm sorry to have to inform you that your message could not\n"
                      "be delivered to one or more recipients. It's attached below.\n\n");
        break;
    case BOUNCE_MSG_DELAY:
        vstr_cat(out, "####################################################################\n"
                      "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
                      "####################################################################\n\n");
        vstr_cat(out, "Your message could not be delivered for more than ");
        bm_span(out, m->delay_warning_time, "hour");
        vstr_cat(out, ".\nIt will be retried until it is ");
        bm_span(out, m->max_lifetime, "day");
        vstr_cat(out, " old.\n\n");
        break;
    case BOUNCE_MSG_SUCCESS:
        vstr_cat(out, "Your message was successfully delivered to the destination(s)\n"
                      "listed below. If the message was delivered to mailbox you will\n"
                      "receive no further notifications. Otherwise you may still receive\n"
                      "notifications of mail delivery errors from other systems.\n\n"
                      "                   The mail system\n\n");
        return;
    }
    vstr_cat(out, "For further assistance, please send mail to postmaster.\n\n"
                  "If you do so, please include this problem report. You can\n"
                  "delete your own text from the attached returned message.\n\n"
                  "                   The mail system\n\n");
}

/* bm_rcpt_text - "<addr> (expanded from <orig>): reason" */
static void bm_rcpt_text(VSTR *out, const BOUNCE_MSG *m, const BOUNCE_MSG_RCPT *r)
{
    VSTR *line = vstr_alloc(128), *v = vstr_alloc(64);

    bm_clean(v, r->address, m->utf8);
    vstr_sprintf(line, "<%s>", vstr_str(v));
    if (r->orig && *r->orig && strcmp(r->orig, r->address) != 0) {
        bm_clean(v, r->orig, m->utf8);
        vstr_sprintf_append(line, " (expanded from <%s>)", vstr_str(v));
    }
    vstr_cat(line, ": ");
    if (m->kind == BOUNCE_MSG_SUCCESS && r->relay && *r->relay && strcmp(r->relay, "none") != 0 &&
        strcmp(r->relay, "local") != 0) {
        bm_clean(v, r->relay, 0);
        vstr_sprintf_append(line, "delivery via %s: ", vstr_str(v));
    }
    bm_clean(v, r->reason, m->utf8);
    vstr_cat(line, vstr_str(v));
    bm_text_line(out, vstr_str(line));
    vstr_free(line);
    vstr_free(v);
}

/* bm_addr_type - "rfc822", or "utf-8" for an address with 8-bit octets (RFC 6533) */
static const char *bm_addr_type(const char *addr)
{
    for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
        if (*p >= 0x80)
            return "utf-8";
    return "rfc822";
}

/* bm_dsn_rcpt - one per-recipient block of the delivery-status part */
static void bm_dsn_rcpt(VSTR *out, const BOUNCE_MSG *m, const BOUNCE_MSG_RCPT *r, VSTR *date)
{
    const char *semi;
    int u = m->utf8;

    vstr_addch(out, '\n');
    bm_typed(out, "Final-Recipient", bm_addr_type(r->address), r->address, u);
    /* RFC 3464 2.3.1: the ORCPT as given; else the address before aliasing. */
    if (r->orcpt && (semi = strchr(r->orcpt, ';')) != NULL && semi > r->orcpt && semi[1]) {
        VSTR *type = vstr_alloc(16);

        vstr_ncpy(type, r->orcpt, (size_t)(semi - r->orcpt));
        bm_typed(out, "Original-Recipient", vstr_str(type), semi + 1, u);
        vstr_free(type);
    } else if (r->orig && *r->orig && strcmp(r->orig, r->address) != 0) {
        bm_typed(out, "Original-Recipient", bm_addr_type(r->orig), r->orig, u);
    }
    bm_field(out, "Action", r->action, 0);
    bm_field(out, "Status", r->status, 0);
    if (r->mtype && *r->mtype && r->mname && *r->mname)
        bm_typed(out, "Remote-MTA", r->mtype, r->mname, u);
    if (r->dtype && *r->dtype && r->dtext && *r->dtext)
        bm_typed(out, "Diagnostic-Code", r->dtype, r->dtext, u);
    else if (r->reason && *r->reason)
        bm_typed(out, "Diagnostic-Code", "X-Postern", r->reason, u);
    if (m->kind == BOUNCE_MSG_DELAY && m->retry_until > 0)
        bm_field(out, "Will-Retry-Until", mail_date(m->retry_until, date), 0);
}

/* bm_boundary - a boundary that does not occur in the original */
static void bm_boundary(VSTR *out, const BOUNCE_MSG *m)
{
    VSTR *probe = vstr_alloc(64);

    vstr_sprintf(out, "%s.%lld/%s", m->notice_id, (long long)m->now, m->myhostname);
    for (int i = 1; i <= BM_BOUNDARY_TRIES && m->original && m->ret != BOUNCE_MSG_RET_NONE; i++) {
        vstr_sprintf(probe, "--%s", vstr_str(out));
        if (memmem(m->original, m->original_len, vstr_str(probe), vstr_len(probe)) == NULL)
            break;
        vstr_sprintf(out, "%s.%lld.%d/%s", m->notice_id, (long long)m->now, i, m->myhostname);
    }
    vstr_free(probe);
}

/* bounce_msg_build - the whole notice */
void bounce_msg_build(const BOUNCE_MSG *m, VSTR *out)
{
    VSTR *boundary = vstr_alloc(64), *date = vstr_alloc(MAIL_DATE_MAX), *v = vstr_alloc(64);
    int eight = m->eightbit && m->ret != BOUNCE_MSG_RET_NONE;
    struct tm tm;
    char stamp[32];
    time_t now = m->now;

    vstr_reset(out);
    bm_boundary(boundary, m);
    if (gmtime_r(&now, &tm) == NULL || strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm) == 0)
        snprintf(stamp, sizeof(stamp), "%lld", (long long)now);

    /* Header section. */
    bm_clean(v, m->from, m->utf8);
    vstr_sprintf_append(out, "From: Mail Delivery System <%s>\n", vstr_str(v));
    bm_field(out, "Subject", bounce_msg_subject(m->kind, m->postmaster), 0);
    bm_clean(v, m->to, m->utf8);
    vstr_sprintf_append(out, "To: <%s>\n", vstr_str(v));
    vstr_cat(out, "Auto-Submitted: auto-replied\n");
    vstr_sprintf_append(out, "Message-Id: <%s.%s@%s>\n", stamp, m->notice_id, m->myhostname);
    vstr_sprintf_append(out, "Date: %s\n", mail_date(m->now, date));
    vstr_cat(out, "MIME-Version: 1.0\n");
    vstr_sprintf_append(out,
                        "Content-Type: multipart/report; report-type=%s;\n"
                        "\tboundary=\"%s\"\n",
                        m->utf8 ? "global-delivery-status" : "delivery-status", vstr_str(boundary));
    vstr_sprintf_append(out, "Content-Transfer-Encoding: %s\n\n",
                        eight || m->utf8 ? "8bit" : "7bit");
    vstr_cat(out, "This is a MIME-encapsulated message.\n\n");

    /* Part 1: for people. */
    vstr_sprintf_append(out,
                        "--%s\nContent-Description: Notification\n"
                        "Content-Type: text/plain; charset=%s\n\n",
                        vstr_str(boundary), m->utf8 ? "utf-8" : "us-ascii");
    bm_boilerplate(out, m);
    for (size_t i = 0; i < m->rcpt_count; i++)
        bm_rcpt_text(out, m, m->rcpt + i);
    vstr_addch(out, '\n');

    /* Part 2: for programs (RFC 3464 section 2). */
    vstr_sprintf_append(out, "--%s\nContent-Description: %s\nContent-Type: message/%s\n\n",
                        vstr_str(boundary),
                        m->kind == BOUNCE_MSG_DELAY ? "Delivery error report" : "Delivery report",
                        m->utf8 ? "global-delivery-status" : "delivery-status");
    bm_typed(out, "Reporting-MTA", "dns", m->myhostname, 0);
    if (m->envid && *m->envid)
        bm_field(out, "Original-Envelope-Id", m->envid, 0);
    bm_field(out, "X-Postern-Queue-ID", m->queue_id, 0);
    bm_typed(out, "X-Postern-Sender", bm_addr_type(m->sender), m->sender, m->utf8);
    bm_field(out, "Arrival-Date", mail_date(m->arrival.tv_sec, date), 0);
    for (size_t i = 0; i < m->rcpt_count; i++)
        bm_dsn_rcpt(out, m, m->rcpt + i, date);
    vstr_addch(out, '\n');

    /* Part 3: the original, or its headers. */
    if (m->ret != BOUNCE_MSG_RET_NONE && m->original != NULL) {
        int full = m->ret == BOUNCE_MSG_RET_FULL;
        const char *what = m->kind == BOUNCE_MSG_SUCCESS ? "Delivered Message"
                           : m->kind == BOUNCE_MSG_DELAY ? "Delayed Message"
                                                         : "Undelivered Message";

        vstr_sprintf_append(out, "--%s\nContent-Description: %s%s\nContent-Type: %s\n",
                            vstr_str(boundary), what, full ? "" : " Headers",
                            full ? (m->utf8 ? "message/global" : "message/rfc822")
                                 : (m->utf8 ? "message/global-headers" : "text/rfc822-headers"));
        if (eight)
            vstr_cat(out, "Content-Transfer-Encoding: 8bit\n");
        vstr_addch(out, '\n');
        vstr_ncat(out, m->original, m->original_len);
        if (m->original_len > 0 && m->original[m->original_len - 1] != '\n')
            vstr_addch(out, '\n');
        vstr_addch(out, '\n');
    }
    vstr_sprintf_append(out, "--%s--\n", vstr_str(boundary));
    vstr_free(boundary);
    vstr_free(date);
    vstr_free(v);
}
