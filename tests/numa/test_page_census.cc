// The page census (numa/page_census.h): the kernel's answer for a tmpfs file
// with an interleave policy on this machine, holes left unallocated, and the
// placement checks against synthetic layouts as the kernel lays them out on
// several nodes (the vm suite checks the real thing on 4 nodes).
#include "numa/page_census.h"

#include <gtest/gtest.h>
#include <numaif.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace {

using tierfs::numa::census_from_nodes;
using tierfs::numa::PageCensus;
using tierfs::numa::placement_problems;
using tierfs::numa::PlacementTarget;
using tierfs::numa::take_page_census;

// The node of each page as the kernel's interleave places it: the index is
// biased by `bias` units (the kernel adds the inode number), then unit k goes
// to the node whose weighted slot k falls in.
std::vector<int> interleaved(const std::vector<std::pair<int, unsigned>>& weights,
                             uint64_t unit_pages, uint64_t pages, uint64_t bias = 0) {
  unsigned total = 0;
  for (const auto& entry : weights) total += entry.second;
  std::vector<int> nodes(pages);
  for (uint64_t page = 0; page < pages; ++page) {
    uint64_t slot = (page / unit_pages + bias) % total;
    for (const auto& [node, weight] : weights) {
      if (slot < weight) {
        nodes[page] = node;
        break;
      }
      slot -= weight;
    }
  }
  return nodes;
}

PlacementTarget target(std::map<int, unsigned> weights, uint64_t granularity_bytes) {
  PlacementTarget t;
  t.node_weights = std::move(weights);
  t.granularity_bytes = granularity_bytes;
  return t;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string all;
  for (const auto& line : lines) all += line + "\n";
  return all;
}

TEST(PageCensusCounts, RunsAndProportionsFromPerPageNodes) {
  const PageCensus census = census_from_nodes({0, 0, 1, 1, -1, 1, 0, -1}, 4096);
  EXPECT_EQ(census.file_pages, 8U);
  EXPECT_EQ(census.populated_pages, 6U);
  EXPECT_EQ(census.pages_per_node.at(0), 3U);
  EXPECT_EQ(census.pages_per_node.at(1), 3U);
  EXPECT_EQ(census.bytes_on(1), 3U * 4096);
  EXPECT_DOUBLE_EQ(census.share(0), 0.5);
  ASSERT_EQ(census.runs.size(), 4U);  // the hole at page 4 ends node 1's run
  EXPECT_EQ(census.runs[1].first_page, 2U);
  EXPECT_EQ(census.runs[1].pages, 2U);
  EXPECT_EQ(census.runs[2].first_page, 5U);
  EXPECT_EQ(census.runs[2].pages, 1U);
  EXPECT_EQ(census.run_lengths().at(2), 2U);
}

TEST(PlacementProblems, EqualAndWeightedInterleaveAsTheKernelPlacesThemPass) {
  // Page granularity over 4 nodes, biased as an inode number would.
  auto census = census_from_nodes(interleaved({{0, 1}, {1, 1}, {2, 1}, {3, 1}}, 1, 4096, 7), 4096);
  EXPECT_EQ(joined(placement_problems(census, target({{0, 1}, {1, 1}, {2, 1}, {3, 1}}, 4096))), "");
  // Weights 3:1:1:1 at page granularity: the first run is cut by the bias.
  census = census_from_nodes(interleaved({{0, 3}, {1, 1}, {2, 1}, {3, 1}}, 1, 8192, 1), 4096);
  EXPECT_EQ(joined(placement_problems(census, target({{0, 3}, {1, 1}, {2, 1}, {3, 1}}, 4096))), "");
  // 2 MiB huge pages, weights 2:1, ending in a partial huge page.
  census = census_from_nodes(interleaved({{1, 2}, {2, 1}}, 512, 512 * 30 + 100, 5), 4096);
  EXPECT_EQ(joined(placement_problems(census, target({{1, 2}, {2, 1}}, 2 << 20))), "");
}

TEST(PlacementProblems, PagesOffTheTiersNodesFail) {
  const auto census = census_from_nodes(interleaved({{0, 1}, {1, 1}, {2, 1}}, 1, 300), 4096);
  const auto problems = placement_problems(census, target({{0, 1}, {1, 1}}, 4096));
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(joined(problems).find("100 pages are on node 2, which is not one of the tier's nodes"),
            std::string::npos)
      << joined(problems);
}

TEST(PlacementProblems, ProportionsOffByMoreThanTheToleranceFail) {
  // Equal interleave measured against weights 3:1: node 0 holds 50 %, not 75 %.
  const auto census = census_from_nodes(interleaved({{0, 1}, {1, 1}}, 1, 4000), 4096);
  const auto problems = placement_problems(census, target({{0, 3}, {1, 1}}, 4096));
  EXPECT_NE(joined(problems).find("node 0 holds 2000 of 4000 pages (50.0 %)"), std::string::npos)
      << joined(problems);
  // 4 % off one node's expected count passes at 5 %, fails at 3 %.
  std::vector<int> nodes(2000, 0);
  nodes.resize(4166, 1);  // node 0: 2000 of 4166, expected 2083 (4.0 % more)
  auto slightly_off = census_from_nodes(nodes, 4096);
  auto loose = target({{0, 1}, {1, 1}}, 4096);
  auto problems_at_5 = placement_problems(slightly_off, loose);
  EXPECT_EQ(joined(problems_at_5).find(" holds "), std::string::npos) << joined(problems_at_5);
  loose.tolerance = 0.03;
  EXPECT_NE(joined(placement_problems(slightly_off, loose)).find("node 0 holds 2000"),
            std::string::npos);
}

