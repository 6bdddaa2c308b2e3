/*
 * smtp_resp - assembling SMTP replies on the client side, their enhanced
 * status codes and EHLO keywords (see smtp_resp.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/smtp_resp.h"
#include "util/argv.h"
#include "util/msg.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

/* smtp_resp_alloc - an empty reply */
SMTP_RESP *smtp_resp_alloc(void)
{
    SMTP_RESP *r = mycalloc(1, sizeof(*r));

    r->text = vstr_alloc(128);
    r->lines = argv_alloc(4);
    r->why = vstr_alloc(64);
    return r;
}

/* smtp_resp_free - release */
void smtp_resp_free(SMTP_RESP *r)
{
    if (r == NULL)
        return;
    vstr_free(r->text);
    argv_free(r->lines);
    vstr_free(r->why);
    myfree(r);
}

/* smtp_resp_reset - before the next reply */
void smtp_resp_reset(SMTP_RESP *r)
{
    r->code = 0;
    r->dsn[0] = 0;
    r->has_dsn = 0;
    r->octets = 0;
    vstr_reset(r->text);
    vstr_reset(r->why);
    argv_truncate(r->lines, 0);
}

/* smtp_dsn_num - 1..max digits, value within limit; length or 0 */
static size_t smtp_dsn_num(const char *s, size_t max_digits)
{
    size_t n = 0;

    while (n < max_digits && isdigit((unsigned char)s[n]))
        n++;
    return n;
}

/* smtp_dsn_parse - an enhanced status code at the start of text */
size_t smtp_dsn_parse(const char *text, char *dsn, size_t size)
{
    size_t a, b, len;

    if ((text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.')
        return 0;
    if ((a = smtp_dsn_num(text + 2, 3)) == 0 || text[2 + a] != '.')
        return 0;
    if ((b = smtp_dsn_num(text + 3 + a, 3)) == 0)
        return 0;
    len = 3 + a + b;
    if (text[len] != 0 && text[len] != ' ')
        return 0;
    if (len >= size)
        return 0;
    memcpy(dsn, text, len);
    dsn[len] = 0;
    return len;
}

/* smtp_resp_clean - printable ASCII copy of a peer's line (at most max) */
static void smtp_resp_clean(VSTR *out, const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];

        vstr_addch(out, ch >= 0x20 && ch < 0x7f ? (char)ch : '?');
    }
}

/* smtp_resp_line - add one line */
int smtp_resp_line(SMTP_RESP *r, const char *line, size_t len)
{
    VSTR *clean;
    int code;
    char sep;

    if (len > SMTP_RESP_LINE_MAX)
        len = SMTP_RESP_LINE_MAX;
    if (r->lines->argc >= SMTP_RESP_LINES_MAX) {
        vstr_sprintf(r->why, "reply has more than %d lines", SMTP_RESP_LINES_MAX);
        return SMTP_RESP_ERROR;
    }
    if (r->octets + len > SMTP_RESP_TEXT_MAX) {
        vstr_sprintf(r->why, "reply is longer than %d octets", SMTP_RESP_TEXT_MAX);
        return SMTP_RESP_ERROR;
    }
    clean = vstr_alloc(len + 1);
    smtp_resp_clean(clean, line, len);
    /* RFC 5321 4.2: Reply-code [ SP textstring ] CRLF, or "-" for more. */
    sep = len > 3 ? line[3] : ' ';
    if (len < 3 || !isdigit((unsigned char)line[0]) || line[0] < '2' || line[0] > '5' ||
        !isdigit((unsigned char)line[1]) || !isdigit((unsigned char)line[2]) ||
        (sep != ' ' && sep != '-')) {
        vstr_sprintf(r->why, "malformed reply: %.100s", vstr_str(clean));
        vstr_free(clean);
        return SMTP_RESP_ERROR;
    }
    code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (r->lines->argc > 0 && code != r->code) {
        vstr_sprintf(r->why, "reply code changed within a multi-line reply: %.100s",
                     vstr_str(clean));
        vstr_free(clean);
        return SMTP_RESP_ERROR;
    }
    r->code = code;
    r->octets += len;
    if (vstr_len(r->text) > 0)
        vstr_addch(r->text, ' ');
    vstr_ncat(r->text, vstr_str(clean), vstr_len(clean));
    argv_add(r->lines, len > 4 ? vstr_str(clean) + 4 : "", (char *)NULL);
    vstr_free(clean);
    if (r->lines->argc == 1) {
        const char *rest = r->lines->argv[0];

        if (smtp_dsn_parse(rest, r->dsn, sizeof(r->dsn)) > 0 && r->dsn[0] == line[0]) {
            r->has_dsn = 1;
        } else {
            r->dsn[0] = line[0];
            memcpy(r->dsn + 1, ".0.0", 5);
            r->has_dsn = 0;
        }
    }
    return sep == '-' ? SMTP_RESP_MORE : SMTP_RESP_DONE;
}

