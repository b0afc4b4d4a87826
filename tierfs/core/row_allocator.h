// RowAllocator: the free rows of one tier, handed out as contiguous ranges.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

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

}  // namespace tierfs
