// BlockAllocator: the free blocks of one tier as coalesced runs, indexed
// twice (by address for the hint, extend and free; by length for best fit),
// guarded by one mutex.
#include "tierfs/core/block_allocator.h"

#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <utility>

namespace tierfs {

struct BlockAllocator::Impl {
  mutable std::mutex lock;
  std::map<uint64_t, uint64_t> by_first;            // first block -> count, never adjacent
  std::set<std::pair<uint64_t, uint64_t>> by_size;  // (count, first) of the same runs
  uint64_t total = 0;
  uint64_t free = 0;

  void insert(uint64_t first, uint64_t count) {
    by_first.emplace(first, count);
    by_size.emplace(count, first);
  }
  void erase(std::map<uint64_t, uint64_t>::iterator run) {
    by_size.erase({run->second, run->first});
    by_first.erase(run);
  }
  // Takes [first, first + count) out of the free run that holds it.
  BlockRange take(uint64_t first, uint64_t count) {
    auto run = std::prev(by_first.upper_bound(first));
    const uint64_t run_first = run->first, run_end = run->first + run->second;
    erase(run);
    if (first > run_first) insert(run_first, first - run_first);
    if (first + count < run_end) insert(first + count, run_end - first - count);
    free -= count;
    return {first, count};
  }
};

namespace {

// The first block at or after `first` with block % align == phase.
uint64_t aligned_start(uint64_t first, uint64_t align, uint64_t phase) {
  return first + (phase + align - first % align) % align;
}

}  // namespace

BlockAllocator::BlockAllocator(uint64_t total_blocks) : impl_(std::make_shared<Impl>()) {
  impl_->total = total_blocks;
  impl_->free = total_blocks;
  if (total_blocks > 0) impl_->insert(0, total_blocks);
}

std::optional<BlockRange> BlockAllocator::allocate(const BlockRequest& request) {
  const uint64_t count = request.count;
  if (count == 0) return std::nullopt;
  std::lock_guard guard(impl_->lock);
  Impl& s = *impl_;
  if (s.by_first.empty()) return std::nullopt;

  // The run holding the hint, when it has `count` blocks from there: the file stays contiguous.
  if (request.hint != BlockRequest::kNoHint) {
    auto at = s.by_first.upper_bound(request.hint);
    if (at != s.by_first.begin()) {
      auto run = std::prev(at);
      const uint64_t run_end = run->first + run->second;
      if (request.hint < run_end && run_end - request.hint >= count)
        return s.take(request.hint, count);
    }
  }

  const uint64_t align = request.align == 0 ? 1 : request.align;
  if (align > 1) {
    const uint64_t phase = request.phase % align;
    // The smallest run that holds `count` blocks from an aligned start. Any
    // run of count + align - 1 blocks does; shorter ones may, a few are tried.
    const uint64_t sure = count > ~uint64_t{0} - align ? count : count + align - 1;
    int tries = 64;
    for (auto it = s.by_size.lower_bound({count, 0});
         it != s.by_size.end() && it->first < sure && tries-- > 0; ++it) {
      const auto [size, first] = *it;
      const uint64_t start = aligned_start(first, align, phase);
      if (start - first <= size - count) return s.take(start, count);
    }
    if (auto it = s.by_size.lower_bound({sure, 0}); it != s.by_size.end()) {
      const auto [size, first] = *it;
      const uint64_t start = aligned_start(first, align, phase);
      if (start - first <= size - count) return s.take(start, count);
    }
    // None: the largest aligned part of the longest runs, when it holds at least one row.
    uint64_t best_start = 0, best_count = 0;
    tries = 8;
    for (auto it = s.by_size.rbegin(); it != s.by_size.rend() && tries-- > 0; ++it) {
      const auto [size, first] = *it;
      const uint64_t start = aligned_start(first, align, phase);
      if (start - first < size && first + size - start > best_count) {
        best_start = start;
        best_count = first + size - start;
      }
    }
    if (best_count >= align) return s.take(best_start, std::min(best_count, count));
  }
  // The smallest run that holds the request, from its start: the blocks after
  // it stay free for the file's next append as long as nobody else needs them.
  auto fit = s.by_size.lower_bound({count, 0});
  if (fit != s.by_size.end()) return s.take(fit->second, count);
  // No run is long enough: the longest one, so the caller gets as much as can be had in one piece.
  const auto [size, first] = *s.by_size.rbegin();
  return s.take(first, size);
}

uint64_t BlockAllocator::extend(BlockRange& range, uint64_t count) {
  if (count == 0) return 0;
  std::lock_guard guard(impl_->lock);
  auto run = impl_->by_first.find(range.end());
  if (run == impl_->by_first.end()) return 0;
  const uint64_t got = std::min(count, run->second);
  impl_->take(run->first, got);
  range.count += got;
  return got;
}

void BlockAllocator::free(BlockRange range) {
  if (range.count == 0) return;
  std::lock_guard guard(impl_->lock);
  Impl& s = *impl_;
  if (range.end() > s.total || range.end() < range.first)
    throw std::logic_error("BlockAllocator::free: blocks past the end of the tier");
  auto next = s.by_first.lower_bound(range.first);
  if (next != s.by_first.end() && next->first < range.end())
    throw std::logic_error("BlockAllocator::free: blocks freed twice");
  uint64_t first = range.first;
  uint64_t count = range.count;
  if (next != s.by_first.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second > first)
      throw std::logic_error("BlockAllocator::free: blocks freed twice");
    if (prev->first + prev->second == first) {
      first = prev->first;
      count += prev->second;
      s.erase(prev);
    }
  }
  if (next != s.by_first.end() && next->first == range.end()) {
    count += next->second;
    s.erase(next);
  }
  s.insert(first, count);
  s.free += range.count;
}

bool BlockAllocator::claim(BlockRange range) {
  if (range.count == 0) return true;
  std::lock_guard guard(impl_->lock);
  Impl& s = *impl_;
  if (range.end() > s.total || range.end() < range.first) return false;
  auto at = s.by_first.upper_bound(range.first);
  if (at == s.by_first.begin()) return false;
  auto run = std::prev(at);
  if (run->first + run->second < range.end()) return false;
  s.take(range.first, range.count);
  return true;
}

uint64_t BlockAllocator::total_blocks() const {
  return impl_->total;
}

uint64_t BlockAllocator::free_blocks() const {
  std::lock_guard guard(impl_->lock);
  return impl_->free;
}

std::vector<BlockRange> BlockAllocator::free_runs() const {
  std::lock_guard guard(impl_->lock);
  std::vector<BlockRange> out;
  out.reserve(impl_->by_first.size());
  for (const auto& [first, count] : impl_->by_first) out.push_back({first, count});
  return out;
}

}  // namespace tierfs
