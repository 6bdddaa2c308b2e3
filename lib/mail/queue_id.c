/*
 * queue_id - make, check and decode queue ids (format in queue_id.h).
 */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mail/queue_id.h"
#include "util/msg.h"

/* In ASCII order, so that fixed-width strings sort like the numbers. */
static const char queue_id_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* The last time this process handed out, so that ids from one process are
   strictly increasing even within one microsecond or when the clock is set
   back while it runs. */
static uint64_t queue_id_last_usec;

/* queue_id_digit - value of one alphabet character, -1 if not in it */
static int queue_id_digit(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch < 'A' || ch > 'Z' || ch == 'I' || ch == 'L' || ch == 'O' || ch == 'U')
        return -1;
    /* Letters skip I, L, O and U: count how many of them come before ch. */
    int skipped = (ch > 'I') + (ch > 'L') + (ch > 'O') + (ch > 'U');

    return 10 + (ch - 'A') - skipped;
}

/* queue_id_char_ok - ch belongs to the id alphabet */
int queue_id_char_ok(int ch)
{
    return queue_id_digit(ch) >= 0;
}

/* queue_id_put - value as exactly width base-32 digits at out */
static void queue_id_put(char *out, int width, uint64_t value)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = queue_id_alphabet[value & 31];
        value >>= 5;
    }
}

/* queue_id_format - the id for a given time and uniqueness value */
void queue_id_format(char *id, uint64_t usec, uint32_t uniq)
{
    if (usec > QUEUE_ID_USEC_MAX)
        msg_panic("queue_id_format: time %llu out of range", (unsigned long long)usec);
    id[0] = QUEUE_ID_VERSION;
    queue_id_put(id + QUEUE_ID_TIME_POS, QUEUE_ID_TIME_LEN, usec);
    queue_id_put(id + QUEUE_ID_UNIQ_POS, QUEUE_ID_UNIQ_LEN, uniq);
    id[QUEUE_ID_LEN] = 0;
}

/* queue_id_new - a fresh id; its time into *when */
void queue_id_new(char *id, struct timeval *when)
{
    struct timespec ts;
    uint64_t usec;

    if (clock_gettime(CLOCK_REALTIME, &ts) < 0 || ts.tv_sec < 0)
        msg_fatal("queue_id_new: the system clock cannot be read or is before 1970");
    usec = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    if (usec <= queue_id_last_usec)
        usec = queue_id_last_usec + 1;
    queue_id_last_usec = usec;
    queue_id_format(id, usec, (uint32_t)getpid());
    if (when) {
        when->tv_sec = (time_t)(usec / 1000000u);
        when->tv_usec = (suseconds_t)(usec % 1000000u);
    }
}

/* queue_id_valid - exactly a version-1 id */
int queue_id_valid(const char *id)
{
    if (id == NULL || id[0] != QUEUE_ID_VERSION)
        return 0;
    for (int i = 1; i < QUEUE_ID_LEN; i++)
        if (queue_id_digit((unsigned char)id[i]) < 0) /* also stops at the NUL */
            return 0;
    return id[QUEUE_ID_LEN] == 0;
}

/* queue_id_time - the creation time encoded in id */
int queue_id_time(const char *id, struct timeval *when)
{
    uint64_t usec = 0;

    if (!queue_id_valid(id))
        return -1;
    for (int i = 0; i < QUEUE_ID_TIME_LEN; i++)
        usec = (usec << 5) | (uint64_t)queue_id_digit((unsigned char)id[QUEUE_ID_TIME_POS + i]);
    when->tv_sec = (time_t)(usec / 1000000u);
    when->tv_usec = (suseconds_t)(usec % 1000000u);
    return 0;
}

/* queue_id_hash_char - the character naming one hash level */
int queue_id_hash_char(const char *id, int level)
{
    if (level < 0 || level >= QUEUE_ID_TIME_LEN)
        msg_panic("queue_id_hash_char: bad level %d", level);
    return (unsigned char)id[QUEUE_ID_TIME_POS + QUEUE_ID_TIME_LEN - 1 - level];
}
