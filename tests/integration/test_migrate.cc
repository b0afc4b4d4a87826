// Migration on a real mount: `tierfs migrate` and user.tierfs.tier on files,
// directory trees, sparse and zero-length files, --async, a full target
// (ENOSPC, the file stays whole), re-striping onto a tier carved from the
// same region file, and a model-based run where writers and readers with
// per-block checksums keep going while the files move back and forth.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/migrate_helpers.h"

namespace tierfs::testing {
namespace {

using MigrateTest = MountTest;

TEST_F(MigrateTest, CommandMovesFilesTreesSparseAndEmptyFiles) {
  ASSERT_TRUE(remount(three_layouts())) << mount_.failure();
  const std::string plain = pattern(3 << 20, 1), head = pattern(100000, 2);
  write_all(mount_.path("plain"), plain);
  write_all(mount_.path("sparse"), head);
  {
    const int fd = open(mount_.path("sparse").c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, head.data(), head.size(), 5 << 20), static_cast<ssize_t>(head.size()));
    close(fd);
  }
  write_all(mount_.path("empty"), "");
  const uint64_t sparse_blocks = stat_of(mount_.path("sparse")).st_blocks;
  const std::string sparse = read_all(mount_.path("sparse"));

  std::string out;
  ASSERT_EQ(run_command({tierfs_bin(), "migrate", mount_.path("plain"), mount_.path("sparse"),
                         mount_.path("empty"), "--tier", "slow", "--json"},
                        out),
            0)
      << out;
  const auto summary = nlohmann::json::parse(out.substr(out.find('{')));
  EXPECT_EQ(summary.at("migrated"), 3);
  EXPECT_EQ(summary.at("failed"), 0);
  EXPECT_EQ(tiers_of(mount_.path("plain")), std::set<std::string>{"slow"});
  EXPECT_EQ(tiers_of(mount_.path("sparse")), std::set<std::string>{"slow"});
  EXPECT_TRUE(tiers_of(mount_.path("empty")).empty());
  EXPECT_TRUE(read_all(mount_.path("plain")) == plain);
  EXPECT_TRUE(read_all(mount_.path("sparse")) == sparse);
  EXPECT_EQ(stat_of(mount_.path("sparse")).st_blocks, sparse_blocks) << "holes stay holes";
  EXPECT_EQ(stat_of(mount_.path("empty")).st_size, 0);

