// What the machine offers tierfs: NUMA nodes (libnuma) and DAX devices
// (libdaxctl). Discovery only; nothing here allocates or maps memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tierfs::numa {

struct NumaNode {
  int id = 0;
  std::vector<int> cpus;
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
  std::vector<int> distances;  // distances[i] is the distance to the i-th entry of Topology::nodes
};

struct DaxDevice {
  std::string path;  // e.g. /dev/dax0.0
  uint64_t size_bytes = 0;
  uint64_t align_bytes = 0;
  int numa_node = -1;    // node whose CPUs are closest
  int target_node = -1;  // node the memory would join if onlined as system-ram
  std::string mode;      // "devdax" or "system-ram"
};

struct Topology {
  std::vector<NumaNode> nodes;  // nodes with memory, ordered by id
  std::vector<DaxDevice> dax_devices;
  bool numa_available = false;  // libnuma's numa_available() succeeded
  bool daxctl_available = false;

  const NumaNode* node(int id) const;
  const DaxDevice* dax(const std::string& path) const;
};

// Reads the running machine. Never throws for missing features: a machine
// without NUMA support reports one node 0, without DAX an empty list.
Topology discover_topology();

}  // namespace tierfs::numa
