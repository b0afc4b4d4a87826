// BlockAllocator: the free 4 KiB blocks of one tier's interleaved address
// space (bpf/tierfs_map.h), handed out as contiguous runs.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace tierfs {

// Blocks are the unit of allocation and accounting: a file costs its size
// rounded up to one, statfs counts them.
inline constexpr uint64_t kBlockBytes = 4096;

// A contiguous run of blocks: addresses [first * 4 KiB, (first + count) * 4 KiB).
struct BlockRange {
  uint64_t first = 0;
  uint64_t count = 0;
  uint64_t end() const { return first + count; }
};

struct BlockRequest {
  static constexpr uint64_t kNoHint = ~uint64_t{0};
  uint64_t count = 0;       // blocks wanted
  uint64_t hint = kNoHint;  // taken first when free: the block after the file's last extent
  // When align > 1 the run should start at a block b with b % align == phase:
  // a large file asks for its tier's row, so its rows interleave fully.
  uint64_t align = 1;
  uint64_t phase = 0;
};

// Free blocks of one tier. Never hands out a block twice and keeps the free
// runs coalesced. Placement: the hint when its run is long enough; a request
// with an alignment takes the smallest free run that holds it aligned, and
// failing that the largest aligned part (at least one row) it can have; small
// requests take the smallest run that holds them (best fit), so small files
// pack into gaps and long runs stay long for large files. When no run is long
// enough the request gets the longest run (a shorter range): callers loop.
class BlockAllocator {
 public:
  explicit BlockAllocator(uint64_t total_blocks);
  std::optional<BlockRange> allocate(const BlockRequest& request);
  // Grows `range` in place by up to `count` blocks when the blocks right after it are free.
  uint64_t extend(BlockRange& range, uint64_t count);
  void free(BlockRange range);
  // Takes exactly `range` when every block of it is free (replay); else false and nothing taken.
  bool claim(BlockRange range);
  uint64_t total_blocks() const;
  uint64_t free_blocks() const;
  // Every free run, ascending and coalesced (for tests and stats).
  std::vector<BlockRange> free_runs() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace tierfs
