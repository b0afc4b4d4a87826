// FileData: the extents of one regular file and the operations FUSE needs
// on them (read as iovecs into region memory, write, truncate, fallocate,
// punch, SEEK_DATA/SEEK_HOLE).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "bpf/tierfs_map.h"
#include "tierfs/core/backing_file.h"
#include "tierfs/core/storage.h"

namespace tierfs {

// The bytes of one regular file: a sorted, non-overlapping list of extents
// (the server path), or a backing file the kernel serves (the kernel path,
// backing_file.h): each data operation below forwards to it when the file
// has one, so that callers never ask which path a file takes.
// Not thread-safe: the caller holds the inode's lock (shared for read, unique
// for everything else).
class FileData {
 public:
  // The tier new extents go to first; when it is full they spill down the ranking.
  void set_preferred_tier(uint32_t tier);
  uint32_t preferred_tier() const;

  // Appends to `out` the iovecs that make up [off, off+size) clipped to
  // `file_size`: pointers into region memory, and into a shared zero page for
  // holes. Returns the byte count or -errno.
  int64_t read(Storage& storage, uint64_t off, uint64_t size, uint64_t file_size,
               std::vector<iovec>& out);
  // Copies the bytes in `in` to [off, off+length(in)), allocating blocks as
  // needed. Returns the byte count written (short only on ENOSPC after a
  // partial write; the blocks past the last written byte are given back) or
  // -errno (-ENOSPC when nothing could be written, and nothing is kept).
  int64_t write(Storage& storage, uint64_t off, std::span<const iovec> in);
  // Makes [off, off+len) allocated (fallocate mode 0 / KEEP_SIZE); on ENOSPC
  // every block it took is given back.
  int allocate(Storage& storage, uint64_t off, uint64_t len);
  // Frees whole blocks inside [off, off+len) and zeroes the partial edges;
  // -EIO (and nothing changed) when zeroing an edge faulted (copy_guard.h).
  int punch_hole(Storage& storage, uint64_t off, uint64_t len);
  // [off, off+len) reads as zeros afterwards and stays allocated; -EIO when
  // the zeroing faulted (the faulting blocks are bad, blocks it added go back).
  int zero_range(Storage& storage, uint64_t off, uint64_t len);
  // Drops everything at and past new_size (blocks freed, partial tail
  // zeroed); -EIO (and nothing changed) when zeroing the tail faulted.
  int truncate(Storage& storage, uint64_t new_size);
  // Releases every block (unlink of the last link, after the last close).
  void release(Storage& storage);
  // Gives back the blocks that sequential-write preallocation took past the
  // end of the file (when its last writable handle closes). Blocks up to the
  // file size rounded up to 4 KiB, and every range written, fallocated
  // (KEEP_SIZE included) or zeroed, stay.
  void trim_preallocation(Storage& storage, uint64_t file_size);
  // lseek SEEK_DATA / SEEK_HOLE within file_size: the offset, or -ENXIO.
  int64_t seek_data(uint64_t off, uint64_t file_size) const;
  int64_t seek_hole(uint64_t off, uint64_t file_size) const;
  uint64_t allocated_bytes() const;  // blocks held, in bytes: st_blocks
  std::span<const tierfs_extent> extents() const;
  // The key of this file in the BPF maps; the FileData does not know its inode number.
  void set_ino(uint64_t ino);

  // The kernel path: the file's bytes live in `backing` from now on. Only
  // for a file without extents (tierfs/server/fs_kernel_path.cc decides).
  void attach_backing(std::unique_ptr<BackingFile> backing);
  BackingFile* backing() const { return backing_.get(); }
  // The file's size: the backing file's on the kernel path (the kernel
  // writes it without the server), else `recorded` (the inode's).
  uint64_t size(uint64_t recorded) const;
  // The file grew to `new_size` by truncate or fallocate (holes need no
  // blocks on the server path; the backing file's size is the kernel's).
  int extend(uint64_t new_size);
  // utimensat: the backing file's mtime is the one getattr reports.
  int set_mtime(int64_t ns);
  int set_atime(int64_t ns);
  // A change the server makes to a kernel-path file (truncate, fallocate,
  // utimes, a write it serves, chmod, link, xattrs) is stamped by the
  // backing file's clock, the kernel's, as the kernel's own writes are: a
  // time from the server's clock is finer than the kernel's coarse one and
  // could hide the kernel's next stamp behind the later of the two. The
  // backing file's mtime (data) and ctime move, and what they became is
  // returned, read back (which lets tmpfs refine the next change's stamp, as
  // a stat on tmpfs does). False without a backing file or when it fails.
  bool stamp_now(bool data, int64_t& mtime_ns, int64_t& ctime_ns);
  // The kernel path's times: the later of `recorded` and the backing file's.
  int64_t atime_ns(int64_t recorded) const;
  int64_t mtime_ns(int64_t recorded) const;
  int64_t ctime_ns(int64_t recorded) const;
  // What getattr reports (size, blocks, times) from one look at the backing
  // file: one at a time cost five fstatat per reply (a create's, every
  // stat's) and could mix a concurrent kernel write's before and after.
  struct Attrs {
    uint64_t size = 0;
    uint64_t allocated_bytes = 0;
    int64_t atime_ns = 0, mtime_ns = 0, ctime_ns = 0;
  };
  Attrs attrs(const Attrs& recorded) const;

