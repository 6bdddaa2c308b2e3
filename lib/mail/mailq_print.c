/*
 * mailq_print - queue listings in Postfix's mailq text and JSON lines
 * formats (mailq_print.h).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mail/mail_queue_dirs.h"
#include "mail/mailq_print.h"
#include "util/msg.h"
#include "util/mymalloc.h"

/* Postfix's layout for long queue ids (showq_compat): id, size, arrival
   time (asctime() without the year), address. */
#define MAILQ_STRING_FORMAT "%-17s %8s %-19s %s\n"
#define MAILQ_TIME_WIDTH 19
#define MAILQ_HEAD_ID "----Queue ID-----"
#define MAILQ_HEAD_SIZE "--Size--"
#define MAILQ_HEAD_TIME "---Arrival Time----"
#define MAILQ_HEAD_ADDR "--Sender/Recipient------"
#define MAILQ_NO_REASON "reason unavailable"

struct MAILQ_PRINT {
    int format;
    unsigned long long count; /* queue files begun */
    unsigned long long bytes; /* their message sizes */
    int open;                 /* a queue file awaits "recipients" messages */
    VSTR *id;                 /* that queue file */
    VSTR *saved_reason;       /* text: the last reason shown for it */
    size_t json_rcpts;        /* JSON: recipients written for it */
    VSTR *tmp;
    VSTR *clean; /* text made printable again on this side */
};

MAILQ_PRINT *mailq_print_new(int format)
{
    MAILQ_PRINT *p = mycalloc(1, sizeof(*p));

    if (format != MAILQ_FORMAT_TEXT && format != MAILQ_FORMAT_JSON)
        msg_panic("mailq_print_new: bad format %d", format);
    p->format = format;
    p->id = vstr_alloc(32);
    p->saved_reason = vstr_alloc(100);
    p->tmp = vstr_alloc(100);
    p->clean = vstr_alloc(100);
    return p;
}

void mailq_print_free(MAILQ_PRINT *p)
{
    if (p == NULL)
        return;
    vstr_free(p->id);
    vstr_free(p->saved_reason);
    vstr_free(p->tmp);
    vstr_free(p->clean);
    myfree(p);
}

unsigned long long mailq_print_count(const MAILQ_PRINT *p)
{
    return p->count;
}

/* mailq_json_quote - RFC 8259 section 7 string contents */
void mailq_json_quote(VSTR *out, const char *text)
{
    VSTR *clean = vstr_alloc(100);

    /* Valid UTF-8 only: a JSON reader may refuse anything else. */
    showq_printable(clean, text);
    for (const unsigned char *cp = (const unsigned char *)vstr_str(clean); *cp; cp++) {
        switch (*cp) {
        case '"': vstr_cat(out, "\\\""); break;
        case '\\': vstr_cat(out, "\\\\"); break;
        case '\b': vstr_cat(out, "\\b"); break;
        case '\f': vstr_cat(out, "\\f"); break;
        case '\n': vstr_cat(out, "\\n"); break;
        case '\r': vstr_cat(out, "\\r"); break;
        case '\t': vstr_cat(out, "\\t"); break;
        default:
            if (*cp < 0x20 || *cp == 0x7F)
                vstr_sprintf_append(out, "\\u%04X", *cp);
            else
                vstr_addch(out, *cp);
        }
    }
    vstr_free(clean);
}

/* mailq_active_queue - queues whose mail Postfix would mark '*' (active) */
static int mailq_active_queue(const char *queue)
{
    return strcmp(queue, MAIL_QUEUE_IMMEDIATE) == 0 || strcmp(queue, MAIL_QUEUE_BULK) == 0 ||
           strcmp(queue, "active") == 0;
}

/* mailq_text_time - asctime() form without the year: "Tue Jan  2 03:04:05" */
static void mailq_text_time(unsigned long long when, char *buf, size_t size)
{
    time_t t = (time_t)when;
    struct tm tm;

    if (localtime_r(&t, &tm) == NULL || strftime(buf, size, "%a %b %e %H:%M:%S", &tm) == 0)
        snprintf(buf, size, "%s", "(unknown time)");
}

/* mailq_clean - text made printable (the server did it; a terminal gets no
   chance to act on what a broken or foreign server sends) */
static const char *mailq_clean(MAILQ_PRINT *p, const char *text)
{
    showq_printable(p->clean, text);
    return vstr_str(p->clean);
}

/* mailq_text_rcpts - recipients with their reasons, Postfix style */
static void mailq_text_rcpts(MAILQ_PRINT *p, const SHOWQ_MSG *m, VSTR *out)
{
    for (size_t i = 0; i < m->rcpt_count; i++) {
        const char *why = mailq_clean(p, m->reason[i]);

        if (strcmp(vstr_str(p->saved_reason), why) != 0) {
            const char *show = *why ? why : MAILQ_NO_REASON;
            int pad = MAILQ_REASON_COLUMN - (int)strlen(show);

            vstr_sprintf_append(out, "%*s(%s)\n", pad > 0 ? pad : 0, "", show);
            vstr_cpy(p->saved_reason, why);
        }
        vstr_sprintf_append(out, MAILQ_STRING_FORMAT, "", "", "", mailq_clean(p, m->rcpt[i]));
    }
}

