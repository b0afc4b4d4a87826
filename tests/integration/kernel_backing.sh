#!/usr/bin/env bash
# The kernel path's backing store (docs/operations.md, "The kernel data path",
# "The backing store"): the backing files of a kernel-path tier are reached
# by no user but the server, outlive a killed server, are adopted by the
# next one, and `tierfs cleanup` or a clean unmount leaves nothing of them.
# The mount has allow_other, so that another user can use it, and its state
# directory under a directory every user can pass through (the default one,
# /run/tierfs/<key> as a job's scratch mount has, sits in /run/tierfs, 0755,
# and is 0700 itself: part 5), so that only the state directory's and the store's own modes
# keep the other user out.
#  1. through the mount: no backing name in readdir, no lookup of one, a
#     file named like a backing file is a file of its own, no backing path in
#     what the mount tells (xattrs, map, /proc/PID/maps of a mapping);
#  2. root-only: the state directory, the tmpfs (mode, owner, nosuid, nodev,
#     noexec) and its files; another user (nobody: what a job runs as) can
#     open, stat or list none of them by path, through a symlink of its own,
#     or through the server's /proc entries;
#  3. kill -9: the tmpfs and its files stay, byte for byte; the next server
#     adopts them under the same names (no copy), and the backing file of a
#     file unlinked while open at the kill goes;
#  4. `tierfs cleanup` after kill -9 removes the tmpfs and the state and says
#     so; `--fresh` drops the old backing files; a failed mount, a clean
#     unmount and a SIGTERM during the unmount leave no tmpfs;
#  5. with the default state directory the same store sits in /run/tierfs
#     (root's, 0700), and a clean unmount leaves nothing there.
# Takes about 5 s. SKIPs where the build or the kernel has no passthrough.
source "$(dirname "$0")/lib.sh"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
sum() { sha256sum <"$1" | cut -d' ' -f1; }
id nobody >/dev/null 2>&1 || tierfs_require "needs the user nobody (the other user of the checks)"
as_nobody() { setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups "$@"; }
# The server's state directory, from its open descriptors (lifecycle.sh does the same).
server_state() { ls -l "/proc/$SERVER_PID/fd" | grep -o '/run/tierfs/[0-9a-f]*$' | head -n 1; }
store_mounts() { grep " $1/kernel-store" /proc/mounts; }
# What the backing store holds: "name sha256" per file.
store_sums() { (cd "$1/kernel-store.page" && for f in *; do [ -f "$f" ] && echo "$f $(sum "$f")"; done); }

chmod 755 "$WORK"  # the other user must reach the mount point and the state's parent
STATE="$WORK/state"
BACKING="$STATE/kernel-store.page"
CONFIG="[mount]
allow_other = true
state_dir = \"$STATE\"
$(tierfs_kernel_tier fast 64MiB 4KiB)"
printf '%s\n' "$CONFIG" >"$WORK/check.toml"
"$TIERFS_BIN" check-config "$WORK/check.toml" >"$WORK/check.out" 2>&1 ||
  tierfs_kernel_path_refused "$WORK/check.out"
# The test's own leftovers, whatever fails: the tmpfs of this mount only.
cleanup_args=(--config "$WORK/check.toml")
trap 'tierfs_cleanup; "$TIERFS_BIN" cleanup "${cleanup_args[@]}" "$MNT" >/dev/null 2>&1' EXIT

tierfs_start_mount "$CONFIG"
head -c 3M /dev/urandom >"$MNT/a"
mkdir "$MNT/dir"
echo small >"$MNT/dir/b"
ino=$(stat -c %i "$MNT/a")
[ -f "$BACKING/$ino.fast" ] || fail "no backing file $BACKING/$ino.fast"

# 1. Nothing of the store through the mount.
[ "$(ls -A "$MNT" | tr '\n' ' ')" = "a dir " ] || fail "the mount root lists: $(ls -A "$MNT")"
[ "$(cd "$MNT" && find . | sort | tr '\n' ' ')" = ". ./a ./dir ./dir/b " ] ||
  fail "the mount holds: $(cd "$MNT" && find .)"
for name in "$ino.fast" kernel-store.page "../kernel-store.page" lock journal; do
  stat "$MNT/$name" >/dev/null 2>&1 && fail "the mount answers a lookup of $name"
