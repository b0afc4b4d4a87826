# The vm suite, run inside the VM by kernel/vm/run.sh (busybox sh, not bash),
# with /vm/config's VM_NODES, VM_DAX, VM_DAX_NODES, VM_DAX_MIB in the environment.
# One boot runs every check; each prints PASS or FAIL with what it saw, and the
# script exits non-zero when any check failed.
set -u
probe=/vm/bin/tierfs_vm_probe
T=/tmp/vm-suite
MNT=/mnt/tierfs
mkdir -p "$T" "$MNT"
passed=0
failed=0
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

mounted() { awk -v m="$MNT" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }

start_mount() {
  tierfs mount -f --config "$T/tierfs.toml" "$MNT" >"$T/server.log" 2>&1 &
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

stop_mount() {
  fusermount3 -u "$MNT" || return 1
  status=0
  wait "$SERVER_PID" || status=$?
  SERVER_PID=
  [ "$status" -eq 0 ] && return 0
  echo "the server exited with $status; its log:"
  cat "$T/server.log"
  return 1
}

# The tier lines `tierfs_vm_probe stats` prints for the mount, with or without files.
stats_lines() { tierfs stats --json "$MNT" >"$T/stats.json" && "$probe" stats "$T/stats.json"; }

numa_regions=""
i=0
while [ $i -lt "$VM_NODES" ]; do
  numa_regions="$numa_regions${numa_regions:+, }\"numa:$i\""
  i=$((i + 1))
done
dax_regions=""
dax_specs=""
i=0
while [ $i -lt "$VM_DAX" ]; do
  dax_regions="$dax_regions${dax_regions:+, }\"dax:/dev/dax$i.0\""
  dax_specs="$dax_specs${dax_specs:+,}dax:/dev/dax$i.0"
  i=$((i + 1))
done
numa_specs=$(echo "$numa_regions" | tr -d '" ')
# Weighted rows on the DAX tier (2 units on the first device, 1 on each other):
# the probe must take the weights from the map to find every byte.
dax_weights=""
if [ "$VM_DAX" -gt 1 ]; then
  dax_weights="weights = [2$(printf ', 1%.0s' $(seq 2 "$VM_DAX"))]"
fi

cat >"$T/tierfs.toml" <<EOF
[[tier]]
name = "dram"
regions = [$numa_regions]
size = "64MiB"
granularity = "64KiB"

[[tier]]
name = "pmem"
regions = [$dax_regions]
granularity = "64KiB"
$dax_weights

[[placement]]
path = "*.pmem"
tier = "pmem"

[defaults]
tier = "dram"
EOF

echo "kernel $(uname -r); $VM_NODES NUMA nodes; DAX devices on nodes $VM_DAX_NODES"

# --- topology ---------------------------------------------------------------------
topology_matches() {
  tierfs topology --json >"$T/topology.json" || return 1
  "$probe" verify-topology "$T/topology.json" --nodes "$VM_NODES" \
    --dax-nodes "$(echo "$VM_DAX_NODES" | tr ' ' ,)" --dax-mib "$VM_DAX_MIB"
}
check "tierfs topology --json lists exactly the emulated nodes and DAX devices" topology_matches

# --- mount ------------------------------------------------------------------------
mount_has_both_tiers() {
  start_mount || return 1
  stats_lines | tee "$T/tiers.txt"
  grep -qx "dram used=0 regions=$numa_specs region_used=0" "$T/tiers.txt" &&
    grep -qx "pmem used=0 regions=$dax_specs region_used=0" "$T/tiers.txt"
}
check "mount with a tier over the $VM_NODES NUMA nodes and one over the $VM_DAX DAX devices" \
  mount_has_both_tiers

pmem_size=$((5 * 1024 * 1024 + 12345))
dram_size=$((3 * 1024 * 1024 + 777))

write_and_read() { # FILE SIZE SEED
  "$probe" write-pattern "$1" "$2" "$3" && "$probe" check-pattern "$1" "$2" "$3"
}
check "a pattern file on the DAX tier reads back through the mount" \
  write_and_read "$MNT/data.pmem" "$pmem_size" 11

dax_bytes_where_mapped() {
  tierfs map --json "$MNT/data.pmem" >"$T/pmem.map" || return 1
  tierfs map "$MNT/data.pmem"
  "$probe" verify-dax "$T/pmem.map" 11 --min-devices "$VM_DAX"
}
check "every byte of the DAX-tier file is on /dev/daxX.Y where tierfs map says" \
  dax_bytes_where_mapped

# Controls: the same comparisons against a wrong expectation must report a
# mismatch (exit 1, not an error), or a PASS above would prove nothing.
fails_with_mismatch() {
  status=0
  "$@" || status=$?
  echo "exit status $status (a mismatch is 1)"
  [ "$status" -eq 1 ]
}
check "control: the DAX comparison fails one interleave unit off the mapped place" \
  fails_with_mismatch "$probe" verify-dax "$T/pmem.map" 11 --control-shift 65536

byte_at() { dd if="$1" bs=1 skip="$2" count=1 2>/dev/null | od -An -tu1 | tr -d ' '; }
dax_write_shows_through() {
  offset=$((2 * 1024 * 1024 + 4097))
  before=$(byte_at "$MNT/data.pmem" "$offset")
  [ -n "$before" ] || return 1
  want=$((before ^ 255))
  "$probe" poke-dax "$T/pmem.map" "$offset" "$want" || return 1
  after=$(byte_at "$MNT/data.pmem" "$offset")
  echo "file byte $offset was $before, device poked to $want, mount now reads $after"
  [ "$after" = "$want" ]
}
check "a byte written on the DAX device at the mapped place reads back through the mount" \
  dax_write_shows_through

check "a pattern file on the NUMA tier reads back through the mount" \
  write_and_read "$MNT/data.dram" "$dram_size" 22

numa_pages_on_named_nodes() {
  tierfs map --json "$MNT/data.dram" >"$T/dram.map" || return 1
  tierfs map "$MNT/data.dram"
  "$probe" verify-numa "$T/dram.map" "$SERVER_PID" --min-nodes "$VM_NODES"
}
check "every page of the NUMA-tier file sits on the node its region names" \
  numa_pages_on_named_nodes

check "control: the NUMA comparison fails when it expects each region on the next node" \
  fails_with_mismatch "$probe" verify-numa "$T/dram.map" "$SERVER_PID" --control-wrong-node

# --- rows come back ----------------------------------------------------------------
stats_count_files() {
  stats_lines | tee "$T/tiers.txt"
  [ "$(grep -c . "$T/tiers.txt")" -eq 2 ] &&
    [ "$(grep -c " used=[1-9][0-9]* .*region_used=[1-9][0-9]*$" "$T/tiers.txt")" -eq 2 ]
}
check "stats count the rows both files hold" stats_count_files

all_rows_free() {
  stats_lines | tee "$T/tiers.txt"
  [ "$(grep -c . "$T/tiers.txt")" -eq 2 ] &&
    [ "$(grep -c " used=0 .*region_used=0$" "$T/tiers.txt")" -eq 2 ]
}
unlink_frees_rows() {
  rm "$MNT/data.pmem" "$MNT/data.dram" || return 1
  all_rows_free
}
check "unlinking the files leaks no rows" unlink_frees_rows

remount_frees_rows() {
  "$probe" write-pattern "$MNT/kept.dram" 100000 33 || return 1
  rm "$MNT/kept.dram" || return 1
  stop_mount || return 1
  start_mount || return 1
  all_rows_free || return 1
  stop_mount
}
check "unmount and remount leak no rows, and the server exits 0" remount_frees_rows

# --- a persistent tier on the DAX devices ----------------------------------------
# famfs-style: the tier keeps its files across a clean unmount and a kill -9
# of the server, in the same boot. The state directory is on the guest's /tmp
# (tmpfs: it outlives a mount, not a reboot, which is all one boot can show).
# Files of several sizes, one spanning every device, one fsync'd; after each
# remount the checksums match, the bytes are on the devices where the new map
# says, and tierfs check (running and stopped) finds nothing.
STATE="$T/pstate"
cat >"$T/tierfs.toml" <<EOF
[mount]
state_dir = "$STATE"

[[tier]]
name = "pmem"
regions = [$dax_regions]
granularity = "64KiB"
persistent = true
$dax_weights
EOF

persist_size=$((3 * 1024 * 1024 + 5 * 65536 + 999))
write_persistent_files() {
  start_mount || return 1
  mkdir -p "$MNT/dir" || return 1
  "$probe" write-pattern "$MNT/dir/striped" "$persist_size" 55 || return 1
  "$probe" write-pattern "$MNT/small" 4097 56 || return 1
  "$probe" write-pattern "$MNT/dir/medium" 300000 57 || return 1
  # conv=fsync: this one is fsync'd (cache lines flushed on dax:).
  dd if=/dev/urandom of="$MNT/synced" bs=65536 count=5 conv=fsync 2>/dev/null || return 1
  : >"$MNT/empty"
  (cd "$MNT" && sha256sum dir/striped small dir/medium synced empty) >"$T/persist.sums" || return 1
  cat "$T/persist.sums"
  stats_lines | tee "$T/tiers.txt"
  grep -q "^pmem used=[1-9][0-9]* regions=$dax_specs region_used=" "$T/tiers.txt"
}
check "a persistent tier on the DAX devices takes files of several sizes (one fsync'd)" \
  write_persistent_files

# Checksums, the striped file's bytes on every device where tierfs map says,
# and tierfs check of the running mount.
persistent_files_intact() {
  (cd "$MNT" && sha256sum -c "$T/persist.sums") || return 1
  "$probe" check-pattern "$MNT/dir/striped" "$persist_size" 55 || return 1
  tierfs map --json "$MNT/dir/striped" >"$T/striped.map" || return 1
  "$probe" verify-dax "$T/striped.map" 55 --min-devices "$VM_DAX" || return 1
  stats_lines | tee "$T/tiers.txt"
  grep -q "^pmem used=[1-9][0-9]* regions=$dax_specs region_used=[1-9]" "$T/tiers.txt" || return 1
  tierfs check "$MNT"
}
check "the persistent files read back and sit on the DAX devices where tierfs map says" \
  persistent_files_intact

# The stopped mount: its state directory keeps the metadata, tierfs check reads it.
clean_unmount_keeps_state() {
  stop_mount || return 1
  ls "$STATE"
  [ -f "$STATE/checkpoint" ] || [ -f "$STATE/journal" ] || return 1
  tierfs check --state-dir "$STATE" --config "$T/tierfs.toml"
}
check "a clean unmount keeps the persistent tier's metadata, and tierfs check finds it clean" \
  clean_unmount_keeps_state

remount_finds_files() {
  start_mount || return 1
  grep -q "adopting what the previous server left" "$T/server.log" || {
    cat "$T/server.log"
    return 1
  }
  persistent_files_intact
}
check "a second mount in the same boot finds every file of the persistent DAX tier" \
  remount_finds_files

# kill -9: nothing is unmounted cleanly; tierfs cleanup detaches the dead
# mount and keeps a persistent mount's metadata; the next mount adopts it.
kill_remount_finds_files() {
  "$probe" write-pattern "$MNT/after-remount" 200000 58 || return 1
  (cd "$MNT" && sha256sum after-remount) >>"$T/persist.sums" || return 1
  kill -9 "$SERVER_PID" || return 1
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=
  tierfs cleanup --config "$T/tierfs.toml" "$MNT" || return 1
  tierfs check --state-dir "$STATE" --config "$T/tierfs.toml" || return 1
  start_mount || return 1
  persistent_files_intact
}
check "after kill -9 and tierfs cleanup, a new mount finds every file again" \
  kill_remount_finds_files

# --fresh discards what the previous server left: an empty tier, no files.
fresh_leaves_nothing() {
  stop_mount || return 1
  tierfs mount -f --fresh --config "$T/tierfs.toml" "$MNT" >"$T/server.log" 2>&1 &
  SERVER_PID=$!
  i=0
  while [ $i -lt 600 ] && ! mounted; do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
    i=$((i + 1))
  done
  mounted || { cat "$T/server.log"; return 1; }
  left=$(ls -A "$MNT")
  echo "after --fresh the mount holds: '${left}'"
  [ -z "$left" ] || return 1
  stats_lines | tee "$T/tiers.txt"
  grep -qx "pmem used=0 regions=$dax_specs region_used=0" "$T/tiers.txt" || return 1
  tierfs check "$MNT" || return 1
  stop_mount || return 1
  ls -A /dev/shm
  [ -z "$(ls -A /dev/shm)" ]
}
check "tierfs mount --fresh finds nothing of the persistent tier, and unmount leaves no shared memory" \
  fresh_leaves_nothing

# --- block-device regions (brd), the kind fuse-iomap can map ------------------------
# Two brd ramdisks as one 2-way tier: the server claims them exclusively, and
# after a sync every byte of a file is on the devices where tierfs map says,
# read with O_DIRECT as fuse-iomap would read it.
cat >"$T/tierfs.toml" <<EOF
[[tier]]
name = "brd"
regions = ["file:/dev/ram0", "file:/dev/ram1"]
granularity = "64KiB"
EOF
check "a tier over two brd block devices mounts" start_mount

second_claim_refused() {
  mkdir -p /mnt/second
  status=0
  tierfs mount -f --config "$T/tierfs.toml" /mnt/second >"$T/second.log" 2>&1 || status=$?
  cat "$T/second.log"
  [ "$status" -ne 0 ] && grep -q "in use" "$T/second.log"
}
check "a second mount over the same block devices is refused (O_EXCL)" second_claim_refused

brd_size=$((3 * 1024 * 1024 + 4321))
brd_bytes_where_mapped() {
  write_and_read "$MNT/data.brd" "$brd_size" 44 || return 1
  tierfs map --json "$MNT/data.brd" >"$T/brd.map" || return 1
  sync
  "$probe" verify-blockdev "$T/brd.map" 44 --min-devices 2
}
check "every byte of a file on the brd tier is on /dev/ramN where tierfs map says" \
  brd_bytes_where_mapped
check "control: the block-device comparison fails one interleave unit off the mapped place" \
  fails_with_mismatch "$probe" verify-blockdev "$T/brd.map" 44 --control-shift 65536
check "the brd tier unmounts and the server exits 0" stop_mount

# --- BPF on this kernel ---------------------------------------------------------------
check "tierfs bpf check passes on the VM's kernel" tierfs bpf check

if [ -n "$SERVER_PID" ]; then
  fusermount3 -u "$MNT" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
fi
echo "vm suite: $passed passed, $failed failed; the VM was up $(uptime_s) s"
[ "$failed" -eq 0 ]
