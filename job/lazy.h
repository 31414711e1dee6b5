/* lazy: the lazy restore. QEMU waits in postcopy for its pages, savefs-pager (a process of its
 * own, which outlives savefs) serves them out of the snapshot, the guest runs as soon as its
 * devices are loaded, and the job goes on after its caller returned (job_release) until the
 * last page is in. Runs in the restore job's thread (restore.c). */
#ifndef SAVEFS_LAZY_H
#define SAVEFS_LAZY_H

#include "restore.h"

/* 1 if R restores lazily, 0 fully: the user's choice (MANIFEST_RESTORE_XATTR) and what the
 * snapshot and the host allow. R->how says which and why. A choice of "lazy" that cannot be
 * followed fails the job: -EPROTONOSUPPORT. */
int lazy_choose(struct restore *r);

/* The lazy restore of R, checked and trusted: 0 once the last page is in (or once savefs stops,
 * the push going on without it), or -errno with the job's error; then QEMU is R->pidfd's to
 * kill, the page server is gone. LAZY_FALLBACK: with restore=auto, the page server refused the
 * snapshot before QEMU got a byte; R->how says why: the caller drops that QEMU and restores
 * fully. */
#define LAZY_FALLBACK 1
int lazy_restore(struct restore *r);

/* 1 if PID is a savefs-pager that runs. */
int lazy_pager_alive(pid_t pid);

/* -EBUSY with WHY if VM runs while the page server of its lazy restore pushes its pages (savefs
 * may have been restarted since): a save then would meet a QEMU still in its incoming migration,
 * so it waits. */
int lazy_pushing(const struct job_ctx *ctx, const char *vm, char *why, size_t len);

#endif
