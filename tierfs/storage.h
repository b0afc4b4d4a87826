// The data layer of the server: the tiers of a mount (regions, layouts, row
// allocators) and the extents of each file, with the operations FUSE needs
// (read as iovecs into region memory, write, truncate, fallocate, punch,
// SEEK_DATA/SEEK_HOLE). No FUSE types here: tierfs/fs_*.cc adapts these to
// the low-level API. Hot-path errors are negative errno values.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bpf/tierfs_map.h"
#include "numa/region.h"
#include "tierfs/config.h"

namespace tierfs {

// A contiguous run of rows of one tier.
struct RowRange {
  uint64_t first = 0;
  uint64_t count = 0;
};

// Free rows of one tier. Never hands out a row twice; rows it hands out read
// as zeros (never-used rows are zeroed on first use, freed rows when freed).
class RowAllocator {
 public:
  explicit RowAllocator(uint64_t total_rows);
  // Up to `count` contiguous rows, preferring to start at `hint`; the range
  // may be shorter than asked when no run is long enough. nullopt when full.
  std::optional<RowRange> allocate(uint64_t count, uint64_t hint = 0);
  // Grows `range` in place by up to `count` rows when the rows right after it are free.
  uint64_t extend(RowRange& range, uint64_t count);
  void free(RowRange range);
  uint64_t total_rows() const;
  uint64_t free_rows() const;
  // Every free run, ascending and coalesced (for tests and stats).
  std::vector<RowRange> free_runs() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

struct RegionStats {
  std::string spec;
  uint64_t size_bytes = 0;
  uint64_t used_bytes = 0;
  int numa_node = -1;
};

struct TierStats {
  std::string name;
  uint64_t granularity_bytes = 0;
  uint32_t ways = 0;
  uint64_t row_bytes = 0;
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;
  std::vector<RegionStats> regions;
  uint64_t bytes_read = 0, bytes_written = 0;
  uint64_t reads = 0, writes = 0;
};

// Told about every change of a file's extents (the BPF maps listen here).
class ExtentListener {
 public:
  virtual ~ExtentListener() = default;
  virtual void extents_changed(uint64_t ino, std::span<const tierfs_extent> extents) = 0;
  virtual void inode_removed(uint64_t ino) = 0;
};

// One interleave set: its layout, its mapped regions, its rows.
class Tier {
 public:
  Tier(const TierConfig& config, std::vector<std::unique_ptr<numa::Region>> regions);
  ~Tier();
  const std::string& name() const;
  const tierfs_layout& layout() const;
  uint64_t row_bytes() const;  // file bytes one row holds
  uint64_t granularity_bytes() const;
  std::byte* region_data(uint32_t region) const;
  const numa::Region& region(uint32_t index) const;
  uint32_t ways() const;
  RowAllocator& rows();

  // Rows that read as zeros: fresh rows of memory that does not start out
  // zeroed (dax, files) are zeroed here the first time they are handed out.
  std::optional<RowRange> allocate_rows(uint64_t count, uint64_t hint);
  uint64_t extend_rows(RowRange& range, uint64_t count);
  // Zeroes the rows (hole punching where the backing object allows it, which
  // also returns shared memory to the system) and gives them back.
  void free_rows(RowRange range);
  TierStats stats() const;
  void count_read(uint64_t bytes);
  void count_write(uint64_t bytes);

 private:
  void zero_rows(RowRange range);
  void zero_untouched(RowRange range);

