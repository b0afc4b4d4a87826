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

// The tmpfs mount option that gives every file made in the tmpfs this
// policy from its creation ("mpol=interleave:0,2", "mpol=weighted
// interleave:1,3"): a new tmpfs inode's shared policy is the superblock's,
// over the whole file (mm/shmem.c, mpol_shared_policy_init), as
// apply_file_policy would set it, without a mapping.
std::string tmpfs_policy_option(const FilePolicy& policy);

// Whether the tmpfs file `fd` has the policy (its mode and nodes at offset
// 0, get_mempolicy on a mapping of it): "" or one line saying what it has.
std::string check_file_policy(int fd, const FilePolicy& policy);

// Moves the pages the tmpfs file `fd` holds to the policy's nodes, in place,
// and gives it the policy for pages to come (apply_file_policy first). Two
// passes over each window of the file, mapped shared and read-only with only
// its pages in memory faulted in (a read fault on a tmpfs hole would allocate):
//  1. mbind(MPOL_MF_MOVE_ALL) moves every page on a node outside the policy
//     to the node the policy's interleave index gives it (mm/mempolicy.c:
//     do_mbind queues only pages off the new node set, MPOL_MF_INVERT);
//  2. pages already on one of the policy's nodes but not on their own
//     interleave node (two tiers over the same nodes with other weights)
//     move there with move_pages(2).
// MOVE_ALL needs CAP_SYS_NICE: without it pages mapped by another process
// too (an mmap of the file) stay where they are, counted in `left_pages`.
// `folio_bytes` is the size of the file's folios (the page, or the huge page
// of a huge-page tmpfs): the interleave index counts folios. Pages the file
// holds without data (fallocated, never written) are not looked at.
struct PageMoves {
  uint64_t resident_pages = 0;  // pages of the file in memory
  uint64_t moved_pages = 0;     // moved by the second pass (the first does not count)
  uint64_t left_pages = 0;      // could not be moved (busy, shared, no memory on the node)
  bool move_all = true;         // MPOL_MF_MOVE_ALL was allowed
  // In: /proc/self/pagemap opened by the caller, or -1 to open it here. Its
  // frame numbers (which pages of a huge-page file are one folio) read as 0
  // unless the opener had CAP_SYS_ADMIN (fs/proc/task_mmu.c checks the
  // file's credentials), so a caller without it raises it for the open only.
  int pagemap_fd = -1;
};
std::string move_file_pages(int fd, const FilePolicy& policy, uint64_t folio_bytes,
                            PageMoves& moves);

// The node the kernel gives interleave index `ilx` under the policy
// (interleave_nid / weighted_interleave_nid in mm/mempolicy.c: the nodes in
// ascending order, each taking `weight` consecutive indexes). A tmpfs file's
// folio at page index i of order o has index i_ino + (i >> o) (mm/shmem.c).
int interleave_node(const FilePolicy& policy, uint64_t ilx);

// Writes the system-wide node weights of weighted interleave
// (/sys/kernel/mm/mempolicy/weighted_interleave/nodeN). "" or one line.
std::string set_interleave_weights(const FilePolicy& policy,
                                   const std::string& sysfs_root = "/sys");

}  // namespace numa
