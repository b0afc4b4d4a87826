// tierfs_iomap_fill and tierfs_find_extent (bpf/iomap.h) on
// hand-made cases: the one function that turns a file position into the
// fuse_iomap_io pair for the struct_ops program, its twin and the libfuse
// FUSE_IOMAP_BEGIN path. Every answer it hands back goes through the
// kernel's own rules (kernel/iomap_rules.h). Plain C++, no privileges: runs
// on every build.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "bpf/iomap.h"
#include "kernel/iomap_rules.h"

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

void add_extent(Maps& maps, uint64_t off, uint64_t len, uint64_t tier_address, uint32_t tier,
                uint32_t flags = 0) {
  maps.inode.extents[maps.inode.count++] = tierfs_extent{off, len, tier_address, tier, flags};
}

// What the programs do around tierfs_iomap_fill: find the extent, look its tier up.
struct Answer {
  int verdict;
  tierfs_iomap_pair out;
};
std::string violation(const tierfs_iomap_pair& out, uint32_t opflags, uint64_t pos) {
  tierfs::kernel::IomapBeginOut k{};
  static_assert(sizeof(k) == sizeof(out));
  std::memcpy(&k, &out, sizeof(k));
  return tierfs::kernel::iomap_begin_violation(k, opflags, pos);
}

// Fills as the programs do and holds every HANDLED answer to the kernel's rules.
Answer fill(const Maps& maps, uint64_t pos, uint64_t count, uint32_t opflags = 0) {
  Answer a{};
  const tierfs_extent_hit hit = tierfs_find_extent(&maps.inode, pos);
  const tierfs_tier_value* tier = nullptr;
  if (hit.index < TIERFS_MAX_INODE_EXTENTS) {
    const uint32_t key = maps.inode.extents[hit.index].tier;
    if (key < maps.tiers.size()) tier = &maps.tiers[key];
  }
  a.verdict = tierfs_iomap_fill(&maps.inode, hit, tier, pos, count, opflags, &a.out);
  if (a.verdict == TIERFS_IOMAP_HANDLED) {
    EXPECT_EQ(violation(a.out, opflags, pos), "") << "pos " << pos << " opflags " << opflags;
  }
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

// The write half of every answer: the kernel's pure overwrite (null address and device).
void expect_pure_overwrite(const tierfs_iomap_pair& out) {
  expect_io(out.write, out.read.offset, out.read.length, TIERFS_IOMAP_NULL_ADDR,
            TIERFS_FEB26_IOMAP_TYPE_PURE_OVERWRITE, TIERFS_IOMAP_DEV_NULL);
}

// Four ways of 4 KiB, cookies 100..103; extents: written [0, 64K) from row 0,
// a hole, reserved [128K, 192K) from row 10 (tier address 160K), a hole, [256K, 260K) on a tier
// the map does not hold.
Maps four_way() {
  Maps maps;
  maps.tiers.push_back(tier_of(4, 12, {}, {}));
  add_extent(maps, 0, 64 * KiB, 0, 0);
  add_extent(maps, 128 * KiB, 64 * KiB, 10 * 16 * KiB, 0, TIERFS_EXTENT_UNWRITTEN);
  add_extent(maps, 256 * KiB, 4 * KiB, 0, 7);
  return maps;
}

TEST(FindExtent, TellsTheExtentOrTheHoleAndWhereTheHoleEnds) {
  const Maps maps = four_way();
  EXPECT_EQ(tierfs_find_extent(&maps.inode, 0).index, 0u);
  EXPECT_EQ(tierfs_find_extent(&maps.inode, 64 * KiB - 1).index, 0u);
  tierfs_extent_hit hole = tierfs_find_extent(&maps.inode, 64 * KiB);
  EXPECT_EQ(hole.index, static_cast<uint32_t>(TIERFS_MAX_INODE_EXTENTS));
  EXPECT_EQ(hole.hole_start, 64 * KiB);
  EXPECT_EQ(hole.hole_end, 128 * KiB);
  EXPECT_EQ(tierfs_find_extent(&maps.inode, 130 * KiB).index, 1u);
  EXPECT_EQ(tierfs_find_extent(&maps.inode, 256 * KiB).index, 2u);
  hole = tierfs_find_extent(&maps.inode, 260 * KiB);
  EXPECT_EQ(hole.index, static_cast<uint32_t>(TIERFS_MAX_INODE_EXTENTS));
  EXPECT_EQ(hole.hole_end, kTop) << "no extent after: the hole runs to the end";
}

TEST(IomapFill, MappedReadIsTheWholeBlocksUpToTheInterleaveBoundary) {
  const Maps maps = four_way();
  Answer a = fill(maps, 0, GiB);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 0, 4 * KiB, 0, TIERFS_IOMAP_TYPE_MAPPED, 100);
  expect_pure_overwrite(a.out);

  a = fill(maps, 4 * KiB + 100, GiB);  // unit 1: region 1, 100 bytes in: the block from its start
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 4 * KiB, 4 * KiB, 0, TIERFS_IOMAP_TYPE_MAPPED, 101);

  a = fill(maps, 16 * KiB + 5, GiB);  // row 1 of region 0
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 16 * KiB, 4 * KiB, 4 * KiB, TIERFS_IOMAP_TYPE_MAPPED, 100);
}

