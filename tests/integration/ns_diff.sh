#!/usr/bin/env bash
# Namespace differential test (ns_diff.py), pjdfstest's ground: one seeded
# random sequence of create, open(O_TRUNC) in every access mode, mkdir,
# rmdir, unlink, rename (plain, NOREPLACE, EXCHANGE), link, symlink, mkfifo,
# chmod with set-ID and sticky bits, lchown, utimensat and user.* xattrs,
# made by root and by two other users, in lockstep on tmpfs and on tierfs;
# every errno and every tree compared. Then kill -9 of the server and a
# remount: every name, mode, owner, link count, size, byte, xattr, inode
# number, mtime and ctime must be what the dead server last answered (also
# after an overwrite in place, whose times the writer's close logs).
# Mounts: the server path with cache "none" and with cache "kernel", and the
# kernel path (skipped where the build or kernel has no passthrough).
# NS_SEEDS / NS_OPS set how much (default 3 x 400: about 10 s a mount).
source "$(dirname "$0")/lib.sh"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
SEEDS=${NS_SEEDS:-3}
OPS=${NS_OPS:-400}
SEED=${NS_SEED:-1}
NS="$TIERFS_SOURCE_ROOT/tests/integration/ns_diff.py"
REF=$(mktemp -d /dev/shm/tierfs-ns-ref-XXXXXX)
trap 'rm -rf "$REF"; tierfs_cleanup' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# run_ns NAME CONFIG: the lockstep run, then the restart check on what it left.
run_ns() {
  local name=$1 config="[mount]
allow_other = true
state_dir = \"$WORK/state-$1\"
$2"
  tierfs_start_mount "$config" --log-file "$WORK/$name.log"
  # Other users reach the tree: through the test's directory, from the mount's root down.
  chmod 711 "$WORK"
  chmod 755 "$MNT"
  echo "== $name"
  if ! python3 "$NS" "$REF" "$MNT" --seed "$SEED" --seeds "$SEEDS" --ops "$OPS" --keep; then
    fail "$name diverged from tmpfs (server log: $(tail -5 "$WORK/$name.log"))"
    tierfs_stop_mount
    return
  fi
  # An overwrite in place, closed: its mtime must survive too (it is the
  # one write that changes nothing else the log keeps).
  head -c 131072 /dev/urandom >"$MNT/inplace"
  sleep 0.05
  printf 'x' | dd of="$MNT/inplace" bs=1 seek=4096 conv=notrunc status=none
  python3 "$NS" --snapshot "$MNT" "$WORK/$name-before.json"
  kill -9 "$SERVER_PID"
  tierfs_wait_exit "$SERVER_PID" 20 || fail "$name: the server outlived kill -9"
  umount -l "$MNT" 2>/dev/null
  tierfs_start_mount "$config" --log-file "$WORK/$name-restart.log"
  python3 "$NS" --snapshot "$MNT" "$WORK/$name-after.json"
  if python3 "$NS" --compare "$WORK/$name-before.json" "$WORK/$name-after.json"; then
    echo "$name: $(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' \
      "$WORK/$name-before.json") names the same after kill -9 and a remount"
  else
    fail "$name: the tree after kill -9 and a remount is not the one acknowledged"
  fi
  tierfs_stop_mount
}

run_ns server-none "$(tierfs_shm_tier data 2 256MiB 64KiB)"
run_ns server-kernel "cache = \"kernel\"
$(tierfs_shm_tier data 2 256MiB 64KiB)"
KERNEL="[mount]
state_dir = \"$WORK/state-probe\"
$(tierfs_kernel_tier fast 256MiB 4KiB)"
if tierfs_kernel_path_usable "$KERNEL"; then
  run_ns kernel-path "$(tierfs_kernel_tier fast 256MiB 4KiB)"
else
  echo "SKIP the kernel-path mount"
fi

[ "$failures" = 0 ] || exit 1
echo "ok: ns_diff"
