/* precheck: what a restore checks of this host before any QEMU starts, beyond the snapshot's
 * own files and trust: that its QEMU can load the snapshot, and that the disks the snapshot's RAM
 * describes are still as they were when it was saved. Runs in a restore's job thread. */
#ifndef SAVEFS_PRECHECK_H
#define SAVEFS_PRECHECK_H

#include "job_int.h"
#include "manifest.h"

/* 0, or a negative errno with the reason worded into JOB: -EPROTONOSUPPORT for a snapshot of a
 * newer QEMU than BINARY (the one trust decided to run), -ESTALE for a disk that changed since the
 * save (unless the snapshot directory DIR carries the force attribute, see disks.h: then NOTE says
 * so, for the restore's summary; else it is empty). */
int precheck_restore(struct job *job, const struct manifest *m, const char *binary, const char *dir,
                     char *note, size_t notelen);

#endif