done
echo "not a backing file" >"$MNT/$ino.fast"
[ "$(stat -c %i "$MNT/$ino.fast")" != "$ino" ] || fail "$ino.fast on the mount is a's inode"
cmp -s "$MNT/a" "$BACKING/$ino.fast" || fail "writing $MNT/$ino.fast changed a's backing file"
rm "$MNT/$ino.fast"
for f in "$MNT/a" "$MNT/dir/b"; do
  getfattr --absolute-names -d -m - "$f" >"$WORK/xattrs" 2>&1
  getfattr --absolute-names --only-values -n user.tierfs.map "$f" >>"$WORK/xattrs" 2>&1
  grep -q "$STATE\|kernel-store" "$WORK/xattrs" && fail "$f tells the backing path: $(cat "$WORK/xattrs")"
done
# A mapping of a passthrough file is the backing file's; what the mapper sees is the mount's path.
as_nobody /usr/bin/python3 - "$MNT/a" <<'PY' >"$WORK/maps" 2>&1 || fail "nobody cannot map a: $(cat "$WORK/maps")"
import mmap, sys
with open(sys.argv[1], "rb") as f, mmap.mmap(f.fileno(), 4096, prot=mmap.PROT_READ) as m:
    print(open("/proc/self/maps").read())
PY
grep -q " $MNT/a\$" "$WORK/maps" || fail "nobody's mapping of a is not shown as $MNT/a: $(grep -v '\[' "$WORK/maps" | tail -3)"
grep -q "$STATE\|kernel-store" "$WORK/maps" && fail "nobody's maps name the backing store: $(grep kernel-store "$WORK/maps")"

# 2. Root only.
[ "$(stat -c '%a %U %G' "$STATE")" = "700 root root" ] || fail "state directory: $(stat -c '%a %U %G' "$STATE")"
[ "$(stat -c '%a %U %G' "$BACKING")" = "700 root root" ] || fail "backing store: $(stat -c '%a %U %G' "$BACKING")"
[ "$(stat -c '%a %U' "$BACKING/$ino.fast")" = "600 root" ] || fail "backing file: $(stat -c '%a %U' "$BACKING/$ino.fast")"
options=$(store_mounts "$STATE" | cut -d' ' -f4)
for want in nosuid nodev noexec mode=700; do
  case ",$options," in *",$want,"*) ;; *) fail "the backing tmpfs is mounted without $want: $options" ;; esac
done
# (The state directory itself can be stat'ed where its parent can be passed:
# what is in it cannot.)
for path in "$BACKING/$ino.fast" "$BACKING" "$STATE" "$STATE/lock" "$STATE/journal"; do
  [ "$path" != "$STATE" ] && as_nobody stat "$path" >/dev/null 2>&1 && fail "nobody can stat $path"
  as_nobody cat "$path" >/dev/null 2>&1 && fail "nobody can read $path"
  as_nobody ls "$path" >/dev/null 2>&1 && fail "nobody can list $path"
done
as_nobody sh -c "echo x >>'$BACKING/$ino.fast'" 2>/dev/null && fail "nobody can write a backing file"
# Symlinks of the user's own are followed with the user's rights.
mkdir -m 1777 "$WORK/tmp"
as_nobody ln -s "$BACKING/$ino.fast" "$WORK/tmp/link"
as_nobody ln -s "$BACKING" "$WORK/tmp/dirlink"
as_nobody cat "$WORK/tmp/link" >/dev/null 2>&1 && fail "nobody reads a backing file through a symlink"
as_nobody ls "$WORK/tmp/dirlink/" >/dev/null 2>&1 && fail "nobody lists the store through a symlink"
as_nobody ln "$BACKING/$ino.fast" "$WORK/tmp/hard" 2>/dev/null && fail "nobody hard-linked a backing file"
# The server's descriptors of the store: /proc guards them like the server's memory.
as_nobody ls "/proc/$SERVER_PID/fd" >/dev/null 2>&1 && fail "nobody lists the server's descriptors"
as_nobody ls "/proc/$SERVER_PID/root$BACKING" >/dev/null 2>&1 && fail "nobody lists the store through /proc/PID/root"
for fd in $(ls "/proc/$SERVER_PID/fd"); do
  case "$(readlink "/proc/$SERVER_PID/fd/$fd")" in
    "$BACKING"*) as_nobody cat "/proc/$SERVER_PID/fd/$fd" >/dev/null 2>&1 &&
      fail "nobody reads the server's descriptor $fd of $(readlink "/proc/$SERVER_PID/fd/$fd")" ;;
  esac
