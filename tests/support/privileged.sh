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
