# Sourced by shell tests: skip (exit 77, meson's skip code) with the reason when
# a privilege is missing, or fail when TIERFS_REQUIRE_PRIVILEGED=1.
tierfs_require() {
  local reason="$1"
  [ -z "$reason" ] && return 0
  if [ "${TIERFS_REQUIRE_PRIVILEGED:-0}" = 1 ]; then
    echo "FAIL: $reason and TIERFS_REQUIRE_PRIVILEGED=1 forbids skipping" >&2
    exit 1
  fi
  echo "SKIP: $reason"
  exit 77
}
tierfs_missing_root() { [ "$(id -u)" -eq 0 ] || echo "needs root"; }
tierfs_missing_fuse() { [ -r /dev/fuse ] && [ -w /dev/fuse ] || echo "needs /dev/fuse"; }
# tierfs_wait_exit PID [SECONDS]: returns once PID has exited, or fails after
# SECONDS (20). An exited daemon counts as soon as it is a zombie: the orphan
# is its init's to reap, and this machine's init reaps up to 2 s later (a
# `tail --pid` wait took that long on each of the dozens of unmounts).
tierfs_wait_exit() {
  local deadline=$((SECONDS + ${2:-20})) state
  while state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) && [ "$state" != Z ]; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}
