/*
 * mail_addr_find - address, domain and network lookups in the orders of
 * Postfix's virtual(5), canonical(5) and access(5).
 */
#include <string.h>
#include <strings.h>

#include "mail/dict.h"
#include "mail/mail_addr_find.h"
#include "util/mymalloc.h"
#include "util/vstr.h"

/* Local parts that contain common delimiters but are never split. */
static const char *const mail_addr_unsplit[] = {"postmaster", "mailer-daemon", "double-bounce"};

size_t mail_addr_ext_offset(const char *localpart, size_t len, const char *delimiters)
{
    if (delimiters == NULL || *delimiters == 0 || len == 0)
        return len;
    for (size_t i = 0; i < sizeof(mail_addr_unsplit) / sizeof(mail_addr_unsplit[0]); i++)
        if (len == strlen(mail_addr_unsplit[i]) &&
            strncasecmp(localpart, mail_addr_unsplit[i], len) == 0)
            return len;
    /* Mailing-list conventions predate extensions: owner-list and
       list-request name the list's administrators, not an extension. */
    if (strchr(delimiters, '-')) {
        if (len > 6 && strncasecmp(localpart, "owner-", 6) == 0)
            return len;
        if (len > 8 && strncasecmp(localpart + len - 8, "-request", 8) == 0)
            return len;
    }
    for (size_t i = 0; i < len; i++) {
        if (localpart[i] && strchr(delimiters, localpart[i]))
            return i == 0 ? len : i; /* "+foo" is a local part, not an extension */
    }
    return len;
}

/* mail_addr_fixed - does the table compare whole strings */
static int mail_addr_fixed(const DICT *d)
{
    return (d->flags & DICT_FLAG_FIXED) != 0;
}

/* mail_addr_get - look up key (folded for fixed tables); *stop when found
   or failed */
static const char *mail_addr_get(DICT *d, VSTR *key, int *stop)
{
    if (mail_addr_fixed(d))
        vstr_lower(key);
    const char *value = dict_get(d, vstr_str(key));

    *stop = value != NULL || d->error != DICT_ERR_NONE;
    return value;
}

/* mail_addr_parts - local part length, domain (after the last '@') */
static size_t mail_addr_parts(const char *address, const char **domain)
{
    const char *at = strrchr(address, '@');

    *domain = at ? at + 1 : NULL;
    return at ? (size_t)(at - address) : strlen(address);
}

const char *mail_addr_find(DICT *d, const char *address, const char *delimiters,
                           MAIL_ADDR_LOCAL_FN is_local, void *context, VSTR *extension)
{
    VSTR *key = vstr_alloc(strlen(address) + 2);
    const char *value;
    const char *domain;
    int stop;

    if (extension)
        vstr_reset(extension);
    size_t llen = mail_addr_parts(address, &domain);
    size_t ext = mail_addr_ext_offset(address, llen, delimiters);

    /* user+ext@domain */
    vstr_cpy(key, address);
    value = mail_addr_get(d, key, &stop);
    if (stop || !mail_addr_fixed(d))
        goto done;

    /* user@domain */
    if (ext < llen && domain) {
        vstr_ncpy(key, address, ext);
        vstr_cat(key, address + llen);
        if ((value = mail_addr_get(d, key, &stop)) != NULL && extension)
            vstr_ncpy(extension, address + ext, llen - ext);
        if (stop)
            goto done;
    }

    /* user+ext, user: only for our own domains */
    int local = domain == NULL || *domain == 0;

    if (!local && is_local) {
        vstr_cpy(key, domain);
        vstr_lower(key);
        local = is_local(vstr_str(key), context);
    }
    if (local) {
        if (domain) {
            vstr_ncpy(key, address, llen);
            value = mail_addr_get(d, key, &stop);
            if (stop)
                goto done;
        }
        if (ext < llen) {
            vstr_ncpy(key, address, ext);
            if ((value = mail_addr_get(d, key, &stop)) != NULL && extension)
                vstr_ncpy(extension, address + ext, llen - ext);
            if (stop)
                goto done;
        }
    }

    /* @domain */
    if (domain && *domain) {
        vstr_cpy(key, "@");
        vstr_cat(key, domain);
        value = mail_addr_get(d, key, &stop);
        goto done;
    }
    value = NULL;

done:
    vstr_free(key);
    return value;
}

