// BackingFile::open_elsewhere and written_elsewhere against the kernel's own
// answer: a write lease (a read lease) is refused while another open file
// writes the inode, including a shared mapping whose descriptor was closed
// (the case the held moves and the kernel path's attribute timeout need,
// since such a mapping sends its FUSE RELEASE at the close).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "tierfs/core/backing_file.h"

namespace tierfs {
namespace {

class BackingFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // tmpfs, as the kernel path's store (leases are the VFS's, any fs takes them).
    char dir[] = "/dev/shm/tierfs-backing-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr) << std::strerror(errno);
    dir_ = dir;
    dir_fd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dir_fd_, 0);
    const int fd = openat(dir_fd_, "1.fast", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, kBytes), 0);
    file_ = std::make_unique<BackingFile>(fd, dir_fd_, "1.fast", 0);
    const std::optional<bool> alone = file_->open_elsewhere();
    if (!alone) GTEST_SKIP() << "no write lease here: " << std::strerror(errno);
  }
  void TearDown() override {
    file_.reset();
    if (dir_fd_ >= 0) {
      unlinkat(dir_fd_, "1.fast", 0);
      close(dir_fd_);
      rmdir(dir_.c_str());
    }
  }
  int open_file(int flags) const { return openat(dir_fd_, "1.fast", flags | O_CLOEXEC); }

  static constexpr size_t kBytes = 1 << 20;
  std::string dir_;
  int dir_fd_ = -1;
  std::unique_ptr<BackingFile> file_;
};

// Both questions: open_elsewhere (a write lease) and written_elsewhere (a read lease).
void expect_elsewhere(const BackingFile& file, bool expected) {
  EXPECT_EQ(file.open_elsewhere(), std::optional(expected));
  EXPECT_EQ(file.written_elsewhere(), std::optional(expected));
}

TEST_F(BackingFileTest, AloneIsNotOpenElsewhere) {
  expect_elsewhere(*file_, false);
  // Asking leaves no lease behind: a second ask gets the same answer.
  expect_elsewhere(*file_, false);
}

TEST_F(BackingFileTest, AWriterIsSeenUntilItCloses) {
  const int fd = open_file(O_RDWR);
  ASSERT_GE(fd, 0);
  expect_elsewhere(*file_, true);
  close(fd);
  expect_elsewhere(*file_, false);
}

TEST_F(BackingFileTest, ASharedMappingIsSeenAfterItsDescriptorClosedUntilMunmap) {
  const int fd = open_file(O_RDWR);
  ASSERT_GE(fd, 0);
  void* map = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED);
  close(fd);
  static_cast<char*>(map)[4096] = 'x';
  expect_elsewhere(*file_, true);
  munmap(map, kBytes);
  expect_elsewhere(*file_, false);
}

TEST_F(BackingFileTest, ARemovedFileIsOpenNowhere) {
  file_->remove();
  expect_elsewhere(*file_, false);
}

// A read-only mapping stores nothing: the attribute timeout need not wait for it.
TEST_F(BackingFileTest, AReaderIsNotAWriter) {
  const int fd = open_file(O_RDONLY);
  ASSERT_GE(fd, 0);
  void* map = mmap(nullptr, kBytes, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED);
  close(fd);
  EXPECT_EQ(file_->written_elsewhere(), std::optional(false));
  munmap(map, kBytes);
}

}  // namespace
}  // namespace tierfs
