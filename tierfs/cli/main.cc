// Entry point of the `tierfs` command: parses the command line with CLI11 and
// turns any start-up error into one line on stderr and a non-zero exit.
#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "tierfs/cli/commands.h"
#include "tierfs/cli/mount_helper.h"

static int run_main(int argc, char** argv) {
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
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
      names.push_back(sub->get_name());
    if (auto helper = tierfs::mount_helper_args(argc, argv, names)) {
      // CLI11 takes a vector in reverse order, without the program name.
      std::vector<std::string> reversed(helper->rbegin(), helper->rend() - 1);
      app.parse(reversed);
    } else {
      app.parse(argc, argv);
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    fmt::print(stderr, "tierfs: {}\n", e.what());
    return 1;
  }
  return status;
}

// The last line of defence: run_main turns errors into one line itself, and
// anything that still escapes (an error while printing one) ends here.
int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (...) {
    std::fputs("tierfs: unexpected error\n", stderr);
    return 1;
  }
}
