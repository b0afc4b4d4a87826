"""The crash test's model (crash_test.py): what the mount must hold after a
remount, what it holds (observe), and the comparisons, exact or with the one
write or truncate in flight old or new byte by byte."""

import os

FILES = ["f0", "f1", "f2", "f3", "d0/g0", "d0/g1", "d0/g2", "d1/h0", "d1/h1"]
DIRS = ["d0", "d1"]
XATTRS = ["user.a", "user.b", "user.c"]


class Model:
    """What the mount must hold: names -> inode ids, inode id -> bytes and xattrs."""

    def __init__(self):
        self.names = {}   # path -> inode id
        self.data = {}    # inode id -> bytearray
        self.xattrs = {}  # inode id -> {name: bytes}
        self.next_id = 1

    def copy(self):
        m = Model()
        m.names = dict(self.names)
        m.data = {k: bytearray(v) for k, v in self.data.items()}
        m.xattrs = {k: dict(v) for k, v in self.xattrs.items()}
        m.next_id = self.next_id
        return m

    def new_inode(self, path):
        ino = self.next_id
        self.next_id += 1
        self.names[path] = ino
        self.data[ino] = bytearray()
        self.xattrs[ino] = {}

    def unlink(self, path):
        ino = self.names.pop(path)
        if ino not in self.names.values():
            del self.data[ino], self.xattrs[ino]


def observe(mnt):
    """The mount as the model sees it: names -> st_ino, st_ino -> (bytes, xattrs)."""
    names, data, xattrs = {}, {}, {}
    for d in [""] + DIRS:
        base = f"{mnt}/{d}" if d else mnt
        for entry in os.listdir(base):
            rel = f"{d}/{entry}" if d else entry
            if rel in DIRS:
                continue
            st = os.lstat(f"{mnt}/{rel}")
            names[rel] = st.st_ino
            if st.st_ino not in data:
                with open(f"{mnt}/{rel}", "rb") as f:
                    data[st.st_ino] = f.read()
                if len(data[st.st_ino]) != st.st_size:
                    raise AssertionError(f"{rel}: read {len(data[st.st_ino])} bytes of {st.st_size}")
                xattrs[st.st_ino] = {n: os.getxattr(f"{mnt}/{rel}", n)
                                     for n in os.listxattr(f"{mnt}/{rel}") if n.startswith("user.")}
    return names, data, xattrs


def same_namespace(model, names):
    """True when the paths and the grouping of paths into inodes agree."""
    if set(model.names) != set(names):
        return False
    to_real = {}
    for path, mid in model.names.items():
        if to_real.setdefault(mid, names[path]) != names[path]:
            return False
    return len(set(to_real.values())) == len(to_real)


def differs(want, got):
    """Where two byte strings first and last differ, for messages."""
    n = min(len(want), len(got))
    diff = [i for i in range(n) if want[i] != got[i]]
    if not diff:
        return ""
    zeros = sum(1 for i in diff if got[i] == 0)
    return f"; bytes {diff[0]}..{diff[-1]} differ ({len(diff)} bytes, {zeros} of them read 0)"


def matches(model, seen):
    names, data, xattrs = seen
    if not same_namespace(model, names):
        return "names differ"
    for path, mid in model.names.items():
        real = names[path]
        if bytes(model.data[mid]) != data[real]:
            return f"{path}: {len(data[real])} bytes, model has {len(model.data[mid])}" + \
                   differs(model.data[mid], data[real])
        if model.xattrs[mid] != xattrs[real]:
            return f"{path}: xattrs {sorted(xattrs[real])}, model {sorted(model.xattrs[mid])}"
    return None


def matches_either_bytes(before, after, seen, ino_before):
    """An uncertain write or truncate: names and other files exact; the file's size
    old or new and each byte the old or the new one (zero past either end)."""
    names, data, xattrs = seen
    if not same_namespace(before, names):
        return "names differ"
    for path, mid in before.names.items():
        real = names[path]
        if mid != ino_before:
            if bytes(before.data[mid]) != data[real] or before.xattrs[mid] != xattrs[real]:
                return f"{path}: not touched by the write in flight, yet changed: " \
                       f"{len(data[real])} bytes, model {len(before.data[mid])}" + \
                       differs(before.data[mid], data[real])
            continue
        old, new, got = before.data[mid], after.data[mid], data[real]
        if len(got) not in (len(old), len(new)):
            return f"{path}: size {len(got)}, neither old {len(old)} nor new {len(new)}"
        for i, b in enumerate(got):
            o = old[i] if i < len(old) else 0
            n = new[i] if i < len(new) else 0
            if b != o and b != n:
                return f"{path}: byte {i} is {b}, neither old {o} nor new {n}"
    return None


def rebuild_from(seen):
    names, data, xattrs = seen
    m = Model()
    ids = {}
    for path, real in sorted(names.items()):
        if real not in ids:
            ids[real] = m.next_id
            m.next_id += 1
            m.data[ids[real]] = bytearray(data[real])
            m.xattrs[ids[real]] = dict(xattrs[real])
        m.names[path] = ids[real]
    return m
