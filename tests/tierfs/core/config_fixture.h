// A fixed machine for configuration tests, so that results do not depend on
// the machine that runs them: nodes 0 and 1 with 16GiB each, /dev/dax0.0
// (4GiB, 2MiB aligned), /dev/dax1.0 (8GiB) and /dev/dax2.0 in system-ram mode.
#pragma once

#include "numa/topology.h"

namespace tierfs::testing {

inline numa::Topology fake_topology() {
  numa::Topology t;
  t.numa_available = true;
  t.daxctl_available = true;
  for (int id = 0; id < 2; ++id) {
    numa::NumaNode node;
    node.id = id;
    node.cpus = {id * 2, id * 2 + 1};
    node.total_bytes = uint64_t{16} << 30;
    node.free_bytes = uint64_t{12} << 30;
    node.distances = id == 0 ? std::vector<int>{10, 21} : std::vector<int>{21, 10};
    t.nodes.push_back(node);
  }
  t.dax_devices.push_back({"/dev/dax0.0", uint64_t{4} << 30, 2 << 20, 0, 2, "devdax"});
  t.dax_devices.push_back({"/dev/dax1.0", uint64_t{8} << 30, 2 << 20, 1, 3, "devdax"});
  t.dax_devices.push_back({"/dev/dax2.0", uint64_t{8} << 30, 2 << 20, 1, 3, "system-ram"});
  return t;
}

}  // namespace tierfs::testing
