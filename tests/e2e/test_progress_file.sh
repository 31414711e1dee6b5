#!/bin/bash
# MOUNT/NAME/progress followed with cat, as a person watches a job: during a save a line a second
# and then the outcome and the end of the file, within a second of the job's end, for two readers
# at once; outside a job the last outcome at once (nothing before the first job); a restore
# followed the same way, and a copy into snapshots/ (an import); a failed save's reason; tar of
# the whole mount outside jobs; one log line per job start and end (stamped, unless standard
# error is the journal); an interrupted reader stops at once, and SIGTERM ends a reader's wait.
# A throttled store makes each job last several seconds.
source "$SRC_DIR/tests/e2e/lib.sh"
e2e_slow_setup $((24 << 20))

# follow VM OUT: cat VM's progress into OUT, each line after the time it arrived (s.ns).
follow() {
    cat "$MNT/$1/progress" | while IFS= read -r line; do
        printf '%s %s\n' "$(date +%s.%N)" "$line"
    done >"$2"
    date +%s.%N >"$2.end"
}

# Waits until VM $1's state is $2.
wait_state() {
    for _ in $(seq 150); do
        [[ $(vm_state "$1") == "$2" ]] && return 0
        sleep 0.1
    done
    die "$1 never $2: $(cat "$MNT/$1/status")"
}

# check_followed OUT OP VM END: OUT has 2+ progress lines about a second apart, then OP's
# outcome, and ended within a second or so of END (when the job ended).
check_followed() {
    local out=$1 op=$2 vm=$3 end=$4 n
    cat "$out"
    n=$(grep -cE "^[0-9.]+ $op $vm +[0-9]+%  " "$out" || true)
    [[ $n -ge 2 ]] || die "$out: $n progress lines"
    tail -n1 "$out" | grep -qE "^[0-9.]+ $op $vm  ok  " || die "$out: no outcome last"
    # A line a second: between two progress lines, 0.5 to 2 s (a loaded machine).
    grep -E "^[0-9.]+ $op $vm +[0-9]+%  " "$out" | awk '
        NR > 1 { d = $1 - prev; if (d < 0.5 || d > 2) { print "gap " d; bad = 1 } } { prev = $1 }
        END { exit bad }' || die "$out: not a line a second"
    awk -v e="$end" -v f="$(cat "$out.end")" 'BEGIN { exit !(f - e < 1.5) }' ||
        die "$out: ended $(awk -v e="$end" -v f="$(cat "$out.end")" 'BEGIN { print f - e }') s after the job"
}

# elapsed CMD...: runs CMD, prints its output, fails if it took more than a second.
quick() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 1) }' || die "$* took $t0 -> $t1"
}

log "before any job: progress is empty and ends at once; tar of the mount completes"
quick cat "$MNT/vm1/progress" >"$T/idle0"
[[ ! -s $T/idle0 ]] || die "progress before any job: $(cat "$T/idle0")"
[[ $(stat -c %s "$MNT/vm1/progress") == 0 ]] || die "progress has a size"
timeout 5 tar cf /dev/null -C "$MNT" . || die "tar of the mount outside jobs: $?"

log "a save followed by two readers"
echo "2 name=s1" >"$MNT/vm1/save" &
saver=$!
wait_state vm1 saving
follow vm1 "$T/r1" &
r1=$!
follow vm1 "$T/r2" &
r2=$!
# A reader that gives up (a signal) stops waiting at once, while the save goes on.
t0=$SECONDS
timeout -s INT 2 cat "$MNT/vm1/progress" >/dev/null || true
((SECONDS - t0 <= 4)) || die "an interrupted reader waited $((SECONDS - t0)) s"
[[ $(vm_state vm1) == saving ]] || die "the save did not last past the interrupted reader"
wait "$saver" || die "save failed: $(cat "$MNT/vm1/save")"
end=$(date +%s.%N)
wait "$r1" "$r2"
check_followed "$T/r1" save vm1 "$end"
check_followed "$T/r2" save vm1 "$end"
tail -n1 "$T/r1" | grep -qE ' save vm1  ok  s1  2 channels  [0-9.]+ [MG]iB in [0-9.]+ s  [0-9.]+ GiB/s$' ||
    die "outcome: $(tail -n1 "$T/r1")"

log "outside a job: the last outcome, at once"
quick cat "$MNT/vm1/progress" >"$T/idle1"
cat "$T/idle1"
[[ $(wc -l <"$T/idle1") == 1 ]] && grep -q '^save vm1  ok  s1  ' "$T/idle1" ||
    die "progress outside a job: $(cat "$T/idle1")"
timeout 5 tar cf /dev/null -C "$MNT" . || die "tar of the mount outside jobs: $?"

