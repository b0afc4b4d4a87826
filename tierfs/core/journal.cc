// The metadata log's files: replay (checkpoint, then the journal's frames
// up to the first damaged one), commit (one pwrite per change), and
// checkpoints (temporary file, fsync, rename, journal emptied). The
// journal's first frame names the checkpoint generation it continues, so a
// crash between the rename and the emptying leaves a journal that replay
// recognises as already contained in the checkpoint.
#include "tierfs/core/journal.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <malloc.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "tierfs/core/journal_format.h"

namespace tierfs {

namespace {

constexpr const char* kJournal = "journal";
constexpr const char* kCheckpoint = "checkpoint";
constexpr const char* kCheckpointTemp = "checkpoint.tmp";
// The journal is compacted when it passes max(this, the last checkpoint's size):
// replay then reads at most about twice the image.
constexpr uint64_t kMinCheckpointBound = uint64_t{32} << 20;
constexpr size_t kCheckpointFrameBytes = size_t{1} << 20;
// Space kept allocated past the journal's end, and the rest of it below
// which more is asked for: a change is a frame of 100-300 bytes, so the
// low mark takes about a thousand changes already admitted when the state
// directory's file system is full.
constexpr uint64_t kReserveBytes = uint64_t{1} << 20;
constexpr uint64_t kReserveLowBytes = uint64_t{256} << 10;
// What changes that give space back (unlink) leave of the reserve while the
// state directory is full: a few hundred frames for changes that passed their
// check and for close and fsync, which are never refused.
constexpr uint64_t kReserveFloorBytes = uint64_t{64} << 10;

// Testing knob (documented with the crash points): a small bound makes the
// crash test cross checkpoints.
uint64_t min_checkpoint_bound() {
  if (const char* v = getenv("TIERFS_JOURNAL_CHECKPOINT_BYTES"); v && *v)
    return std::strtoull(v, nullptr, 10);
  return kMinCheckpointBound;
}

struct CrashAt {
  std::string point;
  std::atomic<int64_t> left{0};
};

CrashAt& crash_at() {
  static CrashAt* at = [] {
    auto* c = new CrashAt;
    if (const char* v = getenv("TIERFS_CRASH_AT"); v && *v) {
      std::string_view s = v;
      const size_t colon = s.rfind(':');
      c->point = std::string(s.substr(0, colon));
      c->left = colon == std::string_view::npos
                    ? 1
                    : std::strtoll(std::string(s.substr(colon + 1)).c_str(), nullptr, 10);
    }
    return c;
  }();
  return *at;
}

// The whole file, or empty when it does not exist.
std::string read_file(int dir_fd, const char* name, const std::string& dir_path, bool& exists) {
  exists = false;
  const int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return {};
    throw std::runtime_error(fmt::format("{}/{}: {}", dir_path, name, strerror(errno)));
  }
  exists = true;
  std::string bytes;
  char chunk[1 << 16];
  for (;;) {
    const ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      throw std::runtime_error(fmt::format("{}/{}: {}", dir_path, name, strerror(err)));
    }
    if (n == 0) break;
    bytes.append(chunk, static_cast<size_t>(n));
  }
  close(fd);
  return bytes;
}

}  // namespace

bool crash_due(std::string_view name) {
  CrashAt& at = crash_at();
  if (at.point.empty() || at.point != name) return false;
  return at.left.fetch_sub(1) == 1;
}

void crash_point(std::string_view name) {
  if (crash_due(name)) raise(SIGKILL);
}

