/* status: what NAME/status shows, as data. job_status_new fills it from the registry (and from
 * QEMU when no job runs), import_status_add adds the imports, and job_status_json writes it as
 * JSON once, when the filesystem serves the file: the one place that knows the JSON's shape. */
#ifndef SAVEFS_STATUS_H
#define SAVEFS_STATUS_H

#include <limits.h>

#include "job_int.h"
#include "watch.h"

#define STATUS_NOTE_MAX 256

/* One import of the VM, as its status lists it. */
struct status_import {
    char snapshot[SNAPSHOT_NAME_MAX + 1];
    const char *phase; /* "importing", "verifying", ... (static) */
    int has_reason;    /* a restored import shows none */
    char reason[JOB_ERR_MAX];
    int files_open; /* files open for writing through the mount; 0: not shown */
};

struct job_status {
    char vm[SNAPSHOT_NAME_MAX + 1];
    const char *state; /* the job's kind's state, QEMU's run state, or an import's phase */
    /* what QEMU said (an idle VM) or the job's QEMU: each shown only if set */
    int has_pid;
    int pid;
    char console[PATH_MAX];
    char qemu_status[32];
    char note[STATUS_NOTE_MAX]; /* why QEMU could not be asked */
    int libvirt;                /* a libvirt domain: its monitor is libvirt's (lvirt.h) */
    char libvirt_saved[SNAPSHOT_NAME_MAX + 1]; /* the snapshot its <metadata> says holds it */
    /* the job in progress: a copy of its fields guarded by the context's lock */
    int has_job;
    struct job job;
    double elapsed_s;
    struct job_result last; /* last.valid 0: no job ended yet */
    struct status_import *imports;
    int nimports;
    struct watch_view lease; /* who runs the VM in the fleet */
};

/* The reason VM's last job failed, into WHY; "" if it did not fail (or none ran). */
void job_status_last_error(struct job_ctx *ctx, const char *vm, char *why, size_t len);

#endif
