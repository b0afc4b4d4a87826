#!/usr/bin/env python3
"""Namespace differential test, in the spirit of pjdfstest: one seeded random
sequence of namespace and metadata calls run in lockstep in a reference
directory (tmpfs) and in a tierfs mount. Every call's outcome (success or the
errno, and what it returns: readlink's target, a listing, an xattr) must
match, and every --check-every calls the two trees must hold the same names
with the same type, mode (setuid, setgid and sticky bits included), owner,
group, link count, size (not of directories: their st_size is the file
system's own), symlink target, bytes and user.* xattrs.

  ns_diff.py REF_DIR TEST_DIR [--seed N] [--seeds K] [--ops N]
  ns_diff.py --snapshot DIR OUT.json       the tree with times and inodes
  ns_diff.py --compare BEFORE.json AFTER.json

--snapshot/--compare check a restart: everything above plus st_ino, st_mtime
and st_ctime (to the nanosecond) must be what they were before the kill -9
(ns_diff.sh). Not st_atime: a read's atime is not logged (as with lazytime,
a crash may take the last ones back; docs/operations.md).

The calls: create (O_EXCL), open with O_TRUNC, write, truncate, mkdir,
rmdir, unlink, rename (plain, RENAME_NOREPLACE, RENAME_EXCHANGE; files,
directories, into their own subtree, over non-empty directories), link,
symlink, readlink, mkfifo, chmod (with the setuid/setgid/sticky bits),
lchown to other users and groups, utimensat (explicit, UTIME_NOW,
UTIME_OMIT), setxattr (XATTR_CREATE / XATTR_REPLACE) and removexattr, listdir.
Timestamps are not compared between the two: the calls run at different
instants (tests/integration/test_posix_rules.cc and fsx_diff.py cover which
calls move them).
"""
import argparse
import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import random
import shutil
import stat
import sys

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
UTIME_OMIT = (1 << 30) - 2


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(Timespec), ctypes.c_int]

DIRS = ["d0", "d1", "d0/e0", "d1/e1"]
LEAVES = ["n0", "n1", "n2"]
PATHS = DIRS + LEAVES + [f"{d}/{n}" for d in DIRS for n in LEAVES]
MODES = [0o644, 0o600, 0o755, 0o700, 0o640, 0o4755, 0o2755, 0o1777, 0o2770, 0o6711, 0o000]
IDS = [0, 1, 65534, 4242]
# Who makes a call: root most of the time, else a user in two groups (one of
# them a group files are given to) or one in none of them.
ROOT = (0, 0, [])
USERS = [(4242, 4242, [4242, 1]), (65534, 65534, [65534])]


def renameat2(a, b, flags):
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def set_mtime_only(path, mtime_ns):
    """utimensat with atime UTIME_OMIT: only st_mtime (and st_ctime) move."""
    times = (Timespec * 2)(Timespec(0, UTIME_OMIT), Timespec(*divmod(mtime_ns, 10**9)))
    if libc.utimensat(AT_FDCWD, path.encode(), times, AT_SYMLINK_NOFOLLOW) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def outcome(fn, who=ROOT):
    """(True, value) or (False, errno name) of one call made as who (uid, gid, groups)."""
    uid, gid, groups = who
    if uid != 0:
        os.setgroups(groups)
        os.setegid(gid)
        os.seteuid(uid)
    try:
        return (True, fn())
    except OSError as e:
        return (False, errno.errorcode.get(e.errno, str(e.errno)))
    finally:
        if uid != 0:
            os.seteuid(0)
            os.setegid(0)
            os.setgroups([])


def write_at(path, offset, data, flags=0):
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | flags)
    try:
        return os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def create(path, mode, flags):
    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CREAT | flags, mode))


def snapshot(root, with_times=False):
    """Every name under root: what must match (and, for a restart, times and inodes)."""
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            entry = {"type": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode),
                     "uid": st.st_uid, "gid": st.st_gid, "nlink": st.st_nlink}
            if not stat.S_ISDIR(st.st_mode):
                entry["size"] = st.st_size
            if stat.S_ISLNK(st.st_mode):
                entry["target"] = os.readlink(full)
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    entry["sha"] = hashlib.sha256(f.read()).hexdigest()
            if not stat.S_ISLNK(st.st_mode):
                entry["xattrs"] = {k: os.getxattr(full, k, follow_symlinks=False).hex()
                                   for k in sorted(os.listxattr(full, follow_symlinks=False))
                                   if k.startswith("user.")}
            if with_times:
                entry["ino"] = st.st_ino
                entry["mtime"] = st.st_mtime_ns
                entry["ctime"] = st.st_ctime_ns
            tree[rel] = entry
    return tree