done
# The user itself reads the file through the mount (the permissions are the file's).
[ "$(as_nobody cat "$MNT/dir/b")" = small ] || fail "nobody cannot read dir/b through the mount"
# Placement: each backing file has its tier's policy (interleave over node 0)
# from its creation, whether the tmpfs (mpol=) or an mbind of the server gave it.
b_ino=$(stat -c %i "$MNT/dir/b")
python3 - "$BACKING/$ino.fast" "$BACKING/$b_ino.fast" <<'PY' >"$WORK/policy" 2>&1 ||
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
ok = True
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    addr = libc.mmap(None, 4096, 0, 1, fd, 0)  # PROT_NONE, MAP_SHARED: no page is touched
    mode, mask = ctypes.c_int(-1), (ctypes.c_ulong * 16)()
    rc = libc.syscall(239, ctypes.byref(mode), mask, 1024, ctypes.c_void_p(addr), 2)  # get_mempolicy, MPOL_F_ADDR
    print(f"{path}: rc {rc} mode {mode.value} nodes {mask[0]:#x}")
    ok = ok and rc == 0 and mode.value == 3 and mask[0] == 1  # MPOL_INTERLEAVE over node 0
sys.exit(0 if ok else 1)
PY
  fail "a backing file has not its tier's policy: $(cat "$WORK/policy")"

# 3. kill -9: the store stays; a restart adopts it in place.
exec 9<>"$MNT/dir/b"  # unlinked while open at the kill: its backing file must go
gone=$(stat -c %i "$MNT/dir/b")
rm "$MNT/dir/b"
store_sums "$STATE" | grep -v "^$gone\." >"$WORK/sums.before"
kill -9 "$SERVER_PID"
tierfs_wait_exit "$SERVER_PID" 20
exec 9<&-
umount -l "$MNT"
SERVER_PID=
[ -n "$(store_mounts "$STATE")" ] || fail "the backing tmpfs went with the killed server"
store_sums "$STATE" | grep -v "^$gone\." >"$WORK/sums.dead"
cmp -s "$WORK/sums.before" "$WORK/sums.dead" || fail "the store changed at the kill: $(diff "$WORK/sums.before" "$WORK/sums.dead")"
tierfs_start_mount "$CONFIG" --log-file "$WORK/restart.log"
grep -q "kernel path: adopting the page tmpfs" "$WORK/restart.log" || fail "restart: $(grep 'kernel path' "$WORK/restart.log")"
grep -q "kernel path: adopted 1 backing files" "$WORK/restart.log" || fail "restart: $(grep 'kernel path' "$WORK/restart.log")"
store_sums "$STATE" >"$WORK/sums.after"
cmp -s "$WORK/sums.before" "$WORK/sums.after" || fail "adoption changed the store: $(diff "$WORK/sums.before" "$WORK/sums.after")"
[ "$(stat -c %i "$MNT/a")" = "$ino" ] && cmp -s "$MNT/a" "$BACKING/$ino.fast" || fail "a after the restart"
ls "$BACKING" | grep -q "^$gone\." && fail "the unlinked file's backing file $gone.* stayed"
[ "$(store_mounts "$STATE" | wc -l)" = 1 ] || fail "the restart stacked a tmpfs: $(store_mounts "$STATE")"

