# The vm placement suite, run inside the VM by kernel/vm/run.sh (busybox sh)
# on Debian's 6.12 kernel with 4 NUMA nodes: where the kernel puts the pages
# of a file whose shared memory policy interleaves it over nodes, measured
# with the page census (numa/page_census.h: move_pages with no target nodes),
# never from tierfs's bookkeeping. The first checks prove the measuring and
# the kernel's mechanism on plain tmpfs files; the tierfs checks run the same
# census on a tierfs kernel-path mount and are skipped, with the reason, while
# the build has no kernel path. Exits non-zero when any check failed.
set -u
helper=/vm/bin/tierfs_vm_placement
T=/tmp/vm-placement
MNT=/mnt/tierfs
mkdir -p "$T" "$MNT"
passed=0
failed=0
skipped=0
SERVER_PID=

uptime_s() { cut -d' ' -f1 /proc/uptime; }

check() { # check NAME COMMAND [ARG...]
  name=$1
  shift
  start=$(uptime_s)
  if "$@" >"$T/check.out" 2>&1; then
    passed=$((passed + 1))
    verdict=PASS
  else
    failed=$((failed + 1))
    verdict=FAIL
  fi
  echo "$verdict: $name ($(awk -v a="$start" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }') s)"
  sed 's/^/    /' "$T/check.out"
}

skip() { # skip NAME REASON
  skipped=$((skipped + 1))
  echo "SKIP: $1 ($2)"
}

# A comparison against a wrong expectation must report a mismatch (exit 1,
# not an error), or a PASS beside it would prove nothing.
fails_with_mismatch() {
  status=0
  "$@" || status=$?
  echo "exit status $status (a mismatch is 1)"
  [ "$status" -eq 1 ]
}

weights_sysfs=/sys/kernel/mm/mempolicy/weighted_interleave
set_weights() { # set_weights W0 W1 W2 W3
  n=0
  for w in "$@"; do
    echo "$w" >"$weights_sysfs/node$n" || return 1
    n=$((n + 1))
  done
}

echo "kernel $(uname -r); $VM_NODES NUMA nodes (online $(cat /sys/devices/system/node/online))"
[ "$VM_NODES" -eq 4 ] || { echo "the placement suite wants 4 nodes, the VM has $VM_NODES"; exit 1; }

EQUAL=0:1,1:1,2:1,3:1
WEIGHTED=0:3,1:1,2:1,3:1
SIZE=$((32 * 1024 * 1024))

# --- the kernel's mechanism, measured -------------------------------------------------
interleave_by() { # interleave_by write|fault
  "$helper" policy-file /dev/shm/equal "$SIZE" --nodes 0,1,2,3 --by "$1" &&
    "$helper" census /dev/shm/equal --weights "$EQUAL" --granularity 4096
}
check "a tmpfs file interleaved over nodes 0-3, filled by write(), has a quarter of its pages on each node in 1-page runs" \
  interleave_by write
check "control: the census of that file fails against weights 3:1:1:1" \
  fails_with_mismatch "$helper" census /dev/shm/equal --weights "$WEIGHTED" --granularity 4096
check "control: the census of that file fails against a 64 KiB granularity" \
  fails_with_mismatch "$helper" census /dev/shm/equal --weights "$EQUAL" --granularity 65536
check "control: the census of that file fails against nodes 0-2 only" \
  fails_with_mismatch "$helper" census /dev/shm/equal --weights 0:1,1:1,2:1 --granularity 4096

move_in_place() {
  "$helper" rebind /dev/shm/equal --nodes 2,3 &&
    "$helper" census /dev/shm/equal --weights 2:1,3:1 --granularity 4096
}
check "moved in place to an interleave over nodes 2-3 (mbind MPOL_MF_MOVE), its pages are half on each" \
  move_in_place
rm -f /dev/shm/equal
check "a tmpfs file interleaved over nodes 0-3, filled through a shared mapping, has a quarter on each node" \
  interleave_by fault
rm -f /dev/shm/equal

