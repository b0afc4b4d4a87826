#!/usr/bin/env bash
# The kernel data path (tierfs/core/data_path.h, docs/architecture.md): a
# numa: tier with data_path = "kernel" whose files the kernel serves by FUSE
# passthrough from backing files on the tier's private tmpfs.
#  1. the mount says which path each tier takes; bytes written and read
#     through the mount never reach the server (its WRITE and READ counts
#     stay 0) and are the backing file's bytes;
#  2. POSIX through the upcalls that remain: size by truncate up and down,
#     fallocate, SEEK_HOLE/SEEK_DATA, mmap writes, append, rename, unlink;
#  3. the backing store is root-only and outside the mount;
#  4. kill -9 mid-write and a new server: every fsync'd byte is there;
#  5. a clean unmount of a scratch mount leaves no tmpfs and no state;
#  6. a huge-page tier gives small files small pages;
#  7. a file holds no descriptor in the server: 1500 files, 100 of them open
#     at once, under a limit of 128 descriptors, and their adoption after
#     kill -9 under the same limit (the 20 000th file was EMFILE before).
# Takes about 5 s. SKIPs where the build or the kernel has no passthrough.
source "$(dirname "$0")/lib.sh"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
sum() { sha256sum <"$1" | cut -d' ' -f1; }
stat_json() { getfattr --absolute-names --only-values -n user.tierfs.stats "$MNT" 2>/dev/null; }
op_count() { stat_json | python3 -c "import json,sys; print(json.load(sys.stdin)['ops']['$1'])"; }

STATE="$WORK/state"
CONFIG="[mount]
state_dir = \"$STATE\"
$(tierfs_kernel_tier fast 256MiB 4KiB)
$(tierfs_shm_tier slow 1 64MiB 64KiB)"
printf '%s\n' "$CONFIG" >"$WORK/check.toml"
"$TIERFS_BIN" check-config "$WORK/check.toml" >"$WORK/check.out" 2>&1 ||
  tierfs_kernel_path_refused "$WORK/check.out"
grep -q '# tier "fast": kernel path' "$WORK/check.out" || fail "check-config: $(cat "$WORK/check.out")"
grep -q '# tier "slow": server path' "$WORK/check.out" || fail "check-config: $(cat "$WORK/check.out")"

tierfs_start_mount "$CONFIG" --log-file "$WORK/mount.log"
grep -q "tier fast: kernel path" "$WORK/mount.log" || fail "mount log: $(cat "$WORK/mount.log")"
BACKING="$STATE/kernel-store.page"

# 1. Bytes through the kernel only.
head -c 8M /dev/urandom >"$WORK/payload"
cp "$WORK/payload" "$MNT/a"
sync "$MNT/a"
[ "$(sum "$MNT/a")" = "$(sum "$WORK/payload")" ] || fail "a reads back different bytes"
ino=$(stat -c %i "$MNT/a")
[ -f "$BACKING/$ino.fast" ] || fail "no backing file $BACKING/$ino.fast: $(ls -la "$BACKING" 2>&1)"
cmp -s "$BACKING/$ino.fast" "$WORK/payload" || fail "the backing file does not hold a's bytes"
dd if="$MNT/a" of=/dev/null bs=1M status=none
[ "$(op_count write)" = 0 ] || fail "$(op_count write) WRITE requests reached the server"
[ "$(op_count read)" = 0 ] || fail "$(op_count read) READ requests reached the server"
[ "$(stat -c %s "$MNT/a")" = 8388608 ] || fail "a has size $(stat -c %s "$MNT/a")"
# Small writes cost no upcall either: with HANDLE_KILLPRIV_V2 the kernel checks
# security.capability once per file, not once per write (2000 before).
before=$(op_count getxattr)
dd if=/dev/zero of="$MNT/a" bs=4k count=2000 conv=notrunc oflag=sync status=none
after=$(op_count getxattr)
[ $((after - before)) -le 5 ] || fail "2000 4 KiB writes made $((after - before)) GETXATTR requests"
cp "$WORK/payload" "$MNT/a"
map=$(getfattr --absolute-names --only-values -n user.tierfs.map "$MNT/a")
case "$map" in *'"data_path":"kernel"'*) ;; *) fail "user.tierfs.map of a: $map" ;; esac
"$TIERFS_BIN" stats "$MNT" | grep -q "tier fast: kernel path" || fail "stats: $("$TIERFS_BIN" stats "$MNT")"
# A file on the server-path tier stays there.
mkdir "$MNT/slowdir" && setfattr -n user.tierfs.tier -v slow "$MNT/slowdir"
echo server >"$MNT/slowdir/s"
case "$(getfattr --absolute-names --only-values -n user.tierfs.map "$MNT/slowdir/s")" in
  *'"data_path":"server"'*) ;; *) fail "slowdir/s is not on the server path" ;;
