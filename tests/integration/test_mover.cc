// The mover on a real mount: fill a fast tier past its high watermark, the
// coldest files (never a pinned one) go down until it is under its low mark,
// a demoted file read often comes back up; `tierfs map` shows a move in
// progress and an unmount in the middle of one is clean; a shared mmap keeps
// working while its file moves (cache = "kernel" and "none").
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/migrate_helpers.h"

namespace tierfs::testing {
namespace {

using MoverTest = MountTest;

// 32 MiB of fast DRAM with marks at 80% and 50%, a slow file tier below.
TestConfig watermarked(const std::string& rate) {
  TestConfig config;
  config.tiers.push_back({"fast", {"numa:0"}, "32MiB", "4KiB"});
  // The server path's mover (extents; the kernel path's: kernel_full.sh, kernel_move.sh).
  config.tiers.back().extra = "high_watermark = 80\nlow_watermark = 50\ndata_path = \"server\"";
  config.tiers.push_back({"slow", {"file:@WORK@/slow.img"}, "128MiB", "64KiB", true});
  config.placement.push_back({"pinned/*", "", "fast", true});
  config.extra = "[mover]\ninterval_ms = 100\npromote_reads = 4\nrate = \"" + rate + "\"";
  return config;
}

bool eventually(const std::function<bool()>& done, std::chrono::seconds limit) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < give_up) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST_F(MoverTest, FillAndDrainDemotesTheColdestAndPromotesWhatIsReadOften) {
  ASSERT_TRUE(remount(watermarked("1GiB"))) << mount_.failure();
  const size_t two = 2 << 20;
  ASSERT_EQ(mkdir(mount_.path("pinned").c_str(), 0755), 0);
  // The coldest of all, but pinned.
  write_all(mount_.path("pinned/p"), pattern(two, 100));
  std::vector<std::string> names(12);
  for (int i = 0; i < 12; ++i) names[i] = "f" + std::to_string(i);
  for (int i = 0; i < 10; ++i) write_all(mount_.path(names[i]), pattern(two, i));
  // 22 of 32 MiB (69%): under the high mark. Warm f5..f9, then pass 80%.
  for (int i = 5; i < 10; ++i) EXPECT_EQ(read_all(mount_.path(names[i])).size(), two);
  for (int i = 10; i < 12; ++i) write_all(mount_.path(names[i]), pattern(two, i));

  auto fast_used = [&] { return read_stats(mount_.dir()).tiers[0].used_bytes; };
  ASSERT_TRUE(
      eventually([&] { return fast_used() <= (32u << 20) / 100 * 50; }, std::chrono::seconds(60)))
      << "fast tier still at " << fast_used();
  // The coldest went down and nothing warmer: five of them bring the tier
  // to its low mark, a sixth when the mover looked while f11's append
  // preallocation still held blocks.
  size_t demoted = 0;
  while (demoted < 12 && tiers_of(mount_.path(names[demoted])) == std::set<std::string>{"slow"})
    ++demoted;
  EXPECT_GE(demoted, 5u);
  EXPECT_LE(demoted, 6u);
  for (size_t i = demoted; i < 12; ++i)
    EXPECT_EQ(tiers_of(mount_.path(names[i])), std::set<std::string>{"fast"}) << names[i];
  EXPECT_EQ(tiers_of(mount_.path("pinned/p")), std::set<std::string>{"fast"});
  inspect::Stats stats = read_stats(mount_.dir());
  EXPECT_EQ(stats.tiers[0].high_watermark, 80u);
  EXPECT_EQ(stats.tiers[0].low_watermark, 50u);
  EXPECT_EQ(stats.tiers[0].files_moved_out, demoted);
  EXPECT_EQ(stats.tiers[0].bytes_moved_out, demoted * two);
  EXPECT_EQ(stats.tiers[1].files_moved_in, demoted);

  // Room under the low mark, and f0 read again and again: it comes back up.
  ASSERT_EQ(unlink(mount_.path("f10").c_str()), 0);
  ASSERT_EQ(unlink(mount_.path("f11").c_str()), 0);
  EXPECT_TRUE(eventually(
      [&] {
        read_all(mount_.path("f0"));
        return tiers_of(mount_.path("f0")) == std::set<std::string>{"fast"};
      },
      std::chrono::seconds(60)));
  // f1..f4 were never read (f5, when it went down, was: it may come back too).
  for (size_t i = 1; i < 5; ++i)
    EXPECT_EQ(tiers_of(mount_.path(names[i])), std::set<std::string>{"slow"})
        << names[i] << " was not read: it stays down";
  stats = read_stats(mount_.dir());
  EXPECT_GE(stats.tiers[0].files_moved_in, 1u) << "f0";
  EXPECT_LE(stats.tiers[0].files_moved_in, demoted - 4) << "f0, and f5 if it went down";
  // Contents last: reading them makes them hot.
  for (int i = 0; i < 10; ++i)
    EXPECT_TRUE(read_all(mount_.path(names[i])) == pattern(two, i)) << names[i];
  EXPECT_TRUE(read_all(mount_.path("pinned/p")) == pattern(two, 100));
  EXPECT_NE(stats.mover.state, "off");
}

TEST_F(MoverTest, MapShowsAMoveInProgressAndUnmountStopsItCleanly) {
  // 1 MiB/s: demoting 20 MiB takes long enough to look at it, and to unmount in the middle.
  TestConfig config = watermarked("1MiB");
  ASSERT_TRUE(remount(config)) << mount_.failure();
  const std::string data = pattern(26 << 20, 7);
  write_all(mount_.path("big"), data);
  inspect::MapPage map;
  ASSERT_TRUE(eventually(
      [&] {
        map = read_extent_map(mount_.path("big"));
        return map.migration.has_value();
      },
      std::chrono::seconds(30)));
  EXPECT_EQ(map.migration->to_tier, "slow");
  EXPECT_LT(map.migration->copied_bytes, map.migration->total_bytes);
  EXPECT_EQ(tiers_of(mount_.path("big")), std::set<std::string>{"fast"})
      << "the extents switch only at the end";
  EXPECT_TRUE(read_all(mount_.path("big")) == data) << "readable during the move";
  std::string out;
  ASSERT_EQ(run_command({tierfs_bin(), "map", mount_.path("big")}, out), 0);
  EXPECT_NE(out.find("moving to tier slow"), std::string::npos) << out;
  const inspect::Stats stats = read_stats(mount_.dir());
  EXPECT_EQ(stats.mover.state, "demoting");
  EXPECT_EQ(stats.mover.in_flight, 1u);
  EXPECT_EQ(mount_.stop(), 0) << "the server gives the move up and exits cleanly";
}

// A shared mapping written and read while its file moves between layouts.
// The file as the server holds it: O_DIRECT reads bypass the kernel's page cache.
std::string read_direct(const std::string& path, size_t size) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECT);
  if (fd < 0) return "<open failed>";
  void* buffer = nullptr;
  if (posix_memalign(&buffer, 4096, size) != 0) return "<no memory>";
  std::string out;
  if (pread(fd, buffer, size, 0) == static_cast<ssize_t>(size))
    out.assign(static_cast<char*>(buffer), size);
  free(buffer);
  close(fd);
  return out;
}

