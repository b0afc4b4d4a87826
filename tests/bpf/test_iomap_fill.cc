// tierfs_iomap_fill and tierfs_find_extent (bpf/iomap.h) on
// hand-made cases: the one function that turns a file position into the
// fuse_iomap_io pair for the struct_ops program, its twin and the libfuse
// FUSE_IOMAP_BEGIN path. Plain C++, no privileges: runs on every build.
#include <gtest/gtest.h>

#include <vector>

#include "bpf/iomap.h"

namespace {

constexpr uint64_t KiB = 1024;
constexpr uint64_t GiB = uint64_t{1} << 30;
constexpr uint64_t kTop = TIERFS_U64_MAX;

struct Maps {
  std::vector<tierfs_tier_value> tiers;  // index = tier; ways 0 = not in the map
  tierfs_inode_value inode{};
};

tierfs_tier_value tier_of(uint32_t ways, uint32_t shift, std::vector<uint8_t> weights,
                          std::vector<uint32_t> cookies) {
  tierfs_tier_value t{};
  t.layout.ways = ways;
  t.layout.granularity_shift = shift;
  for (uint32_t i = 0; i < ways; ++i) {
    t.layout.weights[i] = weights.empty() ? 1 : weights[i];
    t.device_cookie[i] = cookies.empty() ? 100 + i : cookies[i];
  }
  return t;
}

void add_extent(Maps& maps, uint64_t off, uint64_t len, uint64_t row, uint32_t tier,
                uint32_t flags = 0) {
  maps.inode.extents[maps.inode.count++] = tierfs_extent{off, len, row, tier, flags};
}

// What the programs do around tierfs_iomap_fill: find the extent, look its tier up.
struct Answer {
  int verdict;
  tierfs_iomap_pair out;
};
Answer fill(const Maps& maps, uint64_t pos, uint64_t count, uint32_t opflags = 0) {
  Answer a{};
  const tierfs_extent_hit hit = tierfs_find_extent(&maps.inode, pos);
  const tierfs_tier_value* tier = nullptr;
  if (hit.index < TIERFS_MAX_INODE_EXTENTS) {
    const uint32_t key = maps.inode.extents[hit.index].tier;
    if (key < maps.tiers.size()) tier = &maps.tiers[key];
  }
  a.verdict = tierfs_iomap_fill(&maps.inode, hit, tier, pos, count, opflags, &a.out);
  return a;
}

void expect_io(const tierfs_iomap_io& io, uint64_t offset, uint64_t length, uint64_t addr,
               uint16_t type, uint32_t dev) {
  EXPECT_EQ(io.offset, offset);
  EXPECT_EQ(io.length, length);
  EXPECT_EQ(io.addr, addr);
  EXPECT_EQ(io.type, type);
  EXPECT_EQ(io.flags, 0);
  EXPECT_EQ(io.dev, dev);
}

// The write half of a mapped read: libfuse's pure overwrite (NULL address and device).
void expect_pure_overwrite(const tierfs_iomap_pair& out) {
  expect_io(out.write, out.read.offset, out.read.length, TIERFS_IOMAP_NULL_ADDR,
            TIERFS_IOMAP_TYPE_PURE_OVERWRITE, TIERFS_IOMAP_DEV_NULL);
}

// Four ways of 4 KiB, cookies 100..103; extents: written [0, 64K) from row 0,
// a hole, reserved [128K, 192K) from row 10, a hole, [256K, 260K) on a tier
// the map does not hold.
Maps four_way() {
  Maps maps;
  maps.tiers.push_back(tier_of(4, 12, {}, {}));
  add_extent(maps, 0, 64 * KiB, 0, 0);
  add_extent(maps, 128 * KiB, 64 * KiB, 10, 0, TIERFS_EXTENT_UNWRITTEN);
  add_extent(maps, 256 * KiB, 4 * KiB, 0, 7);
  return maps;
}

TEST(FindExtent, TellsTheExtentOrTheHoleAndWhereTheHoleEnds) {
  const Maps maps = four_way();
  EXPECT_EQ(tierfs_find_extent(&maps.inode, 0).index, 0u);
  EXPECT_EQ(tierfs_find_extent(&maps.inode, 64 * KiB - 1).index, 0u);
  tierfs_extent_hit hole = tierfs_find_extent(&maps.inode, 64 * KiB);
  EXPECT_EQ(hole.index, static_cast<uint32_t>(TIERFS_MAX_INODE_EXTENTS));
  EXPECT_EQ(hole.hole_end, 128 * KiB);
  EXPECT_EQ(tierfs_find_extent(&maps.inode, 130 * KiB).index, 1u);
  EXPECT_EQ(tierfs_find_extent(&maps.inode, 256 * KiB).index, 2u);
  hole = tierfs_find_extent(&maps.inode, 260 * KiB);
  EXPECT_EQ(hole.index, static_cast<uint32_t>(TIERFS_MAX_INODE_EXTENTS));
  EXPECT_EQ(hole.hole_end, kTop) << "no extent after: the hole runs to the end";
}

TEST(IomapFill, MappedReadIsCutAtTheInterleaveBoundary) {
  const Maps maps = four_way();
  Answer a = fill(maps, 0, GiB);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 0, 4 * KiB, 0, TIERFS_IOMAP_TYPE_MAPPED, 100);
  expect_pure_overwrite(a.out);

