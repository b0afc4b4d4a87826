#!/usr/bin/env bash
# Runs bench/server_bench.py (tierfs against tmpfs and the reference FUSE
# server) once the privileges it needs are there: root for the mounts and
# /dev/fuse. Without them it skips with the reason (exit 77), or fails under
# TIERFS_REQUIRE_PRIVILEGED=1. Arguments go to server_bench.py (--help).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "${TIERFS_SOURCE_ROOT:-$here/..}/tests/support/privileged.sh"
tierfs_require "$(tierfs_missing_root)"
tierfs_require "$(tierfs_missing_fuse)"
exec python3 "$here/server_bench.py" "$@"
