#!/bin/bash
# Another user pre-creates shared-memory objects under every name the old
# scheme (/dev/shm/tierfs.<PID>.<tier>.<i>) would use for the next 500 PIDs: the
# mount still comes up, its objects are private (0600, root's), and they are
# gone after the unmount.
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
objects=$(ls -l "/proc/$pid/map_files" 2>/dev/null | grep -c "/dev/shm/tierfs\." || true)
[ "$objects" -ge 1 ] || fail "the server maps no shared-memory object"
for f in $(ls -l /proc/"$pid"/map_files | grep -o "/dev/shm/tierfs\.[^ ]*" | sort -u); do
  [ "$(stat -c '%u %a' "$f")" = "0 600" ] || fail "$f is $(stat -c '%U %a' "$f"), not root's 600"
  case "$f" in /dev/shm/tierfs.0.????????????????????????????????) ;;
    *) fail "$f is not /dev/shm/tierfs.<uid>.<128 random bits>" ;;
  esac
done
echo data >"$MNT/f"
mapped=$(ls -l /proc/"$pid"/map_files | grep -o "/dev/shm/tierfs\.[^ ]*" | sort -u)
fusermount3 -u "$MNT"
while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
for f in $mapped; do
  [ ! -e "$f" ] || fail "$f stayed after the unmount"
done
echo PASS
