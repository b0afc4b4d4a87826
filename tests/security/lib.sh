# Sourced by the security tests: the integration kit (tests/integration/lib.sh)
# plus a throw-away local user, mounts started as daemons so that a mount the
# old code wrongly accepted is seen (and cleaned up) instead of hanging, and
# one-line assertions.
source "${TIERFS_SOURCE_ROOT:?}/tests/integration/lib.sh"
command -v useradd >/dev/null || tierfs_require "needs useradd (passwd package)"

EVIL_USER=
EXTRA_MOUNTS=()
security_cleanup() {
  local m
  for m in "${EXTRA_MOUNTS[@]}"; do
    # A stacked mount needs one unmount per layer.
    while grep -q " $m fuse.tierfs " /proc/mounts; do
      fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || break
    done
  done
  tierfs_cleanup
  if [ -n "$EVIL_USER" ]; then
    pkill -KILL -u "$EVIL_USER" 2>/dev/null || true
    userdel "$EVIL_USER" 2>/dev/null || true
  fi
}
trap security_cleanup EXIT

# Creates the throw-away user $EVIL_USER (no home, no login); removed on exit.
make_evil_user() {
  chmod 0755 "$WORK"  # the user must reach the test's directories
  EVIL_USER="tfsec$$"
  local try
  for try in 1 2 3 4 5 6 7 8 9 10; do
    useradd -M -N -s /usr/sbin/nologin "$EVIL_USER" 2>/dev/null && return 0
    sleep 0.2  # another test holds the passwd lock
  done
  echo "FAIL: cannot create the throw-away user $EVIL_USER" >&2
  exit 1
}
as_evil() { runuser -u "$EVIL_USER" -- "$@"; }

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# try_mount CONFIG_FILE MOUNTPOINT [extra args]: mounts as a daemon (returns
# once mounted or failed); sets MOUNT_STATUS and MOUNT_ERR (its stderr).
try_mount() {
  local config=$1 mnt=$2
  shift 2
  EXTRA_MOUNTS+=("$mnt")
  MOUNT_STATUS=0
  "$TIERFS_BIN" mount --config "$config" "$@" "$mnt" 2>"$WORK/mount.err" || MOUNT_STATUS=$?
  MOUNT_ERR=$(cat "$WORK/mount.err")
}

expect_refused() {
  local what=$1 pattern=$2
  [ "$MOUNT_STATUS" -eq 1 ] || fail "$what: mount exited $MOUNT_STATUS, expected a refusal (1): $MOUNT_ERR"
  [ "$(printf '%s\n' "$MOUNT_ERR" | wc -l)" -eq 1 ] || fail "$what: more than one line: $MOUNT_ERR"
  printf '%s\n' "$MOUNT_ERR" | grep -q -- "$pattern" || fail "$what: '$MOUNT_ERR' does not say '$pattern'"
}
