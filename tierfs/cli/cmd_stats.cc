// `tierfs stats MOUNTPOINT [--json]`: per-tier and per-region capacity, use
// and traffic (requests and bytes), watermarks and migrations per tier, the
// mover's state, and the server's operation counts. Reads the virtual xattr
// user.tierfs.stats on the mount root; needs no ioctl. With --openmetrics or
// --prometheus (stats_openmetrics.h), of one mount or of --all of the node's.
#include <unistd.h>

#include <fmt/core.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "numa/topology.h"
#include "tierfs/cli/commands.h"
#include "tierfs/cli/mount_guard.h"
#include "tierfs/cli/stats_openmetrics.h"
#include "tierfs/cli/virtual_xattr.h"
#include "tierfs/core/units.h"
#include "tierfs/jobs/job_state.h"
#include "tierfs/jobs/node_config.h"

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
std::vector<std::string> traffic_cells(const Use& use, bool kernel_path) {
  // The kernel moves a kernel-path tier's bytes: the server counts none.
  if (kernel_path) return {"-", "-", "-", "-"};
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
    const bool kernel_path = tier.data_path == "kernel";
    for (auto& cell : traffic_cells(tier, kernel_path)) row.push_back(std::move(cell));
    table.add(std::move(row));
    for (const auto& region : tier.regions) {
      std::vector<std::string> cells{
          "  " + region.spec, node_text(region.numa_node), format_size_approx(region.size_bytes),
          format_size_approx(region.used_bytes), format_size_approx(region.free_bytes)};
      for (auto& cell : traffic_cells(region, kernel_path)) cells.push_back(std::move(cell));
      table.add(std::move(cells));
    }
  }
  table.print("  ");
  for (const auto& tier : stats.tiers)
    if (tier.bad_bytes > 0)
      fmt::print("  tier {}: {} bad (a copy took a memory error there), out of use\n", tier.name,
                 format_size_approx(tier.bad_bytes));
  for (const auto& tier : stats.tiers)
    fmt::print("  tier {}: {} path ({}){}\n", tier.name, tier.data_path, tier.data_path_reason,
               tier.data_path == "kernel"
                   ? fmt::format(", backing files hold {}{}",
                                 format_size_approx(tier.kernel_path_used_bytes),
                                 tier.kernel_path_spills_to.empty()
                                     ? ""
                                     : "; full: new pages go to tier " + tier.kernel_path_spills_to)
                   : "");
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

struct StatsArgs {
  std::string mountpoint;
  bool json = false;
  bool openmetrics = false;
  bool prometheus = false;
  bool all = false;
  std::string output;
  std::string node_config = "/etc/tierfs/node.toml";
  bool node_config_given = false;
};

std::string host_name() {
  std::array<char, 256> name{};
  if (gethostname(name.data(), name.size() - 1) != 0) return "unknown";
  return name.data();
}

// Mount point -> Slurm job id, from the job records in the node
// configuration's state directory. A node without the default node
// configuration has no job mounts; one given with --node-config must load.
std::map<std::string, std::string> job_mounts(const StatsArgs& args) {
  std::string state_dir = jobs::NodeConfig{}.state_dir;
  if (args.node_config_given || std::filesystem::exists(args.node_config))
    state_dir = jobs::load_node_config(args.node_config, numa::discover_topology()).state_dir;
  std::map<std::string, std::string> out;
  for (const jobs::JobState& job : jobs::list_job_states(state_dir))
    out[job.mountpoint] = job.job_id;
  return out;
}

// As mountinfo names it: resolved when the mount answers, else as given.
std::string mount_path(const std::string& path) {
  std::error_code error;
  const auto resolved = std::filesystem::canonical(path, error);
  if (!error) return resolved.string();
  return std::filesystem::absolute(path, error).lexically_normal().string();
}

void print_metrics(const StatsArgs& args) {
  const auto job_ids = job_mounts(args);
  std::vector<MountMetrics> mounts;
  const std::vector<std::string> points =
      args.all ? tierfs_mount_points() : std::vector<std::string>{mount_path(args.mountpoint)};
  for (const std::string& point : points) {
    MountMetrics mount{point, std::nullopt, ""};
    if (auto it = job_ids.find(point); it != job_ids.end()) mount.slurm_job_id = it->second;
    if (args.all) {
      // One unreadable mount (its server gone) is tierfs_up 0, not the node's whole output lost.
      try {
        mount.stats = read_stats(point);
      } catch (const std::exception& e) {
        std::cerr << "tierfs stats: " << e.what() << "\n";
      }
    } else {
      mount.stats = read_stats(args.mountpoint);
    }
    mounts.push_back(std::move(mount));
  }
  const std::string text =
      metrics_text(mounts, host_name(),
                   args.prometheus ? MetricsFormat::prometheus : MetricsFormat::openmetrics);
  if (args.output.empty())
    fmt::print("{}", text);
  else
    jobs::write_file_atomically(args.output, text);  // a scraper never reads half a file
}

}  // namespace

void add_stats_command(CLI::App& app, int& status) {
  auto args = std::make_shared<StatsArgs>();
  auto* cmd = app.add_subcommand("stats", "Show tier and region use and operation counts");
  cmd->add_option("MOUNTPOINT", args->mountpoint, "a mounted tierfs");
  auto* json = cmd->add_flag("--json", args->json, "print the JSON document instead of a table");
  auto* open =
      cmd->add_flag("--openmetrics", args->openmetrics, "print the OpenMetrics text format");
  auto* prom = cmd->add_flag("--prometheus", args->prometheus,
                             "print the Prometheus 0.0.4 text format (node_exporter's textfile "
                             "collector)");
  json->excludes(open)->excludes(prom);
  open->excludes(prom);
  cmd->add_flag("--all", args->all,
                "every tierfs mount of the node (/proc/self/mountinfo), with --openmetrics or "
                "--prometheus");
  cmd->add_option("--output", args->output,
                  "with --openmetrics or --prometheus: write FILE atomically instead of stdout");
  cmd->add_option("--node-config", args->node_config,
                  "where job mounts are recorded (slurm_job_id labels); default "
                  "/etc/tierfs/node.toml when it exists")
      ->each([args](const std::string&) { args->node_config_given = true; });
  cmd->callback([args, &status] {
    const bool metrics = args->openmetrics || args->prometheus;
    if (args->all && !metrics)
      throw CLI::ValidationError("--all", "needs --openmetrics or --prometheus");
    if (!args->output.empty() && !metrics)
      throw CLI::ValidationError("--output", "needs --openmetrics or --prometheus");
    if (args->all == !args->mountpoint.empty())
      throw CLI::ValidationError("MOUNTPOINT", "give a MOUNTPOINT or --all, not both or neither");
    if (metrics)
      print_metrics(*args);
    else if (args->json)
      fmt::print("{}\n", nlohmann::json(read_stats(args->mountpoint)).dump(2));
    else
      print_stats(args->mountpoint, read_stats(args->mountpoint));
    status = 0;
  });
}

}  // namespace tierfs
