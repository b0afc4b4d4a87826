#!/usr/bin/env bash
# tierfs job start/stop/env without Slurm: concurrent starts against an
# admission limit (exactly as many pass as fit), idempotent start and stop,
# stop after the server was killed, a straggler holding a file, and the exit
# status of each kind of failure. Needs root and /dev/fuse.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../../support/privileged.sh"
tierfs_require "$(tierfs_missing_root)"
tierfs_require "$(tierfs_missing_fuse)"
: "${TIERFS_BIN:?}"

D=$(mktemp -d /tmp/tierfs-job-test.XXXXXX)
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
job() { "$TIERFS_BIN" job --node-config "$D/node.toml" "$@"; }
finish() {
  for id in $(seq 1 6) 10 11 12 20 21 22 23 24; do job stop --job-id "$id" >/dev/null 2>&1; done
  grep -q " $D/first " /proc/self/mountinfo && umount -l "$D/first"
  grep -o " $D/scratch/[^ ]*" /proc/self/mountinfo | while read -r m; do umount -l "$m"; done
  rm -rf "$D"
}
trap finish EXIT
cat >"$D/node.toml" <<TOML
[job]
base = "$D/scratch"
state_dir = "$D/run"
default_size = "32MiB"
stop_timeout = 2
[admission]
"numa:0" = "1GiB"
[shared]
base = "$D/shared"
state_dir = "$D/shared-state"
mount_timeout = 2
TOML
expect_status() {  # expect_status WANT WHAT COMMAND...
  local want="$1" what="$2"
  shift 2
  local out
  out=$("$@" 2>&1)
  local got=$?
  [ "$got" -eq "$want" ] || fail "$what: exit $got, not $want: $out"
  [ "$got" -eq 0 ] || [ "$(printf '%s\n' "$out" | grep -c .)" -eq 1 ] || fail "$what: not one line: $out"
}
no_traces() {  # no_traces ID: nothing of the job left
  grep -q " $D/scratch/$1 " /proc/self/mountinfo && fail "job $1: still mounted"
  [ -e "$D/scratch/$1" ] && fail "job $1: directory left"
  ls "$D/run" 2>/dev/null | grep -q "^job-$1\." && fail "job $1: records left: $(ls "$D/run")"
  # No shared memory or state directory of the mount either.
  local left
  left=$("$TIERFS_BIN" cleanup "$D/scratch/$1" 2>&1)
  [ "$left" = "nothing of a mount on $D/scratch/$1 was left" ] || fail "job $1: cleanup found: $left"
}

# A mount made before any job (tierfs mount, tierfs@) makes its state
# directory's parents, and by default that parent is the job records'
# directory: it must still let the job's user read its record, which the
# TaskProlog does (`tierfs job env` as the user). Made 0700, every job on a
# node whose first mount was not a job's failed: "has no tierfs scratch".
chmod 0755 "$D"
mkdir -p "$D/first"
printf '[mount]\nstate_dir = "%s"\n[[tier]]\nname = "dram"\nregions = ["numa:0"]\nsize = "16MiB"\n' \
  "$D/run/first" >"$D/first.toml"
if "$TIERFS_BIN" mount --config "$D/first.toml" "$D/first" >"$D/first.log" 2>&1; then
  [ "$(stat -c %a "$D/run")" = 755 ] || fail "a mount made $D/run with mode $(stat -c %a "$D/run"), not 755"
  [ "$(stat -c %a "$D/run/first")" = 700 ] || fail "the mount's own state directory has mode $(stat -c %a "$D/run/first")"
  expect_status 0 "start 10 after a mount" job start --job-id 10 --uid 65534 --gid 65534
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$TIERFS_BIN" job --node-config "$D/node.toml" env --job-id 10 2>&1)
  grep -qx "export TIERFS_SCRATCH=$D/scratch/10" <<<"$out" || fail "env as the job's user after a mount: $out"
  expect_status 0 "stop 10" job stop --job-id 10
  umount "$D/first" || fail "umount $D/first"
else
  fail "tierfs mount: $(cat "$D/first.log")"
fi

# Concurrent starts: 300 MiB each against 1 GiB: exactly three pass.
for id in 1 2 3 4 5; do
  (job start --job-id "$id" --uid 0 --gid 0 --size 300MiB >"$D/start-$id.out" 2>&1; echo $? >"$D/start-$id.rc") &
