// The kernel path's backing store (see backing_store.h).
#include "tierfs/server/backing_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tierfs {

std::string backing_dir_name(const std::string& tier_name) {
  return "kernel-path." + tier_name;
}

namespace {

// Huge pages when the tier's granularity is larger than a page: the
// qualification (core/data_path.cc) already checked that this kernel gives
// tmpfs folios of that size. within_size, not always: with always every file
// takes a whole huge page, so a one-line file held 2 MiB (100 of them: 200 MiB
// of a tier); within_size gives a huge page only to a range the file's size
// covers, so small files take 4 KiB pages as on tmpfs, and a file written in
// pieces of the granularity or more (or sized first) is placed in runs of it.
std::string tmpfs_options(const TierConfig& tier) {
  const long page = sysconf(_SC_PAGESIZE);
  const bool huge = tier.granularity_bytes > static_cast<uint64_t>(page > 0 ? page : 4096);
  return fmt::format("mode=0700,uid=0,gid=0,size={},huge={}", tier.geometry.capacity_bytes,
                     huge ? "within_size" : "never");
}

// A tmpfs already mounted on `path` (a previous server's, after kill -9).
bool is_own_tmpfs(const std::string& path, int parent_fd) {
  struct statfs fs {};
  struct stat dir {};
  struct stat parent {};
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC &&
         stat(path.c_str(), &dir) == 0 && fstat(parent_fd, &parent) == 0 &&
         dir.st_dev != parent.st_dev;
}

}  // namespace

std::unique_ptr<BackingStore> BackingStore::open(const Config& config, int state_dir_fd,
                                                 const std::string& state_dir) {
  std::unique_ptr<BackingStore> store(new BackingStore());
  store->tiers_.resize(config.tiers.size());
  bool any = false;
  for (size_t t = 0; t < config.tiers.size(); ++t) {
    const TierConfig& tier = config.tiers[t];
    if (tier.data_path_choice.path != DataPath::kernel) continue;
    any = true;
    TierStore& ts = store->tiers_[t];
    const std::string name = backing_dir_name(tier.name);
    ts.path = fmt::format("{}/{}", state_dir, name);
    for (const TierRegion& region : tier.regions) ts.policy.nodes.push_back(region.spec.node);
    ts.policy.weights = tier.weights;
    // The policy covers every offset a file of the tier can reach: the tmpfs is that big.
    ts.policy.span_bytes = tier.geometry.capacity_bytes;
    if (::numa::is_weighted(ts.policy)) {
      if (std::string error = ::numa::set_interleave_weights(ts.policy); !error.empty())
        throw std::runtime_error(fmt::format("tier \"{}\": {}", tier.name, error));
    }
    if (mkdirat(state_dir_fd, name.c_str(), 0700) != 0 && errno != EEXIST)
      throw std::runtime_error(fmt::format("{}: {}", ts.path, std::strerror(errno)));
    if (is_own_tmpfs(ts.path, state_dir_fd)) {
      spdlog::info("tier {}: adopting the kernel path's tmpfs {}", tier.name, ts.path);
    } else if (mount("tierfs-kernel-path", ts.path.c_str(), "tmpfs",
                     MS_NOSUID | MS_NODEV | MS_NOEXEC, tmpfs_options(tier).c_str()) != 0) {
      const int err = errno;
      unlinkat(state_dir_fd, name.c_str(), AT_REMOVEDIR);
      throw std::runtime_error(fmt::format(
          "tier \"{}\": cannot mount the kernel path's tmpfs on {}: {}{}", tier.name, ts.path,
          std::strerror(err), err == EPERM ? " (the kernel path needs root)" : ""));
    }
    ts.dir_fd = ::open(ts.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (ts.dir_fd < 0)
      throw std::runtime_error(fmt::format("{}: {}", ts.path, std::strerror(errno)));
  }
  if (!any) return nullptr;
  return store;
}

BackingStore::~BackingStore() {
  for (TierStore& ts : tiers_)
    if (ts.dir_fd >= 0) close(ts.dir_fd);
}

bool BackingStore::serves(uint32_t tier) const {
  return tier < tiers_.size() && tiers_[tier].dir_fd >= 0;
}

std::unique_ptr<BackingFile> BackingStore::open_file(uint64_t ino, uint32_t tier, bool create,
                                                     int& err, std::string& error) const {
  if (!serves(tier)) {
    err = EINVAL;
    error = fmt::format("tier {} is not on the kernel path", tier);
    return nullptr;
  }
  const TierStore& ts = tiers_[tier];
  const std::string name = std::to_string(ino);
  const int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT | O_EXCL : 0);
  const int fd = openat(ts.dir_fd, name.c_str(), flags, 0600);
  if (fd < 0) {
    err = errno;
    error = fmt::format("{}/{}: {}", ts.path, name, std::strerror(err));
    return nullptr;
  }
  auto file = std::make_unique<BackingFile>(fd, ts.dir_fd, name, tier);
  if (create) {
    if (std::string why = ::numa::apply_file_policy(fd, ts.policy, false); !why.empty()) {
      file->remove();
      err = EIO;
      error = fmt::format("{}/{}: {}", ts.path, name, why);
      return nullptr;
    }
  }
  return file;
}

std::unique_ptr<BackingFile> BackingStore::open_unnamed(uint32_t tier, int& err,
                                                        std::string& error) const {
  if (!serves(tier)) {
    err = EINVAL;
    error = fmt::format("tier {} is not on the kernel path", tier);
    return nullptr;
  }
  const TierStore& ts = tiers_[tier];
  const int fd = openat(ts.dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    err = errno;
    error = fmt::format("{}: unnamed file: {}", ts.path, std::strerror(err));
    return nullptr;
  }
  auto file = std::make_unique<BackingFile>(fd, ts.dir_fd, std::string(), tier);
  if (std::string why = ::numa::apply_file_policy(fd, ts.policy, false); !why.empty()) {
    err = EIO;
    error = fmt::format("{}: unnamed file: {}", ts.path, why);
    return nullptr;
  }
  return file;
}

std::vector<std::pair<uint32_t, uint64_t>> BackingStore::files() const {
  std::vector<std::pair<uint32_t, uint64_t>> out;
  for (size_t t = 0; t < tiers_.size(); ++t) {
    if (tiers_[t].dir_fd < 0) continue;
    const int fd = openat(tiers_[t].dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* dir = fd >= 0 ? fdopendir(fd) : nullptr;
    if (dir == nullptr) {
      if (fd >= 0) close(fd);
      continue;
    }
    while (const dirent* entry = readdir(dir)) {
      char* end = nullptr;
      const unsigned long long ino = std::strtoull(entry->d_name, &end, 10);
      if (entry->d_name[0] != '.' && end != entry->d_name && *end == '\0')
        out.emplace_back(static_cast<uint32_t>(t), ino);
    }
    closedir(dir);
  }
  return out;
}

void BackingStore::remove_orphan(uint32_t tier, uint64_t ino) const {
  if (serves(tier)) unlinkat(tiers_[tier].dir_fd, std::to_string(ino).c_str(), 0);
}

BackingStore::Usage BackingStore::usage(uint32_t tier) const {
  Usage usage;
  struct statfs st {};
  if (!serves(tier) || fstatfs(tiers_[tier].dir_fd, &st) != 0) return usage;
  usage.capacity_bytes = static_cast<uint64_t>(st.f_blocks) * st.f_bsize;
  usage.used_bytes = static_cast<uint64_t>(st.f_blocks - st.f_bfree) * st.f_bsize;
  return usage;
}

}  // namespace tierfs
