#!/usr/bin/env bash
# What one create costs (docs/benchmarks.md, "Creates on the kernel path:
# what each costs"): N `open(O_CREAT|O_EXCL) + close` of new names on a
# tmpfs, on a tierfs mount whose one numa:0 tier is on the server path and on
# one whose tier is on the kernel path (cache = "none", as the default). Per
# tierfs mount it prints the create time and rate, the FUSE requests per
# create (the server's own counters, `tierfs stats --json`), the time of one
# bare round trip (statx with AT_STATX_FORCE_SYNC on the mount's root: one
# GETATTR each, tmpfs's statx subtracted), the server's CPU time and context
# switches per create, and with strace installed the server's system calls
# per create (strace -c -f during another N creates; strace slows everything,
# so that run is not timed). Every figure is the median of REPEAT rounds
# (default 3) in which the mounts take turns.
# CREATE_COST_EXTRA=1 adds two kernel-path mounts that show what a guarantee
# costs: sandbox = false (no capability raised and lowered around the backing
# ioctls) and default_permissions = false (the kernel then asks no GETATTR of
# the parent; the server checks no permissions, so only for measuring).
# CREATE_COST_URING=1 adds each tierfs mount again with FUSE over io_uring:
# fuse.enable_uring is set to Y for its mount only (the kernel reads it at
# FUSE_INIT; tierfs's io_uring = "auto" then takes the rings) and restored.
# CREATE_COST_PIN=1 adds the kernel-path mount twice more with the caller on
# CPU 0 and every server thread on CPU 0, then on CPU 1: what a round trip
# costs when the server runs where the caller waits, and when it must be
# woken on another CPU.
# Usage: bench/create_cost.sh [TIERFS_BINARY] [N] [OTHER_TIERFS_BINARY]
#   (root and /dev/fuse; N defaults to 5000). With OTHER_TIERFS_BINARY both
#   binaries take turns on the same rows (a change's before and after).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "${TIERFS_SOURCE_ROOT:-$here/..}/tests/support/privileged.sh"
tierfs_require "$(tierfs_missing_root)"
tierfs_require "$(tierfs_missing_fuse)"
bin=$(realpath "${1:-$here/../build/tierfs/cli/tierfs}")
count=${2:-5000}
others=()
[ -n "${3:-}" ] && others=("$(realpath "$3")")
work=$(mktemp -d /tmp/tierfs-create-cost-XXXXXX)
cleanup() {
  for m in "$work"/mnt-*; do
    [ -d "$m" ] && { umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
  done
  rm -rf "$work"
}
trap cleanup EXIT
python3 - "$work" "$count" "$bin" "${others[@]}" <<'PY'
import ctypes, json, os, shutil, statistics, subprocess, sys, time

work, n, binaries = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, AT_STATX_FORCE_SYNC, STATX_BASIC_STATS = -100, 0x2000, 0x7FF


def creates(directory, tag):
    """Seconds per open(O_CREAT|O_EXCL)+close of `n` new names."""
    start = time.perf_counter()
    for i in range(n):
        os.close(os.open(f"{directory}/{tag}{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    return (time.perf_counter() - start) / n


def round_trip(path):
    """Seconds per statx(AT_STATX_FORCE_SYNC): on FUSE one GETATTR each."""
    buf = ctypes.create_string_buffer(256)
    start = time.perf_counter()
    for _ in range(n):
        if libc.statx(AT_FDCWD, path.encode(), AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, buf):
            raise OSError(ctypes.get_errno(), f"statx {path}")
    return (time.perf_counter() - start) / n


def server_pid(config):
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.fsencode(config) in argv and b"mount" in argv:
            return int(name)
    raise SystemExit(f"no server for {config}")


def cpu_and_switches(pid):
    ticks = switches = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
        with open(f"/proc/{pid}/task/{task}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")):
                    switches += int(line.split()[1])
    return ticks / os.sysconf("SC_CLK_TCK"), switches


def ops(binary, mnt):
    out = subprocess.run([binary, "stats", "--json", mnt], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)["ops"]


URING = "/sys/module/fuse/parameters/enable_uring"


def set_uring(value):
    with open(URING, "w") as f:
        f.write(value)


def mount(binary, label, data_path, extra, uring):
    mnt = f"{work}/mnt-{label}"
    os.mkdir(mnt)
    config = f"{work}/{label}.toml"
    with open(config, "w") as f:
        f.write(f'[mount]\nstate_dir = "{work}/state-{label}"\ncache = "none"\n{extra}\n'
                f'[[tier]]\nname = "dram"\nregions = ["numa:0"]\nsize = "512MiB"\n'
                f'granularity = "2MiB"\ndata_path = "{data_path}"\n\n[defaults]\ntier = "dram"\n')
    old = open(URING).read().strip()
    if uring:
        set_uring("Y")
    try:
        subprocess.run([binary, "mount", "--config", config, mnt], check=True)
    finally:
        set_uring(old)
    return mnt, server_pid(config)


def pin(pid, cpus):
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), cpus)


