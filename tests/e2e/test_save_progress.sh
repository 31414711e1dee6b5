#!/bin/bash
# A save's progress in status: bytes_done of bytes_total is how much of the guest's RAM QEMU has
# scanned (zero pages cost nothing to write, so counting written bytes against the RAM size
# stopped at the non-zero part), bytes_written what is in the snapshot so far, and bytes_to_write
# the snapshot's size once QEMU has sent everything. A throttled store makes the save last.
source "$SRC_DIR/tests/e2e/lib.sh"
command -v jq >/dev/null || { echo "SKIP: jq is needed"; exit 77; }
e2e_setup
store_on_loop 1000
vm_start vm1
savefs_start "$@"
throttle_savefs $((16 << 20)) writes

echo "2 name=s1" >"$MNT/vm1/save" &
saver=$!
: >"$T/samples"
while kill -0 "$saver" 2>/dev/null; do
    jq -c '.job // empty' "$MNT/vm1/status" >>"$T/samples" 2>/dev/null || true
    sleep 0.1
done
wait "$saver" || die "save failed: $(cat "$MNT/vm1/status")"
unthrottle_savefs
log "$(wc -l <"$T/samples") samples; the last: $(tail -n1 "$T/samples")"

size=$(jq '[.files[].size] | add' "$STORE/vm1/snapshots/s1/manifest.json")
jq -s -e '[.[] | select(.phase == "migrating" and .bytes_done > 0)] | length > 3' "$T/samples" >/dev/null ||
    die "too few samples while migrating: $(cat "$T/samples")"
jq -s -e 'all(.[]; .bytes_done <= .bytes_total)' "$T/samples" >/dev/null ||
    die "bytes_done above bytes_total: $(cat "$T/samples")"
max=$(jq -s '[.[] | select(.bytes_total > 0) | .bytes_done / .bytes_total] | max' "$T/samples")
jq -n -e "$max >= 0.95" >/dev/null || die "progress never got past $max of the total"
jq -s -e 'all(.[]; .phase != "migrating" or (.bytes_written | type == "number"))' "$T/samples" \
    >/dev/null || die "no bytes_written while migrating: $(tail -n3 "$T/samples")"
# Once QEMU has sent everything (the phases after migrating last a moment: a slow sampler may
# see none of them), bytes_to_write is what was sent, within the snapshot's size.
jq -s -e --argjson size "$size" \
    'all(.[] | select(.phase | IN("syncing", "publishing", "quitting"));
        .bytes_to_write == .bytes_written and .bytes_to_write <= $size)' \
    "$T/samples" >/dev/null ||
    die "bytes_to_write is not the bytes sent ($size in the snapshot): $(tail -n3 "$T/samples")"
log "PASS"
