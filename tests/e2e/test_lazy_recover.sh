#!/bin/bash
# A lazy restore's push when savefs itself was killed: savefs (kill -9) and then its page server
# (kill -9) die mid-push, QEMU waits in postcopy-paused; the restarted savefs follows the push
# again, resumes it through QEMU's postcopy recovery (migrate-recover + savefs-pager --resume), and
# the guest's memory checks pass after it. Then the same with a page server that cannot resume
# (its snapshot removed while savefs was down): the VM is stopped with the reason in status, never
# left hanging.
source "$SRC_DIR/tests/e2e/lib.sh"
: "${PAGER_BIN:?PAGER_BIN must name savefs-pager}"

# kill_both SNAP: vm1 restored lazily from SNAP, its push slowed down (the mark names the snapshot
# and the digest decided on); savefs and then the page server are killed mid-push, the dead
# mount detached.
kill_both() {
    vm_wait_gone vm1 || die "vm1's QEMU did not quit after the save"
    cap_reads $((16 << 20))
    mv "$MNT/vm1/snapshots/$1" "$MNT/vm1/restore/" || die "restore of $1 failed: $(cat "$MNT/vm1/status")"
    vm_adopt vm1
    [[ $(lazy_mark_field vm1 3) == "$1" && $(lazy_mark_field vm1 4) == sha256:* ]] ||
        die "the mark names no snapshot and digest: $(cat "$STORE"/vm1/.lazy@*)"
    pager=$(lazy_mark_field vm1 2)
    # Once the guest's first pages are in: a QEMU whose main thread still waits for one cannot
    # take the monitor commands of a recovery (see below). The push's first report already
    # counts the zero pages (docs/lazy.md): 24 MiB more than that.
    local base=0 now
    for _ in $(seq 100); do
        now=$(jq -r '.job.bytes_done // 0' "$MNT/vm1/status")
        ((base == 0)) && base=$now
        ((base > 0 && now > base + (24 << 20))) && break
        sleep 0.1
    done
    kill -9 "${SAVEFS_PIDS[-1]}"
    kill -9 "$pager"
    savefs_stop
    cap_reads 0
}

e2e_setup
store_on_loop 2000
vm_start vm1
savefs_start --pager "$PAGER_BIN"
throttle_savefs 0
unthrottle_savefs

log "savefs and its page server killed mid-push: the restarted savefs resumes the push"
echo "2 name=s1" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
pass=$(guest_last_pass "$T/vm1.serial")
seed=$(guest_seed "$T/vm1.serial")
kill_both s1
savefs_start --pager "$PAGER_BIN"
# The restarted savefs (and the page servers it starts) in the throttle's cgroup too: without it
# the second push below ran uncapped and could end before it was killed (CI: 1.7 s).
echo "${SAVEFS_PIDS[-1]}" >"$THROTTLE_CG/cgroup.procs"
wait_no_job vm1
why=$(last_message vm1)
log "$why"
compgen -G "$STORE/vm1/.lazy@*" >/dev/null && die "the push's mark stayed after the push"
# QEMU 7.2 runs even qmp_capabilities in its main thread: one blocked on a missing page answers no
# new monitor, and then the VM is stopped, saying so. Either way, never a hung guest.
if [[ $why == *"followed the push of s1's lazy restore after savefs restarted"*"resumed after one died"* ]]; then
    [[ $(vm_state vm1) == running ]] || die "vm1 is $(vm_state vm1) after the resumed push"
    vm_check_alive vm1 "$((pass + 2))" "$seed"
    echo "2 name=s2" >"$MNT/vm1/save" || die "save after the resumed push failed: $(cat "$MNT/vm1/status")"
else
    [[ $why == *"page server"*"before the last page"*"killed the QEMU"* ]] || die "status does not say why: $why"
    vm_wait_gone vm1 || die "the QEMU whose push could not resume was left running"
    log "the VM was stopped, not resumed: its monitor did not answer"
    vm_start vm1
    echo "2 name=s2" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
fi

log "the same, with the snapshot gone while savefs was down: the VM is stopped, with the reason"
kill_both s2
rm -r "$STORE/vm1/snapshots/s2"
savefs_start --pager "$PAGER_BIN"
wait_no_job vm1
vm_wait_gone vm1 || die "the QEMU whose push could not resume was left running"
[[ $(vm_state vm1) == stopped ]] || die "vm1 is $(vm_state vm1)"
why=$(last_message vm1)
[[ $why == *"page server"*"stopped"* || $why == *"page server"*"killed the QEMU"* ]] ||
    die "status does not say why: $why"
log "$why"
log "PASS"
