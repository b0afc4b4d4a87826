#!/usr/bin/env bash
# No death by SIGBUS (docs/operations.md, When backing storage runs out):
#  1. a file: region on a tmpfs smaller than its tier: writers get ENOSPC,
#     the server lives, data written before is intact, space freed is usable;
#  2. a /dev/shm too small for two mounts (each passed the start-up check):
#     the same for numa: regions, in a private mount namespace;
#  3. a SIGBUS inside a copy (the region file cut short under the server):
#     that write fails with EIO, the block shows as bad in tierfs stats, the
#     server lives and serves new writes once the backing is back.
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
timeout 20 tail --pid="$second_pid" -f /dev/null
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

[ "$failures" -eq 0 ] && echo "backing_full: all checks passed"
exit $((failures > 0))
