#!/bin/bash
# A live checkpoint on XFS: the keep-running save clones the VM's raw and qcow2 images into the
# snapshot (FICLONE) while the VM is paused; restored, the VM runs on a layer of its own over the
# clones, its RAM and disks agree and its count resumes from the checkpoint, while the images
# keep their later state. Twice: the second checkpoint is of the restored VM (its layer over the
# first snapshot's clones: a chain of two images per disk).
source "$SRC_DIR/tests/e2e/lib.sh"
source "$SRC_DIR/tests/e2e/ckpt.sh"
ckpt_setup xfs
ckpt_cycle c1 reflink
ckpt_cycle c2 reflink
log "PASS"
