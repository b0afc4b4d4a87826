#!/usr/bin/env bash
# Installs every Debian package that tierfs's build, tests, benchmarks and VM
# harness need. Idempotent: packages already present are left alone.
# Works as root or through sudo.
set -euo pipefail

packages=(
  # build
  meson ninja-build pkg-config g++ clang llvm lld clang-format clang-tidy bpftool libbpf-dev libcap-dev libelf-dev zlib1g-dev
  libfuse3-dev fuse3 libnuma-dev liburing-dev dpkg-dev libdaxctl-dev libndctl-dev
  libtomlplusplus-dev libcli11-dev libfmt-dev libspdlog-dev nlohmann-json3-dev libxxhash-dev libisal-dev
  libgtest-dev libgmock-dev libbenchmark-dev libclang-rt-14-dev libsqlite3-dev
  libcap-ng-dev libseccomp-dev   # the mounted server's least privilege (tierfs/server/privilege.cc)
  libblkid-dev   # file systems and partition tables on region devices (numa/region_claim.cc)
  # tests and benchmarks
  fio stress-ng dbench attr numactl gnuplot-nox python3 util-linux valgrind
  fdisk e2fsprogs   # sfdisk and mkfs.ext4: foreign devices a region must refuse (tests/security/foreign_region.sh)
  # Slurm suite (tests/slurm): munge, slurmctld and slurmd on localhost; rsync for the staging benchmark
  slurmctld slurmd slurm-client munge rsync
  iproute2   # the multi-node Slurm suite: a bridge and a network namespace per node
  moosefs-master moosefs-chunkserver moosefs-client   # job-wide scratch (tierfs job start --shared)
  seccomp bpftrace   # scripts/seccomp-audit.sh: syscall names, and the calls sandboxed servers make
  groff-base   # the man page check (tests/integration/mount_helper.sh)
  prometheus-cpp-dev   # writes the Prometheus text format of tierfs stats --prometheus (tierfs/cli/stats_openmetrics.cc)
  python3-prometheus-client   # parses tierfs stats --openmetrics/--prometheus (tests/integration/stats_openmetrics.sh)
  prometheus-node-exporter   # its textfile collector serves that output (the same test starts its own on a free port)
  debhelper lintian mmdebstrap   # the Debian package, built and installed into a clean root (tests/package)
  # VM harness (kernel/vm). The kernels it boots are not installed here:
  # kernel/vm/fetch-kernel.sh fetches Debian's packages with apt-get download
  # into the build's vm-cache (linux-image-cloud-amd64, 6.1, for the vm test;
  # linux-image-6.12-cloud-amd64 from bookworm-security for vm_placement), so
  # no kernel postinst (initramfs, bootloader) runs on this machine.
  qemu-system-x86 busybox-static ndctl daxctl cpio kmod
  binutils xz-utils zstd    # strip; unpacking compressed modules of a kernel of one's own
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install packages" >&2; exit 1; }
  sudo_cmd=(sudo)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# libfuse 3.18 where the system's is older than 3.16 (Debian 12 has 3.14):
# FUSE over io_uring and requests above 1 MiB, 1.5-4x on one job
# (docs/benchmarks.md). Built from the distribution's own source package into
# /opt/tierfs/libfuse, which meson picks up (-Dlibfuse_prefix=auto).
# TIERFS_LIBFUSE=system skips it; a failure is one line and the build then
# uses the system's libfuse, except in CI (CI=true), where it fails the run.
libfuse_private() {
  local prefix=/opt/tierfs/libfuse
  [ "${TIERFS_LIBFUSE:-}" = system ] && return 0
  if pkg-config --atleast-version=3.16 fuse3 2>/dev/null; then return 0; fi
  [ -f "$prefix/lib/libfuse3.a" ] && { echo "setup: libfuse $(sed -n 's/^Version: //p' "$prefix/lib/pkgconfig/fuse3.pc") in $prefix"; return 0; }
  echo "setup: building libfuse 3.18 from Debian's source package into $prefix"
  if ! "${sudo_cmd[@]}" "$(dirname "$0")/build_libfuse.sh" "$prefix" /var/tmp/tierfs-libfuse-build; then
    [ "${CI:-}" = true ] && { echo "setup: libfuse 3.18 build failed" >&2; return 1; }
    echo "setup: libfuse 3.18 build failed; tierfs builds against the system's $(pkg-config --modversion fuse3) (no FUSE over io_uring)" >&2
  fi
  "${sudo_cmd[@]}" rm -rf /var/tmp/tierfs-libfuse-build
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  libfuse_private
  exit 0
fi

echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
echo "setup: apt-get update"
"${sudo_cmd[@]}" apt-get update -qq
# A first install downloads for minutes: apt's own progress on a terminal,
# one line per package set up on a pipe, never silence.
if [ -t 1 ]; then
  "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
else
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" |
    awk '/^Setting up/ { print "setup: " $0; fflush() }'
fi
libfuse_private
echo "setup: done in ${SECONDS}s"
