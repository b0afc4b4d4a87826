// Shared mmap on a full tier: a store into a hole that no block can back
// faults (SIGBUS in the storing process, as on tmpfs), or it is backed and
// survives msync, close and a fresh read; it is never taken and then dropped
// (msync failing with ENOSPC). And reading stays possible: after the tier was
// filled by write(2) and by stores through shared maps, every file reads
// whole with read(2), never ENOSPC (a hole reads as zeros and needs no block).
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/support/privileged.h"

namespace tierfs::testing {
namespace {

constexpr size_t kSparseBytes = 1 << 20;

class MmapFullTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    TIERFS_REQUIRE(missing_root());
    TIERFS_REQUIRE(missing_fuse());
    ASSERT_TRUE(mount_.start(config(""))) << mount_.failure();
  }
  TestConfig config(const std::string& tier_extra) const {
    TestConfig out;
    out.tiers.push_back({"fast", {"numa:0"}, "8MiB", "4KiB", false, {}, {}, tier_extra});
    out.cache = GetParam();
    return out;
  }
  void TearDown() override { EXPECT_EQ(mount_.stop(), 0) << mount_.failure(); }

  // A file of kSparseBytes with no block behind it.
  void make_sparse(const std::string& name) {
    int fd = open(mount_.path(name).c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(ftruncate(fd, kSparseBytes), 0) << strerror(errno);
    close(fd);
  }

  // Writes files of 1 MiB until the tier refuses (ENOSPC, a short write, or
  // an fsync that could not store what the page cache took).
  void fill_with_writes() {
    const std::string block(1 << 20, 'w');
    for (int i = 0; i < 64; ++i) {
      int fd = open(mount_.path("fill" + std::to_string(i)).c_str(), O_WRONLY | O_CREAT, 0644);
      ASSERT_GE(fd, 0) << strerror(errno);
      const ssize_t n = write(fd, block.data(), block.size());
      const int err = errno;
      const bool synced = n == static_cast<ssize_t>(block.size()) && fsync(fd) == 0;
      close(fd);
      if (!synced) {
        ASSERT_TRUE(n >= 0 || err == ENOSPC) << strerror(err);
        return;
      }
    }
    FAIL() << "64 MiB went into an 8 MiB tier";
  }

  Mount mount_;
};

// What a child saw when it stored into a hole of a shared map and synced.
enum Outcome { kStoredAndSynced = 0, kSyncFailed = 2, kSetupFailed = 3, kSigbus = 100 };

// In a child: maps `path` shared, stores `byte` at every page of [off,
// off + len) and syncs (or leaves the pages dirty for writeback, and exits).
// Its exit status, or kSigbus when the store faulted.
int store_in_child(const std::string& path, size_t off, size_t len, char byte, bool sync = true) {
  pid_t child = fork();
  if (child == 0) {
    int fd = open(path.c_str(), O_RDWR);
    if (fd < 0) _exit(kSetupFailed);
    void* map = mmap(nullptr, kSparseBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) _exit(kSetupFailed);
    auto* bytes = static_cast<char*>(map);
    for (size_t at = off; at < off + len; at += 4096) bytes[at] = byte;
    const int synced = sync ? msync(map, kSparseBytes, MS_SYNC) : 0;
    munmap(map, kSparseBytes);
    const int closed = close(fd);
    _exit(synced == 0 && closed == 0 ? kStoredAndSynced : kSyncFailed);
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) return kSigbus;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// read(2) of the whole file in a fresh process, as cat does: 0 or the errno.
int read_error_of(const std::string& path) {
  pid_t child = fork();
  if (child == 0) {
    int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) _exit(errno);
    char buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
    }
    _exit(n < 0 ? errno : 0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Byte `at` of the file through read(2).
char byte_at(const std::string& path, size_t at) {
  int fd = open(path.c_str(), O_RDONLY);
  char c = '?';
  if (fd >= 0 && pread(fd, &c, 1, static_cast<off_t>(at)) != 1) c = '?';
  if (fd >= 0) close(fd);
  return c;
}

TEST_P(MmapFullTest, AStoreIntoAHoleOfAFullTierFaultsOrSurvivesNeverVanishes) {
  make_sparse("sparse");
  make_sparse("early");
  // Before the tier is full a store into a hole is backed and stays.
  ASSERT_EQ(store_in_child(mount_.path("early"), 0, 8192, 'e'), kStoredAndSynced);
  fill_with_writes();
  const int outcome = store_in_child(mount_.path("sparse"), kSparseBytes / 2, 4096, 's');
  if (std::string(GetParam()) == "none") {
    EXPECT_EQ(outcome, kSigbus) << "cache=none: a store into a hole no block can back must fault";
  } else {
    // cache = "kernel" may take the store into the page cache; then msync
    // reports what writeback could not store, and what it acknowledged is there.
    EXPECT_TRUE(outcome == kSigbus || outcome == kSyncFailed || outcome == kStoredAndSynced)
        << "outcome " << outcome;
  }
  if (outcome == kStoredAndSynced) {
    EXPECT_EQ(byte_at(mount_.path("sparse"), kSparseBytes / 2), 's');
  }
  EXPECT_EQ(byte_at(mount_.path("early"), 4096), 'e');
  // A store left for writeback (no msync) by a process that exits: on
  // cache = "none" the next read(2) writes the map's dirty pages back first,
  // and their failure was that reader's ENOSPC.
  make_sparse("unsynced");
  const int unsynced = store_in_child(mount_.path("unsynced"), 0, 65536, 'u', false);
  if (std::string(GetParam()) == "none") {
    EXPECT_EQ(unsynced, kSigbus);
  }
  // Every file reads to its end, the ones the stores faulted in included.
  std::vector<std::string> names = {"unsynced", "sparse", "early", "fill0"};
  for (const std::string& name : names) {
    const int err = read_error_of(mount_.path(name));
    EXPECT_EQ(err, 0) << name << ": " << strerror(err);
  }
  EXPECT_EQ(byte_at(mount_.path("sparse"), 0), '\0') << "a hole reads as zeros";
}

TEST_P(MmapFullTest, ReadsOfHolesNeverFailWhenTheTierIsFull) {
  // The server path's guarantee: on the kernel path a read fault on a hole of
  // a shared map allocates a tmpfs page and faults SIGBUS when the tier is
  // full, as on tmpfs (docs/operations.md, "Known gaps of the kernel path").
  ASSERT_EQ(mount_.stop(), 0) << mount_.failure();
  ASSERT_TRUE(mount_.start(config("data_path = \"server\""))) << mount_.failure();
  make_sparse("sparse");
  fill_with_writes();
  EXPECT_EQ(read_error_of(mount_.path("sparse")), 0);
  // A read-only shared map of holes reads zeros too.
  int fd = open(mount_.path("sparse").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  void* map = mmap(nullptr, kSparseBytes, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED) << strerror(errno);
  EXPECT_EQ(static_cast<const char*>(map)[12345], '\0');
  munmap(map, kSparseBytes);
  close(fd);
}

INSTANTIATE_TEST_SUITE_P(CacheModes, MmapFullTest, ::testing::Values("none", "kernel"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace tierfs::testing
