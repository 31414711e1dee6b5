#!/bin/bash
# A restored guest with a guest agent channel gets its clock set (guest-set-time, as libvirt's
# SYNC_TIME). The test guest runs no qemu-ga: this shows that savefs finds the channel on the
# restored command line, asks, and reports the silence without failing the restore or waiting
# long; the exchange with an answering agent is unit-tested against a fake (test_agent).
source "$SRC_DIR/tests/e2e/lib.sh"
command -v jq >/dev/null || { echo "SKIP: jq is needed"; exit 77; }
e2e_setup
# shellcheck disable=SC2034 # read by guest_args
GUEST_EXTRA_ARGS=(-device virtio-serial -chardev "socket,id=ga,path=$T/ga.sock,server=on,wait=off"
    -device "virtserialport,chardev=ga,name=org.qemu.guest_agent.0")
vm_start vm1
savefs_start "$@"

pass=$(guest_last_pass "$T/vm1.serial")
seed=$(guest_seed "$T/vm1.serial")
echo "2 name=s1" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
vm_wait_gone vm1 || die "vm1 did not quit after the save"
start=$(date +%s.%N)
mv "$MNT/vm1/snapshots/s1" "$MNT/vm1/restore/" || die "restore failed: $(cat "$MNT/vm1/status")"
took=$(echo "$(date +%s.%N) - $start" | bc)
vm_adopt vm1
summary=$(jq -r .last.summary "$MNT/vm1/status")
log "restore took $took s: $summary"
[[ $summary == *"guest clock not set: no answer from the guest agent"* ]] ||
    die "the restore did not try the guest agent: $summary"
(($(echo "$took < 10" | bc))) || die "the restore waited $took s for the agent"
vm_check_alive vm1 "$pass" "$seed"
log "PASS"
