// Topology discovery: NUMA nodes through libnuma, DAX devices through
// libdaxctl (with sysfs for the attributes libdaxctl does not expose).
#include "numa/topology.h"

#include <daxctl/libdaxctl.h>
#include <numa.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace tierfs::numa {
namespace {

// One integer from a sysfs attribute, or `fallback` when it is absent.
long read_sysfs_long(const std::string& path, long fallback) {
  std::ifstream in(path);
  long value = fallback;
  if (!(in >> value)) return fallback;
  return value;
}

std::vector<NumaNode> discover_nodes_libnuma() {
  std::vector<NumaNode> nodes;
  const int max_node = numa_max_node();
  bitmask* cpus = numa_allocate_cpumask();
  for (int id = 0; id <= max_node; ++id) {
    if (!numa_bitmask_isbitset(numa_nodes_ptr, static_cast<unsigned>(id))) continue;
    long long free_bytes = 0;
    const long long total = numa_node_size64(id, &free_bytes);
    if (total <= 0) continue;  // a node without memory (CPU-only) cannot hold a region
    NumaNode node;
    node.id = id;
    node.total_bytes = static_cast<uint64_t>(total);
    node.free_bytes = static_cast<uint64_t>(free_bytes);
    numa_bitmask_clearall(cpus);
    if (numa_node_to_cpus(id, cpus) == 0) {
      for (unsigned cpu = 0; cpu < cpus->size; ++cpu)
        if (numa_bitmask_isbitset(cpus, cpu)) node.cpus.push_back(static_cast<int>(cpu));
    }
    nodes.push_back(std::move(node));
  }
  numa_free_cpumask(cpus);
  for (NumaNode& from : nodes)
    for (const NumaNode& to : nodes) from.distances.push_back(numa_distance(from.id, to.id));
  return nodes;
}

// Without NUMA support the whole machine is node 0.
std::vector<NumaNode> discover_nodes_flat() {
  NumaNode node;
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long avail = sysconf(_SC_AVPHYS_PAGES);
  const long page = sysconf(_SC_PAGESIZE);
  node.total_bytes = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
  node.free_bytes = static_cast<uint64_t>(avail) * static_cast<uint64_t>(page);
  const long ncpu = sysconf(_SC_NPROCESSORS_CONF);
  for (int cpu = 0; cpu < ncpu; ++cpu) node.cpus.push_back(cpu);
  node.distances = {10};
  return {node};
}

std::vector<DaxDevice> discover_dax(bool& available) {
  std::vector<DaxDevice> devices;
  daxctl_ctx* ctx = nullptr;
  available = daxctl_new(&ctx) == 0;
  if (!available) return devices;
  daxctl_region* region = nullptr;
  daxctl_region_foreach(ctx, region) {
    daxctl_dev* dev = nullptr;
    daxctl_dev_foreach(region, dev) {
      const char* name = daxctl_dev_get_devname(dev);
      if (name == nullptr || daxctl_dev_get_size(dev) == 0) continue;  // the unconfigured seed
      DaxDevice d;
      d.path = std::string("/dev/") + name;
      d.size_bytes = daxctl_dev_get_size(dev);
      d.align_bytes = daxctl_dev_get_align(dev);
      if (d.align_bytes == 0) d.align_bytes = daxctl_region_get_align(region);
      d.numa_node = static_cast<int>(
          read_sysfs_long(std::string("/sys/bus/dax/devices/") + name + "/numa_node", -1));
      d.target_node = daxctl_dev_get_target_node(dev);
      // A device bound to kmem has a memory object: it is system RAM, not devdax.
      d.mode = daxctl_dev_get_memory(dev) != nullptr ? "system-ram" : "devdax";
      devices.push_back(std::move(d));
    }
  }
  daxctl_unref(ctx);
  return devices;
}

}  // namespace

const NumaNode* Topology::node(int id) const {
  for (const NumaNode& n : nodes)
    if (n.id == id) return &n;
  return nullptr;
}

const DaxDevice* Topology::dax(const std::string& path) const {
  for (const DaxDevice& d : dax_devices)
    if (d.path == path) return &d;
  return nullptr;
}

Topology discover_topology() {
  Topology topology;
  topology.numa_available = numa_available() >= 0;
  topology.nodes = topology.numa_available ? discover_nodes_libnuma() : discover_nodes_flat();
  topology.dax_devices = discover_dax(topology.daxctl_available);
  return topology;
}

}  // namespace tierfs::numa