  std::string name_;
  tierfs_layout layout_{};
  uint64_t row_bytes_ = 0;
  std::vector<std::unique_ptr<numa::Region>> regions_;
  RowAllocator rows_;
  // One bit per row that was never handed out and may hold old bytes; empty
  // when every region starts out zeroed (shared memory of numa regions).
  std::mutex untouched_lock_;
  std::vector<uint64_t> untouched_;
  std::atomic<uint64_t> bytes_read_{0}, bytes_written_{0}, reads_{0}, writes_{0};
};

// All tiers of a mount, ranked as configured (index 0 is the fastest).
class Storage {
 public:
  // Opens every region of every tier. Throws std::runtime_error with one line
  // naming the tier and region when a region cannot be mapped.
  static std::unique_ptr<Storage> open(const Config& config);
  // Tiers over regions the caller opened: regions[t][i] is region i of tier t.
  static std::unique_ptr<Storage> create(
      const Config& config, std::vector<std::vector<std::unique_ptr<numa::Region>>> regions);
  size_t tier_count() const;
  Tier& tier(size_t index);
  int tier_index(std::string_view name) const;
  std::vector<TierStats> stats() const;
  uint64_t capacity_bytes() const;
  uint64_t free_bytes() const;
  void set_listener(ExtentListener* listener);
  ExtentListener* listener() const;

 private:
  Storage() = default;
  std::vector<std::unique_ptr<Tier>> tiers_;
  std::atomic<ExtentListener*> listener_{nullptr};
};

// The bytes of one regular file: a sorted, non-overlapping list of extents.
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
  // Copies the bytes in `in` to [off, off+length(in)), allocating rows as
  // needed. Returns the byte count written (short only on ENOSPC after a
  // partial write) or -errno (-ENOSPC when nothing could be written).
  int64_t write(Storage& storage, uint64_t off, std::span<const iovec> in);
  // Makes [off, off+len) allocated (fallocate mode 0 / KEEP_SIZE).
  int allocate(Storage& storage, uint64_t off, uint64_t len);
  // Frees whole rows inside [off, off+len) and zeroes the partial edges.
  int punch_hole(Storage& storage, uint64_t off, uint64_t len);
  // [off, off+len) reads as zeros afterwards and stays allocated.
  int zero_range(Storage& storage, uint64_t off, uint64_t len);
  // Drops everything at and past new_size (rows freed, partial tail zeroed).
  void truncate(Storage& storage, uint64_t new_size);
  // Releases every row (unlink of the last link, after the last close).
  void release(Storage& storage);
  // Gives back the rows that sequential-write preallocation took past the end
  // of the file (when its last writable handle closes). Rows up to the file
  // size rounded up to a row, and every range written, fallocated (KEEP_SIZE
  // included) or zeroed, stay.
  void trim_preallocation(Storage& storage, uint64_t file_size);
  // lseek SEEK_DATA / SEEK_HOLE within file_size: the offset, or -ENXIO.
  int64_t seek_data(uint64_t off, uint64_t file_size) const;
  int64_t seek_hole(uint64_t off, uint64_t file_size) const;
  uint64_t allocated_bytes() const;  // for st_blocks
  std::span<const tierfs_extent> extents() const;
  // Hook for the listener; the FileData does not know its inode number.
  void set_ino(uint64_t ino);

 private:
  // Calls visit(pointer, bytes) for each contiguous run of [off, off+len),
  // with nullptr for holes; allocates the holes first when `allocate`.
  // Returns the bytes visited (short when allocation ran out) or -errno.
  template <typename Visit>
  int64_t walk(Storage& storage, uint64_t off, uint64_t len, bool allocate, Visit&& visit);
  // Adds rows for [off, off + len) of a hole that ends at hole_end; -ENOSPC when no tier has one.
  int fill_hole(Storage& storage, size_t index, uint64_t off, uint64_t len, uint64_t hole_end);
  // Drops [off, off+len): whole rows are freed, partial rows zeroed.
  void remove_range(Storage& storage, uint64_t off, uint64_t len);
  void zero_bytes(Storage& storage, const tierfs_extent& extent, uint64_t off, uint64_t len);
  void merge_neighbours(Storage& storage);
  void changed(Storage& storage);

  std::vector<tierfs_extent> extents_;
  uint32_t preferred_tier_ = 0;
  uint64_t ino_ = 0;
  // The end of the furthest range that was written, fallocated or zeroed:
  // rows before it were asked for; rows past it only by preallocation.
  uint64_t requested_end_ = 0;
  bool extents_dirty_ = false;   // changed since the listener last heard
  bool listener_heard_ = false;  // the listener was told of this file's extents
};

}  // namespace tierfs
