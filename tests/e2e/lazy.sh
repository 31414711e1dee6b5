# shellcheck shell=bash
# Helpers for lazy restores driven by hand (test_lazy_pager.sh, lazy_order.sh), to be sourced
# after lib.sh: the restoring QEMU, and DRIVE, the QMP steps (qmp_lazy.py).
: "${PAGER_BIN:?PAGER_BIN must name savefs-pager}"
DRIVE=$SRC_DIR/tests/e2e/qmp_lazy.py

# lazy_qemu SNAPDIR: starts vm1 as its snapshot recorded it (with the binary LAZY_QEMU if set),
# waiting for an incoming postcopy stream on $T/lazy.sock.
lazy_qemu() {
    local snap=$1 i pid
    local -a argv args=()
    mapfile -t argv < <(jq -r '.qemu.argv[]' "$snap/manifest.json")
    [[ -n ${LAZY_QEMU:-} ]] && argv[0]=$LAZY_QEMU
    for ((i = 0; i < ${#argv[@]}; i++)); do
        case ${argv[i]} in
        -serial | -pidfile | -qmp) i=$((i + 1)) ;;
        *) args+=("${argv[i]}") ;;
        esac
    done
    # A QEMU killed before left its monitor's socket: waiting for the file would find that one.
    rm -f "$T/lazy.sock" "$QMP/vm1.qmp"
    setsid "${args[@]}" -serial "file:$T/vm1.serial" -pidfile "$QMP/vm1.pid" \
        -qmp "unix:$QMP/vm1.qmp,server=on,wait=off" -incoming defer -S \
        </dev/null >"$T/lazy.qemu.log" 2>&1 &
    pid=$!
    printf '%s\t%s\n' "$pid" "$T/vm1.serial" >>"$GUEST_PID_FILE"
    for _ in $(seq 100); do
        [[ -S $QMP/vm1.qmp ]] && break
        sleep 0.1
    done
    python3 "$DRIVE" incoming "$QMP/vm1.qmp" "$T/lazy.sock" || die "QEMU: $(cat "$T/lazy.qemu.log")"
}
