#!/usr/bin/env python3
"""Which interleave layout is fastest on this machine, for which workload.

Mounts tierfs once per layout (granularity x ways x weights) over the
regions of a configuration, runs fio on it for every workload (sequential and random,
read and write) and I/O size, runs the same fio jobs on a tmpfs in the same
run as the baseline (before and after the layouts; ratios use the mean of
the two, and the summary says how far it moved), and writes results.csv, results.json and one PNG plot
per I/O size (throughput against granularity, one line per way count and
weighting, error bars from fio's bandwidth samples, tmpfs as a reference
line, one legend per figure) into the output directory. Ends with the best
unweighted and the best weighted layout per workload and their ratio to tmpfs.

Weights: each --weights ratio A:B gives every layout of two or more ways a
weighted twin whose first half of the regions (rounded up) takes A units
per row and the rest B (2:1 over 2 ways is [2, 1], over 4 ways [2, 2, 1, 1]);
a ratio with as many numbers as ways (4:2:1:1) applies to that way count
only. Equal weights are always measured: they are the unweighted layout.

Regions: those of --config FILE (every region of every tier, in order; its
[mount] table is kept), else the machine's NUMA nodes and devdax devices.
When there are fewer regions than the largest way count (one NUMA node and
no DAX, as on a laptop or the CI machine), every layout uses file regions in
/dev/shm instead: that exercises the mapping, not extra memory controllers.

The tmpfs baseline and the /dev/shm region files go into $TIERFS_SWEEP_SHM_DIR
(default /dev/shm), which must be on a tmpfs. Needs fio, gnuplot and the
right to mount FUSE (root, or fusermount3 and /dev/fuse). Always unmounts and
removes what it created, also on Ctrl-C or failure.
"""
import argparse
import csv
import datetime
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib

from tierfs_mount import MountError, TierfsMount, config_holding, is_mounted, layout_limits
from sweep_report import (GIB, KIB, UNITS, WORKLOAD_ORDER, WORKLOADS, ReportError,
                          best_layouts, best_layouts_pick, fmt_rate, fmt_size, is_weighted,
                          layout_name, layout_weights, plot, summary_entry, weighted_record,
                          weights_text)

PROG = "layout_sweep"
CSV_FIELDS = ["fs", "granularity_bytes", "ways", "weights", "workload", "io_bytes", "file_bytes",
              "jobs", "runtime_s", "bytes_per_second", "bytes_per_second_stdev", "bw_samples",
              "iops", "mean_latency_ns", "vs_tmpfs", "baseline_pass"]
# fio averages bandwidth over windows of this many ms (at least 10 per job where the
# runtime allows): their spread is the error bar of a point measured once.
MAX_BW_WINDOW_MS = 100


class SweepError(Exception):
    """One line for the user; the sweep stops, cleans up and exits 1."""


def parse_size(text, flag):
    m = re.fullmatch(r"\s*(\d+)\s*(B|KiB|MiB|GiB|TiB)?\s*", text)
    if not m or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{flag}: \"{text}\" is not a size like 64KiB or 2MiB")
    return int(m.group(1)) * UNITS[m.group(2) or ""]


def size_list(flag, check=None):
    def parse(text):
        sizes = [parse_size(item, flag) for item in text.split(",")]
        for s in sizes:
            if check and (why := check(s)):
                raise argparse.ArgumentTypeError(f"{flag}: {fmt_size(s)} {why}")
        return sizes
    return parse


def granularity_problem(g, limits):
    low, high = limits["min_granularity_bytes"], limits["max_granularity_bytes"]
    if g & (g - 1) or not low <= g <= high:
        return f"is not a power of two from {fmt_size(low)} to {fmt_size(high)}"
    return None


def io_size_problem(s):
    return "is not a multiple of 512 bytes" if s % 512 else None


