/*
 * vstr - length-carrying, optionally bounded, always NUL-terminated strings.
 *
 * A VSTR owns its buffer; vstr_free releases both. A limit (0 = none) caps
 * the length: appends that would pass it store nothing and return -1, so
 * peer data can never grow a buffer without bound. vstr_str() is always
 * terminated; the data may also hold NUL bytes (use vstr_len).
 */
#ifndef POSTERN_VSTR_H
#define POSTERN_VSTR_H

#include <stdarg.h>
#include <stddef.h>

#include "util/msg.h"

typedef struct VSTR {
    char *data;
    size_t len;
    size_t cap;
    size_t limit;
} VSTR;

VSTR *vstr_alloc(size_t init);
void vstr_free(VSTR *vs);
void vstr_set_limit(VSTR *vs, size_t limit);

#define vstr_str(vs) ((vs)->data)
#define vstr_len(vs) ((vs)->len)
#define vstr_end(vs) ((vs)->data + (vs)->len)
#define vstr_reset(vs) vstr_truncate((vs), 0)

void vstr_truncate(VSTR *vs, size_t len);
int vstr_ncat(VSTR *vs, const void *ptr, size_t len);
int vstr_cat(VSTR *vs, const char *str);
int vstr_addch(VSTR *vs, int ch);
int vstr_cpy(VSTR *vs, const char *str);
int vstr_ncpy(VSTR *vs, const void *ptr, size_t len);
/* vstr_sprintf - replace the contents with formatted text */
int vstr_sprintf(VSTR *vs, const char *fmt, ...) MSG_FMT(2, 3);
/* vstr_sprintf_append - append formatted text */
int vstr_sprintf_append(VSTR *vs, const char *fmt, ...) MSG_FMT(2, 3);
int vstr_vsprintf_append(VSTR *vs, const char *fmt, va_list ap);
/* vstr_export - hand the buffer to the caller (myfree it) and free the VSTR */
char *vstr_export(VSTR *vs);
/* vstr_reserve - make room for len more bytes (ignores the limit) */
void vstr_reserve(VSTR *vs, size_t len);
/* vstr_lower - fold ASCII letters to lower case in place */
void vstr_lower(VSTR *vs);

#endif
