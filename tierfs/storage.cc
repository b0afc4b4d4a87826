// Tiers and the Storage of a mount: regions opened from the configuration,
// the layout that bpf/tierfs_map.h computes with, row zeroing, statistics.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "tierfs/storage.h"

namespace tierfs {

Tier::Tier(const TierConfig& config, std::vector<std::unique_ptr<numa::Region>> regions)
    : name_(config.name),
      layout_(tier_layout(config)),
      row_bytes_(tier_row_bytes(config)),
      regions_(std::move(regions)),
      rows_(tier_rows(config)) {
  bool fresh_is_zero = true;
  for (const auto& region : regions_)
    fresh_is_zero = fresh_is_zero && region->spec().kind == numa::RegionKind::numa;
  // Devices and files may hold a previous user's bytes: remember which rows still might.
  if (!fresh_is_zero) untouched_.assign((rows_.total_rows() + 63) / 64, ~uint64_t{0});
}

Tier::~Tier() = default;

const std::string& Tier::name() const {
  return name_;
}
const tierfs_layout& Tier::layout() const {
  return layout_;
}
uint64_t Tier::row_bytes() const {
  return row_bytes_;
}
uint64_t Tier::granularity_bytes() const {
  return uint64_t{1} << layout_.granularity_shift;
}
std::byte* Tier::region_data(uint32_t region) const {
  return regions_[region]->data();
}
const numa::Region& Tier::region(uint32_t index) const {
  return *regions_.at(index);
}
uint32_t Tier::ways() const {
  return layout_.ways;
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
    for (uint32_t i = 0; i < layout_.ways; ++i) {
      const uint64_t per_row = tierfs_region_row_bytes(&layout_, i);
      std::memset(regions_[i]->data() + row * per_row, 0, per_row);
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
  for (uint32_t i = 0; i < layout_.ways; ++i) {
    const numa::Region& region = *regions_[i];
    const uint64_t per_row = tierfs_region_row_bytes(&layout_, i);
    const uint64_t offset = range.first * per_row;
    const uint64_t length = range.count * per_row;
    // Punching a hole returns the pages of shared memory and sparse files to
    // the system and reads back as zeros; devices and huge pages get a memset.
    const uint64_t file_offset =
        offset + (region.spec().kind == numa::RegionKind::file ? region.spec().offset_bytes : 0);
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
  s.name = name_;
  s.granularity_bytes = granularity_bytes();
  s.ways = layout_.ways;
  s.row_bytes = row_bytes_;
  const uint64_t used_rows = rows_.total_rows() - rows_.free_rows();
  s.capacity_bytes = rows_.total_rows() * row_bytes_;
  s.used_bytes = used_rows * row_bytes_;
  for (uint32_t i = 0; i < layout_.ways; ++i) {
    const uint64_t per_row = tierfs_region_row_bytes(&layout_, i);
    s.regions.push_back(RegionStats{regions_[i]->spec().text, rows_.total_rows() * per_row,
                                    used_rows * per_row, regions_[i]->numa_node()});
  }
  s.bytes_read = bytes_read_.load(std::memory_order_relaxed);
  s.bytes_written = bytes_written_.load(std::memory_order_relaxed);
  s.reads = reads_.load(std::memory_order_relaxed);
  s.writes = writes_.load(std::memory_order_relaxed);
  return s;
}

std::unique_ptr<Storage> Storage::create(
    const Config& config, std::vector<std::vector<std::unique_ptr<numa::Region>>> regions) {
  if (regions.size() != config.tiers.size())
    throw std::invalid_argument("Storage::create: one region list per tier");
  std::unique_ptr<Storage> storage(new Storage());
  for (size_t t = 0; t < config.tiers.size(); ++t) {
    const TierConfig& tier = config.tiers[t];
    for (size_t i = 0; i < tier.regions.size(); ++i)
      if (regions[t].at(i)->size_bytes() < region_bytes(tier, i))
        throw std::runtime_error(
            fmt::format("tier \"{}\": region \"{}\" is smaller than the {} bytes its rows need",
                        tier.name, tier.regions[i].spec.text, region_bytes(tier, i)));
    storage->tiers_.push_back(std::make_unique<Tier>(tier, std::move(regions[t])));
  }
  return storage;
}

std::unique_ptr<Storage> Storage::open(const Config& config) {
  std::vector<std::vector<std::unique_ptr<numa::Region>>> regions;
  for (size_t t = 0; t < config.tiers.size(); ++t) {
    const TierConfig& tier = config.tiers[t];
    regions.emplace_back();
    for (size_t i = 0; i < tier.regions.size(); ++i) {
      numa::RegionOptions options;
      options.size_bytes = region_bytes(tier, i);
      options.hugepages = tier.hugepages;
      options.create = tier.create_files;
      options.shm_name = fmt::format("/tierfs.{}.{}.{}", getpid(), tier.name, i);
      try {
        regions.back().push_back(numa::Region::open(tier.regions[i].spec, options));
      } catch (const std::runtime_error& e) {
        throw std::runtime_error(fmt::format("tier \"{}\": {}", tier.name, e.what()));
      }
    }
  }
  return create(config, std::move(regions));
}

size_t Storage::tier_count() const {
  return tiers_.size();
}
Tier& Storage::tier(size_t index) {
  return *tiers_.at(index);
}

int Storage::tier_index(std::string_view name) const {
  for (size_t i = 0; i < tiers_.size(); ++i)
    if (tiers_[i]->name() == name) return static_cast<int>(i);
  return -1;
}

std::vector<TierStats> Storage::stats() const {
  std::vector<TierStats> out;
  for (const auto& tier : tiers_) out.push_back(tier->stats());
  return out;
}

uint64_t Storage::capacity_bytes() const {
  uint64_t total = 0;
  for (const auto& tier : tiers_) total += tier->rows().total_rows() * tier->row_bytes();
  return total;
}

uint64_t Storage::free_bytes() const {
  uint64_t total = 0;
  for (const auto& tier : tiers_) total += tier->rows().free_rows() * tier->row_bytes();
  return total;
}

void Storage::set_listener(ExtentListener* listener) {
  listener_.store(listener);
}
ExtentListener* Storage::listener() const {
  return listener_.load();
}

}  // namespace tierfs