esac

# 2. The upcalls that remain.
truncate -s 20M "$MNT/a"
[ "$(stat -c %s "$MNT/a")" = 20971520 ] || fail "truncate up: size $(stat -c %s "$MNT/a")"
[ "$(head -c 8M "$MNT/a" | sha256sum | cut -d' ' -f1)" = "$(sum "$WORK/payload")" ] || fail "truncate up changed the bytes"
[ "$(tail -c 1M "$MNT/a" | tr -d '\0' | wc -c)" = 0 ] || fail "the grown part is not zeros"
truncate -s 3M "$MNT/a"
[ "$(stat -c %s "$MNT/a")" = 3145728 ] || fail "truncate down: size $(stat -c %s "$MNT/a")"
[ "$(sum "$MNT/a")" = "$(head -c 3M "$WORK/payload" | sha256sum | cut -d' ' -f1)" ] || fail "truncate down: bytes"
fallocate -l 16M "$MNT/b"
[ "$(stat -c %s "$MNT/b")" = 16777216 ] || fail "fallocate: size $(stat -c %s "$MNT/b")"
[ "$(stat -c %b "$MNT/b")" -ge 32768 ] || fail "fallocate: $(stat -c %b "$MNT/b") blocks"
python3 - "$MNT/c" <<'PY' || fail "holes, mmap and append (above)"
import mmap, os, sys
path = sys.argv[1]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"x" * 4096, 1 << 20)                 # a hole of 1 MiB first
assert os.lseek(fd, 0, os.SEEK_DATA) == 1 << 20, os.lseek(fd, 0, os.SEEK_DATA)
assert os.lseek(fd, 0, os.SEEK_HOLE) == 0
os.ftruncate(fd, 2 << 20)
m = mmap.mmap(fd, 2 << 20)
m[100:105] = b"hello"
m.flush()
m.close()
os.close(fd)
with open(path, "rb") as f:
    assert f.read()[100:105] == b"hello"
with open(path, "ab") as f:
    f.write(b"tail")
assert os.stat(path).st_size == (2 << 20) + 4, os.stat(path).st_size
PY
# A store through a shared mapping that outlives its descriptor comes after
# the RELEASE (the mapping holds the backing file, not the FUSE one:
# backing_file_mmap's vma_set_file), and neither the server nor the kernel's
# FUSE inode hears of the mtime it moves: the kernel keeps no attributes
# while such a mapping lasts (Fs::kernel_attrs_settled), so the next stat
# sees it (kernel_attrs.sh checks the other ways as well). libc's mmap, not
# Python's, which dups the descriptor and so delays the RELEASE to the
# munmap. Failed with kernel-path attributes kept an hour while no writable
# handle is open ('store after release ... unseen'), and with the 1 s they
# had until the lease told (a stat at once).
PYTHONPATH="$(dirname "$0")" python3 - "$MNT/e" <<'PY' || fail "a mapped store after close (above)"
import os, sys, time
import libc_mmap
path = sys.argv[1]
with open(path, "wb") as f:
    f.write(b"a" * 4096)
fd = os.open(path, os.O_RDWR)
addr = libc_mmap.map_shared(fd, 4096)
os.close(fd)                                         # the RELEASE goes now
time.sleep(0.2)
before = os.stat(path).st_mtime_ns
time.sleep(0.05)
libc_mmap.store(addr, 0, b"store")
libc_mmap.unmap(addr, 4096)
after = os.stat(path).st_mtime_ns
assert after > before, f"store after release: mtime {after} unseen (was {before})"
with open(path, "rb") as f:
    assert f.read(5) == b"store"
