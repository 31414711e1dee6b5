# shellcheck shell=bash
# A GlusterFS fleet on one machine, to be sourced by e2e tests (after lib.sh and e2e_setup): a
# replica 3 volume whose bricks lie on an XFS filesystem on a loop device, served by a glusterd of
# its own in a "server" network namespace, and hosts, each a network namespace of its own joined
# to the server's bridge by a veth pair, each with its OWN glusterfs FUSE mount of the volume.
# Taking a host's link down (gluster_cut) cuts that host off from every brick.
#
#   source "$SRC_DIR/tests/e2e/lib.sh"
#   source "$SRC_DIR/tests/e2e/gluster.sh"
#   e2e_setup
#   gluster_start a b c          # glusterd, the volume, hosts a b c with $T/gl/a/vol ... mounted
#   on_host a CMD...             # runs CMD in host a's network namespace
#   gluster_cut b; gluster_join b
#   (trap: gluster_stop runs from e2e's cleanup through gluster_start's own trap)
#
# Everything runs in namespaces and directories of this test alone, so that tests can run side by
# side: glusterd's state (working-directory), its run directory and CLI socket are under
# $GL, its port 24007 and the bricks' ports are in the server's namespace. Every process is
# stopped by pid: those of the namespaces (ip netns pids) and the FUSE clients (their pidfiles).
# The volume has the options of contrib/fleet-gluster.sh (docs/fleet.md).
# Settings: GLUSTER_OPTS (array of "key value" pairs set on the volume before it starts, after those),
# GLUSTER_XFS_MB (size of the bricks' filesystem, default 3072).

GL_HOSTS=()
GL_UP=0
GL_NS_SRV=

_gl_need() {
    local c
    [[ $(id -u) -eq 0 ]] || { echo "SKIP: GlusterFS tests run as root" >&2; exit 77; }
    for c in glusterd gluster glusterfs mkfs.xfs ip nsenter; do
        command -v "$c" >/dev/null || { echo "SKIP: $c is not installed (contrib/install-deps.sh)" >&2; exit 77; }
    done
}

# The namespace of host $1.
gl_ns() {
    echo "sfs-gl$1-$$"
}

# on_host HOST CMD...: runs CMD in host HOST's network namespace (the mounts are everyone's).
on_host() {
    local h=$1
    shift
    nsenter --net="/run/netns/$(gl_ns "$h")" "$@"
}

# on_server CMD...: runs CMD beside glusterd.
on_server() {
    nsenter --net="/run/netns/$GL_NS_SRV" "$@"
}

# The gluster CLI, talking to this test's glusterd.
gl_cli() {
    on_server gluster --mode=script --glusterd-sock="$GL/run/glusterd.socket" "$@"
}

# The server namespace with a bridge at $GL_NET.1; host namespaces are added by _gl_host.
_gl_network() {
    GL_NET=10.$((RANDOM % 200 + 20)).$((RANDOM % 250))
    GL_NS_SRV=sfs-glsrv-$$
    GL_SRV_IP=$GL_NET.1
    ip netns add "$GL_NS_SRV"
    ip -n "$GL_NS_SRV" link set lo up
    ip -n "$GL_NS_SRV" link add br0 type bridge
    ip -n "$GL_NS_SRV" addr add "$GL_SRV_IP/24" dev br0
    ip -n "$GL_NS_SRV" link set br0 up
}

# Host $1 (the Nth, from 2): its namespace, a veth to the bridge, its address $GL_NET.(10+N).
_gl_host() {
    local h=$1 n=$2 ns
    ns=$(gl_ns "$h")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add "gl$h$$" netns "$ns" type veth peer name "br$h" netns "$GL_NS_SRV"
    ip -n "$ns" link set "gl$h$$" name eth0
    ip -n "$ns" addr add "$GL_NET.$((10 + n))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$GL_NS_SRV" link set "br$h" master br0
    ip -n "$GL_NS_SRV" link set "br$h" up
    GL_HOSTS+=("$h")
}

# Host $1's address.
gl_host_ip() {
    ip -n "$(gl_ns "$1")" -4 -o addr show dev eth0 | awk '{ sub(/\/.*/, "", $4); print $4 }'
}

# The bricks' filesystem: XFS (as GlusterFS recommends: it needs xattrs and large inodes) on a
# loop device, three brick directories in it.
_gl_bricks() {
    truncate -s "${GLUSTER_XFS_MB:-3072}M" "$GL/bricks.img"
    mkfs.xfs -q -f -i size=512 "$GL/bricks.img"
    mkdir -p "$GL/bricks"
    mount -o loop,noatime "$GL/bricks.img" "$GL/bricks"
    LOOP_MOUNTS+=("$GL/bricks")
    mkdir -p "$GL/bricks/b1" "$GL/bricks/b2" "$GL/bricks/b3"
}

# glusterd with its state, run directory and CLI socket under $GL, in the server namespace.
_gl_glusterd() {
    mkdir -p "$GL/state" "$GL/run" "$GL/log"
    cat >"$GL/glusterd.vol" <<EOF
volume management
    type mgmt/glusterd
    option working-directory $GL/state
    option run-directory $GL/run
    option glusterd-sockfile $GL/run/glusterd.socket
    option transport-type socket
    option transport.socket.listen-port 24007
    option transport.socket.read-fail-log off
    option ping-timeout 0
    option event-threads 1
end-volume
EOF
    on_server glusterd -f "$GL/glusterd.vol" -p "$GL/glusterd.pid" -l "$GL/log/glusterd.log"
    for _ in $(seq 100); do
        gl_cli volume list >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "glusterd did not answer: $(tail -n 5 "$GL/log/glusterd.log")"
}

