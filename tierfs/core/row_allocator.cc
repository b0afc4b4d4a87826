// RowAllocator: the free rows of one tier as a map of coalesced runs
// (first row -> count), guarded by one mutex. Allocation prefers a run at
// the hint (the row after a file's last extent), then the first run long
// enough, then the longest run there is.
#include <map>
#include <stdexcept>

#include "tierfs/core/row_allocator.h"

namespace tierfs {

struct RowAllocator::Impl {
  mutable std::mutex lock;
  std::map<uint64_t, uint64_t> free_runs;  // first row -> count, never adjacent
  uint64_t total = 0;
  uint64_t free = 0;
};

RowAllocator::RowAllocator(uint64_t total_rows) : impl_(std::make_shared<Impl>()) {
  impl_->total = total_rows;
  impl_->free = total_rows;
  if (total_rows > 0) impl_->free_runs.emplace(0, total_rows);
}

std::optional<RowRange> RowAllocator::allocate(uint64_t count, uint64_t hint) {
  if (count == 0) return std::nullopt;
  std::lock_guard guard(impl_->lock);
  auto& runs = impl_->free_runs;
  if (runs.empty()) return std::nullopt;

  auto take = [&](std::map<uint64_t, uint64_t>::iterator run, uint64_t first, uint64_t want) {
    const uint64_t run_first = run->first;
    const uint64_t run_count = run->second;
    const uint64_t got = std::min(want, run_first + run_count - first);
    runs.erase(run);
    if (first > run_first) runs.emplace(run_first, first - run_first);
    if (first + got < run_first + run_count)
      runs.emplace(first + got, run_first + run_count - first - got);
    impl_->free -= got;
    return RowRange{first, got};
  };

  // The run holding the hint, when it has `count` rows from there.
  auto at = runs.upper_bound(hint);
  if (at != runs.begin()) {
    auto before = std::prev(at);
    if (hint < before->first + before->second && before->first + before->second - hint >= count)
      return take(before, hint, count);
  }
  // The first run from the hint on, then from the start, that is long enough.
  for (auto it = runs.lower_bound(hint); it != runs.end(); ++it)
    if (it->second >= count) return take(it, it->first, count);
  for (auto it = runs.begin(); it != runs.end() && it->first < hint; ++it)
    if (it->second >= count) return take(it, it->first, count);
  // No run is long enough: the longest one, so the caller gets as much as can be had in one piece.
  auto longest = runs.begin();
  for (auto it = runs.begin(); it != runs.end(); ++it)
    if (it->second > longest->second) longest = it;
  return take(longest, longest->first, count);
}

uint64_t RowAllocator::extend(RowRange& range, uint64_t count) {
  std::lock_guard guard(impl_->lock);
  auto run = impl_->free_runs.find(range.first + range.count);
  if (run == impl_->free_runs.end() || count == 0) return 0;
  const uint64_t got = std::min(count, run->second);
  const uint64_t rest_first = run->first + got;
  const uint64_t rest = run->second - got;
  impl_->free_runs.erase(run);
  if (rest > 0) impl_->free_runs.emplace(rest_first, rest);
  impl_->free -= got;
  range.count += got;
  return got;
}

void RowAllocator::free(RowRange range) {
  if (range.count == 0) return;
  std::lock_guard guard(impl_->lock);
  auto& runs = impl_->free_runs;
  if (range.first + range.count > impl_->total || range.first + range.count < range.first)
    throw std::logic_error("RowAllocator::free: rows past the end of the tier");
  auto next = runs.lower_bound(range.first);
  if (next != runs.end() && next->first < range.first + range.count)
    throw std::logic_error("RowAllocator::free: rows freed twice");
  uint64_t first = range.first;
  uint64_t count = range.count;
  if (next != runs.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second > first)
      throw std::logic_error("RowAllocator::free: rows freed twice");
    if (prev->first + prev->second == first) {
      first = prev->first;
      count += prev->second;
      runs.erase(prev);
    }
  }
  if (next != runs.end() && next->first == range.first + range.count) {
    count += next->second;
    runs.erase(next);
  }
  runs.emplace(first, count);
  impl_->free += range.count;
}

uint64_t RowAllocator::total_rows() const {
  return impl_->total;
}

uint64_t RowAllocator::free_rows() const {
  std::lock_guard guard(impl_->lock);
  return impl_->free;
}

std::vector<RowRange> RowAllocator::free_runs() const {
  std::lock_guard guard(impl_->lock);
  std::vector<RowRange> out;
  for (const auto& [first, count] : impl_->free_runs) out.push_back({first, count});
  return out;
}

}  // namespace tierfs
