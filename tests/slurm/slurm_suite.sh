#!/usr/bin/env bash
# The Slurm suite: a one-node Slurm cluster on localhost (munged, slurmctld,
# slurmd, started here and stopped at the end) whose Prolog, Epilog and
# TaskProlog are the shipped scripts of examples/slurm/, and real sbatch jobs
# run as user nobody:
#   1. a job writes to $TIERFS_SCRATCH and stages out (a manifest and the
#      marked directory $TIERFS_STAGE_OUT_DIR); checksums compared
#   2. a job cancelled with scancel mid-write
#   3. a job whose tierfs server is killed mid-job
#   4. two jobs whose --tmp together exceed the node's allowance: the second
#      is refused, with the reason in its output and in scontrol show job
# After each: the node is idle (not drained) and no mount, shared-memory
# object, directory or record of the job is left.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../support/privileged.sh"
. "$here/cluster.sh"
. "$here/suite_common.sh"

tierfs_require "$(tierfs_missing_root)"
tierfs_require "$(tierfs_missing_fuse)"
for tool in munged slurmctld slurmd sbatch scontrol setpriv; do
  command -v "$tool" >/dev/null ||
    tierfs_require "needs $tool (scripts/setup.sh installs slurmctld slurmd slurm-client munge)"
done
: "${TIERFS_BIN:?set by meson}" "${TIERFS_SOURCE_ROOT:?set by meson}"

# The shipped scripts, as symlinks, with a settings file beside them that
# points them at this build and this node configuration.
suite_setup tierfs-slurm cluster_stop
cat >"$D/scripts/tierfs-slurm.env" <<ENV
TIERFS=$D/bin/tierfs
TIERFS_NODE_CONFIG=$D/node.toml
ENV
cat >"$D/node.toml" <<TOML
[job]
base = "$D/scratch"
state_dir = "$D/run"
default_size = "64MiB"
stop_timeout = 5

[admission]
"numa:0" = "1GiB"
TOML
chmod 0644 "$D/node.toml" "$D/scripts/tierfs-slurm.env"

# Two free ports (slurmctld, slurmd), at random in 20000-39999.
port_base=$(free_ports 2 $(for _ in $(seq 1 50); do echo $((20000 + RANDOM % 20000)); done)) ||
  { fail "no two free ports found"; exit 1; }
cluster_conf "$D" "$D/scripts" 11264 "$port_base"
cluster_start "$D" || { fail "the cluster did not start"; exit 1; }
echo "cluster up: $(sinfo -h -o '%N %T')"

submit() {  # submit NAME SBATCH-ARGS... -- prints the job id
  sbatch --parsable --uid=nobody --gid=nogroup --chdir="$OUT" -o "$OUT/%x-%j.out" "$@"
}

wait_job_done() {  # until the job is over and the node is not completing (epilog done)
  local id="$1" i state node
  for i in $(seq 1 300); do
    state=$(job_state "$id")
    node=$(sinfo -h -o '%T')
    case "$state" in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY)
        [ "$node" = idle ] || [ "$node" = mixed ] || [ "$node" = allocated ] && return 0 ;;
    esac
    sleep 0.2
  done
  fail "job $id did not end (state $state, node $node)"
  return 1
}