# The replica 3 volume $GL_VOL: bricks on one node need "force". Options before the start.
_gl_volume() {
    local kv
    GL_VOL=sfs$$
    gl_cli volume create "$GL_VOL" replica 3 "$GL_SRV_IP:$GL/bricks/b1" "$GL_SRV_IP:$GL/bricks/b2" \
        "$GL_SRV_IP:$GL/bricks/b3" force >/dev/null || die "gluster volume create failed"
    # The options docs/fleet.md asks for, as contrib/fleet-gluster.sh sets them.
    GLUSTER="nsenter --net=/run/netns/$GL_NS_SRV gluster --mode=script --glusterd-sock=$GL/run/glusterd.socket" \
        sh "$SRC_DIR/contrib/fleet-gluster.sh" options "$GL_VOL" || die "the fleet's volume options failed"
    for kv in ${GLUSTER_OPTS[@]+"${GLUSTER_OPTS[@]}"}; do
        # shellcheck disable=SC2086 # "key value"
        gl_cli volume set "$GL_VOL" $kv >/dev/null || die "gluster volume set $kv failed"
    done
    gl_cli volume start "$GL_VOL" >/dev/null || die "gluster volume start failed"
    for _ in $(seq 150); do
        [[ $(gl_cli volume status "$GL_VOL" detail 2>/dev/null | grep -c '^Online.*: Y') -eq 3 ]] &&
            return 0
        sleep 0.2
    done
    die "the bricks did not come online: $(gl_cli volume status "$GL_VOL" 2>&1)"
}

# gl_mount HOST: host HOST's own FUSE mount of the volume, at $GL/HOST/vol.
gl_mount() {
    local h=$1 mnt=$GL/$1/vol
    mkdir -p "$mnt"
    on_host "$h" glusterfs --process-name fuse --volfile-server="$GL_SRV_IP" \
        --volfile-id="$GL_VOL" --pid-file="$GL/$h/glusterfs.pid" \
        --log-file="$GL/log/client-$h.log" "$mnt" || die "glusterfs mount on $h failed"
    for _ in $(seq 100); do
        mountpoint -q "$mnt" && stat -f "$mnt" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "the volume did not mount on $h: $(tail -n 5 "$GL/log/client-$h.log")"
}

# The EXIT trap: savefs mounts under $T detached (a savefs is killed with its namespace), the
# fleet stopped, then lib.sh's cleanup.
_gl_cleanup() {
    local rc=$? m
    set +e
    awk -v t="$T/" 'index($2, t) == 1 && $3 ~ /^fuse/ && $3 != "fuse.glusterfs" { print $2 }' \
        /proc/mounts | while read -r m; do fusermount3 -uz "$m"; done
    gluster_stop
    (exit "$rc")
    e2e_cleanup
}

# gluster_start HOST...: the whole fleet; host H's mount of the volume is $GL/H/vol.
gluster_start() {
    local h n=2
    _gl_need
    GL=$T/gl
    mkdir -p "$GL"
    GL_UP=1
    trap _gl_cleanup EXIT
    _gl_network
    for h in "$@"; do
        _gl_host "$h" "$n"
        n=$((n + 1))
    done
    _gl_bricks
    _gl_glusterd
    _gl_volume
    for h in "$@"; do
        gl_mount "$h"
    done
    log "GlusterFS volume $GL_VOL (replica 3) at $GL_SRV_IP, mounted on ${*}"
}

# gluster_cut HOST: takes host HOST's link down: it reaches no brick and no other host.
gluster_cut() {
    ip -n "$GL_NS_SRV" link set "br$1" down
}

# gluster_join HOST: brings host HOST's link back.
gluster_join() {
    ip -n "$GL_NS_SRV" link set "br$1" up
}

# Kills the processes of namespace $1 by pid, and waits for them.
_gl_kill_ns() {
    local pid pids
    pids=$(ip netns pids "$1" 2>/dev/null) || return 0
    for pid in $pids; do kill -9 "$pid" 2>/dev/null; done
    for pid in $pids; do
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    done
}

# gluster_stop: unmounts the hosts' mounts, stops every process of the namespaces (savefs, QEMU,
# the clients, glusterd, the bricks, the self-heal daemon) by pid, deletes the namespaces. The
# bricks' filesystem is unmounted by e2e_cleanup (LOOP_MOUNTS). Idempotent.
gluster_stop() {
    local h pid
    ((GL_UP)) || return 0
    GL_UP=0
    # A cut-off host's client would wait out its ping-timeout on the unmount's flush.
    for h in ${GL_HOSTS[@]+"${GL_HOSTS[@]}"}; do
        gluster_join "$h" 2>/dev/null
    done
    for h in ${GL_HOSTS[@]+"${GL_HOSTS[@]}"}; do
        mounted "$GL/$h/vol" && { umount "$GL/$h/vol" 2>/dev/null || umount -l "$GL/$h/vol"; }
        pid=$(cat "$GL/$h/glusterfs.pid" 2>/dev/null) && kill "$pid" 2>/dev/null
        _gl_kill_ns "$(gl_ns "$h")"
        ip netns del "$(gl_ns "$h")" 2>/dev/null
    done
    if [[ -n $GL_NS_SRV ]]; then
        _gl_kill_ns "$GL_NS_SRV"
        ip netns del "$GL_NS_SRV" 2>/dev/null
    fi
    # The bricks log where glusterd puts every brick's log, named after the brick's path.
    pid=${GL#/}
    rm -f /var/log/glusterfs/bricks/"${pid//\//-}"-*
    return 0
}
