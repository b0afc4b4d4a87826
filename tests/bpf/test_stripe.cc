// The stripe path (bpf/stripe.h) against the kernel's own stripe rules
// (kernel/iomap_stripe_rules.h, fs/fuse/fuse_iomap.c at 0d91ba1028c4): the
// ioctl argument tierfs builds is the one the kernel parses, and for every
// equal-weight layout of the equivalence test's generator every byte of
// every mapping the kernel makes out of tierfs's MAPPED_STRIPE answers lands
// on the device and offset tierfs_map_extent gives. Plain C++, no privileges.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bpf/equivalence.h"
#include "bpf/stripe.h"
#include "kernel/iomap_stripe_rules.h"
#include "tests/bpf/placement_check.h"

namespace {

using tierfs::kernel::IomapBeginOut;
using tierfs::kernel::IomapIo;
using tierfs::kernel::KernelBackings;
using tierfs::kernel::kMay2026;

constexpr uint64_t KiB = 1024;
constexpr uint64_t kBlock = TIERFS_IOMAP_BLOCK_SIZE;

std::vector<uint8_t> arg_bytes(const tierfs_stripe_config& c) {
  std::vector<uint8_t> bytes(tierfs_stripe_arg_bytes(c.header.nr_strips));
  std::memcpy(bytes.data(), &c, bytes.size());
  return bytes;
}

// Registers one device per region and the tier's stripe, as a May kernel
// would; returns the stripe id (or -errno / -1 when the tier is no stripe).
int register_stripe(KernelBackings& kernel, const tierfs_layout& l,
                    std::vector<uint32_t>& cookies) {
  cookies.assign(l.ways, 0);
  for (auto& cookie : cookies) cookie = static_cast<uint32_t>(kernel.open_device());
  tierfs_stripe_config c{};
  if (tierfs_stripe_config_of(&l, cookies.data(), &c) != 0) return -1;
  return kernel.configure_stripe(arg_bytes(c));
}

IomapIo stripe_io(const tierfs_stripe_answer& a, uint32_t stripe_id, bool unwritten) {
  return IomapIo{a.offset, a.length,
                 a.linear, unwritten ? kMay2026.unwritten_stripe : kMay2026.mapped_stripe,
                 0,        stripe_id};
}

std::string misplaced(const tierfs_layout& l, const std::vector<uint32_t>& cookies,
                      const tierfs_extent& e, const IomapIo& io) {
  return tierfs::test::misplaced(l, cookies.data(), e, io);
}

TEST(StripeArgument, LayoutAndNumberAsTheTreeHasThem) {
  // _IOW(229, 103, 16-byte header): direction write (1 << 30), size 16 << 16.
  EXPECT_EQ(TIERFS_FUSE_DEV_IOC_IOMAP_BACKING_STRIPE_CONFIG, 0x4010e567u);
  EXPECT_EQ(tierfs_stripe_arg_bytes(3), 16u + 3 * 16);
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
  const std::vector<uint8_t> bytes = arg_bytes(c);
  ASSERT_EQ(bytes.size(), 80u);
  EXPECT_EQ(bytes[0], 4);  // nr_strips, little endian
  EXPECT_EQ(bytes[1], 0);
  for (int i = 2; i < 8; ++i) EXPECT_EQ(bytes[i], 0) << "reserved byte " << i;
  uint64_t width = 0;
  std::memcpy(&width, &bytes[8], 8);
  EXPECT_EQ(width, 128 * KiB) << "two 64 KiB units per region and row";
  uint32_t dev = 0;
  uint64_t addr = 0;
  std::memcpy(&dev, &bytes[16 + 3 * 16], 4);
  std::memcpy(&addr, &bytes[16 + 3 * 16 + 8], 8);
  EXPECT_EQ(dev, 10u);
  EXPECT_EQ(addr, 4u << 20);
}

TEST(StripeArgument, WhatTierfsRefusesToDescribe) {
  tierfs_layout l{};
  l.ways = 2;
  l.granularity_shift = 12;
  l.weights[0] = 2;
  l.weights[1] = 1;
  const uint32_t cookies[2] = {1, 2};
  tierfs_stripe_config c{};
  EXPECT_EQ(tierfs_stripe_config_of(&l, cookies, &c), -1) << "weighted";
  l.weights[0] = 1;
  ASSERT_EQ(tierfs_stripe_config_of(&l, cookies, &c), 0);
  l.base[1] = 512;
  EXPECT_EQ(tierfs_stripe_config_of(&l, cookies, &c), -1) << "base not block-aligned";
  l.base[1] = 0;
  const uint32_t unregistered[2] = {1, 0};
  EXPECT_EQ(tierfs_stripe_config_of(&l, unregistered, &c), -1) << "no device cookie";
}

TEST(StripeKernelRules, ConfigurationRefusals) {
  KernelBackings kernel;
  const uint32_t dev = static_cast<uint32_t>(kernel.open_device());
  ASSERT_EQ(dev, 1u);
  tierfs_stripe_config c{};
  c.header.nr_strips = 1;
  c.header.strip_width = 4 * KiB;
  c.strips[0] = {dev, 0, 0};
  auto bytes = arg_bytes(c);
  EXPECT_EQ(kernel.configure_stripe(std::span(bytes).first(15)), -EFAULT);
  bytes[5] = 1;
  EXPECT_EQ(kernel.configure_stripe(bytes), -EINVAL) << "reserved byte";
  bytes[5] = 0;
  c.strips[0].reserved = 1;
  EXPECT_EQ(kernel.configure_stripe(arg_bytes(c)), -EINVAL) << "strip reserved";
  c.strips[0] = {dev + 1, 0, 0};
  EXPECT_EQ(kernel.configure_stripe(arg_bytes(c)), -ENODEV) << "unregistered device";
  c.strips[0] = {dev, 0, 0};
  c.header.strip_width = 0;
  EXPECT_EQ(kernel.configure_stripe(arg_bytes(c)), -EINVAL) << "width 0";
  c.header.strip_width = 4 * KiB;
  c.header.nr_strips = 257;
  std::vector<uint8_t> big(tierfs_stripe_arg_bytes(257));
  std::memcpy(big.data(), &c.header, sizeof(c.header));
  EXPECT_EQ(kernel.configure_stripe(big), -ENOMEM) << "more than 256 strips";
  c.header.nr_strips = 1;
  EXPECT_EQ(kernel.configure_stripe(arg_bytes(c)), TIERFS_MAY26_STRIPE_ID_FIRST);
  EXPECT_EQ(kernel.configure_stripe(arg_bytes(c)), TIERFS_MAY26_STRIPE_ID_FIRST + 1);
}

// Each of fuse_iomap_adjust_stripe's refusals gives EFSCORRUPTED.
TEST(StripeKernelRules, EveryAdjustFailureIsEfscorrupted) {
  KernelBackings kernel;
  const uint32_t d0 = static_cast<uint32_t>(kernel.open_device());
  const uint32_t d1 = static_cast<uint32_t>(kernel.open_device());
  const int good = kernel.add_stripe_unchecked({64 * KiB, {{d0, 0}, {d1, 0}}, false});
  const int bdev = kernel.add_stripe_unchecked({64 * KiB, {{d0, 0}, {d1, 0}}, true});
  const int odd_width = kernel.add_stripe_unchecked({64 * KiB + 512, {{d0, 0}, {d1, 0}}, false});
  const int odd_strip = kernel.add_stripe_unchecked({64 * KiB, {{d0, 0}, {d1, 512}}, false});
  const int near_top =
      kernel.add_stripe_unchecked({64 * KiB, {{d0, ~uint64_t{0} - 64 * KiB + 1}, {d1, 0}}, false});
  const auto ok = [&](uint32_t stripe) { return stripe_io({0, 256 * KiB, 0}, stripe, false); };
  struct Case {
    const char* what;
    IomapIo io;
    uint64_t pos;
  };
  std::vector<Case> cases = {
      {"no device", ok(0), 0},
      {"device is not a stripe", ok(d0), 0},
      {"stripe with a block device", ok(bdev), 0},
      {"width not block-aligned", ok(odd_width), 0},
      {"strip address not block-aligned", ok(odd_strip), 64 * KiB},
      {"address overflows", ok(near_top), 128 * KiB},
      {"mapping ends before pos's block", ok(good), 256 * KiB},
  };
  IomapIo plain = ok(good);
  plain.type = TIERFS_IOMAP_TYPE_MAPPED;
  cases.push_back({"plain type", plain, 0});
  IomapIo no_addr = ok(good);
  no_addr.addr = TIERFS_IOMAP_NULL_ADDR;
  cases.push_back({"null address", no_addr, 0});
  for (uint16_t flag : {TIERFS_IOMAP_F_ANON_WRITE, TIERFS_IOMAP_F_ATOMIC_BIO}) {
    IomapIo flagged = ok(good);
    flagged.flags = flag;
    cases.push_back({"ANON_WRITE or ATOMIC_BIO", flagged, 0});
  }
  for (Case& c : cases) {
    std::string why;
    const IomapIo before = c.io;
    EXPECT_EQ(tierfs::kernel::adjust_stripe(kernel, kBlock, c.pos, c.io, &why),
              -tierfs::kernel::kEfscorrupted)
        << c.what;
    EXPECT_FALSE(why.empty()) << c.what;
    EXPECT_EQ(std::memcmp(&before, &c.io, sizeof(before)), 0) << c.what << ": map changed";
  }
  // A device closed under the stripe: its id reads 0 (below 1).
  kernel.close_device(d1);
  IomapIo closed = ok(good);
  EXPECT_EQ(tierfs::kernel::adjust_stripe(kernel, kBlock, 64 * KiB, closed),
            -tierfs::kernel::kEfscorrupted);
  IomapIo fine = ok(good);
  EXPECT_EQ(tierfs::kernel::adjust_stripe(kernel, kBlock, 0, fine), 0) << "strip 0 is open";
  EXPECT_EQ(fine.length, 64 * KiB) << "cut at the strip's end";
}

// The oracle catches a wrong answer: an answer one block off in the stripe's
// space, and a stripe registered with its strips in the wrong order, both
// put bytes where tierfs_map_extent does not.
TEST(StripeKernelRules, CatchesAWrongAnswer) {
  tierfs_layout l{};
  l.ways = 4;
  l.granularity_shift = 16;
  for (uint32_t i = 0; i < 4; ++i) {
    l.weights[i] = 1;
    l.base[i] = i * (uint64_t{1} << 30);
  }
  KernelBackings kernel;
  std::vector<uint32_t> cookies;
  const int stripe = register_stripe(kernel, l, cookies);
  ASSERT_GE(stripe, TIERFS_MAY26_STRIPE_ID_FIRST);
  const tierfs_extent e{0, 16 << 20, 5 << 16, 0, 0};
  tierfs_stripe_answer a{};
  ASSERT_EQ(tierfs_stripe_answer_of(&l, &e, 300 * KiB, &a), 0);
  IomapIo right = stripe_io(a, stripe, false);
  ASSERT_EQ(tierfs::kernel::adjust_stripe(kernel, kBlock, 300 * KiB, right), 0);
  EXPECT_EQ(misplaced(l, cookies, e, right), "");

  IomapIo off_by_a_block = stripe_io(a, stripe, false);
  off_by_a_block.addr += kBlock;
  ASSERT_EQ(tierfs::kernel::adjust_stripe(kernel, kBlock, 300 * KiB, off_by_a_block), 0);
  EXPECT_EQ(misplaced(l, cookies, e, off_by_a_block), "first byte at the wrong device offset");

  tierfs_stripe_config c{};
  ASSERT_EQ(tierfs_stripe_config_of(&l, cookies.data(), &c), 0);
  std::swap(c.strips[0], c.strips[1]);
  const int swapped = kernel.configure_stripe(arg_bytes(c));
  IomapIo wrong_order = stripe_io(a, static_cast<uint32_t>(swapped), false);
  ASSERT_EQ(tierfs::kernel::adjust_stripe(kernel, kBlock, 300 * KiB, wrong_order), 0);
  EXPECT_NE(misplaced(l, cookies, e, wrong_order), "");
}

// >= 10^6 kernel mappings: every equal-weight layout the equivalence test's
// generator makes (and each weighted one with its weights made equal, so
// strip widths of w * G appear too), tiers registered through the kernel's
// configuration rules, answers from tierfs_stripe_answer_of checked by the
// kernel's answer rules, adjusted by the kernel's stripe rule at pos and at
// the next strips as iomap's iterator walks on.
TEST(StripeKernelRules, EveryByteOfEveryEqualWeightLayoutLandsWhereTierfsMapsIt) {
  const auto began = std::chrono::steady_clock::now();
  tierfs::bpf::ScenarioGenerator generator(27);
  std::mt19937_64 rng(27);
  uint64_t cases = 0, answers = 0, layouts = 0, not_stripes = 0, unwritten = 0, wide = 0,
           no_answer = 0;
  std::string first_failure;
  tierfs::kernel::IomapRules rules;
  rules.generation = &kMay2026;
  const auto op_sets = tierfs::kernel::iomap_op_sets(kMay2026);
  while (cases < 1000000) {
    tierfs_layout l = generator.random_layout();
    if (!tierfs_layout_valid(&l)) continue;
    for (uint32_t i = 1; i < l.ways; ++i) l.weights[i] = l.weights[0];
    KernelBackings kernel;
    std::vector<uint32_t> cookies;
    const int stripe = register_stripe(kernel, l, cookies);
    if (stripe < 0) {
      ++not_stripes;  // a base that is not block-aligned: tierfs answers no stripe
      continue;
    }
    ASSERT_GE(stripe, TIERFS_MAY26_STRIPE_ID_FIRST);
    ++layouts;
    wide += l.weights[0] > 1;
    for (const tierfs_extent& e : generator.random_extents(8)) {
      for (int probe = 0; probe < 8; ++probe) {
        const uint64_t pos = probe == 0   ? e.file_offset
                             : probe == 1 ? e.file_offset + e.length - 1
                                          : e.file_offset + rng() % e.length;
        // The kernel adjusts the answer at pos; iomap's iterator then asks
        // again where that mapping ended, and tierfs answers afresh (it
        // never puts stripe answers in the kernel's mapping cache).
        const auto& op = op_sets[rng() % op_sets.size()];
        if (op.opflags & TIERFS_IOMAP_OP_ATOMIC) continue;
        uint64_t at = pos;
        for (int step = 0; step < 4 && at - e.file_offset < e.length; ++step) {
          tierfs_stripe_answer a{};
          if (tierfs_stripe_answer_of(&l, &e, at, &a) != 0) {
            // No answer: the last partial block, or tierfs has no device
            // address for the block (a region whose offsets pass 2^64).
            ++no_answer;
            break;
          }
          ++answers;
          const bool is_unwritten = (e.flags & TIERFS_EXTENT_UNWRITTEN) != 0;
          unwritten += is_unwritten;
          const IomapBeginOut out{stripe_io(a, static_cast<uint32_t>(stripe), is_unwritten),
                                  {a.offset, a.length, TIERFS_IOMAP_NULL_ADDR,
                                   kMay2026.pure_overwrite, 0, TIERFS_IOMAP_DEV_NULL}};
          if (std::string why = tierfs::kernel::iomap_begin_violation(out, op.opflags, at, rules);
              !why.empty()) {
            if (first_failure.empty()) first_failure = "answer rules: " + why;
            break;
          }
          IomapIo io = out.read;
          std::string why;
          ++cases;
          if (tierfs::kernel::adjust_stripe(kernel, kBlock, at, io, &why) != 0) {
            if (first_failure.empty())
              first_failure = "adjust_stripe at " + std::to_string(at) + ": " + why;
            break;
          }
          if (std::string wrong = misplaced(l, cookies, e, io); !wrong.empty()) {
            if (first_failure.empty()) first_failure = "pos " + std::to_string(at) + ": " + wrong;
            break;
          }
          at = io.offset + io.length;
        }
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  EXPECT_EQ(first_failure, "");
  EXPECT_GT(layouts, 1000u);
  EXPECT_GT(wide, 100u) << "strip widths of w * G with w > 1";
  EXPECT_GT(unwritten, 1000u);
  RecordProperty("cases", std::to_string(cases));
  RecordProperty("answers", std::to_string(answers));
  RecordProperty("layouts", std::to_string(layouts));
  RecordProperty("seconds", std::to_string(seconds));
  std::printf(
      "stripe oracle: %llu kernel mappings from %llu answers over %llu layouts "
      "(%llu not stripes; %llu positions without a stripe answer), %.2f s\n",
      static_cast<unsigned long long>(cases), static_cast<unsigned long long>(answers),
      static_cast<unsigned long long>(layouts), static_cast<unsigned long long>(not_stripes),
      static_cast<unsigned long long>(no_answer), seconds);
}

}  // namespace

namespace {

// A weighted tier written as a stripe (region i gets w_i strips of width G,
// each a slice of the region) against the tier's own placement and the
// server's per-run answers: the same spread over regions, other offsets in
// them, and how many kernel mappings (each one iomap iteration, and without
// the kernel's mapping cache one FUSE_IOMAP_BEGIN round trip) cover one
// extent either way. The figures are the ones docs/bpf.md gives.
TEST(WeightedStripes, SameSpreadOtherPlacementAndMoreMappings) {
  struct Shape {
    uint32_t shift;
    std::vector<uint8_t> weights;
  };
  const std::vector<Shape> shapes = {{16, {3, 1}}, {12, {2, 1, 1, 1}}, {21, {5, 3}}, {16, {1, 1}}};
  for (const Shape& shape : shapes) {
    tierfs_layout l{};
    l.ways = static_cast<uint32_t>(shape.weights.size());
    l.granularity_shift = shape.shift;
    const uint64_t g = uint64_t{1} << shape.shift;
    const uint64_t rows = 64;  // the tier's size in rows
    uint32_t strips = 0;
    for (uint32_t i = 0; i < l.ways; ++i) {
      l.weights[i] = shape.weights[i];
      l.base[i] = uint64_t{i} << 40;
      strips += shape.weights[i];
    }
    KernelBackings kernel;
    std::vector<uint32_t> cookies(l.ways);
    for (auto& c : cookies) c = static_cast<uint32_t>(kernel.open_device());
    // Strip k of a row is the row's unit k: region i's j-th strip is the
    // j-th slice (rows * G bytes) of region i.
    tierfs::kernel::KernelStripe weighted{g, {}, false};
    for (uint32_t i = 0; i < l.ways; ++i)
      for (uint32_t j = 0; j < l.weights[i]; ++j)
        weighted.strips.push_back({cookies[i], l.base[i] + j * rows * g});
    const int stripe = kernel.add_stripe_unchecked(weighted);
    const tierfs_extent e{0, rows * strips * g, 0, 0, 0};

    uint64_t stripe_mappings = 0, run_mappings = 0, other_offset = 0;
    for (uint64_t pos = 0; pos < e.length;) {
      IomapIo io{0, e.length, 0, kMay2026.mapped_stripe, 0, static_cast<uint32_t>(stripe)};
      ASSERT_EQ(tierfs::kernel::adjust_stripe(kernel, kBlock, pos, io), 0);
      tierfs_mapping m{};
      ASSERT_EQ(tierfs_map_extent(&l, &e, pos, &m), TIERFS_MAP_OK);
      EXPECT_EQ(io.dev, cookies[m.region]) << "same region for every byte";
      other_offset += io.addr != m.region_offset;
      ++stripe_mappings;
      pos = io.offset + io.length;
    }
    for (uint64_t pos = 0; pos < e.length; ++run_mappings) {
      tierfs_mapping m{};
      ASSERT_EQ(tierfs_map_extent(&l, &e, pos, &m), TIERFS_MAP_OK);
      pos += m.length;
    }
    const bool equal = strips == l.ways;
    if (equal) {
      EXPECT_EQ(stripe_mappings, run_mappings);
      EXPECT_EQ(other_offset, 0u) << "an equal-weight stripe is the tier's own placement";
    } else {
      EXPECT_EQ(stripe_mappings * l.ways, run_mappings * strips) << "sum(w) / ways times more";
      EXPECT_GT(other_offset, 0u) << "a weighted stripe places bytes elsewhere in a region";
    }
    std::printf("weighted stripe: G 2^%u, weights", shape.shift);
    for (uint8_t w : shape.weights) std::printf(" %u", w);
    std::printf(
        ": extent of %llu MiB: %llu stripe mappings of G (%llu at another offset), "
        "%llu tierfs runs\n",
        static_cast<unsigned long long>(e.length >> 20),
        static_cast<unsigned long long>(stripe_mappings),
        static_cast<unsigned long long>(other_offset),
        static_cast<unsigned long long>(run_mappings));
  }
}

}  // namespace
