#!/bin/bash
# Bad input through the mount, as a shell sends it: every bad save word and every bad name is
# refused with EINVAL (EEXIST for a taken name) and a message, and changes nothing.
source "$SRC_DIR/tests/e2e/lib.sh"
e2e_setup
savefs_start
mkdir "$MNT/vm1" || die "mkdir of a VM entry failed"
[[ -d $STORE/vm1/snapshots ]] || die "mkdir made no store entry"
before=$(cd "$STORE" && find . | sort)

long=$(printf 'a%.0s' $(seq 65))
for words in 0 65 -1 1e9 parallel= parallel=0 "4 4" "parallel=2 parallel=3" "name=a name=b" \
    bogus size=1 "name=$long" name=.hidden name=a/b name=.. "keep-running keep-running" \
    direct-io=maybe =4; do
    if printf '%s\n' "$words" >"$MNT/vm1/save" 2>"$T/err"; then die "'$words' was accepted"; fi
    grep -q "Invalid argument" "$T/err" || die "'$words': $(cat "$T/err")"
    grep -q '^error EINVAL: vm1: ' "$MNT/vm1/save" || die "'$words': save says $(cat "$MNT/vm1/save")"
done
if printf '4\0\n' >"$MNT/vm1/save" 2>/dev/null; then die "a NUL byte was accepted"; fi
if head -c 4096 /dev/urandom >"$MNT/vm1/save" 2>/dev/null; then die "4 KiB of garbage was accepted"; fi
log "last refusal: $(cat "$MNT/vm1/save")"

log "a taken name: EEXIST"
mkdir "$STORE/vm1/snapshots/taken"
if echo "name=taken" >"$MNT/vm1/save" 2>"$T/err"; then die "a taken name was accepted"; fi
grep -q "File exists" "$T/err" || die "not EEXIST: $(cat "$T/err")"
rmdir "$STORE/vm1/snapshots/taken"

log "a good word for a VM that does not run: ESRCH, and it says so"
if echo 4 >"$MNT/vm1/save" 2>"$T/err"; then die "a save without a QEMU succeeded"; fi
grep -q "No such process" "$T/err" || die "not ESRCH: $(cat "$T/err")"
grep -q "no QEMU listens" "$MNT/vm1/save" || die "save says: $(cat "$MNT/vm1/save")"

log "bad names"
for name in "$long" .hidden "a b" 'a$b'; do
    if mkdir "$MNT/$name" 2>/dev/null; then die "mkdir '$name' was accepted"; fi
done
if echo x >"$MNT/vm1/status" 2>/dev/null; then die "status was writable"; fi
if touch "$MNT/newfile" 2>/dev/null; then die "a file at the top was created"; fi
if ln -s /etc/passwd "$MNT/vm1/link" 2>/dev/null; then die "a symlink was created"; fi
if mv "$MNT/vm1/save" "$MNT/vm1/saved" 2>/dev/null; then die "save was renamed"; fi

log "a snapshot of another VM into restore/: EXDEV (rename(2) itself; mv would then copy)"
mkdir "$MNT/vm2" && mkdir "$STORE/vm2/snapshots/s"
perl -e 'rename($ARGV[0], $ARGV[1]) and exit 1; print "$!\n"' "$MNT/vm2/snapshots/s" \
    "$MNT/vm1/restore/s" >"$T/err" || die "the rename across VMs succeeded"
grep -q "cross-device" "$T/err" || die "not EXDEV: $(cat "$T/err")"
rmdir "$STORE/vm2/snapshots/s" && rmdir "$MNT/vm2"

[[ $(cd "$STORE" && find . | sort) == "$before" ]] || die "bad input changed the store"
rmdir "$MNT/vm1" || die "rmdir of an empty VM entry failed"
[[ ! -e $STORE/vm1 ]] || die "rmdir left the store entry"
log "PASS"
