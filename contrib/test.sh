#!/bin/sh
# The whole test suite: installs dependencies, builds into build/ and runs ctest.
# Extra arguments go to ctest (e.g. -R core).
set -eu
cd "$(dirname "$0")/.."
contrib/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j2 --timeout 900 "$@"
