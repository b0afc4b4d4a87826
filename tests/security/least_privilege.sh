#!/bin/bash
# The mounted server runs with least privilege: in every one of its threads
# only CAP_SYS_ADMIN is effective and permitted (for the unmount after a
# signal), the bounding, ambient and inheritable sets are empty, no_new_privs
# is set and a seccomp filter is installed; a workload of file, directory,
# xattr, mmap, fallocate, chown and inspection requests (also from another
# user) and a SIGTERM unmount run with no call denied (the filter logs every
# denial to the kernel log). Before, the server ran as root with every
# capability, no no_new_privs and no seccomp. `sandbox = false` keeps them
# all, for debugging; a bad TIERFS_SECCOMP is refused in one line.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v dmesg >/dev/null && dmesg >/dev/null 2>&1 || tierfs_require "needs dmesg (the kernel log)"
make_evil_user

server_pid() { pgrep -f -- "mount --config $1 $2\$" || fail "no server process for $2"; }
field() { sed -n "s/^$2:[[:space:]]*//p" "$1"; }

tier='[[tier]]\nname = "dram"\nregions = ["numa:0"]\nsize = "32MiB"\ngranularity = "64KiB"\n'
printf "[mount]\nallow_other = true\n\n$tier" >"$WORK/on.toml"
marker="tierfs-least-privilege-$$-$RANDOM"
echo "$marker" >/dev/kmsg
try_mount "$WORK/on.toml" "$MNT"
[ "$MOUNT_STATUS" -eq 0 ] || fail "mount with the sandbox: $MOUNT_ERR"
pid=$(server_pid "$WORK/on.toml" "$MNT")

# A workload that touches every kind of request, with parallel readers so
# that libfuse starts more worker threads after the drop.
chmod 0777 "$MNT"
mkdir -p "$MNT/d/e"
dd if=/dev/urandom of="$MNT/d/data" bs=64K count=64 status=none
for i in 1 2 3 4; do cat "$MNT/d/data" >/dev/null & done
wait
cmp <(cat "$MNT/d/data") <(dd if="$MNT/d/data" bs=1M status=none) || fail "reads differ"
mv "$MNT/d/data" "$MNT/d/e/moved"
ln "$MNT/d/e/moved" "$MNT/hard"
ln -s d/e/moved "$MNT/soft"
[ "$(readlink "$MNT/soft")" = d/e/moved ] || fail "readlink"
setfattr -n user.note -v hello "$MNT/hard"
[ "$(getfattr --only-values -n user.note "$MNT/hard")" = hello ] || fail "xattr"
fallocate -l 1M "$MNT/prealloc"
fallocate -p -o 0 -l 64K "$MNT/prealloc"
truncate -s 100K "$MNT/prealloc"
python3 - "$MNT/mapped" <<'EOF'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 1 << 20)
with mmap.mmap(fd, 1 << 20) as m:
    m[4096:4101] = b"hello"
    m.flush()
os.close(fd)
with open(sys.argv[1], "rb") as f:
    f.seek(4096)
    assert f.read(5) == b"hello"
EOF
# Files of another user: the server records owner and group (chown, set-id
# bits) in its metadata and needs no CAP_CHOWN or CAP_FSETID for them.
as_evil sh -c "echo mine >'$MNT/theirs' && chmod 4755 '$MNT/theirs'"
[ "$(stat -c %U "$MNT/theirs")" = "$EVIL_USER" ] || fail "owner of a file created by $EVIL_USER"
chown root:root "$MNT/theirs"
chown "$EVIL_USER" "$MNT/theirs"
chmod 2755 "$MNT/theirs"
[ "$(stat -c %U:%a "$MNT/theirs")" = "$EVIL_USER:2755" ] || fail "chown/chmod: $(stat -c %U:%a "$MNT/theirs")"
"$TIERFS_BIN" stats --json "$MNT" >/dev/null || fail "tierfs stats"
"$TIERFS_BIN" map "$MNT/hard" >/dev/null || fail "tierfs map"
rm -rf "$MNT/d" "$MNT/hard" "$MNT/soft" "$MNT/prealloc" "$MNT/mapped" "$MNT/theirs"
sync

