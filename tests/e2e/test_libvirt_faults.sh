#!/bin/bash
# Faults during the save of a libvirt domain (libvirt.sh: libvirtd, virtlogd and the domain are
# the test's own). A QEMU that does not answer (SIGSTOP) holds libvirt's monitor call, which has
# no timeout of its own: the save fails within savefs's monitor deadline (5 s) with ETIMEDOUT and
# says why, and the domain runs on as before once QEMU does. savefs killed (SIGKILL) while it
# saves leaves the domain paused; the next savefs resumes it through libvirt (libvirt says
# running, the guest goes on verifying its memory) and its status says what happened; one whose
# save completed stays off.
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

log "QEMU stopped (SIGSTOP): the save fails with ETIMEDOUT, the domain is left as it was"
qemu=$(lv_qemu_pid) || die "no QEMU for $DOM"
kill -STOP "$qemu"
started=$SECONDS
# Without a deadline the write would wait for ever: the shell is killed after 120 s. bash's echo
# names the write's errno (dash's says "I/O error" for any).
if timeout -k 5 120 bash -c "echo 4 > '$MNT/$DOM/save'" 2>"$T/save.err"; then
    kill -CONT "$qemu"
    die "the save succeeded against a stopped QEMU"
fi
took=$((SECONDS - started))
kill -CONT "$qemu"
((took < 60)) || die "the save failed only after $took s: $(cat "$T/save.err")"
grep -q "timed out" "$T/save.err" || die "not ETIMEDOUT: $(cat "$T/save.err")"
[[ $(status_field "$DOM" errno) == ETIMEDOUT ]] || die "status: $(cat "$MNT/$DOM/status")"
status_field "$DOM" error | grep -q "no answer through libvirt" ||
    die "status does not say why: $(cat "$MNT/$DOM/status")"
log "status: $(status_field "$DOM" error)"
[[ $(virsh_ domstate "$DOM" --reason) == "running (unpaused)" ]] ||
    die "domstate after the failed save: $(virsh_ domstate "$DOM" --reason)"
[[ -z $(ls -A "$MNT/$DOM/snapshots") ]] || die "a snapshot appeared: $(ls "$MNT/$DOM/snapshots")"
check_no_partial "$DOM"
pass=$(guest_last_pass "$T/$DOM.serial")
vm_check_alive "$DOM" "$pass" "$seed"

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
