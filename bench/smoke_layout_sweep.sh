#!/usr/bin/env bash
# Smoke run of bench/layout_sweep.py (about 20 s): bad flags get one line and
# a non-zero exit; a tiny sweep (one granularity, 1 and 2 ways, 2 ways also
# weighted 2:1, 4MiB files, 0.2 s per fio job) writes a well-formed CSV with
# the weighted rows, JSON and PNG; an interrupted
# sweep exits 130 and leaves no mount and no file behind. Proves the driver
# works, not how fast anything is.
set -euo pipefail
source "${TIERFS_SOURCE_ROOT:?}/tests/support/privileged.sh"
tierfs_require "$(tierfs_missing_root)"
tierfs_require "$(tierfs_missing_fuse)"
: "${TIERFS_BIN:?TIERFS_BIN must name the tierfs binary}"

SWEEP=("${PYTHON:-python3}" "$TIERFS_SOURCE_ROOT/bench/layout_sweep.py" --tierfs "$TIERFS_BIN")
OUT=$(mktemp -d /tmp/tierfs-sweep-smoke-XXXXXX)
export TIERFS_SWEEP_SHM_DIR
TIERFS_SWEEP_SHM_DIR=$(mktemp -d /dev/shm/tierfs-sweep-smoke-XXXXXX)
export TMPDIR="$OUT/tmp"  # the sweep's work directory and mount point land here
mkdir -p "$TMPDIR"
SWEEP_PID=
cleanup() {
  if [ -n "$SWEEP_PID" ]; then kill "$SWEEP_PID" 2>/dev/null || true; fi
  grep -o " $OUT[^ ]*" /proc/mounts | while read -r m; do umount -l "$m" || true; done || true
  rm -rf "$OUT" "$TIERFS_SWEEP_SHM_DIR"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

nothing_left() {
  ! grep -q " $OUT" /proc/mounts || fail "$1: a mount under $OUT is left"
  [ -z "$(ls -A "$TIERFS_SWEEP_SHM_DIR")" ] || fail "$1: files left in $TIERFS_SWEEP_SHM_DIR"
  [ -z "$(ls -A "$TMPDIR")" ] || fail "$1: the work directory $TMPDIR/$(ls "$TMPDIR") is left"
}

# Bad flags: exactly one line on stderr, a non-zero exit, nothing mounted.
for bad in "--ways 0" "--ways 1,x" "--granularities 3KiB" "--granularities 2GiB" \
           "--io-sizes 1000" "--file-size 4KiB --io-sizes 64KiB" "--runtime -1" \
           "--workloads seqread,backwards" "--jobs 0" "--frobnicate" "--weights 2" \
           "--weights 0:1" "--weights 3:2:1"; do
  # shellcheck disable=SC2086
  if "${SWEEP[@]}" $bad --out "$OUT/bad" >"$OUT/stdout" 2>"$OUT/stderr"; then
    fail "$bad was accepted"
  fi
  [ "$(wc -l <"$OUT/stderr")" -eq 1 ] || fail "$bad: expected one line, got: $(cat "$OUT/stderr")"
  grep -q "^layout_sweep: " "$OUT/stderr" || fail "$bad: $(cat "$OUT/stderr")"
done
echo "ok: 13 bad flags refused with one line each"

# A tiny sweep: 4 workloads on tmpfs (twice: before and after) and on 3 layouts (1 way;
# 2 ways equal and weighted 2:1) = 20 fio jobs.
"${SWEEP[@]}" --granularities 64KiB --ways 1,2 --weights 2:1 --io-sizes 64KiB --file-size 4MiB \
  --runtime 0.2 --out "$OUT/res" >"$OUT/log" 2>&1 || fail "the sweep failed: $(tail -3 "$OUT/log")"
grep -q '^\[ *20/20' "$OUT/log" || fail "no progress line for the last job: $(cat "$OUT/log")"
grep -q "best unweighted and weighted layout per workload" "$OUT/log" ||
  fail "no summary: $(cat "$OUT/log")"
grep -q "^    weighted    G=64KiB 2 ways 2:1 " "$OUT/log" || fail "no best weighted layout: $(cat "$OUT/log")"
nothing_left "after a complete sweep"
"${PYTHON:-python3}" - "$OUT/res" <<'EOF'
import csv, json, os, struct, sys
out = sys.argv[1]
def fail(m): sys.exit(f"FAIL: {m}")
with open(os.path.join(out, "results.csv")) as f:
    rows = list(csv.DictReader(f))
if len(rows) != 20: fail(f"results.csv has {len(rows)} rows, expected 20")
if sorted(r["baseline_pass"] for r in rows if r["fs"] == "tmpfs") != ["end"] * 4 + ["start"] * 4:
    fail("results.csv lacks a tmpfs pass before or after the layouts")
if sorted({r["fs"] for r in rows}) != ["tierfs", "tmpfs"]: fail("results.csv lacks tmpfs or tierfs")
if any(float(r["bytes_per_second"]) <= 0 for r in rows): fail("a zero throughput in results.csv")
layouts = {(r["ways"], r["weights"], r["granularity_bytes"]) for r in rows if r["fs"] == "tierfs"}
if layouts != {("1", "1", "65536"), ("2", "1:1", "65536"), ("2", "2:1", "65536")}:
    fail(f"results.csv has the wrong layouts: {sorted(layouts)}")
if sum(r["weights"] == "2:1" for r in rows) != 4: fail("results.csv lacks the weighted rows")
if any(float(r["bytes_per_second_stdev"]) < 0 for r in rows): fail("a negative error bar")
with open(os.path.join(out, "results.json")) as f:
    doc = json.load(f)
if len(doc["results"]) != 20: fail("results.json has the wrong number of results")
for kind, weighted in (("best_unweighted", False), ("best_weighted", True)):
    if len(doc[kind]) != 4 or any((b["weights"] == "2:1") != weighted for b in doc[kind]):
        fail(f"results.json: {kind} is {doc[kind]}")
if len(doc["best"]) != 4: fail(f"results.json names {len(doc['best'])} best layouts, expected 4")
for b in doc["best"]:
    if not b["vs_tmpfs"] > 0 or b["ways"] not in (1, 2): fail(f"bad best entry {b}")
png = os.path.join(out, "throughput-io64KiB.png")
with open(png, "rb") as f:
    head = f.read(24)
if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR": fail(f"{png} is not a PNG")
width, height = struct.unpack(">II", head[16:24])
if width < 400 or height < 300 or os.path.getsize(png) < 5000: fail(f"{png} is {width}x{height}, empty?")
print(f"ok: results.csv and results.json with 20 results (4 weighted), {png} {width}x{height}")
EOF

# Interrupted while a layout is mounted: exit 130, unmounted, nothing left.
"${SWEEP[@]}" --granularities 64KiB --ways 1 --io-sizes 64KiB --file-size 4MiB \
  --workloads seqread --runtime 3 --out "$OUT/int" >"$OUT/int.log" 2>&1 &
SWEEP_PID=$!
for _ in $(seq 1 300); do
  grep -q " $OUT" /proc/mounts && break
  sleep 0.1
done
grep -q " $OUT" /proc/mounts || fail "the interrupted sweep never mounted: $(cat "$OUT/int.log")"
kill -INT "$SWEEP_PID"
status=0
wait "$SWEEP_PID" || status=$?
SWEEP_PID=
[ "$status" -eq 130 ] || fail "an interrupted sweep exited with $status: $(tail -3 "$OUT/int.log")"
nothing_left "after Ctrl-C"
# fio's jobs must not outlive the sweep (forked jobs of a killed fio once did).
for _ in $(seq 1 50); do
  pgrep -f -- "--directory=$OUT/" >/dev/null || break
  sleep 0.1
done
if pgrep -f -- "--directory=$OUT/" >/dev/null; then
  leftover=$(pgrep -af -- "--directory=$OUT/")
  pkill -9 -f -- "--directory=$OUT/" || true
  fail "fio outlived the interrupted sweep: $leftover"
fi
echo "ok: Ctrl-C unmounted, stopped fio and cleaned up"
