#!/bin/bash
# Lazy restore by hand with savefs-pager: the memcheck guest saved through the mount (plain
# channels), started again from its recorded command line with -incoming defer -S and
# postcopy-ram, served by the pager, `cont` once QEMU is in postcopy: it runs at once and goes
# on verifying its memory while the pages come (the second time, the pages the first one asked
# for pushed first). The restored VM is saved again, restored with
# its pager SIGKILLed mid-push and a second one resuming it through QEMU's postcopy recovery,
# then saved again, compressed, and restored lazily again. Snapshots the pager cannot serve are
# refused before QEMU is touched; a damaged block stops the pager before any of its bytes are
# sent, and QEMU waits instead of completing with it.
source "$SRC_DIR/tests/e2e/lib.sh"
# shellcheck source=lazy.sh
source "$SRC_DIR/tests/e2e/lazy.sh"

# events_check FILE: the pager's --events lines of a restore that completed: running, pushes
# up to all pages, done last.
events_check() {
    local ev=$1
    grep -qx running "$ev" || die "no 'running' event: $(cat "$ev")"
    awk '$1 == "push" && ($2 > $3 || $2 < last) { exit 1 } $1 == "push" { last = $2 }' "$ev" ||
        die "push events go backwards or past the total: $(cat "$ev")"
    tail -2 "$ev" | head -1 | awk '$1 != "push" || $2 != $3 { exit 1 }' ||
        die "the last push does not count every page: $(cat "$ev")"
    tail -1 "$ev" | grep -qE '^done [0-9]+\.[0-9]{3}$' || die "'done' is not last: $(cat "$ev")"
    (($(grep -n running "$ev" | cut -d: -f1) < $(wc -l <"$ev"))) || die "running after done"
}

# lazy_restore SNAPDIR HOT [PAGER-OPTIONS...]: vm1 from SNAPDIR, served lazily, the pages the
# previous lazy restore asked for first (HOT of them at least); checks its memory after.
lazy_restore() {
    local snap=$1 hot=$2 pass seed out n
    shift 2
    pass=$(guest_last_pass "$T/vm1.serial")
    seed=$(guest_seed "$T/vm1.serial")
    vm_wait_gone vm1 || die "vm1's QEMU did not quit after the save"
    lazy_qemu "$snap"
    out=$(LAZY_EVENTS=$T/events python3 "$DRIVE" serve "$QMP/vm1.qmp" 120 "$PAGER_BIN" \
        --fault-log "$T/faults.new" --hot "$T/faults" "$@" "$snap" "$T/lazy.sock") ||
        die "lazy restore of $snap failed: $out; QEMU: $(cat "$T/lazy.qemu.log")"
    log "$(basename "$snap"): $(tr '\n' ' ' <<<"$out")"
    LAST_OUT=$out
    n=$(sed -n 's/.*, \([0-9]*\) hot first).*/\1/p' <<<"$out")
    ((n >= hot)) || die "$n pages pushed hot first, not $hot or more"
    # Every request logged, a page a line: the next restore's hot pages.
    (($(wc -l <"$T/faults.new") >= $(sed -n 's/.*written; \([0-9]*\) requests.*/\1/p' <<<"$out"))) ||
        die "the fault log lacks requests: $(wc -l <"$T/faults.new") lines"
    mv "$T/faults.new" "$T/faults"
    events_check "$T/events"
    log "events: $(grep -c push "$T/events") push lines, then $(tail -1 "$T/events")"
    # Two passes: the first may have run while pages were still coming.
    vm_check_alive vm1 "$((pass + 1))" "$seed"
    log "restored lazily: passes go on past $((pass + 1)) with seed $seed"
}

# pager_stops SNAPDIR STATUS WHY QEMU_STATE [PAGER-OPTIONS...]: the pager, on SNAPDIR, exits with
# STATUS saying WHY; QEMU's migration and run state are then QEMU_STATE.
pager_stops() {
    local snap=$1 status=$2 why=$3 state=$4 rc=0 out
    shift 4
    lazy_qemu "$snap"
    out=$("$PAGER_BIN" --events 3 "$@" "$snap" "$T/lazy.sock" 2>&1 3>"$T/events") || rc=$?
    ((rc == status)) || die "the pager's status on $snap is $rc, not $status: $out"
    grep -q "$why" <<<"$out" || die "the pager does not say '$why': $out"
    tail -1 "$T/events" | grep -q "^fail .*$why" || die "no 'fail' event saying '$why': $(cat "$T/events")"
    [[ $(python3 "$DRIVE" status "$QMP/vm1.qmp") == "$state" ]] ||
        die "QEMU is not $state: $(python3 "$DRIVE" status "$QMP/vm1.qmp")"
    log "$(basename "$snap"): $(grep -v '^savefs-pager: [0-9s]' <<<"$out" | tr '\n' ' ')"
    kill -9 "$(vm_pid vm1)"
    vm_wait_gone vm1 || die "QEMU did not go"
}