done
wait
passed=0 refused=0
for id in 1 2 3 4 5; do
  case "$(cat "$D/start-$id.rc")" in
    0) passed=$((passed + 1)) ;;
    4)  # nothing mounted or made; only the reason stays, for env, until stop
      refused=$((refused + 1))
      [ -e "$D/scratch/$id" ] && fail "refused job $id: directory made"
      [ -e "$D/run/job-$id.json" ] && fail "refused job $id: recorded" ;;
    *) fail "job $id: $(cat "$D/start-$id.out")" ;;
  esac
done
[ "$passed" -eq 3 ] && [ "$refused" -eq 2 ] || fail "concurrent starts: $passed passed, $refused refused (want 3 and 2)"
for id in 1 2 3 4 5; do expect_status 0 "stop $id" job stop --job-id "$id"; no_traces "$id"; done

# Idempotent start and stop; env; a second stop.
expect_status 0 "start" job start --job-id 10 --uid 65534 --gid 65534
expect_status 0 "start again" job start --job-id 10 --uid 65534 --gid 65534
[ "$(stat -c '%u:%g %a' "$D/scratch/10")" = "65534:65534 700" ] || fail "root is $(stat -c '%u:%g %a' "$D/scratch/10")"
job env --job-id 10 | grep -qx "export TIERFS_SCRATCH=$D/scratch/10" || fail "env: $(job env --job-id 10 2>&1)"
expect_status 0 "stop" job stop --job-id 10
expect_status 0 "stop again" job stop --job-id 10
expect_status 6 "env after stop" job env --job-id 10
no_traces 10

