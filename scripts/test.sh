#!/usr/bin/env bash
# Installs what is needed, builds tierfs and runs every test suite.
#   scripts/test.sh                 all suites
#   scripts/test.sh --suite unit    extra arguments go to `meson test`
# Environment: BUILD_DIR (default build), TIERFS_REQUIRE_PRIVILEGED=1 turns
# skips for missing root, /dev/fuse or BPF into failures (CI sets it).
# TIERFS_BESIDE_TESTS=COMMAND runs COMMAND (bash) beside the suites once the
# main build is done, at the lowest CPU priority, and fails the run if it
# fails: .ci/run puts the style gate there. In CI (CI=true, no arguments) the
# package test (tests/package: the Debian package built from a clean clone,
# lintian, installed into a clean root) runs beside them too; it builds the
# package at the lowest priority itself. The suites run mostly one test at
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
# The suites run the tools setup.sh installs: Debian's python3 with its
# python3-* modules, not a python3 earlier in PATH (a pyenv shim took
# 0.3-1.3 s a call here, and kernel_migrate alone makes a hundred calls:
# 183 s against 57 s).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}
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
uring_saved=''
beside_names=() beside_pids=() beside_logs=()
# At any exit: the kernel's uring setting back, and what runs beside the suites stopped.
on_exit() {
  local i
  for i in "${!beside_pids[@]}"; do
    [ -z "${beside_pids[$i]}" ] || kill -- "-${beside_pids[$i]}" 2>/dev/null || true
    rm -f "${beside_logs[$i]}"
  done
  [ -z "$uring_saved" ] || echo "$uring_saved" >"$uring_param"
}
trap on_exit EXIT
if [ "${TIERFS_REQUIRE_PRIVILEGED:-0}" = 1 ] && [ -w "$uring_param" ]; then
  uring_saved=$(cat "$uring_param")
  echo Y >"$uring_param"
fi

setup_args=()
# In CI a missing qemu or clang fails the build instead of dropping the vm or
# fuzz suite. The same -O2 and assertions without debug information: no test
# reads it, and -g was 29 % of the compiler's CPU time (CI is CPU-bound).
[ "${CI:-}" = true ] && setup_args+=(-Dwerror=true -Dvm_tests=enabled -Dfuzz=enabled -Ddebug=false)
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

# beside NAME COMMAND...: COMMAND runs beside the suites in a session of its
# own (an early exit ends all of it); its output is shown when it has ended,
# and its failure fails the run. A new session is a scheduler autogroup of
# its own (kernel.sched_autogroup_enabled, on in Debian's kernels and CI's),
# which gets as much CPU as the suites' whatever nice its tasks have: the
# autogroup's own nice (/proc/self/autogroup) is what puts it below them.
beside() {
  local name=$1
  shift
  beside_names+=("$name")
  beside_logs+=("$(mktemp)")
  setsid bash -c 'echo 19 >/proc/self/autogroup 2>/dev/null; exec "$@"' beside "$@" \
    >"${beside_logs[-1]}" 2>&1 &
  beside_pids+=($!)
  echo "test: started beside the suites: $name"
}
[ -z "${TIERFS_BESIDE_TESTS:-}" ] ||
  beside "$TIERFS_BESIDE_TESTS (nice 19)" nice -n 19 bash -c "$TIERFS_BESIDE_TESTS"
status=0
logs=("$build_dir/meson-logs/testlog.json")
# The package test (its own test setup, which plain meson test leaves out):
# about 10 CPU-minutes of compiling (without ccache) and half a minute of
# install, Slurm job, metrics and purge, so beside the suites rather than
# after them.
if [ "${CI:-}" = true ] && [ $# -eq 0 ]; then
  beside "the package test (meson test --setup package --suite package)" \
    meson test -C "$build_dir" --no-rebuild --print-errorlogs --setup package --suite package
  logs+=("$build_dir/meson-logs/testlog-package.json")
fi
# In CI the main build must have FUSE over io_uring (integration_io_uring fails otherwise).
[ "${CI:-}" = true ] && export TIERFS_EXPECT_IO_URING=1
meson test -C "$build_dir" --print-errorlogs --num-processes "$(nproc)" "$@" || status=$?
phase "tests ($build_dir)"
unset TIERFS_EXPECT_IO_URING

if [ "${CI:-}" = true ] && [ $# -eq 0 ]; then
  echo "test: the suites that mount, again against the system's libfuse ($system_build_dir)"
  # Unoptimised and without debug information: this pass checks the
  # libfuse API and the mounts, and compiles in about half the CPU time.
  system_args=(-Dlibfuse_prefix=system -Dwerror=true -Dvm_tests=disabled -Dfuzz=disabled
    -Dbenchmarks=disabled -Doptimization=0 -Ddebug=false)
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

for i in "${!beside_pids[@]}"; do
  beside_status=0
  wait "${beside_pids[$i]}" || beside_status=$?
  beside_pids[i]=''
  sed 's/^/beside: /' "${beside_logs[$i]}"
  phase "waiting for ${beside_names[$i]} (status $beside_status)"
  [ "$beside_status" = 0 ] || status=1
done

# One closing line that any reader understands, counted from meson's JSON logs.
python3 - "${logs[@]}" <<'PY'
import json, os, sys
counts = {}
for path in sys.argv[1:]:
  if not os.path.exists(path):  # a runner that failed before its first test (its failure counts already)
    print(f"tests: no {path}")
    continue
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
