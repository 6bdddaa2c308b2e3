/*
 * test_queue_id - unit tests for lib/mail/queue_id: format, uniqueness under
 * bursts and across processes, sort order, validation of hostile input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mail/queue_id.h"
#include "util/mymalloc.h"
#include "util/safe_io.h"

#define BURST 20000

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_format_and_decode(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE];
    struct timeval tv;

    queue_id_format(id, 0, 0);
    assert_string_equal(id, "10000000000000000");
    assert_int_equal(strlen(id), QUEUE_ID_LEN);
    assert_true(queue_id_valid(id));
    assert_int_equal(queue_id_time(id, &tv), 0);
    assert_int_equal(tv.tv_sec, 0);
    assert_int_equal(tv.tv_usec, 0);

    queue_id_format(id, QUEUE_ID_USEC_MAX, 0x1FFFFFF);
    assert_string_equal(id, "1ZZZZZZZZZZZZZZZZ");
    assert_true(queue_id_valid(id));

    /* 2024-01-02 03:04:05.678901 UTC */
    uint64_t usec = UINT64_C(1704164645) * 1000000 + 678901;

    queue_id_format(id, usec, 4194303); /* the largest Linux pid */
    assert_true(queue_id_valid(id));
    assert_int_equal(queue_id_time(id, &tv), 0);
    assert_int_equal(tv.tv_sec, 1704164645);
    assert_int_equal(tv.tv_usec, 678901);
    assert_int_equal(id[0], QUEUE_ID_VERSION);

    /* Every character is from the alphabet, which is in ASCII order. */
    const char *alpha = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

    for (size_t i = 0; alpha[i]; i++) {
        assert_true(queue_id_char_ok(alpha[i]));
        if (i > 0)
            assert_true(alpha[i - 1] < alpha[i]);
    }
    assert_int_equal(strlen(alpha), 32);
    for (int c = 0; c < 256; c++)
        assert_int_equal(queue_id_char_ok(c), c != 0 && strchr(alpha, c) != NULL);
}

static void test_new_matches_clock(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE];
    struct timeval before, when, decoded, after;

    gettimeofday(&before, NULL);
    queue_id_new(id, &when);
    gettimeofday(&after, NULL);
    assert_true(queue_id_valid(id));
    assert_int_equal(queue_id_time(id, &decoded), 0);
    assert_int_equal(decoded.tv_sec, when.tv_sec);
    assert_int_equal(decoded.tv_usec, when.tv_usec);
    /* Within the clock readings around it (give the monotonic bump 1 s). */
    assert_true(when.tv_sec >= before.tv_sec);
    assert_true(when.tv_sec <= after.tv_sec + 1);

    /* The uniqueness suffix is the pid. */
    char expect[QUEUE_ID_SIZE];

    queue_id_format(expect, (uint64_t)when.tv_sec * 1000000 + (uint64_t)when.tv_usec,
                    (uint32_t)getpid());
    assert_string_equal(id, expect);
}

static void test_burst_unique_and_sorted(void **state)
{
    (void)state;
    char(*ids)[QUEUE_ID_SIZE] = mymalloc(size_mul(BURST, QUEUE_ID_SIZE));

    for (int i = 0; i < BURST; i++) {
        queue_id_new(ids[i], NULL);
        assert_true(queue_id_valid(ids[i]));
    }
    /* Creation order is strictly increasing string order: no duplicates. */
    for (int i = 1; i < BURST; i++)
        assert_true(strcmp(ids[i - 1], ids[i]) < 0);
    myfree(ids);
}

static void test_sort_order_is_time_order(void **state)
{
    (void)state;
    char a[QUEUE_ID_SIZE], b[QUEUE_ID_SIZE];
    uint64_t seed = 88172645463325252ULL;

    for (int i = 0; i < 100000; i++) {
        /* xorshift: times across the whole range and close neighbours */
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        uint64_t t1 = seed & QUEUE_ID_USEC_MAX;
        uint64_t t2 = (i & 1) ? (t1 + (seed >> 60)) & QUEUE_ID_USEC_MAX : (seed >> 9);
        uint32_t u1 = (uint32_t)(seed >> 20), u2 = (uint32_t)(seed >> 33);

        queue_id_format(a, t1, u1);
        queue_id_format(b, t2, u2);
        int c = strcmp(a, b);

        if (t1 < t2)
            assert_true(c < 0);
        else if (t1 > t2)
            assert_true(c > 0);
    }
}

