/* migrate: the QMP conversation about migration that saves, restores and recovery share: setting
 * multifd up (and back), and reading the migration's state. Errors are worded into ERR (as
 * qmp_cmd does), never into a job: the caller decides whose error it is. Runs in a job's thread,
 * or in main's at recovery. */
#ifndef SAVEFS_MIGRATE_H
#define SAVEFS_MIGRATE_H

#include <jansson.h>
#include <stdint.h>

#include "qmp.h"

/* "No cap": QEMU throttles multifd to 128 MiB/s by default. INT64_MAX is accepted by every
 * version and reads back as a JSON integer (2^64-1 would not). */
#define MIGRATE_NO_BANDWIDTH_CAP INT64_MAX

/* What mig_setup changed, to put back. */
struct mig_saved {
    json_t *caps;   /* [{capability, state}] as they were */
    json_t *params; /* {multifd-channels, max-bandwidth, multifd-compression, downtime-limit} */
};

/* qmp_cmd with the monitor's usual timeout; ARGS is stolen. ERR may be NULL where nobody asks
 * why (putting a setting back, resuming after a failure whose own error is what counts). */
int mig_cmd(struct qmp *q, const char *name, json_t *args, json_t **ret, char *err, size_t errlen);

/* Enables multifd with CHANNELS channels and no compression, a bandwidth cap of BANDWIDTH bytes/s
 * (MIGRATE_NO_BANDWIDTH_CAP: none), and turns off what would make either side talk back or pause
 * (return-path, postcopy, pause-before-switchover). DOWNTIME_MS > 0 sets downtime-limit: the pause
 * QEMU aims at when it stops a running VM to complete. With SAVED, remembers the old values for
 * mig_undo. -EBUSY if QEMU has not let go of an earlier migration within a few seconds. */
int mig_setup(struct qmp *q, int channels, int64_t bandwidth, int downtime_ms,
              struct mig_saved *saved, char *err, size_t errlen);
/* Sets downtime-limit during a migration: QEMU completes as soon as it expects to send what is
 * left within it. */
int mig_set_downtime(struct qmp *q, int downtime_ms, char *err, size_t errlen);
/* For a lazy restore's destination: postcopy-ram on, multifd and what would pause off (no
 * parameter changes). -EPROTONOSUPPORT if this QEMU has no postcopy-ram. */
int mig_setup_postcopy(struct qmp *q, struct mig_saved *saved, char *err, size_t errlen);
/* Puts back what SAVED remembers, as a courtesy: what fails is not reported. */
void mig_undo(struct qmp *q, struct mig_saved *saved);

/* query-migrate: STATUS (e.g. "active", "completed", "failed") and, on failure, QEMU's words. */
int mig_query(struct qmp *q, char *status, size_t len, char *why, size_t whylen, char *err,
              size_t errlen);

/* How long QEMU kept the VM stopped to complete a migration of a running VM, in *DOWNTIME_MS
 * (0 when it does not say). */
int mig_downtime(struct qmp *q, int64_t *downtime_ms, char *err, size_t errlen);

/* 1 while the VM's CPUs run (query-status); 0 when stopped or when QEMU does not answer. */
int mig_vm_running(struct qmp *q);

/* `cont` after a migration: 0, or -errno with ERR (may be NULL) filled. QEMU 7.2 says a migration
 * is completed before its migration thread has taken the big lock to leave the "finish-migrate"
 * run state (`migration_iteration_finish`), and refuses a `cont` in between: "Migration is not
 * finalized yet" (a live checkpoint's resume failed so in CI). A cont refused while QEMU is in
 * that state is sent again once it has left it (a few seconds at most). */
int mig_cont(struct qmp *q, char *err, size_t errlen);

/* 1 for a status after which nothing more happens. */
int mig_finished(const char *status);

/* Cancels the outgoing migration and waits up to TIMEOUT_MS until QEMU says it is over and has
 * cleaned it up, so that the VM can migrate again. 0, -ETIMEDOUT (not over), -EBUSY (not let
 * go of), or a QMP error. */
int mig_cancel(struct qmp *q, int timeout_ms);

#endif