# 4. cleanup after kill -9 leaves nothing, and says what it removed.
kill -9 "$SERVER_PID"
tierfs_wait_exit "$SERVER_PID" 20
SERVER_PID=
"$TIERFS_BIN" cleanup --config "$WORK/check.toml" "$MNT" >"$WORK/cleanup.out" 2>&1 || fail "cleanup: $(cat "$WORK/cleanup.out")"
grep -q "removed the kernel path's backing files $BACKING" "$WORK/cleanup.out" || fail "cleanup does not say it removed the store: $(cat "$WORK/cleanup.out")"
[ -z "$(store_mounts "$STATE")" ] || fail "cleanup left the backing tmpfs: $(store_mounts "$STATE")"
[ ! -e "$STATE" ] || fail "cleanup left $STATE"
grep -q " $MNT " /proc/mounts && fail "cleanup left the mount"
# --fresh after kill -9: the old backing files go, no file comes back.
tierfs_start_mount "$CONFIG"
head -c 1M /dev/urandom >"$MNT/old"
kill -9 "$SERVER_PID"
tierfs_wait_exit "$SERVER_PID" 20
umount -l "$MNT"
SERVER_PID=
tierfs_start_mount "$CONFIG" --fresh
[ -z "$(ls -A "$MNT")" ] || fail "--fresh kept $(ls -A "$MNT")"
[ -z "$(ls -A "$STATE/kernel-store.page")" ] || fail "--fresh kept the backing files $(ls "$STATE/kernel-store.page")"
[ "$(store_mounts "$STATE" | wc -l)" = 1 ] || fail "--fresh: $(store_mounts "$STATE")"
# SIGTERM in the middle of the unmount: the orderly end, nothing left.
fusermount3 -u "$MNT"
kill -TERM "$SERVER_PID" 2>/dev/null
tierfs_wait_exit "$SERVER_PID" 20
SERVER_PID=
[ -z "$(store_mounts "$STATE")" ] || fail "SIGTERM during the unmount left the tmpfs"
[ ! -e "$STATE" ] || fail "SIGTERM during the unmount left $STATE"
# A mount that fails after the store was mounted (a bad FUSE option).
"$TIERFS_BIN" mount --config "$WORK/check.toml" -o no_such_option "$MNT" >"$WORK/bad.out" 2>&1 &&
  fail "a bad mount option was accepted"
[ -z "$(store_mounts "$STATE")" ] || fail "a failed mount left the tmpfs: $(store_mounts "$STATE")"
[ ! -e "$STATE" ] || fail "a failed mount left $STATE: $(ls -A "$STATE")"

# 5. The default state directory: in /run/tierfs, which is root's and
# writable by root only (0755: it also holds the job records that jobs read,
# numa/region_trust.cc), the state directory itself 0700.
tierfs_start_mount "$(printf '%s\n' "$CONFIG" | grep -v state_dir)"
cleanup_args=()
STATE=$(server_state)
[ -n "$STATE" ] || fail "no /run/tierfs state directory among the server's descriptors"
case "$(stat -c '%a %U' /run/tierfs)" in
  "700 root" | "755 root") ;;
  *) fail "/run/tierfs: $(stat -c '%a %U' /run/tierfs)" ;;
esac
[ "$(stat -c '%a %U' "$STATE")" = "700 root" ] || fail "$STATE: $(stat -c '%a %U' "$STATE")"
[ -n "$(store_mounts "$STATE")" ] || fail "no backing tmpfs in $STATE"
as_nobody ls "$STATE" >/dev/null 2>&1 && fail "nobody can list $STATE"
tierfs_stop_mount
[ -z "$(store_mounts "$STATE")" ] || fail "a clean unmount left the tmpfs"
[ ! -e "$STATE" ] || fail "a clean unmount left $STATE"

# 6. A persistent mount (a persistent file: tier beside the kernel-path one):
# cleanup after kill -9 keeps its metadata but gives the memory back, the
# kernel path's tmpfs and its files with it (it kept them before).
STATE="$WORK/pstate"
CONFIG="[mount]
state_dir = \"$STATE\"
$(tierfs_kernel_tier fast 64MiB 4KiB)
[[tier]]
name = \"keep\"
regions = [\"file:$WORK/keep.img\"]
size = \"32MiB\"
create = true
persistent = true"
printf '%s\n' "$CONFIG" >"$WORK/check.toml"
cleanup_args=(--config "$WORK/check.toml")
tierfs_start_mount "$CONFIG"
head -c 1M /dev/urandom >"$MNT/a"
[ -n "$(store_mounts "$STATE")" ] || fail "persistent: no backing tmpfs in $STATE"
kill -9 "$SERVER_PID"
tierfs_wait_exit "$SERVER_PID" 20
SERVER_PID=
"$TIERFS_BIN" cleanup --config "$WORK/check.toml" "$MNT" >"$WORK/cleanup.out" 2>&1 || fail "persistent cleanup: $(cat "$WORK/cleanup.out")"
grep -q "removed the kernel path's backing files $STATE/kernel-store.page" "$WORK/cleanup.out" ||
  fail "persistent cleanup does not say it removed the store: $(cat "$WORK/cleanup.out")"
[ -z "$(store_mounts "$STATE")" ] || fail "persistent cleanup left the backing tmpfs: $(store_mounts "$STATE")"
[ -e "$STATE/journal" ] || fail "persistent cleanup removed the metadata: $(ls -A "$STATE")"

[ "$failures" = 0 ] || exit 1
echo "kernel backing store: ok"
