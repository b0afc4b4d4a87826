#!/usr/bin/env bash
# No death by SIGBUS (docs/operations.md, When backing storage runs out):
#  1. a file: region on a tmpfs smaller than its tier: writers get ENOSPC,
#     the server lives, data written before is intact, space freed is usable;
#  2. a /dev/shm too small for two mounts (each passed the start-up check):
#     the same for numa: regions, in a private mount namespace;
#  3. a SIGBUS inside a copy (the region file cut short under the server):
#     that write fails with EIO, the block shows as bad in tierfs stats, the
#     server lives and serves new writes once the backing is back;
#  4. the same for every path that zeroes region memory or copies between
#     regions: fresh rows zeroed for an allocation (fallocate), the new last
#     block's tail (truncate), the edges of a punched hole, FALLOC_FL_ZERO_RANGE,
#     a migration's copy: each request gets EIO, changes nothing it reports
#     failed, and the bad bytes grow.
# Needs root and /dev/fuse.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ "${TIERFS_IN_PRIVATE_NS:-}" != 1 ]; then
  # A private mount namespace: the small /dev/shm below is seen by nobody else.
  source "$here/../support/privileged.sh"
  tierfs_require "$(tierfs_missing_root)"
  tierfs_require "$(tierfs_missing_fuse)"
  TIERFS_IN_PRIVATE_NS=1 exec unshare -m --propagation private -- "$0" "$@"
fi
source "$here/lib.sh"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
alive() { kill -0 "$1" 2>/dev/null && stat "$2" >/dev/null 2>&1; }
sum() { sha256sum "$1" | cut -d' ' -f1; }
# dd's error for a write, or "ok".
write_file() {  # write_file PATH MiB
  local out
  out=$(dd if=/dev/urandom of="$1" bs=1M count="$2" conv=fsync 2>&1) && echo ok && return
  printf '%s\n' "$out" | grep -o 'No space left on device\|Input/output error' | head -n 1
}

