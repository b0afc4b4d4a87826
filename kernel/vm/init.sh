#!/bin/busybox sh
# /init of the VM harness's initramfs (busybox ash, not bash). Mounts the
# pseudo file systems, loads the nvdimm/dax/fuse modules, turns every pmem
# namespace that the kernel's memmap= ranges made into a devdax device, runs
# /vm/cmd with its output on the second serial port and ends that output with
# the marker line the host harness waits for, then powers off.
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/vm/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
export HOME=/root TMPDIR=/tmp

mkdir -p /proc /sys /dev /tmp /run /root /mnt
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
ln -sf /proc/mounts /etc/mtab

# ttyS0 carries the kernel's console; ttyS1 carries only what the command prints.
out=/dev/ttyS1
stty -F "$out" raw -echo 2>/dev/null

finish() {
  echo "TIERFS-VM-EXIT-STATUS=$1" >"$out"
  sync
  poweroff -f
  sleep 10
}

setup_failed() {
  echo "vm: $*" >"$out"
  finish 125
}

. /vm/config

while read -r module; do
  insmod "$module" 2>/tmp/insmod.err ||
    grep -q 'File exists' /tmp/insmod.err ||
    setup_failed "insmod $module failed: $(cat /tmp/insmod.err)"
done </vm/modules.list

# Each memmap=SIZE!OFFSET range is one legacy pmem region with one raw namespace.
found=0
[ "$VM_DAX" -gt 0 ] && for _ in $(seq 1 100); do
  found=$(ls -d /sys/bus/nd/devices/namespace*.0 2>/dev/null | wc -l)
  [ "$found" -ge "$VM_DAX" ] && break
  sleep 0.1
done
[ "$found" -eq "$VM_DAX" ] ||
  setup_failed "expected $VM_DAX pmem namespaces from memmap=, the kernel made $found" \
    "(nd_e820 and nd_pmem must be built in or come with --modules)"
for ns in /sys/bus/nd/devices/namespace*.0; do
  [ -e "$ns" ] || continue
  name=${ns##*/}
  ndctl create-namespace --force --reconfig="$name" --mode=devdax >/tmp/ndctl.out 2>&1 ||
    setup_failed "ndctl create-namespace -e $name -m devdax failed: $(cat /tmp/ndctl.out)"
done
made=$(ls /dev/dax*.* 2>/dev/null | wc -l)
[ "$made" -eq "$VM_DAX" ] || setup_failed "expected $VM_DAX devdax devices, /dev has $made"

cd /
status=0
sh /vm/cmd >"$out" 2>&1 </dev/null || status=$?
finish "$status"
