# shellcheck shell=bash
# Helpers for end-to-end tests, to be sourced: run the memcheck test guest (built by
# tests/guest/build-guest.sh into $GUEST_DIR) under QEMU with TCG, and follow its serial log.
#
#   source "$SRC_DIR/tests/e2e/guest.sh"
#   trap guest_cleanup EXIT
#   pid=$(guest_start vm1 "$dir" "$dir/vm1.serial")
#   guest_wait_ready "$dir/vm1.serial" 120
#   guest_wait_pass_above "$dir/vm1.serial" "$(guest_last_pass "$dir/vm1.serial")" 60
#
# Settings (environment or shell variables): GUEST_DIR (required), GUEST_QEMU, GUEST_MEM_MB,
# GUEST_MIB (memcheck's size when the MIB argument is omitted), GUEST_APPEND (more of the guest's
# kernel command line: virtio=1 diskwrite=1 agent=1, see tests/guest/init) and the array
# GUEST_EXTRA_ARGS, appended to the QEMU argv (e.g. -incoming defer).

: "${GUEST_QEMU:=qemu-system-x86_64}"
: "${GUEST_MEM_MB:=512}"
: "${GUEST_MIB:=192}"
GUEST_ARGV=()
GUEST_PIDS=()
# Pids also go to a file ("pid<TAB>serial log" lines), so that guests started inside a command
# substitution, pid=$(guest_start ...), are still known to guest_cleanup and the wait functions.
GUEST_PID_FILE=${GUEST_PID_FILE:-$(mktemp /tmp/savefs-guest-pids.XXXXXX)}
export GUEST_PID_FILE

_guest_err() {
    echo "guest: $*" >&2
}

# guest_args NAME QMPDIR SERIAL_LOG [MIB]: set GUEST_ARGV to the QEMU argv of the guest.
# no_timer_check: under TCG on a loaded host the kernel's boot-time check that the IO-APIC timer
# ticks can fail, and it panics ("IO-APIC + timer doesn't work").
guest_args() {
    local name=$1 qmpdir=$2 serial=$3 mib=${4:-$GUEST_MIB}
    if [[ -z ${GUEST_DIR:-} || ! -f $GUEST_DIR/vmlinuz || ! -f $GUEST_DIR/initramfs.cpio.gz ]]; then
        _guest_err "GUEST_DIR='${GUEST_DIR:-}' has no vmlinuz and initramfs.cpio.gz"
        return 1
    fi
    GUEST_ARGV=("$GUEST_QEMU" -name "$name" -machine pc -accel tcg -m "$GUEST_MEM_MB" -smp 1
        -nodefaults -display none -vga none -no-user-config -no-reboot
        -kernel "$GUEST_DIR/vmlinuz" -initrd "$GUEST_DIR/initramfs.cpio.gz"
        -append "console=ttyS0 memcheck=$mib quiet panic=-1 no_timer_check${GUEST_APPEND:+ $GUEST_APPEND}"
        -serial "file:$serial" -qmp "unix:$qmpdir/$name.qmp,server=on,wait=off"
        -pidfile "$qmpdir/$name.pid" ${GUEST_EXTRA_ARGS[@]+"${GUEST_EXTRA_ARGS[@]}"})
}

# guest_start NAME QMPDIR SERIAL_LOG [MIB]: start the guest in the background, QEMU's own
# output in QMPDIR/NAME.qemu.log; echo its pid.
guest_start() {
    local name=$1 qmpdir=$2 serial=$3 pid
    guest_args "$@" || return 1
    # A serial log of an earlier guest would be read as this one's until QEMU truncates it: its
    # ready line and passes, and a save taken while this one still boots (test_lazy_ramfile's
    # red run: the restored guest booted afresh, another seed).
    rm -f "$serial"
    setsid "${GUEST_ARGV[@]}" </dev/null >"$qmpdir/$name.qemu.log" 2>&1 &
    pid=$!
    # Until the child has become QEMU: before its exec it is this shell, and a look then takes
    # the guest for exited (CI: "QEMU exited (serial log ends: )", then a cleanup that saw no
    # QEMU to stop and waited for it for good).
    for _ in $(seq 200); do
        [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == *qemu* || ! -e /proc/$pid ]] && break
        sleep 0.05
    done
    GUEST_PIDS+=("$pid")
    printf '%s\t%s\n' "$pid" "$serial" >>"$GUEST_PID_FILE"
    echo "$pid"
}

