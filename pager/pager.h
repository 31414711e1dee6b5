/* pager: a postcopy source that serves a saved VM's RAM out of its snapshot to a QEMU started
 * with -incoming defer, -S and the postcopy-ram capability: the guest runs as soon as its
 * devices are loaded, its pages come as it touches them (requests first) while every other page
 * is pushed in the background. One process per restore, so that savefs can go away while a
 * guest still needs pages. Calls: pg_snap_open (snap.h), then pg_serve on one thread. */
#ifndef SAVEFS_PAGER_H
#define SAVEFS_PAGER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "snap.h"

#define PG_MAX_READERS 8

struct pg_events;
struct pg_hot;

struct pg_opts {
    int readers;              /* background reader threads */
    int connect_ms;           /* how long to retry connecting to the socket */
    struct pg_events *ev;     /* progress lines (events.h), or NULL */
    int resume;               /* serve a QEMU in postcopy recovery (resume.h), not a fresh one */
    const struct pg_hot *hot; /* pages pushed first (hot.h), or NULL */
    FILE *fault_log;          /* where the return-path thread logs requests (hot.h), or NULL */
};

/* What a served restore measured (seconds from pg_serve's call, CLOCK_MONOTONIC). */
struct pg_stats {
    double t_connected, t_devices_sent, t_running, t_last_page, t_shut;
    uint64_t data_pages, zero_pages, requests, requested_pages;
    uint64_t had_pages; /* resuming: the pages QEMU had already */
    uint64_t hot_pages; /* pushed first, from --hot */
    uint64_t bytes;
    double t_waited, t_send; /* the writer's seconds waiting for pages to send, and in send() */
    double req_median_ms, req_p99_ms, req_max_ms; /* request in, its pages written */
};

/* CLOCK_MONOTONIC in seconds: the clock of every figure. */
double pg_now(void);

/* Connects to the destination QEMU listening on SOCK_PATH (with O->resume, the URI of its
 * migrate-recover) and serves snapshot S until the destination acknowledged the end (SHUT). 0, or
 * -errno with ERR filled: QEMU went away, a page could not be read, a channel's checksum did not
 * match (found once its pages were served). */
int pg_serve(const struct pg_snap *s, const char *sock_path, const struct pg_opts *o,
             struct pg_stats *st, char *err, size_t errlen);

#endif
