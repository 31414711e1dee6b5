# shellcheck shell=bash
# Helpers for the checkpoint tests (test_ckpt_*.sh), sourced after lib.sh: the store and the VM's
# disks on one loop-mounted filesystem of a given type (a reflink copies within one filesystem),
# a guest that counts in RAM and on two disks (raw by -drive with a relative path, qcow2 by
# -blockdev) beside a read-only one, and checkpoint cycles: checkpoint, run on, kill, restore,
# and check that RAM and disks agree and the count resumes from the checkpoint.

# ckpt_setup FSTYPE: $FS, a fresh FSTYPE (xfs or ext4) filesystem holding $STORE and the images.
ckpt_setup() {
    command -v jq >/dev/null || { echo "SKIP: jq is needed"; exit 77; }
    guest_has_virtio || { echo "SKIP: the guest in $GUEST_DIR has no virtio modules"; exit 77; }
    e2e_setup
    FS=$T/fs
    mkdir -p "$FS"
    truncate -s 1G "$T/fs.img"
    case $1 in
    xfs) mkfs.xfs -q -m reflink=1 "$T/fs.img" ;;
    ext4) mkfs.ext4 -q -F -m 0 "$T/fs.img" ;; # no blocks kept for root (savefs)
    esac
    mount -o loop "$T/fs.img" "$FS"
    LOOP_MOUNTS+=("$FS")
    STORE=$FS/store
    mkdir -p "$STORE" "$FS/img"
    truncate -s 64M "$FS/img/disk.raw" "$FS/img/ro.raw"
    qemu-img create -q -f qcow2 "$FS/img/disk.qcow2" 64M
    # shellcheck disable=SC2034 # read by guest_args
    # 256 MiB and 8 KiB: a RAM size QEMU 7.2 under TCG migrates live (docs/checkpoints.md), so
    # that these checkpoints are live ones, their disks captured while QEMU paused the VM.
    GUEST_MEM_MB=262152K GUEST_MIB=64 GUEST_APPEND="virtio=1 seqdisk=vda,vdb"
    # shellcheck disable=SC2034 # read by guest_args
    GUEST_EXTRA_ARGS=(-drive "file=img/disk.raw,format=raw,if=virtio"
        -blockdev "driver=file,node-name=f1,filename=$FS/img/disk.qcow2"
        -blockdev "driver=qcow2,node-name=d1,file=f1" -device "virtio-blk-pci,drive=d1"
        -drive "file=$FS/img/ro.raw,format=raw,if=virtio,readonly=on")
    (cd "$FS" && vm_start vm1)
    savefs_start
    seq_wait_above 20
}

# The SAVEFS-SEQ numbers in the serial log after line $1 (0: all of it).
seq_numbers() {
    tail -n +"$(($1 + 1))" "$T/vm1.serial" | tr -d '\r' | sed -n 's/^SAVEFS-SEQ n=\([0-9]*\) ok .*/\1/p'
}

seq_last() {
    seq_numbers 0 | tail -n 1
}

# Waits until the guest has counted past $1 (after line $2 of the log, if given).
seq_wait_above() {
    local last
    for _ in $(seq 240); do
        last=$(seq_numbers "${2:-0}" | tail -n 1)
        [[ -n $last ]] && ((last > $1)) && return 0
        sleep 0.5
    done
    die "the guest did not count past $1 (last: ${last:-none}): $(tail -n 3 "$T/vm1.serial")"
}

# The number on the first sector of image $1 (raw).
seq_on_disk() {
    head -c 64 "$1" | sed -n 's/^SAVEFS-SEQ \([0-9]*\)$/\1/p'
}

# ckpt_cycle NAME METHOD: checkpoint NAME of the running vm1 (captured by METHOD), let it run on,
# kill it, restore NAME and check the guest's count resumed from the checkpoint with RAM and
# disks agreeing, and that the images the killed VM ran on still hold its later count.
ckpt_cycle() {
    local name=$1 method=$2 s0 resumed later lines first m top
    s0=$(seq_last)
    echo "keep-running name=$name" >"$MNT/vm1/save" || die "checkpoint $name failed: $(cat "$MNT/vm1/status")"
    m=$MNT/vm1/snapshots/$name/manifest.json
    last_message vm1 | grep -q "live checkpoint: .*; paused [0-9]* ms" ||
        die "$name: not a live checkpoint: $(last_message vm1)"
    jq -e --arg m "$method" '[.disks[] | select(.captured)] | length == 2 and
        all(.captured.method == $m and (.captured.layers[0].xxh3 | length == 16) and
            (.fingerprint | test("^xxh3:[0-9a-f]{16}$")))' "$m" >/dev/null ||
        die "$name: the manifest does not record 2 disks captured by $method: $(jq -c .disks "$m")"
    jq -e '[.disks[] | select(.path | endswith("ro.raw"))] | length == 0' "$m" >/dev/null ||
        die "$name: the read-only disk was captured"
    resumed=$(seq_last)
    seq_wait_above $((resumed + 150))
    later=$(seq_last)
    top=$(jq -r '.disks[0].path' "$m")
    kill "$(vm_pid vm1)"
    vm_wait_gone vm1 || die "QEMU did not exit on SIGTERM"
    log "$name: checkpoint after $s0, resumed at $resumed, ran on to $later; restoring"
    lines=$(wc -l <"$T/vm1.serial")
    mv "$MNT/vm1/snapshots/$name" "$MNT/vm1/restore/" || die "restore of $name failed: $(cat "$MNT/vm1/status")"
    vm_adopt vm1
    seq_wait_above 0 "$lines"
    first=$(seq_numbers "$lines" | head -n 1)
    ((first >= s0 && first <= resumed + 50)) ||
        die "$name: the count resumed at $first, not from the checkpoint (between $s0 and $((resumed + 50)))"
    seq_wait_above $((first + 50)) "$lines"
    if tail -n +"$((lines + 1))" "$T/vm1.serial" | grep -a 'SAVEFS-SEQ MISMATCH\|SAVEFS-SEQ write'; then
        die "$name: RAM and disks disagree after the restore"
    fi
    # The disks' later state is where the killed VM left it: a raw image cloned, not switched
    # away from, holds its count.
    if [[ $top == *.raw && $method == reflink ]]; then
        (($(seq_on_disk "$top") >= later)) ||
            die "$name: $top holds $(seq_on_disk "$top"), the killed VM counted to $later"
    fi
    compgen -G "$STORE/vm1/layers/$name.*/0.qcow2" >/dev/null ||
        die "$name: no layer of the restored VM in $STORE/vm1/layers: $(ls -R "$STORE/vm1")"
    log "$name: restored; the count resumed at $first"
}

# Waits until the guest, restored after line $1 of its log, has counted 50 past its first number
# there; fails if RAM and disks disagreed since.
seq_agree_after() {
    seq_wait_above 0 "$1"
    seq_wait_above $(($(seq_numbers "$1" | head -n 1) + 50)) "$1"
    if tail -n +"$(($1 + 1))" "$T/vm1.serial" | grep -a 'SAVEFS-SEQ MISMATCH\|SAVEFS-SEQ write'; then
        die "RAM and disks disagree after line $1 of the guest's log"
    fi
}

# Waits (a minute at most) until vm1's status matches the grep pattern $1.
status_wait() {
    for _ in $(seq 600); do
        grep -q "$1" "$MNT/vm1/status" && return 0
        sleep 0.1
    done
    die "status does not say '$1': $(cat "$MNT/vm1/status")"
}
