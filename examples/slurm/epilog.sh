#!/bin/sh
# Slurm Epilog for tierfs per-job scratch (slurm.conf: Epilog=).
# Runs as root on the node after the job's processes are gone: copies out,
# as the job's user, what the job marked: the manifest it wrote to
# $TIERFS_STAGE_OUT (see docs/operations.md), and the directory
# $TIERFS_STAGE_OUT_DIR, which goes to SLURM_JOB_WORK_DIR/tierfs-stage-out.<id>.
# Then `tierfs job stop` stops what this node runs of the job-wide scratch,
# unmounts, ends the server and removes every trace, also after a server crash.
#
# Only a stop that could not clean up (exit status 7: still mounted, a server
# that does not die, an object that cannot be removed) fails the epilog, so
# Slurm drains the node for an administrator; everything else is logged.
settings="${0%/*}/tierfs-slurm.env"
[ -r "$settings" ] || settings=/etc/tierfs/slurm.env
[ -r "$settings" ] && . "$settings"
: "${TIERFS:=/usr/local/bin/tierfs}" "${TIERFS_NODE_CONFIG:=/etc/tierfs/node.toml}"
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

scratch=$("$TIERFS" job --node-config "$TIERFS_NODE_CONFIG" env 2>/dev/null |
  sed -n 's/^export TIERFS_SCRATCH=//p')
# As the job's user: it may write only where the user may, and read only its own files.
stage_out() {
  if ! out=$(setpriv --reuid="$SLURM_JOB_UID" --regid="$SLURM_JOB_GID" --clear-groups \
    "$TIERFS" stage out --no-progress "$@" 2>&1); then
    logger -t tierfs-epilog -- "job $SLURM_JOB_ID: stage-out failed: $out"
  fi
}
if [ -n "$scratch" ] && [ -f "$scratch/.stage-out.toml" ]; then
  stage_out --manifest "$scratch/.stage-out.toml"
fi
# The directory $TIERFS_STAGE_OUT_DIR goes to the job's working directory.
if [ -n "$scratch" ] && [ -d "$scratch/stage-out" ] && [ -n "${SLURM_JOB_WORK_DIR:-}" ]; then
  stage_out --report "$SLURM_JOB_WORK_DIR/tierfs-stage-out.$SLURM_JOB_ID.json" \
    "$scratch/stage-out" "$SLURM_JOB_WORK_DIR/tierfs-stage-out.$SLURM_JOB_ID"
fi

out=$("$TIERFS" job --node-config "$TIERFS_NODE_CONFIG" stop 2>&1)
status=$?
if [ "$status" -ne 0 ]; then
  logger -t tierfs-epilog -- "job $SLURM_JOB_ID: $out"
  [ "$status" -eq 7 ] && exit 1
fi
exit 0
