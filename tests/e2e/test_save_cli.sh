#!/bin/bash
# `savefs save` and `savefs restore` against a real mount and the test guest, as a script meets
# them (standard output not a terminal: plain progress lines, then the outcome) and as a person
# does (a pty: one bar drawn over itself): an exit status per errno (no mount, no VM, bad words,
# busy, no snapshot), a save and a restore with the guest's memory intact, Ctrl-C cancelling a
# save with the VM running on, and a restore with no QEMU left. A throttled store makes each job
# last several seconds.
source "$SRC_DIR/tests/e2e/lib.sh"
e2e_slow_setup $((24 << 20))
export SAVEFS_MOUNT=$MNT

# expect STATUS WORDS CMD...: runs CMD, which must exit STATUS and say WORDS on stderr.
expect() {
    local want=$1 words=$2 rc=0
    shift 2
    "$@" >"$T/out" 2>"$T/err" || rc=$?
    [[ $rc == "$want" ]] || die "$* exited $rc, not $want: $(cat "$T/err" "$T/out")"
    grep -q -- "$words" "$T/err" || die "$*: no '$words' in: $(cat "$T/err")"
    log "$* -> $rc: $(head -n1 "$T/err")"
}

# Waits until VM $1's status says a job runs.
wait_job() {
    for _ in $(seq 100); do
        [[ $(vm_state "$1") == saving ]] && return 0
        sleep 0.1
    done
    die "$1 never started saving: $(cat "$MNT/$1/status")"
}

log "errors before any job: each its own exit status"
expect 2 usage "$SAVEFS_BIN" save
expect 2 usage "$SAVEFS_BIN" restore vm1
expect 3 "no savefs is mounted on $T" "$SAVEFS_BIN" save --mount "$T" vm1
expect 4 "no VM nosuch" "$SAVEFS_BIN" save nosuch
expect 4 "no VM README" "$SAVEFS_BIN" save README
expect 4 "no snapshot nosuch of vm1" "$SAVEFS_BIN" restore vm1 nosuch
expect 7 "error EINVAL" "$SAVEFS_BIN" save vm1 bogus
[[ $(vm_state vm1) == running ]] || die "vm1 not running after bad words"

log "a save, not on a terminal: a progress line a second, then the save file's words"
"$SAVEFS_BIN" save vm1 2 name=s1 >"$T/save.out" 2>"$T/save.err" &
saver=$!
wait_job vm1
expect 5 "busy: a save runs on vm1" "$SAVEFS_BIN" save vm1 name=s2
wait "$saver" || die "savefs save exited $?: $(cat "$T/save.err")"
cat "$T/save.out"
[[ $(grep -c '^save vm1 .*%.*/s' "$T/save.out") -ge 2 ]] || die "fewer than 2 progress lines"
if grep -q $'\r' "$T/save.out"; then die "a carriage return in output that is not a terminal"; fi
tail -n1 "$T/save.out" | grep -q '^ok s1 2 channels' || die "no outcome: $(tail -n1 "$T/save.out")"
vm_wait_gone vm1 || die "vm1's QEMU did not quit after the save"

log "a restore: the guest's memory comes back"
pass=$(guest_last_pass "$T/vm1.serial")
seed=$(guest_seed "$T/vm1.serial")
"$SAVEFS_BIN" restore vm1 s1 >"$T/restore.out" 2>"$T/restore.err" ||
    die "savefs restore exited $?: $(cat "$T/restore.err")"
cat "$T/restore.out"
tail -n1 "$T/restore.out" | grep -q '^ok restored s1' || die "no outcome: $(cat "$T/restore.out")"
vm_adopt vm1
vm_check_alive vm1 "$pass" "$seed"
expect 5 "EBUSY.*quit it or save it first" "$SAVEFS_BIN" restore vm1 s1

log "Ctrl-C cancels the save: the VM runs on, nothing partial is kept"
"$SAVEFS_BIN" save vm1 name=s3 >"$T/int.out" 2>"$T/int.err" &
saver=$!
wait_job vm1
expect 5 "EBUSY" "$SAVEFS_BIN" restore vm1 s1
sleep 1
kill -INT "$saver"
rc=0
wait "$saver" || rc=$?
cat "$T/int.err"
[[ $rc == 130 ]] || die "interrupted save exited $rc, not 130"
grep -q "cancelling the save of vm1: the VM runs on" "$T/int.err" || die "Ctrl-C not explained"
grep -q "EINTR" "$T/int.err" || die "no outcome after Ctrl-C"
[[ $(vm_state vm1) == running ]] || die "vm1 $(vm_state vm1) after a cancelled save"
[[ ! -e $MNT/vm1/snapshots/s3 ]] || die "a cancelled save left s3"
check_no_partial vm1

log "on a terminal: one bar, drawn over itself"
script -qec "$SAVEFS_BIN save vm1 name=s4 keep-running" /dev/null >"$T/tty.out" ||
    die "savefs save on a pty failed: $(cat "$T/tty.out")"
grep -q $'\r''save vm1 \[#* *\] ' "$T/tty.out" || die "no bar on a terminal: $(cat -A "$T/tty.out")"
tr '\r' '\n' <"$T/tty.out" | sed 's/\x1b\[K//g' >"$T/tty.lines"
grep -q '^ok s4 ' "$T/tty.lines" || die "no outcome on a pty"
# The pty says no width: 80 columns, and a bar that wrapped would leave a row behind at each redraw.
# The outcome is printed once: a keep-running save's says its pause and instant, and may wrap.
[[ -z $(awk '!/^ok / && length > 79' "$T/tty.lines") ]] || die "a bar wider than the terminal"
[[ $(vm_state vm1) == running ]] || die "vm1 not running after a keep-running save"
log "Ctrl-C cancels a restore: its fresh QEMU is killed, nothing else changes"
kill -9 "$(vm_pid vm1)"
vm_wait_gone vm1 || die "vm1's QEMU did not go"
# A full restore, whose stream the throttle makes last (a lazy one would run the guest at once).
setfattr -n user.savefs.restore -v full "$MNT/vm1/snapshots/s4"
# s4 was written with O_DIRECT: its reads reach the disk, throttled now.
echo "$(findmnt -n -o MAJ:MIN --target "$STORE" | tr -d ' ') $((24 << 20))" \
    >"$THROTTLE_CG/blkio.throttle.read_bps_device"
"$SAVEFS_BIN" restore vm1 s4 >"$T/rint.out" 2>"$T/rint.err" &
restorer=$!
for _ in $(seq 100); do
    [[ $(status_field vm1 phase) == restoring ]] && break
    sleep 0.1
done
[[ $(status_field vm1 phase) == restoring ]] || die "vm1 never restoring: $(cat "$MNT/vm1/status")"
kill -INT "$restorer"
rc=0
wait "$restorer" || rc=$?
cat "$T/rint.err"
[[ $rc == 130 ]] || die "interrupted restore exited $rc, not 130"
grep -q "cancelling the restore of vm1: a fresh QEMU is killed" "$T/rint.err" ||
    die "Ctrl-C not explained"
[[ $(vm_state vm1) == stopped ]] || die "vm1 $(vm_state vm1) after a cancelled restore"
[[ -d $MNT/vm1/snapshots/s4 ]] || die "s4 went away"
log "PASS"
