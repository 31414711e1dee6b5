/* jobline: a job's lines as people read them, spelled once: the progress file's lines (a job's
 * progress, then its outcome) and the log's (a job started, a job ended). Pure formatting of C
 * data: no lock, no I/O; called by follow.c in a FUSE worker or a job's thread. */
#ifndef SAVEFS_JOBLINE_H
#define SAVEFS_JOBLINE_H

#include <stddef.h>
#include <stdint.h>

/* What a line says of one job; the fields a kind of line does not use are ignored. */
struct jobline {
    const char *op; /* "save", "restore", "import" */
    const char *vm;
    const char *snapshot; /* "" while not known (a save picks its name once it runs) */
    const char *phase;    /* progress: "migrating", "restoring" ... */
    uint64_t done, total; /* progress: bytes (RAM scanned, streamed, written); total 0: unknown */
    double seconds;       /* since the job started; at its end, how long it took (0: unknown) */
    double rate;          /* progress: bytes a second */
    int channels;         /* 0: not known */
    int rc;               /* outcome: 0 or -errno */
    const char *reason;   /* outcome of a failure: why */
    uint64_t bytes;       /* outcome: bytes the job wrote (save) or streamed (restore) */
};

/* "save vm1   52%  1.4/2.7 GiB  1.3 GiB/s  ETA 1s  migrating": the third field of a progress
 * line always ends with '%' (cli reads it so). */
void jobline_progress(const struct jobline *j, char *buf, size_t len);
/* "save vm1  ok  20261202-101500  2 channels  2.7 GiB in 2.1 s  1.3 GiB/s" (without the time
 * and the rate if the time is unknown), or
 * "save vm1  failed: ESRCH: no QEMU listens on ...": the progress file's last line and the log's
 * line at a job's end. */
void jobline_outcome(const struct jobline *j, char *buf, size_t len);
/* "save vm1  started  2 channels": the log's line at a job's start. */
void jobline_started(const struct jobline *j, char *buf, size_t len);

#endif
