# Sourced by the Slurm suites: a private Slurm cluster (munged, slurmctld,
# slurmd) in $SLURM_TEST_DIR, with its own munge key and socket, so nothing
# under /etc is touched. This file has the one-node cluster on localhost and
# the pieces the three-node one (multinode_cluster.sh) shares with it: the
# slurm.conf lines, munged, free ports, and stopping daemons by the pid files
# they wrote (the package test uses it for its cluster in a clean root too).
# cluster_start writes slurm.conf with the given prolog, epilog and task
# prolog; cluster_stop ends every daemon it started and is safe to call twice.

# slurm_conf_common NAME CTLD_HOST PORT DIR NODE_DIR SCRIPTS: every line but
# the nodes'. NODE_DIR holds slurmd's spool, pid and log files ("%n" in it is
# the node's name).
slurm_conf_common() {
  local name="$1" ctld_host="$2" port="$3" dir="$4" node_dir="$5" scripts="$6"
  cat <<CONF
ClusterName=$name
SlurmctldHost=$(hostname -s)($ctld_host)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$node_dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$node_dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$node_dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# A container-like VM: no cgroup plugins, processes tracked by parentage.
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
# tierfs per-job scratch (examples/slurm/slurm.conf.example)
PrologFlags=Alloc
Prolog=$scripts/prolog.sh
Epilog=$scripts/epilog.sh
TaskProlog=$scripts/task_prolog.sh
CONF
}

# munge_ctld_start DIR MODE: munged with a fresh key and its socket in DIR/munge
# (mode 0755 when the jobs' users must reach the socket), then slurmctld.
munge_ctld_start() {
  local dir="$1" mode="$2"
  mkdir -p "$dir/munge" "$dir/state"
  chmod "$mode" "$dir/munge"
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed" || return 1
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$dir/slurm.conf" -i
}

# stop_pidfiles FILE...: SIGTERM, up to 5 s, then SIGKILL, for each pid file's process.
stop_pidfiles() {
  local f pid i
  for f in "$@"; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || { rm -f "$f"; continue; }
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

# free_ports COUNT CANDIDATE...: the first candidate p such that nobody
# listens on p .. p+COUNT-1 (several engineers may run the suites at once).
free_ports() {
  local count=$1 p i
  shift
  for p in "$@"; do
    for ((i = 0; i < count; i++)); do
      (exec 3<>"/dev/tcp/127.0.0.1/$((p + i))") 2>/dev/null && continue 2
    done
    echo "$p"
    return 0
  done
  return 1
}

cluster_conf() {
  local dir="$1" scripts="$2" tmp_disk_mib="$3" port_base="$4"
  {
    slurm_conf_common tierfstest 127.0.0.1 "$port_base" "$dir" "$dir" "$scripts"
    echo "NodeName=$(hostname -s) NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 TmpDisk=$tmp_disk_mib State=UNKNOWN"
    echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=10 State=UP"
  } >"$dir/slurm.conf"
}

cluster_start() {
  local dir="$1"
  mkdir -p "$dir/spool"
  munge_ctld_start "$dir" 0700 || return 1
  slurmd -f "$dir/slurm.conf" || return 1
  local i
  for i in $(seq 1 150); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qx idle; then return 0; fi
    sleep 0.2
  done
  echo "cluster: the node did not become idle: $(sinfo -h -o '%T %E' 2>&1)" >&2
  return 1
}

cluster_stop() {
  stop_pidfiles "$1/slurmd.pid" "$1/slurmctld.pid" "$1/munge/munged.pid"
}