static void test_unique_across_processes(void **state)
{
    (void)state;
    enum { CHILDREN = 4, PER_CHILD = 3000 };
    int fds[2];
    pid_t pids[CHILDREN];
    char **all = mymalloc(size_mul(CHILDREN * PER_CHILD + 1000, sizeof(char *)));
    size_t n = 0;

    assert_int_equal(pipe(fds), 0);
    for (int c = 0; c < CHILDREN; c++) {
        pids[c] = fork();
        assert_true(pids[c] >= 0);
        if (pids[c] == 0) {
            char buf[PER_CHILD * QUEUE_ID_LEN + 1];

            close(fds[0]);
            for (int i = 0; i < PER_CHILD; i++)
                queue_id_new(buf + i * QUEUE_ID_LEN, NULL);
            /* Each NUL lands on the next id's first byte, the last on the spare one. */
            /* Writes of at most PIPE_BUF bytes are atomic: the children's
               ids cannot interleave mid-id. */
            enum { BATCH = PIPE_BUF / QUEUE_ID_LEN };

            for (int i = 0; i < PER_CHILD; i += BATCH) {
                int cnt = PER_CHILD - i < BATCH ? PER_CHILD - i : BATCH;

                if (write_full(fds[1], buf + i * QUEUE_ID_LEN, (size_t)cnt * QUEUE_ID_LEN) < 0)
                    _exit(1);
            }
            _exit(0);
        }
    }
    close(fds[1]);
    /* The parent makes ids at the same time too. */
    for (int i = 0; i < 1000; i++) {
        all[n] = mymalloc(QUEUE_ID_SIZE);
        queue_id_new(all[n++], NULL);
    }
    char id[QUEUE_ID_LEN];
    ssize_t got;

    while ((got = read_full(fds[0], id, sizeof(id))) == (ssize_t)sizeof(id)) {
        all[n] = mystrndup(id, QUEUE_ID_LEN);
        assert_true(queue_id_valid(all[n]));
        n++;
    }
    assert_int_equal(got, 0);
    close(fds[0]);
    for (int c = 0; c < CHILDREN; c++) {
        int status;

        assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(n, CHILDREN * PER_CHILD + 1000);
    qsort(all, n, sizeof(char *), cmp_str);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(all[i - 1], all[i]) != 0);
    for (size_t i = 0; i < n; i++)
        myfree(all[i]);
    myfree(all);
}

static void test_validation_rejects(void **state)
{
    (void)state;
    char good[QUEUE_ID_SIZE];

    queue_id_new(good, NULL);
    assert_true(queue_id_valid(good));

    const char *bad[] = {
        "",
        "1",
        "1000000000000000",   /* 16: one short */
        "100000000000000000", /* 18: one long */
        "20000000000000000",  /* unknown version */
        "00000000000000000",
        "A0000000000000000",
        "1000000000000000a", /* lower case */
        "10000000000000I00", /* I, L, O, U are not in the alphabet */
        "10000000000000L00",
        "10000000000000O00",
        "10000000000000U00",
        "1000000000000000-",
        "1000000000000000/",
        "../../../etc/pass",
        "1000000000000000 ",
        " 1000000000000000",
        "10000000000000\t00",
        "1000000000000000\n",
        "10000000\xc3\xa9"
        "0000000",
        "1000000000000000\xff",
        "1000000000000000.",
        "10000000000000000/x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct timeval tv;

        assert_false(queue_id_valid(bad[i]));
        assert_int_equal(queue_id_time(bad[i], &tv), -1);
    }
    assert_false(queue_id_valid(NULL));

    /* Every single-character change to a non-alphabet byte is refused. */
    for (int pos = 0; pos < QUEUE_ID_LEN; pos++)
        for (int c = 1; c < 256; c++) {
            char id[QUEUE_ID_SIZE];

            memcpy(id, good, sizeof(id));
            id[pos] = (char)c;
            int expect = pos == 0 ? c == QUEUE_ID_VERSION : queue_id_char_ok(c);

            assert_int_equal(queue_id_valid(id), expect);
        }
}

static void test_hash_chars(void **state)
{
    (void)state;
    char id[QUEUE_ID_SIZE];

    /* time digits ...V W X Y Z at the end: level 0 is the last one */
    queue_id_format(id, 31 + (30 << 5) + (29 << 10), 0);
    assert_int_equal(queue_id_hash_char(id, 0), 'Z');
    assert_int_equal(queue_id_hash_char(id, 1), 'Y');
    assert_int_equal(queue_id_hash_char(id, 2), 'X');
    assert_int_equal(queue_id_hash_char(id, 3), '0');

    /* Consecutive microseconds land in different level-0 directories. */
    char seen[256] = {0};

    for (uint64_t t = 1000; t < 1032; t++) {
        queue_id_format(id, t, 7);
        seen[queue_id_hash_char(id, 0)]++;
    }
    for (int c = 0; c < 256; c++)
        assert_true(seen[c] == 0 || seen[c] == 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_and_decode),
        cmocka_unit_test(test_new_matches_clock),
        cmocka_unit_test(test_burst_unique_and_sorted),
        cmocka_unit_test(test_sort_order_is_time_order),
        cmocka_unit_test(test_unique_across_processes),
        cmocka_unit_test(test_validation_rejects),
        cmocka_unit_test(test_hash_chars),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
