#!/bin/bash
# A second tierfs mount on a mount point tierfs already serves is refused with
# one line pointing at fusermount3 -u; before, it hid the first mount's files
# and both servers stayed.
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
echo PASS
