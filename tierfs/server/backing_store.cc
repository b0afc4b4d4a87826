// The kernel path's backing store (see backing_store.h).
#include "tierfs/server/backing_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "tierfs/core/units.h"
#include "tierfs/server/privilege.h"

namespace tierfs {

namespace {

constexpr const char* kMovingSuffix = ".moving";
constexpr const char* kRetiredSuffix = ".retired";

uint64_t page_bytes() {
  const long page = sysconf(_SC_PAGESIZE);
  return page > 0 ? static_cast<uint64_t>(page) : 4096;
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

// A directory of the per-tier layout before tiers shared a tmpfs
// ("kernel-path.<tier>"): its files cannot move into the shared one in
// place, and taking over the state without them would lose them.
void refuse_old_layout(int state_dir_fd, const std::string& state_dir) {
  const int fd = openat(state_dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* dir = fd >= 0 ? fdopendir(fd) : nullptr;
  if (dir == nullptr) {
    if (fd >= 0) close(fd);
    return;
  }
  std::string old;
  while (const dirent* entry = readdir(dir))
    if (std::string_view(entry->d_name).starts_with("kernel-path.")) old = entry->d_name;
  closedir(dir);
  if (old.empty()) return;
  const std::string path = fmt::format("{}/{}", state_dir, old);
  if (is_own_tmpfs(path, state_dir_fd)) {
    struct statfs fs {};
    if (statfs(path.c_str(), &fs) == 0 && fs.f_files - fs.f_ffree > 1)
      throw std::runtime_error(fmt::format(
          "{}: kernel-path files in the per-tier layout of an older tierfs (each tier its own "
          "tmpfs); mount this state with that version and move them off the kernel path, or "
          "start over with `tierfs mount --fresh`",
          path));
    umount2(path.c_str(), MNT_DETACH);
  }
  unlinkat(state_dir_fd, old.c_str(), AT_REMOVEDIR);
}

// Parses "<ino>.<tier>[.moving|.retired]".
bool parse_name(const std::string& name, uint64_t& ino, std::string& tier, bool& moving,
                bool& retired) {
  const size_t dot = name.find('.');
  if (dot == 0 || dot == std::string::npos) return false;
  for (size_t i = 0; i < dot; ++i)
    if (name[i] < '0' || name[i] > '9') return false;
  ino = std::strtoull(name.substr(0, dot).c_str(), nullptr, 10);
  tier = name.substr(dot + 1);
  moving = tier.ends_with(kMovingSuffix);
  retired = tier.ends_with(kRetiredSuffix);
  if (moving) tier.resize(tier.size() - std::strlen(kMovingSuffix));
  if (retired) tier.resize(tier.size() - std::strlen(kRetiredSuffix));
  return !tier.empty();
}

}  // namespace

std::string backing_class(const TierConfig& tier) {
  // Huge pages when the tier's granularity is larger than a page: the
  // qualification (core/data_path.cc) already checked that this kernel
  // gives tmpfs folios of that size, and only one large size qualifies at
  // a time, so two classes cover every kernel-path tier.
  return tier.granularity_bytes > page_bytes() ? "huge" : "page";
}

std::string backing_dir_name(const std::string& class_name) {
  return "kernel-store." + class_name;
}

std::unique_ptr<BackingStore> BackingStore::open(const Config& config, int state_dir_fd,
                                                 const std::string& state_dir) {
  std::unique_ptr<BackingStore> store(new BackingStore());
  store->tiers_.resize(config.tiers.size());
  std::vector<uint64_t> store_bytes;
  for (size_t t = 0; t < config.tiers.size(); ++t) {
    const TierConfig& tier = config.tiers[t];
    if (tier.data_path_choice.path != DataPath::kernel) continue;
    TierStore& ts = store->tiers_[t];
    ts.name = tier.name;
    const std::string class_name = backing_class(tier);
    size_t s = 0;
    while (s < store->stores_.size() && store->stores_[s].name != class_name) ++s;
    if (s == store->stores_.size()) {
      store->stores_.push_back(
          Store{-1, fmt::format("{}/{}", state_dir, backing_dir_name(class_name)), class_name,
                class_name == "huge" ? tier.granularity_bytes : page_bytes()});
      store_bytes.push_back(0);
    }
    ts.store = static_cast<int>(s);
    store_bytes[s] += tier.geometry.capacity_bytes;
    for (const TierRegion& region : tier.regions) ts.policy.nodes.push_back(region.spec.node);
    ts.policy.weights = tier.weights;
    if (::numa::is_weighted(ts.policy)) {
      if (std::string error = ::numa::set_interleave_weights(ts.policy); !error.empty())
        throw std::runtime_error(fmt::format("tier \"{}\": {}", tier.name, error));
    }
  }
  if (store->stores_.empty()) return nullptr;
  refuse_old_layout(state_dir_fd, state_dir);
  for (size_t s = 0; s < store->stores_.size(); ++s) {
    Store& st = store->stores_[s];
    // The headroom: what the tiers sharing this tmpfs may hold past their
    // capacities together while the tiers ranked below the first of them
    // (other than theirs) have room, for the mover to demote to; at most
    // kernel_path_headroom percent of their capacities. 0 with nothing below.
    uint64_t below = 0;
    bool first_seen = false;
    for (size_t t = 0; t < config.tiers.size(); ++t) {
      const bool here = store->tiers_[t].store == static_cast<int>(s);
      if (first_seen && !here) below += config.tiers[t].geometry.capacity_bytes;
      first_seen = first_seen || here;
    }
    const uint64_t capacity = store_bytes[s];
    st.headroom_bytes = std::min(below, capacity / 100 * config.mount.kernel_path_headroom);
    store_bytes[s] += st.headroom_bytes;
    // The policy covers every offset a file can reach: the tmpfs is that big.
    for (TierStore& ts : store->tiers_)
      if (ts.store == static_cast<int>(s)) ts.policy.span_bytes = store_bytes[s];
    const std::string name = backing_dir_name(st.name);
    if (mkdirat(state_dir_fd, name.c_str(), 0700) != 0 && errno != EEXIST)
      throw std::runtime_error(fmt::format("{}: {}", st.path, std::strerror(errno)));
    // within_size, not always: with always every file takes a whole huge
    // page (100 one-line files held 200 MiB); within_size gives a huge page
    // only to a range the file's size covers, so small files take 4 KiB
    // pages, and a file written in pieces of the granularity or more (or
    // sized first) is placed in runs of it.
    const std::string options = fmt::format("mode=0700,uid=0,gid=0,size={},huge={}", store_bytes[s],
                                            st.name == "huge" ? "within_size" : "never");
    // The tmpfs gives every new file the policy of its first tier (mpol=):
    // that tier's files need no mapping to set it (policy_set), whose munmap
    // costs a TLB shootdown on every CPU the server's threads ran on.
    size_t first = 0;
    while (store->tiers_[first].store != static_cast<int>(s)) ++first;
    const std::string policy_option = ::numa::tmpfs_policy_option(store->tiers_[first].policy);
    const std::string with_policy = fmt::format("{},{}", options, policy_option);
    bool has_policy = true;
    spdlog::info("kernel path: the {} tmpfs {} holds {}: its tiers' {} and {} of headroom", st.name,
                 st.path, format_size_approx(store_bytes[s]), format_size_approx(capacity),
                 format_size_approx(st.headroom_bytes));
    if (is_own_tmpfs(st.path, state_dir_fd)) {
      spdlog::info("kernel path: adopting the {} tmpfs {}", st.name, st.path);
      // Sized for this configuration's tiers (they may have changed); the
      // kernel refuses a size under what the files hold, which then stays.
      // Its policy is this configuration's first tier's, or none of ours.
      constexpr unsigned long kRemount = MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC;
      if (mount(nullptr, st.path.c_str(), nullptr, kRemount, with_policy.c_str()) != 0) {
        spdlog::warn("kernel path: {} keeps its size, not {}: {}", st.path,
                     format_size(store_bytes[s]), std::strerror(errno));
        has_policy = mount(nullptr, st.path.c_str(), nullptr, kRemount, policy_option.c_str()) == 0;
      }
    } else {
      constexpr unsigned long kFlags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
      const char* source = "tierfs-kernel-path";
      int rc = mount(source, st.path.c_str(), "tmpfs", kFlags, with_policy.c_str());
      if (rc != 0) {
        // A kernel that takes no such policy at mount: every file sets its own.
        has_policy = false;
        rc = mount(source, st.path.c_str(), "tmpfs", kFlags, options.c_str());
      }
      if (rc != 0) {
        const int err = errno;
        unlinkat(state_dir_fd, name.c_str(), AT_REMOVEDIR);
        throw std::runtime_error(fmt::format("cannot mount the kernel path's tmpfs on {}: {}{}",
                                             st.path, std::strerror(err),
                                             err == EPERM ? " (the kernel path needs root)" : ""));
      }
    }
    st.dir_fd = ::open(st.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (st.dir_fd < 0)
      throw std::runtime_error(fmt::format("{}: {}", st.path, std::strerror(errno)));
    if (has_policy) st.policy_tier = store->new_files_have(st, store->tiers_[first], first);
    if (st.policy_tier < 0)
      spdlog::info(
          "kernel path: the {} tmpfs gives new files no tier's policy ({}): each new file "
          "gets its tier's with mbind",
          st.name, has_policy ? "its files do not show it" : "mpol= refused");
  }
  return store;
}

int BackingStore::new_files_have(const Store& st, const TierStore& tier, size_t index) const {
  // The kernel, not the mount option, says what a new file gets: asked of
  // one made without a name (gone at its close).
  const int fd = openat(st.dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  const std::string why = ::numa::check_file_policy(fd, tier.policy);
  close(fd);
  if (why.empty()) return static_cast<int>(index);
  spdlog::warn("kernel path: a new file of {}: {}", st.path, why);
  return -1;
}

BackingStore::~BackingStore() {
  for (Store& st : stores_)
    if (st.dir_fd >= 0) close(st.dir_fd);
}

bool BackingStore::serves(uint32_t tier) const {
  return tier < tiers_.size() && tiers_[tier].store >= 0;
}

bool BackingStore::moves_files() const {
  std::vector<int> per_store(stores_.size(), 0);
  for (const TierStore& ts : tiers_)
    if (ts.store >= 0 && ++per_store[ts.store] == 2) return true;
  return false;
}

bool BackingStore::moves_in_place(uint32_t from, uint32_t to, std::string& why) const {
  if (!serves(from) || !serves(to)) {
    why = "both tiers must be on the kernel path";
    return false;
  }
  if (tiers_[from].store == tiers_[to].store) return true;
  why = fmt::format(
      "tiers \"{}\" and \"{}\" keep their files in different tmpfs ({} and {} pages): a file "
      "cannot move between them in place; move it to a server-path tier first",
      tiers_[from].name, tiers_[to].name, stores_[tiers_[from].store].name,
      stores_[tiers_[to].store].name);
  return false;
}

std::string BackingStore::file_name(uint64_t ino, uint32_t tier) const {
  return fmt::format("{}.{}", ino, tier < tiers_.size() ? tiers_[tier].name : "");
}

std::string BackingStore::retired_name(uint64_t ino, uint32_t tier) const {
  return file_name(ino, tier) + kRetiredSuffix;
}

bool BackingStore::policy_set(int fd, const TierStore& tier, const std::string& name, int& err,
                              std::string& error) const {
  const Store& st = stores_[tier.store];
  if (std::string why = ::numa::apply_file_policy(fd, tier.policy, false); !why.empty()) {
    if (!name.empty()) unlinkat(st.dir_fd, name.c_str(), 0);
    err = EIO;
    error = fmt::format("{}/{}: {}", st.path, name.empty() ? "(unnamed)" : name, why);
    return false;
  }
  return true;
}

std::unique_ptr<BackingFile> BackingStore::open_file(uint64_t ino, uint32_t tier, bool create,
                                                     int& err, std::string& error,
                                                     bool keep_created) const {
  if (!serves(tier)) {
    err = EINVAL;
    error = fmt::format("tier {} is not on the kernel path", tier);
    return nullptr;
  }
  const TierStore& ts = tiers_[tier];
  const Store& st = stores_[ts.store];
  const std::string name = file_name(ino, tier);
  const int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT | O_EXCL : 0);
  const int fd = openat(st.dir_fd, name.c_str(), flags, 0600);
  if (fd < 0) {
    err = errno;
    error = fmt::format("{}/{}: {}", st.path, name, std::strerror(err));
    return nullptr;
  }
  // A new file of the tier whose policy the tmpfs gives had it at its creation.
  if (create && st.policy_tier != static_cast<int>(tier) && !policy_set(fd, ts, name, err, error)) {
    close(fd);
    return nullptr;
  }
  auto file = std::make_unique<BackingFile>(-1, st.dir_fd, name, tier);
  if (create && keep_created)
    file->keep_created(fd);
  else
    close(fd);
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
  const Store& st = stores_[ts.store];
  const int fd = openat(st.dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    err = errno;
    error = fmt::format("{}: unnamed file: {}", st.path, std::strerror(err));
    return nullptr;
  }
  if (!policy_set(fd, ts, std::string(), err, error)) {
    close(fd);
    return nullptr;
  }
  return std::make_unique<BackingFile>(fd, st.dir_fd, std::string(), tier);
}

std::vector<BackingStore::Found> BackingStore::files() const {
  std::vector<Found> out;
  for (size_t s = 0; s < stores_.size(); ++s) {
    const int fd = openat(stores_[s].dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* dir = fd >= 0 ? fdopendir(fd) : nullptr;
    if (dir == nullptr) {
      if (fd >= 0) close(fd);
      continue;
    }
    while (const dirent* entry = readdir(dir)) {
      Found found;
      found.store = s;
      found.name = entry->d_name;
      std::string tier;
      if (!parse_name(found.name, found.ino, tier, found.moving, found.retired)) continue;
      for (uint32_t t = 0; t < tiers_.size(); ++t)
        if (tiers_[t].store == static_cast<int>(s) && tiers_[t].name == tier) found.tier = t;
      out.push_back(std::move(found));
    }
    closedir(dir);
  }
  std::stable_partition(out.begin(), out.end(), [](const Found& f) { return !f.retired; });
  return out;
}

uint32_t BackingStore::fallback_tier(size_t store, uint32_t preferred) const {
  if (preferred < tiers_.size() && tiers_[preferred].store == static_cast<int>(store))
    return preferred;
  for (uint32_t t = 0; t < tiers_.size(); ++t)
    if (tiers_[t].store == static_cast<int>(store)) return t;
  return 0;  // unreachable: a store exists for some tier
}

std::unique_ptr<BackingFile> BackingStore::adopt(const Found& found, uint32_t tier, int& err,
                                                 std::string& error) const {
  const Store& st = stores_[found.store];
  const int fd = openat(st.dir_fd, found.name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    err = errno;
    error = fmt::format("{}/{}: {}", st.path, found.name, std::strerror(err));
    return nullptr;
  }
  if (found.retired && found.tier == tier) {
    // A copy was replacing it and never got its name: it is the file.
    BackingFile file(-1, st.dir_fd, found.name, tier);
    if (int rc = file.rename(file_name(found.ino, tier), tier); rc != 0) {
      close(fd);
      err = -rc;
      error = fmt::format("{}/{}: rename: {}", st.path, found.name, std::strerror(err));
      return nullptr;
    }
    spdlog::info("kernel path: inode {} keeps its backing file on tier {} (its copy was not named)",
                 found.ino, tiers_[tier].name);
    Found named = found;
    named.name = file.name();
    named.retired = false;
    close(fd);
    return adopt(named, tier, err, error);
  }
  if (!found.moving && found.tier == tier) {
    // Its own tier's policy again for the pages to come: a full tier's
    // files had the next tier's (Mover spill) when the server stopped.
    if (std::string why = ::numa::apply_file_policy(fd, tiers_[tier].policy, false); !why.empty())
      spdlog::warn("kernel path: {}/{}: {}", st.path, found.name, why);
    close(fd);
    return std::make_unique<BackingFile>(-1, st.dir_fd, found.name, tier);
  }
  auto file = std::make_unique<BackingFile>(-1, st.dir_fd, found.name, tier);
  // A move the previous server did not finish, or a file of a tier this
  // configuration no longer has: it is `tier`'s now, all of it.
  if (int rc = begin_move(*file, found.ino, tier); rc != 0) {
    close(fd);
    err = -rc;
    error = fmt::format("{}/{}: rename: {}", st.path, found.name, std::strerror(err));
    return nullptr;
  }
  ::numa::PageMoves moves;
  if (std::string why = move_pages(fd, tier, moves); !why.empty())
    spdlog::warn("kernel path: {}/{}: {}", st.path, file->name(), why);
  close(fd);
  if (int rc = end_move(*file, found.ino); rc != 0) {
    err = -rc;
    error = fmt::format("{}/{}: rename: {}", st.path, file->name(), std::strerror(err));
    return nullptr;
  }
  spdlog::info("kernel path: inode {} finished its move to tier {} ({} pages moved, {} left)",
               found.ino, tiers_[tier].name, moves.moved_pages, moves.left_pages);
  return file;
}

void BackingStore::remove(const Found& found) const {
  unlinkat(stores_[found.store].dir_fd, found.name.c_str(), 0);
}

int BackingStore::begin_move(BackingFile& file, uint64_t ino, uint32_t to) const {
  if (!serves(to)) return -EINVAL;
  return file.rename(file_name(ino, to) + kMovingSuffix, to);
}

bool BackingStore::same_store(uint32_t a, uint32_t b) const {
  return serves(a) && serves(b) && tiers_[a].store == tiers_[b].store;
}

std::string BackingStore::set_policy(int fd, uint32_t tier) const {
  if (!serves(tier)) return "not a kernel-path tier";
  return ::numa::apply_file_policy(fd, tiers_[tier].policy, false);
}

std::string BackingStore::move_pages(int fd, uint32_t to, ::numa::PageMoves& moves) const {
  if (!serves(to)) return "not a kernel-path tier";
  const uint64_t folio_bytes = stores_[tiers_[to].store].folio_bytes;
  // A huge-page store's move reads frame numbers from /proc/self/pagemap,
  // which shows them to an opener with CAP_SYS_ADMIN: raised for the open.
  int pagemap_fd = -1;
  if (folio_bytes > page_bytes()) {
    const CapabilityWindow admin({CAP_SYS_ADMIN});
    pagemap_fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  }
  moves.pagemap_fd = pagemap_fd;
  std::string error;
  {
    // MPOL_MF_MOVE_ALL (mbind, move_pages) needs CAP_SYS_NICE: raised in
    // this thread for the move only. Without it (not kept: the tiers share no
    // tmpfs) the move falls back to MPOL_MF_MOVE and says so.
    const CapabilityWindow nice({CAP_SYS_NICE});
    error = ::numa::move_file_pages(fd, tiers_[to].policy, folio_bytes, moves);
  }
  moves.pagemap_fd = -1;
  if (pagemap_fd >= 0) close(pagemap_fd);
  return error;
}

int BackingStore::end_move(BackingFile& file, uint64_t ino) const {
  return file.rename(file_name(ino, file.tier()), file.tier());
}

BackingStore::Usage BackingStore::store_usage(uint32_t tier) const {
  Usage usage;
  struct statfs st {};
  if (!serves(tier) || fstatfs(stores_[tiers_[tier].store].dir_fd, &st) != 0) return usage;
  usage.capacity_bytes = static_cast<uint64_t>(st.f_blocks) * st.f_bsize;
  usage.used_bytes = static_cast<uint64_t>(st.f_blocks - st.f_bfree) * st.f_bsize;
  return usage;
}

uint64_t BackingStore::used_bytes() const {
  uint64_t used = 0;
  for (const Store& st : stores_) {
    struct statfs fs {};
    if (fstatfs(st.dir_fd, &fs) == 0)
      used += static_cast<uint64_t>(fs.f_blocks - fs.f_bfree) * fs.f_bsize;
  }
  return used;
}

}  // namespace tierfs