  a = fill(maps, 4 * KiB + 100, GiB);  // unit 1: region 1, 100 bytes in
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 4 * KiB + 100, 4 * KiB - 100, 100, TIERFS_IOMAP_TYPE_MAPPED, 101);

  a = fill(maps, 16 * KiB + 5, GiB);  // row 1 of region 0
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 16 * KiB + 5, 4 * KiB - 5, 4 * KiB + 5, TIERFS_IOMAP_TYPE_MAPPED, 100);
}

TEST(IomapFill, MappedReadIsCutAtCount) {
  const Answer a = fill(four_way(), 8 * KiB, 10);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 8 * KiB, 10, 0, TIERFS_IOMAP_TYPE_MAPPED, 102);
}

TEST(IomapFill, WeightedRegionsRunForTheirWeightInUnits) {
  Maps maps;
  maps.tiers.push_back(tier_of(2, 12, {3, 1}, {7, 8}));
  add_extent(maps, 0, 64 * KiB, 0, 0);
  Answer a = fill(maps, 0, GiB);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 0, 12 * KiB, 0, TIERFS_IOMAP_TYPE_MAPPED, 7);
  a = fill(maps, 12 * KiB, GiB);
  expect_io(a.out.read, 12 * KiB, 4 * KiB, 0, TIERFS_IOMAP_TYPE_MAPPED, 8);
  a = fill(maps, 16 * KiB, GiB);  // row 1: region 0 holds 3 units per row
  expect_io(a.out.read, 16 * KiB, 12 * KiB, 12 * KiB, TIERFS_IOMAP_TYPE_MAPPED, 7);
}

TEST(IomapFill, OneWayTierMapsTheRestOfTheExtentAtOnce) {
  Maps maps;
  maps.tiers.push_back(tier_of(1, 30, {}, {9}));
  add_extent(maps, (uint64_t{1} << 63) - 2 * GiB, 4 * GiB, 3, 0);
  const uint64_t pos = (uint64_t{1} << 63) - GiB;
  const Answer a = fill(maps, pos, kTop);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, pos, 3 * GiB, 4 * GiB, TIERFS_IOMAP_TYPE_MAPPED, 9);
}

TEST(IomapFill, HoleRunsToTheNextExtentOrCount) {
  const Maps maps = four_way();
  Answer a = fill(maps, 64 * KiB, GiB);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 64 * KiB, 64 * KiB, TIERFS_IOMAP_NULL_ADDR, TIERFS_IOMAP_TYPE_HOLE,
            TIERFS_IOMAP_DEV_NULL);
  expect_pure_overwrite(a.out);
  a = fill(maps, 64 * KiB, 100);
  expect_io(a.out.read, 64 * KiB, 100, TIERFS_IOMAP_NULL_ADDR, TIERFS_IOMAP_TYPE_HOLE, 0);
  a = fill(maps, 1 * GiB, 3 * GiB);  // past the last extent
  expect_io(a.out.read, 1 * GiB, 3 * GiB, TIERFS_IOMAP_NULL_ADDR, TIERFS_IOMAP_TYPE_HOLE, 0);
}

