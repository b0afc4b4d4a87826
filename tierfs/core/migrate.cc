// Migration of one file: allocate on the target, copy under the shared lock
// in chunks, catch up with what changed meanwhile, switch under the unique
// lock. See migrate.h for the contract and FileData for the primitives.
//
// Why the catch-up works: every FileData call that changes bytes or extents
// runs under the unique lock and records its range while the file is
// watched. A range copied under the shared lock is therefore either still
// what the file holds, or recorded; taking the records under the unique lock
// and copying those ranges again (discarding what the copy held there first)
// leaves the copy equal to the file when the switch happens under that same
// unique lock. Passes under the shared lock shrink the records first, so the
// unique lock is held only for a short final pass.
#include "tierfs/core/migrate.h"

#include <algorithm>
#include <cerrno>
#include <thread>

#include "tierfs/core/journal.h"

namespace tierfs {

namespace {

constexpr unsigned kMaxSharedPasses = 3;

uint64_t end_of(const tierfs_extent& e) {
  return e.file_offset + e.length;
}

uint64_t last_end(const FileData& data) {
  const auto extents = data.extents();
  return extents.empty() ? 0 : end_of(extents.back());
}

}  // namespace

RateLimiter::RateLimiter(uint64_t bytes_per_s) : bytes_per_s_(bytes_per_s) {}

void RateLimiter::set_rate(uint64_t bytes_per_s) {
  std::lock_guard guard(lock_);
  bytes_per_s_ = bytes_per_s;
}

uint64_t RateLimiter::rate() const {
  std::lock_guard guard(lock_);
  return bytes_per_s_;
}

void RateLimiter::take(uint64_t bytes, const std::atomic<bool>* stop) {
  using clock = std::chrono::steady_clock;
  clock::time_point wake;
  {
    std::lock_guard guard(lock_);
    if (bytes_per_s_ == 0) return;
    const clock::time_point now = clock::now();
    next_free_ = std::max(next_free_, now);
    wake = next_free_;
    next_free_ += std::chrono::nanoseconds(
        static_cast<int64_t>(static_cast<double>(bytes) * 1e9 / static_cast<double>(bytes_per_s_)));
  }
  // Short sleeps: an unmount (stop) does not wait for a long budget.
  for (clock::time_point now = clock::now(); now < wake; now = clock::now()) {
    if (stop != nullptr && stop->load()) return;
    std::this_thread::sleep_for(
        std::min<clock::duration>(wake - now, std::chrono::milliseconds(20)));
  }
}

namespace {

class Migration {
 public:
  Migration(Storage& storage, FileData& file, std::shared_mutex& lock, uint32_t target,
            const std::function<bool()>& alive, const MigrateOptions& options)
      : storage_(storage), file_(file), lock_(lock), alive_(alive), options_(options) {
    copy_.set_preferred_tier(target);
    copy_.set_spill(false);
    target_ = target;
  }

  int run(MigrateResult& result) {
    std::vector<tierfs_extent> plan;
    {
      std::unique_lock guard(lock_);
      if (!alive_()) return -ENOENT;
      if (file_.watching_changes()) return -EBUSY;
      const auto extents = file_.extents();
      if (std::all_of(extents.begin(), extents.end(),
                      [&](const tierfs_extent& e) { return e.tier == target_; }))
        return 0;  // nothing to move (a zero-length file too)
      plan.assign(extents.begin(), extents.end());
      file_.watch_changes(true);
    }
    // The whole target first, one extent per hold: an early ENOSPC, and
    // large runs laid out row by row as a file written in one go would be.
    for (const tierfs_extent& e : plan)
      if (int err = under_shared(
              [&] { return file_.copy_to(storage_, copy_, e.file_offset, end_of(e), false); }))
        return give_up(err);
    // Crash points (docs/operations.md): the copy's blocks are taken but no
    // record names them, so a crash from here to the switch leaves the file
    // where it was and the blocks free at replay.
    crash_point("migrate.after_allocate");
    for (const tierfs_extent& e : plan)
      if (int err = copy_range(e.file_offset, end_of(e))) return give_up(err);

    CatchUpSteps steps;
    steps.limit = [&] { return std::max(last_end(file_), last_end(copy_)); };
    // The last copies and the switch in one step: a check sees the new
    // blocks in transit or owned, the old ones owned or free, never unowned.
    steps.last_pass = [&](const std::vector<FileData::ChangedRange>& changes) {
      return reporting([&] {
        for (const FileData::ChangedRange& r : changes) {
          copy_.discard(storage_, r.off, r.end);
          if (int failed = file_.copy_to(storage_, copy_, r.off, r.end, true)) return failed;
          copied_ += r.end - r.off;
        }
        result.bytes_from_tier.assign(storage_.tier_count(), 0);
        for (const tierfs_extent& e : file_.extents()) result.bytes_from_tier[e.tier] += e.length;
        result.bytes_moved = copy_.allocated_bytes();
        crash_point("migrate.before_switch");
        file_.adopt_extents(storage_, copy_, options_.on_switch);
        return 0;
      });
    };
    steps.copy_again = [&](const FileData::ChangedRange& r) {
      if (int err = under_shared([&] {
            copy_.discard(storage_, r.off, r.end);
            return 0;
          }))
        return err;
      return copy_range(r.off, r.end);
    };
    steps.release_copy = [&] { copy_.release(storage_); };
    steps.give_up = [&](int err) { return give_up(err); };
    return catch_up_and_switch(file_, lock_, alive_, options_, steps, copied_, result);
  }

