#!/bin/bash
# For test_lazy_restore.sh: the snapshot's manifest changes after savefs decided to trust it and
# before the page server reads it: a sibling snapshot's manifest (plain's) is copied over it, then
# PAGER_BIN runs with the job's arguments. The page server must refuse it (--digest).
dir=${*: -2:1}
cp "$dir/../plain/manifest.json" "$dir/manifest.json" || exit 70
exec "$PAGER_BIN" "$@"
