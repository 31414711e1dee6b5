#!/bin/bash
# keep-running: the VM runs on through the save; the snapshot restores once that VM is gone.
source "$SRC_DIR/tests/e2e/lib.sh"
e2e_setup
vm_start vm1
savefs_start

pid=$(vm_pid vm1)
pass=$(guest_last_pass "$T/vm1.serial")
seed=$(guest_seed "$T/vm1.serial")
echo "keep-running parallel=2 name=kept" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
[[ $(vm_pid vm1) == "$pid" ]] || die "the QEMU changed or quit"
[[ $(vm_state vm1) == running ]] || die "vm1 is $(vm_state vm1) after keep-running"
[[ $(vm_multifd vm1) == false ]] || die "vm1 has multifd '$(vm_multifd vm1)' after the save"
guest_wait_pass_above "$T/vm1.serial" "$pass" 60 || die "the guest stopped verifying"

log "a restore while the VM runs is refused"
if mv "$MNT/vm1/snapshots/kept" "$MNT/vm1/restore/" 2>"$T/mv.err"; then
    die "restore over a running VM was accepted"
fi
grep -q "busy" "$T/mv.err" || die "not EBUSY: $(cat "$T/mv.err")"

log "stop the VM, then restore the kept snapshot"
kill "$pid"
vm_wait_gone vm1 || die "QEMU did not exit on SIGTERM"
mv "$MNT/vm1/snapshots/kept" "$MNT/vm1/restore/" || die "restore failed: $(cat "$MNT/vm1/status")"
vm_adopt vm1
vm_check_alive vm1 "$pass" "$seed"
log "PASS"