 private:
  // Runs `step` under the shared lock while the file has data.
  template <typename Step>
  int under_shared(Step&& step) {
    if (options_.stop != nullptr && options_.stop->load()) return -ECANCELED;
    std::shared_lock guard(lock_);
    if (!alive_()) return -ENOENT;
    return reporting(step);
  }

  // Runs `step`, which may take blocks for the copy (or switch to them), and
  // reports the copy's blocks, under options_.transit_lock: a check never
  // sees a block taken and not yet reported, nor a switch half done.
  template <typename Step>
  int reporting(Step&& step) {
    std::shared_lock<std::shared_mutex> transit;
    if (options_.transit_lock != nullptr) transit = std::shared_lock(*options_.transit_lock);
    const int err = step();
    if (options_.on_copy_blocks) options_.on_copy_blocks(copy_.extents());
    return err;
  }

  // Copies [off, end) chunk by chunk, each under its own shared-lock hold.
  int copy_range(uint64_t off, uint64_t end) {
    for (uint64_t pos = off; pos < end;) {
      const uint64_t stop = end - pos > options_.chunk_bytes ? pos + options_.chunk_bytes : end;
      if (options_.rate != nullptr) options_.rate->take(stop - pos, options_.stop);
      if (int err = under_shared([&] { return file_.copy_to(storage_, copy_, pos, stop, true); }))
        return err;
      copied_ += stop - pos;
      if (options_.copied != nullptr) options_.copied->store(copied_);
      crash_point("migrate.after_chunk");
      pos = stop;
      // glibc's rwlock prefers readers: a writer waiting on this file gets its turn here.
      std::this_thread::yield();
    }
    return 0;
  }

  // Everything taken on the target goes back; the file was never touched.
  int give_up(int err) {
    {
      std::unique_lock guard(lock_);
      file_.watch_changes(false);
    }
    copy_.release(storage_);
    return err;
  }

  Storage& storage_;
  FileData& file_;
  std::shared_mutex& lock_;
  const std::function<bool()>& alive_;
  const MigrateOptions& options_;
  FileData copy_;
  uint32_t target_ = 0;
  uint64_t copied_ = 0;
};

}  // namespace

int catch_up_and_switch(FileData& file, std::shared_mutex& lock, const std::function<bool()>& alive,
                        const MigrateOptions& options, const CatchUpSteps& steps,
                        const uint64_t& copied, MigrateResult& result) {
  for (unsigned pass = 0;; ++pass) {
    std::unique_lock guard(lock);
    if (!alive()) {
      guard.unlock();
      return steps.give_up(-ENOENT);
    }
    std::vector<FileData::ChangedRange> changes = file.take_changes();
    const uint64_t limit = steps.limit();
    uint64_t changed_bytes = 0;
    for (FileData::ChangedRange& r : changes) {
      // Block-aligned, cut at the limit (a truncate records "to the end").
      r.off = r.off / kBlockBytes * kBlockBytes;
      r.end = std::min(r.end, limit);
      if (r.end > r.off) r.end = (r.end + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
      r.end = std::max(r.end, r.off);
      changed_bytes += r.end - r.off;
    }
    if (changed_bytes <= options.final_pass_bytes || pass >= kMaxSharedPasses) {
      const int err = steps.last_pass(changes);
      file.watch_changes(false);
      guard.unlock();
      if (err) {
        steps.release_copy();
        return err;
      }
      result.bytes_copied = copied;
      result.passes = pass;
      return 0;
    }
    guard.unlock();
    for (const FileData::ChangedRange& r : changes)
      if (int err = steps.copy_again(r)) return steps.give_up(err);
  }
}

int migrate_file(Storage& storage, FileData& file, std::shared_mutex& lock, uint32_t target,
                 const std::function<bool()>& alive, const MigrateOptions& options,
                 MigrateResult* result) {
  if (target >= storage.tier_count()) return -EINVAL;
  MigrateResult scratch;
  Migration migration(storage, file, lock, target, alive, options);
  return migration.run(result != nullptr ? *result : scratch);
}

}  // namespace tierfs
