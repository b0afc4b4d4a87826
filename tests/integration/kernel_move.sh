#!/usr/bin/env bash
# In-place moves between kernel-path tiers that share a tmpfs
# (tierfs/server/fs_kernel_move.cc, docs/operations.md "Migration and the
# kernel path"), and the kernel-path tiers' space. Two 4 KiB kernel-path
# tiers (one tmpfs), a 2 MiB one (another tmpfs) and a server-path tier, on
# this machine's node 0 (the VM placement suite measures where pages go):
#  1. the kernel-path tiers map no shared memory of their own; a closed
#     file moves fast -> warm by `tierfs migrate` and back by
#     user.tierfs.tier: its backing file is renamed, never copied (same
#     inode), its bytes stay, reads stay off the server, and statfs and
#     `tierfs stats` count it on its tier;
#  2. writers through an open passthrough handle and through a shared
#     mapping keep writing while the file bounces between the tiers: the
#     file equals the writer's model;
#  3. a move to the 2 MiB tier (another tmpfs) is a copy in the kernel,
#     held back while a passthrough handle is open, keeping bytes and mtime;
#  4. kill -9 in the middle of a move and a remount: the next server
#     finishes the move (one backing file, named for the new tier) and the
#     file equals the model;
#  5. kill -9 at each step of the copy's switch: one backing file after the
#     restart, the old or the copy as the step says, equal to the model.
# Takes about 40 s. SKIPs where the build or the kernel has no passthrough.
source "$(dirname "$0")/lib.sh"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
sum() { sha256sum <"$1" | cut -d' ' -f1; }
stat_json() { getfattr --absolute-names --only-values -n user.tierfs.stats "$MNT" 2>/dev/null; }
op_count() { stat_json | python3 -c "import json,sys; print(json.load(sys.stdin)['ops']['$1'])"; }
tier_used() {
  stat_json | python3 -c "import json,sys; print({t['name']: t['used_bytes'] for t in json.load(sys.stdin)['tiers']}['$1'])"
}
kernel_tier() { # the tier whose name the file's backing file has
  local ino
  ino=$(stat -c %i "$1")
  # shellcheck disable=SC2012
  ls "$BACKING" "$HUGE" 2>/dev/null | sed -n "s/^$ino\.\([^.]*\)\(\.moving\)\{0,1\}\$/\1\2/p"
}

STATE="$WORK/state"
kernel_tier_toml() { # NAME SIZE GRANULARITY
  printf '[[tier]]\nname = "%s"\nregions = ["numa:0"]\nsize = "%s"\ngranularity = "%s"\ndata_path = "kernel"\n\n' "$@"
}
CONFIG="[mount]
state_dir = \"$STATE\"
$(kernel_tier_toml fast 64MiB 4KiB)
$(kernel_tier_toml warm 64MiB 4KiB)
$(kernel_tier_toml huge 64MiB 2MiB)
$(tierfs_shm_tier slow 1 64MiB 64KiB)
data_path = \"server\"
persistent = true"
printf '%s\n' "$CONFIG" >"$WORK/check.toml"
"$TIERFS_BIN" check-config "$WORK/check.toml" >"$WORK/check.out" 2>&1 ||
  tierfs_kernel_path_refused "$WORK/check.out"
BACKING="$STATE/kernel-store.page"
HUGE="$STATE/kernel-store.huge"
# The slow tier is persistent, so an unmount keeps the state and its tmpfs.
trap 'tierfs_cleanup; umount "$BACKING" "$STATE/kernel-store.huge" 2>/dev/null; rm -rf "$WORK"' EXIT
tierfs_start_mount "$CONFIG" --log-file "$WORK/mount.log"

# 1. A closed file, fast -> warm -> fast. The kernel-path tiers map no
# region of their own (their memory is the tmpfs's): no shared memory record.
for tier in fast warm huge; do
  [ ! -e "$STATE/shm.$tier.0" ] || fail "tier $tier has shared memory $(cat "$STATE/shm.$tier.0") besides its tmpfs"
