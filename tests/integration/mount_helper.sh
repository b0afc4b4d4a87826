#!/usr/bin/env bash
# The system plumbing: `mount -t fuse.tierfs` and an fstab line (mount.fuse3
# runs `tierfs SOURCE MOUNTPOINT -o OPTS`), the uid=, gid=, mode= options for
# the root directory, log_file= / --log-file, a bad option refused in one
# line with nothing mounted, fresh (a killed server's files adopted without
# it, discarded with it), and `meson install` putting every file in place.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../support/privileged.sh"
tierfs_require "$(tierfs_missing_root)"
tierfs_require "$(tierfs_missing_fuse)"
command -v mount.fuse3 >/dev/null || tierfs_require "needs mount.fuse3 (package fuse3)"
: "${TIERFS_BIN:?}"
# The build tree: TIERFS_BIN is BUILD/tierfs/cli/tierfs.
TIERFS_BUILD_ROOT="${TIERFS_BUILD_ROOT:-$(cd "$(dirname "$TIERFS_BIN")/../.." && pwd)}"

# mount(8) runs helpers with PATH=/usr/local/sbin:...:/bin: in a mount
# namespace of its own the test binds a folder with `tierfs` over
# /usr/local/sbin, so nothing outside the test sees it (nor its mounts).
if [ -z "${TIERFS_MOUNT_HELPER_NS:-}" ]; then
  exec env TIERFS_MOUNT_HELPER_NS=1 unshare --mount --propagation private bash "$0" "$@"
fi

D=$(mktemp -d /tmp/tierfs-mount-helper.XXXXXX)
MP="$D/mnt"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
finish() {
  grep -q " $MP " /proc/self/mountinfo && umount -l "$MP"
  rm -rf "$D"
}
trap finish EXIT
mkdir -p "$MP" "$D/bin"
ln -s "$TIERFS_BIN" "$D/bin/tierfs"
mount --bind "$D/bin" /usr/local/sbin || { fail "cannot bind $D/bin over /usr/local/sbin"; exit 1; }
cat >"$D/scratch.toml" <<TOML
[[tier]]
name = "dram"
regions = ["numa:0"]
size = "64MiB"
TOML

wait_gone() { for _ in $(seq 1 50); do grep -q " $MP " /proc/self/mountinfo || return 0; sleep 0.1; done; fail "$MP still mounted"; }

# 1. mount -t fuse.tierfs with tierfs's own options
if mount -t fuse.tierfs scratch "$MP" \
  -o "config=$D/scratch.toml,uid=65534,gid=65534,mode=0750,log_file=$D/server.log"; then
  grep -q " $MP .* fuse.tierfs scratch\| $MP .*fuse.tierfs" /proc/self/mountinfo || fail "not in mountinfo as fuse.tierfs"
  [ "$(stat -c '%u:%g %a' "$MP")" = "65534:65534 750" ] || fail "root is $(stat -c '%u:%g %a' "$MP"), not 65534:65534 750"
  echo data >"$MP/f" && [ "$(cat "$MP/f")" = data ] || fail "cannot write and read back"
  grep -q "mount\|tier" "$D/server.log" || fail "the log file is empty: $(cat "$D/server.log")"
  umount "$MP" || fail "umount failed"
  wait_gone
else
  fail "mount -t fuse.tierfs failed"
fi

# 2. an fstab line
echo "scratch $MP fuse.tierfs config=$D/scratch.toml,mode=1777,noauto 0 0" >"$D/fstab"
if mount -T "$D/fstab" "$MP"; then
  [ "$(stat -c '%a' "$MP")" = 1777 ] || fail "fstab: root mode $(stat -c '%a' "$MP"), not 1777"
  umount "$MP"
  wait_gone
else
  fail "mount from an fstab line failed"
fi

