#!/bin/bash
# A live checkpoint on XFS: the keep-running save clones the VM's raw and qcow2 images into the
# snapshot (FICLONE) while the VM is paused; restored, the VM runs on a layer of its own over the
# clones, its RAM and disks agree and its count resumes from the checkpoint, while the images
# keep their later state. Twice: the second checkpoint is of the restored VM (its layer over the
# first snapshot's clones: a chain of two images per disk). A snapshot whose images the running
# VM's layer stands on cannot be deleted (EBUSY, nothing removed, the log names the layer); the
# one before it, which nothing runs on any more, can. A checkpoint carried into restore/ without
# its disks/ never restores (status names the missing image), nor with a damaged image (the
# checksum); once its images arrive whole, it restores and RAM and disks agree.
source "$SRC_DIR/tests/e2e/lib.sh"
source "$SRC_DIR/tests/e2e/ckpt.sh"
ckpt_setup xfs
ckpt_cycle c1 reflink
ckpt_cycle c2 reflink

log "c2's images are the base of the running VM's layer: rm -r c2 is refused"
if rm -r "$MNT/vm1/snapshots/c2" 2>"$T/rm.err"; then
    die "rm -r of the snapshot under the running VM succeeded"
fi
grep -qi "busy" "$T/rm.err" || die "rm -r c2: not EBUSY: $(cat "$T/rm.err")"
for f in manifest.json main channel-0 disks/0.0.qcow2 disks/0.1.raw; do
    [[ -f $STORE/vm1/snapshots/c2/$f ]] || die "rm -r c2 removed $f: $(ls -R "$STORE/vm1/snapshots/c2")"
done
grep -q "snapshot c2 not deleted (EBUSY): its image .*/snapshots/c2/disks/.* the layer .*/vm1/layers/c2\.[0-9TZ]*/[01]\.qcow2 that the VM's QEMU (pid $(vm_pid vm1)) runs on" \
    "$T/savefs.log" || die "the log does not name the layer and the VM: $(grep 'not deleted' "$T/savefs.log")"
seq_agree_after "$(wc -l <"$T/vm1.serial")"
log "c1's images back nothing now (c2 holds its own clones of the chain): rm -r c1 deletes it"
rm -r "$MNT/vm1/snapshots/c1" || die "rm -r c1 failed: $(grep 'not deleted' "$T/savefs.log")"
[[ ! -e $STORE/vm1/snapshots/c1 ]] || die "c1 is still there"

log "c2 carried into restore/ as c3 without its disks/: never restored, the reason names the image"
tar -C "$STORE/vm1/snapshots" -cf "$T/c2.tar" c2
s0=$(jq -r '.checkpoint.at' "$STORE/vm1/snapshots/c2/manifest.json")
kill "$(vm_pid vm1)"
vm_wait_gone vm1 || die "QEMU did not exit on SIGTERM"
tar -C "$MNT/vm1/restore" -xf "$T/c2.tar" --transform 's/^c2/c3/' --exclude disks ||
    die "tar x into restore/ failed"
status_wait '"reason": "waiting: captured disk .*/c3/disks/0\.[01]\.[a-z0-9]* is missing"'
sleep 2
[[ -z $(vm_pid vm1 || true) ]] || die "c3 was restored without its disks"

log "its images arrive, one damaged: refused on its checksum"
mkdir -p "$T/c3"
tar -C "$T/c3" -xf "$T/c2.tar" c2/disks
flip_byte "$T/c3/c2/disks/0.1.raw" 4096
cp -r "$T/c3/c2/disks" "$MNT/vm1/restore/c3/" || die "cp of the disks into restore/c3 failed"
status_wait 'verifying failed: captured disk .*c3/disks/0\.1\.raw is corrupt (checksum mismatch)'
[[ -z $(vm_pid vm1 || true) ]] || die "c3 was restored with a damaged image"

log "the image put right: c3 restores, RAM and disks agree"
lines=$(wc -l <"$T/vm1.serial")
tar -C "$T/c3" -xf "$T/c2.tar" c2/disks/0.1.raw
rm "$MNT/vm1/restore/c3/disks/0.1.raw" || die "rm of the damaged image failed"
cp "$T/c3/c2/disks/0.1.raw" "$MNT/vm1/restore/c3/disks/" || die "cp of the image failed"
for _ in $(seq 600); do
    [[ -n $(vm_pid vm1 || true) ]] && break
    sleep 0.1
done
[[ -n $(vm_pid vm1 || true) ]] || die "c3 was not restored: $(cat "$MNT/vm1/status")"
vm_adopt vm1
seq_agree_after "$lines"
log "c3 (checkpoint at $s0) restored by its import"
log "PASS"
