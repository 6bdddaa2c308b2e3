/*
 * map_tool - the shared engine of postmap(1) and postalias(1).
 *
 * Each command describes its source syntax and output form in a MAP_TOOL
 * and hands its arguments to map_tool_main, which never returns.
 */
#ifndef POSTERN_MAP_TOOL_H
#define POSTERN_MAP_TOOL_H

typedef struct MAP_TOOL {
    const char *name;      /* program name when argv[0] is missing */
    const char *separator; /* between key and value in -s and -q - output */
    int check_results;     /* warn about empty keys and results (postmap) */
    /* Parameter naming the tables to build when none is given; NULL: one
       must be named. */
    const char *default_tables;
    /* parse - split one logical source line in place; -1 with a reason */
    int (*parse)(char *line, char **key, char **value, const char **why);
    /* check_entry - optional warnings about a parsed entry */
    void (*check_entry)(const char *source, int lineno, const char *key, const char *value);
} MAP_TOOL;

_Noreturn void map_tool_main(int argc, char **argv, const MAP_TOOL *tool);

#endif
