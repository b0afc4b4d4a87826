#!/bin/bash
# Another user pre-creates shared-memory objects under every name the old
# scheme (/dev/shm/tierfs.<PID>.<tier>.<i>) would use for the next PIDs: the
# mount still comes up, its objects are private (0600, root's), and they are
# gone after the unmount.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_evil_user

next=$(($(cat /proc/sys/kernel/ns_last_pid 2>/dev/null || echo $$) + 1))
as_evil sh -c "i=$next; while [ \$i -lt $((next + 3000)) ]; do : >/dev/shm/tierfs.\$i.dram.0; i=\$((i + 1)); done"
trap 'find /dev/shm -maxdepth 1 -user "$EVIL_USER" -delete 2>/dev/null; security_cleanup' EXIT

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
