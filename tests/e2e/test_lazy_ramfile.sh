#!/bin/bash
# A VM whose RAM maps a file. userfaultfd serves only anonymous, tmpfs and hugetlbfs memory: a
# lazy restore of RAM in a file elsewhere would fail in QEMU at LISTEN. And QEMU discards a
# postcopy destination's RAM by punching holes in the file even under a private mapping (7.2's
# ram_block_discard_range), wiping a RAM template other VMs start from. restore=auto therefore
# restores fully, saying why in the summary, a VM whose RAM is a private mapping of a tmpfs file
# with data (the file's bytes stay as they were) or any mapping of a file on another file
# system; restore=lazy is refused (EPROTONOSUPPORT) with the reason; a shared mapping of a tmpfs
# file (the file is the VM's RAM) restores lazily.
source "$SRC_DIR/tests/e2e/lib.sh"
: "${PAGER_BIN:?PAGER_BIN must name savefs-pager}"
export PAGER_BIN
e2e_setup
savefs_start
# shellcheck disable=SC2034 # read by guest.sh
GUEST_MIB=64
# A tmpfs of the test's own (unmounted by e2e_cleanup), for the RAM template.
mkdir "$T/shm"
mount -t tmpfs -o size="$((${GUEST_MEM_MB:-512} + 64))M" tmpfs "$T/shm" || die "mount tmpfs"
LOOP_MOUNTS+=("$T/shm")
RAM=$T/shm/ram.template
# A template with data: its first MiB random, the rest a hole.
truncate -s "${GUEST_MEM_MB:-512}M" "$RAM"
head -c 1M /dev/urandom | dd of="$RAM" conv=notrunc status=none
sum_before=$(sha256sum <"$RAM")

# cycle_start SHARE [FILE]: saves vm1 started on FILE (the template) mapped with share=SHARE;
# leaves the snapshot s.
cycle_start() {
    # shellcheck disable=SC2034,SC2054 # read by guest.sh; QEMU options with their commas
    GUEST_EXTRA_ARGS=(-object "memory-backend-file,id=ram0,size=${GUEST_MEM_MB:-512}M,mem-path=${2:-$RAM},share=$1"
        -machine memory-backend=ram0)
    vm_start vm1
    pass=$(guest_last_pass "$T/vm1.serial")
    seed=$(guest_seed "$T/vm1.serial")
    echo "name=s" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
    vm_wait_gone vm1 || die "vm1's QEMU did not quit after the save"
}

log "share=off, restore=lazy: refused with the reason, the VM left saved"
cycle_start off
setfattr -n user.savefs.restore -v lazy "$MNT/vm1/snapshots/s"
if mv "$MNT/vm1/snapshots/s" "$MNT/vm1/restore/" 2>"$T/mv.err"; then
    die "restore=lazy of a privately mapped RAM file succeeded"
fi
grep -q "Protocol not supported" "$T/mv.err" || die "not EPROTONOSUPPORT: $(cat "$T/mv.err")"
[[ $(status_field vm1 error) == *"maps $RAM privately"* ]] ||
    die "the reason is not in status: $(status_field vm1 error)"
[[ -d $MNT/vm1/snapshots/s ]] || die "the refused snapshot is gone"

# restore_says WORDS: restores s into vm1, whose memory checks go on (same boot), and the summary
# has WORDS.
restore_says() {
    mv "$MNT/vm1/snapshots/s" "$MNT/vm1/restore/" || die "restore failed: $(cat "$MNT/vm1/status")"
    vm_adopt vm1
    vm_check_alive vm1 "$pass" "$seed"
    wait_no_job vm1
    [[ $(last_message vm1) == *"$1"* ]] || die "the summary does not say '$1': $(last_message vm1)"
}

# Ends vm1 and its snapshot s, for the next case.
end_vm() {
    kill "$(vm_pid vm1)"
    vm_wait_gone vm1 || die "QEMU did not exit on SIGTERM"
    rm -rf "$STORE/vm1/snapshots/s"
}

log "share=off, restore=auto: restored fully, the template untouched"
setfattr -n user.savefs.restore -v auto "$MNT/vm1/snapshots/s"
restore_says "fully (restore=auto): its RAM maps $RAM privately"
[[ $(sha256sum <"$RAM") == "$sum_before" ]] || die "the RAM template changed"
end_vm

log "a file on a file system userfaultfd cannot serve: restored fully"
[[ $(stat -f -c %T "$T") != tmpfs ]] || die "$T is on tmpfs: this case needs another file system"
cycle_start on "$T/ram.disk"
restore_says "fully (restore=auto): its RAM maps $T/ram.disk, on a file system userfaultfd cannot serve"
end_vm

log "share=on on tmpfs: the file is the VM's RAM, and it restores lazily"
cycle_start on
restore_says "restored s lazily"
log "PASS"
