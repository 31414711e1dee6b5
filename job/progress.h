/* progress: what a save reports while QEMU migrates. Runs in a save's job thread; status reads
 * what it sets under the context's lock. */
#ifndef SAVEFS_PROGRESS_H
#define SAVEFS_PROGRESS_H

#include <stdint.h>

#include "job_int.h"
#include "qmp.h"

/* Sets JOB's progress from QEMU's query-migrate over Q: bytes_done of bytes_total is the guest
 * RAM QEMU has scanned (zero pages included, which cost nothing to write), bytes_written the
 * WRITTEN bytes the copier has received so far. Returns QEMU's passes over the RAM so far (a
 * running VM's migration makes one per round of dirtied pages; 0 when unknown). */
int64_t progress_save(struct job *job, struct qmp *q, uint64_t written);

/* QEMU has sent everything: the save will write TOTAL bytes of stream, and the scan is whole. */
void progress_save_sent(struct job *job, uint64_t total);

/* From query-migrate's answer RET: the RAM scanned in *DONE of *TOTAL; 0, or -ENODATA when RET
 * has no RAM figures yet (the migration is setting up). */
int progress_from_migrate(json_t *ret, uint64_t *done, uint64_t *total);

#endif
