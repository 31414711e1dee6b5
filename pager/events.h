/* events: the pager's progress as lines on a file descriptor (--events FD), for the savefs job
 * that started it. The contract (fields are only ever added at a line's end):
 *   running            QEMU loaded the devices and has POSTCOPY_RUN: the guest may run
 *   push DONE TOTAL    pages in QEMU's stream so far / all pages (at most every 100 ms)
 *   done SECONDS       the last page is in and QEMU acknowledged the end (seconds since the
 *                      pager started)
 *   fail WORDS...      why the pager stops (one line, the last)
 * Any thread; each line is one write(2), so lines never interleave. */
#ifndef SAVEFS_PAGER_EVENTS_H
#define SAVEFS_PAGER_EVENTS_H

#include <pthread.h>
#include <stdint.h>

#define PG_EVENTS_PUSH_EVERY 0.1 /* s between push lines */

struct pg_events {
    int fd; /* -1: no events asked for; every call is then a no-op */
    pthread_mutex_t mu;
    /* guarded by mu */
    double last_push; /* pg_now() of the last push line */
    int failed;       /* a fail line was written: nothing follows it */
};

void pg_events_init(struct pg_events *ev, int fd);
void pg_events_destroy(struct pg_events *ev);
void pg_events_running(struct pg_events *ev);
/* A push line if FORCE or PG_EVENTS_PUSH_EVERY passed since the last. */
void pg_events_push(struct pg_events *ev, uint64_t done, uint64_t total, int force);
void pg_events_done(struct pg_events *ev, double seconds);
/* WHY on one line (newlines become spaces). */
void pg_events_fail(struct pg_events *ev, const char *why);

#endif
