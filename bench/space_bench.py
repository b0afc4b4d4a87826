#!/usr/bin/env python3
"""Space benchmark (issue 17): what small files cost and how fast they are
made, tierfs against tmpfs of the same size in the same run, and
fragmentation after churn.

  files: N files of 1 KiB and of 64 KiB in 100 directories; files created per
         second and bytes of space used (statfs), tierfs and tmpfs; for the
         1 KiB files also the seconds `ls -lR`, `find` and `rm -rf` take over
         the tree. --baseline-bin adds a run of another tierfs build (the one
         before a change) beside them.
  churn: a 2-way tier held 70-95 % full by random creates, appends, truncates
         and deletes of 4 KiB - 64 MiB files; then a new large file: the share
         of its bytes in row-aligned runs (user.tierfs.map) and its read
         bandwidth, against the same file written on the empty mount.

A benchmark, not a test: it prints figures and writes JSON (--out); --smoke
uses tiny sizes so the suite proves it runs. Needs root and /dev/fuse.
"""
import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

from tierfs_mount import TierfsMount

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


class Mount:
    """A tierfs mount of a TOML text (the mount kit, bench/tierfs_mount.py), or
    tmpfs of a size."""

    def __init__(self, work, kind, toml=None, size=0, binary=None):
        self.kind, self.dir = kind, os.path.join(work, kind + "-mnt")
        os.makedirs(self.dir, exist_ok=True)
        if kind == "tmpfs":
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", self.dir], check=True)
            return
        conf = os.path.join(work, "tierfs.toml")
        with open(conf, "w") as f:
            f.write(toml)
        self.tierfs = TierfsMount(binary or os.environ["TIERFS_BIN"], conf, self.dir, os.path.join(work, "server.log"))
        self.tierfs.start()

    def close(self):
        if self.kind == "tmpfs":
            subprocess.run(["umount", self.dir], check=True)
        elif self.tierfs.stop() != 0 and self.kind == "tierfs":
            # The baseline build is only timed; its exit status is its own business.
            sys.exit(f"tierfs exited with an error: {self.tierfs.log_line()}")

    def used_bytes(self):
        st = os.statvfs(self.dir)
        return (st.f_blocks - st.f_bfree) * st.f_frsize


def tier_toml(name, size, granularity, regions):
    quoted = ", ".join(f'"{r}"' for r in regions)
    return (f'[[tier]]\nname = "{name}"\nregions = [{quoted}]\nsize = "{size}"\n'
            f'granularity = "{granularity}"\ncreate = true\n')


def make_files(root, count, size):
    """Creates count files of size bytes; returns files per second."""
    payload = os.urandom(size)  # empty for size 0: the file is created and closed
    for d in range(100):
        os.mkdir(f"{root}/d{d}")
    start = time.perf_counter()
    for i in range(count):
        fd = os.open(f"{root}/d{i % 100}/f{i}", os.O_CREAT | os.O_WRONLY, 0o644)
        if payload:
            os.write(fd, payload)
        os.close(fd)
    return count / (time.perf_counter() - start)


