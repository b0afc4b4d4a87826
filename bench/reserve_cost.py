#!/usr/bin/env python3
"""What reserving backing space (fallocate as blocks are handed out) costs.

Mounts two tierfs binaries, BEFORE (without the reservation) and AFTER, on the
same configuration (one numa:0 tier, 2 MiB granularity, cache = "none") and
runs on each, interleaved round by round so that background load hits both
alike:
  creates: COUNT files of 4 KiB each (open O_CREAT, one 4 KiB write, close):
           every file takes a fresh block, so every create reserves;
  4 KiB random writes to a fresh 256 MiB file (fio, psync, direct,
           overwrite=0, fallocate=none): first-touch allocation, one fresh
           block per write into the holes.
Prints each figure's median over --rounds and AFTER / BEFORE.
Run as root:  bench/reserve_cost.py --before OLD/tierfs --after build/tierfs/cli/tierfs
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

CONFIG = '[[tier]]\nname = "dram"\nregions = ["numa:0"]\nsize = "1GiB"\n'


def mount(binary, config, mnt):
    subprocess.run([binary, "mount", "--config", config, mnt], check=True)


def unmount(mnt):
    # The next mount of this mount point waits for the server to be gone: it
    # holds the mount's state lock until it has released its regions.
    pids = subprocess.run(["pgrep", "-f", f"mount --config .* {mnt}$"], capture_output=True,
                          text=True).stdout.split()
    subprocess.run(["fusermount3", "-u", mnt], check=True)
    for _ in range(400):
        if not any(os.path.exists(f"/proc/{pid}") for pid in pids):
            return
        time.sleep(0.05)


def creates_per_s(mnt, count):
    block = b"x" * 4096
    start = time.perf_counter()
    for i in range(count):
        fd = os.open(f"{mnt}/f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, block)
        os.close(fd)
    return count / (time.perf_counter() - start)


def write_iops(mnt, seconds):
    out = subprocess.run(
        ["fio", "--name=w", f"--directory={mnt}", "--rw=randwrite", "--bs=4k", "--size=256m",
         "--ioengine=psync", "--direct=1", "--overwrite=0", "--fallocate=none",
         "--time_based",
         f"--runtime={seconds}", "--output-format=json"],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out)["jobs"][0]["write"]["iops"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True)
    p.add_argument("--after", required=True)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--seconds", type=int, default=5)
    args = p.parse_args()
    results = {"before": {"creates": [], "iops": []}, "after": {"creates": [], "iops": []}}
    with tempfile.TemporaryDirectory(prefix="tierfs-reserve-") as work:
        config = f"{work}/c.toml"
        with open(config, "w") as f:
            f.write(CONFIG)
        mnt = f"{work}/mnt"
        os.mkdir(mnt)
        for _ in range(args.rounds):
            for name in ("before", "after"):
                mount(getattr(args, name), config, mnt)
                try:
                    results[name]["creates"].append(creates_per_s(mnt, args.count))
                    results[name]["iops"].append(write_iops(mnt, args.seconds))
                finally:
                    unmount(mnt)
    for metric, unit in (("creates", "4 KiB files created/s"), ("iops", "4 KiB first-touch write IOPS")):
        b = statistics.median(results["before"][metric])
        a = statistics.median(results["after"][metric])
        print(f"{unit}: before {b:.0f}, after {a:.0f}, after/before {a / b:.3f} "
              f"(medians of {args.rounds}; before {sorted(round(x) for x in results['before'][metric])}, "
              f"after {sorted(round(x) for x in results['after'][metric])})")


if __name__ == "__main__":
    main()
