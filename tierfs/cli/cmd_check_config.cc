// `tierfs check-config FILE`: validates a configuration against this machine
// and prints the effective configuration, or the one line saying what is
// wrong and where.
#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "numa/topology.h"
#include "tierfs/cli/commands.h"
#include "tierfs/core/config.h"

namespace tierfs {

void add_check_config_command(CLI::App& app, int& status) {
  auto file = std::make_shared<std::string>();
  auto* cmd =
      app.add_subcommand("check-config", "Validate a configuration and print its effective form");
  cmd->add_option("FILE", *file, "the TOML configuration")->required();
  cmd->callback([file, &status] {
    try {
      const Config config = load_config(*file, numa::discover_topology());
      fmt::print("{}", to_toml(config));
      status = 0;
    } catch (const ConfigError& e) {
      // Exactly FILE:LINE:COLUMN: what, with no prefix, so editors can jump to it.
      fmt::print(stderr, "{}\n", e.what());
      status = 1;
    }
  });
}

}  // namespace tierfs
