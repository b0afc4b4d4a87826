// `tierfs map FILE [--json]`: the extents of a file on a mounted tierfs, with
// the tier, rows and the regions (and region byte ranges) each one touches.
// Reads the virtual xattr user.tierfs.map; needs no ioctl. With --pages it
// also asks the kernel where the file's pages are (numa/page_census.h).
#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>

#include "numa/page_census.h"
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
  if (map.data_path == "kernel")
    fmt::print(
        "  kernel path: the bytes are a backing file the kernel reads and writes directly, "
        "placed on the tier's nodes by its memory policy\n");
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

// The kernel's answer for the file's pages in memory, through a shared mapping
// of the file on the mount. On a kernel-path file FUSE passthrough makes that
// the backing file's mapping, so this is where the tier's policy put them.
numa::PageCensus measure_pages(const std::string& file) {
  const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw std::runtime_error(fmt::format("{}: cannot open: {}", file, std::strerror(errno)));
  std::error_code error;
  std::string what;
  numa::PageCensus census = numa::take_page_census(fd, error, what);
  close(fd);
  if (error)
    throw std::runtime_error(
        fmt::format("{}: measuring its pages: {}: {}", file, what, error.message()));
  return census;
}

nlohmann::json census_json(const numa::PageCensus& census) {
  nlohmann::json nodes = nlohmann::json::object();
  for (const auto& [node, pages] : census.pages_per_node)
    nodes[std::to_string(node)] = {
        {"pages", pages}, {"bytes", census.bytes_on(node)}, {"share", census.share(node)}};
  nlohmann::json runs = nlohmann::json::object();
  for (const auto& [pages, count] : census.run_lengths()) runs[std::to_string(pages)] = count;
  return {{"page_bytes", census.page_bytes},
          {"file_pages", census.file_pages},
          {"populated_pages", census.populated_pages},
          {"nodes", nodes},
          {"runs_by_pages", runs}};
}

}  // namespace

void add_map_command(CLI::App& app, int& status) {
  auto file = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto pages = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("map", "Show where a file's bytes live (tier, regions, offsets)");
  cmd->add_option("FILE", *file, "a regular file on a mounted tierfs")->required();
  cmd->add_flag("--json", *json, "print the JSON document instead of a table");
  cmd->add_flag("--pages", *pages,
                "also ask the kernel which NUMA node holds each page of the file in memory "
                "(move_pages): a kernel-path file's placement as the kernel made it; on a "
                "server-path file only the page cache's");
  cmd->callback([file, json, pages, &status] {
    const inspect::MapPage map = read_extent_map(*file);
    std::optional<numa::PageCensus> census;
    if (*pages) census = measure_pages(*file);
    if (*json) {
      nlohmann::json out = map;
      if (census) out["measured_pages"] = census_json(*census);
      fmt::print("{}\n", out.dump(2));
    } else {
      print_map(*file, map);
      if (census) {
        fmt::print("  pages in memory, measured by the kernel (move_pages):\n");
        for (const auto& line : numa::describe_census(*census)) fmt::print("    {}\n", line);
      }
    }
    status = 0;
  });
}

}  // namespace tierfs