  // Migration (tierfs/core/migrate.h drives these; it documents the locks).
  // A file range that a call changed (bytes or extents) while watched.
  struct ChangedRange {
    uint64_t off = 0, end = 0;
  };
  // While on, every call that changes bytes or extents records the range it
  // touched, so that a copy taken meanwhile can be brought up to date.
  void watch_changes(bool on);
  bool watching_changes() const;
  std::vector<ChangedRange> take_changes();
  // A copy target: new blocks come from the preferred tier only, never spill.
  void set_spill(bool spill);
  // Gives `target` blocks for the allocated parts of [off, end) of this file
  // (holes stay holes) and, when `copy_bytes`, copies the bytes into them.
  // 0, or -ENOSPC when the target's tier ran out (what it got stays, for the
  // caller to release).
  int copy_to(Storage& storage, FileData& target, uint64_t off, uint64_t end,
              bool copy_bytes) const;
  // Drops a copy target's blocks in [off, end) (block-aligned), quietly: a
  // target is no file the maps know.
  void discard(Storage& storage, uint64_t off, uint64_t end);
  // The switch: this file's extents become `target`'s (left empty). The maps
  // (and the crash log) hear of it in one changed() before the old blocks go
  // back to their tiers, so no block is ever owned twice. `log_switch`, when
  // given, logs the switch instead of the default extents record (the server
  // logs the whole inode, its new preferred tier with it, in one frame).
  void adopt_extents(Storage& storage, FileData& target,
                     const std::function<void()>& log_switch = {});
  // Migration between the data paths (tierfs/core/migrate_path.h). To the
  // kernel path: the file's bytes are `backing`'s from now on; the maps and
  // the log (`log_switch`, which logs the inode without extents) hear of it
  // before the old blocks go back. Off it: the file takes `target`'s extents
  // and gives its backing file back, for the caller to remove after the log.
  void switch_to_backing(Storage& storage, std::unique_ptr<BackingFile> backing,
                         const std::function<void()>& log_switch);
  std::unique_ptr<BackingFile> switch_to_extents(Storage& storage, FileData& target,
                                                 const std::function<void()>& log_switch);
  // Between kernel-path tiers by copy: the file's bytes are `with`'s from
  // now on; the old backing file is given back (for the caller to remove)
  // after `log_switch` ran.
  std::unique_ptr<BackingFile> replace_backing(std::unique_ptr<BackingFile> with,
                                               const std::function<void()>& log_switch);
  // With a metadata log (Storage::journal): blocks a call dropped wait here
  // until the caller has logged the change, then go back to their tiers.
  void free_deferred(Storage& storage);
  bool has_deferred_frees() const { return !deferred_.empty(); }
  // Counts changes of the extent list: the caller logs the file when it moved.
  uint64_t extents_version() const { return extents_version_; }
  // Takes over `extents` replayed from the log: claims their blocks in their
  // tiers. Returns an empty string, or one line saying which extent is not
  // inside its tier or owns a block another file owns (nothing is kept then).
  std::string adopt(Storage& storage, std::vector<tierfs_extent> extents);
  // Makes the file's bytes durable where the region kind can (fsync):
  // msync of file: regions, cache lines flushed on dax: regions. 0 or -errno.
  int persist(Storage& storage) const;

 private:
  // Calls visit(pointer, bytes, tier, region) for each contiguous run of
  // [off, off+len), with nullptr for holes; allocates the holes first when
  // `allocate` (with append preallocation when `preallocate`). Returns the
  // bytes visited (short when allocation ran out) or -errno.
  template <typename Visit>
  int64_t walk(Storage& storage, uint64_t off, uint64_t len, bool allocate, bool preallocate,
               Visit&& visit);
  // Adds blocks for [off, off + len) of a hole that ends at hole_end; -ENOSPC when no tier has one.
  int fill_hole(Storage& storage, size_t index, uint64_t pos, uint64_t len, uint64_t hole_end,
                bool preallocate);
  // Gives back what the running call allocated at and past file offset `from`.
  void give_back_fresh(Storage& storage, uint64_t from);
  // Drops [off, off+len): whole blocks are freed, partial blocks stay (the
  // caller zeroes their bytes in the range first with zero_partial_blocks).
  void remove_range(Storage& storage, uint64_t off, uint64_t len);
  // Zeroes the bytes of [off, end) in the blocks at its edges that it only
  // partly covers; -EIO when that faulted (those blocks are then bad).
  int zero_partial_blocks(Storage& storage, uint64_t off, uint64_t end);
  bool zero_bytes(Storage& storage, const tierfs_extent& extent, uint64_t off, uint64_t len);
  void merge_neighbours();
  void changed(Storage& storage);
  void note_change(uint64_t off, uint64_t end);
  void mark_dirty() {
    extents_dirty_ = true;
    ++extents_version_;
  }
  // Gives blocks back now, or after the caller logged the change (journal).
  void free_later(Storage& storage, uint32_t tier, BlockRange range);

  std::vector<tierfs_extent> extents_;
  std::unique_ptr<BackingFile> backing_;  // the kernel path; extents_ stays empty
  uint32_t preferred_tier_ = 0;
  uint64_t ino_ = 0;
  // The end of the furthest range that was written, fallocated or zeroed:
  // blocks before it were asked for; blocks past it only by preallocation.
  uint64_t requested_end_ = 0;
  bool extents_dirty_ = false;         // changed since the maps last heard
  bool maps_heard_ = false;            // the maps were told of this file's extents
  bool spill_ = true;                  // false for a migration's copy target
  bool watching_ = false;              // a migration is copying this file
  std::vector<ChangedRange> changes_;  // what changed while watched
  uint64_t extents_version_ = 0;
  struct DeferredFree {
    uint32_t tier;
    BlockRange blocks;
  };
  std::vector<DeferredFree> deferred_;
};

}  // namespace tierfs
