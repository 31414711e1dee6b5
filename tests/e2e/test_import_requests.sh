#!/bin/bash
# A copy into the mount reaches savefs in large writes, not one request per write() of the
# copier: 2000 writes of 10 KiB (tar's records) into a snapshot of snapshots/ are counted at
# savefs's end of /dev/fuse (its read and splice calls, by strace). Each used to bring a
# request for security.capability first (the kernel's, before every write(), unless the
# filesystem says it drops privileges itself: FUSE_HANDLE_KILLPRIV_V2, sfs_io.h), and the
# bytes must arrive intact by the spliced path.
# shellcheck source=lib.sh
source "$SRC_DIR/tests/e2e/lib.sh"
command -v strace >/dev/null || { echo "SKIP: strace is needed (contrib/install-deps.sh)"; exit 77; }
e2e_setup
# shellcheck disable=SC2119
savefs_start
pid=${SAVEFS_PIDS[-1]}
mkdir "$MNT/vm1" "$MNT/vm1/snapshots/T"
head -c $((2000 * 10240)) /dev/urandom >"$T/data"

calls=$(savefs_calls "$pid" "$T/strace" \
    dd if="$T/data" of="$MNT/vm1/snapshots/T/main" bs=10240 status=none)
log "2000 writes of 10 KiB: $calls read and splice calls in savefs"
cat "$T/strace" >&2
cmp "$T/data" "$STORE/vm1/snapshots/T/main" || die "the store's copy differs from what was written"
cmp "$T/data" "$MNT/vm1/snapshots/T/main" || die "the mount's copy differs from what was written"
# About 20 writes of 1 MiB (two splices each) and a few lookups, or none where the file passes
# through the kernel (test_carry_passthrough); 2000 and more before.
((calls > 0 && calls < 400)) || die "$calls requests for 2000 writes: one (or more) per write()"
