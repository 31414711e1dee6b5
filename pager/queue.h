/* queue: what the stream's writer sends next. Page requests from the return path come first,
 * then chunks of pages read in the background, so that a faulting vCPU waits for at most the
 * page being written. Producers: the return-path thread (requests) and the background readers
 * (chunks, bounded); consumer: the writer. */
#ifndef SAVEFS_PAGER_QUEUE_H
#define SAVEFS_PAGER_QUEUE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* A range of pages QEMU asked for, and when the request arrived (CLOCK_MONOTONIC, s). */
struct pg_req {
    int block;
    uint64_t start;
    uint32_t len;
    double t;
};

/* Stream bytes [base, base + len) of channel CH, and the pages in them. */
struct pg_chunk_page {
    int block;
    uint64_t ram_offset, stream_offset;
};
struct pg_chunk {
    struct pg_chunk *next;
    int ch;
    uint64_t base;
    size_t len;
    uint8_t *buf; /* kept when the chunk is recycled */
    struct pg_chunk_page *pages;
    uint32_t npages, cap; /* pages used, and room */
};

enum pg_next { PG_NEXT_REQ, PG_NEXT_CHUNK, PG_NEXT_DONE };

struct pg_queue {
    pthread_mutex_t mu;
    pthread_cond_t ready, space;
    /* guarded by mu */
    struct pg_req *reqs;
    size_t head, nreqs, cap;
    struct pg_chunk *first, *last;
    int nchunks, max_chunks;
    struct pg_chunk *spare; /* served chunks, their buffers kept for the readers */
    int producers;          /* background readers still running */
    int held;               /* background work waits (pg_queue_hold) */
    int stopped;
};

int pg_queue_init(struct pg_queue *q, int max_chunks, int producers);
void pg_queue_destroy(struct pg_queue *q);
/* -ENOMEM if the request could not be kept. */
int pg_queue_put_req(struct pg_queue *q, const struct pg_req *r);
/* Waits for room; -ECANCELED once the queue was stopped. The queue owns C either way (freed then).
 */
int pg_queue_put_chunk(struct pg_queue *q, struct pg_chunk *c);
void pg_queue_producer_done(struct pg_queue *q);
/* 1 and *R if a request is waiting, else 0; never waits. */
int pg_queue_take_req(struct pg_queue *q, struct pg_req *r);
/* Waits for a request or a chunk; PG_NEXT_DONE once the readers are done and nothing is left
 * but possible requests, or the queue was stopped. */
enum pg_next pg_queue_next(struct pg_queue *q, struct pg_req *r, struct pg_chunk **c);
/* Background work waits from pg_queue_hold to pg_queue_release: until QEMU runs the guest, the
 * push's reads would only compete with QEMU's own start (its code faulted in from the same disk)
 * and its loading of the devices, which is the time to running. Requests are never held. */
void pg_queue_hold(struct pg_queue *q);
void pg_queue_release(struct pg_queue *q);
/* The readers' gate: 0 once released, -ECANCELED once stopped. */
int pg_queue_wait_released(struct pg_queue *q);
/* The writer's wait while held: 1 and *R for a request, 0 once released or stopped. */
int pg_queue_req_while_held(struct pg_queue *q, struct pg_req *r);
/* Wakes everyone: producers get -ECANCELED, the writer PG_NEXT_DONE. */
void pg_queue_stop(struct pg_queue *q);
/* A served chunk back to the readers (pg_queue_spare): its buffers are reused, not freed and
 * allocated again, which in a VM costs a page fault per 4 KiB each time (and leaves the buffers
 * aligned as O_DIRECT reads want them). */
void pg_queue_recycle(struct pg_queue *q, struct pg_chunk *c);
/* A recycled chunk (NPAGES 0, its buffers kept), or NULL. */
struct pg_chunk *pg_queue_spare(struct pg_queue *q);
void pg_chunk_free(struct pg_chunk *c);

#endif
