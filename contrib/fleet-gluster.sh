#!/bin/sh
# Makes the GlusterFS volume a fleet of savefs hosts shares as its store, and mounts it on this
# host (docs/fleet.md). Run on one server once for the volume, and on every host for its mount:
#
#   contrib/fleet-gluster.sh volume VOLUME HOST1:/BRICK HOST2:/BRICK HOST3:/BRICK
#   contrib/fleet-gluster.sh volume VOLUME HOST1:/BRICK HOST2:/BRICK ARBITER:/BRICK --arbiter
#   contrib/fleet-gluster.sh mount SERVER VOLUME [MOUNTPOINT]     # default /mnt/savefs-store
#   contrib/fleet-gluster.sh options VOLUME     # only the options, on a volume not yet started
#
# then on every host: savefs --store MOUNTPOINT/savefs --trust-key /etc/savefs/fleet.key
# --host NAME /mnt/savefs (the same fleet key on every host; NAME unique in the fleet).
# The peers must be probed already (gluster peer probe HOST); the bricks are directories on XFS
# filesystems of their own (mkfs.xfs -i size=512), one per server.
set -eu
# The CLI, as a command line: tests/e2e/gluster.sh points it at a glusterd of its own.
GLUSTER=${GLUSTER:-gluster}

usage() {
    sed -n '2,13p' "$0" >&2
    exit 2
}

volume() {
    vol=$1
    shift
    arbiter=
    bricks=
    for b in "$@"; do
        case $b in
        --arbiter) arbiter=1 ;;
        *) bricks="$bricks $b" ;;
        esac
    done
    # Replica 3, or 2 and an arbiter: a partition leaves a quorum on one side only, so that two
    # sides never both write (split brain); a replica 2 without arbiter could.
    # shellcheck disable=SC2086
    if [ -n "$arbiter" ]; then
        $GLUSTER volume create "$vol" replica 3 arbiter 1 $bricks
    else
        $GLUSTER volume create "$vol" replica 3 $bricks
    fi
    options "$vol"
    $GLUSTER volume start "$vol"
}

options() {
    vol=$1
    set_opt() {
        # shellcheck disable=SC2086
        $GLUSTER volume set "$vol" "$1" "$2" >/dev/null
    }
    # A write is acknowledged only once a quorum of bricks has it; without quorum the volume
    # turns read-only rather than diverge.
    set_opt cluster.quorum-type auto
    set_opt cluster.server-quorum-type server
    # O_DIRECT reaches the bricks as O_DIRECT (the virt profile's remote-dio=enable turns it into
    # buffered writes on the bricks; savefs fsyncs every file anyway, so either is durable).
    set_opt network.remote-dio disable
    set_opt performance.strict-o-direct on
    # What one host changes (a snapshot published or deleted) reaches the others' caches at
    # once rather than after md-cache's timeout (1 s).
    set_opt features.cache-invalidation on
    set_opt performance.cache-invalidation on
    # stat of a file answered by the brick that served its last write: sizes (which a restore
    # and an import check against the manifest) agree between hosts.
    set_opt cluster.consistent-metadata on
    # Leases (docs/fleet.md, "Never run a VM twice"): the bricks drop a silent client's locks
    # after keepalive-time + interval x count = 20 + 2 x 9 = 38 s (42 s at most, the TCP user
    # timeout), within the 60 s savefs promises; a client gives up on silent bricks after 20 s,
    # and savefs fences its QEMUs after --fence (15 s) first. Lock revocation stays off: it would
    # hand a lease that a live QEMU holds to another host.
    set_opt server.keepalive-time 20
    set_opt server.keepalive-interval 2
    set_opt server.keepalive-count 9
    set_opt server.tcp-user-timeout 42
    set_opt network.ping-timeout 20
    set_opt features.locks-revocation-secs 0
}

mount_volume() {
    server=$1 vol=$2 mnt=${3:-/mnt/savefs-store}
    mkdir -p "$mnt"
    mount -t glusterfs "$server:/$vol" "$mnt"
    mkdir -p "$mnt/savefs"
    echo "mounted $server:/$vol on $mnt; start savefs with --store $mnt/savefs"
}

[ $# -ge 2 ] || usage
cmd=$1
shift
case $cmd in
volume) [ $# -ge 4 ] || usage; volume "$@" ;;
mount) mount_volume "$@" ;;
options) options "$1" ;;
*) usage ;;
esac
