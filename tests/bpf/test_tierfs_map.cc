// The shared mapping header against a slow reference that lays a file out
// unit by unit and answers for every byte, plus the inverse, weight shares,
// validation and the edges of the 64-bit range.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "bpf/tierfs_map.h"

namespace {

struct Place {
  uint32_t region;
  uint64_t region_offset;
};

// Independent model: walks the tier's address space unit by unit from the
// row that holds the extent's first address, handing each region its
// weight's worth of consecutive units per row, and keeps the units the
// extent covers.
class ReferenceLayout {
 public:
  ReferenceLayout(const tierfs_layout& l, const tierfs_extent& e) {
    shift_ = l.granularity_shift;
    const uint64_t g = uint64_t{1} << shift_;
    uint32_t units = 0;
    for (uint32_t i = 0; i < l.ways; ++i) units += l.weights[i];
    first_unit_ = e.tier_address >> shift_;
    address_ = e.tier_address;
    const uint64_t last_unit = (e.tier_address + (e.length - 1)) >> shift_;
    const uint64_t row = first_unit_ / units;
    std::vector<uint64_t> cursor(l.ways);
    for (uint32_t i = 0; i < l.ways; ++i) cursor[i] = l.base[i] + row * l.weights[i] * g;
    uint64_t unit = row * units;
    while (unit <= last_unit) {
      for (uint32_t i = 0; i < l.ways && unit <= last_unit; ++i) {
        for (uint32_t k = 0; k < l.weights[i] && unit <= last_unit; ++k, ++unit) {
          if (unit >= first_unit_) units_.push_back({i, cursor[i]});
          cursor[i] += g;
        }
      }
    }
  }
  Place at(uint64_t rel) const {
    const uint64_t address = address_ + rel;
    const Place& unit = units_.at((address >> shift_) - first_unit_);
    return {unit.region, unit.region_offset + (address & ((uint64_t{1} << shift_) - 1))};
  }

