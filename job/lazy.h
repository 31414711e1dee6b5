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

/* The push's mark, STORE/VM/.lazy@HOST (STORE_LAZY_MARK): "QEMU_PID PAGER_PID SNAPSHOT DIGEST",
 * what a restarted savefs needs to follow the push or resume it: the snapshot served and the
 * digest of the manifest the restore decided on. */
struct lazy_marked {
    int qemu, pager;
    char snapshot[SNAPSHOT_NAME_MAX + 1]; /* "" in the mark of an older savefs */
    char digest[TRUST_DIGEST_MAX];
};
/* 0, or -1 if PATH holds no mark. */
int lazy_mark_read(const char *path, struct lazy_marked *mk);

/* Follows the push marked for VM, as a job of its own, once a killed savefs left it (recover.c):
 * status shows it, a save waits for it, a page server that is gone or dies is resumed (QEMU's
 * postcopy recovery) and, if that cannot be, the VM is stopped with the reason in status.
 * Returns once the job follows it (job_release), or -errno (the reason in status). -ENOENT: no
 * such mark. */
int lazy_adopt(struct job_ctx *ctx, const char *vm);

/* 1 if PID is a savefs-pager that runs. */
int lazy_pager_alive(pid_t pid);

/* -EBUSY with WHY if VM runs while the page server of its lazy restore pushes its pages (savefs
 * may have been restarted since): a save then would meet a QEMU still in its incoming migration,
 * so it waits. */
int lazy_pushing(const struct job_ctx *ctx, const char *vm, char *why, size_t len);

#endif
