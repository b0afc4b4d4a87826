#!/usr/bin/env bash
# st_blocks after moves (`tierfs migrate`) between tiers whose files cost
# different blocks: a 4 KiB-page tmpfs, a 2 MiB-page one (a huge folio
# counts whole in st_blocks), and the server path (its 4 KiB blocks). The
# server answers a move's new blocks at once (stat --cached=never), and a
# plain stat must say the same right after the move: the kernel's cached
# attributes are the old tier's otherwise, for up to a second on the
# kernel path and for an hour (the server path's attr timeout) after a move
# off it; and no move leaves the file holding more than its size. Moves:
# 4 KiB <-> 2 MiB (copies in the kernel), server path <-> 2 MiB (copies),
# and in place between two 4 KiB tiers.
# SKIPs where the build or the kernel has no passthrough (~5 s).
source "$(dirname "$0")/lib.sh"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

CONFIG="$(tierfs_kernel_tier fast 64MiB 4KiB)
$(tierfs_kernel_tier warm 64MiB 4KiB)
$(tierfs_kernel_tier huge 64MiB 2MiB)
$(tierfs_shm_tier slow 1 64MiB 64KiB)
data_path = \"server\""
printf '%s\n' "$CONFIG" >"$WORK/check.toml"
"$TIERFS_BIN" check-config "$WORK/check.toml" >"$WORK/check.out" 2>&1 ||
  tierfs_kernel_path_refused "$WORK/check.out"
tierfs_start_mount "$CONFIG" --log-file "$WORK/mount.log"

