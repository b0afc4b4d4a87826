#!/bin/bash
# Two mounts naming the same file: region: the second is refused with one line
# naming the region and the process (mount) that holds it; the first mount's
# data is untouched. Before: both started and overwrote each other's files.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

region="$WORK/shared.img"
tierfs_start_mount "$(printf '[[tier]]\nname = "spill"\nregions = ["file:%s"]\nsize = "16MiB"\ngranularity = "64KiB"\ncreate = true\n' "$region")"
head -c 1M /dev/urandom >"$WORK/data"
cp "$WORK/data" "$MNT/a"
sync

cp "$WORK/tierfs.toml" "$WORK/second.toml"
mkdir -p "$WORK/mnt2"
try_mount "$WORK/second.toml" "$WORK/mnt2"
expect_refused "second mount on one region file" "region \"file:$region\".*in use by another mount: held by pid $SERVER_PID"
printf '%s\n' "$MOUNT_ERR" | grep -q "$MNT" || fail "the holder's command line names its mount point: $MOUNT_ERR"
grep -q " $WORK/mnt2 " /proc/mounts && fail "the second mount is up"

# check-config says the same before anyone tries.
status=0
"$TIERFS_BIN" check-config "$WORK/second.toml" >/dev/null 2>"$WORK/check.err" || status=$?
[ "$status" -eq 1 ] || fail "check-config exited $status on a region in use"
grep -q "in use by another mount" "$WORK/check.err" || fail "check-config: $(cat "$WORK/check.err")"

cmp "$WORK/data" "$MNT/a" || fail "the first mount's file changed"
tierfs_stop_mount
echo PASS