TEST(PlacementProblems, RunsOfAnotherGranularityFail) {
  // Page-granularity interleave where the tier says 64 KiB (16 pages).
  auto census = census_from_nodes(interleaved({{0, 1}, {1, 1}}, 1, 1024), 4096);
  EXPECT_NE(joined(placement_problems(census, target({{0, 1}, {1, 1}}, 64 << 10)))
                .find("ends off a 16-page boundary"),
            std::string::npos);
  // 2 MiB runs where the tier says 4 KiB: the right proportions, runs too long.
  census = census_from_nodes(interleaved({{0, 1}, {1, 1}}, 512, 512 * 8), 4096);
  EXPECT_NE(joined(placement_problems(census, target({{0, 1}, {1, 1}}, 4096)))
                .find("is not weight 1 x 1 pages long"),
            std::string::npos);
  // Equal interleave where the tier weighs 2:1 at the same granularity: runs
  // of one unit on node 0 instead of two.
  census = census_from_nodes(interleaved({{0, 1}, {1, 1}}, 16, 16 * 300), 4096);
  EXPECT_NE(joined(placement_problems(census, target({{0, 2}, {1, 1}}, 64 << 10)))
                .find("is not weight 2 x 16 pages long"),
            std::string::npos);
}

TEST(PlacementProblems, NothingInMemoryIsAProblem) {
  const auto problems =
      placement_problems(census_from_nodes({-1, -1}, 4096), target({{0, 1}}, 4096));
  ASSERT_EQ(problems.size(), 1U);
  EXPECT_EQ(problems[0], "no page of the file is in memory");
}

class MemfdFile : public ::testing::Test {
 protected:
  void SetUp() override {
    fd_ = memfd_create("tierfs-census", 0);
    ASSERT_GE(fd_, 0) << std::strerror(errno);
    ASSERT_EQ(ftruncate(fd_, kPages * kPage), 0);
  }
  void TearDown() override { close(fd_); }

  // The file's shared policy, set through a mapping as the kernel path sets it.
  void interleave_over_node0() const {
    void* map = mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    ASSERT_NE(map, MAP_FAILED);
    unsigned long mask = 1;
    ASSERT_EQ(mbind(map, kPages * kPage, MPOL_INTERLEAVE, &mask, sizeof(mask) * 8, 0), 0)
        << std::strerror(errno);
    munmap(map, kPages * kPage);
  }

  uint64_t allocated_blocks() const {
    struct stat st {};
    EXPECT_EQ(fstat(fd_, &st), 0);
    return static_cast<uint64_t>(st.st_blocks);
  }

  static constexpr uint64_t kPage = 4096;
  static constexpr uint64_t kPages = 64;
  int fd_ = -1;
};

TEST_F(MemfdFile, InterleavedOverNode0WrittenPagesAreAllOnNode0AndHolesStayHoles) {
  interleave_over_node0();
  const std::vector<char> block(10 * kPage, 'x');
  // Pages 0-9 and 20-29 by write(); the rest of the 64 are holes.
  ASSERT_EQ(pwrite(fd_, block.data(), block.size(), 0), static_cast<ssize_t>(block.size()));
  ASSERT_EQ(pwrite(fd_, block.data(), block.size(), 20 * kPage),
            static_cast<ssize_t>(block.size()));
  const uint64_t blocks_before = allocated_blocks();

  std::error_code error;
  std::string what;
  const PageCensus census = take_page_census(fd_, error, what);
  ASSERT_FALSE(error) << what << ": " << error.message();
  EXPECT_EQ(census.file_pages, kPages);
  EXPECT_EQ(census.populated_pages, 20U);
  ASSERT_EQ(census.pages_per_node.size(), 1U);
  EXPECT_EQ(census.pages_per_node.at(0), 20U);
  ASSERT_EQ(census.runs.size(), 2U);
  EXPECT_EQ(census.runs[0].first_page, 0U);
  EXPECT_EQ(census.runs[0].pages, 10U);
  EXPECT_EQ(census.runs[1].first_page, 20U);
  EXPECT_EQ(census.runs[1].pages, 10U);
  EXPECT_EQ(joined(placement_problems(census, target({{0, 1}}, kPage))), "");
  // Taking the census allocated none of the holes.
  EXPECT_EQ(allocated_blocks(), blocks_before);
  EXPECT_EQ(blocks_before, 20 * kPage / 512);
}

TEST_F(MemfdFile, AnUnwrittenFileHasNoPagesAndAnEmptyFileNone) {
  std::error_code error;
  std::string what;
  PageCensus census = take_page_census(fd_, error, what);
  ASSERT_FALSE(error) << what;
  EXPECT_EQ(census.file_pages, kPages);
  EXPECT_EQ(census.populated_pages, 0U);
  EXPECT_TRUE(census.runs.empty());
  EXPECT_EQ(allocated_blocks(), 0U);
  ASSERT_EQ(ftruncate(fd_, 0), 0);
  census = take_page_census(fd_, error, what);
  ASSERT_FALSE(error) << what;
  EXPECT_EQ(census.file_pages, 0U);
}

TEST(PageCensusErrors, ABadDescriptorNamesTheCall) {
  std::error_code error;
  std::string what;
  const PageCensus census = take_page_census(-1, error, what);
  EXPECT_EQ(error.value(), EBADF);
  EXPECT_EQ(what, "fstat");
  EXPECT_EQ(census.populated_pages, 0U);
}

}  // namespace
