#!/bin/bash
# A live checkpoint on ext4 (no reflinks): the keep-running save switches the VM's raw and qcow2
# disks onto new qcow2 overlays in one QMP transaction and copies the frozen images into the
# snapshot; restored, the VM runs on a layer of its own over the copies, its RAM and disks agree
# and its count resumes from the checkpoint. Twice: the second checkpoint is of the restored VM.
source "$SRC_DIR/tests/e2e/lib.sh"
source "$SRC_DIR/tests/e2e/ckpt.sh"
ckpt_setup ext4
ckpt_cycle c1 overlay
ckpt_cycle c2 overlay
log "PASS"
