# Job-wide scratch for multi-node jobs, sourced by prolog.sh, epilog.sh and
# task_prolog.sh: one MooseFS file system per job, whose chunks live on every
# node's tierfs scratch, mounted at TIERFS_SHARED_BASE/<job id> on every node
# of the job (docs/operations.md, "Job-wide scratch").
#
# A job asks with `--constraint=tierfs_shared` (a node Feature: Slurm then
# schedules it only on nodes where the site installed MooseFS, and the prolog
# reads it from `scontrol show job`); TIERFS_SHARED_DEFAULT=1 gives it to
# every job of several nodes. A job of one node gets none: its per-node
# scratch is already the whole job's.
#
# Per node: a chunkserver whose chunk folder is $TIERFS_SCRATCH/.moosefs, and
# mfsmount. On the job's first node also the master. Their configuration,
# lock files and the master's metadata are in TIERFS_SHARED_STATE/<job id>
# (local, not on tierfs: a dead tierfs server must not keep the epilog from
# finding and stopping them). Every daemon runs as the
# job's user; its ports derive from the job id: master base+3k..base+3k+2,
# chunkserver base+300+k, k = id % 100. The epilog of each node stops what
# that node started, then tierfs unmounts the scratch under it.
: "${TIERFS_SHARED_BASE:=/scratch-shared}" "${TIERFS_SHARED_PORT_BASE:=47400}"
: "${TIERFS_SHARED_STATE:=/run/tierfs-shared}" "${TIERFS_SHARED_GOAL:=2}" "${TIERFS_SHARED_DEFAULT:=0}"
: "${TIERFS_MOOSEFS_EMPTY:=/var/lib/mfs/metadata.mfs.empty}"

shared_ports() {
  k=$((SLURM_JOB_ID % 100))
  port_ml=$((TIERFS_SHARED_PORT_BASE + 3 * k))
  port_cs=$((port_ml + 1))
  port_cl=$((port_ml + 2))
  port_chunk=$((TIERFS_SHARED_PORT_BASE + 300 + k))
}

# The daemons print their progress; the line that says why comes before
# their closing "error occurred during initialization".
first_error() { echo "$1" | grep -m1 -iE "can't|cannot|error|fail" || echo "$1" | tail -1; }

node_addr() { scontrol show node -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n 's/^NodeAddr=//p'; }

# shared_wanted JOB_LINE: the job spans nodes and asked (Features has
# tierfs_shared), or the node gives it to every job of several nodes.
shared_wanted() {
  [ "${SLURM_JOB_NUM_NODES:-1}" -gt 1 ] || return 1
  case " $(echo "$1" | tr ' ' '\n' | sed -n 's/^Features=//p' | tr '&,|' '   ') " in
    *" tierfs_shared "*) return 0 ;;
  esac
  [ "$TIERFS_SHARED_DEFAULT" = 1 ]
}

