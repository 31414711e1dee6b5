#!/bin/sh
# The whole test suite: installs dependencies, then builds and runs ctest three ways: plain (with
# valgrind over the unit tests), with AddressSanitizer and UndefinedBehaviorSanitizer, and the
# libFuzzer targets for a bounded time; Release is built with gcc and with clang, warnings as
# errors (as in every build here). `contrib/test.sh --quick` runs the plain pass only,
# `contrib/test.sh --unit` the unit tests only (a minute at most, no root needed).
# Further arguments go to ctest (e.g. -R core). In the plain and ASan passes a failed test runs
# once more, marked FLAKY in the log; failing twice fails the run.
set -eu
cd "$(dirname "$0")/.."
quick=
if [ "${1:-}" = --quick ]; then
    quick=1
    shift
fi
jobs=$(nproc)
if [ "${1:-}" = --unit ]; then
    # The fast tier: the unit tests alone, without root once the dependencies are there.
    shift
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAVEFS_WERROR=ON
    cmake --build build -j"$jobs"
    exec ctest --test-dir build --output-on-failure -j"$jobs" -L unit "$@"
fi
contrib/install-deps.sh

echo "==== plain build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAVEFS_WERROR=ON
cmake --build build -j"$jobs"
# A failed test runs once more, named in the log as FLAKY, as in the ASan pass: the e2e tests run
# real QEMUs, mounts and guests two at a time on a 2-core machine, and their timing races were
# found one red run at a time (each fixed where found: the git log names them). A test that fails
# twice fails the run.
if ! ctest --test-dir build --output-on-failure -j2 "$@"; then
    echo "==== FLAKY? the plain pass's failed tests, once more"
    ctest --test-dir build --output-on-failure --rerun-failed
fi
[ -n "$quick" ] && exit 0

echo "==== AddressSanitizer + UndefinedBehaviorSanitizer build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSAVEFS_SANITIZE=ON -DSAVEFS_WERROR=ON
cmake --build build-asan -j"$jobs"
# Guests fill less memory here: snapshots copied through an instrumented savefs are slow. The two
# tests that copy whole snapshots many times over (cp -a, tar, rsync, between hosts) take over
# 10 minutes each under ASan and run in the plain pass only; test_trust_restore covers the import
# path under ASan. test_debian13, test_upgrade and test_package build their own savefs (in a
# Debian 13 root, or as the .deb): once is enough. The fleet's tests (a GlusterFS volume),
# libvirt's (libvirtd), the checkpoints' of real disks and of a memory-writing guest, and the page
# server's own (it is not savefs) run in the plain pass only: their savefs code runs under ASan in
# test_ckpt_faults, test_lazy_restore and the unit tests (test_lease, test_orch).
asan_ctest() {
    GUEST_MIB=64 ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
        ctest --test-dir build-asan --output-on-failure "$@"
}
# A failed test runs once more, named in the log as FLAKY: once in about five runs savefs under
# ASan aborted in glibc at a worker thread's exit ("malloc assertion failure in
# __malloc_arena_thread_freeres", test_concurrency), with no sanitizer report; not understood yet.
if ! asan_ctest -j2 -E 'test_portable|test_two_hosts|test_debian13|test_upgrade|test_package|test_fleet_|test_libvirt|test_ckpt_reflink|test_ckpt_overlay|test_checkpoint_mem|test_lazy_pager|test_lazy_qemu10' "$@"; then
    echo "==== FLAKY? the ASan pass's failed tests, once more"
    asan_ctest --rerun-failed
fi

# Distributions build Release with their own compiler: both must build it without a warning.
for cc in gcc clang; do
    echo "==== Release build with $cc"
    CC=$cc cmake -S . -B "build-release-$cc" -DCMAKE_BUILD_TYPE=Release -DSAVEFS_WERROR=ON
    cmake --build "build-release-$cc" -j"$jobs"
done

echo "==== libFuzzer targets"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSAVEFS_FUZZ=ON -DSAVEFS_WERROR=ON
cmake --build build-fuzz -j"$jobs"
# Six targets (manifest, words, QEMU options, local.json, page index, seek table) of 30 s each,
# two at a time: 90 s.
ctest --test-dir build-fuzz --output-on-failure -j2 "$@"
