// `tierfs check-config`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include <stdexcept>

#include "tierfs/commands.h"

namespace tierfs {

void add_check_config_command(CLI::App& app, int& status) {
  auto* cmd = app.add_subcommand("check-config", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([&status] {
    status = 2;
    throw std::runtime_error("'check-config' is not implemented yet");
  });
}

}  // namespace tierfs
