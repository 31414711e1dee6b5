#!/bin/bash
# The package as a user meets it: cpack makes savefs_*.deb (lintian finds no error or warning);
# in a clean Debian 12 root, `apt-get install ./savefs_*.deb` pulls its dependencies,
# `savefs --version` and `man savefs` work, the systemd unit is in place and valid, and the core
# e2e test saves and restores the test guest with the installed savefs.
set -euo pipefail
: "${GUEST_DIR:?GUEST_DIR must name the test guest}"
# shellcheck source=debroot.sh
source "$SRC_DIR/tests/e2e/debroot.sh"

droot_require
command -v cpack >/dev/null || { echo "SKIP: cpack is needed"; exit 77; }
T=$(mktemp -d /tmp/savefs-pkg.XXXXXX)
trap 'droot_cleanup; rm -rf "$T"' EXIT

log "cpack"
cmake -S "$SRC_DIR" -B "$T/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
    >"$T/build.log" 2>&1 || die "cmake failed: $(tail "$T/build.log")"
cmake --build "$T/build" -j"$(nproc)" >>"$T/build.log" 2>&1 || die "build failed: $(tail "$T/build.log")"
(cd "$T/build" && cpack -G DEB) >>"$T/build.log" 2>&1 || die "cpack failed: $(tail "$T/build.log")"
debs=("$T"/build/savefs_*.deb)
[[ -f ${debs[0]} ]] || die "no .deb made"
deb=${debs[0]}
log "$(basename "$deb"): $(dpkg-deb -f "$deb" Depends)"
if command -v lintian >/dev/null; then
    lintian --fail-on error,warning "$deb" >"$T/lintian.log" 2>&1 ||
        die "lintian: $(cat "$T/lintian.log")"
fi

log "installed into a clean Debian 12 root"
# systemd is installed, not running: systemd-analyze checks the unit against it.
droot_setup_overlay bookworm "$DROOT_CACHE/bookworm" "$T/overlay" qemu-system-x86 man-db kmod jq \
    netcat-openbsd attr systemd
! droot_run test -e /usr/bin/savefs || die "the root has savefs before the install"
cp "$deb" "$ROOT/tmp/"
droot_run DEBIAN_FRONTEND=noninteractive apt-get install -y -q "/tmp/$(basename "$deb")" \
    >"$T/apt.log" 2>&1 || die "apt-get install failed: $(tail "$T/apt.log")"
for dep in libfuse3-3 libjansson4 libxxhash0 fuse3; do
    droot_run dpkg-query -W -f='${Status}' "$dep" | grep -q 'install ok installed' ||
        die "$dep was not pulled in"
done
droot_run savefs --version | grep -q '^savefs ' || die "savefs --version: $(droot_run savefs --version)"
droot_run man -P cat savefs 2>/dev/null | grep -q 'savefs accept' || die "man savefs shows no page"
unit=$ROOT/lib/systemd/system/savefs.service
[[ -f $unit ]] || die "no systemd unit installed"
grep -q '^ExecStart=/usr/bin/savefs -f ' "$unit" || die "the unit starts: $(grep ExecStart= "$unit")"
droot_run systemd-analyze verify --man=no /lib/systemd/system/savefs.service >"$T/verify.log" 2>&1 ||
    die "systemd-analyze verify: $(cat "$T/verify.log")"

log "the installed savefs saves and restores the test guest"
droot_bind "$GUEST_DIR" /guest ro
droot_run SAVEFS_BIN=/usr/bin/savefs GUEST_DIR=/guest SRC_DIR=/src GUEST_MIB=64 GUEST_MEM_MB=256 \
    bash /src/tests/e2e/test_core.sh || die "test_core failed with the installed package"
log "PASS"
