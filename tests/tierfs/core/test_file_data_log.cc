// FileData with a metadata log attached (tierfs/core/journal.h): blocks a
// write takes are logged before its bytes land, blocks a call drops go back
// only when the caller has logged the change, and replayed extents are
// claimed exactly (a block two files claim is refused).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/tierfs/core/data_fixture.h"
#include "tierfs/core/file_data.h"
#include "tierfs/core/journal.h"

namespace tierfs {
namespace {

using namespace data_testing;  // NOLINT(google-build-using-namespace)

class LoggedStorage : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tierfs-file-data-log-XXXXXX";
    dir_ = mkdtemp(tmpl);
    dir_fd_ = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    journal_ = Journal::open(dir_fd_, dir_, true);
    storage_->set_journal(journal_.get());
    file_.set_ino(7);
  }
  void TearDown() override {
    storage_->set_journal(nullptr);
    journal_.reset();
    close(dir_fd_);
    std::filesystem::remove_all(dir_);
  }
  int64_t write(uint64_t off, std::string bytes) {
    iovec v{bytes.data(), bytes.size()};
    return file_.write(*storage_, off, std::span<const iovec>(&v, 1));
  }
  uint64_t used_blocks() {
    BlockAllocator& b = storage_->tier(0).blocks();
    return b.total_blocks() - b.free_blocks();
  }
  // The extents the log holds for the file.
  std::vector<tierfs_extent> logged_extents() {
    std::vector<tierfs_extent> out;
    journal_->with_image([&](const MetadataImage& image) {
      if (auto it = image.inodes.find(7); it != image.inodes.end()) out = it->second.extents;
    });
    return out;
  }

  TestStorage storage_{{TierShape{2, 4096, 64, {}, true}}};
  std::string dir_;
  int dir_fd_ = -1;
  std::unique_ptr<Journal> journal_;
  FileData file_;
};

TEST_F(LoggedStorage, NewBlocksAreLoggedByTheWriteItself) {
  ASSERT_EQ(write(0, std::string(3 * 4096, 'x')), 3 * 4096);
  const auto logged = logged_extents();
  ASSERT_FALSE(logged.empty());
  uint64_t bytes = 0;
  for (const auto& e : logged) bytes += e.length;
  EXPECT_EQ(bytes, file_.allocated_bytes());
  // An overwrite in place takes no block: nothing more to log.
  const uint64_t journal_bytes = journal_->journal_bytes();
  ASSERT_EQ(write(4096, "y"), 1);
  EXPECT_EQ(journal_->journal_bytes(), journal_bytes);
}

TEST_F(LoggedStorage, DroppedBlocksWaitForTheLog) {
  ASSERT_EQ(write(0, std::string(8 * 4096, 'x')), 8 * 4096);
  file_.trim_preallocation(*storage_, 8 * 4096);
  file_.free_deferred(*storage_);
  const uint64_t before = used_blocks();
  file_.truncate(*storage_, 4096);
  EXPECT_TRUE(file_.has_deferred_frees());
  EXPECT_EQ(used_blocks(), before);  // still owned until the caller logged the truncate
  file_.free_deferred(*storage_);
  EXPECT_EQ(used_blocks(), 1u);
  file_.release(*storage_);
  EXPECT_EQ(used_blocks(), 1u);
  file_.free_deferred(*storage_);
  EXPECT_EQ(used_blocks(), 0u);
}

TEST_F(LoggedStorage, AdoptClaimsExactlyAndRefusesASharedBlock) {
  storage_->set_journal(nullptr);
  FileData a, b;
  EXPECT_EQ(a.adopt(*storage_, {{0, 8192, 4 * 4096, 0, 0}}), "");
  EXPECT_EQ(used_blocks(), 2u);
  const std::string refused =
      b.adopt(*storage_, {{0, 4096, 0, 0, 0}, {4096, 4096, 5 * 4096, 0, 0}});
  EXPECT_NE(refused.find("owned by another file"), std::string::npos) << refused;
  EXPECT_EQ(used_blocks(), 2u);  // b kept nothing
  EXPECT_NE(b.adopt(*storage_, {{0, 4096, 1000 * 4096, 0, 0}}).find("outside the tier"),
            std::string::npos);
}

}  // namespace
}  // namespace tierfs
