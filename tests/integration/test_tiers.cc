// Tiers on a real mount: ENOSPC on a full tier without harm to other files,
// spill into the next tier (visible in user.tierfs.map), placement rules and
// user.tierfs.tier, and the `tierfs map` / `tierfs stats` commands.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "numa/region_claim.h"
#include "tests/integration/mount_fixture.h"
#include "tierfs/core/inspect_schema.h"

namespace tierfs::testing {
namespace {

using TierTest = MountTest;

inspect::MapPage map_of(const std::string& path) {
  std::string text = getxattr_string(path, "user.tierfs.map");
  EXPECT_FALSE(text.empty()) << path << ": no user.tierfs.map";
  return text.empty() ? inspect::MapPage{} : nlohmann::json::parse(text).get<inspect::MapPage>();
}

// A kernel-path file has no extents: it is one backing file on its tier,
// which the map names as its preferred tier.
std::set<std::string> tiers_used(const inspect::MapPage& map) {
  if (map.data_path == "kernel") return {map.preferred_tier};
  std::set<std::string> names;
  for (const auto& extent : map.extents) names.insert(extent.tier);
  return names;
}

TestConfig two_tiers(const std::string& fast_size, const std::string& slow_size,
                     const std::string& fast_extra = "") {
  TestConfig config;
  config.tiers.push_back({"fast", {"numa:0"}, fast_size, "4KiB", false, {}, {}, fast_extra});
  config.tiers.push_back({"slow", {"file:@WORK@/slow.img"}, slow_size, "64KiB", true});
  return config;
}

// Writes until the first error; returns errno (0 if `limit` bytes fit).
int fill(const std::string& path, size_t limit) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT, 0644);
  if (fd < 0) return errno;
  std::string chunk = pattern(1 << 20, 42);
  int err = 0;
  for (size_t done = 0; done < limit;) {
    ssize_t n = write(fd, chunk.data(), chunk.size());
    if (n < 0) {
      err = errno;
      break;
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  return err;
}

TEST_F(TierTest, FullTierAnswersEnospcAndOtherFilesSurvive) {
  TestConfig config;
  config.tiers.push_back({"tiny", {"numa:0"}, "4MiB", "4KiB"});
  ASSERT_TRUE(remount(config)) << mount_.failure();
  std::string keep = pattern(512 * 1024, 11);
  write_all(mount_.path("keep"), keep);
  EXPECT_EQ(fill(mount_.path("hog"), 64 << 20), ENOSPC);
  EXPECT_TRUE(read_all(mount_.path("keep")) == keep) << "a full tier must not corrupt other files";
  ASSERT_EQ(unlink(mount_.path("hog").c_str()), 0);
  EXPECT_EQ(fill(mount_.path("again"), 2 << 20), 0) << "unlink gives the rows back";
}

TEST_F(TierTest, FullFastTierSpillsIntoTheNextTier) {
  // One open file's extents spilling into the next tier are the server path's; a
  // kernel-path file spills by the mover's policy change (kernel_full.sh).
  ASSERT_TRUE(remount(two_tiers("1MiB", "32MiB", "data_path = \"server\""))) << mount_.failure();
  std::string data = pattern(6 << 20, 12);
  write_all(mount_.path("spill"), data);
  EXPECT_TRUE(read_all(mount_.path("spill")) == data);
  const inspect::MapPage map = map_of(mount_.path("spill"));
  EXPECT_EQ(tiers_used(map), (std::set<std::string>{"fast", "slow"}))
      << nlohmann::json(map).dump(2);
  for (const auto& extent : map.extents) {
    EXPECT_FALSE(extent.regions.empty());
    for (const auto& region : extent.regions) EXPECT_LT(region.region_offset, region.region_end);
  }
}

std::string file_bytes(const std::string& path, uint64_t offset, size_t length) {
  std::string out(length, '\0');
  const int fd = open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0) << path;
  if (fd < 0) return "";
  EXPECT_EQ(pread(fd, out.data(), length, static_cast<off_t>(offset)),
            static_cast<ssize_t>(length));
  close(fd);
  return out;
}

// A weighted spill tier whose first file starts at an offset: the map's
// device offsets are the resolved geometry's, the bytes are there in the
// backing files, and freeing the rows zeroes them without touching the bytes
// before the offset, which are not tierfs's.
TEST_F(TierTest, RegionOffsetsAreDeviceOffsetsInMapAndFiles) {
  char tmpl[] = "/tmp/tierfs-offset-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, a = dir + "/a.img", b = dir + "/b.img";
  const uint64_t kOffset = 1 << 20, kUnit = 64 << 10;
  write_all(a, std::string(kOffset, '\xaa'));  // not tierfs's: must stay as it is
  // The file is the test's, not tierfs's: signed as take_over = true would.
  ASSERT_EQ(setxattr(a.c_str(), tierfs::numa::kRegionXattr, tierfs::numa::kRegionXattrValue,
                     std::strlen(tierfs::numa::kRegionXattrValue), 0),
            0);
  TestConfig config;
  config.tiers.push_back(
      {"spill", {"file:" + a, "file:" + b}, "12MiB", "64KiB", true, {"1MiB", ""}, {2, 1}});
  ASSERT_TRUE(remount(config)) << mount_.failure();
  const std::string data = pattern(3 * kUnit, 21);  // exactly one 2:1 row
  write_all(mount_.path("f"), data);
  const inspect::MapPage map = map_of(mount_.path("f"));
  ASSERT_EQ(map.extents.size(), 1u);
  const inspect::MapExtent& extent = map.extents[0];
  ASSERT_EQ(extent.tier_address, 0u);
  ASSERT_EQ(extent.regions.size(), 2u);
  for (const inspect::MapRegion& region : extent.regions) {
    EXPECT_EQ(region.region_offset, 0u) << region.spec;
    EXPECT_EQ(region.device_offset, region.index == 0 ? kOffset : 0) << region.spec;
  }
  EXPECT_TRUE(file_bytes(a, kOffset, 2 * kUnit) == data.substr(0, 2 * kUnit));
  EXPECT_TRUE(file_bytes(b, 0, kUnit) == data.substr(2 * kUnit));
  ASSERT_EQ(unlink(mount_.path("f").c_str()), 0);
  // The rows are freed at unlink or, when the kernel's RELEASE comes later, by
  // then; after the server has exited they are freed either way.
  mount_.stop();
  EXPECT_TRUE(file_bytes(a, 0, kOffset) == std::string(kOffset, '\xaa'));
  EXPECT_TRUE(file_bytes(a, kOffset, 2 * kUnit) == std::string(2 * kUnit, '\0'));
  EXPECT_TRUE(file_bytes(b, 0, kUnit) == std::string(kUnit, '\0'));
  std::filesystem::remove_all(dir);
}

TEST_F(TierTest, PathRuleChoosesTheTier) {
  TestConfig config = two_tiers("16MiB", "16MiB");
  config.placement.push_back({"*.cold", "", "slow"});
  ASSERT_TRUE(remount(config)) << mount_.failure();
  write_all(mount_.path("data.cold"), pattern(100000, 13));
  write_all(mount_.path("data.hot"), pattern(100000, 14));
  EXPECT_EQ(tiers_used(map_of(mount_.path("data.cold"))), std::set<std::string>{"slow"});
  EXPECT_EQ(tiers_used(map_of(mount_.path("data.hot"))), std::set<std::string>{"fast"});
}

TEST_F(TierTest, SizeHintRuleAppliesOnFallocate) {
  // A size hint moves a file's extents; a kernel-path file's backing file is made
  // at create, before the hint, and stays on its tier (a gap of the kernel path).
  TestConfig config = two_tiers("16MiB", "32MiB", "data_path = \"server\"");
  config.placement.push_back({"", "8MiB", "slow"});
  ASSERT_TRUE(remount(config)) << mount_.failure();
  int fd = open(mount_.path("big").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fallocate(fd, 0, 0, 10 << 20), 0) << strerror(errno);
  close(fd);
  EXPECT_EQ(tiers_used(map_of(mount_.path("big"))), std::set<std::string>{"slow"});
  write_all(mount_.path("small"), pattern(4096, 15));
  EXPECT_EQ(tiers_used(map_of(mount_.path("small"))), std::set<std::string>{"fast"});
}

TEST_F(TierTest, TierXattrOnFileAndDirectoryChoosesTheTier) {
  ASSERT_TRUE(remount(two_tiers("16MiB", "16MiB"))) << mount_.failure();
  write_all(mount_.path("f"), "");
  ASSERT_EQ(setxattr(mount_.path("f").c_str(), "user.tierfs.tier", "slow", 4, 0), 0)
      << strerror(errno);
  write_all(mount_.path("f"), pattern(100000, 16));
  EXPECT_EQ(tiers_used(map_of(mount_.path("f"))), std::set<std::string>{"slow"});

  ASSERT_EQ(mkdir(mount_.path("d").c_str(), 0755), 0);
  ASSERT_EQ(setxattr(mount_.path("d").c_str(), "user.tierfs.tier", "slow", 4, 0), 0);
  ASSERT_EQ(mkdir(mount_.path("d/sub").c_str(), 0755), 0);
  write_all(mount_.path("d/sub/child"), pattern(100000, 17));
  EXPECT_EQ(tiers_used(map_of(mount_.path("d/sub/child"))), std::set<std::string>{"slow"});

  errno = 0;
  EXPECT_NE(setxattr(mount_.path("f").c_str(), "user.tierfs.tier", "nope", 4, 0), 0);
  EXPECT_EQ(errno, EINVAL) << "an unknown tier name is refused";
}

TEST_F(TierTest, MapCommandPrintsExtentsAndJson) {
  write_all(mount_.path("f"), pattern(3 << 20, 18));
  const bool kernel_path = on_kernel_path(mount_.path("f"));
  std::string out;
  ASSERT_EQ(run_command({tierfs_bin(), "map", mount_.path("f")}, out), 0) << out;
  EXPECT_NE(out.find("fast"), std::string::npos) << out;
  // Extents name their regions; a kernel-path file says which path serves it.
  EXPECT_NE(out.find(kernel_path ? "kernel path: the bytes are a backing file" : "numa:0"),
            std::string::npos)
      << out;
  ASSERT_EQ(run_command({tierfs_bin(), "map", "--json", mount_.path("f")}, out), 0) << out;
  const auto map = nlohmann::json::parse(out).get<inspect::MapPage>();
  EXPECT_EQ(map.data_path, kernel_path ? "kernel" : "server");
  uint64_t covered = 0;
  for (const auto& extent : map.extents) covered += extent.length;
  EXPECT_GE(kernel_path ? map.allocated_bytes : covered, 3u << 20);
  ASSERT_NE(run_command({tierfs_bin(), "map", "/etc/hostname"}, out), 0);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << "one line: " << out;
}

TEST_F(TierTest, MapOfAFragmentedFileComesInPagesAndJoinsWhole) {
  TestConfig config = small_config();
  config.tiers[0].extra = "data_path = \"server\"";  // extents are the server path's bookkeeping
  ASSERT_TRUE(remount(config)) << mount_.failure();
  // Every other 4 KiB unit written: many extents, more JSON than one xattr value holds.
  int fd = open(mount_.path("frag").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  std::string unit = pattern(4096, 20);
  for (int i = 0; i < 1500; ++i)
    ASSERT_EQ(pwrite(fd, unit.data(), unit.size(), static_cast<off_t>(i) * 8192), 4096);
  close(fd);
  std::string out;
  ASSERT_EQ(run_command({tierfs_bin(), "map", "--json", mount_.path("frag")}, out), 0) << out;
  const auto map = nlohmann::json::parse(out).get<inspect::MapPage>();
  EXPECT_EQ(map.extents.size(), map.extent_count);
  EXPECT_FALSE(map.next_extent.has_value());
  uint64_t covered = 0;
  for (const auto& extent : map.extents) covered += extent.length;
  EXPECT_GE(covered, 1500u * 4096);
}

TEST_F(TierTest, StatsCommandCountsUseAndOperations) {
  write_all(mount_.path("f"), pattern(2 << 20, 19));
  std::string out;
  ASSERT_EQ(run_command({tierfs_bin(), "stats", "--json", mount_.dir()}, out), 0) << out;
  const auto stats = nlohmann::json::parse(out).get<inspect::Stats>();
  ASSERT_EQ(stats.tiers.size(), 1u);
  EXPECT_EQ(stats.tiers[0].capacity_bytes, 64u << 20);
  EXPECT_GE(stats.tiers[0].used_bytes, 2u << 20);
  // The kernel writes a kernel-path file without asking the server.
  if (on_kernel_path(mount_.path("f"))) {
    EXPECT_EQ(stats.tiers[0].data_path, "kernel");
    EXPECT_EQ(stats.ops.at("write"), 0u);
  } else {
    EXPECT_GT(stats.ops.at("write"), 0u);
  }
  EXPECT_GT(stats.ops.at("create"), 0u);
  ASSERT_EQ(run_command({tierfs_bin(), "stats", mount_.dir()}, out), 0) << out;
  EXPECT_NE(out.find("fast"), std::string::npos) << out;
}

// Long file: names and a numa region side by side: every table line is as
// wide as the header, each region's node sits under "node", and the
// per-region counters move with a write and a read split 2:1 over two regions.
TEST_F(TierTest, StatsTableLinesUpAndCountsEachRegion) {
  const std::string long_name = "region-with-a-name-much-longer-than-any-column-width";
  TestConfig config;
  config.tiers.push_back(
      {"wide",
       {"file:@WORK@/" + long_name + "-a.img", "file:@WORK@/" + long_name + "-b.img"},
       "12MiB",
       "64KiB",
       true,
       {},
       {2, 1}});
  config.tiers.push_back({"fast", {"numa:0"}, "8MiB", "4KiB"});
  ASSERT_TRUE(remount(config)) << mount_.failure();
  const std::string data = pattern(3 << 20, 23);  // 16 rows of 2:1 x 64KiB
  write_all(mount_.path("f"), data);
  EXPECT_EQ(read_all(mount_.path("f")), data);

  std::string out;
  ASSERT_EQ(run_command({tierfs_bin(), "stats", "--json", mount_.dir()}, out), 0) << out;
  const auto stats = nlohmann::json::parse(out).get<inspect::Stats>();
  ASSERT_EQ(stats.tiers.size(), 2u);
  const inspect::TierUse& wide = stats.tiers[0];
  ASSERT_EQ(wide.regions.size(), 2u);
  EXPECT_EQ(wide.regions[0].bytes_written, 2u << 20);
  EXPECT_EQ(wide.regions[1].bytes_written, 1u << 20);
  EXPECT_EQ(wide.regions[0].bytes_read, 2u << 20);
  EXPECT_EQ(wide.regions[1].bytes_read, 1u << 20);
  for (const inspect::RegionUse& region : wide.regions) {
    EXPECT_GT(region.writes, 0u) << region.spec;
    EXPECT_GT(region.reads, 0u) << region.spec;
    EXPECT_LE(region.writes, wide.writes) << region.spec;  // one per request at most
    EXPECT_LE(region.reads, wide.reads) << region.spec;
  }
  EXPECT_EQ(stats.tiers[1].regions.at(0).bytes_written, 0u);  // nothing went to the fast tier

  ASSERT_EQ(run_command({tierfs_bin(), "stats", mount_.dir()}, out), 0) << out;
  std::vector<std::string> table;
  std::istringstream lines(out);
  // The use table runs from its header to the migrations table ("  tier  ...").
  for (std::string line; std::getline(lines, line);) {
    if (!table.empty() && (line.starts_with("  tier ") || line.starts_with("  operations:"))) break;
    if (!table.empty() || line.starts_with("  tier / region")) table.push_back(line);
  }
  ASSERT_GE(table.size(), 6u) << out;  // header, 2 tiers, 3 regions
  const std::string& header = table[0];
  const size_t node_end = header.find(" node ") + 5;  // right-aligned: cells end here
  ASSERT_NE(header.find(" node "), std::string::npos) << out;
  for (const std::string& line : table) {
    EXPECT_EQ(line.size(), header.size()) << "a column is out of line:\n" << out;
    EXPECT_EQ(line[node_end], ' ') << line;
  }
  // Regions are the indented rows; the node cell is the word that ends at node_end.
  std::vector<std::string> nodes;
  for (const std::string& line : table) {
    if (!line.starts_with("    ")) continue;
    const size_t start = line.rfind(' ', node_end - 1) + 1;
    nodes.push_back(line.substr(start, node_end - start));
  }
  EXPECT_EQ(nodes, (std::vector<std::string>{"-", "-", "0"})) << out;
}

}  // namespace
}  // namespace tierfs::testing
