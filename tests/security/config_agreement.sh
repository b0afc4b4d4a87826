#!/bin/bash
# check-config and mount run the same checks: every file of the bad corpus
# (tests/configs/bad) fails both with exit status 1 and the same one line
# (mount prefixes "tierfs: "). Before, check-config accepted configurations
# that mount then refused.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

files=0
for config in "$TIERFS_SOURCE_ROOT"/tests/configs/bad/*.toml; do
  files=$((files + 1))
  name=$(basename "$config")
  check_status=0
  "$TIERFS_BIN" check-config "$config" >/dev/null 2>"$WORK/check.err" || check_status=$?
  try_mount "$config" "$MNT"
  if [ "$MOUNT_STATUS" -eq 0 ]; then
    fusermount3 -u "$MNT"
    fail "$name: mount accepted it"
  fi
  [ "$check_status" -eq 1 ] || fail "$name: check-config exited $check_status: $(cat "$WORK/check.err")"
  [ "$MOUNT_STATUS" -eq 1 ] || fail "$name: mount exited $MOUNT_STATUS: $MOUNT_ERR"
  [ "$(wc -l <"$WORK/check.err")" -eq 1 ] || fail "$name: check-config printed $(cat "$WORK/check.err")"
  [ "tierfs: $(cat "$WORK/check.err")" = "$MOUNT_ERR" ] ||
    fail "$name: check-config and mount disagree: '$(cat "$WORK/check.err")' vs '$MOUNT_ERR'"
done
[ "$files" -ge 53 ] || fail "only $files files in the bad corpus"
echo "PASS: $files files"
