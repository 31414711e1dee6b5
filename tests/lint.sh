#!/bin/bash
# The sources' form: every shell script passes shellcheck (warnings and errors) and every C file
# is as clang-format makes it. Run by ctest (label unit) and so by CI.
set -euo pipefail
cd "${1:?usage: lint.sh SRC_DIR}"
rc=0
mapfile -t scripts < <(git ls-files '*.sh' .ci/run tests/guest/init)
mapfile -t sources < <(git ls-files '*.c' '*.h')
if command -v shellcheck >/dev/null; then
    shellcheck -x -S warning "${scripts[@]}" || rc=1
else
    echo "lint: shellcheck not found (contrib/install-deps.sh installs it)" >&2
    rc=1
fi
if command -v clang-format >/dev/null; then
    clang-format --dry-run -Werror "${sources[@]}" || rc=1
else
    echo "lint: clang-format not found (contrib/install-deps.sh installs it)" >&2
    rc=1
fi
[[ $rc -eq 0 ]] && echo "lint: ${#scripts[@]} scripts and ${#sources[@]} C files clean"
exit $rc
