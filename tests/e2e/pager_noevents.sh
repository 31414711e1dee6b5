#!/bin/bash
# For test_lazy_restore.sh while savefs-pager has no --events: runs PAGER_BIN without it (savefs
# then learns that the guest can run from QEMU's postcopy state, and that the push is over from
# the migration's completion), so that only the push's progress lines are missing.
args=()
while (($#)); do
    case $1 in
    --events) shift 2 ;;
    *) args+=("$1"); shift ;;
    esac
done
exec "$PAGER_BIN" "${args[@]}"