threads=0
for status in /proc/"$pid"/task/*/status; do
  threads=$((threads + 1))
  tid=$(basename "$(dirname "$status")")
  cp "$status" "$WORK/status"
  [ "$(field "$WORK/status" CapEff)" = 0000000000200000 ] || fail "thread $tid: CapEff $(field "$WORK/status" CapEff), want CAP_SYS_ADMIN only"
  [ "$(field "$WORK/status" CapPrm)" = 0000000000200000 ] || fail "thread $tid: CapPrm $(field "$WORK/status" CapPrm)"
  [ "$(field "$WORK/status" CapInh)" = 0000000000000000 ] || fail "thread $tid: CapInh $(field "$WORK/status" CapInh)"
  [ "$(field "$WORK/status" CapBnd)" = 0000000000000000 ] || fail "thread $tid: CapBnd $(field "$WORK/status" CapBnd)"
  [ "$(field "$WORK/status" CapAmb)" = 0000000000000000 ] || fail "thread $tid: CapAmb $(field "$WORK/status" CapAmb)"
  [ "$(field "$WORK/status" NoNewPrivs)" = 1 ] || fail "thread $tid: NoNewPrivs $(field "$WORK/status" NoNewPrivs)"
  [ "$(field "$WORK/status" Seccomp)" = 2 ] || fail "thread $tid: Seccomp $(field "$WORK/status" Seccomp), want 2 (filter)"
done
[ "$threads" -ge 2 ] || fail "only $threads thread(s): the workload started no FUSE worker"

# A signal ends the server: libfuse unmounts with umount2 (the CAP_SYS_ADMIN kept).
kill -TERM "$pid"
timeout 20 tail --pid="$pid" -f /dev/null || fail "the server did not exit within 20 s of SIGTERM"
grep -q " $MNT fuse.tierfs " /proc/mounts && fail "SIGTERM left $MNT mounted"
denied=$(dmesg | sed -n "/$marker/,\$p" | grep "type=1326" | grep " pid=$pid " || true)
[ -z "$denied" ] || fail "the filter denied calls (see scripts/seccomp-audit.sh): $denied"

# sandbox = false: every capability, no no_new_privs, no filter.
printf "[mount]\nsandbox = false\n\n$tier" >"$WORK/off.toml"
try_mount "$WORK/off.toml" "$MNT"
[ "$MOUNT_STATUS" -eq 0 ] || fail "mount with sandbox = false: $MOUNT_ERR"
pid=$(server_pid "$WORK/off.toml" "$MNT")
cp "/proc/$pid/status" "$WORK/status"
[ "$(field "$WORK/status" CapEff)" = "$(field /proc/self/status CapBnd)" ] ||
  fail "sandbox = false: CapEff $(field "$WORK/status" CapEff)"
[ "$(field "$WORK/status" NoNewPrivs)" = 0 ] || fail "sandbox = false: no_new_privs set"
[ "$(field "$WORK/status" Seccomp)" = 0 ] || fail "sandbox = false: a seccomp filter"
fusermount3 -u "$MNT"

# A bad mode: one line, nothing mounted.
MOUNT_STATUS=0
TIERFS_SECCOMP=kill "$TIERFS_BIN" mount --config "$WORK/on.toml" "$MNT" 2>"$WORK/mount.err" || MOUNT_STATUS=$?
MOUNT_ERR=$(cat "$WORK/mount.err")
expect_refused "TIERFS_SECCOMP=kill" 'TIERFS_SECCOMP="kill" is not "enforce" or "log"'
grep -q " $MNT " /proc/mounts && fail "a refused mount is mounted"
echo "PASS: $threads threads checked"
