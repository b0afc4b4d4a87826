# Sourced by the Slurm suite: a private one-node Slurm cluster on localhost
# (munged, slurmctld, slurmd) in $SLURM_TEST_DIR, with its own munge key and
# socket, so nothing under /etc is touched. cluster_start writes slurm.conf
# with the given prolog, epilog and task prolog; cluster_stop ends every
# daemon it started (by the pid files they wrote) and is safe to call twice.

cluster_conf() {
  local dir="$1" scripts="$2" tmp_disk_mib="$3" port_base="$4"
  cat >"$dir/slurm.conf" <<CONF
ClusterName=tierfstest
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port_base
SlurmdPort=$((port_base + 1))
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
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
NodeName=$(hostname -s) NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 TmpDisk=$tmp_disk_mib State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=10 State=UP
CONF
}

cluster_start() {
  local dir="$1"
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool"
  chmod 0700 "$dir/munge"
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed" || return 1
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$dir/slurm.conf" -i || return 1
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
  local dir="$1" f pid i
  for f in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || { rm -f "$f"; continue; }
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}
