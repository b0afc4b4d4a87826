#!/bin/sh
# Slurm TaskProlog for tierfs per-job scratch (slurm.conf: TaskProlog=).
# Runs as the job's user before each task; Slurm turns the "export NAME=VALUE"
# lines it prints into the task's environment (TIERFS_SCRATCH, TIERFS_STAGE_OUT,
# TIERFS_SHARED for job-wide scratch) and "print ..." lines into the task's
# output. When the prolog could not mount the job's scratch, it prints the
# reason and exits with tierfs's status, which fails the job (not the node).
settings="${0%/*}/tierfs-slurm.env"
[ -r "$settings" ] || settings=/etc/tierfs/slurm.env
[ -r "$settings" ] && . "$settings"
: "${TIERFS:=/usr/local/bin/tierfs}" "${TIERFS_NODE_CONFIG:=/etc/tierfs/node.toml}"

out=$("$TIERFS" job --node-config "$TIERFS_NODE_CONFIG" env 2>&1)
status=$?
if [ "$status" -ne 0 ]; then
  echo "print $out"
  exit "$status"
fi
# A multi-node job fails as a whole when any node's prolog could not mount:
# that prolog put its reason into the job's Comment (one query per task, and
# only for jobs of several nodes). Slurm starts no task before every node's
# prolog has ended (PrologFlags=Alloc), so the Comment is there in time.
if [ "${SLURM_JOB_NUM_NODES:-1}" -gt 1 ]; then
  comment=$(squeue -h -j "$SLURM_JOB_ID" -o %k 2>/dev/null)
  case "$comment" in
    "tierfs scratch failed on node "*)
      echo "print $comment"
      exit 1
      ;;
  esac
fi
echo "$out"
exit 0
