"""What layout_sweep.py reports: units, the weightings a layout is measured
with, the best layouts and the plots. Apart so the sweep driver stays about
mounting and fio."""
import math
import os
import subprocess

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
UNITS = {"": 1, "B": 1, "KiB": KIB, "MiB": MIB, "GiB": GIB, "TiB": 1 << 40}
WORKLOADS = {  # name -> (fio rw, title)
    "seqread": ("read", "sequential read"),
    "seqwrite": ("write", "sequential write"),
    "randread": ("randread", "random read"),
    "randwrite": ("randwrite", "random write"),
}
# Writes first: the sequential writer lays out the file the readers then use.
WORKLOAD_ORDER = ["seqwrite", "seqread", "randread", "randwrite"]


def fmt_size(n):
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if n >= UNITS[unit] and n % UNITS[unit] == 0:
            return f"{n // UNITS[unit]}{unit}"
    return f"{n}B"


def fmt_rate(bytes_per_second):
    return f"{bytes_per_second / MIB:,.0f} MiB/s"


def weights_text(weights):
    return ":".join(str(w) for w in weights)


def layout_weights(ways, ratios):
    """The weight vectors a layout of `ways` regions is measured with, equal weights first."""
    out = [(1,) * ways]
    if ways < 2:
        return out
    for ratio in ratios:
        if len(ratio) == 2:
            fast = (ways + 1) // 2
            weights = (ratio[0],) * fast + (ratio[1],) * (ways - fast)
        elif len(ratio) == ways:
            weights = ratio
        else:
            continue
        if len(set(weights)) > 1 and weights not in out:
            out.append(weights)
    return out


def is_weighted(weights):
    return len(set(weights)) > 1


class ReportError(Exception):
    """One line for the user (gnuplot failed)."""


def layout_name(r):
    return f'G={fmt_size(r["granularity_bytes"])} {r["ways"]} way{"s" if r["ways"] > 1 else ""}' + \
        (f' {r["weights"]}' if is_weighted(tuple(map(int, r["weights"].split(":")))) else "")


def best_layouts(records, keep=lambda r: True):
    """The fastest tierfs record per (workload, I/O size) among those `keep` accepts."""
    best = {}
    for r in records:
        if r["fs"] != "tierfs" or not keep(r):
            continue
        key = (r["workload"], r["io_bytes"])
        if key not in best or r["bytes_per_second"] > best[key]["bytes_per_second"]:
            best[key] = r
    return [best[k] for k in sorted(best, key=lambda k: (WORKLOAD_ORDER.index(k[0]), k[1]))]


def weighted_record(r):
    return is_weighted(tuple(map(int, r["weights"].split(":"))))


def series_of(args):
    """One plotted line per (ways, weights), in the order the legend lists them."""
    return [(ways, weights) for ways in args.ways for weights in layout_weights(ways, args.weights)]


def series_title(ways, weights):
    title = f'{ways} way{"s" if ways > 1 else ""}'
    return f"{title}, weights {weights_text(weights)}" if is_weighted(weights) else title


