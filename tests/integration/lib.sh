# Sourced by the integration shell tests (the shell's mount kit; C++ has
# tests/support/tierfs_mount.h): start a tierfs mount in daemon mode on a
# configuration and stop it again, with cleanup on any exit.
#   tierfs_start_mount "TOML text" [OPTION...]   sets MNT, WORK, SERVER_PID ("": the
#                                    built-in default); options go to `tierfs mount`
#   tierfs_stop_mount                unmounts and waits for the server to exit
#   TIERFS_MOUNT_WRAP=(CMD...)       runs `tierfs mount` under CMD (e.g. prlimit)
source "${TIERFS_SOURCE_ROOT:?}/tests/support/privileged.sh"
tierfs_require "$(tierfs_missing_root)"
tierfs_require "$(tierfs_missing_fuse)"
TIERFS_BIN=${TIERFS_BIN:?TIERFS_BIN must name the tierfs binary}

WORK=$(mktemp -d /tmp/tierfs-sh-XXXXXX)
MNT="$WORK/mnt"
SERVER_PID=
TIERFS_MOUNT_WRAP=()
mkdir -p "$MNT"

tierfs_cleanup() {
  if grep -q " $MNT " /proc/mounts; then
    fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
  fi
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    tierfs_wait_exit "$SERVER_PID" 20 || true
  fi
  rm -rf "$WORK" /dev/shm/tierfs-sh-$$-* 2>/dev/null || true
}
trap tierfs_cleanup EXIT

tierfs_start_mount() {
  local config=()
  if [ -n "$1" ]; then
    printf '%s\n' "$1" >"$WORK/tierfs.toml"
    config=(--config "$WORK/tierfs.toml")
  fi
  shift
  config+=("$@")  # more `tierfs mount` options, e.g. --log-file FILE
  # Daemon mode: returns once the mount is live, or prints the one line that says why not.
  if ! "${TIERFS_MOUNT_WRAP[@]}" "$TIERFS_BIN" mount "${config[@]}" "$MNT" >"$WORK/server.log" 2>&1; then
    echo "FAIL: the server did not mount:" >&2
    cat "$WORK/server.log" >&2
    exit 1
  fi
  # The daemon is the one process whose command line ends in this run's mount point.
  SERVER_PID=$(pgrep -f -- "mount ${config[*]:+${config[*]} }$MNT\$") ||
    { echo "FAIL: no server process for $MNT" >&2; exit 1; }
}

tierfs_stop_mount() {
  fusermount3 -u "$MNT"
  # The daemon is not this shell's child: its exit can be awaited, its status not read.
  if ! tierfs_wait_exit "$SERVER_PID" 20; then
    echo "FAIL: the server $SERVER_PID did not exit within 20 s of the unmount" >&2
    exit 1
  fi
  SERVER_PID=
  rm -f /dev/shm/tierfs-sh-$$-*
}

# A tier over `ways` file regions in /dev/shm (the config refuses one NUMA node twice in a tier).
# After `tierfs check-config` refused a kernel-path test's configuration
# (its output in FILE). A build whose libfuse has no passthrough (before 3.16:
# CI's system-libfuse pass) owes one line refusing it and skips, even under
# TIERFS_REQUIRE_PRIVILEGED: that is a property of the build, not a missing
# privilege. A kernel without passthrough skips or fails as tierfs_require
# says; any other refusal fails. Never returns.
tierfs_kernel_path_refused() {
  local out=$1 version=${TIERFS_LIBFUSE_VERSION:?meson sets TIERFS_LIBFUSE_VERSION}
  if [ "$(printf '%s\n3.16\n' "$version" | sort -V | head -1)" != 3.16 ]; then
    if [ "$(wc -l <"$out")" -eq 1 ] && grep -q 'no FUSE passthrough' "$out"; then
      echo "SKIP: built against libfuse $version, which has no FUSE passthrough (3.16+); data_path = \"kernel\" is refused in one line"
      exit 77
    fi
    echo "FAIL: libfuse $version: expected one line refusing the kernel path, got: $(cat "$out")" >&2
    exit 1
  fi
  if grep -q 'no FUSE passthrough\|cannot have data_path "kernel"' "$out"; then
    tierfs_require "kernel path unavailable: $(cat "$out")"
  fi
  echo "FAIL: check-config: $(cat "$out")" >&2
  exit 1
}

