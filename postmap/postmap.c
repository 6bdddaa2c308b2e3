/*
 * postmap - build, query and update lookup tables, as Postfix's postmap(1).
 *
 *   postmap [-Nfinoprsvw] [-c config_dir] [-d key] [-q key] [type:]file ...
 *
 * Without -q, -d or -s: build type:file (hash: or btree:, file.db) from the
 * "key value" text file, or with -i add lines from standard input to it.
 * -q and -s work for every table type. The work is lib/mail/map_tool.c's;
 * this file gives the source syntax.
 *
 * Exit status: 0 success (for -q and -d: found), 1 not found or an error
 * (errors are always reported on standard error), 64 bad usage.
 */
#include <string.h>

#include "mail/dict.h"
#include "mail/map_tool.h"
#include "util/msg.h"

/* postmap_check_entry - Postfix's hint for an aliases(5) file given to postmap */
static void postmap_check_entry(const char *source, int lineno, const char *key,
                                const char *value)
{
    (void)value;
    if (key[strlen(key) - 1] == ':')
        msg_warn("%s, line %d: record is in \"key: value\" format; is this an alias file?",
                 source, lineno);
}

static const MAP_TOOL postmap_tool = {
    .name = "postmap",
    .separator = "\t",
    .check_results = 1,
    .default_tables = NULL,
    .parse = dict_split_kv,
    .check_entry = postmap_check_entry,
};

int main(int argc, char **argv)
{
    map_tool_main(argc, argv, &postmap_tool);
}
