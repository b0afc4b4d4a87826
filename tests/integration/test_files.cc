// File data on a real mount: create, read, write, append, O_EXCL, O_TRUNC,
// holes, truncate, fallocate modes, SEEK_DATA/SEEK_HOLE, open-unlinked
// files, stable inode numbers, statfs.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "tests/integration/mount_fixture.h"

namespace tierfs::testing {
namespace {

using FileTest = MountTest;

off_t size_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << strerror(errno);
  return st.st_size;
}

TEST_F(FileTest, WrittenBytesReadBackAcrossManyGranules) {
  std::string data = pattern(3 * 1024 * 1024 + 1234, 1);
  write_all(mount_.path("a"), data);
  EXPECT_EQ(size_of(mount_.path("a")), static_cast<off_t>(data.size()));
  EXPECT_TRUE(read_all(mount_.path("a")) == data);
}

TEST_F(FileTest, OverwriteInTheMiddleKeepsTheRest) {
  std::string data = pattern(100000, 2);
  write_all(mount_.path("a"), data);
  int fd = open(mount_.path("a").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "XYZ", 3, 5000), 3);
  close(fd);
  data.replace(5000, 3, "XYZ");
  EXPECT_TRUE(read_all(mount_.path("a")) == data);
}

TEST_F(FileTest, AppendWritesAtTheEndWhateverTheOffset) {
  write_all(mount_.path("log"), "first\n");
  int fd = open(mount_.path("log").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
  ASSERT_EQ(write(fd, "second\n", 7), 7);
  ASSERT_EQ(pwrite(fd, "third\n", 6, 0), 6);  // Linux: O_APPEND wins over the offset
  close(fd);
  EXPECT_EQ(read_all(mount_.path("log")), "first\nsecond\nthird\n");
}

TEST_F(FileTest, ExclusiveCreateFailsOnAnExistingName) {
  write_all(mount_.path("x"), "data");
  errno = 0;
  EXPECT_LT(open(mount_.path("x").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644), 0);
  EXPECT_EQ(errno, EEXIST);
  int fd = open(mount_.path("y").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  EXPECT_GE(fd, 0);
  close(fd);
}

TEST_F(FileTest, OpenWithTruncEmptiesTheFile) {
  write_all(mount_.path("t"), pattern(50000, 3));
  int fd = open(mount_.path("t").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_EQ(size_of(mount_.path("t")), 0);
  EXPECT_EQ(read_all(mount_.path("t")), "");
}

TEST_F(FileTest, HolesReadAsZeros) {
  int fd = open(mount_.path("sparse").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "end", 3, 10 * 1024 * 1024), 3);
  close(fd);
  std::string data = read_all(mount_.path("sparse"));
  ASSERT_EQ(data.size(), 10u * 1024 * 1024 + 3);
  EXPECT_EQ(data.find_first_not_of('\0'), 10u * 1024 * 1024);
  struct stat st {};
  ASSERT_EQ(stat(mount_.path("sparse").c_str(), &st), 0);
  EXPECT_LT(st.st_blocks * 512, 1024 * 1024) << "a hole must not allocate rows";
}

TEST_F(FileTest, TruncateDownThenUpReadsZerosPastTheCut) {
  std::string data = pattern(200000, 4);
  write_all(mount_.path("t"), data);
  ASSERT_EQ(truncate(mount_.path("t").c_str(), 70001), 0);
  EXPECT_EQ(size_of(mount_.path("t")), 70001);
  ASSERT_EQ(truncate(mount_.path("t").c_str(), 150000), 0);
  std::string back = read_all(mount_.path("t"));
  ASSERT_EQ(back.size(), 150000u);
  EXPECT_TRUE(back.compare(0, 70001, data, 0, 70001) == 0);
  EXPECT_EQ(back.find_first_not_of('\0', 70001), std::string::npos);
}

TEST_F(FileTest, FallocateModeZeroExtendsSizeKeepSizeDoesNot) {
  int fd = open(mount_.path("f").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fallocate(fd, 0, 0, 1 << 20), 0) << strerror(errno);
  EXPECT_EQ(size_of(mount_.path("f")), 1 << 20);
  ASSERT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20), 0) << strerror(errno);
  EXPECT_EQ(size_of(mount_.path("f")), 1 << 20);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_GE(st.st_blocks * 512, 2 << 20) << "KEEP_SIZE must still reserve";
  close(fd);
  std::string data = read_all(mount_.path("f"));
  EXPECT_EQ(data.find_first_not_of('\0'), std::string::npos);
}