# True while pid $1 is a live (not zombie) QEMU.
_guest_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") == *qemu* ]] || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# Fails when the QEMU started for serial log $1 is known and no longer running.
_guest_running() {
    local pid
    pid=$(awk -F '\t' -v f="$1" '$2 == f { p = $1 } END { print p }' "$GUEST_PID_FILE" 2>/dev/null ||
        true)
    [[ -z $pid ]] || _guest_alive "$pid"
}

# The SAVEFS-MEMCHECK lines of serial log $1, without the console's carriage returns.
_guest_lines() {
    tr -d '\r' 2>/dev/null <"$1" | grep -a '^SAVEFS-MEMCHECK ' || true
}

# Fails, with a message, when serial log $1 shows a failure.
_guest_healthy() {
    local bad
    bad=$(tr -d '\r' 2>/dev/null <"$1" |
        grep -a -m 1 -E '^SAVEFS-MEMCHECK (pass=[0-9]+ FAIL|exited)|Kernel panic') || true
    if [[ -n $bad ]]; then
        _guest_err "$1: $bad"
        return 1
    fi
    if ! _guest_running "$1"; then
        _guest_err "$1: QEMU exited (serial log ends: $(tail -n 3 "$1" 2>/dev/null | tr -d '\r'))"
        return 1
    fi
}

# guest_wait_ready SERIAL_LOG TIMEOUT_S: wait for memcheck's ready line.
guest_wait_ready() {
    local log=$1 deadline=$((SECONDS + $2))
    until _guest_lines "$log" | grep ' ready ' >/dev/null; do
        _guest_healthy "$log" || return 1
        if ((SECONDS >= deadline)); then
            _guest_err "$log: no ready line after $2 s"
            return 1
        fi
        sleep 0.5
    done
}

# guest_last_pass SERIAL_LOG: the number of the last ok pass, empty if none.
guest_last_pass() {
    _guest_lines "$1" | sed -n 's/^SAVEFS-MEMCHECK pass=\([0-9]*\) ok .*/\1/p' | tail -n 1
}

# guest_seed SERIAL_LOG: memcheck's seed, from the last line that has one.
guest_seed() {
    _guest_lines "$1" | sed -n 's/.* seed=\([0-9a-f]*\).*/\1/p' | tail -n 1
}

# guest_wait_pass_above SERIAL_LOG N TIMEOUT_S: wait for an ok pass greater than N.
guest_wait_pass_above() {
    local log=$1 n=$2 deadline=$((SECONDS + $3)) last
    while :; do
        _guest_healthy "$log" || return 1
        last=$(guest_last_pass "$log")
        if [[ -n $last ]] && ((last > n)); then
            return 0
        fi
        if ((SECONDS >= deadline)); then
            _guest_err "$log: no ok pass above $n after $3 s (last: ${last:-none})"
            return 1
        fi
        sleep 0.5
    done
}

# guest_has_virtio: true if the guest in GUEST_DIR carries the virtio modules (virtio=1).
guest_has_virtio() {
    gzip -dc "$GUEST_DIR/initramfs.cpio.gz" | cpio -t --quiet 2>/dev/null |
        grep -qx 'lib/modules/virtio_blk.ko'
}

# guest_cleanup: stop every guest started here (SIGTERM, SIGKILL after a grace period).
guest_cleanup() {
    local pid grace=${GUEST_KILL_GRACE_S:-5} i
    local -a pids=("${GUEST_PIDS[@]}")
    if [[ -f $GUEST_PID_FILE ]]; then
        mapfile -t -O "${#pids[@]}" pids < <(cut -f 1 "$GUEST_PID_FILE")
    fi
    for pid in "${pids[@]}"; do
        if _guest_alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${pids[@]}"; do
        for ((i = 0; i < grace * 10; i++)); do
            _guest_alive "$pid" || break
            sleep 0.1
        done
        if _guest_alive "$pid"; then
            _guest_err "pid $pid survived SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    GUEST_PIDS=()
    rm -f "$GUEST_PID_FILE"
    return 0
}
