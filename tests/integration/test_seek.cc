// lseek SEEK_DATA and SEEK_HOLE on every cache mode, each answer compared
// with a tmpfs mounted by the test (lseek(2): ENXIO at or past end of file
// for both, the virtual hole at end of file, negative offsets). A copy tool
// that walks data runs (cp --sparse, tar, rsync) stops on ENXIO and treats
// EINVAL as an error.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/support/privileged.h"

namespace tierfs::testing {
namespace {

struct Probe {
  off_t offset;
  int whence;
};

// One lseek: the offset it returned, or minus its errno.
long long seek_result(int fd, const Probe& p) {
  errno = 0;
  off_t r = lseek(fd, p.offset, p.whence);
  return r < 0 ? -static_cast<long long>(errno) : static_cast<long long>(r);
}

std::string describe(const Probe& p) {
  return std::string(p.whence == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE") + " at " +
         std::to_string(p.offset);
}

// Builds the same file under `dir`: `data` bytes written at `data_at`, then
// truncated to `size` (0 = leave it as written).
int make_file(const std::string& dir, const std::string& name, off_t data_at, size_t data,
              off_t size) {
  const std::string path = dir + "/" + name;
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return -1;
  if (data > 0) {
    std::string block = pattern(data, 3);
    if (pwrite(fd, block.data(), block.size(), data_at) != static_cast<ssize_t>(block.size())) {
      close(fd);
      return -1;
    }
  }
  if (size > 0 && ftruncate(fd, size) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

class SeekTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    TIERFS_REQUIRE(missing_root());
    TIERFS_REQUIRE(missing_fuse());
    TestConfig config = small_config();
    config.cache = GetParam();
    ASSERT_TRUE(mount_.start(config)) << mount_.failure();
    ASSERT_TRUE(tmpfs_.mount()) << "mount tmpfs: " << strerror(errno);
  }
  void TearDown() override { EXPECT_EQ(mount_.stop(), 0) << mount_.failure(); }

  // The same file on both; every probe must give tmpfs's answer.
  void compare(const std::string& name, off_t data_at, size_t data, off_t size,
               const std::vector<Probe>& probes) {
    int ours = make_file(mount_.dir(), name, data_at, data, size);
    ASSERT_GE(ours, 0) << strerror(errno);
    int theirs = make_file(tmpfs_.dir(), name, data_at, data, size);
    ASSERT_GE(theirs, 0) << strerror(errno);
    struct stat st {};
    ASSERT_EQ(fstat(theirs, &st), 0);
    for (const Probe& p : probes) {
      const long long got = seek_result(ours, p);
      const long long want = seek_result(theirs, p);
      // lseek(2) lets a file system treat the whole file as data; cache =
      // "kernel" does (its newest pages are the kernel's, not the server's).
      const long long all_data = p.offset < 0 || p.offset >= st.st_size ? -ENXIO
                                 : p.whence == SEEK_DATA                ? p.offset
                                                                        : st.st_size;
      if (std::string(GetParam()) == "kernel" && got == all_data) continue;
      EXPECT_EQ(got, want) << "cache=" << GetParam() << ", " << name << ": " << describe(p)
                           << " (negative: minus errno)";
    }
    close(ours);
    close(theirs);
  }

  Mount mount_;
  ReferenceTmpfs tmpfs_;
};

TEST_P(SeekTest, EmptyFileHasNoDataAndNoHole) {
  compare("empty", 0, 0, 0,
          {{0, SEEK_DATA},
           {0, SEEK_HOLE},
           {1, SEEK_DATA},
           {1, SEEK_HOLE},
           {-1, SEEK_DATA},
           {-1, SEEK_HOLE}});
}

TEST_P(SeekTest, AtAndPastEndOfFileIsEnxio) {
  constexpr off_t size = 3 * 4096;
  compare("full", 0, size, 0,
          {{size, SEEK_DATA},
           {size, SEEK_HOLE},
           {size + 1, SEEK_DATA},
           {size + 1, SEEK_HOLE},
           {size + (1 << 20), SEEK_HOLE},
           {size - 1, SEEK_DATA},
           {size - 1, SEEK_HOLE},
           {100, SEEK_DATA},
           {0, SEEK_HOLE},  // the virtual hole at end of file
           {-1, SEEK_DATA},
           {-1, SEEK_HOLE}});
}

TEST_P(SeekTest, HoleBeforeAndAfterData) {
  constexpr off_t data_at = 1 << 20;
  constexpr size_t data = 1 << 20;
  constexpr off_t size = 4 << 20;
  compare("sparse", data_at, data, size,
          {{0, SEEK_DATA},
           {0, SEEK_HOLE},
           {data_at, SEEK_HOLE},
           {data_at + 4096, SEEK_DATA},
           {data_at + static_cast<off_t>(data), SEEK_DATA},  // only a hole to the end
           {data_at + static_cast<off_t>(data), SEEK_HOLE},
           {size, SEEK_DATA},
           {size, SEEK_HOLE},
           {size - 1, SEEK_HOLE}});
}

INSTANTIATE_TEST_SUITE_P(CacheModes, SeekTest, ::testing::Values("none", "kernel"));

}  // namespace
}  // namespace tierfs::testing
