#!/usr/bin/env bash
# Boots a kernel under qemu-system-x86_64 (TCG, no KVM, no network) with
# emulated NUMA nodes and devdax devices, runs one command inside and returns
# what it printed and its exit status. Debian's stock kernel is fetched and
# unpacked by fetch-kernel.sh unless --kernel names another one.
# Exit status: the command's, or 124 when the VM ran out of time, or 125 when
# the harness or the VM could not get as far as running the command.
# See docs/vm.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: kernel/vm/run.sh [OPTIONS] [--] COMMAND [ARG...]
  --nodes N          NUMA nodes, one memory backend each (default 4)
  --dax N            devdax devices, made from memmap= pmem ranges (default 2)
  --node-memory MIB  memory per node (default 512, or less beyond 4 nodes)
  --dax-size MIB     size of each pmem range, a multiple of 128 (default 128)
  --cpus N           virtual CPUs, spread round-robin over the nodes (default: one per node)
  --timeout S        stop the VM after S seconds; exit 124 (default 600)
  --kernel PATH      boot this bzImage instead of Debian's stock kernel
  --modules DIR      its modules: DIR/lib/modules/VERSION or that VERSION directory itself
  --flavour F        Debian kernel: cloud-amd64 (default, 6.1) or amd64, or 6.12-cloud-amd64
                     or 6.12-amd64 (Debian 12 security archive; FUSE passthrough)
  --cache DIR        where the Debian kernel is unpacked (default ~/.cache/tierfs-vm,
                     or $TIERFS_VM_CACHE)
  --tierfs PATH      the tierfs binary to put in /usr/local/bin (default $TIERFS_BIN)
  --add PATH         also put PATH (and the libraries it loads) in /vm/bin; repeatable
  --append ARGS      extra kernel command-line arguments
  --keep             keep the work directory (initramfs, console log) and print it
The command runs as root in busybox sh inside the VM, in /, with /vm/config sourced
into its environment (VM_NODES, VM_DAX, VM_NODE_MIB, VM_DAX_MIB, VM_DAX_NODES).
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
nodes=4 dax=2 node_mib='' dax_mib=128 cpus='' timeout_s=600 kernel='' modules='' flavour=cloud-amd64
cache=${TIERFS_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tierfs-vm}
tierfs=${TIERFS_BIN:-} append='' keep=0
adds=()

fail() { echo "vm: $*" >&2; exit 125; }
need_number() { [[ "$2" =~ ^[0-9]+$ ]] || fail "$1 wants a whole number, got '$2'"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --nodes | --dax | --node-memory | --dax-size | --cpus | --timeout | --kernel | --modules | \
      --flavour | --cache | --tierfs | --add | --append)
      [ $# -ge 2 ] || fail "$1 needs a value"
      case "$1" in
        --nodes) need_number "$1" "$2"; nodes=$2 ;;
        --dax) need_number "$1" "$2"; dax=$2 ;;
        --node-memory) need_number "$1" "$2"; node_mib=$2 ;;
        --dax-size) need_number "$1" "$2"; dax_mib=$2 ;;
        --cpus) need_number "$1" "$2"; cpus=$2 ;;
        --timeout) need_number "$1" "$2"; timeout_s=$2 ;;
        --kernel) kernel=$2 ;;
        --modules) modules=$2 ;;
        --flavour) flavour=$2 ;;
        --cache) cache=$2 ;;
        --tierfs) tierfs=$2 ;;
        --add) adds+=("$2") ;;
        --append) append=$2 ;;
      esac
      shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) fail "unknown option '$1' (see --help)" ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || fail "no command to run (see --help)"

# --- memory layout -----------------------------------------------------------
# qemu gives node k the guest-physical range [k*node_mib, (k+1)*node_mib) as long
# as all memory sits below the PCI hole, so the layout stays under 3 GiB.
[ "$nodes" -ge 1 ] && [ "$nodes" -le 16 ] || fail "--nodes must be 1..16, got $nodes"
[ "$dax" -le 8 ] || fail "--dax must be 0..8, got $dax"
if [ -z "$node_mib" ]; then
  node_mib=512
  [ "$nodes" -gt 4 ] && node_mib=$((3072 / nodes / 128 * 128))
fi
[ "$node_mib" -ge 128 ] || fail "--node-memory must be at least 128 MiB, got $node_mib"
[ $((nodes * node_mib)) -le 3072 ] ||
  fail "$nodes nodes x $node_mib MiB exceed the 3072 MiB the layout allows"
