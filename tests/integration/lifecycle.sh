#!/usr/bin/env bash
# The life of a mount's state (docs/operations.md, Lifecycle), on both data
# paths: a numa: tier's memory is named shared memory recorded in the
# mount's state directory (server path) or a tmpfs mounted in that directory
# (kernel path, where the tier takes it); a clean unmount
# leaves nothing in /dev/shm, no tmpfs and nothing in /run/tierfs; a killed
# server's memory and files stay for the next server until `tierfs cleanup`
# (which refuses a live server, and says what it removed) or `tierfs mount
# --fresh`; one server per mount state. Needs root and /dev/fuse.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# The server's named shared memory and state directory, from its descriptors.
server_shm() { ls -l "/proc/$SERVER_PID/fd" | grep -o '/dev/shm/tierfs\.[0-9]*\.[0-9a-f]*' | sort -u; }
server_state() { ls -l "/proc/$SERVER_PID/fd" | grep -o '/run/tierfs/[0-9a-f]*$' | head -n 1; }
# The memory this mount's numa: tier holds: its shared memory objects on the
# server path, the tmpfs mounted in its state directory on the kernel path.
server_memory() {
  if [ "$path" = server ]; then
    server_shm
  else
    awk -v s="$(server_state)/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo | sort -u
  fi
}
# Whether a memory object (a /dev/shm name or a tmpfs mount point) is still there.
present() { [ -e "$1" ] || grep -q " $1 " /proc/self/mountinfo; }
cleanup() { "$TIERFS_BIN" cleanup "$@" 2>&1; }