def ways_list(text):
    try:
        ways = [int(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ways: \"{text}\" is not a comma-separated list of numbers")
    return sorted(set(ways))


def weights_list(text):
    ratios = []
    for item in text.split(","):
        parts = item.split(":")
        if len(parts) < 2 or not all(p.isdigit() and int(p) >= 1 for p in parts):
            raise argparse.ArgumentTypeError(
                f"--weights: \"{item}\" is not a ratio like 2:1 (whole numbers from 1)")
        ratios.append(tuple(int(p) for p in parts))
    return ratios


def workload_list(text):
    names = text.split(",")
    for n in names:
        if n not in WORKLOADS:
            raise argparse.ArgumentTypeError(
                f"--workloads: \"{n}\" is not one of {', '.join(WORKLOAD_ORDER)}")
    return [w for w in WORKLOAD_ORDER if w in names]


def positive_seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--runtime: \"{text}\" is not a positive number of seconds")
    return value


def positive_int(flag):
    def parse(text):
        if not text.isdigit() or int(text) == 0:
            raise argparse.ArgumentTypeError(f"{flag}: \"{text}\" is not a positive whole number")
        return int(text)
    return parse


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        message = re.sub(r"^argument (\S+): \1: ", r"\1: ", message)
        print(f"{PROG}: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def parse_args(argv):
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0],
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="tierfs configuration whose regions the layouts use "
                   "(default: the machine's NUMA nodes and DAX devices)")
    p.add_argument("--granularities", type=size_list("--granularities"),
                   default="4KiB,64KiB,2MiB,32MiB,1GiB", help="interleave granularities")
    p.add_argument("--ways", type=ways_list, default="1,2,4", help="way counts")
    p.add_argument("--weights", type=weights_list, default="1:1,2:1,3:1",
                   help="weight ratios for layouts of 2 or more ways (see the top of this file)")
    p.add_argument("--io-sizes", type=size_list("--io-sizes", io_size_problem),
                   default="4KiB,1MiB", help="fio block sizes")
    p.add_argument("--workloads", type=workload_list, default=",".join(WORKLOAD_ORDER),
                   help="fio workloads")
    p.add_argument("--file-size", type=lambda t: parse_size(t, "--file-size"), default="256MiB",
                   help="size of the file each fio job works on")
    p.add_argument("--runtime", type=positive_seconds, default=1.0, help="seconds per fio job")
    p.add_argument("--jobs", type=positive_int("--jobs"), default=1, help="fio numjobs (threads)")
    p.add_argument("--out", default="sweep-results", help="output directory")
    p.add_argument("--tierfs", default=os.environ.get("TIERFS_BIN"),
                   help="tierfs binary (default: $TIERFS_BIN, then build/tierfs/cli/tierfs, then PATH)")
    args = p.parse_args(argv)
    # The layout limits are tierfs's own (topology --json), checked once the binary is known.
    try:
        args.tierfs = find_tierfs(args.tierfs)
        limits = layout_limits(args.tierfs)
    except (SweepError, MountError) as e:
        p.error(str(e))
    for g in args.granularities:
        if why := granularity_problem(g, limits):
            p.error(f"--granularities: {fmt_size(g)} {why}")
    if any(not 1 <= w <= limits["max_ways"] for w in args.ways):
        p.error(f"--ways: \"{','.join(map(str, args.ways))}\": way counts go from 1 to "
                f"{limits['max_ways']}")
    if any(w > limits["max_weight"] for r in args.weights for w in r):
        p.error(f"--weights: weights go from 1 to {limits['max_weight']}")
    if any(len(r) > 2 and len(r) not in args.ways for r in args.weights):
        p.error("--weights: a ratio of more than two numbers needs a way count of that many "
                f"regions in --ways {','.join(map(str, args.ways))}")
    if args.file_size < max(args.io_sizes):
        p.error(f"--file-size {fmt_size(args.file_size)} is smaller than the I/O size "
                f"{fmt_size(max(args.io_sizes))}")
    return args