[ "$dax_mib" -ge 128 ] && [ $((dax_mib % 128)) -eq 0 ] ||
  fail "--dax-size must be a multiple of 128 MiB (memory-section alignment), got $dax_mib"
cpus=${cpus:-$nodes}
[ "$cpus" -ge 1 ] && [ "$cpus" -le 16 ] || fail "--cpus must be 1..16, got $cpus"

# DAX range k sits in node (k+1) mod N, clear of the kernel (low in node 0) and of the
# initramfs (qemu loads it at the top of memory, in the last node).
memmap_args=() dax_nodes=()
for ((k = 0; k < dax; k++)); do
  node=$(((k + 1) % nodes)) slot=$((k / nodes))
  start=$((node * node_mib + slot * dax_mib))
  [ "$node" -eq 0 ] && start=$((start + 256))
  limit=$(((node + 1) * node_mib))
  [ "$node" -eq $((nodes - 1)) ] && limit=$((limit - 128))
  [ $((start + dax_mib)) -le "$limit" ] ||
    fail "$dax DAX ranges of $dax_mib MiB do not fit in $nodes nodes of $node_mib MiB"
  memmap_args+=("memmap=${dax_mib}M!${start}M")
  dax_nodes+=("$node")
done

# --- kernel and modules --------------------------------------------------------
if [ -z "$kernel" ]; then
  [ -z "$modules" ] || fail "--modules goes with --kernel"
  tree=$("$here/fetch-kernel.sh" "$cache" "$flavour") || fail "could not fetch the Debian kernel"
  kernel=$(ls "$tree"/boot/vmlinuz-* | head -n 1)
  modules=$(ls -d "$tree"/lib/modules/*/ | head -n 1)
fi
[ -f "$kernel" ] || fail "--kernel $kernel: no such file"
for tool in qemu-system-x86_64 cpio; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/setup.sh installs it)"
done
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 ||
  fail "/bin/busybox must be the static one (package busybox-static)"

work=$(mktemp -d "${TMPDIR:-/tmp}/tierfs-vm-XXXXXX")
qemu_pid=
cleanup() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
  if [ "$keep" = 1 ]; then
    echo "vm: kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
root="$work/root"
mkdir -p "$root"/{bin,sbin,etc,lib,lib64,usr/bin,usr/local/bin,vm/bin}

# Copies an executable and every shared library ldd says it loads, at the same paths.
add_executable() {
  local src=$1 dest=$2 lib
  [ -f "$src" ] || fail "$src: no such file"
  mkdir -p "$(dirname "$root$dest")"
  # Debug info is a third of tierfs's size and the guest never reads it.
  strip --strip-debug -o "$root$dest" "$src" 2>/dev/null || cp "$src" "$root$dest"
  chmod 755 "$root$dest"
  for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*' || true); do
    [ -e "$root$lib" ] && continue
    mkdir -p "$(dirname "$root$lib")"
    cp -L "$lib" "$root$lib"
  done
}

cp /bin/busybox "$root/bin/busybox"
install -m 755 "$here/init.sh" "$root/init"
for tool in ndctl daxctl fusermount3; do
  path=$(command -v "$tool") || fail "$tool is not installed (scripts/setup.sh installs it)"
  add_executable "$path" "/usr/bin/$tool"
done
if [ -n "$tierfs" ]; then
  add_executable "$tierfs" /usr/local/bin/tierfs
fi
for add in ${adds[@]+"${adds[@]}"}; do
  [ -f "$add" ] || fail "--add $add: no such file"
  if [ -x "$add" ] && ldd "$add" >/dev/null 2>&1; then
    add_executable "$add" "/vm/bin/$(basename "$add")"
  else
    cp "$add" "$root/vm/bin/"
  fi
done
ln -s /proc/mounts "$root/etc/mtab"
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"

# Modules, with their dependencies in load order, from modules.dep; compressed ones
# are unpacked because busybox insmod reads plain ELF only.
: >"$root/vm/modules.list"
if [ -n "$modules" ]; then
  [ -d "$modules" ] || fail "--modules $modules: no such directory"
  if [ ! -f "$modules/modules.dep" ]; then
    candidates=("$modules"/lib/modules/*/modules.dep)
    [ -f "${candidates[0]}" ] || fail "--modules $modules: no modules.dep there (run depmod)"
    modules=$(dirname "${candidates[0]}")
  fi
  modules=$(cd "$modules" && pwd)
  version=$(basename "$modules")
  mkdir -p "$work/modroot/lib/modules"
  ln -s "$modules" "$work/modroot/lib/modules/$version"
  for module in fuse libnvdimm nd_btt nd_pmem nd_e820 device_dax dax_pmem brd; do
    lines=$(modprobe -C /dev/null -d "$work/modroot" -S "$version" --show-depends "$module" 2>&1) ||
      fail "kernel module $module is neither in $modules nor built in: $lines"
    while read -r verb path _; do
      [ "$verb" = insmod ] || continue
      rel=${path#"$work/modroot"}
      rel=${rel#"$modules"}
      rel=/lib/modules/$version/${rel#/lib/modules/"$version"/}
      plain=${rel%.xz} plain=${plain%.zst} plain=${plain%.gz}
      grep -qxF "$plain" "$root/vm/modules.list" && continue
      mkdir -p "$(dirname "$root$plain")"
      case "$path" in
        *.xz) xz -dc "$path" >"$root$plain" ;;
        *.zst) zstd -qdc "$path" >"$root$plain" ;;
        *.gz) gzip -dc "$path" >"$root$plain" ;;
        *) cp "$path" "$root$plain" ;;
      esac
      echo "$plain" >>"$root/vm/modules.list"
    done <<<"$lines"
  done
