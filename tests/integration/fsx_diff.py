#!/usr/bin/env python3
"""fsx-style differential test: one seeded random sequence of file operations
run in lockstep on files in a reference directory (tmpfs) and in a tierfs
mount; every outcome (return value, errno, bytes read) must match, and the
whole content and st_size of every file and open descriptor are compared every
--check-every ops and at the end.

  fsx_diff.py REF_DIR TEST_DIR [--seed N] [--seeds K] [--ops N] [--max-size B]

Differences that POSIX and Linux allow, and so are not compared exactly:
- SEEK_DATA / SEEK_HOLE: a file system may report any part of a hole as data
  (tierfs tracks holes at its own granularity; with cache = "kernel" the
  kernel answers "all data" itself). Checked instead: ENXIO exactly when the
  offset is at or past EOF, SEEK_DATA's answer in [off, size) with only zeros
  skipped (or ENXIO only if the rest of the file is zeros), SEEK_HOLE's answer
  in [off, size] with the hole it names reading as zeros (one byte checked).
- fallocate modes tmpfs refuses (ZERO_RANGE, COLLAPSE_RANGE, INSERT_RANGE:
  EOPNOTSUPP): tierfs may refuse them with the same errno or carry them out;
  when it carries one out, the reference file gets the same bytes by plain
  writes (what the mode promises), so the contents are compared after.
- sendfile and splice from a file onto an overlapping range of itself: the
  pipe holds page-cache pages by reference on tmpfs and the kernel path, so
  the copy reads bytes it already overwrote; the server path copies first.
  Neither is promised; such ranges are not generated (Runner.apart).
- Timestamps only with --timestamps (fsx_diff.sh asks on every mount), and
  one way: a write, truncate, fallocate or copy that moves st_mtime or
  st_ctime on tmpfs must move it on tierfs (tmpfs refines a timestamp once
  it was read, so a change right after another moves it there too).
- st_blocks is not compared (allocation granularity differs by design).
Everything else (sizes, bytes, errno of every call, SIGBUS past EOF in a
shared mapping) must be the same.
"""
import argparse
import ctypes
import ctypes.util
import errno
import faulthandler
import mmap
import os
import random
import signal
import sys

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.msync.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
MAP_FAILED = ctypes.c_void_p(-1).value
MS_SYNC = 4
# The kept mapping spans more than any file here grows to; only bytes below
# EOF are touched (past the page holding EOF is SIGBUS).
PMAP_BYTES = 8 << 20

FALLOC_KEEP_SIZE, FALLOC_PUNCH, FALLOC_COLLAPSE, FALLOC_ZERO, FALLOC_INSERT = 1, 2, 8, 0x10, 0x20
PAGE = mmap.PAGESIZE
FALLOC_MODES = {
    "0": 0, "KEEP": FALLOC_KEEP_SIZE, "PUNCH|KEEP": FALLOC_PUNCH | FALLOC_KEEP_SIZE,
    "PUNCH": FALLOC_PUNCH, "ZERO": FALLOC_ZERO, "ZERO|KEEP": FALLOC_ZERO | FALLOC_KEEP_SIZE,
    "COLLAPSE": FALLOC_COLLAPSE, "INSERT": FALLOC_INSERT,
}
OPEN_FLAGS = {
    "RDWR": os.O_RDWR, "RDONLY": os.O_RDONLY, "WRONLY": os.O_WRONLY,
    "RDWR|APPEND": os.O_RDWR | os.O_APPEND, "RDWR|DIRECT": os.O_RDWR | os.O_DIRECT,
    "RDONLY|DIRECT": os.O_RDONLY | os.O_DIRECT, "RDWR|TRUNC": os.O_RDWR | os.O_TRUNC,
}


class Divergence(Exception):
    pass


def outcome(fn):
    """(True, value) or (False, errno name) of fn()."""
    try:
        return (True, fn())
    except OSError as e:
        return (False, errno.errorcode.get(e.errno, str(e.errno)))


def c_fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return 0


