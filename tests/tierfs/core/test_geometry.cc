// The resolved geometry that validation computes once: rows, row bytes,
// region byte ranges and the layout's device offsets (base), for weighted
// and unweighted tiers, and what Tier::at() makes of a mapping's answer.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "tests/tierfs/core/config_fixture.h"
#include "tierfs/core/config.h"
#include "tierfs/core/tier.h"

namespace {

using tierfs::parse_config;
using tierfs::testing::fake_topology;
constexpr uint64_t MiB = uint64_t{1} << 20, GiB = uint64_t{1} << 30;

TEST(Geometry, UnweightedTierHasEqualRegionsAndZeroBase) {
  const auto c = parse_config(R"(
[[tier]]
name = "dram"
regions = ["numa:0", "numa:1"]
size = "5MiB"
granularity = "1MiB"
)",
                              "u.toml", fake_topology());
  const tierfs::TierGeometry& g = c.tiers[0].geometry;
  EXPECT_EQ(g.name, "dram");
  EXPECT_EQ(g.row_bytes, 2 * MiB);
  EXPECT_EQ(g.rows, 2u);  // 5MiB holds two whole 2MiB rows
  EXPECT_EQ(g.capacity_bytes, 4 * MiB);
  EXPECT_EQ(c.tiers[0].size_bytes, g.capacity_bytes);
  EXPECT_EQ(g.ways(), 2u);
  EXPECT_EQ(g.granularity_bytes(), MiB);
  ASSERT_EQ(g.regions.size(), 2u);
  for (uint32_t i = 0; i < 2; ++i) {
    EXPECT_EQ(g.regions[i].spec.node, static_cast<int>(i));
    EXPECT_EQ(g.regions[i].offset_bytes, 0u);
    EXPECT_EQ(g.regions[i].bytes, 2 * MiB);
    EXPECT_EQ(g.layout.weights[i], 1);
    EXPECT_EQ(g.layout.base[i], 0u);
  }
}

TEST(Geometry, WeightedTierSplitsEachRowByWeight) {
  const auto c = parse_config(R"(
[[tier]]
name = "w"
regions = ["numa:0", "numa:1"]
size = "1GiB"
granularity = "64KiB"
weights = [3, 1]
)",
                              "w.toml", fake_topology());
  const tierfs::TierGeometry& g = c.tiers[0].geometry;
  EXPECT_EQ(g.row_bytes, 256u << 10);
  EXPECT_EQ(g.rows, 4096u);
  EXPECT_EQ(g.capacity_bytes, GiB);
  EXPECT_EQ(g.regions[0].bytes, 768 * MiB);
  EXPECT_EQ(g.regions[1].bytes, 256 * MiB);
  EXPECT_EQ(g.layout.weights[0], 3);
  EXPECT_EQ(g.layout.weights[1], 1);
}

TEST(Geometry, DeviceOffsetsAreTheLayoutBase) {
  // dax1.0 from 2GiB holds 6GiB, dax0.0 holds 4GiB: 2048 rows of 4MiB, 4GiB of each.
  const auto c = parse_config(R"(
[[tier]]
name = "cxl"
regions = ["dax:/dev/dax0.0", { region = "dax:/dev/dax1.0", offset = "2GiB" }]
granularity = "2MiB"
)",
                              "d.toml", fake_topology());
  const tierfs::TierGeometry& g = c.tiers[0].geometry;
  EXPECT_EQ(g.row_bytes, 4 * MiB);
  EXPECT_EQ(g.rows, 4 * GiB / (2 * MiB));
  EXPECT_EQ(g.capacity_bytes, 8 * GiB);
  EXPECT_EQ(g.regions[0].offset_bytes, 0u);
  EXPECT_EQ(g.regions[1].offset_bytes, 2 * GiB);
  EXPECT_EQ(g.regions[1].bytes, 4 * GiB);
  EXPECT_EQ(g.layout.base[0], 0u);
  EXPECT_EQ(g.layout.base[1], 2 * GiB);
  // The mapping answers device offsets: row 0 of region 1 is at 2GiB of the device.
  const tierfs_extent extent{0, g.row_bytes, 0, 0, 0};
  tierfs_mapping m{};
  ASSERT_EQ(tierfs_map_extent(&g.layout, &extent, 2 * MiB, &m), TIERFS_MAP_OK);
  EXPECT_EQ(m.region, 1u);
  EXPECT_EQ(m.region_offset, 2 * GiB);
}

TEST(Geometry, BuiltInDefaultIsResolvedToo) {
  const auto c = tierfs::default_config(fake_topology());
  const tierfs::TierGeometry& g = c.tiers[0].geometry;
  EXPECT_EQ(g.capacity_bytes, c.tiers[0].size_bytes);
  EXPECT_EQ(g.rows * g.row_bytes, g.capacity_bytes);
  ASSERT_EQ(g.regions.size(), 2u);
  EXPECT_EQ(g.regions[0].bytes + g.regions[1].bytes, g.capacity_bytes);
}

// A region whose bytes are a plain vector, to see where Tier::at() points.
class VectorRegion final : public tierfs::numa::Region {
 public:
  explicit VectorRegion(uint64_t bytes) : bytes_(bytes) {
    data_ = bytes_.data();
    size_bytes_ = bytes;
  }
  int fd() const override { return -1; }

 private:
  std::vector<std::byte> bytes_;
};

TEST(Geometry, TierAtTurnsDeviceOffsetsIntoRegionBytes) {
  tierfs::TierConfig tier;
  tier.name = "t";
  tier.granularity_bytes = 4096;
  tier.regions.push_back({tierfs::numa::parse_region_spec("file:/a"), 1 * MiB, {}});
  tier.regions.push_back({tierfs::numa::parse_region_spec("file:/b"), 0, {}});
  tier.weights = {2, 1};
  const tierfs::TierGeometry g = tierfs::tier_geometry(tier, 8);
  EXPECT_EQ(g.regions[0].bytes, 8 * 2 * 4096u);
  EXPECT_EQ(g.regions[1].bytes, 8 * 4096u);
  std::vector<std::unique_ptr<tierfs::numa::Region>> regions;
  for (const auto& r : g.regions) regions.push_back(std::make_unique<VectorRegion>(r.bytes));
  tierfs::Tier t(g, std::move(regions));
  EXPECT_EQ(t.at(0, 1 * MiB), t.region_data(0));
  EXPECT_EQ(t.at(0, 1 * MiB + 8192), t.region_data(0) + 8192);
  EXPECT_EQ(t.at(1, 4096), t.region_data(1) + 4096);
  EXPECT_EQ(t.stats().capacity_bytes, g.capacity_bytes);
  EXPECT_EQ(t.stats().regions[0].size_bytes, g.regions[0].bytes);
}

}  // namespace
