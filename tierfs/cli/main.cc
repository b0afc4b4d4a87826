// Entry point of the `tierfs` command: parses the command line with CLI11 and
// turns any start-up error into one line on stderr and a non-zero exit.
#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "tierfs/cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"tierfs: interleaved memory tiers exported as a file system"};
  app.set_version_flag("--version", TIERFS_VERSION);
  app.require_subcommand(1);
  int status = 0;
  tierfs::add_mount_command(app, status);
  tierfs::add_topology_command(app, status);
  tierfs::add_check_config_command(app, status);
  tierfs::add_map_command(app, status);
  tierfs::add_stats_command(app, status);
  tierfs::add_bpf_command(app, status);
  tierfs::add_job_command(app, status);
  tierfs::add_stage_command(app, status);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    fmt::print(stderr, "tierfs: {}\n", e.what());
    return 1;
  }
  return status;
}
