/* rp: the return path, read on the migration socket by its own thread: page requests go to the
 * queue, SHUT ends it (migration.c's mig_rp_message_type). */
#ifndef SAVEFS_PAGER_RP_H
#define SAVEFS_PAGER_RP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "map.h"
#include "queue.h"

struct pg_rp {
    /* set before the thread starts */
    int fd;
    const struct pg_map *map;
    struct pg_queue *q;
    struct pg_events *ev;
    pthread_t thread;
    /* the thread's until it ends (joined), then the caller's */
    int shut;          /* SHUT arrived */
    uint32_t shut_err; /* its error: 0 for a migration that completed */
    uint64_t requests; /* REQ_PAGES(_ID) messages */
    double t_running;  /* pg_now() when the devices' PONG came, 0 before */
    char err[256];     /* what the destination did: closed without SHUT, sent a bad message */
};

/* EV (or NULL) hears `running` when QEMU answers the PING after the devices. */
int pg_rp_start(struct pg_rp *rp, int fd, const struct pg_map *map, struct pg_queue *q,
                struct pg_events *ev);
/* Waits for the thread (the destination closes its end after SHUT). */
void pg_rp_join(struct pg_rp *rp);

#endif
