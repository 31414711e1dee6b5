#!/bin/sh
# Installs what savefs needs to build, run and test on Debian 12 (as root, or through sudo).
set -eu
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
packages="build-essential cmake pkg-config libfuse3-dev fuse3 libjansson-dev libzstd-dev
libxxhash-dev nettle-dev qemu-system-x86 cpio gzip kmod clang libclang-rt-14-dev valgrind
jq attr rsync netcat-openbsd iproute2"
missing=
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "install-deps: installing$missing"
    $SUDO apt-get update -q
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi
