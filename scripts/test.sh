#!/usr/bin/env bash
# Installs what is needed, builds tierfs and runs every test suite.
#   scripts/test.sh                 all suites
#   scripts/test.sh --suite unit    extra arguments go to `meson test`
# Environment: BUILD_DIR (default build), TIERFS_REQUIRE_PRIVILEGED=1 turns
# skips for missing root, /dev/fuse or BPF into failures (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}

./scripts/setup.sh

setup_args=()
# In CI a missing qemu or clang fails the build instead of dropping the vm or fuzz suite.
[ "${CI:-}" = true ] && setup_args+=(-Dwerror=true -Dvm_tests=enabled -Dfuzz=enabled)
if [ -d "$build_dir/meson-private" ]; then
  meson setup --reconfigure "$build_dir" "${setup_args[@]}" >/dev/null
else
  meson setup "$build_dir" "${setup_args[@]}" >/dev/null
fi
ninja -C "$build_dir"

status=0
meson test -C "$build_dir" --print-errorlogs --num-processes "$(nproc)" "$@" || status=$?

# One closing line that any reader understands, counted from meson's JSON log.
python3 - "$build_dir/meson-logs/testlog.json" <<'PY'
import json, sys
counts = {}
with open(sys.argv[1]) as log:
    for line in log:
        result = json.loads(line)["result"]
        counts[result] = counts.get(result, 0) + 1
passed = counts.get("OK", 0) + counts.get("EXPECTEDFAIL", 0)
skipped = counts.get("SKIP", 0)
failed = sum(counts.values()) - passed - skipped
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
