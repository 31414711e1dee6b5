/* migrate: the QMP conversation about migration that saves and restores share: setting multifd
 * up (and back), and reading the migration's state. Runs in a job's thread. */
#ifndef SAVEFS_MIGRATE_H
#define SAVEFS_MIGRATE_H

#include <jansson.h>
#include <stdint.h>

#include "job_int.h"
#include "qmp.h"

/* "No cap": QEMU throttles multifd to 128 MiB/s by default. INT64_MAX is accepted by every
 * version and reads back as a JSON integer (2^64-1 would not). */
#define MIGRATE_NO_BANDWIDTH_CAP INT64_MAX

/* What mig_setup changed, to put back. */
struct mig_saved {
    json_t *caps;   /* [{capability, state}] as they were */
    json_t *params; /* {multifd-channels, max-bandwidth, multifd-compression} as they were */
};

/* Runs a QMP command on JOB's behalf; a failure is worded into job->err naming the VM. ARGS is
 * stolen. */
int mig_cmd(struct job *job, struct qmp *q, const char *name, json_t *args, json_t **ret);

/* Enables multifd with CHANNELS channels and no compression, no bandwidth cap, and turns off what
 * would make either side talk back or pause (return-path, postcopy, pause-before-switchover).
 * With SAVED, remembers the old values for mig_undo. -EBUSY if QEMU has not let go of an earlier
 * migration within a few seconds. */
int mig_setup(struct job *job, struct qmp *q, int channels, struct mig_saved *saved);
void mig_undo(struct job *job, struct qmp *q, struct mig_saved *saved);

/* query-migrate: STATUS (e.g. "active", "completed", "failed") and, on failure, QEMU's words. */
int mig_query(struct job *job, struct qmp *q, char *status, size_t len, char *why, size_t whylen);

/* 1 for a status after which nothing more happens. */
int mig_finished(const char *status);

/* Cancels the outgoing migration and waits up to TIMEOUT_MS until QEMU says it is over and has
 * cleaned it up, so that the VM can migrate again. 0, -ETIMEDOUT (not over), -EBUSY (not let
 * go of), or a QMP error; job->err is left as it was. */
int mig_cancel(struct job *job, struct qmp *q, int timeout_ms);

#endif