TEST_F(FileTest, PunchHoleZeroesTheRangeAndKeepsSize) {
  std::string data = pattern(1 << 20, 5);
  write_all(mount_.path("p"), data);
  int fd = open(mount_.path("p").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 10000, 300000), 0)
      << strerror(errno);
  errno = 0;
  EXPECT_NE(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096), 0) << "PUNCH_HOLE needs KEEP_SIZE";
  EXPECT_EQ(errno, EOPNOTSUPP);
  close(fd);
  data.replace(10000, 300000, std::string(300000, '\0'));
  EXPECT_EQ(size_of(mount_.path("p")), 1 << 20);
  EXPECT_TRUE(read_all(mount_.path("p")) == data);
}

TEST_F(FileTest, ZeroRangeZeroesAndMayExtend) {
  std::string data = pattern(100000, 6);
  write_all(mount_.path("z"), data);
  int fd = open(mount_.path("z").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE, 50000, 100000), 0) << strerror(errno);
  close(fd);
  data.resize(150000, '\0');
  data.replace(50000, 50000, std::string(50000, '\0'));
  EXPECT_EQ(size_of(mount_.path("z")), 150000);
  EXPECT_TRUE(read_all(mount_.path("z")) == data);
}

TEST_F(FileTest, UnsupportedFallocateModeIsRefused) {
  int fd = open(mount_.path("u").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  errno = 0;
  EXPECT_NE(fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096), 0);
  EXPECT_EQ(errno, EOPNOTSUPP);
  close(fd);
}

