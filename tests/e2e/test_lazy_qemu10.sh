#!/bin/bash
# savefs-pager against QEMU 10.0 (the Debian 13 root of test_debian13, a throw-away overlay of
# the cached one): the memcheck guest saved under 10.0 through the mount (its main stream holds
# SWITCHOVER_START, its channels the zero pages), restored lazily by a 10.0 QEMU served by the
# pager: it runs, the migration completes, and its memory checks go on passing.
source "$SRC_DIR/tests/e2e/lib.sh"
# shellcheck source=lazy.sh
source "$SRC_DIR/tests/e2e/lazy.sh"
if [[ $(id -u) -ne 0 ]] || ! command -v debootstrap >/dev/null; then
    echo "SKIP: needs root and debootstrap (contrib/install-deps.sh)"
    exit 77
fi
# shellcheck source=debroot.sh
source "$SRC_DIR/tests/e2e/debroot.sh"
e2e_setup
droot_qemu10
log "under $("$T/qemu10" --version | head -n1)"
GUEST_QEMU=$T/qemu10 vm_start vm1
savefs_start
echo "2 name=s10" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
pass=$(guest_last_pass "$T/vm1.serial")
seed=$(guest_seed "$T/vm1.serial")
vm_wait_gone vm1 || die "vm1's QEMU did not quit after the save"
LAZY_QEMU=$T/qemu10 lazy_qemu "$STORE/vm1/snapshots/s10"
out=$(LAZY_EVENTS=$T/events python3 "$DRIVE" serve "$QMP/vm1.qmp" 180 "$PAGER_BIN" \
    "$STORE/vm1/snapshots/s10" "$T/lazy.sock") ||
    die "lazy restore failed: $out; QEMU: $(cat "$T/lazy.qemu.log"); events: $(cat "$T/events")"
log "$(tr '\n' ' ' <<<"$out")"
tail -1 "$T/events" | grep -q '^done ' || die "no 'done' event: $(cat "$T/events")"
vm_check_alive vm1 "$((pass + 1))" "$seed"
log "PASS"