TEST(IomapFill, UnwrittenReadsMapButWritesFallBack) {
  const Maps maps = four_way();
  const Answer a = fill(maps, 128 * KiB, GiB);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 128 * KiB, 4 * KiB, 10 * 4 * KiB, TIERFS_IOMAP_TYPE_UNWRITTEN, 100);
  EXPECT_EQ(fill(maps, 128 * KiB, GiB, TIERFS_IOMAP_OP_WRITE).verdict, TIERFS_IOMAP_FALLBACK);
  EXPECT_EQ(fill(maps, 128 * KiB, GiB, TIERFS_IOMAP_OP_ZERO).verdict, TIERFS_IOMAP_FALLBACK);
}

TEST(IomapFill, OverwriteOfWrittenDataIsAnsweredInTheKernel) {
  const Answer a = fill(four_way(), 4 * KiB, GiB, TIERFS_IOMAP_OP_WRITE);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 4 * KiB, 4 * KiB, 0, TIERFS_IOMAP_TYPE_MAPPED, 101);
  expect_pure_overwrite(a.out);
}

TEST(IomapFill, FallsBackWhereTheServerMustAnswer) {
  Maps maps = four_way();
  EXPECT_EQ(fill(maps, 64 * KiB, 4096, TIERFS_IOMAP_OP_WRITE).verdict, TIERFS_IOMAP_FALLBACK)
      << "an allocating write: the server allocates rows";
  EXPECT_EQ(fill(maps, 256 * KiB, 4096).verdict, TIERFS_IOMAP_FALLBACK)
      << "the extent's tier is not in the map";
  EXPECT_EQ(fill(maps, 0, 0).verdict, TIERFS_IOMAP_FALLBACK) << "count 0";
  maps.tiers[0].device_cookie[2] = 0;
  EXPECT_EQ(fill(maps, 8 * KiB, 4096).verdict, TIERFS_IOMAP_FALLBACK)
      << "region 2 has no registered device";
  EXPECT_EQ(fill(maps, 4 * KiB, 4096).verdict, TIERFS_IOMAP_HANDLED) << "region 1 still has one";
  maps.tiers[0].layout.weights[3] = 0;
  EXPECT_EQ(fill(maps, 0, 4096).verdict, TIERFS_IOMAP_FALLBACK) << "a malformed layout";
  maps.tiers[0].layout = tierfs_layout{};
  EXPECT_EQ(fill(maps, 0, 4096).verdict, TIERFS_IOMAP_FALLBACK) << "a tier never set (zeroed)";
}

TEST(IomapFill, TheLastByteOfTheRangeIsAHoleOfNoLengthAndFallsBack) {
  Maps maps;
  EXPECT_EQ(fill(maps, kTop, 1).verdict, TIERFS_IOMAP_FALLBACK);
  const Answer a = fill(maps, kTop - 1, 10);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  EXPECT_EQ(a.out.read.length, 1u);
}

TEST(IomapFill, RegionAddressesNearTheTopAreCutWhereTheAddressSpaceEnds) {
  Maps maps;
  tierfs_tier_value t = tier_of(1, 12, {}, {5});
  t.layout.base[0] = kTop - 8 * KiB + 1;  // 8 KiB of region address space left
  maps.tiers.push_back(t);
  add_extent(maps, 0, 64 * KiB, 0, 0);
  const Answer a = fill(maps, 0, GiB);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  EXPECT_EQ(a.out.read.addr, kTop - 8 * KiB + 1);
  EXPECT_EQ(a.out.read.length, 8 * KiB);
  EXPECT_EQ(fill(maps, 8 * KiB, GiB).verdict, TIERFS_IOMAP_FALLBACK) << "past 2^64: overflow";
}

}  // namespace
