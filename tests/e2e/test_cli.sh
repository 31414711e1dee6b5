#!/bin/bash
# The command line: --version, --help, a missing mountpoint, and the daemon mode the README uses:
# savefs returns once the mount is ready and exits when it is unmounted. Each way a mount cannot
# start has its exit status and one line saying why. MOUNT/README is read-only and no VM.
source "$SRC_DIR/tests/e2e/lib.sh"
e2e_setup

# refused STATUS WORDS ARGS...: savefs ARGS must exit STATUS, saying WORDS in one line, and
# mount nothing.
refused() {
    local want=$1 words=$2 rc=0
    shift 2
    "$@" >"$T/out" 2>"$T/err" || rc=$?
    [[ $rc == "$want" ]] || die "$* exited $rc, not $want: $(cat "$T/err")"
    [[ $(wc -l <"$T/err") == 1 ]] || die "$*: not one line: $(cat "$T/err")"
    grep -q -- "$words" "$T/err" || die "$*: no '$words' in: $(cat "$T/err")"
    log "exit $rc: $(cat "$T/err")"
}

"$SAVEFS_BIN" --version | grep -q '^savefs [0-9]' || die "--version: $("$SAVEFS_BIN" --version)"
"$SAVEFS_BIN" --help >"$T/help"
grep -q -- '--store DIR' "$T/help" || die "--help does not describe --store"
grep -q -- ' 26  another savefs' "$T/help" || die "--help does not list the mount's exit statuses"
grep -q -- ' 130  interrupted' "$T/help" || die "--help does not list save's exit statuses"
refused 2 "mountpoint" "$SAVEFS_BIN" --store "$STORE" --qmp-dir "$QMP"

log "a mount that cannot start: one line and its own exit status, nothing mounted"
refused 20 "the mountpoint $T/none: missing" "$SAVEFS_BIN" --store "$STORE" --qmp-dir "$QMP" "$T/none"
refused 25 "the QMP directory $T/noqmp is missing" "$SAVEFS_BIN" --store "$STORE" \
    --qmp-dir "$T/noqmp" "$MNT"
[[ ! -e $STORE ]] || die "a refused mount made the store"
mkdir -p "$T/ro"
mount -t tmpfs -o size=1m,ro tmpfs "$T/ro"
LOOP_MOUNTS+=("$T/ro")
refused 23 "the store $T/ro/store is not writable" "$SAVEFS_BIN" --store "$T/ro/store" \
    --qmp-dir "$QMP" "$MNT"
# A store on a disk that died: ext4 shut down, every write fails with EIO.
truncate -s 16M "$T/dead.img"
mkfs.ext4 -q -F "$T/dead.img"
mkdir -p "$T/dead"
mount -o loop "$T/dead.img" "$T/dead"
LOOP_MOUNTS+=("$T/dead")
"$FS_SHUTDOWN" "$T/dead" || die "cannot shut $T/dead down"
refused 24 "the store $T/dead is on a filesystem that fails" "$SAVEFS_BIN" --store "$T/dead" \
    --qmp-dir "$QMP" "$MNT"
# No /dev/fuse: in a mount namespace of its own, where /dev is an empty tmpfs.
refused 22 "no /dev/fuse" unshare -m --propagation private sh -c \
    'mount -t tmpfs tmpfs /dev && exec "$0" "$@"' "$SAVEFS_BIN" --store "$STORE" --qmp-dir "$QMP" \
    "$MNT"
mountpoint -q "$MNT" && die "a refused savefs mounted $MNT"

log "daemon mode: returns with the mount ready"
"$SAVEFS_BIN" --store "$STORE/new" --qmp-dir "$QMP" "$MNT" || die "savefs failed to start"
mountpoint -q "$MNT" || die "savefs returned before the mount was ready"
pid=$(pgrep -f -x "$SAVEFS_BIN --store $STORE/new --qmp-dir $QMP $MNT") || die "no daemon"
SAVEFS_PIDS+=("$pid")
[[ $(stat -c %a "$STORE/new") == 700 ]] || die "store not created 0700"
ls "$MNT" >/dev/null || die "cannot list the mount"
log "a mountpoint in use, a store in use: refused"
mkdir -p "$T/mnt2"
refused 21 "the mountpoint $MNT is busy" "$SAVEFS_BIN" --store "$STORE/other" --qmp-dir "$QMP" "$MNT"
refused 26 "another savefs already serves the store $STORE/new" "$SAVEFS_BIN" \
    --store "$STORE/new" --qmp-dir "$QMP" "$T/mnt2"
mountpoint -q "$T/mnt2" && die "a second savefs mounted the same store"

log "MOUNT/README: read-only, a few lines, not a VM"
grep -q "NAME/save" "$MNT/README" || die "README does not tell about save: $(cat "$MNT/README")"
[[ $(wc -l <"$MNT/README") -le 20 ]] || die "README is more than a few lines"
[[ $(stat -c %a "$MNT/README") == 444 && -f $MNT/README ]] || die "README is not a 0444 file"
if echo x >"$MNT/README" 2>/dev/null; then die "README was written"; fi
if rm "$MNT/README" 2>/dev/null; then die "README was removed"; fi
if mkdir "$MNT/README" 2>/dev/null; then die "mkdir README succeeded"; fi
[[ ! -e $STORE/new/README ]] || die "README reached the store"
mkdir "$MNT/vm9"
[[ $(ls "$MNT" | tr '\n' ' ') == "README vm9 " ]] || die "the mount lists $(ls "$MNT")"
[[ $(find "$MNT" -mindepth 1 -maxdepth 1 -type d -printf '%f ') == "vm9 " ]] ||
    die "README is listed as a directory"
rmdir "$MNT/vm9"
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