PY
# A mapping outlives the unlink of its file, as on tmpfs: the bytes stay
# readable and writable through it until the munmap (the backing file was
# truncated at the removal: the next touch was SIGBUS).
PYTHONPATH="$(dirname "$0")" python3 - "$MNT/u" <<'PY' || fail "a mapping of an unlinked file (above)"
import os, sys
import libc_mmap
path = sys.argv[1]
with open(path, "wb") as f:
    f.write(b"u" * 8192)
fd = os.open(path, os.O_RDWR)
addr = libc_mmap.map_shared(fd, 8192)
os.close(fd)
os.unlink(path)
libc_mmap.store(addr, 4096, b"after unlink")
assert libc_mmap.load(addr, 0, 4) == b"uuuu", libc_mmap.load(addr, 0, 4)
assert libc_mmap.load(addr, 4096, 12) == b"after unlink"
libc_mmap.unmap(addr, 8192)
PY
mv "$MNT/c" "$MNT/c2" && [ "$(tail -c 4 "$MNT/c2")" = tail ] || fail "rename"
touch -d '2001-02-03 04:05:06' "$MNT/c2"
[ "$(stat -c %Y "$MNT/c2")" = "$(date -d '2001-02-03 04:05:06' +%s)" ] || fail "utimensat: mtime $(stat -c %Y "$MNT/c2")"
b_ino=$(stat -c %i "$MNT/b")
rm "$MNT/b"
[ ! -e "$BACKING/$b_ino.fast" ] || fail "unlink left the backing file $BACKING/$b_ino.fast"

# 3. Root only, outside the mount.
[ "$(stat -c %a "$BACKING")" = 700 ] || fail "backing store mode $(stat -c %a "$BACKING")"
[ "$(stat -c %a "$STATE")" = 700 ] || fail "state dir mode $(stat -c %a "$STATE")"
[ "$(stat -f -c %T "$BACKING")" = tmpfs ] || fail "backing store is $(stat -f -c %T "$BACKING")"
if id nobody >/dev/null 2>&1; then
  setpriv --reuid=nobody --regid=nogroup --clear-groups cat "$BACKING/$ino.fast" >/dev/null 2>&1 &&
    fail "nobody can read a backing file"
fi

# 4. kill -9 in the middle of a write; what was fsync'd survives.
python3 - "$MNT/d" "$WORK/d.synced" <<'PY' &
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
block = os.urandom(1 << 20)
for i in range(4):
    os.write(fd, block)
os.fsync(fd)
with open(sys.argv[2], "wb") as f:
    f.write(block * 4)
for i in range(60):  # still writing when the server is killed
    os.write(fd, block)
PY
writer=$!
for _ in $(seq 50); do [ -s "$WORK/d.synced" ] && break; sleep 0.1; done
sleep 0.2
kill -9 "$SERVER_PID"
tierfs_wait_exit "$SERVER_PID" 20
kill "$writer" 2>/dev/null; wait "$writer" 2>/dev/null
umount -l "$MNT" 2>/dev/null
SERVER_PID=
grep -q tierfs-kernel-path /proc/mounts || fail "the backing tmpfs went with the server"
tierfs_start_mount "$CONFIG" --log-file "$WORK/restart.log"
grep -q "kernel path: adopted" "$WORK/restart.log" || fail "restart log: $(cat "$WORK/restart.log")"
[ "$(head -c 4M "$MNT/d" | sha256sum | cut -d' ' -f1)" = "$(sum "$WORK/d.synced")" ] || fail "fsync'd bytes of d lost"
[ "$(sum "$MNT/a")" = "$(head -c 3M "$WORK/payload" | sha256sum | cut -d' ' -f1)" ] || fail "a after the restart"
[ "$(tail -c 4 "$MNT/c2")" = tail ] || fail "c2 after the restart"
echo more >>"$MNT/a" && [ "$(tail -c 5 "$MNT/a")" = more ] || fail "writing a after the restart"

