#!/bin/bash
# Imports that come and go leave nothing behind: 10,000 mkdir/rmdir in restore/ keep savefs's
# resident memory bounded, and a lookup takes as long after them as before.
# shellcheck source=lib.sh
source "$SRC_DIR/tests/e2e/lib.sh"
command -v perl >/dev/null || { echo "SKIP: perl is needed"; exit 77; }
e2e_setup
# Under AddressSanitizer, freed memory waits in a quarantine and every thread (libfuse starts
# one per request here) leaves a record: RSS says nothing about savefs then, and each request
# is slow. The run then checks the freeing for memory errors over fewer imports.
asan=0
grep -qa __asan_init "$SAVEFS_BIN" && asan=1
middle=$((asan ? 1000 : 8000))
# shellcheck disable=SC2119
savefs_start
mkdir "$MNT/vm1"
pid=${SAVEFS_PIDS[-1]}

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"
}

# mkdir and rmdir of $2 imports in restore/, named from $1 on; prints the seconds it took.
churn() {
    perl -MTime::HiRes=time -e '
        my ($dir, $from, $n) = @ARGV;
        my $t = time;
        for my $i ($from .. $from + $n - 1) {
            mkdir("$dir/i$i") or die "mkdir i$i: $!\n";
            rmdir("$dir/i$i") or die "rmdir i$i: $!\n";
        }
        printf "%.3f\n", time - $t;' "$MNT/vm1/restore" "$1" "$2"
}

# Lookups of names in restore/ and snapshots/ that are not there: what every path walk pays.
lookups() {
    perl -MTime::HiRes=time -e '
        my ($dir) = @ARGV;
        my $t = time;
        for my $i (1 .. 500) { stat("$dir/restore/x$i"); stat("$dir/snapshots/x$i/main"); }
        printf "%.3f\n", time - $t;' "$MNT/vm1"
}

churn 0 500 >/dev/null # warm up: threads and arenas of the FUSE loop
rss0=$(rss_kib)
look0=$(lookups)
first=$(churn 1000 1000)
churn 2000 "$middle" >/dev/null
last=$(churn $((2000 + middle)) 1000)
rss1=$(rss_kib)
look1=$(lookups)
log "RSS ${rss0} -> ${rss1} KiB; 1000 mkdir/rmdir: ${first} s first, ${last} s last;" \
    "1000 lookups: ${look0} s before, ${look1} s after"
[[ -z $(find "$MNT/vm1/restore" -mindepth 1) ]] || die "restore/ lists $(find "$MNT/vm1/restore" -mindepth 1)"
((asan || rss1 - rss0 < 8192)) || die "savefs grew by $((rss1 - rss0)) KiB over 10,000 imports"
# Generous bounds: the machine is shared, but a scan of 10,000 records makes these 5x and more.
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 2 * a + 0.5) }' ||
    die "mkdir/rmdir slowed down from $first s to $last s per 1000"
awk -v a="$look0" -v b="$look1" 'BEGIN { exit !(b < 2 * a + 0.5) }' ||
    die "lookups slowed down from $look0 s to $look1 s"
log "PASS"
