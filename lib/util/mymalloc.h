/*
 * mymalloc - the one checked allocator.
 *
 * Every function either succeeds or ends the process with msg_fatal, so
 * callers never test for NULL. Anything returned is owned by the caller and
 * released with myfree().
 */
#ifndef POSTERN_MYMALLOC_H
#define POSTERN_MYMALLOC_H

#include <stddef.h>

void *mymalloc(size_t len);
void *mycalloc(size_t count, size_t len);
void *myrealloc(void *ptr, size_t len);
void myfree(void *ptr);
char *mystrdup(const char *str);
char *mystrndup(const char *str, size_t len);
void *mymemdup(const void *ptr, size_t len);

/* size_mul - multiply sizes, fatal on overflow */
size_t size_mul(size_t a, size_t b);
/* size_add - add sizes, fatal on overflow */
size_t size_add(size_t a, size_t b);

#endif