TEST(IomapFill, MappedReadIsNotCutAtCountTheIteratorTrimsIt) {
  const Answer a = fill(four_way(), 8 * KiB, 10);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 8 * KiB, 4 * KiB, 0, TIERFS_IOMAP_TYPE_MAPPED, 102);
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
  a = fill(maps, 21 * KiB + 1, GiB);  // inside the second unit of that run
  expect_io(a.out.read, 20 * KiB, 8 * KiB, 16 * KiB, TIERFS_IOMAP_TYPE_MAPPED, 7);
}

// A small file's extent starts at any 4 KiB address of the tier: here unit 2
// of row 5 of a 4-way tier (region 2), and runs on through regions 3 and 0.
TEST(IomapFill, ExtentStartingInsideARowMapsFromItsUnit) {
  Maps maps;
  maps.tiers.push_back(tier_of(4, 12, {}, {}));
  add_extent(maps, 0, 12 * KiB, 5 * 16 * KiB + 8 * KiB, 0);
  Answer a = fill(maps, 0, GiB);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 0, 4 * KiB, 5 * 4 * KiB, TIERFS_IOMAP_TYPE_MAPPED, 102);
  a = fill(maps, 4 * KiB, GiB);
  expect_io(a.out.read, 4 * KiB, 4 * KiB, 5 * 4 * KiB, TIERFS_IOMAP_TYPE_MAPPED, 103);
  a = fill(maps, 8 * KiB, GiB);  // row 6
  expect_io(a.out.read, 8 * KiB, 4 * KiB, 6 * 4 * KiB, TIERFS_IOMAP_TYPE_MAPPED, 100);
}

TEST(IomapFill, OneWayTierMapsTheRestOfTheExtentAtOnce) {
  Maps maps;
  maps.tiers.push_back(tier_of(1, 30, {}, {9}));
  const uint64_t start = (uint64_t{1} << 62);
  add_extent(maps, start, 4 * GiB, 3 * GiB, 0);
  const uint64_t pos = start + GiB + 1;
  const Answer a = fill(maps, pos, kTop);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, start + GiB, 3 * GiB, 4 * GiB, TIERFS_IOMAP_TYPE_MAPPED, 9);
}

TEST(IomapFill, HoleRunsToTheNextExtentInWholeBlocks) {
  const Maps maps = four_way();
  Answer a = fill(maps, 64 * KiB, GiB);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 64 * KiB, 64 * KiB, TIERFS_IOMAP_NULL_ADDR, TIERFS_IOMAP_TYPE_HOLE,
            TIERFS_IOMAP_DEV_NULL);
  expect_pure_overwrite(a.out);
  a = fill(maps, 70 * KiB + 3, 100);
  expect_io(a.out.read, 68 * KiB, 60 * KiB, TIERFS_IOMAP_NULL_ADDR, TIERFS_IOMAP_TYPE_HOLE, 0);
  a = fill(maps, 1 * GiB, 3 * GiB);  // past the last extent: to the last block below 2^64
  expect_io(a.out.read, 1 * GiB, (kTop & ~(4 * KiB - 1)) - GiB, TIERFS_IOMAP_NULL_ADDR,
            TIERFS_IOMAP_TYPE_HOLE, 0);
}

