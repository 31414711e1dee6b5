#!/bin/bash
# Build the savefs test guest into OUTDIR: OUTDIR/vmlinuz (Debian's cloud kernel) and
# OUTDIR/initramfs.cpio.gz (busybox, /init, /memcheck). Needs only Debian's archive, gcc with
# static glibc, cpio, gzip, apt-get and dpkg-deb. Idempotent: does nothing when both outputs are
# newer than memcheck.c, init and this script; downloaded .debs are kept in OUTDIR/debs.
set -euo pipefail

die() {
    echo "build-guest: error: $*" >&2
    exit 1
}
log() {
    echo "build-guest: $*" >&2
}

[[ $# -eq 1 ]] || die "usage: $0 OUTDIR"
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1" || die "cannot create $1"
OUT=$(cd "$1" && pwd)
SOURCES=("$SRC/memcheck.c" "$SRC/init" "$SRC/fake-agent" "$SRC/build-guest.sh")

up_to_date() {
    local out src
    for out in "$OUT/vmlinuz" "$OUT/initramfs.cpio.gz"; do
        [[ -f $out ]] || return 1
        for src in "${SOURCES[@]}"; do
            [[ $out -nt $src ]] || return 1
        done
    done
}

if up_to_date; then
    log "up to date in $OUT"
    exit 0
fi

for tool in gcc cpio gzip apt-get apt-cache dpkg-deb; do
    command -v "$tool" >/dev/null || die "'$tool' not found (see contrib/install-deps.sh)"
done

APT_UPDATED=0
apt_update_once() {
    [[ $APT_UPDATED -eq 0 ]] || return 1
    APT_UPDATED=1
    log "running apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed"
}

# The versioned kernel package behind the linux-image-cloud-amd64 metapackage.
kernel_package() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-/ && !p { print $2; p = 1 }'
}

# Download package $1 into OUT/debs unless a .deb of it is already there; print its path.
fetch_deb() {
    local pkg=$1 deb
    deb=$(ls -t "$OUT/debs/${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
    if [[ -z $deb ]]; then
        log "downloading $pkg"
        until (cd "$OUT/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2); do
            apt_update_once || die "apt-get download $pkg failed"
        done
        deb=$(ls -t "$OUT/debs/${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
        [[ -n $deb ]] || die "apt-get download $pkg left no .deb in $OUT/debs"
    fi
    echo "$deb"
}

KPKG=$(kernel_package || true)
if [[ -z $KPKG ]]; then
    apt_update_once || true
    KPKG=$(kernel_package || true)
fi
[[ -n $KPKG ]] || die "cannot find the kernel package that linux-image-cloud-amd64 depends on"

mkdir -p "$OUT/debs"
KDEB=$(fetch_deb "$KPKG")
BDEB=$(fetch_deb busybox-static)
log "kernel: $(basename "$KDEB"), busybox: $(basename "$BDEB")"

WORK="$OUT/work"
rm -rf "$WORK"
mkdir -p "$WORK/kernel" "$WORK/busybox" "$WORK/root"
dpkg-deb -x "$KDEB" "$WORK/kernel" || die "cannot unpack $KDEB"
dpkg-deb -x "$BDEB" "$WORK/busybox" || die "cannot unpack $BDEB"

VMLINUZ=$(ls "$WORK"/kernel/boot/vmlinuz-* 2>/dev/null | head -n 1 || true)
CONFIG=$(ls "$WORK"/kernel/boot/config-* 2>/dev/null | head -n 1 || true)
[[ -n $VMLINUZ && -n $CONFIG ]] || die "no vmlinuz or config in $KDEB"
# Everything the guest needs must be built in, but for the virtio modules that a guest with a
# disk or an agent channel loads (init: virtio=1).
for opt in BLK_DEV_INITRD RD_GZIP DEVTMPFS PROC_FS SYSFS SERIAL_8250 SERIAL_8250_CONSOLE \
    BINFMT_ELF ACPI; do
    grep -qx "CONFIG_$opt=y" "$CONFIG" || die "kernel $(basename "$CONFIG") lacks CONFIG_$opt=y"
done

BUSYBOX="$WORK/busybox/bin/busybox"
[[ -x $BUSYBOX ]] || die "no bin/busybox in $BDEB"

ROOT="$WORK/root"
mkdir -p "$ROOT/bin" "$ROOT/dev" "$ROOT/proc" "$ROOT/sys" "$ROOT/tmp"
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$ROOT/bin/$applet"
done
# The kernel opens /dev/console for /init before devtmpfs is mounted; /init reopens it anyway.
mknod -m 600 "$ROOT/dev/console" c 5 1 2>/dev/null || log "warning: cannot mknod dev/console"
install -m 755 "$SRC/init" "$ROOT/init"
install -m 755 "$SRC/fake-agent" "$ROOT/bin/fake-agent"
mkdir -p "$ROOT/lib/modules"
# button and evdev: the ACPI power button as an input device, for acpid (init: powerbtn=1).
for mod in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk \
    virtio_console button evdev; do
    ko=$(find "$WORK/kernel/lib/modules" -name "$mod.ko*" | head -n 1)
    [[ -n $ko ]] || die "no $mod module in $KDEB"
    cp "$ko" "$ROOT/lib/modules/"
done
gcc -std=c11 -static -O2 -Wall -Wextra -Werror -o "$ROOT/memcheck" "$SRC/memcheck.c" ||
    die "cannot build memcheck (static glibc comes with libc6-dev)"

(cd "$ROOT" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9 \
    >"$WORK/initramfs.cpio.gz" || die "cannot pack the initramfs"
cp "$VMLINUZ" "$WORK/vmlinuz"
mv -f "$WORK/initramfs.cpio.gz" "$OUT/initramfs.cpio.gz"
mv -f "$WORK/vmlinuz" "$OUT/vmlinuz"
echo "$KPKG $(dpkg-deb -f "$KDEB" Version)" >"$OUT/kernel-version"
rm -rf "$WORK"
log "built $OUT/vmlinuz and $OUT/initramfs.cpio.gz ($KPKG)"
