/*
 * alias_parse - aliases(5) source lines and destination lists (alias
 * right-hand sides, .forward and :include: files). See alias_parse.h.
 */
#include <string.h>
#include <strings.h>

#include "mail/alias_parse.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

#define ALIAS_INCLUDE_PREFIX ":include:"
#define ALIAS_INCLUDE_PREFIX_LEN (sizeof(ALIAS_INCLUDE_PREFIX) - 1)

/* alias_is_space - white space inside a list (line ends separate items) */
static int alias_is_space(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* alias_dest_type_name - a printable name for a destination type */
const char *alias_dest_type_name(enum alias_dest_type type)
{
    switch (type) {
    case ALIAS_DEST_ADDRESS: return "address";
    case ALIAS_DEST_MAILBOX: return "mailbox";
    case ALIAS_DEST_COMMAND: return "command";
    case ALIAS_DEST_FILE: return "file";
    case ALIAS_DEST_INCLUDE: return "include";
    }
    return "unknown";
}

/* alias_list_free - release a list */
void alias_list_free(ALIAS_LIST *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++)
        myfree(list->dest[i].value);
    myfree(list->dest);
    myfree(list);
}

/* alias_list_add - append one classified destination (value copied) */
static void alias_list_add(ALIAS_LIST *list, enum alias_dest_type type, const char *value,
                           size_t len)
{
    if (list->count == list->cap) {
        list->cap = list->cap ? size_mul(list->cap, 2) : 8;
        list->dest = myrealloc(list->dest, size_mul(list->cap, sizeof(*list->dest)));
    }
    list->dest[list->count].type = type;
    list->dest[list->count].value = mystrndup(value, len);
    list->count++;
}

/* alias_trim - the bounds of text without surrounding white space */
static void alias_trim(const char **start, size_t *len)
{
    while (*len > 0 && alias_is_space((unsigned char)**start)) {
        (*start)++;
        (*len)--;
    }
    while (*len > 0 && alias_is_space((unsigned char)(*start)[*len - 1]))
        (*len)--;
}

/*
 * alias_whole_quote - is the item one quoted string and nothing else? Then
 * its content, with backslash escapes resolved, goes to out verbatim: this
 * is how commands and file names with shell syntax or commas are written.
 */
static int alias_whole_quote(const char *cp, size_t len, VSTR *out)
{
    size_t i;

    if (len < 2 || cp[0] != '"')
        return 0;
    vstr_reset(out);
    for (i = 1; i < len; i++) {
        if (cp[i] == '\\' && i + 1 < len) {
            vstr_addch(out, cp[++i]);
        } else if (cp[i] == '"') {
            break;
        } else {
            vstr_addch(out, cp[i]);
        }
    }
    return i == len - 1; /* the closing quote is the last byte */
}

/*
 * alias_clean_address - RFC 5322 style clean-up of one address item:
 * comments dropped, quotes removed (their text kept), backslash escapes
 * resolved, and the content of the first <...> taken when there is one.
 * An unterminated quote, comment or bracket runs to the end of the item.
 */
static void alias_clean_address(const char *cp, size_t len, VSTR *out)
{
    VSTR *angle = vstr_alloc(len + 1);
    int in_quote = 0, depth = 0, in_angle = 0, seen_angle = 0;

    vstr_reset(out);
    for (size_t i = 0; i < len; i++) {
        int ch = (unsigned char)cp[i];
        VSTR *dst = in_angle ? angle : out;

        if (ch == '\\' && i + 1 < len) {
            if (depth == 0)
                vstr_addch(dst, cp[++i]);
            else
                i++;
            continue;
        }
        if (in_quote) {
            if (ch == '"')
                in_quote = 0;
            else
                vstr_addch(dst, ch);
            continue;
        }
        if (depth > 0) {
            if (ch == '(')
                depth++;
            else if (ch == ')')
                depth--;
            continue;
        }
        switch (ch) {
        case '"': in_quote = 1; break;
        case '(': depth = 1; break;
        case '<':
            if (!seen_angle) {
                in_angle = seen_angle = 1;
                vstr_reset(angle);
            } else {
                vstr_addch(dst, ch);
            }
            break;
        case '>':
            if (in_angle)
                in_angle = 0;
            else
                vstr_addch(dst, ch);
            break;
        default: vstr_addch(dst, ch); break;
        }
    }
    if (seen_angle)
        vstr_ncpy(out, vstr_str(angle), vstr_len(angle));
    vstr_free(angle);
}

