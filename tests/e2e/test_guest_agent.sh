#!/bin/bash
# A restored guest with a guest agent channel gets its clock set (guest-sync, then
# guest-set-time, as libvirt's SYNC_TIME). vm1 runs the test guest's agent (tests/guest/fake-agent,
# a busybox script on the virtio port: the guest has no qemu-ga), saved long enough for its clock
# to fall behind: after the restore its clock is the host's again. vm2 has the channel but no
# agent: the restore reports the silence without failing or waiting long.
source "$SRC_DIR/tests/e2e/lib.sh"
command -v jq >/dev/null || { echo "SKIP: jq is needed"; exit 77; }
guest_has_virtio || { echo "SKIP: the guest in $GUEST_DIR has no virtio modules (rebuild it)"; exit 77; }
e2e_setup
# shellcheck disable=SC2034 # read by guest_args
GUEST_EXTRA_ARGS=(-device virtio-serial -chardev "socket,id=ga,path=ga.sock,server=on,wait=off"
    -device "virtserialport,chardev=ga,name=org.qemu.guest_agent.0")
# shellcheck disable=SC2034 # read by guest_args
GUEST_APPEND="virtio=1 agent=1"
(cd "$T" && guest_start vm1 "$QMP" "$T/vm1.serial" >/dev/null)
# shellcheck disable=SC2034 # read by guest_args
GUEST_APPEND="virtio=1"
mkdir "$T/vm2" && (cd "$T/vm2" && guest_start vm2 "$QMP" "$T/vm2.serial" >/dev/null)
for vm in vm1 vm2; do
    guest_wait_pass_above "$T/$vm.serial" 0 120 || die "$vm does not verify its memory"
done
grep -aq "SAVEFS-AGENT listening" "$T/vm1.serial" || die "vm1's agent does not run: $(grep -a SAVEFS "$T/vm1.serial")"
savefs_start "$@"

# Restores VM $1 from snapshot $2; sets SUMMARY, TOOK (seconds), and START and END (the host's
# clock in whole seconds around it).
restore() {
    local start
    # Fully: the clock is then set before the rename returns, inside START..END (a lazy
    # restore sets it once the guest runs, after the rename returned).
    setfattr -n user.savefs.restore -v full "$MNT/$1/snapshots/$2"
    start=$(date +%s.%N)
    mv "$MNT/$1/snapshots/$2" "$MNT/$1/restore/" || die "restore failed: $(cat "$MNT/$1/status")"
    TOOK=$(echo "$(date +%s.%N) - $start" | bc)
    START=${start%.*}
    END=$(($(date +%s) + 1))
    vm_adopt "$1"
    SUMMARY=$(jq -r .last.summary "$MNT/$1/status")
    log "$1: the restore took $TOOK s: $SUMMARY"
}

log "vm1: saved for 20 s, its clock is set on restore"
pass=$(guest_last_pass "$T/vm1.serial")
seed=$(guest_seed "$T/vm1.serial")
echo "2 name=s1" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
vm_wait_gone vm1 || die "vm1 did not quit after the save"
sleep 20
restore vm1 s1
[[ $SUMMARY == *"guest clock set by its agent"* ]] || die "vm1's clock was not set: $SUMMARY"
line=$(tr -d '\r' <"$T/vm1.serial" | grep -a "^SAVEFS-AGENT set-time" | tail -n1)
read -r _ _ _ _ was _ now <<<"$line"
((was < START - 15)) || die "the guest's clock was not behind before: '$line' (restore at $START)"
((now >= START && now <= END)) || die "the guest's clock is not the host's: '$line' ($START..$END)"
vm_check_alive vm1 "$pass" "$seed"

log "vm2: an agent channel with no agent; the restore says so"
echo "2 name=s2" >"$MNT/vm2/save" || die "save failed: $(cat "$MNT/vm2/status")"
vm_wait_gone vm2 || die "vm2 did not quit after the save"
restore vm2 s2
[[ $SUMMARY == *"guest clock not set: no answer from the guest agent"* ]] ||
    die "the restore did not try the guest agent: $SUMMARY"
(($(echo "$TOOK < 10" | bc))) || die "the restore waited $TOOK s for the agent"
log "PASS"
