// The stripe path (bpf/stripe.h): for equal-weight tiers the stripe
// configuration and MAPPED_STRIPE answers, built from the same layout, put
// every byte where tierfs_map_extent says, under the RAID0 rule; weighted
// tiers are no stripe. Random layouts and extents, every byte of sampled
// ranges compared. Plain C++, no privileges.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "bpf/stripe.h"

namespace {

constexpr uint64_t KiB = 1024;

TEST(Stripe, AWeightedTierIsNoStripe) {
  tierfs_layout l{};
  l.ways = 2;
  l.granularity_shift = 12;
  l.weights[0] = 2;
  l.weights[1] = 1;
  const uint32_t cookies[2] = {1, 2};
  tierfs_stripe_config c{};
  EXPECT_EQ(tierfs_stripe_config_of(&l, cookies, &c), -1);
  l.weights[0] = 1;
  ASSERT_EQ(tierfs_stripe_config_of(&l, cookies, &c), 0);
  EXPECT_EQ(c.nr_strips, 2u);
  EXPECT_EQ(c.width, 4 * KiB);
  EXPECT_EQ(c.strips[1].dev, 2u);
}

TEST(Stripe, ConfigOfAFourWayTier) {
  tierfs_layout l{};
  l.ways = 4;
  l.granularity_shift = 16;
  for (uint32_t i = 0; i < 4; ++i) {
    l.weights[i] = 2;
    l.base[i] = (i + 1) * (1 << 20);
  }
  const uint32_t cookies[4] = {7, 8, 9, 10};
  tierfs_stripe_config c{};
  ASSERT_EQ(tierfs_stripe_config_of(&l, cookies, &c), 0);
  EXPECT_EQ(c.width, 128 * KiB) << "two 64 KiB units per region and row";
  EXPECT_EQ(c.strips[3].addr, 4u << 20);
  uint32_t strip = 0;
  __u64 addr = 0;
  // Linear byte 5 * 128 KiB + 3: unit 5 -> strip 1, row 1.
  ASSERT_EQ(tierfs_stripe_locate(&c, 5 * 128 * KiB + 3, &strip, &addr), 0);
  EXPECT_EQ(strip, 1u);
  EXPECT_EQ(addr, (2u << 20) + 128 * KiB + 3);
}

// Every byte of many random ranges: the stripe answer plus the RAID0 rule
// lands on the region and offset tierfs_map_extent computes.
TEST(Stripe, EveryByteLandsWhereTierfsMapExtentSays) {
  std::mt19937_64 rng(15);
  uint64_t bytes = 0, answers = 0;
  for (int round = 0; round < 400; ++round) {
    tierfs_layout l{};
    l.ways = 1 + rng() % TIERFS_MAX_WAYS;
    l.granularity_shift = 12 + rng() % 9;
    const uint8_t weight = static_cast<uint8_t>(1 + rng() % 4);
    std::vector<uint32_t> cookies(l.ways);
    for (uint32_t i = 0; i < l.ways; ++i) {
      l.weights[i] = weight;
      l.base[i] = (rng() % (uint64_t{1} << 30)) << 12;
      cookies[i] = 1 + i;
    }
    tierfs_stripe_config c{};
    ASSERT_EQ(tierfs_stripe_config_of(&l, cookies.data(), &c), 0);
    tierfs_extent e{};
    e.file_offset = (rng() % (uint64_t{1} << 30)) << 12;
    e.length = ((1 + rng() % 4096) << 12) + (rng() % 2 ? rng() % 4096 : 0);
    e.tier_address = (rng() % (uint64_t{1} << 36)) << 12;
    for (int probe = 0; probe < 8; ++probe) {
      const uint64_t pos = e.file_offset + rng() % e.length;
      tierfs_stripe_answer a{};
      if (tierfs_stripe_answer_of(&l, &e, pos, &a) != 0) {
        // Only the extent's last, partial block has no whole-block answer.
        EXPECT_GE(pos, (e.file_offset + e.length) & ~(TIERFS_IOMAP_BLOCK_SIZE - 1));
        continue;
      }
      ++answers;
      ASSERT_LE(a.offset, pos);
      ASSERT_GT(a.offset + a.length, pos);
      ASSERT_EQ(a.offset % TIERFS_IOMAP_BLOCK_SIZE, 0u);
      ASSERT_EQ(a.length % TIERFS_IOMAP_BLOCK_SIZE, 0u);
      // Byte by byte around three strip-unit boundaries inside the answer and
      // one random place: where a wrong rule would first show.
      std::vector<uint64_t> windows;
      const uint64_t units = a.length / c.width;
      for (int w = 0; w < 3 && units > 0; ++w)
        windows.push_back(a.offset + (1 + rng() % units) * c.width - 512);
      windows.push_back(a.offset + rng() % a.length);
      for (uint64_t from : windows) {
        from = std::max<uint64_t>(from, a.offset);
        const uint64_t to = std::min<uint64_t>(a.offset + a.length, from + KiB);
        for (uint64_t off = from; off < to; ++off, ++bytes) {
          tierfs_mapping m{};
          ASSERT_EQ(tierfs_map_extent(&l, &e, off, &m), TIERFS_MAP_OK);
          uint32_t strip = 0;
          __u64 addr = 0;
          ASSERT_EQ(tierfs_stripe_locate(&c, a.linear + (off - a.offset), &strip, &addr), 0);
          ASSERT_EQ(strip, m.region) << "file offset " << off;
          ASSERT_EQ(c.strips[strip].dev, cookies[m.region]);
          ASSERT_EQ(addr, m.region_offset) << "file offset " << off;
        }
      }
    }
  }
  EXPECT_GT(answers, 1000u);
  RecordProperty("bytes", std::to_string(bytes));
}

}  // namespace
