/* disks: the identity and state of a VM's writable disks, recorded in a snapshot's manifest at
 * save time and compared before a restore: the snapshot's RAM (page cache, filesystem state)
 * describes the disks as they were then, and a guest resumed over changed disks corrupts them.
 * disks_record runs in a save's job thread; the rest are pure functions, any thread. */
#ifndef SAVEFS_DISKS_H
#define SAVEFS_DISKS_H

#include <stddef.h>

#include "job_int.h"
#include "manifest.h"
#include "qmp.h"

/* Set to "disks" on a snapshot directory, it lets the next restore go ahead over changed disks;
 * that restore removes it. */
#define DISKS_FORCE_XATTR MANIFEST_FORCE_XATTR
#define DISKS_FORCE_VALUE "disks"

/* Records in M every writable disk that QEMU (over Q) has open, as the file is now, and whether
 * the save keeps the VM running. Call once the migration completed: QEMU has flushed the disks
 * and lets them be until the VM runs again. With LATER, fingerprints are left "" for the caller
 * to fill (disks_fingerprint_path): their reads cost a live checkpoint's pause up to 200 ms
 * (a 2 GiB image on XFS, contrib/ckpt-modes), and a captured disk's capture holds the same
 * bytes once the VM runs again. */
int disks_record(struct job *job, struct qmp *q, struct manifest *m, int later);

/* The file an image's FILENAME (query-block's) names. QEMU says "json:{...}" for a node whose
 * options its plain name does not tell, as an overlay whose backing file was opened by a relative
 * path: its file child's "filename" is the image (*PARSED holds it: json_decref it). NULL for a
 * network image. */
const char *disks_image_file(const char *filename, json_t **parsed);

/* 0 if every disk M records is as it was saved (or M records none); else -ESTALE with the first
 * changed disk and how it changed in WHY. A different inode alone is no change: a disk copied
 * back from a backup taken with the snapshot keeps its content and times. */
int disks_compare(const struct manifest *m, char *why, size_t len);

/* What disks_compare says of the N disks a manifest recorded (RECORDED: 0 where it predates
 * the record), in words for the snapshot's user.savefs.disks. */
void disks_fact(const struct manifest_disk *disks, int n, int recorded, char *out, size_t len);

/* 1 if the snapshot directory DIR carries DISKS_FORCE_XATTR = "disks"; it is removed. */
int disks_take_force(const char *dir);

/* "xxh3:HEX" over the size, the first and last 64 KiB and 64 samples of 4 KiB of the file open
 * as FD (and for qcow2 its L1 table, which a write that allocates changes): cheap, and it sees
 * a disk replaced or rewritten where mtime was kept. */
int disks_fingerprint(int fd, char *out, size_t len);
/* disks_fingerprint of the file at PATH. */
int disks_fingerprint_path(const char *path, char *out, size_t len);

#endif
