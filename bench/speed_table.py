"""server_bench --table: the data-path table (issues 16 and 25) in one run.

Mounts tmpfs, tierfs with cache = "none", tierfs with cache = "kernel" and,
when a build against libfuse 3.18 is given (--fuse318-build), that build with
FUSE over io_uring and 4 MiB requests; tierfs with data_path = "kernel"
(tierfs_kpath: FUSE passthrough, driven as tmpfs is, left out in one line
where the kernel or build has no passthrough); and, with --passthrough-hp,
libfuse's own example/passthrough_hp over a tmpfs as a reference column;
then, interleaved workload by workload
so background load hits all alike (each repetition starts with another file
system):

  fio psync, 1 MiB: write of a new file (created by the run, size based),
  overwrite of an existing file and read; 4 KiB random read and write; at 1, 2
  and 4 jobs (--jobs); 1 MiB reads and writes through a shared mapping (fio's
  mmap engine, end_fsync on writes). cache = "none" and the 3.18 build use direct I/O (as
  they serve every request), tmpfs and cache = "kernel" buffered I/O with
  end_fsync on writes (the data reaches the server before the clock stops);
  4 KiB random reads on cache = "kernel" read data the page cache holds
  (invalidate=0 after one read pass: "cached data" in the issue's target).
  bench/server_bench.cc: creates and stats of empty files.

--before-bin mounts another build beside them (tierfs_before, cache = "none";
with --before-cache kernel, tierfs_before_kernel, driven as tierfs_kernel).

Every figure is the median of --repeat runs and every ratio is to tmpfs in
the same run; the load average is printed beside every figure, because the
machine may be shared. Nothing here passes or fails on speed.
"""
import json
import os
import statistics
import subprocess

from tierfs_mount import MountError, TierfsMount

MIB = 1 << 20
URING_PARAM = "/sys/module/fuse/parameters/enable_uring"
MAX_PAGES_SYSCTL = "/proc/sys/fs/fuse/max_pages_limit"


class TableError(Exception):
    """One line for the user."""


def _run(argv):
    return subprocess.run(argv, check=False, capture_output=True, text=True)


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _write(path, value):
    try:
        with open(path, "w") as f:
            f.write(value)
        return True
    except OSError:
        return False


class Variant:
    """One file system of the table: how to mount it and how fio drives it."""

    def __init__(self, name, direct, cache_kernel=False, binary=None, mount_options=(),
                 max_io="1MiB", data_path="server", passthrough_hp=None):
        self.name, self.direct, self.cache_kernel = name, direct, cache_kernel
        self.binary, self.mount_options, self.max_io = binary, list(mount_options), max_io
        self.data_path = data_path
        # libfuse's example/passthrough_hp, serving a tmpfs of its own (the reference column).
        self.passthrough_hp = passthrough_hp
        self.dir = None
        self.source = None  # passthrough_hp's tmpfs
        self.server = None  # TierfsMount


def _config(variant, size_mib):
    cache = "kernel" if variant.cache_kernel else "none"
    return (f'[mount]\ncache = "{cache}"\nmax_io = "{variant.max_io}"\n\n'
            f'[[tier]]\nname = "dram"\nregions = ["numa:0"]\nsize = "{size_mib}MiB"\n'
            f'granularity = "2MiB"\ndata_path = "{variant.data_path}"\n\n'
            f'[defaults]\ntier = "dram"\n')


def _mount_tmpfs(directory, size_mib, huge=False):
    options = f"size={size_mib}m" + (",huge=within_size" if huge else "")
    r = _run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", directory])
    if r.returncode != 0:
        raise TableError(f"cannot mount a tmpfs on {directory}: {r.stderr.strip()}")


def _mount(variant, work, size_mib, huge=False):
    variant.dir = os.path.join(work, variant.name)
    os.mkdir(variant.dir)
    if variant.passthrough_hp is not None:
        # Its defaults: passthrough of reads and writes on, attribute caching on.
        variant.source = os.path.join(work, variant.name + ".source")
        os.mkdir(variant.source)
        _mount_tmpfs(variant.source, size_mib, huge)
        r = _run([variant.passthrough_hp, variant.source, variant.dir])
        if r.returncode != 0 or not os.path.ismount(variant.dir):
            raise TableError(f"{variant.passthrough_hp} did not mount {variant.dir}: "
                             f"{(r.stderr or r.stdout).strip()}")
        return
    if variant.binary is None:
        _mount_tmpfs(variant.dir, size_mib, huge)
        return
    config = os.path.join(work, variant.name + ".toml")
    with open(config, "w") as f:
        f.write(_config(variant, size_mib))
    variant.server = TierfsMount(variant.binary, config, variant.dir,
                                 os.path.join(work, variant.name + ".log"),
                                 options=variant.mount_options)
    try:
        variant.server.start()
    except MountError as e:
        variant.server = None
        raise TableError(f"{variant.name}: {e}") from None


