#!/bin/bash
# Debian 13 (QEMU 10.0, libfuse 3.17, gcc 14) as well as the host's Debian 12: savefs builds in a
# Debian 13 root without a warning (-Werror), its unit tests pass there, and the core e2e tests
# (save, restore, zstd, the page index of every channel, imports) run there against QEMU 10.0.
# test_upgrade restores a snapshot of the host's QEMU 7.2 there.
set -euo pipefail
: "${GUEST_DIR:?GUEST_DIR must name the test guest}"
# shellcheck source=debroot.sh
source "$SRC_DIR/tests/e2e/debroot.sh"

droot_require
trap droot_cleanup EXIT
log "the Debian 13 root in $DROOT_CACHE/trixie"
droot_setup trixie "$DROOT_CACHE/trixie" "${DROOT_BUILD_PACKAGES[@]}"
droot_bind "$GUEST_DIR" /guest ro
log "$(droot_run qemu-system-x86_64 --version | head -n1), libfuse $(droot_run pkg-config --modversion fuse3), $(droot_run gcc --version | head -n1)"
log "building savefs with warnings as errors"
droot_build || die "savefs does not build without warnings in Debian 13"

log "unit tests"
# lint needs git, shellcheck and clang-format: the host's pass runs it.
droot_run ctest --test-dir /build-savefs -L unit -E lint --output-on-failure >"$ROOT/ctest.log" 2>&1 ||
    die "unit tests failed in Debian 13: $(tail -n 30 "$ROOT/ctest.log")"

# test_core: save, restore, compression, the page index; test_portable: imports with cp, tar,
# rsync, and what a restore refuses.
for t in test_core test_portable; do
    log "$t against QEMU 10"
    droot_run SAVEFS_BIN=/build-savefs/fs/savefs GUEST_DIR=/guest SRC_DIR=/src \
        FS_SHUTDOWN=/build-savefs/tests/fs_shutdown GUEST_MIB=64 GUEST_MEM_MB=256 \
        bash "/src/tests/e2e/$t.sh" || die "$t failed under Debian 13"
done
log "PASS"