def find_tierfs(given):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for candidate in (given, os.path.join(root, "build", "tierfs", "cli", "tierfs"), shutil.which("tierfs")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
        if given and candidate == given:
            raise SweepError(f"--tierfs {given}: not an executable file")
    raise SweepError("no tierfs binary: build it (ninja -C build) or pass --tierfs PATH")


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for the characters paths and names use
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise SweepError(f"cannot write {value!r} back as TOML")


def tmpfs_dir():
    path = os.path.realpath(os.environ.get("TIERFS_SWEEP_SHM_DIR") or "/dev/shm")
    fs, best = None, ""
    with open("/proc/mounts") as f:
        for line in f:
            mnt, kind = line.split()[1:3]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                fs, best = kind, mnt
    if fs != "tmpfs":
        raise SweepError(f"{path} is on {fs or 'no file system'}, not tmpfs "
                         "(set TIERFS_SWEEP_SHM_DIR to a directory on a tmpfs)")
    return path


def machine_regions():
    regions = []
    for entry in sorted(os.listdir("/sys/devices/system/node")) if os.path.isdir(
            "/sys/devices/system/node") else []:
        if re.fullmatch(r"node\d+", entry):
            with open(f"/sys/devices/system/node/{entry}/meminfo") as f:
                if int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1)) > 0:
                    regions.append(f"numa:{entry[4:]}")
    regions.sort(key=lambda r: int(r[5:]))
    dax_root = "/sys/bus/dax/devices"
    for dev in sorted(os.listdir(dax_root)) if os.path.isdir(dax_root) else []:
        if os.path.exists(f"/dev/{dev}"):  # devdax mode: system-ram devices have no node in /dev
            regions.append(f"dax:/dev/{dev}")
    return regions or ["numa:0"]


