#!/bin/bash
# The store fails under a save: it fills up (ENOSPC), then its disk dies (every write and fsync
# fails with EIO). Each save fails cleanly: the VM runs on, no partial snapshot is left, and the
# earlier snapshot stays whole and restorable.
source "$SRC_DIR/tests/e2e/lib.sh"
e2e_setup
store_on_loop 800
savefs_start
vm_start vm1
pass=$(guest_last_pass "$T/vm1.serial")
seed=$(guest_seed "$T/vm1.serial")

echo "name=first keep-running" >"$MNT/vm1/save" || die "first save failed: $(cat "$MNT/vm1/status")"
sums=$(cd "$STORE/vm1/snapshots/first" && md5sum ./*)
log "first snapshot: $(du -sh "$STORE/vm1/snapshots/first" | cut -f1) of $(df -h --output=size "$STORE" | tail -1)"

log "store full: ENOSPC, VM running, no partial snapshot"
# Leave room for half a snapshot, whatever the guest's size.
first_kib=$(du -sk "$STORE/vm1/snapshots/first" | cut -f1)
free_kib=$(df -k --output=avail "$STORE" | tail -1)
fallocate -l $(((free_kib - first_kib / 2) * 1024)) "$STORE/lost+found/filler" || die "cannot fill the store"
if echo "name=second" >"$MNT/vm1/save" 2>"$T/err"; then die "a save into a full store succeeded"; fi
grep -q "No space left on device" "$T/err" || die "the write failed with: $(cat "$T/err")"
log "status: $(status_field vm1 error)"
[[ $(status_field vm1 error) == *"No space left"* ]] || die "status does not say ENOSPC"
[[ $(vm_state vm1) == running ]] || die "vm1 is $(vm_state vm1) after ENOSPC"
[[ ! -e $MNT/vm1/snapshots/second ]] || die "a partial snapshot is listed"
check_no_partial vm1
guest_wait_pass_above "$T/vm1.serial" "$(guest_last_pass "$T/vm1.serial")" 60 || die "vm1 stopped"
[[ $(cd "$STORE/vm1/snapshots/first" && md5sum ./*) == "$sums" ]] || die "the first snapshot changed"
rm "$STORE/lost+found/filler"

log "the earlier snapshot restores"
kill "$(vm_pid vm1)"
vm_wait_gone vm1
mv "$MNT/vm1/snapshots/first" "$MNT/vm1/restore/" || die "restore failed: $(cat "$MNT/vm1/status")"
vm_adopt vm1
vm_check_alive vm1 "$pass" "$seed"
rm -r "$MNT/vm1/snapshots/first" || die "cannot delete the first snapshot"

log "the store's disk dies during a save: EIO, VM running, nothing published"
throttle_savefs $((25 << 20))
echo "name=third" >"$MNT/vm1/save" 2>"$T/err" &
saver=$!
wait_phase vm1 migrating
"$FS_SHUTDOWN" "$STORE" || die "cannot shut the store down"
if wait "$saver"; then die "a save onto a dead disk succeeded"; fi
log "write: $(cat "$T/err"); status: $(status_field vm1 error)"
[[ $(status_field vm1 error) == *"Input/output error"* ]] || die "status does not say EIO"
[[ $(vm_state vm1) == running ]] || die "vm1 is $(vm_state vm1) after EIO"
[[ ! -e $STORE/vm1/snapshots/third ]] || die "a snapshot was published on a dead disk"
guest_wait_pass_above "$T/vm1.serial" "$(guest_last_pass "$T/vm1.serial")" 60 || die "vm1 stopped"
log "PASS"
