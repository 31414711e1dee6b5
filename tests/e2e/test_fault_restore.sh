#!/bin/bash
# Damaged snapshots and faults during a restore. A damaged snapshot is refused before the guest
# runs, with a reason that names the file; its fresh QEMU is killed; no file is touched. An
# interrupted restore, or one whose savefs is killed, leaves no QEMU behind and the snapshot whole.
source "$SRC_DIR/tests/e2e/lib.sh"
e2e_setup
store_on_loop 2500
savefs_start
throttle_savefs 0
unthrottle_savefs

vm_start vm1
pass=$(guest_last_pass "$T/vm1.serial")
seed=$(guest_seed "$T/vm1.serial")
echo "name=good" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
vm_wait_gone vm1
# The guarantees of a full restore: a damaged snapshot never runs (a lazy one finds a damaged
# block when it serves it: test_lazy_restore).
setfattr -n user.savefs.restore -v full "$STORE/vm1"
snaps=$STORE/vm1/snapshots

# damage NAME WHAT: a copy of the good snapshot, damaged (as a bad disk or a bad copy would).
damage() {
    local dir=$snaps/$1
    cp -a "$snaps/good" "$dir"
    case $2 in
    flip) flip_byte "$dir/channel-1" $((3 << 20)) ;;
    flip-main) flip_byte "$dir/main" 20000 ;;
    truncate) truncate -s -4096 "$dir/channel-2" ;;
    missing) rm "$dir/channel-3" ;;
    garbage) head -c 3000 /dev/urandom >"$dir/manifest.json" ;;
    absent) rm "$dir/manifest.json" ;;
    version) sed -i 's/"version": 1,/"version": 99,/' "$dir/manifest.json" ;;
    esac
}

# refused NAME FILE: restoring NAME fails naming FILE, leaves no QEMU and changes no file.
refused() {
    local name=$1 file=$2 before
    before=$(cd "$snaps" && md5sum good/* "$name"/* 2>/dev/null)
    if mv "$MNT/vm1/snapshots/$name" "$MNT/vm1/restore/" 2>/dev/null; then
        die "damaged snapshot $name was restored"
    fi
    local why
    why=$(status_field vm1 error)
    log "$name refused: $why"
    [[ $why == *"$file"* ]] || die "$name: the reason does not name $file"
    [[ $(vm_state vm1) == stopped ]] || die "$name: a QEMU was left: $(vm_state vm1)"
    [[ $(cd "$snaps" && md5sum good/* "$name"/* 2>/dev/null) == "$before" ]] || die "$name: files changed"
    rm -r "${snaps:?}/$name"
}

for d in flip:channel-1 flip-main:main truncate:channel-2 missing:channel-3 garbage:manifest.json \
    absent:manifest.json version:manifest.json; do
    damage "${d%%:*}" "${d%%:*}"
    refused "${d%%:*}" "${d#*:}"
done

log "a QEMU that rejects the stream (other RAM size): QEMU's own words"
cp -a "$snaps/good" "$snaps/smaller"
jq 'del(.hmac) | .qemu.argv |= map(if . == "512" then "384" else . end)' \
    "$snaps/good/manifest.json" >"$snaps/smaller/manifest.json"
# An edited manifest is no longer this host's own: it restores only once accepted.
digest=$(getfattr --only-values -n user.savefs.digest "$MNT/vm1/snapshots/smaller")
"$SAVEFS_BIN" accept --store "$STORE" vm1 smaller "$digest" >/dev/null || die "accept failed"
if mv "$MNT/vm1/snapshots/smaller" "$MNT/vm1/restore/" 2>/dev/null; then
    die "a restore into another RAM size succeeded"
fi
log "refused: $(status_field vm1 error)"
[[ $(status_field vm1 error) == *"Size mismatch: pc.ram"* ]] || die "no QEMU words in: $(cat "$MNT/vm1/status")"
[[ $(vm_state vm1) == stopped ]] || die "a QEMU was left after a rejected stream"
rm -r "$snaps/smaller"

log "the mv interrupted (SIGINT) during the restore: no QEMU is left, the snapshot restores later"
throttle_savefs $((25 << 20))
sync && echo 3 >/proc/sys/vm/drop_caches
env --default-signal=INT mv "$MNT/vm1/snapshots/good" "$MNT/vm1/restore/" 2>/dev/null &
mover=$!
wait_phase vm1 restoring
kill -INT "$mover"
if wait "$mover"; then die "the interrupted restore succeeded"; fi
[[ $(vm_state vm1) == stopped ]] || die "vm1 is $(vm_state vm1) after an interrupted restore"

log "savefs killed (SIGKILL) during the restore: its next start kills the half-restored QEMU"
mv "$MNT/vm1/snapshots/good" "$MNT/vm1/restore/" 2>/dev/null &
mover=$!
wait_phase vm1 restoring
half=$(vm_pid vm1) || die "no QEMU during the restore"
kill -9 "${SAVEFS_PIDS[-1]}"
wait "$mover" || true
fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
savefs_start
grep -q "killed the QEMU of an interrupted restore" "$T/savefs.log" || die "savefs did not say it killed the half-restored QEMU"
for _ in $(seq 50); do kill -0 "$half" 2>/dev/null || break; sleep 0.1; done
kill -0 "$half" 2>/dev/null && die "the half-restored QEMU $half still runs"

log "the good snapshot still restores"
mv "$MNT/vm1/snapshots/good" "$MNT/vm1/restore/" || die "restore failed: $(cat "$MNT/vm1/status")"
vm_adopt vm1
vm_check_alive vm1 "$pass" "$seed"
log "PASS"
