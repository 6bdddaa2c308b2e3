/*
 * smtp_cmd - SMTP command line syntax and reply formatting (RFC 5321).
 * See smtp_cmd.h for what is checked and tolerated.
 */
#include <string.h>
#include <strings.h>

#include "mail/smtp_cmd.h"

static const struct {
    const char *name;
    enum smtp_cmd_verb verb;
} smtp_cmd_verbs[] = {
    {"HELO", SMTP_CMD_HELO},         {"EHLO", SMTP_CMD_EHLO},         {"MAIL", SMTP_CMD_MAIL},
    {"RCPT", SMTP_CMD_RCPT},         {"DATA", SMTP_CMD_DATA},         {"BDAT", SMTP_CMD_BDAT},
    {"RSET", SMTP_CMD_RSET},         {"NOOP", SMTP_CMD_NOOP},         {"QUIT", SMTP_CMD_QUIT},
    {"VRFY", SMTP_CMD_VRFY},         {"EXPN", SMTP_CMD_EXPN},         {"HELP", SMTP_CMD_HELP},
    {"STARTTLS", SMTP_CMD_STARTTLS}, {"AUTH", SMTP_CMD_AUTH},         {"ETRN", SMTP_CMD_ETRN},
    {"XCLIENT", SMTP_CMD_XCLIENT},   {"XFORWARD", SMTP_CMD_XFORWARD},
};

#define SMTP_CMD_NVERBS (sizeof(smtp_cmd_verbs) / sizeof(smtp_cmd_verbs[0]))

/* smtp_cmd_blank - the blanks we tolerate between words */
static int smtp_cmd_blank(int ch)
{
    return ch == ' ' || ch == '\t';
}

static int smtp_cmd_digit(int ch)
{
    return ch >= '0' && ch <= '9';
}

/* smtp_cmd_line_check - report NUL, bare CR, bare LF, length and terminator */
int smtp_cmd_line_check(const char *line, size_t len)
{
    int flags = 0;

    if (len > SMTP_CMD_LINE_MAX)
        flags |= SMTP_CMD_LINE_TOO_LONG;
    if (len == 0 || line[len - 1] != '\n')
        flags |= SMTP_CMD_LINE_NO_EOL;
    for (size_t i = 0; i < len; i++) {
        if (line[i] == 0)
            flags |= SMTP_CMD_LINE_NUL;
        else if (line[i] == '\r' && (i + 1 >= len || line[i + 1] != '\n'))
            flags |= SMTP_CMD_LINE_BARE_CR;
        else if (line[i] == '\n' && (i == 0 || line[i - 1] != '\r'))
            flags |= SMTP_CMD_LINE_BARE_LF;
    }
    return flags;
}

/* smtp_cmd_line_strip - drop one CRLF or LF terminator */
size_t smtp_cmd_line_strip(const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\n') {
        len--;
        if (len > 0 && line[len - 1] == '\r')
            len--;
    }
    return len;
}

/* smtp_cmd_verb_lookup - table lookup, any case, exact length */
enum smtp_cmd_verb smtp_cmd_verb_lookup(const char *name, size_t len)
{
    if (len == 0 || len > SMTP_CMD_VERB_MAX)
        return SMTP_CMD_UNKNOWN;
    for (size_t i = 0; i < SMTP_CMD_NVERBS; i++) {
        if (strlen(smtp_cmd_verbs[i].name) == len &&
            strncasecmp(smtp_cmd_verbs[i].name, name, len) == 0)
            return smtp_cmd_verbs[i].verb;
    }
    return SMTP_CMD_UNKNOWN;
}

/* smtp_cmd_verb_name - canonical spelling of a verb */
const char *smtp_cmd_verb_name(enum smtp_cmd_verb verb)
{
    for (size_t i = 0; i < SMTP_CMD_NVERBS; i++)
        if (smtp_cmd_verbs[i].verb == verb)
            return smtp_cmd_verbs[i].name;
    return "UNKNOWN";
}

/* smtp_cmd_split - verb, argument and whether the spacing was sloppy */
int smtp_cmd_split(const char *line, size_t len, SMTP_CMD *cmd)
{
    size_t i = 0;

    memset(cmd, 0, sizeof(*cmd));
    cmd->arg = line + len;
    while (i < len && smtp_cmd_blank(line[i]))
        i++;
    if (i == len)
        return -1;
    cmd->sloppy = (i > 0);
    cmd->name = line + i;
    while (i < len && !smtp_cmd_blank(line[i]))
        i++;
    cmd->name_len = (size_t)(line + i - cmd->name);
    cmd->verb = smtp_cmd_verb_lookup(cmd->name, cmd->name_len);

    size_t gap = i;
    size_t end = len;

    while (i < len && smtp_cmd_blank(line[i]))
        i++;
    while (end > i && smtp_cmd_blank(line[end - 1]))
        end--;
    /* Exactly one SP before a non-empty argument, nothing after it. */
    if (end < len || (i == len && gap < len) || i - gap > 1 || (i > gap && line[gap] != ' '))
        cmd->sloppy = 1;
    cmd->arg = line + i;
    cmd->arg_len = end - i;
    return 0;
}

/* smtp_cmd_path_arg - skip "FROM:" or "TO:" and optional blanks */
int smtp_cmd_path_arg(const char *arg, size_t len, const char *prefix, const char **path,
                      size_t *path_len)
{
    size_t plen = strlen(prefix);
    size_t i;

    if (len < plen || strncasecmp(arg, prefix, plen) != 0)
        return -1;
    for (i = plen; i < len && smtp_cmd_blank(arg[i]); i++)
        /* void */;
    *path = arg + i;
    *path_len = len - i;
    return 0;
}