# 3. a bad option: one line, non-zero, nothing mounted
err=$(mount -t fuse.tierfs scratch "$MP" -o "config=$D/scratch.toml,mode=999" 2>&1)
rc=$?
[ "$rc" -ne 0 ] || fail "mode=999 was accepted"
[ "$(printf '%s\n' "$err" | grep -c .)" -eq 1 ] || fail "not one line: $err"
echo "$err" | grep -q "mode=999" || fail "the line does not name mode=999: $err"
grep -q " $MP " /proc/self/mountinfo && fail "mounted despite the bad option"

# 4. tierfs mount --log-file, daemonized
"$TIERFS_BIN" mount --config "$D/scratch.toml" --log-file "$D/daemon.log" "$MP" || fail "tierfs mount --log-file failed"
grep -q " $MP " /proc/self/mountinfo && { grep -q . "$D/daemon.log" || fail "the daemon wrote nothing to its log file"; }
fusermount3 -u "$MP" 2>/dev/null || umount "$MP"
wait_gone

# 5. -o fresh: what a killed server left is adopted without it, discarded with it
server_of() { pgrep -f -- "tierfs .*$MP" | head -1; }
kill_server() {
  local pid
  pid=$(server_of)
  [ -n "$pid" ] || { fail "fresh: no server process for $MP"; return; }
  kill -9 "$pid"
  tierfs_wait_exit "$pid" 10
  umount -l "$MP" 2>/dev/null
  wait_gone
}
if mount -t fuse.tierfs scratch "$MP" -o "config=$D/scratch.toml"; then
  echo kept >"$MP/f"
  kill_server
  mount -t fuse.tierfs scratch "$MP" -o "config=$D/scratch.toml" || fail "fresh: the remount failed"
  [ "$(cat "$MP/f" 2>&1)" = kept ] || fail "fresh: without it the killed server's file is not adopted"
  kill_server
  mount -t fuse.tierfs scratch "$MP" -o "config=$D/scratch.toml,fresh" || fail "fresh: mount -o fresh failed"
  [ -e "$MP/f" ] && fail "fresh: -o fresh kept the killed server's file"
  umount "$MP"
  wait_gone
else
  fail "fresh: the first mount failed"
fi
err=$(mount -t fuse.tierfs scratch "$MP" -o "config=$D/scratch.toml,fresh=1" 2>&1) &&
  fail "fresh=1 was accepted"
echo "$err" | grep -q "fresh takes no value" || fail "fresh=1: $err"
grep -q " $MP " /proc/self/mountinfo && fail "mounted despite fresh=1"

# 6. meson install puts everything in its place
if meson install -C "$TIERFS_BUILD_ROOT" --no-rebuild --destdir "$D/inst" >"$D/install.log" 2>&1; then
  for f in bin/tierfs share/man/man1/tierfs.1 share/bash-completion/completions/tierfs \
    lib/systemd/system/tierfs@.service share/tierfs/slurm/prolog.sh share/tierfs/slurm/epilog.sh \
    share/tierfs/slurm/task_prolog.sh share/tierfs/slurm/slurm.conf.example \
    share/tierfs/examples/single-node-dram.toml; do
    found=$(find "$D/inst" -path "*/$f" | head -1)
    [ -n "$found" ] || fail "meson install did not install $f"
  done
  [ -x "$(find "$D/inst" -path '*/share/tierfs/slurm/prolog.sh' | head -1)" ] || fail "prolog.sh not executable"
  man_page=$(find "$D/inst" -path '*/man1/tierfs.1' | head -1)
  if [ -n "$man_page" ] && command -v groff >/dev/null; then
    warnings=$(groff -man -Tutf8 -ww -z "$man_page" 2>&1)
    [ -z "$warnings" ] || fail "tierfs.1 has groff warnings: $warnings"
  fi
  bash -n "$(find "$D/inst" -path '*/completions/tierfs' | head -1)" || fail "the completion is not valid bash"
else
  fail "meson install failed: $(tail -3 "$D/install.log")"
fi

[ "$failures" -eq 0 ] || exit 1
echo "PASS: mount helper, root owner and mode, log file, fresh, install"
