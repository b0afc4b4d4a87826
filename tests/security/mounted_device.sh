#!/bin/bash
# A file: region that is a block device holding a mounted ext4 is refused
# (O_EXCL), and the ext4 survives; a block device in use by one tierfs mount
# (here one that took the unmounted ext4 over) is refused to a second. Before: the first write destroyed the ext4.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v losetup >/dev/null && command -v mkfs.ext4 >/dev/null ||
  tierfs_require "needs losetup and mkfs.ext4"

truncate -s 64M "$WORK/disk.img"
LOOP=$(losetup --find --show "$WORK/disk.img") || tierfs_require "needs a loop device"
device_cleanup() {
  umount "$WORK/ext4" 2>/dev/null || true
  losetup -d "$LOOP" 2>/dev/null || true
  security_cleanup
}
trap device_cleanup EXIT
mkfs.ext4 -q "$LOOP"
mkdir -p "$WORK/ext4"
mount "$LOOP" "$WORK/ext4"
echo precious >"$WORK/ext4/keep"
sync

config="$(printf '[[tier]]\nname = "blk"\nregions = ["file:%s"]\nsize = "16MiB"\ngranularity = "64KiB"\n' "$LOOP")"
printf '%s\n' "$config" >"$WORK/blk.toml"
try_mount "$WORK/blk.toml" "$MNT"
expect_refused "a mounted block device" "mounted on $WORK/ext4"
umount "$WORK/ext4"
e2fsck -fn "$LOOP" >/dev/null 2>&1 || fail "the ext4 on $LOOP was damaged"
mount "$LOOP" "$WORK/ext4"
[ "$(cat "$WORK/ext4/keep")" = precious ] || fail "the ext4's file changed"
umount "$WORK/ext4"

# Unmounted, the ext4 is still there: refused (tests/security/foreign_region.sh)
# unless the region takes the device over. Then it serves one tierfs mount;
# a second one is refused.
config="$(printf '[[tier]]\nname = "blk"\nregions = [{ region = "file:%s", take_over = true }]\nsize = "16MiB"\ngranularity = "64KiB"\n' "$LOOP")"
tierfs_start_mount "$config"
echo hello >"$MNT/f"
mkdir -p "$WORK/mnt2"
try_mount "$WORK/tierfs.toml" "$WORK/mnt2"
expect_refused "a block device in use by another mount" "in use"
[ "$(cat "$MNT/f")" = hello ] || fail "the first mount's file changed"
tierfs_stop_mount
echo PASS
