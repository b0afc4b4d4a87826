#!/bin/bash
# A region path that names an existing file or device tierfs did not make is
# refused with one line naming it and left byte for byte as it was, unless
# the region says take_over = true (issue 24, defect 7: a 5-byte root-owned
# file was grown to 64 MiB and used). What tierfs made is still adopted with
# no option: after a clean unmount, after kill -9, on a persistent tier, on a
# file system without user xattrs, and on a device holding a disk image.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# "size mtime sha256" of a file: what must not change.
fingerprint() { echo "$(stat -c '%s %Y' "$1") $(sha256sum <"$1")"; }
tier() {  # tier NAME REGION-ENTRY [more lines]
  printf '[[tier]]\nname = "%s"\nregions = [%s]\nsize = "16MiB"\ngranularity = "64KiB"\n%s\n' "$@"
}
kill_server() {  # kill -9, then what the lost server left: the FUSE mount
  kill -9 "$SERVER_PID"
  tierfs_wait_exit "$SERVER_PID" 20
  SERVER_PID=
  umount -l "$MNT" 2>/dev/null || true
}

# 1. The issue's case: a small root-owned file at a path with create = true.
db="$WORK/db.img"
printf 'hello' >"$db"
chmod 0600 "$db"
touch -d '2020-01-02 03:04:05' "$db"
before=$(fingerprint "$db")
tier spill "\"file:$db\"" 'create = true' >"$WORK/foreign.toml"
try_mount "$WORK/foreign.toml" "$MNT"
expect_refused "an existing file tierfs did not make" \
  "region \"file:$db\" of tier \"spill\": exists and has no tierfs signature (user.tierfs.region)"
[ "$(fingerprint "$db")" = "$before" ] || fail "the refused file changed: $(fingerprint "$db") != $before"
err=$("$TIERFS_BIN" check-config "$WORK/foreign.toml" 2>&1 >/dev/null) && fail "check-config accepted it"
[[ "$err" == "$WORK/foreign.toml:3:"*"take_over = true"* ]] || fail "check-config said: $err"

# 2. take_over = true hands it over; it is signed, so the option can go.
tier spill "{ region = \"file:$db\", take_over = true }" 'create = true' >"$WORK/takeover.toml"
"$TIERFS_BIN" check-config "$WORK/takeover.toml" | grep -q "take_over = true" ||
  fail "check-config's effective configuration lost take_over"
try_mount "$WORK/takeover.toml" "$MNT"
[ "$MOUNT_STATUS" -eq 0 ] || fail "take_over did not mount: $MOUNT_ERR"
echo taken >"$MNT/f"
fusermount3 -u "$MNT"
[ "$(getfattr --only-values -n user.tierfs.region "$db")" = "tierfs region v1" ] ||
  fail "a taken-over file carries no signature"
try_mount "$WORK/foreign.toml" "$MNT"
[ "$MOUNT_STATUS" -eq 0 ] || fail "the signed file was refused without take_over: $MOUNT_ERR"
fusermount3 -u "$MNT"

# 3. Files tierfs creates: adopted after a clean unmount and after kill -9,
#    on a scratch tier, on a persistent one, and on ramfs (no user xattrs:
#    the mount's state records them).
mkdir "$WORK/ramfs"
mount -t ramfs -o mode=0700 none "$WORK/ramfs"
trap 'umount -l "$WORK/ramfs" 2>/dev/null || true; security_cleanup' EXIT
for kind in scratch persistent ramfs; do
  dir=$WORK
  extra='create = true'
  case $kind in
    persistent) extra=$'create = true\npersistent = true' ;;
    ramfs) dir=$WORK/ramfs ;;
  esac
  config=$(tier "$kind" "\"file:$dir/$kind.img\"" "$extra")
  [ "$kind" = persistent ] && config=$(printf '[mount]\nstate_dir = "%s"\n\n%s' "$WORK/state" "$config")
  tierfs_start_mount "$config"
  echo "$kind" >"$MNT/f"
  sync "$MNT/f"
  kill_server
  tierfs_start_mount "$config"  # no option: the file is tierfs's
  [ "$(cat "$MNT/f")" = "$kind" ] || fail "$kind: the file is not back after kill -9"
  tierfs_stop_mount
  if [ "$kind" = persistent ]; then
    tierfs_start_mount "$config"
    [ "$(cat "$MNT/f")" = "$kind" ] || fail "$kind: the file is not back after unmount"
    tierfs_stop_mount
  elif [ "$kind" = scratch ]; then
    tierfs_start_mount "$config"  # a clean unmount kept the signed region file
    tierfs_stop_mount
  else
    # No xattrs: the record went with the scratch mount's state directory.
    printf '%s\n' "$config" >"$WORK/ramfs.toml"
    try_mount "$WORK/ramfs.toml" "$MNT"
    expect_refused "ramfs after a clean unmount" "exists and tierfs has no record of making it"
  fi
done

# 4. Block devices: a file system or a partition table is refused and kept.
command -v losetup >/dev/null && command -v mkfs.ext4 >/dev/null && command -v sfdisk >/dev/null ||
  tierfs_require "needs losetup, mkfs.ext4 and sfdisk (util-linux, e2fsprogs, fdisk)"
LOOPS=()
trap 'for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
      umount -l "$WORK/ramfs" 2>/dev/null || true; security_cleanup' EXIT
loop() {  # loop NAME: a 16 MiB loop device over a sparse file; sets LOOP
  truncate -s 16M "$WORK/$1.disk"
  LOOP=$(losetup --find --show "$WORK/$1.disk") || tierfs_require "needs a loop device"
  LOOPS+=("$LOOP")
}
loop ext4
mkfs.ext4 -q "$LOOP"
ext4_dev=$LOOP
loop gpt
echo 'label: gpt' | sfdisk -q "$LOOP"
for dev in "$ext4_dev" "$LOOP"; do
  before=$(sha256sum <"$dev")
  tier blk "\"file:$dev\"" '' >"$WORK/blk.toml"
  try_mount "$WORK/blk.toml" "$MNT"
  case $dev in
    "$ext4_dev") what="the device holds a file system (ext4) (libblkid)" ;;
    *) what="the device holds a partition table (gpt) (libblkid)" ;;
  esac
  expect_refused "$dev" "region \"file:$dev\": $what; tierfs did not put it there"
  [ "$(sha256sum <"$dev")" = "$before" ] || fail "the refused device $dev changed"
done
e2fsck -fn "$ext4_dev" >/dev/null 2>&1 || fail "the ext4 on $ext4_dev was damaged"

# 5. A blank device is used, and stays tierfs's after kill -9 even when a
#    file stored in it (a disk image) makes it look like ext4 to libblkid.
loop blank
config=$(tier blk "\"file:$LOOP\"" '')
tierfs_start_mount "$config"
truncate -s 4M "$WORK/image"
mkfs.ext4 -q -F "$WORK/image"
cp "$WORK/image" "$MNT/image"
sync "$MNT/image"
[ "$(blkid -p -o value -s TYPE "$LOOP")" = ext4 ] ||
  fail "the stored image did not land at the device's start; this case tests nothing"
kill_server
tierfs_start_mount "$config"
cmp -s "$WORK/image" "$MNT/image" || fail "the image is not back after kill -9"
tierfs_stop_mount
# A scratch tier's clean unmount zeroes what its files used and drops the
# record with its state directory: the device is blank again, and used.
[ -z "$(blkid -p -o value -s TYPE "$LOOP" || true)" ] || fail "the clean unmount left the image's signature"
tierfs_start_mount "$config"
tierfs_stop_mount
echo PASS
