#!/usr/bin/env bash
# Measures the server's metadata memory per inode: its RSS before and after
# creating 100000 empty files, divided by the count. Checks every file exists.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
count=${TIERFS_INODE_COUNT:-100000}

tierfs_start_mount "$(tierfs_shm_tier data 1 16MiB 4KiB)"
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }
ls "$MNT" >/dev/null
before=$(rss_kib)
python3 - "$MNT" "$count" <<'PY'
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
for d in range(100):
    os.mkdir(f"{root}/d{d}")
for i in range(count):
    os.close(os.open(f"{root}/d{i % 100}/file-with-a-typical-name-{i}", os.O_CREAT | os.O_WRONLY, 0o644))
PY
after=$(rss_kib)
found=$(find "$MNT" -type f | wc -l)
if [ "$found" -ne "$count" ]; then
  echo "FAIL: created $count files, found $found" >&2
  exit 1
fi
echo "server RSS: ${before} KiB before, ${after} KiB after $count files"
echo "metadata memory per inode: $(( (after - before) * 1024 / count )) bytes"
tierfs_stop_mount
