#!/usr/bin/env bash
# Restarts as sites and scripts do them:
#  1. the built-in default mount killed with kill -9 comes back with every
#     file after free memory changed in between (before: the restart sized
#     the tier anew and refused the memory the dead server left);
#  2. `umount` then `mount` at once, 10 times under disk load, on a
#     persistent file: tier and on the default (before: the new server found
#     the regions still held by the old one, which umount does not wait for);
#  3. `mount -o remount,ro` and `remount,rw` on a live mount switch it in
#     place (before: a second server was started and refused); remount,ro
#     with a file open for writing is refused in one line.
source "$(dirname "$0")/lib.sh"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
sum() { sha256sum <"$1" | cut -d' ' -f1; }
default_pid() { pgrep -f -- "^$TIERFS_BIN mount .*$MNT\$"; }
hog="/dev/shm/tierfs-sh-$$-hog"
load_pid=
stop_load() { [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null && wait "$load_pid" 2>/dev/null; load_pid=; }
trap 'stop_load; rm -f "$hog" "$WORK/load"*; tierfs_cleanup' EXIT

# 1. The default mount after kill -9, with less memory free than before.
"$TIERFS_BIN" mount --fresh "$MNT" >"$WORK/default.log" 2>&1 || fail "default mount: $(cat "$WORK/default.log")"
SERVER_PID=$(default_pid)
size_before=$(stat -f -c '%b %S' "$MNT" | awk '{print $1 * $2}')
for i in 1 2 3; do head -c $((i * 3 * 1048576)) /dev/urandom >"$MNT/file$i"; done
mkdir "$MNT/dir" && echo kept >"$MNT/dir/note"
sync "$MNT/file1" "$MNT/file2" "$MNT/file3" "$MNT/dir/note"
for i in 1 2 3; do sum "$MNT/file$i" >"$WORK/sum$i"; done
kill -9 "$SERVER_PID"
tierfs_wait_exit "$SERVER_PID" 20
umount -l "$MNT" 2>/dev/null
SERVER_PID=
# Take a good share of free memory, so a new computation gives another size.
free_kib=$(awk '/^MemFree:/ {print $2}' /proc/meminfo)
head -c $((free_kib / 8 * 1024)) /dev/zero >"$hog"
if ! "$TIERFS_BIN" mount --log-file "$WORK/restart.log" "$MNT" >"$WORK/restart.err" 2>&1; then
  fail "default mount after kill -9: $(cat "$WORK/restart.err")"
else
  SERVER_PID=$(default_pid)
  size_after=$(stat -f -c '%b %S' "$MNT" | awk '{print $1 * $2}')
  [ "$size_after" = "$size_before" ] || fail "the tier is $size_after bytes after the restart, $size_before before"
  for i in 1 2 3; do
    [ "$(sum "$MNT/file$i")" = "$(cat "$WORK/sum$i")" ] || fail "file$i differs after the restart"
  done
  [ "$(cat "$MNT/dir/note" 2>&1)" = kept ] || fail "dir/note after the restart: $(cat "$MNT/dir/note" 2>&1)"
  grep -q "keeps the .* the previous server chose" "$WORK/restart.log" ||
    fail "the log does not say the size was kept: $(cat "$WORK/restart.log")"
  tierfs_stop_mount
fi
rm -f "$hog"

# 2. umount; mount at once, under disk load, 10 times per configuration.
(while :; do dd if=/dev/zero of="$WORK/load" bs=1M count=256 conv=fsync status=none; done) &
load_pid=$!
printf '[mount]\nstate_dir = "%s"\n[[tier]]\nname = "keep"\nregions = ["file:%s"]\nsize = "32MiB"\ncreate = true\npersistent = true\n' \
  "$WORK/pstate" "$WORK/persistent.img" >"$WORK/persistent.toml"
head -c 4M /dev/urandom >"$WORK/payload"
for config in persistent default; do
  args=()
  [ $config = persistent ] && args=(--config "$WORK/persistent.toml")
  "$TIERFS_BIN" mount "${args[@]}" "$MNT" >"$WORK/cycle.log" 2>&1 || fail "$config first mount: $(cat "$WORK/cycle.log")"
  cp "$WORK/payload" "$MNT/payload"
  ok=0
  for i in $(seq 1 10); do
    umount "$MNT" || { fail "$config cycle $i: umount failed"; break; }
    if "$TIERFS_BIN" mount "${args[@]}" "$MNT" >"$WORK/cycle.log" 2>&1; then
      ok=$((ok + 1))
      # A scratch (default) mount starts empty after a clean unmount: give it the file again.
      [ -e "$MNT/payload" ] || cp "$WORK/payload" "$MNT/payload"
      cmp -s "$WORK/payload" "$MNT/payload" || fail "$config cycle $i: payload differs"
    else
      fail "$config cycle $i: mount right after umount: $(cat "$WORK/cycle.log")"
    fi
  done
  [ $config = persistent ] && { cmp -s "$WORK/payload" "$MNT/payload" || fail "persistent payload lost"; }
  echo "$config: $ok of 10 immediate remounts under disk load"
  SERVER_PID=$(pgrep -f -- "mount ${args[*]:+${args[*]} }$MNT\$")
  tierfs_stop_mount
done
stop_load

# 3. remount,ro and remount,rw through mount(8) and the helper (mount.fuse3 runs
# `tierfs SOURCE DIR -o OPTS`), in a private mount namespace with tierfs on PATH.
cat >"$WORK/remount.sh" <<EOF
set -u
mkdir -p "$WORK/bin"; ln -sf "$TIERFS_BIN" "$WORK/bin/tierfs"
mount --bind "$WORK/bin" /usr/local/sbin
mount -t fuse.tierfs scratch "$MNT" -o "config=$WORK/persistent.toml" || { echo "mount failed"; exit 1; }
echo before >"$MNT/f"
exec 7>>"$MNT/f"
mount -o remount,ro "$MNT" 2>"$WORK/busy.err" && echo "remount,ro with a writer open succeeded"
[ "\$(wc -l <"$WORK/busy.err")" -eq 1 ] || echo "remount,ro with a writer: not one line: \$(cat "$WORK/busy.err")"
grep -q "open for writing" "$WORK/busy.err" || echo "remount,ro with a writer: \$(cat "$WORK/busy.err")"
exec 7>&-
mount -o remount,ro "$MNT" || echo "remount,ro failed"
grep " $MNT " /proc/self/mountinfo | grep -q " ro," || echo "not read-only after remount,ro"
( echo more >"$MNT/g" ) 2>/dev/null && echo "a write succeeded on the read-only mount"
[ "\$(cat "$MNT/f")" = before ] || echo "read on the read-only mount: \$(cat "$MNT/f")"
[ "\$(pgrep -fc -- "tierfs .*$MNT")" -eq 1 ] || echo "not one server after remount,ro: \$(pgrep -fa -- "tierfs .*$MNT")"
mount -o remount,rw "$MNT" || echo "remount,rw failed"
echo after >"$MNT/f" || echo "cannot write after remount,rw"
[ "\$(cat "$MNT/f")" = after ] || echo "read after remount,rw: \$(cat "$MNT/f")"
mount -o remount,ro,config=/etc/other.toml "$MNT" 2>"$WORK/config.err" && echo "remount with config= succeeded"
grep -q "remount changes only ro and rw" "$WORK/config.err" || echo "remount with config=: \$(cat "$WORK/config.err")"
pid=\$(pgrep -f -- "tierfs .*$MNT")
umount "$MNT"
timeout 20 tail -s 0.05 --pid="\$pid" -f /dev/null
EOF
problems=$(unshare --mount --propagation private bash "$WORK/remount.sh" 2>&1)
[ -z "$problems" ] || fail "remount: $problems"

[ "$failures" -eq 0 ] && echo "restart: all checks passed"
exit $((failures > 0))