  ASSERT_EQ(mkdir(mount_.path("tree").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(mount_.path("tree/sub").c_str(), 0755), 0);
  const std::vector<std::string> tree = {"tree/a", "tree/sub/b", "tree/sub/c"};
  for (size_t i = 0; i < tree.size(); ++i) write_all(mount_.path(tree[i]), pattern(200000, 10 + i));
  EXPECT_NE(run_command({tierfs_bin(), "migrate", mount_.path("tree"), "--tier", "narrow"}, out),
            0);
  EXPECT_NE(out.find("use -r"), std::string::npos) << out;
  ASSERT_EQ(
      run_command({tierfs_bin(), "migrate", "-r", mount_.path("tree"), "--tier", "narrow"}, out), 0)
      << out;
  for (size_t i = 0; i < tree.size(); ++i) {
    EXPECT_EQ(tiers_of(mount_.path(tree[i])), std::set<std::string>{"narrow"}) << tree[i];
    EXPECT_TRUE(read_all(mount_.path(tree[i])) == pattern(200000, 10 + i)) << tree[i];
  }

  // --async returns at once; the mover thread does the moves.
  ASSERT_EQ(
      run_command({tierfs_bin(), "migrate", "-r", "--async", mount_.path("tree"), "--tier", "fast"},
                  out),
      0)
      << out;
  for (const std::string& name : tree)
    EXPECT_TRUE(wait_for_tier(mount_.path(name), "fast")) << name;
  for (size_t i = 0; i < tree.size(); ++i)
    EXPECT_TRUE(read_all(mount_.path(tree[i])) == pattern(200000, 10 + i)) << tree[i];

  EXPECT_NE(run_command({tierfs_bin(), "migrate", mount_.path("plain"), "--tier", "nope"}, out), 0);
  EXPECT_NE(out.find("\"nope\" is not a tier of this mount"), std::string::npos) << out;
  const inspect::Stats stats = read_stats(mount_.dir());
  EXPECT_EQ(stats.tiers[1].files_moved_in, 2u) << "plain and sparse came to slow";
  EXPECT_EQ(stats.tiers[2].files_moved_in, 3u);
  EXPECT_EQ(stats.tiers[2].files_moved_out, 3u);
  EXPECT_EQ(stats.tiers[1].bytes_moved_in, (3u << 20) + sparse_blocks * 512);
}

// The kernel sends a directory's ioctls too (fuse_dir_ioctl), on the
// directory's handle, which is no file handle: the server died of a null
// FileHandle (SIGSEGV) at the migrate ioctl on a directory, from any user.
TEST_F(MigrateTest, TheIoctlOnADirectoryIsRefusedAndTheServerLives) {
  ASSERT_TRUE(remount(three_layouts())) << mount_.failure();
  ASSERT_EQ(mkdir(mount_.path("d").c_str(), 0755), 0);
  const int fd = open(mount_.path("d").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(migrate_fd(fd, "slow"), ENOTTY);
  close(fd);
  write_all(mount_.path("d/f"), "still here");
  EXPECT_EQ(read_all(mount_.path("d/f")), "still here");
}

TEST_F(MigrateTest, SettingTheTierXattrOnAFileMovesItsData) {
  ASSERT_TRUE(remount(three_layouts())) << mount_.failure();
  const std::string data = pattern(5 << 20, 3);
  write_all(mount_.path("f"), data);
  ASSERT_EQ(setxattr(mount_.path("f").c_str(), "user.tierfs.tier", "narrow", 6, 0), 0);
  EXPECT_EQ(tiers_of(mount_.path("f")), std::set<std::string>{"narrow"});
  EXPECT_EQ(getxattr_string(mount_.path("f"), "user.tierfs.tier"), "narrow");
  EXPECT_TRUE(read_all(mount_.path("f")) == data);
  // New data follows the file.
  write_all(mount_.path("f"), pattern(4096, 4), O_APPEND);
  EXPECT_EQ(tiers_of(mount_.path("f")), std::set<std::string>{"narrow"});
  ASSERT_EQ(setxattr(mount_.path("f").c_str(), "user.tierfs.tier", "slow", 4, 0), 0);
  EXPECT_EQ(tiers_of(mount_.path("f")), std::set<std::string>{"slow"});
  EXPECT_TRUE(read_all(mount_.path("f")).substr(0, data.size()) == data);
}

TEST_F(MigrateTest, FullTargetAnswersEnospcAndTheFileStaysWhole) {
  TestConfig config;
  // The server path's extent move (kernel path: kernel_migrate.sh).
  config.tiers.push_back(
      {"fast", {"numa:0"}, "64MiB", "4KiB", false, {}, {}, "data_path = \"server\""});
  config.tiers.push_back({"tiny", {"file:@WORK@/tiny.img"}, "1MiB", "4KiB", true});
  ASSERT_TRUE(remount(config)) << mount_.failure();
  const std::string data = pattern(4 << 20, 5);
  write_all(mount_.path("big"), data);
  std::string out;
  EXPECT_EQ(run_command({tierfs_bin(), "migrate", mount_.path("big"), "--tier", "tiny"}, out), 1);
  EXPECT_NE(out.find("has no room"), std::string::npos) << out;
  EXPECT_EQ(tiers_of(mount_.path("big")), std::set<std::string>{"fast"});
  EXPECT_TRUE(read_all(mount_.path("big")) == data);
  EXPECT_EQ(setxattr(mount_.path("big").c_str(), "user.tierfs.tier", "tiny", 4, 0), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(getxattr(mount_.path("big").c_str(), "user.tierfs.tier", nullptr, 0), -1)
      << "a move that failed stores no tier either";
  const inspect::Stats stats = read_stats(mount_.dir());
  EXPECT_EQ(stats.tiers[1].used_bytes, 0u) << "what the target gave is back";
  EXPECT_EQ(stats.mover.failures, 2u);
  // A file that fits still moves.
  write_all(mount_.path("small"), pattern(300000, 6));
  EXPECT_EQ(run_command({tierfs_bin(), "migrate", mount_.path("small"), "--tier", "tiny"}, out), 0)
      << out;
}

// The model: block b of file f holds (f, b, version) and a fill from them.
constexpr size_t kBlock = 4096;
constexpr size_t kBlocks = 512;  // 2 MiB files

std::string block_of(uint32_t file, uint32_t block, uint32_t version) {
  std::string out(kBlock, static_cast<char>('a' + (file * 7 + block + version) % 26));
  std::memcpy(out.data(), &file, 4);
  std::memcpy(out.data() + 4, &block, 4);
  std::memcpy(out.data() + 8, &version, 4);
  return out;
}

bool valid_block(const std::string& got, uint32_t file, uint32_t block) {
  if (got.size() != kBlock) return false;
  uint32_t version = 0;
  std::memcpy(&version, got.data() + 8, 4);
  return got == block_of(file, block, version);
}

TEST_F(MigrateTest, WritersAndReadersKeepEveryBlockWhileFilesMoveBackAndForth) {
  ASSERT_TRUE(remount(three_layouts())) << mount_.failure();
  constexpr uint32_t kFiles = 3;
  struct File {
    int fd = -1;
    std::mutex model_lock;
    std::vector<uint32_t> version = std::vector<uint32_t>(kBlocks, 1);
  };
  std::vector<File> files(kFiles);
  for (uint32_t f = 0; f < kFiles; ++f) {
    std::string all;
    for (uint32_t b = 0; b < kBlocks; ++b) all += block_of(f, b, 1);
    write_all(mount_.path("m" + std::to_string(f)), all);
    files[f].fd = open(mount_.path("m" + std::to_string(f)).c_str(), O_RDWR);
    ASSERT_GE(files[f].fd, 0);
  }
  std::atomic<bool> done{false};
  std::atomic<uint64_t> bad{0}, writes{0}, reads{0};
  std::vector<std::thread> threads;
  for (unsigned w = 0; w < 2; ++w)
    threads.emplace_back([&, w] {
      std::mt19937 rng(w + 1);
      while (!done.load()) {
        const uint32_t f = rng() % kFiles, b = rng() % kBlocks;
        // The model and the file change together: a reader checks against either version.
        std::lock_guard guard(files[f].model_lock);
        const uint32_t v = files[f].version[b] + 1;
        const std::string data = block_of(f, b, v);
        if (pwrite(files[f].fd, data.data(), kBlock, static_cast<off_t>(b) * kBlock) !=
            static_cast<ssize_t>(kBlock))
          bad.fetch_add(1);
        files[f].version[b] = v;
        writes.fetch_add(1);
      }
    });
  for (unsigned r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      std::mt19937 rng(r + 11);
      std::string got(kBlock, '\0');
      while (!done.load()) {
        const uint32_t f = rng() % kFiles, b = rng() % kBlocks;
        if (pread(files[f].fd, got.data(), kBlock, static_cast<off_t>(b) * kBlock) !=
                static_cast<ssize_t>(kBlock) ||
            !valid_block(got, f, b))
          bad.fetch_add(1);
        reads.fetch_add(1);
      }
    });
  const std::vector<std::string> tiers = {"slow", "narrow", "fast", "narrow", "slow", "fast"};
  unsigned moves = 0;
  for (unsigned round = 0; round < 4; ++round)
    for (const std::string& tier : tiers)
      for (uint32_t f = 0; f < kFiles; ++f) {
        ASSERT_EQ(migrate_fd(files[f].fd, tier), 0) << "file " << f << " to " << tier;
        ++moves;
      }
  done.store(true);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0u) << "a read saw a block never written there, or a write failed";
  EXPECT_GT(writes.load(), 0u);
  EXPECT_GT(reads.load(), 0u);
  for (uint32_t f = 0; f < kFiles; ++f) {
    close(files[f].fd);
    const std::string all = read_all(mount_.path("m" + std::to_string(f)));
    ASSERT_EQ(all.size(), kBlock * kBlocks);
    for (uint32_t b = 0; b < kBlocks; ++b)
      ASSERT_TRUE(all.compare(b * kBlock, kBlock, block_of(f, b, files[f].version[b])) == 0)
          << "file " << f << " block " << b << " version " << files[f].version[b];
    EXPECT_EQ(tiers_of(mount_.path("m" + std::to_string(f))), std::set<std::string>{"fast"});
  }
  const inspect::Stats stats = read_stats(mount_.dir());
  uint64_t moved_in = 0;
  for (const auto& tier : stats.tiers) moved_in += tier.files_moved_in;
  EXPECT_EQ(moved_in, moves);
  RecordProperty("writes", static_cast<int>(writes.load()));
  RecordProperty("reads", static_cast<int>(reads.load()));
}

}  // namespace
}  // namespace tierfs::testing
