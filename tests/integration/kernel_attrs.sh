#!/usr/bin/env bash
# A kernel-path file's attributes as stat shows them (Fs::kernel_attrs_settled):
# the kernel keeps them for long while the file is quiescent, so repeated
# stats cost no GETATTR, and never shows them stale after a change it does
# not see itself, a store through a shared mapping of the backing file:
#  1. quiescent: stats, here and from another process, make no GETATTR;
#  2. attributes kept for long, then an open, a mapped store and msync: a
#     stat while the file is open and mapped, from here and from another
#     process, and after munmap and close, shows the new mtime and blocks;
#  3. passthrough writes and truncates while a writer is open, seen by
#     another process's stat at each step, and after the close;
#  4. a mapping that outlives its descriptor (the RELEASE came at the
#     close): a store, then a stat at once shows it; quiescent after munmap;
#  5. a new file (its CREATE's attributes are kept for long): stats after an
#     empty create make no GETATTR; truncate, mapped store, stat is fresh;
#  6. read-only opens leave them kept (a read asks once, for atime), and a
#     writable open beside a read-only one still makes a mapped store seen;
#  7. timestamps as on tmpfs, in lockstep with a file in a tmpfs: stat, a
#     change, stat, 100 times each with no pause (tmpfs refines a stamp that
#     was read: a change right after another moves mtime/ctime there), for
#     pwrite, ftruncate and truncate to the same size, each right after
#     another change, fallocate, punch hole, copy_file_range, utimes now,
#     O_TRUNC, a mapped store with msync, chmod, setxattr, link, a write
#     right after the create: where the tmpfs file's mtime or ctime moved,
#     the mount's must.
# Each check compares the mount's stat with the backing file's own; all of
# it on both cache modes. Takes about 10 s. SKIPs where the build or the
# kernel has no passthrough.
source "$(dirname "$0")/lib.sh"

STATE="$WORK/state"
config() {
  printf '[mount]\nstate_dir = "%s"\ncache = "%s"\n%s\n' "$STATE" "$1" \
    "$(tierfs_kernel_tier fast 256MiB 4KiB)"
}
config none >"$WORK/check.toml"
"$TIERFS_BIN" check-config "$WORK/check.toml" >"$WORK/check.out" 2>&1 ||
  tierfs_kernel_path_refused "$WORK/check.out"

REF=$(mktemp -d /dev/shm/tierfs-attrs-ref-XXXXXX)
trap 'rm -rf "$REF"; tierfs_cleanup' EXIT
failed=0
for cache in none kernel; do
tierfs_start_mount "$(config "$cache")" --log-file "$WORK/mount-$cache.log"
PYTHONPATH="$(dirname "$0")" python3 - "$MNT" "$STATE/kernel-store.page" "$cache" "$REF" <<'PY'
import ctypes, json, mmap, os, subprocess, sys, time
import libc_mmap

mnt, backing_dir, cache, ref_dir = sys.argv[1:5]
failures = []
PAGE = 4096


def fail(what):
    print(f"FAIL (cache = {cache}): {what}", file=sys.stderr)
    failures.append(what)


def getattrs():
    raw = os.getxattr(mnt, "user.tierfs.stats")
    return json.loads(raw)["ops"]["getattr"]


inos = {}


def backing(path):
    if path not in inos:
        inos[path] = os.stat(path).st_ino
    return os.stat(f"{backing_dir}/{inos[path]}.fast")


def facts(st):
    return (st.st_size, st.st_blocks, st.st_mtime_ns)


def other_stat(path):
    # coreutils' stat asks statx for these three only: not atime, which a
    # passthrough mmap makes the kernel ask for again (fuse_file_accessed).
    out = subprocess.run(["stat", "-c", "%s %b %.9Y", path], check=True,
                         capture_output=True, text=True).stdout.split()
    sec, nsec = out[2].split(".")
    return (int(out[0]), int(out[1]), int(sec) * 10**9 + int(nsec))


def check(path, what):
    """The mount's stat, from another process and from here, against the backing file's.
    The other process's narrower statx goes first: a full stat asks for atime too,
    and its answer would refresh what the kernel keeps for both."""
    want = facts(backing(path))
    # mtime: the later of the server's record and the backing file's (FileData::attrs).
    there = other_stat(path)
    if there[:2] != want[:2] or there[2] < want[2]:
        fail(f"{what}: another process's stat says {there}, the backing file {want}")
    here = facts(os.stat(path))
    if here[:2] != want[:2] or here[2] < want[2]:
        fail(f"{what}: stat says size/blocks/mtime {here}, the backing file {want}")
    return here


def pause():
    time.sleep(0.05)  # past the timestamp granularity: a change moves mtime


# 1. Quiescent: asked once, then kept.
q = f"{mnt}/quiet"
with open(q, "wb") as f:
    f.write(b"q" * 10000)
