// `tierfs topology [--json]`: the NUMA nodes and DAX devices this machine
// offers, as a table or as JSON. The JSON also carries the layout limits of
// bpf/tierfs_map.h, so scripts take them from here instead of copying them.
#include <fmt/core.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "bpf/tierfs_map.h"
#include "numa/topology.h"
#include "tierfs/cli/commands.h"
#include "tierfs/core/units.h"

namespace tierfs {
namespace {

// 0,1,2,3,8 -> "0-3,8"
std::string cpu_list(const std::vector<int>& cpus) {
  std::string text;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!text.empty()) text += ',';
    text += j == i ? fmt::format("{}", cpus[i]) : fmt::format("{}-{}", cpus[i], cpus[j]);
    i = j + 1;
  }
  return text.empty() ? "-" : text;
}

}  // namespace

// What a tier's layout may be, from the one mapping definition. A named
// namespace: the macro's unused from_json must not have internal linkage.
namespace topology_limits {
struct LayoutLimits {
  uint64_t min_granularity_bytes = uint64_t{1} << TIERFS_MIN_GRANULARITY_SHIFT;
  uint64_t max_granularity_bytes = uint64_t{1} << TIERFS_MAX_GRANULARITY_SHIFT;
  uint32_t max_ways = TIERFS_MAX_WAYS;
  uint32_t max_weight = TIERFS_MAX_WEIGHT;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(LayoutLimits, min_granularity_bytes, max_granularity_bytes,
                                   max_ways, max_weight)
}  // namespace topology_limits

namespace {

using topology_limits::LayoutLimits;

nlohmann::json topology_json(const numa::Topology& topology) {
  nlohmann::json doc;
  doc["numa_available"] = topology.numa_available;
  doc["nodes"] = nlohmann::json::array();
  for (const numa::NumaNode& node : topology.nodes) {
    nlohmann::json distances = nlohmann::json::object();
    for (size_t i = 0; i < node.distances.size(); ++i)
      distances[std::to_string(topology.nodes[i].id)] = node.distances[i];
    doc["nodes"].push_back({{"id", node.id},
                            {"cpus", node.cpus},
                            {"total_bytes", node.total_bytes},
                            {"free_bytes", node.free_bytes},
                            {"distances", distances}});
  }
  doc["dax_devices"] = nlohmann::json::array();
  for (const numa::DaxDevice& dax : topology.dax_devices)
    doc["dax_devices"].push_back({{"path", dax.path},
                                  {"size_bytes", dax.size_bytes},
                                  {"align_bytes", dax.align_bytes},
                                  {"numa_node", dax.numa_node},
                                  {"target_node", dax.target_node},
                                  {"mode", dax.mode}});
  doc["limits"] = LayoutLimits{};
  return doc;
}

void print_table(const numa::Topology& topology) {
  fmt::print("NUMA nodes{}:\n", topology.numa_available ? "" : " (no NUMA support: one node)");
  std::string header =
      fmt::format("  {:>4}  {:<16} {:>11} {:>11}  distances to", "node", "cpus", "total", "free");
  for (const auto& node : topology.nodes) header += fmt::format(" {:>4}", node.id);
  fmt::print("{}\n", header);
  for (const auto& node : topology.nodes) {
    std::string line =
        fmt::format("  {:>4}  {:<16} {:>11} {:>11}  {:12}", node.id, cpu_list(node.cpus),
                    format_size_approx(node.total_bytes), format_size_approx(node.free_bytes), "");
    for (int d : node.distances) line += fmt::format(" {:>4}", d);
    fmt::print("{}\n", line);
  }
  if (topology.dax_devices.empty()) {
    fmt::print("No DAX devices on this machine{}.\n",
               topology.daxctl_available ? "" : " (libdaxctl could not start)");
    return;
  }
  fmt::print("DAX devices:\n  {:<16} {:>11} {:>9} {:>5} {:>7}  {}\n", "path", "size", "align",
             "node", "target", "mode");
  for (const auto& dax : topology.dax_devices)
    fmt::print("  {:<16} {:>11} {:>9} {:>5} {:>7}  {}\n", dax.path,
               format_size_approx(dax.size_bytes), format_size(dax.align_bytes), dax.numa_node,
               dax.target_node, dax.mode);
}

}  // namespace

void add_topology_command(CLI::App& app, int& status) {
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("topology", "Show the NUMA nodes and DAX devices of this machine");
  cmd->add_flag("--json", *json, "print JSON instead of a table");
  cmd->callback([json, &status] {
    const numa::Topology topology = numa::discover_topology();
    if (*json)
      fmt::print("{}\n", topology_json(topology).dump(2));
    else
      print_table(topology);
    status = 0;
  });
}

}  // namespace tierfs