MetadataImage replay_state(int dir_fd, const std::string& dir_path, ReplayReport& report,
                           bool keep_unlinked) {
  const auto started = std::chrono::steady_clock::now();
  MetadataImage image;
  bool exists = false;
  const std::string checkpoint = read_file(dir_fd, kCheckpoint, dir_path, exists);
  uint64_t generation = 0;
  if (exists) {
    FrameReader frames(checkpoint);
    bool first = true, complete = false;
    while (auto payload = frames.next()) {
      const ApplyResult r = apply_records(image, *payload);
      if (!r.ok || (first && r.header_kind != 'C')) break;
      if (first) generation = r.generation;
      first = false;
      if (r.saw_end) {
        complete = true;
        break;
      }
    }
    if (!complete)
      throw std::runtime_error(fmt::format(
          "{}/{}: damaged at byte {} ({}); `tierfs check` shows the state, `tierfs mount "
          "--fresh` starts empty",
          dir_path, kCheckpoint, frames.good_bytes(),
          frames.stop_reason().empty() ? "no end record" : frames.stop_reason()));
    report.had_checkpoint = true;
  }
  report.generation = generation;

  const std::string journal = read_file(dir_fd, kJournal, dir_path, exists);
  if (exists) {
    FrameReader frames(journal);
    bool first = true;
    size_t applied_end = 0;
    while (auto payload = frames.next()) {
      if (first) {
        // Only the header decides whether this journal continues the checkpoint.
        MetadataImage scratch;
        const ApplyResult r = apply_records(scratch, *payload);
        if (!r.ok || r.header_kind != 'J') {
          report.torn_reason = "no journal header";
          break;
        }
        if (r.generation != generation) {
          report.stale_journal = true;
          break;
        }
        first = false;
        applied_end = frames.good_bytes();
        continue;
      }
      // A frame that checks out but does not decode is damage too: stop before it.
      const ApplyResult r = apply_records(image, *payload);
      if (!r.ok) {
        report.torn_reason = "undecodable frame";
        break;
      }
      ++report.journal_frames;
      applied_end = frames.good_bytes();
    }
    report.journal_bytes = applied_end;
    if (!report.stale_journal) {
      report.torn_bytes = journal.size() - applied_end;
      if (report.torn_reason.empty()) report.torn_reason = frames.stop_reason();
    }
  }
  if (!keep_unlinked) report.dropped_unlinked = drop_unlinked(image);
  for (const auto& [ino, meta] : image.inodes) image.max_ino = std::max(image.max_ino, ino);
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return image;
}

Journal::Journal(int dir_fd, std::string dir_path, LogDurability durability)
    : dir_fd_(dir_fd), dir_path_(std::move(dir_path)), durability_(durability) {}

Journal::~Journal() {
  if (journal_fd_ >= 0) close(journal_fd_);
}

std::unique_ptr<Journal> Journal::open(int dir_fd, std::string dir_path, bool fresh,
                                       LogDurability durability) {
  std::unique_ptr<Journal> j(new Journal(dir_fd, std::move(dir_path), durability));
  if (fresh) {
    unlinkat(dir_fd, kCheckpoint, 0);
    unlinkat(dir_fd, kCheckpointTemp, 0);
    unlinkat(dir_fd, kJournal, 0);
  } else {
    j->image_ = replay_state(dir_fd, j->dir_path_, j->report_);
    j->generation_ = j->report_.generation;
  }
  j->journal_fd_ = openat(dir_fd, kJournal, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (j->journal_fd_ < 0)
    throw std::runtime_error(fmt::format("{}/{}: {}", j->dir_path_, kJournal, strerror(errno)));
  if (int err = j->checkpoint())
    throw std::runtime_error(
        fmt::format("{}: cannot write a checkpoint: {}", j->dir_path_, strerror(-err)));
  return j;
}

int Journal::write_all(int fd, std::string_view bytes, uint64_t offset) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? -errno : -EIO;
    done += static_cast<size_t>(n);
  }
  return 0;
}

int Journal::commit(const RecordBuilder& records) {
  if (records.empty()) return 0;
  std::lock_guard guard(lock_);
  if (have_image_) {
    // The replayed image stops being current with the first change.
    image_ = MetadataImage{};
    have_image_ = false;
  }
  if (journal_bytes_ > checkpoint_bound_) {
    if (const int err = checkpoint_locked(); err != 0) {
      // The journal keeps every frame (a checkpoint replaces it only once
      // it is complete): tried again after another kReserveBytes, not on
      // every change, while the state directory has no room for one.
      checkpoint_bound_ = journal_bytes_ + kReserveBytes;
      if (!checkpoint_failed_)
        spdlog::warn("{}: cannot write a checkpoint: {}; the journal keeps growing", dir_path_,
                     strerror(-err));
      checkpoint_failed_ = true;
    } else {
      checkpoint_failed_ = false;
    }
  }
  reserve_locked();
  frame_.clear();
  if (journal_bytes_ == 0) {
    // A checkpoint emptied the journal and could not write its header.
    RecordBuilder header;
    header.header('J', generation_);
    append_frame(frame_, header.bytes());
  }
  append_frame(frame_, records.bytes());
  crash_point("journal.before_write");
  if (crash_due("journal.torn_write")) {
    // Half a frame reaches the file, then the process dies: replay must stop before it.
    write_all(journal_fd_, std::string_view(frame_).substr(0, frame_.size() / 2), journal_bytes_);
    raise(SIGKILL);
  }
  if (int err = write_all(journal_fd_, frame_, journal_bytes_)) {
    // Nothing half-written stays: the next frame starts where this one did.
    if (ftruncate(journal_fd_, static_cast<off_t>(journal_bytes_)) != 0) err = -errno;
    reserved_bytes_ = journal_bytes_;  // the truncation gave the rest back
    if (!write_failed_)
      spdlog::error("{}/{}: cannot append: {}; changes from now on do not survive a crash",
                    dir_path_, kJournal, strerror(-err));
    write_failed_ = true;
    return err;
  }
  journal_bytes_ += frame_.size();
  crash_point("journal.after_write");
  return 0;
}

