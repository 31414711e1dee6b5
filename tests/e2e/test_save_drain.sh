#!/bin/bash
# A save that fails while QEMU sets its migration up must leave QEMU able to migrate again: QEMU
# 7.2's multifd hangs in "setup" (and its next migrate fails with "duplicate yank instance") when
# a channel it connected is cut, or one is refused, while it waits for the channels. Two faults,
# each repeated: savefs out of open files (ulimit -n 64, a save of 64 channels), and an accept
# failing midway (a debug setting; savefs used to shut its socket then, cutting the channels it
# had and refusing the rest). Each failed save must fail cleanly and the next save succeed.
source "$SRC_DIR/tests/e2e/lib.sh"
e2e_setup
# QEMU's own output tells how it failed (it aborted on an assertion in 7.2 before savefs drained).
# Without errexit: e2e_cleanup must run, and it takes the test's status from $?.
trap 'rc=$?; set +e; tail -n 5 "$QMP"/*.qemu.log >&2; (exit $rc); e2e_cleanup' EXIT
# shellcheck disable=SC2034 # read by guest.sh
GUEST_MIB=64
REPEAT=${REPEAT:-8}

# fails_then_saves I WORDS ERRNO: a save with WORDS fails with ERRNO, then a 2-channel save
# succeeds; both on the same QEMU, which runs on.
fails_then_saves() {
    local i=$1 words=$2 errno=$3 pid
    pid=$(vm_pid vm1)
    if timeout 60 sh -c "echo '$words keep-running' > '$MNT/vm1/save'" 2>"$T/save.err"; then
        die "try $i: the save with '$words' succeeded"
    fi
    log "try $i: $(cat "$MNT/vm1/save")"
    [[ $(cat "$MNT/vm1/save") == "error $errno"* ]] || die "try $i: the failed save says: $(cat "$MNT/vm1/save")"
    timeout 60 sh -c "echo '2 keep-running name=ok-$i' > '$MNT/vm1/save'" ||
        die "try $i: the next save failed: $(cat "$MNT/vm1/save")"
    [[ $(vm_pid vm1) == "$pid" ]] || die "try $i: the QEMU changed or quit"
    [[ $(vm_state vm1) == running ]] || die "try $i: vm1 is $(vm_state vm1)"
    check_no_partial vm1
}

vm_start vm1

log "savefs limited to 64 open files: a save of 64 channels fails, the next one succeeds"
savefs_start
prlimit --pid "${SAVEFS_PIDS[-1]}" --nofile=64:64
for i in $(seq "$REPEAT"); do
    fails_then_saves "emfile-$i" 64 EMFILE
done
savefs_stop

log "the 40th accept of a 64-channel save fails (as out of files): QEMU aborted or stayed in setup"
SAVEFS_DEBUG_SAVE_FAIL_ACCEPT=40 savefs_start
for i in $(seq "$REPEAT"); do
    fails_then_saves "accept-$i" 64 EMFILE
done
guest_wait_pass_above "$T/vm1.serial" "$(guest_last_pass "$T/vm1.serial")" 60 ||
    die "vm1 stopped verifying its memory"
log "PASS"
