/*
 * mail_date - RFC 5322 date-time text for Date:, Received: and the like.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mail/mail_date.h"
#include "util/vstr.h"

#define MAIL_DATE_ZONE_MAX 10 /* longest zone abbreviation shown */

static const char mail_date_days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char mail_date_months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* mail_date_zone_ok - an abbreviation safe inside a comment: letters, digits, + and - */
static int mail_date_zone_ok(const char *zone)
{
    size_t len;

    if (zone == NULL || (len = strlen(zone)) == 0 || len > MAIL_DATE_ZONE_MAX)
        return 0;
    for (const char *cp = zone; *cp; cp++)
        if (!((*cp >= 'A' && *cp <= 'Z') || (*cp >= 'a' && *cp <= 'z') ||
              (*cp >= '0' && *cp <= '9') || *cp == '+' || *cp == '-'))
            return 0;
    return 1;
}

/* mail_date - "Mon,  3 Nov 2026 07:45:12 +0100 (CET)" */
const char *mail_date(time_t when, VSTR *buf)
{
    struct tm lt;
    long off, hours, minutes;
    char sign = '+';

    if (localtime_r(&when, &lt) == NULL) {
        /* Out of the C library's range: say the epoch rather than nothing. */
        time_t zero = 0;

        gmtime_r(&zero, &lt);
    }
    off = lt.tm_gmtoff;
    if (off < 0) {
        sign = '-';
        off = -off;
    }
    hours = off / 3600;
    minutes = (off % 3600) / 60;
    if (hours > 99) /* RFC 5322 zone is four digits; real offsets are within 26 hours */
        hours = 99;
    vstr_sprintf(buf, "%s, %2d %s %d %02d:%02d:%02d %c%02ld%02ld",
                 mail_date_days[(unsigned)lt.tm_wday % 7], lt.tm_mday,
                 mail_date_months[(unsigned)lt.tm_mon % 12], lt.tm_year + 1900, lt.tm_hour,
                 lt.tm_min, lt.tm_sec, sign, hours, minutes);
    if (mail_date_zone_ok(lt.tm_zone))
        vstr_sprintf_append(buf, " (%s)", lt.tm_zone);
    return vstr_str(buf);
}