check(q, "quiescent, first stat")
time.sleep(1.2)  # longer than the old 1 s kernel-path attribute timeout
before = getattrs()
for _ in range(200):
    os.stat(q)
subprocess.run([sys.executable, "-c", "import os, sys\nfor _ in range(200): os.stat(sys.argv[1])",
                q], check=True)
made = getattrs() - before
if made != 0:
    fail(f"400 stats of a quiescent file made {made} GETATTR requests")

# 2. Attributes kept for long, then open, a mapped store into a hole, msync.
m = f"{mnt}/mapped"
with open(m, "wb") as f:
    f.write(b"m" * PAGE)
    f.truncate(1 << 20)                      # holes after the first page
kept = check(m, "before the mapping")
os.stat(m)                                   # kept by the kernel from here
pause()
fd = os.open(m, os.O_RDWR)
view = mmap.mmap(fd, 1 << 20)
view[512 << 10:(512 << 10) + 5] = b"store"
view.flush()                                 # msync
now = check(m, "a mapped store, msync, file open and mapped")
if now[1] <= kept[1] or now[2] <= kept[2]:
    fail(f"a mapped store: blocks/mtime {now[1:]} not past {kept[1:]}")
pause()
view[768 << 10:(768 << 10) + 5] = b"again"  # no msync: the store alone moves them
again = check(m, "a second mapped store, no msync")
if again[1] <= now[1]:
    fail(f"a second mapped store: blocks {again[1]} not past {now[1]}")
view.close()
os.close(fd)
check(m, "after munmap and close")

# 3. Passthrough writes and truncates while a writer is open.
w = f"{mnt}/written"
with open(w, "wb") as f:
    f.write(b"w" * 100)
os.stat(w)
pause()
fd = os.open(w, os.O_RDWR)
for step in range(1, 4):
    os.pwrite(fd, b"x" * 5000, step * 100000)
    got = check(w, f"write {step} with the writer open")
    if got[0] != step * 100000 + 5000:
        fail(f"write {step}: size {got[0]}")
    if os.fstat(fd).st_size != got[0]:
        fail(f"write {step}: fstat size {os.fstat(fd).st_size}")
os.ftruncate(fd, 50000)
if check(w, "ftruncate down with the writer open")[0] != 50000:
    fail("ftruncate down: size")
os.ftruncate(fd, 3 << 20)
if check(w, "ftruncate up with the writer open")[0] != 3 << 20:
    fail("ftruncate up: size")
os.close(fd)
check(w, "after the writer closed")
os.truncate(w, 7777)                         # by name, nothing open
if check(w, "truncate by name")[0] != 7777:
    fail("truncate by name: size")

# 4. A mapping that outlives its descriptor: the RELEASE came at the close.
e = f"{mnt}/after-close"
with open(e, "wb") as f:
    f.truncate(1 << 20)
fd = os.open(e, os.O_RDWR)
addr = libc_mmap.map_shared(fd, 1 << 20)
os.close(fd)                                 # the RELEASE goes now
time.sleep(0.2)
first = check(e, "mapped after close, before the store")
pause()
libc_mmap.store(addr, 0, b"late")
late = check(e, "a store through a mapping whose descriptor was closed")
if late[1] <= first[1] or late[2] <= first[2]:
    fail(f"a store after close: blocks/mtime {late[1:]} not past {first[1:]}")
pause()
libc_mmap.store(addr, 64 << 10, b"later")
check(e, "a second store after close")
libc_mmap.unmap(addr, 1 << 20)
check(e, "after munmap")
before = getattrs()
for _ in range(100):
    os.stat(e)
if getattrs() - before > 1:
    fail(f"after munmap, 100 stats made {getattrs() - before} GETATTR requests")

