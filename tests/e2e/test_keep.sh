#!/bin/bash
# Retention and the store's facts through the mount: keep=N on a save keeps the N newest snapshots
# by their manifests' creation time and names what it deleted in the outcome; a snapshot being
# copied in (snapshots/ or restore/, a writer open) is never deleted; a deletion that fails is
# reported and the save still succeeds; keep=0 and keep=x are EINVAL. du and df through the
# mount say what they say on the store.
source "$SRC_DIR/tests/e2e/lib.sh"
# shellcheck disable=SC2034 # read by guest.sh
GUEST_MEM_MB=192 GUEST_MIB=48
e2e_setup
store_on_loop 1200
savefs_start
vm_start vm1
pid=$(vm_pid vm1)

# The snapshots of vm1 as the mount lists them, sorted, on one line.
snaps() {
    find "$MNT/vm1/snapshots" -mindepth 1 -maxdepth 1 -printf "%f\n" | sort | xargs
}

# save WORDS: a save that must succeed, of vm1's first QEMU, which runs on.
save() {
    echo "keep-running $*" >"$MNT/vm1/save" || die "save '$*' failed: $(cat "$MNT/vm1/save")"
    [[ $(vm_pid vm1 || true) == "$pid" ]] || die "save '$*': vm1's QEMU quit or changed"
}

log "keep=0, keep=x, keep= twice: EINVAL at the write, nothing saved"
for words in keep=0 keep=x keep= "keep=1 keep=2"; do
    if echo "keep-running $words" >"$MNT/vm1/save" 2>"$T/err"; then die "'$words' was accepted"; fi
    grep -q "Invalid argument" "$T/err" || die "'$words': $(cat "$T/err")"
    grep -q '^error EINVAL: vm1: .*keep' "$MNT/vm1/save" || die "'$words': save says $(cat "$MNT/vm1/save")"
done
[[ -z $(snaps) ]] || die "a refused save left snapshots: $(snaps)"

log "4 saves with keep=2 leave the two newest; the names sort the other way round"
for name in d c b a; do
    save "keep=2 name=$name"
    log "  $(cat "$MNT/vm1/save")"
done
[[ $(snaps) == "a b" ]] || die "keep=2 left '$(snaps)', not 'a b'"
in_store=$(cd "$STORE/vm1/snapshots" && echo *)
[[ $in_store == "a b" ]] || die "the store holds $in_store"
grep -q '^ok a .*; keep=2: deleted c$' "$MNT/vm1/save" || die "the outcome: $(cat "$MNT/vm1/save")"
grep -q '"summary": ".*; keep=2: deleted c"' "$MNT/vm1/status" || die "status: $(cat "$MNT/vm1/status")"
check_no_partial vm1

log "du of each snapshot through the mount is du in the store"
for s in a b; do
    mnt_kib=$(du -sk "$MNT/vm1/snapshots/$s" | cut -f1)
    store_kib=$(du -sk "$STORE/vm1/snapshots/$s" | cut -f1)
    ((mnt_kib > 40000 && mnt_kib - store_kib <= 4 && store_kib - mnt_kib <= 4)) ||
        die "du of $s: $mnt_kib KiB through the mount, $store_kib KiB in the store"
done
du -sh "$MNT"/vm1/snapshots/* | sed 's|[^ \t]*/||' >"$T/du.mnt"
du -sh "$STORE"/vm1/snapshots/* | sed 's|[^ \t]*/||' >"$T/du.store"
diff "$T/du.mnt" "$T/du.store" >&2 || die "du -sh differs"

log "df and stat -f of the mount are the store's filesystem"
sync
df_fields() {
    stat -f -c '%S %b %f %a %c %d' "$1"
}
[[ $(df_fields "$MNT") == "$(df_fields "$STORE")" ]] ||
    die "statfs: mount '$(df_fields "$MNT")', store '$(df_fields "$STORE")'"
[[ $(df --output=size,used,avail "$MNT" | tail -1) == "$(df --output=size,used,avail "$STORE" | tail -1)" ]] ||
    die "df: $(df "$MNT" "$STORE")"

log "copies in progress, a writer open in each, survive keep=1"
# Each is a whole copy of b but for main, still open for writing: the import waits for its close.
mkdir "$MNT/vm1/snapshots/copy" "$MNT/vm1/restore/import"
exec 3>"$MNT/vm1/snapshots/copy/main" 4>"$MNT/vm1/restore/import/main"
for dir in "$MNT/vm1/snapshots/copy" "$MNT/vm1/restore/import"; do
    find "$STORE/vm1/snapshots/b" -type f ! -name main -exec cp -t "$dir" {} +
done
cat "$STORE/vm1/snapshots/b/main" >&3
cat "$STORE/vm1/snapshots/b/main" >&4
save "keep=1 name=e"
[[ $(snaps) == "copy e import" ]] || die "keep=1 with copies in progress left '$(snaps)'"
grep -q '^ok e .*; keep=1: deleted a, b; in use, not deleted: ' "$MNT/vm1/save" ||
    die "the outcome: $(cat "$MNT/vm1/save")"
for s in copy import; do
    grep -q "not deleted: .*$s" "$MNT/vm1/save" || die "the outcome does not name $s: $(cat "$MNT/vm1/save")"
done

log "a copy whose writer closed is an ordinary snapshot: the next keep=1 deletes it"
exec 3>&-
save "keep=1 name=f"
[[ $(snaps) == "f import" ]] || die "keep=1 left '$(snaps)'"
grep -q '^ok f .*; keep=1: deleted e, copy; in use, not deleted: import$' "$MNT/vm1/save" ||
    die "the outcome: $(cat "$MNT/vm1/save")"

log "a deletion that fails is reported; the save succeeds"
chattr +i "$STORE/vm1/snapshots/f"
save "keep=1 name=g"
chattr -i "$STORE/vm1/snapshots/f"
grep -q '^ok g .*; keep=1: nothing deleted; in use, not deleted: import; could not delete f (Operation not permitted)$' \
    "$MNT/vm1/save" || die "the outcome: $(cat "$MNT/vm1/save")"
[[ $(snaps) == "f g import" ]] || die "after a failed deletion: '$(snaps)'"
[[ -f $STORE/vm1/snapshots/f/manifest.json ]] || die "the snapshot that could not go lost its manifest"
check_no_partial vm1
exec 4>&-
log "PASS"
