/* queue: requests before background chunks (see queue.h). */
#include "queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int pg_queue_init(struct pg_queue *q, int max_chunks, int producers)
{
    memset(q, 0, sizeof(*q));
    q->max_chunks = max_chunks;
    q->producers = producers;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->ready, NULL);
    pthread_cond_init(&q->space, NULL);
    return 0;
}

void pg_chunk_free(struct pg_chunk *c)
{
    if (!c)
        return;
    free(c->buf);
    free(c->pages);
    free(c);
}

void pg_queue_destroy(struct pg_queue *q)
{
    while (q->first) {
        struct pg_chunk *c = q->first;
        q->first = c->next;
        pg_chunk_free(c);
    }
    while (q->spare) {
        struct pg_chunk *c = q->spare;
        q->spare = c->next;
        pg_chunk_free(c);
    }
    free(q->reqs);
    pthread_cond_destroy(&q->ready);
    pthread_cond_destroy(&q->space);
    pthread_mutex_destroy(&q->mu);
}

int pg_queue_put_req(struct pg_queue *q, const struct pg_req *r)
{
    int rc = 0;

    pthread_mutex_lock(&q->mu);
    if (q->head == q->nreqs) /* all taken: start over at the front */
        q->head = q->nreqs = 0;
    if (q->nreqs == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 64;
        struct pg_req *n = realloc(q->reqs, cap * sizeof(*n));
        if (n) {
            q->reqs = n;
            q->cap = cap;
        } else {
            rc = -ENOMEM;
        }
    }
    if (!rc) {
        q->reqs[q->nreqs++] = *r;
        pthread_cond_signal(&q->ready);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int pg_queue_put_chunk(struct pg_queue *q, struct pg_chunk *c)
{
    int rc = 0;

    pthread_mutex_lock(&q->mu);
    while (!q->stopped && q->nchunks >= q->max_chunks)
        pthread_cond_wait(&q->space, &q->mu);
    if (q->stopped) {
        /* The chunk is the queue's either way: one the serving side will never take goes now. */
        pg_chunk_free(c);
        rc = -ECANCELED;
    } else {
        c->next = NULL;
        if (q->last)
            q->last->next = c;
        else
            q->first = c;
        q->last = c;
        q->nchunks++;
        pthread_cond_signal(&q->ready);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void pg_queue_recycle(struct pg_queue *q, struct pg_chunk *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&q->mu);
    c->next = q->spare;
    q->spare = c;
    pthread_mutex_unlock(&q->mu);
}

struct pg_chunk *pg_queue_spare(struct pg_queue *q)
{
    struct pg_chunk *c;

    pthread_mutex_lock(&q->mu);
    if ((c = q->spare))
        q->spare = c->next;
    pthread_mutex_unlock(&q->mu);
    if (c) {
        c->next = NULL;
        c->npages = 0;
    }
    return c;
}

void pg_queue_producer_done(struct pg_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->producers--;
    pthread_cond_signal(&q->ready);
    pthread_mutex_unlock(&q->mu);
}

static int pg_queue_take_req_locked(struct pg_queue *q, struct pg_req *r)
{
    if (q->head == q->nreqs)
        return 0;
    *r = q->reqs[q->head++];
    return 1;
}

int pg_queue_take_req(struct pg_queue *q, struct pg_req *r)
{
    int got;

    pthread_mutex_lock(&q->mu);
    got = pg_queue_take_req_locked(q, r);
    pthread_mutex_unlock(&q->mu);
    return got;
}

enum pg_next pg_queue_next(struct pg_queue *q, struct pg_req *r, struct pg_chunk **c)
{
    enum pg_next next = PG_NEXT_DONE;

    pthread_mutex_lock(&q->mu);
    while (!q->stopped && q->head == q->nreqs && !q->first && q->producers > 0)
        pthread_cond_wait(&q->ready, &q->mu);
    if (q->stopped) {
        next = PG_NEXT_DONE;
    } else if (pg_queue_take_req_locked(q, r)) {
        next = PG_NEXT_REQ;
    } else if (q->first) {
        *c = q->first;
        q->first = (*c)->next;
        if (!q->first)
            q->last = NULL;
        q->nchunks--;
        pthread_cond_signal(&q->space);
        next = PG_NEXT_CHUNK;
    }
    pthread_mutex_unlock(&q->mu);
    return next;
}

void pg_queue_hold(struct pg_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->held = 1;
    pthread_mutex_unlock(&q->mu);
}

void pg_queue_release(struct pg_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->held = 0;
    pthread_cond_broadcast(&q->ready);
    pthread_cond_broadcast(&q->space);
    pthread_mutex_unlock(&q->mu);
}

int pg_queue_wait_released(struct pg_queue *q)
{
    int rc;

    pthread_mutex_lock(&q->mu);
    while (q->held && !q->stopped)
        pthread_cond_wait(&q->space, &q->mu);
    rc = q->stopped ? -ECANCELED : 0;
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int pg_queue_req_while_held(struct pg_queue *q, struct pg_req *r)
{
    int got = 0;

    pthread_mutex_lock(&q->mu);
    while (q->held && !q->stopped && !(got = pg_queue_take_req_locked(q, r)))
        pthread_cond_wait(&q->ready, &q->mu);
    pthread_mutex_unlock(&q->mu);
    return got;
}

void pg_queue_stop(struct pg_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->stopped = 1;
    pthread_cond_broadcast(&q->ready);
    pthread_cond_broadcast(&q->space);
    pthread_mutex_unlock(&q->mu);
}
