// The memory policy of a tmpfs file: which NUMA nodes its pages come from.
// The kernel keeps a shmem file's policy per range of the file (its shared
// policy, mm/shmem.c), set by mbind on a MAP_SHARED mapping of it; pages
// allocated later by write(2), by faults or by FUSE passthrough all follow
// it, and MPOL_MF_MOVE moves the pages already there. This is what the
// kernel data path uses to place a file's bytes on its tier's nodes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace numa {

struct FilePolicy {
  std::vector<int> nodes;         // the tier's nodes, one per region
  std::vector<uint32_t> weights;  // one per node; empty or all equal: plain interleave
  // Bytes of the file the policy covers from offset 0: set once past any
  // size the file can reach (a mapping costs address space only).
  uint64_t span_bytes = 0;
};

// Whether the policy needs MPOL_WEIGHTED_INTERLEAVE (unequal weights).
bool is_weighted(const FilePolicy& policy);

// Sets the shared policy of the tmpfs file `fd` to interleave (or weighted
// interleave) over the policy's nodes; with `move`, pages already allocated
// move to those nodes (MPOL_MF_MOVE). Returns "" or one line saying why not.
std::string apply_file_policy(int fd, const FilePolicy& policy, bool move);

// Writes the system-wide node weights of weighted interleave
// (/sys/kernel/mm/mempolicy/weighted_interleave/nodeN). "" or one line.
std::string set_interleave_weights(const FilePolicy& policy,
                                   const std::string& sysfs_root = "/sys");

}  // namespace numa
