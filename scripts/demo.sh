#!/usr/bin/env bash
# The main job on a fresh machine: installs, builds, mounts tierfs on the
# built-in default configuration (one DRAM tier over every NUMA node with
# memory), writes a file and reads it back, shows `tierfs map` and
# `tierfs stats`, then unmounts -- or leaves the mount up with KEEP_MOUNTED=1.
#   BUILD_DIR (default build)  DEMO_SIZE_MIB (default 256)  MOUNTPOINT (default: a new temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
size_mib=${DEMO_SIZE_MIB:-256}
keep=${KEEP_MOUNTED:-0}

# One line per stage, with the seconds since the demo started, so a person
# sees at once which step is running and that none has hung.
stages=7
stage_no=0
stage() {
  stage_no=$((stage_no + 1))
  printf '== [%d/%d] %s   (%ds)\n' "$stage_no" "$stages" "$*" "$SECONDS"
}

stage "setup: Debian packages for the build, tests and benchmarks (scripts/setup.sh)"
./scripts/setup.sh

stage "configure: meson setup $build_dir"
if [ -d "$build_dir/meson-private" ]; then
  echo "configure: $build_dir is already configured"
else
  setup_out=$(mktemp /tmp/tierfs-demo-meson-XXXXXX)
  meson setup "$build_dir" >"$setup_out" 2>&1 || {
    tail -n 20 "$setup_out" >&2
    echo "demo: meson setup failed (above; meson's log: $build_dir/meson-logs/meson-log.txt)" >&2
    exit 1
  }
  rm -f "$setup_out"
  echo "configure: done (log: $build_dir/meson-logs/meson-log.txt)"
fi

# On a terminal ninja draws its own one-line progress; on a pipe or in a log
# its hundred-odd lines would bury the demo, so they go to a file and a
# summary line comes every 30 seconds and at the end.
steps=$(ninja -C "$build_dir" -n 2>/dev/null | grep -c '^\[' || true)
if [ "$steps" -eq 0 ]; then
  stage "build: ninja -C $build_dir (up to date)"
else
  # Measured: a cold build (121 steps, no ccache) took 37.5 min of wall time on a
  # 2-core machine under load average 13-21, and 7.2 min of CPU time.
  stage "build: ninja -C $build_dir ($steps steps; a first build takes minutes: about 7 CPU-minutes," \
    "37 minutes on a busy 2-core machine; ccache speeds up the next)"
  build_started=$SECONDS
  if [ -t 1 ]; then
    ninja -C "$build_dir"
  else
    build_log="$build_dir/demo-build.log"
    ninja -C "$build_dir" >"$build_log" 2>&1 &
    ninja_pid=$!
    trap 'kill "$ninja_pid" 2>/dev/null || true' EXIT
    last_report=$SECONDS
    while kill -0 "$ninja_pid" 2>/dev/null; do
      sleep 1
      if [ $((SECONDS - last_report)) -ge 30 ]; then
        last_report=$SECONDS
        progress=$(grep -o '^\[[0-9]*/[0-9]*\]' "$build_log" | tail -n 1 || true)
        echo "build: ${progress:-[0/$steps]} after $((SECONDS - build_started))s"
      fi
    done
    trap - EXIT
    if ! wait "$ninja_pid"; then
      tail -n 30 "$build_log" >&2
      echo "demo: the build failed; whole log: $build_log" >&2
      exit 1
    fi
  fi
  echo "build: $steps steps in $((SECONDS - build_started))s"
fi
tierfs="$PWD/$build_dir/tierfs/cli/tierfs"

work=$(mktemp -d /tmp/tierfs-demo-work-XXXXXX)
mnt=${MOUNTPOINT:-$(mktemp -d /tmp/tierfs-demo-XXXXXX)}
mounted=0
cleanup() {
  if [ "$mounted" = 1 ] && [ "$keep" != 1 ]; then fusermount3 -u "$mnt" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

stage "tierfs topology"
"$tierfs" topology || true

stage "tierfs mount $mnt   (built-in default configuration)"
"$tierfs" mount "$mnt"
mounted=1
df -h "$mnt" | tail -1

stage "writing ${size_mib} MiB of random data to $mnt/demo.dat and reading it back"
head -c "$((size_mib << 20))" /dev/urandom >"$work/source"
dd if="$work/source" of="$mnt/demo.dat" bs=1M status=none
written=$(sha256sum <"$work/source" | cut -d' ' -f1)
read_back=$(sha256sum <"$mnt/demo.dat" | cut -d' ' -f1)
echo "sha256 written:   $written"
echo "sha256 read back: $read_back"
if [ "$written" != "$read_back" ]; then
  echo "demo: the data read back differs from the data written" >&2
  exit 1
fi
echo "the bytes read back are the bytes written"

stage "tierfs map $mnt/demo.dat, tierfs stats $mnt"
echo "== tierfs map $mnt/demo.dat"
"$tierfs" map "$mnt/demo.dat"
echo "== tierfs stats $mnt"
"$tierfs" stats "$mnt"

if [ "$keep" = 1 ]; then
  echo "== tierfs stays mounted on $mnt (KEEP_MOUNTED=1); unmount it with: fusermount3 -u $mnt"
else
  fusermount3 -u "$mnt"
  mounted=0
  rmdir "$mnt" 2>/dev/null || true
  echo "== unmounted $mnt (fusermount3 -u MOUNTPOINT does this; KEEP_MOUNTED=1 leaves the mount up)"
fi