# After a job: node idle (not drained), nothing of the job left.
check_clean() {
  local id="$1" state_copy="$OUT/state-$1.json" i node
  for i in $(seq 1 100); do
    node=$(sinfo -h -o '%T')
    [ "$node" = idle ] && break
    sleep 0.2
  done
  [ "$node" = idle ] || fail "job $id: node is $node, not idle ($(sinfo -h -o '%E'))"
  grep -q " $D/scratch/$id " /proc/self/mountinfo && fail "job $id: $D/scratch/$id is still mounted"
  [ -e "$D/scratch/$id" ] && fail "job $id: $D/scratch/$id is left"
  grep -q "^job-$id\." <<<"$(ls "$D/run")" && fail "job $id: records left in $D/run: $(ls "$D/run")"
  if [ -s "$state_copy" ]; then
    local pid shm
    pid=$(sed -n 's/.*"server_pid": \([0-9]*\).*/\1/p' "$state_copy")
    [ -n "$pid" ] && grep -q "^tierfs\.$pid\." <<<"$(ls /dev/shm)" && fail "job $id: shm objects of server $pid left"
    for shm in $(sed -n 's/.*"\/\(tierfs\.[^"]*\)".*/\1/p' "$state_copy"); do
      [ -e "/dev/shm/$shm" ] && fail "job $id: /dev/shm/$shm left"
    done
    # A zombie has exited; its parent (slurmd or init) reaps it in its own time.
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] &&
      [ "$(sed 's/.*) \([A-Z]\).*/\1/' "/proc/$pid/stat" 2>/dev/null)" != Z ] &&
      fail "job $id: server $pid still runs: $(cat "/proc/$pid/stat" 2>/dev/null)"
  else
    fail "job $id: the job did not copy its state record"
  fi
  echo "job $id: clean (node $node)"
}

# 1. write, stage out, compare checksums -------------------------------------
cat >"$D/write_stage.sh" <<'JOB'
#!/bin/sh
set -e
cp "$STATE_DIR/job-$SLURM_JOB_ID.json" "$OUT/state-$SLURM_JOB_ID.json"
echo "scratch=$TIERFS_SCRATCH owner=$(stat -c '%u:%g %a' "$TIERFS_SCRATCH")"
mkdir "$TIERFS_SCRATCH/results"
head -c 20000000 /dev/urandom >"$TIERFS_SCRATCH/results/big"
for i in $(seq 1 50); do head -c $((i * 1000)) /dev/urandom >"$TIERFS_SCRATCH/results/small$i"; done
truncate -s 30M "$TIERFS_SCRATCH/results/sparse"
echo tail >>"$TIERFS_SCRATCH/results/sparse"
(cd "$TIERFS_SCRATCH/results" && sha256sum big small* sparse) >"$OUT/sums-$SLURM_JOB_ID"
mkdir "$TIERFS_STAGE_OUT_DIR"
head -c 3000000 /dev/urandom >"$TIERFS_STAGE_OUT_DIR/marked"
(cd "$TIERFS_STAGE_OUT_DIR" && sha256sum marked) >"$OUT/marked-sums-$SLURM_JOB_ID"
cat >"$TIERFS_STAGE_OUT" <<MANIFEST
report = "$OUT/stage-$SLURM_JOB_ID.json"
[[copy]]
source = "results"
destination = "$OUT/results-$SLURM_JOB_ID"
MANIFEST
echo written
JOB
chmod 0755 "$D/write_stage.sh"
export OUT STATE_DIR="$D/run"
id=$(submit -J write --export=ALL,OUT="$OUT",STATE_DIR="$D/run" --tmp=200M "$D/write_stage.sh")
wait_job_done "$id"
out="$OUT/write-$id.out"
[ "$(job_state "$id")" = COMPLETED ] || fail "job $id: $(job_state "$id"): $(cat "$out")"
grep -q "owner=65534:65534 700" "$out" || fail "job $id: scratch root not nobody's with 0700: $(cat "$out")"
if (cd "$OUT/results-$id" 2>/dev/null && sha256sum --quiet -c "$OUT/sums-$id"); then
  echo "job $id: staged out, checksums equal"
else
  fail "job $id: the staged-out results differ from what the job wrote"
fi
grep -q '"ok": true' "$OUT/stage-$id.json" 2>/dev/null || fail "job $id: stage report not ok"
# The marked directory went to the job's working directory.
(cd "$OUT/tierfs-stage-out.$id" 2>/dev/null && sha256sum --quiet -c "$OUT/marked-sums-$id") ||
  fail "job $id: \$TIERFS_STAGE_OUT_DIR was not staged out to the working directory"
[ "$(stat -c %b "$OUT/results-$id/sparse" 2>/dev/null || echo 99999)" -lt 1000 ] ||
  fail "job $id: the sparse file was not staged out sparse"
check_clean "$id"

