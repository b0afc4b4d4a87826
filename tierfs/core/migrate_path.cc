// Migration between the data paths: migrate.cc's protocol (see there why the
// catch-up works) with a backing file at one end. The kernel's own writes
// through a passthrough handle never reach FileData, so off the kernel path
// the caller's `quiet` must hold from the start to the switch (the server
// gives no passthrough handle while the file is watched).
#include "tierfs/core/migrate_path.h"

#include <algorithm>
#include <cerrno>
#include <thread>
#include <vector>

#include "tierfs/core/journal.h"

namespace tierfs {

namespace {

uint64_t last_end(const FileData& data) {
  const auto extents = data.extents();
  return extents.empty() ? 0 : extents.back().file_offset + extents.back().length;
}

// One end pair: what the protocol below asks of the source and the copy.
class Ends {
 public:
  virtual ~Ends() = default;
  Ends() = default;
  Ends(const Ends&) = delete;
  Ends& operator=(const Ends&) = delete;
  // Whether the move may start or switch now (the file's lock held uniquely).
  virtual bool quiet() const { return true; }
  // Copies the data (not the holes) of [off, end) to the copy. 0 or -errno.
  virtual int copy(uint64_t off, uint64_t end) = 0;
  // Drops what the copy holds in [off, end) (to be copied again).
  virtual int discard(uint64_t off, uint64_t end) = 0;
  // Past every byte of the file and of the copy.
  virtual uint64_t limit() const = 0;
  // The switch, under the unique lock after the last copies. 0 or -errno
  // (nothing switched).
  virtual int switch_over(MigrateResult& result) = 0;
  // Gives the copy back (no lock held).
  virtual void give_up() = 0;
  // The copy's blocks on server-path tiers (in transit), for on_copy_blocks.
  virtual std::span<const tierfs_extent> copy_blocks() const { return {}; }
};

class ToBacking final : public Ends {
 public:
  ToBacking(Storage& storage, FileData& file, std::unique_ptr<BackingFile> backing,
            std::string name, const std::function<uint64_t()>& size,
            const std::function<void()>& on_switch)
      : storage_(storage),
        file_(file),
        backing_(std::move(backing)),
        name_(std::move(name)),
        size_(size),
        on_switch_(on_switch) {}

  int copy(uint64_t off, uint64_t end) override {
    // As large as the file first (see grow_to). Only the file's size, not
    // the copy's stat, is read per chunk: the copy is ours alone.
    if (int err = backing_->grow_to(size_())) return err;
    std::vector<iovec> iov;
    for (const tierfs_extent& e : file_.extents()) {
      const uint64_t a = std::max<uint64_t>(off, e.file_offset);
      const uint64_t b = std::min<uint64_t>(end, e.file_offset + e.length);
      if (a >= b) continue;
      iov.clear();
      const int64_t got = file_.read(storage_, a, b - a, b, iov);
      if (got < 0) return static_cast<int>(got);
      const int64_t put = backing_->write(a, iov);
      if (put == got) continue;
      // The kernel copies out of region memory: a page lost under it (a
      // file: region cut short, a memory error) is EFAULT, or a short
      // write when it is not the first. Retired like a faulting read's.
      if ((put == -EFAULT || put >= 0) && storage_.retire_faulting(iov) > 0) return -EIO;
      if (put < 0) return static_cast<int>(put);
      return -ENOSPC;  // tmpfs short write: it is full
    }
    return 0;
  }
  int discard(uint64_t off, uint64_t end) override {
    end = std::min(end, limit());
    return end > off ? backing_->punch_hole(off, end - off) : 0;
  }
  uint64_t limit() const override { return std::max(last_end(file_), backing_->facts().size); }
  int switch_over(MigrateResult& result) override {
    if (int err = backing_->set_size(size_())) return err;
    result.bytes_from_tier.assign(storage_.tier_count(), 0);
    for (const tierfs_extent& e : file_.extents()) result.bytes_from_tier[e.tier] += e.length;
    result.bytes_moved = backing_->facts().allocated_bytes;
    crash_point("migrate.before_switch");
    // Named before the record: a crash between them leaves a backing file
    // whose inode's record still lists extents, which adoption removes.
    if (int err = backing_->link(name_)) return err;
    crash_point("migrate.after_link");
    file_.switch_to_backing(storage_, std::move(backing_), on_switch_);
    return 0;
  }
  void give_up() override { backing_.reset(); }  // unnamed: the tmpfs frees it

 private:
  Storage& storage_;
  FileData& file_;
  std::unique_ptr<BackingFile> backing_;
  std::string name_;
  const std::function<uint64_t()>& size_;
  const std::function<void()>& on_switch_;
};

class FromBacking final : public Ends {
 public:
  FromBacking(Storage& storage, FileData& file, uint32_t target, const std::function<bool()>& quiet,
              const std::function<void()>& on_switch)
      : storage_(storage), file_(file), quiet_(quiet), on_switch_(on_switch) {
    copy_.set_preferred_tier(target);
    copy_.set_spill(false);
  }