 private:
  std::vector<Place> units_;
  uint64_t first_unit_ = 0;
  uint64_t address_ = 0;
  uint32_t shift_ = 0;
};

tierfs_layout random_layout(std::mt19937_64& rng, uint32_t max_ways, uint32_t max_weight,
                            uint32_t max_shift) {
  tierfs_layout l{};
  l.ways = 1 + rng() % max_ways;
  l.granularity_shift =
      TIERFS_MIN_GRANULARITY_SHIFT + rng() % (max_shift - TIERFS_MIN_GRANULARITY_SHIFT + 1);
  const bool weighted = rng() % 2;
  for (uint32_t i = 0; i < l.ways; ++i) {
    l.weights[i] = weighted ? static_cast<uint8_t>(1 + rng() % max_weight) : 1;
    l.base[i] = (rng() % 64) << 12;
  }
  return l;
}

// Extents at any 4 KiB address of the tier (inside a row and across rows,
// equal and weighted layouts, and at the top of the 64-bit address space).
TEST(TierfsMap, EveryByteAgreesWithReference) {
  std::mt19937_64 rng(20261124);
  for (int round = 0; round < 120; ++round) {
    tierfs_layout l = random_layout(rng, 6, 4, 13);
    const uint64_t row = tierfs_row_bytes(&l);
    tierfs_extent e{};
    e.file_offset = (rng() % 1000) * 4096 + rng() % 4096;
    e.length = round % 3 == 0 ? 4096 * (1 + rng() % 4) - rng() % 4096
                              : row * (1 + rng() % 3) - rng() % row;
    if (round % 4 == 3) {
      // Ending at the last 4 KiB blocks of the 2^64 address space, on layouts
      // whose row divides 2^64 (equal and weighted), with base 0 so the
      // region offsets (at most the address) stay representable.
      static const std::vector<std::vector<uint8_t>> kTopWeights = {
          {1}, {1, 3}, {1, 1, 1, 1}, {1, 2, 1}, {5, 3}};
      const auto& weights = kTopWeights[rng() % kTopWeights.size()];
      l = tierfs_layout{};
      l.ways = static_cast<uint32_t>(weights.size());
      l.granularity_shift = 12 + rng() % 2;
      for (uint32_t i = 0; i < l.ways; ++i) l.weights[i] = weights[i];
      const uint64_t blocks = (e.length + 4095) / 4096;
      e.tier_address = UINT64_MAX - blocks * 4096 + 1 - (rng() % 4) * 4096;
    } else {
      e.tier_address = (rng() % (8 * row / 4096)) * 4096;
    }
    const ReferenceLayout ref(l, e);

    // Walk the extent as the iomap iterator does, checking every byte of every run.
    uint64_t off = e.file_offset;
    uint64_t runs = 0;
    while (off < e.file_offset + e.length) {
      tierfs_mapping m{};
      ASSERT_EQ(tierfs_map_extent(&l, &e, off, &m), TIERFS_MAP_OK);
      ASSERT_GT(m.length, 0u);
      ASSERT_LE(off - e.file_offset + m.length, e.length);
      for (uint64_t b = 0; b < m.length; ++b) {
        const Place p = ref.at(off - e.file_offset + b);
        ASSERT_EQ(p.region, m.region) << "round " << round << " byte " << off + b;
        ASSERT_EQ(p.region_offset, m.region_offset + b) << "round " << round << " byte " << off + b;
      }
      // The run is maximal: the next byte, if any, is somewhere else.
      const uint64_t next = off - e.file_offset + m.length;
      if (next < e.length) {
        const Place p = ref.at(next);
        EXPECT_FALSE(p.region == m.region && p.region_offset == m.region_offset + m.length);
      }
      // Mapping from inside the run gives the same place.
      const uint64_t mid = rng() % m.length;
      tierfs_mapping inside{};
      ASSERT_EQ(tierfs_map_extent(&l, &e, off + mid, &inside), TIERFS_MAP_OK);
      EXPECT_EQ(inside.region, m.region);
      EXPECT_EQ(inside.region_offset, m.region_offset + mid);
      EXPECT_EQ(inside.length, m.length - mid);
      off += m.length;
      ++runs;
    }
    EXPECT_GT(runs, 0u);
  }
}

TEST(TierfsMap, InverseRoundTrips) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 2000; ++round) {
    const tierfs_layout l =
        random_layout(rng, TIERFS_MAX_WAYS, TIERFS_MAX_WEIGHT, TIERFS_MAX_GRANULARITY_SHIFT);
    tierfs_extent e{};
    e.file_offset = rng() >> 8;
    e.tier_address = (rng() % (100000 * (tierfs_row_bytes(&l) >> 12))) << 12;
    e.length = 1 + rng() % (tierfs_row_bytes(&l) * 50);
    for (int i = 0; i < 20; ++i) {
      const uint64_t off = e.file_offset + rng() % e.length;
      tierfs_mapping m{};
      ASSERT_EQ(tierfs_map_extent(&l, &e, off, &m), TIERFS_MAP_OK);
      __u64 back = 0;
      ASSERT_EQ(tierfs_unmap_extent(&l, &e, m.region, m.region_offset, &back), TIERFS_MAP_OK);
      ASSERT_EQ(back, off);
      if (m.length > 1) {
        ASSERT_EQ(tierfs_unmap_extent(&l, &e, m.region, m.region_offset + m.length - 1, &back),
                  TIERFS_MAP_OK);
        ASSERT_EQ(back, off + m.length - 1);
      }
    }
  }
}

