#!/usr/bin/env python3
"""Cost and recovery of the metadata log (issue 11), for docs/benchmarks.md.

Same run, two binaries: --base (a build of main before the log) and --new
(this tree). Rounds alternate base/new so that the machine's load hits both;
the report is the median of each and their ratio.

  creates/s     files created and closed (os.open O_CREAT|O_EXCL, close) in one directory
  4k appends/s  4 KiB writes appending to a file (each moves the size: one log write each)
  4k randwrite  fio, 4 KiB random overwrites of a 64 MiB file, direct, psync, IOPS
Then, --new only: replay time for --files files (kill -9, remount; the server
logs its replay time) and kill -9 -> remounted -> every file readable.

Usage: journal_bench.py --base BIN --new BIN [--rounds 3] [--files 100000]
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tierfs_mount import TierfsMount  # noqa: E402

NUMA = '[mount]\ncache = "none"\n\n[[tier]]\nname = "dram"\nregions = ["numa:0"]\nsize = "1GiB"\n' \
       'granularity = "64KiB"\n'


def file_config(tmp):
    return (f'[mount]\ncache = "none"\nstate_dir = "{tmp}/state-r"\n\n[[tier]]\nname = "spill"\n'
            f'regions = ["file:{tmp}/regions/r0", "file:{tmp}/regions/r1"]\n'
            'size = "1GiB"\ngranularity = "64KiB"\ncreate = true\n')


def creates(mnt, n):
    d = f"{mnt}/c{time.monotonic_ns()}"
    os.mkdir(d)
    t = time.perf_counter()
    for i in range(n):
        os.close(os.open(f"{d}/f{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    return n / (time.perf_counter() - t)


def appends(mnt, n):
    buf = b"x" * 4096
    fd = os.open(f"{mnt}/append{time.monotonic_ns()}", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    t = time.perf_counter()
    for _ in range(n):
        os.write(fd, buf)
    rate = n / (time.perf_counter() - t)
    os.close(fd)
    return rate


def randwrite(mnt, seconds):
    r = subprocess.run(["fio", "--name=rw", f"--directory={mnt}", "--rw=randwrite", "--bs=4k",
                        "--size=64m", "--direct=1", "--ioengine=psync", f"--runtime={seconds}",
                        "--time_based", "--output-format=json"], capture_output=True, text=True,
                       check=True)
    return json.loads(r.stdout)["jobs"][0]["write"]["iops"]


def mounted(tierfs, config, mnt, log, state):
    # The server's own log (replay time) goes to log + ".server".
    m = TierfsMount(tierfs, config, mnt, log, options=[f"log_file={log}.server"])
    m.start()
    return m


def cost(args, tmp):
    config = f"{tmp}/numa.toml"
    with open(config, "w") as f:
        f.write(NUMA)
    mnt = f"{tmp}/mnt"
    os.makedirs(mnt, exist_ok=True)
    results = {"base": {"creates": [], "appends": [], "randwrite": []},
               "new": {"creates": [], "appends": [], "randwrite": []}}
    for rnd in range(args.rounds):
        for which in ("base", "new"):
            m = mounted(getattr(args, which), config, mnt, f"{tmp}/{which}.log",
                        f"{tmp}/state-cost")
            try:
                results[which]["creates"].append(creates(mnt, args.creates))
                results[which]["appends"].append(appends(mnt, args.appends))
                results[which]["randwrite"].append(randwrite(mnt, args.seconds))
            finally:
                m.stop()
            print(f"round {rnd} {which}: " + ", ".join(
                f"{k} {v[-1]:.0f}/s" for k, v in results[which].items()), flush=True)
    for metric in ("creates", "appends", "randwrite"):
        b = statistics.median(results["base"][metric])
        n = statistics.median(results["new"][metric])
        print(f"{metric:10s} base {b:9.0f}/s  with log {n:9.0f}/s  ratio {n / b:.2f}")


def recovery(args, tmp):
    config = f"{tmp}/file.toml"
    os.makedirs(f"{tmp}/regions", exist_ok=True)
    with open(config, "w") as f:
        f.write(file_config(tmp))
    mnt, state, log = f"{tmp}/mnt-r", f"{tmp}/state-r", f"{tmp}/recovery.log"
    os.makedirs(mnt, exist_ok=True)
    m = mounted(args.new, config, mnt, log, state)
    per_dir = 1000
    t = time.perf_counter()
    for i in range(args.files):
        if i % per_dir == 0:
            os.mkdir(f"{mnt}/d{i // per_dir}")
        fd = os.open(f"{mnt}/d{i // per_dir}/f{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.write(fd, b"%d\n" % i)
        os.close(fd)
    print(f"{args.files} files of a few bytes written in {time.perf_counter() - t:.1f} s, "
          f"journal {os.path.getsize(state + '/journal')} bytes, "
          f"checkpoint {os.path.getsize(state + '/checkpoint')} bytes", flush=True)
    for attempt in range(args.rounds):
        pid = m.pid
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        m.stop()
        m = mounted(args.new, config, mnt, log, state)
        t_mounted = time.perf_counter() - t0
        bad = 0
        for i in range(args.files):
            with open(f"{mnt}/d{i // per_dir}/f{i}", "rb") as f:
                bad += f.read() != b"%d\n" % i
        t_read = time.perf_counter() - t0
        with open(log + ".server") as f:
            replay = [line for line in f if "metadata log" in line][-1]
        seconds = float(re.search(r"in ([0-9.]+) s", replay).group(1))
        print(f"kill -9 -> remounted {t_mounted:.2f} s (replay {seconds:.2f} s of it) -> all "
              f"{args.files} files read back {t_read:.2f} s, {bad} wrong", flush=True)
    m.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--new", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--creates", type=int, default=3000)
    ap.add_argument("--appends", type=int, default=3000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--skip-cost", action="store_true")
    ap.add_argument("--skip-recovery", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tierfs-journal-bench-")
    try:
        if not args.skip_cost:
            cost(args, tmp)
        if not args.skip_recovery:
            recovery(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
