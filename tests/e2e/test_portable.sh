#!/bin/bash
# Snapshots are plain directories for standard tools: ls -l, jq and getfattr read them; cp -a,
# tar and rsync carry them out of the mount and back in byte for byte; only regular files and
# directories can be made; an incomplete snapshot is listed but its restore names the missing
# file; rm -r deletes one, but not while a restore reads it. An import through restore/ restores
# only once every file is there and verified, never because a directory or a file appeared.
source "$SRC_DIR/tests/e2e/lib.sh"
command -v rsync >/dev/null && command -v getfattr >/dev/null && command -v jq >/dev/null ||
    { echo "SKIP: rsync, getfattr (attr) and jq are needed"; exit 77; }
# shellcheck disable=SC2034 # read by guest.sh
GUEST_MEM_MB=192 GUEST_MIB=48
e2e_setup
store_on_loop 1500
vm_start vm1
savefs_start

SNAPS=$MNT/vm1/snapshots
pass=$(guest_last_pass "$T/vm1.serial")
seed=$(guest_seed "$T/vm1.serial")
echo "name=base" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
vm_wait_gone vm1 || die "vm1 did not quit after the save"
BASE=$STORE/vm1/snapshots/base

# Every file of snapshot dir $1 equals base's, byte for byte.
same_as_base() {
    local f n=0
    for f in "$BASE"/*; do
        cmp -s "$f" "$1/$(basename "$f")" || die "$1/$(basename "$f") differs from base"
        n=$((n + 1))
    done
    [[ $n -ge 4 ]] || die "base has only $n files"
}

log "reading: ls -l, jq, getfattr"
for f in "$BASE"/*; do
    [[ $(stat -c '%s %a %Y' "$f") == $(stat -c '%s %a %Y' "$SNAPS/base/$(basename "$f")") ]] ||
        die "ls -l of $(basename "$f") differs from the store"
done
[[ $(jq -r .channels "$SNAPS/base/manifest.json") == 4 ]] || die "jq cannot read the manifest"
getfattr -d "$SNAPS/base" >"$T/facts" || die "getfattr failed"
# The version of the QEMU that saved, whichever it is (7.2 on Debian 12, 10.0 on Debian 13).
qemu_major=$(qemu-system-x86_64 --version | sed -n 's/^QEMU emulator version \([0-9]*\)\..*/\1/p')
facts=('channels="4"' 'compression="none"' 'ram_size="201326592"' "qemu_version=\"$qemu_major."
    'created="' 'verified="sizes' 'trust="ok: signed' 'digest="sha256:')
for fact in "${facts[@]}"; do
    grep -q "^user.savefs.$fact" "$T/facts" || die "no user.savefs.$fact in: $(cat "$T/facts")"
done

log "out of the mount: cp -a, tar, rsync -a"
cp -a "$SNAPS/base" "$T/out-cp"
same_as_base "$T/out-cp"
tar -C "$SNAPS" -cf "$T/base.tar" base
rsync -a "$SNAPS/base/" "$T/out-rsync/"
same_as_base "$T/out-rsync"

log "into the mount: cp -a, tar x, rsync -a, mv from another filesystem"
cp -a "$T/out-cp" "$SNAPS/viacp"
same_as_base "$BASE/../viacp"
[[ $(stat -c '%a %Y' "$SNAPS/viacp/main") == $(stat -c '%a %Y' "$BASE/main") ]] ||
    die "cp -a did not keep the mode and time of main"
tar -C "$SNAPS" --transform 's,^base,viatar,' -xf "$T/base.tar"
same_as_base "$BASE/../viatar"
rsync -a "$T/out-rsync/" "$SNAPS/viarsync/"
same_as_base "$BASE/../viarsync"
mv "$T/out-cp" "$SNAPS/viamv"
same_as_base "$BASE/../viamv"
[[ ! -e $T/out-cp ]] || die "mv left its source"
[[ $(ls -A "$BASE/../viarsync") == $(ls -A "$BASE") ]] || die "rsync left other files: $(ls -A "$BASE/../viarsync")"
setfattr -n user.note -v kept "$SNAPS/viacp/main"
[[ $(getfattr --only-values -n user.note "$SNAPS/viacp/main") == kept ]] || die "user xattr lost"

log "only regular files and directories, with good names"
if ln -s /etc/passwd "$SNAPS/viacp/link" 2>/dev/null; then die "symlink made"; fi
if ln "$SNAPS/viacp/main" "$SNAPS/viacp/hard" 2>/dev/null; then die "hard link made"; fi
if mknod "$SNAPS/viacp/fifo" p 2>/dev/null; then die "FIFO made"; fi
if mkdir "$SNAPS/.hidden" 2>/dev/null; then die "snapshot named .hidden made"; fi
if touch "$SNAPS/loose-file" 2>/dev/null; then die "a file made in snapshots/"; fi
[[ -z $(find "$STORE" -type l -o -type p) ]] || die "the store holds a link or FIFO"

log "an incomplete snapshot is listed, and its restore names the file"
cp -a "$BASE" "$SNAPS/cut"
truncate -s 100 "$SNAPS/cut/channel-1"
ls "$SNAPS" | grep -qx cut || die "incomplete snapshot not listed"
getfattr --only-values -n user.savefs.verified "$SNAPS/cut" | grep -q 'channel-1' ||
    die "verified does not name channel-1"
if mv "$SNAPS/cut" "$MNT/vm1/restore/" 2>/dev/null; then die "incomplete snapshot restored"; fi
grep -q 'channel-1' "$MNT/vm1/status" || die "status does not name channel-1: $(cat "$MNT/vm1/status")"
vm_pid vm1 >/dev/null && die "a QEMU runs after a refused restore"

log "a damaged snapshot is refused, naming the file"
cp -a "$BASE" "$SNAPS/stall"
size=$(stat -c %s "$SNAPS/stall/channel-1")
flip_byte "$SNAPS/stall/channel-1" $((size / 2))
# A full restore refuses it before the guest runs (a lazy one stops the guest when it meets the
# damage: test_lazy_restore).
setfattr -n user.savefs.restore -v full "$SNAPS/stall"
if mv "$SNAPS/stall" "$MNT/vm1/restore/" 2>/dev/null; then die "damaged snapshot restored"; fi
grep -q 'channel-1' "$MNT/vm1/status" || die "the checksum error does not name channel-1"
# Damage QEMU parses before savefs has read the file to its end (the magic of the first multifd
# packet, after the 64 bytes of the channel's handshake): QEMU hangs up on it, and the error
# still names the damaged file, not the stream that met the hang-up.
cp -a "$BASE" "$SNAPS/header"
flip_byte "$SNAPS/header/channel-1" 64
setfattr -n user.savefs.restore -v full "$SNAPS/header"
if mv "$SNAPS/header" "$MNT/vm1/restore/" 2>/dev/null; then die "damaged snapshot restored"; fi
jq -r '.last.error' "$MNT/vm1/status" | grep -q '^vm1: .*channel-1: .*checksum' ||
    die "the error does not name channel-1's checksum: $(jq -r '.last.error' "$MNT/vm1/status")"
rm -r "$SNAPS/stall" "$SNAPS/header" "$SNAPS/cut" "$SNAPS/viatar"
[[ ! -e $BASE/../stall && ! -e $BASE/../viatar ]] || die "rm -r left the snapshot in the store"

log "an import restores only once complete: a directory and a manifest are not enough"
mkdir "$MNT/vm1/restore/imp"
cp "$BASE/manifest.json" "$BASE/main" "$MNT/vm1/restore/imp/"
sleep 1
ls "$MNT/vm1/restore" | grep -qx imp || die "restore/ does not list the import"
ls "$SNAPS" | grep -qx imp || die "the import is not in snapshots/"
grep -q '"phase": "importing"' "$MNT/vm1/status" || die "no importing phase: $(cat "$MNT/vm1/status")"
grep -q 'channel-0 is missing' "$MNT/vm1/status" || die "status does not say what is missing"
vm_pid vm1 >/dev/null && die "a QEMU started for an incomplete import"
throttled=0
if [[ -f /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device ]]; then
    throttle_savefs 4000000 # the import reads slowly: there is time to try rm -r
    throttled=1
fi
cp "$BASE"/channel-* "$MNT/vm1/restore/imp/"
if ((throttled)); then
    for _ in $(seq 100); do
        grep -q '"phase": "verifying"' "$MNT/vm1/status" && break
        sleep 0.1
    done
    grep -q '"phase": "verifying"' "$MNT/vm1/status" || die "no verifying: $(cat "$MNT/vm1/status")"
    # (A restore started by mv holds the directory locked in the kernel: rm waits instead.)
    if rm -rf "$SNAPS/imp" 2>"$T/rm.err"; then die "rm -r of a snapshot being restored worked"; fi
    grep -q 'busy' "$T/rm.err" || die "not EBUSY: $(cat "$T/rm.err")"
    unthrottle_savefs
else
    log "no blkio throttle here: EBUSY during a restore not checked"
fi
for _ in $(seq 200); do
    vm_pid vm1 >/dev/null && [[ $(vm_state vm1) == running ]] && break
    sleep 0.1
done
vm_pid vm1 >/dev/null || die "tar x into restore/ restored nothing: $(cat "$MNT/vm1/status")"
vm_adopt vm1
vm_check_alive vm1 "$pass" "$seed"
grep -q '"phase": "restored"' "$MNT/vm1/status" || die "import not restored: $(cat "$MNT/vm1/status")"

log "tar x into restore/ imports and restores, too"
pass=$(guest_last_pass "$T/vm1.serial")
echo "name=second" >"$MNT/vm1/save" || die "second save failed: $(cat "$MNT/vm1/status")"
vm_wait_gone vm1 || die "vm1 did not quit after the second save"
tar -C "$SNAPS" --transform 's,^second,fromtar,' -cf "$T/second.tar" second
tar -C "$MNT/vm1/restore" -xf "$T/second.tar" || die "tar x into restore/ failed"
for _ in $(seq 200); do
    vm_pid vm1 >/dev/null && [[ $(vm_state vm1) == running ]] && break
    sleep 0.1
done
vm_pid vm1 >/dev/null || die "tar x into restore/ restored nothing: $(cat "$MNT/vm1/status")"
vm_adopt vm1
vm_check_alive vm1 "$pass" "$seed"
log "PASS"
