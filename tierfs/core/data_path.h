// Which data path moves a tier's bytes: the one place that decides it
// (STYLE.md rule 11). The server path copies every byte through the server;
// the kernel path hands each open file to the kernel with FUSE passthrough
// onto a backing file whose pages the kernel places on the tier's NUMA nodes
// by a shared memory policy. A tier gets the kernel path only where the
// kernel can reproduce its layout: numa: regions, a granularity the kernel
// allocates as one folio, and weights it can apply, and only where this
// server can hand files to the kernel (a libfuse and a kernel with
// passthrough, CAP_SYS_ADMIN in the initial user namespace). data_path =
// "auto" (the default) takes the kernel path wherever both hold and says why
// where they do not; everything else is served by the server.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tierfs {

struct TierConfig;
struct MountOptions;

// The configured choice of [[tier]] data_path.
enum class DataPathMode { automatic, kernel, server };
const char* data_path_mode_name(DataPathMode mode);  // "auto", "kernel", "server"

// The path a tier's files take, as resolved.
enum class DataPath { server, kernel };
const char* data_path_name(DataPath path);  // "server", "kernel"

// What the machine offers the kernel path, read once from sysfs and uname.
// Tests build it by hand.
struct KernelFacts {
  uint64_t page_bytes = 4096;
  // /sys/kernel/mm/transparent_hugepage/shmem_enabled, the selected word
  // ("never", "always", "deny", "force", ...); empty: no THP.
  std::string shmem_thp;
  uint64_t pmd_bytes = 2 << 20;
  // hugepages-<N>kB/shmem_enabled: size in bytes -> selected word.
  std::map<uint64_t, std::string> shmem_mthp;
  // /sys/kernel/mm/mempolicy/weighted_interleave/ exists (6.9+).
  bool weighted_interleave = false;
  // uname: at least 6.9 (FUSE passthrough of read/write) and 6.10 (mmap).
  bool kernel_passthrough = false;
  bool kernel_passthrough_mmap = false;
  // Whether this build serves files on the kernel path at all.
  bool kernel_path_built = false;
  // Whether this process holds CAP_SYS_ADMIN (permitted) in the initial user
  // namespace: FUSE_DEV_IOC_BACKING_OPEN checks capable(CAP_SYS_ADMIN)
  // (fs/fuse/backing.c), not ns_capable, and the backing store mounts a
  // tmpfs. A user's mount through fusermount3 has neither.
  bool handover_privilege = false;
};

KernelFacts probe_kernel_facts(const std::string& sysfs_root = "/sys");

// Folio sizes the kernel allocates for a private tmpfs, one of which a
// kernel-path tier's granularity must be: the page unless shmem THP is
// forced, the PMD size unless shmem THP is denied or its size is "never",
// and an mTHP size that is enabled with every larger size "never" (the
// kernel picks the largest enabled size, so a smaller one is not a layout).
std::vector<uint64_t> kernel_granularities(const KernelFacts& facts);

struct DataPathChoice {
  DataPath path = DataPath::server;
  // Whether the tier could take the kernel path (qualification only; the
  // path may still be the server's when the kernel path is not built or
  // this process may not hand files to the kernel).
  bool qualifies = false;
  std::string reason;  // one line: why this path
};

// The decision for every tier of a configuration, in tier order. Weighted
// tiers share the system-wide node weights, so they are decided together.
// A tier configured "kernel" that does not get it has path server and a
// reason; config validation turns that into its error.
std::vector<DataPathChoice> choose_data_paths(const std::vector<TierConfig>& tiers,
                                              const MountOptions& mount, const KernelFacts& facts);

}  // namespace tierfs
