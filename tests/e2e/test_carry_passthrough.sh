#!/bin/bash
# Snapshots carried through the mount pass through the kernel (FUSE passthrough, fs/sfs_pt.h):
# reading 32 MiB of a snapshot with tar's 10 KiB records, and writing them into another, make
# almost no request to savefs (its read and splice calls at /dev/fuse, counted by strace:
# through the page cache the read alone took 256 requests of 128 KiB). The bytes arrive intact,
# and what the kernel refuses beside a passed-through file still works: two opens of one file
# at once, a reader while a writer appends, mmap, O_DIRECT beside a passed-through open.
# shellcheck source=lib.sh
source "$SRC_DIR/tests/e2e/lib.sh"
command -v strace >/dev/null || {
    echo "SKIP: strace is needed (contrib/install-deps.sh)"
    exit 77
}
e2e_setup
# shellcheck disable=SC2119
savefs_start
pid=${SAVEFS_PIDS[-1]}
if ! grep -q "pass through the kernel (FUSE passthrough)" "$T/savefs.log"; then
    # Only a kernel without passthrough (before Linux 6.9), or a savefs without CAP_SYS_ADMIN in
    # the initial user namespace (the kernel's rule for backing files), is a reason to skip.
    grep -qE "the kernel does not offer it|lacks CAP_SYS_ADMIN" "$T/savefs.log" ||
        die "no passthrough: $(cat "$T/savefs.log")"
    echo "SKIP: $(grep -o 'not passed through.*' "$T/savefs.log")"
    exit 77
fi
mkdir "$MNT/vm1" "$MNT/vm1/snapshots/S" "$MNT/vm1/snapshots/T"
head -c 32M /dev/urandom >"$T/data"
# Written into the store itself: no page of it is in the mount's cache.
cp "$T/data" "$STORE/vm1/snapshots/S/main"
m=$MNT/vm1/snapshots

log "reading 32 MiB with 10 KiB records"
calls=$(savefs_calls "$pid" "$T/strace.read" \
    dd if="$m/S/main" of="$T/back" bs=10240 status=none)
log "$calls read and splice calls in savefs"
cmp "$T/data" "$T/back" || die "the bytes read through the mount differ"
((calls > 0 && calls < 60)) || die "$calls calls for 32 MiB read: the reads went through savefs"

log "writing 32 MiB with 10 KiB records into a snapshot"
calls=$(savefs_calls "$pid" "$T/strace.write" \
    dd if="$T/data" of="$m/T/main" bs=10240 status=none)
log "$calls read and splice calls in savefs"
cmp "$T/data" "$STORE/vm1/snapshots/T/main" || die "the store's copy differs from what was written"
size=$(stat -c %s "$m/T/main")
((size == 32 << 20)) || die "size through the mount: $size"
((calls > 0 && calls < 60)) || die "$calls calls for 32 MiB written: the writes went through savefs"

log "two opens of one file at once, O_DIRECT beside them, mmap"
exec 3<"$m/S/main"
cmp "$T/data" "$m/S/main" || die "a second open of a file already open reads wrong"
dd if="$m/S/main" of="$T/direct" bs=1M iflag=direct status=none || die "O_DIRECT read failed"
cmp "$T/data" "$T/direct" || die "the O_DIRECT read differs"
python3 -c 'import mmap, sys
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "rb") as g:
    sys.exit(mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)[:] != g.read())' "$m/S/main" "$T/data" ||
    die "mmap of a file through the mount reads wrong"
exec 3<&-

log "a reader while a writer appends"
exec 4>>"$m/T/log"
echo first >&4
[[ $(cat "$m/T/log") == first ]] || die "the reader missed the first line: $(cat "$m/T/log")"
echo second >&4
[[ $(cat "$m/T/log") == $'first\nsecond' ]] || die "the reader missed a line: $(cat "$m/T/log")"
exec 4>&-
[[ $(cat "$STORE/vm1/snapshots/T/log") == $'first\nsecond' ]] || die "the store's appended file"
log "PASS"