/* smtp_resp_set - a complete reply made up locally */
void smtp_resp_set(SMTP_RESP *r, int code, const char *dsn, const char *text)
{
    smtp_resp_reset(r);
    r->code = code;
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
    r->has_dsn = 1;
    vstr_sprintf(r->text, "%d %s %s", code, dsn, text);
    argv_add(r->lines, text, (char *)NULL);
}

/* smtp_ehlo_discarded - is keyword in the discard list */
static int smtp_ehlo_discarded(const ARGV *discard, const char *kw, size_t len)
{
    if (discard == NULL)
        return 0;
    for (size_t i = 0; i < discard->argc; i++)
        if (strlen(discard->argv[i]) == len && strncasecmp(discard->argv[i], kw, len) == 0)
            return 1;
    return 0;
}

/* smtp_ehlo_auth - remember AUTH mechanisms (upper case, deduplicated) */
static void smtp_ehlo_auth(SMTP_EHLO *ehlo, const char *args)
{
    size_t used = strlen(ehlo->auth);

    while (*args) {
        size_t n;

        while (*args == ' ' || *args == '=')
            args++;
        for (n = 0; args[n] && args[n] != ' '; n++)
            ;
        if (n == 0)
            break;
        /* RFC 4422 3.1: mechanism names are at most 20 characters. */
        if (n <= 20 && used + n + 2 < sizeof(ehlo->auth)) {
            char name[21];

            for (size_t i = 0; i < n; i++)
                name[i] = (char)toupper((unsigned char)args[i]);
            name[n] = 0;
            /* Skip duplicates (AUTH and AUTH= often repeat the list). */
            int dup = 0;
            for (const char *p = ehlo->auth; (p = strstr(p, name)) != NULL; p += n) {
                if ((p == ehlo->auth || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) {
                    dup = 1;
                    break;
                }
            }
            if (!dup) {
                if (used > 0)
                    ehlo->auth[used++] = ' ';
                memcpy(ehlo->auth + used, name, n + 1);
                used += n;
            }
        }
        args += n;
    }
}

/* smtp_resp_ehlo - keywords of an EHLO reply */
void smtp_resp_ehlo(const SMTP_RESP *r, const ARGV *discard, SMTP_EHLO *ehlo)
{
    static const struct {
        const char *name;
        unsigned flag;
    } table[] = {
        {"PIPELINING", SMTP_FEATURE_PIPELINING},
        {"SIZE", SMTP_FEATURE_SIZE},
        {"8BITMIME", SMTP_FEATURE_8BITMIME},
        {"SMTPUTF8", SMTP_FEATURE_SMTPUTF8},
        {"DSN", SMTP_FEATURE_DSN},
        {"STARTTLS", SMTP_FEATURE_STARTTLS},
        {"AUTH", SMTP_FEATURE_AUTH},
        {"ENHANCEDSTATUSCODES", SMTP_FEATURE_ENHANCED},
        {"CHUNKING", SMTP_FEATURE_CHUNKING},
    };

    memset(ehlo, 0, sizeof(*ehlo));
    for (size_t i = 1; i < r->lines->argc; i++) {
        const char *line = r->lines->argv[i];
        size_t kwlen = strcspn(line, " =");
        const char *args = line + kwlen;

        while (*args == ' ' || *args == '=')
            args++;
        if (kwlen == 0 || smtp_ehlo_discarded(discard, line, kwlen))
            continue;
        for (size_t t = 0; t < sizeof(table) / sizeof(table[0]); t++) {
            if (strlen(table[t].name) != kwlen || strncasecmp(table[t].name, line, kwlen) != 0)
                continue;
            ehlo->features |= table[t].flag;
            if (table[t].flag == SMTP_FEATURE_SIZE) {
                char *end;
                unsigned long long n;

                /* RFC 1870: SIZE without a number, or 0, means no fixed limit. */
                if (isdigit((unsigned char)*args)) {
                    n = strtoull(args, &end, 10);
                    if (*end == 0 || *end == ' ')
                        ehlo->size = n;
                }
            } else if (table[t].flag == SMTP_FEATURE_AUTH) {
                smtp_ehlo_auth(ehlo, args);
            }
        }
    }
}
