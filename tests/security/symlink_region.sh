#!/bin/bash
# A symlink planted by another user at the region path is not followed:
# before, root's unrelated file was grown to the region size and zeroed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_evil_user

mkdir -m 1777 "$WORK/vartmp"
echo "root's unrelated file" >"$WORK/victim"
region="$WORK/vartmp/tierfs-spill.img"
as_evil ln -s "$WORK/victim" "$region"
printf '[[tier]]\nname = "spill"\nregions = ["file:%s"]\nsize = "16MiB"\ngranularity = "64KiB"\ncreate = true\n' "$region" >"$WORK/spill.toml"

try_mount "$WORK/spill.toml" "$MNT"
if [ "$MOUNT_STATUS" -eq 0 ]; then
  head -c 1M /dev/urandom >"$MNT/f" && sync
fi
[ "$(cat "$WORK/victim")" = "root's unrelated file" ] || fail "the symlink's target was changed"
expect_refused "a planted symlink" "tierfs-spill.img\" of tier \"spill\": is a symlink in a directory that other users can write"

# The same for a directory component another user controls.
as_evil mkdir "$WORK/vartmp/dir"
as_evil ln -s "$WORK" "$WORK/vartmp/dir/link"
printf '[[tier]]\nname = "spill"\nregions = ["file:%s"]\nsize = "16MiB"\ngranularity = "64KiB"\ncreate = true\n' "$WORK/vartmp/dir/link/victim" >"$WORK/spill2.toml"
try_mount "$WORK/spill2.toml" "$MNT"
expect_refused "a planted directory symlink" "is a symlink in a directory that other users can write"
[ "$(cat "$WORK/victim")" = "root's unrelated file" ] || fail "the symlink's target was changed"
echo PASS
