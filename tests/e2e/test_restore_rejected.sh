#!/bin/bash
# A QEMU that rejects the incoming stream: the restore fails with EIO and QEMU's own words from its
# log (not the copier's EPIPE or ECONNRESET), in status and in the rename's errno, and no QEMU is
# left. The restore's QEMU is made to differ from the saved one by an edited, accepted manifest:
# other RAM size (-m), and a device missing.
source "$SRC_DIR/tests/e2e/lib.sh"
e2e_setup
savefs_start
# shellcheck disable=SC2034 # read by guest.sh
GUEST_MIB=64
# shellcheck disable=SC2034,SC2054 # read by guest.sh; one QEMU option, with its commas
GUEST_EXTRA_ARGS=(-device virtio-rng-pci,id=rng0)
vm_start vm1
echo "name=good" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
vm_wait_gone vm1
snaps=$STORE/vm1/snapshots

# rejected NAME JQ WORDS: restores a copy of good whose manifest's argv is edited by JQ (and
# accepted); the rename must fail with EIO and status must hold QEMU's WORDS.
rejected() {
    local name=$1 edit=$2 words=$3 digest why
    cp -a "$snaps/good" "$snaps/$name"
    jq "del(.hmac) | .qemu.argv |= ($edit)" "$snaps/good/manifest.json" >"$snaps/$name/manifest.json"
    # An edited manifest is no longer this host's own: it restores only once accepted.
    digest=$(getfattr --absolute-names --only-values -n user.savefs.digest "$MNT/vm1/snapshots/$name")
    "$SAVEFS_BIN" accept --store "$STORE" vm1 "$name" "$digest" >/dev/null || die "accept failed"
    if mv "$MNT/vm1/snapshots/$name" "$MNT/vm1/restore/" 2>"$T/mv.err"; then
        die "$name: the restore succeeded"
    fi
    why=$(status_field vm1 error)
    log "$name: $(cat "$T/mv.err"); status: $why"
    grep -q "Input/output error" "$T/mv.err" || die "$name: the rename's errno is not EIO"
    [[ $(status_field vm1 errno) == EIO ]] || die "$name: status's errno is not EIO"
    [[ $why == *"$words"* ]] || die "$name: QEMU's words '$words' are not in: $why"
    [[ $(vm_state vm1) == stopped ]] || die "$name: a QEMU was left: $(vm_state vm1)"
    rm -r "${snaps:?}/$name"
}

log "other RAM size"
rejected smaller 'map(if . == "512" then "384" else . end)' "Size mismatch: pc.ram"
log "a device missing"
# shellcheck disable=SC2016 # jq's variables
rejected norng 'index(["virtio-rng-pci,id=rng0"]) as $i | del(.[$i - 1, $i])' "Unknown savevm section"

log "the good snapshot still restores"
mv "$MNT/vm1/snapshots/good" "$MNT/vm1/restore/" || die "restore failed: $(cat "$MNT/vm1/status")"
[[ $(vm_state vm1) == running ]] || die "vm1 is $(vm_state vm1) after the restore"
log "PASS"