done
# statfs: every tier's capacity, 4 x 64 MiB in 4 KiB blocks.
[ "$(stat -f -c %b "$MNT")" = 65536 ] || fail "statfs: $(stat -f -c %b "$MNT") blocks, not 65536"
free_before=$(stat -f -c %f "$MNT")
head -c 8M /dev/urandom >"$WORK/a.model"
cp "$WORK/a.model" "$MNT/a"
free_after=$(stat -f -c %f "$MNT")
# 8 MiB in 4 KiB blocks: 2048 (the tmpfs counts its own pages the same way).
[ $((free_before - free_after)) -ge 2048 ] && [ $((free_before - free_after)) -le 2100 ] ||
  fail "statfs: writing 8 MiB to a kernel-path file took $((free_before - free_after)) free blocks, not 2048"
[ "$(tier_used fast)" -ge $((8 << 20)) ] || fail "stats: fast uses $(tier_used fast) B after 8 MiB written"
[ "$(kernel_tier "$MNT/a")" = fast ] || fail "a starts on $(kernel_tier "$MNT/a")"
ino=$(stat -c %i "$MNT/a")
inode_before=$(stat -c %i "$BACKING/$ino.fast")
"$TIERFS_BIN" migrate --tier warm "$MNT/a" >"$WORK/m.out" 2>&1 || fail "migrate a to warm: $(cat "$WORK/m.out")"
[ "$(kernel_tier "$MNT/a")" = warm ] || fail "a after the move to warm: backing file $(ls "$BACKING")"
[ "$(stat -c %i "$BACKING/$ino.warm" 2>/dev/null)" = "$inode_before" ] ||
  fail "the move to warm copied the backing file instead of renaming it"
[ "$(tier_used warm)" -ge $((8 << 20)) ] && [ "$(tier_used fast)" -lt $((1 << 20)) ] ||
  fail "stats after the move: fast $(tier_used fast) B, warm $(tier_used warm) B"
[ "$(stat -f -c %f "$MNT")" = "$free_after" ] || fail "statfs: the move changed free blocks $free_after -> $(stat -f -c %f "$MNT")"
reads=$(op_count read)
[ "$(sum "$MNT/a")" = "$(sum "$WORK/a.model")" ] || fail "a on warm reads back different bytes"
[ "$(op_count read)" = "$reads" ] || fail "a on warm is read through the server, not passthrough"
setfattr -n user.tierfs.tier -v fast "$MNT/a" || fail "user.tierfs.tier = fast"
[ "$(kernel_tier "$MNT/a")" = fast ] || fail "a after user.tierfs.tier = fast: $(ls "$BACKING")"
[ "$(sum "$MNT/a")" = "$(sum "$WORK/a.model")" ] || fail "a back on fast reads back different bytes"

# 2. Writers during the moves: through an open passthrough handle and
# through a shared mapping. In-place moves need no quiet file.
for mode in write mmap; do
  f="$MNT/w-$mode"
  head -c 8M /dev/urandom >"$f"
  tierfs_moves_while_writing "$mode" "$f" "$WORK/w-$mode.model" warm fast ||
    fail "$mode: the writer failed"
  moves=$MOVES
  [ "$moves" -ge 6 ] || fail "$mode: only $moves moves while the writer ran"
  [ "$(sum "$f")" = "$(sum "$WORK/w-$mode.model")" ] || fail "$mode: the file differs from the model after $moves moves"
  echo "$mode: $moves in-place moves while writing"
done

