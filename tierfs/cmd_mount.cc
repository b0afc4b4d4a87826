// `tierfs mount`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include <stdexcept>

#include "tierfs/commands.h"

namespace tierfs {

void add_mount_command(CLI::App& app, int& status) {
  auto* cmd = app.add_subcommand("mount", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([&status] {
    status = 2;
    throw std::runtime_error("'mount' is not implemented yet");
  });
}

}  // namespace tierfs
