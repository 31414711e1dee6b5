#!/bin/bash
# A snapshot's RAM describes the VM's disks as they were when it was saved: the manifest records
# each writable disk (from QEMU's query-block), the xattrs show it and whether the VM ran on
# (keep-running disks=none: a checkpoint without its disks), and a restore over a disk that changed
# since is refused with ESTALE, naming the disk, until forced with `setfattr -n user.savefs.force
# -v disks` (used once). The guest loads
# virtio_blk and writes its disk every second, as a running VM does.
source "$SRC_DIR/tests/e2e/lib.sh"
command -v jq >/dev/null || { echo "SKIP: jq is needed"; exit 77; }
guest_has_virtio || { echo "SKIP: the guest in $GUEST_DIR has no virtio modules (rebuild it)"; exit 77; }
e2e_setup
# A 64 MiB qcow2 image at $1, made by QEMU itself (qemu-img is in another package).
make_qcow2() {
    truncate -s 0 "$1"
    { printf '%s\n' '{"execute":"qmp_capabilities"}' \
        "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"file\",\"filename\":\"$1\",\"node-name\":\"f\"}}" \
        '{"execute":"blockdev-create","arguments":{"job-id":"c","options":{"driver":"qcow2","file":"f","size":67108864}}}'
        sleep 2
        echo '{"execute":"quit"}'; } |
        timeout 30 "$GUEST_QEMU" -machine none -nodefaults -display none -qmp stdio >/dev/null
    [[ $(head -c 3 "$1") == QFI ]] || die "could not make a qcow2 image at $1"
}

truncate -s 64M "$T/disk.raw" "$T/data.raw"
truncate -s 1M "$T/ro.raw"
make_qcow2 "$T/disk.qcow2"
# The guest writes its first disk (/dev/vda) every second while it runs.
# shellcheck disable=SC2034 # read by guest_args
GUEST_APPEND="virtio=1 diskwrite=1"
# shellcheck disable=SC2034 # read by guest_args
GUEST_EXTRA_ARGS=(-drive "file=$T/disk.raw,format=raw,if=virtio"
    -drive "file=data.raw,format=raw,if=virtio"
    -drive "file=$T/disk.qcow2,format=qcow2,if=virtio"
    -drive "file=$T/ro.raw,format=raw,if=virtio,readonly=on")
(cd "$T" && vm_start vm1)
savefs_start "$@"

fact() {
    getfattr --absolute-names --only-values -n "user.savefs.$2" "$MNT/vm1/snapshots/$1"
}

# Restores snapshot $1 and expects the refusal: ESTALE, naming disk $2.
refused() {
    if mv "$MNT/vm1/snapshots/$1" "$MNT/vm1/restore/" 2>"$T/mv.err"; then
        die "restore of $1 over a changed disk was accepted"
    fi
    grep -qi "stale" "$T/mv.err" || die "not ESTALE: $(cat "$T/mv.err")"
    grep -qF "$2" "$MNT/vm1/status" || die "the reason does not name $2: $(cat "$MNT/vm1/status")"
    [[ -z $(vm_pid vm1 || true) ]] || die "a QEMU runs after the refusal"
}

# Waits until snapshot $1's disks fact says the guest wrote its disk.
wait_disk_written() {
    for _ in $(seq 100); do
        [[ $(fact "$1" disks) == "changed"*"$T/disk.raw"* ]] && return 0
        sleep 0.1
    done
    die "the guest did not write its disk: $(fact "$1" disks)"
}

pass=$(guest_last_pass "$T/vm1.serial")
seed=$(guest_seed "$T/vm1.serial")
echo "2 name=s1" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
vm_wait_gone vm1 || die "vm1 did not quit after the save"
# data.raw is relative to QEMU's working directory: recorded as an absolute path.
jq -e --arg raw "$T/disk.raw" --arg data "$T/data.raw" --arg qcow "$T/disk.qcow2" \
    '.keep_running == false and (.disks | length == 3) and .disks[0].path == $raw and
     .disks[1].path == $data and .disks[1].format == "raw" and .disks[2].path == $qcow and
     .disks[2].format == "qcow2" and
     (.disks[0].fingerprint | startswith("xxh3:"))' \
    "$MNT/vm1/snapshots/s1/manifest.json" >/dev/null ||
    die "the manifest does not record the writable disks: $(jq -c .disks "$MNT/vm1/snapshots/s1/manifest.json")"
