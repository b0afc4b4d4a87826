// Tier: regions of one interleave set, the layout that bpf/tierfs_map.h
// computes with, block zeroing, statistics.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "tierfs/core/tier.h"

namespace tierfs {

Tier::Tier(const TierGeometry& geometry, std::vector<std::unique_ptr<numa::Region>> regions)
    : geometry_(geometry),
      regions_(std::move(regions)),
      blocks_(geometry.capacity_bytes / kBlockBytes) {
  if (regions_.size() != geometry_.regions.size())
    throw std::invalid_argument("Tier: one region per way of the geometry");
  bool fresh_is_zero = true;
  for (const auto& region : regions_)
    fresh_is_zero = fresh_is_zero && region->spec().kind == numa::RegionKind::numa;
  // Devices and files may hold a previous user's bytes: remember which rows still might.
  if (!fresh_is_zero) untouched_.assign((geometry_.rows + 63) / 64, ~uint64_t{0});
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
uint64_t Tier::row_blocks() const {
  return geometry_.row_bytes / kBlockBytes;
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
BlockAllocator& Tier::blocks() {
  return blocks_;
}
uint64_t Tier::free_bytes() const {
  return blocks_.free_blocks() * kBlockBytes;
}

// A row is zeroed whole the first time any block of it is handed out: every
// other block of it is free then, and free blocks read as zeros.
void Tier::zero_untouched(BlockRange range) {
  if (untouched_.empty() || range.count == 0) return;
  const uint64_t per_row = row_blocks();
  std::lock_guard guard(untouched_lock_);
  for (uint64_t row = range.first / per_row; row <= (range.end() - 1) / per_row; ++row) {
    uint64_t& word = untouched_[row / 64];
    const uint64_t bit = uint64_t{1} << (row % 64);
    if ((word & bit) == 0) continue;
    word &= ~bit;
    for (uint32_t i = 0; i < geometry_.layout.ways; ++i) {
      const uint64_t region_row = tierfs_region_row_bytes(&geometry_.layout, i);
      std::memset(region_data(i) + row * region_row, 0, region_row);
    }
  }
}

std::optional<BlockRange> Tier::allocate_blocks(const BlockRequest& request) {
  auto range = blocks_.allocate(request);
  if (range) zero_untouched(*range);
  return range;
}

uint64_t Tier::extend_blocks(BlockRange& range, uint64_t count) {
  const uint64_t old_end = range.end();
  const uint64_t got = blocks_.extend(range, count);
  if (got > 0) zero_untouched(BlockRange{old_end, got});
  return got;
}

void Tier::discard(uint32_t region_index, uint64_t device_offset, uint64_t length) {
  const numa::Region& region = *regions_[region_index];
  // Punching a hole returns the pages of shared memory and sparse files to
  // the system and reads back as zeros; devices and huge pages get a memset.
  const bool punched =
      region.spec().kind != numa::RegionKind::dax && region.fd() >= 0 &&
      fallocate(region.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                static_cast<off_t>(device_offset), static_cast<off_t>(length)) == 0;
  if (!punched) std::memset(at(region_index, device_offset), 0, length);
}

void Tier::zero_blocks(BlockRange range) {
  const uint64_t row = geometry_.row_bytes;
  const uint64_t begin = range.first * kBlockBytes, end = range.end() * kBlockBytes;
  const uint64_t whole_first = std::min(end, (begin + row - 1) / row * row);
  const uint64_t whole_end = std::max(whole_first, end / row * row);
  // Partial rows at either edge, unit by unit through the one mapping.
  auto pieces = [&](uint64_t from, uint64_t to) {
    if (from >= to) return;
    const tierfs_extent span{0, to - from, from, 0, 0};
    for (uint64_t off = 0; off < span.length;) {
      tierfs_mapping m{};
      if (tierfs_map_extent(&geometry_.layout, &span, off, &m) != TIERFS_MAP_OK)
        throw std::logic_error("Tier::zero_blocks: an address outside the tier");
      discard(m.region, m.region_offset, m.length);
      off += m.length;
    }
  };
  pieces(begin, whole_first);
  // Whole rows are one range in every region.
  if (whole_end > whole_first) {
    for (uint32_t i = 0; i < geometry_.layout.ways; ++i) {
      const uint64_t region_row = tierfs_region_row_bytes(&geometry_.layout, i);
      discard(i, geometry_.layout.base[i] + whole_first / row * region_row,
              (whole_end - whole_first) / row * region_row);
    }
  }
  pieces(whole_end, end);
}

void Tier::free_blocks(BlockRange range) {
  if (range.count == 0) return;
  zero_blocks(range);
  blocks_.free(range);
}

namespace {

// Adds one request to `ops` and `bytes` of the tier and of each region it reached.
template <typename Counter>
void count_request(const Tier::RegionBytes& bytes_per_region, uint32_t ways, Counter&& counter) {
  uint64_t total = 0;
  for (uint32_t i = 0; i < ways; ++i) {
    if (bytes_per_region[i] == 0) continue;
    counter(static_cast<int>(i), bytes_per_region[i]);
    total += bytes_per_region[i];
  }
  if (total > 0) counter(-1, total);
}

}  // namespace

void Tier::count_read(const RegionBytes& bytes_per_region) {
  count_request(bytes_per_region, ways(), [this](int region, uint64_t bytes) {
    Traffic& t = region < 0 ? traffic_ : region_traffic_[region];
    t.reads.fetch_add(1, std::memory_order_relaxed);
    t.bytes_read.fetch_add(bytes, std::memory_order_relaxed);
  });
}

void Tier::count_write(const RegionBytes& bytes_per_region) {
  count_request(bytes_per_region, ways(), [this](int region, uint64_t bytes) {
    Traffic& t = region < 0 ? traffic_ : region_traffic_[region];
    t.writes.fetch_add(1, std::memory_order_relaxed);
    t.bytes_written.fetch_add(bytes, std::memory_order_relaxed);
  });
}

namespace {

template <typename Stats, typename Traffic>
void load_traffic(const Traffic& t, Stats& s) {
  s.bytes_read = t.bytes_read.load(std::memory_order_relaxed);
  s.bytes_written = t.bytes_written.load(std::memory_order_relaxed);
  s.reads = t.reads.load(std::memory_order_relaxed);
  s.writes = t.writes.load(std::memory_order_relaxed);
}

}  // namespace

TierStats Tier::stats() const {
  TierStats s;
  s.name = geometry_.name;
  s.granularity_bytes = granularity_bytes();
  s.ways = geometry_.layout.ways;
  s.row_bytes = geometry_.row_bytes;
  const uint64_t used = (blocks_.total_blocks() - blocks_.free_blocks()) * kBlockBytes;
  s.capacity_bytes = geometry_.capacity_bytes;
  s.used_bytes = used;
  // Each region's share of the used bytes by its weight: exact for whole
  // rows, within a row for the partial ones (walking every extent is not worth it).
  const uint32_t units = tierfs_row_units(&geometry_.layout);
  for (uint32_t i = 0; i < geometry_.layout.ways; ++i) {
    RegionStats& r = s.regions.emplace_back(
        RegionStats{regions_[i]->spec().text, geometry_.regions[i].bytes,
                    used / units * geometry_.layout.weights[i], regions_[i]->numa_node()});
    load_traffic(region_traffic_[i], r);
  }
  load_traffic(traffic_, s);
  return s;
}

}  // namespace tierfs
