#!/usr/bin/env bash
# Stats of kernel-path files against tmpfs, in Python's os.stat (docs/
# benchmarks.md, "Stat of a kernel-path file"): N files of 100 bytes
# written and closed on a tmpfs and on a tierfs mount with one numa:0 tier on
# the kernel path; 1.1 s later each is stat'd once (pass 1: the first stat
# after a write and close), 1.1 s later again (pass 2: quiescent files), then
# 10 000 stats of one file. Prints each rate and its ratio to tmpfs.
# Usage: bench/kernel_stat_passes.sh [TIERFS_BINARY] [N]  (root and /dev/fuse)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "${TIERFS_SOURCE_ROOT:-$here/..}/tests/support/privileged.sh"
tierfs_require "$(tierfs_missing_root)"
tierfs_require "$(tierfs_missing_fuse)"
bin=${1:-$here/../build/tierfs/cli/tierfs}
count=${2:-10000}
work=$(mktemp -d /tmp/tierfs-stat-passes-XXXXXX)
mkdir -p "$work/mnt" "$work/tmpfs"
cleanup() {
  umount "$work/mnt" 2>/dev/null || true
  sleep 0.5
  umount "$work/tmpfs" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mount -t tmpfs -o size=256m tmpfs "$work/tmpfs"
printf '[mount]\nstate_dir = "%s"\n[[tier]]\nname = "fast"\nregions = ["numa:0"]\nsize = "512MiB"\ngranularity = "4KiB"\ndata_path = "kernel"\n' \
  "$work/state" >"$work/tierfs.toml"
"$bin" mount --config "$work/tierfs.toml" "$work/mnt"
python3 - "$work/tmpfs" "$work/mnt" "$count" <<'PY'
import os, sys, time
tmpfs, mnt, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

def make(d):
    for i in range(n):
        with open(f"{d}/f{i}", "wb") as f:
            f.write(b"x" * 100)

def rate(d):
    start = time.perf_counter()
    for i in range(n):
        os.stat(f"{d}/f{i}")
    return n / (time.perf_counter() - start)

def one(path, k=10000):
    start = time.perf_counter()
    for _ in range(k):
        os.stat(path)
    return k / (time.perf_counter() - start)

make(tmpfs)
make(mnt)
time.sleep(1.1)
pass1 = (rate(tmpfs), rate(mnt))
time.sleep(1.1)
pass2 = (rate(tmpfs), rate(mnt))
time.sleep(1.1)
single = (one(f"{tmpfs}/f0"), one(f"{mnt}/f0"))
for name, (a, b) in (("pass1", pass1), ("pass2", pass2), ("one", single)):
    print(f"{name}: tmpfs {a / 1e3:.0f}k/s tierfs-kernel {b / 1e3:.1f}k/s ratio {b / a:.3f}")
print(f"load {os.getloadavg()[0]:.1f}")
PY
