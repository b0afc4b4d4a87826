#!/usr/bin/env bash
# Shared mappings across a kill -9 of the server (docs/operations.md, "What a
# crash loses", "Shared mappings across the kill"): a kernel-path file's
# mapping maps its backing file, so a store after the kill goes through and
# the next server has it; a server-path file's mapping takes SIGBUS at its
# first fault of a page not in the page cache, because the kernel asks the
# dead server for the page (FUSE's own behaviour, documented as a limit; the
# crash test's mmap writes meet it, tests/crash/crash_kernel.py).
# Takes about 3 s. SKIPs where the build or the kernel has no passthrough.
source "$(dirname "$0")/lib.sh"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

STATE="$WORK/state"
CONFIG="[mount]
cache = \"none\"
state_dir = \"$STATE\"
$(tierfs_kernel_tier fast 64MiB 4KiB)

[[tier]]
name = \"spill\"
regions = [\"file:$WORK/spill.img\"]
size = \"64MiB\"
granularity = \"64KiB\"
data_path = \"server\"
create = true

[[placement]]
path = \"/s/*\"
tier = \"spill\""
printf '%s\n' "$CONFIG" >"$WORK/check.toml"
"$TIERFS_BIN" check-config "$WORK/check.toml" >"$WORK/check.out" 2>&1 ||
  tierfs_kernel_path_refused "$WORK/check.out"
tierfs_start_mount "$CONFIG"
trap 'tierfs_cleanup; umount "$STATE/kernel-store.page" 2>/dev/null; rm -rf "$WORK"' EXIT
mkdir "$MNT/s"

# Each file: 8 MiB of "a", mapped, one page stored before the kill; after it,
# a store at 7.5 MiB (a page nobody touched) in a child process.
python3 - "$MNT/k" "$MNT/s/f" "$SERVER_PID" >"$WORK/stores.out" <<'PY' || fail "the store program: $(cat "$WORK/stores.out")"
import mmap, os, signal, sys, time
size, late = 8 << 20, (15 << 19)
maps = []
for path in sys.argv[1:3]:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    os.pwrite(fd, b"a" * size, 0)
    m = mmap.mmap(fd, size)
    os.close(fd)
    m[0:4] = b"pre!"
    m.flush()
    maps.append((path, m))
os.kill(int(sys.argv[3]), signal.SIGKILL)
while os.path.exists(f"/proc/{sys.argv[3]}") and \
        open(f"/proc/{sys.argv[3]}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
    time.sleep(0.01)
for path, m in maps:
    pid = os.fork()
    if pid == 0:
        m[late:late + 5] = b"post!"
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    died = signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) else "none"
    print(os.path.basename(path), died)
PY
grep -qx "k none" "$WORK/stores.out" || fail "kernel-path mapping after the kill: $(cat "$WORK/stores.out")"
grep -qx "f SIGBUS" "$WORK/stores.out" ||
  fail "server-path mapping after the kill, not SIGBUS as documented: $(cat "$WORK/stores.out")"

fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
SERVER_PID=
tierfs_start_mount "$CONFIG"
[ "$(tierfs_path_of "$MNT/k")" = kernel ] || fail "k is on the $(tierfs_path_of "$MNT/k") path"
python3 - "$MNT/k" "$MNT/s/f" <<'PY' || fail "bytes after the remount"
import sys
late = 15 << 19
k, f = (open(p, "rb").read() for p in sys.argv[1:3])
ok = True
for name, data, want in (("k", k, b"post!"), ("f", f, b"aaaaa")):
    if data[:4] != b"pre!" or data[late:late + 5] != want or len(data) != 8 << 20:
        print(f"{name}: {data[:4]!r} {data[late:late + 5]!r} {len(data)}", file=sys.stderr)
        ok = False
sys.exit(0 if ok else 1)
PY
tierfs_stop_mount
[ "$failures" -eq 0 ] && echo "OK: a kernel-path mapping goes on after kill -9 (kept), a server-path one is SIGBUS"
exit $((failures != 0))
