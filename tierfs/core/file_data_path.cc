// FileData's switches between the two data paths (file_data.h): kept apart
// from file_data.cc, which holds the server path's block bookkeeping.
#include <algorithm>

#include "tierfs/core/file_data.h"
#include "tierfs/core/journal.h"

namespace tierfs {

void FileData::switch_to_backing(Storage& storage, std::unique_ptr<BackingFile> backing,
                                 const std::function<void()>& log_switch) {
  std::vector<tierfs_extent> old = std::move(extents_);
  extents_.clear();
  backing_ = std::move(backing);
  requested_end_ = 0;
  extents_dirty_ = true;
  changed(storage);
  mark_dirty();
  // Logged (the inode without extents) before the old blocks go back: at
  // replay the blocks are owned by the file or free, and the backing file is
  // adopted because the record has no extents (Fs::adopt_backing_files).
  if (log_switch) log_switch();
  crash_point("migrate.after_switch_log");
  for (const tierfs_extent& e : old)
    storage.tier(e.tier).free_blocks({e.tier_address / kBlockBytes, e.length / kBlockBytes});
}

std::unique_ptr<BackingFile> FileData::switch_to_extents(Storage& storage, FileData& target,
                                                         const std::function<void()>& log_switch) {
  std::unique_ptr<BackingFile> old = std::move(backing_);
  // The copy was written front to back, so append preallocation took blocks
  // past its last byte (up to as much again as it held): they go back, or
  // the file would keep them (a 4 MiB file cost 7 MiB).
  target.trim_preallocation(storage, 0);
  extents_ = std::move(target.extents_);
  target.extents_.clear();
  // Every block of the copy holds bytes of the file: none is preallocation.
  requested_end_ = extents_.empty() ? 0 : extents_.back().file_offset + extents_.back().length;
  extents_dirty_ = true;
  changed(storage);
  mark_dirty();
  // Logged with its extents before the backing file goes: at replay a record
  // with extents makes the backing file an orphan, one without adopts it.
  if (log_switch) log_switch();
  crash_point("migrate.after_switch_log");
  return old;
}

std::unique_ptr<BackingFile> FileData::replace_backing(std::unique_ptr<BackingFile> with,
                                                       const std::function<void()>& log_switch) {
  std::unique_ptr<BackingFile> old = std::move(backing_);
  backing_ = std::move(with);
  // The record (the inode, its new preferred tier) before the old file goes.
  if (log_switch) log_switch();
  crash_point("migrate.after_switch_log");
  return old;
}

}  // namespace tierfs
