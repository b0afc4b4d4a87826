#!/usr/bin/env bash
# The multi-node Slurm suite: three slurmd nodes (n1, n2, n3) on one machine,
# each in a network namespace of its own (tests/slurm/multinode_cluster.sh),
# with the shipped scripts of examples/slurm/ as Prolog, Epilog and
# TaskProlog, and each node its own tierfs node configuration, state and
# scratch base under $D/nodes/NAME. Jobs run as user nobody:
#   1. sbatch -N 3, two tasks per node, three steps: every task of every step
#      finds its node's scratch mounted; then `tierfs stage out` from every
#      node into one shared directory gathers every rank's file, checksums
#      compared
#   2. salloc -N 3 + srun: every node's task finds the scratch
#   3. one node's tierfs server killed mid-job
#   4. a three-node job cancelled mid-write
#   5. per-node allowances: a --tmp that n2 cannot admit fails the job as a
#      whole, with n2's reason in its output, while the same --tmp on n1+n3
#      passes
#   6, 7. job-wide scratch (multinode_shared.sh)
# After each: every node idle (not drained), and on no node a mount,
# shared-memory object, directory, server or record of the job.
# The slurmctld port is the first free pair in 47100-47199 (the one-node
# suite picks 20000-39999 at random).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../support/privileged.sh"
. "$here/cluster.sh"
. "$here/multinode_cluster.sh"
. "$here/suite_common.sh"

tierfs_require "$(tierfs_missing_root)"
tierfs_require "$(tierfs_missing_fuse)"
for tool in munged slurmctld slurmd sbatch salloc srun scontrol setpriv ip nsenter unshare ss \
  mfsmaster mfschunkserver mfsmount; do
  command -v "$tool" >/dev/null ||
    tierfs_require "needs $tool (scripts/setup.sh installs slurmctld slurmd slurm-client munge iproute2 moosefs-*)"
done
ip link add "tfmnprobe$$" type bridge 2>/dev/null && ip link del "tfmnprobe$$" ||
  tierfs_require "needs network namespaces and bridges (ip link add type bridge failed)"
: "${TIERFS_BIN:?set by meson}" "${TIERFS_SOURCE_ROOT:?set by meson}"

started=$(date +%s)
suite_setup tierfs-slurm-mn mn_stop
# n2 allows less than n1 and n3 (test 5).
mn_cluster_up "$D" 1024 1GiB 256MiB || { fail "the cluster did not start"; exit 1; }
port=$MN_PORT
echo "cluster up on $MN_NET.0/24, slurmctld port $port: $(sinfo -h -N -o '%N=%T' | tr '\n' ' ')"
export OUT D

submit() {
  sbatch --parsable --uid=nobody --gid=nogroup --chdir="$OUT" -o "$OUT/%x-%j.out" \
    --export=ALL,OUT="$OUT",D="$D" "$@"
}
nodes_idle() { [ "$(sinfo -h -N -o '%T' | grep -cx idle)" -eq 3 ]; }

wait_job_done() {  # until the job is over and no node is completing (epilogs done)
  local id="$1" i state
  for i in $(seq 1 300); do
    state=$(job_state "$id")
    case "$state" in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY)
        nodes_idle && return 0 ;;
    esac
    sleep 0.2
  done
  fail "job $id did not end (state $state, nodes $(sinfo -h -N -o '%N=%T' | tr '\n' ' '))"
  return 1
}

# A job copies each node's state record to $OUT/state-ID-NODE.json while it
# runs (the epilog removes the record): the server pid and shm names to check.
copy_state='cp "$D/nodes/$SLURMD_NODENAME/run/job-$SLURM_JOB_ID.json" "$OUT/state-$SLURM_JOB_ID-$SLURMD_NODENAME.json"'

# Every node idle; nothing of the job left on any node.
check_clean() {
  local id="$1" i node state_copy pid shm ticks stat
  for i in $(seq 1 100); do nodes_idle && break; sleep 0.2; done
  nodes_idle || fail "job $id: nodes not idle: $(sinfo -h -N -o '%N=%T %E' | tr '\n' ' ')"
  for node in $MN_NODES; do
    grep -q " $D/nodes/$node/scratch/$id " /proc/self/mountinfo && fail "job $id: $node still mounts its scratch"
    [ -e "$D/nodes/$node/scratch/$id" ] && fail "job $id: $D/nodes/$node/scratch/$id is left"
    ls "$D/nodes/$node/run" 2>/dev/null | grep -q "^job-$id\." && fail "job $id: records left on $node"
    state_copy="$OUT/state-$id-$node.json"
    [ -s "$state_copy" ] || continue  # checked by the caller where a server must have run
    pid=$(sed -n 's/.*"server_pid": \([0-9]*\).*/\1/p' "$state_copy")
    for shm in $(sed -n 's/.*"\/\(tierfs\.[^"]*\)".*/\1/p' "$state_copy"); do
      [ -e "/dev/shm/$shm" ] && fail "job $id: /dev/shm/$shm of $node left"
    done
    # The same process (pid and start time: pids are reused on a busy machine),
    # and not a zombie that its parent has yet to reap.
    ticks=$(sed -n 's/.*"server_start_ticks": \([0-9]*\).*/\1/p' "$state_copy")
    stat=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null)
    [ -n "$stat" ] && [ "$(echo "$stat" | cut -d' ' -f20)" = "$ticks" ] &&
      [ "$(echo "$stat" | cut -d' ' -f1)" != Z ] &&
      fail "job $id: the server of $node ($pid) still runs: $stat"
  done
  echo "job $id: clean on $MN_NODES"
}