class Sweep:
    def __init__(self, args):
        self.args = args
        self.tierfs = find_tierfs(args.tierfs)
        self.work = self.shm_dir = self.server = self.mountpoint = None
        self.created_files = []  # file: regions of --config that tierfs creates: removed again
        self.records = []
        self.tmpfs = {}  # (workload, io) -> bytes/s
        self.baseline_drift = 0.0  # largest change of a tmpfs job between its two passes
        self.mount_table = {"cache": "none"}
        self.create_files = False
        self.regions, self.note = [], ""
        self.done_jobs = 0
        self.started = time.monotonic()
        self.csv_path = os.path.join(args.out, "results.csv")

    def start(self):
        """Everything that leaves something behind, undone by cleanup()."""
        self.work = tempfile.mkdtemp(prefix="tierfs-sweep-")
        self.regions = self.choose_regions()
        os.makedirs(self.args.out, exist_ok=True)
        with open(self.csv_path, "w", newline="") as f:
            csv.writer(f).writerow(CSV_FIELDS)

    def choose_regions(self):
        args = self.args
        if args.config:
            try:
                with open(args.config, "rb") as f:
                    doc = tomllib.load(f)
            except OSError as e:
                raise SweepError(f"--config {args.config}: {e.strerror}")
            except tomllib.TOMLDecodeError as e:
                raise SweepError(f"--config {args.config}: {e}")
            self.mount_table.update(doc.get("mount", {}))
            regions = []
            for tier in doc.get("tier", []):
                regions += tier.get("regions", [])
                self.create_files = self.create_files or tier.get("create", False)
            source = args.config
        else:
            regions, source = machine_regions(), "the machine's NUMA nodes and DAX devices"
        self.note = f"{len(regions)} region(s) from {source}"
        if len(regions) >= max(args.ways):
            for region in regions[:max(args.ways)]:
                spec = region.get("region", "") if isinstance(region, dict) else region
                if spec.startswith("file:") and not os.path.exists(spec[5:]):
                    self.created_files.append(spec[5:])
            return regions
        # One memory controller (or too few regions): files in /dev/shm, one per way.
        self.shm_dir = tempfile.mkdtemp(prefix="tierfs-sweep-", dir=tmpfs_dir())
        self.create_files = True
        self.note = (f"{self.note}, fewer than {max(args.ways)} ways: every layout uses files in "
                     f"/dev/shm (one memory controller: shows the mapping's cost, not a bandwidth gain)")
        return [f"file:{self.shm_dir}/region{i}" for i in range(max(args.ways))]

    # --- one layout: config, mount, unmount --------------------------------------------------

    def layouts(self):
        a = self.args
        return [(g, ways, weights) for g in a.granularities for ways in a.ways
                for weights in layout_weights(ways, a.weights)]

    def write_config(self, granularity, ways, weights):
        def write(size_bytes):
            lines = ["[mount]"] + [f"{k} = {toml_value(v)}" for k, v in self.mount_table.items()]
            lines += ["", "[[tier]]", 'name = "sweep"',
                      f"regions = {toml_value(self.regions[:ways])}",
                      f'size = "{size_bytes}B"', f'granularity = "{fmt_size(granularity)}"']
            if is_weighted(weights):
                lines.append(f"weights = {toml_value(list(weights))}")
            if self.create_files:
                lines.append("create = true")
            path = os.path.join(self.work, "layout.toml")
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            return path
        # The file plus an eighth for fio's layout and the data layer's preallocation, whole rows.
        try:
            return config_holding(self.tierfs, write, self.args.file_size * 9 // 8)
        except MountError as e:
            raise SweepError(f"tierfs refuses G={fmt_size(granularity)} ways={ways} "
                             f"weights {weights_text(weights)}: {e}") from None

    def mount(self, granularity, ways, weights):
        config = self.write_config(granularity, ways, weights)
        self.mountpoint = os.path.join(self.work, "mnt")
        os.makedirs(self.mountpoint, exist_ok=True)
        self.server = TierfsMount(self.tierfs, config, self.mountpoint,
                                  os.path.join(self.work, "server.log"))
        try:
            self.server.start()
        except MountError:
            raise SweepError(f"tierfs did not mount G={fmt_size(granularity)} ways={ways}: "
                             f"{self.server.log_line()}") from None

    def unmount(self):
        if self.server is not None:
            # Generous: on a loaded machine releasing gigabytes of rows takes a while.
            status = self.server.stop(timeout=60)
            log_line = self.server.log_line()
            self.server = None
            if status != 0:
                raise SweepError(f"tierfs exited with status {status}: {log_line}")
        elif self.mountpoint and is_mounted(self.mountpoint):
            subprocess.run(["umount", "-l", self.mountpoint], capture_output=True)
        # Created file regions stay on disk by design: remove them so the next layout starts empty.
        if self.shm_dir:
            for name in os.listdir(self.shm_dir):
                os.unlink(os.path.join(self.shm_dir, name))
        for path in self.created_files:
            if os.path.exists(path):
                os.unlink(path)

    def cleanup(self):
        try:
            self.unmount()
        except SweepError as e:
            print(f"{PROG}: while cleaning up: {e}", file=sys.stderr)
        for path in (self.work, self.shm_dir):
            if path:
                shutil.rmtree(path, ignore_errors=True)

    # --- fio -----------------------------------------------------------------------------------

    def fio(self, directory, workload, io_size):
        a = self.args
        cmd = ["fio", "--name=sweep", f"--directory={directory}", "--filename=sweep.dat",
               f"--size={a.file_size}", f"--bs={io_size}", f"--rw={WORKLOADS[workload][0]}",
               # --thread: jobs are threads of the one fio process, so that killing it on
               # Ctrl-C stops them all (forked jobs outlive a killed parent, stuck in a futex).
               "--ioengine=psync", "--thread", f"--numjobs={a.jobs}", "--group_reporting",
               "--time_based",
               f"--runtime={int(a.runtime * 1000)}ms", "--randrepeat=0", "--output-format=json",
               f"--bwavgtime={max(1, min(MAX_BW_WINDOW_MS, int(a.runtime * 100)))}"]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            lines = (run.stderr or run.stdout).strip().splitlines() or ["(no output)"]
            raise SweepError(f"fio {workload} {fmt_size(io_size)} in {directory}: {lines[-1]}")
        # fio prints notes before the JSON on some versions.
        job = json.loads(run.stdout[run.stdout.index("{"):])["jobs"][0]
        side = job["write" if "write" in workload else "read"]
        # bw_dev is in KiB/s, over bw_samples windows of --bwavgtime each.
        return {"bytes_per_second": side["bw_bytes"], "iops": side["iops"],
                "mean_latency_ns": side["lat_ns"]["mean"],
                "bytes_per_second_stdev": side.get("bw_dev", 0.0) * KIB,
                "bw_samples": side.get("bw_samples", 0)}

    def total_jobs(self):
        a = self.args
        return len(a.workloads) * len(a.io_sizes) * (2 + len(self.layouts()))

    def progress(self, label, rate, ratio):
        self.done_jobs += 1
        total = self.total_jobs()
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done_jobs * (total - self.done_jobs)
        vs = f"  {ratio:.2f}x tmpfs" if ratio is not None else ""
        print(f"[{self.done_jobs:3d}/{total}, {int(left) // 60}:{int(left) % 60:02d} left] "
              f"{label:<38} {fmt_rate(rate):>14}{vs}", flush=True)

    def run_jobs(self, fs, directory, granularity, ways, weights=(), baseline_pass=""):
        a = self.args
        for workload in a.workloads:
            for io in a.io_sizes:
                result = self.fio(directory, workload, io)
                bw = result["bytes_per_second"]
                base = self.tmpfs.get((workload, io))
                ratio = bw / base if base else None
                if baseline_pass == "start":
                    self.tmpfs[(workload, io)] = bw
                record = {"fs": fs, "granularity_bytes": granularity, "ways": ways,
                          "weights": weights_text(weights), "workload": workload, "io_bytes": io,
                          "file_bytes": a.file_size, "jobs": a.jobs, "runtime_s": a.runtime,
                          "bytes_per_second": bw,
                          "bytes_per_second_stdev": round(result["bytes_per_second_stdev"]),
                          "bw_samples": result["bw_samples"], "iops": round(result["iops"], 1),
                          "mean_latency_ns": round(result["mean_latency_ns"], 1),
                          "vs_tmpfs": round(ratio, 4) if ratio is not None else 1.0,
                          "baseline_pass": baseline_pass}
                self.records.append(record)
                with open(self.csv_path, "a", newline="") as f:
                    csv.writer(f).writerow([record[k] for k in CSV_FIELDS])
                where = f"tmpfs ({baseline_pass})" if fs == "tmpfs" else \
                    f"G={fmt_size(granularity)} ways={ways} {weights_text(weights)}"
                self.progress(f"{where} {workload} {fmt_size(io)}", bw, ratio)

    def run(self):
        a = self.args
        self.started = time.monotonic()
        print(f"{PROG}: {self.note}")
        layouts = self.layouts()
        print(f"{PROG}: {len(layouts)} layouts ({len(a.granularities)} granularities x "
              f"{len(a.ways)} way counts, {len(layouts) // len(a.granularities)} weightings) x "
              f"{len(a.io_sizes)} I/O sizes x {len(a.workloads)} workloads + tmpfs twice, "
              f"{a.runtime:g} s each: about {math.ceil(self.total_jobs() * (a.runtime + 0.5) / 60)} min")
        self.run_tmpfs("start")
        for granularity, ways, weights in layouts:
            self.mount(granularity, ways, weights)
            try:
                self.run_jobs("tierfs", self.mountpoint, granularity, ways, weights)
            finally:
                self.unmount()
        self.run_tmpfs("end")
        self.rebase()

    def run_tmpfs(self, baseline_pass):
        directory = tempfile.mkdtemp(prefix="tierfs-sweep-tmpfs-", dir=tmpfs_dir())
        try:
            self.run_jobs("tmpfs", directory, 0, 0, (), baseline_pass)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def rebase(self):
        """Ratios against the mean of both tmpfs passes; results.csv rewritten with them."""
        passes = {}
        for r in self.records:
            if r["fs"] == "tmpfs":
                passes.setdefault((r["workload"], r["io_bytes"]), []).append(r["bytes_per_second"])
        self.tmpfs = {k: sum(v) / len(v) for k, v in passes.items()}
        self.baseline_drift = max(abs(v[-1] / v[0] - 1) for v in passes.values())
        for r in self.records:
            r["vs_tmpfs"] = round(r["bytes_per_second"] / self.tmpfs[(r["workload"], r["io_bytes"])], 4)
        with open(self.csv_path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(CSV_FIELDS)
            out.writerows([r[k] for k in CSV_FIELDS] for r in self.records)


def machine_info():
    load = os.getloadavg()
    nodes = [e for e in os.listdir("/sys/devices/system/node") if re.fullmatch(r"node\d+", e)] \
        if os.path.isdir("/sys/devices/system/node") else []
    fio = subprocess.run(["fio", "--version"], capture_output=True, text=True).stdout.strip()
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "numa_nodes": len(nodes) or 1,
            "load_average_1min": round(load[0], 2), "fio": fio,
            "date": datetime.datetime.now().isoformat(timespec="seconds")}


def finish(sweep, machine_before):
    args, records = sweep.args, sweep.records
    machine = machine_before
    machine["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    # More than that and the machine's load changed under the sweep: ratios are rough.
    warn = ", ratios are rough: rerun on a quiet machine" if sweep.baseline_drift > 0.15 else ""
    best = [summary_entry(b) for b in best_layouts(records)]
    unweighted = {(b["workload"], b["io_bytes"]): b
                  for b in best_layouts(records, lambda r: not weighted_record(r))}
    weighted = {(b["workload"], b["io_bytes"]): b for b in best_layouts(records, weighted_record)}
    pngs = plot(args, records, sweep.tmpfs, args.out, machine)
    machine["tmpfs_baseline_drift"] = round(sweep.baseline_drift, 4)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"machine": machine, "regions": sweep.regions, "regions_note": sweep.note,
                   "parameters": {"granularities": args.granularities, "ways": args.ways,
                                  "weights": [weights_text(w) for w in args.weights],
                                  "io_sizes": args.io_sizes, "workloads": args.workloads,
                                  "file_bytes": args.file_size, "runtime_s": args.runtime,
                                  "jobs": args.jobs, "config": args.config},
                   "results": records, "best": best,
                   "best_unweighted": [summary_entry(b) for b in unweighted.values()],
                   "best_weighted": [summary_entry(b) for b in weighted.values()]}, f, indent=2)
    print(f"\nbest unweighted and weighted layout per workload (load average "
          f"{machine['load_average_1min']} before, {machine['load_average_1min_after']} after; "
          f"tmpfs moved by up to {sweep.baseline_drift:.0%} between its two passes{warn}):")
    for b in best:
        key = (b["workload"], b["io_bytes"])
        print(f"  {WORKLOADS[b['workload']][1]} {fmt_size(b['io_bytes'])}:")
        for kind, entry in (("unweighted", unweighted.get(key)), ("weighted", weighted.get(key))):
            if entry is None:
                print(f"    {kind:<10}  (none measured: weights need 2 or more ways)")
                continue
            fastest = "  fastest" if entry is best_layouts_pick(b, entry) else ""
            print(f"    {kind:<10}  {layout_name(entry):<28} {fmt_rate(entry['bytes_per_second']):>14}"
                  f"  {entry['vs_tmpfs']:.2f}x tmpfs{fastest}")
    print(f"results: {sweep.csv_path}, {os.path.join(args.out, 'results.json')}, "
          f"{', '.join(pngs)}")


def main(argv):
    args = parse_args(argv)

    def interrupted(signum, _frame):
        raise KeyboardInterrupt
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    for tool in ("fio", "gnuplot", "fusermount3"):
        if shutil.which(tool) is None:
            print(f"{PROG}: {tool} is not installed (scripts/setup.sh installs it)", file=sys.stderr)
            return 1
    sweep = None
    try:
        machine = machine_info()
        sweep = Sweep(args)
        sweep.start()
        sweep.run()
        finish(sweep, machine)
        return 0
    except (SweepError, ReportError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; unmounting and cleaning up, partial results in "
              f"{os.path.join(args.out, 'results.csv')}", file=sys.stderr)
        return 130
    finally:
        if sweep is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
            sweep.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