# shared_start SCRATCH: prints one line and returns non-zero on failure,
# after removing what it made.
shared_start() {
  scratch="$1"
  dir="$TIERFS_SHARED_STATE/$SLURM_JOB_ID"
  chunks="$scratch/.moosefs"
  mnt="$TIERFS_SHARED_BASE/$SLURM_JOB_ID"
  shared_ports
  # Slurm 22.05 gives the Prolog SLURM_NODELIST (SLURM_JOB_NODELIST in later releases).
  nodes="${SLURM_JOB_NODELIST:-$SLURM_NODELIST}"
  user=$(id -nu "$SLURM_JOB_UID" 2>/dev/null) || { echo "shared scratch: no user $SLURM_JOB_UID"; return 1; }
  group=$(id -ng "$SLURM_JOB_UID" 2>/dev/null)
  first=$(scontrol show hostnames "$nodes" | head -1)
  me="${SLURMD_NODENAME:-$(hostname)}"
  master=$(node_addr "$first")
  addr=$(node_addr "$me")
  [ -n "$master" ] && [ -n "$addr" ] || { echo "shared scratch: no address of $first or $me"; return 1; }
  for tool in mfsmaster mfschunkserver mfsmount; do
    command -v "$tool" >/dev/null ||
      { echo "shared scratch: $tool is not installed (moosefs-master, -chunkserver, -client)"; return 1; }
  done
  mkdir -p "$dir" "$chunks" "$mnt" && chown "$user:$group" "$chunks" ||
    { echo "shared scratch: cannot make $dir, $chunks or $mnt"; shared_stop "$scratch"; return 1; }
  if [ "$me" = "$first" ]; then
    mkdir -p "$dir/master" && cp "$TIERFS_MOOSEFS_EMPTY" "$dir/master/metadata.mfs"
    for a in $(scontrol show hostnames "$nodes"); do
      echo "$(node_addr "$a") / rw,alldirs,maproot=0"
    done >"$dir/exports.cfg"
    : >"$dir/topology.cfg"
    cat >"$dir/master.cfg" <<CFG
WORKING_USER = $user
WORKING_GROUP = $group
DATA_PATH = $dir/master
EXPORTS_FILENAME = $dir/exports.cfg
TOPOLOGY_FILENAME = $dir/topology.cfg
MATOML_LISTEN_HOST = $master
MATOML_LISTEN_PORT = $port_ml
MATOCS_LISTEN_HOST = $master
MATOCS_LISTEN_PORT = $port_cs
MATOCL_LISTEN_HOST = $master
MATOCL_LISTEN_PORT = $port_cl
SYSLOG_IDENT = tierfs-mfsmaster-$SLURM_JOB_ID
CFG
    chown -R "$user:$group" "$dir"
    out=$(mfsmaster -c "$dir/master.cfg" start 2>&1) ||
      { echo "shared scratch: mfsmaster did not start on $me: $(first_error "$out")"; shared_stop "$scratch"; return 1; }
  fi
  echo "$chunks" >"$dir/hdd.cfg"
  cat >"$dir/chunkserver.cfg" <<CFG
WORKING_USER = $user
WORKING_GROUP = $group
DATA_PATH = $dir
HDD_CONF_FILENAME = $dir/hdd.cfg
HDD_LEAVE_SPACE_DEFAULT = 4MiB
MASTER_HOST = $master
MASTER_PORT = $port_cs
MASTER_RECONNECTION_DELAY = 1
BIND_HOST = $addr
CSSERV_LISTEN_HOST = $addr
CSSERV_LISTEN_PORT = $port_chunk
SYSLOG_IDENT = tierfs-mfschunkserver-$SLURM_JOB_ID
CFG
  chown -R "$user:$group" "$dir"
  out=$(mfschunkserver -c "$dir/chunkserver.cfg" start 2>&1) ||
    { echo "shared scratch: mfschunkserver did not start on $me: $(first_error "$out")"; shared_stop "$scratch"; return 1; }
  # The master may start later than this node's prolog: mfsmount retries for a while.
  i=0
  until mfsmount "$mnt" -H "$master" -P "$port_cl" >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -ge 40 ] && { echo "shared scratch: mfsmount of $master:$port_cl failed on $me"; shared_stop "$scratch"; return 1; }
    sleep 0.5
  done
  if [ "$me" = "$first" ]; then
    chown "$SLURM_JOB_UID:$SLURM_JOB_GID" "$mnt" && chmod 0700 "$mnt" &&
      mfssetgoal -r "$TIERFS_SHARED_GOAL" "$mnt" >/dev/null ||
      { echo "shared scratch: cannot set up $mnt on $me"; shared_stop "$scratch"; return 1; }
  fi
  return 0
}

# shared_stop SCRATCH: stops what this node started for the job; safe when
# nothing was. Returns non-zero when something could not be removed.
shared_stop() {
  scratch="$1"
  dir="$TIERFS_SHARED_STATE/$SLURM_JOB_ID"
  mnt="$TIERFS_SHARED_BASE/$SLURM_JOB_ID"
  status=0
  if grep -q " $mnt fuse" /proc/self/mounts; then
    umount "$mnt" 2>/dev/null || umount -l "$mnt" || status=1
  fi
  for daemon in mfschunkserver:chunkserver mfsmaster:master; do
    cfg="$dir/${daemon#*:}.cfg"
    [ -f "$cfg" ] || continue
    # stop waits for the daemon; kill is for one stuck on a dead tierfs mount.
    timeout 30 "${daemon%%:*}" -c "$cfg" stop >/dev/null 2>&1 ||
      "${daemon%%:*}" -c "$cfg" kill >/dev/null 2>&1
  done
  [ -d "$mnt" ] && { rmdir "$mnt" 2>/dev/null || status=1; }
  rm -rf "$dir"
  return $status
}