TEST(IomapFill, UnwrittenReadsMapButWritesFallBack) {
  const Maps maps = four_way();
  const Answer a = fill(maps, 128 * KiB, GiB);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 128 * KiB, 4 * KiB, 10 * 4 * KiB, TIERFS_IOMAP_TYPE_UNWRITTEN, 100);
  EXPECT_EQ(fill(maps, 128 * KiB, GiB, TIERFS_IOMAP_OP_WRITE).verdict, TIERFS_IOMAP_FALLBACK);
  EXPECT_EQ(fill(maps, 128 * KiB, GiB, TIERFS_IOMAP_OP_ZERO).verdict, TIERFS_IOMAP_FALLBACK);
  EXPECT_EQ(fill(maps, 128 * KiB, GiB, TIERFS_FEB26_IOMAP_OP_WRITEBACK).verdict,
            TIERFS_IOMAP_FALLBACK);
}

TEST(IomapFill, OverwriteOfWrittenDataIsAnsweredInTheKernel) {
  const Answer a = fill(four_way(), 4 * KiB, GiB, TIERFS_IOMAP_OP_WRITE);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  expect_io(a.out.read, 4 * KiB, 4 * KiB, 0, TIERFS_IOMAP_TYPE_MAPPED, 101);
  expect_pure_overwrite(a.out);
}

// Every op flag set the kernel sends, over written data, a hole, reserved
// space and an unaligned extent edge: answered ones pass the kernel's rules
// (fill() checks them), and what counts as a write never gets a hole.
TEST(IomapFill, EveryOpSetTheKernelSendsGetsAnAnswerItAccepts) {
  Maps maps = four_way();
  add_extent(maps, 300 * KiB, 10 * KiB + 7, 0, 0);  // ends inside a block
  for (size_t i = 0; i < tierfs::kernel::kIomapOpSetCount; ++i) {
    const auto& set = tierfs::kernel::kIomapOpSets[i];
    const bool write = tierfs_iomap_is_write(set.opflags);
    SCOPED_TRACE(set.name);
    const Answer written = fill(maps, 4 * KiB + 9, 100, set.opflags);
    EXPECT_EQ(written.verdict, TIERFS_IOMAP_HANDLED);
    const Answer hole = fill(maps, 64 * KiB, 100, set.opflags);
    EXPECT_EQ(hole.verdict, write ? TIERFS_IOMAP_FALLBACK : TIERFS_IOMAP_HANDLED);
    const Answer reserved = fill(maps, 130 * KiB, 100, set.opflags);
    EXPECT_EQ(reserved.verdict, write ? TIERFS_IOMAP_FALLBACK : TIERFS_IOMAP_HANDLED);
    EXPECT_EQ(fill(maps, 310 * KiB, 1, set.opflags).verdict, TIERFS_IOMAP_FALLBACK)
        << "the extent's last block is partly a hole: the server answers it";
    EXPECT_EQ(fill(maps, 306 * KiB, 1, set.opflags).verdict, TIERFS_IOMAP_HANDLED);
  }
  EXPECT_TRUE(tierfs_iomap_is_write(TIERFS_FEB26_IOMAP_OP_WRITEBACK));
  EXPECT_TRUE(tierfs_iomap_is_write(TIERFS_IOMAP_OP_UNSHARE));
  EXPECT_FALSE(tierfs_iomap_is_write(TIERFS_IOMAP_OP_REPORT | TIERFS_IOMAP_OP_DIRECT));
}

