/*
 * argv - string arrays.
 */
#include <stdarg.h>
#include <string.h>

#include "util/argv.h"
#include "util/mymalloc.h"

ARGV *argv_alloc(size_t init)
{
    ARGV *av = mymalloc(sizeof(*av));

    av->cap = init < 4 ? 4 : init;
    av->argv = mymalloc(size_mul(av->cap + 1, sizeof(char *)));
    av->argc = 0;
    av->argv[0] = NULL;
    return av;
}

void argv_free(ARGV *av)
{
    if (av == NULL)
        return;
    for (size_t i = 0; i < av->argc; i++)
        myfree(av->argv[i]);
    myfree(av->argv);
    myfree(av);
}

/* argv_push - append an owned string */
static void argv_push(ARGV *av, char *str)
{
    if (av->argc >= av->cap) {
        av->cap = size_mul(av->cap, 2);
        av->argv = myrealloc(av->argv, size_mul(av->cap + 1, sizeof(char *)));
    }
    av->argv[av->argc++] = str;
    av->argv[av->argc] = NULL;
}

void argv_add(ARGV *av, ...)
{
    va_list ap;
    const char *s;

    va_start(ap, av);
    while ((s = va_arg(ap, const char *)) != NULL)
        argv_push(av, mystrdup(s));
    va_end(ap);
}

void argv_addn(ARGV *av, const char *str, size_t len)
{
    argv_push(av, mystrndup(str, len));
}

ARGV *argv_split(const char *str, const char *delim)
{
    ARGV *av = argv_alloc(4);

    while (*str) {
        str += strspn(str, delim);
        size_t n = strcspn(str, delim);

        if (n > 0)
            argv_addn(av, str, n);
        str += n;
    }
    return av;
}

void argv_truncate(ARGV *av, size_t len)
{
    while (av->argc > len)
        myfree(av->argv[--av->argc]);
    av->argv[av->argc] = NULL;
}
