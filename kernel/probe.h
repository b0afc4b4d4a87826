// What the running kernel offers tierfs, read from its BTF, its module
// parameters and this process's capabilities: whether BPF is usable, which
// generation of the fuse-iomap series is there (the Feb 2026 one with the BPF
// struct_ops hook, or one without it), and each other piece the iomap
// program needs. Probed once per mount; every fact is a field, so a caller
// reports each once and names the first one missing.
#pragma once

#include <optional>
#include <string>

namespace tierfs::kernel {

struct KernelFeatures {
  std::string release;              // uname -r
  bool btf = false;                 // /sys/kernel/btf/vmlinux readable and parsed
  bool fuse_module = false;         // fuse is a module: its types are in /sys/kernel/btf/fuse
  bool bpf_usable = false;          // this process could create a BPF map
  std::string bpf_missing;          // why not, one line; empty when usable
  bool fuse_iomap = false;          // BTF has the fuse-iomap types (struct fuse_iomap_io)
  bool fuse_iomap_bpf_ops = false;  // ... and the Feb 2026 BPF hook (struct fuse_iomap_bpf_ops)
  bool fuse_bpf_inode = false;      // ... with the opaque inode type its kfuncs take
  // ... and the May 2026 stripes (struct fuse_iomap_backing_stripe, the
  // FUSE_DEV_IOC_IOMAP_BACKING_STRIPE_CONFIG argument, or the kernel's own
  // struct fuse_backing_stripe)
  bool fuse_iomap_stripe = false;
  std::string iomap_btf;  // where the types are: "vmlinux", "fuse module" or ""
  // /sys/module/fuse/parameters/enable_iomap; nullopt when the parameter does not exist.
  std::optional<bool> enable_iomap;
  bool cap_sys_rawio = false;  // fuse_iomap_enabled() requires it of the server
  // libbpf creates struct_ops maps for types in module BTF from 1.4 on.
  std::string libbpf_version;
  bool libbpf_module_struct_ops = false;
  // The libfuse tierfs was built with can negotiate FUSE_IOMAP in FUSE_INIT.
  std::string libfuse_version;
  bool libfuse_iomap = false;
};

KernelFeatures probe_kernel();

// Which generation of fuse-iomap the kernel speaks, told apart by BTF: the
// Feb 2026 one has the BPF hook, the May 2026 one the stripe types; a kernel
// with fuse-iomap types and neither is an earlier revision tierfs does not
// speak to.
enum class IomapKernel { none, unknown_revision, feb2026, may2026 };
IomapKernel iomap_kernel(const KernelFeatures& features);

// Which generation of the fuse-iomap interface the kernel has, one line.
std::string iomap_generation(const KernelFeatures& features);

// What loading the struct_ops program (the verifier, no attach) needs: BPF,
// BTF, the Feb 2026 types, and a libbpf that handles where they live. One
// line naming the first missing piece; empty when all are there.
std::string iomap_program_unloadable(const KernelFeatures& features);

// Loading's pieces plus what registering it on a FUSE connection needs: the
// enable_iomap parameter, CAP_SYS_RAWIO and a libfuse that negotiates
// FUSE_IOMAP in FUSE_INIT. One line naming the first missing piece; empty
// when everything is there.
std::string iomap_program_unavailable(const KernelFeatures& features);

}  // namespace tierfs::kernel
