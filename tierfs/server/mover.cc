// The Mover (mover.h): migrations by hand and by watermark, their counters,
// and the thread that looks at the tiers every [mover] interval_ms.
//
// Coldness is the server's own access time (the last read or write of the
// data, Inode::access_ns), not atime, which relatime and utimensat move.
// Hotness is a read score: the reads since the last look are added to half
// the previous score, so a file read steadily keeps a high score and one
// read once fades within a few looks.
#include "tierfs/server/mover.h"

#include "tierfs/server/backing_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "tierfs/core/journal.h"
#include "tierfs/core/migrate_path.h"
#include "tierfs/server/fs.h"

namespace tierfs {

namespace {

// Testing knob (documented with the crash points): smaller chunks make a
// small file's copy many lock holds, so a crash point or a write lands
// between them. Whole blocks, at least one.
uint64_t chunk_bytes() {
  static const uint64_t bytes = [] {
    const char* v = getenv("TIERFS_MIGRATE_CHUNK_BYTES");
    const uint64_t asked = v && *v ? std::strtoull(v, nullptr, 10) : MigrateOptions{}.chunk_bytes;
    return std::max(asked / kBlockBytes, uint64_t{1}) * kBlockBytes;
  }();
  return bytes;
}

}  // namespace

Mover::Mover(Fs& fs) : fs_(fs), rate_(fs.config().mover.rate_bytes_per_s) {
  for (const TierConfig& tier : fs.config().tiers) watermarks_ |= tier.high_watermark != 0;
  moves_.resize(fs.config().tiers.size());
  state_ = watermarks_ ? "idle" : "off";
}

Mover::~Mover() {
  stop();
}

void Mover::start() {
  if (thread_.joinable() || stop_.load()) return;
  thread_ = std::thread([this] { run(); });
}

void Mover::stop() {
  {
    std::lock_guard guard(lock_);
    stop_.store(true);
    state_ = "stopped";
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Mover::set_state(const char* state) {
  std::lock_guard guard(lock_);
  if (!stop_.load()) state_ = state;
}

void Mover::enqueue(const InodePtr& inode, uint32_t tier) {
  {
    std::lock_guard guard(lock_);
    queue_.push_back({inode, tier});
  }
  wake_.notify_all();
}

int Mover::migrate(const InodePtr& inode, uint32_t tier, bool rate_limited, uint64_t* bytes_moved) {
  if (!inode->is_regular()) return -EINVAL;
  if (tier >= moves_.size()) return -EINVAL;
  // Which paths the move is between: a kernel-path file to another
  // kernel-path tier moves in place (fs_kernel_move.cc) where they share a
  // tmpfs, else by copy in the kernel (migrate_between_backings).
  const BackingStore* store = fs_.backing_store();
  const bool to_kernel = store != nullptr && store->serves(tier);
  bool from_kernel = false;
  uint32_t from_tier = 0;
  {
    std::shared_lock guard(inode->lock);
    from_kernel = fs_.data_path_of(*inode) == DataPath::kernel;
    if (from_kernel) from_tier = inode->data->backing()->tier();
    if (from_kernel && to_kernel && from_tier == tier) return 0;
  }
  // No switch may need a record the log cannot take: refused before any
  // copy (tierfs migrate and user.tierfs.tier say ENOSPC), as a write is.
  if (!log_has_room()) return -ENOSPC;
  auto flight = std::make_shared<InFlight>();
  flight->to_tier = tier;
  {
    std::shared_lock guard(inode->lock);
    flight->total_bytes = inode->data_released ? 0 : inode->data->allocated_bytes();
  }
  {
    std::lock_guard guard(lock_);
    if (!in_flight_.emplace(inode->ino, flight).second) return -EBUSY;
  }
  MigrateOptions options;
  options.chunk_bytes = chunk_bytes();
  options.rate = rate_limited ? &rate_ : nullptr;
  options.stop = &stop_;
  options.copied = &flight->copied;
  options.transit_lock = &transit_lock_;
  options.on_copy_blocks = [&](std::span<const tierfs_extent> copy) {
    std::lock_guard guard(lock_);
    flight->copy_extents.assign(copy.begin(), copy.end());
  };
  MigrateResult result;
  // The file lives there now: its new data follows it. Set at the switch,
  // under the same lock hold, and logged in the switch's frame: no write
  // lands on the old tier after the switch, and a crash does not keep the
  // new extents with the old preferred tier.
  options.on_switch = [&] {
    inode->data->set_preferred_tier(tier);
    fs_.log_inode_locked(*inode);
  };
  const std::function<bool()> alive = [&inode] { return !inode->data_released; };
  // Off a backing file by copy (to the server path, or to the other tmpfs),
  // the kernel writes a passthrough handle's bytes, and a shared mapping's,
  // unseen: while one is open the move is held. A handle's last release
  // hands it back to the mover (close_data_path); a mapping whose program
  // closed its descriptor sent that release at the close but still holds
  // the backing file (6.18: the mapping is the backing file's), which only
  // a write lease shows: the mover asks again at each look until the lease
  // is granted (retry_held). Decided under the file's lock at the start and
  // at the switch, as a release is. While the copy runs, opens are answered
  // by the server (fs_kernel_path.cc).
  bool held = false;
  bool mapped = false;
  const std::function<bool()> quiet = [this, &inode, tier, &held, &mapped] {
    const BackingFile* backing = inode->data->backing();
    if (backing == nullptr) return false;
    mapped = backing->passthrough_opens == 0 && open_elsewhere(*backing);
    if (backing->passthrough_opens == 0 && !mapped) return true;
    inode->held_move_tier = static_cast<int32_t>(tier);
    held = true;
    return false;
  };
  int err = 0;
  // The unnamed backing file a copy onto `tier` fills: null, with `err` set
  // and said, when it cannot be made.
  const auto open_copy = [&]() -> std::unique_ptr<BackingFile> {
    std::string error;
    auto copy = store->open_unnamed(tier, err, error);
    if (!copy) {
      spdlog::error("migrate inode {}: {}", inode->ino, error);
      err = -err;
    }
    return copy;
  };
  std::string why;
  if (from_kernel && to_kernel && store->moves_in_place(from_tier, tier, why)) {
    err = fs_.move_in_place(inode, tier, result);
  } else if (from_kernel && to_kernel) {
    // Another tmpfs (4 KiB and huge pages): by copy in the kernel.
    if (auto copy = open_copy()) {
      options.on_switch = [&] {
        inode->data->set_preferred_tier(tier);
        fs_.log_inode_locked(*inode);
      };
      err = migrate_between_backings(fs_.storage(), *inode->data, inode->lock, std::move(copy),
                                     store->file_name(inode->ino, tier),
                                     store->retired_name(inode->ino, from_tier), alive, quiet,
                                     options, &result);
    }
  } else if (to_kernel) {
    if (auto backing = open_copy()) {
      const std::function<uint64_t()> size = [&inode] { return inode->size; };
      options.on_switch = [&] {
        // The copy was written now; the file's mtime is the recorded one
        // (getattr reports the later of the two).
        inode->data->set_mtime(inode->mtime_ns);
        inode->data->set_preferred_tier(tier);
        fs_.log_inode_locked(*inode);
      };
      err = migrate_to_backing(fs_.storage(), *inode->data, inode->lock, std::move(backing),
                               store->file_name(inode->ino, tier), alive, size, options, &result);
    }
  } else if (from_kernel) {
    options.on_switch = [&] {
      inode->size = result.file_size;
      inode->mtime_ns = std::max(inode->mtime_ns, result.mtime_ns);
      inode->ctime_ns = std::max(inode->ctime_ns, result.ctime_ns);
      inode->data->set_preferred_tier(tier);
      fs_.log_inode_locked(*inode);
    };
    err = migrate_from_backing(fs_.storage(), *inode->data, inode->lock, tier, alive, quiet,
                               options, &result);
  } else {
    err = migrate_file(fs_.storage(), *inode->data, inode->lock, tier, alive, options, &result);
  }
  if (held) {
    err = -EINPROGRESS;
  } else {
    // The last request wins: one that ran (moved or failed) ends a held move.
    std::unique_lock guard(inode->lock);
    inode->held_move_tier = -1;
    // Nothing had to move (already there, or no data): the preferred tier still changes.
    if (err == 0 && !inode->data_released && inode->data->preferred_tier() != tier) {
      inode->data->set_preferred_tier(tier);
      fs_.log_inode_locked(*inode);
    }
  }
  // The kernel's cached attributes are the old tier's: st_blocks differs
  // between a 4 KiB-page tmpfs, a huge-page one (whole folios) and the
  // server path, and a server-path file's stay for an hour (attr_timeout_s).
  if (!held && err == 0 && fs_.session() != nullptr)
    fuse_lowlevel_notify_inval_inode(fs_.session(), inode->ino, -1, 0);
  std::lock_guard guard(lock_);
  in_flight_.erase(inode->ino);
  if (held && mapped) held_by_mapping_[inode->ino] = Queued{inode, tier};
  if (held) return err;
  // Its new tier's policy, or no backing file: no longer a full tier's spill.
  if (err == 0) spilled_.erase(inode->ino);
  if (err != 0) {
    ++failures_;
    return err;
  }
  uint64_t arrived = 0;
  for (uint32_t t = 0; t < result.bytes_from_tier.size(); ++t) {
    if (t == tier || result.bytes_from_tier[t] == 0) continue;
    moves_[t].bytes_out += result.bytes_from_tier[t];
    ++moves_[t].files_out;
    arrived += result.bytes_from_tier[t];
  }
  if (bytes_moved != nullptr) *bytes_moved = arrived;
  if (arrived > 0) {
    moves_[tier].bytes_in += arrived;
    ++moves_[tier].files_in;
    ++migrations_;
  }
  return 0;
}

bool Mover::open_elsewhere(const BackingFile& backing) {
  const std::optional<bool> open = backing.open_elsewhere();
  if (open) return *open;
  // Nobody can tell: the move goes ahead, as it did before leases were
  // asked. Said once (a site that turned leases off sees why).
  if (!warned_no_lease_.exchange(true))
    spdlog::warn(
        "kernel path: no write lease on backing files ({}; fs.leases-enable must be 1): a move "
        "off the kernel path cannot see a shared mapping whose descriptor was closed",
        strerror(errno));
  return false;
}

void Mover::retry_held() {
  std::unordered_map<uint64_t, Queued> held;
  {
    std::lock_guard guard(lock_);
    held.swap(held_by_mapping_);
  }
  for (const auto& [ino, job] : held) {
    InodePtr inode = job.inode.lock();
    if (!inode) continue;
    {
      // A later request replaced it, or a release ran it.
      std::shared_lock guard(inode->lock);
      if (inode->held_move_tier != static_cast<int32_t>(job.tier)) continue;
    }
    if (const int err = migrate(inode, job.tier); err != 0 && err != -EINPROGRESS)
      spdlog::info("mover: held move of inode {} to tier {}: {}", ino, job.tier, strerror(-err));
  }
}

MoverStatus Mover::status() const {
  std::lock_guard guard(lock_);
  const MoverOptions& options = fs_.config().mover;
  return {.state = state_,
          .rate_bytes_per_s = rate_.rate(),
          .interval_ms = options.interval_ms,
          .promote_reads = options.promote_reads,
          .queued = queue_.size(),
          .in_flight = in_flight_.size(),
          .migrations = migrations_,
          .failures = failures_,
          .tiers = moves_};
}

std::optional<MigrationProgress> Mover::progress(uint64_t ino) const {
  std::lock_guard guard(lock_);
  auto it = in_flight_.find(ino);
  if (it == in_flight_.end()) return std::nullopt;
  return MigrationProgress{it->second->to_tier, it->second->copied.load(), it->second->total_bytes};
}

std::vector<std::vector<BlockRange>> Mover::blocks_in_transit() const {
  std::vector<std::vector<BlockRange>> out(moves_.size());
  std::lock_guard guard(lock_);
  for (const auto& [ino, flight] : in_flight_)
    for (const tierfs_extent& e : flight->copy_extents)
      if (e.tier < out.size())
        out[e.tier].push_back({e.tier_address / kBlockBytes, e.length / kBlockBytes});
  return out;
}

void Mover::run() {
  using clock = std::chrono::steady_clock;
  const auto interval = std::chrono::milliseconds(fs_.config().mover.interval_ms);
  clock::time_point next_look = clock::now() + interval;
  while (true) {
    std::optional<Queued> job;
    // A full log: queued moves wait for the next look that finds room.
    const bool room = log_has_room();
    {
      std::unique_lock guard(lock_);
      wake_.wait_until(guard, next_look, [&] { return stop_.load() || (room && !queue_.empty()); });
      if (stop_.load()) return;
      if (room && !queue_.empty()) {
        job = queue_.front();
        queue_.pop_front();
      }
    }
    if (job) {
      if (InodePtr inode = job->inode.lock()) {
        set_state("queued");
        const int err = migrate(inode, job->tier);
        if (err == -ENOSPC && !log_room_.load()) {
          // The log filled since the wait: the job waits with the rest.
          std::lock_guard guard(lock_);
          queue_.push_front(*job);
        } else if (err != 0 && err != -EINPROGRESS) {
          spdlog::info("mover: inode {} to tier {}: {}", inode->ino, job->tier, strerror(-err));
        }
      }
      set_state(watermarks_ ? "idle" : "off");
    }
    if (clock::now() >= next_look) {
      if (fs_.backing_store() != nullptr && room) {
        retry_held();
        look_at_kernel_tiers();
      }
      if (watermarks_ && room) balance();
      next_look = clock::now() + interval;
    }
  }
}

bool Mover::log_has_room() {
  Journal* journal = fs_.journal();
  const bool room = journal == nullptr || journal->has_room();
  if (log_room_.exchange(room) != room) {
    if (room)
      spdlog::info("mover: the metadata log has room again: moves resume");
    else
      spdlog::warn("mover: the metadata log is full: moves wait until it has room");
  }
  return room;
}

// A tier's size and what it holds.
struct Space {
  uint64_t capacity = 0, used = 0;
  uint64_t free() const { return capacity > used ? capacity - used : 0; }
  uint64_t percent(unsigned p) const { return capacity / 100 * p; }
};

// The tiers' space as one look of the mover sees it. A kernel-path tier's
// use is what its files' backing files hold (they share a tmpfs with other
// tiers; Fs::kernel_tier_used looks at every file, so once per look), kept
// current as the look moves files; a server-path tier's is its allocator's.
class TierSpace {
 public:
  explicit TierSpace(Fs& fs) : fs_(fs), kernel_used_(fs.kernel_tier_used()) {}
  Space of(uint32_t t) const {
    const BackingStore* store = fs_.backing_store();
    Tier& tier = fs_.storage().tier(t);
    if (store != nullptr && store->serves(t))
      return {tier.geometry().capacity_bytes, kernel_used_[t]};
    return {tier.geometry().capacity_bytes, tier.geometry().capacity_bytes - tier.free_bytes()};
  }
  // A file of `bytes` moved from one tier to another.
  void moved(uint32_t from, uint32_t to, uint64_t bytes) {
    kernel_used_[from] -= std::min(kernel_used_[from], bytes);
    if (const BackingStore* store = fs_.backing_store(); store != nullptr && store->serves(to))
      kernel_used_[to] += bytes;
  }

 private:
  Fs& fs_;
  std::vector<uint64_t> kernel_used_;
};

namespace {

struct Candidate {
  InodePtr inode;
  uint64_t on_tier = 0;    // bytes on the tier looked at
  uint64_t allocated = 0;  // bytes of the whole file
  int64_t access_ns = 0;
  uint32_t read_score = 0;
};

// Files with bytes on `tier`, as they are now.
std::vector<Candidate> files_on(const std::vector<InodePtr>& files, uint32_t tier) {
  std::vector<Candidate> out;
  for (const InodePtr& inode : files) {
    Candidate c{inode, 0, 0, inode->access_ns.load(), inode->read_score};
    std::shared_lock guard(inode->lock);
    if (inode->data_released) continue;
    if (const BackingFile* backing = inode->data->backing()) {
      c.allocated = backing->facts().allocated_bytes;
      if (backing->tier() == tier && c.allocated > 0) {
        c.on_tier = c.allocated;
        out.push_back(std::move(c));
      }
      continue;
    }
    for (const tierfs_extent& e : inode->data->extents()) {
      c.allocated += e.length;
      if (e.tier == tier) c.on_tier += e.length;
    }
    if (c.on_tier > 0) out.push_back(std::move(c));
  }
  return out;
}

}  // namespace

bool Mover::pinned(const Inode& inode) const {
  std::shared_lock ns(fs_.namespace_lock);
  return fs_.placement().pinned(fs_.path_of(inode.parent, inode.name));
}

void Mover::balance() {
  std::vector<InodePtr> files = fs_.regular_files();
  for (const InodePtr& inode : files)
    inode->read_score = inode->read_score / 2 + inode->recent_reads.exchange(0);
  const std::vector<TierConfig>& tiers = fs_.config().tiers;
  TierSpace space(fs_);
  for (uint32_t t = 0; t + 1 < tiers.size() && !stop_.load(); ++t) {
    const Space now = space.of(t);
    if (tiers[t].high_watermark != 0 && now.used > now.percent(tiers[t].high_watermark))
      demote(t, space);
  }
  for (uint32_t u = 0; u + 1 < tiers.size() && !stop_.load(); ++u) {
    const Space now = space.of(u);
    if (tiers[u].high_watermark != 0 && now.used < now.percent(tiers[u].low_watermark))
      promote(u, space);
  }
  set_state("idle");
}

// The coldest first, until the tier is under its low mark.
void Mover::demote(uint32_t from, TierSpace& space) {
  std::vector<Candidate> candidates = files_on(fs_.regular_files(), from);
  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.access_ns < b.access_ns; });
  const uint64_t low = space.of(from).percent(fs_.config().tiers[from].low_watermark);
  for (const Candidate& c : candidates) {
    if (stop_.load() || space.of(from).used <= low) break;
    if (space.of(from + 1).free() < c.allocated || pinned(*c.inode)) continue;
    set_state("demoting");
    if (const int err = migrate(c.inode, from + 1, true); err == 0)
      space.moved(from, from + 1, c.allocated);
    else if (err == -ENOSPC && !log_room_.load())
      break;  // the log filled: the next look with room goes on
    else if (err != -ECANCELED && err != -EINPROGRESS)  // held: moves at its last close
      spdlog::info("mover: demoting inode {}: {}", c.inode->ino, strerror(-err));
  }
}

// The hottest of the tier below first, while they fit under the low mark.
void Mover::promote(uint32_t into, TierSpace& space) {
  const unsigned hot = fs_.config().mover.promote_reads;
  std::vector<Candidate> candidates = files_on(fs_.regular_files(), into + 1);
  std::erase_if(candidates, [hot](const Candidate& c) { return c.read_score < hot; });
  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.read_score > b.read_score; });
  const uint64_t low = space.of(into).percent(fs_.config().tiers[into].low_watermark);
  for (const Candidate& c : candidates) {
    if (stop_.load()) break;
    if (space.of(into).used + c.allocated > low || pinned(*c.inode)) continue;
    set_state("promoting");
    if (const int err = migrate(c.inode, into, true); err == 0)
      space.moved(into + 1, into, c.allocated);
    else if (err == -ENOSPC && !log_room_.load())
      break;  // the log filled: the next look with room goes on
    else if (err != -ECANCELED)
      spdlog::info("mover: promoting inode {}: {}", c.inode->ino, strerror(-err));
  }
}

}  // namespace tierfs
