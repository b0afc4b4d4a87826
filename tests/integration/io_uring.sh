#!/usr/bin/env bash
# FUSE over io_uring ([mount] io_uring, tierfs/server/fuse_uring.h):
# - "required" on a kernel with fuse.enable_uring=Y: the server holds one ring
#   per CPU, data written through the mount reads back, the sandbox (seccomp)
#   denies nothing the rings need (no audit line for the server);
# - "auto" with enable_uring=N: one info line, the mount serves through /dev/fuse;
# - "required" with enable_uring=N: the mount fails with one line, nothing mounted.
# The test sets the kernel parameter and puts it back. A build against a
# libfuse without io_uring (3.14) skips: with TIERFS_EXPECT_IO_URING=1
# (scripts/test.sh's main build) it fails instead.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
param=/sys/module/fuse/parameters/enable_uring
version=${TIERFS_LIBFUSE_VERSION:?meson sets TIERFS_LIBFUSE_VERSION}
if [ "$(printf '%s\n3.18\n' "$version" | sort -V | head -1)" != 3.18 ]; then
  if [ "${TIERFS_EXPECT_IO_URING:-0}" = 1 ]; then
    echo "FAIL: built against libfuse $version, which has no FUSE over io_uring, and TIERFS_EXPECT_IO_URING=1" >&2
    exit 1
  fi
  echo "SKIP: built against libfuse $version, which has no FUSE over io_uring (needs 3.18)"
  exit 77
fi
[ -w "$param" ] || tierfs_require "this kernel has no FUSE over io_uring ($param)"
saved=$(cat "$param")
restore_param() { echo "$saved" >"$param"; tierfs_cleanup; }
trap restore_param EXIT

config() { # config MODE
  printf '[mount]\nio_uring = "%s"\n\n[[tier]]\nname = "dram"\nregions = ["numa:0"]\nsize = "64MiB"\n' "$1"
}
rings() { find "/proc/$SERVER_PID/fd" -maxdepth 1 -lname 'anon_inode:\[io_uring\]' | wc -l; }

echo Y >"$param"
# The kernel log from a marker on: an older line can name a process that
# had this server's pid before (CI at 0c2cc87: an earlier run's server).
marker="tierfs-io-uring-$$-$RANDOM"
echo "$marker" >/dev/kmsg
tierfs_start_mount "$(config required)"
n=$(rings)
cpus=$(nproc --all)
[ "$n" -eq "$cpus" ] || { echo "FAIL: $n io_uring rings in the server, want one per CPU ($cpus)" >&2; cat "$WORK/server.log" >&2; exit 1; }
head -c 24M /dev/urandom >"$WORK/data"
dd if="$WORK/data" of="$MNT/big" bs=1M oflag=direct status=none
dd if="$WORK/data" of="$MNT/small" bs=4k count=512 status=none
cmp "$WORK/data" "$MNT/big" || { echo "FAIL: 24 MiB written with O_DIRECT read back different" >&2; exit 1; }
cmp -n 2097152 "$WORK/data" "$MNT/small" || { echo "FAIL: 4 KiB writes read back different" >&2; exit 1; }
[ "$(rings)" -eq "$cpus" ] || { echo "FAIL: rings gone after the I/O" >&2; exit 1; }
# seccomp's audit lines (type=1326) name the process; with the rings up, none for the server.
dmesg | sed -n "/$marker/,\$p" | grep "type=1326" | grep " pid=$SERVER_PID " >"$WORK/denied" || true
[ ! -s "$WORK/denied" ] || { echo "FAIL: seccomp denied $(wc -l <"$WORK/denied") calls of the server with rings:" >&2; cat "$WORK/denied" >&2; exit 1; }
tierfs_stop_mount
echo "ok: io_uring = \"required\": $n rings, 24 MiB direct and 2 MiB of 4 KiB writes read back"

echo N >"$param"
tierfs_start_mount "$(config auto)" --log-file "$WORK/auto.log"
[ "$(rings)" -eq 0 ] || { echo "FAIL: rings with enable_uring=N" >&2; exit 1; }
lines=$(grep -c 'FUSE over io_uring: off, the kernel' "$WORK/auto.log" || true)
[ "$lines" -eq 1 ] || { echo "FAIL: $lines lines say why io_uring is off, want one:" >&2; cat "$WORK/auto.log" >&2; exit 1; }
dd if="$WORK/data" of="$MNT/big" bs=1M status=none
cmp "$WORK/data" "$MNT/big" || { echo "FAIL: data through /dev/fuse read back different" >&2; exit 1; }
tierfs_stop_mount
echo "ok: io_uring = \"auto\" without the kernel's consent serves through /dev/fuse"

printf '%s\n' "$(config required)" >"$WORK/required.toml"
if "$TIERFS_BIN" mount --config "$WORK/required.toml" "$MNT" >"$WORK/fail.log" 2>&1; then
  echo "FAIL: io_uring = \"required\" mounted with enable_uring=N" >&2
  exit 1
fi
grep -q 'io_uring = "required": FUSE over io_uring: off, the kernel' "$WORK/fail.log" ||
  { echo "FAIL: the refusal does not say why:" >&2; cat "$WORK/fail.log" >&2; exit 1; }
! grep -q " $MNT " /proc/mounts || { echo "FAIL: a refused mount left $MNT mounted" >&2; exit 1; }
echo "ok: io_uring = \"required\" without the kernel's consent: $(tail -1 "$WORK/fail.log")"
