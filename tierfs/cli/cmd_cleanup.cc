// `tierfs cleanup [--config FILE] MOUNTPOINT`: removes every trace of a dead
// mount (stale FUSE mount, shared memory, lock file, a scratch mount's state
// directory) and prints one line per thing removed; refuses with one line
// while a server still serves the mount. For epilogs and administrators.
#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "numa/topology.h"
#include "tierfs/cli/commands.h"
#include "tierfs/core/config.h"
#include "tierfs/jobs/mount_cleanup.h"

namespace tierfs {

void add_cleanup_command(CLI::App& app, int& status) {
  struct Args {
    std::string config_file;
    std::string mountpoint;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "cleanup", "Remove what a dead server left of a mount (stale mount, shared memory, state)");
  cmd->add_option("--config,-c", args->config_file,
                  "the mount's configuration, when it names a state_dir or persistent tiers");
  cmd->add_option("MOUNTPOINT", args->mountpoint, "the dead mount's mount point")->required();
  cmd->callback([args, &status] {
    const Config config = args->config_file.empty()
                              ? Config{}
                              : load_config(args->config_file, numa::discover_topology());
    const std::string mountpoint = jobs::cleanup_mountpoint(args->mountpoint);
    const std::vector<std::string> removed = jobs::cleanup_mount(mountpoint, config);
    for (const std::string& line : removed) fmt::print("{}\n", line);
    if (removed.empty()) fmt::print("nothing of a mount on {} was left\n", mountpoint);
    status = 0;
  });
}

}  // namespace tierfs
