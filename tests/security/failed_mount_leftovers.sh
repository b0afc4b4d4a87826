#!/bin/bash
# A mount that fails after its regions were opened (here: a bad mount option)
# leaves none of the region files it created; before, 16-64MiB files stayed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

mkdir "$WORK/spill"
printf '[[tier]]\nname = "a"\nregions = ["file:%s/a0", "file:%s/a1"]\nsize = "32MiB"\ngranularity = "64KiB"\ncreate = true\n\n[[tier]]\nname = "b"\nregions = ["file:%s/b0"]\nsize = "16MiB"\ngranularity = "64KiB"\ncreate = true\n' \
  "$WORK/spill" "$WORK/spill" "$WORK/spill" >"$WORK/spill.toml"
try_mount "$WORK/spill.toml" "$MNT" -o no_such_option
[ "$MOUNT_STATUS" -ne 0 ] || fail "a bad mount option was accepted"
[ -z "$(ls -A "$WORK/spill")" ] || fail "the failed mount left $(ls "$WORK/spill")"
# A region that fails after the first was created: the second region is held by another process.
touch "$WORK/spill/b0" && chmod 0600 "$WORK/spill/b0"
exec 9<"$WORK/spill/b0"
flock -x 9
status=0
"$TIERFS_BIN" mount -f --config "$WORK/spill.toml" "$MNT" 2>"$WORK/err" || status=$?
[ "$status" -eq 1 ] || fail "a region in use was accepted ($status)"
exec 9<&-
[ "$(ls -A "$WORK/spill")" = b0 ] || fail "the failed mount left $(ls "$WORK/spill" | grep -v b0)"
# The same configuration mounts, and then its files are the user's spill space and stay.
rm "$WORK/spill/b0"
tierfs_start_mount "$(cat "$WORK/spill.toml")"
tierfs_stop_mount
[ "$(ls "$WORK/spill" | tr '\n' ' ')" = "a0 a1 b0 " ] || fail "created region files were not kept: $(ls "$WORK/spill")"
echo PASS