/* mailq_text_message - the first lines of a queue file's entry */
static void mailq_text_message(MAILQ_PRINT *p, const SHOWQ_MSG *m, VSTR *out)
{
    char when[64];

    if (p->count == 0)
        vstr_sprintf_append(out, MAILQ_STRING_FORMAT, MAILQ_HEAD_ID, MAILQ_HEAD_SIZE,
                            MAILQ_HEAD_TIME, MAILQ_HEAD_ADDR);
    else
        vstr_addch(out, '\n');
    vstr_cpy(p->tmp, mailq_clean(p, m->queue_id));
    if (mailq_active_queue(m->queue_name))
        vstr_addch(p->tmp, '*');
    else if (strcmp(m->queue_name, MAIL_QUEUE_HOLD) == 0)
        vstr_addch(p->tmp, '!');
    if (m->forced_expire)
        vstr_addch(p->tmp, '#');
    mailq_text_time(m->arrival_time, when, sizeof(when));
    vstr_sprintf_append(out, "%-17s %8llu %*.*s %s\n", vstr_str(p->tmp), m->message_size,
                        MAILQ_TIME_WIDTH, MAILQ_TIME_WIDTH, when, mailq_clean(p, m->sender));
    vstr_reset(p->saved_reason);
}

/* mailq_json_rcpts - recipient objects */
static void mailq_json_rcpts(MAILQ_PRINT *p, const SHOWQ_MSG *m, VSTR *out)
{
    for (size_t i = 0; i < m->rcpt_count; i++) {
        if (p->json_rcpts++ > 0)
            vstr_cat(out, ", ");
        vstr_cat(out, "{\"address\": \"");
        mailq_json_quote(out, m->rcpt[i]);
        vstr_addch(out, '"');
        if (*m->reason[i]) {
            vstr_cat(out, ", \"delay_reason\": \"");
            mailq_json_quote(out, m->reason[i]);
            vstr_addch(out, '"');
        }
        vstr_addch(out, '}');
    }
}

/* mailq_json_message - the start of a queue file's object */
static void mailq_json_message(MAILQ_PRINT *p, const SHOWQ_MSG *m, VSTR *out)
{
    vstr_cat(out, "{\"queue_name\": \"");
    mailq_json_quote(out, m->queue_name);
    vstr_cat(out, "\", \"queue_id\": \"");
    mailq_json_quote(out, m->queue_id);
    vstr_sprintf_append(out, "\", \"arrival_time\": %llu, \"message_size\": %llu, ",
                        m->arrival_time, m->message_size);
    vstr_sprintf_append(out, "\"forced_expire\": %s, \"sender\": \"",
                        m->forced_expire ? "true" : "false");
    mailq_json_quote(out, m->sender);
    vstr_cat(out, "\", \"recipients\": [");
    p->json_rcpts = 0;
}

/* mailq_print_msg - output for one protocol message */
int mailq_print_msg(MAILQ_PRINT *p, const SHOWQ_MSG *m, VSTR *out, VSTR *why)
{
    switch (m->kind) {
    case SHOWQ_MSG_MESSAGE:
        if (p->open) {
            vstr_sprintf(why, "malformed showq server response: queue file %s was not finished",
                         vstr_str(p->id));
            return -1;
        }
        if (p->format == MAILQ_FORMAT_TEXT)
            mailq_text_message(p, m, out);
        else
            mailq_json_message(p, m, out);
        vstr_cpy(p->id, m->queue_id);
        p->count++;
        p->bytes += m->message_size;
        break;
    case SHOWQ_MSG_RECIPIENTS:
        if (!p->open || strcmp(vstr_str(p->id), m->queue_id) != 0) {
            vstr_cpy(why, "malformed showq server response: recipients out of sequence");
            return -1;
        }
        break;
    default: vstr_cpy(why, "malformed showq server response: unexpected end of listing"); return -1;
    }
    if (p->format == MAILQ_FORMAT_TEXT)
        mailq_text_rcpts(p, m, out);
    else
        mailq_json_rcpts(p, m, out);
    p->open = m->more;
    if (!p->open && p->format == MAILQ_FORMAT_JSON)
        vstr_cat(out, "]}\n");
    return 0;
}

/* mailq_print_finish - the trailer */
int mailq_print_finish(MAILQ_PRINT *p, VSTR *out, VSTR *why)
{
    if (p->open) {
        vstr_sprintf(why, "malformed showq server response: queue file %s was not finished",
                     vstr_str(p->id));
        return -1;
    }
    if (p->format == MAILQ_FORMAT_JSON)
        return 0;
    if (p->count == 0)
        vstr_cat(out, "Mail queue is empty\n");
    else
        vstr_sprintf_append(out, "\n-- %llu Kbytes in %llu Request%s.\n", p->bytes / 1024, p->count,
                            p->count == 1 ? "" : "s");
    return 0;
}
