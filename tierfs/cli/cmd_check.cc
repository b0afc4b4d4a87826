// `tierfs check MOUNTPOINT` | `tierfs check --state-dir DIR --config FILE`:
// verifies a mount's metadata log against its allocation. A running mount
// answers through user.tierfs.check (its log's image against its live block
// allocators: nothing owned twice, nothing leaked); a stopped one is replayed
// from its state directory (checksums, namespace, extents inside their tiers,
// nothing owned twice). One line per problem on stdout; exit 0 clean,
// 1 problems, 2 usage (or nothing to check).
#include <fcntl.h>
#include <unistd.h>

#include <fmt/core.h>
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "numa/topology.h"
#include "tierfs/cli/commands.h"
#include "tierfs/cli/virtual_xattr.h"
#include "tierfs/core/config.h"
#include "tierfs/core/journal.h"
#include "tierfs/core/metadata.h"

namespace tierfs {

namespace {

struct CheckArgs {
  std::string mountpoint;
  std::string state_dir;
  std::string config_file;
};

std::vector<std::string> check_running(const std::string& mountpoint) {
  const std::string json =
      read_virtual_xattr(mountpoint, "user.tierfs.check", "the root of a tierfs mount");
  return nlohmann::json::parse(json).get<std::vector<std::string>>();
}

std::vector<std::string> check_stopped(const std::string& state_dir,
                                       const std::string& config_file) {
  const Config config = load_config(config_file, numa::discover_topology());
  std::vector<uint64_t> tier_blocks;
  for (const TierConfig& tier : config.tiers)
    tier_blocks.push_back(tier.geometry.capacity_bytes / kBlockBytes);
  const int fd = open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    throw std::runtime_error(fmt::format("state directory {}: {}", state_dir, strerror(errno)));
  std::unique_ptr<int, void (*)(int*)> closer(new int(fd), [](int* p) {
    close(*p);
    delete p;
  });
  if (faccessat(fd, "journal", F_OK, 0) != 0 && faccessat(fd, "checkpoint", F_OK, 0) != 0)
    throw std::runtime_error(
        fmt::format("state directory {}: no metadata log (journal or checkpoint)", state_dir));
  ReplayReport report;
  MetadataImage image;
  try {
    // Unlinked-while-open inodes stay: the next mount frees their blocks,
    // which must then be theirs alone.
    image = replay_state(fd, state_dir, report, true);
  } catch (const std::runtime_error& e) {
    return {e.what()};  // a damaged checkpoint is a problem, not a usage error
  }
  // A torn tail is what a crash in the middle of an append leaves: replay ignores it.
  if (report.torn_bytes > 0)
    fmt::print(stderr, "note: {}/journal: {} bytes after the last whole frame ignored ({})\n",
               state_dir, report.torn_bytes, report.torn_reason);
  return check_image(image, tier_blocks);
}

}  // namespace

void add_check_command(CLI::App& app, int& status) {
  auto args = std::make_shared<CheckArgs>();
  auto* cmd = app.add_subcommand(
      "check", "Verify a mount's metadata against its allocation (exit 0 clean, 1 problems)");
  cmd->add_option("MOUNTPOINT", args->mountpoint, "a running tierfs mount");
  cmd->add_option("--state-dir", args->state_dir, "the state directory of a stopped mount");
  cmd->add_option("--config,-c", args->config_file, "its configuration (with --state-dir)");
  cmd->callback([args, &status] {
    const bool running = !args->mountpoint.empty();
    const bool stopped = !args->state_dir.empty() || !args->config_file.empty();
    if (running == stopped || (stopped && (args->state_dir.empty() || args->config_file.empty()))) {
      fmt::print(stderr, "tierfs check: give MOUNTPOINT, or --state-dir DIR and --config FILE\n");
      status = 2;
      return;
    }
    std::vector<std::string> problems;
    try {
      problems = running ? check_running(args->mountpoint)
                         : check_stopped(args->state_dir, args->config_file);
    } catch (const std::exception& e) {
      fmt::print(stderr, "tierfs check: {}\n", e.what());
      status = 2;
      return;
    }
    for (const std::string& line : problems) fmt::print("{}\n", line);
    status = problems.empty() ? 0 : 1;
  });
}

}  // namespace tierfs
