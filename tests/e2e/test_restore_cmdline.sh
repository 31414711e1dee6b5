#!/bin/bash
# What the restored QEMU's command line keeps of the guest: its serial log (appended to, not
# truncated: the lines before the save stay), a console on stdio (it comes back as a unix socket
# one can attach to, named in status), and the versioned machine type the snapshot was saved with
# (-machine pc would mean another type to a newer QEMU). A snapshot of a newer QEMU is refused.
source "$SRC_DIR/tests/e2e/lib.sh"
command -v jq >/dev/null || { echo "SKIP: jq is needed"; exit 77; }
e2e_setup
# A -machine with a sub-option besides the unversioned type (lib.sh gives -machine pc, too).
GUEST_EXTRA_ARGS=(-machine "pc,usb=off")
vm_start vm1
savefs_start "$@"

first=$(tr -d '\r' <"$T/vm1.serial" | grep -a -m1 '^SAVEFS-MEMCHECK pass=') ||
    die "no pass line before the save"
pass=$(guest_last_pass "$T/vm1.serial")
seed=$(guest_seed "$T/vm1.serial")
echo "2 name=s1" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
vm_wait_gone vm1 || die "vm1 did not quit after the save"
jq -e '.qemu.machine == "pc-i440fx-7.2"' "$MNT/vm1/snapshots/s1/manifest.json" >/dev/null ||
    die "manifest machine: $(jq .qemu.machine "$MNT/vm1/snapshots/s1/manifest.json")"

log "restore: the serial log is appended to, the machine type pinned"
mv "$MNT/vm1/snapshots/s1" "$MNT/vm1/restore/" || die "restore failed: $(cat "$MNT/vm1/status")"
vm_adopt vm1
vm_check_alive vm1 "$pass" "$seed"
tr -d '\r' <"$T/vm1.serial" | grep -aqxF "$first" || die "the serial log lost its lines before the save"
pid=$(vm_pid vm1)
cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
[[ $cmdline == *"-machine pc-i440fx-7.2 "*"-machine pc-i440fx-7.2,usb=off "* ]] ||
    die "the restored QEMU's machine is not pinned: $cmdline"
type=$(printf '%s\n' '{"execute":"qmp_capabilities"}' \
    '{"execute":"qom-get","arguments":{"path":"/machine","property":"type"}}' |
    nc -U -q 1 "$QMP/vm1.qmp" | jq -r 'select(.return | type == "string") | .return')
[[ $type == pc-i440fx-7.2-machine ]] || die "the restored machine is '$type'"

log "a snapshot of a newer QEMU is refused, naming both versions"
echo "2 name=s2" >"$MNT/vm1/save" || die "save failed: $(cat "$MNT/vm1/status")"
vm_wait_gone vm1 || die "vm1 did not quit after the save"
mkdir "$STORE/vm1/snapshots/newer"
cp "$STORE/vm1/snapshots/s2"/* "$STORE/vm1/snapshots/newer/"
jq '.snapshot = "newer" | .qemu.version = "99.1.0" | del(.hmac)' "$STORE/vm1/snapshots/s2/manifest.json" \
    >"$STORE/vm1/snapshots/newer/manifest.json"
digest=$(getfattr --absolute-names --only-values -n user.savefs.digest "$MNT/vm1/snapshots/newer")
"$SAVEFS_BIN" accept --store "$STORE" vm1 newer "$digest" >/dev/null || die "savefs accept failed"
if mv "$MNT/vm1/snapshots/newer" "$MNT/vm1/restore/" 2>"$T/mv.err"; then
    die "a snapshot of QEMU 99.1.0 was restored"
fi
grep -q "99.1.0.*7\.2\." "$MNT/vm1/status" ||
    die "the reason does not name the versions: $(cat "$MNT/vm1/status")"
[[ -z $(vm_pid vm1 || true) ]] || die "a QEMU runs after the refusal"

log "a console on stdio comes back as a socket"
# shellcheck disable=SC2034 # read by guest_args
GUEST_EXTRA_ARGS=(-serial mon:stdio)
guest_args vm2 "$QMP" "$T/vm2.serial"
# guest_args gives -serial file:...; this guest's console is on stdio instead.
argv=()
for ((i = 0; i < ${#GUEST_ARGV[@]}; i++)); do
    [[ ${GUEST_ARGV[i]} == -serial && ${GUEST_ARGV[i + 1]} == file:* ]] && { i=$((i + 1)); continue; }
    argv+=("${GUEST_ARGV[i]}")
done
setsid "${argv[@]}" </dev/null >"$T/vm2.serial" 2>&1 &
printf '%s\t%s\n' "$!" "$T/vm2.serial" >>"$GUEST_PID_FILE"
guest_wait_pass_above "$T/vm2.serial" 0 120 || die "vm2 does not verify its memory"
pass=$(guest_last_pass "$T/vm2.serial")
echo "1 name=c1" >"$MNT/vm2/save" || die "save failed: $(cat "$MNT/vm2/status")"
vm_wait_gone vm2 || die "vm2 did not quit after the save"
mv "$MNT/vm2/snapshots/c1" "$MNT/vm2/restore/" || die "restore failed: $(cat "$MNT/vm2/status")"
vm_adopt vm2
console=$QMP/.savefs/vm2.console
[[ $(status_field vm2 console) == "$console" ]] || die "status does not name the console: $(cat "$MNT/vm2/status")"
timeout 10 nc -U "$console" </dev/null 2>/dev/null | tr -d '\r' >"$T/console.out" || true
grep -a -m1 '^SAVEFS-MEMCHECK pass=' "$T/console.out" >/dev/null ||
    die "no memcheck line on the console: $(tail -c 300 "$T/console.out")"
last=$(sed -n 's/^SAVEFS-MEMCHECK pass=\([0-9]*\) ok .*/\1/p' "$T/console.out" | tail -n1)
((last > pass)) || die "the console shows pass $last, not past $pass"
log "PASS"
