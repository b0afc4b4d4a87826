#!/usr/bin/env bash
# fsx-style differential test (fsx_diff.py): the same seeded random sequence
# of pwrite/pread, readv/writev, O_APPEND, lseek, truncate, every fallocate
# mode, copy_file_range, sendfile, splice, shared mmap (and SIGBUS past EOF),
# fsync, reopen with O_RDONLY/O_DIRECT, two descriptors and rename, run in
# lockstep on a tmpfs directory and on a tierfs mount; every result, errno
# and byte must match, and a call that moves st_mtime/st_ctime on tmpfs
# must move them on tierfs. Five mounts:
#  1. kernel path, 4 KiB pages;  2. kernel path, 2 MiB pages (skipped where
#  tmpfs has no huge folios);  3. server path, two shm regions at 64 KiB;
#  4. a 1 MiB server-path tier above a second one, so writes spill;
#  5. a kernel-path and a server-path tier, file "b" placed on the latter.
# FSX_SEEDS / FSX_OPS set how much (default 2 x 200: 35-60 s on a loaded 2-core machine);
# FSX_SEED picks the first seed. SKIPs the kernel-path mounts where the
# build or the kernel has no passthrough.
source "$(dirname "$0")/lib.sh"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
SEEDS=${FSX_SEEDS:-2}
OPS=${FSX_OPS:-200}
SEED=${FSX_SEED:-1}
FSX="$TIERFS_SOURCE_ROOT/tests/integration/fsx_diff.py"
REF=$(mktemp -d /dev/shm/tierfs-fsx-ref-XXXXXX)
trap 'rm -rf "$REF"; tierfs_cleanup' EXIT
failures=0

# run_fsx NAME GRANULARITY CONFIG [OPTION...]: one mount, SEEDS seeds of OPS operations.
run_fsx() {
  local name=$1 gran=$2 config=$3
  shift 3
  tierfs_start_mount "$config" --log-file "$WORK/$name.log"
  mkdir "$MNT/fsx"
  echo "== $name"
  if ! python3 "$FSX" "$REF" "$MNT/fsx" --seed "$SEED" --seeds "$SEEDS" --ops "$OPS" \
      --granularity "$gran" "$@"; then
    echo "FAIL: $name diverged from tmpfs (server log: $(tail -5 "$WORK/$name.log"))" >&2
    failures=$((failures + 1))
  fi
  tierfs_stop_mount
}

KERNEL4K="[mount]
state_dir = \"$WORK/state-k4\"
$(tierfs_kernel_tier fast 256MiB 4KiB)"
# The server-path mounts below run whether or not the kernel path is there.
if tierfs_kernel_path_usable "$KERNEL4K"; then
  run_fsx kernel-4KiB 4096 "$KERNEL4K" --timestamps
  KERNEL2M="[mount]
state_dir = \"$WORK/state-k2m\"
$(tierfs_kernel_tier huge 256MiB 2MiB)"
  printf '%s\n' "$KERNEL2M" >"$WORK/huge.toml"
  if "$TIERFS_BIN" check-config "$WORK/huge.toml" >"$WORK/huge.out" 2>&1; then
    run_fsx kernel-2MiB $((2 << 20)) "$KERNEL2M" --timestamps
  else
    echo "SKIP kernel-2MiB: $(cat "$WORK/huge.out")"
  fi
  # File "a" on the kernel path, "b" on the server path: copies, splices and
  # renames between the two data paths.
  run_fsx mixed 4096 "[mount]
state_dir = \"$WORK/state-mixed\"
$(tierfs_kernel_tier fast 256MiB 4KiB)
$(tierfs_shm_tier slow 2 256MiB 64KiB)
[[placement]]
path = \"*/b\"
tier = \"slow\"" --timestamps
else
  echo "SKIP the kernel-path mounts"
fi

# Timestamps are compared on every mount: the server path keeps them
# itself; the kernel path's come from the backing file's clock, the kernel's.
run_fsx server-64KiB 65536 "$(tierfs_shm_tier data 2 256MiB 64KiB)" --timestamps
run_fsx spill 65536 "$(tierfs_shm_tier small 1 1MiB 64KiB)
$(tierfs_shm_tier big 2 256MiB 64KiB)" --timestamps

[ "$failures" = 0 ] || exit 1
echo "ok: fsx_diff"
