#!/bin/bash
# `savefs accept` as a reviewer meets it (docs/trust.md): every argument is printed quoted with
# its control characters visible, so that a \r or an ESC sequence cannot hide the options before
# it; every host path the command line would open is listed apart from argv, with what QEMU does
# to it; options that need a local allowance are named; a path in savefs's QMP directory (another
# VM's monitor) or in the store is refused and the digest is not accepted; `--` ends the options,
# so that a VM or a snapshot may be named -rf. No QEMU and no mount: accept reads the store.
source "$SRC_DIR/tests/e2e/lib.sh"
command -v jq >/dev/null || { echo "SKIP: jq is needed"; exit 77; }
e2e_setup

# A manifest of snapshot $2 of VM $1 in the store, with the argv given as a JSON array in $3.
manifest() {
    mkdir -p "$STORE/$1/snapshots/$2"
    jq -n --arg vm "$1" --arg snap "$2" --argjson argv "$3" '{
        format: "savefs-snapshot", version: 1, vm: $vm, snapshot: $snap,
        created: "2026-11-26T13:45:01Z",
        qemu: {version: "7.2.22", binary: "/usr/bin/qemu-system-x86_64", cwd: "/",
               machine: "pc-i440fx-7.2", uuid: "00000000-0000-0000-0000-000000000000",
               argv: $argv},
        ram_size: 536870912, was_running: true, channels: 1, compression: "none",
        compression_level: 0, duration_s: 0.1,
        files: [{name: "main", role: "main", size: 10, xxh3: "0000000000000001"},
                {name: "channel-0", role: "channel", channel: 0, size: 20,
                 xxh3: "0000000000000002"}]}' >"$STORE/$1/snapshots/$2/manifest.json"
}

accept() {
    "$SAVEFS_BIN" accept --store "$STORE" --qmp-dir "$QMP" "$@"
}

log "arguments are quoted, control characters visible; host paths are listed apart"
# The \r and the ESC sequence (cursor up, erase line) would make a terminal overwrite the lines
# of the options before them.
hide=$'-name\r\e[1A\e[2Kvm1'
manifest vm1 S "$(jq -n --arg hide "$hide" --arg pwn "cmd://touch $T/pwned" '[
    "qemu-system-x86_64", "-m", "512", "-serial", "file:/etc/shadow",
    "-drive", "file=/etc/passwd,format=raw", "-netdev", ("vde,id=n0,sock=" + $pwn),
    "-pidfile", "vm1.pid", "-name", $hide]')"
accept vm1 S >"$T/review" || die "accept (review) failed"
cat "$T/review"
if LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$T/review"; then
    die "raw control characters in the review"
fi
grep -qF '"-name\r\x1b[1A\x1b[2Kvm1"' "$T/review" || die "the hiding argument is not escaped"
grep -qF '"file:/etc/shadow"' "$T/review" || die "argv is not quoted"
paths=$(sed -n '/^host paths/,/^$/p' "$T/review")
grep -q 'writes.*"/etc/shadow".*-serial' <<<"$paths" || die "/etc/shadow is not listed: $paths"
grep -q 'reads and writes.*"/etc/passwd".*-drive' <<<"$paths" || die "/etc/passwd is not listed"
grep -qF '"/vm1.pid"' <<<"$paths" || die "a relative path is not shown from the cwd"
allow=$(sed -n '/^options that need a local allowance/,/^$/p' "$T/review")
grep -q -- '-netdev.*vde' <<<"$allow" || die "vde is not named as needing an allowance: $allow"
digest=$(sed -n 's/^digest: //p' "$T/review")
accept vm1 S "$digest" || die "accept failed"

log "a path in savefs's QMP directory or in the store is refused"
for bad in "unix:$QMP/vm2.qmp" "unix:$QMP/.savefs/x.sock,server=on" "file:$STORE/.savefs-key"; do
    manifest vm1 Q "$(jq -n --arg m "$bad" '["qemu-system-x86_64", "-monitor", $m]')"
    accept vm1 Q >"$T/review" || die "accept (review) failed"
    grep -q 'REFUSED' "$T/review" || die "$bad is not shown as refused: $(cat "$T/review")"
    digest=$(sed -n 's/^digest: //p' "$T/review")
    if accept vm1 Q "$digest" 2>"$T/err"; then die "-monitor $bad was accepted"; fi
    grep -q "refused" "$T/err" || die "no reason: $(cat "$T/err")"
    jq -e --arg d "$digest" '.accept | index($d) == null' "$(local_json vm1)" >/dev/null ||
        die "the digest of -monitor $bad is in local.json"
done
log "the VM's own files in the QMP directory are not another VM's"
manifest vm1 P "$(jq -n --arg p "$QMP/vm1.pid" '["qemu-system-x86_64", "-pidfile", $p]')"
accept vm1 P "$(accept vm1 P | sed -n 's/^digest: //p')" >/dev/null || die "own pidfile refused"

log "-- ends the options: a VM and a snapshot named -rf"
manifest -rf -x '["qemu-system-x86_64", "-m", "512"]'
accept -- -rf -x >"$T/review" || die "accept -- -rf -x failed"
digest=$(sed -n 's/^digest: //p' "$T/review")
accept -- -rf -x "$digest" >/dev/null || die "accept -- -rf -x DIGEST failed"
jq -e --arg d "$digest" '.accept | index($d) != null' "$(local_json -rf)" >/dev/null ||
    die "-rf's digest is not accepted"
if "$SAVEFS_BIN" accept --store "$STORE" -rf -x 2>/dev/null; then die "-rf taken as a name"; fi
[[ ! -e $T/pwned ]] || die "something ran the vde command"
log "PASS"
