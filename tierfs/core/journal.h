// Journal: the crash-consistent metadata log of one mount, in its state
// directory. Each change is one frame appended with write(2) to `journal`
// (the page cache keeps it when the process dies), replayed at the next
// mount on top of `checkpoint` (a full image written to a temporary file,
// fsync'd and renamed) and compacted into a new checkpoint when the journal
// passes a size bound. See docs/architecture.md, "Metadata log".
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "tierfs/core/metadata.h"

namespace tierfs {

// What a replay found (tierfs check and the mount log print it).
struct ReplayReport {
  bool had_checkpoint = false;
  uint64_t generation = 0;      // of the checkpoint (0: none)
  uint64_t journal_frames = 0;  // frames applied from the journal
  uint64_t journal_bytes = 0;   // bytes of those frames
  uint64_t torn_bytes = 0;      // bytes after the last good frame (a torn tail), ignored
  std::string torn_reason;      // why replay stopped early; empty at a clean end
  bool stale_journal = false;   // journal of an older generation (checkpoint already has it)
  size_t dropped_unlinked = 0;  // inodes with no name left (unlinked while open)
  double seconds = 0;           // reading and applying
};

// Reads the checkpoint and journal in `dir_fd` without changing them.
// Throws std::runtime_error (one line naming the file and byte) when the
// checkpoint is damaged: it was complete when it was renamed into place.
// keep_unlinked: leave the inodes with link count 0 in the image (tierfs
// check: their blocks must not be anybody else's either).
MetadataImage replay_state(int dir_fd, const std::string& dir_path, ReplayReport& report,
                           bool keep_unlinked = false);

// What the log must outlive. Every append is a write(2): once it returns,
// the page cache holds the frame past the server's death (kill -9).
// - storage: also past the machine's (power loss, a kernel crash): sync()
//   fdatasyncs and checkpoints are fsync'd before and after their rename.
//   For mounts whose bytes can outlive the machine (file: and dax: regions).
// - process: only past the server's: no fsync or fdatasync, which would buy
//   nothing when the bytes the log describes are all in memory (numa:
//   regions) and cost a disk flush per fsync(2) where the state directory is
//   not on a tmpfs.
enum class LogDurability { storage, process };

class Journal {
 public:
  // Opens the log in the state directory `dir_fd` (path for messages).
  // fresh: discards any previous log and starts empty; otherwise replays it
  // (replay_state) and writes a new checkpoint of the result, so the journal
  // starts empty and a torn tail is gone for good.
  static std::unique_ptr<Journal> open(int dir_fd, std::string dir_path, bool fresh,
                                       LogDurability durability = LogDurability::storage);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // The replayed image, for the server to build its inodes from (before it
  // serves); release_image() frees it: from then on the server's inodes are
  // the live metadata, and checkpoints and with_image() read the files back
  // (no second copy of every inode in memory: docs/architecture.md).
  const MetadataImage& image() const { return image_; }
  void release_image();
  const ReplayReport& replay_report() const { return report_; }

  // Appends the records as one frame; writes a checkpoint first when the
  // journal has grown past its bound.
  // Returns 0 or -errno (the log could not be written: the change is in
  // memory but would not survive a crash; logged once).
  int commit(const RecordBuilder& records);
  // Whether the log can take more changes: it keeps space allocated ahead of
  // its end (fallocate, kReserveBytes), and once its file system cannot
  // give more (a full state directory) a change that would be acknowledged
  // without reaching the log must be refused instead (ENOSPC). What is left
  // of the reserve then takes the changes already under way. Tries to
  // allocate again each time it is asked while full.
  bool has_room();
  // Whether a change that only gives space back (unlink, rmdir) may still
  // run on what is left of the reserve: while at least kReserveFloorBytes
  // of it are left. Below that those are refused too, and the rest is for
  // the changes already admitted and for close and fsync, which cannot be.
  bool has_reserve();
  // fdatasync of the journal (fsync of a file); nothing with LogDurability::process.
  int sync() const;
  // Compacts now: checkpoint, journal emptied (clean unmount of a persistent mount).
  int checkpoint();
  // Runs `visit` on the image the log's files hold, under the journal's lock
  // (tierfs check on a live mount; inodes unlinked while open included).
  void with_image(const std::function<void(const MetadataImage&)>& visit) const;
  uint64_t journal_bytes() const;
  uint64_t checkpoints_written() const;
  // fsync and fdatasync calls made so far (0 with LogDurability::process).
  uint64_t storage_syncs() const { return storage_syncs_.load(); }

 private:
  Journal(int dir_fd, std::string dir_path, LogDurability durability);
  int checkpoint_locked();
  // Keeps kReserveBytes allocated past the journal's end once fewer than
  // kReserveLowBytes are; room_ says whether it could.
  void reserve_locked();
  // fsync (data_only: fdatasync) of fd when the log must outlive the machine.
  int sync_to_storage(int fd, bool data_only) const;
  int write_all(int fd, std::string_view bytes, uint64_t offset);

  const int dir_fd_;
  const std::string dir_path_;
  const LogDurability durability_;
  mutable std::atomic<uint64_t> storage_syncs_{0};
  int journal_fd_ = -1;
  mutable std::mutex lock_;
  MetadataImage image_;
  bool have_image_ = true;
  ReplayReport report_;
  uint64_t generation_ = 0;
  uint64_t journal_bytes_ = 0;
  uint64_t reserved_bytes_ = 0;    // allocated in the journal file (KEEP_SIZE), from offset 0
  std::atomic<bool> room_{true};   // false from a failed reservation to the next good one
  uint64_t checkpoint_bound_ = 0;  // checkpoint when the journal passes this
  uint64_t checkpoints_ = 0;
  bool write_failed_ = false;       // logged once
  bool checkpoint_failed_ = false;  // logged once per episode
  std::string frame_;               // reused for each commit
};

// Test hook: TIERFS_CRASH_AT=<point>:<count> kills the process (SIGKILL) the
// count-th time execution reaches the named point. Always compiled (a
// getenv once at start-up, one compare per call); the points are listed in
// docs/operations.md.
void crash_point(std::string_view name);
// True (once) when the named point is due: for points that do something
// before dying (a torn write).
bool crash_due(std::string_view name);

}  // namespace tierfs