const char *mail_addr_find_domain(DICT *d, const char *domain, int flags)
{
    VSTR *key = vstr_alloc(strlen(domain) + 2);
    const char *value;
    int stop;

    vstr_cpy(key, domain);
    value = mail_addr_get(d, key, &stop);
    if (stop || !mail_addr_fixed(d) || *domain == 0 || *domain == '[')
        goto done;

    /* Parents: at each dot, ".rest" (or "rest" with MAIL_ADDR_FIND_PARENT). */
    int labels = 0;

    for (const char *dot = strchr(domain + 1, '.'); dot && dot[1]; dot = strchr(dot + 1, '.')) {
        if (++labels > MAIL_ADDR_FIND_MAX_LABELS)
            break;
        vstr_cpy(key, (flags & MAIL_ADDR_FIND_PARENT) ? dot + 1 : dot);
        value = mail_addr_get(d, key, &stop);
        if (stop)
            goto done;
    }
    value = NULL;

done:
    vstr_free(key);
    return value;
}

const char *mail_addr_find_access(DICT *d, const char *address, const char *delimiters, int flags)
{
    VSTR *key = vstr_alloc(strlen(address) + 2);
    const char *value;
    const char *domain;
    int stop;
    size_t llen = mail_addr_parts(address, &domain);
    size_t ext = mail_addr_ext_offset(address, llen, delimiters);

    /* user+ext@domain */
    vstr_cpy(key, address);
    value = mail_addr_get(d, key, &stop);
    if (stop || !mail_addr_fixed(d))
        goto done;

    /* user@domain */
    if (ext < llen) {
        vstr_ncpy(key, address, ext);
        vstr_cat(key, address + llen);
        value = mail_addr_get(d, key, &stop);
        if (stop)
            goto done;
    }
    if (domain == NULL) {
        value = NULL;
        goto done;
    }

    /* domain and its parents */
    if (*domain) {
        value = mail_addr_find_domain(d, domain, flags);
        if (value != NULL || d->error != DICT_ERR_NONE)
            goto done;
    }

    /* user+ext@, user@ */
    vstr_ncpy(key, address, llen + 1);
    value = mail_addr_get(d, key, &stop);
    if (stop)
        goto done;
    if (ext < llen) {
        vstr_ncpy(key, address, ext);
        vstr_addch(key, '@');
        value = mail_addr_get(d, key, &stop);
        goto done;
    }
    value = NULL;

done:
    vstr_free(key);
    return value;
}

const char *mail_addr_find_host_addr(DICT *d, const char *addr)
{
    VSTR *key = vstr_alloc(strlen(addr) + 1);
    const char *value;
    int stop;
    int delim = strchr(addr, ':') ? ':' : '.';

    vstr_cpy(key, addr);
    value = mail_addr_get(d, key, &stop);
    if (stop || !mail_addr_fixed(d))
        goto done;

    /* Shorter networks: cut at the last delimiter; a cut that leaves a
       trailing delimiter ("2001:db8:" of "2001:db8::1") is not a network
       anyone writes, so keep cutting. */
    for (;;) {
        char *cut = strrchr(vstr_str(key), delim);

        if (cut == NULL || cut == vstr_str(key))
            break;
        vstr_truncate(key, (size_t)(cut - vstr_str(key)));
        if (vstr_str(key)[vstr_len(key) - 1] == delim)
            continue;
        value = mail_addr_get(d, key, &stop);
        if (stop)
            goto done;
    }
    value = NULL;

done:
    vstr_free(key);
    return value;
}
