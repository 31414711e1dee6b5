#!/bin/bash
# Lazy restore by hand with savefs-pager: the memcheck guest saved through the mount (plain
# channels), started again from its recorded command line with -incoming defer -S and
# postcopy-ram, served by the pager, `cont` once QEMU is in postcopy: it runs at once and goes
# on verifying its memory while the pages come. The restored VM is saved again, compressed, and
# restored lazily again. Snapshots the pager cannot serve are refused before QEMU is touched; a
# damaged chunk stops the pager, and QEMU waits instead of completing with it.
source "$SRC_DIR/tests/e2e/lib.sh"
: "${PAGER_BIN:?PAGER_BIN must name savefs-pager}"
DRIVE=$SRC_DIR/tests/e2e/qmp_lazy.py

# lazy_qemu SNAPDIR: starts vm1 as its snapshot recorded it, waiting for an incoming postcopy
# stream on $T/lazy.sock.
lazy_qemu() {
    local snap=$1 i pid
    local -a argv args=()
    mapfile -t argv < <(jq -r '.qemu.argv[]' "$snap/manifest.json")
    for ((i = 0; i < ${#argv[@]}; i++)); do
        case ${argv[i]} in
        -serial | -pidfile | -qmp) i=$((i + 1)) ;;
        *) args+=("${argv[i]}") ;;
        esac
    done
    rm -f "$T/lazy.sock"
    setsid "${args[@]}" -serial "file:$T/vm1.serial" -pidfile "$QMP/vm1.pid" \
        -qmp "unix:$QMP/vm1.qmp,server=on,wait=off" -incoming defer -S \
        </dev/null >"$T/lazy.qemu.log" 2>&1 &
    pid=$!
    printf '%s\t%s\n' "$pid" "$T/vm1.serial" >>"$GUEST_PID_FILE"
    for _ in $(seq 100); do
        [[ -S $QMP/vm1.qmp ]] && break
        sleep 0.1
    done
    python3 "$DRIVE" incoming "$QMP/vm1.qmp" "$T/lazy.sock" || die "QEMU: $(cat "$T/lazy.qemu.log")"
}

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

# lazy_restore SNAPDIR: vm1 from SNAPDIR, served lazily; checks its memory after.
lazy_restore() {
    local snap=$1 pass seed out
    pass=$(guest_last_pass "$T/vm1.serial")
    seed=$(guest_seed "$T/vm1.serial")
    vm_wait_gone vm1 || die "vm1's QEMU did not quit after the save"
    lazy_qemu "$snap"
    out=$(LAZY_EVENTS=$T/events python3 "$DRIVE" serve "$QMP/vm1.qmp" 120 "$PAGER_BIN" "$snap" \
        "$T/lazy.sock") || die "lazy restore of $snap failed: $out; QEMU: $(cat "$T/lazy.qemu.log")"
    log "$(basename "$snap"): $(tr '\n' ' ' <<<"$out")"
    events_check "$T/events"
    log "events: $(grep -c push "$T/events") push lines, then $(tail -1 "$T/events")"
    # Two passes: the first may have run while pages were still coming.
    vm_check_alive vm1 "$((pass + 1))" "$seed"
    log "restored lazily: passes go on past $((pass + 1)) with seed $seed"
}

# pager_stops SNAPDIR STATUS WHY QEMU_STATE: the pager, on SNAPDIR, exits with STATUS saying WHY;
# QEMU's migration and run state are then QEMU_STATE.
pager_stops() {
    local snap=$1 status=$2 why=$3 state=$4 rc=0 out
    lazy_qemu "$snap"
    out=$("$PAGER_BIN" --events 3 "$snap" "$T/lazy.sock" 2>&1 3>"$T/events") || rc=$?
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
lazy_restore "$STORE/vm1/snapshots/plain"

log "save the lazily restored VM again, compressed"
echo "2 compress=zstd:1 name=packed" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
lazy_restore "$STORE/vm1/snapshots/packed"
kill -9 "$(vm_pid vm1)"
vm_wait_gone vm1 || die "QEMU did not go"

log "refusals"
cp -a "$STORE/vm1/snapshots/plain" "$T/noindex"
rm "$T/noindex/channel-1.idx"
jq 'del(.hmac) | .files |= map(select(.name != "channel-1.idx"))' "$STORE/vm1/snapshots/plain/manifest.json" \
    >"$T/noindex/manifest.json"
# Refused (status 2) before QEMU is touched: it still waits for a stream.
pager_stops "$T/noindex" 2 "channel-1 has no page index" "none inmigrate"
cp -a "$STORE/vm1/snapshots/plain" "$T/badindex"
printf '\xff' | dd of="$T/badindex/channel-0.idx" bs=1 seek=100 conv=notrunc status=none
pager_stops "$T/badindex" 2 "channel-0.idx" "none inmigrate"

log "damaged chunks"
# A zstd frame is checked as it is decompressed: its pages are never sent.
cp -a "$STORE/vm1/snapshots/packed" "$T/badframe"
size=$(stat -c %s "$T/badframe/channel-0")
printf '\x5a\xa5\x5a\xa5' | dd of="$T/badframe/channel-0" bs=1 seek=$((size / 2)) conv=notrunc status=none
# The pager stops (status 1); QEMU, fed no page past the damage, waits instead of completing.
pager_stops "$T/badframe" 1 "channel-0: frame" "postcopy-paused paused"
# A plain channel has only its whole checksum, known once its last page was sent.
cp -a "$STORE/vm1/snapshots/plain" "$T/badpage"
printf '\x5a' | dd of="$T/badpage/channel-1" bs=1 seek=$((64 + 1344 + 100)) conv=notrunc status=none
pager_stops "$T/badpage" 1 "channel-1: its checksum does not match" "postcopy-paused paused"
log "PASS"
