// The Mover: every migration of a mount goes through it (by hand from
// `tierfs migrate` and user.tierfs.tier, queued with --async, and its own
// watermark moves), so the per-tier counters, the in-flight list that
// `tierfs map` shows and the rate limit live in one place. Its thread
// demotes the coldest files of a tier past its high watermark and promotes
// files read often on the tier below one under its low watermark.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tierfs/core/migrate.h"
#include "tierfs/server/inode.h"

namespace tierfs {

class BackingFile;
class Fs;
class TierSpace;  // mover.cc

// What one tier gained and lost through migrations.
struct TierMoveCounts {
  uint64_t bytes_in = 0, bytes_out = 0, files_in = 0, files_out = 0;
};

struct MoverStatus {
  std::string state;  // "off" (no watermarks), "idle", "demoting", "promoting", "queued", "stopped"
  uint64_t rate_bytes_per_s = 0;
  uint64_t interval_ms = 0;
  unsigned promote_reads = 0;
  uint64_t queued = 0;      // --async requests waiting
  uint64_t in_flight = 0;   // migrations copying now
  uint64_t migrations = 0;  // finished with the file moved
  uint64_t failures = 0;    // given up (ENOSPC, file gone, busy, unmount)
  std::vector<TierMoveCounts> tiers;
};

// A migration copying now (user.tierfs.map shows it).
struct MigrationProgress {
  uint32_t to_tier = 0;
  uint64_t copied_bytes = 0;
  uint64_t total_bytes = 0;
};

class Mover {
 public:
  explicit Mover(Fs& fs);
  ~Mover();
  Mover(const Mover&) = delete;
  Mover& operator=(const Mover&) = delete;

  // The thread: started from FUSE_INIT (after a daemon's fork), stopped at
  // unmount; a migration it is running gives up and leaves the file whole.
  void start();
  void stop();

  // Moves one file now on the caller's thread; the file's new data goes to
  // `tier` from then on. 0 or -errno (migrate_file's). `rate_limited` for the
  // mover's own moves. `bytes_moved`: what arrived from other tiers.
  // -EINPROGRESS: a move off the kernel path held by open passthrough
  // handles or shared mappings (their writes never reach the server):
  // recorded, and done by the thread when the last handle is released
  // (close_data_path) or, for a mapping whose descriptor was closed, at the
  // first look after its munmap; a later request for the file replaces it,
  // a crash forgets it.
  int migrate(const InodePtr& inode, uint32_t tier, bool rate_limited = false,
              uint64_t* bytes_moved = nullptr);
  // Queued for the thread (tierfs migrate --async).
  void enqueue(const InodePtr& inode, uint32_t tier);

  // Where a new file of kernel-path tier `tier` goes: `tier`, or, while it
  // is full, the tier its files' new pages go to (mover_spill.cc).
  uint32_t new_file_tier(uint32_t tier) const;
  // Per tier, the kernel-path tier its files' new pages go to while it is
  // full; -1: none (its own nodes).
  std::vector<int> kernel_spills() const;

  MoverStatus status() const;
  std::optional<MigrationProgress> progress(uint64_t ino) const;
  // Per tier, the blocks the copies of migrations in flight hold: in use, and
  // no record names them until the switch (tierfs check of a running mount).
  std::vector<std::vector<BlockRange>> blocks_in_transit() const;
  // Held exclusively, no migration takes blocks for its copy, reports them or
  // switches: hold it (before the log's lock) while reading the log, the
  // allocators and blocks_in_transit().
  std::shared_mutex& transit_lock() { return transit_lock_; }

 private:
  struct InFlight {
    uint32_t to_tier;
    uint64_t total_bytes;
    std::atomic<uint64_t> copied{0};
    std::vector<tierfs_extent> copy_extents;  // guarded by Mover::lock_
  };
  struct Queued {
    std::weak_ptr<Inode> inode;
    uint32_t tier;
  };
  void run();
  // Whether a mapping the server never saw still uses the backing file
  // (BackingFile::open_elsewhere; when nobody can tell, said once, false).
  bool open_elsewhere(const BackingFile& backing);
  // Moves held by such a mapping, asked again at each look: it sends no
  // release when it goes.
  void retry_held();
  // Full kernel-path tiers (mover_spill.cc): a tier whose files hold its
  // capacity (with what they grew since the last look) gives them the next
  // kernel-path tier's policy for new pages; back under its high mark (90 %
  // without watermarks) its own again, the pages they grew meanwhile moved
  // back. The watermark mover demotes its coldest files meanwhile.
  void look_at_kernel_tiers();
  struct Spilled {
    uint32_t from = 0, to = 0;
    uint64_t base_bytes = 0;  // what the file held when its pages started going to `to`
  };
  void spill(uint32_t from, uint32_t to, const std::vector<KernelFile>& files);
  void end_spill(uint32_t tier, const std::vector<KernelFile>& files);
  // Runs `step` on a descriptor of the file's backing file opened for it,
  // unless a migration of the file runs (then it is left for the next
  // look); with `reopen` (a long step) without the inode's lock.
  bool with_backing_fd(const InodePtr& inode, uint32_t tier, bool reopen,
                       const std::function<void(int)>& step);
  void balance();
  void demote(uint32_t from, TierSpace& space);
  void promote(uint32_t into, TierSpace& space);
  bool pinned(const Inode& inode) const;
  // Whether the metadata log takes changes (Journal::has_room). Moves are
  // optional work: while it does not (a full state directory), none starts,
  // the thread keeps its queue and held moves for later and skips its
  // looks; said once when that starts and once when it ends.
  bool log_has_room();
  void set_state(const char* state);

  Fs& fs_;
  RateLimiter rate_;
  bool watermarks_ = false;  // some tier has them: the thread balances
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::shared_mutex transit_lock_;  // MigrateOptions::transit_lock
  mutable std::mutex lock_;         // guards everything below
  std::condition_variable wake_;
  std::deque<Queued> queue_;
  std::unordered_map<uint64_t, std::shared_ptr<InFlight>> in_flight_;
  std::vector<TierMoveCounts> moves_;
  std::vector<int> spill_to_;                      // per tier; -1: not full
  std::vector<uint64_t> last_kernel_used_;         // at the last look that counted
  bool kernel_used_known_ = false;                 // last_kernel_used_ is from the last look
  uint64_t last_store_used_ = 0;                   // the tmpfs together, at the last look
  std::unordered_map<uint64_t, Spilled> spilled_;  // by inode number
  bool warned_no_room_ = false;
  std::atomic<bool> warned_no_lease_{false};
  std::atomic<bool> log_room_{true};                      // as log_has_room() last saw it
  std::unordered_map<uint64_t, Queued> held_by_mapping_;  // by inode number
  uint64_t migrations_ = 0, failures_ = 0;
  const char* state_ = "idle";
};

}  // namespace tierfs
