#!/bin/bash
# The store on GlusterFS, shared by two hosts A and B (network namespaces, each with its own
# FUSE mount of a replica 3 volume and its own savefs, QMP directory and mount: gluster.sh). The
# volume has no RENAME_NOREPLACE, so snapshots are published by a claim (store_publish).
#  - B lists and reads snapshots/ in a loop while A saves: it never sees a partial snapshot;
#  - a snapshot saved on A restores on B straight from the store (the fleet key), no copy;
#  - a snapshot deleted on A is gone on B;
#  - A and B saving VMs of the same name as the same snapshot at once: one publishes, the other
#    gets EEXIST, and the snapshot is whole; with default names at once, both publish, under
#    two names.
source "$SRC_DIR/tests/e2e/lib.sh"
source "$SRC_DIR/tests/e2e/gluster.sh"
# shellcheck disable=SC2034 # read by guest.sh
GUEST_MEM_MB=192 GUEST_MIB=48
e2e_setup
gluster_start a b
head -c 32 /dev/urandom >"$T/fleet.key"
chmod 600 "$T/fleet.key"

# Host $1's savefs: its store is the shared volume's savefs/, the rest is its own.
start_host() {
    mkdir -p "$T/$1/qmp" "$T/$1/mnt"
    savefs_spawn "$T/$1/mnt" on_host "$1" "$SAVEFS_BIN" -f --host "$1" --store "$GL/$1/vol/savefs" \
        --qmp-dir "$T/$1/qmp" --trust-key "$T/fleet.key" "$T/$1/mnt"
}

# A QEMU started by hand on host $1 runs in its namespace: savefs finds VMs in /proc/net/unix,
# which shows the sockets of its own namespace only.
qemu_on() {
    printf '#!/bin/sh\nexec nsenter --net=/run/netns/%s %s "$@"\n' "$(gl_ns "$1")" \
        "$(command -v qemu-system-x86_64)" >"$T/qemu-on-$1"
    chmod +x "$T/qemu-on-$1"
    echo "$T/qemu-on-$1"
}

start_host a
start_host b
grep -q "snapshots are published by claiming their name" "$T/savefs.log" ||
    die "savefs did not say how it publishes on GlusterFS: $(cat "$T/savefs.log")"
A=$T/a/mnt B=$T/b/mnt

log "vm1 on A"
GUEST_QEMU=$(qemu_on a) guest_start vm1 "$T/a/qmp" "$T/vm1.serial" >/dev/null
guest_wait_ready "$T/vm1.serial" 120 || die "vm1 did not boot on A"
guest_wait_pass_above "$T/vm1.serial" 0 60 || die "vm1 does not verify its memory on A"

