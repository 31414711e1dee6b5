# shellcheck shell=bash
# Helpers for the tests of libvirt's domains (test_libvirt.sh, test_libvirt_faults.sh), to be
# sourced after lib.sh: libvirtd and virtlogd started by the test (no systemd) and stopped by
# pid, savefs's hook installed for them, and domain $DOM of type qemu (TCG) running the memcheck
# guest under libvirt's stock qemu.conf (QEMU runs as libvirt-qemu).
#
#   lv_setup          # e2e_setup, the hook, the daemons; the trap cleans everything up
#   lv_domain_start   # defines and boots $DOM, waits until it verifies its memory
#   virsh_ ARGS...    # virsh on the test's libvirt

[[ $(id -u) == 0 ]] || { echo "needs root (libvirt's system instance)" >&2; exit 77; }
if ! command -v libvirtd >/dev/null || ! command -v virtlogd >/dev/null || ! command -v virsh >/dev/null; then
    echo "libvirt-daemon-system and libvirt-clients are not installed" >&2
    exit 77
fi
[[ -e /run/libvirtd.pid ]] && kill -0 "$(cat /run/libvirtd.pid)" 2>/dev/null &&
    die "a libvirtd runs already (pid $(cat /run/libvirtd.pid)): this test starts its own"

HOOK=/etc/libvirt/hooks/qemu.d/savefs
LIBVIRT_URI=qemu:///system
DOM=savefs-e2e-$$
LV_PIDS=()
HOOK_MADE=

virsh_() {
    virsh -q -c "$LIBVIRT_URI" "$@"
}

lv_cleanup() {
    local rc=$? pid
    set +e
    # A QEMU a test stopped (SIGSTOP) is let go on, so that libvirt can end it.
    [[ -s /run/libvirt/qemu/$DOM.pid ]] && kill -CONT "$(cat "/run/libvirt/qemu/$DOM.pid")" 2>/dev/null
    virsh_ destroy "$DOM" >/dev/null 2>&1
    virsh_ undefine "$DOM" >/dev/null 2>&1
    for pid in ${LV_PIDS[@]+"${LV_PIDS[@]}"}; do
        kill "$pid" 2>/dev/null
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null
    done
    # The hook goes, and its directory if the test made it (rmdir leaves a host's own hooks).
    [[ -n $HOOK_MADE ]] && rm -f "$HOOK" && rmdir "$(dirname "$HOOK")" 2>/dev/null
    (exit "$rc") # e2e_cleanup reports the test's status
    e2e_cleanup
}

# Each daemon writes its pid file once it serves.
lv_start_daemon() {
    local name=$1 pidfile=/run/$1.pid
    rm -f "$pidfile"
    # Its output away from the test's: ctest waits for every holder of its pipe to close it.
    "$name" -d </dev/null >>"$T/$name.out" 2>&1 || die "$name -d failed: $(cat "$T/$name.out")"
    for _ in $(seq 100); do
        [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null && break
        sleep 0.1
    done
    [[ -s $pidfile ]] || die "$name wrote no $pidfile"
    LV_PIDS+=("$(cat "$pidfile")")
}

lv_setup() {
    e2e_setup
    trap lv_cleanup EXIT
    # QEMU (libvirt-qemu) reads the kernel and writes nothing here: the way in is open, the rest
    # stays root's.
    chmod 755 "$T"
    mkdir -m 755 "$T/guest"
    cp "$GUEST_DIR/vmlinuz" "$GUEST_DIR/initramfs.cpio.gz" "$T/guest/"
    # The hook is read when libvirtd starts.
    if [[ ! -e $HOOK ]]; then
        mkdir -p "$(dirname "$HOOK")"
        install -m 755 "$SRC_DIR/contrib/libvirt-hook" "$HOOK"
        HOOK_MADE=1
    fi
    cmp -s "$SRC_DIR/contrib/libvirt-hook" "$HOOK" || die "$HOOK is not savefs's hook"
    lv_start_daemon virtlogd
    lv_start_daemon libvirtd
    for _ in $(seq 100); do
        virsh_ uri >/dev/null 2>&1 && break
        sleep 0.1
    done
}

# ACPI and the guest's powerbtn=1: `virsh shutdown` (the ACPI power button) powers it off.
lv_domain_start() {
    cat >"$T/dom.xml" <<XML
<domain type='qemu'>
  <name>$DOM</name>
  <memory unit='MiB'>$GUEST_MEM_MB</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$T/guest/vmlinuz</kernel><initrd>$T/guest/initramfs.cpio.gz</initrd>
    <cmdline>console=ttyS0 memcheck=$GUEST_MIB quiet panic=-1 no_timer_check powerbtn=1</cmdline></os>
  <features><acpi/></features>
  <on_reboot>destroy</on_reboot>
  <devices>
    <serial type='pty'><log file='$T/$DOM.serial' append='on'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='none'/>
  </devices>
</domain>
XML
    virsh_ define "$T/dom.xml" >/dev/null || die "define failed"
    virsh_ start "$DOM" >/dev/null || die "start failed"
    guest_wait_ready "$T/$DOM.serial" 120 || die "$DOM did not boot"
    guest_wait_pass_above "$T/$DOM.serial" 0 60 || die "$DOM does not verify its memory"
}

# The pid of $DOM's QEMU, from libvirt's pid file.
lv_qemu_pid() {
    local pid
    pid=$(cat "/run/libvirt/qemu/$DOM.pid" 2>/dev/null) || return 1
    [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *qemu* ]] || return 1
    echo "$pid"
}
