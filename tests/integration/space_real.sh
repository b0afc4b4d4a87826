#!/usr/bin/env bash
# Real job directories on the built-in default mount (no configuration: one
# DRAM tier, 2 MiB granularity), where every file costs its size rounded up
# to 4 KiB: 200 000 one-line files per GiB of capacity, a git clone of this
# repository with git fsck, a tar of /usr/include compared with diff -r, a
# small C project configured and built in the mount, and small files beside a
# file larger than a row, all read back byte-exact. Each step frees what it
# used and checks that df gives it all back. Every step also checks that its
# files took the data path the default mount takes on this machine (the
# kernel path where root mounts a build with passthrough), so a mount that
# quietly serves them on the server path instead fails.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SRC=${TIERFS_SOURCE_ROOT:?}

# Which path the default mount's tier takes and why, as check-config
# decides it for this process. Where the kernel path must be there (a build
# with passthrough, libfuse 3.16+, under TIERFS_REQUIRE_PRIVILEGED=1, which
# promises root and a kernel that has it, as CI's) anything else fails;
# elsewhere the steps run on the path it names.
read -r expected_path expected_reason < <("$TIERFS_BIN" check-config --default --json |
  python3 -c 'import json, sys; t = json.load(sys.stdin)["tiers"][0]; print(t["data_path"], t["data_path_reason"])')
echo "default mount's data path: $expected_path ($expected_reason)"
version=${TIERFS_LIBFUSE_VERSION:?meson sets TIERFS_LIBFUSE_VERSION}
if [ "$expected_path" != kernel ] && [ "${TIERFS_REQUIRE_PRIVILEGED:-0}" = 1 ] &&
  [ "$(printf '%s\n3.16\n' "$version" | sort -V | head -1)" = 3.16 ]; then
  echo "FAIL: libfuse $version, TIERFS_REQUIRE_PRIVILEGED=1, and the default mount would take the $expected_path path" >&2
  exit 1
fi
# expect_path FILE...: each file is served on the expected path (its user.tierfs.map says).
expect_path() {
  local f got
  for f in "$@"; do
    got=$(tierfs_path_of "$f")
    if [ "$got" != "$expected_path" ]; then
      echo "FAIL: $f is on the $got path, not the $expected_path path the default mount takes" >&2
      exit 1
    fi
  done
}

tierfs_start_mount ""
free_blocks() { stat -f -c %f "$MNT"; }
total_blocks() { stat -f -c %b "$MNT"; }
block_size=$(stat -f -c %S "$MNT")
[ "$block_size" -eq 4096 ] || { echo "FAIL: statfs block size $block_size, not 4096" >&2; exit 1; }
empty=$(free_blocks)
capacity=$(( $(total_blocks) * block_size ))
echo "default mount: $((capacity >> 20)) MiB, $empty free blocks"

expect_all_free() {
  local now
  now=$(free_blocks)
  if [ "$now" -ne "$empty" ]; then
    echo "FAIL: after $1, $now blocks free, $empty before" >&2
    exit 1
  fi
}

# 1. One-line files: 200 000 of them, each costing exactly one 4 KiB block,
# so 200 000 per GiB of capacity fit with a fifth to spare (262 144 blocks per
# GiB; that every block of a tier can hold one is test_file_data's
# SmallFilesCostTheirSizeRoundedUpToABlock). Filling all of the default mount
# (its size follows free memory: 3 GiB here, 600 000 files) would take CI
# minutes and prove nothing more. TIERFS_SPACE_FILES_PER_GIB=200000 does it.
if [ -n "${TIERFS_SPACE_FILES_PER_GIB:-}" ]; then
  count=$(( (capacity * TIERFS_SPACE_FILES_PER_GIB + (1 << 30) - 1) >> 30 ))
else
  count=200000
fi
[ $(( count * 4096 )) -le "$capacity" ] || { echo "FAIL: the default mount holds under $count blocks" >&2; exit 1; }
python3 - "$MNT/lines" "$count" <<'PY'
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
os.mkdir(root)
for d in range(100):
    os.mkdir(f"{root}/d{d}")
for i in range(count):
    fd = os.open(f"{root}/d{i % 100}/line-{i}", os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, f"line {i}\n".encode())
    os.close(fd)
for i in range(0, count, 997):
    with open(f"{root}/d{i % 100}/line-{i}", "rb") as f:
        if f.read() != f"line {i}\n".encode():
            sys.exit(f"FAIL: line-{i} reads back wrong")
PY
expect_path "$MNT/lines/d0/line-0" "$MNT/lines/d$(( (count - 1) % 100 ))/line-$((count - 1))"
used=$(( empty - $(free_blocks) ))
du_kib=$(du -sk "$MNT/lines" | cut -f1)
echo "$count one-line files: $used blocks used, du $du_kib KiB"
if [ "$used" -ne "$count" ] || [ "$du_kib" -ne $(( count * 4 )) ]; then
  echo "FAIL: $count one-line files took $used blocks, not one block each" >&2
  exit 1
