#!/usr/bin/env python3
"""`tierfs check-config --json` and `tierfs topology --json` against what the
configuration files and bpf/tierfs_map.h say, computed here independently:
the drivers take these numbers from the command, so the command must be right.

Every file of tests/configs/good whose regions this machine has is checked
(one-node.toml and file-spill.toml need nothing special, so at least two are);
the others must be refused in one line. Exits non-zero on any mismatch."""
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

TIERFS = os.environ["TIERFS_BIN"]
SOURCE = Path(os.environ["TIERFS_SOURCE_ROOT"])
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def size(text):
    m = re.fullmatch(r"(\d+)([A-Za-z]+)", text)
    return int(m.group(1)) * UNITS[m.group(2)]


def run(*args):
    return subprocess.run([TIERFS, *args], capture_output=True, text=True)


def header_constants():
    text = (SOURCE / "bpf/tierfs_map.h").read_text()
    return {k: int(v) for k, v in re.findall(r"#define (TIERFS_\w+) (\d+)\b", text)}


topology = json.loads(run("topology", "--json").stdout)
nodes = {n["id"] for n in topology["nodes"]}
dax = {d["path"]: d for d in topology["dax_devices"] if d["mode"] == "devdax"}

# Limits come from the one mapping header.
c = header_constants()
check(topology["limits"] == {
    "min_granularity_bytes": 1 << c["TIERFS_MIN_GRANULARITY_SHIFT"],
    "max_granularity_bytes": 1 << c["TIERFS_MAX_GRANULARITY_SHIFT"],
    "max_ways": c["TIERFS_MAX_WAYS"],
    "max_weight": c["TIERFS_MAX_WEIGHT"],
}, f"topology limits {topology['limits']}")
check(topology["limits"]["min_granularity_bytes"] == 4096, "min granularity is 4KiB")


def region_of(entry):
    if isinstance(entry, str):
        return entry, 0
    return entry["region"], size(entry.get("offset", "0B"))


def available(spec):
    kind, _, rest = spec.partition(":")
    if kind == "numa":
        return int(rest) in nodes
    if kind == "dax":
        return rest in dax
    return True  # file regions of the good corpus are created at mount


def expected_tier(tier):
    regions = [region_of(r) for r in tier["regions"]]
    gran = size(tier.get("granularity", "2MiB"))
    weights = tier.get("weights", [1] * len(regions))
    row = sum(weights) * gran
    if "size" in tier:
        rows = size(tier["size"]) // row
    else:  # sized by the smallest device
        rows = min((dax[s[4:]]["size_bytes"] - off) // (w * gran)
                   for (s, off), w in zip(regions, weights))
    return {
        "name": tier["name"], "granularity_bytes": gran, "ways": len(regions),
        "weights": weights, "row_bytes": row, "rows": rows, "capacity_bytes": rows * row,
        "regions": [{"spec": s, "offset_bytes": off, "bytes": rows * w * gran}
                    for (s, off), w in zip(regions, weights)],
    }


checked = 0
for path in sorted((SOURCE / "tests/configs/good").glob("*.toml")):
    config = tomllib.loads(path.read_text())
    result = run("check-config", str(path), "--json")
    specs = [region_of(r)[0] for t in config["tier"] for r in t["regions"]]
    if not all(available(s) for s in specs):
        check(result.returncode != 0 and len(result.stderr.splitlines()) == 1,
              f"{path.name}: refused in one line on a machine without its regions")
        print(f"{path.name}: not on this machine ({result.stderr.strip()})")
        continue
    check(result.returncode == 0, f"{path.name}: exit {result.returncode}: {result.stderr}")
    if result.returncode != 0:
        continue
    doc = json.loads(result.stdout)
    # The data path is resolved against this machine's kernel (test_data_path
    # checks the decision); here: every tier names one, with a reason, and a
    # tier that is not all numa: regions is never on the kernel path.
    for tier_doc, tier_cfg in zip(doc["tiers"], config["tier"]):
        path_name = tier_doc.pop("data_path", None)
        reason = tier_doc.pop("data_path_reason", "")
        check(path_name in ("server", "kernel") and reason,
              f"{path.name}: tier {tier_doc['name']}: data path {path_name!r} ({reason!r})")
        regions = [r if isinstance(r, str) else r["region"] for r in tier_cfg["regions"]]
        if not all(r.startswith("numa:") for r in regions):
            check(path_name == "server", f"{path.name}: {tier_doc['name']} is not numa-only")
    expected = {
        "source": str(path),
        "tiers": [expected_tier(t) for t in config["tier"]],
        "default_tier": config.get("defaults", {}).get("tier", config["tier"][0]["name"]),
    }
    check(doc == expected, f"{path.name}:\n got      {doc}\n expected {expected}")
    # Without --json the output is the effective TOML, as before.
    plain = run("check-config", str(path))
    check(plain.stdout.startswith("# tierfs effective configuration of "),
          f"{path.name}: text output changed")
    checked += 1
check(checked >= 2, f"only {checked} good configurations checked")

# The built-in default: whole rows over every node, each region its share.
result = run("check-config", "--default", "--json")
check(result.returncode == 0, f"--default: {result.stderr}")
doc = json.loads(result.stdout)
check(doc["source"] == "<built-in default>", "default source")
(tier,) = doc["tiers"]
check(tier["name"] == doc["default_tier"], "default tier is the only tier")
check([r["spec"] for r in tier["regions"]] == [f"numa:{n['id']}" for n in topology["nodes"]][:32],
      "default regions are the nodes")
check(tier["row_bytes"] == sum(tier["weights"]) * tier["granularity_bytes"], "default row bytes")
check(tier["capacity_bytes"] == tier["rows"] * tier["row_bytes"] > 0, "default capacity")
check(sum(r["bytes"] for r in tier["regions"]) == tier["capacity_bytes"], "default region bytes")

# A bad configuration: the same one line as without --json, nothing on stdout.
bad = SOURCE / "tests/configs/bad/01-syntax-error.toml"
expect = bad.read_text().splitlines()[0].removeprefix("# expect: ")
result = run("check-config", str(bad), "--json")
check(result.returncode != 0 and result.stdout == "", "bad config: non-zero exit, no stdout")
check(result.stderr == f"{bad}:{expect}\n", f"bad config stderr: {result.stderr!r}")

# Neither FILE nor --default is a usage error, as is both.
check(run("check-config", "--json").returncode != 0, "check-config without FILE")
check(run("check-config", str(bad), "--default").returncode != 0, "FILE and --default")

print(f"{checked} good configurations checked; {len(failures)} failures")
sys.exit(1 if failures else 0)
