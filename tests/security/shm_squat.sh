#!/bin/bash
# Another user pre-creates shared-memory objects under every name the old
# scheme (/dev/shm/tierfs.<PID>.<tier>.<i>) would use for the next 500 PIDs: the
# mount still comes up; its objects have unpredictable names and are private
# (0600, root's). They keep their names while the mount lives (recorded in the
# mount's 0700 state directory, so a restarted server can adopt them) and go
# at unmount.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_evil_user

# Other users' squats are removed again at once: on a shared machine they
# would stop every older tierfs binary's mounts as well.
squat_cleanup() {
  find /dev/shm -maxdepth 1 -user "$EVIL_USER" -name 'tierfs.*' -delete 2>/dev/null || true
  security_cleanup
}
trap squat_cleanup EXIT
next=$(($(cat /proc/sys/kernel/ns_last_pid 2>/dev/null || echo $$) + 1))
as_evil sh -c "i=$next; while [ \$i -lt $((next + 500)) ]; do true 2>/dev/null >/dev/shm/tierfs.\$i.dram.0; i=\$((i + 1)); done" || true
[ "$(find /dev/shm -maxdepth 1 -user "$EVIL_USER" -name 'tierfs.*' | wc -l)" -gt 400 ] ||
  fail "could not squat the shared-memory names"

printf '[[tier]]\nname = "dram"\nregions = ["numa:0"]\nsize = "16MiB"\ngranularity = "64KiB"\n' >"$WORK/dram.toml"
try_mount "$WORK/dram.toml" "$MNT"
[ "$MOUNT_STATUS" -eq 0 ] || fail "squatted shared-memory names stopped the mount: $MOUNT_ERR"
pid=$(pgrep -n -f "tierfs mount --config $WORK/dram.toml")
mapped=$(ls -l "/proc/$pid/map_files" | grep -o "/dev/shm/tierfs\.[^ ]*" | sort -u)
[ -n "$mapped" ] || fail "the server maps no shared-memory object"
state=$(ls -l "/proc/$pid/fd" | grep -o '/run/tierfs/[0-9a-f]*$' | head -n 1)
[ "$(stat -c '%u %a' "$state")" = "0 700" ] || fail "state directory $state is not root's 0700"
for f in $mapped; do
  case "$f" in /dev/shm/tierfs.0.????????????????????????????????) ;;
    *) fail "$f is not /dev/shm/tierfs.<uid>.<128 random bits>" ;;
  esac
  [ "$(stat -c '%u %a' "$f")" = "0 600" ] || fail "$f is not root's 0600"
  grep -qsx "${f#/dev/shm}" "$state"/shm.* || fail "$f is not recorded in $state"
done
echo data >"$MNT/f"
[ "$(cat "$MNT/f")" = data ] || fail "the mount does not work"
fusermount3 -u "$MNT"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
for f in $mapped; do [ ! -e "$f" ] || fail "$f is left after the unmount"; done
echo PASS
