#!/usr/bin/env bash
# Data integrity under fio --verify=crc32c: sequential and random writes at
# granularities 4KiB, 64KiB, 2MiB over 1, 2 and 4 ways; writers on separate
# files and on one shared file; and a file that spans a tier boundary.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

run_fio() {
  local label=$1
  shift
  if ! fio --directory="$MNT" --ioengine=psync --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
      --group_reporting --minimal "$@" >"$WORK/fio.out" 2>&1; then
    echo "FAIL: fio $label" >&2
    cat "$WORK/fio.out" >&2
    exit 1
  fi
  echo "ok: $label"
}

# Frees the tier between runs so each run has the whole tier.
clear_mount() { rm -rf "${MNT:?}"/*; }

for granularity in 4KiB 64KiB 2MiB; do
  for ways in 1 2 4; do
    size=$((ways * 24))MiB
    tierfs_start_mount "$(tierfs_shm_tier data "$ways" "$size" "$granularity")"
    layout="$ways ways x $granularity"
    run_fio "sequential, $layout" --name=seq --rw=write --bs=1M --size=12M
    clear_mount
    run_fio "random, $layout" --name=rand --rw=randwrite --bs=16k --size=8M --randrepeat=0
    clear_mount
    run_fio "2 writers on separate files, $layout" --name=sep --rw=randwrite --bs=64k \
      --size=4M --numjobs=2
    clear_mount
    run_fio "2 writers on one shared file, $layout" --name=shared --filename=shared \
      --rw=randwrite --bs=4k --size=2M --offset_increment=2M --numjobs=2
    tierfs_stop_mount
  done
done

# A small fast tier and a spill tier: the file's extents cross from one to the other.
tierfs_start_mount "$(tierfs_shm_tier fast 2 4MiB 64KiB)
$(tierfs_shm_tier spill 2 64MiB 2MiB)"
run_fio "sequential across a tier boundary" --name=span --rw=write --bs=1M --size=24M
tiers=$("$TIERFS_BIN" map --json "$MNT/span.0.0" | python3 -c \
  'import json,sys; print(" ".join(sorted({e["tier"] for e in json.load(sys.stdin)["extents"]})))')
if [ "$tiers" != "fast spill" ]; then
  echo "FAIL: expected extents on both tiers, got: $tiers" >&2
  exit 1
fi
echo "ok: the file spans tiers: $tiers"
clear_mount
run_fio "random across a tier boundary" --name=span --rw=randwrite --bs=32k --size=24M \
  --randrepeat=0
tierfs_stop_mount

# The page-cache mode: buffered writes and reads through the kernel's cache, and mmap.
tierfs_start_mount "$(printf '[mount]\ncache = "kernel"\n\n')
$(tierfs_shm_tier data 2 64MiB 64KiB)"
run_fio "sequential, cache=kernel" --name=cached --rw=write --bs=1M --size=16M
clear_mount
run_fio "random, cache=kernel" --name=cached --rw=randwrite --bs=4k --size=8M --randrepeat=0
clear_mount
run_fio "mmap random, cache=kernel" --name=mapped --ioengine=mmap --rw=randwrite --bs=4k \
  --size=8M --randrepeat=0
tierfs_stop_mount
