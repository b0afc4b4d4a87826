// The metadata log without a mount: frames and crc32c, commit and replay,
// a torn tail, a journal older than its checkpoint, a damaged checkpoint,
// compaction past the size bound, a checkpoint that cannot be written,
// inodes unlinked while open, and tierfs check's findings on images built
// to be wrong.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "tierfs/core/block_allocator.h"
#include "tierfs/core/journal.h"
#include "tierfs/core/journal_format.h"
#include "tierfs/core/metadata.h"

namespace tierfs {
namespace {

class StateDir {
 public:
  StateDir() {
    char tmpl[] = "/tmp/tierfs-journal-test-XXXXXX";
    path_ = mkdtemp(tmpl);
    fd_ = open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }
  ~StateDir() {
    close(fd_);
    std::filesystem::remove_all(path_);
  }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  std::string file(const char* name) const { return path_ + "/" + name; }

 private:
  std::string path_;
  int fd_ = -1;
};

InodeMeta dir_meta(uint64_t ino, uint32_t nlink) {
  InodeMeta m;
  m.ino = ino;
  m.mode = S_IFDIR | 0755;
  m.nlink = nlink;
  return m;
}

InodeMeta file_meta(uint64_t ino, uint32_t nlink, std::vector<tierfs_extent> extents) {
  InodeMeta m;
  m.ino = ino;
  m.mode = S_IFREG | 0644;
  m.nlink = nlink;
  m.size = 8192;
  m.extents = std::move(extents);
  return m;
}

// Root, a file "a" with two 4 KiB blocks at tier 0 blocks 10-11, an xattr.
void log_small_tree(Journal& journal) {
  RecordBuilder r;
  r.inode(dir_meta(1, 2));
  journal.commit(r);
  r.clear();
  r.entry_add(1, "a", 2);
  r.inode(file_meta(2, 1, {{0, 8192, 10 * 4096, 0, 0}}));
  r.inode(dir_meta(1, 2));
  journal.commit(r);
  r.clear();
  r.xattr_set(2, "user.k", "v");
  journal.commit(r);
}

TEST(JournalFormat, Crc32cIsCastagnoli) {
  EXPECT_EQ(crc32c("123456789"), 0xe3069283u);
  EXPECT_EQ(crc32c(""), 0u);
}

TEST(JournalFormat, ReaderStopsAtADamagedFrame) {
  std::string bytes;
  append_frame(bytes, "first");
  append_frame(bytes, "second");
  bytes[bytes.size() - 1] ^= 1;
  FrameReader reader(bytes);
  EXPECT_EQ(reader.next().value(), "first");
  EXPECT_FALSE(reader.next());
  EXPECT_EQ(reader.stop_reason(), "checksum mismatch");
  EXPECT_EQ(reader.good_bytes(), kFrameHeaderBytes + 5);
}

TEST(Journal, ReplayGivesBackWhatWasCommitted) {
  StateDir dir;
  log_small_tree(*Journal::open(dir.fd(), dir.path(), true));
  ReplayReport report;
  MetadataImage image = replay_state(dir.fd(), dir.path(), report);
  ASSERT_EQ(image.inodes.size(), 2u);
  EXPECT_EQ(image.entries[1].at("a"), 2u);
  EXPECT_EQ(image.inodes[2].extents.at(0).tier_address, 10u * 4096);
  EXPECT_EQ(image.inodes[2].xattrs.at("user.k"), "v");
  EXPECT_EQ(report.journal_frames, 3u);
  EXPECT_EQ(report.torn_bytes, 0u);
  EXPECT_TRUE(check_image(image, {64}).empty());
  // A second open replays, checkpoints, and starts an empty journal over the same image.
  auto reopened = Journal::open(dir.fd(), dir.path(), false);
  EXPECT_EQ(reopened->image().inodes.size(), 2u);
  ReplayReport second;
  MetadataImage again = replay_state(dir.fd(), dir.path(), second);
  EXPECT_EQ(second.journal_frames, 0u);
  EXPECT_EQ(again.inodes[2].xattrs.at("user.k"), "v");
}

// A log that only has to outlive the server (a mount of numa: tiers) is
// the same log without the flushes: what it committed replays, and it made
// no fsync or fdatasync; one for machines' crashes makes them.
TEST(Journal, ProcessDurabilityReplaysTheSameWithoutFlushes) {
  StateDir dir;
  {
    auto journal = Journal::open(dir.fd(), dir.path(), true, LogDurability::process);
    log_small_tree(*journal);
    EXPECT_EQ(journal->sync(), 0);
    EXPECT_EQ(journal->checkpoint(), 0);
    EXPECT_EQ(journal->storage_syncs(), 0u);
  }
  auto reopened = Journal::open(dir.fd(), dir.path(), false, LogDurability::process);
  ASSERT_EQ(reopened->image().inodes.size(), 2u);
  EXPECT_EQ(reopened->image().inodes.at(2).xattrs.at("user.k"), "v");

  StateDir other;
  auto durable = Journal::open(other.fd(), other.path(), true);
  const uint64_t at_open = durable->storage_syncs();  // the first checkpoint's
  EXPECT_GE(at_open, 2u);
  EXPECT_EQ(durable->sync(), 0);
  EXPECT_EQ(durable->storage_syncs(), at_open + 1);
}

TEST(Journal, TornTailEndsReplay) {
  StateDir dir;
  log_small_tree(*Journal::open(dir.fd(), dir.path(), true));
  // Half of a frame that would have added a second name.
  RecordBuilder r;
  r.entry_add(1, "b", 2);
  std::string frame;
  append_frame(frame, r.bytes());
  const int fd = open(dir.file("journal").c_str(), O_WRONLY | O_APPEND);
  ASSERT_EQ(write(fd, frame.data(), frame.size() / 2), static_cast<ssize_t>(frame.size() / 2));
  close(fd);
  ReplayReport report;
  MetadataImage image = replay_state(dir.fd(), dir.path(), report);
  EXPECT_EQ(image.entries[1].count("b"), 0u);
  EXPECT_EQ(report.torn_bytes, frame.size() / 2);
  EXPECT_EQ(report.torn_reason, "short frame");
}

TEST(Journal, JournalOlderThanCheckpointIsIgnored) {
  StateDir dir;
  log_small_tree(*Journal::open(dir.fd(), dir.path(), true));
  // The crash between a checkpoint's rename and the journal's emptying: the
  // journal still holds the frames of the older generation.
  const std::string saved = dir.file("journal.saved");
  std::filesystem::copy_file(dir.file("journal"), saved);
  Journal::open(dir.fd(), dir.path(), false);  // checkpoint generation 2 holds everything
  std::filesystem::rename(saved, dir.file("journal"));
  ReplayReport report;
  MetadataImage image = replay_state(dir.fd(), dir.path(), report);
  EXPECT_TRUE(report.stale_journal);
  EXPECT_EQ(report.journal_frames, 0u);
  EXPECT_EQ(image.inodes.size(), 2u);  // from the checkpoint, not applied twice
}

TEST(Journal, DamagedCheckpointIsRefusedWithItsName) {
  StateDir dir;
  { auto j = Journal::open(dir.fd(), dir.path(), true); }
  std::filesystem::resize_file(dir.file("checkpoint"),
                               std::filesystem::file_size(dir.file("checkpoint")) - 1);
  ReplayReport report;
  try {
    replay_state(dir.fd(), dir.path(), report);
    FAIL() << "a damaged checkpoint was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint: damaged"), std::string::npos) << e.what();
  }
}

