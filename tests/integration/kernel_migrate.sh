#!/usr/bin/env bash
# Migration between the kernel path and the server path, by copy
# (tierfs/core/migrate_path.h, docs/operations.md "Migration and the kernel
# path"): a numa:0 tier with data_path = "kernel" over a file: tier on the
# server path.
#  1. a closed file, kernel -> server -> kernel with `tierfs migrate`: same
#     bytes and holes, the backing file gone and back, passthrough again after;
#  2. a writer with the file open (server-answered handle) and one writing
#     through a shared mapping, while the file bounces between the paths:
#     the file equals the writer's model at the end;
#  3. open passthrough handles (an fd and a shared mapping) hold a move off
#     the kernel path by `tierfs migrate` and user.tierfs.tier until the
#     last is released, then it happens with every byte written before;
#  4. kill -9 at each crash point of both switches, and while a move is
#     held and in the move its last release starts, remount: the file
#     equals the model, on exactly one path;
#  5. the watermark mover demotes a full kernel-path tier's coldest files.
# Takes 2-2.5 min on the shared 2-core test machine (load 3-9); most of it
# the eleven kill -9 runs. SKIPs where the build or the kernel has no passthrough.
source "$(dirname "$0")/lib.sh"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
sum() { sha256sum <"$1" | cut -d' ' -f1; }
stat_json() { getfattr --absolute-names --only-values -n user.tierfs.stats "$MNT" 2>/dev/null; }
op_count() { stat_json | python3 -c "import json,sys; print(json.load(sys.stdin)['ops']['$1'])"; }

STATE="$WORK/state"
CONFIG="[mount]
state_dir = \"$STATE\"
$(tierfs_kernel_tier fast 256MiB 4KiB)
$(tierfs_shm_tier slow 1 256MiB 64KiB)
data_path = \"server\"
persistent = true"
printf '%s\n' "$CONFIG" >"$WORK/check.toml"
"$TIERFS_BIN" check-config "$WORK/check.toml" >"$WORK/check.out" 2>&1 ||
  tierfs_kernel_path_refused "$WORK/check.out"
tierfs_start_mount "$CONFIG" --log-file "$WORK/mount.log"
BACKING="$STATE/kernel-store.page"
# The slow tier is persistent, so an unmount keeps the state and its tmpfs.
trap 'tierfs_cleanup; umount "$BACKING" "$WORK/state2/kernel-store.page" 2>/dev/null; rm -rf "$WORK"' EXIT

# 1. A closed file with a hole, there and back.
python3 - "$MNT/a" "$WORK/a.model" <<'PY'
import os, sys
data = os.urandom(3 << 20)
hole = b"\0" * (2 << 20)
for path in sys.argv[1:]:
    with open(path, "wb") as f:
        f.write(data[: 1 << 20]); f.seek(3 << 20); f.write(data[1 << 20 :])
PY
ino=$(stat -c %i "$MNT/a")
[ "$(tierfs_path_of "$MNT/a")" = kernel ] || fail "a starts on $(tierfs_path_of "$MNT/a")"
touch -d '2001-02-03 04:05:06' "$MNT/a"
mtime=$(stat -c %Y "$MNT/a")
"$TIERFS_BIN" migrate --tier slow "$MNT/a" >"$WORK/m1.out" 2>&1 || fail "migrate a to slow: $(cat "$WORK/m1.out")"
[ "$(tierfs_path_of "$MNT/a")" = server ] || fail "a after the move to slow is on $(tierfs_path_of "$MNT/a")"
[ -e "$BACKING/$ino.fast" ] && fail "a's backing file stayed after the move to slow"
[ "$(sum "$MNT/a")" = "$(sum "$WORK/a.model")" ] || fail "a on slow reads back different bytes"
[ "$(python3 -c "import os; f=os.open('$MNT/a', os.O_RDONLY); print(os.lseek(f, 0, os.SEEK_HOLE))")" = $((1 << 20)) ] ||
  fail "a's hole did not stay a hole on slow"
