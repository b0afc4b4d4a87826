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

void print_map(const std::string& file, const nlohmann::json& map) {
  const auto& extents = map.at("extents");
  fmt::print("{}: size {}, {} allocated, preferred tier {}, {} extent{}\n", file,
             format_size_approx(map.at("size")), format_size_approx(map.at("allocated_bytes")),
             map.at("preferred_tier").get<std::string>(), extents.size(),
             extents.size() == 1 ? "" : "s");
  if (extents.empty()) return;
  fmt::print("  {:>12} {:>12}  {:<12} {:>12} {:>10}  {}\n", "file offset", "length", "tier",
             "first row", "rows", "layout");
  for (const auto& extent : extents) {
    fmt::print("  {:>12} {:>12}  {:<12} {:>12} {:>10}  {} ways x {}{}\n",
               format_size(extent.at("file_offset")), format_size_approx(extent.at("length")),
               extent.at("tier").get<std::string>(), extent.at("first_row").get<uint64_t>(),
               extent.at("rows").get<uint64_t>(), extent.at("ways").get<uint32_t>(),
               format_size(extent.at("granularity_bytes")),
               extent.at("unwritten").get<bool>() ? ", unwritten" : "");
    for (const auto& region : extent.at("regions"))
      fmt::print("  {:>12} {:>12}    region {:<24} bytes [{}, {})\n", "",
                 format_size_approx(region.at("bytes")), region.at("spec").get<std::string>(),
                 format_size(region.at("region_offset")), format_size(region.at("region_end")));
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
    std::string text = read_extent_map(*file);
    if (*json)
      fmt::print("{}\n", nlohmann::json::parse(text).dump(2));
    else
      print_map(*file, nlohmann::json::parse(text));
    status = 0;
  });
}

}  // namespace tierfs
