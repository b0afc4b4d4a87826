// cleanup_mount(): the lock first (a live server refuses the whole cleanup),
// then the stale mount, then what the state directory names.
#include "tierfs/jobs/mount_cleanup.h"

#include <fmt/format.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "tierfs/core/mount_state.h"
#include "tierfs/jobs/job_state.h"

extern char** environ;

namespace tierfs::jobs {
namespace {

// Root detaches the mount itself; other users through fusermount3, which
// allows them to unmount what they mounted.
void detach(const std::string& mountpoint) {
  if (geteuid() == 0) {
    // A dead server's mount fails with ENOTCONN and a busy one with EBUSY:
    // both are detached lazily; the kernel drops the connection when the last user goes.
    if (umount2(mountpoint.c_str(), UMOUNT_NOFOLLOW) == 0 ||
        umount2(mountpoint.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
      return;
    throw std::runtime_error(
        fmt::format("{}: cannot unmount: {}", mountpoint, std::strerror(errno)));
  }
  const char* argv[] = {"fusermount3", "-u", "-z", "--", mountpoint.c_str(), nullptr};
  pid_t pid = 0;
  if (posix_spawnp(&pid, "fusermount3", nullptr, nullptr, const_cast<char**>(argv), environ) != 0)
    throw std::runtime_error(fmt::format("{}: cannot run fusermount3", mountpoint));
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(fmt::format("{}: fusermount3 -u -z failed", mountpoint));
}

bool is_fuse(const std::optional<std::string>& type) {
  return type && type->rfind("fuse", 0) == 0;
}

}  // namespace

std::string cleanup_mountpoint(const std::string& path) {
  std::filesystem::path p = std::filesystem::absolute(path).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  char parent[PATH_MAX];
  if (realpath(p.parent_path().c_str(), parent) == nullptr)
    throw std::runtime_error(fmt::format("{}: {}", p.parent_path().string(), std::strerror(errno)));
  const std::string dir = parent;
  return (dir == "/" ? "" : dir) + "/" + p.filename().string();
}

std::vector<std::string> cleanup_mount(const std::string& mountpoint, const Config& config) {
  const std::string state_path = MountState::directory_for(config, mountpoint);
  // Held from here on: a server that starts meanwhile is refused by it.
  const std::unique_ptr<MountState> state = MountState::open_existing(state_path);
  std::vector<std::string> removed;
  if (is_fuse(mount_type(mountpoint))) {
    struct stat st {};
    // Without a state directory the lock cannot tell: a live mount answers stat.
    if (!state && stat(mountpoint.c_str(), &st) == 0)
      throw std::runtime_error(fmt::format(
          "{} is a live mount (no tierfs state found for it); unmount it with fusermount3 -u {}",
          mountpoint, mountpoint));
    detach(mountpoint);
    removed.push_back(fmt::format("unmounted the stale mount {}", mountpoint));
  }
  if (!state) return removed;
  std::vector<std::string> gone;
  if (config.any_persistent()) {
    // The metadata and the region files are the persistent tiers' contents;
    // memory (shared memory, the kernel path's tmpfs) goes as a scratch mount's.
    gone = state->remove_memory();
  } else {
    gone = state->remove_all();
  }
  removed.insert(removed.end(), gone.begin(), gone.end());
  return removed;
}

}  // namespace tierfs::jobs
