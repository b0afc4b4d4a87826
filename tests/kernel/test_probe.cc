// kernel/probe: the probe on this kernel (every fact read, none invented) and
// the order in which a mount names the first missing piece, on hand-made
// feature sets for the kernels tierfs cannot boot here (a patched one with
// fuse as a module, without enable_iomap, without CAP_SYS_RAWIO, ...).
#include <gtest/gtest.h>

#include <string>

#include "kernel/probe.h"

namespace tierfs::kernel {
namespace {

// Every piece the iomap program needs, present.
KernelFeatures complete() {
  KernelFeatures f;
  f.release = "7.1.0-iomap";
  f.btf = true;
  f.bpf_usable = true;
  f.fuse_iomap = true;
  f.fuse_iomap_bpf_ops = true;
  f.fuse_bpf_inode = true;
  f.iomap_btf = "vmlinux";
  f.enable_iomap = true;
  f.cap_sys_rawio = true;
  f.libbpf_version = "v1.1";
  f.libfuse_version = "3.18.0-iomap";
  f.libfuse_iomap = true;
  return f;
}

bool names(const std::string& line, const std::string& piece) {
  return line.find(piece) != std::string::npos && line.find('\n') == std::string::npos;
}

TEST(Probe, ReadsThisKernel) {
  const KernelFeatures f = probe_kernel();
  EXPECT_FALSE(f.release.empty());
  EXPECT_FALSE(f.libbpf_version.empty());
  EXPECT_FALSE(f.libfuse_version.empty());
  // fuse's types live in module BTF exactly when fuse is a module.
  if (f.fuse_iomap) {
    EXPECT_TRUE(f.iomap_btf == "vmlinux" || f.iomap_btf == "fuse module");
  } else {
    EXPECT_FALSE(f.fuse_iomap_bpf_ops);
  }
  EXPECT_FALSE(iomap_generation(f).empty());
}

TEST(Probe, EveryPiecePresentMeansTheProgramAttaches) {
  EXPECT_EQ(iomap_program_unloadable(complete()), "");
  EXPECT_EQ(iomap_program_unavailable(complete()), "");
  EXPECT_NE(iomap_generation(complete()).find("Feb 2026"), std::string::npos);
}

TEST(Probe, TheFirstMissingPieceIsNamedInOneLine) {
  KernelFeatures f = complete();
  f.libfuse_iomap = false;
  EXPECT_TRUE(names(iomap_program_unavailable(f), "cannot negotiate FUSE_IOMAP"));
  EXPECT_EQ(iomap_program_unloadable(f), "") << "the verifier needs no libfuse";
  f.cap_sys_rawio = false;
  EXPECT_TRUE(names(iomap_program_unavailable(f), "CAP_SYS_RAWIO"));
  f.enable_iomap = false;
  EXPECT_TRUE(names(iomap_program_unavailable(f), "enable_iomap is off"));
  f.enable_iomap.reset();
  EXPECT_TRUE(names(iomap_program_unavailable(f), "enable_iomap is missing"));
  f.iomap_btf = "fuse module";
  f.fuse_module = true;
  EXPECT_TRUE(names(iomap_program_unloadable(f), "libbpf 1.4"));
  EXPECT_TRUE(names(iomap_program_unavailable(f), "libbpf 1.4"));
  f.libbpf_module_struct_ops = true;
  EXPECT_EQ(iomap_program_unloadable(f), "") << "libbpf 1.4 handles module types";
  f.fuse_bpf_inode = false;
  EXPECT_TRUE(names(iomap_program_unloadable(f), "without fuse_bpf_inode"));
  EXPECT_EQ(iomap_kernel(f), IomapKernel::feb2026);
  f.fuse_iomap_bpf_ops = false;
  EXPECT_TRUE(names(iomap_program_unloadable(f), "without the BPF hook"));
  // Without the hook and without stripes: an older revision, not May's.
  EXPECT_EQ(iomap_kernel(f), IomapKernel::unknown_revision);
  EXPECT_NE(iomap_generation(f).find("does not speak"), std::string::npos);
  f.fuse_iomap_stripe = true;
  EXPECT_EQ(iomap_kernel(f), IomapKernel::may2026);
  EXPECT_NE(iomap_generation(f).find("May 2026"), std::string::npos);
  f.fuse_iomap = false;
  EXPECT_EQ(iomap_kernel(f), IomapKernel::none);
  EXPECT_TRUE(names(iomap_program_unloadable(f), "has no fuse_iomap_bpf_ops"));
  EXPECT_NE(iomap_generation(f).find("fuse module"), std::string::npos);
  f.btf = false;
  EXPECT_TRUE(names(iomap_program_unloadable(f), "has no BTF"));
  f.bpf_usable = false;
  f.bpf_missing = "BPF is not permitted for this process (needs root or CAP_BPF)";
  EXPECT_TRUE(names(iomap_program_unavailable(f), "CAP_BPF"));
}

}  // namespace
}  // namespace tierfs::kernel
