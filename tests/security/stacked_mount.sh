#!/bin/bash
# A second tierfs mount on a mount point tierfs already serves is refused with
# one line pointing at fusermount3 -u; before, it hid the first mount's files
# and both servers stayed. So is a mount point on the kernel's own file
# systems (/proc, /sys, ...) or the root directory, which a mount would
# hide from every process on the node; before, root could mount on
# /proc/sys/kernel.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tier='[[tier]]\nname = "dram"\nregions = ["numa:0"]\nsize = "16MiB"\ngranularity = "64KiB"\n'
tierfs_start_mount "$(printf "$tier")"
echo first >"$MNT/f"
printf "$tier" >"$WORK/second.toml"
try_mount "$WORK/second.toml" "$MNT"
expect_refused "a stacked mount" "mount point $MNT is already served by tierfs; unmount it first with fusermount3 -u $MNT"
[ "$(grep -c " $MNT fuse.tierfs " /proc/mounts)" -eq 1 ] || fail "two tierfs mounts on $MNT"
[ "$(cat "$MNT/f")" = first ] || fail "the first mount's files are hidden"
# Through a different spelling of the same directory as well.
try_mount "$WORK/second.toml" "$WORK/./mnt/"
expect_refused "a stacked mount, other spelling" "already served by tierfs"
tierfs_stop_mount

# In a private mount namespace: should a refusal be missing, the mount hides
# nothing from the rest of the machine (and its server is ended here).
for dir in /proc/sys/kernel /sys/kernel /; do
  [ -d "$dir" ] || continue
  MOUNT_STATUS=0
  unshare -m --propagation private "$TIERFS_BIN" mount --config "$WORK/second.toml" "$dir" \
    2>"$WORK/mount.err" || MOUNT_STATUS=$?
  MOUNT_ERR=$(cat "$WORK/mount.err")
  [ "$MOUNT_STATUS" -eq 0 ] && pkill -f -- "mount --config $WORK/second.toml $dir\$"
  case "$dir" in
    /) expect_refused "mount on /" "mount point /: the root directory" ;;
    *) expect_refused "mount on $dir" "mount point $dir: on .*, the kernel's own interface" ;;
  esac
done
echo PASS