/* smtp_cmd_bdat_parse - RFC 3030: chunk-size = 1*DIGIT, end-marker = "LAST" */
int smtp_cmd_bdat_parse(const char *arg, size_t len, uint64_t *size, int *last)
{
    uint64_t val = 0;
    int overflow = 0;
    size_t i = 0;

    if (len == 0 || !smtp_cmd_digit(arg[0]))
        return SMTP_CMD_BDAT_SYNTAX;
    for (; i < len && smtp_cmd_digit(arg[i]); i++) {
        unsigned digit = (unsigned)(arg[i] - '0');

        if (val > (UINT64_MAX - digit) / 10)
            overflow = 1;
        else
            val = val * 10 + digit;
    }
    if (i == len) {
        *last = 0;
    } else if (len - i == 5 && arg[i] == ' ' && strncasecmp(arg + i + 1, "LAST", 4) == 0) {
        *last = 1;
    } else {
        return SMTP_CMD_BDAT_SYNTAX;
    }
    if (overflow)
        return SMTP_CMD_BDAT_RANGE;
    *size = val;
    return SMTP_CMD_BDAT_OK;
}

/* smtp_cmd_dsn_part - 1*3DIGIT at *pp, advancing; 0 or -1 */
static int smtp_cmd_dsn_part(const char **pp)
{
    const char *p = *pp;
    int n = 0;

    while (n < 4 && smtp_cmd_digit(p[n]))
        n++;
    if (n < 1 || n > 3)
        return -1;
    *pp = p + n;
    return 0;
}

/* smtp_cmd_dsn_valid - RFC 3463 class.subject.detail; class must match the code */
int smtp_cmd_dsn_valid(int code, const char *dsn)
{
    const char *p = dsn + 1;

    if (dsn[0] != '2' && dsn[0] != '4' && dsn[0] != '5')
        return 0;
    if (dsn[0] - '0' != code / 100)
        return 0;
    if (*p++ != '.' || smtp_cmd_dsn_part(&p) < 0)
        return 0;
    if (*p++ != '.' || smtp_cmd_dsn_part(&p) < 0)
        return 0;
    return *p == 0;
}

/* smtp_cmd_reply_line - one "CODE-DSN text" CRLF line; remembers where it starts */
static int smtp_cmd_reply_line(VSTR *out, int code, const char *dsn, const char *text, size_t len,
                               size_t *last)
{
    int ret;

    *last = vstr_len(out);
    ret = vstr_sprintf_append(out, "%03d-", code);
    if (ret == 0 && dsn)
        ret = vstr_sprintf_append(out, len ? "%s " : "%s", dsn);
    for (size_t i = 0; ret == 0 && i < len; i++) {
        unsigned char ch = (unsigned char)text[i];

        /* Never let the text end the line or the reply: no CR, LF, controls. */
        if (ch == '\t')
            ch = ' ';
        else if (ch < 0x20 || ch == 0x7f)
            ch = '?';
        ret = vstr_addch(out, ch);
    }
    if (ret == 0)
        ret = vstr_cat(out, "\r\n");
    return ret;
}

/* smtp_cmd_reply_wrap - one logical line, wrapped at a space where possible */
static int smtp_cmd_reply_wrap(VSTR *out, int code, const char *dsn, const char *text, size_t len,
                               size_t room, size_t *last)
{
    do {
        size_t take = len;
        size_t skip = 0;

        if (take > room) {
            size_t cut = room;

            while (cut > 0 && text[cut] != ' ')
                cut--;
            take = cut ? cut : room;
            skip = cut ? 1 : 0;
        }
        if (smtp_cmd_reply_line(out, code, dsn, text, take, last) < 0)
            return -1;
        text += take + skip;
        len -= take + skip;
    } while (len > 0);
    return 0;
}

/* smtp_cmd_reply_format - complete multi-line reply with continuation marks */
int smtp_cmd_reply_format(VSTR *out, int code, const char *dsn, const char *text, size_t width)
{
    size_t last = 0;
    size_t prefix;
    size_t room;
    const char *p = text ? text : "";

    /* RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39 */
    if (code < 200 || code > 559 || (code / 10) % 10 > 5)
        return -1;
    if (dsn && *dsn == 0)
        dsn = NULL;
    if (dsn && !smtp_cmd_dsn_valid(code, dsn))
        return -1;
    if (width == 0 || width > SMTP_CMD_REPLY_LINE_MAX - 2)
        width = SMTP_CMD_REPLY_LINE_MAX - 2;
    prefix = 4 + (dsn ? strlen(dsn) + 1 : 0);
    room = width > prefix ? width - prefix : 1;

    vstr_reset(out);
    do {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        size_t len = (nl && n > 0 && p[n - 1] == '\r') ? n - 1 : n;

        if (smtp_cmd_reply_wrap(out, code, dsn, p, len, room, &last) < 0)
            return -1;
        p += nl ? n + 1 : n;
    } while (*p);

    /* The last line says "CODE " instead of "CODE-"; with no text, just "CODE". */
    if (vstr_len(out) == last + 6) {
        vstr_truncate(out, last + 3);
        return vstr_cat(out, "\r\n");
    }
    vstr_str(out)[last + 3] = ' ';
    return 0;
}

/* smtp_cmd_reply - format a suggested reply */
int smtp_cmd_reply(VSTR *out, const SMTP_REPLY *reply)
{
    return smtp_cmd_reply_format(out, reply->code, reply->dsn, reply->text, 0);
}
