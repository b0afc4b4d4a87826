# Sourced by multinode_suite.sh after the per-node tests: job-wide scratch
# (`tierfs job start --shared`, MooseFS on every node's tierfs scratch).
#   6. --constraint=tierfs_shared on three nodes: stage in, six ranks write
#      disjoint ranges of one shared file and a file each, and goal-1 files
#      until one is on n3 and one elsewhere; n3's tierfs server is killed and
#      started again (`tierfs job start` on n3); every node reads back every
#      byte of goal 2 (one copy of every chunk was elsewhere) and of new
#      writes, the goal-1 file on n3 is lost (EIO) on every node and the
#      others read; stage out; checksums compared
#   7. the master cannot start (its port taken on n1), in a job that asked
#      nothing but whose nodes give job-wide scratch by default ([shared]
#      default = true): the job fails with the reason in its output
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
head -c 65536 /dev/urandom >"$OUT/small"
chmod a+r "$OUT/small"
N3=$(mn_addr n3)
export N3
cat >"$D/shared.sh" <<JOB
#!/bin/sh
srun -n 3 --ntasks-per-node=1 sh -c '$copy_state; echo "shared \$SLURMD_NODENAME \$TIERFS_SHARED"' || exit 1
"\$D/bin/tierfs" stage in --no-progress "\$OUT/input" "\$TIERFS_SHARED/input" || exit 1
mkdir "\$TIERFS_SHARED/out" "\$TIERFS_SHARED/after" "\$TIERFS_SHARED/single"
# Each rank: its 1 MiB at offset rank MiB of one file, and a file of its own.
srun sh -c 'dd if="\$TIERFS_SHARED/input/rank-\$SLURM_PROCID" of="\$TIERFS_SHARED/shared" bs=1M \
  seek=\$SLURM_PROCID conv=notrunc,fsync status=none &&
  cp "\$TIERFS_SHARED/input/rank-\$SLURM_PROCID" "\$TIERFS_SHARED/out/rank-\$SLURM_PROCID"' || exit 1
# Without redundancy: goal 1 files until one has its only copy on n3 and one elsewhere.
mfssetgoal 1 "\$TIERFS_SHARED/single" >/dev/null || exit 1
i=0 on3="" off3=""
while [ \$i -lt 40 ] && { [ -z "\$on3" ] || [ -z "\$off3" ]; }; do
  i=\$((i + 1))
  cp "\$OUT/small" "\$TIERFS_SHARED/single/f\$i" && sync
  if mfsfileinfo "\$TIERFS_SHARED/single/f\$i" | grep -q "copy 1: \$N3:"; then on3="\$on3 f\$i"; else off3="\$off3 f\$i"; fi
done
echo "single on n3:\$on3 elsewhere:\$off3"
touch "\$OUT/written-\$SLURM_JOB_ID"
while [ ! -e "\$OUT/go-\$SLURM_JOB_ID" ]; do sleep 0.1; done
# After n3's tierfs server was killed and started again: every rank writes
# again, and every node reads back every byte, and what is left of goal 1.
srun sh -c 'cp "\$TIERFS_SHARED/input/rank-\$SLURM_PROCID" "\$TIERFS_SHARED/after/rank-\$SLURM_PROCID"' || exit 1
srun -n 3 --ntasks-per-node=1 sh -c 'echo "readback \$SLURMD_NODENAME \$(sha256sum <"\$TIERFS_SHARED/shared" | cut -d" " -f1) \
  \$(cd "\$TIERFS_SHARED/out" && sha256sum --quiet -c "\$OUT/input.sums" && echo ranks-ok) \
  \$(cd "\$TIERFS_SHARED/after" && sha256sum --quiet -c "\$OUT/input.sums" && echo after-ok)"
  for f in \$(ls "\$TIERFS_SHARED/single"); do
    t0=\$(date +%s%N)
    if cmp -s "\$OUT/small" "\$TIERFS_SHARED/single/\$f"; then echo "single \$SLURMD_NODENAME \$f read"; else echo "single \$SLURMD_NODENAME \$f lost after \$(((\$(date +%s%N) - t0) / 1000000)) ms"; fi
  done' || exit 1
