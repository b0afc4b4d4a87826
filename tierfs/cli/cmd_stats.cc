// `tierfs stats MOUNTPOINT [--json]`: per-tier and per-region capacity, use
// and traffic (requests and bytes), watermarks and migrations per tier, the
// mover's state, and the server's operation counts. Reads the virtual xattr
// user.tierfs.stats on the mount root; needs no ioctl.
#include <fmt/core.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tierfs/cli/commands.h"
#include "tierfs/cli/virtual_xattr.h"
#include "tierfs/core/units.h"

namespace tierfs {

namespace {

// A text table whose columns are as wide as their widest cell, so long
// region names (file: paths) push the whole column instead of one row.
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header) : rows_{std::move(header)} {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // Column 0 is left-aligned (names), every other column right-aligned (numbers).
  void print(std::string_view indent) const {
    std::vector<size_t> widths(rows_.front().size(), 0);
    for (const auto& row : rows_)
      for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
    for (const auto& row : rows_) {
      std::string line(indent);
      for (size_t c = 0; c < row.size(); ++c)
        line += c == 0 ? fmt::format("{:<{}}", row[c], widths[c])
                       : fmt::format("  {:>{}}", row[c], widths[c]);
      fmt::print("{}\n", line);
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string node_text(int node) {
  return node < 0 ? "-" : std::to_string(node);
}

template <typename Use>
std::vector<std::string> traffic_cells(const Use& use) {
  return {std::to_string(use.reads), std::to_string(use.writes), format_size_approx(use.bytes_read),
          format_size_approx(use.bytes_written)};
}

void print_stats(const std::string& mountpoint, const inspect::Stats& stats) {
  fmt::print("{}: {} of {} free, {} inodes\n", mountpoint, format_size_approx(stats.free_bytes),
             format_size_approx(stats.capacity_bytes), stats.inodes);
  TextTable table(
      {"tier / region", "node", "capacity", "used", "free", "reads", "writes", "read", "written"});
  for (const auto& tier : stats.tiers) {
    std::vector<std::string> row{
        fmt::format("{} ({} x {})", tier.name, tier.ways, format_size(tier.granularity_bytes)), "",
        format_size_approx(tier.capacity_bytes), format_size_approx(tier.used_bytes),
        format_size_approx(tier.free_bytes)};
    for (auto& cell : traffic_cells(tier)) row.push_back(std::move(cell));
    table.add(std::move(row));
    for (const auto& region : tier.regions) {
      std::vector<std::string> cells{
          "  " + region.spec, node_text(region.numa_node), format_size_approx(region.size_bytes),
          format_size_approx(region.used_bytes), format_size_approx(region.free_bytes)};
      for (auto& cell : traffic_cells(region)) cells.push_back(std::move(cell));
      table.add(std::move(cells));
    }
  }
  table.print("  ");
  for (const auto& tier : stats.tiers)
    if (tier.bad_bytes > 0)
      fmt::print("  tier {}: {} bad (a copy took a memory error there), out of use\n", tier.name,
                 format_size_approx(tier.bad_bytes));
  TextTable moves({"tier", "watermarks", "moved in", "files in", "moved out", "files out"});
  for (const auto& tier : stats.tiers)
    moves.add({tier.name,
               tier.high_watermark == 0
                   ? "-"
                   : fmt::format("{}% / {}%", tier.high_watermark, tier.low_watermark),
               format_size_approx(tier.bytes_moved_in), std::to_string(tier.files_moved_in),
               format_size_approx(tier.bytes_moved_out), std::to_string(tier.files_moved_out)});
  moves.print("  ");
  const auto& mover = stats.mover;
  fmt::print(
      "  mover: {}, rate {}/s, every {} ms, {} migrations, {} failed, {} queued, {} running\n",
      mover.state,
      mover.rate_bytes_per_s == 0 ? "unlimited" : format_size_approx(mover.rate_bytes_per_s),
      mover.interval_ms, mover.migrations, mover.failures, mover.queued, mover.in_flight);
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