# 1. file: region on an 8 MiB tmpfs behind a 64 MiB tier.
mkdir -p "$WORK/small"
mount -t tmpfs -o size=8M,mode=0755 tierfs-test "$WORK/small"
tierfs_start_mount "[[tier]]
name = \"spill\"
regions = [\"file:$WORK/small/region\"]
size = \"64MiB\"
granularity = \"64KiB\"
create = true"
head -c 3145728 /dev/urandom >"$WORK/before"
cp "$WORK/before" "$MNT/before"
got=$(write_file "$MNT/big" 16)
[ "$got" = "No space left on device" ] || fail "file region: a write past the backing got: $got"
alive "$SERVER_PID" "$MNT" || fail "file region: the server died when its backing filled"
[ "$(sum "$MNT/before")" = "$(sum "$WORK/before")" ] || fail "file region: earlier data changed"
rm -f "$MNT/big"
got=$(write_file "$MNT/after" 2)
[ "$got" = ok ] || fail "file region: a write after freeing space got: $got"
tierfs_stop_mount
umount "$WORK/small"

# 2. Two mounts whose numa: regions together need more than /dev/shm holds.
mount -t tmpfs -o size=24M,mode=1777 tierfs-test-shm /dev/shm
numa_tier='[[tier]]
name = "dram"
regions = ["numa:0"]
size = "16MiB"
granularity = "64KiB"'
tierfs_start_mount "$numa_tier"
first_pid=$SERVER_PID
mkdir -p "$WORK/mnt2"
printf '%s\n' "$numa_tier" >"$WORK/second.toml"
"$TIERFS_BIN" mount --config "$WORK/second.toml" "$WORK/mnt2" >"$WORK/second.log" 2>&1 ||
  fail "second mount refused: $(cat "$WORK/second.log")"
second_pid=$(pgrep -f -- "mount --config $WORK/second.toml $WORK/mnt2\$")
head -c 12582912 /dev/urandom >"$WORK/first-data"
cp "$WORK/first-data" "$MNT/data" || fail "first mount: 12 MiB did not fit"
got=$(write_file "$WORK/mnt2/data" 16)
[ "$got" = "No space left on device" ] || fail "/dev/shm full: the second mount's writer got: $got"
alive "$first_pid" "$MNT" || fail "/dev/shm full: the first server died"
alive "$second_pid" "$WORK/mnt2" || fail "/dev/shm full: the second server died"
[ "$(sum "$MNT/data")" = "$(sum "$WORK/first-data")" ] || fail "/dev/shm full: the first mount's data changed"
fusermount3 -u "$WORK/mnt2"
tierfs_wait_exit "$second_pid" 20
tierfs_stop_mount
leftover=$(ls /dev/shm)
[ -z "$leftover" ] || fail "/dev/shm holds after both unmounts: $leftover"
umount /dev/shm

# 3. SIGBUS in a copy: the region file cut short under the server.
tierfs_start_mount "[[tier]]
name = \"spill\"
regions = [\"file:$WORK/region.img\"]
size = \"16MiB\"
create = true"
got=$(write_file "$MNT/victim" 1)
[ "$got" = ok ] || fail "sigbus: first write got: $got"
truncate -s 0 "$WORK/region.img"
got=$(dd if=/dev/zero of="$MNT/victim" bs=64K count=1 conv=notrunc 2>&1) &&
  fail "sigbus: a write into lost backing succeeded"
printf '%s' "$got" | grep -q 'Input/output error' || fail "sigbus: the write failed with: $got"
alive "$SERVER_PID" "$MNT" || fail "sigbus: the server died"
# A read of the lost bytes: the kernel's copy out of region memory faults.
got=$(dd if="$MNT/victim" of=/dev/null bs=64K count=1 iflag=direct 2>&1) &&
  fail "sigbus: a read of lost backing succeeded"
printf '%s' "$got" | grep -q 'Input/output error' || fail "sigbus: the read failed with: $got"
alive "$SERVER_PID" "$MNT" || fail "sigbus: the server died on a read"
"$TIERFS_BIN" stats "$MNT" | grep -q "tier spill: .* bad" || fail "sigbus: stats show no bad blocks: $("$TIERFS_BIN" stats "$MNT")"
bad=$("$TIERFS_BIN" stats --json "$MNT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tiers"][0]["bad_bytes"])')
[ "$bad" -ge 4096 ] || fail "sigbus: bad_bytes is $bad"
truncate -s 16M "$WORK/region.img"
head -c 1048576 /dev/urandom >"$WORK/later"
cp "$WORK/later" "$MNT/later" || fail "sigbus: a write after the backing came back failed"
[ "$(sum "$MNT/later")" = "$(sum "$WORK/later")" ] || fail "sigbus: later data reads back wrong"
tierfs_stop_mount

# 4. SIGBUS in the zeroing paths and a migration's copy, the region file cut short.
spill_tier='[[tier]]
name = "spill"
granularity = "64KiB"
size = "16MiB"
create = true'
bad_bytes() {
  "$TIERFS_BIN" stats --json "$MNT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tiers"][0]["bad_bytes"])'
}
# expect_eio WHAT COMMAND...: the command fails with EIO, the server lives, bad bytes grow.
expect_eio() {
  local what=$1 before out
  shift
  before=$(bad_bytes)
  out=$("$@" 2>&1) && fail "zeroing: $what into lost backing succeeded"
  printf '%s' "$out" | grep -q 'Input/output error' || fail "zeroing: $what failed with: $out"
  alive "$SERVER_PID" "$MNT" || { fail "zeroing: the server died on $what"; return; }
  [ "$(bad_bytes)" -gt "$before" ] || fail "zeroing: $what left bad_bytes at $before"
}
write_files() {
  local f got
  for f in "$@"; do
    got=$(write_file "$MNT/$f" 1)
    [ "$got" = ok ] || fail "zeroing: writing $f got: $got"
  done
}
tierfs_start_mount "$spill_tier
regions = [\"file:$WORK/zero.img\"]"
write_files victim spare
truncate -s 0 "$WORK/zero.img"
# Rows never used before are zeroed when first handed out (8 MiB: past the
# rows the two files and their preallocation touched).
expect_eio "fallocate of fresh rows" fallocate -l 8M "$MNT/fresh"
[ "$(stat -c %b "$MNT/fresh")" = 0 ] || fail "zeroing: the failed fallocate kept blocks"
expect_eio "truncate inside a block" truncate -s 5000 "$MNT/victim"
[ "$(stat -c %s "$MNT/victim")" = 1048576 ] || fail "zeroing: the failed truncate changed the size"
expect_eio "a punched hole's edges" fallocate -p -o 8292 -l 10000 "$MNT/victim"
expect_eio "fallocate --zero-range" fallocate -z -o 65536 -l 65536 "$MNT/victim"
"$TIERFS_BIN" stats "$MNT" | grep -q "tier spill: .* bad" || fail "zeroing: stats show no bad blocks"
# Bad blocks are held by the tier and owned by no file: not leaked.
out=$("$TIERFS_BIN" check "$MNT" 2>&1) || fail "zeroing: tierfs check: $out"
truncate -s 16M "$WORK/zero.img"
head -c 1048576 /dev/urandom >"$WORK/later"
cp "$WORK/later" "$MNT/later" || fail "zeroing: a write after the backing came back failed"
[ "$(sum "$MNT/later")" = "$(sum "$WORK/later")" ] || fail "zeroing: later data reads back wrong"
truncate -s 5000 "$MNT/later" || fail "zeroing: a truncate after the backing came back failed"
[ "$(head -c 5000 "$WORK/later" | sha256sum | cut -d' ' -f1)" = "$(sum "$MNT/later")" ] ||
  fail "zeroing: the truncated file reads back wrong"
tierfs_stop_mount

# With a second tier: a migration that reads lost bytes fails with EIO, on
# either data path of the target (onto the kernel path the server writes the
# lost bytes into a backing file: EFAULT from the kernel's copy, "Bad address"
# before); fresh rows that fault are retired and the allocation spills to the
# next tier (a server-path tier: a kernel-path file does not take extents).
# auto is the kernel path here, and the server path on a libfuse without
# passthrough (CI's system-libfuse pass).
for target_path in auto server; do
  rm -f "$WORK/zero.img"
  tierfs_start_mount "$spill_tier
regions = [\"file:$WORK/zero.img\"]

[[tier]]
name = \"dram\"
regions = [\"numa:0\"]
size = \"16MiB\"
data_path = \"$target_path\""
  write_files spare
  truncate -s 0 "$WORK/zero.img"
  expect_eio "a migration to a data_path $target_path tier" "$TIERFS_BIN" migrate --tier dram "$MNT/spare"
  "$TIERFS_BIN" map "$MNT/spare" | grep -q ' dram ' && fail "zeroing: the failed migration moved the file"
  if [ "$target_path" = server ]; then
    before=$(bad_bytes)
    fallocate -l 8M "$MNT/spilled" || fail "zeroing: fallocate did not spill to the next tier"
    "$TIERFS_BIN" map "$MNT/spilled" | grep -q ' dram ' || fail "zeroing: the fallocate is not on dram"
    [ "$(bad_bytes)" -gt "$before" ] || fail "zeroing: fresh rows that faulted are not bad"
  fi
  alive "$SERVER_PID" "$MNT" || fail "zeroing: the server died"
  tierfs_stop_mount
done

[ "$failures" -eq 0 ] && echo "backing_full: all checks passed"
exit $((failures > 0))
