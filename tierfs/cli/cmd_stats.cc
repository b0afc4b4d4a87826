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

void print_stats(const std::string& mountpoint, const nlohmann::json& stats) {
  fmt::print("{}: {} of {} free, {} inodes\n", mountpoint,
             format_size_approx(stats.at("free_bytes")),
             format_size_approx(stats.at("capacity_bytes")), stats.at("inodes").get<uint64_t>());
  fmt::print("  {:<24} {:>12} {:>12} {:>12} {:>10} {:>10} {:>12} {:>12}\n", "tier / region",
             "capacity", "used", "free", "reads", "writes", "read", "written");
  for (const auto& tier : stats.at("tiers")) {
    fmt::print(
        "  {:<24} {:>12} {:>12} {:>12} {:>10} {:>10} {:>12} {:>12}\n",
        fmt::format("{} ({} x {})", tier.at("name").get<std::string>(),
                    tier.at("ways").get<uint32_t>(), format_size(tier.at("granularity_bytes"))),
        format_size_approx(tier.at("capacity_bytes")), format_size_approx(tier.at("used_bytes")),
        format_size_approx(tier.at("free_bytes")), tier.at("reads").get<uint64_t>(),
        tier.at("writes").get<uint64_t>(), format_size_approx(tier.at("bytes_read")),
        format_size_approx(tier.at("bytes_written")));
    for (const auto& region : tier.at("regions"))
      fmt::print("    {:<22} {:>12} {:>12} {:>12}   node {}\n",
                 region.at("spec").get<std::string>(), format_size_approx(region.at("size_bytes")),
                 format_size_approx(region.at("used_bytes")),
                 format_size_approx(region.at("free_bytes")), region.at("numa_node").get<int>());
  }
  std::string ops;
  for (const auto& [name, count] : stats.at("ops").items())
    if (count.get<uint64_t>() > 0) ops += fmt::format(" {}={}", name, count.get<uint64_t>());
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
    std::string text = read_virtual_xattr(*mountpoint, "user.tierfs.stats", "a tierfs mount point");
    if (*json)
      fmt::print("{}\n", nlohmann::json::parse(text).dump(2));
    else
      print_stats(*mountpoint, nlohmann::json::parse(text));
    status = 0;
  });
}

}  // namespace tierfs
