// `tierfs migrate PATH... --tier NAME [-r] [--async] [--json]`: moves the
// data of files (directory trees with -r) to another tier of their mount
// through the migrate ioctl (tierfs/core/migrate_ioctl.h), one file at a
// time, with a progress line on a terminal and a summary (JSON with --json).
// A file that cannot move (target full, busy) is named on stderr and the
// others still move; the exit status says whether every file moved.
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "tierfs/cli/commands.h"
#include "tierfs/core/migrate_ioctl.h"
#include "tierfs/core/units.h"

namespace tierfs {

namespace {

struct MigrateArgs {
  std::vector<std::string> paths;
  std::string tier;
  bool recursive = false;
  bool async = false;
  bool json = false;
};

struct Target {
  std::string path;
  uint64_t bytes = 0;  // allocated, from st_blocks
};

// Regular files named or found under the directories named (-r; symlinks inside are not followed).
std::vector<Target> collect(const MigrateArgs& args) {
  std::vector<Target> out;
  for (const std::string& path : args.paths) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0)
      throw std::runtime_error(fmt::format("{}: {}", path, std::strerror(errno)));
    if (S_ISREG(st.st_mode)) {
      out.push_back({path, static_cast<uint64_t>(st.st_blocks) * 512});
      continue;
    }
    if (!S_ISDIR(st.st_mode))
      throw std::runtime_error(fmt::format("{}: not a regular file or directory", path));
    if (!args.recursive)
      throw std::runtime_error(fmt::format("{}: is a directory (use -r to move its files)", path));
    std::error_code error;
    for (std::filesystem::recursive_directory_iterator it(path, error), end; !error && it != end;
         it.increment(error)) {
      if (!it->is_regular_file(error) || it->is_symlink(error)) continue;
      struct stat file {};
      if (lstat(it->path().c_str(), &file) == 0)
        out.push_back({it->path().string(), static_cast<uint64_t>(file.st_blocks) * 512});
    }
    if (error) throw std::runtime_error(fmt::format("{}: {}", path, error.message()));
  }
  return out;
}

// 0 or an errno value; `opened` says whether the open went through (a
// failure after it is the move's).
int migrate_one(const Target& target, const MigrateArgs& args, uint64_t& bytes_moved, bool& held,
                bool& opened) {
  const int fd = open(target.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  opened = fd >= 0;
  if (fd < 0) return errno;
  MigrateRequest request{};
  std::strncpy(request.tier, args.tier.c_str(), sizeof request.tier - 1);
  request.flags = args.async ? kMigrateAsync : 0;
  const int rc = ioctl(fd, kMigrateIoctl, &request);
  const int err = rc < 0 ? errno : 0;
  close(fd);
  bytes_moved = request.bytes_moved;
  held = err == 0 && (request.flags & kMigrateHeld) != 0;
  return err;
}

std::string why(int err, const std::string& tier) {
  // Say it the way users think of it: a file elsewhere than on tierfs answers ENOTTY.
  if (err == ENOTTY) return "not on a tierfs mount";
  if (err == EINVAL) return fmt::format("\"{}\" is not a tier of this mount", tier);
  // Or the mount's metadata log has none (a full state directory): it says which in its log.
  if (err == ENOSPC)
    return fmt::format(
        "tier {} has no room for it, or the mount's state directory is full (the file stays "
        "where it was)",
        tier);
  return std::strerror(err);
}

int run(const MigrateArgs& args) {
  if (args.tier.empty() || args.tier.size() >= sizeof(MigrateRequest{}.tier))
    throw std::runtime_error(fmt::format("--tier \"{}\" is not a tier name", args.tier));
  const std::vector<Target> targets = collect(args);
  uint64_t total = 0;
  for (const Target& t : targets) total += t.bytes;
  const bool progress = !args.json && isatty(STDERR_FILENO) != 0;
  const auto started = std::chrono::steady_clock::now();
  uint64_t done_bytes = 0, moved_bytes = 0, moved = 0;
  nlohmann::json failures = nlohmann::json::array();
  nlohmann::json held_files = nlohmann::json::array();
  for (size_t i = 0; i < targets.size(); ++i) {
    uint64_t bytes = 0;
    bool held = false;
    bool opened = false;
    if (const int err = migrate_one(targets[i], args, bytes, held, opened)) {
      if (progress) fmt::print(stderr, "\r\033[K");
      const std::string reason = why(err, args.tier);
      fmt::print(stderr, "tierfs migrate: {}: {}{}\n", targets[i].path,
                 opened ? "" : "cannot open it: ", reason);
      failures.push_back({{"path", targets[i].path},
                          {"error", reason},
                          {"errno", err},
                          {"step", opened ? "move" : "open"}});
      // An unknown tier is the same for every file: no point in going on.
      if (err == EINVAL && i == 0) break;
    } else if (held) {
      // Accepted, not failed: the server moves it when its last open
      // passthrough handle (or mapping) is gone; `tierfs map` shows it.
      if (progress) fmt::print(stderr, "\r\033[K");
      fmt::print(stderr,
                 "tierfs migrate: {}: held by open handles or mappings on the kernel path; moves "
                 "to tier {} "
                 "when the last one is gone\n",
                 targets[i].path, args.tier);
      held_files.push_back(targets[i].path);
    } else {
      ++moved;
      moved_bytes += bytes;
    }
    done_bytes += targets[i].bytes;
    if (progress)
      fmt::print(stderr, "\rmigrate: {}/{} files, {} of {}\033[K", i + 1, targets.size(),
                 format_size_approx(done_bytes), format_size_approx(total));
  }
  if (progress) fmt::print(stderr, "\n");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (args.json) {
    nlohmann::json summary{{"tier", args.tier},          {"async", args.async},
                           {"files", targets.size()},    {"migrated", moved},
                           {"failed", failures.size()},  {"bytes", total},
                           {"bytes_moved", moved_bytes}, {"seconds", seconds},
                           {"failures", failures},       {"held", held_files}};
    fmt::print("{}\n", summary.dump(2));
  } else {
    fmt::print("{} {} of {} files ({}) to tier {} in {:.2f} s{}{}\n",
               args.async ? "queued" : "migrated", moved, targets.size(),
               format_size_approx(args.async ? total : moved_bytes), args.tier, seconds,
               held_files.empty() ? "" : fmt::format(", {} held until closed", held_files.size()),
               failures.empty() ? "" : fmt::format(", {} failed", failures.size()));
  }
  return failures.empty() ? 0 : 1;
}

}  // namespace

void add_migrate_command(CLI::App& app, int& status) {
  auto args = std::make_shared<MigrateArgs>();
  auto* cmd = app.add_subcommand("migrate", "Move files' data to another tier of their mount");
  cmd->add_option("PATH", args->paths, "files (or directories with -r) on a mounted tierfs")
      ->required();
  cmd->add_option("--tier", args->tier, "the tier to move them to")->required();
  cmd->add_flag("-r,--recursive", args->recursive, "move every file under the directories");
  cmd->add_flag("--async", args->async, "queue the moves for the mover and return at once");
  cmd->add_flag("--json", args->json, "print a JSON summary");
  cmd->callback([args, &status] { status = run(*args); });
}

}  // namespace tierfs
