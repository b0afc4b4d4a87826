#!/usr/bin/env bash
# A full state directory: the metadata log cannot grow, so a change must be
# refused (ENOSPC) instead of acknowledged and lost to the next kill -9.
# The state directory is on a 4 MiB tmpfs that a filler file then fills:
#  1. creates and writes go on until one is refused with ENOSPC (before:
#     never refused; the log stopped recording and a kill -9 lost every
#     file created after that);
#  2. mkdir and setxattr are refused too; unlink still works;
#  3. once the filler is gone the same server takes changes again;
#  4. kill -9 and a remount on the same state: every acknowledged file is
#     there with its bytes, the unlinked one is not.
# On the server path with both cache modes and on the kernel path (skipped
# where the build or the kernel has none): the refusal is in the operations
# table, before any data path.
source "$(dirname "$0")/lib.sh"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

statefs="$WORK/statefs"
mkdir -p "$statefs"
mount -t tmpfs -o size=4m,mode=0700 tmpfs "$statefs"
trap 'tierfs_cleanup; umount -l "$statefs" 2>/dev/null' EXIT
# full_log_case NAME TIER_TOML [MOUNT_KEYS]: steps 1-4 on one mount.
full_log_case() {
  local name=$1 config="[mount]
state_dir = \"$statefs/state-$1\"
$3
$2"
  echo "== $name"
  tierfs_start_mount "$config" --log-file "$WORK/$name.log"

  # Fill what the log's reserve left of the tmpfs.
  head -c 8M /dev/zero >"$statefs/filler" 2>/dev/null
  echo "state tmpfs: $(df -k --output=avail "$statefs" | tail -1) KiB left, log $(stat -c %s "$statefs/state-$name/journal") bytes"

  /usr/bin/python3 - "$MNT" "$WORK/acked-$name" <<'PY' || fail "$name: changes on a full log"
import errno, os, sys
mnt, acked_path = sys.argv[1], sys.argv[2]
acked, refused = [], None
for i in range(200000):
    name = f"f{i}"
    try:
        fd = os.open(f"{mnt}/{name}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except OSError as e:
        refused = e
        break
    try:
        os.write(fd, name.encode() * 100)
    except OSError as e:
        refused = e
        os.close(fd)
        break
    os.close(fd)
    acked.append(name)
with open(acked_path, "w") as f:
    f.write("\n".join(acked) + "\n")
if refused is None or refused.errno != errno.ENOSPC:
    sys.exit(f"FAIL: 200000 files created and none refused with ENOSPC ({refused!r})")
print(f"ok: {len(acked)} files acknowledged, then refused: {refused.strerror}")
for what, call in (("mkdir", lambda: os.mkdir(f"{mnt}/d")),
                   ("setxattr", lambda: os.setxattr(f"{mnt}/f0", "user.k", b"v"))):
    try:
        call()
        sys.exit(f"FAIL: {what} accepted on a full log")
    except OSError as e:
        if e.errno != errno.ENOSPC:
            sys.exit(f"FAIL: {what} on a full log: {e} (not ENOSPC)")
print("ok: mkdir and setxattr refused with ENOSPC")
os.unlink(f"{mnt}/f1")
print("ok: unlink still works")
PY

  rm -f "$statefs/filler"
  if echo again >"$MNT/again" 2>"$WORK/$name-again.err"; then
    echo "ok: changes accepted again once the state directory has room"
  else
    fail "$name: create after the filler went: $(cat "$WORK/$name-again.err")"
  fi
  grep -q "cannot reserve log space" "$WORK/$name.log" ||
    fail "$name: no line in the server's log says why changes were refused"

  # kill -9, remount on the same state: every acknowledged change is there.
  kill -9 "$SERVER_PID"
  tierfs_wait_exit "$SERVER_PID" 20
  SERVER_PID=
  umount -l "$MNT" 2>/dev/null || true
  tierfs_start_mount "$config" --log-file "$WORK/$name.log"
  /usr/bin/python3 - "$MNT" "$WORK/acked-$name" <<'PY' || fail "$name: acknowledged files after kill -9"
import os, sys
mnt = sys.argv[1]
names = [n for n in open(sys.argv[2]).read().split() if n != "f1"]
lost = [n for n in names if not os.path.exists(f"{mnt}/{n}")]
bad = [n for n in names if n not in lost and open(f"{mnt}/{n}", "rb").read() != n.encode() * 100]
if lost or bad or os.path.exists(f"{mnt}/f1") or open(f"{mnt}/again").read() != "again\n":
    sys.exit(f"FAIL: after kill -9: {len(lost)} acknowledged files lost (first {lost[:3]}), "
             f"{len(bad)} with other bytes, f1 back: {os.path.exists(mnt + '/f1')}")
print(f"ok: after kill -9 and a remount, all {len(names)} acknowledged files and 'again' are there")
PY
  tierfs_stop_mount
}

full_log_case server "$(tierfs_shm_tier data 2 64MiB 64KiB)"
full_log_case server-cache-kernel "$(tierfs_shm_tier data 2 64MiB 64KiB)" 'cache = "kernel"'
KERNEL=$(tierfs_kernel_tier data 256MiB 4KiB)
if tierfs_kernel_path_usable "[mount]
state_dir = \"$WORK/check-state\"
$KERNEL"; then
  full_log_case kernel "$KERNEL"
fi
[ "$failures" = 0 ] || exit 1
echo "log_full: ok"
