// The resolved geometry of a tier: what configuration validation computes
// once and everything else (Storage and Tier, the BPF maps, `tierfs map` and
// `stats`, `tierfs check-config --json`, the benchmarks) consumes. Row and
// region sizes come from the bpf/tierfs_map.h helpers, never re-derived.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bpf/tierfs_map.h"
#include "numa/region.h"

namespace tierfs {

// Region i of a tier: the device range [offset_bytes, offset_bytes + bytes).
struct RegionGeometry {
  numa::RegionSpec spec;
  uint64_t offset_bytes = 0;  // where row 0 is inside the device, file or shm object
  uint64_t bytes = 0;         // rows * tierfs_region_row_bytes(layout, i)
};

// layout.base[i] is region i's device offset, so the region offsets that
// tierfs_map_extent returns are offsets inside the device; a Region maps
// [offset_bytes, offset_bytes + bytes) and Tier::at() subtracts base once.
struct TierGeometry {
  std::string name;
  tierfs_layout layout{};
  uint64_t row_bytes = 0;  // tierfs_row_bytes(layout)
  uint64_t rows = 0;
  uint64_t capacity_bytes = 0;  // rows * row_bytes
  std::vector<RegionGeometry> regions;

  uint64_t granularity_bytes() const { return uint64_t{1} << layout.granularity_shift; }
  uint32_t ways() const { return layout.ways; }
};

// The geometry of `rows` rows over a layout (ways, granularity, weights and
// base filled in) and its regions' specs, one per way.
TierGeometry make_geometry(std::string name, const tierfs_layout& layout,
                           std::vector<numa::RegionSpec> specs, uint64_t rows);

}  // namespace tierfs
