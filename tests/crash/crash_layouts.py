"""The crash test's layouts (crash_test.py): TOML per layout, the tiers that
moves may name in each, and each layout's share of the iterations."""


def layouts(tmp, numa_ok, kernel_ok=False):
    """name -> TOML text. file: regions live under tmp; numa: ones need adoption (MountState);
    kernel-path ones FUSE passthrough (crash_kernel.kernel_refusal)."""
    r = lambda name: f'"file:{tmp}/regions/{name}"'  # noqa: E731
    out = {
        "file-2way": f"""[[tier]]
name = "spill"
regions = [{r('a0')}, {r('a1')}]
size = "32MiB"
granularity = "64KiB"
create = true
""",
        "file-3way-weighted": f"""[[tier]]
name = "spill"
regions = [{r('b0')}, {r('b1')}, {r('b2')}]
size = "24MiB"
granularity = "16KiB"
weights = [2, 1, 1]
create = true
""",
        "file-1way": f"""[[tier]]
name = "spill"
regions = [{r('c0')}]
size = "32MiB"
granularity = "4KiB"
create = true
""",
    }
    # Re-striping: two tiers carved from one region file (4 KiB units 2:1 and
    # 64 KiB units), and a third file; moves go between all three.
    out["file-restripe"] = f"""[[tier]]
name = "wide"
regions = [{r('p0')}, {{ region = {r('p0')}, offset = "8MiB" }}]
size = "12MiB"
granularity = "4KiB"
weights = [2, 1]
create = true

[[tier]]
name = "narrow"
regions = [{{ region = {r('p0')}, offset = "16MiB" }}]
size = "16MiB"
granularity = "64KiB"
create = true

[[tier]]
name = "spill"
regions = [{r('q0')}, {r('q1')}]
size = "16MiB"
granularity = "16KiB"
create = true
"""
    # The mover at work when the kill lands: a fast tier past its high mark
    # almost always (demotes), under its low mark often (promotes what the
    # comparison after each remount read), copies slowed by the rate limit so
    # that timer kills land inside them and writes to the file meet them.
    out["file-mover"] = f"""[mover]
rate = "2MiB"
interval_ms = 10
promote_reads = 1

[[tier]]
name = "fast"
regions = [{r('m0')}]
size = "16MiB"
granularity = "4KiB"
high_watermark = 3
low_watermark = 1
create = true

[[tier]]
name = "slow"
regions = [{r('n0')}, {r('n1')}]
size = "32MiB"
granularity = "64KiB"
create = true
"""
    if numa_ok:
        out["numa-1way"] = """[[tier]]
name = "dram"
regions = ["numa:0"]
size = "16MiB"
granularity = "4KiB"
"""
        out["numa+file-weighted"] = f"""[[tier]]
name = "dram"
regions = ["numa:0"]
size = "16MiB"
granularity = "4KiB"

[[tier]]
name = "spill"
regions = [{r('e0')}, {r('e1')}]
size = "32MiB"
granularity = "32KiB"
weights = [3, 1]
create = true

[[placement]]
path = "/d1/*"
tier = "spill"
"""
    if kernel_ok:
        out.update(kernel_layouts(r))
    for name in out:
        out[name] = f'[mount]\ncache = "none"\nstate_dir = "{tmp}/state-{name}"\n\n' + out[name]
    return out


def kernel_tier(name, size="16MiB"):
    return f"""[[tier]]
name = "{name}"
regions = ["numa:0"]
size = "{size}"
granularity = "4KiB"
data_path = "kernel"
"""


def kernel_layouts(r):
    """The kernel data path: one kernel-path tier alone; two kernel-path tiers
    sharing a tmpfs (moves between them in place) over a server-path tier
    (moves by copy, both ways), with /d1 placed on the server path. Every
    tier names its data path: the default may change."""
    return {
        "kernel-1way": kernel_tier("k", "32MiB"),
        "kernel-tiered": kernel_tier("k1") + "\n" + kernel_tier("k2") + f"""
[[tier]]
name = "spill"
regions = [{r('s0')}, {r('s1')}]
size = "32MiB"
granularity = "16KiB"
data_path = "server"
create = true

[[placement]]
path = "/d1/*"
tier = "spill"
""",
    }


# Layouts on the kernel path (crash_kernel.py: their crash points, mmap
# writes, the backing store checked after each remount).
KERNEL = ("kernel-1way", "kernel-tiered")

# The tiers a `migrate` operation may name, per layout (none: no migrations).
TIERS = {
    "file-restripe": ["wide", "narrow", "spill"],
    "file-mover": ["fast", "slow"],
    "numa+file-weighted": ["dram", "spill"],
    "kernel-tiered": ["k1", "k2", "spill"],
}
# Share of the iterations per layout: the multi-tier ones, where migrations
# run, take twice the share of the others.
SHARE = {name: 2 for name in TIERS}