void mmap_while_moving(Mount& mount) {
  const size_t size = 4 << 20;
  write_all(mount.path("mapped"), pattern(size, 9));
  const int fd = open(mount.path("mapped").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(base, MAP_FAILED) << strerror(errno);
  auto* bytes = static_cast<char*>(base);
  std::string expected = pattern(size, 9);
  const std::vector<std::string> tiers = {"slow", "narrow", "fast", "slow", "narrow", "fast"};
  for (size_t round = 0; round < tiers.size(); ++round) {
    // Dirty a page in every 64 KiB, move, check through the mapping and through read().
    for (size_t off = round * 512; off < size; off += 65536) {
      bytes[off] = static_cast<char>('A' + round);
      expected[off] = static_cast<char>('A' + round);
    }
    ASSERT_EQ(msync(base, size, MS_SYNC), 0);
    ASSERT_EQ(migrate_fd(fd, tiers[round]), 0) << tiers[round];
    EXPECT_EQ(tiers_of(mount.path("mapped")), std::set<std::string>{tiers[round]});
    EXPECT_TRUE(std::memcmp(bytes, expected.data(), size) == 0) << "mapping, round " << round;
    EXPECT_TRUE(read_all(mount.path("mapped")) == expected) << "read(), round " << round;
    EXPECT_TRUE(read_direct(mount.path("mapped"), size) == expected)
        << "the server's bytes, round " << round;
  }
  munmap(base, size);
  close(fd);
}

TEST_F(MoverTest, SharedMmapKeepsWorkingWhileTheFileMovesCacheKernel) {
  TestConfig config = three_layouts();
  config.cache = "kernel";
  ASSERT_TRUE(remount(config)) << mount_.failure();
  mmap_while_moving(mount_);
}

TEST_F(MoverTest, SharedMmapKeepsWorkingWhileTheFileMovesCacheNone) {
  ASSERT_TRUE(remount(three_layouts())) << mount_.failure();
  mmap_while_moving(mount_);
}

}  // namespace
}  // namespace tierfs::testing