fi
# The rest of the 200 000 per GiB of capacity would fit too: the blocks and
# inodes statfs still reports free, at one block and one inode a file.
per_gib=$(( (capacity * 200000 + (1 << 30) - 1) >> 30 ))
rest=$(( per_gib > count ? per_gib - count : 0 ))
free_now=$(free_blocks)
free_inodes=$(stat -f -c %d "$MNT")
echo "200 000 per GiB is $per_gib files: $rest more to go, $free_now blocks and $free_inodes inodes free"
if [ "$free_now" -lt "$rest" ] || [ "$free_inodes" -lt "$rest" ]; then
  echo "FAIL: the default mount cannot hold 200 000 one-line files per GiB ($per_gib)" >&2
  exit 1
fi
rm -rf "$MNT/lines"
expect_all_free "rm -rf of the one-line files"

# 2. git clone of this repository and a full fsck.
git clone -q --no-hardlinks "$SRC" "$MNT/repo"
git -C "$MNT/repo" fsck --full --no-progress --no-dangling
expect_path "$MNT/repo/.git/index" "$MNT/repo/.git/HEAD" "$(find "$MNT/repo/.git/objects" -type f | head -1)" \
  "$MNT/repo/meson.build"
git -C "$MNT/repo" status --porcelain >"$WORK/status"
[ ! -s "$WORK/status" ] || { echo "FAIL: the clone's work tree differs from its index" >&2; cat "$WORK/status" >&2; exit 1; }
rm -rf "$MNT/repo"
expect_all_free "rm -rf of the clone"

# 3. A tar of /usr/include extracted into the mount, compared with diff -r.
tar -C /usr -cf "$WORK/include.tar" include
mkdir "$MNT/usr"
tar -C "$MNT/usr" -xf "$WORK/include.tar"
rm -f "$WORK/include.tar"
diff -r --no-dereference /usr/include "$MNT/usr/include"
expect_path "$MNT/usr/include/stdio.h"
rm -rf "$MNT/usr"
expect_all_free "rm -rf of /usr/include"

# 4. A small C project configured (meson) and built (ninja) inside the mount.
mkdir -p "$MNT/proj/src"
cat >"$MNT/proj/meson.build" <<'MESON'
project('hello', 'c')
conf = configuration_data()
conf.set_quoted('GREETING', 'hello from tierfs')
configure_file(output: 'config.h', configuration: conf)
executable('hello', 'src/main.c', 'src/sum.c')
MESON
cat >"$MNT/proj/src/sum.h" <<'C'
long sum_to(long n);
C
cat >"$MNT/proj/src/sum.c" <<'C'
#include "sum.h"
long sum_to(long n) { long s = 0; for (long i = 1; i <= n; ++i) s += i; return s; }
C
cat >"$MNT/proj/src/main.c" <<'C'
#include <stdio.h>
#include "config.h"
#include "sum.h"
int main(void) { printf("%s %ld\n", GREETING, sum_to(100)); return 0; }
C
(cd "$MNT/proj" && meson setup build >"$WORK/meson.log" 2>&1 && ninja -C build >>"$WORK/meson.log" 2>&1) ||
  { echo "FAIL: the C project did not build in the mount:" >&2; cat "$WORK/meson.log" >&2; exit 1; }
out=$("$MNT/proj/build/hello")
expect_path "$MNT/proj/build/hello" "$MNT/proj/build/config.h" "$MNT/proj/src/main.c"
[ "$out" = "hello from tierfs 5050" ] || { echo "FAIL: the built program printed '$out'" >&2; exit 1; }
rm -rf "$MNT/proj"
expect_all_free "rm -rf of the C project"

# 5. Small files beside a file larger than a row (2 MiB), in one directory.
mkdir "$MNT/mixed"
head -c $(( 5 * 1024 * 1024 + 12345 )) /dev/urandom >"$WORK/large"
for i in $(seq 1 300); do printf 'small %d\n' "$i" >"$MNT/mixed/s$i"; done
cp "$WORK/large" "$MNT/mixed/large"
for i in $(seq 301 600); do printf 'small %d\n' "$i" >"$MNT/mixed/s$i"; done
cmp "$WORK/large" "$MNT/mixed/large"
expect_path "$MNT/mixed/large" "$MNT/mixed/s1" "$MNT/mixed/s600"
for i in $(seq 1 600); do
  [ "$(cat "$MNT/mixed/s$i")" = "small $i" ] || { echo "FAIL: s$i reads back wrong" >&2; exit 1; }
done
blocks=$(stat -c %b "$MNT/mixed/large")
[ "$blocks" -eq $(( (5 * 1024 * 1024 + 12345 + 4095) / 4096 * 8 )) ] ||
  { echo "FAIL: the large file has $blocks 512-byte blocks" >&2; exit 1; }
rm -rf "$MNT/mixed"
expect_all_free "rm -rf of the mixed directory"

tierfs_stop_mount
echo "real job directories: all steps passed"
