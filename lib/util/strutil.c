/*
 * strutil - trimming, splitting and checked number parsing.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/strutil.h"

char *trim(char *str)
{
    while (isspace((unsigned char)*str))
        str++;
    size_t n = strlen(str);

    while (n > 0 && isspace((unsigned char)str[n - 1]))
        str[--n] = 0;
    return str;
}

char *lowercase(char *str)
{
    for (char *p = str; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return str;
}

char *mystrtok(char **src, const char *sep)
{
    char *start = *src + strspn(*src, sep);

    if (*start == 0) {
        *src = start;
        return NULL;
    }
    char *end = start + strcspn(start, sep);

    if (*end)
        *end++ = 0;
    *src = end;
    return start;
}

int alldig(const char *str)
{
    if (*str == 0)
        return 0;
    for (; *str; str++)
        if (!isdigit((unsigned char)*str))
            return 0;
    return 1;
}

int parse_long(const char *str, long min, long max, long *result)
{
    char *end;

    if (*str == 0 || isspace((unsigned char)*str))
        return -1;
    errno = 0;
    long v = strtol(str, &end, 10);

    if (errno || *end || v < min || v > max)
        return -1;
    *result = v;
    return 0;
}

int parse_time(const char *str, int def_unit, long *result)
{
    char *end;
    long mult;

    if (!isdigit((unsigned char)*str))
        return -1;
    errno = 0;
    long v = strtol(str, &end, 10);

    if (errno || v < 0)
        return -1;
    int unit = *end ? *end : def_unit;

    if (*end && end[1])
        return -1;
    switch (unit) {
    case 's': mult = 1; break;
    case 'm': mult = 60; break;
    case 'h': mult = 3600; break;
    case 'd': mult = 86400; break;
    case 'w': mult = 604800; break;
    default: return -1;
    }
    if (__builtin_mul_overflow(v, mult, result))
        return -1;
    return 0;
}

int parse_bool(const char *str, int *result)
{
    static const char *yes[] = {"yes", "true", "on", "1"};
    static const char *no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(str, yes[i]) == 0) {
            *result = 1;
            return 0;
        }
        if (strcasecmp(str, no[i]) == 0) {
            *result = 0;
            return 0;
        }
    }
    return -1;
}

int str_has_ctl(const char *str)
{
    for (; *str; str++)
        if ((unsigned char)*str < 0x20 || *str == 0x7f)
            return 1;
    return 0;
}