TEST(Journal, CompactsPastTheBound) {
  StateDir dir;
  setenv("TIERFS_JOURNAL_CHECKPOINT_BYTES", "4096", 1);
  auto journal = Journal::open(dir.fd(), dir.path(), true);
  log_small_tree(*journal);
  for (int i = 0; i < 500; ++i) {
    RecordBuilder r;
    r.xattr_set(2, "user.k", std::to_string(i));
    journal->commit(r);
  }
  unsetenv("TIERFS_JOURNAL_CHECKPOINT_BYTES");
  EXPECT_GT(journal->checkpoints_written(), 2u);
  EXPECT_LT(journal->journal_bytes(), 8192u);
  ReplayReport report;
  MetadataImage image = replay_state(dir.fd(), dir.path(), report);
  EXPECT_EQ(image.inodes[2].xattrs.at("user.k"), "499");
}

// A full state directory: the checkpoint due cannot be written, and the
// journal it would have replaced keeps every change until one can.
TEST(Journal, CheckpointThatCannotBeWrittenKeepsTheJournal) {
  StateDir dir;
  setenv("TIERFS_JOURNAL_CHECKPOINT_BYTES", "4096", 1);
  auto journal = Journal::open(dir.fd(), dir.path(), true);
  const uint64_t written = journal->checkpoints_written();
  // Its temporary file cannot be made: a directory has the name.
  ASSERT_EQ(mkdirat(dir.fd(), "checkpoint.tmp", 0700), 0);
  log_small_tree(*journal);
  for (int i = 0; i < 500; ++i) {
    RecordBuilder r;
    r.xattr_set(2, "user.k", std::to_string(i));
    EXPECT_EQ(journal->commit(r), 0);
  }
  unsetenv("TIERFS_JOURNAL_CHECKPOINT_BYTES");
  EXPECT_EQ(journal->checkpoints_written(), written);
  EXPECT_GT(journal->journal_bytes(), 8192u);
  ReplayReport report;
  EXPECT_EQ(replay_state(dir.fd(), dir.path(), report).inodes[2].xattrs.at("user.k"), "499");
  ASSERT_EQ(unlinkat(dir.fd(), "checkpoint.tmp", AT_REMOVEDIR), 0);
  EXPECT_EQ(journal->checkpoint(), 0);
  RecordBuilder r;
  r.xattr_set(2, "user.k", "after");
  EXPECT_EQ(journal->commit(r), 0);
  ReplayReport after;
  EXPECT_EQ(replay_state(dir.fd(), dir.path(), after).inodes[2].xattrs.at("user.k"), "after");
  EXPECT_EQ(after.journal_frames, 1u);
}

