// The resolved geometry of a tier, from the one mapping definition's helpers.
#include "tierfs/core/geometry.h"

#include <stdexcept>

namespace tierfs {

TierGeometry make_geometry(std::string name, const tierfs_layout& layout,
                           std::vector<numa::RegionSpec> specs, uint64_t rows) {
  if (specs.size() != layout.ways)
    throw std::invalid_argument("make_geometry: one region spec per way");
  TierGeometry g;
  g.name = std::move(name);
  g.layout = layout;
  g.row_bytes = tierfs_row_bytes(&layout);
  g.rows = rows;
  g.capacity_bytes = rows * g.row_bytes;
  for (uint32_t i = 0; i < layout.ways; ++i)
    g.regions.push_back(RegionGeometry{std::move(specs[i]), layout.base[i],
                                       rows * tierfs_region_row_bytes(&layout, i)});
  return g;
}

}  // namespace tierfs