# 3. Another tmpfs (2 MiB pages): by copy in the kernel, for a file no
# passthrough handle holds; same bytes, same mtime, passthrough after.
# Then with a writer through an fd and a shared mapping, fast -> huge and
# huge -> fast: the move is held (accepted, "held") until the last
# passthrough release and the munmap of a mapping whose fd was closed, and
# the file then equals the writer's model.
held_writer() { python3 "$(dirname "$0")/held_writer.py" "$@"; }
wait_for() { for _ in $(seq 400); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }
# kB of FILE's first 4 MiB mapped by PMD (huge folios), from the kernel
# (/proc/self/smaps of a mapping through the mount: the backing file's).
pmd_kib() {
  python3 - "$1" <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
m = mmap.mmap(fd, 4 << 20, prot=mmap.PROT_READ)
for i in range(0, 4 << 20, 4096):
    m[i]
inside = False
for line in open("/proc/self/smaps"):
    if sys.argv[1] in line:
        inside = True
    elif inside and line.startswith("ShmemPmdMapped"):
        print(line.split()[1])
        break
PY
}
f="$MNT/held" d="$WORK/held"
head -c 4M /dev/urandom >"$f"
for to in huge fast; do
  rm -rf "$d" && mkdir -p "$d"
  held_writer "$f" "$d.model" "$d" &
  writer=$!
  wait_for "$d/open" || fail "held to $to: the writer did not start"
  "$TIERFS_BIN" migrate --tier "$to" "$f" >"$d.out" 2>&1 || fail "held: migrate to $to with handles open: $(cat "$d.out")"
  grep -q "held by open handles" "$d.out" || fail "held: migrate to $to did not say the move is held: $(cat "$d.out")"
  sleep 0.3
  : >"$d/close-fd"
  wait_for "$d/fd-closed" || fail "held to $to: the writer did not close its fd"
  sleep 0.3
  # The mapping alone (its fd closed) still holds the backing file.
  [ "$(kernel_tier "$f")" != "$to" ] || fail "held to $to: moved while a mapping was still there"
  : >"$d/unmap"
  wait "$writer" || fail "held to $to: the writer failed"
  for _ in $(seq 200); do [ "$(kernel_tier "$f")" = "$to" ] && break; sleep 0.05; done
  [ "$(kernel_tier "$f")" = "$to" ] || fail "held to $to: on $(kernel_tier "$f") 10 s after the munmap"
  [ "$(sum "$f")" = "$(sum "$d.model")" ] || fail "held to $to: the file differs from the writer's model"
  kib=$(pmd_kib "$f")
  # The copy's folios are its new tmpfs's: 2 MiB on huge, 4 KiB on fast.
  [ "$kib" = "$([ "$to" = huge ] && echo 4096 || echo 0)" ] || fail "held to $to: $kib kB mapped by PMD after the move"
  echo "held to $to: held until the munmap, then moved, bytes equal the model, $kib kB mapped by PMD"
done
mtime=$(stat -c %Y "$MNT/a")
"$TIERFS_BIN" migrate --tier huge "$MNT/a" >"$WORK/m3.out" 2>&1 || fail "migrate a to huge: $(cat "$WORK/m3.out")"
[ -e "$HUGE/$ino.huge" ] && [ ! -e "$BACKING/$ino.fast" ] || fail "a after the copy to huge: $(ls "$BACKING" "$HUGE")"
[ "$(stat --cached=never -c %Y "$MNT/a")" = "$mtime" ] ||
  fail "the copy changed a's mtime: $mtime -> $(stat --cached=never -c %Y "$MNT/a")"
reads=$(op_count read)
[ "$(sum "$MNT/a")" = "$(sum "$WORK/a.model")" ] || fail "a on huge reads back different bytes"
[ "$(op_count read)" = "$reads" ] || fail "a on huge is read through the server, not passthrough"
"$TIERFS_BIN" migrate --tier fast "$MNT/a" >"$WORK/m3.out" 2>&1 || fail "migrate a back to fast: $(cat "$WORK/m3.out")"
[ "$(kernel_tier "$MNT/a")" = fast ] && [ ! -e "$HUGE/$ino.huge" ] || fail "a after the copy back: $(ls "$BACKING" "$HUGE")"
[ "$(sum "$MNT/a")" = "$(sum "$WORK/a.model")" ] || fail "a back on fast reads back different bytes"
# From the server path onto the 2 MiB tier: the copy's folios are huge too
# (the copy is sized before its bytes: huge=within_size gives huge folios
# only below the size; written first, they were 4 KiB, 0 kB PMD-mapped).
f="$MNT/from-server"
head -c 4M /dev/urandom >"$WORK/from-server.model"
cp "$WORK/from-server.model" "$f"
"$TIERFS_BIN" migrate --tier slow "$f" >"$WORK/m3.out" 2>&1 || fail "migrate to slow: $(cat "$WORK/m3.out")"
"$TIERFS_BIN" migrate --tier huge "$f" >"$WORK/m3.out" 2>&1 || fail "migrate slow -> huge: $(cat "$WORK/m3.out")"
[ "$(kernel_tier "$f")" = huge ] || fail "slow -> huge: the file is on '$(kernel_tier "$f")'"
[ "$(sum "$f")" = "$(sum "$WORK/from-server.model")" ] || fail "slow -> huge: different bytes"
kib=$(pmd_kib "$f")
[ "$kib" = 4096 ] || fail "slow -> huge: $kib kB of 4096 mapped by PMD"
echo "slow -> huge: $kib kB mapped by PMD"
tierfs_stop_mount

