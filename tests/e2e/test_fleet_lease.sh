#!/bin/bash
# Never run a VM twice, on a real GlusterFS fleet (gluster.sh): hosts a and b, each with its own
# FUSE mount of one replica 3 volume and its own savefs on the store there.
#  1. vm1 started by hand on a: a's savefs takes its lease; a restore on b is EBUSY, and b's status
#     names host a and since when.
#  2. vm1 saved on a, restored on a (its QEMU holds the lease): b is refused (a restore, and an
#     rmdir of vm1's entry); kill -9 of a's
#     savefs: the lease holds; kill -9 of a's QEMU: b restores at once.
#  3. b cut off (its link down) while vm1 runs there: b's savefs stops (fences) its QEMU within
#     --fence; a is refused until the bricks let b's lock go, then restores; b's QEMU is paused
#     when a's runs; b's status says it was fenced, and once b is back, that host a runs vm1.
# The volume's timeouts are the test's (a few seconds); docs/fleet.md gives the real ones.
source "$SRC_DIR/tests/e2e/lib.sh"
source "$SRC_DIR/tests/e2e/gluster.sh"
# shellcheck disable=SC2034 # read by guest.sh
GUEST_MEM_MB=192 GUEST_MIB=48
# The bricks drop a silent client's locks after keepalive-time + interval x count (5 + 2 x 3 s);
# a client gives up on silent bricks after ping-timeout.
# shellcheck disable=SC2034 # read by gluster.sh
GLUSTER_OPTS=("network.ping-timeout 5" "server.keepalive-time 5" "server.keepalive-interval 2"
    "server.keepalive-count 3" "server.tcp-user-timeout 11")
FENCE_S=4
BOUND_S=60
declare -A SAVEFS_OF # each host's savefs, by pid
e2e_setup
gluster_start a b
head -c 32 /dev/urandom >"$T/fleet.key"
chmod 600 "$T/fleet.key"

# Host $1's directories: QMP, mount, its copy of the guest's files, its path map from host $2.
make_host() {
    local dir=$T/$1
    mkdir -p "$dir/qmp" "$dir/mnt" "$dir/images"
    cp "$GUEST_DIR/vmlinuz" "$GUEST_DIR/initramfs.cpio.gz" "$dir/images/"
    printf '{"%s": "%s"}\n' "$T/$2" "$dir" >"$dir/paths.json"
    printf '#!/bin/sh\nexec nsenter --net=/run/netns/%s %s "$@"\n' "$(gl_ns "$1")" \
        "$(command -v "$GUEST_QEMU")" >"$dir/qemu"
    chmod +x "$dir/qemu"
}

# Starts host $1's savefs in its namespace, on the store in its mount of the volume.
start_savefs() {
    local dir=$T/$1
    mounted "$dir/mnt" && fusermount3 -uz "$dir/mnt"
    savefs_spawn "$dir/mnt" on_host "$1" "$SAVEFS_BIN" -f --store "$GL/$1/vol/savefs" \
        --qmp-dir "$dir/qmp" --host "$1" --fence "$FENCE_S" --trust-key "$T/fleet.key" \
        --path-map "$dir/paths.json" "$dir/mnt"
    SAVEFS_OF[$1]=${SAVEFS_PIDS[-1]}
}

# Points lib.sh's helpers (QMP, MNT) at host $1.
use_host() {
    QMP=$T/$1/qmp MNT=$T/$1/mnt
}

# The QEMU of vm1 on host $1: its run state over QMP ("running", "paused"), or nothing.
qemu_state() {
    printf '%s\n' '{"execute":"qmp_capabilities"}' '{"execute":"query-status"}' |
        timeout 10 nc -U -q 1 "$T/$1/qmp/vm1.qmp" 2>/dev/null |
        jq -r 'select(.return.status != null) | .return.status' 2>/dev/null || true
}

# Tries to restore s1 on host $1: the exit status of mv, its error text in $MV_ERR.
restore_on() {
    MV_ERR=$(timeout 120 mv "$T/$1/mnt/vm1/snapshots/s1" "$T/$1/mnt/vm1/restore/" 2>&1)
}

# Waits until vm1 runs on host $1 after a restore, and follows its serial log.
wait_running() {
    use_host "$1"
    for _ in $(seq 300); do
        vm_pid vm1 >/dev/null && [[ $(qemu_state "$1") == running ]] && break
        sleep 0.1
    done
    [[ $(qemu_state "$1") == running ]] || die "vm1 does not run on $1: $(cat "$MNT/vm1/status")"
    printf '%s\t%s\n' "$(vm_pid vm1)" "$T/$1/vm1.serial" >>"$GUEST_PID_FILE"
}

