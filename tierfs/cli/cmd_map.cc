// `tierfs map FILE [--json]`: the extents of a file on a mounted tierfs, with
// the tier, rows and the regions (and region byte ranges) each one touches.
// Reads the virtual xattr user.tierfs.map; needs no ioctl.
#include <fmt/core.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <memory>

#include "tierfs/cli/commands.h"
#include "tierfs/cli/virtual_xattr.h"
#include "tierfs/core/units.h"

namespace tierfs {

namespace {

void print_map(const std::string& file, const inspect::MapPage& map) {
  const auto& extents = map.extents;
  fmt::print("{}: size {}, {} allocated, preferred tier {}, {} extent{}\n", file,
             format_size_approx(map.size), format_size_approx(map.allocated_bytes),
             map.preferred_tier, extents.size(), extents.size() == 1 ? "" : "s");
  if (map.migration)
    fmt::print("  moving to tier {}: {} of {} copied\n", map.migration->to_tier,
               format_size_approx(map.migration->copied_bytes),
               format_size_approx(map.migration->total_bytes));
  if (extents.empty()) return;
  fmt::print("  {:>12} {:>12}  {:<12} {:>14}  {}\n", "file offset", "length", "tier",
             "tier address", "layout");
  for (const auto& extent : extents) {
    fmt::print("  {:>12} {:>12}  {:<12} {:>14}  {} ways x {}{}\n", format_size(extent.file_offset),
               format_size_approx(extent.length), extent.tier, format_size(extent.tier_address),
               extent.ways, format_size(extent.granularity_bytes),
               extent.unwritten ? ", unwritten" : "");
    for (const auto& region : extent.regions)
      fmt::print("  {:>12} {:>12}    region {:<24} bytes [{}, {})\n", "",
                 format_size_approx(region.bytes), region.spec, format_size(region.region_offset),
                 format_size(region.region_end));
  }
}

}  // namespace

void add_map_command(CLI::App& app, int& status) {
  auto file = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("map", "Show where a file's bytes live (tier, regions, offsets)");
  cmd->add_option("FILE", *file, "a regular file on a mounted tierfs")->required();
  cmd->add_flag("--json", *json, "print the JSON document instead of a table");
  cmd->callback([file, json, &status] {
    const inspect::MapPage map = read_extent_map(*file);
    if (*json)
      fmt::print("{}\n", nlohmann::json(map).dump(2));
    else
      print_map(*file, map);
    status = 0;
  });
}

}  // namespace tierfs
