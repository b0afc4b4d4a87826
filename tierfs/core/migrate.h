// Migration: moving a file's data to another tier (or another layout over the
// same regions) while the file stays open for reading and writing. The
// FileData primitives (copy_to, watch_changes, adopt_extents) do the work;
// this file holds the protocol around the inode's lock and the rate limit.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <vector>

#include "tierfs/core/file_data.h"
#include "tierfs/core/storage.h"

namespace tierfs {

// Bytes per second shared by every migration that holds it (the mover's
// rate limit): a migration asks before each chunk and sleeps until the
// budget allows it. 0 bytes per second: no limit.
class RateLimiter {
 public:
  explicit RateLimiter(uint64_t bytes_per_s = 0);
  void set_rate(uint64_t bytes_per_s);
  uint64_t rate() const;
  // Waits until `bytes` fit in the budget or `stop` turns true.
  void take(uint64_t bytes, const std::atomic<bool>* stop);

 private:
  mutable std::mutex lock_;
  uint64_t bytes_per_s_ = 0;
  std::chrono::steady_clock::time_point next_free_{};
};

struct MigrateOptions {
  uint64_t chunk_bytes = uint64_t{1} << 20;  // copied per shared-lock hold
  RateLimiter* rate = nullptr;               // nullptr: as fast as memory goes
  const std::atomic<bool>* stop = nullptr;   // true: give up (-ECANCELED), file untouched
  // Bytes copied so far, after each chunk (progress for `tierfs map`).
  std::atomic<uint64_t>* copied = nullptr;
  // Changed bytes at most this many left for the final pass under the unique
  // lock; more, and another pass runs under the shared lock first.
  uint64_t final_pass_bytes = uint64_t{4} << 20;
  // Called under the unique lock at the switch, after the file took the new
  // extents and before its old blocks are freed: logs the switch (the server
  // logs the inode with its new preferred tier, so a crash keeps both or
  // neither). Empty: FileData::adopt_extents logs the extent list alone.
  std::function<void()> on_switch;
  // Called after each step that may have changed the blocks of the copy (the
  // file's lock held), with the copy's extents: the blocks in transit, which
  // no record names until the switch (tierfs check of a running mount).
  std::function<void(std::span<const tierfs_extent>)> on_copy_blocks;
  // Held shared from each such step until on_copy_blocks has reported it,
  // and across the switch (its record logged, the old blocks freed): a check
  // that holds it exclusively sees each block free, owned by a file, or
  // reported. Taken after the file's lock and before the log's.
  std::shared_mutex* transit_lock = nullptr;
};

struct MigrateResult {
  uint64_t bytes_moved = 0;               // allocated bytes now on the target
  uint64_t bytes_copied = 0;              // including re-copies of changed ranges
  std::vector<uint64_t> bytes_from_tier;  // per tier index: what left it
  unsigned passes = 0;                    // catch-up passes before the switch
  // Off the kernel path (migrate_path.h): the backing file's size and times
  // at the switch, which the inode takes in the switch's record.
  uint64_t file_size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
};

// The catch-up and the switch every migration shares (migrate.cc says why it
// works), after the first copy of the whole file: under the unique lock the
// changes recorded meanwhile are taken (block-aligned, cut at `limit`); few
// enough (options.final_pass_bytes, or after three passes) and `last_pass`
// copies them and switches, still under that lock; else the lock is let go
// and `copy_again` copies each of them again (taking its own lock holds),
// and the next pass begins. Changes stop being watched at the end either
// way; `release_copy` runs (no lock held) when the last pass failed, and
// `give_up` (no lock held) when anything before it did. 0 or -errno; on 0,
// result's bytes_copied (`copied`, which the steps count) and passes.
struct CatchUpSteps {
  std::function<uint64_t()> limit;  // past every byte of the file and the copy
  std::function<int(const std::vector<FileData::ChangedRange>&)> last_pass;
  std::function<int(const FileData::ChangedRange&)> copy_again;
  std::function<void()> release_copy;
  std::function<int(int)> give_up;
};
int catch_up_and_switch(FileData& file, std::shared_mutex& lock, const std::function<bool()>& alive,
                        const MigrateOptions& options, const CatchUpSteps& steps,
                        const uint64_t& copied, MigrateResult& result);

// Moves every extent of `file` to tier `target`.
//
// `lock` is the inode's lock: the copy runs in chunks under the shared lock,
// so readers and writers keep going between (and readers during) chunks;
// the calls that change the file meanwhile are recorded (watch_changes) and
// their ranges copied again; the switch runs under the unique lock, in one
// FileData::adopt_extents. `alive` is called under the lock and says whether
// the file still has data (an unlinked, closed file has none).
//
// Returns 0, -ENOSPC when the target tier cannot hold the file (everything
// taken on the target is given back, the file stays whole where it was),
// -EBUSY when another migration is moving the file, -ENOENT when the file
// lost its data, -ECANCELED when `stop` turned true.
int migrate_file(Storage& storage, FileData& file, std::shared_mutex& lock, uint32_t target,
                 const std::function<bool()>& alive, const MigrateOptions& options,
                 MigrateResult* result);

}  // namespace tierfs
