/*
 * argv - a growable, NULL-terminated array of owned strings.
 */
#ifndef POSTERN_ARGV_H
#define POSTERN_ARGV_H

#include <stddef.h>

typedef struct ARGV {
    char **argv; /* NULL-terminated */
    size_t argc;
    size_t cap;
} ARGV;

ARGV *argv_alloc(size_t init);
void argv_free(ARGV *av);
/* argv_add - append a copy of each string; end the list with NULL */
void argv_add(ARGV *av, ...) __attribute__((sentinel));
void argv_addn(ARGV *av, const char *str, size_t len);
/* argv_split - split str at any of the delimiter characters, skipping empties */
ARGV *argv_split(const char *str, const char *delim);
/* argv_truncate - keep the first len entries */
void argv_truncate(ARGV *av, size_t len);

#endif
