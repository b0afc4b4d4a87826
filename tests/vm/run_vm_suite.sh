#!/usr/bin/env bash
# Host side of the vm suite: checks that the harness can run here (skip with the
# reason, or fail under TIERFS_REQUIRE_PRIVILEGED=1), then boots one VM with 4
# NUMA nodes and 2 devdax devices that runs vm_suite.sh, which prints one
# PASS/FAIL line per check and fails when any check does.
set -euo pipefail
source "${TIERFS_SOURCE_ROOT:?}/tests/support/privileged.sh"
: "${TIERFS_BIN:?TIERFS_BIN must name the tierfs binary}"
: "${TIERFS_VM_PROBE:?TIERFS_VM_PROBE must name tierfs_vm_probe}"
here="$TIERFS_SOURCE_ROOT/tests/vm"
harness="$TIERFS_SOURCE_ROOT/kernel/vm"
cache=${TIERFS_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tierfs-vm}

for tool in qemu-system-x86_64 cpio ndctl daxctl fusermount3 modprobe depmod apt-get; do
  command -v "$tool" >/dev/null || PATH=$PATH:/sbin:/usr/sbin command -v "$tool" >/dev/null ||
    tierfs_require "needs $tool (scripts/setup.sh installs it)"
done
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 ||
  tierfs_require "needs a static /bin/busybox (package busybox-static)"
# TIERFS_VM_KERNEL (and TIERFS_VM_MODULES) run the suite on a kernel of one's own,
# for example one carrying the fuse-iomap series; see docs/vm.md.
kernel_args=()
if [ -n "${TIERFS_VM_KERNEL:-}" ]; then
  kernel_args=(--kernel "$TIERFS_VM_KERNEL")
  [ -n "${TIERFS_VM_MODULES:-}" ] && kernel_args+=(--modules "$TIERFS_VM_MODULES")
else
  "$harness/fetch-kernel.sh" "$cache" >/dev/null ||
    tierfs_require "cannot fetch Debian's kernel package with apt-get download"
fi

exec "$harness/run.sh" --cache "$cache" ${kernel_args[@]+"${kernel_args[@]}"} --tierfs "$TIERFS_BIN" \
  --add "$TIERFS_VM_PROBE" --add "$here/vm_suite.sh" \
  --nodes 4 --dax 2 --timeout 480 -- sh /vm/bin/vm_suite.sh
