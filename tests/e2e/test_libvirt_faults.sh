#!/bin/bash
# Faults during the save of a libvirt domain (libvirt.sh: libvirtd, virtlogd and the domain are
# the test's own). savefs killed (SIGKILL) while it saves leaves the domain paused; the next
# savefs resumes it through libvirt (libvirt says running, the guest goes on verifying its
# memory) and its status says what happened; one whose save completed stays off.
source "$SRC_DIR/tests/e2e/lib.sh"
source "$SRC_DIR/tests/e2e/libvirt.sh"

lv_setup
store_on_loop 1200
lv_domain_start
savefs_start
seed=$(guest_seed "$T/$DOM.serial")

log "savefs killed (SIGKILL) during the save: the domain waits paused, the next savefs resumes it"
throttle_savefs $((25 << 20)) writes
env --default-signal=INT sh -c "echo 4 > '$MNT/$DOM/save'" 2>"$T/save.err" &
saver=$!
wait_phase "$DOM" migrating
kill -9 "${SAVEFS_PIDS[-1]}"
wait "$saver" || true
fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
[[ $(virsh_ domstate "$DOM") == paused ]] || die "domstate without savefs: $(virsh_ domstate "$DOM" --reason)"
pass=$(guest_last_pass "$T/$DOM.serial")
savefs_start
grep -q "resumed the VM that an interrupted save had paused: through libvirt" "$T/savefs.log" ||
    die "savefs did not say it resumed $DOM: $(tail -n 5 "$T/savefs.log")"
[[ $(virsh_ domstate "$DOM" --reason) == "running (unpaused)" ]] ||
    die "domstate after the restart: $(virsh_ domstate "$DOM" --reason)"
vm_check_alive "$DOM" "$pass" "$seed"
[[ $(vm_state "$DOM") == running ]] || die "status: $(cat "$MNT/$DOM/status")"
status_field "$DOM" error | grep -q "savefs resumed the VM (libvirt domain) that the save had paused" ||
    die "status does not say what happened: $(cat "$MNT/$DOM/status")"
log "status: $(status_field "$DOM" error)"
[[ -z $(ls -A "$MNT/$DOM/snapshots") ]] || die "a snapshot appeared: $(ls "$MNT/$DOM/snapshots")"
check_no_partial "$DOM"

log "a save after the recovery works, and libvirt says destroyed"
echo 4 >"$MNT/$DOM/save" || die "save failed: $(cat "$MNT/$DOM/status")"
snap=$(status_field "$DOM" snapshot)
[[ $(virsh_ domstate "$DOM" --reason) == "shut off (destroyed)" ]] ||
    die "domstate after the save: $(virsh_ domstate "$DOM" --reason)"
log "a domain whose save completed stays off when savefs starts again"
savefs_stop
savefs_start
[[ $(virsh_ domstate "$DOM" --reason) == "shut off (destroyed)" ]] ||
    die "domstate after the restart: $(virsh_ domstate "$DOM" --reason)"
[[ -n $snap && $(jq -r '.libvirt.saved_in' "$MNT/$DOM/status") == "$snap" ]] ||
    die "status does not say where the state is: $(cat "$MNT/$DOM/status")"
log "PASS"