  bool quiet() const override { return quiet_(); }
  int copy(uint64_t off, uint64_t end) override {
    const BackingFile* backing = file_.backing();
    if (backing == nullptr) return -ENOENT;
    std::vector<char> buffer;
    return backing->read_data(off, end, buffer, [&](uint64_t at, std::span<const char> bytes) {
      // FileData::write takes iovecs, which are not const.
      const iovec piece{const_cast<char*>(bytes.data()), bytes.size()};
      const int64_t put = copy_.write(storage_, at, std::span(&piece, 1));
      if (put < 0) return static_cast<int>(put);
      return put == static_cast<int64_t>(bytes.size()) ? 0 : -ENOSPC;
    });
  }
  int discard(uint64_t off, uint64_t end) override {
    copy_.discard(storage_, off, std::min(end, limit()));
    return 0;
  }
  uint64_t limit() const override {
    const uint64_t size = file_.backing() ? file_.backing()->facts().size : 0;
    const uint64_t copy_end = last_end(copy_);
    const uint64_t end = std::max(size, copy_end);
    return (end + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
  }
  int switch_over(MigrateResult& result) override {
    if (!quiet_()) return -EBUSY;
    BackingFile* backing = file_.backing();
    if (backing == nullptr) return -ENOENT;
    const BackingFile::Facts facts = backing->facts();
    result.file_size = facts.size;
    result.mtime_ns = facts.mtime_ns;
    result.ctime_ns = facts.ctime_ns;
    result.bytes_from_tier.assign(storage_.tier_count(), 0);
    if (backing->tier() < result.bytes_from_tier.size())
      result.bytes_from_tier[backing->tier()] = facts.allocated_bytes;
    result.bytes_moved = copy_.allocated_bytes();
    crash_point("migrate.before_switch");
    std::unique_ptr<BackingFile> old = file_.switch_to_extents(storage_, copy_, on_switch_);
    crash_point("migrate.before_backing_removed");
    old->remove();
    return 0;
  }
  void give_up() override { copy_.release(storage_); }
  std::span<const tierfs_extent> copy_blocks() const override { return copy_.extents(); }

 private:
  Storage& storage_;
  FileData& file_;
  FileData copy_;
  const std::function<bool()>& quiet_;
  const std::function<void()>& on_switch_;
};

class BetweenBackings final : public Ends {
 public:
  BetweenBackings(Storage& storage, FileData& file, std::unique_ptr<BackingFile> copy,
                  std::string name, std::string retired_name, const std::function<bool()>& quiet,
                  const std::function<void()>& on_switch)
      : storage_(storage),
        file_(file),
        copy_(std::move(copy)),
        name_(std::move(name)),
        retired_name_(std::move(retired_name)),
        quiet_(quiet),
        on_switch_(on_switch) {}

  bool quiet() const override { return quiet_(); }
  int copy(uint64_t off, uint64_t end) override {
    const BackingFile* from = file_.backing();
    if (from == nullptr) return -ENOENT;
    return copy_->copy_data_from(*from, off, end);
  }
  int discard(uint64_t off, uint64_t end) override {
    end = std::min(end, limit());
    return end > off ? copy_->punch_hole(off, end - off) : 0;
  }
  uint64_t limit() const override {
    const uint64_t size = file_.backing() ? file_.backing()->facts().size : 0;
    const uint64_t end = std::max(size, copy_->facts().size);
    return (end + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
  }
  int switch_over(MigrateResult& result) override {
    if (!quiet_()) return -EBUSY;
    BackingFile* from = file_.backing();
    if (from == nullptr) return -ENOENT;
    const BackingFile::Facts facts = from->facts();
    if (int err = copy_->set_size(facts.size)) return err;
    // A move is no change of the file's bytes: its mtime stays.
    if (int err = copy_->set_mtime(facts.mtime_ns)) return err;
    result.file_size = facts.size;
    result.bytes_from_tier.assign(storage_.tier_count(), 0);
    if (from->tier() < result.bytes_from_tier.size())
      result.bytes_from_tier[from->tier()] = facts.allocated_bytes;
    result.bytes_moved = copy_->facts().allocated_bytes;
    crash_point("migrate.before_switch");
    if (int err = from->rename(retired_name_, from->tier())) return err;
    crash_point("migrate.after_retire");
    if (int err = copy_->link(name_)) return err;
    crash_point("migrate.after_link");
    std::unique_ptr<BackingFile> old = file_.replace_backing(std::move(copy_), on_switch_);
    crash_point("migrate.before_backing_removed");
    old->remove();
    return 0;
  }
  void give_up() override { copy_.reset(); }  // unnamed: the tmpfs frees it

 private:
  Storage& storage_;
  FileData& file_;
  std::unique_ptr<BackingFile> copy_;
  std::string name_;
  std::string retired_name_;
  const std::function<bool()>& quiet_;
  const std::function<void()>& on_switch_;
};

// migrate.cc's Migration, over an Ends.
class PathMigration {
 public:
  PathMigration(Ends& ends, FileData& file, std::shared_mutex& lock,
                const std::function<bool()>& alive, const MigrateOptions& options)
      : ends_(ends), file_(file), lock_(lock), alive_(alive), options_(options) {}