TEST(IomapFill, FallsBackWhereTheServerMustAnswer) {
  Maps maps = four_way();
  EXPECT_EQ(fill(maps, 64 * KiB, 4096, TIERFS_IOMAP_OP_WRITE).verdict, TIERFS_IOMAP_FALLBACK)
      << "an allocating write: the server allocates rows";
  EXPECT_EQ(fill(maps, 64 * KiB, 4096, TIERFS_FEB26_IOMAP_OP_WRITEBACK).verdict,
            TIERFS_IOMAP_FALLBACK)
      << "writeback of dirty pages over a hole: the server allocates rows";
  EXPECT_EQ(fill(maps, 0, 4096, TIERFS_IOMAP_OP_WRITE | TIERFS_IOMAP_OP_ATOMIC).verdict,
            TIERFS_IOMAP_FALLBACK)
      << "untorn writes need FUSE_IOMAP_F_ATOMIC_BIO";
  EXPECT_EQ(fill(maps, 256 * KiB, 4096).verdict, TIERFS_IOMAP_FALLBACK)
      << "the extent's tier is not in the map";
  EXPECT_EQ(fill(maps, 0, 0).verdict, TIERFS_IOMAP_FALLBACK) << "count 0";
  maps.tiers[0].device_cookie[2] = 0;
  EXPECT_EQ(fill(maps, 8 * KiB, 4096).verdict, TIERFS_IOMAP_FALLBACK)
      << "region 2 has no registered device";
  EXPECT_EQ(fill(maps, 4 * KiB, 4096).verdict, TIERFS_IOMAP_HANDLED) << "region 1 still has one";
  maps.tiers[0].layout.base[1] = 512;
  EXPECT_EQ(fill(maps, 4 * KiB, 4096).verdict, TIERFS_IOMAP_FALLBACK)
      << "a device address that is not block-aligned";
  maps.tiers[0].layout.weights[3] = 0;
  EXPECT_EQ(fill(maps, 0, 4096).verdict, TIERFS_IOMAP_FALLBACK) << "a malformed layout";
  maps.tiers[0].layout = tierfs_layout{};
  EXPECT_EQ(fill(maps, 0, 4096).verdict, TIERFS_IOMAP_FALLBACK) << "a tier never set (zeroed)";
  Maps unaligned;
  unaligned.tiers.push_back(tier_of(2, 12, {}, {}));
  add_extent(unaligned, 100, 64 * KiB, 0, 0);
  EXPECT_EQ(fill(unaligned, 8 * KiB, 4096).verdict, TIERFS_IOMAP_FALLBACK)
      << "an extent that starts inside a block: its units straddle blocks";
}

TEST(IomapFill, PositionsAtOrPastMaxBytesFallBack) {
  Maps maps;
  EXPECT_EQ(fill(maps, TIERFS_IOMAP_MAX_BYTES, 1).verdict, TIERFS_IOMAP_FALLBACK);
  EXPECT_EQ(fill(maps, kTop, 1).verdict, TIERFS_IOMAP_FALLBACK);
  const Answer a = fill(maps, TIERFS_IOMAP_MAX_BYTES - 1, 10);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  EXPECT_EQ(a.out.read.offset, TIERFS_IOMAP_MAX_BYTES & ~(4 * KiB - 1));
}

TEST(IomapFill, RegionAddressesNearTheTopAreCutWhereTheAddressSpaceEnds) {
  Maps maps;
  tierfs_tier_value t = tier_of(1, 12, {}, {5});
  t.layout.base[0] = (kTop & ~(4 * KiB - 1)) - 8 * KiB;  // 12 KiB of address space left
  maps.tiers.push_back(t);
  add_extent(maps, 0, 64 * KiB, 0, 0);
  const Answer a = fill(maps, 0, GiB);
  ASSERT_EQ(a.verdict, TIERFS_IOMAP_HANDLED);
  EXPECT_EQ(a.out.read.addr, t.layout.base[0]);
  EXPECT_EQ(a.out.read.length, 8 * KiB) << "addr + length must stay below 2^64";
  EXPECT_EQ(fill(maps, 12 * KiB, GiB).verdict, TIERFS_IOMAP_FALLBACK) << "past 2^64: overflow";
}