log "a restore followed"
vm_wait_gone vm1 || die "vm1's QEMU did not quit after the save"
# s1 was written with O_DIRECT: its reads reach the disk, throttled now.
echo "$(findmnt -n -o MAJ:MIN --target "$STORE" | tr -d ' ') $((24 << 20))" \
    >"$THROTTLE_CG/blkio.throttle.read_bps_device"
# A full restore, whose outcome comes with the rename (a lazy one's comes with its last page).
setfattr -n user.savefs.restore -v full "$MNT/vm1/snapshots/s1"
mv "$MNT/vm1/snapshots/s1" "$MNT/vm1/restore/" &
restorer=$!
wait_state vm1 restoring
follow vm1 "$T/r3" &
r3=$!
wait "$restorer" || die "restore failed: $(cat "$MNT/vm1/status")"
end=$(date +%s.%N)
wait "$r3"
check_followed "$T/r3" restore vm1 "$end"
grep -qE ' restore vm1 +[0-9]+%  .*  restoring$' "$T/r3" || die "no line while restoring"
vm_adopt vm1
unthrottle_savefs

log "an import followed: a copy into snapshots/, the bytes of its manifest's total, then ok"
src=$STORE/vm1/snapshots/s1
mkdir "$MNT/vm1/snapshots/c1"
for f in "$src"/*; do
    [[ $(basename "$f") == channel-0 ]] || cp "$f" "$MNT/vm1/snapshots/c1/"
done
# channel-0 written slowly, by one open file: a copy that lasts a few seconds.
for i in $(seq 0 9); do
    dd if="$src/channel-0" bs=16M skip="$i" count=1 status=none
    sleep 0.4
done >"$MNT/vm1/snapshots/c1/channel-0" &
writer=$!
sleep 0.3
follow vm1 "$T/r5" &
r5=$!
wait "$writer"
wait "$r5"
cat "$T/r5"
[[ $(grep -cE '^[0-9.]+ import vm1 +[0-9]+%  [0-9.]+/[0-9.]+ MiB  .*  copying$' "$T/r5") -ge 2 ]] ||
    die "fewer than 2 lines of the copy"
tail -n1 "$T/r5" | grep -qE '^[0-9.]+ import vm1  ok  c1  [0-9.]+ MiB$' || die "no outcome of the copy"
cmp "$src/channel-0" "$STORE/vm1/snapshots/c1/channel-0" || die "the copy differs"

log "a failed save: its reason"
mkdir "$MNT/ghost"
if echo 1 >"$MNT/ghost/save" 2>/dev/null; then die "a save of a VM with no QEMU succeeded"; fi
quick cat "$MNT/ghost/progress" >"$T/ghost"
cat "$T/ghost"
grep -q '^save ghost  failed: ESRCH: no QEMU listens on ' "$T/ghost" || die "no reason"

log "one log line per job start and end, stamped"
grep 'savefs: \(save\|restore\) ' "$T/savefs.log"
for what in "save vm1  started" "save vm1  ok  s1" "restore vm1  started  s1" "restore vm1  ok  s1" \
    "save ghost  started" "save ghost  failed: ESRCH"; do
    n=$(grep -c "^[0-9-]* [0-9:]* savefs: $what" "$T/savefs.log" || true)
    [[ $n == 1 ]] || die "$n log lines '$what'"
done

log "standard error the journal: no stamps of savefs's own"
savefs_stop
# savefs_spawn appends savefs's standard error to savefs.log: that file plays the journal.
JOURNAL_STREAM=$(stat -c %d:%i "$T/savefs.log") savefs_start
echo "1 name=s2 keep-running" >"$MNT/vm1/save" || die "save s2 failed"
grep -q '^savefs: save vm1  started  s2  1 channel$' "$T/savefs.log" &&
    grep -q '^savefs: save vm1  ok  s2  1 channel  ' "$T/savefs.log" ||
    die "not the journal's lines: $(tail -n3 "$T/savefs.log")"

log "SIGTERM: a reader's wait ends"
savefs_stop
savefs_start
throttle_savefs $((24 << 20)) writes
echo "2 name=s3" >"$MNT/vm1/save" 2>/dev/null &
saver=$!
wait_state vm1 saving
follow vm1 "$T/r4" &
r4=$!
sleep 1.5
kill -TERM "${SAVEFS_PIDS[-1]}"
for _ in $(seq 100); do
    kill -0 "$r4" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$r4" 2>/dev/null && die "a reader still blocked 10 s after SIGTERM"
wait "$r4" || true
wait "$saver" || true
# It gets the cancelled save's outcome if the save ended within its second, and then
# ECONNABORTED (the mount is gone) rather than the end of the file.
cat "$T/r4"
log "PASS"