e2e_setup
vm_start vm1
savefs_start

log "save, plain channels"
echo "2 name=plain" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
lazy_restore "$STORE/vm1/snapshots/plain" 0
# Main's layout in the manifest: the pager read main's head and device state alone.
main_layout() { jq -e '.files[] | select(.role == "main") | .layout' "$1/manifest.json"; }
main_layout "$STORE/vm1/snapshots/plain" | jq -e '.head > 0 and .devices >= .head and .eof > .devices' \
    >/dev/null || die "plain's main has no layout: $(main_layout "$STORE/vm1/snapshots/plain")"
grep -q "bytes, its head and device state;" <<<"$LAST_OUT" || die "main not read by its layout: $LAST_OUT"

log "the pager SIGKILLed mid-push, QEMU recovered by a resumed pager"
echo "2 name=again" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
pass=$(guest_last_pass "$T/vm1.serial")
seed=$(guest_seed "$T/vm1.serial")
vm_wait_gone vm1 || die "vm1's QEMU did not quit after the save"
cp "$T/vm1.serial" "$T/vm1.serial.again" # the guest as saved: lazy_qemu starts a new log
lazy_qemu "$STORE/vm1/snapshots/again"
if out=$(timeout 300 python3 "$DRIVE" recover "$QMP/vm1.qmp" 180 "$T/recover.sock" "$PAGER_BIN" \
    "$STORE/vm1/snapshots/again" "$T/lazy.sock" 2>&1); then
    log "$(tr '\n' ' ' <<<"$out")"
    grep -q '^resumed: running done ' <<<"$out" || die "the resumed pager's events: $out"
    vm_check_alive vm1 "$((pass + 1))" "$seed"
    log "recovered: passes go on past $((pass + 1)) with seed $seed"
else
    # QEMU 7.2's limit (docs/lazy.md): a vCPU waiting for a page holds the lock that the
    # recovery's listener and the monitor need; nobody can recover that QEMU. Anything else fails.
    [[ $out == *"monitor does not answer"* ]] || die "recovery failed: $out; QEMU: $(cat "$T/lazy.qemu.log")"
    log "not recovered, QEMU 7.2's limit: $(tail -1 <<<"$out")"
    kill -9 "$(cat "$QMP/vm1.pid")"
    vm_wait_gone vm1 || die "the QEMU that could not be recovered did not go"
    # Its log may hold no pass at all (its vCPU waited from the start): the saved guest's does.
    cp "$T/vm1.serial.again" "$T/vm1.serial"
    lazy_restore "$STORE/vm1/snapshots/again" 0
fi

log "save the lazily restored VM again, compressed"
echo "2 compress=zstd:1 name=packed" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
# Served only as the manifest the job decided to run (its digest, as `savefs accept` shows it).
digest=$("$SAVEFS_BIN" accept --store "$STORE" --qmp-dir "$QMP" vm1 packed | sed -n 's/^digest: //p')
[[ $digest == sha256:* ]] || die "no digest for packed"
# The hot list also names the last data pages the index order would push: a fast push leaves the
# restore before only the few requests a device's loading makes, and this one makes them again
# before its push begins, so those alone may all be sent as requests.
"$SRC_DIR/contrib/savefs-snapshot" pages "$STORE/vm1/snapshots/packed" |
    awk -F'\t' '$4 != "zero" { print $2, $3 }' | tail -64 >>"$T/faults"
lazy_restore "$STORE/vm1/snapshots/packed" 1 --digest "$digest"
# A compressed main has no layout: read whole, as a snapshot of savefs before layouts.
! main_layout "$STORE/vm1/snapshots/packed" >/dev/null || die "packed's main has a layout"
grep -q "bytes, whole;" <<<"$LAST_OUT" || die "packed's main not read whole: $LAST_OUT"
kill -9 "$(vm_pid vm1)"
vm_wait_gone vm1 || die "QEMU did not go"