/* alias_classify - type and value of one raw item (already trimmed, non-empty) */
static void alias_classify(ALIAS_LIST *list, const char *cp, size_t len, VSTR *buf)
{
    const char *val;
    size_t vlen;

    if (cp[0] == '|') {
        /* Shell text: taken as written, quotes and parentheses included. */
        val = cp + 1;
        vlen = len - 1;
    } else if (cp[0] == '\\') {
        alias_clean_address(cp + 1, len - 1, buf);
        val = vstr_str(buf);
        vlen = vstr_len(buf);
        alias_trim(&val, &vlen);
        if (vlen > 0)
            alias_list_add(list, ALIAS_DEST_MAILBOX, val, vlen);
        return;
    } else if (alias_whole_quote(cp, len, buf)) {
        val = vstr_str(buf);
        vlen = vstr_len(buf);
        if (vlen > 0 && val[0] == '|') {
            val++;
            vlen--;
        } else if (vlen > 0 && val[0] == '\\') {
            val++;
            vlen--;
            alias_trim(&val, &vlen);
            if (vlen > 0)
                alias_list_add(list, ALIAS_DEST_MAILBOX, val, vlen);
            return;
        } else if (!(vlen > 0 && (val[0] == '/' || val[0] == ':'))) {
            /* A quoted local part such as "john doe": an address after all. */
            alias_clean_address(cp, len, buf);
            val = vstr_str(buf);
            vlen = vstr_len(buf);
            alias_trim(&val, &vlen);
            if (vlen > 0)
                alias_list_add(list, ALIAS_DEST_ADDRESS, val, vlen);
            return;
        } else {
            goto path_or_address;
        }
    } else {
        alias_clean_address(cp, len, buf);
        val = vstr_str(buf);
        vlen = vstr_len(buf);
        goto path_or_address;
    }
    alias_trim(&val, &vlen);
    if (vlen > 0)
        alias_list_add(list, ALIAS_DEST_COMMAND, val, vlen);
    return;

path_or_address:
    alias_trim(&val, &vlen);
    if (vlen == 0)
        return;
    if (vlen >= ALIAS_INCLUDE_PREFIX_LEN &&
        strncasecmp(val, ALIAS_INCLUDE_PREFIX, ALIAS_INCLUDE_PREFIX_LEN) == 0) {
        val += ALIAS_INCLUDE_PREFIX_LEN;
        vlen -= ALIAS_INCLUDE_PREFIX_LEN;
        alias_trim(&val, &vlen);
        if (vlen > 0)
            alias_list_add(list, ALIAS_DEST_INCLUDE, val, vlen);
    } else if (val[0] == '/') {
        alias_list_add(list, ALIAS_DEST_FILE, val, vlen);
    } else {
        alias_list_add(list, ALIAS_DEST_ADDRESS, val, vlen);
    }
}