fi

cat >"$root/vm/config" <<EOF
VM_NODES=$nodes
VM_DAX=$dax
VM_NODE_MIB=$node_mib
VM_DAX_MIB=$dax_mib
VM_DAX_NODES="${dax_nodes[*]}"
export VM_NODES VM_DAX VM_NODE_MIB VM_DAX_MIB VM_DAX_NODES
EOF
# The command, each argument single-quoted for busybox sh.
{
  echo ". /vm/config"
  printf 'exec'
  for arg in "$@"; do printf " '%s'" "${arg//\'/\'\\\'\'}"; done
  echo
} >"$root/vm/cmd"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$work/initramfs.cpio"

# --- boot ------------------------------------------------------------------------
qemu_args=(-accel tcg -machine pc -cpu max -smp "$cpus" -m "$((nodes * node_mib))M"
  -nodefaults -display none -no-reboot -nic none -monitor none
  -kernel "$kernel" -initrd "$work/initramfs.cpio"
  -serial "file:$work/console.log" -serial "file:$work/output.log")
for ((n = 0; n < nodes; n++)); do
  node_cpus=""
  for ((c = n; c < cpus; c += nodes)); do node_cpus+=",cpus=$c"; done
  qemu_args+=(-object "memory-backend-ram,id=ram$n,size=${node_mib}M"
    -numa "node,nodeid=$n,memdev=ram$n$node_cpus")
done
cmdline="console=ttyS0 rdinit=/init panic=-1 oops=panic nokaslr mitigations=off loglevel=4"
cmdline+=" ${memmap_args[*]} $append"
qemu_args+=(-append "$cmdline")

: >"$work/output.log"
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 "${qemu_args[@]}" \
  >"$work/qemu.log" 2>&1 </dev/null &
qemu_pid=$!
qemu_status=0
wait "$qemu_pid" || qemu_status=$?
qemu_pid=

tr -d '\r' <"$work/output.log" >"$work/output.txt"
# The marker may follow output that did not end in a newline.
marker=$(grep -ao 'TIERFS-VM-EXIT-STATUS=[0-9]*$' "$work/output.txt" | tail -n 1 || true)
awk '/^TIERFS-VM-EXIT-STATUS=[0-9]*$/ { next }
  { sub(/TIERFS-VM-EXIT-STATUS=[0-9]*$/, ""); print }' "$work/output.txt"
show_console() {
  echo "vm: last lines of the kernel console ($1):" >&2
  tail -n 40 "$work/console.log" | tr -d '\r' | sed 's/^/  /' >&2
  [ -s "$work/qemu.log" ] && sed 's/^/  qemu: /' "$work/qemu.log" >&2
  return 0
}
if [ -z "$marker" ]; then
  if [ "$qemu_status" -eq 124 ] || [ "$qemu_status" -eq 137 ]; then
    show_console "timed out after $timeout_s s"
    exit 124
  fi
  show_console "the VM stopped (qemu status $qemu_status) without reporting the command's status"
  exit 125
fi
status=${marker#TIERFS-VM-EXIT-STATUS=}
[ "$status" -eq 125 ] && show_console "setup inside the VM failed"
exit "$status"
