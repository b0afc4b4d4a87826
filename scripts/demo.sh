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

./scripts/setup.sh
[ -d "$build_dir/meson-private" ] || meson setup "$build_dir" >/dev/null
ninja -C "$build_dir" >/dev/null
tierfs="$PWD/$build_dir/tierfs/tierfs"

work=$(mktemp -d /tmp/tierfs-demo-work-XXXXXX)
mnt=${MOUNTPOINT:-$(mktemp -d /tmp/tierfs-demo-XXXXXX)}
mounted=0
cleanup() {
  if [ "$mounted" = 1 ] && [ "$keep" != 1 ]; then fusermount3 -u "$mnt" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== tierfs topology"
"$tierfs" topology || true

echo "== tierfs mount $mnt   (built-in default configuration)"
"$tierfs" mount "$mnt"
mounted=1
df -h "$mnt" | tail -1

echo "== writing ${size_mib} MiB of random data to $mnt/demo.dat and reading it back"
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
