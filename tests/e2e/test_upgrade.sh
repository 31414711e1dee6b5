#!/bin/bash
# A fleet upgrades one host at a time: a snapshot saved under the host's QEMU 7.2 (Debian 12)
# restores under QEMU 10.0 (a Debian 13 root, the same paths on both sides), its saved machine
# type pinned; one saved under QEMU 10.0 is refused on the 7.2 host before any QEMU starts,
# naming both versions.
source "$SRC_DIR/tests/e2e/lib.sh"
# shellcheck source=debroot.sh
source "$SRC_DIR/tests/e2e/debroot.sh"
droot_require
e2e_setup
trap 'rc=$?; droot_cleanup; (exit $rc); e2e_cleanup' EXIT
# shellcheck disable=SC2034 # read by guest.sh
GUEST_MEM_MB=256 GUEST_MIB=64
droot_setup trixie "$DROOT_CACHE/trixie" "${DROOT_BUILD_PACKAGES[@]}"
droot_build || die "savefs does not build in Debian 13"
# The scratch dir (store, QMP dir, serial logs) and the guest at the same paths in the root, and
# the VM started from the scratch dir: a restore runs QEMU in the directory the source ran in.
droot_bind "$T"
droot_bind "$GUEST_DIR" "$GUEST_DIR" ro
cd "$T"

# savefs of the Debian 13 root on the same store and QMP directory, mounted at $ROOT$MNT.
D13_MNT=$ROOT$MNT
d13_savefs_start() {
    savefs_spawn "$D13_MNT" droot_run /build-savefs/fs/savefs -f --store "$STORE" \
        --qmp-dir "$QMP" "$MNT"
}
d13_savefs_stop() {
    fusermount3 -u "$D13_MNT" || fusermount3 -uz "$D13_MNT"
    savefs_stop
}

log "saved under the host's $(qemu-system-x86_64 --version | head -n1)"
vm_start vm1
savefs_start
pass=$(guest_last_pass "$T/vm1.serial")
seed=$(guest_seed "$T/vm1.serial")
echo "4 name=old" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
vm_wait_gone vm1 || die "vm1 did not quit after the save"
jq -r .qemu.machine "$MNT/vm1/snapshots/old/manifest.json" | grep -q '^pc-i440fx-7\.2$' ||
    die "the manifest does not record pc-i440fx-7.2: $(jq .qemu "$MNT/vm1/snapshots/old/manifest.json")"
savefs_stop

log "restored under $(droot_run qemu-system-x86_64 --version | head -n1)"
d13_savefs_start
mv "$D13_MNT/vm1/snapshots/old" "$D13_MNT/vm1/restore/" ||
    die "the 7.2 snapshot does not restore under 10.0: $(cat "$D13_MNT/vm1/status")"
vm_adopt vm1
pid=$(vm_pid vm1)
[[ $(readlink "/proc/$pid/root") == "$ROOT" ]] || die "the restored QEMU is not the root's"
tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'pc-i440fx-7\.2' ||
    die "the restored command line does not pin pc-i440fx-7.2: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
vm_check_alive vm1 "$pass" "$seed"
log "the guest goes on past pass $pass with seed $seed under QEMU 10"

log "saved under QEMU 10, refused on the 7.2 host"
echo "2 name=new" >"$D13_MNT/vm1/save" || die "save under 10.0 failed: $(cat "$D13_MNT/vm1/status")"
vm_wait_gone vm1 || die "vm1 did not quit after the save under 10.0"
d13_savefs_stop
savefs_start
if mv "$MNT/vm1/snapshots/new" "$MNT/vm1/restore/" 2>"$T/mv.err"; then
    die "a snapshot of QEMU 10.0 was restored under 7.2"
fi
reason=$(jq -r .last.error "$MNT/vm1/status")
[[ $reason == *10.0* && $reason == *7.2* ]] || die "the refusal does not name both versions: $reason"
! vm_pid vm1 >/dev/null || die "a QEMU runs after the refusal"
log "refused: $reason"
log "PASS"
