// BackingFile::open_elsewhere and written_elsewhere against the kernel's own
// answer: a write lease (a read lease) is refused while another open file
// writes the inode, including a shared mapping whose descriptor was closed
// (the case the held moves and the kernel path's attribute timeout need,
// since such a mapping sends its FUSE RELEASE at the close). And a
// migration's copy between backing files: grown to the source's size, holes
// kept, on a 4 KiB-page tmpfs and out of a huge-page one (whose SEEK_DATA
// sees whole 2 MiB folios).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/privileged.h"
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

// A source file in one tmpfs (/dev/shm, or a huge-page one of our own) and
// a copy made as the mover makes it: unnamed (O_TMPFILE) in /dev/shm.
class BackingCopyTest : public ::testing::Test {
 protected:
  void TearDown() override {
    source_.reset();
    copy_.reset();
    if (source_dir_fd_ >= 0) {
      unlinkat(source_dir_fd_, "1.huge", 0);
      close(source_dir_fd_);
    }
    if (copy_dir_fd_ >= 0) close(copy_dir_fd_);
    if (!huge_dir_.empty()) {
      umount2(huge_dir_.c_str(), MNT_DETACH);
      rmdir(huge_dir_.c_str());
    }
    if (!shm_dir_.empty()) rmdir(shm_dir_.c_str());
  }
  // The directories; `huge`: the source's is a huge=within_size tmpfs.
  void make_dirs(bool huge) {
    char shm[] = "/dev/shm/tierfs-copy-XXXXXX";
    ASSERT_NE(mkdtemp(shm), nullptr) << std::strerror(errno);
    shm_dir_ = shm;
    copy_dir_fd_ = open(shm, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(copy_dir_fd_, 0);
    std::string source_dir = shm_dir_;
    if (huge) {
      char tmpl[] = "/tmp/tierfs-huge-XXXXXX";
      ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
      huge_dir_ = tmpl;
      ASSERT_EQ(mount("tmpfs", tmpl, "tmpfs", 0, "size=256m,huge=within_size"), 0)
          << std::strerror(errno);
      source_dir = huge_dir_;
    }
    source_dir_fd_ = open(source_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(source_dir_fd_, 0);
  }
  // The source, `size` bytes with `runs` written (offset, bytes).
  void make_source(uint64_t size, const std::vector<std::pair<uint64_t, std::string>>& runs) {
    const int fd = openat(source_dir_fd_, "1.huge", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
    for (const auto& [at, bytes] : runs)
      ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(at)),
                static_cast<ssize_t>(bytes.size()));
    source_ = std::make_unique<BackingFile>(fd, source_dir_fd_, "1.huge", 0);
    const int copy_fd = openat(copy_dir_fd_, ".", O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
    ASSERT_GE(copy_fd, 0) << std::strerror(errno);
    copy_ = std::make_unique<BackingFile>(copy_fd, copy_dir_fd_, "", 1);
  }
  static std::string bytes_of(const BackingFile& file, uint64_t off, uint64_t len) {
    std::vector<char> out;
    EXPECT_EQ(file.read(off, len, out), static_cast<int64_t>(len));
    return {out.begin(), out.end()};
  }

  std::string shm_dir_;
  std::string huge_dir_;
  int copy_dir_fd_ = -1;
  int source_dir_fd_ = -1;
  std::unique_ptr<BackingFile> source_;
  std::unique_ptr<BackingFile> copy_;
};

TEST_F(BackingCopyTest, GrowToNeverShortens) {
  make_dirs(false);
  make_source(0, {});
  const std::string tail(8192, 't');
  const iovec piece{const_cast<char*>(tail.data()), tail.size()};
  ASSERT_EQ(copy_->write(1 << 20, std::span(&piece, 1)), 8192);
  EXPECT_EQ(copy_->grow_to(4096), 0);
  EXPECT_EQ(copy_->facts().size, (1u << 20) + 8192);
  EXPECT_EQ(copy_->grow_to(2 << 20), 0);
  EXPECT_EQ(copy_->facts().size, 2u << 20);
  EXPECT_EQ(bytes_of(*copy_, 1 << 20, 8192), tail);
}

TEST_F(BackingCopyTest, ACopyKeepsTheHolesOfAPageTmpfs) {
  make_dirs(false);
  const std::string a(8192, 'a');
  const std::string b(8192, 'b');
  make_source(32 << 20, {{0, a}, {16 << 20, b}});
  ASSERT_EQ(copy_->copy_data_from(*source_, 0, 32 << 20), 0);
  const BackingFile::Facts facts = copy_->facts();
  EXPECT_EQ(facts.size, 32u << 20);
  EXPECT_EQ(facts.allocated_bytes, 16384u);
  EXPECT_EQ(bytes_of(*copy_, 0, 8192), a);
  EXPECT_EQ(bytes_of(*copy_, 16 << 20, 8192), b);
}

// 1 MiB at 0 and at 64 MiB, each with a page of zeros inside: the source
// holds two 2 MiB folios, which SEEK_DATA reports whole.
TEST_F(BackingCopyTest, ACopyOutOfHugeFoliosKeepsOnlyTheirData) {
  TIERFS_REQUIRE(tierfs::testing::missing_root());
  make_dirs(true);
  std::string run(1 << 20, 'r');
  for (size_t i = 0; i < run.size(); i += 4096) run[i] = static_cast<char>('a' + i / 4096 % 26);
  std::fill_n(run.begin() + 8192, 4096, '\0');
  make_source(128 << 20, {{0, run}, {64 << 20, run}});
  const BackingFile::Facts source = source_->facts();
  ASSERT_EQ(source.allocated_bytes, 4u << 20) << "no huge folios on this tmpfs";
  ASSERT_EQ(copy_->copy_data_from(*source_, 0, 128 << 20), 0);
  const BackingFile::Facts facts = copy_->facts();
  EXPECT_EQ(facts.size, 128u << 20);
  EXPECT_EQ(facts.allocated_bytes, (2u << 20) - 2 * 4096);
  EXPECT_EQ(bytes_of(*copy_, 0, 2 << 20), run + std::string(1 << 20, '\0'));
  EXPECT_EQ(bytes_of(*copy_, 64 << 20, 1 << 20), run);
}

// Only whole pages at page boundaries are left out: a re-copy of a changed
// range (after a discard that keeps the partial blocks at its edges) must
// write its edges even when they are zeros.
TEST_F(BackingCopyTest, ReadDataLeavesOutOnlyWholePagesOfZeros) {
  TIERFS_REQUIRE(tierfs::testing::missing_root());
  make_dirs(true);
  make_source(4 << 20, {{8192, std::string(4096, 'd')}});
  std::vector<char> buffer;
  std::vector<std::pair<uint64_t, uint64_t>> puts;
  ASSERT_EQ(source_->read_data(100, 12288 + 100, buffer,
                               [&](uint64_t at, std::span<const char> bytes) {
                                 puts.emplace_back(at, bytes.size());
                                 return 0;
                               }),
            0);
  const std::vector<std::pair<uint64_t, uint64_t>> want = {{100, 3996}, {8192, 4096 + 100}};
  EXPECT_EQ(puts, want);
}

}  // namespace
}  // namespace tierfs
