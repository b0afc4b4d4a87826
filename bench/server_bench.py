#!/usr/bin/env python3
"""Server-path benchmark: tierfs against tmpfs and the reference FUSE server.

In one run it mounts a tmpfs, the reference FUSE server (bench/ref_fuse_server:
the least a FUSE server can do, so the ceiling of any FUSE server here) and
tierfs on a configuration shaped like the built-in default (one DRAM tier over
every NUMA node with memory, 2 MiB granularity, cache = "none"; sized for the
benchmark's files rather than a quarter of whatever memory is free at the
time), then runs on each, interleaved workload by workload so that background
load hits all three alike:

  fio, ioengine=psync, direct=1 (O_DIRECT; tmpfs has it since Linux 6.6, and
  the FUSE mounts are direct-I/O anyway), overwrite=1 (files laid out before
  the clock starts: the figures are the steady-state data path, not first-touch
  allocation), time based:
    1 MiB sequential read and write, one job and one job per core
    4 KiB random read and write, one job
  bench/server_bench.cc: create / stat / unlink rates of empty files

Each figure is the median of --repeat runs. It prints a table with tierfs's
ratio to tmpfs and to the reference server, and the CPU time each FUSE server
spent per request (from /proc/PID/stat: what the server itself costs, which
background load disturbs much less than throughput), and writes every run as
JSON.
--smoke uses tiny sizes and short runs: it proves that everything runs and
that the outputs are written, and says nothing about speed.

--instructions runs the two FUSE servers under valgrind's callgrind instead
and reports the user-space instructions each executes per request for fixed
request counts: tierfs's own cost beside the reference's, a figure that the
other work on a shared machine does not move.

Run as root (mounts), e.g.  bench/server_bench.sh --build-dir build
"""
import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import speed_table
from tierfs_mount import MountError, TierfsMount, check_config, config_holding

FS_NAMES = ("tmpfs", "ref", "tierfs")
MIB = 1 << 20


class BenchError(Exception):
    """One line for the user: what went wrong and where."""