def timed(argv):
    """Seconds argv takes, its output thrown away."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def tree_figures(root):
    """Seconds a listing with attributes, a walk and a removal of the tree take."""
    return {"ls_lR_seconds": round(timed(["ls", "-lR", root]), 3),
            "find_seconds": round(timed(["find", root, "-type", "f"]), 3),
            "rm_rf_seconds": round(timed(["rm", "-rf", root]), 3)}


def files_figures(work, count, baseline_bin=None):
    out = []
    kinds = ("tierfs", "tierfs-baseline", "tmpfs") if baseline_bin else ("tierfs", "tmpfs")
    # Empty files first: the only size a build before the block allocator
    # (a 2 MiB row per file) holds 100 000 of, so the tree figures compare there.
    for size in (0, 1 * KIB, 64 * KIB):
        # Room for the files in 4 KiB blocks and a margin; the same size for both.
        capacity = max(64 * MIB, math.ceil(count * max(size, 4 * KIB) * 1.1 / (2 * MIB)) * 2 * MIB)
        for kind in kinds:
            if kind == "tierfs-baseline" and size != 0:
                continue
            if kind.startswith("tierfs"):
                m = Mount(work, kind, tier_toml("dram", f"{capacity >> 20}MiB", "2MiB", ["numa:0"]),
                          binary=baseline_bin if kind == "tierfs-baseline" else None)
            else:
                m = Mount(work, kind, size=capacity)
            before = m.used_bytes()
            rate = make_files(m.dir, count, size)
            used = m.used_bytes() - before
            row = {"fs": kind, "file_bytes": size, "files": count, "capacity_bytes": capacity,
                   "files_per_second": round(rate), "used_bytes": used,
                   "used_bytes_per_file": round(used / count)}
            print(f"files: {kind:15} {count} x {size:5} B: {rate:8.0f} files/s, "
                  f"{used / MIB:8.1f} MiB used ({used / count:.0f} B per file)", flush=True)
            if size <= KIB:
                tree = os.path.join(m.dir, "tree")
                os.mkdir(tree)
                for d in os.listdir(m.dir):
                    if d.startswith("d"):
                        os.rename(os.path.join(m.dir, d), os.path.join(tree, d))
                row.update(tree_figures(tree))
                print(f"tree:  {kind:15} ls -lR {row['ls_lR_seconds']:.2f} s, find {row['find_seconds']:.2f} s, "
                      f"rm -rf {row['rm_rf_seconds']:.2f} s", flush=True)
            out.append(row)
            m.close()
    return out


def aligned_share(path, row_bytes):
    """Bytes of the file in extents whose tier address is at the file offset's row phase."""
    name, aligned, total = "user.tierfs.map", 0, 0
    while True:
        page = json.loads(os.getxattr(path, name))
        for e in page["extents"]:
            total += e["length"]
            if (e["tier_address"] - e["file_offset"]) % row_bytes == 0:
                aligned += e["length"]
        if "next_extent" not in page or page["next_extent"] is None:
            break
        name = f"user.tierfs.map@{page['next_extent']}"
    return aligned / total if total else 0.0, total


def read_bandwidth(path, runs=3):
    best = 0.0
    for _ in range(runs):
        start = time.perf_counter()
        with open(path, "rb", buffering=0) as f:
            while f.read(MIB):
                pass
        best = max(best, os.path.getsize(path) / (time.perf_counter() - start))
    return best


