#!/bin/bash
# A region file pre-created by another user (0666) at the configured path is
# refused: before, that user read and changed every file of root's mount
# through it. The spill directory is sticky and world-writable, as /var/tmp.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_evil_user

mkdir -m 1777 "$WORK/vartmp"
region="$WORK/vartmp/tierfs-spill.img"
as_evil sh -c "truncate -s 16M '$region' && chmod 0666 '$region'"
printf '[[tier]]\nname = "spill"\nregions = ["file:%s"]\nsize = "16MiB"\ngranularity = "64KiB"\ncreate = true\n' "$region" >"$WORK/spill.toml"

try_mount "$WORK/spill.toml" "$MNT"
if [ "$MOUNT_STATUS" -eq 0 ]; then
  echo "root's secret" >"$MNT/secret"
  sync
  as_evil grep -q "root's secret" "$region" && fail "$EVIL_USER read root's file through the region"
fi
expect_refused "a 0666 region file of another user" "is owned by uid $(id -u "$EVIL_USER"), not by root or the mounting user"

# Owned by root but writable by others: refused too.
rm -f "$region"
truncate -s 16M "$region"
chmod 0666 "$region"
try_mount "$WORK/spill.toml" "$MNT"
expect_refused "a 0666 region file" "has mode 0666; a region file must not be writable by group or others"
echo PASS
