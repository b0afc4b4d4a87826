// Tier: regions of one interleave set, the layout that bpf/tierfs_map.h
// computes with, row zeroing, statistics.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "tierfs/core/tier.h"

namespace tierfs {

Tier::Tier(const TierGeometry& geometry, std::vector<std::unique_ptr<numa::Region>> regions)
    : geometry_(geometry), regions_(std::move(regions)), rows_(geometry.rows) {
  if (regions_.size() != geometry_.regions.size())
    throw std::invalid_argument("Tier: one region per way of the geometry");
  bool fresh_is_zero = true;
  for (const auto& region : regions_)
    fresh_is_zero = fresh_is_zero && region->spec().kind == numa::RegionKind::numa;
  // Devices and files may hold a previous user's bytes: remember which rows still might.
  if (!fresh_is_zero) untouched_.assign((rows_.total_rows() + 63) / 64, ~uint64_t{0});
}

Tier::~Tier() = default;

const std::string& Tier::name() const {
  return geometry_.name;
}
const TierGeometry& Tier::geometry() const {
  return geometry_;
}
const tierfs_layout& Tier::layout() const {
  return geometry_.layout;
}
uint64_t Tier::row_bytes() const {
  return geometry_.row_bytes;
}
uint64_t Tier::granularity_bytes() const {
  return geometry_.granularity_bytes();
}
std::byte* Tier::region_data(uint32_t region) const {
  return regions_[region]->data();
}
std::byte* Tier::at(uint32_t region, uint64_t device_offset) const {
  return regions_[region]->data() + (device_offset - geometry_.layout.base[region]);
}
const numa::Region& Tier::region(uint32_t index) const {
  return *regions_.at(index);
}
uint32_t Tier::ways() const {
  return geometry_.layout.ways;
}
RowAllocator& Tier::rows() {
  return rows_;
}

void Tier::zero_untouched(RowRange range) {
  if (untouched_.empty()) return;
  std::lock_guard guard(untouched_lock_);
  for (uint64_t row = range.first; row < range.first + range.count; ++row) {
    uint64_t& word = untouched_[row / 64];
    const uint64_t bit = uint64_t{1} << (row % 64);
    if ((word & bit) == 0) continue;
    word &= ~bit;
    for (uint32_t i = 0; i < geometry_.layout.ways; ++i) {
      const uint64_t per_row = tierfs_region_row_bytes(&geometry_.layout, i);
      std::memset(region_data(i) + row * per_row, 0, per_row);
    }
  }
}

std::optional<RowRange> Tier::allocate_rows(uint64_t count, uint64_t hint) {
  auto range = rows_.allocate(count, hint);
  if (range) zero_untouched(*range);
  return range;
}

uint64_t Tier::extend_rows(RowRange& range, uint64_t count) {
  const uint64_t old_end = range.first + range.count;
  const uint64_t got = rows_.extend(range, count);
  if (got > 0) zero_untouched(RowRange{old_end, got});
  return got;
}

void Tier::zero_rows(RowRange range) {
  for (uint32_t i = 0; i < geometry_.layout.ways; ++i) {
    const numa::Region& region = *regions_[i];
    const uint64_t per_row = tierfs_region_row_bytes(&geometry_.layout, i);
    const uint64_t offset = range.first * per_row;
    const uint64_t length = range.count * per_row;
    // Punching a hole returns the pages of shared memory and sparse files to
    // the system and reads back as zeros; devices and huge pages get a memset.
    const uint64_t file_offset = geometry_.layout.base[i] + offset;
    const bool punched =
        region.spec().kind != numa::RegionKind::dax && region.fd() >= 0 &&
        fallocate(region.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(file_offset), static_cast<off_t>(length)) == 0;
    if (!punched) std::memset(region.data() + offset, 0, length);
  }
}

void Tier::free_rows(RowRange range) {
  if (range.count == 0) return;
  zero_rows(range);
  rows_.free(range);
}

void Tier::count_read(uint64_t bytes) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  bytes_read_.fetch_add(bytes, std::memory_order_relaxed);
}

void Tier::count_write(uint64_t bytes) {
  writes_.fetch_add(1, std::memory_order_relaxed);
  bytes_written_.fetch_add(bytes, std::memory_order_relaxed);
}

TierStats Tier::stats() const {
  TierStats s;
  s.name = geometry_.name;
  s.granularity_bytes = granularity_bytes();
  s.ways = geometry_.layout.ways;
  s.row_bytes = geometry_.row_bytes;
  const uint64_t used_rows = rows_.total_rows() - rows_.free_rows();
  s.capacity_bytes = geometry_.capacity_bytes;
  s.used_bytes = used_rows * geometry_.row_bytes;
  for (uint32_t i = 0; i < geometry_.layout.ways; ++i) {
    const uint64_t per_row = tierfs_region_row_bytes(&geometry_.layout, i);
    s.regions.push_back(RegionStats{regions_[i]->spec().text, geometry_.regions[i].bytes,
                                    used_rows * per_row, regions_[i]->numa_node()});
  }
  s.bytes_read = bytes_read_.load(std::memory_order_relaxed);
  s.bytes_written = bytes_written_.load(std::memory_order_relaxed);
  s.reads = reads_.load(std::memory_order_relaxed);
  s.writes = writes_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace tierfs
