#!/bin/bash
# The trust model on a real guest (docs/trust.md): this store's own snapshot restores as it is;
# a signed manifest changed after signing fails its HMAC; a crafted manifest that would truncate a
# host file or run a script is refused, also once accepted (also through vde's cmd:// and a type=
# that overrides the backend), and also when it arrives by cp -r into restore/, and the host file
# stays as it was; a snapshot from nowhere restores once accepted with
# `savefs accept`; a QEMU binary the host does not allow is refused.
source "$SRC_DIR/tests/e2e/lib.sh"
command -v jq >/dev/null || { echo "SKIP: jq is needed"; exit 77; }
e2e_setup
vm_start vm1
savefs_start

SNAPS=$MNT/vm1/snapshots
pass=$(guest_last_pass "$T/vm1.serial")
seed=$(guest_seed "$T/vm1.serial")
echo "name=own" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
vm_wait_gone vm1 || die "vm1 did not quit after the save"
jq -e '.hmac | startswith("hmac-sha256:")' "$SNAPS/own/manifest.json" >/dev/null ||
    die "the manifest is not signed"
getfattr --only-values -n user.savefs.trust "$SNAPS/own" | grep -q "^ok: signed with this store" ||
    die "own snapshot not trusted: $(getfattr -d "$SNAPS/own")"

echo precious >"$T/victim"
cat >"$T/evil.sh" <<EOF
#!/bin/sh
touch "$T/pwned"
EOF
chmod +x "$T/evil.sh"

# Copies snapshot own to $1 with its manifest rewritten by the jq filter $2.
craft() {
    cp -a "$SNAPS/own" "$SNAPS/$1"
    jq "$2" "$STORE/vm1/snapshots/own/manifest.json" >"$T/$1.json"
    cat "$T/$1.json" >"$SNAPS/$1/manifest.json"
}

# Restoring $1 is refused with a reason matching $2; no QEMU ran, no host file changed.
refused() {
    if mv "$SNAPS/$1" "$MNT/vm1/restore/" 2>/dev/null; then die "$1 was restored"; fi
    grep -q "$2" "$MNT/vm1/status" || die "$1: status lacks '$2': $(cat "$MNT/vm1/status")"
    [[ $(cat "$T/victim") == precious ]] || die "$1: the host file was changed"
    [[ ! -e $T/pwned ]] || die "$1: the script ran"
    [[ ! -e $QMP/.savefs/vm1.log ]] || die "$1: a QEMU was started: $(cat "$QMP/.savefs/vm1.log")"
    vm_pid vm1 >/dev/null && die "$1: a QEMU runs"
    return 0
}

log "a signed manifest changed after signing fails its HMAC"
rm -f "$QMP/.savefs/vm1.log"
craft tampered ".qemu.argv += [\"-serial\", \"file:$T/victim\"]"
refused tampered "fails its HMAC"

log "a crafted manifest that truncates a host file and runs a script is refused"
craft crafted "del(.hmac) | .qemu.argv += [\"-serial\", \"file:$T/victim\",
    \"-netdev\", \"tap,id=n9,script=$T/evil.sh,downscript=no\"]"
refused crafted "does not recognize it"
digest=$(getfattr --only-values -n user.savefs.digest "$SNAPS/crafted")
"$SAVEFS_BIN" accept --store "$STORE" vm1 crafted | grep -q "$digest" ||
    die "savefs accept does not show the digest"
"$SAVEFS_BIN" accept --store "$STORE" vm1 crafted "$digest" || die "savefs accept failed"
refused crafted "is refused: netdev type .tap. is not on the allowlist"

log "accepted, a backend off the allowlist is still refused: vde's cmd://, a type= override"
for how in "vde,id=n9,sock=cmd://touch $T/pwned" "user,id=n9,type=tap,script=$T/evil.sh"; do
    craft sly "del(.hmac) | .qemu.argv += [\"-netdev\", \"$how\"]"
    "$SAVEFS_BIN" accept --store "$STORE" --qmp-dir "$QMP" vm1 sly \
        "$(getfattr --only-values -n user.savefs.digest "$SNAPS/sly")" >/dev/null
    refused sly "is refused: netdev type '[a-z]*' is not on the allowlist"
    rm -r "$SNAPS/sly"
done

log "a QEMU binary the host does not allow is refused"
craft shell 'del(.hmac) | .qemu.binary = "/bin/sh"'
"$SAVEFS_BIN" accept --store "$STORE" vm1 shell \
    "$(getfattr --only-values -n user.savefs.digest "$SNAPS/shell")" >/dev/null
refused shell "not one this host allows"

log "a crafted snapshot copied into restore/ stays in snapshots/ with its reason"
craft crafted2 "del(.hmac) | .qemu.argv += [\"-serial\", \"file:$T/victim\"]"
cp -a "$STORE/vm1/snapshots/crafted2" "$T/crafted2"
rm -r "$SNAPS/crafted2"
cp -r "$T/crafted2" "$MNT/vm1/restore/"
for _ in $(seq 50); do
    grep -q '"phase": "failed"' "$MNT/vm1/status" && break
    sleep 0.1
done
grep -q "does not recognize it" "$MNT/vm1/status" || die "no reason: $(cat "$MNT/vm1/status")"
[[ -d $SNAPS/crafted2 ]] || die "the refused import is not in snapshots/"
refused crafted2 "does not recognize it"

log "an unsigned snapshot restores once accepted"
craft foreign 'del(.hmac)'
refused foreign "does not recognize it"
"$SAVEFS_BIN" accept --store "$STORE" vm1 foreign \
    "$(getfattr --only-values -n user.savefs.digest "$SNAPS/foreign")" >/dev/null
jq -e '.accept | length == 5' "$(local_json vm1)" >/dev/null || die "local.json: $(cat "$(local_json vm1)")"
mv "$SNAPS/foreign" "$MNT/vm1/restore/" || die "accepted snapshot refused: $(cat "$MNT/vm1/status")"
vm_adopt vm1
vm_check_alive vm1 "$pass" "$seed"
log "PASS"
