#!/bin/bash
# Two hosts, A and B: two savefs instances, each with its own store, QMP directory and mount, in
# network namespaces joined by a veth pair (plain processes and a pipe where namespaces cannot be
# made). Both trust the fleet key; B maps A's paths to its own (--path-map). A guest saved on A
# is carried to B by cp -r between the mounts, by tar over the network (nc on the veth), and by a
# tar archive file; each time B imports it into restore/ and the guest goes on verifying its
# memory on B. The last one is saved on B and carried back to A the same way.
source "$SRC_DIR/tests/e2e/lib.sh"
command -v getfattr >/dev/null || { echo "SKIP: getfattr (attr) is needed"; exit 77; }
# shellcheck disable=SC2034 # read by guest.sh
GUEST_MEM_MB=192 GUEST_MIB=48
e2e_setup
A=$T/a B=$T/b
NS_A=sfs-a-$$ NS_B=sfs-b-$$ NET=0 PORT=7123
IP_B=10.$((RANDOM % 200 + 20)).$((RANDOM % 250)).2

two_cleanup() {
    local rc=$? h pid
    set +e
    for h in "$A" "$B"; do
        pid=$(cat "$h/qmp/vm1.pid" 2>/dev/null) && kill -9 "$pid" 2>/dev/null
        mounted "$h/mnt" && fusermount3 -uz "$h/mnt"
    done
    if ((NET)); then
        ip netns del "$NS_A"
        ip netns del "$NS_B"
    fi
    (exit "$rc")
    e2e_cleanup
}
trap two_cleanup EXIT

# Runs "$@" on host $1 (a or b): in its network namespace when there is one.
on_host() {
    local ns=$NS_A
    [[ $1 == b ]] && ns=$NS_B
    shift
    if ((NET)); then
        nsenter --net="/run/netns/$ns" "$@"
    else
        "$@"
    fi
}

# Two namespaces joined by a veth pair, A at .1 and B at .2; on any failure, none.
make_network() {
    if ip netns add "$NS_A" 2>/dev/null && ip netns add "$NS_B" 2>/dev/null &&
        ip link add "va$$" type veth peer name "vb$$" 2>/dev/null &&
        ip link set "va$$" netns "$NS_A" && ip link set "vb$$" netns "$NS_B" &&
        ip -n "$NS_A" addr add "${IP_B%.2}.1/24" dev "va$$" &&
        ip -n "$NS_B" addr add "$IP_B/24" dev "vb$$" &&
        ip -n "$NS_A" link set "va$$" up && ip -n "$NS_B" link set "vb$$" up &&
        ip -n "$NS_A" link set lo up && ip -n "$NS_B" link set lo up; then
        NET=1
        return 0
    fi
    ip netns del "$NS_A" 2>/dev/null
    ip netns del "$NS_B" 2>/dev/null
    return 1
}

# Makes host $1's directories, its copy of the guest's kernel, and its path map from host $2.
make_host() {
    local dir=$T/$1 other=$T/$2
    mkdir -p "$dir/store" "$dir/qmp" "$dir/mnt" "$dir/images"
    cp "$GUEST_DIR/vmlinuz" "$GUEST_DIR/initramfs.cpio.gz" "$dir/images/"
    printf '{"%s": "%s"}\n' "$other" "$dir" >"$dir/paths.json"
}

# Points the helpers of lib.sh (STORE, QMP, MNT) at host $1.
use_host() {
    STORE=$T/$1/store QMP=$T/$1/qmp MNT=$T/$1/mnt
}

start_host() {
    local dir=$T/$1
    savefs_spawn "$dir/mnt" on_host "$1" "$SAVEFS_BIN" -f --store "$dir/store" \
        --qmp-dir "$dir/qmp" --trust-key "$T/fleet.key" --path-map "$dir/paths.json" "$dir/mnt"
}

