#!/bin/bash
# getfattr -d of a snapshot whose manifest is several MiB (a long command line) is quick and
# leaves savefs small: each of its 13 facts does not parse the manifest and decide trust again.
# The facts follow a change of the manifest and of local.json.
# shellcheck source=lib.sh
source "$SRC_DIR/tests/e2e/lib.sh"
if ! command -v getfattr >/dev/null || ! command -v jq >/dev/null; then
    echo "SKIP: getfattr and jq are needed"
    exit 77
fi
e2e_setup
# shellcheck disable=SC2119
savefs_start
mkdir "$MNT/vm1"
pid=${SAVEFS_PIDS[-1]}
SNAP=$MNT/vm1/snapshots/big

# A manifest of one channel with 1500 arguments of 2400 bytes: 3.6 MB.
jq -n --arg pad "$(head -c 2400 /dev/zero | tr '\0' x)" '{
    format: "savefs-snapshot", version: 1, vm: "vm1", snapshot: "big",
    created: "2026-12-01T00:00:00Z",
    qemu: {version: "7.2.0", binary: "/usr/bin/qemu-system-x86_64", cwd: "/", machine: "pc",
        uuid: "00000000-0000-0000-0000-000000000000",
        argv: (["qemu-system-x86_64"] + [range(1500) | "-fw_cfg", "name=opt/n\(.),string=\($pad)"])},
    ram_size: 134217728, was_running: true, channels: 1, compression: "none",
    compression_level: 0, duration_s: 1.0,
    files: [{name: "main", role: "main", size: 4, xxh3: "0123456789abcdef"},
        {name: "channel-0", role: "channel", channel: 0, size: 4, xxh3: "0123456789abcdef"},
        {name: "channel-0.idx", role: "index", channel: 0, size: 4, xxh3: "0123456789abcdef"}]
}' >"$T/manifest.json"
mkdir "$SNAP"
for f in main channel-0 channel-0.idx; do printf abcd >"$SNAP/$f"; done
cp "$T/manifest.json" "$SNAP/"
log "manifest: $(stat -c %s "$SNAP/manifest.json") bytes"
digest=$(getfattr --only-values -n user.savefs.digest "$SNAP")
"$SAVEFS_BIN" accept --store "$STORE" vm1 big "$digest" >/dev/null || die "accept failed"

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"
}

rss0=$(rss_kib)
start=$(date +%s.%N)
getfattr -d "$SNAP" >"$T/facts" 2>/dev/null || die "getfattr -d failed"
took=$(echo "$(date +%s.%N) - $start" | bc)
rss1=$(rss_kib)
log "getfattr -d: $took s; savefs's RSS $rss0 -> $rss1 KiB"
[[ $(grep -c '^user.savefs.' "$T/facts") -ge 12 ]] || die "facts missing: $(cat "$T/facts")"
grep -q '^user.savefs.trust="ok: accepted' "$T/facts" || die "not accepted: $(grep trust "$T/facts")"
grep -q '^user.savefs.verified="sizes' "$T/facts" || die "not complete: $(grep verified "$T/facts")"
# Under AddressSanitizer (a Debug build in CI) parsing is several times slower and freed memory
# waits in a quarantine.
asan=0
grep -qa __asan_init "$SAVEFS_BIN" && asan=1
awk -v t="$took" -v limit=$((asan ? 15 : 3)) 'BEGIN { exit !(t < limit) }' ||
    die "getfattr -d took $took s"
((asan || rss1 - rss0 < 65536)) || die "savefs grew by $((rss1 - rss0)) KiB"
# Again: the manifest is not parsed again (the disks' state is looked at, not read from it).
start=$(date +%s.%N)
getfattr -d "$SNAP" >/dev/null 2>&1 || die "getfattr -d failed"
again=$(echo "$(date +%s.%N) - $start" | bc)
log "getfattr -d again: $again s"
awk -v t="$again" -v limit=$((asan ? 3 : 1)) 'BEGIN { exit !(t < limit) }' ||
    die "getfattr -d took $again s the second time"

log "a changed manifest and a changed local.json are seen"
jq '.ram_size = 268435456' "$T/manifest.json" >"$T/m2.json"
cat "$T/m2.json" >"$SNAP/manifest.json"
[[ $(getfattr --only-values -n user.savefs.ram_size "$SNAP") == 268435456 ]] ||
    die "the old ram_size is shown"
getfattr --only-values -n user.savefs.trust "$SNAP" | grep -q '^refused' ||
    die "the changed manifest is still accepted"
"$SAVEFS_BIN" accept --store "$STORE" vm1 big \
    "$(getfattr --only-values -n user.savefs.digest "$SNAP")" >/dev/null || die "accept failed"
getfattr --only-values -n user.savefs.trust "$SNAP" | grep -q '^ok: accepted' ||
    die "the new acceptance is not seen"
rm "$SNAP/channel-0"
getfattr --only-values -n user.savefs.verified "$SNAP" | grep -q 'channel-0 is missing' ||
    die "a missing file is not seen"
log "PASS"
