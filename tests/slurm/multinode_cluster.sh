# Sourced by the multi-node Slurm suite after cluster.sh (whose slurm.conf
# lines, munged and pid-file stop it uses): a private three-node Slurm cluster on
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
    slurm_conf_common tierfsmn "$MN_NET.1" "$port" "$dir" "$dir/nodes/%n" "$scripts"
    for node in $MN_NODES; do
      echo "NodeName=$node NodeHostname=$node NodeAddr=$(mn_addr "$node") CPUs=2 RealMemory=1000 TmpDisk=$tmp_mib Features=tierfs_shared State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=10 State=UP"
  } >"$dir/slurm.conf"
}

mn_start() {
  local dir="$1" node i
  # Jobs run srun and squeue as their user: the socket must be reachable (munged
  # still insists that the key is root's alone).
  munge_ctld_start "$dir" 0755 || return 1
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
  local dir="$1" ns
  stop_pidfiles "$dir"/nodes/*/slurmd.pid "$dir/slurmctld.pid" "$dir/munge/munged.pid"
  if [ -s "$dir/netns" ]; then
    while read -r ns; do ip netns del "$ns" 2>/dev/null; done <"$dir/netns"
    rm -f "$dir/netns"
  fi
  if [ -s "$dir/bridge" ]; then
    ip link del "$(cat "$dir/bridge")" 2>/dev/null
    rm -f "$dir/bridge"
  fi
}

# mn_cluster_up DIR TMP_MIB ALLOWANCE N2_ALLOWANCE: the scripts' settings
# (DIR/scripts/tierfs-slurm.env, pointing at DIR/bin/tierfs), one node.toml
# per node with its scratch, state and job-wide scratch under DIR/nodes/NAME
# and its "numa:0" allowance (n2's its own), a free slurmctld port pair in
# 47100-47199 (MN_PORT), the bridge and namespaces, slurm.conf and the daemons.
mn_cluster_up() {
  local dir="$1" tmp_mib="$2" allowance="$3" n2_allowance="$4" node a
  # Each node reads its own node configuration: Slurm names the node to the
  # scripts in SLURMD_NODENAME (Prolog, Epilog and tasks alike).
  cat >"$dir/scripts/tierfs-slurm.env" <<ENV
TIERFS=$dir/bin/tierfs
TIERFS_NODE_CONFIG=$dir/nodes/\${SLURMD_NODENAME}/node.toml
ENV
  chmod 0644 "$dir/scripts/tierfs-slurm.env"
  for node in $MN_NODES; do
    mkdir -p "$dir/nodes/$node"
    a="$allowance"
    [ "$node" = n2 ] && a="$n2_allowance"
    cat >"$dir/nodes/$node/node.toml" <<TOML
[job]
base = "$dir/nodes/$node/scratch"
state_dir = "$dir/nodes/$node/run"
default_size = "64MiB"
stop_timeout = 5

[admission]
"numa:0" = "$a"

# The nodes share one mount namespace here, so the job-wide mount's base
# differs per node (on a real cluster it is the same path everywhere).
[shared]
base = "$dir/nodes/$node/shared"
state_dir = "$dir/nodes/$node/shared-state"
port_base = 47400
# A lost chunk fails a read in seconds (6.4 s in one run), not after
# MooseFS's 30 retries; 5 failed a long write with ENOSPC under load once
# (docs/operations.md), 8 leaves more room.
io_retries = 8
# Test 7's nodes wait this long for a master that never starts.
mount_timeout = 12
TOML
    chmod 0644 "$dir/nodes/$node/node.toml"
  done
  MN_PORT=$(free_ports 2 $(seq 47100 2 47198)) ||
    { echo "cluster: no free port pair in 47100-47199" >&2; return 1; }
  mn_net_up "$dir" || { echo "cluster: the bridge and namespaces could not be made" >&2; return 1; }
  mn_conf "$dir" "$dir/scripts" "$MN_PORT" "$tmp_mib"
  mn_start "$dir"
}