def measure_tierfs(binary, label, data_path, extra, uring, server_cpu, trace):
    mnt, pid = mount(binary, label, data_path, extra, uring)
    everywhere = os.sched_getaffinity(0)
    if server_cpu is not None:
        # Threads libfuse starts later inherit the affinity of the thread that starts them.
        pin(pid, {server_cpu})
        os.sched_setaffinity(0, {0})
    os.mkdir(f"{mnt}/warm")
    creates(f"{mnt}/warm", "w")  # the first requests start threads and fault pages in
    os.mkdir(f"{mnt}/d")
    before_ops, (before_cpu, before_sw) = ops(binary, mnt), cpu_and_switches(pid)
    per_create = creates(f"{mnt}/d", "f")
    after_cpu, after_sw = cpu_and_switches(pid)
    after_ops = ops(binary, mnt)
    requests = {k: (after_ops[k] - before_ops[k]) / n for k in after_ops
                if after_ops[k] - before_ops[k] >= n / 100}
    rings = sum(os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[io_uring]"
                for fd in os.listdir(f"/proc/{pid}/fd"))
    row = {"create_us": per_create * 1e6, "requests": requests, "rings": rings,
           "round_trip_us": round_trip(mnt) * 1e6,
           "server_cpu_us": (after_cpu - before_cpu) / n * 1e6,
           "server_switches": (after_sw - before_sw) / n}
    if trace and shutil.which("strace"):
        os.mkdir(f"{mnt}/s")
        out = f"{work}/strace-{label}.txt"
        tracer = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(pid)],
                                  stderr=subprocess.DEVNULL)
        time.sleep(1)
        creates(f"{mnt}/s", "s")
        time.sleep(0.3)
        tracer.terminate()
        tracer.wait()
        calls = {}
        with open(out) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                    calls[parts[-1]] = int(parts[3]) / n
        row["syscalls"] = dict(sorted(calls.items(), key=lambda kv: -kv[1]))
    os.sched_setaffinity(0, everywhere)
    subprocess.run(["umount", mnt], check=True)
    time.sleep(0.5)
    shutil.rmtree(mnt, ignore_errors=True)
    return row


def tmpfs_round():
    tmpfs = f"{work}/mnt-tmpfs"
    os.mkdir(tmpfs)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", tmpfs], check=True)
    os.mkdir(f"{tmpfs}/d")
    row = {"create_us": creates(f"{tmpfs}/d", "f") * 1e6, "statx_us": round_trip(tmpfs) * 1e6}
    subprocess.run(["umount", tmpfs], check=True)
    os.rmdir(tmpfs)
    return row


variants = []  # (name, binary, data_path, extra [mount] lines, io_uring, server CPU)
for uring in (False, True) if os.environ.get("CREATE_COST_URING") == "1" else (False,):
    for data_path in ("server", "kernel"):
        for k, binary in enumerate(binaries):
            tag = f" [{k}: {binary}]" if len(binaries) > 1 else ""
            tag += ", io_uring" if uring else ""
            variants.append((f"tierfs {data_path} path{tag}", binary, data_path, "", uring, None))
if os.environ.get("CREATE_COST_EXTRA") == "1":
    variants.append(("tierfs kernel path, sandbox = false", binaries[0], "kernel",
                     "sandbox = false", False, None))
    variants.append(("tierfs kernel path, default_permissions = false", binaries[0], "kernel",
                     "default_permissions = false", False, None))
if os.environ.get("CREATE_COST_PIN") == "1" and os.cpu_count() >= 2:
    for cpu in (0, 1):
        where = "the caller's CPU" if cpu == 0 else "another CPU"
        variants.append((f"tierfs kernel path, caller on CPU 0, server on {where}", binaries[0],
                         "kernel", "", False, cpu))
repeat = int(os.environ.get("REPEAT", "3"))
tmpfs_rows, rows, loads = [], {v[0]: [] for v in variants}, []
for r in range(repeat):
    loads.append(os.getloadavg()[0])
    tmpfs_rows.append(tmpfs_round())
    turn = variants[r % len(variants):] + variants[:r % len(variants)]
    for i, (name, binary, data_path, extra, uring, cpu) in enumerate(turn):
        rows[name].append(measure_tierfs(binary, f"v{r}-{i}", data_path, extra, uring, cpu,
                                         trace=r == 0 and cpu is None))
    print(f"round {r + 1}/{repeat} done", file=sys.stderr, flush=True)

med = statistics.median
tmpfs_us = med(x["create_us"] for x in tmpfs_rows)
statx_us = med(x["statx_us"] for x in tmpfs_rows)
print(f"N = {n}, median of {repeat} rounds, load {min(loads):.1f}-{max(loads):.1f}, "
      f"{os.cpu_count()} CPUs, fuse.enable_uring {open(URING).read().strip()} "
      f"(outside the io_uring rows)")
print(f"tmpfs: create {tmpfs_us:.1f} µs ({1e3 / tmpfs_us:.0f}k/s), statx {statx_us:.1f} µs")
for name, *_ in variants:
    got = rows[name]
    create_us = med(x["create_us"] for x in got)
    rt_us = med(x["round_trip_us"] for x in got) - statx_us
    requests = got[0]["requests"]
    waited = sum(v for op, v in requests.items() if op not in ("release", "forget"))
    print(f"{name}: create {create_us:.1f} µs ({1e3 / create_us:.1f}k/s, "
          f"{tmpfs_us / create_us:.3f}x tmpfs)"
          + (f", {got[0]['rings']} io_uring rings" if got[0]["rings"] else ""))
    print("  requests per create: " + ", ".join(f"{op} {v:.2f}" for op, v in requests.items())
          + f" ({waited:.2f} the caller waits for)")
    print(f"  one round trip {rt_us:.1f} µs; {waited:.0f} of them {waited * rt_us:.1f} µs, "
          f"the rest {create_us - waited * rt_us:.1f} µs")
    print(f"  server CPU {med(x['server_cpu_us'] for x in got):.1f} µs and "
          f"{med(x['server_switches'] for x in got):.2f} context switches per create")
    if "syscalls" in got[0]:
        calls = got[0]["syscalls"]
        print(f"  server system calls per create ({sum(calls.values()):.1f}): "
              + ", ".join(f"{c} {v:.2f}" for c, v in calls.items() if v >= 0.05))
PY
