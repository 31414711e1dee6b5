#!/bin/bash
# What a careless shell meets on the mount: names longer than NAME_MAX (ENAMETOOLONG), files made
# where savefs makes none (EPERM), `rm -rf` of a snapshot while it restores (waits for the
# restore), `rm -rf` of a VM's directory (its snapshots and store entry go; the VM's own
# entries do not stop rm; a VM whose QEMU runs stays, EBUSY).
source "$SRC_DIR/tests/e2e/lib.sh"
# shellcheck disable=SC2034 # read by guest.sh
GUEST_MEM_MB=192 GUEST_MIB=48
e2e_setup
store_on_loop 1200
vm_start vm1
savefs_start

# Fails unless command "$2..." fails with the error text $1 (strerror's words).
fails_with() {
    local want=$1
    shift
    if "$@" 2>"$T/err"; then die "$* succeeded"; fi
    grep -q "$want" "$T/err" || die "$*: not '$want': $(cat "$T/err")"
}

log "names longer than 255 bytes: ENAMETOOLONG, not ENOENT"
long=$(printf 'a%.0s' $(seq 300))
fails_with "File name too long" stat "$MNT/$long"
fails_with "File name too long" stat "$MNT/vm1/$long"
fails_with "File name too long" ls "$MNT/vm1/snapshots/$long"
fails_with "File name too long" mkdir "$MNT/vm1/snapshots/$long"
fails_with "No such file" stat "$MNT/vm1/snapshots/nothing"

log "files where savefs makes none: EPERM, not ENOENT"
fails_with "Operation not permitted" touch "$MNT/vm1/x"
fails_with "Operation not permitted" touch "$MNT/newfile"
fails_with "Operation not permitted" touch "$MNT/vm1/snapshots/x"
fails_with "Operation not permitted" touch "$MNT/vm1/restore/x"
fails_with "No such file" touch "$MNT/novm/x"
fails_with "No such file" touch "$MNT/vm1/restore/nothing/x"

log "rm -rf of a snapshot while it restores: waits for the restore, which completes"
echo "name=s1" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/save")"
vm_wait_gone vm1 || die "vm1 did not quit after its save"
# A full restore, whose streaming phase the throttle makes last.
setfattr -n user.savefs.restore -v full "$MNT/vm1/snapshots/s1"
throttle_savefs $((4 << 20))
mv "$MNT/vm1/snapshots/s1" "$MNT/vm1/restore/" 2>"$T/mv.err" &
mover=$!
wait_phase vm1 restoring
rm -rf "$MNT/vm1/snapshots/s1" 2>"$T/rm.err" &
remover=$!
sleep 2
kill -0 "$remover" 2>/dev/null || die "rm -rf did not wait for the restore: $(cat "$T/rm.err")"
[[ $(status_field vm1 phase) == restoring ]] || die "the restore ended early: $(cat "$MNT/vm1/status")"
unthrottle_savefs
wait "$mover" || die "the restore failed: $(cat "$T/mv.err")"
vm_adopt vm1
wait "$remover" || grep -q "Is a directory" "$T/rm.err" || die "rm -rf: $(cat "$T/rm.err")"
rm -rf "$MNT/vm1/snapshots/s1" || die "rm -rf after the restore failed"
[[ ! -e $STORE/vm1/snapshots/s1 ]] || die "s1 is still in the store"

log "rm -rf of a VM whose QEMU runs: its snapshots go, the VM's entry stays (EBUSY)"
fails_with "busy" rm -rf "$MNT/vm1"
[[ -z $(ls -A "$MNT/vm1/snapshots") ]] || die "snapshots left: $(ls "$MNT/vm1/snapshots")"
[[ -d $MNT/vm1 && -f $MNT/vm1/status ]] || die "vm1's entry is gone"
[[ $(vm_state vm1) == running ]] || die "vm1 is $(vm_state vm1)"

log "a snapshot deleted and made again under the same name: no stale page from the cache"
mkdir "$MNT/vm3" && mkdir "$MNT/vm3/snapshots/c"
head -c 1M /dev/urandom >"$T/a" && head -c 1M /dev/urandom >"$T/b"
cp "$T/a" "$MNT/vm3/snapshots/c/main"
cmp -s "$T/a" "$MNT/vm3/snapshots/c/main" || die "the first copy reads back wrong"
rm -rf "$STORE/vm3/snapshots/c" && mkdir "$STORE/vm3/snapshots/c" && cp "$T/b" "$STORE/vm3/snapshots/c/main"
cmp -s "$T/b" "$MNT/vm3/snapshots/c/main" || die "the mount served the deleted snapshot's pages"
rm -rf "$MNT/vm3" || die "rm -rf of vm3 failed"

log "rm -rf of a VM without a QEMU: everything goes, rm succeeds"
mkdir "$MNT/vm2" && mkdir "$MNT/vm2/snapshots/a" "$MNT/vm2/snapshots/b"
echo x >"$MNT/vm2/snapshots/a/main"
rm -rf "$MNT/vm2" || die "rm -rf of vm2 failed"
[[ ! -e $MNT/vm2 && ! -e $STORE/vm2 ]] || die "vm2 left: $(ls -R "$STORE/vm2" 2>&1)"
log "PASS"
