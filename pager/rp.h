/* rp: the return path, read on the migration socket by its own thread: page requests go to the
 * queue, SHUT ends it (migration.c's mig_rp_message_type); in a resumed restore, the received
 * bitmaps and RESUME_ACK of QEMU's postcopy recovery (resume.h). */
#ifndef SAVEFS_PAGER_RP_H
#define SAVEFS_PAGER_RP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "pager.h"
#include "map.h"
#include "queue.h"

struct pg_rp {
    /* set before the thread starts */
    int fd;
    const struct pg_map *map;
    struct pg_queue *q;
    struct pg_events *ev;
    FILE *flog; /* the fault log, or NULL */
    pthread_t thread;
    /* the thread's until it ends (joined), then the caller's */
    int shut;          /* SHUT arrived */
    uint32_t shut_err; /* its error: 0 for a migration that completed */
    uint64_t requests; /* REQ_PAGES(_ID) messages */
    double t_running;  /* pg_now() when the devices' PONG (or RESUME_ACK) came, 0 before (mu) */
    char err[256];     /* what the destination did: closed without SHUT, sent a bad message */
    /* recovery: guarded by mu, waited for on cond */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    uint8_t *received[PG_MAX_BLOCKS]; /* per block, QEMU's bitmap of the pages it has (LE) */
    int nreceived;                    /* blocks whose bitmap came */
    int ended;                        /* the thread is done reading */
};

/* O's events (if any) hear `running` when QEMU answers the PING after the devices (or
 * acknowledges a resume); O's fault log (if any) gets every request. */
int pg_rp_start(struct pg_rp *rp, int fd, const struct pg_map *map, struct pg_queue *q,
                const struct pg_opts *o);
/* Waits for the thread (the destination closes its end after SHUT) and frees what it kept. */
void pg_rp_join(struct pg_rp *rp);
/* Whether page P of block B was in QEMU's received bitmap (recovery; 0 without one). Once the
 * bitmaps are in, they do not change: any thread. */
static inline int pg_rp_has(const struct pg_rp *rp, int b, uint64_t p)
{
    return rp->received[b] && rp->received[b][p / 8] >> (p % 8) & 1;
}

#endif
