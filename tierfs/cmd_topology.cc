// `tierfs topology`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include <stdexcept>

#include "tierfs/commands.h"

namespace tierfs {

void add_topology_command(CLI::App& app, int& status) {
  auto* cmd = app.add_subcommand("topology", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([&status] {
    status = 2;
    throw std::runtime_error("'topology' is not implemented yet");
  });
}

}  // namespace tierfs