def tree_differences(a, b, a_name, b_name):
    out = []
    for rel in sorted(set(a) | set(b)):
        if rel not in a or rel not in b:
            out.append(f"{rel}: only in {a_name if rel in a else b_name}")
            continue
        for key in sorted(set(a[rel]) | set(b[rel])):
            if a[rel].get(key) != b[rel].get(key):
                out.append(f"{rel}: {key} {a[rel].get(key)!r} in {a_name}, "
                           f"{b[rel].get(key)!r} in {b_name}")
    return out


class Runner:
    def __init__(self, ref, test, rng, users=True):
        self.roots = (ref, test)
        self.users = users
        self.rng = rng
        self.log = []
        self.history = 15

    def pick(self, kinds=PATHS):
        """Mostly a name of the kind the call makes, sometimes any (for the errors)."""
        return self.rng.choice(kinds if self.rng.random() < 0.85 else PATHS)

    def op(self):
        """One random call as (description, fn(root) -> value)."""
        r = self.rng
        kind = r.choice(["create", "create", "trunc_open", "write", "write", "truncate",
                         "mkdir", "mkdir", "rmdir", "unlink", "rename", "rename", "rename_flags",
                         "link", "symlink", "readlink", "mkfifo", "chmod", "chown", "utime",
                         "setxattr", "setxattr", "removexattr", "listdir"])
        files = [path for path in PATHS if path not in DIRS]
        p = self.pick(DIRS if kind in ("mkdir", "rmdir", "listdir") else files)
        q = self.pick(DIRS if kind in ("rename", "rename_flags") and p in DIRS else files)
        if kind == "create":
            mode = r.choice(MODES)
            return f"create {p} {mode:o}", lambda root: create(f"{root}/{p}", mode, os.O_EXCL)
        if kind == "trunc_open":
            # O_RDONLY|O_TRUNC truncates on Linux too (given write permission).
            flags = r.choice([os.O_CREAT, 0]) | r.choice([os.O_WRONLY, os.O_RDONLY])
            return (f"open O_TRUNC|{flags:o} {p}",
                    lambda root: os.close(os.open(f"{root}/{p}",
                                                  flags | os.O_TRUNC | os.O_NONBLOCK, 0o640)))
        if kind == "write":
            offset, data = r.randrange(0, 20000), r.randbytes(r.randrange(1, 5000))
            append = r.random() < 0.2
            return (f"write {p} @{offset} {len(data)}{' append' if append else ''}",
                    lambda root: write_at(f"{root}/{p}", offset, data,
                                          os.O_APPEND if append else 0))
        if kind == "truncate":
            size = r.choice([0, 1, 4095, 4096, 70000, r.randrange(0, 30000)])
            return f"truncate {p} {size}", lambda root: os.truncate(f"{root}/{p}", size)
        if kind == "mkdir":
            mode = r.choice([0o755, 0o700, 0o2775, 0o1777])
            return f"mkdir {p} {mode:o}", lambda root: os.mkdir(f"{root}/{p}", mode)
        if kind == "rmdir":
            return f"rmdir {p}", lambda root: os.rmdir(f"{root}/{p}")
        if kind == "unlink":
            return f"unlink {p}", lambda root: os.unlink(f"{root}/{p}")
        if kind == "rename":
            return f"rename {p} {q}", lambda root: os.rename(f"{root}/{p}", f"{root}/{q}")
        if kind == "rename_flags":
            flags = r.choice([RENAME_NOREPLACE, RENAME_EXCHANGE])
            return (f"renameat2 {p} {q} {flags}",
                    lambda root: renameat2(f"{root}/{p}", f"{root}/{q}", flags))
        if kind == "link":
            return f"link {p} {q}", lambda root: os.link(f"{root}/{p}", f"{root}/{q}",
                                                         follow_symlinks=False)
        if kind == "symlink":
            # Relative targets stay inside the tree wherever the link is.
            target = r.choice(["n0", "d0/n2", "/nonexistent-ns-diff", "x" * r.randrange(1, 300)])
            return f"symlink {target[:20]} {p}", lambda root: os.symlink(target, f"{root}/{p}")
        if kind == "readlink":
            return f"readlink {p}", lambda root: os.readlink(f"{root}/{p}")
        if kind == "mkfifo":
            return f"mkfifo {p}", lambda root: os.mkfifo(f"{root}/{p}", 0o620)
        if kind == "chmod":
            mode = r.choice(MODES)
            # Through a symlink (chmod follows it) as often as not.
            return f"chmod {p} {mode:o}", lambda root: os.chmod(f"{root}/{p}", mode)
        if kind == "chown":
            uid, gid = r.choice(IDS + [-1]), r.choice(IDS + [-1])
            return (f"lchown {p} {uid} {gid}",
                    lambda root: os.chown(f"{root}/{p}", uid, gid, follow_symlinks=False))
        if kind == "utime":
            choice = r.randrange(3)
            if choice == 0:
                times = (r.randrange(0, 2**33) * 10**9 + r.randrange(10**9),
                         r.randrange(0, 2**33) * 10**9 + r.randrange(10**9))
                return (f"utimensat {p} {times}",
                        lambda root: os.utime(f"{root}/{p}", ns=times, follow_symlinks=False))
            if choice == 1:
                return f"utimensat {p} NOW", lambda root: os.utime(f"{root}/{p}",
                                                                  follow_symlinks=False)
            mtime = r.randrange(0, 2**33) * 10**9 + r.randrange(10**9)
            return (f"utimensat {p} OMIT {mtime}",
                    lambda root: set_mtime_only(f"{root}/{p}", mtime))
        if kind == "setxattr":
            name = f"user.k{r.randrange(3)}"
            value = r.randbytes(r.randrange(0, 200))
            flags = r.choice([0, os.XATTR_CREATE, os.XATTR_REPLACE])
            return (f"setxattr {p} {name} {len(value)} {flags}",
                    lambda root: os.setxattr(f"{root}/{p}", name, value, flags,
                                             follow_symlinks=False))
        if kind == "removexattr":
            name = f"user.k{r.randrange(3)}"
            return (f"removexattr {p} {name}",
                    lambda root: os.removexattr(f"{root}/{p}", name, follow_symlinks=False))
        return f"listdir {p}", lambda root: sorted(os.listdir(f"{root}/{p}"))

    def run(self, ops, check_every):
        # Directories other users can write: a sticky one, an open one and
        # one of their own, beside root's.
        for d in DIRS:
            for root in self.roots:
                os.mkdir(f"{root}/{d}")
        for root in self.roots:
            os.chmod(f"{root}/d1", 0o1777)
            os.chmod(f"{root}/d0/e0", 0o777)
            os.chown(f"{root}/d1/e1", *USERS[0][:2])
        for i in range(ops):
            what, fn = self.op()
            who = ROOT if not self.users or self.rng.random() < 0.6 else self.rng.choice(USERS)
            if who != ROOT:
                what += f" (as uid {who[0]})"
            self.log.append(what)
            results = [outcome(lambda root=root: fn(root), who) for root in self.roots]
            if results[0] != results[1]:
                return self.fail(i, f"{what}: tmpfs {results[0]!r}, tierfs {results[1]!r}")
            if (i + 1) % check_every == 0 or i + 1 == ops:
                diffs = tree_differences(snapshot(self.roots[0]), snapshot(self.roots[1]),
                                         "tmpfs", "tierfs")
                if diffs:
                    return self.fail(i, "trees differ:\n  " + "\n  ".join(diffs[:20]))
        return True

    def fail(self, index, message):
        print(f"FAIL at op {index}: {message}", file=sys.stderr)
        print("the operations before it:\n  " + "\n  ".join(self.log[-self.history:]), file=sys.stderr)
        return False


