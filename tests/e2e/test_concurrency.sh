#!/bin/bash
# Jobs at once: four VMs saved together, a restore during a save (EBUSY), a save during a
# restore (EBUSY), and `ls -R`, `cat` and `tar c` of the whole mount while jobs run: reads answer
# at once and start no job. Then an unmount during a save: the save completes, savefs exits.
source "$SRC_DIR/tests/e2e/lib.sh"
e2e_setup
store_on_loop 2000
savefs_start
throttle_savefs $((8 << 20)) writes
# shellcheck disable=SC2034 # read by guest.sh
GUEST_MEM_MB=256
VMS=(vm1 vm2 vm3 vm4)
for vm in "${VMS[@]}"; do guest_start "$vm" "$QMP" "$T/$vm.serial" 96 >/dev/null; done
for vm in "${VMS[@]}"; do
    guest_wait_ready "$T/$vm.serial" 180 || die "$vm did not boot"
done

# Reads of the whole mount answer while jobs run (the caller checks that the jobs still run
# after; the bounds only allow for a loaded machine; tar reads every snapshot: it gets longer).
read_everything() {
    local t0=$SECONDS t1 t2
    timeout 30 ls -R "$MNT" >/dev/null || die "ls -R of the mount waited on a job"
    t1=$SECONDS
    timeout 30 cat "$MNT"/*/status >/dev/null || die "cat of the statuses waited on a job"
    t2=$SECONDS
    timeout 30 cat "$MNT"/*/save >/dev/null || die "cat of the saves waited on a job"
    log "ls -R $((t1 - t0)) s, cat status $((t2 - t1)) s, cat save $((SECONDS - t2)) s"
    if [[ ${1:-} != no-tar ]]; then
        timeout 90 tar cf - --exclude='*/restore' -C "$MNT" . | wc -c >/dev/null ||
            die "tar c of the mount waited on a job"
    fi
}

log "four saves at once"
declare -A savers
for vm in "${VMS[@]}"; do
    echo "name=together" >"$MNT/$vm/save" 2>"$T/$vm.err" &
    savers[$vm]=$!
done
wait_phase vm1 migrating
# A second `echo > save` of vm1 would wait for the first: Linux serializes writes to one file. A
# restore of a VM that is being saved is refused at once.
mkdir "$STORE/vm1/snapshots/other"
if mv "$MNT/vm1/snapshots/other" "$MNT/vm1/restore/" 2>"$T/busy.err"; then
    die "a restore during the save was accepted"
fi
grep -q "busy" "$T/busy.err" || die "not EBUSY: $(cat "$T/busy.err")"
rmdir "$STORE/vm1/snapshots/other"
read_everything
for vm in "${VMS[@]}"; do
    [[ $(status_field "$vm" phase) != "" ]] || die "$vm's save ended before the reads did"
done
for vm in "${VMS[@]}"; do
    wait "${savers[$vm]}" || die "$vm's save failed: $(cat "$T/$vm.err"; cat "$MNT/$vm/status")"
done
for vm in "${VMS[@]}"; do
    [[ $(ls "$MNT/$vm/snapshots") == together ]] || die "$vm: $(ls "$MNT/$vm/snapshots")"
    vm_wait_gone "$vm"
done

log "reads start no job"
read_everything no-tar # tar would now read every snapshot: minutes under ASan
for vm in "${VMS[@]}"; do
    [[ $(vm_state "$vm") == stopped ]] || die "$vm is $(vm_state "$vm") after reads"
    [[ $(ls "$MNT/$vm/snapshots") == together ]] || die "reads changed $vm's snapshots"
done

log "a save during a restore is refused"
# A full restore, refusing a save while it streams (during a lazy restore's push a save waits:
# test_lazy_restore).
setfattr -n user.savefs.restore -v full "$MNT/vm1/snapshots/together"
throttle_savefs $((15 << 20))
sync && echo 3 >/proc/sys/vm/drop_caches
mv "$MNT/vm1/snapshots/together" "$MNT/vm1/restore/" 2>"$T/mv.err" &
mover=$!
wait_phase vm1 restoring
if echo 4 >"$MNT/vm1/save" 2>"$T/busy.err"; then die "a save during the restore was accepted"; fi
grep -q "busy" "$T/busy.err" || die "not EBUSY: $(cat "$T/busy.err")"
timeout 20 cat "$MNT/vm2/status" >/dev/null || die "cat of another VM's status waited"
timeout 20 ls "$MNT/vm2/snapshots" >/dev/null || die "ls of another VM waited"
[[ $(status_field vm1 phase) == restoring ]] || die "the restore ended before the reads did"
wait "$mover" || die "the restore failed: $(cat "$T/mv.err")"
vm_adopt vm1

log "unmount during a save: the save completes, then savefs exits"
pid=${SAVEFS_PIDS[-1]}
echo "name=last" >"$MNT/vm1/save" 2>"$T/last.err" &
saver=$!
wait_phase vm1 migrating
fusermount3 -uz "$MNT"
wait "$saver" || die "the save failed after the unmount: $(cat "$T/last.err")"
[[ -f $STORE/vm1/snapshots/last/manifest.json ]] || die "the save was not published"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && die "savefs still runs after the unmount"
vm_wait_gone vm1 || die "vm1 did not quit after its save"
log "PASS"