weighted_by_write() {
  set_weights 3 1 1 1 || return 1
  cat "$weights_sysfs"/node* | tr '\n' ' '
  echo "(sysfs weights of nodes 0-3)"
  "$helper" policy-file /dev/shm/weighted "$SIZE" --nodes 0,1,2,3 --weighted &&
    "$helper" census /dev/shm/weighted --weights "$WEIGHTED" --granularity 4096
}
if [ -d "$weights_sysfs" ]; then
  check "a tmpfs file with weighted interleave 3:1:1:1 over nodes 0-3 has 1/2, 1/6, 1/6, 1/6 of its pages in runs of 3 and 1 pages" \
    weighted_by_write
  check "control: the census of that file fails against equal weights" \
    fails_with_mismatch "$helper" census /dev/shm/weighted --weights "$EQUAL" --granularity 4096
  rm -f /dev/shm/weighted
else
  skip "weighted interleave" "this kernel has no $weights_sysfs"
fi

huge_interleave() {
  mkdir -p /mnt/huge && mount -t tmpfs -o huge=always,size=256m tmpfs /mnt/huge || return 1
  "$helper" policy-file /mnt/huge/equal $((64 * 1024 * 1024)) --nodes 0,1,2,3 &&
    "$helper" census /mnt/huge/equal --weights "$EQUAL" --granularity $((2 * 1024 * 1024))
}
check "on a huge=always tmpfs the same policy places 2 MiB runs, a quarter on each node" \
  huge_interleave
check "control: the census of that file fails against a 4 KiB granularity" \
  fails_with_mismatch "$helper" census /mnt/huge/equal --weights "$EQUAL" --granularity 4096
rm -f /mnt/huge/equal
umount /mnt/huge 2>/dev/null

# --- a tierfs kernel-path mount ----------------------------------------------------------
# A 4-way tier and a weighted tier over the same nodes, both on the kernel path;
# files under w/ start on the weighted one.
STATE="$T/state"
cat >"$T/tierfs.toml" <<EOF
[mount]
state_dir = "$STATE"
set_node_weights = true

[[tier]]
name = "four"
regions = ["numa:0", "numa:1", "numa:2", "numa:3"]
size = "256MiB"
granularity = "4KiB"
data_path = "kernel"

[[tier]]
name = "weighted"
regions = ["numa:0", "numa:1", "numa:2", "numa:3"]
size = "256MiB"
granularity = "4KiB"
weights = [3, 1, 1, 1]
data_path = "kernel"

[[placement]]
path = "w/*"
tier = "weighted"

[defaults]
tier = "four"
EOF

mounted() { awk -v m="$MNT" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }
start_mount() {
  tierfs mount -f --config "${CONFIG_FILE:-$T/tierfs.toml}" "$MNT" >"$T/server.log" 2>&1 &
  SERVER_PID=$!
  i=0
  while [ $i -lt 600 ]; do
    mounted && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
    i=$((i + 1))
  done
  echo "the mount did not come up; server log:"
  cat "$T/server.log"
  return 1
}