// The oracle itself: it must catch what the program answered before it knew
// the kernel's rules, and what the old write test let through.
TEST(KernelRules, CatchTheAnswersTheProgramGaveBefore) {
  tierfs_iomap_pair old{};
  // Read at pos 4 KiB + 100 of unit 1 with count 10: offset = pos, length cut at count.
  old.read = {4 * KiB + 100, 10, 100, TIERFS_IOMAP_TYPE_MAPPED, 0, 101};
  old.write = {
      4 * KiB + 100, 10, TIERFS_IOMAP_NULL_ADDR, TIERFS_FEB26_IOMAP_TYPE_PURE_OVERWRITE, 0, 0};
  EXPECT_NE(violation(old, 0, 4 * KiB + 100).find("read mapping: offset"), std::string::npos);
  // Block-aligned but cut at a count of 10 bytes.
  old.read = {4 * KiB, 10, 0, TIERFS_IOMAP_TYPE_MAPPED, 0, 101};
  old.write = {4 * KiB, 10, TIERFS_IOMAP_NULL_ADDR, TIERFS_FEB26_IOMAP_TYPE_PURE_OVERWRITE, 0, 0};
  EXPECT_NE(violation(old, 0, 4 * KiB).find("read mapping: length"), std::string::npos);
  // Writeback over a hole answered HOLE (the old is_write tested WRITE and ZERO only).
  tierfs_iomap_pair hole{};
  hole.read = {64 * KiB, 64 * KiB, TIERFS_IOMAP_NULL_ADDR, TIERFS_IOMAP_TYPE_HOLE, 0, 0};
  hole.write = {64 * KiB, 64 * KiB, TIERFS_IOMAP_NULL_ADDR, TIERFS_FEB26_IOMAP_TYPE_PURE_OVERWRITE,
                0,        0};
  EXPECT_EQ(violation(hole, 0, 64 * KiB), "") << "a read of a hole is fine";
  EXPECT_EQ(violation(hole, TIERFS_IOMAP_OP_ZERO, 64 * KiB), "") << "zeroing a hole is a no-op";
  EXPECT_NE(violation(hole, TIERFS_FEB26_IOMAP_OP_WRITEBACK, 64 * KiB), "");
  EXPECT_NE(violation(hole, TIERFS_IOMAP_OP_WRITE, 64 * KiB), "");
  // The other rules, one each.
  tierfs_iomap_pair bad = hole;
  bad.read.type = TIERFS_FEB26_IOMAP_TYPE_PURE_OVERWRITE;
  EXPECT_NE(violation(bad, 0, 64 * KiB), "") << "PURE_OVERWRITE as the read mapping";
  bad = hole;
  bad.read.dev = 3;
  EXPECT_NE(violation(bad, 0, 64 * KiB), "") << "a hole with a device";
  bad = hole;
  bad.write.length = 0;
  EXPECT_NE(violation(bad, 0, 64 * KiB), "") << "an empty write mapping";
  bad = hole;
  EXPECT_NE(violation(bad, 0, 128 * KiB), "") << "the mapping must cover pos";
  EXPECT_NE(violation(bad, 0, 60 * KiB), "") << "the mapping must start at or before pos";
  bad.read = {0, 4 * KiB, TIERFS_IOMAP_NULL_ADDR, TIERFS_IOMAP_TYPE_MAPPED, 0, 1};
  bad.write = {0, 4 * KiB, TIERFS_IOMAP_NULL_ADDR, TIERFS_FEB26_IOMAP_TYPE_PURE_OVERWRITE, 0, 0};
  EXPECT_NE(violation(bad, 0, 0), "") << "mapped without an address";
  bad.read.addr = 0;
  EXPECT_EQ(violation(bad, 0, 0), "");
  EXPECT_NE(violation(bad, TIERFS_IOMAP_OP_WRITE | TIERFS_IOMAP_OP_ATOMIC, 0), "")
      << "atomic without FUSE_IOMAP_F_ATOMIC_BIO";
  bad.read.offset = TIERFS_IOMAP_MAX_BYTES + 1 - 4 * KiB + 4 * KiB;
  EXPECT_NE(violation(bad, 0, bad.read.offset), "") << "at s_maxbytes";
}

}  // namespace
