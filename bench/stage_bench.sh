#!/usr/bin/env bash
# Staging throughput and job start/stop latency (docs/benchmarks.md, "Per-job
# scratch and staging"). Stages out of a tierfs job mount to the local disk:
# 1 GiB in one file and 1 GiB in 10 000 files, with `tierfs stage out` (with
# and without the read-back check), `cp -a` and `rsync -a` in the same run; then times the shipped prolog and
# epilog (examples/slurm/) for an empty and a 1 GiB scratch. Needs root and
# /dev/fuse. Usage: bench/stage_bench.sh [--smoke] [--out FILE.json]
set -euo pipefail
: "${TIERFS_BIN:?path of the tierfs binary}" "${TIERFS_SOURCE_ROOT:?the source tree}"
smoke=0
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --out) out="$2"; shift ;;
    *) echo "stage_bench: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
if [ "$smoke" = 1 ]; then big_mib=8 nfiles=100; else big_mib=1024 nfiles=10000; fi
small_bytes=$((big_mib * 1048576 / nfiles))

D=$(mktemp -d /tmp/tierfs-stage-bench.XXXXXX)
export SLURM_JOB_ID=bench$$ SLURM_JOB_UID=0 SLURM_JOB_GID=0
finish() {
  "$TIERFS_BIN" job --node-config "$D/node.toml" stop >/dev/null 2>&1 || true
  rm -rf "$D"
}
trap finish EXIT
# Rows of 64 KiB: 10 000 files of 105 KB would take 2 MiB rows each otherwise.
cat >"$D/scratch.toml" <<TOML
[[tier]]
name = "dram"
regions = ["numa:0"]
granularity = "64KiB"
size = "1GiB"                 # replaced by the job's size
TOML
cat >"$D/node.toml" <<TOML
[job]
base = "$D/scratch"
state_dir = "$D/run"
config = "$D/scratch.toml"
default_size = "$((big_mib * 3 + 256))MiB"
TOML
mkdir -p "$D/scripts"
for s in prolog epilog; do ln -s "$TIERFS_SOURCE_ROOT/examples/slurm/$s.sh" "$D/scripts/$s.sh"; done
printf 'TIERFS=%s\nTIERFS_NODE_CONFIG=%s\n' "$TIERFS_BIN" "$D/node.toml" >"$D/scripts/tierfs-slurm.env"

now() { date +%s.%N; }
elapsed() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.3f", a - b }'; }
results=()
record() { results+=("{\"what\": \"$1\", \"tool\": \"$2\", \"seconds\": $3}"); printf '%-28s %-18s %8.3f s\n' "$1" "$2" "$3"; }

# Latency of the shipped prolog + epilog (no slurmctld here: scontrol finds no
# job, so the node's default size is used).
for fill in empty "${big_mib}MiB"; do
  t=$(now); "$D/scripts/prolog.sh"; start_s=$(elapsed "$t")
  grep -q " $D/scratch/$SLURM_JOB_ID " /proc/self/mountinfo || { echo "prolog did not mount" >&2; exit 1; }
  [ "$fill" = empty ] || dd if=/dev/urandom of="$D/scratch/$SLURM_JOB_ID/f" bs=1M count="$big_mib" status=none
  t=$(now); "$D/scripts/epilog.sh"; stop_s=$(elapsed "$t")
  record "prolog ($fill scratch)" "prolog.sh" "$start_s"
  record "epilog ($fill scratch)" "epilog.sh" "$stop_s"
done

"$TIERFS_BIN" job --node-config "$D/node.toml" start >/dev/null
S="$D/scratch/$SLURM_JOB_ID"
mkdir "$S/one" "$S/many"
dd if=/dev/urandom of="$S/one/big" bs=1M count="$big_mib" status=none
head -c "$small_bytes" /dev/urandom >"$D/small"
for d in $(seq 0 99); do
  mkdir "$S/many/d$d"
  for i in $(seq 0 $((nfiles / 100 - 1))); do cp "$D/small" "$S/many/d$d/f$i"; done
done

for set in one many; do
  label="$big_mib MiB in 1 file"
  [ "$set" = many ] && label="$big_mib MiB in $nfiles files"
  for tool in tierfs tierfs-no-verify cp rsync; do
    rm -rf "$D/dest"
    sync
    t=$(now)
    case $tool in
      tierfs) "$TIERFS_BIN" stage out --no-progress "$S/$set" "$D/dest" >/dev/null ;;
      tierfs-no-verify) "$TIERFS_BIN" stage out --no-progress --no-verify "$S/$set" "$D/dest" >/dev/null ;;
      cp) cp -a "$S/$set" "$D/dest" ;;
      rsync) rsync -a "$S/$set/" "$D/dest/" ;;
    esac
    record "$label" "$tool" "$(elapsed "$t")"
  done
done
rm -rf "$D/dest"
if [ -n "$out" ]; then
  (IFS=,; echo "{\"big_mib\": $big_mib, \"files\": $nfiles, \"results\": [${results[*]}]}") >"$out"
fi
