#!/bin/sh
# Installs what savefs needs to build, run and test on Debian 12 or 13 (as root, or through sudo):
# debootstrap and lintian for the tests of Debian 13 and of the package; python3-xxhash and
# python3-zstandard for contrib/savefs-snapshot, the reader of docs/format.md that a test runs;
# glusterfs-server, glusterfs-client and xfsprogs for the fleet's tests on a GlusterFS volume
# (tests/e2e/gluster.sh starts glusterd itself: the package's service is not needed).
# qemu-utils (qemu-img: a checkpoint's overlays) and xfsprogs (the reflink checkpoint test's XFS).
# libvirt (its headers for lvirt/, its daemon and virsh for test_libvirt).
# Names that differ between releases are found, not assumed: the sanitizer runtime follows the
# version of the clang that the release installs.
set -eu
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
packages="build-essential cmake pkg-config libfuse3-dev fuse3 libjansson-dev libzstd-dev
libxxhash-dev nettle-dev qemu-system-x86 cpio gzip kmod clang valgrind jq attr rsync
netcat-openbsd iproute2 shellcheck clang-format debootstrap lintian python3-xxhash strace
python3-zstandard glusterfs-server glusterfs-client xfsprogs qemu-utils
libvirt-dev libvirt-daemon-system libvirt-clients"
updated=

# Installs whichever of the packages named in $@ are missing.
install_missing() {
    missing=
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing="$missing $p"
    done
    [ -n "$missing" ] || return 0
    echo "install-deps: installing$missing"
    if [ -z "$updated" ]; then
        $SUDO apt-get update -q
        updated=1
    fi
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
}

# shellcheck disable=SC2086
install_missing $packages
# libFuzzer and the sanitizers' runtime: libclang-rt-14-dev on Debian 12, -19- on Debian 13.
clang_major=$(clang -dumpversion | cut -d. -f1)
install_missing "libclang-rt-$clang_major-dev"
