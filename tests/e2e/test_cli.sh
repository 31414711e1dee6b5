#!/bin/bash
# The command line: --version, --help, a missing mountpoint, and the daemon mode the README uses:
# savefs returns once the mount is ready and exits when it is unmounted.
source "$SRC_DIR/tests/e2e/lib.sh"
e2e_setup

"$SAVEFS_BIN" --version | grep -q '^savefs [0-9]' || die "--version: $("$SAVEFS_BIN" --version)"
"$SAVEFS_BIN" --help | grep -q -- '--store DIR' || die "--help does not describe --store"
if "$SAVEFS_BIN" --store "$STORE" --qmp-dir "$QMP" 2>"$T/err"; then die "no mountpoint accepted"; fi
grep -q "mountpoint" "$T/err" || die "no word about the mountpoint: $(cat "$T/err")"

log "daemon mode: returns with the mount ready"
"$SAVEFS_BIN" --store "$STORE/new" --qmp-dir "$QMP/new" "$MNT" || die "savefs failed to start"
mountpoint -q "$MNT" || die "savefs returned before the mount was ready"
pid=$(pgrep -f -x "$SAVEFS_BIN --store $STORE/new --qmp-dir $QMP/new $MNT") || die "no daemon"
SAVEFS_PIDS+=("$pid")
[[ $(stat -c %a "$STORE/new") == 700 && $(stat -c %a "$QMP/new") == 700 ]] ||
    die "store or qmp-dir not created 0700"
ls "$MNT" >/dev/null || die "cannot list the mount"
fusermount3 -u "$MNT"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && die "the daemon did not exit after the unmount"
log "-o allow_other: another user can neither read nor act (default_permissions, 0700 dirs)"
savefs_start -o allow_other
mkdir "$MNT/vm1"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
if as_nobody ls "$MNT/vm1" >/dev/null 2>&1; then die "nobody could list vm1"; fi
if as_nobody sh -c "echo 4 > '$MNT/vm1/save'" 2>/dev/null; then die "nobody could save"; fi
if as_nobody mkdir "$MNT/vm2" 2>/dev/null; then die "nobody could make a VM entry"; fi
if as_nobody rmdir "$MNT/vm1" 2>/dev/null; then die "nobody could remove a VM entry"; fi
[[ -d $STORE/vm1/snapshots && ! -e $STORE/vm2 ]] || die "another user changed the store"
log "PASS"
