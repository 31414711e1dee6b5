# shellcheck shell=bash
# A Debian 13 root (QEMU 10.0, libfuse 3.17, gcc 14) for end-to-end tests, to be sourced:
#
#   source "$SRC_DIR/tests/e2e/debian13.sh"
#   d13_setup            # ROOT made once (cached), /proc /sys /dev mounted, the source at /src
#   d13_bind DIR         # DIR (e.g. the test's scratch dir) at the same path inside the root
#   d13_build            # savefs built in the root, warnings as errors: $ROOT/build-savefs
#   d13_run CMD...       # CMD in the root, with a clean environment
#   d13_cleanup          # every mount made here undone, innermost first
#
# The root is made by tests/tools/debian-root.sh and kept in $DEBIAN13_ROOT (default
# /var/cache/savefs-test/trixie), savefs's build tree inside it.
: "${SRC_DIR:?SRC_DIR must name the source tree}"

ROOT=${DEBIAN13_ROOT:-/var/cache/savefs-test/trixie}
D13_PACKAGES=(build-essential cmake pkg-config libfuse3-dev fuse3 libjansson-dev libzstd-dev
    libxxhash-dev nettle-dev qemu-system-x86 jq attr rsync kmod cpio netcat-openbsd iproute2)
D13_MOUNTS=()

# Exits 77 (ctest's skip) where the root cannot be made: not root, no debootstrap.
d13_require() {
    [[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (chroot, mounts)"; exit 77; }
    command -v debootstrap >/dev/null || { echo "SKIP: debootstrap is needed"; exit 77; }
}

d13_cleanup() {
    local i
    # Innermost first; a mount still busy is detached rather than left behind.
    for ((i = ${#D13_MOUNTS[@]} - 1; i >= 0; i--)); do
        umount -R "${D13_MOUNTS[i]}" 2>/dev/null || umount -R -l "${D13_MOUNTS[i]}"
    done
    D13_MOUNTS=()
}

_d13_mount() {
    mkdir -p "${*: -1}"
    mount "$@"
    D13_MOUNTS+=("${*: -1}")
}

# d13_bind DIR [TARGET] [ro]: DIR at TARGET inside the root (default: the same path).
d13_bind() {
    local target=$ROOT${2:-$1}
    _d13_mount --bind "$1" "$target"
    [[ ${3:-} != ro ]] || mount -o remount,bind,ro "$target"
}

d13_setup() {
    d13_require
    "$SRC_DIR/tests/tools/debian-root.sh" trixie "$ROOT" "${D13_PACKAGES[@]}" >/dev/null
    _d13_mount -t proc proc "$ROOT/proc"
    _d13_mount -t sysfs sys "$ROOT/sys"
    _d13_mount --rbind /dev "$ROOT/dev"
    mount --make-rslave "$ROOT/dev"
    d13_bind "$SRC_DIR" /src ro
}

d13_run() {
    chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

# Builds savefs from /src into /build-savefs in the root; fails on any warning.
d13_build() {
    d13_run cmake -S /src -B /build-savefs -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAVEFS_WERROR=ON \
        >"$ROOT/build-savefs.log" 2>&1 &&
        d13_run cmake --build /build-savefs -j"$(nproc)" >>"$ROOT/build-savefs.log" 2>&1 || {
        grep -E 'error|warning' "$ROOT/build-savefs.log" | head -n 20 >&2
        return 1
    }
    ! grep -q 'warning:' "$ROOT/build-savefs.log" || {
        grep 'warning:' "$ROOT/build-savefs.log" >&2
        return 1
    }
}
