#!/usr/bin/env bash
# The multi-node figures of docs/operations.md ("Job-wide scratch"), all in
# one run on the three-node cluster of the multi-node Slurm suite
# (tests/slurm/multinode_cluster.sh: three slurmd in network namespaces of
# one machine, the shipped scripts of examples/slurm/):
#   1. fio on n1 of one `-N 3 --constraint=tierfs_shared` job: 1 MiB and
#      4 KiB sequential writes and reads on tmpfs (/dev/shm), the node's
#      tierfs scratch ($TIERFS_SCRATCH) and the job-wide MooseFS scratch
#      ($TIERFS_SHARED, goal 2)
#   2. prolog and epilog time for -N 1, -N 3 and -N 3 with job-wide scratch,
#      two jobs each: from sbatch to the script's first line and from its
#      last line to every node idle, and each node's `tierfs job start` and
#      `stop` alone (timed by a wrapper around tierfs)
#   3. stage-out of 1 GiB from 3 nodes: one `tierfs stage out` per node of
#      its third into one directory on the local disk, against `cp -r` of
#      the same files in the same job
# Needs root, /dev/fuse, Slurm, MooseFS, fio and iproute2 (as the suite).
# Takes three to six minutes. Usage (from the source tree, after a build):
#   TIERFS_BIN=build/tierfs/cli/tierfs TIERFS_SOURCE_ROOT=. bench/multinode_figures.sh
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${TIERFS_BIN:?path of the tierfs binary}" "${TIERFS_SOURCE_ROOT:?the source tree}"
TIERFS_BIN=$(realpath "$TIERFS_BIN")
TIERFS_SOURCE_ROOT=$(realpath "$TIERFS_SOURCE_ROOT")
. "$here/../tests/slurm/cluster.sh"
. "$here/../tests/slurm/multinode_cluster.sh"
. "$here/../tests/slurm/suite_common.sh"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for tool in munged slurmctld slurmd sbatch ip nsenter mfsmaster mfschunkserver mfsmount fio; do
  command -v "$tool" >/dev/null || { echo "SKIP: needs $tool"; exit 77; }
done

suite_setup tierfs-mn-bench mn_stop
# Every `tierfs job start` and `stop` of a node, timed.
cat >"$D/bin/tierfs-timed" <<SH
#!/bin/sh
case "\$4" in
  start | stop)
    t0=\$(date +%s.%N)
    "$D/bin/tierfs" "\$@"
    rc=\$?
    echo "\$SLURMD_NODENAME \$SLURM_JOB_ID \$4 \$t0 \$(date +%s.%N)" >>"$D/times"
    exit \$rc ;;
