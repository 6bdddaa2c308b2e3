/*
 * mymalloc - checked memory allocation; failure is fatal, never returned.
 */
#include <stdlib.h>
#include <string.h>

#include "util/msg.h"
#include "util/mymalloc.h"

/* mymalloc - allocate or die */
void *mymalloc(size_t len)
{
    void *p = malloc(len ? len : 1);

    if (p == NULL)
        msg_fatal("out of memory allocating %zu bytes", len);
    return p;
}

/* mycalloc - allocate zeroed memory or die */
void *mycalloc(size_t count, size_t len)
{
    void *p = calloc(count ? count : 1, len ? len : 1);

    if (p == NULL)
        msg_fatal("out of memory allocating %zu x %zu bytes", count, len);
    return p;
}

/* myrealloc - resize or die */
void *myrealloc(void *ptr, size_t len)
{
    void *p = realloc(ptr, len ? len : 1);

    if (p == NULL)
        msg_fatal("out of memory reallocating %zu bytes", len);
    return p;
}

/* myfree - release memory from this module; NULL is fine */
void myfree(void *ptr)
{
    free(ptr);
}

/* mystrdup - copy a string */
char *mystrdup(const char *str)
{
    return mymemdup(str, strlen(str) + 1);
}

/* mystrndup - copy at most len bytes of a string and terminate */
char *mystrndup(const char *str, size_t len)
{
    size_t n = strnlen(str, len);
    char *p = mymalloc(size_add(n, 1));

    memcpy(p, str, n);
    p[n] = 0;
    return p;
}

/* mymemdup - copy a block */
void *mymemdup(const void *ptr, size_t len)
{
    void *p = mymalloc(len);

    memcpy(p, ptr, len);
    return p;
}

/* size_mul - overflow-checked multiplication */
size_t size_mul(size_t a, size_t b)
{
    size_t r;

    if (__builtin_mul_overflow(a, b, &r))
        msg_panic("size overflow: %zu * %zu", a, b);
    return r;
}

/* size_add - overflow-checked addition */
size_t size_add(size_t a, size_t b)
{
    size_t r;

    if (__builtin_add_overflow(a, b, &r))
        msg_panic("size overflow: %zu + %zu", a, b);
    return r;
}