# B's reader: every snapshot it lists has its manifest, and every file the manifest names is
# there with its size; reads of the manifest and of a file's first and last bytes succeed.
reader() {
    local s f size n=0
    while [[ ! -e $T/stop ]]; do
        for s in "$B"/vm1/snapshots/*/; do
            [[ -d $s ]] || continue
            s=${s%/}
            jq -e .files "$s/manifest.json" >/dev/null 2>&1 ||
                { echo "no manifest: $s $(ls -la "$s" 2>&1)" >>"$T/partial"; continue; }
            while read -r f size; do
                [[ $(stat -c %s "$s/$f" 2>/dev/null) == "$size" ]] &&
                    tail -c 4096 "$s/$f" >/dev/null ||
                    echo "$s/$f: not $size bytes: $(ls -la "$s" 2>&1)" >>"$T/partial"
            done < <(jq -r '.files[] | "\(.name) \(.size)"' "$s/manifest.json")
            n=$((n + 1))
        done
    done
    echo "$n" >"$T/seen"
}
reader &
reader_pid=$!

log "A saves three times (keep-running, then zstd, then the default: vm1 quits); B reads"
pass=$(guest_last_pass "$T/vm1.serial")
seed=$(guest_seed "$T/vm1.serial")
echo "2 name=s1 keep-running" >"$A/vm1/save" || die "save s1 on A: $(cat "$A/vm1/status")"
echo "4 name=s2 keep-running compress=zstd" >"$A/vm1/save" || die "save s2 on A: $(cat "$A/vm1/save")"
echo "4 name=fin" >"$A/vm1/save" || die "save fin on A: $(cat "$A/vm1/save")"
touch "$T/stop"
wait "$reader_pid"
[[ ! -s $T/partial ]] || die "B saw partial snapshots: $(head -n 5 "$T/partial")"
(($(cat "$T/seen") > 0)) || die "B's reader never saw a snapshot"
log "B read $(cat "$T/seen") whole snapshots while A saved, none partial"
[[ -z $(find "$GL/a/vol/savefs/vm1/.tmp" -mindepth 1 2>/dev/null) ]] || die "A left a partial save"
[[ -z $(find "$GL/a/vol/savefs/vm1/snapshots" -maxdepth 1 -perm -1000 -type d) ]] ||
    die "a claim is left in the store"

log "fin restores on B from the shared store"
# B's client sees a new entry up to a second late, and A's savefs lets go of the lease of the
# VM that quit at its watch's next tick (about a second).
for _ in $(seq 150); do
    [[ -e $B/vm1/snapshots/fin && $(jq -r '.lease.host // ""' "$B/vm1/status") != a ]] && break
    sleep 0.1
done
mv "$B/vm1/snapshots/fin" "$B/vm1/restore/" || die "restore on B: $(cat "$B/vm1/status")"
getfattr --absolute-names --only-values -n user.savefs.trust "$B/vm1/snapshots/fin" |
    grep -q "^ok: signed with the fleet's key" || die "B does not trust fin by the fleet key"
pid=$(jq -r .pid "$B/vm1/status")
printf '%s\t%s\n' "$pid" "$T/vm1.serial" >>"$GUEST_PID_FILE"
[[ $(ip netns identify "$pid") == "$(gl_ns b)" ]] || die "vm1 does not run on B"
guest_wait_pass_above "$T/vm1.serial" "$pass" 60 || die "vm1 on B: no pass above $pass"
[[ $(guest_seed "$T/vm1.serial") == "$seed" ]] || die "vm1 on B: another seed: a fresh boot?"

log "s1 deleted on A is gone on B"
rm -r "$A/vm1/snapshots/s1" || die "rm -r s1 on A"
for _ in $(seq 30); do
    [[ -e $B/vm1/snapshots/s1 ]] || break
    sleep 0.1
done
[[ ! -e $B/vm1/snapshots/s1 ]] || die "B still shows s1 3 s after A deleted it"
ls "$B/vm1/snapshots" | grep -qx s1 && die "B lists s1 after A deleted it"

log "A and B save their twin as the same snapshot name at once"
for h in a b; do
    setsid "$(qemu_on "$h")" -name twin -machine pc -accel tcg -m 32 -nodefaults -display none \
        -qmp "unix:$T/$h/qmp/twin.qmp,server=on,wait=off" -pidfile "$T/$h/qmp/twin.pid" \
        </dev/null >"$T/twin-$h.log" 2>&1 &
done
for h in a b; do
    for _ in $(seq 100); do
        [[ -e $T/$h/mnt/twin/save ]] && break
        sleep 0.1
    done
done
for i in 1 2 3; do
    savers=()
    for h in a b; do
        (echo "1 name=dup$i keep-running" >"$T/$h/mnt/twin/save" 2>"$T/dup$i-$h.err" &&
            echo ok >"$T/dup$i-$h") &
        savers+=("$!")
    done
    wait "${savers[@]}" || true # the one told EEXIST fails
    n=$(cat "$T"/dup"$i"-[ab] 2>/dev/null | wc -l)
    ((n == 1)) || die "dup$i: $n hosts published it"
    grep -h -q "File exists" "$T"/dup"$i"-[ab].err || die "dup$i: the other save's error: $(cat "$T"/dup"$i"-[ab].err)"
    # Seen from A too, once its caches of the claim expire (a second: docs/fleet.md).
    for _ in $(seq 50); do
        jq -e '.snapshot == "dup'"$i"'"' "$A/twin/snapshots/dup$i/manifest.json" >/dev/null 2>&1 &&
            break
        sleep 0.1
    done
    jq -e '.snapshot == "dup'"$i"'"' "$A/twin/snapshots/dup$i/manifest.json" >/dev/null ||
        die "dup$i: no whole snapshot seen from A"
    log "dup$i: published by $(basename "$(ls "$T"/dup"$i"-[ab])" | cut -d- -f2), the other told EEXIST"
done
# The same with default names, at the start of a second: both publish, the second to claim
# the name moving on to -2 (store_default_name_next) instead of failing with EEXIST.
for i in 1 2 3; do
    while (($(date +%-N) > 200000000)); do sleep 0.02; done
    savers=()
    for h in a b; do
        echo "1 keep-running" >"$T/$h/mnt/twin/save" 2>"$T/def$i-$h.err" &
        savers+=("$!")
    done
    for h in 0 1; do
        wait "${savers[$h]}" || die "default name $i: a save failed: $(cat "$T"/def"$i"-[ab].err)"
    done
    names=()
    for h in a b; do
        names+=("$(cut -d' ' -f2 "$T/$h/mnt/twin/save")")
        [[ ${names[-1]} =~ ^[0-9]{8}-[0-9]{6}(-[0-9]+)?$ ]] || die "default name $i: ${names[-1]}"
    done
    [[ ${names[0]} != "${names[1]}" ]] || die "default name $i: both published ${names[0]}"
    for n in "${names[@]}"; do
        for _ in $(seq 50); do
            jq -e --arg n "$n" '.snapshot == $n' "$A/twin/snapshots/$n/manifest.json" >/dev/null 2>&1 &&
                break
            sleep 0.1
        done
        jq -e --arg n "$n" '.snapshot == $n' "$A/twin/snapshots/$n/manifest.json" >/dev/null ||
            die "default name $i: no whole snapshot $n seen from A"
    done
    log "default names $i: a published ${names[0]}, b ${names[1]}"
done
for h in a b; do
    kill -9 "$(cat "$T/$h/qmp/twin.pid")"
done
log "PASS"