need_states() {  # need_states ID NODE...: each node's record was copied
  local id="$1" node
  shift
  for node in "$@"; do
    [ -s "$OUT/state-$id-$node.json" ] || fail "job $id: no state record from $node (no server ran?)"
  done
}

# 1. sbatch -N 3: three steps, stage-out from every node ------------------------
cat >"$D/ranks.sh" <<JOB
#!/bin/sh
srun -n "\$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 sh -c '$copy_state' || exit 1
# Step 1: every rank writes a file of its own size into its node's scratch.
srun sh -c 'mkdir -p "\$TIERFS_SCRATCH/ranks" &&
  grep -q " \$TIERFS_SCRATCH .* - fuse" /proc/self/mountinfo &&
  head -c \$((100000 + SLURM_PROCID * 4099)) /dev/urandom >"\$TIERFS_SCRATCH/ranks/rank-\$SLURM_PROCID" &&
  (cd "\$TIERFS_SCRATCH/ranks" && sha256sum rank-\$SLURM_PROCID) >"\$OUT/sum-\$SLURM_JOB_ID-\$SLURM_PROCID" &&
  echo "step1 \$SLURMD_NODENAME \$SLURM_PROCID \$TIERFS_SCRATCH \${TIERFS_SHARED:-unshared}"' || exit 1
# Step 2: every task finds the files its node's ranks wrote.
srun sh -c 'echo "step2 \$SLURMD_NODENAME \$SLURM_PROCID \$(ls "\$TIERFS_SCRATCH/ranks" | wc -l)"' || exit 1
# Step 3: every node stages its ranks out into the one shared directory.
srun -n "\$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 sh -c '"\$D/bin/tierfs" stage out --no-progress \
  "\$TIERFS_SCRATCH/ranks" "\$OUT/gather-\$SLURM_JOB_ID" && echo "staged \$SLURMD_NODENAME"' || exit 1
JOB
chmod 0755 "$D/ranks.sh"
id=$(submit -J ranks -N 3 --ntasks-per-node=2 "$D/ranks.sh")
wait_job_done "$id"
out="$OUT/ranks-$id.out"
[ "$(job_state "$id")" = COMPLETED ] || fail "job $id: $(job_state "$id"): $(cat "$out")"
for node in $MN_NODES; do
  # A job that asks no job-wide scratch (and [shared] default false) gets none.
  n=$(grep -c "^step1 $node [0-9]* $D/nodes/$node/scratch/$id unshared\$" "$out")
  [ "$n" -eq 2 ] || fail "job $id: $n step-1 tasks on $node found $D/nodes/$node/scratch/$id (and no TIERFS_SHARED), not 2"
  n=$(grep -c "^step2 $node [0-9]* 2\$" "$out")
  [ "$n" -eq 2 ] || fail "job $id: $n step-2 tasks on $node found their node's 2 rank files, not 2"
  grep -q "^staged $node\$" "$out" || fail "job $id: $node did not stage out"
done
need_states "$id" $MN_NODES
gathered=$(ls "$OUT/gather-$id" 2>/dev/null | wc -l)
if [ "$gathered" -eq 6 ] && (cd "$OUT/gather-$id" && cat "$OUT"/sum-"$id"-* | sha256sum --quiet -c); then
  echo "job $id: 6 ranks on 3 nodes, all found their scratch in 3 steps; stage-out gathered 6 files, checksums equal"
else
  fail "job $id: the gathered ranks ($gathered files) differ from what the ranks wrote: $(cat "$out")"
fi
check_clean "$id"