# Through the mount: with FUSE passthrough the mapping is the backing file's,
# so the census sees the pages the tier's policy placed; tierfs map shows the same.
census_on_mount() { # FILE WEIGHTS
  "$helper" census "$1" --weights "$2" --granularity 4096 || return 1
  tierfs map --pages "$1"
}
write_both() {
  start_mount || return 1
  mkdir -p "$MNT/w" &&
    dd if=/dev/urandom of="$MNT/equal" bs=1M count=32 2>/dev/null &&
    dd if=/dev/urandom of="$MNT/w/weighted" bs=1M count=32 2>/dev/null &&
    (cd "$MNT" && sha256sum equal w/weighted) >"$T/sums" || return 1
  census_on_mount "$MNT/equal" "$EQUAL" && census_on_mount "$MNT/w/weighted" "$WEIGHTED"
}
# In place (one tmpfs, both tiers 4 KiB): the kernel moves the pages; the
# two tiers share every node, so each page must reach its own interleave node.
migrate_between_tiers() {
  tierfs migrate --tier weighted "$MNT/equal" || return 1
  census_on_mount "$MNT/equal" "$WEIGHTED" || return 1
  tierfs migrate --tier four "$MNT/w/weighted" || return 1
  census_on_mount "$MNT/w/weighted" "$EQUAL" && (cd "$MNT" && sha256sum -c "$T/sums")
}
# Another process maps every page of the file while it moves: the pages it
# maps move too (MPOL_MF_MOVE_ALL), and its mapping reads the same bytes.
migrate_mapped() {
  rm -f "$T/ready"
  "$helper" hold-map "$MNT/equal" "$T/ready" &
  holder=$!
  i=0
  while [ ! -e "$T/ready" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  [ -e "$T/ready" ] || { kill "$holder"; echo "the mapping was not made"; return 1; }
  grep -c "$MNT/equal" "/proc/$holder/maps" | sed 's/^/mappings of the file in the holder: /'
  status=0
  tierfs migrate --tier four "$MNT/equal" && census_on_mount "$MNT/equal" "$EQUAL" &&
    tierfs migrate --tier weighted "$MNT/equal" && census_on_mount "$MNT/equal" "$WEIGHTED" ||
    status=1
  kill "$holder"
  wait "$holder" 2>/dev/null
  [ "$status" -eq 0 ] && (cd "$MNT" && sha256sum -c "$T/sums")
}
remount_with() { # CONFIG: the running server unmounted, a new one on CONFIG
  fusermount3 -u "$MNT" && wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=
  CONFIG_FILE=$1
  export CONFIG_FILE
  start_mount
}
stop_dead_server() {
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=
  # The dead server's mount goes; its state and backing files stay for the next one.
  umount -l "$MNT"
}
kill_and_remount() {
  kill -9 "$SERVER_PID" || return 1
  stop_dead_server || return 1
  start_mount || return 1
  (cd "$MNT" && sha256sum -c "$T/sums") || return 1
  census_on_mount "$MNT/equal" "$WEIGHTED" && census_on_mount "$MNT/w/weighted" "$EQUAL"
}
# The server dies after the file took its new tier's name and before its
# pages moved: the next server finishes the move.
crash_mid_move() {
  # kill -9: a clean stop of this scratch mount would remove its state.
  kill -9 "$SERVER_PID" && stop_dead_server || return 1
  export TIERFS_CRASH_AT=kmove.after_begin
  start_mount
  status=$?
  unset TIERFS_CRASH_AT
  [ "$status" -eq 0 ] || return 1
  tierfs migrate --tier four "$MNT/equal" && { echo "the server did not die mid-move"; return 1; }
  stop_dead_server || return 1
  ls "$STATE/kernel-store.page"
  start_mount || return 1
  grep "finished its move" "$T/server.log" || { echo "no finished move in the log"; return 1; }
  (cd "$MNT" && sha256sum -c "$T/sums") || return 1
  census_on_mount "$MNT/equal" "$EQUAL" && census_on_mount "$MNT/w/weighted" "$EQUAL"
}

# A full tier: "near" (nodes 0-1, 8 MiB, watermarks) above "far" (nodes
# 2-3), one tmpfs, the mover looking every 100 ms.
cat >"$T/full.toml" <<EOF
[mount]
state_dir = "$T/state-full"
[mover]
interval_ms = 100
[[tier]]
name = "near"
regions = ["numa:0", "numa:1"]
size = "8MiB"
granularity = "4KiB"
data_path = "kernel"
high_watermark = 75
low_watermark = 50
[[tier]]
name = "far"
regions = ["numa:2", "numa:3"]
size = "64MiB"
granularity = "4KiB"
data_path = "kernel"
[[placement]]
path = "pinned/*"
tier = "near"
pin = true
[defaults]
tier = "near"
EOF
logged_times() { grep -c "$1" "$T/server.log"; }
wait_logged() { # PATTERN COUNT
  i=0
  while [ "$(logged_times "$1")" -lt "$2" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  [ "$(logged_times "$1")" -ge "$2" ] || { echo "not logged: $1"; tail -5 "$T/server.log"; return 1; }
}
# The pinned file fills near; what it writes after the look that found near
# full is placed on far's nodes: half its pages on 0-1, half on 2-3.
full_tier_spill() {
  remount_with "$T/full.toml" || return 1
  # One write(2) of 8 MiB from the guest's tmpfs: filled from /dev/urandom
  # in 1 MiB writes (slow under TCG) near was looked at twice mid-fill and
  # its growth estimate spilled early (1 MiB of the first 8 on nodes 2-3).
  head -c $((8 * 1024 * 1024)) /dev/urandom >"$T/fill" && mkdir -p "$MNT/pinned" &&
    dd if="$T/fill" of="$MNT/pinned/f" bs=8M count=1 2>/dev/null || return 1
  rm -f "$T/fill"
  wait_logged "tier near is full" 1 || return 1
  dd if=/dev/urandom of="$MNT/pinned/f" bs=1M count=8 seek=8 conv=notrunc 2>/dev/null || return 1
  census_on_mount "$MNT/pinned/f" "$EQUAL"
}
# With the pinned file gone near is not full; a 12 MiB file makes it so,
# and the mover demotes it (in place) to far: all its pages on 2-3.
full_tier_demote() {
  rm "$MNT/pinned/f" && wait_logged "under its capacity again" 1 || return 1
  dd if=/dev/urandom of="$MNT/g" bs=1M count=12 2>/dev/null || return 1
  ino=$(stat -c %i "$MNT/g")
  i=0
  while [ ! -e "$T/state-full/kernel-store.page/$ino.far" ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  ls "$T/state-full/kernel-store.page"
  census_on_mount "$MNT/g" 2:1,3:1
}

# A copy between the two tmpfs: "small" (4 KiB pages, nodes 0-1) and "huge"
# (2 MiB pages, nodes 2-3 weighted 1:3) keep their files in different tmpfs,
# so a move between them is a copy in the kernel (sendfile into an unnamed
# file of the other tmpfs). The copy's pages must follow the new tier's
# policy: no node in common, so a copy placed like its source fails.
COPY_STATE="$T/state-copy"
cat >"$T/copy.toml" <<EOF
[mount]
state_dir = "$COPY_STATE"
set_node_weights = true
[[tier]]
name = "small"
regions = ["numa:0", "numa:1"]
size = "256MiB"
granularity = "4KiB"
data_path = "kernel"
[[tier]]
name = "huge"
regions = ["numa:2", "numa:3"]
size = "256MiB"
granularity = "2MiB"
weights = [1, 3]
data_path = "kernel"
[defaults]
tier = "small"
EOF
SMALL=0:1,1:1
HUGE=2:1,3:3
HUGE_BYTES=$((2 * 1024 * 1024))
has_backing() { # CLASS INO: whether CLASS's tmpfs holds a backing file of INO
  for f in "$COPY_STATE/kernel-store.$1/$2".*; do [ -e "$f" ] && return 0; done
  return 1
}
# Waits until FILE's backing file is "<ino>.TIER" in CLASS's tmpfs and the
# old one is gone (a move held by a handle still being released runs when
# the release comes).
wait_copied() { # FILE CLASS TIER OLD_CLASS
  ino=$(stat -c %i "$1")
  i=0
  while { [ ! -e "$COPY_STATE/kernel-store.$2/$ino.$3" ] || has_backing "$4" "$ino"; } &&
    [ $i -lt 200 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  ls -l "$COPY_STATE/kernel-store.page" "$COPY_STATE/kernel-store.huge"
  [ -e "$COPY_STATE/kernel-store.$2/$ino.$3" ] || { echo "no $ino.$3 in kernel-store.$2"; return 1; }
}
copy_write() {
  # Debian's 6.12 gives tmpfs 2 MiB folios: a 2 MiB tier off the kernel path is a failure here.
  if ! tierfs check-config --json "$T/copy.toml" >"$T/copy-config.json" 2>&1 ||
    [ "$(grep -c '"data_path": "kernel"' "$T/copy-config.json")" -ne 2 ]; then
    cat "$T/copy-config.json"
    return 1
  fi
  remount_with "$T/copy.toml" || return 1
  dd if=/dev/urandom of="$MNT/c" bs=1M count=64 2>/dev/null &&
    (cd "$MNT" && sha256sum c) >"$T/copy.sums" || return 1
  census_on_mount "$MNT/c" "$SMALL"
}
copy_to_huge() {
  tierfs migrate --tier huge "$MNT/c" && wait_copied "$MNT/c" huge huge page || return 1
  "$helper" census "$MNT/c" --weights "$HUGE" --granularity "$HUGE_BYTES" &&
    (cd "$MNT" && sha256sum -c "$T/copy.sums")
}
copy_back() {
  tierfs migrate --tier small "$MNT/c" && wait_copied "$MNT/c" page small huge || return 1
  census_on_mount "$MNT/c" "$SMALL" && (cd "$MNT" && sha256sum -c "$T/copy.sums")
}

# Run the tierfs checks where check-config gives both tiers the kernel path;
# skip them, with its reason, where this build has none; fail on anything else.
config_status=0
tierfs check-config --json "$T/tierfs.toml" >"$T/config.json" 2>&1 || config_status=$?
tierfs_checks="a 4-way and a weighted tierfs kernel-path tier place their files' pages in their proportions
after a migration between the two tiers, each file's pages follow its new tier
a file another process maps moves between the tiers, mapped pages too
after kill -9 and a remount, the pages are still where their tiers say
a move cut by kill -9 after the rename is finished by the next server, pages and all
a full tier's file places its new pages on the next tier's nodes
the mover demotes a file off a full tier, pages and all
a file on a 4 KiB tier (nodes 0-1) has half its pages on each node in 1-page runs
copied to a 2 MiB tier (nodes 2-3, weights 1:3), its pages are 1/4 and 3/4 there in 2 MiB and 6 MiB runs
control: the census of the copy fails against the 4 KiB tier's placement
control: the census of the copy fails against a 4 KiB granularity
copied back to the 4 KiB tier, its pages are half on nodes 0 and 1 in 1-page runs
control: the census of the file copied back fails against the 2 MiB tier's placement"
if [ "$config_status" -eq 0 ] && [ "$(grep -c '"data_path": "kernel"' "$T/config.json")" -eq 2 ]; then
  check "a 4-way and a weighted tierfs kernel-path tier place their files' pages in their proportions" \
    write_both
  check "after a migration between the two tiers, each file's pages follow its new tier" \
    migrate_between_tiers
  check "a file another process maps moves between the tiers, mapped pages too" migrate_mapped
  check "after kill -9 and a remount, the pages are still where their tiers say" kill_and_remount
  check "a move cut by kill -9 after the rename is finished by the next server, pages and all" \
    crash_mid_move
  check "a full tier's file places its new pages on the next tier's nodes" full_tier_spill
  check "the mover demotes a file off a full tier, pages and all" full_tier_demote
  check "a file on a 4 KiB tier (nodes 0-1) has half its pages on each node in 1-page runs" \
    copy_write
  check "copied to a 2 MiB tier (nodes 2-3, weights 1:3), its pages are 1/4 and 3/4 there in 2 MiB and 6 MiB runs" \
    copy_to_huge
  check "control: the census of the copy fails against the 4 KiB tier's placement" \
    fails_with_mismatch "$helper" census "$MNT/c" --weights "$SMALL" --granularity 4096
  check "control: the census of the copy fails against a 4 KiB granularity" \
    fails_with_mismatch "$helper" census "$MNT/c" --weights "$HUGE" --granularity 4096
  check "copied back to the 4 KiB tier, its pages are half on nodes 0 and 1 in 1-page runs" \
    copy_back
  check "control: the census of the file copied back fails against the 2 MiB tier's placement" \
    fails_with_mismatch "$helper" census "$MNT/c" --weights "$HUGE" --granularity "$HUGE_BYTES"
elif grep -q "no kernel path" "$T/config.json"; then
  reason="kernel path not built: $(head -n 1 "$T/config.json")"
  echo "$tierfs_checks" | while read -r name; do echo "SKIP: $name ($reason)"; done
  skipped=$((skipped + $(echo "$tierfs_checks" | wc -l)))
else
  config_refused() {
    cat "$T/config.json"
    return 1
  }
  check "tierfs check-config gives both tiers the kernel path" config_refused
fi

if [ -n "$SERVER_PID" ]; then
  fusermount3 -u "$MNT" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
fi
echo "vm placement suite: $passed passed, $failed failed, $skipped skipped; the VM was up $(uptime_s) s"
[ "$failed" -eq 0 ]
