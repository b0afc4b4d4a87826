#!/usr/bin/env bash
# A full kernel-path tier (tierfs/server/mover_spill.cc, docs/operations.md
# "A full kernel-path tier"): a 16 MiB kernel-path tier "fast" with
# watermarks above a 64 MiB kernel-path tier "warm" (one tmpfs) and a server-
# path tier "slow"; the mover looks every 100 ms.
#  1. 24 MiB written to a file of fast: no ENOSPC (each tier had its own
#     tmpfs before, of its size); the mover logs the full tier, sends its
#     files' new pages to warm and brings fast back under its high mark;
#  2. a file pinned to fast keeps it full: new files of fast are made on
#     warm, the pinned file still grows; once it is gone fast's files get
#     their own policy again;
#  3. the tmpfs holds the tiers' capacities and the headroom (25 % of them,
#     but at most the 16 MiB of the server-path tier below): a write fails
#     with ENOSPC only when all of that is full.
# Takes about 10 s. SKIPs where the build or the kernel has no passthrough.
source "$(dirname "$0")/lib.sh"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
sum() { sha256sum <"$1" | cut -d' ' -f1; }
stat_json() { getfattr --absolute-names --only-values -n user.tierfs.stats "$MNT" 2>/dev/null; }
tier_used() {
  stat_json | python3 -c "import json,sys; print({t['name']: t['used_bytes'] for t in json.load(sys.stdin)['tiers']}['$1'])"
}
backing_tier() { # the tier named by the file's backing file
  local ino
  ino=$(stat -c %i "$1")
  # shellcheck disable=SC2012
  ls "$BACKING" | sed -n "s/^$ino\.\([^.]*\)\$/\1/p"
}
wait_for() { # SECONDS COMMAND...: polls every 0.1 s
  local tries=$(($1 * 10))
  shift
  for _ in $(seq "$tries"); do "$@" && return 0; sleep 0.1; done
  return 1
}
logged() { grep -q "$1" "$WORK/mount.log"; }
times_logged() { grep -c "$1" "$WORK/mount.log" || true; }
logged_more() { [ "$(times_logged "$1")" -gt "$2" ]; } # LINE N: logged more than N times
fast_under() { [ "$(tier_used fast)" -le "$1" ]; }

STATE="$WORK/state"
CONFIG="[mount]
state_dir = \"$STATE\"
kernel_path_headroom = 25
[mover]
interval_ms = 100
$(tierfs_kernel_tier fast 16MiB 4KiB)
high_watermark = 75
low_watermark = 50
$(tierfs_kernel_tier warm 64MiB 4KiB)
$(tierfs_shm_tier slow 1 16MiB 64KiB)
data_path = \"server\"
[[placement]]
path = \"pinned/*\"
tier = \"fast\"
pin = true"
printf '%s\n' "$CONFIG" >"$WORK/check.toml"
"$TIERFS_BIN" check-config "$WORK/check.toml" >"$WORK/check.out" 2>&1 ||
  tierfs_kernel_path_refused "$WORK/check.out"
BACKING="$STATE/kernel-store.page"
tierfs_start_mount "$CONFIG" --log-file "$WORK/mount.log"
# 16 + 64 MiB of tiers and min(25 % of them, the 16 MiB below) of headroom.
grep "kernel path: the page tmpfs" "$WORK/mount.log" | sed 's/.*kernel path: //'
logged "holds 96.*: its tiers' 80.* and 16.* of headroom" ||
  fail "the tmpfs's size: $(grep 'tmpfs' "$WORK/mount.log")"

# 1. Past the tier's capacity: no ENOSPC; the mover takes it back under its mark.
head -c 24M /dev/urandom >"$WORK/big.model"
dd if="$WORK/big.model" of="$MNT/big" bs=1M status=none 2>"$WORK/dd1.err" ||
  fail "24 MiB into the 16 MiB tier fast: $(cat "$WORK/dd1.err")"
# Whether the mover saw fast past its capacity depends on the scheduler: on a
# loaded machine it may demote big at the 75 % mark before the write fills
# fast. Part 2 makes fast full with a pinned file, which cannot be demoted.
wait_for 10 fast_under $((12 << 20)) || fail "fast holds $(tier_used fast) B, over its 75 % high mark, after 10 s"
[ "$(backing_tier "$MNT/big")" = warm ] || fail "big was not demoted to warm: $(ls "$BACKING")"
[ "$(sum "$MNT/big")" = "$(sum "$WORK/big.model")" ] || fail "big differs after the spill and the demotion"
if logged "tier fast is full"; then
  wait_for 10 logged "tier fast is under its capacity again" || fail "fast did not get its own policy back"
else
  echo "part 1: big was demoted before fast filled"
fi
FULL="tier fast is full"
ENDED="tier fast is under its capacity again"
fulls_before=$(times_logged "$FULL")
ends_before=$(times_logged "$ENDED")

# 2. Kept full by a pinned file: new files start on warm, the pinned one grows.
mkdir "$MNT/pinned"
dd if=/dev/urandom of="$MNT/pinned/p" bs=1M count=20 status=none || fail "20 MiB into pinned/p"
wait_for 10 logged_more "$FULL" "$fulls_before" ||
  fail "the pinned file did not make fast full"
"$TIERFS_BIN" stats "$MNT" | grep -q "tier fast: kernel path .*full: new pages go to tier warm" ||
  fail "tierfs stats does not say fast is full: $("$TIERFS_BIN" stats "$MNT" | grep 'tier fast:')"
echo new >"$MNT/n"
[ "$(backing_tier "$MNT/n")" = warm ] || fail "a new file of the full tier fast is on $(backing_tier "$MNT/n")"
dd if=/dev/urandom of="$MNT/pinned/p" bs=1M count=4 oflag=append conv=notrunc status=none ||
  fail "4 MiB more into the pinned file of the full tier"
[ "$(stat -c %s "$MNT/pinned/p")" = $((24 << 20)) ] || fail "pinned/p is $(stat -c %s "$MNT/pinned/p") B"
[ "$(backing_tier "$MNT/pinned/p")" = fast ] || fail "the pinned file moved: $(ls "$BACKING")"
rm "$MNT/pinned/p"
wait_for 10 logged_more "$ENDED" "$ends_before" ||
  fail "fast did not end its spill once the pinned file was gone"

# 3. ENOSPC only when the tmpfs (capacities and headroom) is full.
before=$(stat -f -c %f "$MNT")
if dd if=/dev/zero of="$MNT/flood" bs=1M count=200 status=none 2>"$WORK/dd3.err"; then
  fail "200 MiB fitted into 80 MiB of kernel-path tiers and 16 MiB of headroom"
fi
grep -q "No space left" "$WORK/dd3.err" || fail "the flood failed otherwise: $(cat "$WORK/dd3.err")"
read -r free bsize <<<"$(stat -f -c '%f %S' "$BACKING")"
[ "$free" -le 64 ] || fail "ENOSPC with $((free * bsize)) B of the tmpfs free"
echo "flood: $(stat -c %s "$MNT/flood") B written before ENOSPC; statfs free blocks $before -> $(stat -f -c %f "$MNT")"
[ "$(stat -f -c %f "$MNT")" -lt "$before" ] || fail "statfs did not count the flood"
rm "$MNT/flood"
[ "$(sum "$MNT/big")" = "$(sum "$WORK/big.model")" ] || fail "big differs after the flood"
tierfs_stop_mount

[ "$failures" -eq 0 ] || exit 1
echo "PASS"