log "refusals"
cp -a "$STORE/vm1/snapshots/plain" "$T/noindex"
rm "$T/noindex/channel-1.idx"
jq 'del(.hmac) | .files |= map(select(.name != "channel-1.idx"))' "$STORE/vm1/snapshots/plain/manifest.json" \
    >"$T/noindex/manifest.json"
# Refused (status 2) before QEMU is touched: it still waits for a stream.
pager_stops "$T/noindex" 2 "channel-1 has no page index" "none inmigrate"
# A snapshot of savefs before the sums (version 1 indexes): refused, it restores fully.
cp -a "$STORE/vm1/snapshots/plain" "$T/v1index"
for i in 0 1; do
    /usr/bin/python3 - "$T/v1index/channel-$i.idx" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
out, pos = bytearray(b[:8] + struct.pack("<IIII", 1, 4096, 0, 0)), 24
while pos < len(b):
    typ, a, c, flags = struct.unpack_from("<IIII", b, pos)
    if typ in (2, 4) and flags == 1:  # a run (version 3): its list
        off, first = struct.unpack_from("<QQ", b, pos + 16)
        out += struct.pack(f"<IIIIQ{c}Q", typ, a, c, 0, off, *(first + i * 4096 for i in range(c)))
        pos += 32
        continue
    n = {1: 16 + (c + 7) // 8 * 8, 2: 24 + 8 * c, 4: 24 + 8 * c, 5: 24}.get(typ, len(b) - pos)
    if typ != 5:
        out += b[pos:pos + n]
    pos += n
open(sys.argv[1], "wb").write(out)
PY
done
/usr/bin/python3 - "$T/v1index" <<'PY'
import json, os, sys, xxhash
d = sys.argv[1]
m = json.load(open(os.path.join(d, "manifest.json")))
m.pop("hmac", None)
for f in m["files"]:
    if f["role"] == "index":
        f["size"] = os.path.getsize(os.path.join(d, f["name"]))
        f["xxh3"] = xxhash.xxh3_64(open(os.path.join(d, f["name"]), "rb").read()).hexdigest()
json.dump(m, open(os.path.join(d, "manifest.json"), "w"))
PY
pager_stops "$T/v1index" 2 "channel-0.idx is a version 1 page index" "none inmigrate"
# A manifest other than the one decided on (the v1 copy's, with packed's digest).
pager_stops "$T/v1index" 2 "its manifest's digest is sha256:[0-9a-f]*, not $digest as decided" \
    "none inmigrate" --digest "$digest"
cp -a "$STORE/vm1/snapshots/plain" "$T/badindex"
flip_byte "$T/badindex/channel-0.idx" 100
pager_stops "$T/badindex" 2 "channel-0.idx" "none inmigrate"
# Main's device state damaged: its layout's checksum refuses it before QEMU is touched.
cp -a "$STORE/vm1/snapshots/plain" "$T/badlayout"
flip_byte "$T/badlayout/main" $(($(main_layout "$T/badlayout" | jq .devices) + 1))
pager_stops "$T/badlayout" 2 "a part its layout names does not match the manifest's checksum" \
    "none inmigrate"

log "damaged chunks"
# A zstd frame is checked as it is decompressed: its pages are never sent. The job hears the
# file and the stream offset of the block.
cp -a "$STORE/vm1/snapshots/packed" "$T/badframe"
size=$(stat -c %s "$T/badframe/channel-0")
printf '\x5a\xa5\x5a\xa5' | dd of="$T/badframe/channel-0" bs=1 seek=$((size / 2)) conv=notrunc status=none
# The pager stops (status 1); QEMU, fed no page past the damage, waits instead of completing.
pager_stops "$T/badframe" 1 "checksum channel-0 offset [0-9]*: channel-0: frame" "postcopy-paused paused"
# A plain channel's block is checked against the index's sum before any page of it is sent.
cp -a "$STORE/vm1/snapshots/plain" "$T/badpage"
# Mid-file, so that QEMU has run (a QEMU still loading its devices, which may fault on a page
# the pager no longer sends, fails its load and exits instead: the VM never ran).
size=$(stat -c %s "$T/badpage/channel-1")
flip_byte "$T/badpage/channel-1" $((size / 2))
pager_stops "$T/badpage" 1 "checksum channel-1 offset $((size / 2 / 262144 * 262144))$" "postcopy-paused paused"
log "PASS"