TEST(TierfsMap, InverseRejectsBytesOutsideTheExtent) {
  tierfs_layout l{};
  l.ways = 2;
  l.granularity_shift = 12;
  l.weights[0] = l.weights[1] = 1;
  l.base[1] = 1 << 20;
  const tierfs_extent e{
      .file_offset = 0, .length = 3 * 4096, .tier_address = 2 * 8192, .tier = 0, .flags = 0};
  __u64 back = 0;
  EXPECT_EQ(tierfs_unmap_extent(&l, &e, 0, 0, &back), TIERFS_MAP_OUTSIDE);     // row 0
  EXPECT_EQ(tierfs_unmap_extent(&l, &e, 1, 4096, &back), TIERFS_MAP_OUTSIDE);  // before base
  EXPECT_EQ(tierfs_unmap_extent(&l, &e, 1, (1 << 20) + 3 * 4096, &back),
            TIERFS_MAP_OUTSIDE);                                            // unit 3 > length
  EXPECT_EQ(tierfs_unmap_extent(&l, &e, 2, 0, &back), TIERFS_MAP_OUTSIDE);  // no region 2
  EXPECT_EQ(tierfs_unmap_extent(&l, &e, 0, 2 * 4096 + 5, &back), TIERFS_MAP_OK);
  EXPECT_EQ(back, 5u);
  // An extent from the second unit of row 2: row 2's first unit is not its.
  const tierfs_extent inside{
      .file_offset = 0, .length = 4096, .tier_address = 2 * 8192 + 4096, .tier = 0, .flags = 0};
  EXPECT_EQ(tierfs_unmap_extent(&l, &inside, 0, 2 * 4096, &back), TIERFS_MAP_OUTSIDE);
  EXPECT_EQ(tierfs_unmap_extent(&l, &inside, 1, (1 << 20) + 2 * 4096 + 7, &back), TIERFS_MAP_OK);
  EXPECT_EQ(back, 7u);
}

TEST(TierfsMap, WeightsShareEachRowExactly) {
  std::mt19937_64 rng(3);
  for (int round = 0; round < 200; ++round) {
    tierfs_layout l = random_layout(rng, TIERFS_MAX_WAYS, TIERFS_MAX_WEIGHT, 16);
    for (uint32_t i = 0; i < l.ways; ++i) l.weights[i] = static_cast<uint8_t>(1 + rng() % 255);
    const uint64_t row = tierfs_row_bytes(&l);
    const uint32_t units = tierfs_row_units(&l);
    const tierfs_extent e{
        .file_offset = 0, .length = 2 * row, .tier_address = 0, .tier = 0, .flags = 0};
    std::vector<uint64_t> bytes(l.ways);
    for (uint64_t off = row; off < 2 * row;) {  // the second row, whole
      tierfs_mapping m{};
      ASSERT_EQ(tierfs_map_extent(&l, &e, off, &m), TIERFS_MAP_OK);
      bytes[m.region] += m.length;
      off += m.length;
    }
    for (uint32_t i = 0; i < l.ways; ++i)  // bytes_i / row == weight_i / units, exactly
      ASSERT_EQ(bytes[i] * units, uint64_t{l.weights[i]} * row) << "region " << i;
  }
}

TEST(TierfsMap, OneWayExtentIsOneRun) {
  tierfs_layout l{};
  l.ways = 1;
  l.granularity_shift = 12;
  l.weights[0] = 3;
  l.base[0] = 8192;
  const tierfs_extent e{
      .file_offset = 100, .length = 10 << 20, .tier_address = 4 * 3 * 4096, .tier = 0, .flags = 0};
  tierfs_mapping m{};
  ASSERT_EQ(tierfs_map_extent(&l, &e, 100 + 5000, &m), TIERFS_MAP_OK);
  EXPECT_EQ(m.region, 0u);
  EXPECT_EQ(m.region_offset, 8192u + 4 * 3 * 4096 + 5000);
  EXPECT_EQ(m.length, (10u << 20) - 5000);
}

