// Reads the running kernel's BTF for the fuse-iomap types and tries a BPF map
// creation, so that tierfs reports what it can use instead of guessing from
// version numbers (the series may be backported; BPF may be restricted).
#include "kernel/probe.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/btf.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tierfs::kernel {
namespace {

std::string bpf_unusable_reason() {
  LIBBPF_OPTS(bpf_map_create_opts, opts);
  const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "tierfs_probe", 4, 4, 1, &opts);
  if (fd >= 0) {
    close(fd);
    return "";
  }
  const int err = errno;
  if (err == EPERM || err == EACCES)
    return "BPF is not permitted for this process (needs root or CAP_BPF)";
  if (err == ENOSYS) return "this kernel has no bpf() system call";
  return std::string("cannot create a BPF map: ") + std::strerror(err);
}

}  // namespace

KernelFeatures probe_kernel() {
  KernelFeatures features;
  utsname uts{};
  if (uname(&uts) == 0) features.release = uts.release;

  btf* vmlinux = btf__load_vmlinux_btf();
  if (vmlinux != nullptr) {
    features.btf = true;
    features.fuse_iomap = btf__find_by_name_kind(vmlinux, "fuse_iomap_io", BTF_KIND_STRUCT) >= 0;
    features.fuse_iomap_bpf_ops =
        btf__find_by_name_kind(vmlinux, "fuse_iomap_bpf_ops", BTF_KIND_STRUCT) >= 0;
    btf__free(vmlinux);
  }
  features.bpf_missing = bpf_unusable_reason();
  features.bpf_usable = features.bpf_missing.empty();
  return features;
}

std::string iomap_program_unavailable(const KernelFeatures& features) {
  const std::string kernel = "kernel " + features.release;
  if (!features.bpf_usable) return features.bpf_missing + ": the server path serves all I/O";
  if (!features.btf) return kernel + " has no BTF: the server path serves all I/O";
  if (!features.fuse_iomap_bpf_ops)
    return kernel + " has no fuse_iomap_bpf_ops: the server path serves all I/O";
  return "";
}

}  // namespace tierfs::kernel