# Fails unless a restore on host $1 is refused with EBUSY naming host $2, in mv's words and in
# status's last outcome and lease.
refused_naming() {
    local st
    restore_on "$1" && die "restore on $1 succeeded while vm1 runs on $2"
    [[ $MV_ERR == *"Device or resource busy"* ]] || die "mv on $1: not EBUSY: $MV_ERR"
    st=$(cat "$T/$1/mnt/vm1/status")
    jq -e --arg h "$2" '.last.errno == "EBUSY" and (.last.error | test("runs on host " + $h +
        " since [0-9]{4}-")) and .lease.host == $h and .lease.this_host == false' <<<"$st" \
        >/dev/null || die "status on $1 does not name host $2: $st"
    log "restore on $1 refused: $(jq -r .last.error <<<"$st")"
}

make_host a b
make_host b a
start_savefs a
start_savefs b

log "1: vm1 started by hand on a"
GUEST_QEMU=$T/a/qemu GUEST_DIR=$T/a/images guest_start vm1 "$T/a/qmp" "$T/a/vm1.serial" >/dev/null
guest_wait_ready "$T/a/vm1.serial" 120 || die "vm1 did not boot on a"
use_host a
echo "name=s1 keep-running" >"$T/a/mnt/vm1/save" || die "save on a: $(cat "$MNT/vm1/status")"
for _ in $(seq 50); do
    [[ $(jq -r '.lease.how // empty' "$T/a/mnt/vm1/status") == seen ]] && break
    sleep 0.2
done
jq -e '.lease.host == "a" and .lease.this_host' "$T/a/mnt/vm1/status" >/dev/null ||
    die "a's savefs holds no lease for vm1: $(cat "$T/a/mnt/vm1/status")"
refused_naming b a

log "2: vm1 saved on a (its QEMU quits), restored on a"
echo "name=s2" >"$T/a/mnt/vm1/save" || die "save on a: $(cat "$MNT/vm1/status")"
vm_wait_gone vm1 || die "vm1 did not quit on a"
restore_on a || die "restore on a: $MV_ERR"
wait_running a
refused_naming b a
# Nor may b remove vm1's entry from the store while vm1 runs on a.
rmdir "$T/b/mnt/vm1" 2>"$T/rmdir.err" && die "rmdir of vm1 on b while it runs on a"
grep -q "Device or resource busy" "$T/rmdir.err" || die "rmdir on b: $(cat "$T/rmdir.err")"
log "kill -9 of a's savefs: the lease stays with a's QEMU"
kill -9 "${SAVEFS_OF[a]}"
refused_naming b a
start_savefs a
refused_naming b a
log "kill -9 of a's QEMU: b restores at once"
use_host a
kill -9 "$(vm_pid vm1)"
vm_wait_gone vm1 || die "a's QEMU did not die"
start=$(date +%s.%N)
restore_on b || die "restore on b after a's QEMU died: $MV_ERR"
log "restored on b $(echo "$(date +%s.%N) - $start" | bc) s after a's QEMU died"
wait_running b
refused_naming a b

log "3: b cut off from the bricks"
gluster_cut b
cut=$(date +%s)
refused=0
until restore_on a; do
    [[ $MV_ERR == *"Device or resource busy"* ]] || die "restore on a: not EBUSY: $MV_ERR"
    refused=$((refused + 1))
    (($(date +%s) - cut <= BOUND_S)) || die "a still refused $BOUND_S s after b was cut off"
    sleep 1
done
took=$(($(date +%s) - cut))
((refused > 0)) || die "a restored at once: b's lock was not held after the cut"
[[ $(qemu_state b) == paused ]] || die "vm1 runs on a and still runs on b: $(qemu_state b)"
wait_running a
log "a restored vm1 $took s after b was cut off (refused $refused times); b's QEMU is paused"
grep -q "FENCE vm1" "$T/savefs.log" || die "b's savefs logged no fence"
timeout 60 jq -e '.alarm | test("fenced")' "$T/b/mnt/vm1/status" >/dev/null ||
    die "b's status does not say it fenced vm1: $(timeout 10 cat "$T/b/mnt/vm1/status")"
gluster_join b
for _ in $(seq 60); do
    timeout 10 jq -e '.alarm | test("host a")' "$T/b/mnt/vm1/status" >/dev/null 2>&1 && break
    sleep 1
done
st=$(timeout 10 cat "$T/b/mnt/vm1/status")
jq -e '(.alarm | test("fenced")) and (.alarm | test("runs on host a")) and .lease.host == "a"' \
    <<<"$st" >/dev/null || die "b's status after it came back: $st"
log "b's status: $(jq -r .alarm <<<"$st")"
[[ $(qemu_state b) == paused ]] || die "b's QEMU resumed after b came back"
log "PASS"