def workloads(cores):
    """(name, fio rw, block size, jobs) of every data workload."""
    return [
        ("seq_read_1m_1job", "read", "1M", 1),
        (f"seq_read_1m_{cores}jobs", "read", "1M", cores),
        ("seq_write_1m_1job", "write", "1M", 1),
        (f"seq_write_1m_{cores}jobs", "write", "1M", cores),
        ("rand_read_4k_1job", "randread", "4k", 1),
        ("rand_write_4k_1job", "randwrite", "4k", 1),
    ]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", default=os.environ.get("TIERFS_BUILD_DIR", "build"),
                   help="meson build directory with tierfs/tierfs and bench/ (default: build)")
    p.add_argument("--out", default="server_bench.json", help="JSON results file")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and short runs (tests)")
    p.add_argument("--runtime-s", type=float, default=2.0, help="seconds per fio run")
    p.add_argument("--ramp-s", type=float, default=0.0, help="fio ramp time before measuring")
    p.add_argument("--file-mib", type=int, default=512, help="file size per fio job, MiB")
    p.add_argument("--files", type=int, default=10000, help="files per metadata phase")
    p.add_argument("--repeat", type=int, default=5, help="runs per figure (median is kept)")
    p.add_argument("--only", default="", help="comma-separated workload names (default: all)")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    p.add_argument("--instructions", action="store_true",
                   help="count the FUSE servers' instructions per request (callgrind) instead")
    p.add_argument("--tierfs-config", default="",
                   help="TOML for tierfs instead of the built-in default")
    p.add_argument("--table", action="store_true",
                   help="issue 16's table instead: tmpfs, tierfs cache none and kernel (and the "
                        "libfuse 3.18 build): new-file write, overwrite, read, 4 KiB random, "
                        "creates and stats (bench/speed_table.py)")
    p.add_argument("--jobs", default="1,2,4", help="--table: fio job counts (default 1,2,4)")
    p.add_argument("--before-bin", default="",
                   help="--table: another tierfs binary (e.g. main before a change), mounted as "
                        "tierfs_before with cache = \"none\" beside the others")
    p.add_argument("--before-cache", choices=("none", "kernel"), default="none",
                   help="--table: the cache mode of the --before-bin mount (kernel: mounted as "
                        "tierfs_before_kernel, driven as tierfs_kernel is)")
    p.add_argument("--no-kernel-cache", action="store_true",
                   help="--table: leave out tierfs with cache = \"kernel\"")
    p.add_argument("--buffered", action="store_true",
                   help="--table: drive tmpfs, the kernel path and passthrough_hp with buffered "
                        "I/O (end_fsync on writes) instead of O_DIRECT")
    p.add_argument("--tmpfs-huge", action="store_true",
                   help="--table: mount the tmpfs columns (tmpfs, passthrough_hp's source) with "
                        "huge=within_size, as the kernel path's backing tmpfs is at 2 MiB granularity")
    p.add_argument("--no-kernel-path", action="store_true",
                   help="--table: leave out tierfs with data_path = \"kernel\" (tierfs_kpath)")
    p.add_argument("--passthrough-hp", default="",
                   help="--table: libfuse's example/passthrough_hp binary, mounted over a tmpfs "
                        "as a reference column (bench/build_passthrough_hp.sh builds it)")
    p.add_argument("--bind-jobs", action="store_true",
                   help="--table: bind each fio job to its own CPU (fio cpus_allowed_policy="
                        "split), as Slurm's task affinity binds a job's tasks")
    p.add_argument("--fuse318-build", default="",
                   help="--table: a build directory configured with -Dlibfuse_prefix (3.18)")
    args = p.parse_args()
    if args.smoke:
        args.runtime_s, args.ramp_s, args.file_mib, args.files, args.repeat = 0.3, 0, 8, 200, 1
        args.jobs = "1"
    if args.instructions:
        args.file_mib, args.files = 64, 2000
    for name in ("runtime_s", "file_mib", "files", "repeat"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    return args


def run(argv, **kw):
    return subprocess.run(argv, check=False, capture_output=True, text=True, **kw)


def device_of(path):
    return os.stat(path).st_dev


class Mounts:
    """The three mounts of one run; unmounts and stops its servers on close()."""

    def __init__(self, work, binaries, cores, args):
        self.work = work
        self.bin = binaries
        self.cores = cores
        self.args = args
        self.dirs = {name: os.path.join(work, name) for name in FS_NAMES}
        self.servers = {}  # name -> (Popen or TierfsMount: anything with .pid, log path)
        self.mounted = []
        self.default_like = ""  # the configuration written when none is given

    def _wait_mounted(self, name, before):
        proc, log = self.servers[name]
        for _ in range(2000):
            if device_of(self.dirs[name]) != before:
                return
            if proc.poll() is not None:
                raise BenchError(f"{name} did not mount: {read_text(log).strip()}")
            time.sleep(0.01)
        raise BenchError(f"{name} did not mount on {self.dirs[name]} within 20 s")

    def _wrapper(self):
        if not self.args.instructions:
            return []
        return ["valgrind", "--tool=callgrind", "--dump-instr=no",
                f"--callgrind-out-file={self.work}/callgrind.%p"]

    def _start_server(self, name, argv):
        """A server that stays in the foreground: the reference, and tierfs under callgrind."""
        argv = self._wrapper() + argv
        before = device_of(self.dirs[name])
        log = os.path.join(self.work, name + ".log")
        with open(log, "w") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.servers[name] = (proc, log)
        self._wait_mounted(name, before)
        self.mounted.append(name)

    def open(self):
        for d in self.dirs.values():
            os.mkdir(d)
        total_mib = self.args.file_mib * self.cores + 64
        r = run(["mount", "-t", "tmpfs", "-o", f"size={total_mib}m", "tmpfs", self.dirs["tmpfs"]])
        if r.returncode != 0:
            raise BenchError(f"cannot mount a tmpfs on {self.dirs['tmpfs']}: {r.stderr.strip()}")
        self.mounted.append("tmpfs")
        self._start_server("ref", [self.bin["ref"], "--buffer-mib", str(total_mib),
                                   self.dirs["ref"]])
        config = self.args.tierfs_config
        if not config:
            config = default_like_config(self.bin["tierfs"], self.work, total_mib)
            if self.args.instructions:
                # valgrind 3.19 does not know seccomp(2): the sandbox would fail the mount.
                with open(config, "a") as f:
                    f.write("\n[mount]\nsandbox = false\n")
            self.default_like = read_text(config)  # for the results: the work dir goes
        if self.args.instructions:
            # In the foreground: valgrind's gdbserver, which callgrind_control
            # talks to, does not follow the daemon's fork.
            self._start_server("tierfs", [self.bin["tierfs"], "mount", "-f", "--config", config,
                                          self.dirs["tierfs"]])
            return
        log = os.path.join(self.work, "tierfs.log")
        server = TierfsMount(self.bin["tierfs"], config, self.dirs["tierfs"], log,
                             wrapper=self._wrapper())
        self.servers["tierfs"] = (server, log)
        try:
            server.start()
        except MountError as e:
            raise BenchError(str(e)) from None
        self.mounted.append("tierfs")

    def close(self):
        """Unmounts everything this run mounted; returns the servers' exit problems."""
        problems = []
        for name in reversed(self.mounted):
            if isinstance(self.servers.get(name, (None,))[0], TierfsMount):
                continue  # stopped below, with its exit status
            cmd = ["umount", self.dirs[name]] if name == "tmpfs" else \
                ["fusermount3", "-u", self.dirs[name]]
            if run(cmd).returncode != 0:
                run(["umount", "-l", self.dirs[name]])
        self.mounted = []
        for name, (proc, log) in self.servers.items():
            if isinstance(proc, TierfsMount):
                status = proc.stop(timeout=20)
                if status != 0:
                    problems.append(f"{name} exited with {status}: {read_text(log).strip()}")
                continue
            try:
                # Under callgrind tierfs's unmount (regions given back) takes longer.
                status = proc.wait(timeout=120 if self.args.instructions else 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                status = proc.wait()
            if status != 0:
                problems.append(f"{name} exited with {status}: {read_text(log).strip()}")
        self.servers = {}
        return problems


def default_like_config(tierfs, work, data_mib):
    """The built-in default's shape (its regions and granularity, from check-config
    --default --json) with room for the files and their preallocation, in whole rows."""
    try:
        default = check_config(tierfs)
        tier = next(t for t in default["tiers"] if t["name"] == default["default_tier"])
        regions = ", ".join(f'"{r["spec"]}"' for r in tier["regions"])

        def write(size_bytes):
            path = os.path.join(work, "tierfs.toml")
            with open(path, "w") as f:
                f.write(f'[[tier]]\nname = "dram"\nregions = [{regions}]\nsize = "{size_bytes}B"\n'
                        f'granularity = "{tier["granularity_bytes"]}B"\n\n[defaults]\ntier = "dram"\n')
            return path
        return config_holding(tierfs, write, (data_mib * 2 + 256) * MIB)
    except MountError as e:
        raise BenchError(f"no tierfs configuration like the default: {e}") from None


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def tmpfs_has_o_direct(directory):
    path = os.path.join(directory, ".o_direct_probe")
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o644)
    except OSError:
        return False
    os.close(fd)
    os.unlink(path)
    return True


def fio(directory, rw, bs, jobs, direct, args):
    argv = ["fio", "--name=data", f"--directory={directory}", f"--rw={rw}", f"--bs={bs}",
            f"--size={args.file_mib}M", f"--numjobs={jobs}", "--group_reporting",
            "--ioengine=psync", f"--direct={1 if direct else 0}", "--overwrite=1",
            "--fallocate=none", "--time_based", f"--runtime={int(args.runtime_s * 1000)}ms",
            "--output-format=json"]
    if args.ramp_s > 0:
        argv.append(f"--ramp_time={int(args.ramp_s * 1000)}ms")
    r = run(argv)
    if r.returncode != 0:
        raise BenchError(f"fio {rw} bs={bs} jobs={jobs} on {directory} failed: "
                         f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    job = json.loads(r.stdout[r.stdout.index("{"):])["jobs"][0]
    side = job["read"] if rw in ("read", "randread") else job["write"]
    return {"bytes_per_s": side["bw_bytes"], "iops": side["iops"], "ops": side["total_ios"]}


def lay_out(directory, jobs, direct, args):
    """Writes the fio files once, so no measured run pays for first-touch allocation."""
    argv = ["fio", "--name=data", f"--directory={directory}", "--rw=write", "--bs=1M",
            f"--size={args.file_mib}M", f"--numjobs={jobs}", "--ioengine=psync",
            f"--direct={1 if direct else 0}", "--fallocate=none", "--output-format=json"]
    r = run(argv)
    if r.returncode != 0:
        raise BenchError(f"fio could not lay out its files in {directory}: "
                         f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}")


def cpu_seconds(pid):
    """User + system CPU time of a process and all its threads so far."""
    fields = read_text(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metadata(binary, directory, args):
    # In the mount's root: the reference server has no subdirectories.
    r = run([binary, directory, "--count", str(args.files)])
    if r.returncode != 0:
        raise BenchError(f"metadata loop on {directory} failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


def machine(tierfs_bin):
    model = ""
    for line in read_text("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    # The libfuse the measured binary runs on ("tierfs X, libfuse Y"), not the system's.
    version = run([tierfs_bin, "--version"]).stdout.strip()
    fuse = version.split("libfuse ", 1)[1] if "libfuse " in version else \
        run(["pkg-config", "--modversion", "fuse3"]).stdout.strip()
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30),
            "libfuse": fuse, "fio": run(["fio", "--version"]).stdout.strip()}


def format_figure(metric, value):
    if metric == "bytes_per_s":
        return f"{value / 1e9:.2f} GB/s"
    if metric == "iops":
        return f"{value / 1e3:.1f} kIOPS"
    return f"{value / 1e3:.2f} k/s"


def print_table(rows):
    head = (f"{'workload':<22}{'tmpfs':>14}{'ref':>14}{'tierfs':>14}{'/tmpfs':>9}{'/ref':>7}"
            f"  target          server CPU us/op ref tierfs")
    print(head)
    print("-" * len(head))
    for row in rows:
        figures = "".join(f"{format_figure(row['metric'], row[n]):>14}" for n in FS_NAMES)
        verdict = "met" if row["tierfs_to_ref"] >= 1 - row["target_margin"] else "MISSED"
        cpu = row["server_cpu_us_per_op"]
        cpu_text = " ".join(f"{cpu[fs]:>7.1f}" if fs in cpu else "      -" for fs in ("ref", "tierfs"))
        print(f"{row['workload']:<22}{figures}{row['tierfs_to_tmpfs']:>9.2f}"
              f"{row['tierfs_to_ref']:>7.2f}  {verdict:<6} (ref -{row['target_margin']:.0%})"
              f"       {cpu_text}")


class Runs:
    """Every run's figure, and the FUSE servers' CPU time per request, by workload."""

    def __init__(self):
        self.figures = {}  # (workload, metric) -> {fs: [figure]}
        self.cpu_us = {}  # workload -> {fs: [server CPU microseconds per request]}

    def add(self, workload, metric, fs, figure):
        self.figures.setdefault((workload, metric), {}).setdefault(fs, []).append(figure)

    def add_cpu(self, workload, fs, seconds, requests):
        if requests > 0:
            self.cpu_us.setdefault(workload, {}).setdefault(fs, []).append(
                seconds * 1e6 / requests)


def timed(mounts, fs, action):
    """Runs action(); returns its result and the CPU time fs's server spent meanwhile."""
    server = mounts.servers.get(fs)
    before = cpu_seconds(server[0].pid) if server else 0.0
    result = action()
    return result, (cpu_seconds(server[0].pid) - before if server else 0.0)


def print_markdown(rows):
    print("| workload | tmpfs | reference | tierfs | tierfs / tmpfs | tierfs / reference | "
          "target | server CPU µs per request (ref, tierfs) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for row in rows:
        figures = " | ".join(format_figure(row["metric"], row[n]) for n in FS_NAMES)
        met = row["tierfs_to_ref"] >= 1 - row["target_margin"]
        cpu = row["server_cpu_us_per_op"]
        cpu_text = ", ".join(f"{cpu[fs]:.1f}" if fs in cpu else "-" for fs in ("ref", "tierfs"))
        print(f"| {row['workload']} | {figures} | {row['tierfs_to_tmpfs']:.2f} | "
              f"{row['tierfs_to_ref']:.2f} | {'met' if met else '**missed**'} "
              f"(≥ {1 - row['target_margin']:.2f}) | {cpu_text} |")


def measure(mounts, binaries, cores, direct_for, args):
    only = {w for w in args.only.split(",") if w}
    runs = Runs()
    data = [w for w in workloads(cores) if not only or w[0] in only]
    if data:
        for fs in FS_NAMES:
            lay_out(mounts.dirs[fs], cores, direct_for[fs], args)
    for rep in range(args.repeat):
        # Each run starts with another file system, so none always follows the same one.
        order = FS_NAMES[rep % 3:] + FS_NAMES[:rep % 3]
        for name, rw, bs, jobs in data:
            metric = "bytes_per_s" if bs == "1M" else "iops"
            for fs in order:
                got, cpu = timed(mounts, fs, lambda: fio(mounts.dirs[fs], rw, bs, jobs,
                                                         direct_for[fs], args))
                runs.add(name, metric, fs, got[metric])
                runs.add_cpu(name, fs, cpu, got["ops"])
            print(f"  run {rep + 1}/{args.repeat} {name}: "
                  + ", ".join(f"{fs} {format_figure(metric, runs.figures[(name, metric)][fs][-1])}"
                              for fs in FS_NAMES), flush=True)
        if not only or only & {"create", "stat", "unlink"}:
            for fs in order:
                got, cpu = timed(mounts, fs,
                                 lambda: metadata(binaries["metadata"], mounts.dirs[fs], args))
                for phase in ("create", "stat", "unlink"):
                    runs.add(phase, "ops_per_s", fs, got[phase + "_per_s"])
                runs.add_cpu("create+stat+unlink", fs, cpu, 3 * got["count"])
            print(f"  run {rep + 1}/{args.repeat} create/stat/unlink done", flush=True)
    rows = []
    for (name, metric), per_fs in runs.figures.items():
        row = {"workload": name, "metric": metric, "runs": per_fs,
               "target_margin": 0.25 if metric == "ops_per_s" else 0.10}
        for fs in FS_NAMES:
            row[fs] = statistics.median(per_fs[fs])
        cpu = runs.cpu_us.get("create+stat+unlink" if metric == "ops_per_s" else name, {})
        row["server_cpu_us_per_op"] = {fs: statistics.median(v) for fs, v in cpu.items()}
        row["tierfs_to_tmpfs"] = row["tierfs"] / row["tmpfs"] if row["tmpfs"] else 0.0
        row["tierfs_to_ref"] = row["tierfs"] / row["ref"] if row["ref"] else 0.0
        rows.append(row)
    return rows


def callgrind_instructions(work, pid, action):
    """Runs action(); returns its result and the instructions pid executed meanwhile."""
    if run(["callgrind_control", "-z", str(pid)]).returncode != 0:
        raise BenchError(f"callgrind_control cannot reach process {pid}")
    result = action()
    run(["callgrind_control", "-d", str(pid)])
    dumps = [os.path.join(work, f) for f in os.listdir(work)
             if f.startswith(f"callgrind.{pid}.")]
    if not dumps:
        raise BenchError(f"callgrind wrote no profile for process {pid}")
    for line in read_text(max(dumps, key=os.path.getmtime)).splitlines():
        if line.startswith("summary:"):
            return result, int(line.split()[1])
    raise BenchError(f"no summary line in the callgrind profile of process {pid}")


def measure_instructions(mounts, binaries, args):
    """User-space instructions per request of ref and tierfs, fixed request counts."""
    count_4k = 10000
    workloads_fixed = [
        ("seq_read_1m", ["--rw=read", "--bs=1M", "--loops=4"]),
        ("seq_write_1m", ["--rw=write", "--bs=1M", "--loops=4"]),
        ("rand_read_4k", ["--rw=randread", "--bs=4k", f"--number_ios={count_4k}"]),
        ("rand_write_4k", ["--rw=randwrite", "--bs=4k", f"--number_ios={count_4k}"]),
    ]
    rows = []
    for fs in ("ref", "tierfs"):
        lay_out(mounts.dirs[fs], 1, True, args)
    for name, options in workloads_fixed:
        row = {"workload": name, "unit": "instructions per request"}
        for fs in ("ref", "tierfs"):
            argv = ["fio", "--name=data", f"--directory={mounts.dirs[fs]}", "--ioengine=psync",
                    f"--size={args.file_mib}M", "--direct=1", "--overwrite=1",
                    "--fallocate=none", "--output-format=json"] + options
            r, instructions = callgrind_instructions(mounts.work, mounts.servers[fs][0].pid,
                                                     lambda: run(argv))
            if r.returncode != 0:
                raise BenchError(f"fio {name} on {fs} failed: {r.stderr.strip()[-200:]}")
            job = json.loads(r.stdout[r.stdout.index("{"):])["jobs"][0]
            side = job["read"] if "read" in name else job["write"]
            row[fs] = instructions / side["total_ios"]
        rows.append(row)
        print(f"  {name}: ref {row['ref']:.0f}, tierfs {row['tierfs']:.0f}", flush=True)
    row = {"workload": "create+stat+unlink", "unit": "instructions per file (all three)"}
    for fs in ("ref", "tierfs"):
        got, instructions = callgrind_instructions(
            mounts.work, mounts.servers[fs][0].pid,
            lambda: metadata(binaries["metadata"], mounts.dirs[fs], args))
        row[fs] = instructions / got["count"]
    rows.append(row)
    for row in rows:
        row["tierfs_to_ref"] = row["tierfs"] / row["ref"]
    return rows


def print_instructions(rows):
    head = f"{'workload':<22}{'ref':>12}{'tierfs':>12}{'tierfs/ref':>12}  unit"
    print(head)
    print("-" * len(head))
    for row in rows:
        print(f"{row['workload']:<22}{row['ref']:>12.0f}{row['tierfs']:>12.0f}"
              f"{row['tierfs_to_ref']:>12.2f}  {row['unit']}")


def check_smoke(rows, out_path):
    """--smoke: every figure is positive and the JSON file reads back whole."""
    with open(out_path) as f:
        saved = json.load(f)
    names = {r["workload"] for r in saved["results"]}
    expected = {w[0] for w in workloads(saved["machine"]["cores"])} | {"create", "stat", "unlink"}
    if names != expected:
        raise BenchError(f"{out_path}: results for {sorted(names)}, expected {sorted(expected)}")
    for row in rows:
        for fs in FS_NAMES:
            if not row[fs] > 0:
                raise BenchError(f"{row['workload']} on {fs}: no figure ({row[fs]})")


def main():
    args = parse_args()
    build = os.path.abspath(args.build_dir)
    binaries = {"tierfs": os.environ.get("TIERFS_BIN")
                or os.path.join(build, "tierfs", "cli", "tierfs"),
                "ref": os.path.join(build, "bench", "ref_fuse_server"),
                "metadata": os.path.join(build, "bench", "server_bench_metadata")}
    for name, path in binaries.items():
        if not os.access(path, os.X_OK):
            raise BenchError(f"{path}: not built (the {name} binary; --build-dir names the build)")
    for tool in ("fio", "fusermount3") + (("valgrind", "callgrind_control")
                                          if args.instructions else ()):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (scripts/setup.sh installs it)")
    if args.table:
        return main_table(args, binaries)
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    if load_before[0] > 0.5 and not args.smoke:
        print(f"note: load average {load_before[0]:.2f} before the run: figures may be low")

    work = tempfile.mkdtemp(prefix="tierfs-bench-")
    mounts = Mounts(work, binaries, cores, args)
    # Unmount on Ctrl-C and SIGTERM too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    started = time.time()
    try:
        mounts.open()
        direct_for = {"tmpfs": tmpfs_has_o_direct(mounts.dirs["tmpfs"]), "ref": True,
                      "tierfs": True}
        print(f"mounted tmpfs, ref_fuse_server and tierfs under {work}; "
              f"tmpfs O_DIRECT: {'yes' if direct_for['tmpfs'] else 'no (buffered)'}", flush=True)
        if args.instructions:
            rows = measure_instructions(mounts, binaries, args)
        else:
            rows = measure(mounts, binaries, cores, direct_for, args)
    finally:
        problems = mounts.close()
        shutil.rmtree(work, ignore_errors=True)
    if problems:
        raise BenchError("; ".join(problems))

    result = {
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "mode": "instructions (callgrind)" if args.instructions else "timed",
        "machine": machine(binaries["tierfs"]),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "seconds": round(time.time() - started, 1),
        "settings": {"runtime_s": args.runtime_s, "ramp_s": args.ramp_s,
                     "file_mib": args.file_mib, "files": args.files, "repeat": args.repeat,
                     "tmpfs_o_direct": direct_for["tmpfs"], "fio_ioengine": "psync",
                     "tierfs_config": args.tierfs_config or "default-like: "
                     + mounts.default_like.replace("\n", " ")},
        "results": rows,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print()
    if args.instructions:
        print_instructions(rows)
        return 0
    print_table(rows)
    if args.markdown:
        print()
        print_markdown(rows)
    print(f"\nload average before {load_before[0]:.2f}, after {result['load_average_after'][0]:.2f};"
          f" {result['seconds']} s; results in {args.out}")
    if args.smoke:
        check_smoke(rows, args.out)
    return 0


def main_table(args, binaries):
    """--table: the figures of every variant, medians and ratios to tmpfs, one JSON file."""
    load_before = os.getloadavg()
    work = tempfile.mkdtemp(prefix="tierfs-table-")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    started = time.time()
    try:
        table = speed_table.run_table(args, binaries["tierfs"], binaries["metadata"], work)
    except speed_table.TableError as e:
        raise BenchError(str(e)) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
              "mode": "table", "machine": machine(binaries["tierfs"]),
              "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "seconds": round(time.time() - started, 1),
              **table}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    m = result["machine"]
    print(f"\n{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, "
          f"libfuse {m['libfuse']}, {m['fio']}; medians of {args.repeat}; "
          f"ratio to tmpfs; L = load average (1 min) at the figure")
    speed_table.print_table(result, markdown=args.markdown)
    print(f"\nload average before {load_before[0]:.2f}, after {result['load_average_after'][0]:.2f};"
          f" {result['seconds']} s; results in {args.out}")
    if args.smoke:
        for row in result["rows"]:
            for fs, value in row["median"].items():
                if not value > 0:
                    raise BenchError(f"{row['workload']} on {fs}: no figure ({value})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"server_bench: {e}", file=sys.stderr)
        sys.exit(1)