TEST(Journal, UnlinkedWhileOpenIsDroppedAtReplay) {
  StateDir dir;
  auto journal = Journal::open(dir.fd(), dir.path(), true);
  log_small_tree(*journal);
  RecordBuilder r;
  r.entry_del(1, "a");
  r.inode(file_meta(2, 0, {{0, 8192, 10 * 4096, 0, 0}}));  // an open handle keeps it
  journal->commit(r);
  ReplayReport report;
  MetadataImage image = replay_state(dir.fd(), dir.path(), report);
  EXPECT_EQ(report.dropped_unlinked, 1u);
  EXPECT_EQ(image.inodes.count(2), 0u);
  // Its blocks are nobody's now: a running allocator holding them would leak.
  EXPECT_TRUE(check_allocation(image, 0, 64, {{0, 64}}).empty());
  EXPECT_FALSE(check_allocation(image, 0, 64, {{0, 10}, {12, 52}}).empty());
}

TEST(MetadataCheck, FindsWhatIsWrong) {
  MetadataImage image;
  image.inodes[1] = dir_meta(1, 2);
  image.inodes[2] = file_meta(2, 1, {{0, 8192, 10 * 4096, 0, 0}});
  image.inodes[3] = file_meta(3, 2, {{0, 4096, 11 * 4096, 0, 0}});  // block 11 twice
  image.inodes[4] = file_meta(4, 1, {{0, 4096, 70 * 4096, 0, 0}});  // past the tier
  image.entries[1] = {{"a", 2}, {"b", 3}};                          // 3 has one name, not 2
  const auto problems = check_image(image, {64});
  auto has = [&](const std::string& what) {
    for (const auto& p : problems)
      if (p.find(what) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has("owned by inode 2 and inode 3")) << ::testing::PrintToString(problems);
  EXPECT_TRUE(has("inode 3: link count 2, but 1 names"));
  EXPECT_TRUE(has("inode 4 extent 0"));
  EXPECT_TRUE(has("past the end of the tier"));
  EXPECT_TRUE(has("inode 4: not reachable from the root"));
}

TEST(MetadataCheck, BlocksAMigrationHoldsAreNotLeakedTheRestIs) {
  MetadataImage image;
  image.inodes[1] = dir_meta(1, 1);
  image.inodes[2] = file_meta(2, 1, {{0, 8192, 10 * 4096, 0, 0}});  // blocks 10-11
  image.entries[1] = {{"a", 2}};
  // Blocks 30-49 in use, no record names them: a copy in flight holds 30-39.
  const std::vector<BlockRange> free_runs = {{0, 10}, {12, 18}, {50, 14}};
  EXPECT_EQ(check_allocation(image, 0, 64, free_runs).size(), 1u);
  EXPECT_TRUE(check_allocation(image, 0, 64, free_runs, {{30, 20}}).empty());
  const auto rest = check_allocation(image, 0, 64, free_runs, {{30, 10}});
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_NE(rest[0].find("blocks 40-49 are in use but no file owns them"), std::string::npos)
      << rest[0];
  // A stale list (the copy gave its blocks back) neither hides nor invents anything.
  EXPECT_TRUE(check_allocation(image, 0, 64, {{0, 10}, {12, 52}}, {{20, 20}}).empty());
}

TEST(BlockAllocatorClaim, TakesExactlyFreeRanges) {
  BlockAllocator blocks(64);
  EXPECT_TRUE(blocks.claim({10, 4}));
  EXPECT_FALSE(blocks.claim({12, 4}));  // 12 and 13 are taken
  EXPECT_FALSE(blocks.claim({60, 8}));  // past the end
  EXPECT_EQ(blocks.free_blocks(), 60u);
  blocks.free({10, 4});
  EXPECT_EQ(blocks.free_runs().size(), 1u);
}

}  // namespace
}  // namespace tierfs