  int run(MigrateResult& result) {
    uint64_t plan_end = 0;
    {
      std::unique_lock guard(lock_);
      if (!alive_()) return -ENOENT;
      if (file_.watching_changes() || !ends_.quiet()) return -EBUSY;
      plan_end = ends_.limit();
      file_.watch_changes(true);
    }
    if (int err = copy_range(0, plan_end)) return give_up(err);
    CatchUpSteps steps;
    steps.limit = [&] { return ends_.limit(); };
    steps.last_pass = [&](const std::vector<FileData::ChangedRange>& changes) {
      return reporting([&] {
        for (const FileData::ChangedRange& r : changes) {
          if (int failed = ends_.discard(r.off, r.end)) return failed;
          if (int failed = ends_.copy(r.off, r.end)) return failed;
          copied_ += r.end - r.off;
        }
        return ends_.switch_over(result);
      });
    };
    steps.copy_again = [&](const FileData::ChangedRange& r) {
      if (int err = under_shared([&] { return ends_.discard(r.off, r.end); })) return err;
      return copy_range(r.off, r.end);
    };
    steps.release_copy = [&] { ends_.give_up(); };
    steps.give_up = [&](int err) { return give_up(err); };
    return catch_up_and_switch(file_, lock_, alive_, options_, steps, copied_, result);
  }

 private:
  template <typename Step>
  int under_shared(Step&& step) {
    if (options_.stop != nullptr && options_.stop->load()) return -ECANCELED;
    std::shared_lock guard(lock_);
    if (!alive_()) return -ENOENT;
    return reporting(step);
  }

  template <typename Step>
  int reporting(Step&& step) {
    std::shared_lock<std::shared_mutex> transit;
    if (options_.transit_lock != nullptr) transit = std::shared_lock(*options_.transit_lock);
    const int err = step();
    if (options_.on_copy_blocks) options_.on_copy_blocks(ends_.copy_blocks());
    return err;
  }

  int copy_range(uint64_t off, uint64_t end) {
    for (uint64_t pos = off; pos < end;) {
      const uint64_t stop = end - pos > options_.chunk_bytes ? pos + options_.chunk_bytes : end;
      if (options_.rate != nullptr) options_.rate->take(stop - pos, options_.stop);
      if (int err = under_shared([&] { return ends_.copy(pos, stop); })) return err;
      copied_ += stop - pos;
      if (options_.copied != nullptr) options_.copied->store(copied_);
      crash_point("migrate.after_chunk");
      pos = stop;
      std::this_thread::yield();
    }
    return 0;
  }

  int give_up(int err) {
    {
      std::unique_lock guard(lock_);
      file_.watch_changes(false);
    }
    ends_.give_up();
    return err;
  }

  Ends& ends_;
  FileData& file_;
  std::shared_mutex& lock_;
  const std::function<bool()>& alive_;
  const MigrateOptions& options_;
  uint64_t copied_ = 0;
};

}  // namespace

int migrate_between_backings(Storage& storage, FileData& file, std::shared_mutex& lock,
                             std::unique_ptr<BackingFile> copy, std::string name,
                             std::string retired_name, const std::function<bool()>& alive,
                             const std::function<bool()>& quiet, const MigrateOptions& options,
                             MigrateResult* result) {
  if (!copy) return -EINVAL;
  MigrateResult scratch;
  BetweenBackings ends(storage, file, std::move(copy), std::move(name), std::move(retired_name),
                       quiet, options.on_switch);
  PathMigration migration(ends, file, lock, alive, options);
  return migration.run(result != nullptr ? *result : scratch);
}

int migrate_to_backing(Storage& storage, FileData& file, std::shared_mutex& lock,
                       std::unique_ptr<BackingFile> backing, std::string name,
                       const std::function<bool()>& alive, const std::function<uint64_t()>& size,
                       const MigrateOptions& options, MigrateResult* result) {
  if (!backing) return -EINVAL;
  MigrateResult scratch;
  ToBacking ends(storage, file, std::move(backing), std::move(name), size, options.on_switch);
  PathMigration migration(ends, file, lock, alive, options);
  return migration.run(result != nullptr ? *result : scratch);
}

int migrate_from_backing(Storage& storage, FileData& file, std::shared_mutex& lock, uint32_t target,
                         const std::function<bool()>& alive, const std::function<bool()>& quiet,
                         const MigrateOptions& options, MigrateResult* result) {
  if (target >= storage.tier_count()) return -EINVAL;
  MigrateResult scratch;
  FromBacking ends(storage, file, target, quiet, options.on_switch);
  PathMigration migration(ends, file, lock, alive, options);
  return migration.run(result != nullptr ? *result : scratch);
}

}  // namespace tierfs
