#!/usr/bin/env python3
"""Smoke run of a Google Benchmark program: every registered benchmark runs
once with a tiny minimum time, and the JSON it writes must list each of them
with a positive COUNTER (bytes_per_second, items_per_second) and no error.
Proves the program runs and reports, not how fast anything is.

usage: smoke_gbench.py COUNTER PROGRAM [ARGS...]
"""
import json
import subprocess
import sys
import tempfile


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) < 3:
        fail("usage: smoke_gbench.py COUNTER PROGRAM [ARGS...]")
    counter, program = sys.argv[1], sys.argv[2:]
    listed = subprocess.run(program + ["--benchmark_list_tests=true"], check=True,
                            capture_output=True, text=True).stdout.split()
    if not listed:
        fail(f"{program[0]} registers no benchmarks")
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        run = subprocess.run(program + ["--benchmark_min_time=0.001",
                                        f"--benchmark_out={out.name}",
                                        "--benchmark_out_format=json"],
                             capture_output=True, text=True)
        if run.returncode != 0:
            fail(f"{program[0]} exited with {run.returncode}: {run.stderr.strip()}")
        with open(out.name) as f:
            report = json.load(f)
    results = report.get("benchmarks", [])
    ran = {r["run_name"] for r in results}
    missing = [name for name in listed if name not in ran]
    if missing:
        fail(f"{len(missing)} benchmarks did not report, first {missing[0]}")
    for r in results:
        if r.get("error_occurred"):
            fail(f"{r['name']}: {r.get('error_message')}")
        if not r.get(counter, 0) > 0:
            fail(f"{r['name']}: no positive {counter}")
    print(f"ok: {len(listed)} benchmarks of {program[0]} reported {counter}")


if __name__ == "__main__":
    main()