"\$D/bin/tierfs" stage out --no-progress "\$TIERFS_SHARED/out" "\$OUT/shared-out-\$SLURM_JOB_ID" || exit 1
JOB
chmod 0755 "$D/shared.sh"
id=$(submit -J shared -N 3 --ntasks-per-node=2 --constraint=tierfs_shared --tmp=200M "$D/shared.sh")
if wait_files "$OUT/written-$id"; then
  pid=$(sed -n 's/.*"server_pid": \([0-9]*\).*/\1/p' "$OUT/state-$id-n3.json" 2>/dev/null)
  [ -n "$pid" ] && kill -9 "$pid" && echo "job $id: killed n3's tierfs server $pid (its chunks)"
  # Started again as an administrator (or a node health check) would: the
  # same start on that node makes a new, empty scratch and starts the
  # node's chunkserver on it; the master and the mounts run on.
  restart=$(nsenter --net="/run/netns/$MN_TAG-n3" "$D/bin/tierfs" job --node-config "$D/nodes/n3/node.toml" \
    start --job-id "$id" --uid 65534 --gid 65534 --size 200M --shared \
    --nodes "$(mn_addr n1),$(mn_addr n2),$(mn_addr n3)" 2>&1)
  grep -q "mounted .*; job-wide scratch on $D/nodes/n3/shared/$id" <<<"$restart" ||
    fail "job $id: the restart on n3 did not mount both: $restart"
fi
touch "$OUT/go-$id"
wait_job_done "$id"
out="$OUT/shared-$id.out"
[ "$(job_state "$id")" = COMPLETED ] || fail "job $id: $(job_state "$id"): $(cat "$out")"
for node in $MN_NODES; do
  grep -q "^shared $node $D/nodes/$node/shared/$id\$" "$out" || fail "job $id: $node had no TIERFS_SHARED"
  grep -q "^readback $node $expect_shared *ranks-ok *after-ok\$" "$out" ||
    fail "job $id: $node did not read back every byte: $(grep "^readback $node" "$out")"
done
# Goal 1: what had its only copy on n3 is gone, on every node; the rest reads.
on3=$(sed -n 's/^single on n3:\(.*\) elsewhere:.*/\1/p' "$out")
off3=$(sed -n 's/^single on n3:.* elsewhere:\(.*\)/\1/p' "$out")
[ -n "$on3" ] && [ -n "$off3" ] || fail "job $id: no goal-1 file on n3 and one elsewhere: $(grep '^single on' "$out")"
for node in $MN_NODES; do
  for f in $on3; do grep -q "^single $node $f lost after" "$out" || fail "job $id: $f (only on n3) not lost on $node"; done
  for f in $off3; do grep -qx "single $node $f read" "$out" || fail "job $id: $f (not on n3) not read on $node"; done
done
if (cd "$OUT/shared-out-$id" 2>/dev/null && sha256sum --quiet -c "$OUT/input.sums"); then
  echo "job $id: 6 ranks on 3 nodes wrote one shared file and their own; n3's server killed and restarted; all 3 nodes read every byte of goal 2 and wrote again; goal 1 lost$on3 (only on n3), kept$off3; stage in and out checksums equal"
  grep "^single .* lost after" "$out"
else
  fail "job $id: the staged-out ranks differ"
fi
need_states "$id" $MN_NODES
check_clean "$id"
shared_clean "$id"

# 7. the engine cannot start: the master's port on n1 is taken; the job asks
# nothing, the nodes' [shared] default = true gives it job-wide scratch ------
next=$((id + 1))
mport=$((47400 + 3 * (next % 100)))
nsenter --net="/run/netns/$MN_TAG-n1" python3 -c '
import socket, sys, time
s = socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); time.sleep(120)' \
  "$(mn_addr n1)" "$mport" &
blocker=$!
sleep 0.5
for node in $MN_NODES; do echo "default = true" >>"$D/nodes/$node/node.toml"; done
id=$(submit -J noshared -N 3 "$D/big.sh")
[ "$id" = "$next" ] || fail "job id $id, not the $next whose port was taken"
wait_job_done "$id"
for node in $MN_NODES; do sed -i '/^default = true$/d' "$D/nodes/$node/node.toml"; done
kill "$blocker"
wait "$blocker" 2>/dev/null
out="$OUT/noshared-$id.out"
[ "$(job_state "$id")" = FAILED ] || fail "job $id: $(job_state "$id"), not FAILED"
# n1's TaskProlog prints its own failure (`tierfs job env`); another node's would print the Comment.
grep -qE "(tierfs job env|tierfs scratch failed on node n1: tierfs job start): shared scratch: mfsmaster did not start on n1: .*EADDRINUSE" "$out" ||
  fail "job $id: no clear reason in its output: $(cat "$out")"
ls "$OUT" | grep -q "^ran-$id-" && fail "job $id ran tasks although shared scratch failed"
echo "job $id: $(grep -o 'shared scratch:.*' "$out" | head -1)"
check_clean "$id"
shared_clean "$id"