"$TIERFS_BIN" migrate --tier fast "$MNT/a" >"$WORK/m2.out" 2>&1 || fail "migrate a to fast: $(cat "$WORK/m2.out")"
# The server's answer, not the kernel's cached one (AT_STATX_FORCE_SYNC).
[ "$(stat --cached=never -c %Y "$MNT/a")" = "$mtime" ] ||
  fail "the moves changed a's mtime: $mtime -> $(stat --cached=never -c %Y "$MNT/a")"
[ "$(tierfs_path_of "$MNT/a")" = kernel ] || fail "a after the move back is on $(tierfs_path_of "$MNT/a")"
cmp -s "$BACKING/$ino.fast" "$WORK/a.model" || fail "a's new backing file does not hold its bytes"
reads=$(op_count read)
[ "$(sum "$MNT/a")" = "$(sum "$WORK/a.model")" ] || fail "a back on fast reads back different bytes"
[ "$(op_count read)" = "$reads" ] || fail "a back on fast is read through the server, not passthrough"

# 2. Writers during the moves: through an open handle and through a mapping.
# The writers open while the file is on slow, so their handles are the
# server's; the moves bounce the file until they are done.
for mode in write mmap; do
  f="$MNT/w-$mode"
  head -c 8M /dev/urandom >"$f"
  "$TIERFS_BIN" migrate --tier slow "$f" >/dev/null 2>&1 || fail "$mode: first move to slow"
  tierfs_moves_while_writing "$mode" "$f" "$WORK/w-$mode.model" fast slow busy-ok ||
    fail "$mode: the writer failed"
  moves=$MOVES
  [ "$moves" -ge 4 ] || fail "$mode: only $moves moves while the writer ran"
  [ "$(sum "$f")" = "$(sum "$WORK/w-$mode.model")" ] || fail "$mode: the file differs from the model after $moves moves"
  "$TIERFS_BIN" migrate --tier fast "$f" >/dev/null 2>&1 || fail "$mode: the move to fast after the writer closed"
  [ "$(sum "$f")" = "$(sum "$WORK/w-$mode.model")" ] || fail "$mode: the file differs from the model on fast"
  echo "$mode: $moves moves while writing"
done