/* alias_list_parse - split and classify a destination list */
ALIAS_LIST *alias_list_parse(const char *text, size_t len, int flags, size_t max_items, VSTR *why)
{
    ALIAS_LIST *list = mycalloc(1, sizeof(*list));
    VSTR *buf = vstr_alloc(128);
    size_t start = 0, i = 0;
    int in_quote = 0, depth = 0, in_angle = 0, bol = 1;

    if (memchr(text, 0, len) != NULL) {
        vstr_sprintf(why, "NUL byte in destination list");
        goto fail;
    }
    for (;;) {
        int end = i >= len;
        int ch = end ? '\n' : (unsigned char)text[i];

        /* A comment line in a file: skip it whole. */
        if (bol && !end && (flags & ALIAS_PARSE_COMMENTS)) {
            size_t j = i;

            while (j < len && alias_is_space((unsigned char)text[j]))
                j++;
            if (j < len && text[j] == '#') {
                while (j < len && text[j] != '\n')
                    j++;
                i = start = j;
                continue;
            }
        }
        bol = 0;
        if (!end && ch == '\\' && i + 1 < len && text[i + 1] != '\n') {
            i += 2;
            continue;
        }
        if (ch == '\n' || (ch == ',' && !in_quote && depth == 0 && !in_angle)) {
            const char *item = text + start;
            size_t ilen = (end ? len : i) - start;

            alias_trim(&item, &ilen);
            if (ilen > ALIAS_ITEM_MAX) {
                vstr_sprintf(why, "destination longer than %d bytes", ALIAS_ITEM_MAX);
                goto fail;
            }
            if (ilen > 0) {
                if (list->count >= max_items) {
                    vstr_sprintf(why, "more than %zu destinations", max_items);
                    goto fail;
                }
                alias_classify(list, item, ilen, buf);
            }
            if (end)
                break;
            /* A line end also ends any quote, comment or bracket left open. */
            if (ch == '\n') {
                in_quote = depth = in_angle = 0;
                bol = 1;
            }
            start = ++i;
            continue;
        }
        if (in_quote) {
            if (ch == '"')
                in_quote = 0;
        } else if (ch == '"') {
            in_quote = 1;
        } else if (ch == '(') {
            depth++;
        } else if (ch == ')' && depth > 0) {
            depth--;
        } else if (ch == '<' && depth == 0) {
            in_angle = 1;
        } else if (ch == '>' && depth == 0) {
            in_angle = 0;
        }
        i++;
    }
    vstr_free(buf);
    return list;

fail:
    vstr_free(buf);
    alias_list_free(list);
    return NULL;
}

/* alias_parse_line - "name: value" into its parts, in place */
int alias_parse_line(char *line, char **name, char **value, const char **why)
{
    char *cp = line;
    char *end;

    while (alias_is_space((unsigned char)*cp) || *cp == '\n')
        cp++;
    if (*cp == '"') {
        /* Quoted name: backslash escapes resolved, in place. */
        char *out = ++cp;

        *name = out;
        while (*cp && *cp != '"') {
            if (*cp == '\\' && cp[1])
                cp++;
            *out++ = *cp++;
        }
        if (*cp != '"') {
            *why = "unterminated quoted alias name";
            return -1;
        }
        cp++;
        *out = 0;
        while (alias_is_space((unsigned char)*cp))
            cp++;
        if (*cp != ':') {
            *why = "need name:value pair";
            return -1;
        }
        end = cp;
    } else {
        *name = cp;
        if ((end = strchr(cp, ':')) == NULL) {
            *why = "need name:value pair";
            return -1;
        }
        *end = 0;
        for (char *t = end; t > *name && alias_is_space((unsigned char)t[-1]);)
            *--t = 0;
    }
    if (**name == 0) {
        *why = "empty alias name";
        return -1;
    }
    if (strlen(*name) > ALIAS_NAME_MAX) {
        *why = "alias name too long";
        return -1;
    }
    cp = end + 1;
    while (alias_is_space((unsigned char)*cp) || *cp == '\n')
        cp++;
    *value = cp;
    end = cp + strlen(cp);
    while (end > cp && (alias_is_space((unsigned char)end[-1]) || end[-1] == '\n'))
        *--end = 0;
    if (**value == 0) {
        *why = "empty alias value";
        return -1;
    }
    return 0;
}