void Journal::reserve_locked() {
  if (reserved_bytes_ >= journal_bytes_ + kReserveLowBytes) return;
  const uint64_t want = journal_bytes_ + kReserveBytes;
  if (fallocate(journal_fd_, FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(want)) == 0) {
    reserved_bytes_ = want;
    if (!room_) spdlog::info("{}/{}: space again, changes accepted", dir_path_, kJournal);
    room_ = true;
    return;
  }
  const int err = errno;
  if (err == EOPNOTSUPP) {
    // A file system that cannot reserve: appends take their chance, as before.
    reserved_bytes_ = want;
    return;
  }
  if (room_)
    spdlog::error("{}/{}: cannot reserve log space: {}; changes are refused (ENOSPC) until it can",
                  dir_path_, kJournal, strerror(err));
  room_ = false;
}

bool Journal::has_room() {
  if (room_.load(std::memory_order_relaxed)) return true;
  std::lock_guard guard(lock_);
  reserve_locked();
  return room_.load();
}

bool Journal::has_reserve() {
  if (has_room()) return true;
  std::lock_guard guard(lock_);
  return reserved_bytes_ >= journal_bytes_ + kReserveFloorBytes;
}

int Journal::sync() const {
  crash_point("journal.before_sync");
  return sync_to_storage(journal_fd_, true);
}

int Journal::sync_to_storage(int fd, bool data_only) const {
  if (durability_ == LogDurability::process) return 0;
  ++storage_syncs_;
  return (data_only ? fdatasync(fd) : fsync(fd)) == 0 ? 0 : -errno;
}

int Journal::checkpoint() {
  std::lock_guard guard(lock_);
  return checkpoint_locked();
}

int Journal::checkpoint_locked() {
  const uint64_t generation = generation_ + 1;
  std::string bytes;
  {
    RecordBuilder header;
    header.header('C', generation);
    append_frame(bytes, header.bytes());
  }
  if (have_image_) {
    encode_image(image_, bytes, kCheckpointFrameBytes);
  } else {
    // No image in memory (the server holds the live one): the files are the
    // image. Inodes unlinked while open stay; replay drops them.
    ReplayReport report;
    encode_image(replay_state(dir_fd_, dir_path_, report, true), bytes, kCheckpointFrameBytes);
    // The image was transient: hand its pages back instead of keeping the heap at its peak.
    malloc_trim(0);
  }
  const int fd =
      openat(dir_fd_, kCheckpointTemp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -errno;
  int err = write_all(fd, bytes, 0);
  if (!err) err = sync_to_storage(fd, false);
  close(fd);
  if (err) {
    unlinkat(dir_fd_, kCheckpointTemp, 0);
    return err;
  }
  crash_point("checkpoint.before_rename");
  if (renameat(dir_fd_, kCheckpointTemp, dir_fd_, kCheckpoint) != 0) return -errno;
  sync_to_storage(dir_fd_, false);
  crash_point("checkpoint.after_rename");
  // The journal continues the new checkpoint; its old frames are in it.
  RecordBuilder header;
  header.header('J', generation);
  std::string first;
  append_frame(first, header.bytes());
  if (ftruncate(journal_fd_, 0) != 0) return -errno;
  // From here the journal continues the new checkpoint, whatever else fails:
  // a header it could not take now goes before the next frame (commit).
  generation_ = generation;
  journal_bytes_ = 0;
  reserved_bytes_ = 0;  // the truncation gave it back
  if (int werr = write_all(journal_fd_, first, 0)) return werr;
  journal_bytes_ = first.size();
  reserve_locked();
  checkpoint_bound_ = std::max<uint64_t>(min_checkpoint_bound(), bytes.size());
  ++checkpoints_;
  return 0;
}

void Journal::with_image(const std::function<void(const MetadataImage&)>& visit) const {
  std::lock_guard guard(lock_);
  ReplayReport report;
  visit(replay_state(dir_fd_, dir_path_, report, true));
  malloc_trim(0);
}

void Journal::release_image() {
  std::lock_guard guard(lock_);
  image_ = MetadataImage{};
  have_image_ = false;
}

uint64_t Journal::journal_bytes() const {
  std::lock_guard guard(lock_);
  return journal_bytes_;
}

uint64_t Journal::checkpoints_written() const {
  std::lock_guard guard(lock_);
  return checkpoints_;
}

}  // namespace tierfs
