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
# And the changes that do not go through the operations table's refusal of
# creates and writes:
#  5. open(O_TRUNC) and open(O_CREAT|O_TRUNC) of existing files (FUSE_OPEN
#     carries O_TRUNC: atomic_o_trunc) are refused too, thousands of times
#     in a row (before: all accepted, each one logged on the reserve until
#     it was gone: past that a truncation was acknowledged unlogged); a
#     truncation that was accepted must be there after kill -9;
#  6. unlinks run on the reserve until a floor, then are refused: every
#     acknowledged unlink stays done after kill -9 (before: unlogged once the
#     reserve was gone, and the files came back);
#  7. with two tiers: `tierfs migrate` is refused with ENOSPC and leaves the
#     file whole where it was; `--async` is queued and the mover waits (one
#     line in its log) until the log has room, then moves the file.
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
# on_tier FILE TIER: FILE's bytes are all on TIER (tierfs map).
on_tier() {
  "$TIERFS_BIN" map --json "$1" | /usr/bin/python3 -c '
import json, sys
tiers = {e["tier"] for e in json.load(sys.stdin)["extents"]}
sys.exit(0 if tiers == {sys.argv[1]} else 1)' "$2"
}
# full_log_case NAME TIER_TOML [MOUNT_KEYS]: steps 1-7 on one mount.
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

  /usr/bin/python3 - "$MNT" "$WORK/acked-$name" "$WORK/truncated-$name" "$WORK/unlinked-$name" <<'PY' ||
