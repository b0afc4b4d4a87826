#!/usr/bin/env bash
# Bounded stress of the namespace and data paths: stress-ng's file-system
# stressors, then dbench with its client load file. Any error fails the test.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tierfs_start_mount "$(tierfs_shm_tier data 2 512MiB 64KiB)"

mkdir "$MNT/stress-ng"
if ! (cd "$MNT/stress-ng" && stress-ng --temp-path "$MNT/stress-ng" --timeout 20s \
    --hdd 2 --hdd-bytes 8M --dentry 1 --dir 1 --rename 1 --link 1 --symlink 1 \
    --fallocate 1 --fallocate-bytes 8M --seek 1 --seek-size 8M --xattr 1 --lockf 1 \
    --metrics-brief >"$WORK/stress-ng.out" 2>&1); then
  echo "FAIL: stress-ng" >&2
  cat "$WORK/stress-ng.out" >&2
  exit 1
fi
grep -E "successful run completed|passed" "$WORK/stress-ng.out" | tail -2
if grep -qiE "fail|error" <(grep -v "failed: 0" "$WORK/stress-ng.out"); then
  echo "FAIL: stress-ng reported failures" >&2
  cat "$WORK/stress-ng.out" >&2
  exit 1
fi
echo "ok: stress-ng"

mkdir "$MNT/dbench"
if ! dbench -t 20 -D "$MNT/dbench" -c /usr/share/dbench/client.txt 4 >"$WORK/dbench.out" 2>&1; then
  echo "FAIL: dbench" >&2
  tail -30 "$WORK/dbench.out" >&2
  exit 1
fi
grep "^Throughput" "$WORK/dbench.out"
echo "ok: dbench"

tierfs_stop_mount
