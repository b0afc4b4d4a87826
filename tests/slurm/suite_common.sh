# Sourced by both Slurm suites (slurm_suite.sh, multinode_suite.sh): the
# test directory with the shipped scripts linked into it, failure counting
# and the waits they share (cluster.sh has the cluster and its ports).

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# suite_setup PREFIX STOP: D (mode 0755, with D/out for the jobs, world-
# writable), the shipped scripts of examples/slurm/ linked into D/scripts,
# this build's tierfs in D/bin (the job's user must be able to run it), and
# an exit trap that runs "STOP D", lazily unmounts whatever a failed run
# left under D and removes D.
suite_setup() {
  D=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 0755 "$D"
  OUT="$D/out"
  failures=0
  suite_stop="$2"
  trap suite_finish EXIT
  mkdir -p "$D/scripts" "$OUT" "$D/bin"
  chmod 1777 "$OUT"
  local s
  for s in prolog epilog task_prolog; do
    ln -s "$TIERFS_SOURCE_ROOT/examples/slurm/$s.sh" "$D/scripts/$s.sh"
  done
  cp "$TIERFS_BIN" "$D/bin/tierfs"
}

suite_finish() {
  "$suite_stop" "$D"
  # Nothing of a failed run may outlive it.
  grep -o " $D/[^ ]*" /proc/self/mountinfo 2>/dev/null | while read -r m; do umount -l "$m"; done
  rm -rf "$D"
}

job_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }

wait_files() {  # wait_files PATH...: until all exist, at most 30 s
  local i f missing
  for i in $(seq 1 300); do
    missing=""
    for f in "$@"; do [ -e "$f" ] || missing="$missing $f"; done
    [ -z "$missing" ] && return 0
    sleep 0.1
  done
  fail "did not appear:$missing"
  return 1
}
