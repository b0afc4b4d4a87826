// The per-mount state directory: location, trusted creation, the server
// lock, shared-memory name records ("shm.<tier>.<index>", one name each) and
// removal. Everything inside is reached through the directory descriptor,
// never by path, so nothing can be swapped under the walk that checked it.
#include "tierfs/core/mount_state.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <xxhash.h>

#include <sys/file.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "numa/region_trust.h"
#include "tierfs/core/units.h"

namespace tierfs {
namespace {

constexpr const char* kLockFile = "lock";
// The built-in default tier's row count, as the first server chose it.
constexpr const char* kDefaultRowsRecord = "default_rows";
constexpr std::string_view kShmPrefix = "shm.";
// "region.<tier>.<index>": the identity of the object a file: region claimed.
constexpr std::string_view kRegionPrefix = "region.";
// A kernel-path tier class's tmpfs (tierfs/server/backing_store.cc names it).
constexpr std::string_view kKernelStorePrefix = "kernel-store.";

std::string record_name(const std::string& tier, size_t index) {
  return fmt::format("{}{}.{}", kShmPrefix, tier, index);
}

// The name in a record, or "" when the record is missing or names nothing
// this user's server could have made (then it is not followed).
std::string read_text(int dir_fd, const std::string& record) {
  const int fd = openat(dir_fd, record.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[PATH_MAX + 128];  // an identity line holds a loop device's backing file
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return "";
  std::string text(buf, static_cast<size_t>(n));
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

std::string read_record(int dir_fd, const std::string& record) {
  std::string name = read_text(dir_fd, record);
  return numa::is_unpredictable_shm_name(name) ? name : "";
}

// Written whole under a temporary name and renamed: a crash leaves the old
// record or the new one, never half of one.
void write_record(int dir_fd, const std::string& dir, const std::string& record,
                  const std::string& text) {
  const std::string tmp = record + ".tmp";
  unlinkat(dir_fd, tmp.c_str(), 0);
  const int fd =
      openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    throw std::runtime_error(
        fmt::format("{}/{}: cannot create: {}", dir, tmp, std::strerror(errno)));
  const bool ok =
      write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  const int err = errno;
  close(fd);
  if (!ok || renameat(dir_fd, tmp.c_str(), dir_fd, record.c_str()) != 0) {
    unlinkat(dir_fd, tmp.c_str(), 0);
    throw std::runtime_error(
        fmt::format("{}/{}: cannot write: {}", dir, record, std::strerror(ok ? errno : err)));
  }
}

// "in use by another mount: held by pid N (cmd)" -> "pid N (cmd)".
std::string holder_of(const std::string& refusal) {
  const auto at = refusal.find("held by ");
  return at == std::string::npos ? refusal : refusal.substr(at + 8);
}

// The directory behind an open descriptor has been removed (rmdir).
bool directory_removed(int dir_fd) {
  struct stat st {};
  return fstat(dir_fd, &st) == 0 && st.st_nlink == 0;
}

// Nothing is at the path any more.
bool path_vanished(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) != 0 && errno == ENOENT;
}

}  // namespace

std::string MountState::directory_for(const Config& config, const std::string& mountpoint) {
  if (!config.mount.state_dir.empty()) return config.mount.state_dir;
  const std::string key = fmt::format("{:016x}", XXH3_64bits(mountpoint.data(), mountpoint.size()));
  if (geteuid() == 0) return "/run/tierfs/" + key;
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime == nullptr || runtime[0] != '/')
    throw std::runtime_error(
        "XDG_RUNTIME_DIR is not set: set it or [mount] state_dir, where the mount keeps its lock "
        "and the names of its shared memory");
  return fmt::format("{}/tierfs/{}", runtime, key);
}

// How long a new server waits for the previous one: a server that was just
// unmounted holds the lock until it has released its regions and state.
constexpr auto kLockWait = std::chrono::seconds(10);

bool MountState::lock_current(bool create, const std::string& what) {
  const auto deadline = std::chrono::steady_clock::now() + kLockWait;
  int vanished_tries = 0;
  for (;;) {
    close_fds();
    if (!create) {
      struct stat st {};
      if (lstat(path_.c_str(), &st) != 0 && errno == ENOENT) return false;
    }
    // The previous server removes its directory as it ends (remove_all): it
    // can go between the walk and the open, or between the open and the
    // lock file's creation. Either way the next try makes it anew.
    // A few tries, not until the deadline: a path that is refused for what
    // it is (a planted symlink to nowhere) is refused at once.
    numa::TrustedDir dir;
    try {
      dir = numa::open_trusted_dir(path_, create);
    } catch (const std::runtime_error&) {
      if (!create || !path_vanished(path_) || ++vanished_tries > 3) throw;
      continue;
    }
    dir_fd_ = dir.fd;
    created_ = dir.created;
    lock_fd_ = openat(dir_fd_, kLockFile, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (lock_fd_ < 0) {
      const int err = errno;
      if (err == ENOENT && directory_removed(dir_fd_) &&
          std::chrono::steady_clock::now() < deadline)
        continue;
      throw std::runtime_error(
          fmt::format("{}/{}: cannot open: {}", path_, kLockFile, std::strerror(err)));
    }
    if (flock(lock_fd_, LOCK_EX | LOCK_NB) == 0) {
      // The previous server may have removed the directory while we waited:
      // then the lock we got is on a file nobody else will find. Start over.
      struct stat lock_st {
      }, entry{};
      if (!directory_removed(dir_fd_) && fstat(lock_fd_, &lock_st) == 0 &&
          fstatat(dir_fd_, kLockFile, &entry, AT_SYMLINK_NOFOLLOW) == 0 &&
          entry.st_ino == lock_st.st_ino && entry.st_dev == lock_st.st_dev)
        return true;
      continue;
    }
    if (errno != EWOULDBLOCK || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Held all along: the refusal names the holder.
  try {
    numa::lock_exclusive(lock_fd_, path_ + "/" + kLockFile);
  } catch (const std::runtime_error& e) {
    const std::string why = e.what();
    if (why.find("held by ") == std::string::npos) throw;
    throw std::runtime_error(fmt::format(
        "{} is served by another tierfs server, {} (its state: {})", what, holder_of(why), path_));
  }
  return true;  // released between the last try and the message
}

void MountState::close_fds() {
  if (lock_fd_ >= 0) close(lock_fd_);
  if (dir_fd_ >= 0) close(dir_fd_);
  lock_fd_ = dir_fd_ = -1;
}

std::unique_ptr<MountState> MountState::open(const Config& config, const std::string& mountpoint,
                                             bool fresh) {
  std::unique_ptr<MountState> state(new MountState());
  state->path_ = directory_for(config, mountpoint);
  try {
    state->lock_current(true, mountpoint);
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    if (what.find("served by another") != std::string::npos) throw;
    throw std::runtime_error(fmt::format("mount state: {}", what));
  }
  struct statfs fs {};
  if (config.any_persistent() && fstatfs(state->dir_fd_, &fs) == 0 &&
      (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC))
    spdlog::warn(
        "state_dir {} is in memory (tmpfs): persistent tiers keep their files across "
        "unmount, but not across a reboot",
        state->path_);
  if (fresh && !state->created_) {
    // --fresh: the shared memory and the metadata a previous server left go
    // before anything could adopt them; the lock file stays (we hold it).
    state->remove_shared_memory();
    for (const std::string& name : state->entries())
      if (name != kLockFile) state->remove_entry(name);
  }
  // Nothing but the lock: nothing to adopt (first mount, --fresh, cleaned).
  const std::vector<std::string> left = state->entries();
  state->fresh_ = left.empty() || (left.size() == 1 && left.front() == kLockFile);
  return state;
}

std::unique_ptr<MountState> MountState::open_existing(const std::string& path) {
  std::unique_ptr<MountState> state(new MountState());
  state->path_ = path;
  if (!state->lock_current(false, "the mount with state " + path)) return nullptr;
  const std::vector<std::string> left = state->entries();
  state->fresh_ = left.size() == 1 && left.front() == kLockFile;
  return state;
}

MountState::~MountState() {
  close_fds();
}

std::string MountState::remove_entry(const std::string& name) {
  if (unlinkat(dir_fd_, name.c_str(), 0) == 0 || errno == ENOENT) return "";
  // A kernel-path tier's tmpfs (tierfs/server/backing_store.h): detached, so
  // its files go as soon as no descriptor holds them, then its mount point.
  if (errno == EISDIR) {
    const std::string path = path_ + "/" + name;
    if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL)
      throw std::runtime_error(fmt::format("{}: cannot unmount: {}", path, std::strerror(errno)));
    if (unlinkat(dir_fd_, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT)
      return fmt::format("removed the kernel path's backing files {}", path);
  }
  throw std::runtime_error(
      fmt::format("{}/{}: cannot remove: {}", path_, name, std::strerror(errno)));
}

std::vector<std::string> MountState::entries() const {
  std::vector<std::string> out;
  // getdents64 on a fresh descriptor rather than opendir: a clean unmount
  // lists the directory under the server's seccomp filter, which has no
  // fcntl for fdopendir (tierfs/server/privilege.cc).
  const int fd = openat(dir_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return out;
  alignas(dirent64) char buf[8192];
  ssize_t n;
  while ((n = getdents64(fd, buf, sizeof buf)) > 0) {
    for (ssize_t at = 0; at < n;) {
      const auto* entry = reinterpret_cast<const dirent64*>(buf + at);
      const std::string name = entry->d_name;
      if (name != "." && name != "..") out.push_back(name);
      at += entry->d_reclen;
    }
  }
  close(fd);
  return out;
}

void MountState::keep_default_size(Config& config) {
  if (config.source != kBuiltinDefaultSource || config.tiers.size() != 1) return;
  TierConfig& tier = config.tiers.front();
  const std::string text = fresh_ ? "" : read_text(dir_fd_, kDefaultRowsRecord);
  if (text.empty()) {
    write_record(dir_fd_, path_, kDefaultRowsRecord, fmt::format("{}\n", tier.geometry.rows));
    return;
  }
  uint64_t rows = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), rows);
  if (ec != std::errc() || end != text.data() + text.size() || rows == 0)
    throw std::runtime_error(fmt::format(
        "{}/{}: \"{}\" is not a row count; `tierfs mount --fresh` discards what the previous "
        "server left",
        path_, kDefaultRowsRecord, text));
  if (rows == tier.geometry.rows) return;
  const TierGeometry chosen = tier_geometry(tier, rows);
  spdlog::info(
      "built-in default: tier {} keeps the {} the previous server chose (free memory now suggests "
      "{})",
      tier.name, format_size(chosen.capacity_bytes), format_size(tier.size_bytes));
  tier.geometry = chosen;
  tier.size_bytes = chosen.capacity_bytes;
}

std::string MountState::shm_name(const std::string& tier, size_t index) {
  const std::string record = record_name(tier, index);
  if (std::string name = read_record(dir_fd_, record); !name.empty()) return name;
  std::string name = numa::unpredictable_shm_name();
  write_record(dir_fd_, path_, record, name + "\n");
  return name;
}

void MountState::forget_shm(const std::string& tier, size_t index) const {
  const std::string record = record_name(tier, index);
  const std::string name = read_record(dir_fd_, record);
  if (name.empty()) return;
  if (shm_unlink(name.c_str()) != 0 && errno != ENOENT) return;  // the record keeps it findable
  unlinkat(dir_fd_, record.c_str(), 0);
}

std::string MountState::region_identity(const std::string& tier, size_t index) const {
  return read_text(dir_fd_, fmt::format("{}{}.{}", kRegionPrefix, tier, index));
}

void MountState::record_region(const std::string& tier, size_t index, const std::string& identity) {
  write_record(dir_fd_, path_, fmt::format("{}{}.{}", kRegionPrefix, tier, index), identity + "\n");
}

std::vector<std::string> MountState::shm_names() const {
  std::vector<std::string> out;
  for (const std::string& entry : entries())
    if (entry.starts_with(kShmPrefix) && !entry.ends_with(".tmp"))
      if (std::string name = read_record(dir_fd_, entry); !name.empty()) out.push_back(name);
  return out;
}

std::vector<std::string> MountState::remove_shared_memory() {
  std::vector<std::string> removed;
  for (const std::string& entry : entries()) {
    if (!entry.starts_with(kShmPrefix)) continue;
    const std::string name = read_record(dir_fd_, entry);
    if (!name.empty()) {
      if (shm_unlink(name.c_str()) == 0)
        removed.push_back(fmt::format("removed shared memory /dev/shm{}", name));
      else if (errno != ENOENT)
        throw std::runtime_error(
            fmt::format("/dev/shm{}: cannot remove: {}", name, std::strerror(errno)));
    }
    // The record goes after its object: a failure above leaves it findable.
    unlinkat(dir_fd_, entry.c_str(), 0);
  }
  return removed;
}

std::vector<std::string> MountState::remove_memory() {
  std::vector<std::string> removed = remove_shared_memory();
  for (const std::string& name : entries())
    if (name.starts_with(kKernelStorePrefix))
      if (std::string line = remove_entry(name); !line.empty()) removed.push_back(std::move(line));
  return removed;
}

std::vector<std::string> MountState::remove_all() {
  std::vector<std::string> removed = remove_shared_memory();
  for (const std::string& name : entries())
    if (name != kLockFile)
      if (std::string line = remove_entry(name); !line.empty()) removed.push_back(std::move(line));
  // The lock goes last, right before the directory: until then a server
  // mounting here waits on it, so it never finds a half-removed directory.
  // One that takes a new lock between the two keeps the directory: it is
  // the next server's now, and empty but for its lock.
  remove_entry(kLockFile);
  if (rmdir(path_.c_str()) != 0) {
    if (errno == ENOTEMPTY || errno == EEXIST) {
      fresh_ = true;
      removed.push_back(fmt::format("left mount state {} to the server that mounted next", path_));
      return removed;
    }
    if (errno != ENOENT)
      throw std::runtime_error(fmt::format("{}: cannot remove: {}", path_, std::strerror(errno)));
  }
  removed.push_back(fmt::format("removed mount state {}", path_));
  fresh_ = true;
  return removed;
}

}  // namespace tierfs
