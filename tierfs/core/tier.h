// Tier: one interleave set of a mount (its layout, mapped regions and block
// allocator over its interleaved address space) and its statistics.
#pragma once

#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "bpf/tierfs_map.h"
#include "numa/region.h"
#include "tierfs/core/block_allocator.h"
#include "tierfs/core/geometry.h"

namespace tierfs {

struct RegionStats {
  std::string spec;
  uint64_t size_bytes = 0;
  uint64_t used_bytes = 0;
  int numa_node = -1;
  uint64_t bytes_read = 0, bytes_written = 0;
  uint64_t reads = 0, writes = 0;  // requests that touched this region
};

struct TierStats {
  std::string name;
  uint64_t granularity_bytes = 0;
  uint32_t ways = 0;
  uint64_t row_bytes = 0;
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;
  // Blocks a data copy took a SIGBUS in (a memory error on a DAX or CXL
  // device, backing storage gone): kept out of use while the server runs.
  uint64_t bad_bytes = 0;
  bool persistent = false;
  std::vector<RegionStats> regions;
  uint64_t bytes_read = 0, bytes_written = 0;
  uint64_t reads = 0, writes = 0;
};

// One interleave set: its layout, its mapped regions, the 4 KiB blocks of its
// address space (address L is byte L of the interleave, bpf/tierfs_map.h).
class Tier {
 public:
  // regions[i] maps geometry.regions[i]: its bytes from its device offset.
  Tier(const TierGeometry& geometry, std::vector<std::unique_ptr<numa::Region>> regions);
  // A kernel-path tier (tierfs/core/data_path.h): its files' bytes are
  // backing files the kernel places (tierfs/server/backing_store.h), so it
  // maps no region and hands out no block; its geometry still says its
  // capacity, regions and layout (stats, placement by policy).
  static std::unique_ptr<Tier> without_regions(const TierGeometry& geometry);
  ~Tier();
  bool has_regions() const { return !regions_.empty(); }
  const std::string& name() const;
  const TierGeometry& geometry() const;
  // base[i] is region i's device offset: tierfs_map_extent answers device offsets.
  const tierfs_layout& layout() const;
  uint64_t row_bytes() const;  // file bytes one row holds
  uint64_t granularity_bytes() const;
  std::byte* region_data(uint32_t region) const;  // the region's row 0
  // The byte at `device_offset` (a tierfs_map_extent answer) of region `region`.
  std::byte* at(uint32_t region, uint64_t device_offset) const;
  // The inverse: the device offset of `address`, which lies in region `region`'s mapping.
  uint64_t device_offset_of(uint32_t region, const std::byte* address) const;
  const numa::Region& region(uint32_t index) const;
  uint32_t ways() const;
  BlockAllocator& blocks();
  uint64_t row_blocks() const;  // blocks in one row: the alignment of large files
  uint64_t free_bytes() const;

