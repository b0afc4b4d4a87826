// What the running kernel offers tierfs, read from its BTF and by trying:
// whether BPF is usable by this process, whether the fuse-iomap series and
// its BPF struct_ops are there, and the kernel release for messages.
#pragma once

#include <string>

namespace tierfs::kernel {

struct KernelFeatures {
  std::string release;         // uname -r
  bool btf = false;            // /sys/kernel/btf/vmlinux readable and parsed
  bool bpf_usable = false;     // this process could create a BPF map
  std::string bpf_missing;     // why not, one line; empty when usable
  bool fuse_iomap = false;     // BTF has the fuse-iomap types (struct fuse_iomap_io)
  bool fuse_iomap_bpf_ops = false;  // BTF has struct fuse_iomap_bpf_ops
};

KernelFeatures probe_kernel();

// One line for the log when the struct_ops program cannot be used; empty when it can.
std::string iomap_program_unavailable(const KernelFeatures& features);

}  // namespace tierfs::kernel