# 2. scancel mid-write -------------------------------------------------------
cat >"$D/endless.sh" <<'JOB'
#!/bin/sh
cp "$STATE_DIR/job-$SLURM_JOB_ID.json" "$OUT/state-$SLURM_JOB_ID.json"
touch "$OUT/started-$SLURM_JOB_ID"
while :; do dd if=/dev/zero of="$TIERFS_SCRATCH/f" bs=1M count=50 status=none; done
JOB
chmod 0755 "$D/endless.sh"
id=$(submit -J cancel --export=ALL,OUT="$OUT",STATE_DIR="$D/run" "$D/endless.sh")
wait_files "$OUT/started-$id" && sleep 0.5
scancel "$id"
wait_job_done "$id"
[ "$(job_state "$id")" = CANCELLED ] || fail "job $id: $(job_state "$id") after scancel"
check_clean "$id"

# 3. the server killed mid-job -----------------------------------------------
cat >"$D/crash.sh" <<'JOB'
#!/bin/sh
cp "$STATE_DIR/job-$SLURM_JOB_ID.json" "$OUT/state-$SLURM_JOB_ID.json"
echo before >"$TIERFS_SCRATCH/f"
touch "$OUT/started-$SLURM_JOB_ID"
while [ ! -e "$OUT/go-$SLURM_JOB_ID" ]; do sleep 0.1; done
if echo after >"$TIERFS_SCRATCH/f"; then echo "write after the crash worked?"; else echo "write failed as expected"; fi
exit 0
JOB
chmod 0755 "$D/crash.sh"
id=$(submit -J crash --export=ALL,OUT="$OUT",STATE_DIR="$D/run" "$D/crash.sh")
wait_files "$OUT/started-$id"
pid=$(sed -n 's/.*"server_pid": \([0-9]*\).*/\1/p' "$OUT/state-$id.json")
kill -9 "$pid" && echo "job $id: killed server $pid"
touch "$OUT/go-$id"
wait_job_done "$id"
grep -q "write failed as expected" "$OUT/crash-$id.out" || fail "job $id: $(cat "$OUT/crash-$id.out")"
check_clean "$id"

# 4. admission: two jobs over the node's allowance ---------------------------
cat >"$D/hold.sh" <<'JOB'
#!/bin/sh
cp "$STATE_DIR/job-$SLURM_JOB_ID.json" "$OUT/state-$SLURM_JOB_ID.json"
touch "$OUT/started-$SLURM_JOB_ID"
while [ ! -e "$OUT/go-$SLURM_JOB_ID" ]; do sleep 0.1; done
JOB
chmod 0755 "$D/hold.sh"
first=$(submit -J hold --export=ALL,OUT="$OUT",STATE_DIR="$D/run" --tmp=600M "$D/hold.sh")
wait_files "$OUT/started-$first"
second=$(submit -J over --export=ALL,OUT="$OUT",STATE_DIR="$D/run" --tmp=600M "$D/hold.sh")
wait_job_done "$second"
[ "$(job_state "$second")" = FAILED ] || fail "job $second: $(job_state "$second"), not FAILED"
grep -q "job $second refused on node .*numa:0 allows 1.00GiB" "$OUT/over-$second.out" ||
  fail "job $second: no refusal in its output: $(cat "$OUT/over-$second.out")"
grep -q "Comment=.*refused" <<<"$(scontrol show job "$second")" ||
  fail "job $second: no refusal in scontrol show job"
echo "job $second: $(grep -o 'refused.*' "$OUT/over-$second.out")"
[ -e "$OUT/started-$second" ] && fail "job $second ran although refused"
echo "{}" >"$OUT/state-$second.json"  # it never had a server
touch "$OUT/go-$first"
wait_job_done "$first"
[ "$(job_state "$first")" = COMPLETED ] || fail "job $first: $(job_state "$first")"
check_clean "$second"
check_clean "$first"

# Slurm drains a node whose prolog or epilog fails: none of the above may have.
grep -i "drain" "$D/slurmctld.log" && fail "slurmctld drained the node"
if [ "$failures" -ne 0 ]; then
  echo "--- slurmd.log"; tail -20 "$D/slurmd.log"
  exit 1
fi
echo "PASS: slurm suite"