# Waits until vm1 runs on host $1 (restored from an import), then follows its serial log.
wait_restored() {
    use_host "$1"
    for _ in $(seq 300); do
        vm_pid vm1 >/dev/null && [[ $(vm_state vm1) == running ]] && break
        sleep 0.1
    done
    [[ $(vm_state vm1) == running ]] || die "vm1 not restored on $1: $(cat "$MNT/vm1/status")"
    printf '%s\t%s\n' "$(vm_pid vm1)" "$T/$1/vm1.serial" >>"$GUEST_PID_FILE"
    guest_wait_pass_above "$T/$1/vm1.serial" "$pass" 60 || die "vm1 on $1: no pass above $pass"
    [[ $(guest_seed "$T/$1/vm1.serial") == "$seed" ]] || die "vm1 on $1: another seed"
    log "vm1 verifies its memory on $1 past pass $pass with seed $seed"
}

# Saves vm1 on host $1 as snapshot $2 and waits for its QEMU to quit.
save_on() {
    use_host "$1"
    echo "name=$2" >"$MNT/vm1/save" || die "save on $1 failed: $(cat "$MNT/vm1/status")"
    vm_wait_gone vm1 || die "vm1 did not quit on $1"
}

if make_network; then
    log "hosts in network namespaces $NS_A and $NS_B, B at $IP_B"
else
    log "no network namespaces here: plain processes, a pipe for the network"
fi
head -c 32 /dev/urandom >"$T/fleet.key"
chmod 600 "$T/fleet.key"
make_host a b
make_host b a
start_host a
start_host b

log "a guest on A, saved there"
if ((NET)); then
    # savefs finds VMs in /proc/net/unix, which shows the sockets of its own namespace only.
    printf '#!/bin/sh\nexec nsenter --net=/run/netns/%s %s "$@"\n' "$NS_A" \
        "$(command -v "$GUEST_QEMU")" >"$T/qemu-on-a"
    chmod +x "$T/qemu-on-a"
    GUEST_QEMU=$T/qemu-on-a
fi
GUEST_DIR=$A/images guest_start vm1 "$A/qmp" "$A/vm1.serial" >/dev/null
guest_wait_ready "$A/vm1.serial" 120 || die "vm1 did not boot on A"
guest_wait_pass_above "$A/vm1.serial" 0 60 || die "vm1 does not verify its memory on A"
pass=$(guest_last_pass "$A/vm1.serial")
seed=$(guest_seed "$A/vm1.serial")
save_on a s1
mkdir "$B/mnt/vm1"

log "1: cp -r between the mounts into B's restore/"
cp -r "$A/mnt/vm1/snapshots/s1" "$B/mnt/vm1/restore/"
wait_restored b
getfattr --only-values -n user.savefs.trust "$B/mnt/vm1/snapshots/s1" |
    grep -q "^ok: signed with the fleet's key" || die "B does not trust s1 by the fleet key"
save_on b b1

log "2: tar over the network into B's restore/"
if ((NET)) && command -v nc >/dev/null; then
    on_host b nc -l "$IP_B" "$PORT" >"$T/net.tar" &
    ncpid=$!
    for _ in $(seq 50); do
        on_host b ss -ltn | grep -q ":$PORT " && break
        sleep 0.1
    done
    tar -C "$A/mnt/vm1/snapshots" --transform 's,^s1,s1net,' -cf - s1 |
        on_host a nc -N "$IP_B" "$PORT" || die "nc to B failed"
    wait "$ncpid" || die "nc on B failed"
    tar -C "$B/mnt/vm1/restore" -xf "$T/net.tar" || die "tar x on B failed"
else
    tar -C "$A/mnt/vm1/snapshots" --transform 's,^s1,s1net,' -cf - s1 |
        tar -C "$B/mnt/vm1/restore" -xf - || die "tar through a pipe failed"
fi
wait_restored b
save_on b b2

log "3: a tar archive file into B's restore/, and back to A"
tar -C "$A/mnt/vm1/snapshots" --transform 's,^s1,s1file,' -cf "$T/s1.tar" s1
tar -C "$B/mnt/vm1/restore" -xf "$T/s1.tar" || die "tar x of the archive on B failed"
wait_restored b
pass=$(guest_last_pass "$B/vm1.serial")
save_on b back
tar -C "$B/mnt/vm1/snapshots" -cf "$T/back.tar" back
tar -C "$A/mnt/vm1/restore" -xf "$T/back.tar" || die "tar x of the archive on A failed"
wait_restored a
log "PASS"