# crash_moving_a POINT TIER: a fresh copy of the model in a (its server
# killed once, so a is one the next server adopted), then `tierfs migrate`
# of a to TIER by a server that dies at crash point POINT. Returns 1 when
# the move finished instead (the point was never reached).
crash_moving_a() {
  local point=$1 tier=$2
  tierfs_start_mount "$CONFIG" --log-file "$WORK/crash.log"
  rm -f "$MNT/a" && cp "$WORK/a.model" "$MNT/a" && sync "$MNT/a"
  kill -9 "$SERVER_PID"
  tierfs_wait_exit "$SERVER_PID" 20
  umount -l "$MNT"
  SERVER_PID=
  TIERFS_CRASH_AT=$point tierfs_start_mount "$CONFIG" --log-file "$WORK/crash.log"
  if "$TIERFS_BIN" migrate --tier "$tier" "$MNT/a" >/dev/null 2>&1; then
    tierfs_stop_mount
    return 1
  fi
  tierfs_wait_exit "$SERVER_PID" 20 || fail "$point: the server lives on"
  umount -l "$MNT"
  SERVER_PID=
}

# 4. kill -9 in the middle of a move (the file renamed for the new tier,
# its pages not yet moved; the pages moved, the last rename not yet done).
crash_run() {
  local point=$1
  crash_moving_a "$point" warm || return 1
  [ "$(ls "$BACKING" | grep -c '\.moving$')" = 1 ] || fail "$point: no .moving backing file after the crash: $(ls "$BACKING")"
  tierfs_start_mount "$CONFIG" --log-file "$WORK/restart.log"
  [ "$(sum "$MNT/a")" = "$(sum "$WORK/a.model")" ] || fail "$point: a differs from the model after kill -9"
  [ "$(kernel_tier "$MNT/a")" = warm ] || fail "$point: a's backing file after the restart: $(ls "$BACKING")"
  [ "$(ls "$BACKING" | grep -c '\.moving$')" = 0 ] || fail "$point: the restart left a .moving file: $(ls "$BACKING")"
  grep -q "finished its move to tier warm" "$WORK/restart.log" || fail "$point: the restart did not say it finished the move"
  echo "$point: the restart finished the move"
  tierfs_stop_mount
}
crashed=0
for point in kmove.after_begin kmove.before_end; do crash_run "$point" && crashed=$((crashed + 1)); done
[ "$crashed" -eq 2 ] || fail "only $crashed of 2 crash runs reached their point"

# 5. kill -9 at each step of the copy's switch to the other tmpfs: the old
# file retired (only it named: kept), the copy named (both: the copy kept),
# the switch logged (the old one not yet removed).
copy_crash_run() {
  local point=$1 want=$2 ino
  crash_moving_a "$point" huge || return 1
  echo "$point: after the crash: $(ls "$BACKING" "$HUGE" | tr '\n' ' ')"
  tierfs_start_mount "$CONFIG" --log-file "$WORK/restart.log"
  ino=$(stat -c %i "$MNT/a")
  [ "$(sum "$MNT/a")" = "$(sum "$WORK/a.model")" ] || fail "$point: a differs from the model after kill -9"
  if [ "$want" = huge ]; then
    [ -e "$HUGE/$ino.huge" ] && [ -z "$(ls "$BACKING")" ] || fail "$point: want a on huge only: $(ls "$BACKING" "$HUGE")"
  else
    [ -e "$BACKING/$ino.fast" ] && [ -z "$(ls "$HUGE")" ] || fail "$point: want a on fast only: $(ls "$BACKING" "$HUGE")"
  fi
  echo "$point: the restart kept a on $want"
  tierfs_stop_mount
}
crashed=0
copy_crash_run migrate.after_retire fast && crashed=$((crashed + 1))
copy_crash_run migrate.after_link huge && crashed=$((crashed + 1))
copy_crash_run migrate.before_backing_removed huge && crashed=$((crashed + 1))
[ "$crashed" -eq 3 ] || fail "only $crashed of 3 copy crash runs reached their point"

[ "$failures" -eq 0 ] || exit 1
echo "PASS"
