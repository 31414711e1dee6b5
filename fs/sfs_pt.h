/* sfs_pt: FUSE passthrough of the store's files. Where the kernel offers it (Linux 6.9 on) and
 * savefs may hand files to it (CAP_SYS_ADMIN in the initial user namespace: the kernel's rule
 * for a backing file), an open store file is registered as the backing file of its open, and
 * the kernel then reads, writes and maps it itself: tar, cp and rsync through the mount make no
 * request to savefs per 128 KiB or per write (docs/benchmarks.md). Opens, closes, attributes and
 * names still come to savefs, so imports, their checks and status work as before.
 *
 * The kernel keeps one backing file per FUSE inode: two opens of one store file at once must
 * name the same one, or the second fails (EIO). The backing files are therefore shared per store
 * file, counted, and given back at the last release. Called from the init callback, libfuse's
 * workers (open, create, release) and the reply path (sfs_io.c), which tells the kernel. */
#ifndef SAVEFS_SFS_PT_H
#define SAVEFS_SFS_PT_H

#include <stddef.h>
#include <stdint.h>

/* At INIT: decides for the mount's lifetime whether store files pass through, given whether the
 * kernel's INIT offered it (KERNEL_OFFERS) and whether savefs may register backing files, and
 * logs the outcome with its reason. 1 if they pass through. FUSE_DEV is /dev/fuse's descriptor
 * of the session, where backing files are registered. */
int sfs_pt_negotiate(int kernel_offers, int fuse_dev);

/* 1 once sfs_pt_negotiate said yes. */
int sfs_pt_on(void);

/* In an open or create answered by this thread: registers FD (the store file just opened, whose
 * libfuse file handle is FH) as its backing file. The id (> 0) for sfs_pt_release, or 0 where the
 * file goes through savefs (passthrough off, or the kernel refused this file: logged once). */
int sfs_pt_open(int fd, uint64_t fh);

/* The file of backing ID was released (or its open failed): the store file's backing is given
 * back to the kernel once no open file uses it. */
void sfs_pt_release(int id);

/* In the reply path: 1 and the backing ID if this thread's open of FH is to pass through (the
 * reply then says FOPEN_PASSTHROUGH). Every reply of the thread clears what its open noted. */
int sfs_pt_reply(uint64_t fh, int32_t *id);

#endif
