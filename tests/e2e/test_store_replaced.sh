#!/bin/bash
# The store directory deleted and made again under a mounted savefs: savefs still holds the old
# directory, so whatever a job wrote to the new one could never be listed (and would be signed by
# a key the new store does not have). Every job fails with a reason naming the store; no save
# says ok.
source "$SRC_DIR/tests/e2e/lib.sh"
e2e_setup
savefs_start
# shellcheck disable=SC2034 # read by guest.sh
GUEST_MIB=64

vm_start vm1
echo "keep-running name=first" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"

log "rm -rf STORE && mkdir STORE under the mount"
rm -rf "$STORE"
mkdir "$STORE"
if echo "keep-running name=second" >"$MNT/vm1/save" 2>"$T/save.err"; then
    die "a save into the replaced store succeeded: $(cat "$MNT/vm1/save")"
fi
log "save: $(cat "$T/save.err"); $(cat "$MNT/vm1/save")"
[[ $(cat "$MNT/vm1/save") == "error ESTALE"* ]] || die "the save says: $(cat "$MNT/vm1/save")"
grep -q "Stale file handle" "$T/save.err" || die "the write's errno is not ESTALE: $(cat "$T/save.err")"
[[ $(status_field vm1 error) == *"$STORE"* ]] || die "the reason does not name the store: $(status_field vm1 error)"
[[ -z $(find "$STORE" -mindepth 1) ]] || die "the save wrote into the new store: $(find "$STORE")"
[[ $(vm_state vm1) == running ]] || die "vm1 is $(vm_state vm1) after the refused save"

log "PASS"
