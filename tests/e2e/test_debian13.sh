#!/bin/bash
# Debian 13 (QEMU 10.0, libfuse 3.17, gcc 14) as well as the host's Debian 12: savefs builds in a
# Debian 13 root without a warning (-Werror), its unit tests pass there, and the core e2e test
# (save, restore, zstd, the page index of every channel) runs there against QEMU 10.0.
# The root is made once by tests/tools/debian-root.sh and kept in $DEBIAN13_ROOT (default
# /var/cache/savefs-test/trixie), with savefs's build tree inside it; /proc, /sys, /dev, the
# source tree (read-only) and the test guest are mounted while the test runs, and unmounted.
set -euo pipefail
: "${SRC_DIR:?SRC_DIR must name the source tree}"
: "${GUEST_DIR:?GUEST_DIR must name the test guest}"
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (chroot, mounts)"; exit 77; }
command -v debootstrap >/dev/null || { echo "SKIP: debootstrap is needed"; exit 77; }

ROOT=${DEBIAN13_ROOT:-/var/cache/savefs-test/trixie}
PACKAGES=(build-essential cmake pkg-config libfuse3-dev fuse3 libjansson-dev libzstd-dev
    libxxhash-dev nettle-dev qemu-system-x86 jq attr rsync kmod cpio netcat-openbsd iproute2)
MOUNTS=()

log() {
    echo "[$(date +%T)] $*" >&2
}

die() {
    echo "FAIL: $*" >&2
    exit 1
}

cleanup() {
    local i
    # Innermost first; a mount still busy is detached rather than left behind.
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount -R "${MOUNTS[i]}" 2>/dev/null || umount -R -l "${MOUNTS[i]}"
    done
}
trap cleanup EXIT

bind() {
    mkdir -p "$2"
    mount --bind "$1" "$2"
    MOUNTS+=("$2")
    [[ ${3:-} != ro ]] || mount -o remount,bind,ro "$2"
}

log "the Debian 13 root in $ROOT"
"$SRC_DIR/tests/tools/debian-root.sh" trixie "$ROOT" "${PACKAGES[@]}" >/dev/null
mount -t proc proc "$ROOT/proc"
MOUNTS+=("$ROOT/proc")
mount -t sysfs sys "$ROOT/sys"
MOUNTS+=("$ROOT/sys")
mount --rbind /dev "$ROOT/dev"
mount --make-rslave "$ROOT/dev"
MOUNTS+=("$ROOT/dev")
bind "$SRC_DIR" "$ROOT/src" ro
bind "$GUEST_DIR" "$ROOT/guest" ro

in_root() {
    chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

log "$(in_root qemu-system-x86_64 --version | head -n1), libfuse $(in_root pkg-config --modversion fuse3), $(in_root gcc --version | head -n1)"
log "building savefs with warnings as errors"
in_root cmake -S /src -B /build-savefs -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAVEFS_WERROR=ON \
    >/dev/null || die "cmake failed"
in_root cmake --build /build-savefs -j"$(nproc)" >"$ROOT/build-savefs.log" 2>&1 ||
    die "the build failed: $(grep -E 'error|warning' "$ROOT/build-savefs.log" | head -n 20)"
! grep -q 'warning:' "$ROOT/build-savefs.log" || die "the build warns: $(grep 'warning:' "$ROOT/build-savefs.log")"

log "unit tests"
# lint needs git, shellcheck and clang-format, which the host's pass runs already.
in_root ctest --test-dir /build-savefs -L unit -E lint --output-on-failure >"$ROOT/ctest.log" 2>&1 ||
    die "unit tests failed in Debian 13: $(tail -n 30 "$ROOT/ctest.log")"

log "the core e2e test against QEMU 10"
in_root SAVEFS_BIN=/build-savefs/fs/savefs GUEST_DIR=/guest SRC_DIR=/src \
    FS_SHUTDOWN=/build-savefs/tests/fs_shutdown GUEST_MIB=64 GUEST_MEM_MB=256 \
    bash /src/tests/e2e/test_core.sh || die "test_core failed under Debian 13"
log "PASS"