def _unmount(variant):
    if variant.server is not None:
        status = variant.server.stop(timeout=30)
        return "" if status == 0 else f"{variant.name} exited with {status}: " \
            f"{variant.server.log_line()}"
    for directory in (variant.dir, variant.source):
        if directory is not None and variant.binary is None and os.path.ismount(directory):
            if _run(["umount", directory]).returncode != 0:
                _run(["umount", "-l", directory])
    return ""


def _has_o_direct(directory):
    path = os.path.join(directory, ".o_direct_probe")
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o644))
    except OSError:
        return False
    os.unlink(path)
    return True


def _io_uring_fds(pid):
    """How many io_uring instances the server holds (libfuse 3.18 starts one per queue)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += "io_uring" in os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return count


def workloads(jobs_list):
    """(name, fio rw, bs, jobs, kind): kind new = fresh files, size based."""
    out = []
    for jobs in jobs_list:
        suffix = f"_{jobs}j"
        out += [("write_new_1m" + suffix, "write", "1M", jobs, "new"),
                ("overwrite_1m" + suffix, "write", "1M", jobs, "old"),
                ("read_1m" + suffix, "read", "1M", jobs, "old"),
                ("randread_4k" + suffix, "randread", "4k", jobs, "old"),
                ("randwrite_4k" + suffix, "randwrite", "4k", jobs, "old"),
                # fio's mmap engine: a shared mapping of the file, memcpy in and out.
                ("mmap_read_1m" + suffix, "read", "1M", jobs, "mmap"),
                ("mmap_write_1m" + suffix, "write", "1M", jobs, "mmap")]
    return out


def _fio(variant, name, rw, bs, jobs, kind, args):
    argv = ["fio", f"--name={name}", f"--directory={variant.dir}", "--filename_format=f.$jobnum",
            f"--rw={rw}", f"--bs={bs}", f"--size={args.file_mib}M", f"--numjobs={jobs}",
            "--group_reporting", "--fallocate=none", "--output-format=json", "--thread"]
    if kind == "mmap":
        argv += ["--ioengine=mmap", "--direct=0"]
    else:
        argv += ["--ioengine=psync", f"--direct={1 if variant.direct else 0}"]
    if args.bind_jobs:
        # Job j on CPU j (mod the CPU count), on every file system alike.
        argv += [f"--cpus_allowed=0-{os.cpu_count() - 1}", "--cpus_allowed_policy=split"]
    if rw in ("write", "randwrite") and (kind == "mmap" or not variant.direct):
        argv.append("--end_fsync=1")
    if kind == "new":
        # Size based: each job writes its fresh file once; it is deleted after the run.
        argv += ["--unlink=1", "--create_on_open=1"]
        for j in range(jobs):
            try:
                os.unlink(os.path.join(variant.dir, f"f.{j}"))
            except FileNotFoundError:
                pass
    else:
        argv += ["--overwrite=1", "--time_based", f"--runtime={int(args.runtime_s * 1000)}ms"]
    if rw == "randread" and variant.cache_kernel:
        # "Cached data": read the files into the page cache first (untimed; the 1 MiB read
        # workload before this one dropped them, as fio does by default).
        warm = [a for a in argv if not a.startswith(("--rw=", "--bs=", "--time_based",
                                                     "--runtime="))]
        _run(warm + ["--rw=read", "--bs=1M", "--invalidate=0"])
        argv.append("--invalidate=0")
    r = _run(argv)
    if r.returncode != 0:
        raise TableError(f"fio {name} on {variant.name} failed: "
                         f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    job = json.loads(r.stdout[r.stdout.index("{"):])["jobs"][0]
    side = job["read"] if rw in ("read", "randread") else job["write"]
    return side["bw_bytes"]


def _lay_out(variant, jobs, args):
    """Writes the files of the overwrite/read workloads once, and reads them (page cache)."""
    base = ["fio", "--name=layout", f"--directory={variant.dir}", "--filename_format=f.$jobnum",
            "--bs=1M", f"--size={args.file_mib}M", f"--numjobs={jobs}", "--ioengine=psync",
            f"--direct={1 if variant.direct else 0}", "--fallocate=none", "--thread"]
    for rw in ("write", "read"):
        r = _run(base + [f"--rw={rw}"])
        if r.returncode != 0:
            raise TableError(f"fio could not lay out files in {variant.dir}: "
                             f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}")


def _metadata(binary, variant, args):
    r = _run([binary, variant.dir, "--count", str(args.files)])
    if r.returncode != 0:
        raise TableError(f"metadata loop on {variant.name} failed: {r.stderr.strip()}")
    got = json.loads(r.stdout)
    return {"create": got["create_per_s"], "stat": got["stat_per_s"]}


def _describe_figure(name, value):
    if name in ("create", "stat"):
        return f"{value / 1e3:.1f}k/s"
    return f"{value / 1e9:.2f}GB/s" if "_1m" in name else f"{value / 1e6:.0f}MB/s"


def run_table(args, tierfs_bin, metadata_bin, work, log=print):
    """Measures every variant; returns the JSON-ready result (rows, loads, settings)."""
    # tmpfs with O_DIRECT where it has it (Linux 6.6+): on 6.18 its buffered path is
    # slower than its direct one (measured 0.56 against 1.14 GB/s, 1 MiB reads), and the
    # baseline should be the fastest way to the same memory.
    # --buffered: tmpfs and every variant driven as it is (the kernel path,
    # passthrough_hp) use buffered I/O, as a job does by default.
    as_tmpfs = not args.buffered
    variants = [Variant("tmpfs", direct=as_tmpfs),
                Variant("tierfs_none", direct=True, binary=tierfs_bin)]
    if args.before_bin:
        # The same file system from another build: a change's before and after in one run.
        if not os.access(args.before_bin, os.X_OK):
            raise TableError(f"--before-bin {args.before_bin}: not an executable")
        if args.before_cache == "kernel":
            variants.append(Variant("tierfs_before_kernel", direct=False, cache_kernel=True,
                                    binary=os.path.abspath(args.before_bin)))
        else:
            variants.append(Variant("tierfs_before", direct=True,
                                    binary=os.path.abspath(args.before_bin)))
    if not args.no_kernel_cache:
        variants.append(Variant("tierfs_kernel", direct=False, cache_kernel=True,
                                binary=tierfs_bin))
    if not args.no_kernel_path:
        # The kernel data path: FUSE passthrough onto a backing tmpfs file; driven as tmpfs is.
        variants.append(Variant("tierfs_kpath", direct=as_tmpfs, binary=tierfs_bin,
                                data_path="kernel"))
    if args.passthrough_hp:
        if not os.access(args.passthrough_hp, os.X_OK):
            raise TableError(f"--passthrough-hp {args.passthrough_hp}: not an executable "
                             f"(bench/build_passthrough_hp.sh builds it)")
        variants.append(Variant("passthrough_hp", direct=as_tmpfs,
                                passthrough_hp=os.path.abspath(args.passthrough_hp)))
    saved = {}
    if args.fuse318_build:
        fuse318 = os.path.join(os.path.abspath(args.fuse318_build), "tierfs", "cli", "tierfs")
        if not os.access(fuse318, os.X_OK):
            raise TableError(f"{fuse318}: not built (scripts/build_libfuse.sh, then meson setup "
                             f"{args.fuse318_build} -Dlibfuse_prefix=PREFIX)")
        # FUSE over io_uring and requests above 1 MiB are kernel-wide switches that only
        # mounts asking for them use; they are restored after the run.
        for path, value in ((URING_PARAM, "Y"), (MAX_PAGES_SYSCTL, "1024")):
            saved[path] = _read(path)
            if not saved[path] or not _write(path, value):
                for done, old in saved.items():
                    if old:
                        _write(done, old)
                raise TableError(f"cannot set {path} to {value} (root, Linux 6.14+)")
        variants.append(Variant("tierfs_318", direct=True, binary=fuse318,
                                mount_options=["io_uring"], max_io="4MiB"))
    jobs_list = [int(j) for j in args.jobs.split(",")]
    size_mib = args.file_mib * max(jobs_list) * 3 + 512
    figures = {}  # workload -> variant -> [(value, load)]
    rings = 0
    try:
        for v in list(variants):
            try:
                # --tmpfs-huge: huge pages in the tmpfs columns as in the kernel path's
                # backing tmpfs at 2 MiB granularity (huge=within_size).
                _mount(v, work, size_mib, args.tmpfs_huge)
            except TableError as e:
                if v.data_path != "kernel":
                    raise
                # A kernel or build without passthrough: the column goes, in one line.
                log(f"tierfs_kpath left out: {e}")
                _unmount(v)
                variants.remove(v)
        if not _has_o_direct(variants[0].dir):
            # Every variant driven as tmpfs is (direct) follows it.
            for v in variants:
                if v.direct and (v.binary is None or v.data_path == "kernel"):
                    v.direct = False
        for jobs in jobs_list:
            for v in variants:
                _lay_out(v, jobs, args)
        rings = _io_uring_fds(variants[-1].server.pid) if args.fuse318_build else 0
        if args.fuse318_build:
            log(f"tierfs_318 serves through {rings} io_uring ring(s)"
                + ("" if rings else ": FUSE over io_uring did not start, /dev/fuse reads instead"))
        for rep in range(args.repeat):
            order = variants[rep % len(variants):] + variants[:rep % len(variants)]
            only = {w for w in args.only.split(",") if w}
            for name, rw, bs, jobs, kind in workloads(jobs_list):
                if only and name not in only:
                    continue
                for v in order:
                    value = _fio(v, name, rw, bs, jobs, kind, args)
                    figures.setdefault(name, {}).setdefault(v.name, []).append(
                        (value, os.getloadavg()[0]))
                log(f"  run {rep + 1}/{args.repeat} {name}: " + ", ".join(
                    f"{v.name} {_describe_figure(name, figures[name][v.name][-1][0])}"
                    for v in variants) + f" (load {os.getloadavg()[0]:.1f})")
            for v in order:
                if only and not only & {"create", "stat"}:
                    break
                got = _metadata(metadata_bin, v, args)
                for phase, value in got.items():
                    figures.setdefault(phase, {}).setdefault(v.name, []).append(
                        (value, os.getloadavg()[0]))
    finally:
        problems = [p for p in (_unmount(v) for v in reversed(variants)) if p]
        for path, value in saved.items():
            _write(path, value)
    if problems:
        raise TableError("; ".join(problems))
    rows = []
    for name, per_fs in figures.items():
        row = {"workload": name, "runs": {fs: [x[0] for x in runs] for fs, runs in per_fs.items()},
               "load": {fs: statistics.median(x[1] for x in runs) for fs, runs in per_fs.items()}}
        row["median"] = {fs: statistics.median(x[0] for x in runs) for fs, runs in per_fs.items()}
        tmpfs = row["median"]["tmpfs"]
        row["to_tmpfs"] = {fs: (m / tmpfs if tmpfs else 0.0) for fs, m in row["median"].items()}
        rows.append(row)
    return {"variants": [v.name for v in variants], "rows": rows,
            "settings": {"tmpfs_o_direct": variants[0].direct, "file_mib": args.file_mib, "runtime_s": args.runtime_s,
                         "repeat": args.repeat, "jobs": jobs_list, "files": args.files,
                         "tierfs_before": args.before_bin,
                         "before_cache": args.before_cache,
                         "only": args.only,
                         "bind_jobs": args.bind_jobs,
                         "tier": "numa:0, 2MiB granularity",
                         "passthrough_hp": args.passthrough_hp,
                         "buffered": args.buffered,
                         "tmpfs_huge": args.tmpfs_huge,
                         "tierfs_318": f"-o io_uring ({rings} rings), max_io 4MiB"
                         if args.fuse318_build else ""}}


def print_table(result, markdown=False):
    variants = result["variants"]
    if markdown:
        print("| workload | " + " | ".join(variants) + " |")
        print("| --- |" + " ---: |" * len(variants))
    else:
        print(f"{'workload':<18}" + "".join(f"{v:>26}" for v in variants))
    for row in result["rows"]:
        cells = []
        for v in variants:
            value, ratio, load = row["median"][v], row["to_tmpfs"][v], row["load"][v]
            text = _describe_figure(row["workload"], value)
            cells.append(text + ("" if v == "tmpfs" else f" ({ratio:.2f}×)") + f" L{load:.0f}")
        if markdown:
            print(f"| {row['workload']} | " + " | ".join(cells) + " |")
        else:
            print(f"{row['workload']:<18}" + "".join(f"{c:>26}" for c in cells))