# tierfs_kernel_path_usable "TOML text": for a test whose server-path part
# runs either way. 0 when check-config accepts the kernel-path configuration;
# 1, after the SKIP line, where the build or the kernel has no kernel path;
# exits as tierfs_kernel_path_refused does otherwise (a failure, or a missing
# kernel feature under TIERFS_REQUIRE_PRIVILEGED).
tierfs_kernel_path_usable() {
  printf '%s\n' "$1" >"$WORK/check.toml"
  "$TIERFS_BIN" check-config "$WORK/check.toml" >"$WORK/check.out" 2>&1 && return 0
  local rc=0
  (tierfs_kernel_path_refused "$WORK/check.out") || rc=$?
  [ "$rc" = 77 ] || exit "$rc"
  return 1
}

# tierfs_path_of FILE: the data path that serves FILE, "kernel" or "server"
# (its user.tierfs.map says).
tierfs_path_of() {
  getfattr --absolute-names --only-values -n user.tierfs.map "$1" |
    python3 -c "import json,sys; print(json.load(sys.stdin)['data_path'])"
}

# A [[tier]] on numa:0 served by the kernel data path (FUSE passthrough onto
# a backing tmpfs file): the kernel-path tests' tiers. No blank line after,
# so a caller can add keys to it (watermarks).
tierfs_kernel_tier() {
  printf '[[tier]]\nname = "%s"\nregions = ["numa:0"]\nsize = "%s"\ngranularity = "%s"\ndata_path = "kernel"\n' \
    "$1" "$2" "$3"
}

# tierfs_moves_while_writing MODE FILE MODEL TIER_A TIER_B [BUSY_OK]: a
# writer (MODE write: pwrite on an fd; mmap: a shared mapping) writes random
# runs into the first 8 MiB of FILE while `tierfs migrate` bounces FILE
# between TIER_A and TIER_B, until six moves are done (at most 120 s); the
# writer's model of the file goes to MODEL. A refused move fails the test
# (the caller's `fail`), unless BUSY_OK is "busy-ok" and it said busy.
# Sets MOVES; returns 1 when the writer failed.
tierfs_moves_while_writing() {
  local mode=$1 f=$2 model=$3 tier_a=$4 tier_b=$5 busy_ok=${6:-} done writer tier
  done="$model.done"
  python3 - "$f" "$model" "$mode" "$done" <<'PY' &
import mmap, os, random, sys, time
path, model_path, mode, done = sys.argv[1:]
size = 8 << 20
fd = os.open(path, os.O_RDWR)
model = bytearray(os.pread(fd, size, 0))
m = mmap.mmap(fd, size) if mode == "mmap" else None
open(done + ".open", "w").write("open")
# Writes until the moves say stop (after enough of them, however slow this
# machine is), at most 120 s.
end = time.time() + 120
while time.time() < end and not os.path.exists(done + ".stop"):
    off = random.randrange(0, size - 65536)
    data = os.urandom(random.choice([1, 100, 4096, 65536]))
    if m is not None:
        m[off : off + len(data)] = data
    else:
        os.pwrite(fd, data, off)
    model[off : off + len(data)] = data
if m is not None:
    m.flush(); m.close()
os.fsync(fd); os.close(fd)
open(model_path, "wb").write(model)
open(done, "w").write("done")
PY
  writer=$!
  # The moves start once the writer's handle is open.
  for _ in $(seq 100); do [ -e "$done.open" ] && break; sleep 0.05; done
  MOVES=0
  while [ ! -e "$done" ] && kill -0 "$writer" 2>/dev/null; do
    for tier in "$tier_a" "$tier_b"; do
      if "$TIERFS_BIN" migrate --tier "$tier" "$f" >"$WORK/move.out" 2>&1; then
        MOVES=$((MOVES + 1))
        [ "$MOVES" -lt 6 ] || : >"$done.stop"
      elif [ "$busy_ok" != busy-ok ] || ! grep -q "busy" "$WORK/move.out"; then
        fail "$mode: migrate to $tier with the file open: $(cat "$WORK/move.out")"
        : >"$done.stop"
      fi
    done
  done
  wait "$writer"
}

tierfs_shm_tier() {
  local name=$1 ways=$2 size=$3 granularity=$4 regions="" i
  for i in $(seq 1 "$ways"); do
    regions+="${regions:+, }\"file:/dev/shm/tierfs-sh-$$-$name-$i\""
  done
  printf '[[tier]]\nname = "%s"\nregions = [%s]\nsize = "%s"\ngranularity = "%s"\ncreate = true\n\n' \
    "$name" "$regions" "$size" "$granularity"
}