  // Blocks that read as zeros: fresh rows of memory that does not start out
  // zeroed (dax, files) are zeroed here the first time any block of them is
  // handed out. Their backing space (shared memory, region files) is
  // reserved first with fallocate: when the backing file system is full the
  // caller gets nothing (ENOSPC) instead of a SIGBUS on the first write.
  // A failure sets *error (when given) to -ENOSPC, or -EIO when zeroing a
  // fresh row faulted (copy_guard.h): the faulting blocks are then bad.
  std::optional<BlockRange> allocate_blocks(const BlockRequest& request, int* error = nullptr);
  uint64_t extend_blocks(BlockRange& range, uint64_t count, int* error = nullptr);
  // Zeroes the blocks (hole punching where the backing object allows it,
  // which also returns shared memory to the system) and gives them back;
  // bad blocks, and blocks whose zeroing faults, are never given back. After prepare_unmount() a
  // persistent tier gives them back with their bytes, which must outlive the server.
  void free_blocks(BlockRange range);
  // The rows holding [range) are in use by files a previous server left (a
  // persistent tier's replay): never zeroed as untouched rows.
  void mark_touched(BlockRange range);
  void set_persistent(bool persistent);
  bool persistent() const;
  void prepare_unmount();
  // A data copy into or out of region `region` (or zeroing of it) faulted at
  // `address`: the block holding it is bad from now on (counted in stats,
  // never zeroed or handed out again while the server runs; taken out of the
  // allocator when it was free). False when `address` is not in the region.
  bool mark_bad(uint32_t region, const std::byte* address);
  // memset(data, 0, length) of region memory, guarded (copy_guard.h): each
  // page that faults is marked bad and skipped. False when any faulted.
  bool zero_memory(uint32_t region, std::byte* data, uint64_t length);
  // Writes `parts` to region memory at `data` (a run inside region `region`)
  // with pwritev(2) on the region's shared-memory object instead of a copy
  // through the mapping, for blocks never written since they were handed
  // out: the kernel's write path fills whole pages without zeroing them
  // first, where a store through the mapping first faults in a zeroed page
  // (a new file's 1 MiB write spent most of its time there). Only numa:
  // regions backed by /dev/shm (huge pages, devices and files keep the
  // copy). Returns the bytes written: 0 when the region cannot be written
  // this way, short when the write failed part way (the caller copies the
  // rest, guarded).
  uint64_t write_through_file(uint32_t region, const std::byte* data, std::span<const iovec> parts);
  uint64_t bad_blocks() const;
  // The bad blocks as coalesced runs, ascending (held by the tier, owned by
  // no file: `tierfs check` must not call them leaked).
  std::vector<BlockRange> bad_runs() const;
  TierStats stats() const;
  // Replay at mount (tier_adopt.cc): takes exactly `range`, which a replayed
  // extent owns, without zeroing it; false when any block of it is taken or
  // outside the tier.
  bool claim_blocks(BlockRange range);
  // After every claim: zeroes free blocks that may hold bytes from before
  // the crash (dropped by a logged change whose free never ran, or taken by
  // a write that was never logged), so a new file never reads them.
  void scrub_free();
  // Bytes one request moved in each region of the tier: the tier and every
  // region with bytes count one operation, so ops say how many requests
  // reached a region and bytes how the layout spread them.
  using RegionBytes = std::array<uint64_t, TIERFS_MAX_WAYS>;
  void count_read(const RegionBytes& bytes_per_region);
  void count_write(const RegionBytes& bytes_per_region);

 private:
  // Zeroes or punches `length` bytes of region `region` from its device offset.
  void discard(uint32_t region, uint64_t device_offset, uint64_t length);
  void zero_blocks(BlockRange range);
  // zero_blocks over [range) without its bad blocks.
  void zero_good_blocks(BlockRange range);
  bool any_bad(BlockRange range) const;
  bool zero_untouched(BlockRange range);
  // Calls fn(region, device_offset, length) for every piece of [range):
  // partial rows unit by unit, whole rows as one range per region.
  void each_region_range(BlockRange range,
                         const std::function<void(uint32_t, uint64_t, uint64_t)>& fn) const;
  // fallocate over [range) in every reservable region; -ENOSPC (or -errno)
  // when the backing storage cannot hold it.
  int reserve(BlockRange range);
  // [range) without its bad blocks.
  std::vector<BlockRange> good_runs(BlockRange range) const;

  Tier(const TierGeometry& geometry, uint64_t blocks);
  TierGeometry geometry_;
  std::vector<std::unique_ptr<numa::Region>> regions_;
  BlockAllocator blocks_;
  // One bit per row that was never handed out and may hold old bytes; empty
  // when every region starts out zeroed (shared memory of numa regions).
  std::mutex untouched_lock_;
  std::vector<uint64_t> untouched_;
  // Per region: fallocate reserves its backing (cleared when the file system
  // says it cannot, EOPNOTSUPP: then a guarded copy is the only defence).
  std::array<std::atomic<bool>, TIERFS_MAX_WAYS> reservable_{};
  // Per region: new blocks are written with pwritev on its shared memory
  // (cleared, with one log line, when the call is refused).
  std::array<std::atomic<bool>, TIERFS_MAX_WAYS> writes_through_file_{};
  bool persistent_ = false;
  std::atomic<bool> unmounting_{false};
  mutable std::mutex bad_lock_;
  std::set<uint64_t> bad_;
  std::atomic<uint64_t> bad_count_{0};  // bad_.size(), read without the lock
  struct Traffic {
    std::atomic<uint64_t> bytes_read{0}, bytes_written{0}, reads{0}, writes{0};
  };
  Traffic traffic_;
  std::array<Traffic, TIERFS_MAX_WAYS> region_traffic_;
};

}  // namespace tierfs
