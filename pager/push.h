/* push: the background readers. Each takes whole channels in turn and reads each in stream order,
 * a chunk at a time, into the queue: only the pages the map says the channel holds last, each
 * chunk checked against the page index's sums before it is queued (verify.h). */
#ifndef SAVEFS_PAGER_PUSH_H
#define SAVEFS_PAGER_PUSH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "pager.h"
#include "queue.h"
#include "rp.h"
#include "snap.h"

#define PG_CHUNK_SIZE (1u << 20) /* stream bytes per chunk: one zstd frame */
/* A chunk's bytes: on to the end of the last page that starts in it. */
#define PG_CHUNK_BUF (PG_CHUNK_SIZE + PG_PAGE_SIZE)

struct pg_push {
    /* set before the threads start */
    const struct pg_snap *snap;
    struct pg_queue *q;
    const struct pg_rp *have; /* resuming: pages QEMU has (pg_rp_has) are not read */
    int nreaders;
    pthread_t threads[PG_MAX_READERS];
    atomic_int next_channel;
    /* the first error wins; its words in err */
    atomic_int failed;
    char err[512];
};

/* Starts NREADERS readers (at most PG_MAX_READERS); they call pg_queue_producer_done once each. */
int pg_push_start(struct pg_push *p, const struct pg_snap *snap, struct pg_queue *q,
                  const struct pg_rp *have, int nreaders);
/* Joins the readers: 0, or the first error with its words in ERR. */
int pg_push_join(struct pg_push *p, char *err, size_t errlen);

#endif
