#!/bin/bash
# One command from a fresh Debian 12 machine to a working savefs: installs the dependencies,
# builds, mounts savefs on its defaults at /mnt/savefs and starts a small demo VM "demo" (the
# test guest: a Linux that fills 192 MiB of RAM and verifies it every second on its serial
# console, /run/savefs/demo.serial). Run as root. Again: it reuses what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
MNT=${MNT:-/mnt/savefs}
QMP_DIR=/run/savefs

contrib/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
tests/guest/build-guest.sh build/guest >/dev/null

mkdir -p "$MNT" "$QMP_DIR"
if ! mountpoint -q "$MNT"; then
    build/fs/savefs "$MNT"
fi
if ! grep -qs qemu "/proc/$(cat "$QMP_DIR/demo.pid" 2>/dev/null)/cmdline"; then
    # Linux guests run under TCG here: this machine's KVM hangs them early.
    setsid qemu-system-x86_64 -name demo -machine pc -accel tcg -m 512 -nodefaults \
        -display none -vga none -no-user-config \
        -kernel "$PWD/build/guest/vmlinuz" -initrd "$PWD/build/guest/initramfs.cpio.gz" \
        -append "console=ttyS0 memcheck=192 quiet no_timer_check" \
        -serial "file:$QMP_DIR/demo.serial" -pidfile "$QMP_DIR/demo.pid" \
        -qmp "unix:$QMP_DIR/demo.qmp,server=on,wait=off" </dev/null >/dev/null 2>&1 &
fi
for _ in $(seq 60); do
    grep -qa 'SAVEFS-MEMCHECK pass' "$QMP_DIR/demo.serial" 2>/dev/null && break
    sleep 1
done
echo "savefs is mounted on $MNT with VM demo:"
ls "$MNT"
echo "try: echo 4 > $MNT/demo/save; ls $MNT/demo/snapshots"
