#!/usr/bin/env bash
# Host side of the vm placement suite: boots Debian's 6.12 kernel (Debian 12's
# default 6.1 has neither FUSE passthrough nor weighted interleave) with 4 NUMA
# nodes and no DAX device, and runs vm_placement.sh inside, which prints one
# PASS/FAIL/SKIP line per check and fails when any check does. Skips with the
# reason (fails under TIERFS_REQUIRE_PRIVILEGED=1) when the harness cannot run.
set -euo pipefail
source "${TIERFS_SOURCE_ROOT:?}/tests/support/privileged.sh"
: "${TIERFS_BIN:?TIERFS_BIN must name the tierfs binary}"
: "${TIERFS_VM_PLACEMENT:?TIERFS_VM_PLACEMENT must name tierfs_vm_placement}"
here="$TIERFS_SOURCE_ROOT/tests/vm"
harness="$TIERFS_SOURCE_ROOT/kernel/vm"
cache=${TIERFS_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tierfs-vm}
flavour=6.12-cloud-amd64

for tool in qemu-system-x86_64 cpio ndctl daxctl fusermount3 modprobe depmod apt-get; do
  command -v "$tool" >/dev/null || PATH=$PATH:/sbin:/usr/sbin command -v "$tool" >/dev/null ||
    tierfs_require "needs $tool (scripts/setup.sh installs it)"
done
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 ||
  tierfs_require "needs a static /bin/busybox (package busybox-static)"
"$harness/fetch-kernel.sh" "$cache" "$flavour" >/dev/null ||
  tierfs_require "cannot fetch Debian's linux-image-$flavour with apt-get download"

exec "$harness/run.sh" --cache "$cache" --flavour "$flavour" --tierfs "$TIERFS_BIN" \
  --add "$TIERFS_VM_PLACEMENT" --add "$here/vm_placement.sh" \
  --nodes 4 --dax 0 --timeout 480 -- sh /vm/bin/vm_placement.sh
