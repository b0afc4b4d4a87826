// The server's own FUSE_IOMAP_BEGIN answer (bpf/iomap_answer.h) in both
// generations: hand-made cases for holes, reserved space, writes into holes
// and each generation's numbers, then >= 10^6 random cases over every op
// flag set the kernel sends, each answer held to the kernel's answer rules
// (kernel/iomap_rules.h), stripe answers put through the kernel's stripe
// rule (kernel/iomap_stripe_rules.h), and every mapped byte compared with
// tierfs_map_extent. Plain C++, no privileges.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bpf/equivalence.h"
#include "bpf/iomap_answer.h"
#include "bpf/stripe.h"
#include "kernel/iomap_stripe_rules.h"
#include "tests/bpf/placement_check.h"

namespace {

using tierfs::bpf::iomap_begin_answer;
using tierfs::bpf::IomapBeginAnswer;
using tierfs::bpf::IomapTierTarget;
using tierfs::kernel::IomapGeneration;
using tierfs::kernel::IomapIo;
using tierfs::kernel::KernelBackings;
using tierfs::kernel::kFeb2026;
using tierfs::kernel::kMay2026;

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = KiB * KiB;
constexpr uint64_t kBlock = TIERFS_IOMAP_BLOCK_SIZE;

std::string violation(const IomapBeginAnswer& a, uint32_t opflags, uint64_t pos,
                      const IomapGeneration& gen) {
  tierfs::kernel::IomapRules rules;
  rules.generation = &gen;
  return tierfs::kernel::iomap_begin_violation(a.out, opflags, pos, rules);
}

// A 2-way 64 KiB tier (tier 0) and, for stripes, the same registered as one.
std::vector<IomapTierTarget> two_way(uint32_t stripe_id = 0) {
  IomapTierTarget t;
  t.layout.ways = 2;
  t.layout.granularity_shift = 16;
  t.layout.weights[0] = t.layout.weights[1] = 1;
  t.layout.base[1] = 64 * MiB;
  t.device_cookie[0] = 1;
  t.device_cookie[1] = 2;
  t.stripe_id = stripe_id;
  return {t};
}

TEST(IomapAnswer, HolesReservedSpaceAndWritesIntoHoles) {
  const auto tiers = two_way();
  std::vector<tierfs_extent> extents = {
      {0, 256 * KiB, 0, 0, 0}, {1 * MiB, 128 * KiB, 256 * KiB, 0, TIERFS_EXTENT_UNWRITTEN}};
  for (const IomapGeneration* gen : {&kFeb2026, &kMay2026}) {
    SCOPED_TRACE(gen->name);
    // A read of the hole between the extents: HOLE up to the next extent.
    IomapBeginAnswer a = iomap_begin_answer(extents, tiers, 300 * KiB, 4 * KiB, 0, *gen);
    ASSERT_EQ(a.error, 0);
    ASSERT_FALSE(a.allocate);
    EXPECT_EQ(a.out.read.type, TIERFS_IOMAP_TYPE_HOLE);
    EXPECT_EQ(a.out.read.offset, 300 * KiB);
    EXPECT_EQ(a.out.read.length, 1 * MiB - 300 * KiB);
    EXPECT_EQ(a.out.write.type, gen->pure_overwrite);
    EXPECT_EQ(violation(a, 0, 300 * KiB, *gen), "");
    // Zeroing a hole alone needs no space.
    a = iomap_begin_answer(extents, tiers, 300 * KiB, 4 * KiB, TIERFS_IOMAP_OP_ZERO, *gen);
    EXPECT_EQ(a.out.read.type, TIERFS_IOMAP_TYPE_HOLE);
    // A write into it: allocate the touched blocks, then it is MAPPED.
    const uint32_t write = TIERFS_IOMAP_OP_WRITE;
    a = iomap_begin_answer(extents, tiers, 300 * KiB + 100, 10 * KiB, write, *gen);
    ASSERT_TRUE(a.allocate);
    EXPECT_EQ(a.alloc_offset, 300 * KiB);
    EXPECT_EQ(a.alloc_length, 12 * KiB) << "blocks 300 KiB .. 312 KiB";
    auto allocated = extents;
    allocated.insert(allocated.begin() + 1, {a.alloc_offset, a.alloc_length, 384 * KiB, 0, 0});
    a = iomap_begin_answer(allocated, tiers, 300 * KiB + 100, 10 * KiB, write, *gen);
    ASSERT_EQ(a.error, 0);
    ASSERT_FALSE(a.allocate);
    EXPECT_EQ(a.out.read.type, TIERFS_IOMAP_TYPE_MAPPED);
    EXPECT_EQ(violation(a, write, 300 * KiB + 100, *gen), "");
    // Writeback over a hole allocates too (the kernel's own write op).
    a = iomap_begin_answer(extents, tiers, 2 * MiB, 4 * KiB, gen->op_writeback, *gen);
    EXPECT_TRUE(a.allocate);
    // Reserved space: UNWRITTEN for reads and writes (the ioend converts it).
    for (uint32_t op : {0u, write}) {
      a = iomap_begin_answer(extents, tiers, 1 * MiB + 4 * KiB, 4 * KiB, op, *gen);
      ASSERT_EQ(a.error, 0);
      EXPECT_EQ(a.out.read.type, TIERFS_IOMAP_TYPE_UNWRITTEN);
      EXPECT_EQ(violation(a, op, 1 * MiB + 4 * KiB, *gen), "");
    }
    // Untorn writes and swapfiles are refused in one errno.
    EXPECT_EQ(
        iomap_begin_answer(extents, tiers, 0, 4 * KiB, TIERFS_IOMAP_OP_ATOMIC | write, *gen).error,
        -EOPNOTSUPP);
    EXPECT_EQ(iomap_begin_answer(extents, tiers, 0, 4 * KiB, gen->op_swapfile, *gen).error,
              -EOPNOTSUPP);
  }
}

// Each generation's answer carries its own numbers, and the other
// generation's kernel refuses it: the two cannot be mixed up unnoticed.
TEST(IomapAnswer, EachGenerationSpeaksItsOwnNumbers) {
  KernelBackings kernel;
  ASSERT_EQ(kernel.open_device(), 1);
  ASSERT_EQ(kernel.open_device(), 2);
  const std::vector<tierfs_extent> extents = {{0, 1 * MiB, 0, 0, 0}};
  const IomapBeginAnswer feb = iomap_begin_answer(extents, two_way(2048), 0, 1, 0, kFeb2026);
  EXPECT_EQ(feb.out.read.type, TIERFS_IOMAP_TYPE_MAPPED) << "no stripes before May";
  EXPECT_EQ(feb.out.write.type, 255);
  EXPECT_NE(violation(feb, 0, 0, kMay2026), "") << "a May kernel refuses type 255";

  const IomapBeginAnswer may = iomap_begin_answer(extents, two_way(2048), 0, 1, 0, kMay2026);
  EXPECT_EQ(may.out.read.type, 65532) << "MAPPED_STRIPE";
  EXPECT_EQ(may.out.read.dev, 2048u) << "the stripe id";
  EXPECT_EQ(may.out.read.length, 1 * MiB) << "the whole extent in one answer";
  EXPECT_EQ(may.out.write.type, 65535);
  EXPECT_EQ(violation(may, 0, 0, kMay2026), "");
  EXPECT_NE(violation(may, 0, 0, kFeb2026), "") << "a Feb kernel refuses type 65532";
  // A WRITEBACK in May's numbering is bit 11, which the Feb kernel calls no write.
  EXPECT_TRUE(kMay2026.is_write(TIERFS_MAY26_IOMAP_OP_WRITEBACK));
  EXPECT_FALSE(kFeb2026.is_write(TIERFS_MAY26_IOMAP_OP_WRITEBACK));
}

// One random round: tiers registered with a kernel as the May generation
// would see them, one server-like file (block-aligned extents), and requests
// aimed at extent edges, holes and the space past the last extent.
struct Round {
  std::vector<IomapTierTarget> tiers;
  std::vector<tierfs_extent> extents;
  KernelBackings kernel;
};

void make_round(tierfs::bpf::ScenarioGenerator& generator, const IomapGeneration& gen, Round& r) {
  r.tiers.assign(8, {});
  for (auto& t : r.tiers) {
    do t.layout = generator.random_layout();
    while (!tierfs_layout_valid(&t.layout));
    for (uint32_t i = 0; i < t.layout.ways; ++i) {
      t.layout.base[i] &= ~(kBlock - 1);  // the server's regions are block-aligned
      t.device_cookie[i] = static_cast<uint32_t>(r.kernel.open_device());
    }
    tierfs_stripe_config c{};
    if (gen.stripes && tierfs_stripe_config_of(&t.layout, t.device_cookie.data(), &c) == 0) {
      std::vector<uint8_t> bytes(tierfs_stripe_arg_bytes(c.header.nr_strips));
      std::memcpy(bytes.data(), &c, bytes.size());
      t.stripe_id = static_cast<uint32_t>(r.kernel.configure_stripe(bytes));
    }
  }
  r.extents.clear();
  for (tierfs_extent e : generator.random_extents(16)) {
    e.file_offset &= ~(kBlock - 1);
    e.length &= ~(kBlock - 1);
    e.tier %= 8;
    if (e.length == 0 || e.file_offset >= TIERFS_IOMAP_MAX_BYTES) continue;
    if (!r.extents.empty() &&
        r.extents.back().file_offset + r.extents.back().length > e.file_offset)
      continue;
    r.extents.push_back(e);
  }
}

// The block's device address as tierfs has it, or false where it has none
// the kernel could take (past 2^64, or too close to it for one block).
bool has_device_address(const IomapTierTarget& t, const tierfs_extent& e, uint64_t pos) {
  tierfs_mapping m{};
  const uint64_t start = pos & ~(kBlock - 1);
  return tierfs_map_extent(&t.layout, &e, start, &m) == TIERFS_MAP_OK &&
         m.region_offset <= TIERFS_U64_MAX - kBlock;
}

TEST(IomapAnswer, AMillionAnswersPassTheKernelRulesAndLandWhereTierfsMapsThem) {
  const auto began = std::chrono::steady_clock::now();
  tierfs::bpf::ScenarioGenerator generator(2727);
  std::mt19937_64 rng(2727);
  uint64_t cases = 0, mapped = 0, stripes = 0, holes = 0, unwritten = 0, allocations = 0,
           refused = 0, no_address = 0;
  std::string first_failure;
  auto fail = [&](const std::string& what) {
    if (first_failure.empty()) first_failure = what;
  };
  for (uint64_t round = 0; cases < 1000000 && first_failure.empty(); ++round) {
    const IomapGeneration& gen = round % 2 == 0 ? kFeb2026 : kMay2026;
    Round r;
    make_round(generator, gen, r);
    if (r.extents.empty()) continue;
    const auto op_sets = tierfs::kernel::iomap_op_sets(gen);
    for (int i = 0; i < 2000; ++i, ++cases) {
      const tierfs_extent& e = r.extents[rng() % r.extents.size()];
      uint64_t pos = 0;
      switch (rng() % 5) {
        case 0:
          pos = e.file_offset;
          break;
        case 1:
          pos = e.file_offset + e.length - 1;
          break;
        case 2:
          pos = e.file_offset + e.length;
          break;  // the hole (or extent) after it
        case 3:
          pos = e.file_offset > 0
                    ? e.file_offset - 1 - rng() % std::min<uint64_t>(e.file_offset, MiB)
                    : 0;
          break;
        default:
          pos = e.file_offset + rng() % e.length;
          break;
      }
      if (pos >= TIERFS_IOMAP_MAX_BYTES) pos = rng() % TIERFS_IOMAP_MAX_BYTES;
      const uint64_t count = rng() % 2 ? 1 + rng() % (4 * MiB) : TIERFS_IOMAP_MAX_BYTES - pos;
      uint32_t opflags = op_sets[rng() % op_sets.size()].opflags;
      if (rng() % 64 == 0) opflags |= rng() % 2 ? TIERFS_IOMAP_OP_ATOMIC : gen.op_swapfile;
      IomapBeginAnswer a = iomap_begin_answer(r.extents, r.tiers, pos, count, opflags, gen);
      const std::string where = std::string(gen.name) + " pos " + std::to_string(pos) +
                                " opflags " + std::to_string(opflags) + ": ";
      // Where pos lies, for the checks below.
      const auto next =
          std::upper_bound(r.extents.begin(), r.extents.end(), pos,
                           [](uint64_t p, const tierfs_extent& x) { return p < x.file_offset; });
      const tierfs_extent* in = nullptr;
      if (next != r.extents.begin() && pos - (next - 1)->file_offset < (next - 1)->length)
        in = &*(next - 1);
      if ((opflags & (TIERFS_IOMAP_OP_ATOMIC | gen.op_swapfile)) != 0) {
        if (a.error != -EOPNOTSUPP) fail(where + "atomic or swapfile not refused");
        ++refused;
        continue;
      }
      if (a.error != 0) {
        if (a.error != -EIO || in == nullptr || has_device_address(r.tiers[in->tier], *in, pos))
          fail(where + "error " + std::to_string(a.error));
        ++no_address;
        continue;
      }
      tierfs_extent added{};
      if (a.allocate) {
        if (in != nullptr || (opflags & (TIERFS_IOMAP_OP_WRITE | gen.op_writeback)) == 0 ||
            a.alloc_offset > pos || a.alloc_offset + a.alloc_length <= pos ||
            (next != r.extents.end() && a.alloc_offset + a.alloc_length > next->file_offset))
          fail(where + "wrong allocation");
        ++allocations;
        // The server allocates (here: fresh space in tier 0's first 2^40
        // bytes), then the same question gets a mapping.
        auto allocated = r.extents;
        added = {a.alloc_offset, a.alloc_length, (rng() % (uint64_t{1} << 28)) * kBlock, 0, 0};
        allocated.insert(allocated.begin() + (next - r.extents.begin()), added);
        a = iomap_begin_answer(allocated, r.tiers, pos, count, opflags, gen);
        if (a.error != 0 && !has_device_address(r.tiers[0], added, pos)) {
          ++no_address;
          continue;
        }
        if (a.error != 0 || a.allocate) fail(where + "no mapping after the allocation");
        in = &added;
        if (!first_failure.empty()) break;
      }
      if (std::string why = violation(a, opflags, pos, gen); !why.empty()) {
        fail(where + "kernel rules: " += why);
        break;
      }
      IomapIo io = a.out.read;
      if (io.type == TIERFS_IOMAP_TYPE_HOLE) {
        ++holes;
        const uint64_t end = io.offset + io.length;
        for (const tierfs_extent& x : r.extents)
          if (x.file_offset < end && io.offset < x.file_offset + x.length)
            fail(where + "HOLE over an extent");
        continue;
      }
      if (in == nullptr) {
        fail(where + "a mapping where there is no extent");
        break;
      }
      const IomapTierTarget& t = r.tiers[in->tier];
      if (gen.is_stripe_type(io.type)) {
        std::string why;
        if (tierfs::kernel::adjust_stripe(r.kernel, kBlock, pos, io, &why) != 0) {
          fail(where + "adjust_stripe: " += why);
          break;
        }
        ++stripes;
      }
      ++mapped;
      const bool reserved = (in->flags & TIERFS_EXTENT_UNWRITTEN) != 0;
      unwritten += reserved;
      if (io.type != (reserved ? TIERFS_IOMAP_TYPE_UNWRITTEN : TIERFS_IOMAP_TYPE_MAPPED))
        fail(where + "type " + std::to_string(io.type));
      if (std::string wrong = tierfs::test::misplaced(t.layout, t.device_cookie.data(), *in, io);
          !wrong.empty())
        fail(where + wrong);
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  EXPECT_EQ(first_failure, "");
  EXPECT_GE(cases, 1000000u);
  EXPECT_GT(mapped, 100000u);
  EXPECT_GT(stripes, 10000u);
  EXPECT_GT(holes, 10000u);
  EXPECT_GT(unwritten, 10000u);
  EXPECT_GT(allocations, 10000u);
  std::printf(
      "iomap answers: %llu cases, %llu mapped (%llu stripes, %llu unwritten), %llu holes, "
      "%llu allocations, %llu refused ops, %llu without a device address, %.2f s\n",
      static_cast<unsigned long long>(cases), static_cast<unsigned long long>(mapped),
      static_cast<unsigned long long>(stripes), static_cast<unsigned long long>(unwritten),
      static_cast<unsigned long long>(holes), static_cast<unsigned long long>(allocations),
      static_cast<unsigned long long>(refused), static_cast<unsigned long long>(no_address),
      seconds);
}

}  // namespace