import errno, os, sys
mnt, acked_path, truncated_path, unlinked_path = sys.argv[1:5]
names = [n for n in open(acked_path).read().split() if n != "f1"]
# f0-f9 stay whole for the migration steps; truncations take the first half
# of the rest, unlinks the second.
rest = names[10:]
to_truncate, to_unlink = rest[: len(rest) // 2], rest[len(rest) // 2 :]
problems = []
# Several rounds: past what the log's reserve holds, were they accepted.
truncated, refused = set(), 0
for round in range(3):
    for i, n in enumerate(to_truncate):
        flags = os.O_WRONLY | os.O_TRUNC | (os.O_CREAT if i % 2 else 0)
        try:
            os.close(os.open(f"{mnt}/{n}", flags, 0o644))
            truncated.add(n)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                problems.append(f"open(O_TRUNC) of {n}: {e} (not ENOSPC)")
                break
            refused += 1
with open(truncated_path, "w") as f:
    f.write("\n".join(sorted(truncated)) + "\n")
if truncated:
    problems.append(f"open(O_TRUNC) accepted on a full log for {len(truncated)} files")
else:
    print(f"ok: open(O_TRUNC) and open(O_CREAT|O_TRUNC) refused with ENOSPC ({refused} times)")
unlinked, refusal = [], None
for n in to_unlink:
    try:
        os.unlink(f"{mnt}/{n}")
        unlinked.append(n)
    except OSError as e:
        refusal = e
        break
with open(unlinked_path, "w") as f:
    f.write("\n".join(unlinked) + "\n")
if refusal is not None and refusal.errno != errno.ENOSPC:
    problems.append(f"unlink on a full log: {refusal} (not ENOSPC)")
print(f"ok: {len(unlinked)} unlinks acknowledged on the reserve"
      + (f", then refused: {refusal.strerror}" if refusal else ""))
if problems:
    sys.exit("FAIL: " + "; ".join(problems))
PY
    fail "$name: truncations and unlinks on a full log"

  # Migrations, where the mount has a second tier.
  local moves=0
  if grep -q '"slow"' "$WORK/tierfs.toml"; then
    moves=1
    if "$TIERFS_BIN" migrate --tier slow "$MNT/f2" >"$WORK/$name-migrate.out" 2>&1; then
      fail "$name: tierfs migrate accepted on a full log"
    elif ! grep -q "state directory is full" "$WORK/$name-migrate.out"; then
      fail "$name: tierfs migrate on a full log: $(cat "$WORK/$name-migrate.out") (not ENOSPC)"
    else
      echo "ok: tierfs migrate refused: $(head -1 "$WORK/$name-migrate.out")"
    fi
    "$TIERFS_BIN" migrate --async --tier slow "$MNT/f3" >"$WORK/$name-async.out" 2>&1 ||
      fail "$name: tierfs migrate --async: $(cat "$WORK/$name-async.out")"
    sleep 1  # five looks of the mover
    on_tier "$MNT/f2" data || fail "$name: f2 left its tier on a full log"
    on_tier "$MNT/f3" data || fail "$name: the mover moved f3 on a full log"
    echo "ok: f2 and f3 still on tier data"
  fi

  rm -f "$statefs/filler"
  if echo again >"$MNT/again" 2>"$WORK/$name-again.err"; then
    echo "ok: changes accepted again once the state directory has room"
  else
    fail "$name: create after the filler went: $(cat "$WORK/$name-again.err")"
  fi
  grep -q "cannot reserve log space" "$WORK/$name.log" ||
    fail "$name: no line in the server's log says why changes were refused"
  if [ "$moves" = 1 ]; then
    for _ in $(seq 50); do on_tier "$MNT/f3" slow && break; sleep 0.2; done
    on_tier "$MNT/f3" slow || fail "$name: the queued move of f3 did not run once the log had room"
    waits=$(grep -c "mover: the metadata log is full" "$WORK/$name.log")
    [ "$waits" = 1 ] || fail "$name: the mover said it waits for the log $waits times (once wanted)"
    echo "ok: the queued move of f3 ran once the log had room (the mover waited, said $waits time)"
  fi

  # kill -9, remount on the same state: every acknowledged change is there.
  kill -9 "$SERVER_PID"
  tierfs_wait_exit "$SERVER_PID" 20
  SERVER_PID=
  umount -l "$MNT" 2>/dev/null || true
  tierfs_start_mount "$config" --log-file "$WORK/$name.log"
  /usr/bin/python3 - "$MNT" "$WORK/acked-$name" "$WORK/truncated-$name" "$WORK/unlinked-$name" <<'PY' ||
import os, sys
mnt = sys.argv[1]
truncated, unlinked = (set(open(p).read().split()) for p in sys.argv[3:5])
names = [n for n in open(sys.argv[2]).read().split() if n != "f1" and n not in unlinked]
lost = [n for n in names if not os.path.exists(f"{mnt}/{n}")]
bad = [n for n in names if n not in lost and open(f"{mnt}/{n}", "rb").read() !=
       (b"" if n in truncated else n.encode() * 100)]
back = [n for n in ["f1"] + sorted(unlinked) if os.path.exists(f"{mnt}/{n}")]
if lost or bad or back or open(f"{mnt}/again").read() != "again\n":
    sys.exit(f"FAIL: after kill -9: {len(lost)} acknowledged files lost (first {lost[:3]}), "
             f"{len(bad)} with other bytes (first {bad[:3]}), {len(back)} unlinked ones back "
             f"(first {back[:3]})")
print(f"ok: after kill -9 and a remount, all {len(names)} acknowledged files and 'again' are "
      f"there, none of the {len(unlinked) + 1} unlinked ones")
PY
    fail "$name: acknowledged files after kill -9"
  if [ "$moves" = 1 ]; then
    on_tier "$MNT/f2" data || fail "$name: after kill -9, f2 is not on its tier"
    on_tier "$MNT/f3" slow || fail "$name: after kill -9, f3 is not on the tier it moved to"
    echo "ok: after kill -9, f2 on data and f3 on slow"
  fi
  tierfs_stop_mount
}

TIERS="$(tierfs_shm_tier data 2 64MiB 64KiB)
$(tierfs_shm_tier slow 1 64MiB 64KiB)
[mover]
interval_ms = 200"
full_log_case server "$TIERS"
full_log_case server-cache-kernel "$TIERS" 'cache = "kernel"'
KERNEL=$(tierfs_kernel_tier data 256MiB 4KiB)
if tierfs_kernel_path_usable "[mount]
state_dir = \"$WORK/check-state\"
$KERNEL"; then
  full_log_case kernel "$KERNEL"
fi
[ "$failures" = 0 ] || exit 1
echo "log_full: ok"
