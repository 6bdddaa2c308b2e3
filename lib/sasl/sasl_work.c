/*
 * sasl_work - a small fixed pool of worker threads for the slow part of
 * password checks (crypt(3), PBKDF2), so that one yescrypt or bcrypt run
 * never stalls the other sessions on smtpd's event loop.
 *
 * The threads only compute: they never touch the event loop, the lookup
 * tables or the log. A finished job is put on a list and announced through
 * an eventfd that the loop watches; the loop then runs the job's done
 * function. Cancelling a job (the session went away) means its done
 * function never runs; a queued job is dropped at once, a running one is
 * released when it finishes.
 *
 * The threads are started at the first job, never earlier, so a daemon
 * that creates the pool before it drops privileges or forks is not
 * multi-threaded at that point. They block every signal: signals belong
 * to the event loop's thread.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "sasl/sasl_impl.h"
#include "util/msg.h"
#include "util/mymalloc.h"

enum sasl_work_state { SASL_WORK_QUEUED, SASL_WORK_RUNNING, SASL_WORK_FINISHED };

struct SASL_WORK {
    SASL_WORK_POOL *pool;
    SASL_WORK_RUN run;
    SASL_WORK_DONE done;
    SASL_WORK_FREE free_fn;
    void *arg;
    enum sasl_work_state state;
    int cancelled;
    SASL_WORK *prev;
    SASL_WORK *next;
};

struct SASL_WORK_POOL {
    struct event_base *base;
    int nthreads;
    int started;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    SASL_WORK *queue_head; /* waiting for a thread */
    SASL_WORK *queue_tail;
    SASL_WORK *done_head; /* finished, waiting for the loop */
    SASL_WORK *done_tail;
    size_t pending; /* queued, running or finished but not yet handled */
    int quit;
    int efd;
    struct event *ev;
};

/* sasl_work_append - add w at the end of a list */
static void sasl_work_append(SASL_WORK **head, SASL_WORK **tail, SASL_WORK *w)
{
    w->next = NULL;
    w->prev = *tail;
    if (*tail)
        (*tail)->next = w;
    else
        *head = w;
    *tail = w;
}

/* sasl_work_unlink - remove w from a list */
static void sasl_work_unlink(SASL_WORK **head, SASL_WORK **tail, SASL_WORK *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        *head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        *tail = w->prev;
    w->prev = w->next = NULL;
}

/* sasl_work_thread - take jobs until told to quit */
static void *sasl_work_thread(void *context)
{
    SASL_WORK_POOL *pool = context;
    uint64_t one = 1;

    for (;;) {
        SASL_WORK *w;

        pthread_mutex_lock(&pool->lock);
        while (!pool->quit && pool->queue_head == NULL)
            pthread_cond_wait(&pool->cond, &pool->lock);
        if (pool->quit) {
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        w = pool->queue_head;
        sasl_work_unlink(&pool->queue_head, &pool->queue_tail, w);
        w->state = SASL_WORK_RUNNING;
        pthread_mutex_unlock(&pool->lock);

        w->run(w->arg);

        pthread_mutex_lock(&pool->lock);
        w->state = SASL_WORK_FINISHED;
        sasl_work_append(&pool->done_head, &pool->done_tail, w);
        pthread_mutex_unlock(&pool->lock);
        /* The counter cannot overflow in practice; a failure here would only
           delay the result until the next job finishes. */
        while (write(pool->efd, &one, sizeof(one)) < 0 && errno == EINTR)
            continue;
    }
}

/* sasl_work_event - the loop side: hand finished jobs to their owners */
static void sasl_work_event(evutil_socket_t fd, short what, void *context)
{
    SASL_WORK_POOL *pool = context;
    uint64_t count;
    SASL_WORK *list;

    (void)what;
    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN && errno != EINTR)
        msg_warn("SASL worker notification: read: %m");
    pthread_mutex_lock(&pool->lock);
    list = pool->done_head;
    pool->done_head = pool->done_tail = NULL;
    pthread_mutex_unlock(&pool->lock);

    while (list != NULL) {
        SASL_WORK *w = list;

        list = w->next;
        /* A done function may cancel a job further down this list: take the
           decision from the flag as it is now. */
        pthread_mutex_lock(&pool->lock);
        int cancelled = w->cancelled;

        pool->pending--;
        w->state = SASL_WORK_FINISHED;
        w->prev = w->next = NULL;
        w->cancelled = 1; /* a late sasl_work_cancel must not touch it */
        pthread_mutex_unlock(&pool->lock);
        if (!cancelled)
            w->done(w->arg);
        if (w->free_fn)
            w->free_fn(w->arg);
        myfree(w);
    }
}

