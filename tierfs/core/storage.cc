// Storage: the tiers of a mount, opened from the configuration.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "tierfs/core/storage.h"

#include "tierfs/core/copy_guard.h"

namespace tierfs {

std::unique_ptr<Storage> Storage::create(
    const Config& config, std::vector<std::vector<std::unique_ptr<numa::Region>>> regions) {
  if (regions.size() != config.tiers.size())
    throw std::invalid_argument("Storage::create: one region list per tier");
  std::unique_ptr<Storage> storage(new Storage());
  // Regions were checked against the geometry once, by validation and the
  // Region::open that mapped exactly geometry.regions[i]; no third check here.
  for (size_t t = 0; t < config.tiers.size(); ++t) {
    if (config.tiers[t].data_path_choice.path == DataPath::kernel && regions[t].empty())
      storage->tiers_.push_back(Tier::without_regions(config.tiers[t].geometry));
    else
      storage->tiers_.push_back(
          std::make_unique<Tier>(config.tiers[t].geometry, std::move(regions[t])));
    storage->tiers_.back()->set_persistent(config.tiers[t].persistent);
  }
  return storage;
}

std::unique_ptr<Storage> Storage::open(const Config& config, MountState* state) {
  std::vector<std::vector<std::unique_ptr<numa::Region>>> regions;
  for (const TierConfig& tier : config.tiers) {
    regions.emplace_back();
    // A kernel-path tier's files are backing files in a tmpfs: mapping its
    // regions too would reserve its memory twice.
    if (tier.data_path_choice.path == DataPath::kernel) {
      if (state != nullptr)
        for (size_t i = 0; i < tier.geometry.regions.size(); ++i) state->forget_shm(tier.name, i);
      continue;
    }
    for (size_t i = 0; i < tier.geometry.regions.size(); ++i) {
      const RegionGeometry& range = tier.geometry.regions[i];
      numa::RegionOptions options;
      options.offset_bytes = range.offset_bytes;
      options.size_bytes = range.bytes;
      options.hugepages = tier.hugepages;
      options.create = tier.create_files;
      options.take_over = tier.regions[i].take_over;
      if (state != nullptr && range.spec.kind == numa::RegionKind::numa) {
        options.shm_name = state->shm_name(tier.name, i);
        options.adopt = true;
      }
      if (state != nullptr && range.spec.kind == numa::RegionKind::file) {
        options.recorded_identity = state->region_identity(tier.name, i);
        options.record_identity = [state, &tier, i](const std::string& identity) {
          state->record_region(tier.name, i, identity);
        };
      }
      try {
        regions.back().push_back(numa::Region::open(range.spec, options));
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

size_t Storage::retire_faulting(std::span<const iovec> pieces) {
  size_t bad = 0;
  for (const iovec& piece : pieces) {
    const auto* at = static_cast<const std::byte*>(piece.iov_base);
    const std::byte* end = at + piece.iov_len;
    // One probe per page the piece touches.
    for (; at < end; at += kBlockBytes - reinterpret_cast<uintptr_t>(at) % kBlockBytes) {
      std::byte probe;
      const void* fault = guarded_copy(&probe, at, 1);
      if (fault == nullptr) continue;
      for (const auto& tier : tiers_)
        for (uint32_t i = 0; i < tier->ways(); ++i)
          if (tier->mark_bad(i, static_cast<const std::byte*>(fault))) ++bad;
    }
  }
  return bad;
}

void Storage::prepare_unmount() {
  for (const auto& tier : tiers_) tier->prepare_unmount();
}

uint64_t Storage::capacity_bytes() const {
  uint64_t total = 0;
  for (const auto& tier : tiers_) total += tier->geometry().capacity_bytes;
  return total;
}

uint64_t Storage::free_bytes() const {
  uint64_t total = 0;
  for (const auto& tier : tiers_) total += tier->free_bytes();
  return total;
}

void Storage::set_maps(bpf::IomapMaps* maps) {
  maps_.store(maps);
}
bpf::IomapMaps* Storage::maps() const {
  return maps_.load();
}
void Storage::set_journal(Journal* journal) {
  journal_ = journal;
}
Journal* Storage::journal() const {
  return journal_;
}

}  // namespace tierfs
