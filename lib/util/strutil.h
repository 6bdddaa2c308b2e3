/*
 * strutil - small string helpers used by every parser.
 */
#ifndef POSTERN_STRUTIL_H
#define POSTERN_STRUTIL_H

#include <stddef.h>

/* trim - strip leading and trailing white space in place; returns start */
char *trim(char *str);
/* lowercase - fold ASCII in place; returns str */
char *lowercase(char *str);
/* mystrtok - next token of *src delimited by any of sep; NULL at end */
char *mystrtok(char **src, const char *sep);
/* alldig - non-empty and only decimal digits */
int alldig(const char *str);
/* parse_long - whole string as a decimal in [min, max]; 0 ok, -1 bad */
int parse_long(const char *str, long min, long max, long *result);
/* parse_time - "10", "10s", "5m", "2h", "1d", "1w" (unit default 's') as seconds */
int parse_time(const char *str, int def_unit, long *result);
/* parse_bool - yes/no/true/false/on/off/1/0; 0 ok, -1 bad */
int parse_bool(const char *str, int *result);
/* str_has_ctl - any control character (or DEL) in str */
int str_has_ctl(const char *str);

#endif
