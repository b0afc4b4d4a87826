# Sourced by multinode_suite.sh after the per-node tests: job-wide scratch
# (examples/slurm/shared_scratch.sh, MooseFS on every node's tierfs scratch).
#   6. --constraint=tierfs_shared on three nodes: stage in, six ranks write
#      disjoint ranges of one shared file and a file each, n3's tierfs server
#      is killed (goal 2: one copy of every chunk is elsewhere), every node
#      reads back every byte, stage out; checksums compared
#   7. the master cannot start (its port taken on n1): the job fails with
#      the reason in its output
# After each: on no node a job-wide mount, state, daemon or listening port.

shared_clean() {  # nothing of job-wide scratch left on any node
  local id="$1" node
  for node in $MN_NODES; do
    grep -q " $D/nodes/$node/shared/$id " /proc/self/mountinfo && fail "job $id: $node still mounts the job-wide scratch"
    [ -e "$D/nodes/$node/shared/$id" ] && fail "job $id: $D/nodes/$node/shared/$id is left"
    [ -e "$D/nodes/$node/shared-state/$id" ] && fail "job $id: $D/nodes/$node/shared-state/$id is left"
    # Listening sockets of the node other than slurmd's.
    nsenter --net="/run/netns/$MN_TAG-$node" ss -Hltn | awk '{print $4}' | grep -v ":$((port + 1))\$" |
      grep . && fail "job $id: ports still listening on $node"
  done
  pgrep -af "$D/nodes/[^ ]*/shared-state/$id/" && fail "job $id: MooseFS daemons left"
  echo "job $id: no job-wide mount, state, daemon or port left"
}

# 6. job-wide scratch --------------------------------------------------------
mkdir -p "$OUT/input"
for r in 0 1 2 3 4 5; do head -c 1048576 /dev/urandom >"$OUT/input/rank-$r"; done
chmod -R a+rX "$OUT/input"
expect_shared=$(cat "$OUT"/input/rank-{0,1,2,3,4,5} | sha256sum | cut -d' ' -f1)
(cd "$OUT/input" && sha256sum rank-*) >"$OUT/input.sums"
cat >"$D/shared.sh" <<JOB
#!/bin/sh
srun -n 3 --ntasks-per-node=1 sh -c '$copy_state; echo "shared \$SLURMD_NODENAME \$TIERFS_SHARED"' || exit 1
"\$D/bin/tierfs" stage in --no-progress "\$OUT/input" "\$TIERFS_SHARED/input" || exit 1
mkdir "\$TIERFS_SHARED/out"
# Each rank: its 1 MiB at offset rank MiB of one file, and a file of its own.
srun sh -c 'dd if="\$TIERFS_SHARED/input/rank-\$SLURM_PROCID" of="\$TIERFS_SHARED/shared" bs=1M \
  seek=\$SLURM_PROCID conv=notrunc,fsync status=none &&
  cp "\$TIERFS_SHARED/input/rank-\$SLURM_PROCID" "\$TIERFS_SHARED/out/rank-\$SLURM_PROCID"' || exit 1
touch "\$OUT/written-\$SLURM_JOB_ID"
while [ ! -e "\$OUT/go-\$SLURM_JOB_ID" ]; do sleep 0.1; done
srun -n 3 --ntasks-per-node=1 sh -c 'echo "readback \$SLURMD_NODENAME \$(sha256sum <"\$TIERFS_SHARED/shared" | cut -d" " -f1) \
  \$(cd "\$TIERFS_SHARED/out" && sha256sum --quiet -c "\$OUT/input.sums" && echo ranks-ok)"' || exit 1
"\$D/bin/tierfs" stage out --no-progress "\$TIERFS_SHARED/out" "\$OUT/shared-out-\$SLURM_JOB_ID" || exit 1
JOB
chmod 0755 "$D/shared.sh"
id=$(submit -J shared -N 3 --ntasks-per-node=2 --constraint=tierfs_shared --tmp=200M "$D/shared.sh")
if wait_files "$OUT/written-$id"; then
  pid=$(sed -n 's/.*"server_pid": \([0-9]*\).*/\1/p' "$OUT/state-$id-n3.json" 2>/dev/null)
  [ -n "$pid" ] && kill -9 "$pid" && echo "job $id: killed n3's tierfs server $pid (its chunks)"
fi
touch "$OUT/go-$id"
wait_job_done "$id"
out="$OUT/shared-$id.out"
[ "$(job_state "$id")" = COMPLETED ] || fail "job $id: $(job_state "$id"): $(cat "$out")"
for node in $MN_NODES; do
  grep -q "^shared $node $D/nodes/$node/shared/$id\$" "$out" || fail "job $id: $node had no TIERFS_SHARED"
  grep -q "^readback $node $expect_shared *ranks-ok\$" "$out" ||
    fail "job $id: $node did not read back every byte: $(grep "^readback $node" "$out")"
done
if (cd "$OUT/shared-out-$id" 2>/dev/null && sha256sum --quiet -c "$OUT/input.sums"); then
  echo "job $id: 6 ranks on 3 nodes wrote one shared file and their own; all 3 nodes read every byte back after n3's server died; stage in and out checksums equal"
else
  fail "job $id: the staged-out ranks differ"
fi
need_states "$id" $MN_NODES
check_clean "$id"
shared_clean "$id"

# 7. the engine cannot start: the master's port on n1 is taken ---------------
next=$((id + 1))
mport=$((47400 + 3 * (next % 100)))
nsenter --net="/run/netns/$MN_TAG-n1" python3 -c '
import socket, sys, time
s = socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); time.sleep(120)' \
  "$(mn_addr n1)" "$mport" &
blocker=$!
sleep 0.5
id=$(submit -J noshared -N 3 --constraint=tierfs_shared "$D/big.sh")
[ "$id" = "$next" ] || fail "job id $id, not the $next whose port was taken"
wait_job_done "$id"
kill "$blocker"
wait "$blocker" 2>/dev/null
out="$OUT/noshared-$id.out"
[ "$(job_state "$id")" = FAILED ] || fail "job $id: $(job_state "$id"), not FAILED"
grep -q "tierfs scratch failed on node n1: shared scratch: mfsmaster did not start on n1" "$out" ||
  fail "job $id: no clear reason in its output: $(cat "$out")"
ls "$OUT" | grep -q "^ran-$id-" && fail "job $id ran tasks although shared scratch failed"
echo "job $id: $(grep -o 'tierfs scratch failed.*' "$out" | head -1)"
check_clean "$id"
shared_clean "$id"
