#!/bin/bash
# Save words as tools write them: a byte at a time (dd bs=1), in pieces without a newline (printf,
# tee, Python's buffered write), a write too large for one FUSE request, a writer killed mid-words.
# A save starts only on complete words (up to a newline, or all of them at close), never on a
# prefix; without a newline, close() carries the save's errno; Ctrl-C during that close cancels.
source "$SRC_DIR/tests/e2e/lib.sh"
# shellcheck disable=SC2034 # read by guest.sh
GUEST_MEM_MB=192 GUEST_MIB=48
e2e_setup
store_on_loop 1200
vm_start vm1
savefs_start
pid=$(vm_pid vm1)
expected=()

# Fails unless vm1's QEMU is the first one and the snapshots are exactly those expected.
check() {
    local have want
    [[ $(vm_pid vm1 || true) == "$pid" ]] || die "$1: vm1's QEMU quit or changed: $(cat "$MNT/vm1/save")"
    have=$(find "$MNT/vm1/snapshots" -mindepth 1 -maxdepth 1 -printf "%f\n" | sort | xargs)
    want=$(printf '%s\n' ${expected[@]+"${expected[@]}"} | sort | xargs)
    [[ $have == "$want" ]] || die "$1: snapshots '$have', expected '$want'"
}

# Python writes its arguments as pieces to vm1's save (each written and flushed in turn), then
# closes it; prints the errno of that close (0 if it succeeded).
py_pieces() {
    python3 - "$MNT/vm1/save" "$@" <<'EOF'
import sys
f = open(sys.argv[1], "w")
for piece in sys.argv[2:]:
    f.write(piece)
    f.flush()
try:
    f.close()
    print(0)
except OSError as e:
    print(e.errno)
EOF
}

log "dd bs=1: one save, with every word"
printf '2 keep-running name=dd1\n' | dd of="$MNT/vm1/save" bs=1 status=none || die "dd bs=1 failed"
expected+=(dd1)
check "dd bs=1"
[[ -f $STORE/vm1/snapshots/dd1/channel-1 && ! -e $STORE/vm1/snapshots/dd1/channel-2 ]] ||
    die "dd bs=1: not 2 channels: $(ls "$STORE/vm1/snapshots/dd1")"

log "printf without a newline, in two writes: the save runs at close with both"
{
    printf 'keep-running'
    printf ' name=pf'
} >"$MNT/vm1/save"
expected+=(pf)
check "printf"

log "tee, the words in two pieces"
{
    printf 'keep-running '
    sleep 0.3
    printf 'name=tee\n'
} | tee "$MNT/vm1/save" >/dev/null || die "tee failed"
expected+=(tee)
check "tee"

log "Python's open().write() in pieces, closed without a newline"
[[ $(py_pieces keep-running ' name=py') == 0 ]] || die "python: the close failed: $(cat "$MNT/vm1/save")"
expected+=(py)
check "python"

log "a save written without a newline that fails: close() gets its errno"
[[ $(py_pieces bogus) == 22 ]] || die "python: close did not fail with EINVAL"
grep -q "^error EINVAL: vm1: .*bogus" "$MNT/vm1/save" || die "save says: $(cat "$MNT/vm1/save")"
check "bad words at close"

log "1 MiB of words in one write (split by the kernel): EINVAL, no save"
python3 - "$MNT/vm1/save" >"$T/big.out" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.write(fd, b"keep-running name=big" + b" " * (1 << 20) + b"\n")
    print(0)
except OSError as e:
    print(e.errno)
os.close(fd)
EOF
[[ $(cat "$T/big.out") == 22 ]] || die "1 MiB: not EINVAL: $(cat "$T/big.out")"
grep -q "longer than 4096 bytes" "$MNT/vm1/save" || die "1 MiB: save says $(cat "$MNT/vm1/save")"
check "1 MiB"

log "a writer killed (SIGKILL) after a prefix of its words: no save"
python3 - "$MNT/vm1/save" <<'EOF' || true
import os, signal, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.write(fd, b"2")
os.kill(os.getpid(), signal.SIGKILL)
EOF
check "killed writer"

log "a writer that exits without closing: its words are complete, the save runs"
python3 - "$MNT/vm1/save" <<'EOF' || die "python exited with $?"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.write(fd, b"keep-running name=exited")
os._exit(0)
EOF
expected+=(exited)
check "exit without close"

log "Ctrl-C while close() runs the save: cancelled, the VM runs on"
throttle_savefs $((4 << 20)) writes
env --default-signal=INT sh -c "printf 'keep-running name=int' >'$MNT/vm1/save'" 2>"$T/int.err" &
saver=$!
wait_phase vm1 migrating
kill -INT "$saver"
if wait "$saver"; then die "the interrupted save succeeded"; fi
unthrottle_savefs
status_field vm1 error | grep -q cancel || die "status does not say cancelled: $(cat "$MNT/vm1/status")"
check "Ctrl-C at close"
check_no_partial vm1

log "echo 4 > save still blocks until the snapshot is durable, errno unchanged"
echo "keep-running name=echo" >"$MNT/vm1/save" || die "echo failed: $(cat "$MNT/vm1/save")"
expected+=(echo)
[[ -f $STORE/vm1/snapshots/echo/manifest.json ]] || die "echo returned before the snapshot was there"
if echo "keep-running name=echo" >"$MNT/vm1/save" 2>"$T/err"; then die "a taken name was accepted"; fi
grep -q "File exists" "$T/err" || die "not EEXIST: $(cat "$T/err")"
check "echo"
log "PASS"