/* sasl_work_pool_new - the pool; threads come later */
SASL_WORK_POOL *sasl_work_pool_new(struct event_base *base, int threads)
{
    SASL_WORK_POOL *pool = mycalloc(1, sizeof(*pool));

    if (threads <= 0)
        threads = SASL_CRYPT_WORKERS_DEF;
    if (threads > SASL_CRYPT_WORKERS_MAX)
        threads = SASL_CRYPT_WORKERS_MAX;
    pool->base = base;
    pool->nthreads = threads;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->cond, NULL);
    if ((pool->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        msg_fatal("SASL worker pool: eventfd: %m");
    pool->ev = event_new(base, pool->efd, EV_READ | EV_PERSIST, sasl_work_event, pool);
    if (pool->ev == NULL || event_add(pool->ev, NULL) < 0)
        msg_fatal("SASL worker pool: cannot watch the notification descriptor");
    return pool;
}

/* sasl_work_start - create the threads with every signal blocked */
static void sasl_work_start(SASL_WORK_POOL *pool)
{
    sigset_t all, old;
    int err;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pool->threads = mycalloc((size_t)pool->nthreads, sizeof(pthread_t));
    for (int i = 0; i < pool->nthreads; i++)
        if ((err = pthread_create(&pool->threads[i], NULL, sasl_work_thread, pool)) != 0)
            msg_fatal("SASL worker pool: pthread_create: %s", strerror(err));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pool->started = 1;
}

/* sasl_work_submit - queue a job */
SASL_WORK *sasl_work_submit(SASL_WORK_POOL *pool, SASL_WORK_RUN run, SASL_WORK_DONE done,
                            SASL_WORK_FREE free_fn, void *arg)
{
    SASL_WORK *w = mycalloc(1, sizeof(*w));

    if (!pool->started)
        sasl_work_start(pool);
    w->pool = pool;
    w->run = run;
    w->done = done;
    w->free_fn = free_fn;
    w->arg = arg;
    pthread_mutex_lock(&pool->lock);
    w->state = SASL_WORK_QUEUED;
    sasl_work_append(&pool->queue_head, &pool->queue_tail, w);
    pool->pending++;
    pthread_cond_signal(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    return w;
}

/* sasl_work_cancel - the owner no longer wants the result */
void sasl_work_cancel(SASL_WORK *w)
{
    SASL_WORK_POOL *pool = w->pool;

    pthread_mutex_lock(&pool->lock);
    if (w->state == SASL_WORK_QUEUED) {
        sasl_work_unlink(&pool->queue_head, &pool->queue_tail, w);
        pool->pending--;
        pthread_mutex_unlock(&pool->lock);
        if (w->free_fn)
            w->free_fn(w->arg);
        myfree(w);
        return;
    }
    /* Running or finished: released by sasl_work_event. */
    w->cancelled = 1;
    pthread_mutex_unlock(&pool->lock);
}

/* sasl_work_pending - jobs not yet handed back */
size_t sasl_work_pending(SASL_WORK_POOL *pool)
{
    size_t n;

    pthread_mutex_lock(&pool->lock);
    n = pool->pending;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

/* sasl_work_free_list - release jobs that will never be handled */
static void sasl_work_free_list(SASL_WORK *w)
{
    while (w != NULL) {
        SASL_WORK *next = w->next;

        if (w->free_fn)
            w->free_fn(w->arg);
        myfree(w);
        w = next;
    }
}

/* sasl_work_pool_free - stop and join the threads, drop what is left */
void sasl_work_pool_free(SASL_WORK_POOL *pool)
{
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->quit = 1;
    pthread_cond_broadcast(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    if (pool->started)
        for (int i = 0; i < pool->nthreads; i++)
            pthread_join(pool->threads[i], NULL);
    sasl_work_free_list(pool->queue_head);
    sasl_work_free_list(pool->done_head);
    event_free(pool->ev);
    close(pool->efd);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->cond);
    myfree(pool->threads);
    myfree(pool);
}
