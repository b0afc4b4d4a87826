// Reads the running kernel's BTF (vmlinux and, when fuse is a module, its
// module BTF) for the fuse-iomap types, the fuse module's enable_iomap
// parameter and this process's CAP_SYS_RAWIO, and tries a BPF map creation,
// so that tierfs reports what it can use instead of guessing from version
// numbers (the series may be backported; BPF may be restricted).
#include "kernel/probe.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fuse_lowlevel.h>
#include <linux/btf.h>
#include <sys/capability.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

namespace tierfs::kernel {
namespace {

constexpr const char* kFuseModuleBtf = "/sys/kernel/btf/fuse";
constexpr const char* kEnableIomap = "/sys/module/fuse/parameters/enable_iomap";

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

bool has_struct(const btf* types, const char* name) {
  return types != nullptr && btf__find_by_name_kind(types, name, BTF_KIND_STRUCT) >= 0;
}

// The iomap types in one BTF (vmlinux or the fuse module's); true when found there.
bool read_iomap_types(const btf* types, const char* where, KernelFeatures& f) {
  if (!has_struct(types, "fuse_iomap_io")) return false;
  f.fuse_iomap = true;
  f.iomap_btf = where;
  f.fuse_iomap_bpf_ops = has_struct(types, "fuse_iomap_bpf_ops");
  f.fuse_bpf_inode = has_struct(types, "fuse_bpf_inode");
  f.fuse_iomap_stripe =
      has_struct(types, "fuse_iomap_backing_stripe") || has_struct(types, "fuse_backing_stripe");
  return true;
}

std::optional<bool> read_enable_iomap() {
  std::ifstream in(kEnableIomap);
  char value = 0;
  if (!(in >> value)) return std::nullopt;
  return value == 'Y' || value == 'y' || value == '1';
}

bool has_cap_sys_rawio() {
  std::unique_ptr<_cap_struct, int (*)(void*)> caps(cap_get_proc(), cap_free);
  cap_flag_value_t value = CAP_CLEAR;
  return caps && cap_get_flag(caps.get(), CAP_SYS_RAWIO, CAP_EFFECTIVE, &value) == 0 &&
         value == CAP_SET;
}

}  // namespace

namespace {
std::string where_looked(const KernelFeatures& f) {
  return f.fuse_module ? "vmlinux or fuse module BTF" : "vmlinux BTF; fuse is built in";
}
}  // namespace

KernelFeatures probe_kernel() {
  KernelFeatures f;
  utsname uts{};
  if (uname(&uts) == 0) f.release = uts.release;

  btf* vmlinux = btf__load_vmlinux_btf();
  if (vmlinux != nullptr) {
    f.btf = true;
    f.fuse_module = access(kFuseModuleBtf, R_OK) == 0;
    if (!read_iomap_types(vmlinux, "vmlinux", f) && f.fuse_module) {
      btf* module = btf__load_module_btf("fuse", vmlinux);
      if (module != nullptr) {
        read_iomap_types(module, "fuse module", f);
        btf__free(module);
      }
    }
    btf__free(vmlinux);
  }
  f.enable_iomap = read_enable_iomap();
  f.cap_sys_rawio = has_cap_sys_rawio();
  f.libbpf_version = libbpf_version_string();
  f.libbpf_module_struct_ops =
      libbpf_major_version() > 1 || (libbpf_major_version() == 1 && libbpf_minor_version() >= 4);
  f.libfuse_version = fuse_pkgversion();
  // The patched libfuse defines the iomap types next to its capability flags.
#ifdef FUSE_IOMAP_TYPE_PURE_OVERWRITE
  f.libfuse_iomap = true;
#endif
  f.bpf_missing = bpf_unusable_reason();
  f.bpf_usable = f.bpf_missing.empty();
  return f;
}

IomapKernel iomap_kernel(const KernelFeatures& f) {
  if (!f.btf || !f.fuse_iomap) return IomapKernel::none;
  if (f.fuse_iomap_bpf_ops) return IomapKernel::feb2026;
  if (f.fuse_iomap_stripe) return IomapKernel::may2026;
  return IomapKernel::unknown_revision;
}

std::string iomap_generation(const KernelFeatures& f) {
  if (!f.btf) return "unknown (no BTF)";
  switch (iomap_kernel(f)) {
    case IomapKernel::none:
      return "none (no fuse-iomap type in " + where_looked(f) + ")";
    case IomapKernel::feb2026:
      return "Feb 2026 (BPF struct_ops hook fuse_iomap_bpf_ops" +
             std::string(f.fuse_bpf_inode ? ", opaque fuse_bpf_inode"
                                          : ", without fuse_bpf_inode") +
             ") in " + f.iomap_btf + " BTF";
    case IomapKernel::may2026:
      return "May 2026 (in-kernel striping: fuse_iomap_backing_stripe, no BPF hook) in " +
             f.iomap_btf + " BTF";
    case IomapKernel::unknown_revision:
      break;
  }
  return "fuse-iomap of a revision tierfs does not speak (neither the BPF hook nor stripes) in " +
         f.iomap_btf + " BTF";
}

std::string iomap_program_unloadable(const KernelFeatures& f) {
  const std::string kernel = "kernel " + f.release;
  const std::string tail = ": the server path serves all I/O";
  if (!f.bpf_usable) return f.bpf_missing + tail;
  if (!f.btf) return kernel + " has no BTF" + tail;
  if (!f.fuse_iomap)
    return kernel + " has no fuse_iomap_bpf_ops (no fuse-iomap type in " + where_looked(f) + ")" +
           tail;
  if (!f.fuse_iomap_bpf_ops)
    return kernel + " has no fuse_iomap_bpf_ops (fuse-iomap without the BPF hook)" + tail;
  if (!f.fuse_bpf_inode)
    return kernel + " has fuse_iomap_bpf_ops without fuse_bpf_inode (an older revision than " +
           "tierfs's program)" + tail;
  if (f.iomap_btf != "vmlinux" && !f.libbpf_module_struct_ops)
    return "fuse_iomap_bpf_ops is in the fuse module's BTF and libbpf " + f.libbpf_version +
           " creates struct_ops maps only for vmlinux types (module types need libbpf 1.4)" + tail;
  return "";
}

std::string iomap_program_unavailable(const KernelFeatures& f) {
  const std::string tail = ": the server path serves all I/O";
  if (std::string why = iomap_program_unloadable(f); !why.empty()) return why;
  if (!f.enable_iomap.value_or(false))
    return std::string("the fuse module parameter enable_iomap is ") +
           (f.enable_iomap ? "off (echo Y > " + std::string(kEnableIomap) + ")" : "missing") + tail;
  if (!f.cap_sys_rawio) return "this process lacks CAP_SYS_RAWIO, which fuse-iomap requires" + tail;
  if (!f.libfuse_iomap)
    return "libfuse " + f.libfuse_version +
           " cannot negotiate FUSE_IOMAP in FUSE_INIT, and the kernel registers the program only " +
           "on a connection that did" + tail;
  return "";
}

}  // namespace tierfs::kernel
