# shellcheck shell=bash
# Helpers for end-to-end tests, to be sourced: a private savefs mount over a private store and
# QMP directory, the test guest, and cleanup of every process and mount started, by pid.
#
#   source "$SRC_DIR/tests/e2e/lib.sh"
#   e2e_setup            # T (scratch dir), STORE, QMP, MNT; trap cleans up
#   savefs_start         # mounts savefs on $MNT (foreground process, pid kept)
#   vm_start vm1         # the memcheck guest as VM vm1
set -euo pipefail

: "${SAVEFS_BIN:?SAVEFS_BIN must name the savefs binary}"
: "${SRC_DIR:?SRC_DIR must name the source tree}"
# shellcheck source=guest.sh
source "$SRC_DIR/tests/e2e/guest.sh"

SAVEFS_PIDS=()
LOOP_MOUNTS=()

log() {
    echo "[$(date +%T)] $*" >&2
}

die() {
    echo "FAIL: $*" >&2
    exit 1
}

e2e_setup() {
    T=$(mktemp -d /tmp/savefs-e2e.XXXXXX)
    STORE=$T/store QMP=$T/qmp MNT=$T/mnt
    mkdir -p "$QMP" "$MNT"
    trap e2e_cleanup EXIT
}

# flip_byte FILE OFFSET [MASK]: flips the bits MASK (default all) of the byte at OFFSET, so the
# file surely changes (writing a fixed byte leaves it as it was when the byte was already that).
flip_byte() {
    local b
    b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    # shellcheck disable=SC2059 # the format is the byte
    printf "$(printf '\\%03o' $((b ^ ${3:-255})))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# The local definition of VM $1 that savefs on this host reads and writes: local.json@HOST,
# HOST the hostname's first label (savefs's default --host).
local_json() {
    local h
    h=$(hostname)
    echo "$STORE/$1/local.json@${h%%.*}"
}

# True while something is mounted at $1, even a FUSE mount whose daemon died.
mounted() {
    awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts
}

# savefs_spawn MNT CMD...: runs CMD, a savefs in the foreground (-f) that mounts MNT, in the
# background (its pid kept for savefs_stop) and waits for the mount.
savefs_spawn() {
    local mnt=$1
    shift
    "$@" 2>>"$T/savefs.log" &
    SAVEFS_PIDS+=("$!")
    for _ in $(seq 100); do
        mountpoint -q "$mnt" && return 0
        kill -0 "${SAVEFS_PIDS[-1]}" 2>/dev/null || die "savefs exited: $(cat "$T/savefs.log")"
        sleep 0.1
    done
    die "savefs did not mount $mnt: $(cat "$T/savefs.log")"
}

# A test sees only its own VMs: libvirt's domains (another test's) only where it names its URI in
# LIBVIRT_URI.
savefs_start() {
    savefs_spawn "$MNT" "$SAVEFS_BIN" -f --store "$STORE" --qmp-dir "$QMP" \
        --watchdog "${WATCHDOG:-20}" --libvirt "${LIBVIRT_URI:-none}" "$@" "$MNT"
}

savefs_stop() {
    local pid
    # A writer still blocked in the mount keeps it busy: detach it then.
    # A mount whose savefs died answers ENOTCONN, which mountpoint(1) takes for no mount.
    mounted "$MNT" && { fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT"; }
    for pid in ${SAVEFS_PIDS[@]+"${SAVEFS_PIDS[@]}"}; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    done
    SAVEFS_PIDS=()
}

# The QEMU that serves VM $1 now (started by the test or restored by savefs): its pidfile.
vm_pid() {
    local pid
    pid=$(cat "$QMP/$1.pid" 2>/dev/null) || return 1
    [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *qemu* ]] || return 1
    echo "$pid"
}

vm_start() {
    local name=$1
    guest_start "$name" "$QMP" "$T/$name.serial" "${2:-}" >/dev/null
    guest_wait_ready "$T/$name.serial" 120 || die "$name did not boot"
    guest_wait_pass_above "$T/$name.serial" 0 60 || die "$name does not verify its memory"
}

# Waits until no QEMU serves VM $1 (it quit after a save). A zombie (the test's own child, not
# reaped) is gone once it is the last of its threads: a thread group's leader turns zombie while
# its other threads still exit, the last one freeing the guest's RAM, then closing the files (the
# monitor's socket, which savefs takes for a running QEMU until then).
vm_wait_gone() {
    local pid tasks
    pid=$(cat "$QMP/$1.pid" 2>/dev/null) || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        tasks=(/proc/"$pid"/task/*)
        [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z && ${#tasks[@]} -le 1 ]] && return 0
        sleep 0.1
    done
    return 1
}

# The state field of VM $1's status.
vm_state() {
    sed -n 's/^  "state": "\(.*\)",$/\1/p' "$MNT/$1/status"
}

# VM $1's migration capability $2 over its QMP socket: "true", "false", or nothing when this QEMU
# does not have it.
vm_cap() {
    printf '%s\n' '{"execute":"qmp_capabilities"}' '{"execute":"query-migrate-capabilities"}' |
        nc -U -q 1 "$QMP/$1.qmp" |
        jq -r --arg c "$2" 'select(.return | type == "array") | .return[] | select(.capability == $c) | .state'
}

# Sets VM $1's migration capability $2 to $3 (true or false), as another tool might leave it.
vm_set_cap() {
    printf '%s\n' '{"execute":"qmp_capabilities"}' \
        "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":[{\"capability\":\"$2\",\"state\":$3}]}}" |
        nc -U -q 1 "$QMP/$1.qmp" | grep -q '"error"' && return 1
    return 0
}

# VM $1's multifd capability. After a save or a restore, QEMU's migration settings are as before:
# a later `virsh save` (one exec: stream) would fail with multifd on.
vm_multifd() {
    vm_cap "$1" multifd
}

# After a restore: the QEMU that savefs started now writes VM $1's serial log.
vm_adopt() {
    local pid
    pid=$(vm_pid "$1") || die "$1: no QEMU after the restore"
    printf '%s\t%s\n' "$pid" "$T/$1.serial" >>"$GUEST_PID_FILE"
}

# Checks that VM $1 goes on verifying its memory past pass $2 with seed $3.
vm_check_alive() {
    local name=$1 pass=$2 seed=$3
    guest_wait_pass_above "$T/$name.serial" "$pass" 60 || die "$name: no good pass above $pass"
    [[ $(guest_seed "$T/$name.serial") == "$seed" ]] || die "$name: another seed: a fresh boot?"
}

# The store on a fresh ext4 filesystem of $1 MiB on a loop device (O_DIRECT works there, and
# its space runs out).
store_on_loop() {
    truncate -s "${1}M" "$T/store.img"
    mkfs.ext4 -q -F "$T/store.img"
    mkdir -p "$STORE"
    mount -o loop "$T/store.img" "$STORE"
    LOOP_MOUNTS+=("$STORE")
}

# A job that lasts: the store on a loop device, the test guest as vm1, and savefs mounted with its
# writes to the store capped at $1 bytes/s (a save of the guest takes several seconds); further
# arguments go to savefs.
e2e_slow_setup() {
    e2e_setup
    store_on_loop 1000
    vm_start vm1
    savefs_start "${@:2}"
    throttle_savefs "$1" writes
}

# Caps savefs's reads and writes (only writes with $2 = writes) of the loop store at $1 bytes/s (cgroup v1 blkio; O_DIRECT I/O
# is charged to the process that issues it), so that a job lasts long enough to be hit mid-way.
# Exits 77 (skipped) where the machine has no blkio throttling.
throttle_savefs() {
    local dev cg=/sys/fs/cgroup/blkio/savefs-e2e-$$
    [[ -f /sys/fs/cgroup/blkio/blkio.throttle.write_bps_device ]] || { echo "no blkio throttle" >&2; exit 77; }
    dev=$(findmnt -n -o MAJ:MIN --target "$STORE" | tr -d ' ')
    mkdir -p "$cg"
    echo "$dev $1" >"$cg/blkio.throttle.write_bps_device"
    # "writes": reads through the mount (tar of published snapshots) go at the disk's speed.
    [[ ${2:-} == writes ]] && echo "$dev 0" >"$cg/blkio.throttle.read_bps_device" ||
        echo "$dev $1" >"$cg/blkio.throttle.read_bps_device"
    echo "${SAVEFS_PIDS[-1]}" >"$cg/cgroup.procs"
    THROTTLE_CG=$cg
}

unthrottle_savefs() {
    local dev
    dev=$(findmnt -n -o MAJ:MIN --target "$STORE" | tr -d ' ')
    echo "$dev 0" >"$THROTTLE_CG/blkio.throttle.write_bps_device"
    echo "$dev 0" >"$THROTTLE_CG/blkio.throttle.read_bps_device"
}

# Caps the store's reads at $1 bytes/s (0: no cap) for savefs and what it starts (throttle_savefs
# first): a lazy restore's page server is in savefs's cgroup, and its reads miss the page cache
# (saves write with O_DIRECT).
cap_reads() {
    echo "$(findmnt -n -o MAJ:MIN --target "$STORE" | tr -d ' ') $1" \
        >"$THROTTLE_CG/blkio.throttle.read_bps_device"
}

# Field $2 of the mark savefs keeps on this host while VM $1's lazy restore pushes its pages,
# "QEMU_PID PAGER_PID SNAPSHOT DIGEST" (one mark per host of a store a fleet may share:
# .lazy@HOST); waits 10 s for one.
lazy_mark_field() {
    local mark
    for _ in $(seq 100); do
        for mark in "$STORE/$1"/.lazy@*; do
            [[ -s $mark ]] && { awk -v f="$2" '{print $f}' "$mark"; return 0; }
        done
        sleep 0.1
    done
    die "no push of $1 marked: $(ls -a "$STORE/$1")"
}

# The last job's summary (or error) in VM $1's status.
last_message() {
    jq -r '.last | .summary // .error // ""' "$MNT/$1/status"
}

# Waits until VM $1 has no job (a lazy restore's push is over); the last result is then its.
wait_no_job() {
    for _ in $(seq 600); do
        [[ $(jq -r '.job // empty | .op' "$MNT/$1/status") == "" ]] && return 0
        sleep 0.2
    done
    die "$1: the job did not end: $(cat "$MNT/$1/status")"
}

# The value of "key" in VM $1's status (the first occurrence: the job's, when one runs).
status_field() {
    local v
    v=$(sed -n "s/^ *\"$2\": \"\(.*\)\",\{0,1\}\$/\1/p" "$MNT/$1/status" | head -n1)
    [[ -n $v ]] || v=$(sed -n "s/^ *\"$2\": \([^\",]*\),\{0,1\}\$/\1/p" "$MNT/$1/status" | head -n1)
    echo "$v"
}

# Waits until VM $1's job is in phase $2 and has moved some bytes.
wait_phase() {
    for _ in $(seq 300); do
        if [[ $(status_field "$1" phase) == "$2" && $(status_field "$1" bytes_done) != 0 ]]; then
            return 0
        fi
        sleep 0.1
    done
    die "$1 never reached phase $2: $(cat "$MNT/$1/status")"
}

# Fails unless the store holds no partial save of VM $1.
check_no_partial() {
    local left
    left=$(find "$STORE/$1/.tmp" -mindepth 1 2>/dev/null || true)
    [[ -z $left ]] || die "partial save left behind: $left"
}

# savefs_calls PID OUT CMD...: runs CMD while strace counts savefs PID's read and splice calls,
# its end of /dev/fuse (each FUSE request takes one or more), and prints their number; strace's
# table goes to OUT. CMD's output goes to standard error.
savefs_calls() {
    local pid=$1 out=$2 tracer
    shift 2
    strace -f -qq -c -e trace=read,splice -o "$out" -p "$pid" &
    tracer=$!
    # strace attaches to every thread before the first call is counted.
    for _ in $(seq 100); do
        grep -q 'TracerPid:.*[1-9]' "/proc/$pid/status" && break
        sleep 0.1
    done
    sleep 1
    "$@" >&2
    kill -INT "$tracer"
    wait "$tracer" || true
    awk '$NF == "read" || $NF == "splice" { n += $4 } END { print n + 0 }' "$out"
}

e2e_cleanup() {
    local rc=$? name pid
    set +e
    # A sanitizer build of savefs reports into its log: any report fails the test.
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T/savefs.log" 2>/dev/null; then
        echo "FAIL: sanitizer report in savefs's log" >&2
        rc=1
    fi
    for pidfile in "$QMP"/*.pid; do
        [[ -f $pidfile ]] || continue
        name=$(basename "$pidfile" .pid)
        pid=$(vm_pid "$name") && kill -9 "$pid" 2>/dev/null
    done
    guest_cleanup
    savefs_stop
    if [[ -n ${THROTTLE_CG:-} ]]; then
        cat "$THROTTLE_CG/cgroup.procs" 2>/dev/null | while read -r pid; do
            echo "$pid" >/sys/fs/cgroup/blkio/cgroup.procs
        done
        rmdir "$THROTTLE_CG"
    fi
    for m in ${LOOP_MOUNTS[@]+"${LOOP_MOUNTS[@]}"}; do
        umount "$m" || { ls -l /proc/[0-9]*/fd /proc/[0-9]*/cwd 2>/dev/null | grep -F "$m" >&2; umount -l "$m"; }
    done
    if [[ $rc -ne 0 ]]; then
        echo "---- savefs log" >&2
        tail -n 30 "$T/savefs.log" >&2
        for f in "$T"/*.serial "$QMP"/.savefs/*.log; do
            [[ -f $f ]] && { echo "---- $f" >&2; tail -n 5 "$f" >&2; }
        done
    fi
    rm -rf "$T"
    exit "$rc"
}
