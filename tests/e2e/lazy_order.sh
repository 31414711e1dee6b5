#!/bin/bash
# Not a test: measures the pager's prefetch orders on the memcheck guest (docs/benchmarks.md,
# "Lazy restore: prefetch order"). One snapshot of the guest, restored lazily REPS times in each
# order, alternating: "index" (the channels in stream order, requests first) and "hot" (first the
# pages of the fault log the previous index-order restore wrote, then the index order). For each:
# seconds from `cont` to the guest's first verification pass, to the last page, and the requests.
# Run with the environment ctest gives the e2e tests, as root:
#   SRC_DIR=. SAVEFS_BIN=build/fs/savefs PAGER_BIN=build/pager/savefs-pager \
#     GUEST_DIR=build/guest FS_SHUTDOWN=build/tests/fs_shutdown tests/e2e/lazy_order.sh [REPS]
source "$SRC_DIR/tests/e2e/lib.sh"
# shellcheck source=lazy.sh
source "$SRC_DIR/tests/e2e/lazy.sh"
REPS=${1:-3}

e2e_setup
vm_start vm1
savefs_start
echo "2 name=s" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
vm_wait_gone vm1 || die "vm1's QEMU did not quit after the save"
snap=$STORE/vm1/snapshots/s
printf 'order\trep\tfirst_pass_s\tcompleted_s\trequests\thot_pages\n'
for ((rep = 1; rep <= REPS; rep++)); do
    for order in index hot; do
        opts=(--fault-log "$T/faults.$order")
        [[ $order == hot ]] && opts+=(--hot "$T/faults.index")
        lazy_qemu "$snap"
        out=$(LAZY_SERIAL=$T/vm1.serial python3 "$DRIVE" serve "$QMP/vm1.qmp" 300 "$PAGER_BIN" \
            "${opts[@]}" "$snap" "$T/lazy.sock") || die "restore failed: $out"
        first=$(sed -n 's/.*first_pass_s=\([0-9.]*\).*/\1/p' <<<"$out")
        done_s=$(sed -n 's/.*completed_s=\([0-9.]*\).*/\1/p' <<<"$out")
        reqs=$(sed -n 's/.*written; \([0-9]*\) requests.*/\1/p' <<<"$out")
        hot=$(sed -n 's/.*, \([0-9]*\) hot first).*/\1/p' <<<"$out")
        printf '%s\t%d\t%s\t%s\t%s\t%s\n' "$order" "$rep" "$first" "$done_s" "$reqs" "$hot"
        kill -9 "$(vm_pid vm1)"
        vm_wait_gone vm1 || die "QEMU did not go"
    done
done
