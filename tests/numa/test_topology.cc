// discover_topology() against what the running kernel shows in /sys.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "numa/topology.h"

namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Node ids that /sys says have memory.
std::set<int> sysfs_nodes_with_memory() {
  std::set<int> ids;
  std::string list = slurp("/sys/devices/system/node/has_memory");
  std::stringstream in(list);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (part.empty() || part == "\n") continue;
    const auto dash = part.find('-');
    const int lo = std::stoi(part.substr(0, dash));
    const int hi = dash == std::string::npos ? lo : std::stoi(part.substr(dash + 1));
    for (int id = lo; id <= hi; ++id) ids.insert(id);
  }
  return ids;
}

uint64_t sysfs_mem_total(int node) {
  const std::string meminfo =
      slurp("/sys/devices/system/node/node" + std::to_string(node) + "/meminfo");
  std::smatch m;
  const std::regex total("MemTotal:\\s+(\\d+) kB");
  if (!std::regex_search(meminfo, m, total)) return 0;
  return std::stoull(m[1]) * 1024;
}

TEST(Topology, NodesAreTheOnesSysfsSaysHaveMemory) {
  if (!fs::exists("/sys/devices/system/node/has_memory")) GTEST_SKIP() << "no NUMA sysfs";
  const auto topology = tierfs::numa::discover_topology();
  std::set<int> found;
  for (const auto& node : topology.nodes) found.insert(node.id);
  EXPECT_EQ(found, sysfs_nodes_with_memory());
}

TEST(Topology, MemoryTotalsMatchSysfs) {
  const auto topology = tierfs::numa::discover_topology();
  ASSERT_FALSE(topology.nodes.empty());
  for (const auto& node : topology.nodes) {
    if (!topology.numa_available) break;
    EXPECT_EQ(node.total_bytes, sysfs_mem_total(node.id)) << "node " << node.id;
    EXPECT_LE(node.free_bytes, node.total_bytes);
    EXPECT_GT(node.free_bytes, 0u);
  }
}

TEST(Topology, CpusAndDistancesMatchSysfs) {
  const auto topology = tierfs::numa::discover_topology();
  if (!topology.numa_available) GTEST_SKIP() << "no NUMA support";
  for (const auto& node : topology.nodes) {
    const fs::path dir = "/sys/devices/system/node/node" + std::to_string(node.id);
    // cpulist holds ranges like 0-3,8; expand and compare.
    std::set<int> expected;
    std::stringstream in(slurp(dir / "cpulist"));
    std::string part;
    while (std::getline(in, part, ',')) {
      if (part.empty() || part == "\n") continue;
      const auto dash = part.find('-');
      const int lo = std::stoi(part.substr(0, dash));
      const int hi = dash == std::string::npos ? lo : std::stoi(part.substr(dash + 1));
      for (int cpu = lo; cpu <= hi; ++cpu) expected.insert(cpu);
    }
    EXPECT_EQ(std::set<int>(node.cpus.begin(), node.cpus.end()), expected) << "node " << node.id;
    // distance lists every possible node; ours lists the nodes with memory.
    std::stringstream distances(slurp(dir / "distance"));
    std::vector<int> row;
    for (int d; distances >> d;) row.push_back(d);
    ASSERT_EQ(node.distances.size(), topology.nodes.size());
    for (size_t i = 0; i < topology.nodes.size(); ++i)
      EXPECT_EQ(node.distances[i], row.at(static_cast<size_t>(topology.nodes[i].id)));
  }
}

TEST(Topology, DaxDevicesMatchSysfs) {
  const auto topology = tierfs::numa::discover_topology();
  std::set<std::string> expected;
  if (fs::exists("/sys/bus/dax/devices"))
    for (const auto& entry : fs::directory_iterator("/sys/bus/dax/devices")) {
      const std::string size = slurp(entry.path() / "size");
      if (!size.empty() && std::stoull(size) > 0)
        expected.insert("/dev/" + entry.path().filename().string());
    }
  std::set<std::string> found;
  for (const auto& dax : topology.dax_devices) {
    found.insert(dax.path);
    EXPECT_GT(dax.size_bytes, 0u);
    EXPECT_TRUE(dax.mode == "devdax" || dax.mode == "system-ram");
  }
  EXPECT_EQ(found, expected);
}

TEST(Topology, LookupByIdAndPath) {
  const auto topology = tierfs::numa::discover_topology();
  ASSERT_FALSE(topology.nodes.empty());
  EXPECT_EQ(topology.node(topology.nodes[0].id), &topology.nodes[0]);
  EXPECT_EQ(topology.node(4096), nullptr);
  EXPECT_EQ(topology.dax("/dev/dax-none"), nullptr);
}

}  // namespace
