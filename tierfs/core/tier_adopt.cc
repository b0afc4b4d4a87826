// Tier at replay: claiming the blocks replayed extents own, and scrubbing
// the free blocks a crash may have left holding bytes.
#include <mutex>

#include "tierfs/core/tier.h"

namespace tierfs {

bool Tier::claim_blocks(BlockRange range) {
  if (!blocks_.claim(range)) return false;
  if (untouched_.empty() || range.count == 0) return true;
  // The row holds a file's bytes: it must not be zeroed when a neighbour block is handed out.
  const uint64_t per_row = row_blocks();
  std::lock_guard guard(untouched_lock_);
  for (uint64_t row = range.first / per_row; row <= (range.end() - 1) / per_row; ++row)
    untouched_[row / 64] &= ~(uint64_t{1} << (row % 64));
  return true;
}

void Tier::scrub_free() {
  const uint64_t per_row = row_blocks();
  for (const BlockRange& run : blocks_.free_runs()) {
    if (untouched_.empty()) {
      zero_blocks(run);  // memory regions: punching the holes is cheap and returns the pages
      continue;
    }
    // Rows still marked untouched are zeroed whole when first handed out; the rest now.
    uint64_t from = run.first;
    while (from < run.end()) {
      const uint64_t row = from / per_row;
      const uint64_t to = std::min(run.end(), (row + 1) * per_row);
      bool untouched = false;
      {
        std::lock_guard guard(untouched_lock_);
        untouched = (untouched_[row / 64] >> (row % 64)) & 1;
      }
      if (!untouched) zero_blocks(BlockRange{from, to - from});
      from = to;
    }
  }
}

}  // namespace tierfs
