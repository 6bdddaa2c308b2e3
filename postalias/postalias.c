/*
 * postalias - build and query alias tables, as Postfix's postalias(1).
 *
 *   postalias [-Nfinoprsvw] [-c config_dir] [-d key] [-q key] [[type:]file ...]
 *
 * Without -q, -d or -s: build type:file (hash: or btree:, giving file.db)
 * from the aliases(5) text file, or with -i add aliases(5) lines from
 * standard input to it; with no table named, build every table that
 * alias_database names (what newaliases does). The source format is not
 * postmap's "key value": each entry is "name: value, value, ...", the colon
 * is required, a name may be quoted, lines starting with white space
 * continue the previous one and '#' starts a comment line. Names are
 * folded to lower case unless -f is given.
 *
 * -q key prints the value of key (the first table that has it; "-" reads
 * keys from standard input), -d key deletes it, -s prints every entry in
 * aliases(5) form. The work is lib/mail/map_tool.c's, shared with postmap;
 * run by root, a table is built with its source owner's rights, and that
 * owner decides the rights local(8) gives to commands and files in it.
 *
 * Exit status: 0 success (for -q and -d: found), 1 not found or an error,
 * 64 bad usage.
 */
#include <string.h>

#include "mail/alias_parse.h"
#include "mail/map_tool.h"
#include "util/msg.h"
#include "util/vstr.h"

#define POSTALIAS_CHECK_ITEMS 100000 /* destinations checked in one value */

/* postalias_check_entry - warn about a value local(8) could not use */
static void postalias_check_entry(const char *source, int lineno, const char *key,
                                  const char *value)
{
    VSTR *why = vstr_alloc(64);
    ALIAS_LIST *list = alias_list_parse(value, strlen(value), 0, POSTALIAS_CHECK_ITEMS, why);

    (void)key;
    if (list == NULL)
        msg_warn("%s, line %d: %s", source, lineno, vstr_str(why));
    else if (list->count == 0)
        msg_warn("%s, line %d: alias has no destinations", source, lineno);
    alias_list_free(list);
    vstr_free(why);
}

static const MAP_TOOL postalias_tool = {
    .name = "postalias",
    .separator = ": ",
    .check_results = 0,
    .default_tables = "alias_database",
    .parse = alias_parse_line,
    .check_entry = postalias_check_entry,
};

int main(int argc, char **argv)
{
    map_tool_main(argc, argv, &postalias_tool);
}