TEST(TierfsMap, RejectsBadLayouts) {
  tierfs_layout l{};
  const tierfs_extent e{
      .file_offset = 0, .length = 1 << 20, .tier_address = 0, .tier = 0, .flags = 0};
  tierfs_mapping m{};
  l.ways = 0;  // no ways: would divide by zero
  l.granularity_shift = 12;
  EXPECT_EQ(tierfs_map_extent(&l, &e, 0, &m), TIERFS_MAP_BAD_LAYOUT);
  l.ways = 33;
  EXPECT_EQ(tierfs_map_extent(&l, &e, 0, &m), TIERFS_MAP_BAD_LAYOUT);
  l.ways = 2;
  l.weights[0] = 1;
  l.weights[1] = 0;  // zero weight
  EXPECT_EQ(tierfs_map_extent(&l, &e, 0, &m), TIERFS_MAP_BAD_LAYOUT);
  l.weights[1] = 1;
  l.granularity_shift = 11;
  EXPECT_EQ(tierfs_map_extent(&l, &e, 0, &m), TIERFS_MAP_BAD_LAYOUT);
  l.granularity_shift = 31;
  EXPECT_EQ(tierfs_map_extent(&l, &e, 0, &m), TIERFS_MAP_BAD_LAYOUT);
  l.granularity_shift = 30;
  EXPECT_EQ(tierfs_map_extent(&l, &e, 0, &m), TIERFS_MAP_OK);
  EXPECT_EQ(tierfs_map_extent(&l, &e, 1 << 20, &m), TIERFS_MAP_OUTSIDE);
}

TEST(TierfsMap, TopOfTheOffsetRange) {
  tierfs_layout l{};
  l.ways = 32;
  l.granularity_shift = 30;
  for (auto& w : l.weights) w = 255;
  // An extent ending at the very last file byte.
  const uint64_t top = UINT64_MAX;
  tierfs_extent e{.file_offset = top - (uint64_t{1} << 40) + 1,
                  .length = uint64_t{1} << 40,
                  .tier_address = 0,
                  .tier = 0,
                  .flags = 0};
  tierfs_mapping m{};
  ASSERT_EQ(tierfs_map_extent(&l, &e, top, &m), TIERFS_MAP_OK);
  EXPECT_EQ(m.length, 1u);
  __u64 back = 0;
  ASSERT_EQ(tierfs_unmap_extent(&l, &e, m.region, m.region_offset, &back), TIERFS_MAP_OK);
  EXPECT_EQ(back, top);
  // The last 4 KiB block of the tier's address space maps; the byte after it
  // would need an address past 2^64.
  e.tier_address = UINT64_MAX - 4095;
  ASSERT_EQ(tierfs_map_extent(&l, &e, e.file_offset + 4095, &m), TIERFS_MAP_OK);
  ASSERT_EQ(tierfs_unmap_extent(&l, &e, m.region, m.region_offset, &back), TIERFS_MAP_OK);
  EXPECT_EQ(back, e.file_offset + 4095);
  EXPECT_EQ(tierfs_map_extent(&l, &e, e.file_offset + 4096, &m), TIERFS_MAP_OVERFLOW);
  e.tier_address = UINT64_MAX;
  EXPECT_EQ(tierfs_map_extent(&l, &e, top, &m), TIERFS_MAP_OVERFLOW);
  // A base so high that the row's last byte would wrap.
  e.tier_address = 0;
  l.base[0] = UINT64_MAX - 100;
  EXPECT_EQ(tierfs_map_extent(&l, &e, e.file_offset, &m), TIERFS_MAP_OVERFLOW);
}

TEST(TierfsMap, OneWayRunStopsAtTheEndOfTheAddressSpace) {
  tierfs_layout l{};
  l.ways = 1;
  l.granularity_shift = 12;
  l.weights[0] = 1;
  l.base[0] = UINT64_MAX - 8191;  // two units fit, the third would wrap
  const tierfs_extent e{
      .file_offset = 0, .length = 1 << 20, .tier_address = 0, .tier = 0, .flags = 0};
  tierfs_mapping m{};
  ASSERT_EQ(tierfs_map_extent(&l, &e, 10, &m), TIERFS_MAP_OK);
  EXPECT_EQ(m.region_offset, UINT64_MAX - 8191 + 10);
  EXPECT_EQ(m.length, 8192u - 10);
  EXPECT_EQ(tierfs_map_extent(&l, &e, 8192, &m), TIERFS_MAP_OVERFLOW);
}

}  // namespace
