#!/bin/bash
# The core gestures on a real guest: bad words change nothing; `echo 4 > save` saves and quits
# the VM; `ls` shows the files (a page index for every channel); `mv` into restore/ brings the
# guest back with its memory intact; a second cycle with 8 channels and a name works the same.
source "$SRC_DIR/tests/e2e/lib.sh"
e2e_setup
vm_start vm1
savefs_start

ls "$MNT" | grep -qx vm1 || die "vm1 not listed in $MNT"
[[ $(vm_state vm1) == running ]] || die "vm1 state $(vm_state vm1), not running"

log "bad words leave the VM running and the store unchanged"
for words in 0 65 -1 1e9 parallel= "4 4" bogus name=../x name=.h "parallel=2 parallel=3"; do
    if echo "$words" >"$MNT/vm1/save" 2>/dev/null; then
        die "'$words' was accepted"
    fi
done
[[ $(vm_state vm1) == running ]] || die "vm1 not running after bad words"
listing=$(ls -A "$MNT/vm1/snapshots") || die "cannot list vm1/snapshots"
[[ -z $listing ]] || die "bad words left a snapshot: $listing"
[[ ! -e $STORE/vm1 ]] || die "bad words changed the store: $(ls -R "$STORE")"
grep -q '^error EINVAL' "$MNT/vm1/save" || die "save does not tell the last error: $(cat "$MNT/vm1/save")"

# One save/restore cycle with words $1, checking the guest's memory after.
cycle() {
    local words=$1 channels=$2 pass seed snap
    pass=$(guest_last_pass "$T/vm1.serial")
    seed=$(guest_seed "$T/vm1.serial")
    log "echo $words > save"
    echo "$words" >"$MNT/vm1/save" || die "save '$words' failed: $(cat "$MNT/vm1/status")"
    vm_wait_gone vm1 || die "vm1's QEMU did not quit after the save"
    snap=$(ls -t "$MNT/vm1/snapshots" | head -n1)
    log "snapshot $snap: $(ls "$MNT/vm1/snapshots/$snap" | tr '\n' ' ')"
    # Every channel has its page index, whichever QEMU wrote it (a lazy restore needs them).
    for f in manifest.json main $(seq -f 'channel-%g' 0 $((channels - 1))) \
        $(seq -f 'channel-%g.idx' 0 $((channels - 1))); do
        [[ -s $MNT/vm1/snapshots/$snap/$f ]] || die "$snap/$f missing or empty"
    done
    [[ ! -e $MNT/vm1/snapshots/$snap/channel-$channels ]] || die "$snap has too many channels"
    grep -q "^ok $snap" "$MNT/vm1/save" || die "save says: $(cat "$MNT/vm1/save")"
    [[ $(vm_state vm1) == stopped ]] || die "vm1 state after save: $(vm_state vm1)"
    log "mv $snap into restore/"
    mv "$MNT/vm1/snapshots/$snap" "$MNT/vm1/restore/" || die "restore failed: $(cat "$MNT/vm1/status")"
    vm_adopt vm1
    [[ $(vm_state vm1) == running ]] || die "vm1 state after restore: $(vm_state vm1)"
    [[ $(vm_multifd vm1) == false ]] || die "the restored QEMU has multifd '$(vm_multifd vm1)'"
    [[ -d $MNT/vm1/snapshots/$snap ]] || die "$snap no longer listed after the restore"
    vm_check_alive vm1 "$pass" "$seed"
    log "restored: passes go on past $pass with seed $seed"
}

# A QEMU >= 9.0 that once migrated to a file may still have mapped-ram on, which refuses a socket
# stream ("Migration requires seekable transport"): savefs's save sets it off for its own stream.
if [[ -n $(vm_cap vm1 mapped-ram) ]]; then
    log "mapped-ram left on, as a file migration leaves it"
    vm_set_cap vm1 mapped-ram true || die "cannot set mapped-ram on"
    [[ $(vm_cap vm1 mapped-ram) == true ]] || die "mapped-ram is '$(vm_cap vm1 mapped-ram)'"
fi
cycle 4 4
cycle "parallel=8 name=second" 8
[[ -d $MNT/vm1/snapshots/second ]] || die "snapshot 'second' not named"
cycle 1 1
cycle "parallel=2 compress=zstd:1 name=packed" 2
jq -e '.compression | tostring | test("zstd")' "$MNT/vm1/snapshots/packed/manifest.json" >/dev/null ||
    die "the manifest does not say zstd: $(jq .compression "$MNT/vm1/snapshots/packed/manifest.json")"
[[ $(head -c4 "$MNT/vm1/snapshots/packed/channel-0" | od -An -tx1 | tr -d ' ') == 28b52ffd ]] ||
    die "channel-0 does not start with a zstd frame"
plain=$(du -bc "$MNT/vm1/snapshots/second"/channel-? | tail -1 | cut -f1)
packed=$(du -bc "$MNT/vm1/snapshots/packed"/channel-? | tail -1 | cut -f1)
log "channels: $plain bytes plain, $packed with zstd:1"
((packed < plain)) || die "zstd:1 made the snapshot no smaller"
log "PASS"
