/*
 * vstr - bounded dynamic strings.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "util/mymalloc.h"
#include "util/vstr.h"

/* vstr_alloc - new empty string with room for init bytes */
VSTR *vstr_alloc(size_t init)
{
    VSTR *vs = mymalloc(sizeof(*vs));

    vs->cap = init < 16 ? 16 : init;
    vs->data = mymalloc(vs->cap + 1);
    vs->data[0] = 0;
    vs->len = 0;
    vs->limit = 0;
    return vs;
}

/* vstr_free - release the string and its buffer; NULL is fine */
void vstr_free(VSTR *vs)
{
    if (vs) {
        myfree(vs->data);
        myfree(vs);
    }
}

void vstr_set_limit(VSTR *vs, size_t limit)
{
    vs->limit = limit;
}

/* vstr_reserve - grow so that len more bytes fit */
void vstr_reserve(VSTR *vs, size_t len)
{
    size_t need = size_add(vs->len, len);

    if (need <= vs->cap)
        return;
    size_t cap = vs->cap;

    while (cap < need)
        cap = size_mul(cap, 2);
    vs->data = myrealloc(vs->data, size_add(cap, 1));
    vs->cap = cap;
}

void vstr_truncate(VSTR *vs, size_t len)
{
    if (len < vs->len) {
        vs->len = len;
        vs->data[len] = 0;
    }
}

/* vstr_ncat - append len bytes; -1 (and nothing stored) past the limit */
int vstr_ncat(VSTR *vs, const void *ptr, size_t len)
{
    if (vs->limit && (len > vs->limit || vs->len > vs->limit - len))
        return -1;
    vstr_reserve(vs, len);
    memcpy(vs->data + vs->len, ptr, len);
    vs->len += len;
    vs->data[vs->len] = 0;
    return 0;
}

int vstr_cat(VSTR *vs, const char *str)
{
    return vstr_ncat(vs, str, strlen(str));
}

int vstr_addch(VSTR *vs, int ch)
{
    char c = (char)ch;

    return vstr_ncat(vs, &c, 1);
}

int vstr_cpy(VSTR *vs, const char *str)
{
    vstr_reset(vs);
    return vstr_cat(vs, str);
}

int vstr_ncpy(VSTR *vs, const void *ptr, size_t len)
{
    vstr_reset(vs);
    return vstr_ncat(vs, ptr, len);
}

int vstr_vsprintf_append(VSTR *vs, const char *fmt, va_list ap)
{
    va_list ap2;
    size_t room = vs->cap - vs->len;

    va_copy(ap2, ap);
    int n = vsnprintf(vs->data + vs->len, room + 1, fmt, ap2);

    va_end(ap2);
    if (n < 0) {
        vs->data[vs->len] = 0;
        return -1;
    }
    if (vs->limit && ((size_t)n > vs->limit || vs->len > vs->limit - (size_t)n)) {
        vs->data[vs->len] = 0;
        return -1;
    }
    if ((size_t)n > room) {
        vstr_reserve(vs, (size_t)n);
        vsnprintf(vs->data + vs->len, (size_t)n + 1, fmt, ap);
    }
    vs->len += (size_t)n;
    return 0;
}

int vstr_sprintf_append(VSTR *vs, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int r = vstr_vsprintf_append(vs, fmt, ap);

    va_end(ap);
    return r;
}

int vstr_sprintf(VSTR *vs, const char *fmt, ...)
{
    va_list ap;

    vstr_reset(vs);
    va_start(ap, fmt);
    int r = vstr_vsprintf_append(vs, fmt, ap);

    va_end(ap);
    return r;
}

char *vstr_export(VSTR *vs)
{
    char *p = vs->data;

    myfree(vs);
    return p;
}

void vstr_lower(VSTR *vs)
{
    for (size_t i = 0; i < vs->len; i++)
        vs->data[i] = (char)tolower((unsigned char)vs->data[i]);
}
