#!/usr/bin/env bash
# st_blocks after moves (`tierfs migrate`) between tiers whose files cost
# different blocks: a 4 KiB-page tmpfs, a 2 MiB-page one (a huge folio
# counts whole in st_blocks), and the server path (its 4 KiB blocks). The
# server answers a move's new blocks at once (stat --cached=never), and a
# plain stat must say the same right after the move: the kernel's cached
# attributes are the old tier's otherwise, for up to a second on the
# kernel path and for an hour (the server path's attr timeout) after a move
# off it. Moves: 4 KiB -> 2 MiB and back (copies in the kernel), kernel
# <-> server both ways (copies), and in place between two 4 KiB tiers.
# SKIPs where the build or the kernel has no passthrough (~5 s).
source "$(dirname "$0")/lib.sh"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

kernel_tier_toml() { # NAME GRANULARITY
  printf '[[tier]]\nname = "%s"\nregions = ["numa:0"]\nsize = "64MiB"\ngranularity = "%s"\ndata_path = "kernel"\n\n' "$@"
}
CONFIG="$(kernel_tier_toml fast 4KiB)
$(kernel_tier_toml warm 4KiB)
$(kernel_tier_toml huge 2MiB)
$(tierfs_shm_tier slow 1 64MiB 64KiB)
data_path = \"server\""
printf '%s\n' "$CONFIG" >"$WORK/check.toml"
"$TIERFS_BIN" check-config "$WORK/check.toml" >"$WORK/check.out" 2>&1 ||
  tierfs_kernel_path_refused "$WORK/check.out"
tierfs_start_mount "$CONFIG" --log-file "$WORK/mount.log"

# A sparse file: 8 KiB of data at 0 and at 3 MiB in 4 MiB, 32 blocks on a
# 4 KiB tier. On the 2 MiB tier each written run takes a huge folio (the
# copy sets the size first, so both lie within it): 8192 blocks, and the
# copy back sees whole folios as data (SEEK_DATA), so the holes are gone
# from then on: 8192 blocks everywhere, which the moves to and from the
# 2 MiB tier keep. Measured on 6.18: 32 -> 8192 -> ... and a plain stat
# right after each move said the old tier's count.
f="$MNT/sparse"
python3 - "$f" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.pwrite(fd, b"a" * 8192, 0)
os.pwrite(fd, b"b" * 8192, 3 << 20)
os.ftruncate(fd, 4 << 20)
os.close(fd)
PY
changed=0
for to in huge fast warm slow huge slow fast; do
  before=$(stat --cached=never -c %b "$f")
  stat -c %b "$f" >/dev/null # the kernel caches the attributes now
  "$TIERFS_BIN" migrate --tier "$to" "$f" >"$WORK/m.out" 2>&1 || fail "migrate to $to: $(cat "$WORK/m.out")"
  cached=$(stat -c %b "$f")
  server=$(stat --cached=never -c %b "$f")
  echo "to $to: st_blocks $before -> $server (the server), $cached (a plain stat)"
  [ "$cached" = "$server" ] || fail "after the move to $to a plain stat says $cached blocks, the server $server"
  [ "$before" = "$server" ] || changed=$((changed + 1))
done
# Without moves that change the blocks this test could not fail.
[ "$changed" -ge 4 ] || fail "only $changed moves changed st_blocks"
[ "$(head -c 8192 "$f")" = "$(printf 'a%.0s' $(seq 8192))" ] || fail "the file's first bytes changed"
tierfs_stop_mount

[ "$failures" -eq 0 ] || exit 1
echo "PASS"
