"""The kernel data path in the crash test (crash_test.py): its layouts' crash
points, writes through shared mappings, and the checks after each remount
that the backing store holds exactly one backing file per kernel-path file,
named for the file's tier, and nothing else; at the end, that no backing
tmpfs outlived its mount.

On the kernel path the kernel writes the backing file itself (FUSE
passthrough): a kill -9 of the server cannot cut a write, so what must
survive is decided by the same rules as on the server path (an operation
that returned is there; the one in flight is there whole or not at all, a
write's range old or new bytes). What a crash can break there is the
metadata around the bytes: a create, unlink or rename logged or not, an
orphan backing file (unlinked while open, moved off the kernel path) left
behind, a move between tiers cut between its renames or before its switch.
"""

import errno
import json
import mmap
import os
import signal
import subprocess

# Inside a move that touches the kernel path (tierfs/server/fs_kernel_move.cc,
# tierfs/core/migrate_path.cc), after the points every move has.
KERNEL_MIGRATE_POINTS = [
    "migrate.after_chunk",             # onto or off the kernel path: a chunk copied
    "migrate.before_switch",           # the copy done, the switch not logged
    "migrate.after_link",              # onto: the unnamed copy linked, the switch not logged
    "migrate.after_switch_log",        # the switch logged, old blocks or backing file still there
    "migrate.before_backing_removed",  # off: logged, the backing file not yet removed
    "kmove.after_begin",               # in place: renamed <ino>.<to>.moving, pages not moved
    "kmove.before_end",                # in place: pages moved, .moving not dropped
]
# What the server path's data points would add: a kernel-path write never
# reaches the server, so write.before_copy and free.after_log are not met
# on a layout with no server-path tier.
KERNEL_ONLY_DROP = ("write.before_copy", "free.after_log")


def kernel_refusal(tierfs, toml_text, tmp):
    """None when `tierfs check-config` puts the kernel layouts' first tier on
    the kernel path, else the line saying why not."""
    path = f"{tmp}/kernel-probe.toml"
    with open(path, "w") as f:
        f.write(toml_text)
    r = subprocess.run([tierfs, "check-config", path], capture_output=True, text=True)
    out = (r.stdout + r.stderr).strip()
    if r.returncode == 0 and '": kernel path' in out:
        return None
    return out.splitlines()[-1] if out else f"check-config exit {r.returncode}"


def mmap_write(rng, model, mnt, path, ino):
    """A store through a shared mapping inside the file's size, then msync: it is
    acknowledged when msync returns (on either path: the server path sees it at
    writeback, the kernel path has it in the backing file at once). Returns
    (effect on the model, run) or None for an empty file.

    The store and the msync run in a child process (store_in_child): a fault
    that the kernel cannot fill is SIGBUS, which must fail the operation, not
    end the test. A page of a server-path file that is not in the page cache
    is filled by a READ to the server, so after a kill -9 the next such fault
    is SIGBUS (FUSE's own behaviour for any mapping whose server died;
    docs/operations.md, "What a crash loses"); on a live server a SIGBUS is a
    failure like any other error."""
    size = len(model.data[ino])
    if size == 0:
        return None
    off = rng.randrange(0, size)
    buf = rng.randbytes(rng.randrange(1, min(size - off, 64 * 1024) + 1))

    def apply(m):
        m.data[m.names[path]][off:off + len(buf)] = buf

    def run():
        fd = os.open(f"{mnt}/{path}", os.O_RDWR)
        try:
            if os.fstat(fd).st_size < off + len(buf):
                raise OSError(errno.EIO, "mmap_write: the file shrank under the model")
            with mmap.mmap(fd, off + len(buf)) as m:
                store_in_child(m, off, buf)
        finally:
            os.close(fd)
    return apply, run


def store_in_child(m, off, buf):
    """m[off:...] = buf and msync, in a forked child (it shares the mapping).
    Raises OSError: the child's errno, or EFAULT when a signal (SIGBUS) ended it."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            m[off:off + len(buf)] = buf
            m.flush()
        except OSError as e:
            code = e.errno or 255
        except BaseException:  # nothing of the parent may run in the child
            code = 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        raise OSError(errno.EFAULT, f"mmap_write: {sig} in the store through the mapping")
    code = os.WEXITSTATUS(status)
    if code != 0:
        raise OSError(code, f"mmap_write: {os.strerror(code) if code != 255 else 'failed'}")


def backing_files(state):
    """name -> store for every file in the state's backing tmpfs."""
    out = {}
    if not os.path.isdir(state):
        return out
    for store in os.listdir(state):
        if store.startswith("kernel-store."):
            for name in os.listdir(f"{state}/{store}"):
                out[name] = store
    return out


def check_backing(mnt, names, state):
    """Every kernel-path file has one backing file, "<ino>.<its tier>" (no
    ".moving" left after the remount), a server-path file has none, and no
    backing file belongs to no file (an unlinked or moved-off file's was
    removed at adoption). Returns why not, or None."""
    files = backing_files(state)
    want = set()
    for path in sorted(names):
        page = json.loads(os.getxattr(f"{mnt}/{path}", "user.tierfs.map"))
        if page["data_path"] == "kernel":
            want.add(f"{page['ino']}.{page['preferred_tier']}")
    want_names = sorted(want)
    got = sorted(files)
    if want_names != got:
        extra = [n for n in got if n not in want]
        missing = [n for n in want_names if n not in files]
        return f"backing store: extra {extra}, missing {missing}"
    return None


def leftover_mounts(tmp):
    """Mount points under tmp still mounted (a backing tmpfs a clean unmount left)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p.startswith(tmp + "/")]
