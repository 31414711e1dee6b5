#!/bin/bash
# Peers in the QMP directory that savefs must survive without a QEMU: one that streams events
# without pause and one that sends a line without end (cat NAME/status still answers at once),
# 2000 listening sockets (ls -l of the mount well under a second: /proc/net/unix is read once per
# listing, not once per name, and a fresh socket still shows at once), and sockets that are no VM
# (a relative name in /proc/net/unix, a bad VM name), which savefs's log names once each.
source "$SRC_DIR/tests/e2e/lib.sh"
e2e_setup
PEERS=()

cleanup() {
    local rc=$? pid
    set +e # a peer's wait reports its SIGTERM (143), which must not end the cleanup
    for pid in ${PEERS[@]+"${PEERS[@]}"}; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ -n ${FLOOR_PID:-} ]]; then
        fusermount3 -u "$FLOOR/mnt" 2>/dev/null || fusermount3 -uz "$FLOOR/mnt"
        wait "$FLOOR_PID" 2>/dev/null
    fi
    (exit "$rc")
    e2e_cleanup
}
trap cleanup EXIT

# Starts a qmp_peers.py peer; its output goes to $T/peerN.out (N: its index in PEERS).
peer() {
    local out=$T/peer${#PEERS[@]}.out
    : >"$out"
    python3 "$SRC_DIR/tests/e2e/qmp_peers.py" "$@" >"$out" &
    PEERS+=("$!")
}

# Waits up to $1 tenths of a second for the command that follows to succeed.
wait_for() {
    local tenths=$1
    shift
    for _ in $(seq "$tenths"); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

ms_now() {
    echo $(($(date +%s%N) / 1000000))
}

savefs_start

log "a peer that floods events, one whose line never ends: cat NAME/status answers at once"
peer flood "$QMP/flood.qmp"
peer endless "$QMP/endless.qmp"
wait_for 100 test -d "$MNT/flood" || die "flood.qmp never showed as a VM"
wait_for 100 test -d "$MNT/endless" || die "endless.qmp never showed as a VM"
for vm in flood endless; do
    t0=$(ms_now)
    timeout 10 cat "$MNT/$vm/status" >"$T/$vm.status" &
    cat_pid=$!
    # A cat stuck in the kernel ignores timeout's signal: wait for it by hand.
    wait_for 120 eval '! kill -0 '"$cat_pid"' 2>/dev/null' ||
        die "cat $vm/status still runs after 12 s"
    wait "$cat_pid" || die "cat $vm/status failed ($?): $(cat "$T/$vm.status")"
    ms=$(($(ms_now) - t0))
    log "cat $vm/status: $ms ms"
    ((ms < 5000)) || die "cat $vm/status took $ms ms"
    grep -q '"state": "unknown"' "$T/$vm.status" || die "$vm: state not unknown: $(cat "$T/$vm.status")"
    grep -qE '"note": ".*(no answer within|line longer than|read without an answer)' "$T/$vm.status" ||
        die "$vm: no note that says why: $(cat "$T/$vm.status")"
done

log "2000 listening sockets: ls -l of the mount"
# ls -l asks FUSE four or five times per name, and on a loaded machine each round trip costs a
# millisecond whatever savefs does. A second savefs over 2000 VMs that exist only in the store
# (no socket to look up) gives the floor: its ls -l just before and just after.
FLOOR=$T/floor
mkdir -p "$FLOOR/store" "$FLOOR/qmp" "$FLOOR/mnt"
for i in $(seq -w 0 1999); do mkdir -p "$FLOOR/store/stored$i/snapshots"; done
"$SAVEFS_BIN" -f --store "$FLOOR/store" --qmp-dir "$FLOOR/qmp" "$FLOOR/mnt" 2>>"$T/savefs.log" &
FLOOR_PID=$!
wait_for 100 mountpoint -q "$FLOOR/mnt" || die "the second savefs did not mount"
peer many "$QMP" 2000
wait_for 300 grep -q ready "$T/peer2.out" || die "the 2000 sockets did not listen"
count() { [[ $(find "$MNT" -mindepth 1 -maxdepth 1 -name 'many*' | wc -l) == 2000 ]]; }
wait_for 300 count || die "the mount does not list the 2000 VMs"
# Prints how many ms ls -l of $1 took; its output goes to $2.
ls_ms() {
    local t0
    t0=$(ms_now)
    timeout 120 ls -l "$1" >"$2" || return 1
    echo $(($(ms_now) - t0))
}
f1=$(ls_ms "$FLOOR/mnt" "$T/floor.out") || die "ls -l of 2000 stored VMs did not end within 120 s"
ms=$(ls_ms "$MNT" "$T/ls.out") || die "ls -l of 2000 VMs did not end within 120 s"
f2=$(ls_ms "$FLOOR/mnt" "$T/floor.out") || die "ls -l of 2000 stored VMs did not end within 120 s"
[[ $(grep -c stored "$T/floor.out") == 2000 ]] || die "the second mount lists no 2000 stored VMs"
floor=$((f1 > f2 ? f1 : f2))
log "ls -l of $(grep -c many "$T/ls.out") listening VMs: $ms ms (of 2000 stored VMs: $f1, $f2 ms)"
((ms < 3000 || ms < 2 * floor)) || die "ls -l of 2000 VMs took $ms ms"

log "a socket that starts listening shows at once, even while listings keep the cache warm"
while :; do ls -l "$MNT" >/dev/null 2>&1; done &
PEERS+=("$!")
sleep 0.3
for i in 1 2 3 4 5; do
    n=${#PEERS[@]}
    # The peer looks for the VM's directory right after its listen().
    peer listen "$QMP" "$QMP/fresh$i.qmp" "$MNT/fresh$i"
    wait_for 100 grep -q ready "$T/peer$n.out" || die "fresh$i.qmp did not listen"
    grep -q "ready seen" "$T/peer$n.out" || die "fresh$i.qmp listens but $MNT/fresh$i was not there"
done

log "sockets that are no VM: the log says which and why, once each"
n=${#PEERS[@]}
peer listen "$QMP" rel.qmp
peer listen "$QMP" "$QMP/bad name.qmp"
wait_for 100 grep -q ready "$T/peer$n.out" || die "rel.qmp did not listen"
wait_for 100 grep -q ready "$T/peer$((n + 1)).out" || die "'bad name.qmp' did not listen"
for _ in 1 2 3; do ls "$MNT" >/dev/null; done
for what in "rel.qmp.*relative" "bad name.qmp.*not a valid VM name"; do
    n=$(grep -cE "skipped .*$what" "$T/savefs.log" || true)
    [[ $n == 1 ]] || die "the log names '$what' $n times, not once: $(grep skipped "$T/savefs.log")"
done
[[ ! -e $MNT/rel && ! -e "$MNT/bad name" ]] || die "a skipped socket shows as a VM"
grep skipped "$T/savefs.log" >&2
log "PASS"
