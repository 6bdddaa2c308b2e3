/*
 * alias_parse - the aliases(5) syntax: "name: value, value" source lines
 * (postalias) and the destination lists found on the right-hand side of an
 * alias, in ~/.forward files and in :include: files (local).
 *
 * A destination list is split at commas and line ends that stand outside
 * double quotes, parentheses and angle brackets, as in RFC 5322 address
 * lists, so that "|/usr/bin/prog -a, -b" and "/var/log/some, file" can be
 * written by quoting them. Each item is then classified the way Postfix's
 * local(8) reads it:
 *
 *   |command          ALIAS_DEST_COMMAND  (the text after '|')
 *   :include:/file    ALIAS_DEST_INCLUDE  (the path; prefix matched in any case)
 *   /file/name        ALIAS_DEST_FILE     (a trailing '/' means a maildir)
 *   \user             ALIAS_DEST_MAILBOX  (the user's mailbox, no aliasing)
 *   anything else     ALIAS_DEST_ADDRESS  (user or user@domain)
 *
 * Quoting is removed from the item (a quoted local part keeps its text
 * without the quotes, which is the form lookups use), "(comments)" outside
 * quotes are dropped, and "Name <addr>" gives addr. A missing closing quote,
 * parenthesis or bracket runs to the end of the item, which is how
 * sendmail-compatible parsers have always read it; nothing in the text can
 * make the parser read outside it or grow without bound: the number of items
 * and the length of each are limited by the caller and by ALIAS_ITEM_MAX.
 *
 * Ownership: alias_list_parse returns a new ALIAS_LIST (alias_list_free).
 */
#ifndef POSTERN_ALIAS_PARSE_H
#define POSTERN_ALIAS_PARSE_H

#include <stddef.h>

#include "util/vstr.h"

#define ALIAS_ITEM_MAX 8192 /* bytes in one destination (a command line, a path) */
#define ALIAS_NAME_MAX 1024 /* bytes in an alias name */

enum alias_dest_type {
    ALIAS_DEST_ADDRESS,
    ALIAS_DEST_MAILBOX,
    ALIAS_DEST_COMMAND,
    ALIAS_DEST_FILE,
    ALIAS_DEST_INCLUDE,
};

typedef struct ALIAS_DEST {
    enum alias_dest_type type;
    char *value; /* never empty */
} ALIAS_DEST;

typedef struct ALIAS_LIST {
    ALIAS_DEST *dest;
    size_t count;
    size_t cap;
} ALIAS_LIST;

/* Flags for alias_list_parse. */
#define ALIAS_PARSE_COMMENTS                                                                       \
    (1 << 0) /* file text: lines whose first non-blank is '#' are                                  \
                comments (.forward, :include:) */

/* alias_list_parse - the destinations in text (len bytes); a new list, or
   NULL with the reason in why when the text holds a NUL byte, more than
   max_items items, or an item longer than ALIAS_ITEM_MAX. Empty items
   ("a,,b", a trailing comma, "") are skipped. */
ALIAS_LIST *alias_list_parse(const char *text, size_t len, int flags, size_t max_items, VSTR *why);

/* alias_list_free - release a list; NULL is fine */
void alias_list_free(ALIAS_LIST *list);

/* alias_dest_type_name - "address", "mailbox", "command", "file", "include" */
const char *alias_dest_type_name(enum alias_dest_type type);

/* alias_parse_line - split one logical aliases(5) line "name: value" in place:
   *name is the name without quotes and without its colon, *value the text
   after the colon with surrounding white space removed. 0, or -1 with a static
   reason ("need name:value pair", "empty alias name", ...). A name may be
   written in double quotes to hold a colon or white space. */
int alias_parse_line(char *line, char **name, char **value, const char **why);

#endif
