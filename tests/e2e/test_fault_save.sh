#!/bin/bash
# Faults during a save, on a store throttled so that the save is hit mid-way: QEMU killed, the
# writer interrupted, savefs killed, savefs terminated. Each leaves the VM as it was (or paused and
# resumed at savefs's next start), no snapshot and no partial files, and says why.
source "$SRC_DIR/tests/e2e/lib.sh"
e2e_setup
store_on_loop 1200
savefs_start
throttle_savefs $((25 << 20))
# shellcheck disable=SC2034 # read by guest.sh
GUEST_MIB=256

# Starts `echo 4 > save` in the background as its own shell, with SIGINT at its default action
# as at a terminal (a script's background jobs ignore it); its pid in SAVER.
start_save() {
    env --default-signal=INT sh -c "echo 4 > '$MNT/$1/save'" 2>"$T/save.err" &
    SAVER=$!
}

log "QEMU killed during the save: the write fails, nothing is left"
vm_start vm1
start_save vm1
wait_phase vm1 migrating
kill -9 "$(vm_pid vm1)"
if wait "$SAVER"; then die "the save succeeded although QEMU was killed"; fi
[[ -z $(ls -A "$MNT/vm1/snapshots") ]] || die "a snapshot appeared: $(ls "$MNT/vm1/snapshots")"
check_no_partial vm1
grep -q '"result": "error"' "$MNT/vm1/status" || die "status tells no error: $(cat "$MNT/vm1/status")"
log "status: $(status_field vm1 error)"
vm_wait_gone vm1

log "the writer interrupted (SIGINT) during the save: cancelled, the VM runs on"
vm_start vm2
pass=$(guest_last_pass "$T/vm2.serial")
start_save vm2
wait_phase vm2 migrating
kill -INT "$SAVER"
if wait "$SAVER"; then die "the interrupted save succeeded"; fi
[[ $(vm_state vm2) == running ]] || die "vm2 is $(vm_state vm2) after the interrupted save"
[[ -z $(ls -A "$MNT/vm2/snapshots") ]] || die "the interrupted save left a snapshot"
check_no_partial vm2
status_field vm2 error | grep -q cancel || die "status does not say cancelled: $(cat "$MNT/vm2/status")"
guest_wait_pass_above "$T/vm2.serial" "$pass" 60 || die "vm2 stopped verifying its memory"

log "savefs killed (SIGKILL) during the save: the VM waits paused, the next savefs resumes it"
start_save vm2
wait_phase vm2 migrating
kill -9 "${SAVEFS_PIDS[-1]}"
wait "$SAVER" || true
fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
pass=$(guest_last_pass "$T/vm2.serial")
sleep 2
[[ $(guest_last_pass "$T/vm2.serial") == "$pass" ]] || die "vm2 ran on without savefs (not paused?)"
savefs_start
grep -q "resumed the VM" "$T/savefs.log" || die "savefs did not say it resumed vm2"
guest_wait_pass_above "$T/vm2.serial" "$pass" 60 || die "vm2 was not resumed"
check_no_partial vm2
[[ -z $(ls -A "$MNT/vm2/snapshots") ]] || die "a snapshot appeared"
throttle_savefs $((25 << 20))

log "savefs terminated (SIGTERM) during the save: the save is cancelled, savefs exits, VM runs"
start_save vm2
wait_phase vm2 migrating
pid=${SAVEFS_PIDS[-1]}
kill -TERM "$pid"
if wait "$SAVER"; then die "the save survived SIGTERM"; fi
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && die "savefs did not exit on SIGTERM"
pass=$(guest_last_pass "$T/vm2.serial")
guest_wait_pass_above "$T/vm2.serial" "$pass" 60 || die "vm2 not running after savefs exited"
check_no_partial vm2
log "PASS"
