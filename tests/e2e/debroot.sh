# shellcheck shell=bash
# Debian roots for end-to-end tests (another release's QEMU, libfuse and gcc; a clean system to
# install the package into), to be sourced:
#
#   source "$SRC_DIR/tests/e2e/debroot.sh"
#   droot_require        # exits 77 (skip) where no root can be made
#   droot_setup SUITE DIR [PKG...]  # DIR made once (cached) with PKGs; ROOT=DIR, mounted
#   droot_setup_overlay SUITE DIR SCRATCH [PKG...]  # the same, ROOT a throw-away overlay of it
#   droot_bind DIR       # DIR (e.g. the test's scratch dir) at the same path inside the root
#   droot_build          # savefs built in the root, warnings as errors: $ROOT/build-savefs
#   droot_run CMD...     # CMD in the root, with a clean environment
#   droot_cleanup        # every mount made here undone, innermost first
#
# Roots are made by tests/tools/debian-root.sh and kept under /var/cache/savefs-test; each
# setup mounts /proc, /sys, /dev and the source tree (read-only, at /src) into ROOT.
: "${SRC_DIR:?SRC_DIR must name the source tree}"

DROOT_CACHE=${DROOT_CACHE:-/var/cache/savefs-test}
# What a root needs to build savefs and run its e2e tests (used by the tests that source this).
# shellcheck disable=SC2034
DROOT_BUILD_PACKAGES=(build-essential cmake pkg-config libfuse3-dev fuse3 libjansson-dev
    libzstd-dev libxxhash-dev nettle-dev qemu-system-x86 jq attr rsync kmod cpio netcat-openbsd
    iproute2 e2fsprogs)
DROOT_MOUNTS=()

# The tests that use a root without lib.sh get its log and die.
declare -F log >/dev/null || log() {
    echo "[$(date +%T)] $*" >&2
}
declare -F die >/dev/null || die() {
    echo "FAIL: $*" >&2
    exit 1
}

# Exits 77 (ctest's skip) where the root cannot be made: not root, no debootstrap.
droot_require() {
    [[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (chroot, mounts)"; exit 77; }
    command -v debootstrap >/dev/null || { echo "SKIP: debootstrap is needed"; exit 77; }
}

droot_cleanup() {
    local i
    # Innermost first; a mount still busy is detached rather than left behind.
    for ((i = ${#DROOT_MOUNTS[@]} - 1; i >= 0; i--)); do
        umount -R "${DROOT_MOUNTS[i]}" 2>/dev/null || umount -R -l "${DROOT_MOUNTS[i]}"
    done
    DROOT_MOUNTS=()
}

_droot_mount() {
    mkdir -p "${*: -1}"
    mount "$@"
    DROOT_MOUNTS+=("${*: -1}")
}

# droot_bind DIR [TARGET] [ro]: DIR at TARGET inside the root (default: the same path).
droot_bind() {
    local target=$ROOT${2:-$1}
    _droot_mount --bind "$1" "$target"
    [[ ${3:-} != ro ]] || mount -o remount,bind,ro "$target"
}

droot_setup() {
    droot_require
    "$SRC_DIR/tests/tools/debian-root.sh" "$@" >/dev/null
    ROOT=$2
    _droot_mounts
}

# Changes made in the root (a package installed) go to SCRATCH and vanish with it.
droot_setup_overlay() {
    local suite=$1 dir=$2 scratch=$3
    shift 3
    droot_require
    "$SRC_DIR/tests/tools/debian-root.sh" "$suite" "$dir" "$@" >/dev/null
    mkdir -p "$scratch/upper" "$scratch/work"
    ROOT=$scratch/root
    _droot_mount -t overlay overlay \
        -o "lowerdir=$dir,upperdir=$scratch/upper,workdir=$scratch/work" "$ROOT"
    _droot_mounts
}

_droot_mounts() {
    _droot_mount -t proc proc "$ROOT/proc"
    _droot_mount -t sysfs sys "$ROOT/sys"
    _droot_mount --rbind /dev "$ROOT/dev"
    mount --make-rslave "$ROOT/dev"
    droot_bind "$SRC_DIR" /src ro
}

# What a command in the root runs under (also contrib/bench's, which keeps the pids of the
# processes it starts there: chroot and env exec them).
DROOT_ENV=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8)
droot_run() {
    chroot "$ROOT" "${DROOT_ENV[@]}" "$@"
}

# Builds savefs from /src into /build-savefs in the root; fails on any warning.
droot_build() {
    droot_run cmake -S /src -B /build-savefs -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAVEFS_WERROR=ON \
        >"$ROOT/build-savefs.log" 2>&1 &&
        droot_run cmake --build /build-savefs -j"$(nproc)" >>"$ROOT/build-savefs.log" 2>&1 || {
        grep -E 'error|warning' "$ROOT/build-savefs.log" | head -n 20 >&2
        return 1
    }
    ! grep -q 'warning:' "$ROOT/build-savefs.log" || {
        grep 'warning:' "$ROOT/build-savefs.log" >&2
        return 1
    }
}

# droot_qemu10: for an e2e test (after e2e_setup, with GUEST_DIR): a throw-away overlay of the
# cached Debian 13 root in $T/d13, with $T and the guest at the same paths inside, so that QMP
# sockets, serial logs and pidfiles are where the host looks; $T/qemu10 runs its QEMU 10.0.
# Cleanup on exit: the root's, then e2e_cleanup.
_droot_qemu10_exit() {
    local rc=$?
    droot_cleanup
    (exit "$rc")
    e2e_cleanup
}
droot_qemu10() {
    trap _droot_qemu10_exit EXIT
    droot_setup_overlay trixie "$DROOT_CACHE/trixie" "$T/d13" "${DROOT_BUILD_PACKAGES[@]}"
    droot_bind "$T"
    droot_bind "$GUEST_DIR" "$GUEST_DIR" ro
    printf '#!/bin/sh\nexec chroot %q env -i PATH=/usr/bin:/bin qemu-system-x86_64 "$@"\n' \
        "$ROOT" >"$T/qemu10"
    chmod +x "$T/qemu10"
}