# 5. A clean unmount of the scratch mount leaves nothing.
tierfs_stop_mount
# Only this mount's: other mounts on the machine may have kernel-path tiers of their own.
grep -q " $STATE/kernel-store" /proc/mounts && fail "the backing tmpfs stayed mounted: $(grep " $STATE/kernel-store" /proc/mounts)"
[ ! -e "$STATE" ] || fail "the state directory stayed: $(ls -la "$STATE")"

# 6. A huge-page tier: small files take small pages (a 2 MiB page each before),
# a file written in 2 MiB pieces takes 2 MiB pages. st_blocks is the backing file's.
HUGE_CONFIG="[mount]
state_dir = \"$STATE\"
$(tierfs_kernel_tier huge 512MiB 2MiB)"
printf '%s\n' "$HUGE_CONFIG" >"$WORK/huge.toml"
if ! "$TIERFS_BIN" check-config "$WORK/huge.toml" >"$WORK/huge.out" 2>&1; then
  echo "SKIP part 6: this kernel gives tmpfs no 2 MiB folios: $(cat "$WORK/huge.out")"
else
  tierfs_start_mount "$HUGE_CONFIG" --log-file "$WORK/huge.log"
  for i in $(seq 1 100); do echo "line $i" >"$MNT/small.$i"; done
  blocks=0
  for i in $(seq 1 100); do blocks=$((blocks + $(stat -c %b "$MNT/small.$i"))); done
  # 100 pages are 800 blocks of 512 bytes; a huge page each would be 409600.
  [ "$blocks" -le 800 ] || fail "100 one-line files hold $blocks blocks on a 2 MiB tier"
  dd if=/dev/zero of="$MNT/big" bs=2M count=8 status=none
  [ "$(stat -c %b "$MNT/big")" = 32768 ] || fail "big holds $(stat -c %b "$MNT/big") blocks"
  "$TIERFS_BIN" map --pages "$MNT/big" >"$WORK/big.map" 2>&1 || fail "map --pages: $(cat "$WORK/big.map")"
  tierfs_stop_mount
fi

# 7. Many files, few descriptors (see the header).
server_fds() { find "/proc/$SERVER_PID/fd" -mindepth 1 | wc -l; }
TIERFS_MOUNT_WRAP=(prlimit --nofile=128:128)
tierfs_start_mount "$CONFIG" --log-file "$WORK/fds.log"
python3 - "$MNT" <<'PY' || fail "1500 files under 128 descriptors"
import os, sys
mnt = sys.argv[1]
os.mkdir(f"{mnt}/many")
for i in range(1500):
    with open(f"{mnt}/many/{i}", "w") as f:
        f.write(f"file {i}\n")
held = [os.open(f"{mnt}/many/{i}", os.O_RDWR) for i in range(100)]
for i, fd in enumerate(held):
    os.pwrite(fd, b"F", 0)
for i in range(1500):
    os.stat(f"{mnt}/many/{i}")
    with open(f"{mnt}/many/{i}") as f:
        assert f.read() == ("F" if i < 100 else "f") + f"ile {i}\n", i
for fd in held:
    os.close(fd)
PY
fds=$(server_fds)
[ "$fds" -le 64 ] || fail "the server holds $fds descriptors for 1500 kernel-path files"
kill -9 "$SERVER_PID"
tierfs_wait_exit "$SERVER_PID" 20
umount -l "$MNT" 2>/dev/null
SERVER_PID=
tierfs_start_mount "$CONFIG" --log-file "$WORK/fds-restart.log"
TIERFS_MOUNT_WRAP=()
[ "$(cat "$MNT/many/1499")" = "file 1499" ] || fail "many/1499 after kill -9: $(cat "$MNT/many/1499" 2>&1)"
[ "$(cat "$MNT/many/7")" = "File 7" ] || fail "many/7 after kill -9: $(cat "$MNT/many/7" 2>&1)"
[ "$(find "$MNT/many" -type f | wc -l)" = 1500 ] || fail "$(find "$MNT/many" -type f | wc -l) files after kill -9"
fds=$(server_fds)
[ "$fds" -le 64 ] || fail "the server holds $fds descriptors after adopting 1500 files"
tierfs_stop_mount

[ "$failures" = 0 ] || exit 1
echo "kernel path: ok"
