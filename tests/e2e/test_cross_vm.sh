#!/bin/bash
# A snapshot goes to another VM name only deliberately. `mv`, `cp -r`, rsync or tar x of VM a's
# snapshot into b/restore/ or b/snapshots/ fails when its manifest (naming a) is closed or renamed
# into place, with EXDEV: mv keeps the source, b runs nothing, the refused manifest is not kept
# and b's status says why; files after it are refused at once. A restore of a manifest naming
# another VM, put straight into the store, never runs. `savefs adopt` gives the snapshot to b
# (only one this host runs as it is), and b restores it.
# shellcheck source=lib.sh
source "$SRC_DIR/tests/e2e/lib.sh"
export GUEST_MEM_MB=128 GUEST_MIB=32
e2e_setup
vm_start a
# shellcheck disable=SC2119
savefs_start

pass=$(guest_last_pass "$T/a.serial")
seed=$(guest_seed "$T/a.serial")
echo "name=S 2" >"$MNT/a/save" || die "save failed: $(cat "$MNT/a/status")"
vm_wait_gone a || die "a did not quit after the save"
mkdir "$MNT/b"
SRC=$STORE/a/snapshots/S
(cd "$SRC" && sha256sum ./*) >"$T/S.sums"

# After a refused copy into b ($1 names it): S is intact in a, b runs nothing, b's status says
# why, and no manifest of the copy was kept in b's snapshot $2.
refused() {
    sleep 1 # an import would have started its restore by now
    (cd "$SRC" && sha256sum -c --quiet "$T/S.sums") || die "$1: S in a changed"
    [[ ! -S $QMP/b.qmp ]] || die "$1: a QEMU listens as b"
    vm_pid a >/dev/null && die "$1: a QEMU runs (a's pidfile)"
    grep -q 'manifest.json names VM a, not b' "$MNT/b/status" ||
        die "$1: b's status does not say why: $(cat "$MNT/b/status")"
    [[ ! -e $STORE/b/snapshots/$2/manifest.json ]] || die "$1: the refused manifest was kept"
    return 0
}

log "mv of a's snapshot into b/restore/ or b/snapshots/ fails and keeps the source"
if mv "$MNT/a/snapshots/S" "$MNT/b/restore/" 2>"$T/mv.err"; then die "mv succeeded"; fi
grep -q 'manifest.json' "$T/mv.err" || die "mv does not name the manifest: $(cat "$T/mv.err")"
refused mv S
rm -r "$MNT/b/snapshots/S"

if mv "$MNT/a/snapshots/S" "$MNT/b/snapshots/" 2>/dev/null; then die "mv into snapshots/ succeeded"; fi
refused "mv snapshots/" S
rm -r "$MNT/b/snapshots/S"

log "cp -r into b/restore/ and into b/snapshots/ fail"
if cp -r "$MNT/a/snapshots/S" "$MNT/b/restore/" 2>/dev/null; then die "cp -r into restore/ succeeded"; fi
refused "cp -r restore/" S
rm -r "$MNT/b/snapshots/S"
if cp -r "$MNT/a/snapshots/S" "$MNT/b/snapshots/" 2>/dev/null; then die "cp -r into snapshots/ succeeded"; fi
refused "cp -r snapshots/" S
rm -r "$STORE/b/snapshots/S" # behind savefs's back: a new S of that name is not refused
mkdir "$MNT/b/snapshots/S"
cp "$SRC/main" "$MNT/b/snapshots/S/" || die "a write into a new S was refused"
rm -r "$MNT/b/snapshots/S"

log "rsync (a temporary file renamed to manifest.json) and tar x fail the same way"
if rsync -a "$MNT/a/snapshots/S/" "$MNT/b/snapshots/R/" 2>/dev/null; then die "rsync succeeded"; fi
refused rsync R
tar -C "$MNT/a/snapshots" -cf "$T/S.tar" S
if tar -C "$MNT/b/restore" -xf "$T/S.tar" 2>/dev/null; then die "tar x into restore/ succeeded"; fi
refused "tar x" S
rm -r "$MNT/b/snapshots/R" "$MNT/b/snapshots/S"

log "the manifest last, then first"
mkdir "$MNT/b/restore/last"
cp "$SRC"/main "$SRC"/channel-* "$MNT/b/restore/last/"
if cp "$SRC/manifest.json" "$MNT/b/restore/last/" 2>/dev/null; then die "manifest written last accepted"; fi
refused "manifest last" last
mkdir "$MNT/b/restore/first"
if cp "$SRC/manifest.json" "$MNT/b/restore/first/" 2>/dev/null; then die "manifest written first accepted"; fi
if cp "$SRC/main" "$MNT/b/restore/first/" 2>"$T/cp.err"; then die "a file after a refused manifest accepted"; fi
grep -q 'cross-device' "$T/cp.err" || die "not EXDEV: $(cat "$T/cp.err")"
refused "manifest first" first
rm -r "$MNT/b/snapshots/last" "$MNT/b/snapshots/first"

log "a manifest naming a, put straight into b's store, never restores"
cp -a "$SRC" "$STORE/b/snapshots/direct"
if mv "$MNT/b/snapshots/direct" "$MNT/b/restore/" 2>/dev/null; then die "restore of a's manifest as b ran"; fi
[[ ! -e $QMP/.savefs/b.log ]] || die "a QEMU was started for b: $(cat "$QMP/.savefs/b.log")"
grep -q 'manifest.json names VM a, not b' "$MNT/b/status" || die "no reason: $(cat "$MNT/b/status")"
rm -r "$MNT/b/snapshots/direct"

log "savefs adopt refuses a snapshot this host does not run as it is"
cp -a "$SRC" "$STORE/a/snapshots/U"
jq 'del(.hmac)' "$SRC/manifest.json" >"$STORE/a/snapshots/U/manifest.json"
if "$SAVEFS_BIN" adopt --store "$STORE" a U b 2>"$T/adopt.err"; then die "adopt re-signed an unsigned snapshot"; fi
grep -q 'accept it first' "$T/adopt.err" || die "adopt does not say why: $(cat "$T/adopt.err")"
[[ ! -e $STORE/b/snapshots/U ]] || die "adopt left b/snapshots/U"
check_no_partial b

log "savefs adopt gives S to b, and b restores it"
"$SAVEFS_BIN" adopt --store "$STORE" a S b >"$T/adopt.out" || die "adopt failed"
[[ $(jq -r .vm "$STORE/b/snapshots/S/manifest.json") == b ]] || die "the adopted manifest does not name b"
getfattr --only-values -n user.savefs.trust "$MNT/b/snapshots/S" | grep -q '^ok: signed' ||
    die "the adopted snapshot is not trusted: $(getfattr -d "$MNT/b/snapshots/S")"
if "$SAVEFS_BIN" adopt --store "$STORE" a S b 2>/dev/null; then die "adopt replaced a snapshot"; fi
(cd "$SRC" && sha256sum -c --quiet "$T/S.sums") || die "adopt changed S in a"
mv "$MNT/b/snapshots/S" "$MNT/b/restore/" || die "restore of the adopted S failed: $(cat "$MNT/b/status")"
[[ $(vm_state b) == running ]] || die "b is $(vm_state b)"
vm_adopt a # the restored QEMU runs a's command line: a's pidfile and serial log, b's QMP socket
vm_check_alive a "$pass" "$seed"
log "PASS"