esac
exec "$D/bin/tierfs" "\$@"
SH
chmod 0755 "$D/bin/tierfs-timed"
mn_cluster_up "$D" 2048 8GiB 8GiB || exit 1
# MooseFS's own io_retries: the suite's low count (a quick ENXIO for a lost
# chunk) turned a chunk allocation slowed by load into ENOSPC on long writes.
sed -i '/^io_retries/d' "$D"/nodes/*/node.toml
sed -i "s|^TIERFS=.*|TIERFS=$D/bin/tierfs-timed|" "$D/scripts/tierfs-slurm.env"
export OUT D

echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -r); fio $(fio --version)"
echo "load at the start: $(cut -d' ' -f1-3 /proc/loadavg)"

submit() {
  sbatch --parsable --uid=nobody --gid=nogroup --chdir="$OUT" -o "$OUT/%x-%j.out" \
    --export=ALL,OUT="$OUT",D="$D" "$@"
}
wait_done() {  # until the job is over and every node idle; prints the time then
  local i
  for i in $(seq 1 1800); do
    case "$(job_state "$1")" in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL)
        [ "$(sinfo -h -N -o '%T' | grep -cx idle)" -eq 3 ] && { date +%s.%N; return 0; } ;;
    esac
    sleep 0.05
  done
  echo "job $1 did not end" >&2
  return 1
}
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }

# 1. throughput -----------------------------------------------------------------
cat >"$D/fio.sh" <<'JOB'
#!/bin/sh
bw() {  # bw DIR RW BS SIZE: MiB/s of one fio run on a file in DIR
  fio --name=b --filename="$1/fio.dat" --rw="$2" --bs="$3" --size="$4" --ioengine=psync \
    --end_fsync=1 --invalidate=1 --output-format=json 2>>"$OUT/fio-errors-$SLURM_JOB_ID" |
    python3 -c 'import json, sys; j = json.load(sys.stdin)["jobs"][0]; print(round(j[sys.argv[1]]["bw"] / 1024, 1))' \
      "$(echo "$2" | sed 's/^rand//')"
}
tmp=/dev/shm/tierfs-mn-bench-$SLURM_JOB_ID
mkdir -p "$tmp"
for target in "tmpfs:$tmp" "per-node tierfs:$TIERFS_SCRATCH" "job-wide MooseFS goal 2:$TIERFS_SHARED"; do
  dir=${target#*:}
  w1=$(bw "$dir" write 1M 256M); r1=$(bw "$dir" read 1M 256M); rm -f "$dir/fio.dat"
  w4=$(bw "$dir" write 4k 32M); r4=$(bw "$dir" read 4k 32M); rm -f "$dir/fio.dat"
  echo "| ${target%%:*} | $w1 | $r1 | $w4 | $r4 |"
done
rm -rf "$tmp"
JOB
chmod 0755 "$D/fio.sh"
id=$(submit -J fio -N 3 --constraint=tierfs_shared --tmp=1200M "$D/fio.sh")
wait_done "$id" >/dev/null
echo
echo "1. fio on n1 of job $id (psync, sequential, end_fsync=1 on writes, fio's invalidate before reads; 256 MiB in 1 MiB, 32 MiB in 4 KiB)"
echo "| MiB/s | 1 MiB write | 1 MiB read | 4 KiB write | 4 KiB read |"
echo "| --- | --- | --- | --- | --- |"
grep '^|' "$OUT/fio-$id.out" || { echo "job $id: $(job_state "$id"): $(cat "$OUT/fio-$id.out")"; }

# 2. prolog and epilog ------------------------------------------------------------
cat >"$D/empty.sh" <<'JOB'
#!/bin/sh
date +%s.%N >"$OUT/first-$SLURM_JOB_ID"
srun -n "$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 true
date +%s.%N >"$OUT/last-$SLURM_JOB_ID"
JOB
chmod 0755 "$D/empty.sh"
echo
echo "2. prolog and epilog (s)"
echo "| job | sbatch to first line | last line to every node idle | tierfs job start, slowest node | tierfs job stop, slowest node |"
echo "| --- | --- | --- | --- | --- |"
for kind in "-N 1" "-N 3" "-N 3 --constraint=tierfs_shared"; do
  for run in 1 2; do
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086 # kind is several arguments
    id=$(submit -J empty $kind "$D/empty.sh")
    t1=$(wait_done "$id") || continue
    start=$(awk -v id="$id" '$2 == id && $3 == "start" { d = $5 - $4; if (d > m) m = d } END { printf "%.2f", m }' "$D/times")
    stop=$(awk -v id="$id" '$2 == id && $3 == "stop" { d = $5 - $4; if (d > m) m = d } END { printf "%.2f", m }' "$D/times")
    echo "| \`$kind\` (job $id) | $(sub "$(cat "$OUT/first-$id")" "$t0") | $(sub "$t1" "$(cat "$OUT/last-$id")") | $start | $stop |"
  done
done

# 3. stage-out of 1 GiB from 3 nodes ---------------------------------------------
cat >"$D/gather.sh" <<'JOB'
#!/bin/sh
# A third of 1 GiB per node, in its own name.
srun -n 3 --ntasks-per-node=1 sh -c 'mkdir "$TIERFS_SCRATCH/out" &&
  head -c 357913942 /dev/urandom >"$TIERFS_SCRATCH/out/part-$SLURM_NODEID"' || exit 1
t0=$(date +%s.%N)
srun -n 3 --ntasks-per-node=1 sh -c '"$D/bin/tierfs" stage out --no-progress "$TIERFS_SCRATCH/out" "$OUT/gather-$SLURM_JOB_ID"' || exit 1
t1=$(date +%s.%N)
srun -n 3 --ntasks-per-node=1 sh -c 'mkdir -p "$OUT/cp-$SLURM_JOB_ID" && cp -r "$TIERFS_SCRATCH/out/." "$OUT/cp-$SLURM_JOB_ID/" && sync' || exit 1
t2=$(date +%s.%N)
bytes=$(cat "$OUT/gather-$SLURM_JOB_ID"/part-* | wc -c)
echo "gathered $bytes $t0 $t1 $t2"
JOB
chmod 0755 "$D/gather.sh"
id=$(submit -J gather -N 3 --tmp=600M "$D/gather.sh")
wait_done "$id" >/dev/null
echo
read -r _ bytes t0 t1 t2 < <(grep '^gathered' "$OUT/gather-$id.out")
if [ -n "${t2:-}" ]; then
  awk -v b="$bytes" -v t0="$t0" -v t1="$t1" -v t2="$t2" 'BEGIN {
    printf "3. stage-out from 3 nodes at once into one directory of the local disk: %.2f GiB in %.1f s (%.0f MiB/s together); cp -r + sync of the same: %.1f s (%.0f MiB/s)\n",
      b / 2^30, t1 - t0, b / 2^20 / (t1 - t0), t2 - t1, b / 2^20 / (t2 - t1) }'
else
  echo "3. job $id: $(job_state "$id"): $(cat "$OUT/gather-$id.out")"
fi
echo
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