def plot(args, records, tmpfs, out_dir, machine):
    """One PNG per I/O size: a panel per workload and one legend strip under them all."""
    data_dir = os.path.join(out_dir, "plot-data")
    os.makedirs(data_dir, exist_ok=True)
    pngs = []
    series = series_of(args)
    xtics = ", ".join(f'"{fmt_size(g)}" {g}' for g in args.granularities)
    # Lines of one granularity sit a little apart so their error bars do not hide each other.
    dodge = [2 ** (0.08 * (i - (len(series) - 1) / 2)) for i in range(len(series))]
    for io in args.io_sizes:
        png = os.path.join(out_dir, f"throughput-io{fmt_size(io)}.png")
        cols = 2 if len(args.workloads) > 1 else 1
        rows = math.ceil(len(args.workloads) / cols)
        legend_rows = math.ceil((len(series) + 1) / 4)
        panel_px, title_px, legend_px = 420, 40, 24 * legend_rows + 16
        height = rows * panel_px + title_px + legend_px
        legend_h, title_h = legend_px / height, title_px / height
        panel_h = (1 - legend_h - title_h) / rows
        gp = [f'set terminal pngcairo size {640 * cols},{height} font "DejaVu Sans,10"',
              f'set output "{png}"',
              f'set multiplot title "tierfs interleave sweep: I/O size {fmt_size(io)}, file '
              f'{fmt_size(args.file_size)}, fio psync x{args.jobs}, {machine["cpus"]} CPUs, '
              f'{machine["numa_nodes"]} NUMA node(s), Linux {machine["kernel"]}, load '
              f'{machine["load_average_1min"]}\\nerror bars: mean -/+ one standard deviation of '
              f'fio\'s bandwidth samples within the run"',
              "set logscale x 2", f"set xtics ({xtics})",
              f"set xrange [{min(args.granularities) / 1.6}:{max(args.granularities) * 1.6}]",
              'set xlabel "interleave granularity (log scale)"', "set grid", "unset key",
              f"set size {1 / cols},{panel_h}"]
        for index, workload in enumerate(args.workloads):
            base = tmpfs[(workload, io)]
            values = [base]
            lines = []
            for number, (ways, weights) in enumerate(series):
                dat = os.path.join(data_dir, f"{workload}-io{fmt_size(io)}-ways{ways}-"
                                   f"weights{weights_text(weights).replace(':', '-')}.dat")
                with open(dat, "w") as f:
                    f.write("# granularity_bytes(dodged) MiB_per_second low high (mean -/+ stdev)\n")
                    for r in records:
                        if (r["fs"], r["workload"], r["io_bytes"], r["ways"], r["weights"]) == \
                                ("tierfs", workload, io, ways, weights_text(weights)):
                            y, dev = r["bytes_per_second"] / MIB, r["bytes_per_second_stdev"] / MIB
                            values += [y, y + dev]
                            f.write(f'{r["granularity_bytes"] * dodge[number]:.1f} {y:.1f} '
                                    f'{max(y - dev, y * 0.05):.1f} {y + dev:.1f}\n')
                lines.append(f'"{dat}" using 1:2:3:4 with yerrorlines lw 2 pt 7 lt {number + 1}')
            lines.append(f'{base / MIB:.1f} with lines dt 2 lw 2 lc rgb "black"')
            # A log axis only where one would hide the small values: more than 10x between them.
            low = min(v for v in values if v > 0) / MIB if any(v > 0 for v in values) else 1
            log = max(values) / MIB > 10 * low
            gp += [f"set origin {(index % cols) / cols},{legend_h + (rows - 1 - index // cols) * panel_h}",
                   f'set title "{WORKLOADS[workload][1]}"',
                   "set logscale y 10" if log else "unset logscale y",
                   f'set ylabel "throughput (MiB/s{", log scale" if log else ""})"',
                   "set yrange [*:*]" if log else "set yrange [0:*]",
                   "plot " + ", ".join(lines)]
        # The legend: the same line styles, plotted as nothing, in a strip of their own.
        gp += ["set origin 0,0", f"set size 1,{legend_h}", "unset title", "unset logscale",
               "unset xlabel", "unset ylabel", "unset tics", "unset grid", "unset border",
               "set xrange [0:1]", "set yrange [0:1]",
               "set key center center horizontal maxcols 4 samplen 3 width 2 Left reverse",
               "plot " + ", ".join(
                   [f'NaN with linespoints lw 2 pt 7 lt {n + 1} title "{series_title(w, ws)}"'
                    for n, (w, ws) in enumerate(series)] +
                   ['NaN with lines dt 2 lw 2 lc rgb "black" title "tmpfs (mean of 2 passes)"']),
               "unset multiplot"]
        script = os.path.join(data_dir, f"throughput-io{fmt_size(io)}.gp")
        with open(script, "w") as f:
            f.write("\n".join(gp) + "\n")
        run = subprocess.run(["gnuplot", script], capture_output=True, text=True)
        if run.returncode != 0 or not os.path.exists(png):
            raise ReportError(f"gnuplot failed on {script}: {run.stderr.strip().splitlines()[-1:]}")
        pngs.append(png)
    return pngs


def summary_entry(b):
    return {"workload": b["workload"], "io_bytes": b["io_bytes"],
            "granularity_bytes": b["granularity_bytes"], "ways": b["ways"], "weights": b["weights"],
            "bytes_per_second": b["bytes_per_second"], "vs_tmpfs": b["vs_tmpfs"]}


def best_layouts_pick(best, entry):
    """`entry` itself when it is the overall best of its workload, else None."""
    same = all(best[k] == entry[k] for k in ("granularity_bytes", "ways", "weights"))
    return entry if same else None
