/* ckpt: a checkpoint's disks (disks= words). At save, while the VM is paused with its block
 * devices drained and flushed (the migration completed, before `cont`), every writable disk's
 * images are captured into the snapshot's disks/: cloned with FICLONE where their filesystem can
 * (reflink), else the VM is switched onto new qcow2 overlays in one QMP transaction and the
 * frozen images are copied afterwards (overlay). At restore, the VM runs on a qcow2 layer of its
 * own over the captured images. Called from save and restore job threads; docs/format.md. */
#ifndef SAVEFS_CKPT_H
#define SAVEFS_CKPT_H

#include "job_int.h"
#include "manifest.h"
#include "qmp.h"

#include <sys/stat.h>

struct ckpt;

/* While the VM is paused (Q's QEMU stopped, migration completed), after disks_record filled M:
 * rewrites M->argv to the block graph the VM really runs on (an image that later overlays
 * covered is replaced by its top image), then, unless the job's words say disks=none, captures
 * every writable disk into TMPDIR/disks: a clone now, or a switch onto an overlay whose frozen
 * image ckpt_disks_start copies. Read-only and share-rw disks are only referenced. A disk that
 * cannot be captured fails the save, naming it. *OUT: what ckpt_disks_finish needs (NULL with
 * nothing to finish). */
int ckpt_disks_capture(struct job *job, struct qmp *q, const char *tmpdir, struct manifest *m,
                       struct ckpt **out);

/* While the VM runs, before the pause (disks=auto or reflink): one block of each image a reflink
 * may capture is cloned into TMPDIR and dropped. The first reflink of an image cost a live
 * checkpoint's pause 90-240 ms (2 GiB raw on XFS, the store on the same device busy with the
 * streams, contrib/ckpt-modes), a later one 3-5 ms; this makes the pause's the later one.
 * Failures are ignored: the capture meets and reports them. */
void ckpt_disks_warm(struct job *job, struct qmp *q, const char *tmpdir, const struct manifest *m);

/* Once the VM runs again and its streams are done: starts a thread that copies what was not
 * cloned and checksums every captured image (nothing there touches what the VM uses), makes each
 * captured qcow2 name the next captured image as its backing file, fsyncs them and records them
 * in M's disks, while the job's thread makes the chunk files durable. C NULL: nothing to do. */
int ckpt_disks_start(struct job *job, struct ckpt *c, struct manifest *m);

/* Waits for that thread; fails with its reason, or if Q's QEMU is gone by then. A failure after
 * an overlay switch leaves the VM on its overlays (each a qcow2 over the frozen image: one
 * consistent chain), and says so. */
int ckpt_disks_finish(struct job *job, struct qmp *q, struct ckpt *c);

/* After a failed save, whatever failed: its thread joined, and the job's error says where the
 * VM's disks went on if they were switched onto overlays. */
void ckpt_failed(struct job *job, struct ckpt *c);

/* After a save: its thread joined; overlays created but never switched to are removed. */
void ckpt_free(struct ckpt *c);

/* At restore, before QEMU starts: every image of every captured disk of M (in the snapshot DIR)
 * is there with its size and checksum (else -ENOENT or -EBADMSG, naming it), a qcow2 layer over
 * each captured disk is made in LAYERS (a new directory), and *ARGV (ARGC strings, from CWD)
 * is replaced by one that opens the layers instead of the disks' images. */
int ckpt_restore_layers(struct job *job, const struct manifest *m, const char *dir,
                        const char *layers, const char *binary, const char *cwd, char ***argv,
                        int argc);

/* Image L of captured disk D is in the snapshot DIR with its size: 0, else -ENOENT (missing) or
 * -EBADMSG (another size) with WHY naming it; what lstat said in ST. */
int ckpt_layer_stat(const struct manifest_disk *d, int l, const char *dir, struct stat *st,
                    char *why, size_t len);

/* Every captured image of M in the snapshot DIR is whole: its size, its backing file name (the
 * next captured image), its checksum. 0, else -ENOENT or -EBADMSG (or the read's -errno) with
 * WHY naming it. For a restore, and an import that brought a checkpoint in. */
int ckpt_check_images(const struct manifest *m, const char *dir, char *why, size_t len);

#endif
