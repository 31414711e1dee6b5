#!/bin/bash
# Live checkpoints that cannot be made or restored, on ext4 (overlay): disks=reflink where the
# filesystem has none is refused naming the disk; ENOSPC while copying a disk fails the save
# (nothing published, the VM runs on, on its overlay over the frozen image, which status names);
# QEMU killed while a disk is copied publishes nothing and leaves each disk one consistent chain
# (the new overlay over the frozen image); a captured image corrupt or deleted refuses the
# restore (EBADMSG, ENOENT) naming it; put back, the checkpoint restores with RAM and disks
# agreeing.
source "$SRC_DIR/tests/e2e/lib.sh"
source "$SRC_DIR/tests/e2e/ckpt.sh"
ckpt_setup ext4

# Fails unless the guest goes on counting with RAM and disks agreeing.
still_counting() {
    local lines
    lines=$(wc -l <"$T/vm1.serial")
    seq_wait_above "$(seq_last)" "$lines"
    if grep -a 'SAVEFS-SEQ MISMATCH' "$T/vm1.serial"; then
        die "RAM and disks disagree"
    fi
}

# Checkpoint $1 with more words $2 must fail with errno words $3 and status words $4; nothing is
# published.
save_fails() {
    if echo "keep-running name=$1 $2" >"$MNT/vm1/save" 2>"$T/save.err"; then
        die "$1 succeeded"
    fi
    grep -qi "$3" "$T/save.err" || die "$1: not $3: $(cat "$T/save.err"): $(cat "$MNT/vm1/status")"
    grep -qF "$4" "$MNT/vm1/status" || die "$1: status does not say '$4': $(cat "$MNT/vm1/status")"
    [[ ! -e $MNT/vm1/snapshots/$1 ]] || die "$1: a snapshot was published"
    check_no_partial vm1
}

log "disks=reflink on ext4: refused, naming the disk"
save_fails refl disks=reflink "not supported" "$FS/img/disk.raw"
still_counting

log "a checkpoint, then 60 MiB of data on the raw disk (below the guest's sector)"
echo "keep-running name=c0" >"$MNT/vm1/save" || die "checkpoint c0 failed: $(cat "$MNT/vm1/status")"
c0_mem=$(find "$STORE/vm1/snapshots/c0" -maxdepth 1 -type f -printf '%s\n' | awk '{s += $1} END {print s}')
# The VM runs on disk.raw.c0.qcow2 now: disk.raw is frozen, and a second checkpoint copies it.
[[ -f $FS/img/disk.raw.c0.qcow2 ]] || die "no overlay after c0: $(ls "$FS/img")"
still_counting

log "ENOSPC while a disk is copied"
dd if=/dev/urandom of="$FS/img/disk.raw" bs=1M seek=1 count=60 conv=notrunc status=none
sync
avail=$(df -B1 --output=avail "$FS" | tail -n 1)
fallocate -l $((avail - c0_mem * 12 / 10 - (10 << 20))) "$FS/filler"
save_fails nospc "" "no space" "No space left"
grep -qF "disk.raw.c0.qcow2.nospc.qcow2 over $FS/img/disk.raw.c0.qcow2" "$MNT/vm1/status" ||
    die "status does not say which chain the VM runs on: $(cat "$MNT/vm1/status")"
still_counting
rm "$FS/filler"

log "QEMU killed while a disk is copied"
sync
echo 3 >/proc/sys/vm/drop_caches
throttle_savefs $((8 << 20))
echo "keep-running name=killed" >"$MNT/vm1/save" 2>"$T/save.err" &
saver=$!
for _ in $(seq 600); do
    [[ $(status_field vm1 phase) == "copying disks" ]] && break
    sleep 0.1
done
[[ $(status_field vm1 phase) == "copying disks" ]] || die "the save never copied a disk: $(cat "$MNT/vm1/status")"
kill -9 "$(vm_pid vm1)"
if wait "$saver"; then
    die "the checkpoint succeeded though QEMU was killed"
fi
unthrottle_savefs
grep -q "QEMU exited during the checkpoint" "$MNT/vm1/status" || die "status: $(cat "$MNT/vm1/status")"
[[ ! -e $MNT/vm1/snapshots/killed ]] || die "a snapshot was published"
check_no_partial vm1
# The chain the VM left: each checkpoint's overlay over the last, over the frozen disk.raw.
top=$FS/img/disk.raw.c0.qcow2.nospc.qcow2.killed.qcow2
[[ $(qemu-img info --backing-chain -U "$top" | grep -c '^image:') == 4 ]] ||
    die "the VM's disk is not one chain of 4 images: $(qemu-img info --backing-chain -U "$top")"
qemu-img check -q "$top" || die "the overlay does not check"

log "a captured image corrupt, then deleted: the restore is refused, naming it"
img=$STORE/vm1/snapshots/c0/disks/0.0.raw
cp "$img" "$T/saved.raw"
flip_byte "$img" 4096
if mv "$MNT/vm1/snapshots/c0" "$MNT/vm1/restore/" 2>"$T/mv.err"; then
    die "restore over a corrupt captured image accepted"
fi
grep -qi "bad message" "$T/mv.err" || die "not EBADMSG: $(cat "$T/mv.err")"
grep -qF "$img" "$MNT/vm1/status" || die "status does not name $img: $(cat "$MNT/vm1/status")"
rm "$img"
if mv "$MNT/vm1/snapshots/c0" "$MNT/vm1/restore/" 2>"$T/mv.err"; then
    die "restore without a captured image accepted"
fi
grep -qi "no such file" "$T/mv.err" || die "not ENOENT: $(cat "$T/mv.err")"
grep -qF "$img" "$MNT/vm1/status" || die "status does not name $img: $(cat "$MNT/vm1/status")"
[[ -z $(vm_pid vm1 || true) ]] || die "a QEMU runs after the refusal"

log "put back, c0 restores: RAM and disks agree"
cp "$T/saved.raw" "$img"
lines=$(wc -l <"$T/vm1.serial")
mv "$MNT/vm1/snapshots/c0" "$MNT/vm1/restore/" || die "restore of c0 failed: $(cat "$MNT/vm1/status")"
vm_adopt vm1
seq_agree_after "$lines"
log "PASS"