[[ $(fact s1 keep_running) == no ]] || die "keep_running fact: $(fact s1 keep_running)"
[[ $(fact s1 disks) == "unchanged"* ]] || die "disks fact: $(fact s1 disks)"

log "unchanged disks (raw and qcow2, opened and closed by QEMU) restore"
mv "$MNT/vm1/snapshots/s1" "$MNT/vm1/restore/" || die "restore failed: $(cat "$MNT/vm1/status")"
vm_adopt vm1
vm_check_alive vm1 "$pass" "$seed"

log "keep-running disks=none: the guest runs on and writes its disk; both snapshots are then refused"
echo "keep-running disks=none 2 name=kept" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
[[ $(fact kept keep_running) == yes ]] || die "keep_running fact: $(fact kept keep_running)"
wait_disk_written kept
kill "$(vm_pid vm1)"
vm_wait_gone vm1 || die "QEMU did not exit on SIGTERM"
# The qcow2 the guest does not write: resumed, run and quit by QEMU, it is as saved.
# (grep, not jq: jq 1.6 rounds integers beyond 2^53)
saved=$(grep -o '"mtime_ns": [0-9]*' "$MNT/vm1/snapshots/kept/manifest.json" | sed -n '3s/.* //p')
now=$(stat -c %.9Y "$T/disk.qcow2" | tr -d .)
[[ $now == "$saved" ]] || die "QEMU changed the qcow2's mtime: $now, saved $saved"
refused kept "$T/disk.raw"
refused s1 "$T/disk.raw"

log "forced once: the restore goes ahead, and the force is used up"
setfattr -n user.savefs.force -v disks "$MNT/vm1/snapshots/kept"
mv "$MNT/vm1/snapshots/kept" "$MNT/vm1/restore/" || die "forced restore failed: $(cat "$MNT/vm1/status")"
vm_adopt vm1
# A lazy restore's outcome comes with its last page.
for _ in $(seq 600); do
    [[ $(jq -r '.job // empty | .op' "$MNT/vm1/status") == "" ]] && break
    sleep 0.2
done
grep -q "disk check overridden" "$MNT/vm1/status" || die "status does not say it was forced: $(cat "$MNT/vm1/status")"
if getfattr --absolute-names -n user.savefs.force "$MNT/vm1/snapshots/kept" >/dev/null 2>&1; then
    die "the force is still set after the restore"
fi
wait_disk_written kept
kill "$(vm_pid vm1)"
vm_wait_gone vm1 || die "QEMU did not exit on SIGTERM"
refused kept "$T/disk.raw"

# A QEMU's leader thread can be reaped (gone, or a zombie) while its other threads still close its
# descriptors, and with them the lease's lock: a restore right after `kill` meets a lock whose
# holder has quit. Held here by a stand-in for 1.5 s; the restore waits it out.
hold_lease() {
    python3 - "$STORE/.leases/vm1" <<'PY' &
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 1, 0))
print("held", flush=True)
time.sleep(1.5)
PY
    HOLDER=$!
}

log "a snapshot of an older savefs (no disks recorded) restores, unchecked"
mkdir "$STORE/vm1/snapshots/old"
cp "$STORE/vm1/snapshots/s1"/* "$STORE/vm1/snapshots/old/"
jq '.snapshot = "old" | del(.disks, .keep_running, .hmac)' "$STORE/vm1/snapshots/s1/manifest.json" \
    >"$STORE/vm1/snapshots/old/manifest.json"
[[ $(fact old disks) == unknown* ]] || die "disks fact of an older snapshot: $(fact old disks)"
"$SAVEFS_BIN" accept --store "$STORE" vm1 old "$(fact old digest)" >/dev/null || die "accept failed"
log "... while the lease's lock is still held a moment for the QEMU that quit"
gone=$(jq .pid "$STORE/.leases/vm1")
[[ $(awk '{print $3}' "/proc/$gone/stat" 2>/dev/null || echo gone) == [ZX]* ]] ||
    [[ ! -e /proc/$gone ]] || die "the lease names a QEMU that still runs"
hold_lease >"$T/holder.out"
for _ in $(seq 50); do [[ -s $T/holder.out ]] && break; sleep 0.1; done
[[ -s $T/holder.out ]] || die "the stand-in did not take the lease's lock"
mv "$MNT/vm1/snapshots/old" "$MNT/vm1/restore/" || die "older snapshot refused: $(cat "$MNT/vm1/status")"
wait "$HOLDER"
vm_adopt vm1
log "PASS"
