// Space on a real mount: a file costs its size rounded up to 4 KiB (st_blocks,
// statfs), preallocation scales with the file, a failed fallocate or write
// keeps nothing (one tier and spilling into a second), an O_DIRECT write that
// fills the tier reports the bytes written and then ENOSPC on both cache
// modes, and renameat2 with RENAME_WHITEOUT leaves a whiteout as tmpfs does.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "tests/integration/mount_fixture.h"
#include "tests/support/privileged.h"

namespace tierfs::testing {
namespace {

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kMiB = 1 << 20;

using SpaceTest = MountTest;

uint64_t free_blocks(const std::string& dir) {
  struct statvfs st {};
  EXPECT_EQ(statvfs(dir.c_str(), &st), 0) << strerror(errno);
  EXPECT_EQ(st.f_frsize, kBlock);
  return st.f_bfree;
}

// st_blocks in bytes, asked of the server, not the kernel's attribute cache.
uint64_t allocated(const std::string& path) {
  struct statx st {};
  EXPECT_EQ(statx(AT_FDCWD, path.c_str(), AT_STATX_FORCE_SYNC, STATX_BLOCKS, &st), 0)
      << path << ": " << strerror(errno);
  return st.stx_blocks * 512;
}

// With cache = "none" the release that trims preallocation may land just
// after close() returns; it lands within microseconds, the bound only ends a
// failing test.
uint64_t allocated_after_release(const std::string& path, uint64_t expected) {
  uint64_t now = allocated(path);
  for (int i = 0; i < 1000 && now > expected; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    now = allocated(path);
  }
  return now;
}

TestConfig one_tier(const std::string& size, const std::string& granularity,
                    const std::string& cache = "none") {
  TestConfig config;
  config.tiers.push_back({"fast", {"numa:0"}, size, granularity});
  config.cache = cache;
  return config;
}

TEST_F(SpaceTest, SmallFilesCostTheirSizeRoundedUpAndHolesNothing) {
  ASSERT_TRUE(remount(one_tier("64MiB", "2MiB"))) << mount_.failure();
  const uint64_t empty = free_blocks(mount_.dir());
  write_all(mount_.path("one"), "x");
  write_all(mount_.path("two"), std::string(5000, 'y'));
  EXPECT_EQ(allocated_after_release(mount_.path("one"), kBlock), kBlock);
  EXPECT_EQ(allocated_after_release(mount_.path("two"), 2 * kBlock), 2 * kBlock);
  EXPECT_EQ(free_blocks(mount_.dir()), empty - 3);
  // A 1 KiB log appended line by line reserves a block, not megabytes.
  const int fd = open(mount_.path("log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  for (int i = 0; i < 64; ++i) {
    ASSERT_EQ(write(fd, "a log line of 16", 16), 16);
    EXPECT_LE(allocated(mount_.path("log")), 2 * kBlock) << "after line " << i;
  }
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(allocated_after_release(mount_.path("log"), kBlock), kBlock);
  // A hole costs nothing.
  write_all(mount_.path("sparse"), "");
  ASSERT_EQ(truncate(mount_.path("sparse").c_str(), 1 << 30), 0) << strerror(errno);
  EXPECT_EQ(allocated(mount_.path("sparse")), 0u);
  EXPECT_EQ(free_blocks(mount_.dir()), empty - 4);
  for (const char* name : {"one", "two", "log", "sparse"})
    ASSERT_EQ(unlink(mount_.path(name).c_str()), 0);
  EXPECT_EQ(free_blocks(mount_.dir()), empty);
}

TEST_F(SpaceTest, FailedFallocateKeepsNothing) {
  ASSERT_TRUE(remount(one_tier("16MiB", "64KiB"))) << mount_.failure();
  const std::string file = mount_.path("f");
  write_all(file, pattern(100000, 1));
  const uint64_t held = allocated_after_release(file, 25 * kBlock);
  const uint64_t before = free_blocks(mount_.dir());
  const int fd = open(file.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << strerror(errno);
  EXPECT_EQ(fallocate(fd, 0, 0, 64 * kMiB), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 * kMiB, 20 * kMiB), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(free_blocks(mount_.dir()), before) << "a failed fallocate kept blocks";
  EXPECT_EQ(allocated(file), held);
  // The space is all there: a fallocate of what is free succeeds.
  EXPECT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 * kMiB, before * kBlock), 0) << strerror(errno);
  EXPECT_EQ(free_blocks(mount_.dir()), 0u);
  ASSERT_EQ(close(fd), 0);
  EXPECT_TRUE(read_all(file) == pattern(100000, 1));
}

TEST_F(SpaceTest, FailedFallocateThatSpilledKeepsNothingOnEitherTier) {
  TestConfig config = one_tier("4MiB", "4KiB");
  // One file's extents across two tiers are the server path's: a kernel-path
  // file is one backing file and cannot be larger than its tmpfs.
  config.tiers[0].extra = "data_path = \"server\"";
  config.tiers.push_back({"spill", {"file:@WORK@/spill.img"}, "4MiB", "64KiB", true});
  ASSERT_TRUE(remount(config)) << mount_.failure();
  write_all(mount_.path("small"), "keep me");
  const uint64_t before = free_blocks(mount_.dir());
  const int fd = open(mount_.path("big").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  EXPECT_EQ(fallocate(fd, 0, 0, 12 * kMiB), -1) << "more than both tiers hold";
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(free_blocks(mount_.dir()), before);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 0) << "a failed fallocate changed the size";
  // What fits does fit, across both tiers.
  EXPECT_EQ(fallocate(fd, 0, 0, 6 * kMiB), 0) << strerror(errno);
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(read_all(mount_.path("small")), "keep me");
}

TEST_F(SpaceTest, ShortWriteKeepsOnlyWhatItWrote) {
  ASSERT_TRUE(remount(one_tier("8MiB", "64KiB"))) << mount_.failure();
  const uint64_t before = free_blocks(mount_.dir());
  const std::string data = pattern(12 * kMiB + 100, 2);
  const int fd = open(mount_.path("f").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  const ssize_t n = write(fd, data.data(), data.size());
  ASSERT_GT(n, 0) << strerror(errno);
  EXPECT_LT(static_cast<size_t>(n), data.size());
  EXPECT_EQ(write(fd, data.data(), data.size()), -1);
  EXPECT_EQ(errno, ENOSPC);
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(allocated_after_release(mount_.path("f"), before * kBlock),
            (static_cast<uint64_t>(n) + kBlock - 1) / kBlock * kBlock);
  EXPECT_TRUE(read_all(mount_.path("f")) == data.substr(0, static_cast<size_t>(n)));
  ASSERT_EQ(unlink(mount_.path("f").c_str()), 0);
  EXPECT_EQ(free_blocks(mount_.dir()), before);
}

// O_DIRECT writes of 1 MiB until the tier is full: the write that fills it
// reports the bytes it wrote, the next one ENOSPC, and the file keeps them.
void direct_write_fills_tier(Mount& mount) {
  const std::string file = mount.path("direct");
  const int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_DIRECT, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  void* buffer = nullptr;
  ASSERT_EQ(posix_memalign(&buffer, kBlock, 3 * kMiB), 0);
  const std::string data = pattern(3 * kMiB, 3);
  std::memcpy(buffer, data.data(), data.size());
  uint64_t written = 0;
  ssize_t n = 0;
  bool short_seen = false;
  while ((n = write(fd, buffer, 3 * kMiB)) > 0) {
    written += static_cast<uint64_t>(n);
    if (static_cast<uint64_t>(n) < 3 * kMiB) short_seen = true;
    ASSERT_LT(written, 64 * kMiB) << "the tier never filled";
  }
  const int err = errno;
  free(buffer);
  EXPECT_EQ(n, -1);
  EXPECT_EQ(err, ENOSPC) << "got " << strerror(err) << " after " << written << " bytes";
  EXPECT_TRUE(short_seen) << "the write that filled the tier did not report its bytes";
  ASSERT_EQ(close(fd), 0);
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), written) << "the file lost what was written";
  const std::string back = read_all(file);
  ASSERT_EQ(back.size(), written);
  for (uint64_t at = 0; at < written; at += 3 * kMiB)
    ASSERT_TRUE(back.compare(at, std::min<uint64_t>(3 * kMiB, written - at), data, 0,
                             std::min<uint64_t>(3 * kMiB, written - at)) == 0)
        << "bytes differ in the piece at " << at;
}

TEST_F(SpaceTest, DirectWriteFillingTheTierReportsBytesThenEnospcWithCacheNone) {
  ASSERT_TRUE(remount(one_tier("16MiB", "64KiB", "none"))) << mount_.failure();
  write_all(mount_.path("pad"),
            std::string(5 * kBlock, 'p'));  // free space not a multiple of 3 MiB
  direct_write_fills_tier(mount_);
}

TEST_F(SpaceTest, DirectWriteFillingTheTierReportsBytesThenEnospcWithCacheKernel) {
  ASSERT_TRUE(remount(one_tier("16MiB", "64KiB", "kernel"))) << mount_.failure();
  write_all(mount_.path("pad"), std::string(5 * kBlock, 'p'));
  direct_write_fills_tier(mount_);
}

TEST_F(SpaceTest, RenameWhiteoutLeavesACharacterDeviceZeroZero) {
  write_all(mount_.path("upper"), "moved");
  ASSERT_EQ(renameat2(AT_FDCWD, mount_.path("upper").c_str(), AT_FDCWD,
                      mount_.path("moved").c_str(), RENAME_WHITEOUT),
            0)
      << strerror(errno);
  EXPECT_EQ(read_all(mount_.path("moved")), "moved");
  const struct stat st = stat_of(mount_.path("upper"));
  EXPECT_TRUE(S_ISCHR(st.st_mode)) << std::oct << st.st_mode;
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_EQ(st.st_nlink, 1u);
  // Over an existing target, and with NOREPLACE refused when it exists.
  write_all(mount_.path("a"), "a");
  write_all(mount_.path("b"), "b");
  EXPECT_EQ(renameat2(AT_FDCWD, mount_.path("a").c_str(), AT_FDCWD, mount_.path("b").c_str(),
                      RENAME_WHITEOUT | RENAME_NOREPLACE),
            -1);
  EXPECT_EQ(errno, EEXIST);
  ASSERT_EQ(renameat2(AT_FDCWD, mount_.path("a").c_str(), AT_FDCWD, mount_.path("b").c_str(),
                      RENAME_WHITEOUT),
            0)
      << strerror(errno);
  EXPECT_EQ(read_all(mount_.path("b")), "a");
  EXPECT_TRUE(S_ISCHR(stat_of(mount_.path("a")).st_mode));
  // A directory moves too, and the whiteout takes its place.
  ASSERT_EQ(mkdir(mount_.path("dir").c_str(), 0755), 0);
  ASSERT_EQ(renameat2(AT_FDCWD, mount_.path("dir").c_str(), AT_FDCWD, mount_.path("dir2").c_str(),
                      RENAME_WHITEOUT),
            0)
      << strerror(errno);
  EXPECT_TRUE(S_ISDIR(stat_of(mount_.path("dir2")).st_mode));
  EXPECT_TRUE(S_ISCHR(stat_of(mount_.path("dir")).st_mode));
  // EXCHANGE with WHITEOUT is invalid, as on every file system.
  EXPECT_EQ(renameat2(AT_FDCWD, mount_.path("b").c_str(), AT_FDCWD, mount_.path("moved").c_str(),
                      RENAME_WHITEOUT | RENAME_EXCHANGE),
            -1);
  EXPECT_EQ(errno, EINVAL);
  // A whiteout is removed like any node.
  EXPECT_EQ(unlink(mount_.path("upper").c_str()), 0);
}

}  // namespace
}  // namespace tierfs::testing
