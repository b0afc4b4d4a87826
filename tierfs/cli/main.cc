// Entry point of the `tierfs` command: parses the command line with CLI11 and
// turns any error into one line on stderr. Exit status: 0 success (and
// --help, --version), 2 a usage error (the command line itself is wrong, as
// getopt-style tools do), 1 any other failure; a few commands document more
// (tierfs job, tierfs stage).
#include <fmt/core.h>
#include <fuse_lowlevel.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "tierfs/cli/commands.h"
#include "tierfs/cli/mount_helper.h"

namespace {

constexpr int kUsageError = 2;
constexpr int kFailure = 1;

// How far the words of a command line lead through the subcommand tree:
// the subcommands they name ("job start"), and the first word that names
// none where a subcommand is expected ("frob" in `tierfs frob`). Stops at
// the first option: what follows an option may be its value.
struct CommandPath {
  std::string named;    // "" for the top level, else "job start"
  std::string unknown;  // the word that names no subcommand, if any
};

CommandPath follow(CLI::App& app, const std::vector<std::string>& args) {
  CommandPath path;
  CLI::App* at = &app;
  for (const std::string& arg : args) {
    if (arg.empty() || arg[0] == '-') break;
    const std::vector<CLI::App*> subcommands = at->get_subcommands([](CLI::App*) { return true; });
    if (subcommands.empty()) break;
    CLI::App* next = nullptr;
    for (CLI::App* sub : subcommands)
      if (sub->check_name(arg)) next = sub;
    if (next == nullptr) {
      path.unknown = arg;
      break;
    }
    path.named += (path.named.empty() ? "" : " ") + next->get_name();
    at = next;
  }
  return path;
}

// At most a short prefix of what the user typed, on one line.
std::string quoted_prefix(const std::string& text) {
  constexpr size_t kMax = 64;
  std::string out = text.substr(0, kMax);
  for (char& c : out)
    if (c == '\n' || c == '\r') c = ' ';
  return text.size() > kMax ? out + "..." : out;
}

int usage_error(const std::string& what, const CommandPath& path) {
  std::string line = what;
  for (char& c : line)
    if (c == '\n') c = ' ';
  const std::string help =
      path.named.empty() ? "tierfs --help" : "tierfs " + path.named + " --help";
  fmt::print(stderr, "tierfs: {}; see {}\n", line, help);
  return kUsageError;
}

int run_main(int argc, char** argv) {
  CLI::App app{"tierfs: interleaved memory tiers exported as a file system"};
  // The libfuse a binary runs on decides FUSE over io_uring (docs/operations.md).
  app.set_version_flag("--version",
                       fmt::format("tierfs {}, libfuse {}", TIERFS_VERSION, fuse_pkgversion()));
  app.require_subcommand(1);
  int status = 0;
  tierfs::add_mount_command(app, status);
  tierfs::add_topology_command(app, status);
  tierfs::add_check_config_command(app, status);
  tierfs::add_map_command(app, status);
  tierfs::add_stats_command(app, status);
  tierfs::add_migrate_command(app, status);
  tierfs::add_bpf_command(app, status);
  tierfs::add_job_command(app, status);
  tierfs::add_stage_command(app, status);
  tierfs::add_cleanup_command(app, status);
  tierfs::add_check_command(app, status);

  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    names.push_back(sub->get_name());
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (auto helper = tierfs::mount_helper_args(argc, argv, names))
      args.assign(helper->begin() + 1, helper->end());
  } catch (const std::exception& e) {
    // `tierfs SOURCE MOUNTPOINT -o OPTIONS` that cannot be read is a usage error too.
    return usage_error(e.what(), CommandPath{"mount", ""});
  }
  const CommandPath path = follow(app, args);
  try {
    // CLI11 takes a vector in reverse order, without the program name.
    app.parse(std::vector<std::string>(args.rbegin(), args.rend()));
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version: printed on stdout, status 0
  } catch (const CLI::ParseError& e) {
    if (!path.unknown.empty()) {
      const std::string command =
          path.named.empty() ? path.unknown : path.named + " " + path.unknown;
      return usage_error(fmt::format("unknown command '{}'", quoted_prefix(command)), path);
    }
    return usage_error(e.what(), path);
  } catch (const std::exception& e) {
    fmt::print(stderr, "tierfs: {}\n", e.what());
    return kFailure;
  }
  return status;
}

}  // namespace

// The last line of defence: run_main turns errors into one line itself, and
// anything that still escapes (an error while printing one) ends here.
int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (...) {
    std::fputs("tierfs: unexpected error\n", stderr);
    return kFailure;
  }
}
