#!/bin/bash
# libvirt's domains: a domain of type qemu (TCG) running the memcheck guest under libvirt's stock
# qemu.conf (QEMU runs as libvirt-qemu) shows as a VM; `echo 4 > save` saves it through libvirt's
# monitor connection; libvirt then says "shut off (destroyed)", the domain's <metadata> names the
# snapshot, and `virsh start` is refused by savefs's hook with that reason. `mv` into restore/
# starts it through libvirt from the snapshot's XML and resumes it there: the guest verifies its
# memory, libvirt says running, its console works, the mark is gone; a second cycle; and
# `virsh save`/`virsh restore` work on the restored domain.
# After it `virsh domjobinfo` answers, and `virsh shutdown` powers the guest off.
# libvirtd and virtlogd are started here (no systemd) and stopped by pid (libvirt.sh).
source "$SRC_DIR/tests/e2e/lib.sh"
source "$SRC_DIR/tests/e2e/libvirt.sh"

lv_setup
lv_domain_start
savefs_start
ls "$MNT" | grep -qx "$DOM" || die "$DOM is not listed: $(ls "$MNT")"
[[ $(vm_state "$DOM") == running ]] || die "$DOM is $(vm_state "$DOM"): $(cat "$MNT/$DOM/status")"

log "save with echo"
pass=$(guest_last_pass "$T/$DOM.serial")
seed=$(guest_seed "$T/$DOM.serial")
echo 4 >"$MNT/$DOM/save" || die "save failed: $(cat "$MNT/$DOM/status")"
snap=$(status_field "$DOM" snapshot)
[[ -n $snap && -f $MNT/$DOM/snapshots/$snap/manifest.json ]] || die "no snapshot: $(cat "$MNT/$DOM/status")"
jq -e '.libvirt.xml | contains("<name>'"$DOM"'</name>")' "$MNT/$DOM/snapshots/$snap/manifest.json" >/dev/null ||
    die "the manifest holds no domain XML"

log "libvirt's view: destroyed, marked with $snap"
[[ $(virsh_ domstate "$DOM" --reason) == "shut off (destroyed)" ]] ||
    die "domstate: $(virsh_ domstate "$DOM" --reason)"
virsh_ metadata "$DOM" urn:savefs:libvirt:1 --config | grep -q "snapshot=\"$snap\"" ||
    die "no savefs mark in the metadata: $(virsh_ dumpxml --inactive "$DOM" | grep -A3 '<metadata')"
[[ $(jq -r '.libvirt.saved_in' "$MNT/$DOM/status") == "$snap" ]] ||
    die "status does not say where the state is: $(cat "$MNT/$DOM/status")"

log "virsh start is refused, with the reason"
if virsh_ start "$DOM" >"$T/start.out" 2>&1; then
    die "virsh start cold-booted a saved domain"
fi
grep -q "savefs snapshot $snap" "$T/start.out" || die "refused without the reason: $(cat "$T/start.out")"
[[ $(virsh_ domstate "$DOM") == "shut off" ]] || die "domstate after the refusal: $(virsh_ domstate "$DOM")"

# Restores $1 with mv and checks libvirt's view and the guest's memory.
restore_check() {
    local snap=$1
    mv "$MNT/$DOM/snapshots/$snap" "$MNT/$DOM/restore/" || die "restore failed: $(cat "$MNT/$DOM/status")"
    [[ $(virsh_ domstate "$DOM" --reason) == "running (unpaused)" ]] ||
        die "domstate after the restore: $(virsh_ domstate "$DOM" --reason)"
    guest_wait_pass_above "$T/$DOM.serial" "$pass" 60 || die "no good pass above $pass after the restore"
    [[ $(guest_seed "$T/$DOM.serial") == "$seed" ]] || die "another seed: a cold boot?"
    ! virsh_ metadata "$DOM" urn:savefs:libvirt:1 --config >/dev/null 2>&1 ||
        die "the mark stayed after the restore"
    [[ $(vm_state "$DOM") == running ]] || die "status: $(cat "$MNT/$DOM/status")"
}

log "restore with mv"
restore_check "$snap"
log "virsh console shows the guest"
timeout 8 script -qec "virsh -c $LIBVIRT_URI console $DOM --force" /dev/null >"$T/console.out" 2>&1 || true
grep -aq "SAVEFS-MEMCHECK pass=[0-9]* ok seed=$seed" "$T/console.out" ||
    die "no memcheck line on the console: $(tail -c 300 "$T/console.out")"

log "a second cycle"
pass=$(guest_last_pass "$T/$DOM.serial")
echo "4 name=second" >"$MNT/$DOM/save" || die "second save failed: $(cat "$MNT/$DOM/status")"
[[ $(virsh_ domstate "$DOM" --reason) == "shut off (destroyed)" ]] || die "second save: $(virsh_ domstate "$DOM" --reason)"
restore_check second

log "virsh domjobinfo of the restored domain"
virsh_ domjobinfo "$DOM" >"$T/jobinfo.out" 2>&1 || die "virsh domjobinfo failed: $(cat "$T/jobinfo.out")"

log "virsh save and virsh restore of the restored domain"
pass=$(guest_last_pass "$T/$DOM.serial")
virsh_ save "$DOM" "$T/virsh.save" >/dev/null || die "virsh save failed"
virsh_ restore "$T/virsh.save" >/dev/null || die "virsh restore failed"
[[ $(virsh_ domstate "$DOM") == running ]] || die "after virsh restore: $(virsh_ domstate "$DOM")"
guest_wait_pass_above "$T/$DOM.serial" "$pass" 60 || die "no good pass after virsh restore"
[[ $(guest_seed "$T/$DOM.serial") == "$seed" ]] || die "virsh restore: another seed"

log "virsh shutdown: the guest powers off on the ACPI power button"
virsh_ shutdown "$DOM" >/dev/null || die "virsh shutdown failed"
for _ in $(seq 600); do
    [[ $(virsh_ domstate "$DOM") == "shut off" ]] && break
    sleep 0.1
done
[[ $(virsh_ domstate "$DOM" --reason) == "shut off (shutdown)" ]] ||
    die "after virsh shutdown: $(virsh_ domstate "$DOM" --reason); guest: $(tail -n 3 "$T/$DOM.serial")"
log "PASS"
