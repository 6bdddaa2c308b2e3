/*
 * mail_date - dates for message headers (RFC 5322 section 3.3) in local time
 * with the numeric zone offset, as Postfix writes them:
 *
 *     Mon,  3 Nov 2026 07:45:12 +0100 (CET)
 *
 * Day and month names are always English (RFC 5322 defines them), whatever
 * the locale. The zone abbreviation in parentheses is a comment (CFWS) and
 * appears only when the C library knows a plain one.
 */
#ifndef POSTERN_MAIL_DATE_H
#define POSTERN_MAIL_DATE_H

#include <time.h>

#include "util/vstr.h"

#define MAIL_DATE_MAX 64 /* longest text mail_date produces */

/* mail_date - the date-time of when into buf (replacing it); returns vstr_str(buf) */
const char *mail_date(time_t when, VSTR *buf);

#endif
