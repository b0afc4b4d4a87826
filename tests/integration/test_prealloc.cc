// Preallocation on a real mount: the blocks a sequential writer's file takes
// ahead of its writes are given back when the last writable handle closes,
// so it keeps its size rounded up to 4 KiB, while fallocate's reservations
// (KEEP_SIZE too) stay. The tier is shaped like the built-in default: one
// DRAM region, 2 MiB granularity, so a row is 2 MiB.
//
// With cache = "none" (the default) that happens at the release, which the
// kernel sends without waiting for it in close(): those tests wait until the
// server has processed it. With cache = "kernel" writers' closes send a FLUSH
// that trims, so close() returns with the rows given back.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "tests/integration/mount_fixture.h"
#include "tests/support/privileged.h"

namespace tierfs::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kBlockBytes = 4096;

uint64_t round_up_to_block(uint64_t bytes) {
  return (bytes + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
}

struct Usage {
  uint64_t size_bytes = 0;
  uint64_t allocated_bytes = 0;
};

// Asks the server (AT_STATX_FORCE_SYNC), not the kernel's attribute cache.
Usage usage_of(const std::string& path) {
  struct statx st {};
  EXPECT_EQ(statx(AT_FDCWD, path.c_str(), AT_STATX_FORCE_SYNC, STATX_SIZE | STATX_BLOCKS, &st), 0)
      << path << ": " << strerror(errno);
  return {st.stx_size, st.stx_blocks * 512};
}

// cache = "none": the release that trims may still be on its way when close()
// returns. It lands within microseconds; the 10 s bound only ends a failing test.
Usage usage_after_release(const std::string& path) {
  Usage usage = usage_of(path);
  for (int i = 0; i < 1000 && usage.allocated_bytes > round_up_to_block(usage.size_bytes); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    usage = usage_of(path);
  }
  return usage;
}

// 1 MiB writes at the end of the file, as dd bs=1M does.
void append_mib(int fd, const std::string& data) {
  for (size_t at = 0; at < data.size(); at += kMiB)
    ASSERT_EQ(write(fd, data.data() + at, kMiB), static_cast<ssize_t>(kMiB)) << strerror(errno);
}

TestConfig default_shaped(const std::string& cache) {
  TestConfig config;
  config.tiers.push_back({"dram", {"numa:0"}, "512MiB", "2MiB"});
  config.cache = cache;
  return config;
}

class PreallocTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TIERFS_REQUIRE(missing_root());
    TIERFS_REQUIRE(missing_fuse());
    ASSERT_TRUE(mount_.start(default_shaped("none"))) << mount_.failure();
  }
  Mount mount_;
};

class PreallocKernelCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TIERFS_REQUIRE(missing_root());
    TIERFS_REQUIRE(missing_fuse());
    ASSERT_TRUE(mount_.start(default_shaped("kernel"))) << mount_.failure();
  }
  Mount mount_;
};

TEST_F(PreallocTest, DdOfSixtyFourMiBKeepsOnlyItsOwnBlocksAfterClose) {
  const std::string file = mount_.path("dd.dat");
  std::string output;
  ASSERT_EQ(run_command({"dd", "if=/dev/zero", "of=" + file, "bs=1M", "count=64"}, output), 0)
      << output;
  const Usage usage = usage_after_release(file);
  EXPECT_EQ(usage.size_bytes, 64 * kMiB);
  EXPECT_EQ(usage.allocated_bytes, round_up_to_block(usage.size_bytes))
      << "preallocation past the end was not given back on close";
}

TEST_F(PreallocTest, SequentialWriterKeepsItsDataAndGivesBackTheRest) {
  const std::string file = mount_.path("seq.dat");
  const std::string data = pattern(63 * kMiB, 7);
  int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  append_mib(fd, data);
  ASSERT_EQ(write(fd, "tail", 4), 4);
  ASSERT_EQ(close(fd), 0);
  const Usage usage = usage_after_release(file);
  EXPECT_EQ(usage.size_bytes, data.size() + 4);
  EXPECT_EQ(usage.allocated_bytes, round_up_to_block(usage.size_bytes));
  EXPECT_TRUE(read_all(file) == data + "tail") << "the bytes read back differ";
}