# 2. salloc -N 3 + srun -----------------------------------------------------------
salloc_out=$(cd "$OUT" && setpriv --reuid=nobody --regid=nogroup --clear-groups \
  salloc -N 3 -J alloc srun sh -c "$copy_state"' && grep -q " $TIERFS_SCRATCH .* - fuse" /proc/self/mountinfo &&
    echo "alloc $SLURM_JOB_ID $SLURMD_NODENAME $TIERFS_SCRATCH $(stat -c %U "$TIERFS_SCRATCH")"' 2>&1)
id=$(echo "$salloc_out" | sed -n 's/^alloc \([0-9]*\) .*/\1/p' | head -1)
if [ -n "$id" ]; then
  for node in $MN_NODES; do
    grep -q "^alloc $id $node $D/nodes/$node/scratch/$id nobody\$" <<<"$salloc_out" ||
      fail "salloc job $id: no task on $node found its scratch: $salloc_out"
  done
  wait_job_done "$id"
  need_states "$id" $MN_NODES
  echo "job $id (salloc): srun found each node's scratch, owned by nobody"
  check_clean "$id"
else
  fail "salloc + srun: $salloc_out"
fi

# 3. one node's server killed mid-job --------------------------------------------
cat >"$D/crash.sh" <<JOB
#!/bin/sh
srun -n "\$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 sh -c '$copy_state
  echo before >"\$TIERFS_SCRATCH/f" && touch "\$OUT/started-\$SLURM_JOB_ID-\$SLURMD_NODENAME"
  while [ ! -e "\$OUT/go-\$SLURM_JOB_ID" ]; do sleep 0.1; done
  if echo after >"\$TIERFS_SCRATCH/f"; then echo "\$SLURMD_NODENAME wrote"; else echo "\$SLURMD_NODENAME write failed"; fi'
exit 0
JOB
chmod 0755 "$D/crash.sh"
id=$(submit -J crash -N 3 "$D/crash.sh")
wait_files "$OUT/started-$id-n1" "$OUT/started-$id-n2" "$OUT/started-$id-n3"
pid=$(sed -n 's/.*"server_pid": \([0-9]*\).*/\1/p' "$OUT/state-$id-n2.json")
[ -n "$pid" ] && kill -9 "$pid" && echo "job $id: killed n2's server $pid"
touch "$OUT/go-$id"
wait_job_done "$id"
out="$OUT/crash-$id.out"
grep -qx "n2 write failed" "$out" && grep -qx "n1 wrote" "$out" && grep -qx "n3 wrote" "$out" ||
  fail "job $id: expected n2's write to fail and n1's, n3's to work: $(cat "$out")"
need_states "$id" $MN_NODES
check_clean "$id"

# 4. cancelled mid-write on three nodes ------------------------------------------
cat >"$D/endless.sh" <<JOB
#!/bin/sh
srun -n "\$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 sh -c '$copy_state
  touch "\$OUT/started-\$SLURM_JOB_ID-\$SLURMD_NODENAME"
  while :; do dd if=/dev/zero of="\$TIERFS_SCRATCH/f" bs=1M count=20 status=none; done'
JOB
chmod 0755 "$D/endless.sh"
id=$(submit -J cancel -N 3 "$D/endless.sh")
wait_files "$OUT/started-$id-n1" "$OUT/started-$id-n2" "$OUT/started-$id-n3" && sleep 0.5
scancel "$id"
wait_job_done "$id"
[ "$(job_state "$id")" = CANCELLED ] || fail "job $id: $(job_state "$id") after scancel"
need_states "$id" $MN_NODES
check_clean "$id"

# 5. per-node allowances: n2 allows 256MiB, n1 and n3 1GiB ---------------------
cat >"$D/big.sh" <<JOB
#!/bin/sh
srun -n "\$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 sh -c '$copy_state; touch "\$OUT/ran-\$SLURM_JOB_ID-\$SLURMD_NODENAME"'
JOB
chmod 0755 "$D/big.sh"
id=$(submit -J big -N 2 -w n1,n3 --tmp=500M "$D/big.sh")
wait_job_done "$id"
[ "$(job_state "$id")" = COMPLETED ] || fail "job $id on n1,n3: $(job_state "$id"): $(cat "$OUT/big-$id.out")"
need_states "$id" n1 n3
check_clean "$id"
id=$(submit -J big -N 3 --tmp=500M "$D/big.sh")
wait_job_done "$id"
out="$OUT/big-$id.out"
[ "$(job_state "$id")" = FAILED ] || fail "job $id on 3 nodes: $(job_state "$id"), not FAILED"
grep -q "tierfs scratch failed on node n2: .*job $id refused on node n2: numa:0 allows 256" "$out" ||
  fail "job $id: no refusal by n2 in its output: $(cat "$out")"
ls "$OUT" | grep -q "^ran-$id-" && fail "job $id ran tasks although n2 refused it: $(ls "$OUT" | grep "^ran-$id-")"
echo "job $id: $(grep -o 'tierfs scratch failed.*' "$out" | head -1)"
check_clean "$id"

. "$here/multinode_shared.sh"

grep -i "drain" "$D/slurmctld.log" && fail "slurmctld drained a node"
echo "multi-node suite: $(($(date +%s) - started)) s"
if [ "$failures" -ne 0 ]; then
  for node in $MN_NODES; do echo "--- $node slurmd.log"; tail -15 "$D/nodes/$node/slurmd.log"; done
  exit 1
fi
echo "PASS: multi-node slurm suite"
