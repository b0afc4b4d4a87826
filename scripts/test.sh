#!/usr/bin/env bash
# Installs what is needed, builds tierfs and runs every test suite.
#   scripts/test.sh                 all suites
#   scripts/test.sh --suite unit    extra arguments go to `meson test`
# Environment: BUILD_DIR (default build), TIERFS_REQUIRE_PRIVILEGED=1 turns
# skips for missing root, /dev/fuse or BPF into failures (CI sets it).
# TIERFS_BESIDE_TESTS=COMMAND runs COMMAND (bash) beside the suites once the
# main build is done, at the lowest CPU priority, and fails the run if it
# fails: .ci/run puts the style gate there. The suites run mostly one test at
# a time (is_parallel: false) and leave CPU idle while a test waits on a
# mount, a kill -9 or a daemon; each phase line says how busy the CPUs were.
#
# The build uses the libfuse 3.18 that setup.sh builds where the system's is
# older (Debian 12: 3.14), and with TIERFS_REQUIRE_PRIVILEGED=1 the run turns
# on the kernel's FUSE over io_uring (fuse.enable_uring, put back at the end),
# so every mount in the suites runs on rings as a site's would. In CI
# (CI=true) the suites that mount then run again on a second build against
# the system's libfuse, the one a site without the private build has.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
system_build_dir=${build_dir}-libfuse-system

# cpu_ticks: busy and total jiffies of all CPUs so far (/proc/stat's first line).
cpu_ticks() {
  awk '/^cpu /{total = 0; for (i = 2; i <= NF; i++) total += $i; print total - $5 - $6, total; exit}' /proc/stat
}
# phase NAME: one line with the seconds since the last phase and how busy the
# CPUs were meanwhile, so a slow CI run says where it went.
phase_start=$SECONDS
read -r busy_start total_start < <(cpu_ticks)
phase() {
  local busy total
  read -r busy total < <(cpu_ticks)
  echo "test: $1 took $((SECONDS - phase_start)) s, CPUs $(((busy - busy_start) * 100 / (total - total_start + 1))) % busy"
  phase_start=$SECONDS
  busy_start=$busy total_start=$total
}

./scripts/setup.sh
phase setup

uring_param=/sys/module/fuse/parameters/enable_uring
uring_saved='' beside_pid='' beside_log=''
# At any exit: the kernel's uring setting back, and what runs beside the suites stopped.
on_exit() {
  [ -z "$beside_pid" ] || kill "$beside_pid" 2>/dev/null || true
  [ -z "$beside_log" ] || rm -f "$beside_log"
  [ -z "$uring_saved" ] || echo "$uring_saved" >"$uring_param"
}
trap on_exit EXIT
if [ "${TIERFS_REQUIRE_PRIVILEGED:-0}" = 1 ] && [ -w "$uring_param" ]; then
  uring_saved=$(cat "$uring_param")
  echo Y >"$uring_param"
fi

setup_args=()
# In CI a missing qemu or clang fails the build instead of dropping the vm or fuzz suite.
[ "${CI:-}" = true ] && setup_args+=(-Dwerror=true -Dvm_tests=enabled -Dfuzz=enabled)
# configure DIR [OPTION...]: a new build directory, or an existing one with these options.
configure() {
  local dir=$1
  shift
  if [ -d "$dir/meson-private" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

configure "$build_dir" "${setup_args[@]}"
ninja -C "$build_dir"
phase "build ($build_dir)"

if [ -n "${TIERFS_BESIDE_TESTS:-}" ]; then
  beside_log=$(mktemp)
  nice -n 19 bash -c "$TIERFS_BESIDE_TESTS" >"$beside_log" 2>&1 &
  beside_pid=$!
  echo "test: started beside the suites (nice 19): $TIERFS_BESIDE_TESTS"
fi

status=0
logs=("$build_dir/meson-logs/testlog.json")
# In CI the main build must have FUSE over io_uring (integration_io_uring fails otherwise).
[ "${CI:-}" = true ] && export TIERFS_EXPECT_IO_URING=1
meson test -C "$build_dir" --print-errorlogs --num-processes "$(nproc)" "$@" || status=$?
phase "tests ($build_dir)"
unset TIERFS_EXPECT_IO_URING

if [ "${CI:-}" = true ] && [ $# -eq 0 ]; then
  echo "test: the suites that mount, again against the system's libfuse ($system_build_dir)"
  system_args=(-Dlibfuse_prefix=system -Dwerror=true -Dvm_tests=disabled -Dfuzz=disabled
    -Dbenchmarks=disabled)
  configure "$system_build_dir" "${system_args[@]}"
  # Only what those suites' tests run, not the unit tests and tools they do not.
  mapfile -t needed < <(python3 - "$system_build_dir" <<'PY'
import json, os, subprocess, sys
build = sys.argv[1]
def introspect(what):
    return json.loads(subprocess.check_output(["meson", "introspect", what, build]))
suites = {"integration", "security", "jobs"}
wanted = set()
for test in introspect("--tests"):
    if suites & {name.split(":")[-1] for name in test["suite"]}:
        wanted.update(test.get("depends", []))
for target in introspect("--targets"):
    if target["id"] in wanted:
        print("\n".join(os.path.relpath(name, build) for name in target["filename"]))
PY
  )
  ninja -C "$system_build_dir" "${needed[@]}"
  phase "build ($system_build_dir)"
  meson test -C "$system_build_dir" --no-rebuild --print-errorlogs --num-processes "$(nproc)" \
    --suite integration --suite security --suite jobs --no-suite once || status=$?
  phase "tests ($system_build_dir)"
  logs+=("$system_build_dir/meson-logs/testlog.json")
fi

if [ -n "$beside_pid" ]; then
  beside_status=0
  wait "$beside_pid" || beside_status=$?
  beside_pid=
  sed 's/^/beside: /' "$beside_log"
  phase "waiting for what ran beside the suites (status $beside_status)"
  [ "$beside_status" = 0 ] || status=1
fi

# One closing line that any reader understands, counted from meson's JSON logs.
python3 - "${logs[@]}" <<'PY'
import json, sys
counts = {}
for path in sys.argv[1:]:
  with open(path) as log:
    for line in log:
        result = json.loads(line)["result"]
        counts[result] = counts.get(result, 0) + 1
passed = counts.get("OK", 0) + counts.get("EXPECTEDFAIL", 0)
skipped = counts.get("SKIP", 0)
failed = sum(counts.values()) - passed - skipped
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