TEST_F(PreallocTest, AppendingAfterReopenIsTrimmedAgain) {
  const std::string file = mount_.path("append.dat");
  const std::string first = pattern(16 * kMiB, 1);
  const std::string second = pattern(5 * kMiB, 2);
  write_all(file, first);
  int fd = open(file.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0) << strerror(errno);
  append_mib(fd, second);
  ASSERT_EQ(close(fd), 0);
  const Usage usage = usage_after_release(file);
  EXPECT_EQ(usage.size_bytes, first.size() + second.size());
  EXPECT_EQ(usage.allocated_bytes, round_up_to_block(usage.size_bytes));
  EXPECT_TRUE(read_all(file) == first + second) << "the bytes read back differ";
}

TEST_F(PreallocTest, TheLastWritableHandleToCloseTrims) {
  const std::string file = mount_.path("two.dat");
  int idle = open(file.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(idle, 0) << strerror(errno);
  int writer = open(file.c_str(), O_WRONLY);
  ASSERT_GE(writer, 0) << strerror(errno);
  append_mib(writer, pattern(24 * kMiB, 3));
  ASSERT_EQ(close(writer), 0);
  ASSERT_EQ(close(idle), 0);  // wrote nothing, but is the last writable handle
  const Usage usage = usage_after_release(file);
  EXPECT_EQ(usage.size_bytes, 24 * kMiB);
  EXPECT_EQ(usage.allocated_bytes, round_up_to_block(usage.size_bytes));
}

TEST_F(PreallocKernelCacheTest, DdOfSixtyFourMiBIsTrimmedWhenCloseReturns) {
  const std::string file = mount_.path("dd.dat");
  std::string output;
  ASSERT_EQ(run_command({"dd", "if=/dev/zero", "of=" + file, "bs=1M", "count=64"}, output), 0)
      << output;
  const Usage usage = usage_of(file);
  EXPECT_EQ(usage.size_bytes, 64 * kMiB);
  EXPECT_EQ(usage.allocated_bytes, round_up_to_block(usage.size_bytes))
      << "the writer's flush did not give preallocation back";
}

// The reservations are checked where close() waits for the trim, so a wrong
// trim cannot hide behind a release that has not landed yet.
TEST_F(PreallocKernelCacheTest, KeepSizeReservationSurvivesClose) {
  const std::string file = mount_.path("reserved.dat");
  int fd = open(file.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  ASSERT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 32 * kMiB), 0) << strerror(errno);
  ASSERT_EQ(write(fd, "head", 4), 4);
  ASSERT_EQ(close(fd), 0);
  const Usage usage = usage_of(file);
  EXPECT_EQ(usage.size_bytes, 4u);
  EXPECT_GE(usage.allocated_bytes, 32 * kMiB) << "the KEEP_SIZE reservation was trimmed";
}

TEST_F(PreallocKernelCacheTest, KeepSizeReservationPastAppendedDataIsKeptExactly) {
  const std::string file = mount_.path("grow.dat");
  int fd = open(file.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  append_mib(fd, pattern(8 * kMiB, 4));
  ASSERT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, 8 * kMiB, 16 * kMiB), 0) << strerror(errno);
  ASSERT_EQ(close(fd), 0);
  const Usage usage = usage_of(file);
  EXPECT_EQ(usage.size_bytes, 8 * kMiB);
  EXPECT_GE(usage.allocated_bytes, 24 * kMiB) << "the KEEP_SIZE reservation was trimmed";
  EXPECT_LE(usage.allocated_bytes, 24 * kMiB) << "preallocation past the reservation stayed";
}

}  // namespace
}  // namespace tierfs::testing