# 3. Held moves: a passthrough handle (a writer's fd) and a shared mapping
# whose fd is closed (it sent its RELEASE at the close but still holds the
# backing file) hold a move off the kernel path; `tierfs migrate` and
# user.tierfs.tier accept it (exit 0, "held"), `tierfs map` shows it, the
# holders keep writing, and the move runs after the munmap with every byte
# written before it.
# held_writer FILE MODEL DIR: see held_writer.py.
held_writer() { python3 "$(dirname "$0")/held_writer.py" "$@"; }
wait_for() { # FILE: up to 20 s
  for _ in $(seq 400); do [ -e "$1" ] && return 0; sleep 0.05; done
  return 1
}
held_of() {
  getfattr --absolute-names --only-values -n user.tierfs.map "$1" |
    python3 -c "import json,sys; print(json.load(sys.stdin).get('held_move_tier', '-'))"
}
# "mapped": asked only once the writer's fd is closed, with its mapping the
# only user of the file (no passthrough handle at all).
# ask_held HOW FILE OUT: the move to slow, asked as HOW says.
ask_held() {
  if [ "$1" = xattr ]; then
    setfattr -n user.tierfs.tier -v slow "$2" || fail "held (xattr): user.tierfs.tier = slow with handles open"
  else
    "$TIERFS_BIN" migrate --tier slow "$2" >"$3" 2>&1 || fail "held ($1): migrate with handles open: $(cat "$3")"
    grep -q "held by open handles" "$3" || fail "held ($1): migrate did not say the move is held: $(cat "$3")"
  fi
  [ "$(held_of "$2")" = slow ] || fail "held ($1): tierfs map shows held_move_tier $(held_of "$2")"
}
for how in migrate xattr mapped; do
  f="$MNT/held-$how" d="$WORK/held-$how"
  mkdir -p "$d"
  head -c 4M /dev/urandom >"$f"
  [ "$(tierfs_path_of "$f")" = kernel ] || fail "held ($how): $f starts on $(tierfs_path_of "$f")"
  held_writer "$f" "$d.model" "$d" &
  writer=$!
  wait_for "$d/open" || fail "held ($how): the writer did not start"
  [ "$how" = mapped ] || ask_held "$how" "$f" "$d.out"
  sleep 0.3
  : >"$d/close-fd"
  wait_for "$d/fd-closed" || fail "held ($how): the writer did not close its fd"
  [ "$how" = mapped ] && ask_held "$how" "$f" "$d.out"
  sleep 1.5
  # The mapping still holds the backing file (more than one look of the
  # mover later): nothing moved yet, still held.
  [ "$(tierfs_path_of "$f")" = kernel ] || fail "held ($how): moved while a mapping was still there"
  [ "$(held_of "$f")" = slow ] || fail "held ($how): no longer held with the mapping there: $(held_of "$f")"
  : >"$d/unmap"
  wait "$writer" || fail "held ($how): the writer failed"
  for _ in $(seq 200); do [ "$(tierfs_path_of "$f")" = server ] && break; sleep 0.05; done
  [ "$(tierfs_path_of "$f")" = server ] || fail "held ($how): still on the $(tierfs_path_of "$f") path 10 s after the munmap"
  [ "$(held_of "$f")" = - ] || fail "held ($how): still held after the move"
  [ "$(sum "$f")" = "$(sum "$d.model")" ] || fail "held ($how): the file differs from the writer's model after the held move"
  echo "held ($how): held until the munmap, then moved; bytes equal the model"
done
tierfs_stop_mount

# 4. kill -9 at each crash point of both switches. Each run: a fresh copy
# of a on the source path, an idle kill -9 (a clean unmount would drop the
# test's /dev/shm regions), a server that dies at the point, a third that
# must find a equal to the model on one path.
# fresh_a_then_kill [PATH]: a mount with a fresh copy of a on PATH
# (kernel by default), killed idle.
fresh_a_then_kill() {
  tierfs_start_mount "$CONFIG" --log-file "$WORK/crash.log"
  rm -f "$MNT/a" && cp "$WORK/a.model" "$MNT/a"
  [ "${1:-}" = server ] && "$TIERFS_BIN" migrate --tier slow "$MNT/a" >/dev/null 2>&1
  [ "$(tierfs_path_of "$MNT/a")" = "${1:-kernel}" ] || fail "$LABEL: a starts on $(tierfs_path_of "$MNT/a")"
  sync "$MNT/a"
  kill -9 "$SERVER_PID"
  tierfs_wait_exit "$SERVER_PID" 20
  umount -l "$MNT"
  SERVER_PID=
}
# restart_and_check: after the server died at its point, a third server
# must find a equal to the model on exactly one path.
restart_and_check() {
  local p ino
  tierfs_wait_exit "$SERVER_PID" 20 || fail "$LABEL: the server lives on"
  umount -l "$MNT"
  SERVER_PID=
  tierfs_start_mount "$CONFIG" --log-file "$WORK/restart.log"
  [ "$(sum "$MNT/a")" = "$(sum "$WORK/a.model")" ] || fail "$LABEL: a differs from the model after kill -9"
  p=$(tierfs_path_of "$MNT/a")
  ino=$(stat -c %i "$MNT/a")
  if [ "$p" = server ] && [ -e "$BACKING/$ino.fast" ]; then fail "$LABEL: a on the server path kept a backing file"; fi
  if [ "$p" = kernel ] && ! cmp -s "$BACKING/$ino.fast" "$WORK/a.model"; then fail "$LABEL: a's backing file differs"; fi
  echo "$LABEL: restarted on the $p path"
  tierfs_stop_mount
}
crash_run() {
  local point=$1 to=$2
  LABEL="$point (to $to)"
  fresh_a_then_kill "$([ "$to" = slow ] && echo kernel || echo server)"
  TIERFS_CRASH_AT=$point tierfs_start_mount "$CONFIG" --log-file "$WORK/crash.log"
  # The server dies at the point: the command fails (no connection).
  if "$TIERFS_BIN" migrate --tier "$to" "$MNT/a" >/dev/null 2>&1; then
    tierfs_stop_mount
    return 1
  fi
  restart_and_check
}
crashed=0
for point in migrate.after_chunk migrate.before_switch migrate.after_switch_log; do
  for to in slow fast; do crash_run "$point" "$to" && crashed=$((crashed + 1)); done
