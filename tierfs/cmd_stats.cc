// `tierfs stats`: placeholder until its issue lands.
#include <CLI/CLI.hpp>

#include <stdexcept>

#include "tierfs/commands.h"

namespace tierfs {

void add_stats_command(CLI::App& app, int& status) {
  auto* cmd = app.add_subcommand("stats", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([&status] {
    status = 2;
    throw std::runtime_error("'stats' is not implemented yet");
  });
}

}  // namespace tierfs
