// The BPF loader on the running kernel: the twin passes the real verifier,
// the maps take what the server writes, and over 10^6 random (layout,
// extent, request) cases the twin's answers in the kernel equal the C++
// answers of the same header code. The struct_ops object is inspected
// without loading it, so CO-RE's names are checked on every kernel.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "bpf/equivalence.h"
#include "bpf/iomap_loader.h"
#include "kernel/probe.h"
#include "tests/support/privileged.h"

namespace tierfs::bpf {
namespace {

std::unique_ptr<IomapLoader> load_or_fail() {
  std::string error;
  auto loader = IomapLoader::load(error);
  EXPECT_NE(loader, nullptr) << error;
  return loader;
}

TEST(IomapObject, DeclaresTheSeriesStructOpsTypeAndMembers) {
  std::string error;
  const auto names = inspect_iomap_object(error);
  ASSERT_TRUE(names) << error;
  EXPECT_EQ(names->struct_ops_type, "fuse_iomap_bpf_ops");
  EXPECT_EQ(names->members, (std::vector<std::string>{"iomap_begin", "iomap_end", "iomap_ioend",
                                                      "fuse_fd", "zeropad", "name"}));
  for (const char* program : {"tierfs_iomap_begin", "tierfs_iomap_end", "tierfs_iomap_ioend"})
    EXPECT_NE(std::find(names->programs.begin(), names->programs.end(), program),
              names->programs.end())
        << program;
}

TEST(Loader, TwinPassesTheVerifierAndReportsItsSize) {
  TIERFS_REQUIRE(testing::missing_bpf());
  auto loader = load_or_fail();
  ASSERT_TRUE(loader);
  const ProgramReport& twin = loader->twin_report();
  EXPECT_TRUE(twin.loaded);
  EXPECT_EQ(twin.name, "map_batch");
  EXPECT_GT(twin.object_insns, 0u);
  EXPECT_GT(twin.verified_insns, 0u);
  EXPECT_GT(twin.jited_bytes, 0u);
  EXPECT_NE(loader->tiers_map_id(), 0u);
  EXPECT_NE(loader->inodes_map_id(), 0u);
}

TEST(Loader, StockKernelGetsOneLineSayingWhyTheServerPathServes) {
  TIERFS_REQUIRE(testing::missing_bpf());
  const kernel::KernelFeatures features = kernel::probe_kernel();
  if (features.fuse_iomap_bpf_ops) GTEST_SKIP() << "this kernel has fuse_iomap_bpf_ops";
  auto loader = load_or_fail();
  ASSERT_TRUE(loader);
  const std::string why = loader->attach_iomap(-1, features);
  EXPECT_NE(why.find("has no fuse_iomap_bpf_ops"), std::string::npos) << why;
  EXPECT_EQ(why.find('\n'), std::string::npos) << "one line: " << why;
  EXPECT_FALSE(loader->iomap_attached());
  EXPECT_EQ(loader->verify_iomap(features), why);
}

TEST(Loader, MapsHoldWhatTheServerWrote) {
  TIERFS_REQUIRE(testing::missing_bpf());
  auto loader = load_or_fail();
  ASSERT_TRUE(loader);
  tierfs_layout layout{};
  layout.ways = 2;
  layout.granularity_shift = 12;
  layout.weights[0] = layout.weights[1] = 1;
  const uint32_t cookies[] = {5, 6};
  ASSERT_EQ(loader->set_tier(3, layout, cookies), 0);
  EXPECT_EQ(loader->set_tier(TIERFS_MAX_TIERS, layout, cookies), -E2BIG);

  // Given out of order: the program's lookup needs them sorted.
  const std::vector<tierfs_extent> extents = {{8192, 4096, 9 * 8192, 3, 0}, {0, 4096, 8192, 3, 0}};
  ASSERT_EQ(loader->set_extents(42, extents), 0);
  std::vector<tierfs_extent> too_many(TIERFS_MAX_INODE_EXTENTS + 1, tierfs_extent{0, 1, 0, 3, 0});
  for (size_t i = 0; i < too_many.size(); ++i) too_many[i].file_offset = i * 4096;
  ASSERT_EQ(loader->set_extents(43, {too_many.data(), TIERFS_MAX_INODE_EXTENTS}), 0);
  ASSERT_EQ(loader->set_extents(43, too_many), 0) << "more than the map holds: left out";
  ASSERT_EQ(loader->set_extents(44, extents), 0);
  ASSERT_EQ(loader->remove_inode(44), 0);
  EXPECT_EQ(loader->remove_inode(44), 0) << "removing an absent inode is no error";

  MapsSnapshot snapshot;
  ASSERT_EQ(loader->snapshot(snapshot), 0);
  EXPECT_EQ(snapshot.tiers[3].layout.ways, 2u);
  EXPECT_EQ(snapshot.tiers[3].device_cookie[1], 6u);
  ASSERT_EQ(snapshot.inodes.size(), 1u);
  const tierfs_inode_value& inode = snapshot.inodes.at(42);
  ASSERT_EQ(inode.count, 2u);
  EXPECT_EQ(inode.extents[0].file_offset, 0u);
  EXPECT_EQ(inode.extents[1].file_offset, 8192u);
  EXPECT_EQ(inode.extents[1].tier_address, 9u * 8192);

  // Another process (a test, bpftool) reaches the same maps by id.
  const int fd = bpf_map_get_fd_by_id(loader->inodes_map_id());
  ASSERT_GE(fd, 0);
  uint64_t key = 42;
  tierfs_inode_value value{};
  EXPECT_EQ(bpf_map_lookup_elem(fd, &key, &value), 0);
  EXPECT_EQ(value.count, 2u);
  close(fd);

  // And the twin answers from them: 8192 is unit 0 of row 9 in region 0, device 5;
  // the answer is the whole block around pos, as the kernel requires.
  const tierfs_twin_request request{42, 8192 + 10, 1 << 20, 0, 0};
  tierfs_twin_answer answer{};
  ASSERT_EQ(loader->map_in_kernel({&request, 1}, {&answer, 1}), 0);
  ASSERT_EQ(answer.verdict, TIERFS_IOMAP_HANDLED);
  EXPECT_EQ(answer.out.read.offset, 8192u);
  EXPECT_EQ(answer.out.read.addr, 9u * 4096);
  EXPECT_EQ(answer.out.read.length, 4096u);
  EXPECT_EQ(answer.out.read.dev, 5u);
  EXPECT_EQ(oracle_violation(request, answer), "");
}

TEST(Equivalence, AMillionRandomCasesAgreeBetweenTheKernelAndCpp) {
  TIERFS_REQUIRE(testing::missing_bpf());
  auto loader = load_or_fail();
  ASSERT_TRUE(loader);
  const uint64_t seed = static_cast<uint64_t>(getpid());
  const EquivalenceResult r = check_equivalence(*loader, 1'000'000, seed);
  ASSERT_EQ(r.error, 0) << strerror(-r.error);
  EXPECT_GE(r.cases, 1'000'000u);
  EXPECT_EQ(r.agreed, r.cases) << "seed " << seed << ": " << r.first_disagreement;
  // Every answer the twin handled passes the kernel's own checks.
  EXPECT_EQ(r.checked, r.mapped + r.holes);
  EXPECT_EQ(r.violations, 0u) << "seed " << seed << ": " << r.first_violation;
  EXPECT_GT(r.mix.writes, 0u);
  // The mix reaches what it aims at, with answers that really map.
  EXPECT_GT(r.mapped, r.cases / 20);
  EXPECT_GT(r.holes, 0u);
  EXPECT_GT(r.fallbacks, 0u);
  EXPECT_GT(r.mix.one_way, 0u);
  EXPECT_GT(r.mix.max_ways, 0u);
  EXPECT_GT(r.mix.weighted, 0u);
  EXPECT_GT(r.mix.granularity_4k, 0u);
  EXPECT_GT(r.mix.granularity_1g, 0u);
  EXPECT_GT(r.mix.near_2_63, 0u);
  EXPECT_GT(r.mix.near_2_64, 0u);
  EXPECT_GT(r.mix.unwritten, 0u);
  EXPECT_GT(r.mix.cut_at_boundary, 0u);
  RecordProperty("cases", std::to_string(r.cases));
}

}  // namespace
}  // namespace tierfs::bpf
