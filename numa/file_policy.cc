// Shared memory policy of tmpfs files (see file_policy.h).
#include "numa/file_policy.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

// Linux 6.9+ (include/uapi/linux/mempolicy.h); Debian 12's numaif.h predates it.
#ifndef MPOL_WEIGHTED_INTERLEAVE
#define MPOL_WEIGHTED_INTERLEAVE 6
#endif

namespace numa {

bool is_weighted(const FilePolicy& policy) {
  return !policy.weights.empty() &&
         std::any_of(policy.weights.begin(), policy.weights.end(),
                     [&](uint32_t w) { return w != policy.weights.front(); });
}

std::string apply_file_policy(int fd, const FilePolicy& policy, bool move) {
  if (policy.nodes.empty() || policy.span_bytes == 0) return "no nodes or no span to place";
  // No access is needed: mbind works on the VMA, and shmem_set_policy
  // records the policy on the file for the VMA's page offsets.
  void* map = mmap(nullptr, policy.span_bytes, PROT_NONE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (map == MAP_FAILED) return fmt::format("mmap of the backing file: {}", std::strerror(errno));
  bitmask* mask = numa_allocate_nodemask();
  for (int node : policy.nodes) numa_bitmask_setbit(mask, static_cast<unsigned>(node));
  const int mode = is_weighted(policy) ? MPOL_WEIGHTED_INTERLEAVE : MPOL_INTERLEAVE;
  const long rc =
      mbind(map, policy.span_bytes, mode, mask->maskp, mask->size + 1, move ? MPOL_MF_MOVE : 0);
  const int err = errno;
  numa_free_nodemask(mask);
  munmap(map, policy.span_bytes);
  if (rc != 0)
    return fmt::format("mbind({}) of the backing file: {}",
                       mode == MPOL_INTERLEAVE ? "MPOL_INTERLEAVE" : "MPOL_WEIGHTED_INTERLEAVE",
                       std::strerror(err));
  return "";
}

std::string tmpfs_policy_option(const FilePolicy& policy) {
  std::vector<int> nodes = policy.nodes;
  std::sort(nodes.begin(), nodes.end());
  nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
  return fmt::format("mpol={}:{}", is_weighted(policy) ? "weighted interleave" : "interleave",
                     fmt::join(nodes, ","));
}

std::string check_file_policy(int fd, const FilePolicy& policy) {
  const long page = sysconf(_SC_PAGESIZE);
  void* map = mmap(nullptr, static_cast<size_t>(page), PROT_NONE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return fmt::format("mmap of the file: {}", std::strerror(errno));
  bitmask* mask = numa_allocate_nodemask();
  int mode = -1;
  const long rc = get_mempolicy(&mode, mask->maskp, mask->size + 1, map, MPOL_F_ADDR);
  const int err = errno;
  munmap(map, static_cast<size_t>(page));
  std::vector<int> has;
  for (unsigned node = 0; rc == 0 && node < mask->size; ++node)
    if (numa_bitmask_isbitset(mask, node)) has.push_back(static_cast<int>(node));
  numa_free_nodemask(mask);
  if (rc != 0) return fmt::format("get_mempolicy of the file: {}", std::strerror(err));
  std::vector<int> wanted = policy.nodes;
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  const int wanted_mode = is_weighted(policy) ? MPOL_WEIGHTED_INTERLEAVE : MPOL_INTERLEAVE;
  if (mode == wanted_mode && has == wanted) return "";
  return fmt::format("the file has policy mode {} over nodes [{}], not mode {} over [{}]", mode,
                     fmt::join(has, ","), wanted_mode, fmt::join(wanted, ","));
}

std::string set_interleave_weights(const FilePolicy& policy, const std::string& sysfs_root) {
  for (size_t i = 0; i < policy.nodes.size() && i < policy.weights.size(); ++i) {
    const std::string path = fmt::format("{}/kernel/mm/mempolicy/weighted_interleave/node{}",
                                         sysfs_root, policy.nodes[i]);
    std::ofstream out(path);
    out << policy.weights[i] << '\n';
    out.flush();
    if (!out) return fmt::format("{}: cannot write weight {}", path, policy.weights[i]);
  }
  return "";
}

}  // namespace numa