TEST_F(FileTest, SeekDataAndSeekHoleFindTheWrittenRange) {
  int fd = open(mount_.path("s").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  const off_t data_at = 8 << 20;
  std::string block = pattern(1 << 20, 7);
  ASSERT_EQ(pwrite(fd, block.data(), block.size(), data_at), static_cast<ssize_t>(block.size()));
  ASSERT_EQ(ftruncate(fd, 16 << 20), 0);
  EXPECT_EQ(lseek(fd, 0, SEEK_DATA), data_at);
  EXPECT_EQ(lseek(fd, data_at, SEEK_HOLE), data_at + (1 << 20));
  EXPECT_EQ(lseek(fd, 0, SEEK_HOLE), 0);
  errno = 0;
  EXPECT_EQ(lseek(fd, 16 << 20, SEEK_DATA), -1);
  EXPECT_EQ(errno, ENXIO);
  close(fd);
}

// open_by_handle_at after the kernel dropped the inode from its cache asks
// the server to look up "." of the handle's node (before: ESTALE, with or
// without a hard link). Handles survive links, renames, the loss of the
// original name; a removed file's handle is stale. Both cache modes.
TEST_F(FileTest, FileHandlesSurviveLinksRenamesAndTheInodeCache) {
  for (const char* cache : {"none", "kernel"}) {
    TestConfig config = small_config();
    config.cache = cache;
    ASSERT_TRUE(remount(config)) << mount_.failure();
    const std::string data = pattern(64 << 10, 3);
    write_all(mount_.path("h"), data);
    ASSERT_EQ(mkdir(mount_.path("d").c_str(), 0755), 0);
    struct Handle {
      file_handle head;
      unsigned char bytes[MAX_HANDLE_SZ];
    };
    auto handle_of = [](const std::string& path) {
      Handle h{};
      h.head.handle_bytes = MAX_HANDLE_SZ;
      int mount_id = 0;
      EXPECT_EQ(name_to_handle_at(AT_FDCWD, path.c_str(), &h.head, &mount_id, 0), 0)
          << path << ": " << strerror(errno);
      return h;
    };
    Handle file = handle_of(mount_.path("h"));
    Handle dir = handle_of(mount_.path("d"));
    const int mount_fd = open(mount_.dir().c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(mount_fd, 0);
    auto drop_inode_cache = [] {
      sync();
      const int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
      ASSERT_GE(fd, 0) << strerror(errno);
      ASSERT_EQ(write(fd, "2", 1), 1);
      close(fd);
    };
    auto opens = [&](Handle& h, int flags) {
      const int fd = open_by_handle_at(mount_fd, &h.head, flags);
      const int err = errno;
      if (fd >= 0) close(fd);
      return fd >= 0 ? 0 : err;
    };
    for (const char* step : {"start", "link", "unlink", "rename"}) {
      const std::string what = std::string(cache) + " after " + step;
      if (std::string(step) == "link") {
        ASSERT_EQ(link(mount_.path("h").c_str(), mount_.path("h2").c_str()), 0);
      } else if (std::string(step) == "unlink") {
        ASSERT_EQ(unlink(mount_.path("h").c_str()), 0);
      } else if (std::string(step) == "rename") {
        ASSERT_EQ(rename(mount_.path("h2").c_str(), mount_.path("d/h3").c_str()), 0);
      }
      drop_inode_cache();
      EXPECT_EQ(opens(file, O_RDONLY), 0) << what;
      EXPECT_EQ(opens(dir, O_RDONLY | O_DIRECTORY), 0) << what;
      const int fd = open_by_handle_at(mount_fd, &file.head, O_RDONLY);
      if (fd >= 0) {
        std::string back(data.size(), '\0');
        EXPECT_EQ(pread(fd, back.data(), back.size(), 0), static_cast<ssize_t>(back.size()));
        EXPECT_TRUE(back == data) << what;
        close(fd);
      }
    }
    ASSERT_EQ(unlink(mount_.path("d/h3").c_str()), 0);
    // The kernel holds the inode until the server has answered the RELEASE of
    // the last open above, which it sends in the background: drop_caches
    // cannot evict it before that, and the handle still opens the cached
    // inode. Each try drops the cache again, for at most 5 s.
    int removed = 0;
    for (int tries = 0; tries < 250; ++tries) {
      drop_inode_cache();
      if ((removed = opens(file, O_RDONLY)) == ESTALE) break;
      usleep(20000);
    }
    EXPECT_EQ(removed, ESTALE) << cache << ": the removed file's handle";
    close(mount_fd);
  }
}

TEST_F(FileTest, UnlinkedOpenFileKeepsItsDataUntilClosed) {
  std::string data = pattern(2 << 20, 8);
  write_all(mount_.path("gone"), data);
  struct statvfs before {};
  ASSERT_EQ(statvfs(mount_.dir().c_str(), &before), 0);
  int fd = open(mount_.path("gone").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(unlink(mount_.path("gone").c_str()), 0);
  EXPECT_NE(access(mount_.path("gone").c_str(), F_OK), 0);
  std::string back(data.size(), '\0');
  EXPECT_EQ(pread(fd, back.data(), back.size(), 0), static_cast<ssize_t>(data.size()));
  EXPECT_TRUE(back == data);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  close(fd);
  // The rows come back once the last handle is gone (release is asynchronous: poll briefly).
  struct statvfs after {};
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(statvfs(mount_.dir().c_str(), &after), 0);
    if ((after.f_bfree - std::min(after.f_bfree, before.f_bfree)) * after.f_frsize >= data.size())
      break;
    usleep(10000);
  }
  EXPECT_GE((after.f_bfree - before.f_bfree) * after.f_frsize, data.size());
}

TEST_F(FileTest, InodeNumbersStayStableAndAreNotReused) {
  write_all(mount_.path("one"), "1");
  struct stat first {};
  ASSERT_EQ(stat(mount_.path("one").c_str(), &first), 0);
  ASSERT_EQ(rename(mount_.path("one").c_str(), mount_.path("renamed").c_str()), 0);
  struct stat moved {};
  ASSERT_EQ(stat(mount_.path("renamed").c_str(), &moved), 0);
  EXPECT_EQ(first.st_ino, moved.st_ino);
  ASSERT_EQ(unlink(mount_.path("renamed").c_str()), 0);
  write_all(mount_.path("two"), "2");
  struct stat second {};
  ASSERT_EQ(stat(mount_.path("two").c_str(), &second), 0);
  EXPECT_NE(second.st_ino, first.st_ino);
}

TEST_F(FileTest, StatfsReportsTheTierCapacityAndUse) {
  struct statvfs empty {};
  ASSERT_EQ(statvfs(mount_.dir().c_str(), &empty), 0);
  EXPECT_EQ(empty.f_blocks * empty.f_frsize, 64ull << 20);
  write_all(mount_.path("big"), pattern(8 << 20, 9));
  struct statvfs used {};
  ASSERT_EQ(statvfs(mount_.dir().c_str(), &used), 0);
  EXPECT_EQ(used.f_blocks, empty.f_blocks);
  EXPECT_GE((empty.f_bfree - used.f_bfree) * used.f_frsize, 8ull << 20);
}

}  // namespace
}  // namespace tierfs::testing