# The server killed: its numa: memory survives it (the next server adopts
# it): named shared memory recorded in the mount's state directory on the
# server path, the tmpfs mounted in that directory, with the job's files, on
# the kernel path (where the built-in default's tier takes it). Stop removes it, the state directory, the mount and the
# records (tierfs cleanup's code).
expect_status 0 "start 11" job start --job-id 11 --uid 0 --gid 0
pid=$(sed -n 's/.*"server_pid": \([0-9]*\).*/\1/p' "$D/run/job-11.json")
state=$(ls -l "/proc/$pid/fd" | grep -o '/run/tierfs/[0-9a-f]*$' | head -n 1)
memory=$(ls -l "/proc/$pid/fd" | grep -o '/dev/shm/tierfs\.[0-9]*\.[0-9a-f]*' | head -n 1)
kernel_store=
if [ -z "$memory" ] && [ -n "$state" ]; then
  kernel_store=$(awk -v s="$state/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo | head -n 1)
  memory=$kernel_store
fi
[ -n "$memory" ] && [ -n "$state" ] ||
  fail "server $pid has no numa: memory (named shm or kernel-path tmpfs: $memory) or state directory ($state)"
echo tierfs-job-11-marker >"$D/scratch/11/kept"
sync "$D/scratch/11/kept"
present() { [ -e "$1" ] || grep -q " $1 " /proc/self/mountinfo; }
kill -9 "$pid"
sleep 0.2
present "$memory" || fail "$memory went with the killed server: nothing left to adopt"
if [ -n "$kernel_store" ]; then
  grep -rqs tierfs-job-11-marker "$kernel_store" || fail "$kernel_store lost the job's file"
else
  grep -qsx "${memory#/dev/shm}" "$state"/shm.* || fail "$memory is not recorded in $state"
fi
expect_status 0 "stop after kill" job stop --job-id 11
present "$memory" && fail "$memory left after stop"
[ -e "$state" ] && fail "$state left after stop"
no_traces 11

# A straggler holds a file open: the unmount is lazy, the server is ended.
expect_status 0 "start 12" job start --job-id 12 --uid 0 --gid 0
(exec 3>"$D/scratch/12/held"; sleep 30) &
straggler=$!
sleep 0.3
expect_status 0 "stop with a straggler" job stop --job-id 12
kill "$straggler" 2>/dev/null
no_traces 12

# Each kind of failure has its status.
expect_status 2 "bad job id" job start --job-id "../x" --uid 0 --gid 0
expect_status 2 "bad size" job start --job-id 13 --uid 0 --gid 0 --size 12
expect_status 4 "too large for the allowance" job start --job-id 13 --uid 0 --gid 0 --size 2GiB
expect_status 4 "env reports the refusal" job env --job-id 13
expect_status 0 "stop a refused job" job stop --job-id 13
no_traces 13
echo 'nonsense = 1' >"$D/bad.toml"
expect_status 3 "bad node configuration" "$TIERFS_BIN" job --node-config "$D/bad.toml" start --job-id 14 --uid 0 --gid 0
expect_status 2 "no job id" env -u SLURM_JOB_ID "$TIERFS_BIN" job --node-config "$D/node.toml" stop

# Job-wide scratch (--shared): bad requests are refused before anything
# starts; an engine that cannot start leaves neither the job's scratch nor
# any of its own state. (It runs for real in the Slurm multi-node suite.)
shared_left() {  # shared_left ID: nothing of the job-wide scratch left
  no_traces "$1"
  [ -e "$D/shared/$1" ] && fail "job $1: job-wide mount point left"
  [ -e "$D/shared-state/$1" ] && fail "job $1: job-wide state left: $(ls -R "$D/shared-state/$1")"
  pgrep -f "$D/shared-state/$1/" && fail "job $1: MooseFS daemons left"
}
expect_status 2 "--shared without --nodes" job start --job-id 20 --uid 0 --gid 0 --shared
expect_status 2 "--shared, no node is this one" job start --job-id 20 --uid 0 --gid 0 --shared --nodes 198.51.100.1,198.51.100.2
out=$(job env --job-id 20 2>&1)
grep -q "none of the job's nodes (198.51.100.1,198.51.100.2) is an address of this node" <<<"$out" ||
  fail "env does not name the bad node list: $out"
expect_status 2 "--shared, a node without an address" job start --job-id 20 --uid 0 --gid 0 --shared --nodes 127.0.0.1,no-such-node.invalid
expect_status 2 "--shared, a uid without a name" job start --job-id 20 --uid 4242420 --gid 0 --shared --nodes 127.0.0.1,127.0.0.2
expect_status 2 "--shared, a job id not a number" job start --job-id x20 --uid 0 --gid 0 --shared --nodes 127.0.0.1,127.0.0.2
expect_status 0 "stop 20" job stop --job-id 20
shared_left 20
# MooseFS not on PATH: status 8, named, nothing left.
expect_status 8 "--shared, mfsmaster not installed" env PATH=/nonexistent "$TIERFS_BIN" job --node-config "$D/node.toml" \
  start --job-id 21 --uid 0 --gid 0 --shared --nodes 127.0.0.1,127.0.0.2
out=$(job env --job-id 21 2>&1)
grep -q "shared scratch: mfsmaster is not installed" <<<"$out" || fail "env 21: $out"
expect_status 0 "stop 21" job stop --job-id 21
shared_left 21
# The master starts but no mount comes (the chunkserver refuses a master on
# loopback): status 8 after mount_timeout, the master stopped again.
if command -v mfsmaster >/dev/null; then
  expect_status 8 "--shared on loopback" job start --job-id 22 --uid 65534 --gid 65534 --shared --nodes 127.0.0.1,127.0.0.2
  expect_status 0 "stop 22" job stop --job-id 22
  shared_left 22
fi
# The first node's master died and left its metadata: a start there again
# refuses to lay an empty file system over it (status 8), and keeps it.
mkdir -p "$D/shared-state/24/master"
echo "DATA_PATH = $D/shared-state/24/master" >"$D/shared-state/24/master.cfg"
echo namespace >"$D/shared-state/24/master/metadata.mfs.back"
expect_status 8 "--shared over a dead master's metadata" job start --job-id 24 --uid 0 --gid 0 --shared --nodes 127.0.0.1,127.0.0.2
out=$(job env --job-id 24 2>&1)
grep -q "the job's master is not running but left its metadata in $D/shared-state/24/master" <<<"$out" || fail "env 24: $out"
[ "$(cat "$D/shared-state/24/master/metadata.mfs.back" 2>/dev/null)" = namespace ] || fail "the dead master's metadata was not kept"
expect_status 0 "stop 24" job stop --job-id 24
shared_left 24
# One node: no job-wide scratch, even when asked.
expect_status 0 "--shared on one node" job start --job-id 23 --uid 0 --gid 0 --shared --nodes 127.0.0.1
job env --job-id 23 | grep -q TIERFS_SHARED && fail "a job of one node got job-wide scratch"
expect_status 0 "stop 23" job stop --job-id 23
shared_left 23

[ "$failures" -eq 0 ] || exit 1
echo "PASS: job lifecycle"
