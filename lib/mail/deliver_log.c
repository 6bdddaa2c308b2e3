/*
 * deliver_log - Postfix-shaped delivery log lines (see deliver_log.h).
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "mail/deliver_log.h"
#include "util/vstr.h"

#define USEC_PER_SEC 1000000ULL

/* deliver_log_now_usec - wall clock in microseconds */
uint64_t deliver_log_now_usec(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * USEC_PER_SEC + (uint64_t)tv.tv_usec;
}

/* deliver_log_seconds - one duration with at most two significant digits */
void deliver_log_seconds(VSTR *out, uint64_t usec, int resolution)
{
    static const uint64_t pow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    int decimals;

    if (resolution < 0)
        resolution = 0;
    if (resolution > DELIVER_LOG_RESOLUTION_MAX)
        resolution = DELIVER_LOG_RESOLUTION_MAX;
    if (usec >= 10 * USEC_PER_SEC) {
        /* Rounded without an addition that could overflow. */
        vstr_sprintf_append(
            out, "%llu",
            (unsigned long long)(usec / USEC_PER_SEC + (usec % USEC_PER_SEC >= USEC_PER_SEC / 2)));
        return;
    }
    /* Decimals for two significant digits: 1.2, 0.12, 0.012, ... */
    decimals = 1;
    for (uint64_t lim = USEC_PER_SEC; decimals < 6 && usec < lim; lim /= 10)
        decimals++;
    if (decimals > resolution)
        decimals = resolution;

    uint64_t unit = pow10[6 - decimals];
    uint64_t r = (usec + unit / 2) / unit;

    if (r == 0) {
        vstr_cat(out, "0");
        return;
    }
    uint64_t whole = r / pow10[decimals];
    uint64_t frac = r % pow10[decimals];

    vstr_sprintf_append(out, "%llu", (unsigned long long)whole);
    if (frac == 0)
        return;
    /* Trailing zeros are not printed: 0.10 is "0.1". */
    while (frac % 10 == 0) {
        frac /= 10;
        decimals--;
    }
    vstr_sprintf_append(out, ".%0*llu", decimals, (unsigned long long)frac);
}

/* deliver_log_text - append text with control characters shown as '?' */
static void deliver_log_text(VSTR *out, const char *text)
{
    for (const unsigned char *cp = (const unsigned char *)(text ? text : ""); *cp; cp++)
        vstr_addch(out, (*cp < 0x20 || *cp == 0x7f) ? '?' : *cp);
}

/* deliver_log_delta - later - earlier, never negative; 0 stands for "unknown" */
static uint64_t deliver_log_delta(uint64_t later, uint64_t earlier)
{
    return later > earlier ? later - earlier : 0;
}

/* deliver_log_format - the whole delivery line */
void deliver_log_format(VSTR *out, const DELIVER_LOG *info, int resolution)
{
    /* An unknown time counts as the one before it, so its interval is 0. */
    uint64_t arrival = info->arrival_usec;
    uint64_t active = info->active_usec ? info->active_usec : arrival;
    uint64_t request = info->request_usec ? info->request_usec : active;
    uint64_t conn = info->conn_usec ? info->conn_usec : request;
    uint64_t done = info->done_usec ? info->done_usec : conn;

    vstr_reset(out);
    deliver_log_text(out, info->queue_id);
    vstr_cat(out, ": to=<");
    deliver_log_text(out, info->to);
    vstr_cat(out, ">");
    if (info->orig_to && *info->orig_to && strcmp(info->orig_to, info->to ? info->to : "") != 0) {
        vstr_cat(out, ", orig_to=<");
        deliver_log_text(out, info->orig_to);
        vstr_cat(out, ">");
    }
    vstr_cat(out, ", relay=");
    deliver_log_text(out, info->relay);
    vstr_cat(out, ", delay=");
    deliver_log_seconds(out, deliver_log_delta(done, arrival), resolution);
    vstr_cat(out, ", delays=");
    deliver_log_seconds(out, deliver_log_delta(active, arrival), resolution);
    vstr_cat(out, "/");
    deliver_log_seconds(out, deliver_log_delta(request, active), resolution);
    vstr_cat(out, "/");
    deliver_log_seconds(out, deliver_log_delta(conn, request), resolution);
    vstr_cat(out, "/");
    deliver_log_seconds(out, deliver_log_delta(done, conn), resolution);
    vstr_cat(out, ", dsn=");
    deliver_log_text(out, info->dsn);
    vstr_cat(out, ", status=");
    deliver_log_text(out, info->status);
    vstr_cat(out, " (");
    deliver_log_text(out, info->reason);
    vstr_cat(out, ")");
}
