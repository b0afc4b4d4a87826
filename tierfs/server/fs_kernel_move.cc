// In-place moves between kernel-path tiers that share a tmpfs
// (backing_store.h): no byte crosses the server. The file's name records
// its new tier ("<ino>.<tier>.moving"), its backing file gets the new tier's
// shared policy (pages allocated from then on follow it) and the kernel
// moves the pages already there (mbind MPOL_MF_MOVE_ALL, then move_pages for
// those on the wrong node of the new set); the last rename ends the move.
// Readers, writers and mappings carry on meanwhile: the kernel moves pages
// under them. A crash in between leaves a ".moving" name, whose move the
// next server finishes (Fs::adopt_backing_files).
//
// Also the kernel-path tiers' accounting: a tier's use is the bytes its
// files' backing files hold, whatever tmpfs they share.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tierfs/core/journal.h"
#include "tierfs/core/migrate.h"
#include "tierfs/server/backing_store.h"
#include "tierfs/server/operations.h"

namespace tierfs {

int Fs::move_in_place(const InodePtr& inode, uint32_t to, MigrateResult& result) {
  const BackingStore* store = backing_store_.get();
  if (store == nullptr) return -EINVAL;
  BackingFile::Fd fd(-1);
  uint32_t from = 0;
  {
    std::unique_lock guard(inode->lock);
    BackingFile* backing = inode->data_released ? nullptr : inode->data->backing();
    if (backing == nullptr) return -ENOENT;
    from = backing->tier();
    if (from == to) return 0;
    std::string why;
    if (!store->moves_in_place(from, to, why)) {
      spdlog::info("migrate inode {}: {}", inode->ino, why);
      return -EXDEV;
    }
    // The pages are moved through a descriptor of our own, opened under the
    // lock: an unlink during the move removes the name.
    fd = backing->open();
    if (fd.get() < 0) return -errno;
    result.bytes_from_tier.assign(storage_->tier_count(), 0);
    result.bytes_from_tier[from] = backing->facts().allocated_bytes;
    if (const int err = store->begin_move(*backing, inode->ino, to); err != 0) return err;
    // From here the file is `to`'s: its new data goes there, as the record
    // (its name) says; the log hears of the preferred tier with it.
    inode->data->set_preferred_tier(to);
    log_inode_locked(*inode);
  }
  crash_point("kmove.after_begin");
  ::numa::PageMoves moves;
  const std::string why = store->move_pages(fd.get(), to, moves);
  fd = BackingFile::Fd(-1);
  crash_point("kmove.before_end");
  std::unique_lock guard(inode->lock);
  BackingFile* backing = inode->data_released ? nullptr : inode->data->backing();
  // Unlinked and closed meanwhile: its pages went with it.
  if (backing == nullptr) return -ENOENT;
  if (!why.empty()) {
    // Some pages may have moved, all new ones go to `to`: the name stays
    // ".moving" so that the next server (or the next move) finishes it.
    spdlog::error("migrate inode {}: {}", inode->ino, why);
    return -EIO;
  }
  if (const int err = store->end_move(*backing, inode->ino); err != 0) return err;
  result.bytes_moved = backing->facts().allocated_bytes;
  if (moves.left_pages != 0 || !moves.move_all)
    spdlog::info("migrate inode {}: {} of {} pages left on their nodes{}", inode->ino,
                 moves.left_pages, moves.resident_pages,
                 moves.move_all ? "" : " (no CAP_SYS_NICE: pages other processes map stay)");
  return 0;
}

std::vector<KernelFile> Fs::kernel_files() const {
  std::vector<KernelFile> out;
  if (!backing_store_) return out;
  for (const InodePtr& inode : regular_files()) {
    std::shared_lock guard(inode->lock);
    if (inode->data_released) continue;
    if (const BackingFile* backing = inode->data->backing())
      out.push_back({inode, backing->tier(), backing->facts().allocated_bytes});
  }
  return out;
}

std::vector<uint64_t> Fs::kernel_tier_used() const {
  std::vector<uint64_t> used(config_.tiers.size(), 0);
  for (const KernelFile& file : kernel_files())
    if (file.tier < used.size()) used[file.tier] += file.allocated_bytes;
  return used;
}

Fs::Space Fs::space() {
  Space out;
  int64_t free = 0;
  for (uint32_t t = 0; t < storage_->tier_count(); ++t) {
    Tier& tier = storage_->tier(t);
    out.capacity_bytes += tier.geometry().capacity_bytes;
    if (!backing_store_ || !backing_store_->serves(t)) {
      free += static_cast<int64_t>(tier.free_bytes());
      continue;
    }
    free += static_cast<int64_t>(tier.geometry().capacity_bytes);
  }
  if (backing_store_) free -= static_cast<int64_t>(backing_store_->used_bytes());
  out.free_bytes = free > 0 ? static_cast<uint64_t>(free) : 0;
  return out;
}

}  // namespace tierfs