for data_path in server auto; do
CONFIG="[[tier]]
name = \"dram\"
regions = [\"numa:0\"]
size = \"32MiB\"
data_path = \"$data_path\""
# The path auto gave the tier (the kernel path where it qualifies and this build can take it).
printf '%s\n' "$CONFIG" >"$WORK/probe.toml"
path=server
"$TIERFS_BIN" check-config "$WORK/probe.toml" 2>/dev/null | grep -q '^# tier "dram": kernel path' && path=kernel
echo "lifecycle: data_path = \"$data_path\": the $path path"
[ "$data_path" = server ] || [ "$path" = kernel ] || [ "${TIERFS_LIBFUSE_VERSION:-}" != 3.18 ] ||
  fail "data_path = auto does not take the kernel path with libfuse 3.18"

# 1. Clean unmount: memory back to the system, no state left.
tierfs_start_mount "$CONFIG"
shm=$(server_memory)
state=$(server_state)
[ -n "$shm" ] || fail "$path path: no memory (shared memory or tmpfs) for the numa: region"
[ -d "$state" ] || fail "no state directory"
[ "$(stat -c '%a %U' "$state")" = "700 root" ] || fail "state directory is $(stat -c '%a %U' "$state")"
mode=600
[ "$path" = kernel ] && mode=700
[ "$(stat -c '%a' "$shm")" = "$mode" ] || fail "$shm has mode $(stat -c '%a' "$shm")"
head -c 4194304 /dev/urandom >"$MNT/data"
tierfs_stop_mount
present "$shm" && fail "clean unmount left $shm"
[ -e "$state" ] && fail "clean unmount left $state"

# 2. A live server: cleanup refuses in one line and removes nothing.
tierfs_start_mount "$CONFIG"
shm=$(server_memory)
state=$(server_state)
out=$(cleanup "$MNT")
rc=$?
[ "$rc" -ne 0 ] || fail "cleanup of a live mount succeeded: $out"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "cleanup refusal is not one line: $out"
printf '%s' "$out" | grep -q "is served by another tierfs server, pid $SERVER_PID" ||
  fail "cleanup refusal does not name the server: $out"
present "$shm" && [ -d "$state" ] && mountpoint -q "$MNT" || fail "the refused cleanup removed something"

# 3. A second server for the same state (another mount point) is refused, naming the holder.
mkdir -p "$WORK/other"
printf '[mount]\nstate_dir = "%s"\n%s\n' "$WORK/state" "$CONFIG" >"$WORK/shared.toml"
"$TIERFS_BIN" mount --config "$WORK/shared.toml" "$WORK/other" >"$WORK/first.log" 2>&1 ||
  fail "mount with state_dir: $(cat "$WORK/first.log")"
mkdir -p "$WORK/third"
out=$("$TIERFS_BIN" mount --config "$WORK/shared.toml" "$WORK/third" 2>&1)
[ $? -ne 0 ] || fail "a second server for one state directory mounted"
printf '%s' "$out" | grep -q "is served by another tierfs server, pid [0-9]* (" ||
  fail "second server's refusal: $out"
fusermount3 -u "$WORK/other"
for _ in $(seq 1 100); do [ -e "$WORK/state" ] || break; sleep 0.1; done
[ -e "$WORK/state" ] && fail "clean unmount left the configured state directory of a scratch mount"

# 4. kill -9: the memory survives for the next server; the stale mount is
# refused with a pointer to cleanup; cleanup removes every trace and says so.
kill -9 "$SERVER_PID"
tierfs_wait_exit "$SERVER_PID" 20
SERVER_PID=
present "$shm" || fail "the killed server's memory is gone: nothing to adopt"
out=$("$TIERFS_BIN" mount --config "$WORK/tierfs.toml" "$MNT" 2>&1)
printf '%s' "$out" | grep -q "tierfs cleanup $MNT" || fail "stale mount refusal: $out"
out=$(cleanup "$MNT")
[ $? -eq 0 ] || fail "cleanup after kill -9: $out"
what="removed shared memory"
[ "$path" = kernel ] && what="removed the kernel path's backing files"
expected="unmounted the stale mount $MNT
$what $shm
removed mount state $state"
[ "$out" = "$expected" ] || fail "cleanup said: $out"
present "$shm" && fail "cleanup left $shm"
[ -e "$state" ] && fail "cleanup left $state"
grep -q " $MNT " /proc/self/mountinfo && fail "cleanup left the stale mount"
out=$(cleanup "$MNT")
[ "$out" = "nothing of a mount on $MNT was left" ] || fail "second cleanup said: $out"

# 5. Restart after kill -9 adopts the same memory and the files in it;
# --fresh discards them.
tierfs_start_mount "$CONFIG"
shm=$(server_memory)
head -c 3145728 /dev/urandom >"$WORK/kept"
cp "$WORK/kept" "$MNT/kept" && sync "$MNT/kept"
kill -9 "$SERVER_PID"
tierfs_wait_exit "$SERVER_PID" 20
fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
tierfs_start_mount "$CONFIG"
[ "$(server_memory)" = "$shm" ] || fail "the restarted server did not adopt $shm (has $(server_memory))"
cmp -s "$WORK/kept" "$MNT/kept" || fail "the restarted server lost a file written before kill -9"
kill -9 "$SERVER_PID"
tierfs_wait_exit "$SERVER_PID" 20
fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
"$TIERFS_BIN" mount --fresh --config "$WORK/tierfs.toml" "$MNT" >"$WORK/fresh.log" 2>&1 ||
  fail "mount --fresh: $(cat "$WORK/fresh.log")"
SERVER_PID=$(pgrep -f -- "mount --fresh --config $WORK/tierfs.toml $MNT\$")
[ -e "$MNT/kept" ] && fail "--fresh kept the previous server's files"
if [ "$path" = server ]; then
  [ -e "$shm" ] && fail "--fresh left the previous server's $shm"
  [ -n "$(server_shm)" ] && [ "$(server_shm)" != "$shm" ] || fail "--fresh reused $shm"
fi
tierfs_stop_mount
if [ "$path" = server ]; then
  ls /dev/shm | grep -q "${shm#/dev/shm/}" && fail "$shm left at the end"
else
  present "$shm" && fail "$shm left at the end"
fi

# 6. (file: regions: the server path, once) A persistent file: tier keeps its region's contents across a clean
# unmount (nothing punched or zeroed) and its state directory; a scratch
# tier punches what it held.
marker_file() { yes tierfs-persistent-marker | head -c 1048576 >"$1"; }
kinds="persistent scratch"
[ "$data_path" = server ] || kinds=
for kind in $kinds; do
  rm -rf "$WORK/pstate"
  printf '[mount]\nstate_dir = "%s"\n[[tier]]\nname = "keep"\nregions = ["file:%s"]\nsize = "8MiB"\ncreate = true\npersistent = %s\n' \
    "$WORK/pstate" "$WORK/$kind.img" "$([ $kind = persistent ] && echo true || echo false)" >"$WORK/$kind.toml"
  "$TIERFS_BIN" mount --config "$WORK/$kind.toml" "$MNT" >"$WORK/$kind.log" 2>&1 ||
    fail "$kind mount: $(cat "$WORK/$kind.log")"
  SERVER_PID=$(pgrep -f -- "mount --config $WORK/$kind.toml $MNT\$")
  marker_file "$MNT/marked"
  tierfs_stop_mount
  found=$(grep -c tierfs-persistent-marker "$WORK/$kind.img")
  if [ $kind = persistent ]; then
    [ "$found" -gt 0 ] || fail "persistent tier: its region lost the file's bytes at unmount"
    [ -e "$WORK/pstate/lock" ] || fail "persistent tier: its state directory went at unmount"
    out=$("$TIERFS_BIN" cleanup --config "$WORK/$kind.toml" "$MNT" 2>&1)
    [ "$out" = "nothing of a mount on $MNT was left" ] || fail "persistent cleanup said: $out"
    [ -d "$WORK/pstate" ] || fail "cleanup removed a persistent mount's state directory"
  else
    [ "$found" -eq 0 ] || fail "scratch tier: its region still holds the file's bytes after unmount"
    [ -e "$WORK/pstate" ] && fail "scratch tier: the configured state directory is left"
  fi
done

# 7. A stop request (SIGTERM) in the middle of the unmount or of start-up:
# the server ends the orderly way and leaves no state directory and no
# shared memory (before, `fusermount3 -u; kill` left both every time).
# Other mounts of the machine come and go in /dev/shm: only this server's
# objects count (the state directory records them, and goes after them).
state=
shm=
no_leftovers() {  # no_leftovers WHEN
  local object
  for object in $shm; do present "$object" && fail "$1: left memory $object"; done
  [ -n "$state" ] && [ -e "$state" ] && fail "$1: left $state: $(ls -A "$state" | tr '\n' ' ')"
  grep -q " $MNT " /proc/mounts && fail "$1: left the mount"
  return 0
}
for i in 1 2 3; do
  tierfs_start_mount "$CONFIG"
  state=$(server_state)
  shm=$(server_memory)
  head -c 16777216 /dev/zero >"$MNT/data"
  fusermount3 -u "$MNT"
  kill -TERM "$SERVER_PID" 2>/dev/null
  kill -TERM "$SERVER_PID" 2>/dev/null
  tierfs_wait_exit "$SERVER_PID" 20
  SERVER_PID=
  no_leftovers "SIGTERM during unmount $i"
done
# During start-up, at several points of it (the mount may also come up first).
shm=
for delay in 0.01 0.03 0.06 0.1 0.2; do
  "$TIERFS_BIN" mount -f --config "$WORK/tierfs.toml" "$MNT" >"$WORK/startup.log" 2>&1 &
  pid=$!
  sleep "$delay"
  kill -TERM "$pid"
  wait "$pid"
  no_leftovers "SIGTERM $delay s into start-up"
done
done

[ "$failures" -eq 0 ] && echo "lifecycle: all checks passed"
exit $((failures > 0))
