# Sourced by the multi-node Slurm suite: a private three-node Slurm cluster on
# one machine. Debian's slurmd is built without --enable-multiple-slurmd
# (libslurmfull refuses a NodeHostName twice), so each node is a slurmd in a
# network and UTS namespace of its own (its own address and host name), on a
# bridge that mn_net_up creates and mn_stop removes. slurmctld and munged run
# in the host's namespaces: slurmctld listens on the bridge's address, munged
# on a socket in $dir (path sockets cross network namespaces). The nodes
# share the host's mount namespace, as the test must see their mounts, but
# each has its own tierfs node configuration, state directory and scratch
# base under $dir/nodes/NAME, as separate machines would.
#
# Traffic stays on the bridge: its /24 (10.213.X.0, a free X) has no route
# out. mn_stop ends every daemon it started (by its pid file) and removes the
# namespaces and the bridge; it is safe to call twice.

MN_NODES="n1 n2 n3"

# mn_net_up DIR: the bridge, one namespace per node, a veth pair into each.
mn_net_up() {
  local dir="$1" x i=0 node tag="tfmn$$"
  for x in $(seq $(($$ % 200 + 20)) 254) $(seq 20 254); do
    ip -4 route show | grep -q "^10\.213\.$x\." || break
  done
  MN_NET="10.213.$x"
  MN_BRIDGE="${tag}b"
  MN_TAG="$tag"
  # Recorded first, so that mn_stop removes whatever got made before a failure.
  echo "$MN_BRIDGE" >"$dir/bridge"
  ip link add "$MN_BRIDGE" type bridge || return 1
  ip addr add "$MN_NET.1/24" dev "$MN_BRIDGE" || return 1
  ip link set "$MN_BRIDGE" up || return 1
  for node in $MN_NODES; do
    i=$((i + 1))
    echo "$tag-$node" >>"$dir/netns"
    ip netns add "$tag-$node" || return 1
    ip link add "${tag}h$i" type veth peer name "${tag}c$i" || return 1
    ip link set "${tag}h$i" master "$MN_BRIDGE" up || return 1
    ip link set "${tag}c$i" netns "$tag-$node" || return 1
    ip -n "$tag-$node" addr add "$MN_NET.$((10 + i))/24" dev "${tag}c$i" || return 1
    ip -n "$tag-$node" link set "${tag}c$i" up || return 1
    ip -n "$tag-$node" link set lo up || return 1
  done
}

mn_addr() {  # mn_addr NODE: the node's address on the bridge
  local i=0 node
  for node in $MN_NODES; do
    i=$((i + 1))
    [ "$node" = "$1" ] && echo "$MN_NET.$((10 + i))"
  done
}

# mn_conf DIR SCRIPTS PORT TMP_MIB: slurm.conf; per-node paths through %n.
mn_conf() {
  local dir="$1" scripts="$2" port="$3" tmp_mib="$4" node
  {
    cat <<CONF
ClusterName=tierfsmn
SlurmctldHost=$(hostname -s)($MN_NET.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/nodes/%n/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/nodes/%n/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/nodes/%n/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerParameters=defer_batch
MessageTimeout=10
KillWait=5
PrologFlags=Alloc
Prolog=$scripts/prolog.sh
Epilog=$scripts/epilog.sh
TaskProlog=$scripts/task_prolog.sh
CONF
    for node in $MN_NODES; do
      echo "NodeName=$node NodeHostname=$node NodeAddr=$(mn_addr "$node") CPUs=2 RealMemory=1000 TmpDisk=$tmp_mib Features=tierfs_shared State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=10 State=UP"
  } >"$dir/slurm.conf"
}

mn_start() {
  local dir="$1" node i
  mkdir -p "$dir/munge" "$dir/state"
  # Jobs run srun and squeue as their user: the socket must be reachable (munged
  # still insists that the key is root's alone).
  chmod 0755 "$dir/munge"
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed" || return 1
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$dir/slurm.conf" -i || return 1
  for node in $MN_NODES; do
    mkdir -p "$dir/nodes/$node/spool"
    # A host name of its own: what the node's tools (and tierfs's messages) call it.
    nsenter --net="/run/netns/$MN_TAG-$node" unshare --uts \
      sh -c 'hostname "$1" && shift && exec "$@"' sh "$node" \
      slurmd -f "$dir/slurm.conf" -N "$node" || return 1
  done
  for i in $(seq 1 200); do
    [ "$(sinfo -h -N -o '%T' 2>/dev/null | grep -cx idle)" -eq 3 ] && return 0
    sleep 0.2
  done
  echo "cluster: the nodes did not become idle: $(sinfo -h -N -o '%N %T %E' 2>&1)" >&2
  return 1
}

mn_stop() {
  local dir="$1" f pid i ns
  for f in "$dir"/nodes/*/slurmd.pid "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || { rm -f "$f"; continue; }
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  if [ -s "$dir/netns" ]; then
    while read -r ns; do ip netns del "$ns" 2>/dev/null; done <"$dir/netns"
    rm -f "$dir/netns"
  fi
  if [ -s "$dir/bridge" ]; then
    ip link del "$(cat "$dir/bridge")" 2>/dev/null
    rm -f "$dir/bridge"
  fi
}
