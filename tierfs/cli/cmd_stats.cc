// `tierfs stats MOUNTPOINT [--json]`: per-tier and per-region capacity, use
// and traffic, and the server's operation counts. Reads the virtual xattr
// user.tierfs.stats on the mount root; needs no ioctl.
#include <fmt/core.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <memory>

#include "tierfs/cli/commands.h"
#include "tierfs/cli/virtual_xattr.h"
#include "tierfs/core/units.h"

namespace tierfs {

namespace {

void print_stats(const std::string& mountpoint, const inspect::Stats& stats) {
  fmt::print("{}: {} of {} free, {} inodes\n", mountpoint, format_size_approx(stats.free_bytes),
             format_size_approx(stats.capacity_bytes), stats.inodes);
  fmt::print("  {:<24} {:>12} {:>12} {:>12} {:>10} {:>10} {:>12} {:>12}\n", "tier / region",
             "capacity", "used", "free", "reads", "writes", "read", "written");
  for (const auto& tier : stats.tiers) {
    fmt::print(
        "  {:<24} {:>12} {:>12} {:>12} {:>10} {:>10} {:>12} {:>12}\n",
        fmt::format("{} ({} x {})", tier.name, tier.ways, format_size(tier.granularity_bytes)),
        format_size_approx(tier.capacity_bytes), format_size_approx(tier.used_bytes),
        format_size_approx(tier.free_bytes), tier.reads, tier.writes,
        format_size_approx(tier.bytes_read), format_size_approx(tier.bytes_written));
    for (const auto& region : tier.regions)
      fmt::print("    {:<22} {:>12} {:>12} {:>12}   node {}\n", region.spec,
                 format_size_approx(region.size_bytes), format_size_approx(region.used_bytes),
                 format_size_approx(region.free_bytes), region.numa_node);
  }
  std::string ops;
  for (const auto& [name, count] : stats.ops)
    if (count > 0) ops += fmt::format(" {}={}", name, count);
  fmt::print("  operations:{}\n", ops.empty() ? " none" : ops);
}

}  // namespace

void add_stats_command(CLI::App& app, int& status) {
  auto mountpoint = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("stats", "Show tier and region use and operation counts");
  cmd->add_option("MOUNTPOINT", *mountpoint, "a mounted tierfs")->required();
  cmd->add_flag("--json", *json, "print the JSON document instead of a table");
  cmd->callback([mountpoint, json, &status] {
    const inspect::Stats stats = read_stats(*mountpoint);
    if (*json)
      fmt::print("{}\n", nlohmann::json(stats).dump(2));
    else
      print_stats(*mountpoint, stats);
    status = 0;
  });
}

}  // namespace tierfs
