# Sourced by the integration shell tests: start a foreground tierfs mount on a
# configuration and stop it again, with cleanup on any exit.
#   tierfs_start_mount "TOML text"   sets MNT, WORK, SERVER_PID
#   tierfs_stop_mount                unmounts, waits, checks the server's exit status
source "${TIERFS_SOURCE_ROOT:?}/tests/support/privileged.sh"
tierfs_require "$(tierfs_missing_root)"
tierfs_require "$(tierfs_missing_fuse)"
TIERFS_BIN=${TIERFS_BIN:?TIERFS_BIN must name the tierfs binary}

WORK=$(mktemp -d /tmp/tierfs-sh-XXXXXX)
MNT="$WORK/mnt"
SERVER_PID=
mkdir -p "$MNT"

tierfs_cleanup() {
  if grep -q " $MNT " /proc/mounts; then
    fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
  fi
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK" /dev/shm/tierfs-sh-$$-* 2>/dev/null || true
}
trap tierfs_cleanup EXIT

tierfs_start_mount() {
  printf '%s\n' "$1" >"$WORK/tierfs.toml"
  local before
  before=$(stat -c %d "$MNT")
  "$TIERFS_BIN" mount -f --config "$WORK/tierfs.toml" "$MNT" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 2000); do
    [ "$(stat -c %d "$MNT")" != "$before" ] && return 0
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "FAIL: the server did not mount:" >&2
      cat "$WORK/server.log" >&2
      exit 1
    fi
    sleep 0.01
  done
  echo "FAIL: the mount did not come up in 20 s" >&2
  exit 1
}

tierfs_stop_mount() {
  fusermount3 -u "$MNT"
  local status=0
  wait "$SERVER_PID" || status=$?
  SERVER_PID=
  if [ "$status" -ne 0 ]; then
    echo "FAIL: the server exited with $status:" >&2
    cat "$WORK/server.log" >&2
    exit 1
  fi
  rm -f /dev/shm/tierfs-sh-$$-*
}

# A tier over `ways` file regions in /dev/shm (the config refuses one NUMA node twice in a tier).
tierfs_shm_tier() {
  local name=$1 ways=$2 size=$3 granularity=$4 regions="" i
  for i in $(seq 1 "$ways"); do
    regions+="${regions:+, }\"file:/dev/shm/tierfs-sh-$$-$name-$i\""
  done
  printf '[[tier]]\nname = "%s"\nregions = [%s]\nsize = "%s"\ngranularity = "%s"\ncreate = true\n\n' \
    "$name" "$regions" "$size" "$granularity"
}
