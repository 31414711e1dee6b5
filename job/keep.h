/* keep: a save's keep=N, the retention of a VM's snapshots. Runs in a save's job thread once the
 * new snapshot is durable; the setter of the snapshots' other users from any thread. */
#ifndef SAVEFS_KEEP_H
#define SAVEFS_KEEP_H

#include "job_int.h"

/* With keep=N among JOB's words: deletes the VM's snapshots beyond the N newest, the one JOB just
 * saved counted first, by the creation time their manifests record. Deletes none that is in use
 * or that is not a complete snapshot of the VM. What it deleted, and what it could not, goes at
 * the end of JOB's summary; nothing here fails the save. */
void keep_prune(struct job *job);

#endif