# 5. A new file: an empty create's attributes are kept; then truncate, map, store.
n = f"{mnt}/new"
os.close(os.open(n, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
before = getattrs()
for _ in range(100):
    os.stat(n)
if getattrs() - before != 0:
    fail(f"100 stats of a new empty file made {getattrs() - before} GETATTR requests")
check(n, "a new empty file")
fd = os.open(f"{mnt}/new2", os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
os.ftruncate(fd, 1 << 20)
pause()
view = mmap.mmap(fd, 1 << 20)
view[0:4] = b"new!"
got = check(f"{mnt}/new2", "a new file, truncated and stored through a mapping")
if got[1] == 0:
    fail("a new file's mapped store: 0 blocks")
view.close()
os.close(fd)
check(f"{mnt}/new2", "a new file after close")

# 6. Read-only opens, then a writer beside a reader.
r = f"{mnt}/read"
with open(r, "wb") as f:
    f.write(b"r" * PAGE)
    f.truncate(1 << 20)
check(r, "read-only: before")
before = getattrs()
for _ in range(20):
    with open(r, "rb") as f:
        f.read(PAGE)
    for _ in range(5):
        os.stat(r)
if getattrs() - before > 20:
    fail(f"20 read-only open, read, close and 5 stats made {getattrs() - before} GETATTR requests")
reader = os.open(r, os.O_RDONLY)
kept = check(r, "read-only handle open")
pause()
fd = os.open(r, os.O_RDWR)
view = mmap.mmap(fd, 1 << 20)
view[300 << 10:(300 << 10) + 6] = b"writer"
got = check(r, "a mapped store beside a read-only handle")
if got[1] <= kept[1]:
    fail(f"a mapped store beside a reader: blocks {got[1]} not past {kept[1]}")
view.close()
os.close(fd)
os.close(reader)
check(r, "after the writer and the reader closed")


# 7. Timestamps as on tmpfs: where a change moved the tmpfs file's mtime or
# ctime, it must move the mount's, also right after another change.
def lockstep(name, change, rounds=100):
    paths = [f"{ref_dir}/{name}-{cache}", f"{mnt}/{name}"]
    fds = [os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644) for p in paths]
    for fd in fds:
        os.pwrite(fd, b"t" * 2 * PAGE, 0)
    missed = {"st_mtime_ns": 0, "st_ctime_ns": 0}
    for i in range(rounds):
        moved = []
        for p, fd in zip(paths, fds):
            before = os.fstat(fd)
            change(p, fd, i)
            after = os.fstat(fd)
            moved.append({k: getattr(before, k) != getattr(after, k) for k in missed})
        for k in missed:
            if moved[0][k] and not moved[1][k]:
                missed[k] += 1
    for fd in fds:
        os.close(fd)
    for k, n in missed.items():
        if n:
            fail(f"{name}: {k[:-3]} moved on tmpfs and not on the mount {n} times of {rounds}")


def copy_range(p, fd, i):
    os.ftruncate(fd, 2 * PAGE)
    os.fstat(fd)
    os.copy_file_range(fd, fd, 100, 0, PAGE)


def mapped_store(p, fd, i):
    with mmap.mmap(fd, PAGE) as view:
        view[i % PAGE] = (i & 0xFF)
        view.flush()


libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def punch(p, fd, i):
    if libc.fallocate(fd, 3, 0, PAGE) != 0:  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
        raise OSError(ctypes.get_errno(), "fallocate")


def xattr(p, fd, i):
    os.setxattr(p, "user.t", str(i).encode())


def link(p, fd, i):
    os.link(p, p + ".l")
    os.unlink(p + ".l")


lockstep("t-pwrite", lambda p, fd, i: os.pwrite(fd, b"w", i % PAGE))
lockstep("t-ftruncate-same", lambda p, fd, i: os.ftruncate(fd, 2 * PAGE))
lockstep("t-truncate-same", lambda p, fd, i: os.truncate(p, 2 * PAGE))
lockstep("t-ftruncate-after-pwrite",
         lambda p, fd, i: (os.pwrite(fd, b"w", 0), os.fstat(fd), os.ftruncate(fd, 2 * PAGE)))
lockstep("t-pwrite-after-ftruncate",
         lambda p, fd, i: (os.ftruncate(fd, 2 * PAGE), os.fstat(fd), os.pwrite(fd, b"w", 0)))
lockstep("t-fallocate", lambda p, fd, i: os.posix_fallocate(fd, 0, PAGE))
lockstep("t-punch", punch)
lockstep("t-copy-file-range", copy_range)
lockstep("t-utime-now", lambda p, fd, i: os.utime(fd))
lockstep("t-pwrite-after-utime-now", lambda p, fd, i: (os.utime(fd), os.fstat(fd),
                                                     os.pwrite(fd, b"w", 0)))
lockstep("t-o-trunc", lambda p, fd, i: os.close(os.open(p, os.O_WRONLY | os.O_TRUNC)))
lockstep("t-mapped-store", mapped_store)
lockstep("t-chmod", lambda p, fd, i: os.chmod(fd, 0o600 | (i & 1) * 0o40))
lockstep("t-pwrite-after-chmod", lambda p, fd, i: (os.chmod(fd, 0o644), os.fstat(fd),
                                                  os.pwrite(fd, b"w", 0)))
lockstep("t-setxattr", xattr)
# A new file, then a write at once.
missed = 0
for i in range(100):
    moved = []
    for p in (f"{ref_dir}/t-new-{cache}", f"{mnt}/t-new"):
        fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        before = os.fstat(fd).st_mtime_ns
        os.pwrite(fd, b"n", 0)
        moved.append(os.fstat(fd).st_mtime_ns != before)
        os.close(fd)
        os.unlink(p)
    missed += moved[0] and not moved[1]
if missed:
    fail(f"create, then pwrite: mtime moved on tmpfs and not on the mount {missed} times of 100")
lockstep("t-link", link)
sys.exit(1 if failures else 0)
PY
[ $? = 0 ] || failed=1
tierfs_stop_mount
done
[ "$failed" = 0 ] || exit 1
echo "kernel attributes: ok"
