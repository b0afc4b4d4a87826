#!/bin/sh
# Slurm Prolog for tierfs per-job scratch (slurm.conf: Prolog=, PrologFlags=Alloc).
# Runs as root on the node when the job is allocated: mounts BASE/$SLURM_JOB_ID,
# owned by the job's user, sized by the job's --tmp (sbatch --tmp=8G) or the
# node's default_size, and for a job that wants it this node's part of the
# job-wide scratch (`tierfs job start --shared`). Uses only Slurm's documented prolog variables
# (SLURM_JOB_ID, SLURM_JOB_UID, SLURM_JOB_GID, which `tierfs job` reads itself).
#
# It always exits 0: a failing prolog drains the node and requeues the job.
# A refused or failed start leaves nothing mounted; its reason is recorded,
# the TaskProlog prints it into the job's output and fails the job, and it is
# put into the job's Comment (scontrol show job) and syslog here.
settings="${0%/*}/tierfs-slurm.env"
[ -r "$settings" ] || settings=/etc/tierfs/slurm.env
[ -r "$settings" ] && . "$settings"
: "${TIERFS:=/usr/local/bin/tierfs}" "${TIERFS_NODE_CONFIG:=/etc/tierfs/node.toml}"
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

# The job's --tmp per node as Slurm spells it ("8G", "500M"; "0" when not asked).
job=$(scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null)
size=$(echo "$job" | tr ' ' '\n' | sed -n 's/^MinTmpDiskNode=//p')
case "$size" in
  "" | 0) set -- ;;
  *) set -- --size "$size" ;;
esac
# Job-wide scratch (docs/operations.md): asked for with --constraint=tierfs_shared,
# or given to every job of several nodes by [shared] default in node.toml.
# tierfs needs the job's node addresses (NodeAddr, one query for all, in
# Slurm's node order: the first runs the master); it finds itself among them.
case " $(echo "$job" | tr ' ' '\n' | sed -n 's/^Features=//p' | tr '&,|' '   ') " in
  *" tierfs_shared "*) set -- "$@" --shared ;;
esac
# Slurm 22.05 gives the Prolog SLURM_NODELIST (SLURM_JOB_NODELIST in later releases).
if [ "${SLURM_JOB_NUM_NODES:-1}" -gt 1 ]; then
  addrs=$(scontrol show node -o "${SLURM_JOB_NODELIST:-$SLURM_NODELIST}" 2>/dev/null |
    tr ' ' '\n' | sed -n 's/^NodeAddr=//p' | paste -sd, -)
  [ -n "$addrs" ] && set -- "$@" --nodes "$addrs"
fi

# The Comment starts with a fixed phrase and names the node: in a multi-node
# job the TaskProlog of every other node finds it there and fails the job too.
# The first failure of the job is kept: later ones are often its consequence
# (no master, so no mount elsewhere).
failed() {
  logger -t tierfs-prolog -- "job $SLURM_JOB_ID: $1"
  case "$(squeue -h -j "$SLURM_JOB_ID" -o %k 2>/dev/null)" in
    "tierfs scratch failed on node "*) return ;;
  esac
  scontrol update JobId="$SLURM_JOB_ID" \
    Comment="tierfs scratch failed on node ${SLURMD_NODENAME:-$(hostname)}: $1" >/dev/null 2>&1 || true
}
if ! out=$("$TIERFS" job --node-config "$TIERFS_NODE_CONFIG" start "$@" 2>&1); then
  failed "$out"
fi
exit 0