def mapped(fd, length, prot=mmap.PROT_READ | mmap.PROT_WRITE):
    addr = libc.mmap(None, length, prot, mmap.MAP_SHARED, fd, 0)
    if addr == MAP_FAILED or addr is None:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return addr


class World:
    """One side: a directory with files "a" and "b" and three descriptor slots."""

    def __init__(self, root, name):
        self.root, self.name = root, name
        self.slots = [None, None, None]  # (fd, path name, flag name) or None
        self.pmap = None  # (fd, address, length): a mapping of "a" kept across operations

    def path(self, name):
        return os.path.join(self.root, name)

    def setup(self):
        for n in ("a", "b"):
            fd = os.open(self.path(n), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            os.close(fd)
        self.slots = [None, None, None]
        self.reopen(0, "a", "RDWR")
        self.reopen(1, "a", "RDWR")
        self.reopen(2, "b", "RDWR")
        fd = os.open(self.path("a"), os.O_RDWR)
        self.pmap = (fd, mapped(fd, PMAP_BYTES), PMAP_BYTES)

    def close_all(self):
        for i, s in enumerate(self.slots):
            if s:
                os.close(s[0])
            self.slots[i] = None
        if self.pmap:
            libc.munmap(self.pmap[1], self.pmap[2])
            os.close(self.pmap[0])
            self.pmap = None

    def reopen(self, slot, name, flags):
        if self.slots[slot]:
            os.close(self.slots[slot][0])
            self.slots[slot] = None
        fd = os.open(self.path(name), OPEN_FLAGS[flags] | os.O_CREAT, 0o644)
        self.slots[slot] = (fd, name, flags)
        return 0

    def fd(self, slot):
        return self.slots[slot][0] if self.slots[slot] else -1

    def snapshot(self):
        """Content and size of each path and each open descriptor's file."""
        out = {}
        for n in ("a", "b"):
            try:
                fd = os.open(self.path(n), os.O_RDONLY)
            except FileNotFoundError:
                out[n] = None
                continue
            try:
                size = os.fstat(fd).st_size
                out[n] = (size, read_all(fd, size))
            finally:
                os.close(fd)
        for i, s in enumerate(self.slots):
            if not s:
                continue
            size = os.fstat(s[0]).st_size
            # A descriptor without read access is compared by size only.
            data = read_all(s[0], size) if "WRONLY" not in s[2] else b""
            out["slot%d" % i] = (size, data)
        size = os.fstat(self.pmap[0]).st_size
        out["kept mapping's file"] = (size, read_all(self.pmap[0], size))
        return out


def stamp(w, slot):
    """(st_mtime_ns, st_ctime_ns) of the slot's file, None without one."""
    if not w.slots[slot]:
        return None
    st = os.fstat(w.fd(slot))
    return st.st_mtime_ns, st.st_ctime_ns


def read_all(fd, size):
    chunks, off = [], 0
    while off < size:
        c = os.pread(fd, min(1 << 20, size - off), off)
        if not c:
            break
        chunks.append(c)
        off += len(c)
    return b"".join(chunks)


def sigbus_probe(fd, size):
    """Whether touching the page past the one holding EOF through a shared
    mapping kills with SIGBUS (both file systems must agree)."""
    pid = os.fork()
    if pid == 0:
        faulthandler.disable()  # the SIGBUS here is expected, no traceback
        try:
            length = (size // PAGE + 2) * PAGE
            addr = mapped(fd, length, mmap.PROT_READ)
            ctypes.string_at(addr + (size // PAGE + 1) * PAGE, 1)
            os._exit(0)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "signal %s" % signal.Signals(os.WTERMSIG(status)).name
    return "exit %d" % os.WEXITSTATUS(status)


class Runner:
    def __init__(self, ref_dir, test_dir, seed, max_size, granularity, verbose, timestamps=False):
        self.timestamps = timestamps
        self.rng = random.Random(seed)
        self.seed = seed
        self.max_size = max_size
        self.gran = granularity
        self.ref = World(ref_dir, "ref")
        self.test = World(test_dir, "tierfs")
        self.log = []
        self.verbose = verbose
        self.pipe = None

    # Random arguments: offsets near granularity and page boundaries, unaligned, past EOF.
    def offset(self):
        r = self.rng.random()
        if r < 0.3:
            b = self.rng.choice([PAGE, self.gran, 2 * self.gran, 65536]) * self.rng.randrange(0, max(1, self.max_size // self.gran) + 1)
            return max(0, min(self.max_size, b + self.rng.randrange(-3, 4)))
        if r < 0.45:  # near EOF of file a
            size = os.fstat(self.ref.fd(0)).st_size if self.ref.slots[0] else 0
            return max(0, size + self.rng.randrange(-PAGE * 2, PAGE * 2))
        return self.rng.randrange(0, self.max_size)

    def length(self):
        r = self.rng.random()
        if r < 0.4:
            return self.rng.randrange(1, 512)
        if r < 0.7:
            return self.rng.randrange(1, 3 * PAGE)
        if r < 0.9:
            return self.rng.randrange(1, 2 * self.gran + PAGE)
        return self.rng.choice([PAGE, self.gran, 2 * PAGE]) * self.rng.randrange(1, 5)

    def data(self, n):
        return self.rng.randbytes(n)

    def both(self, desc, fn, compare=True, stamps=None):
        """Runs fn(world) on the reference and on tierfs; the outcomes must match.
        With stamps=SLOT: when the call moved st_mtime or st_ctime of SLOT's
        file on tmpfs, it must move them on tierfs too (not the reverse:
        tmpfs takes coarse timestamps, two calls may share one)."""
        self.log.append(desc)
        if not self.timestamps:
            stamps = None
        before = [stamp(w, stamps) for w in (self.ref, self.test)] if stamps is not None else None
        a = outcome(lambda: fn(self.ref))
        b = outcome(lambda: fn(self.test))
        if before is not None and a == b:
            after = [stamp(w, stamps) for w in (self.ref, self.test)]
            for i, what in enumerate(("st_mtime", "st_ctime")):
                if before[0] and after[0] and before[0][i] != after[0][i] and before[1][i] == after[1][i]:
                    raise Divergence("%s: changed %s on tmpfs, not on tierfs" % (desc, what))
        if self.verbose:
            print("%5d %s -> %s" % (len(self.log) - 1, desc, short(a)))
        if compare and a != b:
            raise Divergence("%s: tmpfs %s, tierfs %s" % (desc, short(a), short(b)))
        return a, b

    def touched(self, slot, off, n):
        """After an operation that changed [off, off+n) of slot's file: those
        bytes (and a page either side) must read the same on both sides now,
        before later writes can cover a difference up."""
        lo, hi = max(0, off - PAGE), off + n + PAGE
        got = []
        for w in (self.ref, self.test):
            if not w.slots[slot]:
                return
            fd = os.open("/proc/self/fd/%d" % w.fd(slot), os.O_RDONLY)
            try:
                got.append((os.fstat(fd).st_size, os.pread(fd, hi - lo, lo)))
            finally:
                os.close(fd)
        if got[0] != got[1]:
            x, y = got
            first = next((i for i in range(min(len(x[1]), len(y[1]))) if x[1][i] != y[1][i]), None)
            raise Divergence("slot%d's bytes [%d, %d) after the operation: st_size tmpfs %d, tierfs %d; first differing byte %s" % (
                slot, lo, hi, x[0], y[0], "none (lengths differ)" if first is None else lo + first))

    def check(self, why):
        ra = self.ref.snapshot()
        tb = self.test.snapshot()
        for k in sorted(set(ra) | set(tb)):
            x, y = ra.get(k), tb.get(k)
            if x == y:
                continue
            if x is None or y is None:
                raise Divergence("%s: %s exists on one side only (tmpfs %s, tierfs %s)" % (why, k, x is not None, y is not None))
            if x[0] != y[0]:
                raise Divergence("%s: %s st_size tmpfs %d, tierfs %d" % (why, k, x[0], y[0]))
            first = next(i for i in range(min(len(x[1]), len(y[1]))) if x[1][i] != y[1][i]) \
                if x[1][:min(len(x[1]), len(y[1]))] != y[1][:min(len(x[1]), len(y[1]))] else min(len(x[1]), len(y[1]))
            raise Divergence("%s: %s content differs from byte %d (of %d; tmpfs %r, tierfs %r)" % (
                why, k, first, x[0], x[1][first:first + 8], y[1][first:first + 8]))

    # --- operations ---------------------------------------------------------
    def op_pwrite(self):
        s, off, d = self.rng.randrange(3), self.offset(), self.data(self.length())
        self.both("pwrite slot%d off=%d len=%d" % (s, off, len(d)), lambda w: os.pwrite(w.fd(s), d, off), stamps=s)
        self.touched(s, off, len(d))

    def op_pread(self):
        s, off, n = self.rng.randrange(3), self.offset(), self.length()
        self.both("pread slot%d off=%d len=%d" % (s, off, n), lambda w: os.pread(w.fd(s), n, off))

    def op_writev(self):
        s, off = self.rng.randrange(3), self.offset()
        bufs = [self.data(self.rng.randrange(0, 3 * PAGE)) for _ in range(self.rng.randrange(1, 5))]
        self.both("pwritev slot%d off=%d lens=%s" % (s, off, [len(b) for b in bufs]),
                  lambda w: os.pwritev(w.fd(s), bufs, off), stamps=s)
        self.touched(s, off, sum(len(b) for b in bufs))

    def op_readv(self):
        s, off = self.rng.randrange(3), self.offset()
        lens = [self.rng.randrange(0, 3 * PAGE) for _ in range(self.rng.randrange(1, 5))]

        def f(w):
            bufs = [bytearray(n) for n in lens]
            got = os.preadv(w.fd(s), bufs, off)
            return got, b"".join(bytes(b) for b in bufs)[:got]
        self.both("preadv slot%d off=%d lens=%s" % (s, off, lens), f)

    def op_append(self):
        s, d = self.rng.randrange(3), self.data(self.length())

        def f(w):
            name = w.slots[s][1] if w.slots[s] else "a"
            fd = os.open(w.path(name), os.O_WRONLY | os.O_APPEND)
            try:
                n = os.write(fd, d)
                return n, os.lseek(fd, 0, os.SEEK_CUR)
            finally:
                os.close(fd)
        self.both("append via slot%d's file len=%d" % (s, len(d)), f)

    def op_write_cur(self):
        # write() at the descriptor's position (O_APPEND descriptors append).
        s, off, d = self.rng.randrange(3), self.offset(), self.data(self.length())

        def f(w):
            os.lseek(w.fd(s), off, os.SEEK_SET)
            n = os.write(w.fd(s), d)
            return n, os.lseek(w.fd(s), 0, os.SEEK_CUR)
        self.both("lseek+write slot%d off=%d len=%d" % (s, off, len(d)), f)

    def op_seek_end(self):
        s, delta = self.rng.randrange(3), self.rng.randrange(-PAGE, PAGE)
        self.both("lseek slot%d %d SEEK_END" % (s, delta), lambda w: os.lseek(w.fd(s), delta, os.SEEK_END))

    def op_seek_data_hole(self):
        s, whence = self.rng.randrange(3), self.rng.choice([os.SEEK_DATA, os.SEEK_HOLE])
        name = "SEEK_DATA" if whence == os.SEEK_DATA else "SEEK_HOLE"
        off = self.offset()
        desc = "lseek slot%d %d %s" % (s, off, name)
        a, b = self.both(desc, lambda w: os.lseek(w.fd(s), off, whence), compare=False)
        if a == b:
            return
        size = os.fstat(self.ref.fd(s)).st_size if self.ref.slots[s] else None
        if size is None or not a[0] and a[1] != "ENXIO":
            raise Divergence("%s: tmpfs %s, tierfs %s" % (desc, short(a), short(b)))
        if off >= size:
            raise Divergence("%s past EOF (%d): tmpfs %s, tierfs %s" % (desc, size, short(a), short(b)))
        content = read_all(self.ref.fd(s), size) if "WRONLY" not in self.ref.slots[s][2] else None
        if content is None:
            return
        if whence == os.SEEK_DATA:
            end = b[1] if b[0] else size
            if b[0] and not off <= end < size or any(content[off:end]):
                raise Divergence("%s: tmpfs %s, tierfs %s skips data (size %d)" % (desc, short(a), short(b), size))
        else:
            if not b[0] or not off <= b[1] <= size or b[1] < size and content[b[1]] != 0:
                raise Divergence("%s: tmpfs %s, tierfs %s names a hole that holds data (size %d)" % (desc, short(a), short(b), size))

    def op_truncate(self):
        n = self.rng.choice([0, self.offset(), self.offset(), self.rng.randrange(0, self.max_size)])
        if self.rng.random() < 0.5:
            s = self.rng.randrange(3)
            self.both("ftruncate slot%d %d" % (s, n), lambda w: os.ftruncate(w.fd(s), n), stamps=s)
            self.touched(s, n, 0)
        else:
            name = self.rng.choice("ab")
            self.both("truncate %s %d" % (name, n), lambda w: os.truncate(w.path(name), n))

    def op_fallocate(self):
        s = self.rng.randrange(3)
        mode_name = self.rng.choice(list(FALLOC_MODES))
        mode = FALLOC_MODES[mode_name]
        off, n = self.offset(), self.length()
        if mode & (FALLOC_COLLAPSE | FALLOC_INSERT) and self.rng.random() < 0.7:
            off, n = off // PAGE * PAGE, max(1, n // PAGE) * PAGE
        desc = "fallocate slot%d %s off=%d len=%d" % (s, mode_name, off, n)
        a, b = self.both(desc, lambda w: c_fallocate(w.fd(s), mode, off, n), compare=False, stamps=s)
        if a == b:
            self.touched(s, off, n)
            return
        if a != (False, errno.errorcode[errno.EOPNOTSUPP]) or not b[0]:
            raise Divergence("%s: tmpfs %s, tierfs %s" % (desc, short(a), short(b)))
        # tierfs does what tmpfs refuses: the reference gets the same bytes.
        # Through a descriptor of its own: the slot's may be O_APPEND.
        fd = os.open("/proc/self/fd/%d" % self.ref.fd(s), os.O_RDWR)
        try:
            self.emulate(fd, mode, off, n)
        finally:
            os.close(fd)
        self.log[-1] += " (tierfs did it, tmpfs EOPNOTSUPP: emulated)"
        self.touched(s, off, n)

    @staticmethod
    def emulate(fd, mode, off, n):
        size = os.fstat(fd).st_size
        if mode & FALLOC_ZERO:
            end = off + n if not mode & FALLOC_KEEP_SIZE else min(off + n, size)
            if end > off:
                os.pwrite(fd, bytes(end - off), off)
        elif mode & FALLOC_COLLAPSE:
            content = read_all(fd, size)
            os.ftruncate(fd, 0)
            os.pwrite(fd, content[:off] + content[off + n:], 0)
        elif mode & FALLOC_INSERT:
            content = read_all(fd, size)
            os.pwrite(fd, content[:off] + bytes(n) + content[off:], 0)

    def op_edge(self):
        # Calls tmpfs refuses or answers with nothing: limits of the offset
        # arithmetic (only ones that fail on tmpfs, so no file grows huge).
        s = self.rng.randrange(3)
        top = (1 << 63) - 1
        cases = [
            ("pwrite off=2^63-1 len=1", lambda w: os.pwrite(w.fd(s), b"x", top)),
            ("pwrite off=2^63-4096 len=8192", lambda w: os.pwrite(w.fd(s), bytes(8192), top - 4095)),
            ("pread off=2^62 len=10", lambda w: os.pread(w.fd(s), 10, 1 << 62)),
            ("ftruncate -1", lambda w: os.ftruncate(w.fd(s), -1)),
            ("fallocate 0 off=2^63-2 len=4", lambda w: c_fallocate(w.fd(s), 0, top - 1, 4)),
            ("fallocate 0 off=0 len=0", lambda w: c_fallocate(w.fd(s), 0, 0, 0)),
            ("fallocate 0 off=-1 len=10", lambda w: c_fallocate(w.fd(s), 0, -1, 10)),
            ("fallocate PUNCH|KEEP off=2^63-2 len=4", lambda w: c_fallocate(w.fd(s), FALLOC_PUNCH | FALLOC_KEEP_SIZE, top - 1, 4)),
            ("lseek -1 SEEK_DATA", lambda w: os.lseek(w.fd(s), -1, os.SEEK_DATA)),
            ("lseek -1 SEEK_SET", lambda w: os.lseek(w.fd(s), -1, os.SEEK_SET)),
            ("copy_file_range overlapping in one file", lambda w: os.copy_file_range(w.fd(s), w.fd(s), 8192, 0, 4096)),
            ("copy_file_range len=2^62 from 0 to end+4096",
             lambda w: os.copy_file_range(w.fd(s), w.fd(s), 1 << 62, 0, os.fstat(w.fd(s)).st_size + 4096)),
        ]
        name, fn = self.rng.choice(cases)
        self.both("edge slot%d %s" % (s, name), fn)

    def op_copy_range(self):
        src, dst = self.rng.randrange(3), self.rng.randrange(3)
        so, do, n = self.offset(), self.offset(), self.length()
        self.both("copy_file_range slot%d@%d -> slot%d@%d len=%d" % (src, so, dst, do, n),
                  lambda w: os.copy_file_range(w.fd(src), w.fd(dst), n, so, do), stamps=dst)
        self.touched(dst, do, n)

    def apart(self, src, so, dst, do, n):
        """do, moved past [so, so+n) when both slots hold one file and the
        ranges overlap: sendfile and splice pass page-cache pages by reference
        through the pipe, so on tmpfs (and the kernel path) a copy onto its own
        source reads bytes it has already overwritten, while the server path
        (direct I/O) copies first; which one a caller gets is unspecified."""
        a, b = self.ref.slots[src], self.ref.slots[dst]
        if a and b and os.fstat(a[0]).st_ino == os.fstat(b[0]).st_ino and do < so + n and so < do + n:
            return so + n + self.rng.randrange(0, PAGE)
        return do

    def op_sendfile(self):
        src, dst = self.rng.randrange(3), self.rng.randrange(3)
        so, do, n = self.offset(), self.offset(), self.length()
        do = self.apart(src, so, dst, do, n)

        def f(w):
            os.lseek(w.fd(dst), do, os.SEEK_SET)
            got = os.sendfile(w.fd(dst), w.fd(src), so, n)
            return got, os.lseek(w.fd(dst), 0, os.SEEK_CUR)
        self.both("sendfile slot%d@%d -> slot%d@%d len=%d" % (src, so, dst, do, n), f)
        self.touched(dst, do, n)

    def op_splice(self):
        src, dst = self.rng.randrange(3), self.rng.randrange(3)
        so, do, n = self.offset(), self.offset(), min(self.length(), 60000)
        do = self.apart(src, so, dst, do, n)

        def f(w):
            r, wr = os.pipe()
            try:
                got = os.splice(w.fd(src), wr, n, offset_src=so)
                out = 0
                while out < got:
                    k = os.splice(r, w.fd(dst), got - out, offset_dst=do + out)
                    if k == 0:
                        break
                    out += k
                return got, out
            finally:
                os.close(r)
                os.close(wr)
        self.both("splice slot%d@%d -> pipe -> slot%d@%d len=%d" % (src, so, dst, do, n), f)
        self.touched(dst, do, n)

    def op_mmap(self):
        # A shared mapping of one descriptor, written and read inside EOF;
        # the bytes checked through another descriptor (and the reverse).
        s, other = self.rng.randrange(3), self.rng.randrange(3)
        direction = self.rng.choice(["map-write", "fd-write"])
        ms = self.rng.random() < 0.5
        frac_off, frac_len = self.rng.random(), self.rng.random()
        d = self.data(self.rng.randrange(1, 3 * PAGE))

        def f(w):
            fd, ofd = w.fd(s), w.fd(other)
            size = os.fstat(fd).st_size
            if size == 0:
                return "empty"
            off = int(frac_off * size)
            data = d[:max(1, min(len(d), size - off))]
            addr = mapped(fd, size)
            try:
                if direction == "map-write":
                    ctypes.memmove(addr + off, data, len(data))
                    if ms and libc.msync(addr, size, MS_SYNC) != 0:
                        raise OSError(ctypes.get_errno(), "msync")
                    return os.pread(ofd, len(data), off)
                n = os.pwrite(ofd, data, off)
                return n, ctypes.string_at(addr + off, len(data))
            finally:
                libc.munmap(addr, size)
        self.both("mmap slot%d %s via slot%d%s frac=%.3f len=%d" % (s, direction, other, " msync" if ms else "", frac_off, len(d)), f)

    def op_kept_mapping(self):
        # A mapping made at the start, across truncates, punches, renames:
        # it must always show the file's current bytes, and its stores reach it.
        write = self.rng.random() < 0.5
        frac_off, n = self.rng.random(), self.length()
        d = self.data(n)

        def f(w):
            fd, addr, _ = w.pmap
            size = min(os.fstat(fd).st_size, PMAP_BYTES)
            if size == 0:
                return "empty"
            off = int(frac_off * size)
            k = min(n, size - off)
            if write:
                ctypes.memmove(addr + off, d, k)
                return os.pread(fd, k, off)
            return ctypes.string_at(addr + off, k), os.pread(fd, k, off)
        self.both("kept mapping %s frac=%.3f len=%d" % ("store" if write else "load", frac_off, n), f)

    def op_private_mapping(self):
        # MAP_PRIVATE stores stay in the mapping: the file keeps its bytes.
        s, frac, d = self.rng.randrange(3), self.rng.random(), self.data(self.rng.randrange(1, 2 * PAGE))

        def f(w):
            fd = w.fd(s)
            size = os.fstat(fd).st_size
            if size == 0:
                return "empty"
            addr = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE, fd, 0)
            if addr == MAP_FAILED or addr is None:
                raise OSError(ctypes.get_errno(), "mmap")
            try:
                off = int(frac * size)
                k = min(len(d), size - off)
                ctypes.memmove(addr + off, d, k)
                return ctypes.string_at(addr + off, k) == d[:k], os.pread(fd, k, off)
            finally:
                libc.munmap(addr, size)
        self.both("private mapping store slot%d frac=%.3f len=%d" % (s, frac, len(d)), f)

    def op_mmap_read(self):
        s = self.rng.randrange(3)
        frac = self.rng.random()

        def f(w):
            fd = w.fd(s)
            size = os.fstat(fd).st_size
            if size == 0:
                return "empty"
            length = (size + PAGE - 1) // PAGE * PAGE
            addr = mapped(fd, length, mmap.PROT_READ)
            try:
                off = int(frac * size)
                # up to the end of the last page: bytes past EOF in it read as zeros
                return ctypes.string_at(addr + off, length - off)
            finally:
                libc.munmap(addr, length)
        self.both("mmap read slot%d frac=%.3f to page end" % (s, frac), f)

    def op_sigbus(self):
        s = self.rng.randrange(3)
        self.both("mmap past EOF slot%d (SIGBUS)" % s,
                  lambda w: sigbus_probe(w.fd(s), os.fstat(w.fd(s)).st_size))

    def op_sync(self):
        s, data_only = self.rng.randrange(3), self.rng.random() < 0.5
        self.both("%s slot%d" % ("fdatasync" if data_only else "fsync", s),
                  lambda w: (os.fdatasync if data_only else os.fsync)(w.fd(s)))

    def op_reopen(self):
        s = self.rng.randrange(3)
        name = self.rng.choice("ab")
        # Mostly read-write, so that most later operations on the slot can succeed.
        flags = self.rng.choices(list(OPEN_FLAGS), [6, 1, 1, 2, 2, 1, 1])[0]
        ok_a, _ = self.both("reopen slot%d %s %s" % (s, name, flags), lambda w: w.reopen(s, name, flags))
        if not ok_a[0]:
            # Keep a usable descriptor in the slot on both sides.
            self.both("reopen slot%d %s RDWR" % (s, name), lambda w: w.reopen(s, name, "RDWR"))

    def op_rename(self):
        src = self.rng.choice("ab")
        dst = "b" if src == "a" else "a"

        def f(w):
            os.rename(w.path(src), w.path(dst))
            os.close(os.open(w.path(src), os.O_RDWR | os.O_CREAT, 0o644))
            return 0
        self.both("rename %s over %s, new empty %s" % (src, dst, src), f)

    OPS = [
        (op_pwrite, 14), (op_pread, 10), (op_writev, 4), (op_readv, 4), (op_append, 3),
        (op_write_cur, 3), (op_seek_end, 2), (op_seek_data_hole, 5), (op_truncate, 5),
        (op_fallocate, 10), (op_copy_range, 5), (op_sendfile, 3), (op_splice, 3), (op_mmap, 6),
        (op_mmap_read, 3), (op_sigbus, 1), (op_edge, 2), (op_kept_mapping, 5), (op_private_mapping, 1), (op_sync, 2), (op_reopen, 3), (op_rename, 1),
    ]

    def run(self, n_ops, check_every):
        for w in (self.ref, self.test):
            w.setup()
        ops, weights = zip(*self.OPS)
        try:
            for i in range(n_ops):
                op = self.rng.choices(ops, weights)[0]
                op(self)
                if (i + 1) % check_every == 0:
                    self.check("after op %d" % i)
            self.check("at the end")
        except Divergence as e:
            print("DIVERGENCE seed=%d op=%d: %s" % (self.seed, len(self.log) - 1, e))
            print("replay (last ops of seed %d):" % self.seed)
            for j in range(max(0, len(self.log) - 25), len(self.log)):
                print("  %5d %s" % (j, self.log[j]))
            return False
        finally:
            for w in (self.ref, self.test):
                w.close_all()
        return True


def short(o):
    ok, v = o
    if not ok:
        return "error " + v
    if isinstance(v, bytes):
        return "%d bytes %s" % (len(v), v[:8].hex())
    if isinstance(v, tuple):
        return "(" + ", ".join(short((True, x)) if isinstance(x, bytes) else repr(x) for x in v) + ")"
    return repr(v)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ref")
    p.add_argument("test")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seeds", type=int, default=1, help="seeds SEED .. SEED+K-1")
    p.add_argument("--ops", type=int, default=1000)
    p.add_argument("--check-every", type=int, default=10)
    p.add_argument("--max-size", type=int, default=None,
                   help="largest offset drawn (default: 3 MiB for even seeds, 256 KiB as fsx for odd ones)")
    p.add_argument("--granularity", type=int, default=65536)
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--timestamps", action="store_true",
                   help="a call that moves st_mtime/st_ctime on tmpfs must move them on tierfs")
    a = p.parse_args()
    # A fault in the tester itself (SIGBUS inside a mapping below EOF) names
    # the operation in a traceback; the seed is on the line before it.
    faulthandler.enable()
    failed = []
    for seed in range(a.seed, a.seed + a.seeds):
        print("seed %d" % seed, file=sys.stderr, flush=True)
        max_size = a.max_size or ((3 << 20) if seed % 2 == 0 else (256 << 10))
        r = Runner(a.ref, a.test, seed, max_size, a.granularity, a.verbose, a.timestamps)
        if not r.run(a.ops, a.check_every):
            failed.append(seed)
    print("fsx_diff: %d seeds x %d ops on %s, %d diverged%s" % (
        a.seeds, a.ops, a.test, len(failed), (": " + " ".join(map(str, failed))) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
