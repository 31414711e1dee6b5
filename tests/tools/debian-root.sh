#!/bin/bash
# Makes (once) a Debian root for tests that run savefs under another release's QEMU and libfuse:
#   debian-root.sh SUITE DIR [PACKAGE...]
# debootstrap's minimal base, then apt-get installs PACKAGEs (apt, unlike debootstrap, resolves
# their dependencies). Idempotent: DIR/.savefs-ready names the packages of a finished root, and a
# root is made under DIR.tmp and renamed, so that an interrupted run leaves no half root behind.
# Needs root, debootstrap and Debian's archive. Mounts nothing: the caller binds /dev, /proc and
# /sys while it uses the root and unmounts them.
set -euo pipefail

die() {
    echo "debian-root: error: $*" >&2
    exit 1
}

[[ $# -ge 2 ]] || die "usage: $0 SUITE DIR [PACKAGE...]"
suite=$1 dir=$2
shift 2
want="$suite $*"
# Installs the packages $@ into root $1, with /proc mounted meanwhile (maintainer scripts).
install_into() {
    local root=$1 rc=0
    shift
    mount -t proc proc "$root/proc"
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "$@" >>"$root.log" 2>&1 || rc=$?
    umount "$root/proc"
    [[ $rc -eq 0 ]] || die "apt-get install failed: $(tail -5 "$root.log")"
    chroot "$root" apt-get clean
}
if [[ -f $dir/.savefs-ready ]]; then
    have=$(cat "$dir/.savefs-ready")
    if [[ $have == "$want" ]]; then
        echo "$dir"
        exit 0
    fi
    # The same release with other packages: add them rather than start again.
    if [[ ${have%% *} == "$suite" && $# -gt 0 ]]; then
        echo "debian-root: installing $* into $dir" >&2
        install_into "$dir" "$@"
        echo "$want" >"$dir/.savefs-ready"
        rm -f "$dir.log"
        echo "$dir"
        exit 0
    fi
fi
command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
tmp=$dir.tmp
rm -rf "$tmp"
mkdir -p "$(dirname "$dir")"
echo "debian-root: debootstrap $suite into $tmp" >&2
debootstrap --variant=minbase "$suite" "$tmp" "$mirror" >"$tmp.log" 2>&1 ||
    die "debootstrap failed: $(tail -5 "$tmp.log")"
if [[ $# -gt 0 ]]; then
    echo "debian-root: installing $* into $tmp" >&2
    install_into "$tmp" "$@"
fi
echo "$want" >"$tmp/.savefs-ready"
rm -rf "$dir"
mv "$tmp" "$dir"
rm -f "$tmp.log"
echo "$dir"