# A sparse file: 8 KiB of data at 0 and at 3 MiB in 4 MiB, 32 blocks on a
# 4 KiB tier and on the server path. On the 2 MiB tier each written run
# takes a huge folio (the copy sets the size first, so both lie within it):
# 8192 blocks; a copy off it leaves out the folios' pages of zeros (SEEK_DATA
# sees whole folios as data): 32 again. Measured on 6.18 before the fix: a
# plain stat right after each move into the 2 MiB tier said 32.
sparse() {
  python3 - "$1" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.pwrite(fd, b"a" * 8192, 0)
os.pwrite(fd, b"b" * 8192, 3 << 20)
os.ftruncate(fd, 4 << 20)
os.close(fd)
PY
}
changed=0
# move_and_stat FILE FROM TO: FILE (on FROM) moved to TO, its st_blocks
# from the server and from a plain stat compared right after.
move_and_stat() {
  local f=$1 from=$2 to=$3 before cached server
  before=$(stat --cached=never -c %b "$f")
  stat -c %b "$f" >/dev/null # the kernel caches the attributes now
  # A server-path file's for an hour: longer than the kernel path's second.
  [ "$from" != slow ] || sleep 1.5
  "$TIERFS_BIN" migrate --tier "$to" "$f" >"$WORK/m.out" 2>&1 || fail "migrate to $to: $(cat "$WORK/m.out")"
  cached=$(stat -c %b "$f")
  server=$(stat --cached=never -c %b "$f")
  echo "$from -> $to: st_blocks $before -> $server (the server), $cached (a plain stat)"
  [ "$cached" = "$server" ] || fail "after the move $from -> $to a plain stat says $cached blocks, the server $server"
  [ "$before" = "$server" ] || changed=$((changed + 1))
  # Never more than the file's 4 MiB, in 4 KiB blocks or 2 MiB folios (a
  # copy off the kernel path kept its append preallocation: 14336).
  [ "$server" -le 8192 ] || fail "after the move $from -> $to the file holds $server blocks, more than its size"
}
for move in fast:huge slow:huge huge:fast huge:slow fast:warm; do
  from=${move%:*} to=${move#*:} f="$MNT/$from-$to"
  sparse "$f"
  "$TIERFS_BIN" migrate --tier "$from" "$f" >"$WORK/m.out" 2>&1 || fail "migrate to $from: $(cat "$WORK/m.out")"
  move_and_stat "$f" "$from" "$to"
  [ "$(head -c 8192 "$f")" = "$(printf 'a%.0s' $(seq 8192))" ] || fail "$from -> $to changed the file's first bytes"
done
# A sparse file with holes bigger than a huge folio: 1 MiB of data at 0 and
# at 64 MiB (a 4 KiB page of zeros inside each) in 128 MiB, moved along
# every copy out of and into the 2 MiB tier. Its holes stay holes: 2 MiB
# of data hold 4096 blocks on a 4 KiB tier and on the server path, and
# 8192 on the 2 MiB tier (a huge folio per written run); the zeros in a
# partly written folio are not data after it. The server path's blocks of a
# 1 MiB write run a page or two past it (measured: 4104 blocks), which a
# copy onto the kernel path keeps: 64 blocks of slack. Its bytes stay.
# Before the fix the moves off the 2 MiB tier copied whole folios and the
# file grew with every round: 8192, 8192, 10240, 12288, 18432, 18432.
far_sparse() {
  python3 - "$1" <<'PY'
import os, random, sys
rng = random.Random(25)
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
for at in (0, 64 << 20):
    run = bytearray(rng.randbytes(1 << 20))
    run[8192:12288] = bytes(4096)
    os.pwrite(fd, run, at)
os.ftruncate(fd, 128 << 20)
os.close(fd)
PY
}
f="$MNT/far-sparse"
far_sparse "$WORK/far-sparse.model"
: >"$f"
"$TIERFS_BIN" migrate --tier fast "$f" >"$WORK/m.out" 2>&1 || fail "migrate far-sparse to fast: $(cat "$WORK/m.out")"
far_sparse "$f"
for to in huge fast slow huge slow fast; do
  "$TIERFS_BIN" migrate --tier "$to" "$f" >"$WORK/m.out" 2>&1 || fail "migrate far-sparse to $to: $(cat "$WORK/m.out")"
  blocks=$(stat --cached=never -c %b "$f")
  echo "far-sparse -> $to: st_blocks $blocks"
  want_max=$((4096 + 64))
  [ "$to" != huge ] || want_max=8192
  [ "$blocks" -le "$want_max" ] || fail "far-sparse on $to holds $blocks blocks, more than its data's $want_max"
  [ "$blocks" -ge 4032 ] || fail "far-sparse on $to holds $blocks blocks, less than its data"
  cmp "$f" "$WORK/far-sparse.model" || fail "far-sparse on $to differs from its model"
  [ "$(stat -c %s "$f")" = $((128 << 20)) ] || fail "far-sparse on $to has $(stat -c %s "$f") bytes"
done

# A server-path file that a writer appended to and still holds open keeps
# its append preallocation (given back at the last close): moved to the
# kernel path it holds its 4 MiB, fewer blocks than the kernel cached.
f="$MNT/open"
: >"$f"
"$TIERFS_BIN" migrate --tier slow "$f" >"$WORK/m.out" 2>&1 || fail "migrate open to slow: $(cat "$WORK/m.out")"
python3 - "$f" "$WORK/writer" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
for _ in range(64):
    os.write(fd, b"w" * 65536)
open(sys.argv[2] + ".open", "w").close()
end = time.time() + 60
while not os.path.exists(sys.argv[2] + ".stop") and time.time() < end:
    time.sleep(0.05)
os.close(fd)
PY
writer=$!
for _ in $(seq 200); do [ -e "$WORK/writer.open" ] && break; sleep 0.05; done
[ -e "$WORK/writer.open" ] || fail "the writer did not start"
move_and_stat "$f" slow fast
: >"$WORK/writer.stop"
wait "$writer" || fail "the writer failed"
[ "$(stat --cached=never -c %s "$f")" = $((4 << 20)) ] || fail "the written file has $(stat -c %s "$f") bytes"
# Without moves that change the blocks this test could not fail.
[ "$changed" -ge 2 ] || fail "only $changed moves changed st_blocks"
tierfs_stop_mount

[ "$failures" -eq 0 ] || exit 1
echo "PASS"