def write_large(path, size):
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        for _ in range(size // MIB):
            f.write(block)


def churn_figures(work, tier_size, large_size, operations, seed):
    regions = [f"file:/dev/shm/tierfs-space-bench-{os.getpid()}-{i}" for i in range(2)]
    m = Mount(work, "tierfs", tier_toml("dram", f"{tier_size >> 20}MiB", "2MiB", regions))
    row_bytes = 4 * MIB
    try:
        fresh = os.path.join(m.dir, "fresh-large")
        write_large(fresh, large_size)
        fresh_share, _ = aligned_share(fresh, row_bytes)
        fresh_bw = read_bandwidth(fresh)
        rng = random.Random(seed)
        files, serial = {}, 0
        fill = lambda: m.used_bytes() / tier_size

        def new_size():
            return int(4 * KIB * 2 ** rng.uniform(0, math.log2(64 * MIB / (4 * KIB))))

        def write_some(path, size, append):
            chunk = os.urandom(min(size, MIB))
            with open(path, "ab" if append else "wb") as f:
                left = size
                while left > 0:
                    try:
                        f.write(chunk[:min(left, len(chunk))])
                    except OSError:
                        return
                    left -= min(left, len(chunk))

        for _ in range(operations):
            level = fill()
            op = rng.random()
            if level > 0.95 or (level > 0.70 and op < 0.3 and files):
                victim = rng.choice(list(files))
                os.unlink(victim)
                del files[victim]
            elif level < 0.70 or op < 0.6:
                serial += 1
                path = os.path.join(m.dir, f"churn-{serial}")
                write_some(path, min(new_size(), int(tier_size * 0.96) - m.used_bytes()), False)
                files[path] = True
            elif op < 0.8 and files:
                write_some(rng.choice(list(files)), new_size() // 4, True)
            elif files:
                victim = rng.choice(list(files))
                os.truncate(victim, rng.randrange(os.path.getsize(victim) + 1))
        churn_fill = fill()
        # Make room for the new large file, as a job would by deleting old outputs.
        while files and tier_size - m.used_bytes() < large_size + 16 * MIB:
            victim = rng.choice(list(files))
            os.unlink(victim)
            del files[victim]
        after = os.path.join(m.dir, "after-churn-large")
        write_large(after, large_size)
        after_share, _ = aligned_share(after, row_bytes)
        after_bw = read_bandwidth(after)
        result = {"tier_bytes": tier_size, "row_bytes": row_bytes, "large_file_bytes": large_size,
                  "operations": operations, "files_left": len(files),
                  "fill_after_churn": round(churn_fill, 3),
                  "fill_before_large_file": round(m.used_bytes() / tier_size - large_size / tier_size, 3),
                  "empty_mount": {"row_aligned_share": round(fresh_share, 4),
                                  "read_bytes_per_second": round(fresh_bw)},
                  "after_churn": {"row_aligned_share": round(after_share, 4),
                                  "read_bytes_per_second": round(after_bw)}}
        print(f"churn: {operations} operations, fill {churn_fill:.0%} after churn; large file "
              f"{large_size >> 20} MiB: row-aligned {fresh_share:.1%} empty / {after_share:.1%} after churn, "
              f"read {fresh_bw / GIB:.2f} / {after_bw / GIB:.2f} GiB/s", flush=True)
        return result
    finally:
        m.close()
        for r in regions:
            try:
                os.unlink(r.split(":", 1)[1])
            except FileNotFoundError:
                pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: proves it runs")
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--churn-operations", type=int, default=3000)
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--no-churn", action="store_true", help="the files figures only")
    ap.add_argument("--baseline-bin", help="another tierfs binary to run beside TIERFS_BIN (files figures only)")
    args = ap.parse_args()
    if os.geteuid() != 0 or not os.access("/dev/fuse", os.W_OK):
        if os.environ.get("TIERFS_REQUIRE_PRIVILEGED") == "1":
            sys.exit("FAIL: needs root and /dev/fuse and TIERFS_REQUIRE_PRIVILEGED=1 forbids skipping")
        print("SKIP: needs root and /dev/fuse")
        sys.exit(77)
    files = 500 if args.smoke else args.files
    tier, large, ops = (64 * MIB, 16 * MIB, 60) if args.smoke else (2 * GIB, 256 * MIB, args.churn_operations)
    work = tempfile.mkdtemp(prefix="tierfs-space-bench-")
    try:
        result = {"machine": {"nproc": os.cpu_count(), "loadavg_start": os.getloadavg(),
                              "kernel": os.uname().release},
                  "files": files_figures(work, files, args.baseline_bin),
                  "churn": None if args.no_churn else churn_figures(work, tier, large, ops, 17)}
        result["machine"]["loadavg_end"] = os.getloadavg()
        print(f"load average: start {result['machine']['loadavg_start']}, end {result['machine']['loadavg_end']}")
        if args.out:
            with open(args.out, "w") as f:
                json.dump(result, f, indent=1)
        # The smoke run checks the figures are there and sane, not their speed.
        tierfs_1k = next(r for r in result["files"] if r["fs"] == "tierfs" and r["file_bytes"] == KIB)
        if any("rm_rf_seconds" not in r for r in result["files"] if r["file_bytes"] <= KIB):
            sys.exit("FAIL: a 1 KiB run has no ls/find/rm figures")
        if tierfs_1k["used_bytes"] > files * 4 * KIB * 1.01 + 64 * KIB:
            sys.exit(f"FAIL: {files} files of 1 KiB used {tierfs_1k['used_bytes']} bytes")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