def clear(root):
    for entry in os.listdir(root):
        path = os.path.join(root, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            for dirpath, dirnames, _ in os.walk(path):
                for d in dirnames:
                    os.chmod(os.path.join(dirpath, d), 0o700)
            os.chmod(path, 0o700)
            shutil.rmtree(path)
        else:
            os.unlink(path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dirs", nargs="*")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--ops", type=int, default=400)
    parser.add_argument("--check-every", type=int, default=25)
    parser.add_argument("--root-only", action="store_true",
                        help="every call as root (a mount without allow_other)")
    parser.add_argument("--keep", action="store_true", help="leave the last seed's tree")
    parser.add_argument("--snapshot", nargs=2, metavar=("DIR", "OUT"))
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.snapshot:
        with open(args.snapshot[1], "w") as out:
            json.dump(snapshot(args.snapshot[0], with_times=True), out)
        return 0
    if args.compare:
        trees = [json.load(open(path)) for path in args.compare]
        diffs = tree_differences(trees[0], trees[1], "before", "after")
        for line in diffs[:30]:
            print(f"FAIL: {line}", file=sys.stderr)
        return 1 if diffs else 0
    ref, test = args.dirs
    os.umask(0o022)
    for seed in range(args.seed, args.seed + args.seeds):
        for root in (ref, test):
            clear(root)
        for root in (ref, test):
            os.chmod(root, 0o755)
        runner = Runner(ref, test, random.Random(seed), users=not args.root_only)
        if not runner.run(args.ops, args.check_every):
            print(f"seed {seed} diverged; replay: --seed {seed} --seeds 1 --ops {args.ops}",
                  file=sys.stderr)
            return 1
        print(f"seed {seed}: {args.ops} calls, the same outcomes and trees")
    if not args.keep:
        for root in (ref, test):
            clear(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