done
crash_run migrate.after_link fast && crashed=$((crashed + 1))
crash_run migrate.before_backing_removed slow && crashed=$((crashed + 1))
[ "$crashed" -eq 8 ] || fail "only $crashed of 8 crash runs reached their point"

# kill -9 and held moves: while the move is held (a handle open), and at
# the switch of the move the last release started. Either way a restart
# finds a equal to the model on one path.
crash_held() {
  local point=$1
  LABEL="held crash ($point)"
  fresh_a_then_kill
  TIERFS_CRASH_AT=$point tierfs_start_mount "$CONFIG" --log-file "$WORK/crash.log"
  exec 7<"$MNT/a"
  "$TIERFS_BIN" migrate --tier slow "$MNT/a" >"$WORK/held.out" 2>&1 || fail "$LABEL: migrate: $(cat "$WORK/held.out")"
  grep -q "held by open handles" "$WORK/held.out" || fail "$LABEL: not held: $(cat "$WORK/held.out")"
  # none: killed while held; else the last release starts the move, which dies at the point.
  [ "$point" = none ] && kill -9 "$SERVER_PID"
  exec 7<&-
  restart_and_check
}
crash_held none
crash_held migrate.before_switch
crash_held migrate.before_backing_removed

# 5. The watermark mover demotes a kernel-path tier's coldest files to the
# server-path tier below until the tier's tmpfs is under its low mark.
# A state directory of its own: the first one's tmpfs (256 MiB) would be adopted.
MOVER_CONFIG="[mount]
state_dir = \"$WORK/state2\"
[mover]
interval_ms = 100
$(tierfs_kernel_tier fast 16MiB 4KiB)
high_watermark = 50
low_watermark = 30
$(tierfs_shm_tier slow 1 64MiB 64KiB)
data_path = \"server\""
tierfs_start_mount "$MOVER_CONFIG" --log-file "$WORK/mover.log"
for i in 1 2 3; do
  head -c 3M /dev/urandom >"$WORK/cold$i"
  cp "$WORK/cold$i" "$MNT/cold$i"
  sleep 0.3  # cold1 is the coldest
done
demoted=0
for _ in $(seq 100); do
  demoted=0
  for i in 1 2 3; do [ "$(tierfs_path_of "$MNT/cold$i")" = server ] && demoted=$((demoted + 1)); done
  [ "$demoted" -ge 2 ] && break
  sleep 0.1
done
[ "$demoted" -ge 2 ] || fail "the mover demoted $demoted of 3 files off a 16 MiB kernel-path tier holding 9 MiB (high mark 50 %, low 30 %)"
[ "$(tierfs_path_of "$MNT/cold1")" = server ] || fail "the coldest file stayed on the kernel path"
for i in 1 2 3; do
  [ "$(sum "$MNT/cold$i")" = "$(sum "$WORK/cold$i")" ] || fail "cold$i differs after the mover"
done
tierfs_stop_mount

[ "$failures" -eq 0 ] || exit 1
echo "PASS"
